//! `cargo xtask`: edgehub's developer tasks.
//!
//! - `setup`: installs what the project needs and checks the kernel (idempotent).
//! - `build-ebpf`: builds `hub-ebpf` where `hub-daemon` embeds it.
//! - `lint`: rustfmt and clippy, host crates and the BPF target.
//! - `test`: every test, the privileged network-namespace ones included.
//! - `lab`: the main job, the ten-region lab.

mod bench;
mod build_ebpf;
#[expect(
    dead_code,
    reason = "the staleness check is for hub-daemon's build script only"
)]
mod ebpf_build;
mod lab;
mod lint;
mod setup;
mod test;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "edgehub's developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install packages, nightly's rust-src and bpf-linker; check the kernel. Idempotent.
    Setup,
    /// Build the eBPF object (bpfel-unknown-none) where hub-daemon embeds it.
    BuildEbpf {
        /// Build the release profile (what `cargo build --release` embeds).
        #[arg(long)]
        release: bool,
    },
    /// rustfmt --check and clippy -D warnings, on the host crates and on hub-ebpf.
    Lint,
    /// Run every test, privileged ones included (needs root). Runs `setup` and `lint` first.
    Test {
        /// Skip `setup` (for a machine already set up).
        #[arg(long)]
        no_setup: bool,
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// The main job: the ten-region lab (setup, up, bench with both NATs) or one of its steps.
    Lab(lab::LabArgs),
    /// Benchmarks whose report is committed (`cargo xtask bench nat`).
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let workspace = util::workspace_root();
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::BuildEbpf { release } => build_ebpf::run(&workspace, release).map(|_| ()),
        Task::Lint => lint::run(&workspace),
        Task::Test {
            no_setup,
            cargo_args,
        } => test::run(&workspace, no_setup, &cargo_args),
        Task::Lab(args) => lab::run(&workspace, args),
        Task::Bench(args) => bench::run(&workspace, args),
    }
}
