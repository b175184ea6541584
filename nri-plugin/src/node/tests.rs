//! `inspect` over a scratch root laid out as a node shows its files.

use super::*;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let root = std::env::temp_dir().join(format!("d4c-node-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        Scratch(root)
    }
    fn put(&self, path: &str, text: &str) {
        let p = self.0.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn report(&self) -> Report {
        inspect(&Host {
            root: self.0.clone(),
            pin_dir: self.0.join("sys/fs/bpf/d4c"),
            own_kernel_view: false,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_ubuntu_node_without_bpf_lsm_is_judged_by_its_preemption_and_told_the_grub_line() {
    let (release, _) = uname();
    if preempt::version(&release, "", None).is_none_or(|v| v.major >= 7) {
        return; // the verdicts below are for a 6.x kernel
    }
    let node = Scratch::new("ubuntu");
    node.put("sys/kernel/btf/vmlinux", "");
    node.put(
        "sys/kernel/security/lsm",
        "lockdown,capability,landlock,yama,apparmor",
    );
    node.put(
        &format!("boot/config-{release}"),
        "CONFIG_PREEMPT_VOLUNTARY=y\nCONFIG_PREEMPT_DYNAMIC=y\n",
    );
    node.put(
        "proc/cmdline",
        "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet",
    );
    node.put(
        "etc/os-release",
        "NAME=\"Ubuntu\"\nID=ubuntu\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n",
    );
    let r = node.report();
    assert_eq!(r.mode.as_deref(), Some("fmod_ret"));
    assert_eq!(r.preemption.as_deref(), Some("voluntary"));
    assert_eq!(r.sound, Some(true), "{}", text(&r));

    node.put("proc/cmdline", "BOOT_IMAGE=/vmlinuz ro quiet preempt=full");
    let r = node.report();
    assert_eq!(r.sound, Some(false), "{}", text(&r));
    let fix = &r
        .problems
        .iter()
        .find(|p| p.what.starts_with("blocking is not guaranteed"))
        .unwrap()
        .fix;
    assert!(
        fix.contains("`lsm=lockdown,landlock,yama,apparmor,bpf`") && fix.contains("update-grub"),
        "{fix}"
    );
    assert!(fix.contains("preempt=voluntary"), "{fix}");
    assert!(text(&r).starts_with("blocking: NOT GUARANTEED: fmod_ret"));

    node.put(
        "sys/kernel/security/lsm",
        "lockdown,capability,landlock,yama,apparmor,bpf",
    );
    let r = node.report();
    assert_eq!(r.mode.as_deref(), Some("lsm"));
    assert_eq!(r.sound, Some(true), "{}", text(&r));
    assert!(r.problems.iter().all(|p| !p.what.starts_with("blocking")));
}

#[test]
fn without_a_preemption_source_fmod_ret_cannot_be_told_and_a_flatcar_fix_is_named() {
    let (release, _) = uname();
    if preempt::version(&release, "", None).is_none_or(|v| v.major >= 7) {
        return;
    }
    let node = Scratch::new("flatcar");
    node.put("sys/kernel/btf/vmlinux", "");
    node.put("sys/kernel/security/lsm", "capability,selinux");
    node.put("proc/cmdline", "ro");
    node.put("etc/os-release", "ID=flatcar\n");
    let r = node.report();
    assert_eq!(r.sound, None, "{}", text(&r));
    let fix = &r.problems.last().unwrap().fix;
    assert!(
        fix.contains("kernelArguments") && fix.contains("lsm=selinux,bpf"),
        "{fix}"
    );
}

#[test]
fn no_btf_means_no_mode() {
    let node = Scratch::new("nobtf");
    node.put("proc/cmdline", "ro");
    let r = node.report();
    assert_eq!((r.mode, r.sound), (None, Some(false)));
    assert!(r.problems[0].what.contains("BTF"));
}
