//! An edge of the hub lab: a namespace with wireguard-go as a peer of the hub, and what it
//! does through the tunnel: queries and open sessions to the database behind the VIP, and
//! HTTP requests to the hub's API.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpStream},
    process::{ChildStdin, ChildStdout, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    ChildGuard, Netns,
    hub_lab::{API_PORT, HUB, TempDir, VIP},
};

const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

/// One edge: its namespace and wireguard-go.
pub struct Edge {
    pub index: u8,
    pub public_key: String,
    // Declared before the namespace: the process ends first.
    pub(crate) _wireguard: ChildGuard,
    pub(crate) _run_dir: TempDir,
    pub ns: Netns,
}

impl Edge {
    /// The edge's tunnel address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 50, self.index, 1)
    }

    /// The `[[peer]]` of this edge in the hub's configuration.
    pub fn peer_toml(&self) -> String {
        format!(
            "[[peer]]\nname = \"edge{}\"\npublic_key = \"{}\"\nallowed_ips = [\"{}/32\"]\n\
             endpoint = \"192.168.7{}.2:51820\"\npersistent_keepalive = 1\n",
            self.index,
            self.public_key,
            self.addr(),
            self.index
        )
    }

    /// Runs one query through the hub in a new connection; its output.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        let out = self
            .ns
            .command(PSQL)
            .args([
                "-At",
                "-h",
                &VIP.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "3")
            .output()
            .context("starting psql")?;
        if !out.status.success() {
            bail!(
                "psql from edge{}: {}",
                self.index,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// Polls `query` until it succeeds or `limit` passes (a tunnel re-handshaking).
    pub fn query_within(&self, sql: &str, limit: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.query(sql) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// An open database session through the hub (a long-lived psql).
    pub fn session(&self) -> anyhow::Result<Session> {
        Session::open(self)
    }

    /// `GET path` on the hub's API from this edge, through the tunnel: (status, body).
    pub fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let _inside = self.ns.enter()?;
        http_get(HUB, path)
    }
}

/// A psql process holding one TCP connection to the database through the hub.
pub struct Session {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    child: ChildGuard,
}

impl Session {
    fn open(edge: &Edge) -> anyhow::Result<Self> {
        let mut cmd = edge.ns.command(PSQL);
        cmd.args([
            "-At",
            "-h",
            &VIP.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .env("PGCONNECT_TIMEOUT", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let stdin = child.child_mut().stdin.take().context("psql stdin")?;
        let stdout = BufReader::new(child.child_mut().stdout.take().context("psql stdout")?);
        let mut session = Self {
            stdin,
            stdout,
            child,
        };
        session
            .ask("select 1")
            .context("first query of the session")?;
        Ok(session)
    }

    /// Sends one single-row query and returns its answer line.
    pub fn ask(&mut self, sql: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{sql};").context("writing to psql")?;
        self.stdin.flush()?;
        let mut line = String::new();
        // psql answers or, when the connection broke, exits (EOF).
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading from psql")?;
        if n == 0 || !self.child.is_running() {
            bail!("the session ended (psql exited) instead of answering {sql:?}");
        }
        Ok(line.trim().to_owned())
    }

    /// The backend PID of the session, which stays the same while the session lives.
    pub fn backend_pid(&mut self) -> anyhow::Result<String> {
        self.ask("select pg_backend_pid()")
    }
}

/// A minimal HTTP/1.0 GET: (status, body).
pub(crate) fn http_get(host: Ipv4Addr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&(host, API_PORT).into(), Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    Ok((status, body.to_owned()))
}
