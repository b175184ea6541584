//! Test files: parsing with positions, and running cases that pass and fail.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("d4c-cases-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const POLICY: &str = "file:\n  selectors:\n    - name: prod\n      operation: [createExecutable]\n      kubernetesNamespace: [prod]\n  responses:\n    - match: [prod]\n      actions: [alert, block]\nprocess:\n  selectors:\n    - name: shells\n      operation: [exec]\n      processName: [sh]\n  responses:\n    - match: [shells]\n      actions: [log]\n";

#[test]
fn passing_and_failing_cases_say_where_and_what_differed() {
    let d = scratch("run");
    write(&d, "p.yaml", POLICY);
    let t = write(
        &d,
        "p.test.yaml",
        "policies: [p.yaml]\ncases:\n  - name: prod blocks\n    container: {namespace: prod}\n    file: {operation: createExecutable, path: /tmp/x}\n    expect: [alert, block]\n    selectors: [prod]\n  - name: wrong on purpose\n    container: {namespace: dev}\n    file: {operation: createExecutable, path: /tmp/x}\n    expect: [alert]\n  - name: a shell started as /bin/sh\n    process: {operation: exec, executable: /usr/bin/dash, startedAs: /bin/sh}\n    expect: [log]\n  - name: audited\n    audit: true\n    container: {namespace: prod}\n    file: {operation: createExecutable, path: /tmp/x}\n    expect: [alert, audit]\n",
    );
    let results = run(&read(&t).unwrap()).unwrap();
    let outcomes: Vec<_> = results.iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(outcomes[0], Outcome::Passed);
    assert_eq!(
        outcomes[1],
        Outcome::Failed("expected actions [alert], got []".into())
    );
    assert_eq!(outcomes[2], Outcome::Passed, "{:?}", outcomes[2]);
    assert_eq!(outcomes[3], Outcome::Passed, "{:?}", outcomes[3]);
    assert_eq!(results[1].at, format!("{}:8", t.display()));
    // A test file in the policy directory is not a policy.
    assert_eq!(
        crate::load::policy_files(&[&d]).unwrap(),
        vec![d.join("p.yaml")]
    );
    assert_eq!(find(&[&d]).unwrap(), vec![t]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mistakes_are_reported_at_their_line_and_column() {
    let d = scratch("bad");
    for (text, want) in [
        ("cases: []\n", "1:1: error: `policies:` is required"),
        ("policies: [p.yaml]\ncases:\n  - name: x\n    file: {operation: createExecutable, path: /x}\n    expect: [alert]\n    selector: [a]\n", "6:5: error: unknown key `selector`; did you mean `selectors`?"),
        ("policies: [p.yaml]\ncases:\n  - name: x\n    file: {operation: chmod, path: /x}\n    expect: []\n", "4:23: error: `operation`: `chmod` is not a file operation"),
        ("policies: [p.yaml]\ncases:\n  - name: x\n    expect: [deny]\n    file: {operation: createExecutable, path: /x}\n", "4:14: error: `expect`: `deny` is not an action"),
        ("policies: [p.yaml]\ncases:\n  - name: x\n    expect: []\n", "3:5: error: a case needs an operation"),
    ] {
        let t = write(&d, "t.test.yaml", text);
        let e = read(&t).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:", t.display())) && e.contains(want),
            "{text:?}: {e}"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}
