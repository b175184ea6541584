//! Command-line interface: argument definitions and dispatch to the subcommands.

mod check;
mod container_args;
mod doctor;
mod eval;
mod exec;
mod explain;
mod nri;
mod policy_arg;
mod recordings;
mod replay;
mod status;
mod suggest;
mod test;
mod unload;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// d4c stops container drift: it blocks, in the kernel, processes in containers that create
/// or change executables or run code from memory, as YAML policies say.
#[derive(Parser)]
#[command(name = "d4c", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("D4C_BUILD"), ")"), about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate policy files or directories: exit 0 when valid (a summary on stdout, warnings
    /// on stderr), 1 when not.
    Check(check::Args),
    /// Decide one event for one container, as the policy says; prints one JSON object.
    Eval(eval::Args),
    /// Show which selectors are live for a container and the kernel entries it compiles to.
    Explain(explain::Args),
    /// Decide recorded operations (ECS NDJSON, d4c's or Elastic's agent's) again under
    /// candidate policies: what would be newly blocked, no longer blocked, alerted.
    Replay(replay::Args),
    /// Write the candidate policy again with the narrowest exceptions that make it quiet
    /// on recorded operations it would newly block.
    Suggest(suggest::Args),
    /// Run policy tests (`*.test.yaml`: cases of a container, an operation and the
    /// actions expected); exit 1 when one fails.
    Test(test::Args),
    /// Run a command as a managed container under a policy, enforced in the kernel
    /// (needs root; BPF LSM, or `fmod_ret` where `bpf` is not in `lsm=`); alerts as ECS
    /// NDJSON; exits with the command's status.
    Exec(exec::Args),
    /// Run the daemon: an NRI plugin for containerd/CRI-O that protects every pod a policy
    /// selects from its first instruction.
    Nri(nri::Args),
    /// Say what this node gives d4c and whether its blocking is guaranteed here, with the
    /// fix for each problem: exit 0 when guaranteed, 1 when not, 2 when it cannot tell.
    Doctor(doctor::Args),
    /// Show what is enforced: registered containers and their rule sets, kernel counters.
    Status(status::Args),
    /// End enforcement: detach the programs and remove everything d4c pinned.
    Unload(unload::Args),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Suggest(args) => suggest::run(&args),
        Command::Exec(args) => exec::run(&args),
        Command::Nri(args) => nri::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Unload(args) => unload::run(&args),
    }
}
