//! Interface lookups in the calling thread's network namespace: index and link type.
//!
//! Done with ioctls on a socket (not /sys/class/net, which shows the namespace sysfs was
//! mounted in, not the thread's).

use std::{ffi::CString, io, os::fd::AsRawFd as _};

use hub_common::settings::{IfaceInfo, link};

/// `ARPHRD_ETHER`: an Ethernet device.
const ARPHRD_ETHER: u16 = 1;

/// Index and link-layer kind of `name`.
pub fn info(name: &str) -> io::Result<IfaceInfo> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    let kind = hardware_type(name)?;
    let link = if kind == ARPHRD_ETHER {
        link::ETHERNET
    } else {
        link::L3
    };
    Ok(IfaceInfo { ifindex, link })
}

/// The ARPHRD type of an interface (SIOCGIFHWADDR).
fn hardware_type(name: &str) -> io::Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").or_else(|_| {
        // A fresh namespace may have loopback down; any datagram socket will do.
        std::net::UdpSocket::bind("0.0.0.0:0")
    })?;
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src.cast_signed();
    }
    // SAFETY: SIOCGIFHWADDR reads `ifr_name` and writes `ifr_hwaddr` of a valid `ifreq`.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR, &raw mut request) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the `ifr_hwaddr` member of the union.
    Ok(unsafe { request.ifr_ifru.ifru_hwaddr.sa_family })
}
