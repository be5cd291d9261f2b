//! The hub's four ways of reaching the database, each set up in a fresh hub namespace.

use std::{process::Command, time::Duration};

use anyhow::Context as _;
use clap::ValueEnum;
use serde::Serialize;

use crate::lab::{
    hub, net, postgres,
    regions::{DB_ADDR, DB_NS, HUB_NS, HUB_PRIVATE_ADDR},
};

pub const CLIENT_NS: &str = "ehlab-client";
pub const VIP: &str = "10.50.0.1";
const CLIENT_ADDR: &str = "10.50.0.2";
pub const SINK_PORT: u16 = 5201;
/// The accept-and-close sink for connection rates.
pub const CONNECT_PORT: u16 = 5202;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
pub enum Mode {
    /// No NAT: the client addresses the database directly, the hub only routes (the floor).
    Plain,
    /// The original hub: iptables DNAT + MASQUERADE.
    Iptables,
    /// The same rules in nftables.
    Nftables,
    /// edgehub's eBPF NAT at tcx.
    Ebpf,
}

impl Mode {
    pub const ALL: [Self; 4] = [Self::Plain, Self::Iptables, Self::Nftables, Self::Ebpf];

    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
            Self::Ebpf => "ebpf",
        }
    }

    /// Where the client connects.
    pub fn target(self) -> &'static str {
        if self == Self::Plain { DB_ADDR } else { VIP }
    }
}

/// The client and database namespaces, the database and the iperf3 sink: made once per run.
pub fn create_fixed_namespaces() -> anyhow::Result<()> {
    net::add_ns(CLIENT_NS)?;
    net::add_ns(DB_NS)?;
    // The database's address must exist before PostgreSQL binds it: a first hub namespace
    // provides the link, and every later one re-creates it with the same address.
    net::add_ns(HUB_NS)?;
    links()?;
    postgres::start("trust")?;
    let mut sink = Command::new("ip");
    sink.args(["netns", "exec", DB_NS, "iperf3", "--server", "--port"])
        .arg(SINK_PORT.to_string());
    net::spawn("iperf3", sink)?;
    net::wait_for(
        "the iperf3 sink",
        Some("iperf3"),
        Duration::from_secs(10),
        || net::listening(DB_NS, SINK_PORT),
    )?;
    let mut connect_sink = Command::new("ip");
    connect_sink
        .args(["netns", "exec", DB_NS])
        .arg(std::env::current_exe()?)
        .args(["bench", "tcp-sink", &format!("{DB_ADDR}:{CONNECT_PORT}")]);
    net::spawn("tcp-sink", connect_sink)?;
    net::wait_for(
        "the TCP sink",
        Some("tcp-sink"),
        Duration::from_secs(10),
        || net::listening(DB_NS, CONNECT_PORT),
    )?;
    net::ip(&["netns", "del", HUB_NS])
}

/// The hub's two veths, their addresses and the routes plain routing needs.
fn links() -> anyhow::Result<()> {
    net::veth(
        (HUB_NS, "eh-client", &format!("{VIP}/24")),
        (CLIENT_NS, "eth0", &format!("{CLIENT_ADDR}/24")),
    )?;
    net::veth(
        (HUB_NS, "ens5", &format!("{HUB_PRIVATE_ADDR}/24")),
        (DB_NS, "eth0", &format!("{DB_ADDR}/24")),
    )?;
    net::ip(&["-n", CLIENT_NS, "route", "add", "172.31.0.0/24", "via", VIP])?;
    net::ip(&[
        "-n",
        DB_NS,
        "route",
        "add",
        "10.50.0.0/24",
        "via",
        HUB_PRIVATE_ADDR,
    ])?;
    in_hub(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
}

fn in_hub(args: &[&str]) -> anyhow::Result<()> {
    net::quiet(
        Command::new("ip")
            .args(["netns", "exec", HUB_NS])
            .args(args),
    )
}

/// A hub namespace set up for one mode; `down` deletes it with everything in it.
pub struct Hub {
    pub mode: Mode,
}

impl Hub {
    pub fn up(bin: &std::path::Path, mode: Mode) -> anyhow::Result<Self> {
        net::add_ns(HUB_NS)?;
        let hub = Self { mode };
        links()?;
        let ports = format!("5432,{SINK_PORT},{CONNECT_PORT}");
        match mode {
            Mode::Plain => {}
            Mode::Iptables => hub::iptables_nat(&ports)?,
            Mode::Nftables => {
                let rules = format!(
                    "table ip edgehub_bench {{\n\
                     chain pre {{ type nat hook prerouting priority dstnat; ip daddr {VIP} tcp dport {{ 5432, {SINK_PORT}, {CONNECT_PORT} }} dnat to {DB_ADDR}; }}\n\
                     chain post {{ type nat hook postrouting priority srcnat; ip daddr {DB_ADDR} oifname \"ens5\" masquerade; }}\n}}\n"
                );
                let file = net::state_dir().join("bench.nft");
                std::fs::write(&file, rules)?;
                in_hub(&["nft", "-f", &file.display().to_string()])?;
            }
            Mode::Ebpf => start_ebpf(bin).context("starting edgehub's NAT")?,
        }
        Ok(hub)
    }

    pub fn down(self) {
        if self.mode == Mode::Ebpf {
            net::stop("nat");
            let _ = std::fs::remove_dir_all(PIN_DIR);
        }
        let _ = net::ip(&["netns", "del", HUB_NS]);
    }
}

/// Where the benchmark's NAT pins its maps.
pub const PIN_DIR: &str = "/sys/fs/bpf/edgehub-bench";

/// edgehub's NAT alone on the hub's veths (`nat-on-veth`, a thin driver of
/// `hub_daemon::nat`), translating both the database and the iperf3 sink.
fn start_ebpf(bin: &std::path::Path) -> anyhow::Result<()> {
    // nsenter, not `ip netns exec`: the latter's fresh /sys would hide the host's bpffs.
    let mut nat = Command::new("nsenter");
    nat.arg(format!("--net=/run/netns/{HUB_NS}"))
        .arg("--")
        .arg(bin.join("nat-on-veth"))
        .args([
            "eh-client",
            "ens5",
            HUB_PRIVATE_ADDR,
            PIN_DIR,
            "10.50.0.0/24",
        ])
        .arg(format!("{VIP}:5432={DB_ADDR}:5432"))
        .arg(format!("{VIP}:{SINK_PORT}={DB_ADDR}:{SINK_PORT}"))
        .arg(format!("{VIP}:{CONNECT_PORT}={DB_ADDR}:{CONNECT_PORT}"));
    net::spawn("nat", nat)?;
    let log = net::state_dir().join("logs/nat.log");
    net::wait_for("the eBPF NAT", Some("nat"), Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
    })
}

/// Adds `count` synthetic established flows to the running NAT's table.
pub fn fill_flows(bin: &std::path::Path, count: u32) -> anyhow::Result<()> {
    net::quiet(
        Command::new(bin.join("nat-on-veth"))
            .args(["fill", PIN_DIR])
            .arg(count.to_string()),
    )
}
