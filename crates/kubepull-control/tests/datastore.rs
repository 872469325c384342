//! One conformance suite for every datastore backend: the in-process store, the embedded redb
//! file (including `kill -9` durability), and real etcd (one member, and three members with one
//! killed).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubepull_control::etcd_store::EtcdStore;
use kubepull_control::redb_store::RedbStore;
use kubepull_datastore::memory::MemoryStore;
use kubepull_datastore::{Datastore, Error, Event};
use kubepull_testkit::etcd::Etcd;

async fn next_event(w: &mut kubepull_datastore::Watch) -> Event {
    tokio::time::timeout(Duration::from_secs(10), w.events.recv())
        .await
        .expect("watch event in time")
        .expect("watch open")
        .expect("watch event")
}

/// The shared suite. Keys live under `ns` so one etcd cluster can run it more than once.
async fn conformance(s: &dyn Datastore, ns: &str) {
    let k = |x: &str| format!("/{ns}/registry/{x}");
    let r0 = s.current_revision().await.unwrap();
    let w_all = s.watch(&k("pods/"), r0).await;
    let mut w_all = w_all.unwrap();

    // create / get / AlreadyExists
    let r1 = s
        .create(&k("pods/default/a"), b"one".to_vec())
        .await
        .unwrap();
    assert!(r1 > r0);
    let got = s.get(&k("pods/default/a")).await.unwrap().unwrap();
    assert_eq!(got.value, b"one");
    assert_eq!((got.create_revision, got.mod_revision), (r1, r1));
    assert!(matches!(
        s.create(&k("pods/default/a"), b"x".to_vec()).await,
        Err(Error::AlreadyExists { .. })
    ));
    // arbitrary bytes and a large value
    let big = vec![0xffu8; 1 << 20];
    let r2 = s.create(&k("pods/default/ab"), big.clone()).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(
        s.get(&k("pods/default/ab")).await.unwrap().unwrap().value,
        big
    );
    // prefix boundaries: "default/" does not match "defaults/"
    s.create(&k("pods/defaults/x"), b"y".to_vec())
        .await
        .unwrap();
    s.create(&k("pods/kube-system/é"), b"u".to_vec())
        .await
        .unwrap();
    let l = s.list(&k("pods/default/"), None, 0, None).await.unwrap();
    assert_eq!(l.items.len(), 2);
    assert!(l.items[0].key < l.items[1].key);

    // update with CAS; create_revision kept
    let r3 = s
        .update(&k("pods/default/a"), b"two".to_vec(), r1)
        .await
        .unwrap();
    let got = s.get(&k("pods/default/a")).await.unwrap().unwrap();
    assert_eq!(
        (got.create_revision, got.mod_revision, got.value.as_slice()),
        (r1, r3, &b"two"[..])
    );
    match s.update(&k("pods/default/a"), b"stale".to_vec(), r1).await {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (r1, r3)),
        other => panic!("expected conflict, got {other:?}"),
    }
    assert!(matches!(
        s.update(&k("pods/default/none"), b"x".to_vec(), 1).await,
        Err(Error::NotFound { .. })
    ));

    // pagination
    let p1 = s.list(&k("pods/"), None, 2, None).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    assert!(p1.more);
    let p2 = s
        .list(&k("pods/"), Some(&p1.items[1].key), 10, None)
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 2);
    assert!(!p2.more);
    assert!(p2.items[0].key > p1.items[1].key);

    // delete with CAS
    assert!(matches!(
        s.delete(&k("pods/default/a"), Some(r1)).await,
        Err(Error::Conflict { .. })
    ));
    let (r4, prev) = s.delete(&k("pods/default/a"), Some(r3)).await.unwrap();
    assert!(r4 > r3);
    assert_eq!(prev.value, b"two");
    assert!(s.get(&k("pods/default/a")).await.unwrap().is_none());
    assert!(matches!(
        s.delete(&k("pods/default/a"), None).await,
        Err(Error::NotFound { .. })
    ));

    // the watch opened at r0 saw everything under pods/, in order
    let mut revs = vec![];
    let mut kinds = vec![];
    for _ in 0..6 {
        let e = next_event(&mut w_all).await;
        revs.push(e.revision());
        kinds.push(match &e {
            Event::Put { prev: None, .. } => "ADD",
            Event::Put { prev: Some(_), .. } => "MOD",
            Event::Delete { .. } => "DEL",
        });
    }
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");
    assert_eq!(kinds, ["ADD", "ADD", "ADD", "ADD", "MOD", "DEL"]);

    // a watch from the past replays, then goes live; other prefixes are filtered out
    let mut w = s.watch(&k("pods/default/"), r2).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(e.revision(), r3);
    let e = next_event(&mut w).await;
    assert_eq!(e.revision(), r4);
    s.create(&k("secrets/default/s"), b"s".to_vec())
        .await
        .unwrap();
    let r6 = s.create(&k("pods/default/c"), b"c".to_vec()).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(
        (e.revision(), e.key().ends_with("pods/default/c")),
        (r6, true)
    );

    // concurrent writers with CAS retry loops lose no update
    let key = k("counters/c");
    s.create(&key, b"0".to_vec()).await.unwrap();
    let mut tasks = vec![];
    for _ in 0..4 {
        let key = key.clone();
        tasks.push(async move {
            for _ in 0..10 {
                loop {
                    let cur = s.get(&key).await.unwrap().unwrap();
                    let n: u64 = String::from_utf8_lossy(&cur.value).parse().unwrap();
                    match s
                        .update(&key, (n + 1).to_string().into_bytes(), cur.mod_revision)
                        .await
                    {
                        Ok(_) => break,
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
    }
    futures_util::future::join_all(tasks).await;
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b"40");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    conformance(&MemoryStore::new(), "m").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state.redb");
    let rev = {
        let s = RedbStore::open(&p).unwrap();
        conformance(&s, "r").await;
        s.current_revision().await.unwrap()
    };
    let s = RedbStore::open(&p).unwrap();
    assert_eq!(s.current_revision().await.unwrap(), rev);
    assert_eq!(
        s.get("/r/registry/counters/c")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"40"
    );
    // history is not kept across a restart: an old watch is told to re-list
    assert!(matches!(
        s.watch("/r/", 1).await,
        Err(Error::Compacted { .. })
    ));
}

/// A child process writes as fast as it can, printing each acknowledged revision; it is killed
/// with SIGKILL; every acknowledged write is in the reopened file.
#[test]
fn redb_survives_kill_9() {
    if let Ok(path) = std::env::var("KUBEPULL_REDB_WRITER") {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = RedbStore::open(std::path::Path::new(&path)).unwrap();
            for i in 0.. {
                let r = s.create(&format!("/k/{i:08}"), vec![7; 100]).await.unwrap();
                println!("{i} {r}");
            }
        });
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "redb_survives_kill_9", "--nocapture"])
        .env("KUBEPULL_REDB_WRITER", &p)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut acked = String::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    use std::io::Read;
    while start.elapsed() < Duration::from_millis(1500) {
        let n = out.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        acked.push_str(&String::from_utf8_lossy(&buf[..n]));
        if acked.lines().count() > 50 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let last: Vec<(u64, u64)> = acked
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    assert!(!last.is_empty(), "the writer acknowledged nothing");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = RedbStore::open(&p).unwrap();
        for (i, r) in &last {
            let kv = s
                .get(&format!("/k/{i:08}"))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("write {i} (rev {r}) lost"));
            assert_eq!(kv.mod_revision, *r);
        }
        assert!(s.current_revision().await.unwrap() >= last.last().unwrap().1);
    });
}

