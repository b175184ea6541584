//! The plugin runtime: connect, register, get configured and synchronized, serve events
//! until the connection ends.
//!
//! Two ways to reach the runtime, as NRI defines them:
//! - external plugin (a Kubernetes daemon set, d4c's normal mode): connect to the runtime's socket,
//!   `/var/run/nri/nri.sock` unless configured otherwise; the plugin chooses its name and
//!   index and can reconnect after the runtime restarts;
//! - runtime-launched plugin: the runtime starts the binary with a connected socket whose
//!   descriptor number is in `NRI_PLUGIN_SOCKET`, and the name and index in
//!   `NRI_PLUGIN_NAME` and `NRI_PLUGIN_IDX`. That socket is single-use: when it closes, the
//!   plugin exits and the runtime starts it again.

use std::{
    future::Future,
    io,
    os::{fd::OwnedFd, unix::net::UnixStream as StdUnixStream},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use tokio::{net::UnixStream, sync::mpsc, time::timeout};
use tracing::info;
use ttrpc::r#async::{
    transport::{Listener, Socket},
    Client, Server,
};

use crate::{
    api::{self, RegisterPluginRequest, RuntimeClient},
    error::Error,
    handler::Handler,
    mux::{Mux, PLUGIN_CONN, RUNTIME_CONN},
    service::{PluginService, Signal},
};

/// Where runtimes listen for external plugins by default.
pub const DEFAULT_SOCKET: &str = "/var/run/nri/nri.sock";
/// Descriptor number of the pre-connected socket of a runtime-launched plugin.
pub const ENV_SOCKET: &str = "NRI_PLUGIN_SOCKET";
/// Name given to a runtime-launched plugin.
pub const ENV_NAME: &str = "NRI_PLUGIN_NAME";
/// Index given to a runtime-launched plugin.
pub const ENV_IDX: &str = "NRI_PLUGIN_IDX";
/// The NRI version announced at registration (informational for the runtime).
const NRI_VERSION: &str = "v0.8.0";

/// How to reach the runtime.
#[derive(Debug)]
pub enum Endpoint {
    /// Connect to this socket path (external plugin).
    Path(PathBuf),
    /// Use this connected socket (runtime-launched plugin); `None` once used.
    Inherited(Option<OwnedFd>),
}

/// Identity and connection settings of a plugin.
#[derive(Debug)]
pub struct PluginConfig {
    /// Plugin name (shown by the runtime; with the index it identifies the plugin).
    pub name: String,
    /// Two-digit index: plugins are called in ascending index order.
    pub idx: String,
    pub endpoint: Endpoint,
    /// How long the runtime may take to configure and synchronize after registration.
    pub registration_timeout: Duration,
}

impl PluginConfig {
    /// An external plugin connecting to `socket`.
    pub fn external(name: &str, idx: &str, socket: impl Into<PathBuf>) -> Result<Self, Error> {
        validate(name, idx)?;
        Ok(PluginConfig {
            name: name.to_owned(),
            idx: idx.to_owned(),
            endpoint: Endpoint::Path(socket.into()),
            registration_timeout: Duration::from_secs(10),
        })
    }

    /// The configuration the environment asks for: runtime-launched when `NRI_PLUGIN_SOCKET`
    /// is set (taking name and index from `NRI_PLUGIN_NAME`/`NRI_PLUGIN_IDX` when set),
    /// else an external plugin on `socket`.
    ///
    /// Takes ownership of the inherited descriptor: call it once per process.
    pub fn from_env(name: &str, idx: &str, socket: impl Into<PathBuf>) -> Result<Self, Error> {
        let name = std::env::var(ENV_NAME).unwrap_or_else(|_| name.to_owned());
        let idx = std::env::var(ENV_IDX).unwrap_or_else(|_| idx.to_owned());
        let mut config = PluginConfig::external(&name, &idx, socket)?;
        if let Ok(value) = std::env::var(ENV_SOCKET) {
            config.endpoint = Endpoint::Inherited(Some(inherited_socket(&value)?));
        }
        Ok(config)
    }

