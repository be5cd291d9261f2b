//! rtnetlink requests on the hub's interfaces: links, addresses, MTU, routes.
//!
//! Each function asks the kernel what is there first and changes only what differs, so a
//! second run changes nothing. Routes edgehub adds carry `proto static` and the tunnel's
//! output interface, which is how it tells them from others'.

use std::{io, net::IpAddr, net::Ipv4Addr};

use futures_util::TryStreamExt as _;
use ipnet::Ipv4Net;
use rtnetlink::{
    Handle, LinkUnspec, LinkWireguard, RouteMessageBuilder,
    packet_route::{
        address::AddressAttribute,
        link::{LinkAttribute, LinkFlags, LinkMessage},
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope},
    },
};

/// A failed netlink request: which, on what, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{call} {target}")]
pub struct NetlinkError {
    pub call: &'static str,
    pub target: String,
    #[source]
    pub source: io::Error,
}

impl NetlinkError {
    /// The errno the kernel answered with, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

fn err(call: &'static str, target: impl ToString) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    move |e| NetlinkError {
        call,
        target: target.to_string(),
        source: match e {
            rtnetlink::Error::NetlinkError(message) => message.to_io(),
            other => io::Error::other(other.to_string()),
        },
    }
}

/// A link as edgehub cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mtu: Option<u32>,
    pub up: bool,
}

