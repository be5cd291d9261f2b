//! A bpffs pin directory made for one test, with everything pinned in it removed on drop.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `/sys/fs/bpf/edgehub-test-<pid>-<n>`: never the production `/sys/fs/bpf/edgehub`.
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// A fresh, not yet created, directory name (the NAT creates it).
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/edgehub-test-{}-{n}",
            std::process::id()
        ));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for PinDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Removing the link pins detaches the programs; removing map pins frees the maps.
        if let Err(e) = hub_daemon::nat::Nat::remove(&self.path) {
            eprintln!("removing pins in {}: {e:#}", self.path.display());
        }
        if self.path.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.path)
        {
            eprintln!("removing {}: {e}", self.path.display());
        }
    }
}
