//! Executable mappings (`mmap_file`, `file_mprotect`): code run without an exec. A private
//! executable mapping of a memfd is execMemFd; of a file without x bits that is not the
//! image's (see [`written_in_container`]) it is createExecutable: how the dynamic loader
//! runs a dropped ELF (`ld.so /tmp/x`, `LD_PRELOAD`, `dlopen`).

use aya_ebpf::helpers::bpf_get_current_task;
use d4c_common::offsets::{
    OFF_BACKING_USER_PATH, OFF_DENTRY_INODE, OFF_DENTRY_SB, OFF_FILE_INODE, OFF_FILE_PATH,
    OFF_INODE_MODE, OFF_MNT_NS_ROOT, OFF_MNT_NS_USER_NS, OFF_MOUNT_MNT, OFF_MOUNT_MOUNTPOINT,
    OFF_MOUNT_PARENT, OFF_NSPROXY_MNT_NS, OFF_OVL_UPPER, OFF_PATH_DENTRY, OFF_SB_FLAGS,
    OFF_SB_MAGIC, OFF_SB_USER_NS, OFF_TASK_NSPROXY, OFF_TASK_PERSONALITY, OFF_USER_NS_LEVEL,
    OFF_VFSMOUNT_ROOT,
};

use crate::{
    container::Cgroup,
    file_ops::{
        decide, exec_memfd, has_x, is_memfd, is_reg, kernel_private, meta, CREATE_EXE, EXEC_MEMFD,
        SB_KERNMOUNT,
    },
    offsets::{load, off, read, read_path, read_ptr},
    path::{self, task_root, PATH_UNREACHABLE},
    scratch::{claim, TARGET},
};

type R = Result<bool, i64>;

const PROT_READ: u64 = 0x1;
const PROT_EXEC: u64 = 0x4;
const MAP_TYPE: u64 = 0x0f;
const MAP_SHARED: u64 = 0x01;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const VM_SHARED: u64 = 0x08;
const READ_IMPLIES_EXEC: u32 = 0x0040_0000;
const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// Whether a mapping with `prot` is executable, `PROT_READ` included when the task's
/// personality has `READ_IMPLIES_EXEC` (the kernel then adds `PROT_EXEC`; `fmod_ret` sees
/// the requested `prot` only).
#[inline(always)]
pub fn maps_exec(prot: u64) -> bool {
    if prot & PROT_EXEC != 0 {
        return true;
    }
    if prot & PROT_READ == 0 {
        return false;
    }
    // SAFETY: no preconditions; the verifier types the result from BTF.
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task_btf() }
        .cast::<u8>()
        .cast_const();
    load::<u32>(task, OFF_TASK_PERSONALITY) & READ_IMPLIES_EXEC != 0
}

/// Whether an executable mapping of `file` (a BTF-typed `struct file *`, possibly null)
/// may need a decision, by direct loads: checked before the cgroup lookup, since the hook
/// runs on every mapping of every task. A regular file without x bits (what the loader maps
/// for `ld.so FILE`; a file with one was decided when it got it) or a memfd (mode 0777).
#[inline(always)]
pub fn candidate(file: *const u8) -> bool {
    if file.is_null() {
        return false;
    }
    let inode: *const u8 = load(file, OFF_FILE_INODE);
    if inode.is_null() {
        return false;
    }
    let mode = u32::from(load::<u16>(inode, OFF_INODE_MODE));
    if !is_reg(mode) {
        return false;
    }
    if !has_x(mode) {
        return true;
    }
    let dentry: *const u8 = load(file.wrapping_add(off(OFF_FILE_PATH)), OFF_PATH_DENTRY);
    let sb: *const u8 = load(dentry, OFF_DENTRY_SB);
    load::<u64>(sb, OFF_SB_FLAGS) & SB_KERNMOUNT != 0
}

/// Whether `flags` of an `mmap` share the mapping.
#[inline(always)]
pub fn shared_flags(flags: u64) -> bool {
    matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE)
}

/// Whether `vm_flags` of a mapping share it.
#[inline(always)]
pub fn shared_vma(vm_flags: u64) -> bool {
    vm_flags & VM_SHARED != 0
}

/// A private executable mapping of `file` by a managed task. A shared one is not decided:
/// a JIT's second view of its code (.NET maps its code heap from a memfd so) gives nothing
/// that anonymous executable memory does not.
#[inline(always)]
pub fn map_file(cg: Cgroup, hook: u16, file: *const u8, shared: bool) -> R {
    if shared || !crate::maps::may_act(cg.rule_set, u32::from(CREATE_EXE | EXEC_MEMFD)) {
        return Ok(false);
    }
    let (mnt, dentry) = user_path(file)?;
    if is_memfd(dentry)? {
        return map_memfd(cg, hook, dentry);
    }
    map_dropped(cg, hook, mnt, dentry)
}

/// The path a mapped file is known by: for an overlayfs backing file (6.6+ puts the real
/// file, on a layer's kernel-private mount, in the vma) the overlay's, kept in the
/// `backing_file` around it; else the file's own (6.1's real file carries the overlay's).
#[inline(always)]
fn user_path(file: *const u8) -> Result<(*const u8, *const u8), i64> {
    let (mnt, dentry) = read_path(file.wrapping_add(off(OFF_FILE_PATH)))?;
    let user = off(OFF_BACKING_USER_PATH);
    if user == 0 || !kernel_private(mnt)? {
        return Ok((mnt, dentry));
    }
    let sb = read_ptr(dentry, OFF_DENTRY_SB)?;
    if read::<u64>(sb, OFF_SB_FLAGS)? & SB_KERNMOUNT != 0 {
        return Ok((mnt, dentry));
    }
    read_path(file.wrapping_add(user))
}

