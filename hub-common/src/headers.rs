//! Minimal on-the-wire headers (Ethernet II, IPv4, TCP) as `#[repr(C)]` structs.
//!
//! Multi-byte fields hold network byte order exactly as on the wire. Packet memory is not
//! aligned (an IPv4 header after Ethernet starts at offset 14), so read fields through
//! `core::ptr::read_unaligned`, or use the byte offsets below with skb helpers. Defined here
//! rather than taken from `network-types` so that host tests craft packets with the very same
//! layout the kernel programs parse.

use core::mem::{offset_of, size_of};

/// `EtherType` of IPv4, host order.
pub const ETH_P_IP: u16 = 0x0800;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;

/// Ethernet II header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// Network byte order.
    pub ether_type: u16,
}

/// IPv4 header without options.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ipv4Hdr {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    /// Flags (3 high bits) and fragment offset in 8-byte units.
    pub frag_off: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub check: u16,
    pub saddr: u32,
    pub daddr: u32,
}

/// TCP header without options.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpHdr {
    pub source: u16,
    pub dest: u16,
    pub seq: u32,
    pub ack_seq: u32,
    /// Data offset in 32-bit words (high nibble).
    pub doff_res: u8,
    pub flags: u8,
    pub window: u16,
    pub check: u16,
    pub urg_ptr: u16,
}

/// ICMP header; for errors, the offending packet's IPv4 header and first 8 bytes follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpHdr {
    pub kind: u8,
    pub code: u8,
    pub check: u16,
    /// Unused, or the next-hop MTU (fragmentation needed), or a pointer.
    pub rest: u32,
}

/// ICMP types the NAT translates.
pub mod icmp_type {
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const TIME_EXCEEDED: u8 = 11;
}

const _: () = assert!(size_of::<EthHdr>() == 14);
const _: () = assert!(size_of::<IcmpHdr>() == 8);
const _: () = assert!(size_of::<Ipv4Hdr>() == 20);
const _: () = assert!(size_of::<TcpHdr>() == 20);

/// Length of an Ethernet II header.
pub const ETH_LEN: usize = size_of::<EthHdr>();
/// Length of an IPv4 header without options.
pub const IPV4_LEN: usize = size_of::<Ipv4Hdr>();
/// Length of an ICMP header.
pub const ICMP_LEN: usize = size_of::<IcmpHdr>();
/// Length of a TCP header without options.
pub const TCP_LEN: usize = size_of::<TcpHdr>();
/// Longest TCP header (data offset 15 words).
pub const TCP_MAX_LEN: usize = 60;

/// `version_ihl` of an IPv4 header without options.
pub const IPV4_VERSION_IHL: u8 = 0x45;
/// "More fragments" flag and the fragment offset bits, host order.
pub const IPV4_FRAG_MASK: u16 = 0x3fff;

/// Byte offsets of the fields the NAT rewrites, from the start of their header.
pub mod offset {
    use core::mem::offset_of;

    use super::{Ipv4Hdr, TcpHdr};

    pub const IP_TTL: usize = offset_of!(Ipv4Hdr, ttl);
    pub const IP_CHECK: usize = offset_of!(Ipv4Hdr, check);
    pub const IP_SADDR: usize = offset_of!(Ipv4Hdr, saddr);
    pub const IP_DADDR: usize = offset_of!(Ipv4Hdr, daddr);
    pub const TCP_SOURCE: usize = offset_of!(TcpHdr, source);
    pub const TCP_DEST: usize = offset_of!(TcpHdr, dest);
    pub const TCP_FLAGS: usize = offset_of!(TcpHdr, flags);
    pub const TCP_CHECK: usize = offset_of!(TcpHdr, check);
    pub const ICMP_CHECK: usize = offset_of!(super::IcmpHdr, check);
}

/// TCP flag bits (the `flags` byte).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// TCP option kinds and the MSS option's length.
pub mod tcp_option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const MSS_LEN: u8 = 4;
}

// The TTL and protocol share one 16-bit word: checksum updates of the TTL use that word.
const _: () = assert!(offset_of!(Ipv4Hdr, ttl) % 2 == 0);
