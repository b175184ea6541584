//! The daemon (`d4c nri`): its wiring ([`run`]), and its core: which containers are
//! managed, under which rule sets, kept in step with the kernel maps.

pub mod alerts_task;
pub mod enforcement;
mod error;
pub mod guards;
pub mod kernel;
mod kernel_bpf;
pub mod last_good;
pub mod nested;
pub mod nri_handler;
pub mod owner;
pub mod registry;
mod run;
pub mod status_server;
pub mod watch;

pub use error::DaemonError;
pub use run::{run, shutdown_signal};

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod tests;
