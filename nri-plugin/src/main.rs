//! `d4c`: container drift prevention with eBPF LSM. Command-line entry point.

mod cli;
#[allow(dead_code)] // wired into `d4c nri` by the NRI issue
mod daemon;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
