//! Compile-time and table-size benchmarks for the policy compiler, and evaluator throughput.
//!
//! Run: `cargo bench -p d4c-policy --bench compile`. Besides criterion's timings it prints
//! one summary line per scenario (table bytes, entries, time against the target).

use criterion::{criterion_group, Criterion};
use d4c_policy::compile::{compile_rule_set, RuleSetSpec, RuleSets};
use d4c_policy::emulate::KernelMaps;
use d4c_policy::{evaluate, load_str, Container, Event, FileOp, ImageRef, Policy};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A policy of `files` file selectors and `procs` process selectors, one response each
/// (every fourth response excludes its neighbour), with paths, namespaces and labels.
fn policy(files: usize, procs: usize) -> Policy {
    let mut y = String::from("file:\n  selectors:\n");
    for i in 0..files {
        let _ = write!(
            y,
            "    - name: f{i}\n      operation: [createExecutable, modifyExecutable, createFile]\n"
        );
        let _ = writeln!(
            y,
            "      targetFilePath: [/opt/app{i}/**, /usr/lib/m{}/bin/*, /etc/c{i}.conf]",
            i % 97
        );
        match i % 4 {
            0 => {
                let _ = writeln!(y, "      kubernetesNamespace: ['prod-*', default]");
            }
            1 => {
                let _ = writeln!(y, "      kubernetesPodLabel: ['app:svc{}']", i % 50);
            }
            2 => {
                let _ = writeln!(y, "      containerImageName: [img{}]", i % 10);
            }
            _ => {}
        }
    }
    y.push_str("  responses:\n");
    for i in 0..files {
        let ex = if i % 4 == 3 {
            format!("      exclude: [f{}]\n", (i + 1) % files)
        } else {
            String::new()
        };
        let act = if i % 3 == 0 {
            "[alert, block]"
        } else {
            "[alert]"
        };
        let _ = write!(y, "    - match: [f{i}]\n{ex}      actions: {act}\n");
    }
    if procs > 0 {
        y.push_str("process:\n  selectors:\n");
        for i in 0..procs {
            let _ = write!(y, "    - name: p{i}\n      operation: [exec]\n");
            if i % 2 == 0 {
                let _ = writeln!(
                    y,
                    "      processExecutable: [/usr/bin/tool{i}, /opt/p{i}/*]"
                );
            } else {
                let _ = writeln!(y, "      processName: [proc{i}]");
            }
        }
        y.push_str("  responses:\n");
        for i in 0..procs {
            let _ = write!(y, "    - match: [p{i}]\n      actions: [log]\n");
        }
    }
    load_str("bench.yaml", &y)
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

fn pod(app: usize) -> Container {
    let mut c = Container {
        image: ImageRef::parse("docker.io/library/img3:1.0").ok(),
        namespace: Some("prod-eu".into()),
        pod_name: Some(format!("svc{app}-abc")),
        orchestrator: Some("kubernetes".into()),
        ..Container::default()
    };
    c.labels.insert("app".into(), format!("svc{app}"));
    c
}

fn time<T>(iters: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed() / iters
}

fn benches(c: &mut Criterion) {
    let small = policy(56, 8);
    let stress = policy(4_900, 100);
    let container = pod(7);
    let small_spec = RuleSetSpec::for_container(&small, &container);
    let stress_spec = RuleSetSpec::for_container(&stress, &container);

    c.bench_function("compile (a) 64 selectors / 64 responses", |b| {
        b.iter(|| compile_rule_set(black_box(&small), &small_spec, 1).unwrap());
    });
    let mut g = c.benchmark_group("stress");
    g.sample_size(10);
    g.bench_function("compile (b) 5,000 selectors", |b| {
        b.iter(|| compile_rule_set(black_box(&stress), &stress_spec, 1).unwrap());
    });
    g.bench_function("assign (c) 1,000 containers / 50 label sets", |b| {
        b.iter(|| {
            let mut sets = RuleSets::starting_at(1);
            for i in 0..1_000 {
                black_box(sets.assign(&small, &pod(i % 50)).unwrap());
            }
        });
    });
    g.finish();
    let ev = Event::File {
        op: FileOp::CreateExecutable,
        path: "/usr/lib/m7/bin/tool".into(),
    };
    c.bench_function("reference evaluator, 64-selector policy, one event", |b| {
        b.iter(|| evaluate(black_box(&small), &container, black_box(&ev)));
    });
    let maps = KernelMaps::from_tables(&compile_rule_set(&small, &small_spec, 1).unwrap());
    c.bench_function("emulated kernel lookup, same event", |b| {
        b.iter(|| maps.decide(1, black_box(&ev)));
    });
}

/// One line per scenario with table sizes and time against the target.
fn summary() {
    let small = policy(56, 8);
    let stress = policy(4_900, 100);
    let container = pod(7);
    let a_spec = RuleSetSpec::for_container(&small, &container);
    let b_spec = RuleSetSpec::for_container(&stress, &container);
    let a = compile_rule_set(&small, &a_spec, 1).unwrap();
    let b = compile_rule_set(&stress, &b_spec, 1).unwrap();
    let ta = time(200, || compile_rule_set(&small, &a_spec, 1).unwrap());
    let tb = time(5, || compile_rule_set(&stress, &b_spec, 1).unwrap());
    let mut sets = RuleSets::starting_at(1);
    let (mut bytes, mut entries) = (0, 0);
    let start = Instant::now();
    for i in 0..1_000 {
        if let (_, Some(t)) = sets.assign(&small, &pod(i % 50)).unwrap() {
            bytes += t.bytes();
            entries += t.len();
        }
    }
    let tc = start.elapsed();
    let ev = Event::File {
        op: FileOp::CreateExecutable,
        path: "/usr/lib/m7/bin/tool".into(),
    };
    let te = time(100_000, || evaluate(&small, &container, &ev));
    let maps = KernelMaps::from_tables(&a);
    let tk = time(100_000, || maps.decide(1, &ev));
    println!("\nsummary (one run):");
    println!("(a) 64 selectors/64 responses: compile {ta:?} = {:.3}x of the 1 ms target; {} entries, {} table bytes = {:.3}x of the 1 MiB target", ta.as_secs_f64() / 1e-3, a.len(), a.bytes(), a.bytes() as f64 / f64::from(1 << 20));
    println!("(b) 5,000 selectors: compile {tb:?} = {:.3}x of the 100 ms target; {} entries, {} table bytes", tb.as_secs_f64() / 0.1, b.len(), b.bytes());
    println!("(c) 1,000 containers, 50 label sets: {tc:?}; {} rule sets, {entries} entries, {bytes} table bytes", sets.len());
    println!("(d) reference evaluator {te:?}/event ({:.0} events/s); emulated kernel lookup {tk:?}/event; evaluator/lookup = {:.1}x", 1.0 / te.as_secs_f64(), te.as_secs_f64() / tk.as_secs_f64());
}

criterion_group!(group, benches);

fn main() {
    group();
    summary();
    Criterion::default().configure_from_args().final_summary();
}
