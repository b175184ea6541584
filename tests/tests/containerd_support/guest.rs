//! Whether a guest end-to-end test can run here: root, a containerd with NRI, a kernel
//! that loads d4c's hooks (as BPF LSM or `fmod_ret`, a probe program tells) and the `d4c`
//! binary; it skips with `skipping test - <reason>` otherwise, and fails instead when
//! `D4C_REQUIRE_BPF_LSM=1` (set inside the guests by the test scripts).

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
    None
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
