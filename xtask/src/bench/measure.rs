//! The figures of one mode: pgbench throughput and latency, new connections per second,
//! iperf3 throughput, CPU per forwarded packet, and the agent beside pgbench.

use std::{fs, process::Command, time::Duration};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{
    Figures,
    modes::{self, CLIENT_NS, CONNECT_PORT, Hub, Mode, SINK_PORT},
};
use crate::lab::{net, regions::HUB_NS};

const AGENT_PORT: u16 = 8080;
const AGENT_ITERATIONS: u32 = 100;

pub fn all(bin: &std::path::Path, hub: &Hub, seconds: Duration) -> anyhow::Result<Figures> {
    let target = hub.mode.target();
    let mut f = Figures::new();
    let select1 = script("select1", "SELECT 1;")?;
    let count = script("count", "SELECT COUNT(*) FROM contacts;")?;

    let (tps, latency) = pgbench(target, &select1, 1, seconds, false)?;
    f.insert("tps_1", tps);
    f.insert("latency_1_ms", latency);
    let (tps, latency) = pgbench(target, &select1, 16, seconds, false)?;
    f.insert("tps_16", tps);
    f.insert("latency_16_ms", latency);
    let (connections, _) = pgbench(target, &select1, 4, seconds, true)?;
    f.insert("connections_per_s", connections);
    f.insert("tcp_connections_per_s", tcp_connections(target, seconds)?);

    // In plain mode an empty program watches the hub's client side: the floor of what
    // bpf_stats measures for any program on this machine.
    let empty = if hub.mode == Mode::Plain {
        Some(attach_empty_program(bin, seconds)?)
    } else {
        None
    };
    let bpf_before = bpf_stats();
    let empty_before = bpf_stats_of("edgehub_count");
    let cpu_before = kernel_cpu_ns()?;
    let packets_before = hub_packets()?;
    f.insert("throughput_gbit_s", iperf3(target, seconds)? / 1e9);
    let packets = hub_packets()?.saturating_sub(packets_before);
    let cpu = kernel_cpu_ns()?.saturating_sub(cpu_before);
    if packets > 0 {
        f.insert("kernel_cpu_ns_per_packet", cpu as f64 / packets as f64);
    }
    if let Some(mut probe) = empty {
        let (time, runs) = bpf_stats_of("edgehub_count");
        if runs > empty_before.1 {
            f.insert(
                "bpf_empty_ns_per_packet",
                (time - empty_before.0) as f64 / (runs - empty_before.1) as f64,
            );
        }
        let _ = probe.kill();
        let _ = probe.wait();
    }
    if hub.mode == Mode::Ebpf {
        let (time, runs) = bpf_stats();
        let (time, runs) = (time - bpf_before.0, runs - bpf_before.1);
        if runs > 0 {
            f.insert("bpf_ns_per_packet", time as f64 / runs as f64);
        }
    }

    f.insert(
        "pgbench_count_p50_ms",
        pgbench_median(target, &count, seconds)?,
    );
    f.insert("agent_count_p50_ms", agent_read_p50(bin, target)?);
    if hub.mode == Mode::Ebpf {
        at_100k_flows(bin, target, seconds, &mut f)?;
    }
    Ok(f)
}

/// The conntrack map's memory and the programs' cost per packet with 100,000 flows in the
/// table (synthetic established flows beside the measured traffic).
fn at_100k_flows(
    bin: &std::path::Path,
    target: &str,
    seconds: Duration,
    f: &mut Figures,
) -> anyhow::Result<()> {
    modes::fill_flows(bin, 100_000)?;
    let before = bpf_stats();
    iperf3(target, seconds)?;
    let (time, runs) = bpf_stats();
    if runs > before.1 {
        f.insert(
            "bpf_ns_per_packet_100k_flows",
            (time - before.0) as f64 / (runs - before.1) as f64,
        );
    }
    let maps = run(Command::new("bpftool").args(["map", "show", "--json"]))?;
    let maps: Vec<Value> = serde_json::from_str(&maps)?;
    let bytes: u64 = maps
        .iter()
        .filter(|m| m["name"] == "NAT_FLOWS")
        .filter_map(|m| m["bytes_memlock"].as_u64())
        .sum();
    f.insert("conntrack_map_mib", bytes as f64 / (1024.0 * 1024.0));
    Ok(())
}

