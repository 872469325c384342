//! `kubepull`: one binary for the Kubernetes image-pull-secret chain.

mod adapt;
mod cluster_cmd;
mod create_secret;
mod creds_cmd;
mod doctor_cmd;
mod exit;
mod lint_cmd;
mod operator_cmd;
mod pull_cmd;
mod push_cmd;
mod server_create;
mod storage_flags;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success; for `lint`, no error-level finding
  1  the command failed; for `lint`, an error-level finding exists; for
     `create secret docker-registry`, the same failures kubectl reports with 1
  2  bad usage or unreadable input (a file that cannot be read or parsed)
  10-21  `pull` failures by cause (credentials rejected, not found, TLS, ...):
     see `kubepull pull --help`
  `doctor`: 0 when every checked container can pull, 1 when one cannot";

fn cli() -> Command {
    Command::new("kubepull")
        .version(env!("CARGO_PKG_VERSION"))
        .about("The Kubernetes image-pull-secret chain in one binary: create, lint and explain pull secrets; pull images into a node store; run a cluster (server, node, up, down); diagnose image pulls and propagate pull secrets on any cluster (doctor, operator)")
        .after_help(EXIT_CODES_HELP)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            // `create secret docker-registry` parses its own flags with kubectl's (pflag) rules so
            // that its output and errors are byte-identical to kubectl's.
            Command::new("create")
                .about("Create a resource (kubectl-compatible): `kubepull create secret docker-registry NAME ...`")
                .disable_help_flag(true)
                .arg(
                    Arg::new("args")
                        .num_args(0..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true)
                        .value_parser(clap::value_parser!(OsString))
                        .action(ArgAction::Append),
                ),
        )
        .subcommand(lint_cmd::command())
        .subcommand(creds_cmd::command())
        .subcommand(doctor_cmd::command())
        .subcommand(operator_cmd::command())
        .subcommand(pull_cmd::pull_command())
        .subcommand(push_cmd::command())
        .subcommand(pull_cmd::images_command())
        .subcommand(pull_cmd::rmi_command())
        .subcommand(pull_cmd::gc_command())
        .subcommand(pull_cmd::unpack_command())
        .subcommand(cluster_cmd::server_command())
        .subcommand(cluster_cmd::node_command())
        .subcommand(cluster_cmd::up_command())
        .subcommand(cluster_cmd::down_command())
        .subcommand(cluster_cmd::token_command())
        .subcommand(cluster_cmd::retry_command())
        .subcommand(cluster_cmd::shim_command())
}

fn main() -> ExitCode {
    let matches = match cli().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match matches.subcommand() {
        Some(("create", m)) => {
            let args: Vec<OsString> = m
                .get_many::<OsString>("args")
                .map(|v| v.cloned().collect())
                .unwrap_or_default();
            create_secret::run_create(args)
        }
        Some(("lint", m)) => lint_cmd::run(m),
        Some(("creds", m)) => creds_cmd::run(m),
        Some(("doctor", m)) => doctor_cmd::run(m),
        Some(("operator", m)) => operator_cmd::run(m),
        Some(("pull", m)) => pull_cmd::run_pull(m),
        Some(("push", m)) => push_cmd::run(m),
        Some(("images", m)) => pull_cmd::run_images(m),
        Some(("rmi", m)) => pull_cmd::run_rmi(m),
        Some(("gc", m)) => pull_cmd::run_gc(m),
        Some(("unpack", m)) => pull_cmd::run_unpack(m),
        Some(("server", m)) => cluster_cmd::run_server(m),
        Some(("node", m)) => cluster_cmd::run_node(m),
        Some(("up", m)) => cluster_cmd::run_up(m),
        Some(("down", m)) => cluster_cmd::run_down(m),
        Some(("token", m)) => cluster_cmd::run_token(m),
        Some(("retry", m)) => cluster_cmd::run_retry(m),
        Some(("runtime-shim", m)) => cluster_cmd::run_shim(m),
        _ => exit::USAGE,
    };
    ExitCode::from(code)
}
