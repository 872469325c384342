//! Conformance: every recorded `kubectl create secret docker-registry` run in
//! `testdata/vectors/kubectl-create-secret.json` (and in `$KUBEPULL_VECTORS_DIR`, when set) is
//! replayed against the built `kubepull` binary, and stdout, stderr and the exit code must be
//! identical byte for byte.
//!
//! Each run gets a fresh temporary working directory holding the vector file's `files`, an empty
//! `HOME`, no `KUBECONFIG` and an empty stdin, as when the vectors were recorded.
//!
//! `kubepull`'s command line is `kubepull create ...`; kubectl global flags that a vector places
//! before `create` (e.g. `--kubeconfig=FILE create secret ...`) are moved right after `create`,
//! which kubectl treats the same (cobra merges the root's persistent flags into every command).
//!
//! klog header prefixes (`W1123 03:39:45.456401    5527 `) carry a time and a pid; they are
//! masked on both sides before comparing.

#[path = "../../../testdata/vectors_loader.rs"]
mod vectors;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

struct Mismatch {
    source: String,
    id: String,
    args: Vec<String>,
    what: String,
}

/// Replaces the header of klog lines (`Lmmdd hh:mm:ss.uuuuuu PID `) by `L<klog> `.
fn mask_klog(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&c| c == b'\n') {
        out.extend_from_slice(&mask_klog_line(line));
    }
    out
}

fn mask_klog_line(line: &[u8]) -> Vec<u8> {
    // [IWEF]dddd dd:dd:dd.dddddd +pid<space>
    let shape = b"Xdddd dd:dd:dd.dddddd ";
    if line.len() < shape.len() || !b"IWEF".contains(&line[0]) {
        return line.to_vec();
    }
    for (i, &s) in shape.iter().enumerate().skip(1) {
        let c = line[i];
        let ok = match s {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        };
        if !ok {
            return line.to_vec();
        }
    }
    let mut i = shape.len();
    while i < line.len() && line[i] == b' ' {
        i += 1;
    }
    let digits = line[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || line.get(i + digits) != Some(&b' ') {
        return line.to_vec();
    }
    let mut out = vec![line[0]];
    out.extend_from_slice(b"<klog> ");
    out.extend_from_slice(&line[i + digits + 1..]);
    out
}

/// kubectl global flags placed before `create` move to just after it.
fn kubepull_args(args: &[String]) -> Vec<String> {
    match args.iter().position(|a| a == "create") {
        Some(i) => {
            let mut v = vec!["create".to_string()];
            v.extend_from_slice(&args[i + 1..]);
            v.extend_from_slice(&args[..i]);
            v
        }
        None => args.to_vec(),
    }
}

fn materialise(dir: &Path, files: &serde_json::Map<String, Value>) {
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a vector file's directory");
        }
        match content {
            Value::String(s) => std::fs::write(&path, s.as_bytes()).expect("writing a vector file"),
            Value::Null => std::fs::create_dir_all(&path).expect("creating a vector directory"),
            other => panic!("unsupported file content for {name}: {other}"),
        }
    }
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let e: Vec<&[u8]> = expected.split(|&c| c == b'\n').collect();
    let a: Vec<&[u8]> = actual.split(|&c| c == b'\n').collect();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            return format!(
                "first difference at line {}:\n        expected {}\n        actual   {}",
                i + 1,
                x.map_or("<none>".into(), |l| show(l)),
                y.map_or("<none>".into(), |l| show(l)),
            );
        }
    }
    String::new()
}

#[test]
fn kubectl_create_secret_vectors() {
    let bin = env!("CARGO_BIN_EXE_kubepull");
    let mut checked = 0usize;
    let mut builtin_runs = 0usize;
    let mut mismatches: Vec<Mismatch> = Vec::new();

    for (source, doc) in vectors::load("kubectl-create-secret.json") {
        let source_name = source.display().to_string();
        let is_builtin = source.starts_with(vectors::builtin_dir());
        let empty = serde_json::Map::new();
        let shared_files = doc["files"].as_object().unwrap_or(&empty);
        let cases = doc["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{source_name}: no \"cases\" array"));
        for case in cases {
            let id = case["id"].as_str().unwrap_or("<no id>").to_string();
            let args: Vec<String> = case["args"]
                .as_array()
                .unwrap_or_else(|| panic!("{source_name} {id}: no args"))
                .iter()
                .map(|a| a.as_str().expect("string argument").to_string())
                .collect();
            let runs = case["runs"]
                .as_array()
                .unwrap_or_else(|| panic!("{source_name} {id}: no runs"));
            for run in runs {
                let suffix: Vec<String> = run["argv_suffix"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|a| a.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let want_out = run["stdout"].as_str().expect("stdout").as_bytes();
                let want_err = run["stderr"].as_str().expect("stderr").as_bytes();
                let want_code = run["exit_code"].as_i64().expect("exit_code");

                let tmp = tempfile::tempdir().expect("temp dir");
                let home = tmp.path().join("home");
                let cwd = tmp.path().join("cwd");
                std::fs::create_dir_all(&home).unwrap();
                std::fs::create_dir_all(&cwd).unwrap();
                materialise(&cwd, shared_files);
                if let Some(own) = case["files"].as_object() {
                    materialise(&cwd, own);
                }

                let mut full: Vec<String> = args.clone();
                full.extend(suffix.iter().cloned());
                let argv = kubepull_args(&full);
                let out = Command::new(bin)
                    .args(&argv)
                    .current_dir(&cwd)
                    .env_remove("KUBECONFIG")
                    .env("HOME", &home)
                    .stdin(Stdio::null())
                    .output()
                    .expect("running kubepull");
                let code = i64::from(out.status.code().unwrap_or(-1));
                checked += 1;
                if is_builtin {
                    builtin_runs += 1;
                }

                let mut problems = Vec::new();
                if code != want_code {
                    problems.push(format!("    exit code: expected {want_code}, got {code}"));
                }
                if out.stdout != want_out {
                    problems.push(format!(
                        "    stdout differs\n      expected {}\n      actual   {}\n      {}",
                        show(want_out),
                        show(&out.stdout),
                        first_difference(want_out, &out.stdout)
                    ));
                }
                let (we, ae) = (mask_klog(want_err), mask_klog(&out.stderr));
                if we != ae {
                    problems.push(format!(
                        "    stderr differs\n      expected {}\n      actual   {}",
                        show(&we),
                        show(&ae)
                    ));
                }
                if !problems.is_empty() {
                    mismatches.push(Mismatch {
                        source: source_name.clone(),
                        id: id.clone(),
                        args: argv,
                        what: problems.join("\n"),
                    });
                }
            }
        }
    }

    assert!(
        builtin_runs >= 50,
        "only {builtin_runs} built-in vector runs were checked"
    );
    if !mismatches.is_empty() {
        let mut report = format!(
            "{} of {checked} kubectl-create-secret vector runs differ:\n",
            mismatches.len()
        );
        for m in &mismatches {
            report.push_str(&format!(
                "\n  [{}] {}\n    kubepull {}\n{}\n",
                m.source,
                m.id,
                m.args.join(" "),
                m.what
            ));
        }
        panic!("{report}");
    }
    eprintln!("checked {checked} vector runs ({builtin_runs} built-in)");
}

#[test]
fn klog_mask_only_touches_headers() {
    assert_eq!(
        mask_klog(b"W1123 03:39:45.456401    5527 helpers.go:702] msg\nerror: x\n"),
        b"W<klog> helpers.go:702] msg\nerror: x\n".to_vec()
    );
    assert_eq!(mask_klog(b"Error: x\n"), b"Error: x\n".to_vec());
}
