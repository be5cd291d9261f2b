//! Types shared by edgehub's eBPF programs (`hub-ebpf`) and its daemon (`hub-daemon`).
//!
//! Everything here is `no_std`, `#[repr(C)]` and plain old data: the kernel side writes these
//! values into maps, the userspace side reads them back through aya (feature `user`).
#![no_std]

pub mod checksum;
pub mod conntrack;
pub mod counter;
pub mod headers;
pub mod service;
pub mod settings;
pub mod stats;

pub use counter::PacketCounter;
