//! Privileged test harness: network namespaces, veths and processes that clean up after
//! themselves, even when a test fails.
//!
//! Every test in this crate needs root (`CAP_NET_ADMIN`, `CAP_BPF`, `CAP_SYS_ADMIN`). A test never
//! skips: without root it fails, saying so, because a skipped privileged test in CI would
//! hide a broken dataplane.

pub mod binaries;
pub mod bpffs;
pub mod crafted;
pub mod hub_edge;
pub mod hub_lab;
pub mod nat_lab;
pub mod netns;
pub mod netns_postgres;
pub mod postgres;
pub mod process;
pub mod tcp_echo;
pub mod wireguard;

pub use netns::{Netns, NetnsEnter, veth_pair};
pub use process::ChildGuard;

/// Fails the calling test unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root (network namespaces, eBPF): run it with `cargo xtask test`"
    );
}
