//! Daemon-core benchmarks: registering a container (what `StartContainer` waits for, kernel
//! writes excluded), reloading the policy with 500 registered containers, and starts
//! answered through the owner task while a large policy reloads.
//!
//! Run: `cargo bench -p d4c --bench registry`.

use criterion::{criterion_group, Criterion};
use d4c::container::ContainerInfo;
use d4c::daemon::kernel::MemoryKernel;
use d4c::daemon::registry::Registry;
use d4c_policy::{load_str, Container, ImageRef, Policy};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// 48 file + 16 process selectors, label- and namespace-conditioned, one response each.
fn policy(tag: &str) -> Arc<Policy> {
    let mut y = String::from("file:\n  selectors:\n");
    for i in 0..48 {
        let _ = write!(y, "    - name: f{i}\n      operation: [createExecutable, modifyExecutable]\n      targetFilePath: [/opt/{tag}{i}/**, /usr/bin/*]\n      kubernetesPodLabel: ['app:svc{}']\n", i % 50);
    }
    y.push_str("  responses:\n");
    for i in 0..48 {
        let _ = write!(y, "    - match: [f{i}]\n      actions: [alert, block]\n");
    }
    y.push_str("process:\n  selectors:\n");
    for i in 0..16 {
        let _ = write!(y, "    - name: p{i}\n      operation: [exec]\n      processName: [tool{i}]\n      kubernetesNamespace: ['prod-*']\n");
    }
    y.push_str("  responses:\n");
    for i in 0..16 {
        let _ = write!(y, "    - match: [p{i}]\n      actions: [log]\n");
    }
    Arc::new(load_str("bench.yaml", &y).unwrap().policy)
}

fn info(i: usize) -> ContainerInfo {
    info_with_labels(i, i % 50)
}

/// Container `i` with the label set `app:svc{set}`.
fn info_with_labels(i: usize, set: usize) -> ContainerInfo {
    let mut attrs = Container {
        image: ImageRef::parse("docker.io/library/nginx:1.25").ok(),
        namespace: Some("prod-eu".into()),
        pod_name: Some(format!("pod-{i}")),
        orchestrator: Some("kubernetes".into()),
        ..Container::default()
    };
    attrs.labels.insert("app".into(), format!("svc{set}"));
    ContainerInfo {
        id: format!("c{i}"),
        name: "app".into(),
        attrs,
        cgroup_id: 1_000 + i as u64,
        cgroup_dir: None,
    }
}

fn with_containers(n: usize) -> Registry<MemoryKernel> {
    let mut r = Registry::new(MemoryKernel::default(), policy("a"));
    for i in 0..n {
        r.start(info(i)).unwrap();
    }
    r
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry");
    g.sample_size(20);
    g.bench_function("start: 500th container (rule set exists)", |b| {
        b.iter_batched_ref(
            || with_containers(499),
            |r| black_box(r.start(info(499)).unwrap()),
            criterion::BatchSize::LargeInput,
        );
    });
    g.bench_function("reload with 500 containers", |b| {
        let (pa, pb) = (policy("a"), policy("b"));
        let mut r = with_containers(500);
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            black_box(
                r.reload(if flip { pb.clone() } else { pa.clone() })
                    .unwrap(),
            )
        });
    });
    g.finish();
}

