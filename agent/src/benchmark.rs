//! The benchmark: timed `SELECT COUNT(*)` and `INSERT`s on one pooled connection.
//!
//! Honesty rules, fixing the original's numbers:
//! - both statements are prepared once per connection and then executed with a single
//!   Bind/Execute/Sync flight, so each SELECT and each INSERT costs exactly one round trip;
//! - warm-up: one untimed SELECT and one untimed INSERT run first on the same connection (which
//!   also prepares the statements), so connection setup and preparation never land in the
//!   timings; the connection's own setup time is reported apart as `connect_ms`;
//! - a failed or timed-out query is counted in `*_errors` and never enters the latencies.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::db::{self, DbError, Pool};
use crate::hub::{self, HubClient, HubError, Legs};
use crate::stats::{PERCENTILE_METHOD, STDDEV_METHOD, Summary, round_ms};

/// How warm-up is kept out of the statistics (also in each report).
pub const WARMUP: &str = "one untimed SELECT and one untimed INSERT on the same connection \
    before timing (they also prepare both statements); connection setup is reported apart as \
    connect_ms";

/// Valid `iterations`.
pub const ITERATIONS: std::ops::RangeInclusive<u32> = 1..=100;
/// `iterations` when not given.
pub const DEFAULT_ITERATIONS: u32 = 10;

/// Why a benchmark could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No database connection could be had.
    #[error("database unreachable: {0}")]
    Unavailable(DbError),
    /// The warm-up (statement preparation or first queries) failed.
    #[error("database not usable: {0}")]
    Warmup(DbError),
}

/// `TCP_INFO` of the connection the queries used, read after the run.
#[derive(Debug, Clone, Serialize)]
pub struct TcpReport {
    /// Smoothed RTT, ms.
    pub srtt_ms: f64,
    /// RTT variance, ms.
    pub rttvar_ms: f64,
    /// Retransmitted segments over the connection's life.
    pub total_retrans: u32,
    /// Retransmitted segments during this run.
    pub run_retrans: u32,
}

/// The hub's view of this run, with each query split into legs (see [`crate::hub`]).
#[derive(Debug, Clone, Serialize)]
pub struct HubReport {
    /// `ok`, `not_configured`, `unreachable` or `flow_not_found`.
    pub status: &'static str,
    /// Why the hub fields are null, when they are.
    pub reason: Option<String>,
    /// Hub->database handshake RTT, ms.
    pub db_handshake_ms: Option<f64>,
    /// Per SELECT legs, in run order (successful queries only).
    pub read_legs: Option<Vec<Legs>>,
    /// Per INSERT legs.
    pub insert_legs: Option<Vec<Legs>>,
    /// Median edge<->hub network time of the SELECTs, ms.
    pub read_network_p50_ms: Option<f64>,
    /// Median database time of the SELECTs, ms.
    pub read_server_p50_ms: Option<f64>,
    /// Median edge<->hub network time of the INSERTs, ms.
    pub insert_network_p50_ms: Option<f64>,
    /// Median database time of the INSERTs, ms.
    pub insert_server_p50_ms: Option<f64>,
}

/// The benchmark answer: the original's keys first, then the additions.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Region code.
    pub region: String,
    /// Database host as configured.
    pub db_host: String,
    /// Iterations asked.
    pub iterations: u32,
    /// Mean SELECT time (null when no SELECT succeeded).
    pub read_avg_ms: Option<f64>,
    /// Fastest SELECT.
    pub read_min_ms: Option<f64>,
    /// Slowest SELECT.
    pub read_max_ms: Option<f64>,
    /// Mean INSERT time.
    pub insert_avg_ms: Option<f64>,
    /// Fastest INSERT.
    pub insert_min_ms: Option<f64>,
    /// Slowest INSERT.
    pub insert_max_ms: Option<f64>,
    /// Successful SELECT times in run order.
    pub read_latencies: Vec<f64>,
    /// Successful INSERT times in run order.
    pub insert_latencies: Vec<f64>,
    /// End of the run, RFC 3339 UTC.
    pub timestamp: String,
    /// Median SELECT.
    pub read_p50_ms: Option<f64>,
    /// 95th percentile SELECT.
    pub read_p95_ms: Option<f64>,
    /// 99th percentile SELECT.
    pub read_p99_ms: Option<f64>,
    /// Sample standard deviation of SELECTs.
    pub read_stddev_ms: Option<f64>,
    /// Failed SELECTs.
    pub read_errors: u32,
    /// Median INSERT.
    pub insert_p50_ms: Option<f64>,
    /// 95th percentile INSERT.
    pub insert_p95_ms: Option<f64>,
    /// 99th percentile INSERT.
    pub insert_p99_ms: Option<f64>,
    /// Sample standard deviation of INSERTs.
    pub insert_stddev_ms: Option<f64>,
    /// Failed INSERTs.
    pub insert_errors: u32,
    /// Short description of the last query error, if any.
    pub last_error: Option<String>,
    /// Setup time of the connection used (TCP, TLS, login), measured when it was opened.
    pub connect_ms: f64,
    /// Whether that connection was reused from the pool (its setup happened earlier).
    pub connection_reused: bool,
    /// Time waiting for the pool, including a health check of a reused connection.
    pub pool_wait_ms: f64,
    /// How warm-up is kept out of the statistics.
    pub warmup: &'static str,
    /// Percentile method.
    pub percentile_method: &'static str,
    /// Standard deviation kind.
    pub stddev_method: &'static str,
    /// Round trips per timed statement.
    pub round_trips_per_query: u32,
    /// `TCP_INFO` of the connection's socket (null if unreadable).
    pub tcp_info: Option<TcpReport>,
    /// The hub's timing of this flow.
    pub hub: HubReport,
}

