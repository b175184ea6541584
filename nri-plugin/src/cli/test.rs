//! `d4c test`: runs the policy test files (`*.test.yaml`) found in the paths, each case a
//! container, an operation and the actions expected (`d4c_policy::cases`); prints each
//! failing case with its file and line and what differed, then `N passed, N failed`;
//! exits 1 when a case fails or a test file cannot run.

use d4c_policy::cases::{self, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Test files, or directories searched for `*.test.yaml` (not recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print every case, not only the failing ones.
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(args: &Args) -> ExitCode {
    let files = match cases::find(&args.paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("d4c test: no *.test.yaml file in {:?}", args.paths);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("d4c test: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in &files {
        let results = match cases::read(f).and_then(|t| cases::run(&t)) {
            Ok(r) => r,
            Err(e) => {
                println!("{e}");
                failed += 1;
                continue;
            }
        };
        for r in results {
            match r.outcome {
                Outcome::Passed => {
                    passed += 1;
                    if args.verbose {
                        println!("ok   {} {}", r.at, r.name);
                    }
                }
                Outcome::Failed(why) => {
                    failed += 1;
                    println!("FAIL {} {}: {why}", r.at, r.name);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
