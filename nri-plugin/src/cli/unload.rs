//! `d4c unload`: end enforcement: detach the programs and remove everything d4c pinned.

use d4c::bpf::Enforcer;
use d4c::paths;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// bpffs directory where the programs and maps are pinned.
    #[arg(long, value_name = "DIR", default_value = paths::PIN_DIR)]
    bpffs: PathBuf,
}

pub fn run(args: &Args) -> ExitCode {
    if !args.bpffs.exists() {
        println!(
            "nothing pinned at {}: d4c is not loaded",
            args.bpffs.display()
        );
        return ExitCode::SUCCESS;
    }
    match Enforcer::unload_pinned(&args.bpffs) {
        Ok(()) => {
            println!(
                "unloaded: removed the programs and maps pinned at {}",
                args.bpffs.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("d4c unload: {e}");
            ExitCode::FAILURE
        }
    }
}
