//! Runs of d4c's programs the kernel skipped. The kernel does not run a tracing program
//! (`fmod_ret`) on a CPU where that program's previous run has not finished: on a
//! preemptible kernel, a task preempted inside the program makes every other task's call
//! of the hook on that CPU go undecided until it runs again. The kernel counts these in
//! the program's `recursion_misses` (`bpf_prog_info`, 5.12+); LSM programs are never
//! skipped this way. Read through each pinned link: link -> program id -> program info.

use std::os::fd::AsFd;
use std::path::Path;

use super::{fs::links_dir, sys};

/// Why the skipped runs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SkippedError {
    #[error("cannot list the pinned links in {dir}: {source}")]
    List {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the program of the pinned link {link}: {source}")]
    Read {
        link: String,
        #[source]
        source: std::io::Error,
    },
}

/// The `recursion_misses` of the program behind the pinned link `link`.
fn misses_of(link: &Path) -> std::io::Result<u64> {
    let link_fd = sys::obj_get(link)?;
    let prog_fd = sys::prog_by_id(sys::link_info(link_fd.as_fd())?.prog_id)?;
    Ok(sys::prog_info(prog_fd.as_fd())?.0.recursion_misses)
}

/// The runs the kernel skipped, summed over every program linked under `pin_dir`.
pub fn skipped_runs(pin_dir: &Path) -> Result<u64, SkippedError> {
    let dir = links_dir(pin_dir);
    let entries = std::fs::read_dir(&dir).map_err(|source| SkippedError::List {
        dir: dir.display().to_string(),
        source,
    })?;
    let mut total = 0u64;
    for entry in entries {
        let link = entry
            .map_err(|source| SkippedError::List {
                dir: dir.display().to_string(),
                source,
            })?
            .path();
        total += misses_of(&link).map_err(|source| SkippedError::Read {
            link: link.display().to_string(),
            source,
        })?;
    }
    Ok(total)
}
