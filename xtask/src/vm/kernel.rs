//! Stock Debian cloud kernels for the guest: which package `--kernel` names, fetching it
//! with apt, and keeping vmlinuz, its config and the modules the guest loads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;

use super::cache::Cache;
use super::{apt, debver, modules, progress};

/// Modules the guest loads at boot, dependencies first (later tests run containerd,
/// which needs overlayfs).
const GUEST_MODULES: &[&str] = &["overlay"];

/// `apt-get update` when ours is older than this (sid moves fast and drops old kernels).
const LISTS_MAX_AGE: Duration = Duration::from_hours(7 * 24);
const APT_STAMP: &str = "apt-updated";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelChoice {
    /// Newest `linux-image-6.1.0-*-cloud-amd64` (bookworm, bookworm-security).
    #[value(name = "6.1")]
    V6_1,
    /// Newest `linux-image-6.12.*+deb12-cloud-amd64` (bookworm-security).
    #[value(name = "6.12")]
    V6_12,
    /// Newest cloud kernel in Debian sid (unstable).
    Newest,
}

impl KernelChoice {
    pub fn label(self) -> &'static str {
        match self {
            Self::V6_1 => "6.1",
            Self::V6_12 => "6.12",
            Self::Newest => "newest",
        }
    }

    /// `apt-cache pkgnames` prefix narrowing the search.
    fn prefix(self) -> &'static str {
        match self {
            Self::V6_1 => "linux-image-6.1.0-",
            Self::V6_12 => "linux-image-6.12.",
            Self::Newest => "linux-image-",
        }
    }

    fn matches_package(self, name: &str) -> bool {
        let between = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .map(str::to_owned)
        };
        let digits = |s: Option<String>| {
            s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        match self {
            Self::V6_1 => digits(between("linux-image-6.1.0-", "-cloud-amd64")),
            Self::V6_12 => digits(between("linux-image-6.12.", "+deb12-cloud-amd64")),
            Self::Newest => between("linux-image-", "-cloud-amd64").is_some_and(|v| {
                v.starts_with(|c: char| c.is_ascii_digit()) && !v.contains("-unsigned")
            }),
        }
    }

    fn matches_suite(self, suite: &str) -> bool {
        match self {
            Self::V6_1 => suite.starts_with("bookworm"),
            Self::V6_12 => suite == "bookworm-security" || suite.starts_with("bookworm"),
            Self::Newest => suite == "sid" || suite == "unstable",
        }
    }

    /// The newest matching package among `candidates`.
    fn pick(self, candidates: &[apt::Candidate]) -> Option<&apt::Candidate> {
        candidates
            .iter()
            .filter(|c| self.matches_package(&c.package) && self.matches_suite(&c.suite))
            .max_by(|a, b| debver::compare(&a.version, &b.version))
    }
}

/// A kernel ready to boot, kept in `<cache>/kernels/<package>_<version>/`.
#[derive(Debug)]
pub struct Kernel {
    pub label: &'static str,
    /// `uname -r` of the kernel.
    pub release: String,
    pub dir: PathBuf,
}

impl Kernel {
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// Uncompressed modules to `insmod`, in load order.
    pub fn modules(&self) -> Result<Vec<PathBuf>> {
        let order = fs::read_to_string(self.dir.join("modules/order"))?;
        Ok(order
            .lines()
            .map(|m| self.dir.join("modules").join(m))
            .collect())
    }
}

