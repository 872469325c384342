//! In-memory copies of the objects the API server reads on every request (RBAC roles and
//! bindings), fed by a datastore watch: the informer caches kube-apiserver's RBAC authorizer
//! reads from (`plugin/pkg/auth/authorizer/rbac/rbac.go`: `RoleGetter`, `RoleBindingLister`,
//! `ClusterRoleGetter`, `ClusterRoleBindingLister`, backed by shared informers in
//! `pkg/kubeapiserver/authorizer/config.go`), instead of listing every binding from storage per
//! request.
//!
//! Each [`Cache`] lists one key prefix, watches it from the list's revision, and lists again when
//! the watch ends, through [`crate::reflector`] (the cache's shared state is the reflector's
//! sink). Reads are **read-your-writes** for this server: every write to a cached prefix
//! made through [`Tracked`] (the store every [`crate::objects::Objects`] writes through) records
//! its revision, and a read waits (at most [`FRESH_WAIT`]) until the cache has applied it. A cache
//! that is not listed yet, or does not catch up in time, answers `None` and the caller reads
//! storage as before. Writes through other API servers on the same etcd arrive with the watch, as
//! they do for kube-apiserver's informers.
//!
//! The list and the watch are opened by the read that needs them; the watch task holds no
//! reference to the datastore and ends when it is closed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kubepull_datastore::{Datastore, Event, KeyValue, ListResult, Result, Revision, Watch};
use serde_json::Value;

/// How long a read waits for the cache to apply a write made through this server before it
/// reads storage instead.
pub const FRESH_WAIT: Duration = Duration::from_secs(2);

/// The cached objects of one prefix, by key: the stored JSON, or what the cache's decoder made
/// of it.
pub type Items<T = Value> = BTreeMap<String, Arc<T>>;

/// Turns a stored value into what the cache keeps; `None` leaves the key out.
pub type Decoder<T> = fn(&[u8]) -> Option<T>;

struct State<T> {
    ready: bool,
    /// The revision the cache has applied (the list's, then each event's).
    revision: Revision,
    items: Items<T>,
}

/// What the reflector fills and the watch task holds (never the store).
struct Shared<T> {
    /// A list-and-watch is running or being set up.
    started: AtomicBool,
    state: Mutex<State<T>>,
    applied: tokio::sync::Notify,
    decode: Decoder<T>,
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The watch ended (the store closed it or it fell behind): not ready until a read lists
    /// again.
    fn ended(&self) {
        {
            let mut s = self.lock();
            s.ready = false;
            s.items.clear();
        }
        self.started.store(false, Ordering::Release);
        self.applied.notify_waiters();
    }
}

impl<T: Send + Sync> crate::reflector::Sink for Shared<T> {
    fn replace(&self, items: Vec<KeyValue>, revision: Revision) {
        {
            let mut s = self.lock();
            s.items = items
                .into_iter()
                .filter_map(|kv| Some(((self.decode)(&kv.value)?, kv)))
                .map(|(v, kv)| (kv.key, Arc::new(v)))
                .collect();
            s.revision = revision;
            s.ready = true;
        }
        self.applied.notify_waiters();
    }

    fn apply(&self, event: Event) {
        {
            let mut s = self.lock();
            match event {
                Event::Put { kv, .. } => {
                    s.revision = s.revision.max(kv.mod_revision);
                    match (self.decode)(&kv.value) {
                        Some(v) => s.items.insert(kv.key, Arc::new(v)),
                        None => s.items.remove(&kv.key),
                    };
                }
                Event::Delete { prev, revision } => {
                    s.revision = s.revision.max(revision);
                    s.items.remove(&prev.key);
                }
            }
        }
        self.applied.notify_waiters();
    }
}

/// One watched prefix (see the module documentation), its objects kept as `T`.
pub struct Cache<T = Value> {
    prefix: String,
    /// The revision of the last write to the prefix made through this server.
    written: AtomicU64,
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Cache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("Cache")
            .field("prefix", &self.prefix)
            .field("ready", &s.ready)
            .field("revision", &s.revision)
            .field("items", &s.items.len())
            .finish()
    }
}

