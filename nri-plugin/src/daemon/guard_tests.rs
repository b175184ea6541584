//! Guards of pod cgroup parents against the in-memory kernel: what they register, what
//! they leave alone, and how they follow Synchronize, container starts and reloads.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use d4c_common::ContainerEntry;
use d4c_policy::{load_str, Container, Policy};

use super::kernel::MemoryKernel;
use super::registry::{Registry, Started};
use crate::container::ContainerInfo;

/// Blocks createExecutable for every container (no container conditions, so a container
/// without attributes gets it too), except in namespace `dev`; alerts on
/// modifyExecutable in `prod`.
fn policy(extra_op: &str) -> Arc<Policy> {
    let yaml = format!(
        "file:\n  selectors:\n    - name: all\n      operation: [createExecutable]\n    - name: dev\n      kubernetesNamespace: [dev]\n    - name: prod\n      operation: [{extra_op}]\n      kubernetesNamespace: [prod]\n  responses:\n    - match: [all]\n      exclude: [dev]\n      actions: [alert, block]\n    - match: [prod]\n      actions: [alert]\n"
    );
    Arc::new(load_str("p.yaml", &yaml).unwrap().policy)
}

struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str, dirs: &[&str]) -> Self {
        let root = std::env::temp_dir().join(format!("d4c-guard-{tag}-{}", std::process::id()));
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        Tree(root)
    }
    fn ino(&self, p: &str) -> u64 {
        std::fs::metadata(self.0.join(p)).unwrap().ino()
    }
    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn container(id: &str, ns: &str, dir: &Path) -> ContainerInfo {
    ContainerInfo {
        cgroup_dir: Some(dir.to_owned()),
        ..super::tests::info(id, ns, std::fs::metadata(dir).unwrap().ino())
    }
}

fn guard_of(dir: &Path) -> ContainerInfo {
    ContainerInfo {
        id: "unregistered:kubepods".into(),
        name: "containers not registered yet".into(),
        attrs: Container::default(),
        cgroup_id: std::fs::metadata(dir).unwrap().ino(),
        cgroup_dir: Some(dir.to_owned()),
    }
}

#[test]
fn a_guard_covers_the_gaps_below_it_and_follows_the_registry() {
    let tree = Tree::new(
        "gaps",
        &[
            "kubepods/besteffort/podA/ctrA",
            "kubepods/besteffort/podB/ctrB",
        ],
    );
    let (kube, qos) = (tree.ino("kubepods"), tree.ino("kubepods/besteffort"));
    let (ctr_a, ctr_b) = (
        tree.ino("kubepods/besteffort/podA/ctrA"),
        tree.ino("kubepods/besteffort/podB/ctrB"),
    );
    // A pod cgroup with no process yet, and a container cgroup with one.
    std::fs::write(tree.path("kubepods/besteffort/podA/cgroup.procs"), "").unwrap();
    std::fs::write(
        tree.path("kubepods/besteffort/podA/ctrA/cgroup.procs"),
        "4242\n",
    )
    .unwrap();
    let mut reg = Registry::new(MemoryKernel::default(), policy("modifyExecutable"));
    // A container registered before the guard keeps its own entry.
    let b = container("b", "prod", &tree.path("kubepods/besteffort/podB/ctrB"));
    let Started::Protected { rule_set: rs_b } = reg.start(b.clone()).unwrap() else {
        panic!("b is protected")
    };
    let Started::Protected { rule_set: rs_guard } =
        reg.guard(guard_of(&tree.path("kubepods"))).unwrap()
    else {
        panic!("the guard is registered")
    };
    assert_ne!(
        rs_guard, rs_b,
        "a container without attributes has its own rule set"
    );
    let k = reg.kernel();
    // The guard and the cgroups without processes apply from their first exec (the
    // runtime sets a container up in its cgroup first); a running one at once.
    assert_eq!(k.containers[&kube], ContainerEntry::pending(rs_guard, kube));
    assert_eq!(
        k.containers[&tree.ino("kubepods/besteffort/podA")],
        ContainerEntry::pending(rs_guard, kube)
    );
    assert_eq!(k.containers[&ctr_a], ContainerEntry::new(rs_guard, kube));
    // Unreadable `cgroup.procs` (a plain directory here) counts as running.
    assert_eq!(k.containers[&qos], ContainerEntry::new(rs_guard, kube));
    assert_eq!(
        k.containers[&ctr_b],
        ContainerEntry::new(rs_b, ctr_b),
        "kept"
    );

    // The runtime never lists the guard: Synchronize keeps it.
    reg.synchronize(vec![b]);
    assert!(reg
        .containers()
        .any(|m| m.guard && m.info.cgroup_id == kube));
    assert_eq!(reg.kernel().containers[&ctr_a].rule_set, rs_guard);

    // The container that started while unregistered gets its own rule set, in place.
    let a = container("a", "prod", &tree.path("kubepods/besteffort/podA/ctrA"));
    reg.start(a).unwrap();
    assert_eq!(
        reg.kernel().containers[&ctr_a],
        ContainerEntry::new(rs_b, ctr_a)
    );

    // A reload moves the guard and what it covers to the new policy's rule set.
    reg.reload(policy("deleteFile")).unwrap();
    let new_guard = reg.kernel().containers[&kube].rule_set;
    assert_ne!(new_guard, rs_guard);
    assert_eq!(
        reg.kernel().containers[&kube],
        ContainerEntry::pending(new_guard, kube),
        "still pending"
    );
    assert_eq!(
        reg.kernel().containers[&qos],
        ContainerEntry::new(new_guard, kube)
    );
    assert_eq!(
        reg.kernel().containers[&tree.ino("kubepods/besteffort/podA")],
        ContainerEntry::pending(new_guard, kube),
        "a nested entry keeps its flag when it follows"
    );
    assert!(
        !reg.kernel().entries.contains_key(&rs_guard),
        "the previous guard rule set is deleted"
    );
}

