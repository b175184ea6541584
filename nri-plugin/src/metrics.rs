//! Prometheus metrics: what the daemon manages, what the kernel decided, how fast NRI
//! requests are answered, policy reloads, alert sinks; served with `/healthz` over a
//! minimal HTTP/1.1 endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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
    /// Previous builds' programs still attached (an upgrade waiting for Synchronize).
    pub previous_builds: AtomicU64,
    /// How the hooks are attached: 0 none, 1 + the index in `AttachMode::ALL`.
    attach_mode: AtomicU64,
    decisions: Mutex<BTreeMap<(String, String), u64>>,
    nri: Mutex<BTreeMap<String, Histogram>>,
    /// The Elasticsearch sink's counters, once that sink runs.
    pub elasticsearch: std::sync::OnceLock<std::sync::Arc<crate::alerts::bulk::BulkStats>>,
}

impl Metrics {
    /// Records how the hooks are attached (`None`: nothing is enforced).
    pub fn set_attach_mode(&self, mode: Option<crate::bpf::AttachMode>) {
        let v = mode.and_then(|m| crate::bpf::AttachMode::ALL.iter().position(|a| *a == m));
        self.attach_mode
            .store(v.map_or(0, |i| i as u64 + 1), Ordering::Relaxed);
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

    /// The text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        let g = |s: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        g(
            &mut s,
            "d4c_managed_containers",
            "gauge",
            "Containers registered in the kernel.",
            &self.managed_containers,
        );
        g(
            &mut s,
            "d4c_rule_sets",
            "gauge",
            "Rule sets with entries in the kernel.",
            &self.rule_sets,
        );
        g(
            &mut s,
            "d4c_policy_revision",
            "gauge",
            "Revision of the policy in force.",
            &self.policy_revision,
        );
        g(&mut s, "d4c_policy_valid", "gauge", "1 when the policy files on disk are the policy in force, 0 when a change was rejected.", &self.policy_valid);
        g(
            &mut s,
            "d4c_policy_reload_failures_total",
            "counter",
            "Policy changes rejected (invalid or not applicable).",
            &self.policy_reload_failures,
        );
        g(
            &mut s,
            "d4c_refused_containers_total",
            "counter",
            "Container starts refused because they could not be protected.",
            &self.refused_containers,
        );
        g(
            &mut s,
            "d4c_kernel_denied_total",
            "counter",
            "Operations the kernel denied.",
            &self.kernel_denied,
        );
        g(
            &mut s,
            "d4c_kernel_events_total",
            "counter",
            "Decisions the kernel reported.",
            &self.kernel_events,
        );
        g(
            &mut s,
            "d4c_ringbuf_drops_total",
            "counter",
            "Decisions lost because the ring buffer was full.",
            &self.ringbuf_drops,
        );
        g(
            &mut s,
            "d4c_previous_builds_attached",
            "gauge",
            "Programs of a previous d4c build still attached: an upgrade waits for the runtime's Synchronize (it stays above 0 while no runtime connects).",
            &self.previous_builds,
        );
        g(
            &mut s,
            "d4c_alert_documents_total",
            "counter",
            "Documents written to alert sinks.",
            &self.sink_documents,
        );
        g(
            &mut s,
            "d4c_alert_sink_failures_total",
            "counter",
            "Documents an alert sink failed to take.",
            &self.sink_failures,
        );
        if let Some(es) = self.elasticsearch.get() {
            for (name, kind, help, v) in [
                (
                    "d4c_elasticsearch_backlog",
                    "gauge",
                    "Documents buffered for Elasticsearch, not yet acknowledged.",
                    &es.backlog,
                ),
                (
                    "d4c_elasticsearch_sent_total",
                    "counter",
                    "Documents Elasticsearch accepted.",
                    &es.sent,
                ),
                (
                    "d4c_elasticsearch_dropped_total",
                    "counter",
                    "Documents dropped because the Elasticsearch buffer was full.",
                    &es.dropped,
                ),
                (
                    "d4c_elasticsearch_rejected_total",
                    "counter",
                    "Documents Elasticsearch refused (per-item errors or a refused request).",
                    &es.rejected,
                ),
                (
                    "d4c_elasticsearch_retries_total",
                    "counter",
                    "Bulk requests retried after a transport error, 429 or 5xx.",
                    &es.retries,
                ),
            ] {
                g(&mut s, name, kind, help, v);
            }
        }
        let _ = writeln!(s, "# HELP d4c_attach_mode How the kernel programs are attached: 1 for the mode in force (lsm: BPF LSM; fmod_ret: security_* functions), 0 for the others.\n# TYPE d4c_attach_mode gauge");
        let mode = self.attach_mode.load(Ordering::Relaxed);
        for (i, m) in crate::bpf::AttachMode::ALL.iter().enumerate() {
            let _ = writeln!(
                s,
                "d4c_attach_mode{{mode=\"{m}\"}} {}",
                u64::from(mode == i as u64 + 1)
            );
        }
        let _ = writeln!(s, "# HELP d4c_decisions_total Decisions by operation and action.\n# TYPE d4c_decisions_total counter");
        for ((op, action), n) in self
            .decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                s,
                "d4c_decisions_total{{operation=\"{op}\",action=\"{action}\"}} {n}"
            );
        }
        let _ = writeln!(s, "# HELP d4c_nri_request_duration_seconds Time to answer NRI requests.\n# TYPE d4c_nri_request_duration_seconds histogram");
        for (event, h) in self
            .nri
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "d4c_nri_request_duration_seconds_bucket{{event=\"{event}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                s,
                "d4c_nri_request_duration_seconds_bucket{{event=\"{event}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "d4c_nri_request_duration_seconds_sum{{event=\"{event}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "d4c_nri_request_duration_seconds_count{{event=\"{event}\"}} {}",
                h.count
            );
        }
        s
    }
}

