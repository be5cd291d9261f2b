//! What is not the NAT's passes untouched: the hub's own connections to the database (same
//! source address as SNAT, no flow) and the peers' traffic to the hub itself.

use std::{
    net::{SocketAddr, SocketAddrV4},
    time::Duration,
};

use hub_daemon::nat::read_counters;
use integration_tests::{
    nat_lab::{DB_ADDR, HUB_EGRESS, NatLab, Tunnel},
    require_root,
    tcp_echo::{EchoServer, connect, round_trip},
};

const PORT: u16 = 7500;
const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn hub_and_peer_traffic_that_is_not_for_a_vip_passes() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _db_echo =
        EchoServer::start(&lab.db, SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT))).unwrap();
    let _hub_echo = EchoServer::start(
        &lab.hub,
        SocketAddr::V4(SocketAddrV4::new("10.90.1.1".parse().unwrap(), PORT)),
    )
    .unwrap();
    let _nat = lab.start_nat(&lab.config(PORT)).unwrap();

    // The hub itself talks to the database from the SNAT address.
    let mut own = connect(
        &lab.hub,
        SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT)),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(own.local_addr().unwrap().ip(), HUB_EGRESS);
    assert!(round_trip(&mut own, b"hub to db").unwrap());

    // A peer talks to the hub's own address over the tunnel.
    let hub = SocketAddr::V4(SocketAddrV4::new("10.90.1.1".parse().unwrap(), PORT));
    let mut peer = connect(&lab.edge, hub, TIMEOUT).unwrap();
    assert!(round_trip(&mut peer, b"peer to hub").unwrap());

    let counters = read_counters(lab.pins.path()).unwrap();
    assert_eq!(counters.new_flows, 0);
    assert!(counters.passed >= 8, "{counters:#?}");
    assert_eq!(counters.forwarded + counters.replied, 0, "{counters:#?}");
}
