//! A throwaway PostgreSQL 15 server for tests, and a TCP proxy that adds a fixed delay.
//!
//! The server runs from a temporary data directory on 127.0.0.1 with a free port, with the
//! original's `contacts` database, user and table. As root it runs as the `postgres` system
//! user (postgres refuses root), with the directory chowned to it. Only the postmaster this
//! fixture started is signalled (by PID), on `stop` and on drop, even when a test fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, chown};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Where Debian's PostgreSQL 15 binaries are.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The application user of the original guide.
pub const USER: &str = "contacts_user";
/// The application database of the original guide.
pub const DB: &str = "contacts";

/// The original's database, user and table (section 3.3), shared with the lab.
const SETUP: &str = include_str!("../../agent/contacts-setup.sql");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A running (or stopped) throwaway PostgreSQL server.
pub struct PgServer {
    root: PathBuf,
    port: u16,
    password: String,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    child: Option<Child>,
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl PgServer {
    /// Creates a cluster, starts it and creates the `contacts` database, user and table.
    pub fn start() -> anyhow::Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let root = std::env::temp_dir().join(format!(
            "edgehub-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(root.join("sock"))?;
        let owner = if nix::unistd::Uid::effective().is_root() {
            let user = User::from_name("postgres")?.context("no `postgres` system user")?;
            for p in [root.clone(), root.join("sock")] {
                chown(&p, Some(user.uid), Some(user.gid))?;
            }
            Some((user.uid, user.gid))
        } else {
            None
        };
        let mut server = Self {
            port: free_port()?,
            password: format!("pw-{nanos:x}-secret"),
            root,
            owner,
            child: None,
        };
        server.initdb()?;
        server.start_again()?;
        server.psql("postgres", SETUP)?;
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(Path::new(BIN).join(program));
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd.env_remove("PGPASSWORD").current_dir(&self.root);
        cmd
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ])
            .output()?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The password of [`USER`].
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Runs SQL as the superuser over the Unix socket; `pw` is bound as psql variable `:'pw'`.
    pub fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = self
            .command("psql")
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
            ])
            .arg("-h")
            .arg(self.root.join("sock"))
            .args(["-p", &self.port.to_string(), "-d", db])
            .arg("-v")
            .arg(format!("pw={}", self.password))
            .arg("-c")
            .arg("\\set QUIET on")
            .arg("-f")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(sql.as_bytes())?;
                }
                child.wait_with_output()
            })?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Turns TLS on with a fresh test CA (openssl CLI) and a server certificate for the DNS
    /// name `server_name` only; returns the CA certificate file for `--ssl-root-cert`.
    pub fn enable_tls(&self, server_name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join("tls");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("san.ext"),
            format!("subjectAltName=DNS:{server_name}\n"),
        )?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let steps: [Vec<&str>; 3] = [
            [
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            ]
            .concat()
            .into_iter()
            .chain(["-subj", "/CN=edgehub test CA"])
            .collect(),
            [
                &["req"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr"],
            ]
            .concat()
            .into_iter()
            .chain(["-subj", "/CN=edgehub test database"])
            .collect(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(&dir)
                .output()?;
            if !out.status.success() {
                bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        for (from, to) in [("server.crt", "server.crt"), ("server.key", "server.key")] {
            let dest = self.data().join(to);
            std::fs::copy(dir.join(from), &dest)?;
            std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            if let Some((uid, gid)) = self.owner {
                chown(&dest, Some(uid), Some(gid))?;
            }
        }
        self.psql(
            "postgres",
            "ALTER SYSTEM SET ssl = on;\nSELECT pg_reload_conf();",
        )?;
        // The reload is asynchronous: wait until the server reports TLS on.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.psql("postgres", "SHOW ssl")?.trim() != "on" {
            if Instant::now() > deadline {
                bail!("ssl did not turn on: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(dir.join("ca.pem"))
    }

    /// Starts the (stopped) server again on the same port and data, and waits until it accepts
    /// connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("postgres.log"))?;
        if let Some((uid, gid)) = self.owner {
            chown(&self.root.join("postgres.log"), Some(uid), Some(gid))?;
        }
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-k")
            .arg(self.root.join("sock"))
            .args(["-c", "fsync=off", "-c", "max_connections=50"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let ok = self
                .command("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()?
                .success();
            if ok {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("postgres exited early ({status}): {}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("postgres not ready within {limit:?}: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default();
        log.lines().rev().take(10).collect::<Vec<_>>().join(" / ")
    }

    /// Stops the server with a fast shutdown (SIGINT: clients are disconnected) and waits.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id())?);
        kill(pid, Signal::SIGINT)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("postgres did not stop within 20 s; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: immediate shutdown; the postmaster ends its own backends.
            if let Ok(raw) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGQUIT);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What the proxy saw of one connection, as the hub would report it.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowTiming {
    /// Upstream TCP connect time, ns.
    pub handshake_ns: u64,
    /// Last client payload forwarded upstream to the first upstream payload back, ns.
    pub request_ns_last: u64,
    last_forward: Option<Instant>,
}

type Flows = Arc<Mutex<HashMap<SocketAddr, FlowTiming>>>;

/// A TCP proxy on 127.0.0.1 that delays every chunk by `one_way` in each direction, keeping
/// the byte order; it also times each flow as the hub does (for a fake hub API).
pub struct DelayProxy {
    addr: SocketAddr,
    flows: Flows,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Starts forwarding to `upstream`, adding `one_way` each way (so `2 * one_way` per RTT).
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let flows: Flows = Arc::default();
        let shared = Arc::clone(&flows);
        let task = tokio::spawn(async move {
            while let Ok((client, peer)) = listener.accept().await {
                let flows = Arc::clone(&shared);
                tokio::spawn(async move {
                    let started = Instant::now();
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let handshake_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(0);
                    if let Ok(mut f) = flows.lock() {
                        f.insert(
                            peer,
                            FlowTiming {
                                handshake_ns,
                                ..FlowTiming::default()
                            },
                        );
                    }
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pipe(cr, sw, one_way, Arc::clone(&flows), peer, true);
                    let down = pipe(sr, cw, one_way, flows, peer, false);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Ok(Self { addr, flows, task })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Flows seen so far, by client address.
    pub fn flows(&self) -> Vec<(SocketAddr, FlowTiming)> {
        (self.flows_handle())()
    }

    /// A function returning the flows seen so far, usable after the proxy moved (fake hub).
    pub fn flows_handle(
        &self,
    ) -> impl Fn() -> Vec<(SocketAddr, FlowTiming)> + Send + Sync + 'static {
        let flows = Arc::clone(&self.flows);
        move || {
            flows
                .lock()
                .map(|f| f.iter().map(|(a, t)| (*a, *t)).collect())
                .unwrap_or_default()
        }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, each chunk delivered `delay` after it was read. Going upstream it
/// stamps when the client's payload was forwarded; coming back it records the time from that
/// stamp to the first server payload (the hub's `request_ns_last`).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    flows: Flows,
    peer: SocketAddr,
    client_to_server: bool,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader_flows = Arc::clone(&flows);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !client_to_server
                        && let Ok(mut f) = reader_flows.lock()
                        && let Some(t) = f.get_mut(&peer)
                        && let Some(sent) = t.last_forward.take()
                    {
                        t.request_ns_last = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(0);
                    }
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at.into()).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
            if client_to_server
                && let Ok(mut f) = flows.lock()
                && let Some(t) = f.get_mut(&peer)
            {
                t.last_forward = Some(Instant::now());
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
