//! ECS documents for decisions, in the field names and datasets of Defend for Containers:
//! alerts in `logs-cloud_defend.alerts-*`, other file events in `logs-cloud_defend.file-*`,
//! process events in `logs-cloud_defend.process-*`.

use super::decision::{decide, events, process_name, started_as};
use super::host::Host;
use super::record::{Operation, Record};
use crate::container::ContainerInfo;
use d4c_policy::{Actions, Policy};
use serde_json::{json, Map, Value};
use std::time::SystemTime;

/// Everything a document says besides the kernel record.
pub struct Context<'a> {
    pub timestamp: SystemTime,
    pub container: Option<&'a ContainerInfo>,
    pub policy: Option<&'a Policy>,
    pub policy_revision: u64,
    /// The node (`host.*`).
    pub host: &'a Host,
    /// A unique id for the document (`event.id`).
    pub event_id: String,
}

/// RFC 3339 in UTC with milliseconds, without a date-time crate.
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Sets a dotted ECS path in a document, making the objects on the way.
pub(super) fn set(doc: &mut Map<String, Value>, dotted: &str, value: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut cur = doc;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_owned(), value);
            return;
        }
        cur = cur
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("ECS paths do not collide");
    }
}

/// The names of the selectors that match the record, re-evaluated with the policy.
fn matched_selectors(r: &Record, ctx: &Context<'_>) -> Vec<String> {
    let (Some(policy), Some(c)) = (ctx.policy, ctx.container) else {
        return Vec::new();
    };
    decide(r, policy, &c.attrs)
        .selectors
        .into_iter()
        .map(|i| policy.selector_label(i))
        .collect()
}

/// Where a document goes and what it is: an alert (any alert or block action) or an
/// event, of the file or the process category.
struct Class {
    alert: bool,
    category: &'static str,
    dataset: &'static str,
}

impl Class {
    fn of(r: &Record) -> Class {
        let alert = r.actions.contains(Actions::ALERT) || r.actions.would_block();
        let category = match r.operation {
            Operation::File(_) => "file",
            Operation::Process(_) => "process",
        };
        let dataset = match (alert, &r.operation) {
            (true, _) => "cloud_defend.alerts",
            (false, Operation::File(_)) => "cloud_defend.file",
            (false, Operation::Process(_)) => "cloud_defend.process",
        };
        Class {
            alert,
            category,
            dataset,
        }
    }
}

/// The ECS document for one decision, section by section.
#[must_use]
pub fn document(r: &Record, ctx: &Context<'_>) -> Value {
    let class = Class::of(r);
    let mut d = Map::new();
    set(&mut d, "@timestamp", json!(rfc3339(ctx.timestamp)));
    set(
        &mut d,
        "data_stream",
        json!({"type": "logs", "dataset": class.dataset, "namespace": "default"}),
    );
    set(&mut d, "event", event(r, ctx, &class));
    if let Operation::File(_) = r.operation {
        set(&mut d, "file", file(r));
    }
    set(&mut d, "process", process(r, ctx.host));
    set(&mut d, "host", ctx.host.fields());
    set(&mut d, "agent", agent(ctx.host));
    set(&mut d, "ecs.version", json!(ECS_VERSION));
    if let Some(c) = ctx.container {
        set(&mut d, "container", container(c));
        if let Some(o) = orchestrator(c) {
            set(&mut d, "orchestrator", o);
        }
    }
    set(&mut d, "cloud_defend", cloud_defend(r, ctx));
    Value::Object(d)
}

/// `event`: kind, category, type (with `denied`), action (the operations), outcome.
fn event(r: &Record, ctx: &Context<'_>, class: &Class) -> Value {
    let (action, mut types): (String, Vec<&str>) = match &r.operation {
        Operation::File(ops) => {
            let t = if ops.iter().any(|o| o.name().starts_with("create")) {
                "creation"
            } else if ops.iter().any(|o| o.name() == "deleteFile") {
                "deletion"
            } else if ops.iter().any(|o| o.name() == "execMemFd") {
                "start"
            } else {
                "change"
            };
            (
                ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(","),
                vec![t],
            )
        }
        Operation::Process(op) => (op.name().to_owned(), vec!["start"]),
    };
    if r.denied {
        types.push("denied");
    }
    json!({
        "kind": if class.alert { "alert" } else { "event" },
        "category": [class.category],
        "type": types,
        "action": action,
        "outcome": if r.denied { "failure" } else { "success" },
        "id": ctx.event_id,
        "module": "cloud_defend",
        "dataset": class.dataset,
    })
}

