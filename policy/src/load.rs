//! Loading policy files and directories into one [`Policy`].
//!
//! A directory contributes its `*.yaml`/`*.yml` files (not recursive, hidden names skipped
//! so Kubernetes `ConfigMap` mounts work, policy tests `*.test.yaml` skipped), in byte
//! order of their names. Each file is its own
//! namespace: its responses reference its own selectors; all files' responses apply.

use crate::diag::{Diagnostic, Sink};
use crate::model::Policy;
use std::path::{Path, PathBuf};

/// Most policy files one load accepts.
pub const MAX_FILES: usize = 1_000;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no policy file.
    #[error("{path}: no policy files (*.yaml or *.yml) found")]
    NoFiles {
        /// The directory.
        path: PathBuf,
    },
    /// A directory holds more than [`MAX_FILES`] policy files.
    #[error("{path}: more than {MAX_FILES} policy files")]
    TooManyFiles {
        /// The directory.
        path: PathBuf,
    },
    /// A file named as a policy is a policy test file (`*.test.yaml`).
    #[error("{path} is a policy test file, not a policy: run it with `d4c test`")]
    TestFile {
        /// The file.
        path: PathBuf,
    },
    /// A file is not UTF-8 text.
    #[error("{path}: not valid UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The files were read, and the policy has errors.
    #[error("the policy has {} error(s):\n{}", count_errors(.diagnostics), render(.diagnostics))]
    Invalid {
        /// Every error and warning, with its position.
        diagnostics: Vec<Diagnostic>,
    },
}

fn count_errors(d: &[Diagnostic]) -> usize {
    d.iter().filter(|x| x.is_error()).count()
}

fn render(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A valid policy and its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The policy.
    pub policy: Policy,
    /// What is worth a look, though the policy is valid.
    pub warnings: Vec<Diagnostic>,
}

/// The policy files named by `paths` (files, or directories of files), in load order. A
/// directory's `*.test.yaml` files are policy tests (`crate::cases`), not policies.
pub fn policy_files(paths: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut files = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let io = |source| PolicyError::Io {
            path: path.to_owned(),
            source,
        };
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
                    !name.starts_with('.')
                        && !crate::cases::is_test_file(p)
                        && p.extension().is_some_and(|e| {
                            e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml")
                        })
                        && p.is_file()
                })
                .collect();
            if found.is_empty() {
                return Err(PolicyError::NoFiles {
                    path: path.to_owned(),
                });
            }
            found.sort();
            files.extend(found);
        } else {
            std::fs::metadata(path).map_err(io)?;
            if crate::cases::is_test_file(path) {
                return Err(PolicyError::TestFile {
                    path: path.to_owned(),
                });
            }
            files.push(path.to_owned());
        }
        if files.len() > MAX_FILES {
            return Err(PolicyError::TooManyFiles {
                path: path.to_owned(),
            });
        }
    }
    Ok(files)
}

/// Reads and validates every file; returns the policy (if there were no errors) and all
/// diagnostics. I/O problems are errors of their own.
pub fn check_paths(
    paths: &[impl AsRef<Path>],
) -> Result<(Option<Policy>, Vec<Diagnostic>), PolicyError> {
    let mut texts = Vec::new();
    for file in policy_files(paths)? {
        let bytes = std::fs::read(&file).map_err(|source| PolicyError::Io {
            path: file.clone(),
            source,
        })?;
        let text =
            String::from_utf8(bytes).map_err(|_| PolicyError::NotText { path: file.clone() })?;
        texts.push((file.display().to_string(), text));
    }
    Ok(check_texts(&texts))
}

/// Validates named texts as one policy.
#[must_use]
pub fn check_texts(texts: &[(String, String)]) -> (Option<Policy>, Vec<Diagnostic>) {
    let mut policy = Policy::default();
    let mut diagnostics = Vec::new();
    for (name, text) in texts {
        let mut sink = Sink::new(name);
        crate::parse::parse_into(&mut policy, name, text, &mut sink);
        sink.items.sort_by_key(|d| (d.line, d.column));
        diagnostics.extend(sink.items);
    }
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    (ok.then_some(policy), diagnostics)
}

/// Loads a valid policy from files or directories.
pub fn load_paths(paths: &[impl AsRef<Path>]) -> Result<Loaded, PolicyError> {
    finish(check_paths(paths)?)
}

/// Loads a valid policy from one text (named `name` in diagnostics).
pub fn load_str(name: &str, text: &str) -> Result<Loaded, PolicyError> {
    load_texts(&[(name, text)])
}

/// Loads a valid policy from named texts taken together, as the files of one directory.
pub fn load_texts(texts: &[(&str, &str)]) -> Result<Loaded, PolicyError> {
    let owned: Vec<(String, String)> = texts
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    finish(check_texts(&owned))
}

fn finish((policy, diagnostics): (Option<Policy>, Vec<Diagnostic>)) -> Result<Loaded, PolicyError> {
    match policy {
        Some(policy) => Ok(Loaded {
            policy,
            warnings: diagnostics,
        }),
        None => Err(PolicyError::Invalid { diagnostics }),
    }
}
