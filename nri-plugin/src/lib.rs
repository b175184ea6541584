//! d4c as a library: the kernel side (`bpf`), the daemon's core, alerts, metrics and
//! configuration; shared by the `d4c` binary and the privileged tests in `tests/`.

pub mod alerts;
pub mod bpf;
pub mod cgroup;
pub mod config;
pub mod container;
pub mod daemon;
pub mod metrics;
pub mod node;
pub mod paths;
