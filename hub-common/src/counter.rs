//! Per-CPU packet counters.

/// Packets and bytes one program has seen on one CPU.
///
/// Userspace sums the per-CPU values; the kernel side only ever adds to its own CPU's copy,
/// so no atomics are needed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounter {
    pub packets: u64,
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<PacketCounter>() == 16);

impl PacketCounter {
    /// Adds another CPU's counter to this one.
    #[must_use]
    pub const fn merged(self, other: Self) -> Self {
        Self {
            packets: self.packets.wrapping_add(other.packets),
            bytes: self.bytes.wrapping_add(other.bytes),
        }
    }
}

// SAFETY: `PacketCounter` is `repr(C)`, has no padding (two u64) and every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for PacketCounter {}

#[cfg(test)]
mod tests {
    use super::PacketCounter;

    #[test]
    fn merged_adds_both_fields() {
        let a = PacketCounter {
            packets: 2,
            bytes: 100,
        };
        let b = PacketCounter {
            packets: 3,
            bytes: 50,
        };
        assert_eq!(
            a.merged(b),
            PacketCounter {
                packets: 5,
                bytes: 150
            }
        );
    }
}
