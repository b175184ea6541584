//! Kernel tests of the routes around the drift rules that an outside review found (each
//! ran a dropped or changed program with no alert before its fix): POSIX ACLs that add
//! an x bit, paths the walk cannot build from the task's root, `O_TMPFILE` executables,
//! process names picked by the exec, memfd paths, dropped files run by the loader
//! ([`dropped`]), and directories renamed into protected paths ([`dir_move`]).

mod dir_move;
mod dropped;
mod preempted;

use std::{ffi::CString, path::Path};

use d4c_common::{
    event::FLAG_PATH_UNREACHABLE, ContainerEntry, ExeRule, PathKey, ProcDecision, ProcKey,
    ACTION_ALERT, ACTION_BLOCK, CNT_MAP_FULL, OP_CREATE_EXECUTABLE, OP_EXEC, OP_EXEC_MEMFD,
    OP_FORK, OP_MODIFY_EXECUTABLE, REST_EMPTY, REST_NAME,
};

use crate::kernel_support::{
    c, errno, ev_path, fork_and_wait, kernel, mode_of, rc, register, root_entry, rule_at,
    rule_set_id, run_in, wait, TestCgroup, TestDir,
};

const BLOCK: u8 = ACTION_ALERT | ACTION_BLOCK;

const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// An access ACL in its xattr form: version 2, then `(tag, perm, id)` entries.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

/// `u::rwx,g::r,o::r`: the owner may execute.
fn owner_x() -> Vec<u8> {
    acl(&[
        (ACL_USER_OBJ, 7, u32::MAX),
        (ACL_GROUP_OBJ, 4, u32::MAX),
        (ACL_OTHER, 4, u32::MAX),
    ])
}

/// `u::rw,u:1234:rwx,g::r,m::M,o::r`: user 1234 may execute when the mask `M` lets it.
fn named_user_x(mask: u16) -> Vec<u8> {
    acl(&[
        (ACL_USER_OBJ, 6, u32::MAX),
        (ACL_USER, 7, 1234),
        (ACL_GROUP_OBJ, 4, u32::MAX),
        (ACL_MASK, mask, u32::MAX),
        (ACL_OTHER, 4, u32::MAX),
    ])
}

fn set_acl(p: &CString, value: &[u8]) -> i32 {
    // SAFETY: NUL-terminated strings and a buffer of `value.len()` bytes.
    rc(i64::from(unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    }))
}

fn open(p: &CString, flags: i32, mode: u32) -> i32 {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(p.as_ptr(), flags, mode) };
    if fd < 0 {
        errno()
    } else {
        // SAFETY: our own fd.
        unsafe { libc::close(fd) };
        0
    }
}

