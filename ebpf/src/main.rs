//! d4c kernel programs: thin LSM entries over fallible helpers, plus the cgroup tracepoints
//! that keep cgroups created inside a managed container under its rule set.
//!
//! Every hook first asks `container::rule_set()` (one hash lookup); an unmanaged task
//! returns 0 before any other work. A decision with `ACTION_BLOCK` returns -EPERM.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod acl;
mod container;
mod event;
mod file_ops;
mod mapping;
mod maps;
mod offsets;
mod path;
mod process_ops;
mod scratch;

use aya_ebpf::{
    macros::{lsm, raw_tracepoint},
    programs::{LsmContext, RawTracePointContext},
};
use d4c_common::{
    object::{is_program, same_name},
    offsets::{
        OFF_CGROUP_KN, OFF_CGROUP_PARENT_CSS, OFF_CGROUP_ROOT, OFF_CGROUP_ROOT_HIERARCHY_ID,
        OFF_CGROUP_SELF, OFF_KERNFS_ID, OFF_MMAP_PROT_ARG, OFF_VMA_FILE, OFF_VMA_FLAGS,
    },
    CNT_DENIED, CNT_HOOK_ERRORS, ENTRY_PENDING, GLOBAL_NOOP, HOOK_FILE_MPROTECT, HOOK_MMAP_FILE,
};

const EPERM: i32 = 1;

/// Benchmark floor: when the loader sets this frozen read-only global to non-zero, every
/// program returns 0 at once (the verifier prunes the rest: it is a known constant). The
/// object holds 0 and d4c never changes it; only the overhead benchmark does
/// (`Config::noop`). The global `d4c_common::GLOBAL_NOOP`.
#[no_mangle]
static D4C_NOOP: u32 = 0;
const _: () = assert!(same_name(GLOBAL_NOOP, stringify!(D4C_NOOP)));

/// Whether this object was loaded as the benchmark's no-op floor.
#[inline(always)]
fn noop() -> bool {
    // SAFETY: a plain read of a static; volatile so the compiler does not fold the 0 the
    // object file holds (the loader may replace it).
    unsafe { core::ptr::read_volatile(&raw const D4C_NOOP) != 0 }
}

/// The hook's answer: -EPERM (a constant, as the verifier wants) to deny, else 0. A hook
/// that failed (`Err`: a kernel read, the scratch space) is counted, and denies when the
/// task's rule set can block: an error never lets a blockable operation through.
#[inline(always)]
fn verdict(r: Result<bool, i64>, cg: container::Cgroup) -> i32 {
    let deny = match r {
        Ok(deny) => deny,
        Err(_) => {
            maps::count(CNT_HOOK_ERRORS);
            let deny = maps::can_block(cg.rule_set);
            if deny {
                maps::count(CNT_DENIED);
            }
            deny
        }
    };
    if deny {
        eperm()
    } else {
        0
    }
}

/// -EPERM, kept opaque to the compiler so that it is returned as a constant the verifier
/// can see (not folded into arithmetic on a bool), and spilled as 64 bits (a 32-bit spill
/// reloads as an unknown value, outside the range an LSM program may return).
#[inline(always)]
fn eperm() -> i32 {
    core::hint::black_box(-i64::from(EPERM)) as i32
}

/// One LSM hook's entry; its name and hook must be a program of `d4c_common::PROGRAMS`
/// (checked at compile time: the loader attaches that list).
macro_rules! hook {
    ($name:ident, $hook:literal, $helper:path) => {
        const _: () = assert!(is_program(stringify!($name), $hook));
        #[lsm(hook = $hook)]
        pub fn $name(ctx: LsmContext) -> i32 {
            if noop() {
                return 0;
            }
            match container::rule_set() {
                None => 0,
                Some(cg) => verdict($helper(&ctx, cg), cg),
            }
        }
    };
}

