//! The one question every hook asks before any other helper call or map lookup: is this
//! task in a managed container, and under which rule set? One hash lookup; a miss means
//! "not ours" and the hook returns at once.

use aya_ebpf::helpers::bpf_get_current_cgroup_id;
use d4c_common::{
    offsets::{OFF_DENTRY_SB, OFF_SB_MAGIC},
    ContainerEntry, CNT_DENIED, CNT_MANAGED, CNT_MAP_FULL, ENTRY_PENDING,
};

const BPF_NOEXIST: u32 = 1;
const EEXIST: i32 = 17;

use crate::{
    maps::{count, ARMED, CONTAINERS},
    offsets,
};

/// A task in a managed container: its cgroup and the rule set it is checked against.
#[derive(Clone, Copy)]
pub struct Cgroup {
    /// The task's cgroup id (a nested cgroup's own, not its container's).
    pub id: u64,
    /// The rule set of the cgroup's `D4C_CONTAINERS` entry.
    pub rule_set: u32,
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
    let entry = unsafe { CONTAINERS.get(id) }?;
    let (rule_set, flags) = (entry.rule_set, entry.flags);
    // A cgroup the runtime is still setting up: the container's own code has not run.
    if !offsets::ready() || pending(id, flags) {
        return None;
    }
    count(CNT_MANAGED);
    Some(Cgroup { id, rule_set })
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
        return Ok(None);
    };
    let (rule_set, flags) = (entry.rule_set, entry.flags);
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
    Ok(Some(Cgroup { id, rule_set }))
}

/// `CGROUP2_SUPER_MAGIC`.
const CGROUP2_MAGIC: u64 = 0x6367_7270;

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
