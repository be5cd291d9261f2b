//! Finding and watching processes by what they hold, never by name: the userspace
//! WireGuard serving an interface is the process holding that interface's TUN device in
//! our network namespace.

use std::{fs, io, path::Path};

/// The PID of the process that holds the TUN device `iface` in the calling thread's
/// network namespace (`iff:` in the fdinfo of an open /dev/net/tun).
pub fn tun_owner(iface: &str) -> io::Result<Option<i32>> {
    let own_netns = fs::read_link("/proc/thread-self/ns/net")?;
    for entry in fs::read_dir("/proc")?.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let proc_dir = entry.path();
        // Processes vanish and deny access while we look: skip those.
        if fs::read_link(proc_dir.join("ns/net")).ok().as_ref() != Some(&own_netns) {
            continue;
        }
        if holds_tun(&proc_dir, iface) {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

fn holds_tun(proc_dir: &Path, iface: &str) -> bool {
    let Ok(fds) = fs::read_dir(proc_dir.join("fd")) else {
        return false;
    };
    let wanted = format!("iff:\t{iface}");
    fds.filter_map(Result::ok).any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| target == Path::new("/dev/net/tun"))
            && fs::read_to_string(proc_dir.join("fdinfo").join(fd.file_name()))
                .is_ok_and(|info| info.lines().any(|l| l == wanted))
    })
}

/// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
pub fn is_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn we_are_alive_and_hold_no_tun() {
        assert!(is_alive(std::process::id().cast_signed()));
        assert!(!is_alive(i32::MAX));
        assert_eq!(tun_owner("eh-no-such-tun").unwrap(), None);
    }
}
