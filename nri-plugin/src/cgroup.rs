//! cgroup v2 helpers: find the unified hierarchy, create a child group, read its id (the
//! inode number the kernel reports as the cgroup id), empty and remove it.

use std::io;
use std::path::{Path, PathBuf};

/// The mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones), from `/proc/self/mountinfo`.
pub fn v2_root() -> io::Result<PathBuf> {
    let info = std::fs::read_to_string(crate::paths::MOUNTINFO)?;
    v2_root_in(&info).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no cgroup2 file system is mounted (check /proc/self/mountinfo)",
        )
    })
}

/// The first cgroup2 mount point in a mountinfo text.
fn v2_root_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| PathBuf::from(left.split_whitespace().nth(4).unwrap_or("/")))
    })
}

/// The cgroup id of the cgroup v2 directory `path`: its inode number, which the kernel
/// reports as the cgroup id (`bpf_get_current_cgroup_id`).
pub fn id(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata(path)?.ino())
}

/// Whether a cgroup directory has processes (`cgroup.procs` not empty); unreadable counts
/// as yes.
#[must_use]
pub fn has_processes(dir: &Path) -> bool {
    std::fs::read(dir.join("cgroup.procs")).map_or(true, |procs| !procs.is_empty())
}

/// The cgroup ids (inode numbers) and directories strictly below `dir`, visiting at most
/// `budget` directories; the flag is false when the budget ran out first.
#[must_use]
pub fn descendants(dir: &Path, mut budget: usize) -> (Vec<(u64, PathBuf)>, bool) {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if budget == 0 {
                return (out, false);
            }
            budget -= 1;
            if let Ok(m) = e.metadata() {
                out.push((m.ino(), e.path()));
            }
            stack.push(e.path());
        }
    }
    (out, true)
}

/// A cgroup this process created; removed (after killing what is left in it) on drop.
#[derive(Debug)]
pub struct OwnedCgroup {
    path: PathBuf,
}

impl OwnedCgroup {
    /// Creates `root/name`.
    pub fn create(root: &Path, name: &str) -> io::Result<Self> {
        let path = root.join(name);
        std::fs::create_dir(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create cgroup {}: {e}", path.display()),
            )
        })?;
        Ok(OwnedCgroup { path })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> io::Result<u64> {
        id(&self.path)
    }

    /// The `cgroup.procs` file; writing `0` to it moves the writing process in.
    #[must_use]
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Kills every process left in the group and its children (cgroup.kill, or SIGKILL
    /// to each listed pid on kernels before 5.14), then waits briefly for them to go.
    pub fn kill_all(&self) {
        if std::fs::write(self.path.join("cgroup.kill"), "1").is_err() {
            for dir in walk(&self.path) {
                if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                        // SAFETY: kill(2) with a pid read from cgroup.procs; no memory involved.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        for _ in 0..100 {
            let empty = walk(&self.path).iter().all(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .map_or(true, |s| s.trim().is_empty())
            });
            if empty {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// `dir` and every cgroup below it, deepest first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out.push(dir.to_owned());
    out
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for d in walk(&self.path) {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unified_mount() {
        let hybrid = "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            v2_root_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(v2_root_in("1 2 0:1 / /proc rw - proc proc rw\n"), None);
    }

    #[test]
    fn ids_are_inodes() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let got = id(dir.path()).unwrap();
        assert_eq!(got, std::fs::metadata(dir.path()).unwrap().ino());
        assert!(id(&dir.path().join("missing")).is_err());
    }
}
