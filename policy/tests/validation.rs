//! Table tests: every validation rule, with the position and message users see.

use d4c_policy::check_texts;

/// Diagnostics of one file as `LINE:COL: severity: message`.
fn diags(yaml: &str) -> Vec<String> {
    let (_, d) = check_texts(&[("p.yaml".into(), yaml.into())]);
    d.iter()
        .map(|d| format!("{}:{}: {:?}: {}", d.line, d.column, d.severity, d.message).to_lowercase())
        .collect()
}

/// Asserts that `yaml` yields exactly one diagnostic, at `at`, containing `needle`.
#[track_caller]
fn one(yaml: &str, at: &str, needle: &str) {
    let d = diags(yaml);
    assert_eq!(
        d.len(),
        1,
        "expected one diagnostic for:\n{yaml}\ngot {d:#?}"
    );
    assert!(
        d[0].starts_with(&format!("{at}: ")),
        "wrong position, want {at}: {d:#?}"
    );
    assert!(
        d[0].contains(&needle.to_lowercase()),
        "want `{needle}` in {d:#?}"
    );
}

fn gen2_file(selector: &str, response: &str) -> String {
    format!(
        "file:\n  selectors:\n    - name: s\n{selector}  responses:\n    - match: [s]\n{response}"
    )
}

const ALERT: &str = "      actions: [alert]\n";

#[test]
fn valid_files_have_no_diagnostics() {
    assert!(diags(&gen2_file("      operation: [createExecutable]\n", ALERT)).is_empty());
    let gen1 = "selectors:\n  - name: x\n    operation: [execMemFd]\nresponses:\n  - match: [x]\n    actions: [alert, block]\n";
    assert!(diags(gen1).is_empty(), "{:?}", diags(gen1));
}

#[test]
fn structure_rules() {
    one("", "1:1", "empty policy file");
    one("foo: 1\n", "1:1", "not a d4c policy");
    one("selectors: []\nfile: {}\n", "2:1", "mixes generation 1");
    one(
        "file:\n  selectors:\n    - name: s\n      operation: [createFile]\n",
        "2:3",
        "needs `responses:`",
    );
    one(
        &format!(
            "version: 1\nflie: 2\n{}",
            gen2_file("      operation: [createFile]\n", ALERT)
        ),
        "2:1",
        "did you mean `file`",
    );
    one(
        &gen2_file(
            "      operation: [createFile]\n",
            "      actions: [alert]\n      matchs: [s]\n",
        ),
        "8:7",
        "did you mean `match`",
    );
    let d =
        diags("file:\n  selectors: []\n  responses:\n    - match: [s]\n      actions: [alert]\n");
    assert!(
        d[0].starts_with("2:14: error: at least one selector"),
        "{d:#?}"
    );
    one("file: [1]\n", "1:7", "must be a mapping");
    one(
        "file:\n  selectors:\n    - name: s\n      operation: [createFile]\n  responses: []\n",
        "5:14",
        "at least one response",
    );
}

#[test]
fn selector_rules() {
    one(&gen2_file("", ALERT), "3:7", "at least one condition");
    let d = diags("file:\n  selectors:\n    - operation: [createFile]\n  responses:\n    - match: [s]\n      actions: [alert]\n");
    assert!(
        d[0].starts_with("3:7: error: a selector needs a `name`"),
        "{d:#?}"
    );
    one(
        &gen2_file("      operation: createFile\n", ALERT),
        "4:18",
        "takes a list",
    );
    one(
        &gen2_file("      operation: []\n", ALERT),
        "4:18",
        "at least one value",
    );
    one(
        &gen2_file("      operation: ['']\n", ALERT),
        "4:19",
        "cannot be empty",
    );
    one(
        &gen2_file("      operation: [createFiel]\n", ALERT),
        "4:19",
        "did you mean `createfile`",
    );
    one(
        &gen2_file("      operation: ['*']\n", ALERT),
        "4:19",
        "wildcards are not supported",
    );
    one(
        &gen2_file("      operation: [fork]\n", ALERT),
        "4:19",
        "unknown file operation",
    );
    one(
        &gen2_file(
            &format!("      kubernetesNamespace: [{}]\n", "a".repeat(600)),
            ALERT,
        ),
        "4:29",
        "at most 511 are allowed",
    );
    one(
        &gen2_file("      targetFilePaths: [/x]\n", ALERT),
        "4:7",
        "did you mean `targetfilepath`",
    );
    one(
        &gen2_file("      processName: [sh]\n", ALERT),
        "4:7",
        "process selector condition",
    );
    one(
        &gen2_file("      orchestratorNamespace: [x]\n", ALERT),
        "4:7",
        "write `kubernetesnamespace`",
    );
    let dup = "file:\n  selectors:\n    - name: s\n      operation: [createFile]\n    - name: s\n      operation: [deleteFile]\n  responses:\n    - match: [s]\n      actions: [alert]\n";
    one(dup, "5:13", "already used at line 3, column 13");
    one(
        &gen2_file(
            "      operation: [createFile]\n    - name: -bad\n      operation: [createFile]\n",
            ALERT,
        ),
        "5:13",
        "must start with a letter or digit",
    );
}

