//! Stored path prefixes and their ancestor chains, and how a path's rest is classified.

use d4c_common::{REST_DEEP, REST_EMPTY, REST_NAME};

/// The class of the rest `r` of a path after a prefix.
#[must_use]
pub fn rest_class(r: &[u8]) -> usize {
    if r.is_empty() {
        REST_EMPTY
    } else if r.contains(&b'/') {
        REST_DEEP
    } else {
        REST_NAME
    }
}

/// For a path whose longest stored prefix is `key` with rest class `class`, the class of
/// the rest after the shorter stored prefix `ancestor` (a prefix of `key`).
#[must_use]
pub fn class_after(key: &[u8], ancestor: &[u8], class: usize) -> usize {
    let between = &key[ancestor.len()..];
    if between.is_empty() {
        class
    } else if between.contains(&b'/') || class == REST_DEEP {
        REST_DEEP
    } else {
        REST_NAME
    }
}

/// Path patterns by their fixed prefix: (selector, kind) pairs.
pub type Patterns = rustc_hash::FxHashMap<Vec<u8>, Vec<(usize, crate::pattern::PathKind)>>;

/// A sorted set of prefixes with each one's nearest stored ancestor.
pub struct PrefixSet {
    pub keys: Vec<Vec<u8>>,
    /// `parent[i]`: index of the longest other key that is a prefix of `keys[i]`.
    pub parent: Vec<Option<usize>>,
}

impl PrefixSet {
    /// Builds the set; the empty prefix is always included.
    pub fn new(prefixes: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut keys: Vec<Vec<u8>> = prefixes.into_iter().chain([Vec::new()]).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut parent = Vec::with_capacity(keys.len());
        let mut stack: Vec<usize> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            while let Some(&top) = stack.last() {
                if k.starts_with(&keys[top]) {
                    break;
                }
                stack.pop();
            }
            parent.push(stack.last().copied());
            stack.push(i);
        }
        PrefixSet { keys, parent }
    }

    /// The selectors whose patterns match a path whose longest stored prefix is key `i`
    /// and whose rest has class `class`: every pattern stored at `i` or an ancestor,
    /// judged on the rest it sees. Sorted, without repeats.
    pub fn matched(&self, patterns: &Patterns, i: usize, class: usize) -> Vec<usize> {
        let key = &self.keys[i];
        let mut out = Vec::new();
        for a in self.chain(i) {
            let Some(list) = patterns.get(&self.keys[a]) else {
                continue;
            };
            let c = class_after(key, &self.keys[a], class);
            out.extend(
                list.iter()
                    .filter(|(_, k)| super::file::kind_matches(*k, c))
                    .map(|(s, _)| *s),
            );
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `i` and its stored ancestors, longest first.
    pub fn chain(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(i), move |&j| self.parent[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        let s =
            PrefixSet::new(["/a/", "/a/b", "/ab", "/a/b/c/"].map(|x: &str| x.as_bytes().to_vec()));
        let name = |i: usize| String::from_utf8(s.keys[i].clone()).unwrap();
        let at = |k: &str| s.keys.iter().position(|x| x == k.as_bytes()).unwrap();
        let chain: Vec<String> = s.chain(at("/a/b/c/")).map(name).collect();
        assert_eq!(chain, ["/a/b/c/", "/a/b", "/a/", ""]);
        let chain: Vec<String> = s.chain(at("/ab")).map(name).collect();
        assert_eq!(chain, ["/ab", ""]);
    }

    #[test]
    fn classes() {
        assert_eq!(class_after(b"/a/b", b"/a/", REST_EMPTY), REST_NAME);
        assert_eq!(class_after(b"/a/b", b"/a", REST_EMPTY), REST_DEEP);
        assert_eq!(class_after(b"/a/b", b"/a/", REST_DEEP), REST_DEEP);
        assert_eq!(class_after(b"/a/b", b"/a/b", REST_NAME), REST_NAME);
        assert_eq!(rest_class(b"x/y"), REST_DEEP);
    }
}
