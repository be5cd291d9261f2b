//! Connection tracking entries of the NAT: one key per direction of a flow.
//!
//! A flow has two entries in `NAT_FLOWS`: the *forward* one, keyed by the tuple the peer
//! sent (peer -> VIP), and the *reply* one, keyed by the tuple the database answers with
//! (backend -> hub's egress address and the allocated port). Each entry says how to rewrite
//! a packet of its direction and names the other entry's key. The forward entry also holds
//! the TCP state and the timings of the flow.

/// One direction of a flow, as seen on the wire. Addresses and ports in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    /// IP protocol number; 32 bits wide so the key has no padding to zero.
    pub proto: u32,
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 16);

/// Which way an entry's packets travel.
pub mod direction {
    /// Peer -> database (entered on the tunnel).
    pub const FORWARD: u8 = 0;
    /// Database -> peer (entered on the egress interface).
    pub const REPLY: u8 = 1;
}

/// Simplified TCP states, enough to pick a timeout.
pub mod tcp_state {
    /// The peer's SYN went through; no SYN-ACK yet.
    pub const SYN_SENT: u8 = 1;
    /// The database answered the SYN.
    pub const ESTABLISHED: u8 = 2;
    /// A FIN went one way or both.
    pub const CLOSING: u8 = 3;
    /// A RST went through.
    pub const CLOSED: u8 = 4;
}

/// `FlowEntry::fin` bits: which side sent a FIN.
pub mod fin {
    pub const FROM_PEER: u8 = 1;
    pub const FROM_BACKEND: u8 = 2;
}

/// How to rewrite a packet of one direction, and the flow's state and timings.
///
/// State and timings are only maintained in the forward entry. Times are
/// `bpf_ktime_get_ns` (`CLOCK_MONOTONIC`) nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntry {
    /// The tuple to write into the packet (network byte order).
    pub rewrite: FlowKey,
    /// The key of the other direction's entry.
    pub other: FlowKey,
    /// `direction::FORWARD` or `direction::REPLY`.
    pub direction: u8,
    /// One of `tcp_state`.
    pub state: u8,
    /// `fin` bits seen so far.
    pub fin: u8,
    /// 1 while a request from the peer waits for the first byte of its answer.
    pub awaiting_response: u8,
    /// Index of the service (histogram slot).
    pub service: u32,
    pub created_ns: u64,
    pub last_seen_ns: u64,
    /// When the first SYN was forwarded.
    pub syn_ns: u64,
    /// SYN forwarded -> SYN-ACK from the database; 0 until seen.
    pub db_handshake_ns: u64,
    /// When the pending request's first packet was forwarded.
    pub request_start_ns: u64,
    /// Request's first packet -> answer's first packet, for the last answered request.
    pub request_ns_last: u64,
    pub requests: u64,
}

const _: () = assert!(core::mem::size_of::<FlowEntry>() == 96);

// SAFETY: `FlowKey` is `repr(C)` plain integers without padding (size assert); every bit
// pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for FlowKey {}

// SAFETY: `FlowEntry` is `repr(C)` of `FlowKey`s and integers, laid out without implicit
// padding (checked by the size assert); every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for FlowEntry {}
