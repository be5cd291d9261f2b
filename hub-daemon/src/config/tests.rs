//! Unit tests of parsing and validation: a good file, then one test per kind of bad field.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
    time::Duration,
};

use super::{
    Backend, Config, EgressAddress, FieldError, FileConfig, MssClamp, OnStop, validate::validate,
};

const HUB_KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const GRU_KEY: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const IAD_KEY: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

/// The original setup: hub 10.50.0.1/24, two edges, 10.50.0.1:5432 -> the database.
const GOOD: &str = r#"
[interface]
private_key_file = "/etc/edgehub/private.key"
address = "10.50.0.1/24"

[[peer]]
name = "fly-gru-1"
public_key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
allowed_ips = ["10.50.1.1/32"]

[[peer]]
name = "fly-iad-1"
public_key = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
allowed_ips = ["10.50.2.1/32"]
persistent_keepalive = 25
endpoint = "192.0.2.7:51820"

[nat]
egress_interface = "ens5"

[[nat.service]]
vip = "10.50.0.1:5432"
backends = ["172.31.10.20:5432"]
"#;

pub(super) fn sample() -> Config {
    check(GOOD).unwrap()
}

fn check(text: &str) -> Result<Config, Vec<FieldError>> {
    let file: FileConfig = toml::from_str(text).expect("parses as TOML");
    validate(&file, &|_: &Path| Ok(format!("{HUB_KEY}\n")))
}

