//! `d4c unload`: end enforcement: detach the programs and remove everything d4c pinned.
//! Refused while a daemon or a `d4c exec` run uses the programs (a running daemon would
//! re-attach them), unless `--force`; `--wait-daemon` waits for the daemon to stop first
//! (an uninstall).

use d4c::bpf::{self, lock, Enforcer};
use d4c::paths;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// bpffs directory where the programs and maps are pinned.
    #[arg(long, value_name = "DIR", default_value = paths::PIN_DIR)]
    bpffs: PathBuf,
    /// Unload even while a daemon or a `d4c exec` run uses the programs (a running daemon
    /// re-attaches them within a second: stop it first).
    #[arg(long)]
    force: bool,
    /// How long to wait for another d4c process that is loading or changing the programs,
    /// in seconds.
    #[arg(long, value_name = "SECS", default_value_t = lock::DEFAULT_WAIT.as_secs())]
    wait: u64,
    /// Wait up to this long for a running daemon to stop, then unload (an uninstall:
    /// `install/uninstall/` starts this on every node, then d4c's `DaemonSet` is deleted).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    wait_daemon: u64,
}

/// Waits until no daemon runs on the pins, up to `limit`; says once what it waits for.
fn wait_for_daemon(bpffs: &std::path::Path, limit: Duration) -> Result<(), String> {
    let start = std::time::Instant::now();
    let mut said = false;
    while let Some(daemon) = lock::running_daemon(bpffs) {
        if start.elapsed() >= limit {
            return Err(format!(
                "{daemon} still uses the programs pinned at {} after {}s; stop it first (on Kubernetes: delete the DaemonSet)",
                bpffs.display(),
                limit.as_secs()
            ));
        }
        if !said {
            println!("waiting for {daemon} to stop (on Kubernetes: delete d4c's DaemonSet); the programs are unloaded then");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

pub fn run(args: &Args) -> ExitCode {
    if !args.bpffs.exists() {
        println!(
            "nothing pinned at {}: d4c is not loaded",
            args.bpffs.display()
        );
        return ExitCode::SUCCESS;
    }
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("d4c unload: {e}");
        ExitCode::FAILURE
    };
    let holder = lock::Holder::new("d4c unload");
    if let Err(e) = wait_for_daemon(&args.bpffs, Duration::from_secs(args.wait_daemon)) {
        return fail(&e);
    }
    let _loading = match lock::loader(&args.bpffs, &holder, Duration::from_secs(args.wait)) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    if !args.force {
        if let Some(daemon) = lock::running_daemon(&args.bpffs) {
            return fail(&format!(
                "{daemon} uses the programs pinned at {} and would attach them again; stop it first (on Kubernetes: delete the DaemonSet), or pass --force",
                args.bpffs.display()
            ));
        }
        match lock::other_users(&args.bpffs) {
            Ok(users) if users.is_empty() => {}
            Ok(users) => {
                return fail(&bpf::BpfError::InUse {
                    dir: args.bpffs.clone(),
                    users,
                })
            }
            Err(e) => return fail(&e),
        }
    }
    match Enforcer::unload_pinned(&args.bpffs) {
        Ok(()) => {
            println!(
                "unloaded: removed the programs and maps pinned at {}, and the kernel has freed the programs",
                args.bpffs.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
