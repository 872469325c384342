//! `kubepull doctor -A` benchmark: a `kubepull server` (no node, so pods stay as created) with
//! 500 and 2,000 pods spread over namespaces, each namespace with a pull secret (one in four
//! with a wrong password, one in eight missing), every pod pulling from the real registry (TLS,
//! htpasswd). Measures doctor's wall time and peak RSS, the API reads it made, the registry
//! probes, and the manifest requests the registry saw, beside `kubectl get pods -A -o json`
//! (the least any tool must read).
//!
//! Run: `scripts/bench-doctor.sh` (builds release and runs this).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use kubepull_testkit::{busybox_image, Registry};

#[path = "common/server.rs"]
mod server;
use server::Server;

const USER: &str = "bench";
const PASS: &str = "Bench-Doctor-Pass-1";
const PODS_PER_NS: usize = 50;

async fn post(s: &Server, path: &str, body: serde_json::Value) {
    let st = s.create(path, body).await;
    assert!(st.is_success() || st == 409, "POST {path}: {st}");
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Adds namespaces `first..first+count` with their secrets and pods.
async fn populate(s: &Arc<Server>, host: &str, first: usize, count: usize) {
    let mut tasks = vec![];
    for n in first..first + count {
        let s = s.clone();
        let host = host.to_string();
        tasks.push(tokio::spawn(async move {
            let ns = format!("team-{n}");
            post(
                &s,
                "/api/v1/namespaces",
                serde_json::json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}}),
            )
            .await;
            if n % 8 != 7 {
                let pass = if n % 4 == 1 { "wrong" } else { PASS };
                let cfg = format!(
                    r#"{{"auths":{{"{host}":{{"username":"{USER}","password":"{pass}"}}}}}}"#
                );
                post(
                    &s,
                    &format!("/api/v1/namespaces/{ns}/secrets"),
                    serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"regcred"},
                        "type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson": b64(&cfg)}}),
                )
                .await;
            }
            for i in 0..PODS_PER_NS {
                post(
                    &s,
                    &format!("/api/v1/namespaces/{ns}/pods"),
                    serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":format!("p{i}")},
                        "spec":{"imagePullSecrets":[{"name":"regcred"}],
                        "containers":[{"name":"c","image":format!("{host}/team/app:v1")}]}}),
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("populate");
    }
}

/// Runs a command under `/usr/bin/time -f %M`: (wall seconds, peak RSS MiB, stdout).
fn measure(cmd: &mut Command) -> (f64, f64, String) {
    let t0 = Instant::now();
    let o = cmd.output().expect("run");
    let wall = t0.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&o.stderr);
    let rss_kib: f64 = err
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() && out.is_empty() {
        out = err.into_owned();
    }
    (wall, rss_kib / 1024.0, out)
}

fn main() {
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["/bin/true"], &[]);
    rt.block_on(reg.push("team/app", "v1", &img));
    let hosts = dir.path().join("hosts");
    reg.write_hosts_dir(&hosts);
    let data = dir.path().join("data");
    let server = Arc::new(
        rt.block_on(server::start(
            &kp,
            &data,
            &dir.path().join("server.log"),
            &[],
        ))
        .0,
    );
    let kubeconfig = dir.path().join("data/admin.kubeconfig");

    println!("| pods | namespaces | `kubepull doctor -A` | peak RSS | API reads | registry probes | manifest GETs at the registry | `kubectl get pods -A -o json` |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut done_ns = 0;
    for pods in [500usize, 2000] {
        let want_ns = pods / PODS_PER_NS;
        rt.block_on(populate(&server, &reg.host(), done_ns, want_ns - done_ns));
        done_ns = want_ns;
        let before = reg.log().matches("/manifests/").count();
        let (wall, rss, out) = measure(
            Command::new("/usr/bin/time")
                .args(["-f", "%M", &kp, "doctor", "-A", "--hosts-dir"])
                .arg(&hosts)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .env("HOME", dir.path()),
        );
        let manifests = reg.log().matches("/manifests/").count() - before;
        let summary = out
            .lines()
            .find(|l| l.contains("containers checked"))
            .unwrap_or("")
            .to_string();
        let reads = summary
            .split('(')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let probes = summary
            .split(", ")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let (kwall, _, _) = measure(
            Command::new("/usr/bin/time")
                .args(["-f", "%M", "kubectl", "get", "pods", "-A", "-o", "json"])
                .env("KUBECONFIG", &kubeconfig)
                .env("HOME", dir.path()),
        );
        println!(
            "| {pods} | {want_ns} | {wall:.2} s | {rss:.1} MiB | {reads} | {probes} | {manifests} | {kwall:.2} s |"
        );
        if !summary.contains(&format!("{pods} containers checked")) {
            eprintln!("unexpected doctor output:\n{out}");
        }
    }
}
