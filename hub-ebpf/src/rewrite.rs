//! Writing a translated tuple into a packet, with its checksums and TTL.
//!
//! The TCP checksum goes through `bpf_l4_csum_replace`, which handles `CHECKSUM_PARTIAL`
//! skbs (veth and tun hand those over: the field then holds only the pseudo-header sum, and
//! only address changes may touch it). The IPv4 header checksum is always complete, so it is
//! updated with the RFC 1624 arithmetic of `hub_common::checksum` and stored once.

use aya_ebpf::{bindings::BPF_F_PSEUDO_HDR, programs::TcContext};
use hub_common::{
    checksum::{update16, update32},
    conntrack::FlowKey,
    headers::offset,
};

use crate::{packet::Segment, stats::Reason};

/// Size flags of `bpf_l4_csum_replace`: the changed field's width in bytes.
const FIELD_4: u64 = 4;
const FIELD_2: u64 = 2;

/// Rewrites addresses and ports of `seg` to `to` and decrements the TTL.
#[inline(always)]
pub fn translate(ctx: &TcContext, seg: &Segment, to: &FlowKey) -> Result<(), Reason> {
    let ip = &seg.ip;
    let tcp = &seg.tcp;
    let tcp_check = seg.l4 + offset::TCP_CHECK;
    let pseudo = u64::from(BPF_F_PSEUDO_HDR);

    // TCP checksum: addresses via the pseudo header, ports as plain data.
    csum4(ctx, tcp_check, ip.saddr, to.saddr, pseudo)?;
    csum4(ctx, tcp_check, ip.daddr, to.daddr, pseudo)?;
    csum2(ctx, tcp_check, tcp.source, to.sport)?;
    csum2(ctx, tcp_check, tcp.dest, to.dport)?;
    let ports = [to.sport, to.dport];
    ctx.store(seg.l4 + offset::TCP_SOURCE, &ports, 0)
        .map_err(|_| Reason::Error)?;

    // IPv4 header: addresses, TTL (sharing a word with the protocol), checksum.
    let ttl_word = u16::from_ne_bytes([ip.ttl, ip.protocol]);
    let new_ttl_word = u16::from_ne_bytes([ip.ttl - 1, ip.protocol]);
    let mut check = update32(ip.check, ip.saddr, to.saddr);
    check = update32(check, ip.daddr, to.daddr);
    check = update16(check, ttl_word, new_ttl_word);
    let addrs = [to.saddr, to.daddr];
    ctx.store(seg.l3 + offset::IP_SADDR, &addrs, 0)
        .map_err(|_| Reason::Error)?;
    ctx.store(seg.l3 + offset::IP_TTL, &new_ttl_word, 0)
        .map_err(|_| Reason::Error)?;
    ctx.store(seg.l3 + offset::IP_CHECK, &check, 0)
        .map_err(|_| Reason::Error)?;
    Ok(())
}

#[inline(always)]
fn csum4(ctx: &TcContext, at: usize, old: u32, new: u32, flags: u64) -> Result<(), Reason> {
    if old == new {
        return Ok(());
    }
    ctx.l4_csum_replace(at, u64::from(old), u64::from(new), flags | FIELD_4)
        .map_err(|_| Reason::Error)
}

#[inline(always)]
fn csum2(ctx: &TcContext, at: usize, old: u16, new: u16) -> Result<(), Reason> {
    if old == new {
        return Ok(());
    }
    ctx.l4_csum_replace(at, u64::from(old), u64::from(new), FIELD_2)
        .map_err(|_| Reason::Error)
}
