//! Upgrades without an unprotected moment: a new build's programs are attached next to the
//! previous build's, whose pins move to `retiring-*`; the previous build keeps enforcing
//! its own registrations until the new daemon has registered the runtime's containers
//! (its first Synchronize), then [`Enforcer::retire_previous`] detaches it.

use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, PerCpuArray};
use d4c_common::{CNT_DENIED, CNT_EVENTS, MAP_COUNTERS};

use super::{
    error::BpfError,
    fs::{self, maps_dir},
    loader::Enforcer,
    lock,
};

/// A previous build's programs, still attached while this build takes over.
#[derive(Debug)]
pub struct Handover {
    /// Where its pins are (`<pin dir>/retiring-<n>`).
    pub dir: PathBuf,
    /// Its (events, denials) counters when this build began the takeover; `None` when a
    /// restarted daemon found the handover under way.
    at_start: Option<(u64, u64)>,
}

impl Handover {
    /// The previous build's pins at `dir`, counters read now.
    pub(super) fn begin(dir: PathBuf) -> Self {
        let at_start = pinned_counters(&dir);
        Handover { dir, at_start }
    }

    /// A handover an earlier process began (its counters at the start are not known).
    pub(super) fn found(dir: PathBuf) -> Self {
        Handover {
            dir,
            at_start: None,
        }
    }
}

/// What a previous build decided during the handover, read as it was detached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    pub dir: PathBuf,
    /// Events (log, alert or block decisions) it wrote during the handover: its own ring
    /// buffer had no reader, so these alerts were not forwarded. `None`: not known.
    pub events: Option<u64>,
    /// Operations it denied during the handover. `None`: not known.
    pub denied: Option<u64>,
}

/// The (events, denials) counters of the pins at `dir`, summed over CPUs.
fn pinned_counters(dir: &Path) -> Option<(u64, u64)> {
    let md = MapData::from_pin(maps_dir(dir).join(MAP_COUNTERS)).ok()?;
    let counters: PerCpuArray<MapData, u64> = Map::PerCpuArray(md).try_into().ok()?;
    let sum = |i: u32| {
        counters
            .get(&i, 0)
            .ok()
            .map(|v| v.iter().copied().sum::<u64>())
    };
    Some((sum(CNT_EVENTS)?, sum(CNT_DENIED)?))
}

impl Enforcer {
    /// Previous builds' programs still attached (an upgrade under way).
    #[must_use]
    pub fn handovers(&self) -> &[Handover] {
        &self.handovers
    }

    /// Ends this build's enforcement and gives the pin directory back to the previous
    /// build it took over from (its pins move back in place), if any; else like
    /// [`Enforcer::unload`]. For a short-lived loader such as `d4c exec`, which must not
    /// end a running daemon's enforcement.
    pub fn unload_keeping_previous(mut self) -> Result<(), BpfError> {
        let Some(previous) = self.handovers.pop() else {
            return self.unload();
        };
        let dir = self.pin_dir.clone();
        let _loading = lock::loader(&dir, &self.config.holder, self.config.lock_wait)?;
        drop(self);
        fs::remove_current(&dir)?;
        fs::unretire(&dir, &previous.dir)
    }

    /// Detaches the previous builds' programs and removes their pins: call once this
    /// build's maps hold every registration (after the runtime's Synchronize). Reports
    /// what each decided during the handover.
    pub fn retire_previous(&mut self) -> Result<Vec<Retired>, BpfError> {
        let _loading = lock::loader(
            &self.pin_dir,
            &self.config.holder,
            self.config.lock_wait.min(std::time::Duration::from_secs(5)),
        )?;
        let mut out = Vec::new();
        while let Some(h) = self.handovers.pop() {
            let now = pinned_counters(&h.dir);
            let delta = |f: fn((u64, u64)) -> u64| Some(f(now?).saturating_sub(f(h.at_start?)));
            let retired = Retired {
                events: delta(|c| c.0),
                denied: delta(|c| c.1),
                dir: h.dir.clone(),
            };
            if let Err(e) = fs::remove_pins(&h.dir) {
                self.handovers.push(h);
                return Err(e);
            }
            out.push(retired);
        }
        Ok(out)
    }
}
