//! `edge-agent sweep`: asks every region's agent for a benchmark, concurrently, each with its
//! own timeout, and ranks the regions.
//!
//! The sweep computes the statistics itself from the `read_latencies` / `insert_latencies`
//! arrays, so the same statistic is used in both columns, and agents of the original Go backend
//! can be swept too.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Statistic, SweepArgs};
use crate::regions::{self, Region};
use crate::stats::{Summary, round_ms};

/// Sweep setup errors.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The regions file.
    #[error("regions file: {0}")]
    Regions(String),
    /// A bad `--target`.
    #[error("bad --target {0:?}: expected CODE=HOST:PORT with a known region code")]
    Target(String),
    /// HTTP client setup.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// One region's line of the sweep.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegionResult {
    /// Region code.
    pub code: String,
    /// Flag emoji.
    pub flag: String,
    /// City.
    pub city: String,
    /// `host:port` called.
    pub target: String,
    /// `ok`, `timeout` or `error`.
    pub status: &'static str,
    /// What went wrong, for `error`.
    pub error: Option<String>,
    /// Statistic used for `insert_ms` and `read_ms`.
    pub statistic: &'static str,
    /// INSERT statistic, ms.
    pub insert_ms: Option<f64>,
    /// SELECT statistic, ms.
    pub read_ms: Option<f64>,
    /// INSERT p95, ms.
    pub insert_p95_ms: Option<f64>,
    /// SELECT p95, ms.
    pub read_p95_ms: Option<f64>,
    /// Median SELECT edge<->hub network time (from the agent's hub report), ms.
    pub read_network_ms: Option<f64>,
    /// Median SELECT database time, ms.
    pub read_server_ms: Option<f64>,
    /// Median INSERT edge<->hub network time, ms.
    pub insert_network_ms: Option<f64>,
    /// Median INSERT database time, ms.
    pub insert_server_ms: Option<f64>,
    /// Failed queries the agent reported.
    pub errors: u64,
    /// Rank by the Read statistic (1 = fastest); none for failed regions.
    pub rank: Option<usize>,
}

impl RegionResult {
    pub(crate) fn new(region: &Region, target: &str, statistic: Statistic) -> Self {
        Self {
            code: region.code.clone(),
            flag: region.flag.clone(),
            city: region.city.clone(),
            target: target.to_owned(),
            status: "error",
            error: None,
            statistic: statistic.name(),
            insert_ms: None,
            read_ms: None,
            insert_p95_ms: None,
            read_p95_ms: None,
            read_network_ms: None,
            read_server_ms: None,
            insert_network_ms: None,
            insert_server_ms: None,
            errors: 0,
            rank: None,
        }
    }
}

/// The regions to call, each with its `host:port`: `wg_address:port` unless overridden.
pub fn targets(
    regions: &[Region],
    overrides: &[String],
    port: u16,
) -> Result<Vec<(Region, String)>, SweepError> {
    let mut out: Vec<(Region, String)> = regions
        .iter()
        .map(|r| (r.clone(), format!("{}:{port}", r.wg_address)))
        .collect();
    for o in overrides {
        let (code, addr) = o
            .split_once('=')
            .filter(|(_, a)| a.contains(':'))
            .ok_or_else(|| SweepError::Target(o.clone()))?;
        let entry = out
            .iter_mut()
            .find(|(r, _)| r.code == code)
            .ok_or_else(|| SweepError::Target(o.clone()))?;
        addr.clone_into(&mut entry.1);
    }
    Ok(out)
}

fn pick(s: &Summary, statistic: Statistic) -> f64 {
    match statistic {
        Statistic::Median => s.p50,
        Statistic::Min => s.min,
        Statistic::Mean => s.mean,
    }
}

fn latencies(v: &Value, key: &str) -> Vec<f64> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// Fills `r` from an agent's benchmark JSON.
pub fn fill_from_report(r: &mut RegionResult, v: &Value, statistic: Statistic) {
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        r.status = "error";
        r.error = Some(e.to_owned());
        return;
    }
    let read = Summary::of(&latencies(v, "read_latencies"));
    let insert = Summary::of(&latencies(v, "insert_latencies"));
    let (Some(read), Some(insert)) = (read, insert) else {
        r.status = "error";
        r.error = Some("no successful query".to_owned());
        return;
    };
    r.status = "ok";
    r.read_ms = Some(round_ms(pick(&read, statistic)));
    r.insert_ms = Some(round_ms(pick(&insert, statistic)));
    r.read_p95_ms = Some(round_ms(read.p95));
    r.insert_p95_ms = Some(round_ms(insert.p95));
    let hub = |k: &str| v.get("hub").and_then(|h| h.get(k)).and_then(Value::as_f64);
    r.read_network_ms = hub("read_network_p50_ms");
    r.read_server_ms = hub("read_server_p50_ms");
    r.insert_network_ms = hub("insert_network_p50_ms");
    r.insert_server_ms = hub("insert_server_p50_ms");
    let count = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    r.errors = count("read_errors") + count("insert_errors");
}

