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
    let diagnostics = match check_paths(&args.paths) {
        Ok((_, d)) => d,
        Err(e) => {
            // An unreadable path is an error of the check, reported like the others.
            let path = args
                .paths
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            vec![Diagnostic {
                file: path,
                line: 0,
                column: 0,
                severity: d4c_policy::Severity::Error,
                message: e.to_string(),
            }]
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
            }
        }
    }
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
