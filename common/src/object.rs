//! What the userspace loader finds in the eBPF object by name, besides the maps
//! ([`crate::maps`]): the programs and where they attach, and the global variables it
//! writes before loading.
//!
//! The kernel crate cannot take these names from constants (its `#[lsm]`, `#[map]` and
//! `#[no_mangle]` items are named by literals and identifiers), so it checks each of its
//! names against this module at compile time with [`same_name`] and [`is_program`], and a
//! unit test of the loader checks the built object for every name listed here.

use crate::consts::{
    HOOK_BPRM_CREDS_FOR_EXEC, HOOK_FILE_MPROTECT, HOOK_FILE_OPEN, HOOK_FILE_TRUNCATE,
    HOOK_INODE_SETXATTR, HOOK_INODE_SET_ACL, HOOK_MMAP_FILE, HOOK_NAMES, HOOK_PATH_CHMOD,
    HOOK_PATH_LINK, HOOK_PATH_MKDIR, HOOK_PATH_MKNOD, HOOK_PATH_RENAME, HOOK_PATH_TRUNCATE,
    HOOK_PATH_UNLINK, HOOK_TASK_ALLOC,
};

/// The frozen read-only global holding the kernel's struct offsets
/// ([`crate::KernelOffsets`]); the loader writes it from the kernel's BTF.
pub const GLOBAL_OFFSETS: &str = "D4C_OFFSETS";
/// The frozen read-only `u32` global that, when non-zero, makes every program return 0 at
/// once: the no-op floor of the kernel overhead benchmark (d4c itself never sets it).
pub const GLOBAL_NOOP: &str = "D4C_NOOP";

/// How a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// An LSM hook: `bpf_lsm_<attach>` as BPF LSM, `security_<attach>` as `fmod_ret`.
    Lsm,
    /// A raw tracepoint named `attach`.
    RawTracepoint,
}

/// One program of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// The program's (function's) name in the object; also the name of its pinned link.
    pub name: &'static str,
    /// The LSM hook or the tracepoint it attaches to.
    pub attach: &'static str,
    /// How it attaches.
    pub kind: ProgramKind,
    /// Whether a kernel may lack the hook (then the program is skipped).
    pub optional: bool,
}

impl Program {
    /// The program of LSM hook `hook` (a `HOOK_*` constant), named after the hook.
    #[must_use]
    pub const fn hook(hook: u16) -> Program {
        let name = HOOK_NAMES[hook as usize];
        Program {
            name,
            attach: name,
            kind: ProgramKind::Lsm,
            optional: false,
        }
    }

    /// The program of LSM hook `hook`, which some kernels lack.
    #[must_use]
    pub const fn optional_hook(hook: u16) -> Program {
        Program {
            optional: true,
            ..Program::hook(hook)
        }
    }

    /// The program `name` on the raw tracepoint `attach`.
    #[must_use]
    pub const fn tracepoint(name: &'static str, attach: &'static str) -> Program {
        Program {
            name,
            attach,
            kind: ProgramKind::RawTracepoint,
            optional: false,
        }
    }
}

/// Every program, in load order: the tracepoints first (so nested cgroups are tracked
/// before any deny), then the hooks.
pub const PROGRAMS: [Program; 20] = [
    Program::tracepoint("d4c_cgroup_mkdir", "cgroup_mkdir"),
    Program::tracepoint("d4c_cgroup_rmdir", "cgroup_rmdir"),
    Program::tracepoint("d4c_task_fork", "sched_process_fork"),
    Program::tracepoint("d4c_task_exec", "sched_process_exec"),
    Program::tracepoint("d4c_task_free", "sched_process_free"),
    Program::hook(HOOK_PATH_CHMOD),
    Program::hook(HOOK_PATH_MKNOD),
    Program::hook(HOOK_FILE_OPEN),
    Program::hook(HOOK_PATH_TRUNCATE),
    // 6.2+: O_TRUNC and ftruncate call this instead of path_truncate.
    Program::optional_hook(HOOK_FILE_TRUNCATE),
    Program::hook(HOOK_PATH_UNLINK),
    Program::hook(HOOK_PATH_LINK),
    Program::hook(HOOK_PATH_RENAME),
    Program::hook(HOOK_BPRM_CREDS_FOR_EXEC),
    Program::hook(HOOK_TASK_ALLOC),
    Program::hook(HOOK_INODE_SETXATTR),
    // 6.2+: POSIX ACLs are set through this instead of inode_setxattr.
    Program::optional_hook(HOOK_INODE_SET_ACL),
    Program::hook(HOOK_PATH_MKDIR),
    Program::hook(HOOK_MMAP_FILE),
    Program::hook(HOOK_FILE_MPROTECT),
];

/// Whether two names are equal, in a `const` context (for compile-time checks).
#[must_use]
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether [`PROGRAMS`] lists a program `name` attached to `attach`, in a `const` context.
#[must_use]
pub const fn is_program(name: &str, attach: &str) -> bool {
    let mut i = 0;
    while i < PROGRAMS.len() {
        if same_name(PROGRAMS[i].name, name) && same_name(PROGRAMS[i].attach, attach) {
            return true;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_has_one_program() {
        for (id, name) in HOOK_NAMES.iter().enumerate() {
            let n = PROGRAMS
                .iter()
                .filter(|p| p.kind == ProgramKind::Lsm && p.name == *name)
                .count();
            assert_eq!(n, 1, "hook {id} ({name})");
        }
        assert!(is_program("path_chmod", "path_chmod"));
        assert!(is_program("d4c_cgroup_mkdir", "cgroup_mkdir"));
        assert!(!is_program("path_chmod", "path_mknod"));
        assert!(!same_name("D4C_NOOP", "D4C_NOOP_"));
    }
}
