//! The edge regions: their namespaces, WAN paths, WireGuard tunnels and agents.

use std::{fs, path::Path, process::Command, time::Duration};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::{Lab, Nat, hub, net};

/// One region of `agent/regions.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Region {
    pub code: String,
    pub flag: String,
    pub city: String,
    pub wg_address: String,
    pub rtt_ms: f64,
    pub fibre_floor_ms: f64,
    pub seed_read_ms: f64,
    pub seed_insert_ms: f64,
}

#[derive(Deserialize)]
struct RegionsFile {
    region: Vec<Region>,
}

/// Hub-side namespaces.
pub const DB_NS: &str = "ehlab-db";
pub const HUB_NS: &str = "ehlab-hub";
pub const NET_NS: &str = "ehlab-net";

/// Addresses: the database's private network (like the VPC of the original) and the
/// "internet" (198.18.0.0/15, set aside for benchmarks).
pub const DB_ADDR: &str = "172.31.0.2";
pub const HUB_PRIVATE_ADDR: &str = "172.31.0.1";
pub const HUB_PUBLIC_ADDR: &str = "198.18.0.2";
pub const RELAY_HUB_SIDE: &str = "198.18.0.1";
pub const WG_PORT: u16 = 51820;
pub const AGENT_PORT: u16 = 8080;
pub const DB_PASSWORD: &str = "lab-only-password";

pub fn ns(region: &Region) -> String {
    format!("{}{}", net::NS_PREFIX, region.code)
}

/// The region's side of the internet: 198.18.<n>.2, the relay's 198.18.<n>.1.
fn internet(index: usize, host: u8) -> String {
    format!("198.18.{}.{host}", index + 1)
}

/// Reads the regions file and keeps the asked-for codes (all when none are asked).
pub fn select(workspace: &Path, codes: &[String]) -> anyhow::Result<Vec<Region>> {
    let path = workspace.join("agent/regions.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let all = toml::from_str::<RegionsFile>(&text)?.region;
    if codes.is_empty() {
        return Ok(all);
    }
    codes
        .iter()
        .map(|code| {
            all.iter()
                .find(|r| &r.code == code)
                .cloned()
                .with_context(|| {
                    format!(
                        "unknown region {code}; known: {}",
                        all.iter()
                            .map(|r| r.code.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                })
        })
        .collect()
}

pub fn create_namespaces(lab: &Lab) -> anyhow::Result<()> {
    for ns in [DB_NS, HUB_NS, NET_NS] {
        net::add_ns(ns)?;
    }
    net::veth(
        (HUB_NS, "ens5", &format!("{HUB_PRIVATE_ADDR}/24")),
        (DB_NS, "eth0", &format!("{DB_ADDR}/24")),
    )?;
    net::veth(
        (HUB_NS, "inet0", &format!("{HUB_PUBLIC_ADDR}/24")),
        (NET_NS, "n-hub", &format!("{RELAY_HUB_SIDE}/24")),
    )?;
    for (i, region) in lab.regions.iter().enumerate() {
        let ns = ns(region);
        net::add_ns(&ns)?;
        let link = format!("n-{}", region.code);
        net::veth(
            (&ns, "inet0", &format!("{}/24", internet(i, 2))),
            (NET_NS, &link, &format!("{}/24", internet(i, 1))),
        )?;
    }
    Ok(())
}

/// One relay process in the `net` namespace carries every region's WireGuard traffic, each
/// path with the region's round-trip time.
pub fn start_relays(lab: &Lab) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", NET_NS])
        .arg(exe)
        .args(["lab", "relay"]);
    for (i, region) in lab.regions.iter().enumerate() {
        cmd.arg(format!(
            "listen={}:{WG_PORT},bind={RELAY_HUB_SIDE}:{},hub={HUB_PUBLIC_ADDR}:{WG_PORT},rtt_ms={},jitter_ms={},loss={}",
            internet(i, 1),
            52_000 + i,
            region.rtt_ms * lab.options.rtt_scale,
            lab.options.jitter_ms,
            lab.options.loss,
        ));
    }
    net::spawn("relay", cmd)?;
    let log = net::state_dir().join("logs/relay.log");
    net::wait_for("the relays", Some("relay"), Duration::from_secs(10), || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("paths up"))
    })
}

