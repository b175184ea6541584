//! Privileged kernel tests: the eBPF programs loaded through `d4c::bpf::Enforcer` (as BPF
//! LSM programs, or `fmod_ret` where the guest boots without `bpf` in `lsm=`), exercised by
//! forked children placed in test cgroups. Run as root (in practice: `cargo xtask vm --kernel 6.1|6.12|newest --with <this binary> -- ...`);
//! elsewhere they print `skipping test - <reason>`, or fail with `D4C_REQUIRE_BPF_LSM=1`.
// Operation indices and byte counts here are small constants.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

mod kernel_audit;
mod kernel_budget;
mod kernel_loaders;
mod kernel_modes;
mod kernel_pending;
mod kernel_routes;
mod kernel_support;

use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path};

use d4c_common::{
    event::FLAG_DENIED, CommKey, NameClass, ProcDecision, ProcKey, ACTION_ALERT, ACTION_BLOCK,
    ACTION_LOG, COMM_LEN, EVENT_FILE, EVENT_PROCESS, OP_CREATE_EXECUTABLE, OP_CREATE_FILE,
    OP_DELETE_FILE, OP_EXEC, OP_EXEC_MEMFD, OP_FORK, OP_MODIFY_EXECUTABLE, OP_MODIFY_FILE,
    REST_DEEP, REST_EMPTY, REST_NAME,
};
use kernel_support::*;

const BLOCK: u8 = ACTION_ALERT | ACTION_BLOCK;

/// Sets up a rule set that answers every path with `actions` for `ops`, a registered test
/// cgroup and a scratch dir.
fn setup(k: &mut Shared, tag: &str, ops: &[usize], actions: u8) -> (u32, TestCgroup, TestDir) {
    let rs = rule_set_id();
    k.enforcer()
        .write_file_rules(&[everywhere(rs, ops, actions)])
        .unwrap();
    let cg = TestCgroup::new(tag);
    register(k, &cg, rs);
    (rs, cg, TestDir::new(tag))
}

fn chmod(p: &Path, mode: u32) -> i32 {
    let c = c(p);
    // SAFETY: a NUL-terminated path.
    rc(i64::from(unsafe { libc::chmod(c.as_ptr(), mode) }))
}

#[test]
fn chmod_adding_x_is_blocked_in_the_container_only() {
    let Some(mut k) = kernel() else { return };
    let (rs, cg, dir) = setup(&mut k, "chmod", &[OP_CREATE_EXECUTABLE], BLOCK);
    let f = dir.file("script", 0o644);
    let cf = c(&f);

    assert_eq!(run_in(Some(&cg.path), || chmod(&f, 0o755)), libc::EPERM);
    assert_eq!(mode_of(&f), 0o644, "the mode must not change");
    // fchmod and fchmodat are the same hook.
    let r = run_in(Some(&cg.path), || unsafe {
        let fd = libc::open(cf.as_ptr(), libc::O_RDONLY);
        rc(i64::from(libc::fchmod(fd, 0o700)))
    });
    assert_eq!(r, libc::EPERM);
    let r = run_in(Some(&cg.path), || unsafe {
        rc(i64::from(libc::fchmodat(
            libc::AT_FDCWD,
            cf.as_ptr(),
            0o744,
            0,
        )))
    });
    assert_eq!(r, libc::EPERM);
    assert_eq!(mode_of(&f), 0o644);
    // A chmod that adds no x bit is not createExecutable.
    assert_eq!(run_in(Some(&cg.path), || chmod(&f, 0o600)), 0);

    let evs = k.events();
    let ev = evs
        .iter()
        .find(|e| e.op == OP_CREATE_EXECUTABLE as u8)
        .expect("an event");
    assert_eq!(ev.kind, EVENT_FILE);
    assert_eq!(ev_path(ev), f.to_str().unwrap());
    assert_eq!(ev.rule_set, rs);
    assert_eq!(ev.cgroup_id, cg.id());
    assert!(ev.flags & FLAG_DENIED != 0);
    assert_eq!(ev.actions, BLOCK);
    assert!(!ev_comm(ev).is_empty());
    assert_eq!(ev.hook, d4c_common::HOOK_PATH_CHMOD);

    // The same chmod outside any managed cgroup works.
    assert_eq!(run_in(None, || chmod(&f, 0o755)), 0);
    assert_eq!(mode_of(&f), 0o755);
}

