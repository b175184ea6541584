//! Kernel struct field offsets, read by userspace from the running kernel's BTF and given to
//! the programs as a frozen read-only global, so one built artifact runs on many kernels.
//!
//! `fields[OFF_X]` is the byte offset of one field (nested members and anonymous unions
//! already summed up). The kernel programs read a field only through these offsets; the
//! userspace loader fills every index listed in [`FIELDS`] or refuses to load.

/// Byte offsets of the kernel struct fields the programs read. Zero means "not present".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `fields[OFF_X]`: the byte offset of field `OFF_X`.
    pub fields: [u32; 64],
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 256);

impl Default for KernelOffsets {
    fn default() -> Self {
        KernelOffsets { fields: [0; 64] }
    }
}

/// Set by the loader to [`OFFSETS_MAGIC`] once every field is filled; the programs allow
/// everything while it is not (an artifact loaded without offsets never dereferences junk).
pub const OFF_MAGIC: usize = 0;
/// The value of `fields[OFF_MAGIC]` once the loader filled the offsets.
pub const OFFSETS_MAGIC: u32 = 0xd4c0_0001;
// struct task_struct
/// `task_struct.fs`.
pub const OFF_TASK_FS: usize = 1;
/// `task_struct.mm`.
pub const OFF_TASK_MM: usize = 2;
/// `task_struct.signal`.
pub const OFF_TASK_SIGNAL: usize = 3;
/// `task_struct.real_parent`.
pub const OFF_TASK_REAL_PARENT: usize = 4;
/// `task_struct.tgid`.
pub const OFF_TASK_TGID: usize = 5;
// struct fs_struct
/// `fs_struct.root`.
pub const OFF_FS_ROOT: usize = 6;
// struct path
/// `path.mnt`.
pub const OFF_PATH_MNT: usize = 7;
/// `path.dentry`.
pub const OFF_PATH_DENTRY: usize = 8;
// struct dentry
/// `dentry.d_parent`.
pub const OFF_DENTRY_PARENT: usize = 9;
/// `d_name.len` (inside the anonymous union of `struct qstr`).
pub const OFF_DENTRY_NAME_LEN: usize = 10;
/// `d_name.name`.
pub const OFF_DENTRY_NAME_PTR: usize = 11;
/// `dentry.d_inode`.
pub const OFF_DENTRY_INODE: usize = 12;
/// `dentry.d_sb`.
pub const OFF_DENTRY_SB: usize = 13;
// struct vfsmount
/// `vfsmount.mnt_root`.
pub const OFF_VFSMOUNT_ROOT: usize = 14;
// struct mount
/// Offset of the embedded `struct vfsmount mnt` in `struct mount` (`container_of`).
pub const OFF_MOUNT_MNT: usize = 15;
/// `mount.mnt_parent`.
pub const OFF_MOUNT_PARENT: usize = 16;
/// `mount.mnt_mountpoint`.
pub const OFF_MOUNT_MOUNTPOINT: usize = 17;
// struct file
/// `file.f_path`.
pub const OFF_FILE_PATH: usize = 18;
/// `file.f_inode`.
pub const OFF_FILE_INODE: usize = 19;
/// `file.f_mode`.
pub const OFF_FILE_MODE: usize = 20;
// struct inode
/// `inode.i_mode`.
pub const OFF_INODE_MODE: usize = 21;
/// `inode.i_sb`.
pub const OFF_INODE_SB: usize = 22;
// struct super_block
/// `super_block.s_magic`.
pub const OFF_SB_MAGIC: usize = 23;
/// `super_block.s_flags`.
pub const OFF_SB_FLAGS: usize = 24;
// struct mm_struct
/// `mm_struct.exe_file`.
pub const OFF_MM_EXE_FILE: usize = 25;
// struct signal_struct
/// `signal_struct.tty`.
pub const OFF_SIGNAL_TTY: usize = 26;
// struct linux_binprm
/// `linux_binprm.file`.
pub const OFF_BPRM_FILE: usize = 27;
/// `linux_binprm.filename`.
pub const OFF_BPRM_FILENAME: usize = 28;
// struct cgroup, struct cgroup_subsys_state, struct kernfs_node
/// `cgroup.self.parent` (a `struct cgroup_subsys_state *`; `self` is a cgroup's first member).
pub const OFF_CGROUP_PARENT_CSS: usize = 29;
/// `cgroup.kn`.
pub const OFF_CGROUP_KN: usize = 30;
/// `kernfs_node.id` (the cgroup id).
pub const OFF_KERNFS_ID: usize = 31;
/// Offset of `struct cgroup_subsys_state self` in `struct cgroup` (`container_of`).
pub const OFF_CGROUP_SELF: usize = 32;
/// `cgroup.root` (a `struct cgroup_root *`).
pub const OFF_CGROUP_ROOT: usize = 33;
/// `cgroup_root.hierarchy_id`: 0 for the default (v2) hierarchy. The cgroup tracepoints
/// ignore v1 hierarchies, whose ids are allocated separately and could collide.
pub const OFF_CGROUP_ROOT_HIERARCHY_ID: usize = 34;
// Mount namespaces (the `bpf_d_path` fast path checks the file's mount is in the task's).
/// `task_struct.nsproxy`.
pub const OFF_TASK_NSPROXY: usize = 35;
/// `nsproxy.mnt_ns`.
pub const OFF_NSPROXY_MNT_NS: usize = 36;
/// `mount.mnt_ns`.
pub const OFF_MOUNT_MNT_NS: usize = 37;
// POSIX ACLs (`inode_set_acl`) and hooks that get a dentry without its mount.
/// `posix_acl.a_count`.
pub const OFF_ACL_COUNT: usize = 38;
/// `posix_acl.a_entries` (an array of `struct posix_acl_entry`, 8 bytes each).
pub const OFF_ACL_ENTRIES: usize = 39;
/// `vfsmount.mnt_sb`.
pub const OFF_VFSMOUNT_SB: usize = 40;
/// `inode.i_nlink` (0 for an `O_TMPFILE` file until it is linked).
pub const OFF_INODE_NLINK: usize = 41;
/// `task_struct.group_leader`.
pub const OFF_TASK_GROUP_LEADER: usize = 42;
/// `vm_area_struct.vm_file`.
pub const OFF_VMA_FILE: usize = 43;
/// `vm_area_struct.vm_flags`.
pub const OFF_VMA_FLAGS: usize = 44;
/// `task_struct.personality`.
pub const OFF_TASK_PERSONALITY: usize = 45;
/// Not a field: the index of `mmap_file`'s `prot` argument (2 under BPF LSM, whose
/// `bpf_lsm_mmap_file` has `reqprot` before it; 1 under `fmod_ret` on
/// `security_mmap_file(file, prot, flags)`); `flags` follows it. Set by the loader.
pub const OFF_MMAP_PROT_ARG: usize = 46;
// Who mounted what (which files are the image's, `mmap_file`).
/// `user_namespace.level` (0 for the initial user namespace).
pub const OFF_USER_NS_LEVEL: usize = 47;
/// `super_block.s_user_ns` (the user namespace that mounted it).
pub const OFF_SB_USER_NS: usize = 48;
/// `mnt_namespace.root` (a `struct mount *`: the namespace's top mount, under the root
/// that `pivot_root` or a boot's `switch_root` put on it).
pub const OFF_MNT_NS_ROOT: usize = 51;
/// `mnt_namespace.user_ns` (the user namespace that owns it).
pub const OFF_MNT_NS_USER_NS: usize = 52;
/// Not a field of vmlinux: the byte offset from an overlayfs inode's `struct inode` to its
/// `ovl_inode.__upperdentry` (non-null when the file is in the container's upper layer,
/// that is, written or copied up there). Set by the loader from the overlay module's BTF,
/// else from `sizeof(struct inode)` (the member follows `vfs_inode` from 4.19 to 7.2).
pub const OFF_OVL_UPPER: usize = 49;
/// `backing_file.user_path` (6.6+: overlayfs maps its real file in the vma, and that
/// file's user path is the overlay's), or 0 on kernels without backing files (6.1's real
/// file carries the overlay's path itself). Optional: set by the loader.
pub const OFF_BACKING_USER_PATH: usize = 50;
/// `task_struct.start_boottime`: when the task started, in boot-clock nanoseconds (the
/// clock of `bpf_ktime_get_boot_ns`); a process's start is its group leader's.
pub const OFF_TASK_START_BOOTTIME: usize = 53;
/// Number of used indices.
pub const OFF_COUNT: usize = 54;

