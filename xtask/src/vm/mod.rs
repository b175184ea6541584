//! `cargo xtask vm`: runs a command as root in a QEMU guest booting a stock Debian cloud
//! kernel, with the freshly built `d4c` on PATH (see docs/vm-harness.md).

mod apt;
mod binaries;
mod cache;
pub mod containerd;
mod cpio;
mod debver;
mod initramfs;
mod kernel;
mod modules;
mod qemu;

use std::ffi::OsString;
use std::fmt::Display;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;

pub use kernel::KernelChoice;

/// Environment variables passed into the guest command, by name prefix.
const ENV_PREFIXES: &[&str] = &["D4C_", "RUST_"];

#[derive(Debug, Args)]
pub struct VmArgs {
    /// Debian cloud kernel to boot.
    #[arg(long, value_enum)]
    pub kernel: KernelChoice,
    /// File or directory to copy to /opt/with/<basename> in the guest (repeatable).
    #[arg(long = "with", value_name = "PATH")]
    pub with: Vec<PathBuf>,
    /// Kill the guest and fail after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1200)]
    pub timeout: u64,
    /// Added to the guest kernel's command line, e.g. `--append 'lsm=landlock,yama'` to
    /// boot a node without BPF LSM.
    #[arg(long, value_name = "KERNEL ARGS", default_value = "")]
    pub append: String,
    /// The command to run as root in the guest, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// Runs the command in the guest; returns its exit status.
/// Boots tried when a guest fails before its command starts.
const BOOT_ATTEMPTS: u32 = 3;

pub fn run(args: &VmArgs) -> Result<u8> {
    let started = Instant::now();
    qemu::check_installed()?;
    for path in &args.with {
        path.symlink_metadata()
            .with_context(|| format!("--with {}", path.display()))?;
    }
    // `cargo run` names the package's directory at run time; the compile-time one is a
    // fallback only, since a target directory shared by several clones (CI's cache) runs
    // one clone's build of xtask from another clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let workspace = manifest_dir.parent().context("workspace root")?.to_owned();
    let cache = cache::Cache::open()?;

    // Build d4c while the kernel is being fetched.
    let build = thread::spawn(move || binaries::build_d4c(&workspace));
    let prepared = (|| {
        let _lock = cache.lock()?;
        let kernel = kernel::prepare(&cache, args.kernel)?;
        let base = initramfs::base(&cache)?;
        anyhow::Ok((kernel, base))
    })();
    let d4c = build
        .join()
        .map_err(|_| anyhow::anyhow!("the d4c build thread panicked"))??;
    let (kernel, base) = prepared?;

    let run_dir = tempfile::Builder::new()
        .prefix("d4c-vm-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let nonce = nonce();
    let env = passed_env();
    let initrd = run_dir.path().join("initramfs.cpio");
    if !args.with.is_empty() {
        progress("packing the initramfs with the --with files");
    }
    initramfs::write_run(
        &initrd,
        &base,
        &kernel,
        &initramfs::RunFiles {
            d4c: &d4c,
            with: &args.with,
            argv: &args.cmd,
            env: &env,
            nonce: &nonce,
        },
    )?;

    progress(format_args!(
        "booting kernel {} ({}){} under QEMU/TCG, {:.1} s after start",
        kernel.label,
        kernel.release,
        if args.append.trim().is_empty() {
            String::new()
        } else {
            format!(" with `{}`", args.append.trim())
        },
        started.elapsed().as_secs_f64()
    ));
    let console_log = run_dir.path().join("console.log");
    let boot = qemu::Boot {
        kernel: &kernel,
        initramfs: &initrd,
        console_log: &console_log,
        nonce: &nonce,
        timeout: Duration::from_secs(args.timeout),
        append: &args.append,
        failure_log: cache.dir(&format!("last-failure-{}.log", kernel.label)),
    };
    // Emulated boots of some kernels occasionally die before userspace runs (seen: a
    // panic in timekeeping under TCG at 1.9 s). Such a failure happened before the command
    // started, so booting again runs nothing twice.
    let mut attempt = 1;
    let finished = loop {
        match qemu::run(&boot) {
            Ok(f) => break f,
            Err(e) if attempt < BOOT_ATTEMPTS && !qemu::command_started(&console_log) => {
                let first = e.to_string().lines().next().unwrap_or_default().to_owned();
                attempt += 1;
                progress(format_args!(
                    "the guest failed before the command started ({first}); booting again, attempt {attempt} of {BOOT_ATTEMPTS}"
                ));
            }
            Err(e) => return Err(e),
        }
    };
    for warning in &finished.warnings {
        progress(warning);
    }
    let uptime = |t: Option<f64>| t.map_or_else(|| "?".into(), |t| format!("{t:.1} s"));
    progress(format_args!(
        "exit status {}; guest ran {:.1} s (command started at uptime {}, ended at {}); total {:.1} s",
        finished.status,
        finished.wall.as_secs_f64(),
        uptime(finished.started_at),
        uptime(finished.ended_at),
        started.elapsed().as_secs_f64()
    ));
    Ok(finished.status)
}

/// One line on stderr about a step that may take a while (stdout is the command's).
pub fn progress(msg: impl Display) {
    eprintln!("[xtask vm] {msg}");
}

/// `D4C_*` and `RUST_*` variables with names sh accepts.
fn passed_env() -> Vec<(OsString, OsString)> {
    let mut env: Vec<_> = std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str().is_some_and(|n| {
                ENV_PREFIXES.iter().any(|p| n.starts_with(p))
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
        })
        .collect();
    env.sort();
    env
}

/// Tags this run's exit-status line, so nothing else on the console can pass for it.
fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos)
}
