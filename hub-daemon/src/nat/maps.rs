//! Writing a `NatConfig` into the kernel maps, and opening pinned maps by name.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
};

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, lpm_trie::Key};
use hub_common::{
    conntrack::{FlowEntry, FlowKey, direction},
    headers::IPPROTO_TCP,
    service::{Backend, MAX_BACKENDS, MAX_SERVICES, ServiceEntry, ServiceKey},
    settings::{IfaceInfo, NatSettings},
};

use super::{NatConfig, NatError, pins};

/// Opens a pinned map.
pub fn open(pin_dir: &Path, name: &'static str) -> Result<Map, NatError> {
    let path = pins::map_path(pin_dir, name);
    let data = MapData::from_pin(&path).map_err(|source| NatError::Map {
        map: name,
        source: Box::new(source),
    })?;
    Map::from_map_data(data).map_err(|source| NatError::Map {
        map: name,
        source: Box::new(source),
    })
}

/// Network byte order as stored in the maps (the raw wire bytes read natively).
pub fn wire_addr(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

pub fn from_wire_addr(addr: u32) -> Ipv4Addr {
    Ipv4Addr::from(addr.to_ne_bytes())
}

pub fn wire_socket(addr: u32, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(from_wire_addr(addr), u16::from_be(port))
}

/// The settings slot for `config` on these interfaces.
pub fn settings(config: &NatConfig, tunnel: IfaceInfo, egress: IfaceInfo) -> NatSettings {
    NatSettings {
        tunnel,
        egress,
        egress_addr: wire_addr(config.egress_addr),
        port_min: *config.port_range.start(),
        port_max: *config.port_range.end(),
        mss: config.mss.unwrap_or(0),
        enabled: 1,
        kernel_forwarding: 0,
    }
}

pub fn write_settings(map: &mut Map, settings: NatSettings) -> Result<(), NatError> {
    let mut array: Array<_, NatSettings> = Array::try_from(map).map_err(map_err("NAT_SETTINGS"))?;
    array.set(0, settings, 0).map_err(map_err("NAT_SETTINGS"))
}

pub fn read_settings(map: &Map) -> Result<NatSettings, NatError> {
    let array: Array<_, NatSettings> = Array::try_from(map).map_err(map_err("NAT_SETTINGS"))?;
    array.get(&0, 0).map_err(map_err("NAT_SETTINGS"))
}

/// Makes the services map hold exactly `config.services` (plus one VIP marker per address).
pub fn write_services(map: &mut Map, config: &NatConfig) -> Result<(), NatError> {
    let mut services: HashMap<_, ServiceKey, ServiceEntry> =
        HashMap::try_from(map).map_err(map_err("NAT_SERVICES"))?;
    let mut wanted = std::collections::HashMap::new();
    for (index, service) in config.services.iter().enumerate() {
        let index = u32::try_from(index)
            .ok()
            .filter(|i| *i < MAX_SERVICES)
            .ok_or(NatError::Config(
                "more services than the histogram map holds",
            ))?;
        if service.backends.is_empty() || service.backends.len() > MAX_BACKENDS {
            return Err(NatError::Config("a service needs 1 to 8 backends"));
        }
        let mut entry = ServiceEntry {
            index,
            count: service.backends.len() as u32,
            ..Default::default()
        };
        for (slot, backend) in entry.backends.iter_mut().zip(&service.backends) {
            *slot = Backend {
                addr: wire_addr(*backend.ip()),
                port: backend.port().to_be(),
                pad: 0,
            };
        }
        let key = ServiceKey {
            addr: wire_addr(*service.vip.ip()),
            port: service.vip.port().to_be(),
            proto: IPPROTO_TCP,
            pad: 0,
        };
        wanted.insert(key, entry);
        let marker = ServiceKey {
            addr: key.addr,
            ..ServiceKey::default()
        };
        wanted.insert(
            marker,
            ServiceEntry {
                index: MAX_SERVICES,
                ..ServiceEntry::default()
            },
        );
    }
    let stale: Vec<ServiceKey> = services
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted.contains_key(k))
        .collect();
    for key in stale {
        services.remove(&key).map_err(map_err("NAT_SERVICES"))?;
    }
    for (key, entry) in wanted {
        tracing::debug!(?key, count = entry.count, "service map update");
        services
            .insert(key, entry, 0)
            .map_err(map_err("NAT_SERVICES"))?;
    }
    Ok(())
}

/// Makes the peer trie hold exactly `config.peer_ranges`.
pub fn write_peers(map: &mut Map, config: &NatConfig) -> Result<(), NatError> {
    let mut trie: LpmTrie<_, [u8; 4], u8> = LpmTrie::try_from(map).map_err(map_err("NAT_PEERS"))?;
    let wanted: HashSet<(u32, [u8; 4])> = config
        .peer_ranges
        .iter()
        .map(|net| (u32::from(net.prefix_len()), net.network().octets()))
        .collect();
    let present: Vec<Key<[u8; 4]>> = trie.keys().filter_map(Result::ok).collect();
    for key in present {
        if !wanted.contains(&(key.prefix_len(), key.data())) {
            trie.remove(&key).map_err(map_err("NAT_PEERS"))?;
        }
    }
    for (len, data) in wanted {
        trie.insert(&Key::new(len, data), 1, 0)
            .map_err(map_err("NAT_PEERS"))?;
    }
    Ok(())
}

/// Removes flows whose backend is no longer behind their VIP; returns how many.
pub fn purge_moved_flows(map: &mut Map, config: &NatConfig) -> Result<usize, NatError> {
    let mut flows: HashMap<_, FlowKey, FlowEntry> =
        HashMap::try_from(map).map_err(map_err("NAT_FLOWS"))?;
    let backends: HashSet<(SocketAddrV4, SocketAddrV4)> = config
        .services
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| (s.vip, *b)))
        .collect();
    let doomed: Vec<(FlowKey, FlowKey)> = flows
        .iter()
        .filter_map(Result::ok)
        .filter(|(key, entry)| {
            entry.direction == direction::FORWARD
                && !backends.contains(&(
                    wire_socket(key.daddr, key.dport),
                    wire_socket(entry.rewrite.daddr, entry.rewrite.dport),
                ))
        })
        .map(|(key, entry)| (key, entry.other))
        .collect();
    for (key, other) in &doomed {
        let _ = flows.remove(key);
        let _ = flows.remove(other);
    }
    Ok(doomed.len())
}

pub fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> NatError {
    move |source| NatError::Map {
        map,
        source: Box::new(source),
    }
}
