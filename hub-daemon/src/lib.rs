//! The edgehub hub daemon as a library: the binary `edgehub` is a thin command line over it,
//! and the privileged integration tests drive it directly.

pub mod ebpf;
pub mod probe;
