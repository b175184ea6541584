//! The node a document comes from (`host.*` in Elastic's field names): its name, CPU
//! architecture, boot id, kernel and OS, read once at start. In the `DaemonSet` the node's
//! name comes from `D4C_NODE_NAME` (the pod's `spec.nodeName`; the pod's own hostname is
//! the pod's name) and the OS from the host's `/etc/os-release` under `D4C_HOST_ROOT`.

use serde_json::{json, Map, Value};
use std::path::Path;

/// The initial pid namespace's inode number (the kernel's `PROC_PID_INIT_INO`): the
/// namespace of every pid in d4c's documents, which the kernel reports as seen from it.
pub const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// What a document says about its node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// `host.name` and `host.hostname`.
    pub name: String,
    /// `host.architecture` (`x86_64`, `aarch64`).
    pub architecture: String,
    /// `host.boot.id`: changes at every boot.
    pub boot_id: Option<String>,
    /// `host.os.kernel`: the kernel release.
    pub kernel: Option<String>,
    /// `host.os.*` from os-release: `NAME`, `VERSION_ID`, `ID` (platform), the first of
    /// `ID_LIKE` or else `ID` (family), `PRETTY_NAME` (full), `VERSION_CODENAME`.
    pub os: Vec<(&'static str, String)>,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl Host {
    /// This node, as the daemon or `d4c exec` sees it.
    #[must_use]
    pub fn read() -> Host {
        let root = std::env::var_os(crate::node::HOST_ROOT_ENV).unwrap_or_else(|| "/".into());
        let node = std::env::var("D4C_NODE_NAME")
            .ok()
            .filter(|n| !n.is_empty());
        Host::read_from(Path::new(&root), Path::new("/proc"), node)
    }

    /// The node whose files are under `root` (its os-release) and whose kernel's are under
    /// `proc`, named `node` when given, else by the kernel's hostname.
    #[must_use]
    pub fn read_from(root: &Path, proc: &Path, node: Option<String>) -> Host {
        let os_text = read(&root.join("etc/os-release"))
            .or_else(|| read(&root.join("usr/lib/os-release")))
            .unwrap_or_default();
        // `d4c doctor`'s reading of os-release; an empty value is left out.
        let get = |k| crate::node::os_release(&os_text, k).filter(|v| !v.is_empty());
        let family = get("ID_LIKE")
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .or_else(|| get("ID"));
        let os = [
            ("name", get("NAME")),
            ("version", get("VERSION_ID")),
            ("platform", get("ID")),
            ("family", family),
            ("full", get("PRETTY_NAME")),
            ("codename", get("VERSION_CODENAME")),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        Host {
            name: node
                .or_else(|| read(&proc.join("sys/kernel/hostname")))
                .unwrap_or_else(|| "unknown".into()),
            architecture: std::env::consts::ARCH.to_owned(),
            boot_id: read(&proc.join("sys/kernel/random/boot_id")),
            kernel: read(&proc.join("sys/kernel/osrelease")),
            os,
        }
    }

    /// A host known only by its name (tests, and documents built without a node).
    #[must_use]
    pub fn named(name: &str) -> Host {
        Host {
            name: name.to_owned(),
            architecture: std::env::consts::ARCH.to_owned(),
            ..Host::default()
        }
    }

    /// The `host` object of a document.
    #[must_use]
    pub fn fields(&self) -> Value {
        let mut os = Map::new();
        os.insert("type".into(), json!("linux"));
        if let Some(k) = &self.kernel {
            os.insert("kernel".into(), json!(k));
        }
        for (k, v) in &self.os {
            os.insert((*k).into(), json!(v));
        }
        let mut host = json!({
            "name": self.name,
            "hostname": self.name,
            "architecture": self.architecture,
            "pid_ns_ino": INIT_PID_NS_INO.to_string(),
            "os": os,
        });
        if let Some(b) = &self.boot_id {
            host["boot"] = json!({"id": b});
        }
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_s_facts_from_its_files() {
        let dir = std::env::temp_dir().join(format!("d4c-host-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::create_dir_all(dir.join("proc/sys/kernel/random")).unwrap();
        std::fs::write(
            dir.join("etc/os-release"),
            "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n",
        )
        .unwrap();
        std::fs::write(dir.join("proc/sys/kernel/hostname"), "d4c-abcde\n").unwrap();
        std::fs::write(dir.join("proc/sys/kernel/osrelease"), "6.8.0-45-generic\n").unwrap();
        std::fs::write(
            dir.join("proc/sys/kernel/random/boot_id"),
            "0f3c5d2e-8f8a-4c1b-9d2e-5b7a1c3e9f00\n",
        )
        .unwrap();
        let h = Host::read_from(&dir, &dir.join("proc"), Some("node-7".into()));
        let f = h.fields();
        assert_eq!(
            f["name"], "node-7",
            "the node's name, not the pod's hostname"
        );
        assert_eq!(f["hostname"], "node-7");
        assert_eq!(f["os"]["platform"], "ubuntu");
        assert_eq!(f["os"]["family"], "debian");
        assert_eq!(f["os"]["version"], "24.04");
        assert_eq!(f["os"]["codename"], "noble");
        assert_eq!(f["os"]["full"], "Ubuntu 24.04.1 LTS");
        assert_eq!(f["os"]["kernel"], "6.8.0-45-generic");
        assert_eq!(f["os"]["type"], "linux");
        assert_eq!(f["boot"]["id"], "0f3c5d2e-8f8a-4c1b-9d2e-5b7a1c3e9f00");
        assert_eq!(f["pid_ns_ino"], "4026531836");
        assert_eq!(f["architecture"], std::env::consts::ARCH);
        // Without a node name, the kernel's hostname; without files, no os facts but type.
        let bare = Host::read_from(&dir.join("none"), &dir.join("proc"), None);
        assert_eq!(bare.name, "d4c-abcde");
        assert_eq!(
            bare.fields()["os"],
            json!({"type": "linux", "kernel": "6.8.0-45-generic"})
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
