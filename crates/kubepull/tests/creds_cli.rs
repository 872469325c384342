//! `kubepull creds` end to end: runs the binary on temp files.

use std::process::Command;

fn kubepull(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args(args)
        .env("HOME", "/nonexistent-home")
        .env_remove("KUBECONFIG")
        .output()
        .expect("running kubepull");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PASSWORD: &str = "pw-that-must-never-print";

fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

fn secrets_file(dir: &tempfile::TempDir) -> String {
    // reg.example.com/team has a more specific key than reg.example.com; the Hub entry is only
    // a fallback. `auth` encodes bob:PASSWORD and overrides the username field.
    let auth = "Ym9iOnB3LXRoYXQtbXVzdC1uZXZlci1wcmludA==";
    write(
        dir,
        "secrets.yaml",
        &format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: first}}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{{"auths":{{"reg.example.com":{{"username":"alice","password":"{PASSWORD}"}},"https://index.docker.io/v1/":{{"username":"hub","password":"{PASSWORD}"}}}}}}'
---
apiVersion: v1
kind: Secret
metadata: {{name: second}}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{{"auths":{{"reg.example.com/team":{{"username":"ignored","auth":"{auth}"}}}}}}'
---
apiVersion: v1
kind: Secret
metadata: {{name: opaque}}
type: Opaque
stringData:
  .dockerconfigjson: '{{"auths":{{"reg.example.com":{{"username":"never"}}}}}}'
"#
        ),
    )
}

#[test]
fn orders_credentials_like_the_kubelet() {
    let dir = tempfile::tempdir().unwrap();
    let f = secrets_file(&dir);
    let (code, out, err) = kubepull(&[
        "creds",
        "reg.example.com/team/app:v1",
        "--pull-secret",
        &f,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let users: Vec<&str> = v["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        ["bob", "alice"],
        "more specific key first, auth overrides username"
    );
    assert_eq!(v["credentials"][0]["source"], "secret/second");
    assert_eq!(v["skipped_secrets"][0]["name"], "opaque");
    assert_eq!(v["anonymous"], false);
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));

    let (code, out, _) = kubepull(&["creds", "busybox", "--pull-secret", &f]);
    assert_eq!(code, 0);
    assert!(out.contains("secret/first") && out.contains("hub"), "{out}");
    assert!(!out.contains(PASSWORD));

    let (code, out, _) = kubepull(&["creds", "ghcr.io/x/y", "--pull-secret", &f]);
    assert_eq!(code, 0);
    assert!(out.contains("pulls anonymously"), "{out}");
}

#[test]
fn node_config_comes_after_pod_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let f = secrets_file(&dir);
    let node = write(
        &dir,
        "config.json",
        r#"{"auths":{"reg.example.com":{"auth":"bm9kZTpub2RlcHc="}},"credsStore":"x"}"#,
    );
    let (code, out, _) = kubepull(&[
        "creds",
        "reg.example.com/other",
        "--pull-secret",
        &f,
        "--docker-config",
        &node,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sources: Vec<&str> = v["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["secret/first", "node"]);
}

#[test]
fn failures_before_pulling_exit_1_and_bad_input_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = secrets_file(&dir);
    let (code, out, _) = kubepull(&["creds", "Reg/App", "--pull-secret", &f]);
    assert_eq!(code, 1);
    assert!(
        out.contains("couldn't parse image name \"Reg/App\""),
        "{out}"
    );

    let bad = write(&dir, "bad.yaml", &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: b}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{\"r.io\":{{\"password\":\"{PASSWORD}\",\"auth\":\"%%%\"}}}}}}'\n"));
    let (code, out, err) = kubepull(&["creds", "r.io/a", "--pull-secret", &bad]);
    assert_eq!(code, 1);
    assert!(out.contains("illegal base64 data at input byte 0"), "{out}");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));

    let (code, _, err) = kubepull(&["creds", "r.io/a", "--pull-secret", "/nonexistent/file.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/file.yaml"), "{err}");

    let garbage = write(&dir, "garbage.yaml", "kind: Secret\n  - : [\n");
    let (code, _, err) = kubepull(&["creds", "r.io/a", "--pull-secret", &garbage]);
    assert_eq!(code, 2);
    assert!(err.contains("garbage.yaml"), "{err}");
}
