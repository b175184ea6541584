//! Registry behaviour against the in-memory kernel: registration, refusal, removal,
//! reload without an unprotected moment, synchronize.

use super::kernel::MemoryKernel;
use super::registry::{Registry, RegistryError, Started};
use crate::container::ContainerInfo;
use d4c_policy::{load_str, Container, Policy};
use std::sync::Arc;

fn policy(actions: &str, namespace: &str) -> Arc<Policy> {
    let yaml = format!(
        "file:\n  selectors:\n    - name: s\n      operation: [createExecutable]\n      kubernetesNamespace: ['{namespace}']\n  responses:\n    - match: [s]\n      actions: [{actions}]\n"
    );
    Arc::new(load_str("p.yaml", &yaml).unwrap().policy)
}

/// A container of namespace `ns` in cgroup `cgroup_id` (no cgroup directory).
pub(super) fn info(id: &str, ns: &str, cgroup_id: u64) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: id.into(),
        attrs: Container {
            namespace: Some(ns.into()),
            orchestrator: Some("kubernetes".into()),
            ..Container::default()
        },
        cgroup_id,
        cgroup_dir: None,
    }
}

#[test]
fn containers_share_rule_sets_and_unmatched_ones_stay_out() {
    let mut r = Registry::new(MemoryKernel::default(), policy("alert, block", "prod"));
    assert_eq!(
        r.start(info("a", "prod", 10)).unwrap(),
        Started::Protected { rule_set: 1 }
    );
    assert_eq!(
        r.start(info("b", "prod", 11)).unwrap(),
        Started::Protected { rule_set: 1 }
    );
    assert_eq!(r.start(info("c", "dev", 12)).unwrap(), Started::NoPolicy);
    let k = r.kernel();
    assert_eq!(k.containers.len(), 2);
    assert_eq!(k.entries.len(), 1, "one rule set written once");
    assert!(!k.containers.contains_key(&12));
    assert_eq!(r.rule_sets(), 1);
}

#[test]
fn a_blocking_container_that_cannot_be_registered_is_refused() {
    let mut r = Registry::new(MemoryKernel::default(), policy("alert, block", "prod"));
    r.kernel_mut().fail_next = Some("register");
    let e = r.start(info("a", "prod", 10)).unwrap_err();
    assert!(matches!(e, RegistryError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("cannot be registered"));
    assert!(
        r.kernel().entries.is_empty(),
        "the unused rule set is cleaned up"
    );

    let mut r = Registry::new(MemoryKernel::default(), policy("alert, block", "prod"));
    r.kernel_mut().fail_next = Some("write_tables");
    assert!(matches!(
        r.start(info("a", "prod", 10)),
        Err(RegistryError::Refused { .. })
    ));
    // The next attempt compiles and writes again, and succeeds.
    assert_eq!(
        r.start(info("a", "prod", 10)).unwrap(),
        Started::Protected { rule_set: 2 }
    );

    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "prod"));
    r.kernel_mut().fail_next = Some("register");
    assert!(matches!(
        r.start(info("a", "prod", 10)).unwrap(),
        Started::Unprotected { .. }
    ));
}

#[test]
fn removal_unregisters_and_drops_unused_rule_sets() {
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "prod"));
    r.start(info("a", "prod", 10)).unwrap();
    r.start(info("b", "prod", 11)).unwrap();
    r.remove("a");
    assert_eq!(r.kernel().entries.len(), 1);
    assert!(!r.kernel().containers.contains_key(&10));
    r.remove("b");
    assert!(r.kernel().entries.is_empty());
    assert!(r.kernel().containers.is_empty());
    assert!(r.remove("b").is_none());
}

#[test]
fn nested_cgroups_follow_their_container_through_a_reload() {
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "*"));
    r.start(info("a", "prod", 10)).unwrap();
    r.start(info("b", "dev", 11)).unwrap();
    // Cgroups created inside the containers: the kernel copied each parent's entry.
    let a_entry = r.kernel().containers[&10];
    let b_entry = r.kernel().containers[&11];
    r.kernel_mut().containers.insert(100, a_entry);
    r.kernel_mut().containers.insert(101, a_entry);
    r.kernel_mut().containers.insert(110, b_entry);
    // The new policy covers prod only, under a new rule set; the old one is deleted.
    r.reload(policy("alert, block", "prod")).unwrap();
    let k = r.kernel();
    let prod = k.containers[&10].rule_set;
    assert_ne!(prod, a_entry.rule_set);
    for nested in [100, 101] {
        assert_eq!(
            k.containers[&nested],
            d4c_common::ContainerEntry::new(prod, 10),
            "cgroup {nested} inside a follows it"
        );
    }
    assert!(
        !k.containers.contains_key(&11) && !k.containers.contains_key(&110),
        "b and its nested cgroup are no longer covered"
    );
    assert_eq!(
        k.entries.keys().copied().collect::<Vec<_>>(),
        vec![prod],
        "no cgroup points at a deleted rule set"
    );
}

