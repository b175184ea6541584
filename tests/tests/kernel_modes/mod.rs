//! Kernel tests of the attach modes: `auto` picks the mode the guest was booted for, an
//! explicit `lsm` never falls back, and the hooks enforce as `fmod_ret` programs next to a
//! running enforcer of either mode (each enforcer acts on its own registrations only).

use std::path::{Path, PathBuf};

use d4c::bpf::{pinned_mode, AttachMode, AttachRequest, BpfError, Config, Enforcer};
use d4c::paths::{LSM_LIST, PIN_DIR};
use d4c_common::{ContainerEntry, ACTION_ALERT, ACTION_BLOCK, OP_CREATE_EXECUTABLE};

use crate::kernel_support::{
    c, everywhere, expected_mode, kernel, rc, rule_set_id, run_in, TestCgroup, TestDir,
};

fn chmod(p: &Path, mode: u32) -> i32 {
    let c = c(p);
    // SAFETY: a NUL-terminated path.
    rc(i64::from(unsafe { libc::chmod(c.as_ptr(), mode) }))
}

fn lsm_active() -> bool {
    d4c::bpf::check_bpf_lsm(Path::new(LSM_LIST)).is_ok()
}

#[test]
fn auto_attaches_in_the_mode_the_kernel_has() {
    let Some(mut k) = kernel() else { return };
    let mode = k.enforcer().mode();
    let pin_dir = k.pin_dir.clone();
    assert_eq!(
        pinned_mode(&pin_dir),
        Some(mode),
        "the pins record the mode"
    );
    let want = if lsm_active() {
        AttachMode::Lsm
    } else {
        AttachMode::FmodRet
    };
    assert_eq!(mode, want, "auto prefers LSM where it is active");
    if let Some(expected) = expected_mode() {
        assert_eq!(mode, expected, "D4C_EXPECT_ATTACH");
    }
    // The enforcing programs are pinned under the hook names in both modes.
    let links: Vec<String> = std::fs::read_dir(d4c::bpf::links_dir(&pin_dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let hooks = d4c_common::PROGRAMS
        .iter()
        .filter(|p| p.kind == d4c_common::ProgramKind::Lsm && !p.optional)
        .map(|p| p.name);
    for hook in hooks {
        assert!(
            links.iter().any(|l| l == hook),
            "{hook} not attached: {links:?}"
        );
    }
}

#[test]
fn an_explicit_lsm_never_falls_back() {
    let Some(_k) = kernel() else { return };
    let r = AttachRequest::Only(AttachMode::Lsm).resolve(Path::new(LSM_LIST));
    if lsm_active() {
        assert_eq!(r.unwrap(), AttachMode::Lsm);
        return;
    }
    let e = r.unwrap_err();
    assert!(matches!(e, BpfError::LsmUnavailable { .. }), "{e:?}");
    let text = e.to_string();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    // Loading with `lsm` fails the same way and pins nothing.
    let pin_dir = PathBuf::from(format!("{PIN_DIR}-test-lsm-{}", std::process::id()));
    let config = Config {
        pin_dir: pin_dir.clone(),
        attach: AttachRequest::Only(AttachMode::Lsm),
        ..Config::default()
    };
    assert!(matches!(
        Enforcer::load_or_adopt(&config),
        Err(BpfError::LsmUnavailable { .. })
    ));
    assert!(!d4c::bpf::links_dir(&pin_dir).exists(), "nothing pinned");
}

#[test]
fn fmod_ret_enforces_next_to_another_enforcer() {
    let Some(_k) = kernel() else { return };
    let pin_dir = PathBuf::from(format!("{PIN_DIR}-test-fmod-{}", std::process::id()));
    let config = Config {
        pin_dir: pin_dir.clone(),
        attach: AttachRequest::Only(AttachMode::FmodRet),
        ..Config::default()
    };
    let mut e = Enforcer::load_or_adopt(&config).unwrap_or_else(|e| panic!("fmod_ret load: {e}"));
    assert_eq!(e.mode(), AttachMode::FmodRet);
    assert_eq!(pinned_mode(&pin_dir), Some(AttachMode::FmodRet));
    let rs = rule_set_id();
    e.write_file_rules(&[everywhere(
        rs,
        &[OP_CREATE_EXECUTABLE],
        ACTION_ALERT | ACTION_BLOCK,
    )])
    .unwrap();
    let cg = TestCgroup::new("fmod");
    let dir = TestDir::new("fmod");
    let f = dir.file("f", 0o644);
    e.register(cg.id(), ContainerEntry::new(rs, cg.id()))
        .unwrap();
    assert_eq!(run_in(Some(&cg.path), || chmod(&f, 0o755)), libc::EPERM);
    assert_eq!(run_in(None, || chmod(&f, 0o755)), 0, "outside the cgroup");
    let mut events = e.take_events().expect("ring buffer");
    let mut seen = false;
    while let Some(ev) = events.try_next() {
        seen |= usize::from(ev.op) == OP_CREATE_EXECUTABLE && ev.cgroup_id == cg.id();
    }
    assert!(seen, "the fmod_ret program reported the denial");
    drop(events);
    e.unload().unwrap();
    assert!(!pin_dir.exists(), "unload removes the pins");
    // Removing the last pin detaches after an RCU grace period.
    assert_eq!(run_in(None, || chmod(&f, 0o644)), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while run_in(Some(&cg.path), || chmod(&f, 0o755)) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "still enforced after unload"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
