//! Parsing the configuration file, driven by two tables: [`FIELDS`] (the top-level keys)
//! and [`ALERT_FIELDS`] (the `alerts:` section). A key's setter turns its value into the
//! field or says why it cannot; every error carries the position of the node at fault.

use std::path::PathBuf;

use d4c_policy::parse::closest;
use d4c_policy::yaml::{self, Node, NodeKind};

use super::{Alerts, Config, ConfigError, Enforcement, InvalidAtStart, LogFormat, Unregistered};
use crate::bpf::AttachRequest;

/// Sets a field from any value of its key.
type Set<T> = fn(&mut T, String);
/// Sets a field from a value of its key, or says why it cannot (the whole message).
type Check<T> = fn(&mut T, &str) -> Result<(), String>;

/// What a top-level key holds.
enum Field {
    /// A single value.
    Value(Set<Config>),
    /// A single value that may be refused.
    Checked(Check<Config>),
    /// The `alerts:` section ([`ALERT_FIELDS`]).
    Alerts,
    /// `podCgroupParents:`, a list ([`pod_cgroup_parents`]).
    PodCgroupParents,
    /// The `audit:` section ([`audit`]).
    Audit,
    /// `enforcement:`: a mode, or a section with `mode` and `requireSound`
    /// ([`enforcement_section`]).
    Enforcement,
}

/// Every top-level key, in the order `config/d4c.yaml` documents them.
const FIELDS: [(&str, Field); 19] = [
    ("policyDir", Field::Value(|c, v| c.policy_dir = v.into())),
    (
        "invalidPolicyAtStart",
        Field::Checked(invalid_policy_at_start),
    ),
    (
        "lastGoodPolicyDir",
        Field::Value(|c, v| c.last_good_policy_dir = v.into()),
    ),
    ("nriSocket", Field::Value(|c, v| c.nri_socket = v.into())),
    ("pluginName", Field::Value(|c, v| c.plugin_name = v)),
    ("pluginIndex", Field::Checked(plugin_index)),
    (
        "clusterId",
        Field::Value(|c, v| c.cluster_id = non_empty(v)),
    ),
    (
        "clusterName",
        Field::Value(|c, v| c.cluster_name = non_empty(v)),
    ),
    ("bpffs", Field::Value(|c, v| c.bpffs = v.into())),
    ("enforcement", Field::Enforcement),
    ("unregisteredContainers", Field::Checked(unregistered)),
    ("podCgroupParents", Field::PodCgroupParents),
    ("audit", Field::Audit),
    ("alerts", Field::Alerts),
    (
        "metricsAddress",
        Field::Value(|c, v| c.metrics_address = non_empty(v)),
    ),
    (
        "statusSocket",
        Field::Value(|c, v| c.status_socket = v.into()),
    ),
    (
        "metricsNamespaceLabel",
        Field::Checked(metrics_namespace_label),
    ),
    ("logFormat", Field::Checked(log_format)),
    ("logLevel", Field::Value(|c, v| c.log_level = v)),
];

/// What a key of the `alerts:` section holds.
enum AlertField {
    /// A single value.
    Value(Set<Alerts>),
    /// A single value that may be refused.
    Checked(Check<Alerts>),
    /// One setting of the Elasticsearch sink, checked with the others ([`elasticsearch`]).
    Elasticsearch,
}

/// Every key of the `alerts:` section.
const ALERT_FIELDS: [(&str, AlertField); 15] = [
    ("stdout", AlertField::Checked(stdout)),
    (
        "file",
        AlertField::Value(|a, v| a.file = non_empty(v).map(PathBuf::from)),
    ),
    ("fileMaxBytes", AlertField::Checked(file_max_bytes)),
    ("fileKeep", AlertField::Checked(file_keep)),
    (
        "budgetRate",
        AlertField::Checked(|a, v| {
            a.budget_rate = u32::try_from(whole("budgetRate", v)?)
                .map_err(|_| "`budgetRate` is too large".to_owned())?;
            Ok(())
        }),
    ),
    (
        "budgetBurst",
        AlertField::Checked(|a, v| {
            a.budget_burst = u32::try_from(whole("budgetBurst", v)?)
                .map_err(|_| "`budgetBurst` is too large".to_owned())?;
            Ok(())
        }),
    ),
    (
        "throttleSummarySeconds",
        AlertField::Checked(throttle_summary),
    ),
    ("ringBufferBytes", AlertField::Checked(ring_buffer_bytes)),
    (
        "heartbeatSeconds",
        AlertField::Checked(|a, v| {
            a.heartbeat_seconds = u32::try_from(whole("heartbeatSeconds", v)?)
                .map_err(|_| "`heartbeatSeconds` is too large".to_owned())?;
            Ok(())
        }),
    ),
    ("elasticsearchUrl", AlertField::Elasticsearch),
    ("elasticsearchApiKey", AlertField::Elasticsearch),
    ("elasticsearchUsername", AlertField::Elasticsearch),
    ("elasticsearchPassword", AlertField::Elasticsearch),
    ("elasticsearchCaFile", AlertField::Elasticsearch),
    ("elasticsearchBuffer", AlertField::Elasticsearch),
];

