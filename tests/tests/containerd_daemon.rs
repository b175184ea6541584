//! End-to-end: `d4c nri` (the real daemon binary) against a real containerd 1.7. Pods
//! created through CRI are registered at `StartContainer` with the rule set their labels
//! select (checked through `d4c status`), removed on removal, rebuilt after a daemon
//! restart and after a containerd restart; policy reloads switch rule sets and an invalid
//! change keeps the last good policy, through a daemon restart too. The kernel maps are the daemon's in-memory stand-in
//! (`enforcement: none`): this machine's kernel cannot load LSM programs; the guest tests
//! cover enforcement. Needs root and containerd with NRI (`tests/containerd/setup.sh`).

mod containerd_support;

use containerd_support::daemon::{write_config, Daemon};
use containerd_support::pods::{Pod, SLEEP};
use containerd_support::{skip_reason, unique_id, Containerd, PROTECT_POLICY};
use serde_json::Value;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable]\n      kubernetesNamespace: [d4c-e2e]\n  responses:\n    - match: [drift]\n      actions: [alert]\n";

fn container<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["containers"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
}

fn rule_set(status: &Value, id: &str) -> Option<u64> {
    container(status, id).and_then(|c| c["rule_set"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn daemon_registers_real_pods() {
    if skip_reason().is_some() {
        return;
    }
    let id = unique_id();
    let mut ctd = Containerd::start(&id);
    let dir = ctd.scratch.join("d4c");
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("protect.yaml"), PROTECT_POLICY).unwrap();
    let config = dir.join("d4c.yaml");
    let status_sock = dir.join("status.sock");
    write_config(&config, &policies, &ctd.nri_socket(), None, &status_sock);
    let mut daemon = Daemon::start(
        &config,
        &status_sock,
        &dir.join("alerts.ndjson"),
        &dir.join("d4c.log"),
    );
    let mut cri = ctd.cri().await;

    // A pod the policy selects is registered under a rule set; one it does not is not.
    let protected = Pod::run(
        &mut cri,
        &ctd,
        "web",
        "d4c-e2e",
        &[("d4c-test", "protect"), ("app", "web")],
    )
    .await;
    let a = protected.create(&mut cri, "app", &SLEEP).await;
    Pod::start(&mut cri, &a).await.unwrap();
    let other = Pod::run(&mut cri, &ctd, "db", "d4c-e2e", &[("app", "db")]).await;
    let b = other.create(&mut cri, "db", &SLEEP).await;
    Pod::start(&mut cri, &b).await.unwrap();
    let s = daemon.status().expect("status");
    let ca = container(&s, &a).unwrap_or_else(|| panic!("{s}"));
    assert!(ca["rule_set"].as_u64().is_some(), "{s}");
    assert_eq!(ca["namespace"], "d4c-e2e");
    assert_eq!(ca["pod"], "web");
    assert_eq!(ca["image"], "docker.io/d4c/busybox:1");
    assert!(ca["labels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "d4c-test:protect"));
    assert!(ca["cgroup_id"].as_u64().unwrap() > 0);
    assert_eq!(
        rule_set(&s, &b),
        None,
        "no policy applies to the db pod: {s}"
    );

    // The daemon restarts: Synchronize rebuilds the same registrations.
    daemon.restart();
    let s = daemon.wait_for(
        |s| container(s, &a).is_some() && container(s, &b).is_some(),
        "resync after a daemon restart",
    );
    assert!(rule_set(&s, &a).is_some());
    assert_eq!(rule_set(&s, &b), None);

    // containerd restarts: the daemon reconnects and resynchronizes.
    ctd.restart();
    let mut cri = ctd.cri().await;
    let before = rule_set(&s, &a);
    daemon.wait_for(
        |s| container(s, &a).is_some() && rule_set(s, &a) == before,
        "resync after a containerd restart",
    );

    // A policy change switches rule sets; both pods now match.
    std::fs::write(policies.join("protect.yaml"), NAMESPACE).unwrap();
    let s = daemon.wait_for(|s| s["policy_revision"] == 2, "the reload");
    assert!(
        rule_set(&s, &a).is_some() && rule_set(&s, &b).is_some(),
        "{s}"
    );
    assert_ne!(rule_set(&s, &a), before, "new rule-set ids");

    // An invalid change is rejected with its position; the last good policy stays.
    std::fs::write(policies.join("broken.yaml"), "file:\n  selectors: [\n").unwrap();
    let t = Instant::now();
    while !daemon.log().contains("policy change rejected") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.log().contains("broken.yaml:"), "{}", daemon.log());
    let s = daemon.status().unwrap();
    assert_eq!(s["policy_revision"], 2);
    assert!(rule_set(&s, &b).is_some());
    assert_eq!(s["policy_valid"], false, "{s}");

    // A restart with the invalid file still there: the daemon enforces the last good
    // policy it loaded (revision 2's files), says so, and registers the pods under it.
    daemon.restart();
    let s = daemon.wait_for(
        |s| rule_set(s, &a).is_some() && rule_set(s, &b).is_some(),
        "resync on the last good policy",
    );
    assert_eq!(s["policy_valid"], false, "{s}");
    assert!(
        daemon
            .log()
            .contains("THE POLICY DIRECTORY IS INVALID: enforcing the last good policy"),
        "{}",
        daemon.log()
    );
    assert!(daemon.log().contains("broken.yaml:"), "{}", daemon.log());
    // Fixed: loaded, valid again.
    std::fs::remove_file(policies.join("broken.yaml")).unwrap();
    daemon.wait_for(|s| s["policy_valid"] == true, "the fixed directory loaded");

    // Removal drops the container.
    protected.remove(&mut cri).await;
    daemon.wait_for(|s| container(s, &a).is_none(), "removal");
    other.remove(&mut cri).await;
    let _ = id;
    drop(daemon);
    drop(ctd);
}
