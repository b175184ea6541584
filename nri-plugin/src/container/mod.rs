//! What the daemon knows of a runtime container: the policy's container attributes
//! (image, namespace, pod, labels, volumes) and its cgroup directory, derived from the NRI
//! pod and container ([`attributes`]); and the [`ContainerInfo`] the registry, the alerts
//! and the status socket share.

mod attributes;
mod cgroup_path;

pub use attributes::{attributes, host_is_file, Attributes};
pub use cgroup_path::{cgroup_dir, CgroupPathError};

use std::path::PathBuf;

/// A container as the runtime describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub attrs: d4c_policy::Container,
    /// The container's cgroup v2 id (inode of its cgroup directory).
    pub cgroup_id: u64,
    /// Its cgroup directory as this process sees it, when known (nested cgroups are
    /// found below it).
    pub cgroup_dir: Option<PathBuf>,
}
