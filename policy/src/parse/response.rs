//! One response: `match`, optional `exclude`, and `actions`.

use super::values::{mapping, string_list, Spanned};
use super::FileParser;
use crate::model::{Actions, BlockKind, Generation, Response};
use crate::yaml::Node;
use std::collections::HashMap;

impl FileParser<'_> {
    pub(super) fn response(
        &mut self,
        kind: BlockKind,
        node: &Node,
        names: &HashMap<String, usize>,
    ) -> Option<Response> {
        let pairs = mapping(self.sink, "a response", node)?;
        let mut resp = Response {
            source: self.source,
            block: kind,
            pos: node.pos,
            matches: Vec::new(),
            excludes: Vec::new(),
            actions: Actions::default(),
        };
        let (mut has_match, mut has_actions, mut ok) = (false, false, true);
        for (key, value) in pairs {
            let key_text = key.as_str().unwrap_or_default();
            match key_text {
                "match" | "exclude" => {
                    has_match |= key_text == "match";
                    let Some(items) = string_list(self.sink, key_text, value) else {
                        ok = false;
                        continue;
                    };
                    for item in items {
                        if let Some(&i) = names.get(&item.text) {
                            self.referenced.insert(i);
                            let list = if key_text == "match" {
                                &mut resp.matches
                            } else {
                                &mut resp.excludes
                            };
                            if !list.contains(&i) {
                                list.push(i);
                            }
                        } else {
                            ok = false;
                            let hint = self.unknown_reference_hint(kind, &item.text, names);
                            self.sink.error(item.pos, format!(
                                "`{key_text}` names `{}`, but this file has no {} selector of that name{hint}",
                                item.text,
                                kind.word()
                            ));
                        }
                    }
                }
                "actions" => {
                    has_actions = true;
                    let Some(items) = string_list(self.sink, key_text, value) else {
                        ok = false;
                        continue;
                    };
                    ok &= self.actions(&items, &mut resp.actions);
                }
                other => {
                    let hint = super::closest(other, ["match", "exclude", "actions"].into_iter())
                        .map_or(
                            "; expected `match`, `exclude` and `actions`".to_owned(),
                            |k| format!("; did you mean `{k}`?"),
                        );
                    self.sink
                        .error(key.pos, format!("unknown response key `{other}`{hint}"));
                }
            }
        }
        if !has_match {
            self.sink.error(
                node.pos,
                "a response needs `match:` with at least one selector name",
            );
        }
        if !has_actions {
            self.sink.error(
                node.pos,
                "a response needs `actions:` with at least one action",
            );
        }
        if resp.actions.contains(Actions::BLOCK) && !resp.actions.contains(Actions::ALERT) {
            let at = pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some("actions"))
                .map_or(node.pos, |(_, v)| v.pos);
            self.sink.error(at, "the alert action is required when the \"block\" action is used: write `actions: [alert, block]`");
            ok = false;
        }
        (ok && has_match && has_actions).then_some(resp)
    }

    /// ORs the actions `items` name into `actions`; false when one is unknown to this
    /// generation (reported with a hint).
    fn actions(&mut self, items: &[Spanned], actions: &mut Actions) -> bool {
        let allowed: &[&str] = match self.generation {
            Generation::One => &["alert", "block"],
            Generation::Two => &["log", "alert", "block"],
        };
        let mut ok = true;
        for item in items {
            if let Some(bit) =
                Actions::bit_of(&item.text).filter(|_| allowed.contains(&item.text.as_str()))
            {
                actions.0 |= bit;
            } else {
                ok = false;
                let hint = if item.text == "log" {
                    "; `log` exists only in generation 2 policies".to_owned()
                } else if let Some(near) = super::closest(&item.text, allowed.iter().copied()) {
                    format!("; did you mean `{near}`?")
                } else {
                    format!("; expected one of: {}", allowed.join(", "))
                };
                self.sink
                    .error(item.pos, format!("unknown action `{}`{hint}", item.text));
            }
        }
        ok
    }

    fn unknown_reference_hint(
        &self,
        kind: BlockKind,
        name: &str,
        names: &HashMap<String, usize>,
    ) -> String {
        let other = self
            .policy
            .selectors
            .iter()
            .any(|s| s.source == self.source && s.kind() != kind && s.name == name);
        if other {
            return format!(
                "; `{name}` is a {} selector, and {} responses can only reference {} selectors",
                if kind == BlockKind::File {
                    "process"
                } else {
                    "file"
                },
                kind.word(),
                kind.word()
            );
        }
        super::closest(name, names.keys().map(String::as_str))
            .map_or_else(String::new, |n| format!("; did you mean `{n}`?"))
    }
}
