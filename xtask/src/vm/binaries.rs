//! Host binaries the guest gets: the freshly built `d4c`, static busybox, and the shared
//! libraries (`ldd`) dynamic executables need.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::progress;

/// Where busybox-static installs busybox.
const BUSYBOX: &str = "/bin/busybox";

/// `cargo build --release -p d4c` in the workspace; returns the built binary.
pub fn build_d4c(workspace: &Path) -> Result<PathBuf> {
    progress("building d4c (cargo build --release -p d4c)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // `cargo run` gave this process the variables of xtask's own package; a build script
    // that watches one of them (ring's watches CARGO_MANIFEST_DIR) would see it change
    // between this build and a plain `cargo build --release`, and each would rebuild
    // ring, rustls, ureq and d4c (about a minute under a test run's load).
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("CARGO_PKG_")
            || matches!(
                &*n,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            cmd.env_remove(&name);
        }
    }
    let mut child = cmd
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "d4c",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let mut executable = None;
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "d4c" {
            if let Some(path) = msg["executable"].as_str() {
                executable = Some(PathBuf::from(path));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build --release -p d4c failed ({status})");
    }
    executable.context("cargo built no d4c executable")
}

/// The static busybox; refuses a dynamically linked one.
pub fn busybox() -> Result<PathBuf> {
    let path = PathBuf::from(BUSYBOX);
    if !path.is_file() {
        bail!("{BUSYBOX} is missing: install busybox-static (scripts/setup.sh)");
    }
    if !shared_libraries(&path)?.is_empty() {
        bail!("{BUSYBOX} is dynamically linked: install busybox-static instead of busybox");
    }
    Ok(path)
}

/// The applets busybox provides, as paths relative to `/` (e.g. `bin/sh`).
pub fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .context("cannot run busybox --list-full")?;
    if !out.status.success() {
        bail!("busybox --list-full failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// A shared library an executable needs: its path as the loader looks it up, and the
/// host file holding it (symlinks resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub guest_path: PathBuf,
    pub host_file: PathBuf,
}

/// The libraries `ldd` names for `exe`, the dynamic loader included; empty if static.
pub fn shared_libraries(exe: &Path) -> Result<Vec<Library>> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("statically linked") {
        // ldd exits 1 with "not a dynamic executable" for static binaries.
        return Ok(Vec::new());
    }
    parse_ldd(&text)?
        .into_iter()
        .map(|guest_path| {
            let host_file = guest_path.canonicalize().with_context(|| {
                format!(
                    "ldd names {} for {}, which is missing",
                    guest_path.display(),
                    exe.display()
                )
            })?;
            Ok(Library {
                guest_path,
                host_file,
            })
        })
        .collect()
}

/// Whether `path` is an executable ELF file worth asking `ldd` about.
pub fn is_elf_executable(path: &Path) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let executable = file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let mut magic = [0; 4];
    executable && file.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF"
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("=> not found") {
            bail!("ldd: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::parse_ldd;
    use std::path::PathBuf;

    #[test]
    fn parses_ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc8a7f5000)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1c)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1b)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f1d)\n";
        let libs = parse_ldd(out).unwrap();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }
}
