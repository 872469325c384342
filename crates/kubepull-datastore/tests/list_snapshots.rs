//! Paginated lists read one state: every page after the first is read at the first page's
//! revision, whatever was created, updated or deleted between the pages (etcd's MVCC read
//! `WithRev`, which kube-apiserver's continue token relies on: `storage/etcd3/store.go`
//! `GetList`). The embedded (redb) and in-process stores keep each list's snapshot for a bounded
//! time and number; an expired or evicted one is `Compacted`, as a compacted revision on etcd.

use std::collections::BTreeMap;
use std::time::Duration;

use kubepull_datastore::memory::MemoryStore;
use kubepull_datastore::redb_store::RedbStore;
use kubepull_datastore::snapshots::SnapshotLimits;
use kubepull_datastore::{Datastore, Error, KeyValue, Revision};

const P: &str = "/registry/pods/ns/";

fn k(name: &str) -> String {
    format!("{P}{name}")
}

/// Reads the rest of a list page by page (`limit` a page) at `at`, from after `after`.
async fn rest(
    s: &dyn Datastore,
    mut after: String,
    limit: usize,
    at: Revision,
    between: &mut dyn FnMut(usize) -> Vec<Op>,
) -> Vec<KeyValue> {
    let mut out = vec![];
    for page in 1.. {
        for op in between(page) {
            op.run(s).await;
        }
        let l = s.list(P, Some(&after), limit, Some(at)).await.unwrap();
        assert_eq!(
            l.revision, at,
            "page {page} is read at the first page's revision"
        );
        assert!(l.items.len() <= limit);
        out.extend(l.items.iter().cloned());
        if !l.more {
            break;
        }
        after = l.items.last().unwrap().key.clone();
    }
    out
}

enum Op {
    Create(String),
    Update(String),
    Delete(String),
}

impl Op {
    async fn run(self, s: &dyn Datastore) {
        match self {
            Op::Create(n) => {
                s.create(&k(&n), b"new".to_vec()).await.unwrap();
            }
            Op::Update(n) => {
                let cur = s.get(&k(&n)).await.unwrap().unwrap();
                s.update(&k(&n), b"changed".to_vec(), cur.mod_revision)
                    .await
                    .unwrap();
            }
            Op::Delete(n) => {
                s.delete(&k(&n), None).await.unwrap();
            }
        }
    }
}

/// Ten pods (and a key of another resource), listed three at a time with creates, updates and
/// deletes (before and after the page being read) between every two pages: the pages together
/// are exactly the ten pods as they were at the first page.
async fn pages_across_writes(s: &dyn Datastore) {
    for i in 0..10 {
        s.create(&k(&format!("p{i:02}")), format!("v{i}").into_bytes())
            .await
            .unwrap();
    }
    s.create("/registry/secrets/ns/s", b"x".to_vec())
        .await
        .unwrap();
    let before: BTreeMap<String, KeyValue> = s
        .list(P, None, 0, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| (kv.key.clone(), kv))
        .collect();
    assert_eq!(before.len(), 10);

    let first = s.list(P, None, 3, None).await.unwrap();
    assert!(first.more);
    let at = first.revision;
    let mut between = |page: usize| match page {
        1 => vec![
            Op::Update("p00".into()),  // already listed
            Op::Update("p04".into()),  // on the next page
            Op::Delete("p05".into()),  // on the next page
            Op::Create("p035".into()), // would land on the next page
            Op::Create("p99".into()),  // after the end
        ],
        2 => vec![
            Op::Delete("p08".into()),
            Op::Delete("p03".into()), // already listed
            Op::Create("p071".into()),
            Op::Update("p09".into()),
        ],
        _ => vec![Op::Update("p01".into()), Op::Delete("p06".into())],
    };
    let after = first.items.last().unwrap().key.clone();
    let mut all = first.items.clone();
    all.extend(rest(s, after, 3, at, &mut between).await);
    let got: BTreeMap<String, KeyValue> = all.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    assert_eq!(got, before, "the pages are the first page's state");

    // the present is different, and a new list sees it
    let now = s.list(P, None, 0, None).await.unwrap();
    assert!(now.revision > at);
    let names: Vec<&str> = now
        .items
        .iter()
        .map(|kv| kv.key.trim_start_matches(P))
        .collect();
    assert_eq!(
        names,
        ["p00", "p01", "p02", "p035", "p04", "p07", "p071", "p09", "p99"]
    );
    // the old revision can still be read from the start
    let again = s.list(P, None, 0, Some(at)).await.unwrap();
    assert_eq!(again.items, before.into_values().collect::<Vec<_>>());
}

fn limits(ttl: Duration, max: usize) -> SnapshotLimits {
    SnapshotLimits { ttl, max }
}

