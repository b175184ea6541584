//! Loading the `--policy` of a command, with diagnostics on stderr.

use d4c_policy::{load_paths, Policy, PolicyError};
use std::path::PathBuf;

/// Loads the policy; prints warnings, or the errors, on stderr. `Err` carries a message
/// already printed.
pub fn load(paths: &[PathBuf]) -> Result<Policy, ()> {
    match load_paths(paths) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(loaded.policy)
        }
        Err(PolicyError::Invalid { diagnostics }) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "d4c: the policy is not valid; fix the errors above (`d4c check` lists them)"
            );
            Err(())
        }
        Err(e) => {
            eprintln!("d4c: {e}");
            Err(())
        }
    }
}
