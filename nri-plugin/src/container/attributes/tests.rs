//! Table tests of `attributes` on containerd 1.7, containerd 2.x, CRI-O and bare-container
//! shaped data.

use std::{collections::HashMap, path::Path};

use super::*;
use d4c_nri::api::{Image, LinuxContainer, LinuxPodSandbox};

const UID: &str = "6f1e2a3b-0000-4c1d-9e8f-123456789abc";
const SANDBOX: &str = "5f3c9a0d1e2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5";
const CID: &str = "9a8b7c6d5e4f30211f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988";
const ROOT: &str = "/sys/fs/cgroup/unified";

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn mount(dest: &str, ty: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: dest.into(),
        type_: ty.into(),
        source: source.into(),
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        ..Default::default()
    }
}

/// The mounts containerd's CRI gives a Kubernetes container (OCI defaults + kubelet).
fn cri_mounts(bind: &str) -> Vec<Mount> {
    let pods = format!("/var/lib/kubelet/pods/{UID}");
    let sb = format!("/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{SANDBOX}");
    let b = [bind, "rprivate", "rw"];
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755"],
        ),
        mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec"]),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount("/etc/hosts", "bind", &format!("{pods}/etc-hosts"), &b),
        mount(
            "/dev/termination-log",
            "bind",
            &format!("{pods}/containers/app/1a2b3c4d"),
            &b,
        ),
        mount("/etc/hostname", "bind", &format!("{sb}/hostname"), &b),
        mount("/etc/resolv.conf", "bind", &format!("{sb}/resolv.conf"), &b),
        mount(
            "/dev/shm",
            "bind",
            &format!("/run/containerd/io.containerd.grpc.v1.cri/sandboxes/{SANDBOX}/shm"),
            &b,
        ),
        mount(
            "/var/run/secrets/kubernetes.io/serviceaccount",
            "bind",
            &format!("{pods}/volumes/kubernetes.io~projected/kube-api-access-x7k2p"),
            &[bind, "rprivate", "ro"],
        ),
        mount(
            "/usr/share/nginx/html/",
            "bind",
            &format!("{pods}/volumes/kubernetes.io~configmap/html"),
            &b,
        ),
        mount(
            "/etc/app/config.yaml",
            "bind",
            &format!("{pods}/volume-subpaths/cfg/app/0"),
            &b,
        ),
    ]
}

/// Host paths that are regular files in these scenarios.
fn is_file(p: &Path) -> bool {
    let s = p.to_string_lossy();
    [
        "etc-hosts",
        "hostname",
        "resolv.conf",
        "/containers/app/",
        "volume-subpaths",
    ]
    .iter()
    .any(|f| s.contains(f))
}

