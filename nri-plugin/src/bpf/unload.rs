//! Ending enforcement: removing every pin, then waiting until the kernel has freed the
//! programs the pinned links attached. A link is detached after its last reference goes,
//! in deferred work that waits for RCU (about 2 s in an emulated guest): until then the
//! programs still decide, so "unloaded" is said only once they are gone.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{fs, sys, BpfError};

/// How long [`unload`] waits for the kernel to free the programs.
pub const FREE_WAIT: Duration = Duration::from_secs(30);

/// The ids of the programs the links pinned under `pin_dir` (and its retiring builds')
/// run.
fn linked_programs(pin_dir: &Path) -> Vec<u32> {
    let mut dirs = vec![fs::links_dir(pin_dir)];
    dirs.extend(fs::retiring_dirs(pin_dir).iter().map(|d| fs::links_dir(d)));
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter_map(|e| sys::obj_get(&e.path()).ok())
        .filter_map(|link| sys::link_info(link.as_fd()).ok())
        .map(|info| info.prog_id)
        .collect()
}

/// Removes every pin under `pin_dir` and waits up to `limit` until the kernel has freed
/// the programs they attached.
pub fn unload(pin_dir: &Path, limit: Duration) -> Result<(), BpfError> {
    let programs = linked_programs(pin_dir);
    fs::remove_pins(pin_dir)?;
    let start = Instant::now();
    loop {
        let left: Vec<u32> = programs
            .iter()
            .copied()
            .filter(|&id| sys::prog_by_id(id).is_ok())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= limit {
            return Err(BpfError::StillLoaded {
                dir: pin_dir.to_owned(),
                ids: left,
                waited: limit,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
