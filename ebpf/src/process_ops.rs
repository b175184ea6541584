//! Process hooks: exec (`bprm_creds_for_exec`, once per execve, blockable; also the
//! execMemFd file operation) and fork (`task_alloc`).
//!
//! A process decision needs the executable's class (LPM lookup of its path in
//! `D4C_EXE_RULES`), the name's class (`D4C_COMM_RULES`, a miss is 0) and whether the
//! session has a controlling terminal; `D4C_PROC_DECISIONS` holds the finished decision.
//! A process is decided twice and the actions ORed (`d4c_policy::Event::identities`): as
//! the file it runs (its path after symlinks, that file's name) and as the name it was
//! started by (exec: the path the exec named, and its base name; fork: its `comm`), so a
//! name the process can choose only ever adds actions.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_task, generated as gen},
    programs::LsmContext,
};
use d4c_common::{
    offsets::{
        OFF_BPRM_FILE, OFF_BPRM_FILENAME, OFF_DENTRY_INODE, OFF_DENTRY_NAME_PTR, OFF_FILE_INODE,
        OFF_FILE_PATH, OFF_INODE_MODE,
    },
    CommKey, ProcKey, CNT_PATH_ERRORS, COMM_LEN, EVENT_PROCESS, HOOK_BPRM_CREDS_FOR_EXEC,
    HOOK_TASK_ALLOC, OP_EXEC, OP_FORK, REST_EMPTY, RULESET_PROC_SHIFT,
};

use crate::{
    container::Cgroup,
    event::{self, exe_file_path, interactive},
    file_ops,
    maps::{count, may_act, COMM_RULES, EXE_RULES, PROC_DECISIONS},
    offsets::{off, read, read_path, read_ptr},
    path,
    scratch::{claim, PathBuf, Scratch, TARGET},
};

const CLONE_THREAD: u64 = 0x0001_0000;

type R = Result<bool, i64>;

/// The executable class of the path in `pb` under `rule_set` (`unreachable`: a path the
/// walk could not build from the task's root, which gets the root entry's empty-rest
/// class, the compiler's most restrictive of every executable class).
#[inline(always)]
fn exe_class(pb: &mut PathBuf, rule_set: u32, unreachable: bool) -> u32 {
    if unreachable {
        pb.prefix_len = 32;
        pb.rule_set_be = rule_set.to_be_bytes();
    } else {
        path::set_key(pb, rule_set);
    }
    match EXE_RULES.get(pb.key()) {
        Some(rule) => {
            let class = if unreachable {
                REST_EMPTY
            } else {
                path::rest_class(pb, rule.prefix_len)
            };
            match rule.class.get(class) {
                Some(c) => *c,
                None => 0,
            }
        }
        None => 0,
    }
}

/// The actions of operation `op` for a process of classes (`exe_class`, name `comm`).
#[inline(always)]
fn actions_of(s: &Scratch, exe_class: u32, comm: &CommKey, op: u32) -> u8 {
    // SAFETY: the value is copied out at once.
    let name_class = unsafe { COMM_RULES.get(comm) }.map_or(0, |c| c.class);
    let pkey = ProcKey {
        rule_set: s.meta.rule_set,
        exe_class,
        name_class,
    };
    // SAFETY: as above.
    let Some(decision) = (unsafe { PROC_DECISIONS.get(pkey) }) else {
        return 0;
    };
    decision.actions[s.meta.interactive as usize & 1][op as usize & 1]
}

/// Looks up the process decision for the file the process runs (its path in `s.target`,
/// its name `name`) and for the name it was started by (`started`: the name, and whether
/// `s.exe` holds a path to take as the executable too), ORs them, and emits an event when
/// there is any bit. Returns 1 to deny.
#[inline(never)]
fn decide(s: &mut Scratch, name: &CommKey, started: &CommKey, started_path: bool, op: u32) -> u32 {
    let rule_set = s.meta.rule_set;
    let unreachable = s.target.flags != 0;
    if unreachable {
        count(CNT_PATH_ERRORS);
    }
    let file_class = exe_class(&mut s.target, rule_set, unreachable);
    let started_class = if started_path {
        exe_class(&mut s.exe, rule_set, false)
    } else {
        file_class
    };
    let mut actions = actions_of(s, file_class, name, op);
    if started_class != file_class || started.comm != name.comm {
        actions |= actions_of(s, started_class, started, op);
    }
    if actions == 0 {
        return 0;
    }
    s.meta.kind = EVENT_PROCESS;
    event::verdict(s, actions, op as u8, 1 << op)
}

#[inline(always)]
fn meta(s: &mut Scratch, cg: Cgroup, hook: u16, mode: u32) {
    s.meta.cgroup_id = cg.id;
    s.meta.rule_set = cg.rule_set;
    s.meta.hook = hook;
    s.meta.mode = mode;
    s.meta.interactive = interactive();
}

