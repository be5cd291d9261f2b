//! `edgehub run`: the foreground daemon.
//!
//! Start: sysctls, tunnel (start or adopt the implementation, configure it), NAT (load or
//! adopt the pinned programs and maps), HTTP API, then READY to systemd. Then, until
//! SIGTERM: every `daemon.gc_interval` the tunnel is checked and reconfigured if it was
//! recreated, the NAT re-attached if needed and expired flows collected; SIGHUP applies the
//! configuration file again as a diff. SIGTERM leaves the dataplane running unless
//! `daemon.on_stop = "remove"`.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    api::{self, ApiError, ApiState},
    config::{Config, ConfigError, OnStop},
    dataplane,
    nat::{Nat, NatError},
    netlink::{Netlink, NetlinkError},
    runtime::{RuntimeDir, RuntimeError},
    status::error_chain,
    sysctl::{self, SysctlError},
    teardown,
    tunnel::{Origin, Tunnel, TunnelError},
};

/// Where the daemon finds its configuration and keeps its runtime files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config: PathBuf,
    pub runtime: RuntimeDir,
    /// /proc/sys, or a stand-in.
    pub proc_sys: PathBuf,
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    #[error("starting the NAT")]
    Nat(#[from] NatError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Teardown(#[from] teardown::TeardownError),
    #[error("installing the {0} handler")]
    Signal(&'static str, #[source] std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(paths: &Paths) -> Result<(), DaemonError> {
    let config = Config::load(&paths.config)?;
    paths.runtime.claim_pid_file()?;
    let result = serve(config, paths).await;
    paths.runtime.release_pid_file();
    result
}

/// The running parts.
struct Running {
    config: Config,
    tunnel: Tunnel,
    nat: Nat,
    netlink: Netlink,
    api: Option<Arc<ApiState>>,
}

async fn serve(config: Config, paths: &Paths) -> Result<(), DaemonError> {
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| DaemonError::Signal("SIGHUP", e))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| DaemonError::Signal("SIGTERM", e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| DaemonError::Signal("SIGINT", e))?;

    let mut running = start(config, paths).await?;
    notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(
        iface = running.config.interface.name,
        peers = running.config.peers.len(),
        services = running.config.nat.services.len(),
        "edgehub running"
    );

    let mut tick = tokio::time::interval(running.config.gc_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                running.reload(&paths.config).await;
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = tick.tick() => running.maintain().await,
        }
    };

    notify(&[sd_notify::NotifyState::Stopping]);
    match running.config.on_stop {
        OnStop::Keep => {
            tracing::info!(
                signal = stop,
                "stopping; wg0 and the NAT keep running for the next start"
            );
        }
        OnStop::Remove => {
            tracing::info!(
                signal = stop,
                "stopping and removing the dataplane (daemon.on_stop = remove)"
            );
            drop(running.nat);
            teardown::remove(&teardown::Target::from_config(&running.config), paths).await?;
        }
    }
    Ok(())
}

/// Brings everything up, adopting what a previous run left.
async fn start(config: Config, paths: &Paths) -> Result<Running, DaemonError> {
    let netlink = Netlink::connect()?;

    let mut record = paths.runtime.load()?;
    record.interface = Some(config.interface.name.clone());
    record.pin_dir = Some(config.pin_dir.clone());
    paths.runtime.save(&record)?;
    let changed = sysctl::ensure(&paths.proc_sys, sysctl::REQUIRED, &mut record.sysctls);
    paths.runtime.save(&record)?;
    changed?;

    let (tunnel, origin) = Tunnel::up(&config, &netlink).await?;
    match origin {
        Origin::StartedUserspace => record.started_userspace = true,
        Origin::CreatedKernelLink => record.created_kernel_link = true,
        Origin::Adopted => {}
    }
    paths.runtime.save(&record)?;

    let egress = dataplane::egress_address(&config, &netlink).await?;
    let nat = Nat::start(&dataplane::nat_config(&config, egress))?;
    tracing::info!(egress = %egress, pin_dir = %config.pin_dir.display(), "NAT attached");

    let api = match config.api_listen {
        Some(addr) => {
            let listener = api::bind(addr).await?;
            let state = Arc::new(ApiState {
                config: RwLock::new(config.clone()),
            });
            tokio::spawn(api::serve(listener, state.clone()));
            Some(state)
        }
        None => None,
    };
    Ok(Running {
        config,
        tunnel,
        nat,
        netlink,
        api,
    })
}

