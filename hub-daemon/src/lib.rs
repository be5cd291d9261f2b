//! The edgehub hub daemon as a library: the binary `edgehub` is a thin command line over it,
//! and the privileged integration tests drive it directly.

pub mod ebpf;
pub mod probe;
pub mod config;
pub mod key;
pub mod netlink;
pub mod nat;
pub mod wireguard;
pub mod privileges;
pub mod sysctl;
pub mod api;
pub mod dataplane;
pub mod metrics;
pub mod runtime;
pub mod status;
pub mod tunnel;
pub mod daemon;
pub mod teardown;
