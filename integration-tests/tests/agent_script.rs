//! The real `edge-agent` binary, started the original way (environment only), runs the
//! original's benchmark script (guide section 5.3, curl + jq) unchanged but for the address
//! list, and never logs the database password.

#[path = "agent_support.rs"]
mod agent_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use agent_support::{edge_agent_binary, wait_http};
use integration_tests::ChildGuard;
use integration_tests::postgres::{PgServer, USER, free_port};

/// The original script (section 5.3), verbatim.
const ORIGINAL_SCRIPT: &str = r#"#!/bin/bash
echo "=== Benchmark RDS: Fly.io → AWS RDS Irlanda ==="
echo ""
printf "| %-8s | %-6s | %-13s | %-11s | %-9s |\n" "Bandeira" "Região" "Localização" "Insert (ms)" "Read (ms)"
echo "|----------|--------|---------------|-------------|-----------|"
for backend in \
"🇧🇷:gru:10.50.1.1:São Paulo" \
"🇺🇸:iad:10.50.2.1:Virginia" \
"🇺🇸:ord:10.50.2.2:Chicago" \
"🇺🇸:lax:10.50.2.3:Los Angeles" \
"🇬🇧:lhr:10.50.3.1:Londres" \
"🇩🇪:fra:10.50.3.2:Frankfurt" \
"🇫🇷:cdg:10.50.3.3:Paris" \
"🇯🇵:nrt:10.50.4.1:Tóquio" \
"🇸🇬:sin:10.50.4.2:Singapura" \
"🇦🇺:syd:10.50.4.3:Sydney"
do
flag=$(echo $backend | cut -d: -f1)
region=$(echo $backend | cut -d: -f2)
ip=$(echo $backend | cut -d: -f3)
location=$(echo $backend | cut -d: -f4)
result=$(curl -s --connect-timeout 10 http://$ip:8080/api/rds/benchmark 2>/dev/null)
if [ -n "$result" ]; then
insert=$(echo $result | jq -r '.insert_avg_ms' | xargs printf "%.2f")
read=$(echo $result | jq -r '.read_min_ms' | xargs printf "%.2f")
printf "| %-8s | %-6s | %-13s | %11s | %9s |\n" "$flag" "$region" "$location" "$insert" "$read"
else
printf "| %-8s | %-6s | %-13s | %11s | %9s |\n" "$flag" "$region" "$location" "TIMEOUT" "TIMEOUT"
fi
done
"#;

/// The script with its ten addresses replaced by one local agent on `port`, plus one closed
/// port (which the script must print as TIMEOUT).
fn local_script(port: u16, closed: u16) -> String {
    let start = ORIGINAL_SCRIPT.find("\"🇧🇷:gru").expect("list start");
    let end = ORIGINAL_SCRIPT.find("\ndo\n").expect("list end");
    let mut s = String::new();
    s.push_str(&ORIGINAL_SCRIPT[..start]);
    s.push_str("\"🇬🇧:lhr:127.0.0.1:Londres\" \\\n\"🇦🇺:syd:127.0.0.2:Sydney\"");
    s.push_str(&ORIGINAL_SCRIPT[end..]);
    // The script's port is fixed at 8080: give each address its own.
    let url = "http://$ip:8080/api/rds/benchmark";
    assert!(s.contains(url));
    s.replace(
        url,
        &format!(
            "http://$ip:$( [ $ip = 127.0.0.1 ] && echo {port} || echo {closed} )/api/rds/benchmark"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_script_prints_numbers_and_password_never_logged() {
    let pg = PgServer::start().expect("postgres");
    let bin = tokio::task::spawn_blocking(edge_agent_binary)
        .await
        .expect("build");
    let port = free_port().expect("port");
    let dir = std::env::temp_dir().join(format!("edge-agent-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log_path = dir.join("agent.log");
    let log = std::fs::File::create(&log_path).expect("log");
    // Started like the original: environment only, no subcommand.
    let agent = ChildGuard::spawn(
        Command::new(&bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FLY_REGION", "lhr")
            .env("FLY_ALLOC_ID", "0123456789abcdef")
            .env("PORT", port.to_string())
            .env("EDGE_AGENT_LISTEN", "127.0.0.1")
            .env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", pg.port().to_string())
            .env("DB_USER", USER)
            .env("DB_PASSWORD", pg.password())
            .env("DB_NAME", "contacts")
            .env("RUST_LOG", "trace")
            // Empty variables count as unset, as in the original.
            .env("DB_SSLMODE", "")
            .env("EDGE_HUB_API", "")
            .stdout(log.try_clone().expect("log"))
            .stderr(log),
    )
    .expect("start edge-agent");
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{base}/api/info"), Duration::from_secs(20)).await;
    let info: serde_json::Value = reqwest::get(format!("{base}/api/info"))
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    assert_eq!(
        info,
        serde_json::json!({"region": "lhr", "hostname": "01234567"})
    );

    let closed = free_port().expect("port");
    let script = local_script(port, closed);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("bash")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let row = stdout
        .lines()
        .find(|l| l.contains("| lhr "))
        .expect("lhr row");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // ["", flag, region, location, insert, read, ""]
    let insert: f64 = cells[4].parse().expect("insert is a number");
    let read: f64 = cells[5].parse().expect("read is a number");
    assert!(insert > 0.0 && read > 0.0, "{row}");
    let syd = stdout
        .lines()
        .find(|l| l.contains("| syd "))
        .expect("syd row");
    assert!(syd.contains("TIMEOUT"), "{syd}");

    let health: serde_json::Value = reqwest::get(format!("{base}/api/rds/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "connected");

    drop(agent);
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    assert!(
        logs.contains("edge-agent listening"),
        "logs captured: {logs}"
    );
    assert!(logs.contains("benchmark done"));
    assert!(
        !logs.contains(pg.password()),
        "the database password appears in the logs"
    );
    std::fs::remove_dir_all(&dir).ok();
}
