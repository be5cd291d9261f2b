//! Three namespaces around the NAT: `edge` (a peer), `hub` (the NAT) and `db` (the
//! database side, with no route back to the peers, so only SNAT'd traffic gets answers).
//!
//! The tunnel between edge and hub is either a plain veth (L2) or wireguard-go over a veth
//! underlay (L3 tun). Everything goes with the guards: namespaces, processes, pins.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use hub_daemon::nat::{Nat, NatConfig, Service};

pub use crate::wireguard::wait_for;
use crate::{
    ChildGuard, Netns,
    bpffs::PinDir,
    netns::run,
    veth_pair,
    wireguard::{TempDir, genkey, pubkey},
};

/// The VIP peers connect to.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 10);
/// The hub's address towards the database: the SNAT source.
pub const HUB_EGRESS: Ipv4Addr = Ipv4Addr::new(10, 90, 2, 1);
/// The database's address.
pub const DB_ADDR: Ipv4Addr = Ipv4Addr::new(10, 90, 2, 2);
/// The peer's address as the hub sees it (veth: the edge's veth; wireguard: its tunnel IP).
pub const PEER_L2: Ipv4Addr = Ipv4Addr::new(10, 90, 1, 2);
pub const PEER_WG: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 2);

/// Interface names inside the namespaces.
pub const HUB_TUNNEL_VETH: &str = "eh-ht";
pub const HUB_EGRESS_IF: &str = "eh-hd";
pub const WG_IF: &str = "wg0";

/// How edge and hub are joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tunnel {
    Veth,
    WireGuard,
}

/// The namespaces, the wireguard-go processes if any, and the NAT's pin directory.
pub struct NatLab {
    pub tunnel: Tunnel,
    // Processes first: they end before their namespaces are deleted.
    wireguard_go: Vec<ChildGuard>,
    wg_dirs: Vec<TempDir>,
    pub edge: Netns,
    pub hub: Netns,
    pub db: Netns,
    pub pins: PinDir,
}

impl NatLab {
    pub fn new(tunnel: Tunnel) -> anyhow::Result<Self> {
        let edge = Netns::new("edge")?;
        let hub = Netns::new("hub")?;
        let db = Netns::new("db")?;
        veth_pair(
            &hub,
            HUB_EGRESS_IF,
            "10.90.2.1/24",
            &db,
            "eh-db",
            "10.90.2.2/24",
        )?;
        let mut lab = Self {
            tunnel,
            wireguard_go: Vec::new(),
            wg_dirs: Vec::new(),
            edge,
            hub,
            db,
            pins: PinDir::new(),
        };
        match tunnel {
            Tunnel::Veth => {
                veth_pair(
                    &lab.edge,
                    "eh-et",
                    "10.90.1.2/24",
                    &lab.hub,
                    HUB_TUNNEL_VETH,
                    "10.90.1.1/24",
                )?;
                lab.edge
                    .ip(&["route", "add", "10.99.0.0/24", "via", "10.90.1.1"])?;
            }
            Tunnel::WireGuard => lab.wireguard()?,
        }
        Ok(lab)
    }

