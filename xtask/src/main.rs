//! d4c developer tasks; `cargo xtask vm` is the QEMU guest harness (docs/vm-harness.md).

mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status when the harness itself fails (not the command): as `docker run` does.
const HARNESS_FAILURE: u8 = 125;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "d4c developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run CMD as root in a QEMU guest booting a stock Debian cloud kernel, with the
    /// freshly built d4c on PATH; exits with CMD's exit status (125 if the harness fails).
    Vm(vm::VmArgs),
    /// Fetch a containerd release from Debian's packages into the harness cache (never
    /// installed) and print the directory of its binaries.
    Containerd(vm::containerd::ContainerdArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.task {
        Task::Vm(args) => vm::run(args),
        Task::Containerd(args) => vm::containerd::fetch(args).map(|bin| {
            println!("{}", bin.display());
            0
        }),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            eprintln!("[xtask vm] error: {err:#}");
            ExitCode::from(HARNESS_FAILURE)
        }
    }
}
