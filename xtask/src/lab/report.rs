//! `lab bench`: the sweep over every region, set beside each region's emulated round-trip
//! time, and the files in `lab-results/`.
//!
//! What a region should show: its emulated RTT (one round trip per query through the tunnel)
//! plus the local service time, measured in the same run by an agent in the hub namespace
//! that talks to the database directly. The report gives the ratio of each measured median to
//! that expectation.

use std::{
    fmt::Write as _,
    fs,
    path::Path,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::Value;

use super::{
    Lab, net,
    regions::{self, AGENT_PORT, DB_ADDR, DB_PASSWORD, HUB_NS},
};

const LOCAL_PORT: u16 = 8079;

/// The band within which a region's median must lie, as a multiple of RTT + local time.
const BAND: (f64, f64) = (1.0, 1.15);

/// One sweep with one hub NAT.
#[derive(Serialize)]
pub struct Run {
    nat: &'static str,
    iterations: u32,
    /// Medians of the agent next to the database, ms.
    local_read_ms: f64,
    local_insert_ms: f64,
    regions: Vec<Row>,
    /// The sweep's own SVG chart.
    #[serde(skip)]
    svg: String,
}

#[derive(Serialize)]
struct Row {
    code: String,
    flag: String,
    city: String,
    rtt_ms: f64,
    /// The sweep's result for the region, as edge-agent gives it.
    sweep: Value,
    read_ratio: Option<f64>,
    insert_ratio: Option<f64>,
    within_band: bool,
}

pub fn sweep(workspace: &Path, lab: &Lab, iterations: u32) -> anyhow::Result<Run> {
    let (local_read_ms, local_insert_ms) = local_service_time(lab, iterations)?;

    let dir = net::state_dir();
    let regions_file = dir.join("regions.toml");
    fs::write(&regions_file, regions_toml(workspace, lab)?)?;
    let svg_file = dir.join("sweep.svg");
    let out = Command::new("ip")
        .args(["netns", "exec", HUB_NS])
        .arg(lab.bin.join("edge-agent"))
        .arg("sweep")
        .arg("--regions")
        .arg(&regions_file)
        .args([
            "--iterations",
            &iterations.to_string(),
            "--port",
            &AGENT_PORT.to_string(),
        ])
        .args([
            "--timeout",
            "60s",
            "--statistic",
            "median",
            "--json",
            "--svg",
        ])
        .arg(&svg_file)
        .output()
        .context("running edge-agent sweep")?;
    if !out.status.success() {
        bail!(
            "edge-agent sweep failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let results: Vec<Value> =
        serde_json::from_slice(&out.stdout).context("parsing the sweep's JSON")?;

    let scale = lab.options.rtt_scale;
    let rows = lab
        .regions
        .iter()
        .map(|region| {
            let sweep = results
                .iter()
                .find(|r| r["code"] == region.code.as_str())
                .cloned()
                .unwrap_or(Value::Null);
            let rtt_ms = region.rtt_ms * scale;
            let ratio = |key: &str, local: f64| sweep[key].as_f64().map(|v| v / (rtt_ms + local));
            let read_ratio = ratio("read_ms", local_read_ms);
            let insert_ratio = ratio("insert_ms", local_insert_ms);
            let within = |r: Option<f64>| r.is_some_and(|r| (BAND.0..=BAND.1).contains(&r));
            Row {
                code: region.code.clone(),
                flag: region.flag.clone(),
                city: region.city.clone(),
                rtt_ms,
                within_band: within(read_ratio) && within(insert_ratio),
                sweep,
                read_ratio,
                insert_ratio,
            }
        })
        .collect();
    Ok(Run {
        nat: lab.nat.name(),
        iterations,
        local_read_ms,
        local_insert_ms,
        regions: rows,
        svg: fs::read_to_string(&svg_file).unwrap_or_default(),
    })
}

impl Run {
    /// Every region answered, ranked by distance, and each median lies between its emulated
    /// round-trip time (a physical floor) and that plus the local time and a margin for the
    /// userspace WireGuard and relay of this lab.
    pub fn check_plausible(&self) -> anyhow::Result<()> {
        const MARGIN_MS: f64 = 15.0;
        for r in &self.regions {
            let s = &r.sweep;
            anyhow::ensure!(s["status"] == "ok", "{} via {}: {s}", r.code, self.nat);
            for (key, local) in [
                ("read_ms", self.local_read_ms),
                ("insert_ms", self.local_insert_ms),
            ] {
                let v = s[key]
                    .as_f64()
                    .with_context(|| format!("{} {key} missing", r.code))?;
                anyhow::ensure!(
                    v >= r.rtt_ms && v <= r.rtt_ms + local + MARGIN_MS,
                    "{} via {}: {key} {v:.2} ms outside [{:.2}, {:.2}]",
                    r.code,
                    self.nat,
                    r.rtt_ms,
                    r.rtt_ms + local + MARGIN_MS
                );
            }
        }
        let mut by_rank: Vec<&Row> = self.regions.iter().collect();
        by_rank.sort_by_key(|r| r.sweep["rank"].as_u64().unwrap_or(u64::MAX));
        anyhow::ensure!(
            by_rank.windows(2).all(|w| w[0].rtt_ms <= w[1].rtt_ms),
            "regions via {} not ranked by distance",
            self.nat
        );
        Ok(())
    }
}

/// The selected regions as a regions file for `edge-agent sweep`.
fn regions_toml(workspace: &Path, lab: &Lab) -> anyhow::Result<String> {
    let codes: Vec<&str> = lab.regions.iter().map(|r| r.code.as_str()).collect();
    let all = fs::read_to_string(workspace.join("agent/regions.toml"))?;
    let mut file: toml::Table = toml::from_str(&all)?;
    if let Some(toml::Value::Array(regions)) = file.get_mut("region") {
        regions.retain(|r| {
            r.get("code")
                .and_then(toml::Value::as_str)
                .is_some_and(|c| codes.contains(&c))
        });
    }
    Ok(toml::to_string(&file)?)
}

/// Medians of SELECT and INSERT from an agent in the hub namespace, straight to the database.
fn local_service_time(lab: &Lab, iterations: u32) -> anyhow::Result<(f64, f64)> {
    if !net::recorded().iter().any(|n| n == "agent-local") {
        let mut agent = Command::new("ip");
        agent
            .args(["netns", "exec", HUB_NS])
            .arg(lab.bin.join("edge-agent"))
            .env("FLY_REGION", "local")
            .env("EDGE_AGENT_LISTEN", "127.0.0.1")
            .env("PORT", LOCAL_PORT.to_string())
            .env("DB_HOST", DB_ADDR)
            .env("DB_USER", "contacts_user")
            .env("DB_PASSWORD", DB_PASSWORD)
            .env("DB_NAME", "contacts");
        net::spawn("agent-local", agent)?;
        let health = format!("http://127.0.0.1:{LOCAL_PORT}/api/rds/health");
        net::wait_for(
            "the local agent",
            Some("agent-local"),
            Duration::from_secs(30),
            || regions::curl_in_hub(&health).is_some_and(|h| h.contains("\"connected\"")),
        )?;
    }
    let url = format!("http://127.0.0.1:{LOCAL_PORT}/api/rds/benchmark?iterations={iterations}");
    let body = regions::curl_in_hub(&url).context("the local agent's benchmark")?;
    let v: Value = serde_json::from_str(&body)?;
    let read = v["read_p50_ms"]
        .as_f64()
        .context("read_p50_ms in the local benchmark")?;
    let insert = v["insert_p50_ms"]
        .as_f64()
        .context("insert_p50_ms in the local benchmark")?;
    Ok((read, insert))
}

/// Prints the report and writes `lab-results/<timestamp>.{md,json,csv,svg}`.
pub fn write(workspace: &Path, lab: &Lab, runs: &[Run]) -> anyhow::Result<()> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let stamp = utc_stamp(stamp);
    let dir = workspace.join("lab-results");
    fs::create_dir_all(&dir)?;
    let md = markdown(lab, runs, &stamp);
    print!("{md}");
    fs::write(dir.join(format!("{stamp}.md")), &md)?;
    let json = serde_json::json!({
        "date": stamp,
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "options": lab.options,
        "runs": runs,
    });
    fs::write(
        dir.join(format!("{stamp}.json")),
        serde_json::to_string_pretty(&json)?,
    )?;
    fs::write(dir.join(format!("{stamp}.csv")), csv(runs))?;
    for (i, run) in runs.iter().enumerate() {
        let name = if i == 0 {
            format!("{stamp}.svg")
        } else {
            format!("{stamp}-{}.svg", run.nat)
        };
        fs::write(dir.join(name), &run.svg)?;
    }
    eprintln!("lab: wrote lab-results/{stamp}.{{md,json,csv,svg}}");
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

fn markdown(lab: &Lab, runs: &[Run], stamp: &str) -> String {
    let mut out = format!(
        "\n# edgehub lab, {stamp}\n\n{} regions, RTT scale {}, jitter {} ms, loss {}. \
         Statistic: median of {} queries per region in both columns.\n",
        lab.regions.len(),
        lab.options.rtt_scale,
        lab.options.jitter_ms,
        lab.options.loss,
        runs.first().map_or(0, |r| r.iterations),
    );
    for run in runs {
        let _ = write!(
            out,
            "\n## Hub NAT: {}\n\nLocal service time (agent beside the database): read {:.2} ms, \
             insert {:.2} ms. Expected = emulated RTT + local time; band {:.2}x-{:.2}x.\n\n\
             | Flag | Region | Location | Insert (ms) | Read (ms) | Rank | RTT (ms) | Insert / expected | \
             Read / expected | In band | Insert p95 | Read p95 | Read split net/db (ms) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            run.nat, run.local_read_ms, run.local_insert_ms, BAND.0, BAND.1
        );
        let mut rows: Vec<&Row> = run.regions.iter().collect();
        rows.sort_by_key(|r| r.sweep["rank"].as_u64().unwrap_or(u64::MAX));
        for r in rows {
            let s = &r.sweep;
            let status = s["status"].as_str().unwrap_or("missing");
            let (insert, read) = if status == "ok" {
                (ms(s["insert_ms"].as_f64()), ms(s["read_ms"].as_f64()))
            } else {
                (status.to_uppercase(), status.to_uppercase())
            };
            let split = match (s["read_network_ms"].as_f64(), s["read_server_ms"].as_f64()) {
                (Some(n), Some(d)) => format!("{n:.2} / {d:.2}"),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {insert} | {read} | {} | {:.1} | {} | {} | {} | {} | {} | {split} |",
                r.flag,
                r.code,
                r.city,
                s["rank"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                r.rtt_ms,
                r.insert_ratio
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
                r.read_ratio
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
                if r.within_band { "yes" } else { "NO" },
                ms(s["insert_p95_ms"].as_f64()),
                ms(s["read_p95_ms"].as_f64()),
            );
        }
    }
    if let [a, b] = runs {
        let _ = write!(
            out,
            "\n## {} beside {} (medians, ms)\n\n| Region | Read {} | Read {} | Insert {} | Insert {} |\n|---|---|---|---|---|\n",
            a.nat, b.nat, a.nat, b.nat, a.nat, b.nat
        );
        for (ra, rb) in a.regions.iter().zip(&b.regions) {
            let f = |r: &Row, k: &str| ms(r.sweep[k].as_f64());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                ra.code,
                f(ra, "read_ms"),
                f(rb, "read_ms"),
                f(ra, "insert_ms"),
                f(rb, "insert_ms")
            );
        }
    }
    out
}

fn csv(runs: &[Run]) -> String {
    let mut out = String::from(
        "nat,region,rtt_ms,insert_median_ms,read_median_ms,insert_p95_ms,read_p95_ms,insert_ratio,read_ratio,within_band,status\n",
    );
    for run in runs {
        for r in &run.regions {
            let f = |k: &str| {
                r.sweep[k]
                    .as_f64()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                run.nat,
                r.code,
                r.rtt_ms,
                f("insert_ms"),
                f("read_ms"),
                f("insert_p95_ms"),
                f("read_p95_ms"),
                r.insert_ratio.map(|v| v.to_string()).unwrap_or_default(),
                r.read_ratio.map(|v| v.to_string()).unwrap_or_default(),
                r.within_band,
                r.sweep["status"].as_str().unwrap_or("missing"),
            );
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` from Unix seconds (civil-from-days, no time zone crate needed).
fn utc_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days.cast_signed() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc_stamp;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_764_720_000 + 3_661), "20251203T010101Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }
}