#[test]
fn value_forms() {
    for (line, needle) in [
        ("      containerImageName: [Nginx]\n", "lowercase letters"),
        (
            "      containerImageName: ['ngi*']\n",
            "wildcards are not allowed in generation 2",
        ),
        (
            "      containerImageName: [docker.io/nginx]\n",
            "containerimagefullname",
        ),
        (
            "      containerImageName: ['nginx:1']\n",
            "containerimagetag",
        ),
        ("      containerImageFullName: [nginx]\n", "registry path"),
        (
            "      containerImageFullName: ['docker.io/nginx:1']\n",
            "remove the tag",
        ),
        (
            "      kubernetesPodName: ['a*b']\n",
            "only allowed at the end of a pod name",
        ),
        ("      kubernetesPodLabel: [app]\n", "write `key:value`"),
        (
            "      kubernetesPodLabel: ['a*:b']\n",
            "wildcards are not supported in label keys",
        ),
        (
            "      kubernetesPodLabel: ['app:a*b']\n",
            "only allowed at the end of a label value",
        ),
        (
            "      kubernetesPodLabel: ['/app:x']\n",
            "not a valid label key",
        ),
        ("      targetFilePath: [usr/bin]\n", "must be absolute"),
        (
            "      targetFilePath: ['/usr/*/bin']\n",
            "only allowed at the end",
        ),
        ("      targetFilePath: [/usr//bin]\n", "empty component"),
        ("      targetFilePath: [/usr/bin/]\n", "empty component"),
        ("      ignoreVolumeMounts: 'true'\n", "true or false"),
        ("      ignoreVolumeMounts: yes\n", "true or false"),
    ] {
        let d = diags(&gen2_file(line, ALERT));
        assert_eq!(d.len(), 1, "{line}: {d:#?}");
        assert!(d[0].starts_with("4:"), "{line}: {d:#?}");
        assert!(d[0].contains(needle), "{line}: want {needle} in {d:#?}");
    }
    let long = format!("      targetFilePath: [/{}]\n", "a".repeat(300));
    assert!(diags(&gen2_file(&long, ALERT))[0].contains("at most 251 bytes"));
}

#[test]
fn process_values() {
    let p = |sel: &str| {
        format!("process:\n  selectors:\n    - name: s\n{sel}  responses:\n    - match: [s]\n      actions: [log]\n")
    };
    assert!(diags(&p(
        "      processName: [sh]\n      sessionLeaderInteractive: true\n"
    ))
    .is_empty());
    one(
        &p("      processName: [averyveryverylongname]\n"),
        "4:21",
        "at most 15 bytes",
    );
    one(
        &p("      processName: [/bin/sh]\n"),
        "4:21",
        "processexecutable",
    );
    one(
        &p("      processName: ['s*']\n"),
        "4:21",
        "wildcards are not supported in `processname`",
    );
    one(
        &p("      processName: [sh]\n      processExecutable: [/bin/sh]\n"),
        "5:7",
        "cannot be combined",
    );
    one(
        &p("      operation: [createFile]\n"),
        "4:19",
        "unknown process operation",
    );
    one(
        &p("      targetFilePath: [/x]\n"),
        "4:7",
        "file selector condition",
    );
}

#[test]
fn conflicts() {
    one(
        &gen2_file(
            "      containerImageName: [a]\n      containerImageFullName: [docker.io/a]\n",
            ALERT,
        ),
        "5:7",
        "cannot be combined",
    );
    one(
        &gen2_file(
            "      ignoreVolumeMounts: true\n      ignoreVolumeFiles: true\n",
            ALERT,
        ),
        "5:7",
        "cannot be combined",
    );
}

#[test]
fn response_rules() {
    let sel = "      operation: [createExecutable]\n";
    one(
        &gen2_file(sel, "      actions: [block]\n"),
        "7:16",
        "alert action is required when the \"block\"",
    );
    one(
        &gen2_file(sel, "      actions: [alret]\n"),
        "7:17",
        "did you mean `alert`",
    );
    one(
        &gen2_file(sel, "      actions: []\n"),
        "7:16",
        "at least one value",
    );
    one(&gen2_file(sel, ""), "6:7", "needs `actions:`");
    one(
        &gen2_file(sel, "      exclude: [t]\n      actions: [alert]\n"),
        "7:17",
        "no file selector of that name",
    );
    let cross = "process:\n  selectors:\n    - name: p\n      operation: [exec]\n  responses:\n    - match: [p]\n      actions: [log]\nfile:\n  selectors:\n    - name: f\n      operation: [createFile]\n      targetFilePath: [/x]\n  responses:\n    - match: [p]\n      actions: [alert]\n";
    let d = diags(cross);
    assert!(
        d.iter()
            .any(|x| x.starts_with("14:15") && x.contains("is a process selector")),
        "{d:#?}"
    );
    let gen1_log = "selectors:\n  - name: x\n    operation: [execMemFd]\nresponses:\n  - match: [x]\n    actions: [log]\n";
    one(gen1_log, "6:15", "only in generation 2");
}

