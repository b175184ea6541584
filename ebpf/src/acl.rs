//! POSIX ACL hooks: an access ACL that lets anyone execute a regular file that had no x
//! bit makes it executable without a chmod, so it is createExecutable, however it is set
//! (setxattr, fsetxattr on an `O_TMPFILE`, io_uring): `inode_setxattr` on 6.1 (the raw
//! `system.posix_acl_access` value) and `inode_set_acl` on 6.2+ (the parsed ACL).
//!
//! These hooks get a dentry without its mount, so the path is built on the task's root
//! mount when the file is on that superblock (the container's root filesystem); anywhere
//! else it is unreachable, and the rule set's most restrictive path class decides.

use core::ffi::c_void;

use aya_ebpf::{helpers::generated as gen, programs::LsmContext};
use d4c_common::{
    offsets::{OFF_ACL_COUNT, OFF_ACL_ENTRIES, OFF_DENTRY_SB, OFF_VFSMOUNT_SB},
    HOOK_INODE_SETXATTR, HOOK_INODE_SET_ACL,
};

use crate::{
    container::Cgroup,
    file_ops::{self, dentry_mode, CREATE_EXE},
    offsets::{off, read, read_at, read_ptr},
    path::{self, PATH_UNREACHABLE},
    scratch::{claim, TARGET},
};

type R = Result<bool, i64>;

/// The access ACL's xattr name, NUL included.
const ACCESS: &[u8; 24] = b"system.posix_acl_access\0";
/// Entries looked at; an ACL with more is taken as granting execution.
const MAX_ENTRIES: u32 = 32;

const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const ACL_EXECUTE: u16 = 0x01;

// What the entries say about execution, one bit each (`Scan::bits`).
const OWNER_OR_OTHER_X: u32 = 1;
const GROUP_OBJ_X: u32 = 2;
const NAMED_X: u32 = 4;
const MASK: u32 = 8;
const MASK_X: u32 = 16;

/// The bits of one entry.
#[inline(always)]
fn entry_bits(tag: u16, perm: u16) -> u32 {
    let x = perm & ACL_EXECUTE != 0;
    match tag {
        ACL_USER_OBJ | ACL_OTHER if x => OWNER_OR_OTHER_X,
        ACL_GROUP_OBJ if x => GROUP_OBJ_X,
        ACL_USER | ACL_GROUP if x => NAMED_X,
        ACL_MASK if x => MASK | MASK_X,
        ACL_MASK => MASK,
        _ => 0,
    }
}

/// Whether an ACL with entry bits `bits` makes the file executable: an x bit in the mode
/// it sets (the owner's and others' entries, and the mask's, or without a mask the owning
/// group's, give the mode's three x bits; any x bit lets a task with `CAP_DAC_OVERRIDE`
/// run it), or a named user or group allowed x through the mask.
#[inline(always)]
fn execute(bits: u32) -> bool {
    let mask = bits & MASK != 0;
    let group_bits = if mask {
        bits & MASK_X != 0
    } else {
        bits & GROUP_OBJ_X != 0
    };
    bits & OWNER_OR_OTHER_X != 0
        || group_bits
        || (bits & NAMED_X != 0 && (!mask || bits & MASK_X != 0))
}

/// The `bpf_loop` context of an ACL scan: `n` entries of 8 bytes at `entries`.
#[repr(C)]
struct Scan {
    entries: u64,
    n: u32,
    bits: u32,
    failed: u32,
}

/// One entry (`{u16 tag, u16 perm, u32 id}` in both the xattr and the kernel form).
extern "C" fn scan_step(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `bpf_loop` hands back the `Scan` that `scan` passed it, alive on its stack.
    let s = unsafe { &mut *ctx.cast::<Scan>() };
    if i >= u64::from(s.n) {
        return 1;
    }
    match read_at::<[u16; 2]>((s.entries + 8 * (i & 0x3f)) as *const u8) {
        Ok(e) => {
            s.bits |= entry_bits(e[0], e[1]);
            0
        }
        Err(_) => {
            s.failed = 1;
            1
        }
    }
}

