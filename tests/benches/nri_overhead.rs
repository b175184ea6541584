//! What d4c adds to a real containerd: CRI `StartContainer` latency over 200 containers
//! without and with the `d4c nri` daemon (p50, p99, their difference), and the daemon's
//! resident memory with 500 registered containers. Needs root and containerd 1.7 with NRI
//! (`tests/containerd/setup.sh`); prints a skip line otherwise.
//!
//! Run: `cargo bench -p d4c-tests --bench nri_overhead`. The daemon runs with
//! `enforcement: none` (this host cannot load LSM programs), so kernel map writes, a few
//! microseconds each, are not included.

#[path = "../tests/containerd_support/mod.rs"]
mod containerd_support;

use containerd_support::pods::Pod;
use containerd_support::{skip_reason, unique_id, Containerd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POLICY: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable, modifyExecutable]\n      kubernetesNamespace: [bench]\n  responses:\n    - match: [drift]\n      actions: [alert, block]\n";

fn d4c_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("d4c")
}

/// Starts `n` containers in pods of at most 50; returns each `StartContainer` latency (s).
async fn start_many(
    cri: &mut containerd_support::pods::Cri,
    ctd: &Containerd,
    tag: &str,
    n: usize,
    pods: &mut Vec<Pod>,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if i % 50 == 0 {
            pods.push(
                Pod::run(
                    cri,
                    ctd,
                    &format!("{tag}{}", i / 50),
                    "bench",
                    &[("app", tag)],
                )
                .await,
            );
        }
        let pod = pods.last().unwrap();
        let id = pod
            .create(cri, &format!("c{i}"), &["/bin/sleep", "2147483647"])
            .await;
        let t = Instant::now();
        Pod::start(cri, &id).await.unwrap();
        out.push(t.elapsed().as_secs_f64());
    }
    out
}

/// The p-th percentile (p in percent, the nearest sample) in milliseconds.
fn pct(v: &[f64], p: usize) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) * p + 50) / 100] * 1e3
}

/// The plugin's own `StartContainer` handling time, from its latency histogram: the bucket
/// bounds that hold p50 and p99, and the mean.
fn plugin_time(port: u16) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    let series = |suffix: &str| -> Vec<(String, f64)> {
        body.lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "d4c_nri_request_duration_seconds_{suffix}{{event=\"StartContainer\""
                ))
            })
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    };
    let count = series("count").first().map_or(0.0, |x| x.1);
    let sum = series("sum").first().map_or(0.0, |x| x.1);
    let bound = |q: f64| {
        series("bucket")
            .iter()
            .find(|(_, n)| *n >= q * count)
            .and_then(|(k, _)| {
                k.split("le=\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{count} requests, mean {:.3} ms, p50 <= {} s, p99 <= {} s",
        sum / count.max(1.0) * 1e3,
        bound(0.5),
        bound(0.99)
    )
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if skip_reason().is_some() {
        return;
    }
    assert!(
        d4c_bin().exists(),
        "build d4c first: cargo build --release -p d4c"
    );
    let ctd = Containerd::start(&unique_id());
    let mut cri = ctd.cri().await;
    let mut pods = Vec::new();

    let without = start_many(&mut cri, &ctd, "plain", 200, &mut pods).await;
    for p in pods.drain(..) {
        p.remove(&mut cri).await;
    }

    let dir = ctd.scratch.join("d4c");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/p.yaml"), POLICY).unwrap();
    let status = dir.join("status.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("d4c.yaml"),
        format!(
            "policyDir: {}\nnriSocket: {}\nenforcement: none\nstatusSocket: {}\nmetricsAddress: \"127.0.0.1:{port}\"\nalerts:\n  stdout: false\nlogLevel: warn\n",
            dir.join("policies").display(),
            ctd.nri_socket().display(),
            status.display()
        ),
    )
    .unwrap();
    let mut daemon: Child = Command::new(d4c_bin())
        .args(["nri", "--config"])
        .arg(dir.join("d4c.yaml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !status.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(daemon.id());
    let with = start_many(&mut cri, &ctd, "d4c", 200, &mut pods).await;
    let _ = start_many(&mut cri, &ctd, "more", 300, &mut pods).await;
    let rss_500 = rss_kib(daemon.id());
    let inside = plugin_time(port);
    for p in pods.drain(..) {
        p.remove(&mut cri).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();

    println!("StartContainer over 200 containers (ms):");
    println!(
        "  without d4c: p50 {:.2} p99 {:.2}",
        pct(&without, 50),
        pct(&without, 99)
    );
    println!(
        "  with d4c:    p50 {:.2} p99 {:.2}",
        pct(&with, 50),
        pct(&with, 99)
    );
    println!(
        "  added by d4c: p50 {:+.2} ms, p99 {:+.2} ms; ratio with/without p50 {:.3}x",
        pct(&with, 50) - pct(&without, 50),
        pct(&with, 99) - pct(&without, 99),
        pct(&with, 50) / pct(&without, 50)
    );
    println!("  time inside the plugin (its StartContainer histogram): {inside}");
    println!("daemon RSS: idle {} KiB, with 500 registered containers {} KiB ({:.1} MiB; target < 30 MiB)", rss_idle, rss_500, rss_500 as f64 / 1024.0);
    drop(ctd);
}
