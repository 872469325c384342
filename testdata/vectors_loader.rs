//! Loads conformance vector files: the project's own copy under `testdata/vectors/`, and, when the
//! environment variable `KUBEPULL_VECTORS_DIR` names a directory, the files of the same name found
//! there (any subset of the four files). Included by the conformance tests with `#[path]`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The environment variable that names an extra directory of vector files.
pub const VECTORS_DIR_ENV: &str = "KUBEPULL_VECTORS_DIR";

/// The vector file names the conformance runner knows.
pub const KNOWN_FILES: [&str; 4] = [
    "keyring.json",
    "reference.json",
    "pullpolicy.json",
    "kubectl-create-secret.json",
];

/// The project's own vectors directory.
pub fn builtin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors")
}

/// Every copy of vector file `name` to check: the built-in one first, then the one in
/// `$KUBEPULL_VECTORS_DIR` if it exists there. Panics (fails the test) when the variable names a
/// directory that does not exist, so a typo cannot silently skip the extra cases.
pub fn load(name: &str) -> Vec<(PathBuf, serde_json::Value)> {
    let mut paths = vec![builtin_dir().join(name)];
    if let Some(extra) = extra_dir() {
        let p = extra.join(name);
        if p.exists() {
            paths.push(p);
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let bytes =
                std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// The extra directory named by `KUBEPULL_VECTORS_DIR`, validated.
pub fn extra_dir() -> Option<PathBuf> {
    let dir = std::env::var_os(VECTORS_DIR_ENV)?;
    if dir.is_empty() {
        return None;
    }
    let dir = PathBuf::from(dir);
    assert!(
        dir.is_dir(),
        "{VECTORS_DIR_ENV}={} is not a directory",
        dir.display()
    );
    assert!(
        KNOWN_FILES.iter().any(|f| dir.join(f).exists()),
        "{VECTORS_DIR_ENV}={} holds none of {KNOWN_FILES:?}",
        dir.display()
    );
    Some(dir)
}