#[test]
fn chmod_alert_only_allows_and_reports() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = setup(&mut k, "alert", &[OP_CREATE_EXECUTABLE], ACTION_ALERT);
    let f = dir.file("script", 0o644);
    assert_eq!(run_in(Some(&cg.path), || chmod(&f, 0o755)), 0);
    assert_eq!(mode_of(&f), 0o755);
    let evs = k.events();
    assert_eq!(evs.len(), 1, "one event");
    assert_eq!(evs[0].flags & FLAG_DENIED, 0);
    assert_eq!(ev_path(&evs[0]), f.to_str().unwrap());
}

#[test]
fn creating_executables_is_blocked_every_way() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = setup(&mut k, "create", &[OP_CREATE_EXECUTABLE], BLOCK);
    let exe = c(&dir.path.join("new-exe"));
    let plain = c(&dir.path.join("new-plain"));
    let node = c(&dir.path.join("new-node"));
    let d = c(&dir.path);
    let linked = c(&dir.path.join("from-tmpfile"));

    let open_creat = |p: &CString, mode: libc::c_uint| unsafe {
        let fd = libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY, mode);
        rc(i64::from(fd))
    };
    assert_eq!(
        run_in(Some(&cg.path), || open_creat(&exe, 0o755)),
        libc::EPERM
    );
    assert!(!dir.path.join("new-exe").exists());
    assert_eq!(run_in(Some(&cg.path), || open_creat(&plain, 0o644)), 0);
    let r = run_in(Some(&cg.path), || unsafe {
        rc(i64::from(libc::mknod(
            node.as_ptr(),
            libc::S_IFREG | 0o755,
            0,
        )))
    });
    assert_eq!(r, libc::EPERM);
    // O_TMPFILE with x bits (refused at the open since it creates an executable), then
    // linkat into a name.
    let r = run_in(Some(&cg.path), || unsafe {
        let fd = libc::open(d.as_ptr(), libc::O_TMPFILE | libc::O_WRONLY, 0o755);
        if fd < 0 {
            return errno();
        }
        rc(i64::from(libc::linkat(
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            linked.as_ptr(),
            libc::AT_EMPTY_PATH,
        )))
    });
    assert_eq!(r, libc::EPERM, "linkat of an O_TMPFILE exe");
    assert!(!dir.path.join("from-tmpfile").exists());

    // An executable made outside, given a new name inside: rename and link.
    let outside = dir.file("outside-exe", 0o755);
    let (o, renamed, hard) = (
        c(&outside),
        c(&dir.path.join("renamed")),
        c(&dir.path.join("hard")),
    );
    let r = run_in(Some(&cg.path), || unsafe {
        rc(i64::from(libc::rename(o.as_ptr(), renamed.as_ptr())))
    });
    assert_eq!(r, libc::EPERM);
    let r = run_in(Some(&cg.path), || unsafe {
        rc(i64::from(libc::link(o.as_ptr(), hard.as_ptr())))
    });
    assert_eq!(r, libc::EPERM);
    assert!(outside.exists() && !dir.path.join("renamed").exists());
    // Unmanaged: all fine.
    assert_eq!(run_in(None, || open_creat(&exe, 0o755)), 0);
}

