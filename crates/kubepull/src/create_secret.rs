//! `kubepull create secret docker-registry`, kubectl-identical. (in progress)

use std::ffi::OsString;

/// Runs `create ARGS...`; returns the exit code.
pub fn run_create(_args: Vec<OsString>) -> u8 {
    eprintln!("error: not implemented yet");
    crate::exit::FAILURE
}
