//! The NRI side of the daemon: runtime pods and containers turned into registrations.
//! A start is answered only once the container's cgroup is in the kernel map (or refused
//! when that fails and a blocking policy covers it).

use super::owner::Handle;
use super::registry::{RegistryError, Started};
use crate::container::{self, ContainerInfo};
use crate::metrics::Metrics;
use d4c_nri::api::{Container, PodSandbox};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// What the handler needs besides the runtime's data.
pub struct NriHandler {
    pub handle: Handle,
    pub metrics: Arc<Metrics>,
    pub cluster_id: Option<String>,
    pub cluster_name: Option<String>,
    /// The cgroup v2 root the runtime's cgroup paths are under.
    pub cgroup_root: PathBuf,
}

impl NriHandler {
    /// The registry's view of a runtime container. A container whose cgroup cannot be
    /// found gets cgroup id 0, which the registry treats as "cannot register".
    fn info(&self, pod: &PodSandbox, c: &Container) -> ContainerInfo {
        let a = container::attributes(pod, c, &self.cgroup_root, container::host_is_file);
        for w in &a.warnings {
            tracing::warn!(container = %c.id, pod = %pod.name, namespace = %pod.namespace, "{w}");
        }
        let mut attrs = a.container;
        attrs.cluster_id.clone_from(&self.cluster_id);
        attrs.cluster_name.clone_from(&self.cluster_name);
        let cgroup_id = a
            .cgroup
            .as_deref()
            .and_then(|d| crate::cgroup::id(d).ok())
            .unwrap_or(0);
        ContainerInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            attrs,
            cgroup_id,
            cgroup_dir: a.cgroup,
        }
    }

    fn log(&self, info: &ContainerInfo, outcome: &Result<Started, RegistryError>) {
        let (ns, pod) = (
            info.attrs.namespace.as_deref().unwrap_or("-"),
            info.attrs.pod_name.as_deref().unwrap_or("-"),
        );
        match outcome {
            Ok(Started::Protected { rule_set }) => {
                tracing::info!(container = %info.id, name = %info.name, namespace = ns, pod, rule_set, "protected");
            }
            Ok(Started::NoPolicy) => {
                tracing::info!(container = %info.id, name = %info.name, namespace = ns, pod, "no policy applies");
            }
            Ok(Started::Unprotected { reason }) => {
                tracing::warn!(container = %info.id, name = %info.name, namespace = ns, pod, reason = %reason, "running WITHOUT alerts: registration failed");
            }
            Err(e) => {
                self.metrics
                    .refused_containers
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(container = %info.id, name = %info.name, namespace = ns, pod, error = %e, "start refused");
            }
        }
    }
}

impl d4c_nri::Handler for NriHandler {
    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> Result<(), String> {
        let t = Instant::now();
        let infos: Vec<ContainerInfo> = containers
            .iter()
            .filter_map(|c| {
                pods.iter()
                    .find(|p| p.id == c.pod_sandbox_id)
                    .map(|p| self.info(p, c))
            })
            .collect();
        let n = infos.len();
        // The NRI reply is text: the registry's typed errors are written out here, once.
        let outcomes = self
            .handle
            .synchronize(infos)
            .await
            .map_err(|e| e.to_string())?;
        for (id, r) in &outcomes {
            if let Err(e) = r {
                tracing::error!(container = %id, error = %e, "a running container could not be protected");
            }
        }
        self.metrics
            .nri_request("Synchronize", t.elapsed().as_secs_f64());
        tracing::info!(containers = n, "synchronized with the runtime");
        Ok(())
    }

    async fn start_container(&self, pod: &PodSandbox, c: &Container) -> Result<(), String> {
        let t = Instant::now();
        let info = self.info(pod, c);
        let outcome = self.handle.start(info.clone()).await;
        self.log(&info, &outcome);
        self.metrics
            .nri_request("StartContainer", t.elapsed().as_secs_f64());
        outcome.map(|_| ()).map_err(|e| format!("d4c: {e}"))
    }

    async fn remove_container(&self, _pod: &PodSandbox, c: &Container) {
        let t = Instant::now();
        self.handle.remove(c.id.clone()).await;
        self.metrics
            .nri_request("RemoveContainer", t.elapsed().as_secs_f64());
    }
}
