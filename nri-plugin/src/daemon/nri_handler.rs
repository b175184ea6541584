//! The NRI side of the daemon: runtime pods and containers turned into registrations.
//! A start is answered only once the container's cgroup is in the kernel map (or refused
//! when that fails and a blocking policy covers it).

use super::owner::Handle;
use super::registry::{RegistryError, Started};
use crate::container::{self, ContainerInfo};
use crate::metrics::Metrics;
use d4c_nri::api::{Container, PodSandbox};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The NRI request timeout runtimes use unless configured otherwise (containerd, CRI-O).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a start may wait for its registration: three quarters of the runtime's
/// request timeout, so that a start the registry cannot answer in time is refused (the
/// runtime fails it, the kubelet retries) rather than dropped with the plugin (the runtime
/// would start it without d4c).
fn answer_within(request_timeout: Duration) -> Duration {
    request_timeout * 3 / 4
}

/// What the handler needs besides the runtime's data.
pub struct NriHandler {
    pub handle: Handle,
    pub metrics: Arc<Metrics>,
    pub cluster_id: Option<String>,
    pub cluster_name: Option<String>,
    /// The cgroup v2 root the runtime's cgroup paths are under.
    pub cgroup_root: PathBuf,
    /// How long a start may wait for its registration, in milliseconds ([`answer_within`]
    /// of the runtime's request timeout).
    pub answer_within_ms: AtomicU64,
}

impl NriHandler {
    /// A handler answering within [`answer_within`] of the default request timeout until
    /// the runtime says its own.
    #[must_use]
    pub fn new(
        handle: Handle,
        metrics: Arc<Metrics>,
        cluster: (Option<String>, Option<String>),
        cgroup_root: PathBuf,
    ) -> Self {
        NriHandler {
            handle,
            metrics,
            cluster_id: cluster.0,
            cluster_name: cluster.1,
            cgroup_root,
            answer_within_ms: AtomicU64::new(
                u64::try_from(answer_within(DEFAULT_REQUEST_TIMEOUT).as_millis()).unwrap_or(1500),
            ),
        }
    }
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
    fn configured(&self, request_timeout: Option<Duration>) {
        let within = answer_within(request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT));
        self.answer_within_ms.store(
            u64::try_from(within.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

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
        let within = Duration::from_millis(self.answer_within_ms.load(Ordering::Relaxed));
        let outcome = match tokio::time::timeout(within, self.handle.start(info.clone())).await {
            Ok(outcome) => outcome,
            // The registration may still happen; the runtime fails this start, and the
            // container's removal unregisters it.
            Err(_) => Err(RegistryError::Busy { within }),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use d4c_nri::Handler as _;

    #[tokio::test]
    async fn a_start_the_registry_cannot_answer_in_time_is_refused() {
        let (handle, _owner) = super::super::owner::stalled();
        let metrics = Arc::new(Metrics::default());
        let h = NriHandler::new(handle, metrics.clone(), (None, None), "/nonexistent".into());
        // The runtime's timeout is 400 ms: the start is refused after 300 ms.
        h.configured(Some(Duration::from_millis(400)));
        let pod = PodSandbox {
            id: "p".into(),
            name: "web".into(),
            namespace: "prod".into(),
            ..PodSandbox::default()
        };
        let c = Container {
            id: "c".into(),
            pod_sandbox_id: "p".into(),
            name: "app".into(),
            ..Container::default()
        };
        let t = Instant::now();
        let err = h.start_container(&pod, &c).await.unwrap_err();
        let took = t.elapsed();
        assert!(
            err.contains("could not register the container within 300ms"),
            "{err}"
        );
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(
            took < Duration::from_millis(400),
            "answered before the runtime gives up: {took:?}"
        );
        assert_eq!(metrics.refused_containers.load(Ordering::Relaxed), 1);
    }
}
