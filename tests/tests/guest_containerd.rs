//! Guest end-to-end: the real `d4c nri` daemon with `enforcement: auto`, a real containerd
//! 1.7 and pods created through CRI, inside a QEMU guest (`scripts/guest-e2e.sh` builds
//! this binary and the image archives on the host and runs it with `cargo xtask vm`).
//!
//! - A pod whose labels match a blocking policy cannot create an executable, from its very
//!   first instruction: its entrypoint `cp /bin/busybox /tmp/x` fails (exit 42), and a
//!   later `chmod +x` through `ExecSync` fails with EPERM.
//! - A pod the policy does not select does both.
//! - The alert documents (the daemon's stdout, ECS NDJSON) name pod, namespace, labels,
//!   image, file and process.
//! - A cgroup created inside the guarded container is enforced with its rule set, and its
//!   alert names the pod.
//! - With a second policy alerting on execMemFd in every pod, starting containers (runc
//!   runs itself from a memfd) raises no execMemFd alert, while a real memfd execution in
//!   a container's cgroup does.
//! - A `d4c exec` run beside the daemon (started after it, and started while a new daemon
//!   loads) is protected or refuses in one line; the daemon's pods stay refused and
//!   alerted throughout, and neither reads the other's alerts.
//! - A program's pin removed by hand is found by the daemon's check, re-attached, logged
//!   and counted; a map's pin removed is pinned again.
//! - Audit (`audit: {namespaces: [staging]}` in d4c.yaml): a staging pod's drift succeeds
//!   with an audit alert while the production pod's is refused; `d4c status` and the
//!   per-selector counters show both; removing the audit from d4c.yaml enforces staging at
//!   the next attempt.
//! - A flood (a pod refused as fast as it can try) is held back by its event budget and
//!   summarized with its count, while another pod's refusal in the middle is alerted.
//!
//! Skips with `skipping test - <reason>` without root, BPF LSM, containerd, runc or the
//! `d4c` binary; fails instead when `D4C_REQUIRE_BPF_LSM=1` (set inside the guests by the
//! test scripts). Files: `$D4C_CONTAINERD_DIR` (see `containerd_support::setup_dir`);
//! `d4c` is the one next to this test (host) or on `PATH` (guest). `D4C_E2E_DEBUG=1`
//! prints the daemon's and containerd's logs at the end of a passing run.

mod containerd_support;

use containerd_support::daemon::{
    http_get, pretend_previous_build, write_config_with, Daemon, Unload,
};
use containerd_support::exec_run::{Ended, ExecRun, EXEC_POLICY};
use containerd_support::guest::skip;
use containerd_support::pods::{exec_sync, wait_exit, Pod, SLEEP};
use containerd_support::{cgroup2_root, ensure_etc_files, unique_id, Containerd, PROTECT_POLICY};
use serde_json::Value;
use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MEMFD: &str = "\
file:
  selectors:
    - name: memfdExec
      operation: [execMemFd]
  responses:
    - match: [memfdExec]
      actions: [alert]
";

/// The entrypoint of the drift containers: 0 when the copy worked, 42 when it was refused.
const DRIFT: [&str; 3] = ["sh", "-c", "cp /bin/busybox /tmp/x && exit 0 || exit 42"];
const CHMOD: [&str; 3] = ["sh", "-c", "echo a > /tmp/f && chmod +x /tmp/f"];

/// The daemon's metrics port in the guest.
const METRICS_PORT: u16 = 19690;

/// `chmod +x` of a new file `/tmp/<name>` (refused in the guarded pod).
fn chmod_x(name: &str) -> [String; 3] {
    [
        "sh".into(),
        "-c".into(),
        format!("echo a > /tmp/{name} && chmod +x /tmp/{name}"),
    ]
}

/// The guarded pod's `chmod +x /tmp/<name>` is refused and alerted by the daemon.
async fn guarded_refuses(
    cri: &mut containerd_support::pods::Cri,
    container: &str,
    daemon: &Daemon,
    name: &str,
    when: &str,
) {
    let argv = chmod_x(name);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let r = exec_sync(cri, container, &argv, 30).await.unwrap();
    assert_ne!(
        r.exit_code, 0,
        "{when}: chmod +x worked in the guarded pod: {r:?}"
    );
    assert!(
        r.stderr.contains("Operation not permitted"),
        "{when}: {r:?}"
    );
    let path = format!("/tmp/{name}");
    let a = daemon.wait_alert(|a| a["file"]["path"] == path.as_str(), when);
    assert_eq!(a["container"]["id"], container, "{when}: {a}");
    assert_eq!(a["event"]["outcome"], "failure", "{when}: {a}");
}

