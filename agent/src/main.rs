//! `edge-agent`: serve the benchmark API (default) or sweep all regions.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use agent::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Sweep(args)) => agent::sweep::run(&args).await,
        Some(Command::Serve(args)) => Ok(agent::server::serve(&args).await?),
        None => Ok(agent::server::serve(&cli.serve).await?),
    }
}
