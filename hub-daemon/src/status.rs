//! What `edgehub status` and `edgehub flows` show: the tunnel as its implementation reports
//! it, and the NAT as its pinned maps hold it. Both work whether the daemon runs or not.

use std::{
    fmt::Write as _,
    net::{SocketAddr, SocketAddrV4},
    time::{Duration, SystemTime},
};

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::{
    config::Config,
    nat::{self, Counters, FlowView, ServiceHistograms},
    wireguard::{DeviceState, uapi::Uapi},
};

/// Everything `edgehub status` reports.
#[derive(Debug, Serialize)]
pub struct Status {
    pub interface: String,
    /// Why the tunnel could not be read, when it could not.
    pub interface_error: Option<String>,
    pub listen_port: Option<u16>,
    pub peers: Vec<PeerStatus>,
    pub services: Vec<ServiceStatus>,
    /// Why the NAT maps could not be read, when they could not.
    pub nat_error: Option<String>,
    pub counters: Option<Counters>,
    pub flows: usize,
    pub max_flows: u32,
    /// Tracked flows over `max_flows`.
    pub table_pressure: f64,
    pub histograms: Vec<ServiceHistograms>,
}

#[derive(Debug, Serialize)]
pub struct PeerStatus {
    pub name: String,
    pub public_key: String,
    pub allowed_ips: Vec<Ipv4Net>,
    pub endpoint: Option<SocketAddr>,
    /// Seconds since the latest handshake; `None` before the first.
    pub latest_handshake_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Whether the running device knows this peer (else the configuration is not applied).
    pub configured: bool,
}

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub vip: SocketAddrV4,
    pub backends: Vec<SocketAddrV4>,
}

/// Reads the tunnel and the pinned maps described by `config`.
pub fn gather(config: &Config) -> Status {
    let device = Uapi::for_interface(&config.interface.name).get();
    let (device, interface_error) = match device {
        Ok(device) => (Some(device), None),
        Err(e) => (None, Some(error_chain(&e))),
    };
    let counters = nat::read_counters(&config.pin_dir);
    let flows = nat::read_flows(&config.pin_dir).map(|f| f.len());
    let histograms = nat::read_histograms(&config.pin_dir);
    let nat_error = [
        counters.as_ref().err(),
        flows.as_ref().err(),
        histograms.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    .next()
    .map(|e| error_chain(e));
    let flows = flows.unwrap_or(0);
    Status {
        interface: config.interface.name.clone(),
        interface_error,
        listen_port: device.as_ref().map(|d| d.listen_port),
        peers: peers(config, device.as_ref(), SystemTime::now()),
        services: config
            .nat
            .services
            .iter()
            .map(|s| ServiceStatus {
                vip: s.vip,
                backends: s.backends.clone(),
            })
            .collect(),
        nat_error,
        counters: counters.ok(),
        flows,
        max_flows: config.nat.max_flows,
        table_pressure: pressure(flows, config.nat.max_flows),
        histograms: histograms.unwrap_or_default(),
    }
}

/// Flows over capacity, 0.0 to 1.0.
pub fn pressure(flows: usize, max_flows: u32) -> f64 {
    f64::from(u32::try_from(flows).unwrap_or(u32::MAX)) / f64::from(max_flows.max(1))
}

/// The configured peers with what the device says about each.
pub fn peers(config: &Config, device: Option<&DeviceState>, now: SystemTime) -> Vec<PeerStatus> {
    config
        .peers
        .iter()
        .map(|p| {
            let state = device.and_then(|d| d.peers.iter().find(|s| s.public_key == p.public_key));
            PeerStatus {
                name: p.name.clone(),
                public_key: p.public_key.to_base64(),
                allowed_ips: p.allowed_ips.clone(),
                endpoint: state.and_then(|s| s.endpoint),
                latest_handshake_secs: state
                    .and_then(|s| s.last_handshake)
                    .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO).as_secs()),
                rx_bytes: state.map_or(0, |s| s.rx_bytes),
                tx_bytes: state.map_or(0, |s| s.tx_bytes),
                configured: state.is_some(),
            }
        })
        .collect()
}

