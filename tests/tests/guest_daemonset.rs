//! The shipped `DaemonSet`, run the way a kubelet runs it, protects pods: the d4c image
//! (install/image/build.py) started through CRI with exactly the manifest's args,
//! capabilities (drop ALL, add BPF, PERFMON, `SYS_ADMIN`, `SYS_RESOURCE`), read-only root,
//! no new privileges, seccomp `RuntimeDefault` and volumes (hostPath /sys/fs/bpf,
//! /sys/kernel/btf, /sys/kernel/security, /sys/fs/cgroup, the NRI socket directory; the
//! config and policy `ConfigMaps` as shipped plus one blocking policy a user would add).
//! Then, inside a QEMU guest with a real containerd:
//!
//! - the daemon loads and pins its programs with those privileges only (its effective
//!   capability set is checked), answers its health probe and `d4c status`, and judges
//!   blocking guaranteed from the host's files the manifest mounts (`d4c doctor` in the
//!   pod reads the host's debugfs and os-release);
//! - a pod the added policy selects cannot drop an executable (EPERM), and the alert
//!   document is on the d4c container's stdout, naming the pod.
//!
//! Departures from a kubelet (see `containerd_support::daemonset`): host network, and the
//! NRI socket directory redirected to the test containerd's. Skips like
//! `guest_containerd.rs`; `scripts/guest-e2e.sh` stages the image archive and install/.

mod containerd_support;

use containerd_support::daemon::{d4c_bin, http_get, Unload};
use containerd_support::daemonset::{self, log_lines, normalise, Spec};
use containerd_support::guest::skip;
use containerd_support::pods::{exec_sync, wait_exit, Cri, Pod, SLEEP};
use containerd_support::{
    ensure_etc_files, image_tar_name, setup_dir, unique_id, Containerd, PROTECT_POLICY,
};
use k8s_cri::v1::StopContainerRequest;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `spec`'s container, as a kubelet would, in a new pod (`name`, `namespace`) with one
/// label; returns the pod, the container's id and its log file.
async fn start_in_pod(
    cri: &mut Cri,
    ctd: &Containerd,
    spec: &Spec,
    (name, namespace): (&str, &str),
    label: (&str, &str),
) -> (Pod, String, PathBuf) {
    let pod = Pod::run(cri, ctd, name, namespace, &[label]).await;
    let id = pod.create_config(cri, spec.container_config()).await;
    Pod::start(cri, &id)
        .await
        .unwrap_or_else(|e| panic!("StartContainer in {name}: {e}\n{}", ctd.log()));
    (pod, id, spec.log_file(ctd))
}

