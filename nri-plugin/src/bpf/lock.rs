//! Who may change what is pinned in a pin directory. Every d4c process of a node sees the
//! same bpffs whatever its mount namespace (the `DaemonSet`'s pod mounts the host's), so the
//! locks are `flock`s on directories there, each with a record naming its holder that a
//! waiting process can show:
//!
//! | lock | kind | held by | for |
//! |---|---|---|---|
//! | the pin directory itself | exclusive | a loader | a load, adoption, takeover, repair or unload |
//! | `locks/daemon` | exclusive | `d4c nri` | its lifetime: one daemon per pin directory |
//! | `locks/users` | shared | the daemon, each `d4c exec` | their lifetime: pins nobody else uses may be removed |
//! | `locks/ring-<n>` | exclusive | a `d4c exec` run | its lifetime: the run reads ring `n` |
//!
//! Records are symlinks whose target is the holder's description (bpffs holds
//! directories, symlinks and pins only). A lock is taken on the directory the path names
//! when it is taken: if the directory was removed meanwhile (an unload), the lock is taken
//! again on the new one.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use super::error::BpfError;

/// How long a loader waits for another by default: a load takes a few seconds (~5 s under
/// emulation); a daemon being stopped gets 30 s from Kubernetes.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting process tries again.
const RETRY: Duration = Duration::from_millis(50);

/// The sub-directory of the pin directory that holds the lock directories.
pub const LOCKS: &str = "locks";

/// What a d4c process is, for the records other processes show.
#[derive(Clone, Debug)]
pub struct Holder {
    /// `d4c nri`, `d4c exec`, `d4c unload`, ...
    pub what: String,
}

impl Holder {
    /// A holder described as `what` (the process id, host and time are added).
    #[must_use]
    pub fn new(what: impl Into<String>) -> Self {
        Holder { what: what.into() }
    }

    /// The record text: `d4c exec (pid 123 on node-a, since 2026-12-07T18:00:00Z)`.
    fn describe(&self) -> String {
        format!(
            "{} (pid {} on {}, since {})",
            self.what,
            std::process::id(),
            crate::alerts::clock::host_name(),
            crate::alerts::ecs::rfc3339(std::time::SystemTime::now())
        )
    }
}

/// A lock held until dropped; its record is removed first.
#[derive(Debug)]
pub struct Flock {
    fd: OwnedFd,
    record: Option<PathBuf>,
}

impl Drop for Flock {
    fn drop(&mut self) {
        // Before the descriptor closes (which releases the lock): a record removed after
        // would be the next holder's.
        if let Some(r) = &self.record {
            let _ = std::fs::remove_file(r);
        }
    }
}

impl Flock {
    /// Writes `text` as this holder's record at `at` (replacing a stale one).
    fn record(mut self, at: PathBuf, text: &str) -> Self {
        let _ = std::fs::remove_file(&at);
        if std::os::unix::fs::symlink(text, &at).is_ok() {
            self.record = Some(at);
        }
        self
    }

    /// Whether this lock is still on the directory `dir` names (not on one removed since).
    fn still_on(&self, dir: &Path) -> bool {
        let Ok(now) = std::fs::metadata(dir) else {
            return false;
        };
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes into `st`, read only when it succeeded.
        if unsafe { libc::fstat(self.fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return false;
        }
        // SAFETY: initialised by the successful fstat.
        let st = unsafe { st.assume_init() };
        now.ino() == st.st_ino && now.dev() == st.st_dev
    }
}

/// Exclusive or shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exclusive,
    Shared,
}

