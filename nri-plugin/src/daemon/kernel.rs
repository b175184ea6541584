//! What the daemon needs from the kernel side: write and delete rule tables, register and
//! unregister container cgroups. The eBPF enforcer implements it; [`MemoryKernel`] is the
//! userspace stand-in for hosts that cannot load LSM programs and for unit tests.

use d4c_common::{Budget, ContainerEntry, EXEC_RULE_SETS};
use d4c_policy::compile::Tables;
use std::collections::BTreeMap;

/// The kernel maps as the daemon drives them.
pub trait KernelState {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Inserts or replaces every entry of `tables`.
    fn write_tables(&mut self, tables: &Tables) -> Result<(), Self::Error>;
    /// Deletes every entry of `tables` (absent entries are not an error).
    fn delete_tables(&mut self, tables: &Tables) -> Result<(), Self::Error>;
    /// Puts `cgroup_id` under the rule set in `entry` (replacing any previous entry).
    fn register(&mut self, cgroup_id: u64, entry: ContainerEntry) -> Result<(), Self::Error>;
    /// Removes `cgroup_id` (absent is not an error).
    fn unregister(&mut self, cgroup_id: u64) -> Result<(), Self::Error>;

    /// Every registration in the kernel: containers, the nested cgroups the kernel
    /// registered under them (`owner` is the container's cgroup), and an earlier daemon's.
    fn registrations(&self) -> Vec<(u64, ContainerEntry)> {
        Vec::new()
    }

    /// The highest daemon rule-set id (below [`EXEC_RULE_SETS`]) with entries in the kernel.
    fn highest_rule_set(&self) -> u32 {
        0
    }

    /// Deletes every entry of a daemon rule set (below [`EXEC_RULE_SETS`]) not in `keep`.
    fn purge_tables(&mut self, _keep: &std::collections::BTreeSet<u32>) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Every container is registered in this kernel state (a Synchronize ran): a previous
    /// build still enforcing during an upgrade can be detached now.
    fn retire_previous(&mut self) {}

    /// Checks that the kernel enforces with this state (every program attached, the maps
    /// the daemon writes the ones they read) and repairs what it can.
    fn check_enforcement(&mut self) -> EnforcementCheck {
        EnforcementCheck::Intact
    }

    /// Every container's event budget: its registered cgroup and what it held back.
    fn budgets(&self) -> Vec<(u64, Budget)> {
        Vec::new()
    }
}

/// What a check of the kernel programs found, and what it did about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnforcementCheck {
    /// Every program attached with the daemon's maps, every pin in place.
    Intact,
    /// Something was found missing and is back now. `lost`: the programs that were not
    /// deciding (0 when only a pin was gone); `what`: what was found.
    Repaired { lost: Vec<String>, what: String },
    /// Lost and not repaired (tried again at the next check).
    NotRepaired {
        lost: Vec<String>,
        what: String,
        error: String,
    },
    /// Lost for good in this process: the pins are another loader's objects. The daemon
    /// stops so that its supervisor restarts it, and the new one adopts what is pinned.
    Fatal { what: String, error: String },
}

/// Kernel state kept in memory: counts entries per map, can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryKernel {
    pub containers: BTreeMap<u64, ContainerEntry>,
    /// Entries per rule set id.
    pub entries: BTreeMap<u32, usize>,
    /// When set, the next operation of this kind fails.
    pub fail_next: Option<&'static str>,
    /// Calls of `retire_previous`, and the registrations each one saw.
    pub retired_with: Vec<usize>,
    /// What the next enforcement checks report, in order (then `Intact`).
    pub checks: std::collections::VecDeque<EnforcementCheck>,
    /// What `budgets` reports.
    pub budgets: Vec<(u64, Budget)>,
}

/// The failure a [`MemoryKernel`] was told to produce.
#[derive(Debug, thiserror::Error)]
#[error("simulated kernel failure in {0}")]
pub struct MemoryKernelError(&'static str);

impl MemoryKernel {
    fn check(&mut self, op: &'static str) -> Result<(), MemoryKernelError> {
        if self.fail_next == Some(op) {
            self.fail_next = None;
            return Err(MemoryKernelError(op));
        }
        Ok(())
    }

    fn rule_sets(tables: &Tables) -> Vec<u32> {
        let mut ids: Vec<u32> = tables
            .file_rules
            .iter()
            .map(|(k, _)| k.rule_set())
            .chain(tables.exe_rules.iter().map(|(k, _)| k.rule_set()))
            .chain(tables.comm_rules.iter().map(|(k, _)| k.rule_set))
            .chain(tables.proc_decisions.iter().map(|(k, _)| k.rule_set))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

impl KernelState for MemoryKernel {
    type Error = MemoryKernelError;

    fn registrations(&self) -> Vec<(u64, ContainerEntry)> {
        self.containers.iter().map(|(c, e)| (*c, *e)).collect()
    }

    fn highest_rule_set(&self) -> u32 {
        self.entries
            .keys()
            .copied()
            .filter(|&r| r < EXEC_RULE_SETS)
            .max()
            .unwrap_or(0)
    }

    fn purge_tables(&mut self, keep: &std::collections::BTreeSet<u32>) -> Result<(), Self::Error> {
        self.entries
            .retain(|id, _| *id >= EXEC_RULE_SETS || keep.contains(id));
        Ok(())
    }

    fn write_tables(&mut self, tables: &Tables) -> Result<(), Self::Error> {
        self.check("write_tables")?;
        for id in Self::rule_sets(tables) {
            *self.entries.entry(id).or_default() += 1;
        }
        Ok(())
    }

    fn delete_tables(&mut self, tables: &Tables) -> Result<(), Self::Error> {
        self.check("delete_tables")?;
        for id in Self::rule_sets(tables) {
            self.entries.remove(&id);
        }
        Ok(())
    }

    fn register(&mut self, cgroup_id: u64, entry: ContainerEntry) -> Result<(), Self::Error> {
        self.check("register")?;
        self.containers.insert(cgroup_id, entry);
        Ok(())
    }

    fn unregister(&mut self, cgroup_id: u64) -> Result<(), Self::Error> {
        self.check("unregister")?;
        self.containers.remove(&cgroup_id);
        Ok(())
    }

    fn retire_previous(&mut self) {
        self.retired_with.push(self.containers.len());
    }

    fn check_enforcement(&mut self) -> EnforcementCheck {
        self.checks.pop_front().unwrap_or(EnforcementCheck::Intact)
    }

    fn budgets(&self) -> Vec<(u64, Budget)> {
        self.budgets.clone()
    }
}
