//! The one task that owns the registry (and through it the kernel maps). Other tasks send
//! it commands and wait for the reply, so nothing shares the maps behind a lock.

use super::enforcement::EnforcementStatus;
use super::kernel::{EnforcementCheck, KernelState};
use super::registry::{
    prepare_reload, PreparedReload, Registry, RegistryError, ReloadInput, Started,
};
use crate::container::ContainerInfo;
use d4c_policy::compile::CompileError;
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
    /// A reload compiled off the owner task (see `run`), to apply.
    ApplyReload(
        Result<PreparedReload, CompileError>,
        oneshot::Sender<Result<u64, RegistryError>>,
    ),
    Lookup(
        u64,
        oneshot::Sender<Option<(ContainerInfo, Arc<Policy>, u64)>>,
    ),
    Status(oneshot::Sender<Snapshot>),
    /// Check (and repair) the kernel programs; the reply has the result and the status
    /// after it.
    CheckEnforcement(oneshot::Sender<(EnforcementCheck, EnforcementStatus)>),
    /// Every container's event budget.
    Budgets(oneshot::Sender<Vec<(u64, d4c_common::Budget)>>),
}

/// One container's answer to a Synchronize: its id and how its registration went.
pub type Outcome = (String, Result<Started, RegistryError>);

/// What `d4c status` shows of a running daemon.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub policy_revision: u64,
    pub rule_sets: usize,
    pub containers: Vec<ContainerStatus>,
    pub kernel_counters: Option<Vec<u64>>,
    /// Runs of the kernel programs the kernel skipped (an `fmod_ret` program whose previous
    /// run on the CPU was preempted): calls not decided.
    #[serde(default)]
    pub skipped_runs: Option<u64>,
    /// Where the daemon pinned its programs and maps (`None`: `enforcement: none`).
    #[serde(default)]
    pub bpffs: Option<std::path::PathBuf>,
    /// Previous builds' programs still attached (an upgrade waiting for Synchronize).
    #[serde(default)]
    pub previous_builds: usize,
    /// Whether the programs stay attached with the daemon's maps (its periodic check).
    #[serde(default)]
    pub enforcement: EnforcementStatus,
    /// What is audited: the policy files (by name) and namespace globs.
    #[serde(default)]
    pub audit: AuditStatus,
    /// Whether the policy in force can refuse an operation (a response blocks, and its
    /// file is not audited as a whole).
    #[serde(default)]
    pub block_action_enabled: bool,
    /// Whether the policy directory's files are the policy in force (false: a change was
    /// rejected, or the daemon started on its last good copy); filled in by the status
    /// socket from `d4c_policy_valid`.
    #[serde(default = "yes")]
    pub policy_valid: bool,
}

fn yes() -> bool {
    true
}

/// What `d4c status` shows of auditing.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct AuditStatus {
    /// The policy files audited (their blocks are allowed), by name.
    pub policies: Vec<String>,
    /// The namespace globs audited.
    pub namespaces: Vec<String>,
    /// Would-be blocks since the daemon started, per policy file (filled by the status
    /// socket from the alerts' counts).
    pub would_block: Vec<crate::metrics::AuditedPolicy>,
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

    /// Every container's event budget (registered cgroup, what it held back).
    pub async fn budgets(&self) -> Result<Vec<(u64, d4c_common::Budget)>, RegistryError> {
        self.ask(Command::Budgets).await
    }

    /// Checks (and repairs) the kernel programs now.
    pub async fn check_enforcement(
        &self,
    ) -> Result<(EnforcementCheck, EnforcementStatus), RegistryError> {
        self.ask(Command::CheckEnforcement).await
    }
}