#[test]
fn modifying_executables_is_blocked() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = setup(&mut k, "modify", &[OP_MODIFY_EXECUTABLE], BLOCK);
    let exe = dir.file("exe", 0o755);
    let plain = dir.file("plain", 0o644);
    let (ce, cp) = (c(&exe), c(&plain));
    let open = |p: &CString, flags| unsafe { rc(i64::from(libc::open(p.as_ptr(), flags))) };
    assert_eq!(
        run_in(Some(&cg.path), || open(&ce, libc::O_WRONLY)),
        libc::EPERM
    );
    assert_eq!(
        run_in(Some(&cg.path), || open(&ce, libc::O_RDWR | libc::O_APPEND)),
        libc::EPERM
    );
    assert_eq!(run_in(Some(&cg.path), || open(&ce, libc::O_RDONLY)), 0);
    assert_eq!(run_in(Some(&cg.path), || open(&cp, libc::O_WRONLY)), 0);
    let r = run_in(Some(&cg.path), || unsafe {
        rc(i64::from(libc::truncate(ce.as_ptr(), 0)))
    });
    assert_eq!(r, libc::EPERM);
    // O_TRUNC read-only still truncates: path_truncate (6.1) / file_truncate (6.2+).
    assert_eq!(
        run_in(Some(&cg.path), || open(&ce, libc::O_RDONLY | libc::O_TRUNC)),
        libc::EPERM
    );
    // Replacing an executable by rename.
    let cp2 = c(&plain);
    let r = run_in(Some(&cg.path), || unsafe {
        rc(i64::from(libc::rename(cp2.as_ptr(), ce.as_ptr())))
    });
    assert_eq!(r, libc::EPERM);
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        b"#!/bin/sh\nexit 0\n",
        "unchanged"
    );
    assert_eq!(run_in(None, || open(&ce, libc::O_WRONLY)), 0);
}

#[test]
fn file_integrity_ops_and_path_classes() {
    let Some(mut k) = kernel() else { return };
    let rs = rule_set_id();
    let dir = TestDir::new("fim");
    let prot = dir.path.join("prot");
    std::fs::create_dir(&prot).unwrap();
    std::fs::create_dir(prot.join("sub")).unwrap();
    // `<prot>/*` blocks createFile/deleteFile/modifyFile for direct children only; the
    // exact path `<prot>/sub/deep` is blocked too (rest empty).
    let mut pfx = prot.as_os_str().as_bytes().to_vec();
    pfx.push(b'/');
    let mut deep = pfx.clone();
    deep.extend_from_slice(b"sub/deep");
    let ops = [OP_CREATE_FILE, OP_DELETE_FILE, OP_MODIFY_FILE];
    k.enforcer()
        .write_file_rules(&[
            root_entry(rs),
            rule_at(rs, &pfx, &[REST_NAME], &ops, BLOCK),
            rule_at(rs, &deep, &[REST_EMPTY], &ops, BLOCK),
        ])
        .unwrap();
    let cg = TestCgroup::new("fim");
    register(&mut k, &cg, rs);
    let create = |p: &Path| {
        let c = c(p);
        move || unsafe {
            rc(i64::from(libc::open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY,
                0o644,
            )))
        }
    };
    assert_eq!(run_in(Some(&cg.path), create(&prot.join("a"))), libc::EPERM);
    assert_eq!(
        run_in(Some(&cg.path), create(&prot.join("sub/b"))),
        0,
        "deep: not /*"
    );
    assert_eq!(
        run_in(Some(&cg.path), create(&prot.join("sub/deep"))),
        libc::EPERM
    );
    assert_eq!(
        run_in(Some(&cg.path), create(&dir.path.join("elsewhere"))),
        0
    );
    let existing = dir.path.join("prot/existing");
    std::fs::write(&existing, b"x").unwrap();
    let ce = c(&existing);
    assert_eq!(
        run_in(Some(&cg.path), || unsafe {
            rc(i64::from(libc::unlink(ce.as_ptr())))
        }),
        libc::EPERM
    );
    assert_eq!(
        run_in(Some(&cg.path), || unsafe {
            rc(i64::from(libc::open(ce.as_ptr(), libc::O_WRONLY)))
        }),
        libc::EPERM
    );
    assert!(existing.exists());
    let evs = k.events();
    assert!(
        evs.iter()
            .any(|e| e.op == OP_DELETE_FILE as u8 && ev_path(e) == existing.to_str().unwrap()),
        "deleteFile event"
    );
    let _ = REST_DEEP;
}

