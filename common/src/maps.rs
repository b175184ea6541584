//! Map names, keys and values. The kernel side declares maps with these names; userspace
//! opens them by the same names, so a rename cannot drift.

use crate::consts::{COMM_LEN, FILE_OP_SLOTS, PATH_KEY_MAX, PROC_OP_SLOTS, REST_CLASSES};

/// cgroup id (u64) -> [`ContainerEntry`]. A task whose cgroup is absent is unmanaged.
pub const MAP_CONTAINERS: &str = "D4C_CONTAINERS";
/// LPM trie: [`PathKey`] -> [`FileRule`]: file decisions per rule set and path prefix.
pub const MAP_FILE_RULES: &str = "D4C_FILE_RULES";
/// LPM trie: [`PathKey`] -> [`ExeRule`]: executable-path classes for process selectors.
pub const MAP_EXE_RULES: &str = "D4C_EXE_RULES";
/// Hash: [`CommKey`] -> [`NameClass`]: process-name classes for process selectors.
pub const MAP_COMM_RULES: &str = "D4C_COMM_RULES";
/// Hash: [`ProcKey`] -> [`ProcDecision`]: process decisions per class combination.
pub const MAP_PROC_DECISIONS: &str = "D4C_PROC_DECISIONS";
/// Hash: rule set (u32) -> u32 mask of the operations that have any action somewhere in
/// the rule set: bit `OP_*` for file operations, bit `RULESET_PROC_SHIFT + OP_*` for
/// process operations. The loader keeps it a superset (it ORs bits in before it writes the
/// entries that need them); a hook skips all path work for operations outside the mask.
/// A missing rule set means "unknown": the hook does the full work.
pub const MAP_RULESET_OPS: &str = "D4C_RULESET_OPS";
/// Where the process-operation bits start in a [`MAP_RULESET_OPS`] mask.
pub const RULESET_PROC_SHIFT: u32 = 8;
/// The [`MAP_RULESET_OPS`] bit of a rule set with a `block` action somewhere: a hook that
/// fails for one of its tasks denies (a missing summary counts as "can block").
pub const RULESET_BLOCKS: u32 = 1 << 31;
/// Ring buffer of [`crate::Event`]s: the daemon's (ring 0; see [`ContainerEntry::ring`]).
pub const MAP_EVENTS: &str = "D4C_EVENTS";
/// How many rings `d4c exec` runs have besides the daemon's: a run claims one for its
/// lifetime, and the events of its cgroups go there, so no reader takes another's events.
pub const EXEC_RINGS: usize = 4;
// A ring number fits the entry's ring bits.
const _: () = assert!(EXEC_RINGS < 255);
/// The ring buffers of `d4c exec` runs: ring `n` (1..=[`EXEC_RINGS`]) is
/// `MAP_EXEC_EVENTS[n - 1]`.
pub const MAP_EXEC_EVENTS: [&str; EXEC_RINGS] = [
    "D4C_EXEC_EVENTS_1",
    "D4C_EXEC_EVENTS_2",
    "D4C_EXEC_EVENTS_3",
    "D4C_EXEC_EVENTS_4",
];
/// LRU hash: a container's registered cgroup (an entry's `owner`) -> [`Budget`]: its alert
/// budget, spent by every event its tasks cause; blocking never depends on it.
pub const MAP_BUDGETS: &str = "D4C_BUDGETS";
/// Array of u64 settings the daemon writes (`SET_*`), read by the programs.
pub const MAP_SETTINGS: &str = "D4C_SETTINGS";
/// [`MAP_SETTINGS`]: nanoseconds between events a container may cause at the sustained
/// rate (0: no budget).
pub const SET_EVENT_INTERVAL_NS: u32 = 0;
/// [`MAP_SETTINGS`]: nanoseconds of burst a container may spend at once (burst x interval).
pub const SET_EVENT_BURST_NS: u32 = 1;
/// [`MAP_SETTINGS`]: one held-back event in this many is written as a sample
/// (`FLAG_THROTTLED_SAMPLE`) for its paths; 0: none.
pub const SET_SAMPLE_EVERY: u32 = 2;
/// Slots of [`MAP_SETTINGS`].
pub const SETTINGS: u32 = 4;

/// A container's alert budget (the generic cell rate algorithm: `tat` is when the next
/// event is due at the sustained rate) and what it held back.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Budget {
    /// Boot-time nanoseconds when the next event is due; events come through while
    /// `now >= tat - burst`.
    pub tat: u64,
    /// Events held back since the entry was made.
    pub throttled: u64,
    /// When the first and the last were held back (boot-time nanoseconds; 0: none yet).
    pub first: u64,
    /// See `first`.
    pub last: u64,
}
const _: () = assert!(core::mem::size_of::<Budget>() == 32);

