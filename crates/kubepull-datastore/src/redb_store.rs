//! The embedded datastore: one redb file. Every acknowledged write is in a committed redb
//! transaction (durable: redb's default `Durability::Immediate` fsyncs before `commit` returns),
//! so it survives `kill -9`.
//!
//! Writes are **group-committed**: one writer thread takes every write waiting for it (up to
//! [`MAX_BATCH`]), applies them in order in one transaction, each with the next revision, commits
//! once, and only then answers each of them. Concurrent writers share one commit (and its fsyncs)
//! instead of queueing for one each; a write alone is committed at once, as before. A write that
//! fails its own check (exists, not found, conflict) changes nothing and does not disturb the
//! others; a backend failure fails the whole batch, and nothing of it is stored. The current
//! revision is stored with the data. Watches are served by the shared [`Hub`], in memory (the last
//! [`HISTORY_EVENTS`] changes): after a restart a watch from an older revision gets `Compacted`
//! (HTTP 410) and the client lists again, as after an etcd compaction.
//!
//! Lists are read from redb read transactions (snapshots). Every list keeps its snapshot under
//! its revision for a while ([`crate::snapshots`]: [`SNAPSHOT_TTL`], at most [`MAX_SNAPSHOTS`]),
//! and a list `at_revision` reads that snapshot, so the pages of a paginated list are one state
//! whatever is written between them, as on etcd.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::hub::Hub;
use crate::snapshots::{SnapshotLimits, Snapshots};
use crate::{Datastore, Error, Event, KeyValue, ListResult, Result, Revision, Watch};
use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub use crate::hub::{HISTORY_EVENTS, WATCH_BUFFER};
pub use crate::snapshots::{MAX_SNAPSHOTS, SNAPSHOT_TTL};

/// The read snapshots kept for paginated lists, by revision.
type ListSnapshots = Mutex<Snapshots<Arc<redb::ReadTransaction>>>;

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        message: e.to_string(),
    }
}

fn enc(create: u64, modr: u64, v: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + v.len());
    b.extend_from_slice(&create.to_le_bytes());
    b.extend_from_slice(&modr.to_le_bytes());
    b.extend_from_slice(v);
    b
}

fn dec(key: &str, b: &[u8]) -> Result<KeyValue> {
    if b.len() < 16 {
        return Err(backend(format!("corrupt record for {key:?}")));
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&b[..8]);
    let mut m = [0u8; 8];
    m.copy_from_slice(&b[8..16]);
    Ok(KeyValue {
        key: key.to_string(),
        value: b[16..].to_vec(),
        create_revision: u64::from_le_bytes(c),
        mod_revision: u64::from_le_bytes(m),
    })
}

/// The most writes committed in one transaction.
pub const MAX_BATCH: usize = 1_024;

/// A write staged in the batch's transaction: its event (if it changed something) and how to
/// answer it once the commit is known (`None`: committed).
struct Staged {
    event: Option<Event>,
    /// The write failed in the backend: the batch is aborted.
    broken: bool,
    finish: Box<dyn FnOnce(Option<Error>) + Send>,
}

/// A write waiting for the writer thread: applies itself to the transaction with its revision.
type Job = Box<dyn FnOnce(&redb::WriteTransaction, u64) -> Staged + Send>;

/// The redb-backed store.
pub struct RedbStore {
    db: Arc<redb::Database>,
    hub: Arc<Mutex<Hub>>,
    snapshots: Arc<ListSnapshots>,
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // the writer ends when its queue closes; wait, so the file is closed when this returns
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        // kept list snapshots are read transactions on the file: let them go
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // reads run on blocking threads with their own handle on the database; one whose caller
        // went away (an aborted request) still finishes its read. The file (and its lock) closes
        // with the last handle, so wait for those reads, briefly, for a reopen to succeed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while Arc::strong_count(&self.db) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // a list that was running may have kept its snapshot meanwhile
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The writer thread: one transaction and one commit per batch of waiting writes.
fn writer(db: Arc<redb::Database>, hub: Arc<Mutex<Hub>>, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        commit_batch(&db, &hub, batch);
    }
}

