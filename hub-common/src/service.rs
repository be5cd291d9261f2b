//! Services the NAT publishes: a virtual address (VIP) and the backends behind it.

/// Most backends one service can have.
pub const MAX_BACKENDS: usize = 8;
/// Most services (histogram slots).
pub const MAX_SERVICES: u32 = 64;

/// A VIP, TCP. Network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub addr: u32,
    pub port: u16,
    pub proto: u8,
    pub pad: u8,
}

const _: () = assert!(core::mem::size_of::<ServiceKey>() == 8);

/// One backend. Network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Backend {
    pub addr: u32,
    pub port: u16,
    pub pad: u16,
}

const _: () = assert!(core::mem::size_of::<Backend>() == 8);

/// What a VIP maps to. New flows pick `backends[hash % count]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Slot in the histogram map, below `MAX_SERVICES`.
    pub index: u32,
    /// Backends in use, at most `MAX_BACKENDS`.
    pub count: u32,
    pub backends: [Backend; MAX_BACKENDS],
}

const _: () = assert!(core::mem::size_of::<ServiceEntry>() == 72);

// SAFETY: `repr(C)` integers with explicit padding (`pad`); every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ServiceKey {}

// SAFETY: `repr(C)` integers with explicit padding (`pad`); every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Backend {}

// SAFETY: `repr(C)` of integers and `Backend`s without implicit padding (size assert);
// every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for ServiceEntry {}
