//! The main-job demo (`scripts/demo.sh`): a private containerd with NRI, the real `d4c nri`
//! daemon enforcing in the kernel, and two pods that try to drop a binary and run it.
//!
//!   `pod_demo --policy FILE [--policy FILE]...`
//!
//! Pod `shop` in namespace `production` and pod `playground` in namespace `dev` each run
//! `sh -c 'cp /bin/busybox /tmp/busybox && /tmp/busybox echo ...'` through CRI `ExecSync`
//! (what `kubectl exec` does). With `config/examples/block-drift-production.yaml` the copy
//! is refused in production (EPERM, nothing written) and allowed with an alert in dev. The
//! demo prints each step, the refused operation and the alert documents, then removes
//! everything it created (pods, containerd state, the pinned programs). Exit status: 0 when
//! the kernel refused the drift in production and allowed it in dev; 1 otherwise; 2 when
//! this machine cannot run it (not root, no BPF LSM, no containerd: the reason is printed).

#[path = "../tests/containerd_support/mod.rs"]
mod containerd_support;

use containerd_support::daemon::{write_config, Daemon, Unload};
use containerd_support::pods::{exec_sync, ExecResult, Pod, SLEEP};
use containerd_support::{ensure_etc_files, unique_id, Containerd};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DRIFT: &str = "cp /bin/busybox /tmp/busybox && /tmp/busybox echo 'the dropped binary ran'";

/// Prints a progress line with the time since the demo started.
fn step(t: Instant, what: &str) {
    println!("[demo {:>5.1}s] {what}", t.elapsed().as_secs_f64());
}

fn policies_from_args() -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--policy" => out.push(PathBuf::from(
                args.next().ok_or("--policy needs a FILE argument")?,
            )),
            "-h" | "--help" => {
                return Err("usage: pod_demo --policy FILE [--policy FILE]...".into());
            }
            other => return Err(format!("unexpected argument {other:?} (see --help)")),
        }
    }
    if out.is_empty() {
        return Err("give at least one --policy FILE".into());
    }
    Ok(out)
}

/// Shows one `kubectl exec`-like attempt and its result.
fn show_exec(pod: &str, namespace: &str, r: &ExecResult) {
    println!("\n$ kubectl exec -n {namespace} {pod} -- sh -c \"{DRIFT}\"");
    for line in r.stdout.lines().chain(r.stderr.lines()) {
        println!("  {line}");
    }
    println!("  (exit status {})", r.exit_code);
}

fn is_drift_alert(a: &Value, pod: &str) -> bool {
    a["event"]["kind"] == "alert"
        && a["file"]["path"] == "/tmp/busybox"
        && a["orchestrator"]["resource"]["name"] == pod
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let policies = match policies_from_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pod_demo: {e}");
            std::process::exit(2);
        }
    };
    if let Some(reason) = containerd_support::guest::missing() {
        eprintln!("pod_demo: cannot run here: {reason}");
        std::process::exit(2);
    }
    // A failed step panics: print its message alone (the guards below still clean up).
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("a step failed");
        eprintln!("\ndemo FAILED: {msg}");
    }));
    // A panicking task unwinds (removing what it created) and reads as a failure.
    let passed = tokio::spawn(run(policies)).await.unwrap_or(false);
    std::process::exit(i32::from(!passed));
}

