//! `d4c doctor`: what this node gives d4c (kernel, LSMs, preemption, runtime, pins),
//! whether d4c's blocking is guaranteed here, and the fix for each problem. Exit 0 when
//! guaranteed, 1 when not, 2 when it cannot tell.

use d4c::bpf::{AttachMode, AttachRequest};
use d4c::node::{self, Host};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Output format: `text` (lines for people) or `json` (one object).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Where the node's `/proc`, `/sys`, `/etc` and `/boot` are (the `DaemonSet` mounts the
    /// host's at `/host` and sets `D4C_HOST_ROOT`).
    #[arg(long, value_name = "DIR", env = node::HOST_ROOT_ENV, default_value = "/")]
    root: PathBuf,
    /// bpffs directory where d4c's programs and maps are pinned.
    #[arg(long, value_name = "DIR", default_value = d4c::paths::PIN_DIR)]
    bpffs: PathBuf,
    /// The attach mode to judge: `auto` (the one d4c would pick here), `lsm` or `fmod-ret`.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    enforcement: AttachRequest,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

pub fn run(args: &Args) -> ExitCode {
    if !args.root.is_dir() {
        eprintln!(
            "d4c doctor: {} is not a directory: --root (or D4C_HOST_ROOT) names where the node's /proc, /sys, /etc and /boot are",
            args.root.display()
        );
        return ExitCode::from(2);
    }
    let host = Host {
        root: args.root.clone(),
        pin_dir: args.bpffs.clone(),
        own_kernel_view: true,
    };
    let mode = match args.enforcement {
        AttachRequest::Auto => None,
        AttachRequest::Only(m) => Some(m),
    };
    let report = node::inspect_for(&host, mode);
    if mode == Some(AttachMode::Lsm)
        && report
            .lsm
            .as_deref()
            .is_some_and(|l| !l.split(',').any(|x| x == "bpf"))
    {
        eprintln!("d4c doctor: note: `bpf` is not in the active LSM list, so `lsm` mode cannot load here; judged as if it could");
    }
    match args.format {
        Format::Text => print!("{}", node::text(&report)),
        Format::Json => match serde_json::to_string(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("d4c doctor: {e}");
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::from(match report.sound {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    })
}
