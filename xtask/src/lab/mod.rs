//! `cargo xtask lab`: the ten regions of the original setup on one machine.
//!
//! Namespaces: `ehlab-db` (PostgreSQL 15 on a private address, as RDS was), `ehlab-hub`
//! (the hub: edgehub with its eBPF NAT, or the original wireguard-go + iptables), `ehlab-net`
//! (the internet: one delay relay per region) and `ehlab-<code>` per region (wireguard-go and
//! edge-agent at the region's address of the original plan). `bench` sweeps every region from
//! the hub, as the original script did from EC2, and writes `lab-results/`.

pub(crate) mod hub;
pub(crate) mod net;
pub(crate) mod postgres;
pub(crate) mod regions;
pub mod relay;
mod report;

use std::{fs, path::Path, process::Command, time::Instant};

use anyhow::{Context as _, ensure};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::{setup, util};
use regions::Region;

#[derive(Args)]
pub struct LabArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    options: Options,
}

#[derive(Subcommand)]
enum Action {
    /// Create the namespaces and start the database, the hub, the relays and the agents.
    Up,
    /// Sweep every region and write lab-results/<timestamp>.{md,json,csv,svg}.
    Bench,
    /// Show what runs.
    Status,
    /// Remove every namespace, process, pin and file the lab made.
    Down,
    /// (internal) Run delay relays: `listen=A,bind=B,hub=C,rtt_ms=N[,jitter_ms=J][,loss=L]`.
    #[command(hide = true)]
    Relay { paths: Vec<String> },
}

#[derive(Args, Clone, Serialize, Deserialize)]
struct Options {
    /// Regions to run (codes, comma separated); all ten by default.
    #[arg(long, value_delimiter = ',', global = true)]
    regions: Vec<String>,
    /// Multiply every emulated round-trip time (0.1 for a quick run).
    #[arg(long, default_value_t = 1.0, global = true)]
    rtt_scale: f64,
    /// Extra random delay per datagram, ms (never reorders).
    #[arg(long, default_value_t = 0.0, global = true)]
    jitter_ms: f64,
    /// Share of WireGuard datagrams lost on each path (0.0 - 1.0).
    #[arg(long, default_value_t = 0.0, global = true)]
    loss: f64,
    /// NAT on the hub for `up`; the main job runs both, one after the other.
    #[arg(long, value_enum, global = true)]
    nat: Option<Nat>,
    /// Queries of each kind per region in `bench`.
    #[arg(long, default_value_t = 10, global = true)]
    iterations: u32,
    /// Run debug builds (quicker to build; for tests).
    #[arg(long, global = true)]
    debug: bool,
}

/// How the hub translates `10.50.0.1:5432` to the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Nat {
    /// edgehub: eBPF DNAT+SNAT at tcx.
    Ebpf,
    /// The original: iptables DNAT + MASQUERADE.
    Iptables,
}

impl Nat {
    fn name(self) -> &'static str {
        match self {
            Self::Ebpf => "ebpf",
            Self::Iptables => "iptables",
        }
    }
}

pub fn run(workspace: &Path, args: LabArgs) -> anyhow::Result<()> {
    let options = args.options;
    match args.action {
        None => main_job(workspace, &options),
        Some(Action::Up) => up(workspace, &options, options.nat.unwrap_or(Nat::Ebpf)),
        Some(Action::Bench) => {
            let lab = Lab::load()?;
            let results = bench(workspace, &lab, options.iterations)?;
            report::write(workspace, &lab, &[results])
        }
        Some(Action::Status) => {
            status();
            Ok(())
        }
        Some(Action::Down) => down(),
        Some(Action::Relay { paths }) => {
            let paths = paths
                .iter()
                .map(|p| relay::parse_path(p))
                .collect::<Result<Vec<_>, _>>()?;
            relay::run(&paths)
        }
    }
}

/// What `up` made, saved for `bench`, `status` and `down`.
#[derive(Serialize, Deserialize)]
pub struct Lab {
    regions: Vec<Region>,
    options: Options,
    nat: Nat,
    bin: std::path::PathBuf,
}

impl Lab {
    fn path() -> std::path::PathBuf {
        net::state_dir().join("lab.json")
    }

    fn load() -> anyhow::Result<Self> {
        let text =
            fs::read_to_string(Self::path()).context("no lab is up: run `cargo xtask lab up`")?;
        Ok(serde_json::from_str(&text)?)
    }

    fn save(&self) -> anyhow::Result<()> {
        Ok(fs::write(
            Self::path(),
            serde_json::to_string_pretty(self)?,
        )?)
    }
}

/// The README's first command: set up, build, bring the lab up with each NAT in turn, sweep,
/// and write one report with both.
fn main_job(workspace: &Path, options: &Options) -> anyhow::Result<()> {
    setup::run()?;
    let runs = up_and_bench(workspace, options)?;
    let lab = Lab::load()?;
    report::write(workspace, &lab, &runs)?;
    eprintln!(
        "lab: still up; `cargo xtask lab status` shows it, `cargo xtask lab down` removes it"
    );
    Ok(())
}

/// `up` with the first NAT, `bench`, then the same with each other NAT.
fn up_and_bench(workspace: &Path, options: &Options) -> anyhow::Result<Vec<report::Run>> {
    let mut runs = Vec::new();
    let modes = options
        .nat
        .map_or_else(|| vec![Nat::Ebpf, Nat::Iptables], |nat| vec![nat]);
    for (i, &nat) in modes.iter().enumerate() {
        if i == 0 {
            up(workspace, options, nat)?;
        } else {
            switch_hub(nat)?;
        }
        let lab = Lab::load()?;
        runs.push(bench(workspace, &lab, options.iterations)?);
    }
    Ok(runs)
}

