//! Expiring flows: which entries are past their state's timeout.

use std::{collections::HashSet, time::Duration};

use aya::maps::{HashMap, Map};
use hub_common::conntrack::{FlowEntry, FlowKey, direction, tcp_state};

use super::{NatError, Timeouts, maps::map_err};

/// The timeout of a forward entry's state.
pub fn timeout(timeouts: &Timeouts, state: u8) -> Duration {
    match state {
        tcp_state::SYN_SENT => timeouts.syn,
        tcp_state::ESTABLISHED => timeouts.established,
        _ => timeouts.closing,
    }
}

/// The keys to delete at monotonic time `now_ns`: expired forward entries with their reply
/// entries, and reply entries whose forward entry is gone (evicted by the LRU).
pub fn expired(entries: &[(FlowKey, FlowEntry)], timeouts: &Timeouts, now_ns: u64) -> Vec<FlowKey> {
    let forward: HashSet<FlowKey> = entries
        .iter()
        .filter(|(_, e)| e.direction == direction::FORWARD)
        .map(|(k, _)| *k)
        .collect();
    let mut doomed = Vec::new();
    for (key, entry) in entries {
        if entry.direction == direction::FORWARD {
            let idle = Duration::from_nanos(now_ns.saturating_sub(entry.last_seen_ns));
            if idle > timeout(timeouts, entry.state) {
                doomed.push(*key);
                doomed.push(entry.other);
            }
        } else if !forward.contains(&entry.other) {
            doomed.push(*key);
        }
    }
    doomed
}

/// Whether `key`'s entry, read again now, is still one to delete: an idle forward entry,
/// or a reply entry whose forward entry is gone or idle.
fn still_expired<T: std::borrow::Borrow<aya::maps::MapData>>(
    flows: &HashMap<T, FlowKey, FlowEntry>,
    key: &FlowKey,
    timeouts: &Timeouts,
    now_ns: u64,
) -> bool {
    let idle = |entry: &FlowEntry| {
        Duration::from_nanos(now_ns.saturating_sub(entry.last_seen_ns))
            > timeout(timeouts, entry.state)
    };
    match flows.get(key, 0) {
        Ok(entry) if entry.direction == direction::FORWARD => idle(&entry),
        Ok(entry) => flows
            .get(&entry.other, 0)
            .map_or(true, |forward| idle(&forward)),
        Err(_) => false,
    }
}

/// What one collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Flows removed (both entries).
    pub removed: usize,
    /// Flows of which the LRU had evicted one entry (found half-gone, removed now).
    pub evicted: usize,
}

/// Deletes expired flows from `NAT_FLOWS`.
pub fn collect(map: &mut Map, timeouts: &Timeouts) -> Result<Collected, NatError> {
    let mut flows: HashMap<_, FlowKey, FlowEntry> =
        HashMap::try_from(map).map_err(map_err("NAT_FLOWS"))?;
    let entries: Vec<(FlowKey, FlowEntry)> = flows.iter().filter_map(Result::ok).collect();
    let forward: HashSet<FlowKey> = entries
        .iter()
        .filter(|(_, e)| e.direction == direction::FORWARD)
        .map(|(k, _)| *k)
        .collect();
    let present: HashSet<FlowKey> = entries.iter().map(|(k, _)| *k).collect();
    let evicted = entries
        .iter()
        .filter(|(_, e)| !present.contains(&e.other))
        .count();
    let now = monotonic_ns();
    let doomed = expired(&entries, timeouts, now);
    let mut removed = 0;
    for key in &doomed {
        // The dataplane runs on while this collects: the snapshot may have caught a new
        // flow's reply entry without its forward entry, or an idle flow that a SYN has
        // revived since. Only what is still expired now goes.
        if !still_expired(&flows, key, timeouts, now) {
            continue;
        }
        // Gone already (evicted, or removed by the kernel): nothing to do.
        if flows.remove(key).is_ok() && forward.contains(key) {
            removed += 1;
        }
    }
    tracing::debug!(
        removed,
        evicted,
        entries = doomed.len(),
        "conntrack garbage collected"
    );
    Ok(Collected { removed, evicted })
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec.unsigned_abs() * 1_000_000_000 + ts.tv_nsec.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hub_common::conntrack::{FlowEntry, FlowKey, direction, tcp_state};

    use super::expired;
    use crate::nat::Timeouts;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            sport: port,
            ..FlowKey::default()
        }
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            syn: Duration::from_secs(1),
            established: Duration::from_secs(100),
            closing: Duration::from_secs(10),
        }
    }

    #[test]
    fn expires_by_state_and_takes_the_reply_entry_along() {
        let now = 1_000 * 1_000_000_000;
        let fwd = |port, state, idle_s: u64, other| {
            let entry = FlowEntry {
                direction: direction::FORWARD,
                state,
                last_seen_ns: now - idle_s * 1_000_000_000,
                other: key(other),
                ..FlowEntry::default()
            };
            (key(port), entry)
        };
        let reply = |port, other| {
            (
                key(port),
                FlowEntry {
                    direction: direction::REPLY,
                    other: key(other),
                    ..FlowEntry::default()
                },
            )
        };
        let entries = [
            fwd(1, tcp_state::SYN_SENT, 2, 101), // expired (syn 1 s)
            reply(101, 1),
            fwd(2, tcp_state::ESTABLISHED, 50, 102), // alive
            reply(102, 2),
            fwd(3, tcp_state::CLOSING, 11, 103), // expired (closing 10 s)
            reply(103, 3),
            reply(104, 4), // orphan
        ];
        let mut doomed = expired(&entries, &timeouts(), now);
        doomed.sort_by_key(|k| k.sport);
        let ports: Vec<u16> = doomed.iter().map(|k| k.sport).collect();
        assert_eq!(ports, [1, 3, 101, 103, 104]);
    }
}
