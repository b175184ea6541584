//! Replay of documents a real kernel produced (`tests/fixtures/recordings/recorded.ndjson`,
//! made by `record.sh` in a 6.12 guest: every operation under a generation 2 policy that
//! logs them, again with drift blocked, and a drop under the generation 1 seed policy),
//! under the shipped policies as candidates.

use d4c_policy::replay::{Change, Replay, Report};
use d4c_policy::{load_paths, Policy};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A shipped policy file: `config/policies/NAME` (the default set) or `config/examples/NAME`.
fn shipped(name: &str) -> Policy {
    let path = ["config/policies", "config/examples"]
        .iter()
        .map(|d| root().join(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no shipped policy {name}"));
    load_paths(&[path]).unwrap().policy
}

fn replay(policy: &Policy) -> Report {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/recordings/recorded.ndjson")).unwrap();
    let mut r = Replay::new(policy);
    for (i, line) in text.lines().enumerate() {
        r.line(i + 1, line);
    }
    r.finish()
}

fn group(r: &Report, change: Change) -> (u64, Vec<String>) {
    r.changes
        .iter()
        .filter(|g| g.change == change)
        .fold((0, Vec::new()), |(n, mut ex), g| {
            ex.extend(g.examples.clone());
            (n + g.count, ex)
        })
}

#[test]
fn every_recorded_operation_is_decided() {
    let r = replay(&shipped("default.yaml"));
    assert_eq!(r.events, 35, "{r:?}");
    assert_eq!((r.decided, r.undecidable, r.malformed), (35, 0, 0), "{r:?}");
}

#[test]
fn blocking_drift_would_newly_block_what_the_recording_only_logged() {
    let r = replay(&shipped("block-drift.yaml"));
    // web-0 logged its drift: the copy, the chmod +x, the write to the executable, and
    // the memfd run (seen at exec and again when its image is mapped).
    assert_eq!(r.newly_blocked, 5, "{r:?}");
    assert_eq!(
        (r.no_longer_blocked, r.new_alert, r.alert_gone),
        (0, 0, 0),
        "{r:?}"
    );
    let (_, examples) = group(&r, Change::NewlyBlocked);
    assert!(
        examples.iter().all(|e| e.contains("in prod-eu/web-0")),
        "{examples:?}"
    );
    assert!(
        examples[0].ends_with("createExecutable,createFile /tmp/work/x by cp in prod-eu/web-0"),
        "{examples:?}"
    );
}

#[test]
fn the_alerting_default_would_no_longer_block_and_would_alert_instead() {
    let r = replay(&shipped("default.yaml"));
    // Refused then: web-1's drift (block-drift) and the seed pod's drop (generation 1).
    assert_eq!(r.no_longer_blocked, 4, "{r:?}");
    assert_eq!(
        r.new_alert, 3,
        "web-0's executable changes alert now: {r:?}"
    );
    let seed = r
        .changes
        .iter()
        .find(|g| g.namespace.as_deref() == Some("default"))
        .expect("the generation 1 drop");
    assert_eq!(seed.change, Change::NoLongerBlocked);
    assert_eq!(seed.selectors, ["exampleSelector"]);
}

#[test]
fn a_generation_1_candidate_replays_generation_2_recordings() {
    let r = replay(&shipped("seed-generation1.yaml"));
    assert_eq!(r.no_longer_blocked, 3, "{r:?}");
    assert_eq!(r.unchanged, 32, "{r:?}");
}
