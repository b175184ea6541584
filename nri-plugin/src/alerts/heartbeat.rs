//! The liveness document Elastic's agent writes for Defend for Containers
//! (`metrics-cloud_defend.heartbeat-*`, whose one own field is
//! `cloud_defend.block_action_enabled`), with the policy revision, and d4c's state under
//! `d4c.*`: how it enforces (attach mode, intact, guaranteed) and what (containers, rule
//! sets, kernel counters).

use super::ecs::{rfc3339, set};
use crate::daemon::owner::Snapshot;
use d4c_common::{CNT_DENIED, CNT_EVENTS, CNT_RINGBUF_DROPS};
use serde_json::{json, Map, Value};
use std::time::SystemTime;

/// What a heartbeat says besides the daemon's snapshot.
pub struct Beat<'a> {
    pub at: SystemTime,
    pub event_id: String,
    /// The node (`host.*`).
    pub host: &'a super::host::Host,
    /// `orchestrator.cluster.id` and `.name`, from the configuration.
    pub cluster: (Option<&'a str>, Option<&'a str>),
    /// The attach mode in force (`None`: nothing is enforced).
    pub mode: Option<&'a str>,
    /// Every program attached with the daemon's maps (its last check).
    pub intact: bool,
    /// Blocking guaranteed on this node (`d4c doctor`).
    pub sound: bool,
}

/// The heartbeat document.
#[must_use]
pub fn document(b: &Beat<'_>, s: &Snapshot) -> Value {
    let mut d = Map::new();
    set(&mut d, "@timestamp", json!(rfc3339(b.at)));
    set(
        &mut d,
        "data_stream",
        json!({"type": "metrics", "dataset": "cloud_defend.heartbeat", "namespace": "default"}),
    );
    set(
        &mut d,
        "event",
        json!({
            "kind": "metric",
            "category": ["host"],
            "type": ["info"],
            "id": b.event_id,
            "module": "cloud_defend",
            "dataset": "cloud_defend.heartbeat",
        }),
    );
    set(&mut d, "agent", super::ecs::agent(b.host));
    set(&mut d, "host", b.host.fields());
    set(&mut d, "ecs.version", json!(super::ecs::ECS_VERSION));
    if let Some(id) = b.cluster.0 {
        set(&mut d, "orchestrator.cluster.id", json!(id));
    }
    if let Some(name) = b.cluster.1 {
        set(&mut d, "orchestrator.cluster.name", json!(name));
    }
    set(
        &mut d,
        "cloud_defend",
        json!({
            "block_action_enabled": s.block_action_enabled,
            "package_policy_revision": s.policy_revision,
        }),
    );
    let counter = |i: u32| {
        s.kernel_counters
            .as_ref()
            .and_then(|c| c.get(i as usize).copied())
    };
    let protected = s
        .containers
        .iter()
        .filter(|c| !c.guard && c.rule_set.is_some())
        .count();
    set(
        &mut d,
        "d4c",
        json!({
            "enforcement": {"mode": b.mode, "intact": b.intact, "sound": b.sound},
            "containers": {
                "registered": s.containers.iter().filter(|c| !c.guard).count(),
                "protected": protected,
            },
            "rule_sets": s.rule_sets,
            "kernel": {
                "denied": counter(CNT_DENIED),
                "events": counter(CNT_EVENTS),
                "ringbuf_drops": counter(CNT_RINGBUF_DROPS),
                "skipped_runs": s.skipped_runs,
            },
        }),
    );
    Value::Object(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::owner::ContainerStatus;

    #[test]
    fn a_heartbeat_is_elastic_s_with_d4c_s_state() {
        let snap = Snapshot {
            policy_revision: 3,
            rule_sets: 2,
            containers: vec![ContainerStatus {
                id: "c1".into(),
                name: "app".into(),
                namespace: Some("prod".into()),
                pod: Some("shop".into()),
                image: None,
                labels: Vec::new(),
                cgroup_id: 7,
                rule_set: Some(1),
                guard: false,
                cgroup_dir: None,
            }],
            kernel_counters: Some(vec![0; 8]),
            block_action_enabled: true,
            policy_valid: true,
            ..Snapshot::default()
        };
        let d = document(
            &Beat {
                at: SystemTime::UNIX_EPOCH,
                event_id: "e".into(),
                host: &crate::alerts::host::Host::named("node-1"),
                cluster: (None, Some("prod-eu")),
                mode: Some("lsm"),
                intact: true,
                sound: true,
            },
            &snap,
        );
        assert_eq!(d["data_stream"]["type"], "metrics");
        assert_eq!(d["data_stream"]["dataset"], "cloud_defend.heartbeat");
        assert_eq!(d["cloud_defend"]["block_action_enabled"], true);
        assert_eq!(d["cloud_defend"]["package_policy_revision"], 3);
        assert_eq!(d["orchestrator"]["cluster"]["name"], "prod-eu");
        assert!(d["orchestrator"]["cluster"].get("id").is_none());
        assert_eq!(d["d4c"]["enforcement"]["mode"], "lsm");
        assert_eq!(d["d4c"]["containers"]["protected"], 1);
        assert_eq!(d["@timestamp"], "1970-01-01T00:00:00.000Z");
    }
}