/// `file`: the path the file operation acted on, its name, extension and mode.
fn file(r: &Record) -> Value {
    let name = r.path.rsplit('/').next().unwrap_or(&r.path);
    let mut file = json!({"path": r.path, "name": name, "mode": format!("{:o}", r.mode & 0o7777)});
    if let Some((_, ext)) = name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()) {
        file["extension"] = json!(ext);
    }
    file
}

/// `process`: the task; its executable is the program run for exec and fork, the task's
/// own for a file operation. `start` and `entity_id` (and the parent's) where the kernel
/// read the start time.
fn process(r: &Record, host: &Host) -> Value {
    let executable = match r.operation {
        Operation::File(_) => &r.exe,
        Operation::Process(_) => &r.path,
    };
    let mut p = json!({
        "pid": r.pid,
        "name": process_name(r),
        "interactive": r.interactive,
        "parent": {"pid": r.ppid},
        "executable": executable,
        "user": {"id": r.uid.to_string()},
        "group": {"id": r.gid.to_string()},
    });
    for (at, pid, start) in [
        ("", r.pid, r.start_ns),
        ("parent", r.ppid, r.parent_start_ns),
    ] {
        if start == 0 || pid == 0 {
            continue;
        }
        let o = if at.is_empty() { &mut p } else { &mut p[at] };
        o["entity_id"] = json!(entity_id(host, pid, start));
        o["start"] = json!(rfc3339(super::clock::fixed_wall_time(start)));
    }
    p
}

/// `process.entity_id`: the same for every document of one process, and for no other
/// process (pids are reused, start times are not; the boot id tells nodes and boots
/// apart): the node's boot id, the pid and the start in boot-clock nanoseconds.
#[must_use]
pub fn entity_id(host: &Host, pid: u32, start_ns: u64) -> String {
    let boot = host.boot_id.as_deref().unwrap_or(&host.name);
    format!("{boot}-{pid}-{start_ns}")
}

/// One container's summary of what its event budget held back since the last summary.
#[derive(Debug, Clone)]
pub struct Throttled {
    /// Events held back.
    pub count: u64,
    /// When the first and the last of them happened.
    pub first: SystemTime,
    /// See `first`.
    pub last: SystemTime,
    /// The paths sampled among them, most frequent first, with their sample counts.
    pub paths: Vec<(String, u64)>,
}

/// The summary document of a container's held-back events (`event.action: throttled`),
/// in the alerts data stream.
#[must_use]
pub fn throttled_document(
    t: &Throttled,
    container: Option<&ContainerInfo>,
    ctx: &Context<'_>,
) -> Value {
    let mut d = Map::new();
    set(&mut d, "@timestamp", json!(rfc3339(ctx.timestamp)));
    set(
        &mut d,
        "data_stream",
        json!({"type": "logs", "dataset": "cloud_defend.alerts", "namespace": "default"}),
    );
    set(
        &mut d,
        "event",
        json!({
            "kind": "alert",
            "category": ["file", "process"],
            "type": ["info"],
            "action": "throttled",
            "outcome": "unknown",
            "id": ctx.event_id,
            "module": "cloud_defend",
            "dataset": "cloud_defend.alerts",
        }),
    );
    set(
        &mut d,
        "message",
        json!(format!(
            "{} events of this container were not written (its event budget was spent); blocking was not affected",
            t.count
        )),
    );
    set(&mut d, "host", ctx.host.fields());
    set(&mut d, "agent", agent(ctx.host));
    set(&mut d, "ecs.version", json!(ECS_VERSION));
    if let Some(c) = container {
        set(&mut d, "container", self::container(c));
        if let Some(o) = orchestrator(c) {
            set(&mut d, "orchestrator", o);
        }
    }
    let paths: Vec<Value> = t
        .paths
        .iter()
        .map(|(p, n)| json!({"path": p, "sampled": n}))
        .collect();
    set(
        &mut d,
        "cloud_defend.throttled",
        json!({
            "count": t.count,
            "first": rfc3339(t.first),
            "last": rfc3339(t.last),
            "paths": paths,
        }),
    );
    Value::Object(d)
}

