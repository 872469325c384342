//! API server benchmark: `kubepull server` started as a process (embedded redb, and etcd when
//! `/usr/bin/etcd` exists): time to ready on a fresh and on an existing data dir, RSS idle and
//! after 10,000 Secrets and 1,000 Pods, create throughput and p99 latency at 32 concurrent
//! clients, watch delivery p99 with 100 watchers. For etcd, etcd's own ceiling on this machine is
//! measured in the same run: raw gRPC puts of Secret-sized values at the same concurrency, one
//! client (the server's own etcd client crate), printed beside the server's rate. RBAC overhead:
//! the same Secret create + get load as the admin and as a user bound by a RoleBinding (a client
//! certificate of the cluster CA), in alternating rounds of the same run: the median and spread
//! of the per-round ratios, of wall time and of the server's CPU time per request (from
//! `/proc/PID/stat` and the threads' scheduler counters around each phase).
//!
//! Environment: `KUBEPULL_BENCH_ONLY=rbac` runs only the RBAC comparison (with the per-round
//! table); `KUBEPULL_BENCH_BACKEND=redb|etcd` picks one datastore; `KUBEPULL_BENCH_ROUNDS` and
//! `KUBEPULL_BENCH_N` set the RBAC rounds (default 10, 20 with `ONLY=rbac`) and requests per
//! phase (1,000 creates then 1,000 gets); `KUBEPULL_BENCH_PERF=PREFIX` records the server
//! (`perf record --call-graph dwarf -p PID`) during the first round's admin and user phases into
//! `PREFIX.admin.data` and `PREFIX.user.data`.
//!
//! Run: `cargo run --release -p kubepull --example api_bench` (scripts/bench-api.sh; `rbac` as
//! its argument for the RBAC comparison alone).

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/proc.rs"]
mod proc;
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
                // read the body (as `secret_load` does): the latency is the whole response's,
                // and the connection goes on with no stream reset
                r.bytes().await.expect("response body");
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

/// One phase of the RBAC comparison: wall time and the server's CPU time (coarse from
/// `/proc/PID/stat`, fine from the threads' scheduler counters).
#[derive(Clone, Copy, Default)]
struct Phase {
    wall: f64,
    cpu: f64,
    cpu_fine: f64,
}

/// The RBAC comparison's result: per round, the admin's phase and the user's.
struct RbacRounds {
    requests_per_phase: usize,
    rounds: Vec<(Phase, Phase)>,
}

/// The median and the spread (min, quartiles, max) of `v`, each interpolated between the two
/// nearest values (the median of an even count is the mean of the middle two).
fn spread(v: &[f64]) -> [f64; 5] {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    [0.0, 0.25, 0.5, 0.75, 1.0].map(|p| {
        let at = (v.len() as f64 - 1.0) * p;
        let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
    })
}

