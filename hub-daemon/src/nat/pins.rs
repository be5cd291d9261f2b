//! Where the NAT's maps and tcx links are pinned, and attaching or adopting the links.
//!
//! Maps and links live in `pin_dir` on bpffs: they outlive the daemon, so open flows keep
//! being translated while it restarts. A restarted daemon loads its programs against the
//! pinned maps and swaps them into the pinned links (`bpf_link_update`): never a second
//! attachment of the same program.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::programs::{
    LinkOrder, SchedClassifier, TcAttachType,
    links::{FdLink, PinnedLink},
    tc::{SchedClassifierLink, TcAttachOptions},
};

use super::{NatError, ProgramStats};

/// Every map the NAT pins, by its name in the object.
pub const MAPS: [&str; 6] = [
    "NAT_SETTINGS",
    "NAT_SERVICES",
    "NAT_PEERS",
    "NAT_FLOWS",
    "NAT_COUNTERS",
    "NAT_HISTOGRAMS",
];

/// The key and value sizes each pinned map must have to be adopted by this build.
pub fn expected_sizes() -> [(&'static str, usize, usize); 6] {
    use hub_common::{
        conntrack::{FlowEntry, FlowKey},
        service::{ServiceEntry, ServiceKey},
        settings::NatSettings,
        stats::{NatCounters, ServiceHistogram},
    };
    use std::mem::size_of;
    [
        ("NAT_SETTINGS", size_of::<u32>(), size_of::<NatSettings>()),
        (
            "NAT_SERVICES",
            size_of::<ServiceKey>(),
            size_of::<ServiceEntry>(),
        ),
        // An LPM key: prefix length, then the address.
        ("NAT_PEERS", size_of::<u32>() + 4, size_of::<u8>()),
        ("NAT_FLOWS", size_of::<FlowKey>(), size_of::<FlowEntry>()),
        ("NAT_COUNTERS", size_of::<u32>(), size_of::<NatCounters>()),
        (
            "NAT_HISTOGRAMS",
            size_of::<u32>(),
            size_of::<ServiceHistogram>(),
        ),
    ]
}

/// Fails when a pinned map was made by a build with other map layouts: adopting it would
/// make the programs fail to load (or worse, misread it).
pub fn check_layouts(pin_dir: &Path) -> Result<(), NatError> {
    for (map, key, value) in expected_sizes() {
        let path = map_path(pin_dir, map);
        if !path.exists() {
            continue;
        }
        let info = aya::maps::MapInfo::from_pin(&path).map_err(|source| NatError::Map {
            map,
            source: Box::new(source),
        })?;
        if info.key_size() as usize != key || info.value_size() as usize != value {
            return Err(NatError::IncompatiblePins { map, path });
        }
    }
    Ok(())
}

/// The two programs, the pin name of each one's link, and the interface role.
pub const FORWARD_PROGRAM: &str = "eh_nat_fwd";
pub const REPLY_PROGRAM: &str = "eh_nat_reply";
pub const FORWARD_LINK: &str = "link_eh_nat_fwd";
pub const REPLY_LINK: &str = "link_eh_nat_reply";

pub fn map_path(pin_dir: &Path, map: &str) -> PathBuf {
    pin_dir.join(map)
}

/// Attaches `program` at tcx ingress of `iface` and pins the link as `link_name`, or, when
/// `adopt` and such a pin exists, swaps the program into the pinned link.
pub fn attach(
    program: &mut SchedClassifier,
    iface: &str,
    pin_dir: &Path,
    link_name: &str,
    adopt: bool,
) -> Result<(), NatError> {
    let path = pin_dir.join(link_name);
    let attach_error = |source| NatError::Attach {
        program: link_name.to_owned(),
        iface: iface.to_owned(),
        source: Box::new(source),
    };
    if adopt && path.exists() {
        let pinned = PinnedLink::from_pin(&path).map_err(|source| NatError::Link {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let link = SchedClassifierLink::try_from(FdLink::from(pinned)).map_err(|source| {
            NatError::Link {
                path: path.clone(),
                source: Box::new(source),
            }
        })?;
        let id = program.attach_to_link(link).map_err(attach_error)?;
        // The pin keeps the link; our fd may go.
        drop(program.take_link(id).map_err(attach_error)?);
        tracing::info!(iface, link = %path.display(), "adopted pinned tcx link");
        return Ok(());
    }
    remove_file(&path)?;
    // A program of ours attached without our pin (pins deleted by hand, a crashed run that
    // never pinned): attaching again would translate every packet twice.
    let name = program
        .info()
        .ok()
        .and_then(|i| i.name_as_str().map(str::to_owned));
    if let Some(name) = name
        && attached(iface)?.iter().any(|p| p.name == name)
    {
        return Err(NatError::AlreadyAttached {
            program: name,
            iface: iface.to_owned(),
        });
    }
    let options = TcAttachOptions::TcxOrder(LinkOrder::default());
    let id = program
        .attach_with_options(iface, TcAttachType::Ingress, options)
        .map_err(attach_error)?;
    let link = program.take_link(id).map_err(attach_error)?;
    let link = FdLink::try_from(link).map_err(|source| NatError::Link {
        path: path.clone(),
        source: Box::new(source),
    })?;
    link.pin(&path).map_err(|source| NatError::Pin {
        path: path.clone(),
        source: Box::new(source),
    })?;
    tracing::info!(iface, link = %path.display(), "attached at tcx ingress and pinned");
    Ok(())
}

/// The programs attached at tcx ingress of `iface`, in order.
pub fn attached(iface: &str) -> Result<Vec<ProgramStats>, NatError> {
    let (_, programs) =
        SchedClassifier::query_tcx(iface, TcAttachType::Ingress).map_err(|source| {
            NatError::Attach {
                program: "tcx query".to_owned(),
                iface: iface.to_owned(),
                source: Box::new(source),
            }
        })?;
    Ok(programs
        .iter()
        .map(|p| ProgramStats {
            id: p.id(),
            name: p.name_as_str().unwrap_or_default().to_owned(),
            run_count: p.run_count(),
            run_time_ns: u64::try_from(p.run_time().as_nanos()).unwrap_or(u64::MAX),
        })
        .collect())
}

/// `bpf(2)` commands used directly: aya 0.14 has no explicit link detach.
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_DETACH: libc::c_long = 34;

/// Detaches the link pinned at `path` now (`BPF_LINK_DETACH`), then removes the pin.
/// Unpinning alone detaches only once the kernel drops its last reference, which it may
/// defer; a removal followed by a fresh start must not race with that.
pub fn detach_link(path: &Path) -> Result<(), NatError> {
    use std::os::{fd::FromRawFd as _, unix::ffi::OsStrExt as _};

    if !path.exists() {
        return Ok(());
    }
    let io_error = |source| NatError::Io {
        what: "detaching a pinned link",
        path: path.to_owned(),
        source,
    };
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // `union bpf_attr` for BPF_OBJ_GET: pathname (u64), bpf_fd, file_flags; rest zero.
    let mut get = [0_u64; 4];
    get[0] = name.as_ptr() as u64;
    // SAFETY: `get` is a valid, zero-padded `bpf_attr` whose pathname outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, get.as_ptr(), size_of_val(&get)) };
    if fd < 0 {
        return Err(io_error(io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let link = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // `union bpf_attr` for BPF_LINK_DETACH: link_fd (u32); rest zero.
    let detach = [
        u64::from(std::os::fd::AsRawFd::as_raw_fd(&link).unsigned_abs()),
        0,
    ];
    // SAFETY: `detach` is a valid, zero-padded `bpf_attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_DETACH,
            detach.as_ptr(),
            size_of_val(&detach),
        )
    };
    // A link whose interface is gone is detached already (ENOLINK): fine.
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::ENOLINK) {
        return Err(io_error(io::Error::last_os_error()));
    }
    drop(link);
    remove_file(path)
}

/// bpffs's `statfs` magic number.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mounts bpffs on the parent of `pin_dir` unless one is there already (as systemd does at
/// /sys/fs/bpf on most distributions), then creates `pin_dir`.
pub fn prepare_dir(pin_dir: &Path) -> Result<(), NatError> {
    let io_error = |what, source| NatError::Io {
        what,
        path: pin_dir.to_owned(),
        source,
    };
    let parent = pin_dir.parent().unwrap_or(Path::new("/"));
    let fs = nix::sys::statfs::statfs(parent)
        .map_err(|e| io_error("checking for bpffs", io::Error::from(e)))?;
    if fs.filesystem_type().0 != BPF_FS_MAGIC {
        tracing::info!(path = %parent.display(), "mounting bpffs");
        nix::mount::mount(
            Some("bpf"),
            parent,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| io_error("mounting bpffs", io::Error::from(e)))?;
    }
    fs::create_dir_all(pin_dir).map_err(|source| io_error("creating the pin directory", source))
}

/// Removes a pin (detaching a link when it held the last reference); absent is fine.
pub fn remove_file(path: &Path) -> Result<(), NatError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NatError::Io {
            what: "removing a pin",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}
