//! NRI pod and container metadata -> d4c container attributes and cgroup directory.
//!
//! Where each attribute comes from, first match wins:
//!
//! | attribute | source |
//! |---|---|
//! | image | `Container.image.name` (recent runtimes), annotation `io.kubernetes.cri.image-name` (containerd 1.7 / 2.x CRI), annotation `io.kubernetes.cri-o.ImageName` (CRI-O) |
//! | namespace | `PodSandbox.namespace`, annotation `io.kubernetes.cri.sandbox-namespace`, label `io.kubernetes.pod.namespace` |
//! | pod name | `PodSandbox.name`, annotation `io.kubernetes.cri.sandbox-name`, label `io.kubernetes.pod.name` |
//! | labels | `PodSandbox.labels` (the pod's labels; the kubelet adds `io.kubernetes.pod.*`) |
//! | orchestrator | `kubernetes` when a namespace or pod name was found |
//! | cluster id / name | not in NRI: left to the daemon's configuration |
//! | cgroup | `Container.linux.cgroups_path`, see [`super::cgroup_path`] |
//!
//! **Volumes** (for `ignoreVolumeMounts` / `ignoreVolumeFiles`): a mount counts when it is a
//! bind mount (type `bind`, or option `bind`/`rbind`: kubelet volumes, configMap/secret
//! items, `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/dev/termination-log`) and
//! its destination is not runtime plumbing: `/proc`, `/sys` and below, `/dev`, `/dev/shm`,
//! `/dev/mqueue`, `/dev/pts` and below. Kernel filesystems (proc, sysfs, tmpfs, devpts,
//! mqueue, cgroup) are never volumes. A volume is a *file* mount when its host source is a
//! regular file (following symlinks; a missing or unreadable source counts as a directory).
//! Destinations lose trailing `/`; a later mount on the same destination replaces an
//! earlier one; the list is sorted.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use d4c_nri::api::{Container, Mount, PodSandbox};
use d4c_policy::{Container as Attrs, ImageRef, Mount as Volume};

use super::cgroup_path::cgroup_dir;

/// What d4c knows about a container when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// The container-level half of the selectors.
    pub container: Attrs,
    /// Its cgroup v2 directory, when the cgroups path is understood.
    pub cgroup: Option<PathBuf>,
    /// What could not be determined, for the log. A container with missing attributes
    /// still matches the selectors that do not ask for them.
    pub warnings: Vec<String>,
}

const IMAGE_KEYS: [&str; 2] = [
    "io.kubernetes.cri.image-name",
    "io.kubernetes.cri-o.ImageName",
];
const NAMESPACE_ANNOTATION: &str = "io.kubernetes.cri.sandbox-namespace";
const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_ANNOTATION: &str = "io.kubernetes.cri.sandbox-name";
const POD_LABEL: &str = "io.kubernetes.pod.name";

/// Mount destinations that are runtime plumbing, never volumes (with everything below the
/// ones marked `true`).
const PLUMBING: [(&str, bool); 6] = [
    ("/proc", true),
    ("/sys", true),
    ("/dev", false),
    ("/dev/shm", false),
    ("/dev/mqueue", false),
    ("/dev/pts", true),
];

/// The attributes of `container` in `pod`. `cgroup_root` is the cgroup v2 root
/// ([`crate::cgroup::v2_root`]); `is_file` says whether a host path is a regular file
/// ([`host_is_file`] on the host).
pub fn attributes(
    pod: &PodSandbox,
    container: &Container,
    cgroup_root: &Path,
    is_file: impl Fn(&Path) -> bool,
) -> Attributes {
    let mut warnings = Vec::new();
    let image = image(container, &mut warnings);
    let namespace = first(&[
        &pod.namespace,
        lookup(&container.annotations, NAMESPACE_ANNOTATION),
        lookup(&container.labels, NAMESPACE_LABEL),
    ]);
    let pod_name = first(&[
        &pod.name,
        lookup(&container.annotations, POD_ANNOTATION),
        lookup(&container.labels, POD_LABEL),
    ]);
    let orchestrator = (namespace.is_some() || pod_name.is_some()).then(|| "kubernetes".into());
    if orchestrator.is_none() {
        warnings.push(
            "no pod metadata: selectors on namespace, pod name or labels cannot match".into(),
        );
    }
    let cgroups_path = container
        .linux
        .as_ref()
        .map_or("", |l| l.cgroups_path.as_str());
    let cgroup = cgroup_dir(cgroups_path, cgroup_root)
        .map_err(|e| warnings.push(format!("no cgroup: {e}")))
        .ok();
    Attributes {
        container: Attrs {
            image,
            namespace,
            pod_name,
            // containerd adds its own `io.cri-containerd.*` labels to the sandbox; they
            // are not the pod's labels.
            labels: pod
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("io.cri-containerd."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cluster_id: None,
            cluster_name: None,
            orchestrator,
            mounts: volumes(&container.mounts, &is_file),
        },
        cgroup,
        warnings,
    }
}

/// Whether `path` is a regular file on this host; `false` when it is missing.
#[must_use]
pub fn host_is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

fn lookup<'a>(map: &'a std::collections::HashMap<String, String>, key: &str) -> &'a str {
    map.get(key).map_or("", String::as_str)
}

fn first(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|s| !s.is_empty())
        .map(|s| (*s).to_owned())
}

fn image(container: &Container, warnings: &mut Vec<String>) -> Option<ImageRef> {
    let from_field = container.image.as_ref().map_or("", |i| i.name.as_str());
    let annotations = IMAGE_KEYS.map(|k| lookup(&container.annotations, k));
    let Some(name) = first(&[from_field, annotations[0], annotations[1]]) else {
        warnings.push("no image name: image selectors cannot match".into());
        return None;
    };
    if name.starts_with("sha256:") {
        warnings.push(format!(
            "image known only by its id `{name}`: image selectors cannot match"
        ));
        return None;
    }
    ImageRef::parse(&name)
        .map_err(|e| warnings.push(format!("image selectors cannot match: {e}")))
        .ok()
}

fn is_volume(m: &Mount) -> bool {
    let bind = m.type_ == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind");
    let dest = m.destination.trim_end_matches('/');
    let plumbing = PLUMBING.iter().any(|&(p, below)| {
        dest == p || (below && dest.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
    });
    bind && !plumbing && dest.starts_with('/')
}

fn volumes(mounts: &[Mount], is_file: &impl Fn(&Path) -> bool) -> Vec<Volume> {
    let by_destination: BTreeMap<String, bool> = mounts
        .iter()
        .filter(|m| is_volume(m))
        .map(|m| {
            let dest = m.destination.trim_end_matches('/').to_owned();
            (dest, !m.source.is_empty() && is_file(Path::new(&m.source)))
        })
        .collect();
    by_destination
        .into_iter()
        .map(|(destination, file)| Volume { destination, file })
        .collect()
}

#[cfg(test)]
mod tests;
