//! Table tests of the reference semantics: every condition, exclusion, unions of responses,
//! volumes, both generations. Each case is also checked against the compiled kernel tables.

use d4c_common::{ACTION_ALERT, ACTION_BLOCK, ACTION_LOG};
use d4c_policy::compile::{compile_rule_set, RuleSetSpec};
use d4c_policy::emulate::KernelMaps;
use d4c_policy::{
    evaluate, load_str, Container, Event, FileOp, ImageRef, Mount, Policy, ProcessOp,
};

fn policy(yaml: &str) -> Policy {
    load_str("t.yaml", yaml)
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

fn container(
    image: Option<&str>,
    ns: Option<&str>,
    pod: Option<&str>,
    labels: &[(&str, &str)],
) -> Container {
    Container {
        image: image.map(|i| ImageRef::parse(i).unwrap()),
        namespace: ns.map(Into::into),
        pod_name: pod.map(Into::into),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        orchestrator: Some("kubernetes".into()),
        cluster_id: Some("c-1".into()),
        cluster_name: Some("kg".into()),
        mounts: vec![],
    }
}

fn file(op: FileOp, path: &str) -> Event {
    Event::File {
        op,
        path: path.into(),
    }
}

/// The actions as names, checked against the kernel tables too.
fn actions(p: &Policy, c: &Container, e: &Event) -> Vec<&'static str> {
    let want = evaluate(p, c, e).actions;
    let tables = compile_rule_set(p, &RuleSetSpec::for_container(p, c), 3).unwrap();
    assert_eq!(
        KernelMaps::from_tables(&tables).decide(3, e),
        want,
        "kernel tables disagree for {e:?}"
    );
    want.names()
}

fn one_selector(cond: &str) -> Policy {
    policy(&format!("file:\n  selectors:\n    - name: s\n      operation: [createExecutable]\n{cond}  responses:\n    - match: [s]\n      actions: [alert]\n"))
}

#[test]
fn container_conditions() {
    let ev = file(FileOp::CreateExecutable, "/tmp/x");
    let nginx = container(
        Some("docker.io/library/nginx:1.25"),
        Some("prod-eu"),
        Some("web-7"),
        &[("app", "web"), ("team/owner", "ops"), ("tier", "")],
    );
    let digest = container(Some("app@sha256:abc"), None, None, &[]);
    let bare = Container::default();
    for (cond, c, fires) in [
        ("      containerImageName: [nginx]\n", &nginx, true),
        ("      containerImageName: [redis]\n", &nginx, false),
        ("      containerImageName: [nginx]\n", &bare, false),
        (
            "      containerImageFullName: [docker.io/nginx]\n",
            &nginx,
            true,
        ),
        (
            "      containerImageFullName: [docker.io/library/nginx]\n",
            &nginx,
            true,
        ),
        (
            "      containerImageFullName: [quay.io/nginx]\n",
            &nginx,
            false,
        ),
        ("      containerImageTag: ['1.*']\n", &nginx, true),
        ("      containerImageTag: [latest]\n", &nginx, false),
        ("      containerImageTag: ['*']\n", &digest, false),
        ("      kubernetesNamespace: ['prod-*']\n", &nginx, true),
        ("      kubernetesNamespace: ['*-eu']\n", &nginx, true),
        ("      kubernetesNamespace: [prod]\n", &nginx, false),
        ("      kubernetesNamespace: ['*']\n", &bare, false),
        ("      kubernetesPodName: ['web-*']\n", &nginx, true),
        ("      kubernetesPodName: ['db-*']\n", &nginx, false),
        ("      kubernetesPodLabel: ['app:web']\n", &nginx, true),
        ("      kubernetesPodLabel: ['app:w*']\n", &nginx, true),
        (
            "      kubernetesPodLabel: ['app:db', 'team/owner:ops']\n",
            &nginx,
            true,
        ),
        ("      kubernetesPodLabel: ['tier:']\n", &nginx, true),
        ("      kubernetesPodLabel: ['app:']\n", &nginx, false),
        ("      kubernetesPodLabel: ['owner:ops']\n", &nginx, false),
        ("      kubernetesClusterId: [c-1]\n", &nginx, true),
        ("      kubernetesClusterName: [other]\n", &nginx, false),
        (
            "      kubernetesNamespace: ['prod-*']\n      kubernetesPodLabel: ['app:db']\n",
            &nginx,
            false,
        ),
    ] {
        let p = one_selector(cond);
        assert_eq!(actions(&p, c, &ev) == ["alert"], fires, "{cond}");
    }
}

