//! The daemon's configuration file: every field optional with a documented default
//! (`config/d4c.yaml`), unknown keys refused with their position.

use d4c_policy::parse::closest;
use d4c_policy::yaml::{self, Node, NodeKind};
use std::path::{Path, PathBuf};

/// Where the daemon finds things and what it does; see `config/d4c.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub policy_dir: PathBuf,
    pub nri_socket: PathBuf,
    pub plugin_name: String,
    pub plugin_index: String,
    pub cluster_id: Option<String>,
    pub cluster_name: Option<String>,
    pub bpffs: PathBuf,
    pub enforcement: Enforcement,
    /// What applies to a container the daemon has not registered yet (it started while no
    /// daemon was connected, or before its StartContainer was answered).
    pub unregistered: Unregistered,
    /// The runtime's pod cgroup parents, relative to the cgroup v2 root: cgroups created
    /// below them are guarded by [`Unregistered::Policy`].
    pub pod_cgroup_parents: Vec<PathBuf>,
    pub alerts: Alerts,
    pub metrics_address: Option<String>,
    pub status_socket: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// `enforcement:`: the kernel programs attached in a mode (`auto`, `lsm`, `fmod-ret`;
/// `bpf` is the earlier name of `auto`), or `none` (nothing enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Kernel(crate::bpf::AttachRequest),
    None,
}

