//! The hub's tunnel interface as a whole: the WireGuard implementation behind it (the
//! kernel's, or a userspace one), its keys and peers, and its address, MTU, state and routes.
//!
//! Every step compares with what is there and changes only the difference, so running it
//! twice changes nothing, and a reload touches only the peers that changed.

use std::io;

use ipnet::Ipv4Net;

use crate::{
    config::{Backend, Config},
    netlink::{Netlink, NetlinkError},
    wireguard::{
        DeviceState, DeviceUpdate, UpdateSummary,
        kernel::{KernelDevice, KernelError},
        uapi::{Uapi, UapiError},
        userspace::{self, UserspaceError},
    },
};

/// Why the tunnel could not be brought to its configuration.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Uapi(#[from] UapiError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Userspace(#[from] UserspaceError),
    #[error("{0} exists but is not a kernel WireGuard link (backend = \"kernel\")")]
    Foreign(String),
}

/// How the implementation came to serve the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// It was there already (a previous run's).
    Adopted,
    /// edgehub started the userspace implementation.
    StartedUserspace,
    /// edgehub created the kernel `wireguard` link.
    CreatedKernelLink,
}

/// Who edgehub configures keys and peers through.
enum Control {
    Kernel(KernelDevice),
    Userspace(Uapi),
}

impl Control {
    async fn get(&self) -> Result<DeviceState, TunnelError> {
        Ok(match self {
            Self::Kernel(device) => device.get().await?,
            Self::Userspace(uapi) => uapi.get()?,
        })
    }

