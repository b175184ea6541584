//! Property test: the compiled kernel entries, looked up as the kernel does, decide exactly
//! what the reference evaluator decides, for generated policies, containers and events.
//!
//! `D4C_PROPTEST_CASES` sets the number of (policy, container) cases (default 2,000); each
//! checks 64 events, so the default run checks 128,000 (policy, container, event) triples.

use d4c_policy::compile::{compile_rule_set, RuleSetSpec};
use d4c_policy::emulate::KernelMaps;
use d4c_policy::model::{
    Actions, BlockKind, FileOp, Generation, Policy, ProcessOp, Response, Selector, Source,
};
use d4c_policy::pattern::{LabelPattern, PathPattern};
use d4c_policy::{evaluate, evaluate_dir_move, Audit, Container, Event, ImageRef, Mount};
use proptest::prelude::*;
use proptest::sample::select;
use std::sync::atomic::{AtomicUsize, Ordering};

const EVENTS_PER_CASE: usize = 64;
static CHECKED: AtomicUsize = AtomicUsize::new(0);
static DECIDED: AtomicUsize = AtomicUsize::new(0);
/// Events whose decision is an audited block (allowed, alerted as a would-be block).
static AUDITED: AtomicUsize = AtomicUsize::new(0);
/// Directory moves checked per case (to the first file events' paths), and those that block.
const MOVES_PER_CASE: usize = 8;
static MOVES: AtomicUsize = AtomicUsize::new(0);
static MOVES_BLOCKED: AtomicUsize = AtomicUsize::new(0);

fn component() -> impl Strategy<Value = String> {
    select(vec!["a", "b", "ab", "bin", "x.sh", "a.b"]).prop_map(str::to_owned)
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(component(), 1..5).prop_map(|c| format!("/{}", c.join("/"))),
        1 => Just("/".to_owned()),
        1 => (prop::collection::vec(component(), 1..3), 120usize..140).prop_map(|(c, n)| format!("/{}/{}", "ab/".repeat(n / 3).trim_end_matches('/'), c.join("/"))),
        1 => component().prop_map(|c| format!("/memfd:{c}")),
        1 => (component(), component()).prop_map(|(a, b)| format!("/memfd:{a}/{b}")),
    ]
}

fn pattern() -> impl Strategy<Value = PathPattern> {
    (prop::collection::vec(component(), 0..4), 0..4u8).prop_filter_map("valid pattern", |(c, k)| {
        let base = if c.is_empty() {
            String::new()
        } else {
            format!("/{}", c.join("/"))
        };
        let text = match k {
            0 => base,
            1 => format!("{base}/*"),
            2 => format!("{base}/**"),
            _ => format!("{base}*"),
        };
        PathPattern::parse(&text).ok()
    })
}

