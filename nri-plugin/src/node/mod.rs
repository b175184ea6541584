//! What a node gives d4c (`d4c doctor`): the kernel (version, BTF, cgroup v2, the LSM
//! list, the preemption model), the attach mode `auto` picks and whether its blocking is
//! guaranteed there ([`sound`]), the container runtime's NRI ([`runtime`]), d4c's own
//! pins, and for each problem the fix for the node's OS. Read from the files a node shows,
//! below a root (`/`, or where the host's are mounted in a pod).

pub mod preempt;
mod problems;
pub mod runtime;
pub mod sound;
mod text;

pub use problems::Problem;
pub use text::text;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bpf::{AttachMode, AttachRequest};
use preempt::Sources;
use problems::{problems, Node};
use sound::Verdict;

/// Where the node's files are.
#[derive(Clone, Debug)]
pub struct Host {
    /// The node's root (`/`); the host's `/proc`, `/sys`, `/etc` and `/boot` below it.
    pub root: PathBuf,
    /// d4c's pin directory.
    pub pin_dir: PathBuf,
    /// Read `/proc` and `/sys` files missing below `root` where this process sees them:
    /// the same kernel's (a pod mounts only part of the host's).
    pub own_kernel_view: bool,
}

/// The variable naming where the host's files are mounted in a pod (the `DaemonSet` sets
/// `/host`); `/` without it.
pub const HOST_ROOT_ENV: &str = "D4C_HOST_ROOT";

impl Host {
    /// The node d4c runs on: its files below `$D4C_HOST_ROOT` (or `/`), its pins at `pin_dir`.
    #[must_use]
    pub fn here(pin_dir: &Path) -> Host {
        Host {
            root: std::env::var_os(HOST_ROOT_ENV)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("/"), PathBuf::from),
            pin_dir: pin_dir.to_owned(),
            own_kernel_view: true,
        }
    }

    /// The node's file at `path` (absolute): below `root`, else, for `/proc` and `/sys`
    /// with `own_kernel_view`, where this process sees it.
    fn file(&self, path: &str) -> PathBuf {
        let p = self.root.join(path.trim_start_matches('/'));
        if self.own_kernel_view
            && !p.exists()
            && (path.starts_with("/proc/") || path.starts_with("/sys/"))
        {
            return PathBuf::from(path);
        }
        p
    }
}

/// d4c's own state on the node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pins {
    /// Programs are pinned.
    pub loaded: bool,
    /// How they are attached.
    pub mode: Option<String>,
    /// The builds that pinned them.
    pub builds: Vec<String>,
    /// Hook calls the kernel skipped so far (`fmod_ret` on a preemptible kernel).
    pub skipped_runs: Option<u64>,
}

/// Everything `d4c doctor` says.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Whether blocking is guaranteed here (`None`: cannot tell).
    pub sound: Option<bool>,
    /// Why.
    pub why: String,
    /// The attach mode `auto` picks (`None`: neither is possible).
    pub mode: Option<String>,
    /// `uname -r`.
    pub kernel: String,
    /// The version, as exact as the node says.
    pub version: Option<String>,
    pub btf: bool,
    pub cgroup_v2: bool,
    /// The active LSMs.
    pub lsm: Option<String>,
    /// The preemption model and where it was read.
    pub preemption: Option<String>,
    pub preemption_source: String,
    /// `/etc/os-release`: `ID` and `PRETTY_NAME`.
    pub os_id: Option<String>,
    pub os: Option<String>,
    pub runtime: runtime::Runtime,
    pub d4c: Pins,
    pub problems: Vec<Problem>,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn uname() -> (String, String) {
    // SAFETY: uname fills the struct we pass.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&raw mut u) } != 0 {
        return (String::new(), String::new());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c.cast_unsigned())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.release), field(&u.version))
}

/// `KEY=value` of an os-release file (quotes removed).
pub(crate) fn os_release(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_owned())
}

/// The kernel's config: `/boot/config-RELEASE`, else `/proc/config.gz`.
fn kernel_config(host: &Host, release: &str) -> Option<String> {
    if let Some(c) = read(&host.file(&format!("/boot/config-{release}"))) {
        return Some(c);
    }
    let gz = std::fs::File::open(host.file("/proc/config.gz")).ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut text).ok()?;
    Some(text)
}

/// Looks at the node, judging the attach mode `auto` picks.
#[must_use]
pub fn inspect(host: &Host) -> Report {
    inspect_for(host, None)
}

