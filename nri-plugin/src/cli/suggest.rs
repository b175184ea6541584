//! `d4c suggest`: the candidate policy written again as one file, with the narrowest
//! exceptions that make it quiet on the recorded operations it would newly block
//! (`d4c_policy::suggest`); what was done goes to standard error.

use d4c_policy::suggest::Suggest;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The candidate policy: files or directories; repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    policy: Vec<PathBuf>,
    /// Write the suggested policy here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// ECS NDJSON recordings (d4c's or Elastic's agent's): files, `.gz` files, or `-` for
    /// standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
}

pub fn run(args: &Args) -> ExitCode {
    let Ok(policy) = super::policy_arg::load(&args.policy) else {
        return ExitCode::from(2);
    };
    let mut suggest = Suggest::new(&policy);
    if let Err(e) = super::recordings::each_line(&args.files, |_, _, line| suggest.line(line)) {
        eprintln!("d4c suggest: {e}");
        return ExitCode::from(2);
    }
    let (suggested, s) = suggest.finish();
    let header = format!(
        "Suggested by `d4c suggest` from {} recorded operations: {} would be newly blocked;\n{} exception(s) added (selectors named suggested-exception-N, in the\nresponses' exclude lists). Review them, then `d4c check` and `d4c replay` this file.",
        s.events, s.newly_blocked, s.exceptions
    );
    let text = d4c_policy::emit::to_yaml(&suggested, &header);
    if let Err(e) = d4c_policy::load_str("suggested.yaml", &text) {
        eprintln!("d4c suggest: internal error: the suggested policy is not valid; please report this:\n{e}");
        return ExitCode::from(3);
    }
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("d4c suggest: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        None => print!("{text}"),
    }
    eprintln!(
        "d4c suggest: {} documents, {} newly blocked, {} undecidable, {} malformed; {} exception(s) added",
        s.events, s.newly_blocked, s.undecidable, s.malformed, s.exceptions
    );
    for p in &s.unnameable {
        eprintln!(
            "d4c suggest: warning: {p} cannot be named by a pattern (it holds `*`); not excepted"
        );
    }
    ExitCode::SUCCESS
}
