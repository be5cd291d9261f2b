//! Client of the hub's flow API, and the split of a query's time into legs.
//!
//! The hub (`GET <hub>/api/flows`) reports, per flow it forwards, `request_ns_last`: the time it
//! saw from forwarding the client's last payload to the first server payload coming back, i.e.
//! the hub->database->hub network leg plus the database's own time; and `db_handshake_ns`, the
//! hub->database TCP handshake, i.e. one hub<->database network round trip. The agent finds its
//! flow by its socket's local port (the flow's `peer` port).
//!
//! Leg split of one query, an approximation:
//! - edge<->hub network ≈ query time seen by the agent − `request_ns_last`;
//! - database server time ≈ `request_ns_last` − `db_handshake_ns` (clamped at 0), taking the
//!   handshake RTT as the hub<->database round trip of the query.
//!
//! It ignores the hub's own forwarding time and assumes the hub<->database RTT did not change
//! since the handshake.
//!
//! TODO: subtract the hub's forwarding time once its flow API reports it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Errors asking the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub did not answer or answered badly.
    #[error("hub API unreachable: {0}")]
    Unreachable(String),
    /// The hub answered but no flow carries our port.
    #[error("no flow with local port {0} at the hub")]
    FlowNotFound(u16),
}

/// One flow as the hub reports it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Flow {
    /// The client's address as the hub sees it (`ip:port`).
    pub peer: String,
    /// The address the client connected to.
    #[serde(default)]
    pub vip: String,
    /// The database address.
    #[serde(default)]
    pub backend: String,
    /// Connection state.
    #[serde(default)]
    pub state: String,
    /// Age of the flow.
    #[serde(default)]
    pub age_ms: u64,
    /// Hub->database TCP handshake time.
    pub db_handshake_ns: u64,
    /// Hub-seen time of the last request (last client payload to first server payload).
    pub request_ns_last: u64,
    /// Histogram of request times.
    #[serde(default)]
    pub request_ns_hist: Vec<u64>,
}

#[derive(Debug, Deserialize)]
struct Flows {
    flows: Vec<Flow>,
}

/// A small client of the hub's API.
#[derive(Debug, Clone)]
pub struct HubClient {
    base: String,
    http: reqwest::Client,
}

impl HubClient {
    /// A client for the API at `base` (e.g. `http://10.50.0.1:9090`).
    pub fn new(base: &str) -> Result<Self, HubError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| HubError::Unreachable(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Our flow: the one whose peer port is `local_port`.
    pub async fn flow(&self, local_port: u16) -> Result<Flow, HubError> {
        let url = format!("{}/api/flows", self.base);
        let flows: Flows = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| HubError::Unreachable(e.to_string()))?
            .json()
            .await
            .map_err(|e| HubError::Unreachable(e.to_string()))?;
        find_flow(flows.flows, local_port).ok_or(HubError::FlowNotFound(local_port))
    }
}

/// The flow whose `peer` port is `local_port`.
pub fn find_flow(flows: Vec<Flow>, local_port: u16) -> Option<Flow> {
    flows.into_iter().find(|f| {
        f.peer
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            == Some(local_port)
    })
}

/// One query's time, split into legs (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Legs {
    /// Query time the agent measured.
    pub total_ms: f64,
    /// Hub-seen request time (hub->db->hub plus server time).
    pub hub_ms: f64,
    /// Edge<->hub network time: `total - hub`, at least 0.
    pub network_ms: f64,
    /// Database server time: `hub - db_rtt`, at least 0.
    pub server_ms: f64,
}

/// Splits a query's `total_ms` given the hub's request time and hub<->database RTT.
pub fn split(total_ms: f64, hub_request_ms: f64, db_rtt_ms: f64) -> Legs {
    Legs {
        total_ms,
        hub_ms: hub_request_ms,
        network_ms: (total_ms - hub_request_ms).max(0.0),
        server_ms: (hub_request_ms - db_rtt_ms).max(0.0),
    }
}

/// Nanoseconds to milliseconds.
#[allow(clippy::cast_precision_loss)] // nanosecond durations far below 2^52
pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_contract_and_find() {
        let json = r#"{"flows":[{"peer":"10.50.3.1:40312","vip":"10.50.0.1:5432",
            "backend":"10.99.0.2:5432","state":"established","age_ms":1234,
            "db_handshake_ns":350000,"request_ns_last":420000,"request_ns_hist":[0,1]},
            {"peer":"10.50.3.1:40313","db_handshake_ns":1,"request_ns_last":2}]}"#;
        let flows: Flows = serde_json::from_str(json).expect("parse");
        let f = find_flow(flows.flows.clone(), 40312).expect("found");
        assert_eq!(f.request_ns_last, 420_000);
        assert!((ns_to_ms(f.db_handshake_ns) - 0.35).abs() < 1e-12);
        assert!(find_flow(flows.flows, 1).is_none());
    }

    #[test]
    fn split_clamps() {
        let l = split(10.0, 3.0, 1.0);
        assert!((l.network_ms - 7.0).abs() < 1e-12);
        assert!((l.server_ms - 2.0).abs() < 1e-12);
        let l = split(2.0, 3.0, 5.0);
        assert!(l.network_ms.abs() < 1e-12);
        assert!(l.server_ms.abs() < 1e-12);
    }
}
