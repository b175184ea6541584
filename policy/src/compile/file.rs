//! File rules: one LPM entry per stored path prefix holding the finished decision.
//!
//! For a path P whose longest stored prefix is K, which `targetFilePath` patterns match
//! depends only on K and on the class of the rest P - K (empty / one name / deeper): every
//! pattern sits at a stored prefix, and a pattern at an ancestor A of K sees the rest
//! (K - A) + (P - K), whose class follows from K and the class. Whether P lies on a volume
//! follows the same way, since each mount M stores `M` and `M/`. So each entry carries
//! `actions[class][operation]`, computed here once.

use super::prefixes::{Patterns, PrefixSet};
use super::responses::ResponseIndex;
use super::RuleSetSpec;
use crate::model::{BlockKind, FileOp, Policy};
use crate::pattern::PathKind;
use d4c_common::{
    FileRule, PathKey, FILE_OP_SLOTS, REST_CLASSES, REST_DEEP, REST_EMPTY, REST_NAME,
};
use rustc_hash::FxHashSet;

/// Whether a pattern of `kind` matches a rest of class `class`.
#[must_use]
pub fn kind_matches(kind: PathKind, class: usize) -> bool {
    match kind {
        PathKind::Exact => class == REST_EMPTY,
        PathKind::Children => class == REST_NAME,
        PathKind::Descendants => class == REST_NAME || class == REST_DEEP,
        PathKind::NamePrefix => class == REST_EMPTY || class == REST_NAME,
    }
}

pub fn compile(policy: &Policy, spec: &RuleSetSpec, rule_set: u32) -> Vec<(PathKey, FileRule)> {
    let live = spec.live_in(policy, BlockKind::File);
    let idx = ResponseIndex::new(policy, BlockKind::File, spec);
    if idx.is_empty() {
        return Vec::new();
    }
    let sels = &policy.selectors;
    let mut patterns: Patterns = Patterns::default();
    for &s in &live {
        for p in sels[s].target_path.iter().flatten() {
            patterns
                .entry(p.prefix.as_bytes().to_vec())
                .or_default()
                .push((s, p.kind));
        }
    }
    let mounts: FxHashSet<&[u8]> = spec
        .mounts
        .iter()
        .map(|m| m.destination.as_bytes())
        .collect();
    let file_mounts: FxHashSet<&[u8]> = spec
        .mounts
        .iter()
        .filter(|m| m.file)
        .map(|m| m.destination.as_bytes())
        .collect();
    let mount_dirs: FxHashSet<Vec<u8>> = spec
        .mounts
        .iter()
        .map(|m| format!("{}/", m.destination).into_bytes())
        .collect();
    let set = PrefixSet::new(
        patterns
            .keys()
            .cloned()
            .chain(mounts.iter().map(|m| m.to_vec()))
            .chain(mount_dirs.iter().cloned()),
    );

    // Path-independent part, per operation: the selectors without a path condition.
    let pathless: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&s| sels[s].target_path.is_none())
        .collect();
    let vol = |s: usize, on_vol: bool, on_file: bool| {
        (sels[s].ignore_volume_mounts && on_vol) || (sels[s].ignore_volume_files && on_file)
    };
    let bases: Vec<_> = FileOp::ALL
        .iter()
        .map(|op| idx.base(|s| pathless.binary_search(&s).is_ok() && sels[s].has_op(op.bit())))
        .collect();

    let mut out = Vec::with_capacity(set.keys.len());
    let mut any = false;
    for (i, key) in set.keys.iter().enumerate() {
        let under_mount = set.chain(i).any(|a| mount_dirs.contains(&set.keys[a]));
        let mut rule = FileRule {
            prefix_len: u16::try_from(key.len()).unwrap_or(u16::MAX),
            ..FileRule::default()
        };
        for class in 0..REST_CLASSES {
            let on_vol = under_mount || (class == REST_EMPTY && mounts.contains(key.as_slice()));
            let on_file = class == REST_EMPTY && file_mounts.contains(key.as_slice());
            let matched = set.matched(&patterns, i, class);
            for op in FileOp::ALL {
                let added: Vec<usize> = matched
                    .iter()
                    .copied()
                    .filter(|&s| sels[s].has_op(op.bit()) && !vol(s, on_vol, on_file))
                    .collect();
                let removed: Vec<usize> = if on_vol || on_file {
                    pathless
                        .iter()
                        .copied()
                        .filter(|&s| sels[s].has_op(op.bit()) && vol(s, on_vol, on_file))
                        .collect()
                } else {
                    Vec::new()
                };
                let a = idx.actions_with(&bases[op as usize], &added, &removed);
                rule.actions[class][op as usize] = a;
                any |= a != 0;
            }
        }
        debug_assert!(FILE_OP_SLOTS >= FileOp::ALL.len());
        out.push((PathKey::new(rule_set, key), rule));
    }
    if !any {
        return Vec::new();
    }
    super::subtree::add_move_entries(&mut out, rule_set);
    unreachable_row(&mut out);
    out
}

/// Sets the root entry's empty-rest row (no path reaches it: every path has at least `/`
/// after the empty prefix) to the most restrictive actions of each operation over every
/// entry and class: what the kernel decides for a path it cannot build from the task's
/// root (another mount namespace, a detached mount, outside a chroot, too deep).
fn unreachable_row(out: &mut [(PathKey, FileRule)]) {
    let mut worst = [0u8; FILE_OP_SLOTS];
    for (_, rule) in out.iter() {
        for row in &rule.actions {
            for (w, a) in worst.iter_mut().zip(row) {
                *w |= a;
            }
        }
    }
    if let Some((_, root)) = out.iter_mut().find(|(k, _)| k.prefix_len == 32) {
        root.actions[REST_EMPTY] = worst;
    }
}

/// The actions the kernel takes for `op` on a path it cannot build, under `rules` (one rule
/// set's entries): the root entry's empty-rest row.
#[must_use]
pub fn unreachable_actions(rules: &[(PathKey, FileRule)], op: FileOp) -> u8 {
    rules
        .iter()
        .find(|(k, _)| k.prefix_len == 32)
        .map_or(0, |(_, r)| r.actions[REST_EMPTY][op as usize])
}
