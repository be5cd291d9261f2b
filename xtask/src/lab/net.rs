//! Namespaces, links and long-running processes of the lab, recorded in its state directory
//! so `lab down` can remove exactly what `lab up` made, also after a failed `up`.

use std::{
    fs::{self, File},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::util;

/// Where the lab keeps its pids, logs, keys, sockets and database.
pub const STATE_DIR: &str = "/run/edgehub-lab";

/// Every lab namespace starts with this.
pub const NS_PREFIX: &str = "ehlab-";

pub fn state_dir() -> PathBuf {
    PathBuf::from(STATE_DIR)
}

/// Runs `ip <args>`.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    quiet(Command::new("ip").args(args))
}

/// Runs a command, failing with its stderr.
pub fn quiet(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", util::describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            util::describe(cmd),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Creates a namespace with loopback up.
pub fn add_ns(ns: &str) -> anyhow::Result<()> {
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])
}

/// A veth between two namespaces, each end addressed (`addr/len`) and up.
pub fn veth(a: (&str, &str, &str), b: (&str, &str, &str)) -> anyhow::Result<()> {
    let ((a_ns, a_if, a_addr), (b_ns, b_if, b_addr)) = (a, b);
    ip(&[
        "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns,
    ])?;
    for (ns, ifname, addr) in [(a_ns, a_if, a_addr), (b_ns, b_if, b_addr)] {
        ip(&["-n", ns, "addr", "add", addr, "dev", ifname])?;
        ip(&["-n", ns, "link", "set", ifname, "up"])?;
    }
    Ok(())
}

/// A command inside a namespace whose /run/wireguard is the namespace's own directory, so
/// the userspace WireGuard sockets of different namespaces never collide. It gets a private
/// copy of the host's mounts (`unshare --mount`), not `ip netns exec`'s fresh /sys, so bpffs
/// pins stay the host's and outlive the process.
pub fn in_ns(ns: &str, script: &str) -> Command {
    let wg_dir = state_dir().join("wireguard").join(ns);
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .args([
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg(format!(
            "mount --bind {} /run/wireguard && {script}",
            wg_dir.display()
        ));
    cmd
}

/// Prepares the per-namespace WireGuard socket directory (and the mount point).
pub fn wg_dir(ns: &str) -> anyhow::Result<PathBuf> {
    fs::create_dir_all("/run/wireguard")?;
    let dir = state_dir().join("wireguard").join(ns);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Starts a long-running process, logging to `logs/<name>.log` and recording its pid in
/// `pids/<name>`. It runs in its own process group, so it outlives this command.
pub fn spawn(name: &str, mut cmd: Command) -> anyhow::Result<u32> {
    let logs = state_dir().join("logs");
    let pids = state_dir().join("pids");
    fs::create_dir_all(&logs)?;
    fs::create_dir_all(&pids)?;
    let log = File::create(logs.join(format!("{name}.log")))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    fs::write(pids.join(name), child.id().to_string())?;
    Ok(child.id())
}

/// Whether a recorded process still runs.
pub fn running(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
        })
}

/// Waits until `ready` holds, failing after `timeout` with `what` and the log's tail.
pub fn wait_for(
    what: &str,
    log: Option<&str>,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        if Instant::now() > deadline {
            let tail = log
                .and_then(|name| {
                    fs::read_to_string(state_dir().join("logs").join(format!("{name}.log"))).ok()
                })
                .map(|text| {
                    text.lines()
                        .rev()
                        .take(15)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}\n{tail}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Whether something in `ns` listens on TCP `port`.
pub fn listening(ns: &str, port: u16) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ss",
            "-H",
            "-l",
            "-t",
            "-n",
            "sport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.is_empty())
}

/// Ends one recorded process: SIGTERM, then SIGKILL after a grace period.
pub fn stop(name: &str) {
    let file = state_dir().join("pids").join(name);
    let Some(pid) = fs::read_to_string(&file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    let target = Pid::from_raw(pid.cast_signed());
    if running(pid) {
        let _ = kill(target, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while running(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if running(pid) {
            let _ = kill(target, Signal::SIGKILL);
        }
    }
    let _ = fs::remove_file(file);
}

/// Names of every recorded process.
pub fn recorded() -> Vec<String> {
    let Ok(entries) = fs::read_dir(state_dir().join("pids")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Lab namespaces that exist now.
pub fn lab_namespaces() -> Vec<String> {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(NS_PREFIX))
        .collect()
}