/// Parses configuration text (named `file` in errors).
pub(super) fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let err = |node: &Node, message: String| ConfigError {
        file: file.to_owned(),
        line: node.pos.line,
        column: node.pos.col,
        message,
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => return Ok(Config::default()),
        Err(e) => {
            return Err(ConfigError {
                file: file.to_owned(),
                line: e.pos.line,
                column: e.pos.col,
                message: e.message,
            })
        }
    };
    let mut c = Config::default();
    for (key, value) in pairs(&root).map_err(|m| err(&root, m))? {
        let k = key.as_str().unwrap_or_default();
        let s = || scalar(value).map_err(|m| err(value, format!("`{k}`: {m}")));
        match FIELDS.iter().find(|(name, _)| *name == k) {
            Some((_, Field::Value(set))) => set(&mut c, s()?),
            Some((_, Field::Checked(set))) => set(&mut c, &s()?).map_err(|m| err(value, m))?,
            Some((_, Field::Alerts)) => {
                alerts(value, &mut c.alerts).map_err(|(node, m)| err(&node, m))?;
            }
            Some((_, Field::PodCgroupParents)) => {
                c.pod_cgroup_parents =
                    pod_cgroup_parents(value).map_err(|(node, m)| err(node, m))?;
            }
            Some((_, Field::Audit)) => {
                c.audit = audit(value).map_err(|(node, m)| err(&node, m))?;
            }
            Some((_, Field::Enforcement)) => {
                enforcement_section(value, &mut c).map_err(|(node, m)| err(&node, m))?;
            }
            None => return Err(err(key, unknown(k, FIELDS.iter().map(|f| f.0)))),
        }
    }
    Ok(c)
}

/// Applies the `alerts:` section to `a`; an error names its node.
fn alerts(section: &Node, a: &mut Alerts) -> Result<(), (Node, String)> {
    let at = |node: &Node, m: String| (node.clone(), m);
    let mut es: Vec<(String, String, Node)> = Vec::new();
    for (key, value) in pairs(section).map_err(|m| at(section, format!("`alerts`: {m}")))? {
        let name = key.as_str().unwrap_or_default();
        let v = scalar(value).map_err(|m| at(value, format!("`alerts.{name}`: {m}")))?;
        match ALERT_FIELDS.iter().find(|(n, _)| *n == name) {
            Some((_, AlertField::Value(set))) => set(a, v),
            Some((_, AlertField::Checked(set))) => set(a, &v).map_err(|m| at(value, m))?,
            Some((_, AlertField::Elasticsearch)) => es.push((name.to_owned(), v, value.clone())),
            None => return Err(at(key, unknown(name, ALERT_FIELDS.iter().map(|f| f.0)))),
        }
    }
    a.elasticsearch = elasticsearch(&es)?;
    Ok(())
}

/// The `audit:` section: `policies:` (globs on policy file names) and `namespaces:`
/// (globs on Kubernetes namespaces), both lists of strings.
fn audit(section: &Node) -> Result<d4c_policy::Audit, (Node, String)> {
    let at = |node: &Node, m: String| (node.clone(), m);
    let mut a = d4c_policy::Audit::default();
    for (key, value) in pairs(section).map_err(|m| at(section, format!("`audit`: {m}")))? {
        let name = key.as_str().unwrap_or_default();
        let list = match name {
            "policies" => &mut a.policies,
            "namespaces" => &mut a.namespaces,
            other => {
                return Err(at(
                    key,
                    unknown(other, ["policies", "namespaces"].into_iter()),
                ))
            }
        };
        let NodeKind::Seq(items) = &value.kind else {
            return Err(at(
                value,
                format!("`audit.{name}` is a list of globs, e.g. [staging, 'dev-*']"),
            ));
        };
        for item in items {
            let v = scalar(item).map_err(|m| at(item, format!("`audit.{name}`: {m}")))?;
            if v.is_empty() {
                return Err(at(
                    item,
                    format!("`audit.{name}`: an empty glob matches nothing"),
                ));
            }
            list.push(v);
        }
    }
    Ok(a)
}

