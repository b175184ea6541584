//! Whether enforcement is intact, and putting it back. An enforcer relies on each of its
//! programs being attached through its pinned link and running with the enforcer's maps,
//! and on its maps being pinned (what a restarted daemon adopts). Removing a link's last
//! pin detaches the program; pins replaced by another loader's objects leave this
//! enforcer's registrations unread. [`Enforcer::check`] finds both; [`Enforcer::repair`]
//! pins the maps again and re-attaches the lost programs with this enforcer's maps, under
//! the loader lock.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    os::fd::AsFd,
};

use super::{
    error::BpfError,
    fs::{self, links_dir, maps_dir},
    loader::{attach_programs, build_id, Config, Enforcer},
    lock, sys, Btf,
};

/// Why something an enforcer relies on is not as it left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A program's link is no longer pinned: the program is detached.
    LinkMissing,
    /// The pinned link could not be read.
    Unreadable(String),
    /// The pinned link runs a program that uses other maps of these names (another
    /// loader's).
    OtherMaps(String),
    /// A map is no longer pinned (the programs still use it; a restarted daemon could not
    /// adopt it).
    MapPinMissing,
    /// Another map is pinned under this map's name.
    MapReplaced,
}

/// One thing found not as the enforcer left it: a program or map name and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub name: String,
    pub fault: Fault,
}

impl Finding {
    /// Whether enforcement is lost by it (a program not deciding with this enforcer's
    /// maps), not only a pin to put back.
    #[must_use]
    pub fn loses_enforcement(&self) -> bool {
        !matches!(self.fault, Fault::MapPinMissing)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fault {
            Fault::LinkMissing => write!(
                f,
                "program {}: its link is no longer pinned (detached)",
                self.name
            ),
            Fault::Unreadable(e) => write!(
                f,
                "program {}: its pinned link cannot be read ({e})",
                self.name
            ),
            Fault::OtherMaps(m) => write!(
                f,
                "program {}: the pinned link runs a program with another {m} map",
                self.name
            ),
            Fault::MapPinMissing => write!(f, "map {}: no longer pinned", self.name),
            Fault::MapReplaced => {
                write!(f, "map {}: another map is pinned in its place", self.name)
            }
        }
    }
}

/// What a check found; empty when everything is as the enforcer left it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub findings: Vec<Finding>,
}

impl Health {
    /// No program lost.
    #[must_use]
    pub fn enforcing(&self) -> bool {
        !self.findings.iter().any(Finding::loses_enforcement)
    }

