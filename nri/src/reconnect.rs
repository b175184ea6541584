//! Keeping a plugin connected: sessions in a loop, with capped exponential backoff.

use std::{future::Future, sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::{
    error::Error,
    handler::Handler,
    plugin::{session, PluginConfig},
};

/// Delays between connection attempts: `initial`, doubled after every failure up to `max`,
/// back to `initial` after a session that got synchronized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

/// Runs plugin sessions until `shutdown` completes (`Ok`) or an error that reconnecting
/// cannot cure (configuration errors; a runtime-launched plugin's connection ends: the
/// process should then exit so the runtime starts it again).
pub async fn run_with_reconnect<H: Handler>(
    mut config: PluginConfig,
    handler: Arc<H>,
    backoff: Backoff,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(shutdown);
    let mut delay = backoff.initial;
    loop {
        let end = session(&mut config, Arc::clone(&handler), &mut shutdown).await;
        let err = match end.result {
            Ok(()) => return Ok(()),
            Err(e) if !e.is_retryable() || !config.can_reconnect() => return Err(e),
            Err(e) => e,
        };
        if end.synchronized {
            delay = backoff.initial;
        }
        warn!(error = %chain(&err), retry_in = ?delay, "NRI session ended; reconnecting");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => {
                info!("shutdown while waiting to reconnect");
                return Ok(());
            }
        }
        delay = (delay * 2).min(backoff.max);
    }
}

/// An error with its sources, `outer: inner: ...`.
#[must_use]
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(inner) = next {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        next = inner.source();
    }
    s
}
