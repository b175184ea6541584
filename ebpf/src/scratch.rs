//! The scratch space: path buffers, the event's metadata and the path walk's state, too
//! large for the 512-byte BPF stack. Each CPU has [`SLOTS`] values; a program run claims
//! one ([`claim`]) for its whole run and releases it when the claim drops. A run can be
//! preempted (a preemptible kernel: `preempt=full`, the lazy preemption of 6.13+, RT) and
//! another task's run then uses the same CPU: it claims another slot, so neither run ever
//! reads a path, a key or a walk the other wrote.

use core::intrinsics::{atomic_and, atomic_or, AtomicOrdering::SeqCst};

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::Key, PerCpuArray},
};
use d4c_common::{event::EVENT_PATH_MAX, Event, TrieData, PATH_KEY_MAX};

/// Path bytes kept (the rest of a longer path is only measured).
pub const PATH_BUF: usize = EVENT_PATH_MAX;
/// Room after `PATH_BUF` so that a component copy starting below it never needs a check.
pub const SLACK: usize = 256;
/// Bytes of the work buffer the path is prepended into; a longer path is flagged
/// `PATH_TOO_DEEP` (its leading bytes, which the lookup needs, are lost).
pub const WORK: usize = 1024;

/// Which buffer of the scratch space a path is built into: [`Scratch::target`].
pub const TARGET: u32 = 0;
/// [`Scratch::exe`].
pub const EXE: u32 = 1;

/// Scratch values per CPU: how many d4c runs can be in flight on one CPU at once (all but
/// one of them preempted; at most 63, bits of the claims word). A run that finds every slot
/// claimed fails: it denies where its rule set can block and is counted
/// (`d4c_kernel_hook_errors_total`).
pub const SLOTS: u32 = 16;

/// This CPU's scratch values. Not pinned: they hold nothing between runs.
#[map(name = "D4C_SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(SLOTS, 0);

/// This CPU's claimed slots: bit `i` set while a run holds slot `i`. Changed only with
/// atomic read-modify-writes, so two runs on one CPU never both see a slot free.
#[map(name = "D4C_SCR_CLAIMS")]
static CLAIMS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// One run's scratch value, released when dropped (on every return path of the hook).
pub struct Claim {
    value: *mut Scratch,
    claims: *mut u64,
    bit: u64,
}

/// Every slot's bit of the claims word.
const ALL_SLOTS: u64 = (1 << SLOTS) - 1;
const _: () = assert!(SLOTS <= 63);

/// Claims a free scratch slot of this CPU, or `None` when all [`SLOTS`] are claimed (or a
/// map lookup fails, which it cannot: both arrays have their entries from creation).
///
/// The slot is computed from the claims word (the lowest free bit), never from a loop
/// counter: the verifier then sees one unknown slot, not one program path per slot.
#[inline(always)]
pub fn claim() -> Option<Claim> {
    let claims = CLAIMS.get_ptr_mut(0)?;
    let mut bit = 0u64;
    // Another run on this CPU can take the bit between the read and the claim (it
    // preempted this one there); a few tries, then the hook fails (and denies).
    for _ in 0..4 {
        // SAFETY: a per-CPU array slot, valid (and never moved) while any program runs;
        // besides this plain read (a hint), only atomic operations touch it.
        let free = !unsafe { core::ptr::read_volatile(claims) } & ALL_SLOTS;
        let lowest = free & free.wrapping_neg();
        if lowest == 0 {
            return None;
        }
        // SAFETY: as above.
        if unsafe { atomic_or::<u64, u64, { SeqCst }>(claims, lowest) } & lowest == 0 {
            bit = lowest;
            break;
        }
    }
    if bit == 0 {
        return None;
    }
    // A run on this CPU stays on it (programs run with migration disabled), so the slot
    // claimed in this CPU's word is this CPU's value.
    let Some(value) = SCRATCH.get_ptr_mut((bit - 1).count_ones()) else {
        release(claims, bit);
        return None;
    };
    Some(Claim { value, claims, bit })
}

