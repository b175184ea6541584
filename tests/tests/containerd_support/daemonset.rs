//! install/kubernetes/daemonset.yaml turned into the CRI requests a kubelet would send for
//! it: the container's args, security context (capabilities, read-only root, user, no new
//! privileges, seccomp) and volumes (hostPath, emptyDir, configMap), so that a test runs
//! the shipped manifest with exactly its privileges.
//!
//! Two departures from a real node, both in what a kubelet does rather than in the
//! manifest: the pod shares the node's network namespace (no CNI here), and host paths can
//! be redirected (`host_paths`: the test's containerd serves NRI from its scratch directory,
//! not /var/run/nri).

use super::manifest::{find, get, items, load, load_from, pairs, text};
use super::Containerd;
use d4c_policy::yaml::Node;
use k8s_cri::v1::{
    security_profile::ProfileType, Capability, ContainerConfig, ContainerMetadata, ImageSpec,
    Int64Value, KeyValue, LinuxContainerConfig, LinuxContainerSecurityContext, Mount,
    NamespaceMode, NamespaceOption, SecurityProfile,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The d4c container of the `DaemonSet`, ready to be created through CRI.
pub struct Spec {
    pub name: String,
    pub image: String,
    /// The `capabilities.add` list as written (`BPF`, ...).
    pub add_caps: Vec<String>,
    config: ContainerConfig,
}

/// The image reference a kubelet would pull for `image:` (Docker Hub normalisation).
pub fn normalise(image: &str) -> String {
    let first = image.split('/').next().unwrap_or("");
    let with_host = if image.contains('/') && (first.contains('.') || first.contains(':')) {
        image.to_owned()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    if with_host.rsplit('/').next().unwrap_or("").contains(':') {
        with_host
    } else {
        format!("{with_host}:latest")
    }
}

fn strings(node: &Node) -> Vec<String> {
    items(node).iter().map(|n| text(n).to_owned()).collect()
}

/// Writes every `data` entry of `ConfigMap` `name` (from install/kubernetes/) into `dir`.
fn config_map_dir(name: &str, dir: &Path) {
    let file = ["config.yaml", "policies.yaml"]
        .into_iter()
        .map(load)
        .find(|m| text(get(m, "metadata.name")) == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name} in install/kubernetes"));
    std::fs::create_dir_all(dir).unwrap();
    for (key, value) in pairs(get(&file, "data")) {
        std::fs::write(dir.join(key), text(value)).unwrap();
    }
}

/// A container's `env` as CRI key-values, as a kubelet fills them: `spec.nodeName` from
/// the downward API is `NODE_NAME`; an entry from an optional Secret
/// (`valueFrom.secretKeyRef`, `optional: true`) is left out, as a kubelet leaves it out
/// when the Secret does not exist (none does here).
fn envs(container: &Node) -> Vec<KeyValue> {
    find(container, "env")
        .map_or(&[][..], items)
        .iter()
        .filter_map(|e| {
            let value = match find(e, "value") {
                Some(v) => text(v).to_owned(),
                None if find(get(e, "valueFrom"), "fieldRef").is_some() => {
                    assert_eq!(text(get(e, "valueFrom.fieldRef.fieldPath")), "spec.nodeName");
                    NODE_NAME.to_owned()
                }
                None => {
                    assert_eq!(
                        text(get(e, "valueFrom.secretKeyRef.optional")),
                        "true",
                        "an env entry without a value must come from the node's name or an optional Secret"
                    );
                    return None;
                }
            };
            Some(KeyValue {
                key: text(get(e, "name")).to_owned(),
                value,
            })
        })
        .collect()
}

/// The node's name the test's kubelet stand-in gives the downward API.
pub const NODE_NAME: &str = "e2e-node-1";

impl Spec {
    /// Reads the `DaemonSet`'s d4c container. Volumes: a hostPath is mounted from
    /// `host_paths[path]` when given, else from its own path; an emptyDir and each
    /// `ConfigMap` get a directory under `scratch` (`ConfigMaps` filled from the manifests,
    /// then `extra` files added: a user's own policies).
    pub fn load(
        scratch: &Path,
        host_paths: &HashMap<&str, PathBuf>,
        extra: &[(&str, &str, &str)],
    ) -> Spec {
        Spec::load_from("kubernetes", "containers", scratch, host_paths, extra)
    }

    /// Reads the first of `list` (`containers` or `initContainers`) of the `DaemonSet` in
    /// install/`dir`/daemonset.yaml, as [`Spec::load`] does.
    pub fn load_from(
        dir: &str,
        list: &str,
        scratch: &Path,
        host_paths: &HashMap<&str, PathBuf>,
        extra: &[(&str, &str, &str)],
    ) -> Spec {
        let ds = load_from(dir, "daemonset.yaml");
        let pod = get(&ds, "spec.template.spec");
        let c = &items(get(pod, list))[0];
        let sc = get(c, "securityContext");
        let caps = get(sc, "capabilities");
        let mut volumes: HashMap<String, PathBuf> = HashMap::new();
        for v in items(get(pod, "volumes")) {
            let name = text(get(v, "name")).to_owned();
            let source = if let Some(h) = find(v, "hostPath") {
                let p = text(get(h, "path"));
                host_paths
                    .get(p)
                    .cloned()
                    .unwrap_or_else(|| PathBuf::from(p))
            } else if find(v, "emptyDir").is_some() {
                let d = scratch.join("volumes").join(&name);
                std::fs::create_dir_all(&d).unwrap();
                d
            } else if let Some(cm) = find(v, "configMap") {
                let d = scratch.join("volumes").join(&name);
                config_map_dir(text(get(cm, "name")), &d);
                d
            } else {
                panic!("volume {name}: a kind this test does not know");
            };
            volumes.insert(name, source);
        }
        for (volume, file, content) in extra {
            std::fs::write(volumes[*volume].join(file), content).unwrap();
        }
        let mounts: Vec<Mount> = items(get(c, "volumeMounts"))
            .iter()
            .map(|m| Mount {
                container_path: text(get(m, "mountPath")).to_owned(),
                host_path: volumes[text(get(m, "name"))].to_string_lossy().into_owned(),
                readonly: find(m, "readOnly").and_then(Node::as_str) == Some("true"),
                ..Default::default()
            })
            .collect();
        let bool_at = |key: &str| find(sc, key).and_then(Node::as_str) == Some("true");
        assert!(
            !bool_at("privileged"),
            "the DaemonSet must not be privileged"
        );
        let seccomp = find(sc, "seccompProfile").map(|p| {
            assert_eq!(text(get(p, "type")), "RuntimeDefault");
            SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }
        });
        let name = text(get(c, "name")).to_owned();
        let image = normalise(text(get(c, "image")));
        let add_caps = strings(get(caps, "add"));
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            args: strings(get(c, "args")),
            envs: envs(c),
            log_path: format!("{name}.log"),
            mounts,
            labels: HashMap::from([("io.kubernetes.container.name".into(), name.clone())]),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: add_caps.clone(),
                        drop_capabilities: strings(get(caps, "drop")),
                        ..Default::default()
                    }),
                    privileged: false,
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                    run_as_user: find(sc, "runAsUser").map(|u| Int64Value {
                        value: text(u).parse().unwrap(),
                    }),
                    readonly_rootfs: bool_at("readOnlyRootFilesystem"),
                    no_new_privs: find(sc, "allowPrivilegeEscalation").and_then(Node::as_str)
                        == Some("false"),
                    seccomp,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Spec {
            name,
            image,
            add_caps,
            config,
        }
    }

    pub fn container_config(&self) -> ContainerConfig {
        self.config.clone()
    }

    /// Where the runtime writes the container's output (CRI log format) for a pod whose
    /// sandbox `log_directory` is the test containerd's `logs`.
    pub fn log_file(&self, ctd: &Containerd) -> PathBuf {
        ctd.scratch.join("logs").join(format!("{}.log", self.name))
    }
}

/// The payloads of a CRI container log (`TIME STREAM TAG PAYLOAD` per line, `F` = a full
/// line) written to `stream` (`stdout` or `stderr`).
pub fn log_lines(log: &Path, stream: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_, s, tag, payload) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            (s == stream && tag == "F").then(|| payload.to_owned())
        })
        .collect()
}
