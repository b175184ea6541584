//! `d4c exec`: run one command as a managed container under a policy, enforced by the
//! kernel, with alerts as ECS NDJSON; exit with the command's status.
//!
//! The run loads the programs, or adopts those pinned (a daemon's, or another run's), under
//! the pin directory's loader lock; it reads its own event ring (so it neither takes the
//! daemon's alerts nor loses its own to another run), checks that its programs stay
//! attached (re-attaching them, or ending the command when that is impossible), and at the
//! end removes the programs only if it loaded them and nobody else uses them.

use super::container_args::ContainerArgs;
use d4c::alerts::{clock, ecs, record};
use d4c::bpf::{self, lock, Enforcer, EventReader, Released, Role};
use d4c::cgroup::{self, OwnedCgroup};
use d4c::container::ContainerInfo;
use d4c::daemon::kernel::KernelState;
use d4c_common::{ContainerEntry, EXEC_RINGS};
use d4c_policy::compile::{compile_rule_set, RuleSetSpec, Tables};
use d4c_policy::Policy;
use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    /// How long to wait for another d4c process that is loading or changing the programs
    /// (or for a free event ring), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = lock::DEFAULT_WAIT.as_secs())]
    wait: u64,
    /// Audit instead of block: every `block` of the policy allows the operation and raises
    /// the alert as one that would have been blocked (`cloud_defend.audit: true`).
    #[arg(long)]
    audit: bool,
    /// Refuse to run where blocking is not guaranteed on this node (`fmod_ret` on a kernel
    /// that preempts kernel code, BPF LSM before 6.1.54: `d4c doctor` says which).
    #[arg(long)]
    require_sound: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// How often the run checks that its programs are still attached.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Events handled before the run looks at the command again: a flood cannot keep it from
/// noticing that the command ended.
const DRAIN_BATCH: usize = 4096;

/// Where alerts go: stderr for `-`, else the file, appended to.
fn open_sink(alerts: &str) -> Result<Box<dyn Write>, String> {
    if alerts == "-" {
        return Ok(Box::new(std::io::stderr()));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(alerts)
        .map(|f| Box::new(f) as Box<dyn Write>)
        .map_err(|e| format!("cannot open alerts file {alerts}: {e}"))
}

/// Where blocking in `mode` is not guaranteed here: with `--require-sound`, why the run
/// is refused; without, a warning on stderr.
fn refuse_unsound(mode: bpf::AttachMode, require: bool) -> Option<String> {
    let why = d4c::node::unsound(mode)?;
    if require {
        return Some(unsound_refusal(&why));
    }
    eprintln!("d4c exec: warning: blocking is NOT guaranteed on this node: {why}");
    None
}

/// Why `--require-sound` refuses the run, as one line.
fn unsound_refusal(why: &str) -> String {
    format!("blocking is not guaranteed on this node and --require-sound is set: {why}")
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("d4c exec: {msg}");
    ExitCode::from(125)
}

/// Warnings of the library (a wait for a lock) on stderr, one line each.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
}

