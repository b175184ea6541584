//! The one question every hook asks before any other helper call or map lookup: is this
//! task in a managed container, and under which rule set? One hash lookup; a miss means
//! "not ours" and the hook returns at once.

use aya_ebpf::helpers::bpf_get_current_cgroup_id;
use d4c_common::CNT_MANAGED;

use crate::{
    maps::{count, CONTAINERS},
    offsets,
};

/// The task's cgroup id and rule set, or `None` for an unmanaged task.
#[inline(always)]
pub fn rule_set() -> Option<(u64, u32)> {
    // SAFETY: the helper has no preconditions.
    let id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once; map values stay valid during the program.
    let entry = unsafe { CONTAINERS.get(id) }?;
    let rule_set = entry.rule_set;
    if !offsets::ready() {
        return None;
    }
    count(CNT_MANAGED);
    Some((id, rule_set))
}
