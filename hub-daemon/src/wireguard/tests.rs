//! The diff between configuration and device, on the host.

use std::path::PathBuf;

use super::*;
use crate::config::Backend;

fn interface() -> Interface {
    Interface {
        name: "wg0".into(),
        private_key: Key([1; 32]),
        listen_port: 51820,
        address: "10.50.0.1/24".parse().unwrap(),
        mtu: 1420,
        backend: Backend::Userspace,
        userspace_program: PathBuf::from("wireguard-go"),
    }
}

fn peer(n: u8, ip: &str) -> Peer {
    Peer {
        name: format!("p{n}"),
        public_key: Key([n; 32]),
        allowed_ips: vec![ip.parse().unwrap()],
        persistent_keepalive: None,
        endpoint: None,
    }
}

/// The device after `update` was applied to `device`, as wireguard-go would do it.
fn applied(mut device: DeviceState, update: &DeviceUpdate) -> DeviceState {
    if let Some(k) = update.private_key {
        device.private_key = Some(k);
    }
    if let Some(p) = update.listen_port {
        device.listen_port = p;
    }
    device
        .peers
        .retain(|p| !update.remove.contains(&p.public_key));
    for u in &update.upsert {
        let index = device
            .peers
            .iter()
            .position(|p| p.public_key == u.public_key);
        let index = index.unwrap_or_else(|| {
            device.peers.push(PeerState {
                public_key: u.public_key,
                ..PeerState::default()
            });
            device.peers.len() - 1
        });
        let p = &mut device.peers[index];
        if let Some(e) = u.endpoint {
            p.endpoint = Some(e);
        }
        if let Some(k) = u.persistent_keepalive {
            p.persistent_keepalive = k;
        }
        if let Some(ips) = &u.allowed_ips {
            p.allowed_ips.clone_from(ips);
        }
    }
    device
}

#[test]
fn a_fresh_device_gets_everything_then_nothing_more() {
    let peers = [peer(2, "10.50.1.1/32"), peer(3, "10.50.2.1/32")];
    let first = DeviceUpdate::plan(&interface(), &peers, &DeviceState::default());
    assert_eq!(first.summary(&DeviceState::default()).added, 2);
    assert!(
        first
            .to_uapi()
            .starts_with(&format!("private_key={}\n", Key([1; 32]).to_hex()))
    );

    let device = applied(DeviceState::default(), &first);
    let second = DeviceUpdate::plan(&interface(), &peers, &device);
    assert!(second.is_empty(), "second run changes nothing: {second:?}");
}

#[test]
fn reload_touches_only_added_removed_and_changed_peers() {
    let old = [
        peer(2, "10.50.1.1/32"),
        peer(3, "10.50.2.1/32"),
        peer(4, "10.50.3.1/32"),
    ];
    let mut device = applied(
        DeviceState::default(),
        &DeviceUpdate::plan(&interface(), &old, &DeviceState::default()),
    );
    // Peer 2 roamed to an endpoint of its own choosing.
    device.peers[0].endpoint = Some("192.0.2.9:1000".parse().unwrap());

    let mut changed = peer(4, "10.50.3.0/24");
    changed.persistent_keepalive = Some(25);
    let mut kept = peer(2, "10.50.1.1/32");
    kept.endpoint = Some("192.0.2.1:51820".parse().unwrap());
    let new = [kept, changed, peer(5, "10.50.4.1/32")];
    let update = DeviceUpdate::plan(&interface(), &new, &device);

    assert_eq!(update.remove, [Key([3; 32])]);
    let touched: Vec<_> = update.upsert.iter().map(|u| u.public_key).collect();
    assert_eq!(
        touched,
        [Key([4; 32]), Key([5; 32])],
        "peer 2 is left alone"
    );
    let body = update.to_uapi();
    assert!(!body.contains("replace_peers"), "never a full replace");
    assert!(!body.contains("private_key"), "interface unchanged");
    assert_eq!(
        update.summary(&device),
        UpdateSummary {
            added: 1,
            changed: 1,
            removed: 1,
            interface: false
        }
    );
    assert!(DeviceUpdate::plan(&interface(), &new, &applied(device, &update)).is_empty());
}

#[test]
fn uapi_body_of_a_new_peer() {
    let mut p = peer(2, "10.50.1.1/32");
    p.endpoint = Some("192.0.2.1:51820".parse().unwrap());
    p.persistent_keepalive = Some(25);
    let device = DeviceState {
        private_key: Some(Key([1; 32])),
        listen_port: 51820,
        peers: vec![],
    };
    let body = DeviceUpdate::plan(&interface(), &[p], &device).to_uapi();
    assert_eq!(
        body,
        format!(
            "public_key={}\nendpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\n\
             replace_allowed_ips=true\nallowed_ip=10.50.1.1/32\n",
            Key([2; 32]).to_hex()
        )
    );
}
