//! Flows: creating them on the first SYN (backend choice, SNAT port), finding them again,
//! and following their TCP state and timings.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::LruHashMap,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    macros::btf_map,
};
use hub_common::{
    conntrack::{FlowEntry, FlowKey, direction, fin, tcp_state},
    headers::{IPPROTO_TCP, tcp_flags},
    service::{MAX_BACKENDS, ServiceEntry},
    settings::NatSettings,
};

use crate::stats::{Histogram, Reason, count, record};

/// Both directions of every flow. The daemon sizes it (`max_flows` * 2) at load time; LRU
/// so a flood of SYNs evicts the oldest flows instead of failing new ones.
#[btf_map]
pub static NAT_FLOWS: LruHashMap<FlowKey, FlowEntry, 131_072> = LruHashMap::new();

/// SNAT ports tried (the peer's own, then random ones) before giving up on a new flow.
const PORT_TRIES: u32 = 8;

/// `bpf_map_update_elem`'s answer when `BPF_NOEXIST` finds the key taken.
const EEXIST: i32 = 17;

/// A peer's SYN without ACK: the only packet that may open a flow.
#[inline(always)]
fn is_opening(flags: u8) -> bool {
    flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN
}

/// The forward entry of a peer's packet, if its flow exists. A SYN on a closed flow (the
/// peer reusing its port) starts it over with the same translation.
#[inline(always)]
pub fn existing(key: FlowKey, flags: u8) -> Option<*mut FlowEntry> {
    let entry = NAT_FLOWS.get_ptr_mut(key)?;
    // SAFETY: a map value pointer, valid for this program run.
    let flow = unsafe { &mut *entry };
    if is_opening(flags) && flow.state >= tcp_state::CLOSING {
        flow.state = tcp_state::SYN_SENT;
        flow.fin = 0;
        flow.awaiting_response = 0;
        flow.syn_ns = now();
    }
    Some(entry)
}

/// Creates the flow a peer's SYN opens and returns its forward entry.
#[inline(always)]
pub fn create(
    key: &FlowKey,
    service: &ServiceEntry,
    settings: &NatSettings,
    flags: u8,
) -> Result<*mut FlowEntry, Reason> {
    if !is_opening(flags) {
        return Err(Reason::NoFlow);
    }
    insert(key, service, settings)?;
    NAT_FLOWS.get_ptr_mut(key).ok_or(Reason::Error)
}

/// Picks a backend and a free SNAT port, and inserts both entries of a new flow.
#[inline(always)]
fn insert(key: &FlowKey, service: &ServiceEntry, settings: &NatSettings) -> Result<(), Reason> {
    let count_backends = service.count.min(MAX_BACKENDS as u32);
    if count_backends == 0 {
        return Err(Reason::NoBackend);
    }
    // Range reduction by multiply and shift, not `%`: the verifier follows the bounds of
    // a product of bounded values, not those of a remainder.
    // Fibonacci hashing mixes the peer's address and port into the top 16 bits.
    let spread = (key.saddr ^ key.daddr ^ u32::from(key.sport)).wrapping_mul(0x9e37_79b1) >> 16;
    let backend = service
        .backends
        .get(((spread * count_backends) >> 16) as usize)
        .ok_or(Reason::NoBackend)?;

    let span = u32::from(settings.port_max.saturating_sub(settings.port_min)) + 1;
    let time = now();
    let mut reply_key = FlowKey {
        saddr: backend.addr,
        daddr: settings.egress_addr,
        sport: backend.port,
        dport: 0,
        proto: u32::from(IPPROTO_TCP),
    };
    // Zero the verifier-visible way: runs of literal zeros become `memset` calls, which the
    // dev-profile object leaves to `compiler_builtins` (built with debug checks aya cannot
    // link). An opaque zero keeps them plain stores.
    let zero = core::hint::black_box(0_u64);
    // One value on the stack for both entries: the BPF stack is 512 bytes.
    let mut entry = FlowEntry {
        rewrite: FlowKey {
            saddr: key.daddr,
            daddr: key.saddr,
            sport: key.dport,
            dport: key.sport,
            proto: u32::from(IPPROTO_TCP),
        },
        other: *key,
        direction: direction::REPLY,
        state: zero as u8,
        fin: zero as u8,
        awaiting_response: zero as u8,
        service: zero as u32,
        created_ns: time,
        last_seen_ns: time,
        syn_ns: zero,
        db_handshake_ns: zero,
        request_start_ns: zero,
        request_ns_last: zero,
        requests: zero,
    };
    // The peer's own port first when it is in the range (as the original MASQUERADE does),
    // then random ones. The insert is atomic (BPF_NOEXIST): two CPUs never get one port.
    let mut allocated = false;
    let mut port = u16::from_be(key.sport);
    for _ in 0..PORT_TRIES {
        if port >= settings.port_min && port <= settings.port_max {
            reply_key.dport = port.to_be();
            match NAT_FLOWS.insert(reply_key, entry, u64::from(BPF_NOEXIST)) {
                Ok(()) => {
                    allocated = true;
                    break;
                }
                Err(e) if e != -EEXIST => return Err(Reason::TableFull),
                Err(_) => {}
            }
        }
        // SAFETY: the helper has no preconditions.
        let random = unsafe { bpf_get_prandom_u32() };
        port = settings.port_min.wrapping_add((random % span) as u16);
    }
    if !allocated {
        return Err(Reason::NoPort);
    }

    entry.rewrite = FlowKey {
        saddr: settings.egress_addr,
        daddr: backend.addr,
        sport: reply_key.dport,
        dport: backend.port,
        proto: u32::from(IPPROTO_TCP),
    };
    entry.other = reply_key;
    entry.direction = direction::FORWARD;
    entry.state = tcp_state::SYN_SENT;
    entry.service = service.index;
    entry.syn_ns = time;
    if NAT_FLOWS
        .insert(key, entry, u64::from(BPF_NOEXIST))
        .is_err()
    {
        // Another CPU created the flow for a retransmitted SYN in the meantime: use it.
        let _ = NAT_FLOWS.remove(reply_key);
        return Ok(());
    }
    count(|c| c.new_flows += 1);
    Ok(())
}

