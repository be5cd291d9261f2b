//! Scratch debugging (temporary).
use std::time::Duration;
use integration_tests::{hub_lab::HubLab, require_root};

#[test]
fn scratch() {
    require_root();
    let mut lab = HubLab::new(1).unwrap();
    let config = lab.config_text(&[&lab.edges[0]], "");
    lab.write_config(&config).unwrap();
    lab.start_daemon().unwrap();
    println!("{}", lab.edge(1).query_within("select 1", Duration::from_secs(20)).unwrap());
    println!("hub: {:?}", lab.http_get_on_hub("/metrics").map(|(s, b)| (s, b.len())));
    let ss = lab.hub.exec("ss", &["-ltnp"]).unwrap();
    println!("{}", String::from_utf8_lossy(&ss.stdout));
    println!("edge: {:?}", lab.edge(1).http_get("/api/flows"));
    let ping = lab.edge(1).ns.command("ping").args(["-c1", "-W2", "10.50.0.1"]).output().unwrap();
    println!("ping {}", String::from_utf8_lossy(&ping.stdout));
    let r = lab.hub.exec("ip", &["route"]).unwrap();
    println!("{}", String::from_utf8_lossy(&r.stdout));
    let st = lab.cli(&["status"]).unwrap();
    println!("{}\n{}", st.1, st.2);
}
