//! `cargo xtask setup`: everything edgehub needs on a Debian machine, installed once.
//!
//! Idempotent: each step checks first and does nothing when its part is already there, so a
//! second run only checks. Nothing is downloaded outside the package registries.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{ebpf_build, util};

/// Debian packages the build, the tests and the lab use.
const PACKAGES: &[&str] = &[
    "postgresql", // the database (15 on bookworm) and pgbench, for tests, lab and benchmarks
    "wireguard-go", // userspace WireGuard: this kind of machine has no kernel module
    "wireguard-tools", // wg
    "bpftool",
    "iproute2",
    "iptables", // the original hub, side by side with edgehub
    "nftables",
    "iperf3",
    "jq",         // the original benchmark script
    "curl",       // the original benchmark script
    "openssl",    // certificates for the agent's TLS tests
    "systemd",    // systemd-analyze verify for the units
    "util-linux", // setpriv, to run PostgreSQL as its own user
];

pub fn run() -> anyhow::Result<()> {
    anyhow::ensure!(
        util::is_root(),
        "setup installs packages and mounts bpffs: run it as root"
    );
    install_packages()?;
    install_rust_src()?;
    install_bpf_linker()?;
    let problems = check_kernel();
    if !problems.is_empty() {
        bail!(
            "this kernel cannot run edgehub:\n  - {}",
            problems.join("\n  - ")
        );
    }
    eprintln!("setup: complete (packages, nightly rust-src, bpf-linker, kernel checks)");
    Ok(())
}

fn install_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|pkg| {
            let status = util::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]));
            !status.is_some_and(|s| s.ends_with("installed"))
        })
        .collect();
    if missing.is_empty() {
        eprintln!("setup: packages present");
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    util::run(Command::new("apt-get").args(["update", "-q"]))?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}

fn install_rust_src() -> anyhow::Result<()> {
    let Some(sysroot) =
        util::output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
    else {
        bail!(
            "the nightly toolchain is missing; it cannot be fetched here, install it with rustup \
             where the Rust distribution server is reachable"
        );
    };
    if Path::new(sysroot.trim())
        .join("lib/rustlib/src/rust/library/core")
        .is_dir()
    {
        eprintln!("setup: nightly rust-src present");
        return Ok(());
    }
    util::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

/// bpf-linker must use the LLVM of the nightly that compiles `hub-ebpf`, so it is built
/// against nightly's own `libLLVM.so`, found through a prefix directory that links to it.
fn install_bpf_linker() -> anyhow::Result<()> {
    if !ebpf_build::missing_tools()
        .iter()
        .any(|m| m.starts_with("bpf-linker"))
    {
        eprintln!("setup: bpf-linker present");
        return Ok(());
    }
    let sysroot = util::output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("nightly's sysroot")?;
    let lib = PathBuf::from(sysroot.trim()).join("lib");
    let llvm = fs::read_dir(&lib)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libLLVM.so."))
        })
        .with_context(|| format!("no libLLVM.so.* in {}", lib.display()))?;
    let major = llvm_major(&llvm).context("reading LLVM's version from its file name")?;

    let prefix = util::workspace_root().join("target/llvm-prefix");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)?;
    util::run(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--version", "^0.13", "--force"])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ]),
    )
}

/// `libLLVM.so.22.1-rust-...` -> 22.
fn llvm_major(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    name.strip_prefix("libLLVM.so.")?
        .split(['.', '-'])
        .next()?
        .parse()
        .ok()
}

/// What the kernel lacks, one line each.
fn check_kernel() -> Vec<String> {
    let mut problems = Vec::new();
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        problems.push("no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)".to_owned());
    }
    if !bpffs_mounted() {
        let mounted = Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            eprintln!("setup: mounted bpffs at /sys/fs/bpf");
        } else {
            problems.push("bpffs is not mounted at /sys/fs/bpf and cannot be".to_owned());
        }
    }
    match kernel_version() {
        Some(v) if v >= (6, 6) => {}
        Some((major, minor)) => {
            problems.push(format!(
                "kernel {major}.{minor} has no tcx links (needs 6.6)"
            ));
        }
        None => problems.push("cannot read the kernel version".to_owned()),
    }
    if !Path::new("/dev/net/tun").exists() {
        problems.push("no /dev/net/tun (userspace WireGuard needs TUN)".to_owned());
    }
    problems
}

fn bpffs_mounted() -> bool {
    fs::read_to_string("/proc/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(2) == Some("bpf")))
}

fn kernel_version() -> Option<(u32, u32)> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_reads_rustup_names() {
        let path = Path::new("/x/libLLVM.so.22.1-rust-1.97.0-nightly");
        assert_eq!(llvm_major(path), Some(22));
        assert_eq!(llvm_major(Path::new("/x/libLLVM-22.so")), None);
    }
}
