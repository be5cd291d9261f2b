//! The userspace side of the eBPF NAT: loading and attaching `eh_nat_fwd` (tunnel ingress)
//! and `eh_nat_reply` (egress ingress), filling their maps from a [`NatConfig`], expiring
//! flows, and reading counters, flows and histograms back from the pinned maps.
//!
//! Requires Linux 6.6 or later (tcx links) with BTF, bpffs (mounted at the pin directory's
//! parent if it is not), and `CAP_BPF` + `CAP_NET_ADMIN`. Everything happens in the calling thread's network namespace.

mod gc;
mod iface;
mod maps;
mod pins;
mod views;

use std::{
    fs,
    net::{Ipv4Addr, SocketAddrV4},
    ops::RangeInclusive,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{Ebpf, EbpfLoader, programs::SchedClassifier};
use ipnet::Ipv4Net;

pub use views::{
    Counters, FlowView, ServiceHistograms, Tuple, read_counters, read_flows, read_histograms,
};

use crate::ebpf::{self, LoadError};

/// A VIP and the backends behind it (TCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub vip: SocketAddrV4,
    /// 1 to 8; new flows are spread by a hash of the peer's address and port.
    pub backends: Vec<SocketAddrV4>,
}

/// How long a flow may stay idle in each TCP state before `collect_garbage` removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub syn: Duration,
    pub established: Duration,
    pub closing: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            syn: Duration::from_mins(1),
            established: Duration::from_hours(2),
            closing: Duration::from_secs(10),
        }
    }
}

/// What the NAT translates, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// Where peers come from, e.g. `wg0` (L3) or a veth (L2): detected at attach time.
    pub tunnel_iface: String,
    /// Towards the database.
    pub egress_iface: String,
    /// SNAT source: the hub's address on `egress_iface`.
    pub egress_addr: Ipv4Addr,
    /// Sources allowed to use the VIPs; others are dropped and counted.
    pub peer_ranges: Vec<Ipv4Net>,
    pub services: Vec<Service>,
    pub timeouts: Timeouts,
    /// Flows the conntrack map holds (two entries each); applied when the map is created.
    pub max_flows: u32,
    /// SNAT source ports.
    pub port_range: RangeInclusive<u16>,
    /// MSS clamp (tunnel MTU - 40); `None` leaves SYNs alone.
    pub mss: Option<u16>,
    /// Where maps and links are pinned on bpffs.
    pub pin_dir: PathBuf,
}

impl NatConfig {
    /// Defaults for everything but the interfaces, addresses and services.
    pub fn new(tunnel_iface: &str, egress_iface: &str, egress_addr: Ipv4Addr) -> Self {
        Self {
            tunnel_iface: tunnel_iface.to_owned(),
            egress_iface: egress_iface.to_owned(),
            egress_addr,
            peer_ranges: Vec::new(),
            services: Vec::new(),
            timeouts: Timeouts::default(),
            max_flows: 65_536,
            // Below Linux's default ephemeral range (32768-60999): the hub's own connections
            // to a backend then never share a port with a translated flow.
            port_range: 10_000..=32_767,
            mss: None,
            pin_dir: PathBuf::from("/sys/fs/bpf/edgehub"),
        }
    }
}

/// Why the NAT could not be set up, changed or read.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error(transparent)]
    Load(Box<LoadError>),
    #[error("invalid NAT configuration: {0}")]
    Config(&'static str),
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
    #[error("interface {iface}")]
    Iface {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("loading or attaching {program} to {iface}")]
    Attach {
        program: String,
        iface: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("{program} is already attached to {iface} without a pinned link; detach it first")]
    AlreadyAttached { program: String, iface: String },
    #[error(
        "{map} pinned at {path} has another layout (an older edgehub?); \
         remove the pins (`Nat::remove`) and start again"
    )]
    IncompatiblePins { map: &'static str, path: PathBuf },
    #[error("tcx link pinned at {path}")]
    Link {
        path: PathBuf,
        #[source]
        source: Box<aya::programs::links::LinkError>,
    },
    #[error("pinning at {path}")]
    Pin {
        path: PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },
    #[error("map {map}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    #[error("{what} at {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<LoadError> for NatError {
    fn from(e: LoadError) -> Self {
        Self::Load(Box::new(e))
    }
}

