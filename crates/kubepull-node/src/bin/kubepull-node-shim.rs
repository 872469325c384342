//! The runtime shim on its own (`kubepull runtime-shim` is the same code), so that this crate's
//! tests can drive real runc without the `kubepull` binary.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(kubepull_node::runc::shim_main(&args));
}