#[test]
fn reload_switches_everything_or_nothing() {
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "prod"));
    r.start(info("a", "prod", 10)).unwrap();
    r.start(info("c", "dev", 12)).unwrap();
    assert_eq!(r.reload(policy("alert, block", "dev")).unwrap(), 2);
    let k = r.kernel();
    assert!(!k.containers.contains_key(&10), "prod is no longer covered");
    let dev = k.containers[&12].rule_set;
    assert!(dev > 1, "new rule sets get new ids");
    assert_eq!(
        k.entries.keys().copied().collect::<Vec<_>>(),
        vec![dev],
        "old rule sets deleted"
    );

    // A failure while writing the new tables keeps the old policy in force.
    r.kernel_mut().fail_next = Some("write_tables");
    assert!(matches!(
        r.reload(policy("alert", "*")),
        Err(RegistryError::Reload { .. })
    ));
    assert_eq!(r.revision(), 2);
    assert_eq!(r.kernel().containers[&12].rule_set, dev);
    assert_eq!(
        r.kernel().entries.keys().copied().collect::<Vec<_>>(),
        vec![dev]
    );

    // A failure while switching entries rolls the switched ones back.
    r.start(info("d", "dev", 13)).unwrap();
    r.kernel_mut().fail_next = Some("register");
    assert!(r.reload(policy("alert", "*")).is_err());
    assert_eq!(r.kernel().containers[&12].rule_set, dev);
    assert_eq!(r.kernel().containers[&13].rule_set, dev);
    assert_eq!(
        r.kernel().entries.keys().copied().collect::<Vec<_>>(),
        vec![dev],
        "new tables removed again"
    );
}

#[test]
fn synchronize_rebuilds() {
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "*"));
    r.start(info("old", "prod", 9)).unwrap();
    let out = r.synchronize(vec![info("a", "prod", 10), info("b", "dev", 11)]);
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|(_, r)| matches!(r, Ok(Started::Protected { .. }))));
    let ids: Vec<u64> = r.kernel().containers.keys().copied().collect();
    assert_eq!(ids, vec![10, 11]);
    assert_eq!(r.by_cgroup(11).unwrap().info.id, "b");
    // A previous build (an upgrade) is detached only once every listed container is
    // registered, and never by a single start.
    assert_eq!(r.kernel().retired_with, vec![2]);
}

#[test]
fn a_new_daemon_starts_above_inherited_ids_and_purges_the_rest() {
    let mut first = Registry::new(MemoryKernel::default(), policy("alert", "*"));
    first.start(info("a", "prod", 10)).unwrap();
    let mut kernel = MemoryKernel::default();
    kernel.containers = first.kernel().containers.clone();
    kernel.entries = first.kernel().entries.clone();
    let a_old = kernel.containers[&10];
    // A nested cgroup the kernel registered under container a's rule set, and a cgroup
    // under a rule set no listed container had (its container went away).
    kernel.containers.insert(99, a_old);
    kernel
        .containers
        .insert(11, d4c_common::ContainerEntry::new(77, 11));
    kernel.entries.insert(77, 1);
    // A `d4c exec` run's rule set is left alone.
    kernel.entries.insert(0x8000_0001, 1);

    let mut second = Registry::new(kernel, policy("alert", "*"));
    second.synchronize(vec![info("a", "prod", 10)]);
    let k = second.kernel();
    let new_id = k.containers[&10].rule_set;
    assert!(new_id > 77, "new ids above inherited ones");
    assert!(
        !k.containers.contains_key(&11),
        "the registration nothing claims is removed"
    );
    assert_eq!(
        k.containers[&99].rule_set, new_id,
        "the nested cgroup follows its container"
    );
    assert_eq!(k.containers[&99].owner, 10, "and still names it");
    assert_eq!(
        k.entries.keys().copied().collect::<Vec<_>>(),
        vec![new_id, 0x8000_0001],
        "inherited rule sets purged, exec's kept"
    );
}

