//! Path building by walking dentries and mounts (no `bpf_d_path`: 6.1 refuses it in LSM
//! hooks), up to the task's root, so paths read as the container sees them.
//!
//! Pass 1 walks from the dentry up to `current->fs->root`, crossing mount points through
//! `struct mount`, and records each component's name pointer and length. Pass 2 writes the
//! components root-first into a [`PathBuf`] whose first bytes double as an LPM trie key.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task, generated as gen};
use d4c_common::{
    offsets::{
        OFF_DENTRY_NAME_LEN, OFF_DENTRY_NAME_PTR, OFF_DENTRY_PARENT, OFF_FS_ROOT,
        OFF_MOUNT_MNT, OFF_MOUNT_MOUNTPOINT, OFF_MOUNT_PARENT, OFF_PATH_DENTRY, OFF_PATH_MNT,
        OFF_TASK_FS, OFF_VFSMOUNT_ROOT,
    },
    event::EVENT_PATH_MAX,
    Event, PATH_KEY_MAX,
};

use crate::{
    maps::SCRATCH,
    offsets::{off, read, read_ptr},
};

/// Path bytes kept (the rest of a longer path is only measured).
pub const PATH_BUF: usize = EVENT_PATH_MAX;
/// Room after `PATH_BUF` so that a component copy starting below it never needs a check.
const SLACK: usize = 256;
/// Path components recorded; a deeper path is flagged `PATH_TOO_DEEP`.
pub const MAX_DEPTH: usize = 64;
/// Dentries and mount crossings visited in pass 1.
const WALK_STEPS: usize = 96;

/// The path is not below the task's root (an internal mount, another mount namespace, an
/// overlayfs backing file): its bytes are relative to the topmost mount reached.
pub const PATH_UNREACHABLE: u32 = 1;
/// The path has more than `MAX_DEPTH` components: its bytes are not the real path.
pub const PATH_TOO_DEEP: u32 = 2;
/// A kernel read failed.
pub const PATH_FAULT: u32 = 4;

/// A path being built; its first `8 + PATH_KEY_MAX` bytes are an LPM trie key.
#[repr(C)]
pub struct PathBuf {
    /// LPM key: bits of (rule set + path) that count, `32 + 8 * min(len, PATH_KEY_MAX)`.
    pub prefix_len: u32,
    /// LPM key: the rule set, big-endian.
    pub rule_set_be: [u8; 4],
    /// The path bytes (`len` of them are valid when `len <= PATH_BUF`).
    pub buf: [u8; PATH_BUF + SLACK],
    /// The full path length (may exceed `PATH_BUF`).
    pub len: u32,
    /// Index of the last `/`, or -1.
    pub last_slash: i32,
    /// `PATH_*` flags.
    pub flags: u32,
    pub _pad: u32,
}

/// What `emit` needs besides the paths (filled by the hook before it calls `emit`).
#[repr(C)]
pub struct Meta {
    pub cgroup_id: u64,
    pub rule_set: u32,
    pub mode: u32,
    pub hook: u16,
    pub kind: u8,
    pub op: u8,
    pub ops: u8,
    pub actions: u8,
    pub interactive: u8,
    /// 1: `exe` already holds the executable path (else `emit` builds it from the task).
    pub exe_ready: u8,
}

/// Per-CPU scratch space.
#[repr(C)]
pub struct Scratch {
    pub target: PathBuf,
    pub exe: PathBuf,
    pub comp_ptr: [u64; MAX_DEPTH],
    pub comp_len: [u32; MAX_DEPTH],
    /// `bprm->filename` for exec.
    pub fname: [u8; 256],
    pub meta: Meta,
    pub walk: Walk,
    /// Room to assemble an event before it is known to be needed (unused today).
    pub _event: [u8; 0],
}
const _: () = assert!(core::mem::size_of::<Event>() <= 1024);
const _: () = assert!(PATH_KEY_MAX <= PATH_BUF);

/// Which buffer of the scratch space to build into.
pub const TARGET: u32 = 0;
pub const EXE: u32 = 1;

