//! Building `hub-ebpf` for the BPF target.
//!
//! This one file is used by `cargo xtask build-ebpf` and, through `#[path]`, by `hub-daemon`'s
//! build script, so the object the daemon embeds is always built the same way, in the same
//! place: `target/ebpf/bpfel-unknown-none/<debug|release>/hub-ebpf`. It only uses `std`.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::SystemTime,
};

/// The BPF target: little endian, as the hosts edgehub runs on.
pub const TARGET: &str = "bpfel-unknown-none";

/// Crates whose sources go into the object.
pub const SOURCE_CRATES: [&str; 2] = ["hub-ebpf", "hub-common"];

/// Where the object for `release` (or the dev profile) lands.
pub fn object_path(workspace: &Path, release: bool) -> PathBuf {
    let profile = if release { "release" } else { "debug" };
    workspace
        .join("target/ebpf")
        .join(TARGET)
        .join(profile)
        .join("hub-ebpf")
}

/// What is missing to build the object, one line each; empty when the toolchain is complete.
pub fn missing_tools() -> Vec<String> {
    let sysroot = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output();
    let sysroot = match sysroot {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => return vec!["the nightly toolchain".to_owned()],
    };
    let mut missing = Vec::new();
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        missing.push("rust-src for nightly".to_owned());
    }
    // bpf-linker links nightly's own libLLVM, which rustc finds in its sysroot.
    let linker = Command::new("bpf-linker")
        .arg("--version")
        .env("LD_LIBRARY_PATH", sysroot.join("lib"))
        .output();
    if !linker.is_ok_and(|out| out.status.success()) {
        missing.push("bpf-linker built against nightly's LLVM".to_owned());
    }
    missing
}

/// The newest modification time of any file under the source crates.
pub fn newest_source(workspace: &Path) -> Option<SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<SystemTime>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(Some(modified));
            }
        }
    }
    let mut newest = None;
    for krate in SOURCE_CRATES {
        walk(&workspace.join(krate), &mut newest);
    }
    newest
}

/// Whether an object exists and is newer than every source file that goes into it.
pub fn object_is_fresh(workspace: &Path, release: bool) -> bool {
    let Ok(built) = fs::metadata(object_path(workspace, release)).and_then(|m| m.modified()) else {
        return false;
    };
    newest_source(workspace).is_none_or(|newest| built >= newest)
}

/// The command that builds the object. Cargo's own fingerprints make it a no-op when the
/// object is up to date.
pub fn build_command(workspace: &Path, release: bool) -> Command {
    nightly_cargo(workspace, "build", release)
}

/// `cargo +nightly <subcommand>` for `hub-ebpf` on the BPF target (`build`, `clippy`).
pub fn nightly_cargo(workspace: &Path, subcommand: &str, release: bool) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace)
        .args([
            "+nightly",
            subcommand,
            "--package",
            "hub-ebpf",
            "--bin",
            "hub-ebpf",
        ])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(workspace.join("target/ebpf"));
    if release {
        cmd.arg("--release");
    }
    // BTF in the object lets the kernel and bpftool name the fields of every map value.
    let mut flags = OsString::from("--cfg=bpf_target_arch=\"x86_64\"");
    for flag in ["-Cdebuginfo=2", "-Clink-arg=--btf"] {
        flags.push("\x1f");
        flags.push(flag);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags);
    // A build script runs with the outer (stable) toolchain's variables; none may leak into
    // the nightly build.
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(key);
    }
    cmd
}
