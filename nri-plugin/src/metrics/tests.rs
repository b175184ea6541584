//! The exposition format over HTTP, the Elasticsearch and attach-mode series.

use super::*;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn serves_the_exposition_format() {
    let m = Arc::new(Metrics::default());
    m.managed_containers.store(3, Ordering::Relaxed);
    m.decision("createExecutable", &["alert", "block"]);
    m.nri_request("StartContainer", 0.0004);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, m.clone()));
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
    assert!(body.contains("d4c_decisions_total{operation=\"createExecutable\",action=\"block\"} 1"));
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
    // Ready only while enforcement is intact.
    assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
    m.enforcement_intact.store(1, Ordering::Relaxed);
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    m.enforcement_lost.store(2, Ordering::Relaxed);
    m.enforcement_intact.store(0, Ordering::Relaxed);
    let body = get("/metrics").await;
    assert!(body.contains("\nd4c_enforcement_lost_total 2\n"), "{body}");
    assert!(body.contains("\nd4c_enforcement_intact 0\n"), "{body}");
    assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
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
    assert!(m
        .render()
        .contains("# TYPE d4c_previous_builds_attached gauge\nd4c_previous_builds_attached 1\n"));
}
