//! The NAT's two tcx programs and the maps the daemon fills.
//!
//! `eh_nat_fwd` runs at ingress of the tunnel: a peer's TCP segment to a VIP gets DNAT (VIP
//! -> backend) and SNAT (peer -> the hub's egress address and a port of its own), then is
//! redirected out of the egress interface. `eh_nat_reply` runs at ingress of the egress
//! interface: the database's answers get the reverse translation and are redirected into
//! the tunnel. Everything else passes untouched to the kernel.
//!
//! Sending on: the programs redirect (`bpf_redirect_neigh` towards Ethernet, `bpf_redirect`
//! into an L3 tun) instead of returning `TC_ACT_OK` for the kernel to forward. After SNAT
//! the source is the hub's own address, which the kernel's input path rejects as a martian
//! unless `accept_local` is set; redirecting also skips the routing and netfilter hooks, so
//! the hub needs neither `ip_forward` nor an `rp_filter` exception. Measured against each
//! other (`nat_perf::redirect_against_kernel_forwarding`: iperf3 over veth, 2 vCPUs), the
//! programs cost the same (0.5-0.6 µs per packet) and redirecting carries a little more
//! (17.0-17.8 against 14.6-17.2 Gbit/s over several runs). `NatSettings::kernel_forwarding` switches to `TC_ACT_OK` for that
//! measurement only.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    btf_maps::{Array, HashMap, LpmTrie, lpm_trie::Key},
    helpers::{bpf_redirect, bpf_redirect_neigh, bpf_skb_change_head},
    macros::{btf_map, classifier},
    programs::TcContext,
};
use hub_common::{
    conntrack::{FlowKey, direction},
    headers::{ETH_LEN, ETH_P_IP, EthHdr, IPPROTO_ICMP, IPPROTO_TCP, Ipv4Hdr, tcp_flags},
    service::{ServiceEntry, ServiceKey},
    settings::{NatSettings, link},
};

use crate::{
    conntrack::{self, NAT_FLOWS},
    icmp::IcmpError,
    mss,
    packet::{Segment, ipv4_offset, pull_headers, read_at},
    rewrite,
    stats::{Reason, count, count_drop},
};

/// Interfaces, SNAT address and ports, MSS: slot 0, written by the daemon.
#[btf_map]
pub static NAT_SETTINGS: Array<NatSettings, 1> = Array::new();

/// VIP:port -> backends. An entry with port 0 and protocol 0 marks an address as a VIP.
#[btf_map]
pub static NAT_SERVICES: HashMap<ServiceKey, ServiceEntry, 256> = HashMap::new();

/// Source ranges allowed to reach the VIPs (network byte order address, prefix length).
#[btf_map]
pub static NAT_PEERS: LpmTrie<[u8; 4], u8, 1024> = LpmTrie::new();

/// Peer -> VIP. Fails closed: a segment for a VIP that cannot be translated is dropped (and
/// counted), never sent on with the VIP in it.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the signature is the classifier's"
)]
pub fn eh_nat_fwd(ctx: TcContext) -> i32 {
    try_nat_fwd(&ctx).unwrap_or_else(shot)
}

/// Database -> peer. Fails closed for segments of a known flow; unknown traffic passes.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the signature is the classifier's"
)]
pub fn eh_nat_reply(ctx: TcContext) -> i32 {
    try_nat_reply(&ctx).unwrap_or_else(shot)
}

#[inline(always)]
fn shot(reason: Reason) -> i32 {
    count_drop(reason);
    TC_ACT_SHOT
}

#[inline(always)]
fn pass() -> i32 {
    count(|c| c.passed += 1);
    TC_ACT_OK
}

#[inline(always)]
fn link_len(iface_link: u32) -> usize {
    if iface_link == link::ETHERNET {
        ETH_LEN
    } else {
        0
    }
}

#[inline(always)]
fn try_nat_fwd(ctx: &TcContext) -> Result<i32, Reason> {
    let Some(settings) = NAT_SETTINGS.get(0).copied().filter(|s| s.enabled != 0) else {
        return Ok(TC_ACT_OK);
    };
    let Some(l3) = ipv4_offset(ctx, link_len(settings.tunnel.link))? else {
        return Ok(pass());
    };
    pull_headers(ctx, l3)?;
    let ip: Ipv4Hdr = read_at(ctx, l3)?;

    // Only VIPs are ours; everything else (e.g. peers talking to the hub) passes.
    let vip = ServiceKey {
        addr: ip.daddr,
        ..ServiceKey::default()
    };
    if NAT_SERVICES.get_ptr(vip).is_none() {
        return Ok(pass());
    }
    // The VIP is usually also the hub's own tunnel address (10.50.0.1 in the original):
    // what is not TCP (a ping, ICMP) is the hub's.
    let Some(seg) = Segment::parse(ctx, l3, ip)? else {
        return Ok(pass());
    };

    let key = FlowKey {
        saddr: ip.saddr,
        daddr: ip.daddr,
        sport: seg.tcp.source,
        dport: seg.tcp.dest,
        proto: u32::from(IPPROTO_TCP),
    };
    // Peer and service matter only for a new flow: an existing flow's key holds a peer that
    // passed this check, and `apply` removes flows whose backend went away.
    let flow = if let Some(flow) = conntrack::existing(key, seg.flags()) {
        flow
    } else {
        let service_key = ServiceKey {
            addr: ip.daddr,
            port: seg.tcp.dest,
            proto: IPPROTO_TCP,
            pad: 0,
        };
        // Another port of the VIP's address is the hub's own (its API, or the answers to
        // connections the hub opened): not ours to translate.
        let Some(service) = NAT_SERVICES.get_ptr(service_key) else {
            return Ok(pass());
        };
        if NAT_PEERS
            .get(&Key::new(32, ip.saddr.to_ne_bytes()))
            .is_none()
        {
            return Err(Reason::NotPeer);
        }
        if ip.ttl <= 1 {
            return Err(Reason::Ttl);
        }
        // SAFETY: a map value pointer, valid for this program run.
        conntrack::create(&key, unsafe { &*service }, &settings, seg.flags())?
    };
    // After the lookups: a TTL-1 packet to the hub's own ports is the hub's to answer.
    if ip.ttl <= 1 {
        return Err(Reason::Ttl);
    }
    // SAFETY: a map value pointer, valid for this program run.
    let flow = unsafe { &mut *flow };
    conntrack::on_forward(flow, seg.flags(), seg.payload);
    let to = flow.rewrite;
    rewrite::translate(ctx, &seg, &to)?;
    if settings.mss != 0 && seg.flags() & tcp_flags::SYN != 0 {
        mss::clamp(ctx, &seg, settings.mss)?;
    }
    count(|c| {
        c.forwarded += 1;
        c.forwarded_bytes += u64::from(ctx.len());
    });

    if settings.kernel_forwarding != 0 {
        return Ok(TC_ACT_OK);
    }
    // Towards the database, always Ethernet: an L3 tunnel's packet needs a link header
    // first (`bpf_redirect_neigh` fills in the addresses from the neighbour table).
    if settings.tunnel.link == link::L3 {
        add_link_header(ctx)?;
    }
    // SAFETY: the helper only reads its arguments; no neighbour parameters are given.
    Ok(unsafe { bpf_redirect_neigh(settings.egress.ifindex, core::ptr::null_mut(), 0, 0) } as i32)
}

