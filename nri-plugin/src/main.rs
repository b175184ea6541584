//! `d4c`: container drift prevention with eBPF LSM. Command-line entry point.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