/// One non-blocking `flock` of the directory `dir`: `Ok(None)` when another holds it.
fn try_flock(dir: &Path, kind: Kind) -> io::Result<Option<Flock>> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened by us and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let op = match kind {
        Kind::Exclusive => libc::LOCK_EX,
        Kind::Shared => libc::LOCK_SH,
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(fd.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(Some(Flock { fd, record: None }));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Takes the lock on `dir` (created if missing), waiting up to `wait` for its holder;
/// says once, through `tracing`, whom it waits for. `Ok(None)`: still held after `wait`.
fn take(dir: &Path, kind: Kind, wait: Duration, record: &Path) -> Result<Option<Flock>, BpfError> {
    let start = Instant::now();
    let mut said = false;
    loop {
        std::fs::create_dir_all(dir).map_err(|source| io_error("create", dir, source))?;
        match try_flock(dir, kind).map_err(|source| io_error("lock", dir, source))? {
            Some(lock) if lock.still_on(dir) => return Ok(Some(lock)),
            // The directory was removed while we waited (an unload): lock the new one.
            Some(_) => {}
            None if start.elapsed() >= wait => return Ok(None),
            None => {
                if !said {
                    tracing::warn!(
                        "waiting up to {} s for {}: held by {}",
                        wait.as_secs(),
                        dir.display(),
                        read_record(record).unwrap_or_else(|| "another process".into())
                    );
                    said = true;
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

fn io_error(what: &'static str, path: &Path, source: io::Error) -> BpfError {
    BpfError::Io {
        what,
        path: path.into(),
        source,
    }
}

/// The text of the record at `at`, if there is one.
fn read_record(at: &Path) -> Option<String> {
    std::fs::read_link(at)
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

fn locks_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join(LOCKS)
}

/// Where the loader lock's holder is recorded.
fn loader_record(pin_dir: &Path) -> PathBuf {
    locks_dir(pin_dir).join("loader")
}

/// The loader lock: the pin directory itself, exclusive. The pin directory must exist
/// (`fs::ensure_pin_dir`).
pub fn loader(pin_dir: &Path, holder: &Holder, wait: Duration) -> Result<Flock, BpfError> {
    let record = loader_record(pin_dir);
    let lock = take(pin_dir, Kind::Exclusive, wait, &record)?.ok_or_else(|| BpfError::Busy {
        dir: pin_dir.into(),
        what: "load or change",
        holder: read_record(&record).unwrap_or_else(|| "another process".into()),
        waited: wait,
    })?;
    std::fs::create_dir_all(locks_dir(pin_dir))
        .map_err(|source| io_error("create", &locks_dir(pin_dir), source))?;
    Ok(lock.record(record, &holder.describe()))
}

/// The daemon lock, exclusive for the daemon's lifetime: one daemon per pin directory.
pub fn daemon(pin_dir: &Path, holder: &Holder, wait: Duration) -> Result<Flock, BpfError> {
    let dir = locks_dir(pin_dir).join("daemon");
    let record = dir.join("holder");
    let lock = take(&dir, Kind::Exclusive, wait, &record)?.ok_or_else(|| BpfError::Busy {
        dir: pin_dir.into(),
        what: "run a second daemon on",
        holder: read_record(&record).unwrap_or_else(|| "another d4c nri".into()),
        waited: wait,
    })?;
    Ok(lock.record(record, &holder.describe()))
}

/// Whether `lock` (from [`daemon`]) is still the daemon lock of `pin_dir` (not one on a
/// directory an unload removed since).
#[must_use]
pub fn holds_daemon(lock: &Flock, pin_dir: &Path) -> bool {
    lock.still_on(&locks_dir(pin_dir).join("daemon"))
}

/// The running daemon's record, if a daemon holds the daemon lock now.
#[must_use]
pub fn running_daemon(pin_dir: &Path) -> Option<String> {
    let dir = locks_dir(pin_dir).join("daemon");
    match try_flock(&dir, Kind::Exclusive) {
        Ok(None) => Some(read_record(&dir.join("holder")).unwrap_or_else(|| "d4c nri".into())),
        _ => None,
    }
}

fn users_dir(pin_dir: &Path) -> PathBuf {
    locks_dir(pin_dir).join("users")
}

/// Distinguishes the records of one process's users.
static USER_SEQ: AtomicU32 = AtomicU32::new(0);

/// Joins the users of the pinned programs (shared, for the holder's lifetime). Taken
/// under the loader lock, where nobody holds it exclusively.
pub fn user(pin_dir: &Path, holder: &Holder) -> Result<Flock, BpfError> {
    let dir = users_dir(pin_dir);
    let lock = take(
        &dir,
        Kind::Shared,
        Duration::from_secs(5),
        &loader_record(pin_dir),
    )?
    .ok_or_else(|| BpfError::Busy {
        dir: pin_dir.into(),
        what: "use",
        holder: "a process checking whether the pins are in use".into(),
        waited: Duration::from_secs(5),
    })?;
    let name = format!(
        "{}-{}",
        std::process::id(),
        USER_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    Ok(lock.record(dir.join(name), &holder.describe()))
}

/// The records of the pins' users as they are now (read only: a record of a process that
/// died stays until a loader finds nobody holds the users lock).
#[must_use]
pub fn user_records(pin_dir: &Path) -> Vec<String> {
    let mut who: Vec<String> = std::fs::read_dir(users_dir(pin_dir))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| read_record(&e.path()))
                .collect()
        })
        .unwrap_or_default();
    who.sort();
    who
}

/// The other users of the pinned programs, by their records; empty when nobody holds the
/// users lock (then stale records of processes that died are removed). Call under the
/// loader lock, after dropping this process's own user lock.
pub fn other_users(pin_dir: &Path) -> Result<Vec<String>, BpfError> {
    let dir = users_dir(pin_dir);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let records = || -> Vec<PathBuf> {
        std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    if let Some(_alone) =
        try_flock(&dir, Kind::Exclusive).map_err(|source| io_error("lock", &dir, source))?
    {
        for r in records() {
            let _ = std::fs::remove_file(r);
        }
        return Ok(Vec::new());
    }
    let mut who: Vec<String> = records().iter().filter_map(|r| read_record(r)).collect();
    if who.is_empty() {
        who.push("another d4c process".into());
    }
    who.sort();
    Ok(who)
}

/// Claims one of `rings` (1-based) for a `d4c exec` run, for its lifetime: the first free
/// one, waiting up to `wait` for one to be freed. Returns the ring and its lock.
pub fn ring(
    pin_dir: &Path,
    rings: usize,
    holder: &Holder,
    wait: Duration,
) -> Result<(u8, Flock), BpfError> {
    let start = Instant::now();
    let mut said = false;
    loop {
        for n in 1..=rings {
            let dir = locks_dir(pin_dir).join(format!("ring-{n}"));
            std::fs::create_dir_all(&dir).map_err(|source| io_error("create", &dir, source))?;
            if let Some(lock) =
                try_flock(&dir, Kind::Exclusive).map_err(|source| io_error("lock", &dir, source))?
            {
                if lock.still_on(&dir) {
                    let ring = u8::try_from(n).unwrap_or(u8::MAX);
                    return Ok((ring, lock.record(dir.join("holder"), &holder.describe())));
                }
            }
        }
        let holders = || {
            (1..=rings)
                .filter_map(|n| {
                    read_record(&locks_dir(pin_dir).join(format!("ring-{n}")).join("holder"))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        if start.elapsed() >= wait {
            return Err(BpfError::Busy {
                dir: pin_dir.into(),
                what: "get an event ring (every one is in use) on",
                holder: holders(),
                waited: wait,
            });
        }
        if !said {
            tracing::warn!(
                "waiting up to {} s for one of the {rings} event rings of d4c exec runs in {}: held by {}",
                wait.as_secs(),
                pin_dir.display(),
                holders()
            );
            said = true;
        }
        std::thread::sleep(RETRY);
    }
}

/// Serialises the check-and-mount of a bpffs at `mount_point` among d4c processes (a
/// second mount there would hide the first one's pins): an exclusive lock on its parent.
#[must_use]
pub fn mount_guard(mount_point: &Path) -> Option<Flock> {
    let parent = mount_point.parent()?;
    let start = Instant::now();
    loop {
        match try_flock(parent, Kind::Exclusive) {
            Ok(Some(lock)) => return Some(lock),
            Ok(None) if start.elapsed() < DEFAULT_WAIT => std::thread::sleep(RETRY),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests;
