//! The shipped policy directories: `config/policies/` is the default set, deployed as one
//! directory (the `DaemonSet`'s `ConfigMap`, the image, the embedded default), and
//! `config/examples/` holds alternatives, each deployed beside that set.

use d4c_policy::cases::{self, TestFile};
use d4c_policy::{evaluate, load_paths, Actions, Audit, Policy};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn load(paths: &[PathBuf]) -> Policy {
    load_paths(paths)
        .unwrap_or_else(|e| panic!("{paths:?}: {e}"))
        .policy
}

fn test_files(dir: &str) -> Vec<TestFile> {
    let files = cases::find(&[root().join(dir)]).unwrap();
    assert!(!files.is_empty(), "no test file in {dir}");
    files.iter().map(|f| cases::read(f).unwrap()).collect()
}

fn decide(policy: &Policy, case: &cases::Case) -> Actions {
    let mut policy = policy.clone();
    if case.audit {
        policy.audit = Audit::everything();
    }
    evaluate(&policy, &case.container, &case.event).actions
}

/// The default set loads as one directory, with no warning, and never blocks: it is safe
/// on any node, kube-system included, before anyone has looked at what it would block.
#[test]
fn the_default_set_loads_as_one_and_blocks_nothing() {
    let loaded = load_paths(&[root().join("config/policies")]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(!loaded.policy.can_block());
    // Its set-wide test file tests the directory as one.
    let set = test_files("config/policies")
        .into_iter()
        .find(|t| t.policies == [root().join("config/policies/.")])
        .expect("a test file with `policies: [.]` in config/policies");
    assert!(set.cases.len() >= 4);
}

/// Deployed beside the default set, each example blocks exactly what it blocks alone, and
/// alerts at least where it alerts alone: the set adds alerts and logs, never cancels.
#[test]
fn every_example_decides_the_same_beside_the_default_set() {
    let default_set = root().join("config/policies");
    let mut checked = 0;
    for t in test_files("config/examples") {
        let alone = load(&t.policies);
        let mut with = t.policies.clone();
        with.push(default_set.clone());
        let beside = load(&with);
        for case in &t.cases {
            let (a, b) = (decide(&alone, case), decide(&beside, case));
            let at = format!("{}:{} {}", t.path.display(), case.line, case.name);
            for bit in [Actions::BLOCK, Actions::AUDIT] {
                assert_eq!(a.contains(bit), b.contains(bit), "{at}: {a:?} vs {b:?}");
            }
            assert!(
                !a.contains(Actions::ALERT) || b.contains(Actions::ALERT),
                "{at}: the alert is lost beside the default set"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} cases");
}

/// Why the examples are alternatives, not one directory: responses of all files are
/// unioned, so `block-drift.yaml` (no exception) blocks what `allow-package-manager.yaml`
/// excepts. config/README.md says so.
#[test]
fn two_blocking_examples_together_lose_the_narrower_exception() {
    let ex = |f: &str| root().join("config/examples").join(f);
    let t = cases::read(&ex("allow-package-manager.test.yaml")).unwrap();
    let excepted = t
        .cases
        .iter()
        .find(|c| {
            let d = decide(&load(&t.policies), c);
            d.contains(Actions::ALERT) && !d.contains(Actions::BLOCK)
        })
        .expect("allow-package-manager's tests have an excepted install");
    let both = load(&[ex("allow-package-manager.yaml"), ex("block-drift.yaml")]);
    assert!(decide(&both, excepted).contains(Actions::BLOCK));
}
