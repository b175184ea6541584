//! An in-process fake NRI runtime speaking the real wire format: it listens on a Unix
//! socket, multiplexes it, serves the Runtime service on connection 2 and calls the Plugin
//! service on connection 1, as containerd does. Also a recording [`Handler`] and message
//! builders with the shape containerd sends.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use d4c_nri::{
    api::{
        self, Container, Event, LinuxContainer, LinuxPodSandbox, PluginClient, PodSandbox,
        StateChangeEvent,
    },
    mux::{Mux, PLUGIN_CONN, RUNTIME_CONN},
    EventSet, Handler,
};
use tokio::{
    net::{UnixListener, UnixStream},
    sync::{mpsc, Notify},
};
use ttrpc::r#async::{
    transport::{Listener, Socket},
    Client, Server, TtrpcContext,
};

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(5);

/// Awaits `f` or fails the test after [`LIMIT`].
pub async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A listening fake runtime.
pub struct FakeRuntime {
    listener: UnixListener,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeRuntime {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nri.sock");
        let listener = UnixListener::bind(&path).unwrap();
        FakeRuntime {
            listener,
            path,
            _dir: dir,
        }
    }

    /// Accepts the next plugin connection, without any protocol.
    pub async fn accept_raw(&self) -> UnixStream {
        within("accept", self.listener.accept()).await.unwrap().0
    }

    /// Accepts the next plugin and waits for its `RegisterPlugin`.
    pub async fn accept(&self) -> Conn {
        Conn::over(self.accept_raw().await).await
    }
}

/// The Runtime service: records registrations.
struct RuntimeService {
    registered: mpsc::UnboundedSender<(String, String)>,
}

#[async_trait]
impl api::Runtime for RuntimeService {
    async fn register_plugin(
        &self,
        _ctx: &TtrpcContext,
        req: api::RegisterPluginRequest,
    ) -> ttrpc::Result<api::Empty> {
        let _ = self.registered.send((req.plugin_name, req.plugin_idx));
        Ok(api::Empty::default())
    }
}

/// One plugin connection, seen from the runtime.
pub struct Conn {
    pub plugin: PluginClient,
    pub name: String,
    pub idx: String,
    server: Server,
    mux: Mux,
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(2_000_000_000)
}

impl Conn {
    async fn over(stream: UnixStream) -> Conn {
        let mut mux = Mux::new(stream);
        let runtime_conn = mux.take(RUNTIME_CONN).unwrap();
        let plugin_conn = mux.take(PLUGIN_CONN).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let incoming = futures::stream::StreamExt::chain(
            futures::stream::iter([Ok::<_, std::io::Error>(runtime_conn)]),
            futures::stream::pending(),
        );
        let mut server = Server::new()
            .register_service(api::create_runtime(Arc::new(RuntimeService {
                registered: tx,
            })))
            .add_listener(Listener::new(incoming));
        server.start().await.unwrap();
        let plugin = PluginClient::new(Client::new(Socket::new(plugin_conn)));
        let (name, idx) = within("RegisterPlugin", rx.recv()).await.unwrap();
        Conn {
            plugin,
            name,
            idx,
            server,
            mux,
        }
    }

    /// Configure, then Synchronize in `chunks` calls (`more` on all but the last), as the
    /// runtime does after registration. Returns the subscribed event mask.
    pub async fn handshake(&self, pods: &[PodSandbox], ctrs: &[Container], chunks: usize) -> i32 {
        let req = api::ConfigureRequest {
            runtime_name: "fake".into(),
            runtime_version: "1.7.24".into(),
            registration_timeout: 5000,
            request_timeout: 2000,
            ..Default::default()
        };
        let events = within("Configure", self.plugin.configure(ctx(), &req))
            .await
            .unwrap()
            .events;
        let chunks = chunks.max(1);
        for i in 0..chunks {
            let part = |n: usize| (n * i / chunks)..(n * (i + 1) / chunks);
            let req = api::SynchronizeRequest {
                pods: pods[part(pods.len())].to_vec(),
                containers: ctrs[part(ctrs.len())].to_vec(),
                more: i + 1 < chunks,
                ..Default::default()
            };
            let resp = within("Synchronize", self.plugin.synchronize(ctx(), &req))
                .await
                .unwrap();
            assert_eq!(
                resp.more, req.more,
                "a plugin that takes chunks answers more=true"
            );
        }
        events
    }

