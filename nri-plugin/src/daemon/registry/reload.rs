//! Policy reload in two steps, so that container starts are answered while a large policy
//! compiles: [`prepare_reload`] compiles the new policy's rule sets for every container
//! (pure; the owner task runs it on a blocking thread), and [`Registry::apply_reload`]
//! writes them and switches the entries (in the owner task; short).

use super::{KernelState, Managed, Registry, RegistryError, Revision};
use d4c_policy::compile::CompileError;
use d4c_policy::Policy;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Rule-set ids left free between the running revision's next id and a prepared
/// revision's first: room for the rule sets that container starts create meanwhile.
const ID_GAP: u32 = 1 << 12;

/// What preparing a reload needs of the registry, owned (taken in the owner task).
pub struct ReloadInput {
    number: u64,
    first_id: u32,
    attrs: Vec<d4c_policy::Container>,
}

/// A revision compiled for the containers of a [`ReloadInput`], ready to apply.
pub struct PreparedReload {
    pub(super) next: Revision,
    first_id: u32,
}

impl PreparedReload {
    /// Whether it can be applied to a registry at revision `number` whose next rule-set id
    /// is `next_id` (no revision came in between, and no id it uses was taken).
    pub(super) fn fits(&self, number: u64, next_id: u32) -> bool {
        self.next.number == number + 1 && next_id <= self.first_id
    }

    /// The policy it was prepared for.
    #[must_use]
    pub fn policy(&self) -> Arc<Policy> {
        self.next.policy.clone()
    }
}

/// Compiles `policy`'s rule sets for the containers of `input` (no kernel access).
pub fn prepare_reload(
    input: &ReloadInput,
    policy: Arc<Policy>,
) -> Result<PreparedReload, CompileError> {
    let mut next = Revision::new(input.number, policy, input.first_id);
    for attrs in &input.attrs {
        next.assign(attrs)?;
    }
    Ok(PreparedReload {
        next,
        first_id: input.first_id,
    })
}

/// Forgets the rule sets of `next` no container was assigned at apply (prepared for
/// containers removed meanwhile): never written, so a later container with the same
/// attributes must compile and write its rule set, not register under an id with no
/// entries.
fn forget_unassigned(next: &mut Revision, assigned: &BTreeSet<u32>) {
    let unused: Vec<u32> = next
        .tables
        .keys()
        .copied()
        .filter(|id| !assigned.contains(id))
        .collect();
    for id in unused {
        next.tables.remove(&id);
        next.sets.forget(id);
    }
}

impl<K: KernelState> Registry<K> {
    /// `prepared` if it still fits this registry; else prepared again here, once (another
    /// revision came first, or starts used the ids left free).
    fn refit(&self, prepared: PreparedReload) -> Result<PreparedReload, RegistryError> {
        if prepared.fits(self.rev.number, self.rev.sets.next_id()) {
            return Ok(prepared);
        }
        let again = prepare_reload(&self.reload_input(), prepared.policy()).map_err(|e| {
            RegistryError::Reload {
                source: Box::new(e),
            }
        })?;
        if again.fits(self.rev.number, self.rev.sets.next_id()) {
            Ok(again)
        } else {
            Err(RegistryError::Reload {
                source: "no rule-set ids are left for a new revision; restart the daemon".into(),
            })
        }
    }

    /// What [`prepare_reload`] needs: the next revision's number, its first rule-set id,
    /// and every container's attributes.
    #[must_use]
    pub fn reload_input(&self) -> ReloadInput {
        let first_id = self
            .rev
            .sets
            .next_id()
            .saturating_add(ID_GAP)
            .min(d4c_common::EXEC_RULE_SETS - 1);
        ReloadInput {
            number: self.rev.number + 1,
            first_id,
            attrs: self
                .containers
                .values()
                .map(|m| m.info.attrs.clone())
                .collect(),
        }
    }

