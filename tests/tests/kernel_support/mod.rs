//! Helpers of the privileged kernel tests: the skip/require gate, one shared enforcer with a
//! unique pin directory, test cgroups, running code in a forked child inside a cgroup, and
//! hand-written table entries.
#![allow(dead_code)]

use std::{
    ffi::CString,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use d4c::bpf::{Config, Enforcer, EventReader};
use d4c_common::{ContainerEntry, Event, FileRule, PathKey, FILE_OP_SLOTS, REST_CLASSES};

/// The attach mode the guest was booted for (`D4C_EXPECT_ATTACH`: `lsm` or `fmod_ret`),
/// which `auto` must choose there; `None` when the caller does not say.
pub fn expected_mode() -> Option<d4c::bpf::AttachMode> {
    let v = std::env::var("D4C_EXPECT_ATTACH").ok()?;
    Some(
        d4c::bpf::AttachMode::from_name(&v)
            .unwrap_or_else(|| panic!("D4C_EXPECT_ATTACH={v}: not lsm or fmod_ret")),
    )
}

/// Whether privileged tests must run (CI): then missing prerequisites fail the test.
pub fn required() -> bool {
    std::env::var("D4C_REQUIRE_BPF_LSM").is_ok_and(|v| v == "1")
}

/// Why this machine cannot run the kernel tests, if it cannot.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Some("no cgroup v2 at /sys/fs/cgroup".into());
    }
    // The kernel must load the hooks in the mode `auto` picks (BPF LSM, else fmod_ret).
    if let Err(e) = d4c::bpf::usable_mode() {
        return Some(e.to_string());
    }
    None
}

/// Everything a test needs; `None` (after printing the reason) when it must skip.
pub struct Kernel {
    pub enforcer: MutexGuard<'static, Shared>,
}

pub struct Shared {
    pub enforcer: Option<Enforcer>,
    pub events: Option<EventReader>,
    pub pin_dir: PathBuf,
}

static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();

/// The shared enforcer (loaded once per test binary), locked for this test: tests run one
/// at a time because they share the ring buffer.
pub fn kernel() -> Option<MutexGuard<'static, Shared>> {
    if let Some(reason) = missing_prerequisite() {
        assert!(!required(), "D4C_REQUIRE_BPF_LSM=1 but {reason}");
        eprintln!("skipping test - {reason}");
        return None;
    }
    let shared = SHARED.get_or_init(|| {
        let pin_dir = PathBuf::from(format!(
            "{}-test-{}",
            d4c::paths::PIN_DIR,
            std::process::id()
        ));
        let config = Config {
            pin_dir: pin_dir.clone(),
            ..Config::default()
        };
        let t = Instant::now();
        let mut enforcer = Enforcer::load_or_adopt(&config).unwrap_or_else(|e| panic!("load: {e}"));
        eprintln!(
            "loaded and attached ({}) in {:?}",
            enforcer.mode(),
            t.elapsed()
        );
        let events = enforcer.take_events();
        Mutex::new(Shared {
            enforcer: Some(enforcer),
            events,
            pin_dir,
        })
    });
    let mut g = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    g.drain_events();
    Some(g)
}

impl Shared {
    pub fn enforcer(&mut self) -> &mut Enforcer {
        self.enforcer.as_mut().expect("enforcer")
    }

    pub fn drain_events(&mut self) {
        if let Some(r) = self.events.as_mut() {
            while r.try_next().is_some() {}
        }
    }

    /// Events seen so far (waits briefly: the ring buffer is written before the syscall
    /// returns, so they are normally there already).
    pub fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(200);
        let r = self.events.as_mut().expect("event reader");
        loop {
            while let Some(ev) = r.try_next() {
                out.push(ev);
            }
            if !out.is_empty() || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Unique names within this test process.
pub fn unique(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("d4c-test-{}-{tag}-{n}", std::process::id())
}

/// A cgroup made for one test, removed on drop (with its nested children).
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    pub fn new(tag: &str) -> Self {
        let path = Path::new("/sys/fs/cgroup").join(unique(tag));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup { path }
    }

    /// A nested cgroup (not removed separately: drop removes children first).
    pub fn child(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir(&p).unwrap();
        p
    }

    /// The cgroup id: the inode of its directory.
    pub fn id(&self) -> u64 {
        cgroup_id(&self.path)
    }
}

pub fn cgroup_id(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        fn rm(p: &Path) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        rm(&e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(p);
        }
        rm(&self.path);
    }
}