pub fn run(args: &Args) -> ExitCode {
    init_logs();
    let attrs = match args.container.to_container() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("d4c exec: {e}");
            return ExitCode::from(2);
        }
    };
    let mut policy = if args.policy.is_empty() {
        match d4c::config::embedded_default() {
            Ok(l) => l.policy,
            Err(e) => return fail(e),
        }
    } else {
        let Ok(policy) = super::policy_arg::load(&args.policy) else {
            return ExitCode::from(2);
        };
        policy
    };
    if args.audit {
        policy.audit = d4c_policy::Audit::everything();
    }
    let mut sink = match open_sink(&args.alerts) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let config = bpf::Config {
        pin_dir: args.bpffs.clone(),
        attach: args.enforcement,
        role: Role::Run,
        holder: lock::Holder::new("d4c exec"),
        lock_wait: Duration::from_secs(args.wait),
        ..bpf::Config::default()
    };
    if args.require_sound {
        // Refused before anything is loaded, where the mode this run ends in is known.
        if let Some(why) =
            d4c::node::planned_mode(args.enforcement, &args.bpffs).and_then(d4c::node::unsound)
        {
            return fail(unsound_refusal(&why));
        }
    }
    // Another build's pins (a daemon's) are refused here, never taken over.
    let mut enforcer = match Enforcer::load_or_adopt(&config) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let refused = refuse_unsound(enforcer.mode(), args.require_sound);
    let mut tables = Tables::default();
    let outcome = if let Some(why) = refused {
        Err(why)
    } else {
        match lock::ring(
            &config.pin_dir,
            EXEC_RINGS,
            &config.holder,
            config.lock_wait,
        ) {
            Ok((ring, ring_lock)) => {
                // Rule-set ids of `d4c exec` live above the daemon's, one per live run.
                let rule_set = d4c_common::exec_rule_set(ring, std::process::id());
                let spec = RuleSetSpec::for_container(&policy, &attrs);
                let outcome = match compile_rule_set(&policy, &spec, rule_set) {
                    Ok(t) => {
                        tables = t;
                        Run {
                            args,
                            policy: &policy,
                            tables: &tables,
                            rule_set,
                            ring,
                            enforcer: &mut enforcer,
                        }
                        .supervise(attrs, &mut sink)
                    }
                    Err(e) => Err(e.to_string()),
                };
                drop(ring_lock);
                outcome
            }
            Err(e) => Err(e.to_string()),
        }
    };
    if let Err(e) = enforcer.delete_tables(&tables) {
        eprintln!("d4c exec: warning: could not delete this run's rule entries: {e}");
    }
    match enforcer.release() {
        Ok(Released::Unloaded | Released::NodeOwned) => {}
        Ok(Released::InUse(users)) => {
            tracing::info!(users = ?users, "the programs stay loaded for the other users");
        }
        Err(e) => eprintln!("d4c exec: warning: could not release the programs: {e}"),
    }
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(e),
    }
}

/// One run: its policy, rule set, event ring and the enforcer it registers with.
struct Run<'a> {
    args: &'a Args,
    policy: &'a Policy,
    tables: &'a Tables,
    rule_set: u32,
    ring: u8,
    enforcer: &'a mut Enforcer,
}