fn script(name: &str, sql: &str) -> anyhow::Result<String> {
    let path = net::state_dir().join(format!("{name}.sql"));
    fs::write(&path, format!("{sql}\n"))?;
    Ok(path.display().to_string())
}

/// A client command, ended after two minutes: a stalled path gives an error, not a hang.
fn in_client(program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", CLIENT_NS, "timeout", "120", program]);
    cmd
}

fn pgbench_command(target: &str, script: &str, clients: u32, seconds: Duration) -> Command {
    let mut cmd = in_client("/usr/lib/postgresql/15/bin/pgbench");
    cmd.args([
        "--no-vacuum",
        "--file",
        script,
        "--host",
        target,
        "--username",
        "contacts_user",
    ])
    .args([
        "--client",
        &clients.to_string(),
        "--jobs",
        &clients.min(2).to_string(),
    ])
    .args(["--time", &seconds.as_secs().to_string()])
    .arg("contacts");
    cmd
}

/// (transactions per second, mean latency in ms). With `connect`, every transaction opens
/// a new connection, so the rate is new connections per second.
fn pgbench(
    target: &str,
    script: &str,
    clients: u32,
    seconds: Duration,
    connect: bool,
) -> anyhow::Result<(f64, f64)> {
    let mut cmd = pgbench_command(target, script, clients, seconds);
    if connect {
        cmd.arg("--connect");
    }
    let out = run(&mut cmd)?;
    let number_after = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let tps = number_after("tps = ").context("no tps in pgbench's output")?;
    let latency = number_after("latency average = ").context("no latency in pgbench's output")?;
    Ok((tps, latency))
}

/// Median latency of one client, from pgbench's per-transaction log. Prepared statements,
/// as the agent uses, so that both send the same messages per query.
fn pgbench_median(target: &str, script: &str, seconds: Duration) -> anyhow::Result<f64> {
    let dir = net::state_dir().join("pgbench-log");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let prefix = dir.join("tx");
    let mut cmd = pgbench_command(target, script, 1, seconds);
    cmd.args(["--protocol", "prepared"])
        .arg("--log")
        .arg(format!("--log-prefix={}", prefix.display()));
    run(&mut cmd)?;
    let mut latencies_us = Vec::new();
    for entry in fs::read_dir(&dir)?.flatten() {
        for line in fs::read_to_string(entry.path())?.lines() {
            // client_id transaction_no time(us) script_no epoch epoch_us
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<f64>().ok())
            {
                latencies_us.push(us);
            }
        }
    }
    median(&mut latencies_us)
        .map(|us| us / 1000.0)
        .context("pgbench logged no transaction")
}

/// The agent's SELECT COUNT(*) median on the same path.
fn agent_read_p50(bin: &std::path::Path, target: &str) -> anyhow::Result<f64> {
    let mut agent = Command::new("ip");
    agent
        .args(["netns", "exec", CLIENT_NS])
        .arg(bin.join("edge-agent"))
        .env("EDGE_AGENT_LISTEN", "127.0.0.1")
        .env("PORT", AGENT_PORT.to_string())
        .env("DB_HOST", target)
        .env("DB_USER", "contacts_user")
        .env("DB_NAME", "contacts");
    net::spawn("bench-agent", agent)?;
    let result = (|| {
        let base = format!("http://127.0.0.1:{AGENT_PORT}/api/rds");
        net::wait_for(
            "the agent",
            Some("bench-agent"),
            Duration::from_secs(30),
            || curl(&format!("{base}/health")).is_some_and(|h| h.contains("\"connected\"")),
        )?;
        let body = curl(&format!("{base}/benchmark?iterations={AGENT_ITERATIONS}"))
            .context("the agent's benchmark")?;
        let v: Value = serde_json::from_str(&body)?;
        v["read_p50_ms"]
            .as_f64()
            .with_context(|| format!("no read_p50_ms in {body}"))
    })();
    net::stop("bench-agent");
    result
}

