//! Booting the guest under QEMU (TCG): the command line, streaming the command's output,
//! the timeout, and reading the command's exit status from the console log.
//!
//! Serial ports: ttyS0 is the kernel console (kernel messages, init's own messages and
//! the exit-status line), written to a log file; ttyS1 carries only the command's output
//! and goes to our stdout as it arrives.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::kernel::Kernel;

const QEMU: &str = "qemu-system-x86_64";
/// Guest memory, plus twice the initramfs size: the kernel holds the archive and its
/// unpacked copy at once, then stage 1 holds the unpacked copy and its tmpfs copy.
const MEMORY_MIB: u64 = 1024;
const CPUS: u32 = 2;
/// `quiet loglevel=4`: only errors reach the console; `panic=-1` reboots at once on a
/// panic, and `-no-reboot` turns that reboot into QEMU exiting.
const CMDLINE: &str = "console=ttyS0 rdinit=/init quiet loglevel=4 panic=-1 cgroup_no_v1=all";
/// The kernel command line: ours, then the caller's additions (a later `lsm=` wins).
fn cmdline(append: &str) -> String {
    let append = append.trim();
    if append.is_empty() {
        CMDLINE.to_owned()
    } else {
        format!("{CMDLINE} {append}")
    }
}

/// A guest that has not started the command by then is stuck in its boot (a warm boot
/// takes 2 to 5 s under TCG).
const BOOT_TIMEOUT: Duration = Duration::from_mins(3);
/// What stage 2 writes on the console just before it runs the command.
const START_MARKER: &str = "d4c-vm: running the command at uptime ";
/// Lines of the console log shown when the guest fails.
const TAIL_LINES: usize = 40;

pub struct Boot<'a> {
    pub kernel: &'a Kernel,
    pub initramfs: &'a Path,
    pub console_log: &'a Path,
    pub nonce: &'a str,
    pub timeout: Duration,
    /// Added to the kernel command line (e.g. an `lsm=` list); empty for none.
    pub append: &'a str,
    /// Where to keep the console log of a failed run.
    pub failure_log: PathBuf,
}

/// A guest that ran the command to its end.
pub struct Finished {
    pub status: u8,
    pub wall: Duration,
    /// Guest uptime (s) when the command started and when it ended.
    pub started_at: Option<f64>,
    pub ended_at: Option<f64>,
    /// `d4c-vm: warning: ...` lines init wrote on the console.
    pub warnings: Vec<String>,
}

/// Whether the console log shows that the command was started (a failure before that is
/// a boot failure, which may be retried without running anything twice).
pub fn command_started(console_log: &Path) -> bool {
    fs::read(console_log).is_ok_and(|log| String::from_utf8_lossy(&log).contains(START_MARKER))
}

pub fn run(boot: &Boot) -> Result<Finished> {
    let start = Instant::now();
    let mut child = spawn(boot)?;
    let mut guest_stdout = child.stdout.take().context("QEMU stdout")?;
    let pump = thread::spawn(move || forward(&mut guest_stdout));

    let booted = || {
        fs::read(boot.console_log)
            .is_ok_and(|log| String::from_utf8_lossy(&log).contains(START_MARKER))
    };
    let outcome = wait(&mut child, boot.timeout, booted);
    let _ = pump.join();
    let log = fs::read(boot.console_log).unwrap_or_default();
    let log = String::from_utf8_lossy(&log);
    let wall = start.elapsed();
    let fail = |what: String| -> anyhow::Error {
        let _ = fs::write(&boot.failure_log, log.as_bytes());
        anyhow!(
            "{what} (kernel {}: {}).\n--- last lines of the guest console (whole log: {}) ---\n{}",
            boot.kernel.label,
            boot.kernel.release,
            boot.failure_log.display(),
            tail(&log, TAIL_LINES)
        )
    };
    let qemu_status = match outcome {
        Ok(Waited::Exited(status)) => status,
        Ok(Waited::TimedOut) => {
            return Err(fail(format!(
                "timed out: the guest did not finish within {} s, QEMU killed",
                boot.timeout.as_secs()
            )))
        }
        Ok(Waited::NoBoot) => {
            return Err(fail(format!(
                "the guest did not boot within {} s, QEMU killed",
                BOOT_TIMEOUT.as_secs()
            )))
        }
        Err(err) => return Err(fail(format!("waiting for QEMU failed: {err}"))),
    };
    match parse_exit(&log, boot.nonce) {
        Some((status, ended_at)) => Ok(Finished {
            status,
            wall,
            started_at: parse_start(&log),
            ended_at,
            warnings: log
                .lines()
                .filter(|l| l.contains("d4c-vm: warning:"))
                .map(str::to_owned)
                .collect(),
        }),
        None => {
            if let Some(unpack) = log
                .lines()
                .find(|l| l.contains("Initramfs unpacking failed"))
            {
                Err(fail(format!(
                    "the guest kernel could not unpack the initramfs: {}",
                    unpack.trim()
                )))
            } else if let Some(panic) = log.lines().find(|l| l.contains("Kernel panic")) {
                Err(fail(format!("the guest kernel panicked: {}", panic.trim())))
            } else {
                Err(fail(format!("the guest stopped without reporting the command's exit status (QEMU: {qemu_status})")))
            }
        }
    }
}