#[test]
fn path_conditions() {
    let p =
        one_selector("      targetFilePath: [/usr/bin/echo, /usr/sbin*, /usr/local/**, /opt/*]\n");
    let c = Container::default();
    for (path, fires) in [
        ("/usr/bin/echo", true),
        ("/usr/bin/echo2", false),
        ("/usr/sbin", true),
        ("/usr/sbinfoo", true),
        ("/usr/sbin/foo", false),
        ("/usr/local/bin/something", true),
        ("/usr/local", false),
        ("/opt/app", true),
        ("/opt/app/bin", false),
        ("/opt", false),
    ] {
        assert_eq!(
            actions(&p, &c, &file(FileOp::CreateExecutable, path)) == ["alert"],
            fires,
            "{path}"
        );
    }
    // Operations outside the selector's list do not match.
    assert!(actions(&p, &c, &file(FileOp::ModifyExecutable, "/usr/bin/echo")).is_empty());
}

#[test]
fn exclude_and_union() {
    let p = policy(
        "file:\n  selectors:\n    - name: all\n      operation: [createExecutable, modifyExecutable]\n    - name: tmp\n      targetFilePath: [/tmp/**]\n    - name: nginx\n      containerImageName: [nginx]\n  responses:\n    - match: [all]\n      exclude: [tmp]\n      actions: [alert, block]\n    - match: [nginx]\n      actions: [alert]\n",
    );
    let nginx = container(Some("nginx"), None, None, &[]);
    let other = container(Some("redis"), None, None, &[]);
    assert_eq!(
        actions(&p, &other, &file(FileOp::CreateExecutable, "/usr/x")),
        ["alert", "block"]
    );
    assert!(actions(&p, &other, &file(FileOp::CreateExecutable, "/tmp/x")).is_empty());
    assert_eq!(
        actions(&p, &nginx, &file(FileOp::CreateExecutable, "/tmp/x")),
        ["alert"]
    );
    let d = evaluate(&p, &nginx, &file(FileOp::CreateExecutable, "/usr/x"));
    assert_eq!(d.responses, [0, 1]);
    assert_eq!(d.selectors, [0, 2]);
}

#[test]
fn volumes() {
    let p = one_selector("      ignoreVolumeMounts: true\n");
    let q = one_selector("      ignoreVolumeFiles: true\n");
    let c = Container {
        mounts: vec![
            Mount {
                destination: "/data/".into(),
                file: false,
            },
            Mount {
                destination: "/etc/config.yaml".into(),
                file: true,
            },
        ],
        ..Container::default()
    };
    for (path, on_volume, on_file) in [
        ("/data", true, false),
        ("/data/x/y", true, false),
        ("/database", false, false),
        ("/etc/config.yaml", true, true),
        ("/etc/config.yaml.bak", false, false),
    ] {
        let ev = file(FileOp::CreateExecutable, path);
        assert_eq!(actions(&p, &c, &ev).is_empty(), on_volume, "mounts {path}");
        assert_eq!(actions(&q, &c, &ev).is_empty(), on_file, "files {path}");
    }
}

#[test]
fn process_conditions() {
    let p = policy(
        "process:\n  selectors:\n    - name: shells\n      operation: [exec]\n      processName: [sh, bash]\n    - name: tools\n      processExecutable: [/usr/bin/*]\n      sessionLeaderInteractive: true\n  responses:\n    - match: [shells]\n      actions: [alert]\n    - match: [tools]\n      actions: [log]\n",
    );
    let c = Container::default();
    let ev = |op, exe: &str, name: &str, interactive| Event::Process {
        op,
        executable: exe.into(),
        name: name.into(),
        started_as: None,
        interactive,
    };
    assert_eq!(
        actions(&p, &c, &ev(ProcessOp::Exec, "/bin/sh", "sh", false)),
        ["alert"]
    );
    assert!(actions(&p, &c, &ev(ProcessOp::Fork, "/bin/sh", "sh", false)).is_empty());
    assert_eq!(
        actions(&p, &c, &ev(ProcessOp::Fork, "/usr/bin/ls", "ls", true)),
        ["log"]
    );
    assert!(actions(&p, &c, &ev(ProcessOp::Fork, "/usr/bin/ls", "ls", false)).is_empty());
    assert!(actions(&p, &c, &ev(ProcessOp::Exec, "/usr/bin/x/ls", "ls", true)).is_empty());
    assert_eq!(
        actions(&p, &c, &ev(ProcessOp::Exec, "/usr/bin/bash", "bash", true)),
        ["alert", "log"]
    );
}

