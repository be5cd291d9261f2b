//! PostgreSQL 15 in the `db` namespace, set up as the original guide set up RDS: database
//! `contacts`, its table, and `contacts_user` with a password, reachable on a private address.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::{
    net,
    regions::{DB_ADDR, DB_NS, DB_PASSWORD},
};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The original's database, user and table (section 3.3), shared with the test fixture.
const SETUP: &str = include_str!("../../../agent/contacts-setup.sql");

/// As the `postgres` user: the server refuses to run as root.
fn as_postgres(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(format!("{BIN}/{program}"));
    cmd
}

/// Starts the database; `host_auth` is the `pg_hba` method for TCP clients (the lab uses
/// passwords as RDS does; the benchmarks `trust`, so that SCRAM's deliberate CPU cost does
/// not hide the network's share of a new connection).
pub fn start(host_auth: &str) -> anyhow::Result<()> {
    let dir = net::state_dir().join("pg");
    let data = dir.join("data");
    fs::create_dir_all(&data)?;
    fs::set_permissions(net::state_dir(), fs::Permissions::from_mode(0o755))?;
    net::quiet(
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir),
    )?;
    net::quiet(
        as_postgres("initdb")
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-U",
                "postgres",
                "-D",
            ])
            .arg(&data),
    )
    .context("initdb")?;
    fs::write(
        data.join("pg_hba.conf"),
        format!("local all all trust\nhost all all 0.0.0.0/0 {host_auth}\n"),
    )?;

    let socket_dir = dir.display().to_string();
    let mut server = Command::new("ip");
    server
        .args(["netns", "exec", DB_NS])
        .args(as_postgres_args("postgres"))
        .arg("-D")
        .arg(&data)
        .args([
            "-c",
            &format!("listen_addresses={DB_ADDR}"),
            "-c",
            &format!("unix_socket_directories={socket_dir}"),
            "-c",
            "max_connections=200",
            // The lab measures the network: without this, the VM disk's fsync time (0.5 to 12 ms
            // here) would swamp the shorter regions' round trips.
            "-c",
            "synchronous_commit=off",
        ]);
    net::spawn("postgres", server)?;
    net::wait_for(
        "PostgreSQL",
        Some("postgres"),
        Duration::from_secs(30),
        || {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    DB_NS,
                    &format!("{BIN}/pg_isready"),
                    "-q",
                    "-h",
                    DB_ADDR,
                ])
                .status()
                .is_ok_and(|s| s.success())
        },
    )?;

    // The script comes on stdin: the postgres user may not read a checkout under /root.
    let mut psql = as_postgres("psql");
    psql.args(["-h", &socket_dir, "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
        .arg("-v")
        .arg(format!("pw={DB_PASSWORD}"))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = psql.spawn().context("starting psql")?;
    child
        .stdin
        .take()
        .context("psql's stdin")?
        .write_all(SETUP.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "setting up the database: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn as_postgres_args(program: &str) -> Vec<String> {
    let cmd = as_postgres(program);
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
