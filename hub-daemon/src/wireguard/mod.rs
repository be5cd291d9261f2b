//! The WireGuard device: what it is configured with now, and the smallest change that makes
//! it match the configuration.
//!
//! Changes are computed as a diff against the running device, never as a full replace, so
//! peers that stay keep their sessions, handshakes and roamed endpoints.

pub mod kernel;
pub mod uapi;
pub mod userspace;

use std::{net::SocketAddr, time::SystemTime};

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::{
    config::{Interface, Peer},
    key::Key,
};

/// The device as the implementation reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    pub private_key: Option<Key>,
    pub listen_port: u16,
    pub peers: Vec<PeerState>,
}

/// One peer as the implementation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub public_key: Key,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<Ipv4Net>,
    /// Seconds; 0 is off.
    pub persistent_keepalive: u16,
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl Default for PeerState {
    fn default() -> Self {
        Self {
            public_key: Key([0; 32]),
            endpoint: None,
            allowed_ips: Vec::new(),
            persistent_keepalive: 0,
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }
}

/// A change to a device; empty when it already matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceUpdate {
    pub private_key: Option<Key>,
    pub listen_port: Option<u16>,
    pub remove: Vec<Key>,
    pub upsert: Vec<PeerUpdate>,
}

/// Adds a peer or changes some of its settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUpdate {
    pub public_key: Key,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
    pub allowed_ips: Option<Vec<Ipv4Net>>,
}

/// What changed, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpdateSummary {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub interface: bool,
}

impl DeviceUpdate {
    /// The change that makes `current` match `interface` and `peers`.
    ///
    /// A configured endpoint is set on a new peer, or when the peer has none; an endpoint
    /// the peer has roamed to is left alone.
    pub fn plan(interface: &Interface, peers: &[Peer], current: &DeviceState) -> Self {
        let mut update = Self::default();
        if current.private_key != Some(interface.private_key) {
            update.private_key = Some(interface.private_key);
        }
        if current.listen_port != interface.listen_port {
            update.listen_port = Some(interface.listen_port);
        }
        update.remove = current
            .peers
            .iter()
            .filter(|p| !peers.iter().any(|want| want.public_key == p.public_key))
            .map(|p| p.public_key)
            .collect();
        for want in peers {
            let now = current
                .peers
                .iter()
                .find(|p| p.public_key == want.public_key);
            let mut wanted_ips = want.allowed_ips.clone();
            wanted_ips.sort_unstable();
            let keepalive = want.persistent_keepalive.unwrap_or(0);
            let peer = match now {
                None => PeerUpdate {
                    public_key: want.public_key,
                    endpoint: want.endpoint,
                    persistent_keepalive: want.persistent_keepalive,
                    allowed_ips: Some(wanted_ips),
                },
                Some(now) => {
                    let mut now_ips = now.allowed_ips.clone();
                    now_ips.sort_unstable();
                    PeerUpdate {
                        public_key: want.public_key,
                        endpoint: want.endpoint.filter(|_| now.endpoint.is_none()),
                        persistent_keepalive: (now.persistent_keepalive != keepalive)
                            .then_some(keepalive),
                        allowed_ips: (now_ips != wanted_ips).then_some(wanted_ips),
                    }
                }
            };
            let changes = peer.endpoint.is_some()
                || peer.persistent_keepalive.is_some()
                || peer.allowed_ips.is_some();
            if now.is_none() || changes {
                update.upsert.push(peer);
            }
        }
        update
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Counts for the log, given the device it was planned against.
    pub fn summary(&self, current: &DeviceState) -> UpdateSummary {
        let added = self
            .upsert
            .iter()
            .filter(|u| !current.peers.iter().any(|p| p.public_key == u.public_key))
            .count();
        UpdateSummary {
            added,
            changed: self.upsert.len() - added,
            removed: self.remove.len(),
            interface: self.private_key.is_some() || self.listen_port.is_some(),
        }
    }

    /// The body of a UAPI `set=1` request.
    pub fn to_uapi(&self) -> String {
        use std::fmt::Write as _;
        let mut body = String::new();
        if let Some(key) = self.private_key {
            let _ = writeln!(body, "private_key={}", key.to_hex());
        }
        if let Some(port) = self.listen_port {
            let _ = writeln!(body, "listen_port={port}");
        }
        for key in &self.remove {
            let _ = writeln!(body, "public_key={}\nremove=true", key.to_hex());
        }
        for peer in &self.upsert {
            let _ = writeln!(body, "public_key={}", peer.public_key.to_hex());
            if let Some(endpoint) = peer.endpoint {
                let _ = writeln!(body, "endpoint={endpoint}");
            }
            if let Some(keepalive) = peer.persistent_keepalive {
                let _ = writeln!(body, "persistent_keepalive_interval={keepalive}");
            }
            if let Some(ips) = &peer.allowed_ips {
                body += "replace_allowed_ips=true\n";
                for net in ips {
                    let _ = writeln!(body, "allowed_ip={net}");
                }
            }
        }
        body
    }
}

#[cfg(test)]
mod tests;
