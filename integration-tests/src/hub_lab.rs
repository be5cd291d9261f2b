//! A hub with edges around the real `edgehub` daemon: `edge<i>` namespaces running
//! wireguard-go as peers, a `hub` namespace where `edgehub run` brings up wg0 and the NAT,
//! and a `db` namespace running PostgreSQL 15 behind the hub's egress veth.
//!
//! Addresses follow the original plan: hub 10.50.0.1/24 (its API on port 9090), edge i
//! 10.50.i.1/32; underlay 192.168.7i.0/24 per edge; database 10.99.0.2 behind 10.99.0.1.
//! The VIP is 10.50.0.5:5432 rather than the hub's own address, because the NAT drops
//! every other port to a VIP address, and the API must stay reachable.
//! The daemon runs with its own config, runtime dir, pin dir and /run/wireguard, and every
//! process (the daemon, the wireguard-go it starts, the edges'), namespace and pin goes
//! with the lab, even when a test fails.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    os::unix::net::UnixDatagram,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hub_daemon::wireguard::uapi::Uapi;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::{
    ChildGuard, Netns,
    bpffs::PinDir,
    hub_edge::{Edge, http_get},
    netns::run,
    netns_postgres::NetnsPostgres,
    veth_pair,
    wireguard::{genkey, pubkey, wait_for},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The hub's tunnel address, where its API listens.
pub const HUB: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 1);
/// The VIP (port 5432) that leads to the database.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 5);
pub const DB: &str = "10.99.0.2";
pub const API_PORT: u16 = 9090;

/// The `edgehub` daemon inside the hub namespace.
pub struct Daemon {
    child: ChildGuard,
    // Kept open for the daemon's later notifications (RELOADING, STOPPING).
    _notify: UnixDatagram,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.child.kill();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }
}

/// The whole lab.
pub struct HubLab {
    // Drop order: the daemon, then wireguard-go it started, pins, postgres, then namespaces.
    pub daemon: Option<Daemon>,
    hub_run_dir: TempDir,
    pub dir: TempDir,
    pub pins: PinDir,
    _postgres: NetnsPostgres,
    pub edges: Vec<Edge>,
    pub hub: Netns,
    pub db: Netns,
    pub hub_public_key: String,
}

impl HubLab {
    /// Namespaces, underlay, edges with wireguard-go, and PostgreSQL; the daemon is not
    /// started yet.
    pub fn new(edges: u8) -> anyhow::Result<Self> {
        let hub = Netns::new("hub")?;
        let db = Netns::new("db")?;
        veth_pair(&hub, "eh-hd", "10.99.0.1/24", &db, "eh-dh", "10.99.0.2/24")?;
        let hub_key = genkey()?;
        let hub_public_key = pubkey(&hub_key)?;
        let dir = TempDir::new("hub")?;
        let postgres = NetnsPostgres::start(&db, DB, 5432)?;
        std::fs::write(dir.0.join("hub.key"), &hub_key)?;

        let mut lab = Self {
            daemon: None,
            hub_run_dir: TempDir::new("hub-wg")?,
            dir,
            pins: PinDir::new(),
            _postgres: postgres,
            edges: Vec::new(),
            hub,
            db,
            hub_public_key,
        };
        for index in 1..=edges {
            let edge = lab.make_edge(index)?;
            lab.edges.push(edge);
        }
        Ok(lab)
    }

    /// Adds edge `index`: its namespace, underlay veth to the hub, and wireguard-go.
    pub fn make_edge(&self, index: u8) -> anyhow::Result<Edge> {
        let ns = Netns::new(&format!("edge{index}"))?;
        veth_pair(
            &ns,
            &format!("eh-e{index}u"),
            &format!("192.168.7{index}.2/24"),
            &self.hub,
            &format!("eh-h{index}u"),
            &format!("192.168.7{index}.1/24"),
        )?;
        let run_dir = TempDir::new(&format!("edge{index}-wg"))?;
        let script = format!(
            "mkdir -p /run/wireguard && mount --bind {} /run/wireguard && exec wireguard-go -f wg0",
            run_dir.0.display()
        );
        let wireguard = ChildGuard::spawn(
            ns.command("sh")
                .args(["-c", &script])
                .env("WG_PROCESS_FOREGROUND", "1"),
        )?;
        wait_for(&run_dir.0.join("wg0.sock"), Duration::from_secs(10))?;

        let key = genkey()?;
        let public_key = pubkey(&key)?;
        let key_file = run_dir.0.join("private.key");
        std::fs::write(&key_file, &key)?;
        let wg = format!(
            "mount --bind {} /run/wireguard && wg set wg0 private-key {} listen-port 51820 \
             peer {} endpoint 192.168.7{index}.1:51820 allowed-ips 10.50.0.0/24 \
             persistent-keepalive 1",
            run_dir.0.display(),
            key_file.display(),
            self.hub_public_key
        );
        run(ns.command("sh").args(["-c", &wg]))?;
        ns.ip(&["addr", "add", &format!("10.50.{index}.1/32"), "dev", "wg0"])?;
        ns.ip(&["link", "set", "wg0", "up"])?;
        ns.ip(&["route", "add", "10.50.0.0/24", "dev", "wg0"])?;
        Ok(Edge {
            index,
            public_key,
            _wireguard: wireguard,
            _run_dir: run_dir,
            ns,
        })
    }

