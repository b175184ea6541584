//! Runs of d4c's programs the kernel skipped. The kernel does not run a tracing program
//! (`fmod_ret`) on a CPU where that program's previous run has not finished: on a
//! preemptible kernel, a task preempted inside the program makes every other task's call
//! of the hook on that CPU go undecided until it runs again. The kernel counts these in
//! the program's `recursion_misses` (`bpf_prog_info`, 5.12+); LSM programs are never
//! skipped this way. Read through each pinned link: link -> program id -> program info.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aya_obj::generated::bpf_prog_info;

use super::fs::links_dir;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

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

/// The size of the `union bpf_attr` prefix passed (`[u64; 16]`).
const ATTR_SIZE: libc::c_uint = 128;

/// `bpf(cmd, attr)` with `attr` the command's leading fields (the rest of `union bpf_attr`
/// is zero, as the kernel requires); a non-negative result is a new fd or 0.
fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a live, zero-tailed buffer of the size passed; the kernel reads
    // (and for info commands writes through pointers) within it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), ATTR_SIZE) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: i64) -> std::io::Result<OwnedFd> {
    let fd =
        i32::try_from(fd).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
    // SAFETY: `fd` was just returned by the kernel for us and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (its size is passed; the kernel fills what it has).
fn info_by_fd<T>(fd: &OwnedFd, info: &mut T) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut attr = [0u64; 16];
    // union bpf_attr, info: { u32 bpf_fd; u32 info_len; u64 info; }
    attr[0] = u64::from(fd.as_raw_fd().cast_unsigned()) | ((std::mem::size_of::<T>() as u64) << 32);
    attr[1] = std::ptr::from_mut(info) as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// The `recursion_misses` of the program behind the pinned link `link`.
fn misses_of(link: &Path) -> std::io::Result<u64> {
    let path = CString::new(link.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut attr = [0u64; 16];
    // obj: { u64 pathname; u32 bpf_fd; u32 file_flags; }
    attr[0] = path.as_ptr() as u64;
    let link_fd = owned(bpf(BPF_OBJ_GET, &mut attr)?)?;
    // struct bpf_link_info starts { u32 type; u32 id; u32 prog_id; ... }.
    let mut link_info = [0u32; 64];
    info_by_fd(&link_fd, &mut link_info)?;
    let mut attr = [0u64; 16];
    // get-by-id: { u32 prog_id; u32 next_id; u32 open_flags; }
    attr[0] = u64::from(link_info[2]);
    let prog_fd = owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)?;
    // SAFETY: a plain C struct of integers and pointers-as-integers; zero is valid.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    info_by_fd(&prog_fd, &mut info)?;
    Ok(info.recursion_misses)
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

/// The kernel's preemption model in force (`none`, `voluntary`, `full`, `lazy`), from
/// `/sys/kernel/debug/sched/preempt` (`none (voluntary) full`); `None` where debugfs is not
/// mounted or the kernel has no dynamic model.
#[must_use]
pub fn preemption_model() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/debug/sched/preempt").ok()?;
    model_in(&text)
}

fn model_in(text: &str) -> Option<String> {
    let start = text.find('(')?;
    let end = start + text[start..].find(')')?;
    Some(text[start + 1..end].to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_model_in_force_is_the_one_in_parentheses() {
        assert_eq!(
            super::model_in("none voluntary (full) lazy\n").as_deref(),
            Some("full")
        );
        assert_eq!(
            super::model_in("(none) voluntary full").as_deref(),
            Some("none")
        );
        assert_eq!(super::model_in("garbage"), None);
    }
}
