//! Connection tracking under load and over time: 2,000 concurrent connections, two peers on
//! the same source port, a full SNAT port range, expiry by TCP state, and live
//! reconfiguration with `apply`.

use std::{
    collections::HashSet,
    net::{SocketAddr, SocketAddrV4, TcpStream},
    time::{Duration, Instant},
};

use hub_daemon::nat::{Nat, Service, read_counters, read_flows};
use integration_tests::{
    nat_lab::{DB_ADDR, NatLab, Tunnel, VIP, bpftool_dump},
    require_root,
    tcp_echo::{EchoServer, connect, round_trip},
};

const PORT: u16 = 7100;
const TIMEOUT: Duration = Duration::from_secs(5);

fn vip() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(VIP, PORT))
}

fn echo(lab: &NatLab) -> EchoServer {
    EchoServer::start(&lab.db, SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT))).unwrap()
}

/// Polls `condition` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gc(lab: &NatLab, nat: &mut Nat) -> usize {
    let _inside = lab.hub.enter().unwrap();
    nat.collect_garbage().unwrap()
}

#[test]
fn two_thousand_concurrent_connections_then_expiry() {
    const CONNECTIONS: usize = 2_000;
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo = echo(&lab);
    let mut config = lab.config(PORT);
    config.timeouts.closing = Duration::from_millis(1);
    let mut nat = lab.start_nat(&config).unwrap();

    // Open them all, then use each one: every flow is live at the same time.
    let mut streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| connect(&lab.edge, vip(), TIMEOUT).unwrap())
        .collect();
    for (i, stream) in streams.iter_mut().enumerate() {
        assert!(
            round_trip(stream, &i.to_be_bytes()).unwrap(),
            "connection {i}"
        );
    }

    let flows = read_flows(lab.pins.path()).unwrap();
    assert_eq!(flows.len(), CONNECTIONS);
    let ports: HashSet<u16> = flows.iter().map(|f| f.translated.src.port()).collect();
    assert_eq!(
        ports.len(),
        CONNECTIONS,
        "SNAT ports are unique per backend"
    );
    assert!(flows.iter().all(|f| f.state == "established"));
    let counters = read_counters(lab.pins.path()).unwrap();
    assert_eq!(counters.new_flows, CONNECTIONS as u64);
    assert_eq!(counters.ended_flows, 0);
    assert_eq!(
        counters.drop_no_port + counters.drop_no_flow + counters.drop_error,
        0
    );

    // Established flows are not expired.
    assert_eq!(gc(&lab, &mut nat), 0);

    // Closed: FINs both ways end every flow, then the collector removes both entries of each.
    drop(streams);
    assert!(eventually(TIMEOUT, || {
        read_flows(lab.pins.path())
            .unwrap()
            .iter()
            .all(|f| f.state == "closed")
    }));
    let ended = read_counters(lab.pins.path()).unwrap().ended_flows;
    assert_eq!(ended, CONNECTIONS as u64);
    // The last FIN/ACKs pass before expiry (they would otherwise count as no_flow).
    assert!(eventually(TIMEOUT, || {
        read_flows(lab.pins.path())
            .unwrap()
            .iter()
            .all(|f| f.idle_ns > 50_000_000)
    }));
    assert_eq!(gc(&lab, &mut nat), CONNECTIONS);
    assert!(read_flows(lab.pins.path()).unwrap().is_empty());
    let dump = bpftool_dump(&lab.pins.path().join("NAT_FLOWS")).unwrap();
    assert_eq!(dump.trim(), "[]", "reply entries left behind");
}

