//! Turning the kernel's boot-time nanoseconds into wall-clock time, and event ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Nanoseconds since boot now (`CLOCK_BOOTTIME`, the clock `bpf_ktime_get_boot_ns` reads).
#[must_use]
pub fn boot_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// The wall-clock time of a kernel timestamp taken with `bpf_ktime_get_boot_ns`.
#[must_use]
pub fn wall_time(boot_ns: u64) -> SystemTime {
    let ago = boot_now_ns().saturating_sub(boot_ns);
    SystemTime::now()
        .checked_sub(Duration::from_nanos(ago))
        .unwrap_or_else(SystemTime::now)
}

/// The wall-clock time of a boot-clock instant counted from the boot time the kernel
/// states (`btime` in /proc/stat, whole seconds), as `ps` gives a process's start: the
/// same instant gives the same time in every document of every d4c process on the node,
/// as a process's `start` must, where [`wall_time`] follows the wall clock's adjustments.
#[must_use]
pub fn fixed_wall_time(boot_ns: u64) -> SystemTime {
    static BOOT: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    let boot = *BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
            })
            .map_or_else(
                || wall_time(0),
                |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            )
    });
    boot + Duration::from_nanos(boot_ns)
}

/// A process-unique, time-ordered event id.
#[must_use]
pub fn event_id(boot_ns: u64) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "{boot_ns:016x}-{:x}-{:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// This host's name, for `host.name`.
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string(crate::paths::HOSTNAME)
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}
