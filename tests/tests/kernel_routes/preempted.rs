//! Kernel test of decisions on a preemptible kernel: a program run preempted on a CPU must
//! keep its own path and rule set while other tasks' runs use that CPU. Two processes of one
//! container, pinned to one CPU, race: one creates executables where that is allowed, the
//! other where it is refused. (The guests boot with `preempt=full`; Debian's 7.x kernels
//! preempt lazily by default.) In `fmod_ret` mode the kernel itself skips a program whose
//! previous run on the CPU is preempted: there, every executable created must be one of the
//! skips the kernel counted (`d4c_kernel_skipped_runs_total`).

use std::path::{Path, PathBuf};

use crate::kernel_support::{c, errno, kernel, run_in, wait, TestDir};

/// What the two racing processes report through a shared page.
#[repr(C)]
struct Tally {
    refused: u64,
    created: u64,
    other_errors: u64,
    last_errno: i64,
    allowed_creates: u64,
}

/// A directory `depth` components below `base`, created.
fn deep(base: &Path, depth: usize) -> PathBuf {
    let mut p = base.to_path_buf();
    for i in 0..depth {
        p.push(format!("d{i:02}"));
    }
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Pins the calling process to CPU 0.
fn pin_cpu0() -> i32 {
    // SAFETY: a zeroed set with CPU 0 added; pid 0 is the caller.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) != 0 {
            return errno();
        }
    }
    0
}

fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000
}

#[test]
fn a_preempted_decision_keeps_its_own_path() {
    let Some(mut k) = kernel() else { return };
    let dir = TestDir::new("preempt");
    let d = dir.path.display();
    let yaml = format!(
        "file:\n  selectors:\n    - name: bins\n      operation: [createExecutable]\n      targetFilePath: ['{d}/blocked/**']\n  responses:\n    - match: [bins]\n      actions: [alert, block]\n"
    );
    let cg = super::dir_move::managed(&mut k, &yaml, "preempt");
    let refused_at = c(&deep(&dir.path.join("blocked"), 24).join("x"));
    let allowed_at = c(&deep(&dir.path.join("free"), 24).join("y"));

    // SAFETY: an anonymous shared page, unmapped below; both children write their own
    // fields only.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let tally = page.cast::<Tally>();
    let pins = k.enforcer().pin_dir().to_path_buf();
    let skipped_before = d4c::bpf::skipped_runs(&pins).unwrap();
    let run_for: u64 = 6_000;

    let r = run_in(Some(&cg.path), move || {
        if pin_cpu0() != 0 {
            return 201;
        }
        let end = now_ms() + run_for;
        // SAFETY: plain syscalls on NUL-terminated paths; the children end with _exit.
        unsafe {
            let creator = libc::fork();
            if creator < 0 {
                return 202;
            }
            if creator == 0 {
                while now_ms() < end {
                    let fd = libc::open(
                        allowed_at.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o755,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                        libc::unlink(allowed_at.as_ptr());
                        (*tally).allowed_creates += 1;
                    }
                }
                libc::_exit(0);
            }
            while now_ms() < end {
                let fd = libc::open(
                    refused_at.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o755,
                );
                if fd >= 0 {
                    libc::close(fd);
                    libc::unlink(refused_at.as_ptr());
                    (*tally).created += 1;
                } else if errno() == libc::EPERM {
                    (*tally).refused += 1;
                } else {
                    (*tally).other_errors += 1;
                    (*tally).last_errno = i64::from(errno());
                }
            }
            wait(creator)
        }
    });
    // SAFETY: the children are gone; the page is ours.
    let t = unsafe { tally.read() };
    // SAFETY: unmaps the page mapped above.
    unsafe { libc::munmap(page, 4096) };
    k.drain_events();
    let skipped = d4c::bpf::skipped_runs(&pins).unwrap() - skipped_before;
    let mode = k.enforcer().mode();
    eprintln!(
        "{mode:?}: refused {}, created {}, other errors {} (last errno {}); the other process created {}; runs the kernel skipped: {skipped}",
        t.refused, t.created, t.other_errors, t.last_errno, t.allowed_creates
    );
    assert_eq!(r, 0, "the racing processes did not run");
    assert!(
        t.refused > 1000 && t.allowed_creates > 1000,
        "too few attempts to race: {} refused, {} allowed",
        t.refused,
        t.allowed_creates
    );
    if mode == d4c::bpf::AttachMode::FmodRet {
        // The kernel skips a tracing program on a CPU where its previous run is preempted
        // (`recursion_misses`): those calls are not decided, and never silently. Every
        // executable created here must be one of the counted skips.
        assert!(
            t.created <= skipped,
            "{} executables created where the policy refuses them, but only {skipped} runs skipped by the kernel",
            t.created
        );
    } else {
        assert_eq!(
            t.created, 0,
            "an executable was created where the policy refuses it while another process of the container ran on the same CPU"
        );
    }
    assert_eq!(
        t.other_errors, 0,
        "unexpected errors (last errno {})",
        t.last_errno
    );
}