/// `unregisteredContainers:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregistered {
    /// The rule set the policy gives a container with no known attributes (only selectors
    /// without container conditions apply), from the container's first instruction, in
    /// the kernel, with or without a running daemon.
    Policy,
    /// Nothing applies until the daemon registers the container.
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alerts {
    pub stdout: bool,
    pub file: Option<PathBuf>,
    pub file_max_bytes: u64,
    pub file_keep: u32,
    /// An Elasticsearch-compatible `_bulk` endpoint (`None`: off).
    pub elasticsearch: Option<crate::alerts::bulk::BulkConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy_dir: "/etc/d4c/policies".into(),
            nri_socket: "/var/run/nri/nri.sock".into(),
            plugin_name: "d4c".into(),
            plugin_index: "50".into(),
            cluster_id: None,
            cluster_name: None,
            bpffs: "/sys/fs/bpf/d4c".into(),
            enforcement: Enforcement::Kernel(crate::bpf::AttachRequest::Auto),
            unregistered: Unregistered::Policy,
            pod_cgroup_parents: vec!["kubepods".into(), "kubepods.slice".into()],
            alerts: Alerts {
                stdout: true,
                file: None,
                file_max_bytes: 100 << 20,
                file_keep: 5,
                elasticsearch: None,
            },
            metrics_address: Some("0.0.0.0:9690".into()),
            status_socket: "/run/d4c/status.sock".into(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

/// A problem in the configuration file, with its position.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: error: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

const KEYS: &[&str] = &[
    "policyDir",
    "nriSocket",
    "pluginName",
    "pluginIndex",
    "clusterId",
    "clusterName",
    "bpffs",
    "enforcement",
    "unregisteredContainers",
    "podCgroupParents",
    "alerts",
    "metricsAddress",
    "statusSocket",
    "logFormat",
    "logLevel",
];
const ALERT_KEYS: &[&str] = &[
    "stdout",
    "file",
    "fileMaxBytes",
    "fileKeep",
    "elasticsearchUrl",
    "elasticsearchApiKey",
    "elasticsearchUsername",
    "elasticsearchPassword",
    "elasticsearchCaFile",
    "elasticsearchBuffer",
];

impl Config {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses configuration text (named `file` in errors).
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
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
            match k {
                "policyDir" => c.policy_dir = s()?.into(),
                "nriSocket" => c.nri_socket = s()?.into(),
                "pluginName" => c.plugin_name = s()?,
                "pluginIndex" => {
                    let v = s()?;
                    if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(err(
                            value,
                            format!("`pluginIndex` is two digits such as \"50\", not `{v}`"),
                        ));
                    }
                    c.plugin_index = v;
                }
                "clusterId" => c.cluster_id = Some(s()?).filter(|v| !v.is_empty()),
                "clusterName" => c.cluster_name = Some(s()?).filter(|v| !v.is_empty()),
                "bpffs" => c.bpffs = s()?.into(),
                "enforcement" => {
                    c.enforcement = match s()?.as_str() {
                        "none" => Enforcement::None,
                        "bpf" => Enforcement::Kernel(crate::bpf::AttachRequest::Auto),
                        other => Enforcement::Kernel(other.parse().map_err(|_| {
                            err(
                                value,
                                format!(
                                    "`enforcement` is `auto`, `lsm`, `fmod-ret` or `none`, not `{other}`"
                                ),
                            )
                        })?),
                    }
                }
                "unregisteredContainers" => {
                    c.unregistered = match s()?.as_str() {
                        "policy" => Unregistered::Policy,
                        "allow" => Unregistered::Allow,
                        other => {
                            return Err(err(
                                value,
                                format!(
                                    "`unregisteredContainers` is `policy` or `allow`, not `{other}`"
                                ),
                            ))
                        }
                    }
                }
                "podCgroupParents" => {
                    let NodeKind::Seq(items) = &value.kind else {
                        return Err(err(
                            value,
                            "`podCgroupParents` is a list of directories under the cgroup v2 root, e.g. [kubepods, kubepods.slice]".into(),
                        ));
                    };
                    c.pod_cgroup_parents = Vec::new();
                    for item in items {
                        let v = scalar(item).map_err(|m| err(item, format!("`podCgroupParents`: {m}")))?;
                        let p = PathBuf::from(v.trim_matches('/'));
                        if v.trim_matches('/').is_empty()
                            || p.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
                        {
                            return Err(err(
                                item,
                                format!("`podCgroupParents`: `{v}` is not a directory below the cgroup v2 root"),
                            ));
                        }
                        c.pod_cgroup_parents.push(p);
                    }
                }
                "metricsAddress" => c.metrics_address = Some(s()?).filter(|v| !v.is_empty()),
                "statusSocket" => c.status_socket = s()?.into(),
                "logFormat" => {
                    c.log_format = match s()?.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        other => {
                            return Err(err(
                                value,
                                format!("`logFormat` is `text` or `json`, not `{other}`"),
                            ))
                        }
                    }
                }
                "logLevel" => c.log_level = s()?,
                "alerts" => {
                    let mut es: Vec<(String, String, Node)> = Vec::new();
                    for (ak, av) in
                        pairs(value).map_err(|m| err(value, format!("`alerts`: {m}")))?
                    {
                        let name = ak.as_str().unwrap_or_default();
                        let v = scalar(av).map_err(|m| err(av, format!("`alerts.{name}`: {m}")))?;
                        let num = || {
                            v.parse::<u64>().map_err(|_| {
                                err(
                                    av,
                                    format!("`alerts.{name}` takes a whole number, not `{v}`"),
                                )
                            })
                        };
                        match name {
                            "stdout" => {
                                c.alerts.stdout = match v.as_str() {
                                    "true" => true,
                                    "false" => false,
                                    _ => {
                                        return Err(err(
                                            av,
                                            format!("`alerts.stdout` is true or false, not `{v}`"),
                                        ))
                                    }
                                }
                            }
                            "file" => {
                                c.alerts.file = Some(PathBuf::from(&v)).filter(|_| !v.is_empty())
                            }
                            "fileMaxBytes" => c.alerts.file_max_bytes = num()?.max(4096),
                            "fileKeep" => {
                                c.alerts.file_keep = u32::try_from(num()?).unwrap_or(u32::MAX)
                            }
                            "elasticsearchUrl"
                            | "elasticsearchApiKey"
                            | "elasticsearchUsername"
                            | "elasticsearchPassword"
                            | "elasticsearchCaFile"
                            | "elasticsearchBuffer" => {
                                es.push((name.to_owned(), v.clone(), av.clone()));
                            }
                            other => return Err(err(ak, unknown(other, ALERT_KEYS))),
                        }
                    }
                    c.alerts.elasticsearch =
                        elasticsearch(&es).map_err(|(node, m)| err(&node, m))?;
                }
                other => return Err(err(key, unknown(other, KEYS))),
            }
        }
        Ok(c)
    }
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