/// Ranks the `ok` regions by their Read statistic and orders the list by rank (failed last).
pub fn rank(results: &mut [RegionResult]) {
    results.sort_by(|a, b| match (a.read_ms, b.read_ms) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    for (i, r) in results.iter_mut().enumerate() {
        r.rank = r.read_ms.map(|_| i + 1);
    }
}

/// Calls all targets concurrently; each gets `timeout`, and a slow one holds up no other.
pub async fn sweep(
    targets: Vec<(Region, String)>,
    iterations: u32,
    timeout: Duration,
    statistic: Statistic,
) -> Result<Vec<RegionResult>, SweepError> {
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| SweepError::Client(e.to_string()))?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (region, target)) in targets.into_iter().enumerate() {
        let http = http.clone();
        tasks.spawn(async move {
            let mut r = RegionResult::new(&region, &target, statistic);
            let url = format!("http://{target}/api/rds/benchmark?iterations={iterations}");
            let call = async {
                let resp = http.get(&url).send().await?;
                resp.json::<Value>().await
            };
            match tokio::time::timeout(timeout, call).await {
                Err(_) => {
                    r.status = "timeout";
                    r.error = Some(format!("no answer within {timeout:?}"));
                }
                Ok(Err(e)) => r.error = Some(e.to_string()),
                Ok(Ok(v)) => fill_from_report(&mut r, &v, statistic),
            }
            (i, r)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(pair) = done {
            out.push(pair);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    let mut results: Vec<RegionResult> = out.into_iter().map(|(_, r)| r).collect();
    rank(&mut results);
    Ok(results)
}

/// Runs the `sweep` subcommand: prints the table (or JSON/CSV) and writes the SVG if asked.
pub async fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let text = match &args.regions {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| SweepError::Regions(format!("{}: {e}", path.display())))?,
        None => regions::DEFAULT_REGIONS.to_owned(),
    };
    let regions = regions::parse(&text).map_err(|e| SweepError::Regions(e.to_string()))?;
    let targets = targets(&regions, &args.targets, args.port)?;
    let results = sweep(targets, args.iterations, args.timeout, args.statistic).await?;
    let out = if args.json {
        serde_json::to_string_pretty(&results)? + "\n"
    } else if args.csv {
        crate::render::csv(&results)
    } else {
        crate::render::table(&results, args.statistic, args.iterations)
    };
    print!("{out}");
    if let Some(path) = &args.svg {
        std::fs::write(path, crate::render::svg(&results, args.statistic))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn regions() -> Vec<Region> {
        regions::parse(regions::DEFAULT_REGIONS).expect("regions")
    }

    #[test]
    fn targets_and_overrides() {
        let t = targets(&regions(), &["lhr=127.0.0.1:18080".to_owned()], 8080).expect("targets");
        assert_eq!(t[0].1, "127.0.0.1:18080");
        assert_eq!(t[1].1, "10.50.3.3:8080");
        assert!(targets(&regions(), &["xxx=127.0.0.1:1".to_owned()], 8080).is_err());
        assert!(targets(&regions(), &["lhr".to_owned()], 8080).is_err());
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn same_statistic_both_columns_and_rank() {
        let r = regions();
        let mut a = RegionResult::new(&r[0], "x", Statistic::Median);
        fill_from_report(
            &mut a,
            &json!({"read_latencies": [3.0, 1.0, 2.0], "insert_latencies": [30.0, 10.0, 20.0],
                    "read_errors": 1, "insert_errors": 0}),
            Statistic::Median,
        );
        assert_eq!(
            (a.read_ms, a.insert_ms, a.errors),
            (Some(2.0), Some(20.0), 1)
        );
        let mut b = RegionResult::new(&r[1], "y", Statistic::Min);
        fill_from_report(
            &mut b,
            &json!({"read_latencies": [0.5], "insert_latencies": [0.7]}),
            Statistic::Min,
        );
        let mut c = RegionResult::new(&r[2], "z", Statistic::Min);
        c.status = "timeout";
        let mut all = vec![c, a, b];
        rank(&mut all);
        assert_eq!(all[0].code, "cdg");
        assert_eq!(all[0].rank, Some(1));
        assert_eq!(all[1].rank, Some(2));
        assert_eq!(all[2].rank, None);
        let mut d = RegionResult::new(&r[3], "w", Statistic::Mean);
        fill_from_report(
            &mut d,
            &json!({"error": "database not configured"}),
            Statistic::Mean,
        );
        assert_eq!(d.status, "error");
    }
}
