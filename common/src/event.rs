//! The record a kernel program writes to the ring buffer for a decision that logs, alerts
//! or blocks.

use crate::consts::COMM_LEN;

/// Bytes of the target path carried in an event (longer paths are cut, `FLAG_TRUNCATED`).
pub const EVENT_PATH_MAX: usize = 512;
/// Bytes of the acting process's executable path carried in an event.
pub const EVENT_EXE_MAX: usize = 256;

/// The path was longer than the event carries.
pub const FLAG_PATH_TRUNCATED: u8 = 1;
/// The executable path was longer than the event carries.
pub const FLAG_EXE_TRUNCATED: u8 = 2;
/// The operation was denied.
pub const FLAG_DENIED: u8 = 4;
/// The path could not be built from the task's root (another mount namespace, a detached
/// mount, a chroot's outside, too deep): `path` is a best effort and the decision was the
/// rule set's most restrictive path class.
pub const FLAG_PATH_UNREACHABLE: u8 = 8;
/// The container's alert budget was spent: this event stands for the ones held back (one
/// of every `SET_SAMPLE_EVERY` of them), for the paths of its summary; it is not an alert
/// of its own.
pub const FLAG_THROTTLED_SAMPLE: u8 = 16;

/// One decision, as the kernel saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// `EVENT_FILE` or `EVENT_PROCESS`.
    pub kind: u8,
    /// File or process operation index (`OP_*`): the first operation of `ops` whose
    /// actions are not empty.
    pub op: u8,
    /// `ACTION_*` bits of the decision.
    pub actions: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The rule set the decision was made under.
    pub rule_set: u32,
    /// The acting task's cgroup id.
    pub cgroup_id: u64,
    /// The registered container's cgroup id (`ContainerEntry::owner`): `cgroup_id` itself,
    /// or its ancestor for a cgroup created inside the container; 0 if the entry was gone.
    pub owner_cgroup_id: u64,
    /// `bpf_ktime_get_boot_ns` at the decision.
    pub boot_ns: u64,
    /// When the acting process started (its group leader's `start_boottime`, the same
    /// clock as `boot_ns`); 0 when it could not be read. With `tgid` and the boot, it
    /// names the process uniquely (`process.entity_id`).
    pub start_ns: u64,
    /// When the parent process started (`real_parent`'s group leader); 0 when unknown.
    pub parent_start_ns: u64,
    /// The acting thread's id (the kernel's pid).
    pub pid: u32,
    /// The acting process's id (the kernel's tgid).
    pub tgid: u32,
    /// The parent process's id.
    pub ppid: u32,
    /// The acting task's user id.
    pub uid: u32,
    /// The acting task's group id.
    pub gid: u32,
    /// File mode (type and permission bits): the target's, or the requested new mode for
    /// `path_chmod` / `path_mknod`.
    pub mode: u32,
    /// Which hook decided (an index into the loader's hook list).
    pub hook: u16,
    /// Bytes of `path` that hold the path.
    pub path_len: u16,
    /// Bytes of `exe` that hold the executable path.
    pub exe_len: u16,
    /// 1 when the session has a controlling terminal.
    pub interactive: u8,
    /// Every operation this event is, as bits `1 << OP_*` (a `chmod +x` is both
    /// createExecutable and modifyFile); `actions` is the union of their actions.
    pub ops: u8,
    /// The acting task's name (`comm`), NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// File events: the target path as the container sees it (`memfd:NAME` for execMemFd).
    /// Process events: the executable being run (exec) or running (fork).
    pub path: [u8; EVENT_PATH_MAX],
    /// File events and fork: the acting process's executable (`mm->exe_file`).
    /// Exec: the file name as passed to execve (`bprm->filename`).
    pub exe: [u8; EVENT_EXE_MAX],
}
const _: () =
    assert!(core::mem::size_of::<Event>() == 80 + COMM_LEN + EVENT_PATH_MAX + EVENT_EXE_MAX);
