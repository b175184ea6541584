//! Cgroups inside containers: the kernel registers a cgroup created inside a container
//! with the container's entry (its `owner` names the container's cgroup); these keep such
//! entries in step with their container when the daemon registers it anew, reloads, or
//! takes over an earlier daemon's state.

use std::collections::BTreeMap;

use d4c_common::{ContainerEntry, EXEC_RULE_SETS};

use super::{ContainerInfo, KernelState, Registry, NESTED_BUDGET};

impl<K: KernelState> Registry<K> {
    /// Registers the cgroups that already exist below a container's own (it ran before
    /// this registration: a daemon restart, an upgrade's new maps). Cgroups created from
    /// now on inherit the container's entry in the kernel.
    /// With `gaps_only`, cgroups that have a kernel entry already keep it.
    pub(super) fn register_descendants(
        &mut self,
        info: &ContainerInfo,
        rule_set: u32,
        gaps_only: bool,
    ) {
        let Some(dir) = &info.cgroup_dir else {
            return;
        };
        let (ids, complete) = crate::cgroup::descendants(dir, NESTED_BUDGET);
        let taken: std::collections::BTreeSet<u64> = if gaps_only {
            self.kernel
                .registrations()
                .into_iter()
                .map(|(c, _)| c)
                .collect()
        } else {
            std::collections::BTreeSet::new()
        };
        for (cgroup, cgroup_dir) in ids.into_iter().filter(|(c, _)| !taken.contains(c)) {
            // Below a guard, a cgroup with no process yet (a pod's, or one the runtime is
            // setting up) waits for its first exec; one with processes runs already.
            let entry = if gaps_only && !crate::cgroup::has_processes(&cgroup_dir) {
                ContainerEntry::pending(rule_set, info.cgroup_id)
            } else {
                ContainerEntry::new(rule_set, info.cgroup_id)
            };
            if let Err(e) = self.kernel.register(cgroup, entry) {
                tracing::error!(container = %info.id, cgroup, error = %e, "could not register a cgroup inside the container: its tasks are not under the container's rule set");
            }
        }
        if !complete {
            tracing::error!(container = %info.id, dir = %dir.display(), "more than {NESTED_BUDGET} cgroups inside the container (more than the kernel's map holds); those beyond are not registered");
        }
    }

    /// A container that ends up without a rule set of its own leaves the guard's: its
    /// cgroup and the cgroups below it that hold a guard's entry are unregistered.
    pub(super) fn leave_guard(&mut self, info: &ContainerInfo) {
        let guards: std::collections::BTreeSet<u64> = self
            .containers
            .values()
            .filter(|m| m.guard)
            .map(|m| m.info.cgroup_id)
            .collect();
        if guards.is_empty() {
            return;
        }
        let entries: BTreeMap<u64, ContainerEntry> =
            self.kernel.registrations().into_iter().collect();
        let mut ids = vec![info.cgroup_id];
        if let Some(dir) = &info.cgroup_dir {
            ids.extend(
                crate::cgroup::descendants(dir, NESTED_BUDGET)
                    .0
                    .into_iter()
                    .map(|(id, _)| id),
            );
        }
        for id in ids {
            if entries.get(&id).is_some_and(|e| guards.contains(&e.owner)) {
                if let Err(e) = self.kernel.unregister(id) {
                    tracing::warn!(container = %info.id, cgroup = id, error = %e, "could not remove a guard's entry");
                }
            }
        }
    }

    /// After a reload: each guard with a rule set registers again the cgroups below it
    /// that have no entry (a reload to a policy that gave it none had removed them).
    pub(super) fn refill_guards(&mut self) {
        let guards: Vec<(ContainerInfo, u32)> = self
            .containers
            .values()
            .filter(|m| m.guard)
            .filter_map(|m| m.rule_set.map(|rs| (m.info.clone(), rs)))
            .collect();
        for (info, rs) in guards {
            self.register_descendants(&info, rs, true);
        }
    }

    /// After the first synchronize over state an earlier daemon left: cgroups it had
    /// registered as containers that no listed container claims are gone (removed); nested
    /// cgroups follow their container ([`Self::follow_nested`]); rule sets nothing uses any
    /// more are deleted.
    pub(super) fn adopt_leftovers(&mut self, before: &BTreeMap<u64, ContainerEntry>) {
        let claimed: std::collections::BTreeSet<u64> =
            self.containers.values().map(|m| m.info.cgroup_id).collect();
        for (&cgroup, e) in before {
            if claimed.contains(&cgroup) || e.rule_set >= EXEC_RULE_SETS {
                continue;
            }
            if e.owner == cgroup || e.owner == 0 {
                if let Err(err) = self.kernel.unregister(cgroup) {
                    tracing::warn!(cgroup, error = %err, "could not remove a registration an earlier daemon left");
                }
            }
        }
        self.follow_nested();
        let keep: std::collections::BTreeSet<u32> = self.rev.tables.keys().copied().collect();
        if let Err(e) = self.kernel.purge_tables(&keep) {
            tracing::warn!(error = %e, "could not delete rule sets an earlier daemon left");
        }
    }

    /// Puts every nested cgroup (a kernel entry whose `owner` is another cgroup: the
    /// kernel copied its container's entry when it was created) under its container's
    /// current rule set, or removes it when that container is not protected or not known.
    /// Two passes: a cgroup created during the first copied whichever entry its parent had
    /// at that moment.
    pub(super) fn follow_nested(&mut self) {
        let by_cgroup: BTreeMap<u64, Option<u32>> = self
            .containers
            .values()
            .map(|m| (m.info.cgroup_id, m.rule_set))
            .collect();
        for _ in 0..2 {
            for (cgroup, e) in self.kernel.registrations() {
                if e.owner == cgroup || e.rule_set >= EXEC_RULE_SETS {
                    continue;
                }
                let r = match by_cgroup.get(&e.owner).copied().flatten() {
                    Some(rs) if rs == e.rule_set => continue,
                    Some(rs) => self.kernel.register(cgroup, e.with_rule_set(rs)),
                    None => self.kernel.unregister(cgroup),
                };
                if let Err(err) = r {
                    tracing::warn!(cgroup, owner = e.owner, error = %err, "could not switch a nested cgroup to its container's rule set");
                }
            }
        }
    }
}