fn opt_list<T: std::fmt::Debug + Clone + 'static>(
    items: Vec<T>,
) -> impl Strategy<Value = Option<Vec<T>>> {
    prop::option::weighted(0.25, prop::collection::vec(select(items), 1..3))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn selector() -> impl Strategy<Value = Selector> {
    let container_part = (
        opt_list(strings(&["nginx", "ng*", "app"])),
        opt_list(strings(&["docker.io/nginx", "registry:5000/team/*"])),
        opt_list(strings(&["latest", "1.*", "v2"])),
        opt_list(strings(&["default", "prod*"])),
        opt_list(vec![
            LabelPattern {
                key: "app".into(),
                value: "web*".into(),
            },
            LabelPattern {
                key: "tier".into(),
                value: String::new(),
            },
        ]),
    );
    let event_part = (
        any::<bool>(),
        prop::option::weighted(0.6, 1u8..64),
        prop::option::weighted(0.7, prop::collection::vec(pattern(), 1..4)),
        any::<(bool, bool)>(),
        prop::option::weighted(0.4, prop::collection::vec(pattern(), 1..3)),
        opt_list(strings(&["sh", "ls", "bash"])),
        prop::option::weighted(0.3, any::<bool>()),
    );
    (container_part, event_part).prop_map(
        |((img, full, tag, ns, labels), (process, ops, paths, vols, exe, names, inter))| {
            let mut s = Selector {
                name: String::new(),
                image_name: img,
                image_full_name: full,
                image_tag: tag,
                namespace: ns,
                pod_label: labels,
                ops,
                ..Selector::default()
            };
            if process {
                s.block = Some(BlockKind::Process);
                s.ops = s.ops.map(|o| o & 3).filter(|o| *o != 0);
                // processExecutable and processName are exclusive in a valid policy.
                if exe.is_some() {
                    s.executable = exe;
                } else {
                    s.process_name = names;
                }
                s.interactive = inter;
            } else {
                s.block = Some(BlockKind::File);
                s.target_path = paths;
                s.ignore_volume_mounts = vols.0;
                s.ignore_volume_files = vols.1 && !vols.0;
            }
            s
        },
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::collection::vec(selector(), 1..10).prop_flat_map(|selectors| {
        let n = selectors.len();
        let response = (
            any::<bool>(),
            prop::collection::vec(0..n, 1..4),
            prop::collection::vec(0..n, 0..2),
            1u8..8,
            0usize..2,
        );
        // What is audited: nothing, everything, a namespace, or one of the two files.
        let audit = prop_oneof![
            3 => Just(Audit::default()),
            1 => Just(Audit::everything()),
            1 => Just(Audit { namespaces: vec!["prod-*".into()], ..Audit::default() }),
            1 => Just(Audit { policies: vec!["b.yaml".into()], ..Audit::default() }),
        ];
        (
            Just(selectors),
            prop::collection::vec(response, 1..6),
            audit,
        )
            .prop_map(|(mut selectors, responses, audit)| {
                for (i, s) in selectors.iter_mut().enumerate() {
                    s.name = format!("s{i}");
                }
                let mut policy = Policy {
                    selectors,
                    sources: ["a.yaml", "b.yaml"]
                        .map(|p| Source {
                            path: format!("/etc/d4c/policies/{p}"),
                            generation: Generation::Two,
                        })
                        .to_vec(),
                    audit,
                    ..Policy::default()
                };
                for (file, m, x, actions, source) in responses {
                    let block = if file {
                        BlockKind::File
                    } else {
                        BlockKind::Process
                    };
                    let keep = |v: Vec<usize>| -> Vec<usize> {
                        v.into_iter()
                            .filter(|&i| policy.selectors[i].kind() == block)
                            .collect()
                    };
                    let matches = keep(m);
                    if matches.is_empty() {
                        continue;
                    }
                    let excludes = keep(x);
                    policy.responses.push(Response {
                        source,
                        block,
                        pos: d4c_policy::Pos::default(),
                        matches,
                        excludes,
                        actions: Actions(actions),
                    });
                }
                policy
            })
    })
}

fn container() -> impl Strategy<Value = Container> {
    (
        prop::option::of(select(vec![
            "nginx:1.25",
            "app@sha256:abc",
            "registry:5000/team/app:v2",
            "nginx",
        ])),
        prop::option::of(select(vec!["default", "prod-eu"])),
        prop::option::of(select(vec!["web-1", "db"])),
        any::<bool>(),
        prop::collection::vec((path(), any::<bool>()), 0..3),
    )
        .prop_map(|(image, ns, app, tier, mounts)| {
            let mut c = Container {
                image: image.map(|i| ImageRef::parse(i).unwrap()),
                namespace: ns.map(str::to_owned),
                ..Container::default()
            };
            if let Some(app) = app {
                c.labels.insert("app".into(), app.into());
            }
            if tier {
                c.labels.insert("tier".into(), String::new());
            }
            c.mounts = mounts
                .into_iter()
                .map(|(destination, file)| Mount { destination, file })
                .collect();
            c
        })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (select(FileOp::ALL.to_vec()), path()).prop_map(|(op, path)| Event::File { op, path }),
        (
            select(ProcessOp::ALL.to_vec()),
            path(),
            select(vec!["sh", "ls", "bash", "x"]),
            // The name it was started by: none, a name, a path (absolute or not).
            prop_oneof![
                Just(None),
                select(vec!["sh", "bash", "busybox", "a-name-longer-than-15-bytes"])
                    .prop_map(|n| Some(n.to_owned())),
                path().prop_map(Some),
                select(vec!["./sh", "bin/bash", "/proc/self/fd/3"])
                    .prop_map(|p| Some(p.to_owned())),
            ],
            any::<bool>()
        )
            .prop_map(
                |(op, executable, name, started_as, interactive)| Event::Process {
                    op,
                    executable,
                    name: name.into(),
                    started_as,
                    interactive
                }
            ),
    ]
}

#[test]
fn kernel_tables_agree_with_reference_on_enough_cases() {
    kernel_tables_agree_with_reference();
    let (checked, decided) = (
        CHECKED.load(Ordering::Relaxed),
        DECIDED.load(Ordering::Relaxed),
    );
    println!("checked {checked} (policy, container, event) cases; {decided} had actions");
    let cases: usize = std::env::var("D4C_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    assert!(
        checked >= cases * EVENTS_PER_CASE,
        "only {checked} cases ran"
    );
    // Not vacuous: a good share of the generated events must trigger actions.
    assert!(
        decided * 20 >= checked,
        "only {decided} of {checked} events had actions"
    );
    let audited = AUDITED.load(Ordering::Relaxed);
    println!("{audited} events were audited blocks");
    assert!(
        audited * 100 >= checked,
        "only {audited} of {checked} events were audited blocks"
    );
    let (moves, blocked) = (
        MOVES.load(Ordering::Relaxed),
        MOVES_BLOCKED.load(Ordering::Relaxed),
    );
    println!("checked {moves} directory moves; {blocked} blocked");
    assert!(
        blocked * 200 >= moves,
        "only {blocked} of {moves} directory moves blocked"
    );
    assert!(blocked < moves, "every directory move blocked");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("D4C_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    fn kernel_tables_agree_with_reference(
        policy in policy(),
        container in container(),
        events in prop::collection::vec(event(), EVENTS_PER_CASE),
    ) {
        let spec = RuleSetSpec::for_container(&policy, &container);
        let tables = compile_rule_set(&policy, &spec, 7).expect("small policies compile");
        let maps = KernelMaps::from_tables(&tables);
        for ev in &events {
            let want = evaluate(&policy, &container, ev).actions;
            let got = maps.decide(7, ev);
            if want != Actions::default() {
                DECIDED.fetch_add(1, Ordering::Relaxed);
            }
            if want.contains(Actions::AUDIT) {
                AUDITED.fetch_add(1, Ordering::Relaxed);
            }
            prop_assert_eq!(got, want, "event {:?}\ncontainer {:?}\npolicy {:#?}", ev, container, policy);
        }
        CHECKED.fetch_add(events.len(), Ordering::Relaxed);
        let dirs: Vec<&String> = events.iter().filter_map(|ev| match ev {
            Event::File { path, .. } if path.len() + 2 <= d4c_common::PATH_KEY_MAX => Some(path),
            _ => None,
        }).collect();
        for pair in dirs.windows(2).take(MOVES_PER_CASE) {
            let (src, dest) = (pair[0], pair[1]);
            let want = evaluate_dir_move(&policy, &container, src, dest);
            let got = maps.decide_dir_move(7, src, dest);
            MOVES.fetch_add(1, Ordering::Relaxed);
            if want != Actions::default() {
                MOVES_BLOCKED.fetch_add(1, Ordering::Relaxed);
            }
            prop_assert_eq!(got, want, "directory moved from {} to {}\ncontainer {:?}\npolicy {:#?}", src, dest, container, policy);
        }
    }
}
