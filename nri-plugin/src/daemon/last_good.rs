//! The last good policy: a copy of the policy files the daemon last loaded, kept in
//! `lastGoodPolicyDir:` (under /run, so it lives as long as the pins). A daemon that
//! starts while the policy directory is invalid enforces this copy instead of stopping;
//! without one, `invalidPolicyAtStart:` decides ([`start_policy`]).

use std::path::{Path, PathBuf};

use d4c_policy::{load_paths, Audit, Loaded, PolicyError};

use super::watch::{self, PolicySource};
use crate::config::{embedded_default, Config, InvalidAtStart};

/// Why a copy could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The files changed between the load and the copy, into something invalid: the
    /// previous copy stays.
    #[error("the copy of the policy files does not load (they changed meanwhile): {0}")]
    Changed(#[source] PolicyError),
}

/// Copies the policy files of `policy_dir` into `dir`, replacing the previous copy only
/// once the new one is complete and loads.
pub fn save(policy_dir: &Path, dir: &Path) -> Result<(), SaveError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SaveError::Io { path, source }
    };
    let files = d4c_policy::load::policy_files(&[policy_dir]).map_err(SaveError::Changed)?;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = sibling(dir, "new");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    for f in files {
        let name = f.file_name().unwrap_or_default();
        let to = staging.join(name);
        std::fs::copy(&f, &to).map_err(io(&to))?;
    }
    if let Err(e) = load_paths(&[&staging]) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(SaveError::Changed(e));
    }
    let old = sibling(dir, "old");
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&staging, dir).map_err(io(dir))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// The policy a starting daemon enforces, and how it came to it.
#[derive(Debug)]
pub enum StartPolicy {
    /// The policy directory's (or the embedded default where there is none).
    Loaded(PolicySource, Loaded),
    /// The directory is invalid (its errors): the last good copy is enforced.
    LastGood(PolicyError, Loaded),
    /// The directory is invalid and there is no copy: the embedded default, every block
    /// audited (`invalidPolicyAtStart: alertOnly`).
    AlertOnly(PolicyError, Loaded),
}

/// Decides what a starting daemon enforces (see the module's documentation); an error
/// when the directory is invalid, there is no copy and `invalidPolicyAtStart` is
/// `refuse`.
pub fn start_policy(config: &Config) -> Result<StartPolicy, PolicyError> {
    let (source, result) = watch::load(&config.policy_dir);
    let error = match result {
        Ok(loaded) => return Ok(StartPolicy::Loaded(source, loaded)),
        Err(e) => e,
    };
    if config.last_good_policy_dir.is_dir() {
        match load_paths(&[&config.last_good_policy_dir]) {
            Ok(loaded) => return Ok(StartPolicy::LastGood(error, loaded)),
            Err(e) => {
                tracing::error!(dir = %config.last_good_policy_dir.display(), "the last good policy does not load either: {e}");
            }
        }
    }
    match config.invalid_policy_at_start {
        InvalidAtStart::Refuse => Err(error),
        // The embedded default is valid (watch's tests load it); were it not, refuse.
        InvalidAtStart::AlertOnly => match embedded_default() {
            Ok(mut loaded) => {
                loaded.policy.audit = Audit::everything();
                Ok(StartPolicy::AlertOnly(error, loaded))
            }
            Err(_) => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EMBEDDED_DEFAULT;

    const BLOCK: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable]\n  responses:\n    - match: [drift]\n      actions: [alert, block]\n";

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("d4c-last-good-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn config(root: &Path, at_start: InvalidAtStart) -> Config {
        Config {
            policy_dir: root.join("policies"),
            last_good_policy_dir: root.join("run/last-good"),
            invalid_policy_at_start: at_start,
            ..Config::default()
        }
    }

    fn blocks(loaded: &Loaded) -> bool {
        loaded.policy.can_block()
    }

    #[test]
    fn a_bad_directory_at_start_enforces_the_last_good_copy() {
        let root = scratch("copy");
        let c = config(&root, InvalidAtStart::Refuse);
        std::fs::create_dir_all(&c.policy_dir).unwrap();
        std::fs::write(c.policy_dir.join("protect.yaml"), BLOCK).unwrap();
        assert!(matches!(
            start_policy(&c),
            Ok(StartPolicy::Loaded(PolicySource::Directory(_), _))
        ));
        save(&c.policy_dir, &c.last_good_policy_dir).unwrap();
        // A bad edit, then a restart: the copy, with the directory's errors to report.
        std::fs::write(c.policy_dir.join("protect.yaml"), "file: [oops\n").unwrap();
        match start_policy(&c) {
            Ok(StartPolicy::LastGood(e, loaded)) => {
                assert!(e.to_string().contains("protect.yaml"), "{e}");
                assert!(blocks(&loaded));
                assert_eq!(loaded.policy.selectors.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        // A bad directory is never saved over the copy.
        assert!(save(&c.policy_dir, &c.last_good_policy_dir).is_err());
        assert!(load_paths(&[&c.last_good_policy_dir]).is_ok());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn without_a_copy_the_configuration_decides() {
        let root = scratch("none");
        let refuse = config(&root, InvalidAtStart::Refuse);
        std::fs::create_dir_all(&refuse.policy_dir).unwrap();
        std::fs::write(refuse.policy_dir.join("a.yaml"), "file: [oops\n").unwrap();
        assert!(start_policy(&refuse).is_err());
        let alert = config(&root, InvalidAtStart::AlertOnly);
        match start_policy(&alert) {
            Ok(StartPolicy::AlertOnly(_, loaded)) => {
                assert!(loaded.policy.audit.all, "every block audited");
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_save_replaces_the_copy_whole() {
        let root = scratch("replace");
        let (src, dest) = (root.join("src"), root.join("dest"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.yaml"), BLOCK).unwrap();
        std::fs::write(src.join("b.yaml"), EMBEDDED_DEFAULT[0].1).unwrap();
        save(&src, &dest).unwrap();
        std::fs::remove_file(src.join("b.yaml")).unwrap();
        save(&src, &dest).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.yaml"], "a removed file is gone from the copy");
        assert!(!root.join("dest.new").exists() && !root.join("dest.old").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
