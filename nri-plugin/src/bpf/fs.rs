//! The filesystem around the kernel programs: the BPF LSM probe, and the bpffs that holds
//! the pins (default paths in `crate::paths`).

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use super::{attach_mode::AttachMode, error::BpfError};
use crate::paths::BPFFS_ROOT;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Pin sub-directories.
#[must_use]
pub fn maps_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("maps")
}
#[must_use]
pub fn links_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("links")
}

/// Checks, before loading anything, that `bpf` is an active LSM (read from `lsm_list`).
pub fn check_bpf_lsm(lsm_list: &Path) -> Result<(), BpfError> {
    let list = std::fs::read_to_string(lsm_list).map_err(|e| BpfError::LsmUnavailable {
        reason: format!(
            "cannot read {} ({e}; is securityfs mounted?)",
            lsm_list.display()
        ),
    })?;
    if list.trim().split(',').any(|l| l == "bpf") {
        Ok(())
    } else {
        Err(BpfError::LsmUnavailable {
            reason: format!("{} is `{}`, without `bpf`", lsm_list.display(), list.trim()),
        })
    }
}

/// Whether `path` is on a bpffs.
#[must_use]
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &raw mut st) == 0 && st.f_type == BPF_FS_MAGIC
    }
}

fn mount_bpffs(at: &Path) -> Result<(), BpfError> {
    let err = |source| BpfError::Mount {
        path: at.into(),
        source,
    };
    let target = CString::new(at.as_os_str().as_bytes())
        .map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: all strings are NUL-terminated and live across the call.
    let rc = unsafe {
        libc::mount(
            c"bpffs".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(err(io::Error::last_os_error()))
    }
}

/// Makes `pin_dir` (and its `maps/`, `links/`) exist on a bpffs: uses the mounted one,
/// else mounts a private bpffs (nosuid, nodev, noexec) at `/sys/fs/bpf` when that is the
/// parent, else at `pin_dir` itself.
pub fn ensure_pin_dir(pin_dir: &Path) -> Result<(), BpfError> {
    let parent = pin_dir.parent().unwrap_or(Path::new("/"));
    if !is_bpffs(pin_dir) && !is_bpffs(parent) {
        let at = if parent == Path::new(BPFFS_ROOT) {
            parent
        } else {
            pin_dir
        };
        create_dir(at)?;
        // Checked again under a lock: a second mount there would hide the first's pins.
        let _guard = super::lock::mount_guard(at);
        if !is_bpffs(at) {
            mount_bpffs(at)?;
        }
    }
    for dir in [pin_dir.to_path_buf(), maps_dir(pin_dir), links_dir(pin_dir)] {
        create_dir(&dir)?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), BpfError> {
    std::fs::create_dir_all(dir).map_err(|source| BpfError::Io {
        what: "create directory",
        path: dir.into(),
        source,
    })
}

/// Prefix of the empty directory that names the build of the pinned programs.
const BUILD_PREFIX: &str = "build-";

/// The marker directory saying which build (`build_id`) pinned the programs in `pin_dir`.
#[must_use]
pub fn build_marker(pin_dir: &Path, build_id: u64) -> PathBuf {
    pin_dir.join(format!("{BUILD_PREFIX}{build_id:016x}"))
}

/// The build ids whose markers are in `pin_dir` (normally one).
#[must_use]
pub fn pinned_builds(pin_dir: &Path) -> Vec<u64> {
    std::fs::read_dir(pin_dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    u64::from_str_radix(name.strip_prefix(BUILD_PREFIX)?, 16).ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Records that build `build_id` pinned the programs in `pin_dir`.
pub fn mark_build(pin_dir: &Path, build_id: u64) -> Result<(), BpfError> {
    create_dir(&build_marker(pin_dir, build_id))
}

/// Prefix of the empty directory that names the attach mode of the pinned programs.
const MODE_PREFIX: &str = "mode-";

/// The marker directory of pins that a `d4c exec` loaded and no daemon has claimed: the
/// last `d4c exec` using them removes them (`Enforcer::release`).
const EXEC_OWNED: &str = "owner-exec";

/// The marker directories in `dir` (build, mode, owner), by name.
fn marker_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n.starts_with(BUILD_PREFIX) || n.starts_with(MODE_PREFIX) || n == EXEC_OWNED
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Records whether the pins in `pin_dir` are a `d4c exec` run's own (`true`: loaded by one,
/// no daemon has claimed them) or stay when their users end (`false`).
pub fn mark_exec_owned(pin_dir: &Path, owned: bool) -> Result<(), BpfError> {
    let marker = pin_dir.join(EXEC_OWNED);
    match (owned, marker.exists()) {
        (true, false) => create_dir(&marker),
        (false, true) => std::fs::remove_dir(&marker).map_err(|source| BpfError::Io {
            what: "remove marker",
            path: marker,
            source,
        }),
        _ => Ok(()),
    }
}

/// Whether the pins in `pin_dir` are a `d4c exec` run's own ([`mark_exec_owned`]).
#[must_use]
pub fn exec_owned(pin_dir: &Path) -> bool {
    pin_dir.join(EXEC_OWNED).exists()
}

/// Records how the programs in `pin_dir` are attached.
pub fn mark_mode(pin_dir: &Path, mode: AttachMode) -> Result<(), BpfError> {
    create_dir(&pin_dir.join(format!("{MODE_PREFIX}{}", mode.name())))
}

/// How the programs pinned in `pin_dir` are attached (`None`: nothing pinned, or pinned
/// by a build that did not record it, which attached LSM programs only).
#[must_use]
pub fn pinned_mode(pin_dir: &Path) -> Option<AttachMode> {
    std::fs::read_dir(pin_dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        AttachMode::from_name(name.strip_prefix(MODE_PREFIX)?)
    })
}

/// Prefix of the directory a previous build's pins move to while this build takes over.
const RETIRING_PREFIX: &str = "retiring-";

/// The directories of previous builds still attached during a handover, oldest first.
#[must_use]
pub fn retiring_dirs(pin_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(pin_dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(RETIRING_PREFIX))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn rename(from: &Path, to: &Path) -> Result<(), BpfError> {
    std::fs::rename(from, to).map_err(|source| BpfError::Io {
        what: "move pins",
        path: from.into(),
        source,
    })
}

/// Moves the pins of `pin_dir` (maps, links, build markers) into a new
/// `retiring-<n>` directory below it. The programs stay attached and keep enforcing with
/// their own maps until [`remove_pins`] removes that directory. Returns it.
pub fn retire(pin_dir: &Path) -> Result<PathBuf, BpfError> {
    let n = retiring_dirs(pin_dir).len();
    // Indices are four digits; past them the plain prefix is the fallback.
    let to = (n..10_000)
        .map(|i| pin_dir.join(format!("{RETIRING_PREFIX}{i:04}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| pin_dir.join(RETIRING_PREFIX));
    create_dir(&to)?;
    for sub in ["maps", "links"] {
        let from = pin_dir.join(sub);
        if from.exists() {
            rename(&from, &to.join(sub))?;
        }
    }
    for name in marker_names(pin_dir) {
        rename(&pin_dir.join(&name), &to.join(&name))?;
    }
    Ok(to)
}

/// Puts the pins of a `retiring` directory back in place (a takeover that failed).
pub fn unretire(pin_dir: &Path, retiring: &Path) -> Result<(), BpfError> {
    for sub in ["maps", "links"] {
        let from = retiring.join(sub);
        if from.exists() {
            rename(&from, &pin_dir.join(sub))?;
        }
    }
    for name in marker_names(retiring) {
        rename(&retiring.join(&name), &pin_dir.join(&name))?;
    }
    remove_pins(retiring)
}

/// Removes what `dir` itself pins (maps, links, build markers), leaving the directory and
/// any previous build's `retiring-*` directory.
pub fn remove_current(dir: &Path) -> Result<(), BpfError> {
    let io_err = |path: &Path, source| BpfError::Io {
        what: "remove pin",
        path: path.into(),
        source,
    };
    for sub in [maps_dir(dir), links_dir(dir)] {
        if let Ok(entries) = std::fs::read_dir(&sub) {
            for e in entries.flatten() {
                std::fs::remove_file(e.path()).map_err(|s| io_err(&e.path(), s))?;
            }
            std::fs::remove_dir(&sub).map_err(|s| io_err(&sub, s))?;
        }
    }
    for name in marker_names(dir) {
        let marker = dir.join(name);
        std::fs::remove_dir(&marker).map_err(|s| io_err(&marker, s))?;
    }
    Ok(())
}

/// Removes the directories, symlinks and files below `dir`, and `dir` (missing is fine).
fn remove_tree(dir: &Path) -> Result<(), BpfError> {
    match std::fs::symlink_metadata(dir) {
        Err(_) => return Ok(()),
        Ok(m) if !m.is_dir() => {
            return std::fs::remove_file(dir).map_err(|source| BpfError::Io {
                what: "remove",
                path: dir.into(),
                source,
            })
        }
        Ok(_) => {}
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            remove_tree(&e.path())?;
        }
    }
    std::fs::remove_dir(dir).map_err(|source| BpfError::Io {
        what: "remove",
        path: dir.into(),
        source,
    })
}

/// Removes `dir` and everything pinned in it, previous builds' `retiring-*` directories
/// included (a missing `dir` is fine); unmounts it first if it is a bpffs mount of its
/// own.
pub fn remove_pins(dir: &Path) -> Result<(), BpfError> {
    if !dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let own_mount = is_bpffs(dir) && !is_bpffs(parent);
    for r in retiring_dirs(dir) {
        remove_pins(&r)?;
    }
    remove_current(dir)?;
    remove_tree(&dir.join(super::lock::LOCKS))?;
    if own_mount {
        if let Ok(c) = CString::new(dir.as_os_str().as_bytes()) {
            // SAFETY: NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    std::fs::remove_dir(dir).map_err(|source| BpfError::Io {
        what: "remove pin",
        path: dir.into(),
        source,
    })
}
