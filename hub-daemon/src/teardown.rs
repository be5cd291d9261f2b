//! `edgehub down`: removes what edgehub created (the NAT's programs and pins, the
//! userspace WireGuard it started with its interface and routes) and restores the sysctls
//! it changed, as recorded in the runtime directory.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::{
    config::Config,
    daemon::Paths,
    nat::{Nat, NatError},
    netlink::{Netlink, NetlinkError},
    process,
    runtime::RuntimeError,
    sysctl::{self, SysctlError},
};

/// How long the daemon and the userspace implementation get to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why something could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("removing the NAT")]
    Nat(#[from] NatError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error("the running daemon (PID {0}) did not exit within {EXIT_TIMEOUT:?} of SIGTERM")]
    DaemonStuck(i32),
    #[error("nothing to remove: no configuration and no runtime record name an interface")]
    Unknown,
}

/// What to remove.
#[derive(Debug, Clone)]
pub struct Target {
    pub iface: String,
    pub pin_dir: PathBuf,
}

impl Target {
    pub fn from_config(config: &Config) -> Self {
        Self {
            iface: config.interface.name.clone(),
            pin_dir: config.pin_dir.clone(),
        }
    }
}

/// `edgehub down`: stops a running daemon, then removes everything. Uses the configuration
/// when readable, else what the runtime record names.
pub async fn down(config: Option<&Config>, paths: &Paths) -> Result<(), TeardownError> {
    let own = std::process::id().cast_signed();
    if let Some(pid) = paths.runtime.running_pid()?.filter(|pid| *pid != own) {
        tracing::info!(pid, "stopping the running daemon");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if !wait_until(|| !process::is_alive(pid)) {
            return Err(TeardownError::DaemonStuck(pid));
        }
    }
    let record = paths.runtime.load()?;
    let target = match (config, &record.interface, &record.pin_dir) {
        (Some(config), _, _) => Target::from_config(config),
        (None, Some(iface), Some(pin_dir)) => Target {
            iface: iface.clone(),
            pin_dir: pin_dir.clone(),
        },
        _ => return Err(TeardownError::Unknown),
    };
    remove(&target, paths).await
}

/// Removes the NAT, the tunnel edgehub started, and restores sysctls.
pub async fn remove(target: &Target, paths: &Paths) -> Result<(), TeardownError> {
    let mut record = paths.runtime.load()?;

    Nat::remove(&target.pin_dir)?;

    let netlink = Netlink::connect()?;
    if record.started_userspace || record.created_kernel_link {
        if let Ok(Some(pid)) = process::tun_owner(&target.iface) {
            tracing::info!(
                pid,
                iface = target.iface,
                "stopping the userspace wireguard edgehub started"
            );
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            wait_until(|| !process::is_alive(pid));
        }
        if let Some(link) = netlink.link(&target.iface).await? {
            match netlink.delete_link(&target.iface, link.index).await {
                // Gone by itself meanwhile, with its implementation.
                Err(e) if e.errno() == Some(libc::ENODEV) => {}
                other => other?,
            }
        }
        tracing::info!(iface = target.iface, "tunnel removed");
    } else if netlink.link(&target.iface).await?.is_some() {
        tracing::info!(
            iface = target.iface,
            "leaving the tunnel: edgehub adopted it, it did not start it"
        );
    }

    sysctl::restore(&paths.proc_sys, &mut record.sysctls)?;
    paths.runtime.clear()?;
    tracing::info!("edgehub removed");
    Ok(())
}

/// Polls `done` until it holds or the exit timeout passes; returns whether it held.
fn wait_until(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