#[test]
fn peers_sharing_a_source_port_get_distinct_translations() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo = echo(&lab);
    lab.edge
        .ip(&["addr", "add", "10.90.1.3/24", "dev", "eh-et"])
        .unwrap();
    let _nat = lab.start_nat(&lab.config(PORT)).unwrap();

    let mut streams = Vec::new();
    for source in ["10.90.1.2:20000", "10.90.1.3:20000"] {
        let _inside = lab.edge.enter().unwrap();
        let socket = nix_bound_stream(source.parse().unwrap());
        streams.push(socket);
    }
    for stream in &mut streams {
        assert!(round_trip(stream, b"same port").unwrap());
    }
    let flows = read_flows(lab.pins.path()).unwrap();
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[0].peer.port(), flows[1].peer.port());
    assert_ne!(flows[0].translated.src, flows[1].translated.src);
    // The first keeps its port (it is in the SNAT range); the second gets another.
    let ports: HashSet<u16> = flows.iter().map(|f| f.translated.src.port()).collect();
    assert!(ports.contains(&20_000), "{flows:#?}");
}

#[test]
fn a_reset_ends_the_flow_and_the_port_is_reused() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo = echo(&lab);
    let _nat = lab.start_nat(&lab.config(PORT)).unwrap();
    let source: SocketAddrV4 = "10.90.1.2:20001".parse().unwrap();

    let mut first = {
        let _inside = lab.edge.enter().unwrap();
        nix_bound_stream(source)
    };
    assert!(round_trip(&mut first, b"before the reset").unwrap());
    // Linger 0: close sends a RST.
    nix::sys::socket::setsockopt(
        &first,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(first);
    assert!(eventually(TIMEOUT, || {
        read_flows(lab.pins.path()).unwrap()[0].state == "closed"
    }));
    assert_eq!(read_counters(lab.pins.path()).unwrap().ended_flows, 1);

    // The same source port again: the flow starts over, translated as before.
    let mut second = {
        let _inside = lab.edge.enter().unwrap();
        nix_bound_stream(source)
    };
    assert!(round_trip(&mut second, b"after the reset").unwrap());
    let flows = read_flows(lab.pins.path()).unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].state, "established");
    assert_eq!(
        flows[0].translated.src.port(),
        20_001,
        "the peer's port is kept"
    );
}

/// A stream from `source` to the VIP (bound first, so the source port is chosen).
fn nix_bound_stream(source: SocketAddrV4) -> TcpStream {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect as nix_connect, setsockopt,
        socket, sockopt::ReuseAddr,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, ReuseAddr, &true).unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(source),
    )
    .unwrap();
    nix_connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(VIP, PORT)),
    )
    .unwrap();
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

#[test]
fn full_port_range_drops_new_flows_and_counts_them() {
    const RANGE: u16 = 16;
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo = echo(&lab);
    let mut config = lab.config(PORT);
    config.port_range = 45_000..=45_000 + RANGE - 1;
    let _nat = lab.start_nat(&config).unwrap();

    // Random probing fills a small range only approximately: open until connects fail.
    let mut streams = Vec::new();
    let mut failures = 0;
    for _ in 0..RANGE * 2 {
        match connect(&lab.edge, vip(), Duration::from_millis(300)) {
            Ok(stream) => streams.push(stream),
            Err(_) => failures += 1,
        }
    }
    assert!(streams.len() <= usize::from(RANGE));
    assert!(failures >= usize::from(RANGE), "{failures} failures");
    let counters = read_counters(lab.pins.path()).unwrap();
    assert!(counters.drop_no_port >= failures as u64, "{counters:#?}");
    let flows = read_flows(lab.pins.path()).unwrap();
    assert!(
        flows
            .iter()
            .all(|f| config.port_range.contains(&f.translated.src.port()))
    );
    for stream in &mut streams {
        assert!(round_trip(stream, b"still fine").unwrap());
    }
}

