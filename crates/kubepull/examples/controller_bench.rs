//! Controller benchmark: `kubepull server` (embedded redb) as a process with 500 and with
//! 10,000 unrelated pods stored (created directly, bound to a Node object no agent runs, so
//! nothing starts): the time from creating a 3-replica Deployment until its 3 pods exist and are
//! bound to a node (seen through a watch; median and worst of 5), the server's CPU while idle
//! over 30 s (from `/proc/PID/stat`), and its RSS.
//!
//! Run: `cargo run --release -p kubepull --example controller_bench`
//! (scripts/bench-controllers.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

#[path = "common/server.rs"]
mod server;
use server::Server;

const SIZES: [usize; 2] = [500, 10_000];
const RUNS: usize = 5;
const IDLE: Duration = Duration::from_secs(30);

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// utime + stime of `pid` in clock ticks (fields 14 and 15 of `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the command name may hold spaces: fields are counted after its closing parenthesis
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // after ')' the first field is the state (field 3): utime is field 14, stime 15
    get(11) + get(12)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0)
}

async fn post(s: &Server, path: &str, body: &Value) -> reqwest::StatusCode {
    s.create(path, body.clone()).await
}

async fn fake_node(s: &Server) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fake"}});
    assert!(post(s, "/api/v1/nodes", &node).await.is_success());
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
    let r = s
        .http
        .patch(format!("{}/api/v1/nodes/fake/status", s.url))
        .bearer_auth(&s.token)
        .header("content-type", "application/merge-patch+json")
        .body(serde_json::to_vec(&status).unwrap_or_default())
        .send()
        .await
        .expect("patch node");
    assert!(r.status().is_success(), "node status: {}", r.status());
}

async fn filler_pods(s: &Server, n: usize, conc: usize) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..conc {
        let http = s.http.clone();
        let token = s.token.clone();
        let url = s.url.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("filler-{i}"), "labels": {"app": "filler"}},
                    "spec": {"nodeName": "fake", "containers": [{"name": "c", "image": "reg.example/app:v1"}]}});
                let r = http
                    .post(format!("{url}/api/v1/namespaces/filler/pods"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&pod).unwrap_or_default())
                    .send()
                    .await
                    .expect("create pod");
                let status = r.status();
                // read to the end: a response dropped unread is a reset stream on the shared
                // HTTP/2 connection, and the client's h2 ends the connection after 1,024 of them
                let _ = r.bytes().await;
                assert!(status.is_success(), "create pod: {status}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

/// Creates Deployment `name` (3 replicas) and returns the time until a watch on its namespace
/// has seen 3 of its pods bound to a node.
async fn deployment_to_pods(s: &Server, name: &str) -> Duration {
    let r = s
        .http
        .get(format!(
            "{}/api/v1/namespaces/bench/pods?watch=1&labelSelector=app%3D{name}",
            s.url
        ))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("watch");
    assert!(r.status().is_success(), "watch: {}", r.status());
    let mut stream = r.bytes_stream();
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "reg.example/app:v1"}]}}}});
    let t0 = Instant::now();
    assert!(post(s, "/apis/apps/v1/namespaces/bench/deployments", &d)
        .await
        .is_success());
    let mut bound = std::collections::HashSet::new();
    let mut buf = Vec::new();
    let deadline = Duration::from_secs(60);
    while bound.len() < 3 {
        let chunk = tokio::time::timeout(deadline.saturating_sub(t0.elapsed()), stream.next())
            .await
            .expect("the deployment's pods in time")
            .expect("watch open")
            .expect("watch chunk");
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let pod = &ev["object"];
            let node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !node.is_empty() {
                bound.insert(
                    pod.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
    }
    t0.elapsed()
}

struct Row {
    median_ms: f64,
    worst_ms: f64,
    idle_cpu_pct: f64,
    rss: f64,
}

async fn measure(kp: &str, n: usize, work: &std::path::Path) -> Row {
    let dir = work.join(format!("d{n}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (s, _) = server::start(kp, &dir, &dir.join("server.log"), &[]).await;
    for ns in ["filler", "bench"] {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        assert!(post(&s, "/api/v1/namespaces", &body).await.is_success());
    }
    fake_node(&s).await;
    filler_pods(&s, n, 32).await;
    // let the controllers take in what was created
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut lat = vec![];
    for k in 0..RUNS {
        lat.push(deployment_to_pods(&s, &format!("d{k}")).await.as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = s.child.id();
    let c0 = cpu_ticks(pid);
    let t0 = Instant::now();
    tokio::time::sleep(IDLE).await;
    let used = (cpu_ticks(pid) - c0) as f64 / clock_ticks_per_second();
    let idle_cpu_pct = used / t0.elapsed().as_secs_f64() * 100.0;
    let rss = rss_mib(pid);
    Row {
        median_ms: lat[lat.len() / 2],
        worst_ms: lat[lat.len() - 1],
        idle_cpu_pct,
        rss,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let work = tempfile::tempdir().expect("temp");
    let mut rows = vec![];
    for n in SIZES {
        rows.push(measure(&kp, n, work.path()).await);
    }
    let head: Vec<String> = SIZES.iter().map(|n| format!("{n} pods stored")).collect();
    println!("| controllers (embedded redb) | {} |", head.join(" | "));
    println!("| --- |{}", " ---: |".repeat(SIZES.len()));
    let line = |what: &str, f: &dyn Fn(&Row) -> String| {
        let cells: Vec<String> = rows.iter().map(f).collect();
        println!("| {what} | {} |", cells.join(" | "));
    };
    line(
        &format!("Deployment (3 replicas) created → 3 pods bound, median of {RUNS}"),
        &|r| format!("{:.0} ms", r.median_ms),
    );
    line(&format!("… worst of {RUNS}"), &|r| {
        format!("{:.0} ms", r.worst_ms)
    });
    line(
        &format!("idle server CPU over {} s", IDLE.as_secs()),
        &|r| format!("{:.2}% of a core", r.idle_cpu_pct),
    );
    line("server RSS", &|r| format!("{:.1} MiB", r.rss));
}
