//! `d4c status`: what is enforced. From the running daemon (its status socket): containers
//! with pod, image and rule set, the policy revision, counters. Without a daemon: the
//! registered cgroups and counters, read from the pinned maps.

use d4c::bpf::{self, Enforcer};
use d4c::daemon::enforcement::EnforcementStatus;
use d4c::paths;
use d4c_common::{
    CNT_DENIED, CNT_EVENTS, CNT_EXEC_RING_DROPS, CNT_HOOK_ERRORS, CNT_MANAGED, CNT_MAP_FULL,
    CNT_PATH_ERRORS, CNT_RINGBUF_DROPS,
};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// bpffs directory where the programs and maps are pinned (read when no daemon
    /// answers; a running daemon reports its own).
    #[arg(long, value_name = "DIR", default_value = paths::PIN_DIR)]
    bpffs: PathBuf,
    /// The daemon's status socket.
    #[arg(long, value_name = "PATH", default_value = paths::STATUS_SOCKET)]
    socket: PathBuf,
}

/// The programs pinned (attached) under the bpffs directory, by hook name.
fn attached(bpffs: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(bpf::links_dir(bpffs))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// How the pinned programs attach (`lsm`, `fmod_ret`), as status shows it.
fn mode_name(bpffs: &std::path::Path) -> Option<&'static str> {
    bpf::pinned_mode(bpffs).map(bpf::AttachMode::name)
}

/// Whether the pinned programs' blocking is guaranteed on this node (`d4c doctor`).
fn soundness(bpffs: &std::path::Path) -> Option<d4c::node::Soundness> {
    bpf::pinned_mode(bpffs).map(d4c::node::soundness)
}

