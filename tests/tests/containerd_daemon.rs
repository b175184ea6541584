//! End-to-end: `d4c nri` (the real daemon binary) against a real containerd 1.7. Pods
//! created through CRI are registered at StartContainer with the rule set their labels
//! select (checked through `d4c status`), removed on removal, rebuilt after a daemon
//! restart and after a containerd restart; policy reloads switch rule sets and an invalid
//! change keeps the last good policy. The kernel maps are the daemon's in-memory stand-in
//! (`enforcement: none`): this machine's kernel cannot load LSM programs; the guest tests
//! cover enforcement. Needs root and containerd with NRI (`tests/containerd/setup.sh`).

mod containerd_support;

use containerd_support::pods::Pod;
use containerd_support::{skip_reason, unique_id, Containerd};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `d4c` binary cargo built next to this test.
fn d4c_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("d4c");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p d4c)",
        bin.display()
    );
    bin
}

const PROTECT: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable, modifyExecutable]\n      kubernetesPodLabel: ['d4c-test:protect']\n  responses:\n    - match: [drift]\n      actions: [alert, block]\n";
const NAMESPACE: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable]\n      kubernetesNamespace: [d4c-e2e]\n  responses:\n    - match: [drift]\n      actions: [alert]\n";

struct Daemon {
    child: Child,
    config: PathBuf,
    status: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, status: &Path, log: &Path) -> Daemon {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(d4c_bin())
            .args(["nri", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            config: config.to_owned(),
            status: status.to_owned(),
            log: log.to_owned(),
        };
        d.wait_for(
            |s| s["policy_revision"].as_u64().is_some(),
            "the daemon's status socket",
        );
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status(&self) -> Option<Value> {
        let out = Command::new(d4c_bin())
            .args(["status", "--format", "json", "--socket"])
            .arg(&self.status)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout)
            .ok()
            .filter(|v: &Value| v.get("containers").is_some())
    }

    /// Polls `d4c status` until `ok` holds (10 s at most).
    fn wait_for(&self, ok: impl Fn(&Value) -> bool, what: &str) -> Value {
        let t = Instant::now();
        loop {
            if let Some(s) = self.status() {
                if ok(&s) {
                    return s;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}\nstatus {:?}\nlog:\n{}",
                self.status(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Daemon::start(
            &self.config.clone(),
            &self.status.clone(),
            &self.log.clone(),
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
async fn daemon_registers_real_pods() {
    if skip_reason().is_some() {
        return;
    }
    let id = unique_id();
    let mut ctd = Containerd::start(&id);
    let dir = ctd.scratch.join("d4c");
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("protect.yaml"), PROTECT).unwrap();
    let config = dir.join("d4c.yaml");
    let status_sock = dir.join("status.sock");
    std::fs::write(
        &config,
        format!(
            "policyDir: {}\nnriSocket: {}\npluginIndex: \"20\"\nenforcement: none\nstatusSocket: {}\nmetricsAddress: \"\"\nclusterName: e2e\nalerts:\n  stdout: false\n",
            policies.display(),
            ctd.nri_socket().display(),
            status_sock.display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config, &status_sock, &dir.join("d4c.log"));
    let mut cri = ctd.cri().await;
    let sleep = ["/bin/sleep", "2147483647"];

    // A pod the policy selects is registered under a rule set; one it does not is not.
    let protected = Pod::run(
        &mut cri,
        &ctd,
        "web",
        "d4c-e2e",
        &[("d4c-test", "protect"), ("app", "web")],
    )
    .await;
    let a = protected.create(&mut cri, "app", &sleep).await;
    Pod::start(&mut cri, &a).await.unwrap();
    let other = Pod::run(&mut cri, &ctd, "db", "d4c-e2e", &[("app", "db")]).await;
    let b = other.create(&mut cri, "db", &sleep).await;
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

    // Removal drops the container.
    protected.remove(&mut cri).await;
    daemon.wait_for(|s| container(s, &a).is_none(), "removal");
    other.remove(&mut cri).await;
    let _ = id;
    drop(daemon);
    drop(ctd);
}
