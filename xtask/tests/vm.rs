//! Boots a guest with `cargo xtask vm` and checks the harness contract: the command's
//! arguments arrive intact, its output (stdout and stderr, and nothing else) reaches our
//! stdout, and its exit status is ours.
//!
//! Needs qemu-system-x86_64 and root (apt sources, /var/cache/d4c); skips without them,
//! unless `D4C_REQUIRE_QEMU=1`, which turns a skip into a failure. The kernel is
//! `6.12` unless `D4C_VM_TEST_KERNEL` names another.

use std::process::{Command, Stdio};

fn skip_or_fail(reason: &str) {
    assert!(
        std::env::var_os("D4C_REQUIRE_QEMU").is_none_or(|v| v != "1"),
        "D4C_REQUIRE_QEMU=1 but {reason}"
    );
    eprintln!("skipping test - {reason}");
}

fn missing_requirement() -> Option<String> {
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !qemu.is_ok_and(|s| s.success()) {
        return Some("qemu-system-x86_64 not found".into());
    }
    if !rustix::process::geteuid().is_root() {
        return Some("the VM harness needs root".into());
    }
    None
}

#[test]
fn guest_command_output_and_exit_status_pass_through() {
    if let Some(reason) = missing_requirement() {
        skip_or_fail(&reason);
        return;
    }
    let kernel = std::env::var("D4C_VM_TEST_KERNEL").unwrap_or_else(|_| "6.12".into());
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["vm", "--kernel", &kernel, "--timeout", "600", "--"])
        .args(["sh", "-c", r#"printf '[%s]' "$@"; echo; echo "lsm=$(cat /sys/kernel/security/lsm)"; command -v d4c; echo oops >&2; exit 7"#])
        .args(["sh", "a b", "it's \"quoted\"", ""])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo xtask vm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "exit status; stdout:\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "only the command's output on stdout:\n{stdout}"
    );
    assert_eq!(lines[0], r#"[a b][it's "quoted"][]"#);
    assert!(
        lines[1].starts_with("lsm=") && lines[1].split(',').any(|l| l == "bpf"),
        "BPF LSM active: {}",
        lines[1]
    );
    assert_eq!(lines[2], "/usr/local/bin/d4c");
    assert_eq!(lines[3], "oops");
}