/// Names of the programs attached at tcx ingress of `iface` (in the calling thread's network
/// namespace), in order: `eh_nat_fwd` on the tunnel and `eh_nat_reply` on the egress
/// interface once the NAT runs.
pub fn attached_programs(iface: &str) -> Result<Vec<String>, NatError> {
    Ok(pins::attached(iface)?.into_iter().map(|p| p.name).collect())
}

/// Run statistics of a program attached at tcx ingress. The kernel counts only while
/// `kernel.bpf_stats_enabled` is 1.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProgramStats {
    /// The kernel's program id (`bpftool prog show id ...`).
    pub id: u32,
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// Run statistics of the programs attached at tcx ingress of `iface`.
pub fn attached_program_stats(iface: &str) -> Result<Vec<ProgramStats>, NatError> {
    pins::attached(iface)
}

/// The running NAT: programs loaded, attached through pinned links, maps pinned.
pub struct Nat {
    ebpf: Ebpf,
    config: NatConfig,
    evicted: u64,
}

impl Nat {
    /// Loads and attaches, or adopts the maps and tcx links pinned by a previous run so open
    /// flows survive a daemon restart. Never two attachments of the same program.
    pub fn start(config: &NatConfig) -> Result<Self, NatError> {
        validate(config)?;
        let pin_dir = &config.pin_dir;
        pins::prepare_dir(pin_dir)?;
        let adopting = pins::map_path(pin_dir, "NAT_SETTINGS").exists();
        pins::check_layouts(pin_dir)?;

        tracing::info!(pin_dir = %pin_dir.display(), adopting, "loading the NAT");
        let paths: Vec<(&'static str, PathBuf)> = pins::MAPS
            .iter()
            .map(|m| (*m, pins::map_path(pin_dir, m)))
            .collect();
        let mut loader = EbpfLoader::new();
        loader.map_max_entries("NAT_FLOWS", config.max_flows.saturating_mul(2));
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = ebpf::load(&mut loader)?;
        let mut nat = Self {
            ebpf,
            config: config.clone(),
            evicted: 0,
        };

        // Links adopted only while the interface is the one they were made for.
        let previous = maps::read_settings(nat.map("NAT_SETTINGS")?)?;
        let tunnel = iface_info(&config.tunnel_iface)?;
        let egress = iface_info(&config.egress_iface)?;
        let adopt_fwd = adopting && previous.tunnel.ifindex == tunnel.ifindex;
        let adopt_reply = adopting && previous.egress.ifindex == egress.ifindex;

        // Maps first, then the programs: a packet never meets a half-filled NAT.
        nat.write_all(tunnel, egress)?;
        nat.attach(
            pins::FORWARD_PROGRAM,
            pins::FORWARD_LINK,
            &config.tunnel_iface,
            adopt_fwd,
        )?;
        nat.attach(
            pins::REPLY_PROGRAM,
            pins::REPLY_LINK,
            &config.egress_iface,
            adopt_reply,
        )?;
        Ok(nat)
    }

    /// Applies a changed config live (services, backends, timeouts, peer ranges, MSS)
    /// without touching existing flows on unchanged backends. Flows to a backend no longer
    /// behind their VIP are removed. Interfaces, `max_flows` and `pin_dir` are fixed at start.
    pub fn apply(&mut self, config: &NatConfig) -> Result<(), NatError> {
        validate(config)?;
        let current = maps::read_settings(self.map("NAT_SETTINGS")?)?;
        let mut next = config.clone();
        next.tunnel_iface.clone_from(&self.config.tunnel_iface);
        next.egress_iface.clone_from(&self.config.egress_iface);
        next.pin_dir.clone_from(&self.config.pin_dir);
        self.config = next.clone();
        self.write_all(current.tunnel, current.egress)?;
        let purged = maps::purge_moved_flows(self.map_mut("NAT_FLOWS")?, &next)?;
        tracing::info!(purged, "NAT configuration applied");
        Ok(())
    }

    /// Re-attaches to the tunnel interface if it was recreated (new ifindex); returns
    /// whether it did.
    pub fn ensure_attached(&mut self) -> Result<bool, NatError> {
        let mut settings = maps::read_settings(self.map("NAT_SETTINGS")?)?;
        let tunnel = iface_info(&self.config.tunnel_iface)?;
        if tunnel == settings.tunnel {
            return Ok(false);
        }
        tracing::info!(
            iface = self.config.tunnel_iface,
            ifindex = tunnel.ifindex,
            "tunnel recreated; re-attaching"
        );
        settings.tunnel = tunnel;
        maps::write_settings(self.map_mut("NAT_SETTINGS")?, settings)?;
        let iface = self.config.tunnel_iface.clone();
        self.attach(pins::FORWARD_PROGRAM, pins::FORWARD_LINK, &iface, false)?;
        Ok(true)
    }

    /// Expires flows past their timeout; returns how many were removed.
    pub fn collect_garbage(&mut self) -> Result<usize, NatError> {
        let timeouts = self.config.timeouts;
        let collected = gc::collect(self.map_mut("NAT_FLOWS")?, &timeouts)?;
        self.evicted += collected.evicted as u64;
        Ok(collected.removed)
    }

    /// Flows the collector found half-evicted by the flow table's LRU (it was full), since
    /// this `Nat` started. The kernel does not report evictions; this is where they show.
    pub fn evicted_flows(&self) -> u64 {
        self.evicted
    }

    /// Detaches programs and removes every pin.
    pub fn remove(pin_dir: &Path) -> Result<(), NatError> {
        for link in [pins::FORWARD_LINK, pins::REPLY_LINK] {
            pins::detach_link(&pin_dir.join(link))?;
        }
        for map in pins::MAPS {
            pins::remove_file(&pins::map_path(pin_dir, map))?;
        }
        match fs::remove_dir(pin_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NatError::Io {
                what: "removing the pin directory",
                path: pin_dir.to_owned(),
                source: e,
            }),
            _ => {
                tracing::info!(pin_dir = %pin_dir.display(), "NAT removed");
                Ok(())
            }
        }
    }

