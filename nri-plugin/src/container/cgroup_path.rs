//! A container's OCI `cgroupsPath` -> its cgroup v2 directory, whose inode is the cgroup id
//! the kernel reports (`bpf_get_current_cgroup_id`).
//!
//! | `cgroupsPath` | directory under the cgroup v2 root |
//! |---|---|
//! | `/kubepods/besteffort/pod<uid>/<id>` (cgroupfs driver) | `kubepods/besteffort/pod<uid>/<id>` |
//! | `kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>` (systemd) | `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope` |
//! | `:cri-o:<id>` (systemd, no slice) | `system.slice/cri-o-<id>.scope` |
//! | `relative/path` | refused: runc resolves it against its own cgroup, unknowable here |
//!
//! The v2 root is `/sys/fs/cgroup` on unified hosts and `/sys/fs/cgroup/unified` on hybrid
//! ones (runc creates the container's v2 directory there too); [`crate::cgroup::v2_root`]
//! finds it.

use std::path::{Component, Path, PathBuf};

/// Why a `cgroupsPath` does not name a cgroup v2 directory d4c can find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupPathError {
    #[error("the container has no cgroups path")]
    Empty,
    #[error("cgroups path `{path}` is relative: the runtime resolves it against its own cgroup")]
    Relative { path: String },
    #[error("cgroups path `{path}` holds `..` or `.` components")]
    DotComponents { path: String },
    #[error("systemd cgroup name `{name}` is empty or holds `/`")]
    SystemdName { name: String },
    #[error("`{slice}` is not a systemd slice name")]
    SystemdSlice { slice: String },
}

/// The directory of `cgroups_path` under the cgroup v2 root `root`
/// ([`crate::cgroup::v2_root`]); the error says why the path is not understood.
pub fn cgroup_dir(cgroups_path: &str, root: &Path) -> Result<PathBuf, CgroupPathError> {
    let relative = if cgroups_path.is_empty() {
        return Err(CgroupPathError::Empty);
    } else if cgroups_path.starts_with('/') {
        PathBuf::from(cgroups_path.trim_start_matches('/'))
    } else if let [slice, prefix, name] = cgroups_path.split(':').collect::<Vec<_>>()[..] {
        systemd_path(slice, prefix, name)?
    } else {
        return Err(CgroupPathError::Relative {
            path: cgroups_path.to_owned(),
        });
    };
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(CgroupPathError::DotComponents {
            path: cgroups_path.to_owned(),
        });
    }
    Ok(root.join(relative))
}

/// `slice:prefix:name` as runc's systemd driver lays it out.
fn systemd_path(slice: &str, prefix: &str, name: &str) -> Result<PathBuf, CgroupPathError> {
    if name.is_empty() || name.contains('/') {
        return Err(CgroupPathError::SystemdName {
            name: name.to_owned(),
        });
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(slice)?;
    if Path::new(name).extension().is_some_and(|e| e == "slice") {
        path.push(name);
    } else if prefix.is_empty() {
        path.push(format!("{name}.scope"));
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// `a-b-c.slice` -> `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> Result<PathBuf, CgroupPathError> {
    if slice == "-.slice" {
        return Ok(PathBuf::new());
    }
    let bad = || CgroupPathError::SystemdSlice {
        slice: slice.to_owned(),
    };
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if base.is_empty()
        || base.contains('/')
        || base.starts_with('-')
        || base.ends_with('-')
        || base.contains("--")
    {
        return Err(bad());
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_table() {
        let root = Path::new("/sys/fs/cgroup/unified");
        for (input, want) in [
            ("/d4c-test-1/pod-a/ctr1", Ok("d4c-test-1/pod-a/ctr1")),
            ("/kubepods/besteffort/pod12/abc", Ok("kubepods/besteffort/pod12/abc")),
            (
                "kubepods-besteffort-pod12.slice:cri-containerd:abc",
                Ok("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"),
            ),
            ("kubepods.slice:crio:abc", Ok("kubepods.slice/crio-abc.scope")),
            (":cri-o:abc", Ok("system.slice/cri-o-abc.scope")),
            ("-.slice::abc", Ok("abc.scope")),
            ("machine.slice:libpod:x.slice", Ok("machine.slice/x.slice")),
            ("", Err("no cgroups path")),
            ("kubepods/abc", Err("relative")),
            ("/a/../../etc", Err("`..`")),
            ("bad-.slice:p:n", Err("not a systemd slice")),
            ("kubepods:p:n", Err("not a systemd slice")),
            ("k.slice:p:a/b", Err("holds `/`")),
        ] {
            let got = cgroup_dir(input, root);
            match (got, want) {
                (Ok(p), Ok(w)) => assert_eq!(p, root.join(w), "{input}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }
}
