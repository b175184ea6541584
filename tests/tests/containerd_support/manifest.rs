//! Reading the install/ manifests: YAML through d4c-policy's parser (positions kept),
//! navigated by dotted key paths; every lookup panics with what was missing.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use d4c_policy::yaml::{parse, Node, NodeKind};
use std::path::{Path, PathBuf};

/// The install/ directory: `$D4C_INSTALL_DIR` when set (a guest has no checkout:
/// `scripts/guest-e2e.sh` copies it), else this checkout's.
pub fn install() -> PathBuf {
    std::env::var_os("D4C_INSTALL_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .parent()
                    .unwrap()
                    .join("install")
            },
            PathBuf::from,
        )
}

pub fn load(name: &str) -> Node {
    load_from("kubernetes", name)
}

/// A manifest of another install/ directory (`node-prep`).
pub fn load_from(dir: &str, name: &str) -> Node {
    let path = install().join(dir).join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    parse(&text)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
        .unwrap()
}

/// The value of one mapping key.
pub fn key<'a>(node: &'a Node, key: &str) -> &'a Node {
    match &node.kind {
        NodeKind::Map(pairs) => {
            &pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .unwrap_or_else(|| panic!("no `{key}`"))
                .1
        }
        _ => panic!("not a mapping at `{key}`"),
    }
}

/// The value at a dotted path of mapping keys.
pub fn get<'a>(node: &'a Node, path: &str) -> &'a Node {
    path.split('.').fold(node, key)
}

pub fn items(node: &Node) -> &[Node] {
    match &node.kind {
        NodeKind::Seq(v) => v,
        _ => panic!("not a list"),
    }
}

pub fn text(node: &Node) -> &str {
    node.as_str().unwrap()
}

/// The value of `key` in a mapping, if the node is a mapping holding it.
pub fn find<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.kind {
        NodeKind::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The (key, value) pairs of a mapping.
pub fn pairs(node: &Node) -> Vec<(&str, &Node)> {
    match &node.kind {
        NodeKind::Map(p) => p
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .collect(),
        _ => panic!("not a mapping"),
    }
}
