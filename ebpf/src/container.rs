//! The one question every hook asks before any other helper call or map lookup: is this
//! task in a managed container, and under which rule set? The task's cgroup is looked up
//! first; on a miss, the task's process record (`D4C_TASKS`: a process that was managed and
//! left its container's cgroup stays under that container's rule set). Two misses mean
//! "not ours" and the hook returns at once.

use aya_ebpf::helpers::{bpf_get_current_cgroup_id, generated::bpf_get_current_task_btf};
use d4c_common::{
    offsets::{OFF_DENTRY_SB, OFF_SB_MAGIC, OFF_TASK_GROUP_LEADER},
    ContainerEntry, CNT_DENIED, CNT_HOOK_ERRORS, CNT_MANAGED, CNT_MAP_FULL, ENTRY_PENDING,
};

const BPF_NOEXIST: u32 = 1;
const EEXIST: i32 = 17;

use crate::{
    maps::{count, ARMED, CONTAINERS, TASKS},
    offsets,
};

/// A task in a managed container: its cgroup and the rule set it is checked against.
#[derive(Clone, Copy)]
pub struct Cgroup {
    /// The task's cgroup id (a nested cgroup's own, not its container's).
    pub id: u64,
    /// The rule set of the cgroup's `D4C_CONTAINERS` entry.
    pub rule_set: u32,
    /// The entry's `owner`: the container's registered cgroup (what a process record
    /// keeps).
    pub owner: u64,
}

/// Whether a cgroup whose entry has `flags` is pending: [`ENTRY_PENDING`] and not armed
/// yet (`ARMED`, which only the kernel writes, so a daemon rewriting the entry cannot make
/// an armed cgroup pending again).
#[inline(always)]
pub fn pending(id: u64, flags: u32) -> bool {
    // SAFETY: only presence is read.
    flags & ENTRY_PENDING != 0 && unsafe { ARMED.get(id) }.is_none()
}

/// The task's cgroup and rule set, or `None` for an unmanaged task.
#[inline(always)]
pub fn rule_set() -> Option<Cgroup> {
    // SAFETY: the helper has no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once; map values stay valid during the program.
    let Some(entry) = (unsafe { CONTAINERS.get(id) }) else {
        return left_container();
    };
    let (rule_set, flags, owner) = (entry.rule_set, entry.flags, entry.owner);
    // A cgroup the runtime is still setting up: the container's own code has not run.
    if !offsets::ready() || pending(id, flags) {
        return None;
    }
    count(CNT_MANAGED);
    Some(Cgroup {
        id,
        rule_set,
        owner,
    })
}

/// The current process's leader (`current->group_leader`), the key of its record.
#[inline(always)]
pub fn current_process() -> u64 {
    // SAFETY: no preconditions; the verifier types the result from BTF.
    let task = unsafe { bpf_get_current_task_btf() }
        .cast::<u8>()
        .cast_const();
    offsets::load::<u64>(task, OFF_TASK_GROUP_LEADER)
}

/// A task outside any managed cgroup whose process was managed: the rule set of the
/// container it left (its entry, looked up by the recorded owner, so reloads apply), while
/// that container is registered.
#[inline(always)]
fn left_container() -> Option<Cgroup> {
    // SAFETY: the value is copied out at once.
    let owner = *unsafe { TASKS.get(current_process()) }?;
    // SAFETY: as above.
    let entry = unsafe { CONTAINERS.get(owner) }?;
    let (rule_set, flags) = (entry.rule_set, entry.flags);
    if !offsets::ready() || pending(owner, flags) {
        return None;
    }
    count(CNT_MANAGED);
    Some(Cgroup {
        id: owner,
        rule_set,
        owner,
    })
}

/// The container owner the current task runs under, for the tracepoints: its cgroup's
/// (armed) entry, or its process's record. Helper reads only (no BTF-typed loads).
#[inline(always)]
fn current_owner() -> Option<u64> {
    // SAFETY: the helper has no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once.
    if let Some(e) = unsafe { CONTAINERS.get(id) } {
        let (flags, owner) = (e.flags, e.owner);
        return (!pending(id, flags)).then_some(owner);
    }
    // SAFETY: the helper has no preconditions.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() } as *const u8;
    let Ok(leader) = offsets::read::<u64>(task, OFF_TASK_GROUP_LEADER) else {
        count(CNT_HOOK_ERRORS);
        return None;
    };
    // SAFETY: the value is copied out at once.
    unsafe { TASKS.get(leader) }.copied()
}

