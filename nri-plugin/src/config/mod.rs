//! The daemon's configuration: the file (`config/d4c.yaml`: every field optional with a
//! documented default, unknown keys refused with their position, see [`parse`]) and the
//! policy compiled into the binary for a node without a policy directory.

mod parse;

use crate::paths;
use std::path::{Path, PathBuf};

/// The default policy set compiled into the binary (the files of `config/policies/`, each
/// named `embedded:FILE`): enforced when the policy directory does not exist, and by
/// `d4c exec` without `--policy`. A test checks it holds every file of that directory.
pub const EMBEDDED_DEFAULT: [(&str, &str); 2] = [
    (
        "embedded:default.yaml",
        include_str!("../../../config/policies/default.yaml"),
    ),
    (
        "embedded:alert-memfd.yaml",
        include_str!("../../../config/policies/alert-memfd.yaml"),
    ),
];

/// Loads the embedded default policy set ([`EMBEDDED_DEFAULT`]).
///
/// # Errors
/// Never in a released build (a test loads it); the error is the policy's.
pub fn embedded_default() -> Result<d4c_policy::Loaded, d4c_policy::PolicyError> {
    d4c_policy::load_texts(&EMBEDDED_DEFAULT)
}

/// Where the daemon finds things and what it does; see `config/d4c.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub policy_dir: PathBuf,
    /// `invalidPolicyAtStart:`: what the daemon does when the policy directory is invalid
    /// at start and there is no last good policy to enforce.
    pub invalid_policy_at_start: InvalidAtStart,
    /// `lastGoodPolicyDir:` ([`crate::daemon::last_good`]).
    pub last_good_policy_dir: PathBuf,
    pub nri_socket: PathBuf,
    pub plugin_name: String,
    pub plugin_index: String,
    pub cluster_id: Option<String>,
    pub cluster_name: Option<String>,
    pub bpffs: PathBuf,
    pub enforcement: Enforcement,
    /// `enforcement.requireSound`: refuse to start where blocking is not guaranteed on the
    /// node (`d4c doctor` says why).
    pub require_sound: bool,
    /// What applies to a container the daemon has not registered yet (it started while no
    /// daemon was connected, or before its `StartContainer` was answered).
    pub unregistered: Unregistered,
    /// The runtime's pod cgroup parents, relative to the cgroup v2 root: cgroups created
    /// below them are guarded by [`Unregistered::Policy`].
    pub pod_cgroup_parents: Vec<PathBuf>,
    /// What d4c audits instead of blocking (`audit:`): policy files and namespaces whose
    /// blocks are allowed and alerted as would-be blocks.
    pub audit: d4c_policy::Audit,
    pub alerts: Alerts,
    pub metrics_address: Option<String>,
    /// Whether `d4c_selector_matches_total` has a `namespace` label (one series per
    /// namespace: more series).
    pub metrics_namespace_label: bool,
    pub status_socket: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
    /// The file it was read from (`None`: defaults, or parsed from text): the daemon
    /// watches its `audit:` section.
    pub source: Option<PathBuf>,
}

/// `enforcement:`: the kernel programs attached in a mode (`auto`, `lsm`, `fmod-ret`;
/// `bpf` is the earlier name of `auto`), or `none` (nothing enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Kernel(crate::bpf::AttachRequest),
    None,
}

/// `invalidPolicyAtStart:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidAtStart {
    /// Stop with the policy's errors (the pinned programs keep enforcing what they hold).
    Refuse,
    /// Run the embedded default policy with every block audited (alerted, not refused),
    /// and say so in the log, `d4c status` and `d4c_policy_valid`, until the policy
    /// directory is fixed.
    AlertOnly,
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
    /// Events a container may cause per second at the sustained rate (0: no budget).
    pub budget_rate: u32,
    /// Events a container may cause at once.
    pub budget_burst: u32,
    /// Seconds between a container's summaries of what its budget held back.
    pub throttle_summary_seconds: u32,
    /// Bytes of the kernel's ring buffer (set when the programs are loaded).
    pub ring_buffer_bytes: u32,
    /// Seconds between heartbeat documents (`metrics-cloud_defend.heartbeat-*`; 0: none).
    pub heartbeat_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy_dir: paths::POLICY_DIR.into(),
            invalid_policy_at_start: InvalidAtStart::Refuse,
            last_good_policy_dir: paths::LAST_GOOD_POLICY_DIR.into(),
            nri_socket: paths::NRI_SOCKET.into(),
            plugin_name: "d4c".into(),
            plugin_index: "50".into(),
            cluster_id: None,
            cluster_name: None,
            bpffs: paths::PIN_DIR.into(),
            enforcement: Enforcement::Kernel(crate::bpf::AttachRequest::Auto),
            require_sound: false,
            unregistered: Unregistered::Policy,
            pod_cgroup_parents: vec!["kubepods".into(), "kubepods.slice".into()],
            audit: d4c_policy::Audit::default(),
            alerts: Alerts {
                stdout: true,
                file: None,
                file_max_bytes: 100 << 20,
                file_keep: 5,
                elasticsearch: None,
                budget_rate: 100,
                budget_burst: 1000,
                throttle_summary_seconds: 10,
                ring_buffer_bytes: 4 << 20,
                heartbeat_seconds: 1800,
            },
            metrics_address: Some("0.0.0.0:9690".into()),
            metrics_namespace_label: false,
            status_socket: paths::STATUS_SOCKET.into(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            source: None,
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
        let mut c = Self::parse(&file, &text)?;
        c.source = Some(path.to_owned());
        Ok(c)
    }

    /// Parses configuration text (named `file` in errors).
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        parse::parse(file, text)
    }
}

#[cfg(test)]
mod tests;
