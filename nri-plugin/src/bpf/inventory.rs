//! What the maps hold, by rule set: so a new daemon can number its rule sets above an
//! earlier daemon's and delete the entries nothing claims any more.

use std::collections::BTreeSet;

use aya::maps::lpm_trie::Key;
use d4c_common::{
    MAP_COMM_RULES, MAP_EXE_RULES, MAP_FILE_RULES, MAP_PROC_DECISIONS, MAP_RULESET_OPS,
};

use super::{error::BpfError, loader::Enforcer};
use d4c_common::TrieData;

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> BpfError {
    move |source| BpfError::Map {
        map,
        source: Box::new(source),
    }
}

fn trie_rule_set(k: &Key<TrieData>) -> u32 {
    let d = k.data();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

impl Enforcer {
    /// Every rule-set id that has entries in any rule map.
    pub fn rule_sets_in_maps(&self) -> Result<BTreeSet<u32>, BpfError> {
        let mut out = BTreeSet::new();
        for k in self.file_rules.keys() {
            out.insert(trie_rule_set(&k.map_err(map_err(MAP_FILE_RULES))?));
        }
        for k in self.exe_rules.keys() {
            out.insert(trie_rule_set(&k.map_err(map_err(MAP_EXE_RULES))?));
        }
        for k in self.comm_rules.keys() {
            out.insert(k.map_err(map_err(MAP_COMM_RULES))?.rule_set);
        }
        for k in self.proc_decisions.keys() {
            out.insert(k.map_err(map_err(MAP_PROC_DECISIONS))?.rule_set);
        }
        for k in self.ruleset_ops.keys() {
            out.insert(k.map_err(map_err(MAP_RULESET_OPS))?);
        }
        Ok(out)
    }

    /// Deletes every rule-map entry whose rule set `drop` selects.
    pub fn delete_rule_sets(&mut self, drop: impl Fn(u32) -> bool) -> Result<(), BpfError> {
        let file: Vec<_> = self
            .file_rules
            .keys()
            .filter_map(Result::ok)
            .filter(|k| drop(trie_rule_set(k)))
            .collect();
        for k in file {
            let _ = self.file_rules.remove(&k);
        }
        let exe: Vec<_> = self
            .exe_rules
            .keys()
            .filter_map(Result::ok)
            .filter(|k| drop(trie_rule_set(k)))
            .collect();
        for k in exe {
            let _ = self.exe_rules.remove(&k);
        }
        let comm: Vec<_> = self
            .comm_rules
            .keys()
            .filter_map(Result::ok)
            .filter(|k| drop(k.rule_set))
            .collect();
        for k in comm {
            let _ = self.comm_rules.remove(&k);
        }
        let proc: Vec<_> = self
            .proc_decisions
            .keys()
            .filter_map(Result::ok)
            .filter(|k| drop(k.rule_set))
            .collect();
        for k in proc {
            let _ = self.proc_decisions.remove(&k);
        }
        let ops: Vec<u32> = self
            .ruleset_ops
            .keys()
            .filter_map(Result::ok)
            .filter(|r| drop(*r))
            .collect();
        for k in ops {
            let _ = self.ruleset_ops.remove(&k);
        }
        Ok(())
    }
}
