//! End-to-end: a minimal plugin built on `d4c-nri` registers with a real containerd 1.7,
//! sees `StartContainer` for a real pod (labels, image, cgroup path), and refuses a start.
//! Needs root and containerd with NRI (`tests/containerd/setup.sh`); skips otherwise.

mod containerd_support;

use std::{path::PathBuf, sync::Arc, time::Instant};

use containerd_support::pods::{container_config, sandbox_config, SLEEP};
use containerd_support::{cgroup2_root, skip_reason, unique_id, Containerd};
use d4c::container::{attributes, host_is_file, Attributes};
use d4c_nri::{
    api::{Container, PodSandbox},
    Handler, PluginConfig,
};
use k8s_cri::v1::{
    CreateContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest,
};
use tokio::sync::{mpsc, oneshot};

/// What the plugin saw at `StartContainer`.
#[derive(Debug)]
struct Started {
    pod: PodSandbox,
    container: Container,
    attrs: Attributes,
}

/// Records synchronize and `StartContainer`; refuses containers named `refuse*`.
struct Probe {
    synced: mpsc::UnboundedSender<usize>,
    started: mpsc::UnboundedSender<Started>,
}

impl Handler for Probe {
    async fn synchronize(
        &self,
        _pods: Vec<PodSandbox>,
        ctrs: Vec<Container>,
    ) -> Result<(), String> {
        let _ = self.synced.send(ctrs.len());
        Ok(())
    }

    async fn start_container(&self, pod: &PodSandbox, ctr: &Container) -> Result<(), String> {
        let attrs = attributes(pod, ctr, &cgroup2_root(), host_is_file);
        let refuse = ctr.name.starts_with("refuse");
        let _ = self.started.send(Started {
            pod: pod.clone(),
            container: ctr.clone(),
            attrs,
        });
        if refuse {
            return Err("d4c refuses: no protection possible".into());
        }
        Ok(())
    }
}

/// Checks what the plugin saw for container `cid`: pod, image, labels, volumes, and a
/// cgroup directory that holds the container's process. Returns it and its id.
fn check_started(seen: &Started, ctd: &Containerd, cid: &str) -> (PathBuf, u64) {
    assert_eq!(
        (seen.pod.namespace.as_str(), seen.pod.name.as_str()),
        ("d4c-e2e", "web")
    );
    assert_eq!(seen.container.id, cid);
    assert!(
        seen.container.pid > 0,
        "the process exists at StartContainer"
    );
    let a = &seen.attrs;
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let image = a.container.image.as_ref().unwrap();
    assert_eq!(image.full_names()[0], "docker.io/d4c/busybox");
    assert_eq!(
        a.container.labels.get("tier").map(String::as_str),
        Some("front")
    );
    assert_eq!(a.container.orchestrator.as_deref(), Some("kubernetes"));
    assert!(
        a.container
            .mounts
            .iter()
            .any(|m| m.destination == "/etc/hosts" && m.file),
        "{:?}",
        a.container.mounts
    );
    let cgroup = a.cgroup.clone().unwrap();
    let want = cgroup2_root().join(format!("{}/web/{cid}", &ctd.cgroup_base[1..]));
    assert_eq!(cgroup, want);
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p == seen.container.pid.to_string()),
        "{procs}"
    );
    let id = d4c::cgroup::id(&cgroup).unwrap();
    (cgroup, id)
}

type PluginTask = tokio::task::JoinHandle<Result<(), d4c_nri::Error>>;

/// Runs a `Probe` plugin on `ctd`'s NRI socket until the returned sender fires.
fn start_plugin(
    ctd: &Containerd,
) -> (
    mpsc::UnboundedReceiver<usize>,
    mpsc::UnboundedReceiver<Started>,
    oneshot::Sender<()>,
    PluginTask,
) {
    let (synced_tx, synced) = mpsc::unbounded_channel();
    let (started_tx, started) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        synced: synced_tx,
        started: started_tx,
    });
    let mut config = PluginConfig::external("d4c-e2e", "10", ctd.nri_socket()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let plugin = tokio::spawn(async move {
        d4c_nri::run(&mut config, probe, async {
            let _ = stopped.await;
        })
        .await
    });
    (synced, started, stop, plugin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_sees_a_real_pod_start_and_can_refuse_one() {
    if skip_reason().is_some() {
        return;
    }
    let id = unique_id();
    let t0 = Instant::now();
    let ctd = Containerd::start(&id);
    let t_ready = t0.elapsed();

    let (mut synced, mut started, stop, plugin) = start_plugin(&ctd);
    let limit = std::time::Duration::from_secs(10);
    let n = tokio::time::timeout(limit, synced.recv())
        .await
        .expect("synchronize")
        .unwrap();
    assert_eq!(n, 0, "a fresh containerd has no containers");
    let t_registered = t0.elapsed();

    let mut cri = ctd.cri().await;
    let sandbox = sandbox_config(&ctd, "web", "d4c-e2e", &[("app", "web"), ("tier", "front")]);
    let pod_id = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log()))
        .into_inner()
        .pod_sandbox_id;
    let create = |name: &str| CreateContainerRequest {
        pod_sandbox_id: pod_id.clone(),
        config: Some(container_config(name, &SLEEP)),
        sandbox_config: Some(sandbox.clone()),
    };
    let t_start = Instant::now();
    let cid = cri
        .create_container(create("app"))
        .await
        .unwrap()
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest {
        container_id: cid.clone(),
    })
    .await
    .unwrap();
    let t_started = t_start.elapsed();

    let seen = started
        .try_recv()
        .expect("StartContainer reached the plugin before it returned");
    let (cgroup, cgroup_id) = check_started(&seen, &ctd, &cid);

    // A start the plugin refuses fails in CRI with the plugin's reason.
    let refused = cri
        .create_container(create("refuse-me"))
        .await
        .unwrap()
        .into_inner()
        .container_id;
    let err = cri
        .start_container(StartContainerRequest {
            container_id: refused,
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("d4c refuses"), "{err:?}");
    assert_eq!(started.try_recv().unwrap().container.name, "refuse-me");

    println!(
        "containerd {t_ready:?}; plugin synchronized at {t_registered:?}; create+start {t_started:?}; \
         cgroup {} id {cgroup_id}",
        cgroup.display()
    );
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .unwrap();
    let _ = stop.send(());
    tokio::time::timeout(limit, plugin)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        !cgroup.exists(),
        "the container's cgroup is gone after removal"
    );
    drop(ctd);
}