/// Copies this test binary into a memfd (an ELF that exits 0 when run with `--list`).
fn memfd_with_self(name: &std::ffi::CStr) -> i32 {
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        let fd = libc::memfd_create(name.as_ptr(), 0);
        assert!(fd >= 0);
        let bytes = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(
            libc::write(fd, bytes.as_ptr().cast(), bytes.len()),
            bytes.len() as isize
        );
        fd
    }
}

#[test]
fn memfd_exec_is_blocked_every_way() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, _dir) = setup(&mut k, "memfd", &[OP_EXEC_MEMFD], BLOCK);
    let fd = memfd_with_self(c"evil");
    let via_proc = CString::new(format!("/proc/self/fd/{fd}")).unwrap();
    let argv = [c"x".as_ptr(), c"--list".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let r = run_in(Some(&cg.path), || unsafe {
        libc::execve(via_proc.as_ptr(), argv.as_ptr(), envp.as_ptr());
        errno()
    });
    assert_eq!(r, libc::EPERM, "execve /proc/self/fd/N");
    let r = run_in(Some(&cg.path), || execveat_empty(fd, &argv, &envp));
    assert_eq!(r, libc::EPERM, "execveat AT_EMPTY_PATH");
    let r = run_in(Some(&cg.path), || unsafe {
        libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
        errno()
    });
    assert_eq!(r, libc::EPERM, "fexecve");
    let evs = k.events();
    let ev = evs
        .iter()
        .find(|e| e.op == OP_EXEC_MEMFD as u8)
        .expect("execMemFd event");
    assert_eq!(ev_path(ev), "/memfd:evil");
    // Outside: runs.
    let r = run_in(None, || unsafe {
        libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
        errno()
    });
    assert_eq!(r, 0, "unmanaged memfd exec runs (and `--list` exits 0)");
    unsafe { libc::close(fd) };
}

#[test]
fn memfd_exec_alert_only_runs() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, _dir) = setup(&mut k, "memfd-alert", &[OP_EXEC_MEMFD], ACTION_ALERT);
    let fd = memfd_with_self(c"alertme");
    let argv = [c"x".as_ptr(), c"--list".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let r = run_in(Some(&cg.path), || unsafe {
        libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
        errno()
    });
    assert_eq!(r, 0);
    assert!(k
        .events()
        .iter()
        .any(|e| e.op == OP_EXEC_MEMFD as u8 && ev_path(e) == "/memfd:alertme"));
    unsafe { libc::close(fd) };
}

fn proc_rules(k: &mut Shared, rs: u32, name_class_for: Option<&str>, op: usize, actions: u8) {
    let mut d = ProcDecision::default();
    d.actions[0][op] = actions;
    d.actions[1][op] = actions;
    let name_class = u32::from(name_class_for.is_some());
    if let Some(n) = name_class_for {
        let mut comm = [0u8; COMM_LEN];
        comm[..n.len()].copy_from_slice(n.as_bytes());
        k.enforcer()
            .write_comm_rules(&[(CommKey { rule_set: rs, comm }, NameClass { class: 1 })])
            .unwrap();
    }
    k.enforcer()
        .write_proc_decisions(&[(
            ProcKey {
                rule_set: rs,
                exe_class: 0,
                name_class,
            },
            d,
        )])
        .unwrap();
}

