//! Guest end-to-end: containers that start while no `d4c nri` is connected. The daemon
//! guards the pod cgroup parent (`podCgroupParents`), so the kernel puts every container
//! created below it under the rule set of a container without attributes, from its first
//! instruction, with the daemon stopped; when the daemon comes back, Synchronize gives the
//! container its own rule set in place and the alerts kept in the kernel name the pod.
//!
//! - daemon killed; a pod in namespace `d4c-relaxed` (which its own rule set exempts)
//!   starts with an entrypoint that drops and runs a binary: the copy is refused (EPERM);
//! - daemon started again: `d4c status` lists the container with its own rule set, the
//!   window's alert names the pod, and the same copy now works (its own policy decides);
//! - an upgrade (another build's pins) with a pod starting while no daemon runs: the pod
//!   is refused then, and managed by the new build after the handover;
//! - `unregisteredContainers: allow`: a pod started while the daemon is down is not
//!   guarded.
//!
//! Skips like `guest_containerd.rs` (root, containerd, runc, the `d4c` binary, a kernel
//! that loads the hooks); fails instead with `D4C_REQUIRE_BPF_LSM=1`.

mod containerd_support;

use containerd_support::daemon::{pretend_previous_build, write_config_with, Daemon, Unload};
use containerd_support::guest::skip;
use containerd_support::pods::{exec_sync, Cri, Pod};
use containerd_support::{cgroup2_root, ensure_etc_files, unique_id, Containerd};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Drift is blocked everywhere except in namespace `d4c-relaxed`, where it only alerts: a
/// container without attributes (an unregistered one) is blocked, a registered one in
/// `d4c-relaxed` is not (its own rule set alerts).
const POLICY: &str = "\
file:
  selectors:
    - name: drift
      operation: [createExecutable, modifyExecutable]
    - name: relaxed
      kubernetesNamespace: [d4c-relaxed]
    - name: relaxedDrift
      operation: [createExecutable, modifyExecutable]
      kubernetesNamespace: [d4c-relaxed]
  responses:
    - match: [drift]
      exclude: [relaxed]
      actions: [alert, block]
    - match: [relaxedDrift]
      actions: [alert]
";

/// Drops a binary and runs it, records the outcome in /tmp/rc, then stays up.
const DROP_AND_RUN: [&str; 3] = [
    "sh",
    "-c",
    "cp /bin/busybox /tmp/true && /tmp/true; echo $? > /tmp/rc; exec sleep 2147483647",
];

fn container_status<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["containers"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
}