async fn connect(spec: &str) -> EtcdStore {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match EtcdStore::connect(spec).await {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("etcd did not come up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_single_member() {
    let e = Etcd::start(1);
    let s = connect(&format!("etcd://{}", e.clients[0])).await;
    conformance(&s, "e1").await;
}

/// Three members; two API-server-like clients see each other's writes through watches; one
/// member is killed and writes go on through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three_members_one_killed() {
    let mut e = Etcd::start(3);
    let spec = format!("etcd://{}", e.clients.join(","));
    let a = Arc::new(connect(&spec).await);
    // the second client lists the members in another order
    let mut rev: Vec<String> = e.clients.clone();
    rev.reverse();
    let b = connect(&format!("etcd://{}", rev.join(","))).await;
    let r0 = b.current_revision().await.unwrap();
    let mut w = b.watch("/x/", r0).await.unwrap();
    let r1 = a.create("/x/one", b"1".to_vec()).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision(), r1);
    // kill the member both clients try first
    e.kill(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let r2 = loop {
        match a.create("/x/two", b"2".to_vec()).await {
            Ok(r) => break r,
            // an attempt that timed out during the leader election may have been applied
            Err(Error::AlreadyExists { .. }) => {
                break a.get("/x/two").await.unwrap().unwrap().mod_revision
            }
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(err) => panic!("writes did not resume: {err}"),
        }
    };
    assert!(r2 > r1);
    assert_eq!(b.get("/x/two").await.unwrap().unwrap().mod_revision, r2);
    // the watch goes on: if its stream was on the killed member it resumes on another one
    let e2 = next_event(&mut w).await;
    assert_eq!((e2.revision(), e2.key()), (r2, "/x/two"));
    conformance(a.as_ref(), "e3").await;
}

fn kubectl(kubeconfig: &std::path::Path, home: &std::path::Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_run(kubeconfig, home, args, None);
    assert!(ok, "kubectl {args:?}: {err}");
    out
}

/// kubectl with `stdin`: success, stdout, stderr.
fn kubectl_run(
    kubeconfig: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut c = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(s) = stdin {
        c.stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("stdin");
    }
    drop(c.stdin.take());
    let o = c.wait_with_output().expect("kubectl");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Two API servers on one etcd cluster: what kubectl writes through one, kubectl reads through
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_servers_share_one_etcd() {
    let e = Etcd::start(1);
    let spec = format!("etcd://{}", e.clients[0]);
    let _ = connect(&spec).await;
    let d = tempfile::tempdir().unwrap();
    let mk = |name: &str, controllers: bool| kubepull_control::ServerConfig {
        data_dir: d.path().join(name),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: spec.clone(),
        controllers,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
    };
    let a = kubepull_control::start(mk("a", true)).await.unwrap();
    let b = kubepull_control::start(mk("b", false)).await.unwrap();
    let (ka, kb, home) = (
        a.kubeconfig_path(),
        b.kubeconfig_path(),
        d.path().to_path_buf(),
    );
    let out = tokio::task::spawn_blocking(move || {
        kubectl(&ka, &home, &["create", "namespace", "shared"]);
        kubectl(
            &ka,
            &home,
            &[
                "create",
                "secret",
                "docker-registry",
                "regcred",
                "--docker-server=r.example",
                "--docker-username=u",
                "--docker-password=p",
                "-n",
                "shared",
            ],
        );
        kubectl(&kb, &home, &["get", "secrets", "-n", "shared"])
    })
    .await
    .unwrap();
    assert!(
        out.contains("regcred") && out.contains("kubernetes.io/dockerconfigjson"),
        "{out}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer, default: 1}}}
";

/// A CRD created through one API server is served by the other (it follows CRD changes in
/// etcd), its objects are shared, survive a restart on etcd, and go with the CRD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_across_api_servers_on_etcd() {
    let e = Etcd::start(1);
    let spec = format!("etcd://{}", e.clients[0]);
    let _ = connect(&spec).await;
    let d = tempfile::tempdir().unwrap();
    let mk = |name: &str| kubepull_control::ServerConfig {
        data_dir: d.path().join(name),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: spec.clone(),
        controllers: false,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
    };
    let a = kubepull_control::start(mk("a")).await.unwrap();
    let b = kubepull_control::start(mk("b")).await.unwrap();
    let (ka, kb, home) = (
        a.kubeconfig_path(),
        b.kubeconfig_path(),
        d.path().to_path_buf(),
    );
    // the CRD through a; b serves it once its CRD watch has seen it
    let crd = d.path().join("crd.yaml");
    std::fs::write(&crd, WIDGET_CRD).unwrap();
    let (ka2, kb2, home2) = (ka.clone(), kb.clone(), home.clone());
    tokio::task::spawn_blocking(move || {
        let out = kubectl(&ka2, &home2, &["apply", "-f", crd.to_str().unwrap()]);
        assert!(out.contains("created"), "{out}");
        let served = |k: &std::path::Path| {
            kubectl_run(k, &home2, &["get", "--raw", "/apis/example.com/v1/widgets"], None).1.contains("WidgetList")
        };
        let mut tries = 0;
        while !served(&kb2) {
            tries += 1;
            assert!(tries < 100, "b never served the CRD created through a");
            std::thread::sleep(Duration::from_millis(100));
        }
        kubectl(&kb2, &home2, &["create", "namespace", "w"]);
        let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: w}\nspec: {}\n";
        let (ok, out, err) = kubectl_run(&kb2, &home2, &["create", "-f", "-"], Some(w));
        assert!(ok && out.contains("widget.example.com/w1 created"), "{out}{err}");
        let out = kubectl(&ka2, &home2, &["get", "widget", "w1", "-n", "w", "-o", "jsonpath={.spec.size}"]);
        assert_eq!(out.trim(), "1", "defaulted, and visible through a");
    })
    .await
    .unwrap();
    // a restart on etcd keeps the CRD and its object
    a.shutdown().await;
    let a = kubepull_control::start(mk("a")).await.unwrap();
    let ka = a.kubeconfig_path();
    let (ka2, kb2, home2) = (ka.clone(), kb.clone(), home.clone());
    tokio::task::spawn_blocking(move || {
        let out = kubectl(
            &ka2,
            &home2,
            &["get", "widget", "w1", "-n", "w", "-o", "name"],
        );
        assert_eq!(out.trim(), "widget.example.com/w1");
        // deleting the CRD through b: a stops serving it, the object is gone
        let out = kubectl(&kb2, &home2, &["delete", "crd", "widgets.example.com"]);
        assert!(out.contains("deleted"), "{out}");
        let mut tries = 0;
        while !kubectl_run(
            &ka2,
            &home2,
            &["get", "--raw", "/apis/example.com/v1/widgets"],
            None,
        )
        .2
        .contains("NotFound")
        {
            tries += 1;
            assert!(tries < 100, "a still serves the deleted CRD");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let left = connect(&spec)
        .await
        .list("/registry/example.com/", None, 10, None)
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "objects left: {:?}",
        left.items.iter().map(|kv| &kv.key).collect::<Vec<_>>()
    );
    a.shutdown().await;
    b.shutdown().await;
}

mod common;

/// The API server on etcd with TLS client certificates and a short compaction interval: a watch
/// from a resourceVersion the compactor has dropped is `410 Expired` for kubectl, and a new list
/// works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_from_a_compacted_revision_is_gone() {
    use kubepull_datastore::etcd_store::EtcdOptions;
    use kubepull_testkit::etcd::EtcdTls;
    let (ca, cert, key, (ccert, ckey)) = kubepull_testkit::registry::tls_material_with_client();
    let e = Etcd::start_with(
        1,
        Some(&EtcdTls {
            cert,
            key,
            client_ca: Some(ca.clone()),
        }),
    );
    let d = tempfile::tempdir().unwrap();
    let w = |n: &str, pem: &str| {
        let p = d.path().join(n);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let opts = EtcdOptions {
        ca_file: Some(w("ca.crt", &ca)),
        cert_file: Some(w("c.crt", &ccert)),
        key_file: Some(w("c.key", &ckey)),
        compaction_interval: Duration::from_millis(300),
        ..EtcdOptions::with_servers(&e.urls.join(","))
    };
    let probe = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = EtcdOptions {
                compaction_interval: Duration::ZERO,
                ..opts.clone()
            };
            match EtcdStore::connect_with(&o).await {
                Ok(s) => break s,
                Err(err) if Instant::now() > deadline => panic!("etcd did not come up: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    };
    let cfg = common::server_config(d.path(), false);
    let store =
        kubepull_control::open_store(&kubepull_datastore::StoreConfig::Etcd(opts), &cfg.data_dir)
            .await
            .unwrap();
    let server = kubepull_control::start_with_store(cfg, store)
        .await
        .unwrap();
    let (kc, home) = (server.kubeconfig_path(), d.path().to_path_buf());
    let run = move |args: Vec<String>| {
        let (kc, home) = (kc.clone(), home.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                common::kubectl(&kc, &home, &a, None)
            })
            .await
            .unwrap()
        }
    };
    let (ok, out) = run(vec![
        "create".into(),
        "secret".into(),
        "generic".into(),
        "s1".into(),
        "--from-literal=k=v".into(),
        "-o".into(),
        "jsonpath={.metadata.resourceVersion}".into(),
    ])
    .await;
    assert!(ok, "{out}");
    let rv: u64 = out.trim().parse().unwrap();
    // wait for the compactor to pass rv + 1, the first revision a watch from rv needs (it
    // compacts to the revision seen one interval earlier)
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(
        probe
            .list("/registry/secrets/", None, 0, Some(rv + 1))
            .await,
        Err(Error::Compacted { .. })
    ) {
        assert!(Instant::now() < deadline, "no compaction");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out) = run(vec![
        "get".into(),
        "--request-timeout=20s".into(),
        "--raw".into(),
        format!("/api/v1/namespaces/default/secrets?watch=1&resourceVersion={rv}"),
    ])
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("Expired") && out.contains("too old resource version"),
        "{out}"
    );
    let (ok, out) = run(vec![
        "get".into(),
        "secrets".into(),
        "-o".into(),
        "name".into(),
    ])
    .await;
    assert!(ok && out.contains("secret/s1"), "{out}");
    server.shutdown().await;
}