fn spawn(boot: &Boot) -> Result<Child> {
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ])
    .args([
        "-machine",
        "q35",
        "-accel",
        // One host thread runs all vCPUs: multi-threaded TCG raced with the kernel's live
        // text patching (int3-based, used when BPF programs attach) and crashed the
        // newest kernel ("Oops: int3") in 2 of about 15 runs.
        "tcg,thread=single",
        "-cpu",
        "max",
    ])
    .args([
        "-smp",
        &CPUS.to_string(),
        "-m",
        &memory_mib(boot.initramfs)?.to_string(),
    ])
    .arg("-kernel")
    .arg(boot.kernel.vmlinuz())
    .arg("-initrd")
    .arg(boot.initramfs)
    .arg("-append")
    .arg(cmdline(boot.append))
    .arg("-chardev")
    .arg(format!(
        "file,id=console,path={}",
        chardev_path(boot.console_log)?
    ))
    .args(["-serial", "chardev:console"])
    // QEMU's own stdout is a pipe to us: ttyS1 is written into it.
    .args([
        "-chardev",
        "file,id=cmdout,path=/proc/self/fd/1",
        "-serial",
        "chardev:cmdout",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    // SAFETY: the closure only makes one async-signal-safe syscall (prctl).
    unsafe {
        // QEMU must not outlive us (e.g. when a test runner kills us).
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(io::Error::from)
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {QEMU} (install qemu-system-x86: scripts/setup.sh)"))
}

fn memory_mib(initramfs: &Path) -> Result<u64> {
    let size = fs::metadata(initramfs)?.len();
    Ok(MEMORY_MIB + 2 * size.div_ceil(1 << 20))
}

/// QEMU splits `-chardev` options at commas; a literal comma is written twice.
fn chardev_path(path: &Path) -> Result<String> {
    let path = path
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", path.display()))?;
    Ok(path.replace(',', ",,"))
}

/// Copies the guest command's output to our stdout as it comes; if our stdout goes
/// away, keeps draining so that the guest never blocks.
fn forward(from: &mut impl Read) {
    let mut buf = [0; 16 * 1024];
    let stdout = io::stdout();
    let mut ok = true;
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        if ok {
            let mut out = stdout.lock();
            ok = out.write_all(&buf[..n]).and_then(|()| out.flush()).is_ok();
        }
    }
}

enum Waited {
    Exited(ExitStatus),
    TimedOut,
    NoBoot,
}

/// Waits for QEMU to exit, killing it when `timeout` runs out or when `booted` is still
/// false after [`BOOT_TIMEOUT`].
fn wait(child: &mut Child, timeout: Duration, booted: impl Fn() -> bool) -> io::Result<Waited> {
    let start = Instant::now();
    let mut boot_checked = start;
    let mut is_booted = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Waited::Exited(status));
        }
        let now = Instant::now();
        let stop = if now - start >= timeout {
            Some(Waited::TimedOut)
        } else if !is_booted && now - boot_checked >= Duration::from_secs(1) {
            boot_checked = now;
            is_booted = booted();
            (!is_booted && now - start >= BOOT_TIMEOUT.min(timeout)).then_some(Waited::NoBoot)
        } else {
            None
        };
        if let Some(stop) = stop {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(stop);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `D4C-VM-EXIT <nonce> <status> <uptime>`, which stage 2 writes after the command.
fn parse_exit(log: &str, nonce: &str) -> Option<(u8, Option<f64>)> {
    let marker = format!("D4C-VM-EXIT {nonce} ");
    let line = log
        .lines()
        .find_map(|l| l.find(&marker).map(|i| &l[i + marker.len()..]))?;
    let mut fields = line.split_whitespace();
    let status = fields.next()?.parse().ok()?;
    Some((status, fields.next().and_then(|u| u.parse().ok())))
}

fn parse_start(log: &str) -> Option<f64> {
    log.lines().find_map(|l| {
        l.find(START_MARKER)
            .and_then(|i| l[i + START_MARKER.len()..].trim().parse().ok())
    })
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Fails early with a clear message when QEMU is not installed.
pub fn check_installed() -> Result<()> {
    match Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => bail!("{QEMU} not found: install qemu-system-x86 (scripts/setup.sh)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_a_guest_that_outlives_its_timeout() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let start = Instant::now();
        let waited = wait(&mut child, Duration::from_millis(300), || true).unwrap();
        assert!(matches!(waited, Waited::TimedOut));
        assert!(start.elapsed() < Duration::from_secs(5));
        let mut child = Command::new("true").spawn().unwrap();
        assert!(
            matches!(wait(&mut child, Duration::from_secs(30), || false).unwrap(), Waited::Exited(s) if s.success())
        );
    }

    #[test]
    fn finds_the_exit_marker() {
        let log = "[    1.0] random noise\nd4c-vm: running the command at uptime 4.52\n\
                   D4C-VM-EXIT othernonce 9 1.0\nD4C-VM-EXIT abc123 3 5.75\n[    6.0] reboot: Power down\n";
        assert_eq!(parse_exit(log, "abc123"), Some((3, Some(5.75))));
        assert_eq!(parse_start(log), Some(4.52));
        assert_eq!(
            parse_exit(
                "Kernel panic - not syncing: Attempted to kill init!\n",
                "abc123"
            ),
            None
        );
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(chardev_path(Path::new("/tmp/a,b")).unwrap(), "/tmp/a,,b");
    }
}
