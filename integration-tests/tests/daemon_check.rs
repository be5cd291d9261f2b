//! `edgehub check`: a valid file passes; each kind of bad field is reported by its path in
//! the file, and the exit status is 2. Nothing on the system is touched.

use std::process::Command;

use integration_tests::{
    hub_lab::{TempDir, edgehub_binary},
    require_root,
};

const PEER_KEY: &str = "6Te5F8CFP/MLig67AeahWAynECSSiqqBHUObvHl9FU8=";

fn config(key_file: &str) -> String {
    format!(
        "[interface]\nprivate_key_file = \"{key_file}\"\naddress = \"10.50.0.1/24\"\n\n\
         [[peer]]\nname = \"gru\"\npublic_key = \"{PEER_KEY}\"\nallowed_ips = [\"10.50.1.1/32\"]\n\n\
         [nat]\negress_interface = \"ens5\"\n\n\
         [[nat.service]]\nvip = \"10.50.0.1:5432\"\nbackends = [\"172.31.10.20:5432\"]\n"
    )
}

/// Runs `edgehub check` on `text`: (exit code, stdout + stderr).
fn check(dir: &TempDir, text: &str) -> (i32, String) {
    let path = dir.path().join("edgehub.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(edgehub_binary())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_names_each_kind_of_bad_field_and_exits_2() {
    require_root();
    let dir = TempDir::new("check").unwrap();
    let key = dir.path().join("private.key");
    std::fs::write(&key, "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n").unwrap();
    let good = config(key.to_str().unwrap());

    let (code, out) = check(&dir, &good);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid"), "{out}");

    let cases = [
        (
            good.replace(key.to_str().unwrap(), "/nonexistent/key"),
            "interface.private_key_file",
        ),
        (
            good.replace("10.50.0.1/24", "10.50.0.1/33"),
            "interface.address",
        ),
        (
            good.replace("address =", "mtu = 70000\naddress ="),
            "interface.mtu",
        ),
        (
            good.replace("address =", "backend = \"magic\"\naddress ="),
            "interface.backend",
        ),
        (good.replace(PEER_KEY, "not-a-key"), "peer[0].public_key"),
        (
            good.clone()
                + "[[peer]]\nname = \"iad\"\npublic_key = \"RorFz4FqnURfRQExo0ZJ3jdyZ0dDo6BqVuAXozSeyRk=\"\n\
                   allowed_ips = [\"10.50.1.0/24\"]\n",
            "peer[1].allowed_ips[0]",
        ),
        (
            good.replace(
                "egress_interface = \"ens5\"",
                "egress_interface = \"ens5\"\nport_range = \"9-1\"",
            ),
            "nat.port_range",
        ),
        (
            good.replace("vip = \"10.50.0.1:5432\"", "vip = \"10.50.1.1:5432\""),
            "nat.service[0].vip",
        ),
        (
            good.replace("172.31.10.20:5432", "db.internal:5432"),
            "nat.service[0].backends[0]",
        ),
        (good.clone() + "[api]\nlisten = \"nowhere\"\n", "api.listen"),
        (
            good.clone() + "[daemon]\non_stop = \"explode\"\n",
            "daemon.on_stop",
        ),
        (
            good.replace("[nat]", "[nat]\negress_iface = \"eth0\""),
            "egress_iface",
        ),
    ];
    for (text, field) in cases {
        let (code, out) = check(&dir, &text);
        assert_eq!(code, 2, "{field}: {out}");
        assert!(
            out.contains(field),
            "the report does not name {field}: {out}"
        );
    }
}

#[test]
fn run_refuses_early_without_privileges() {
    require_root();
    let dir = TempDir::new("unprivileged").unwrap();
    let path = dir.path().join("edgehub.toml");
    std::fs::write(&path, config("/nonexistent/key")).unwrap();

    // As nobody, with no capabilities: refused before the configuration is even read.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(edgehub_binary())
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lacks CAP_NET_ADMIN and CAP_BPF"), "{err}");
}
