//! The kernel's WireGuard, configured over generic netlink (the `wireguard` family, as
//! `wg` does it): `WG_CMD_GET_DEVICE` to read, `WG_CMD_SET_DEVICE` to change.
//!
//! Requires a kernel with WireGuard (Linux 5.6 or later, or the module) and
//! `CAP_NET_ADMIN`.
// TODO: untested here: the development and CI kernels have no WireGuard; only the unit tests of the message building run.

use std::{
    io,
    net::IpAddr,
    time::{Duration, SystemTime},
};

use futures_util::StreamExt as _;
use genetlink::GenetlinkError;
use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_wireguard::{
    WireguardAddressFamily, WireguardAllowedIp, WireguardAllowedIpAttr, WireguardAttribute,
    WireguardCmd, WireguardMessage, WireguardPeer, WireguardPeerAttribute, WireguardPeerFlags,
};

use super::{DeviceState, DeviceUpdate, PeerState};
use crate::key::Key;

/// A failed generic netlink exchange with the kernel's WireGuard.
#[derive(Debug, thiserror::Error)]
#[error("{call} {iface}")]
pub struct KernelError {
    pub call: &'static str,
    pub iface: String,
    #[source]
    pub source: io::Error,
}

/// The kernel WireGuard device `iface`.
#[derive(Debug, Clone)]
pub struct KernelDevice {
    iface: String,
}

impl KernelDevice {
    pub fn new(iface: &str) -> Self {
        Self {
            iface: iface.to_owned(),
        }
    }

    fn error(&self, call: &'static str) -> impl Fn(GenetlinkError) -> KernelError + '_ {
        move |e| KernelError {
            call,
            iface: self.iface.clone(),
            source: match e {
                GenetlinkError::NetlinkError(io) => io,
                other => io::Error::other(other.to_string()),
            },
        }
    }

    /// Sends one request and collects the answers' attributes; a NACK is an error.
    async fn exchange(
        &self,
        call: &'static str,
        message: WireguardMessage,
        flags: u16,
    ) -> Result<Vec<Vec<WireguardAttribute>>, KernelError> {
        let (connection, mut handle, _) =
            genetlink::new_connection().map_err(|source| KernelError {
                call: "socket",
                iface: self.iface.clone(),
                source,
            })?;
        let task = tokio::spawn(connection);
        let mut request = NetlinkMessage::from(GenlMessage::from_payload(message));
        request.header.flags = flags;
        tracing::debug!(iface = self.iface, call, "generic netlink request");
        let mut answers = handle.request(request).await.map_err(self.error(call))?;
        let mut replies = Vec::new();
        let mut failure = None;
        while let Some(answer) = answers.next().await {
            match answer.map(|m| m.payload) {
                Ok(NetlinkPayload::InnerMessage(genl)) => replies.push(genl.payload.attributes),
                Ok(NetlinkPayload::Error(e)) if e.code.is_some() => {
                    failure = Some(self.error(call)(GenetlinkError::NetlinkError(e.to_io())));
                }
                Ok(_) => {}
                Err(e) => failure = Some(self.error(call)(GenetlinkError::DecodeError(e))),
            }
        }
        task.abort();
        failure.map_or(Ok(replies), Err)
    }

    /// The device's configuration and statistics.
    pub async fn get(&self) -> Result<DeviceState, KernelError> {
        let message = WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![WireguardAttribute::IfName(self.iface.clone())],
        };
        let replies = self
            .exchange("WG_CMD_GET_DEVICE", message, NLM_F_REQUEST | NLM_F_DUMP)
            .await?;
        Ok(device_state(replies))
    }

    /// Applies an update: the interface settings and each peer in a message of its own, so
    /// no message outgrows a netlink page however many peers change.
    pub async fn set(&self, update: &DeviceUpdate) -> Result<(), KernelError> {
        for attributes in set_messages(&self.iface, update) {
            let message = WireguardMessage {
                cmd: WireguardCmd::SetDevice,
                attributes,
            };
            self.exchange("WG_CMD_SET_DEVICE", message, NLM_F_REQUEST | NLM_F_ACK)
                .await?;
        }
        Ok(())
    }
}

/// The attribute lists of the `WG_CMD_SET_DEVICE` messages carrying `update`.
pub fn set_messages(iface: &str, update: &DeviceUpdate) -> Vec<Vec<WireguardAttribute>> {
    let name = || WireguardAttribute::IfName(iface.to_owned());
    let mut messages = Vec::new();
    let mut device = vec![name()];
    if let Some(key) = update.private_key {
        device.push(WireguardAttribute::PrivateKey(key.0));
    }
    if let Some(port) = update.listen_port {
        device.push(WireguardAttribute::ListenPort(port));
    }
    if device.len() > 1 {
        messages.push(device);
    }
    let peer_message = |peer: Vec<WireguardPeerAttribute>| {
        vec![name(), WireguardAttribute::Peers(vec![WireguardPeer(peer)])]
    };
    for key in &update.remove {
        messages.push(peer_message(vec![
            WireguardPeerAttribute::PublicKey(key.0),
            WireguardPeerAttribute::Flags(WireguardPeerFlags::RemoveMe),
        ]));
    }
    for peer in &update.upsert {
        let mut attributes = vec![WireguardPeerAttribute::PublicKey(peer.public_key.0)];
        if let Some(endpoint) = peer.endpoint {
            attributes.push(WireguardPeerAttribute::Endpoint(endpoint));
        }
        if let Some(keepalive) = peer.persistent_keepalive {
            attributes.push(WireguardPeerAttribute::PersistentKeepalive(keepalive));
        }
        if let Some(ips) = &peer.allowed_ips {
            attributes.push(WireguardPeerAttribute::Flags(
                WireguardPeerFlags::ReplaceAllowedIps,
            ));
            attributes.push(WireguardPeerAttribute::AllowedIps(
                ips.iter()
                    .map(|net| {
                        WireguardAllowedIp(vec![
                            WireguardAllowedIpAttr::Family(WireguardAddressFamily::Ipv4),
                            WireguardAllowedIpAttr::IpAddr(IpAddr::V4(net.network())),
                            WireguardAllowedIpAttr::Cidr(net.prefix_len()),
                        ])
                    })
                    .collect(),
            ));
        }
        messages.push(peer_message(attributes));
    }
    messages
}