#[test]
fn exec_and_fork_decisions() {
    let Some(mut k) = kernel() else { return };
    let (rs, cg, dir) = setup(&mut k, "proc", &[], 0);
    // Block exec of anything named `blocked-name`; log every fork.
    proc_rules(&mut k, rs, Some("blocked-name"), OP_EXEC, BLOCK);
    let script = dir.file("blocked-name", 0o755);
    let other = dir.file("other-name", 0o755);
    let exec = |p: &Path| {
        let c = c(p);
        move || unsafe {
            let argv = [c.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr());
            errno()
        }
    };
    assert_eq!(run_in(Some(&cg.path), exec(&script)), libc::EPERM);
    // Not blocked: the script runs `/bin/sh` (if present) and exits 0, or ENOENT.
    let r = run_in(Some(&cg.path), exec(&other));
    assert_ne!(r, libc::EPERM);
    let evs = k.events();
    let ev = evs
        .iter()
        .find(|e| e.kind == EVENT_PROCESS)
        .expect("exec event");
    assert_eq!(ev.op, OP_EXEC as u8);
    assert_eq!(ev_path(ev), script.to_str().unwrap());
    assert_eq!(run_in(None, exec(&script)), 0, "unmanaged: runs");

    // Fork: block (name class 0 = any name).
    let rs2 = rule_set_id();
    k.enforcer().write_file_rules(&[root_entry(rs2)]).unwrap();
    proc_rules(&mut k, rs2, None, OP_FORK, BLOCK);
    let cg2 = TestCgroup::new("fork");
    register(&mut k, &cg2, rs2);
    let r = run_in(Some(&cg2.path), fork_and_wait);
    assert_eq!(r, libc::EPERM);
    let evs = k.events();
    assert!(evs
        .iter()
        .any(|e| e.kind == EVENT_PROCESS && e.op == OP_FORK as u8 && e.flags & FLAG_DENIED != 0));
    // Log only.
    let rs3 = rule_set_id();
    k.enforcer().write_file_rules(&[root_entry(rs3)]).unwrap();
    proc_rules(&mut k, rs3, None, OP_FORK, ACTION_LOG);
    let cg3 = TestCgroup::new("forklog");
    register(&mut k, &cg3, rs3);
    let r = run_in(Some(&cg3.path), fork_and_wait);
    assert_eq!(r, 0);
    assert!(k
        .events()
        .iter()
        .any(|e| e.op == OP_FORK as u8 && e.flags & FLAG_DENIED == 0));
}

#[test]
fn nested_cgroups_stay_managed() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = setup(&mut k, "nested", &[OP_CREATE_EXECUTABLE], BLOCK);
    let inner = cg.child("inner");
    let deeper = inner.join("deeper");
    std::fs::create_dir(&deeper).unwrap();
    let f = dir.file("f", 0o644);
    assert_eq!(run_in(Some(&deeper), || chmod(&f, 0o755)), libc::EPERM);
    let id = cgroup_id(&deeper);
    let entry = k
        .enforcer()
        .registered()
        .unwrap()
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, e)| e);
    assert_eq!(
        entry.map(|e| e.owner),
        Some(cg.id()),
        "the nested entry names the registered container's cgroup"
    );
    // Its events carry both ids, so the daemon can name the pod even once the nested
    // cgroup is gone.
    let events = k.events();
    assert!(
        events
            .iter()
            .any(|e| e.cgroup_id == id && e.owner_cgroup_id == cg.id()),
        "no event from the nested cgroup with its owner: {:?}",
        events
            .iter()
            .map(|e| (e.cgroup_id, e.owner_cgroup_id))
            .collect::<Vec<_>>()
    );
    std::fs::remove_dir(&deeper).unwrap();
    assert!(
        !k.enforcer()
            .registered()
            .unwrap()
            .iter()
            .any(|(i, _)| *i == id),
        "rmdir forgets"
    );
}

#[test]
fn registering_a_running_process_takes_effect() {
    let Some(mut k) = kernel() else { return };
    let rs = rule_set_id();
    k.enforcer()
        .write_file_rules(&[everywhere(rs, &[OP_CREATE_EXECUTABLE], BLOCK)])
        .unwrap();
    let cg = TestCgroup::new("late");
    let dir = TestDir::new("late");
    let f = dir.file("f", 0o644);
    let (mut fds, cf) = ([0i32; 2], c(&f));
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cg.path.join("cgroup.procs"))
        .unwrap();
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            use std::os::fd::AsRawFd;
            libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1);
            let mut b = 0u8;
            libc::read(fds[0], (&raw mut b).cast(), 1);
            let r = rc(i64::from(libc::chmod(cf.as_ptr(), 0o755)));
            libc::_exit(r);
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    register(&mut k, &cg, rs);
    unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
    assert_eq!(wait(pid), libc::EPERM);
}

