//! File hooks: which file operations an event is, then one path build, one LPM lookup, and
//! an event when the decision has any action bit.

use aya_ebpf::programs::LsmContext;
use d4c_common::{
    moved_dir_rows,
    offsets::{
        OFF_DENTRY_INODE, OFF_DENTRY_NAME_PTR, OFF_DENTRY_SB, OFF_FILE_INODE, OFF_FILE_MODE,
        OFF_FILE_PATH, OFF_INODE_MODE, OFF_INODE_NLINK, OFF_INODE_SB, OFF_MOUNT_MNT,
        OFF_MOUNT_MNT_NS, OFF_PATH_DENTRY, OFF_PATH_MNT, OFF_SB_FLAGS, OFF_SB_MAGIC,
    },
    ACTION_AUDIT, ACTION_BLOCK, CNT_PATH_ERRORS, EVENT_FILE, HOOK_FILE_OPEN, HOOK_FILE_TRUNCATE,
    HOOK_PATH_CHMOD, HOOK_PATH_LINK, HOOK_PATH_MKNOD, HOOK_PATH_RENAME, HOOK_PATH_TRUNCATE,
    HOOK_PATH_UNLINK, MOVE_ALL_BLOCK, MOVE_ANY, MOVE_MARK, OP_CREATE_EXECUTABLE, OP_CREATE_FILE,
    OP_DELETE_FILE, OP_EXEC_MEMFD, OP_MODIFY_EXECUTABLE, OP_MODIFY_FILE, PATH_KEY_MAX, REST_EMPTY,
};

use crate::{
    container::Cgroup,
    event,
    maps::{count, FILE_RULES},
    offsets::{load, load_path, off, read, read_at, read_ptr},
    path::{self, PATH_UNREACHABLE},
    scratch::{claim, Scratch, TARGET},
};

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IXUGO: u32 = 0o111;
const FMODE_WRITE: u32 = 0x2;
/// This open created the file (`path_mknod` already decided on the creation).
const FMODE_CREATED: u32 = 0x10_0000;
pub const SB_KERNMOUNT: u64 = 1 << 22;
const RENAME_EXCHANGE: u64 = 2;

pub const CREATE_EXE: u8 = 1 << OP_CREATE_EXECUTABLE;
const MODIFY_EXE: u8 = 1 << OP_MODIFY_EXECUTABLE;
const CREATE: u8 = 1 << OP_CREATE_FILE;
const MODIFY: u8 = 1 << OP_MODIFY_FILE;
const DELETE: u8 = 1 << OP_DELETE_FILE;
pub const EXEC_MEMFD: u8 = 1 << OP_EXEC_MEMFD;

type R = Result<bool, i64>;

#[inline(always)]
pub fn is_reg(mode: u32) -> bool {
    mode & S_IFMT == S_IFREG
}

#[inline(always)]
fn is_dir(mode: u32) -> bool {
    mode & S_IFMT == S_IFDIR
}

#[inline(always)]
pub fn has_x(mode: u32) -> bool {
    mode & S_IXUGO != 0
}

/// `i_mode` of a dentry's inode, or `None` for a negative dentry.
#[inline(always)]
pub fn dentry_mode(dentry: *const u8) -> Option<u32> {
    // Direct loads: every caller's dentry is a hook argument or loaded from one.
    let inode: *const u8 = load(dentry, OFF_DENTRY_INODE);
    if inode.is_null() {
        return None;
    }
    Some(u32::from(load::<u16>(inode, OFF_INODE_MODE)))
}

/// Fills the event metadata shared by every decision of one hook call.
#[inline(always)]
pub fn meta(s: &mut Scratch, cg: Cgroup, hook: u16, mode: u32) {
    s.meta.cgroup_id = cg.id;
    s.meta.rule_set = cg.rule_set;
    s.meta.hook = hook;
    s.meta.mode = mode;
    s.meta.kind = EVENT_FILE;
    s.meta.interactive = 0;
    s.meta.exe_ready = 0;
}

/// [`decide_acting`] unless the rule set never acts on `ops` (then nothing is built).
#[inline(always)]
pub fn decide(s: &mut Scratch, mnt: *const u8, dentry: *const u8, ops: u32) -> u32 {
    if !crate::maps::may_act(s.meta.rule_set, ops) {
        return 0;
    }
    decide_acting(s, mnt, dentry, ops)
}

