//! Where a Secret create through `kubepull server --etcd-servers` spends its time, against etcd's
//! own rate, in one run: one etcd member on loopback and one server on it, then rounds of
//! interleaved phases at the same concurrency (32 unless `KUBEPULL_BENCH_CONC` says otherwise):
//!
//! - `etcd put`: raw gRPC puts of a Secret-sized value (etcd's ceiling here);
//! - `etcd txn`: the create transaction the store sends (`create_revision == 0` then put), raw;
//! - `store create`: `EtcdStore::create` in this process (the store's client path, no server);
//! - `server create`: Secret creates through the server (HTTPS, HTTP/2, JSON, admission, store).
//!
//! The phases alternate (ABCD DCBA …) so a machine busy with other work slows all of them alike.
//! It prints each phase's rate and its ratio to `etcd put`, and the etcd requests the server sent
//! per create (from etcd's `/metrics`). With `KUBEPULL_BENCH_PERF=FILE`, the server create phase
//! of the first round is recorded system-wide with `perf record -a -g` into FILE (the report
//! splits the CPU time by process: server, etcd, this client).
//!
//! Run: `scripts/bench-api.sh etcd`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubepull_datastore::Datastore;

#[path = "common/proc.rs"]
mod proc;
#[path = "common/server.rs"]
mod server;
use proc::cpu_secs;

/// Runs `op(i)` for i in `0..n` from `conc` tasks; the rate per second.
async fn drive<F, Fut>(n: usize, conc: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// The pid of the etcd process serving client address `addr` (`127.0.0.1:PORT`).
fn etcd_pid(addr: &str) -> u32 {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            let argv0 = cmd.split('\0').next().unwrap_or_default();
            (argv0 == "etcd" || argv0.ends_with("/etcd")) && cmd.contains(&format!("://{addr}\0"))
        })
        .expect("etcd process")
}

