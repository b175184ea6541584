//! The containers d4c manages and the rule sets they run under, kept in step with the
//! kernel maps: registration at container start, removal, policy reload with no
//! unprotected moment, and rebuild from a runtime's Synchronize.

use super::kernel::KernelState;
use crate::container::ContainerInfo;
use d4c_common::{ContainerEntry, EXEC_RULE_SETS};
use d4c_policy::compile::{CompileError, RuleSets, Tables};
use d4c_policy::Policy;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A managed container and the rule set it is registered under (`None`: no policy
/// applies to it, so it is not in the kernel map).
#[derive(Debug, Clone)]
pub struct Managed {
    pub info: ContainerInfo,
    pub rule_set: Option<u32>,
    /// A guard, not a container: the runtime's pod cgroup parent, registered under the
    /// rule set of a container with no known attributes, so the kernel gives every cgroup
    /// created below it that rule set until the daemon registers the container (see
    /// [`Registry::guard`]). The runtime never lists it; Synchronize keeps it.
    pub guard: bool,
}

impl Managed {
    /// The kernel entry of a container's (or a guard's) own cgroup: a guard's applies only
    /// from the first exec in a cgroup (`ENTRY_PENDING`), after the runtime's set-up.
    fn entry(guard: bool, rule_set: u32, cgroup: u64) -> ContainerEntry {
        if guard {
            ContainerEntry::pending(rule_set, cgroup)
        } else {
            ContainerEntry::new(rule_set, cgroup)
        }
    }
}

/// What happened at a container start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Registered under this rule set.
    Protected { rule_set: u32 },
    /// Nothing in the policy can act on this container.
    NoPolicy,
    /// Registration failed, but no response of its rule set blocks: it runs without alerts.
    Unprotected { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("container {id}: the policy cannot be compiled for it: {source}")]
    Compile {
        id: String,
        #[source]
        source: CompileError,
    },
    #[error("container {id}: a blocking policy covers it but it cannot be registered in the kernel: {source}")]
    Refused {
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("policy reload failed, the previous policy stays in force: {source}")]
    Reload {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry could not answer a start within the runtime's request timeout (it is
    /// busy): refused, so that the runtime does not drop d4c and start the container
    /// without it.
    #[error("the registry could not register the container within {within:?} (the runtime's request timeout is near); refused so that it does not start unprotected; the kubelet retries")]
    Busy { within: std::time::Duration },
    /// The owner task ([`super::owner`]) is gone: no command reaches the registry.
    #[error("the d4c registry task has stopped")]
    Stopped,
}

/// One policy revision: its rule sets and their entries.
struct Revision {
    number: u64,
    policy: Arc<Policy>,
    sets: RuleSets,
    tables: BTreeMap<u32, Tables>,
    users: BTreeMap<u32, usize>,
}

impl Revision {
    fn new(number: u64, policy: Arc<Policy>, first_id: u32) -> Self {
        Revision {
            number,
            policy,
            sets: RuleSets::starting_at(first_id),
            tables: BTreeMap::new(),
            users: BTreeMap::new(),
        }
    }

    /// The rule set of `attrs`, and its tables if they were compiled just now.
    fn assign(
        &mut self,
        attrs: &d4c_policy::Container,
    ) -> Result<(u32, Option<&Tables>), CompileError> {
        let (id, new) = self.sets.assign(&self.policy, attrs)?;
        let fresh = new.is_some();
        if let Some(t) = new {
            self.tables.insert(id, t);
        }
        Ok((id, if fresh { self.tables.get(&id) } else { None }))
    }
}

mod nested_entries;
mod reload;

pub use reload::{prepare_reload, PreparedReload, ReloadInput};

/// Cgroups inside one container registered at its start, at most: the capacity of the
/// kernel's containers map (`D4C_CONTAINERS`), which no container can exceed, since the
/// kernel refuses a managed task's cgroup `mkdir` when the map has no room.
const NESTED_BUDGET: usize = 65_536;

/// Managed containers and the kernel state that protects them.
pub struct Registry<K: KernelState> {
    kernel: K,
    rev: Revision,
    containers: BTreeMap<String, Managed>,
    /// State an earlier daemon left in the kernel is purged after the first synchronize.
    inherited: bool,
}

impl<K: KernelState> Registry<K> {
    /// A registry over `kernel`. If the kernel holds state of an earlier daemon (pinned
    /// maps), new rule-set ids start above it, and what the first synchronize does not
    /// claim is purged.
    #[must_use]
    pub fn new(kernel: K, policy: Arc<Policy>) -> Self {
        let highest = kernel.highest_rule_set();
        let first = highest.saturating_add(1).clamp(1, EXEC_RULE_SETS - 1);
        Registry {
            kernel,
            rev: Revision::new(1, policy, first),
            containers: BTreeMap::new(),
            inherited: highest > 0,
        }
    }

    /// Registers a starting container. `Err` means the start must be refused.
    ///
    /// A container already known (the runtime's Synchronize after a reconnect) is
    /// registered anew first: its kernel entry is replaced in place, and only then is the
    /// old registration's rule set released, so it is never unenforced in between.
    pub fn start(&mut self, info: ContainerInfo) -> Result<Started, RegistryError> {
        let previous = self.containers.remove(&info.id);
        let result = self.register_new(info, false);
        if let Some(prev) = previous {
            self.drop_replaced(&prev);
        }
        result
    }

    /// Guards the pod cgroup parent `info` describes (its cgroup and directory; no
    /// attributes): it and every cgroup below it that has no kernel entry yet are
    /// registered under the rule set of a container with no known attributes. The kernel
    /// copies a cgroup's entry to each new child cgroup, so a container created below it
    /// later, while no daemon runs included, is under that rule set from its first
    /// instruction, until [`Registry::start`] registers it under its own (in place).
    pub fn guard(&mut self, info: ContainerInfo) -> Result<Started, RegistryError> {
        let previous = self.containers.remove(&info.id);
        let result = self.register_new(info, true);
        if let Some(prev) = previous {
            self.drop_replaced(&prev);
        }
        result
    }

    /// The old registration of a container registered anew: its kernel entry goes unless
    /// the new registration overwrote it; its rule set goes when nothing uses it.
    fn drop_replaced(&mut self, prev: &Managed) {
        let Some(rs) = prev.rule_set else {
            return;
        };
        let overwritten = self
            .containers
            .get(&prev.info.id)
            .is_some_and(|m| m.rule_set.is_some() && m.info.cgroup_id == prev.info.cgroup_id);
        if !overwritten {
            if let Err(e) = self.kernel.unregister(prev.info.cgroup_id) {
                tracing::warn!(container = %prev.info.id, error = %e, "could not remove the container's kernel entry");
            }
        }
        if let Some(n) = self.rev.users.get_mut(&rs) {
            *n -= 1;
            if *n == 0 {
                self.release(rs);
            }
        }
    }

    fn register_new(&mut self, info: ContainerInfo, guard: bool) -> Result<Started, RegistryError> {
        let (id, fresh) =
            self.rev
                .assign(&info.attrs)
                .map_err(|source| RegistryError::Compile {
                    id: info.id.clone(),
                    source,
                })?;
        if let Some(tables) = fresh {
            if !tables.is_empty() {
                if let Err(e) = self.kernel.write_tables(tables) {
                    let can_block = tables.can_block();
                    self.rev.tables.remove(&id);
                    self.rev.sets.forget(id);
                    return self.failed(info, guard, can_block, Box::new(e));
                }
            }
        }
        let tables = &self.rev.tables[&id];
        if tables.is_empty() {
            if !guard {
                // Nothing of the policy applies to it, so neither may a guard's rule set
                // (its cgroups hold a guard's entry when they were created unregistered).
                self.leave_guard(&info);
            }
            self.containers.insert(
                info.id.clone(),
                Managed {
                    info,
                    rule_set: None,
                    guard,
                },
            );
            return Ok(Started::NoPolicy);
        }
        if info.cgroup_id == 0 {
            let can_block = tables.can_block();
            if !self.rev.users.contains_key(&id) {
                self.release(id);
            }
            return self.failed(
                info,
                guard,
                can_block,
                "the container's cgroup could not be found".into(),
            );
        }
        if let Err(e) = self
            .kernel
            .register(info.cgroup_id, Managed::entry(guard, id, info.cgroup_id))
        {
            let can_block = tables.can_block();
            if !self.rev.users.contains_key(&id) {
                self.release(id);
            }
            return self.failed(info, guard, can_block, Box::new(e));
        }
        // A guard fills only the gaps: cgroups below it registered already (containers,
        // their nested cgroups) keep their own entries.
        self.register_descendants(&info, id, guard);
        *self.rev.users.entry(id).or_default() += 1;
        self.containers.insert(
            info.id.clone(),
            Managed {
                info,
                rule_set: Some(id),
                guard,
            },
        );
        Ok(Started::Protected { rule_set: id })
    }

    fn failed(
        &mut self,
        info: ContainerInfo,
        guard: bool,
        can_block: bool,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Result<Started, RegistryError> {
        if can_block {
            return Err(RegistryError::Refused {
                id: info.id,
                source,
            });
        }
        let reason = source.to_string();
        if !guard {
            // Reported as without a rule set: so it is, not under a guard's.
            self.leave_guard(&info);
        }
        self.containers.insert(
            info.id.clone(),
            Managed {
                info,
                rule_set: None,
                guard,
            },
        );
        Ok(Started::Unprotected { reason })
    }

    /// Forgets a container; its rule set's entries go when no container uses them.
    pub fn remove(&mut self, id: &str) -> Option<Managed> {
        let managed = self.containers.remove(id)?;
        if let Some(rs) = managed.rule_set {
            if let Err(e) = self.kernel.unregister(managed.info.cgroup_id) {
                tracing::warn!(container = id, error = %e, "could not remove the container's kernel entry");
            }
            if let Some(n) = self.rev.users.get_mut(&rs) {
                *n -= 1;
                if *n == 0 {
                    self.release(rs);
                }
            }
        }
        Some(managed)
    }

    /// Deletes a rule set nobody uses any more.
    fn release(&mut self, rs: u32) {
        self.rev.users.remove(&rs);
        self.rev.sets.forget(rs);
        if let Some(t) = self.rev.tables.remove(&rs) {
            if let Err(e) = self.kernel.delete_tables(&t) {
                tracing::warn!(rule_set = rs, error = %e, "could not delete unused rule-set entries");
            }
        }
    }

    /// Rebuilds from the runtime's full list: starts every listed container and forgets
    /// those not listed. Returns the per-container outcomes.
    pub fn synchronize(
        &mut self,
        infos: Vec<ContainerInfo>,
    ) -> Vec<(String, Result<Started, RegistryError>)> {
        let listed: std::collections::BTreeSet<String> =
            infos.iter().map(|i| i.id.clone()).collect();
        let gone: Vec<String> = self
            .containers
            .iter()
            .filter(|(k, m)| !m.guard && !listed.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for id in gone {
            self.remove(&id);
        }
        let inherited = std::mem::take(&mut self.inherited);
        let before: BTreeMap<u64, ContainerEntry> = if inherited {
            self.kernel.registrations().into_iter().collect()
        } else {
            BTreeMap::new()
        };
        let out = infos
            .into_iter()
            .map(|i| (i.id.clone(), self.start(i)))
            .collect();
        if inherited {
            self.adopt_leftovers(&before);
        }
        self.kernel.retire_previous();
        out
    }

    pub fn containers(&self) -> impl Iterator<Item = &Managed> {
        self.containers.values()
    }

    /// The managed container whose cgroup is `cgroup_id`.
    #[must_use]
    pub fn by_cgroup(&self, cgroup_id: u64) -> Option<&Managed> {
        self.containers
            .values()
            .find(|m| m.info.cgroup_id == cgroup_id)
    }

    #[must_use]
    pub fn revision(&self) -> u64 {
        self.rev.number
    }

    #[must_use]
    pub fn policy(&self) -> &Arc<Policy> {
        &self.rev.policy
    }

    /// Rule sets with entries in the kernel.
    #[must_use]
    pub fn rule_sets(&self) -> usize {
        self.rev.tables.values().filter(|t| !t.is_empty()).count()
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }
}
