//! The install/ manifests parse, reference what exists, and hold the fields that matter:
//! privileges, mounts, probes, resources, and a configuration and policy that d4c accepts.

#[path = "containerd_support/manifest.rs"]
mod manifest;

use d4c_policy::yaml::NodeKind;
use manifest::{find, get, install, items, key, load, load_from, text};
use std::path::Path;

#[test]
fn kustomization_lists_every_manifest() {
    let k = load("kustomization.yaml");
    let listed: Vec<&str> = items(get(&k, "resources")).iter().map(text).collect();
    let mut files: Vec<String> = std::fs::read_dir(install().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    files.sort();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, files);
    for f in listed {
        let m = load(f);
        assert!(
            !text(get(&m, "apiVersion")).is_empty() && !text(get(&m, "kind")).is_empty(),
            "{f}"
        );
    }
}

#[test]
fn daemonset_has_only_the_privileges_it_needs() {
    let ds = load("daemonset.yaml");
    let pod = get(&ds, "spec.template.spec");
    assert_eq!(text(get(pod, "priorityClassName")), "system-node-critical");
    assert!(items(get(pod, "tolerations"))
        .iter()
        .any(|t| text(get(t, "operator")) == "Exists"));
    if let NodeKind::Map(pairs) = &pod.kind {
        assert!(
            !pairs
                .iter()
                .any(|(k, _)| matches!(k.as_str(), Some("hostPID" | "hostNetwork"))),
            "no hostPID/hostNetwork"
        );
    }
    let c = &items(get(pod, "containers"))[0];
    let sc = get(c, "securityContext");
    assert_eq!(text(get(sc, "privileged")), "false");
    assert_eq!(text(get(sc, "readOnlyRootFilesystem")), "true");
    assert_eq!(text(get(sc, "seccompProfile.type")), "RuntimeDefault");
    let drop: Vec<&str> = items(get(sc, "capabilities.drop"))
        .iter()
        .map(text)
        .collect();
    assert_eq!(drop, ["ALL"]);
    let add: Vec<&str> = items(get(sc, "capabilities.add"))
        .iter()
        .map(text)
        .collect();
    assert_eq!(add, ["BPF", "PERFMON", "SYS_ADMIN", "SYS_RESOURCE"]);
    let args: Vec<&str> = items(get(c, "args")).iter().map(text).collect();
    assert_eq!(args[0], "nri");

    let mounts = items(get(c, "volumeMounts"));
    let mount = |path: &str| {
        mounts
            .iter()
            .find(|m| text(get(m, "mountPath")) == path)
            .unwrap_or_else(|| panic!("no mount at {path}"))
    };
    for ro in [
        "/sys/kernel/btf",
        "/sys/kernel/security",
        "/sys/fs/cgroup",
        "/etc/d4c/policies",
        "/host/sys/kernel/debug",
        "/host/etc/os-release",
    ] {
        assert_eq!(text(get(mount(ro), "readOnly")), "true", "{ro} read-only");
    }
    // The host's files d4c judges the node by are where D4C_HOST_ROOT says.
    let env = items(get(c, "env"));
    assert!(env
        .iter()
        .any(|e| text(get(e, "name")) == d4c::node::HOST_ROOT_ENV
            && text(get(e, "value")) == "/host"));
    for rw in ["/sys/fs/bpf", "/var/run/nri"] {
        let _ = mount(rw);
    }
    // Alive: the process answers; ready: its programs are attached with its maps.
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(text(get(c, &format!("{probe}.httpGet.path"))), path);
    }
}

#[test]
fn shipped_config_and_policy_are_accepted() {
    let cfg = load("config.yaml");
    let config =
        d4c::config::Config::parse("d4c.yaml", text(key(get(&cfg, "data"), "d4c.yaml"))).unwrap();
    let ds = load("daemonset.yaml");
    let c = &items(get(&ds, "spec.template.spec.containers"))[0];
    let port = text(get(&items(get(c, "ports"))[0], "containerPort"));
    assert!(
        config
            .metrics_address
            .unwrap()
            .ends_with(&format!(":{port}")),
        "probes reach the metrics port"
    );
    assert_eq!(config.policy_dir, Path::new(d4c::paths::POLICY_DIR));
}

