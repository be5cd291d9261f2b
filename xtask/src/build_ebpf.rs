//! `cargo xtask build-ebpf`: the object `hub-daemon` embeds.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::{ebpf_build, util};

/// Builds the object and returns its path.
pub fn run(workspace: &Path, release: bool) -> anyhow::Result<PathBuf> {
    let missing = ebpf_build::missing_tools();
    if !missing.is_empty() {
        bail!(
            "cannot build hub-ebpf: missing {}; run `cargo xtask setup`",
            missing.join(", ")
        );
    }
    util::run(&mut ebpf_build::build_command(workspace, release))?;
    let object = ebpf_build::object_path(workspace, release);
    let size = std::fs::metadata(&object)?.len();
    eprintln!("built {} ({size} bytes)", object.display());
    Ok(object)
}
