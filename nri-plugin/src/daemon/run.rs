//! The daemon's wiring (`d4c nri`): load the policy, load or adopt the kernel programs,
//! start the owner task and the tasks around it (alerts, counters, metrics, status socket,
//! policy watcher), then serve the runtime over NRI until shutdown.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::kernel::MemoryKernel;
use super::last_good::{self, StartPolicy};
use super::nri_handler::NriHandler;
use super::owner::{self, Handle};
use super::registry::Registry;
use super::watch::{self, PolicySource};
use super::{alerts_task, enforcement, status_server, DaemonError};
use crate::alerts::sink::{Fanout, RotatingFile, Stdout};
use crate::bpf::{self, lock::Holder, AttachRequest, Enforcer};
use crate::config::{Config, Enforcement, Unregistered};
use crate::metrics::{self, Metrics};
use d4c_policy::Policy;

/// Runs the daemon until `shutdown` completes (then the kernel keeps enforcing what is
/// pinned) or a step fails.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let (policy, valid) = load_policy(&config)?;
    let metrics = Arc::new(Metrics::default());
    metrics.policy_revision.store(1, Ordering::Relaxed);
    metrics
        .policy_valid
        .store(u64::from(valid), Ordering::Relaxed);
    // Ready while enforcement is intact: from the load on, as the checks find it.
    metrics.enforcement_intact.store(1, Ordering::Relaxed);
    let (handle, daemon_lock) = start_registry(&config, policy, &metrics)?;
    // Enforcement kept attached: checked every second; lost for good stops the daemon.
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<String>();
    if let Some(daemon) = daemon_lock {
        let (handle, metrics) = (handle.clone(), metrics.clone());
        tokio::spawn(async move {
            let reason = enforcement::keep_checking(handle, metrics, daemon).await;
            let _ = lost_tx.send(reason);
        });
    }
    // Before the runtime connects: containers not registered yet are guarded in the kernel.
    match (config.enforcement, config.unregistered) {
        (_, Unregistered::Allow) => tracing::warn!("unregisteredContainers: allow: a container started while no daemon is connected runs unenforced until the next Synchronize"),
        (Enforcement::Kernel(_), Unregistered::Policy) => match crate::cgroup::v2_root() {
            Ok(root) => {
                let parents = config.pod_cgroup_parents.clone();
                let done = super::guards::register(&handle, &root, &parents, false).await;
                tokio::spawn(super::guards::keep_guarding(
                    handle.clone(),
                    root,
                    parents,
                    done,
                    super::guards::RETRY,
                ));
            }
            Err(e) => tracing::error!(error = %e, "no cgroup v2 hierarchy: containers started while no daemon runs are not guarded"),
        },
        (Enforcement::None, Unregistered::Policy) => {}
    }
    tokio::spawn(alerts_task::poll_counters(handle.clone(), metrics.clone()));
    if let Some(address) = &config.metrics_address {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| DaemonError::Metrics {
                address: address.clone(),
                source,
            })?;
        tracing::info!(address = %address, "serving /metrics and /healthz");
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }
    {
        let (path, handle, metrics) = (
            config.status_socket.clone(),
            handle.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = status_server::serve(&path, handle, metrics).await {
                tracing::error!(socket = %path.display(), error = %e, "the status socket failed");
            }
        });
    }
    tokio::spawn(watch::follow(
        config.policy_dir.clone(),
        config.source.clone(),
        config.last_good_policy_dir.clone(),
        handle.clone(),
        metrics.clone(),
    ));
    let lost = Arc::new(std::sync::Mutex::new(None));
    let stop = {
        let lost = lost.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                Ok(reason) = lost_rx => {
                    *lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
                }
            }
        }
    };
    serve_runtime(&config, handle, metrics, stop).await?;
    if let Some(reason) = lost
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        return Err(DaemonError::EnforcementLost(reason));
    }
    tracing::info!("stopping; the kernel keeps enforcing what is pinned");
    Ok(())
}