/// A scratch directory for one test, removed on drop.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> Self {
        Self::under(Path::new("/tmp"), tag)
    }

    /// A scratch dir under `base` (`/tmp` is its own mount in the guests; `/` is not).
    pub fn under(base: &Path, tag: &str) -> Self {
        let path = base.join(unique(tag));
        std::fs::create_dir_all(&path).unwrap();
        TestDir { path }
    }

    pub fn file(&self, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path.join(name);
        std::fs::write(&p, b"#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// An overlayfs mounted in a [`TestDir`] (`lower`, `upper`, `work`, `merged`), the way a
/// container's root filesystem is; unmounted when dropped.
pub struct Overlay {
    pub lower: PathBuf,
    pub merged: PathBuf,
}

impl Overlay {
    /// Mounts it, with `files` (name, mode, contents) in the lower layer (the image); `None`
    /// (skip) when overlayfs cannot be mounted and `D4C_REQUIRE_BPF_LSM` is not set.
    pub fn mount(dir: &TestDir, files: &[(&str, u32, &[u8])]) -> Option<Self> {
        use std::os::unix::fs::PermissionsExt;
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir(dir.path.join(d)).unwrap();
        }
        let lower = dir.path.join("lower");
        for &(name, mode, bytes) in files {
            let p = lower.join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let opts = CString::new(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            dir.path.join("upper").display(),
            dir.path.join("work").display()
        ))
        .unwrap();
        let merged = dir.path.join("merged");
        let m = c(&merged);
        // SAFETY: NUL-terminated strings.
        let r = unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                m.as_ptr(),
                c"overlay".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            let e = errno();
            assert!(
                !required(),
                "D4C_REQUIRE_BPF_LSM=1 but overlayfs: errno {e}"
            );
            eprintln!("skipping test - cannot mount overlayfs: errno {e}");
            return None;
        }
        Some(Overlay { lower, merged })
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::umount2(c(&self.merged).as_ptr(), libc::MNT_DETACH) };
    }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: the errno when it returns.
pub fn execveat_empty(fd: i32, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> i32 {
    assert!(argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: NULL-terminated arrays of NUL-terminated strings (checked above: the last
    // pointer of each is NULL).
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    errno()
}

pub fn c(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// In a forked child: forks once more and waits; 0 when the fork worked, else its errno.
pub fn fork_and_wait() -> i32 {
    // SAFETY: plain fork and wait; the grandchild exits at once.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        if pid < 0 {
            errno()
        } else {
            wait(pid)
        }
    }
}

/// Runs `f` in a forked child that first joins `cgroup` (None: stays where it is); returns
/// what `f` returned (0 for success, else an errno). The child avoids allocation.
pub fn run_in(cgroup: Option<&Path>, f: impl FnOnce() -> i32) -> i32 {
    let procs = cgroup.map(|cg| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(cg.join("cgroup.procs"))
            .unwrap()
    });
    // SAFETY: the child only makes syscalls and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", errno());
    if pid == 0 {
        if let Some(f) = &procs {
            // SAFETY: a valid fd and a 1-byte buffer.
            if unsafe { libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
                unsafe { libc::_exit(200) };
            }
        }
        let rc = f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(rc & 0xff) };
    }
    wait(pid)
}

pub fn wait(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    libc::WEXITSTATUS(status)
}

/// `0` if `r` is not negative, else errno.
pub fn rc(r: i64) -> i32 {
    if r < 0 {
        errno()
    } else {
        0
    }
}

/// A file rule answering every path of `rule_set` (the empty prefix): `actions` for each
/// op in `ops`, in every rest class.
pub fn everywhere(rule_set: u32, ops: &[usize], actions: u8) -> (PathKey, FileRule) {
    rule_at(rule_set, b"", &[0, 1, 2], ops, actions)
}

/// A file rule for prefix `prefix`, with `actions` for `ops` in the rest classes `classes`.
pub fn rule_at(
    rule_set: u32,
    prefix: &[u8],
    classes: &[usize],
    ops: &[usize],
    actions: u8,
) -> (PathKey, FileRule) {
    let mut v = FileRule {
        prefix_len: u16::try_from(prefix.len()).unwrap(),
        pad: [0; 2],
        actions: [[0; FILE_OP_SLOTS]; REST_CLASSES],
    };
    for &cl in classes {
        for &op in ops {
            v.actions[cl][op] = actions;
        }
    }
    (PathKey::new(rule_set, prefix), v)
}

/// An empty-prefix entry with no action (every rule set needs one).
pub fn root_entry(rule_set: u32) -> (PathKey, FileRule) {
    everywhere(rule_set, &[], 0)
}

/// A fresh rule-set id for one test.
pub fn rule_set_id() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Registers `cg` under `rule_set`.
pub fn register(k: &mut Shared, cg: &TestCgroup, rule_set: u32) {
    k.enforcer()
        .register(cg.id(), ContainerEntry::new(rule_set, cg.id()))
        .unwrap();
}

pub fn ev_path(ev: &Event) -> String {
    String::from_utf8_lossy(d4c::bpf::path(ev)).into_owned()
}

pub fn ev_comm(ev: &Event) -> String {
    String::from_utf8_lossy(d4c::bpf::comm(ev)).into_owned()
}

pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}
