//! What a plugin does on NRI events: the trait the d4c daemon implements.

use std::future::Future;

use crate::{
    api::{Container, Event, PodSandbox},
    events::EventSet,
};

/// Pod and container events, as the plugin runtime delivers them.
///
/// Every method runs inside the runtime's request: it must answer well within the runtime's
/// request timeout (2 s by default), after which the runtime drops the plugin and carries
/// on without it. Containers of one pod arrive in order; calls for different containers
/// can run concurrently.
pub trait Handler: Send + Sync + 'static {
    /// The events to subscribe to. Subscribe only to what is used: every subscribed event
    /// is a round trip in the runtime's container path.
    fn events(&self) -> EventSet {
        EventSet::of(&[
            Event::RUN_POD_SANDBOX,
            Event::REMOVE_POD_SANDBOX,
            Event::START_CONTAINER,
            Event::STOP_CONTAINER,
            Event::REMOVE_CONTAINER,
        ])
    }

    /// The runtime's request timeout, from its Configure request (`None`: it sent none),
    /// once per connection, before Synchronize: a handler that may not answer in time can
    /// refuse a request before the runtime gives up on the plugin.
    fn configured(&self, _request_timeout: Option<std::time::Duration>) {}

    /// Every pod and container the runtime knows, once per connection, before any event.
    /// An error makes the runtime drop the plugin.
    fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// A container is about to start: its cgroup exists, none of its processes has run.
    /// An error fails the start; the message reaches the runtime (and the kubelet).
    fn start_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// A container is being stopped.
    fn stop_container(
        &self,
        _pod: &PodSandbox,
        _container: &Container,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A container was removed.
    fn remove_container(
        &self,
        _pod: &PodSandbox,
        _container: &Container,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A pod sandbox was started.
    fn run_pod_sandbox(&self, _pod: &PodSandbox) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A pod sandbox was removed.
    fn remove_pod_sandbox(&self, _pod: &PodSandbox) -> impl Future<Output = ()> + Send {
        async {}
    }
}
