//! The daemon's runtime files (default /run/edgehub): its PID file, used by
//! `edgehub reload`, and a record of what edgehub changed on the system, so that
//! `edgehub down` can undo exactly that even after a restart.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde::{Deserialize, Serialize};

/// Where the runtime files go unless told otherwise.
pub const DEFAULT_DIR: &str = "/run/edgehub";

/// Why a runtime file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{call} {path}")]
    Io {
        call: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a runtime record of this edgehub")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no edgehub daemon is running (no live PID in {path})")]
    NotRunning { path: PathBuf },
    #[error("an edgehub daemon already runs as PID {pid} ({path})")]
    AlreadyRunning { pid: i32, path: PathBuf },
    #[error("signalling PID {pid}")]
    Signal {
        pid: i32,
        #[source]
        source: nix::Error,
    },
}

/// What edgehub changed and must undo on `edgehub down`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// sysctl name -> value before edgehub changed it.
    pub sysctls: BTreeMap<String, String>,
    /// The tunnel interface edgehub brought up.
    pub interface: Option<String>,
    /// Whether edgehub started the userspace implementation (else it adopted one).
    pub started_userspace: bool,
    /// Whether edgehub created the kernel WireGuard link.
    #[serde(default)]
    pub created_kernel_link: bool,
    pub pin_dir: Option<PathBuf>,
}

/// The runtime directory.
#[derive(Debug, Clone)]
pub struct RuntimeDir {
    dir: PathBuf,
}

impl RuntimeDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("edgehub.pid")
    }

    fn record_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn io(call: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RuntimeError {
        let path = path.to_owned();
        move |source| RuntimeError::Io { call, path, source }
    }

    /// The record of an earlier run, or an empty one.
    pub fn load(&self) -> Result<Record, RuntimeError> {
        let path = self.record_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| RuntimeError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(Self::io("read", &path)(e)),
        }
    }

    /// Writes the record (atomically: a crash leaves the old or the new one).
    pub fn save(&self, record: &Record) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io("create", &self.dir))?;
        let path = self.record_file();
        let temporary = path.with_extension("json.new");
        let text = serde_json::to_vec_pretty(record).expect("a record serializes");
        std::fs::write(&temporary, text).map_err(Self::io("write", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(Self::io("rename", &path))
    }

    /// Removes the record and the PID file, once everything was undone.
    pub fn clear(&self) -> Result<(), RuntimeError> {
        for path in [self.record_file(), self.pid_file()] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Self::io("remove", &path)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The PID of the running daemon, if the PID file names a live process.
    pub fn running_pid(&self) -> Result<Option<i32>, RuntimeError> {
        let path = self.pid_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io("read", &path)(e)),
        };
        let pid = text.trim().parse::<i32>().ok().filter(|pid| *pid > 0);
        Ok(pid.filter(|pid| crate::process::is_alive(*pid)))
    }

    /// Writes our PID, refusing when another live daemon holds the file.
    pub fn claim_pid_file(&self) -> Result<(), RuntimeError> {
        let own = std::process::id().cast_signed();
        if let Some(pid) = self.running_pid()?.filter(|pid| *pid != own) {
            return Err(RuntimeError::AlreadyRunning {
                pid,
                path: self.pid_file(),
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(Self::io("create", &self.dir))?;
        let path = self.pid_file();
        std::fs::write(&path, format!("{own}\n")).map_err(Self::io("write", &path))
    }

    pub fn release_pid_file(&self) {
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Sends `signal` to the running daemon.
    pub fn signal(&self, signal: Signal) -> Result<i32, RuntimeError> {
        let pid = self.running_pid()?.ok_or(RuntimeError::NotRunning {
            path: self.pid_file(),
        })?;
        kill(Pid::from_raw(pid), signal).map_err(|source| RuntimeError::Signal { pid, source })?;
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_pid_file_names_us() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = RuntimeDir::new(dir.path().join("run"));
        assert_eq!(runtime.load().unwrap(), Record::default());
        assert_eq!(runtime.running_pid().unwrap(), None);

        let mut record = Record {
            started_userspace: true,
            ..Record::default()
        };
        record
            .sysctls
            .insert("net.ipv4.ip_forward".into(), "0".into());
        runtime.save(&record).unwrap();
        assert_eq!(runtime.load().unwrap(), record);

        runtime.claim_pid_file().unwrap();
        assert_eq!(
            runtime.running_pid().unwrap(),
            Some(std::process::id().cast_signed())
        );
        runtime.clear().unwrap();
        assert_eq!(runtime.load().unwrap(), Record::default());
        assert!(matches!(
            runtime.signal(Signal::SIGHUP),
            Err(RuntimeError::NotRunning { .. })
        ));
    }
}