/// Looks at the node, judging blocking in `mode` (`None`: the mode `auto` picks).
#[must_use]
pub fn inspect_for(host: &Host, mode: Option<AttachMode>) -> Report {
    let root = &host.root;
    let (release, build) = uname();
    let version = preempt::version(
        &release,
        &build,
        read(&host.file("/proc/version_signature")).as_deref(),
    );
    let cmdline = read(&host.file("/proc/cmdline")).unwrap_or_default();
    let debugfs = read(&host.file(crate::paths::PREEMPT_MODEL));
    let config = kernel_config(host, &release);
    let preemption = preempt::model(&Sources {
        debugfs: debugfs.as_deref(),
        config: config.as_deref(),
        cmdline: &cmdline,
        build: &build,
        version,
    });
    let lsm_path = host.file(crate::paths::LSM_LIST);
    let lsm = read(&lsm_path).map(|l| l.trim().to_owned());
    let btf = host.file("/sys/kernel/btf/vmlinux").exists();
    let cgroup_v2 = crate::cgroup::v2_root().is_ok();
    let mode = mode.or_else(|| {
        btf.then(|| AttachRequest::Auto.resolve(&lsm_path).ok())
            .flatten()
    });
    let verdict = match mode {
        Some(m) => sound::judge(m, version, &preemption),
        None => Verdict {
            sound: Some(false),
            why: "d4c cannot attach here: no kernel BTF".into(),
            remedies: Vec::new(),
            voluntary_possible: false,
        },
    };
    let os_text = read(&root.join("etc/os-release")).unwrap_or_default();
    let os_id = os_release(&os_text, "ID");
    let runtime = runtime::read(
        root,
        Path::new(crate::paths::NRI_SOCKET),
        &format!("50-{}", "d4c"),
    );
    let d4c = pins(&host.pin_dir);
    let mut problems = problems(
        &verdict,
        &Node {
            os_id: os_id.as_deref(),
            lsm: lsm.as_deref(),
            btf,
            cgroup_v2,
            runtime: &runtime,
        },
    );
    // The programs pinned now may attach in another mode than the one judged.
    if let Some(pinned) = crate::bpf::pinned_mode(&host.pin_dir).filter(|p| Some(*p) != mode) {
        let v = sound::judge(pinned, version, &preemption);
        if v.sound != Some(true) {
            problems.push(Problem {
                what: format!(
                    "the programs pinned now attach as {}, and their blocking is not guaranteed: {}",
                    pinned.name(),
                    v.why
                ),
                fix: "`d4c unload` (after stopping the daemon) and start d4c again once the node is fixed".into(),
            });
        }
    }
    Report {
        sound: verdict.sound,
        why: verdict.why,
        mode: mode.map(|m| m.name().to_owned()),
        kernel: release,
        version: version.map(|v| v.to_string()),
        btf,
        cgroup_v2,
        lsm,
        preemption: preemption.model,
        preemption_source: preemption.source,
        os_id,
        os: os_release(&os_text, "PRETTY_NAME"),
        runtime,
        d4c,
        problems,
    }
}

fn pins(pin_dir: &Path) -> Pins {
    if !pin_dir.exists() {
        return Pins::default();
    }
    Pins {
        loaded: crate::bpf::links_dir(pin_dir).exists(),
        mode: crate::bpf::pinned_mode(pin_dir).map(|m| m.name().to_owned()),
        builds: crate::bpf::pinned_builds(pin_dir)
            .iter()
            .map(|b| format!("{b:016x}"))
            .collect(),
        skipped_runs: crate::bpf::skipped_runs(pin_dir).ok(),
    }
}

/// The mode a loader asking for `request` ends in: the pinned programs' where some are
/// pinned (they are adopted), else the mode `request` resolves to (`None`: none can load).
#[must_use]
pub fn planned_mode(request: AttachRequest, pin_dir: &Path) -> Option<AttachMode> {
    crate::bpf::pinned_mode(pin_dir).or_else(|| {
        request
            .resolve(&Host::here(pin_dir).file(crate::paths::LSM_LIST))
            .ok()
    })
}

/// Whether blocking in one attach mode is guaranteed on this node.
#[derive(Clone, Debug, Serialize)]
pub struct Soundness {
    /// `Some(true)`: guaranteed; `Some(false)`: not; `None`: cannot tell.
    pub sound: Option<bool>,
    /// Why.
    pub why: String,
    /// What makes it guaranteed, where it is not.
    pub fix: Option<String>,
}

impl Soundness {
    /// As one line: `guaranteed: WHY` or `NOT guaranteed: WHY; fix: FIX`.
    #[must_use]
    pub fn line(&self) -> String {
        let fix = self
            .fix
            .as_ref()
            .map_or(String::new(), |f| format!("; fix: {f}"));
        match self.sound {
            Some(true) => format!("guaranteed: {}", self.why),
            Some(false) => format!("NOT guaranteed: {}{fix}", self.why),
            None => format!("cannot tell whether guaranteed: {}{fix}", self.why),
        }
    }
}

/// Whether blocking in `mode` is guaranteed on the node d4c runs on.
#[must_use]
pub fn soundness(mode: AttachMode) -> Soundness {
    let r = inspect_for(&Host::here(Path::new(crate::paths::PIN_DIR)), Some(mode));
    let fix = r
        .problems
        .iter()
        .find(|p| p.what.starts_with("blocking"))
        .map(|p| p.fix.clone());
    Soundness {
        sound: r.sound,
        why: r.why,
        fix,
    }
}

/// For the attach mode in force (the daemon, `d4c exec`): `None` when its blocking is
/// guaranteed here, else why not and the fix, as one line.
#[must_use]
pub fn unsound(mode: AttachMode) -> Option<String> {
    let s = soundness(mode);
    (s.sound != Some(true)).then(|| {
        format!(
            "{}{}",
            s.why,
            s.fix.map_or(String::new(), |f| format!("; fix: {f}"))
        )
    })
}

#[cfg(test)]
mod tests;
