//! API server benchmark: `kubepull server` started as a process (embedded redb, and etcd when
//! `/usr/bin/etcd` exists): time to ready on a fresh and on an existing data dir, RSS idle and
//! after 10,000 Secrets and 1,000 Pods, create throughput and p99 latency at 32 concurrent
//! clients, watch delivery p99 with 100 watchers. For etcd, etcd's own ceiling on this machine is
//! measured in the same run: raw gRPC puts of Secret-sized values at the same concurrency, one
//! client (the server's own etcd client crate), printed beside the server's rate. RBAC overhead:
//! the same Secret create + get load as the admin and as a user bound by a RoleBinding (a client
//! certificate of the cluster CA), in alternating rounds of the same run.
//!
//! Run: `cargo run --release -p kubepull --example api_bench` (scripts/bench-api.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/server.rs"]
mod server;
use server::Server;

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

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[((v.len() as f64 - 1.0) * p) as usize]
}

async fn create_many(s: &Server, ns: &str, kind: &str, n: usize, conc: usize) -> (f64, f64) {
    let s_url = s.url.clone();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..conc {
        let http = s.http.clone();
        let token = s.token.clone();
        let url = s_url.clone();
        let next = next.clone();
        let lat = lat.clone();
        let ns = ns.to_string();
        let kind = kind.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let (path, body) = if kind == "secret" {
                    (
                        format!("{url}/api/v1/namespaces/{ns}/secrets"),
                        serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":format!("s{i}")},"type":"Opaque","data":{"k":"dmFsdWU="}}),
                    )
                } else {
                    (
                        format!("{url}/api/v1/namespaces/{ns}/pods"),
                        serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":format!("p{i}")},"spec":{"containers":[{"name":"c","image":"reg.example/app:v1"}]}}),
                    )
                };
                let t = Instant::now();
                let r = http
                    .post(path)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).unwrap_or_default())
                    .send()
                    .await
                    .expect("create");
                assert!(r.status().is_success(), "create failed: {}", r.status());
                lat.lock().unwrap_or_else(|p| p.into_inner()).push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut l = lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (n as f64 / secs, pct(&mut l, 0.99))
}

/// Creates (`get` false) or reads back (`get` true) the Secrets `{prefix}{0..n}` under `base`
/// (a namespace's `/api/v1/namespaces/NS/secrets` URL) from `conc` tasks through `http` (with
/// `token` as bearer, else its client certificate); the time taken. Every request must succeed.
async fn secret_load(
    http: &reqwest::Client,
    token: Option<&str>,
    base: &str,
    prefix: &str,
    n: usize,
    conc: usize,
    get: bool,
) -> Duration {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..conc {
        let (http, next) = (http.clone(), next.clone());
        let token = token.map(str::to_string);
        let base = base.to_string();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let name = format!("{prefix}{i}");
                let mut req = if get {
                    http.get(format!("{base}/{name}"))
                } else {
                    let body = serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":name},"type":"Opaque","data":{"k":"dmFsdWU="}});
                    http.post(&base)
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&body).unwrap_or_default())
                };
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await.expect("request");
                assert!(r.status().is_success(), "{} {name}: {}", if get { "get" } else { "create" }, r.status());
                // read the body, as a client does: a response dropped before its body arrived
                // makes the HTTP/2 client reset the stream, and a connection that has reset too
                // many streams itself is closed by the client library ("too_many_internal_resets")
                r.bytes().await.expect("response body");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    t0.elapsed()
}

/// An HTTPS client that authenticates as user `bench-user` with a client certificate signed by
/// the cluster CA in `data`.
fn user_client(data: &std::path::Path) -> reqwest::Client {
    let ca_pem = std::fs::read_to_string(data.join("pki/ca.crt")).expect("ca");
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(data.join("pki/ca.key")).expect("ca key"),
    )
    .expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench-user");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca"))
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"))
        .build()
        .expect("client")
}

/// RBAC overhead: `rounds` rounds of `n` Secret creates then `n` gets at `conc` clients, as the
/// admin and as `bench-user` (bound to a Role allowing exactly that by a RoleBinding), the two
/// interleaved (ABBA order). Returns the admin's and the user's requests per second.
async fn rbac_overhead(
    s: &Server,
    data: &std::path::Path,
    rounds: usize,
    n: usize,
    conc: usize,
) -> (f64, f64) {
    let post = |path: &str, body: serde_json::Value| {
        s.http
            .post(format!("{}{path}", s.url))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
    };
    ns(s, "bench-rbac").await;
    let role = serde_json::json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"secret-writer"},
        "rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["create","get"]}]});
    let binding = serde_json::json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"bench-user"},
        "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"secret-writer"},
        "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"bench-user"}]});
    for (path, body) in [
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/bench-rbac/roles",
            role,
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/bench-rbac/rolebindings",
            binding,
        ),
    ] {
        let r = post(path, body).await.expect("rbac object");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let user = user_client(data);
    let (mut admin_t, mut user_t) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for as_user in order {
            let (http, token, who) = if as_user {
                (&user, None, "u")
            } else {
                (&s.http, Some(s.token.as_str()), "a")
            };
            let prefix = format!("{who}{round}-");
            let base = format!("{}/api/v1/namespaces/bench-rbac/secrets", s.url);
            let t = secret_load(http, token, &base, &prefix, n, conc, false).await
                + secret_load(http, token, &base, &prefix, n, conc, true).await;
            if as_user {
                user_t += t;
            } else {
                admin_t += t;
            }
        }
    }
    let ops = (rounds * n * 2) as f64;
    (ops / admin_t.as_secs_f64(), ops / user_t.as_secs_f64())
}

