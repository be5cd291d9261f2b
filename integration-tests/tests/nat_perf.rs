//! What the NAT costs per packet: iperf3 through the VIP on a veth tunnel, with the kernel's
//! run-time statistics on (`BPF_ENABLE_STATS`, held only while the test runs), read from
//! the attached programs, next to the trivial `edgehub_count` on the peer's side as the
//! floor of what the statistics themselves cost. Prints the numbers; asserts only a
//! generous bound.

use std::{
    net::{SocketAddr, SocketAddrV4, TcpStream},
    time::{Duration, Instant},
};

use aya::sys::{Stats, enable_stats};
use hub_daemon::{
    nat::{ProgramStats, Service, attached_program_stats, read_counters},
    probe::Probe,
};
use integration_tests::{
    ChildGuard,
    nat_lab::{DB_ADDR, HUB_EGRESS_IF, HUB_TUNNEL_VETH, NatLab, Tunnel, VIP, WG_IF},
    require_root,
    tcp_echo::{EchoServer, connect},
};

const PORT: u16 = 5201;
const ECHO_PORT: u16 = 7400;
/// Far above anything measured (about 0.2-0.5 µs); only catches a pathological regression.
const MAX_NS_PER_PACKET: u64 = 5_000;

fn stats(lab: &NatLab, iface: &str) -> ProgramStats {
    let _inside = lab.hub.enter().unwrap();
    attached_program_stats(iface).unwrap().remove(0)
}

fn edge_count(lab: &NatLab) -> ProgramStats {
    let _inside = lab.edge.enter().unwrap();
    attached_program_stats("eh-et").unwrap().remove(0)
}

