//! The NRI messages and services generated from `proto/nri.proto` (see `build.rs`).
//!
//! Messages: [`PodSandbox`], [`Container`], [`Mount`], ...; the runtime's service client
//! [`RuntimeClient`]; the plugin service trait [`Plugin`] and its registration
//! [`create_plugin`].

/// Messages and enums.
#[allow(
    clippy::all,
    clippy::pedantic,
    dead_code,
    missing_docs,
    non_camel_case_types
)]
#[allow(
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_results,
    unused_mut
)]
#[allow(unknown_lints, unused_attributes)]
pub mod nri {
    include!(concat!(env!("OUT_DIR"), "/nri.include.rs"));
}

/// ttrpc services: `RuntimeClient`, the `Plugin` trait and `create_plugin`.
#[allow(
    clippy::all,
    clippy::pedantic,
    dead_code,
    missing_docs,
    non_camel_case_types
)]
#[allow(
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_results,
    unused_mut
)]
#[allow(unknown_lints, unused_imports, unsafe_code)]
pub mod nri_ttrpc {
    include!(concat!(env!("OUT_DIR"), "/nri_ttrpc.include.rs"));
}

pub use nri::*;
pub use nri_ttrpc::{create_plugin, create_runtime, Plugin, PluginClient, Runtime, RuntimeClient};
