//! How the hooks attach: as BPF LSM programs where the kernel runs them, else as `fmod_ret`
//! programs on the kernel's `security_*` functions. The programs are the same bytecode
//! either way; only the program type and the attach point differ.

use std::{fmt, path::Path, str::FromStr};

use super::{error::BpfError, fs};

/// The attachment in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// `BPF_PROG_TYPE_LSM` on `bpf_lsm_<hook>`: needs `bpf` in the active LSM list.
    Lsm,
    /// `BPF_PROG_TYPE_TRACING` with `BPF_MODIFY_RETURN` on `security_<hook>`: needs BTF
    /// and BPF trampolines, not the `lsm=` list.
    FmodRet,
}

impl AttachMode {
    /// Both modes, in the order `auto` prefers them.
    pub const ALL: [AttachMode; 2] = [AttachMode::Lsm, AttachMode::FmodRet];

    /// The name used in config, flags, status and metrics (`lsm`, `fmod_ret`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Lsm => "lsm",
            AttachMode::FmodRet => "fmod_ret",
        }
    }

    /// The kernel function a hook attaches to in this mode.
    #[must_use]
    pub fn kernel_function(self, hook: &str) -> String {
        match self {
            AttachMode::Lsm => format!("bpf_lsm_{hook}"),
            AttachMode::FmodRet => format!("security_{hook}"),
        }
    }

    /// The mode named by a pin directory's marker (see [`fs::mark_mode`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<AttachMode> {
        AttachMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the configuration asks for (`enforcement:` in d4c.yaml, `d4c exec --attach`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachRequest {
    /// LSM where BPF LSM is active, else `fmod_ret`.
    #[default]
    Auto,
    /// Exactly this mode; never another.
    Only(AttachMode),
}

impl AttachRequest {
    /// The mode to load: `auto` reads the active LSM list; an explicit `lsm` fails with
    /// [`BpfError::LsmUnavailable`] where BPF LSM is not active (never a fallback).
    pub fn resolve(self, lsm_list: &Path) -> Result<AttachMode, BpfError> {
        match self {
            AttachRequest::Only(AttachMode::Lsm) => {
                fs::check_bpf_lsm(lsm_list)?;
                Ok(AttachMode::Lsm)
            }
            AttachRequest::Only(AttachMode::FmodRet) => Ok(AttachMode::FmodRet),
            AttachRequest::Auto => Ok(if fs::check_bpf_lsm(lsm_list).is_ok() {
                AttachMode::Lsm
            } else {
                AttachMode::FmodRet
            }),
        }
    }
}

impl FromStr for AttachRequest {
    type Err = String;

    /// `auto`, `lsm`, `fmod-ret` (also `fmod_ret`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AttachRequest::Auto),
            "lsm" => Ok(AttachRequest::Only(AttachMode::Lsm)),
            "fmod-ret" | "fmod_ret" => Ok(AttachRequest::Only(AttachMode::FmodRet)),
            other => Err(format!("`{other}` is not `auto`, `lsm` or `fmod-ret`")),
        }
    }
}

impl fmt::Display for AttachRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachRequest::Auto => f.write_str("auto"),
            AttachRequest::Only(AttachMode::Lsm) => f.write_str("lsm"),
            AttachRequest::Only(AttachMode::FmodRet) => f.write_str("fmod-ret"),
        }
    }
}
