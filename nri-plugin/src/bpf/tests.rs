//! Unprivileged tests of the userspace side (BTF parsing of the running kernel).

use std::path::Path;

use d4c_common::offsets::{FIELDS, OFFSETS_MAGIC, OFF_MAGIC};

use super::{btf::Btf, check_bpf_lsm, BpfError};

fn kernel_btf() -> Option<Btf> {
    let p = Path::new(super::KERNEL_BTF);
    if !p.exists() {
        eprintln!("skipping test - no {}", p.display());
        return None;
    }
    Some(Btf::from_file(p).expect("parse kernel BTF"))
}

#[test]
fn every_field_resolves_on_this_kernel() {
    let Some(btf) = kernel_btf() else { return };
    let off = btf.kernel_offsets().expect("all fields");
    assert_eq!(off.fields[OFF_MAGIC], OFFSETS_MAGIC);
    for &(idx, st, path) in FIELDS {
        eprintln!("{st}.{path} = {}", off.fields[idx]);
    }
    // Stable facts: `struct path` is {mnt, dentry}; `self` is a cgroup's first member.
    assert_eq!(btf.offset_of("path", "mnt"), Some(0));
    assert_eq!(btf.offset_of("path", "dentry"), Some(8));
    assert_eq!(btf.offset_of("cgroup", "self"), Some(0));
    // qstr.len sits 4 bytes into the 8-byte hash_len on little-endian.
    let name = btf.offset_of("dentry", "d_name").unwrap();
    assert_eq!(btf.offset_of("dentry", "d_name.len"), Some(name + 4));
    assert_eq!(btf.offset_of("dentry", "d_name.name"), Some(name + 8));
    assert!(btf.has_func("bpf_lsm_path_chmod"));
    assert_eq!(btf.func_params("bpf_lsm_path_chmod"), Some(2));
    assert_eq!(btf.offset_of("dentry", "no_such_field"), None);
}

#[test]
fn garbage_is_not_btf() {
    assert!(Btf::parse(b"not btf at all, not at all").is_none());
    assert!(Btf::parse(&[]).is_none());
}

#[test]
fn lsm_list_without_bpf_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("lsm");
    std::fs::write(&f, "lockdown,capability,yama,apparmor\n").unwrap();
    let err = check_bpf_lsm(&f).unwrap_err();
    assert!(matches!(err, BpfError::LsmUnavailable { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("without `bpf`") && msg.contains("lsm="),
        "{msg}"
    );
    std::fs::write(&f, "capability,bpf\n").unwrap();
    check_bpf_lsm(&f).unwrap();
    let missing = check_bpf_lsm(&dir.path().join("nope")).unwrap_err();
    assert!(missing.to_string().contains("securityfs"), "{missing}");
}
