//! The regions of the original setup, from `agent/regions.toml` (built into the binary).

use serde::{Deserialize, Serialize};

/// The repository's regions file, embedded.
pub const DEFAULT_REGIONS: &str = include_str!("../regions.toml");

/// One edge region.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Region {
    /// Region code (`lhr`).
    pub code: String,
    /// Flag emoji.
    pub flag: String,
    /// City.
    pub city: String,
    /// WireGuard address of the region's agent.
    pub wg_address: String,
    /// Published RTT to the database's region, ms.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
}

#[derive(Deserialize)]
struct File {
    region: Vec<Region>,
}

/// Parses a regions TOML text.
pub fn parse(text: &str) -> Result<Vec<Region>, toml::de::Error> {
    Ok(toml::from_str::<File>(text)?.region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_ten_regions() {
        let r = parse(DEFAULT_REGIONS).expect("parse");
        let codes: Vec<&str> = r.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "lhr", "cdg", "fra", "iad", "ord", "lax", "sin", "gru", "nrt", "syd"
            ]
        );
        assert_eq!(r[0].wg_address, "10.50.3.1");
    }
}
