//! Suggestions from the recorded fixtures: the narrowest patterns, a policy that reads
//! back, and quiet on the recording it came from.

use super::*;
use crate::replay::Replay;
use crate::{load_paths, load_str};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn fixture() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/recordings/recorded.ndjson")).unwrap()
}

#[test]
fn patterns_are_exact_then_one_directory_then_one_level_up() {
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(globs(&set(&["/tmp/x"])).0, ["/tmp/x"]);
    assert_eq!(globs(&set(&["/tmp/x", "/tmp/y"])).0, ["/tmp/*"]);
    assert_eq!(
        globs(&set(&["/usr/lib/a/x.so", "/usr/lib/b/y.so", "/opt/z"])).0,
        ["/opt/z", "/usr/lib/**"]
    );
    assert_eq!(
        globs(&set(&["/x", "/y"])).0,
        ["/x", "/y"],
        "never the whole root"
    );
    let (ok, bad) = globs(&set(&["/tmp/a*b", "relative"]));
    assert!(ok.is_empty());
    assert_eq!(bad, ["/tmp/a*b", "relative"]);
}

#[test]
fn the_suggested_policy_is_quiet_on_its_recording_and_reads_back() {
    let candidate = load_paths(&[root().join("config/examples/block-drift.yaml")])
        .unwrap()
        .policy;
    let mut s = Suggest::new(&candidate);
    for l in fixture().lines() {
        s.line(l);
    }
    let (suggested, summary) = s.finish();
    assert_eq!(summary.newly_blocked, 5, "{summary:?}");
    assert_eq!(summary.exceptions, 1, "one response blocks: {summary:?}");
    let text = crate::emit::to_yaml(&suggested, "suggested");
    let again = load_str("suggested.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .policy;
    assert!(text.contains("exclude: [suggested-exception-1]"), "{text}");
    assert!(text.contains("containerImageName: [nginx]"), "{text}");
    assert!(text.contains("kubernetesNamespace: [prod-eu]"), "{text}");
    assert!(
        text.contains("targetFilePath: [/memfd:payload, '/tmp/work/*']"),
        "{text}"
    );
    assert!(
        text.contains(
            "operation: [createExecutable, modifyExecutable, execMemFd]\n      containerImageName"
        ),
        "only the operations the response blocked: {text}"
    );
    let mut r = Replay::new(&again);
    for (i, l) in fixture().lines().enumerate() {
        r.line(i + 1, l);
    }
    let report = r.finish();
    assert_eq!(report.newly_blocked, 0, "{report:?}");
    // Still blocks what the recording did not show: another path, another namespace.
    let c = Container {
        namespace: Some("prod-eu".into()),
        image: crate::ImageRef::parse("nginx:1.25").ok(),
        orchestrator: Some("kubernetes".into()),
        ..Container::default()
    };
    let drop = |path: &str| Event::File {
        op: crate::FileOp::CreateExecutable,
        path: path.into(),
    };
    assert!(evaluate(&again, &c, &drop("/usr/bin/x"))
        .actions
        .contains(Actions::BLOCK));
    assert!(!evaluate(&again, &c, &drop("/tmp/work/y"))
        .actions
        .contains(Actions::BLOCK));
}

#[test]
fn an_alert_carries_the_exception_that_would_have_allowed_it() {
    let p = load_str("drift.yaml", "file:\n  selectors:\n    - name: a\n      operation: [createExecutable]\n  responses:\n    - match: [a]\n      actions: [alert]\n    - match: [a]\n      actions: [alert, block]\n").unwrap().policy;
    let c = Container {
        namespace: Some("prod".into()),
        image: crate::ImageRef::parse("docker.io/library/nginx:1.25").ok(),
        ..Container::default()
    };
    let e = [Event::File {
        op: crate::FileOp::CreateExecutable,
        path: "/tmp/x".into(),
    }];
    let x = exception(&p, &c, &e).unwrap();
    assert_eq!(
        x.response, "drift.yaml: file response 2",
        "the blocking one"
    );
    assert_eq!(x.selector["targetFilePath"], ["/tmp/x"]);
    assert_eq!(x.selector["operation"], ["createExecutable"]);
    assert_eq!(x.selector["containerImageName"], ["nginx"]);
    assert_eq!(x.selector["kubernetesNamespace"], ["prod"]);
}
