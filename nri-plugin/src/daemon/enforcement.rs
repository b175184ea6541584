//! Keeping enforcement attached while the daemon runs: every [`CHECK_EVERY`] the owner task
//! checks that each program is attached with the daemon's maps and repairs what is not
//! ([`KernelState::check_enforcement`]); losses are logged as errors, counted
//! (`d4c_enforcement_lost_total`), fail readiness while unrepaired, and show in
//! `d4c status`. Pins replaced by another loader's objects stop the daemon, so that its
//! supervisor restarts it and the new process adopts them.
//!
//! [`KernelState::check_enforcement`]: super::kernel::KernelState::check_enforcement

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::kernel::EnforcementCheck;
use super::owner::Handle;
use crate::bpf::lock::{self, Flock, Holder};
use crate::metrics::Metrics;

/// How often the daemon checks its programs.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What `d4c status` shows of the checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementStatus {
    /// Whether a check ran yet.
    pub checked: bool,
    /// Every program decides with the daemon's maps (as of the last check).
    pub intact: bool,
    /// Programs found lost since the daemon started (each loss counted once).
    pub lost_total: u64,
    /// The last loss, if any.
    pub last_loss: Option<Loss>,
    /// Programs lost and not repaired yet.
    pub unrepaired: BTreeSet<String>,
}

/// One loss: when, what was found, and whether it was repaired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    pub at: String,
    pub what: String,
    pub repaired: bool,
}

impl EnforcementStatus {
    /// Takes the result of one check into account; returns how many programs it found
    /// lost that were not lost at the previous check.
    pub fn record(&mut self, check: &EnforcementCheck, now: SystemTime) -> u64 {
        self.checked = true;
        let at = || crate::alerts::ecs::rfc3339(now);
        let newly = |lost: &[String], unrepaired: &BTreeSet<String>| {
            lost.iter().filter(|p| !unrepaired.contains(*p)).count() as u64
        };
        match check {
            EnforcementCheck::Intact => {
                self.intact = true;
                self.unrepaired.clear();
                0
            }
            EnforcementCheck::Repaired { lost, what } => {
                let n = newly(lost, &self.unrepaired);
                self.lost_total += n;
                if !lost.is_empty() {
                    self.last_loss = Some(Loss {
                        at: at(),
                        what: what.clone(),
                        repaired: true,
                    });
                }
                self.intact = true;
                self.unrepaired.clear();
                n
            }
            EnforcementCheck::NotRepaired { lost, what, .. } => {
                let n = newly(lost, &self.unrepaired);
                self.lost_total += n;
                self.last_loss = Some(Loss {
                    at: at(),
                    what: what.clone(),
                    repaired: false,
                });
                self.intact = lost.is_empty();
                self.unrepaired = lost.iter().cloned().collect();
                n
            }
            EnforcementCheck::Fatal { what, .. } => {
                self.lost_total += 1;
                self.last_loss = Some(Loss {
                    at: at(),
                    what: what.clone(),
                    repaired: false,
                });
                self.intact = false;
                1
            }
        }
    }
}

/// The daemon lock and where it is held: kept while the daemon runs, taken again when an
/// unload removed the directory it was on (then no other daemon may have taken it).
pub struct DaemonLock {
    pub lock: Flock,
    pub pin_dir: PathBuf,
    pub holder: Holder,
}

impl DaemonLock {
    /// `Err`: another daemon holds the pin directory now.
    fn keep(&mut self) -> Result<(), String> {
        if lock::holds_daemon(&self.lock, &self.pin_dir) {
            return Ok(());
        }
        // The pin directory was recreated (a repair after a removal): lock the new one.
        crate::bpf::ensure_pin_dir(&self.pin_dir).map_err(|e| e.to_string())?;
        self.lock =
            lock::daemon(&self.pin_dir, &self.holder, Duration::ZERO).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Checks every [`CHECK_EVERY`] until the owner stops; logs and counts what it finds.
/// Resolves with the reason when enforcement is lost for good (the daemon then stops).
pub async fn keep_checking(
    handle: Handle,
    metrics: Arc<Metrics>,
    mut daemon: DaemonLock,
) -> String {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Ok((check, status)) = handle.check_enforcement().await else {
            return "the registry stopped".into();
        };
        metrics
            .enforcement_lost
            .store(status.lost_total, Ordering::Relaxed);
        metrics
            .enforcement_intact
            .store(u64::from(status.intact), Ordering::Relaxed);
        match check {
            EnforcementCheck::Intact => {}
            EnforcementCheck::Repaired { lost, what } if lost.is_empty() => {
                tracing::warn!(found = %what, "a pin of d4c was removed; pinned again (enforcement was not interrupted)");
            }
            EnforcementCheck::Repaired { lost, what } => {
                tracing::error!(programs = ?lost, found = %what, "ENFORCEMENT WAS LOST: d4c's programs were detached; re-attached them (see d4c_enforcement_lost_total)");
            }
            EnforcementCheck::NotRepaired { lost, what, error } => {
                tracing::error!(programs = ?lost, found = %what, %error, "ENFORCEMENT IS LOST and could not be repaired yet; trying again in {} s (readiness fails meanwhile)", CHECK_EVERY.as_secs());
            }
            EnforcementCheck::Fatal { what, error } => {
                tracing::error!(found = %what, %error, "ENFORCEMENT IS LOST: the pins are another loader's; stopping so that a restart adopts them");
                return format!("{what}: {error}");
            }
        }
        if let Err(e) = daemon.keep() {
            tracing::error!(error = %e, "the daemon lock of the pin directory is lost; stopping");
            return e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_loss_is_counted_once_until_it_is_repaired() {
        let mut s = EnforcementStatus::default();
        let t = SystemTime::UNIX_EPOCH;
        assert_eq!(s.record(&EnforcementCheck::Intact, t), 0);
        assert!(s.checked && s.intact);
        let not = EnforcementCheck::NotRepaired {
            lost: lost(&["path_chmod"]),
            what: "x".into(),
            error: "busy".into(),
        };
        assert_eq!(s.record(&not, t), 1);
        assert!(!s.intact);
        assert_eq!(s.record(&not, t), 0, "the same loss, still unrepaired");
        let repaired = EnforcementCheck::Repaired {
            lost: lost(&["path_chmod", "file_open"]),
            what: "y".into(),
        };
        assert_eq!(s.record(&repaired, t), 1, "only file_open is new");
        assert!(s.intact);
        assert_eq!(s.lost_total, 2);
        assert!(s.last_loss.as_ref().unwrap().repaired);
        // A pin put back without any program lost is not a loss.
        let pin = EnforcementCheck::Repaired {
            lost: Vec::new(),
            what: "map D4C_TASKS: no longer pinned".into(),
        };
        assert_eq!(s.record(&pin, t), 0);
        assert_eq!(s.last_loss.as_ref().unwrap().what, "y");
    }
}