async fn watch_latency(s: &Server, watchers: usize, events: usize) -> f64 {
    use futures_util::StreamExt;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    for _ in 0..watchers {
        let r = s
            .http
            .get(format!(
                "{}/api/v1/namespaces/bench-w/configmaps?watch=1&resourceVersion=0",
                s.url
            ))
            .bearer_auth(&s.token)
            .send()
            .await
            .expect("watch");
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut st = r.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(b)) = st.next().await {
                buf.extend_from_slice(&b);
                while let Some(p) = buf.iter().position(|&c| c == b'\n') {
                    let line: Vec<u8> = buf.drain(..=p).collect();
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                        if let Some(n) = v["object"]["metadata"]["name"].as_str() {
                            let _ = tx.send((n.to_string(), Instant::now()));
                        }
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sent = std::collections::HashMap::new();
    let mut lats = vec![];
    for i in 0..events {
        let name = format!("w{i}");
        sent.insert(name.clone(), Instant::now());
        let body = serde_json::json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name},"data":{"a":"b"}});
        let _ = s
            .http
            .post(format!("{}/api/v1/namespaces/bench-w/configmaps", s.url))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while lats.len() < watchers * events && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some((n, at))) => {
                if let Some(t) = sent.get(&n) {
                    lats.push(at.duration_since(*t).as_secs_f64() * 1000.0);
                }
            }
            _ => break,
        }
    }
    if lats.is_empty() {
        return f64::NAN;
    }
    pct(&mut lats, 0.99)
}

/// etcd's own write ceiling: `n` puts of a Secret-sized value (the JSON the server stores for one
/// bench Secret is about 300 bytes) from `conc` concurrent tasks over one gRPC client.
async fn etcd_put_rate(url: &str, n: usize, conc: usize) -> f64 {
    let client = etcd_client::Client::connect([url], None)
        .await
        .expect("etcd client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let value = vec![b'x'; 300];
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..conc {
        let mut kv = client.kv_client();
        let next = next.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                kv.put(format!("/bench-raw/{i}"), value.clone(), None)
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

async fn ns(s: &Server, name: &str) {
    let body = serde_json::json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":name}});
    let _ = s
        .http
        .post(format!("{}/api/v1/namespaces", s.url))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .send()
        .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let mut backends = vec![("embedded (redb)".to_string(), String::new())];
    let work = tempfile::tempdir().expect("temp");
    // etcd (Debian etcd-server) when installed: one member on loopback, the testkit's starter
    let etcd = std::path::Path::new("/usr/bin/etcd")
        .exists()
        .then(|| kubepull_testkit::etcd::Etcd::start(1));
    if let Some(e) = &etcd {
        tokio::time::sleep(Duration::from_secs(2)).await;
        backends.push(("etcd 3.4 (1 member)".into(), e.urls[0].clone()));
    }
    println!("| datastore | ready, fresh dir | ready, existing dir | RSS idle | Secret creates/s (32 clients) | create p99 | RSS after 10k Secrets + 1k Pods | watch p99 (100 watchers) | store's own rate (32 clients) | RBAC user vs admin (create + get, 32 clients) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, (name, spec)) in backends.iter().enumerate() {
        let dir = work.path().join(format!("d{i}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let args: Vec<&str> = if spec.is_empty() {
            vec![]
        } else {
            vec!["--etcd-servers", spec]
        };
        let (s, fresh) = server::start(&kp, &dir, &dir.join("server.log"), &args).await;
        drop(s);
        let (s, again) = server::start(&kp, &dir, &dir.join("server.log"), &args).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = rss_mib(s.child.id());
        ns(&s, "bench").await;
        ns(&s, "bench-w").await;
        let (rate, p99) = create_many(&s, "bench", "secret", 10_000, 32).await;
        let _ = create_many(&s, "bench", "pod", 1_000, 32).await;
        let loaded = rss_mib(s.child.id());
        let w = watch_latency(&s, 100, 20).await;
        let own = if spec.is_empty() {
            "—".to_string()
        } else {
            // the server idles meanwhile; etcd's own put rate at the same concurrency
            let put = etcd_put_rate(spec, 10_000, 32).await;
            format!("{put:.0} puts/s (server at {:.2}×)", rate / put)
        };
        let (admin_rate, user_rate) = rbac_overhead(&s, &dir, 10, 1_000, 32).await;
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {idle:.1} MiB | {rate:.0} | {p99:.1} ms | {loaded:.1} MiB | {w:.1} ms | {own} | {user_rate:.0} vs {admin_rate:.0} req/s ({:+.1}% time) |",
            fresh.as_secs_f64() * 1000.0,
            again.as_secs_f64() * 1000.0,
            (admin_rate / user_rate - 1.0) * 100.0
        );
    }
    drop(etcd);
}