/// Builds the path of (`mnt`, `dentry`) into `s.target` unless `dentry` is null (then the
/// caller already wrote it), looks it up, ORs the actions of `ops`, emits an event when
/// any bit is set. Returns 1 to deny. The caller has checked the rule set's operation mask.
///
/// A path that could not be built from the task's root (another mount namespace, a
/// detached mount, outside a chroot, too deep, a failed read) is decided by the rule set's
/// most restrictive path class (the root entry's empty-rest row, which no real path
/// reaches), never as "no match". The one exception is a file on a kernel-private mount
/// ([`kernel_private`]), which no task reaches by a path.
#[inline(always)]
pub fn decide_acting(s: &mut Scratch, mnt: *const u8, dentry: *const u8, ops: u32) -> u32 {
    decide_in(s, mnt, dentry, ops, MOVE_NONE)
}

/// A directory moved from `from` to `to` (dentries on `mnt`): nothing when every path
/// below the source refuses createExecutable (the directory then carries no executable
/// created in the container); else createExecutable under the most restrictive row any
/// path below the destination D has, acting only when that row blocks. Each side is one
/// lookup of `DIR/` + NUL (the compiler's move entry, else the entry whose rests below
/// DIR apply). Which files the directory carries is not known in a hook; so no executable
/// created in the container ends up where creating it would have been refused.
#[inline(always)]
pub fn decide_moved_dir(s: &mut Scratch, mnt: *const u8, from: *const u8, to: *const u8) -> u32 {
    if !crate::maps::may_act(s.meta.rule_set, u32::from(CREATE_EXE)) {
        return 0;
    }
    if decide_in(s, mnt, from, u32::from(CREATE_EXE), MOVE_FROM) != 0 {
        return 0;
    }
    decide_in(s, mnt, to, u32::from(CREATE_EXE), MOVE_TO)
}

/// [`decide_in`] modes: a file's path; a moved directory's destination; its source (1 when
/// every row below blocks `ops`, no event).
const MOVE_NONE: u32 = 0;
const MOVE_TO: u32 = 1;
const MOVE_FROM: u32 = 2;

/// [`decide_acting`] (`MOVE_NONE`), or one side of [`decide_moved_dir`].
#[inline(never)]
fn decide_in(s: &mut Scratch, mnt: *const u8, dentry: *const u8, ops: u32, mode: u32) -> u32 {
    let ops = ops as u8;
    if !dentry.is_null() {
        path::build(s, TARGET, mnt, dentry);
    }
    let n = s.target.len as usize;
    let too_long = mode != MOVE_NONE && n + 2 > PATH_KEY_MAX;
    let (rule, classes) = if s.target.flags != 0 || too_long {
        if mode == MOVE_FROM {
            // Unknown below the source: not "everything there blocks".
            return 0;
        }
        if s.target.flags & PATH_UNREACHABLE != 0
            && !dentry.is_null()
            && kernel_private(mnt).unwrap_or(false)
        {
            return 0;
        }
        count(CNT_PATH_ERRORS);
        // The root entry (empty prefix) under an empty rest: the rule set's worst row.
        s.target.prefix_len = 32;
        s.target.rule_set_be = s.meta.rule_set.to_be_bytes();
        (FILE_RULES.get(s.target.key()), 1u32 << REST_EMPTY)
    } else if mode != MOVE_NONE {
        // `DIR/` + NUL after the path; its length stays DIR's (the event reports DIR).
        s.target.buf[n & 0xff] = b'/';
        s.target.buf[(n + 1) & 0x1ff] = MOVE_MARK;
        s.target.prefix_len = 32 + 8 * (n as u32 + 2);
        s.target.rule_set_be = s.meta.rule_set.to_be_bytes();
        let summary = if mode == MOVE_FROM {
            MOVE_ALL_BLOCK
        } else {
            MOVE_ANY
        };
        match FILE_RULES.get(s.target.key()) {
            Some(rule) => (
                Some(rule),
                moved_dir_rows(usize::from(rule.prefix_len), n + 2, summary),
            ),
            None => (None, 0),
        }
    } else {
        path::set_key(&mut s.target, s.meta.rule_set);
        match FILE_RULES.get(s.target.key()) {
            Some(rule) => (
                Some(rule),
                1u32 << path::rest_class(&s.target, rule.prefix_len),
            ),
            None => (None, 0),
        }
    };
    if mode == MOVE_FROM {
        return rule.map_or(0, |r| u32::from(all_block(r, classes, ops)));
    }
    let Some(rule) = rule else {
        return 0;
    };
    let mut actions = 0u8;
    let mut first = 0xffu8;
    for op in 0..6u8 {
        if ops & (1 << op) != 0 {
            let mut a = 0u8;
            for (class, row) in rule.actions.iter().enumerate() {
                if classes & (1 << class) != 0 {
                    a |= row[op as usize];
                }
            }
            if a != 0 && first == 0xff {
                first = op;
            }
            actions |= a;
        }
    }
    if actions == 0 || (mode == MOVE_TO && actions & (ACTION_BLOCK | ACTION_AUDIT) == 0) {
        return 0;
    }
    event::verdict(s, actions, first, ops)
}

