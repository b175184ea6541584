//! `d4c eval`: what the policy decides for one event in one container, as JSON.
//!
//! The answer comes from the reference evaluator; the same event is also looked up in the
//! compiled kernel entries, and a disagreement is reported as an internal error.

use super::container_args::ContainerArgs;
use d4c_policy::compile::{compile_rule_set, RuleSetSpec};
use d4c_policy::emulate::KernelMaps;
use d4c_policy::{evaluate, Event, FileOp, ProcessOp};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("event").required(true).args(["file_op", "process_op"])))]
pub struct Args {
    /// Policy file or directory; repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    policy: Vec<PathBuf>,
    #[command(flatten)]
    container: ContainerArgs,
    /// File operation: createExecutable, modifyExecutable, execMemFd, createFile, modifyFile, deleteFile.
    #[arg(
        long,
        value_name = "OP",
        requires = "path",
        conflicts_with = "process_op"
    )]
    file_op: Option<String>,
    /// Target file path of the file operation, as the container sees it.
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Process operation: fork or exec.
    #[arg(long, value_name = "OP", requires = "executable")]
    process_op: Option<String>,
    /// The file the process runs (after symlinks), as alerts show it in
    /// `process.executable`; also the path it was started by unless `--started-as` says
    /// otherwise.
    #[arg(long, value_name = "PATH")]
    executable: Option<String>,
    /// The name of that file; defaults to the executable's base name, cut to 15 bytes.
    #[arg(long, value_name = "NAME")]
    process_name: Option<String>,
    /// The name the process was started by (alerts' `cloud_defend.started_as`): for exec,
    /// the path the exec named (`/bin/sh` for a shell that is really dash); for fork, the
    /// process's comm. The decision is the union of both identities.
    #[arg(long, value_name = "PATH|NAME")]
    started_as: Option<String>,
    /// The session leader has a controlling terminal.
    #[arg(long)]
    interactive: bool,
    /// Decide as `d4c exec --audit` (or an audited policy file or namespace) would: a
    /// `block` becomes `audit` (allowed, alerted as a would-be block).
    #[arg(long)]
    audit: bool,
}

#[derive(Serialize)]
struct Output {
    actions: Vec<&'static str>,
    selectors: Vec<String>,
    responses: Vec<usize>,
}

/// Builds the event from the flags, or says which flag is wrong.
fn event(args: &Args) -> Result<Event, String> {
    if let Some(op) = &args.file_op {
        let op = FileOp::from_name(op).ok_or_else(|| {
            let all: Vec<&str> = FileOp::ALL.iter().map(|o| o.name()).collect();
            format!("--file-op `{op}`: expected one of {}", all.join(", "))
        })?;
        let path = args.path.clone().unwrap_or_default();
        return Ok(Event::File { op, path });
    }
    let op = args.process_op.as_deref().unwrap_or_default();
    let op = ProcessOp::from_name(op)
        .ok_or_else(|| format!("--process-op `{op}`: expected fork or exec"))?;
    let executable = args.executable.clone().unwrap_or_default();
    let name = match &args.process_name {
        Some(n) if n.len() > 15 => {
            return Err(format!(
                "--process-name `{n}`: process names are at most 15 bytes"
            ))
        }
        Some(n) => n.clone(),
        None => default_name(&executable),
    };
    Ok(Event::Process {
        op,
        executable,
        name,
        started_as: args.started_as.clone(),
        interactive: args.interactive,
    })
}

/// The name the kernel gives a program: its base name, at most 15 bytes.
fn default_name(executable: &str) -> String {
    let base = executable.rsplit('/').next().unwrap_or(executable);
    d4c_policy::event::process_name(base).to_owned()
}

pub fn run(args: &Args) -> ExitCode {
    let (container, event) = match (args.container.to_container(), event(args)) {
        (Ok(c), Ok(e)) => (c, e),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("d4c eval: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(mut policy) = super::policy_arg::load(&args.policy) else {
        return ExitCode::from(2);
    };
    if args.audit {
        policy.audit = d4c_policy::Audit::everything();
    }
    let decision = evaluate(&policy, &container, &event);

    let spec = RuleSetSpec::for_container(&policy, &container);
    match compile_rule_set(&policy, &spec, 1) {
        Ok(tables) => {
            let kernel = KernelMaps::from_tables(&tables).decide(1, &event);
            if kernel != decision.actions {
                eprintln!(
                    "d4c eval: internal error: the compiled kernel tables decide {:?} but the policy says {:?}; please report this with the policy and flags",
                    kernel.names(),
                    decision.actions.names()
                );
                return ExitCode::from(3);
            }
        }
        Err(e) => eprintln!(
            "d4c eval: warning: this container's rule set cannot be compiled for the kernel: {e}"
        ),
    }
    let out = Output {
        actions: decision.actions.names(),
        selectors: decision
            .selectors
            .iter()
            .map(|&i| policy.selector_label(i))
            .collect(),
        responses: decision.responses,
    };
    println!(
        "{}",
        serde_json::to_string(&out).expect("output serializes")
    );
    ExitCode::SUCCESS
}