#[test]
fn enforcement_survives_the_daemon_and_is_adopted() {
    let Some(mut k) = kernel() else { return };
    let (rs, cg, dir) = setup(&mut k, "pinned", &[OP_CREATE_EXECUTABLE], BLOCK);
    let f = dir.file("f", 0o644);
    // A second, independent adoption (as a restarted daemon would do) sees the same maps.
    let pin_dir = k.pin_dir.clone();
    let adopted = d4c::bpf::Enforcer::adopt(&pin_dir).unwrap();
    assert_eq!(adopted.origin(), d4c::bpf::Origin::Adopted);
    assert!(adopted
        .registered()
        .unwrap()
        .iter()
        .any(|(id, e)| *id == cg.id() && e.rule_set == rs));
    // Drop every handle of this process to the programs and maps: only pins remain.
    drop(adopted);
    let events = k.events.take();
    let enforcer = k.enforcer.take();
    drop(events);
    drop(enforcer);
    assert_eq!(
        run_in(Some(&cg.path), || chmod(&f, 0o755)),
        libc::EPERM,
        "no daemon, still enforced"
    );
    // Adopt again through load_or_adopt.
    let config = d4c::bpf::Config {
        pin_dir,
        ..Default::default()
    };
    let mut e = d4c::bpf::Enforcer::load_or_adopt(&config).unwrap();
    assert_eq!(e.origin(), d4c::bpf::Origin::Adopted);
    let counters = e.counters().unwrap();
    assert!(counters[d4c_common::CNT_DENIED as usize] > 0);
    k.events = e.take_events();
    k.enforcer = Some(e);
}