/// State of a path walk, kept in the scratch space so that the `bpf_loop` callbacks (each
/// verified once, whatever the path) can reach it.
#[repr(C)]
pub struct Walk {
    dentry: u64,
    mnt: u64,
    mnt_root: u64,
    root_dentry: u64,
    root_mnt: u64,
    /// Components recorded.
    n: u32,
    flags: u32,
    /// Bytes written (pass 2).
    at: u32,
    leaf_len: u32,
    which: u32,
    /// Start of the basename (exec name scan).
    pub base: u32,
}

#[inline(always)]
fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: this CPU's scratch value, valid while the program runs.
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// Builds the path of `dentry` on mount `vfsmnt` into `s.target` (`which == TARGET`) or
/// `s.exe`. Never fails: problems are recorded in the returned `PATH_*` flags, and the
/// bytes are a best effort.
#[inline(never)]
pub fn build(s: *mut Scratch, which: u32, vfsmnt: *const u8, dentry: *const u8) -> u32 {
    // SAFETY: `s` is this CPU's scratch value, valid for the whole program run.
    let s = unsafe { &mut *s };
    if start(s, vfsmnt, dentry).is_err() {
        s.walk.flags = PATH_FAULT;
        s.walk.n = 0;
    } else {
        // SAFETY: the callback is a static function; no context pointer.
        unsafe {
            gen::bpf_loop(WALK_STEPS as u32, walk_step as *mut c_void, core::ptr::null_mut(), 0)
        };
    }
    s.walk.at = 0;
    s.walk.leaf_len = 0;
    s.walk.which = which;
    // SAFETY: as above.
    unsafe { gen::bpf_loop(MAX_DEPTH as u32, copy_step as *mut c_void, core::ptr::null_mut(), 0) };
    let (n, at, leaf_len, flags) = (s.walk.n, s.walk.at, s.walk.leaf_len, s.walk.flags);
    let pb = if which == TARGET { &mut s.target } else { &mut s.exe };
    if n == 0 {
        pb.buf[0] = b'/';
        pb.len = 1;
        pb.last_slash = 0;
    } else {
        pb.len = at;
        pb.last_slash = (at - leaf_len - 1) as i32;
    }
    pb.flags = flags;
    flags
}

#[inline(always)]
fn start(s: &mut Scratch, vfsmnt: *const u8, dentry: *const u8) -> Result<(), i64> {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let fs = read_ptr(task, OFF_TASK_FS)?;
    let root = fs.wrapping_add(off(OFF_FS_ROOT));
    let w = &mut s.walk;
    w.root_mnt = read_ptr(root, OFF_PATH_MNT)? as u64;
    w.root_dentry = read_ptr(root, OFF_PATH_DENTRY)? as u64;
    w.dentry = dentry as u64;
    w.mnt = vfsmnt as u64;
    w.mnt_root = read_ptr(vfsmnt, OFF_VFSMOUNT_ROOT)? as u64;
    w.n = 0;
    w.flags = PATH_TOO_DEEP;
    Ok(())
}

/// Pass 1, one step: up one dentry (recording its name) or across one mount point.
/// Returns 0 to go on, 1 to stop.
extern "C" fn walk_step(_i: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else { return 1 };
    match step(s) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(_) => {
            s.walk.flags = PATH_FAULT;
            1
        }
    }
}

#[inline(always)]
fn step(s: &mut Scratch) -> Result<bool, i64> {
    let w = &mut s.walk;
    if w.dentry == w.root_dentry && w.mnt == w.root_mnt {
        w.flags = 0;
        return Ok(false);
    }
    let d = w.dentry as *const u8;
    if w.dentry == w.mnt_root {
        let mount = (w.mnt as *const u8).wrapping_sub(off(OFF_MOUNT_MNT));
        let parent = read_ptr(mount, OFF_MOUNT_PARENT)?;
        if parent == mount {
            w.flags = PATH_UNREACHABLE;
            return Ok(false);
        }
        w.dentry = read_ptr(mount, OFF_MOUNT_MOUNTPOINT)? as u64;
        let m = parent.wrapping_add(off(OFF_MOUNT_MNT));
        w.mnt = m as u64;
        w.mnt_root = read_ptr(m, OFF_VFSMOUNT_ROOT)? as u64;
        return Ok(true);
    }
    let parent = read_ptr(d, OFF_DENTRY_PARENT)?;
    if parent == d {
        w.flags = PATH_UNREACHABLE;
        return Ok(false);
    }
    let n = w.n as usize;
    if n >= MAX_DEPTH {
        return Ok(false);
    }
    let name = read::<u64>(d, OFF_DENTRY_NAME_PTR)?;
    let len = read::<u32>(d, OFF_DENTRY_NAME_LEN)?;
    s.comp_ptr[n & (MAX_DEPTH - 1)] = name;
    s.comp_len[n & (MAX_DEPTH - 1)] = len;
    s.walk.n = n as u32 + 1;
    s.walk.dentry = parent as u64;
    Ok(true)
}