/// Folds the answers of a `WG_CMD_GET_DEVICE` dump (a peer may continue in the next
/// message) into one device.
pub fn device_state(replies: Vec<Vec<WireguardAttribute>>) -> DeviceState {
    let mut device = DeviceState::default();
    for attribute in replies.into_iter().flatten() {
        match attribute {
            WireguardAttribute::PrivateKey(key) if key != [0; 32] => {
                device.private_key = Some(Key(key));
            }
            WireguardAttribute::ListenPort(port) => device.listen_port = port,
            WireguardAttribute::Peers(peers) => {
                for WireguardPeer(attributes) in peers {
                    merge_peer(&mut device, attributes);
                }
            }
            _ => {}
        }
    }
    device
}

fn merge_peer(device: &mut DeviceState, attributes: Vec<WireguardPeerAttribute>) {
    let Some(key) = attributes.iter().find_map(|a| match a {
        WireguardPeerAttribute::PublicKey(k) => Some(Key(*k)),
        _ => None,
    }) else {
        return;
    };
    let index = device
        .peers
        .iter()
        .position(|p| p.public_key == key)
        .unwrap_or_else(|| {
            device.peers.push(PeerState {
                public_key: key,
                ..PeerState::default()
            });
            device.peers.len() - 1
        });
    let peer = &mut device.peers[index];
    for attribute in attributes {
        match attribute {
            WireguardPeerAttribute::Endpoint(e) => peer.endpoint = Some(e),
            WireguardPeerAttribute::PersistentKeepalive(k) => peer.persistent_keepalive = k,
            WireguardPeerAttribute::LastHandshake(t) if t.seconds > 0 => {
                peer.last_handshake =
                    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(t.seconds.unsigned_abs()));
            }
            WireguardPeerAttribute::RxBytes(n) => peer.rx_bytes = n,
            WireguardPeerAttribute::TxBytes(n) => peer.tx_bytes = n,
            WireguardPeerAttribute::AllowedIps(ips) => {
                peer.allowed_ips.extend(ips.iter().filter_map(allowed_ipv4));
            }
            _ => {}
        }
    }
}

fn allowed_ipv4(ip: &WireguardAllowedIp) -> Option<Ipv4Net> {
    let addr = ip.0.iter().find_map(|a| match a {
        WireguardAllowedIpAttr::IpAddr(IpAddr::V4(addr)) => Some(*addr),
        _ => None,
    })?;
    let cidr = ip.0.iter().find_map(|a| match a {
        WireguardAllowedIpAttr::Cidr(c) => Some(*c),
        _ => None,
    })?;
    Ipv4Net::new(addr, cidr).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wireguard::PeerUpdate;

    #[test]
    fn an_update_becomes_messages_that_read_back_as_the_device() {
        let update = DeviceUpdate {
            private_key: Some(Key([1; 32])),
            listen_port: Some(51820),
            remove: vec![Key([3; 32])],
            upsert: vec![PeerUpdate {
                public_key: Key([2; 32]),
                endpoint: Some("192.0.2.1:51820".parse().unwrap()),
                persistent_keepalive: Some(25),
                allowed_ips: Some(vec!["10.50.1.1/32".parse().unwrap()]),
            }],
        };
        let messages = set_messages("wg0", &update);
        assert_eq!(messages.len(), 3, "interface, one removal, one peer");
        assert!(
            messages
                .iter()
                .all(|m| m[0] == WireguardAttribute::IfName("wg0".into()))
        );

        // The peer message, read back as a GET answer would be.
        let device = device_state(vec![messages[0].clone(), messages[2].clone()]);
        assert_eq!(device.private_key, Some(Key([1; 32])));
        assert_eq!(device.listen_port, 51820);
        let peer = &device.peers[0];
        assert_eq!(peer.public_key, Key([2; 32]));
        assert_eq!(peer.persistent_keepalive, 25);
        assert_eq!(
            peer.allowed_ips,
            ["10.50.1.1/32".parse::<Ipv4Net>().unwrap()]
        );
        assert!(
            DeviceUpdate::default().is_empty()
                && set_messages("wg0", &DeviceUpdate::default()).is_empty()
        );
    }
}