/// Resolves `choice` to a package and makes sure it is unpacked in the cache.
/// The caller holds the cache lock.
pub fn prepare(cache: &Cache, choice: KernelChoice) -> Result<Kernel> {
    // `<label>.resolved`: the apt lists' fingerprint, then `package=version`.
    let memo_path = cache
        .dir("kernels")
        .join(format!("{}.resolved", choice.label()));
    let memo = fs::read_to_string(&memo_path).unwrap_or_default();
    let mut memo = memo.lines();
    let (memo_lists, memo_package) = (
        memo.next().unwrap_or_default(),
        memo.next().and_then(|l| l.split_once('=')),
    );
    let (package, version) = match resolve(cache, choice, memo_lists, memo_package) {
        Ok(found) => found,
        Err(err) => {
            // Offline, or apt unusable: fall back to the kernel this choice last resolved to.
            let Some((p, v)) = memo_package else {
                return Err(err);
            };
            progress(format_args!(
                "cannot ask apt for kernel {} ({}); using {p} {v} from the cache",
                choice.label(),
                first_line(&err)
            ));
            (p.to_owned(), v.to_owned())
        }
    };
    let dir = cache
        .dir("kernels")
        .join(safe_name(&format!("{package}_{version}")));
    if !dir.join("release").exists() {
        let debs = download(cache, &package, &version)?;
        progress(format_args!("unpacking {package} {version}"));
        unpack(cache, &debs, &dir).with_context(|| format!("cannot unpack {package} {version}"))?;
    }
    fs::write(
        &memo_path,
        format!("{}\n{package}={version}\n", apt::lists_fingerprint()),
    )?;
    let release = fs::read_to_string(dir.join("release"))?.trim().to_owned();
    Ok(Kernel {
        label: choice.label(),
        release,
        dir,
    })
}

/// Finds the newest package for `choice` in the host's apt lists, updating them when
/// our sources are new, the lists are older than a week, or nothing matches. The
/// answer for unchanged lists is `memo` (fingerprint, `(package, version)`).
fn resolve(
    cache: &Cache,
    choice: KernelChoice,
    memo_lists: &str,
    memo: Option<(&str, &str)>,
) -> Result<(String, String)> {
    let mut updated = false;
    if apt::ensure_sources()? || !cache.stamp_is_fresh(APT_STAMP, LISTS_MAX_AGE) {
        apt_update(cache)?;
        updated = true;
    }
    if let Some((package, version)) = memo.filter(|_| memo_lists == apt::lists_fingerprint()) {
        return Ok((package.to_owned(), version.to_owned()));
    }
    loop {
        let candidates = apt::candidates(choice.prefix(), |n| choice.matches_package(n))?;
        if let Some(c) = choice.pick(&candidates) {
            return Ok((c.package.clone(), c.version.clone()));
        }
        if updated {
            bail!(
                "apt knows no package for kernel {} (see `apt-cache pkgnames {}`)",
                choice.label(),
                choice.prefix()
            );
        }
        apt_update(cache)?;
        updated = true;
    }
}

fn apt_update(cache: &Cache) -> Result<()> {
    progress("updating apt package lists (apt-get update)");
    apt::update()?;
    cache.touch_stamp(APT_STAMP)
}

