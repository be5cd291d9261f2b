//! The daemon's HTTP server: Prometheus `/metrics`, and `GET /api/flows`, which tells an edge
//! the per-flow timing of its own flows only. The caller is identified by the TCP source
//! address of the request, which arrives through the tunnel: WireGuard only accepts a
//! source inside the sending peer's allowed IPs, so a peer cannot pose as another.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock},
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    metrics,
    nat::{self, FlowView, NatError},
    status,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("binding the HTTP API to {addr}")]
pub struct ApiError {
    pub addr: SocketAddr,
    #[source]
    pub source: io::Error,
}

/// What the handlers read: the configuration in force, swapped on reload.
pub struct ApiState {
    pub config: RwLock<Config>,
}

/// One flow as `/api/flows` gives it to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiFlow {
    pub peer: String,
    pub vip: String,
    pub backend: String,
    pub state: &'static str,
    pub age_ms: u64,
    /// 0 until the hub-to-database handshake completed.
    pub db_handshake_ns: u64,
    /// 0 until a request was answered.
    pub request_ns_last: u64,
    // TODO: the dataplane keeps request histograms per service, not per flow; a service's
    // histogram mixes other peers' flows, so it stays out of this per-peer answer (it is in /metrics).
    pub request_ns_hist: Vec<u64>,
}

#[derive(Debug, Serialize)]
pub struct FlowsAnswer {
    pub flows: Vec<ApiFlow>,
}

/// The flows whose peer address is `caller`, in the API's shape.
pub fn own_flows(flows: Vec<FlowView>, caller: IpAddr) -> Vec<ApiFlow> {
    flows
        .into_iter()
        .filter(|f| IpAddr::V4(*f.peer.ip()) == caller.to_canonical())
        .map(|f| ApiFlow {
            peer: f.peer.to_string(),
            vip: f.original.dst.to_string(),
            backend: f.translated.dst.to_string(),
            state: f.state,
            age_ms: f.age_ns / 1_000_000,
            db_handshake_ns: f.db_handshake_ns.unwrap_or(0),
            request_ns_last: f.request_ns_last.unwrap_or(0),
            request_ns_hist: Vec::new(),
        })
        .collect()
}

/// Binds the listening socket (before readiness is reported, so a wrong address fails
/// the start).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ApiError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError { addr, source })
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    let addr = listener.local_addr().ok();
    let app = Router::new()
        .route("/metrics", get(get_metrics))
        .route("/api/flows", get(get_flows))
        .with_state(state);
    tracing::info!(?addr, "HTTP API listening");
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::error!(error = %e, "HTTP API stopped");
    }
}

/// The one place where failures become HTTP answers: causes go to the log, not the body.
enum Failure {
    Maps(Box<NatError>),
    Task,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Self::Maps(e) => {
                tracing::warn!(
                    error = status::error_chain(&*e),
                    "reading the NAT maps for the API"
                );
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the NAT maps cannot be read\n",
                )
                    .into_response()
            }
            Self::Task => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
        }
    }
}

fn config(state: &ApiState) -> Config {
    state
        .config
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

async fn get_metrics(State(state): State<Arc<ApiState>>) -> Result<Response, Failure> {
    let config = config(&state);
    let reading = tokio::task::spawn_blocking(move || status::gather(&config))
        .await
        .map_err(|_| Failure::Task)?;
    Ok((
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&reading),
    )
        .into_response())
}

async fn get_flows(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
) -> Result<Json<FlowsAnswer>, Failure> {
    let pin_dir = config(&state).pin_dir;
    let flows = tokio::task::spawn_blocking(move || nat::read_flows(&pin_dir).map_err(Box::new))
        .await
        .map_err(|_| Failure::Task)?
        .map_err(Failure::Maps)?;
    Ok(Json(FlowsAnswer {
        flows: own_flows(flows, caller.ip()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::Tuple;

    fn flow(peer: &str) -> FlowView {
        let peer = peer.parse().unwrap();
        FlowView {
            peer,
            original: Tuple {
                src: peer,
                dst: "10.50.0.1:5432".parse().unwrap(),
            },
            translated: Tuple {
                src: "10.99.0.1:40312".parse().unwrap(),
                dst: "10.99.0.2:5432".parse().unwrap(),
            },
            state: "established",
            age_ns: 1_234_000_000,
            idle_ns: 0,
            db_handshake_ns: Some(350_000),
            request_ns_last: None,
            requests: 0,
        }
    }

    #[test]
    fn a_caller_sees_only_its_own_flows_in_the_agreed_shape() {
        let flows = vec![
            flow("10.50.3.1:40312"),
            flow("10.50.1.1:40312"),
            flow("10.50.3.1:40313"),
        ];
        let own = own_flows(flows, "10.50.3.1".parse().unwrap());
        assert_eq!(own.len(), 2);
        assert!(own.iter().all(|f| f.peer.starts_with("10.50.3.1:")));

        let json = serde_json::to_value(FlowsAnswer { flows: own }).unwrap();
        let first = &json["flows"][0];
        assert_eq!(first["peer"], "10.50.3.1:40312");
        assert_eq!(first["vip"], "10.50.0.1:5432");
        assert_eq!(first["backend"], "10.99.0.2:5432");
        assert_eq!(first["state"], "established");
        assert_eq!(first["age_ms"], 1234);
        assert_eq!(first["db_handshake_ns"], 350_000);
        assert_eq!(first["request_ns_last"], 0);
        assert!(first["request_ns_hist"].is_array());

        let mapped: IpAddr = "::ffff:10.50.1.1".parse().unwrap();
        assert_eq!(own_flows(vec![flow("10.50.1.1:1")], mapped).len(), 1);
        assert!(own_flows(vec![flow("10.50.1.1:1")], "10.50.1.2".parse().unwrap()).is_empty());
    }
}
