//! The NAT's global settings, written by the daemon into `NAT_SETTINGS` (one slot).

/// Link-layer kinds of an attached interface.
pub mod link {
    /// No link-layer header (a tun device such as wireguard-go's, `ARPHRD_NONE`).
    pub const L3: u32 = 0;
    /// Ethernet (a veth, a physical NIC).
    pub const ETHERNET: u32 = 1;
}

/// An interface the NAT is attached to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceInfo {
    pub ifindex: u32,
    /// One of `link`.
    pub link: u32,
}

const _: () = assert!(core::mem::size_of::<IfaceInfo>() == 8);

/// Everything the kernel programs need besides the services.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatSettings {
    /// Where the peers come from (forward path attached at its ingress).
    pub tunnel: IfaceInfo,
    /// Towards the database (reply path attached at its ingress).
    pub egress: IfaceInfo,
    /// SNAT source, network byte order.
    pub egress_addr: u32,
    /// SNAT source ports, host byte order, inclusive.
    pub port_min: u16,
    pub port_max: u16,
    /// MSS clamp in host order; 0 = off.
    pub mss: u16,
    /// 1 once the daemon has written the settings; the programs pass everything before.
    pub enabled: u8,
    /// 1: hand translated packets back to the kernel's forwarding (`TC_ACT_OK`) instead of
    /// redirecting them. Only for measuring the two against each other.
    pub kernel_forwarding: u8,
}

const _: () = assert!(core::mem::size_of::<NatSettings>() == 28);

// SAFETY: `repr(C)` of two u32; every bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for IfaceInfo {}

// SAFETY: `repr(C)` integers and `IfaceInfo`s without implicit padding (size assert); every
// bit pattern is valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for NatSettings {}