fn commit_batch(db: &redb::Database, hub: &Mutex<Hub>, batch: Vec<Job>) {
    let fail_all = |staged: Vec<Staged>, why: &str| {
        for s in staged {
            (s.finish)(Some(Error::Backend {
                message: why.to_string(),
            }));
        }
    };
    // only this thread changes the revision
    let base = hub.lock().unwrap_or_else(|p| p.into_inner()).revision();
    let tx = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            // dropping the writes answers each of them with an error; nothing was stored
            tracing::error!("redb: begin write: {e}");
            drop(batch);
            return;
        }
    };
    let mut next = base;
    let mut staged = Vec::with_capacity(batch.len());
    let mut broken = false;
    for j in batch {
        let s = j(&tx, next + 1);
        if s.event.is_some() {
            next += 1;
        }
        broken |= s.broken;
        staged.push(s);
    }
    if broken {
        let _ = tx.abort();
        fail_all(
            staged,
            "a write in the same transaction failed in the backend; nothing was stored",
        );
        return;
    }
    if next == base {
        let _ = tx.abort();
        for s in staged {
            (s.finish)(None);
        }
        return;
    }
    let meta = tx
        .open_table(META)
        .map_err(|e| e.to_string())
        .and_then(|mut t| {
            t.insert("revision", next)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    if let Err(e) = meta {
        let _ = tx.abort();
        fail_all(staged, &e);
        return;
    }
    // readers take a read transaction and the revision together under the hub lock: hold it
    // across the commit so they never see data newer than the revision they are told
    let mut h = hub.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = tx.commit() {
        drop(h);
        fail_all(staged, &e.to_string());
        return;
    }
    let mut finishes = Vec::with_capacity(staged.len());
    for s in staged {
        if let Some(ev) = s.event {
            h.publish(ev);
        }
        finishes.push(s.finish);
    }
    debug_assert_eq!(h.revision(), next);
    drop(h);
    for f in finishes {
        f(None);
    }
}

impl RedbStore {
    /// Opens (creating) the database file, keeping list snapshots as [`SnapshotLimits::default`]
    /// says.
    pub fn open(path: &Path) -> Result<RedbStore> {
        RedbStore::open_with(path, SnapshotLimits::default())
    }

    /// As [`RedbStore::open`], keeping list snapshots as `limits` says.
    pub fn open_with(path: &Path, limits: SnapshotLimits) -> Result<RedbStore> {
        let db = redb::Database::create(path)
            .map_err(|e| backend(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(backend)?;
        {
            tx.open_table(KV).map_err(backend)?;
            tx.open_table(META).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        let rtx = db.begin_read().map_err(backend)?;
        let meta = rtx.open_table(META).map_err(backend)?;
        let revision = meta
            .get("revision")
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(0);
        let db = Arc::new(db);
        let hub = Arc::new(Mutex::new(Hub::new(revision)));
        let (jobs, rx) = std::sync::mpsc::channel();
        let (wdb, whub) = (db.clone(), hub.clone());
        let writer = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || writer(wdb, whub, rx))
            .map_err(|e| backend(format!("starting the redb writer: {e}")))?;
        Ok(RedbStore {
            db,
            hub,
            snapshots: Arc::new(Mutex::new(Snapshots::new(limits))),
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    /// How many list snapshots are kept now (each at its own revision).
    pub fn kept_snapshots(&self) -> usize {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len(Instant::now())
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction, u64) -> Result<(T, Option<Event>)> + Send + 'static,
    ) -> Result<T> {
        let (otx, orx) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |tx, rev| match f(tx, rev) {
            Ok((out, event)) => Staged {
                event,
                broken: false,
                finish: Box::new(move |err| {
                    let _ = otx.send(match err {
                        None => Ok(out),
                        Some(e) => Err(e),
                    });
                }),
            },
            Err(e) => Staged {
                event: None,
                broken: matches!(e, Error::Backend { .. }),
                finish: Box::new(move |err| {
                    // a write that failed its own check reports that; a backend failure reports
                    // its own cause rather than the batch's
                    let _ = otx.send(Err(match (e, err) {
                        (e @ Error::Backend { .. }, _) => e,
                        (_, Some(b)) => b,
                        (e, None) => e,
                    }));
                }),
            },
        });
        // list snapshots past their time go now, not only at the next list: a snapshot keeps
        // the pages this write frees from being reused
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expire(Instant::now());
        self.jobs
            .as_ref()
            .ok_or_else(|| backend("the store is closed"))?
            .send(job)
            .map_err(|_| backend("the redb writer stopped"))?;
        orx.await.map_err(|_| {
            backend("the redb writer dropped a write (begin_write failed; see the log)")
        })?
    }
}

#[async_trait]
impl Datastore for RedbStore {
    fn retain_list_snapshot(&self, revision: Revision) {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(revision, Instant::now());
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self
            .hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revision())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let db = self.db.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || {
            let rtx = db.begin_read().map_err(backend)?;
            let t = rtx.open_table(KV).map_err(backend)?;
            match t.get(key.as_str()).map_err(backend)? {
                Some(g) => Ok(Some(dec(&key, g.value())?)),
                None => Ok(None),
            }
        })
        .await
        .map_err(backend)?
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<ListResult> {
        let db = self.db.clone();
        let hub = self.hub.clone();
        let snapshots = self.snapshots.clone();
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let now = Instant::now();
            let lock = || snapshots.lock().unwrap_or_else(|p| p.into_inner());
            // a later page of a list: the snapshot its first page was read from
            let kept = at_revision.and_then(|r| lock().get(r, now).map(|t| (t, r)));
            let fresh = kept.is_none();
            let (rtx, revision) = match kept {
                Some(k) => k,
                None => {
                    // a read transaction and the revision it saw, taken together
                    let (rtx, revision) = {
                        let h = hub.lock().unwrap_or_else(|p| p.into_inner());
                        (Arc::new(db.begin_read().map_err(backend)?), h.revision())
                    };
                    if let Some(r) = at_revision {
                        if r != revision {
                            // not kept (expired, evicted, or from before a restart)
                            return Err(Error::Compacted {
                                requested: r,
                                oldest: revision,
                            });
                        }
                    }
                    (rtx, revision)
                }
            };
            let t = rtx.open_table(KV).map_err(backend)?;
            let from = start_after.clone().unwrap_or_else(|| prefix.clone());
            let mut items = vec![];
            let mut more = false;
            for e in t.range(from.as_str()..).map_err(backend)? {
                let (k, v) = e.map_err(backend)?;
                let k = k.value();
                if !k.starts_with(&prefix) {
                    break;
                }
                if start_after.as_deref().is_some_and(|s| k <= s) {
                    continue;
                }
                if limit != 0 && items.len() == limit {
                    more = true;
                    break;
                }
                items.push(dec(k, v.value())?);
            }
            // a full page may be continued: its snapshot is kept (a whole read, or a page with
            // room left, is not: nothing can continue it)
            if fresh && limit != 0 && items.len() == limit {
                lock().keep(revision, rtx.clone(), now);
            }
            Ok(ListResult {
                items,
                revision,
                more,
            })
        })
        .await
        .map_err(backend)?
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let key = key.to_string();
        self.write(move |tx, rev| {
            let mut t = tx.open_table(KV).map_err(backend)?;
            if t.get(key.as_str()).map_err(backend)?.is_some() {
                return Err(Error::AlreadyExists { key });
            }
            t.insert(key.as_str(), enc(rev, rev, &value).as_slice())
                .map_err(backend)?;
            let kv = KeyValue {
                key: key.clone(),
                value,
                create_revision: rev,
                mod_revision: rev,
            };
            Ok((rev, Some(Event::Put { kv, prev: None })))
        })
        .await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let key = key.to_string();
        self.write(move |tx, rev| {
            let mut t = tx.open_table(KV).map_err(backend)?;
            let prev = match t.get(key.as_str()).map_err(backend)? {
                None => return Err(Error::NotFound { key }),
                Some(g) => dec(&key, g.value())?,
            };
            if prev.mod_revision != expected {
                return Err(Error::Conflict {
                    key,
                    expected,
                    actual: prev.mod_revision,
                });
            }
            t.insert(
                key.as_str(),
                enc(prev.create_revision, rev, &value).as_slice(),
            )
            .map_err(backend)?;
            let kv = KeyValue {
                key: key.clone(),
                value,
                create_revision: prev.create_revision,
                mod_revision: rev,
            };
            Ok((
                rev,
                Some(Event::Put {
                    kv,
                    prev: Some(prev),
                }),
            ))
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let key = key.to_string();
        self.write(move |tx, rev| {
            let mut t = tx.open_table(KV).map_err(backend)?;
            let prev = match t.get(key.as_str()).map_err(backend)? {
                None => return Err(Error::NotFound { key }),
                Some(g) => dec(&key, g.value())?,
            };
            if let Some(e) = expected {
                if prev.mod_revision != e {
                    return Err(Error::Conflict {
                        key,
                        expected: e,
                        actual: prev.mod_revision,
                    });
                }
            }
            t.remove(key.as_str()).map_err(backend)?;
            Ok((
                (rev, prev.clone()),
                Some(Event::Delete {
                    prev,
                    revision: rev,
                }),
            ))
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        self.hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watch(prefix, after)
    }
}
