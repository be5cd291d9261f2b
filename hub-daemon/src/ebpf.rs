//! The eBPF object embedded at build time, and loading it into the kernel.
//!
//! Requires Linux 6.6 or later (tcx links) with BTF, and `CAP_BPF` + `CAP_NET_ADMIN`.

use aya::{Ebpf, EbpfLoader};

/// Why the programs cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this edgehub binary was built without its eBPF programs; \
         run `cargo xtask setup` and `cargo xtask build-ebpf --release`, then rebuild"
    )]
    NotEmbedded,
    #[error("loading the eBPF object into the kernel")]
    Load(#[source] aya::EbpfError),
}

/// The object built from `hub-ebpf`, when the build embedded one.
#[cfg(not(edgehub_no_ebpf))]
pub fn object() -> Option<&'static [u8]> {
    Some(aya::include_bytes_aligned!(concat!(
        env!("OUT_DIR"),
        "/hub-ebpf"
    )))
}

/// The object built from `hub-ebpf`, when the build embedded one.
#[cfg(edgehub_no_ebpf)]
pub fn object() -> Option<&'static [u8]> {
    None
}

/// Loads the embedded object: its maps are created, its programs are not yet loaded.
pub fn load(loader: &mut EbpfLoader<'_>) -> Result<Ebpf, LoadError> {
    let object = object().ok_or(LoadError::NotEmbedded)?;
    loader.load(object).map_err(LoadError::Load)
}
