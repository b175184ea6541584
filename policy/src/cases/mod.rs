//! Policy tests (`*.test.yaml` next to the policies, run by `d4c test`): each file names
//! the policy files it tests and lists cases, each a container as `d4c eval` takes it, one
//! operation, the actions expected and optionally the selectors. A case is decided by the
//! reference evaluator and, as `d4c eval` does, by the compiled kernel tables too.
//!
//! ```yaml
//! policies: [block-drift-production.yaml]      # relative to this file
//! cases:
//!   - name: a production pod cannot drop an executable
//!     container: {namespace: prod-eu, image: nginx:1.25, labels: {app: web}}
//!     file: {operation: createExecutable, path: /tmp/x}
//!     expect: [alert, block]
//!     selectors: [productionPods]
//!   - name: shells started as /bin/sh are logged
//!     process: {operation: exec, executable: /usr/bin/dash, startedAs: /bin/sh}
//!     expect: [log]
//! ```

mod parse;

use std::path::{Path, PathBuf};

use crate::compile::{compile_rule_set, RuleSetSpec};
use crate::diag::Diagnostic;
use crate::emulate::KernelMaps;
use crate::{evaluate, load_paths, Actions, Audit, Container, Event, Policy, PolicyError};

pub use parse::parse;

/// The suffix that makes a YAML file a policy test, not a policy (the policy loader skips
/// such files).
pub const SUFFIXES: [&str; 2] = [".test.yaml", ".test.yml"];

/// Whether `path` names a policy test file.
#[must_use]
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| SUFFIXES.iter().any(|s| n.ends_with(s)))
}

/// One test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// The file, as given.
    pub path: PathBuf,
    /// The policy files it tests, resolved against its directory.
    pub policies: Vec<PathBuf>,
    /// Its cases, in file order.
    pub cases: Vec<Case>,
}

/// One case: a container, an operation, what the policy must decide.
#[derive(Debug, Clone)]
pub struct Case {
    /// What it checks, in words.
    pub name: String,
    /// Where it starts in its file.
    pub line: usize,
    /// The container the operation happens in.
    pub container: Container,
    /// The operation.
    pub event: Event,
    /// Decided as an audited container would be (`audit: true`).
    pub audit: bool,
    /// The actions expected (empty: none).
    pub expect: Actions,
    /// The selectors expected to match, as `d4c eval` names them; `None`: not checked.
    pub selectors: Option<Vec<String>>,
}

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// As expected.
    Passed,
    /// Not as expected: what differed.
    Failed(String),
}

/// A case and how it went.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `FILE:LINE`.
    pub at: String,
    /// The case's name.
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
}

/// Why a test file cannot run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    /// It is not a valid test file.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// A policy it names is not valid or cannot be read.
    #[error("{file}: the policies it tests cannot be loaded:\n{source}")]
    Policy {
        /// The test file.
        file: String,
        /// Why.
        #[source]
        source: PolicyError,
    },
}

/// Reads and parses the test file at `path`.
pub fn read(path: &Path) -> Result<TestFile, TestFileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        TestFileError::Invalid(vec![Diagnostic {
            file: file.clone(),
            line: 0,
            column: 0,
            severity: crate::Severity::Error,
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(path, &text).map_err(TestFileError::Invalid)
}

/// The test files among `paths` (files, or directories searched for `*.test.yaml`, not
/// recursively), sorted within each directory.
pub fn find(paths: &[impl AsRef<Path>]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.is_file() && is_test_file(f))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            std::fs::metadata(p)?;
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// Runs every case of `t` against its policies.
pub fn run(t: &TestFile) -> Result<Vec<CaseResult>, TestFileError> {
    let loaded = load_paths(&t.policies).map_err(|source| TestFileError::Policy {
        file: t.path.display().to_string(),
        source,
    })?;
    Ok(t.cases
        .iter()
        .map(|c| CaseResult {
            at: format!("{}:{}", t.path.display(), c.line),
            name: c.name.clone(),
            outcome: decide(&loaded.policy, c),
        })
        .collect())
}

/// Decides one case; what differed, if anything.
fn decide(policy: &Policy, c: &Case) -> Outcome {
    let mut policy = policy.clone();
    if c.audit {
        policy.audit = Audit::everything();
    }
    let d = evaluate(&policy, &c.container, &c.event);
    let mut wrong = Vec::new();
    if d.actions != c.expect {
        wrong.push(format!(
            "expected actions [{}], got [{}]",
            c.expect.names().join(", "),
            d.actions.names().join(", ")
        ));
    }
    if let Some(want) = &c.selectors {
        let mut got: Vec<String> = d
            .selectors
            .iter()
            .map(|&i| policy.selector_label(i))
            .collect();
        let mut want = want.clone();
        got.sort();
        want.sort();
        if got != want {
            wrong.push(format!(
                "expected selectors [{}], got [{}]",
                want.join(", "),
                got.join(", ")
            ));
        }
    }
    // The kernel decides from the compiled tables, proven equal to the evaluator; a case
    // where they differ is a d4c bug, reported as such.
    let spec = RuleSetSpec::for_container(&policy, &c.container);
    if let Ok(tables) = compile_rule_set(&policy, &spec, 1) {
        let kernel = KernelMaps::from_tables(&tables).decide(1, &c.event);
        if kernel != d.actions {
            wrong.push(format!(
                "d4c internal error: the kernel tables decide [{}]; please report this",
                kernel.names().join(", ")
            ));
        }
    }
    if wrong.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed(wrong.join("; "))
    }
}

#[cfg(test)]
mod tests;
