//! The NAT end to end with a real PostgreSQL 15: a peer queries the VIP, the hub translates
//! both ways (DNAT + SNAT, conntrack, checksums) on a veth tunnel (L2) and on a wireguard-go
//! tun (L3), and the flows, counters and histograms show it.

use std::{process::Output, time::Duration};

use hub_daemon::nat::{read_counters, read_flows, read_histograms};
use integration_tests::{
    nat_lab::{DB_ADDR, HUB_EGRESS, NatLab, Tunnel, VIP},
    netns_postgres::NetnsPostgres,
    require_root,
};

const PORT: u16 = 5432;

fn psql(lab: &NatLab, sql: &str) -> Output {
    lab.edge
        .command("psql")
        .args([
            "-h",
            &VIP.to_string(),
            "-p",
            &PORT.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-tA", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql runs")
}

fn query_through_vip(tunnel: Tunnel) {
    require_root();
    let lab = NatLab::new(tunnel).unwrap();
    let _db = NetnsPostgres::start(&lab.db, &DB_ADDR.to_string(), PORT).unwrap();
    let config = lab.config(PORT);
    let _nat = lab.start_nat(&config).unwrap();

    // A real query through the VIP, answered by a server that cannot route to the peer.
    let out = psql(&lab, "select inet_client_addr()::text || ' ' || 6 * 7");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        answer.trim(),
        format!("{HUB_EGRESS}/32 42"),
        "the database saw the SNAT address"
    );

    // Conntrack: the flow is there, translated as expected, closed by psql's exit.
    let flows = read_flows(lab.pins.path()).unwrap();
    assert_eq!(flows.len(), 1, "{flows:#?}");
    let flow = &flows[0];
    assert_eq!(*flow.peer.ip(), lab.peer_addr());
    assert_eq!(flow.original.dst.to_string(), format!("{VIP}:{PORT}"));
    assert_eq!(flow.translated.dst.to_string(), format!("{DB_ADDR}:{PORT}"));
    assert_eq!(*flow.translated.src.ip(), HUB_EGRESS);
    assert!(config.port_range.contains(&flow.translated.src.port()));
    assert!(
        flow.state == "closing" || flow.state == "closed",
        "state {}",
        flow.state
    );
    let handshake = flow.db_handshake_ns.expect("handshake timed");
    assert!(handshake > 0 && handshake < Duration::from_secs(1).as_nanos() as u64);
    assert!(
        flow.requests >= 2,
        "startup, auth and the query are requests: {flow:?}"
    );
    assert!(flow.request_ns_last.is_some());

    // Counters: no drops, both directions translated.
    let counters = read_counters(lab.pins.path()).unwrap();
    assert_eq!(counters.new_flows, 1, "{counters:#?}");
    assert!(
        counters.forwarded >= 5 && counters.replied >= 5,
        "{counters:#?}"
    );
    let drops = counters.drop_not_peer
        + counters.drop_malformed
        + counters.drop_fragment
        + counters.drop_no_flow
        + counters.drop_no_backend
        + counters.drop_no_port
        + counters.drop_table_full
        + counters.drop_error
        + counters.drop_ttl;
    assert_eq!(drops, 0, "{counters:#?}");

    // Histograms: one handshake, several requests, for the one service.
    let histograms = read_histograms(lab.pins.path()).unwrap();
    assert_eq!(histograms.len(), 1);
    assert_eq!(histograms[0].db_handshake.iter().sum::<u64>(), 1);
    assert_eq!(histograms[0].request.iter().sum::<u64>(), flow.requests);
}

#[test]
fn postgres_query_through_vip_on_veth_tunnel() {
    query_through_vip(Tunnel::Veth);
}

#[test]
fn postgres_query_through_vip_on_wireguard_tunnel() {
    query_through_vip(Tunnel::WireGuard);
}