/// Clears `bit` of the claims word.
#[inline(always)]
fn release(claims: *mut u64, bit: u64) {
    // SAFETY: as in `claim`.
    unsafe { atomic_and::<u64, u64, { SeqCst }>(claims, !bit) };
}

impl Drop for Claim {
    #[inline(always)]
    fn drop(&mut self) {
        release(self.claims, self.bit);
    }
}

impl Claim {
    /// The claimed value. Only this run uses it until the claim drops; it holds plain
    /// integers and byte arrays, so any contents are valid, and a run writes each field
    /// before it reads it. The `bpf_loop` callbacks reach it through a context derived from
    /// this reference.
    #[inline(always)]
    pub fn value(&mut self) -> &mut Scratch {
        // SAFETY: the slot is claimed by this run (see above), and valid while it runs.
        unsafe { &mut *self.value }
    }
}

/// A path being built; its first `8 + PATH_KEY_MAX` bytes are an LPM trie key.
#[repr(C)]
pub struct PathBuf {
    /// LPM key: bits of (rule set + path) that count, `32 + 8 * min(len, PATH_KEY_MAX)`.
    pub prefix_len: u32,
    /// LPM key: the rule set, big-endian.
    pub rule_set_be: [u8; 4],
    /// The path bytes (`len` of them are valid when `len <= PATH_BUF`).
    pub buf: [u8; PATH_BUF + SLACK],
    /// The full path length (may exceed `PATH_BUF`).
    pub len: u32,
    /// Index of the last `/`, or -1.
    pub last_slash: i32,
    /// `PATH_*` flags.
    pub flags: u32,
    pub _pad: u32,
}
const _: () = assert!(PATH_KEY_MAX <= PATH_BUF);

impl PathBuf {
    /// The buffer's head as an LPM trie key (set it first with `path::set_key`).
    #[inline(always)]
    pub fn key(&self) -> &Key<TrieData> {
        // SAFETY: `PathBuf` is `repr(C)` and starts with the key's layout (`prefix_len`,
        // then the rule set and at least `PATH_KEY_MAX` path bytes), so its first
        // `size_of::<Key<TrieData>>()` bytes are a valid key, borrowed with `self`.
        unsafe { &*core::ptr::from_ref(self).cast::<Key<TrieData>>() }
    }
}
const _: () = assert!(core::mem::size_of::<Key<TrieData>>() <= core::mem::offset_of!(PathBuf, len));

/// What `event::emit` needs besides the paths (filled by the hook before it emits).
#[repr(C)]
pub struct Meta {
    pub cgroup_id: u64,
    pub rule_set: u32,
    pub mode: u32,
    pub hook: u16,
    pub kind: u8,
    pub op: u8,
    pub ops: u8,
    pub actions: u8,
    pub interactive: u8,
    /// 1: `exe` already holds the executable path (else `emit` builds it from the task).
    pub exe_ready: u8,
}

/// State of a path walk, kept in the scratch space so that the `bpf_loop` callbacks (each
/// verified once, whatever the path) can reach it.
#[repr(C)]
pub struct Walk {
    pub dentry: u64,
    pub mnt: u64,
    pub mnt_root: u64,
    pub root_dentry: u64,
    pub root_mnt: u64,
    /// Components written.
    pub n: u32,
    pub flags: u32,
    /// Where the path written so far starts in `work`.
    pub pos: u32,
    pub leaf_len: u32,
}

/// The per-CPU scratch value.
#[repr(C)]
pub struct Scratch {
    pub target: PathBuf,
    pub exe: PathBuf,
    /// The path is prepended here, ending at `WORK`; the slack keeps every copy in bounds.
    pub work: [u8; WORK + PATH_BUF],
    pub meta: Meta,
    pub walk: Walk,
    /// Room to assemble an event before it is known to be needed (unused today).
    pub _event: [u8; 0],
}
const _: () = assert!(core::mem::size_of::<Event>() <= 1024);
