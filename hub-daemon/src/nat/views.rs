//! Read-only views of the pinned maps, for the daemon's API and for `bpftool`-free
//! inspection whether the daemon runs or not.

use std::{net::SocketAddrV4, path::Path};

use aya::maps::{HashMap, PerCpuArray};
use hub_common::{
    conntrack::{FlowEntry, FlowKey, direction, tcp_state},
    service::{MAX_SERVICES, ServiceEntry, ServiceKey},
    stats::{NatCounters, ServiceHistogram},
};
use serde::Serialize;

use super::{
    NatError,
    gc::monotonic_ns,
    maps::{map_err, open, wire_socket},
};

/// What the NAT did with packets, summed over CPUs; drops by reason.
pub type Counters = NatCounters;

/// A source and destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tuple {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

/// One tracked flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowView {
    /// The peer (tunnel side) that opened the flow.
    pub peer: SocketAddrV4,
    /// As the peer sent it: peer -> VIP.
    pub original: Tuple,
    /// As it leaves towards the database: hub's egress address and port -> backend.
    pub translated: Tuple,
    /// `syn_sent`, `established`, `closing` or `closed`.
    pub state: &'static str,
    pub age_ns: u64,
    pub idle_ns: u64,
    /// SYN -> SYN-ACK through the hub to the database; `None` before the handshake.
    pub db_handshake_ns: Option<u64>,
    /// Request -> first byte of its answer, for the last answered request.
    pub request_ns_last: Option<u64>,
    pub requests: u64,
}

/// Log2 histograms of one service: bucket `i` counts durations in `[2^i, 2^(i+1))` ns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceHistograms {
    pub vip: SocketAddrV4,
    pub db_handshake: Vec<u64>,
    pub request: Vec<u64>,
}

pub fn read_counters(pin_dir: &Path) -> Result<Counters, NatError> {
    let map = open(pin_dir, "NAT_COUNTERS")?;
    let counters: PerCpuArray<_, NatCounters> =
        PerCpuArray::try_from(map).map_err(map_err("NAT_COUNTERS"))?;
    let per_cpu = counters.get(&0, 0).map_err(map_err("NAT_COUNTERS"))?;
    Ok(per_cpu
        .iter()
        .fold(NatCounters::default(), |sum, c| sum.merged(*c)))
}

pub fn read_flows(pin_dir: &Path) -> Result<Vec<FlowView>, NatError> {
    let map = open(pin_dir, "NAT_FLOWS")?;
    let flows: HashMap<_, FlowKey, FlowEntry> =
        HashMap::try_from(map).map_err(map_err("NAT_FLOWS"))?;
    let now = monotonic_ns();
    let mut views: Vec<FlowView> = flows
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, e)| e.direction == direction::FORWARD)
        .map(|(key, entry)| flow_view(&key, &entry, now))
        .collect();
    views.sort_by_key(|v| (v.peer.ip().octets(), v.peer.port()));
    Ok(views)
}

fn flow_view(key: &FlowKey, entry: &FlowEntry, now: u64) -> FlowView {
    let peer = wire_socket(key.saddr, key.sport);
    let nonzero = |ns: u64| (ns != 0).then_some(ns);
    FlowView {
        peer,
        original: Tuple {
            src: peer,
            dst: wire_socket(key.daddr, key.dport),
        },
        translated: Tuple {
            src: wire_socket(entry.rewrite.saddr, entry.rewrite.sport),
            dst: wire_socket(entry.rewrite.daddr, entry.rewrite.dport),
        },
        state: state_name(entry.state),
        age_ns: now.saturating_sub(entry.created_ns),
        idle_ns: now.saturating_sub(entry.last_seen_ns),
        db_handshake_ns: nonzero(entry.db_handshake_ns),
        request_ns_last: (entry.requests > 0).then_some(entry.request_ns_last),
        requests: entry.requests,
    }
}

pub fn state_name(state: u8) -> &'static str {
    match state {
        tcp_state::SYN_SENT => "syn_sent",
        tcp_state::ESTABLISHED => "established",
        tcp_state::CLOSING => "closing",
        tcp_state::CLOSED => "closed",
        _ => "unknown",
    }
}

pub fn read_histograms(pin_dir: &Path) -> Result<Vec<ServiceHistograms>, NatError> {
    let services = open(pin_dir, "NAT_SERVICES")?;
    let services: HashMap<_, ServiceKey, ServiceEntry> =
        HashMap::try_from(services).map_err(map_err("NAT_SERVICES"))?;
    let histograms = open(pin_dir, "NAT_HISTOGRAMS")?;
    let histograms: PerCpuArray<_, ServiceHistogram> =
        PerCpuArray::try_from(histograms).map_err(map_err("NAT_HISTOGRAMS"))?;
    let mut out = Vec::new();
    for (key, entry) in services.iter().filter_map(Result::ok) {
        if entry.index >= MAX_SERVICES {
            continue; // a VIP marker, not a service
        }
        let per_cpu = histograms
            .get(&entry.index, 0)
            .map_err(map_err("NAT_HISTOGRAMS"))?;
        let mut sum = ServiceHistogram::default();
        for cpu in per_cpu.iter() {
            for (s, v) in sum.db_handshake.iter_mut().zip(cpu.db_handshake) {
                *s += v;
            }
            for (s, v) in sum.request.iter_mut().zip(cpu.request) {
                *s += v;
            }
        }
        out.push(ServiceHistograms {
            vip: wire_socket(key.addr, key.port),
            db_handshake: sum.db_handshake.to_vec(),
            request: sum.request.to_vec(),
        });
    }
    out.sort_by_key(|h| (h.vip.ip().octets(), h.vip.port()));
    Ok(out)
}
