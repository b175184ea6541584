//! A private containerd 1.7 with NRI for end-to-end tests: scratch directory, config,
//! images, a CRI client, and a guard that tears everything down (pods first, then
//! containerd, mounts, the scratch directory and the test's cgroup directories).
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

pub mod daemon;
pub mod daemonset;
pub mod exec_run;
pub mod guest;
pub mod manifest;
pub mod pods;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Why this machine cannot run the test, if it cannot; panics instead of skipping when
/// `D4C_REQUIRE_CONTAINERD=1`.
pub fn skip_reason() -> Option<String> {
    let reason = missing_prerequisite();
    if let Some(r) = &reason {
        assert!(
            std::env::var("D4C_REQUIRE_CONTAINERD").as_deref() != Ok("1"),
            "D4C_REQUIRE_CONTAINERD=1 but {r}"
        );
        println!("skipping test - {r}");
    }
    reason
}

/// What this machine lacks for a private containerd, if anything (no skip message, no
/// panic: the caller decides; the guest tests have their own `D4C_REQUIRE_*` variable).
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    let version = Command::new("containerd").arg("--version").output();
    match version {
        Err(_) => return Some("no containerd (run tests/containerd/setup.sh)".into()),
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains(" 1.6") => {
            return Some("containerd 1.6 has no NRI (run tests/containerd/setup.sh)".into());
        }
        Ok(_) => {}
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return Some("no runc".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no busybox (Debian's busybox-static)".into());
    }
    if !setup_dir().join("containerd.toml").is_file() {
        return Some(format!(
            "no containerd.toml in {} (D4C_CONTAINERD_DIR)",
            setup_dir().display()
        ));
    }
    if !prebuilt_images() && Command::new("python3").arg("-V").output().is_err() {
        return Some(format!(
            "no python3 (builds the test image) and no prebuilt image archives in {}",
            setup_dir().display()
        ));
    }
    if !d4c::cgroup::v2_root().is_ok_and(|r| r.join("cgroup.procs").exists()) {
        return Some("no cgroup v2 hierarchy".into());
    }
    None
}

/// The cgroup v2 hierarchy (unified or the `unified` child of a hybrid layout), found
/// as the daemon finds it; [`skip_reason`] checks that there is one.
pub fn cgroup2_root() -> PathBuf {
    d4c::cgroup::v2_root().expect("a cgroup v2 hierarchy (skip_reason checks it)")
}

/// The directory of the containerd test files (`containerd.toml`, `runc-guard.sh`,
/// `mkimage.py`, optionally prebuilt image archives): `$D4C_CONTAINERD_DIR` when set (a
/// guest has no checkout and no python3: `scripts/guest-e2e.sh` prepares such a directory),
/// else `tests/containerd` of this checkout.
pub fn setup_dir() -> PathBuf {
    std::env::var_os("D4C_CONTAINERD_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("containerd"),
            PathBuf::from,
        )
}

/// The policy the end-to-end tests add: block (and alert on) creating or changing an
/// executable in pods labelled `d4c-test: protect`.
pub const PROTECT_POLICY: &str = "\
file:
  selectors:
    - name: drift
      operation: [createExecutable, modifyExecutable]
      kubernetesPodLabel: ['d4c-test:protect']
  responses:
    - match: [drift]
      actions: [alert, block]
";

/// The test images: name and entrypoint.
pub const IMAGES: [(&str, &[&str]); 2] = [
    ("docker.io/d4c/busybox:1", &["/bin/sh"]),
    ("docker.io/d4c/pause:1", &["/bin/sleep", "2147483647"]),
];

/// The archive name of an image (`docker.io_d4c_busybox_1.tar`), as `mkimage.py` output.
pub fn image_tar_name(name: &str) -> String {
    format!("{}.tar", name.replace(['/', ':'], "_"))
}

/// Whether `setup_dir()` holds every image archive already built (no python3 needed).
fn prebuilt_images() -> bool {
    IMAGES
        .iter()
        .all(|(name, _)| setup_dir().join(image_tar_name(name)).is_file())
}

/// A unique short id per test in this process.
pub fn unique_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running private containerd. Dropping it stops containerd and removes its state.
pub struct Containerd {
    pub scratch: PathBuf,
    /// Absolute cgroup parent under which this test's pods live: `/d4c-test-<id>`.
    pub cgroup_base: String,
    child: Child,
}

impl Containerd {
    /// Writes the config, starts containerd, imports the busybox and pause images.
    pub fn start(id: &str) -> Containerd {
        let scratch = PathBuf::from(format!("/tmp/d4c-ctd-{id}"));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(scratch.join("logs")).unwrap();
        let s = scratch.to_str().unwrap();
        let template = std::fs::read_to_string(setup_dir().join("containerd.toml")).unwrap();
        std::fs::write(
            scratch.join("config.toml"),
            template.replace("@SCRATCH@", s),
        )
        .unwrap();
        std::fs::copy(
            setup_dir().join("runc-guard.sh"),
            scratch.join("runc-guard.sh"),
        )
        .unwrap();
        std::fs::set_permissions(
            scratch.join("runc-guard.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let log = std::fs::File::create(scratch.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(scratch.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let ctd = Containerd {
            scratch,
            cgroup_base: format!("/d4c-test-{id}"),
            child,
        };
        let t = Instant::now();
        while !(ctd.socket().exists() && ctd.nri_socket().exists()) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "containerd did not start: {}",
                ctd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for (name, entry) in IMAGES {
            let prebuilt = setup_dir().join(image_tar_name(name));
            let tar = if prebuilt.is_file() {
                prebuilt
            } else {
                let tar = ctd.scratch.join(image_tar_name(name));
                run(Command::new("python3")
                    .arg(setup_dir().join("mkimage.py"))
                    .arg(&tar)
                    .arg(name)
                    .args(entry));
                tar
            };
            run(Command::new("ctr")
                .arg("-a")
                .arg(ctd.socket())
                .args(["-n", "k8s.io", "images", "import"])
                .arg(&tar));
        }
        ctd
    }

    /// Imports an OCI image archive into the k8s.io namespace (where CRI looks).
    pub fn import(&self, tar: &Path) {
        run(Command::new("ctr")
            .arg("-a")
            .arg(self.socket())
            .args(["-n", "k8s.io", "images", "import"])
            .arg(tar));
    }

    pub fn socket(&self) -> PathBuf {
        self.scratch.join("containerd.sock")
    }

    /// Stops containerd (its containers and shims keep running) and starts it again on
    /// the same state; returns once its sockets are back.
    pub fn restart(&mut self) {
        self.stop_daemon();
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_file(self.nri_socket());
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.scratch.join("containerd.log"))
            .unwrap();
        self.child = Command::new("containerd")
            .arg("--config")
            .arg(self.scratch.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !(self.socket().exists() && self.nri_socket().exists()) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "containerd did not restart: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop_daemon(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap_or(0), libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn nri_socket(&self) -> PathBuf {
        self.scratch.join("nri.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.join("containerd.log")).unwrap_or_default()
    }

    /// A CRI runtime-service client.
    pub async fn cri(&self) -> RuntimeServiceClient<Channel> {
        let path = self.socket();
        let channel =
            Endpoint::try_from("http://[::]:0")
                .unwrap()
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .unwrap();
        RuntimeServiceClient::new(channel)
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop_daemon();
        unmount_below(&self.scratch);
        let _ = std::fs::remove_dir_all(&self.scratch);
        remove_cgroups(&self.cgroup_base);
    }
}

/// Unmounts everything mounted below `dir` (deepest first).
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).unwrap();
        // SAFETY: a NUL-terminated path; MNT_DETACH only detaches.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Removes the (empty) cgroup directories runc created for `/d4c-test-<id>` in every
/// hierarchy, deepest first. Only that directory is touched: never anything else, and
/// never the machine's own `/process_api`.
fn remove_cgroups(base: &str) {
    assert!(
        base.starts_with("/d4c-test-") && !base[1..].contains('/'),
        "{base}"
    );
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let top = h.path().join(&base[1..]);
        if top.is_dir() {
            remove_tree(&top);
        }
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A guest's root has no /etc/hosts or /etc/resolv.conf (containerd copies both into
/// host-network pods) and no /etc/os-release. Writes them only where missing.
pub fn ensure_etc_files() {
    for (file, content) in [
        ("/etc/hosts", "127.0.0.1 localhost\n"),
        ("/etc/resolv.conf", ""),
        // A node has one; the DaemonSet mounts it (the OS `d4c doctor` names fixes for).
        (
            "/etc/os-release",
            "ID=debian\nPRETTY_NAME=\"d4c test guest\"\n",
        ),
    ] {
        if !Path::new(file).exists() {
            std::fs::write(file, content).unwrap();
        }
    }
}
