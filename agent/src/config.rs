//! Command line and environment: every flag can also come from its environment variable,
//! and the original backend's variables (`FLY_REGION`, `PORT`, `DB_HOST`, ...) keep their meaning.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::Secret;

/// edge-agent: database latency benchmark API for edge regions, and the sweep over them.
#[derive(Debug, Parser)]
#[command(
    name = "edge-agent",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to run; `serve` when omitted, so the original env-only start keeps working.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings used when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[allow(clippy::large_enum_variant)] // parsed once at start
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Call every region's agent concurrently and print the comparison table.
    Sweep(SweepArgs),
}

/// TLS mode towards PostgreSQL, with libpq's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SslMode {
    /// Plain TCP (the original's `sslmode=disable`).
    Disable,
    /// TLS when the server offers it, without certificate verification (as libpq).
    Prefer,
    /// TLS always, without certificate verification (as libpq without a root cert).
    Require,
    /// TLS always; the certificate must chain to `--ssl-root-cert` and match the server name.
    VerifyFull,
}

#[allow(clippy::unnecessary_wraps)] // clap's value parser signature
fn parse_secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(s))
}

/// Settings of `edge-agent serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Region code reported in every response.
    #[arg(long, env = "FLY_REGION", default_value = "local")]
    pub region: String,
    /// Instance id; the hostname when absent. Only the first 8 characters are reported.
    #[arg(long, env = "FLY_ALLOC_ID")]
    pub alloc_id: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "EDGE_AGENT_LISTEN", default_value = "0.0.0.0")]
    pub listen: IpAddr,
    /// HTTP port.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Database host; the benchmark is disabled when absent (as in the original).
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,
    /// Database port.
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    pub db_port: u16,
    /// Database user.
    #[arg(long, env = "DB_USER", default_value = "postgres")]
    pub db_user: String,
    /// Database password (prefer --db-password-file).
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true, value_parser = parse_secret)]
    pub db_password: Option<Secret>,
    /// File holding the database password (trailing newline ignored); wins over --db-password.
    #[arg(long, env = "DB_PASSWORD_FILE")]
    pub db_password_file: Option<PathBuf>,
    /// Database name.
    #[arg(long, env = "DB_NAME", default_value = "contacts")]
    pub db_name: String,
    /// TLS mode.
    #[arg(long, env = "DB_SSLMODE", value_enum, default_value = "disable")]
    pub sslmode: SslMode,
    /// PEM file with the CA certificate(s) trusted for verify-full.
    #[arg(long, env = "DB_SSL_ROOT_CERT")]
    pub ssl_root_cert: Option<PathBuf>,
    /// Name the database certificate must carry, when it differs from --db-host (e.g. the VIP).
    #[arg(long, env = "DB_SSL_SERVER_NAME")]
    pub ssl_server_name: Option<String>,
    /// Timeout for opening one database connection (TCP, TLS and login).
    #[arg(long, env = "DB_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Server-side statement timeout, also enforced on the client.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub statement_timeout: Duration,
    /// Most open connections (the original: 10).
    #[arg(long, env = "DB_POOL_MAX", default_value_t = 10)]
    pub pool_max: usize,
    /// Most idle connections kept (the original: 5).
    #[arg(long, env = "DB_POOL_IDLE", default_value_t = 5)]
    pub pool_idle: usize,
    /// Connections older than this are closed instead of reused (the original: 5 minutes).
    #[arg(long, env = "DB_CONN_MAX_LIFETIME", default_value = "5m", value_parser = humantime::parse_duration)]
    pub conn_max_lifetime: Duration,
    /// Create the original `contacts` table when missing, at start.
    #[arg(long, env = "EDGE_INIT_SCHEMA")]
    pub init_schema: bool,
    /// Base URL of the hub's API (e.g. `http://10.50.0.1:9090`), for the per-leg timing.
    #[arg(long, env = "EDGE_HUB_API")]
    pub hub_api: Option<String>,
}

impl ServeArgs {
    /// Parses the flags that follow `edge-agent serve` (also reading their env variables).
    pub fn try_from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = ["edge-agent".into(), "serve".into()]
            .into_iter()
            .chain(flags.into_iter().map(Into::into));
        match Cli::try_parse_from(argv)?.command {
            Some(Command::Serve(serve)) => Ok(serve),
            _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        }
    }

    /// The password: from the file when given, else from the flag or env, else empty.
    pub fn password(&self) -> std::io::Result<Secret> {
        if let Some(path) = &self.db_password_file {
            let text = std::fs::read_to_string(path)?;
            return Ok(Secret::new(text.trim_end_matches(['\r', '\n'])));
        }
        Ok(self.db_password.clone().unwrap_or_default())
    }

    /// The database host, treating an empty value as absent (as the original did).
    pub fn db_host(&self) -> Option<&str> {
        self.db_host.as_deref().filter(|h| !h.is_empty())
    }

    /// The instance name: `FLY_ALLOC_ID` or else the hostname, cut to 8 characters.
    pub fn hostname(&self) -> String {
        let full = self
            .alloc_id
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_default();
        full.chars().take(8).collect()
    }

    /// The region, treating an empty value as `local` (as the original did).
    pub fn region(&self) -> String {
        if self.region.is_empty() {
            "local".to_owned()
        } else {
            self.region.clone()
        }
    }
}

