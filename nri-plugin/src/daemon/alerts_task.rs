//! The task that turns the kernel's decisions into ECS documents: decode, find the
//! container (pod, image, labels), re-evaluate the matched selectors, write to the sinks,
//! count in the metrics. Kernel counters (denials, ring-buffer drops) are polled into the
//! metrics too, so a full ring buffer is reported, never silent.

use super::owner::Handle;
use crate::alerts::sink::Fanout;
use crate::alerts::{clock, decision, ecs, record};
use crate::bpf::AsyncEventReader;
use crate::container::ContainerInfo;
use crate::metrics::Metrics;
use crate::metrics::{Outcome, SelectorKey, WouldBlock};
use d4c_common::{
    CNT_DENIED, CNT_EVENTS, CNT_HOOK_ERRORS, CNT_MAP_FULL, CNT_PATH_ERRORS, CNT_RINGBUF_DROPS,
};
use d4c_policy::{Actions, Policy};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long alerts wait for the runtime's first Synchronize before flowing regardless.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// How the alerts task writes.
pub struct Settings {
    /// The node (`host.*` of every document).
    pub host: crate::alerts::host::Host,
    /// Count selectors per namespace too.
    pub namespace_label: bool,
    /// Between a container's summaries of what its budget held back.
    pub summary_every: Duration,
    /// Between heartbeat documents (`None`: none).
    pub heartbeat_every: Option<Duration>,
    /// `orchestrator.cluster.id` and `.name`, from the configuration.
    pub cluster: (Option<String>, Option<String>),
    /// The attach mode in force (`None`: nothing is enforced).
    pub mode: Option<&'static str>,
}