/// Runs benchmarks against a pool.
#[derive(Clone)]
pub struct Benchmarker {
    /// The pool.
    pub pool: Pool,
    /// Region code.
    pub region: String,
    /// Database host for reports.
    pub db_host: String,
    /// Hub client, when configured.
    pub hub: Option<HubClient>,
    /// Client-side limit per query.
    pub query_timeout: Duration,
}

struct ConnFacts {
    connect_ms: f64,
    reused: bool,
    pool_wait_ms: f64,
    tcp_info: Option<TcpReport>,
    last_error: Option<String>,
}

struct Op {
    latencies: Vec<f64>,
    legs: Vec<Legs>,
    errors: u32,
}

struct HubState<'a> {
    client: Option<&'a HubClient>,
    port: u16,
    failure: Option<(&'static str, String)>,
    db_rtt_ms: Option<f64>,
}

impl HubState<'_> {
    /// Asks the hub for the last request time of our flow; gives up after the first failure.
    // TODO: one (untimed) hub call per query lengthens the run; a per-request history from the
    // hub would allow one call per run.
    async fn legs(&mut self, total_ms: f64) -> Option<Legs> {
        let client = self.client?;
        if self.failure.is_some() {
            return None;
        }
        match client.flow(self.port).await {
            Ok(flow) => {
                let rtt = hub::ns_to_ms(flow.db_handshake_ns);
                self.db_rtt_ms = Some(rtt);
                Some(hub::split(
                    total_ms,
                    hub::ns_to_ms(flow.request_ns_last),
                    rtt,
                ))
            }
            Err(e) => {
                let status = match e {
                    HubError::Unreachable(_) => "unreachable",
                    HubError::FlowNotFound(_) => "flow_not_found",
                };
                tracing::info!(error = %e, "hub timing unavailable");
                self.failure = Some((status, e.to_string()));
                None
            }
        }
    }

    fn report(self, read: &Op, insert: &Op) -> HubReport {
        let (status, reason) = match (self.client, self.failure) {
            (None, _) => (
                "not_configured",
                Some("no hub API configured (--hub-api / EDGE_HUB_API)".to_owned()),
            ),
            (Some(_), Some((status, reason))) => (status, Some(reason)),
            (Some(_), None) => ("ok", None),
        };
        let ok = status == "ok";
        let p50 = |legs: &[Legs], f: fn(&Legs) -> f64| {
            let v: Vec<f64> = legs.iter().map(f).collect();
            Summary::of(&v).map(|s| round_ms(s.p50)).filter(|_| ok)
        };
        HubReport {
            status,
            reason,
            db_handshake_ms: self.db_rtt_ms.filter(|_| ok),
            read_network_p50_ms: p50(&read.legs, |l| l.network_ms),
            read_server_p50_ms: p50(&read.legs, |l| l.server_ms),
            insert_network_p50_ms: p50(&insert.legs, |l| l.network_ms),
            insert_server_p50_ms: p50(&insert.legs, |l| l.server_ms),
            read_legs: ok.then(|| read.legs.clone()),
            insert_legs: ok.then(|| insert.legs.clone()),
        }
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    if e.is_closed() {
        "connection closed".to_owned()
    } else if let Some(db) = e.as_db_error() {
        format!("database error {}", db.code().code())
    } else {
        "query failed".to_owned()
    }
}

