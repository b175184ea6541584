//! The kernel half seen from userspace: load (or adopt) the embedded eBPF programs with
//! the running kernel's struct offsets, attach them as BPF LSM or `fmod_ret` programs
//! ([`AttachMode`]), pin them under bpffs, write the compiled tables and
//! container registrations, read decisions back.
//!
//! One task should own the [`Enforcer`]; others send it commands.

mod attach_mode;
mod btf;
mod check;
mod error;
mod events;
mod fmod_ret;
mod fs;
mod handover;
mod inventory;
mod loader;
pub mod lock;
mod overlay;
mod skipped;
mod sys;
mod tables;
mod unload;

pub use attach_mode::{usable_mode, AttachMode, AttachRequest};
pub use btf::Btf;
pub use check::{Fault, Finding, Health};
pub use error::BpfError;
pub use events::{comm, decode, exe, path, AsyncEventReader, EventReader};
pub use fs::ensure_pin_dir;
pub use fs::{
    build_marker, check_bpf_lsm, exec_owned, links_dir, pinned_builds, pinned_mode, retiring_dirs,
};
pub use handover::{Handover, Retired};
pub use loader::{build_id, Config, Enforcer, Origin, Released, Role};
pub use overlay::{described_offset, layout_rule, upper_offset};
pub use skipped::{skipped_runs, SkippedError};

#[cfg(test)]
mod tests;