    /// Switches how translated packets are sent on: redirected by the programs (`false`, the
    /// default and what edgehub uses) or handed back to the kernel's IP forwarding (`true`,
    /// which needs `ip_forward`, `accept_local` on the tunnel and no strict `rp_filter`).
    /// For measuring one against the other; not kept across `apply` or a restart.
    pub fn set_kernel_forwarding(&mut self, on: bool) -> Result<(), NatError> {
        let mut settings = maps::read_settings(self.map("NAT_SETTINGS")?)?;
        settings.kernel_forwarding = u8::from(on);
        maps::write_settings(self.map_mut("NAT_SETTINGS")?, settings)
    }

    /// The configuration in force.
    pub fn config(&self) -> &NatConfig {
        &self.config
    }

    fn write_all(
        &mut self,
        tunnel: hub_common::settings::IfaceInfo,
        egress: hub_common::settings::IfaceInfo,
    ) -> Result<(), NatError> {
        let config = self.config.clone();
        maps::write_peers(self.map_mut("NAT_PEERS")?, &config)?;
        maps::write_services(self.map_mut("NAT_SERVICES")?, &config)?;
        maps::write_settings(
            self.map_mut("NAT_SETTINGS")?,
            maps::settings(&config, tunnel, egress),
        )
    }

    fn attach(
        &mut self,
        program: &'static str,
        link: &str,
        iface: &str,
        adopt: bool,
    ) -> Result<(), NatError> {
        let attach_error = |source| NatError::Attach {
            program: program.to_owned(),
            iface: iface.to_owned(),
            source: Box::new(source),
        };
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(program)
            .ok_or(NatError::Missing(program))?
            .try_into()
            .map_err(attach_error)?;
        if prog.fd().is_err() {
            prog.load().map_err(attach_error)?;
        }
        pins::attach(prog, iface, &self.config.pin_dir, link, adopt)
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, NatError> {
        self.ebpf.map(name).ok_or(NatError::Missing(name))
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, NatError> {
        self.ebpf.map_mut(name).ok_or(NatError::Missing(name))
    }
}

fn iface_info(name: &str) -> Result<hub_common::settings::IfaceInfo, NatError> {
    iface::info(name).map_err(|source| NatError::Iface {
        iface: name.to_owned(),
        source,
    })
}

fn validate(config: &NatConfig) -> Result<(), NatError> {
    if config.port_range.is_empty() {
        return Err(NatError::Config("empty SNAT port range"));
    }
    if config.max_flows == 0 {
        return Err(NatError::Config("max_flows must be positive"));
    }
    if config.mss.is_some_and(|m| m < 536) {
        return Err(NatError::Config("MSS clamp below 536"));
    }
    Ok(())
}