/// `enforcement:`: the mode (`enforcement: auto`), or a section: `mode:` and
/// `requireSound:` (refuse to start where blocking is not guaranteed).
fn enforcement_section(section: &Node, c: &mut Config) -> Result<(), (Node, String)> {
    let at = |node: &Node, m: String| (node.clone(), m);
    if !matches!(section.kind, NodeKind::Map(_)) {
        let v = scalar(section).map_err(|m| at(section, format!("`enforcement`: {m}")))?;
        return enforcement(c, &v).map_err(|m| at(section, m));
    }
    for (key, value) in pairs(section).map_err(|m| at(section, format!("`enforcement`: {m}")))? {
        let name = key.as_str().unwrap_or_default();
        let v = scalar(value).map_err(|m| at(value, format!("`enforcement.{name}`: {m}")))?;
        match name {
            "mode" => enforcement(c, &v).map_err(|m| at(value, m))?,
            "requireSound" => {
                c.require_sound = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(at(
                            value,
                            format!("`enforcement.requireSound` is true or false, not `{other}`"),
                        ))
                    }
                }
            }
            other => {
                return Err(at(
                    key,
                    unknown(other, ["mode", "requireSound"].into_iter()),
                ))
            }
        }
    }
    Ok(())
}

fn invalid_policy_at_start(c: &mut Config, v: &str) -> Result<(), String> {
    c.invalid_policy_at_start = match v {
        "refuse" => InvalidAtStart::Refuse,
        "alertOnly" => InvalidAtStart::AlertOnly,
        other => {
            return Err(format!(
                "`invalidPolicyAtStart` is `refuse` or `alertOnly`, not `{other}`"
            ))
        }
    };
    Ok(())
}

fn unregistered(c: &mut Config, v: &str) -> Result<(), String> {
    c.unregistered = match v {
        "policy" => Unregistered::Policy,
        "allow" => Unregistered::Allow,
        other => {
            return Err(format!(
                "`unregisteredContainers` is `policy` or `allow`, not `{other}`"
            ))
        }
    };
    Ok(())
}

/// `podCgroupParents:`: directories below the cgroup v2 root; an error names its node.
fn pod_cgroup_parents(value: &Node) -> Result<Vec<PathBuf>, (&Node, String)> {
    let NodeKind::Seq(items) = &value.kind else {
        return Err((
            value,
            "`podCgroupParents` is a list of directories under the cgroup v2 root, e.g. [kubepods, kubepods.slice]".into(),
        ));
    };
    items
        .iter()
        .map(|item| {
            let v = scalar(item).map_err(|m| (item, format!("`podCgroupParents`: {m}")))?;
            let p = PathBuf::from(v.trim_matches('/'));
            if p.as_os_str().is_empty()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err((
                    item,
                    format!(
                        "`podCgroupParents`: `{v}` is not a directory below the cgroup v2 root"
                    ),
                ));
            }
            Ok(p)
        })
        .collect()
}

fn non_empty(v: String) -> Option<String> {
    Some(v).filter(|v| !v.is_empty())
}

fn plugin_index(c: &mut Config, v: &str) -> Result<(), String> {
    if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`pluginIndex` is two digits such as \"50\", not `{v}`"
        ));
    }
    v.clone_into(&mut c.plugin_index);
    Ok(())
}

fn enforcement(c: &mut Config, v: &str) -> Result<(), String> {
    c.enforcement = match v {
        "none" => Enforcement::None,
        "bpf" => Enforcement::Kernel(AttachRequest::Auto),
        other => Enforcement::Kernel(other.parse().map_err(|_| {
            format!("`enforcement` is `auto`, `lsm`, `fmod-ret` or `none`, not `{other}`")
        })?),
    };
    Ok(())
}

fn metrics_namespace_label(c: &mut Config, v: &str) -> Result<(), String> {
    c.metrics_namespace_label = match v {
        "true" => true,
        "false" => false,
        other => {
            return Err(format!(
                "`metricsNamespaceLabel` is true or false, not `{other}`"
            ))
        }
    };
    Ok(())
}