/// The owner task over the kernel (after taking the daemon lock: one daemon per pin
/// directory, before anything is loaded or taken over), or over memory with
/// `enforcement: none`.
fn start_registry(
    config: &Config,
    policy: Arc<Policy>,
    metrics: &Arc<Metrics>,
) -> Result<(Handle, Option<enforcement::DaemonLock>), DaemonError> {
    match config.enforcement {
        Enforcement::Kernel(attach) => {
            if config.require_sound {
                // Refused before anything is created or loaded, where the mode this start
                // ends in is known (checked again once loaded).
                if let Some(why) =
                    crate::node::planned_mode(attach, &config.bpffs).and_then(crate::node::unsound)
                {
                    return Err(DaemonError::Unsound(why));
                }
            }
            let holder = Holder::new("d4c nri");
            bpf::ensure_pin_dir(&config.bpffs)?;
            let lock = bpf::lock::daemon(&config.bpffs, &holder, bpf::lock::DEFAULT_WAIT)?;
            let handle = enforce(config, attach, policy, metrics)?;
            let daemon = enforcement::DaemonLock {
                lock,
                pin_dir: config.bpffs.clone(),
                holder,
            };
            Ok((handle, Some(daemon)))
        }
        Enforcement::None => {
            tracing::warn!(
                "enforcement: none: containers are registered in memory only; NOTHING IS ENFORCED"
            );
            Ok((
                owner::spawn(Registry::new(MemoryKernel::default(), policy)),
                None,
            ))
        }
    }
}

