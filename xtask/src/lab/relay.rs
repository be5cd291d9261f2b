//! The WAN between an edge and the hub: a userspace UDP relay that delays every datagram.
//!
//! This kind of machine has no netem qdisc, so each region's WireGuard traffic goes through
//! one of these in the `net` namespace. Datagrams from the edge arrive on `listen` and leave
//! from `upstream_bind` towards the hub's endpoint; replies go back to the edge's last seen
//! address. Each direction waits half the round-trip time (plus optional jitter) and may
//! drop a share of datagrams. Order within a direction is kept, as on a real path.

use std::{
    io::ErrorKind,
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, Sender},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;

/// One region's path.
#[derive(Clone, Debug)]
pub struct Path {
    /// Where the edge sends (its WireGuard endpoint for the hub).
    pub listen: SocketAddr,
    /// Local address the relay uses towards the hub.
    pub upstream_bind: SocketAddr,
    /// The hub's WireGuard endpoint.
    pub hub: SocketAddr,
    /// Added to each direction: half the emulated round-trip time.
    pub one_way: Duration,
    /// Uniform extra delay in [0, jitter) per datagram, never reordering.
    pub jitter: Duration,
    /// Share of datagrams dropped, 0.0 to 1.0.
    pub loss: f64,
}

/// `listen=A,bind=B,hub=C,rtt_ms=N[,jitter_ms=J][,loss=L]`
pub fn parse_path(text: &str) -> anyhow::Result<Path> {
    let mut listen = None;
    let mut bind = None;
    let mut hub = None;
    let mut rtt_ms = None;
    let mut jitter_ms = 0.0;
    let mut loss = 0.0;
    for field in text.split(',') {
        let (key, value) = field
            .split_once('=')
            .with_context(|| format!("bad field {field}"))?;
        match key {
            "listen" => listen = Some(value.parse()?),
            "bind" => bind = Some(value.parse()?),
            "hub" => hub = Some(value.parse()?),
            "rtt_ms" => rtt_ms = Some(value.parse::<f64>()?),
            "jitter_ms" => jitter_ms = value.parse()?,
            "loss" => loss = value.parse()?,
            _ => anyhow::bail!("unknown field {key} in {text}"),
        }
    }
    let rtt_ms: f64 = rtt_ms.context("rtt_ms missing")?;
    anyhow::ensure!(
        rtt_ms >= 0.0 && (0.0..=1.0).contains(&loss),
        "bad rtt or loss in {text}"
    );
    Ok(Path {
        listen: listen.context("listen missing")?,
        upstream_bind: bind.context("bind missing")?,
        hub: hub.context("hub missing")?,
        one_way: Duration::from_secs_f64(rtt_ms / 2000.0),
        jitter: Duration::from_secs_f64(jitter_ms / 1000.0),
        loss,
    })
}

/// Relays every path until the process is killed.
pub fn run(paths: &[Path]) -> anyhow::Result<()> {
    let mut threads = Vec::new();
    for path in paths {
        let edge_side = UdpSocket::bind(path.listen).with_context(|| format!("{path:?}"))?;
        let hub_side = UdpSocket::bind(path.upstream_bind).with_context(|| format!("{path:?}"))?;
        // Not connected: a connected UDP socket would report the hub's closed port (while its
        // WireGuard restarts) as an error on the next receive.
        let hub = path.hub;
        let edge_peer = Arc::new(Mutex::new(None::<SocketAddr>));

        // Edge -> hub.
        let (tx, rx) = mpsc::channel();
        let (recv, peer) = (edge_side.try_clone()?, Arc::clone(&edge_peer));
        let p = path.clone();
        threads.push(thread::spawn(move || receive(&recv, &tx, &p, Some(&peer))));
        let send = hub_side.try_clone()?;
        threads.push(thread::spawn(move || {
            deliver(&rx, |d| send.send_to(d, hub).map(drop));
        }));

        // Hub -> edge.
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        threads.push(thread::spawn(move || receive(&hub_side, &tx, &p, None)));
        threads.push(thread::spawn(move || {
            deliver(&rx, |d| match *edge_peer.lock().expect("not poisoned") {
                Some(peer) => edge_side.send_to(d, peer).map(drop),
                None => Ok(()),
            });
        }));
    }
    eprintln!("relay: {} paths up", paths.len());
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

type Queued = (Instant, Vec<u8>);

fn receive(
    socket: &UdpSocket,
    queue: &Sender<Queued>,
    path: &Path,
    remember: Option<&Mutex<Option<SocketAddr>>>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut rng = Lcg::new(path.listen.port().into());
    let mut last_due = Instant::now();
    loop {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // A closed port's ICMP error, should one be reported: the path itself goes on.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        if let Some(peer) = remember {
            *peer.lock().expect("not poisoned") = Some(from);
        }
        if path.loss > 0.0 && rng.unit() < path.loss {
            continue;
        }
        let jitter = path.jitter.mul_f64(rng.unit());
        // Never before the previous datagram of this direction: jitter does not reorder.
        let due = (Instant::now() + path.one_way + jitter).max(last_due);
        last_due = due;
        if queue.send((due, buf[..len].to_vec())).is_err() {
            return;
        }
    }
}

