//! Fuzz target: any bytes through parse, validate, compile and the emulated kernel lookup.
//! It must never panic or hang, and a valid policy's tables must agree with the evaluator.
#![no_main]

use d4c_policy::compile::{compile_rule_set, RuleSetSpec};
use d4c_policy::emulate::KernelMaps;
use d4c_policy::{check_texts, evaluate, Container, Event, FileOp, ImageRef, Mount, ProcessOp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (policy, diagnostics) = check_texts(&[("fuzz.yaml".to_owned(), text.to_owned())]);
    for d in &diagnostics {
        let _ = d.to_string();
    }
    let Some(policy) = policy else { return };
    let mut pod = Container {
        image: ImageRef::parse("docker.io/library/nginx:1.25").ok(),
        namespace: Some("default".into()),
        pod_name: Some("nginx-pod-1".into()),
        orchestrator: Some("kubernetes".into()),
        mounts: vec![Mount {
            destination: "/data".into(),
            file: false,
        }],
        ..Container::default()
    };
    pod.labels.insert("app".into(), "web".into());
    for container in [Container::default(), pod] {
        let spec = RuleSetSpec::for_container(&policy, &container);
        let Ok(tables) = compile_rule_set(&policy, &spec, 1) else {
            continue;
        };
        let maps = KernelMaps::from_tables(&tables);
        let mut events: Vec<Event> = ["/usr/bin/ls", "/tmp/x", "/data/a", "/", "/memfd:x"]
            .iter()
            .flat_map(|p| {
                FileOp::ALL.map(|op| Event::File {
                    op,
                    path: (*p).to_owned(),
                })
            })
            .collect();
        // A shell run as itself, and one run through a link to another file (dash,
        // busybox): both identities are decided.
        for (executable, name, started_as) in [
            ("/bin/sh", "sh", None),
            ("/bin/busybox", "busybox", Some("/bin/sh")),
        ] {
            events.extend(ProcessOp::ALL.map(|op| Event::Process {
                op,
                executable: executable.into(),
                name: name.into(),
                started_as: started_as.map(Into::into),
                interactive: true,
            }));
        }
        for ev in &events {
            assert_eq!(
                maps.decide(1, ev),
                evaluate(&policy, &container, ev).actions,
                "{ev:?}"
            );
        }
    }
});
