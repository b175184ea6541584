//! Rule-set ids: containers with equal rule sets share one id and one set of entries.

use super::{compile_rule_set, CompileError, RuleSetSpec, Tables};
use crate::container::Container;
use crate::model::Policy;
use std::collections::HashMap;

/// Assigns rule-set ids for one policy revision and compiles each rule set once.
#[derive(Debug, Default)]
pub struct RuleSets {
    ids: HashMap<RuleSetSpec, u32>,
    next: u32,
}

impl RuleSets {
    /// Ids start at `first` (a reload starts above the previous revision's ids, so old and
    /// new entries can live side by side while containers switch over).
    #[must_use]
    pub fn starting_at(first: u32) -> Self {
        RuleSets {
            ids: HashMap::new(),
            next: first.max(1),
        }
    }

    /// The rule-set id for `container`, and the entries to write when this rule set is new.
    pub fn assign(
        &mut self,
        policy: &Policy,
        container: &Container,
    ) -> Result<(u32, Option<Tables>), CompileError> {
        let spec = RuleSetSpec::for_container(policy, container);
        if let Some(&id) = self.ids.get(&spec) {
            return Ok((id, None));
        }
        let id = self.next.max(1);
        let tables = compile_rule_set(policy, &spec, id)?;
        self.next = id + 1;
        self.ids.insert(spec, id);
        Ok((id, Some(tables)))
    }

    /// Forgets rule set `id` (its containers are gone); a later container with the same
    /// rule set gets a new id.
    pub fn forget(&mut self, id: u32) {
        self.ids.retain(|_, v| *v != id);
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
