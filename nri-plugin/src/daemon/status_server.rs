//! The daemon's status socket: each connection receives one JSON [`Snapshot`] line.
//! `d4c status` reads it; only root can connect (the socket is mode 0600).

use super::owner::{Handle, Snapshot};
use crate::metrics::Metrics;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

/// Binds the socket (replacing a stale one) and serves snapshots until the listener fails;
/// the audited policies' would-be blocks come from `metrics`.
pub async fn serve(path: &Path, handle: Handle, metrics: Arc<Metrics>) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (mut conn, _) = listener.accept().await?;
        let (handle, metrics) = (handle.clone(), metrics.clone());
        tokio::spawn(async move {
            let body = match handle.status().await {
                Ok(mut s) => {
                    s.audit.would_block = metrics.audited_policies();
                    s.policy_valid = metrics
                        .policy_valid
                        .load(std::sync::atomic::Ordering::Relaxed)
                        == 1;
                    serde_json::to_string(&s).unwrap_or_default()
                }
                Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
            };
            let _ = conn.write_all(body.as_bytes()).await;
            let _ = conn.write_all(b"\n").await;
        });
    }
}

/// Reads a snapshot from a running daemon's socket (blocking; for the CLI).
pub fn query(path: &Path) -> io::Result<Snapshot> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    serde_json::from_str(&text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}: {text}")))
}