    /// `StateChange`, as containerd 1.7 delivers most events.
    pub async fn state_change(
        &self,
        event: Event,
        pod: &PodSandbox,
        ctr: Option<&Container>,
    ) -> ttrpc::Result<api::Empty> {
        let req = StateChangeEvent {
            event: event.into(),
            pod: Some(pod.clone()).into(),
            container: ctr.cloned().into(),
            ..Default::default()
        };
        within("StateChange", self.plugin.state_change(ctx(), &req)).await
    }

    /// The dedicated `StartContainer` of newer runtimes.
    pub async fn start_container(&self, pod: &PodSandbox, ctr: &Container) -> ttrpc::Result<()> {
        let req = api::StartContainerRequest {
            pod: Some(pod.clone()).into(),
            container: Some(ctr.clone()).into(),
            ..Default::default()
        };
        within("StartContainer", self.plugin.start_container(ctx(), &req))
            .await
            .map(|_| ())
    }

    /// Drops the connection, as a runtime that restarts does.
    pub async fn close(mut self) {
        drop(self.plugin);
        drop(self.mux);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.server.shutdown()).await;
    }
}

/// A Kubernetes pod as containerd describes it.
pub fn pod(namespace: &str, name: &str) -> PodSandbox {
    PodSandbox {
        id: format!("sandbox-{name}"),
        name: name.into(),
        uid: format!("uid-{name}"),
        namespace: namespace.into(),
        labels: HashMap::from([("app".to_owned(), name.to_owned())]),
        linux: Some(LinuxPodSandbox {
            cgroup_parent: format!("/kubepods/pod-{name}"),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// A container of `pod` as containerd 1.7 describes it (image in an annotation).
pub fn container(pod: &PodSandbox, name: &str, image: &str) -> Container {
    Container {
        id: format!("{name}-0123456789abcdef"),
        pod_sandbox_id: pod.id.clone(),
        name: name.into(),
        annotations: HashMap::from([("io.kubernetes.cri.image-name".to_owned(), image.to_owned())]),
        linux: Some(LinuxContainer {
            cgroups_path: format!("/kubepods/pod-{}/{name}", pod.name),
            ..Default::default()
        })
        .into(),
        pid: 1234,
        ..Default::default()
    }
}

/// A handler that records what it is told, and refuses containers named `refuse*`.
#[derive(Default)]
pub struct Recorder {
    pub log: Mutex<Vec<String>>,
    pub events: Option<EventSet>,
    pub changed: Notify,
}

impl Recorder {
    pub fn with_events(events: EventSet) -> Self {
        Recorder {
            events: Some(events),
            ..Default::default()
        }
    }

    fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
        self.changed.notify_waiters();
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Waits until the log holds `n` entries, then takes them.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        within("handler calls", async {
            loop {
                let notified = self.changed.notified();
                if self.log.lock().unwrap().len() >= n {
                    return self.take();
                }
                notified.await;
            }
        })
        .await
    }
}

impl Handler for Recorder {
    fn events(&self) -> EventSet {
        self.events.unwrap_or_else(|| {
            EventSet::of(&[
                Event::RUN_POD_SANDBOX,
                Event::REMOVE_POD_SANDBOX,
                Event::START_CONTAINER,
                Event::STOP_CONTAINER,
                Event::REMOVE_CONTAINER,
            ])
        })
    }

    async fn synchronize(&self, pods: Vec<PodSandbox>, ctrs: Vec<Container>) -> Result<(), String> {
        let mut names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
        names.extend(ctrs.iter().map(|c| c.name.clone()));
        self.push(format!("sync {}", names.join(",")));
        Ok(())
    }

    async fn start_container(&self, pod: &PodSandbox, ctr: &Container) -> Result<(), String> {
        self.push(format!("start {}/{}/{}", pod.namespace, pod.name, ctr.name));
        if ctr.name.starts_with("refuse") {
            return Err(format!("d4c cannot protect {}", ctr.name));
        }
        Ok(())
    }

    async fn stop_container(&self, pod: &PodSandbox, ctr: &Container) {
        self.push(format!("stop {}/{}", pod.name, ctr.name));
    }

    async fn remove_container(&self, pod: &PodSandbox, ctr: &Container) {
        self.push(format!("remove {}/{}", pod.name, ctr.name));
    }

    async fn run_pod_sandbox(&self, pod: &PodSandbox) {
        self.push(format!("run-pod {}", pod.name));
    }

    async fn remove_pod_sandbox(&self, pod: &PodSandbox) {
        self.push(format!("remove-pod {}", pod.name));
    }
}
