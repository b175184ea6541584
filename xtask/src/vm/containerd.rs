//! `cargo xtask containerd`: a containerd release from Debian's packages, unpacked into
//! the harness cache (never installed): the end-to-end tests run against it next to the
//! host's containerd 1.7. Prints the directory holding its binaries.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::cache::Cache;
use super::{apt, debver, progress};

#[derive(Debug, Args)]
pub struct ContainerdArgs {
    /// The major version to fetch: the newest Debian package of it (sid has 2.x).
    #[arg(long, default_value = "2")]
    pub major: String,
}

/// Fetches (once) and unpacks the newest `containerd` package of `major`; returns the
/// directory with `containerd`, `containerd-shim-runc-v2` and `ctr`.
pub fn fetch(args: &ContainerdArgs) -> Result<PathBuf> {
    let cache = Cache::open()?;
    let _lock = cache.lock()?;
    if apt::ensure_sources()? {
        progress("updating apt package lists (apt-get update)");
        apt::update()?;
    }
    let prefix = format!("{}.", args.major);
    let pick = || -> Result<Option<apt::Candidate>> {
        Ok(apt::candidates("containerd", |n| n == "containerd")?
            .into_iter()
            .filter(|c| c.version.starts_with(&prefix))
            .max_by(|a, b| debver::compare(&a.version, &b.version)))
    };
    let c = if let Some(c) = pick()? {
        c
    } else {
        progress("updating apt package lists (apt-get update)");
        apt::update()?;
        pick()?.with_context(|| {
            format!("apt knows no containerd {prefix}x (`apt-cache madison containerd`)")
        })?
    };
    let dest = cache
        .dir("containerd")
        .join(super::kernel::safe_name(&c.version));
    let bin = dest.join("usr/bin");
    if bin.join("containerd").is_file() {
        return Ok(bin);
    }
    progress(format_args!(
        "downloading containerd {} ({})",
        c.version, c.suite
    ));
    let tmp = cache.temp_dir("containerd")?;
    apt::download(&[(c.package.clone(), c.version.clone())], tmp.path())?;
    let root = tmp.path().join("root");
    for deb in fs::read_dir(tmp.path())?.flatten().map(|e| e.path()) {
        if deb.extension().is_some_and(|e| e == "deb") {
            let status = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&root)
                .status()?;
            if !status.success() {
                bail!("dpkg-deb -x {} failed", deb.display());
            }
        }
    }
    if !root.join("usr/bin/containerd").is_file() {
        bail!(
            "the containerd {} package has no usr/bin/containerd",
            c.version
        );
    }
    fs::rename(&root, &dest).with_context(|| format!("cannot create {}", dest.display()))?;
    Ok(bin)
}
