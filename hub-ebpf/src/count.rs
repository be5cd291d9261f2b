//! `edgehub_count`: a tcx classifier that lets every packet through and counts it.
//!
//! It proves the build and load chain on a new machine and gives a cheap per-interface packet
//! counter. It never changes a verdict: it returns `TC_ACT_UNSPEC` (tcx "next"), so programs
//! attached after it still decide.

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC, btf_maps::PerCpuArray, macros::btf_map, macros::classifier,
    programs::TcContext,
};
use hub_common::PacketCounter;

/// One slot per CPU: packets and bytes seen by `edgehub_count`.
#[btf_map]
static PASS_COUNTER: PerCpuArray<PacketCounter, 1> = PerCpuArray::new();

#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the classifier macro hands the context over"
)]
pub fn edgehub_count(ctx: TcContext) -> i32 {
    if let Some(counter) = PASS_COUNTER.get_ptr_mut(0) {
        // SAFETY: the pointer comes from a per-CPU array lookup, is valid for this program
        // run, and no other CPU writes this CPU's slot.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += u64::from(ctx.len());
        }
    }
    TC_ACT_UNSPEC
}