    /// The hub's configuration with `peers` (edges' `peer_toml`), plus `extra` at the end.
    pub fn config_text(&self, peers: &[&Edge], extra: &str) -> String {
        let mut text = format!(
            "[interface]\nname = \"wg0\"\nprivate_key_file = \"{}\"\nlisten_port = 51820\n\
             address = \"10.50.0.1/24\"\nmtu = 1420\nbackend = \"auto\"\n\n",
            self.dir.0.join("hub.key").display()
        );
        for p in peers {
            text.push_str(&p.peer_toml());
        }
        let _ = write!(
            text,
            "\n[nat]\negress_interface = \"eh-hd\"\negress_address = \"auto\"\nmax_flows = 4096\n\
             [nat.timeouts]\nsyn = 10\nestablished = 600\nclosing = 5\n\
             [[nat.service]]\nvip = \"{VIP}:5432\"\nbackends = [\"{DB}:5432\"]\n\n\
             [api]\nlisten = \"10.50.0.1:{API_PORT}\"\n[bpf]\npin_dir = \"{}\"\n\
             [daemon]\ngc_interval = 1\n{extra}",
            self.pins.path().display()
        );
        text
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.0.join("edgehub.toml")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.0.join("run")
    }

    pub fn write_config(&self, text: &str) -> anyhow::Result<()> {
        Ok(std::fs::write(self.config_path(), text)?)
    }

    /// The `edgehub` command inside the hub namespace, with this lab's config, runtime dir
    /// and /run/wireguard (a private mount namespace keeps /sys/fs/bpf, unlike
    /// `ip netns exec`).
    pub fn edgehub(&self, args: &[&str]) -> Command {
        let script = format!(
            "mkdir -p /run/wireguard && mount --bind {} /run/wireguard && exec \"$0\" \"$@\"",
            self.hub_run_dir.0.display()
        );
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.hub.name()))
            .args([
                "--",
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .arg(edgehub_binary())
            .arg("--config")
            .arg(self.config_path())
            .arg("--runtime-dir")
            .arg(self.runtime_dir())
            .args(args)
            .env("RUST_LOG", "info,hub_daemon=debug");
        cmd
    }

    /// Starts `edgehub run` and waits for its READY=1.
    pub fn start_daemon(&mut self) -> anyhow::Result<()> {
        let socket_path = self
            .dir
            .0
            .join(format!("notify-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        let socket = UnixDatagram::bind(&socket_path)?;
        let mut cmd = self.edgehub(&["run"]);
        // Every run appends to one log, which tests read to wait for what the daemon did.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        cmd.env("NOTIFY_SOCKET", &socket_path)
            .env("NO_COLOR", "1")
            .stderr(log);
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 512];
        loop {
            socket.set_read_timeout(Some(Duration::from_millis(200)))?;
            if let Ok(n) = socket.recv(&mut buf)
                && String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
            {
                break;
            }
            if !child.is_running() {
                bail!("edgehub run exited before READY=1");
            }
            if Instant::now() > deadline {
                bail!("edgehub run sent no READY=1 within 30 s");
            }
        }
        self.daemon = Some(Daemon {
            child,
            _notify: socket,
        });
        Ok(())
    }

    /// The daemon's log (all runs).
    pub fn log_path(&self) -> PathBuf {
        self.dir.0.join("daemon.log")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls the daemon's log until `pattern` occurs `count` times, or fails after `limit`.
    pub fn wait_log(&self, pattern: &str, count: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.log().matches(pattern).count() < count {
            if Instant::now() > deadline {
                bail!(
                    "the daemon did not log {pattern:?} {count} time(s) within {limit:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Runs an `edgehub` subcommand to completion: (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
        let out = self.edgehub(args).output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `edgehub status --json`.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let (code, out, err) = self.cli(&["status", "--json"])?;
        if code != 0 {
            bail!("edgehub status failed ({code}): {err}");
        }
        Ok(serde_json::from_str(&out)?)
    }

    /// The hub's wireguard-go control socket.
    pub fn hub_uapi(&self) -> Uapi {
        Uapi::at(self.hub_run_dir.0.join("wg0.sock"))
    }

    /// The PID of the hub's wireguard-go (the holder of the hub's wg0 TUN device).
    pub fn hub_wireguard_pid(&self) -> anyhow::Result<Option<i32>> {
        let _inside = self.hub.enter()?;
        Ok(hub_daemon::process::tun_owner("wg0")?)
    }

    /// Ends the hub's wireguard-go and waits for it to go.
    pub fn kill_hub_wireguard(&self) -> anyhow::Result<()> {
        let pid = self
            .hub_wireguard_pid()?
            .context("no wireguard-go holds the hub's wg0")?;
        kill(Pid::from_raw(pid), Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while hub_daemon::process::is_alive(pid) {
            if Instant::now() > deadline {
                bail!("wireguard-go {pid} did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `GET path` on the API from inside the hub namespace.
    pub fn http_get_on_hub(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let _inside = self.hub.enter()?;
        http_get(HUB, path)
    }

    pub fn edge(&self, index: u8) -> &Edge {
        self.edges
            .iter()
            .find(|e| e.index == index)
            .expect("edge exists")
    }
}

impl Drop for HubLab {
    fn drop(&mut self) {
        self.daemon = None;
        // The daemon started wireguard-go detached; end exactly that process.
        if let Ok(Some(pid)) = self.hub_wireguard_pid() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

pub use crate::wireguard::TempDir;

/// The real `edgehub` binary (`$EDGEHUB_BIN`, or built on first use).
pub fn edgehub_binary() -> PathBuf {
    crate::binaries::workspace_binary("hub-daemon", "edgehub", "EDGEHUB_BIN")
}
