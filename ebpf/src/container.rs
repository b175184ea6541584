//! The one question every hook asks before any other helper call or map lookup: is this
//! task in a managed container, and under which rule set? One hash lookup; a miss means
//! "not ours" and the hook returns at once.

use aya_ebpf::helpers::bpf_get_current_cgroup_id;
use d4c_common::CNT_MANAGED;

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
    let rule_set = entry.rule_set;
    if !offsets::ready() {
        return None;
    }
    count(CNT_MANAGED);
    Some(Cgroup { id, rule_set })
}