/// Clears `started` unless disarmed (a list-and-watch set-up that failed or was cancelled).
struct Unstart<'a>(&'a AtomicBool, bool);

impl Drop for Unstart<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.store(false, Ordering::Release);
        }
    }
}

impl Cache {
    /// An empty cache of the JSON objects under `prefix`; the first read lists them.
    pub fn new(prefix: &str) -> Cache {
        Cache::with_decoder(prefix, json_object)
    }
}

impl<T: Send + Sync + 'static> Cache<T> {
    /// An empty cache of the keys under `prefix` as `decode` makes them; the first read lists
    /// them.
    pub fn with_decoder(prefix: &str, decode: Decoder<T>) -> Cache<T> {
        Cache {
            prefix: prefix.to_string(),
            written: AtomicU64::new(0),
            shared: Arc::new(Shared {
                started: AtomicBool::new(false),
                state: Mutex::new(State {
                    ready: false,
                    revision: 0,
                    items: Items::new(),
                }),
                applied: tokio::sync::Notify::new(),
                decode,
            }),
        }
    }

    /// The prefix cached.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.shared.lock()
    }

    /// A write to the prefix was made through this server at `revision`.
    pub fn note_write(&self, revision: Revision) {
        self.written.fetch_max(revision, Ordering::AcqRel);
    }

    /// Calls `f` with the cached items once the cache holds every write made through this server;
    /// `None` when it could not list, or does not catch up within [`FRESH_WAIT`] (read storage).
    /// The first read (and the first after the watch ended) lists and opens the watch through
    /// `store`; the watch task then holds no reference to the store, so closing it is never
    /// delayed by the cache.
    pub async fn read<R>(
        &self,
        store: &Arc<dyn Datastore>,
        f: impl FnOnce(&Items<T>) -> R,
    ) -> Option<R> {
        self.start(store).await;
        let deadline = tokio::time::Instant::now() + FRESH_WAIT;
        loop {
            let applied = self.shared.applied.notified();
            {
                let s = self.lock();
                if !s.ready {
                    return None;
                }
                if s.revision >= self.written.load(Ordering::Acquire) {
                    return Some(f(&s.items));
                }
            }
            if tokio::time::timeout_at(deadline, applied).await.is_err() {
                return None;
            }
        }
    }

    /// Runs a round of the reflector (the list here, the watch in a task of its own), once
    /// (again after the watch ended).
    async fn start(&self, store: &Arc<dyn Datastore>) {
        let started = &self.shared.started;
        if started.load(Ordering::Acquire) || started.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut unstart = Unstart(started, true);
        let watching = match crate::reflector::list_and_watch(
            store.as_ref(),
            &self.prefix,
            self.shared.as_ref(),
        )
        .await
        {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!("cache: {e}; reading storage");
                return;
            }
        };
        unstart.1 = false;
        let (prefix, shared) = (self.prefix.clone(), self.shared.clone());
        tokio::spawn(async move {
            if let crate::reflector::Ended::Failed(e) = watching.follow(shared.as_ref()).await {
                tracing::debug!("cache of {prefix}: {e}; listing again");
            }
            shared.ended();
        });
    }
}

/// The default decoder: the stored JSON object.
fn json_object(value: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(value)
        .ok()
        .filter(Value::is_object)
}

/// The items of `items` whose key starts with `prefix`, in key order.
pub fn under<'a, T>(items: &'a Items<T>, prefix: &'a str) -> impl Iterator<Item = &'a Arc<T>> + 'a {
    items
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
}

/// The datastore as the API server writes through it: every call goes to `inner`; a successful
/// write under a cached prefix tells that cache its revision (read-your-writes).
pub struct Tracked {
    inner: Arc<dyn Datastore>,
    caches: Vec<Arc<dyn Noted>>,
}

