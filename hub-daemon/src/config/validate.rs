//! From the file as written to a [`Config`], naming every wrong field.

use std::{
    collections::HashMap,
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::Ipv4Net;

use super::{
    Backend, Config, EgressAddress, FieldError, FileConfig, Interface, MssClamp, Nat, OnStop, Peer,
    Service, Timeouts,
    file::{NatFile, PeerFile},
};
use crate::key::Key;

/// Reads the private key file; a parameter so that tests need no files.
pub type ReadKey<'a> = dyn Fn(&Path) -> io::Result<String> + 'a;

/// Collects field errors while converting.
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// `value` as an integer in `range`, or an error naming `field`.
    fn int<T: TryFrom<i64> + Copy>(
        &mut self,
        field: &str,
        value: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<T> {
        if range.contains(&value) {
            T::try_from(value).ok()
        } else {
            self.fail(
                field,
                format!(
                    "{value} is out of range {}..={}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, field: &str, value: &str, what: &str) -> Option<T> {
        let parsed = value.trim().parse().ok();
        if parsed.is_none() {
            self.fail(field, format!("{value:?} is not {what}"));
        }
        parsed
    }

    fn iface_name(&mut self, field: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() < 16
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !ok {
            self.fail(
                field,
                format!(
                    "{name:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"
                ),
            );
        }
    }
}

/// Validates the whole file, or returns every problem found.
pub fn validate(file: &FileConfig, read_key: &ReadKey<'_>) -> Result<Config, Vec<FieldError>> {
    let mut c = Checker { errors: Vec::new() };

    let interface = interface(&mut c, file, read_key);
    let peers: Vec<_> = file
        .peers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| peer(&mut c, i, p))
        .collect();
    check_unique_peers(&mut c, &peers);
    check_overlaps(&mut c, &peers);
    let nat = nat(&mut c, &file.nat, &peers, interface.as_ref());

    let api_listen = file.api.listen.as_deref().and_then(|listen| {
        c.parsed::<SocketAddr>(
            "api.listen",
            listen,
            "an address:port such as 10.50.0.1:9184",
        )
    });
    let pin_dir = PathBuf::from(&file.bpf.pin_dir);
    if !pin_dir.is_absolute() {
        c.fail(
            "bpf.pin_dir",
            format!("{:?} is not an absolute path", file.bpf.pin_dir),
        );
    }
    let on_stop = match file.daemon.on_stop.as_str() {
        "keep" => Some(OnStop::Keep),
        "remove" => Some(OnStop::Remove),
        other => {
            c.fail(
                "daemon.on_stop",
                format!("{other:?} is not \"keep\" or \"remove\""),
            );
            None
        }
    };
    let gc_interval = c.int::<u64>("daemon.gc_interval", file.daemon.gc_interval, 1..=3600);

    match (interface, nat, on_stop, gc_interval) {
        (Some(interface), Some(nat), Some(on_stop), Some(gc)) if c.errors.is_empty() => {
            Ok(Config {
                interface,
                peers,
                nat,
                api_listen,
                pin_dir,
                on_stop,
                gc_interval: Duration::from_secs(gc),
            })
        }
        _ => Err(c.errors),
    }
}

fn interface(c: &mut Checker, file: &FileConfig, read_key: &ReadKey<'_>) -> Option<Interface> {
    let f = &file.interface;
    c.iface_name("interface.name", &f.name);
    let private_key = match read_key(Path::new(&f.private_key_file)) {
        Ok(text) => Key::from_base64(&text)
            .map_err(|e| {
                c.fail(
                    "interface.private_key_file",
                    format!("{}: the key {e}", f.private_key_file),
                );
            })
            .ok(),
        Err(e) => {
            c.fail(
                "interface.private_key_file",
                format!("cannot read {}: {e}", f.private_key_file),
            );
            None
        }
    };
    let listen_port = c.int("interface.listen_port", f.listen_port, 1..=65535);
    let address = c.parsed::<Ipv4Net>("interface.address", &f.address, "an IPv4 address/prefix");
    if let Some(net) = address
        && (net.prefix_len() == 32 || net.addr() == net.network() || net.addr() == net.broadcast())
    {
        c.fail(
            "interface.address",
            format!("{net} must be a host address inside a subnet, such as 10.50.0.1/24"),
        );
    }
    let mtu = c.int("interface.mtu", f.mtu, 576..=65_535);
    let backend = match f.backend.as_str() {
        "kernel" => Some(Backend::Kernel),
        "userspace" => Some(Backend::Userspace),
        "auto" => Some(Backend::Auto),
        other => {
            c.fail(
                "interface.backend",
                format!("{other:?} is not kernel, userspace or auto"),
            );
            None
        }
    };
    if f.userspace_program.trim().is_empty() {
        c.fail("interface.userspace_program", "is empty");
    }
    Some(Interface {
        name: f.name.clone(),
        private_key: private_key?,
        listen_port: listen_port?,
        address: address?,
        mtu: mtu?,
        backend: backend?,
        userspace_program: PathBuf::from(&f.userspace_program),
    })
}

fn peer(c: &mut Checker, i: usize, p: &PeerFile) -> Option<Peer> {
    let at = format!("peer[{i}]");
    if p.name.trim().is_empty() {
        c.fail(format!("{at}.name"), "is empty");
    }
    let public_key = Key::from_base64(&p.public_key)
        .map_err(|e| {
            c.fail(
                format!("{at}.public_key"),
                format!("{:?} {e}", p.public_key),
            );
        })
        .ok();
    if p.allowed_ips.is_empty() {
        c.fail(
            format!("{at}.allowed_ips"),
            "is empty: the peer could send nothing",
        );
    }
    let mut allowed_ips = Vec::new();
    for (j, text) in p.allowed_ips.iter().enumerate() {
        let field = format!("{at}.allowed_ips[{j}]");
        let Some(net) = c.parsed::<Ipv4Net>(&field, text, "an IPv4 address/prefix") else {
            continue;
        };
        if net.trunc() != net {
            c.fail(
                &field,
                format!("{net} has host bits set; did you mean {}?", net.trunc()),
            );
        } else if net.prefix_len() == 0 {
            c.fail(
                &field,
                "0.0.0.0/0 would route everything into this one peer",
            );
        } else {
            allowed_ips.push(net);
        }
    }
    let persistent_keepalive = p
        .persistent_keepalive
        .and_then(|k| c.int(&format!("{at}.persistent_keepalive"), k, 1..=65_535));
    let endpoint = p.endpoint.as_deref().and_then(|e| {
        c.parsed::<SocketAddr>(&format!("{at}.endpoint"), e, "an IP:port (no host names)")
    });
    Some(Peer {
        name: p.name.clone(),
        public_key: public_key?,
        allowed_ips,
        persistent_keepalive,
        endpoint,
    })
}

fn check_unique_peers(c: &mut Checker, peers: &[Peer]) {
    let mut names = HashMap::new();
    let mut keys = HashMap::new();
    for (i, p) in peers.iter().enumerate() {
        if let Some(first) = names.insert(p.name.as_str(), i) {
            c.fail(
                format!("peer[{i}].name"),
                format!("{:?} is also peer[{first}]'s name", p.name),
            );
        }
        if let Some(first) = keys.insert(p.public_key, i) {
            c.fail(
                format!("peer[{i}].public_key"),
                format!("is also peer[{first}]'s key"),
            );
        }
    }
}

/// Overlapping allowed IPs are an error: WireGuard would silently move the range to the
/// last peer, and traffic for the first would vanish.
fn check_overlaps(c: &mut Checker, peers: &[Peer]) {
    for (i, a) in peers.iter().enumerate() {
        for (j, net) in a.allowed_ips.iter().enumerate() {
            for (k, b) in peers.iter().enumerate().take(i) {
                if let Some(other) = b
                    .allowed_ips
                    .iter()
                    .find(|o| o.contains(net) || net.contains(*o))
                {
                    c.fail(
                        format!("peer[{i}].allowed_ips[{j}]"),
                        format!("{net} overlaps {other} of peer[{k}] ({:?})", b.name),
                    );
                }
            }
        }
    }
}

fn nat(c: &mut Checker, f: &NatFile, peers: &[Peer], iface: Option<&Interface>) -> Option<Nat> {
    c.iface_name("nat.egress_interface", &f.egress_interface);
    let egress_address = match f.egress_address.as_str() {
        "auto" => Some(EgressAddress::Auto),
        text => c
            .parsed::<Ipv4Addr>("nat.egress_address", text, "\"auto\" or an IPv4 address")
            .map(EgressAddress::Fixed),
    };
    if f.services.is_empty() {
        c.fail(
            "nat.service",
            "no service: add at least one [[nat.service]]",
        );
    }
    let services: Vec<_> = f
        .services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| service(c, i, s, peers))
        .collect();
    for (i, s) in services.iter().enumerate() {
        if services[..i].iter().any(|o| o.vip == s.vip) {
            c.fail(
                format!("nat.service[{i}].vip"),
                format!("{} is used twice", s.vip),
            );
        }
    }
    let t = &f.timeouts;
    let day = 86_400 * 7;
    let timeouts = (|| {
        Some(Timeouts {
            syn: Duration::from_secs(c.int("nat.timeouts.syn", t.syn, 1..=day)?),
            established: Duration::from_secs(c.int(
                "nat.timeouts.established",
                t.established,
                1..=day,
            )?),
            closing: Duration::from_secs(c.int("nat.timeouts.closing", t.closing, 1..=day)?),
        })
    })();
    let max_flows = c.int("nat.max_flows", f.max_flows, 1024..=16_777_216);
    let port_range = port_range(c, &f.port_range);
    let mss_clamp = match f.mss_clamp.as_str() {
        "auto" => Some(MssClamp::Auto),
        "off" => Some(MssClamp::Off),
        text => {
            if let Ok(mss) = text.parse::<i64>() {
                let max = iface.map_or(65_495, |i| i64::from(i.mtu) - 40);
                c.int("nat.mss_clamp", mss, 536..=max).map(MssClamp::Fixed)
            } else {
                c.fail(
                    "nat.mss_clamp",
                    format!("{text:?} is not \"auto\", \"off\" or a number"),
                );
                None
            }
        }
    };
    Some(Nat {
        egress_interface: f.egress_interface.clone(),
        egress_address: egress_address?,
        services,
        timeouts: timeouts?,
        max_flows: max_flows?,
        port_range: port_range?,
        mss_clamp: mss_clamp?,
    })
}

fn service(
    c: &mut Checker,
    i: usize,
    s: &super::file::ServiceFile,
    peers: &[Peer],
) -> Option<Service> {
    let at = format!("nat.service[{i}]");
    let vip = endpoint_v4(c, &format!("{at}.vip"), &s.vip, peers);
    if s.backends.is_empty() {
        c.fail(format!("{at}.backends"), "is empty");
    }
    let mut backends = Vec::new();
    for (j, text) in s.backends.iter().enumerate() {
        let field = format!("{at}.backends[{j}]");
        if let Some(b) = endpoint_v4(c, &field, text, peers) {
            if backends.contains(&b) {
                c.fail(field, format!("{b} is listed twice"));
            } else {
                backends.push(b);
            }
        }
    }
    Some(Service {
        vip: vip?,
        backends,
    })
}

/// An IPv4 `address:port` with a port, outside every peer's allowed IPs.
fn endpoint_v4(c: &mut Checker, field: &str, text: &str, peers: &[Peer]) -> Option<SocketAddrV4> {
    let addr = match c.parsed::<SocketAddr>(field, text, "an IPv4 address:port")? {
        SocketAddr::V4(a) if a.port() != 0 => a,
        SocketAddr::V4(_) => {
            c.fail(field, "port 0 is not a port");
            return None;
        }
        SocketAddr::V6(_) => {
            c.fail(
                field,
                format!("{text} is IPv6; edgehub translates IPv4 only"),
            );
            return None;
        }
    };
    if let Some(p) = peers
        .iter()
        .find(|p| p.allowed_ips.iter().any(|n| n.contains(addr.ip())))
    {
        c.fail(
            field,
            format!("{} is inside peer {:?}'s allowed IPs", addr.ip(), p.name),
        );
    }
    Some(addr)
}

fn port_range(c: &mut Checker, text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((first, last)) if 1024 <= first && first <= last => Some(first..=last),
        Some(_) => {
            c.fail(
                "nat.port_range",
                format!("{text:?} must be FIRST-LAST with 1024 <= FIRST <= LAST"),
            );
            None
        }
        None => {
            c.fail(
                "nat.port_range",
                format!("{text:?} is not FIRST-LAST, such as 10000-32767"),
            );
            None
        }
    }
}