fn k8s_pod(cgroup_parent: &str) -> PodSandbox {
    PodSandbox {
        id: SANDBOX.into(),
        name: "web-7d9f8b6c5-x2x4q".into(),
        uid: UID.into(),
        namespace: "prod".into(),
        labels: map(&[
            ("app", "web"),
            ("pod-template-hash", "7d9f8b6c5"),
            ("io.kubernetes.pod.name", "web-7d9f8b6c5-x2x4q"),
            ("io.kubernetes.pod.namespace", "prod"),
            ("io.kubernetes.pod.uid", UID),
        ]),
        annotations: map(&[("kubernetes.io/config.source", "api")]),
        linux: Some(LinuxPodSandbox {
            cgroup_parent: cgroup_parent.into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn k8s_container(
    annotations: &[(&str, &str)],
    cgroups_path: &str,
    mounts: Vec<Mount>,
) -> Container {
    Container {
        id: CID.into(),
        pod_sandbox_id: SANDBOX.into(),
        name: "app".into(),
        labels: map(&[
            ("io.kubernetes.container.name", "app"),
            ("io.kubernetes.pod.name", "web-7d9f8b6c5-x2x4q"),
            ("io.kubernetes.pod.namespace", "prod"),
            ("io.kubernetes.pod.uid", UID),
        ]),
        annotations: map(annotations),
        mounts,
        linux: Some(LinuxContainer {
            cgroups_path: cgroups_path.into(),
            ..Default::default()
        })
        .into(),
        pid: 4242,
        ..Default::default()
    }
}

fn volumes_of(a: &Attributes) -> Vec<(&str, bool)> {
    a.container
        .mounts
        .iter()
        .map(|m| (m.destination.as_str(), m.file))
        .collect()
}

const K8S_VOLUMES: [(&str, bool); 7] = [
    ("/dev/termination-log", true),
    ("/etc/app/config.yaml", true),
    ("/etc/hostname", true),
    ("/etc/hosts", true),
    ("/etc/resolv.conf", true),
    ("/usr/share/nginx/html", false),
    ("/var/run/secrets/kubernetes.io/serviceaccount", false),
];

#[test]
fn containerd_1_7_cgroupfs() {
    let parent = format!("/kubepods/besteffort/pod{UID}");
    let pod = k8s_pod(&parent);
    let ctr = k8s_container(
        &[
            ("io.kubernetes.cri.container-type", "container"),
            (
                "io.kubernetes.cri.image-name",
                "docker.io/library/nginx:1.25",
            ),
            ("io.kubernetes.cri.sandbox-id", SANDBOX),
            ("io.kubernetes.cri.sandbox-name", "web-7d9f8b6c5-x2x4q"),
            ("io.kubernetes.cri.sandbox-namespace", "prod"),
        ],
        &format!("{parent}/{CID}"),
        cri_mounts("rbind"),
    );
    let a = attributes(&pod, &ctr, Path::new(ROOT), is_file);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let c = &a.container;
    let image = c.image.as_ref().unwrap();
    assert_eq!(
        (image.name(), image.effective_tag()),
        ("nginx", Some("1.25"))
    );
    assert_eq!(c.namespace.as_deref(), Some("prod"));
    assert_eq!(c.pod_name.as_deref(), Some("web-7d9f8b6c5-x2x4q"));
    assert_eq!(c.orchestrator.as_deref(), Some("kubernetes"));
    assert_eq!(c.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(c.labels.len(), 5);
    assert_eq!(volumes_of(&a), K8S_VOLUMES);
    let want = format!("{ROOT}/kubepods/besteffort/pod{UID}/{CID}");
    assert_eq!(a.cgroup.as_deref(), Some(Path::new(&want)));
}

#[test]
fn containerd_2_systemd_with_image_field() {
    let slice = "kubepods-burstable-pod6f1e2a3b_0000_4c1d.slice";
    let pod = k8s_pod(slice);
    let mut ctr = k8s_container(
        // The annotation says otherwise: the field wins.
        &[("io.kubernetes.cri.image-name", "docker.io/library/old:1")],
        &format!("{slice}:cri-containerd:{CID}"),
        cri_mounts("rbind"),
    );
    ctr.image = Some(Image {
        name: "registry.example.com:5000/team/app:v2".into(),
        digest: "sha256:0123".into(),
        ..Default::default()
    })
    .into();
    let a = attributes(&pod, &ctr, Path::new(ROOT), is_file);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let image = a.container.image.as_ref().unwrap();
    assert_eq!(image.full_names()[0], "registry.example.com:5000/team/app");
    assert_eq!(image.effective_tag(), Some("v2"));
    let want = format!(
        "{ROOT}/kubepods.slice/kubepods-burstable.slice/{slice}/cri-containerd-{CID}.scope"
    );
    assert_eq!(a.cgroup.as_deref(), Some(Path::new(&want)));
    assert_eq!(volumes_of(&a), K8S_VOLUMES);
}

#[test]
fn cri_o_annotations_and_fallbacks() {
    // Pod fields empty (as if the runtime sent no pod): annotations and labels fill in.
    let ctr = k8s_container(
        &[
            (
                "io.kubernetes.cri-o.ImageName",
                "quay.io/ns/tool@sha256:feed",
            ),
            ("io.kubernetes.cri.sandbox-namespace", "build"),
        ],
        &format!("kubepods-besteffort.slice:crio:{CID}"),
        cri_mounts("bind"),
    );
    let a = attributes(&PodSandbox::default(), &ctr, Path::new(ROOT), is_file);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let c = &a.container;
    let image = c.image.as_ref().unwrap();
    assert_eq!((image.name(), image.effective_tag()), ("tool", None));
    assert_eq!(c.namespace.as_deref(), Some("build"));
    assert_eq!(c.pod_name.as_deref(), Some("web-7d9f8b6c5-x2x4q"));
    assert!(c.labels.is_empty());
    assert_eq!(volumes_of(&a), K8S_VOLUMES);
    assert!(a.cgroup.unwrap().ends_with(format!(
        "kubepods.slice/kubepods-besteffort.slice/crio-{CID}.scope"
    )));
}

#[test]
fn container_without_metadata_gets_warnings_only() {
    let ctr = Container {
        id: "ctr1".into(),
        mounts: vec![
            mount("/proc", "proc", "proc", &[]),
            mount("/data", "none", "/srv/data", &["rbind", "rw"]),
            mount("relative", "bind", "/x", &["rbind"]),
        ],
        linux: Some(LinuxContainer {
            cgroups_path: "default/ctr1".into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let a = attributes(&PodSandbox::default(), &ctr, Path::new(ROOT), |_| false);
    let c = &a.container;
    assert_eq!(
        (
            c.image.is_none(),
            c.namespace.is_none(),
            c.pod_name.is_none(),
            c.orchestrator.is_none()
        ),
        (true, true, true, true)
    );
    assert_eq!(volumes_of(&a), [("/data", false)]);
    assert!(a.cgroup.is_none());
    let w = a.warnings.join("\n");
    for part in ["no image name", "no pod metadata", "relative"] {
        assert!(w.contains(part), "{part} in {w}");
    }
}

#[test]
fn unusable_image_names_warn() {
    for (name, warning) in [
        ("sha256:abcdef", "known only by its id"),
        ("a b", "white space"),
    ] {
        let ctr = Container {
            annotations: map(&[("io.kubernetes.cri.image-name", name)]),
            ..Default::default()
        };
        let a = attributes(&k8s_pod(""), &ctr, Path::new(ROOT), |_| false);
        assert!(a.container.image.is_none());
        assert!(
            a.warnings.iter().any(|w| w.contains(warning)),
            "{name}: {:?}",
            a.warnings
        );
    }
}

#[test]
fn later_mount_on_a_destination_wins() {
    let mounts = vec![
        mount("/cfg", "bind", "/host/dir", &["rbind"]),
        mount("/cfg/", "bind", "/host/file", &["rbind"]),
    ];
    assert_eq!(
        volumes(&mounts, &|p: &Path| p.ends_with("file")),
        [Volume {
            destination: "/cfg".into(),
            file: true
        }]
    );
    assert!(host_is_file(Path::new("/proc/self/status")));
    assert!(!host_is_file(Path::new("/proc/self")));
    assert!(!host_is_file(Path::new("/nonexistent/d4c")));
}