#[test]
fn an_acl_that_lets_anyone_execute_is_create_executable() {
    let Some(mut k) = kernel() else { return };
    // On the root filesystem (the ACL hooks get no mount: the path is built on the task's
    // root mount), with the rule on the directory's children only.
    let dir = TestDir::under(Path::new("/"), "acl");
    let rs = rule_set_id();
    let prefix = format!("{}/", dir.path.display());
    k.enforcer()
        .write_file_rules(&[
            root_entry(rs),
            rule_at(
                rs,
                prefix.as_bytes(),
                &[REST_NAME],
                &[OP_CREATE_EXECUTABLE],
                BLOCK,
            ),
        ])
        .unwrap();
    let cg = TestCgroup::new("acl");
    register(&mut k, &cg, rs);
    let f = dir.file("f", 0o644);
    let cf = c(&f);

    assert_eq!(
        run_in(Some(&cg.path), || set_acl(&cf, &owner_x())),
        libc::EPERM
    );
    assert_eq!(
        run_in(Some(&cg.path), || set_acl(&cf, &named_user_x(7))),
        libc::EPERM
    );
    // A mask with x gives the mode's group x bit (then root may run it), whatever the
    // group-class entries hold.
    let mask_only = acl(&[
        (ACL_USER_OBJ, 6, u32::MAX),
        (ACL_GROUP_OBJ, 4, u32::MAX),
        (ACL_MASK, 7, u32::MAX),
        (ACL_OTHER, 4, u32::MAX),
    ]);
    assert_eq!(
        run_in(Some(&cg.path), || set_acl(&cf, &mask_only)),
        libc::EPERM,
        "mask::rwx"
    );
    assert_eq!(mode_of(&f), 0o644, "the mode must not change");
    // ACLs that let nobody execute are no createExecutable.
    assert_eq!(run_in(Some(&cg.path), || set_acl(&cf, &named_user_x(6))), 0);
    let plain = acl(&[
        (ACL_USER_OBJ, 6, u32::MAX),
        (ACL_GROUP_OBJ, 4, u32::MAX),
        (ACL_OTHER, 4, u32::MAX),
    ]);
    assert_eq!(run_in(Some(&cg.path), || set_acl(&cf, &plain)), 0);
    assert_eq!(mode_of(&f) & 0o111, 0);

    let ev = k
        .events()
        .into_iter()
        .find(|e| e.op == OP_CREATE_EXECUTABLE as u8)
        .expect("a createExecutable event");
    assert_eq!(ev_path(&ev), f.to_str().unwrap());
    assert!(
        [
            d4c_common::HOOK_INODE_SETXATTR,
            d4c_common::HOOK_INODE_SET_ACL
        ]
        .contains(&ev.hook),
        "hook {}",
        ev.hook
    );

    // fsetxattr on an O_TMPFILE (then `execveat` would run it without a name).
    let d = c(&dir.path);
    let r = run_in(Some(&cg.path), || unsafe {
        let fd = libc::open(d.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, 0o644);
        if fd < 0 {
            return 100;
        }
        let v = owner_x();
        rc(i64::from(libc::fsetxattr(
            fd,
            c"system.posix_acl_access".as_ptr(),
            v.as_ptr().cast(),
            v.len(),
            0,
        )))
    });
    assert_eq!(r, libc::EPERM, "fsetxattr of an O_TMPFILE");

    // Unmanaged: the same ACL works and makes the file executable (so the kernel and the
    // filesystem take ACLs, and the refusals above were d4c's).
    assert_eq!(run_in(None, || set_acl(&cf, &owner_x())), 0);
    assert_eq!(mode_of(&f) & 0o100, 0o100);
}

/// A rule set whose only action is in the root entry's empty-rest row (which the compiler
/// fills with the rule set's most restrictive actions): every path the walk builds is
/// allowed, every path it cannot build is refused.
fn unreachable_only(k: &mut crate::kernel_support::Shared, tag: &str) -> (TestCgroup, TestDir) {
    let rs = rule_set_id();
    k.enforcer()
        .write_file_rules(&[rule_at(
            rs,
            b"",
            &[REST_EMPTY],
            &[OP_MODIFY_EXECUTABLE, OP_CREATE_EXECUTABLE],
            BLOCK,
        )])
        .unwrap();
    let cg = TestCgroup::new(tag);
    register(k, &cg, rs);
    (cg, TestDir::new(tag))
}

