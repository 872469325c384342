//! Helpers shared by the API server's kubectl tests: the real `/usr/bin/kubectl` with a
//! kubeconfig and a private HOME (and its JSON output), polling for what the controllers do,
//! and a server configuration in a temp dir.

#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kubepull_control::ServerConfig;
use serde_json::Value;

pub mod webhook;

/// Runs kubectl with `args` (and `stdin`); returns success and stdout+stderr.
pub fn kubectl(
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String) {
    use std::io::Write;
    let mut c = Command::new("kubectl");
    c.env("KUBECONFIG", kubeconfig).env("HOME", home).args(args);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("kubectl");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// A server on a free loopback port with an in-memory datastore under `dir`.
pub fn server_config(dir: &Path, controllers: bool) -> ServerConfig {
    ServerConfig {
        data_dir: dir.join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: "memory".into(),
        controllers,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
    }
}

/// An HTTPS client builder that trusts `server`'s CA and nothing else.
pub fn https_client_builder(server: &kubepull_control::ServerHandle) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
}

/// Sends `body` to `url` (a full URL) with `content_type` as the admin; the status code and the
/// answer as JSON (`null` when the answer is not JSON).
pub async fn admin_send(
    http: &reqwest::Client,
    server: &kubepull_control::ServerHandle,
    method: reqwest::Method,
    url: String,
    content_type: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = http
        .request(method, url)
        .bearer_auth(server.admin_token())
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let v = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(serde_json::Value::Null);
    (code, v)
}

/// Runs kubectl with `args`, which must succeed; returns its output.
pub fn ok(kc: &Path, home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (good, out) = kubectl(kc, home, args, stdin);
    assert!(good, "kubectl {args:?} failed: {out}");
    out
}

/// Runs kubectl with `args`, which must fail with output holding each of `wants`; returns the
/// output.
pub fn refused(
    kc: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
    wants: &[&str],
) -> String {
    let (good, out) = kubectl(kc, home, args, stdin);
    assert!(!good, "kubectl {args:?} succeeded: {out}");
    for want in wants {
        assert!(out.contains(want), "{want}\n{out}");
    }
    out
}

/// `kubectl <args> -o json`, parsed.
pub fn get_json(kc: &Path, home: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&ok(kc, home, &a, None)).expect("json")
}

/// The `items` of a list (none when absent).
pub fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The string at JSON pointer `p` (empty when absent).
pub fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

thread_local! {
    static DUMP: RefCell<Option<(PathBuf, PathBuf, Vec<String>)>> = const { RefCell::new(None) };
}

/// What [`eventually`] shows when it gives up on this thread: the output of kubectl with
/// `args` (say `get deploy,rs,pods -n r -o yaml`).
pub fn dump_on_failure(kc: &Path, home: &Path, args: &[&str]) {
    let args = args.iter().map(|a| a.to_string()).collect();
    DUMP.with(|d| *d.borrow_mut() = Some((kc.to_path_buf(), home.to_path_buf(), args)));
}

/// Polls `f` every 100 ms until it returns `Some` (the controllers work asynchronously), for
/// at most a minute, so that a broken controller fails the test instead of hanging it; on
/// failure shows what [`dump_on_failure`] names.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < end {
        if let Some(x) = f() {
            return x;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dump = DUMP.with(|d| {
        d.borrow().as_ref().map(|(kc, home, args)| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            kubectl(kc, home, &args, None).1
        })
    });
    panic!("never happened: {what}\n{}", dump.unwrap_or_default());
}

/// Plays the node: every pod bound to it that is not ready becomes Running and Ready.
pub fn node_runs_pods(kc: &Path, home: &Path, ns: &str) {
    for p in items(&get_json(kc, home, &["get", "pods", "-n", ns])) {
        let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if s(&p, "/spec/nodeName").is_empty()
            || ready
            || p["metadata"].get("deletionTimestamp").is_some()
        {
            continue;
        }
        let status = r#"{"status":{"phase":"Running","podIP":"10.244.0.9","conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
        let _ = kubectl(
            kc,
            home,
            &[
                "patch",
                "pod",
                s(&p, "/metadata/name"),
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                status,
            ],
            None,
        );
    }
}

/// Plays the node for terminating pods: they are removed (the kubelet's final delete).
pub fn node_finishes_terminating(kc: &Path, home: &Path, ns: &str) {
    for p in items(&get_json(kc, home, &["get", "pods", "-n", ns])) {
        if p["metadata"].get("deletionTimestamp").is_some() {
            let _ = kubectl(
                kc,
                home,
                &[
                    "delete",
                    "pod",
                    s(&p, "/metadata/name"),
                    "-n",
                    ns,
                    "--grace-period=0",
                    "--force",
                ],
                None,
            );
        }
    }
}
