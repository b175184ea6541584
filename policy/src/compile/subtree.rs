//! Entries for directory moves. A directory renamed to D carries files that land at D/R
//! for every R it holds, which a hook cannot list. So for each directory prefix A (a stored
//! prefix's ancestor ending in `/`), an extra entry keyed `A` + NUL (no real path holds a
//! NUL, so no file lookup ever reaches it) summarizes every row a path below A can get (the
//! rows of the stored prefixes that extend A, and the deeper rests of A's own longest
//! stored prefix): their OR (`MOVE_ANY`) and whether all of them block (`MOVE_ALL_BLOCK`).
//! The kernel looks `D/` + NUL up; when no such entry exists, no stored prefix extends
//! `D/`, and every path below D gets the rows of the entry that lookup finds
//! (`d4c_common::moved_dir_rows`).

use d4c_common::{
    moved_dir_rows, FileRule, PathKey, ACTION_BLOCK, FILE_OP_SLOTS, MOVE_ALL_BLOCK, MOVE_ANY,
    MOVE_MARK, PATH_KEY_MAX, REST_CLASSES,
};
use rustc_hash::FxHashMap;

/// Adds the directory-move entries of one rule set's entries `out` (all under one rule set).
pub fn add_move_entries(out: &mut Vec<(PathKey, FileRule)>, rule_set: u32) {
    let rows: FxHashMap<Vec<u8>, FileRule> = out
        .iter()
        .map(|(k, r)| (k.path_bytes().to_vec(), *r))
        .collect();
    // For each directory prefix A strictly inside a stored prefix: the OR of that prefix's
    // rows (every class: each is reachable below A), and their AND of the block bit.
    let mut below: FxHashMap<Vec<u8>, Summary> = FxHashMap::default();
    for (key, rule) in &rows {
        for (i, _) in key.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            if i + 1 < key.len() {
                let acc = below.entry(key[..=i].to_vec()).or_insert_with(Summary::new);
                for row in &rule.actions {
                    acc.add(*row);
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
        match own {
            Some((n, rule)) => {
                let classes = moved_dir_rows(n, dir.len() + 1, MOVE_ANY);
                for (class, row) in rule.actions.iter().enumerate() {
                    if classes & (1 << class) != 0 {
                        acc.add(*row);
                    }
                }
            }
            // Paths there with no stored prefix: no action.
            None => acc.add([0; FILE_OP_SLOTS]),
        }
        let mut key = dir.clone();
        key.push(MOVE_MARK);
        let mut actions = [[0u8; FILE_OP_SLOTS]; REST_CLASSES];
        actions[MOVE_ANY] = acc.any;
        actions[MOVE_ALL_BLOCK] = acc.all_block.map(|b| if b { ACTION_BLOCK } else { 0 });
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

/// The OR of rows, and whether each operation blocks in all of them.
struct Summary {
    any: [u8; FILE_OP_SLOTS],
    all_block: [bool; FILE_OP_SLOTS],
}

impl Summary {
    fn new() -> Self {
        Summary {
            any: [0; FILE_OP_SLOTS],
            all_block: [true; FILE_OP_SLOTS],
        }
    }

    fn add(&mut self, row: [u8; FILE_OP_SLOTS]) {
        for (i, &a) in row.iter().enumerate() {
            self.any[i] |= a;
            self.all_block[i] &= a & ACTION_BLOCK != 0;
        }
    }
}