fn log_format(c: &mut Config, v: &str) -> Result<(), String> {
    c.log_format = match v {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(format!("`logFormat` is `text` or `json`, not `{other}`")),
    };
    Ok(())
}

fn stdout(a: &mut Alerts, v: &str) -> Result<(), String> {
    a.stdout = match v {
        "true" => true,
        "false" => false,
        _ => return Err(format!("`alerts.stdout` is true or false, not `{v}`")),
    };
    Ok(())
}

fn file_max_bytes(a: &mut Alerts, v: &str) -> Result<(), String> {
    a.file_max_bytes = whole("fileMaxBytes", v)?.max(4096);
    Ok(())
}

fn throttle_summary(a: &mut Alerts, v: &str) -> Result<(), String> {
    let n = whole("throttleSummarySeconds", v)?;
    a.throttle_summary_seconds = u32::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .ok_or("`throttleSummarySeconds` is a whole number of seconds from 1")?;
    Ok(())
}

fn ring_buffer_bytes(a: &mut Alerts, v: &str) -> Result<(), String> {
    let n = whole("ringBufferBytes", v)?;
    if !n.is_power_of_two() || !(1 << 16..=1 << 30).contains(&n) {
        return Err(format!(
            "`ringBufferBytes` is a power of two from 65536 to 1073741824 (the kernel's ring buffer), not {n}"
        ));
    }
    a.ring_buffer_bytes = u32::try_from(n).unwrap_or(u32::MAX);
    Ok(())
}

fn file_keep(a: &mut Alerts, v: &str) -> Result<(), String> {
    a.file_keep = u32::try_from(whole("fileKeep", v)?).unwrap_or(u32::MAX);
    Ok(())
}

/// The whole number of `alerts.<name>`.
fn whole(name: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("`alerts.{name}` takes a whole number, not `{v}`"))
}

/// The Elasticsearch sink from the `alerts.elasticsearch*` keys; secrets may also come from
/// `D4C_ELASTICSEARCH_API_KEY` / `D4C_ELASTICSEARCH_PASSWORD` (e.g. a Kubernetes Secret).
fn elasticsearch(
    keys: &[(String, String, Node)],
) -> Result<Option<crate::alerts::bulk::BulkConfig>, (Node, String)> {
    let find = |k: &str| keys.iter().find(|(n, v, _)| n == k && !v.is_empty());
    let Some((_, url, url_node)) = find("elasticsearchUrl") else {
        if let Some((k, _, node)) = keys
            .iter()
            .find(|(k, v, _)| !v.is_empty() && k != "elasticsearchBuffer")
        {
            return Err((
                node.clone(),
                format!("`alerts.{k}` needs `alerts.elasticsearchUrl`"),
            ));
        }
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err((
            url_node.clone(),
            format!("`alerts.elasticsearchUrl` must start with http:// or https://, not `{url}`"),
        ));
    }
    let mut b = crate::alerts::bulk::BulkConfig::new(url);
    b.api_key = find("elasticsearchApiKey")
        .map(|x| x.1.clone())
        .or_else(|| std::env::var("D4C_ELASTICSEARCH_API_KEY").ok());
    b.username = find("elasticsearchUsername").map(|x| x.1.clone());
    b.password = find("elasticsearchPassword")
        .map(|x| x.1.clone())
        .or_else(|| std::env::var("D4C_ELASTICSEARCH_PASSWORD").ok());
    b.ca_file = find("elasticsearchCaFile").map(|x| PathBuf::from(&x.1));
    if let Some((_, v, node)) = find("elasticsearchBuffer") {
        b.buffer = v.parse().map_err(|_| {
            (
                node.clone(),
                format!("`alerts.elasticsearchBuffer` takes a whole number, not `{v}`"),
            )
        })?;
    }
    Ok(Some(b))
}

fn unknown<'a>(key: &str, keys: impl Iterator<Item = &'a str> + Clone) -> String {
    match closest(key, keys.clone()) {
        Some(k) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None => format!(
            "unknown key `{key}`; expected one of: {}",
            keys.collect::<Vec<_>>().join(", ")
        ),
    }
}

fn pairs(node: &Node) -> Result<&[(Node, Node)], String> {
    match &node.kind {
        NodeKind::Map(p) => Ok(p),
        _ => Err(format!(
            "expected a mapping (`key: value` lines), found {}",
            node.type_name()
        )),
    }
}

fn scalar(node: &Node) -> Result<String, String> {
    if node.is_null() {
        return Ok(String::new());
    }
    node.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a single value, found {}", node.type_name()))
}
