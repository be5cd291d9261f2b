//! Runs edgehub's NAT between two existing interfaces, without WireGuard or the daemon, until
//! SIGTERM or SIGINT; then removes it. `cargo xtask bench nat` uses it to measure the NAT
//! alone, on veths.
//!
//! ```text
//! nat-on-veth TUNNEL_IF EGRESS_IF EGRESS_ADDR PIN_DIR PEER_CIDR VIP:PORT=BACKEND:PORT...
//! nat-on-veth fill PIN_DIR N     # add N synthetic established flows to the running NAT
//! ```

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{HashMap, Map, MapData};
use hub_common::conntrack::{FlowEntry, FlowKey, direction, tcp_state};
use hub_daemon::nat::{Nat, NatConfig, Service};
use nix::sys::signal::{SigSet, Signal};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [fill, pin_dir, count] = args.as_slice()
        && fill == "fill"
    {
        return fill_flows(Path::new(pin_dir), count.parse().context("N")?);
    }
    let [tunnel, egress, egress_addr, pin_dir, peers, services @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: nat-on-veth TUNNEL_IF EGRESS_IF EGRESS_ADDR PIN_DIR PEER_CIDR VIP:PORT=BACKEND:PORT..."
        );
    };
    let mut config = NatConfig::new(tunnel, egress, egress_addr.parse::<Ipv4Addr>()?);
    config.pin_dir = pin_dir.into();
    config.peer_ranges = vec![peers.parse().context("PEER_CIDR")?];
    config.max_flows = 131_072;
    for service in services {
        let (vip, backend) = service.split_once('=').context("VIP:PORT=BACKEND:PORT")?;
        config.services.push(Service {
            vip: vip.parse::<SocketAddrV4>()?,
            backends: vec![backend.parse::<SocketAddrV4>()?],
        });
    }

    // Signals are taken synchronously below: block them before anything else can run.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block()?;

    let mut nat = Nat::start(&config)?;
    println!("ready");
    // Collects expired flows every second, as the daemon does every `gc_interval`.
    let signal = loop {
        if let Some(signal) = wait_signal(&signals, Duration::from_secs(1))? {
            break signal;
        }
        nat.collect_garbage()?;
    };
    drop(nat);
    Nat::remove(&config.pin_dir)?;
    println!("stopped on {signal}");
    Ok(())
}

/// Waits up to `timeout` for one of the blocked `signals`.
fn wait_signal(signals: &SigSet, timeout: Duration) -> anyhow::Result<Option<Signal>> {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().cast_signed(),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // SAFETY: a valid signal set and timespec that outlive the call; no siginfo is asked for.
    let signal =
        unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), &raw const timeout) };
    if signal < 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) => Ok(None),
            _ => Err(err.into()),
        };
    }
    Ok(Some(Signal::try_from(signal)?))
}

/// Inserts `count` established flows (both directions) from 100.64.0.0/10 peers, which no
/// test traffic uses, so the table holds that many flows while real traffic is measured.
fn fill_flows(pin_dir: &Path, count: u32) -> anyhow::Result<()> {
    let data = MapData::from_pin(pin_dir.join("NAT_FLOWS")).context("opening NAT_FLOWS")?;
    let mut flows: HashMap<_, FlowKey, FlowEntry> = HashMap::try_from(Map::LruHashMap(data))?;
    let now = monotonic_ns();
    let tcp = libc::IPPROTO_TCP.cast_unsigned();
    let (vip, egress, backend) = (
        Ipv4Addr::new(10, 50, 0, 1),
        Ipv4Addr::new(172, 31, 0, 1),
        Ipv4Addr::new(172, 31, 0, 2),
    );
    let key = |saddr: Ipv4Addr, sport: u16, daddr: Ipv4Addr, dport: u16| FlowKey {
        saddr: u32::from(saddr).to_be(),
        daddr: u32::from(daddr).to_be(),
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto: tcp,
    };
    for i in 0..count {
        let peer = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i / 40_000);
        let port = 20_000 + (i % 40_000) as u16;
        // Peer -> VIP, translated to egress -> backend; the answer backend -> egress, translated
        // back to VIP -> peer.
        let forward = key(peer, port, vip, 5432);
        let reply = key(backend, 5432, egress, port);
        let entry = |dir, rewrite, other| FlowEntry {
            rewrite,
            other,
            direction: dir,
            state: tcp_state::ESTABLISHED,
            created_ns: now,
            last_seen_ns: now,
            ..FlowEntry::default()
        };
        let to_backend = key(egress, port, backend, 5432);
        let to_peer = key(vip, 5432, peer, port);
        flows.insert(forward, entry(direction::FORWARD, to_backend, reply), 0)?;
        flows.insert(reply, entry(direction::REPLY, to_peer, forward), 0)?;
    }
    println!("filled {count} flows");
    Ok(())
}

/// `CLOCK_MONOTONIC` in ns, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec.cast_unsigned() * 1_000_000_000 + ts.tv_nsec.cast_unsigned()
}
