//! Suggesting exceptions: from recorded operations that a candidate policy would newly
//! block, the narrowest `exclude` selectors that make it quiet on them, added to the
//! responses that would block: the operations seen; the paths (or executables) seen, as
//! exact paths, `DIR/*` where a directory had several, and `PARENT/**` where several
//! directories of one parent had some (never wider than one level above the files'
//! directory); the image and the namespace when every case shares one. The result is the
//! whole policy again, as one file ([`crate::emit`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::eval::evaluate;
use crate::model::{BlockKind, Policy, Selector};
use crate::pattern::PathPattern;
use crate::replay::{self, Recorded};
use crate::{Actions, Container, Event};

/// What one response needs excepted, accumulated over the recorded operations.
#[derive(Debug, Default)]
struct Need {
    ops: u8,
    paths: BTreeSet<String>,
    images: BTreeSet<String>,
    namespaces: BTreeSet<Option<String>>,
}

/// What `suggest` did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Recorded operations read.
    pub events: u64,
    /// Those the candidate would newly block.
    pub newly_blocked: u64,
    /// Those that could not be decided (see `d4c replay` for why).
    pub undecidable: u64,
    /// Lines that are not JSON documents.
    pub malformed: u64,
    /// Exceptions added.
    pub exceptions: usize,
    /// Paths no pattern can name exactly (they hold a `*`): not excepted.
    pub unnameable: Vec<String>,
}

/// Collects recorded operations, then writes the suggested policy.
pub struct Suggest<'p> {
    policy: &'p Policy,
    needs: BTreeMap<usize, Need>,
    summary: Summary,
}

impl<'p> Suggest<'p> {
    /// Suggesting exceptions to `policy`.
    #[must_use]
    pub fn new(policy: &'p Policy) -> Self {
        Suggest {
            policy,
            needs: BTreeMap::new(),
            summary: Summary::default(),
        }
    }

    /// Takes one NDJSON line.
    pub fn line(&mut self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let Ok(doc) = replay::document::parse(text) else {
            self.summary.malformed += 1;
            return;
        };
        self.summary.events += 1;
        match replay::read(&doc) {
            Ok(r) => self.record(&r),
            Err(_) => self.summary.undecidable += 1,
        }
    }

    fn record(&mut self, r: &Recorded) {
        if r.denied {
            return;
        }
        // Every alternative must be excepted: for each operation that a response would
        // block, that response needs its operation and path excepted.
        let mut found = false;
        for e in r.alternatives.iter().flatten() {
            let d = evaluate(self.policy, &r.container, e);
            if !d.actions.contains(Actions::BLOCK) {
                continue;
            }
            found = true;
            for resp in d
                .responses
                .into_iter()
                .filter(|&i| self.policy.responses[i].actions.contains(Actions::BLOCK))
            {
                let need = self.needs.entry(resp).or_default();
                match e {
                    Event::File { op, path } => {
                        need.ops |= op.bit();
                        need.paths.insert(path.clone());
                    }
                    Event::Process { op, executable, .. } => {
                        need.ops |= op.bit();
                        need.paths.insert(executable.clone());
                    }
                }
                need.images.insert(
                    r.container
                        .image
                        .as_ref()
                        .map_or_else(String::new, |i| i.name().to_owned()),
                );
                need.namespaces.insert(r.container.namespace.clone());
            }
        }
        if found {
            self.summary.newly_blocked += 1;
        }
    }

    /// The policy with the exceptions added, and what was done.
    #[must_use]
    pub fn finish(mut self) -> (Policy, Summary) {
        let mut policy = self.policy.clone();
        let mut n = 0;
        for (resp, need) in std::mem::take(&mut self.needs) {
            let (globs, unnameable) = globs(&need.paths);
            self.summary.unnameable.extend(unnameable);
            if globs.is_empty() {
                continue;
            }
            n += 1;
            let r = &policy.responses[resp];
            let block = r.block;
            let mut sel = Selector {
                name: format!("suggested-exception-{n}"),
                source: r.source,
                block: Some(block),
                ops: Some(need.ops),
                ..Selector::default()
            };
            let patterns: Vec<PathPattern> = globs
                .iter()
                .filter_map(|g| PathPattern::parse(g).ok())
                .collect();
            match block {
                BlockKind::File => sel.target_path = Some(patterns),
                BlockKind::Process => sel.executable = Some(patterns),
            }
            if need.images.len() == 1 {
                let image = need.images.iter().next().cloned().unwrap_or_default();
                if !image.is_empty() {
                    sel.image_name = Some(vec![image]);
                }
            }
            if need.namespaces.len() == 1 {
                if let Some(Some(ns)) = need.namespaces.iter().next() {
                    sel.namespace = Some(vec![ns.clone()]);
                }
            }
            policy.selectors.push(sel);
            let idx = policy.selectors.len() - 1;
            policy.responses[resp].excludes.push(idx);
        }
        self.summary.exceptions = n;
        (policy, self.summary)
    }
}