#[test]
fn an_upgrade_takes_over_without_an_unprotected_moment() {
    use d4c::bpf::{
        build_id, build_marker, pinned_builds, retiring_dirs, Config, Enforcer, Origin,
    };
    let Some(_k) = kernel() else { return };
    let pin_dir = std::path::PathBuf::from(format!(
        "{}-test-build-{}",
        d4c::paths::PIN_DIR,
        std::process::id()
    ));
    let config = Config {
        pin_dir: pin_dir.clone(),
        ..Default::default()
    };
    let mode = d4c::bpf::AttachRequest::Auto
        .resolve(std::path::Path::new(d4c::paths::LSM_LIST))
        .unwrap();
    let this = build_id(false, mode);
    let cg = TestCgroup::new("upgrade");
    let dir = TestDir::new("upgrade");
    let f = dir.file("f", 0o644);
    let chmod_x = || run_in(Some(&cg.path), || chmod(&f, 0o755));
    let chmod_back = || assert_eq!(run_in(None, || chmod(&f, 0o644)), 0);
    // Removing a link's last pin detaches it after an RCU grace period, not at once.
    let allowed_soon = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while chmod_x() != 0 {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        chmod_back();
    };
    // A daemon protects the cgroup (its own rule set 7 in its own maps).
    let protect = |e: &mut Enforcer| {
        e.write_file_rules(&[everywhere(7, &[OP_CREATE_EXECUTABLE], BLOCK)])
            .unwrap();
        e.register(cg.id(), d4c_common::ContainerEntry::new(7, cg.id()))
            .unwrap();
    };
    let mut first = Enforcer::load_or_adopt(&config).unwrap();
    assert_eq!(first.origin(), Origin::Loaded);
    assert_eq!(pinned_builds(&pin_dir), vec![this]);
    protect(&mut first);
    assert_eq!(chmod_x(), libc::EPERM, "protected before the upgrade");
    drop(first);
    // The same build adopts (a restarted daemon); nothing to hand over.
    let again = Enforcer::load_or_adopt(&config).unwrap();
    assert_eq!(again.origin(), Origin::Adopted);
    assert!(again.handovers().is_empty());
    drop(again);

    // Programs pinned by another build (an upgrade): this build's are attached next to
    // them, with empty maps; the previous build keeps enforcing its registrations.
    std::fs::remove_dir(build_marker(&pin_dir, this)).unwrap();
    std::fs::create_dir(build_marker(&pin_dir, 1)).unwrap();
    let upgraded = Enforcer::load_or_adopt(&config).unwrap();
    assert_eq!(upgraded.origin(), Origin::Loaded);
    assert_eq!(pinned_builds(&pin_dir), vec![this]);
    assert_eq!(upgraded.handovers().len(), 1);
    assert_eq!(retiring_dirs(&pin_dir).len(), 1);
    assert_eq!(
        chmod_x(),
        libc::EPERM,
        "between the takeover and the new registrations, the previous build still blocks"
    );
    // The daemon restarts in the middle of the handover: the same build adopts and picks
    // the handover up.
    drop(upgraded);
    let mut adopted = Enforcer::load_or_adopt(&config).unwrap();
    assert_eq!(adopted.origin(), Origin::Adopted);
    assert_eq!(adopted.handovers().len(), 1);
    // Registered again (the runtime's Synchronize), then the previous build is detached.
    protect(&mut adopted);
    let retired = adopted.retire_previous().unwrap();
    assert_eq!(retired.len(), 1);
    assert!(retiring_dirs(&pin_dir).is_empty());
    assert!(adopted.handovers().is_empty());
    assert_eq!(chmod_x(), libc::EPERM, "this build alone blocks");
    // Only this build is left: without its registration the cgroup is free.
    adopted.unregister(cg.id()).unwrap();
    allowed_soon("the previous build's programs are detached");
    protect(&mut adopted);

    // A short-lived takeover (`d4c exec` beside a daemon of another build) gives the
    // pins back when it ends: the previous build enforces on, as before.
    drop(adopted);
    std::fs::remove_dir(build_marker(&pin_dir, this)).unwrap();
    std::fs::create_dir(build_marker(&pin_dir, 2)).unwrap();
    let visitor = Enforcer::load_or_adopt(&config).unwrap();
    assert_eq!(visitor.handovers().len(), 1);
    visitor.unload_keeping_previous().unwrap();
    assert_eq!(pinned_builds(&pin_dir), vec![2]);
    assert!(retiring_dirs(&pin_dir).is_empty());
    assert_eq!(chmod_x(), libc::EPERM, "the previous build enforces on");

    // A takeover whose previous build is never retired: `unload` removes both.
    let second = Enforcer::load_or_adopt(&config).unwrap();
    assert_eq!(second.handovers().len(), 1);
    assert_eq!(chmod_x(), libc::EPERM, "the previous build still blocks");
    second.unload().unwrap();
    assert!(!pin_dir.exists(), "unload left {}", pin_dir.display());
    allowed_soon("everything detached");
}

#[test]
fn operation_summary_never_hides_a_rule() {
    let Some(mut k) = kernel() else { return };
    let rs = rule_set_id();
    // First only a root entry without actions (summary: nothing), then a block rule for
    // createExecutable is added to the same rule set: the summary must widen with it.
    k.enforcer().write_file_rules(&[root_entry(rs)]).unwrap();
    let cg = TestCgroup::new("summary");
    register(&mut k, &cg, rs);
    let dir = TestDir::new("summary");
    let f = dir.file("f", 0o644);
    assert_eq!(
        run_in(Some(&cg.path), || chmod(&f, 0o755)),
        0,
        "no rule: allowed"
    );
    assert_eq!(run_in(None, || chmod(&f, 0o644)), 0);
    k.enforcer()
        .write_file_rules(&[everywhere(rs, &[OP_CREATE_EXECUTABLE], BLOCK)])
        .unwrap();
    assert_eq!(
        run_in(Some(&cg.path), || chmod(&f, 0o755)),
        libc::EPERM,
        "rule added: blocked"
    );
    // Deleting the root entry drops the summary; the remaining state is still enforced.
    k.enforcer()
        .delete_file_rules(&[d4c_common::PathKey::new(rs, b"")])
        .unwrap();
    assert_eq!(
        run_in(Some(&cg.path), || chmod(&f, 0o755)),
        0,
        "rules gone: allowed"
    );
}