/// An rtnetlink socket, served by a task on the current tokio runtime.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the socket in the calling thread's network namespace.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetlinkError {
                call: "socket",
                target: "rtnetlink".into(),
                source,
            })?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The link called `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(Some(message)) => Ok(Some(link_of(&message))),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.to_io().raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(None)
            }
            Err(e) => Err(err("RTM_GETLINK", name)(e)),
        }
    }

    /// Creates a kernel WireGuard link; fails with EOPNOTSUPP when the kernel has none.
    pub async fn create_wireguard(&self, name: &str) -> Result<(), NetlinkError> {
        tracing::debug!(iface = name, "RTM_NEWLINK type wireguard");
        let message = LinkWireguard::new(name).build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(err("RTM_NEWLINK wireguard", name))
    }

    pub async fn delete_link(&self, name: &str, index: u32) -> Result<(), NetlinkError> {
        tracing::debug!(iface = name, index, "RTM_DELLINK");
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(err("RTM_DELLINK", name))
    }

    /// Sets the MTU and brings the link up, unless both are already so. Returns whether
    /// anything changed.
    pub async fn set_mtu_up(&self, name: &str, mtu: u16) -> Result<bool, NetlinkError> {
        let link = self.link(name).await?.ok_or_else(|| no_such_link(name))?;
        if link.mtu == Some(u32::from(mtu)) && link.up {
            return Ok(false);
        }
        tracing::debug!(iface = name, mtu, "RTM_SETLINK mtu, up");
        let message: LinkMessage = LinkUnspec::new_with_index(link.index)
            .mtu(mtu.into())
            .up()
            .build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(err("RTM_SETLINK", name))?;
        Ok(true)
    }

    /// The IPv4 addresses on a link.
    pub async fn addresses(&self, index: u32) -> Result<Vec<Ipv4Net>, NetlinkError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut found = Vec::new();
        while let Some(message) = stream.try_next().await.map_err(err("RTM_GETADDR", index))? {
            for attr in &message.attributes {
                if let AddressAttribute::Local(IpAddr::V4(ip)) = attr
                    && let Ok(net) = Ipv4Net::new(*ip, message.header.prefix_len)
                {
                    found.push(net);
                }
            }
        }
        Ok(found)
    }

    /// Adds `net` to the link unless it is there. Returns whether it was added.
    pub async fn ensure_address(&self, index: u32, net: Ipv4Net) -> Result<bool, NetlinkError> {
        if self.addresses(index).await?.contains(&net) {
            return Ok(false);
        }
        tracing::debug!(index, address = %net, "RTM_NEWADDR");
        self.handle
            .address()
            .add(index, IpAddr::V4(net.addr()), net.prefix_len())
            .execute()
            .await
            .map_err(err("RTM_NEWADDR", net))?;
        Ok(true)
    }

    pub async fn delete_address(&self, index: u32, net: Ipv4Net) -> Result<(), NetlinkError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(message) = stream.try_next().await.map_err(err("RTM_GETADDR", index))? {
            let matches = message.header.prefix_len == net.prefix_len()
                && message
                    .attributes
                    .iter()
                    .any(|a| *a == AddressAttribute::Local(net.addr().into()));
            if matches {
                tracing::debug!(index, address = %net, "RTM_DELADDR");
                return self
                    .handle
                    .address()
                    .del(message)
                    .execute()
                    .await
                    .map_err(err("RTM_DELADDR", net));
            }
        }
        Ok(())
    }

    /// Destinations of the `proto static` IPv4 routes through a link in the main table.
    pub async fn static_routes(&self, index: u32) -> Result<Vec<Ipv4Net>, NetlinkError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut stream = self.handle.route().get(query).execute();
        let mut found = Vec::new();
        while let Some(route) = stream
            .try_next()
            .await
            .map_err(err("RTM_GETROUTE", index))?
        {
            if route.header.protocol != RouteProtocol::Static
                || output_interface(&route) != Some(index)
            {
                continue;
            }
            let destination = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            let destination = destination.unwrap_or(Ipv4Addr::UNSPECIFIED);
            if let Ok(net) = Ipv4Net::new(destination, route.header.destination_prefix_length) {
                found.push(net);
            }
        }
        Ok(found)
    }

    /// Adds (or replaces) a link-scope route to `net` through the link.
    pub async fn add_route(&self, index: u32, net: Ipv4Net) -> Result<(), NetlinkError> {
        tracing::debug!(index, route = %net, "RTM_NEWROUTE");
        self.handle
            .route()
            .add(route_message(index, net))
            .replace()
            .execute()
            .await
            .map_err(err("RTM_NEWROUTE", net))
    }

    pub async fn delete_route(&self, index: u32, net: Ipv4Net) -> Result<(), NetlinkError> {
        tracing::debug!(index, route = %net, "RTM_DELROUTE");
        self.handle
            .route()
            .del(route_message(index, net))
            .execute()
            .await
            .map_err(err("RTM_DELROUTE", net))
    }

    /// Makes the `proto static` routes through the link exactly `wanted`. Returns how many
    /// were added and removed.
    pub async fn sync_routes(
        &self,
        index: u32,
        wanted: &[Ipv4Net],
    ) -> Result<(usize, usize), NetlinkError> {
        let present = self.static_routes(index).await?;
        let mut added = 0;
        for net in wanted.iter().filter(|n| !present.contains(n)) {
            self.add_route(index, *net).await?;
            added += 1;
        }
        let mut removed = 0;
        for net in present.iter().filter(|n| !wanted.contains(n)) {
            self.delete_route(index, *net).await?;
            removed += 1;
        }
        Ok((added, removed))
    }
}

fn route_message(index: u32, net: Ipv4Net) -> RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(net.network(), net.prefix_len())
        .output_interface(index)
        .protocol(RouteProtocol::Static)
        .scope(RouteScope::Link)
        .build()
}

fn output_interface(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(index) => Some(*index),
        _ => None,
    })
}

fn link_of(message: &LinkMessage) -> Link {
    let mtu = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(mtu) => Some(*mtu),
        _ => None,
    });
    Link {
        index: message.header.index,
        mtu,
        up: message.header.flags.contains(LinkFlags::Up),
    }
}

fn no_such_link(name: &str) -> NetlinkError {
    NetlinkError {
        call: "RTM_GETLINK",
        target: name.to_owned(),
        source: io::Error::from_raw_os_error(libc::ENODEV),
    }
}
