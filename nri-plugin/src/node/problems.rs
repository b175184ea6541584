//! The problems a node has for d4c, each with the fix for the node's OS (`/etc/os-release`):
//! the kernel command line that adds `bpf` to `lsm=` where blocking is not guaranteed, a
//! newer kernel, cgroup v2, BTF, the runtime's NRI.

use serde::Serialize;

use super::runtime;
use super::sound::{Remedy, Verdict};

/// One problem and its fix.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

/// What `problems` needs to know of the node.
pub(super) struct Node<'a> {
    pub os_id: Option<&'a str>,
    pub lsm: Option<&'a str>,
    pub btf: bool,
    pub cgroup_v2: bool,
    pub runtime: &'a runtime::Runtime,
}

/// The `lsm=` value that adds `bpf` to the active list (keeping its order).
fn lsm_with_bpf(lsm: Option<&str>) -> String {
    let mut list: Vec<&str> = lsm
        .unwrap_or("lockdown,capability,landlock,yama,apparmor")
        .split(',')
        .filter(|l| !l.is_empty() && *l != "capability")
        .collect();
    if !list.contains(&"bpf") {
        list.push("bpf");
    }
    list.join(",")
}

/// How to add `bpf` to `lsm=` on this OS.
fn lsm_fix(os_id: Option<&str>, lsm: Option<&str>) -> String {
    let arg = format!("lsm={}", lsm_with_bpf(lsm));
    match os_id {
        Some("debian" | "ubuntu") => format!(
            "add `{arg}` to GRUB_CMDLINE_LINUX in /etc/default/grub, run `update-grub` and reboot (install/node-prep/add-bpf-lsm.sh does this, and asks a reboot coordinator for the reboot; its DaemonSet does it on labelled nodes)"
        ),
        Some("flatcar") => format!(
            "add the kernel argument `{arg}` (Ignition: kernelArguments.shouldExist; on a running node: `set linux_append=\"$linux_append {arg}\"` in /oem/grub.cfg) and reboot (install/node-prep/README.md)"
        ),
        Some("azurelinux" | "mariner") => format!(
            "add `{arg}` to GRUB_CMDLINE_LINUX in /etc/default/grub, run `grub2-mkconfig -o /boot/grub2/grub.cfg` and reboot"
        ),
        Some("bottlerocket") => format!(
            "set the kernel parameter `{arg}` with Bottlerocket's boot settings (settings.boot.kernel-parameters) and reboot (install/node-prep/README.md)"
        ),
        Some("talos") => format!(
            "add `{arg}` to machine.install.extraKernelArgs in the machine configuration and upgrade the node to apply it (unified kernel images: the image's extraKernelArgs; install/node-prep/README.md)"
        ),
        _ => format!("add `{arg}` to the kernel command line and reboot"),
    }
}

pub(super) fn problems(v: &Verdict, node: &Node<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    if !node.btf {
        out.push(Problem {
            what: "no kernel BTF (/sys/kernel/btf/vmlinux)".into(),
            fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution's is)"
                .into(),
        });
    }
    if !node.cgroup_v2 {
        out.push(Problem {
            what: "no cgroup v2 hierarchy".into(),
            fix: "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 is the default on current distributions)".into(),
        });
    }
    if v.sound != Some(true) {
        let mut fixes: Vec<String> = v
            .remedies
            .iter()
            .map(|r| match r {
                Remedy::AddBpfToLsm => lsm_fix(node.os_id, node.lsm),
                Remedy::NewerKernel => {
                    "update the kernel to 6.1.54 or later (Debian 12: `apt upgrade`), or to 6.2+"
                        .into()
                }
            })
            .collect();
        if v.remedies.contains(&Remedy::AddBpfToLsm) && v.voluntary_possible {
            fixes.push("or boot with `preempt=voluntary` (this kernel still offers it)".into());
        }
        out.push(Problem {
            what: format!("blocking is not guaranteed: {}", v.why),
            fix: fixes.join("; "),
        });
    }
    let rt = node.runtime;
    match (rt.name.as_deref(), rt.nri_enabled) {
        (Some("containerd"), Some(false)) => out.push(Problem {
            what: "containerd has NRI disabled".into(),
            fix: "set `disable = false` under [plugins.\"io.containerd.nri.v1.nri\"] in /etc/containerd/config.toml (install/containerd/) and restart containerd".into(),
        }),
        (Some("cri-o"), Some(false)) => out.push(Problem {
            what: "CRI-O has NRI disabled".into(),
            fix: "set `enable_nri = true` under [crio.nri] (install/crio/) and restart CRI-O".into(),
        }),
        _ => {}
    }
    if rt.name.is_some() && !rt.nri_socket {
        out.push(Problem {
            what: format!(
                "no NRI socket at {}: the runtime does not serve NRI",
                crate::paths::NRI_SOCKET
            ),
            fix: "enable NRI in the runtime's configuration and restart it".into(),
        });
    }
    out
}
