//! The host's apt, used only to find and download Debian kernel packages.
//!
//! Debian sid is added as an apt source pinned at priority -1, so `apt-cache` sees its
//! kernels and `apt-get download` fetches them, but nothing is ever installed from it.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

const LISTS_DIR: &str = "/var/lib/apt/lists";
const SOURCES_FILE: &str = "/etc/apt/sources.list.d/d4c-kernels.sources";
const PIN_FILE: &str = "/etc/apt/preferences.d/d4c-kernels";

const SOURCES: &str = "\
# Added by d4c's `cargo xtask vm`: Debian sid, only to download its newest cloud kernel
# (apt-get download + dpkg-deb -x). Pinned at -1 in /etc/apt/preferences.d/d4c-kernels,
# so nothing is ever installed from it.
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

const PIN: &str = "\
# Added by d4c's `cargo xtask vm`: never install anything from Debian sid.
Package: *
Pin: release n=sid
Pin-Priority: -1

Package: *
Pin: release a=unstable
Pin-Priority: -1
";

/// One available version of a package, as `apt-cache madison` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub package: String,
    pub version: String,
    /// The suite, e.g. `bookworm-security` or `sid`.
    pub suite: String,
}

/// Writes the sid source and its pin unless they are already there; true if it wrote.
pub fn ensure_sources() -> Result<bool> {
    let mut changed = false;
    for (path, content) in [(SOURCES_FILE, SOURCES), (PIN_FILE, PIN)] {
        if fs::read_to_string(path).ok().as_deref() == Some(content) {
            continue;
        }
        let tmp = format!("{path}.tmp-d4c");
        fs::write(&tmp, content)
            .and_then(|()| fs::rename(&tmp, path))
            .with_context(|| format!("cannot write {path} (run as root)"))?;
        changed = true;
    }
    Ok(changed)
}

/// Changes whenever `apt-get update` changed the package lists: a memo key for answers
/// derived from them (`apt-cache` takes a second or two per call on hosts that, like
/// Debian's container images, keep no binary package cache).
pub fn lists_fingerprint() -> String {
    let mut entries: Vec<(String, u64, u128)> = fs::read_dir(LISTS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_file() && m.len() > 0)?;
            let mtime = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            Some((
                e.file_name().to_string_lossy().into_owned(),
                meta.len(),
                mtime,
            ))
        })
        .collect();
    entries.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    entries.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// `apt-get update`.
pub fn update() -> Result<()> {
    run(Command::new("apt-get").args(["-q", "-o", "DPkg::Lock::Timeout=300", "update"])).map(drop)
}

/// Every version of every package whose name starts with `prefix`.
pub fn candidates(prefix: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<Candidate>> {
    let names = run(Command::new("apt-cache").args(["pkgnames", prefix]))?;
    let names: Vec<&str> = names.lines().map(str::trim).filter(|n| keep(n)).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let out = run(Command::new("apt-cache").arg("madison").args(&names))?;
    Ok(parse_madison(&out))
}

/// The packages `package=version` depends on at exactly its own version: the parts a
/// split kernel package (sid's `linux-image-*`) is made of.
pub fn exact_dependencies(package: &str, version: &str) -> Result<Vec<String>> {
    let out = run(Command::new("apt-cache").args(["show", &format!("{package}={version}")]))?;
    Ok(parse_exact_dependencies(&out, version))
}

/// `apt-get download NAME=VERSION...` into `dir`.
pub fn download(packages: &[(String, String)], dir: &Path) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.current_dir(dir)
        .args(["-q", "-o", "APT::Sandbox::User=root", "download"]);
    cmd.args(packages.iter().map(|(p, v)| format!("{p}={v}")));
    run(&mut cmd).map(drop)
}

/// Runs a command, returning its stdout; its output is kept out of ours (stdout belongs
/// to the guest command) and shown only when it fails.
fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses lines like `pkg | 6.1.192-2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages`.
fn parse_madison(out: &str) -> Vec<Candidate> {
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            let package = fields.next()?;
            let version = fields.next()?;
            let origin = fields.next()?;
            let suite = origin.split_whitespace().nth(1)?.split('/').next()?;
            Some(Candidate {
                package: package.into(),
                version: version.into(),
                suite: suite.into(),
            })
        })
        .collect()
}

fn parse_exact_dependencies(show: &str, version: &str) -> Vec<String> {
    let pin = format!("(= {version})");
    let Some(depends) = show.lines().find_map(|l| l.strip_prefix("Depends:")) else {
        return Vec::new();
    };
    depends
        .split(',')
        .filter_map(|dep| {
            let dep = dep.trim();
            if dep.contains('|') || !dep.ends_with(&pin) {
                return None;
            }
            dep.split_whitespace().next().map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_madison() {
        let out = "linux-image-cloud-amd64 |   7.2.13-1 | http://deb.debian.org/debian sid/main amd64 Packages\n\
                   linux-image-cloud-amd64 |  6.1.192-2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n";
        let c = parse_madison(out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].version, "7.2.13-1");
        assert_eq!(c[0].suite, "sid");
        assert_eq!(c[1].suite, "bookworm-security");
    }

    #[test]
    fn finds_split_kernel_parts() {
        let show = "Package: linux-image-7.2.13+deb14-cloud-amd64\nVersion: 7.2.13-1\n\
            Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
            linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), \
            linux-modules-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)\nRecommends: apparmor\n";
        assert_eq!(
            parse_exact_dependencies(show, "7.2.13-1"),
            [
                "linux-base-7.2.13+deb14-cloud-amd64",
                "linux-binary-7.2.13+deb14-cloud-amd64",
                "linux-modules-7.2.13+deb14-cloud-amd64"
            ]
        );
        assert!(
            parse_exact_dependencies("Depends: kmod, linux-base (>= 4.3~)\n", "6.1.192-2")
                .is_empty()
        );
    }
}
