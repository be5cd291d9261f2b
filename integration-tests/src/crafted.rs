//! Hand-made Ethernet/IPv4/TCP frames, sent raw (`AF_PACKET`) out of a veth in a test
//! namespace, and captured raw on the other side: how the NAT's drop paths and ICMP
//! translation are exercised with packets no socket would send.

use std::{io, mem::size_of, net::Ipv4Addr};

use hub_common::{
    checksum,
    headers::{
        ETH_LEN, ETH_P_IP, EthHdr, ICMP_LEN, IPPROTO_ICMP, IPPROTO_TCP, IPV4_LEN, IPV4_VERSION_IHL,
        IcmpHdr, Ipv4Hdr, TcpHdr,
    },
};

use crate::Netns;

/// A TCP segment to craft; every field the drop paths look at can be bent.
#[derive(Clone, Debug)]
pub struct Segment {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub ttl: u8,
    pub protocol: u8,
    pub version_ihl: u8,
    /// Host order; flags and fragment offset.
    pub frag_off: u16,
    /// Overrides the IPv4 total length (host order) when set.
    pub tot_len: Option<u16>,
    /// TCP data offset in 32-bit words.
    pub doff: u8,
    pub payload: Vec<u8>,
}

impl Segment {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, flags: u8) -> Self {
        Self {
            src,
            dst,
            sport: 41_000,
            dport,
            flags,
            ttl: 64,
            protocol: IPPROTO_TCP,
            version_ihl: IPV4_VERSION_IHL,
            frag_off: 0,
            tot_len: None,
            doff: 5,
            payload: Vec::new(),
        }
    }

    /// The IPv4 packet (header with a correct checksum, TCP header, payload).
    pub fn ipv4(&self) -> Vec<u8> {
        let tcp = TcpHdr {
            source: self.sport.to_be(),
            dest: self.dport.to_be(),
            seq: 1_u32.to_be(),
            ack_seq: 0,
            doff_res: self.doff << 4,
            flags: self.flags,
            window: 65_535_u16.to_be(),
            check: 0,
            urg_ptr: 0,
        };
        let length = IPV4_LEN + size_of::<TcpHdr>() + self.payload.len();
        let mut ip = Ipv4Hdr {
            version_ihl: self.version_ihl,
            tos: 0,
            tot_len: self.tot_len.unwrap_or(length as u16).to_be(),
            id: 0,
            frag_off: self.frag_off.to_be(),
            ttl: self.ttl,
            protocol: self.protocol,
            check: 0,
            saddr: u32::from_ne_bytes(self.src.octets()),
            daddr: u32::from_ne_bytes(self.dst.octets()),
        };
        ip.check = checksum::compute(bytes_of(&ip)).to_be();
        let mut packet = bytes_of(&ip).to_vec();
        packet.extend_from_slice(bytes_of(&tcp));
        packet.extend_from_slice(&self.payload);
        packet
    }
}

/// The bytes of a header.
fn bytes_of<T: Copy>(header: &T) -> &[u8] {
    // SAFETY: the header types are `repr(C)` integers without padding (size asserts in
    // hub-common), so every byte is initialised.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(header).cast::<u8>(), size_of::<T>()) }
}

/// The MAC address of `iface` in `ns`.
pub fn mac(ns: &Netns, iface: &str) -> anyhow::Result<[u8; 6]> {
    let out = ns.ip(&["-j", "link", "show", iface])?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let text = json[0]["address"].as_str().unwrap_or_default();
    let mut mac = [0; 6];
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(parts.len() == 6, "no MAC address for {iface}: {text}");
    mac.copy_from_slice(&parts);
    Ok(mac)
}

/// Sends `ipv4` in an Ethernet frame out of `iface` (in `ns`) to `dst_mac`.
pub fn send(ns: &Netns, iface: &str, dst_mac: [u8; 6], ipv4: &[u8]) -> anyhow::Result<()> {
    let src_mac = mac(ns, iface)?;
    let eth = EthHdr {
        dst: dst_mac,
        src: src_mac,
        ether_type: ETH_P_IP.to_be(),
    };
    let mut frame = Vec::with_capacity(ETH_LEN + ipv4.len());
    frame.extend_from_slice(bytes_of(&eth));
    frame.extend_from_slice(ipv4);

    let _inside = ns.enter()?;
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: `name` is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    anyhow::ensure!(ifindex != 0, "no interface {iface}");
    // SAFETY: plain socket(2) call; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: all zeroes is a valid `sockaddr_ll`.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_ifindex = ifindex.cast_signed();
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&dst_mac);
    // SAFETY: `frame` and `to` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::from_ref(&to).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

/// An IPv4 packet carrying an ICMP error (`kind`, `code`, `rest`) that quotes `quoted`.
pub fn icmp_error(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    kind: u8,
    code: u8,
    rest: u32,
    quoted: &[u8],
) -> Vec<u8> {
    let mut icmp = IcmpHdr {
        kind,
        code,
        check: 0,
        rest: rest.to_be(),
    };
    let mut message = bytes_of(&icmp).to_vec();
    message.extend_from_slice(quoted);
    icmp.check = checksum::compute(&message).to_be();
    message[..ICMP_LEN].copy_from_slice(bytes_of(&icmp));

    let mut ip = Ipv4Hdr {
        version_ihl: IPV4_VERSION_IHL,
        tot_len: ((IPV4_LEN + message.len()) as u16).to_be(),
        ttl: 64,
        protocol: IPPROTO_ICMP,
        saddr: u32::from_ne_bytes(src.octets()),
        daddr: u32::from_ne_bytes(dst.octets()),
        ..Ipv4Hdr::default()
    };
    ip.check = checksum::compute(bytes_of(&ip)).to_be();
    let mut packet = bytes_of(&ip).to_vec();
    packet.extend_from_slice(&message);
    packet
}

/// An `AF_PACKET` socket receiving every IPv4 frame that enters an interface in a
/// namespace. Closed on drop.
pub struct Capture {
    fd: std::os::fd::OwnedFd,
}

impl Capture {
    /// Starts capturing on `iface` in `ns`.
    pub fn start(ns: &Netns, iface: &str) -> anyhow::Result<Self> {
        let _inside = ns.enter()?;
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: `name` is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        anyhow::ensure!(ifindex != 0, "no interface {iface}");
        let protocol = ETH_P_IP.to_be();
        // SAFETY: plain socket(2) call; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: all zeroes is a valid `sockaddr_ll`.
        let mut at: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        at.sll_family = libc::AF_PACKET as u16;
        at.sll_protocol = protocol;
        at.sll_ifindex = ifindex.cast_signed();
        // SAFETY: `at` is a valid `sockaddr_ll` of the length given.
        let bound = unsafe {
            libc::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                std::ptr::from_ref(&at).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if bound != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(Self { fd })
    }

    /// The next frame's IPv4 packet for which `wanted` holds, within `timeout`.
    pub fn next(
        &self,
        timeout: std::time::Duration,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> anyhow::Result<Vec<u8>> {
        use std::os::fd::AsRawFd as _;
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = vec![0_u8; 65_536];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            anyhow::ensure!(!left.is_zero(), "no matching frame within {timeout:?}");
            let mut poll = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&raw mut poll, 1, left.as_millis() as i32 + 1) };
            if ready <= 0 {
                continue;
            }
            // SAFETY: `buf` is valid for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else {
                return Err(io::Error::last_os_error().into());
            };
            // A SOCK_RAW packet socket delivers the Ethernet header too.
            let packet = &buf[ETH_LEN.min(n)..n];
            if wanted(packet) {
                return Ok(packet.to_vec());
            }
        }
    }
}
