//! `edgehub`: the hub daemon's command line.

use std::{thread, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// edgehub: a WireGuard hub whose NAT to the database runs in eBPF.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
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
    Ok(())
}