fn deliver(queue: &Receiver<Queued>, mut send: impl FnMut(&[u8]) -> std::io::Result<()>) {
    for (due, datagram) in queue {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        // A lost datagram on a WAN is not an error: WireGuard retransmits.
        let _ = send(&datagram);
    }
}

/// A small deterministic generator for jitter and loss; no cryptographic needs here.
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
    }

    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_path() {
        let p =
            parse_path("listen=127.0.0.1:1,bind=127.0.0.1:2,hub=127.0.0.1:3,rtt_ms=50").unwrap();
        assert_eq!(p.one_way, Duration::from_millis(25));
        assert!(parse_path("listen=127.0.0.1:1,rtt_ms=5").is_err());
        assert!(
            parse_path("listen=127.0.0.1:1,bind=127.0.0.1:2,hub=127.0.0.1:3,rtt_ms=5,loss=2")
                .is_err()
        );
    }

    #[test]
    fn delays_each_direction_by_half_the_rtt() {
        // hub: a UDP echo server on loopback.
        let hub = UdpSocket::bind("127.0.0.1:0").unwrap();
        let hub_addr = hub.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = hub.recv_from(&mut buf) {
                let _ = hub.send_to(&buf[..n], from);
            }
        });
        let free = || {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (listen, bind) = (free(), free());
        let path = Path {
            listen,
            upstream_bind: bind,
            hub: hub_addr,
            one_way: Duration::from_millis(40),
            jitter: Duration::ZERO,
            loss: 0.0,
        };
        thread::spawn(move || run(&[path]));

        let edge = UdpSocket::bind("127.0.0.1:0").unwrap();
        edge.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 8];
        // The relay may not be listening yet: retry until an echo comes back.
        let deadline = Instant::now() + Duration::from_secs(5);
        let rtt = loop {
            let sent = Instant::now();
            edge.send_to(b"ping", listen).unwrap();
            if edge.recv_from(&mut buf).is_ok() {
                break sent.elapsed();
            }
            assert!(Instant::now() < deadline, "no echo through the relay");
        };
        assert!(
            rtt >= Duration::from_millis(80),
            "round trip {rtt:?} shorter than 80 ms"
        );
        assert_eq!(&buf[..4], b"ping");
    }

    #[test]
    fn keeps_relaying_after_the_hub_port_was_closed() {
        // The hub's port is closed at first, as while its WireGuard restarts.
        let free = || {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (hub_addr, listen, bind) = (free(), free(), free());
        let path = Path {
            listen,
            upstream_bind: bind,
            hub: hub_addr,
            one_way: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
        };
        thread::spawn(move || run(&[path]));
        let edge = UdpSocket::bind("127.0.0.1:0").unwrap();
        edge.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 8];
        for _ in 0..5 {
            edge.send_to(b"lost", listen).unwrap();
            assert!(edge.recv_from(&mut buf).is_err(), "nothing can answer yet");
        }

        // Then the hub comes back on the same port.
        let hub = UdpSocket::bind(hub_addr).unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = hub.recv_from(&mut buf) {
                let _ = hub.send_to(&buf[..n], from);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            edge.send_to(b"back", listen).unwrap();
            if edge
                .recv_from(&mut buf)
                .is_ok_and(|(n, _)| &buf[..n] == b"back")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the path died with the hub's port"
            );
        }
    }
}