fn nanos_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl Benchmarker {
    /// Runs `iterations` timed SELECTs then `iterations` timed INSERTs.
    pub async fn run(&self, iterations: u32) -> Result<Report, BenchError> {
        let waited = Instant::now();
        let mut conn = db::get(&self.pool).await.map_err(BenchError::Unavailable)?;
        let pool_wait = waited.elapsed();
        let reused = managed_reused(&conn);
        let stmts = conn.statements().await.map_err(BenchError::Warmup)?;
        let limit = self.query_timeout;
        // Warm-up, untimed.
        timed(limit, conn.client.query_one(&stmts.count, &[]))
            .await
            .map_err(BenchError::Warmup)?;
        let notes = "Benchmark";
        let warm_name = format!("Bench-{}-{}-warmup", self.region, nanos_now());
        timed(
            limit,
            conn.client
                .execute(&stmts.insert, &[&warm_name, &"warmup@test.local", &notes]),
        )
        .await
        .map_err(BenchError::Warmup)?;

        let tcp_before = conn.tcp_info().ok();
        let mut hub = HubState {
            client: self.hub.as_ref(),
            port: conn.local_port,
            failure: None,
            db_rtt_ms: None,
        };
        let mut last_error = None;
        let mut read = Op {
            latencies: Vec::new(),
            legs: Vec::new(),
            errors: 0,
        };
        for _ in 0..iterations {
            let start = Instant::now();
            let result = timed(limit, conn.client.query_one(&stmts.count, &[])).await;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            match result.and_then(|row| row.try_get::<_, i64>(0).map_err(DbError::Postgres)) {
                Ok(_) => {
                    read.latencies.push(round_ms(ms));
                    read.legs.extend(hub.legs(ms).await);
                }
                Err(e) => {
                    tracing::warn!(error = %e, op = "select", "benchmark query failed");
                    last_error = Some(short(&e));
                    read.errors += 1;
                }
            }
        }
        let mut insert = Op {
            latencies: Vec::new(),
            legs: Vec::new(),
            errors: 0,
        };
        for i in 0..iterations {
            let name = format!("Bench-{}-{}-{i}", self.region, nanos_now());
            let email = format!("bench-{}@test.local", nanos_now());
            let start = Instant::now();
            let result = timed(
                limit,
                conn.client.execute(&stmts.insert, &[&name, &email, &notes]),
            )
            .await;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            match result {
                Ok(_) => {
                    insert.latencies.push(round_ms(ms));
                    insert.legs.extend(hub.legs(ms).await);
                }
                Err(e) => {
                    tracing::warn!(error = %e, op = "insert", "benchmark query failed");
                    last_error = Some(short(&e));
                    insert.errors += 1;
                }
            }
        }
        let tcp_info = conn.tcp_info().ok().map(|after| TcpReport {
            srtt_ms: f64::from(after.rtt_us) / 1e3,
            rttvar_ms: f64::from(after.rttvar_us) / 1e3,
            total_retrans: after.total_retrans,
            run_retrans: tcp_before
                .map_or(0, |b| after.total_retrans.saturating_sub(b.total_retrans)),
        });
        let facts = ConnFacts {
            connect_ms: round_ms(conn.setup_time.as_secs_f64() * 1e3),
            reused,
            pool_wait_ms: round_ms(pool_wait.as_secs_f64() * 1e3),
            tcp_info,
            last_error,
        };
        let hub = hub.report(&read, &insert);
        Ok(assemble(
            &self.region,
            &self.db_host,
            iterations,
            read,
            insert,
            hub,
            facts,
        ))
    }
}

/// Builds the report from the run's parts (pure: statistics only from successful queries).
#[allow(clippy::too_many_arguments)]
fn assemble(
    region: &str,
    db_host: &str,
    iterations: u32,
    read: Op,
    insert: Op,
    hub: HubReport,
    facts: ConnFacts,
) -> Report {
    let r = Summary::of(&read.latencies);
    let w = Summary::of(&insert.latencies);
    let f = |s: Option<Summary>, g: fn(&Summary) -> f64| s.as_ref().map(|s| round_ms(g(s)));
    Report {
        region: region.to_owned(),
        db_host: db_host.to_owned(),
        iterations,
        read_avg_ms: f(r, |s| s.mean),
        read_min_ms: f(r, |s| s.min),
        read_max_ms: f(r, |s| s.max),
        insert_avg_ms: f(w, |s| s.mean),
        insert_min_ms: f(w, |s| s.min),
        insert_max_ms: f(w, |s| s.max),
        timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        read_p50_ms: f(r, |s| s.p50),
        read_p95_ms: f(r, |s| s.p95),
        read_p99_ms: f(r, |s| s.p99),
        read_stddev_ms: f(r, |s| s.stddev),
        read_errors: read.errors,
        insert_p50_ms: f(w, |s| s.p50),
        insert_p95_ms: f(w, |s| s.p95),
        insert_p99_ms: f(w, |s| s.p99),
        insert_stddev_ms: f(w, |s| s.stddev),
        insert_errors: insert.errors,
        last_error: facts.last_error,
        connect_ms: facts.connect_ms,
        connection_reused: facts.reused,
        pool_wait_ms: facts.pool_wait_ms,
        warmup: WARMUP,
        percentile_method: PERCENTILE_METHOD,
        stddev_method: STDDEV_METHOD,
        round_trips_per_query: 1,
        tcp_info: facts.tcp_info,
        hub,
        read_latencies: read.latencies,
        insert_latencies: insert.latencies,
    }
}

