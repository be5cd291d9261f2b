//! The HTTP API (axum), with the original backend's routes and JSON keys.
//!
//! All error-to-status mapping is in [`ApiError`]'s `IntoResponse`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::benchmark::{self, BenchError, Benchmarker};
use crate::config::ServeArgs;
use crate::db::{self, DbConfig};
use crate::hub::HubClient;
use crate::metrics::Metrics;

/// `db_host` reported when no database is configured (the original's "não configurado").
pub const NOT_CONFIGURED: &str = "not configured";

/// Shared state of the handlers.
pub struct AppState {
    /// Region code.
    pub region: String,
    /// Instance name (8 characters).
    pub hostname: String,
    /// The benchmark runner; `None` when the database is not configured.
    pub bench: Option<Benchmarker>,
    /// Counters.
    pub metrics: Metrics,
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading the password file.
    #[error("cannot read the password file: {0}")]
    PasswordFile(std::io::Error),
    /// Database pool or TLS setup.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// Hub client.
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    /// Binding the port.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Errors answered to HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad `iterations`.
    #[error("{0}")]
    InvalidIterations(String),
    /// The benchmark could not run.
    #[error(transparent)]
    Bench(#[from] BenchError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Self::InvalidIterations(msg) => (
                StatusCode::BAD_REQUEST,
                json!({"error": msg, "valid_range": [benchmark::ITERATIONS.start(), benchmark::ITERATIONS.end()]}),
            ),
            Self::Bench(e) => {
                tracing::warn!(error = %e, "benchmark could not run");
                let msg = match e {
                    BenchError::Unavailable(_) => "database unreachable",
                    BenchError::Warmup(_) => "database not usable (warm-up failed)",
                };
                (StatusCode::SERVICE_UNAVAILABLE, json!({"error": msg}))
            }
        };
        (status, Json(body)).into_response()
    }
}

impl AppState {
    /// Builds the state from the serve flags: pool (lazy), hub client, schema if asked.
    pub async fn from_args(args: &ServeArgs) -> Result<Arc<Self>, StartError> {
        let region = args.region();
        let hub = args
            .hub_api
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(HubClient::new)
            .transpose()?;
        let bench = match DbConfig::from_args(args).map_err(StartError::PasswordFile)? {
            None => {
                tracing::warn!("DB_HOST not set: database benchmark disabled");
                None
            }
            Some(cfg) => {
                let cfg = Arc::new(cfg);
                tracing::info!(host = %cfg.host, port = cfg.port, user = %cfg.user,
                    dbname = %cfg.dbname, sslmode = ?cfg.sslmode, "database configured");
                let pool = db::pool(&cfg)?;
                if args.init_schema {
                    match db::init_schema(&pool).await {
                        Ok(()) => tracing::info!("contacts table ready"),
                        Err(error) => tracing::error!(%error, "cannot create the contacts table"),
                    }
                }
                Some(Benchmarker {
                    pool,
                    region: region.clone(),
                    db_host: cfg.host.clone(),
                    hub,
                    query_timeout: cfg.statement_timeout + Duration::from_secs(1),
                })
            }
        };
        Ok(Arc::new(Self {
            region,
            hostname: args.hostname(),
            bench,
            metrics: Metrics::default(),
        }))
    }

    fn db_host(&self) -> &str {
        self.bench
            .as_ref()
            .map_or(NOT_CONFIGURED, |b| b.db_host.as_str())
    }
}

/// The router with all routes; every answer carries `X-Fly-Region`.
pub fn router(state: Arc<AppState>) -> Router {
    let region = HeaderValue::from_str(&state.region).unwrap_or(HeaderValue::from_static("local"));
    Router::new()
        .route("/api/rds/benchmark", get(benchmark_handler))
        .route("/api/rds/health", get(health))
        .route("/api/info", get(info))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let region = region.clone();
            async move {
                res.headers_mut()
                    .insert(HeaderName::from_static("x-fly-region"), region);
                res
            }
        }))
}

/// Serves until the process ends.
pub async fn serve(args: &ServeArgs) -> Result<(), StartError> {
    let state = AppState::from_args(args).await?;
    let addr = SocketAddr::new(args.listen, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(region = %state.region, %addr, "edge-agent listening");
    axum::serve(listener, router(state))
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

async fn benchmark_handler(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let iterations = benchmark::parse_iterations(q.get("iterations").map(String::as_str))
        .map_err(ApiError::InvalidIterations)?;
    let Some(bench) = &state.bench else {
        // The original's behaviour: 200 with an error field.
        return Ok(Json(json!({
            "error": "database not configured",
            "region": state.region,
            "db_host": NOT_CONFIGURED,
        }))
        .into_response());
    };
    let report = match bench.run(iterations).await {
        Ok(r) => r,
        Err(e) => {
            state.metrics.record_failure();
            return Err(e.into());
        }
    };
    state.metrics.record_run(
        report.read_latencies.len() as u64,
        u64::from(report.read_errors),
        report.insert_latencies.len() as u64,
        u64::from(report.insert_errors),
    );
    if let (Some(r), Some(w)) = (report.read_p50_ms, report.insert_p50_ms) {
        state.metrics.record_medians(r, w);
    }
    tracing::info!(iterations, read_p50_ms = ?report.read_p50_ms, insert_p50_ms = ?report.insert_p50_ms,
        read_errors = report.read_errors, insert_errors = report.insert_errors, "benchmark done");
    Ok(Json(report).into_response())
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut body = json!({"region": state.region, "db_host": state.db_host()});
    match &state.bench {
        None => body["status"] = json!("disabled"),
        Some(b) => match db::ping(&b.pool, b.query_timeout).await {
            Ok(()) => body["status"] = json!("connected"),
            Err(e) => {
                tracing::warn!(error = %e, "health check failed");
                body["status"] = json!("error");
                body["message"] = json!(e.to_string());
            }
        },
    }
    Json(body)
}

async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"region": state.region, "hostname": state.hostname}))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(&state.region),
    )
}