/// The policy of the policy directory, or the embedded default where there is none; where
/// the directory is invalid, the last good copy, or what `invalidPolicyAtStart` says
/// (`last_good`). Also whether the directory's policy is the one in force.
fn load_policy(config: &Config) -> Result<(Arc<Policy>, bool), DaemonError> {
    let (mut loaded, valid) = match last_good::start_policy(config).map_err(DaemonError::Policy)? {
        StartPolicy::Loaded(source, loaded) => {
            match &source {
                PolicySource::EmbeddedDefault => {
                    tracing::warn!(dir = %config.policy_dir.display(), "policy directory not found: enforcing the embedded default policy");
                }
                PolicySource::Directory(d) => {
                    tracing::info!(dir = %d.display(), selectors = loaded.policy.selectors.len(), "policy loaded");
                    if let Err(e) = last_good::save(d, &config.last_good_policy_dir) {
                        tracing::warn!(dir = %config.last_good_policy_dir.display(), "the last good policy could not be saved (a start with an invalid policy directory will not find it): {e}");
                    }
                }
            }
            (loaded, true)
        }
        StartPolicy::LastGood(e, loaded) => {
            tracing::error!(dir = %config.policy_dir.display(), last_good = %config.last_good_policy_dir.display(), "THE POLICY DIRECTORY IS INVALID: enforcing the last good policy d4c loaded, until the directory is fixed (d4c_policy_valid is 0):\n{e}");
            (loaded, false)
        }
        StartPolicy::AlertOnly(e, loaded) => {
            tracing::error!(dir = %config.policy_dir.display(), "THE POLICY DIRECTORY IS INVALID and there is no last good policy: invalidPolicyAtStart: alertOnly runs the embedded default policy with every block audited (alerted, NOT refused) until the directory is fixed (d4c_policy_valid is 0):\n{e}");
            (loaded, false)
        }
    };
    if !loaded.policy.audit.all {
        loaded.policy.audit = config.audit.clone();
    }
    if !config.audit.is_empty() {
        tracing::warn!(policies = ?config.audit.policies, namespaces = ?config.audit.namespaces, "audit: blocks of these policy files and namespaces are allowed and alerted as would-be blocks");
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok((Arc::new(loaded.policy), valid))
}

/// Loads (or adopts) the kernel programs, starts the owner task over them and the alerts
/// task over their ring buffer.
fn enforce(
    config: &Config,
    attach: AttachRequest,
    policy: Arc<Policy>,
    metrics: &Arc<Metrics>,
) -> Result<Handle, DaemonError> {
    let bpf_config = bpf::Config {
        pin_dir: config.bpffs.clone(),
        attach,
        holder: Holder::new("d4c nri"),
        ring_bytes: Some(config.alerts.ring_buffer_bytes),
        ..bpf::Config::default()
    };
    let mut enforcer = Enforcer::load_or_adopt(&bpf_config)?;
    let unsound = crate::node::unsound(enforcer.mode());
    metrics.set_sound(Some(unsound.is_none()));
    match unsound {
        Some(why) if config.require_sound => return Err(DaemonError::Unsound(why)),
        Some(why) => tracing::error!(
            "blocking is NOT guaranteed on this node: {why} (running anyway: some blocking beats none; `enforcement.requireSound: true` refuses to start; `d4c doctor` explains)"
        ),
        None => tracing::info!("blocking is guaranteed on this node"),
    }
    let a = &config.alerts;
    enforcer.set_event_budget(a.budget_rate, a.budget_burst, SAMPLE_EVERY)?;
    match enforcer.ring_bytes() {
        Some(n) if n != a.ring_buffer_bytes => tracing::warn!(
            pinned = n,
            configured = a.ring_buffer_bytes,
            "the pinned ring buffer keeps its size; the configured ringBufferBytes takes effect after `d4c unload` and a restart"
        ),
        _ => {}
    }
    metrics.set_attach_mode(Some(enforcer.mode()));
    tracing::info!(origin = ?enforcer.origin(), mode = %enforcer.mode(), requested = %attach, pinned = %config.bpffs.display(), "kernel programs ready");
    let enforcer_mode = enforcer.mode();
    let reader = enforcer
        .take_events()
        .ok_or(DaemonError::RingBufferTaken)?
        .into_async()?;
    let handle = owner::spawn(Registry::new(enforcer, policy));
    tokio::spawn(alerts_task::forward(
        reader,
        handle.clone(),
        sinks(config, metrics)?,
        metrics.clone(),
        alerts_task::Settings {
            host: crate::alerts::host::Host::read(),
            namespace_label: config.metrics_namespace_label,
            summary_every: std::time::Duration::from_secs(u64::from(
                config.alerts.throttle_summary_seconds,
            )),
            heartbeat_every: (config.alerts.heartbeat_seconds > 0).then(|| {
                std::time::Duration::from_secs(u64::from(config.alerts.heartbeat_seconds))
            }),
            cluster: (config.cluster_id.clone(), config.cluster_name.clone()),
            mode: Some(enforcer_mode.name()),
        },
    ));
    Ok(handle)
}

/// One held-back event in this many is written as a sample, for the paths a container's
/// throttle summary names.
const SAMPLE_EVERY: u32 = 256;

/// Alert sinks from the configuration.
fn sinks(config: &Config, metrics: &Metrics) -> Result<Fanout, DaemonError> {
    let mut f = Fanout::default();
    if config.alerts.stdout {
        f.push(Box::new(Stdout));
    }
    if let Some(path) = &config.alerts.file {
        let file = RotatingFile::open(path, config.alerts.file_max_bytes, config.alerts.file_keep)
            .map_err(|source| DaemonError::AlertsFile {
                path: path.clone(),
                source,
            })?;
        f.push(Box::new(file));
    }
    if let Some(es) = &config.alerts.elasticsearch {
        tracing::info!(url = %es.url, "sending alerts to Elasticsearch");
        let sink = crate::alerts::bulk::BulkSink::start(es.clone())?;
        let _ = metrics.elasticsearch.set(sink.stats.clone());
        f.push(Box::new(sink));
    }
    Ok(f)
}

/// Serves the runtime over NRI (reconnecting) until `shutdown` completes.
async fn serve_runtime(
    config: &Config,
    handle: Handle,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let cgroup_root = crate::cgroup::v2_root().map_err(DaemonError::CgroupRoot)?;
    let handler = NriHandler::new(
        handle,
        metrics,
        (config.cluster_id.clone(), config.cluster_name.clone()),
        cgroup_root,
    );
    let plugin = d4c_nri::PluginConfig::from_env(
        &config.plugin_name,
        &config.plugin_index,
        config.nri_socket.clone(),
    )?;
    tracing::info!(socket = %config.nri_socket.display(), name = %config.plugin_name, index = %config.plugin_index, "connecting to the runtime");
    d4c_nri::run_with_reconnect(
        plugin,
        Arc::new(handler),
        d4c_nri::Backoff::default(),
        shutdown,
    )
    .await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