    /// Whether a lost connection can be replaced by a new one.
    #[must_use]
    pub fn can_reconnect(&self) -> bool {
        matches!(self.endpoint, Endpoint::Path(_))
    }

    async fn connect(&mut self) -> Result<UnixStream, Error> {
        match &mut self.endpoint {
            Endpoint::Path(path) => {
                UnixStream::connect(&*path)
                    .await
                    .map_err(|source| Error::Connect {
                        path: path.clone(),
                        source,
                    })
            }
            Endpoint::Inherited(fd) => {
                let fd = fd.take().ok_or(Error::CannotReconnect)?;
                let std = StdUnixStream::from(fd);
                let wrap = |source| Error::SocketFromEnv {
                    value: "inherited".into(),
                    source: Some(source),
                };
                std.set_nonblocking(true).map_err(wrap)?;
                UnixStream::from_std(std).map_err(wrap)
            }
        }
    }
}

fn validate(name: &str, idx: &str) -> Result<(), Error> {
    let bad = |what, value: &str, reason| Error::InvalidIdentity {
        what,
        value: value.to_owned(),
        reason,
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad(
            "name",
            name,
            "must be non-empty, without white space or `/`",
        ));
    }
    if idx.len() != 2 || !idx.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("index", idx, "must be two digits"));
    }
    Ok(())
}

/// Takes the socket descriptor named by `NRI_PLUGIN_SOCKET`, checking it is an open socket.
fn inherited_socket(value: &str) -> Result<OwnedFd, Error> {
    let err = |source| Error::SocketFromEnv {
        value: value.to_owned(),
        source,
    };
    let fd: i32 = value.trim().parse().map_err(|_| err(None))?;
    if fd < 0 {
        return Err(err(None));
    }
    // SAFETY: fstat only writes the stat buffer; a closed descriptor makes it fail.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &raw mut st) } != 0 {
        return Err(err(Some(io::Error::last_os_error())));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(err(None));
    }
    // SAFETY: the descriptor is open (fstat succeeded) and the runtime handed it to this
    // process for the plugin connection; `from_env` documents that it takes ownership.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// How a session ended, and whether it got as far as being synchronized.
pub(crate) struct SessionEnd {
    pub(crate) result: Result<(), Error>,
    pub(crate) synchronized: bool,
}

/// Runs one plugin session: connects, registers, serves `handler` until the connection
/// ends (an error) or `shutdown` completes (`Ok`).
pub async fn run<H: Handler>(
    config: &mut PluginConfig,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    session(config, handler, shutdown).await.result
}

