//! `d4c nri`: the daemon. An NRI plugin for containerd and CRI-O that registers every
//! starting container with its rule set before the workload runs, reloads the policy
//! directory on change, and writes alerts, metrics and status.

use anyhow::{anyhow, Context as _};
use d4c::alerts::sink::{Fanout, RotatingFile, Stdout};
use d4c::bpf::{self, Enforcer};
use d4c::config::{Config, Enforcement, LogFormat, Unregistered};
use d4c::daemon::kernel::MemoryKernel;
use d4c::daemon::nri_handler::NriHandler;
use d4c::daemon::owner::{self, Handle};
use d4c::daemon::registry::Registry;
use d4c::daemon::watch::{self, PolicySource, Watcher};
use d4c::daemon::{alerts_task, status_server};
use d4c::metrics::{self, Metrics};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Daemon configuration file (see config/d4c.yaml); defaults apply without one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    init_logs(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("d4c nri: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("d4c nri: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn daemon(config: Config) -> anyhow::Result<()> {
    let (source, loaded) = watch::load(&config.policy_dir);
    let loaded =
        loaded.context("the policy cannot be loaded; d4c does not start without a valid policy")?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    match &source {
        PolicySource::EmbeddedDefault => {
            tracing::warn!(dir = %config.policy_dir.display(), "policy directory not found: enforcing the embedded default policy")
        }
        PolicySource::Directory(d) => {
            tracing::info!(dir = %d.display(), selectors = loaded.policy.selectors.len(), "policy loaded")
        }
    }
    let policy = Arc::new(loaded.policy);
    let metrics = Arc::new(Metrics::default());
    metrics.policy_revision.store(1, Ordering::Relaxed);
    metrics.policy_valid.store(1, Ordering::Relaxed);
    let host = d4c::alerts::clock::host_name();

    let handle: Handle = match config.enforcement {
        Enforcement::Kernel(attach) => {
            let bpf_config = bpf::Config {
                pin_dir: config.bpffs.clone(),
                attach,
                ..bpf::Config::default()
            };
            let mut enforcer = Enforcer::load_or_adopt(&bpf_config)?;
            metrics.set_attach_mode(Some(enforcer.mode()));
            tracing::info!(origin = ?enforcer.origin(), mode = %enforcer.mode(), requested = %attach, pinned = %config.bpffs.display(), "kernel programs ready");
            let reader = enforcer
                .take_events()
                .ok_or_else(|| anyhow!("the ring buffer is already taken"))?
                .into_async()?;
            let handle = owner::spawn(Registry::new(enforcer, policy));
            tokio::spawn(alerts_task::forward(
                reader,
                handle.clone(),
                sinks(&config, &metrics)?,
                metrics.clone(),
                host.clone(),
            ));
            handle
        }
        Enforcement::None => {
            tracing::warn!(
                "enforcement: none: containers are registered in memory only; NOTHING IS ENFORCED"
            );
            owner::spawn(Registry::new(MemoryKernel::default(), policy))
        }
    };
    tokio::spawn(alerts_task::poll_counters(handle.clone(), metrics.clone()));
    if let Some(addr) = &config.metrics_address {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics address {addr}"))?;
        tracing::info!(address = %addr, "serving /metrics and /healthz");
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }
    {
        let (path, handle) = (config.status_socket.clone(), handle.clone());
        tokio::spawn(async move {
            if let Err(e) = status_server::serve(&path, handle).await {
                tracing::error!(socket = %path.display(), error = %e, "the status socket failed");
            }
        });
    }
    let cgroup_root = d4c::cgroup::v2_root().context("finding the cgroup v2 hierarchy")?;
    // Before the runtime connects: containers not registered yet are guarded in the kernel.
    if matches!(config.enforcement, Enforcement::Kernel(_))
        && config.unregistered == Unregistered::Policy
    {
        d4c::daemon::guards::register(&handle, &cgroup_root, &config.pod_cgroup_parents).await;
    } else if config.unregistered == Unregistered::Allow {
        tracing::warn!("unregisteredContainers: allow: a container started while no daemon is connected runs unenforced until the next Synchronize");
    }
    tokio::spawn(watch_policy(
        config.policy_dir.clone(),
        handle.clone(),
        metrics.clone(),
    ));

    let handler = NriHandler {
        handle,
        metrics,
        cluster_id: config.cluster_id.clone(),
        cluster_name: config.cluster_name.clone(),
        cgroup_root,
    };
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
        shutdown(),
    )
    .await?;
    tracing::info!("stopping; the kernel keeps enforcing what is pinned");
    Ok(())
}

/// Alert sinks from the configuration.
fn sinks(config: &Config, metrics: &Metrics) -> anyhow::Result<Fanout> {
    let mut f = Fanout::default();
    if config.alerts.stdout {
        f.push(Box::new(Stdout));
    }
    if let Some(path) = &config.alerts.file {
        let file = RotatingFile::open(path, config.alerts.file_max_bytes, config.alerts.file_keep)
            .with_context(|| format!("opening the alerts file {}", path.display()))?;
        f.push(Box::new(file));
    }
    if let Some(es) = &config.alerts.elasticsearch {
        tracing::info!(url = %es.url, "sending alerts to Elasticsearch");
        let sink = d4c::alerts::bulk::BulkSink::start(es.clone())?;
        let _ = metrics.elasticsearch.set(sink.stats.clone());
        f.push(Box::new(sink));
    }
    Ok(f)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Polls the policy directory; a valid change is applied, an invalid one is logged with
/// its positions and the last good policy stays in force.
async fn watch_policy(dir: PathBuf, handle: Handle, metrics: Arc<Metrics>) {
    let mut watcher = Watcher::new(&dir);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Some((_, result)) = watcher.poll() else {
            continue;
        };
        match result {
            Ok(loaded) => match handle.reload(Arc::new(loaded.policy)).await {
                Ok(rev) => {
                    metrics.policy_revision.store(rev, Ordering::Relaxed);
                    metrics.policy_valid.store(1, Ordering::Relaxed);
                    tracing::info!(revision = rev, "policy reloaded");
                }
                Err(e) => {
                    metrics
                        .policy_reload_failures
                        .fetch_add(1, Ordering::Relaxed);
                    metrics.policy_valid.store(0, Ordering::Relaxed);
                    tracing::error!(error = %e, "policy reload failed; the previous policy stays in force");
                }
            },
            Err(e) => {
                metrics
                    .policy_reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                metrics.policy_valid.store(0, Ordering::Relaxed);
                tracing::error!("policy change rejected; the previous policy stays in force:\n{e}");
            }
        }
    }
}
