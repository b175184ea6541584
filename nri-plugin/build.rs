//! Build script: records the build identity for `d4c --version`, and builds the eBPF
//! programs in `../ebpf` (its own workspace, target bpfel-unknown-none, linked by
//! bpf-linker) with aya-build into `$OUT_DIR/d4c-ebpf`, which `src/bpf` embeds. The
//! toolchain is the one pinned in `../rust-toolchain.toml` (never a floating nightly), with
//! `RUSTC_BOOTSTRAP=1` for `-Z build-std=core`; see ebpf/README.md, "Toolchain".
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build (an empty object is embedded; loading it fails
//! with a clear error): for hosts without bpf-linker that only lint or test userspace.
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    println!("cargo:rustc-env=D4C_BUILD=git {rev}");
    // `d4c --version` names the commit: built again when HEAD moves, whether HEAD names a
    // commit itself or (on a branch) a ref file that a commit rewrites.
    println!("cargo:rerun-if-changed=../.git/HEAD");
    if let Ok(head) = std::fs::read_to_string("../.git/HEAD") {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            // A path that does not exist would run this script at every build.
            for path in [format!("../.git/{reference}"), "../.git/packed-refs".into()] {
                if std::path::Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
        }
    }

    build_ebpf()
}

fn build_ebpf() -> anyhow::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest.join("../ebpf").canonicalize()?;
    let common_dir = manifest.join("../common").canonicalize()?;
    println!(
        "cargo:rerun-if-changed={}",
        common_dir.join("src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.lock").display()
    );
    let toolchain = pinned_toolchain(&manifest.join("../rust-toolchain.toml"))?;
    println!("cargo:rerun-if-changed=../rust-toolchain.toml");
    // aya-build adds `-Z build-std=core` when RUSTC_BOOTSTRAP=1, and its cargo inherits
    // the variable. A build script runs single-threaded, so setting it here is sound.
    std::env::set_var("RUSTC_BOOTSTRAP", "1");
    // aya-build runs `cargo build --package d4c-ebpf` in the current directory: run it in
    // ebpf/, whose own workspace holds the package.
    std::env::set_current_dir(&ebpf_dir)?;
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "d4c-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )?;
    let object = PathBuf::from(std::env::var("OUT_DIR")?).join("d4c-ebpf");
    if !object.exists() {
        // AYA_BUILD_SKIP: embed an empty object.
        std::fs::write(&object, [])?;
    }
    Ok(())
}

/// The `channel` of the repository's `rust-toolchain.toml`: the one place the toolchain
/// that builds the eBPF object is named.
fn pinned_toolchain(file: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .find(|v| !v.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{}: no `channel = \"...\"` line", file.display()))
}
