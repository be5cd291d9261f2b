//! edge-agent's HTTP API against a real PostgreSQL 15: the original's JSON keys and types,
//! invalid `iterations`, disabled and unreachable databases, `--init-schema`.

#[path = "agent_support.rs"]
mod agent_support;

use agent_support::{db_flags, get_json, start_agent};
use integration_tests::postgres::{PgServer, free_port};
use serde_json::Value;

fn is_number(v: &Value) -> bool {
    v.is_f64() || v.is_i64() || v.is_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_health_info_keep_the_original_keys_and_types() {
    let pg = PgServer::start().expect("postgres");
    let agent = start_agent(&db_flags(&pg, "lhr", "127.0.0.1", pg.port())).await;

    let resp = reqwest::get(format!("{}/api/rds/benchmark?iterations=5", agent.base))
        .await
        .expect("benchmark");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-fly-region"], "lhr");
    let b: Value = resp.json().await.expect("json");
    assert_eq!(b["region"], "lhr");
    assert_eq!(b["db_host"], "127.0.0.1");
    assert_eq!(b["iterations"], 5);
    for key in [
        "read_avg_ms",
        "read_min_ms",
        "read_max_ms",
        "insert_avg_ms",
        "insert_min_ms",
        "insert_max_ms",
        "read_p50_ms",
        "read_p95_ms",
        "read_p99_ms",
        "read_stddev_ms",
        "insert_p50_ms",
        "insert_p95_ms",
        "insert_p99_ms",
        "insert_stddev_ms",
        "connect_ms",
    ] {
        assert!(is_number(&b[key]), "{key} is a number: {}", b[key]);
    }
    for key in ["read_latencies", "insert_latencies"] {
        let arr = b[key].as_array().expect(key);
        assert_eq!(arr.len(), 5);
        assert!(arr.iter().all(is_number));
    }
    assert_eq!(b["read_errors"], 0);
    assert_eq!(b["insert_errors"], 0);
    let ts = b["timestamp"].as_str().expect("timestamp");
    assert!(humantime_like(ts), "RFC3339 UTC seconds: {ts}");
    assert!(b["read_min_ms"].as_f64() <= b["read_avg_ms"].as_f64());
    assert!(b["warmup"].as_str().expect("warmup").contains("untimed"));
    assert!(
        b["tcp_info"]["srtt_ms"].is_number(),
        "TCP_INFO read: {}",
        b["tcp_info"]
    );
    assert_eq!(b["hub"]["status"], "not_configured");
    assert!(b["hub"]["read_legs"].is_null());

    let (status, h) = get_json(&format!("{}/api/rds/health", agent.base)).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "connected");
    assert_eq!(h["region"], "lhr");
    assert_eq!(h["db_host"], "127.0.0.1");

    let (_, i) = get_json(&format!("{}/api/info", agent.base)).await;
    assert_eq!(i["region"], "lhr");
    assert!(i["hostname"].as_str().expect("hostname").chars().count() <= 8);

    let metrics = reqwest::get(format!("{}/metrics", agent.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("edge_agent_benchmarks_total{region=\"lhr\"} 1"),
        "{metrics}"
    );

    // The rows really went in.
    let n = pg.psql(
        "contacts",
        "SELECT COUNT(*) FROM contacts WHERE notes = 'Benchmark'",
    );
    assert_eq!(n.expect("count").trim(), "6", "5 timed INSERTs + 1 warm-up");
}

fn humantime_like(ts: &str) -> bool {
    let b = ts.as_bytes();
    ts.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z'
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_iterations_get_400_naming_the_range() {
    let pg = PgServer::start().expect("postgres");
    let agent = start_agent(&db_flags(&pg, "fra", "127.0.0.1", pg.port())).await;
    for bad in ["0", "101", "-3", "ten", "2.5", ""] {
        let (status, body) = get_json(&format!(
            "{}/api/rds/benchmark?iterations={bad}",
            agent.base
        ))
        .await;
        assert_eq!(status, 400, "iterations={bad}");
        let msg = body["error"].as_str().expect("error message");
        assert!(msg.contains("1 to 100"), "{msg}");
        assert_eq!(body["valid_range"], serde_json::json!([1, 100]));
    }
    let (status, body) = get_json(&format!("{}/api/rds/benchmark?iterations=1", agent.base)).await;
    assert_eq!(status, 200);
    assert_eq!(body["read_latencies"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_db_host_means_disabled_as_in_the_original() {
    let agent = start_agent(&[
        "--region".to_owned(),
        "gru".to_owned(),
        "--db-host".to_owned(),
        String::new(),
    ])
    .await;
    let (status, h) = get_json(&format!("{}/api/rds/health", agent.base)).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "disabled");
    let (status, b) = get_json(&format!("{}/api/rds/benchmark", agent.base)).await;
    assert_eq!(status, 200);
    assert_eq!(b["error"], "database not configured");
    assert_eq!(b["region"], "gru");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_an_error_and_a_503() {
    let pg = PgServer::start().expect("postgres");
    let closed = free_port().expect("port");
    let agent = start_agent(&db_flags(&pg, "iad", "127.0.0.1", closed)).await;
    let (status, h) = get_json(&format!("{}/api/rds/health", agent.base)).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "error");
    let msg = h["message"].as_str().expect("reason");
    assert!(msg.contains("connect"), "{msg}");
    let (status, b) = get_json(&format!("{}/api/rds/benchmark", agent.base)).await;
    assert_eq!(status, 503);
    assert_eq!(b["error"], "database unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_503_without_the_password() {
    let pg = PgServer::start().expect("postgres");
    let mut flags = db_flags(&pg, "ord", "127.0.0.1", pg.port());
    let pos = flags
        .iter()
        .position(|f| f == "--db-password")
        .expect("flag");
    flags[pos + 1] = "not-the-password-xyzzy".to_owned();
    let agent = start_agent(&flags).await;
    let (_, h) = get_json(&format!("{}/api/rds/health", agent.base)).await;
    assert_eq!(h["status"], "error");
    assert!(!h.to_string().contains("xyzzy"));
    let (status, b) = get_json(&format!("{}/api/rds/benchmark", agent.base)).await;
    assert_eq!(status, 503);
    assert!(!b.to_string().contains("xyzzy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_schema_creates_the_contacts_table() {
    let pg = PgServer::start().expect("postgres");
    pg.psql("postgres", "CREATE DATABASE fresh OWNER contacts_user;")
        .expect("db");
    let mut flags = db_flags(&pg, "lax", "127.0.0.1", pg.port());
    let pos = flags.iter().position(|f| f == "contacts").expect("dbname");
    flags[pos] = "fresh".to_owned();
    flags.push("--init-schema".to_owned());
    let agent = start_agent(&flags).await;
    let (status, b) = get_json(&format!("{}/api/rds/benchmark?iterations=2", agent.base)).await;
    assert_eq!(status, 200, "{b}");
    let cols = pg
        .psql(
            "fresh",
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_name = 'contacts'",
        )
        .expect("columns");
    assert_eq!(cols.trim(), "id,name,email,notes,created_at");
}
