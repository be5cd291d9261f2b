//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624, eqn. 3).
//!
//! The kernel programs use these wherever they change bytes whose checksum they own
//! themselves (the IPv4 header, whose checksum is never offloaded). Sums covered by
//! `CHECKSUM_PARTIAL` offload (TCP) go through `bpf_l4_csum_replace` instead, which knows
//! the skb's checksum state.

/// Folds a 32-bit one's-complement sum into 16 bits.
#[must_use]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The checksum field of `data` (16-bit big-endian words, odd tail padded with zero).
///
/// Computed over data whose checksum field is zero it gives the value to store; over data
/// with a correct checksum it gives 0.
#[must_use]
pub fn compute(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([pair[0], pair[1]])));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([*last, 0])));
    }
    !fold(sum)
}

/// The checksum after one 16-bit word changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
///
/// All three values are in the same byte order (either works, the sum is byte-order
/// independent as long as it is consistent).
#[must_use]
pub const fn update16(check: u16, old: u16, new: u16) -> u16 {
    let sum = (!check as u32) + (!old as u32) + (new as u32);
    !fold(sum)
}

/// The checksum after a 32-bit field (two words, e.g. an IPv4 address) changed.
#[must_use]
pub const fn update32(check: u16, old: u32, new: u32) -> u16 {
    let check = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(check, old as u16, new as u16)
}

/// Adds the change of one 16-bit word from `old` to `new` (`~m + m'`) to a running
/// difference `acc` (start at 0). Apply the total with [`apply_diff`], or hand it to
/// `bpf_l4_csum_replace` with a zero field size, which applies it the same way.
#[must_use]
pub const fn diff16(acc: u16, old: u16, new: u16) -> u16 {
    fold(acc as u32 + (!old as u32) + (new as u32))
}

/// Adds the change of a 32-bit field (two words) to a running difference.
#[must_use]
pub const fn diff32(acc: u16, old: u32, new: u32) -> u16 {
    let acc = diff16(acc, (old >> 16) as u16, (new >> 16) as u16);
    diff16(acc, old as u16, new as u16)
}

/// The checksum after applying a difference from [`diff16`]/[`diff32`].
#[must_use]
pub const fn apply_diff(check: u16, diff: u16) -> u16 {
    !fold((!check as u32) + (diff as u32))
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use proptest::prelude::*;

    use super::{apply_diff, compute, diff16, diff32, update16, update32};

    fn with_checksum(mut data: Vec<u8>, at: usize) -> Vec<u8> {
        data[at] = 0;
        data[at + 1] = 0;
        let check = compute(&data);
        data[at..at + 2].copy_from_slice(&check.to_be_bytes());
        data
    }

    #[test]
    fn known_ipv4_header() {
        // A header from RFC 1071 style examples: checksum 0xb861.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(compute(&header), 0xb861);
    }

    proptest! {
        #[test]
        fn update16_matches_recomputation(
            words in proptest::collection::vec(any::<u16>(), 2..40),
            index in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            let data: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let data = with_checksum(data, 0);
            let check = u16::from_be_bytes([data[0], data[1]]);
            let at = 2 + 2 * index.index(words.len() - 1);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);

            let mut changed = data.clone();
            changed[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let incremental = update16(check, old, new);
            changed[0..2].copy_from_slice(&incremental.to_be_bytes());

            // A correct checksum verifies to zero (or its one's-complement twin 0xffff
            // never arises from eqn. 3 for non-zero data).
            prop_assert_eq!(compute(&changed), 0);
        }

        #[test]
        fn update32_matches_recomputation_in_wire_order(
            words in proptest::collection::vec(any::<u16>(), 4..40),
            index in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            let data: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let data = with_checksum(data, 0);
            let at = 2 + 2 * index.index(words.len() - 2);
            // As the kernel side does it: fields and checksum read raw (native = little
            // endian) from packet memory.
            let check = u16::from_ne_bytes([data[0], data[1]]);
            let old = u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);

            let mut changed = data.clone();
            changed[at..at + 4].copy_from_slice(&new.to_ne_bytes());
            let incremental = update32(check, old, new);
            changed[0..2].copy_from_slice(&incremental.to_ne_bytes());

            prop_assert_eq!(compute(&changed), 0);
        }

        #[test]
        fn a_summed_difference_equals_the_updates_one_by_one(
            check in any::<u16>(),
            addrs in any::<[(u32, u32); 2]>(),
            ports in any::<[(u16, u16); 2]>(),
        ) {
            let mut diff = 0;
            let mut one_by_one = check;
            for (old, new) in addrs {
                diff = diff32(diff, old, new);
                one_by_one = update32(one_by_one, old, new);
            }
            for (old, new) in ports {
                diff = diff16(diff, old, new);
                one_by_one = update16(one_by_one, old, new);
            }
            // Equal as one's-complement numbers (0 and 0xffff are both zero).
            let summed = apply_diff(check, diff);
            prop_assert!(summed == one_by_one || summed ^ one_by_one == 0xffff);
        }

        #[test]
        fn a_difference_over_real_data_verifies(
            words in proptest::collection::vec(any::<u16>(), 8..40),
            new in any::<(u32, u32, u16)>(),
        ) {
            let data: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let data = with_checksum(data, 0);
            let read32 = |d: &[u8], at: usize| u32::from_ne_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
            let check = u16::from_ne_bytes([data[0], data[1]]);
            let mut diff = diff32(0, read32(&data, 2), new.0);
            diff = diff32(diff, read32(&data, 6), new.1);
            diff = diff16(diff, u16::from_ne_bytes([data[10], data[11]]), new.2);

            let mut changed = data.clone();
            changed[2..6].copy_from_slice(&new.0.to_ne_bytes());
            changed[6..10].copy_from_slice(&new.1.to_ne_bytes());
            changed[10..12].copy_from_slice(&new.2.to_ne_bytes());
            changed[0..2].copy_from_slice(&apply_diff(check, diff).to_ne_bytes());
            prop_assert_eq!(compute(&changed), 0);
        }
    }
}