impl RbacRounds {
    /// Per round, `f(user) / f(admin) - 1`, in percent.
    fn ratios(&self, f: impl Fn(&Phase) -> f64) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|(a, u)| (f(u) / f(a) - 1.0) * 100.0)
            .collect()
    }

    /// Per round, `f` of the admin's or the user's phase per request, in µs.
    fn per_request(&self, user: bool, f: impl Fn(&Phase) -> f64) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|(a, u)| f(if user { u } else { a }) / self.requests_per_phase as f64 * 1e6)
            .collect()
    }

    /// One cell: median user vs admin CPU and wall per request, and the ratios' medians.
    fn summary(&self) -> String {
        let med = |v: Vec<f64>| spread(&v)[2];
        format!(
            "CPU {:.0} vs {:.0} µs/req ({:+.1}%), wall {:+.1}% (medians of {} rounds)",
            med(self.per_request(true, |p| p.cpu_fine)),
            med(self.per_request(false, |p| p.cpu_fine)),
            med(self.ratios(|p| p.cpu_fine)),
            med(self.ratios(|p| p.wall)),
            self.rounds.len()
        )
    }

    /// The per-round table and the spread of each figure.
    fn print_details(&self, backend: &str) {
        println!();
        println!("RBAC user vs admin, {backend}: {} requests per phase (creates then gets, 32 clients), server CPU and wall per request (µs)", self.requests_per_phase);
        println!("| round | admin CPU | user CPU | CPU ratio | admin CPU (stat) | user CPU (stat) | admin wall | user wall | wall ratio |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let per = |v: f64| v / self.requests_per_phase as f64 * 1e6;
        for (i, (a, u)) in self.rounds.iter().enumerate() {
            println!(
                "| {i} | {:.1} | {:.1} | {:+.1}% | {:.1} | {:.1} | {:.1} | {:.1} | {:+.1}% |",
                per(a.cpu_fine),
                per(u.cpu_fine),
                (u.cpu_fine / a.cpu_fine - 1.0) * 100.0,
                per(a.cpu),
                per(u.cpu),
                per(a.wall),
                per(u.wall),
                (u.wall / a.wall - 1.0) * 100.0
            );
        }
        println!("| figure | min | 25% | median | 75% | max |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        let row = |name: &str, v: Vec<f64>, ratio: bool| {
            let s = spread(&v).map(|x| {
                if ratio {
                    format!("{x:+.1}%")
                } else {
                    format!("{x:.1}")
                }
            });
            println!("| {name} | {} |", s.join(" | "));
        };
        row(
            "user/admin CPU per request (threads)",
            self.ratios(|p| p.cpu_fine),
            true,
        );
        row(
            "user/admin CPU per request (stat)",
            self.ratios(|p| p.cpu),
            true,
        );
        row("user/admin wall", self.ratios(|p| p.wall), true);
        row(
            "admin CPU µs/req",
            self.per_request(false, |p| p.cpu_fine),
            false,
        );
        row(
            "user CPU µs/req",
            self.per_request(true, |p| p.cpu_fine),
            false,
        );
        row(
            "admin wall µs/req",
            self.per_request(false, |p| p.wall),
            false,
        );
        row(
            "user wall µs/req",
            self.per_request(true, |p| p.wall),
            false,
        );
    }
}

/// `perf record` of process `pid` into `out` (call graphs from DWARF unwinding: a release build
/// keeps no frame pointers) until the returned child is interrupted.
fn perf_record(pid: u32, out: &str) -> std::process::Child {
    std::process::Command::new("perf")
        .args([
            "record",
            "--call-graph",
            "dwarf,16384",
            "-F",
            "999",
            "-p",
            &pid.to_string(),
            "-o",
            out,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("perf record")
}

fn perf_stop(mut p: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &p.id().to_string()])
        .status();
    let _ = p.wait();
}

