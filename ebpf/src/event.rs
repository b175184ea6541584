//! Events: one ring-buffer record per decision with log, alert or block bits. A full ring
//! buffer is counted (`CNT_RINGBUF_DROPS`), never silent.

use core::intrinsics::{atomic_xadd, AtomicOrdering::SeqCst};

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid,
    bpf_ktime_get_boot_ns, generated as gen,
};
use d4c_common::{
    event::{
        EVENT_EXE_MAX, EVENT_PATH_MAX, FLAG_DENIED, FLAG_EXE_TRUNCATED, FLAG_PATH_TRUNCATED,
        FLAG_PATH_UNREACHABLE, FLAG_THROTTLED_SAMPLE,
    },
    offsets::{
        OFF_FILE_PATH, OFF_MM_EXE_FILE, OFF_SIGNAL_TTY, OFF_TASK_GROUP_LEADER, OFF_TASK_MM,
        OFF_TASK_REAL_PARENT, OFF_TASK_SIGNAL, OFF_TASK_START_BOOTTIME, OFF_TASK_TGID,
    },
    Budget, Event, ACTION_AUDIT, ACTION_BLOCK, CNT_DENIED, CNT_EVENTS, CNT_EXEC_RING_DROPS,
    CNT_RINGBUF_DROPS, ENTRY_RING_MASK, ENTRY_RING_SHIFT, EVENT_FILE, EXEC_RINGS,
    SET_EVENT_BURST_NS, SET_EVENT_INTERVAL_NS, SET_SAMPLE_EVERY,
};

use crate::{
    maps::{
        count, setting, BUDGETS, CONTAINERS, EVENTS, EXEC_EVENTS_1, EXEC_EVENTS_2, EXEC_EVENTS_3,
        EXEC_EVENTS_4,
    },
    offsets::{off, read, read_path, read_ptr},
    path,
    scratch::{Scratch, EXE, PATH_BUF},
};

/// Whether the current task's session has a controlling terminal (`signal->tty`).
#[inline(always)]
pub fn interactive() -> u8 {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    match read_ptr(task, OFF_TASK_SIGNAL).and_then(|s| read_ptr(s, OFF_SIGNAL_TTY)) {
        Ok(tty) if !tty.is_null() => 1,
        _ => 0,
    }
}

/// Builds the path of the current task's executable into `s.exe` (empty if it has none).
#[inline(always)]
pub fn current_exe(s: &mut Scratch) {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    if let Ok((mnt, dentry)) = exe_file_path(task) {
        path::build(s, EXE, mnt, dentry);
    } else {
        s.exe.len = 0;
        s.exe.last_slash = -1;
    }
}

/// `task->mm->exe_file->f_path` as (vfsmount, dentry).
#[inline(always)]
pub fn exe_file_path(task: *const u8) -> Result<(*const u8, *const u8), i64> {
    let mm = read_ptr(task, OFF_TASK_MM)?;
    if mm.is_null() {
        return Err(0);
    }
    let file = read_ptr(mm, OFF_MM_EXE_FILE)?;
    if file.is_null() {
        return Err(0);
    }
    let p = file.wrapping_add(off(OFF_FILE_PATH));
    read_path(p)
}

/// The end of every decision with an action bit: records `actions` of operation `op`
/// (the first of `ops`) in `s.meta`, emits the event, and counts a denial when `actions`
/// block. An audited block (`ACTION_AUDIT`) is allowed and reported as one, unless the
/// union blocks anyway (blocking wins). Returns 1 to deny, else 0.
#[inline(always)]
pub fn verdict(s: &mut Scratch, actions: u8, op: u8, ops: u8) -> u32 {
    let actions = if actions & ACTION_BLOCK != 0 {
        actions & !ACTION_AUDIT
    } else {
        actions
    };
    s.meta.actions = actions;
    s.meta.ops = ops;
    s.meta.op = op;
    emit(s);
    if actions & ACTION_BLOCK != 0 {
        count(CNT_DENIED);
        return 1;
    }
    0
}