/// Waits up to `limit` for a line of `stream` in the container log `log` that `found`
/// accepts; else fails with `what()` and the log.
fn wait_for_line(
    log: &Path,
    stream: &str,
    found: impl Fn(&str) -> bool,
    limit: Duration,
    what: impl Fn() -> String,
) {
    let t = Instant::now();
    while !log_lines(log, stream).iter().any(|l| found(l)) {
        assert!(
            t.elapsed() < limit,
            "{}\nits log:\n{}",
            what(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The image the manifests name (`d4c:<version>`), as containerd resolves it; scripts/guest-e2e.sh
/// builds its archive with install/image/build.py.
const IMAGE: &str = concat!("docker.io/library/d4c:", env!("CARGO_PKG_VERSION"));
use std::time::{Duration, Instant};

const DRIFT: [&str; 3] = ["sh", "-c", "cp /bin/busybox /tmp/x"];
const PINS: &str = d4c::paths::PIN_DIR;

/// Capability numbers (linux/capability.h) of the names a manifest uses.
fn cap_bit(name: &str) -> u32 {
    match name.trim_start_matches("CAP_") {
        "SYS_ADMIN" => 21,
        "SYS_RESOURCE" => 24,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("capability {other}: add its number here"),
    }
}

/// `CapEff` of the process whose command line is `d4c nri ...`.
fn daemon_cap_eff() -> Option<u64> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.len() > 1 && args[0].ends_with(b"d4c") && args[1] == b"nri" {
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            return u64::from_str_radix(hex.trim(), 16).ok();
        }
    }
    None
}

/// GET `path` on 127.0.0.1:`port`: the response, or the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn the_daemonset_protects_pods_with_only_its_privileges() {
    if skip() {
        return;
    }
    let started = Instant::now();
    ensure_etc_files();
    assert!(
        !Path::new(PINS).exists(),
        "{PINS} exists: another d4c is loaded here"
    );
    let image = setup_dir().join(image_tar_name(IMAGE));
    assert!(
        image.is_file(),
        "no d4c image archive {} (scripts/guest-e2e.sh builds it with install/image/build.py)",
        image.display()
    );
    let id = unique_id();
    let ctd = Containerd::start(&id);
    ctd.import(&image);
    let _unload = Unload(PINS.into());
    let spec = Spec::load(
        &ctd.scratch.join("daemonset"),
        &HashMap::from([("/var/run/nri", ctd.scratch.clone())]),
        &[("policies", "protect.yaml", PROTECT_POLICY)],
    );
    assert_eq!(spec.image, IMAGE);
    eprintln!(
        "[{:>5.1?}] containerd ready, d4c image imported",
        started.elapsed()
    );

    let mut cri = ctd.cri().await;
    let (node_pod, d4c, log) = start_in_pod(
        &mut cri,
        &ctd,
        &spec,
        ("d4c-node", "d4c-system"),
        ("app.kubernetes.io/name", "d4c"),
    )
    .await;
    wait_for_line(
        &log,
        "stderr",
        |l| l.contains("synchronized with the runtime"),
        Duration::from_mins(1),
        || {
            format!(
                "the d4c container did not connect to containerd\ncontainerd:\n{}",
                ctd.log()
            )
        },
    );
    eprintln!(
        "[{:>5.1?}] the d4c container is running and synchronized",
        started.elapsed()
    );

    // Only the manifest's capabilities are in effect.
    let expected: u64 = spec.add_caps.iter().map(|c| 1u64 << cap_bit(c)).sum();
    assert_eq!(
        daemon_cap_eff(),
        Some(expected),
        "the d4c process's effective capabilities differ from the manifest's {:?}",
        spec.add_caps
    );
    // The probes' endpoint and the status socket (an emptyDir on the node).
    let health = http_get(9690, "/healthz").unwrap();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let ready = http_get(9690, "/readyz").unwrap();
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
        "{ready}"
    );
    let status_sock = ctd.scratch.join("daemonset/volumes/run/status.sock");
    let out = Command::new(d4c_bin().unwrap())
        .args(["status", "--format", "json", "--socket"])
        .arg(&status_sock)
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("d4c status ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        status["programs_attached"]
            .as_array()
            .is_some_and(|p| p.iter().any(|n| n == "file_open")),
        "{status}"
    );
    assert!(
        Path::new(PINS).join("links").is_dir(),
        "nothing pinned under {PINS}"
    );
    // Whether blocking is guaranteed, judged inside the pod from the host's files the
    // manifest mounts.
    let metrics = http_get(9690, "/metrics").unwrap();
    let r = exec_sync(
        &mut cri,
        &d4c,
        &["/usr/local/bin/d4c", "doctor", "--format", "json"],
        30,
    )
    .await
    .unwrap();
    let doctor: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("d4c doctor in the pod ({e}): {r:?}"));
    // BPF LSM, or fmod_ret on a kernel that does not preempt kernel code: guaranteed.
    let mode = std::env::var("D4C_EXPECT_ATTACH").unwrap_or_else(|_| "lsm".into());
    let sound =
        mode == "lsm" || matches!(doctor["preemption"].as_str(), Some("none" | "voluntary"));
    assert_eq!(
        (r.exit_code, &doctor["sound"], &doctor["mode"]),
        (
            i32::from(!sound),
            &Value::Bool(sound),
            &Value::from(mode.as_str())
        ),
        "{doctor}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("d4c_enforcement_sound {}", u8::from(sound))),
        "{metrics}"
    );
    assert_eq!(
        doctor["preemption_source"], "debugfs sched/preempt",
        "the host's debugfs is mounted: {doctor}"
    );
    assert!(doctor["os"].is_string(), "the host's os-release: {doctor}");

    // A pod the added policy selects: drift refused, alert on the d4c container's stdout.
    let shop = Pod::run(
        &mut cri,
        &ctd,
        "shop",
        "d4c-e2e",
        &[("d4c-test", "protect")],
    )
    .await;
    let app = shop.create(&mut cri, "app", &SLEEP).await;
    Pod::start(&mut cri, &app).await.unwrap_or_else(|e| {
        panic!(
            "StartContainer: {e}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let r = exec_sync(&mut cri, &app, &DRIFT, 30).await.unwrap();
    assert_ne!(
        r.exit_code, 0,
        "the selected pod created an executable: {r:?}"
    );
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    let t = Instant::now();
    let alert = loop {
        let found = log_lines(&log, "stdout")
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|a| a["event"]["kind"] == "alert" && a["file"]["path"] == "/tmp/x");
        if let Some(a) = found {
            break a;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no alert on the d4c container's stdout:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(alert["orchestrator"]["resource"]["name"], "shop", "{alert}");
    assert_eq!(alert["event"]["outcome"], "failure", "{alert}");
    assert_eq!(alert["container"]["id"], app.as_str(), "{alert}");
    // The node's name from the downward API, not the pod's hostname; the host's facts.
    assert_eq!(alert["host"]["name"], daemonset::NODE_NAME, "{alert}");
    assert_eq!(alert["host"]["os"]["type"], "linux", "{alert}");
    assert!(alert["host"]["os"]["kernel"].is_string(), "{alert}");
    assert!(alert["host"]["boot"]["id"].is_string(), "{alert}");
    eprintln!(
        "[{:>5.1?}] drift in the selected pod refused; alert on the d4c container's stdout",
        started.elapsed()
    );

    // Uninstall, as install/uninstall/ does it: its container starts on the node and
    // waits; d4c's DaemonSet is deleted (its container stops: a restart or an upgrade
    // would keep the programs); then the node is clean.
    let un_spec = Spec::load_from(
        "uninstall",
        "initContainers",
        &ctd.scratch.join("uninstall"),
        &HashMap::new(),
        &[],
    );
    let (un_pod, un, un_log) = start_in_pod(
        &mut cri,
        &ctd,
        &un_spec,
        ("d4c-uninstall", "d4c-uninstall"),
        ("app.kubernetes.io/name", "d4c-uninstall"),
    )
    .await;
    wait_for_line(
        &un_log,
        "stdout",
        |l| l.starts_with("waiting for"),
        Duration::from_secs(30),
        || "the uninstall container does not wait for the daemon".to_owned(),
    );
    let r = exec_sync(&mut cri, &app, &DRIFT, 30).await.unwrap();
    assert_ne!(r.exit_code, 0, "enforced while d4c runs: {r:?}");
    cri.stop_container(StopContainerRequest {
        container_id: d4c.clone(),
        timeout: 10,
    })
    .await
    .unwrap();
    assert_eq!(
        wait_exit(&mut cri, &un, Duration::from_mins(1)).await,
        0,
        "the uninstall container failed:\n{}",
        std::fs::read_to_string(&un_log).unwrap_or_default()
    );
    let left: Vec<String> = std::fs::read_dir(PINS)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "pinned after the uninstall: {left:?}");
    // At once: the unload returns only once the kernel has freed the programs.
    let r = exec_sync(&mut cri, &app, &DRIFT, 30).await.unwrap();
    assert_eq!(
        r.exit_code,
        0,
        "the pod drifts freely after the uninstall: {r:?}\nprocesses holding BPF objects: {}\nuninstall log:\n{}\nd4c log:\n{}",
        bpf_holders(),
        std::fs::read_to_string(&un_log).unwrap_or_default(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The runtime starts pods, and nothing guards them.
    let after = Pod::run(
        &mut cri,
        &ctd,
        "after",
        "d4c-e2e",
        &[("d4c-test", "protect")],
    )
    .await;
    let fresh = after.create(&mut cri, "app", &DRIFT).await;
    Pod::start(&mut cri, &fresh).await.unwrap();
    assert_eq!(
        wait_exit(&mut cri, &fresh, Duration::from_mins(1)).await,
        0,
        "a new pod's drift after the uninstall"
    );
    eprintln!(
        "[{:>5.1?}] uninstalled: nothing pinned, pods drift freely and start",
        started.elapsed()
    );

    after.remove(&mut cri).await;
    un_pod.remove(&mut cri).await;
    shop.remove(&mut cri).await;
    node_pod.remove(&mut cri).await;
    drop(ctd);
    eprintln!("[{:>5.1?}] done", started.elapsed());
}

/// The processes holding a BPF link, program or map descriptor, as `PID COMM: TARGET`.
fn bpf_holders() -> String {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        for fd in std::fs::read_dir(p.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            let t = target.to_string_lossy();
            if t.contains("bpf") {
                out.push(format!("{pid} {}: {t}", comm.trim()));
            }
        }
    }
    out.join("; ")
}

#[test]
fn image_names_resolve_as_a_kubelet_resolves_them() {
    assert_eq!(normalise("d4c:latest"), "docker.io/library/d4c:latest");
    assert_eq!(normalise("d4c"), "docker.io/library/d4c:latest");
    assert_eq!(normalise("acme/d4c:1"), "docker.io/acme/d4c:1");
    assert_eq!(normalise("ghcr.io/acme/d4c:1"), "ghcr.io/acme/d4c:1");
    assert_eq!(normalise("localhost:5000/d4c"), "localhost:5000/d4c:latest");
}
