//! The kernel/userspace ABI of d4c: every type that crosses the boundary, defined once.
//!
//! All types are `#[repr(C)]`, `Copy`, made of integers and fixed-size arrays with explicit
//! padding, and carry a size assertion. Map values hold integers, never Rust enums.
#![no_std]
#![deny(missing_docs)]

pub mod consts;
pub mod event;
pub mod maps;
pub mod object;
pub mod offsets;

pub use consts::*;
pub use event::Event;
pub use maps::*;
pub use object::{Program, ProgramKind, GLOBAL_NOOP, GLOBAL_OFFSETS, PROGRAMS};
pub use offsets::KernelOffsets;