/// Whether every row of `rule` in `classes` blocks every operation of `ops`.
#[inline(always)]
fn all_block(rule: &d4c_common::FileRule, classes: u32, ops: u8) -> bool {
    let mut all = true;
    for op in 0..6u8 {
        if ops & (1 << op) != 0 {
            for (class, row) in rule.actions.iter().enumerate() {
                if classes & (1 << class) != 0 {
                    all &= row[op as usize] & ACTION_BLOCK != 0;
                }
            }
        }
    }
    all
}

/// `MNT_NS_INTERNAL` (`ERR_PTR(-EINVAL)`): the `mnt_ns` of the mounts the kernel keeps for
/// itself (`kern_mount`, `clone_private_mount`), the same from 6.1 to 7.2.
const MNT_NS_INTERNAL: u64 = -22i64 as u64;

/// Whether `vfsmnt` is a kernel-private mount: an internal one (memfd and SysV shm files,
/// which are memory: running one is execMemFd) or an overlayfs layer's private clone
/// (6.6+ opens the real file of every overlay write there, after the overlay file itself
/// was decided). No task can mount one or reach it by a path.
#[inline(always)]
pub fn kernel_private(vfsmnt: *const u8) -> Result<bool, i64> {
    let mount = vfsmnt.wrapping_sub(off(OFF_MOUNT_MNT));
    Ok(read::<u64>(mount, OFF_MOUNT_MNT_NS)? == MNT_NS_INTERNAL)
}

/// `path_chmod(const struct path *path, umode_t mode)`: adding an x bit to a regular file
/// is createExecutable; every chmod of a regular file is modifyFile.
pub fn path_chmod(ctx: &LsmContext, cg: Cgroup) -> R {
    let path: *const u8 = ctx.arg(0);
    let mode = ctx.arg::<u64>(1) as u32;
    let (mnt, dentry) = load_path(path);
    let Some(old) = dentry_mode(dentry) else {
        return Ok(false);
    };
    if !is_reg(old) {
        return Ok(false);
    }
    let mut ops = MODIFY;
    if !has_x(old) && has_x(mode) {
        ops |= CREATE_EXE;
    }
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    meta(s, cg, HOOK_PATH_CHMOD, (old & S_IFMT) | (mode & 0o7777));
    Ok(decide(s, mnt, dentry, u32::from(ops)) != 0)
}

/// `path_mknod(const struct path *dir, struct dentry *dentry, umode_t mode, unsigned dev)`:
/// also fires for `open(O_CREAT)`. A regular file is createFile, with an x bit also
/// createExecutable.
pub fn path_mknod(ctx: &LsmContext, cg: Cgroup) -> R {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let mode = ctx.arg::<u64>(2) as u32;
    let t = mode & S_IFMT;
    if t != 0 && t != S_IFREG {
        return Ok(false);
    }
    let mut ops = CREATE;
    if has_x(mode) {
        ops |= CREATE_EXE;
    }
    let mnt: *const u8 = load(dir, OFF_PATH_MNT);
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    meta(s, cg, HOOK_PATH_MKNOD, S_IFREG | (mode & 0o7777));
    Ok(decide(s, mnt, dentry, u32::from(ops)) != 0)
}

/// The operations a modification of a regular file of `mode` is: modifyFile, with an x bit
/// also modifyExecutable.
#[inline(always)]
fn modify_ops(mode: u32) -> u8 {
    if has_x(mode) {
        MODIFY | MODIFY_EXE
    } else {
        MODIFY
    }
}

/// Modification of a regular file: modifyFile, with an x bit also modifyExecutable.
#[inline(always)]
fn modify(cg: Cgroup, hook: u16, mnt: *const u8, dentry: *const u8, mode: u32) -> R {
    let ops = modify_ops(mode);
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    meta(s, cg, hook, mode);
    Ok(decide(s, mnt, dentry, u32::from(ops)) != 0)
}

/// A write open of an existing regular file (the only opens `file_open` acts on): the
/// file, its inode and the inode's mode.
pub type WriteOpen = (*const u8, *const u8, u32);

