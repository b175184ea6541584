//! Overhead of the kernel programs, as ratios within one run (absolute times in a TCG
//! guest mean little). Runs only with `D4C_BENCH=1` as root on a BPF LSM kernel:
//! `cargo xtask vm --kernel 6.12 --with <this binary> -- env D4C_BENCH=1 /opt/with/<bin> --nocapture`.

mod kernel_support;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use d4c::bpf::{Config, Enforcer};
use d4c_common::{ACTION_LOG, OP_MODIFY_FILE};
use kernel_support::{c, everywhere, root_entry, TestCgroup, TestDir};

const N: u32 = 50_000;

/// Best of three runs of [`time_once`].
fn time_in(cg: Option<&Path>, op: &dyn Fn()) -> f64 {
    (0..3).map(|_| time_once(cg, op)).fold(f64::INFINITY, f64::min)
}

/// Nanoseconds per iteration of `op` run N times in a child placed in `cg` (if any).
fn time_once(cg: Option<&Path>, op: &dyn Fn()) -> f64 {
    let mut fds = [0i32; 2];
    // SAFETY: plain syscalls; the child only loops over syscalls and exits.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let procs = cg.map(|p| c(&p.join("cgroup.procs")));
        let pid = libc::fork();
        if pid == 0 {
            if let Some(p) = &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
            }
            let t = Instant::now();
            for _ in 0..N {
                op();
            }
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            libc::write(fds[1], (&raw const ns).cast(), 8);
            libc::_exit(0);
        }
        let mut ns = 0u64;
        assert_eq!(libc::read(fds[0], (&raw mut ns).cast(), 8), 8);
        kernel_support::wait(pid);
        libc::close(fds[0]);
        libc::close(fds[1]);
        ns as f64 / f64::from(N)
    }
}

#[test]
fn overhead_ratios() {
    if std::env::var("D4C_BENCH").as_deref() != Ok("1") {
        eprintln!("skipping test - set D4C_BENCH=1 to measure");
        return;
    }
    let dir = TestDir::new("bench");
    let f = dir.file("target", 0o644);
    let cf = c(&f);
    let open_close = || unsafe {
        let fd = libc::open(cf.as_ptr(), libc::O_WRONLY);
        libc::close(fd);
    };
    let chmod = || unsafe {
        libc::chmod(cf.as_ptr(), 0o644);
    };
    let ops: [(&str, &dyn Fn()); 2] = [("open(O_WRONLY)+close", &open_close), ("chmod", &chmod)];
    let cg = TestCgroup::new("bench");
    for (_, op) in &ops {
        time_once(Some(&cg.path), op); // warm-up
    }
    let base: Vec<f64> = ops.iter().map(|(_, op)| time_in(Some(&cg.path), op)).collect();

    let pin_dir = std::path::PathBuf::from(format!("/sys/fs/bpf/d4c-bench-{}", std::process::id()));
    let t = Instant::now();
    let mut e = Enforcer::load_or_adopt(&Config { pin_dir, ..Config::default() }).unwrap();
    eprintln!("load+attach: {:?}", t.elapsed());
    let mut reader = e.take_events().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let drain = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            while reader.try_next().is_some() {
                n += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        n
    });
    // Configurations, measured in interleaved rounds (the host's load drifts):
    // 0 attached, task unmanaged; 1 managed, the rule set has no action at all (the
    // operation summary skips path work); 2 managed, modifyFile acts elsewhere (every call
    // builds the path and looks it up, no action); 3 managed, every call logs modifyFile
    // (path and exe built, event written and read).
    let configs: [&[(d4c_common::PathKey, d4c_common::FileRule)]; 4] = [
        &[],
        &[root_entry(1)],
        &[kernel_support::rule_at(2, b"/nonexistent/", &[0, 1, 2], &[OP_MODIFY_FILE], ACTION_LOG)],
        &[everywhere(3, &[OP_MODIFY_FILE], ACTION_LOG)],
    ];
    let mut best = [[f64::INFINITY; 2]; 4];
    for _round in 0..3 {
        for (i, rules) in configs.iter().enumerate() {
            if i == 0 {
                e.unregister(cg.id()).unwrap();
            } else {
                e.write_file_rules(rules).unwrap();
                let rs = u32::try_from(i).unwrap();
                e.register(cg.id(), d4c_common::ContainerEntry { rule_set: rs, flags: 0 }).unwrap();
            }
            for (j, (_, op)) in ops.iter().enumerate() {
                best[i][j] = best[i][j].min(time_once(Some(&cg.path), op));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let read = drain.join().unwrap();
    let counters = e.counters().unwrap();
    e.unload().unwrap();
    // The baseline again, without programs; the better of the two counts.
    let base: Vec<f64> = ops
        .iter()
        .zip(&base)
        .map(|((_, op), b)| b.min(time_in(Some(&cg.path), op)))
        .collect();
    for (j, (name, _)) in ops.iter().enumerate() {
        eprintln!(
            "{name:>22}: none {:.0} ns | attached, unmanaged {:.2}x | managed, nothing to check {:.2}x | managed, checked, allowed {:.2}x | managed, event each call {:.2}x",
            base[j],
            best[0][j] / base[j],
            best[1][j] / base[j],
            best[2][j] / base[j],
            best[3][j] / base[j]
        );
    }
    eprintln!(
        "events read {read}, written {}, ring-buffer drops {}",
        counters[d4c_common::CNT_EVENTS as usize],
        counters[d4c_common::CNT_RINGBUF_DROPS as usize]
    );
}
