//! NAT counters and latency histograms, per CPU; userspace sums the CPUs.

/// Log2 buckets of a histogram: bucket `i` counts values in `[2^i, 2^(i+1))` nanoseconds
/// (bucket 0 also holds 0), the last one everything above.
pub const HISTOGRAM_BUCKETS: usize = 40;

/// What the NAT did with packets. Drops carry their reason in the field name.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct NatCounters {
    /// Peer -> database packets translated and sent on.
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    /// Database -> peer packets translated and sent on.
    pub replied: u64,
    pub replied_bytes: u64,
    /// Flows created (first SYN).
    pub new_flows: u64,
    /// Flows ended by a RST or a FIN each way.
    pub ended_flows: u64,
    /// SYN and SYN-ACK MSS options lowered.
    pub mss_clamped: u64,
    /// ICMP errors about a flow translated back towards its peer.
    pub icmp_translated: u64,
    /// Packets not for a VIP:port (or not ours on the reply path), left to the kernel.
    pub passed: u64,
    /// Source outside the peer ranges (spoofed), to a VIP:port.
    pub drop_not_peer: u64,
    /// Truncated or inconsistent headers, or IPv4 options, to a VIP.
    pub drop_malformed: u64,
    /// IPv4 fragments to a VIP: dropped, not reassembled or translated.
    pub drop_fragment: u64,
    /// Non-SYN TCP to a VIP:port without a flow.
    pub drop_no_flow: u64,
    /// A service without backends.
    pub drop_no_backend: u64,
    /// No free SNAT port found: never a wrong mapping.
    pub drop_no_port: u64,
    /// The flow table refused a new entry.
    pub drop_table_full: u64,
    /// A helper (checksum, store, redirect) failed.
    pub drop_error: u64,
    /// TTL would reach zero.
    pub drop_ttl: u64,
}

const _: () = assert!(core::mem::size_of::<NatCounters>() == 18 * 8);

impl NatCounters {
    /// Adds another CPU's counters to these.
    #[must_use]
    pub const fn merged(self, o: Self) -> Self {
        Self {
            forwarded: self.forwarded.wrapping_add(o.forwarded),
            forwarded_bytes: self.forwarded_bytes.wrapping_add(o.forwarded_bytes),
            replied: self.replied.wrapping_add(o.replied),
            replied_bytes: self.replied_bytes.wrapping_add(o.replied_bytes),
            new_flows: self.new_flows.wrapping_add(o.new_flows),
            ended_flows: self.ended_flows.wrapping_add(o.ended_flows),
            mss_clamped: self.mss_clamped.wrapping_add(o.mss_clamped),
            icmp_translated: self.icmp_translated.wrapping_add(o.icmp_translated),
            passed: self.passed.wrapping_add(o.passed),
            drop_not_peer: self.drop_not_peer.wrapping_add(o.drop_not_peer),
            drop_malformed: self.drop_malformed.wrapping_add(o.drop_malformed),
            drop_fragment: self.drop_fragment.wrapping_add(o.drop_fragment),
            drop_no_flow: self.drop_no_flow.wrapping_add(o.drop_no_flow),
            drop_no_backend: self.drop_no_backend.wrapping_add(o.drop_no_backend),
            drop_no_port: self.drop_no_port.wrapping_add(o.drop_no_port),
            drop_table_full: self.drop_table_full.wrapping_add(o.drop_table_full),
            drop_error: self.drop_error.wrapping_add(o.drop_error),
            drop_ttl: self.drop_ttl.wrapping_add(o.drop_ttl),
        }
    }
}

/// Latency histograms of one service.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceHistogram {
    /// SYN forwarded -> SYN-ACK from the database.
    pub db_handshake: [u64; HISTOGRAM_BUCKETS],
    /// Request's first packet forwarded -> answer's first packet back.
    pub request: [u64; HISTOGRAM_BUCKETS],
}

impl Default for ServiceHistogram {
    fn default() -> Self {
        Self {
            db_handshake: [0; HISTOGRAM_BUCKETS],
            request: [0; HISTOGRAM_BUCKETS],
        }
    }
}

const _: () = assert!(core::mem::size_of::<ServiceHistogram>() == 2 * 8 * HISTOGRAM_BUCKETS);

/// The bucket of a value: floor(log2(ns)), capped at the last bucket.
#[must_use]
pub const fn bucket(ns: u64) -> usize {
    let log = if ns == 0 {
        0
    } else {
        63 - ns.leading_zeros() as usize
    };
    if log >= HISTOGRAM_BUCKETS {
        HISTOGRAM_BUCKETS - 1
    } else {
        log
    }
}

// SAFETY: `repr(C)` of u64 only; every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for NatCounters {}

// SAFETY: `repr(C)` of u64 arrays only; every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ServiceHistogram {}

#[cfg(test)]
mod tests {
    use super::{HISTOGRAM_BUCKETS, bucket};

    #[test]
    fn buckets_are_floor_log2_capped() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(1023), 9);
        assert_eq!(bucket(1024), 10);
        assert_eq!(bucket(u64::MAX), HISTOGRAM_BUCKETS - 1);
    }
}