/// Downloads the package and its exact-version parts into `<cache>/debs/<package>_<version>/`.
fn download(cache: &Cache, package: &str, version: &str) -> Result<PathBuf> {
    let dir = cache
        .dir("debs")
        .join(safe_name(&format!("{package}_{version}")));
    if dir.exists() {
        return Ok(dir);
    }
    let mut wanted = vec![(package.to_owned(), version.to_owned())];
    wanted.extend(
        apt::exact_dependencies(package, version)?
            .into_iter()
            .map(|p| (p, version.to_owned())),
    );
    let names: Vec<&str> = wanted.iter().map(|(p, _)| p.as_str()).collect();
    progress(format_args!(
        "downloading kernel {version}: {}",
        names.join(" ")
    ));
    let tmp = cache.temp_dir("debs")?;
    if let Err(err) = apt::download(&wanted, tmp.path()) {
        // Stale lists point at versions the mirror no longer has: refresh once and retry.
        progress(format_args!(
            "download failed ({}); refreshing apt lists and retrying",
            first_line(&err)
        ));
        apt_update(cache)?;
        apt::download(&wanted, tmp.path())?;
    }
    fs::rename(tmp.path(), &dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Extracts the debs and keeps vmlinuz, config, release and the guest's modules.
fn unpack(cache: &Cache, debs: &Path, dest: &Path) -> Result<()> {
    let tmp = cache.temp_dir("kernels")?;
    let root = tmp.path().join("root");
    let mut entries: Vec<PathBuf> = fs::read_dir(debs)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for deb in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
    {
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(&root)
            .status()?;
        if !status.success() {
            bail!("dpkg-deb -x {} failed", deb.display());
        }
    }
    let modules_root = ["usr/lib/modules", "lib/modules"]
        .iter()
        .filter_map(|d| fs::read_dir(root.join(d)).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .find(|p| p.join("kernel").is_dir())
        .ok_or_else(|| anyhow!("no lib/modules/<release>/kernel in the packages"))?;
    let release = modules_root
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let find = |name: &str| {
        [
            modules_root.join(name),
            root.join(format!("boot/{name}-{release}")),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("no {name} for {release} in the packages"))
    };
    let out = tmp.path().join("kernel");
    fs::create_dir_all(out.join("modules"))?;
    fs::copy(find("vmlinuz")?, out.join("vmlinuz"))?;
    fs::copy(find("config")?, out.join("config"))?;

    let order = modules::extract(
        &modules_root.join("kernel"),
        GUEST_MODULES,
        &out.join("modules"),
    )?;
    fs::write(
        out.join("modules/order"),
        order
            .iter()
            .map(|m| m.clone() + ".ko\n")
            .collect::<String>(),
    )?;
    fs::write(out.join("release"), format!("{release}\n"))?;
    fs::rename(&out, dest).with_context(|| format!("cannot create {}", dest.display()))?;
    Ok(())
}

/// A file name for `s`: keeps `[A-Za-z0-9.+_-]`, replaces the rest with `_`.
pub(super) fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn first_line(err: &anyhow::Error) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(package: &str, version: &str, suite: &str) -> apt::Candidate {
        apt::Candidate {
            package: package.into(),
            version: version.into(),
            suite: suite.into(),
        }
    }

    #[test]
    fn picks_the_newest_matching_package() {
        let all = [
            candidate("linux-image-6.1.0-55-cloud-amd64", "6.1.176-1", "bookworm"),
            candidate(
                "linux-image-6.1.0-56-cloud-amd64",
                "6.1.192-2",
                "bookworm-security",
            ),
            candidate(
                "linux-image-6.1.0-56-cloud-amd64-unsigned",
                "6.1.193-1",
                "bookworm-security",
            ),
            candidate(
                "linux-image-6.12.115+deb12-cloud-amd64",
                "6.12.115-2~deb12u1",
                "bookworm-security",
            ),
            candidate(
                "linux-image-6.12.117+deb12-cloud-amd64",
                "6.12.117-1~deb12u1",
                "bookworm-security",
            ),
            candidate(
                "linux-image-6.12.117+deb13-cloud-amd64",
                "6.12.117-1",
                "trixie",
            ),
            candidate("linux-image-7.2.13+deb14-cloud-amd64", "7.2.13-1", "sid"),
            candidate("linux-image-7.2.9+deb14-cloud-amd64", "7.2.9-1", "sid"),
            candidate("linux-image-cloud-amd64", "7.2.13-1", "sid"),
        ];
        let pick = |c: KernelChoice| c.pick(&all).map(|c| c.package.as_str());
        assert_eq!(
            pick(KernelChoice::V6_1),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(
            pick(KernelChoice::V6_12),
            Some("linux-image-6.12.117+deb12-cloud-amd64")
        );
        assert_eq!(
            pick(KernelChoice::Newest),
            Some("linux-image-7.2.13+deb14-cloud-amd64")
        );
    }

    #[test]
    fn names_are_safe() {
        assert_eq!(
            safe_name("linux-image-6.12.117+deb12-cloud-amd64_6.12.117-1~deb12u1"),
            "linux-image-6.12.117+deb12-cloud-amd64_6.12.117-1_deb12u1"
        );
    }
}