/// A cache [`Tracked`] tells of the writes under its prefix.
pub trait Noted: Send + Sync {
    /// The prefix cached.
    fn prefix(&self) -> &str;
    /// A write to the prefix was made through this server at `revision`.
    fn note_write(&self, revision: Revision);
}

impl<T: Send + Sync + 'static> Noted for Cache<T> {
    fn prefix(&self) -> &str {
        Cache::prefix(self)
    }

    fn note_write(&self, revision: Revision) {
        Cache::note_write(self, revision)
    }
}

impl Tracked {
    /// `inner`, with writes under the prefixes of `caches` noted.
    pub fn new(inner: Arc<dyn Datastore>, caches: Vec<Arc<dyn Noted>>) -> Tracked {
        Tracked { inner, caches }
    }

    fn noted(&self, key: &str, r: Result<Revision>) -> Result<Revision> {
        if let Ok(rev) = r {
            for c in &self.caches {
                if key.starts_with(c.prefix()) {
                    c.note_write(rev);
                }
            }
        }
        r
    }
}

#[async_trait]
impl Datastore for Tracked {
    fn retain_list_snapshot(&self, revision: Revision) {
        self.inner.retain_list_snapshot(revision);
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<ListResult> {
        self.inner
            .list(prefix, start_after, limit, at_revision)
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let r = self.inner.create(key, value).await;
        self.noted(key, r)
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let r = self.inner.update(key, value, expected).await;
        self.noted(key, r)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let r = self.inner.delete(key, expected).await;
        match r {
            Ok((rev, kv)) => self.noted(key, Ok(rev)).map(|rev| (rev, kv)),
            Err(e) => Err(e),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        self.inner.watch(prefix, after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubepull_datastore::memory::MemoryStore;

    #[tokio::test]
    async fn reads_follow_writes_made_through_the_tracked_store() {
        let inner: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
        inner.create("/p/a", br#"{"n":1}"#.to_vec()).await.unwrap();
        let c = Arc::new(Cache::new("/p/"));
        let store: Arc<dyn Datastore> = Arc::new(Tracked::new(
            inner.clone(),
            vec![c.clone() as Arc<dyn Noted>],
        ));
        // the first read lists
        assert_eq!(c.read(&store, |i| i.len()).await, Some(1));
        // every write through the tracked store is seen by the very next read
        for i in 0..50 {
            store
                .create(
                    &format!("/p/k{i:02}"),
                    format!(r#"{{"n":{i}}}"#).into_bytes(),
                )
                .await
                .unwrap();
            let n = c.read(&store, |items| items.len()).await;
            assert_eq!(n, Some(i + 2));
        }
        let (rev, _) = store.delete("/p/k00", None).await.unwrap();
        assert_eq!(
            c.read(&store, |items| items.contains_key("/p/k00")).await,
            Some(false)
        );
        assert!(c.lock().revision >= rev);
        // other prefixes are not cached, and do not make reads wait
        store.create("/q/x", b"{}".to_vec()).await.unwrap();
        let keys = c
            .read(&store, |items| under(items, "/p/k0").count())
            .await
            .unwrap();
        assert_eq!(keys, 9);
        // a write the cache cannot have seen (made elsewhere, noted by hand) times out to None
        c.note_write(rev + 1_000);
        assert_eq!(c.read(&store, |_| ()).await, None);
    }

    #[tokio::test]
    async fn stops_with_the_store() {
        let inner: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
        let c = Cache::new("/p/");
        assert_eq!(c.read(&inner, |_| ()).await, Some(()));
        let weak = Arc::downgrade(&inner);
        drop(inner);
        // the cache never keeps the store alive, and its watch ends with it
        assert_eq!(weak.strong_count(), 0);
        for _ in 0..500 {
            if !c.lock().ready && !c.shared.started.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the cache still answers after its store was closed");
    }
}