/// The value of one of etcd's counters summed over the label sets whose text contains `filter`.
async fn metric(http: &reqwest::Client, url: &str, name: &str, filter: &str) -> f64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("etcd metrics")
        .text()
        .await
        .expect("etcd metrics body");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Put,
    Txn,
    Store,
    Server,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Put => "etcd put (raw)",
            Phase::Txn => "etcd create txn (raw)",
            Phase::Store => "EtcdStore::create (in process)",
            Phase::Server => "server Secret create (HTTPS)",
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let conc: usize = std::env::var("KUBEPULL_BENCH_CONC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let rounds: usize = std::env::var("KUBEPULL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let n: usize = 4_000;
    let perf_out = std::env::var("KUBEPULL_BENCH_PERF").ok();
    let etcd = kubepull_testkit::etcd::Etcd::start(1);
    let url = etcd.urls[0].clone();
    let client = loop {
        if let Ok(c) = etcd_client::Client::connect([url.as_str()], None).await {
            if c.clone().status().await.is_ok() {
                break c;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let store = Arc::new(
        kubepull_datastore::etcd_store::EtcdStore::connect(&url)
            .await
            .expect("etcd store"),
    );
    let work = tempfile::tempdir().expect("temp");
    let (s, _) = server::start(
        &kp,
        work.path(),
        &work.path().join("server.log"),
        &["--etcd-servers", &url],
    )
    .await;
    let plain = reqwest::Client::new();
    let r = s
        .post(
            "/api/v1/namespaces",
            serde_json::json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}),
        )
        .await
        .expect("namespace");
    assert!(r.status().is_success(), "namespace: {}", r.status());
    // the value the server stores for one bench Secret is about 300 bytes
    let value = vec![b'x'; 300];
    let order = [Phase::Put, Phase::Txn, Phase::Store, Phase::Server];
    let pids = [
        ("server", s.child.id()),
        ("etcd", etcd_pid(&etcd.clients[0])),
        ("client", std::process::id()),
    ];
    println!(
        "etcd {} ({}); concurrency {conc}",
        kubepull_testkit::etcd::etcd_version().unwrap_or_default(),
        kubepull_testkit::etcd::etcd_bin()
    );
    println!("pids: {}", pids.map(|(n, p)| format!("{n} {p}")).join(", "));
    // CPU seconds per phase and process, summed over the rounds
    let mut cpu = [[0f64; 3]; 4];
    let mut totals = [0f64; 4];
    let mut server_reqs = 0f64;
    println!("| round | {} |", order.map(Phase::name).join(" | "));
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for round in 0..rounds {
        let mut phases = order;
        if round % 2 == 1 {
            phases.reverse();
        }
        let mut rates = [0f64; 4];
        for p in phases {
            let tag = format!("r{round}");
            let cpu0 = pids.map(|(_, pid)| cpu_secs(pid));
            let rate = match p {
                Phase::Put => {
                    let (kv, value) = (client.kv_client(), value.clone());
                    drive(n, conc, move |i| {
                        let (mut kv, value, key) =
                            (kv.clone(), value.clone(), format!("/raw/put/{tag}/{i}"));
                        async move {
                            kv.put(key, value, None).await.expect("put");
                        }
                    })
                    .await
                }
                Phase::Txn => {
                    let (kv, value) = (client.kv_client(), value.clone());
                    drive(n, conc, move |i| {
                        let (mut kv, value, key) =
                            (kv.clone(), value.clone(), format!("/raw/txn/{tag}/{i}"));
                        async move {
                            use etcd_client::{Compare, CompareOp, Txn, TxnOp};
                            let t = Txn::new()
                                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                                .and_then([TxnOp::put(key, value, None)]);
                            assert!(kv.txn(t).await.expect("txn").succeeded());
                        }
                    })
                    .await
                }
                Phase::Store => {
                    let (store, value) = (store.clone(), value.clone());
                    drive(n, conc, move |i| {
                        let (store, value, key) = (
                            store.clone(),
                            value.clone(),
                            format!("/registry/raw/store/{tag}/{i}"),
                        );
                        async move {
                            store.create(&key, value).await.expect("store create");
                        }
                    })
                    .await
                }
                Phase::Server => {
                    let before = metric(&plain, &url, "grpc_server_handled_total", "KV").await;
                    let perf = match (&perf_out, round) {
                        (Some(f), 0) => Some(
                            std::process::Command::new("perf")
                                .args(["record", "-a", "-g", "-F", "499", "-o", f])
                                .stdout(std::process::Stdio::null())
                                .stderr(std::process::Stdio::null())
                                .spawn()
                                .expect("perf record"),
                        ),
                        _ => None,
                    };
                    let (http, base, token) = (
                        s.http.clone(),
                        format!("{}/api/v1/namespaces/bench/secrets", s.url),
                        s.token.clone(),
                    );
                    let rate = drive(n, conc, move |i| {
                        let body = serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":format!("s{tag}-{i}")},"type":"Opaque","data":{"k":"dmFsdWU="}});
                        let req = http
                            .post(&base)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(serde_json::to_vec(&body).unwrap_or_default());
                        async move {
                            let r = req.send().await.expect("create");
                            assert!(r.status().is_success(), "create: {}", r.status());
                            r.bytes().await.expect("response body");
                        }
                    })
                    .await;
                    if let Some(mut p) = perf {
                        let _ = std::process::Command::new("kill")
                            .args(["-INT", &p.id().to_string()])
                            .status();
                        let _ = p.wait();
                    }
                    let after = metric(&plain, &url, "grpc_server_handled_total", "KV").await;
                    server_reqs += after - before;
                    rate
                }
            };
            let at = order.iter().position(|q| *q == p).unwrap_or(0);
            rates[at] = rate;
            for (k, (_, pid)) in pids.iter().enumerate() {
                cpu[at][k] += cpu_secs(*pid) - cpu0[k];
            }
        }
        for (t, r) in totals.iter_mut().zip(rates) {
            *t += r;
        }
        println!(
            "| {round} | {} |",
            rates
                .iter()
                .map(|r| format!("{r:.0}/s ({:.2}×)", r / rates[0]))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    println!(
        "| mean | {} |",
        totals
            .iter()
            .map(|r| format!("{:.0}/s ({:.2}×)", r / rounds as f64, r / totals[0]))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!();
    println!("CPU time per operation (µs; the machine has 2 cores, shared):");
    println!("| phase | {} | total |", pids.map(|(n, _)| n).join(" | "));
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (at, p) in order.iter().enumerate() {
        let per: Vec<f64> = cpu[at]
            .iter()
            .map(|c| c / (rounds * n) as f64 * 1e6)
            .collect();
        println!(
            "| {} | {} | {:.0} |",
            p.name(),
            per.iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(" | "),
            per.iter().sum::<f64>()
        );
    }
    println!(
        "etcd KV requests per server create: {:.2}",
        server_reqs / (rounds * n) as f64
    );
    drop(s);
    drop(etcd);
}
