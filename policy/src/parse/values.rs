//! Reading typed values out of YAML nodes, with a diagnostic for every wrong shape.

use crate::diag::{Pos, Sink};
use crate::yaml::{Node, NodeKind};

/// Longest value accepted, in bytes (the limit of the product users come from).
pub const MAX_VALUE_BYTES: usize = 511;

/// A string with the position it came from.
#[derive(Debug, Clone)]
pub struct Spanned {
    pub text: String,
    pub pos: Pos,
}

/// A list of non-empty strings. Reports and returns `None` on any problem with the list
/// itself; individual bad items are reported and skipped.
pub fn string_list(sink: &mut Sink, key: &str, value: &Node) -> Option<Vec<Spanned>> {
    let NodeKind::Seq(items) = &value.kind else {
        let example = value.as_str().filter(|s| !s.is_empty()).unwrap_or("value");
        sink.error(
            value.pos,
            format!(
                "`{key}` takes a list, found {}; write e.g. `{key}: [{example}]`",
                value.type_name()
            ),
        );
        return None;
    };
    if items.is_empty() {
        sink.error(value.pos, format!("`{key}` needs at least one value"));
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match &item.kind {
            NodeKind::Scalar { value: text, .. } if item.is_null() || text.trim().is_empty() => {
                sink.error(item.pos, format!("values of `{key}` cannot be empty"));
            }
            NodeKind::Scalar { value: text, .. } if text.len() > MAX_VALUE_BYTES => {
                sink.error(
                    item.pos,
                    format!(
                        "value of `{key}` is {} bytes; at most {MAX_VALUE_BYTES} are allowed",
                        text.len()
                    ),
                );
            }
            NodeKind::Scalar { value: text, .. } => out.push(Spanned {
                text: text.clone(),
                pos: item.pos,
            }),
            _ => sink.error(
                item.pos,
                format!(
                    "values of `{key}` must be strings, found {}",
                    item.type_name()
                ),
            ),
        }
    }
    Some(out)
}

/// A YAML boolean (`true`/`false` in any of YAML's spellings), unquoted.
pub fn boolean(sink: &mut Sink, key: &str, value: &Node) -> Option<bool> {
    if let NodeKind::Scalar {
        value: v,
        plain: true,
    } = &value.kind
    {
        match v.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                sink.error(
                    value.pos,
                    format!("`{key}` takes true or false, found `{v}`"),
                );
                None
            }
        }
    } else {
        sink.error(
            value.pos,
            format!(
                "`{key}` takes true or false (unquoted), found {}",
                value.type_name()
            ),
        );
        None
    }
}

/// A non-empty scalar string.
pub fn scalar(sink: &mut Sink, key: &str, value: &Node) -> Option<Spanned> {
    match &value.kind {
        NodeKind::Scalar { value: v, .. } if !value.is_null() && !v.trim().is_empty() => {
            Some(Spanned {
                text: v.clone(),
                pos: value.pos,
            })
        }
        _ => {
            sink.error(
                value.pos,
                format!(
                    "`{key}` needs a non-empty string, found {}",
                    value.type_name()
                ),
            );
            None
        }
    }
}

/// The pairs of a mapping node, or a diagnostic.
pub fn mapping<'a>(sink: &mut Sink, what: &str, node: &'a Node) -> Option<&'a [(Node, Node)]> {
    if let NodeKind::Map(pairs) = &node.kind {
        Some(pairs)
    } else {
        sink.error(
            node.pos,
            format!(
                "{what} must be a mapping (`key: value` lines), found {}",
                node.type_name()
            ),
        );
        None
    }
}

/// The items of a sequence node, or a diagnostic.
pub fn sequence<'a>(sink: &mut Sink, what: &str, node: &'a Node) -> Option<&'a [Node]> {
    if let NodeKind::Seq(items) = &node.kind {
        Some(items)
    } else {
        sink.error(
            node.pos,
            format!(
                "{what} must be a list (`- ...` items), found {}",
                node.type_name()
            ),
        );
        None
    }
}