async fn expired(s: &dyn Datastore) {
    s.create(&k("a"), b"1".to_vec()).await.unwrap();
    s.create(&k("b"), b"1".to_vec()).await.unwrap();
    let first = s.list(P, None, 1, None).await.unwrap();
    assert!(first.more);
    // nothing written yet: the current revision is still readable
    let l = s
        .list(P, Some(&k("a")), 1, Some(first.revision))
        .await
        .unwrap();
    assert_eq!(l.items[0].key, k("b"));
    s.create(&k("c"), b"1".to_vec()).await.unwrap();
    match s.list(P, Some(&k("a")), 1, Some(first.revision)).await {
        Err(Error::Compacted { requested, oldest }) => {
            assert_eq!(requested, first.revision);
            assert_eq!(oldest, first.revision + 1);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
}

/// With room for two snapshots, lists at five revisions keep only two; the one a continue token
/// names (retained, as the API server does when it hands one out) survives lists at newer
/// revisions, the others are evicted and `Compacted`.
async fn capped(s: &dyn Datastore, kept: &dyn Fn() -> usize) {
    let mut revs = vec![];
    for i in 0..5 {
        s.create(&k(&format!("p{i}")), b"1".to_vec()).await.unwrap();
        revs.push(s.list(P, None, 1, None).await.unwrap().revision);
        assert!(kept() <= 2, "at most two snapshots are kept");
        if i == 0 {
            // a continue token names the first list, and a client continues from it
            s.retain_list_snapshot(revs[0]);
            let l = s.list(P, Some(&k("p0")), 1, Some(revs[0])).await.unwrap();
            assert!(l.items.is_empty());
        }
    }
    assert_eq!(kept(), 2);
    // the retained one and the newest survive; the others are gone
    assert!(s.list(P, None, 0, Some(revs[0])).await.is_ok());
    assert_eq!(
        s.list(P, None, 0, Some(revs[4])).await.unwrap().items.len(),
        5
    );
    for r in &revs[1..4] {
        assert!(
            matches!(
                s.list(P, None, 0, Some(*r)).await,
                Err(Error::Compacted { .. })
            ),
            "revision {r} was evicted"
        );
    }
    assert_eq!(
        s.list(P, None, 0, Some(revs[0])).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn memory_pages_read_the_first_pages_state() {
    pages_across_writes(&MemoryStore::with_snapshot_limits(SnapshotLimits::default())).await;
}

/// `MemoryStore::new` keeps none: the store that cannot read the past.
#[tokio::test]
async fn memory_store_new_keeps_no_snapshots() {
    let s = MemoryStore::new();
    expired(&s).await;
    assert_eq!(s.kept_snapshots(), 0);
}

#[tokio::test]
async fn memory_expired_snapshot_is_compacted() {
    expired(&MemoryStore::with_snapshot_limits(limits(
        Duration::ZERO,
        8,
    )))
    .await;
}

#[tokio::test]
async fn memory_snapshot_cap_holds() {
    let s = MemoryStore::with_snapshot_limits(limits(Duration::from_secs(300), 2));
    capped(&s, &|| s.kept_snapshots()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_pages_read_the_first_pages_state() {
    let d = tempfile::tempdir().unwrap();
    pages_across_writes(&RedbStore::open(&d.path().join("state.redb")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_expired_snapshot_is_compacted() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state.redb");
    expired(&RedbStore::open_with(&p, limits(Duration::ZERO, 8)).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_snapshot_cap_holds() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state.redb");
    let s = RedbStore::open_with(&p, limits(Duration::from_secs(300), 2)).unwrap();
    capped(&s, &|| s.kept_snapshots()).await;
}

/// Snapshots are in memory: after a restart a continuation from before it is `Compacted` (the
/// API server's 410), and the reopened file is the latest state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_snapshots_do_not_survive_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state.redb");
    let s = RedbStore::open(&p).unwrap();
    s.create(&k("a"), b"1".to_vec()).await.unwrap();
    s.create(&k("b"), b"1".to_vec()).await.unwrap();
    let first = s.list(P, None, 1, None).await.unwrap();
    s.delete(&k("b"), None).await.unwrap();
    assert_eq!(s.kept_snapshots(), 1);
    drop(s);
    let s = RedbStore::open(&p).unwrap();
    assert!(matches!(
        s.list(P, Some(&k("a")), 1, Some(first.revision)).await,
        Err(Error::Compacted { .. })
    ));
    assert_eq!(s.list(P, None, 0, None).await.unwrap().items.len(), 1);
}

/// The same pages on etcd, which reads past revisions itself (the reference behaviour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_pages_read_the_first_pages_state() {
    use kubepull_datastore::etcd_store::{EtcdOptions, EtcdStore};
    let e = kubepull_testkit::etcd::Etcd::start(1);
    let o = EtcdOptions::with_servers(&e.clients.join(","));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let s = loop {
        match EtcdStore::connect_with(&o).await {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() > deadline => panic!("etcd did not come up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    pages_across_writes(&s).await;
}