fn curl(url: &str) -> Option<String> {
    let out = in_client("curl")
        .args(["-s", "--max-time", "30", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Bits per second received by the sink.
fn iperf3(target: &str, seconds: Duration) -> anyhow::Result<f64> {
    let out = run(in_client("iperf3")
        .args([
            "--client",
            target,
            "--port",
            &SINK_PORT.to_string(),
            "--json",
        ])
        .args(["--time", &seconds.as_secs().to_string()]))?;
    let v: Value = serde_json::from_str(&out).context("parsing iperf3's JSON")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no throughput in iperf3's JSON")
}

/// Kernel CPU time (system, irq, softirq) of the whole machine, ns.
fn kernel_cpu_ns() -> anyhow::Result<u64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq; USER_HZ is 100 on Linux.
    let jiffies = fields.get(2).copied().unwrap_or(0)
        + fields.get(5).copied().unwrap_or(0)
        + fields.get(6).copied().unwrap_or(0);
    Ok(jiffies * 10_000_000)
}

/// Packets received by the hub's interfaces: each forwarded packet counts once.
fn hub_packets() -> anyhow::Result<u64> {
    let out = run(Command::new("ip").args(["-n", HUB_NS, "-s", "-j", "link", "show"]))?;
    let links: Vec<Value> = serde_json::from_str(&out)?;
    Ok(links
        .iter()
        .filter(|l| l["ifname"] != "lo")
        .filter_map(|l| l["stats64"]["rx"]["packets"].as_u64())
        .sum())
}

/// `edgehub probe` (the empty `edgehub_count` program) on the hub's client side, for longer
/// than one iperf3 run; attached when this returns.
fn attach_empty_program(
    bin: &std::path::Path,
    seconds: Duration,
) -> anyhow::Result<std::process::Child> {
    let log = net::state_dir().join("logs/probe.log");
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{HUB_NS}"))
        .arg("--")
        .arg(bin.join("edgehub"))
        .args(["probe", "--iface", "eh-client", "--seconds"])
        .arg((seconds.as_secs() + 10).to_string())
        .stdout(fs::File::create(&log)?)
        .stderr(fs::File::create(&log)?)
        .spawn()?;
    let attached = net::wait_for(
        "the empty program",
        Some("probe"),
        Duration::from_secs(10),
        || fs::read_to_string(&log).is_ok_and(|l| l.contains("attached")),
    );
    if let Err(e) = attached {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

/// New TCP connections per second from the client to the accept-and-close sink.
fn tcp_connections(target: &str, seconds: Duration) -> anyhow::Result<f64> {
    let out = run(in_client(&std::env::current_exe()?.display().to_string())
        .args(["bench", "tcp-connect", &format!("{target}:{CONNECT_PORT}")])
        .arg(seconds.as_secs().to_string()))?;
    out.trim().parse().context("the connect loop's rate")
}

/// (`run_time_ns`, `run_cnt`) of the programs named `name`.
fn bpf_stats_of(name: &str) -> (u64, u64) {
    bpf_programs()
        .iter()
        .filter(|p| p["name"] == name)
        .fold((0, 0), |(t, c), p| {
            (
                t + p["run_time_ns"].as_u64().unwrap_or(0),
                c + p["run_cnt"].as_u64().unwrap_or(0),
            )
        })
}

fn bpf_programs() -> Vec<Value> {
    run(Command::new("bpftool").args(["prog", "show", "--json"]))
        .ok()
        .and_then(|out| serde_json::from_str(&out).ok())
        .unwrap_or_default()
}

/// Total (`run_time_ns`, `run_cnt`) of edgehub's programs, with `bpf_stats` enabled.
fn bpf_stats() -> (u64, u64) {
    bpf_programs()
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("eh_")))
        .fold((0, 0), |(t, c), p| {
            (
                t + p["run_time_ns"].as_u64().unwrap_or(0),
                c + p["run_cnt"].as_u64().unwrap_or(0),
            )
        })
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The median, or `None` for no values.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        f64::midpoint(values[mid - 1], values[mid])
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