/// wireguard-go and edge-agent in every region, as the original entrypoint did.
pub fn start_edges(lab: &Lab) -> anyhow::Result<()> {
    let hub_public = hub::key("hub")?.1;
    for (i, region) in lab.regions.iter().enumerate() {
        let ns = ns(region);
        let code = &region.code;
        let sock = net::wg_dir(&ns)?.join("wg0.sock");
        net::spawn(
            &format!("wg-{code}"),
            net::in_ns(&ns, "exec wireguard-go -f wg0"),
        )?;
        net::wait_for(
            &format!("wireguard-go in {ns}"),
            Some(&format!("wg-{code}")),
            Duration::from_secs(10),
            || sock.exists(),
        )?;

        let (private, _) = hub::key(code)?;
        net::quiet(&mut net::in_ns(
            &ns,
            &format!(
                "wg set wg0 private-key {} peer {hub_public} endpoint {}:{WG_PORT} allowed-ips 10.50.0.0/16 persistent-keepalive 25",
                private.display(),
                internet(i, 1),
            ),
        ))?;
        net::ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/32", region.wg_address),
            "dev",
            "wg0",
        ])?;
        net::ip(&["-n", &ns, "link", "set", "wg0", "mtu", "1420", "up"])?;
        net::ip(&["-n", &ns, "route", "add", "10.50.0.0/16", "dev", "wg0"])?;

        let mut agent = Command::new("ip");
        agent
            .args(["netns", "exec", &ns])
            .arg(lab.bin.join("edge-agent"))
            .env("FLY_REGION", code)
            .env("FLY_ALLOC_ID", format!("lab-{code}"))
            .env("PORT", AGENT_PORT.to_string())
            .env("DB_HOST", hub::VIP)
            .env("DB_USER", "contacts_user")
            .env("DB_PASSWORD", DB_PASSWORD)
            .env("DB_NAME", "contacts");
        if lab.nat == Nat::Ebpf {
            agent.env(
                "EDGE_HUB_API",
                format!("http://{}:{}", hub::VIP, hub::API_PORT),
            );
        }
        net::spawn(&format!("agent-{code}"), agent)?;
    }
    Ok(())
}

/// Waits until every agent, asked from the hub through its tunnel, reports the database
/// connected through the hub's NAT.
///
/// After the hub was replaced, an idle edge keeps using its old WireGuard session, which the
/// new hub cannot decrypt, and only the edge can start a new one. A datagram from the edge
/// to the hub is data WireGuard must deliver: unanswered, it makes the edge hand-shake again
/// within about 15 s, so every poll also sends one.
pub fn wait_for_agents(lab: &Lab) -> anyhow::Result<()> {
    for region in &lab.regions {
        let url = format!("http://{}:{AGENT_PORT}/api/rds/health", region.wg_address);
        let poke = format!("echo > /dev/udp/{}/9", hub::VIP);
        let mut last = String::new();
        let waited = net::wait_for(
            &format!("agent {}", region.code),
            Some(&format!("agent-{}", region.code)),
            Duration::from_secs(90),
            || {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &ns(region), "bash", "-c", &poke])
                    .output();
                last = curl_in_hub(&url).unwrap_or_default();
                last.contains("\"connected\"")
            },
        );
        if let Err(e) = waited {
            bail!("{e:#}\nlast health answer: {last}");
        }
    }
    Ok(())
}

/// GET from inside the hub namespace, as the original's scripts did from EC2.
pub fn curl_in_hub(url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            HUB_NS,
            "curl",
            "-s",
            "--max-time",
            "3",
            url,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
