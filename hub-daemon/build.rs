//! Embeds `hub-ebpf`'s object into the `edgehub` binary.
//!
//! With the eBPF toolchain present (nightly, rust-src, bpf-linker: `cargo xtask setup`), the
//! object is rebuilt here whenever its sources change. Without it, a fresh object built
//! earlier by `cargo xtask build-ebpf` is embedded; a stale or missing one never is: the
//! daemon is then built without eBPF (so `cargo build` works on plain stable), the build
//! prints a warning, and every command that needs the programs fails naming the command to
//! run.

#[path = "../xtask/src/ebpf_build.rs"]
mod ebpf_build;

use std::{env, fs, path::PathBuf};

/// Always the release profile: the verifier needs optimised code, and the dev profile's debug
/// checks can make LLVM emit calls (a checked memset) that aya cannot link.
const RELEASE: bool = true;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest
        .parent()
        .expect("hub-daemon sits in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    println!("cargo::rustc-check-cfg=cfg(edgehub_no_ebpf)");
    println!("cargo::rerun-if-env-changed=PATH");
    // Rebuild once the toolchain appears (`cargo xtask setup`), so a daemon built before it
    // without eBPF is not reused.
    let cargo_home = env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    );
    println!(
        "cargo::rerun-if-changed={}",
        cargo_home.join("bin/bpf-linker").display()
    );
    for krate in ebpf_build::SOURCE_CRATES {
        println!(
            "cargo::rerun-if-changed={}",
            workspace.join(krate).display()
        );
    }
    println!(
        "cargo::rerun-if-changed={}",
        workspace.join("xtask/src/ebpf_build.rs").display()
    );
    let object = ebpf_build::object_path(&workspace, RELEASE);
    println!("cargo::rerun-if-changed={}", object.display());

    let missing = ebpf_build::missing_tools();
    if missing.is_empty() {
        let status = ebpf_build::build_command(&workspace, RELEASE)
            .status()
            .expect("cargo can be started");
        assert!(
            status.success(),
            "building hub-ebpf failed; run `cargo xtask build-ebpf`"
        );
    } else if !ebpf_build::object_is_fresh(&workspace, RELEASE) {
        println!(
            "cargo::warning=edgehub is built WITHOUT its eBPF programs: missing {}. \
             Run `cargo xtask setup` then `cargo xtask build-ebpf --release`",
            missing.join(", "),
        );
        println!("cargo::rustc-cfg=edgehub_no_ebpf");
        return;
    }
    fs::copy(&object, out_dir.join("hub-ebpf")).expect("the hub-ebpf object can be copied");
}