/// Cgroup v1 hierarchies number their cgroups on their own: a v1 mkdir under a v1 cgroup
/// whose id equals a registered v2 cgroup's id must not register anything, and a v1 rmdir
/// must not unregister a v2 cgroup with the same id.
#[test]
fn cgroup_v1_hierarchies_are_ignored() {
    use std::os::unix::fs::MetadataExt;
    let Some(mut k) = kernel() else { return };
    let (_, cg, _dir) = setup(&mut k, "v1", &[OP_CREATE_EXECUTABLE], BLOCK);
    let target = cg.id();
    let mnt = std::path::PathBuf::from(format!("/tmp/{}", unique("v1mnt")));
    std::fs::create_dir_all(&mnt).unwrap();
    let (src, m, ty) = (c(Path::new("cgroup")), c(&mnt), c(Path::new("cgroup")));
    let opts = CString::new(format!("none,name={}", unique("v1"))).unwrap();
    // SAFETY: NUL-terminated strings.
    if unsafe {
        libc::mount(
            src.as_ptr(),
            m.as_ptr(),
            ty.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    } != 0
    {
        eprintln!(
            "skipping test - cannot mount a named cgroup v1 hierarchy: errno {}",
            errno()
        );
        return;
    }
    let before = k.enforcer().registered().unwrap().len();
    // Create v1 cgroups until one has the registered v2 cgroup's id, then a child of it.
    let mut made = Vec::new();
    let mut hit = None;
    for i in 0..4096 {
        let d = mnt.join(format!("c{i}"));
        std::fs::create_dir(&d).unwrap();
        let ino = std::fs::metadata(&d).unwrap().ino();
        made.push(d.clone());
        if ino == target {
            hit = Some(d);
            break;
        }
        if ino > target {
            break;
        }
    }
    if let Some(parent) = &hit {
        let child = parent.join("child");
        std::fs::create_dir(&child).unwrap();
        made.push(child);
    }
    let after_mkdir = k.enforcer().registered().unwrap().len();
    for d in made.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    let still = k
        .enforcer()
        .registered()
        .unwrap()
        .iter()
        .any(|(id, _)| *id == target);
    // SAFETY: NUL-terminated path.
    unsafe { libc::umount2(m.as_ptr(), libc::MNT_DETACH) };
    let _ = std::fs::remove_dir(&mnt);
    assert_eq!(after_mkdir, before, "a v1 mkdir registered something");
    assert!(
        still,
        "a v1 rmdir unregistered the v2 cgroup with the same id"
    );
    if hit.is_none() {
        eprintln!("note: no v1 cgroup got id {target}; only the no-new-entry check ran");
    }
}

/// A write open on overlayfs is one event with the overlay path: the open of the backing
/// file that overlayfs makes underneath is not a second event (6.1: same path, different
/// superblock; 6.5+: a detached private mount).
#[test]
fn overlayfs_write_is_one_event_on_the_overlay_path() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = setup(&mut k, "ovl", &[OP_MODIFY_EXECUTABLE], ACTION_ALERT);
    let Some(ovl) = Overlay::mount(&dir, &[("exe", 0o755, b"#!/bin/sh\n")]) else {
        return;
    };
    let exe = ovl.merged.join("exe");
    let ce = c(&exe);
    let r = run_in(Some(&cg.path), || unsafe {
        rc(i64::from(libc::open(ce.as_ptr(), libc::O_WRONLY)))
    });
    let evs = k.events();
    drop(ovl);
    assert_eq!(r, 0);
    let opens: Vec<String> = evs
        .iter()
        .filter(|e| e.hook == d4c_common::HOOK_FILE_OPEN)
        .map(ev_path)
        .collect();
    assert_eq!(
        opens,
        vec![exe.to_str().unwrap().to_owned()],
        "one event, overlay path"
    );
}
