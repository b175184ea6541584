//! Kernel tests of pending entries (what a guard of a pod cgroup parent registers):
//! nothing applies in the cgroup until its first exec that is not the runtime re-executing
//! itself (a memfd, or its own file): the container runtime sets a container up in its
//! cgroup, then executes the entrypoint, which arms the entry for every task of the
//! cgroup; a nested cgroup copies the flag.

use std::ffi::CString;
use std::path::Path;

use d4c_common::{ContainerEntry, ACTION_ALERT, ACTION_BLOCK, ENTRY_PENDING, OP_CREATE_EXECUTABLE};

use crate::kernel_support::{
    c, errno, everywhere, kernel, rc, rule_set_id, run_in, TestCgroup, TestDir,
};

fn chmod(p: &Path, mode: u32) -> i32 {
    let c = c(p);
    // SAFETY: a NUL-terminated path.
    rc(i64::from(unsafe { libc::chmod(c.as_ptr(), mode) }))
}

const BUSYBOX: &str = "/bin/busybox";

/// In a forked child: `execv(busybox, ["true"])`; returns errno if it fails.
fn exec_true() -> i32 {
    let path = CString::new(BUSYBOX).unwrap();
    let applet = CString::new("true").unwrap();
    let argv = [applet.as_ptr(), std::ptr::null()];
    // SAFETY: NUL-terminated strings and a NULL-terminated argv.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    errno()
}

/// In a forked child: this test binary again (`/proc/self/exe --list`, which only lists
/// the tests): a process re-executing its own file, as runc does through a bind mount.
fn exec_self() -> i32 {
    let path = CString::new("/proc/self/exe").unwrap();
    let (program, list) = (
        CString::new("kernel").unwrap(),
        CString::new("--list").unwrap(),
    );
    let argv = [program.as_ptr(), list.as_ptr(), std::ptr::null()];
    // SAFETY: NUL-terminated strings and a NULL-terminated argv.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    errno()
}

/// In a forked child: busybox copied into a memfd, run as `true` with `fexecve`.
fn exec_true_from_memfd() -> i32 {
    let bytes = std::fs::read(BUSYBOX).unwrap();
    let name = CString::new("d4c-pending").unwrap();
    let applet = CString::new("true").unwrap();
    let argv = [applet.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: plain syscalls on an fd we own, NULL-terminated arrays.
    unsafe {
        let fd = libc::memfd_create(name.as_ptr(), 0);
        if fd < 0 || libc::write(fd, bytes.as_ptr().cast(), bytes.len()) != bytes.len() as isize {
            return 99;
        }
        libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
    }
    errno()
}

fn entry_of(k: &mut crate::kernel_support::Shared, id: u64) -> Option<ContainerEntry> {
    k.enforcer()
        .registered()
        .unwrap()
        .into_iter()
        .find_map(|(c, e)| (c == id).then_some(e))
}

#[test]
fn a_pending_entry_applies_from_the_first_exec_that_is_not_the_runtime() {
    let Some(mut k) = kernel() else { return };
    if !Path::new(BUSYBOX).exists() {
        eprintln!("skipping test - no {BUSYBOX}");
        return;
    }
    let rs = rule_set_id();
    k.enforcer()
        .write_file_rules(&[everywhere(
            rs,
            &[OP_CREATE_EXECUTABLE],
            ACTION_ALERT | ACTION_BLOCK,
        )])
        .unwrap();
    let cg = TestCgroup::new("pending");
    k.enforcer()
        .register(cg.id(), ContainerEntry::pending(rs, cg.id()))
        .unwrap();
    let dir = TestDir::new("pending");
    let f = dir.file("f", 0o644);
    let back = || assert_eq!(run_in(None, || chmod(&f, 0o644)), 0);

    // The runtime's set-up: nothing applies yet.
    assert_eq!(run_in(Some(&cg.path), || chmod(&f, 0o755)), 0, "pending");
    back();
    // A cgroup created now copies the pending entry.
    let nested = cg.child("n");
    let nested_id = crate::kernel_support::cgroup_id(&nested);
    assert_eq!(
        entry_of(&mut k, nested_id).map(|e| e.flags & ENTRY_PENDING),
        Some(ENTRY_PENDING)
    );
    // A runtime re-executing itself (from a memfd copy, or its own file) does not arm it.
    for reexec in [exec_true_from_memfd as fn() -> i32, exec_self] {
        assert_eq!(run_in(Some(&cg.path), reexec), 0);
        assert_eq!(
            run_in(Some(&cg.path), || chmod(&f, 0o755)),
            0,
            "still pending"
        );
        back();
    }
    // The first other exec (the entrypoint) arms it for every task of the cgroup.
    assert_eq!(run_in(Some(&cg.path), exec_true), 0);
    assert_eq!(run_in(Some(&cg.path), || chmod(&f, 0o755)), libc::EPERM);
    // The kernel keeps the armed state itself: a daemon writing the pending entry again
    // (a reload racing with the entrypoint) does not make the cgroup pending again.
    k.enforcer()
        .register(cg.id(), ContainerEntry::pending(rs, cg.id()))
        .unwrap();
    assert_eq!(run_in(Some(&cg.path), || chmod(&f, 0o755)), libc::EPERM);
    // The nested copy stays pending until its own first exec.
    assert_eq!(run_in(Some(&nested), || chmod(&f, 0o755)), 0);
    back();
    assert_eq!(run_in(Some(&nested), exec_true), 0);
    assert_eq!(run_in(Some(&nested), || chmod(&f, 0o755)), libc::EPERM);
    // A cgroup created below an armed one is armed at once.
    let armed_child = cg.child("m");
    assert_eq!(
        entry_of(&mut k, crate::kernel_support::cgroup_id(&armed_child)).map(|e| e.flags),
        Some(0)
    );
    assert_eq!(run_in(Some(&armed_child), || chmod(&f, 0o755)), libc::EPERM);
    for id in [
        cg.id(),
        nested_id,
        crate::kernel_support::cgroup_id(&armed_child),
    ] {
        let _ = k.enforcer().unregister(id);
    }
}
