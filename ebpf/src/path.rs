//! Path building by walking dentries and mounts, up to the task's root, so paths read as
//! the container sees them; and, where the kernel allows `bpf_d_path` (the `file_open`
//! hook on every supported kernel, not the `path_*` hooks of 6.1), the kernel's own
//! `d_path` as a fast path for files on a mount of the task's mount namespace.
//!
//! One `bpf_loop` walks from the dentry up to `current->fs->root`, crossing mount points
//! through `struct mount`, prepending each component (`/name`) to a work buffer from its
//! end, as the kernel's `d_path` does; one copy then moves the path to the start of a
//! [`PathBuf`], whose first bytes double as an LPM trie key.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task, generated as gen};
use d4c_common::{
    offsets::{
        OFF_DENTRY_NAME_LEN, OFF_DENTRY_NAME_PTR, OFF_DENTRY_PARENT, OFF_FS_ROOT, OFF_MOUNT_MNT,
        OFF_MOUNT_MNT_NS, OFF_MOUNT_MOUNTPOINT, OFF_MOUNT_PARENT, OFF_NSPROXY_MNT_NS, OFF_PATH_MNT,
        OFF_TASK_FS, OFF_TASK_NSPROXY, OFF_VFSMOUNT_ROOT,
    },
    PATH_KEY_MAX,
};

use crate::{
    offsets::{load, off, read, read_path, read_ptr},
    scratch::{PathBuf, Scratch, PATH_BUF, TARGET, WORK},
};

/// Dentries and mount crossings visited; a deeper path is flagged `PATH_TOO_DEEP`.
const WALK_STEPS: usize = 128;

/// The path is not below the task's root (an internal mount, another mount namespace, an
/// overlayfs backing file): its bytes are relative to the topmost mount reached.
pub const PATH_UNREACHABLE: u32 = 1;
/// The path is deeper than `WALK_STEPS` or longer than `WORK` bytes: its bytes are not the
/// real path.
pub const PATH_TOO_DEEP: u32 = 2;
/// A kernel read failed.
pub const PATH_FAULT: u32 = 4;

/// Builds the path of `dentry` on mount `vfsmnt` into `s.target` (`which == TARGET`) or
/// `s.exe`. Never fails: problems are recorded in the returned `PATH_*` flags, and the
/// bytes are a best effort.
#[inline(never)]
pub fn build(s: &mut Scratch, which: u32, vfsmnt: *const u8, dentry: *const u8) -> u32 {
    if start(s, vfsmnt, dentry).is_err() {
        s.walk.flags = PATH_FAULT;
        s.walk.n = 0;
    } else {
        // The callback gets the scratch space through a context on this stack (saves a
        // map lookup per step).
        let mut ctx = LoopCtx { s };
        // SAFETY: the callback is a static function taking a `LoopCtx`; `ctx` outlives the
        // call.
        unsafe {
            gen::bpf_loop(
                WALK_STEPS as u32,
                walk_step as *mut c_void,
                core::ptr::from_mut(&mut ctx).cast(),
                0,
            )
        };
    }
    let (n, pos, leaf_len, flags) = (
        s.walk.n,
        s.walk.pos as usize & (WORK - 1),
        s.walk.leaf_len,
        s.walk.flags,
    );
    let src = s.work.as_ptr().wrapping_add(pos);
    let pb = if which == TARGET {
        &mut s.target
    } else {
        &mut s.exe
    };
    if n == 0 {
        pb.buf[0] = b'/';
        pb.len = 1;
        pb.last_slash = 0;
    } else {
        let len = (WORK - pos) as u32;
        // Only the path's own bytes (the lookup and the event use `len`); a power-of-two
        // mask keeps the size provably within PATH_BUF for the verifier.
        let n = if len as usize >= PATH_BUF {
            PATH_BUF as u32
        } else {
            len & (PATH_BUF as u32 - 1)
        };
        // SAFETY: src + n <= work + WORK - 1 + PATH_BUF, inside `work`; n <= PATH_BUF.
        unsafe { gen::bpf_probe_read_kernel(pb.buf.as_mut_ptr().cast(), n, src.cast()) };
        pb.len = len;
        pb.last_slash = (len - leaf_len - 1) as i32;
    }
    pb.flags = flags;
    flags
}

