//! `BENCHMARKS.md` and `bench-results/nat.json`: medians with min-max over the rounds, each
//! figure as a ratio to plain routing and to iptables, and the targets met or missed.

use std::{
    collections::BTreeMap, fmt::Write as _, fs, path::Path, process::Command, time::Duration,
};

use serde_json::json;

use super::{Figures, Mode, measure::median};
use crate::util;

/// (figure, label), in the order of the table.
const FIGURES: &[(&str, &str)] = &[
    ("tps_1", "pgbench SELECT 1, 1 client (TPS)"),
    (
        "latency_1_ms",
        "pgbench SELECT 1, 1 client, mean latency (ms)",
    ),
    ("tps_16", "pgbench SELECT 1, 16 clients (TPS)"),
    (
        "latency_16_ms",
        "pgbench SELECT 1, 16 clients, mean latency (ms)",
    ),
    (
        "connections_per_s",
        "new PostgreSQL connections per second (pgbench -C, 4 clients)",
    ),
    (
        "tcp_connections_per_s",
        "new TCP connections per second (connect + close loop, no database)",
    ),
    ("throughput_gbit_s", "TCP throughput, iperf3 (Gbit/s)"),
    (
        "kernel_cpu_ns_per_packet",
        "machine kernel CPU per forwarded packet (ns)",
    ),
    (
        "bpf_ns_per_packet",
        "eBPF NAT run time per packet (ns, bpf_stats)",
    ),
    (
        "bpf_ns_per_packet_100k_flows",
        "eBPF NAT run time per packet, 100k flows in the table (ns)",
    ),
    (
        "bpf_empty_ns_per_packet",
        "an empty tcx program (`edgehub_count`) per packet (ns, bpf_stats)",
    ),
    (
        "conntrack_map_mib",
        "conntrack map memory, sized for 131,072 flows (MiB)",
    ),
    (
        "pgbench_count_p50_ms",
        "SELECT COUNT(*), pgbench -M prepared, 1 client, median (ms)",
    ),
    (
        "agent_count_p50_ms",
        "SELECT COUNT(*), edge-agent, median (ms)",
    ),
];

struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

fn summarize(rounds: &[Figures], figure: &str) -> Option<Summary> {
    let mut values: Vec<f64> = rounds
        .iter()
        .filter_map(|f| f.get(figure).copied())
        .collect();
    let median = median(&mut values)?;
    Some(Summary {
        median,
        min: values[0],
        max: values[values.len() - 1],
    })
}

pub fn write(
    workspace: &Path,
    md_path: &Path,
    modes: &[Mode],
    results: &BTreeMap<Mode, Vec<Figures>>,
    rounds: u32,
    seconds: u32,
    took: Duration,
) -> anyhow::Result<()> {
    let get = |mode: Mode, figure: &str| results.get(&mode).and_then(|r| summarize(r, figure));
    let machine = machine();
    let mut md = format!(
        "# Benchmarks: edgehub's eBPF NAT beside plain routing, iptables and nftables\n\n\
         Made by `cargo xtask bench nat` on {machine}. {rounds} rounds, the modes interleaved \
         within each round, {seconds} s per load figure; the run took {:.0} s. Each cell: \
         median over rounds (min-max). Topology: client -> hub -> db namespaces over veth, \
         no WireGuard, PostgreSQL 15 (trust auth) and an iperf3 sink in db; a fresh hub \
         namespace for every mode and round. All processes share this machine's cores, so \
         the figures compare modes with each other, not with other machines.\n\n",
        took.as_secs_f64()
    );
    md += "| figure |";
    for mode in modes {
        let _ = write!(md, " {} |", mode.name());
    }
    md += " ebpf / plain | ebpf / iptables |\n|---|";
    md += &"---|".repeat(modes.len() + 2);
    md += "\n";
    for &(figure, label) in FIGURES {
        if modes.iter().all(|&m| get(m, figure).is_none()) {
            continue;
        }
        let _ = write!(md, "| {label} |");
        for &mode in modes {
            let cell = get(mode, figure).map_or_else(
                || "-".to_owned(),
                |s| format!("{} ({}-{})", num(s.median), num(s.min), num(s.max)),
            );
            let _ = write!(md, " {cell} |");
        }
        let ratio = |base: Mode| match (get(Mode::Ebpf, figure), get(base, figure)) {
            (Some(e), Some(b)) if b.median > 0.0 => format!("{:.3}", e.median / b.median),
            _ => "-".to_owned(),
        };
        let _ = writeln!(md, " {} | {} |", ratio(Mode::Plain), ratio(Mode::Iptables));
    }

    let targets = targets(&mut md, &get);
    md += "\nFigures: `kernel CPU per forwarded packet` is the machine's system + irq + softirq \
           time during the iperf3 run divided by the packets the hub received, so it includes \
           the client's and the sink's TCP stacks: compare it between modes only. \
           `eBPF run time` is bpf_stats' run_time_ns / run_cnt over edgehub's programs in that \
           run. The agent and pgbench rows run the same `SELECT COUNT(*) FROM contacts` over \
           the same path, one connection, and compare medians.\n";

    fs::write(md_path, &md)?;
    let dir = workspace.join("bench-results");
    fs::create_dir_all(&dir)?;
    let raw: BTreeMap<&str, &Vec<Figures>> = results.iter().map(|(m, r)| (m.name(), r)).collect();
    let json = json!({"machine": machine, "rounds": rounds, "seconds": seconds, "results": raw, "targets": targets});
    fs::write(dir.join("nat.json"), serde_json::to_string_pretty(&json)?)?;
    print!("{md}");
    eprintln!(
        "bench: wrote {} and bench-results/nat.json",
        md_path.display()
    );
    Ok(())
}

