//! `d4c exec`: run one command as a managed container under a policy, enforced by the
//! kernel, with alerts as ECS NDJSON; exit with the command's status.

use super::container_args::ContainerArgs;
use d4c::alerts::{clock, ecs, record};
use d4c::bpf::{self, Enforcer, Origin};
use d4c::cgroup::{self, OwnedCgroup};
use d4c::container::ContainerInfo;
use d4c::daemon::kernel::KernelState;
use d4c_common::ContainerEntry;
use d4c_policy::compile::{compile_rule_set, RuleSetSpec, Tables};
use d4c_policy::Policy;
use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Policy file or directory; repeatable. Without it, the embedded default policy
    /// (alert on executable changes, log processes).
    #[arg(long, value_name = "PATH")]
    policy: Vec<PathBuf>,
    #[command(flatten)]
    container: ContainerArgs,
    /// Where alerts go, as ECS NDJSON: a file to append to, or `-` for stderr.
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    alerts: String,
    /// bpffs directory where the programs and maps are pinned.
    #[arg(long, value_name = "DIR", default_value = d4c::paths::PIN_DIR)]
    bpffs: PathBuf,
    /// How the hooks attach: `auto` (BPF LSM where the kernel's LSM list has `bpf`, else
    /// `fmod_ret` on `security_*` functions), `lsm` or `fmod-ret` (never another).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    enforcement: bpf::AttachRequest,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Rule-set ids of `d4c exec` live above the daemon's, one per process.
fn exec_rule_set() -> u32 {
    d4c_common::exec_rule_set(std::process::id())
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("d4c exec: {msg}");
    ExitCode::from(125)
}

pub fn run(args: &Args) -> ExitCode {
    let attrs = match args.container.to_container() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("d4c exec: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = if args.policy.is_empty() {
        match d4c_policy::load_str("embedded:default.yaml", d4c::config::EMBEDDED_DEFAULT) {
            Ok(l) => l.policy,
            Err(e) => return fail(e),
        }
    } else {
        let Ok(policy) = super::policy_arg::load(&args.policy) else {
            return ExitCode::from(2);
        };
        policy
    };
    let mode = match args
        .enforcement
        .resolve(std::path::Path::new(d4c::paths::LSM_LIST))
    {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    // Programs of another build or attach mode pinned there belong to a daemon (or another
    // `d4c exec`): taking them over and handing them back could race with that daemon's
    // own restart and leave the node without programs. Refuse instead.
    let pinned = bpf::pinned_builds(&args.bpffs);
    let ours = bpf::build_id(false, mode);
    if pinned.iter().any(|b| *b != ours) {
        return fail(format!(
            "{} holds programs of another d4c build or attach mode (a running daemon's?); use that d4c and mode, or --bpffs with another directory",
            args.bpffs.display()
        ));
    }
    let rule_set = exec_rule_set();
    let tables = match compile_rule_set(
        &policy,
        &RuleSetSpec::for_container(&policy, &attrs),
        rule_set,
    ) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let mut sink: Box<dyn Write> = if args.alerts == "-" {
        Box::new(std::io::stderr())
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&args.alerts)
        {
            Ok(f) => Box::new(f),
            Err(e) => return fail(format!("cannot open alerts file {}: {e}", args.alerts)),
        }
    };
    let config = bpf::Config {
        pin_dir: args.bpffs.clone(),
        attach: args.enforcement,
        ..bpf::Config::default()
    };
    let mut enforcer = match Enforcer::load_or_adopt(&config) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let loaded_here = enforcer.origin() == Origin::Loaded;
    let outcome = supervise(
        args,
        &policy,
        attrs,
        &tables,
        rule_set,
        &mut enforcer,
        &mut sink,
    );
    if let Err(e) = enforcer.delete_tables(&tables) {
        eprintln!("d4c exec: warning: could not delete this run's rule entries: {e}");
    }
    if loaded_here {
        // A daemon of another build whose programs this run took over gets them back.
        if let Err(e) = enforcer.unload_keeping_previous() {
            eprintln!("d4c exec: warning: could not unload the programs: {e}");
        }
    }
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(e),
    }
}

/// Registers a fresh cgroup, runs the command in it, forwards alerts until it exits.
fn supervise(
    args: &Args,
    policy: &Policy,
    attrs: d4c_policy::Container,
    tables: &Tables,
    rule_set: u32,
    enforcer: &mut Enforcer,
    sink: &mut dyn Write,
) -> Result<u8, String> {
    enforcer.write_tables(tables).map_err(|e| e.to_string())?;
    let root = cgroup::v2_root().map_err(|e| e.to_string())?;
    let group = OwnedCgroup::create(&root, &format!("d4c-exec-{}", std::process::id()))
        .map_err(|e| e.to_string())?;
    let cgroup_id = group.id().map_err(|e| e.to_string())?;
    KernelState::register(
        enforcer,
        cgroup_id,
        ContainerEntry::new(rule_set, cgroup_id),
    )
    .map_err(|e| e.to_string())?;
    let info = ContainerInfo {
        id: format!("d4c-exec-{}", std::process::id()),
        name: "d4c-exec".into(),
        attrs,
        cgroup_id,
        cgroup_dir: None,
    };
    let reader = enforcer.take_events();

    let procs = CString::new(group.procs_file().into_os_string().into_encoded_bytes())
        .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    // SAFETY: the closure runs between fork and exec; it only calls open/write/close on a
    // path prepared before the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", args.command[0].to_string_lossy()))?;
    let host = clock::host_name();
    let mut emit = |ev: &d4c_common::Event| {
        let Some(rec) = record::decode(ev) else {
            return;
        };
        let ctx = ecs::Context {
            timestamp: clock::wall_time(rec.boot_ns),
            container: (rec.cgroup_id == cgroup_id || rec.rule_set == rule_set).then_some(&info),
            policy: Some(policy),
            policy_revision: 1,
            host_name: &host,
            event_id: clock::event_id(rec.boot_ns),
        };
        let _ = writeln!(sink, "{}", ecs::document(&rec, &ctx));
        let _ = sink.flush();
    };
    let status = match reader {
        Some(mut reader) => loop {
            while let Some(ev) = reader.try_next() {
                emit(&ev);
            }
            match child.try_wait() {
                Ok(Some(st)) => {
                    std::thread::sleep(Duration::from_millis(20));
                    while let Some(ev) = reader.try_next() {
                        emit(&ev);
                    }
                    break st;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting for the command: {e}")),
            }
        },
        None => child
            .wait()
            .map_err(|e| format!("waiting for the command: {e}"))?,
    };
    let _ = KernelState::unregister(enforcer, cgroup_id);
    drop(group);
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(u8::try_from(code).unwrap_or(1))
}
