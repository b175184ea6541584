//! A small YAML tree with source positions, built from saphyr-parser events.
//!
//! Policies need `file:line:col` on every error, which serde-based loaders lose, so the
//! policy parser walks this tree instead. Limits keep hostile input cheap: no anchors or
//! aliases, bounded nesting, bounded size, one document per file.

use crate::diag::Pos;
use saphyr_parser::{Event, Parser, ScalarStyle};

/// Largest policy file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// Deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 32;

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What it is.
    pub kind: NodeKind,
}

/// The three kinds of YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars (so `"true"` stays a string).
    Scalar {
        /// The text.
        value: String,
        /// Whether it was written unquoted.
        plain: bool,
    },
    /// A sequence, in file order.
    Seq(Vec<Node>),
    /// Pairs in file order; keys are nodes so that their positions are kept.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar's text, if this is a scalar.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// True for a plain `~`, `null`, `Null`, `NULL` or empty scalar.
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short word for the node's type, for error messages.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "an empty value",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// Why a text is not a YAML tree we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where the problem is.
    pub pos: Pos,
    /// What it is.
    pub message: String,
}

/// Parses one YAML document. `Ok(None)` for a file with no document (empty or comments only).
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(YamlError {
            pos: Pos::new(1, 1),
            message: format!(
                "file is {} bytes; policy files are limited to {MAX_FILE_BYTES} bytes",
                text.len()
            ),
        });
    }
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        documents: 0,
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            pos: Pos::new(e.marker().line(), e.marker().col() + 1),
            message: format!("invalid YAML: {}", e.info()),
        })?;
        let pos = Pos::new(span.start.line(), span.start.col() + 1);
        if builder.push(event, pos)? {
            break;
        }
    }
    Ok(builder.root)
}

struct Builder {
    stack: Vec<(Node, Option<Node>)>,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    /// Feeds one event; returns true at the end of the stream.
    fn push(&mut self, event: Event<'_>, pos: Pos) -> Result<bool, YamlError> {
        let node = match event {
            Event::StreamEnd => return Ok(true),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(err(pos, "a policy file holds one YAML document; split further documents into their own files"));
                }
                return Ok(false);
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => return Ok(false),
            Event::Alias(_) => {
                return Err(err(
                    pos,
                    "YAML aliases (`*name`) are not supported in policies; write the value out",
                ));
            }
            Event::Scalar(value, style, anchor, _tag) => {
                no_anchor(anchor, pos)?;
                Node {
                    pos,
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                }
            }
            Event::SequenceStart(anchor, _) => {
                no_anchor(anchor, pos)?;
                return self.open(Node {
                    pos,
                    kind: NodeKind::Seq(Vec::new()),
                });
            }
            Event::MappingStart(anchor, _) => {
                no_anchor(anchor, pos)?;
                return self.open(Node {
                    pos,
                    kind: NodeKind::Map(Vec::new()),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some((node, None)) => node,
                Some((_, Some(key))) => return Err(err(key.pos, "mapping key without a value")),
                None => return Err(err(pos, "unbalanced YAML collection")),
            },
        };
        self.attach(node)?;
        Ok(false)
    }

    fn open(&mut self, node: Node) -> Result<bool, YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(err(
                node.pos,
                &format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push((node, None));
        Ok(false)
    }

    fn attach(&mut self, node: Node) -> Result<(), YamlError> {
        let Some((parent, pending_key)) = self.stack.last_mut() else {
            if self.root.is_some() {
                return Err(err(node.pos, "unexpected content after the document"));
            }
            self.root = Some(node);
            return Ok(());
        };
        match &mut parent.kind {
            NodeKind::Seq(items) => items.push(node),
            NodeKind::Map(pairs) => match pending_key.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        return Err(err(node.pos, "mapping keys must be plain strings"));
                    }
                    if let Some((first, _)) =
                        pairs.iter().find(|(k, _)| k.as_str() == node.as_str())
                    {
                        return Err(err(
                            node.pos,
                            &format!(
                                "duplicate key `{}` (first at line {}, column {})",
                                node.as_str().unwrap_or_default(),
                                first.pos.line,
                                first.pos.col
                            ),
                        ));
                    }
                    *pending_key = Some(node);
                }
                Some(key) => pairs.push((key, node)),
            },
            NodeKind::Scalar { .. } => unreachable!("scalars are never opened"),
        }
        Ok(())
    }
}

fn no_anchor(anchor: usize, pos: Pos) -> Result<(), YamlError> {
    if anchor == 0 {
        Ok(())
    } else {
        Err(err(
            pos,
            "YAML anchors (`&name`) are not supported in policies; write the value out",
        ))
    }
}

fn err(pos: Pos, message: &str) -> YamlError {
    YamlError {
        pos,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("a:\n  - x\n  - 'y'\n").unwrap().unwrap();
        let NodeKind::Map(pairs) = &root.kind else {
            panic!()
        };
        assert_eq!(pairs[0].0.pos, Pos::new(1, 1));
        let NodeKind::Seq(items) = &pairs[0].1.kind else {
            panic!()
        };
        assert_eq!(items[1].pos, Pos::new(3, 5));
        assert_eq!(
            items[1].kind,
            NodeKind::Scalar {
                value: "y".into(),
                plain: false
            }
        );
    }

    #[test]
    fn rejects_aliases_duplicates_depth_and_multiple_documents() {
        assert!(parse("a: &x [1]\nb: *x\n")
            .unwrap_err()
            .message
            .contains("anchors"));
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate key `a`"), "{e:?}");
        assert_eq!(e.pos, Pos::new(2, 1));
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).unwrap_err().message.contains("nesting"));
        assert!(parse("a: 1\n---\nb: 2\n")
            .unwrap_err()
            .message
            .contains("one YAML document"));
    }

    #[test]
    fn empty_file_has_no_document() {
        assert_eq!(parse("# nothing\n").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e:?}");
        assert!(e.pos.line >= 1);
    }
}
