//! Prometheus metrics: what the daemon manages, what the kernel decided, how fast NRI
//! requests are answered, policy reloads, alert sinks; rendered in the text exposition
//! format ([`exposition`]) and served with `/healthz` and `/readyz` over a minimal HTTP/1.1 endpoint
//! ([`serve`]).

mod exposition;
mod http;
mod selectors;

pub use http::serve;
pub use selectors::{AuditedPolicy, Outcome, SelectorKey, WouldBlock};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the NRI latency histogram buckets.
const BUCKETS: [f64; 10] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All metrics of one daemon.
#[derive(Default)]
pub struct Metrics {
    pub managed_containers: AtomicU64,
    pub rule_sets: AtomicU64,
    pub policy_revision: AtomicU64,
    pub policy_valid: AtomicU64,
    pub policy_reload_failures: AtomicU64,
    pub refused_containers: AtomicU64,
    pub sink_documents: AtomicU64,
    pub sink_failures: AtomicU64,
    /// Kernel counters (`CNT_*`), as last read.
    pub kernel_denied: AtomicU64,
    pub kernel_events: AtomicU64,
    pub ringbuf_drops: AtomicU64,
    pub kernel_path_errors: AtomicU64,
    pub kernel_hook_errors: AtomicU64,
    pub kernel_map_full: AtomicU64,
    pub kernel_skipped_runs: AtomicU64,
    /// Previous builds' programs still attached (an upgrade waiting for Synchronize).
    pub previous_builds: AtomicU64,
    /// 1 while enforcement is intact (or not checked: `enforcement: none`), else 0.
    pub enforcement_intact: AtomicU64,
    /// 1 where blocking is guaranteed on the node (`d4c doctor`), else 0.
    pub enforcement_sound: AtomicU64,
    /// Programs found lost by the daemon's checks.
    pub enforcement_lost: AtomicU64,
    /// Events the containers' budgets held back (summarized, not written one by one).
    pub events_throttled: AtomicU64,
    /// How the hooks are attached: 0 none, 1 + the index in `AttachMode::ALL`.
    attach_mode: AtomicU64,
    decisions: Mutex<BTreeMap<(String, String), u64>>,
    /// `d4c_selector_matches_total` ([`selectors`]).
    selectors: Mutex<selectors::Selectors>,
    /// Would-be blocks per audited policy file.
    audits: Mutex<BTreeMap<String, AuditedPolicy>>,
    nri: Mutex<BTreeMap<String, Histogram>>,
    /// The Elasticsearch sink's counters, once that sink runs.
    pub elasticsearch: std::sync::OnceLock<std::sync::Arc<crate::alerts::bulk::BulkStats>>,
}

impl Metrics {
    /// Whether the daemon is ready: its programs enforce (readiness probes: `/readyz`).
    #[must_use]
    pub fn ready(&self) -> bool {
        self.enforcement_intact.load(Ordering::Relaxed) == 1
    }

    /// Records how the hooks are attached (`None`: nothing is enforced).
    pub fn set_attach_mode(&self, mode: Option<crate::bpf::AttachMode>) {
        let v = mode.and_then(|m| crate::bpf::AttachMode::ALL.iter().position(|a| *a == m));
        self.attach_mode
            .store(v.map_or(0, |i| i as u64 + 1), Ordering::Relaxed);
    }

    /// Records whether blocking is guaranteed on the node (`None`: nothing is enforced).
    pub fn set_sound(&self, sound: Option<bool>) {
        self.enforcement_sound
            .store(u64::from(sound == Some(true)), Ordering::Relaxed);
    }

    /// Counts one decision per action it carries.
    pub fn decision(&self, operation: &str, actions: &[&str]) {
        let mut d = self
            .decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for a in actions {
            *d.entry((operation.to_owned(), (*a).to_owned()))
                .or_default() += 1;
        }
    }

    /// Records how long an NRI request took.
    pub fn nri_request(&self, event: &str, seconds: f64) {
        let mut h = self
            .nri
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = h.entry(event.to_owned()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }
}

#[cfg(test)]
mod tests;
