//! The NRI protocol in Rust and a plugin runtime: d4c's connection to containerd and CRI-O.
//!
//! - [`mux`]: the multiplexed socket (two ttrpc connections over one stream);
//! - [`api`]: messages and services generated from `proto/nri.proto`;
//! - [`Handler`]: what the daemon implements; [`run`] / [`run_with_reconnect`] drive it.
//!
//! It knows nothing of d4c's policies: what a container's metadata means to d4c (its
//! attributes, its cgroup) is the daemon's business (`nri-plugin/src/container`).

pub mod api;
mod error;
mod events;
mod handler;
pub mod mux;
mod plugin;
mod reconnect;
mod service;

pub use error::Error;
pub use events::EventSet;
pub use handler::Handler;
pub use plugin::{run, Endpoint, PluginConfig, DEFAULT_SOCKET, ENV_IDX, ENV_NAME, ENV_SOCKET};
pub use reconnect::{chain, run_with_reconnect, Backoff};
