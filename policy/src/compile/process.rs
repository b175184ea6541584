//! Process rules: executable classes (LPM), process-name classes (hash), and one decision
//! entry per class combination.
//!
//! A process selector's event-level conditions are its `processExecutable` patterns, its
//! `processName` values, `sessionLeaderInteractive` and the operation. The executable path
//! maps to the set of selectors whose executable condition holds (an *executable class*,
//! found like file rules), the name to the set whose name condition holds (a *name class*).
//! The decision for every (executable class, name class) pair is computed here, with the
//! actions per interactive flag and operation, so the kernel does three lookups.

use super::prefixes::{Patterns, PrefixSet};
use super::responses::ResponseIndex;
use super::{CompileError, RuleSetSpec, MAX_PROCESS_COMBINATIONS};
use crate::model::{BlockKind, Policy, ProcessOp};
use d4c_common::{
    CommKey, ExeRule, NameClass, PathKey, ProcDecision, ProcKey, COMM_LEN, REST_CLASSES, REST_EMPTY,
};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

type Out = (
    Vec<(PathKey, ExeRule)>,
    Vec<(CommKey, NameClass)>,
    Vec<(ProcKey, ProcDecision)>,
);

/// A process name as the kernel keeps it: at most 15 bytes, NUL-padded.
#[must_use]
pub fn comm_bytes(name: &str) -> [u8; COMM_LEN] {
    let mut comm = [0; COMM_LEN];
    let n = name.len().min(COMM_LEN - 1);
    comm[..n].copy_from_slice(&name.as_bytes()[..n]);
    comm
}

/// Interns selector sets into dense ids; id 0 is the empty set.
struct Classes {
    ids: FxHashMap<Vec<usize>, u32>,
    sets: Vec<Vec<usize>>,
}

impl Classes {
    fn new() -> Self {
        let mut ids = FxHashMap::default();
        ids.insert(Vec::new(), 0);
        Classes {
            ids,
            sets: vec![Vec::new()],
        }
    }

    fn id(&mut self, set: Vec<usize>) -> u32 {
        if let Some(&id) = self.ids.get(&set) {
            return id;
        }
        let id = u32::try_from(self.sets.len()).unwrap_or(u32::MAX);
        self.sets.push(set.clone());
        self.ids.insert(set, id);
        id
    }
}

pub fn compile(policy: &Policy, spec: &RuleSetSpec, rule_set: u32) -> Result<Out, CompileError> {
    let live = spec.live_in(policy, BlockKind::Process);
    let idx = ResponseIndex::new(policy, BlockKind::Process, spec);
    if idx.is_empty() {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    let sels = &policy.selectors;

    // Executable classes.
    let mut patterns: Patterns = Patterns::default();
    for &s in &live {
        for p in sels[s].executable.iter().flatten() {
            patterns
                .entry(p.prefix.as_bytes().to_vec())
                .or_default()
                .push((s, p.kind));
        }
    }
    let mut exe_classes = Classes::new();
    let mut exe_rules = Vec::new();
    if !patterns.is_empty() {
        let set = PrefixSet::new(patterns.keys().cloned());
        for (i, key) in set.keys.iter().enumerate() {
            let mut rule = ExeRule {
                prefix_len: u16::try_from(key.len()).unwrap_or(u16::MAX),
                ..ExeRule::default()
            };
            for class in 0..REST_CLASSES {
                rule.class[class] = exe_classes.id(set.matched(&patterns, i, class));
            }
            exe_rules.push((PathKey::new(rule_set, key), rule));
        }
    }

    // Name classes.
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &s in &live {
        for n in sels[s].process_name.iter().flatten() {
            by_name.entry(n.as_str()).or_default().push(s);
        }
    }
    let mut name_classes = Classes::new();
    let mut comm_rules = Vec::new();
    for (name, mut set) in by_name {
        set.sort_unstable();
        set.dedup();
        let class = name_classes.id(set);
        comm_rules.push((
            CommKey {
                rule_set,
                comm: comm_bytes(name),
            },
            NameClass { class },
        ));
    }

    // One more executable class for a path the kernel cannot build (see below).
    let unreachable = !exe_rules.is_empty();
    let (ne, nn) = (
        exe_classes.sets.len() + usize::from(unreachable),
        name_classes.sets.len(),
    );
    if ne.saturating_mul(nn) > MAX_PROCESS_COMBINATIONS {
        return Err(CompileError::TooManyProcessClasses {
            rule_set,
            exe_classes: ne,
            name_classes: nn,
        });
    }

    // Decisions for every combination.
    let mut decisions = Vec::new();
    for (e, exe_set) in exe_classes.sets.iter().enumerate() {
        for (n, name_set) in name_classes.sets.iter().enumerate() {
            let mut d = ProcDecision::default();
            for interactive in [false, true] {
                for op in ProcessOp::ALL {
                    let selected = |s: usize| {
                        let sel = &sels[s];
                        live.binary_search(&s).is_ok()
                            && sel.has_op(op.bit())
                            && (sel.executable.is_none() || exe_set.binary_search(&s).is_ok())
                            && (sel.process_name.is_none() || name_set.binary_search(&s).is_ok())
                            && sel.interactive.is_none_or(|i| i == interactive)
                    };
                    d.actions[usize::from(interactive)][op as usize] = idx.actions_of(selected);
                }
            }
            if d != ProcDecision::default() {
                let key = ProcKey {
                    rule_set,
                    exe_class: u32::try_from(e).unwrap_or(u32::MAX),
                    name_class: u32::try_from(n).unwrap_or(u32::MAX),
                };
                decisions.push((key, d));
            }
        }
    }
    if decisions.is_empty() {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    if unreachable {
        unreachable_class(&mut exe_rules, &mut decisions, &exe_classes, nn, rule_set);
    }
    Ok((exe_rules, comm_rules, decisions))
}

/// The executable class of a path the kernel cannot build from the task's root (another
/// mount namespace, a detached mount, outside a chroot, too deep): one class past the
/// real ones, whose decision for each name class is the most restrictive of every real
/// executable class's, stored in the root entry's empty-rest slot (no real path reaches
/// it: every path has at least `/` after the empty prefix).
fn unreachable_class(
    exe_rules: &mut [(PathKey, ExeRule)],
    decisions: &mut Vec<(ProcKey, ProcDecision)>,
    exe_classes: &Classes,
    name_classes: usize,
    rule_set: u32,
) {
    let class = u32::try_from(exe_classes.sets.len()).unwrap_or(u32::MAX);
    let mut worst = vec![ProcDecision::default(); name_classes];
    for (k, d) in decisions.iter() {
        let w = &mut worst[k.name_class as usize];
        for (wrow, row) in w.actions.iter_mut().zip(&d.actions) {
            for (wa, a) in wrow.iter_mut().zip(row) {
                *wa |= a;
            }
        }
    }
    for (n, d) in worst.into_iter().enumerate() {
        if d != ProcDecision::default() {
            let key = ProcKey {
                rule_set,
                exe_class: class,
                name_class: u32::try_from(n).unwrap_or(u32::MAX),
            };
            decisions.push((key, d));
        }
    }
    if let Some((_, root)) = exe_rules.iter_mut().find(|(k, _)| k.prefix_len == 32) {
        root.class[REST_EMPTY] = class;
    }
}
