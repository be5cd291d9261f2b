//! A client for WireGuard's cross-platform userspace API: the text protocol that
//! wireguard-go serves on `/run/wireguard/<iface>.sock` (`get=1`, `set=1`, key=value lines,
//! answered by `errno=N` and a blank line).

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use ipnet::Ipv4Net;

use super::{DeviceState, PeerState};
use crate::key::Key;

/// Where wireguard-go and `wg` meet.
pub const SOCKET_DIR: &str = "/run/wireguard";

/// Why a UAPI exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum UapiError {
    #[error("connecting to {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("talking to {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} answered errno={errno} to {request}")]
    Refused {
        path: PathBuf,
        request: &'static str,
        errno: i32,
    },
    #[error("{path} sent an unreadable line {line:?}")]
    Malformed { path: PathBuf, line: String },
}

/// The control socket of one interface.
#[derive(Debug, Clone)]
pub struct Uapi {
    path: PathBuf,
}

impl Uapi {
    pub fn for_interface(iface: &str) -> Self {
        Self {
            path: Path::new(SOCKET_DIR).join(format!("{iface}.sock")),
        }
    }

    /// A control socket somewhere else (a test's private /run/wireguard).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> Result<UnixStream, UapiError> {
        let stream = UnixStream::connect(&self.path).map_err(|source| UapiError::Connect {
            path: self.path.clone(),
            source,
        })?;
        let timeout = Some(Duration::from_secs(5));
        stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(|source| UapiError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(stream)
    }

    /// Sends `request` (which must end with a blank line) and returns the answer's lines
    /// before `errno=`.
    fn exchange(&self, request: &str, name: &'static str) -> Result<Vec<String>, UapiError> {
        let io_err = |source| UapiError::Io {
            path: self.path.clone(),
            source,
        };
        let mut stream = self.connect()?;
        stream.write_all(request.as_bytes()).map_err(io_err)?;
        let mut lines = Vec::new();
        for line in BufReader::new(stream).lines() {
            let line = line.map_err(io_err)?;
            if let Some(errno) = line.strip_prefix("errno=") {
                let errno = errno.parse().map_err(|_| self.malformed(&line))?;
                if errno != 0 {
                    return Err(UapiError::Refused {
                        path: self.path.clone(),
                        request: name,
                        errno,
                    });
                }
                return Ok(lines);
            }
            lines.push(line);
        }
        Err(io_err(io::ErrorKind::UnexpectedEof.into()))
    }

    fn malformed(&self, line: &str) -> UapiError {
        UapiError::Malformed {
            path: self.path.clone(),
            line: line.to_owned(),
        }
    }

    /// The device's configuration and per-peer statistics.
    pub fn get(&self) -> Result<DeviceState, UapiError> {
        let lines = self.exchange("get=1\n\n", "get")?;
        parse_get(&lines).map_err(|line| self.malformed(&line))
    }

    /// Applies a `set=1` body (key=value lines, without the leading `set=1`).
    pub fn set(&self, body: &str) -> Result<(), UapiError> {
        tracing::debug!(socket = %self.path.display(), lines = body.lines().count(), "uapi set");
        self.exchange(&format!("set=1\n{body}\n"), "set").map(drop)
    }
}

/// Parses the answer to `get=1`; an error carries the unreadable line.
pub fn parse_get(lines: &[String]) -> Result<DeviceState, String> {
    let mut device = DeviceState::default();
    for line in lines.iter().filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once('=').ok_or_else(|| line.clone())?;
        let bad = || line.clone();
        match (key, device.peers.last_mut()) {
            ("private_key", _) => {
                device.private_key = Some(Key::from_hex(value).map_err(|_| bad())?);
            }
            ("listen_port", _) => device.listen_port = value.parse().map_err(|_| bad())?,
            ("public_key", _) => device.peers.push(PeerState {
                public_key: Key::from_hex(value).map_err(|_| bad())?,
                ..PeerState::default()
            }),
            ("endpoint", Some(peer)) => {
                peer.endpoint = Some(parse_endpoint(value).ok_or_else(bad)?);
            }
            ("persistent_keepalive_interval", Some(peer)) => {
                peer.persistent_keepalive = value.parse().map_err(|_| bad())?;
            }
            ("allowed_ip", Some(peer)) => {
                // IPv6 ranges are not edgehub's; keep them out of the comparison.
                if let Ok(net) = value.parse::<Ipv4Net>() {
                    peer.allowed_ips.push(net);
                }
            }
            ("last_handshake_time_sec", Some(peer)) => {
                let secs: u64 = value.parse().map_err(|_| bad())?;
                peer.last_handshake =
                    (secs > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            }
            ("rx_bytes", Some(peer)) => peer.rx_bytes = value.parse().map_err(|_| bad())?,
            ("tx_bytes", Some(peer)) => peer.tx_bytes = value.parse().map_err(|_| bad())?,
            _ => {}
        }
    }
    Ok(device)
}

/// `1.2.3.4:5` or `[::1]:5`.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_get_answer() {
        let key = Key([7; 32]).to_hex();
        let peer = Key([9; 32]).to_hex();
        let text = format!(
            "private_key={key}\nlisten_port=51820\npublic_key={peer}\nendpoint=192.0.2.1:4000\n\
             last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=10\n\
             rx_bytes=20\npersistent_keepalive_interval=25\nallowed_ip=10.50.1.1/32\n\
             allowed_ip=fd00::/64\nprotocol_version=1"
        );
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let device = parse_get(&lines).unwrap();
        assert_eq!(device.private_key, Some(Key([7; 32])));
        assert_eq!(device.listen_port, 51820);
        let p = &device.peers[0];
        assert_eq!(p.public_key, Key([9; 32]));
        assert_eq!(p.endpoint, Some("192.0.2.1:4000".parse().unwrap()));
        assert_eq!(p.allowed_ips, ["10.50.1.1/32".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(
            (p.rx_bytes, p.tx_bytes, p.persistent_keepalive),
            (20, 10, 25)
        );
        assert!(p.last_handshake.is_some());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_get(&["listen_port=x".to_owned()]).is_err());
        assert!(parse_get(&["nonsense".to_owned()]).is_err());
    }
}