/// Which statistic the sweep shows in both the Insert and the Read column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Statistic {
    /// Median (nearest rank).
    Median,
    /// Minimum.
    Min,
    /// Arithmetic mean.
    Mean,
}

impl Statistic {
    /// Name used in headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Median => "median",
            Self::Min => "min",
            Self::Mean => "mean",
        }
    }
}

/// Settings of `edge-agent sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Regions TOML file; the repository's ten regions (built in) when absent.
    #[arg(long, env = "EDGE_REGIONS")]
    pub regions: Option<PathBuf>,
    /// Override a region's address: `CODE=HOST:PORT` (repeatable).
    #[arg(long = "target", env = "EDGE_SWEEP_TARGETS", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Agent port used with each region's `wg_address`.
    #[arg(long, env = "EDGE_SWEEP_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Iterations asked of each agent (1-100).
    #[arg(long, env = "EDGE_SWEEP_ITERATIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub iterations: u32,
    /// Time allowed to each region's answer.
    #[arg(long, env = "EDGE_SWEEP_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Statistic shown in both the Insert and the Read column.
    #[arg(
        long,
        env = "EDGE_SWEEP_STATISTIC",
        value_enum,
        default_value = "median"
    )]
    pub statistic: Statistic,
    /// Print JSON instead of the table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV instead of the table.
    #[arg(long)]
    pub csv: bool,
    /// Also write an SVG bar chart of the regions to this file.
    #[arg(long, env = "EDGE_SWEEP_SVG")]
    pub svg: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("parse")
    }

    #[test]
    fn defaults_are_the_originals() {
        let cli = parse(&["edge-agent"]);
        assert!(cli.command.is_none());
        let s = cli.serve;
        assert_eq!(s.port, 8080);
        assert_eq!(s.db_port, 5432);
        assert_eq!(s.db_user, "postgres");
        assert_eq!(s.db_name, "contacts");
        assert_eq!(s.pool_max, 10);
        assert_eq!(s.pool_idle, 5);
        assert_eq!(s.sslmode, SslMode::Disable);
    }

    #[test]
    fn serve_and_sweep_flags() {
        let cli = parse(&[
            "edge-agent",
            "serve",
            "--db-host",
            "10.50.0.1",
            "--sslmode",
            "verify-full",
            "--ssl-server-name",
            "db.example",
            "--db-password",
            "pw",
        ]);
        let Some(Command::Serve(s)) = cli.command else {
            panic!("serve")
        };
        assert_eq!(s.db_host(), Some("10.50.0.1"));
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.password().expect("pw").expose(), "pw");
        assert!(!format!("{s:?}").contains("\"pw\""));

        let cli = parse(&[
            "edge-agent",
            "sweep",
            "--target",
            "lhr=127.0.0.1:1",
            "--target",
            "fra=127.0.0.1:2",
            "--statistic",
            "min",
            "--timeout",
            "2s",
            "--csv",
        ]);
        let Some(Command::Sweep(w)) = cli.command else {
            panic!("sweep")
        };
        assert_eq!(w.targets.len(), 2);
        assert_eq!(w.statistic, Statistic::Min);
        assert_eq!(w.timeout, Duration::from_secs(2));
        assert!(Cli::try_parse_from(["edge-agent", "sweep", "--iterations", "0"]).is_err());
    }

    #[test]
    fn password_file_wins_and_is_trimmed() {
        let path = std::env::temp_dir().join(format!("edge-agent-pw-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").expect("write");
        let p = path.to_str().expect("utf8");
        let cli = parse(&["edge-agent", "--db-password", "x", "--db-password-file", p]);
        assert_eq!(cli.serve.password().expect("pw").expose(), "from-file");
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn empty_region_and_alloc_id() {
        let cli = parse(&[
            "edge-agent",
            "--region",
            "",
            "--alloc-id",
            "abcdef0123456789",
        ]);
        assert_eq!(cli.serve.region(), "local");
        assert_eq!(cli.serve.hostname(), "abcdef01");
    }
}