    /// The hub's tunnel interface.
    pub fn tunnel_iface(&self) -> &'static str {
        match self.tunnel {
            Tunnel::Veth => HUB_TUNNEL_VETH,
            Tunnel::WireGuard => WG_IF,
        }
    }

    /// The peer's address as the hub sees it.
    pub fn peer_addr(&self) -> Ipv4Addr {
        match self.tunnel {
            Tunnel::Veth => PEER_L2,
            Tunnel::WireGuard => PEER_WG,
        }
    }

    /// A NAT config for this lab: VIP:`port` -> database:`port`.
    pub fn config(&self, port: u16) -> NatConfig {
        let mut config = NatConfig::new(self.tunnel_iface(), HUB_EGRESS_IF, HUB_EGRESS);
        config.peer_ranges = vec![match self.tunnel {
            Tunnel::Veth => "10.90.1.0/24".parse().expect("valid net"),
            Tunnel::WireGuard => "10.80.0.0/24".parse().expect("valid net"),
        }];
        config.services = vec![Service {
            vip: SocketAddrV4::new(VIP, port),
            backends: vec![SocketAddrV4::new(DB_ADDR, port)],
        }];
        self.pins.path().clone_into(&mut config.pin_dir);
        config
    }

    /// Starts the NAT inside the hub namespace.
    pub fn start_nat(&self, config: &NatConfig) -> anyhow::Result<Nat> {
        let _inside = self.hub.enter()?;
        Ok(Nat::start(config)?)
    }

    /// Runs `f` with the calling thread inside `ns`.
    pub fn within<T>(ns: &Netns, f: impl FnOnce() -> T) -> anyhow::Result<T> {
        let _inside = ns.enter()?;
        Ok(f())
    }

    fn wireguard(&mut self) -> anyhow::Result<()> {
        veth_pair(
            &self.edge,
            "eh-eu",
            "192.168.50.2/24",
            &self.hub,
            "eh-hu",
            "192.168.50.1/24",
        )?;
        let edge_key = genkey()?;
        let hub_key = genkey()?;
        let edge_pub = pubkey(&edge_key)?;
        let hub_pub = pubkey(&hub_key)?;

        for (ns, tag) in [(&self.edge, "edge"), (&self.hub, "hub")] {
            let dir = TempDir::new(tag)?;
            let script = format!(
                "mount --bind {} /run/wireguard && exec wireguard-go -f {WG_IF}",
                dir.0.display()
            );
            let child = ChildGuard::spawn(
                ns.command("sh")
                    .args(["-c", &script])
                    .env("WG_PROCESS_FOREGROUND", "1"),
            )?;
            self.wireguard_go.push(child);
            wait_for(
                &dir.0.join(format!("{WG_IF}.sock")),
                Duration::from_secs(10),
            )?;
            self.wg_dirs.push(dir);
        }
        let hub_dir = self.wg_dirs[1].0.clone();
        let edge_dir = self.wg_dirs[0].0.clone();
        let key_file = |key: &str, tag: &str| -> anyhow::Result<PathBuf> {
            let path =
                std::env::temp_dir().join(format!("edgehub-wg-{}-{tag}.key", std::process::id()));
            std::fs::write(&path, key)?;
            Ok(path)
        };
        let hub_file = key_file(&hub_key, "hub")?;
        let edge_file = key_file(&edge_key, "edge")?;
        let wg = |ns: &Netns, dir: &PathBuf, args: &str| -> anyhow::Result<()> {
            let script = format!("mount --bind {} /run/wireguard && wg {args}", dir.display());
            run(ns.command("sh").args(["-c", &script])).map(drop)
        };
        let result = (|| {
            wg(
                &self.hub,
                &hub_dir,
                &format!(
                    "set {WG_IF} listen-port 51820 private-key {} peer {edge_pub} allowed-ips 10.80.0.2/32",
                    hub_file.display()
                ),
            )?;
            wg(
                &self.edge,
                &edge_dir,
                &format!(
                    "set {WG_IF} private-key {} peer {hub_pub} endpoint 192.168.50.1:51820 allowed-ips 10.80.0.1/32,10.99.0.0/24",
                    edge_file.display()
                ),
            )
        })();
        let _ = std::fs::remove_file(&hub_file);
        let _ = std::fs::remove_file(&edge_file);
        result?;
        self.hub
            .ip(&["addr", "add", "10.80.0.1/24", "dev", WG_IF])?;
        self.hub.ip(&["link", "set", WG_IF, "up"])?;
        self.edge
            .ip(&["addr", "add", "10.80.0.2/24", "dev", WG_IF])?;
        self.edge.ip(&["link", "set", WG_IF, "up"])?;
        self.edge
            .ip(&["route", "add", "10.99.0.0/24", "dev", WG_IF])?;
        Ok(())
    }
}

/// Names of the programs attached at tcx ingress of `iface` in `ns`. (Debian 12's bpftool
/// predates tcx and lists none.)
pub fn tcx_programs(ns: &Netns, iface: &str) -> anyhow::Result<Vec<String>> {
    let _inside = ns.enter()?;
    Ok(hub_daemon::nat::attached_programs(iface)?)
}

/// `bpftool map dump` of a pinned map, as JSON text (fields named from BTF).
pub fn bpftool_dump(pin: &std::path::Path) -> anyhow::Result<String> {
    let out = run(Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(pin))?;
    Ok(String::from_utf8(out.stdout)?)
}