/// `container`: id, name and image.
fn container(c: &ContainerInfo) -> Value {
    let mut container = json!({"id": c.id, "name": c.name});
    if let Some(img) = &c.attrs.image {
        container["image"] = json!({"name": img.full_names()[0], "tag": img.effective_tag()});
    }
    container
}

/// `orchestrator`: namespace, cluster and pod, for a container an orchestrator runs.
/// `resource.label` is an object of the pod's labels: Elastic's data streams map it as
/// `flattened` ("an object containing the labels", the `cloud_defend` package's
/// `fields.yml`). What is not known is left out, not written as null.
fn orchestrator(c: &ContainerInfo) -> Option<Value> {
    let o = c.attrs.orchestrator.as_ref()?;
    let labels: Map<String, Value> = c
        .attrs
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut d = Map::new();
    set(&mut d, "type", json!(o));
    set(&mut d, "resource.type", json!("pod"));
    set(&mut d, "resource.label", Value::Object(labels));
    for (field, value) in [
        ("namespace", &c.attrs.namespace),
        ("cluster.id", &c.attrs.cluster_id),
        ("cluster.name", &c.attrs.cluster_name),
        ("resource.name", &c.attrs.pod_name),
    ] {
        if let Some(v) = value {
            set(&mut d, field, json!(v));
        }
    }
    Some(Value::Object(d))
}

/// The ECS version of the documents: the one Elastic's ingest pipelines for these data
/// streams stamp (`cloud_defend` package, `ingest_pipeline/default.yml`).
pub const ECS_VERSION: &str = "8.7.0";

/// `agent`: d4c, its version, and the node it runs on.
pub(super) fn agent(host: &Host) -> Value {
    json!({"type": "d4c", "name": host.name, "version": env!("CARGO_PKG_VERSION")})
}

