//! A userspace WireGuard (wireguard-go): adopted when one already serves the interface's
//! control socket, started otherwise.
//!
//! wireguard-go daemonizes itself, so it outlives edgehub: a restart or `kill -9` of the
//! daemon leaves the tunnel and its sessions up. Only `edgehub down` ends it, by the PID
//! its control socket reports.

use std::{
    io,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::uapi::{Uapi, UapiError};

/// How long a freshly started implementation may take to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no userspace implementation serves the interface.
#[derive(Debug, thiserror::Error)]
pub enum UserspaceError {
    #[error("starting {program} {iface}")]
    Spawn {
        program: PathBuf,
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} {iface} exited with {status}: {stderr}")]
    Failed {
        program: PathBuf,
        iface: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{program} did not open its control socket within {START_TIMEOUT:?}")]
    NoSocket {
        program: PathBuf,
        #[source]
        source: UapiError,
    },
    #[error("removing the stale control socket {path}")]
    Stale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether the implementation was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Adopted,
    Started,
}

/// Makes sure a userspace implementation serves `iface`, starting `program` if none does.
pub fn ensure_running(iface: &str, program: &Path) -> Result<(Uapi, Origin), UserspaceError> {
    let uapi = Uapi::for_interface(iface);
    if uapi.get().is_ok() {
        tracing::info!(
            iface,
            pid = crate::process::tun_owner(iface).ok().flatten(),
            "adopted running userspace wireguard"
        );
        return Ok((uapi, Origin::Adopted));
    }
    if uapi.path().exists() {
        tracing::info!(socket = %uapi.path().display(), "removing stale control socket");
        std::fs::remove_file(uapi.path()).map_err(|source| UserspaceError::Stale {
            path: uapi.path().to_owned(),
            source,
        })?;
    }

    tracing::info!(iface, program = %program.display(), "starting userspace wireguard");
    let spawn_err = |source| UserspaceError::Spawn {
        program: program.to_owned(),
        iface: iface.to_owned(),
        source,
    };
    let output = Command::new(program)
        .arg(iface)
        .env_remove("WG_PROCESS_FOREGROUND")
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_err)?;
    if !output.status.success() {
        return Err(UserspaceError::Failed {
            program: program.to_owned(),
            iface: iface.to_owned(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    wait_for_socket(&uapi, program)?;
    tracing::info!(
        iface,
        pid = crate::process::tun_owner(iface).ok().flatten(),
        "userspace wireguard started"
    );
    Ok((uapi, Origin::Started))
}

/// Polls the control socket until it answers or the start timeout passes.
fn wait_for_socket(uapi: &Uapi, program: &Path) -> Result<(), UserspaceError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match uapi.get() {
            Ok(_) => return Ok(()),
            Err(source) if Instant::now() >= deadline => {
                return Err(UserspaceError::NoSocket {
                    program: program.to_owned(),
                    source,
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}
