//! Kernel struct field offsets, read by userspace from the running kernel's BTF and given to
//! the programs as a frozen read-only global, so one built artifact runs on many kernels.

/// Byte offsets of the kernel struct fields the programs read. Zero means "not present".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub fields: [u32; 64],
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 256);

impl Default for KernelOffsets {
    fn default() -> Self {
        KernelOffsets { fields: [0; 64] }
    }
}
