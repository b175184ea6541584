//! Pods and containers through CRI for the end-to-end tests: host-network pods under the
//! test's absolute cgroup parent, running the busybox test image.

use super::Containerd;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub type Cri = RuntimeServiceClient<Channel>;

fn host_network() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        ..Default::default()
    }
}

/// The command of a container that only stays up (for `ExecSync`).
pub const SLEEP: [&str; 2] = ["/bin/sleep", "2147483647"];

/// A container of the busybox test image running `command`.
pub fn container_config(name: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "docker.io/d4c/busybox:1".into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        log_path: format!("{name}.log"),
        labels: HashMap::from([("io.kubernetes.container.name".into(), name.into())]),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(host_network()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A host-network pod `name` in namespace `namespace` with `labels`, under the test's
/// cgroup parent.
pub fn sandbox_config(
    ctd: &Containerd,
    name: &str,
    namespace: &str,
    labels: &[(&str, &str)],
) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", super::unique_id()),
            namespace: namespace.into(),
            attempt: 0,
        }),
        log_directory: ctd.scratch.join("logs").to_string_lossy().into_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/{name}", ctd.cgroup_base),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(host_network()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A running pod and its sandbox config (containers are created in it).
pub struct Pod {
    pub id: String,
    pub config: PodSandboxConfig,
}

impl Pod {
    pub async fn run(
        cri: &mut Cri,
        ctd: &Containerd,
        name: &str,
        namespace: &str,
        labels: &[(&str, &str)],
    ) -> Pod {
        let config = sandbox_config(ctd, name, namespace, labels);
        let id = cri
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log()))
            .into_inner()
            .pod_sandbox_id;
        Pod { id, config }
    }

    /// Creates a container of the busybox test image; returns its id.
    pub async fn create(&self, cri: &mut Cri, name: &str, command: &[&str]) -> String {
        self.create_config(cri, container_config(name, command))
            .await
    }

    /// Creates a container from a full config; returns its id.
    pub async fn create_config(&self, cri: &mut Cri, config: ContainerConfig) -> String {
        // Boxed: the request future is large (about 16 KiB), and every caller awaits it.
        Box::pin(cri.create_container(CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        }))
        .await
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"))
        .into_inner()
        .container_id
    }

    /// Starts a created container.
    pub async fn start(cri: &mut Cri, id: &str) -> Result<(), tonic::Status> {
        cri.start_container(StartContainerRequest {
            container_id: id.to_owned(),
        })
        .await
        .map(|_| ())
    }

    pub async fn remove(self, cri: &mut Cri) {
        let _ = cri
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: self.id.clone(),
            })
            .await;
        let _ = cri
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: self.id,
            })
            .await;
    }
}

/// What an `ExecSync` returned.
#[derive(Debug)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` in a running container through CRI `ExecSync` (`timeout` seconds at most).
pub async fn exec_sync(
    cri: &mut Cri,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<ExecResult, tonic::Status> {
    let r = cri
        .exec_sync(ExecSyncRequest {
            container_id: id.to_owned(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
            timeout,
        })
        .await?
        .into_inner();
    Ok(ExecResult {
        exit_code: r.exit_code,
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
    })
}

/// Polls CRI `ContainerStatus` until the container has exited; returns its exit code
/// (panics after `limit`).
pub async fn wait_exit(cri: &mut Cri, id: &str, limit: Duration) -> i32 {
    let t = Instant::now();
    loop {
        let status = cri
            .container_status(ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
            .into_inner()
            .status
            .unwrap_or_else(|| panic!("ContainerStatus {id}: no status"));
        if status.state == ContainerState::ContainerExited as i32 {
            return status.exit_code;
        }
        assert!(
            t.elapsed() < limit,
            "container {id} still not exited after {limit:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
