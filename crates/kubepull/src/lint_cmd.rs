//! `kubepull lint`. (in progress)

use clap::{ArgMatches, Command};

pub fn command() -> Command {
    Command::new("lint").about("Find what will break an image pull in manifests (in progress)")
}

pub fn run(_m: &ArgMatches) -> u8 {
    crate::exit::FAILURE
}