/// The tightest patterns covering `paths`: exact paths; `DIR/*` for a directory with
/// several; `PARENT/**` for a parent with several such directories (never the root).
/// Paths no pattern can name (holding `*`) are returned apart.
#[must_use]
pub fn globs(paths: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let (ok, unnameable): (Vec<&String>, Vec<&String>) = paths
        .iter()
        .partition(|p| p.starts_with('/') && !p.contains('*') && PathPattern::parse(p).is_ok());
    let mut by_dir: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &ok {
        let dir = p.rsplit_once('/').map_or("", |(d, _)| d);
        by_dir.entry(dir).or_default().push(p);
    }
    let mut by_parent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for dir in by_dir.keys() {
        let parent = dir.rsplit_once('/').map_or("", |(p, _)| p);
        by_parent.entry(parent).or_default().push(dir);
    }
    let mut out = BTreeSet::new();
    for (parent, dirs) in &by_parent {
        if dirs.len() > 1 && !parent.is_empty() {
            out.insert(format!("{parent}/**"));
            continue;
        }
        for d in dirs {
            let files = &by_dir[d];
            if files.len() > 1 && !d.is_empty() {
                out.insert(format!("{d}/*"));
            } else {
                out.extend(files.iter().map(|f| (*f).to_owned()));
            }
        }
    }
    (
        out.into_iter().collect(),
        unnameable.into_iter().cloned().collect(),
    )
}

/// The exception that would have allowed one decided operation: the selector to add to
/// the `exclude` of the response that acted (the first that blocks, else the first that
/// alerts), as an alert document carries it (`cloud_defend.suggested_exception`).
#[derive(Debug, Clone, Serialize)]
pub struct Exception {
    /// The response, as `FILE: response N` (1-based, in its file and block).
    pub response: String,
    /// The selector's conditions, under their generation 2 keys.
    pub selector: BTreeMap<&'static str, Vec<String>>,
}

/// The exception for `events` (one operation) in `container`, if a response acts on it.
#[must_use]
pub fn exception(policy: &Policy, container: &Container, events: &[Event]) -> Option<Exception> {
    let decided: Vec<(&Event, Vec<usize>)> = events
        .iter()
        .map(|e| (e, evaluate(policy, container, e).responses))
        .collect();
    let acting = |bit| {
        decided
            .iter()
            .flat_map(|(_, rs)| rs.iter().copied())
            .filter(|&i| policy.responses[i].actions.contains(bit))
            .min()
    };
    let resp = acting(Actions::BLOCK).or_else(|| acting(Actions::ALERT))?;
    let r = &policy.responses[resp];
    let nth = policy.responses[..=resp]
        .iter()
        .filter(|o| o.source == r.source && o.block == r.block)
        .count();
    let file = policy
        .sources
        .get(r.source)
        .map_or("policy", |s| s.path.rsplit('/').next().unwrap_or(&s.path));
    let mut selector = BTreeMap::new();
    let mut ops = BTreeSet::new();
    // Only the operations that response acted on.
    for (e, _) in decided.iter().filter(|(_, rs)| rs.contains(&resp)) {
        match e {
            Event::File { op, path } => {
                ops.insert(op.name());
                selector.insert("targetFilePath", vec![path.clone()]);
            }
            Event::Process { op, executable, .. } => {
                ops.insert(op.name());
                selector.insert("processExecutable", vec![executable.clone()]);
            }
        }
    }
    selector.insert("operation", ops.into_iter().map(str::to_owned).collect());
    if let Some(i) = &container.image {
        selector.insert("containerImageName", vec![i.name().to_owned()]);
    }
    if let Some(ns) = &container.namespace {
        selector.insert("kubernetesNamespace", vec![ns.clone()]);
    }
    Some(Exception {
        response: format!("{file}: {} response {nth}", r.block.word()),
        selector,
    })
}

#[cfg(test)]
mod tests;
