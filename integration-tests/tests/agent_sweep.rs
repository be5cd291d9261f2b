//! `edge-agent sweep` against agents on loopback: concurrent calls, a hanging region shown as
//! TIMEOUT without holding up the others, the same statistic in both columns, CSV/JSON/SVG.

#[path = "agent_support.rs"]
mod agent_support;

use std::time::{Duration, Instant};

use agent::config::Statistic;
use agent::regions;
use agent::sweep;
use agent_support::{db_flags, edge_agent_binary, start_agent};
use integration_tests::postgres::PgServer;

/// A listener that accepts connections and never answers.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_ranks_regions_and_a_timeout_holds_up_nobody() {
    let pg = PgServer::start().expect("postgres");
    let lhr = start_agent(&db_flags(&pg, "lhr", "127.0.0.1", pg.port())).await;
    let fra = start_agent(&db_flags(&pg, "fra", "127.0.0.1", pg.port())).await;
    let (hole, _hole_task) = black_hole().await;
    // Only three regions, all on loopback: tests never call the real WireGuard addresses.
    let all = regions::parse(regions::DEFAULT_REGIONS).expect("regions");
    let three: Vec<_> = all
        .into_iter()
        .filter(|r| ["lhr", "fra", "cdg"].contains(&r.code.as_str()))
        .collect();
    let overrides = [
        format!("lhr={}", host_port(&lhr.base)),
        format!("fra={}", host_port(&fra.base)),
        format!("cdg={hole}"),
    ];
    let targets = sweep::targets(&three, &overrides, 8080).expect("targets");
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let results = sweep::sweep(targets, 5, timeout, Statistic::Median)
        .await
        .expect("sweep");
    let took = started.elapsed();
    assert!(
        took < timeout + Duration::from_secs(2),
        "sweep took {took:?}"
    );
    assert_eq!(results.len(), 3);
    let cdg = results.iter().find(|r| r.code == "cdg").expect("cdg");
    assert_eq!(cdg.status, "timeout");
    assert_eq!(cdg.rank, None);
    let ok: Vec<_> = results.iter().filter(|r| r.status == "ok").collect();
    assert_eq!(ok.len(), 2, "{results:?}");
    assert_eq!(results[0].rank, Some(1));
    assert_eq!(results[1].rank, Some(2));
    assert!(results[0].read_ms <= results[1].read_ms);
    assert!(
        ok.iter()
            .all(|r| r.insert_p95_ms.is_some() && r.statistic == "median")
    );

    let table = agent::render::table(&results, Statistic::Median, 5);
    eprintln!("{table}");
    assert!(table.contains("Insert median (ms) | Read median (ms) | Rank"));
    assert!(table.contains("| cdg | Paris | TIMEOUT | TIMEOUT | - |"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_binary_writes_csv_json_and_svg() {
    let pg = PgServer::start().expect("postgres");
    let lhr = start_agent(&db_flags(&pg, "lhr", "127.0.0.1", pg.port())).await;
    let bin = tokio::task::spawn_blocking(edge_agent_binary)
        .await
        .expect("build");
    let dir = std::env::temp_dir().join(format!("edge-agent-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let regions_file = dir.join("regions.toml");
    std::fs::write(
        &regions_file,
        "[[region]]\ncode = \"lhr\"\nflag = \"🇬🇧\"\ncity = \"London\"\nwg_address = \"127.0.0.1\"\n",
    )
    .expect("regions");
    let svg = dir.join("chart.svg");
    let run = |format: &'static str| {
        let bin = bin.clone();
        let regions_file = regions_file.clone();
        let svg = svg.clone();
        let target = format!("lhr={}", host_port(&lhr.base));
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(bin)
                    .arg("sweep")
                    .arg("--regions")
                    .arg(regions_file)
                    .args(["--target", &target, "--iterations", "3", "--timeout", "20s"])
                    .args(["--statistic", "min", format, "--svg"])
                    .arg(svg)
                    .output()
                    .expect("run sweep")
            })
            .await
            .expect("join")
        }
    };
    let out = run("--csv").await;
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .starts_with("rank,flag,region,location,status")
    );
    let row = lines.next().expect("row");
    assert!(row.starts_with("1,🇬🇧,lhr,London,ok,min,"), "{row}");
    let out = run("--json").await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json[0]["code"], "lhr");
    assert_eq!(json[0]["statistic"], "min");
    assert!(json[0]["read_ms"].is_number());
    let chart = std::fs::read_to_string(&svg).expect("svg");
    assert!(chart.starts_with("<svg") && chart.contains("lhr London"));
    std::fs::remove_dir_all(&dir).ok();
}
