//! The daemon end to end: two edges reach PostgreSQL through the hub that `edgehub run` set
//! up (wireguard-go, routes, eBPF NAT); each edge's `/api/flows` lists only its own flows;
//! `/metrics` parses as Prometheus text; `status` and `flows` read the pins; a second
//! configuration pass changes nothing.

use std::time::Duration;

use integration_tests::{hub_lab::HubLab, require_root};

#[test]
fn two_edges_reach_the_database_and_see_only_their_own_flows() {
    require_root();
    let mut lab = HubLab::new(2).unwrap();
    let config = lab.config_text(&[&lab.edges[0], &lab.edges[1]], "");
    lab.write_config(&config).unwrap();
    lab.start_daemon().unwrap();
    // backend = "auto" on a kernel without WireGuard: userspace, and the log says so.
    let log = lab.log();
    assert!(log.contains("using the userspace implementation"), "{log}");

    // Both edges query the database through the VIP, each over its own tunnel.
    let limit = Duration::from_secs(20);
    assert_eq!(
        lab.edge(1).query_within("select 40 + 2", limit).unwrap(),
        "42"
    );
    assert_eq!(
        lab.edge(2).query_within("select 'two'", limit).unwrap(),
        "two"
    );

    // Open sessions from both edges, so both have flows.
    let mut one = lab.edge(1).session().unwrap();
    let mut two = lab.edge(2).session().unwrap();
    assert_eq!(one.ask("select 1").unwrap(), "1");
    assert_eq!(two.ask("select 2").unwrap(), "2");

    // Each edge asks the API through its tunnel and sees its own flows only.
    for edge in [lab.edge(1), lab.edge(2)] {
        let (status, body) = edge.http_get("/api/flows").unwrap();
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let flows = answer["flows"].as_array().unwrap();
        assert!(!flows.is_empty(), "edge{} sees no flow: {body}", edge.index);
        let own = format!("{}:", edge.addr());
        for flow in flows {
            let peer = flow["peer"].as_str().unwrap();
            assert!(
                peer.starts_with(&own),
                "edge{} was shown {peer}: {body}",
                edge.index
            );
            assert_eq!(flow["vip"], "10.50.0.5:5432");
            assert_eq!(flow["backend"], "10.99.0.2:5432");
            assert!(flow["db_handshake_ns"].as_u64().unwrap() > 0, "{flow}");
        }
    }

    // /metrics parses with a Prometheus text-format parser and carries the readings.
    let (status, text) = lab.http_get_on_hub("/metrics").unwrap();
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sample = |name: &str| scrape.samples.iter().find(|s| s.metric == name);
    assert!(sample("edgehub_nat_new_flows_total").is_some(), "{text}");
    assert!(sample("edgehub_nat_drops_total").is_some(), "{text}");
    let handshakes: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "edgehub_peer_handshake_age_seconds")
        .collect();
    assert_eq!(handshakes.len(), 2, "one handshake age per peer: {text}");
    assert!(sample("edgehub_db_handshake_seconds").is_some(), "{text}");

    // status and flows read the pins and the tunnel.
    let status = lab.status().unwrap();
    assert_eq!(status["peers"].as_array().unwrap().len(), 2);
    assert!(
        status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["configured"] == true)
    );
    assert!(status["flows"].as_u64().unwrap() >= 2, "{status}");
    let (code, flows, err) = lab.cli(&["flows"]).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        flows.contains("10.50.1.1:") && flows.contains("10.50.2.1:"),
        "{flows}"
    );

    // The sessions are still fine.
    assert_eq!(one.ask("select 3").unwrap(), "3");
    assert_eq!(two.ask("select 4").unwrap(), "4");
}

#[test]
fn kernel_backend_without_kernel_wireguard_fails_clearly() {
    require_root();
    let mut lab = HubLab::new(0).unwrap();
    let config = lab
        .config_text(&[], "")
        .replace("backend = \"auto\"", "backend = \"kernel\"");
    lab.write_config(&config).unwrap();

    assert!(
        lab.start_daemon().is_err(),
        "started without kernel WireGuard"
    );
    let log = lab.log();
    assert!(log.contains("RTM_NEWLINK wireguard wg0"), "{log}");
    assert!(
        lab.hub.ip(&["link", "show", "wg0"]).is_err(),
        "a wg0 was left"
    );
}
