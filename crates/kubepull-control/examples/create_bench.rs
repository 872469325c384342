//! Admission cost of a create: Secrets (and Pods) created through the API server's object layer
//! (decode, defaults, validation, encode, store write) without HTTP, on the embedded redb store
//! and on the in-memory store (which leaves the decode and admission work alone in the time).
//! 32 concurrent creators; rounds with `fieldValidation` Warn (unknown fields looked for), then
//! with Ignore; the median and best round are printed.
//!
//! `cargo run --release -p kubepull-control --example create_bench [CREATES_PER_ROUND] [ROUNDS]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use kubepull_control::objects::{Objects, User};
use kubepull_control::resources;
use kubepull_datastore::Datastore;
use serde_json::json;

/// Concurrent creators, as `api_bench`'s clients.
const CONCURRENCY: usize = 32;

/// `n` creates from `CONCURRENCY` tasks; microseconds of wall time per create.
async fn round(o: &Objects, kind: &str, start: usize, n: usize, warn: bool) -> f64 {
    let plural = if kind == "secret" { "secrets" } else { "pods" };
    let r = resources::find("", "v1", plural).expect("served");
    let next = Arc::new(AtomicUsize::new(start));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (o, next, kind) = (o.clone(), next.clone(), kind.to_string());
        tasks.spawn(kubepull_control::warnings::collect(async move {
            kubepull_control::warnings::set_warn_unknown_fields(warn);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= start + n {
                    return;
                }
                let body = if kind == "secret" {
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i}")},
                        "type": "Opaque", "data": {"k": "dmFsdWU="}})
                } else {
                    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}")},
                        "spec": {"containers": [{"name": "c", "image": "reg.example/app:v1"}]}})
                };
                o.create(r, "bench", body, &User::Admin, false)
                    .await
                    .expect("create");
            }
        }));
    }
    while tasks.join_next().await.is_some() {}
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

async fn bench(name: &str, store: Arc<dyn Datastore>, n: usize, rounds: usize) {
    let o = Objects::new(store);
    let nsr = resources::find("", "v1", "namespaces").expect("served");
    o.create(
        nsr,
        "",
        json!({"metadata": {"name": "bench"}}),
        &User::Admin,
        false,
    )
    .await
    .expect("namespace");
    let sar = resources::find("", "v1", "serviceaccounts").expect("served");
    let _ = o
        .create(
            sar,
            "bench",
            json!({"metadata": {"name": "default"}}),
            &User::Admin,
            false,
        )
        .await;
    for kind in ["secret", "pod"] {
        let mut next = 0;
        for (label, warn) in [("warn", true), ("ignore", false)] {
            let mut all = vec![];
            for _ in 0..rounds {
                all.push(round(&o, kind, next, n, warn).await);
                next += n;
            }
            all.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{name:6} {kind:6} {label:6} µs/create: median {:.1}, min {:.1} ({rounds} rounds of {n})",
                all[all.len() / 2],
                all[0]
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let redb =
        kubepull_datastore::redb_store::RedbStore::open(&dir.path().join("kp.redb")).expect("redb");
    bench("redb", Arc::new(redb), n, rounds).await;
    bench(
        "memory",
        Arc::new(kubepull_datastore::memory::MemoryStore::new()),
        n,
        rounds,
    )
    .await;
}
