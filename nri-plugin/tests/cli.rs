//! The `d4c check`, `eval` and `explain` commands, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn d4c(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d4c"))
        .args(args)
        .output()
        .expect("d4c runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The default policy set.
fn policies() -> PathBuf {
    root().join("config/policies")
}

/// The example policies, each deployed beside the default set.
fn examples() -> PathBuf {
    root().join("config/examples")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_policy(name: &str, yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("d4c-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Every shipped policy, and the default set as one, passes `d4c check` with the line
/// config/README.md's table gives it, and that table names every one of them.
#[test]
fn every_shipped_policy_checks_as_config_readme_says() {
    let readme = std::fs::read_to_string(root().join("config/README.md")).unwrap();
    let claimed: Vec<(&str, &str)> = readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let file = cells.get(1)?.strip_prefix('`')?.split('`').next()?;
            let line = cells.get(3)?.strip_prefix('`')?.strip_suffix('`')?;
            line.starts_with("valid: ").then_some((file, line))
        })
        .collect();
    let mut files = vec![("policies/".to_owned(), policies())];
    for dir in [policies(), examples()] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !d4c_policy::cases::is_test_file(&path) {
                let name = path.strip_prefix(root().join("config")).unwrap();
                files.push((name.display().to_string(), path));
            }
        }
    }
    assert!(files.len() >= 7, "{files:?}");
    assert_eq!(claimed.len(), files.len(), "config/README.md: {claimed:?}");
    for (name, path) in files {
        let out = d4c(&["check", path.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let want = claimed
            .iter()
            .find(|(f, _)| *f == name || f.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("config/README.md has no row for {name}"));
        assert_eq!(text(&out.stdout).trim_end(), want.1, "{name}");
        let warnings = text(&out.stderr).lines().count();
        assert!(want.1.contains(&format!(" {warnings} warning")), "{name}");
    }
}

/// Every shipped policy has a test file, and every case of them passes (what CI runs).
#[test]
fn the_shipped_policies_pass_their_tests() {
    let out = d4c(&[
        "test",
        policies().to_str().unwrap(),
        examples().to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.ends_with(" passed, 0 failed\n"), "{stdout}");
    for dir in [policies(), examples()] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if d4c_policy::cases::is_test_file(&path) {
                continue;
            }
            let test = path.with_extension("test.yaml");
            assert!(test.exists(), "{} has no test file", path.display());
        }
    }
}

#[test]
fn a_failing_case_says_where_and_fails_the_run() {
    let p = temp_policy("t-policy.yaml", "file:\n  selectors:\n    - name: s\n      operation: [createExecutable]\n  responses:\n    - match: [s]\n      actions: [alert]\n");
    let t = temp_policy(
        "t.test.yaml",
        "policies: [t-policy.yaml]\ncases:\n  - name: passes\n    file: {operation: createExecutable, path: /x}\n    expect: [alert]\n  - name: fails\n    file: {operation: createExecutable, path: /x}\n    expect: [alert, block]\n",
    );
    let out = d4c(&["test", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "FAIL {}:6 fails: expected actions [alert, block], got [alert]",
            t.display()
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");
    // A test file is not a policy.
    let out = d4c(&["check", t.to_str().unwrap()]);
    assert!(
        text(&out.stderr).contains("is a policy test file, not a policy"),
        "{}",
        text(&out.stderr)
    );
    let _ = p;
}

/// Replay of the recorded fixtures: text and JSON, a `.gz` file, standard input, and
/// `--fail-on-change`.
#[test]
fn replay_reads_recordings_and_says_what_would_change() {
    use std::io::Write;
    let fixture = root().join("tests/fixtures/recordings/recorded.ndjson");
    let policy = examples().join("block-drift.yaml");
    let (p, f) = (policy.to_str().unwrap(), fixture.to_str().unwrap());
    let out = d4c(&["replay", "--policy", p, f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .starts_with("35 documents: 35 decided, 0 undecidable; 30 unchanged, 5 newly blocked"),
        "{stdout}"
    );
    let out = d4c(&[
        "replay",
        "--policy",
        p,
        "--format",
        "json",
        "--fail-on-change",
        f,
    ]);
    assert_eq!(out.status.code(), Some(1), "a change with --fail-on-change");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "events",
        "decided",
        "undecidable",
        "unchanged",
        "newly_blocked",
        "no_longer_blocked",
        "changes",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    assert_eq!(v["newly_blocked"], 5);
    // Compressed, and twice (one from standard input): the counts add up.
    let gz = std::env::temp_dir().join(format!("d4c-replay-{}.ndjson.gz", std::process::id()));
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(&fixture).unwrap()).unwrap();
    enc.finish().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_d4c"))
        .args(["replay", "--policy", p, gz.to_str().unwrap(), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"not json\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("35 documents: 35 decided"), "{stdout}");
    assert!(
        stdout.contains("1 lines are not JSON documents (skipped):\n  -:1: "),
        "{stdout}"
    );
    std::fs::remove_file(&gz).unwrap();
}

/// `suggest` writes a policy that `check` accepts and that is quiet on the recording.
#[test]
fn suggest_writes_a_valid_policy_quiet_on_its_recording() {
    let fixture = root().join("tests/fixtures/recordings/recorded.ndjson");
    let out_file = std::env::temp_dir().join(format!("d4c-suggested-{}.yaml", std::process::id()));
    let policy = examples().join("block-drift.yaml");
    let out = d4c(&[
        "suggest",
        "--policy",
        policy.to_str().unwrap(),
        "--output",
        out_file.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("5 newly blocked, 0 undecidable, 0 malformed; 1 exception(s) added"),
        "{}",
        text(&out.stderr)
    );
    let out = d4c(&["check", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d4c(&[
        "replay",
        "--fail-on-change",
        "--policy",
        out_file.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(" 0 newly blocked"), "{stdout}");
    std::fs::remove_file(&out_file).unwrap();
}

#[test]
fn check_reports_file_line_column() {
    let p = temp_policy("bad.yaml", "file:\n  selectors:\n    - name: s\n      operation: [createExecutabel]\n  responses:\n    - match: [s]\n      actions: [alert]\n");
    let out = d4c(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let want = format!("{}:4:19: error: unknown file operation `createExecutabel`; did you mean `createExecutable`?", p.display());
    assert!(err.lines().any(|l| l.starts_with(&want)), "{err}");

    let out = d4c(&["check", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["line"], 4);
    assert_eq!(v["diagnostics"][0]["column"], 19);
    assert_eq!(v["diagnostics"][0]["severity"], "error");

    let out = d4c(&["check", "/nonexistent/d4c.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/d4c.yaml"));
}

#[test]
fn check_warnings_keep_exit_zero() {
    let p = temp_policy("warn.yaml", "file:\n  selectors:\n    - name: s\n      operation: [deleteFile]\n      targetFilePath: ['/**']\n  responses:\n    - match: [s]\n      actions: [alert, block]\n");
    let out = d4c(&["check", p.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains(":7:7: warning: it is dangerous"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn eval_prints_the_decision() {
    let prod = examples().join("block-drift-production.yaml");
    let out = d4c(&[
        "eval",
        "--policy",
        prod.to_str().unwrap(),
        "--namespace",
        "prod-eu",
        "--file-op",
        "createExecutable",
        "--path",
        "/tmp/x",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"actions":["alert","block"],"selectors":["productionPods","everyPod"],"responses":[0]}"#
    );

    let out = d4c(&[
        "eval",
        "--policy",
        prod.to_str().unwrap(),
        "--namespace",
        "dev",
        "--file-op",
        "createExecutable",
        "--path",
        "/tmp/x",
    ]);
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"actions":["alert"],"selectors":["everyPod"],"responses":[1]}"#
    );

    let default = policies().join("default.yaml");
    let out = d4c(&[
        "eval",
        "--policy",
        default.to_str().unwrap(),
        "--process-op",
        "exec",
        "--executable",
        "/bin/sh",
    ]);
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"actions":["log"],"selectors":["allProcesses"],"responses":[1]}"#
    );

    let seed = examples().join("seed-generation1.yaml");
    let args = [
        "eval",
        "--policy",
        seed.to_str().unwrap(),
        "--image",
        "nginx",
        "--namespace",
        "default",
        "--label",
        "production=yes",
        "--pod-name",
        "nginx-pod-1",
        "--cluster-id",
        "cluster1",
        "--cluster-name",
        "kgCluster",
        "--file-op",
        "modifyExecutable",
        "--path",
        "/usr/local/bin/x",
    ];
    let out = d4c(&args);
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"actions":["alert","block"],"selectors":["exampleSelector"],"responses":[0]}"#
    );
}

#[test]
fn eval_bad_input_exits_2() {
    let default = policies().join("default.yaml");
    let p = default.to_str().unwrap();
    for args in [
        vec!["eval", "--policy", p, "--file-op", "nope", "--path", "/x"],
        vec!["eval", "--policy", p, "--path", "/x"],
        vec![
            "eval",
            "--policy",
            p,
            "--label",
            "novalue",
            "--file-op",
            "createFile",
            "--path",
            "/x",
        ],
        vec![
            "eval",
            "--policy",
            p,
            "--image",
            "Bad Ref",
            "--file-op",
            "createFile",
            "--path",
            "/x",
        ],
        vec![
            "eval",
            "--policy",
            "/nonexistent.yaml",
            "--file-op",
            "createFile",
            "--path",
            "/x",
        ],
    ] {
        let out = d4c(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).is_empty());
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn explain_shows_live_selectors_and_entries() {
    let prod = examples().join("block-drift-production.yaml");
    let out = d4c(&[
        "explain",
        "--policy",
        prod.to_str().unwrap(),
        "--namespace",
        "prod",
        "--image",
        "nginx:1.25",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("live     file     productionPods"), "{s}");
    assert!(
        s.contains("Kernel entries for this rule set: 1 file rules"),
        "{s}"
    );
    assert!(s.contains("createExecutable=alert+block"), "{s}");
    let out = d4c(&["explain", "--policy", prod.to_str().unwrap()]);
    let s = text(&out.stdout);
    assert!(s.contains("not live file     productionPods"), "{s}");
    assert!(s.contains("fails: namespace"), "{s}");
}

#[test]
fn version_names_the_build() {
    let out = d4c(&["--version"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("d4c 0."),
        "{}",
        text(&out.stdout)
    );
}