hook!(path_chmod, "path_chmod", file_ops::path_chmod);
hook!(path_mknod, "path_mknod", file_ops::path_mknod);
/// `file_open` runs on every open of every task: the open's mode and the file's type
/// (direct loads, no helper call) rule out most opens before the cgroup lookup.
#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    if noop() {
        return 0;
    }
    let Some(open) = file_ops::write_open(&ctx) else {
        return 0;
    };
    match container::rule_set() {
        None => 0,
        Some(cg) => {
            // A write open of a cgroup file (`cgroup.procs`) may move the process out of
            // its container's cgroup: it keeps the container's rule set.
            let r = if file_ops::on_cgroupfs(open) {
                container::remember(container::current_process(), cg)
            } else {
                Ok(())
            };
            verdict(r.and_then(|()| file_ops::file_open(open, cg)), cg)
        }
    }
}
const _: () = assert!(is_program("file_open", "file_open"));
hook!(path_truncate, "path_truncate", file_ops::path_truncate);
hook!(file_truncate, "file_truncate", file_ops::file_truncate);
hook!(path_unlink, "path_unlink", file_ops::path_unlink);
hook!(path_link, "path_link", file_ops::path_link);
hook!(path_rename, "path_rename", file_ops::path_rename);
/// `bprm_creds_for_exec` also arms a pending entry (see `container::rule_set_at_exec`):
/// at the first exec that is not the runtime re-executing itself.
#[lsm(hook = "bprm_creds_for_exec")]
pub fn bprm_creds_for_exec(ctx: LsmContext) -> i32 {
    if noop() {
        return 0;
    }
    match container::rule_set_at_exec(|| process_ops::runtime_reexec(&ctx)) {
        Ok(None) => 0,
        Ok(Some(cg)) => verdict(process_ops::bprm_creds_for_exec(&ctx, cg), cg),
        Err(()) => eperm(),
    }
}
hook!(task_alloc, "task_alloc", process_ops::task_alloc);
hook!(inode_setxattr, "inode_setxattr", acl::inode_setxattr);
hook!(inode_set_acl, "inode_set_acl", acl::inode_set_acl);
/// `mmap_file(file, reqprot, prot, flags)` (BPF LSM; `security_mmap_file(file, prot,
/// flags)` as `fmod_ret`) runs on every mapping of every task: only an executable mapping
/// of a memfd or of a file without x bits (direct loads, before any lookup) goes on.
#[lsm(hook = "mmap_file")]
pub fn mmap_file(ctx: LsmContext) -> i32 {
    if noop() {
        return 0;
    }
    let file: *const u8 = ctx.arg(0);
    if !mapping::candidate(file) {
        return 0;
    }
    let at = offsets::off(OFF_MMAP_PROT_ARG);
    // Unreadable arguments: taken as a private executable mapping (decided, never let by).
    let prot = offsets::raw_arg(&ctx, at).unwrap_or(u64::MAX);
    let flags = offsets::raw_arg(&ctx, at + 1).unwrap_or(0);
    if !mapping::maps_exec(prot) {
        return 0;
    }
    match container::rule_set() {
        None => 0,
        Some(cg) => verdict(
            mapping::map_file(cg, HOOK_MMAP_FILE, file, mapping::shared_flags(flags)),
            cg,
        ),
    }
}
const _: () = assert!(is_program("mmap_file", "mmap_file"));

/// `file_mprotect(struct vm_area_struct *vma, reqprot, prot)`: a private file mapping made
/// executable, decided as [`mmap_file`] decides it.
#[lsm(hook = "file_mprotect")]
pub fn file_mprotect(ctx: LsmContext) -> i32 {
    if noop() {
        return 0;
    }
    let vma: *const u8 = ctx.arg(0);
    let file: *const u8 = offsets::load(vma, OFF_VMA_FILE);
    if !mapping::maps_exec(ctx.arg(2)) || !mapping::candidate(file) {
        return 0;
    }
    let shared = mapping::shared_vma(offsets::load::<u64>(vma, OFF_VMA_FLAGS));
    match container::rule_set() {
        None => 0,
        Some(cg) => verdict(mapping::map_file(cg, HOOK_FILE_MPROTECT, file, shared), cg),
    }
}
const _: () = assert!(is_program("file_mprotect", "file_mprotect"));

/// `path_mkdir`: a managed task may create a cgroup only while `D4C_CONTAINERS` has room
/// for its entry (else the new cgroup's tasks would be unmanaged).
#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    if noop() {
        return 0;
    }
    match container::rule_set() {
        None => 0,
        Some(cg) => verdict(Ok(!container::cgroup_mkdir_has_room(ctx.arg(0))), cg),
    }
}
const _: () = assert!(is_program("path_mkdir", "path_mkdir"));

/// Whether a `struct cgroup *` is on the default (v2) hierarchy, the one whose ids
/// `bpf_get_current_cgroup_id` returns. v1 hierarchies number their cgroups separately.
#[inline(always)]
fn on_default_hierarchy(cgrp: *const u8) -> bool {
    offsets::read_ptr(cgrp, OFF_CGROUP_ROOT)
        .and_then(|root| offsets::read::<i32>(root, OFF_CGROUP_ROOT_HIERARCHY_ID))
        .is_ok_and(|id| id == 0)
}

