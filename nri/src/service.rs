//! The Plugin service the runtime calls: configuration, synchronization, and dispatch of
//! events (dedicated methods of newer runtimes, `StateChange` of NRI 0.x) to a [`Handler`].

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use protobuf::Message as _;
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};
use ttrpc::{r#async::TtrpcContext, Code};

use crate::{
    api::{self, Container, Event, PodSandbox},
    events::EventSet,
    handler::Handler,
};

/// What the service tells the session that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The first (complete) `Synchronize` was handled.
    Synchronized,
    /// The runtime called `Shutdown`.
    Shutdown,
}

/// The Plugin service of one connection.
pub(crate) struct PluginService<H> {
    handler: Arc<H>,
    events: EventSet,
    /// Pods and containers of a `Synchronize` that announced more to follow.
    pending: Mutex<(Vec<PodSandbox>, Vec<Container>)>,
    signals: mpsc::UnboundedSender<Signal>,
}

impl<H: Handler> PluginService<H> {
    pub(crate) fn new(handler: Arc<H>, signals: mpsc::UnboundedSender<Signal>) -> Self {
        let events = handler.events();
        PluginService {
            handler,
            events,
            pending: Mutex::default(),
            signals,
        }
    }

    /// Calls the handler for one event (already known to be subscribed).
    async fn dispatch(
        &self,
        event: Event,
        pod: Option<&PodSandbox>,
        container: Option<&Container>,
    ) -> ttrpc::Result<()> {
        let pod = pod.unwrap_or_else(|| PodSandbox::default_instance());
        let span = tracing::info_span!(
            "nri",
            event = ?event,
            namespace = %pod.namespace,
            pod = %pod.name,
            container = container.map_or("", |c| c.name.as_str()),
            id = container.map_or(pod.id.as_str(), |c| short(&c.id)),
        );
        async {
            if !self.events.contains(event) {
                debug!("not subscribed, ignored");
                return Ok(());
            }
            let h = &self.handler;
            match (event, container) {
                (Event::RUN_POD_SANDBOX, _) => h.run_pod_sandbox(pod).await,
                (Event::REMOVE_POD_SANDBOX, _) => h.remove_pod_sandbox(pod).await,
                (Event::START_CONTAINER, Some(c)) => {
                    if let Err(reason) = h.start_container(pod, c).await {
                        warn!(%reason, "refusing the container start");
                        return Err(rpc_error(reason));
                    }
                }
                (Event::STOP_CONTAINER, Some(c)) => h.stop_container(pod, c).await,
                (Event::REMOVE_CONTAINER, Some(c)) => h.remove_container(pod, c).await,
                (_, None) => warn!("container event without a container, ignored"),
                _ => debug!("event without a handler, ignored"),
            }
            debug!("handled");
            Ok(())
        }
        .instrument(span)
        .await
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn rpc_error(msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(Code::UNKNOWN, msg))
}

fn event_of(e: protobuf::EnumOrUnknown<Event>) -> Event {
    e.enum_value().unwrap_or(Event::UNKNOWN)
}

type Ctx = TtrpcContext;

#[async_trait]
impl<H: Handler> api::Plugin for PluginService<H> {
    async fn configure(
        &self,
        _ctx: &Ctx,
        req: api::ConfigureRequest,
    ) -> ttrpc::Result<api::ConfigureResponse> {
        info!(
            runtime = %req.runtime_name,
            version = %req.runtime_version,
            nri = %req.nri_version,
            request_timeout_ms = req.request_timeout,
            events = format_args!("{:#x}", self.events.wire()),
            "configured by the runtime"
        );
        let timeout = u64::try_from(req.request_timeout)
            .ok()
            .filter(|&ms| ms > 0)
            .map(std::time::Duration::from_millis);
        self.handler.configured(timeout);
        Ok(api::ConfigureResponse {
            events: self.events.wire(),
            ..Default::default()
        })
    }

    async fn synchronize(
        &self,
        _ctx: &Ctx,
        req: api::SynchronizeRequest,
    ) -> ttrpc::Result<api::SynchronizeResponse> {
        let (pods, containers) = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.0.extend(req.pods);
            pending.1.extend(req.containers);
            if req.more {
                debug!(
                    pods = pending.0.len(),
                    containers = pending.1.len(),
                    "synchronize: more to come"
                );
                return Ok(api::SynchronizeResponse {
                    more: true,
                    ..Default::default()
                });
            }
            std::mem::take(&mut *pending)
        };
        let span = tracing::info_span!("nri", event = "Synchronize");
        async {
            info!(
                pods = pods.len(),
                containers = containers.len(),
                "synchronizing"
            );
            self.handler
                .synchronize(pods, containers)
                .await
                .map_err(|reason| {
                    warn!(%reason, "synchronize failed");
                    rpc_error(reason)
                })
        }
        .instrument(span)
        .await?;
        let _ = self.signals.send(Signal::Synchronized);
        Ok(api::SynchronizeResponse::default())
    }