/// The lab as a test, run by `cargo xtask test`: two regions with short delays, both NATs,
/// end to end; every region answers with plausible medians; `down` leaves nothing behind.
pub fn smoke_test(workspace: &Path) -> anyhow::Result<()> {
    let options = Options {
        regions: vec!["lhr".to_owned(), "syd".to_owned()],
        rtt_scale: 0.1,
        jitter_ms: 0.0,
        loss: 0.0,
        nat: None,
        iterations: 5,
        debug: true,
    };
    let outcome = up_and_bench(workspace, &options).and_then(|runs| {
        report::write(workspace, &Lab::load()?, &runs)?;
        Ok(runs)
    });
    down()?;
    for run in outcome? {
        run.check_plausible()?;
    }
    let left: Vec<String> = net::lab_namespaces();
    ensure!(
        left.is_empty(),
        "lab down left namespaces: {}",
        left.join(" ")
    );
    ensure!(
        !net::state_dir().exists(),
        "lab down left {}",
        net::STATE_DIR
    );
    ensure!(!hub::pins_exist(), "lab down left bpffs pins");
    eprintln!("lab smoke test: passed");
    Ok(())
}

fn up(workspace: &Path, options: &Options, nat: Nat) -> anyhow::Result<()> {
    ensure!(util::is_root(), "the lab needs root (namespaces, eBPF)");
    let started = Instant::now();
    if !net::lab_namespaces().is_empty() || Lab::path().exists() {
        eprintln!("lab: removing the previous lab first");
        down()?;
    }
    let regions = regions::select(workspace, &options.regions)?;
    let bin = build(workspace, options.debug, &["hub-daemon", "agent"])?;
    fs::create_dir_all(net::state_dir())?;
    let lab = Lab {
        regions,
        options: options.clone(),
        nat,
        bin,
    };
    lab.save()?;
    // A failed `up` leaves what it made recorded, for `down`.
    if let Err(e) = bring_up(&lab) {
        eprintln!("lab: up failed; run `cargo xtask lab down` to remove what it made");
        return Err(e);
    }
    eprintln!(
        "lab: up in {:.1?}: {} regions, hub NAT {}",
        started.elapsed(),
        lab.regions.len(),
        nat.name()
    );
    Ok(())
}

fn bring_up(lab: &Lab) -> anyhow::Result<()> {
    regions::create_namespaces(lab)?;
    postgres::start("scram-sha-256")?;
    hub::start(lab, lab.nat)?;
    regions::start_relays(lab)?;
    regions::start_edges(lab)?;
    regions::wait_for_agents(lab)
}

/// Replaces the hub's NAT, keeping the database, the relays and the edges.
fn switch_hub(nat: Nat) -> anyhow::Result<()> {
    let mut lab = Lab::load()?;
    eprintln!(
        "lab: switching the hub from {} to {}",
        lab.nat.name(),
        nat.name()
    );
    hub::stop(&lab);
    lab.nat = nat;
    lab.save()?;
    hub::start(&lab, nat)?;
    regions::wait_for_agents(&lab)
}

/// Builds the binaries the lab (or a benchmark) runs, from the given packages.
pub(crate) fn build(
    workspace: &Path,
    debug: bool,
    packages: &[&str],
) -> anyhow::Result<std::path::PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace).arg("build");
    for package in packages {
        cmd.args(["--package", package]);
    }
    if !debug {
        cmd.arg("--release");
    }
    util::run(&mut cmd)?;
    Ok(workspace.join(if debug {
        "target/debug"
    } else {
        "target/release"
    }))
}

fn bench(workspace: &Path, lab: &Lab, iterations: u32) -> anyhow::Result<report::Run> {
    let started = Instant::now();
    let run = report::sweep(workspace, lab, iterations)?;
    eprintln!(
        "lab: bench ({}) took {:.1?}",
        lab.nat.name(),
        started.elapsed()
    );
    Ok(run)
}

fn status() {
    let Ok(lab) = Lab::load() else {
        println!("no lab is up");
        return;
    };
    println!("hub NAT: {}", lab.nat.name());
    println!("namespaces: {}", net::lab_namespaces().join(" "));
    for name in net::recorded() {
        let pid = fs::read_to_string(net::state_dir().join("pids").join(&name)).unwrap_or_default();
        let pid: u32 = pid.trim().parse().unwrap_or(0);
        println!(
            "{name:<16} pid {pid:<8} {}",
            if net::running(pid) { "running" } else { "DEAD" }
        );
    }
}

/// Removes everything the lab made. Safe to run at any time, also after a failed `up`.
pub(crate) fn down() -> anyhow::Result<()> {
    if let Ok(lab) = Lab::load() {
        hub::stop(&lab);
    }
    for name in net::recorded() {
        net::stop(&name);
    }
    hub::remove_pins();
    let _ = fs::remove_dir_all(crate::bench::PIN_DIR);
    for ns in net::lab_namespaces() {
        net::ip(&["netns", "del", &ns])?;
    }
    if net::state_dir().exists() {
        fs::remove_dir_all(net::state_dir()).context("removing the lab's state directory")?;
    }
    eprintln!("lab: down");
    Ok(())
}
