//! `kubepull operator` benchmark on a `kubepull server` (no node): at two sizes (namespaces,
//! unrelated Secrets), the time from creating a ClusterPullSecret to every copy in place, the
//! time for a rotated source to reach every copy, the webhook's own latency (AdmissionReviews
//! posted straight to it) and what it adds to a pod create through the API server, and the
//! operator's peak RSS.
//!
//! Run: `scripts/bench-operator.sh` (builds release and runs this).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/server.rs"]
mod server;
use server::Server;

const SRC_NS: &str = "kubepull-system";

async fn send(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    ct: &str,
    body: serde_json::Value,
) -> reqwest::StatusCode {
    s.http
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(&s.token)
        .header("content-type", ct)
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .send()
        .await
        .expect("request")
        .status()
}

async fn post(s: &Server, path: &str, body: serde_json::Value) {
    let st = send(s, reqwest::Method::POST, path, "application/json", body).await;
    assert!(st.is_success() || st == 409, "POST {path}: {st}");
}

async fn get(s: &Server, path: &str) -> serde_json::Value {
    s.http
        .get(format!("{}{path}", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn source(pass: &str) -> serde_json::Value {
    let cfg = format!(
        r#"{{"auths":{{"registry.example:5000":{{"username":"bench","password":"{pass}","auth":"{}"}}}}}}"#,
        b64(&format!("bench:{pass}"))
    );
    serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"regcred","namespace":SRC_NS},
        "type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson": b64(&cfg)}})
}

async fn parallel<F, Fut>(n: usize, width: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter((0..n).map(f))
        .buffer_unordered(width)
        .collect::<Vec<_>>()
        .await;
}

