//! ICMP errors about a translated flow: a "fragmentation needed" from the backend reaches
//! the peer from the VIP, quoting the peer's own packet, with every checksum valid.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    time::Duration,
};

use hub_common::{checksum, headers::IPPROTO_ICMP};
use hub_daemon::nat::{read_counters, read_flows};
use integration_tests::{
    crafted::{Capture, Segment, icmp_error, mac, send},
    nat_lab::{DB_ADDR, HUB_EGRESS, HUB_EGRESS_IF, NatLab, Tunnel, VIP},
    require_root,
    tcp_echo::{EchoServer, connect, round_trip},
};

const PORT: u16 = 7600;
const FRAG_NEEDED: (u8, u8) = (3, 4);
const MTU: u32 = 1200;

fn addr(packet: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3])
}

fn port(packet: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([packet[at], packet[at + 1]])
}

#[test]
fn fragmentation_needed_from_the_backend_reaches_the_peer_translated() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo =
        EchoServer::start(&lab.db, SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT))).unwrap();
    let _nat = lab.start_nat(&lab.config(PORT)).unwrap();
    let vip = SocketAddr::V4(SocketAddrV4::new(VIP, PORT));
    let mut stream = connect(&lab.edge, vip, Duration::from_secs(5)).unwrap();
    assert!(round_trip(&mut stream, b"hello").unwrap());
    let flow = read_flows(lab.pins.path()).unwrap().remove(0);

    // The backend complains about a segment as it saw it: hub:SNAT port -> backend.
    let quoted = Segment {
        sport: flow.translated.src.port(),
        ..Segment::new(HUB_EGRESS, DB_ADDR, PORT, 0x18)
    }
    .ipv4();
    let error = icmp_error(
        DB_ADDR,
        HUB_EGRESS,
        FRAG_NEEDED.0,
        FRAG_NEEDED.1,
        MTU,
        &quoted[..28],
    );
    let capture = Capture::start(&lab.edge, "eh-et").unwrap();
    send(
        &lab.db,
        "eh-db",
        mac(&lab.hub, HUB_EGRESS_IF).unwrap(),
        &error,
    )
    .unwrap();

    // The peer gets it from the VIP, about its own packet (peer -> VIP).
    let got = capture
        .next(Duration::from_secs(5), |p| {
            p.len() >= 56 && p[9] == IPPROTO_ICMP
        })
        .unwrap();
    assert_eq!(addr(&got, 12), VIP, "outer source");
    assert_eq!(addr(&got, 16), lab.peer_addr(), "outer destination");
    assert_eq!((got[20], got[21]), FRAG_NEEDED);
    assert_eq!(
        u32::from_be_bytes([got[24], got[25], got[26], got[27]]),
        MTU
    );
    let inner = &got[28..];
    assert_eq!(addr(inner, 12), lab.peer_addr(), "quoted source");
    assert_eq!(addr(inner, 16), VIP, "quoted destination");
    assert_eq!(port(inner, 20), flow.peer.port(), "quoted source port");
    assert_eq!(port(inner, 22), PORT, "quoted destination port");
    assert_eq!(checksum::compute(&got[..20]), 0, "outer IPv4 checksum");
    assert_eq!(checksum::compute(&got[20..]), 0, "ICMP checksum");
    assert_eq!(checksum::compute(&inner[..20]), 0, "quoted IPv4 checksum");
    assert_eq!(read_counters(lab.pins.path()).unwrap().icmp_translated, 1);
}