/// A process is decided as the file it runs and as the name it was started by; the
/// actions are those either gets. So `processName: [sh]` catches `/bin/sh` where it links
/// to dash or busybox, and a name an attacker picks (a symlink) never removes an action.
#[test]
fn a_process_is_decided_by_its_file_and_by_the_name_it_was_started_by() {
    let p = policy(
        "process:\n  selectors:\n    - name: shells\n      operation: [exec]\n      processName: [sh, bash]\n    - name: everything\n      operation: [exec, fork]\n    - name: apt\n      processName: [apt]\n    - name: sbin\n      processExecutable: [/usr/sbin/*]\n  responses:\n    - match: [shells]\n      actions: [alert, block]\n    - match: [everything]\n      exclude: [apt]\n      actions: [log]\n    - match: [sbin]\n      actions: [alert]\n",
    );
    let c = Container::default();
    let exec = |exe: &str, name: &str, started: Option<&str>| Event::Process {
        op: ProcessOp::Exec,
        executable: exe.into(),
        name: name.into(),
        started_as: started.map(Into::into),
        interactive: false,
    };
    // Debian's /bin/sh -> dash, Alpine's /bin/sh -> busybox: the name `sh` started them.
    for (exe, name) in [("/usr/bin/dash", "dash"), ("/bin/busybox", "busybox")] {
        assert_eq!(
            actions(&p, &c, &exec(exe, name, Some("/bin/sh"))),
            ["alert", "block", "log"],
            "{exe}"
        );
        assert_eq!(
            actions(&p, &c, &exec(exe, name, None)),
            ["log"],
            "{exe} run by its own name"
        );
    }
    // A symlink named like an exception does not take the exception: the file is busybox.
    assert_eq!(
        actions(&p, &c, &exec("/bin/busybox", "busybox", Some("/tmp/apt"))),
        ["log"]
    );
    // The real apt is excepted under both names.
    assert!(actions(&p, &c, &exec("/usr/bin/apt", "apt", Some("/usr/bin/apt"))).is_empty());
    // The path the exec named counts for processExecutable when it is absolute.
    assert_eq!(
        actions(&p, &c, &exec("/usr/bin/x", "x", Some("/usr/sbin/x"))),
        ["alert", "log"]
    );
    assert_eq!(
        actions(&p, &c, &exec("/usr/bin/x", "x", Some("sbin/x"))),
        ["log"]
    );
    // Fork: the comm is the second name (a prctl-chosen name only adds actions).
    let fork = Event::Process {
        op: ProcessOp::Fork,
        executable: "/usr/bin/dash".into(),
        name: "dash".into(),
        started_as: Some("sh".into()),
        interactive: false,
    };
    assert_eq!(actions(&p, &c, &fork), ["log"]);
    // Names are cut to the kernel's 15 bytes on both sides.
    let long = exec("/x", "x", Some("/opt/a-name-longer-than-15"));
    assert_eq!(long.identities()[1].name, "a-name-longer-t");
}

#[test]
fn generation1_means_the_same() {
    let g1 = policy("selectors:\n  - name: s\n    operation: [createExecutable]\n    orchestratorNamespace: ['prod*']\n    orchestratorResourceLabel: ['production:*']\n    orchestratorType: [kubernetes]\nresponses:\n  - match: [s]\n    actions: [alert, block]\n");
    let g2 = policy("file:\n  selectors:\n    - name: s\n      operation: [createExecutable]\n      kubernetesNamespace: ['prod*']\n      kubernetesPodLabel: ['production:*']\n  responses:\n    - match: [s]\n      actions: [alert, block]\n");
    let ev = file(FileOp::CreateExecutable, "/x");
    for c in [
        container(None, Some("prod"), None, &[("production", "yes")]),
        container(None, Some("dev"), None, &[("production", "yes")]),
        container(None, Some("prod"), None, &[]),
    ] {
        assert_eq!(actions(&g1, &c, &ev), actions(&g2, &c, &ev), "{c:?}");
    }
    let mut no_pod = container(None, Some("prod"), None, &[("production", "yes")]);
    no_pod.orchestrator = None;
    assert!(
        actions(&g1, &no_pod, &ev).is_empty(),
        "orchestratorType needs kubernetes"
    );
}

