//! The daemon's core: which containers are managed, under which rule sets, kept in step
//! with the kernel maps.

pub mod kernel;
mod kernel_bpf;
pub mod watch;
pub mod alerts_task;
pub mod nri_handler;
pub mod owner;
pub mod registry;
pub mod status_server;

#[cfg(test)]
mod tests;
