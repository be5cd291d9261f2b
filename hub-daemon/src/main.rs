//! `edgehub`: the hub daemon's command line.

use std::{path::PathBuf, process::ExitCode, thread, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hub_daemon::{
    config::{self, Config, ConfigError},
    daemon::{self, Paths},
    nat, privileges,
    runtime::{self, RuntimeDir},
    status, teardown,
};

/// edgehub: a WireGuard hub whose NAT to the database runs in eBPF.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = "EDGEHUB_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Where the daemon keeps its PID file and its record of what it changed.
    #[arg(long, global = true, env = "EDGEHUB_RUNTIME_DIR", default_value = runtime::DEFAULT_DIR)]
    runtime_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground: bring up the tunnel and the NAT, serve the API.
    Run,
    /// Validate the configuration without touching the system; exits 2 when it is invalid.
    Check,
    /// Make the running daemon apply the configuration file again (SIGHUP).
    Reload,
    /// Stop the daemon and remove everything edgehub created; restore the sysctls.
    Down,
    /// Show the tunnel, its peers, the services and the NAT's counters and timings.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a line per NAT translation.
    Flows {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Attach a pass-through counting program to an interface and print what it sees.
    Probe {
        /// Interface to watch (tcx ingress).
        #[arg(long, env = "EDGEHUB_PROBE_IFACE")]
        iface: String,
        /// How long to count, in seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not for journald or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let paths = Paths {
        config: cli.config.clone(),
        runtime: RuntimeDir::new(&cli.runtime_dir),
        proc_sys: PathBuf::from("/proc/sys"),
    };
    match cli.command {
        Command::Check => return Ok(check(&cli.config)),
        Command::Run => {
            privileges::check()?;
            runtime()?.block_on(daemon::run(&paths))?;
        }
        Command::Reload => {
            // An invalid file would be refused by the daemon anyway; say so here, at once.
            if let Err(e) = Config::load(&cli.config) {
                print_config_error(&e);
                return Ok(ExitCode::from(2));
            }
            let pid = paths.runtime.signal(nix::sys::signal::Signal::SIGHUP)?;
            tracing::info!(pid, "asked the daemon to reload");
        }
        Command::Down => {
            privileges::check()?;
            let config = Config::load(&cli.config)
                .inspect_err(|e| {
                    tracing::warn!(
                        error = status::error_chain(e),
                        "using the runtime record instead of the configuration"
                    );
                })
                .ok();
            runtime()?.block_on(teardown::down(config.as_ref(), &paths))?;
        }
        Command::Status { json } => {
            let config = Config::load(&cli.config)?;
            let reading = status::gather(&config);
            if json {
                println!("{}", serde_json::to_string_pretty(&reading)?);
            } else {
                print!("{}", status::render(&reading));
            }
        }
        Command::Flows { json } => {
            let config = Config::load(&cli.config)?;
            let flows = nat::read_flows(&config.pin_dir).with_context(|| {
                format!("reading the flows pinned in {}", config.pin_dir.display())
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "flows": flows }))?
                );
            } else {
                print!("{}", status::render_flows(&flows));
            }
        }
        Command::Probe { iface, seconds } => {
            let probe = hub_daemon::probe::Probe::attach(&iface)
                .with_context(|| format!("probing {iface}"))?;
            thread::sleep(Duration::from_secs(seconds));
            let counter = probe.read()?;
            tracing::info!(
                iface,
                packets = counter.packets,
                bytes = counter.bytes,
                "counted"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// `edgehub check`: 0 when valid, 2 with each wrong field listed when not.
fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!(
                "{}: valid ({} peers, {} services)",
                path.display(),
                config.peers.len(),
                config.nat.services.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_config_error(&e);
            ExitCode::from(2)
        }
    }
}

fn print_config_error(e: &ConfigError) {
    match e {
        ConfigError::Invalid { path, errors } => {
            eprintln!("{}: {} invalid field(s)", path.display(), errors.len());
            for error in errors {
                eprintln!("  {error}");
            }
        }
        other => eprintln!("{}", status::error_chain(other)),
    }
}