#[test]
fn a_path_the_walk_cannot_build_gets_the_most_restrictive_class() {
    let Some(mut k) = kernel() else { return };
    let (cg, dir) = unreachable_only(&mut k, "unreach");
    let exe = dir.file("exe", 0o755);
    let (cexe, cdir) = (c(&exe), c(&dir.path));
    // Reachable: no rule applies.
    assert_eq!(run_in(Some(&cg.path), || open(&cexe, libc::O_WRONLY, 0)), 0);

    // A directory fd kept across unshare(CLONE_NEWNS).
    let across_unshare = || unsafe {
        let dfd = libc::open(cdir.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
        if dfd < 0 || libc::unshare(libc::CLONE_NEWNS) != 0 {
            return 100;
        }
        let fd = libc::openat(dfd, c"exe".as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            errno()
        } else {
            0
        }
    };
    assert_eq!(
        run_in(Some(&cg.path), across_unshare),
        libc::EPERM,
        "dirfd across unshare"
    );
    assert_eq!(run_in(None, across_unshare), 0, "unmanaged");

    // A detached mount (open_tree OPEN_TREE_CLONE).
    let r = run_in(Some(&cg.path), || unsafe {
        const OPEN_TREE_CLONE: libc::c_long = 1;
        let t = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            cdir.as_ptr(),
            OPEN_TREE_CLONE | libc::c_long::from(libc::O_CLOEXEC),
        );
        if t < 0 {
            return 100;
        }
        let fd = libc::openat(t as i32, c"exe".as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            errno()
        } else {
            0
        }
    });
    assert_eq!(r, libc::EPERM, "detached mount");

    // /proc/PID/root of a process in another mount namespace.
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (mut ready, mut go) = ([0i32; 2], [0u8; 1]);
    assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
    let other = unsafe { libc::fork() };
    if other == 0 {
        unsafe {
            libc::unshare(libc::CLONE_NEWNS);
            libc::write(ready[1], b"r".as_ptr().cast(), 1);
            libc::read(fds[0], go.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    unsafe { libc::read(ready[0], go.as_mut_ptr().cast(), 1) };
    let via_proc = CString::new(format!("/proc/{other}/root{}", exe.display())).unwrap();
    let r = run_in(Some(&cg.path), || open(&via_proc, libc::O_WRONLY, 0));
    unsafe { libc::write(fds[1], b"g".as_ptr().cast(), 1) };
    wait(other);
    assert_eq!(r, libc::EPERM, "/proc/PID/root of another mount namespace");

    // Deeper than the walk goes (chmod: a hook where only the walk builds paths).
    let mut deep = dir.path.clone();
    for _ in 0..140 {
        deep.push("a");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f"), b"x").unwrap();
    let deep_f = c(&deep.join("f"));
    let chmod_x = || unsafe { rc(i64::from(libc::chmod(deep_f.as_ptr(), 0o755))) };
    assert_eq!(run_in(Some(&cg.path), chmod_x), libc::EPERM, "too deep");

    let evs = k.events();
    assert!(
        evs.iter().any(|e| e.flags & FLAG_PATH_UNREACHABLE != 0),
        "the events say the path was unreachable"
    );
}

#[test]
fn an_o_tmpfile_with_x_bits_is_create_executable() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = crate::setup(&mut k, "tmpfile", &[OP_CREATE_EXECUTABLE], BLOCK);
    let d = c(&dir.path);
    let tmpfile = |mode: u32| {
        let d = d.clone();
        move || open(&d, libc::O_TMPFILE | libc::O_WRONLY, mode)
    };
    assert_eq!(run_in(Some(&cg.path), tmpfile(0o755)), libc::EPERM);
    assert_eq!(run_in(Some(&cg.path), tmpfile(0o644)), 0);
    // Inside a chroot too.
    let r = run_in(Some(&cg.path), || unsafe {
        if libc::chroot(d.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
            return 100;
        }
        open(
            &CString::new("/").unwrap(),
            libc::O_TMPFILE | libc::O_WRONLY,
            0o755,
        )
    });
    assert_eq!(r, libc::EPERM, "O_TMPFILE 0755 in a chroot");
    assert_eq!(run_in(None, tmpfile(0o755)), 0, "unmanaged");
}

/// In a forked child: `execve(p)`; returns errno if it fails.
fn exec(p: &CString) -> i32 {
    let argv = [p.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: NUL-terminated strings and NULL-terminated arrays.
    unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

#[test]
fn the_process_name_is_the_executed_files() {
    let Some(mut k) = kernel() else { return };
    let (rs, cg, dir) = crate::setup(&mut k, "names", &[], 0);
    crate::proc_rules(&mut k, rs, Some("blocked-name"), OP_EXEC, BLOCK);
    let script = dir.file("blocked-name", 0o755);
    let link = dir.path.join("innocent");
    std::os::unix::fs::symlink(&script, &link).unwrap();
    let clink = c(&link);
    assert_eq!(
        run_in(Some(&cg.path), || exec(&clink)),
        libc::EPERM,
        "through a symlink"
    );
    let cs = c(&script);
    let r = run_in(Some(&cg.path), || {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(cs.as_ptr(), libc::O_RDONLY) };
        let via = format!("/proc/self/fd/{fd}\0");
        exec(&CString::from_vec_with_nul(via.into_bytes()).unwrap())
    });
    assert_eq!(r, libc::EPERM, "through /proc/self/fd/N");

    // Fork: the name of the file the process runs, not the comm it set itself.
    let rs2 = rule_set_id();
    k.enforcer().write_file_rules(&[root_entry(rs2)]).unwrap();
    let me = std::env::current_exe().unwrap();
    let name = me.file_name().unwrap().to_str().unwrap();
    let name = &name[..name.len().min(15)];
    crate::proc_rules(&mut k, rs2, Some(name), OP_FORK, BLOCK);
    let cg2 = TestCgroup::new("names-fork");
    register(&mut k, &cg2, rs2);
    let r = run_in(Some(&cg2.path), || {
        // SAFETY: sets this child's own comm.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"innocent".as_ptr()) };
        fork_and_wait()
    });
    assert_eq!(r, libc::EPERM, "fork after PR_SET_NAME");
}

/// The second identity (`d4c_policy::Event::identities`): a process is also decided as
/// the name it was started by (the path the exec named, or its comm at fork), and the
/// actions are the union: `processName: [sh]` catches a shell run as `/bin/sh` whatever
/// file that is, and a chosen name only ever adds actions.
#[test]
fn the_name_a_process_was_started_by_adds_actions() {
    let Some(mut k) = kernel() else { return };
    let (rs, cg, dir) = crate::setup(&mut k, "started", &[], 0);
    crate::proc_rules(&mut k, rs, Some("sh"), OP_EXEC, BLOCK);
    // A file of another name, run through a symlink named `sh` (Debian's /bin/sh -> dash).
    let target = dir.file("dash", 0o755);
    std::fs::create_dir(dir.path.join("bin")).unwrap();
    let link = dir.path.join("bin").join("sh");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (ctarget, clink) = (c(&target), c(&link));
    assert_ne!(
        run_in(Some(&cg.path), || exec(&ctarget)),
        libc::EPERM,
        "run by its own name: no rule"
    );
    k.drain_events();
    assert_eq!(
        run_in(Some(&cg.path), || exec(&clink)),
        libc::EPERM,
        "run as `sh`"
    );
    let evs = k.events();
    let ev = evs
        .iter()
        .find(|e| e.op == OP_EXEC as u8)
        .expect("an exec event");
    assert_eq!(ev_path(ev), target.to_str().unwrap(), "the file executed");
    assert_eq!(
        String::from_utf8_lossy(d4c::bpf::exe(ev)),
        link.to_str().unwrap(),
        "the path the exec named"
    );
    // Fork: the comm is the second name (one a process sets itself only adds actions).
    let rs2 = rule_set_id();
    k.enforcer().write_file_rules(&[root_entry(rs2)]).unwrap();
    crate::proc_rules(&mut k, rs2, Some("chosen"), OP_FORK, BLOCK);
    let cg2 = TestCgroup::new("started-fork");
    register(&mut k, &cg2, rs2);
    assert_ne!(
        run_in(Some(&cg2.path), fork_and_wait),
        libc::EPERM,
        "fork under its own names"
    );
    let r = run_in(Some(&cg2.path), || {
        // SAFETY: sets this child's own comm.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"chosen".as_ptr()) };
        fork_and_wait()
    });
    assert_eq!(r, libc::EPERM, "fork after PR_SET_NAME(chosen)");
}

#[test]
fn an_executable_the_walk_cannot_reach_gets_the_most_restrictive_class() {
    let Some(mut k) = kernel() else { return };
    let (rs, cg, dir) = crate::setup(&mut k, "unreach-exec", &[], 0);
    // Executable class 1 only in the root entry's empty-rest slot (where the compiler puts
    // the class of unreachable paths); exec of class 1 is blocked.
    let mut exe = ExeRule::default();
    exe.class[REST_EMPTY] = 1;
    k.enforcer()
        .write_exe_rules(&[(PathKey::new(rs, b""), exe)])
        .unwrap();
    let mut d = ProcDecision::default();
    d.actions[0][OP_EXEC] = BLOCK;
    d.actions[1][OP_EXEC] = BLOCK;
    k.enforcer()
        .write_proc_decisions(&[(
            ProcKey {
                rule_set: rs,
                exe_class: 1,
                name_class: 0,
            },
            d,
        )])
        .unwrap();
    let script = dir.file("script", 0o755);
    let cs = c(&script);
    assert_ne!(
        run_in(Some(&cg.path), || exec(&cs)),
        libc::EPERM,
        "reachable: no rule"
    );
    let cdir = c(&dir.path);
    let via_detached = || unsafe {
        const OPEN_TREE_CLONE: libc::c_long = 1;
        let t = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            cdir.as_ptr(),
            OPEN_TREE_CLONE,
        );
        if t < 0 {
            return 100;
        }
        let argv = [c"script".as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        libc::syscall(
            libc::SYS_execveat,
            t,
            c"script".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            0,
        );
        errno()
    };
    assert_eq!(
        run_in(Some(&cg.path), via_detached),
        libc::EPERM,
        "exec from a detached mount"
    );
    assert!(k
        .events()
        .iter()
        .any(|e| e.op == OP_EXEC as u8 && e.flags & FLAG_PATH_UNREACHABLE != 0));
}

#[test]
fn a_memfd_is_matched_by_its_path() {
    let Some(mut k) = kernel() else { return };
    let rs = rule_set_id();
    // `/memfd:*`: the prefix `/memfd:` with an empty or one-name rest.
    k.enforcer()
        .write_file_rules(&[
            root_entry(rs),
            rule_at(
                rs,
                b"/memfd:",
                &[REST_EMPTY, REST_NAME],
                &[OP_EXEC_MEMFD],
                BLOCK,
            ),
        ])
        .unwrap();
    let cg = TestCgroup::new("memfd-path");
    register(&mut k, &cg, rs);
    // A `/` in the name keeps it one component.
    let fd = crate::memfd_with_self(c"a/b");
    let argv = [c"x".as_ptr(), c"--list".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let r = run_in(Some(&cg.path), || unsafe {
        libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
        errno()
    });
    assert_eq!(r, libc::EPERM);
    assert!(k
        .events()
        .iter()
        .any(|e| e.op == OP_EXEC_MEMFD as u8 && ev_path(e) == "/memfd:a_b"));
    // A rule set whose patterns cannot match a memfd lets it run.
    let rs2 = rule_set_id();
    k.enforcer()
        .write_file_rules(&[
            root_entry(rs2),
            rule_at(
                rs2,
                b"/usr/",
                &[REST_NAME, d4c_common::REST_DEEP],
                &[OP_EXEC_MEMFD],
                BLOCK,
            ),
        ])
        .unwrap();
    let cg2 = TestCgroup::new("memfd-usr");
    register(&mut k, &cg2, rs2);
    let r = run_in(Some(&cg2.path), || unsafe {
        libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
        errno()
    });
    assert_eq!(r, 0);
    unsafe { libc::close(fd) };
}

#[test]
fn a_full_containers_map_refuses_a_cgroup_mkdir_in_a_container() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, _dir) = crate::setup(&mut k, "mapfull", &[], 0);
    // Fill D4C_CONTAINERS with ids no cgroup has.
    let mut fillers = Vec::new();
    for i in 0..100_000u64 {
        let id = (1u64 << 62) + i;
        if k.enforcer()
            .register(id, ContainerEntry::new(1, 1))
            .is_err()
        {
            break;
        }
        fillers.push(id);
    }
    let child = cg.path.join("nested");
    let nested = c(&child);
    let mkdir = || unsafe { rc(i64::from(libc::mkdir(nested.as_ptr(), 0o755))) };
    let before = k.enforcer().counters().unwrap()[CNT_MAP_FULL as usize];
    let full = run_in(Some(&cg.path), mkdir);
    let after = k.enforcer().counters().unwrap()[CNT_MAP_FULL as usize];
    for id in &fillers {
        k.enforcer().unregister(*id).unwrap();
    }
    assert!(fillers.len() < 100_000, "the map must fill up");
    assert_eq!(
        full,
        libc::EPERM,
        "mkdir of a cgroup with no room for its entry"
    );
    assert!(!child.exists());
    assert!(after > before, "counted");
    // With room again, the same mkdir works and the new cgroup is managed.
    assert_eq!(run_in(Some(&cg.path), mkdir), 0);
    let id = crate::kernel_support::cgroup_id(&child);
    assert!(k
        .enforcer()
        .registered()
        .unwrap()
        .iter()
        .any(|(i, e)| *i == id && e.owner == cg.id()));
    std::fs::remove_dir(&child).unwrap();
}

/// `struct clone_args` up to `cgroup` (clone3's `CLONE_INTO_CGROUP`, 5.7+).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

#[test]
fn a_process_that_leaves_its_container_cgroup_keeps_its_rule_set() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = crate::setup(&mut k, "leave", &[OP_CREATE_EXECUTABLE], BLOCK);
    let outside = TestCgroup::new("leave-outside");
    let f = dir.file("f", 0o644);
    let cf = c(&f);
    let chmod_x = || unsafe { rc(i64::from(libc::chmod(cf.as_ptr(), 0o755))) };

    // A write of its own pid to an unmanaged cgroup's cgroup.procs.
    let procs = c(&outside.path.join("cgroup.procs"));
    let r = run_in(Some(&cg.path), || unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            return 100;
        }
        chmod_x()
    });
    assert_eq!(r, libc::EPERM, "after moving itself to an unmanaged cgroup");

    // clone3(CLONE_INTO_CGROUP): the child starts in an unmanaged cgroup.
    let outside_dir = c(&outside.path);
    let r = run_in(Some(&cg.path), || unsafe {
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        let cgfd = libc::open(outside_dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        if cgfd < 0 {
            return 100;
        }
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: u64::from(libc::SIGCHLD.unsigned_abs()),
            cgroup: u64::from(cgfd.unsigned_abs()),
            ..CloneArgs::default()
        };
        let pid = libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            core::mem::size_of::<CloneArgs>(),
        );
        if pid == 0 {
            libc::_exit(chmod_x());
        }
        if pid < 0 {
            return 101;
        }
        wait(pid as i32)
    });
    assert_eq!(r, libc::EPERM, "a child cloned into an unmanaged cgroup");
    assert_eq!(mode_of(&f), 0o644);
    // A process that was never managed is not affected there.
    assert_eq!(run_in(Some(&outside.path), chmod_x), 0);
}

