//! Guards for containers the daemon has not registered yet: each configured pod cgroup
//! parent (kubelet's `kubepods` / `kubepods.slice`) that exists is registered under the
//! rule set of a container with no known attributes, so the kernel applies it to every
//! container created below it from its first instruction, with or without a running
//! daemon, until `StartContainer` or Synchronize registers the container under its own.
//! Registered at start, before the runtime connects; a parent that appears later (kubelet
//! started after d4c) is guarded when [`keep_guarding`] next looks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use d4c_policy::Container;

use super::owner::Handle;
use super::registry::Started;
use crate::container::ContainerInfo;

/// How often [`keep_guarding`] looks for parents that are not guarded yet.
pub const RETRY: Duration = Duration::from_secs(10);

/// The registry id of the guard of `parent` (relative to the cgroup v2 root).
#[must_use]
pub fn guard_id(parent: &Path) -> String {
    format!("unregistered:{}", parent.display())
}

/// Registers a guard for every parent in `parents` that exists under `cgroup_root`;
/// returns those that are guarded now. Those that do not exist are logged (`quiet`: at
/// debug level, for the retries).
pub async fn register(
    handle: &Handle,
    cgroup_root: &Path,
    parents: &[PathBuf],
    quiet: bool,
) -> Vec<PathBuf> {
    let mut guarded = Vec::new();
    for parent in parents {
        let dir = cgroup_root.join(parent);
        let Ok(meta) = std::fs::metadata(&dir) else {
            if quiet {
                tracing::debug!(dir = %dir.display(), "no pod cgroup parent here yet");
            } else {
                tracing::info!(dir = %dir.display(), "no pod cgroup parent here; it is guarded once it appears");
            }
            continue;
        };
        let info = ContainerInfo {
            id: guard_id(parent),
            name: "containers not registered yet".into(),
            attrs: Container::default(),
            cgroup_id: std::os::unix::fs::MetadataExt::ino(&meta),
            cgroup_dir: Some(dir.clone()),
        };
        match handle.guard(info).await {
            Ok(Started::Protected { rule_set }) => {
                guarded.push(parent.clone());
                tracing::info!(dir = %dir.display(), rule_set, "guarding containers not registered yet with the policy for a container without attributes");
            }
            Ok(Started::NoPolicy) => {
                guarded.push(parent.clone());
                tracing::info!(dir = %dir.display(), "no policy applies to a container without attributes; nothing to guard");
            }
            Ok(Started::Unprotected { reason }) => {
                tracing::error!(dir = %dir.display(), %reason, "could not guard containers not registered yet: those started while no daemon runs are unenforced until the next Synchronize");
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "could not guard containers not registered yet: those started while no daemon runs are unenforced until the next Synchronize");
            }
        }
    }
    if guarded.is_empty() && !parents.is_empty() && !quiet {
        tracing::warn!(parents = ?parents, "no pod cgroup parent is guarded yet: a container started while no daemon is connected runs unenforced until the next Synchronize (podCgroupParents)");
    }
    guarded
}

/// Every `every`, guards the parents of `parents` not guarded yet (`done` are), until all
/// are.
pub async fn keep_guarding(
    handle: Handle,
    cgroup_root: PathBuf,
    parents: Vec<PathBuf>,
    mut done: Vec<PathBuf>,
    every: Duration,
) {
    loop {
        let missing: Vec<PathBuf> = parents
            .iter()
            .filter(|p| !done.contains(p))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        tokio::time::sleep(every).await;
        done.extend(register(&handle, &cgroup_root, &missing, true).await);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::daemon::{kernel::MemoryKernel, owner, registry::Registry};

    #[tokio::test]
    async fn a_parent_that_appears_later_is_guarded() {
        let root = tempfile::tempdir().unwrap();
        let policy = d4c_policy::load_str(
            "p.yaml",
            "file:\n  selectors:\n    - name: s\n      operation: [createExecutable]\n  responses:\n    - match: [s]\n      actions: [alert, block]\n",
        )
        .unwrap()
        .policy;
        let handle = owner::spawn(Registry::new(MemoryKernel::default(), Arc::new(policy)));
        let parents = vec![PathBuf::from("kubepods")];
        let done = register(&handle, root.path(), &parents, false).await;
        assert!(done.is_empty(), "nothing to guard yet");
        let task = tokio::spawn(keep_guarding(
            handle.clone(),
            root.path().to_owned(),
            parents,
            done,
            Duration::from_millis(20),
        ));
        std::fs::create_dir(root.path().join("kubepods")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("guarded within 5 s")
            .unwrap();
        let status = handle.status().await.unwrap();
        assert!(
            status
                .containers
                .iter()
                .any(|c| c.guard && c.id == "unregistered:kubepods" && c.rule_set.is_some()),
            "{:?}",
            status.containers.iter().map(|c| &c.id).collect::<Vec<_>>()
        );
    }
}
