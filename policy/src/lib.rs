//! d4c policies: parse and validate both generations of the Defend-for-Containers policy
//! format, evaluate them (the reference semantics), compile them into the kernel's map
//! entries, and emulate the kernel's lookup over those entries.
//!
//! parse -> validate ([`load_paths`]) -> [`evaluate`] (reference) / [`compile`] (kernel
//! tables) -> [`emulate`] (the kernel's lookup, in userspace, for tests and `d4c explain`).

#![deny(missing_docs)]

pub mod audit;
pub mod cases;
pub mod compile;
pub mod container;
pub mod diag;
pub mod dir_move;
pub mod emit;
pub mod emulate;
pub mod eval;
pub mod event;
pub mod image;
pub mod load;
pub mod model;
pub mod parse;
pub mod pattern;
pub mod replay;
pub mod suggest;
pub mod yaml;

pub use audit::Audit;
pub use container::{Container, Mount};
pub use diag::{Diagnostic, Pos, Severity};
pub use dir_move::evaluate_dir_move;
pub use eval::{evaluate, Decision};
pub use event::{Event, Identity};
pub use image::ImageRef;
pub use load::{check_paths, check_texts, load_paths, load_str, load_texts, Loaded, PolicyError};
pub use model::{Actions, BlockKind, FileOp, Generation, Policy, ProcessOp, Response, Selector};
