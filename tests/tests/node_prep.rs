//! `install/node-prep/add-bpf-lsm.sh` on scratch copies of real GRUB default files
//! (`tests/fixtures/grub/`): the kernel command line GRUB would build from the result (the
//! files sourced as `grub-mkconfig` sources them) has `bpf` in its effective `lsm=`, the
//! previous list's order kept and the parameters around it untouched; a backup of each
//! changed file; the reboot sentinel; a second run changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch node root holding a copy of a fixture and an active LSM list.
struct Node(PathBuf);

impl Node {
    fn new(fixture: &str, active_lsm: &str) -> Node {
        let root = std::env::temp_dir().join(format!(
            "d4c-node-prep-{fixture}-{}-{}",
            std::process::id(),
            active_lsm.len()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let status = Command::new("cp")
            .arg("-a")
            .arg(repo().join("tests/fixtures/grub").join(fixture))
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::create_dir_all(root.join("sys/kernel/security")).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::write(root.join("sys/kernel/security/lsm"), active_lsm).unwrap();
        Node(root)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    fn write(&self, p: &str, text: &str) {
        std::fs::write(self.path(p), text).unwrap();
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap()
    }

    fn prep(&self) -> Output {
        let out = Command::new(repo().join("install/node-prep/add-bpf-lsm.sh"))
            .arg("--root")
            .arg(&self.0)
            .arg("--no-update-grub")
            .output()
            .unwrap();
        eprintln!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The Linux command line GRUB builds: the defaults file, then `grub.d/*.cfg`, sourced
    /// in order; `GRUB_CMDLINE_LINUX`, then `GRUB_CMDLINE_LINUX_DEFAULT`.
    fn cmdline(&self) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(
                r#"cd "$1" && . etc/default/grub && for f in etc/default/grub.d/*.cfg; do [ -f "$f" ] && . "./$f"; done; printf '%s %s' "$GRUB_CMDLINE_LINUX" "$GRUB_CMDLINE_LINUX_DEFAULT""#,
            )
            .arg("sh")
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    /// The `lsm=` the kernel takes (the last one).
    fn effective_lsm(&self) -> Option<String> {
        self.cmdline()
            .split_whitespace()
            .filter_map(|a| a.strip_prefix("lsm="))
            .next_back()
            .map(str::to_owned)
    }

    fn backups(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in ["etc/default", "etc/default/grub.d"] {
            if let Ok(rd) = std::fs::read_dir(self.path(dir)) {
                found.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.contains(".d4c-backup-")),
                );
            }
        }
        found
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the script twice: the first run changes, the second finds nothing to change.
fn prep_twice(node: &Node) {
    let first = node.prep();
    assert!(first.status.success());
    assert_eq!(
        node.backups().len(),
        1,
        "one backup of the one changed file"
    );
    assert!(node.path("run/reboot-required").exists());
    let pkgs = node.read("run/reboot-required.pkgs");
    let again = node.prep();
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to change"),
        "a second run changes nothing"
    );
    assert_eq!(node.backups().len(), 1, "and makes no second backup");
    assert_eq!(node.read("run/reboot-required.pkgs"), pkgs);
    assert_eq!(pkgs.lines().filter(|l| *l == "d4c-bpf-lsm").count(), 1);
}

#[test]
fn debian_without_lsm_gets_the_active_list_and_bpf() {
    let node = Node::new("debian-12", "lockdown,capability,landlock,yama,apparmor\n");
    let before = node.read("etc/default/grub");
    prep_twice(&node);
    assert_eq!(
        node.effective_lsm().as_deref(),
        Some("lockdown,landlock,yama,apparmor,bpf")
    );
    assert!(node.cmdline().contains("quiet"));
    let after = node.read("etc/default/grub");
    let changed: Vec<_> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed,
        [(
            "GRUB_CMDLINE_LINUX=\"\"",
            "GRUB_CMDLINE_LINUX=\"lsm=lockdown,landlock,yama,apparmor,bpf\""
        )]
    );
    assert_eq!(before.lines().count(), after.lines().count());
    let backup = &node.backups()[0];
    assert_eq!(node.read(&format!("etc/default/{backup}")), before);
}

#[test]
fn ubuntu_cloud_images_keep_their_drop_in_and_get_lsm_in_grub_cmdline_linux() {
    let node = Node::new(
        "ubuntu-24.04",
        "lockdown,capability,landlock,yama,apparmor,ima,evm",
    );
    let drop_in = node.read("etc/default/grub.d/50-cloudimg-settings.cfg");
    prep_twice(&node);
    assert_eq!(
        node.effective_lsm().as_deref(),
        Some("lockdown,landlock,yama,apparmor,ima,evm,bpf")
    );
    assert_eq!(
        node.read("etc/default/grub.d/50-cloudimg-settings.cfg"),
        drop_in
    );
    assert!(node.cmdline().contains("console=ttyS0"));
}

#[test]
fn an_existing_lsm_list_gets_bpf_at_its_end_and_its_neighbours_stay() {
    let node = Node::new("debian-12", "capability,landlock,lockdown,yama,apparmor");
    let grub = node
        .read("etc/default/grub")
        .replace(
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"",
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet lsm=landlock,lockdown,yama,apparmor apparmor=1\"",
        )
        .replace(
            "GRUB_CMDLINE_LINUX=\"\"",
            "GRUB_CMDLINE_LINUX=\"console=ttyS0,115200 net.ifnames=0\"",
        );
    node.write("etc/default/grub", &grub);
    prep_twice(&node);
    assert_eq!(
        node.cmdline(),
        "console=ttyS0,115200 net.ifnames=0 quiet lsm=landlock,lockdown,yama,apparmor,bpf apparmor=1"
    );
}

#[test]
fn an_lsm_list_set_in_a_drop_in_is_the_one_changed() {
    let node = Node::new("ubuntu-24.04", "lockdown,capability,yama,apparmor");
    node.write(
        "etc/default/grub.d/60-security.cfg",
        "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT lsm=lockdown,yama,apparmor\"\n",
    );
    let grub = node.read("etc/default/grub");
    prep_twice(&node);
    assert_eq!(node.read("etc/default/grub"), grub);
    assert_eq!(
        node.read("etc/default/grub.d/60-security.cfg"),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT lsm=lockdown,yama,apparmor,bpf\"\n"
    );
    assert_eq!(
        node.effective_lsm().as_deref(),
        Some("lockdown,yama,apparmor,bpf")
    );
}

#[test]
fn an_unquoted_value_is_quoted_with_lsm_added() {
    let node = Node::new("debian-12", "capability,yama,apparmor");
    let grub = node.read("etc/default/grub").replace(
        "GRUB_CMDLINE_LINUX=\"\"",
        "GRUB_CMDLINE_LINUX=console=ttyS0",
    );
    node.write("etc/default/grub", &grub);
    prep_twice(&node);
    assert_eq!(node.cmdline(), "console=ttyS0 lsm=yama,apparmor,bpf quiet");
}

#[test]
fn a_node_with_bpf_active_or_without_grub_is_left_alone() {
    let node = Node::new(
        "debian-12",
        "capability,landlock,lockdown,yama,apparmor,bpf",
    );
    let grub = node.read("etc/default/grub");
    let out = node.prep();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already an active LSM"));
    assert_eq!(node.read("etc/default/grub"), grub);
    assert!(node.backups().is_empty() && !node.path("run/reboot-required").exists());

    std::fs::remove_file(node.path("etc/default/grub")).unwrap();
    let out = node.prep();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a GRUB-based node"));
}
