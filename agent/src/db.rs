//! The PostgreSQL connection pool.
//!
//! Connections are opened by the agent itself (tokio `TcpStream` with `TCP_NODELAY` and TCP
//! keepalives) and handed to tokio-postgres with `connect_raw`, so the agent keeps a duplicate of
//! each socket's descriptor and can read `TCP_INFO` of exactly the socket a query used. A
//! connection is checked before it is handed out (closed, too old, or failing an empty query:
//! it is dropped and a new one opened), so dead connections are replaced, not handed out.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use socket2::{SockRef, Socket, TcpKeepalive};
use tokio::net::TcpStream;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ServeArgs, SslMode};
use crate::secret::Secret;
use crate::tcp_info::{self, TcpInfo};
use crate::tls::{self, TlsError};

/// Errors opening or checking a database connection.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Host name resolution failed.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// Host.
        host: String,
        /// Why.
        reason: String,
    },
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The whole connection setup took too long.
    #[error("connecting took more than {0:?}")]
    ConnectTimeout(Duration),
    /// A query took longer than the statement timeout.
    #[error("query took more than {0:?}")]
    QueryTimeout(Duration),
    /// PostgreSQL protocol or server error.
    #[error("database: {}", error_chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TLS server name is not a valid DNS name or address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The pool gave no connection.
    #[error("connection pool: {0}")]
    Pool(String),
}

/// Database settings, with the password kept redacted.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: Secret,
    /// Database name.
    pub dbname: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// Name the certificate must carry (defaults to `host`).
    pub server_name: Option<String>,
    /// CA file for verify-full.
    pub root_cert: Option<std::path::PathBuf>,
    /// Connection setup timeout.
    pub connect_timeout: Duration,
    /// Statement timeout (server side and client side).
    pub statement_timeout: Duration,
    /// Most open connections.
    pub pool_max: usize,
    /// Most idle connections kept.
    pub pool_idle: usize,
    /// Connection lifetime.
    pub max_lifetime: Duration,
}

impl DbConfig {
    /// Settings from the serve flags; `None` when no database host is configured.
    pub fn from_args(args: &ServeArgs) -> std::io::Result<Option<Self>> {
        let Some(host) = args.db_host() else {
            return Ok(None);
        };
        Ok(Some(Self {
            host: host.to_owned(),
            port: args.db_port,
            user: args.db_user.clone(),
            password: args.password()?,
            dbname: args.db_name.clone(),
            sslmode: args.sslmode,
            server_name: args.ssl_server_name.clone(),
            root_cert: args.ssl_root_cert.clone(),
            connect_timeout: args.connect_timeout,
            statement_timeout: args.statement_timeout,
            pool_max: args.pool_max.max(1),
            pool_idle: args.pool_idle,
            max_lifetime: args.conn_max_lifetime,
        }))
    }
}

/// One open database connection and the agent's own handle on its socket.
pub struct Conn {
    /// The tokio-postgres client.
    pub client: Client,
    /// A duplicate descriptor of the connection's TCP socket (same socket, kept open with it).
    socket: Socket,
    /// Local TCP port of the connection (the hub sees it as the flow's peer port).
    pub local_port: u16,
    /// Time to open it: TCP handshake, TLS and PostgreSQL startup/authentication.
    pub setup_time: Duration,
    /// The benchmark's prepared statements, cached for the connection's life.
    pub statements: Option<Statements>,
}

/// The benchmark's statements, prepared once per connection.
#[derive(Clone)]
pub struct Statements {
    /// `SELECT COUNT(*) FROM contacts`.
    pub count: Statement,
    /// `INSERT INTO contacts (name, email, notes) VALUES ($1, $2, $3)`.
    pub insert: Statement,
}

impl Conn {
    /// The cached prepared statements, preparing them on first use (two round trips, once per
    /// connection, never inside a timing).
    pub async fn statements(&mut self) -> Result<Statements, DbError> {
        if let Some(s) = &self.statements {
            return Ok(s.clone());
        }
        let count = self.client.prepare("SELECT COUNT(*) FROM contacts").await?;
        let insert = self
            .client
            .prepare("INSERT INTO contacts (name, email, notes) VALUES ($1, $2, $3)")
            .await?;
        let s = Statements { count, insert };
        self.statements = Some(s.clone());
        Ok(s)
    }

    /// `TCP_INFO` of this connection's socket.
    pub fn tcp_info(&self) -> std::io::Result<TcpInfo> {
        tcp_info::read(self.socket.as_fd())
    }
}

/// deadpool manager opening [`Conn`]s.
pub struct Manager {
    cfg: Arc<DbConfig>,
    tls: Option<MakeRustlsConnect>,
}

impl Manager {
    /// A manager for `cfg` (builds the TLS configuration once).
    pub fn new(cfg: Arc<DbConfig>) -> Result<Self, DbError> {
        let tls =
            tls::client_config(cfg.sslmode, cfg.root_cert.as_deref())?.map(MakeRustlsConnect::new);
        Ok(Self { cfg, tls })
    }