/// Per-CPU array of u64 counters, indexed by the `CNT_*` constants.
pub const MAP_COUNTERS: &str = "D4C_COUNTERS";
/// Hash, kernel-only: a process (its thread-group leader's `task_struct` address) -> the
/// `owner` of the container entry it ran under. A process that leaves its container's
/// cgroup (a write to another cgroup's `cgroup.procs`, `clone3(CLONE_INTO_CGROUP)`) stays
/// under that container's rule set. Written after a managed task's successful fork (for
/// the child) and exec, and at its write open of a cgroup file; removed when the task is
/// freed.
pub const MAP_TASKS: &str = "D4C_TASKS";
/// Cgroups whose pending entry ([`ENTRY_PENDING`]) the kernel armed: written only by the
/// kernel, so a daemon rewriting an entry can never make an armed cgroup pending again.
pub const MAP_ARMED: &str = "D4C_ARMED";

/// What the kernel knows of a managed container.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ContainerEntry {
    /// The rule set the container's tasks are checked against.
    pub rule_set: u32,
    /// [`ENTRY_PENDING`], and the event ring in the bits of [`ENTRY_RING_MASK`].
    pub flags: u32,
    /// The cgroup id the daemon registered: the container's own. A nested cgroup inherits
    /// its parent's entry whole, so events from it still name the container's cgroup.
    pub owner: u64,
}
const _: () = assert!(core::mem::size_of::<ContainerEntry>() == 16);

/// An entry that applies only from the first exec in its cgroup that is not the task
/// re-executing itself (from a memfd copy, or its own file): a guard's (a pod cgroup
/// parent's) and the cgroups the kernel creates below it, where the container runtime
/// sets a container up (creating mount points, re-executing itself) before it executes the
/// container's entrypoint, which arms the entry for every task of that cgroup (recorded in
/// [`MAP_ARMED`], which only the kernel writes). A child cgroup copies the entry: pending
/// while its parent's is, armed otherwise.
pub const ENTRY_PENDING: u32 = 1;

/// The bits of [`ContainerEntry::flags`] that say which ring buffer the container's events
/// go to: 0 the daemon's ([`MAP_EVENTS`]), `n` in 1..=[`EXEC_RINGS`] a `d4c exec` run's
/// (`MAP_EXEC_EVENTS[n - 1]`); any other value goes to the daemon's.
pub const ENTRY_RING_MASK: u32 = 0xff << ENTRY_RING_SHIFT;
/// Where the ring sits in [`ContainerEntry::flags`].
pub const ENTRY_RING_SHIFT: u32 = 8;

impl ContainerEntry {
    /// The entry of a container whose cgroup is `owner`, checked against `rule_set`.
    #[must_use]
    pub const fn new(rule_set: u32, owner: u64) -> Self {
        ContainerEntry {
            rule_set,
            flags: 0,
            owner,
        }
    }

    /// Like [`ContainerEntry::new`], applying from the first exec ([`ENTRY_PENDING`]).
    #[must_use]
    pub const fn pending(rule_set: u32, owner: u64) -> Self {
        ContainerEntry {
            rule_set,
            flags: ENTRY_PENDING,
            owner,
        }
    }

    /// The same entry under another rule set (flags and owner kept).
    #[must_use]
    pub const fn with_rule_set(self, rule_set: u32) -> Self {
        ContainerEntry { rule_set, ..self }
    }

    /// The same entry with its events sent to ring `ring` (see [`ENTRY_RING_MASK`]).
    #[must_use]
    pub const fn with_ring(self, ring: u8) -> Self {
        ContainerEntry {
            flags: (self.flags & !ENTRY_RING_MASK) | ((ring as u32) << ENTRY_RING_SHIFT),
            ..self
        }
    }

    /// The ring buffer this container's events go to (0: the daemon's).
    #[must_use]
    pub const fn ring(&self) -> u8 {
        ((self.flags & ENTRY_RING_MASK) >> ENTRY_RING_SHIFT) as u8
    }
}

/// The data of an LPM trie key after its `prefix_len` (the layout of [`PathKey`] after
/// its first field): the rule set (big-endian) then the path bytes.
pub type TrieData = [u8; 4 + PATH_KEY_MAX];

/// Key of the two LPM tries: a rule-set id (big-endian, so it is the leading 32 bits of
/// the prefix) followed by path bytes. `prefix_len` counts bits: 32 + 8 * path bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathKey {
    /// Bits of the key that count: `32 + 8 * path bytes`.
    pub prefix_len: u32,
    /// The rule set, big-endian (the leading 32 bits of the prefix).
    pub rule_set_be: [u8; 4],
    /// The path bytes, zero after the prefix.
    pub path: [u8; PATH_KEY_MAX],
}
const _: () = assert!(core::mem::size_of::<PathKey>() == 8 + PATH_KEY_MAX);
const _: () = assert!(core::mem::size_of::<PathKey>() == 4 + core::mem::size_of::<TrieData>());

