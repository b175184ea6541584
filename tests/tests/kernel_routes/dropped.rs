//! Kernel tests of running a dropped file without an exec of it: the dynamic loader
//! mapping a file without x bits that the container wrote (its overlay upper layer, a
//! writable volume) is createExecutable; the image's files and read-only volumes are not.

use std::{
    ffi::CString,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use d4c_common::{HOOK_FILE_MPROTECT, HOOK_MMAP_FILE, OP_CREATE_EXECUTABLE};

use super::{map_fd, mprotect_exec_fd, BLOCK, LD_SO};
use crate::kernel_support::{c, errno, ev_path, execveat_empty, kernel, run_in, Overlay, TestDir};

/// The C library this test runs on: an ELF that `ld.so` runs as a program (it prints its
/// version and exits 0), small enough to copy into several layers.
fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| l.contains("/libc.so.6"))
        .expect("this test links libc.so.6");
    PathBuf::from(&line[line.find('/').unwrap()..])
}

fn write(p: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(p, bytes).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Sends stdout to `/dev/null`, so the library's banner stays out of the test output.
fn quiet_stdout() {
    // SAFETY: plain syscalls on a NUL-terminated path and fds this child owns.
    unsafe { libc::dup2(libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY), 1) };
}

/// A tmpfs (a volume) mounted at `at`, created here: the path and its C string.
fn mount_tmpfs(at: &Path) -> (PathBuf, CString) {
    std::fs::create_dir(at).unwrap();
    let cv = c(at);
    // SAFETY: NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            cv.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "mount tmpfs: errno {}", errno());
    (at.to_path_buf(), cv)
}

/// `ld.so FILE` in a forked child: 0 when the ELF ran, else the loader's exit status.
fn loader(file: &Path) -> impl FnOnce() -> i32 {
    let (ldso, file) = (CString::new(LD_SO).unwrap(), c(file));
    move || {
        let argv = [ldso.as_ptr(), file.as_ptr(), std::ptr::null()];
        quiet_stdout();
        // SAFETY: NUL-terminated strings and a NULL-terminated argv.
        unsafe { libc::execv(ldso.as_ptr(), argv.as_ptr()) };
        errno()
    }
}

/// Opens `file` read-only: the fd, or -1.
fn open_ro(file: &CString) -> i32 {
    // SAFETY: a NUL-terminated path.
    unsafe { libc::open(file.as_ptr(), libc::O_RDONLY) }
}

/// A private read-only mapping of `file` made executable: 0 or the errno.
fn mprotect_exec(file: &Path) -> impl FnOnce() -> i32 {
    let file = c(file);
    move || mprotect_exec_fd(open_ro(&file))
}

/// An executable shared mapping of `file`: 0 or the errno.
fn map_shared_exec(file: &Path) -> impl FnOnce() -> i32 {
    let file = c(file);
    move || {
        map_fd(
            open_ro(&file),
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_SHARED,
        )
        .map_or_else(|e| e, |_| 0)
    }
}

/// Once overlayfs is loaded, the offset its BTF gives is the one the loader's layout rule
/// gives without it, on this kernel.
fn same_upper_offset_as_the_modules_btf() {
    let vmlinux = d4c::bpf::Btf::from_file(Path::new(d4c::paths::KERNEL_BTF)).unwrap();
    let module = Path::new(d4c::paths::OVERLAY_BTF);
    let described = d4c::bpf::described_offset(&vmlinux, module).unwrap();
    assert_eq!(described, Some(d4c::bpf::layout_rule(&vmlinux).unwrap()));
}

#[test]
fn the_loader_running_a_file_the_container_wrote_is_create_executable() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = crate::setup(&mut k, "dropped", &[OP_CREATE_EXECUTABLE], BLOCK);
    let elf = std::fs::read(libc_path()).unwrap();
    let Some(ovl) = Overlay::mount(&dir, &[("image", 0o644, &elf), ("copied", 0o644, &elf)]) else {
        return;
    };
    same_upper_offset_as_the_modules_btf();
    let (image, copied, dropped) = (
        ovl.merged.join("image"),
        ovl.merged.join("copied"),
        ovl.merged.join("dropped"),
    );
    write(&dropped, &elf, 0o644);
    // A write open copies the image's file up into the upper layer.
    drop(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&copied)
            .unwrap(),
    );
    let _ = k.events();

    assert_eq!(
        run_in(Some(&cg.path), loader(&image)),
        0,
        "the image's file runs"
    );
    assert_eq!(run_in(None, loader(&dropped)), 0, "unmanaged: it runs");
    assert_ne!(
        run_in(Some(&cg.path), loader(&dropped)),
        0,
        "ld.so on a file the container wrote"
    );
    let evs = k.events();
    assert!(
        evs.iter().any(|e| e.op == OP_CREATE_EXECUTABLE as u8
            && e.hook == HOOK_MMAP_FILE
            && ev_path(e) == dropped.to_str().unwrap()),
        "a createExecutable event on the overlay path: {:?}",
        evs.iter().map(ev_path).collect::<Vec<_>>()
    );
    assert_ne!(
        run_in(Some(&cg.path), loader(&copied)),
        0,
        "an image file written in the container"
    );
    assert_eq!(
        run_in(Some(&cg.path), mprotect_exec(&dropped)),
        libc::EPERM,
        "mprotect PROT_EXEC of a private mapping of it"
    );
    assert!(k
        .events()
        .iter()
        .any(|e| e.hook == HOOK_FILE_MPROTECT && ev_path(e) == dropped.to_str().unwrap()));
    assert_eq!(
        run_in(Some(&cg.path), mprotect_exec(&image)),
        0,
        "mprotect PROT_EXEC of the image's file"
    );
    assert_eq!(
        run_in(Some(&cg.path), map_shared_exec(&dropped)),
        0,
        "a shared executable view is not decided"
    );

    // A volume, writable or read-only: a read-only bind mount proves nothing, since a
    // process in a user namespace of its own can make one of anything.
    let (vol, cv) = mount_tmpfs(&dir.path.join("vol"));
    let on_vol = vol.join("lib");
    write(&on_vol, &elf, 0o644);
    let writable = run_in(Some(&cg.path), loader(&on_vol));
    // SAFETY: NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            cv.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    let e = errno();
    let readonly = run_in(Some(&cg.path), loader(&on_vol));
    let unmanaged = run_in(None, loader(&on_vol));
    // SAFETY: a NUL-terminated path.
    unsafe { libc::umount2(cv.as_ptr(), libc::MNT_DETACH) };
    assert_eq!(r, 0, "remount read-only: errno {e}");
    assert_ne!(writable, 0, "a file on a writable volume");
    assert_ne!(readonly, 0, "a file on a read-only volume");
    assert_eq!(unmanaged, 0, "unmanaged: it runs from the volume");
}

