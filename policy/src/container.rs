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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    pub image: Option<ImageRef>,
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cluster_id: Option<String>,
    pub cluster_name: Option<String>,
    /// `kubernetes` for containers of a pod; `None` for a bare container.
    pub orchestrator: Option<String>,
    pub mounts: Vec<Mount>,
}

impl Container {
    /// The label set in the `key:value` form the policy writes.
    pub fn label_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