/// Follows a peer -> database packet: FIN/RST, and the start of a request.
#[inline(always)]
pub fn on_forward(flow: &mut FlowEntry, flags: u8, payload: u32) {
    let time = now();
    flow.last_seen_ns = time;
    if flags & tcp_flags::RST != 0 {
        end(flow);
    } else if flags & tcp_flags::FIN != 0 {
        flow.fin |= fin::FROM_PEER;
        closing(flow);
    }
    if payload > 0 && flow.awaiting_response == 0 {
        flow.request_start_ns = time;
        flow.awaiting_response = 1;
    }
}

/// Follows a database -> peer packet: the handshake, FIN/RST, the first byte of an answer.
#[inline(always)]
pub fn on_reply(flow: &mut FlowEntry, flags: u8, payload: u32) {
    let time = now();
    flow.last_seen_ns = time;
    let syn_ack = tcp_flags::SYN | tcp_flags::ACK;
    if flags & syn_ack == syn_ack && flow.state == tcp_state::SYN_SENT {
        flow.state = tcp_state::ESTABLISHED;
        flow.db_handshake_ns = time.saturating_sub(flow.syn_ns);
        record(flow.service, Histogram::DbHandshake, flow.db_handshake_ns);
    }
    if flags & tcp_flags::RST != 0 {
        end(flow);
    } else if flags & tcp_flags::FIN != 0 {
        flow.fin |= fin::FROM_BACKEND;
        closing(flow);
    }
    if payload > 0 && flow.awaiting_response != 0 {
        flow.awaiting_response = 0;
        flow.request_ns_last = time.saturating_sub(flow.request_start_ns);
        flow.requests += 1;
        record(flow.service, Histogram::Request, flow.request_ns_last);
    }
}

/// A FIN went one way: closing; once both ways, the flow has ended.
#[inline(always)]
fn closing(flow: &mut FlowEntry) {
    if flow.fin == fin::FROM_PEER | fin::FROM_BACKEND {
        end(flow);
    } else if flow.state < tcp_state::CLOSING {
        flow.state = tcp_state::CLOSING;
    }
}

/// A RST, or FINs both ways: the flow has ended (counted once); the collector removes it
/// after the closing timeout, and a new SYN on the same port starts it over.
#[inline(always)]
fn end(flow: &mut FlowEntry) {
    if flow.state != tcp_state::CLOSED {
        flow.state = tcp_state::CLOSED;
        count(|c| c.ended_flows += 1);
    }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: the helper has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}