/// Whether the exec of `bprm_creds_for_exec(struct linux_binprm *bprm)` is a container
/// runtime re-executing itself: a memfd (a copy of itself), or the very file the task runs
/// already (the same inode, as through a bind mount of `/proc/self/exe`).
#[inline(always)]
pub fn runtime_reexec(ctx: &LsmContext) -> Result<bool, i64> {
    let bprm: *const u8 = ctx.arg(0);
    let file = read_ptr(bprm, OFF_BPRM_FILE)?;
    let (_, dentry) = read_path(file.wrapping_add(off(OFF_FILE_PATH)))?;
    if file_ops::is_memfd(dentry)? {
        return Ok(true);
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let (_, own) = exe_file_path(task)?;
    Ok(read_ptr(dentry, OFF_DENTRY_INODE)? == read_ptr(own, OFF_DENTRY_INODE)?)
}

/// The process name of a task running the file whose dentry is `dentry`: the file's own
/// name (after symlinks, whatever name the exec used: a symlink, `/proc/self/fd/N`),
/// at most 15 bytes.
#[inline(always)]
fn file_name(rule_set: u32, dentry: *const u8) -> Result<CommKey, i64> {
    Ok(name_at(rule_set, read::<u64>(dentry, OFF_DENTRY_NAME_PTR)?))
}

/// `bprm_creds_for_exec(struct linux_binprm *bprm)`: execMemFd when the file is a memfd,
/// then the exec decision, for the file actually executed (its path from the task's root,
/// `/memfd:NAME` for a memfd, and its own name) and for the path the exec named (and its
/// base name). The event's `exe` is that named path.
pub fn bprm_creds_for_exec(ctx: &LsmContext, cg: Cgroup) -> R {
    let bprm: *const u8 = ctx.arg(0);
    let file = read_ptr(bprm, OFF_BPRM_FILE)?;
    let filename = read::<u64>(bprm, OFF_BPRM_FILENAME)?;
    let p = file.wrapping_add(off(OFF_FILE_PATH));
    let (mnt, dentry) = read_path(p)?;
    let inode = read_ptr(file, OFF_FILE_INODE)?;
    let mode = u32::from(read::<u16>(inode, OFF_INODE_MODE)?);
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    let comm = file_name(cg.rule_set, dentry)?;
    let mut deny = 0;
    if file_ops::is_memfd(dentry)? {
        path::memfd_path(s, dentry)?;
        if file_ops::exec_memfd(s, cg, HOOK_BPRM_CREDS_FOR_EXEC, mode) {
            deny = 1;
        }
        // `exec_memfd` left s.target as the memfd's path; the exe class uses it too.
    } else if may_act(cg.rule_set, 1 << (RULESET_PROC_SHIFT + OP_EXEC as u32)) {
        path::build(s, TARGET, mnt, dentry);
    } else {
        return Ok(deny != 0);
    }
    meta(s, cg, HOOK_BPRM_CREDS_FOR_EXEC, mode);
    let base = path::exec_filename(s, filename);
    let started = name_at(cg.rule_set, base);
    s.meta.exe_ready = 1;
    let absolute = s.exe.len > 0 && s.exe.buf[0] == b'/';
    deny |= decide(s, &comm, &started, absolute, OP_EXEC as u32);
    Ok(deny != 0)
}

/// `task_alloc(struct task_struct *task, unsigned long clone_flags)`: a new process (not
/// a thread) forked by the current task; executable = `current->mm->exe_file`, names =
/// that file's name and the task's `comm`.
pub fn task_alloc(ctx: &LsmContext, cg: Cgroup) -> R {
    let clone_flags: u64 = ctx.arg(1);
    if clone_flags & CLONE_THREAD != 0 {
        return Ok(false);
    }
    if !may_act(cg.rule_set, 1 << (RULESET_PROC_SHIFT + OP_FORK as u32)) {
        return Ok(false);
    }
    // A failure is the hook's error (denied where the rule set can block).
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let (mnt, dentry) = exe_file_path(task)?;
    let mut claim = claim().ok_or(0)?;
    let s = claim.value();
    if file_ops::is_memfd(dentry)? {
        path::memfd_path(s, dentry)?;
    } else {
        path::build(s, TARGET, mnt, dentry);
    }
    let comm = file_name(cg.rule_set, dentry)?;
    // The task's `comm`: the name it was started by, or one it set (`prctl`), which can
    // only add actions.
    let started = CommKey {
        rule_set: cg.rule_set,
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
    };
    meta(s, cg, HOOK_TASK_ALLOC, 0);
    // The event's `exe` is the same executable.
    s.exe.buf[..256].copy_from_slice(&s.target.buf[..256]);
    s.exe.len = s.target.len;
    s.meta.exe_ready = 1;
    Ok(decide(s, &comm, &started, false, OP_FORK as u32) != 0)
}

/// The process-name key of the kernel string at `name` (at most 15 bytes), as the kernel
/// makes a `comm` of it.
#[inline(always)]
fn name_at(rule_set: u32, name: u64) -> CommKey {
    let mut comm = CommKey {
        rule_set,
        comm: [0; COMM_LEN],
    };
    // SAFETY: the helper checks the source and writes at most COMM_LEN bytes, NUL included.
    unsafe {
        gen::bpf_probe_read_kernel_str(
            comm.comm.as_mut_ptr().cast(),
            COMM_LEN as u32,
            name as *const _,
        )
    };
    comm.comm[COMM_LEN - 1] = 0;
    comm
}