/// An iperf3 server on the database side, listening once this returns.
fn iperf3_server(lab: &NatLab) -> ChildGuard {
    let server = ChildGuard::spawn(
        lab.db
            .command("iperf3")
            .args(["-s", "-B", &DB_ADDR.to_string(), "-p", &PORT.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = SocketAddr::V4(SocketAddrV4::new(DB_ADDR, PORT));
    while {
        let _inside = lab.db.enter().unwrap();
        TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err()
    } {
        assert!(Instant::now() < deadline, "iperf3 did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// Runs the iperf3 client in the edge namespace against the VIP; returns Gbit/s received.
fn iperf3(lab: &NatLab, extra: &[&str]) -> f64 {
    let (vip, port) = (VIP.to_string(), PORT.to_string());
    let mut args = vec!["-c", &vip, "-p", &port, "-t", "2", "-J"];
    args.extend_from_slice(extra);
    let out = lab.edge.exec("iperf3", &args).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e9
}

fn per_packet(before: &ProgramStats, after: &ProgramStats) -> (u64, u64) {
    let runs = after.run_count - before.run_count;
    (runs, (after.run_time_ns - before.run_time_ns) / runs.max(1))
}

#[test]
fn per_packet_cost_under_iperf3() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _server = iperf3_server(&lab);
    // A second service with an echo server that always listens (iperf3 reopens its socket
    // between tests) for the unloaded measurement.
    let _echo = EchoServer::start(
        &lab.db,
        SocketAddr::V4(SocketAddrV4::new(DB_ADDR, ECHO_PORT)),
    )
    .unwrap();
    let mut config = lab.config(PORT);
    config.services.push(Service {
        vip: SocketAddrV4::new(VIP, ECHO_PORT),
        backends: vec![SocketAddrV4::new(DB_ADDR, ECHO_PORT)],
    });
    let _nat = lab.start_nat(&config).unwrap();
    let _probe = {
        let _inside = lab.edge.enter().unwrap();
        Probe::attach("eh-et").unwrap()
    };
    let _stats = enable_stats(Stats::RunTime).unwrap();

    let fwd_before = stats(&lab, HUB_TUNNEL_VETH);
    let reply_before = stats(&lab, HUB_EGRESS_IF);
    let count_before = edge_count(&lab);
    let gbps = iperf3(&lab, &[]);
    let fwd_after = stats(&lab, HUB_TUNNEL_VETH);
    let reply_after = stats(&lab, HUB_EGRESS_IF);
    let (count_runs, count_ns) = per_packet(&count_before, &edge_count(&lab));

    let (fwd_runs, fwd_ns) = per_packet(&fwd_before, &fwd_after);
    let (reply_runs, reply_ns) = per_packet(&reply_before, &reply_after);
    let counters = read_counters(lab.pins.path()).unwrap();
    eprintln!(
        "iperf3 through the VIP: {gbps:.2} Gbit/s; eh_nat_fwd {fwd_ns} ns/packet over \
         {fwd_runs} runs; eh_nat_reply {reply_ns} ns/packet over {reply_runs} runs; \
         {} forwarded ({} bytes), {} replied; edgehub_count {count_ns} ns/packet over \
         {count_runs} runs",
        counters.forwarded, counters.forwarded_bytes, counters.replied
    );
    assert!(fwd_runs > 1_000 && reply_runs > 1_000);
    assert!(fwd_ns < MAX_NS_PER_PACKET && reply_ns < MAX_NS_PER_PACKET);
    assert_eq!(
        counters.drop_error + counters.drop_malformed,
        0,
        "{counters:#?}"
    );

    // Unloaded: connections opened and closed one at a time, small packets only.
    let fwd_before = stats(&lab, HUB_TUNNEL_VETH);
    let reply_before = stats(&lab, HUB_EGRESS_IF);
    let vip = SocketAddr::V4(SocketAddrV4::new(VIP, ECHO_PORT));
    for _ in 0..200 {
        drop(connect(&lab.edge, vip, Duration::from_secs(5)).unwrap());
    }
    let (fwd_runs, fwd_ns) = per_packet(&fwd_before, &stats(&lab, HUB_TUNNEL_VETH));
    let (reply_runs, reply_ns) = per_packet(&reply_before, &stats(&lab, HUB_EGRESS_IF));
    eprintln!(
        "200 connections opened and closed one at a time: eh_nat_fwd {fwd_ns} ns/packet \
         over {fwd_runs} runs; eh_nat_reply {reply_ns} ns/packet over {reply_runs} runs"
    );
    assert!(fwd_ns < MAX_NS_PER_PACKET && reply_ns < MAX_NS_PER_PACKET);
}

/// Bulk TCP both ways through wireguard-go: GSO packets from the tun (forward) and into it
/// (reply, `-R`) keep correct checksums, or TCP would stall.
#[test]
fn bulk_transfer_both_ways_through_wireguard() {
    require_root();
    let lab = NatLab::new(Tunnel::WireGuard).unwrap();
    let _server = iperf3_server(&lab);
    let _nat = lab.start_nat(&lab.config(PORT)).unwrap();
    let _stats = enable_stats(Stats::RunTime).unwrap();

    let fwd_before = stats(&lab, WG_IF);
    let reply_before = stats(&lab, HUB_EGRESS_IF);
    let upload = iperf3(&lab, &[]);
    let download = iperf3(&lab, &["-R"]);
    let (fwd_runs, fwd_ns) = per_packet(&fwd_before, &stats(&lab, WG_IF));
    let (reply_runs, reply_ns) = per_packet(&reply_before, &stats(&lab, HUB_EGRESS_IF));
    eprintln!(
        "through wireguard-go: upload {upload:.2} Gbit/s, download {download:.2} Gbit/s; \
         eh_nat_fwd {fwd_ns} ns/packet over {fwd_runs} runs; eh_nat_reply {reply_ns} \
         ns/packet over {reply_runs} runs"
    );
    assert!(
        upload > 0.05 && download > 0.05,
        "{upload} {download} Gbit/s"
    );
    let counters = read_counters(lab.pins.path()).unwrap();
    assert_eq!(
        counters.drop_error + counters.drop_malformed,
        0,
        "{counters:#?}"
    );
}

/// The two ways of sending translated packets on, measured one after the other on the same
/// lab: redirecting (what edgehub does) and handing them back to the kernel's forwarding.
#[test]
fn redirect_against_kernel_forwarding() {
    require_root();
    let lab = NatLab::new(Tunnel::Veth).unwrap();
    let _server = iperf3_server(&lab);
    let mut nat = lab.start_nat(&lab.config(PORT)).unwrap();
    // What kernel forwarding needs: SNAT'd packets carry the hub's own address as source.
    for setting in [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.all.accept_local=1",
        &format!("net.ipv4.conf.{HUB_TUNNEL_VETH}.rp_filter=0"),
        &format!("net.ipv4.conf.{HUB_TUNNEL_VETH}.accept_local=1"),
    ] {
        lab.hub.exec("sysctl", &["-qw", setting]).unwrap();
    }
    let _stats = enable_stats(Stats::RunTime).unwrap();

    let mut results = Vec::new();
    for kernel in [false, true, false, true] {
        {
            let _inside = lab.hub.enter().unwrap();
            nat.set_kernel_forwarding(kernel).unwrap();
        }
        let fwd_before = stats(&lab, HUB_TUNNEL_VETH);
        let reply_before = stats(&lab, HUB_EGRESS_IF);
        let gbps = iperf3(&lab, &[]);
        let (_, fwd_ns) = per_packet(&fwd_before, &stats(&lab, HUB_TUNNEL_VETH));
        let (_, reply_ns) = per_packet(&reply_before, &stats(&lab, HUB_EGRESS_IF));
        let mode = if kernel {
            "kernel forwarding"
        } else {
            "redirect"
        };
        eprintln!("{mode}: {gbps:.2} Gbit/s, eh_nat_fwd {fwd_ns} ns, eh_nat_reply {reply_ns} ns");
        results.push(gbps);
    }
    assert!(results.iter().all(|gbps| *gbps > 0.1), "{results:?}");
}
