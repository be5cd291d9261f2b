//! The TOML file as written: loose types (strings, wide integers), so that validation can
//! name every wrong field at once instead of stopping at the first one serde meets.

use serde::Deserialize;

/// `/etc/edgehub/edgehub.toml`, section by section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub interface: InterfaceFile,
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerFile>,
    pub nat: NatFile,
    #[serde(default)]
    pub api: ApiFile,
    #[serde(default)]
    pub bpf: BpfFile,
    #[serde(default)]
    pub daemon: DaemonFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceFile {
    #[serde(default = "default_name")]
    pub name: String,
    pub private_key_file: String,
    #[serde(default = "default_listen_port")]
    pub listen_port: i64,
    pub address: String,
    #[serde(default = "default_mtu")]
    pub mtu: i64,
    #[serde(default = "default_backend")]
    pub backend: String,
    #[serde(default = "default_userspace_program")]
    pub userspace_program: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    pub name: String,
    pub public_key: String,
    pub allowed_ips: Vec<String>,
    pub persistent_keepalive: Option<i64>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatFile {
    pub egress_interface: String,
    #[serde(default = "default_auto")]
    pub egress_address: String,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceFile>,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    #[serde(default = "default_max_flows")]
    pub max_flows: i64,
    #[serde(default = "default_port_range")]
    pub port_range: String,
    #[serde(default = "default_auto")]
    pub mss_clamp: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub vip: String,
    pub backends: Vec<String>,
}

/// Seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    #[serde(default = "default_syn")]
    pub syn: i64,
    #[serde(default = "default_established")]
    pub established: i64,
    #[serde(default = "default_closing")]
    pub closing: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BpfFile {
    #[serde(default = "default_pin_dir")]
    pub pin_dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    #[serde(default = "default_on_stop")]
    pub on_stop: String,
    #[serde(default = "default_gc_interval")]
    pub gc_interval: i64,
}

impl Default for TimeoutsFile {
    fn default() -> Self {
        Self {
            syn: default_syn(),
            established: default_established(),
            closing: default_closing(),
        }
    }
}

impl Default for BpfFile {
    fn default() -> Self {
        Self {
            pin_dir: default_pin_dir(),
        }
    }
}

impl Default for DaemonFile {
    fn default() -> Self {
        Self {
            on_stop: default_on_stop(),
            gc_interval: default_gc_interval(),
        }
    }
}

fn default_name() -> String {
    "wg0".into()
}
fn default_listen_port() -> i64 {
    51820
}
fn default_mtu() -> i64 {
    1420
}
fn default_backend() -> String {
    "auto".into()
}
fn default_userspace_program() -> String {
    "wireguard-go".into()
}
fn default_auto() -> String {
    "auto".into()
}
fn default_max_flows() -> i64 {
    65_536
}
fn default_port_range() -> String {
    "10000-32767".into()
}
fn default_syn() -> i64 {
    60
}
fn default_established() -> i64 {
    7_200
}
fn default_closing() -> i64 {
    10
}
fn default_pin_dir() -> String {
    "/sys/fs/bpf/edgehub".into()
}
fn default_on_stop() -> String {
    "keep".into()
}
fn default_gc_interval() -> i64 {
    5
}
