//! `cargo xtask lint`: formatting and clippy, as CI checks them.

use std::{path::Path, process::Command};

use crate::{ebpf_build, util};

pub fn run(workspace: &Path) -> anyhow::Result<()> {
    util::run(
        Command::new("cargo")
            .current_dir(workspace)
            .args(["fmt", "--all", "--check"]),
    )?;
    util::run(Command::new("cargo").current_dir(workspace).args([
        "clippy",
        "--workspace",
        "--exclude",
        "hub-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    util::run(ebpf_build::nightly_cargo(workspace, "clippy", true).args(["--", "-D", "warnings"]))
}
