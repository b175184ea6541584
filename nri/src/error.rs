//! Errors of the NRI plugin runtime.

use std::{path::PathBuf, time::Duration};

use crate::mux::MuxError;

/// Why a plugin session could not start or ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to the runtime's NRI socket failed.
    #[error("cannot connect to the NRI socket {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `NRI_PLUGIN_SOCKET` does not name a usable file descriptor.
    #[error("NRI_PLUGIN_SOCKET={value:?} is not a usable socket descriptor")]
    SocketFromEnv {
        value: String,
        #[source]
        source: Option<std::io::Error>,
    },
    /// The pre-connected socket of a runtime-launched plugin was already used once.
    #[error("the runtime-provided NRI connection is gone; a launched plugin cannot reconnect")]
    CannotReconnect,
    /// The plugin name or index is not what the runtime accepts.
    #[error("invalid plugin {what} {value:?}: {reason}")]
    InvalidIdentity {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The runtime refused or failed `RegisterPlugin`.
    #[error("RegisterPlugin failed")]
    Register(#[source] ttrpc::Error),
    /// Starting the ttrpc server for the Plugin service failed.
    #[error("cannot serve the NRI Plugin service")]
    Serve(#[source] ttrpc::Error),
    /// The runtime did not configure and synchronize the plugin in time.
    #[error("the runtime did not configure and synchronize the plugin within {0:?}")]
    RegistrationTimeout(Duration),
    /// The runtime announced that it is shutting down.
    #[error("the runtime shut the plugin down")]
    RuntimeShutdown,
    /// The socket broke or was closed.
    #[error("NRI connection lost")]
    ConnectionLost(#[source] MuxError),
}

impl Error {
    /// Whether a new connection attempt can help (false for configuration errors).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Register(_)
                | Error::RegistrationTimeout(_)
                | Error::RuntimeShutdown
                | Error::ConnectionLost(_)
                | Error::Serve(_)
        )
    }
}
