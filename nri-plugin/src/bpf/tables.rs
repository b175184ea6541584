//! Writing the compiled policy and the container registrations into the kernel maps.

use aya::maps::lpm_trie::Key;
use d4c_common::{
    Budget, CommKey, ContainerEntry, ExeRule, FileRule, NameClass, PathKey, ProcDecision, ProcKey,
    ACTION_BLOCK, COUNTERS, MAP_BUDGETS, MAP_COMM_RULES, MAP_CONTAINERS, MAP_COUNTERS, MAP_EVENTS,
    MAP_EXE_RULES, MAP_FILE_RULES, MAP_PROC_DECISIONS, MAP_RULESET_OPS, MAP_SETTINGS, PATH_KEY_MAX,
    RULESET_BLOCKS, RULESET_PROC_SHIFT, SET_EVENT_BURST_NS, SET_EVENT_INTERVAL_NS,
    SET_SAMPLE_EVERY,
};

use super::{error::BpfError, loader::Enforcer};
use d4c_common::TrieData;

/// The aya LPM key of a [`PathKey`] (the same bytes).
fn trie_key(k: &PathKey) -> Key<TrieData> {
    let mut data = [0u8; 4 + PATH_KEY_MAX];
    data[..4].copy_from_slice(&k.rule_set_be);
    data[4..].copy_from_slice(&k.path);
    Key::new(k.prefix_len, data)
}

/// Bits of the file operations with any action in `v`, and `RULESET_BLOCKS` when one
/// blocks.
fn file_op_bits(v: &FileRule) -> u32 {
    let mut bits = 0;
    for row in &v.actions {
        for (op, &a) in row.iter().enumerate() {
            if a != 0 {
                bits |= 1 << op;
            }
            if a & ACTION_BLOCK != 0 {
                bits |= RULESET_BLOCKS;
            }
        }
    }
    bits
}