#[inline(always)]
fn try_nat_reply(ctx: &TcContext) -> Result<i32, Reason> {
    let Some(settings) = NAT_SETTINGS.get(0).copied().filter(|s| s.enabled != 0) else {
        return Ok(TC_ACT_OK);
    };
    let Some(l3) = ipv4_offset(ctx, link_len(settings.egress.link))? else {
        return Ok(pass());
    };
    pull_headers(ctx, l3)?;
    let ip: Ipv4Hdr = read_at(ctx, l3)?;
    if ip.daddr != settings.egress_addr {
        return Ok(pass());
    }
    if ip.protocol == IPPROTO_ICMP {
        let Some(error) = IcmpError::parse(ctx, l3, &ip)? else {
            return Ok(pass());
        };
        error.translate(ctx, l3, &ip)?;
        return Ok(to_tunnel(&settings));
    }
    if ip.protocol != IPPROTO_TCP {
        return Ok(pass());
    }
    // The hub's own connections look the same until the flow lookup: only then is it ours.
    let Ok(Some(seg)) = Segment::parse(ctx, l3, ip) else {
        return Ok(pass());
    };
    let key = FlowKey {
        saddr: ip.saddr,
        daddr: ip.daddr,
        sport: seg.tcp.source,
        dport: seg.tcp.dest,
        proto: u32::from(IPPROTO_TCP),
    };
    let Some(entry) = NAT_FLOWS.get_ptr(key) else {
        return Ok(pass());
    };
    // SAFETY: a map value pointer, valid for this run; copied out at once.
    let entry = unsafe { *entry };
    if entry.direction != direction::REPLY {
        return Ok(pass());
    }
    if ip.ttl <= 1 {
        return Err(Reason::Ttl);
    }
    if let Some(flow) = NAT_FLOWS.get_ptr_mut(entry.other) {
        // SAFETY: a map value pointer, valid for this program run.
        conntrack::on_reply(unsafe { &mut *flow }, seg.flags(), seg.payload);
    }
    rewrite::translate(ctx, &seg, &entry.rewrite)?;
    if settings.mss != 0 && seg.flags() & tcp_flags::SYN != 0 {
        mss::clamp(ctx, &seg, settings.mss)?;
    }
    count(|c| {
        c.replied += 1;
        c.replied_bytes += u64::from(ctx.len());
    });

    if settings.kernel_forwarding != 0 {
        return Ok(TC_ACT_OK);
    }
    Ok(to_tunnel(&settings))
}

/// Redirects a translated packet into the tunnel.
#[inline(always)]
fn to_tunnel(settings: &NatSettings) -> i32 {
    if settings.tunnel.link == link::L3 {
        // The kernel strips the Ethernet header when redirecting to a device without one.
        // SAFETY: the helper only reads its arguments.
        unsafe { bpf_redirect(settings.tunnel.ifindex, 0) as i32 }
    } else {
        // SAFETY: the helper only reads its arguments; no neighbour parameters are given.
        unsafe { bpf_redirect_neigh(settings.tunnel.ifindex, core::ptr::null_mut(), 0, 0) as i32 }
    }
}

/// Prepends an Ethernet header (zero addresses, IPv4) to a packet from an L3 device, as
/// `bpf_redirect_neigh` expects one.
#[inline(always)]
fn add_link_header(ctx: &TcContext) -> Result<(), Reason> {
    // SAFETY: `skb` is the context pointer the kernel passed to this program.
    let grown = unsafe { bpf_skb_change_head(ctx.skb.skb, ETH_LEN as u32, 0) };
    if grown != 0 {
        return Err(Reason::Error);
    }
    let eth = EthHdr {
        ether_type: ETH_P_IP.to_be(),
        ..EthHdr::default()
    };
    ctx.store(0, &eth, 0).map_err(|_| Reason::Error)
}