#[test]
fn apply_changes_timeouts_and_backends_live() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo = echo(&lab);
    let _second = EchoServer::start(
        &lab.db,
        SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT + 1)),
    )
    .unwrap();
    let mut config = lab.config(PORT);
    let mut nat = lab.start_nat(&config).unwrap();
    let mut kept = connect(&lab.edge, vip(), TIMEOUT).unwrap();
    assert!(round_trip(&mut kept, b"one").unwrap());

    // Add a second service; the open flow on the unchanged backend is untouched.
    config.services.push(Service {
        vip: SocketAddrV4::new(VIP, PORT + 1),
        backends: vec![SocketAddrV4::new(DB_ADDR, PORT + 1)],
    });
    {
        let _inside = lab.hub.enter().unwrap();
        nat.apply(&config).unwrap();
    }
    assert!(round_trip(&mut kept, b"two").unwrap());
    let vip2 = SocketAddr::V4(SocketAddrV4::new(VIP, PORT + 1));
    let mut moved = connect(&lab.edge, vip2, TIMEOUT).unwrap();
    assert!(round_trip(&mut moved, b"new service").unwrap());

    // Move the second service to another backend port: its flow goes, the first stays.
    config.services[1].backends = vec![SocketAddrV4::new(DB_ADDR, PORT)];
    {
        let _inside = lab.hub.enter().unwrap();
        nat.apply(&config).unwrap();
    }
    assert_eq!(read_flows(lab.pins.path()).unwrap().len(), 1);
    assert!(round_trip(&mut kept, b"three").unwrap());

    // An idle established flow expires once the timeout is lowered live.
    config.timeouts.established = Duration::from_millis(1);
    {
        let _inside = lab.hub.enter().unwrap();
        nat.apply(&config).unwrap();
    }
    assert!(eventually(TIMEOUT, || {
        read_flows(lab.pins.path())
            .unwrap()
            .iter()
            .all(|f| f.idle_ns > 1_000_000)
    }));
    assert_eq!(gc(&lab, &mut nat), 1);
    let before = read_counters(lab.pins.path()).unwrap().drop_no_flow;
    kept.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(round_trip(&mut kept, b"expired").is_err());
    assert!(read_counters(lab.pins.path()).unwrap().drop_no_flow > before);
}

#[test]
fn new_flows_spread_over_several_backends() {
    const CONNECTIONS: usize = 64;
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _first = echo(&lab);
    let _second = EchoServer::start(
        &lab.db,
        SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT + 1)),
    )
    .unwrap();
    let mut config = lab.config(PORT);
    config.services[0]
        .backends
        .push(SocketAddrV4::new(DB_ADDR, PORT + 1));
    let _nat = lab.start_nat(&config).unwrap();

    let mut streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| connect(&lab.edge, vip(), TIMEOUT).unwrap())
        .collect();
    for stream in &mut streams {
        assert!(round_trip(stream, b"either backend").unwrap());
    }
    let flows = read_flows(lab.pins.path()).unwrap();
    let on_second = flows
        .iter()
        .filter(|f| f.translated.dst.port() == PORT + 1)
        .count();
    assert!(
        on_second > CONNECTIONS / 8 && on_second < CONNECTIONS * 7 / 8,
        "{on_second} of {CONNECTIONS} flows on the second backend"
    );
}

#[test]
fn a_full_flow_table_evicts_the_oldest_flows() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _echo = echo(&lab);
    let mut config = lab.config(PORT);
    config.max_flows = 16;
    let mut nat = lab.start_nat(&config).unwrap();

    // Far more flows than the table holds: the LRU makes room for each new one.
    let mut streams: Vec<TcpStream> = (0..64)
        .filter_map(|_| connect(&lab.edge, vip(), TIMEOUT).ok())
        .collect();
    assert!(
        streams.len() >= 32,
        "new flows always get in: {}",
        streams.len()
    );
    assert!(read_flows(lab.pins.path()).unwrap().len() <= 32);

    // The oldest connection lost its flow: its packets are counted, not mistranslated.
    let before = read_counters(lab.pins.path()).unwrap().drop_no_flow;
    streams[0]
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(round_trip(&mut streams[0], b"evicted").is_err());
    assert!(read_counters(lab.pins.path()).unwrap().drop_no_flow > before);
    // The newest still works; the collector tidies whatever half-flows the LRU left.
    assert!(round_trip(streams.last_mut().unwrap(), b"newest").unwrap());
    gc(&lab, &mut nat);
}
