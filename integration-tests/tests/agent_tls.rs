//! TLS to PostgreSQL: `require` encrypts, `verify-full` checks the certificate against the CA
//! and the name given by `--ssl-server-name`, so a client dialling an address (as the hub's VIP)
//! can still verify the database certificate's real name.

#[path = "agent_support.rs"]
mod agent_support;

use agent_support::{db_flags, get_json, start_agent};
use integration_tests::postgres::PgServer;

const NAME: &str = "db.edgehub.test";

fn tls_flags(pg: &PgServer, extra: &[&str]) -> Vec<String> {
    let mut flags = db_flags(pg, "lhr", "127.0.0.1", pg.port());
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    flags
}

fn tls_sessions(pg: &PgServer) -> u32 {
    pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'edge-agent' AND s.ssl",
    )
    .expect("pg_stat_ssl")
    .trim()
    .parse()
    .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_server_name_override_and_require() {
    let pg = PgServer::start().expect("postgres");
    let ca = pg.enable_tls(NAME).expect("tls");
    let ca = ca.to_str().expect("utf8").to_owned();

    // verify-full, dialling 127.0.0.1 but verifying the certificate's name.
    let ok = start_agent(&tls_flags(
        &pg,
        &[
            "--sslmode",
            "verify-full",
            "--ssl-root-cert",
            &ca,
            "--ssl-server-name",
            NAME,
        ],
    ))
    .await;
    let (status, b) = get_json(&format!("{}/api/rds/benchmark?iterations=3", ok.base)).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["read_errors"], 0);
    assert!(tls_sessions(&pg) >= 1, "the agent's connection is TLS");

    // Without the override the name is 127.0.0.1, which the certificate does not carry.
    let no_override = start_agent(&tls_flags(
        &pg,
        &["--sslmode", "verify-full", "--ssl-root-cert", &ca],
    ))
    .await;
    let (_, h) = get_json(&format!("{}/api/rds/health", no_override.base)).await;
    assert_eq!(h["status"], "error", "{h}");
    eprintln!("without override: {h}");
    assert!(
        h["message"]
            .as_str()
            .is_some_and(|m| m.contains("certificate")),
        "{h}"
    );
    let (status, _) = get_json(&format!("{}/api/rds/benchmark", no_override.base)).await;
    assert_eq!(status, 503);

    // A wrong name fails too.
    let wrong = start_agent(&tls_flags(
        &pg,
        &[
            "--sslmode",
            "verify-full",
            "--ssl-root-cert",
            &ca,
            "--ssl-server-name",
            "other.test",
        ],
    ))
    .await;
    let (_, h) = get_json(&format!("{}/api/rds/health", wrong.base)).await;
    assert_eq!(h["status"], "error", "{h}");
    assert!(
        h["message"]
            .as_str()
            .is_some_and(|m| m.contains("certificate")),
        "{h}"
    );

    // require: encrypted, not verified.
    let require = start_agent(&tls_flags(&pg, &["--sslmode", "require"])).await;
    let (status, b) = get_json(&format!("{}/api/rds/benchmark?iterations=2", require.base)).await;
    assert_eq!(status, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_fails_against_a_server_without_tls_and_prefer_falls_back() {
    let pg = PgServer::start().expect("postgres");
    let require = start_agent(&tls_flags(&pg, &["--sslmode", "require"])).await;
    let (_, h) = get_json(&format!("{}/api/rds/health", require.base)).await;
    assert_eq!(h["status"], "error", "{h}");
    let prefer = start_agent(&tls_flags(&pg, &["--sslmode", "prefer"])).await;
    let (_, h) = get_json(&format!("{}/api/rds/health", prefer.base)).await;
    assert_eq!(h["status"], "connected", "{h}");
}
