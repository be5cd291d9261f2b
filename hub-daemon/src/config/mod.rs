//! edgehub's configuration: one TOML file, read and validated into typed values.
//!
//! Validation collects every wrong field, each named by its path in the file
//! (`peer[2].allowed_ips[0]`) with what is wrong, and touches nothing on the system except
//! reading the private key file.

mod file;
mod validate;

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    ops::RangeInclusive,
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::Ipv4Net;

pub use file::FileConfig;

use crate::key::Key;

/// Where the daemon looks for its configuration unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/edgehub/edgehub.toml";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub interface: Interface,
    pub peers: Vec<Peer>,
    pub nat: Nat,
    /// Where `/metrics` and `/api/flows` listen; `None` turns the HTTP server off.
    pub api_listen: Option<SocketAddr>,
    /// bpffs directory holding the pinned maps and links.
    pub pin_dir: PathBuf,
    pub on_stop: OnStop,
    pub gc_interval: Duration,
}

/// The WireGuard interface of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub private_key: Key,
    pub listen_port: u16,
    /// The hub's tunnel address and the tunnel subnet (`10.50.0.1/24`).
    pub address: Ipv4Net,
    pub mtu: u16,
    pub backend: Backend,
    /// The userspace implementation to start when the kernel has no WireGuard.
    pub userspace_program: PathBuf,
}

/// Which WireGuard implementation carries the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kernel,
    Userspace,
    /// The kernel's when it has WireGuard, else userspace.
    Auto,
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub public_key: Key,
    pub allowed_ips: Vec<Ipv4Net>,
    pub persistent_keepalive: Option<u16>,
    pub endpoint: Option<SocketAddr>,
}

/// The NAT from VIPs to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat {
    pub egress_interface: String,
    pub egress_address: EgressAddress,
    pub services: Vec<Service>,
    pub timeouts: Timeouts,
    pub max_flows: u32,
    pub port_range: RangeInclusive<u16>,
    pub mss_clamp: MssClamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressAddress {
    /// The first IPv4 address of the egress interface, looked up at start.
    Auto,
    Fixed(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub vip: SocketAddrV4,
    pub backends: Vec<SocketAddrV4>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub syn: Duration,
    pub established: Duration,
    pub closing: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MssClamp {
    /// Tunnel MTU minus 40 (IPv4 and TCP headers).
    Auto,
    Off,
    Fixed(u16),
}

/// What SIGTERM does to the dataplane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Leave wg0, the programs and the pins in place for the next start to adopt.
    Keep,
    /// Remove everything, like `edgehub down`.
    Remove,
}

/// One wrong field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Its path in the file, `nat.service[0].vip`.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid edgehub configuration")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: {}", list(.errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<FieldError>,
    },
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// Reads and validates `path` (and the private key file it names).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates the text of a configuration file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        validate::validate(&file, &|key_path| std::fs::read_to_string(key_path)).map_err(|errors| {
            ConfigError::Invalid {
                path: path.to_owned(),
                errors,
            }
        })
    }

    /// Every peer's allowed IPs: the sources the NAT accepts from the tunnel.
    pub fn peer_ranges(&self) -> Vec<Ipv4Net> {
        self.peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().copied())
            .collect()
    }

    /// The MSS the NAT clamps SYNs to, if any.
    pub fn mss(&self) -> Option<u16> {
        match self.nat.mss_clamp {
            MssClamp::Auto => Some(self.interface.mtu - 40),
            MssClamp::Off => None,
            MssClamp::Fixed(mss) => Some(mss),
        }
    }

    /// The peer whose allowed IPs contain `addr`.
    pub fn peer_for(&self, addr: Ipv4Addr) -> Option<&Peer> {
        self.peers
            .iter()
            .find(|p| p.allowed_ips.iter().any(|net| net.contains(&addr)))
    }
}

/// The original setup with two edges, for other modules' unit tests.
#[cfg(test)]
pub(crate) fn sample() -> Config {
    tests::sample()
}

#[cfg(test)]
mod tests;
