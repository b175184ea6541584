//! The bulk sink against a real HTTP server on loopback that fails and then recovers.

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;

/// Each request a test server received: its head and its body.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A tiny HTTP/1.1 server: answers the first `fail` requests with 503, then 200 with a
/// bulk response; records each request's headers and body.
fn server(fail: usize) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut headers = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let (status, reply) = if n < fail {
                ("503 Service Unavailable", "{}".to_owned())
            } else {
                log.lock()
                    .unwrap()
                    .push((headers, String::from_utf8_lossy(&body).into_owned()));
                ("200 OK", r#"{"errors":false,"items":[]}"#.to_owned())
            };
            let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len());
        }
    });
    (url, seen)
}

fn doc(i: usize) -> String {
    format!(
        r#"{{"n":{i},"data_stream":{{"type":"logs","dataset":"cloud_defend.alerts","namespace":"default"}}}}"#
    )
}

#[test]
fn delivers_after_the_server_recovers() {
    let (url, seen) = server(3);
    let mut config = BulkConfig::new(&url);
    config.flush = Duration::from_millis(50);
    config.api_key = Some("secret".into());
    let mut sink = BulkSink::start(config).unwrap();
    for i in 0..10 {
        sink.write_line(&doc(i)).unwrap();
    }
    let t = Instant::now();
    while sink.stats.sent.load(Ordering::Relaxed) < 10 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not delivered: {:?}",
            sink.stats
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sink.stats.retries.load(Ordering::Relaxed) >= 3);
    let seen = seen.lock().unwrap();
    let all: String = seen.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(
        all.lines().count(),
        20,
        "an action line and a document each"
    );
    assert!(all.contains(r#"{"create":{"_index":"logs-cloud_defend.alerts-default"}}"#));
    for i in 0..10 {
        assert!(all.contains(&format!(r#"{{"n":{i},"#)), "document {i}");
    }
    assert!(seen[0]
        .0
        .to_ascii_lowercase()
        .contains("authorization: apikey secret"));
}

#[test]
fn a_full_buffer_drops_and_counts() {
    let (url, _) = server(usize::MAX);
    let mut config = BulkConfig::new(&url);
    config.buffer = 5;
    config.batch = 1;
    config.max_backoff = Duration::from_millis(50);
    let mut sink = BulkSink::start(config).unwrap();
    let failures = (0..50)
        .filter(|&i| sink.write_line(&doc(i)).is_err())
        .count();
    assert!(failures >= 40, "{failures}");
    assert_eq!(sink.stats.dropped.load(Ordering::Relaxed), failures as u64);
}

#[test]
fn basic_auth_is_base64() {
    assert_eq!(base64(b"elastic:changeme"), "ZWxhc3RpYzpjaGFuZ2VtZQ==");
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b"ab"), "YWI=");
}
