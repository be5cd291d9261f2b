//! WireGuard keys: 32 bytes, written in base64 in config files and `wg`, in hex on the
//! userspace control socket.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::STANDARD};

/// A Curve25519 key (private or public) as WireGuard uses it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

/// Why a string is not a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("is not base64 (44 characters ending in '=')")]
    Base64,
    #[error("is not hex (64 characters)")]
    Hex,
    #[error("decodes to {0} bytes instead of 32")]
    Length(usize),
}

impl Key {
    /// Parses the base64 form (`wg genkey`, `wg pubkey`).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::Base64)?;
        let len = bytes.len();
        Ok(Self(bytes.try_into().map_err(|_| KeyError::Length(len))?))
    }

    /// Parses the hex form used on the UAPI socket.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        if text.len() != 64 {
            return Err(KeyError::Hex);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| KeyError::Hex)?;
        }
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Key {
    // Never print a key that might be private in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}…)", &self.to_base64()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_round_trip() {
        let key = Key::from_base64("bzM6rw/efq+75VGhBgkCRChDnKfFlXQY560ejhvKCQY=").unwrap();
        assert_eq!(Key::from_hex(&key.to_hex()).unwrap(), key);
        assert_eq!(
            key.to_string(),
            "bzM6rw/efq+75VGhBgkCRChDnKfFlXQY560ejhvKCQY="
        );
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(Key::from_base64("not a key"), Err(KeyError::Base64));
        assert_eq!(Key::from_base64("AAAA"), Err(KeyError::Length(3)));
        assert_eq!(Key::from_hex("zz"), Err(KeyError::Hex));
    }
}