/// `cloud_defend`: the selectors that matched, the hook, the actions, the rule set and
/// the policy revision.
fn cloud_defend(r: &Record, ctx: &Context<'_>) -> Value {
    // An audited block keeps `block` in the actions, with `audit: true`: views and replay
    // tell "would have been blocked" (outcome success) from "blocked" (failure).
    let audited = r.actions.contains(Actions::AUDIT) && !r.denied;
    let mut actions = r.actions.names();
    actions.retain(|a| *a != "audit");
    if audited && !actions.contains(&"block") {
        actions.push("block");
        actions.sort_unstable();
    }
    let mut v = json!({
        "matched_selectors": matched_selectors(r, ctx),
        "hook_point": r.hook,
        "actions": actions,
        "audit": audited,
        "rule_set": r.rule_set,
        "policy_revision": ctx.policy_revision,
        "truncated": r.truncated,
        "path_unreachable": r.unreachable,
    });
    if let Some(started) = started_as(r) {
        v["started_as"] = json!(started);
    }
    // For an alert: the exception that would have allowed it, ready for the policy.
    if let (Some(policy), Some(c)) = (ctx.policy, ctx.container) {
        if r.actions.contains(Actions::ALERT) || r.actions.would_block() {
            if let Some(x) = d4c_policy::suggest::exception(policy, &c.attrs, &events(r)) {
                v["suggested_exception"] = json!(x);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4c_policy::{load_str, Container, FileOp, ImageRef};
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_780_800_123);
        assert_eq!(rfc3339(t), "2026-11-27T12:00:00.123Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_hours(264_384);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn an_alert_names_pod_image_process_and_file() {
        let policy = load_str("p.yaml", "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable]\n  responses:\n    - match: [drift]\n      actions: [alert, block]\n").unwrap().policy;
        let mut attrs = Container {
            image: ImageRef::parse("docker.io/library/nginx:1.25").ok(),
            namespace: Some("prod".into()),
            pod_name: Some("web-1".into()),
            orchestrator: Some("kubernetes".into()),
            ..Container::default()
        };
        attrs.labels.insert("app".into(), "web".into());
        let info = ContainerInfo {
            id: "c1".into(),
            name: "nginx".into(),
            attrs,
            cgroup_id: 9,
            cgroup_dir: None,
        };
        let r = Record {
            operation: Operation::File(vec![FileOp::CreateExecutable, FileOp::CreateFile]),
            actions: Actions(Actions::ALERT | Actions::BLOCK),
            denied: true,
            rule_set: 1,
            cgroup_id: 9,
            owner_cgroup_id: 9,
            boot_ns: 0,
            start_ns: 5_000_000_000,
            parent_start_ns: 0,
            pid: 42,
            ppid: 1,
            uid: 0,
            gid: 0,
            mode: 0o100_755,
            hook: "path_mknod",
            interactive: false,
            comm: "cp".into(),
            path: "/tmp/x.sh".into(),
            exe: "/bin/busybox".into(),
            truncated: false,
            unreachable: false,
            sample: false,
        };
        let ctx = Context {
            timestamp: SystemTime::UNIX_EPOCH,
            container: Some(&info),
            policy: Some(&policy),
            policy_revision: 3,
            host: &super::super::host::Host::named("node-1"),
            event_id: "e1".into(),
        };
        let d = document(&r, &ctx);
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["type"], json!(["creation", "denied"]));
        assert_eq!(d["data_stream"]["dataset"], "cloud_defend.alerts");
        assert_eq!(d["file"]["path"], "/tmp/x.sh");
        assert_eq!(d["file"]["extension"], "sh");
        assert_eq!(d["file"]["mode"], "755");
        assert_eq!(d["process"]["name"], "cp");
        assert_eq!(d["container"]["image"]["name"], "docker.io/library/nginx");
        assert_eq!(d["container"]["image"]["tag"], "1.25");
        assert_eq!(d["orchestrator"]["namespace"], "prod");
        assert_eq!(
            d["orchestrator"]["resource"]["label"],
            json!({"app": "web"})
        );
        assert_eq!(d["host"]["name"], "node-1");
        assert_eq!(d["process"]["user"]["id"], "0");
        assert_eq!(d["process"]["entity_id"], "node-1-42-5000000000");
        assert!(d["process"]["start"].is_string());
        assert!(
            d["process"]["parent"].get("entity_id").is_none(),
            "unknown, left out"
        );
        assert_eq!(d["ecs"]["version"], ECS_VERSION);
        assert!(d.get("user").is_none() && d.get("group").is_none());
        assert_eq!(d["cloud_defend"]["matched_selectors"], json!(["drift"]));
        assert_eq!(d["cloud_defend"]["policy_revision"], 3);
        assert_eq!(d["cloud_defend"]["audit"], false);
        assert_eq!(d["event"]["outcome"], "failure");
        assert_eq!(
            d["cloud_defend"]["suggested_exception"],
            json!({"response": "p.yaml: file response 1", "selector": {
                "containerImageName": ["nginx"], "kubernetesNamespace": ["prod"],
                "operation": ["createExecutable"], "targetFilePath": ["/tmp/x.sh"]}})
        );

        // The same operation under audit: allowed, an alert that it would have been blocked.
        let audited = Record {
            actions: Actions(Actions::ALERT | Actions::AUDIT),
            denied: false,
            ..r
        };
        let d = document(&audited, &ctx);
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["outcome"], "success");
        assert_eq!(d["event"]["type"], json!(["creation"]));
        assert_eq!(d["data_stream"]["dataset"], "cloud_defend.alerts");
        assert_eq!(d["cloud_defend"]["audit"], true);
        assert_eq!(d["cloud_defend"]["actions"], json!(["alert", "block"]));
    }
}
