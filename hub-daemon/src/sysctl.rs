//! The kernel settings forwarding needs, written through /proc/sys, with the values they had
//! before edgehub changed them remembered so that `edgehub down` can put them back.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

/// Settings edgehub needs, as (name, value).
///
/// IPv4 forwarding: translated packets leave through another interface than they came in,
/// and the kernel's FIB lookup from eBPF reports "forwarding disabled" without it.
pub const REQUIRED: &[(&str, &str)] = &[("net.ipv4.ip_forward", "1")];

/// A failed read or write of one setting.
#[derive(Debug, thiserror::Error)]
#[error("{call} {path}")]
pub struct SysctlError {
    pub call: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Where a setting lives: `net.ipv4.ip_forward` -> `<root>/net/ipv4/ip_forward`.
pub fn path(root: &Path, name: &str) -> PathBuf {
    root.join(name.replace('.', "/"))
}

pub fn read(root: &Path, name: &str) -> Result<String, SysctlError> {
    let path = path(root, name);
    std::fs::read_to_string(&path)
        .map(|v| v.trim().to_owned())
        .map_err(|source| SysctlError {
            call: "read",
            path,
            source,
        })
}

fn write(root: &Path, name: &str, value: &str) -> Result<(), SysctlError> {
    let path = path(root, name);
    std::fs::write(&path, format!("{value}\n")).map_err(|source| SysctlError {
        call: "write",
        path,
        source,
    })
}

/// Sets each of `settings` that differs, recording its first original value in `saved`
/// (a value saved by an earlier run is kept: that is the one to restore). Returns the
/// names changed.
pub fn ensure(
    root: &Path,
    settings: &[(&str, &str)],
    saved: &mut BTreeMap<String, String>,
) -> Result<Vec<String>, SysctlError> {
    let mut changed = Vec::new();
    for &(name, value) in settings {
        let current = read(root, name)?;
        if current == value {
            continue;
        }
        saved.entry(name.to_owned()).or_insert(current.clone());
        tracing::info!(sysctl = name, from = current, to = value, "setting");
        write(root, name, value)?;
        changed.push(name.to_owned());
    }
    Ok(changed)
}

/// Puts back every saved value; the ones restored leave `saved`.
pub fn restore(root: &Path, saved: &mut BTreeMap<String, String>) -> Result<(), SysctlError> {
    while let Some((name, value)) = saved.pop_first() {
        tracing::info!(sysctl = name, to = value, "restoring");
        if let Err(e) = write(root, &name, &value) {
            saved.insert(name, value);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_saves_the_first_original_and_restore_puts_it_back() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("net/ipv4")).unwrap();
        std::fs::write(root.path().join("net/ipv4/ip_forward"), "0\n").unwrap();
        let mut saved = BTreeMap::new();

        assert_eq!(
            ensure(root.path(), REQUIRED, &mut saved).unwrap(),
            ["net.ipv4.ip_forward"]
        );
        assert!(
            ensure(root.path(), REQUIRED, &mut saved)
                .unwrap()
                .is_empty(),
            "idempotent"
        );
        assert_eq!(read(root.path(), "net.ipv4.ip_forward").unwrap(), "1");
        assert_eq!(saved["net.ipv4.ip_forward"], "0");

        restore(root.path(), &mut saved).unwrap();
        assert_eq!(read(root.path(), "net.ipv4.ip_forward").unwrap(), "0");
        assert!(saved.is_empty());
    }
}