/// The open as a [`WriteOpen`], or `None` for any other open (read-only, the open that
/// created the file, not a regular file): checked before the cgroup lookup.
#[inline(always)]
pub fn write_open(ctx: &LsmContext) -> Option<WriteOpen> {
    // Direct BTF loads from the hook's `file` (no helper calls): this runs on every open.
    let file: *const u8 = ctx.arg(0);
    let fmode: u32 = load(file, OFF_FILE_MODE);
    if fmode & FMODE_WRITE == 0 || fmode & FMODE_CREATED != 0 {
        return None;
    }
    let inode: *const u8 = load(file, OFF_FILE_INODE);
    let mode = u32::from(load::<u16>(inode, OFF_INODE_MODE));
    is_reg(mode).then_some((file, inode, mode))
}

/// Whether the [`write_open`] is of a file on a cgroup (v2) filesystem (direct loads).
#[inline(always)]
pub fn on_cgroupfs(open: WriteOpen) -> bool {
    let sb: *const u8 = load(open.1, OFF_INODE_SB);
    load::<u64>(sb, OFF_SB_MAGIC) & 0xffff_ffff == crate::container::CGROUP2_MAGIC
}

/// `file_open(struct file *file)` for a managed task's [`write_open`]. Overlayfs backing
/// files (a second open of the same file) are skipped. A file without a name (`O_TMPFILE`,
/// whose open `path_mknod` never sees) is created by this open: createFile, with an x bit
/// also createExecutable (`execveat` could run it without a link).
#[inline(always)]
pub fn file_open(open: WriteOpen, cg: Cgroup) -> R {
    let (file, inode, mode) = open;
    let mut ops = modify_ops(mode);
    if load::<u32>(inode, OFF_INODE_NLINK) == 0 {
        ops |= CREATE;
        if has_x(mode) {
            ops |= CREATE_EXE;
        }
    }
    // Most write opens in a drift-only rule set end here, before any path work.
    let ops = u32::from(ops);
    if !crate::maps::may_act(cg.rule_set, ops) {
        return Ok(false);
    }
    let fpath = file.wrapping_add(off(OFF_FILE_PATH));
    let mnt: *const u8 = load(fpath, OFF_PATH_MNT);
    let dentry: *const u8 = load(fpath, OFF_PATH_DENTRY);
    // 6.1 overlayfs opens the backing file with the overlay's path: its inode is not on
    // the dentry's superblock.
    if load::<u64>(inode, OFF_INODE_SB) != load::<u64>(dentry, OFF_DENTRY_SB) {
        return Ok(false);
    }
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    meta(s, cg, HOOK_FILE_OPEN, mode);
    // The kernel's d_path where it gives the same path as the walk (a null dentry tells
    // `decide_acting` the path is built); the operation mask is checked above.
    let built = path::d_path(s, fpath, mnt, dentry);
    let dentry = if built { core::ptr::null() } else { dentry };
    Ok(decide_acting(s, mnt, dentry, ops) != 0)
}

/// `path_truncate(const struct path *path)`: truncate(2); on 6.1 also O_TRUNC and
/// ftruncate.
pub fn path_truncate(ctx: &LsmContext, cg: Cgroup) -> R {
    let (mnt, dentry) = load_path(ctx.arg(0));
    let Some(mode) = dentry_mode(dentry) else {
        return Ok(false);
    };
    if !is_reg(mode) {
        return Ok(false);
    }
    modify(cg, HOOK_PATH_TRUNCATE, mnt, dentry, mode)
}

/// `file_truncate(struct file *file)` (6.2+): O_TRUNC and ftruncate.
pub fn file_truncate(ctx: &LsmContext, cg: Cgroup) -> R {
    let file: *const u8 = ctx.arg(0);
    let (mnt, dentry) = load_path(file.wrapping_add(off(OFF_FILE_PATH)));
    let Some(mode) = dentry_mode(dentry) else {
        return Ok(false);
    };
    if !is_reg(mode) {
        return Ok(false);
    }
    modify(cg, HOOK_FILE_TRUNCATE, mnt, dentry, mode)
}

/// `path_unlink(const struct path *dir, struct dentry *dentry)`: deleteFile.
pub fn path_unlink(ctx: &LsmContext, cg: Cgroup) -> R {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let Some(mode) = dentry_mode(dentry) else {
        return Ok(false);
    };
    if !is_reg(mode) {
        return Ok(false);
    }
    let mnt: *const u8 = load(dir, OFF_PATH_MNT);
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    meta(s, cg, HOOK_PATH_UNLINK, mode);
    Ok(decide(s, mnt, dentry, u32::from(DELETE)) != 0)
}

