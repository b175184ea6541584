//! Alerts and events: kernel records decoded, enriched with container metadata, written as
//! ECS documents in the datasets Defend for Containers users already query.

pub mod bulk;
pub mod clock;
pub mod decision;
pub mod ecs;
pub mod heartbeat;
pub mod host;
pub mod record;
pub mod sink;
