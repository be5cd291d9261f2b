//! PostgreSQL 15 in the `db` namespace, set up as the original guide set up RDS: database
//! `contacts`, its table, and `contacts_user` with a password, reachable on a private address.

use std::{fs, os::unix::fs::PermissionsExt as _, process::Command, time::Duration};

use anyhow::Context as _;

use super::{
    net,
    regions::{DB_ADDR, DB_NS, DB_PASSWORD},
};

const BIN: &str = "/usr/lib/postgresql/15/bin";

const SCHEMA: &str = "
CREATE TABLE contacts (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    email VARCHAR(255),
    notes TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO contacts_user;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO contacts_user;
";

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

    let psql = |db: &str, sql: &str| {
        net::quiet(as_postgres("psql").args([
            "-h",
            &socket_dir,
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ]))
    };
    psql("postgres", "CREATE DATABASE contacts")?;
    psql(
        "postgres",
        &format!("CREATE USER contacts_user WITH PASSWORD '{DB_PASSWORD}'"),
    )?;
    psql(
        "postgres",
        "GRANT ALL PRIVILEGES ON DATABASE contacts TO contacts_user",
    )?;
    psql("contacts", SCHEMA)
}

fn as_postgres_args(program: &str) -> Vec<String> {
    let cmd = as_postgres(program);
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
