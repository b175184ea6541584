//! Replay of hand-written documents of both shapes (d4c's and Elastic's agent's); the
//! documents a real kernel produced are replayed in `tests/replay.rs`.

use super::*;
use crate::load_str;

fn policy(yaml: &str) -> Policy {
    load_str("candidate.yaml", yaml).unwrap().policy
}

const BLOCK_PROD: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable, modifyExecutable]\n      kubernetesNamespace: [prod]\n  responses:\n    - match: [drift]\n      actions: [alert, block]\n";

fn d4c_doc(ns: &str, action: &str, path: &str, outcome: &str, actions: &str) -> String {
    format!(
        r#"{{"@timestamp":"2026-12-07T10:00:00.000Z","event":{{"kind":"alert","category":["file"],"action":"{action}","outcome":"{outcome}","type":["creation"]}},"file":{{"path":"{path}","mode":"755"}},"process":{{"name":"cp","executable":"/bin/busybox","interactive":false}},"container":{{"id":"c1","image":{{"name":"docker.io/library/nginx","tag":"1.25"}}}},"orchestrator":{{"type":"kubernetes","namespace":"{ns}","resource":{{"name":"web-0","type":"pod","label":["app:web"]}}}},"cloud_defend":{{"actions":{actions},"matched_selectors":["old:drift"]}}}}"#
    )
}

#[test]
fn what_would_change_is_counted_and_grouped() {
    let p = policy(BLOCK_PROD);
    let mut r = Replay::new(&p);
    // Alerted only when recorded; blocked under the candidate (prod).
    r.line(
        1,
        &d4c_doc(
            "prod",
            "createExecutable,createFile",
            "/tmp/x",
            "success",
            r#"["alert"]"#,
        ),
    );
    r.line(
        2,
        &d4c_doc(
            "prod",
            "createExecutable,createFile",
            "/tmp/y",
            "success",
            r#"["alert"]"#,
        ),
    );
    // Blocked when recorded; only... nothing now (dev).
    r.line(
        3,
        &d4c_doc(
            "dev",
            "createExecutable,createFile",
            "/tmp/z",
            "failure",
            r#"["alert","block"]"#,
        ),
    );
    // Blocked then and now: unchanged.
    r.line(
        4,
        &d4c_doc(
            "prod",
            "modifyExecutable,modifyFile",
            "/usr/bin/ls",
            "failure",
            r#"["alert","block"]"#,
        ),
    );
    r.line(5, "not json");
    r.line(6, "");
    r.line(7, r#"{"event":{"category":["network"]}}"#);
    let rep = r.finish();
    assert_eq!(rep.events, 5);
    assert_eq!((rep.decided, rep.undecidable, rep.malformed), (4, 1, 1));
    assert_eq!(rep.newly_blocked, 2);
    assert_eq!(rep.no_longer_blocked, 1);
    assert_eq!(rep.unchanged, 1);
    assert!(
        rep.malformed_lines[0].starts_with("line 5: "),
        "{:?}",
        rep.malformed_lines
    );
    let g = &rep.changes[0];
    assert_eq!(g.change, Change::NewlyBlocked);
    assert_eq!((g.count, g.namespace.as_deref()), (2, Some("prod")));
    assert_eq!(g.selectors, ["drift"]);
    assert!(
        g.examples[0].contains("createExecutable,createFile /tmp/x by cp in prod/web-0"),
        "{:?}",
        g.examples
    );
    let gone = &rep.changes[1];
    assert_eq!(gone.change, Change::NoLongerBlocked);
    assert_eq!(
        gone.selectors,
        ["old:drift"],
        "a removed action names the recorded selectors"
    );
    let t = text(&rep);
    assert!(t.starts_with("5 documents: 4 decided, 1 undecidable; 1 unchanged, 2 newly blocked, 1 no longer blocked"), "{t}");
    assert!(
        t.contains("newly blocked: 2 in namespace prod, selectors [drift]"),
        "{t}"
    );
}

#[test]
fn an_audited_block_replays_as_newly_blocked_under_enforcement() {
    let p = policy(BLOCK_PROD);
    let mut r = Replay::new(&p);
    let mut doc: serde_json::Value = serde_json::from_str(&d4c_doc(
        "prod",
        "createExecutable,createFile",
        "/tmp/x",
        "success",
        r#"["alert","block"]"#,
    ))
    .unwrap();
    doc["cloud_defend"]["audit"] = serde_json::json!(true);
    r.document(&doc);
    assert_eq!(r.finish().newly_blocked, 1);
}

#[test]
fn elastic_documents_are_read_from_their_kind_type_and_mode() {
    let p = policy(BLOCK_PROD);
    let elastic = |types: &str, mode: Option<&str>, kind: &str| {
        let mode = mode.map_or(String::new(), |m| format!(r#","mode":"{m}""#));
        format!(
            r#"{{"@timestamp":"t","event":{{"kind":"{kind}","category":["file"],"type":{types}}},"file":{{"path":"/tmp/x"{mode}}},"process":{{"name":"cp"}},"orchestrator":{{"namespace":"prod","resource":{{"name":"web-0","label":{{"app":"web"}}}}}}}}"#
        )
    };
    let mut r = Replay::new(&p);
    // A new executable, logged by the agent: createExecutable + createFile, newly blocked.
    r.line(1, &elastic(r#"["creation"]"#, Some("0755"), "event"));
    // A new plain file: not drift, unchanged.
    r.line(2, &elastic(r#"["creation"]"#, Some("0644"), "event"));
    // No mode: createFile or createExecutable, which the policy decides differently.
    r.line(3, &elastic(r#"["creation"]"#, None, "event"));
    // A blocked change of an executable: modifyExecutable or an x bit added; this policy
    // blocks both, so it is decided (unchanged).
    r.line(4, &elastic(r#"["change","denied"]"#, Some("0755"), "alert"));
    let rep = r.finish();
    assert_eq!((rep.decided, rep.undecidable), (3, 1), "{rep:?}");
    assert_eq!((rep.newly_blocked, rep.unchanged), (1, 2));
    assert!(rep
        .undecidable_reasons
        .keys()
        .next()
        .unwrap()
        .contains("decides them differently"));
}

#[test]
fn process_documents_and_volumes() {
    let p = policy("process:\n  selectors:\n    - name: shells\n      operation: [exec]\n      processName: [sh]\n  responses:\n    - match: [shells]\n      actions: [alert]\nfile:\n  selectors:\n    - name: vols\n      operation: [createFile]\n      ignoreVolumeMounts: true\n  responses:\n    - match: [vols]\n      actions: [log]\n");
    let mut r = Replay::new(&p);
    // Started as /bin/sh, the file is busybox: a shell (both identities).
    r.line(1, r#"{"event":{"kind":"event","category":["process"],"action":"exec"},"process":{"name":"busybox","executable":"/bin/busybox","interactive":false},"cloud_defend":{"actions":["log"],"started_as":"/bin/sh"}}"#);
    // A file document under a policy that ignores volumes: the document cannot say.
    r.line(2, r#"{"event":{"kind":"event","category":["file"],"action":"createFile"},"file":{"path":"/data/x"},"cloud_defend":{"actions":["log"]}}"#);
    let rep = r.finish();
    assert_eq!(rep.new_alert, 1, "{rep:?}");
    assert_eq!(rep.undecidable, 1);
    assert!(rep
        .undecidable_reasons
        .keys()
        .next()
        .unwrap()
        .contains("volumes"));
}