#[test]
fn block_requires_paths_for_file_integrity() {
    let r = "      actions: [alert, block]\n";
    one(
        &gen2_file("      operation: [createFile]\n", r),
        "6:7",
        "requires `targetfilepath`",
    );
    one(
        &gen2_file("      kubernetesNamespace: [x]\n", r),
        "6:7",
        "selectors without `operation` match all operations",
    );
    assert!(diags(&gen2_file(
        "      operation: [createFile]\n      targetFilePath: [/etc/**]\n",
        r
    ))
    .is_empty());
    assert!(diags(&gen2_file("      operation: [createExecutable]\n", r)).is_empty());
    let with_exclude = "file:\n  selectors:\n    - name: s\n      operation: [createFile]\n    - name: t\n      targetFilePath: [/tmp/**]\n  responses:\n    - match: [s]\n      exclude: [t]\n      actions: [alert, block]\n";
    assert!(diags(with_exclude).is_empty(), "{:#?}", diags(with_exclude));
    one(
        &gen2_file(
            "      operation: [deleteFile]\n      targetFilePath: ['/**']\n",
            r,
        ),
        "7:7",
        "warning: it is dangerous",
    );
}

#[test]
fn warnings() {
    let unused = "file:\n  selectors:\n    - name: s\n      operation: [createFile]\n    - name: t\n      operation: [createFile]\n  responses:\n    - match: [s]\n      actions: [alert]\n";
    one(unused, "5:13", "warning: selector `t` is not used");
    one(
        &gen2_file(
            "      operation: [execMemFd]\n      targetFilePath: [/x]\n",
            ALERT,
        ),
        "3:13",
        "none of its `targetfilepath` patterns can match",
    );
    // `/**` and `/memfd:*` match a memfd's path (`/memfd:NAME`): no warning.
    for paths in ["['/**']", "['/memfd:*']", "[/usr/**, '/m*']"] {
        let p = gen2_file(
            &format!(
                "      operation: [createExecutable, execMemFd]\n      targetFilePath: {paths}\n"
            ),
            ALERT,
        );
        assert!(diags(&p).is_empty(), "{paths}: {:#?}", diags(&p));
    }
}

#[test]
fn generation1_rules() {
    let g1 = |sel: &str, actions: &str| {
        format!(
            "selectors:\n  - name: x\n{sel}responses:\n  - match: [x]\n    actions: [{actions}]\n"
        )
    };
    assert!(diags(&g1("    containerImageName: ['elastic-a*']\n", "alert")).is_empty());
    assert!(diags(&g1(
        "    orchestratorResourceLabel: [environment:*, 'owner:drohan']\n",
        "alert"
    ))
    .is_empty());
    assert!(diags(&g1(
        "    targetFilePath: [/usr/bin/echo, /usr/sbin*, /usr/local/**]\n",
        "alert"
    ))
    .is_empty());
    one(
        &g1("    operation: [createFile]\n", "alert"),
        "3:17",
        "unknown file operation",
    );
    one(
        &g1("    orchestratorType: [nomad]\n", "alert"),
        "3:24",
        "only orchestrator type",
    );
    one(
        &g1("    kubernetesNamespace: [x]\n", "alert"),
        "3:5",
        "write `orchestratornamespace`",
    );
    one(
        &g1("    containerImageFullName: [docker.io/x]\n", "alert"),
        "3:5",
        "exists only in generation 2",
    );
    let d = diags(&g1("    bogus: [x]\n", "alert"));
    assert!(d[0].contains("[generation 1 policy]"), "{d:#?}");
}

#[test]
fn yaml_level_errors() {
    one("file:\n  selectors: &a [1]\n", "2:14", "anchors");
    one("file: 1\nfile: 2\n", "2:1", "duplicate key `file`");
    one("file: [\n", "2:1", "invalid yaml");
    let d = diags("a: b\n---\nc: d\n");
    assert!(d[0].contains("one yaml document"), "{d:#?}");
}

#[test]
fn directories_keep_names_per_file() {
    let a = (
        "a.yaml".to_owned(),
        gen2_file(
            "      operation: [createFile]\n      targetFilePath: [/x]\n",
            ALERT,
        ),
    );
    let b = ("b.yaml".to_owned(), "file:\n  selectors:\n    - name: t\n      operation: [deleteFile]\n  responses:\n    - match: [s]\n      actions: [alert]\n".to_owned());
    let (policy, d) = check_texts(&[a.clone(), b]);
    assert!(policy.is_none());
    assert!(
        d.iter()
            .any(|x| x.file == "b.yaml" && x.line == 6 && x.message.contains("no file selector")),
        "{d:#?}"
    );
    let (policy, _) = check_texts(&[a.clone(), ("c.yaml".into(), a.1.clone())]);
    let policy = policy.expect("same names in two files are fine");
    assert_eq!(policy.selector_label(1), "c.yaml:s");
}