impl Run<'_> {
    /// Takes the claimed ring over from whatever used it before (events of a run that
    /// died are dropped; cgroups of such a run send theirs to the daemon's ring from now
    /// on, still enforced) and returns its reader.
    fn claim_ring(&mut self) -> Result<EventReader, String> {
        let stale: Vec<(u64, ContainerEntry)> = self
            .enforcer
            .registered()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(_, e)| e.ring() == self.ring)
            .collect();
        for (cgroup, entry) in stale {
            self.enforcer
                .register(cgroup, entry.with_ring(0))
                .map_err(|e| e.to_string())?;
        }
        let mut reader = self
            .enforcer
            .exec_events(self.ring)
            .map_err(|e| e.to_string())?;
        while reader.try_next().is_some() {}
        Ok(reader)
    }

    /// Checks that the programs are attached with this enforcer's maps; repairs what is
    /// not. `Err`: enforcement is lost and cannot be put back.
    fn keep_enforcing(&mut self) -> Result<(), String> {
        let health = self.enforcer.check();
        if health.intact() {
            return Ok(());
        }
        eprintln!("d4c exec: error: enforcement is not intact: {health}; repairing");
        match self.enforcer.repair() {
            Ok(_) if self.enforcer.check().enforcing() => {
                eprintln!("d4c exec: repaired: every program is attached again");
                Ok(())
            }
            Ok(_) => Err(format!(
                "enforcement lost and not repaired: {}",
                self.enforcer.check()
            )),
            Err(e) => Err(format!("enforcement lost and not repaired: {e}")),
        }
    }

    /// Starts the command in `group` (moved in between fork and exec, so its first
    /// instruction is enforced). The outer `Err`: it could not be prepared.
    fn spawn_in(
        &self,
        group: &OwnedCgroup,
    ) -> Result<std::io::Result<std::process::Child>, String> {
        let procs = CString::new(group.procs_file().into_os_string().into_encoded_bytes())
            .map_err(|e| e.to_string())?;
        let command = &self.args.command;
        let mut cmd = std::process::Command::new(&command[0]);
        cmd.args(&command[1..]);
        // SAFETY: the closure runs between fork and exec; it only calls open/write/close on
        // a path prepared before the fork, and allocates nothing.
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
        Ok(cmd.spawn())
    }

    /// Says how many of the run's events its budget held back, and how many calls the
    /// kernel did not give to d4c since `skipped_before` was read, if any.
    fn say_held_back(&self, cgroup_id: u64, skipped_before: u64) {
        let skipped = bpf::skipped_runs(self.enforcer.pin_dir())
            .unwrap_or(0)
            .saturating_sub(skipped_before);
        if skipped > 0 {
            eprintln!("d4c exec: warning: the kernel skipped d4c's programs {skipped} times while the command ran: those calls were not decided (fmod_ret mode on a kernel that preempts kernel code; BPF LSM has no such gap: docs/troubleshooting.md)");
        }
        let held_back: u64 = self
            .enforcer
            .budgets()
            .unwrap_or_default()
            .iter()
            .filter(|(owner, _)| *owner == cgroup_id)
            .map(|(_, b)| b.throttled)
            .sum();
        if held_back > 0 {
            eprintln!("d4c exec: {held_back} events were not written: the container's event budget was spent (alerts.budgetRate of the daemon's d4c.yaml); blocking was not affected");
        }
    }

    /// Registers a fresh cgroup, runs the command in it, forwards its alerts until it
    /// exits, checking enforcement before and while it runs.
    fn supervise(
        &mut self,
        attrs: d4c_policy::Container,
        sink: &mut dyn Write,
    ) -> Result<u8, String> {
        let mut reader = self.claim_ring()?;
        // Calls the kernel did not give to d4c while the command runs (fmod_ret mode on a
        // preemptible kernel): said at the end, never silent.
        let skipped_before = bpf::skipped_runs(self.enforcer.pin_dir()).unwrap_or(0);
        self.enforcer
            .write_tables(self.tables)
            .map_err(|e| e.to_string())?;
        let root = cgroup::v2_root().map_err(|e| e.to_string())?;
        let group = OwnedCgroup::create(&root, &format!("d4c-exec-{}", std::process::id()))
            .map_err(|e| e.to_string())?;
        let cgroup_id = group.id().map_err(|e| e.to_string())?;
        KernelState::register(
            self.enforcer,
            cgroup_id,
            ContainerEntry::new(self.rule_set, cgroup_id).with_ring(self.ring),
        )
        .map_err(|e| e.to_string())?;
        self.keep_enforcing()?;
        let info = ContainerInfo {
            id: format!("d4c-exec-{}", std::process::id()),
            name: "d4c-exec".into(),
            attrs,
            cgroup_id,
            cgroup_dir: None,
        };

        let spawned = self.spawn_in(&group)?;
        let host = d4c::alerts::host::Host::read();
        let (policy, rule_set) = (self.policy, self.rule_set);
        let mut emit = |ev: &d4c_common::Event| {
            let Some(rec) = record::decode(ev) else {
                return;
            };
            // A sample of what the budget held back: counted below, not a document.
            if rec.sample {
                return;
            }
            let ctx = ecs::Context {
                timestamp: clock::wall_time(rec.boot_ns),
                container: (rec.cgroup_id == cgroup_id || rec.rule_set == rule_set)
                    .then_some(&info),
                policy: Some(policy),
                policy_revision: 1,
                host: &host,
                event_id: clock::event_id(rec.boot_ns),
            };
            let _ = writeln!(sink, "{}", ecs::document(&rec, &ctx));
            let _ = sink.flush();
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                // A refused exec of the command itself (`exec` rules) is alerted too.
                while let Some(ev) = reader.try_next() {
                    emit(&ev);
                }
                return Err(format!(
                    "cannot run {}: {e}",
                    self.args.command[0].to_string_lossy()
                ));
            }
        };
        let mut checked = Instant::now();
        let status = loop {
            let mut handled = 0;
            while handled < DRAIN_BATCH {
                let Some(ev) = reader.try_next() else { break };
                emit(&ev);
                handled += 1;
            }
            match child.try_wait() {
                // Every event of the command is in the ring before its syscall returned.
                Ok(Some(st)) => {
                    while let Some(ev) = reader.try_next() {
                        emit(&ev);
                    }
                    break st;
                }
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for the command: {e}")),
            }
            if checked.elapsed() >= CHECK_EVERY {
                if let Err(e) = self.keep_enforcing() {
                    // Fail closed: the command does not run on unprotected.
                    group.kill_all();
                    let _ = child.wait();
                    return Err(format!("{e}; the command was killed"));
                }
                checked = Instant::now();
            }
            if handled == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        self.say_held_back(cgroup_id, skipped_before);
        let _ = KernelState::unregister(self.enforcer, cgroup_id);
        drop(group);
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        Ok(u8::try_from(code).unwrap_or(1))
    }
}