/// Maps 4 KiB of `fd` with `prot` and `flags`: the address, or the errno.
fn map_fd(fd: i32, prot: i32, flags: i32) -> Result<*mut libc::c_void, i32> {
    // SAFETY: a new mapping chosen by the kernel; nothing else is touched.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, flags, fd, 0) };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p)
    }
}

/// A private read-only mapping of `fd` made executable: 0 or the errno (100 when it could
/// not be mapped).
fn mprotect_exec_fd(fd: i32) -> i32 {
    let Ok(p) = map_fd(fd, libc::PROT_READ, libc::MAP_PRIVATE) else {
        return 100;
    };
    // SAFETY: the mapping made above.
    rc(i64::from(unsafe {
        libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC)
    }))
}

/// The dynamic loader, which runs an ELF without an exec of it.
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

#[test]
fn the_loader_mapping_a_memfd_is_exec_memfd_and_a_jit_view_is_not() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, _dir) = crate::setup(&mut k, "ldso", &[OP_EXEC_MEMFD], BLOCK);
    let fd = crate::memfd_with_self(c"payload");
    let (ldso, via) = (
        CString::new(LD_SO).unwrap(),
        CString::new(format!("/proc/self/fd/{fd}")).unwrap(),
    );
    let run = || {
        let argv = [
            ldso.as_ptr(),
            via.as_ptr(),
            c"--list".as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: NUL-terminated strings and a NULL-terminated argv.
        unsafe { libc::execv(ldso.as_ptr(), argv.as_ptr()) };
        errno()
    };
    assert_eq!(
        run_in(None, run),
        0,
        "unmanaged: ld.so runs the memfd's ELF"
    );
    assert_ne!(
        run_in(Some(&cg.path), run),
        0,
        "ld.so /proc/self/fd/N in the container"
    );
    assert!(k.events().iter().any(|e| e.op == OP_EXEC_MEMFD as u8
        && e.hook == d4c_common::HOOK_MMAP_FILE
        && ev_path(e) == "/memfd:payload"));

    // A private read-only mapping made executable.
    let r = run_in(Some(&cg.path), || mprotect_exec_fd(fd));
    assert_eq!(
        r,
        libc::EPERM,
        "mprotect PROT_EXEC of a private memfd mapping"
    );

    // What .NET does for its code heap: a memfd mapped twice, shared, one view executable.
    let r = run_in(Some(&cg.path), || unsafe {
        let m = libc::memfd_create(c"doublemapper".as_ptr(), libc::MFD_CLOEXEC);
        if m < 0 || libc::ftruncate(m, 65536) != 0 {
            return 100;
        }
        let rw = libc::mmap(
            std::ptr::null_mut(),
            65536,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            m,
            0,
        );
        let rx = libc::mmap(
            std::ptr::null_mut(),
            65536,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_SHARED,
            m,
            0,
        );
        if rw == libc::MAP_FAILED || rx == libc::MAP_FAILED {
            return errno();
        }
        // Code written through one view runs through the other: `ret`.
        *rw.cast::<u8>() = 0xc3;
        let f: extern "C" fn() = core::mem::transmute(rx);
        f();
        0
    });
    assert_eq!(r, 0, "a JIT's shared executable view of a memfd works");
    unsafe { libc::close(fd) };
}