/// Forwards decisions until the reader fails; every `summary_every`, writes one summary
/// per container whose event budget held events back since the last one.
pub async fn forward(
    mut reader: AsyncEventReader,
    handle: Handle,
    mut sinks: Fanout,
    metrics: Arc<Metrics>,
    settings: Settings,
) {
    let mut throttled = Throttling::default();
    let mut tick = tokio::time::interval(settings.summary_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first heartbeat at once: alive from the start.
    let mut beat = tokio::time::interval(settings.heartbeat_every.unwrap_or(Duration::MAX));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let host = settings.host.clone();
    let mut nested = super::nested::NestedOwners::default();
    // Decisions the kernel kept while no daemon read (a container started then runs under
    // a guard's rule set) name their container only once the runtime's Synchronize has
    // registered it: wait for that, a bounded time. The kernel holds them meanwhile
    // (`d4c_ringbuf_drops_total` counts what did not fit).
    if !handle.synchronized_within(SYNC_WAIT).await {
        tracing::warn!(
            waited = ?SYNC_WAIT,
            "no Synchronize from the runtime yet: forwarding decisions without waiting for it (those of unregistered containers lack pod metadata)"
        );
    }
    loop {
        let next = tokio::select! {
            // Cancel-safe: `next` takes an event only when it returns it.
            next = reader.next() => next,
            _ = tick.tick() => {
                throttled.summarize(&handle, &mut sinks, &metrics, &host).await;
                continue;
            }
            _ = beat.tick(), if settings.heartbeat_every.is_some() => {
                heartbeat(&handle, &mut sinks, &metrics, &settings).await;
                continue;
            }
        };
        let ev = match next {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(error = %e, "reading kernel decisions failed; alerts stop");
                return;
            }
        };
        let Some(rec) = record::decode(&ev) else {
            tracing::warn!(
                kind = ev.kind,
                op = ev.op,
                "a kernel record of an unknown kind was skipped"
            );
            continue;
        };
        if rec.sample {
            // What a budget held back: its path counts toward the container's summary.
            throttled.sampled(&rec);
            continue;
        }
        let mut found = handle.lookup(rec.cgroup_id).await;
        if found.is_none() && rec.owner_cgroup_id != 0 && rec.owner_cgroup_id != rec.cgroup_id {
            // A cgroup the container created: the kernel entry it inherited names the
            // container's cgroup, even once the nested one is gone.
            found = handle.lookup(rec.owner_cgroup_id).await;
        }
        if found.is_none() {
            // No owner in the record (its entry was removed before the event was written):
            // search the registered containers' cgroup directories.
            if let Some(owner) = nested.owner(&handle, rec.cgroup_id).await {
                found = handle.lookup(owner).await;
            }
        }
        let (info, policy, revision) = match &found {
            Some((i, p, r)) => (Some(i), Some(p.as_ref()), *r),
            None => (None, None, 0),
        };
        let ctx = ecs::Context {
            timestamp: clock::wall_time(rec.boot_ns),
            container: info,
            policy,
            policy_revision: revision,
            host: &host,
            event_id: clock::event_id(rec.boot_ns),
        };
        let doc = ecs::document(&rec, &ctx);
        if let (Some(info), Some(policy)) = (info, policy) {
            count_selectors(&rec, info, policy, &metrics, settings.namespace_label);
        }
        let op = doc["event"]["action"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned();
        metrics.decision(&op, &rec.actions.names());
        write(&mut sinks, &metrics, &doc);
    }
}

/// Writes one heartbeat document (`metrics-cloud_defend.heartbeat-*`).
async fn heartbeat(handle: &Handle, sinks: &mut Fanout, metrics: &Metrics, settings: &Settings) {
    let Ok(snapshot) = handle.status().await else {
        return;
    };
    let now = clock::boot_now_ns();
    let doc = crate::alerts::heartbeat::document(
        &crate::alerts::heartbeat::Beat {
            at: clock::wall_time(now),
            event_id: clock::event_id(now),
            host: &settings.host,
            cluster: (settings.cluster.0.as_deref(), settings.cluster.1.as_deref()),
            mode: settings.mode,
            intact: metrics.enforcement_intact.load(Ordering::Relaxed) == 1,
            sound: metrics.enforcement_sound.load(Ordering::Relaxed) == 1,
        },
        &snapshot,
    );
    write(sinks, metrics, &doc);
}

/// Writes one document to the sinks, counting it in the metrics.
fn write(sinks: &mut Fanout, metrics: &Metrics, doc: &serde_json::Value) {
    let before = (sinks.written, sinks.failed);
    sinks.write_line(&doc.to_string());
    metrics
        .sink_documents
        .fetch_add(sinks.written - before.0, Ordering::Relaxed);
    metrics
        .sink_failures
        .fetch_add(sinks.failed - before.1, Ordering::Relaxed);
}

/// What the containers' event budgets held back: the kernel's counts (read each summary)
/// and the paths of the samples it wrote.
#[derive(Default)]
struct Throttling {
    /// Per container (registered cgroup): the held-back count already summarized.
    reported: HashMap<u64, u64>,
    /// Per container: sampled paths and how often.
    paths: HashMap<u64, HashMap<String, u64>>,
}

/// Paths a summary names, at most.
const SUMMARY_PATHS: usize = 5;

impl Throttling {
    fn sampled(&mut self, rec: &record::Record) {
        let owner = if rec.owner_cgroup_id == 0 {
            rec.cgroup_id
        } else {
            rec.owner_cgroup_id
        };
        let paths = self.paths.entry(owner).or_default();
        if paths.len() < 1024 || paths.contains_key(&rec.path) {
            *paths.entry(rec.path.clone()).or_default() += 1;
        }
    }

    /// One summary document per container whose budget held events back since the last.
    async fn summarize(
        &mut self,
        handle: &Handle,
        sinks: &mut Fanout,
        metrics: &Metrics,
        host: &crate::alerts::host::Host,
    ) {
        let Ok(budgets) = handle.budgets().await else {
            return;
        };
        for (owner, b) in budgets {
            let before = self.reported.get(&owner).copied().unwrap_or(0);
            // A budget entry evicted and made again starts from 0.
            let new = if b.throttled >= before {
                b.throttled - before
            } else {
                b.throttled
            };
            if new == 0 {
                continue;
            }
            self.reported.insert(owner, b.throttled);
            metrics.events_throttled.fetch_add(new, Ordering::Relaxed);
            let mut paths: Vec<(String, u64)> = self
                .paths
                .remove(&owner)
                .unwrap_or_default()
                .into_iter()
                .collect();
            paths.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            paths.truncate(SUMMARY_PATHS);
            let found = handle.lookup(owner).await;
            let info = found.as_ref().map(|(i, _, _)| i);
            let t = ecs::Throttled {
                count: new,
                first: clock::wall_time(b.first),
                last: clock::wall_time(b.last),
                paths,
            };
            let now_ns = clock::boot_now_ns();
            let ctx = ecs::Context {
                timestamp: std::time::SystemTime::now(),
                container: info,
                policy: None,
                policy_revision: 0,
                host,
                event_id: clock::event_id(now_ns),
            };
            tracing::warn!(
                container = info.map_or("(gone)", |i| i.id.as_str()),
                held_back = new,
                "a container's event budget was spent: its documents were held back (counted, summarized; blocking not affected)"
            );
            write(sinks, metrics, &ecs::throttled_document(&t, info, &ctx));
        }
    }
}

/// Counts each selector behind the record's decision (per action of the responses it made
/// fire, with the operation's outcome), and a would-be block of an audited policy.
fn count_selectors(
    rec: &record::Record,
    info: &ContainerInfo,
    policy: &Policy,
    metrics: &Metrics,
    namespace_label: bool,
) {
    let d = decision::decide(rec, policy, &info.attrs);
    let outcome = if rec.denied {
        Outcome::Blocked
    } else if rec.actions.contains(Actions::AUDIT) {
        Outcome::Audited
    } else {
        Outcome::Allowed
    };
    let audited = policy.audit.audited(policy, &info.attrs);
    let file = |source: usize| {
        policy.sources.get(source).map_or_else(String::new, |s| {
            s.path.rsplit('/').next().unwrap_or(&s.path).to_owned()
        })
    };
    for &r in &d.responses {
        let resp = &policy.responses[r];
        for s in resp
            .matches
            .iter()
            .filter(|s| d.selectors.binary_search(s).is_ok())
        {
            let sel = &policy.selectors[*s];
            for action in resp.actions.names() {
                metrics.selector_match(SelectorKey {
                    policy: file(sel.source),
                    selector: sel.name.clone(),
                    action,
                    outcome,
                    namespace: namespace_label
                        .then(|| info.attrs.namespace.clone())
                        .flatten(),
                });
            }
        }
        if outcome == Outcome::Audited
            && resp.actions.contains(Actions::BLOCK)
            && audited.binary_search(&r).is_ok()
        {
            metrics.would_block(
                &file(resp.source),
                WouldBlock {
                    at: ecs::rfc3339(clock::wall_time(rec.boot_ns)),
                    namespace: info.attrs.namespace.clone(),
                    pod: info.attrs.pod_name.clone(),
                    operation: match &rec.operation {
                        record::Operation::File(ops) => {
                            ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(",")
                        }
                        record::Operation::Process(op) => op.name().to_owned(),
                    },
                    path: rec.path.clone(),
                    process: decision::process_name(rec),
                },
            );
        }
    }
}

/// Copies the kernel counters into the metrics every few seconds; warns when decisions
/// were dropped because the ring buffer was full.
pub async fn poll_counters(handle: Handle, metrics: Arc<Metrics>) {
    let mut last = [0u64; WATCHED.len()];
    let mut last_skipped = 0u64;
    loop {
        if let Ok(snap) = handle.status().await {
            metrics.managed_containers.store(
                snap.containers
                    .iter()
                    .filter(|c| c.rule_set.is_some())
                    .count() as u64,
                Ordering::Relaxed,
            );
            metrics
                .rule_sets
                .store(snap.rule_sets as u64, Ordering::Relaxed);
            metrics
                .previous_builds
                .store(snap.previous_builds as u64, Ordering::Relaxed);
            metrics
                .policy_revision
                .store(snap.policy_revision, Ordering::Relaxed);
            if let Some(k) = snap.kernel_counters {
                metrics
                    .kernel_denied
                    .store(k[CNT_DENIED as usize], Ordering::Relaxed);
                metrics
                    .kernel_events
                    .store(k[CNT_EVENTS as usize], Ordering::Relaxed);
                metrics
                    .kernel_path_errors
                    .store(k[CNT_PATH_ERRORS as usize], Ordering::Relaxed);
                for (watch, last) in WATCHED.iter().zip(&mut last) {
                    watch.report(&k, &metrics, last);
                }
            }
            if let Some(now) = snap.skipped_runs {
                metrics.kernel_skipped_runs.store(now, Ordering::Relaxed);
                if now > last_skipped {
                    tracing::error!(
                        new = now - last_skipped,
                        "the kernel skipped d4c's programs: those hook calls were NOT decided (fmod_ret mode on a preemptible kernel: another task was preempted inside the same program on that CPU); BPF LSM (`bpf` in lsm=) has no such gap; see d4c_kernel_skipped_runs_total"
                    );
                    last_skipped = now;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// A kernel counter mirrored into a metric whose growth is logged.
struct Watched {
    counter: u32,
    metric: fn(&Metrics) -> &AtomicU64,
    /// Logged as an error (else a warning).
    error: bool,
    message: &'static str,
}

/// The kernel counters whose growth the daemon logs.
const WATCHED: [Watched; 3] = [
    Watched {
        counter: CNT_HOOK_ERRORS,
        metric: |m| &m.kernel_hook_errors,
        error: true,
        message: "kernel hooks failed for managed tasks (denied where the rule set can block); see d4c_kernel_hook_errors_total",
    },
    Watched {
        counter: CNT_MAP_FULL,
        metric: |m| &m.kernel_map_full,
        error: true,
        message: "a kernel map is full: cgroups could not be created in managed containers, or processes got no record; see d4c_kernel_map_full_total",
    },
    Watched {
        counter: CNT_RINGBUF_DROPS,
        metric: |m| &m.ringbuf_drops,
        error: false,
        message: "decisions were lost: the kernel ring buffer was full",
    },
];

impl Watched {
    /// Stores the counter in its metric and logs how much it grew since `last`.
    fn report(&self, counters: &[u64], metrics: &Metrics, last: &mut u64) {
        let now = counters.get(self.counter as usize).copied().unwrap_or(0);
        (self.metric)(metrics).store(now, Ordering::Relaxed);
        if now > *last {
            let new = now - *last;
            if self.error {
                tracing::error!(new, "{}", self.message);
            } else {
                tracing::warn!(new, "{}", self.message);
            }
            *last = now;
        }
    }
}
