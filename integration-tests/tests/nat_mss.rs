//! MSS clamping: with `mss` set, both the peer's SYN and the database's SYN-ACK carry at
//! most that MSS, so neither side sends segments too large for the tunnel.

use std::{
    net::{SocketAddr, SocketAddrV4, TcpListener},
    time::Duration,
};

use hub_daemon::nat::read_counters;
use integration_tests::{
    nat_lab::{DB_ADDR, NatLab, Tunnel, VIP},
    require_root,
    tcp_echo::connect,
};
use nix::sys::socket::{getsockopt, sockopt::TcpMaxSeg};

const PORT: u16 = 7200;
const CLAMP: u16 = 1000;

/// The MSS each side ends up with: (peer's socket, database's socket).
fn negotiated(mss: Option<u16>) -> (u32, u32, u64) {
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let listener = {
        let _inside = lab.db.enter().unwrap();
        TcpListener::bind(SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT))).unwrap()
    };
    let mut config = lab.config(PORT);
    config.mss = mss;
    let _nat = lab.start_nat(&config).unwrap();

    let vip = SocketAddr::V4(SocketAddrV4::new(VIP, PORT));
    let client = connect(&lab.edge, vip, Duration::from_secs(5)).unwrap();
    let (server, _) = listener.accept().unwrap();
    let peer_mss = getsockopt(&client, TcpMaxSeg).unwrap();
    let db_mss = getsockopt(&server, TcpMaxSeg).unwrap();
    (
        peer_mss,
        db_mss,
        read_counters(lab.pins.path()).unwrap().mss_clamped,
    )
}

#[test]
fn syn_and_syn_ack_are_clamped() {
    require_root();
    let (peer, db, clamped) = negotiated(Some(CLAMP));
    assert!(peer <= u32::from(CLAMP), "peer sends segments of {peer}");
    assert!(db <= u32::from(CLAMP), "database sends segments of {db}");
    assert!(
        (2..=4).contains(&clamped),
        "a SYN and a SYN-ACK lowered (or a retransmission): {clamped}"
    );
}

#[test]
fn without_clamp_the_veth_mtu_rules() {
    require_root();
    let (peer, db, clamped) = negotiated(None);
    assert!(
        peer > u32::from(CLAMP) && db > u32::from(CLAMP),
        "{peer} {db}"
    );
    assert_eq!(clamped, 0);
}
