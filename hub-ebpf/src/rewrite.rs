//! Writing a translated tuple into a packet, with its checksums and TTL.
//!
//! The TCP checksum goes through `bpf_l4_csum_replace`, which handles `CHECKSUM_PARTIAL`
//! skbs (veth and tun hand those over: the field then holds only the pseudo-header sum, and
//! only address changes may touch it). It gets two precomputed RFC 1624 differences from
//! `hub_common::checksum`: the addresses (pseudo header) and the ports, one helper call each.
//! The IPv4 header checksum is always complete, so it is updated with the same arithmetic
//! and stored directly.

use aya_ebpf::{bindings::BPF_F_PSEUDO_HDR, programs::TcContext};
use hub_common::{
    checksum::{apply_diff, diff16, diff32},
    conntrack::FlowKey,
    headers::offset,
};

use crate::{packet::Segment, stats::Reason};

/// Rewrites addresses and ports of `seg` to `to` and decrements the TTL.
#[inline(always)]
pub fn translate(ctx: &TcContext, seg: &Segment, to: &FlowKey) -> Result<(), Reason> {
    let ip = &seg.ip;
    let tcp = &seg.tcp;
    let addresses = diff32(diff32(0, ip.saddr, to.saddr), ip.daddr, to.daddr);
    let ports = diff16(diff16(0, tcp.source, to.sport), tcp.dest, to.dport);

    // TCP: a zero field size makes the helper take the value as a difference.
    let tcp_check = seg.l4 + offset::TCP_CHECK;
    let pseudo = u64::from(BPF_F_PSEUDO_HDR);
    ctx.l4_csum_replace(tcp_check, 0, u64::from(addresses), pseudo)
        .map_err(|_| Reason::Error)?;
    ctx.l4_csum_replace(tcp_check, 0, u64::from(ports), 0)
        .map_err(|_| Reason::Error)?;
    let new_ports = [to.sport, to.dport];
    ctx.store(seg.l4 + offset::TCP_SOURCE, &new_ports, 0)
        .map_err(|_| Reason::Error)?;

    // IPv4: TTL (sharing a word with the protocol), addresses and checksum in one store.
    let ttl_word = u16::from_ne_bytes([ip.ttl, ip.protocol]);
    let new_ttl_word = u16::from_ne_bytes([ip.ttl - 1, ip.protocol]);
    let check = apply_diff(ip.check, diff16(addresses, ttl_word, new_ttl_word));
    let tail = IpTail {
        ttl_protocol: new_ttl_word,
        check,
        saddr: to.saddr,
        daddr: to.daddr,
    };
    ctx.store(seg.l3 + offset::IP_TTL, &tail, 0)
        .map_err(|_| Reason::Error)
}

/// The last 12 bytes of an IPv4 header without options: TTL through destination.
#[repr(C, packed)]
pub struct IpTail {
    pub ttl_protocol: u16,
    pub check: u16,
    pub saddr: u32,
    pub daddr: u32,
}

const _: () = assert!(offset::IP_CHECK == offset::IP_TTL + 2);
const _: () = assert!(offset::IP_SADDR == offset::IP_TTL + 4);
const _: () = assert!(offset::IP_DADDR == offset::IP_TTL + 8);
const _: () = assert!(size_of::<IpTail>() == 12);