    fn pg_config(&self) -> tokio_postgres::Config {
        let cfg = &self.cfg;
        let mut pg = tokio_postgres::Config::new();
        pg.user(&cfg.user)
            .password(cfg.password.expose())
            .dbname(&cfg.dbname)
            .application_name("edge-agent")
            .options(format!(
                "-c statement_timeout={}",
                cfg.statement_timeout.as_millis()
            ))
            .ssl_mode(match cfg.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
        pg
    }

    async fn open(&self) -> Result<Conn, DbError> {
        let cfg = &self.cfg;
        let start = Instant::now();
        let addr = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
            .await
            .map_err(|e| DbError::Resolve {
                host: cfg.host.clone(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| DbError::Resolve {
                host: cfg.host.clone(),
                reason: "no address".to_owned(),
            })?;
        let connect_err = |source| DbError::Connect {
            addr: addr.to_string(),
            source,
        };
        let stream = TcpStream::connect(addr).await.map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        let sock = SockRef::from(&stream);
        let keepalive = TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        sock.set_tcp_keepalive(&keepalive).map_err(connect_err)?;
        let socket = sock.try_clone().map_err(connect_err)?;
        let local_port = stream.local_addr().map_err(connect_err)?.port();

        let pg = self.pg_config();
        let client = match &self.tls {
            None => handshake(&pg, stream, NoTls).await?,
            Some(make) => {
                let name = cfg.server_name.as_deref().unwrap_or(&cfg.host);
                let mut make = make.clone();
                let tls = <MakeRustlsConnect as MakeTlsConnect<TcpStream>>::make_tls_connect(
                    &mut make, name,
                )
                .map_err(|_| DbError::ServerName(name.to_owned()))?;
                handshake(&pg, stream, tls).await?
            }
        };
        let setup_time = start.elapsed();
        tracing::debug!(
            local_port,
            setup_ms = setup_time.as_secs_f64() * 1e3,
            "database connection opened"
        );
        Ok(Conn {
            client,
            socket,
            local_port,
            setup_time,
            statements: None,
        })
    }
}

async fn handshake<T>(
    pg: &tokio_postgres::Config,
    stream: TcpStream,
    tls: T,
) -> Result<Client, DbError>
where
    T: TlsConnect<TcpStream> + Send + 'static,
    T::Stream: Send + Unpin + 'static,
    T::Future: Send,
{
    let (client, connection) = pg.connect_raw(stream, tls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "database connection ended");
        }
    });
    Ok(client)
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = DbError;

    async fn create(&self) -> Result<Conn, DbError> {
        let limit = self.cfg.connect_timeout;
        tokio::time::timeout(limit, self.open())
            .await
            .map_err(|_| DbError::ConnectTimeout(limit))?
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<DbError> {
        if conn.client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if metrics.age() > self.cfg.max_lifetime {
            return Err(RecycleError::message("connection too old"));
        }
        let limit = self.cfg.connect_timeout;
        match tokio::time::timeout(limit, conn.client.simple_query("")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RecycleError::Backend(DbError::Postgres(e))),
            Err(_) => Err(RecycleError::message("connection check timed out")),
        }
    }
}

/// The pool type.
pub type Pool = managed::Pool<Manager>;
/// A connection taken from the pool.
pub type PooledConn = managed::Object<Manager>;

/// Builds the pool (no connection is opened yet) and starts the idle/lifetime trimmer.
pub fn pool(cfg: &Arc<DbConfig>) -> Result<Pool, DbError> {
    let wait = cfg.connect_timeout * 2;
    let pool = managed::Pool::builder(Manager::new(Arc::clone(cfg))?)
        .max_size(cfg.pool_max)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(cfg.connect_timeout))
        .recycle_timeout(Some(cfg.connect_timeout))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))?;
    let trimmer = pool.clone();
    let (idle, lifetime) = (cfg.pool_idle, cfg.max_lifetime);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            trim(&trimmer, idle, lifetime);
        }
    });
    Ok(pool)
}

/// Closes idle connections beyond `idle`, and those older than `lifetime` or already closed.
// TODO: the idle cap is applied every 10 s, not when a connection is returned: deadpool has no idle limit.
pub fn trim(pool: &Pool, idle: usize, lifetime: Duration) {
    let mut kept = 0usize;
    pool.retain(|conn, metrics| {
        let keep = !conn.client.is_closed() && metrics.age() <= lifetime && kept < idle;
        if keep {
            kept += 1;
        }
        keep
    });
}

/// Takes a checked connection from the pool.
pub async fn get(pool: &Pool) -> Result<PooledConn, DbError> {
    pool.get().await.map_err(|e| match e {
        managed::PoolError::Backend(e) => e,
        other => DbError::Pool(other.to_string()),
    })
}

/// An error with its causes, `outer: cause: cause` (tokio-postgres hides the cause, e.g. the
/// TLS certificate problem, from its own message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The original `contacts` table (section 3.3 of the original guide).
pub const CONTACTS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS contacts (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    email VARCHAR(255),
    notes TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)";

/// Creates the `contacts` table when missing.
pub async fn init_schema(pool: &Pool) -> Result<(), DbError> {
    let conn = get(pool).await?;
    conn.client.batch_execute(CONTACTS_SCHEMA).await?;
    Ok(())
}

/// Checks the database answers (the health endpoint's ping).
pub async fn ping(pool: &Pool, limit: Duration) -> Result<(), DbError> {
    let conn = get(pool).await?;
    tokio::time::timeout(limit, conn.client.simple_query("SELECT 1"))
        .await
        .map_err(|_| DbError::QueryTimeout(limit))??;
    Ok(())
}