#[test]
fn a_container_no_policy_covers_leaves_the_guard_rule_set() {
    let tree = Tree::new("nopolicy", &["kubepods/podD/ctrD/inner"]);
    let ctr_d = tree.ino("kubepods/podD/ctrD");
    let inner = tree.ino("kubepods/podD/ctrD/inner");
    let mut reg = Registry::new(MemoryKernel::default(), policy("modifyExecutable"));
    reg.guard(guard_of(&tree.path("kubepods"))).unwrap();
    assert!(
        reg.kernel().containers.contains_key(&ctr_d),
        "guarded while unregistered"
    );
    // Namespace dev is excluded from every response: nothing applies to it, so neither
    // may the guard's rule set.
    let d = container("d", "dev", &tree.path("kubepods/podD/ctrD"));
    assert_eq!(reg.start(d).unwrap(), Started::NoPolicy);
    assert!(!reg.kernel().containers.contains_key(&ctr_d));
    assert!(
        !reg.kernel().containers.contains_key(&inner),
        "a cgroup inside it leaves the guard too"
    );
    assert!(reg
        .kernel()
        .containers
        .contains_key(&tree.ino("kubepods/podD")));
}

#[test]
fn a_guard_covers_its_cgroups_again_after_a_policy_that_gave_it_none() {
    let tree = Tree::new("refill", &["kubepods/besteffort"]);
    let qos = tree.ino("kubepods/besteffort");
    let mut reg = Registry::new(MemoryKernel::default(), policy("modifyExecutable"));
    reg.guard(guard_of(&tree.path("kubepods"))).unwrap();
    assert!(reg.kernel().containers.contains_key(&qos));
    // A policy with container conditions only: nothing applies to the guard.
    let scoped = Arc::new(
        load_str(
            "p.yaml",
            "file:\n  selectors:\n    - name: s\n      operation: [createExecutable]\n      kubernetesNamespace: [prod]\n  responses:\n    - match: [s]\n      actions: [alert]\n",
        )
        .unwrap()
        .policy,
    );
    reg.reload(scoped).unwrap();
    assert!(!reg.kernel().containers.contains_key(&qos));
    assert!(reg.containers().any(|m| m.guard), "still a guard");
    reg.reload(policy("modifyExecutable")).unwrap();
    let kube = tree.ino("kubepods");
    let rs = reg.kernel().containers[&kube].rule_set;
    assert_eq!(
        reg.kernel().containers.get(&qos),
        Some(&ContainerEntry::new(rs, kube)),
        "covered again"
    );
}
