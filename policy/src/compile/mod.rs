//! Compiling a policy into kernel map entries.
//!
//! A container's *rule set* is what the policy means for it: the selectors whose
//! container-level conditions hold (its *live* selectors) and, when a live selector ignores
//! volumes, its volume mounts. Containers with equal rule sets share one id ([`RuleSets`]).
//! A rule set compiles into plain map entries ([`Tables`]) that answer every event with a
//! constant number of lookups (see `file` and `process` for the two halves).

mod file;
mod prefixes;
pub(crate) mod process;
mod registry;
mod responses;
mod subtree;

pub use file::unreachable_actions;
pub use prefixes::rest_class;
pub use process::comm_bytes;
pub use registry::RuleSets;

use crate::container::{Container, Mount};
use crate::eval::{container_matches, effective_mounts};
use crate::model::{BlockKind, Policy};
use d4c_common::{CommKey, ExeRule, FileRule, NameClass, PathKey, ProcDecision, ProcKey};

/// Most executable classes times name classes one rule set may need (process decisions
/// are stored for every combination).
pub const MAX_PROCESS_COMBINATIONS: usize = 1 << 16;

/// What distinguishes one rule set from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleSetSpec {
    /// Indices of the live selectors, ascending.
    pub live: Vec<usize>,
    /// Volume mounts, when a live selector ignores volumes (else empty).
    pub mounts: Vec<Mount>,
    /// Responses only audited for this container (`Policy::audit`), ascending.
    pub audited: Vec<usize>,
}

impl RuleSetSpec {
    /// The rule set of `container` under `policy`.
    #[must_use]
    pub fn for_container(policy: &Policy, container: &Container) -> Self {
        let live: Vec<usize> = (0..policy.selectors.len())
            .filter(|&i| container_matches(&policy.selectors[i], container))
            .collect();
        let (mut any_mounts, mut any_files) = (false, false);
        for &i in &live {
            any_mounts |= policy.selectors[i].ignore_volume_mounts;
            any_files |= policy.selectors[i].ignore_volume_files;
        }
        let mounts = effective_mounts(container)
            .into_iter()
            .filter(|m| any_mounts || (any_files && m.file))
            .collect();
        let audited = policy.audit.audited(policy, container);
        RuleSetSpec {
            live,
            mounts,
            audited,
        }
    }

    /// The live selectors of one block.
    pub(crate) fn live_in(&self, policy: &Policy, block: BlockKind) -> Vec<usize> {
        self.live
            .iter()
            .copied()
            .filter(|&i| policy.selectors[i].kind() == block)
            .collect()
    }

    /// True when no live selector is referenced by any response's `match` (nothing can fire).
    #[must_use]
    pub fn is_inert(&self, policy: &Policy) -> bool {
        !policy
            .responses
            .iter()
            .any(|r| r.matches.iter().any(|m| self.live.binary_search(m).is_ok()))
    }
}

/// The map entries of one or more rule sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    /// Entries of `D4C_FILE_RULES`.
    pub file_rules: Vec<(PathKey, FileRule)>,
    /// Entries of `D4C_EXE_RULES`.
    pub exe_rules: Vec<(PathKey, ExeRule)>,
    /// Entries of `D4C_COMM_RULES`.
    pub comm_rules: Vec<(CommKey, NameClass)>,
    /// Entries of `D4C_PROC_DECISIONS`.
    pub proc_decisions: Vec<(ProcKey, ProcDecision)>,
}

impl Tables {
    /// Bytes of keys and values the entries occupy in the kernel maps.
    #[must_use]
    pub fn bytes(&self) -> usize {
        use core::mem::size_of;
        self.file_rules.len() * (size_of::<PathKey>() + size_of::<FileRule>())
            + self.exe_rules.len() * (size_of::<PathKey>() + size_of::<ExeRule>())
            + self.comm_rules.len() * (size_of::<CommKey>() + size_of::<NameClass>())
            + self.proc_decisions.len() * (size_of::<ProcKey>() + size_of::<ProcDecision>())
    }

    /// Total number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.file_rules.len()
            + self.exe_rules.len()
            + self.comm_rules.len()
            + self.proc_decisions.len()
    }

    /// Whether there is no entry at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s entries.
    pub fn extend(&mut self, other: Tables) {
        self.file_rules.extend(other.file_rules);
        self.exe_rules.extend(other.exe_rules);
        self.comm_rules.extend(other.comm_rules);
        self.proc_decisions.extend(other.proc_decisions);
    }
}

/// Why a rule set cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// The rule set's process decisions would exceed [`MAX_PROCESS_COMBINATIONS`].
    #[error("rule set {rule_set}: {exe_classes} executable classes x {name_classes} process-name classes exceed {MAX_PROCESS_COMBINATIONS} process decisions; split the process selectors into fewer distinct processExecutable/processName values")]
    TooManyProcessClasses {
        /// The rule set.
        rule_set: u32,
        /// Its executable classes.
        exe_classes: usize,
        /// Its process-name classes.
        name_classes: usize,
    },
}

/// Compiles the rule set `spec` under id `rule_set` into map entries.
pub fn compile_rule_set(
    policy: &Policy,
    spec: &RuleSetSpec,
    rule_set: u32,
) -> Result<Tables, CompileError> {
    let mut tables = Tables {
        file_rules: file::compile(policy, spec, rule_set),
        ..Tables::default()
    };
    let (exe, comm, decisions) = process::compile(policy, spec, rule_set)?;
    tables.exe_rules = exe;
    tables.comm_rules = comm;
    tables.proc_decisions = decisions;
    Ok(tables)
}

impl Tables {
    /// Whether any entry can deny an operation (a `block` action somewhere).
    #[must_use]
    pub fn can_block(&self) -> bool {
        let b = d4c_common::ACTION_BLOCK;
        self.file_rules
            .iter()
            .any(|(_, r)| r.actions.iter().flatten().any(|a| a & b != 0))
            || self
                .proc_decisions
                .iter()
                .any(|(_, d)| d.actions.iter().flatten().any(|a| a & b != 0))
    }
}
