//! Whether d4c's blocking is guaranteed on a node. The kernel does not run a tracing
//! program (`fmod_ret`) on a CPU where a previous run of the same program has not returned;
//! on a kernel that preempts kernel code, a task preempted inside d4c's program makes
//! other calls of that hook on that CPU go undecided. BPF LSM programs had the same guard
//! before Linux 6.2 (and 6.1.54, where the fix was backported). So:
//!
//! | mode | kernel | blocking |
//! |---|---|---|
//! | BPF LSM | 6.2+, or 6.1.54+ | guaranteed |
//! | BPF LSM | 6.1 before .54 | not guaranteed |
//! | `fmod_ret` | `none` or `voluntary` preemption | guaranteed |
//! | `fmod_ret` | `full`, `lazy` (the 7.0+ default) or RT | not guaranteed |
//! | either | 5.17 to 6.0 | cannot tell: older than 6.1, the oldest kernel d4c is tested on |
//! | either | before 5.17 | not guaranteed: the programs need `bpf_loop` and cannot load |

use serde::Serialize;

use super::preempt::{Model, Version};
use crate::bpf::AttachMode;

/// What would make blocking guaranteed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Remedy {
    /// Boot with `bpf` in `lsm=`: BPF LSM mode.
    AddBpfToLsm,
    /// A 6.1 kernel of 6.1.54 or later (or 6.2+): the guard is fixed, and it is the oldest
    /// kernel d4c is tested on.
    NewerKernel,
}

/// The verdict for one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `Some(true)`: guaranteed; `Some(false)`: not; `None`: cannot tell.
    pub sound: Option<bool>,
    /// Why, in one sentence.
    pub why: String,
    /// What would make it guaranteed (when it is not, or cannot be told).
    pub remedies: Vec<Remedy>,
    /// Where the kernel still offers `preempt=voluntary` (before 7.0, with a dynamic
    /// model), booting with it also makes `fmod_ret` blocking guaranteed.
    pub voluntary_possible: bool,
}

/// Judges blocking in `mode` on a kernel of `version` with preemption `preempt`.
#[must_use]
pub fn judge(mode: AttachMode, version: Option<Version>, preempt: &Model) -> Verdict {
    let voluntary_possible =
        version.is_some_and(|v| v.major < 7) && preempt.model.as_deref() != Some("rt");
    if let Some(old) = version.filter(|v| (v.major, v.minor) < (6, 1)) {
        let loads = (old.major, old.minor) >= (5, 17);
        return Verdict {
            sound: if loads { None } else { Some(false) },
            why: if loads {
                format!("kernel {old} is older than 6.1, the oldest kernel d4c is tested on")
            } else {
                format!("d4c cannot attach on kernel {old}: its programs need bpf_loop (5.17+)")
            },
            remedies: vec![Remedy::NewerKernel],
            voluntary_possible,
        };
    }
    match mode {
        AttachMode::Lsm => {
            let fixed = version.map(|v| match (v.major, v.minor, v.patch) {
                (major, _, _) if major > 6 => Some(true),
                (6, minor, _) if minor >= 2 => Some(true),
                (6, 1, Some(p)) => Some(p >= 54),
                (6, 1, None) => None,
                _ => Some(false),
            });
            match fixed.flatten() {
                Some(true) => Verdict {
                    sound: Some(true),
                    why: "BPF LSM on a kernel that never skips LSM programs (6.2+, 6.1.54+)".into(),
                    remedies: Vec::new(),
                    voluntary_possible,
                },
                Some(false) => Verdict {
                    sound: Some(false),
                    why: format!(
                        "BPF LSM on {}: before 6.1.54 the kernel skips an LSM program on a CPU where a preempted run of it has not returned",
                        version.map_or_else(|| "this kernel".into(), |v| v.to_string())
                    ),
                    remedies: vec![Remedy::NewerKernel],
                    voluntary_possible,
                },
                None => Verdict {
                    sound: None,
                    why: "BPF LSM on a 6.1 kernel whose sublevel the node does not say (6.1.54+ is guaranteed)".into(),
                    remedies: vec![Remedy::NewerKernel],
                    voluntary_possible,
                },
            }
        }
        AttachMode::FmodRet => match preempt.model.as_deref() {
            Some("none" | "voluntary") => Verdict {
                sound: Some(true),
                why: format!(
                    "fmod_ret on a kernel that does not preempt kernel code ({})",
                    preempt.model.as_deref().unwrap_or_default()
                ),
                remedies: Vec::new(),
                voluntary_possible,
            },
            Some(m) => Verdict {
                sound: Some(false),
                why: format!(
                    "fmod_ret on a kernel that preempts kernel code ({m}): while a task is preempted inside one of d4c's programs, the kernel skips that program for other calls on that CPU, and they go through undecided"
                ),
                remedies: vec![Remedy::AddBpfToLsm],
                voluntary_possible,
            },
            None => Verdict {
                sound: None,
                why: format!(
                    "fmod_ret, and the preemption model cannot be told ({})",
                    preempt.source
                ),
                remedies: vec![Remedy::AddBpfToLsm],
                voluntary_possible,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(clippy::unnecessary_wraps, reason = "judge takes an Option")]
    fn v(major: u32, minor: u32, patch: Option<u32>) -> Option<Version> {
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    fn m(model: Option<&str>) -> Model {
        Model {
            model: model.map(Into::into),
            source: "test".into(),
        }
    }

    #[test]
    fn the_table() {
        let lsm = |ver| judge(AttachMode::Lsm, ver, &m(Some("full"))).sound;
        assert_eq!(lsm(v(6, 12, Some(118))), Some(true));
        assert_eq!(lsm(v(7, 2, None)), Some(true));
        assert_eq!(lsm(v(6, 1, Some(54))), Some(true));
        assert_eq!(lsm(v(6, 1, Some(53))), Some(false));
        assert_eq!(lsm(v(6, 1, None)), None);
        let fmod = |model| judge(AttachMode::FmodRet, v(6, 12, Some(1)), &m(model));
        assert_eq!(fmod(Some("voluntary")).sound, Some(true));
        assert_eq!(fmod(Some("none")).sound, Some(true));
        let full = fmod(Some("full"));
        assert_eq!(full.sound, Some(false));
        assert_eq!(full.remedies, [Remedy::AddBpfToLsm]);
        assert!(full.voluntary_possible);
        assert!(!judge(AttachMode::FmodRet, v(7, 0, Some(1)), &m(Some("lazy"))).voluntary_possible);
        assert_eq!(fmod(None).sound, None);
        // Older kernels, whatever the mode and the preemption model.
        for mode in [AttachMode::Lsm, AttachMode::FmodRet] {
            let old = |ver| judge(mode, ver, &m(Some("voluntary")));
            assert_eq!(old(v(6, 0, Some(19))).sound, None);
            assert_eq!(old(v(5, 17, Some(0))).sound, None);
            let v515 = old(v(5, 15, Some(0)));
            assert_eq!(v515.sound, Some(false));
            assert!(v515.why.contains("bpf_loop"), "{}", v515.why);
            assert_eq!(v515.remedies, [Remedy::NewerKernel]);
        }
    }
}