/// Runs the demo; `true` when the kernel refused the drift in production and let it
/// through in dev.
#[expect(clippy::too_many_lines, reason = "one story, read top to bottom")]
async fn run(policies: Vec<PathBuf>) -> bool {
    let t = Instant::now();
    ensure_etc_files();
    let id = unique_id();
    step(
        t,
        "starting containerd with NRI enabled and importing the demo image (busybox)",
    );
    let ctd = Containerd::start(&id);
    let dir = ctd.scratch.join("d4c");
    let policy_dir = dir.join("policies");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let mut names = Vec::new();
    for p in &policies {
        let name = p.file_name().unwrap_or_default().to_owned();
        std::fs::copy(p, policy_dir.join(&name)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        names.push(name.to_string_lossy().into_owned());
    }
    let bpffs = PathBuf::from(format!("{}-demo-{id}", d4c::paths::PIN_DIR));
    let _unload = Unload(bpffs.clone());
    let config = dir.join("d4c.yaml");
    let status_sock = dir.join("status.sock");
    write_config(
        &config,
        &policy_dir,
        &ctd.nri_socket(),
        Some(&bpffs),
        &status_sock,
    );
    step(
        t,
        &format!(
            "starting d4c nri with {} (loading the eBPF LSM programs)",
            names.join(" + ")
        ),
    );
    let daemon = Daemon::start(
        &config,
        &status_sock,
        &dir.join("alerts.ndjson"),
        &dir.join("d4c.log"),
    );
    daemon.wait_log("synchronized with the runtime", Duration::from_secs(30));
    step(t, "d4c nri is connected to containerd");

    let mut cri = ctd.cri().await;
    step(
        t,
        "creating pod shop (namespace production) and pod playground (namespace dev)",
    );
    let shop = Pod::run(&mut cri, &ctd, "shop", "production", &[("app", "shop")]).await;
    let playground = Pod::run(&mut cri, &ctd, "playground", "dev", &[("app", "shop")]).await;
    let shop_app = shop.create(&mut cri, "app", &SLEEP).await;
    let playground_app = playground.create(&mut cri, "app", &SLEEP).await;
    for c in [&shop_app, &playground_app] {
        Pod::start(&mut cri, c)
            .await
            .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", daemon.log()));
    }
    step(
        t,
        "both pods are running; d4c registered them at StartContainer:",
    );
    println!("\n$ d4c status");
    for line in daemon.status_text().lines() {
        println!("  {line}");
    }

    step(t, "each pod tries to drop a binary and run it");
    let sh = ["sh", "-c", DRIFT];
    let refused = exec_sync(&mut cri, &shop_app, &sh, 60).await.unwrap();
    show_exec("shop", "production", &refused);
    let allowed = exec_sync(&mut cri, &playground_app, &sh, 60).await.unwrap();
    show_exec("playground", "dev", &allowed);
    let left = exec_sync(&mut cri, &shop_app, &["ls", "/tmp/busybox"], 30)
        .await
        .unwrap();

    let shop_alert = daemon.wait_alert(|a| is_drift_alert(a, "shop"), "the drift in shop");
    let dev_alert = daemon.wait_alert(
        |a| is_drift_alert(a, "playground"),
        "the drift in playground",
    );
    println!("\n== the alert document of the refused copy (ECS, one line on d4c's stdout):");
    println!("{}", serde_json::to_string_pretty(&shop_alert).unwrap());
    println!(
        "\n== and of the allowed one in dev: event.outcome={} event.action={} file.path={}",
        dev_alert["event"]["outcome"], dev_alert["event"]["action"], dev_alert["file"]["path"]
    );

    let blocked = refused.exit_code != 0
        && refused.stderr.contains("Operation not permitted")
        && left.exit_code != 0
        && shop_alert["event"]["outcome"] == "failure";
    let let_through = allowed.exit_code == 0 && allowed.stdout.contains("the dropped binary ran");
    println!();
    if blocked && let_through {
        println!(
            "RESULT: production refused the copy in the kernel (EPERM, /tmp/busybox not \
             created); dev was allowed and alerted."
        );
    } else {
        println!(
            "RESULT: unexpected (production refused: {blocked}, dev allowed: {let_through})\n\
             d4c log:\n{}",
            daemon.log()
        );
    }
    step(t, "cleaning up: pods, d4c nri, pinned programs, containerd");
    shop.remove(&mut cri).await;
    playground.remove(&mut cri).await;
    drop(daemon);
    drop(ctd);
    step(t, "done");
    blocked && let_through
}