/// The fields named in the errors of `text`.
fn bad_fields(text: &str) -> Vec<String> {
    check(text)
        .expect_err("is invalid")
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn original_setup_is_valid_with_defaults() {
    let config = check(GOOD).unwrap();

    assert_eq!(config.interface.name, "wg0");
    assert_eq!(config.interface.listen_port, 51820);
    assert_eq!(config.interface.mtu, 1420);
    assert_eq!(config.interface.backend, Backend::Auto);
    assert_eq!(config.interface.private_key.to_base64(), HUB_KEY);
    assert_eq!(config.peers.len(), 2);
    assert_eq!(config.peers[1].persistent_keepalive, Some(25));
    assert_eq!(config.peers[0].public_key.to_base64(), GRU_KEY);
    assert_eq!(config.peers[1].public_key.to_base64(), IAD_KEY);
    assert_eq!(config.nat.egress_address, EgressAddress::Auto);
    assert_eq!(
        config.nat.services[0].vip,
        SocketAddrV4::new(Ipv4Addr::new(10, 50, 0, 1), 5432)
    );
    assert_eq!(config.nat.timeouts.syn, Duration::from_mins(1));
    assert_eq!(config.nat.max_flows, 65_536);
    assert_eq!(config.nat.mss_clamp, MssClamp::Auto);
    assert_eq!(config.mss(), Some(1380));
    assert_eq!(config.on_stop, OnStop::Keep);
    assert_eq!(config.pin_dir, Path::new("/sys/fs/bpf/edgehub"));
    assert_eq!(config.peer_ranges().len(), 2);
    assert_eq!(
        config.peer_for(Ipv4Addr::new(10, 50, 2, 1)).unwrap().name,
        "fly-iad-1"
    );
}

#[test]
fn the_shipped_example_is_valid() {
    let text = include_str!("../../edgehub.example.toml");
    let config = check(text).unwrap();
    assert_eq!(
        config.peers.len(),
        10,
        "one peer per region of the original setup"
    );
}

#[test]
fn overlapping_allowed_ips_are_an_error_naming_both_peers() {
    let text = GOOD.replace("10.50.2.1/32", "10.50.1.0/24");
    let errors = check(&text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "peer[1].allowed_ips[0]");
    assert!(errors[0].problem.contains("fly-gru-1"), "{}", errors[0]);
}

#[test]
fn interface_fields() {
    let text = GOOD
        .replace("address = \"10.50.0.1/24\"", "address = \"10.50.0.0/24\"\nmtu = 100\nname = \"way-too-long-name0\"\nlisten_port = 70000\nbackend = \"magic\"");
    assert_eq!(
        bad_fields(&text),
        [
            "interface.name",
            "interface.listen_port",
            "interface.address",
            "interface.mtu",
            "interface.backend"
        ]
    );
}

#[test]
fn unreadable_or_malformed_private_key() {
    let file: FileConfig = toml::from_str(GOOD).unwrap();
    let missing = validate(&file, &|_: &Path| Err(std::io::ErrorKind::NotFound.into()));
    assert_eq!(missing.unwrap_err()[0].field, "interface.private_key_file");
    let garbage = validate(&file, &|_: &Path| Ok("hello".into())).unwrap_err();
    assert_eq!(garbage[0].field, "interface.private_key_file");
    assert!(garbage[0].problem.contains("base64"), "{}", garbage[0]);
}

#[test]
fn peer_fields() {
    let text = GOOD
        .replace(GRU_KEY, "short")
        .replace("10.50.1.1/32", "10.50.1.1/24")
        .replace("persistent_keepalive = 25", "persistent_keepalive = 0")
        .replace("192.0.2.7:51820", "hub.example.com:51820")
        .replace("fly-iad-1", "");
    assert_eq!(
        bad_fields(&text),
        [
            "peer[0].public_key",
            "peer[0].allowed_ips[0]",
            "peer[1].name",
            "peer[1].persistent_keepalive",
            "peer[1].endpoint"
        ]
    );
}

#[test]
fn duplicate_peers() {
    let text = GOOD
        .replace(IAD_KEY, GRU_KEY)
        .replace("fly-iad-1", "fly-gru-1");
    assert_eq!(bad_fields(&text), ["peer[1].name", "peer[1].public_key"]);
}

#[test]
fn nat_fields() {
    let text = GOOD.replace(
        "egress_interface = \"ens5\"",
        "egress_interface = \"\"\negress_address = \"nowhere\"\nmax_flows = 10\n\
         port_range = \"500-100\"\nmss_clamp = \"9000\"\ntimeouts = { syn = 0 }",
    );
    assert_eq!(
        bad_fields(&text),
        [
            "nat.egress_interface",
            "nat.egress_address",
            "nat.timeouts.syn",
            "nat.max_flows",
            "nat.port_range",
            "nat.mss_clamp"
        ]
    );
}

#[test]
fn service_fields() {
    let text = GOOD.replace(
        "172.31.10.20:5432",
        "10.50.1.1:5432\", \"::1:5432\", \"db:5432",
    ) + "\n[[nat.service]]\nvip = \"10.50.0.1:5432\"\nbackends = []\n";
    assert_eq!(
        bad_fields(&text),
        [
            "nat.service[0].backends[0]",
            "nat.service[0].backends[1]",
            "nat.service[0].backends[2]",
            "nat.service[1].backends",
            "nat.service[1].vip"
        ]
    );
}

#[test]
fn no_service_and_bad_api_and_daemon_fields() {
    let text = GOOD.split("[[nat.service]]").next().unwrap().to_owned()
        + "[api]\nlisten = \"everywhere\"\n[bpf]\npin_dir = \"relative\"\n\
           [daemon]\non_stop = \"explode\"\ngc_interval = 0\n";
    assert_eq!(
        bad_fields(&text),
        [
            "nat.service",
            "api.listen",
            "bpf.pin_dir",
            "daemon.on_stop",
            "daemon.gc_interval"
        ]
    );
}

#[test]
fn unknown_fields_and_wrong_types_are_parse_errors_naming_the_key() {
    let unknown = GOOD.replace("[nat]", "[nat]\negress_iface = \"eth0\"");
    let err = Config::parse(&unknown, Path::new("x.toml")).unwrap_err();
    let message = format!("{:#}", anyhow_like(&err));
    assert!(message.contains("egress_iface"), "{message}");

    let wrong_type = GOOD.replace("address = \"10.50.0.1/24\"", "address = 10");
    let err = Config::parse(&wrong_type, Path::new("x.toml")).unwrap_err();
    assert!(
        anyhow_like(&err).contains("address"),
        "{}",
        anyhow_like(&err)
    );
}

/// The error and its sources, as `edgehub check` prints them.
fn anyhow_like(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