fn summary() {
    let mut r = Registry::new(MemoryKernel::default(), policy("a"));
    let mut times: Vec<f64> = (0..500)
        .map(|i| {
            let t = Instant::now();
            r.start(info(i)).unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    // The p-th percentile (p in percent), rounded down to a sample.
    let pct = |p: usize| times[(times.len() - 1) * p / 100] * 1e6;
    let t = Instant::now();
    r.reload(policy("b")).unwrap();
    let reload = t.elapsed();
    println!("\nsummary (one run):");
    println!("registry start over 500 containers: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (kernel writes excluded)", pct(50), pct(99), pct(100));
    println!(
        "reload with 500 containers ({} rule sets): {reload:?} = {:.3}x of the 50 ms target",
        r.rule_sets(),
        reload.as_secs_f64() / 0.05
    );
}

/// `n` label-conditioned file selectors (one response each), over 50 label sets.
fn large_policy(n: usize, tag: &str) -> Arc<Policy> {
    let mut y = String::from("file:\n  selectors:\n");
    for i in 0..n {
        let _ = write!(y, "    - name: f{i}\n      operation: [createExecutable, modifyExecutable]\n      targetFilePath: [/opt/{tag}{i}/**, /srv/{i}/*]\n      kubernetesPodLabel: ['app:svc{}']\n", i % 50);
    }
    y.push_str("  responses:\n");
    for i in 0..n {
        let _ = write!(y, "    - match: [f{i}]\n      actions: [alert, block]\n");
    }
    Arc::new(load_str("large.yaml", &y).unwrap().policy)
}

/// Times of `n` concurrent starts through the owner task (containers `first..first + n`),
/// in ms, sorted.
/// `new_sets`: each with a label set no container had (its rule set is compiled at its
/// start), else with one of the 50 existing ones.
async fn concurrent_starts(
    h: &d4c::daemon::owner::Handle,
    first: usize,
    n: usize,
    new_sets: bool,
) -> Vec<f64> {
    let starts: Vec<_> = (first..first + n)
        .map(|i| {
            let h = h.clone();
            let c = info_with_labels(i, if new_sets { 10_000 + i } else { i % 50 });
            tokio::spawn(async move {
                let s = Instant::now();
                h.start(c).await.unwrap();
                s.elapsed().as_secs_f64() * 1e3
            })
        })
        .collect();
    let mut times = Vec::new();
    for s in starts {
        times.push(s.await.unwrap());
    }
    times.sort_by(f64::total_cmp);
    times
}

/// 100 containers start at once (their rule sets exist) while the owner task reloads a
/// 5,000-selector policy for 200 registered containers (50 rule sets), next to 100 starts
/// with no reload: each start's time to its answer, and the reload's.
fn starts_during_a_reload() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (pa, pb) = (large_policy(5_000, "a"), large_policy(5_000, "b"));
        let mut r = Registry::new(MemoryKernel::default(), pa);
        for i in 0..200 {
            r.start(info(i)).unwrap();
        }
        let h = d4c::daemon::owner::spawn(r);
        // A first batch warms the runtime and the registry's allocations up (not counted).
        let _ = concurrent_starts(&h, 1_000, 100, false).await;
        let quiet = concurrent_starts(&h, 200, 100, false).await;
        let t = Instant::now();
        let reload = tokio::spawn({
            let h = h.clone();
            async move {
                h.reload(pb).await.unwrap();
                t.elapsed().as_secs_f64() * 1e3
            }
        });
        let busy = concurrent_starts(&h, 300, 100, false).await;
        let reload = reload.await.unwrap();
        // Starts whose rule sets are new (compiled in the owner task, one after another),
        // during another reload.
        let t = Instant::now();
        let reload2 = tokio::spawn({
            let (h, pa) = (h.clone(), large_policy(5_000, "a"));
            async move {
                h.reload(pa).await.unwrap();
                t.elapsed().as_secs_f64() * 1e3
            }
        });
        let fresh = concurrent_starts(&h, 400, 100, true).await;
        let reload2 = reload2.await.unwrap();
        let pct = |v: &[f64], p: usize| v[(v.len() - 1) * p / 100];
        println!(
            "100 concurrent starts, no reload: p50 {:.2} ms, p99 {:.2} ms",
            pct(&quiet, 50),
            pct(&quiet, 99)
        );
        println!(
            "100 concurrent starts during a reload of a 5,000-selector policy (200 containers, {reload:.0} ms): p50 {:.2} ms, p99 {:.2} ms = {:.3}x of the 10 ms target, {:.2}x the p99 with no reload",
            pct(&busy, 50),
            pct(&busy, 99),
            pct(&busy, 99) / 10.0,
            pct(&busy, 99) / pct(&quiet, 99)
        );
        println!(
            "100 concurrent starts with 100 new rule sets, during a reload ({reload2:.0} ms): p50 {:.2} ms, p99 {:.2} ms = {:.3}x of the 10 ms target",
            pct(&fresh, 50),
            pct(&fresh, 99),
            pct(&fresh, 99) / 10.0
        );
    });
}

criterion_group!(group, benches);

fn main() {
    group();
    summary();
    starts_during_a_reload();
    Criterion::default().configure_from_args().final_summary();
}
