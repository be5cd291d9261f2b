//! MSS clamping: lowers the MSS option of SYN and SYN-ACK segments to what fits the tunnel.

use aya_ebpf::programs::TcContext;
use hub_common::headers::{TCP_LEN, offset, tcp_option};

use crate::{
    packet::Segment,
    stats::{Reason, count},
};

/// Most options walked before giving up on finding the MSS. SYNs carry at most five or so
/// (MSS, SACK-permitted, timestamps, window scale, NOPs), MSS almost always first; a bound of
/// 40 (one byte each) would only make the verifier's work five times longer.
const MAX_OPTIONS: usize = 8;

/// Lowers the MSS option of `seg` to `mss` if it is larger.
#[inline(always)]
pub fn clamp(ctx: &TcContext, seg: &Segment, mss: u16) -> Result<(), Reason> {
    let end = seg.l4 + usize::from(seg.tcp.doff_res >> 4) * 4;
    let mut at = seg.l4 + TCP_LEN;
    for _ in 0..MAX_OPTIONS {
        if at >= end {
            return Ok(());
        }
        let kind: u8 = ctx.load(at).map_err(|_| Reason::Malformed)?;
        match kind {
            tcp_option::END => return Ok(()),
            tcp_option::NOP => at += 1,
            _ => {
                let len: u8 = ctx.load(at + 1).map_err(|_| Reason::Malformed)?;
                if len < 2 {
                    return Err(Reason::Malformed);
                }
                if kind == tcp_option::MSS && len == tcp_option::MSS_LEN {
                    return lower(ctx, seg, at + 2, mss);
                }
                at += usize::from(len);
            }
        }
    }
    Ok(())
}

#[inline(always)]
fn lower(ctx: &TcContext, seg: &Segment, at: usize, mss: u16) -> Result<(), Reason> {
    let old: u16 = ctx.load(at).map_err(|_| Reason::Malformed)?;
    if u16::from_be(old) <= mss {
        return Ok(());
    }
    let new = mss.to_be();
    // A word at an odd offset from the TCP header adds to the sum byte-swapped.
    let (old_word, new_word) = if (at - seg.l4).is_multiple_of(2) {
        (old, new)
    } else {
        (old.swap_bytes(), new.swap_bytes())
    };
    ctx.l4_csum_replace(
        seg.l4 + offset::TCP_CHECK,
        u64::from(old_word),
        u64::from(new_word),
        2,
    )
    .map_err(|_| Reason::Error)?;
    ctx.store(at, &new, 0).map_err(|_| Reason::Error)?;
    count(|c| c.mss_clamped += 1);
    Ok(())
}
