//! Shared helpers of the `agent_*` tests (included with `#[path]`; no tests of its own).

#![allow(dead_code, reason = "each agent_* test uses a different part")]

use std::future::IntoFuture as _;
use std::time::Duration;

use agent::config::ServeArgs;
use agent::server::{AppState, router};
use integration_tests::postgres::{PgServer, USER};

/// An agent served in-process on 127.0.0.1 with an ephemeral port.
pub struct Agent {
    /// `http://127.0.0.1:port`.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an agent with these flags (after `serve`).
pub async fn start_agent(args: &[String]) -> Agent {
    let serve = ServeArgs::try_from_flags(args).expect("agent flags");
    let state = AppState::from_args(&serve).await.expect("agent state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).into_future().await;
    });
    Agent { base, task }
}

/// Flags pointing an agent at `host:port` as the original's `contacts_user`.
pub fn db_flags(pg: &PgServer, region: &str, host: &str, port: u16) -> Vec<String> {
    [
        "--region",
        region,
        "--db-host",
        host,
        "--db-port",
        &port.to_string(),
        "--db-user",
        USER,
        "--db-password",
        pg.password(),
        "--db-name",
        "contacts",
        "--connect-timeout",
        "3s",
        "--statement-timeout",
        "5s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// GET returning status and JSON body.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("agent answers");
    let status = resp.status().as_u16();
    let body = resp.json().await.expect("JSON body");
    (status, body)
}

/// The real `edge-agent` binary (`$EDGE_AGENT_BIN`, or built on first use).
pub fn edge_agent_binary() -> std::path::PathBuf {
    integration_tests::binaries::workspace_binary("agent", "edge-agent", "EDGE_AGENT_BIN")
}

/// Waits until `GET url` answers, with a deadline.
pub async fn wait_http(url: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if reqwest::get(url).await.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} not up within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
