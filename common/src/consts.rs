//! Constants shared by the kernel programs and userspace: operations, actions, classes, limits.

/// Bytes of a path that take part in a rule-table (LPM trie) lookup. Every stored prefix is
/// at most this long; the rest of a longer path is only scanned for its class. The kernel
/// caps LPM trie data at 256 bytes (`LPM_DATA_SIZE_MAX`), 4 of which are the rule set.
pub const PATH_KEY_MAX: usize = 252;

/// Rule-set ids from here up belong to `d4c exec` runs ([`exec_rule_set`]), below it to the
/// daemon; each leaves the other's entries alone in the shared maps.
pub const EXEC_RULE_SETS: u32 = 0x8000_0000;

/// The rule-set id of the `d4c exec` run reading event ring `ring` (which no other live
/// run holds) with process id `pid`, in the [`EXEC_RULE_SETS`] range: distinct among live
/// runs whatever their pid namespaces.
#[must_use]
pub const fn exec_rule_set(ring: u8, pid: u32) -> u32 {
    EXEC_RULE_SETS | ((ring as u32 & 0x7f) << 24) | (pid & 0x00ff_ffff)
}

/// Bytes of a process name as the kernel keeps it (`TASK_COMM_LEN`), NUL included.
pub const COMM_LEN: usize = 16;

// File operations: indices into [`crate::FileRule::actions`].
/// createExecutable: a new file with an x bit, or an x bit added to a file.
pub const OP_CREATE_EXECUTABLE: usize = 0;
/// modifyExecutable: a file with an x bit written, truncated or replaced.
pub const OP_MODIFY_EXECUTABLE: usize = 1;
/// execMemFd: a program run from a memfd.
pub const OP_EXEC_MEMFD: usize = 2;
/// createFile: a new regular file (or a new name for one).
pub const OP_CREATE_FILE: usize = 3;
/// modifyFile: a regular file written, truncated, chmod-ed or replaced.
pub const OP_MODIFY_FILE: usize = 4;
/// deleteFile: a regular file unlinked or renamed away.
pub const OP_DELETE_FILE: usize = 5;
/// Slots reserved for file operations in a rule value (6 used).
pub const FILE_OP_SLOTS: usize = 8;

// Process operations: indices into [`crate::ProcDecision::actions`].
/// fork: a new process (not a thread).
pub const OP_FORK: usize = 0;
/// exec: a program run (`execve`).
pub const OP_EXEC: usize = 1;
/// Slots for process operations in a decision value.
pub const PROC_OP_SLOTS: usize = 2;

// Action bits of a decision.
/// Log the event.
pub const ACTION_LOG: u8 = 1;
/// Alert on the event.
pub const ACTION_ALERT: u8 = 2;
/// Deny the operation (`-EPERM`); blocking events are alerts too.
pub const ACTION_BLOCK: u8 = 4;
/// A `block` of a response d4c only audits (`audit:` in d4c.yaml, `d4c exec --audit`):
/// the operation is allowed and alerted as one that would have been blocked. Ignored
/// where [`ACTION_BLOCK`] is set too (blocking wins).
pub const ACTION_AUDIT: u8 = 8;

// The class of the rest R of a path P after its longest stored prefix K (R = P - K).
/// R is empty: P is exactly K.
pub const REST_EMPTY: usize = 0;
/// R is non-empty and holds no `/`.
pub const REST_NAME: usize = 1;
/// R holds a `/`.
pub const REST_DEEP: usize = 2;
/// Number of rest classes.
pub const REST_CLASSES: usize = 3;

// Directory moves: a directory moved from S to D is decided by the rows of every path
// below D, unless every path below S refuses createExecutable (then it carries nothing
// that was created where creating an executable was allowed).
/// The byte after `D/` in a directory-move key: no real path holds it, so only the
/// compiler's move entry `A/` + NUL matches it exactly.
pub const MOVE_MARK: u8 = 0;
/// The move entry's row holding, per operation, the OR of every row below A.
pub const MOVE_ANY: usize = REST_EMPTY;
/// The move entry's row holding, per operation, `ACTION_BLOCK` when every row below A
/// blocks it, else 0.
pub const MOVE_ALL_BLOCK: usize = REST_NAME;

/// The rows (a bit each) that apply below a moved directory's end D, given the prefix
/// length `found_len` of the entry that the lookup of `D/` + NUL (`key_len` bytes) found:
/// the move entry's `summary` row when it is that entry; else the one-name and deeper
/// rests of the entry `D/`; else the deeper rests of a shorter prefix (its rest below D
/// always holds a `/`).
#[must_use]
pub const fn moved_dir_rows(found_len: usize, key_len: usize, summary: usize) -> u32 {
    if found_len == key_len {
        1 << summary
    } else if found_len + 1 == key_len {
        (1 << REST_NAME) | (1 << REST_DEEP)
    } else {
        1 << REST_DEEP
    }
}

