//! Counters and latency histograms: the NAT's only per-packet output (no logging).

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use hub_common::{
    service::MAX_SERVICES,
    stats::{NatCounters, ServiceHistogram, bucket},
};

/// What the NAT did, summed per CPU.
#[btf_map]
pub static NAT_COUNTERS: PerCpuArray<NatCounters, 1> = PerCpuArray::new();

/// Per-service log2 histograms of handshake and request times.
#[btf_map]
pub static NAT_HISTOGRAMS: PerCpuArray<ServiceHistogram, { MAX_SERVICES as usize }> =
    PerCpuArray::new();

/// Why a packet was dropped (or given up on).
#[derive(Clone, Copy)]
pub enum Reason {
    NotPeer,
    Malformed,
    Fragment,
    NoFlow,
    NoBackend,
    NoPort,
    TableFull,
    Ttl,
    Error,
}

/// Adds to this CPU's counters.
#[inline(always)]
pub fn count(update: impl FnOnce(&mut NatCounters)) {
    if let Some(counters) = NAT_COUNTERS.get_ptr_mut(0) {
        // SAFETY: a per-CPU array slot, valid for this run and written only by this CPU.
        update(unsafe { &mut *counters });
    }
}

/// Counts a drop under its reason.
#[inline(always)]
pub fn count_drop(reason: Reason) {
    count(|c| match reason {
        Reason::NotPeer => c.drop_not_peer += 1,
        Reason::Malformed => c.drop_malformed += 1,
        Reason::Fragment => c.drop_fragment += 1,
        Reason::NoFlow => c.drop_no_flow += 1,
        Reason::NoBackend => c.drop_no_backend += 1,
        Reason::NoPort => c.drop_no_port += 1,
        Reason::TableFull => c.drop_table_full += 1,
        Reason::Ttl => c.drop_ttl += 1,
        Reason::Error => c.drop_error += 1,
    });
}

/// Which histogram of a service.
#[derive(Clone, Copy)]
pub enum Histogram {
    DbHandshake,
    Request,
}

/// Records one duration in a service's histogram.
#[inline(always)]
pub fn record(service: u32, which: Histogram, ns: u64) {
    let Some(hist) = NAT_HISTOGRAMS.get_ptr_mut(service) else {
        return;
    };
    // SAFETY: a per-CPU array slot, valid for this run and written only by this CPU.
    let hist = unsafe { &mut *hist };
    let buckets = match which {
        Histogram::DbHandshake => &mut hist.db_handshake,
        Histogram::Request => &mut hist.request,
    };
    if let Some(slot) = buckets.get_mut(bucket(ns)) {
        *slot += 1;
    }
}
