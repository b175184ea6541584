//! Watching the policy directory: a content fingerprint polled every few seconds (robust
//! to editors and to Kubernetes `ConfigMap` updates, which swap a symlink), loading of
//! the embedded default policy when the directory does not exist at start, and the task
//! that applies each valid change ([`follow`]). A directory that vanishes later is an
//! error, never a switch to the (alert-only) embedded default: the last good policy stays.

use super::owner::Handle;
use crate::config::EMBEDDED_DEFAULT;
use crate::metrics::Metrics;
use d4c_policy::{load_paths, load_str, Loaded, PolicyError};
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often [`follow`] looks at the policy directory.
const POLL: Duration = Duration::from_secs(2);

/// Where the policy in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    Directory(PathBuf),
    EmbeddedDefault,
}

/// Loads the policy of `dir`, or the embedded default when `dir` does not exist.
pub fn load(dir: &Path) -> (PolicySource, Result<Loaded, PolicyError>) {
    if dir.exists() {
        (PolicySource::Directory(dir.to_owned()), load_paths(&[dir]))
    } else {
        (
            PolicySource::EmbeddedDefault,
            load_str("embedded:default.yaml", EMBEDDED_DEFAULT),
        )
    }
}

/// A fingerprint of the policy files' names and contents (FNV-1a; changes with any edit).
#[must_use]
pub fn fingerprint(dir: &Path) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    match d4c_policy::load::policy_files(&[dir]) {
        Ok(files) => {
            for f in files {
                h.write(f.as_os_str().as_encoded_bytes());
                h.write(&std::fs::read(&f).unwrap_or_default());
            }
        }
        Err(e) => h.write(e.to_string().as_bytes()),
    }
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What changed in the policy directory.
#[derive(Debug)]
pub enum Change {
    /// Its files changed: the policy they hold, or why it cannot be loaded.
    Policy(Result<Loaded, PolicyError>),
    /// The directory is gone (the embedded default is for a node that never had one).
    Vanished,
}

/// Tells when the directory's content changed since the last look.
pub struct Watcher {
    dir: PathBuf,
    last: u64,
}

impl Watcher {
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Watcher {
            dir: dir.to_owned(),
            last: fingerprint(dir),
        }
    }

    /// What changed since the last look, if anything.
    pub fn poll(&mut self) -> Option<Change> {
        let now = fingerprint(&self.dir);
        if now == self.last {
            return None;
        }
        self.last = now;
        Some(match load(&self.dir) {
            (PolicySource::Directory(_), result) => Change::Policy(result),
            (PolicySource::EmbeddedDefault, _) => Change::Vanished,
        })
    }
}

/// Polls the policy directory; a valid change is applied, an invalid one is logged with
/// its positions and the last good policy stays in force.
pub async fn follow(dir: PathBuf, handle: Handle, metrics: Arc<Metrics>) {
    let mut watcher = Watcher::new(&dir);
    loop {
        tokio::time::sleep(POLL).await;
        let Some(change) = watcher.poll() else {
            continue;
        };
        let rejected = |metrics: &Metrics| {
            metrics
                .policy_reload_failures
                .fetch_add(1, Ordering::Relaxed);
            metrics.policy_valid.store(0, Ordering::Relaxed);
        };
        let result = match change {
            Change::Policy(result) => result,
            Change::Vanished => {
                rejected(&metrics);
                tracing::error!(dir = %dir.display(), "the policy directory is gone; the last good policy stays in force until it is back");
                continue;
            }
        };
        match result {
            Ok(loaded) => match handle.reload(Arc::new(loaded.policy)).await {
                Ok(rev) => {
                    metrics.policy_revision.store(rev, Ordering::Relaxed);
                    metrics.policy_valid.store(1, Ordering::Relaxed);
                    tracing::info!(revision = rev, "policy reloaded");
                }
                Err(e) => {
                    rejected(&metrics);
                    tracing::error!(error = %e, "policy reload failed; the previous policy stays in force");
                }
            },
            Err(e) => {
                rejected(&metrics);
                tracing::error!("policy change rejected; the previous policy stays in force:\n{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_changes_and_falls_back_to_the_default() {
        let dir = std::env::temp_dir().join(format!("d4c-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (src, loaded) = load(&dir);
        assert_eq!(src, PolicySource::EmbeddedDefault);
        assert_eq!(loaded.unwrap().policy.selectors.len(), 2);

        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), EMBEDDED_DEFAULT).unwrap();
        let mut w = Watcher::new(&dir);
        assert!(w.poll().is_none());
        std::fs::write(dir.join("a.yaml"), "file: [oops\n").unwrap();
        let r = w.poll().expect("a change");
        assert!(matches!(
            r,
            Change::Policy(Err(PolicyError::Invalid { .. }))
        ));
        assert!(w.poll().is_none(), "no change since");
        std::fs::write(dir.join("b.yml"), EMBEDDED_DEFAULT).unwrap();
        assert!(
            matches!(w.poll(), Some(Change::Policy(Err(_)))),
            "a.yaml is still bad"
        );
        std::fs::write(dir.join("a.yaml"), EMBEDDED_DEFAULT).unwrap();
        assert!(matches!(w.poll(), Some(Change::Policy(Ok(_)))));
        // Gone: reported as such (never the embedded default), once; then back.
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(w.poll(), Some(Change::Vanished)));
        assert!(w.poll().is_none(), "no change since");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), EMBEDDED_DEFAULT).unwrap();
        assert!(matches!(w.poll(), Some(Change::Policy(Ok(_)))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
