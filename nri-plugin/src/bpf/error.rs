//! Errors of the kernel side: every variant keeps what is needed to act on it (the
//! verifier log of a rejected program, the path of a failed pin).

use std::{io, path::PathBuf, time::Duration};

/// What can go wrong loading, adopting, or talking to the kernel programs.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The kernel cannot run BPF LSM programs.
    #[error(
        "BPF LSM is not available on this kernel: {reason}. Check that \
         /sys/kernel/security/lsm lists `bpf` (the kernel needs CONFIG_BPF_LSM=y and `bpf` \
         in the `lsm=` boot parameter, e.g. lsm=...,bpf) and that this process has \
         CAP_BPF and CAP_SYS_ADMIN"
    )]
    LsmUnavailable { reason: String },

    /// The kernel refused the hooks as `fmod_ret` programs (or they could not be prepared).
    #[error(
        "fmod_ret: program {program} on {function}: {reason}. fmod_ret needs kernel BTF \
         (CONFIG_DEBUG_INFO_BTF=y), BPF trampolines (x86_64, or arm64 from 6.4) and \
         CAP_BPF with CAP_PERFMON{}",
        if verifier_log.is_empty() { String::new() } else { format!("\nverifier log:\n{verifier_log}") }
    )]
    FmodRet {
        program: &'static str,
        function: String,
        reason: String,
        verifier_log: String,
    },

    #[error("pinning {}: {source}", path.display())]
    PinFd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("kernel BTF {}: {reason}", path.display())]
    Btf { path: PathBuf, reason: String },

    /// A struct field the programs read is absent from this kernel's BTF.
    #[error("this kernel's BTF lacks {field}; d4c does not support this kernel")]
    MissingField { field: String },

    #[error("parsing the embedded eBPF object: {source}")]
    Object {
        #[source]
        source: Box<aya::EbpfError>,
    },

    #[error("the embedded eBPF object has no program {program}")]
    NoProgram { program: &'static str },

    /// The verifier (or the kernel) refused a program.
    #[error("loading program {program} (hook {hook}): {source}\nverifier log:\n{verifier_log}")]
    Load {
        program: &'static str,
        hook: &'static str,
        verifier_log: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("attaching program {program}: {source}")]
    Attach {
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("pinning {}: {source}", path.display())]
    Pin {
        path: PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },

    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },

    #[error("the embedded eBPF object has no map {map}")]
    NoMap { map: &'static str },

    #[error("mounting bpffs at {}: {source}", path.display())]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Another d4c process holds a lock of the pin directory (`bpf::lock`).
    #[error(
        "cannot {what} {}: held by {holder} (waited {} s); let it finish, or stop it",
        dir.display(),
        waited.as_secs()
    )]
    Busy {
        dir: PathBuf,
        what: &'static str,
        holder: String,
        waited: Duration,
    },

    /// The pins belong to another d4c build or attach mode and this loader may not take
    /// them over (`d4c exec`).
    #[error(
        "{} holds programs of another d4c build or attach mode ({pinned}; this is {this}): use that d4c and mode, or --bpffs with another directory",
        dir.display()
    )]
    OtherBuild {
        dir: PathBuf,
        pinned: String,
        this: String,
    },

    /// Another d4c process relies on the pinned programs, so they may not be replaced or
    /// removed.
    #[error("the programs pinned in {} are in use by {}; stop {} first", dir.display(), users.join(", "), if users.len() == 1 { "it" } else { "them" })]
    InUse { dir: PathBuf, users: Vec<String> },

    /// The pinned maps are not this process's any more (something replaced them): its
    /// registrations are not what the kernel reads, and it cannot repair that in place.
    #[error("the pins in {} were replaced by other objects ({what}): this process's registrations are no longer enforced; restart it to adopt what is pinned", dir.display())]
    Replaced { dir: PathBuf, what: String },

    /// The pins are gone, but the kernel still has programs they attached: a process holds
    /// a descriptor of one (`bpftool prog show id ID` names it).
    #[error("the pins in {} are removed, but after {}s the kernel still has {} of d4c's programs (ids {}): a process holds them (`bpftool prog show id ID`)", dir.display(), waited.as_secs(), ids.len(), ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    StillLoaded {
        dir: PathBuf,
        ids: Vec<u32>,
        waited: std::time::Duration,
    },
}