/// Appends the targets table; returns the same as JSON.
fn targets(
    md: &mut String,
    get: &impl Fn(Mode, &str) -> Option<Summary>,
) -> Vec<serde_json::Value> {
    *md += "\n## Targets\n\n| target | measured | met |\n|---|---|---|\n";
    let median_of = |mode: Mode, figure: &str| get(mode, figure).map(|s| s.median);
    let mut targets = Vec::new();
    let mut check = |name: &str, measured: Option<(f64, bool)>, unit: &str| {
        let (text, met) = measured.map_or(("not measured".to_owned(), "no"), |(v, ok)| {
            (
                format!("{}{unit}", num(v)),
                if ok { "yes" } else { "**no**" },
            )
        });
        let _ = writeln!(md, "| {name} | {text} | {met} |");
        targets
            .push(json!({"target": name, "measured": measured.map(|m| m.0), "met": met == "yes"}));
    };
    check(
        "eBPF program at most 150 ns per packet",
        median_of(Mode::Ebpf, "bpf_ns_per_packet").map(|v| (v, v <= 150.0)),
        " ns",
    );
    for clients in ["1", "16"] {
        let figure = if clients == "1" { "tps_1" } else { "tps_16" };
        let e = median_of(Mode::Ebpf, figure);
        let pair = |base: Mode| e.zip(median_of(base, figure)).map(|(e, b)| e / b);
        check(
            &format!("TPS, {clients} client(s): at least 0.97x plain routing"),
            pair(Mode::Plain).map(|r| (r, r >= 0.97)),
            "x",
        );
        check(
            &format!("TPS, {clients} client(s): at least iptables"),
            pair(Mode::Iptables).map(|r| (r, r >= 1.0)),
            "x",
        );
    }
    let ratio = |figure: &str, base: Mode| {
        median_of(Mode::Ebpf, figure)
            .zip(median_of(base, figure))
            .map(|(e, b)| e / b)
    };
    check(
        "new connections per second at least 1.3x iptables (PostgreSQL connections)",
        ratio("connections_per_s", Mode::Iptables).map(|r| (r, r >= 1.3)),
        "x",
    );
    check(
        "new connections per second at least 1.3x iptables (TCP only)",
        ratio("tcp_connections_per_s", Mode::Iptables).map(|r| (r, r >= 1.3)),
        "x",
    );
    check(
        "throughput at least 0.97x plain routing",
        ratio("throughput_gbit_s", Mode::Plain).map(|r| (r, r >= 0.97)),
        "x",
    );
    let agent = median_of(Mode::Ebpf, "agent_count_p50_ms")
        .zip(median_of(Mode::Ebpf, "pgbench_count_p50_ms"))
        .map(|(a, p)| a / p);
    check(
        "agent p50 within 5% of pgbench (through the eBPF NAT)",
        agent.map(|r| (r, (r - 1.0).abs() <= 0.05)),
        "x",
    );

    targets
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// CPU model, cores, kernel and date.
fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = util::output(Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {}, {}",
        kernel.trim(),
        date.trim()
    )
}