/// `sched_process_fork(parent, child)` (a fork that succeeded; `current` is the parent)
/// and `sched_process_exec(p, ...)` (`current` is `p`, the process's leader by then):
/// records process `task` under the current task's container, so that it keeps that
/// container's rule set wherever its cgroup goes. Threads share their leader's record.
/// A full map or a failed read is counted (a tracepoint cannot refuse).
#[inline(always)]
pub fn record_process(task: *const u8) {
    if !offsets::ready() {
        return;
    }
    let Ok(leader) = offsets::read::<u64>(task, OFF_TASK_GROUP_LEADER) else {
        count(CNT_HOOK_ERRORS);
        return;
    };
    if leader != task as u64 {
        return;
    }
    if let Some(owner) = current_owner() {
        if TASKS.insert(leader, owner, 0).is_err() {
            count(CNT_MAP_FULL);
        }
    }
}

/// Records that process `leader` runs under the container of `cg` (`Err`: the map is
/// full, counted; the caller denies).
#[inline(always)]
pub fn remember(leader: u64, cg: Cgroup) -> Result<(), i64> {
    TASKS.insert(leader, cg.owner, 0).map_err(|e| {
        count(CNT_MAP_FULL);
        i64::from(e)
    })
}

/// [`rule_set`] for an exec: in a pending cgroup, the first exec that is not the runtime
/// re-executing itself (`runtime_reexec` says; an error counts as no) is the container's
/// entrypoint. It arms the cgroup (in `ARMED`) for every task in it, and is itself decided.
/// `Err`: the kernel could not record that (a full `ARMED`), so the exec is refused (and
/// counted): a cgroup must never stay pending past its entrypoint.
#[inline(always)]
pub fn rule_set_at_exec(
    runtime_reexec: impl FnOnce() -> Result<bool, i64>,
) -> Result<Option<Cgroup>, ()> {
    // SAFETY: the helper has no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once.
    let Some(entry) = (unsafe { CONTAINERS.get(id) }) else {
        return Ok(left_container());
    };
    let (rule_set, flags, entry_owner) = (entry.rule_set, entry.flags, entry.owner);
    if !offsets::ready() {
        return Ok(None);
    }
    if pending(id, flags) {
        if runtime_reexec().unwrap_or(false) {
            return Ok(None);
        }
        if ARMED.insert(id, 1, 0).is_err() {
            count(CNT_DENIED);
            return Err(());
        }
    }
    count(CNT_MANAGED);
    Ok(Some(Cgroup {
        id,
        rule_set,
        owner: entry_owner,
    }))
}

/// `CGROUP2_SUPER_MAGIC`.
pub const CGROUP2_MAGIC: u64 = 0x6367_7270;

/// `path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode)` by a managed
/// task: a new cgroup below its own must get an entry at `cgroup_mkdir`, or its tasks would
/// be unmanaged. When `D4C_CONTAINERS` has no free slot (a probe insert of cgroup id 0,
/// which no cgroup has, fails for lack of room), the mkdir is refused and counted.
#[inline(always)]
pub fn cgroup_mkdir_has_room(dir: *const u8) -> bool {
    let (_, dentry) = offsets::load_path(dir);
    let sb: *const u8 = offsets::load(dentry, OFF_DENTRY_SB);
    let magic: u64 = offsets::load(sb, OFF_SB_MAGIC);
    if magic & 0xffff_ffff != CGROUP2_MAGIC {
        return true;
    }
    // EEXIST: another CPU is probing (its slot is taken, so the map is not full).
    match CONTAINERS.insert(0, ContainerEntry::default(), u64::from(BPF_NOEXIST)) {
        Ok(()) => {
            let _ = CONTAINERS.remove(0);
            true
        }
        Err(e) if e == -EEXIST => true,
        Err(_) => {
            count(CNT_MAP_FULL);
            false
        }
    }
}
