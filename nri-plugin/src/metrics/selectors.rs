//! Per-selector counters and the audit record: how often each selector matched a decision
//! with each action and outcome (`d4c_selector_matches_total`), and, per audited policy
//! file, its would-be blocks since start with the last one, which `d4c status` shows as
//! the signal that the policy can be promoted to blocking.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::PoisonError;

use serde::{Deserialize, Serialize};

use super::Metrics;

/// What happened to the operation a selector matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Refused.
    Blocked,
    /// Allowed, and would have been refused (an audited block).
    Audited,
    /// Allowed.
    Allowed,
}

impl Outcome {
    /// The label value.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Blocked => "blocked",
            Outcome::Audited => "audited",
            Outcome::Allowed => "allowed",
        }
    }
}

/// One series of `d4c_selector_matches_total`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SelectorKey {
    /// The policy file's name.
    pub policy: String,
    pub selector: String,
    pub action: &'static str,
    pub outcome: Outcome,
    /// Only when the configuration asks for it (`metricsNamespaceLabel`).
    pub namespace: Option<String>,
}

/// An audited policy file's would-be blocks, for `d4c status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedPolicy {
    /// The policy file's name.
    pub policy: String,
    /// Operations it would have blocked since the daemon started.
    pub would_block: u64,
    /// The last one.
    pub last: Option<WouldBlock>,
}

/// One operation an audited policy would have blocked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WouldBlock {
    pub at: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub operation: String,
    /// The file (file operations) or the executable (process operations).
    pub path: String,
    pub process: String,
}

impl Metrics {
    /// Counts one match of a selector.
    pub fn selector_match(&self, key: SelectorKey) {
        *self
            .selectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }

    /// Records a would-be block of the audited policy file `policy`.
    pub fn would_block(&self, policy: &str, what: WouldBlock) {
        let mut audits = self.audits.lock().unwrap_or_else(PoisonError::into_inner);
        let a = audits
            .entry(policy.to_owned())
            .or_insert_with(|| AuditedPolicy {
                policy: policy.to_owned(),
                ..AuditedPolicy::default()
            });
        a.would_block += 1;
        a.last = Some(what);
    }

    /// Every audited policy file that would have blocked something, by name.
    #[must_use]
    pub fn audited_policies(&self) -> Vec<AuditedPolicy> {
        self.audits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// `d4c_selector_matches_total{policy,selector,action,outcome[,namespace]}`.
    pub(super) fn selectors_family(&self, s: &mut String) {
        const NAME: &str = "d4c_selector_matches_total";
        let _ = writeln!(s, "# HELP {NAME} Decisions by the selector that matched (policy file and selector name), the action of the response it fired and what happened to the operation (blocked, audited: allowed but would have been blocked, allowed).\n# TYPE {NAME} counter");
        let selectors = self
            .selectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (k, n) in selectors.iter() {
            let ns = k
                .namespace
                .as_deref()
                .map_or(String::new(), |ns| format!(",namespace=\"{}\"", escape(ns)));
            let _ = writeln!(
                s,
                "{NAME}{{policy=\"{}\",selector=\"{}\",action=\"{}\",outcome=\"{}\"{ns}}} {n}",
                escape(&k.policy),
                escape(&k.selector),
                k.action,
                k.outcome.name()
            );
        }
    }
}

/// A label value in the exposition format (`\`, `"` and newlines escaped).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Grows without bound only with the policy (files, selectors, actions) and, when asked
/// for, the namespaces: [`BTreeMap`] keeps the output ordered.
pub(super) type Selectors = BTreeMap<SelectorKey, u64>;
