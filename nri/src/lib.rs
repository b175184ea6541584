//! The NRI protocol in Rust and a plugin runtime: d4c's connection to containerd and CRI-O.
//!
//! - [`mux`]: the multiplexed socket (two ttrpc connections over one stream);
//! - [`api`]: messages and services generated from `proto/nri.proto`;
//! - [`Handler`]: what the daemon implements; [`run`] / [`run_with_reconnect`] drive it;
//! - [`attrs`]: NRI pod + container -> the policy's container attributes and cgroup.

pub mod api;
pub mod attrs;
pub mod cgroup;
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
