//! `d4c unload`: end enforcement: detach the programs and remove everything d4c pinned.
//! Refused while a daemon or a `d4c exec` run uses the programs (a running daemon would
//! re-attach them), unless `--force`.

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
                "unloaded: removed the programs and maps pinned at {}",
                args.bpffs.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