#[inline(always)]
fn start(s: &mut Scratch, vfsmnt: *const u8, dentry: *const u8) -> Result<(), i64> {
    let (root_mnt, root_dentry) = task_root()?;
    let w = &mut s.walk;
    w.root_mnt = root_mnt as u64;
    w.root_dentry = root_dentry as u64;
    w.dentry = dentry as u64;
    w.mnt = vfsmnt as u64;
    w.mnt_root = read_ptr(vfsmnt, OFF_VFSMOUNT_ROOT)? as u64;
    w.n = 0;
    w.pos = WORK as u32;
    w.leaf_len = 0;
    w.flags = PATH_TOO_DEEP;
    Ok(())
}

/// The `bpf_loop` context of the walk: the scratch space of the program that loops.
#[repr(C)]
struct LoopCtx<'a> {
    s: &'a mut Scratch,
}

/// One step: up one dentry (prepending its name) or across one mount point.
/// Returns 0 to go on, 1 to stop.
extern "C" fn walk_step(_i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `bpf_loop` hands back the `LoopCtx` that `build` passed it, alive on
    // `build`'s stack for the whole loop, and nothing else uses it meanwhile.
    let ctx = unsafe { &mut *ctx.cast::<LoopCtx<'_>>() };
    let s: &mut Scratch = ctx.s;
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
    let (parent, name, len) = dentry_head(d)?;
    if parent == d {
        w.flags = PATH_UNREACHABLE;
        return Ok(false);
    }
    let len = (len & 0xff) as usize;
    let pos = s.walk.pos as usize & (WORK * 2 - 1);
    if pos < len + 1 {
        return Ok(false); // longer than WORK: PATH_TOO_DEEP stays set
    }
    let at = pos - len - 1;
    s.work[at & (WORK - 1)] = b'/';
    let dst = s.work.as_mut_ptr().wrapping_add((at + 1) & (WORK - 1));
    // SAFETY: dst + len <= work + WORK - 1 + 255, inside `work`; the helper checks the
    // source.
    unsafe { gen::bpf_probe_read_kernel(dst.cast(), len as u32, name as *const _) };
    if s.walk.n == 0 {
        s.walk.leaf_len = len as u32;
    }
    s.walk.n += 1;
    s.walk.pos = at as u32;
    s.walk.dentry = parent as u64;
    Ok(true)
}

/// `d_parent`, then `d_name` (`struct qstr`: hash, len, name) as every kernel since 3.x
/// lays them out, read in one helper call.
#[repr(C)]
struct DentryHead {
    parent: u64,
    hash: u32,
    len: u32,
    name: u64,
}

/// A dentry's parent, name pointer and name length: one kernel read where the running
/// kernel's offsets show the layout of [`DentryHead`] (the verifier folds this test on the
/// frozen offsets), three otherwise.
#[inline(always)]
fn dentry_head(d: *const u8) -> Result<(*const u8, u64, u32), i64> {
    let base = off(OFF_DENTRY_PARENT);
    if off(OFF_DENTRY_NAME_LEN) == base + 12 && off(OFF_DENTRY_NAME_PTR) == base + 16 {
        let h: DentryHead = read(d, OFF_DENTRY_PARENT)?;
        return Ok((h.parent as *const u8, h.name, h.len));
    }
    Ok((
        read_ptr(d, OFF_DENTRY_PARENT)?,
        read::<u64>(d, OFF_DENTRY_NAME_PTR)?,
        read::<u32>(d, OFF_DENTRY_NAME_LEN)?,
    ))
}

/// The ` (deleted)` suffix `d_path` gives an unlinked file.
const DELETED: &[u8; 10] = b" (deleted)";

/// Fills `s.target` with `bpf_d_path(path)`, the path from the task's root, when that is
/// exactly what [`build`] would produce: the file's mount is in the task's mount namespace
/// (overlayfs backing files and other private mounts are not: the walk flags those
/// unreachable), the result starts with `/`, fits `PATH_BUF`, and is not an unlinked
/// file's `... (deleted)`. Returns false when the caller must [`build`] instead.
/// `path` must be the hook's own `struct path` (the verifier checks its type).
#[inline(always)]
pub fn d_path(s: &mut Scratch, path: *const u8, mnt: *const u8, dentry: *const u8) -> bool {
    match same_mount_ns(mnt) {
        Ok(true) => {}
        _ => return false,
    }
    let pb = &mut s.target;
    // SAFETY: `path` is the hook's `struct path`; the buffer is this CPU's scratch value.
    let n = unsafe {
        gen::bpf_d_path(
            path.cast_mut().cast(),
            pb.buf.as_mut_ptr().cast(),
            PATH_BUF as u32,
        )
    };
    if n < 2 || n > PATH_BUF as i64 || pb.buf[0] != b'/' {
        return false;
    }
    let len = (n - 1) as usize & (PATH_BUF - 1);
    if len >= DELETED.len() {
        let tail = (len - DELETED.len()) & (PATH_BUF - 1);
        let mut same = true;
        for (i, b) in DELETED.iter().enumerate() {
            if pb.buf[(tail + i) & (PATH_BUF - 1)] != *b {
                same = false;
            }
        }
        if same {
            return false;
        }
    }
    let leaf = (load::<u32>(dentry, OFF_DENTRY_NAME_LEN) & 0xff) as usize;
    if leaf + 1 > len {
        return false;
    }
    pb.len = len as u32;
    pb.last_slash = (len - leaf - 1) as i32;
    pb.flags = 0;
    true
}

/// Whether mount `vfsmnt` belongs to the current task's mount namespace: at once when it
/// is the mount of the task's root (most writes in a container), by direct loads. Else
/// through `struct mount`, reached by `container_of`, which the verifier does not type:
/// one helper read there; the task's side is direct loads.
#[inline(always)]
fn same_mount_ns(vfsmnt: *const u8) -> Result<bool, i64> {
    // SAFETY: no preconditions; the verifier types the result from BTF.
    let task = unsafe { gen::bpf_get_current_task_btf() }
        .cast::<u8>()
        .cast_const();
    let fs: *const u8 = load(task, OFF_TASK_FS);
    if !fs.is_null() {
        let root_mnt: *const u8 = load(fs.wrapping_add(off(OFF_FS_ROOT)), OFF_PATH_MNT);
        if root_mnt == vfsmnt {
            return Ok(true);
        }
    }
    let mount = (vfsmnt as usize).wrapping_sub(off(OFF_MOUNT_MNT)) as *const u8;
    let ns = read_ptr(mount, OFF_MOUNT_MNT_NS)?;
    let nsproxy: *const u8 = load(task, OFF_TASK_NSPROXY);
    if nsproxy.is_null() || ns.is_null() {
        return Ok(false);
    }
    Ok(load::<*const u8>(nsproxy, OFF_NSPROXY_MNT_NS) == ns)
}

/// Writes d4c's path for the memfd `dentry`, `/memfd:NAME`, into `s.target`, with each
/// `/` of the name made `_` (as `d4c_policy::pattern::memfd_path` does): one component, so
/// `/memfd:*` matches every memfd whatever name it was given.
#[inline(always)]
pub fn memfd_path(s: &mut Scratch, dentry: *const u8) -> Result<(), i64> {
    let name = read::<u64>(dentry, OFF_DENTRY_NAME_PTR)?;
    let len = (read::<u32>(dentry, OFF_DENTRY_NAME_LEN)? & 0xff) as usize;
    {
        let pb = &mut s.target;
        pb.buf[0] = b'/';
        // SAFETY: 1 + len <= 256 < the buffer's size.
        unsafe {
            gen::bpf_probe_read_kernel(
                pb.buf.as_mut_ptr().wrapping_add(1).cast(),
                len as u32,
                name as *const _,
            )
        };
        pb.len = len as u32 + 1;
        pb.last_slash = 0;
        pb.flags = 0;
    }
    let mut ctx = LoopCtx { s };
    // SAFETY: the callback is a static function taking a `LoopCtx`; `ctx` outlives the call.
    unsafe {
        gen::bpf_loop(
            len as u32,
            unslash_step as *mut c_void,
            core::ptr::from_mut(&mut ctx).cast(),
            0,
        )
    };
    Ok(())
}

/// One byte of a memfd's name (after the leading `/`): a `/` becomes `_`.
extern "C" fn unslash_step(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `bpf_loop` hands back the `LoopCtx` that `memfd_path` passed it, alive on its
    // stack for the whole loop, and nothing else uses it meanwhile.
    let s: &mut Scratch = unsafe { &mut *ctx.cast::<LoopCtx<'_>>() }.s;
    let b = &mut s.target.buf[(i as usize + 1) & 0x1ff];
    if *b == b'/' {
        *b = b'_';
    }
    0
}

/// Copies the path an exec named (`linux_binprm.filename`, a kernel string: `/bin/sh` for a
/// shell that is really dash) into `s.exe`, with its length and last `/`; returns the
/// kernel address of its base name (what the kernel makes the new `comm`). A string that
/// cannot be read leaves `s.exe` empty.
#[inline(always)]
pub fn exec_filename(s: &mut Scratch, filename: u64) -> u64 {
    // SAFETY: the helper checks the source and writes at most `PATH_BUF` bytes, NUL
    // included.
    let n = unsafe {
        gen::bpf_probe_read_kernel_str(
            s.exe.buf.as_mut_ptr().cast(),
            PATH_BUF as u32,
            filename as *const _,
        )
    };
    let len = if n > 0 { (n - 1) as u32 } else { 0 };
    s.exe.len = len;
    s.exe.last_slash = -1;
    s.exe.flags = 0;
    let mut ctx = LoopCtx { s };
    // SAFETY: the callback is a static function taking a `LoopCtx`; `ctx` outlives the call.
    unsafe {
        gen::bpf_loop(
            len,
            last_slash_step as *mut c_void,
            core::ptr::from_mut(&mut ctx).cast(),
            0,
        )
    };
    filename + (s.exe.last_slash + 1) as u64
}

/// One byte of `s.exe`: records the position of a `/`.
extern "C" fn last_slash_step(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `bpf_loop` hands back the `LoopCtx` that `exec_filename` passed it, alive on
    // its stack for the whole loop, and nothing else uses it meanwhile.
    let s: &mut Scratch = unsafe { &mut *ctx.cast::<LoopCtx<'_>>() }.s;
    let i = i as usize & (PATH_BUF - 1);
    if s.exe.buf[i] == b'/' {
        s.exe.last_slash = i as i32;
    }
    0
}

/// The current task's root (`current->fs->root`) as (vfsmount, dentry).
#[inline(always)]
pub fn task_root() -> Result<(*const u8, *const u8), i64> {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let fs = read_ptr(task, OFF_TASK_FS)?;
    read_path(fs.wrapping_add(off(OFF_FS_ROOT)))
}

/// Makes `pb`'s header the LPM key of its path under `rule_set`.
#[inline(always)]
pub fn set_key(pb: &mut PathBuf, rule_set: u32) {
    let n = if (pb.len as usize) < PATH_KEY_MAX {
        pb.len
    } else {
        PATH_KEY_MAX as u32
    };
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
