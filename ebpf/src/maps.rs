//! Every map the kernel programs share with userspace (the per-CPU scratch space, which
//! userspace never opens, is in `scratch.rs`). Names are `d4c_common::MAP_*` (the userspace loader
//! opens them by the same names; `#[map]` takes a literal, checked against the constant at
//! compile time); sizes are defaults the loader may override.

use core::intrinsics::AtomicOrdering::SeqCst;

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use d4c_common::{
    object::same_name, Budget, CommKey, ContainerEntry, ExeRule, FileRule, NameClass, ProcDecision,
    ProcKey, TrieData, COUNTERS, MAP_ARMED, MAP_BUDGETS, MAP_COMM_RULES, MAP_CONTAINERS,
    MAP_COUNTERS, MAP_EVENTS, MAP_EXEC_EVENTS, MAP_EXE_RULES, MAP_FILE_RULES, MAP_PROC_DECISIONS,
    MAP_RULESET_OPS, MAP_SETTINGS, MAP_TASKS, RULESET_BLOCKS, SETTINGS,
};

/// cgroup id -> rule set. Written by the daemon at container start, copied to child cgroups
/// by the `cgroup_mkdir` tracepoint, removed at `cgroup_rmdir` and container removal.
#[map(name = "D4C_CONTAINERS")]
pub static CONTAINERS: HashMap<u64, ContainerEntry> = HashMap::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_CONTAINERS, "D4C_CONTAINERS"));

/// cgroup id -> 1: the cgroups whose pending entry was armed by their first exec. Only
/// the kernel writes it (`container::rule_set_at_exec`, `cgroup_rmdir`).
#[map(name = "D4C_ARMED")]
pub static ARMED: HashMap<u64, u8> = HashMap::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_ARMED, "D4C_ARMED"));

/// Process (leader's `task_struct` address) -> the container entry's `owner` it ran under
/// (`d4c_common::MAP_TASKS`). Allocated as used: most tasks of a node never get one.
#[map(name = "D4C_TASKS")]
pub static TASKS: HashMap<u64, u64> = HashMap::pinned(262_144, BPF_F_NO_PREALLOC);
const _: () = assert!(same_name(MAP_TASKS, "D4C_TASKS"));
const BPF_F_NO_PREALLOC: u32 = 1;

/// (rule set, path prefix) -> file decisions per rest class and operation.
#[map(name = "D4C_FILE_RULES")]
pub static FILE_RULES: LpmTrie<TrieData, FileRule> = LpmTrie::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_FILE_RULES, "D4C_FILE_RULES"));

/// (rule set, executable path prefix) -> executable class per rest class.
#[map(name = "D4C_EXE_RULES")]
pub static EXE_RULES: LpmTrie<TrieData, ExeRule> = LpmTrie::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_EXE_RULES, "D4C_EXE_RULES"));

/// (rule set, process name) -> name class; a miss is class 0.
#[map(name = "D4C_COMM_RULES")]
pub static COMM_RULES: HashMap<CommKey, NameClass> = HashMap::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_COMM_RULES, "D4C_COMM_RULES"));

/// (rule set, executable class, name class) -> process decision; a miss is no action.
#[map(name = "D4C_PROC_DECISIONS")]
pub static PROC_DECISIONS: HashMap<ProcKey, ProcDecision> = HashMap::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_PROC_DECISIONS, "D4C_PROC_DECISIONS"));

/// Rule set -> operations with any action (`d4c_common::MAP_RULESET_OPS`).
#[map(name = "D4C_RULESET_OPS")]
pub static RULESET_OPS: HashMap<u32, u32> = HashMap::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_RULESET_OPS, "D4C_RULESET_OPS"));

/// Whether rule set `rule_set` may have an action for any operation in `mask` (a missing
/// summary means it may).
#[inline(always)]
pub fn may_act(rule_set: u32, mask: u32) -> bool {
    // SAFETY: the value is copied out at once.
    match unsafe { RULESET_OPS.get(rule_set) } {
        Some(m) => *m & mask != 0,
        None => true,
    }
}

/// Whether rule set `rule_set` may block anything (a missing summary means it may).
#[inline(always)]
pub fn can_block(rule_set: u32) -> bool {
    may_act(rule_set, RULESET_BLOCKS)
}

/// Events of decisions that log, alert or block (`d4c_common::Event`).
#[map(name = "D4C_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::pinned(4 << 20, 0);
const _: () = assert!(same_name(MAP_EVENTS, "D4C_EVENTS"));

/// The rings of `d4c exec` runs (`d4c_common::MAP_EXEC_EVENTS`): a run claims one, and
/// the entries it registers name it, so its events reach it and no other reader.
#[map(name = "D4C_EXEC_EVENTS_1")]
pub static EXEC_EVENTS_1: RingBuf = RingBuf::pinned(EXEC_RING_BYTES, 0);
#[map(name = "D4C_EXEC_EVENTS_2")]
pub static EXEC_EVENTS_2: RingBuf = RingBuf::pinned(EXEC_RING_BYTES, 0);
#[map(name = "D4C_EXEC_EVENTS_3")]
pub static EXEC_EVENTS_3: RingBuf = RingBuf::pinned(EXEC_RING_BYTES, 0);
#[map(name = "D4C_EXEC_EVENTS_4")]
pub static EXEC_EVENTS_4: RingBuf = RingBuf::pinned(EXEC_RING_BYTES, 0);
const _: () = assert!(
    MAP_EXEC_EVENTS.len() == 4
        && same_name(MAP_EXEC_EVENTS[0], "D4C_EXEC_EVENTS_1")
        && same_name(MAP_EXEC_EVENTS[1], "D4C_EXEC_EVENTS_2")
        && same_name(MAP_EXEC_EVENTS[2], "D4C_EXEC_EVENTS_3")
        && same_name(MAP_EXEC_EVENTS[3], "D4C_EXEC_EVENTS_4")
);
/// Bytes of each `d4c exec` ring: ~600 events; a run drains its ring continuously.
const EXEC_RING_BYTES: u32 = 512 << 10;

/// Alert budgets per container (`d4c_common::MAP_BUDGETS`); least recently used first out.
#[map(name = "D4C_BUDGETS")]
pub static BUDGETS: LruHashMap<u64, Budget> = LruHashMap::pinned(65_536, 0);
const _: () = assert!(same_name(MAP_BUDGETS, "D4C_BUDGETS"));

/// The daemon's settings (`d4c_common::SET_*`).
#[map(name = "D4C_SETTINGS")]
pub static SETTINGS_MAP: Array<u64> = Array::pinned(SETTINGS, 0);
const _: () = assert!(same_name(MAP_SETTINGS, "D4C_SETTINGS"));

/// Setting `i` (0 when unset).
#[inline(always)]
pub fn setting(i: u32) -> u64 {
    SETTINGS_MAP.get(i).copied().unwrap_or(0)
}

/// Per-CPU counters, indexed by `d4c_common::CNT_*`.
#[map(name = "D4C_COUNTERS")]
pub static COUNTERS_MAP: PerCpuArray<u64> = PerCpuArray::pinned(COUNTERS, 0);
const _: () = assert!(same_name(MAP_COUNTERS, "D4C_COUNTERS"));

/// Adds one to the per-CPU counter `idx`.
#[inline(always)]
pub fn count(idx: u32) {
    if let Some(c) = COUNTERS_MAP.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot, valid while the program runs. Atomic: a run preempted
        // between a read and its write would lose the other runs' counts on this CPU.
        unsafe { core::intrinsics::atomic_xadd::<u64, u64, { SeqCst }>(c, 1) };
    }
}
