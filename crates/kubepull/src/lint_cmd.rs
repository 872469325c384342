//! `kubepull lint FILE... | -`: finds what will break an image pull, with file and line.

use std::io::Read;

use clap::{Arg, ArgAction, ArgMatches, Command};
use kubepull_core::lint::{self, LintOptions, Severity};
use serde_json::json;

use crate::exit;

/// Largest input read from one file or stdin: manifests are kilobytes; anything near this is a
/// wrong path, and reading it all would only fill memory.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

pub fn command() -> Command {
    Command::new("lint")
        .about("Find what will break an image pull in manifests, with file, line, why and how to fix it")
        .arg(
            Arg::new("files")
                .required(true)
                .action(ArgAction::Append)
                .value_name("FILE")
                .help("YAML or JSON manifests (multi-document); - reads standard input"),
        )
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_parser(["text", "json"])
                .default_value("text")
                .help("Output format: text (file:line: severity[rule]: message) or json (an array of findings)"),
        )
        .arg(
            Arg::new("namespace")
                .short('n')
                .long("namespace")
                .default_value("default")
                .help("Namespace of objects that name none (as kubectl apply -n)"),
        )
        .after_help(
            "Rules: dockerconfigjson-missing-auths, auth-mismatch, auth-not-base64, creds-store-only, \
             secret-type-key-mismatch, dockerconfig-invalid-json, secret-data-not-base64, \
             invalid-image-reference, image-placeholder, imagepullpolicy-invalid, pull-secret-not-found, \
             no-matching-credential, plaintext-secret-env.\n\n\
             Exit codes: 0 no error-level finding (warnings allowed); 1 an error-level finding; \
             2 an input that cannot be read or parsed.",
        )
}

fn read_input(name: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let res = if name == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut buf)
    } else {
        match std::fs::File::open(name) {
            Ok(f) => f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf),
            Err(e) => return Err(format!("{name}: cannot read: {e}")),
        }
    };
    if let Err(e) = res {
        return Err(format!("{name}: cannot read: {e}"));
    }
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!(
            "{name}: larger than {} MiB; manifests are far smaller, is this the right file?",
            MAX_INPUT_BYTES >> 20
        ));
    }
    Ok(buf)
}

pub fn run(m: &ArgMatches) -> u8 {
    let json_out = m.get_one::<String>("output").map(String::as_str) == Some("json");
    let opts = LintOptions {
        default_namespace: m
            .get_one::<String>("namespace")
            .cloned()
            .unwrap_or_else(|| "default".into()),
    };
    let mut inputs = Vec::new();
    let mut unreadable = false;
    for f in m.get_many::<String>("files").into_iter().flatten() {
        match read_input(f) {
            Ok(b) => inputs.push((
                if f == "-" {
                    "<stdin>".to_string()
                } else {
                    f.clone()
                },
                b,
            )),
            Err(e) => {
                eprintln!("error: {e}");
                unreadable = true;
            }
        }
    }
    let report = lint::lint(&inputs, &opts);
    for e in &report.input_errors {
        eprintln!("error: {e}");
    }
    if json_out {
        let arr: Vec<_> = report
            .findings
            .iter()
            .map(|f| {
                json!({
                    "rule": f.rule, "severity": f.severity.as_str(), "message": f.message,
                    "fix": f.fix, "file": f.file, "line": f.line, "object": f.object, "path": f.path,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&arr).unwrap_or_else(|_| "[]".into())
        );
    } else {
        for f in &report.findings {
            println!(
                "{}:{}: {}[{}]: {} ({})",
                f.file,
                f.line,
                f.severity.as_str(),
                f.rule,
                f.message,
                f.object
            );
            println!("    fix: {}", f.fix);
        }
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = report.findings.len() - errors;
    eprintln!(
        "{errors} error{}, {warnings} warning{}",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    );
    if unreadable || !report.input_errors.is_empty() {
        exit::USAGE
    } else if errors > 0 {
        exit::FAILURE
    } else {
        exit::OK
    }
}
