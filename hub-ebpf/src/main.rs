//! edgehub's kernel programs.
//!
//! Built for `bpfel-unknown-none` by `cargo xtask build-ebpf` (or by `hub-daemon`'s build
//! script), embedded into the `edgehub` binary and loaded by its `ebpf` module.
//! Requires a kernel with BTF and tcx (Linux 6.6 or later).
#![no_std]
#![no_main]
// Every helper is inlined into its program: BPF-to-BPF calls would each take a stack frame
// (512 bytes for all together) and hide packet bounds from the verifier across the call.
#![expect(
    clippy::inline_always,
    reason = "BPF programs are flattened on purpose"
)]

mod conntrack;
mod count;
mod icmp;
mod mss;
mod nat;
mod packet;
mod rewrite;
mod stats;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any program that could reach this: there is no way to panic in BPF.
    loop {}
}
