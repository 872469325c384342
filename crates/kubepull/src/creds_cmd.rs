//! `kubepull creds`. (in progress)

use clap::{ArgMatches, Command};

pub fn command() -> Command {
    Command::new("creds").about("Which credentials the kubelet would try for an image (in progress)")
}

pub fn run(_m: &ArgMatches) -> u8 {
    crate::exit::FAILURE
}
