//! The NAT's lifecycle: a daemon restart adopts the pinned maps and links (open flows keep
//! working, one attachment per program), a recreated tunnel is re-attached, `remove` leaves
//! nothing behind, and the pinned maps read well with bpftool.

use std::{
    net::{SocketAddr, SocketAddrV4},
    time::Duration,
};

use hub_daemon::nat::{Nat, read_counters, read_flows};
use integration_tests::{
    nat_lab::{
        DB_ADDR, HUB_EGRESS_IF, HUB_TUNNEL_VETH, NatLab, Tunnel, VIP, bpftool_dump, tcx_programs,
    },
    require_root,
    tcp_echo::{EchoServer, connect, round_trip},
    veth_pair,
};

const PORT: u16 = 7000;
const TIMEOUT: Duration = Duration::from_secs(5);

fn vip() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(VIP, PORT))
}

#[test]
fn restart_adopts_pins_and_open_flows_survive() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo =
        EchoServer::start(&lab.db, SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT))).unwrap();
    let config = lab.config(PORT);

    // A connection through the first daemon run.
    let nat = lab.start_nat(&config).unwrap();
    let mut stream = connect(&lab.edge, vip(), TIMEOUT).unwrap();
    assert!(round_trip(&mut stream, b"before").unwrap());

    // The daemon goes away: the pinned links keep translating.
    drop(nat);
    assert!(round_trip(&mut stream, b"no daemon").unwrap());
    let before = read_counters(lab.pins.path()).unwrap();

    // A new run adopts maps and links: same flow, counters carried on, one program each.
    let _nat = lab.start_nat(&config).unwrap();
    assert!(round_trip(&mut stream, b"after").unwrap());
    let after = read_counters(lab.pins.path()).unwrap();
    assert!(
        after.forwarded > before.forwarded,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        after.new_flows, 1,
        "the open flow was not recreated: {after:#?}"
    );
    assert_eq!(read_flows(lab.pins.path()).unwrap().len(), 1);
    assert_eq!(
        tcx_programs(&lab.hub, HUB_TUNNEL_VETH).unwrap(),
        ["eh_nat_fwd"]
    );
    assert_eq!(
        tcx_programs(&lab.hub, HUB_EGRESS_IF).unwrap(),
        ["eh_nat_reply"]
    );

    // bpftool names the fields from BTF.
    let counters = bpftool_dump(&lab.pins.path().join("NAT_COUNTERS")).unwrap();
    assert!(counters.contains("\"drop_not_peer\""), "{counters}");
    let flows = bpftool_dump(&lab.pins.path().join("NAT_FLOWS")).unwrap();
    assert!(
        flows.contains("\"rewrite\"") && flows.contains("\"db_handshake_ns\""),
        "{flows}"
    );
}

#[test]
fn remove_detaches_and_unpins_everything() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo =
        EchoServer::start(&lab.db, SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT))).unwrap();
    let nat = lab.start_nat(&lab.config(PORT)).unwrap();
    let mut stream = connect(&lab.edge, vip(), TIMEOUT).unwrap();
    assert!(round_trip(&mut stream, b"hello").unwrap());

    drop(nat);
    Nat::remove(lab.pins.path()).unwrap();

    assert!(!lab.pins.path().exists(), "pin directory left behind");
    assert!(tcx_programs(&lab.hub, HUB_TUNNEL_VETH).unwrap().is_empty());
    assert!(tcx_programs(&lab.hub, HUB_EGRESS_IF).unwrap().is_empty());
    // Without the NAT nobody answers for the VIP.
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(round_trip(&mut stream, b"gone").is_err());
}

#[test]
fn recreated_tunnel_is_reattached() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo =
        EchoServer::start(&lab.db, SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT))).unwrap();
    let mut nat = lab.start_nat(&lab.config(PORT)).unwrap();
    assert!(!lab_ensure(&lab, &mut nat), "nothing changed yet");

    // The tunnel interface goes away and comes back with a new ifindex.
    lab.hub.ip(&["link", "del", HUB_TUNNEL_VETH]).unwrap();
    veth_pair(
        &lab.edge,
        "eh-et",
        "10.90.1.2/24",
        &lab.hub,
        HUB_TUNNEL_VETH,
        "10.90.1.1/24",
    )
    .unwrap();
    lab.edge
        .ip(&["route", "add", "10.99.0.0/24", "via", "10.90.1.1"])
        .unwrap();
    assert!(tcx_programs(&lab.hub, HUB_TUNNEL_VETH).unwrap().is_empty());

    assert!(
        lab_ensure(&lab, &mut nat),
        "the new interface was not noticed"
    );
    assert_eq!(
        tcx_programs(&lab.hub, HUB_TUNNEL_VETH).unwrap(),
        ["eh_nat_fwd"]
    );
    let mut stream = connect(&lab.edge, vip(), TIMEOUT).unwrap();
    assert!(round_trip(&mut stream, b"again").unwrap());
}

fn lab_ensure(lab: &NatLab, nat: &mut Nat) -> bool {
    let _inside = lab.hub.enter().unwrap();
    nat.ensure_attached().unwrap()
}

#[test]
fn pins_of_another_layout_are_refused_not_adopted() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    std::fs::create_dir_all(lab.pins.path()).unwrap();
    // An older build's counters: one field fewer.
    let old = lab.pins.path().join("NAT_COUNTERS");
    integration_tests::netns::run(
        std::process::Command::new("bpftool")
            .args(["map", "create"])
            .arg(&old)
            .args([
                "type",
                "percpu_array",
                "key",
                "4",
                "value",
                "128",
                "entries",
                "1",
            ])
            .args(["name", "NAT_COUNTERS"]),
    )
    .unwrap();

    let refused = lab
        .start_nat(&lab.config(PORT))
        .err()
        .expect("adopted a foreign layout");
    assert!(
        refused.to_string().contains("another layout"),
        "{refused:#}"
    );
    assert!(tcx_programs(&lab.hub, HUB_TUNNEL_VETH).unwrap().is_empty());

    Nat::remove(lab.pins.path()).unwrap();
    let _nat = lab.start_nat(&lab.config(PORT)).unwrap();
}