/// Waits for the container's entrypoint to record its outcome; returns /tmp/rc.
async fn outcome(cri: &mut Cri, id: &str) -> String {
    let t = Instant::now();
    loop {
        let r = exec_sync(cri, id, &["cat", "/tmp/rc"], 20).await.unwrap();
        if r.exit_code == 0 {
            return r.stdout.trim().to_owned();
        }
        assert!(
            t.elapsed() < Duration::from_mins(1),
            "{id} never wrote /tmp/rc"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cgroups below `dir` with their processes and kernel entries: what a failure shows.
fn dump(dir: &Path, bpffs: &Path) -> String {
    use std::fmt::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    let entries = d4c::bpf::Enforcer::adopt(bpffs)
        .and_then(|e| e.registered())
        .unwrap_or_default();
    let mut out = String::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let id = std::fs::metadata(&d).map_or(0, |m| m.ino());
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        let entry = entries.iter().find(|(c, _)| *c == id).map(|(_, e)| *e);
        let _ = writeln!(
            out,
            "{} id {id} procs [{}] entry {entry:?}",
            d.display(),
            procs.trim().replace('\n', " ")
        );
        if let Ok(rd) = std::fs::read_dir(&d) {
            stack.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Runs a pod with the drop-and-run entrypoint; returns the pod and the container id.
async fn drifting_pod(
    cri: &mut Cri,
    ctd: &Containerd,
    name: &str,
    namespace: &str,
    bpffs: &Path,
) -> (Pod, String) {
    let pod = Pod::run(cri, ctd, name, namespace, &[("app", name)]).await;
    let id = pod.create(cri, "drift", &DROP_AND_RUN).await;
    let base = cgroup2_root().join(ctd.cgroup_base.trim_start_matches('/'));
    Pod::start(cri, &id).await.unwrap_or_else(|e| {
        panic!(
            "StartContainer {name}: {e}\ncgroups:\n{}\n{}",
            dump(&base, bpffs),
            ctd.log()
        )
    });
    (pod, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn containers_started_while_no_daemon_runs_are_guarded() {
    if skip() {
        return;
    }
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>5.1?}] {what}", started.elapsed());
    ensure_etc_files();
    let id = unique_id();
    let ctd = Containerd::start(&id);
    // The pod cgroup parent exists before the daemon starts, as kubelet's kubepods does.
    let parent = ctd.cgroup_base.trim_start_matches('/').to_owned();
    std::fs::create_dir_all(cgroup2_root().join(&parent)).unwrap();
    let dir = ctd.scratch.join("d4c");
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("drift.yaml"), POLICY).unwrap();
    let bpffs = PathBuf::from(format!("/sys/fs/bpf/d4c-e2e-{id}"));
    let _unload = Unload(bpffs.clone());
    let config = dir.join("d4c.yaml");
    let status_sock = dir.join("status.sock");
    let write = |unregistered: &str| {
        write_config_with(
            &config,
            &policies,
            &ctd.nri_socket(),
            Some(&bpffs),
            &status_sock,
            &format!("unregisteredContainers: {unregistered}\npodCgroupParents: [{parent}]\n"),
        );
    };
    write("policy");
    let alerts_file = dir.join("alerts.ndjson");
    let mut daemon = Daemon::start(&config, &status_sock, &alerts_file, &dir.join("d4c.log"));
    daemon.wait_log("synchronized with the runtime", Duration::from_secs(30));
    assert!(
        daemon
            .log()
            .contains("guarding containers not registered yet"),
        "{}",
        daemon.log()
    );
    let status = daemon.status().unwrap();
    let guard_id = format!("unregistered:{parent}");
    let guard = container_status(&status, &guard_id).unwrap_or_else(|| panic!("{status}"));
    assert_eq!(guard["guard"], true, "{status}");
    step("daemon up, pod cgroup parent guarded");

    // 1. The daemon is down: a new pod's drift is refused from its first instruction.
    daemon.kill();
    let mut cri = ctd.cri().await;
    let (late, late_ctr) = drifting_pod(&mut cri, &ctd, "late", "d4c-relaxed", &bpffs).await;
    let rc = outcome(&mut cri, &late_ctr).await;
    assert_ne!(rc, "0", "the entrypoint's copy worked while no daemon ran");
    let r = exec_sync(&mut cri, &late_ctr, &["test", "-e", "/tmp/true"], 20)
        .await
        .unwrap();
    assert_ne!(r.exit_code, 0, "/tmp/true was created while no daemon ran");
    step("daemon down: the new pod's copy was refused");

    // 2. The daemon is back: the container gets its own rule set, the alert names it.
    daemon.start_until(
        false,
        "synchronized with the runtime",
        Duration::from_secs(30),
    );
    let status = daemon.status().unwrap();
    let own = container_status(&status, &late_ctr).unwrap_or_else(|| panic!("{status}"));
    assert!(own["rule_set"].is_u64(), "no rule set of its own: {status}");
    assert_ne!(own["rule_set"], guard["rule_set"], "{status}");
    assert_eq!(own["guard"], false, "{status}");
    let alert = daemon.wait_alert(
        |a| a["file"]["path"] == "/tmp/true" && a["container"]["id"] == late_ctr.as_str(),
        "the copy refused while no daemon ran",
    );
    assert_eq!(alert["orchestrator"]["resource"]["name"], "late", "{alert}");
    assert_eq!(alert["orchestrator"]["namespace"], "d4c-relaxed", "{alert}");
    let r = exec_sync(&mut cri, &late_ctr, &["cp", "/bin/busybox", "/tmp/y"], 20)
        .await
        .unwrap();
    assert_eq!(
        r.exit_code, 0,
        "its own rule set exempts d4c-relaxed: {r:?}"
    );
    step("daemon back: own rule set, the window's alert names the pod");

    // 3. An upgrade with a pod starting while no daemon runs.
    pretend_previous_build(&bpffs);
    daemon.kill();
    let (during, during_ctr) = drifting_pod(&mut cri, &ctd, "during", "d4c-strict", &bpffs).await;
    assert_ne!(
        outcome(&mut cri, &during_ctr).await,
        "0",
        "copy worked during the upgrade"
    );
    daemon.start_until(false, "this build enforces alone", Duration::from_mins(1));
    let status = daemon.status().unwrap();
    let own = container_status(&status, &during_ctr).unwrap_or_else(|| panic!("{status}"));
    assert!(
        own["rule_set"].is_u64(),
        "unmanaged after the upgrade: {status}"
    );
    let r = exec_sync(&mut cri, &during_ctr, &["cp", "/bin/busybox", "/tmp/y"], 20)
        .await
        .unwrap();
    assert_ne!(r.exit_code, 0, "drift allowed after the upgrade: {r:?}");
    step("upgrade: the pod started in between is managed by the new build");

    // 4. `allow`: a pod started while the daemon is down is not guarded.
    write("allow");
    daemon.start_until(
        true,
        "synchronized with the runtime",
        Duration::from_secs(30),
    );
    let status = daemon.status().unwrap();
    assert!(container_status(&status, &guard_id).is_none(), "{status}");
    daemon.kill();
    let (open, open_ctr) = drifting_pod(&mut cri, &ctd, "open", "d4c-strict", &bpffs).await;
    assert_eq!(
        outcome(&mut cri, &open_ctr).await,
        "0",
        "unregisteredContainers: allow still refused the copy"
    );
    daemon.start_until(
        false,
        "synchronized with the runtime",
        Duration::from_secs(30),
    );
    step("allow: unguarded while the daemon was down");

    for p in [late, during, open] {
        p.remove(&mut cri).await;
    }
    let _ = std::fs::remove_dir(cgroup2_root().join(Path::new(&parent)));
}