/// Every field the loader resolves: (index, struct, member path with `.` for nesting).
/// A member path may cross anonymous unions and structs without naming them.
pub const FIELDS: &[(usize, &str, &str)] = &[
    (OFF_TASK_FS, "task_struct", "fs"),
    (OFF_TASK_MM, "task_struct", "mm"),
    (OFF_TASK_SIGNAL, "task_struct", "signal"),
    (OFF_TASK_REAL_PARENT, "task_struct", "real_parent"),
    (OFF_TASK_TGID, "task_struct", "tgid"),
    (OFF_FS_ROOT, "fs_struct", "root"),
    (OFF_PATH_MNT, "path", "mnt"),
    (OFF_PATH_DENTRY, "path", "dentry"),
    (OFF_DENTRY_PARENT, "dentry", "d_parent"),
    (OFF_DENTRY_NAME_LEN, "dentry", "d_name.len"),
    (OFF_DENTRY_NAME_PTR, "dentry", "d_name.name"),
    (OFF_DENTRY_INODE, "dentry", "d_inode"),
    (OFF_DENTRY_SB, "dentry", "d_sb"),
    (OFF_VFSMOUNT_ROOT, "vfsmount", "mnt_root"),
    (OFF_MOUNT_MNT, "mount", "mnt"),
    (OFF_MOUNT_PARENT, "mount", "mnt_parent"),
    (OFF_MOUNT_MOUNTPOINT, "mount", "mnt_mountpoint"),
    (OFF_FILE_PATH, "file", "f_path"),
    (OFF_FILE_INODE, "file", "f_inode"),
    (OFF_FILE_MODE, "file", "f_mode"),
    (OFF_INODE_MODE, "inode", "i_mode"),
    (OFF_INODE_SB, "inode", "i_sb"),
    (OFF_SB_MAGIC, "super_block", "s_magic"),
    (OFF_SB_FLAGS, "super_block", "s_flags"),
    (OFF_MM_EXE_FILE, "mm_struct", "exe_file"),
    (OFF_SIGNAL_TTY, "signal_struct", "tty"),
    (OFF_BPRM_FILE, "linux_binprm", "file"),
    (OFF_BPRM_FILENAME, "linux_binprm", "filename"),
    (OFF_CGROUP_PARENT_CSS, "cgroup", "self.parent"),
    (OFF_CGROUP_KN, "cgroup", "kn"),
    (OFF_KERNFS_ID, "kernfs_node", "id"),
    (OFF_CGROUP_SELF, "cgroup", "self"),
    (OFF_CGROUP_ROOT, "cgroup", "root"),
    (OFF_CGROUP_ROOT_HIERARCHY_ID, "cgroup_root", "hierarchy_id"),
    (OFF_TASK_NSPROXY, "task_struct", "nsproxy"),
    (OFF_NSPROXY_MNT_NS, "nsproxy", "mnt_ns"),
    (OFF_MOUNT_MNT_NS, "mount", "mnt_ns"),
    (OFF_ACL_COUNT, "posix_acl", "a_count"),
    (OFF_ACL_ENTRIES, "posix_acl", "a_entries"),
    (OFF_VFSMOUNT_SB, "vfsmount", "mnt_sb"),
    (OFF_INODE_NLINK, "inode", "i_nlink"),
    (OFF_TASK_GROUP_LEADER, "task_struct", "group_leader"),
    (OFF_VMA_FILE, "vm_area_struct", "vm_file"),
    (OFF_VMA_FLAGS, "vm_area_struct", "vm_flags"),
    (OFF_TASK_PERSONALITY, "task_struct", "personality"),
    (OFF_USER_NS_LEVEL, "user_namespace", "level"),
    (OFF_SB_USER_NS, "super_block", "s_user_ns"),
    (OFF_MNT_NS_ROOT, "mnt_namespace", "root"),
    (OFF_MNT_NS_USER_NS, "mnt_namespace", "user_ns"),
    (OFF_TASK_START_BOOTTIME, "task_struct", "start_boottime"),
];
const _: () = assert!(OFF_COUNT <= 64);