/// Reads a request head (up to the blank line; a client may send it in several pieces).
/// `None` when the peer closes first or sends more than 8 KiB without one.
async fn read_head(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !(head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")) {
        let n = conn.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > 8192 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// Serves `/metrics` and `/healthz` until the listener fails.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) -> std::io::Result<()> {
    loop {
        let (mut conn, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let Ok(Some(head)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), read_head(&mut conn)).await
            else {
                return;
            };
            let request = String::from_utf8_lossy(&head);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, kind) = match path {
                "/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
                "/healthz" => ("200 OK", "ok\n".to_owned(), "text/plain"),
                _ => (
                    "404 Not Found",
                    "not found: try /metrics or /healthz\n".to_owned(),
                    "text/plain",
                ),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn serves_the_exposition_format() {
        let m = Arc::new(Metrics::default());
        m.managed_containers.store(3, Ordering::Relaxed);
        m.decision("createExecutable", &["alert", "block"]);
        m.nri_request("StartContainer", 0.0004);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, m));
        let get = |path: &'static str| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        };
        let body = get("/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200 OK"));
        assert!(body.contains("\nd4c_managed_containers 3\n"));
        assert!(
            body.contains("d4c_decisions_total{operation=\"createExecutable\",action=\"block\"} 1")
        );
        assert!(body.contains(
            "d4c_nri_request_duration_seconds_bucket{event=\"StartContainer\",le=\"0.0005\"} 1"
        ));
        assert!(body.contains(
            "d4c_nri_request_duration_seconds_bucket{event=\"StartContainer\",le=\"0.00025\"} 0"
        ));
        assert!(get("/healthz").await.ends_with("ok\n"));
        // A request head in several writes (as `write!` on a socket sends it).
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        for piece in ["GET ", "/healthz", " HTTP/1.1\r\n", "Host: x\r\n", "\r\n"] {
            c.write_all(piece.as_bytes()).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200 OK") && out.ends_with("ok\n"),
            "{out}"
        );
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn elasticsearch_sink_backlog_and_drops_once_it_runs() {
        let m = Metrics::default();
        assert!(!m.render().contains("d4c_elasticsearch"));
        let stats = Arc::new(crate::alerts::bulk::BulkStats::default());
        stats.backlog.store(7, Ordering::Relaxed);
        stats.dropped.store(2, Ordering::Relaxed);
        stats.sent.store(40, Ordering::Relaxed);
        m.elasticsearch.set(stats.clone()).unwrap();
        let text = m.render();
        assert!(
            text.contains("# TYPE d4c_elasticsearch_backlog gauge\nd4c_elasticsearch_backlog 7\n"),
            "{text}"
        );
        assert!(
            text.contains("\nd4c_elasticsearch_dropped_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("\nd4c_elasticsearch_sent_total 40\n"),
            "{text}"
        );
        stats.backlog.store(0, Ordering::Relaxed);
        assert!(m.render().contains("\nd4c_elasticsearch_backlog 0\n"));
    }

    #[test]
    fn the_attach_mode_is_one_labelled_gauge() {
        let m = Metrics::default();
        assert!(m
            .render()
            .contains("d4c_attach_mode{mode=\"lsm\"} 0\nd4c_attach_mode{mode=\"fmod_ret\"} 0\n"));
        m.set_attach_mode(Some(crate::bpf::AttachMode::FmodRet));
        assert!(m
            .render()
            .contains("d4c_attach_mode{mode=\"lsm\"} 0\nd4c_attach_mode{mode=\"fmod_ret\"} 1\n"));
        m.set_attach_mode(Some(crate::bpf::AttachMode::Lsm));
        assert!(m
            .render()
            .contains("d4c_attach_mode{mode=\"lsm\"} 1\nd4c_attach_mode{mode=\"fmod_ret\"} 0\n"));
    }

    #[test]
    fn a_pending_upgrade_shows_as_a_gauge() {
        let m = Metrics::default();
        assert!(m.render().contains("\nd4c_previous_builds_attached 0\n"));
        m.previous_builds.store(1, Ordering::Relaxed);
        assert!(m.render().contains(
            "# TYPE d4c_previous_builds_attached gauge\nd4c_previous_builds_attached 1\n"
        ));
    }
}
