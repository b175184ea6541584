//! Watching the policy directory: a content fingerprint polled every few seconds (robust
//! to editors and to Kubernetes `ConfigMap` updates, which swap a symlink), loading of
//! the embedded default policy when the directory does not exist at start, and the task
//! that applies each valid change ([`follow`]). A directory that vanishes later is an
//! error, never a switch to the (alert-only) embedded default: the last good policy stays.
//! The configuration file's `audit:` section is watched with it: what is audited changes
//! like the policy (the rule sets are recompiled with no unprotected moment).

use super::owner::Handle;
use crate::config::{embedded_default, Config, ConfigError};
use crate::metrics::Metrics;
use d4c_policy::{load_paths, Audit, Loaded, PolicyError};
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
        (PolicySource::EmbeddedDefault, embedded_default())
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

/// What changed in the policy directory or the configuration's `audit:` section.
#[derive(Debug)]
pub enum Change {
    /// Its files changed: the policy they hold (with the audit settings), or why it cannot
    /// be loaded.
    Policy(Result<Loaded, PolicyError>),
    /// The directory is gone (the embedded default is for a node that never had one).
    Vanished,
    /// The configuration file changed and is not valid: nothing is applied.
    Config(ConfigError),
}

/// Tells when the directory's content (or the configuration file) changed since the last
/// look.
pub struct Watcher {
    dir: PathBuf,
    config: Option<PathBuf>,
    last: u64,
}

impl Watcher {
    /// Watches `dir`, and the `audit:` section of the configuration file `config`.
    #[must_use]
    pub fn new(dir: &Path, config: Option<&Path>) -> Self {
        let mut w = Watcher {
            dir: dir.to_owned(),
            config: config.map(Path::to_owned),
            last: 0,
        };
        w.last = w.fingerprint();
        w
    }

    fn fingerprint(&self) -> u64 {
        let mut h = Fnv(fingerprint(&self.dir));
        if let Some(c) = &self.config {
            h.write(&std::fs::read(c).unwrap_or_default());
        }
        h.finish()
    }

    /// What changed since the last look, if anything.
    pub fn poll(&mut self) -> Option<Change> {
        let now = self.fingerprint();
        if now == self.last {
            return None;
        }
        self.last = now;
        let audit = match &self.config {
            Some(path) => match Config::load(path) {
                Ok(c) => c.audit,
                Err(e) => return Some(Change::Config(e)),
            },
            None => Audit::default(),
        };
        Some(match load(&self.dir) {
            (PolicySource::Directory(_), result) => Change::Policy(result.map(|mut l| {
                l.policy.audit = audit;
                l
            })),
            (PolicySource::EmbeddedDefault, _) => Change::Vanished,
        })
    }
}

/// Polls the policy directory (and the configuration's `audit:`); a valid change is
/// applied (and copied to `last_good`), an invalid one is logged with its positions and
/// the last good policy stays in force.
pub async fn follow(
    dir: PathBuf,
    config: Option<PathBuf>,
    last_good: PathBuf,
    handle: Handle,
    metrics: Arc<Metrics>,
) {
    let mut watcher = Watcher::new(&dir, config.as_deref());
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
            Change::Config(e) => {
                rejected(&metrics);
                tracing::error!(
                    "configuration change rejected; the audit settings in force stay: {e}"
                );
                continue;
            }
        };
        match result {
            Ok(loaded) => match handle.reload(Arc::new(loaded.policy)).await {
                Ok(rev) => {
                    metrics.policy_revision.store(rev, Ordering::Relaxed);
                    metrics.policy_valid.store(1, Ordering::Relaxed);
                    tracing::info!(revision = rev, "policy reloaded");
                    if let Err(e) = super::last_good::save(&dir, &last_good) {
                        tracing::warn!(dir = %last_good.display(), "the last good policy could not be saved: {e}");
                    }
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
    use crate::config::EMBEDDED_DEFAULT;

    #[test]
    fn sees_changes_and_falls_back_to_the_default() {
        let dir = std::env::temp_dir().join(format!("d4c-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (src, loaded) = load(&dir);
        assert_eq!(src, PolicySource::EmbeddedDefault);
        assert_eq!(loaded.unwrap().policy.selectors.len(), 3);

        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), EMBEDDED_DEFAULT[0].1).unwrap();
        let mut w = Watcher::new(&dir, None);
        assert!(w.poll().is_none());
        std::fs::write(dir.join("a.yaml"), "file: [oops\n").unwrap();
        let r = w.poll().expect("a change");
        assert!(matches!(
            r,
            Change::Policy(Err(PolicyError::Invalid { .. }))
        ));
        assert!(w.poll().is_none(), "no change since");
        std::fs::write(dir.join("b.yml"), EMBEDDED_DEFAULT[0].1).unwrap();
        assert!(
            matches!(w.poll(), Some(Change::Policy(Err(_)))),
            "a.yaml is still bad"
        );
        std::fs::write(dir.join("a.yaml"), EMBEDDED_DEFAULT[0].1).unwrap();
        assert!(matches!(w.poll(), Some(Change::Policy(Ok(_)))));
        // Gone: reported as such (never the embedded default), once; then back.
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(w.poll(), Some(Change::Vanished)));
        assert!(w.poll().is_none(), "no change since");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), EMBEDDED_DEFAULT[0].1).unwrap();
        assert!(matches!(w.poll(), Some(Change::Policy(Ok(_)))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_audit_section_of_the_configuration_is_watched_with_the_policy() {
        let dir = std::env::temp_dir().join(format!("d4c-watch-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let policies = dir.join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(policies.join("a.yaml"), EMBEDDED_DEFAULT[0].1).unwrap();
        let config = dir.join("d4c.yaml");
        std::fs::write(&config, "logLevel: info\n").unwrap();
        let mut w = Watcher::new(&policies, Some(&config));
        assert!(w.poll().is_none());
        std::fs::write(&config, "logLevel: info\naudit:\n  namespaces: [staging]\n").unwrap();
        match w.poll() {
            Some(Change::Policy(Ok(l))) => assert_eq!(l.policy.audit.namespaces, ["staging"]),
            other => panic!("{other:?}"),
        }
        std::fs::write(&config, "audit:\n  namespace: [staging]\n").unwrap();
        assert!(
            matches!(w.poll(), Some(Change::Config(_))),
            "an invalid file changes nothing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
