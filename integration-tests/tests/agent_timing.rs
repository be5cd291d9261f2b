//! Round trips and legs: with a delay proxy adding a fixed RTT in front of PostgreSQL, each
//! timed SELECT and INSERT takes one round trip, and the hub's timing splits each query.

#[path = "agent_support.rs"]
mod agent_support;

use std::time::Duration;

use agent_support::{db_flags, get_json, start_agent};
use axum::Json;
use axum::routing::get;
use integration_tests::postgres::{DelayProxy, PgServer, free_port};
use serde_json::{Value, json};

/// One-way delay the proxy adds; the round trip is twice this.
const ONE_WAY: Duration = Duration::from_millis(20);

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_and_insert_each_take_one_round_trip() {
    let pg = PgServer::start().expect("postgres");
    let proxy = DelayProxy::start(pg.addr(), ONE_WAY).await.expect("proxy");
    let agent = start_agent(&db_flags(&pg, "lhr", "127.0.0.1", proxy.addr().port())).await;
    let (status, b) = get_json(&format!("{}/api/rds/benchmark?iterations=10", agent.base)).await;
    assert_eq!(status, 200, "{b}");
    let rtt = 2.0 * ONE_WAY.as_secs_f64() * 1e3;
    // One round trip is >= 40 ms; two would be >= 80 ms. Bound at 1.5 RTT (60 ms) on the
    // median, leaving 20 ms for scheduling noise, and no sample may beat physics.
    for op in ["read", "insert"] {
        let lat = floats(&b[format!("{op}_latencies")]);
        assert_eq!(lat.len(), 10);
        let p50 = b[format!("{op}_p50_ms")].as_f64().expect("p50");
        eprintln!("{op}: RTT {rtt} ms, p50 {p50} ms, latencies {lat:?}");
        assert!(
            lat.iter().all(|&l| l >= rtt * 0.98),
            "{op} faster than one RTT: {lat:?}"
        );
        assert!(
            p50 < 1.5 * rtt,
            "{op} median {p50} ms is more than one round trip ({rtt} ms)"
        );
    }
    // Connection setup (TCP + startup + SCRAM: several round trips) is reported apart.
    let connect = b["connect_ms"].as_f64().expect("connect_ms");
    assert!(
        connect >= 2.0 * rtt,
        "connect_ms {connect} should span several RTTs"
    );
    assert_eq!(b["connection_reused"], false);
}

async fn fake_hub(proxy: &DelayProxy) -> (String, tokio::task::JoinHandle<()>) {
    let flows = std::sync::Arc::new(proxy_flows_source(proxy));
    let app = axum::Router::new().route(
        "/api/flows",
        get(move || {
            let flows = std::sync::Arc::clone(&flows);
            async move { Json(flows()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

/// A closure rendering the proxy's flows in the hub API's shape.
fn proxy_flows_source(proxy: &DelayProxy) -> impl Fn() -> Value + Send + Sync + 'static {
    let handle = proxy.flows_handle();
    move || {
        let flows: Vec<Value> = handle()
            .into_iter()
            .map(|(peer, t)| {
                json!({"peer": peer.to_string(), "vip": "10.50.0.1:5432",
                       "backend": "127.0.0.1:5432", "state": "established", "age_ms": 1,
                       "db_handshake_ns": t.handshake_ns, "request_ns_last": t.request_ns_last,
                       "request_ns_hist": vec![0u64; 32]})
            })
            .collect();
        json!({ "flows": flows })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_timing_splits_each_query_into_network_and_server() {
    let pg = PgServer::start().expect("postgres");
    let proxy = DelayProxy::start(pg.addr(), ONE_WAY).await.expect("proxy");
    let (hub, _hub_task) = fake_hub(&proxy).await;
    let mut flags = db_flags(&pg, "fra", "127.0.0.1", proxy.addr().port());
    flags.extend(["--hub-api".to_owned(), hub]);
    let agent = start_agent(&flags).await;
    let (status, b) = get_json(&format!("{}/api/rds/benchmark?iterations=5", agent.base)).await;
    assert_eq!(status, 200, "{b}");
    let h = &b["hub"];
    assert_eq!(h["status"], "ok", "{h}");
    let rtt = 2.0 * ONE_WAY.as_secs_f64() * 1e3;
    for op in ["read", "insert"] {
        let legs = h[format!("{op}_legs")].as_array().expect("legs");
        assert_eq!(legs.len(), 5);
        for l in legs {
            let (total, hub_ms, net) = (
                l["total_ms"].as_f64().expect("total"),
                l["hub_ms"].as_f64().expect("hub"),
                l["network_ms"].as_f64().expect("net"),
            );
            assert!((total - hub_ms - net).abs() < 1e-6 || net == 0.0, "{l}");
            // The proxy (our "hub") sits after the delay: the edge<->hub leg holds the RTT.
            assert!(net >= rtt * 0.95, "{op} network leg {net} < RTT {rtt}: {l}");
            assert!(hub_ms >= 0.0 && hub_ms < total, "{l}");
        }
        let net = h[format!("{op}_network_p50_ms")].as_f64().expect("net p50");
        let srv = h[format!("{op}_server_p50_ms")]
            .as_f64()
            .expect("server p50");
        eprintln!("{op}: network p50 {net} ms, server p50 {srv} ms");
        // The database sits right behind the proxy: its time is far below the added RTT.
        assert!(srv < rtt / 2.0, "{op} server p50 {srv}");
        assert!(net >= rtt * 0.95, "{op} network p50 {net}");
    }
    assert!(h["db_handshake_ms"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_hub_leaves_hub_fields_null_and_says_why() {
    let pg = PgServer::start().expect("postgres");
    let mut flags = db_flags(&pg, "cdg", "127.0.0.1", pg.port());
    let closed = free_port().expect("port");
    flags.extend(["--hub-api".to_owned(), format!("http://127.0.0.1:{closed}")]);
    let agent = start_agent(&flags).await;
    let (status, b) = get_json(&format!("{}/api/rds/benchmark?iterations=3", agent.base)).await;
    assert_eq!(status, 200, "{b}");
    let h = &b["hub"];
    assert_eq!(h["status"], "unreachable");
    assert!(h["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(h["read_legs"].is_null() && h["read_network_p50_ms"].is_null());
    assert_eq!(b["read_latencies"].as_array().map(Vec::len), Some(3));
}
