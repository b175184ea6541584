//! `d4c check`: validate policies and report every problem with file, line and column.

use d4c_policy::{check_paths, Diagnostic};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Policy files or directories (their *.yaml and *.yml files).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
}

pub fn run(args: &Args) -> ExitCode {
    let (policy, diagnostics) = match check_paths(&args.paths) {
        Ok(checked) => checked,
        Err(e) => {
            // An unreadable path is an error of the check, reported like the others.
            let path = args
                .paths
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let d = Diagnostic {
                file: path,
                line: 0,
                column: 0,
                severity: d4c_policy::Severity::Error,
                message: e.to_string(),
            };
            (None, vec![d])
        }
    };
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    match args.format {
        Format::Json => {
            let report = Report {
                valid: errors == 0,
                errors,
                warnings,
                diagnostics: &diagnostics,
            };
            println!(
                "{}",
                serde_json::to_string(&report).expect("diagnostics serialize")
            );
        }
        Format::Text => {
            for d in &diagnostics {
                if d.line == 0 {
                    eprintln!("error: {}", d.message);
                } else {
                    eprintln!("{d}");
                }
            }
            if errors > 0 {
                eprintln!("{errors} error(s), {warnings} warning(s)");
            } else if let Some(policy) = &policy {
                println!("{}", summary(policy, warnings));
            }
        }
    }
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The line a valid check prints: how much was read, and whether it can refuse anything
/// (`valid: 2 files, 3 selectors, 3 responses, 0 warnings; blocks: no`).
fn summary(policy: &d4c_policy::Policy, warnings: usize) -> String {
    let files = policy.sources.len();
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    format!(
        "valid: {}, {}, {}, {}; blocks: {}",
        plural(files, "file"),
        plural(policy.selectors.len(), "selector"),
        plural(policy.responses.len(), "response"),
        plural(warnings, "warning"),
        if policy.can_block() { "yes" } else { "no" }
    )
}