fn action(a: &Value) -> &str {
    a["event"]["action"].as_str().unwrap_or("")
}

fn is_memfd(a: &Value) -> bool {
    action(a).split(',').any(|op| op == "execMemFd")
}

fn pretty(alerts: &[&Value]) -> String {
    alerts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Spawns `cmd` in a child process moved into `cgroup` before it executes.
fn spawn_in(cgroup: &Path, mut cmd: Command) -> Child {
    let procs = CString::new(
        cgroup
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    cmd.stdin(Stdio::null());
    // SAFETY: the closure only calls open, write and close (async-signal-safe) on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let f = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if f < 0 || libc::write(f, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(f);
            Ok(())
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} in {}: {e}", cgroup.display()))
}

/// Runs `argv` (output discarded) in `cgroup`; returns its exit code.
fn run_in(cgroup: &Path, argv: &[&str]) -> i32 {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    spawn_in(cgroup, cmd).wait().unwrap().code().unwrap_or(-1)
}

/// Runs `/bin/busybox true` from a memfd in a child process moved into `cgroup` first:
/// a real execMemFd in a container's cgroup. Returns the child's pid.
fn memfd_exec_in(cgroup: &Path) -> u32 {
    let image = std::fs::read("/bin/busybox").unwrap();
    let name = CString::new("d4c-e2e").unwrap();
    // SAFETY: a valid NUL-terminated name; the fd is ours.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    let mut written = 0;
    while written < image.len() {
        // SAFETY: writes from a live buffer to our fd.
        let n = unsafe { libc::write(fd, image[written..].as_ptr().cast(), image.len() - written) };
        assert!(n > 0, "write memfd: {}", std::io::Error::last_os_error());
        written += usize::try_from(n).unwrap_or(0);
    }
    let mut cmd = Command::new(format!("/proc/self/fd/{fd}"));
    cmd.arg0("true");
    let mut child = spawn_in(cgroup, cmd);
    let pid = child.id();
    let st = child.wait().unwrap();
    // SAFETY: closes our own fd.
    unsafe { libc::close(fd) };
    assert!(st.success(), "busybox true from a memfd: {st}");
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn drift_is_blocked_in_selected_pods_from_the_first_instruction() {
    if skip() {
        return;
    }
    let started = Instant::now();
    ensure_etc_files();
    let id = unique_id();
    let ctd = Containerd::start(&id);
    eprintln!(
        "[{:>5.1?}] containerd ready, images imported",
        started.elapsed()
    );
    let dir = ctd.scratch.join("d4c");
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("protect.yaml"), PROTECT_POLICY).unwrap();
    std::fs::write(policies.join("memfd.yaml"), MEMFD).unwrap();
    let bpffs = PathBuf::from(format!("{}-e2e-{id}", d4c::paths::PIN_DIR));
    let _unload = Unload(bpffs.clone());
    let config = dir.join("d4c.yaml");
    let status_sock = dir.join("status.sock");
    // Audited: the `staging` namespace. Metrics on a port of the guest's loopback.
    let audit = "audit:\n  namespaces: [staging]\n";
    let metrics = format!("metricsAddress: \"127.0.0.1:{METRICS_PORT}\"\n");
    // A tight event budget, so that the flood below is held back within seconds.
    // Heartbeats every 5 s.
    let budget = "alerts:\n  stdout: true\n  budgetRate: 20\n  budgetBurst: 20\n  throttleSummarySeconds: 2\n  heartbeatSeconds: 5\n";
    write_config_with(
        &config,
        &policies,
        &ctd.nri_socket(),
        Some(&bpffs),
        &status_sock,
        &format!("{metrics}{audit}{budget}"),
    );
    let mut daemon = Daemon::start(
        &config,
        &status_sock,
        &dir.join("alerts.ndjson"),
        &dir.join("d4c.log"),
    );
    eprintln!(
        "[{:>5.1?}] d4c nri running (programs loaded)",
        started.elapsed()
    );
    // The daemon registers with containerd after its status socket is up; wait for that.
    daemon.wait_log("synchronized with the runtime", Duration::from_secs(30));
    let mut cri = ctd.cri().await;

    // Pods and containers: a drift attempt as the entrypoint, and a sleeper for ExecSync.
    // (Concurrent CRI calls: runc is slow under emulation, about 1.5 s per start.)
    let (mut c1, mut c2) = (cri.clone(), cri.clone());
    let (guarded, free) = tokio::join!(
        Pod::run(
            &mut c1,
            &ctd,
            "guarded",
            "d4c-e2e",
            &[("d4c-test", "protect"), ("app", "web")]
        ),
        Pod::run(&mut c2, &ctd, "free", "d4c-e2e", &[("app", "web")]),
    );
    eprintln!("[{:>5.1?}] 2 pods running", started.elapsed());
    let guarded_drift = guarded.create(&mut cri, "drift", &DRIFT).await;
    let free_drift = free.create(&mut cri, "drift", &DRIFT).await;
    let guarded_sleep = guarded.create(&mut cri, "sleeper", &SLEEP).await;
    let free_sleep = free.create(&mut cri, "sleeper", &SLEEP).await;
    eprintln!("[{:>5.1?}] 4 containers created", started.elapsed());
    let (mut c3, mut c4) = (cri.clone(), cri.clone());
    let starts = tokio::join!(
        Pod::start(&mut c1, &guarded_drift),
        Pod::start(&mut c2, &free_drift),
        Pod::start(&mut c3, &guarded_sleep),
        Pod::start(&mut c4, &free_sleep),
    );
    for (c, r) in [
        (&guarded_drift, starts.0),
        (&free_drift, starts.1),
        (&guarded_sleep, starts.2),
        (&free_sleep, starts.3),
    ] {
        r.unwrap_or_else(|e| panic!("StartContainer {c}: {e}\n{}", daemon.log()));
    }
    eprintln!("[{:>5.1?}] 4 containers started", started.elapsed());
    let status = daemon.status().unwrap();
    // `d4c status` lists the programs pinned under the daemon's own bpffs directory.
    assert!(
        status["programs_attached"]
            .as_array()
            .is_some_and(|p| p.iter().any(|n| n == "file_open")),
        "d4c status does not list the attached programs: {status}"
    );
    // The mode the guest was booted for (BPF LSM active, or not: fmod_ret).
    if let Ok(want) = std::env::var("D4C_EXPECT_ATTACH") {
        assert_eq!(status["attach_mode"], want.as_str(), "{status}");
    }
    for c in [&guarded_drift, &free_drift, &guarded_sleep, &free_sleep] {
        let entry = status["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == c.as_str());
        assert!(
            entry.is_some_and(|e| e["rule_set"].as_u64().is_some()),
            "{c} is not registered with a rule set: {status}"
        );
    }

    // 1 and 2: the entrypoint's copy is refused in the guarded pod only.
    let limit = Duration::from_secs(30);
    let guarded_exit = wait_exit(&mut cri, &guarded_drift, limit).await;
    // In fmod_ret mode on a preemptible kernel (the newest: lazy) the kernel skips a
    // program on a CPU where another task is preempted inside it (both pods copy at the
    // same moment): that gap is d4c's documented one, and only a counted skip excuses it.
    let skipped = daemon
        .status()
        .and_then(|s| s["skipped_runs"].as_u64())
        .unwrap_or(0);
    let counted_gap = guarded_exit == 0
        && skipped > 0
        && std::env::var("D4C_EXPECT_ATTACH").as_deref() == Ok("fmod_ret");
    if counted_gap {
        eprintln!("the guarded pod's copy went through a counted kernel skip ({skipped} skipped runs): fmod_ret's documented gap");
    }
    assert!(
        guarded_exit == 42 || counted_gap,
        "the guarded pod's first instruction created an executable (exit {guarded_exit})\n{}\nstatus (skipped_runs: calls the kernel did not give to d4c): {:?}",
        daemon.log(),
        daemon.status()
    );
    assert_eq!(
        wait_exit(&mut cri, &free_drift, limit).await,
        0,
        "the free pod could not create an executable\n{}",
        daemon.log()
    );
    eprintln!(
        "[{:>5.1?}] drift entrypoints exited: guarded {guarded_exit}, free 0",
        started.elapsed()
    );

    // 3: the alert names pod, namespace, labels, image, file and process (a copy the
    // kernel skipped was not decided, so it has none).
    if !counted_gap {
        let x = daemon.wait_alert(
            |a| a["file"]["path"] == "/tmp/x",
            "cp /bin/busybox /tmp/x in the guarded pod",
        );
        assert_eq!(x["event"]["kind"], "alert", "{x}");
        assert_eq!(x["event"]["outcome"], "failure", "{x}");
        assert!(
            action(&x).split(',').any(|op| op == "createExecutable"),
            "{x}"
        );
        assert_eq!(x["orchestrator"]["resource"]["name"], "guarded", "{x}");
        assert_eq!(x["orchestrator"]["namespace"], "d4c-e2e", "{x}");
        // An object, as Elastic maps the field (`flattened`).
        let labels = &x["orchestrator"]["resource"]["label"];
        assert!(
            labels["d4c-test"] == "protect" && labels["app"] == "web",
            "{x}"
        );
        assert_eq!(x["container"]["id"], guarded_drift.as_str(), "{x}");
        assert_eq!(x["container"]["name"], "drift", "{x}");
        assert_eq!(
            x["container"]["image"]["name"], "docker.io/d4c/busybox",
            "{x}"
        );
        assert_eq!(x["container"]["image"]["tag"], "1", "{x}");
        assert_eq!(x["file"]["name"], "x", "{x}");
        assert_eq!(x["process"]["name"], "cp", "{x}");
        assert!(x["process"]["pid"].as_u64().is_some_and(|p| p > 0), "{x}");
        assert_eq!(
            x["cloud_defend"]["matched_selectors"],
            serde_json::json!(["protect.yaml:drift"]),
            "{x}"
        );
    }

    // 4: a real memfd execution in the free pod's cgroup alerts; container starts (runc
    // re-executing itself from a memfd) did not. Decisions arrive in order, so once the
    // control's alert is in, every start-time decision is too.
    let free_cgroup = cgroup2_root()
        .join(format!("{}/free", &ctd.cgroup_base[1..]))
        .join(&free_sleep);
    assert!(
        free_cgroup.is_dir(),
        "{} is not the free sleeper's cgroup",
        free_cgroup.display()
    );
    let control_pid = memfd_exec_in(&free_cgroup);
    let control = daemon.wait_alert(
        |a| is_memfd(a) && a["process"]["pid"] == control_pid,
        "a memfd execution in the free pod",
    );
    assert_eq!(
        control["orchestrator"]["resource"]["name"], "free",
        "{control}"
    );
    assert_eq!(
        control["cloud_defend"]["matched_selectors"],
        serde_json::json!(["memfd.yaml:memfdExec"]),
        "{control}"
    );
    let alerts = daemon.alerts();
    let runc_memfd: Vec<&Value> = alerts
        .iter()
        .filter(|a| is_memfd(a) && a["process"]["pid"] != control_pid)
        .collect();
    assert!(
        runc_memfd.is_empty(),
        "container starts raised execMemFd alerts:\n{}",
        pretty(&runc_memfd)
    );
    eprintln!(
        "[{:>5.1?}] execMemFd: the control alerted, container starts did not",
        started.elapsed()
    );

    // 1 and 2 again, through ExecSync: chmod +x is refused in the guarded pod only.
    let r = exec_sync(&mut cri, &guarded_sleep, &CHMOD, 30)
        .await
        .unwrap();
    assert_ne!(r.exit_code, 0, "chmod +x worked in the guarded pod: {r:?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    let r = exec_sync(&mut cri, &free_sleep, &CHMOD, 30).await.unwrap();
    assert_eq!(r.exit_code, 0, "chmod +x failed in the free pod: {r:?}");
    let f = daemon.wait_alert(
        |a| a["file"]["path"] == "/tmp/f",
        "chmod +x /tmp/f in the guarded pod",
    );
    assert_eq!(f["orchestrator"]["resource"]["name"], "guarded", "{f}");
    assert_eq!(f["container"]["id"], guarded_sleep.as_str(), "{f}");
    assert_eq!(f["event"]["outcome"], "failure", "{f}");
    assert_eq!(f["process"]["name"], "chmod", "{f}");
    eprintln!(
        "[{:>5.1?}] ExecSync chmod +x: guarded EPERM, free ok",
        started.elapsed()
    );

    // Audit: a pod of the audited namespace drifts with an audit alert (allowed), while the
    // guarded pod's drift above was refused; status and the counters show both; removing
    // the audit from d4c.yaml enforces staging at the next attempt.
    let staged = Pod::run(
        &mut cri,
        &ctd,
        "staged",
        "staging",
        &[("d4c-test", "protect"), ("app", "web")],
    )
    .await;
    let staged_drift = staged.create(&mut cri, "drift", &DRIFT).await;
    let staged_sleep = staged.create(&mut cri, "sleeper", &SLEEP).await;
    Pod::start(&mut cri, &staged_drift).await.unwrap();
    Pod::start(&mut cri, &staged_sleep).await.unwrap();
    assert_eq!(
        wait_exit(&mut cri, &staged_drift, limit).await,
        0,
        "an audited pod's drift is allowed\n{}",
        daemon.log()
    );
    let audited = daemon.wait_alert(
        |a| a["container"]["id"] == staged_drift.as_str() && a["file"]["path"] == "/tmp/x",
        "the staging pod's audited drift",
    );
    assert_eq!(audited["event"]["kind"], "alert", "{audited}");
    assert_eq!(audited["event"]["outcome"], "success", "{audited}");
    assert_eq!(audited["cloud_defend"]["audit"], true, "{audited}");
    assert_eq!(
        audited["cloud_defend"]["actions"],
        serde_json::json!(["alert", "block"]),
        "{audited}"
    );
    let st = daemon.wait_for(
        |s| {
            s["audit"]["would_block"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
        "the audited policy's would-be blocks in d4c status",
    );
    let wb = &st["audit"]["would_block"][0];
    assert_eq!(wb["policy"], "protect.yaml", "{st}");
    assert_eq!(wb["would_block"], 1, "{st}");
    assert_eq!(wb["last"]["pod"], "staged", "{st}");
    assert_eq!(wb["last"]["path"], "/tmp/x", "{st}");
    assert_eq!(
        st["audit"]["namespaces"],
        serde_json::json!(["staging"]),
        "{st}"
    );
    assert!(
        daemon
            .status_text()
            .contains("protect.yaml: 1 would-be block(s)"),
        "{}",
        daemon.status_text()
    );
    let exposition = http_get(METRICS_PORT, "/metrics").unwrap();
    for outcome in ["audited", "blocked"] {
        let line = format!("d4c_selector_matches_total{{policy=\"protect.yaml\",selector=\"drift\",action=\"block\",outcome=\"{outcome}\"}}");
        assert!(exposition.contains(&line), "no {line} in:\n{exposition}");
    }
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(audit, ""),
    )
    .unwrap();
    daemon.wait_log("policy reloaded", Duration::from_secs(30));
    guarded_refuses(
        &mut cri,
        &staged_sleep,
        &daemon,
        "s",
        "staging after its audit ended",
    )
    .await;
    eprintln!(
        "[{:>5.1?}] audit: staging drift allowed with an audit alert, counted; enforced after the audit ended",
        started.elapsed()
    );

    // A `d4c exec` run beside the daemon adopts its programs (the same build), reads its
    // own ring and leaves the programs when it ends: the daemon's pods stay refused and
    // alerted meanwhile, and neither takes the other's alerts.
    let exec_policy = dir.join("exec-block.yaml");
    std::fs::write(&exec_policy, EXEC_POLICY).unwrap();
    let mut run = ExecRun::start(&bpffs, &exec_policy, &dir.join("exec-after"), 20);
    assert!(run.started(Duration::from_mins(1)), "{}", run.stderr_text());
    guarded_refuses(
        &mut cri,
        &guarded_sleep,
        &daemon,
        "g",
        "while a d4c exec runs",
    )
    .await;
    assert_eq!(
        run.finish(Duration::from_mins(2)),
        Ended::Protected(20),
        "a d4c exec run after the daemon's start"
    );
    assert!(
        !run.alerts().iter().any(|a| a["file"]["path"] == "/tmp/g"),
        "the pod's alert reached the run"
    );
    let leaked: Vec<Value> = daemon
        .alerts()
        .into_iter()
        .filter(|a| {
            a["file"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(run.dir.to_str().unwrap()))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "the run's alerts reached the daemon: {leaked:?}"
    );
    assert!(
        bpffs.join("links").join("path_chmod").exists(),
        "the run removed the daemon's programs"
    );
    guarded_refuses(
        &mut cri,
        &guarded_sleep,
        &daemon,
        "g2",
        "after a d4c exec run ended",
    )
    .await;
    eprintln!(
        "[{:>5.1?}] d4c exec beside the daemon: both protected, alerts apart, programs kept",
        started.elapsed()
    );

    // A program's pin removed by hand (the program is detached): the daemon's check finds
    // it, re-attaches it, logs the loss and counts it; a removed map pin is pinned again.
    let link = bpffs.join("links").join("path_chmod");
    let removed = Instant::now();
    std::fs::remove_file(&link).unwrap();
    daemon.wait_log("ENFORCEMENT WAS LOST", Duration::from_secs(30));
    let found = removed.elapsed();
    let after = daemon.wait_for(
        |s| s["enforcement"]["lost_total"] == 1 && s["enforcement"]["intact"] == true,
        "the loss counted and repaired",
    );
    assert!(link.exists(), "the link is pinned again");
    assert_eq!(
        after["enforcement"]["last_loss"]["repaired"], true,
        "{after}"
    );
    guarded_refuses(
        &mut cri,
        &guarded_sleep,
        &daemon,
        "h",
        "after the re-attach",
    )
    .await;
    let map = bpffs.join("maps").join("D4C_TASKS");
    std::fs::remove_file(&map).unwrap();
    daemon.wait_log("pinned again", Duration::from_secs(30));
    assert!(map.exists(), "the map is pinned again");
    let after = daemon.status().unwrap();
    assert_eq!(
        after["enforcement"]["lost_total"], 1,
        "a map pin is not a lost program: {after}"
    );
    eprintln!(
        "[{:>5.1?}] removed pins: the link re-attached ({found:?} to the log line), the map pinned again",
        started.elapsed()
    );

    // A cgroup the guarded container creates inherits its rule set, and its alerts still
    // name the pod, even when the cgroup is gone before the daemon reads them (the kernel
    // record carries the container's cgroup id).
    let guarded_cgroup = cgroup2_root()
        .join(format!("{}/guarded", &ctd.cgroup_base[1..]))
        .join(&guarded_sleep);
    let nested = guarded_cgroup.join("nested");
    std::fs::create_dir(&nested).unwrap();
    let code = run_in(
        &nested,
        &["/bin/busybox", "cp", "/bin/busybox", "/tmp/nested-x"],
    );
    std::fs::remove_dir(&nested).unwrap();
    assert_ne!(
        code, 0,
        "a nested cgroup of the guarded pod created an executable"
    );
    assert!(!Path::new("/tmp/nested-x").exists());
    let n = daemon.wait_alert(
        |a| a["file"]["path"] == "/tmp/nested-x",
        "cp in a nested cgroup of the guarded pod",
    );
    assert_eq!(n["orchestrator"]["resource"]["name"], "guarded", "{n}");
    assert_eq!(n["container"]["id"], guarded_sleep.as_str(), "{n}");
    assert_eq!(n["event"]["outcome"], "failure", "{n}");
    eprintln!(
        "[{:>5.1?}] nested cgroup: drift refused, the alert names the pod after the cgroup is gone",
        started.elapsed()
    );

    // A nested cgroup that lives on: still enforced after a policy reload (new rule-set
    // ids) and after the upgrade below (new maps).
    let kept = guarded_cgroup.join("kept");
    std::fs::create_dir(&kept).unwrap();
    let refused_in_kept = |what: &str| {
        let code = run_in(
            &kept,
            &["/bin/busybox", "cp", "/bin/busybox", "/tmp/kept-x"],
        );
        assert_ne!(code, 0, "{what}: a nested cgroup created an executable");
        assert!(!Path::new("/tmp/kept-x").exists(), "{what}");
    };
    refused_in_kept("before the reload");
    let mut edited = std::fs::read_to_string(policies.join("protect.yaml")).unwrap();
    edited.push_str("# edited: same selectors, a new revision\n");
    std::fs::write(policies.join("protect.yaml"), edited).unwrap();
    daemon.wait_log("policy reloaded", Duration::from_secs(30));
    refused_in_kept("after the reload");
    eprintln!(
        "[{:>5.1?}] policy reload: the nested cgroup follows its container",
        started.elapsed()
    );

    // An upgrade: the daemon restarts and finds another build's programs pinned. It
    // attaches its own next to them, and detaches the previous ones only once the runtime's
    // Synchronize has registered the containers in its maps.
    // A `d4c exec` run starts while the new daemon loads: it waits for the daemon's load
    // and adopts its programs, or (if it came first) refuses the previous build's in one
    // line; never a run or a pod left unprotected.
    pretend_previous_build(&bpffs);
    daemon.kill();
    let during = {
        let (bpffs, policy, run_dir) =
            (bpffs.clone(), exec_policy.clone(), dir.join("exec-during"));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            ExecRun::start(&bpffs, &policy, &run_dir, 20)
        })
    };
    daemon.start_again();
    let mut run = during.join().unwrap();
    daemon.wait_log("this build enforces alone", Duration::from_mins(1));
    let ended = run.finish(Duration::from_mins(2));
    eprintln!(
        "[{:>5.1?}] d4c exec during the daemon's load: {ended:?}",
        started.elapsed()
    );
    guarded_refuses(
        &mut cri,
        &guarded_sleep,
        &daemon,
        "i",
        "after a d4c exec during the daemon's load",
    )
    .await;
    assert!(
        daemon.log().contains("taking over"),
        "no takeover logged:\n{}",
        daemon.log()
    );
    assert!(
        d4c::bpf::retiring_dirs(&bpffs).is_empty(),
        "the previous build is still pinned"
    );
    let status = daemon.status().unwrap();
    assert_eq!(
        status["previous_builds_attached"],
        serde_json::json!([]),
        "{status}"
    );
    let r = exec_sync(&mut cri, &guarded_sleep, &CHMOD, 30)
        .await
        .unwrap();
    assert_ne!(r.exit_code, 0, "chmod +x worked after the upgrade: {r:?}");
    refused_in_kept("after the upgrade");
    std::fs::remove_dir(&kept).unwrap();
    eprintln!(
        "[{:>5.1?}] upgrade: new build attached, previous detached after Synchronize, guarded pod still refused",
        started.elapsed()
    );

    // A flood: the guarded pod refused as fast as it can try for 8 s. Its event budget
    // holds its documents back (counted, summarized), so another pod's refusal in the
    // middle of it is still alerted; the summaries carry the flood's count.
    let flood_started = Instant::now();
    let flood = {
        let mut flooding = cri.clone();
        let id = guarded_sleep.clone();
        tokio::spawn(async move {
            // Counts the refusals: a call the kernel did not give to d4c (fmod_ret on a
            // preemptible kernel) is not decided, so it is neither written nor held back.
            let script = "n=0; end=$(( $(date +%s) + 8 )); while [ $(date +%s) -lt $end ]; do cp /bin/busybox /tmp/flood 2>/dev/null || n=$((n+1)); rm -f /tmp/flood; done; echo $n";
            exec_sync(&mut flooding, &id, &["sh", "-c", script], 60).await
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    guarded_refuses(
        &mut cri,
        &staged_sleep,
        &daemon,
        "b",
        "another pod during the flood",
    )
    .await;
    let out = flood.await.unwrap().unwrap();
    let flood_took = flood_started.elapsed();
    let attempts: u64 = out
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{out:?}"));
    let written = || {
        daemon
            .alerts()
            .iter()
            .filter(|a| a["file"]["path"] == "/tmp/flood")
            .count() as u64
    };
    let summarized = || -> u64 {
        daemon
            .alerts()
            .iter()
            .filter(|a| {
                a["event"]["action"] == "throttled"
                    && a["container"]["id"] == guarded_sleep.as_str()
            })
            .map(|a| {
                a["cloud_defend"]["throttled"]["count"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .sum()
    };
    let waiting = Instant::now();
    while written() + summarized() < attempts {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "{attempts} attempts, {} written, {} summarized\n{}",
            written(),
            summarized(),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        written() + summarized(),
        attempts,
        "each attempt written or counted once"
    );
    // The budget (20 at once, 20 a second) bounds what was written over the flood's time,
    // however fast this guest could try; the rest was held back and summarized.
    let budget = 20 + 20 * (flood_took.as_secs() + 1);
    assert!(
        written() <= budget && summarized() > 0,
        "the budget held back what exceeded it: {} of {attempts} written ({budget} allowed), {} summarized",
        written(),
        summarized()
    );
    let summary = daemon
        .alerts()
        .into_iter()
        .find(|a| a["event"]["action"] == "throttled")
        .unwrap();
    assert_eq!(
        summary["orchestrator"]["resource"]["name"], "guarded",
        "{summary}"
    );
    assert_eq!(
        summary["cloud_defend"]["throttled"]["paths"][0]["path"], "/tmp/flood",
        "{summary}"
    );
    eprintln!(
        "[{:>5.1?}] flood: {attempts} refusals in the guarded pod, {} written, the rest summarized; another pod's alert got through",
        started.elapsed(),
        written()
    );

    // Heartbeats, as Elastic's agent writes them, with what d4c enforces: the first at
    // start, then one every 5 s.
    let beats: Vec<Value> = daemon
        .alerts()
        .into_iter()
        .filter(|a| a["data_stream"]["dataset"] == "cloud_defend.heartbeat")
        .collect();
    assert!(
        beats.len() >= 2,
        "heartbeats: {}",
        pretty(&beats.iter().collect::<Vec<_>>())
    );
    let last = beats.last().unwrap();
    assert_eq!(last["data_stream"]["type"], "metrics", "{last}");
    assert_eq!(last["cloud_defend"]["block_action_enabled"], true, "{last}");
    assert!(
        last["cloud_defend"]["package_policy_revision"].as_u64() >= Some(1),
        "{last}"
    );
    assert!(
        last["d4c"]["containers"]["protected"].as_u64() >= Some(1),
        "{last}"
    );
    assert_eq!(last["d4c"]["enforcement"]["intact"], true, "{last}");
    if let Ok(want) = std::env::var("D4C_EXPECT_ATTACH") {
        assert_eq!(last["d4c"]["enforcement"]["mode"], want.as_str(), "{last}");
    }

    // Nothing else alerted: no drift alert from the free pod, no execMemFd from runc exec.
    let alerts = daemon.alerts();
    // Every document the kernel's decisions produced in this run is one Elastic's data
    // streams define, field by field and type by type (d4c's own fields aside).
    let logs = alerts.iter().filter(|a| a["data_stream"]["type"] == "logs");
    let nonconforming: Vec<String> = logs
        .clone()
        .filter_map(|a| {
            let p = d4c_tests::conformance::problems(a);
            (!p.is_empty()).then(|| format!("{}\n  {}", p.join("\n  "), a))
        })
        .collect();
    assert!(
        logs.count() >= 10 && nonconforming.is_empty(),
        "documents that do not conform to Elastic's data streams:\n{}",
        nonconforming.join("\n")
    );
    let entities = d4c_tests::conformance::entity_problems(&alerts);
    assert!(entities.is_empty(), "entity ids: {entities:?}");
    let unexpected: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["event"]["kind"] == "alert")
        .filter(|a| !(is_memfd(a) && a["process"]["pid"] == control_pid))
        .filter(|a| {
            !(a["file"]["path"] == "/tmp/x" && a["container"]["id"] == guarded_drift.as_str())
        })
        .filter(|a| {
            !(a["file"]["path"] == "/tmp/f" && a["container"]["id"] == guarded_sleep.as_str())
        })
        .filter(|a| a["file"]["path"] != "/tmp/nested-x" && a["file"]["path"] != "/tmp/kept-x")
        .filter(|a| {
            !(["/tmp/g", "/tmp/g2", "/tmp/h", "/tmp/i"]
                .contains(&a["file"]["path"].as_str().unwrap_or(""))
                && a["container"]["id"] == guarded_sleep.as_str())
        })
        .filter(|a| a["event"]["action"] != "throttled" && a["file"]["path"] != "/tmp/flood")
        .filter(|a| {
            !(a["file"]["path"] == "/tmp/b" && a["container"]["id"] == staged_sleep.as_str())
        })
        .filter(|a| {
            let (path, id) = (&a["file"]["path"], &a["container"]["id"]);
            !(path == "/tmp/x" && id == staged_drift.as_str()
                || path == "/tmp/s" && id == staged_sleep.as_str())
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected alerts:\n{}",
        pretty(&unexpected)
    );

    guarded.remove(&mut cri).await;
    free.remove(&mut cri).await;
    staged.remove(&mut cri).await;
    // D4C_E2E_DEBUG=1: show both daemons' logs of a passing run (timings, registrations).
    if std::env::var_os("D4C_E2E_DEBUG").is_some() {
        eprintln!(
            "--- d4c nri\n{}\n--- containerd\n{}",
            daemon.log(),
            ctd.log()
        );
    }
    drop(daemon);
    drop(ctd);
    eprintln!("[{:>5.1?}] done", started.elapsed());
}
