//! `/metrics`, `/healthz` and `/readyz` over a minimal HTTP/1.1 endpoint: one request per
//! connection, answered and closed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Metrics;

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

/// Serves `/metrics`, `/healthz` (alive) and `/readyz` (enforcing) until the listener fails.
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
                "/readyz" if metrics.ready() => ("200 OK", "ready\n".to_owned(), "text/plain"),
                "/readyz" => (
                    "503 Service Unavailable",
                    "not ready: enforcement is lost and not repaired (see the daemon's log and d4c_enforcement_lost_total)\n".to_owned(),
                    "text/plain",
                ),
                _ => (
                    "404 Not Found",
                    "not found: try /metrics, /healthz or /readyz\n".to_owned(),
                    "text/plain",
                ),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}