#[test]
fn cgroups_already_inside_a_container_are_registered_with_it() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = std::env::temp_dir().join(format!("d4c-descendants-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::create_dir_all(dir.join("c")).unwrap();
    let ino = |p: &str| std::fs::metadata(dir.join(p)).unwrap().ino();
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "*"));
    let mut i = info("a", "prod", 10);
    i.cgroup_dir = Some(dir.clone());
    r.start(i).unwrap();
    let k = r.kernel();
    let own = k.containers[&10];
    for nested in [ino("a"), ino("a/b"), ino("c")] {
        assert_eq!(
            k.containers.get(&nested),
            Some(&d4c_common::ContainerEntry::new(own.rule_set, 10))
        );
    }
    assert_eq!(k.containers.len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resynchronized_container_is_never_unregistered_in_between() {
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "*"));
    r.synchronize(vec![info("a", "prod", 10)]);
    let before = r.kernel().containers[&10];
    // The runtime reconnects and lists the container again: its entry is replaced in
    // place, never removed (an unregister here would fail the test's kernel).
    r.kernel_mut().fail_next = Some("unregister");
    let out = r.synchronize(vec![info("a", "prod", 10)]);
    assert!(matches!(out[0].1, Ok(Started::Protected { .. })), "{out:?}");
    assert_eq!(
        r.kernel().fail_next,
        Some("unregister"),
        "the entry was removed"
    );
    assert_eq!(r.kernel().containers[&10], before);
    assert_eq!(r.rule_sets(), 1);
    assert_eq!(r.kernel().entries.len(), 1, "the rule set was kept");
    r.kernel_mut().fail_next = None;
    // Removed for real, it goes with its rule set.
    r.remove("a");
    assert!(r.kernel().containers.is_empty());
    assert!(r.kernel().entries.is_empty());
}

#[test]
fn containers_started_while_a_reload_compiles_get_the_new_policy() {
    use super::registry::prepare_reload;
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "prod"));
    r.start(info("a", "prod", 10)).unwrap();
    // Compiled off the owner task, from what the registry held then.
    let input = r.reload_input();
    let prepared = prepare_reload(&input, policy("alert, block", "*")).unwrap();
    // Meanwhile a start under the running policy: dev is not covered yet.
    assert_eq!(r.start(info("b", "dev", 11)).unwrap(), Started::NoPolicy);
    assert_eq!(r.apply_reload(prepared).unwrap(), 2);
    let k = r.kernel();
    let (a, b) = (k.containers[&10].rule_set, k.containers[&11].rule_set);
    assert!(k.entries.contains_key(&a) && k.entries.contains_key(&b));
    assert_eq!(
        k.entries.len(),
        1,
        "one rule set for both, the old one deleted"
    );
}

#[test]
fn a_prepared_reload_overtaken_by_another_is_compiled_again() {
    use super::registry::prepare_reload;
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "prod"));
    r.start(info("a", "prod", 10)).unwrap();
    let stale = prepare_reload(&r.reload_input(), policy("alert, block", "prod")).unwrap();
    r.reload(policy("alert", "*")).unwrap();
    r.start(info("b", "dev", 11)).unwrap();
    // Applying the stale one still gives a consistent state under its policy (revision 3).
    assert_eq!(r.apply_reload(stale).unwrap(), 3);
    let k = r.kernel();
    assert!(k.entries.contains_key(&k.containers[&10].rule_set));
    assert!(
        !k.containers.contains_key(&11),
        "dev is not covered by the applied policy"
    );
    assert_eq!(k.entries.len(), 1);
}

#[test]
fn a_container_removed_while_a_reload_compiles_leaves_no_unwritten_rule_set() {
    use super::registry::prepare_reload;
    let mut r = Registry::new(MemoryKernel::default(), policy("alert", "prod"));
    r.start(info("a", "prod", 10)).unwrap();
    r.start(info("b", "dev", 11)).unwrap();
    let prepared = prepare_reload(&r.reload_input(), policy("alert, block", "d*")).unwrap();
    // b goes away while the reload compiles: its rule set (dev) was compiled, not written.
    r.remove("b");
    r.apply_reload(prepared).unwrap();
    // A new dev container must get its rule set written, not an id with no entries.
    assert!(matches!(
        r.start(info("c", "dev", 12)).unwrap(),
        Started::Protected { .. }
    ));
    let k = r.kernel();
    let c = k.containers[&12].rule_set;
    assert!(
        k.entries.contains_key(&c),
        "rule set {c} of c is in the kernel"
    );
}