    /// Prepares and applies a reload in one step (what tests and the owner's fallback do).
    pub fn reload(&mut self, policy: Arc<Policy>) -> Result<u64, RegistryError> {
        let prepared =
            prepare_reload(&self.reload_input(), policy).map_err(|e| RegistryError::Reload {
                source: Box::new(e),
            })?;
        self.apply_reload(prepared)
    }

    /// Switches every container to the prepared revision: its rule sets are written under
    /// new ids (those of containers started since it was prepared are compiled now), each
    /// container's entry is switched, then the old rule sets are deleted. On any failure
    /// the previous policy stays in force, entries and all.
    pub fn apply_reload(&mut self, prepared: PreparedReload) -> Result<u64, RegistryError> {
        let prepared = self.refit(prepared)?;
        let mut next = prepared.next;
        let mut plan: Vec<(String, Option<u32>)> = Vec::new();
        let mut written: Vec<u32> = Vec::new();
        let result = (|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let (mut used, mut assigned) = (BTreeSet::new(), BTreeSet::new());
            for (cid, m) in &self.containers {
                let (id, _) = next.assign(&m.info.attrs)?;
                let live = !next.tables[&id].is_empty();
                plan.push((cid.clone(), live.then_some(id)));
                assigned.insert(id);
                if live {
                    used.insert(id);
                }
            }
            forget_unassigned(&mut next, &assigned);
            for id in used {
                self.kernel.write_tables(&next.tables[&id])?;
                written.push(id);
            }
            Ok(())
        })();
        if let Err(source) = result {
            for id in written {
                let _ = self.kernel.delete_tables(&next.tables[&id]);
            }
            return Err(RegistryError::Reload { source });
        }
        // Switch entries; undo the switched ones if one fails.
        let mut switched: Vec<&str> = Vec::new();
        for (cid, new_rs) in &plan {
            let m = &self.containers[cid];
            let r = match new_rs {
                Some(rs) => self.kernel.register(
                    m.info.cgroup_id,
                    Managed::entry(m.guard, *rs, m.info.cgroup_id),
                ),
                None => self.kernel.unregister(m.info.cgroup_id),
            };
            if let Err(e) = r {
                for back in &switched {
                    let m = &self.containers[*back];
                    let _ = match m.rule_set {
                        Some(rs) => self.kernel.register(
                            m.info.cgroup_id,
                            Managed::entry(m.guard, rs, m.info.cgroup_id),
                        ),
                        None => self.kernel.unregister(m.info.cgroup_id),
                    };
                }
                for id in &written {
                    let _ = self.kernel.delete_tables(&next.tables[id]);
                }
                return Err(RegistryError::Reload {
                    source: Box::new(e),
                });
            }
            switched.push(cid);
        }
        for (cid, new_rs) in plan {
            if let Some(rs) = new_rs {
                *next.users.entry(rs).or_default() += 1;
            }
            if let Some(m) = self.containers.get_mut(&cid) {
                m.rule_set = new_rs;
            }
        }
        let old = std::mem::replace(&mut self.rev, next);
        self.follow_nested();
        self.refill_guards();
        // A rule set the kernel still references (a nested cgroup that could not be
        // switched) stays: deleting it would leave that cgroup unenforced.
        let referenced: std::collections::BTreeSet<u32> = self
            .kernel
            .registrations()
            .into_iter()
            .map(|(_, e)| e.rule_set)
            .collect();
        for (id, t) in old.tables.iter().filter(|(_, t)| !t.is_empty()) {
            if referenced.contains(id) {
                tracing::warn!(
                    rule_set = id,
                    "a rule set of the previous policy is still in use by a cgroup; kept"
                );
                continue;
            }
            if let Err(e) = self.kernel.delete_tables(t) {
                tracing::warn!(error = %e, "could not delete a rule set of the previous policy");
            }
        }
        Ok(self.rev.number)
    }
}