/// Writes one event from `s.meta`, `s.target` and `s.exe` (built here unless
/// `meta.exe_ready`).
#[inline(never)]
pub fn emit(s: &mut Scratch) -> u32 {
    // One more lookup, on the event path only: the hooks carry just the rule set. The
    // entry names the container's cgroup and the ring its events go to.
    // SAFETY: the value is copied out at once.
    let (owner, flags) =
        unsafe { CONTAINERS.get(s.meta.cgroup_id) }.map_or((0, 0), |e| (e.owner, e.flags));
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // The container's budget, before anything else is spent on the event: a flood costs
    // no ring space; a held-back event is counted, and one in `SET_SAMPLE_EVERY` goes on
    // as a sample for the summary's paths.
    let mut sample = 0;
    match spend_budget(owner, now) {
        Budgeted::Admit => {}
        Budgeted::Sample => sample = FLAG_THROTTLED_SAMPLE,
        Budgeted::Hold => return 0,
    }
    if s.meta.exe_ready == 0 {
        current_exe(s);
    }
    // Each reader has its own ring: the daemon's (0), or a `d4c exec` run's.
    let ring = (flags & ENTRY_RING_MASK) >> ENTRY_RING_SHIFT;
    let reserved = match ring {
        1 => EXEC_EVENTS_1.reserve::<Event>(0),
        2 => EXEC_EVENTS_2.reserve::<Event>(0),
        3 => EXEC_EVENTS_3.reserve::<Event>(0),
        4 => EXEC_EVENTS_4.reserve::<Event>(0),
        _ => EVENTS.reserve::<Event>(0),
    };
    let Some(mut entry) = reserved else {
        count(if ring == 0 || ring as usize > EXEC_RINGS {
            CNT_RINGBUF_DROPS
        } else {
            CNT_EXEC_RING_DROPS
        });
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let m = &s.meta;
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let ppid = read_ptr(task, OFF_TASK_REAL_PARENT)
        .and_then(|p| read::<u32>(p, OFF_TASK_TGID))
        .unwrap_or(0);
    let start_ns = process_start(task as u64);
    let parent_start_ns = process_start(read_or_zero(task as u64, OFF_TASK_REAL_PARENT));
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let mut flags = sample;
    if m.actions & ACTION_BLOCK != 0 {
        flags |= FLAG_DENIED;
    }
    if s.target.len as usize > EVENT_PATH_MAX {
        flags |= FLAG_PATH_TRUNCATED;
    }
    if s.exe.len as usize > EVENT_EXE_MAX {
        flags |= FLAG_EXE_TRUNCATED;
    }
    if s.target.flags != 0 {
        flags |= FLAG_PATH_UNREACHABLE;
    }
    // SAFETY: `ev` points to a reserved, writable record of `size_of::<Event>()` bytes.
    unsafe {
        (*ev).kind = m.kind;
        (*ev).op = m.op;
        (*ev).actions = m.actions;
        (*ev).flags = flags;
        (*ev).rule_set = m.rule_set;
        (*ev).cgroup_id = m.cgroup_id;
        (*ev).owner_cgroup_id = owner;
        (*ev).boot_ns = now;
        (*ev).start_ns = start_ns;
        (*ev).parent_start_ns = parent_start_ns;
        (*ev).pid = pid_tgid as u32;
        (*ev).tgid = (pid_tgid >> 32) as u32;
        (*ev).ppid = ppid;
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).mode = m.mode;
        (*ev).hook = m.hook;
        (*ev).path_len = min_len(s.target.len, EVENT_PATH_MAX);
        (*ev).exe_len = min_len(s.exe.len, EVENT_EXE_MAX);
        (*ev).interactive = if m.kind == EVENT_FILE {
            interactive()
        } else {
            m.interactive
        };
        (*ev).ops = m.ops;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        gen::bpf_probe_read_kernel(
            (*ev).path.as_mut_ptr().cast(),
            EVENT_PATH_MAX as u32,
            s.target.buf.as_ptr().cast(),
        );
        gen::bpf_probe_read_kernel(
            (*ev).exe.as_mut_ptr().cast(),
            EVENT_EXE_MAX as u32,
            s.exe.buf.as_ptr().cast(),
        );
    }
    const _: () = assert!(EVENT_PATH_MAX <= PATH_BUF && EVENT_EXE_MAX <= PATH_BUF);
    entry.submit(0);
    count(CNT_EVENTS);
    1
}

/// The `u64` at `base + fields[idx]`, or 0 when it cannot be read (the helper zeroes its
/// destination on a failure). No branch: this runs on every program's event path, where
/// each branch would be one more path for the verifier to walk.
#[inline(always)]
fn read_or_zero(base: u64, idx: usize) -> u64 {
    let mut v: u64 = 0;
    // SAFETY: the helper checks the source address; `v` is a local of the size given.
    unsafe {
        gen::bpf_probe_read_kernel(
            (&raw mut v).cast(),
            8,
            base.wrapping_add(off(idx) as u64) as *const core::ffi::c_void,
        );
    }
    v
}

/// When the process of `task` started: its group leader's `start_boottime` (a thread's
/// own start is not the process's); 0 when unreadable (a 0 task reads nothing).
#[inline(always)]
fn process_start(task: u64) -> u64 {
    read_or_zero(
        read_or_zero(task, OFF_TASK_GROUP_LEADER),
        OFF_TASK_START_BOOTTIME,
    )
}

/// What the budget lets through.
enum Budgeted {
    Admit,
    /// Held back, written as a sample.
    Sample,
    Hold,
}

/// Spends one event of container `owner`'s budget at `now` (no budget: 0 interval, or no
/// owner). Updates race between CPUs and preempted runs; a race lets an event more or less
/// through, never changes a decision.
#[inline(always)]
fn spend_budget(owner: u64, now: u64) -> Budgeted {
    let interval = setting(SET_EVENT_INTERVAL_NS);
    if interval == 0 || owner == 0 {
        return Budgeted::Admit;
    }
    let b = match BUDGETS.get_ptr_mut(owner) {
        Some(b) => b,
        None => {
            let _ = BUDGETS.insert(owner, Budget::default(), 0);
            match BUDGETS.get_ptr_mut(owner) {
                Some(b) => b,
                // No room even after eviction: let it through.
                None => return Budgeted::Admit,
            }
        }
    };
    // SAFETY: a map value, valid while the program runs; plain integers.
    unsafe {
        let tat = (*b).tat;
        if now + setting(SET_EVENT_BURST_NS) >= tat {
            (*b).tat = if tat > now { tat } else { now } + interval;
            return Budgeted::Admit;
        }
        // The count before this one (read apart: the kernel's BPF target cannot return the
        // value an atomic add replaced; a race only moves which event is sampled).
        let n = core::ptr::read_volatile(&raw const (*b).throttled);
        atomic_xadd::<u64, u64, { SeqCst }>(&raw mut (*b).throttled, 1);
        if (*b).first == 0 {
            (*b).first = now;
        }
        (*b).last = now;
        let every = setting(SET_SAMPLE_EVERY);
        if every != 0 && n.is_multiple_of(every) {
            Budgeted::Sample
        } else {
            Budgeted::Hold
        }
    }
}

#[inline(always)]
fn min_len(len: u32, max: usize) -> u16 {
    if len as usize > max {
        max as u16
    } else {
        len as u16
    }
}
