//! Rule-set ids: containers with equal rule sets share one id and one set of entries.

use super::{compile_rule_set, CompileError, RuleSetSpec, Tables};
use crate::container::Container;
use crate::model::Policy;
use std::collections::HashMap;

/// Containers remembered with their rule set, at most (then the memo starts over).
const MEMO_MAX: usize = 4096;

/// Assigns rule-set ids for one policy revision (one policy: every call passes the same)
/// and compiles each rule set once.
#[derive(Debug, Default)]
pub struct RuleSets {
    ids: HashMap<RuleSetSpec, u32>,
    next: u32,
    /// Containers already assigned (without their pod name when no selector has a
    /// `kubernetesPodName`: replicas of one pod template share an entry), so that a start
    /// does not evaluate every selector again (linear in the policy's size).
    memo: HashMap<Container, u32>,
    /// Whether the policy has a `kubernetesPodName` condition (known from the first call).
    pod_names: Option<bool>,
}

impl RuleSets {
    /// Ids start at `first` (a reload starts above the previous revision's ids, so old and
    /// new entries can live side by side while containers switch over).
    #[must_use]
    pub fn starting_at(first: u32) -> Self {
        RuleSets {
            next: first.max(1),
            ..RuleSets::default()
        }
    }

    /// The rule-set id for `container`, and the entries to write when this rule set is new.
    pub fn assign(
        &mut self,
        policy: &Policy,
        container: &Container,
    ) -> Result<(u32, Option<Tables>), CompileError> {
        let pod_names = *self
            .pod_names
            .get_or_insert_with(|| policy.selectors.iter().any(|s| s.pod_name.is_some()));
        let key = if pod_names {
            container.clone()
        } else {
            Container {
                pod_name: None,
                ..container.clone()
            }
        };
        if let Some(&id) = self.memo.get(&key) {
            return Ok((id, None));
        }
        let spec = RuleSetSpec::for_container(policy, container);
        let (id, tables) = if let Some(&id) = self.ids.get(&spec) {
            (id, None)
        } else {
            let id = self.next.max(1);
            let tables = compile_rule_set(policy, &spec, id)?;
            self.next = id + 1;
            self.ids.insert(spec, id);
            (id, Some(tables))
        };
        if self.memo.len() >= MEMO_MAX {
            self.memo.clear();
        }
        self.memo.insert(key, id);
        Ok((id, tables))
    }

    /// Forgets rule set `id` (its containers are gone); a later container with the same
    /// rule set gets a new id.
    pub fn forget(&mut self, id: u32) {
        self.ids.retain(|_, v| *v != id);
        self.memo.retain(|_, v| *v != id);
    }

    /// Number of distinct rule sets assigned.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no rule set is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The next id this registry would hand out.
    #[must_use]
    pub fn next_id(&self) -> u32 {
        self.next.max(1)
    }
}