pub(crate) async fn session<H: Handler>(
    config: &mut PluginConfig,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> SessionEnd {
    tokio::pin!(shutdown);
    let stream = match config.connect().await {
        Ok(s) => s,
        Err(e) => {
            return SessionEnd {
                result: Err(e),
                synchronized: false,
            }
        }
    };
    let mut mux = Mux::new(stream);
    let (Some(plugin_conn), Some(runtime_conn)) = (mux.take(PLUGIN_CONN), mux.take(RUNTIME_CONN))
    else {
        unreachable!("a new Mux has both connections")
    };
    let (signals, mut signal_rx) = mpsc::unbounded_channel();
    let service = Arc::new(PluginService::new(handler, signals));
    // The listener yields the one connection, then never ends (so `shutdown` works).
    let incoming = futures::stream::StreamExt::chain(
        futures::stream::iter([Ok::<_, io::Error>(plugin_conn)]),
        futures::stream::pending(),
    );
    let mut server = Server::new()
        .register_service(api::create_plugin(service))
        .add_listener(Listener::new(incoming));
    if let Err(e) = server.start().await {
        return SessionEnd {
            result: Err(Error::Serve(e)),
            synchronized: false,
        };
    }
    // Keep the client for the whole session: dropping it closes connection 2.
    let runtime = RuntimeClient::new(Client::new(Socket::new(runtime_conn)));

    let mut synchronized = false;
    let result = serve(
        config,
        &runtime,
        &mux,
        &mut signal_rx,
        &mut synchronized,
        &mut shutdown,
    )
    .await;
    drop(runtime);
    drop(mux);
    // Bounded: a handler call that never returns must not keep the session alive.
    let _ = timeout(Duration::from_secs(1), server.shutdown()).await;
    SessionEnd {
        result,
        synchronized,
    }
}

async fn serve(
    config: &PluginConfig,
    runtime: &RuntimeClient,
    mux: &Mux,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
    synchronized: &mut bool,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<(), Error> {
    let req = RegisterPluginRequest {
        plugin_name: config.name.clone(),
        plugin_idx: config.idx.clone(),
        nri_version: NRI_VERSION.into(),
        ..Default::default()
    };
    let deadline = config.registration_timeout;
    let nanos = i64::try_from(deadline.as_nanos()).unwrap_or(i64::MAX);
    let registered = async {
        runtime
            .register_plugin(ttrpc::context::with_timeout(nanos), &req)
            .await
            .map_err(Error::Register)?;
        info!(name = %config.name, idx = %config.idx, "registered with the runtime");
        // Configure and Synchronize follow (they may even come first).
        match signals.recv().await {
            Some(Signal::Synchronized) => Ok(()),
            Some(Signal::Shutdown) | None => Err(Error::RuntimeShutdown),
        }
    };
    tokio::select! {
        r = timeout(deadline, registered) => r.map_err(|_| Error::RegistrationTimeout(deadline))??,
        e = mux.closed() => return Err(Error::ConnectionLost(e)),
        () = &mut *shutdown => return Ok(()),
    }
    *synchronized = true;
    info!("synchronized; serving events");
    loop {
        tokio::select! {
            e = mux.closed() => return Err(Error::ConnectionLost(e)),
            s = signals.recv() => match s {
                Some(Signal::Synchronized) => {}
                Some(Signal::Shutdown) | None => {
                    // Let the answer to Shutdown go out; the runtime hangs up next.
                    let _ = timeout(Duration::from_secs(1), mux.closed()).await;
                    return Err(Error::RuntimeShutdown);
                }
            },
            () = &mut *shutdown => {
                info!("plugin stopping on request");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, IntoRawFd};

    use super::*;

    #[test]
    fn identity_is_validated() {
        assert!(PluginConfig::external("d4c", "10", DEFAULT_SOCKET).is_ok());
        for (name, idx) in [
            ("", "10"),
            ("a b", "10"),
            ("d4c", "1"),
            ("d4c", "1x"),
            ("d4c", "100"),
        ] {
            assert!(
                PluginConfig::external(name, idx, DEFAULT_SOCKET).is_err(),
                "{name:?} {idx:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_inherited_socket_is_used_once() {
        let (ours, _theirs) = StdUnixStream::pair().unwrap();
        let fd = ours.into_raw_fd();
        let mut config = PluginConfig::external("d4c", "10", DEFAULT_SOCKET).unwrap();
        config.endpoint = Endpoint::Inherited(Some(inherited_socket(&fd.to_string()).unwrap()));
        assert!(!config.can_reconnect());
        assert!(config.connect().await.is_ok());
        assert!(matches!(
            config.connect().await,
            Err(Error::CannotReconnect)
        ));

        let file = std::fs::File::open("/proc/self/status").unwrap();
        let not_a_socket = file.as_raw_fd().to_string();
        for bad in ["", "x", "-1", "99999", not_a_socket.as_str()] {
            assert!(
                matches!(inherited_socket(bad), Err(Error::SocketFromEnv { .. })),
                "{bad:?}"
            );
        }
    }
}
