//! Whether the node's container runtime gives d4c NRI: containerd's and CRI-O's
//! configuration, the NRI socket, and containerd's required-plugins validator.

use std::path::Path;

use serde::Serialize;

/// What the runtime configuration says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Runtime {
    /// `containerd` or `cri-o` (the first configuration found), or `None`.
    pub name: Option<String>,
    /// Whether NRI is on: `Some` when the configuration says, `None` when it leaves it
    /// to the version's default.
    pub nri_enabled: Option<bool>,
    /// What decided `nri_enabled`, or why it is unknown.
    pub nri_source: String,
    /// Whether the NRI socket exists.
    pub nri_socket: bool,
    /// Whether containerd refuses containers while d4c is not registered
    /// (`default_validator.required_plugins` holds d4c's plugin).
    pub requires_d4c: bool,
}

/// A TOML document as one value.
fn document(text: &str) -> Result<toml::Value, toml::de::Error> {
    text.parse::<toml::Table>().map(toml::Value::Table)
}

/// A TOML value at a dotted path of tables.
fn at<'a>(v: &'a toml::Value, path: &[&str]) -> Option<&'a toml::Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// Reads containerd's (`etc/containerd/config.toml`) or CRI-O's (`etc/crio/crio.conf`,
/// `crio.conf.d/*`) configuration below `root`, and the NRI socket `nri_socket`.
#[must_use]
pub fn read(root: &Path, nri_socket: &Path, plugin: &str) -> Runtime {
    // In a pod the socket's directory is mounted where the daemon uses it, not below root.
    let mut r = Runtime {
        nri_socket: root
            .join(nri_socket.strip_prefix("/").unwrap_or(nri_socket))
            .exists()
            || (root != Path::new("/") && nri_socket.exists()),
        ..Runtime::default()
    };
    let containerd = root.join("etc/containerd/config.toml");
    if let Ok(text) = std::fs::read_to_string(&containerd) {
        r.name = Some("containerd".into());
        match document(&text) {
            Ok(cfg) => {
                let nri = at(&cfg, &["plugins", "io.containerd.nri.v1.nri"]);
                match nri
                    .and_then(|n| n.get("disable"))
                    .and_then(toml::Value::as_bool)
                {
                    Some(disable) => {
                        r.nri_enabled = Some(!disable);
                        r.nri_source = format!("{}: disable = {disable}", containerd.display());
                    }
                    None => {
                        r.nri_source = format!(
                            "{} does not set [plugins.\"io.containerd.nri.v1.nri\"] disable: containerd 2.x enables NRI by default, 1.7 does not",
                            containerd.display()
                        );
                    }
                }
                r.requires_d4c = nri
                    .and_then(|n| at(n, &["default_validator", "required_plugins"]))
                    .and_then(toml::Value::as_array)
                    .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(plugin)));
            }
            Err(e) => {
                r.nri_source = format!("{}: not valid TOML: {}", containerd.display(), e.message());
            }
        }
        return r;
    }
    let mut crio_files = vec![root.join("etc/crio/crio.conf")];
    if let Ok(rd) = std::fs::read_dir(root.join("etc/crio/crio.conf.d")) {
        let mut more: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        crio_files.extend(more);
    }
    for f in crio_files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        r.name = Some("cri-o".into());
        if let Some(on) = document(&text)
            .ok()
            .and_then(|cfg| at(&cfg, &["crio", "nri", "enable_nri"]).and_then(toml::Value::as_bool))
        {
            r.nri_enabled = Some(on);
            r.nri_source = format!("{}: [crio.nri] enable_nri = {on}", f.display());
        }
    }
    if r.name.as_deref() == Some("cri-o") && r.nri_enabled.is_none() {
        r.nri_source = "CRI-O's configuration does not set [crio.nri] enable_nri (the default depends on the version)".into();
    }
    if r.name.is_none() {
        r.nri_source = "no containerd or CRI-O configuration found".into();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_and_crio_configurations() {
        let root = std::env::temp_dir().join(format!("d4c-runtime-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc/containerd")).unwrap();
        let sock = Path::new("/var/run/nri/nri.sock");
        std::fs::write(
            root.join("etc/containerd/config.toml"),
            "version = 3\n[plugins.'io.containerd.nri.v1.nri']\n  disable = false\n[plugins.'io.containerd.nri.v1.nri'.default_validator]\n  enable = true\n  required_plugins = [\"50-d4c\"]\n",
        )
        .unwrap();
        let r = read(&root, sock, "50-d4c");
        assert_eq!(r.name.as_deref(), Some("containerd"));
        assert_eq!(r.nri_enabled, Some(true));
        assert!(r.requires_d4c);
        assert!(!r.nri_socket);
        std::fs::write(root.join("etc/containerd/config.toml"), "version = 2\n").unwrap();
        let r = read(&root, sock, "50-d4c");
        assert_eq!(r.nri_enabled, None);
        assert!(r.nri_source.contains("1.7 does not"), "{}", r.nri_source);
        std::fs::remove_dir_all(root.join("etc/containerd")).unwrap();
        std::fs::create_dir_all(root.join("etc/crio/crio.conf.d")).unwrap();
        std::fs::write(
            root.join("etc/crio/crio.conf.d/10-nri.conf"),
            "[crio.nri]\nenable_nri = true\n",
        )
        .unwrap();
        let r = read(&root, sock, "50-d4c");
        assert_eq!(
            (r.name.as_deref(), r.nri_enabled),
            (Some("cri-o"), Some(true))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