/// The policies `ConfigMap` is the default set: one key per file of config/policies/, each
/// byte for byte, so the cluster gets the set its tests cover.
#[test]
fn the_policies_config_map_is_the_default_set() {
    let pol = load("policies.yaml");
    let NodeKind::Map(keys) = &get(&pol, "data").kind else {
        panic!("policies.yaml has no data map");
    };
    let in_map: Vec<(String, String)> = keys
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), text(v).to_owned()))
        .collect();
    let dir = install().join("../config/policies");
    let mut in_dir: Vec<(String, String)> = d4c_policy::load::policy_files(&[&dir])
        .unwrap()
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    in_dir.sort();
    let mut sorted = in_map.clone();
    sorted.sort();
    assert!(in_dir.len() >= 2, "{in_dir:?}");
    assert_eq!(sorted, in_dir);
    let texts: Vec<(&str, &str)> = in_map
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let loaded = d4c_policy::load_texts(&texts).unwrap_or_else(|e| panic!("{e}"));
    assert!(!loaded.policy.can_block());
}

#[test]
fn runtime_snippets_enable_nri_on_the_socket_d4c_uses() {
    for f in [
        "containerd/nri-1.7.toml",
        "containerd/nri-2.x.toml",
        "crio/10-nri.conf",
    ] {
        let s = std::fs::read_to_string(install().join(f)).unwrap();
        assert!(s.contains(d4c::paths::NRI_SOCKET), "{f}");
        assert!(
            s.contains("disable = false") || s.contains("enable_nri = true"),
            "{f}"
        );
    }
    let unit = std::fs::read_to_string(install().join("systemd/d4c.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/d4c nri --config /etc/d4c/d4c.yaml"));
}

#[test]
fn node_prep_is_opt_in_per_node_and_ships_the_tested_script() {
    let k = load_from("node-prep", "kustomization.yaml");
    let gen = &items(get(&k, "configMapGenerator"))[0];
    assert_eq!(text(get(gen, "name")), "d4c-node-prep");
    let files: Vec<&str> = items(get(gen, "files")).iter().map(text).collect();
    assert_eq!(files, ["add-bpf-lsm.sh"]);
    assert!(install().join("node-prep/add-bpf-lsm.sh").is_file());
    let ds = load_from("node-prep", "daemonset.yaml");
    let pod = get(&ds, "spec.template.spec");
    // Only nodes a user labels are changed.
    assert_eq!(
        text(key(get(pod, "nodeSelector"), "d4c.io/node-prep")),
        "bpf-lsm"
    );
    let init = &items(get(pod, "initContainers"))[0];
    let cmd: Vec<&str> = items(get(init, "command")).iter().map(text).collect();
    assert!(cmd.last().unwrap().contains("/node-prep/add-bpf-lsm.sh"));
    // It asks for a reboot; it has no way to reboot by itself (no hostPID, no reboot call).
    assert!(find(pod, "hostPID").is_none());
    let script = std::fs::read_to_string(install().join("node-prep/add-bpf-lsm.sh")).unwrap();
    assert!(!script
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains("reboot ") && !l.contains("reboot-required") && !l.contains("say ")));
}

#[test]
fn uninstall_unloads_with_the_daemon_s_privileges_after_it_stops() {
    let k = load_from("uninstall", "kustomization.yaml");
    let listed: Vec<&str> = items(get(&k, "resources")).iter().map(text).collect();
    assert_eq!(listed, ["namespace.yaml", "daemonset.yaml"]);
    // Not d4c-system: that namespace goes with d4c, before the unload has run.
    assert_eq!(text(get(&k, "namespace")), "d4c-uninstall");
    let ds = load_from("uninstall", "daemonset.yaml");
    let pod = get(&ds, "spec.template.spec");
    let unload = &items(get(pod, "initContainers"))[0];
    let args: Vec<&str> = items(get(unload, "args")).iter().map(text).collect();
    assert_eq!(
        &args[..2],
        ["unload", "--wait-daemon"],
        "waits for the daemon, no --force"
    );
    let d4c = load("daemonset.yaml");
    let daemon = &items(get(&d4c, "spec.template.spec.containers"))[0];
    assert_eq!(text(get(unload, "image")), text(get(daemon, "image")));
    let caps = |c| -> Vec<&str> {
        items(get(c, "securityContext.capabilities.add"))
            .iter()
            .map(text)
            .collect()
    };
    assert_eq!(caps(unload), caps(daemon));
    assert!(install().join("uninstall.sh").is_file());
}

