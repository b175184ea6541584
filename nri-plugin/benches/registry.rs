//! Daemon-core benchmarks: registering a container (what `StartContainer` waits for, kernel
//! writes excluded) and reloading the policy with 500 registered containers.
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
    let mut attrs = Container {
        image: ImageRef::parse("docker.io/library/nginx:1.25").ok(),
        namespace: Some("prod-eu".into()),
        pod_name: Some(format!("pod-{i}")),
        orchestrator: Some("kubernetes".into()),
        ..Container::default()
    };
    attrs.labels.insert("app".into(), format!("svc{}", i % 50));
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

criterion_group!(group, benches);

fn main() {
    group();
    summary();
    Criterion::default().configure_from_args().final_summary();
}