// Event kinds.
/// A file operation ([`crate::Event::op`] is an `OP_*` file operation).
pub const EVENT_FILE: u8 = 1;
/// A process operation ([`crate::Event::op`] is `OP_FORK` or `OP_EXEC`).
pub const EVENT_PROCESS: u8 = 2;

// Indices of the per-CPU counters in [`crate::MAP_COUNTERS`].
/// Hook calls that found the task in a managed container.
pub const CNT_MANAGED: u32 = 0;
/// Operations denied with EPERM.
pub const CNT_DENIED: u32 = 1;
/// Events written to the ring buffer.
pub const CNT_EVENTS: u32 = 2;
/// Events lost because the ring buffer was full.
pub const CNT_RINGBUF_DROPS: u32 = 3;
/// Paths that could not be resolved from the task's root (not below it, too deep, a failed
/// read): decided by the rule set's most restrictive path class.
pub const CNT_PATH_ERRORS: u32 = 4;
/// Hook calls of managed tasks that failed (a kernel read, the scratch space): denied when
/// the rule set can block, else allowed; counted either way.
pub const CNT_HOOK_ERRORS: u32 = 5;
/// A full kernel map: a `mkdir` of a cgroup refused in a managed container because
/// `D4C_CONTAINERS` had no room (or, racing it, a nested cgroup left without an entry at
/// `cgroup_mkdir`), or a process left without a record because `D4C_TASKS` was full.
pub const CNT_MAP_FULL: u32 = 6;
/// Events of `d4c exec` runs lost because their own ring buffer was full (the run reads
/// too slowly, or it ended without removing its cgroup's entry).
pub const CNT_EXEC_RING_DROPS: u32 = 7;
/// Slots of the counters map (all 8 used).
pub const COUNTERS: u32 = 8;

// Hooks, for `Event::hook` (the userspace side names them with [`HOOK_NAMES`]).
/// `path_chmod`.
pub const HOOK_PATH_CHMOD: u16 = 0;
/// `path_mknod` (also `open(O_CREAT)`).
pub const HOOK_PATH_MKNOD: u16 = 1;
/// `file_open` (write opens).
pub const HOOK_FILE_OPEN: u16 = 2;
/// `path_truncate`.
pub const HOOK_PATH_TRUNCATE: u16 = 3;
/// `path_unlink`.
pub const HOOK_PATH_UNLINK: u16 = 4;
/// `path_link`.
pub const HOOK_PATH_LINK: u16 = 5;
/// `path_rename`.
pub const HOOK_PATH_RENAME: u16 = 6;
/// `bprm_creds_for_exec` (exec and execMemFd).
pub const HOOK_BPRM_CREDS_FOR_EXEC: u16 = 7;
/// `task_alloc` (fork).
pub const HOOK_TASK_ALLOC: u16 = 8;
/// `file_truncate` (6.2+: `O_TRUNC` and `ftruncate`).
pub const HOOK_FILE_TRUNCATE: u16 = 9;
/// `inode_setxattr` (6.1: a POSIX access ACL arrives as the `system.posix_acl_access`
/// xattr).
pub const HOOK_INODE_SETXATTR: u16 = 10;
/// `inode_set_acl` (6.2+: every way of setting a POSIX ACL).
pub const HOOK_INODE_SET_ACL: u16 = 11;
/// `path_mkdir` (a cgroup created inside a managed container needs a map entry).
pub const HOOK_PATH_MKDIR: u16 = 12;
/// `mmap_file` (a memfd mapped private and executable: the loader running it).
pub const HOOK_MMAP_FILE: u16 = 13;
/// `file_mprotect` (a private mapping of a memfd made executable).
pub const HOOK_FILE_MPROTECT: u16 = 14;
/// `HOOK_NAMES[hook]` is the LSM hook's name as ECS `cloud_defend.hook_point` shows it.
pub const HOOK_NAMES: [&str; 15] = [
    "path_chmod",
    "path_mknod",
    "file_open",
    "path_truncate",
    "path_unlink",
    "path_link",
    "path_rename",
    "bprm_creds_for_exec",
    "task_alloc",
    "file_truncate",
    "inode_setxattr",
    "inode_set_acl",
    "path_mkdir",
    "mmap_file",
    "file_mprotect",
];