    /// Nothing to repair.
    #[must_use]
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The programs lost.
    #[must_use]
    pub fn lost_programs(&self) -> BTreeSet<String> {
        self.findings
            .iter()
            .filter(|f| {
                matches!(
                    f.fault,
                    Fault::LinkMissing | Fault::Unreadable(_) | Fault::OtherMaps(_)
                )
            })
            .map(|f| f.name.clone())
            .collect()
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.findings.is_empty() {
            return f.write_str("intact");
        }
        let parts: Vec<String> = self.findings.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// How long a repair waits for another loader.
const REPAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn is_missing(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

impl Enforcer {
    /// Checks every program this enforcer relies on (its link pinned, its program using
    /// this enforcer's maps) and every map it pinned (still pinned, the same map).
    #[must_use]
    pub fn check(&self) -> Health {
        let mut findings = Vec::new();
        // This enforcer's maps by the name the kernel keeps (15 bytes: several exec rings
        // share one), and their ids.
        let mut ours: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        let mut our_ids = BTreeSet::new();
        for (name, _, id) in &self.pinned_maps {
            ours.entry(sys::kernel_name(name)).or_default().insert(*id);
            our_ids.insert(*id);
        }
        for (name, _, id) in &self.pinned_maps {
            let fault = match sys::obj_get(&maps_dir(&self.pin_dir).join(name)) {
                Err(e) if is_missing(&e) => Some(Fault::MapPinMissing),
                Err(e) => Some(Fault::Unreadable(e.to_string())),
                Ok(fd) => match sys::map_info(fd.as_fd()) {
                    Ok((now, _)) if now == *id => None,
                    Ok(_) => Some(Fault::MapReplaced),
                    Err(e) => Some(Fault::Unreadable(e.to_string())),
                },
            };
            if let Some(fault) = fault {
                findings.push(Finding {
                    name: name.clone(),
                    fault,
                });
            }
        }
        let mut names_by_id: BTreeMap<u32, String> = BTreeMap::new();
        for p in &self.programs {
            let fault = match program_maps(&links_dir(&self.pin_dir).join(p)) {
                Err(e) if is_missing(&e) => Some(Fault::LinkMissing),
                Err(e) => Some(Fault::Unreadable(e.to_string())),
                Ok(ids) => ids
                    .into_iter()
                    .filter(|id| !our_ids.contains(id))
                    .find_map(|id| {
                        let name = names_by_id.entry(id).or_insert_with(|| map_name(id));
                        ours.contains_key(name.as_str())
                            .then(|| Fault::OtherMaps(name.clone()))
                    }),
            };
            if let Some(fault) = fault {
                findings.push(Finding {
                    name: (*p).to_owned(),
                    fault,
                });
            }
        }
        Health { findings }
    }

    /// Puts back what [`Enforcer::check`] finds missing, under the loader lock (waiting at
    /// most the configured `lock_wait`), loading as this enforcer was loaded: pins this enforcer's maps again, removes links that run
    /// other maps, re-attaches the lost programs with this enforcer's maps (aya reuses
    /// the pinned ones), and restores the build and mode markers. Returns what it
    /// repaired (empty: nothing was wrong). Maps replaced by another loader's cannot be
    /// repaired in place ([`BpfError::Replaced`]).
    pub fn repair(&mut self) -> Result<Health, BpfError> {
        let config = self.config.clone();
        fs::ensure_pin_dir(&self.pin_dir)?;
        // Short: the caller checks again soon, and another loader may be repairing.
        let wait = config.lock_wait.min(REPAIR_WAIT);
        let _loading = lock::loader(&self.pin_dir, &config.holder, wait)?;
        let health = self.check();
        if health.intact() {
            return Ok(health);
        }
        if let Some(f) = health
            .findings
            .iter()
            .find(|f| f.fault == Fault::MapReplaced)
        {
            return Err(BpfError::Replaced {
                dir: self.pin_dir.clone(),
                what: f.to_string(),
            });
        }
        for f in &health.findings {
            if f.fault != Fault::MapPinMissing {
                continue;
            }
            if let Some((_, fd, _)) = self.pinned_maps.iter().find(|(n, _, _)| *n == f.name) {
                let path = maps_dir(&self.pin_dir).join(&f.name);
                sys::obj_pin(fd.as_fd(), &path)
                    .map_err(|source| BpfError::PinFd { path, source })?;
            }
        }
        let lost = health.lost_programs();
        for name in &lost {
            // A link that runs other maps is not ours; a missing one is gone already.
            let _ = std::fs::remove_file(links_dir(&self.pin_dir).join(name));
        }
        if !lost.is_empty() {
            let config = Config {
                pin_dir: self.pin_dir.clone(),
                ..config.clone()
            };
            let btf = Btf::from_file(&config.btf)?;
            let (_ebpf, attached) =
                attach_programs(&config, &btf, self.mode, |p| lost.contains(p.name))?;
            tracing::debug!(?attached, "re-attached");
        }
        fs::mark_mode(&self.pin_dir, self.mode)?;
        if fs::pinned_builds(&self.pin_dir).is_empty() {
            fs::mark_build(&self.pin_dir, build_id(config.noop, self.mode))?;
        }
        Ok(health)
    }
}

/// The ids of the maps used by the program behind the pinned link `link`.
fn program_maps(link: &std::path::Path) -> std::io::Result<Vec<u32>> {
    let link = sys::obj_get(link)?;
    let prog = sys::prog_by_id(sys::link_info(link.as_fd())?.prog_id)?;
    Ok(sys::prog_info(prog.as_fd())?.1)
}

/// The kernel's name of map `id` (empty when it cannot be read).
fn map_name(id: u32) -> String {
    sys::map_by_id(id)
        .and_then(|fd| sys::map_info(fd.as_fd()))
        .map(|(_, n)| n)
        .unwrap_or_default()
}
