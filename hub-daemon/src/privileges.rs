//! The early check that edgehub may do what it must: configure interfaces and routes
//! (`CAP_NET_ADMIN`) and load eBPF programs (`CAP_BPF`), refusing with a clear message if not.

use std::io;

/// Capabilities the daemon needs, as (number, name).
pub const NEEDED: &[(u32, &str)] = &[(12, "CAP_NET_ADMIN"), (39, "CAP_BPF")];

/// Why edgehub refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "edgehub needs root, or the capabilities {}; it lacks {}. Run it as root or through \
         systemd/edgehub.service",
        names(NEEDED.iter().map(|n| n.1)),
        names(.missing.iter().copied())
    )]
    Missing { missing: Vec<&'static str> },
    #[error("reading /proc/self/status")]
    Read(#[source] io::Error),
}

fn names<'a>(list: impl Iterator<Item = &'a str>) -> String {
    list.collect::<Vec<_>>().join(" and ")
}

/// The capabilities in an effective set (`CapEff:` of /proc/self/status) that `NEEDED`
/// lists but the set lacks.
pub fn missing_from(cap_eff_hex: &str) -> Vec<&'static str> {
    let set = u64::from_str_radix(cap_eff_hex.trim(), 16).unwrap_or(0);
    NEEDED
        .iter()
        .filter(|(bit, _)| set & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Fails unless the process holds every needed capability.
pub fn check() -> Result<(), PrivilegeError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(PrivilegeError::Read)?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or("0");
    let missing = missing_from(cap_eff);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::Missing { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        assert!(missing_from("000001ffffffffff").is_empty());
        assert_eq!(
            missing_from("0000000000000000"),
            ["CAP_NET_ADMIN", "CAP_BPF"]
        );
        assert_eq!(missing_from("0000000000001000"), ["CAP_BPF"]);
        let message = PrivilegeError::Missing {
            missing: vec!["CAP_BPF"],
        }
        .to_string();
        assert!(message.contains("lacks CAP_BPF"), "{message}");
    }
}