fn unknown(key: &str, keys: &[&str]) -> String {
    match closest(key, keys.iter().copied()) {
        Some(k) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None => format!("unknown key `{key}`; expected one of: {}", keys.join(", ")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{AttachMode, AttachRequest};

    #[test]
    fn the_shipped_file_is_the_defaults() {
        let text = include_str!("../../config/d4c.yaml");
        assert_eq!(Config::parse("d4c.yaml", text).unwrap(), Config::default());
        assert_eq!(Config::parse("empty.yaml", "").unwrap(), Config::default());
    }

    #[test]
    fn values_and_errors() {
        let c = Config::parse("c.yaml", "clusterName: prod\nalerts:\n  file: /var/log/d4c.ndjson\n  stdout: false\nenforcement: none\n").unwrap();
        assert_eq!(c.cluster_name.as_deref(), Some("prod"));
        assert_eq!(
            c.alerts.file.as_deref(),
            Some(Path::new("/var/log/d4c.ndjson"))
        );
        assert!(!c.alerts.stdout);
        assert_eq!(c.enforcement, Enforcement::None);
        for (text, want) in [
            ("auto", AttachRequest::Auto),
            ("bpf", AttachRequest::Auto),
            ("lsm", AttachRequest::Only(AttachMode::Lsm)),
            ("fmod-ret", AttachRequest::Only(AttachMode::FmodRet)),
        ] {
            let c = Config::parse("c.yaml", &format!("enforcement: {text}\n")).unwrap();
            assert_eq!(c.enforcement, Enforcement::Kernel(want), "{text}");
        }
        let c = Config::parse(
            "c.yaml",
            "unregisteredContainers: allow\npodCgroupParents: [kubepods, /custom/pods/]\n",
        )
        .unwrap();
        assert_eq!(c.unregistered, Unregistered::Allow);
        assert_eq!(
            c.pod_cgroup_parents,
            vec![PathBuf::from("kubepods"), PathBuf::from("custom/pods")]
        );
        let e = Config::parse("c.yaml", "podCgroupParents: [../up]\n").unwrap_err();
        assert!(e.to_string().starts_with("c.yaml:1:20: error:"), "{e}");
        let e = Config::parse("c.yaml", "unregisteredContainers: deny\n").unwrap_err();
        assert!(e.to_string().contains("`policy` or `allow`"), "{e}");
        let e = Config::parse("c.yaml", "enforcement: kprobe\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("`enforcement` is `auto`, `lsm`, `fmod-ret` or `none`, not `kprobe`"),
            "{e}"
        );
        let e = Config::parse("c.yaml", "policydir: /x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yaml:1:1: error: unknown key `policydir`; did you mean `policyDir`?"
        );
        let e = Config::parse("c.yaml", "pluginIndex: 5\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.yaml:1:14: error: `pluginIndex` is two digits"),
            "{e}"
        );
        let c = Config::parse(
            "c.yaml",
            "alerts:\n  elasticsearchUrl: https://es:9200\n  elasticsearchApiKey: k\n",
        )
        .unwrap();
        let es = c.alerts.elasticsearch.unwrap();
        assert_eq!(
            (es.url.as_str(), es.api_key.as_deref()),
            ("https://es:9200", Some("k"))
        );
        let e = Config::parse("c.yaml", "alerts:\n  elasticsearchUrl: es:9200\n").unwrap_err();
        assert!(e.to_string().contains("must start with http"), "{e}");
        let e = Config::parse("c.yaml", "alerts:\n  fileKeep: many\n").unwrap_err();
        assert!(e.to_string().contains("2:13"), "{e}");
    }
}
