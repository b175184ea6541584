//! Conformance of d4c's documents to Elastic's definitions of the Defend for Containers
//! data streams (`logs-cloud_defend.{alerts,file,process}-*`): every field is either one
//! Elastic defines for them, with a value of its type, or one of d4c's own fields listed
//! here (documented in docs/alerts.md). Names and types are from Elastic's integration
//! package `cloud_defend` (`data_stream/alerts/fields/ecs.yml` and each stream's
//! `fields.yml`), as `../shared/reference/elastic-cloud-defend-documents.md` lists them.

use serde_json::Value;

/// A field's type, as the index maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Keyword,
    Long,
    Date,
    Boolean,
    Ip,
    /// A JSON object of any shape (`flattened`, and d4c's own objects).
    Object,
}

use Type::{Boolean, Date, Ip, Keyword, Long, Object};

/// The fields Elastic defines for the three logs data streams.
pub const ELASTIC: &[(&str, Type)] = &[
    ("message", Keyword),
    ("ecs.version", Keyword),
    ("agent.id", Keyword),
    ("agent.name", Keyword),
    ("agent.type", Keyword),
    ("agent.version", Keyword),
    ("cloud.provider", Keyword),
    ("cloud.region", Keyword),
    ("cloud.availability_zone", Keyword),
    ("cloud.account.id", Keyword),
    ("cloud.account.name", Keyword),
    ("cloud.project.id", Keyword),
    ("cloud.project.name", Keyword),
    ("container.id", Keyword),
    ("container.image.name", Keyword),
    ("container.image.tag", Keyword),
    ("event.category", Keyword),
    ("event.created", Date),
    ("event.ingested", Date),
    ("event.id", Keyword),
    ("event.kind", Keyword),
    ("event.type", Keyword),
    ("file.mode", Keyword),
    ("file.name", Keyword),
    ("file.path", Keyword),
    ("host.architecture", Keyword),
    ("host.hostname", Keyword),
    ("host.ip", Ip),
    ("host.mac", Keyword),
    ("host.name", Keyword),
    ("host.os.codename", Keyword),
    ("host.os.family", Keyword),
    ("host.os.full", Keyword),
    ("host.os.kernel", Keyword),
    ("host.os.name", Keyword),
    ("host.os.platform", Keyword),
    ("host.os.type", Keyword),
    ("host.os.version", Keyword),
    ("host.boot.id", Keyword),
    ("host.pid_ns_ino", Keyword),
    ("orchestrator.cluster.id", Keyword),
    ("orchestrator.cluster.name", Keyword),
    ("orchestrator.resource.ip", Keyword),
    ("orchestrator.resource.name", Keyword),
    ("orchestrator.resource.type", Keyword),
    ("orchestrator.resource.parent.type", Keyword),
    ("orchestrator.namespace", Keyword),
    ("orchestrator.resource.label", Object),
    ("orchestrator.resource.annotation", Object),
    ("process.entity_id", Keyword),
    ("process.executable", Keyword),
    ("process.name", Keyword),
    ("process.pid", Long),
    ("process.start", Date),
    ("process.parent.entity_id", Keyword),
    ("process.parent.pid", Long),
    ("process.parent.start", Date),
    ("process.entry_leader.entity_id", Keyword),
    ("process.entry_leader.pid", Long),
    ("process.entry_leader.same_as_process", Boolean),
    ("process.entry_leader.start", Date),
    ("process.session_leader.entity_id", Keyword),
    ("process.session_leader.pid", Long),
    ("process.session_leader.same_as_process", Boolean),
    ("process.session_leader.start", Date),
    ("process.user.id", Keyword),
    ("process.user.name", Keyword),
    ("process.group.id", Keyword),
    ("process.group.name", Keyword),
    ("cloud_defend.matched_selectors", Keyword),
    ("cloud_defend.package_policy_id", Keyword),
    ("cloud_defend.package_policy_revision", Long),
    ("cloud_defend.hook_point", Keyword),
];

/// d4c's own fields: ECS fields Elastic's package leaves to ECS's mappings, and d4c's
/// additions under `cloud_defend` (docs/alerts.md explains each).
pub const D4C: &[(&str, Type)] = &[
    ("@timestamp", Date),
    ("data_stream.type", Keyword),
    ("data_stream.dataset", Keyword),
    ("data_stream.namespace", Keyword),
    ("event.action", Keyword),
    ("event.outcome", Keyword),
    ("event.module", Keyword),
    ("event.dataset", Keyword),
    ("file.extension", Keyword),
    ("container.name", Keyword),
    ("process.interactive", Boolean),
    ("orchestrator.type", Keyword),
    ("cloud_defend.actions", Keyword),
    ("cloud_defend.audit", Boolean),
    ("cloud_defend.path_unreachable", Boolean),
    ("cloud_defend.policy_revision", Long),
    ("cloud_defend.rule_set", Long),
    ("cloud_defend.truncated", Boolean),
    ("cloud_defend.started_as", Keyword),
    ("cloud_defend.suggested_exception", Object),
    ("cloud_defend.throttled", Object),
];

fn type_of(field: &str) -> Option<Type> {
    ELASTIC
        .iter()
        .chain(D4C)
        .find(|(f, _)| *f == field)
        .map(|(_, t)| *t)
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && s.ends_with('Z')
}

fn fits(value: &Value, t: Type) -> bool {
    match (t, value) {
        (_, Value::Array(items)) if t != Object => {
            !items.is_empty() && items.iter().all(|v| fits(v, t))
        }
        (Keyword, Value::String(_)) | (Boolean, Value::Bool(_)) | (Object, Value::Object(_)) => {
            true
        }
        (Long, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Date, Value::String(s)) => is_date(s),
        (Ip, Value::String(s)) => s.parse::<std::net::IpAddr>().is_ok(),
        _ => false,
    }
}