#[test]
fn memfd_is_matched_by_its_kernel_name() {
    let sel = |paths: &str| {
        policy(&format!("file:\n  selectors:\n    - name: m\n      operation: [createExecutable, modifyExecutable, execMemFd]\n      targetFilePath: [{paths}]\n  responses:\n    - match: [m]\n      actions: [alert, block]\n"))
    };
    let c = Container::default();
    let ev = file(FileOp::ExecMemFd, "/memfd:payload");
    assert_eq!(actions(&sel("'/**'"), &c, &ev), ["alert", "block"]);
    assert_eq!(actions(&sel("'/memfd:*'"), &c, &ev), ["alert", "block"]);
    assert!(actions(&sel("'/usr/**'"), &c, &ev).is_empty());
    // A `/` in the name does not make it two components: `/memfd:*` still matches.
    let slashed = file(FileOp::ExecMemFd, "/memfd:a/b");
    assert_eq!(
        actions(&sel("'/memfd:*'"), &c, &slashed),
        ["alert", "block"]
    );
    assert_eq!(
        actions(&sel("'/memfd:a_b'"), &c, &slashed),
        ["alert", "block"]
    );
    assert!(actions(&sel("'/memfd:a/*'"), &c, &slashed).is_empty());
}

#[test]
fn an_unreachable_path_gets_the_most_restrictive_row() {
    let p = policy("file:\n  selectors:\n    - name: usr\n      operation: [createExecutable]\n      targetFilePath: ['/usr/**']\n    - name: tmp\n      operation: [createExecutable, modifyFile]\n      targetFilePath: ['/tmp/*']\n  responses:\n    - match: [usr]\n      actions: [alert, block]\n    - match: [tmp]\n      actions: [log]\n");
    let tables = compile_rule_set(
        &p,
        &RuleSetSpec::for_container(&p, &Container::default()),
        3,
    )
    .unwrap();
    let worst = |op| d4c_policy::compile::unreachable_actions(&tables.file_rules, op);
    assert_eq!(
        worst(FileOp::CreateExecutable),
        ACTION_LOG | ACTION_ALERT | ACTION_BLOCK
    );
    assert_eq!(worst(FileOp::ModifyFile), ACTION_LOG);
    assert_eq!(worst(FileOp::DeleteFile), 0);
    // No real path reaches that row: `/` itself is decided by its own patterns.
    let c = Container::default();
    assert!(actions(&p, &c, &file(FileOp::CreateExecutable, "/")).is_empty());
}

#[test]
fn an_unreachable_executable_gets_the_most_restrictive_class() {
    let p = policy("process:\n  selectors:\n    - name: tmp\n      operation: [exec]\n      processExecutable: ['/tmp/**']\n    - name: nc\n      operation: [exec]\n      processName: [nc]\n  responses:\n    - match: [tmp]\n      actions: [alert, block]\n    - match: [nc]\n      actions: [log]\n");
    let t = compile_rule_set(
        &p,
        &RuleSetSpec::for_container(&p, &Container::default()),
        3,
    )
    .unwrap();
    let root = t
        .exe_rules
        .iter()
        .find(|(k, _)| k.prefix_len == 32)
        .expect("root entry")
        .1;
    let class = root.class[d4c_common::REST_EMPTY];
    let decision = |name_class: u32| {
        t.proc_decisions
            .iter()
            .find(|(k, _)| k.exe_class == class && k.name_class == name_class)
            .map_or(0, |(_, d)| d.actions[0][d4c_common::OP_EXEC])
    };
    // Any name: the /tmp block; the name `nc` (class 1) adds its log.
    assert_eq!(decision(0), ACTION_ALERT | ACTION_BLOCK);
    assert_eq!(decision(1), ACTION_ALERT | ACTION_BLOCK | ACTION_LOG);
    // A real path never gets that class.
    assert!(t
        .exe_rules
        .iter()
        .all(|(_, r)| r.class[1] != class && r.class[2] != class));
}