/// Runs a query future with a client-side time limit.
async fn timed<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DbError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| DbError::QueryTimeout(limit))?
        .map_err(DbError::Postgres)
}

fn managed_reused(conn: &db::PooledConn) -> bool {
    deadpool::managed::Object::metrics(conn).recycle_count > 0
}

fn short(e: &DbError) -> String {
    match e {
        DbError::Postgres(pg) => describe(pg),
        other => other.to_string(),
    }
}

/// Parses the `iterations` query value: absent means the default; anything but an integer in
/// 1..=100 is an error.
pub fn parse_iterations(raw: Option<&str>) -> Result<u32, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_ITERATIONS);
    };
    match raw.trim().parse::<u32>() {
        Ok(n) if ITERATIONS.contains(&n) => Ok(n),
        _ => Err(format!(
            "iterations must be an integer from {} to {}, got {raw:?}",
            ITERATIONS.start(),
            ITERATIONS.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(read: Vec<f64>, read_errors: u32) -> serde_json::Value {
        let op = |latencies: Vec<f64>, errors| Op {
            latencies,
            legs: Vec::new(),
            errors,
        };
        let hub = HubState {
            client: None,
            port: 1,
            failure: None,
            db_rtt_ms: None,
        };
        let (r, w) = (op(read, read_errors), op(vec![2.0, 4.0], 0));
        let hub = hub.report(&r, &w);
        let facts = ConnFacts {
            connect_ms: 3.5,
            reused: false,
            pool_wait_ms: 0.1,
            tcp_info: None,
            last_error: (read_errors > 0).then(|| "connection closed".to_owned()),
        };
        serde_json::to_value(assemble("lhr", "10.50.0.1", 3, r, w, hub, facts)).expect("json")
    }

    #[test]
    fn json_keeps_the_original_keys_and_types() {
        let v = sample(vec![1.0, 2.0, 3.0], 0);
        let obj = v.as_object().expect("object");
        for key in ["region", "db_host", "timestamp"] {
            assert!(obj[key].is_string(), "{key}");
        }
        assert_eq!(obj["iterations"], 3);
        for key in [
            "read_avg_ms",
            "read_min_ms",
            "read_max_ms",
            "insert_avg_ms",
            "insert_min_ms",
            "insert_max_ms",
        ] {
            assert!(obj[key].is_f64(), "{key}");
        }
        assert_eq!(obj["read_latencies"], serde_json::json!([1.0, 2.0, 3.0]));
        assert!((obj["read_avg_ms"].as_f64().expect("avg") - 2.0).abs() < 1e-9);
        assert!((obj["insert_max_ms"].as_f64().expect("max") - 4.0).abs() < 1e-9);
        assert_eq!(obj["hub"]["status"], "not_configured");
        assert!(obj["hub"]["reason"].is_string());
        assert!(obj["hub"]["read_legs"].is_null());
        assert!(obj["warmup"].as_str().expect("warmup").contains("untimed"));
    }

    #[test]
    fn failures_are_counted_not_timed() {
        let v = sample(vec![5.0], 2);
        assert_eq!(v["read_errors"], 2);
        assert_eq!(v["read_latencies"], serde_json::json!([5.0]));
        assert_eq!(v["last_error"], "connection closed");
        let v = sample(vec![], 3);
        assert!(v["read_avg_ms"].is_null(), "no success: no made-up number");
        assert_eq!(v["read_errors"], 3);
    }

    #[test]
    fn iterations() {
        assert_eq!(parse_iterations(None), Ok(10));
        assert_eq!(parse_iterations(Some("1")), Ok(1));
        assert_eq!(parse_iterations(Some("100")), Ok(100));
        for bad in ["0", "101", "-1", "abc", "", "1.5"] {
            let e = parse_iterations(Some(bad)).expect_err(bad);
            assert!(e.contains("1 to 100"), "{e}");
        }
    }
}
