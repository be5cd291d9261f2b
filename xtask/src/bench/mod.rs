//! `cargo xtask bench nat`: edgehub's eBPF NAT against plain routing, iptables and nftables,
//! interleaved in one run, written to `BENCHMARKS.md` and `bench-results/nat.json`.
//!
//! Topology, without WireGuard so that only the NAT differs: `ehlab-client` -> `ehlab-hub` ->
//! `ehlab-db` over veths, PostgreSQL 15 and an iperf3 sink in `db`. The hub namespace is made
//! anew for every mode and round, so no mode inherits another's conntrack or hooks.

mod measure;
mod modes;
mod report;
mod tcp;

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use clap::{Args, Subcommand};

use crate::{lab, util};
pub use modes::{Mode, PIN_DIR};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// The NAT on the hub: plain routing, iptables, nftables and edgehub's eBPF.
    Nat(NatArgs),
    /// (internal) Accept TCP connections and close them.
    #[command(hide = true)]
    TcpSink { listen: std::net::SocketAddr },
    /// (internal) Connect and close in a loop; print connections per second.
    #[command(hide = true)]
    TcpConnect {
        target: std::net::SocketAddr,
        seconds: u64,
    },
}

#[derive(Args)]
struct NatArgs {
    /// Rounds; every mode runs once per round, in turn.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per load figure (pgbench, iperf3).
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Modes to compare (comma separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    modes: Vec<Mode>,
    /// Write the report here instead of BENCHMARKS.md (e.g. for a trial run).
    #[arg(long)]
    output: Option<std::path::PathBuf>,
}

/// Every figure of one mode in one round, by name.
pub type Figures = BTreeMap<&'static str, f64>;

pub fn run(workspace: &Path, args: BenchArgs) -> anyhow::Result<()> {
    let args = match args.what {
        What::Nat(args) => args,
        What::TcpSink { listen } => return tcp::sink(listen),
        What::TcpConnect { target, seconds } => return tcp::connect_loop(target, seconds),
    };
    ensure!(
        util::is_root(),
        "the benchmarks need root (namespaces, eBPF)"
    );
    let modes = if args.modes.is_empty() {
        Mode::ALL.to_vec()
    } else {
        args.modes.clone()
    };
    let packages: &[&str] = if modes.contains(&Mode::Ebpf) {
        &["agent", "integration-tests"]
    } else {
        &["agent"]
    };
    let bin = lab::build(workspace, false, packages)?;
    lab::down()?;
    let started = Instant::now();
    // bpf_stats costs a little per program run: on only while the benchmark runs.
    let stats = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = std::fs::read_to_string(stats)?;
    std::fs::write(stats, "1")?;
    let outcome = run_rounds(&bin, &modes, &args);
    std::fs::write(stats, stats_before.trim())?;
    lab::down()?;
    let results = outcome?;
    let md = workspace.join(args.output.unwrap_or_else(|| "BENCHMARKS.md".into()));
    report::write(
        workspace,
        &md,
        &modes,
        &results,
        args.rounds,
        args.seconds,
        started.elapsed(),
    )
}

fn run_rounds(
    bin: &Path,
    modes: &[Mode],
    args: &NatArgs,
) -> anyhow::Result<BTreeMap<Mode, Vec<Figures>>> {
    modes::create_fixed_namespaces()?;
    let mut results: BTreeMap<Mode, Vec<Figures>> = BTreeMap::new();
    let seconds = Duration::from_secs(args.seconds.into());
    for round in 1..=args.rounds {
        for &mode in modes {
            eprintln!("bench: round {round}/{}, {}", args.rounds, mode.name());
            let hub = modes::Hub::up(bin, mode)?;
            let figures = measure::all(bin, &hub, seconds);
            hub.down();
            results.entry(mode).or_default().push(figures?);
        }
    }
    Ok(results)
}
