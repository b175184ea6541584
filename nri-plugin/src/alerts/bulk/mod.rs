//! An Elasticsearch-compatible `_bulk` sink: documents are buffered (bounded; overflow is
//! counted, never blocking enforcement), sent in batches to the data streams their
//! `data_stream` fields name, retried with capped exponential backoff on transport
//! errors, 429 and 5xx. TLS with the system roots or a CA file; API key or basic auth.

use super::sink::Sink;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where and how to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkConfig {
    /// Base URL, e.g. `https://es.example:9200` (`/_bulk` is appended).
    pub url: String,
    pub api_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of CA certificates to trust instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Documents per request.
    pub batch: usize,
    /// Longest wait before a partial batch is sent.
    pub flush: Duration,
    /// Documents buffered while the endpoint is slow or down; beyond it they are dropped.
    pub buffer: usize,
    pub max_backoff: Duration,
}

impl BulkConfig {
    #[must_use]
    pub fn new(url: &str) -> Self {
        BulkConfig {
            url: url.trim_end_matches('/').to_owned(),
            api_key: None,
            username: None,
            password: None,
            ca_file: None,
            batch: 500,
            flush: Duration::from_secs(1),
            buffer: 10_000,
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Counters of the sink, shared with the metrics.
#[derive(Debug, Default)]
pub struct BulkStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
    pub rejected: AtomicU64,
    pub backlog: AtomicU64,
}

/// The sink handle; the sending happens on its own thread.
pub struct BulkSink {
    tx: SyncSender<String>,
    pub stats: Arc<BulkStats>,
}

/// Why the sink cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("reading the CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the CA file {path} holds no certificate")]
    NoCertificate { path: PathBuf },
}

impl BulkSink {
    pub fn start(config: BulkConfig) -> Result<Self, BulkError> {
        let agent = agent(&config)?;
        let (tx, rx) = sync_channel(config.buffer);
        let stats = Arc::new(BulkStats::default());
        let worker_stats = stats.clone();
        std::thread::Builder::new()
            .name("d4c-bulk".into())
            .spawn(move || run(&config, &agent, &rx, &worker_stats))
            .map_err(|source| BulkError::CaFile {
                path: "thread".into(),
                source,
            })?;
        Ok(BulkSink { tx, stats })
    }
}

impl Sink for BulkSink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self.tx.try_send(line.to_owned()) {
            Ok(()) => {
                self.stats.backlog.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Err(io::Error::other(
                    "the Elasticsearch buffer is full; document dropped",
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(io::Error::other("the Elasticsearch sender stopped"))
            }
        }
    }
}

fn agent(config: &BulkConfig) -> Result<ureq::Agent, BulkError> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|source| BulkError::CaFile {
            path: path.clone(),
            source,
        })?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(Result::ok)
            .filter_map(|item| match item {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(BulkError::NoCertificate { path: path.clone() });
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .tls_config(tls.build())
        .build()
        .into())
}

/// The data stream a document goes to: `logs-<dataset>-<namespace>`.
fn index_of(doc: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap_or_default();
    let ds = &v["data_stream"];
    format!(
        "{}-{}-{}",
        ds["type"].as_str().unwrap_or("logs"),
        ds["dataset"].as_str().unwrap_or("cloud_defend.alerts"),
        ds["namespace"].as_str().unwrap_or("default")
    )
}

fn body(batch: &[String]) -> String {
    let mut out = String::new();
    for doc in batch {
        out.push_str(&serde_json::json!({"create": {"_index": index_of(doc)}}).to_string());
        out.push('\n');
        out.push_str(doc);
        out.push('\n');
    }
    out
}

enum Outcome {
    Done,
    Retry(String),
}

fn send(config: &BulkConfig, agent: &ureq::Agent, payload: &str, stats: &BulkStats) -> Outcome {
    let mut req = agent
        .post(format!("{}/_bulk", config.url))
        .header("Content-Type", "application/x-ndjson");
    if let Some(key) = &config.api_key {
        req = req.header("Authorization", format!("ApiKey {key}"));
    } else if let Some(user) = &config.username {
        let raw = format!("{user}:{}", config.password.as_deref().unwrap_or(""));
        req = req.header("Authorization", format!("Basic {}", base64(raw.as_bytes())));
    }
    match req.send(payload) {
        Err(e) => Outcome::Retry(e.to_string()),
        Ok(mut response) => {
            let code = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            if code == 429 || code >= 500 {
                return Outcome::Retry(format!("HTTP {code}"));
            }
            if code >= 300 {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(status = code, body = %text.chars().take(500).collect::<String>(), "Elasticsearch refused a bulk request; its documents are dropped");
                return Outcome::Done;
            }
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if v["errors"].as_bool() == Some(true) {
                let failed = v["items"].as_array().map_or(0, |items| {
                    items
                        .iter()
                        .filter(|i| i["create"]["status"].as_u64().unwrap_or(0) >= 300)
                        .count()
                });
                stats.rejected.fetch_add(failed as u64, Ordering::Relaxed);
                tracing::error!(failed, "Elasticsearch rejected documents of a bulk request");
            }
            Outcome::Done
        }
    }
}

fn run(config: &BulkConfig, agent: &ureq::Agent, rx: &Receiver<String>, stats: &BulkStats) {
    let mut batch: Vec<String> = Vec::with_capacity(config.batch);
    loop {
        let deadline = Instant::now() + config.flush;
        while batch.len() < config.batch {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(doc) => batch.push(doc),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    if batch.is_empty() {
                        return;
                    }
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let payload = body(&batch);
        let mut delay = Duration::from_millis(100);
        loop {
            match send(config, agent, &payload, stats) {
                Outcome::Done => break,
                Outcome::Retry(why) => {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %why, retry_in = ?delay, "Elasticsearch bulk request failed");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(config.max_backoff);
                }
            }
        }
        let n = batch.len() as u64;
        stats.sent.fetch_add(n, Ordering::Relaxed);
        stats.backlog.fetch_sub(n, Ordering::Relaxed);
        batch.clear();
    }
}

/// Standard base64 with padding (for basic auth).
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