impl PathKey {
    /// The key for `path` (at most [`PATH_KEY_MAX`] bytes are used) under `rule_set`.
    #[must_use]
    pub fn new(rule_set: u32, path: &[u8]) -> Self {
        let n = if path.len() < PATH_KEY_MAX {
            path.len()
        } else {
            PATH_KEY_MAX
        };
        let mut key = PathKey {
            // n <= 256, so the product fits in u32.
            #[allow(clippy::cast_possible_truncation)]
            prefix_len: 32 + 8 * n as u32,
            rule_set_be: rule_set.to_be_bytes(),
            path: [0; PATH_KEY_MAX],
        };
        key.path[..n].copy_from_slice(&path[..n]);
        key
    }

    /// The rule set this key belongs to.
    #[must_use]
    pub fn rule_set(&self) -> u32 {
        u32::from_be_bytes(self.rule_set_be)
    }

    /// The path bytes covered by `prefix_len`.
    #[must_use]
    pub fn path_bytes(&self) -> &[u8] {
        let n = (self.prefix_len.saturating_sub(32) / 8) as usize;
        &self.path[..n.min(PATH_KEY_MAX)]
    }
}

/// The finished file decision for every path whose longest stored prefix is this entry's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FileRule {
    /// Length in bytes of the stored prefix K (the kernel needs it to classify the rest).
    pub prefix_len: u16,
    /// Reserved, zero.
    pub pad: [u8; 2],
    /// `actions[rest class][file operation]`: `ACTION_*` bits.
    pub actions: [[u8; FILE_OP_SLOTS]; REST_CLASSES],
}
const _: () = assert!(core::mem::size_of::<FileRule>() == 4 + FILE_OP_SLOTS * REST_CLASSES);

/// Executable-path classes: which process selectors' `processExecutable` a path satisfies.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExeRule {
    /// Length in bytes of the stored prefix K (the kernel needs it to classify the rest).
    pub prefix_len: u16,
    /// Reserved, zero.
    pub pad: [u8; 2],
    /// `class[rest class]`: an executable-class id (0 = no executable condition holds).
    pub class: [u32; REST_CLASSES],
}
const _: () = assert!(core::mem::size_of::<ExeRule>() == 4 + 4 * REST_CLASSES);

/// Key of [`MAP_COMM_RULES`]: a rule set and a process name, NUL-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommKey {
    /// The rule set the name class belongs to.
    pub rule_set: u32,
    /// The process name (`comm`), NUL-padded.
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<CommKey>() == 4 + COMM_LEN);

/// A process-name class id (0 = no name condition holds; absent keys mean 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct NameClass {
    /// The class id.
    pub class: u32,
}
const _: () = assert!(core::mem::size_of::<NameClass>() == 4);

/// Key of [`MAP_PROC_DECISIONS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ProcKey {
    /// The task's rule set.
    pub rule_set: u32,
    /// The executable's class in the rule set ([`ExeRule::class`]).
    pub exe_class: u32,
    /// The process name's class in the rule set ([`NameClass`]).
    pub name_class: u32,
}
const _: () = assert!(core::mem::size_of::<ProcKey>() == 12);

/// Process decision; an absent key means no action.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ProcDecision {
    /// `actions[interactive (0/1)][process operation]`: `ACTION_*` bits.
    pub actions: [[u8; PROC_OP_SLOTS]; 2],
}
const _: () = assert!(core::mem::size_of::<ProcDecision>() == 2 * PROC_OP_SLOTS);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is repr(C), Copy, made of integers and arrays with no implicit padding
    // (checked by the size assertions above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::ContainerEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Budget {}
    unsafe impl aya::Pod for super::PathKey {}
    unsafe impl aya::Pod for super::FileRule {}
    unsafe impl aya::Pod for super::ExeRule {}
    unsafe impl aya::Pod for super::CommKey {}
    unsafe impl aya::Pod for super::NameClass {}
    unsafe impl aya::Pod for super::ProcKey {}
    unsafe impl aya::Pod for super::ProcDecision {}
    unsafe impl aya::Pod for crate::KernelOffsets {}
}

#[cfg(test)]
mod tests {
    use super::{ContainerEntry, ENTRY_PENDING};

    #[test]
    fn the_ring_shares_the_flags_with_pending_and_leaves_it_alone() {
        let e = ContainerEntry::pending(7, 42).with_ring(3);
        assert_eq!(e.ring(), 3);
        assert_eq!(e.flags & ENTRY_PENDING, ENTRY_PENDING);
        assert_eq!(e.with_ring(0).ring(), 0);
        assert_eq!(e.with_ring(0).flags, ENTRY_PENDING);
        assert_eq!(
            ContainerEntry::new(1, 2).ring(),
            0,
            "the daemon's ring by default"
        );
    }
}
