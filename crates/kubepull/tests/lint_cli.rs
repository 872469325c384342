//! `kubepull lint` end to end: exit codes, JSON shape, stdin, file:line, hostile input.

use std::io::Write;
use std::process::{Command, Stdio};

fn kubepull(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args(args)
        .env("HOME", "/nonexistent-home")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubepull");
    if let Some(input) = stdin {
        let _ = child.stdin.take().unwrap().write_all(input);
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn examples(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn clean_file_exits_0_and_broken_exits_1() {
    let (code, out, err) = kubepull(&["lint", &examples("good.yaml")], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty());
    assert!(err.contains("0 errors, 0 warnings"));

    let broken = examples("broken.yaml");
    let (code, out, _) = kubepull(&["lint", &broken], None);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "{broken}:11: error[dockerconfigjson-missing-auths]"
        )),
        "{out}"
    );
    assert!(out.contains("    fix: "));
    for secret in ["hunter2", "do-not-commit-me"] {
        assert!(!out.contains(secret), "{secret} printed");
    }
}

#[test]
fn json_output_has_the_documented_fields() {
    let (code, out, _) = kubepull(&["lint", "-o", "json", &examples("broken.yaml")], None);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert!(!arr.is_empty());
    for f in arr {
        for field in [
            "rule", "severity", "message", "file", "line", "fix", "object", "path",
        ] {
            assert!(!f[field].is_null(), "{field} missing in {f}");
        }
    }
    let rules: Vec<&str> = arr.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    for r in [
        "dockerconfigjson-missing-auths",
        "creds-store-only",
        "image-placeholder",
        "invalid-image-reference",
        "plaintext-secret-env",
    ] {
        assert!(rules.contains(&r), "{r} not in {rules:?}");
    }
}

#[test]
fn stdin_and_unreadable_input() {
    let pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: reg.io/app:${TAG}\n";
    let (code, out, _) = kubepull(&["lint", "-"], Some(pod));
    assert_eq!(code, 1);
    assert!(
        out.starts_with("<stdin>:7: error[image-placeholder]"),
        "{out}"
    );

    let (code, _, err) = kubepull(&["lint", "/nonexistent/x.yaml"], None);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.yaml"));

    let (code, _, err) = kubepull(&["lint", "-"], Some(b"a: [1, 2\nb: : :\n"));
    assert_eq!(code, 2);
    assert!(
        err.contains("<stdin>:") && err.contains("invalid YAML"),
        "{err}"
    );

    let deep = "- ".repeat(200_000);
    let (code, _, err) = kubepull(&["lint", "-"], Some(deep.as_bytes()));
    assert_eq!(code, 2);
    assert!(err.contains("nesting"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(65 << 20).unwrap();
    let (code, _, err) = kubepull(&["lint", big.to_str().unwrap()], None);
    assert_eq!(code, 2);
    assert!(err.contains("larger than 64 MiB"), "{err}");
}
