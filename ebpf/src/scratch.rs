//! The per-CPU scratch space: path buffers, the event's metadata and the path walk's state,
//! too large for the 512-byte BPF stack. One map value per CPU, reached only through
//! [`scratch`]; every program fills the fields it reads before reading them, within one run.

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

/// This CPU's scratch space. Not pinned: it holds nothing between calls.
#[map(name = "D4C_SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch value, or `None` if the map lookup fails (it cannot: the array has
/// its one entry from creation).
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: `get_ptr_mut` gives this CPU's slot of a per-CPU array, which the kernel keeps
    // valid (and never moves) for as long as any program runs. A d4c program runs on one
    // CPU without migrating and does not call another d4c program, so the value is used by
    // one program run at a time; within that run it is called once (by the hook), and the
    // `bpf_loop` callbacks reach the value through a context derived from that reference.
    // The value holds plain integers and byte arrays, so any contents are valid: a run
    // writes each field before it reads it. (A run preempted on a preemptible kernel can
    // find its buffers rewritten by another task's run on this CPU: a wrong path in that
    // event, never an access out of bounds, which the verifier rules out.)
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
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
