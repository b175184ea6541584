//! A userspace emulation of the kernel's lookup over compiled entries. It does exactly what
//! the eBPF programs do (longest-prefix match on at most `PATH_KEY_MAX` path bytes, the rest
//! classified, hash lookups), so tests can prove the entries agree with the reference
//! evaluator, and `d4c explain` can show what the kernel will decide.

use crate::compile::Tables;
use crate::event::Event;
use crate::model::Actions;
use crate::pattern::memfd_path;
use d4c_common::{
    CommKey, ExeRule, FileRule, NameClass, ProcDecision, ProcKey, ACTION_BLOCK, MOVE_ALL_BLOCK,
    MOVE_ANY, PATH_KEY_MAX, REST_CLASSES, REST_EMPTY,
};
use std::collections::HashMap;

/// The kernel maps, as userspace sees the entries.
#[derive(Debug, Default)]
pub struct KernelMaps {
    file: HashMap<(u32, Vec<u8>), FileRule>,
    exe: HashMap<(u32, Vec<u8>), ExeRule>,
    comm: HashMap<CommKey, NameClass>,
    proc: HashMap<ProcKey, ProcDecision>,
}

/// The longest stored prefix of `path` (first `PATH_KEY_MAX` bytes) under `rule_set`.
fn lpm<'a, V>(map: &'a HashMap<(u32, Vec<u8>), V>, rule_set: u32, path: &[u8]) -> Option<&'a V> {
    let n = path.len().min(PATH_KEY_MAX);
    (0..=n)
        .rev()
        .find_map(|len| map.get(&(rule_set, path[..len].to_vec())))
}

/// The class of the rest of `path` after `prefix_len` bytes, as the kernel computes it.
fn class(path: &[u8], prefix_len: usize) -> usize {
    crate::compile::rest_class(&path[prefix_len.min(path.len())..])
}

impl KernelMaps {
    /// Loads entries (later entries replace earlier ones with the same key, as map updates do).
    #[must_use]
    pub fn from_tables(tables: &Tables) -> Self {
        let mut m = KernelMaps::default();
        m.insert(tables);
        m
    }

    /// Adds entries (replacing those with the same key, as map updates do).
    pub fn insert(&mut self, tables: &Tables) {
        for (k, v) in &tables.file_rules {
            self.file
                .insert((k.rule_set(), k.path_bytes().to_vec()), *v);
        }
        for (k, v) in &tables.exe_rules {
            self.exe.insert((k.rule_set(), k.path_bytes().to_vec()), *v);
        }
        self.comm.extend(tables.comm_rules.iter().copied());
        self.proc.extend(tables.proc_decisions.iter().copied());
    }

    /// The kernel's decision for `event` in a container registered under `rule_set`.
    #[must_use]
    pub fn decide(&self, rule_set: u32, event: &Event) -> Actions {
        match event {
            Event::File { op, path } => {
                // The kernel names a memfd as `memfd_path` does.
                let path = if *op == crate::model::FileOp::ExecMemFd {
                    memfd_path(path)
                } else {
                    path.into()
                };
                let p = path.as_bytes();
                let Some(rule) = lpm(&self.file, rule_set, p) else {
                    return Actions::default();
                };
                Actions(rule.actions[class(p, usize::from(rule.prefix_len))][*op as usize])
            }
            Event::Process {
                op, interactive, ..
            } => {
                // Each identity looked up on its own (two executable classes, two name
                // classes, two decisions), the actions ORed and settled (a block from one
                // identity drops the other's audit), as the kernel's `verdict` does.
                let mut actions = Actions::default();
                for who in event.identities() {
                    let executable = memfd_path(who.executable);
                    let p = executable.as_bytes();
                    let exe_class = lpm(&self.exe, rule_set, p)
                        .map_or(0, |r| r.class[class(p, usize::from(r.prefix_len))]);
                    let comm = crate::compile::comm_bytes(who.name);
                    let name_class = self
                        .comm
                        .get(&CommKey { rule_set, comm })
                        .map_or(0, |c| c.class);
                    let key = ProcKey {
                        rule_set,
                        exe_class,
                        name_class,
                    };
                    if let Some(d) = self.proc.get(&key) {
                        actions.0 |= d.actions[usize::from(*interactive)][*op as usize];
                    }
                }
                actions.settled()
            }
        }
    }

    /// The kernel's decision for a directory moved from `src` to `dest` (see
    /// `crate::dir_move`): nothing when every row below `src` blocks createExecutable;
    /// else the rows below `dest`, when they block. Each side is one lookup of `DIR/` +
    /// NUL (`d4c_common::moved_dir_rows`); a key longer than `PATH_KEY_MAX` gets the rule
    /// set's most restrictive row at `dest` and counts as not blocking everywhere at `src`.
    #[must_use]
    pub fn decide_dir_move(&self, rule_set: u32, src: &str, dest: &str) -> Actions {
        let op = crate::model::FileOp::CreateExecutable as usize;
        let all_block = self.move_lookup(rule_set, src).is_some_and(|(r, n)| {
            let rows = d4c_common::moved_dir_rows(usize::from(r.prefix_len), n, MOVE_ALL_BLOCK);
            (0..REST_CLASSES)
                .filter(|c| rows & (1 << c) != 0)
                .all(|c| r.actions[c][op] & ACTION_BLOCK != 0)
        });
        if all_block {
            return Actions::default();
        }
        let actions = match self.move_lookup(rule_set, dest) {
            Some((r, n)) => {
                let rows = d4c_common::moved_dir_rows(usize::from(r.prefix_len), n, MOVE_ANY);
                (0..REST_CLASSES)
                    .filter(|c| rows & (1 << c) != 0)
                    .fold(0, |a, c| a | r.actions[c][op])
            }
            None if moved_key(dest).len() > PATH_KEY_MAX => self
                .file
                .get(&(rule_set, Vec::new()))
                .map_or(0, |r| r.actions[REST_EMPTY][op]),
            None => 0,
        };
        if !Actions(actions).would_block() {
            return Actions::default();
        }
        Actions(actions).settled()
    }

    /// The entry the lookup of `dir/` + NUL finds, and that key's length; `None` when
    /// nothing is found or the key is longer than `PATH_KEY_MAX`.
    fn move_lookup(&self, rule_set: u32, dir: &str) -> Option<(&FileRule, usize)> {
        let key = moved_key(dir);
        if key.len() > PATH_KEY_MAX {
            return None;
        }
        lpm(&self.file, rule_set, &key).map(|r| (r, key.len()))
    }
}

/// `dir/` + NUL, the key of a directory move's lookup.
fn moved_key(dir: &str) -> Vec<u8> {
    let mut key = dir.trim_end_matches('/').as_bytes().to_vec();
    key.push(b'/');
    key.push(d4c_common::MOVE_MARK);
    key
}
