//! The daemon's lifecycle with open database sessions: `kill -9` and a restart that adopts
//! the tunnel and the pinned NAT; a reload that adds one peer and removes another; a bad
//! configuration on reload that leaves the running one in force; wg0 recreated by a
//! wireguard-go restart and the NAT re-attached; `edgehub down` leaving nothing behind.

use std::time::Duration;

use aya::programs::{SchedClassifier, TcAttachType};
use integration_tests::{Netns, hub_lab::HubLab, require_root};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

const LIMIT: Duration = Duration::from_secs(30);

/// The names of the peers the running device knows, per `edgehub status --json`.
fn configured_peers(lab: &HubLab) -> Vec<String> {
    let status = lab.status().unwrap();
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["configured"] == true)
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn session_survives_kill9_restart_reload_and_a_bad_reload() {
    require_root();
    let mut lab = HubLab::new(3).unwrap();
    let config = lab.config_text(&[lab.edge(1), lab.edge(2)], "");
    lab.write_config(&config).unwrap();
    lab.start_daemon().unwrap();
    lab.edge(1).query_within("select 1", LIMIT).unwrap();
    let mut session = lab.edge(1).session().unwrap();
    let backend = session.backend_pid().unwrap();

    // kill -9: the dataplane goes on without the daemon...
    lab.daemon.as_mut().unwrap().kill9();
    assert_eq!(session.ask("select 'alone'").unwrap(), "alone");
    // status and flows read the pins and the tunnel without the daemon.
    let status = lab.status().unwrap();
    assert!(status["flows"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(configured_peers(&lab), ["edge1", "edge2"]);
    let (code, flows, err) = lab.cli(&["flows", "--json"]).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(flows.contains("10.50.1.1"), "{flows}");
    // ...and a new daemon adopts it without breaking the session.
    lab.start_daemon().unwrap();
    lab.wait_log("adopted running userspace wireguard", 1, LIMIT)
        .unwrap();
    assert_eq!(
        session.backend_pid().unwrap(),
        backend,
        "same database session"
    );
    assert_eq!(session.ask("select 'adopted'").unwrap(), "adopted");
    // Idempotent: the second run found everything as configured and changed nothing.
    let log = lab.log();
    assert_eq!(log.matches("wireguard peers updated").count(), 1, "{log}");
    assert_eq!(log.matches("interface configured").count(), 1, "{log}");
    // Adopted, not attached twice.
    assert_eq!(attached(&lab, "wg0"), ["eh_nat_fwd"]);
    assert_eq!(attached(&lab, "eh-hd"), ["eh_nat_reply"]);

    // SIGTERM (systemctl stop/restart) also leaves the dataplane, by default.
    let pid = Pid::from_raw(lab.daemon.as_ref().unwrap().pid().cast_signed());
    kill(pid, Signal::SIGTERM).unwrap();
    lab.wait_log("keep running for the next start", 1, LIMIT)
        .unwrap();
    assert_eq!(session.ask("select 'after stop'").unwrap(), "after stop");
    lab.start_daemon().unwrap();
    assert_eq!(
        session.backend_pid().unwrap(),
        backend,
        "same database session"
    );

    // Reload: edge3 in, edge2 out; edge1's session is untouched.
    let config = lab.config_text(&[lab.edge(1), lab.edge(3)], "");
    lab.write_config(&config).unwrap();
    let (code, _, err) = lab.cli(&["reload"]).unwrap();
    assert_eq!(code, 0, "{err}");
    lab.wait_log("configuration applied", 1, LIMIT).unwrap();
    assert_eq!(configured_peers(&lab), ["edge1", "edge3"]);
    assert_eq!(lab.edge(3).query_within("select 3", LIMIT).unwrap(), "3");
    assert!(
        lab.edge(2).query("select 2").is_err(),
        "a removed peer still reaches the database"
    );
    assert_eq!(
        session.backend_pid().unwrap(),
        backend,
        "same database session"
    );

    // A bad configuration: `reload` refuses it at once (exit 2); sent straight to the daemon
    // by SIGHUP, the daemon refuses it and keeps the running one.
    let bad = lab
        .config_text(&[lab.edge(1), lab.edge(3)], "")
        .replace("10.50.3.1/32", "10.50.1.0/24");
    lab.write_config(&bad).unwrap();
    let (code, _, err) = lab.cli(&["reload"]).unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("peer[1].allowed_ips[0]"), "{err}");
    let pid = Pid::from_raw(lab.daemon.as_ref().unwrap().pid().cast_signed());
    kill(pid, Signal::SIGHUP).unwrap();
    lab.wait_log(
        "refusing the new configuration; the running one stays",
        1,
        LIMIT,
    )
    .unwrap();
    // status reads the configuration file too: put the good one back before asking.
    let config = lab.config_text(&[lab.edge(1), lab.edge(3)], "");
    lab.write_config(&config).unwrap();
    assert_eq!(configured_peers(&lab), ["edge1", "edge3"]);
    assert_eq!(lab.edge(3).query("select 33").unwrap(), "33");
    assert_eq!(
        session.backend_pid().unwrap(),
        backend,
        "same database session"
    );
}

#[test]
fn recreated_tunnel_is_reconfigured_and_the_nat_reattached() {
    require_root();
    let mut lab = HubLab::new(1).unwrap();
    let config = lab.config_text(&[lab.edge(1)], "");
    lab.write_config(&config).unwrap();
    lab.start_daemon().unwrap();
    lab.edge(1).query_within("select 1", LIMIT).unwrap();

    // wireguard-go restarts: wg0 goes away and comes back empty, with a new ifindex.
    lab.kill_hub_wireguard().unwrap();
    lab.wait_log("NAT re-attached to the recreated tunnel", 1, LIMIT)
        .unwrap();
    assert_eq!(
        lab.edge(1).query_within("select 'again'", LIMIT).unwrap(),
        "again"
    );

    // Exactly one attachment of the forward program on the new wg0.
    assert_eq!(attached(&lab, "wg0"), ["eh_nat_fwd"]);
}

#[test]
fn down_leaves_nothing_behind() {
    require_root();
    let mut lab = HubLab::new(1).unwrap();
    let forward_before = read_ip_forward(&lab.hub);
    let config = lab.config_text(&[lab.edge(1)], "");
    lab.write_config(&config).unwrap();
    lab.start_daemon().unwrap();
    lab.edge(1).query_within("select 1", LIMIT).unwrap();
    assert_eq!(read_ip_forward(&lab.hub), "1");

    let (code, _, err) = lab.cli(&["down"]).unwrap();
    assert_eq!(code, 0, "{err}");

    assert!(
        !lab.daemon.as_mut().unwrap().is_running(),
        "the daemon was stopped"
    );
    assert!(
        lab.hub.ip(&["link", "show", "wg0"]).is_err(),
        "wg0 left behind"
    );
    assert_eq!(
        lab.hub_wireguard_pid().unwrap(),
        None,
        "wireguard-go left behind"
    );
    assert!(lab.hub_uapi().get().is_err(), "control socket left behind");
    assert!(
        !lab.pins.path().exists(),
        "pins left behind in {}",
        lab.pins.path().display()
    );
    let routes = lab.hub.ip(&["route", "show", "proto", "static"]).unwrap();
    assert!(routes.stdout.is_empty(), "routes left behind");
    assert_eq!(
        read_ip_forward(&lab.hub),
        forward_before,
        "ip_forward not restored"
    );
    let runtime: Vec<_> = std::fs::read_dir(lab.runtime_dir()).unwrap().collect();
    assert!(runtime.is_empty(), "runtime files left behind: {runtime:?}");
}

/// The names of the programs attached at tcx ingress of `iface` in the hub.
fn attached(lab: &HubLab, iface: &str) -> Vec<String> {
    let _inside = lab.hub.enter().unwrap();
    let (_, programs) = SchedClassifier::query_tcx(iface, TcAttachType::Ingress).unwrap();
    programs
        .iter()
        .filter_map(|p| p.name_as_str().map(str::to_owned))
        .collect()
}

fn read_ip_forward(ns: &Netns) -> String {
    let out = ns.exec("cat", &["/proc/sys/net/ipv4/ip_forward"]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn sigterm_with_on_stop_remove_takes_the_dataplane_down() {
    require_root();
    let mut lab = HubLab::new(1).unwrap();
    let config = lab.config_text(&[lab.edge(1)], "on_stop = \"remove\"\n");
    lab.write_config(&config).unwrap();
    lab.start_daemon().unwrap();
    lab.edge(1).query_within("select 1", LIMIT).unwrap();

    let pid = Pid::from_raw(lab.daemon.as_ref().unwrap().pid().cast_signed());
    kill(pid, Signal::SIGTERM).unwrap();
    lab.wait_log("edgehub removed", 1, LIMIT).unwrap();

    assert!(
        lab.hub.ip(&["link", "show", "wg0"]).is_err(),
        "wg0 left behind"
    );
    assert_eq!(
        lab.hub_wireguard_pid().unwrap(),
        None,
        "wireguard-go left behind"
    );
    assert!(!lab.pins.path().exists(), "pins left behind");
}
