//! How the hooks attach: as BPF LSM programs where the kernel runs them, else as `fmod_ret`
//! programs on the kernel's `security_*` functions. The programs are the same bytecode
//! either way; only the program type and the attach point differ.

use std::{fmt, path::Path, str::FromStr};

use super::{btf::Btf, error::BpfError, fmod_ret, fs};

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

    /// The index of `mmap_file`'s `prot` argument at this mode's attach point:
    /// `bpf_lsm_mmap_file(file, reqprot, prot, flags)` as BPF LSM,
    /// `security_mmap_file(file, prot, flags)` as `fmod_ret`.
    #[must_use]
    pub fn mmap_prot_arg(self) -> u32 {
        match self {
            AttachMode::Lsm => 2,
            AttachMode::FmodRet => 1,
        }
    }

    /// Whether this kernel loads hooks in this mode: a two-instruction program of the
    /// mode's type on `path_chmod`'s attach point is loaded and dropped (nothing is
    /// attached). The error says why not, in one line.
    pub fn probe(self, btf: &Btf) -> Result<(), BpfError> {
        let function = self.kernel_function("path_chmod");
        let refused = |reason: String| match self {
            AttachMode::Lsm => BpfError::LsmUnavailable { reason },
            AttachMode::FmodRet => BpfError::FmodRet {
                program: "probe",
                function: function.clone(),
                reason,
                verifier_log: String::new(),
            },
        };
        let id = btf
            .func_id(&function)
            .ok_or_else(|| refused("the kernel's BTF has no such function".into()))?;
        fmod_ret::load_minimal(self, id).map_err(|e| {
            refused(format!(
                "the kernel refused a {self} program on {function} ({e})"
            ))
        })
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

/// The mode `auto` chooses on this kernel, checked by loading a probe program of it: what
/// a test (or an operator) asks before relying on the kernel to run d4c's hooks.
pub fn usable_mode() -> Result<AttachMode, BpfError> {
    let mode = AttachRequest::Auto.resolve(Path::new(crate::paths::LSM_LIST))?;
    let btf = Btf::from_file(Path::new(crate::paths::KERNEL_BTF))?;
    mode.probe(&btf)?;
    Ok(mode)
}