/// `path_link(struct dentry *old, const struct path *new_dir, struct dentry *new)`: a new
/// name for a regular file is createFile, for an executable also createExecutable (this
/// is how an `O_TMPFILE` file gets its first name).
pub fn path_link(ctx: &LsmContext, cg: Cgroup) -> R {
    let old: *const u8 = ctx.arg(0);
    let new_dir: *const u8 = ctx.arg(1);
    let new: *const u8 = ctx.arg(2);
    let Some(mode) = dentry_mode(old) else {
        return Ok(false);
    };
    if !is_reg(mode) {
        return Ok(false);
    }
    let mut ops = CREATE;
    if has_x(mode) {
        ops |= CREATE_EXE;
    }
    let mnt: *const u8 = load(new_dir, OFF_PATH_MNT);
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    meta(s, cg, HOOK_PATH_LINK, mode);
    Ok(decide(s, mnt, new, u32::from(ops)) != 0)
}

/// Operations on the destination name of a rename: the moved file is created there; a
/// file it replaces is modified and deleted.
#[inline(always)]
fn arrival_ops(moved: Option<u32>, replaced: Option<u32>) -> u8 {
    let mut ops = 0;
    if let Some(m) = moved {
        if is_reg(m) {
            ops |= CREATE;
            if has_x(m) {
                ops |= CREATE_EXE;
            }
        }
    }
    if let Some(r) = replaced {
        if is_reg(r) {
            ops |= MODIFY | DELETE;
            if has_x(r) {
                ops |= MODIFY_EXE;
            }
        }
    }
    ops
}

/// `path_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`: deleteFile of the old
/// name, createFile(+createExecutable) of the new one, modifyFile/deleteFile
/// (+modifyExecutable) of a file it replaces; `RENAME_EXCHANGE` both ways.
#[inline(always)]
pub fn path_rename(ctx: &LsmContext, cg: Cgroup) -> R {
    let old_dir: *const u8 = ctx.arg(0);
    let old: *const u8 = ctx.arg(1);
    let new: *const u8 = ctx.arg(3);
    let flags: u64 = ctx.arg(4);
    let old_mode = dentry_mode(old);
    let new_mode = dentry_mode(new);
    let exchange = flags & RENAME_EXCHANGE != 0;
    let mut old_ops = 0u8;
    if let Some(m) = old_mode {
        if is_reg(m) {
            old_ops |= DELETE;
        }
    }
    if exchange {
        old_ops |= arrival_ops(new_mode, old_mode);
    }
    let new_ops = arrival_ops(old_mode, new_mode);
    // Both names are on one mount (rename never crosses mounts).
    let mnt: *const u8 = load(old_dir, OFF_PATH_MNT);
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    let mut deny = 0;
    if old_ops != 0 {
        meta(s, cg, HOOK_PATH_RENAME, old_mode.unwrap_or(0));
        deny |= decide(s, mnt, old, u32::from(old_ops));
    }
    if new_ops != 0 {
        meta(s, cg, HOOK_PATH_RENAME, old_mode.unwrap_or(0));
        deny |= decide(s, mnt, new, u32::from(new_ops));
    }
    // A directory lands where the other name was (both ways for an exchange). Plain
    // values, not `Option` payloads: 6.1's verifier refuses a spill of the undefined
    // payload of a `None`.
    let (old_m, new_m) = (old_mode.unwrap_or(0), new_mode.unwrap_or(0));
    if is_dir(old_m) {
        meta(s, cg, HOOK_PATH_RENAME, old_m);
        deny |= decide_moved_dir(s, mnt, old, new);
    }
    if exchange && is_dir(new_m) {
        meta(s, cg, HOOK_PATH_RENAME, new_m);
        deny |= decide_moved_dir(s, mnt, new, old);
    }
    Ok(deny != 0)
}

/// Whether `dentry` is a memfd: on a kernel-internal mount and named `memfd:...`.
#[inline(always)]
pub fn is_memfd(dentry: *const u8) -> Result<bool, i64> {
    let sb = read_ptr(dentry, OFF_DENTRY_SB)?;
    let sflags = read::<u64>(sb, OFF_SB_FLAGS)?;
    if sflags & SB_KERNMOUNT == 0 {
        return Ok(false);
    }
    let name = read_ptr(dentry, OFF_DENTRY_NAME_PTR)?;
    let prefix = read_at::<[u8; 6]>(name)?;
    Ok(&prefix == b"memfd:")
}

/// execMemFd for `bprm_creds_for_exec`: `s.target` already holds `/memfd:NAME`.
#[inline(always)]
pub fn exec_memfd(s: &mut Scratch, cg: Cgroup, hook: u16, mode: u32) -> bool {
    meta(s, cg, hook, mode);
    decide(
        s,
        core::ptr::null(),
        core::ptr::null(),
        u32::from(EXEC_MEMFD),
    ) != 0
}
