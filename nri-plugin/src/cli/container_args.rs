//! The container flags shared by `eval`, `explain` and `exec`, turned into a [`Container`].

use d4c_policy::{Container, ImageRef, Mount};

/// Attributes of the container an event happens in.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ContainerArgs {
    /// Image reference as the runtime reports it, e.g. `docker.io/library/nginx:1.25`.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Kubernetes namespace of the pod.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Name of the pod.
    #[arg(long, value_name = "NAME")]
    pub pod_name: Option<String>,
    /// A pod label, `KEY=VALUE` (the policy writes it `key:value`); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Cluster id (the UID of the `kube-system` namespace).
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// Cluster name.
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// A directory volume mounted at DEST in the container; repeatable.
    #[arg(long = "mount", value_name = "DEST")]
    pub mounts: Vec<String>,
    /// A single-file volume (configMap/secret item) mounted at DEST; repeatable.
    #[arg(long = "file-mount", value_name = "DEST")]
    pub file_mounts: Vec<String>,
    /// Orchestrator type; defaults to `kubernetes` when any pod attribute is given.
    #[arg(long, value_name = "TYPE")]
    pub orchestrator: Option<String>,
}

impl ContainerArgs {
    /// The container these flags describe, or a message saying which flag is wrong.
    pub fn to_container(&self) -> Result<Container, String> {
        let image = match &self.image {
            Some(r) => Some(ImageRef::parse(r).map_err(|e| format!("--image: {e}"))?),
            None => None,
        };
        let mut c = Container {
            image,
            namespace: self.namespace.clone(),
            pod_name: self.pod_name.clone(),
            cluster_id: self.cluster_id.clone(),
            cluster_name: self.cluster_name.clone(),
            ..Container::default()
        };
        for l in &self.labels {
            let (k, v) = l.split_once('=').ok_or_else(|| {
                format!("--label `{l}`: write KEY=VALUE (KEY= for an empty value)")
            })?;
            if k.is_empty() {
                return Err(format!("--label `{l}`: the key is empty"));
            }
            c.labels.insert(k.to_owned(), v.to_owned());
        }
        for (list, file) in [(&self.mounts, false), (&self.file_mounts, true)] {
            for m in list {
                if !m.starts_with('/') {
                    return Err(format!(
                        "--mount `{m}`: the destination must be an absolute path"
                    ));
                }
                c.mounts.push(Mount {
                    destination: m.clone(),
                    file,
                });
            }
        }
        let in_pod = c.namespace.is_some() || c.pod_name.is_some() || !c.labels.is_empty();
        c.orchestrator = self
            .orchestrator
            .clone()
            .or_else(|| in_pod.then(|| "kubernetes".to_owned()));
        Ok(c)
    }
}
