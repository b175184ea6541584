//! The eBPF enforcer as the daemon's [`KernelState`].

use super::kernel::{EnforcementCheck, KernelState};
use crate::bpf::{BpfError, Enforcer};
use d4c_common::ContainerEntry;
use d4c_common::EXEC_RULE_SETS;
use d4c_policy::compile::Tables;

impl KernelState for Enforcer {
    type Error = BpfError;

    fn write_tables(&mut self, t: &Tables) -> Result<(), BpfError> {
        // Decisions first and the trie entries that lead to them last, so a lookup never
        // finds a class whose decision is not written yet.
        self.write_proc_decisions(&t.proc_decisions)?;
        self.write_comm_rules(&t.comm_rules)?;
        self.write_exe_rules(&t.exe_rules)?;
        self.write_file_rules(&t.file_rules)
    }

    fn delete_tables(&mut self, t: &Tables) -> Result<(), BpfError> {
        self.delete_file_rules(&t.file_rules.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        self.delete_exe_rules(&t.exe_rules.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        self.delete_comm_rules(&t.comm_rules.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        self.delete_proc_decisions(&t.proc_decisions.iter().map(|(k, _)| *k).collect::<Vec<_>>())
    }

    fn register(&mut self, cgroup_id: u64, entry: ContainerEntry) -> Result<(), BpfError> {
        Enforcer::register(self, cgroup_id, entry)
    }

    fn unregister(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        Enforcer::unregister(self, cgroup_id)
    }

    fn registrations(&self) -> Vec<(u64, ContainerEntry)> {
        self.registered().unwrap_or_default()
    }

    fn highest_rule_set(&self) -> u32 {
        let in_maps = self.rule_sets_in_maps().unwrap_or_default();
        let registered = self.registrations().into_iter().map(|(_, e)| e.rule_set);
        in_maps
            .into_iter()
            .chain(registered)
            .filter(|&r| r < EXEC_RULE_SETS)
            .max()
            .unwrap_or(0)
    }

    fn purge_tables(&mut self, keep: &std::collections::BTreeSet<u32>) -> Result<(), BpfError> {
        self.delete_rule_sets(|r| r < EXEC_RULE_SETS && !keep.contains(&r))
    }

    fn retire_previous(&mut self) {
        if self.handovers().is_empty() {
            return;
        }
        match Enforcer::retire_previous(self) {
            Ok(retired) => {
                for r in retired {
                    tracing::info!(dir = %r.dir.display(), "the previous build's programs are detached: this build enforces alone");
                    if r.events.unwrap_or(0) > 0 || r.denied.unwrap_or(0) > 0 {
                        tracing::warn!(
                            events = r.events,
                            denied = r.denied,
                            "the previous build decided during the handover; its alerts were not forwarded"
                        );
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not detach the previous build's programs (they keep enforcing alongside; `d4c unload` removes everything)");
            }
        }
    }

    fn budgets(&self) -> Vec<(u64, d4c_common::Budget)> {
        Enforcer::budgets(self)
            .map_err(|e| tracing::warn!(error = %e, "cannot read the event budgets"))
            .unwrap_or_default()
    }

    fn check_enforcement(&mut self) -> EnforcementCheck {
        let health = self.check();
        if health.intact() {
            return EnforcementCheck::Intact;
        }
        let lost: Vec<String> = health.lost_programs().into_iter().collect();
        let what = health.to_string();
        match self.repair() {
            Ok(_) => {
                let after = self.check();
                if after.enforcing() {
                    EnforcementCheck::Repaired { lost, what }
                } else {
                    EnforcementCheck::NotRepaired {
                        lost,
                        what,
                        error: after.to_string(),
                    }
                }
            }
            Err(e @ BpfError::Replaced { .. }) => EnforcementCheck::Fatal {
                what,
                error: e.to_string(),
            },
            Err(e) => EnforcementCheck::NotRepaired {
                lost,
                what,
                error: e.to_string(),
            },
        }
    }
}
