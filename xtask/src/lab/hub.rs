//! The hub namespace: `10.50.0.1` on wg0, forwarding `10.50.0.1:5432` to the database.
//!
//! Two ways, on the same namespace, keys and addresses, so a report can set them side by
//! side: edgehub (its daemon, its eBPF NAT, wireguard-go driven by the daemon) or the
//! original (wireguard-go configured with `wg`, iptables DNAT + MASQUERADE).

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;

use super::{
    Lab, Nat, net,
    regions::{DB_ADDR, HUB_NS, HUB_PRIVATE_ADDR, WG_PORT},
};

pub const VIP: &str = "10.50.0.1";
pub const API_PORT: u16 = 9090;
const PIN_DIR: &str = "/sys/fs/bpf/edgehub-lab";

/// A WireGuard key pair for `name`, made on first use: (private key file, public key).
pub fn key(name: &str) -> anyhow::Result<(PathBuf, String)> {
    let dir = net::state_dir().join("keys");
    fs::create_dir_all(&dir)?;
    let private = dir.join(format!("{name}.key"));
    if !private.exists() {
        let out = Command::new("wg")
            .arg("genkey")
            .output()
            .context("wg genkey")?;
        fs::write(&private, &out.stdout)?;
    }
    let mut pubkey = Command::new("wg");
    pubkey.arg("pubkey").stdin(fs::File::open(&private)?);
    let out = pubkey.output().context("wg pubkey")?;
    Ok((
        private,
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

pub fn start(lab: &Lab, nat: Nat) -> anyhow::Result<()> {
    match nat {
        Nat::Ebpf => start_edgehub(lab),
        Nat::Iptables => start_original(lab),
    }
}

pub fn stop(lab: &Lab) {
    match lab.nat {
        Nat::Ebpf => {
            net::stop("edgehub");
            let config = config_path();
            if config.exists() {
                let _ = net::quiet(&mut net::in_ns(
                    HUB_NS,
                    &format!(
                        "{} down --config {}",
                        lab.bin.join("edgehub").display(),
                        config.display()
                    ),
                ));
            }
        }
        Nat::Iptables => {
            let _ = net::quiet(
                Command::new("ip").args(["netns", "exec", HUB_NS, "iptables", "-t", "nat", "-F"]),
            );
            net::stop("hub-wg");
        }
    }
    remove_pins();
}

/// Whether the lab's bpffs pins exist.
pub fn pins_exist() -> bool {
    Path::new(PIN_DIR).exists()
}

/// Removes the lab's bpffs pins, whatever state the daemon left.
pub fn remove_pins() {
    let _ = fs::remove_dir_all(PIN_DIR);
}

fn config_path() -> PathBuf {
    net::state_dir().join("edgehub.toml")
}

/// edgehub's config for the lab: the original hub's wg0.conf and iptables rules as one file.
fn edgehub_config(lab: &Lab) -> anyhow::Result<String> {
    let (private, _) = key("hub")?;
    let mut text = format!(
        "[interface]\nname = \"wg0\"\nprivate_key_file = \"{}\"\nlisten_port = {WG_PORT}\n\
         address = \"{VIP}/24\"\nmtu = 1420\nbackend = \"userspace\"\n\n",
        private.display()
    );
    for region in &lab.regions {
        let (_, public) = key(&region.code)?;
        let _ = write!(
            text,
            "[[peer]]\nname = \"{}\"\npublic_key = \"{public}\"\nallowed_ips = [\"{}/32\"]\n\n",
            region.code, region.wg_address
        );
    }
    let _ = write!(
        text,
        "[nat]\negress_interface = \"ens5\"\negress_address = \"{HUB_PRIVATE_ADDR}\"\n\n\
         [[nat.service]]\nvip = \"{VIP}:5432\"\nbackends = [\"{DB_ADDR}:5432\"]\n\n\
         [api]\nlisten = \"{VIP}:{API_PORT}\"\n\n[bpf]\npin_dir = \"{PIN_DIR}\"\n"
    );
    Ok(text)
}

fn start_edgehub(lab: &Lab) -> anyhow::Result<()> {
    fs::write(config_path(), edgehub_config(lab)?)?;
    let sock = net::wg_dir(HUB_NS)?.join("wg0.sock");
    let edgehub = lab.bin.join("edgehub");
    let mut cmd = net::in_ns(
        HUB_NS,
        &format!(
            "exec {} run --config {}",
            edgehub.display(),
            config_path().display()
        ),
    );
    cmd.env("RUST_LOG", "info");
    net::spawn("edgehub", cmd)?;
    net::wait_for(
        "edgehub's wg0 and NAT",
        Some("edgehub"),
        Duration::from_secs(30),
        || sock.exists() && Path::new(PIN_DIR).exists(),
    )
}

fn start_original(lab: &Lab) -> anyhow::Result<()> {
    let sock = net::wg_dir(HUB_NS)?.join("wg0.sock");
    net::spawn("hub-wg", net::in_ns(HUB_NS, "exec wireguard-go -f wg0"))?;
    net::wait_for(
        "wireguard-go on the hub",
        Some("hub-wg"),
        Duration::from_secs(10),
        || sock.exists(),
    )?;
    let (private, _) = key("hub")?;
    let mut set = format!(
        "wg set wg0 private-key {} listen-port {WG_PORT}",
        private.display()
    );
    for region in &lab.regions {
        let (_, public) = key(&region.code)?;
        let _ = write!(set, " peer {public} allowed-ips {}/32", region.wg_address);
    }
    net::quiet(&mut net::in_ns(HUB_NS, &set))?;
    net::ip(&[
        "-n",
        HUB_NS,
        "addr",
        "add",
        &format!("{VIP}/24"),
        "dev",
        "wg0",
    ])?;
    net::ip(&["-n", HUB_NS, "link", "set", "wg0", "mtu", "1420", "up"])?;
    net::ip(&["-n", HUB_NS, "route", "add", "10.50.0.0/16", "dev", "wg0"])?;
    iptables_nat("5432")
}

/// The original hub's NAT: forwarding on, iptables DNAT of `VIP:<ports>` to the database and
/// MASQUERADE towards it. The benchmarks use it too, with more ports.
pub fn iptables_nat(ports: &str) -> anyhow::Result<()> {
    let in_hub = |args: &[&str]| {
        net::quiet(
            Command::new("ip")
                .args(["netns", "exec", HUB_NS])
                .args(args),
        )
    };
    in_hub(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
    in_hub(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-d",
        VIP,
        "-p",
        "tcp",
        "-m",
        "multiport",
        "--dports",
        ports,
        "-j",
        "DNAT",
        "--to-destination",
        DB_ADDR,
    ])?;
    in_hub(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-d",
        DB_ADDR,
        "-o",
        "ens5",
        "-j",
        "MASQUERADE",
    ])
}