/// The root filesystem when it is not an overlay (`d4c exec` on a host, other snapshotters):
/// nothing tells the image's files from written ones there, so the loader running a file
/// there (with a program from there) is not decided.
#[test]
fn a_file_on_a_root_filesystem_that_is_not_an_overlay_is_not_decided() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, _) = crate::setup(&mut k, "rootfs-ld", &[OP_CREATE_EXECUTABLE], BLOCK);
    let dir = TestDir::under(Path::new("/"), "rootfs-ld");
    let lib = dir.path.join("lib");
    write(&lib, &std::fs::read(libc_path()).unwrap(), 0o644);
    assert_eq!(
        run_in(Some(&cg.path), loader(&lib)),
        0,
        "ld.so, from the root filesystem, on a file there"
    );
    assert!(k.events().is_empty(), "no decision");
}

/// `chroot` into `dir`, then the loader (kept open from outside it) runs `/lib` there.
fn chrooted_loader(dir: &Path) -> impl FnOnce() -> i32 {
    let (ldso, dir) = (CString::new(LD_SO).unwrap(), c(dir));
    move || {
        let argv = [c"ld.so".as_ptr(), c"/lib".as_ptr(), std::ptr::null()];
        let fd = open_ro(&ldso);
        quiet_stdout();
        // SAFETY: NUL-terminated paths.
        if fd < 0 || unsafe { libc::chroot(dir.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 } {
            return 100;
        }
        execveat_empty(fd, &argv, &[std::ptr::null()])
    }
}

/// A `chroot` does not make a dropped file the root filesystem's: the mount namespace's
/// root decides which files are the node's, and `chroot` does not move it.
#[test]
fn a_chroot_does_not_make_a_dropped_file_the_images() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = crate::setup(&mut k, "chroot-ld", &[OP_CREATE_EXECUTABLE], BLOCK);
    write(
        &dir.path.join("lib"),
        &std::fs::read(libc_path()).unwrap(),
        0o644,
    );
    assert_eq!(
        run_in(None, chrooted_loader(&dir.path)),
        0,
        "unmanaged: the loader runs it in the chroot"
    );
    assert_ne!(
        run_in(Some(&cg.path), chrooted_loader(&dir.path)),
        0,
        "in the container, chroot then ld.so /lib"
    );
    let want = format!("{}/lib", dir.path.display());
    assert!(k.events().iter().any(|e| e.op == OP_CREATE_EXECUTABLE as u8
        && e.hook == HOOK_MMAP_FILE
        && (ev_path(e) == "/lib" || ev_path(e) == want)));
}

/// A `chroot` to a volume's mount point that already holds a loader (copied there by
/// someone else): the volume is still not the root filesystem.
#[test]
fn a_chroot_to_a_volume_holding_a_loader_does_not_make_it_the_root() {
    let Some(mut k) = kernel() else { return };
    let (_, cg, dir) = crate::setup(&mut k, "chroot-vol", &[OP_CREATE_EXECUTABLE], BLOCK);
    let (vol, cv) = mount_tmpfs(&dir.path.join("vol"));
    write(&vol.join("ld.so"), &std::fs::read(LD_SO).unwrap(), 0o755);
    write(
        &vol.join("lib"),
        &std::fs::read(libc_path()).unwrap(),
        0o644,
    );
    let run = || {
        let (root, ldso) = (cv.clone(), c"/ld.so");
        move || {
            let argv = [ldso.as_ptr(), c"/lib".as_ptr(), std::ptr::null()];
            quiet_stdout();
            // SAFETY: NUL-terminated strings and a NULL-terminated argv.
            unsafe {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return 100;
                }
                libc::execv(ldso.as_ptr(), argv.as_ptr());
            }
            errno()
        }
    };
    let unmanaged = run_in(None, run());
    let managed = run_in(Some(&cg.path), run());
    // SAFETY: a NUL-terminated path.
    unsafe { libc::umount2(cv.as_ptr(), libc::MNT_DETACH) };
    assert_eq!(unmanaged, 0, "unmanaged: the volume's loader runs its file");
    assert_ne!(
        managed, 0,
        "in the container, chroot to the volume, its loader, its file"
    );
}