    async fn shutdown(&self, _ctx: &Ctx, _req: api::Empty) -> ttrpc::Result<api::Empty> {
        info!("the runtime is shutting down");
        let _ = self.signals.send(Signal::Shutdown);
        Ok(api::Empty::default())
    }

    async fn run_pod_sandbox(
        &self,
        _ctx: &Ctx,
        req: api::RunPodSandboxRequest,
    ) -> ttrpc::Result<api::RunPodSandboxResponse> {
        self.dispatch(Event::RUN_POD_SANDBOX, req.pod.as_ref(), None)
            .await?;
        Ok(api::RunPodSandboxResponse::default())
    }

    async fn stop_pod_sandbox(
        &self,
        _ctx: &Ctx,
        req: api::StopPodSandboxRequest,
    ) -> ttrpc::Result<api::StopPodSandboxResponse> {
        self.dispatch(Event::STOP_POD_SANDBOX, req.pod.as_ref(), None)
            .await?;
        Ok(api::StopPodSandboxResponse::default())
    }

    async fn remove_pod_sandbox(
        &self,
        _ctx: &Ctx,
        req: api::RemovePodSandboxRequest,
    ) -> ttrpc::Result<api::RemovePodSandboxResponse> {
        self.dispatch(Event::REMOVE_POD_SANDBOX, req.pod.as_ref(), None)
            .await?;
        Ok(api::RemovePodSandboxResponse::default())
    }

    async fn create_container(
        &self,
        _ctx: &Ctx,
        req: api::CreateContainerRequest,
    ) -> ttrpc::Result<api::CreateContainerResponse> {
        self.dispatch(
            Event::CREATE_CONTAINER,
            req.pod.as_ref(),
            req.container.as_ref(),
        )
        .await?;
        Ok(api::CreateContainerResponse::default())
    }

    async fn post_create_container(
        &self,
        _ctx: &Ctx,
        req: api::PostCreateContainerRequest,
    ) -> ttrpc::Result<api::PostCreateContainerResponse> {
        let (p, c) = (req.pod.as_ref(), req.container.as_ref());
        self.dispatch(Event::POST_CREATE_CONTAINER, p, c).await?;
        Ok(api::PostCreateContainerResponse::default())
    }

    async fn start_container(
        &self,
        _ctx: &Ctx,
        req: api::StartContainerRequest,
    ) -> ttrpc::Result<api::StartContainerResponse> {
        self.dispatch(
            Event::START_CONTAINER,
            req.pod.as_ref(),
            req.container.as_ref(),
        )
        .await?;
        Ok(api::StartContainerResponse::default())
    }

    async fn post_start_container(
        &self,
        _ctx: &Ctx,
        req: api::PostStartContainerRequest,
    ) -> ttrpc::Result<api::PostStartContainerResponse> {
        let (p, c) = (req.pod.as_ref(), req.container.as_ref());
        self.dispatch(Event::POST_START_CONTAINER, p, c).await?;
        Ok(api::PostStartContainerResponse::default())
    }

    async fn update_container(
        &self,
        _ctx: &Ctx,
        req: api::UpdateContainerRequest,
    ) -> ttrpc::Result<api::UpdateContainerResponse> {
        self.dispatch(
            Event::UPDATE_CONTAINER,
            req.pod.as_ref(),
            req.container.as_ref(),
        )
        .await?;
        Ok(api::UpdateContainerResponse::default())
    }

    async fn post_update_container(
        &self,
        _ctx: &Ctx,
        req: api::PostUpdateContainerRequest,
    ) -> ttrpc::Result<api::PostUpdateContainerResponse> {
        let (p, c) = (req.pod.as_ref(), req.container.as_ref());
        self.dispatch(Event::POST_UPDATE_CONTAINER, p, c).await?;
        Ok(api::PostUpdateContainerResponse::default())
    }

    async fn stop_container(
        &self,
        _ctx: &Ctx,
        req: api::StopContainerRequest,
    ) -> ttrpc::Result<api::StopContainerResponse> {
        self.dispatch(
            Event::STOP_CONTAINER,
            req.pod.as_ref(),
            req.container.as_ref(),
        )
        .await?;
        Ok(api::StopContainerResponse::default())
    }

    async fn remove_container(
        &self,
        _ctx: &Ctx,
        req: api::RemoveContainerRequest,
    ) -> ttrpc::Result<api::RemoveContainerResponse> {
        self.dispatch(
            Event::REMOVE_CONTAINER,
            req.pod.as_ref(),
            req.container.as_ref(),
        )
        .await?;
        Ok(api::RemoveContainerResponse::default())
    }

    async fn state_change(
        &self,
        _ctx: &Ctx,
        req: api::StateChangeEvent,
    ) -> ttrpc::Result<api::Empty> {
        let event = event_of(req.event);
        self.dispatch(event, req.pod.as_ref(), req.container.as_ref())
            .await?;
        Ok(api::Empty::default())
    }
}
