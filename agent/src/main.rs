//! `edge-agent`: serve the benchmark API (default) or sweep all regions.

use std::ffi::OsString;

use clap::{CommandFactory as _, Parser as _};
use tracing_subscriber::EnvFilter;

use agent::config::{Cli, Command};

/// The environment variables the flags read.
fn flag_env_names() -> Vec<OsString> {
    let cli = Cli::command();
    cli.get_arguments()
        .chain(cli.get_subcommands().flat_map(clap::Command::get_arguments))
        .filter_map(|a| a.get_env().map(ToOwned::to_owned))
        .collect()
}

fn main() -> anyhow::Result<()> {
    // The original treated an empty variable (e.g. `PORT=`) as unset; clap would reject it.
    for name in flag_env_names() {
        if std::env::var_os(&name).is_some_and(|v| v.is_empty()) {
            // SAFETY: no other thread exists yet (the runtime is built below), so nothing can
            // read the environment concurrently.
            unsafe { std::env::remove_var(&name) };
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Some(Command::Sweep(args)) => agent::sweep::run(&args).await,
            Some(Command::Serve(args)) => Ok(agent::server::serve(&args).await?),
            None => Ok(agent::server::serve(&cli.serve).await?),
        }
    })
}