/// A line about a previous build still attached during an upgrade, if one is.
fn handover_line(bpffs: &std::path::Path) -> Option<String> {
    let dirs = bpf::retiring_dirs(bpffs);
    (!dirs.is_empty()).then(|| {
        format!(
            "upgrade under way: a previous build's programs still enforce alongside ({}); they are detached after the runtime's next Synchronize",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The previous builds' pin directories, for the JSON output.
fn retiring_json(bpffs: &std::path::Path) -> serde_json::Value {
    json!(bpf::retiring_dirs(bpffs))
}

/// The daemon's enforcement check, as one line.
fn enforcement_line(e: &EnforcementStatus) -> String {
    let state = if !e.checked {
        "not checked yet".to_owned()
    } else if e.intact {
        format!(
            "intact (every program attached with the daemon's maps, checked every {} s)",
            d4c::daemon::enforcement::CHECK_EVERY.as_secs()
        )
    } else {
        format!(
            "LOST, not repaired yet: {}",
            e.unrepaired.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    let history = match &e.last_loss {
        None => String::new(),
        Some(l) => format!(
            "; {} program(s) lost since the daemon started, last at {} ({}): {}",
            e.lost_total,
            l.at,
            if l.repaired {
                "re-attached"
            } else {
                "not repaired"
            },
            l.what
        ),
    };
    format!("enforcement: {state}{history}")
}

/// What is audited, and each audited policy file's would-be blocks since the daemon
/// started with the last one: the signal that it can be promoted to blocking.
fn audit_lines(a: &d4c::daemon::owner::AuditStatus) -> Vec<String> {
    if a.policies.is_empty() && a.namespaces.is_empty() {
        return Vec::new();
    }
    let mut out = vec![format!(
        "audit (blocks allowed and alerted): policy files [{}], namespaces [{}]",
        a.policies.join(", "),
        a.namespaces.join(", ")
    )];
    for p in &a.would_block {
        let last = p.last.as_ref().map_or(String::new(), |w| {
            format!(
                "; last at {}: {} {} by {} in pod {}/{}",
                w.at,
                w.operation,
                w.path,
                w.process,
                w.namespace.as_deref().unwrap_or("-"),
                w.pod.as_deref().unwrap_or("-")
            )
        });
        out.push(format!(
            "  {}: {} would-be block(s) since the daemon started{last}",
            p.policy, p.would_block
        ));
    }
    out
}

/// Who uses the pins besides the daemon (`d4c exec` runs), as one line.
fn users_line(bpffs: &std::path::Path) -> Option<String> {
    let users = bpf::lock::user_records(bpffs);
    (!users.is_empty()).then(|| format!("using the pinned programs: {}", users.join("; ")))
}

fn from_daemon(args: &Args) -> Option<ExitCode> {
    let snap = d4c::daemon::status_server::query(&args.socket).ok()?;
    // The daemon's own pin directory (its config may name another than the default).
    let bpffs = snap.bpffs.as_deref().unwrap_or(&args.bpffs);
    let programs = attached(bpffs);
    if args.format == Format::Json {
        let mut v = serde_json::to_value(&snap).unwrap_or_default();
        v["programs_attached"] = json!(programs);
        v["attach_mode"] = json!(mode_name(bpffs));
        v["previous_builds_attached"] = retiring_json(bpffs);
        v["users"] = json!(bpf::lock::user_records(bpffs));
        v["blocking"] = json!(soundness(bpffs));
        println!("{v}");
        return Some(ExitCode::SUCCESS);
    }
    let protected = snap
        .containers
        .iter()
        .filter(|c| c.rule_set.is_some())
        .count();
    println!(
        "d4c daemon: policy revision {}, {} rule sets, {} containers ({} protected)",
        snap.policy_revision,
        snap.rule_sets,
        snap.containers.len(),
        protected
    );
    if !snap.policy_valid {
        println!("POLICY INVALID: the policy directory's files are not the policy in force (a change was rejected, or d4c started on its last good copy); the daemon's log has the errors");
    }
    for c in &snap.containers {
        let rs = c
            .rule_set
            .map_or("none (no policy applies)".to_owned(), |r| r.to_string());
        println!(
            "  {:<14} {:<20} ns {:<12} pod {:<24} image {:<36} rule set {rs}",
            c.id.chars().take(12).collect::<String>(),
            c.name,
            c.namespace.as_deref().unwrap_or("-"),
            c.pod.as_deref().unwrap_or("-"),
            c.image.as_deref().unwrap_or("-"),
        );
    }
    println!(
        "programs attached{}: {}",
        mode_name(bpffs).map_or(String::new(), |m| format!(" ({m})")),
        if programs.is_empty() {
            snap.bpffs.as_ref().map_or_else(
                || "none (the daemon runs with enforcement: none)".to_owned(),
                |d| format!("none pinned under {}", d.display()),
            )
        } else {
            programs.join(", ")
        }
    );
    if let Some(line) = handover_line(bpffs) {
        println!("{line}");
    }
    if snap.bpffs.is_some() {
        println!("{}", enforcement_line(&snap.enforcement));
    }
    if let Some(s) = soundness(bpffs) {
        println!("blocking: {}", s.line());
    }
    for line in audit_lines(&snap.audit) {
        println!("{line}");
    }
    if let Some(line) = users_line(bpffs) {
        println!("{line}");
    }
    if let Some(k) = &snap.kernel_counters {
        println!(
            "kernel counters: {} managed hook calls, {} denied, {} events, {} ring-buffer drops",
            k[CNT_MANAGED as usize],
            k[CNT_DENIED as usize],
            k[CNT_EVENTS as usize],
            k[CNT_RINGBUF_DROPS as usize]
        );
    }
    if let Some(n) = snap.skipped_runs.filter(|&n| n > 0) {
        println!("kernel skipped d4c's programs {n} times: those hook calls were NOT decided (see docs/troubleshooting.md)");
    }
    Some(ExitCode::SUCCESS)
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// The cgroup directory (below the v2 root) whose id is `id`, if it still exists.
fn cgroup_path(root: &std::path::Path, id: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            return Some(format!("/{}", dir.strip_prefix(root).ok()?.display()));
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            stack.extend(
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    None
}

/// The pins' own check (no daemon runs), as one line.
fn health_line(health: &Result<bpf::Health, bpf::BpfError>) -> String {
    match health {
        Ok(h) if h.enforcing() => {
            "enforcement: intact (every pinned link runs a program with the pinned maps)".into()
        }
        Ok(h) => format!("enforcement: NOT INTACT: {h}"),
        Err(e) => format!("enforcement: cannot be checked: {e}"),
    }
}

pub fn run(args: &Args) -> ExitCode {
    if let Some(code) = from_daemon(args) {
        return code;
    }
    if !args.bpffs.exists() {
        eprintln!(
            "d4c status: d4c is not loaded (nothing pinned at {})",
            args.bpffs.display()
        );
        return ExitCode::FAILURE;
    }
    let mut enforcer = match Enforcer::adopt(&args.bpffs) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("d4c status: cannot open the pinned maps: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Whether each pinned link runs a program that uses the pinned maps.
    let health = enforcer.track_pins().map(|()| enforcer.check());
    let (registered, counters) = match (enforcer.registered(), enforcer.counters()) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("d4c status: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = d4c::cgroup::v2_root().ok();
    let containers: Vec<_> = registered
        .iter()
        .map(|(id, e)| json!({"cgroup_id": id, "cgroup": root.as_ref().and_then(|r| cgroup_path(r, *id)), "rule_set": e.rule_set}))
        .collect();
    let counter = |i: u32| counters[i as usize];
    let skipped = bpf::skipped_runs(&args.bpffs).ok();
    let doc = json!({
        "pinned_at": args.bpffs,
        "programs_attached": attached(&args.bpffs),
        "attach_mode": mode_name(&args.bpffs),
        "previous_builds_attached": retiring_json(&args.bpffs),
        "enforcement": match &health {
            Ok(h) => json!({"intact": h.enforcing(), "findings": h.findings.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            Err(e) => json!({"error": e.to_string()}),
        },
        "users": bpf::lock::user_records(&args.bpffs),
        "blocking": soundness(&args.bpffs),
        "containers": containers,
        "counters": {
            "managed_hook_calls": counter(CNT_MANAGED),
            "denied": counter(CNT_DENIED),
            "events": counter(CNT_EVENTS),
            "ringbuf_drops": counter(CNT_RINGBUF_DROPS),
            "path_errors": counter(CNT_PATH_ERRORS),
            "hook_errors": counter(CNT_HOOK_ERRORS),
            "map_full": counter(CNT_MAP_FULL),
            "exec_ring_drops": counter(CNT_EXEC_RING_DROPS),
            "skipped_runs": skipped,
        },
    });
    match args.format {
        Format::Json => println!("{doc}"),
        Format::Text => {
            println!(
                "d4c is loaded (pinned at {}); no daemon answers at {}",
                args.bpffs.display(),
                args.socket.display()
            );
            println!(
                "programs attached{}: {}",
                mode_name(&args.bpffs).map_or(String::new(), |m| format!(" ({m})")),
                attached(&args.bpffs).join(", ")
            );
            if let Some(line) = handover_line(&args.bpffs) {
                println!("{line}");
            }
            println!("{}", health_line(&health));
            if let Some(s) = soundness(&args.bpffs) {
                println!("blocking: {}", s.line());
            }
            if let Some(line) = users_line(&args.bpffs) {
                println!("{line}");
            }
            println!("registered cgroups: {}", registered.len());
            for c in &containers {
                println!(
                    "  cgroup {:<10} rule set {:<10} {}",
                    c["cgroup_id"],
                    c["rule_set"],
                    c["cgroup"].as_str().unwrap_or("(gone)")
                );
            }
            println!(
                "counters: {} managed hook calls, {} denied, {} events, {} ring-buffer drops, {} path errors, {} hook errors, {} cgroups refused for a full map",
                counter(CNT_MANAGED), counter(CNT_DENIED), counter(CNT_EVENTS), counter(CNT_RINGBUF_DROPS), counter(CNT_PATH_ERRORS), counter(CNT_HOOK_ERRORS), counter(CNT_MAP_FULL)
            );
            if let Some(n) = skipped.filter(|&n| n > 0) {
                println!("the kernel skipped d4c's programs {n} times: those hook calls were NOT decided (see docs/troubleshooting.md)");
            }
        }
    }
    ExitCode::SUCCESS
}