impl Running {
    /// Applies the configuration file again, as a diff; an invalid or unappliable one is
    /// refused and the running one stays.
    async fn reload(&mut self, path: &Path) {
        tracing::info!(config = %path.display(), "reloading");
        let new = match Config::load(path) {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(
                    error = error_chain(&e),
                    "refusing the new configuration; the running one stays"
                );
                return;
            }
        };
        if let Some(field) = fixed_field_changed(&self.config, &new) {
            tracing::error!(
                field,
                "changing this needs a restart; refusing the new configuration; the running one stays"
            );
            return;
        }
        if new == self.config {
            tracing::info!("configuration unchanged");
            return;
        }
        if let Err(e) = self.apply(&new).await {
            tracing::error!(
                error = error_chain(&*e),
                "applying the new configuration failed part way; retrying at the next check"
            );
        }
        self.config = new;
        if let Some(api) = &self.api {
            *api.config
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = self.config.clone();
        }
        tracing::info!(
            peers = self.config.peers.len(),
            services = self.config.nat.services.len(),
            "configuration applied"
        );
    }

    async fn apply(&mut self, new: &Config) -> Result<(), Box<dyn std::error::Error>> {
        self.tunnel.configure(new, Some(&self.config)).await?;
        let egress = dataplane::egress_address(new, &self.netlink).await?;
        self.nat.apply(&dataplane::nat_config(new, egress))?;
        Ok(())
    }

    /// The periodic check: tunnel present and configured, NAT attached, old flows gone.
    async fn maintain(&mut self) {
        let tunnel = if self.tunnel.is_healthy().await {
            self.tunnel.configure(&self.config, None).await.map(drop)
        } else {
            tracing::warn!(
                iface = self.tunnel.name(),
                "tunnel gone or not answering; bringing it back"
            );
            self.tunnel.recover(&self.config).await.map(drop)
        };
        if let Err(e) = tunnel {
            tracing::warn!(error = error_chain(&e), "tunnel check failed");
        }
        match self.nat.ensure_attached() {
            Ok(true) => tracing::info!(
                iface = self.tunnel.name(),
                "NAT re-attached to the recreated tunnel"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = error_chain(&e), "checking the NAT attachment"),
        }
        match self.nat.collect_garbage() {
            Ok(0) => {}
            Ok(expired) => tracing::debug!(expired, "expired flows collected"),
            Err(e) => tracing::warn!(error = error_chain(&e), "collecting expired flows"),
        }
    }
}

/// The first setting that a reload cannot change live, if `new` changes one.
pub fn fixed_field_changed(old: &Config, new: &Config) -> Option<&'static str> {
    let fixed = [
        ("interface.name", old.interface.name == new.interface.name),
        (
            "interface.backend",
            old.interface.backend == new.interface.backend,
        ),
        (
            "nat.egress_interface",
            old.nat.egress_interface == new.nat.egress_interface,
        ),
        ("nat.max_flows", old.nat.max_flows == new.nat.max_flows),
        ("bpf.pin_dir", old.pin_dir == new.pin_dir),
        ("api.listen", old.api_listen == new.api_listen),
        ("daemon.gc_interval", old.gc_interval == new.gc_interval),
    ];
    fixed
        .into_iter()
        .find(|(_, same)| !same)
        .map(|(field, _)| field)
}

/// Tells systemd, when it started us with a notification socket.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "sd_notify");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_refuses_changes_that_need_a_restart() {
        let old = crate::config::sample();
        let mut new = old.clone();
        new.peers.pop();
        assert_eq!(fixed_field_changed(&old, &new), None, "peers change live");
        new.nat.max_flows *= 2;
        assert_eq!(fixed_field_changed(&old, &new), Some("nat.max_flows"));
    }
}
