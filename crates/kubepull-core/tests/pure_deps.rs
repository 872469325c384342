//! The pure-core rule, checked from the test suite too: `kubepull-core` must not depend on an
//! async runtime, an HTTP client, a TLS stack or a Kubernetes client.

use std::process::Command;

const BANNED: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "futures",
    "futures-util",
    "mio",
    "hyper",
    "hyper-util",
    "reqwest",
    "ureq",
    "h2",
    "http",
    "tower",
    "axum",
    "rustls",
    "native-tls",
    "openssl",
    "kube",
    "kube-client",
    "kube-core",
    "kube-runtime",
    "k8s-openapi",
];

#[test]
fn core_has_no_io_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "kubepull-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"kubepull-core"),
        "unexpected cargo tree output: {text}"
    );
    let bad: Vec<&&str> = names.iter().filter(|n| BANNED.contains(n)).collect();
    assert!(bad.is_empty(), "kubepull-core depends on {bad:?}");
}
