//! Audit in the kernel: rule sets compiled from a real blocking policy, one container
//! audited (its namespace), one enforced, in the same run. The audited one's drift is
//! allowed and reported as a would-be block; the enforced one's is refused; moving the
//! audited namespace to enforcement (a reload: the rule set compiled again without the
//! audit, the cgroup re-registered under it) refuses the next attempt.

use d4c::daemon::kernel::KernelState;
use d4c_common::{event::FLAG_DENIED, ACTION_AUDIT, ACTION_BLOCK, OP_CREATE_EXECUTABLE};
use d4c_policy::compile::{compile_rule_set, RuleSetSpec};
use d4c_policy::{load_str, Audit, Container};

use super::kernel_support::{
    c, ev_path, kernel, register, rule_set_id, run_in, TestCgroup, TestDir,
};

const DRIFT: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable, modifyExecutable]\n  responses:\n    - match: [drift]\n      actions: [alert, block]\n";

/// Creates `path` with mode 0755 from inside `cgroup`: 0, or the errno.
fn create_exe(cgroup: &std::path::Path, path: &std::path::Path) -> i32 {
    let p = c(path);
    run_in(Some(cgroup), || {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o755) };
        if fd < 0 {
            super::kernel_support::errno()
        } else {
            0
        }
    })
}

#[test]
fn an_audited_block_is_allowed_and_alerted_while_an_enforced_one_refuses() {
    let Some(mut k) = kernel() else { return };
    let mut policy = load_str("drift.yaml", DRIFT).unwrap().policy;
    policy.audit = Audit {
        namespaces: vec!["staging".into()],
        ..Audit::default()
    };
    let in_ns = |ns: &str| Container {
        namespace: Some(ns.into()),
        orchestrator: Some("kubernetes".into()),
        ..Container::default()
    };
    let (staging, prod) = (in_ns("staging"), in_ns("prod"));
    let compile = |policy: &d4c_policy::Policy, c: &Container| {
        let rs = rule_set_id();
        let tables = compile_rule_set(policy, &RuleSetSpec::for_container(policy, c), rs).unwrap();
        (rs, tables)
    };
    let (rs_staging, t_staging) = compile(&policy, &staging);
    let (rs_prod, t_prod) = compile(&policy, &prod);
    KernelState::write_tables(k.enforcer(), &t_staging).unwrap();
    KernelState::write_tables(k.enforcer(), &t_prod).unwrap();
    let (cg_staging, cg_prod) = (
        TestCgroup::new("audit-staging"),
        TestCgroup::new("audit-prod"),
    );
    register(&mut k, &cg_staging, rs_staging);
    register(&mut k, &cg_prod, rs_prod);
    let dir = TestDir::new("audit");

    // Staging: allowed, and alerted as a would-be block.
    let x = dir.path.join("staging-x");
    assert_eq!(
        create_exe(&cg_staging.path, &x),
        0,
        "an audited block is allowed"
    );
    assert!(x.exists());
    let evs = k.events();
    let ev = evs
        .iter()
        .find(|e| ev_path(e) == x.to_str().unwrap())
        .expect("an audit event");
    assert_eq!(ev.op, OP_CREATE_EXECUTABLE as u8);
    assert_eq!(ev.flags & FLAG_DENIED, 0, "not denied");
    assert_ne!(ev.actions & ACTION_AUDIT, 0, "audited");
    assert_eq!(ev.actions & ACTION_BLOCK, 0);
    assert_eq!(ev.rule_set, rs_staging);

    // Production, in the same run: refused.
    let y = dir.path.join("prod-y");
    assert_eq!(
        create_exe(&cg_prod.path, &y),
        libc::EPERM,
        "an enforced block refuses"
    );
    assert!(!y.exists());
    let evs = k.events();
    let ev = evs
        .iter()
        .find(|e| ev_path(e) == y.to_str().unwrap())
        .expect("a block event");
    assert_ne!(ev.flags & FLAG_DENIED, 0);
    assert_eq!(ev.actions & ACTION_AUDIT, 0);

    // A reload moves staging to enforcement: compiled again without the audit, the cgroup
    // re-registered under the new rule set (as the daemon's reload does), the old one gone.
    policy.audit = Audit::default();
    let (rs_enforced, t_enforced) = compile(&policy, &staging);
    KernelState::write_tables(k.enforcer(), &t_enforced).unwrap();
    register(&mut k, &cg_staging, rs_enforced);
    KernelState::delete_tables(k.enforcer(), &t_staging).unwrap();
    let z = dir.path.join("staging-z");
    assert_eq!(
        create_exe(&cg_staging.path, &z),
        libc::EPERM,
        "after the reload, staging is enforced"
    );
    assert!(!z.exists());
    KernelState::delete_tables(k.enforcer(), &t_prod).unwrap();
    KernelState::delete_tables(k.enforcer(), &t_enforced).unwrap();
}