/// Copies labelled for `cr` whose hash annotation is `hash` (any hash when `None`).
async fn copies(s: &Server, hash: Option<&str>) -> usize {
    let v = get(
        s,
        "/api/v1/secrets?labelSelector=kubepull.io%2Fcluster-pull-secret%3Dbench",
    )
    .await;
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| {
                    hash.is_none_or(|h| {
                        i["metadata"]["annotations"]["kubepull.io/source-hash"] == h
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

fn rss_peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Row {
    namespaces: usize,
    secrets: usize,
    copies_s: f64,
    rotate_s: f64,
    hook_p50_ms: f64,
    hook_p99_ms: f64,
    create_p99_without_ms: f64,
    create_p99_with_ms: f64,
    rss_mib: f64,
}

async fn pod_creates(s: &Arc<Server>, ns: &str, prefix: &str, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        post(
            s,
            &format!("/api/v1/namespaces/{ns}/pods"),
            serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":format!("{prefix}{i}")},
                "spec":{"containers":[{"name":"c","image":"registry.example:5000/app:v1"}]}}),
        )
        .await;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

async fn run(kp: &str, namespaces: usize, secrets: usize) -> Row {
    let dir = tempfile::tempdir().expect("tmp");
    let (s, _) = server::start(
        kp,
        &dir.path().join("data"),
        &dir.path().join("server.log"),
        &[],
    )
    .await;
    let s = Arc::new(s);
    // the CRD, the source, the namespaces and the unrelated Secrets
    post(
        &s,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        kubepull_kube::operator::spec::crd(),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces",
        serde_json::json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":SRC_NS}}),
    )
    .await;
    post(
        &s,
        &format!("/api/v1/namespaces/{SRC_NS}/secrets"),
        source("one"),
    )
    .await;
    parallel(namespaces, 16, |i| {
        let s = s.clone();
        async move {
            post(&s, "/api/v1/namespaces", serde_json::json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":format!("ns-{i}")}})).await;
        }
    })
    .await;
    parallel(secrets, 16, |i| {
        let s = s.clone();
        async move {
            post(
                &s,
                &format!("/api/v1/namespaces/ns-{}/secrets", i % namespaces),
                serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":format!("unrelated-{i}")},
                    "type":"Opaque","data":{"k": b64(&"x".repeat(512))}}),
            )
            .await;
        }
    })
    .await;
    // wait for the CRD to be served
    loop {
        let st = s
            .http
            .get(format!(
                "{}/apis/kubepull.io/v1alpha1/clusterpullsecrets",
                s.url
            ))
            .bearer_auth(&s.token)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if st {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pod_ns = "ns-0";
    let without = pod_creates(&s, pod_ns, "before-", 200).await;

    let hook_port = kubepull_testkit::free_port();
    let log = std::fs::File::create(dir.path().join("operator.log")).expect("log");
    let mut op = Command::new(kp)
        .args(["operator", "--kubeconfig"])
        .arg(dir.path().join("data/admin.kubeconfig"))
        .args([
            "--namespace",
            SRC_NS,
            "--webhook-bind",
            &format!("127.0.0.1:{hook_port}"),
        ])
        .args([
            "--webhook-url",
            &format!("https://127.0.0.1:{hook_port}/mutate-pods"),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start operator");

    let t0 = Instant::now();
    post(
        &s,
        "/apis/kubepull.io/v1alpha1/clusterpullsecrets",
        serde_json::json!({"apiVersion":"kubepull.io/v1alpha1","kind":"ClusterPullSecret","metadata":{"name":"bench"},
            "spec":{"secretRef":{"namespace":SRC_NS,"name":"regcred"}}}),
    )
    .await;
    while copies(&s, None).await < namespaces {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "copies never arrived"
        );
    }
    let copies_s = t0.elapsed().as_secs_f64();

    // rotation
    let t1 = Instant::now();
    let st = send(
        &s,
        reqwest::Method::PUT,
        &format!("/api/v1/namespaces/{SRC_NS}/secrets/regcred"),
        "application/json",
        source("two"),
    )
    .await;
    assert!(st.is_success(), "rotate: {st}");
    let src = get(&s, &format!("/api/v1/namespaces/{SRC_NS}/secrets/regcred")).await;
    // the operator's fingerprint of the rotated source
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(src).expect("secret");
    let hash = kubepull_kube::operator::source::fingerprint(&secret);
    while copies(&s, Some(&hash)).await < namespaces {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            t1.elapsed() < Duration::from_secs(300),
            "rotation never arrived"
        );
    }
    let rotate_s = t1.elapsed().as_secs_f64();

    // the webhook alone: AdmissionReviews posted straight to it
    let hook = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .use_rustls_tls()
        .build()
        .expect("client");
    let mut lat = Vec::new();
    for i in 0..1000 {
        let review = serde_json::json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
            "request":{"uid":format!("u{i}"),"kind":{"group":"","version":"v1","kind":"Pod"},
            "resource":{"group":"","version":"v1","resource":"pods"},"namespace":format!("ns-{}", i % namespaces),
            "operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"c","image":"x"}]}}}});
        let t = Instant::now();
        let r = hook
            .post(format!("https://127.0.0.1:{hook_port}/mutate-pods"))
            .header("content-type", "application/json")
            .body(review.to_string())
            .send()
            .await
            .expect("webhook");
        let v: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("review")).unwrap_or_default();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(v["response"]["patch"].is_string(), "not mutated: {v}");
    }
    let hook_p50_ms = percentile(&mut lat, 0.5);
    let hook_p99_ms = percentile(&mut lat, 0.99);
    // pod creates through the API server, now calling the webhook
    let mut with = pod_creates(&s, pod_ns, "after-", 200).await;
    let mut without = without;
    let rss_mib = rss_peak_kib(op.id()) as f64 / 1024.0;
    let _ = op.kill();
    let _ = op.wait();
    Row {
        namespaces,
        secrets,
        copies_s,
        rotate_s,
        hook_p50_ms,
        hook_p99_ms,
        create_p99_without_ms: percentile(&mut without, 0.99),
        create_p99_with_ms: percentile(&mut with, 0.99),
        rss_mib,
    }
}

#[tokio::main]
async fn main() {
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let sizes = [(200usize, 1_000usize), (1_000, 10_000)];
    let mut rows = Vec::new();
    for (n, s) in sizes {
        eprintln!("operator bench: {n} namespaces, {s} unrelated Secrets …");
        rows.push(run(&kp, n, s).await);
    }
    println!("| namespaces | unrelated Secrets | CR → all copies | rotation → all copies | webhook p50 / p99 | pod create p99 without / with webhook | operator peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {:.2} / {:.2} ms | {:.1} / {:.1} ms | {:.1} MiB |",
            r.namespaces,
            r.secrets,
            r.copies_s,
            r.rotate_s,
            r.hook_p50_ms,
            r.hook_p99_ms,
            r.create_p99_without_ms,
            r.create_p99_with_ms,
            r.rss_mib
        );
    }
}
