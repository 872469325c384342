//! The etcd backend against the real Debian etcd (`/usr/bin/etcd`) on loopback: client TLS with
//! client-certificate authentication, user/password authentication, `--etcd-prefix`, compaction
//! (a watch behind a compaction ends with `Compacted`, a re-list works), and the errors a user
//! sees for a wrong CA, a missing client certificate, a wrong password and etcd down (naming the
//! flag to fix, never the password).

use std::path::Path;
use std::time::{Duration, Instant};

use kubepull_datastore::etcd_store::{EtcdOptions, EtcdStore, Password};
use kubepull_datastore::{Datastore, Error, Event};
use kubepull_testkit::etcd::{Etcd, EtcdTls};

async fn next_event(w: &mut kubepull_datastore::Watch) -> kubepull_datastore::Result<Event> {
    tokio::time::timeout(Duration::from_secs(20), w.events.recv())
        .await
        .expect("watch event in time")
        .expect("watch open")
}

/// Connects, retrying while etcd starts (it takes a moment to elect a leader).
async fn connect(o: &EtcdOptions) -> EtcdStore {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match EtcdStore::connect_with(o).await {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("etcd did not come up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until etcd answers plain requests at `urls` (before testing errors against it).
async fn wait_up(urls: &[String], o: impl Fn() -> EtcdOptions) {
    let _ = urls;
    drop(connect(&o()).await);
}

fn write(dir: &Path, name: &str, pem: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

/// A few writes, a list and a watch through `s`.
async fn smoke(s: &EtcdStore) {
    let r0 = s.current_revision().await.unwrap();
    let mut w = s.watch("/registry/secrets/", r0).await.unwrap();
    let r1 = s
        .create("/registry/secrets/default/a", b"1".to_vec())
        .await
        .unwrap();
    let r2 = s
        .update("/registry/secrets/default/a", b"2".to_vec(), r1)
        .await
        .unwrap();
    let l = s.list("/registry/secrets/", None, 0, None).await.unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(l.items[0].value, b"2");
    assert_eq!(next_event(&mut w).await.unwrap().revision(), r1);
    assert_eq!(next_event(&mut w).await.unwrap().revision(), r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
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
    let ok = EtcdOptions {
        ca_file: Some(write(d.path(), "ca.crt", &ca)),
        cert_file: Some(write(d.path(), "client.crt", &ccert)),
        key_file: Some(write(d.path(), "client.key", &ckey)),
        compaction_interval: Duration::ZERO,
        ..EtcdOptions::with_servers(&e.clients.join(","))
    };
    assert!(ok.servers.iter().all(|s| !s.contains("://")));
    let s = connect(&ok).await;
    smoke(&s).await;

    // another CA: the server is not trusted, and the message names --etcd-cafile
    let (other_ca, _, _) = kubepull_testkit::registry::tls_material();
    let wrong_ca = EtcdOptions {
        ca_file: Some(write(d.path(), "other.crt", &other_ca)),
        ..ok.clone()
    };
    let err = EtcdStore::connect_with(&wrong_ca).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("--etcd-cafile"), "{err}");

    // no client certificate: etcd refuses the handshake; the message names --etcd-certfile
    let no_cert = EtcdOptions {
        cert_file: None,
        key_file: None,
        ..ok.clone()
    };
    let err = EtcdStore::connect_with(&no_cert).await.unwrap_err();
    assert!(err.to_string().contains("--etcd-certfile"), "{err}");

    // plain http against the TLS port is refused up front when TLS files are given
    let http = EtcdOptions {
        servers: vec![format!("http://{}", e.clients[0])],
        ..ok.clone()
    };
    let err = EtcdStore::connect_with(&http).await.unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication_and_prefix() {
    let e = Etcd::start(1);
    let plain = || EtcdOptions {
        compaction_interval: Duration::ZERO,
        ..EtcdOptions::with_servers(&e.clients.join(","))
    };
    wait_up(&e.urls, plain).await;
    // users and roles as an etcd operator would set them up, then authentication on
    let mut admin = etcd_client::Client::connect(e.urls.clone(), None)
        .await
        .unwrap();
    admin.user_add("root", "root-pw-91", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.role_add("kubepull").await.unwrap();
    for p in [
        etcd_client::Permission::read_write("/kp-a/").with_prefix(),
        etcd_client::Permission::read_write("compact_rev_key"),
    ] {
        admin.role_grant_permission("kubepull", p).await.unwrap();
    }
    admin
        .user_add("kp", "correct-horse-7731", None)
        .await
        .unwrap();
    admin.user_grant_role("kp", "kubepull").await.unwrap();
    admin.auth_enable().await.unwrap();

    let ok = EtcdOptions {
        username: Some("kp".into()),
        password: Some(Password::new("correct-horse-7731")),
        prefix: "/kp-a".into(),
        ..plain()
    };
    let s = connect(&ok).await;
    smoke(&s).await;
    // nothing of ours prints the password: the options, the storage config, the connected store
    // (etcd-client's own options type would: it is never kept nor printed)
    for shown in [
        format!("{ok:?}"),
        format!("{:?}", kubepull_datastore::StoreConfig::Etcd(ok.clone())),
        format!("{s:?}"),
    ] {
        assert!(!shown.contains("correct-horse-7731"), "{shown}");
    }
    assert!(format!("{ok:?}").contains("<redacted>"));
    // the keys are under --etcd-prefix in etcd, and come back as /registry/... keys
    let root = etcd_client::Client::connect(
        e.urls.clone(),
        Some(etcd_client::ConnectOptions::new().with_user("root", "root-pw-91")),
    )
    .await
    .unwrap();
    let mut kv = root.kv_client();
    let got = kv.get("/kp-a/secrets/default/a", None).await.unwrap();
    assert_eq!(got.kvs().len(), 1);
    assert!(kv
        .get("/registry/secrets/default/a", None)
        .await
        .unwrap()
        .kvs()
        .is_empty());
    assert_eq!(
        s.get("/registry/secrets/default/a")
            .await
            .unwrap()
            .unwrap()
            .key,
        "/registry/secrets/default/a"
    );

    // a wrong password: the message names the flags, never the password
    let wrong = EtcdOptions {
        password: Some(Password::new("wrong-staple-0042")),
        ..ok.clone()
    };
    let err = EtcdStore::connect_with(&wrong).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("--etcd-username") && msg.contains("--etcd-password-file"),
        "{msg}"
    );
    for shown in [msg.clone(), format!("{err:?}"), format!("{wrong:?}")] {
        assert!(!shown.contains("wrong-staple-0042"), "{shown}");
        assert!(!shown.contains("correct-horse-7731"), "{shown}");
    }
    // no user at all on an etcd that requires one
    let err = EtcdStore::connect_with(&EtcdOptions {
        prefix: "/kp-a".into(),
        ..plain()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--etcd-username"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_names_the_flag() {
    let port = kubepull_testkit::free_port();
    let o = EtcdOptions::with_servers(&format!("127.0.0.1:{port}"));
    let err = EtcdStore::connect_with(&o).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("--etcd-servers"), "{err}");
    // a username without a password is refused before connecting
    let err = EtcdStore::connect_with(&EtcdOptions {
        username: Some("kp".into()),
        ..o
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--etcd-password-file"), "{err}");
}

/// The compactor compacts (to the revision seen one interval earlier); a watch from before that
/// is refused with `Compacted`; a watch that was cut off from etcd while the history it needed was
/// compacted ends with `Compacted` when it reconnects; a re-list and a watch from its revision
/// work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_ends_a_watch_that_fell_behind() {
    let mut e = Etcd::start(3);
    let all = |servers: &[String]| EtcdOptions {
        compaction_interval: Duration::ZERO,
        ..EtcdOptions::with_servers(&servers.join(","))
    };
    // the watcher talks to member 0 only; the writer (and compactor) to members 1 and 2
    let watcher = connect(&all(&e.clients[..1])).await;
    let writer = connect(&EtcdOptions {
        compaction_interval: Duration::from_millis(300),
        ..all(&e.clients[1..])
    })
    .await;
    let r0 = writer.current_revision().await.unwrap();
    let mut w = watcher.watch("/registry/pods/", r0).await.unwrap();
    let r1 = writer
        .create("/registry/pods/default/a", b"a".to_vec())
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.unwrap().revision(), r1);

    // member 0 goes away; writes and compactions go on through the others
    e.kill(0);
    let mut last = r1;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match writer
            .update("/registry/pods/default/a", b"b".to_vec(), last)
            .await
        {
            Ok(r) => last = r,
            // member 0 may have been the leader: writes fail until the others elect one, and a
            // timed-out write may still have been applied
            Err(Error::Unavailable { .. }) | Err(Error::Conflict { .. }) => {
                assert!(Instant::now() < deadline, "writes did not resume");
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(Some(kv)) = writer.get("/registry/pods/default/a").await {
                    last = kv.mod_revision;
                }
                continue;
            }
            Err(e) => panic!("{e}"),
        }
        if matches!(
            writer.list("/registry/pods/", None, 0, Some(r1 + 1)).await,
            Err(Error::Compacted { .. })
        ) {
            break;
        }
        assert!(Instant::now() < deadline, "the compactor never compacted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a new watch from before the compaction is refused
    assert!(matches!(
        writer.watch("/registry/pods/", r1).await,
        Err(Error::Compacted { .. })
    ));

    // member 0 comes back; the watcher's stream reopens from r1 + 1, which is gone
    e.restart(0);
    match next_event(&mut w).await {
        Err(Error::Compacted { requested, oldest }) => {
            assert_eq!(requested, r1);
            assert!(oldest > r1, "{oldest}");
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    // re-list and watch from the list's revision
    let l = watcher
        .list("/registry/pods/", None, 0, None)
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(l.items[0].mod_revision, last);
    let mut w = watcher.watch("/registry/pods/", l.revision).await.unwrap();
    let r = writer
        .create("/registry/pods/default/b", b"b".to_vec())
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.unwrap().revision(), r);
}

/// Many watches share one gRPC watch stream: all of them see the writes under their prefixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watches_on_one_stream() {
    let e = Etcd::start(1);
    let s = connect(&EtcdOptions {
        compaction_interval: Duration::ZERO,
        ..EtcdOptions::with_servers(&e.clients[0])
    })
    .await;
    let r0 = s.current_revision().await.unwrap();
    let mut ws = vec![];
    for i in 0..200 {
        ws.push(
            s.watch(&format!("/registry/configmaps/ns{i}/"), r0)
                .await
                .unwrap(),
        );
    }
    let mut revs = vec![];
    for i in 0..200 {
        revs.push(
            s.create(&format!("/registry/configmaps/ns{i}/c"), vec![i as u8])
                .await
                .unwrap(),
        );
    }
    for (i, w) in ws.iter_mut().enumerate() {
        let ev = next_event(w).await.unwrap();
        assert_eq!(ev.revision(), revs[i]);
        assert_eq!(ev.key(), format!("/registry/configmaps/ns{i}/c"));
    }
    // a dropped watch does not disturb the others
    ws.remove(0);
    let r = s
        .create("/registry/configmaps/ns1/d", b"d".to_vec())
        .await
        .unwrap();
    assert_eq!(next_event(&mut ws[0]).await.unwrap().revision(), r);
}
