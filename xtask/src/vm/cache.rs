//! The harness cache (`${D4C_CACHE_DIR:-/var/cache/d4c}`): kernels, downloaded packages
//! and initramfs bases, shared by every checkout on the machine.
//!
//! Writers hold an exclusive `flock` on `<cache>/lock`, build under a `.tmp-*` name and
//! rename into place, so a finished entry is complete and concurrent runs never see
//! half-written files.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rustix::fs::{flock, FlockOperation};

const DEFAULT_DIR: &str = "/var/cache/d4c";

pub struct Cache {
    root: PathBuf,
}

/// Held while preparing cache entries; dropping it releases the lock.
pub struct CacheLock(#[allow(dead_code)] File);

impl Cache {
    pub fn open() -> Result<Self> {
        let root = std::env::var_os("D4C_CACHE_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
        for sub in ["", "debs", "kernels", "initramfs", "containerd"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(Self { root })
    }

    pub fn dir(&self, sub: &str) -> PathBuf {
        self.root.join(sub)
    }

    /// Takes the cache lock (waiting for other runs) and removes temporary entries that
    /// runs killed mid-way left behind.
    pub fn lock(&self) -> Result<CacheLock> {
        let path = self.root.join("lock");
        let file =
            File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            super::progress(format_args!(
                "waiting for another run to release {}",
                path.display()
            ));
            flock(&file, FlockOperation::LockExclusive)
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        for sub in ["debs", "kernels", "initramfs", "containerd"] {
            remove_temporaries(&self.root.join(sub));
        }
        Ok(CacheLock(file))
    }

    /// A fresh temporary directory inside `sub`, to be renamed into place when complete.
    pub fn temp_dir(&self, sub: &str) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(self.root.join(sub))
            .with_context(|| {
                format!(
                    "cannot create a temporary directory in {}",
                    self.root.join(sub).display()
                )
            })
    }

    /// Whether the marker file `name` was touched less than `max_age` ago.
    pub fn stamp_is_fresh(&self, name: &str, max_age: Duration) -> bool {
        fs::metadata(self.root.join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < max_age)
    }

    pub fn touch_stamp(&self, name: &str) -> Result<()> {
        fs::write(self.root.join(name), b"").with_context(|| format!("cannot write stamp {name}"))
    }
}

fn remove_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let path = entry.path();
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
    }
}
