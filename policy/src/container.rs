//! What d4c knows about a container when it starts: the container-level half of a selector.

use crate::image::ImageRef;
use std::collections::BTreeMap;

/// A volume mounted into the container, as the container sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mount {
    /// Absolute path inside the container, without a trailing `/`.
    pub destination: String,
    /// A single file mounted (configMap/secret items, `/etc/hosts`), not a directory.
    pub file: bool,
}

/// Container attributes. Absent attributes match no condition on them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Container {
    /// The image it runs.
    pub image: Option<ImageRef>,
    /// Its pod's namespace.
    pub namespace: Option<String>,
    /// Its pod's name.
    pub pod_name: Option<String>,
    /// Its pod's labels.
    pub labels: BTreeMap<String, String>,
    /// The cluster's id (from the daemon's configuration).
    pub cluster_id: Option<String>,
    /// The cluster's name (from the daemon's configuration).
    pub cluster_name: Option<String>,
    /// `kubernetes` for containers of a pod; `None` for a bare container.
    pub orchestrator: Option<String>,
    /// Its volume mounts, sorted by destination.
    pub mounts: Vec<Mount>,
}

impl Container {
    /// The label set in the `key:value` form the policy writes.
    pub fn label_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
