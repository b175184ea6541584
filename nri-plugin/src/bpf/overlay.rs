//! Where an overlayfs inode keeps its upper dentry (`d4c_common::offsets::OFF_OVL_UPPER`),
//! the mark of a file the container wrote or copied up: from overlayfs's own BTF when it
//! is built in or its module is loaded, else from `sizeof(struct inode)`.

use std::path::Path;

use super::{btf::Btf, error::BpfError};

/// The offset from `ovl_inode.vfs_inode` to `ovl_inode.__upperdentry` in `btf`, if it
/// describes overlayfs.
fn described(btf: &Btf) -> Option<u32> {
    let upper = btf.offset_of("ovl_inode", "__upperdentry")?;
    upper.checked_sub(btf.offset_of("ovl_inode", "vfs_inode")?)
}

/// The offset from an overlay inode's `struct inode` to its upper dentry pointer. `module`
/// is the overlay module's split BTF (`/sys/kernel/btf/overlay`), read when overlayfs is
/// not in `vmlinux`. Without it (the module is loaded at the first overlay mount, maybe
/// after d4c) the [`layout_rule`] gives it.
pub fn upper_offset(vmlinux: &Btf, module: &Path) -> Result<u32, BpfError> {
    match described_offset(vmlinux, module) {
        Ok(Some(off)) => return Ok(off),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, "taking the overlay upper dentry to follow vfs_inode");
        }
    }
    layout_rule(vmlinux)
}

/// The offset as overlayfs's own BTF gives it: `vmlinux`'s when overlayfs is built in,
/// else the module's; `None` when neither describes it (the module is not loaded).
pub fn described_offset(vmlinux: &Btf, module: &Path) -> Result<Option<u32>, BpfError> {
    if let Some(off) = described(vmlinux) {
        return Ok(Some(off));
    }
    if !module.exists() {
        return Ok(None);
    }
    let btf = Btf::split_from_file(module, vmlinux)?;
    described(&btf)
        .map(Some)
        .ok_or_else(|| BpfError::MissingField {
            field: format!("struct ovl_inode.__upperdentry in {}", module.display()),
        })
}

/// The pointer follows `vfs_inode`, as it has from 4.19 to 7.2: `sizeof(struct inode)`.
pub fn layout_rule(vmlinux: &Btf) -> Result<u32, BpfError> {
    let size = vmlinux
        .size_of("inode")
        .ok_or_else(|| BpfError::MissingField {
            field: "sizeof(struct inode)".into(),
        })?;
    Ok(size.next_multiple_of(8))
}