/// A handle whose owner never answers (tests of callers' deadlines); keep the receiver
/// alive for as long as the handle is used.
#[cfg(test)]
#[must_use]
pub fn stalled() -> (Handle, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(256);
    let (_, synchronized) = watch::channel(false);
    (Handle { tx, synchronized }, rx)
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
    /// Runs of the kernel programs the kernel skipped (`bpf::skipped_runs`), if known.
    fn skipped_runs(&self) -> Option<u64> {
        None
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
    fn skipped_runs(&self) -> Option<u64> {
        crate::bpf::skipped_runs(crate::bpf::Enforcer::pin_dir(self))
            .map_err(|e| tracing::warn!(error = %e, "cannot read the runs the kernel skipped"))
            .ok()
    }
}

/// Starts the owner task; it runs until every handle is dropped.
pub fn spawn<K>(registry: Registry<K>) -> Handle
where
    K: KernelState + Counters + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    let (synced_tx, synchronized) = watch::channel(false);
    tokio::spawn(run(registry, rx, tx.downgrade(), synced_tx));
    Handle { tx, synchronized }
}

/// Answers commands in order. A reload's compile, the one long step, runs on a blocking
/// thread (container starts are answered meanwhile, under the running policy); its result
/// comes back as `ApplyReload`, applied here (`Registry::apply_reload` compiles again what
/// changed in between).
async fn run<K: KernelState + Counters>(
    mut registry: Registry<K>,
    mut rx: mpsc::Receiver<Command>,
    me: mpsc::WeakSender<Command>,
    synchronized: watch::Sender<bool>,
) {
    let mut enforcement = EnforcementStatus::default();
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
                let input = registry.reload_input();
                let Some(tx) = me.upgrade() else {
                    let _ = reply.send(registry.reload(policy));
                    continue;
                };
                compile_aside(input, policy, tx, reply);
            }
            Command::ApplyReload(prepared, reply) => {
                let r = prepared
                    .map_err(|e| RegistryError::Reload {
                        source: Box::new(e),
                    })
                    .and_then(|p| registry.apply_reload(p));
                let _ = reply.send(r);
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
                let _ = reply.send(snapshot(&registry, &enforcement));
            }
            Command::Budgets(reply) => {
                let _ = reply.send(registry.kernel().budgets());
            }
            Command::CheckEnforcement(reply) => {
                let check = registry.kernel_mut().check_enforcement();
                enforcement.record(&check, std::time::SystemTime::now());
                let _ = reply.send((check, enforcement.clone()));
            }
        }
    }
}

/// Compiles a reload on a thread of its own at a lower CPU priority (nice 10), so that on
/// a busy node the owner task, answering starts meanwhile, is scheduled first; the result
/// comes back to the owner as `ApplyReload`.
fn compile_aside(
    input: ReloadInput,
    policy: Arc<Policy>,
    tx: mpsc::Sender<Command>,
    reply: oneshot::Sender<Result<u64, RegistryError>>,
) {
    let spawned = std::thread::Builder::new()
        .name("d4c-reload".into())
        .spawn(move || {
            // SAFETY: plain syscall on the calling thread (who = 0).
            let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            let prepared = prepare_reload(&input, policy);
            let _ = tx.blocking_send(Command::ApplyReload(prepared, reply));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the reload thread; the reload is dropped, the previous policy stays in force");
    }
}

fn snapshot<K: KernelState + Counters>(
    registry: &Registry<K>,
    enforcement: &EnforcementStatus,
) -> Snapshot {
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
        skipped_runs: registry.kernel().skipped_runs(),
        bpffs: registry.kernel().pin_dir(),
        previous_builds: registry.kernel().previous_builds(),
        enforcement: enforcement.clone(),
        audit: audit_status(registry.policy()),
        block_action_enabled: registry.policy().can_block(),
        policy_valid: true,
    }
}

/// The policy files and namespaces audited under `policy`.
fn audit_status(policy: &Policy) -> AuditStatus {
    let a = &policy.audit;
    AuditStatus {
        policies: policy
            .sources
            .iter()
            .filter(|s| a.audits_file(&s.path))
            .map(|s| s.path.rsplit('/').next().unwrap_or(&s.path).to_owned())
            .collect(),
        namespaces: if a.all {
            vec!["*".into()]
        } else {
            a.namespaces.clone()
        },
        would_block: Vec::new(),
    }
}
