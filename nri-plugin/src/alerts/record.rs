//! Decoding the kernel's ring-buffer [`Event`] into owned, typed fields.

use d4c_common::event::{
    FLAG_EXE_TRUNCATED, FLAG_PATH_TRUNCATED, FLAG_PATH_UNREACHABLE, FLAG_THROTTLED_SAMPLE,
};
use d4c_common::{Event, EVENT_FILE, HOOK_NAMES};
use d4c_policy::{Actions, FileOp, ProcessOp};

/// What the kernel decided, and about what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Every file operation the event is (a `chmod +x` is createExecutable and modifyFile).
    File(Vec<FileOp>),
    Process(ProcessOp),
}

/// One decoded kernel record.
// The bools are the kernel's independent flag bits, decoded one field each for the ECS
// document; a state machine would not fit them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub operation: Operation,
    pub actions: Actions,
    pub denied: bool,
    pub rule_set: u32,
    pub cgroup_id: u64,
    /// The registered container's cgroup (an ancestor of `cgroup_id` for a cgroup created
    /// inside the container); 0 when the kernel no longer had the entry.
    pub owner_cgroup_id: u64,
    pub boot_ns: u64,
    /// When the process started, in boot-clock nanoseconds (0: unknown).
    pub start_ns: u64,
    /// When its parent started (0: unknown).
    pub parent_start_ns: u64,
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub hook: &'static str,
    pub interactive: bool,
    pub comm: String,
    /// File events: the target path; process events: the executable (the file run, after
    /// symlinks).
    pub path: String,
    /// File events and fork: the acting process's executable; exec: the path the exec
    /// named (the name the process was started by, e.g. `/bin/sh` for dash).
    pub exe: String,
    pub truncated: bool,
    /// The path could not be built from the task's root (`FLAG_PATH_UNREACHABLE`).
    pub unreachable: bool,
    /// A sample of what the container's budget held back (`FLAG_THROTTLED_SAMPLE`): for
    /// its summary, not a document of its own.
    pub sample: bool,
}

fn text(bytes: &[u8], len: u16) -> String {
    let n = usize::from(len).min(bytes.len());
    let bytes = &bytes[..n];
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes a record; `None` for an unknown kind or operation (a newer kernel program).
#[must_use]
pub fn decode(e: &Event) -> Option<Record> {
    let operation = if e.kind == EVENT_FILE {
        let mut ops: Vec<FileOp> = FileOp::ALL
            .iter()
            .copied()
            .filter(|op| e.ops & op.bit() != 0)
            .collect();
        if ops.is_empty() {
            ops.push(*FileOp::ALL.get(usize::from(e.op))?);
        }
        Operation::File(ops)
    } else {
        Operation::Process(*ProcessOp::ALL.get(usize::from(e.op))?)
    };
    Some(Record {
        operation,
        actions: Actions(e.actions),
        denied: e.flags & d4c_common::event::FLAG_DENIED != 0,
        rule_set: e.rule_set,
        cgroup_id: e.cgroup_id,
        owner_cgroup_id: e.owner_cgroup_id,
        boot_ns: e.boot_ns,
        start_ns: e.start_ns,
        parent_start_ns: e.parent_start_ns,
        pid: e.tgid,
        ppid: e.ppid,
        uid: e.uid,
        gid: e.gid,
        mode: e.mode,
        hook: HOOK_NAMES
            .get(usize::from(e.hook))
            .copied()
            .unwrap_or("unknown"),
        interactive: e.interactive != 0,
        comm: text(&e.comm, u16::MAX),
        path: text(&e.path, e.path_len),
        exe: text(&e.exe, e.exe_len),
        truncated: e.flags & (FLAG_PATH_TRUNCATED | FLAG_EXE_TRUNCATED) != 0,
        unreachable: e.flags & FLAG_PATH_UNREACHABLE != 0,
        sample: e.flags & FLAG_THROTTLED_SAMPLE != 0,
    })
}
