//! Guards for containers the daemon has not registered yet: at start, each configured pod
//! cgroup parent (kubelet's `kubepods` / `kubepods.slice`) that exists is registered under
//! the rule set of a container with no known attributes, so the kernel applies it to every
//! container created below it from its first instruction, with or without a running
//! daemon, until `StartContainer` or Synchronize registers the container under its own.

use std::path::Path;

use d4c_policy::Container;

use super::owner::Handle;
use super::registry::Started;
use crate::container::ContainerInfo;

/// The registry id of the guard of `parent` (relative to the cgroup v2 root).
#[must_use]
pub fn guard_id(parent: &Path) -> String {
    format!("unregistered:{}", parent.display())
}

/// Registers a guard for every parent in `parents` that exists under `cgroup_root`;
/// returns how many are in place. A parent that does not exist is logged: containers
/// started below it while no daemon runs are not guarded.
pub async fn register(
    handle: &Handle,
    cgroup_root: &Path,
    parents: &[std::path::PathBuf],
) -> usize {
    let mut guarded = 0;
    for parent in parents {
        let dir = cgroup_root.join(parent);
        let Ok(meta) = std::fs::metadata(&dir) else {
            tracing::info!(dir = %dir.display(), "no pod cgroup parent here; nothing to guard");
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
                guarded += 1;
                tracing::info!(dir = %dir.display(), rule_set, "guarding containers not registered yet with the policy for a container without attributes");
            }
            Ok(Started::NoPolicy) => {
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
    if guarded == 0 && !parents.is_empty() {
        tracing::warn!(parents = ?parents, "no pod cgroup parent is guarded: a container started while no daemon is connected runs unenforced until the next Synchronize (podCgroupParents)");
    }
    guarded
}
