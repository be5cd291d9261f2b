//! The edgehub hub daemon as a library: the binary `edgehub` is a thin command line over it,
//! and the privileged integration tests drive it directly.

pub mod api;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod ebpf;
pub mod key;
pub mod metrics;
pub mod nat;
pub mod netlink;
pub mod privileges;
pub mod probe;
pub mod process;
pub mod runtime;
pub mod status;
pub mod sysctl;
pub mod teardown;
pub mod tunnel;
pub mod wireguard;
