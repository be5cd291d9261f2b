//! Network namespaces made for one test, and veth pairs between them.

use std::{
    fs::File,
    os::fd::AsFd as _,
    path::Path,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};

use crate::process::ChildGuard;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`ip netns add`), deleted with everything in it on drop.
///
/// Names are `eh<pid>-<n>-<tag>`, unique per test process, so parallel tests and leftovers
/// of a crashed run never collide.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with loopback up.
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("eh{}-{n}-{tag}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs inside the namespace (`ip netns exec`), with its own mount
    /// namespace, so it may bind-mount over /run/wireguard and the like.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs a program inside the namespace to completion; fails unless it exits 0.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        run(self.command(program).args(args))
    }

    /// Starts a program inside the namespace; it is ended when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> anyhow::Result<ChildGuard> {
        ChildGuard::spawn(self.command(program).args(args))
    }

    /// Switches the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> anyhow::Result<NetnsEnter> {
        let previous = File::open("/proc/thread-self/ns/net").context("opening own netns")?;
        let target = File::open(Path::new("/run/netns").join(&self.name))
            .with_context(|| format!("opening netns {}", self.name))?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering netns {}", self.name))?;
        Ok(NetnsEnter { previous })
    }

    /// Whether a namespace of this name exists.
    pub fn exists(name: &str) -> bool {
        Path::new("/run/netns").join(name).exists()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the interfaces in it, and with them tcx links.
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("removing netns {}: {e:#}", self.name);
        }
    }
}

/// The calling thread is inside another namespace until this drops.
pub struct NetnsEnter {
    previous: File,
}

impl Drop for NetnsEnter {
    fn drop(&mut self) {
        // Staying in the wrong namespace would silently break the rest of the test run.
        setns(self.previous.as_fd(), CloneFlags::CLONE_NEWNET)
            .expect("returning to the previous network namespace");
    }
}

/// Makes a veth pair between two namespaces, addresses both ends (`a.b.c.d/len`) and sets
/// them up. Removed with the namespaces.
pub fn veth_pair(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
) -> anyhow::Result<()> {
    run(Command::new("ip").args([
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]))?;
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.ip(&["addr", "add", addr, "dev", ifname])?;
        ns.ip(&["link", "set", ifname, "up"])?;
    }
    Ok(())
}

/// Runs a command; an error carries its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}
