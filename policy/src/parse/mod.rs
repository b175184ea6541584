//! Parsing and validating policy files of both generations into the [`Policy`] model.

mod checks;
mod keys;
mod response;
mod selector;
mod values;

pub use keys::closest;
pub use values::MAX_VALUE_BYTES;

use crate::diag::{Pos, Sink};
use crate::model::{BlockKind, Generation, Policy, Source};
use crate::yaml::{self, Node, NodeKind};
use std::collections::HashMap;
use values::{mapping, sequence};

/// Most selectors plus responses in one block (the product users come from allowed 64).
pub const MAX_BLOCK_ITEMS: usize = 20_000;

/// Adds the policy in `text` (named `file` in diagnostics) to `policy`. Diagnostics go to
/// `sink`; on errors the policy may hold part of the file and must not be used.
pub(crate) fn parse_into(policy: &mut Policy, file: &str, text: &str, sink: &mut Sink) {
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            sink.error(Pos::new(1, 1), "empty policy file: write `file:`/`process:` blocks (generation 2) or `selectors:`/`responses:` (generation 1)");
            return;
        }
        Err(e) => {
            sink.error(e.pos, e.message);
            return;
        }
    };
    let Some(pairs) = mapping(sink, "a policy file", &root) else {
        return;
    };
    let Some(generation) = detect_generation(sink, pairs, root.pos) else {
        return;
    };
    sink.context = format!(" [{} policy]", generation.label());
    let source = policy.sources.len();
    policy.sources.push(Source {
        path: file.to_owned(),
        generation,
    });
    let mut parser = FileParser {
        policy,
        sink,
        generation,
        source,
        referenced: std::collections::HashSet::new(),
    };
    match generation {
        Generation::One => parser.block(BlockKind::File, pairs, root.pos, ""),
        Generation::Two => {
            for (key, value) in pairs {
                match key.as_str().unwrap_or_default() {
                    "version" => {
                        if !matches!(value.kind, NodeKind::Scalar { .. }) {
                            parser
                                .sink
                                .error(value.pos, "`version` must be a scalar such as `1`");
                        }
                    }
                    "file" | "process" => {
                        let kind = if key.as_str() == Some("file") {
                            BlockKind::File
                        } else {
                            BlockKind::Process
                        };
                        if let Some(block) =
                            mapping(parser.sink, &format!("the `{}` block", kind.word()), value)
                        {
                            parser.block(kind, block, value.pos, kind.word());
                        }
                    }
                    other => {
                        let hint = closest(other, ["version", "file", "process"].into_iter())
                            .map_or(
                                String::from("; expected `version`, `file` or `process`"),
                                |k| format!("; did you mean `{k}`?"),
                            );
                        parser
                            .sink
                            .error(key.pos, format!("unknown top-level key `{other}`{hint}"));
                    }
                }
            }
        }
    }
}

/// Generation 2 files have `file`/`process` at the top, generation 1 files `selectors`.
fn detect_generation(sink: &mut Sink, pairs: &[(Node, Node)], pos: Pos) -> Option<Generation> {
    let has = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(key, _)| key.pos)
    };
    let gen2 = has("file").or_else(|| has("process"));
    let gen1 = has("selectors").or_else(|| has("responses"));
    match (gen1, gen2) {
        (Some(_), Some(p2)) => {
            sink.error(p2, "this file mixes generation 1 keys (`selectors`/`responses` at the top) with generation 2 blocks (`file`/`process`); use one generation per file");
            None
        }
        (Some(_), None) => Some(Generation::One),
        (None, Some(_)) => Some(Generation::Two),
        (None, None) => {
            let keys: Vec<&str> = pairs.iter().filter_map(|(k, _)| k.as_str()).collect();
            sink.error(pos, format!(
                "not a d4c policy: expected `file:`/`process:` blocks (generation 2) or `selectors:` and `responses:` (generation 1); found keys: {}",
                if keys.is_empty() { "none".into() } else { keys.join(", ") }
            ));
            None
        }
    }
}

pub(super) struct FileParser<'a> {
    pub policy: &'a mut Policy,
    pub sink: &'a mut Sink,
    pub generation: Generation,
    pub source: usize,
    /// Selectors referenced by any response, valid or not (for the unused-selector warning).
    pub referenced: std::collections::HashSet<usize>,
}

impl FileParser<'_> {
    /// One block: `selectors` and `responses` (for generation 1 the whole file).
    fn block(&mut self, kind: BlockKind, pairs: &[(Node, Node)], pos: Pos, prefix: &str) {
        let what = if prefix.is_empty() {
            "the policy".to_owned()
        } else {
            format!("the `{prefix}` block")
        };
        let mut selectors = None;
        let mut responses = None;
        for (key, value) in pairs {
            match key.as_str().unwrap_or_default() {
                "selectors" => selectors = Some(value),
                "responses" => responses = Some(value),
                other => {
                    let hint = closest(other, ["selectors", "responses"].into_iter()).map_or(
                        String::from("; expected `selectors` and `responses`"),
                        |k| format!("; did you mean `{k}`?"),
                    );
                    self.sink
                        .error(key.pos, format!("unknown key `{other}` in {what}{hint}"));
                }
            }
        }
        let (Some(sel_node), Some(resp_node)) = (selectors, responses) else {
            let missing = if selectors.is_none() {
                "selectors"
            } else {
                "responses"
            };
            self.sink.error(
                pos,
                format!("{what} needs `{missing}:` with at least one entry"),
            );
            return;
        };
        let errors_before = self.sink.items.iter().filter(|d| d.is_error()).count();
        let first_selector = self.policy.selectors.len();
        let mut names: HashMap<String, usize> = HashMap::new();
        let (Some(sel_items), Some(resp_items)) = (
            sequence(self.sink, "`selectors`", sel_node),
            sequence(self.sink, "`responses`", resp_node),
        ) else {
            return;
        };
        if sel_items.is_empty() {
            self.sink
                .error(sel_node.pos, "at least one selector is required");
        }
        if resp_items.is_empty() {
            self.sink
                .error(resp_node.pos, "at least one response is required");
        }
        if sel_items.len() + resp_items.len() > MAX_BLOCK_ITEMS {
            self.sink.error(pos, format!(
                "{} selectors and {} responses in one block; d4c accepts at most {MAX_BLOCK_ITEMS} in all",
                sel_items.len(), resp_items.len()
            ));
            return;
        }
        for item in sel_items {
            if let Some(sel) = self.selector(kind, item) {
                if let Some(&prev) = names.get(&sel.name) {
                    let p = self.policy.selectors[prev].pos;
                    self.sink.error(sel.pos, format!(
                        "selector name `{}` is already used at line {}, column {}; selector names must be unique",
                        sel.name, p.line, p.col
                    ));
                    continue;
                }
                names.insert(sel.name.clone(), self.policy.selectors.len());
                self.policy.selectors.push(sel);
            }
        }
        let first_response = self.policy.responses.len();
        for item in resp_items {
            if let Some(resp) = self.response(kind, item, &names) {
                self.policy.responses.push(resp);
            }
        }
        let clean = self.sink.items.iter().filter(|d| d.is_error()).count() == errors_before;
        checks::block(self, kind, first_selector, first_response, clean);
    }
}
