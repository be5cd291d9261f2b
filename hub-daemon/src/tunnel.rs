//! The hub's tunnel interface as a whole: the WireGuard implementation behind it, its keys and
//! peers, and its address, MTU, state and routes.
//!
//! Every step compares with what is there and changes only the difference, so running it
//! twice changes nothing, and a reload touches only the peers that changed.

use std::{io, path::Path};

use ipnet::Ipv4Net;

use crate::{
    config::{Backend, Config},
    netlink::{Netlink, NetlinkError},
    wireguard::{
        DeviceState, DeviceUpdate, UpdateSummary,
        uapi::{Uapi, UapiError},
        userspace::{self, Origin, UserspaceError},
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
    Userspace(#[from] UserspaceError),
    #[error(
        "the kernel WireGuard backend is not implemented yet; use backend = \"userspace\" or \"auto\""
    )]
    KernelUnsupported,
    #[error("{0} exists but no WireGuard implementation serves its control socket")]
    Foreign(String),
}

/// A WireGuard interface edgehub manages.
pub struct Tunnel {
    name: String,
    uapi: Uapi,
    netlink: Netlink,
}

/// Whether the kernel offers WireGuard (the module is loaded or built in).
fn kernel_has_wireguard() -> bool {
    Path::new("/sys/module/wireguard").exists()
}

impl Tunnel {
    /// Starts or adopts the implementation, then configures keys, peers, address, MTU and
    /// routes.
    pub async fn up(config: &Config, netlink: &Netlink) -> Result<(Self, Origin), TunnelError> {
        let iface = &config.interface;
        match iface.backend {
            // TODO: configure kernel WireGuard links over generic netlink (netlink-packet-wireguard); only userspace is driven today.
            Backend::Kernel => return Err(TunnelError::KernelUnsupported),
            Backend::Auto if kernel_has_wireguard() => tracing::info!(
                iface = iface.name,
                backend = "userspace",
                "the kernel has WireGuard, but edgehub drives only userspace implementations yet"
            ),
            Backend::Auto => tracing::info!(
                iface = iface.name,
                backend = "userspace",
                "the kernel has no WireGuard; using the userspace implementation"
            ),
            Backend::Userspace => {}
        }
        let (uapi, origin) = userspace::ensure_running(&iface.name, &iface.userspace_program)?;
        let tunnel = Self {
            name: iface.name.clone(),
            uapi,
            netlink: netlink.clone(),
        };
        tunnel.configure(config, None).await?;
        Ok((tunnel, origin))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device as the implementation reports it.
    pub fn device(&self) -> Result<DeviceState, UapiError> {
        self.uapi.get()
    }


    /// Brings the device to `config`: `previous` (the configuration in force) tells which
    /// address to take away when it changed.
    pub async fn configure(
        &self,
        config: &Config,
        previous: Option<&Config>,
    ) -> Result<UpdateSummary, TunnelError> {
        let current = self.uapi.get()?;
        let update = DeviceUpdate::plan(&config.interface, &config.peers, &current);
        let summary = update.summary(&current);
        if update.is_empty() {
            tracing::debug!(iface = self.name, "wireguard already as configured");
        } else {
            self.uapi.set(&update.to_uapi())?;
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
        matches!(self.netlink.link(&self.name).await, Ok(Some(_))) && self.uapi.get().is_ok()
    }

    /// Restarts the implementation after it died (or was restarted with an empty
    /// configuration) and configures it again.
    pub async fn recover(&self, config: &Config) -> Result<(), TunnelError> {
        let (uapi, origin) =
            userspace::ensure_running(&self.name, &config.interface.userspace_program)?;
        debug_assert_eq!(uapi.path(), self.uapi.path());
        tracing::info!(
            iface = self.name,
            ?origin,
            "tunnel recovered; configuring it again"
        );
        self.configure(config, None).await.map(drop)
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
