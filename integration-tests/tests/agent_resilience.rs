//! The database going away: stopped in the middle of a run (failed queries are counted, never
//! timed), unreachable while down (503), and the pool recovering after a restart.

#[path = "agent_support.rs"]
mod agent_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_support::{db_flags, get_json, start_agent};
use integration_tests::postgres::{DelayProxy, PgServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_stopped_mid_run_counts_failures_then_answers_503() {
    let pg = Arc::new(Mutex::new(PgServer::start().expect("postgres")));
    let addr = pg.lock().expect("pg").addr();
    // 10 ms RTT: 100 SELECTs + 100 INSERTs take about 2 s.
    let proxy = DelayProxy::start(addr, Duration::from_millis(5))
        .await
        .expect("proxy");
    let flags = db_flags(
        &pg.lock().expect("pg"),
        "sin",
        "127.0.0.1",
        proxy.addr().port(),
    );
    let agent = start_agent(&flags).await;

    let url = format!("{}/api/rds/benchmark?iterations=100", agent.base);
    let run = tokio::spawn(async move { get_json(&url).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stopper = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopper.lock().expect("pg").stop())
        .await
        .expect("join")
        .expect("stop postgres");
    let (status, b) = run.await.expect("join");
    assert_eq!(status, 200, "{b}");
    let reads = b["read_latencies"].as_array().expect("reads").len();
    let inserts = b["insert_latencies"].as_array().expect("inserts").len();
    let read_errors = b["read_errors"].as_u64().expect("read_errors");
    let insert_errors = b["insert_errors"].as_u64().expect("insert_errors");
    eprintln!(
        "mid-run stop: {reads} reads ok, {read_errors} failed; {inserts} inserts ok, {insert_errors} failed"
    );
    assert_eq!(reads as u64 + read_errors, 100);
    assert_eq!(inserts as u64 + insert_errors, 100);
    assert!(
        read_errors + insert_errors > 0,
        "the stop must show as errors"
    );
    assert!(reads > 0, "some SELECTs ran before the stop");
    assert!(b["last_error"].as_str().is_some());
    // Failed queries are not timed: every latency is a real round trip (>= 10 ms).
    for l in b["read_latencies"]
        .as_array()
        .expect("reads")
        .iter()
        .chain(b["insert_latencies"].as_array().expect("inserts"))
    {
        assert!(l.as_f64().expect("number") >= 9.8, "{l}");
    }

    let (status, h) = get_json(&format!("{}/api/rds/health", agent.base)).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "error", "{h}");
    assert!(h["message"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, b) = get_json(&format!("{}/api/rds/benchmark", agent.base)).await;
    assert_eq!(status, 503, "{b}");
    assert!(b["error"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_recovers_after_database_restart() {
    let mut pg = PgServer::start().expect("postgres");
    let agent = start_agent(&db_flags(&pg, "nrt", "127.0.0.1", pg.port())).await;
    // Fill the pool with a few connections.
    let urls: Vec<String> = (0..3)
        .map(|_| format!("{}/api/rds/benchmark?iterations=3", agent.base))
        .collect();
    let runs: Vec<_> = urls
        .into_iter()
        .map(|u| tokio::spawn(async move { get_json(&u).await }))
        .collect();
    for r in runs {
        assert_eq!(r.await.expect("join").0, 200);
    }
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop().expect("stop");
        pg.start_again().expect("restart");
        pg
    })
    .await
    .expect("join");
    // Every pooled connection died with the restart; none may be handed out.
    for _ in 0..4 {
        let (status, b) = get_json(&format!("{}/api/rds/benchmark?iterations=3", agent.base)).await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(b["read_errors"], 0, "{b}");
        assert_eq!(b["insert_errors"], 0, "{b}");
    }
    let (_, h) = get_json(&format!("{}/api/rds/health", agent.base)).await;
    assert_eq!(h["status"], "connected");
    drop(pg);
}
