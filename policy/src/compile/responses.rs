//! Response evaluation over selector sets, incrementally from a base set.
//!
//! Most selectors of a rule set do not depend on the path; a path key only adds or removes
//! a few. So the compiler evaluates the responses once for the path-independent base set
//! and then, per key, only the responses that reference a changed selector.

use crate::compile::RuleSetSpec;
use crate::model::{Actions, BlockKind, Policy};
use rustc_hash::FxHashMap;

const BITS: usize = 4;

/// The responses of one block, restricted to a rule set's live selectors.
pub struct ResponseIndex {
    actions: Vec<u8>,
    matches: Vec<Vec<usize>>,
    excludes: Vec<Vec<usize>>,
    /// selector -> (response, is a `match` reference)
    by_selector: FxHashMap<usize, Vec<(usize, bool)>>,
}

/// Per-response counts of matching `match` and `exclude` selectors for a base set, and
/// how many firing responses carry each action bit.
#[derive(Clone)]
pub struct Base {
    m: Vec<u32>,
    x: Vec<u32>,
    counts: [u32; BITS],
}

impl ResponseIndex {
    pub fn new(policy: &Policy, block: BlockKind, spec: &RuleSetSpec) -> Self {
        let live = spec.live_in(policy, block);
        let is_live = |s: &usize| live.binary_search(s).is_ok();
        let mut idx = ResponseIndex {
            actions: Vec::new(),
            matches: Vec::new(),
            excludes: Vec::new(),
            by_selector: FxHashMap::default(),
        };
        for (i, resp) in policy.responses.iter().enumerate() {
            if resp.block != block {
                continue;
            }
            let matches: Vec<usize> = resp.matches.iter().copied().filter(is_live).collect();
            if matches.is_empty() {
                continue; // can never fire in this rule set
            }
            let excludes: Vec<usize> = resp.excludes.iter().copied().filter(is_live).collect();
            let r = idx.actions.len();
            for &s in &matches {
                idx.by_selector.entry(s).or_default().push((r, true));
            }
            for &s in &excludes {
                idx.by_selector.entry(s).or_default().push((r, false));
            }
            let audited = spec.audited.binary_search(&i).is_ok();
            idx.actions.push(resp.actions.applied(audited).0);
            idx.matches.push(matches);
            idx.excludes.push(excludes);
        }
        idx
    }

    /// True when no response can fire at all.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The base state for the selector set `selected`.
    pub fn base(&self, selected: impl Fn(usize) -> bool) -> Base {
        let m: Vec<u32> = self.matches.iter().map(|l| count(l, &selected)).collect();
        let x: Vec<u32> = self.excludes.iter().map(|l| count(l, &selected)).collect();
        let mut counts = [0; BITS];
        for r in 0..self.actions.len() {
            if m[r] > 0 && x[r] == 0 {
                add_bits(&mut counts, self.actions[r], 1);
            }
        }
        Base { m, x, counts }
    }

    /// The actions for the base set plus `added` minus `removed` (disjoint from / subset of
    /// the base set respectively).
    pub fn actions_with(&self, base: &Base, added: &[usize], removed: &[usize]) -> u8 {
        if added.is_empty() && removed.is_empty() {
            return bits_of(&base.counts);
        }
        let mut delta: FxHashMap<usize, (i64, i64)> = FxHashMap::default();
        for (list, sign) in [(added, 1), (removed, -1)] {
            for s in list {
                for &(r, is_match) in self.by_selector.get(s).map_or(&[][..], Vec::as_slice) {
                    let d = delta.entry(r).or_default();
                    if is_match {
                        d.0 += sign;
                    } else {
                        d.1 += sign;
                    }
                }
            }
        }
        let mut counts = base.counts;
        for (r, (dm, dx)) in delta {
            let before = base.m[r] > 0 && base.x[r] == 0;
            let after = i64::from(base.m[r]) + dm > 0 && i64::from(base.x[r]) + dx == 0;
            if before != after {
                add_bits(&mut counts, self.actions[r], if after { 1 } else { -1 });
            }
        }
        bits_of(&counts)
    }

    /// The actions for the selector set `selected`, evaluated from scratch.
    pub fn actions_of(&self, selected: impl Fn(usize) -> bool) -> u8 {
        let mut out = 0;
        for r in 0..self.actions.len() {
            if self.matches[r].iter().any(|&s| selected(s))
                && !self.excludes[r].iter().any(|&s| selected(s))
            {
                out |= self.actions[r];
            }
        }
        Actions(out).settled().0
    }
}

fn count(list: &[usize], selected: &impl Fn(usize) -> bool) -> u32 {
    u32::try_from(list.iter().filter(|&&s| selected(s)).count()).unwrap_or(u32::MAX)
}

fn add_bits(counts: &mut [u32; BITS], actions: u8, sign: i32) {
    for (b, c) in counts.iter_mut().enumerate() {
        if actions & (1 << b) != 0 {
            *c = c.wrapping_add_signed(sign);
        }
    }
}

fn bits_of(counts: &[u32; BITS]) -> u8 {
    let mut out = 0;
    for (b, &c) in counts.iter().enumerate() {
        if c > 0 {
            out |= 1 << b;
        }
    }
    Actions(out).settled().0
}
