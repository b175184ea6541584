//! The one task that owns the registry (and through it the kernel maps). Other tasks send
//! it commands and wait for the reply, so nothing shares the maps behind a lock.

use super::kernel::KernelState;
use super::registry::{Registry, RegistryError, Started};
use crate::container::ContainerInfo;
use d4c_policy::Policy;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// A request to the owner task.
pub enum Command {
    Start(
        Box<ContainerInfo>,
        oneshot::Sender<Result<Started, RegistryError>>,
    ),
    Guard(
        Box<ContainerInfo>,
        oneshot::Sender<Result<Started, RegistryError>>,
    ),
    Remove(String),
    Synchronize(Vec<ContainerInfo>, oneshot::Sender<Vec<Outcome>>),
    Reload(Arc<Policy>, oneshot::Sender<Result<u64, RegistryError>>),
    Lookup(
        u64,
        oneshot::Sender<Option<(ContainerInfo, Arc<Policy>, u64)>>,
    ),
    Status(oneshot::Sender<Snapshot>),
}

/// One container's answer to a Synchronize: its id and how its registration went.
pub type Outcome = (String, Result<Started, RegistryError>);

/// What `d4c status` shows of a running daemon.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub policy_revision: u64,
    pub rule_sets: usize,
    pub containers: Vec<ContainerStatus>,
    pub kernel_counters: Option<Vec<u64>>,
    /// Where the daemon pinned its programs and maps (`None`: `enforcement: none`).
    #[serde(default)]
    pub bpffs: Option<std::path::PathBuf>,
    /// Previous builds' programs still attached (an upgrade waiting for Synchronize).
    #[serde(default)]
    pub previous_builds: usize,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub image: Option<String>,
    pub labels: Vec<String>,
    pub cgroup_id: u64,
    /// `None`: no policy applies to it.
    pub rule_set: Option<u32>,
    /// A pod cgroup parent guarding containers not registered yet, not a container.
    #[serde(default)]
    pub guard: bool,
    /// Its cgroup directory as the daemon sees it, when known.
    #[serde(default)]
    pub cgroup_dir: Option<std::path::PathBuf>,
}

/// A handle other tasks use to talk to the owner.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    synchronized: watch::Receiver<bool>,
}

impl Handle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RegistryError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| RegistryError::Stopped)?;
        rx.await.map_err(|_| RegistryError::Stopped)
    }

    pub async fn start(&self, info: ContainerInfo) -> Result<Started, RegistryError> {
        self.ask(|tx| Command::Start(Box::new(info), tx)).await?
    }

    /// Registers a pod cgroup parent as a guard ([`Registry::guard`]).
    pub async fn guard(&self, info: ContainerInfo) -> Result<Started, RegistryError> {
        self.ask(|tx| Command::Guard(Box::new(info), tx)).await?
    }

    /// Waits until the runtime's first Synchronize has been applied, or `limit` passed;
    /// true when it has.
    pub async fn synchronized_within(&self, limit: std::time::Duration) -> bool {
        let mut rx = self.synchronized.clone();
        tokio::time::timeout(limit, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub async fn remove(&self, id: String) {
        let _ = self.tx.send(Command::Remove(id)).await;
    }

    pub async fn synchronize(
        &self,
        infos: Vec<ContainerInfo>,
    ) -> Result<Vec<Outcome>, RegistryError> {
        self.ask(|tx| Command::Synchronize(infos, tx)).await
    }

    pub async fn reload(&self, policy: Arc<Policy>) -> Result<u64, RegistryError> {
        self.ask(|tx| Command::Reload(policy, tx)).await?
    }

    /// The container registered with this cgroup id, the policy and its revision.
    pub async fn lookup(&self, cgroup_id: u64) -> Option<(ContainerInfo, Arc<Policy>, u64)> {
        self.ask(|tx| Command::Lookup(cgroup_id, tx))
            .await
            .ok()
            .flatten()
    }

    pub async fn status(&self) -> Result<Snapshot, RegistryError> {
        self.ask(Command::Status).await
    }
}

/// Kernel counters, where the backend has them.
pub trait Counters {
    fn counters(&self) -> Option<Vec<u64>> {
        None
    }
    /// The bpffs directory holding the pins, if the kernel state is pinned.
    fn pin_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// Previous builds' programs still attached during an upgrade.
    fn previous_builds(&self) -> usize {
        0
    }
}

impl Counters for super::kernel::MemoryKernel {}

impl Counters for crate::bpf::Enforcer {
    fn counters(&self) -> Option<Vec<u64>> {
        crate::bpf::Enforcer::counters(self)
            .ok()
            .map(|c| c.to_vec())
    }
    fn pin_dir(&self) -> Option<std::path::PathBuf> {
        Some(crate::bpf::Enforcer::pin_dir(self).to_owned())
    }
    fn previous_builds(&self) -> usize {
        self.handovers().len()
    }
}

/// Starts the owner task; it runs until every handle is dropped.
pub fn spawn<K>(registry: Registry<K>) -> Handle
where
    K: KernelState + Counters + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    let (synced_tx, synchronized) = watch::channel(false);
    tokio::spawn(run(registry, rx, synced_tx));
    Handle { tx, synchronized }
}

async fn run<K: KernelState + Counters>(
    mut registry: Registry<K>,
    mut rx: mpsc::Receiver<Command>,
    synchronized: watch::Sender<bool>,
) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Start(info, reply) => {
                let _ = reply.send(registry.start(*info));
            }
            Command::Guard(info, reply) => {
                let _ = reply.send(registry.guard(*info));
            }
            Command::Remove(id) => {
                registry.remove(&id);
            }
            Command::Synchronize(infos, reply) => {
                let _ = reply.send(registry.synchronize(infos));
                synchronized.send_replace(true);
            }
            Command::Reload(policy, reply) => {
                let _ = reply.send(registry.reload(policy));
            }
            Command::Lookup(cgroup_id, reply) => {
                let found = registry.by_cgroup(cgroup_id).map(|m| {
                    (
                        m.info.clone(),
                        registry.policy().clone(),
                        registry.revision(),
                    )
                });
                let _ = reply.send(found);
            }
            Command::Status(reply) => {
                let _ = reply.send(snapshot(&registry));
            }
        }
    }
}

fn snapshot<K: KernelState + Counters>(registry: &Registry<K>) -> Snapshot {
    let containers = registry
        .containers()
        .map(|m| ContainerStatus {
            id: m.info.id.clone(),
            name: m.info.name.clone(),
            namespace: m.info.attrs.namespace.clone(),
            pod: m.info.attrs.pod_name.clone(),
            image: m.info.attrs.image.as_ref().map(ToString::to_string),
            labels: m
                .info
                .attrs
                .labels
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect(),
            cgroup_id: m.info.cgroup_id,
            rule_set: m.rule_set,
            guard: m.guard,
            cgroup_dir: m.info.cgroup_dir.clone(),
        })
        .collect();
    Snapshot {
        policy_revision: registry.revision(),
        rule_sets: registry.rule_sets(),
        containers,
        kernel_counters: registry.kernel().counters(),
        bpffs: registry.kernel().pin_dir(),
        previous_builds: registry.kernel().previous_builds(),
    }
}
