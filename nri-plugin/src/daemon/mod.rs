//! The daemon's core: which containers are managed, under which rule sets, kept in step
//! with the kernel maps.

pub mod alerts_task;
pub mod guards;
pub mod kernel;
mod kernel_bpf;
pub mod nested;
pub mod nri_handler;
pub mod owner;
pub mod registry;
pub mod status_server;
pub mod watch;

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod tests;
