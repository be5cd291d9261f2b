//! The one door to packet memory, and parsing the IPv4 + TCP headers the NAT works on.

use core::mem::size_of;

use aya_ebpf::programs::TcContext;
use hub_common::headers::{
    ETH_LEN, ETH_P_IP, EthHdr, IPPROTO_TCP, IPV4_FRAG_MASK, IPV4_LEN, IPV4_VERSION_IHL, Ipv4Hdr,
    TCP_LEN, TcpHdr,
};

use crate::stats::Reason;

/// A pointer to a `T` at `offset` from the start of the packet's linear data, or
/// `Malformed` when the packet is too short. Read through `core::ptr::read_unaligned`.
#[inline(always)]
pub fn ptr_at<T>(ctx: &TcContext, offset: usize) -> Result<*const T, Reason> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(Reason::Malformed);
    }
    Ok((start + offset) as *const T)
}

/// Reads a `T` at `offset` (bounds-checked, unaligned).
#[inline(always)]
pub fn read_at<T: Copy>(ctx: &TcContext, offset: usize) -> Result<T, Reason> {
    let ptr = ptr_at::<T>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that `size_of::<T>()` bytes at `ptr` lie inside the packet;
    // packet memory has no alignment guarantee, hence the unaligned read.
    Ok(unsafe { core::ptr::read_unaligned(ptr) })
}

/// Offset of the IPv4 header, or `None` when the packet is not IPv4.
///
/// `link_len` is the interface's link-layer header length: 0 on an L3 tunnel, whose
/// packets start with the IP header.
#[inline(always)]
pub fn ipv4_offset(ctx: &TcContext, link_len: usize) -> Result<Option<usize>, Reason> {
    if link_len == 0 {
        // SAFETY: `skb` is the context pointer the kernel passed to this program.
        let protocol = unsafe { (*ctx.skb.skb).protocol };
        return Ok((protocol == u32::from(ETH_P_IP.to_be())).then_some(0));
    }
    let eth: EthHdr = read_at(ctx, 0)?;
    Ok((eth.ether_type == ETH_P_IP.to_be()).then_some(ETH_LEN))
}

/// Makes the IPv4 and TCP headers (without TCP options) linear, so `ptr_at` reaches them.
///
/// Only pulls when they are not already: pulling copies payload out of the fragments of a
/// GSO packet, and TCP options (read only for MSS clamping) go through `bpf_skb_load_bytes`,
/// which reads fragments too.
#[inline(always)]
pub fn pull_headers(ctx: &TcContext, l3: usize) -> Result<(), Reason> {
    let want = (l3 + IPV4_LEN + TCP_LEN).min(ctx.len() as usize);
    if ctx.data() + want > ctx.data_end() {
        ctx.pull_data(want as u32).map_err(|_| Reason::Error)?;
    }
    Ok(())
}

/// A TCP/IPv4 packet the NAT may translate.
pub struct Segment {
    pub l3: usize,
    pub l4: usize,
    pub ip: Ipv4Hdr,
    pub tcp: TcpHdr,
    /// TCP payload length.
    pub payload: u32,
}

impl Segment {
    /// Checks what the NAT relies on: no IPv4 options, not a fragment, sane lengths. Not
    /// TCP: `None`.
    #[inline(always)]
    pub fn parse(ctx: &TcContext, l3: usize, ip: Ipv4Hdr) -> Result<Option<Self>, Reason> {
        let (version, ihl) = (ip.version_ihl >> 4, ip.version_ihl & 0xf);
        if version != IPV4_VERSION_IHL >> 4 || ihl < IPV4_VERSION_IHL & 0xf {
            return Err(Reason::Malformed);
        }
        if ip.version_ihl != IPV4_VERSION_IHL {
            return Err(Reason::Malformed); // options: never sent by the stacks edgehub serves
        }
        if u16::from_be(ip.frag_off) & IPV4_FRAG_MASK != 0 {
            return Err(Reason::Fragment);
        }
        if ip.protocol != IPPROTO_TCP {
            return Ok(None);
        }
        let l4 = l3 + IPV4_LEN;
        let tcp: TcpHdr = read_at(ctx, l4)?;
        let tcp_len = u32::from(tcp.doff_res >> 4) * 4;
        let ip_len = u32::from(u16::from_be(ip.tot_len));
        if tcp_len < TCP_LEN as u32 || ip_len < IPV4_LEN as u32 + tcp_len {
            return Err(Reason::Malformed);
        }
        if ip_len as usize + l3 > ctx.len() as usize {
            return Err(Reason::Malformed);
        }
        Ok(Some(Self {
            l3,
            l4,
            ip,
            tcp,
            payload: ip_len - IPV4_LEN as u32 - tcp_len,
        }))
    }

    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.tcp.flags
    }
}
