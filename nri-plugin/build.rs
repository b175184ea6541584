//! Build script: records the build identity for `d4c --version`, and builds the eBPF
//! programs in `../ebpf` (its own workspace, nightly, target bpfel-unknown-none, linked by
//! bpf-linker) with aya-build into `$OUT_DIR/d4c-ebpf`, which `src/bpf` embeds.
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
    println!("cargo:rerun-if-changed=../.git/HEAD");

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
        aya_build::Toolchain::default(),
    )?;
    let object = PathBuf::from(std::env::var("OUT_DIR")?).join("d4c-ebpf");
    if !object.exists() {
        // AYA_BUILD_SKIP: embed an empty object.
        std::fs::write(&object, [])?;
    }
    Ok(())
}
