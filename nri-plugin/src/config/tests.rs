//! The shipped file, values and error positions.

use super::*;
use crate::bpf::{AttachMode, AttachRequest};

#[test]
fn the_shipped_file_is_the_defaults() {
    let text = include_str!("../../../config/d4c.yaml");
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
    assert_eq!(c.unregistered, super::Unregistered::Allow);
    assert_eq!(
        c.pod_cgroup_parents,
        vec![
            std::path::PathBuf::from("kubepods"),
            std::path::PathBuf::from("custom/pods")
        ]
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
    let c = Config::parse(
        "c.yaml",
        "enforcement:\n  mode: fmod-ret\n  requireSound: true\n",
    )
    .unwrap();
    assert_eq!(
        c.enforcement,
        Enforcement::Kernel(AttachRequest::Only(AttachMode::FmodRet))
    );
    assert!(c.require_sound);
    assert!(
        !Config::parse("c.yaml", "enforcement: auto\n")
            .unwrap()
            .require_sound
    );
    let e = Config::parse("c.yaml", "enforcement:\n  requireSound: yes\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("c.yaml:2:17: error: `enforcement.requireSound` is true or false"),
        "{e}"
    );
    let e = Config::parse("c.yaml", "enforcement:\n  requiresound: true\n").unwrap_err();
    assert!(
        e.to_string().contains("did you mean `requireSound`?"),
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
    let c = Config::parse("c.yaml", "alerts:\n  heartbeatSeconds: 0\n").unwrap();
    assert_eq!(c.alerts.heartbeat_seconds, 0, "0 turns heartbeats off");
    let e = Config::parse("c.yaml", "alerts:\n  heartbeatSeconds: -1\n").unwrap_err();
    assert!(e.to_string().contains("heartbeatSeconds"), "{e}");
    let e = Config::parse("c.yaml", "alerts:\n  fileKeep: many\n").unwrap_err();
    assert!(e.to_string().contains("2:13"), "{e}");
}

#[test]
fn audit_lists_policies_and_namespaces() {
    let c = Config::parse(
        "c.yaml",
        "audit:\n  policies: ['staging-*.yaml']\n  namespaces: [staging, 'dev-*']\n",
    )
    .unwrap();
    assert_eq!(c.audit.policies, ["staging-*.yaml"]);
    assert_eq!(c.audit.namespaces, ["staging", "dev-*"]);
    assert!(!c.audit.all);
    for (text, at, want) in [
        (
            "audit:\n  namespace: [x]\n",
            "c.yaml:2:3",
            "did you mean `namespaces`",
        ),
        (
            "audit:\n  namespaces: staging\n",
            "c.yaml:2:15",
            "is a list of globs",
        ),
        ("audit:\n  policies: ['']\n", "c.yaml:2:14", "an empty glob"),
    ] {
        let e = Config::parse("c.yaml", text).unwrap_err().to_string();
        assert!(e.starts_with(at) && e.contains(want), "{text:?}: {e}");
    }
}

/// The embedded default is the whole default set: every file of config/policies/, none
/// forgotten when one is added, and it loads as one and never blocks.
#[test]
fn the_embedded_default_is_the_default_set() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/policies");
    let mut files: Vec<String> = d4c_policy::load::policy_files(&[&dir])
        .unwrap()
        .iter()
        .map(|p| format!("embedded:{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    files.sort();
    let mut embedded: Vec<String> = EMBEDDED_DEFAULT
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    embedded.sort();
    assert_eq!(embedded, files);
    let loaded = embedded_default().unwrap();
    assert!(loaded.warnings.is_empty());
    assert!(!loaded.policy.can_block());
    assert_eq!(loaded.policy.sources.len(), EMBEDDED_DEFAULT.len());
}