/// The cgroup id of a `struct cgroup *`.
#[inline(always)]
fn cgroup_id(cgrp: *const u8) -> Result<u64, i64> {
    offsets::read::<u64>(offsets::read_ptr(cgrp, OFF_CGROUP_KN)?, OFF_KERNFS_ID)
}

/// `cgroup_mkdir(struct cgroup *cgrp, const char *path)`: a child of a managed cgroup
/// inherits its entry (so nested cgroups need no ancestor walk on the hot path).
#[raw_tracepoint(tracepoint = "cgroup_mkdir")]
pub fn d4c_cgroup_mkdir(ctx: RawTracePointContext) -> i32 {
    if noop() {
        return 0;
    }
    let _ = try_cgroup_mkdir(&ctx);
    0
}
const _: () = assert!(is_program("d4c_cgroup_mkdir", "cgroup_mkdir"));

fn try_cgroup_mkdir(ctx: &RawTracePointContext) -> Result<(), i64> {
    if !offsets::ready() {
        return Ok(());
    }
    let cgrp: *const u8 = ctx.arg(0);
    if !on_default_hierarchy(cgrp) {
        return Ok(());
    }
    let parent_css = offsets::read_ptr(cgrp, OFF_CGROUP_PARENT_CSS)?;
    if parent_css.is_null() {
        return Ok(());
    }
    let parent = parent_css.wrapping_sub(offsets::off(OFF_CGROUP_SELF));
    let parent_id = cgroup_id(parent)?;
    // SAFETY: the value is copied out before the insert.
    let Some(mut entry) = (unsafe { maps::CONTAINERS.get(parent_id) }).copied() else {
        return Ok(());
    };
    // Below an armed cgroup a new one is armed at once (the container's code runs there).
    if entry.flags & ENTRY_PENDING != 0 && !container::pending(parent_id, entry.flags) {
        entry.flags &= !ENTRY_PENDING;
    }
    let id = cgroup_id(cgrp)?;
    // `path_mkdir` refused the mkdir when there was no room; a race past it is counted.
    maps::CONTAINERS.insert(id, entry, 0).map_err(|e| {
        maps::count(d4c_common::CNT_MAP_FULL);
        i64::from(e)
    })
}

/// A raw tracepoint that records the process of its argument `$arg` (a `task_struct *`)
/// under the current task's container (`container::record_process`).
macro_rules! records {
    ($name:ident, $tp:literal, $arg:literal) => {
        const _: () = assert!(is_program(stringify!($name), $tp));
        #[raw_tracepoint(tracepoint = $tp)]
        pub fn $name(ctx: RawTracePointContext) -> i32 {
            if !noop() {
                container::record_process(ctx.arg($arg));
            }
            0
        }
    };
}

// `sched_process_fork(parent, child)`: a fork that succeeded (a failed one never gets a
// record its freed `task_struct` could pass on); the child has not run yet.
records!(d4c_task_fork, "sched_process_fork", 1);
// `sched_process_exec(p, old_pid, bprm)`: an exec that succeeded, `current` already its
// process's leader (an exec by another thread makes it the leader): a process that ran
// before d4c, or the container's first, gets its record here.
records!(d4c_task_exec, "sched_process_exec", 0);

/// `sched_process_free(struct task_struct *p)`: forget a freed process's record (before
/// its `task_struct` can be reused).
#[raw_tracepoint(tracepoint = "sched_process_free")]
pub fn d4c_task_free(ctx: RawTracePointContext) -> i32 {
    if noop() {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let _ = maps::TASKS.remove(task);
    0
}
const _: () = assert!(is_program("d4c_task_free", "sched_process_free"));

/// `cgroup_rmdir(struct cgroup *cgrp, const char *path)`: forget a removed cgroup.
#[raw_tracepoint(tracepoint = "cgroup_rmdir")]
pub fn d4c_cgroup_rmdir(ctx: RawTracePointContext) -> i32 {
    if noop() {
        return 0;
    }
    let cgrp: *const u8 = ctx.arg(0);
    if offsets::ready() && on_default_hierarchy(cgrp) {
        if let Ok(id) = cgroup_id(cgrp) {
            let _ = maps::CONTAINERS.remove(id);
            let _ = maps::ARMED.remove(id);
        }
    }
    0
}
const _: () = assert!(is_program("d4c_cgroup_rmdir", "cgroup_rmdir"));

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