/// Pass 2, one step: writes `/` and component `n - 1 - j` (root first).
extern "C" fn copy_step(j: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else { return 1 };
    let n = u64::from(s.walk.n);
    if j >= n || n > MAX_DEPTH as u64 {
        return 1;
    }
    let i = ((n - 1 - j) as usize) & (MAX_DEPTH - 1);
    let len = (s.comp_len[i] & 0xff) as usize;
    let name = s.comp_ptr[i];
    let mut at = s.walk.at as usize;
    let pb = if s.walk.which == TARGET { &mut s.target } else { &mut s.exe };
    if at < PATH_BUF {
        pb.buf[at] = b'/';
    }
    at += 1;
    if at < PATH_BUF {
        let dst = pb.buf.as_mut_ptr().wrapping_add(at & (PATH_BUF - 1));
        // SAFETY: dst + len <= buf + PATH_BUF - 1 + 255, inside buf; the helper checks the
        // source.
        unsafe { gen::bpf_probe_read_kernel(dst.cast(), len as u32, name as *const _) };
    }
    s.walk.at = (at + len) as u32;
    s.walk.leaf_len = len as u32;
    0
}

/// Sets `s.walk.base` to the index after the last `/` among the first `n` bytes of
/// `s.fname`.
pub fn basename_start(s: &mut Scratch, n: u32) {
    s.walk.base = 0;
    s.walk.n = n;
    // SAFETY: static callback, no context.
    unsafe { gen::bpf_loop(256, base_step as *mut c_void, core::ptr::null_mut(), 0) };
}

extern "C" fn base_step(i: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else { return 1 };
    if i >= u64::from(s.walk.n) {
        return 1;
    }
    if s.fname[(i as usize) & 0xff] == b'/' {
        s.walk.base = i as u32 + 1;
    }
    0
}

/// Writes the name of `dentry` alone (no leading `/`) into `s.target` (for a memfd, whose
/// path is `memfd:NAME`).
#[inline(always)]
pub fn name_only(s: &mut Scratch, dentry: *const u8) -> Result<(), i64> {
    let name = read::<u64>(dentry, OFF_DENTRY_NAME_PTR)?;
    let len = (read::<u32>(dentry, OFF_DENTRY_NAME_LEN)? & 0xff) as usize;
    let pb = &mut s.target;
    // SAFETY: len <= 255 < the buffer's size.
    unsafe { gen::bpf_probe_read_kernel(pb.buf.as_mut_ptr().cast(), len as u32, name as *const _) };
    pb.len = len as u32;
    pb.last_slash = -1;
    pb.flags = 0;
    Ok(())
}

/// Makes `pb`'s header the LPM key of its path under `rule_set`.
#[inline(always)]
pub fn set_key(pb: &mut PathBuf, rule_set: u32) {
    let n = if (pb.len as usize) < PATH_KEY_MAX { pb.len } else { PATH_KEY_MAX as u32 };
    pb.prefix_len = 32 + 8 * n;
    pb.rule_set_be = rule_set.to_be_bytes();
}

/// The class of the rest of `pb`'s path after a stored prefix of `k` bytes.
#[inline(always)]
pub fn rest_class(pb: &PathBuf, k: u16) -> usize {
    let k = i64::from(k);
    if i64::from(pb.len) == k {
        d4c_common::REST_EMPTY
    } else if i64::from(pb.last_slash) >= k {
        d4c_common::REST_DEEP
    } else {
        d4c_common::REST_NAME
    }
}
