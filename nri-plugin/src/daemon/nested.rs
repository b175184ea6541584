//! Alerts from nested cgroups: a container may create cgroups of its own (systemd inside a
//! container, a CI runner); the kernel enforces there with the container's rule set (the
//! entry is inherited at `cgroup_mkdir`), and this finds which container holds such a
//! cgroup, so that its alerts still name the pod and image. The kernel's records carry the
//! container's cgroup id (the entry's `owner`); this search is the fallback for a record
//! whose entry was already gone when it was written.

use super::owner::Handle;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Directories visited per search at most (a container's own cgroup tree is small).
const SEARCH_BUDGET: usize = 4096;
/// Cgroups remembered; cgroup ids are never reused, so entries never go stale (an owner
/// that was removed is simply not found any more).
const CACHE_MAX: usize = 4096;

/// Nested cgroup id -> the cgroup id of the registered container holding it, or `None`
/// when none does (remembered too: a busy unknown cgroup must not cost a walk per event).
#[derive(Default)]
pub struct NestedOwners {
    cache: HashMap<u64, Option<u64>>,
}

impl NestedOwners {
    /// The cgroup id of the registered container whose cgroup directory holds the cgroup
    /// `id`, if any.
    pub async fn owner(&mut self, handle: &Handle, id: u64) -> Option<u64> {
        if let Some(owner) = self.cache.get(&id) {
            return *owner;
        }
        let snap = handle.status().await.ok()?;
        let dirs: Vec<(u64, PathBuf)> = snap
            .containers
            .into_iter()
            .filter_map(|c| Some((c.cgroup_id, c.cgroup_dir?)))
            .collect();
        let owner = tokio::task::spawn_blocking(move || {
            dirs.into_iter()
                .find(|(_, dir)| holds(dir, id, SEARCH_BUDGET))
                .map(|(owner, _)| owner)
        })
        .await
        .ok()?;
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(id, owner);
        owner
    }
}

/// Whether a directory strictly below `dir` has inode `id` (a cgroup v2 id), visiting at
/// most `budget` directories.
#[must_use]
pub fn holds(dir: &Path, id: u64, budget: usize) -> bool {
    crate::cgroup::descendants(dir, budget)
        .0
        .iter()
        .any(|(d, _)| *d == id)
}

#[cfg(test)]
mod tests {
    use super::holds;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn finds_a_directory_below_by_inode_within_the_budget() {
        let root = std::env::temp_dir().join(format!("d4c-nested-{}", std::process::id()));
        let deep = root.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        std::fs::write(root.join("a/file"), "").unwrap();
        let id = std::fs::metadata(&deep).unwrap().ino();
        assert!(holds(&root, id, 100));
        assert!(!holds(&root.join("x"), id, 100), "not below x");
        assert!(!holds(&deep, id, 100), "strictly below only");
        let file_id = std::fs::metadata(root.join("a/file")).unwrap().ino();
        assert!(!holds(&root, file_id, 100), "files are not cgroups");
        assert!(!holds(&root, id, 1), "budget exhausted");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
