//! A PostgreSQL 15 server inside a test's network namespace, listening on one of its
//! addresses with trust authentication, removed (process and data) on drop.

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{ChildGuard, Netns, netns::run};

/// Debian's PostgreSQL 15 binaries.
const BIN: &str = "/usr/lib/postgresql/15/bin";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The server; the postmaster is stopped and its directory deleted on drop.
pub struct NetnsPostgres {
    // Declared first: the server stops (SIGTERM, then SIGKILL) before its directory goes.
    _server: ChildGuard,
    _dir: DirGuard,
}

impl NetnsPostgres {
    /// Initialises a cluster and starts it in `ns` on `addr:port`; returns once it accepts
    /// connections.
    pub fn start(ns: &Netns, addr: &str, port: u16) -> anyhow::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("edgehub-nat-pg-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let dir_guard = DirGuard(dir.clone());
        run(Command::new("chown").args(["postgres:postgres"]).arg(&dir))?;
        let data = dir.join("data");
        as_postgres(
            Command::new(format!("{BIN}/initdb"))
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data),
        )
        .context("initdb")?;
        // Peers reach the server through the NAT, from the hub's egress address.
        let mut hba = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("pg_hba.conf"))?;
        std::io::Write::write_all(&mut hba, b"host all all 0.0.0.0/0 trust\n")?;

        let port_s = port.to_string();
        let server = ns.spawn(
            "setpriv",
            &[
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                &format!("{BIN}/postgres"),
                "-D",
                data.to_str().context("utf-8 path")?,
                "-k",
                dir.to_str().context("utf-8 path")?,
                "-p",
                &port_s,
                "-c",
                &format!("listen_addresses={addr}"),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=100",
                "-c",
                "log_min_messages=warning",
            ],
        )?;
        let pg = Self {
            _server: server,
            _dir: dir_guard,
        };

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = ns
                .command(&format!("{BIN}/pg_isready"))
                .args(["-q", "-U", "postgres", "-h", addr, "-p", &port_s])
                .status()?;
            if ready.success() {
                return Ok(pg);
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres in {} did not become ready on {addr}:{port}",
                    ns.name()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn as_postgres(cmd: &mut Command) -> anyhow::Result<()> {
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    wrapped.arg(cmd.get_program()).args(cmd.get_args());
    run(&mut wrapped).map(drop)
}
