//! Kernel field access through load-time offsets (no CO-RE in Rust eBPF): the loader writes
//! the running kernel's offsets into `D4C_OFFSETS` (frozen `.rodata`) before loading.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use d4c_common::{
    object::same_name,
    offsets::{OFFSETS_MAGIC, OFF_MAGIC, OFF_PATH_DENTRY, OFF_PATH_MNT},
    KernelOffsets, GLOBAL_OFFSETS,
};

/// The running kernel's field offsets (see `d4c_common::offsets`), the global
/// `d4c_common::GLOBAL_OFFSETS`.
#[no_mangle]
static D4C_OFFSETS: KernelOffsets = KernelOffsets { fields: [0; 64] };
const _: () = assert!(same_name(GLOBAL_OFFSETS, stringify!(D4C_OFFSETS)));

/// The byte offset of field `idx` (an `OFF_*` index).
#[inline(always)]
pub fn off(idx: usize) -> usize {
    // SAFETY: a plain read of a static; volatile so the compiler does not fold the zeros the
    // object file holds (the loader replaces them).
    unsafe { core::ptr::read_volatile(&D4C_OFFSETS.fields[idx]) as usize }
}

/// Whether the loader filled the offsets.
#[inline(always)]
pub fn ready() -> bool {
    // SAFETY: as in `off`.
    unsafe { core::ptr::read_volatile(&D4C_OFFSETS.fields[OFF_MAGIC]) == OFFSETS_MAGIC }
}

/// Reads the `T` at `base + fields[idx]` of kernel memory.
#[inline(always)]
pub fn read<T>(base: *const u8, idx: usize) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an error, not a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off(idx)).cast::<T>()).map_err(i64::from) }
}

/// Reads the pointer at `base + fields[idx]`.
#[inline(always)]
pub fn read_ptr(base: *const u8, idx: usize) -> Result<*const u8, i64> {
    read::<u64>(base, idx).map(|p| p as *const u8)
}

/// Reads the `T` at kernel address `addr`.
#[inline(always)]
pub fn read_at<T>(addr: *const u8) -> Result<T, i64> {
    // SAFETY: as in `read`.
    unsafe { bpf_probe_read_kernel(addr.cast::<T>()).map_err(i64::from) }
}

/// `(mnt, dentry)` of the `struct path` at `path`: one read when the running kernel lays it
/// out as `{ mnt, dentry }` (every kernel so far; the verifier folds the test on the frozen
/// offsets), two otherwise.
#[inline(always)]
pub fn read_path(path: *const u8) -> Result<(*const u8, *const u8), i64> {
    if off(OFF_PATH_MNT) == 0 && off(OFF_PATH_DENTRY) == 8 {
        let p: [u64; 2] = read_at(path)?;
        return Ok((p[0] as *const u8, p[1] as *const u8));
    }
    Ok((
        read_ptr(path, OFF_PATH_MNT)?,
        read_ptr(path, OFF_PATH_DENTRY)?,
    ))
}

/// Loads the `T` at `base + fields[idx]` with one instruction, no helper call. Only for
/// pointers the verifier types from BTF: a hook's arguments, fields loaded from them
/// (kept in registers, never through map memory) and `bpf_get_current_task_btf()`; the
/// verifier checks the offset against the running kernel's BTF and turns the load into a
/// fault-tolerant one. Anything else must use [`read`].
#[inline(always)]
pub fn load<T: Copy>(base: *const u8, idx: usize) -> T {
    // SAFETY: see above; the kernel's exception table covers a bad address.
    unsafe { core::ptr::read_volatile(base.wrapping_add(off(idx)).cast::<T>()) }
}

/// `(mnt, dentry)` of the `struct path` at `path` by direct loads (see [`load`]): only
/// for a hook's own `struct path` or one inside a BTF-typed struct.
#[inline(always)]
pub fn load_path(path: *const u8) -> (*const u8, *const u8) {
    (load(path, OFF_PATH_MNT), load(path, OFF_PATH_DENTRY))
}

/// Argument `n` of the hook, read from the trampoline's argument array: for an argument the
/// verifier does not let a program load from its context (a `void *`), or whose index
/// depends on the attach mode (so that no load of a missing argument is ever verified).
#[inline(always)]
pub fn raw_arg(ctx: &aya_ebpf::programs::LsmContext, n: usize) -> Result<u64, i64> {
    use aya_ebpf::EbpfContext;
    read_at::<u64>(
        ctx.as_ptr()
            .cast::<u8>()
            .cast_const()
            .wrapping_add(8 * (n & 7)),
    )
}
