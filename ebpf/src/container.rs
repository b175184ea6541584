//! The one question every hook asks before any other helper call or map lookup: is this
//! task in a managed container, and under which rule set? One hash lookup; a miss means
//! "not ours" and the hook returns at once.

use aya_ebpf::helpers::bpf_get_current_cgroup_id;
use d4c_common::{CNT_MANAGED, ENTRY_PENDING};

use crate::{
    maps::{count, CONTAINERS},
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

/// The task's cgroup and rule set, or `None` for an unmanaged task.
#[inline(always)]
pub fn rule_set() -> Option<Cgroup> {
    // SAFETY: the helper has no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once; map values stay valid during the program.
    let entry = unsafe { CONTAINERS.get(id) }?;
    let (rule_set, flags) = (entry.rule_set, entry.flags);
    // A cgroup the runtime is still setting up: the container's own code has not run.
    if flags & ENTRY_PENDING != 0 || !offsets::ready() {
        return None;
    }
    count(CNT_MANAGED);
    Some(Cgroup { id, rule_set })
}

/// [`rule_set`] for an exec: in a pending cgroup, the first exec that is not the runtime
/// re-executing itself (`runtime_reexec` says; an error counts as no) is the container's
/// entrypoint. It arms the entry for every task of the cgroup and is itself decided.
#[inline(always)]
pub fn rule_set_at_exec(runtime_reexec: impl FnOnce() -> Result<bool, i64>) -> Option<Cgroup> {
    // SAFETY: the helper has no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    let entry = CONTAINERS.get_ptr_mut(id)?;
    // SAFETY: a live map value; only its flags word is written, a plain store that racing
    // readers see before or after (both are safe: pending only ever turns into armed).
    let (rule_set, flags) = unsafe { ((*entry).rule_set, (*entry).flags) };
    if !offsets::ready() {
        return None;
    }
    if flags & ENTRY_PENDING != 0 {
        if runtime_reexec().unwrap_or(false) {
            return None;
        }
        // SAFETY: as above.
        unsafe { (*entry).flags = flags & !ENTRY_PENDING };
    }
    count(CNT_MANAGED);
    Some(Cgroup { id, rule_set })
}