/// Whether the `n` entries at `entries` make the file executable (one loop, verified
/// once, whatever the entries). More than [`MAX_ENTRIES`] count as yes.
#[inline(always)]
fn scan(entries: *const u8, n: u64) -> Result<bool, i64> {
    if n > u64::from(MAX_ENTRIES) {
        return Ok(true);
    }
    let mut s = Scan {
        entries: entries as u64,
        n: n as u32,
        bits: 0,
        failed: 0,
    };
    // SAFETY: the callback is a static function taking a `Scan`; `s` outlives the call.
    unsafe {
        gen::bpf_loop(
            MAX_ENTRIES,
            scan_step as *mut c_void,
            core::ptr::from_mut(&mut s).cast(),
            0,
        )
    };
    if s.failed != 0 {
        return Err(0);
    }
    Ok(execute(s.bits))
}

/// Whether `name` (a kernel string) is the access ACL's xattr name (read up to its NUL,
/// never past it, one byte more than the name so that a longer one cannot compare equal;
/// a failed read is the hook's error).
#[inline(always)]
fn is_access(name: *const u8) -> Result<bool, i64> {
    let mut buf = [0u8; 25];
    // SAFETY: the helper checks the source and writes at most 25 bytes, NUL included.
    let n = unsafe { gen::bpf_probe_read_kernel_str(buf.as_mut_ptr().cast(), 25, name.cast()) };
    if n < 0 {
        return Err(n);
    }
    Ok(n == 24 && buf[..24] == ACCESS[..])
}

/// `inode_setxattr(idmap, struct dentry *dentry, const char *name, const void *value,
/// size_t size, int flags)`: on 6.1, the access ACL in its xattr form (a 4-byte header,
/// then 8-byte entries `{u16 tag, u16 perm, u32 id}`), already copied into the kernel.
pub fn inode_setxattr(ctx: &LsmContext, cg: Cgroup) -> R {
    let dentry: *const u8 = ctx.arg(1);
    if !is_access(ctx.arg(2))? {
        return Ok(false);
    }
    let Some(mode) = gains_x_candidate(dentry) else {
        return Ok(false);
    };
    let value = crate::offsets::raw_arg(ctx, 3)? as *const u8;
    let size: u64 = ctx.arg(4);
    let executable = scan(value.wrapping_add(4), size.saturating_sub(4) / 8)?;
    decide(cg, HOOK_INODE_SETXATTR, dentry, mode, executable)
}

/// `inode_set_acl(idmap, struct dentry *dentry, const char *acl_name, struct posix_acl
/// *kacl)` (6.2+): `kacl` is null when the ACL is removed.
pub fn inode_set_acl(ctx: &LsmContext, cg: Cgroup) -> R {
    let dentry: *const u8 = ctx.arg(1);
    let acl: *const u8 = ctx.arg(3);
    if acl.is_null() || !is_access(ctx.arg(2))? {
        return Ok(false);
    }
    let Some(mode) = gains_x_candidate(dentry) else {
        return Ok(false);
    };
    let n = read::<u32>(acl, OFF_ACL_COUNT)?;
    // struct posix_acl_entry { short e_tag; unsigned short e_perm; union id; }
    let executable = scan(acl.wrapping_add(off(OFF_ACL_ENTRIES)), u64::from(n))?;
    decide(cg, HOOK_INODE_SET_ACL, dentry, mode, executable)
}

/// The mode of `dentry`'s inode when it is a regular file without an x bit (the files an
/// ACL can make executable), else `None`.
#[inline(always)]
fn gains_x_candidate(dentry: *const u8) -> Option<u32> {
    let mode = dentry_mode(dentry)?;
    (file_ops::is_reg(mode) && !file_ops::has_x(mode)).then_some(mode)
}

/// createExecutable of `dentry` when the ACL makes it `executable`.
#[inline(always)]
fn decide(cg: Cgroup, hook: u16, dentry: *const u8, mode: u32, executable: bool) -> R {
    if !executable || !crate::maps::may_act(cg.rule_set, u32::from(CREATE_EXE)) {
        return Ok(false);
    }
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    file_ops::meta(s, cg, hook, mode);
    // The task's root mount, and whether the file is on its superblock.
    let (root_mnt, _) = path::task_root()?;
    let same_sb = read_ptr(root_mnt, OFF_VFSMOUNT_SB)? == read_ptr(dentry, OFF_DENTRY_SB)?;
    path::build(s, TARGET, root_mnt, dentry);
    if !same_sb {
        s.target.flags |= PATH_UNREACHABLE;
    }
    Ok(file_ops::decide_acting(
        s,
        core::ptr::null(),
        core::ptr::null(),
        u32::from(CREATE_EXE),
    ) != 0)
}
