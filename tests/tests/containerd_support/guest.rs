//! Whether a guest end-to-end test can run here: root, a containerd with NRI and the `d4c`
//! binary (the kernel programs attach as BPF LSM or `fmod_ret`, whichever the kernel has); it skips with `skipping test - <reason>` otherwise, and fails instead
//! when `D4C_REQUIRE_BPF_LSM=1` (set inside the guests by the test scripts).

use super::daemon::d4c_bin;
use super::missing_prerequisite;

fn required() -> bool {
    std::env::var("D4C_REQUIRE_BPF_LSM").is_ok_and(|v| v == "1")
}

pub fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if let Some(r) = missing_prerequisite() {
        return Some(r);
    }
    // The kernel must load the hooks in the mode `auto` picks (BPF LSM, else fmod_ret).
    if let Err(e) = d4c::bpf::usable_mode() {
        return Some(e.to_string());
    }
    if d4c_bin().is_none() {
        return Some("no d4c binary (next to this test or on PATH)".into());
    }
    // Where the tests are required (the guests) a refusal must fail them, not skip them:
    // only a host that merely has root and containerd is probed.
    if !required() {
        if let Err(e) = load_probe() {
            return Some(format!("the kernel does not load d4c's programs here: {e}"));
        }
    }
    None
}

/// Loads d4c's programs under a scratch pin directory and unloads them at once.
fn load_probe() -> Result<(), d4c::bpf::BpfError> {
    let pin_dir = std::path::PathBuf::from(format!(
        "{}-probe-{}",
        d4c::paths::PIN_DIR,
        std::process::id()
    ));
    let config = d4c::bpf::Config {
        pin_dir: pin_dir.clone(),
        ..d4c::bpf::Config::default()
    };
    let loaded = d4c::bpf::Enforcer::load_or_adopt(&config).map(|_| ());
    let _ = d4c::bpf::Enforcer::unload_pinned(&pin_dir);
    loaded
}

/// `D4C_REQUIRE_BPF_LSM=1`: fail; otherwise print the reason and skip.
pub fn skip() -> bool {
    let Some(reason) = missing() else {
        return false;
    };
    assert!(!required(), "D4C_REQUIRE_BPF_LSM=1 but {reason}");
    println!("skipping test - {reason}");
    true
}