/// Walks `value` at `path`, reporting each field that is neither Elastic's nor d4c's, or
/// whose value is not of its type.
fn walk(path: &str, value: &Value, out: &mut Vec<String>) {
    match type_of(path) {
        Some(t) => {
            if !fits(value, t) {
                out.push(format!("{path}: {value} is not a {t:?}"));
            }
        }
        None => match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            _ => out.push(format!(
                "{path}: not a field of Elastic's data streams nor of d4c's"
            )),
        },
    }
}

/// What is wrong with one document of a logs data stream (empty: it conforms). Other
/// documents (the heartbeat's metrics stream) are not judged here.
#[must_use]
pub fn problems(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if doc["data_stream"]["type"] != "logs" {
        return out;
    }
    walk("", doc, &mut out);
    for required in [
        "@timestamp",
        "event.kind",
        "event.id",
        "ecs.version",
        "host.name",
        "host.os.type",
        "agent.type",
        "process.pid",
        "process.entity_id",
        "process.start",
    ] {
        let mut v = doc;
        for part in required.split('.') {
            v = &v[part];
        }
        if v.is_null()
            && !(doc["event"]["action"] == "throttled" && required.starts_with("process."))
        {
            out.push(format!("{required}: missing"));
        }
    }
    out
}

/// Entity ids across documents: one process (pid and start), one id, and one id, one
/// process; a parent's id is the id that parent has in its own documents (both are
/// entries of the same two maps). Returns what is inconsistent.
#[must_use]
pub fn entity_problems(docs: &[Value]) -> Vec<String> {
    use std::collections::HashMap;
    let mut id_of: HashMap<(u64, &str), &str> = HashMap::new();
    let mut process_of: HashMap<&str, (u64, &str)> = HashMap::new();
    let mut out = Vec::new();
    for d in docs {
        for p in [&d["process"], &d["process"]["parent"]] {
            let (Some(pid), Some(start), Some(id)) = (
                p["pid"].as_u64(),
                p["start"].as_str(),
                p["entity_id"].as_str(),
            ) else {
                continue;
            };
            if let Some(other) = id_of.insert((pid, start), id).filter(|o| *o != id) {
                out.push(format!(
                    "process {pid} started {start}: ids {other} and {id}"
                ));
            }
            if let Some(other) = process_of
                .insert(id, (pid, start))
                .filter(|o| *o != (pid, start))
            {
                out.push(format!("{id}: processes {other:?} and {:?}", (pid, start)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_and_types_are_judged() {
        let good = json!({
            "@timestamp": "2026-12-08T00:05:23.227Z",
            "data_stream": {"type": "logs", "dataset": "cloud_defend.alerts", "namespace": "default"},
            "ecs": {"version": "8.7.0"},
            "agent": {"type": "d4c", "name": "n", "version": "0.1.0"},
            "event": {"kind": "alert", "id": "e", "category": ["file"], "type": ["creation", "denied"]},
            "host": {"name": "n", "os": {"type": "linux"}},
            "process": {"pid": 4, "parent": {"pid": 1}, "user": {"id": "0"},
                        "entity_id": "b-4-1", "start": "2026-12-08T00:05:22.000Z"},
            "orchestrator": {"resource": {"label": {"app": "shop"}}},
        });
        assert_eq!(problems(&good), Vec::<String>::new());
        let mut bad = good.clone();
        bad["orchestrator"]["resource"]["label"] = json!(["app:shop"]);
        bad["process"]["pid"] = json!("4");
        bad["user"] = json!({"id": "0"});
        bad["host"]["ip"] = json!("not-an-ip");
        let p = problems(&bad);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p
            .iter()
            .any(|l| l.starts_with("orchestrator.resource.label: ")));
        assert!(p.iter().any(|l| l.starts_with("process.pid: ")));
        assert!(p.iter().any(|l| l.starts_with("user.id: not a field")));
        assert!(p.iter().any(|l| l.starts_with("host.ip: ")));
        let mut missing = good;
        missing["host"] = json!({"name": "n"});
        assert_eq!(problems(&missing), ["host.os.type: missing"]);
    }

    #[test]
    fn entity_ids_are_judged_across_documents() {
        let doc = |pid: u64, start: &str, id: &str, parent: Value| json!({"process": {"pid": pid, "start": start, "entity_id": id, "parent": parent}});
        let t1 = "2026-12-08T00:00:01.000Z";
        let t2 = "2026-12-08T00:00:02.000Z";
        let ok = [
            doc(10, t1, "b-10-1", json!({"pid": 1})),
            doc(
                11,
                t2,
                "b-11-2",
                json!({"pid": 10, "start": t1, "entity_id": "b-10-1"}),
            ),
        ];
        assert!(entity_problems(&ok).is_empty());
        // The parent's id differs from the one it has as a process.
        let bad = [
            ok[0].clone(),
            doc(
                11,
                t2,
                "b-11-2",
                json!({"pid": 10, "start": t1, "entity_id": "b-10-9"}),
            ),
        ];
        assert_eq!(
            entity_problems(&bad).len(),
            1,
            "{:?}",
            entity_problems(&bad)
        );
        // One id for two processes.
        let shared = [ok[0].clone(), doc(12, t2, "b-10-1", json!({}))];
        assert_eq!(entity_problems(&shared).len(), 1);
    }
}