/// Bits (shifted by `RULESET_PROC_SHIFT`) of the process operations with any action, and
/// `RULESET_BLOCKS` when one blocks.
fn proc_op_bits(v: ProcDecision) -> u32 {
    let mut bits = 0;
    for row in &v.actions {
        for (op, &a) in row.iter().enumerate() {
            if a != 0 {
                bits |= 1 << (RULESET_PROC_SHIFT as usize + op);
            }
            if a & ACTION_BLOCK != 0 {
                bits |= RULESET_BLOCKS;
            }
        }
    }
    bits
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> BpfError {
    move |source| BpfError::Map {
        map,
        source: Box::new(source),
    }
}

/// A missing key on delete is not an error.
fn ignore_missing(r: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match r {
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        other => other,
    }
}

impl Enforcer {
    /// Puts `cgroup_id` under `entry.rule_set`: from now on its tasks are checked.
    pub fn register(&mut self, cgroup_id: u64, entry: ContainerEntry) -> Result<(), BpfError> {
        self.containers
            .insert(cgroup_id, entry, 0)
            .map_err(map_err(MAP_CONTAINERS))
    }

    /// Stops checking `cgroup_id` (absent is fine).
    pub fn unregister(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        ignore_missing(self.containers.remove(&cgroup_id)).map_err(map_err(MAP_CONTAINERS))
    }

    /// Every registered cgroup id and its entry (nested cgroups included).
    pub fn registered(&self) -> Result<Vec<(u64, ContainerEntry)>, BpfError> {
        self.containers
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err(MAP_CONTAINERS))
    }

    /// ORs `bits` into the operation summary of each rule set (before the entries that
    /// need them are written, so the summary is never narrower than the tables).
    fn widen_summaries(&mut self, bits: impl Iterator<Item = (u32, u32)>) -> Result<(), BpfError> {
        let mut want: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
        for (rule_set, b) in bits {
            *want.entry(rule_set).or_default() |= b;
        }
        for (rule_set, b) in want {
            let old = match self.ruleset_ops.get(&rule_set, 0) {
                Ok(v) => v,
                Err(aya::maps::MapError::KeyNotFound) => 0,
                Err(e) => return Err(map_err(MAP_RULESET_OPS)(e)),
            };
            if old | b != old || old == 0 {
                self.ruleset_ops
                    .insert(rule_set, old | b, 0)
                    .map_err(map_err(MAP_RULESET_OPS))?;
            }
        }
        Ok(())
    }

    pub fn write_file_rules(&mut self, entries: &[(PathKey, FileRule)]) -> Result<(), BpfError> {
        self.widen_summaries(entries.iter().map(|(k, v)| (k.rule_set(), file_op_bits(v))))?;
        for (k, v) in entries {
            self.file_rules
                .insert(&trie_key(k), v, 0)
                .map_err(map_err(MAP_FILE_RULES))?;
        }
        Ok(())
    }

    /// Deletes file rules; deleting a rule set's root entry (the empty path) also drops its
    /// operation summary (a rule set without one gets the full checks, which stays correct).
    pub fn delete_file_rules(&mut self, keys: &[PathKey]) -> Result<(), BpfError> {
        for k in keys {
            ignore_missing(self.file_rules.remove(&trie_key(k)))
                .map_err(map_err(MAP_FILE_RULES))?;
        }
        for k in keys.iter().filter(|k| k.prefix_len == 32) {
            ignore_missing(self.ruleset_ops.remove(&k.rule_set()))
                .map_err(map_err(MAP_RULESET_OPS))?;
        }
        Ok(())
    }

    pub fn write_exe_rules(&mut self, entries: &[(PathKey, ExeRule)]) -> Result<(), BpfError> {
        for (k, v) in entries {
            self.exe_rules
                .insert(&trie_key(k), v, 0)
                .map_err(map_err(MAP_EXE_RULES))?;
        }
        Ok(())
    }

    pub fn delete_exe_rules(&mut self, keys: &[PathKey]) -> Result<(), BpfError> {
        for k in keys {
            ignore_missing(self.exe_rules.remove(&trie_key(k))).map_err(map_err(MAP_EXE_RULES))?;
        }
        Ok(())
    }

    pub fn write_comm_rules(&mut self, entries: &[(CommKey, NameClass)]) -> Result<(), BpfError> {
        for (k, v) in entries {
            self.comm_rules
                .insert(k, v, 0)
                .map_err(map_err(MAP_COMM_RULES))?;
        }
        Ok(())
    }

    pub fn delete_comm_rules(&mut self, keys: &[CommKey]) -> Result<(), BpfError> {
        for k in keys {
            ignore_missing(self.comm_rules.remove(k)).map_err(map_err(MAP_COMM_RULES))?;
        }
        Ok(())
    }

    pub fn write_proc_decisions(
        &mut self,
        entries: &[(ProcKey, ProcDecision)],
    ) -> Result<(), BpfError> {
        self.widen_summaries(entries.iter().map(|(k, v)| (k.rule_set, proc_op_bits(*v))))?;
        for (k, v) in entries {
            self.proc_decisions
                .insert(k, v, 0)
                .map_err(map_err(MAP_PROC_DECISIONS))?;
        }
        Ok(())
    }

    pub fn delete_proc_decisions(&mut self, keys: &[ProcKey]) -> Result<(), BpfError> {
        for k in keys {
            ignore_missing(self.proc_decisions.remove(k)).map_err(map_err(MAP_PROC_DECISIONS))?;
        }
        Ok(())
    }

    /// The `CNT_*` counters, summed over CPUs.
    /// Sets the per-container event budget: `per_second` events at the sustained rate,
    /// `burst` at once, and one held-back event in `sample_every` written as a sample
    /// (`per_second` 0: no budget).
    pub fn set_event_budget(
        &mut self,
        per_second: u32,
        burst: u32,
        sample_every: u32,
    ) -> Result<(), BpfError> {
        let interval = if per_second == 0 {
            0
        } else {
            1_000_000_000 / u64::from(per_second)
        };
        for (slot, v) in [
            (SET_EVENT_INTERVAL_NS, interval),
            (SET_EVENT_BURST_NS, interval * u64::from(burst)),
            (SET_SAMPLE_EVERY, u64::from(sample_every)),
        ] {
            self.settings
                .set(slot, v, 0)
                .map_err(map_err(MAP_SETTINGS))?;
        }
        Ok(())
    }

    /// Every container's budget: its registered cgroup and what it held back.
    pub fn budgets(&self) -> Result<Vec<(u64, Budget)>, BpfError> {
        self.budgets
            .iter()
            .map(|r| r.map_err(map_err(MAP_BUDGETS)))
            .collect()
    }

    /// Bytes of the daemon's ring buffer as pinned.
    #[must_use]
    pub fn ring_bytes(&self) -> Option<u32> {
        self.events
            .as_ref()
            .and_then(|_| self.pinned_maps.iter().find(|(n, _, _)| n == MAP_EVENTS))
            .and_then(|(_, fd, _)| {
                use std::os::fd::AsFd;
                super::sys::map_max_entries(fd.as_fd()).ok()
            })
    }

    pub fn counters(&self) -> Result<[u64; COUNTERS as usize], BpfError> {
        let mut out = [0u64; COUNTERS as usize];
        for (i, slot) in (0..COUNTERS).zip(out.iter_mut()) {
            let per_cpu = self.counters.get(&i, 0).map_err(map_err(MAP_COUNTERS))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }
}