/// RBAC overhead: `rounds` rounds of `n` Secret creates then `n` gets at `conc` clients, as the
/// admin and as `bench-user` (bound to a Role allowing exactly that by a RoleBinding), the two
/// interleaved (ABBA order), each phase with its wall time and the server's CPU time.
async fn rbac_overhead(
    s: &Server,
    data: &std::path::Path,
    rounds: usize,
    n: usize,
    conc: usize,
) -> RbacRounds {
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
        let r = s.post(path, body).await.expect("rbac object");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let user = user_client(data);
    let pid = s.child.id();
    let perf = std::env::var("KUBEPULL_BENCH_PERF").ok();
    let base = format!("{}/api/v1/namespaces/bench-rbac/secrets", s.url);
    // one unmeasured round each first: connections, caches, the allocator's pools
    for (http, token, who) in [(&s.http, Some(s.token.as_str()), "wa"), (&user, None, "wu")] {
        secret_load(http, token, &base, who, n / 10, conc, false).await;
        secret_load(http, token, &base, who, n / 10, conc, true).await;
    }
    let mut out = RbacRounds {
        requests_per_phase: 2 * n,
        rounds: vec![],
    };
    for round in 0..rounds {
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = (Phase::default(), Phase::default());
        for as_user in order {
            let (http, token, who) = if as_user {
                (&user, None, "u")
            } else {
                (&s.http, Some(s.token.as_str()), "a")
            };
            let prefix = format!("{who}{round}-");
            let recording = match (&perf, round) {
                (Some(p), 0) => Some(perf_record(
                    pid,
                    &format!("{p}.{}.data", if as_user { "user" } else { "admin" }),
                )),
                _ => None,
            };
            if recording.is_some() {
                // perf attaches to the threads before the phase starts
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let (c0, f0) = (proc::cpu_secs(pid), proc::cpu_secs_fine(pid));
            let t = secret_load(http, token, &base, &prefix, n, conc, false).await
                + secret_load(http, token, &base, &prefix, n, conc, true).await;
            let phase = Phase {
                wall: t.as_secs_f64(),
                cpu: proc::cpu_secs(pid) - c0,
                cpu_fine: proc::cpu_secs_fine(pid) - f0,
            };
            if let Some(p) = recording {
                perf_stop(p);
            }
            if as_user {
                pair.1 = phase;
            } else {
                pair.0 = phase;
            }
        }
        out.rounds.push(pair);
    }
    out
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
    let _ = s.post("/api/v1/namespaces", body).await;
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let rbac_only = std::env::var("KUBEPULL_BENCH_ONLY").is_ok_and(|v| v == "rbac");
    let only_backend = std::env::var("KUBEPULL_BENCH_BACKEND").ok();
    let rounds = env_usize("KUBEPULL_BENCH_ROUNDS").unwrap_or(if rbac_only { 20 } else { 10 });
    let n = env_usize("KUBEPULL_BENCH_N").unwrap_or(1_000);
    let mut backends = vec![];
    if only_backend.as_deref().is_none_or(|b| b == "redb") {
        backends.push(("embedded (redb)".to_string(), String::new()));
    }
    let work = tempfile::tempdir().expect("temp");
    // etcd (Debian etcd-server, or the binary KUBEPULL_ETCD names) when it runs: one member on
    // loopback, the testkit's starter
    let etcd_version = kubepull_testkit::etcd::etcd_version();
    let etcd = (etcd_version.is_some() && only_backend.as_deref().is_none_or(|b| b == "etcd"))
        .then(|| kubepull_testkit::etcd::Etcd::start(1));
    if let (Some(e), Some(v)) = (&etcd, &etcd_version) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        backends.push((format!("etcd {v} (1 member)"), e.urls[0].clone()));
    }
    if rbac_only {
        println!("| datastore | RBAC user vs admin (create + get, 32 clients) |");
        println!("| --- | ---: |");
    } else {
        println!("| datastore | ready, fresh dir | ready, existing dir | RSS idle | Secret creates/s (32 clients) | create p99 | RSS after 10k Secrets + 1k Pods | watch p99 (100 watchers) | store's own rate (32 clients) | RBAC user vs admin (create + get, 32 clients) |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    }
    let mut details = vec![];
    for (i, (name, spec)) in backends.iter().enumerate() {
        let dir = work.path().join(format!("d{i}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let args: Vec<&str> = if spec.is_empty() {
            vec![]
        } else {
            vec!["--etcd-servers", spec]
        };
        if rbac_only {
            let (s, _) = server::start(&kp, &dir, &dir.join("server.log"), &args).await;
            let r = rbac_overhead(&s, &dir, rounds, n, 32).await;
            println!("| {name} | {} |", r.summary());
            details.push((name.clone(), r));
            continue;
        }
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
        let r = rbac_overhead(&s, &dir, rounds, n, 32).await;
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {idle:.1} MiB | {rate:.0} | {p99:.1} ms | {loaded:.1} MiB | {w:.1} ms | {own} | {} |",
            fresh.as_secs_f64() * 1000.0,
            again.as_secs_f64() * 1000.0,
            r.summary()
        );
        details.push((name.clone(), r));
    }
    for (name, r) in &details {
        r.print_details(name);
    }
    drop(etcd);
}
