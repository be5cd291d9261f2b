//! Processes a test started, ended by PID when the guard drops.

use std::process::{Child, Command};

use anyhow::Context as _;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// A child process that is sent SIGTERM, then SIGKILL, and reaped on drop. Only this PID is
/// ever signalled: a test never ends processes it did not start.
pub struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    /// Starts `cmd`.
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<Self> {
        let what = format!("{cmd:?}");
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        Ok(Self { child, what })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the process now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        let pid = Pid::from_raw(self.child.id().cast_signed());
        let _ = kill(pid, Signal::SIGTERM);
        for _ in 0..50 {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("{} ignored SIGTERM; killing it", self.what);
        self.kill();
    }
}
