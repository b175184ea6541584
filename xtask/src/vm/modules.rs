//! Kernel modules for the guest: finding them in an unpacked kernel package, their
//! dependencies (from `.modinfo`) and decompressing `.ko.xz`/`.ko.zst` for busybox insmod.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

/// Writes `wanted` and their dependencies, uncompressed, into `out` as `<name>.ko`;
/// returns their names in load order (dependencies first).
pub fn extract(tree: &Path, wanted: &[&str], out: &Path) -> Result<Vec<String>> {
    let index = module_index(tree)?;
    let mut order = Vec::new();
    for module in wanted {
        add_module(&index, module, out, &mut order)?;
    }
    Ok(order)
}

/// Module name (with `-` as `_`) to its file, for every module under `dir`.
fn module_index(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut index = HashMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(name) = module_name(&path) {
                index.insert(name, path);
            }
        }
    }
    Ok(index)
}

fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

/// Decompresses `name` and its dependencies (first) into `out`, appending to `order`.
fn add_module(
    index: &HashMap<String, PathBuf>,
    name: &str,
    out: &Path,
    order: &mut Vec<String>,
) -> Result<()> {
    let name = name.replace('-', "_");
    if order.contains(&name) {
        return Ok(());
    }
    let path = index
        .get(&name)
        .ok_or_else(|| anyhow!("module {name} is not in the kernel packages"))?;
    let bytes = decompress(path)?;
    for dep in modinfo_depends(&bytes) {
        add_module(index, &dep, out, order)?;
    }
    fs::write(out.join(format!("{name}.ko")), bytes)?;
    order.push(name);
    Ok(())
}

fn decompress(path: &Path) -> Result<Vec<u8>> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => return fs::read(path).with_context(|| format!("cannot read {}", path.display())),
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("cannot run {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} -dc {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// The `depends=` entry of a module's `.modinfo` section (NUL-separated `key=value`s).
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &ko[start + KEY.len()..];
    let value = &value[..value.iter().position(|&b| b == 0).unwrap_or(value.len())];
    String::from_utf8_lossy(value)
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_module_dependencies() {
        let ko = b"\x7fELF...\0license=GPL\0depends=exportfs,libcrc32c\0vermagic=6.1\0";
        assert_eq!(modinfo_depends(ko), ["exportfs", "libcrc32c"]);
        assert!(modinfo_depends(b"\0license=GPL\0depends=\0name=overlay\0").is_empty());
        assert_eq!(
            module_name(Path::new("/x/fs/overlayfs/overlay.ko.xz")).as_deref(),
            Some("overlay")
        );
        assert_eq!(
            module_name(Path::new("/x/nf-nat.ko")).as_deref(),
            Some("nf_nat")
        );
        assert_eq!(module_name(Path::new("/x/modules.order")), None);
    }

    #[test]
    fn extracts_dependencies_first() {
        let tree = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        fs::create_dir_all(tree.path().join("net/bridge")).unwrap();
        fs::write(
            tree.path().join("net/bridge/br_netfilter.ko"),
            b"\0depends=bridge\0",
        )
        .unwrap();
        fs::write(
            tree.path().join("net/bridge/bridge.ko"),
            b"\0depends=stp,llc\0",
        )
        .unwrap();
        fs::write(tree.path().join("stp.ko"), b"\0depends=llc\0").unwrap();
        fs::write(tree.path().join("llc.ko"), b"\0depends=\0").unwrap();
        let order = extract(tree.path(), &["br-netfilter", "llc"], out.path()).unwrap();
        assert_eq!(order, ["llc", "stp", "bridge", "br_netfilter"]);
        assert!(out.path().join("bridge.ko").is_file());
        assert!(extract(tree.path(), &["nonexistent"], out.path()).is_err());
    }
}
