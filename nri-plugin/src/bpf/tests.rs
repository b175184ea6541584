//! Unprivileged tests of the userspace side: the embedded object holds every name the
//! loader uses; BTF parsing of the running kernel.

use std::path::Path;

use d4c_common::offsets::{FIELDS, OFFSETS_MAGIC, OFF_MAGIC};

use super::{btf::Btf, check_bpf_lsm, BpfError};

/// Every map, program and global the loader looks up by name is in the embedded object,
/// with the kind of program and the size of global it expects.
#[test]
fn the_embedded_object_has_every_name_the_loader_uses() {
    use aya_obj::ProgramSection;
    use d4c_common::{
        KernelOffsets, ProgramKind, GLOBAL_NOOP, GLOBAL_OFFSETS, MAP_COMM_RULES, MAP_CONTAINERS,
        MAP_COUNTERS, MAP_EVENTS, MAP_EXEC_EVENTS, MAP_EXE_RULES, MAP_FILE_RULES,
        MAP_PROC_DECISIONS, MAP_RULESET_OPS, PROGRAMS,
    };
    if super::loader::OBJECT.is_empty() {
        eprintln!("skipping test - the eBPF object was not built (AYA_BUILD_SKIP)");
        return;
    }
    let mut object = aya_obj::Object::parse(super::loader::OBJECT).expect("parse the object");
    for map in [
        MAP_CONTAINERS,
        MAP_FILE_RULES,
        MAP_EXE_RULES,
        MAP_COMM_RULES,
        MAP_PROC_DECISIONS,
        MAP_RULESET_OPS,
        MAP_COUNTERS,
        MAP_EVENTS,
    ]
    .into_iter()
    .chain(MAP_EXEC_EVENTS)
    {
        assert!(object.maps.contains_key(map), "no map {map}");
    }
    for p in &PROGRAMS {
        let section = &object
            .programs
            .get(p.name)
            .unwrap_or_else(|| panic!("no program {}", p.name))
            .section;
        match p.kind {
            ProgramKind::Lsm => assert!(
                matches!(section, ProgramSection::Lsm { .. }),
                "{}: {section:?}",
                p.name
            ),
            ProgramKind::RawTracepoint => assert!(
                matches!(section, ProgramSection::RawTracePoint),
                "{}: {section:?}",
                p.name
            ),
        }
    }
    // What the loader writes: the patch fails on a missing symbol or a size mismatch.
    // KernelOffsets is its `fields` array (common's size assertion).
    let offsets: Vec<u8> = KernelOffsets::default()
        .fields
        .iter()
        .flat_map(|f| f.to_ne_bytes())
        .collect();
    assert_eq!(offsets.len(), std::mem::size_of::<KernelOffsets>());
    let noop = 1u32.to_ne_bytes();
    object
        .patch_map_data(std::collections::HashMap::from([
            (GLOBAL_OFFSETS, (&offsets[..], true)),
            (GLOBAL_NOOP, (&noop[..], true)),
        ]))
        .expect("the globals exist with the loader's sizes");
}

fn kernel_btf() -> Option<Btf> {
    let p = Path::new(crate::paths::KERNEL_BTF);
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

#[test]
fn the_overlay_upper_dentry_offset_is_found() {
    let Some(btf) = kernel_btf() else { return };
    let rule = super::overlay::layout_rule(&btf).expect("sizeof(struct inode)");
    let module = Path::new(crate::paths::OVERLAY_BTF);
    let described = super::overlay::described_offset(&btf, module).expect("readable BTF");
    // Built in or a loaded module: its BTF agrees with the layout rule d4c falls back to.
    assert!(
        described.is_none_or(|off| off == rule),
        "{described:?} vs {rule}"
    );
    let off = super::overlay::upper_offset(&btf, Path::new("/nonexistent")).unwrap();
    assert_eq!(off, described.unwrap_or(rule));
    if described.is_none() {
        eprintln!("overlayfs is not loaded here: only the layout rule was computed");
    }
}
