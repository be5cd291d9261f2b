//! ICMP errors about translated flows, arriving from the database side: "destination
//! unreachable" (with "fragmentation needed", the path MTU signal) and "time exceeded".
//!
//! The error quotes the packet as the database side saw it (hub's egress address and SNAT
//! port -> backend). It is sent on to the peer with the quote translated back (peer ->
//! VIP), so the peer's stack finds its own connection; an error from the backend itself
//! also gets the VIP as its source. Checksums (outer IPv4, ICMP, quoted IPv4) are updated
//! with the RFC 1624 arithmetic of `hub_common::checksum`: ICMP is never offloaded. The
//! quoted TCP checksum is left alone (receivers do not check it; it may not even be quoted).

use aya_ebpf::programs::TcContext;
use hub_common::{
    checksum::{apply_diff, diff16, diff32},
    conntrack::{FlowEntry, FlowKey, direction},
    headers::{
        ICMP_LEN, IPPROTO_TCP, IPV4_FRAG_MASK, IPV4_LEN, IPV4_VERSION_IHL, IcmpHdr, Ipv4Hdr,
        icmp_type, offset,
    },
};

use crate::{
    conntrack::NAT_FLOWS,
    packet::read_at,
    rewrite::IpTail,
    stats::{Reason, count},
};

/// Bytes of the quoted TCP header the NAT reads: the ports.
const QUOTED_PORTS: usize = 4;

/// An ICMP error about one of our flows, and where its parts are.
pub struct IcmpError {
    l4: usize,
    icmp: IcmpHdr,
    inner: Ipv4Hdr,
    inner_ports: [u16; 2],
    entry: FlowEntry,
}

impl IcmpError {
    /// The error in the packet at `l3`, if it is one about a flow of ours.
    #[inline(always)]
    pub fn parse(ctx: &TcContext, l3: usize, ip: &Ipv4Hdr) -> Result<Option<Self>, Reason> {
        if ip.version_ihl != IPV4_VERSION_IHL || u16::from_be(ip.frag_off) & IPV4_FRAG_MASK != 0 {
            return Ok(None);
        }
        let l4 = l3 + IPV4_LEN;
        let want = (l4 + ICMP_LEN + IPV4_LEN + QUOTED_PORTS).min(ctx.len() as usize);
        if ctx.data() + want > ctx.data_end() {
            ctx.pull_data(want as u32).map_err(|_| Reason::Error)?;
        }
        let icmp: IcmpHdr = read_at(ctx, l4)?;
        if icmp.kind != icmp_type::DEST_UNREACHABLE && icmp.kind != icmp_type::TIME_EXCEEDED {
            return Ok(None);
        }
        let inner: Ipv4Hdr = read_at(ctx, l4 + ICMP_LEN)?;
        if inner.version_ihl != IPV4_VERSION_IHL || inner.protocol != IPPROTO_TCP {
            return Ok(None);
        }
        let inner_ports: [u16; 2] = read_at(ctx, l4 + ICMP_LEN + IPV4_LEN)?;
        // The quoted packet went hub -> backend; its answers are keyed backend -> hub.
        let key = FlowKey {
            saddr: inner.daddr,
            daddr: inner.saddr,
            sport: inner_ports[1],
            dport: inner_ports[0],
            proto: u32::from(IPPROTO_TCP),
        };
        let Some(entry) = NAT_FLOWS.get_ptr(key) else {
            return Ok(None);
        };
        // SAFETY: a map value pointer, valid for this run; copied out at once.
        let entry = unsafe { *entry };
        if entry.direction != direction::REPLY {
            return Ok(None);
        }
        Ok(Some(Self {
            l4,
            icmp,
            inner,
            inner_ports,
            entry,
        }))
    }

    /// Rewrites outer and quoted headers towards the peer.
    #[inline(always)]
    pub fn translate(&self, ctx: &TcContext, l3: usize, ip: &Ipv4Hdr) -> Result<(), Reason> {
        if ip.ttl <= 1 {
            return Err(Reason::Ttl);
        }
        // `rewrite` of a reply entry: VIP:port -> peer:port.
        let to = &self.entry.rewrite;
        let inner = &self.inner;

        // Quoted packet: peer -> VIP, as the peer sent it.
        let inner_addrs = diff32(diff32(0, inner.saddr, to.daddr), inner.daddr, to.saddr);
        let inner_check = apply_diff(inner.check, inner_addrs);
        let new_ports = [to.dport, to.sport];
        let mut icmp = diff16(inner_addrs, inner.check, inner_check);
        icmp = diff16(icmp, self.inner_ports[0], new_ports[0]);
        icmp = diff16(icmp, self.inner_ports[1], new_ports[1]);
        let icmp_check = apply_diff(self.icmp.check, icmp);

        // Outer header: to the peer; from the VIP when the backend itself complains.
        let saddr = if ip.saddr == inner.daddr {
            to.saddr
        } else {
            ip.saddr
        };
        let ttl_word = u16::from_ne_bytes([ip.ttl, ip.protocol]);
        let new_ttl_word = u16::from_ne_bytes([ip.ttl - 1, ip.protocol]);
        let outer = diff32(diff32(0, ip.saddr, saddr), ip.daddr, to.daddr);
        let check = apply_diff(ip.check, diff16(outer, ttl_word, new_ttl_word));

        let quoted = self.l4 + ICMP_LEN;
        let stores = [
            ctx.store(
                l3 + offset::IP_TTL,
                &IpTail {
                    ttl_protocol: new_ttl_word,
                    check,
                    saddr,
                    daddr: to.daddr,
                },
                0,
            ),
            ctx.store(self.l4 + offset::ICMP_CHECK, &icmp_check, 0),
            ctx.store(
                quoted + offset::IP_TTL,
                &IpTail {
                    ttl_protocol: u16::from_ne_bytes([inner.ttl, inner.protocol]),
                    check: inner_check,
                    saddr: to.daddr,
                    daddr: to.saddr,
                },
                0,
            ),
            ctx.store(quoted + IPV4_LEN, &new_ports, 0),
        ];
        if stores.iter().any(Result::is_err) {
            return Err(Reason::Error);
        }
        count(|c| c.icmp_translated += 1);
        Ok(())
    }
}
