//! Conformance of the pull-error classifier against real messages whose cause a public thread
//! established (`tests/data/pull-errors.jsonl`), plus every `*.jsonl` in the directory named by
//! `KUBEPULL_PULL_ERRORS_DIR` when that variable is set (same format: `id`, `message`, `cause`,
//! `confirmed`, optional `runtime`, `registry`, `source`, `note`).
//!
//! Every `confirmed: true` record must get its cause exactly; every record must get its cause
//! either as the cause or among the candidates. The test prints a table of all mismatches and
//! the exact-match rate.

use std::path::{Path, PathBuf};

use kubepull_core::diagnose::{classify_message, Cause};

#[derive(serde::Deserialize)]
struct Record {
    id: serde_json::Value,
    message: String,
    cause: String,
    #[serde(default)]
    confirmed: bool,
}

fn load(path: &Path) -> Vec<(String, Record)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let r: Record = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
            (
                format!(
                    "{}#{}",
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    r.id
                ),
                r,
            )
        })
        .collect()
}

fn files() -> Vec<PathBuf> {
    let mut v = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pull-errors.jsonl")];
    if let Ok(dir) = std::env::var("KUBEPULL_PULL_ERRORS_DIR") {
        let mut extra: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("KUBEPULL_PULL_ERRORS_DIR={dir}: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        extra.sort();
        v.extend(extra);
    }
    v
}

#[test]
fn pull_error_corpus() {
    let mut total = 0;
    let mut exact = 0;
    let mut confirmed = 0;
    let mut confirmed_exact = 0;
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for f in files() {
        for (id, r) in load(&f) {
            let want: Cause = r.cause.parse().unwrap_or_else(|e| panic!("{id}: {e}"));
            let got = classify_message(&r.message);
            total += 1;
            confirmed += usize::from(r.confirmed);
            if got.cause == want {
                exact += 1;
                confirmed_exact += usize::from(r.confirmed);
                continue;
            }
            let in_candidates = got.candidates.contains(&want);
            table.push(format!(
                "{id:<60} want {:<26} got {:<26} confirmed={} candidates=[{}]",
                want.as_str(),
                got.cause.as_str(),
                r.confirmed,
                got.candidates
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            if r.confirmed || !in_candidates {
                failures.push(id);
            }
        }
    }
    println!(
        "exact cause: {exact}/{total}; confirmed records exact: {confirmed_exact}/{confirmed}"
    );
    for line in &table {
        println!("{line}");
    }
    assert!(total > 0, "no records");
    assert!(
        failures.is_empty(),
        "records that must match: {failures:?}\n{}",
        table.join("\n")
    );
}