#[test]
fn the_longest_paths_compile_exactly() {
    let exact = format!("/{}", "e".repeat(250));
    let dir = format!("/{}", "d".repeat(246));
    let p = one_selector(&format!("      targetFilePath: ['{exact}', '{dir}/**']\n"));
    assert_eq!(exact.len(), 251);
    let c = Container::default();
    for (path, fires) in [
        (exact.clone(), true),
        (format!("{exact}x"), false),
        (format!("{exact}/x"), false),
        (format!("{dir}/x"), true),
        (format!("{dir}/{}", "y".repeat(300)), true),
        (format!("{dir}x/y"), false),
    ] {
        assert_eq!(
            actions(&p, &c, &file(FileOp::CreateExecutable, &path)) == ["alert"],
            fires,
            "{}",
            path.len()
        );
    }
}

/// What a directory moved from `src` to `dest` gets, from the reference and from the
/// kernel tables (which must agree).
fn moved(p: &Policy, c: &Container, src: &str, dest: &str) -> u8 {
    let want = d4c_policy::evaluate_dir_move(p, c, src, dest);
    let tables = compile_rule_set(p, &RuleSetSpec::for_container(p, c), 5).unwrap();
    let got = KernelMaps::from_tables(&tables).decide_dir_move(5, src, dest);
    assert_eq!(got, want, "kernel tables vs reference for {src} -> {dest}");
    want.0
}

#[test]
fn a_directory_move_is_decided_by_what_could_land_below_it() {
    let c = Container::default();
    let block = ACTION_ALERT | ACTION_BLOCK;
    let bins = policy("file:\n  selectors:\n    - name: bins\n      operation: [createExecutable]\n      targetFilePath: ['/usr/bin/**', '/opt/app*']\n  responses:\n    - match: [bins]\n      actions: [alert, block]\n");
    // Everywhere but an exception.
    let except = policy("file:\n  selectors:\n    - name: all\n      operation: [createExecutable]\n    - name: cache\n      operation: [createExecutable]\n      targetFilePath: ['/app/cache/**']\n  responses:\n    - match: [all]\n      exclude: [cache]\n      actions: [alert, block]\n");
    // A rule that only alerts does not act on moves.
    let alert = policy("file:\n  selectors:\n    - name: all\n      operation: [createExecutable]\n  responses:\n    - match: [all]\n      actions: [alert]\n");
    let cases = [
        (&bins, "/tmp/s", "/tmp/d", 0, "nothing below /tmp/d blocks"),
        (
            &bins,
            "/tmp/s",
            "/usr/bin/d",
            block,
            "into the protected tree",
        ),
        (&bins, "/tmp/s", "/usr", block, "/usr/bin would be below it"),
        (
            &bins,
            "/tmp/s",
            "/usr/lib",
            0,
            "a sibling of the protected tree",
        ),
        (
            &bins,
            "/tmp/s",
            "/opt/app",
            0,
            "`/opt/app*` is one name deep",
        ),
        (
            &bins,
            "/tmp/s",
            "/opt",
            block,
            "/opt/app2 would be below it",
        ),
        (
            &bins,
            "/usr/bin/s",
            "/usr/bin/d",
            0,
            "nothing created below the source",
        ),
        (
            &except,
            "/srv/s",
            "/srv/d",
            0,
            "nothing could be created below the source",
        ),
        (
            &except,
            "/srv/s",
            "/app/cache/d",
            0,
            "nor below the destination",
        ),
        (
            &except,
            "/app/cache/s",
            "/app/cache/d",
            0,
            "inside the exception",
        ),
        (
            &except,
            "/app/cache/s",
            "/app/cache",
            0,
            "all below it is in the exception",
        ),
        (
            &except,
            "/app/cache/s",
            "/app",
            block,
            "/app/x would be below it",
        ),
        (
            &except,
            "/app/cache/s",
            "/srv/d",
            block,
            "out of the exception",
        ),
        (
            &except,
            "/app",
            "/srv/d",
            block,
            "the source holds the exception",
        ),
        (&alert, "/srv/s", "/srv/d", 0, "alert only"),
    ];
    for (p, src, dest, want, why) in cases {
        assert_eq!(moved(p, &c, src, dest), want, "{src} -> {dest}: {why}");
    }
}
