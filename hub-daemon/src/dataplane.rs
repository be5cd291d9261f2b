//! The bridge from edgehub's configuration to the eBPF NAT's.

use std::{io, net::Ipv4Addr};

use crate::{
    config::{Config, EgressAddress},
    nat::{NatConfig, Service, Timeouts},
    netlink::{Netlink, NetlinkError},
};

/// The NAT's configuration derived from edgehub's; `egress_addr` is the resolved
/// `nat.egress_address`.
pub fn nat_config(config: &Config, egress_addr: Ipv4Addr) -> NatConfig {
    let nat = &config.nat;
    NatConfig {
        tunnel_iface: config.interface.name.clone(),
        egress_iface: nat.egress_interface.clone(),
        egress_addr,
        peer_ranges: config.peer_ranges(),
        services: nat
            .services
            .iter()
            .map(|s| Service {
                vip: s.vip,
                backends: s.backends.clone(),
            })
            .collect(),
        timeouts: Timeouts {
            syn: nat.timeouts.syn,
            established: nat.timeouts.established,
            closing: nat.timeouts.closing,
        },
        max_flows: nat.max_flows,
        port_range: nat.port_range.clone(),
        mss: config.mss(),
        pin_dir: config.pin_dir.clone(),
    }
}

/// `nat.egress_address`, looking up the egress interface's first IPv4 address for `auto`.
pub async fn egress_address(config: &Config, netlink: &Netlink) -> Result<Ipv4Addr, NetlinkError> {
    let iface = &config.nat.egress_interface;
    match config.nat.egress_address {
        EgressAddress::Fixed(addr) => Ok(addr),
        EgressAddress::Auto => {
            let no_address = |errno| NetlinkError {
                call: "RTM_GETADDR",
                target: iface.clone(),
                source: io::Error::from_raw_os_error(errno),
            };
            let link = netlink
                .link(iface)
                .await?
                .ok_or_else(|| no_address(libc::ENODEV))?;
            let addresses = netlink.addresses(link.index).await?;
            addresses
                .first()
                .map(ipnet::Ipv4Net::addr)
                .ok_or_else(|| no_address(libc::EADDRNOTAVAIL))
        }
    }
}
