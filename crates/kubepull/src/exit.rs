//! Exit codes, the binary's interface to scripts. Documented in `--help` and the README.

/// Success.
pub const OK: u8 = 0;
/// The command failed, or `lint` found an error-level problem.
pub const FAILURE: u8 = 1;
/// Bad usage, or input that cannot be read or parsed.
pub const USAGE: u8 = 2;