/// How the dynamic loader runs an ELF held in a memfd (`ld.so /proc/self/fd/N`) without an
/// exec: execMemFd.
#[inline(always)]
fn map_memfd(cg: Cgroup, hook: u16, dentry: *const u8) -> R {
    if !crate::maps::may_act(cg.rule_set, u32::from(EXEC_MEMFD)) {
        return Ok(false);
    }
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    path::memfd_path(s, dentry)?;
    let inode = read_ptr(dentry, OFF_DENTRY_INODE)?;
    let mode = u32::from(read::<u16>(inode, OFF_INODE_MODE)?);
    Ok(exec_memfd(s, cg, hook, mode))
}

/// How the dynamic loader runs a dropped ELF without x bits (`ld.so /tmp/x`, `LD_PRELOAD`,
/// `dlopen`): createExecutable at the file's path, when the container wrote the file.
#[inline(always)]
fn map_dropped(cg: Cgroup, hook: u16, mnt: *const u8, dentry: *const u8) -> R {
    if !crate::maps::may_act(cg.rule_set, u32::from(CREATE_EXE)) {
        return Ok(false);
    }
    let inode = read_ptr(dentry, OFF_DENTRY_INODE)?;
    if inode.is_null() {
        return Err(0);
    }
    let mode = u32::from(read::<u16>(inode, OFF_INODE_MODE)?);
    if !is_reg(mode) || has_x(mode) || !written_in_container(mnt, dentry, inode)? {
        return Ok(false);
    }
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    meta(s, cg, hook, mode);
    if kernel_private(mnt)? {
        // A layer's private mount (an overlay stacked on the container's, unwrapped one
        // level): no task reaches it by a path, and it is not the image's. The rule set's
        // most restrictive row decides (a null dentry skips the private-mount exception).
        path::build(s, TARGET, mnt, dentry);
        s.target.flags |= PATH_UNREACHABLE;
        return Ok(decide(s, mnt, core::ptr::null(), u32::from(CREATE_EXE)) != 0);
    }
    Ok(decide(s, mnt, dentry, u32::from(CREATE_EXE)) != 0)
}

/// Whether the file at (`mnt`, `dentry`) may have been written in the container,
/// statelessly:
/// - on an overlay the node mounted (its superblock belongs to the initial user
///   namespace), when it is in the upper layer (created, written or copied up there; the
///   image's files are in the lower layers);
/// - on the task's root mount when that is not an overlay (`d4c exec` on a host, other
///   snapshotters) and is the mount namespace's own root: the node mounted it, the task's
///   root is that mount's root and the mount is mounted on its parent's root (no
///   `chroot`), and the node owns the namespace (no root made in a user namespace).
///   Unknown, not decided;
/// - anywhere else: written. Volumes (read-only ones too: a read-only bind mount is one
///   syscall in a user namespace, and they share the node disk's superblock), and any
///   filesystem or overlay the container mounted.
#[inline(always)]
fn written_in_container(mnt: *const u8, dentry: *const u8, inode: *const u8) -> R {
    let sb = read_ptr(dentry, OFF_DENTRY_SB)?;
    let node_mounted = initial_user_ns(read_ptr(sb, OFF_SB_USER_NS)?)?;
    if read::<u64>(sb, OFF_SB_MAGIC)? == OVERLAYFS_SUPER_MAGIC {
        return Ok(!node_mounted || !read_ptr(inode, OFF_OVL_UPPER)?.is_null());
    }
    let (root_mnt, root_dentry) = task_root()?;
    if !node_mounted || mnt != root_mnt || read_ptr(root_mnt, OFF_VFSMOUNT_ROOT)? != root_dentry {
        return Ok(true);
    }
    // SAFETY: no preconditions.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let ns = read_ptr(read_ptr(task, OFF_TASK_NSPROXY)?, OFF_NSPROXY_MNT_NS)?;
    // Mounted on its parent's root (as `pivot_root` and a boot's `switch_root` leave a
    // root, above the namespace's top mount and, from 7.x, the initramfs's), not on a
    // directory: a `chroot` to a volume's mount point is not a root.
    let mount = root_mnt.wrapping_sub(off(OFF_MOUNT_MNT));
    let on_root = mount == read_ptr(ns, OFF_MNT_NS_ROOT)? || {
        let parent = read_ptr(mount, OFF_MOUNT_PARENT)?.wrapping_add(off(OFF_MOUNT_MNT));
        read_ptr(mount, OFF_MOUNT_MOUNTPOINT)? == read_ptr(parent, OFF_VFSMOUNT_ROOT)?
    };
    Ok(!on_root || !initial_user_ns(read_ptr(ns, OFF_MNT_NS_USER_NS)?)?)
}

/// Whether `user_ns` (a `struct user_namespace *`) is the initial one.
#[inline(always)]
fn initial_user_ns(user_ns: *const u8) -> R {
    Ok(read::<i32>(user_ns, OFF_USER_NS_LEVEL)? == 0)
}
