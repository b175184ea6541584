//! Kernel tests of directory renames: a directory moved to D is decided by what could land
//! below D, so no executable it carries ends up where creating it would be refused; unless
//! nothing below its source could have been created as an executable.

use std::path::Path;

use d4c_common::{HOOK_PATH_RENAME, OP_CREATE_EXECUTABLE};
use d4c_policy::compile::{compile_rule_set, RuleSetSpec};

use crate::kernel_support::{c, kernel, rc, register, rule_set_id, run_in, TestCgroup, TestDir};

/// A cgroup managed under the rule set the policy `yaml` compiles to.
pub(super) fn managed(k: &mut crate::kernel_support::Shared, yaml: &str, tag: &str) -> TestCgroup {
    let policy = d4c_policy::load_str("t.yaml", yaml).unwrap().policy;
    let rs = rule_set_id();
    let spec = RuleSetSpec::for_container(&policy, &d4c_policy::Container::default());
    let tables = compile_rule_set(&policy, &spec, rs).unwrap();
    k.enforcer().write_file_rules(&tables.file_rules).unwrap();
    let cg = TestCgroup::new(tag);
    register(k, &cg, rs);
    cg
}

fn rename(from: &Path, to: &Path, flags: u32) -> impl FnOnce() -> i32 {
    let (from, to) = (c(from), c(to));
    // SAFETY: NUL-terminated paths.
    move || unsafe {
        rc(libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        ))
    }
}

#[test]
fn a_directory_moved_where_an_executable_could_not_be_created_is_refused() {
    let Some(mut k) = kernel() else { return };
    let dir = TestDir::new("dirmove");
    let d = dir.path.display();
    let yaml = format!(
        "file:\n  selectors:\n    - name: bins\n      operation: [createExecutable]\n      targetFilePath: ['{d}/protected/bin/**']\n  responses:\n    - match: [bins]\n      actions: [alert, block]\n"
    );
    let cg = managed(&mut k, &yaml, "dirmove");

    let src = dir.path.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("payload"), b"#!/bin/sh\n").unwrap();
    let protected = dir.path.join("protected");
    let bin = protected.join("bin");
    let _ = k.events();

    let r = run_in(Some(&cg.path), rename(&src, &protected, 0));
    assert_eq!(
        r,
        libc::EPERM,
        "to a directory whose subtree holds the protected one"
    );
    let evs = k.events();
    assert!(evs.iter().any(|e| e.op == OP_CREATE_EXECUTABLE as u8
        && e.hook == HOOK_PATH_RENAME
        && crate::kernel_support::ev_path(e) == protected.to_str().unwrap()));
    std::fs::create_dir_all(&bin).unwrap();
    let r = run_in(Some(&cg.path), rename(&src, &bin.join("sub"), 0));
    assert_eq!(r, libc::EPERM, "into the protected tree");
    let other = dir.path.join("other");
    assert_eq!(
        run_in(Some(&cg.path), rename(&src, &other, 0)),
        0,
        "a directory moved where nothing is protected"
    );
    assert_eq!(
        run_in(Some(&cg.path), rename(&other, &src, 0)),
        0,
        "and back"
    );
    // An exchange moves both ways: `src` would land at `bin`.
    let r = run_in(Some(&cg.path), rename(&src, &bin, libc::RENAME_EXCHANGE));
    assert_eq!(
        r,
        libc::EPERM,
        "RENAME_EXCHANGE with the protected directory"
    );
    assert!(src.join("payload").exists(), "nothing moved");
    assert_eq!(
        run_in(None, rename(&src, &bin.join("sub"), 0)),
        0,
        "unmanaged: the move works"
    );
}

/// Under a block everywhere but an exception, a directory from where nothing could be
/// created as an executable moves freely; one from the exception does not leave it.
#[test]
fn a_directory_that_could_hold_no_new_executable_moves_freely() {
    let Some(mut k) = kernel() else { return };
    let dir = TestDir::new("dirmove-free");
    let d = dir.path.display();
    let yaml = format!(
        "file:\n  selectors:\n    - name: all\n      operation: [createExecutable]\n    - name: cache\n      operation: [createExecutable]\n      targetFilePath: ['{d}/cache/**']\n  responses:\n    - match: [all]\n      exclude: [cache]\n      actions: [alert, block]\n"
    );
    let cg = managed(&mut k, &yaml, "dirmove-free");
    let (data, moved) = (dir.path.join("data"), dir.path.join("data.old"));
    std::fs::create_dir(&data).unwrap();
    assert_eq!(
        run_in(Some(&cg.path), rename(&data, &moved, 0)),
        0,
        "a directory where no executable could be created"
    );
    let built = dir.path.join("cache/build");
    std::fs::create_dir_all(&built).unwrap();
    assert_eq!(
        run_in(
            Some(&cg.path),
            rename(&built, &dir.path.join("cache/b2"), 0)
        ),
        0,
        "within the exception"
    );
    assert_eq!(
        run_in(
            Some(&cg.path),
            rename(&dir.path.join("cache/b2"), &dir.path.join("out"), 0)
        ),
        libc::EPERM,
        "out of the exception"
    );
}
