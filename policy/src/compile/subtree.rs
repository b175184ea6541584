//! Entries for directory moves. A directory renamed to D carries files that land at D/R
//! for every R it holds, which a hook cannot list. So for each directory prefix A (a stored
//! prefix's ancestor ending in `/`), an extra entry keyed `A` + NUL (no real path holds a
//! NUL, so no file lookup ever reaches it) holds in its empty-rest row the OR of every row
//! a path below A can get: the rows of the stored prefixes that extend A, and the deeper
//! rests of A's own longest stored prefix. The kernel looks `D/` + NUL up; when no such
//! entry exists, no stored prefix extends `D/`, and every path below D gets the rows of
//! the entry that lookup finds (`d4c_common::moved_dir_classes`).

use d4c_common::{
    moved_dir_classes, FileRule, PathKey, FILE_OP_SLOTS, MOVE_MARK, PATH_KEY_MAX, REST_CLASSES,
    REST_EMPTY,
};
use rustc_hash::FxHashMap;

/// Adds the directory-move entries of one rule set's entries `out` (all under one rule set).
pub fn add_move_entries(out: &mut Vec<(PathKey, FileRule)>, rule_set: u32) {
    let rows: FxHashMap<Vec<u8>, FileRule> = out
        .iter()
        .map(|(k, r)| (k.path_bytes().to_vec(), *r))
        .collect();
    // For each directory prefix A strictly inside a stored prefix: the OR of that prefix's
    // rows (every class: each is reachable below A).
    let mut below: FxHashMap<Vec<u8>, [u8; FILE_OP_SLOTS]> = FxHashMap::default();
    for (key, rule) in &rows {
        let mut all = [0u8; FILE_OP_SLOTS];
        for row in &rule.actions {
            for (a, r) in all.iter_mut().zip(row) {
                *a |= r;
            }
        }
        for (i, _) in key.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            if i + 1 < key.len() {
                let acc = below.entry(key[..=i].to_vec()).or_default();
                for (a, r) in acc.iter_mut().zip(&all) {
                    *a |= r;
                }
            }
        }
    }
    let mut below: Vec<_> = below.into_iter().collect();
    below.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (dir, mut acc) in below {
        if dir.len() + 1 > PATH_KEY_MAX {
            continue;
        }
        // A's own longest stored prefix, for the rests that no longer prefix reaches.
        let own = (0..=dir.len())
            .rev()
            .find_map(|n| rows.get(&dir[..n]).map(|r| (n, r)));
        if let Some((n, rule)) = own {
            let classes = moved_dir_classes(n, dir.len() + 1);
            for (class, row) in rule.actions.iter().enumerate() {
                if classes & (1 << class) != 0 {
                    for (a, r) in acc.iter_mut().zip(row) {
                        *a |= r;
                    }
                }
            }
        }
        let mut key = dir.clone();
        key.push(MOVE_MARK);
        let mut actions = [[0u8; FILE_OP_SLOTS]; REST_CLASSES];
        actions[REST_EMPTY] = acc;
        out.push((
            PathKey::new(rule_set, &key),
            FileRule {
                prefix_len: u16::try_from(key.len()).unwrap_or(u16::MAX),
                actions,
                ..FileRule::default()
            },
        ));
    }
}