#[test]
fn the_metrics_service_reaches_every_d4c_pod_s_metrics_port() {
    let svc = load("service.yaml");
    let ds = load("daemonset.yaml");
    let labels = get(&ds, "spec.template.metadata.labels");
    let selector = get(&svc, "spec.selector");
    assert_eq!(
        text(key(selector, "app.kubernetes.io/name")),
        text(key(labels, "app.kubernetes.io/name"))
    );
    assert_eq!(text(get(&svc, "spec.clusterIP")), "None");
    let target = text(get(&items(get(&svc, "spec.ports"))[0], "targetPort"));
    let c = &items(get(&ds, "spec.template.spec.containers"))[0];
    assert!(items(get(c, "ports"))
        .iter()
        .any(|p| text(get(p, "name")) == target));
}

#[test]
fn the_manifests_run_this_release_s_image_not_latest() {
    // install/image/build.py tags the image with the package version; the manifests name
    // that tag, so an upgrade is a changed tag and a rollback the previous one.
    let want = concat!("d4c:", env!("CARGO_PKG_VERSION"));
    let d4c = load("daemonset.yaml");
    let daemon = &items(get(&d4c, "spec.template.spec.containers"))[0];
    assert_eq!(text(get(daemon, "image")), want);
    let ds = load_from("uninstall", "daemonset.yaml");
    let unload = &items(get(get(&ds, "spec.template.spec"), "initContainers"))[0];
    assert_eq!(text(get(unload, "image")), want);
}

#[test]
fn elasticsearch_credentials_come_from_an_optional_secret() {
    let ds = load("daemonset.yaml");
    let daemon = &items(get(&ds, "spec.template.spec.containers"))[0];
    let env = items(get(daemon, "env"));
    for (var, key) in [
        ("D4C_ELASTICSEARCH_API_KEY", "api-key"),
        ("D4C_ELASTICSEARCH_PASSWORD", "password"),
    ] {
        let e = env
            .iter()
            .find(|e| text(get(e, "name")) == var)
            .unwrap_or_else(|| panic!("{var} is not set from a Secret"));
        let r = get(e, "valueFrom.secretKeyRef");
        assert_eq!(text(get(r, "name")), "d4c-elasticsearch");
        assert_eq!(text(get(r, "key")), key);
        assert_eq!(
            text(get(r, "optional")),
            "true",
            "no Secret: the pod still starts"
        );
    }
    // The variables the daemon reads them from (config/d4c.yaml documents them).
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/d4c.yaml"))
            .unwrap();
    assert!(
        doc.contains("D4C_ELASTICSEARCH_API_KEY") && doc.contains("D4C_ELASTICSEARCH_PASSWORD")
    );
}

#[test]
fn the_service_monitor_scrapes_the_metrics_service() {
    let sm = load_from("prometheus", "servicemonitor.yaml");
    let svc = load("service.yaml");
    assert_eq!(text(get(&sm, "kind")), "ServiceMonitor");
    assert_eq!(
        text(key(
            get(&sm, "spec.selector.matchLabels"),
            "app.kubernetes.io/name"
        )),
        text(key(get(&svc, "metadata.labels"), "app.kubernetes.io/name"))
    );
    let namespaces: Vec<&str> = items(get(&sm, "spec.namespaceSelector.matchNames"))
        .iter()
        .map(text)
        .collect();
    assert_eq!(namespaces, [text(get(&svc, "metadata.namespace"))]);
    let endpoint = &items(get(&sm, "spec.endpoints"))[0];
    let port = text(get(&items(get(&svc, "spec.ports"))[0], "name"));
    assert_eq!(text(get(endpoint, "port")), port);
    assert_eq!(text(get(endpoint, "path")), "/metrics");
}