    async fn set(&self, update: &DeviceUpdate) -> Result<(), TunnelError> {
        match self {
            Self::Kernel(device) => device.set(update).await?,
            Self::Userspace(uapi) => uapi.set(&update.to_uapi())?,
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        match self {
            Self::Kernel(_) => "kernel",
            Self::Userspace(_) => "userspace",
        }
    }
}

/// A WireGuard interface edgehub manages.
pub struct Tunnel {
    name: String,
    control: Control,
    netlink: Netlink,
}

impl Tunnel {
    /// Adopts or brings up the implementation `interface.backend` asks for, then configures
    /// keys, peers, address, MTU and routes.
    pub async fn up(config: &Config, netlink: &Netlink) -> Result<(Self, Origin), TunnelError> {
        let (control, origin) = implementation(config, netlink).await?;
        tracing::info!(
            iface = config.interface.name,
            backend = control.backend(),
            ?origin,
            "tunnel implementation"
        );
        let tunnel = Self {
            name: config.interface.name.clone(),
            control,
            netlink: netlink.clone(),
        };
        tunnel.configure(config, None).await?;
        Ok((tunnel, origin))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device as the implementation reports it.
    pub async fn device(&self) -> Result<DeviceState, TunnelError> {
        self.control.get().await
    }

    /// Brings the device to `config`: `previous` (the configuration in force) tells which
    /// address to take away when it changed.
    pub async fn configure(
        &self,
        config: &Config,
        previous: Option<&Config>,
    ) -> Result<UpdateSummary, TunnelError> {
        let current = self.control.get().await?;
        let update = DeviceUpdate::plan(&config.interface, &config.peers, &current);
        let summary = update.summary(&current);
        if update.is_empty() {
            tracing::debug!(iface = self.name, "wireguard already as configured");
        } else {
            self.control.set(&update).await?;
            tracing::info!(
                iface = self.name,
                added = summary.added,
                changed = summary.changed,
                removed = summary.removed,
                interface = summary.interface,
                "wireguard peers updated"
            );
        }

        let address = config.interface.address;
        let changed_mtu = self
            .netlink
            .set_mtu_up(&self.name, config.interface.mtu)
            .await?;
        let link = self
            .netlink
            .link(&self.name)
            .await?
            .ok_or_else(|| NetlinkError {
                call: "RTM_GETLINK",
                target: self.name.clone(),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            })?;
        if let Some(old) = previous
            .map(|p| p.interface.address)
            .filter(|old| *old != address)
        {
            self.netlink.delete_address(link.index, old).await?;
        }
        let added_address = self.netlink.ensure_address(link.index, address).await?;
        let (routes_added, routes_removed) = self
            .netlink
            .sync_routes(link.index, &routes(config))
            .await?;
        if changed_mtu || added_address || routes_added + routes_removed > 0 {
            tracing::info!(
                iface = self.name,
                %address,
                mtu = config.interface.mtu,
                routes_added,
                routes_removed,
                "interface configured"
            );
        }
        Ok(summary)
    }

    /// Whether the link exists and the implementation answers.
    pub async fn is_healthy(&self) -> bool {
        matches!(self.netlink.link(&self.name).await, Ok(Some(_)))
            && self.control.get().await.is_ok()
    }

    /// Brings the implementation back after it went away (a userspace restart, a deleted
    /// link) and configures it again.
    pub async fn recover(&mut self, config: &Config) -> Result<Origin, TunnelError> {
        let (control, origin) = implementation(config, &self.netlink).await?;
        tracing::info!(
            iface = self.name,
            backend = control.backend(),
            ?origin,
            "tunnel back; configuring it again"
        );
        self.control = control;
        self.configure(config, None).await?;
        Ok(origin)
    }
}

/// Finds or brings up the implementation for `config.interface`.
async fn implementation(
    config: &Config,
    netlink: &Netlink,
) -> Result<(Control, Origin), TunnelError> {
    let iface = &config.interface;
    let kernel = KernelDevice::new(&iface.name);
    let exists = netlink.link(&iface.name).await?.is_some();
    let userspace = || -> Result<(Control, Origin), TunnelError> {
        let (uapi, origin) = userspace::ensure_running(&iface.name, &iface.userspace_program)?;
        let origin = match origin {
            userspace::Origin::Adopted => Origin::Adopted,
            userspace::Origin::Started => Origin::StartedUserspace,
        };
        Ok((Control::Userspace(uapi), origin))
    };
    match iface.backend {
        Backend::Userspace => userspace(),
        Backend::Kernel if exists => match kernel.get().await {
            Ok(_) => Ok((Control::Kernel(kernel), Origin::Adopted)),
            Err(_) => Err(TunnelError::Foreign(iface.name.clone())),
        },
        Backend::Kernel => {
            netlink.create_wireguard(&iface.name).await?;
            Ok((Control::Kernel(kernel), Origin::CreatedKernelLink))
        }
        Backend::Auto if exists && kernel.get().await.is_ok() => {
            Ok((Control::Kernel(kernel), Origin::Adopted))
        }
        Backend::Auto if exists => userspace(),
        Backend::Auto => match netlink.create_wireguard(&iface.name).await {
            Ok(()) => Ok((Control::Kernel(kernel), Origin::CreatedKernelLink)),
            Err(e) => {
                tracing::info!(
                    iface = iface.name,
                    errno = e.errno(),
                    "the kernel cannot make a WireGuard link; using the userspace implementation"
                );
                userspace()
            }
        },
    }
}

/// Routes through the tunnel: every peer's allowed IPs not already on the tunnel's own
/// subnet (which the kernel routes there by itself).
pub fn routes(config: &Config) -> Vec<Ipv4Net> {
    let own = config.interface.address.trunc();
    config
        .peer_ranges()
        .into_iter()
        .filter(|net| !own.contains(net))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_peers_outside_the_tunnel_subnet_only() {
        let mut config = crate::config::sample();
        config.peers[1].allowed_ips = vec!["10.50.0.128/25".parse().unwrap()];
        let expected: Vec<Ipv4Net> = vec!["10.50.1.1/32".parse().unwrap()];
        assert_eq!(
            routes(&config),
            expected,
            "10.50.0.128/25 is on wg0's own /24"
        );
    }
}