/// An error and its causes on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// `edgehub status` for a person.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "interface {}", status.interface);
    match (&status.interface_error, status.listen_port) {
        (Some(e), _) => {
            let _ = writeln!(out, "  not running: {e}");
        }
        (None, Some(port)) => {
            let _ = writeln!(out, "  listening on UDP {port}");
        }
        (None, None) => {}
    }
    let _ = writeln!(out, "\npeers");
    for p in &status.peers {
        let handshake = match (p.configured, p.latest_handshake_secs) {
            (false, _) => "not on the device".to_owned(),
            (true, None) => "no handshake yet".to_owned(),
            (true, Some(secs)) => format!("handshake {secs}s ago"),
        };
        let endpoint = p.endpoint.map_or_else(|| "-".to_owned(), |e| e.to_string());
        let ips: Vec<_> = p.allowed_ips.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  {:<16} {:<18} {:<22} {:<22} rx {} B, tx {} B",
            p.name,
            ips.join(","),
            endpoint,
            handshake,
            p.rx_bytes,
            p.tx_bytes
        );
    }
    let _ = writeln!(out, "\nservices");
    for s in &status.services {
        let backends: Vec<_> = s.backends.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  {} -> {}", s.vip, backends.join(", "));
    }
    let _ = writeln!(out, "\nNAT");
    if let Some(e) = &status.nat_error {
        let _ = writeln!(out, "  maps not readable: {e}");
    }
    let _ = writeln!(
        out,
        "  flows {} of {} ({:.1}% of the table)",
        status.flows,
        status.max_flows,
        status.table_pressure * 100.0
    );
    if let Some(counters) = &status.counters {
        let fields = serde_json::to_value(counters).unwrap_or_default();
        for (name, value) in fields.as_object().into_iter().flatten() {
            let _ = writeln!(out, "  {name:<18} {value}");
        }
    }
    for h in &status.histograms {
        let _ = writeln!(
            out,
            "\n{} timing (log2 buckets, count per [2^i, 2^(i+1)) ns)",
            h.vip
        );
        let _ = writeln!(out, "  db handshake  {}", histogram_line(&h.db_handshake));
        let _ = writeln!(out, "  request       {}", histogram_line(&h.request));
    }
    out
}

/// Non-empty buckets as `≥lower:count`.
fn histogram_line(buckets: &[u64]) -> String {
    let parts: Vec<_> = buckets
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("≥{}:{n}", human_ns(1u64 << i.min(63))))
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" ")
    }
}

fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}us", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{}ms", ns / 1_000_000),
        _ => format!("{}s", ns / 1_000_000_000),
    }
}

/// `edgehub flows` for a person: a line per translation.
pub fn render_flows(flows: &[FlowView]) -> String {
    let mut out = format!(
        "{:<22} {:<44} {:<44} {:<12} {:>9} {:>12}\n",
        "PEER", "ORIGINAL", "TRANSLATED", "STATE", "AGE", "DB HANDSHAKE"
    );
    for f in flows {
        let handshake = f.db_handshake_ns.map_or_else(|| "-".to_owned(), human_ns);
        let _ = writeln!(
            out,
            "{:<22} {:<44} {:<44} {:<12} {:>8}s {:>12}",
            f.peer,
            format!("{} -> {}", f.original.src, f.original.dst),
            format!("{} -> {}", f.translated.src, f.translated.dst),
            f.state,
            f.age_ns / 1_000_000_000,
            handshake
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{key::Key, wireguard::PeerState};

    #[test]
    fn pressure_and_handshake_age() {
        assert!((pressure(16_384, 65_536) - 0.25).abs() < 1e-9);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let device = DeviceState {
            private_key: None,
            listen_port: 51820,
            peers: vec![PeerState {
                public_key: Key([2; 32]),
                last_handshake: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(990)),
                rx_bytes: 5,
                ..PeerState::default()
            }],
        };
        let mut config = crate::config::sample();
        config.peers[0].public_key = Key([2; 32]);
        let peers = peers(&config, Some(&device), now);
        assert_eq!(peers[0].latest_handshake_secs, Some(10));
        assert_eq!(peers[0].rx_bytes, 5);
        assert!(peers[0].configured);
        assert!(!peers[1].configured);
    }
}
