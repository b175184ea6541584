//! `d4c replay`: recorded operations decided again under candidate policies
//! (`d4c_policy::replay`): what would be newly blocked, no longer blocked, newly alerted,
//! no longer alerted, grouped by selector and namespace.

use d4c_policy::replay::{self, Replay};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The candidate policy: files or directories; repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    policy: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Exit 1 when any recorded operation would be decided otherwise.
    #[arg(long)]
    fail_on_change: bool,
    /// ECS NDJSON recordings (d4c's or Elastic's agent's): files, `.gz` files, or `-` for
    /// standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

pub fn run(args: &Args) -> ExitCode {
    let Ok(policy) = super::policy_arg::load(&args.policy) else {
        return ExitCode::from(2);
    };
    let mut replay = Replay::new(&policy);
    let mut current = String::new();
    if let Err(e) = super::recordings::each_line(&args.files, |file, n, line| {
        if current != file {
            file.clone_into(&mut current);
            replay.source(file);
        }
        replay.line(n, line);
    }) {
        eprintln!("d4c replay: {e}");
        return ExitCode::from(2);
    }
    let report = replay.finish();
    match args.format {
        Format::Text => print!("{}", replay::text(&report)),
        Format::Json => println!(
            "{}",
            serde_json::to_string(&report).expect("the report serializes")
        ),
    }
    if args.fail_on_change && report.changed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
