//! The text exposition format: the single-value series from two tables ([`SERIES`], and
//! [`ELASTICSEARCH`] once that sink runs), then the labelled families, one section each.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::PoisonError;

use super::{Metrics, BUCKETS};
use crate::alerts::bulk::BulkStats;
use crate::bpf::AttachMode;

/// A series with one value: name, type, help, and where its value is.
type Series<T> = (
    &'static str,
    &'static str,
    &'static str,
    fn(&T) -> &AtomicU64,
);

/// The daemon's single-value series, in exposition order.
const SERIES: [Series<Metrics>; 20] = [
    ("d4c_managed_containers", "gauge", "Containers registered in the kernel.", |m| &m.managed_containers),
    ("d4c_rule_sets", "gauge", "Rule sets with entries in the kernel.", |m| &m.rule_sets),
    ("d4c_policy_revision", "gauge", "Revision of the policy in force.", |m| &m.policy_revision),
    ("d4c_policy_valid", "gauge", "1 when the policy files on disk are the policy in force, 0 when a change was rejected.", |m| &m.policy_valid),
    ("d4c_policy_reload_failures_total", "counter", "Policy changes rejected (invalid or not applicable).", |m| &m.policy_reload_failures),
    ("d4c_refused_containers_total", "counter", "Container starts refused because they could not be protected.", |m| &m.refused_containers),
    ("d4c_kernel_denied_total", "counter", "Operations the kernel denied.", |m| &m.kernel_denied),
    ("d4c_kernel_events_total", "counter", "Decisions the kernel reported.", |m| &m.kernel_events),
    ("d4c_events_throttled_total", "counter", "Decisions whose documents a container's event budget held back (counted per container and summarized in throttled documents; blocking is never throttled).", |m| &m.events_throttled),
    ("d4c_ringbuf_drops_total", "counter", "Decisions lost because the ring buffer was full.", |m| &m.ringbuf_drops),
    ("d4c_kernel_path_errors_total", "counter", "Paths the kernel could not build from the task's root (decided by the rule set's most restrictive path class).", |m| &m.kernel_path_errors),
    ("d4c_kernel_map_full_total", "counter", "Cgroups a managed container could not create (or that got no entry) because the kernel's containers map was full, and processes that got no record because the process-record map was full.", |m| &m.kernel_map_full),
    ("d4c_kernel_hook_errors_total", "counter", "Hook calls of managed tasks that failed (denied where the rule set can block).", |m| &m.kernel_hook_errors),
    ("d4c_kernel_skipped_runs_total", "counter", "Hook calls the kernel did not give to d4c (fmod_ret mode: another task was preempted inside the same program on that CPU); those calls were not decided.", |m| &m.kernel_skipped_runs),
    ("d4c_enforcement_intact", "gauge", "1 while every program of d4c is attached with the daemon's maps (checked every second); 0 while one is lost and not repaired (readiness fails).", |m| &m.enforcement_intact),
    ("d4c_enforcement_sound", "gauge", "1 where blocking is guaranteed on this node (BPF LSM on 6.2+ or 6.1.54+; fmod_ret on a kernel that does not preempt kernel code); 0 where the kernel may skip d4c's programs, or nothing is enforced (`d4c doctor` says why and how to fix it).", |m| &m.enforcement_sound),
    ("d4c_enforcement_lost_total", "counter", "Programs of d4c found detached (or running other maps) by the daemon's check; each is re-attached at once.", |m| &m.enforcement_lost),
    ("d4c_previous_builds_attached", "gauge", "Programs of a previous d4c build still attached: an upgrade waits for the runtime's Synchronize (it stays above 0 while no runtime connects).", |m| &m.previous_builds),
    ("d4c_alert_documents_total", "counter", "Documents written to alert sinks.", |m| &m.sink_documents),
    ("d4c_alert_sink_failures_total", "counter", "Documents an alert sink failed to take.", |m| &m.sink_failures),
];

/// The Elasticsearch sink's series, shown once that sink runs.
const ELASTICSEARCH: [Series<BulkStats>; 5] = [
    (
        "d4c_elasticsearch_backlog",
        "gauge",
        "Documents buffered for Elasticsearch, not yet acknowledged.",
        |s| &s.backlog,
    ),
    (
        "d4c_elasticsearch_sent_total",
        "counter",
        "Documents Elasticsearch accepted.",
        |s| &s.sent,
    ),
    (
        "d4c_elasticsearch_dropped_total",
        "counter",
        "Documents dropped because the Elasticsearch buffer was full.",
        |s| &s.dropped,
    ),
    (
        "d4c_elasticsearch_rejected_total",
        "counter",
        "Documents Elasticsearch refused (per-item errors or a refused request).",
        |s| &s.rejected,
    ),
    (
        "d4c_elasticsearch_retries_total",
        "counter",
        "Bulk requests retried after a transport error, 429 or 5xx.",
        |s| &s.retries,
    ),
];

impl Metrics {
    /// The text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        series(&mut s, &SERIES, self);
        if let Some(es) = self.elasticsearch.get() {
            series(&mut s, &ELASTICSEARCH, es);
        }
        self.attach_mode_family(&mut s);
        self.decisions_family(&mut s);
        self.selectors_family(&mut s);
        self.nri_family(&mut s);
        s
    }

    /// `d4c_attach_mode{mode}`: 1 for the mode in force, 0 for the others.
    fn attach_mode_family(&self, s: &mut String) {
        header(s, "d4c_attach_mode", "gauge", "How the kernel programs are attached: 1 for the mode in force (lsm: BPF LSM; fmod_ret: security_* functions), 0 for the others.");
        let mode = self.attach_mode.load(Ordering::Relaxed);
        for (i, m) in AttachMode::ALL.iter().enumerate() {
            let v = u64::from(mode == i as u64 + 1);
            let _ = writeln!(s, "d4c_attach_mode{{mode=\"{m}\"}} {v}");
        }
    }

    /// `d4c_decisions_total{operation,action}`.
    fn decisions_family(&self, s: &mut String) {
        header(
            s,
            "d4c_decisions_total",
            "counter",
            "Decisions by operation and action.",
        );
        let decisions = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for ((op, action), n) in decisions.iter() {
            let _ = writeln!(
                s,
                "d4c_decisions_total{{operation=\"{op}\",action=\"{action}\"}} {n}"
            );
        }
    }

    /// `d4c_nri_request_duration_seconds{event}`: a histogram per NRI request kind.
    fn nri_family(&self, s: &mut String) {
        const NAME: &str = "d4c_nri_request_duration_seconds";
        header(s, NAME, "histogram", "Time to answer NRI requests.");
        let nri = self.nri.lock().unwrap_or_else(PoisonError::into_inner);
        for (event, h) in nri.iter() {
            for (b, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(s, "{NAME}_bucket{{event=\"{event}\",le=\"{b}\"}} {n}");
            }
            let _ = writeln!(
                s,
                "{NAME}_bucket{{event=\"{event}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(s, "{NAME}_sum{{event=\"{event}\"}} {}", h.sum);
            let _ = writeln!(s, "{NAME}_count{{event=\"{event}\"}} {}", h.count);
        }
    }
}

/// `# HELP` and `# TYPE` of a family.
fn header(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Each series of `table`, valued from `source`.
fn series<T>(s: &mut String, table: &[Series<T>], source: &T) {
    for (name, kind, help, value) in table {
        header(s, name, kind, help);
        let _ = writeln!(s, "{name} {}", value(source).load(Ordering::Relaxed));
    }
}
