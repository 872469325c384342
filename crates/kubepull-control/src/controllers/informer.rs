//! Shared informers (client-go `tools/cache`: `SharedIndexInformer`, `SharedInformerFactory`):
//! one cache per storage prefix, filled by one list and then one watch from that list's
//! revision; a watch that ends (the consumer fell behind, the revision was compacted: 410) is
//! followed by a fresh list whose differences to the cache are delivered as changes
//! (`Reflector.ListAndWatch` + `DeltaFIFO.Replace`). Every controller that reads a resource
//! shares its informer.
//!
//! The cache is indexed (`cache.Indexers`): by namespace, by owner UID, by controller owner
//! UID, by UID, for pods by the node they are bound to (active pods only), unscheduled and by
//! their Job's name, and for EndpointSlices by their Service (`kubernetes.io/service-name`),
//! so a sync reads what it touches instead of listing everything. Pods are stored trimmed to
//! the fields the controllers read (`SharedIndexInformer.SetTransform`, which
//! kube-controller-manager uses to drop `managedFields`).

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::core::v1::Pod;
use kubepull_datastore::{Datastore, Event, KeyValue};

pub use super::kinds::{trim_pod, Cached, Kind};

/// A cached object.
pub type Obj = Cached;

/// One change delivered to subscribers (`ResourceEventHandler` add/update/delete).
#[derive(Debug, Clone)]
pub struct Notice {
    /// The storage key.
    pub key: String,
    /// The new state (the last one when `deleted`).
    pub obj: Cached,
    /// The state before an update.
    pub old: Option<Cached>,
    /// The object is gone.
    pub deleted: bool,
}

impl Notice {
    /// The new state (the last one when `deleted`) when it is a `K`.
    pub fn obj<K: Kind>(&self) -> Option<&Arc<K>> {
        K::cached(&self.obj)
    }

    /// The state before an update when it is a `K`.
    pub fn old<K: Kind>(&self) -> Option<&Arc<K>> {
        self.old.as_ref().and_then(K::cached)
    }
}

/// Index names.
pub mod index {
    /// `metadata.namespace`.
    pub const NAMESPACE: &str = "namespace";
    /// The UIDs of every ownerReference.
    pub const OWNER: &str = "owner";
    /// The UID of the controller ownerReference.
    pub const CONTROLLER: &str = "controller";
    /// `metadata.uid`.
    pub const UID: &str = "uid";
    /// Pods: `spec.nodeName` of active pods (not terminating, not finished).
    pub const NODE: &str = "node";
    /// Pods: `"true"` for pods not bound to a node and not terminating.
    pub const UNSCHEDULED: &str = "unscheduled";
    /// Pods: `namespace/name` of the Job that controls the pod (a deleted Job's pods, whose
    /// UID the controller may never have seen).
    pub const JOB: &str = "job";
    /// EndpointSlices: `namespace/name` of the Service in the `kubernetes.io/service-name`
    /// label.
    pub const SERVICE_NAME: &str = "service-name";
}

/// The label naming an EndpointSlice's Service (discovery/v1 `LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

type IndexFn = fn(&Cached) -> Vec<String>;

fn by_namespace(o: &Cached) -> Vec<String> {
    vec![super::kinds::namespace(o.meta()).to_string()]
}

fn by_owner(o: &Cached) -> Vec<String> {
    o.meta()
        .owner_references
        .iter()
        .flatten()
        .map(|r| r.uid.clone())
        .collect()
}

fn by_controller(o: &Cached) -> Vec<String> {
    super::kinds::controller_ref(o.meta())
        .map(|r| vec![r.uid.clone()])
        .unwrap_or_default()
}

fn by_uid(o: &Cached) -> Vec<String> {
    vec![super::kinds::uid(o.meta()).to_string()]
}

/// Whether a pod counts for its node and its ReplicaSet (`controller.IsPodActive`).
pub fn pod_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// `spec.nodeName` (empty when unset).
pub fn node_name(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn by_node(o: &Cached) -> Vec<String> {
    let Cached::Pod(p) = o else { return vec![] };
    let n = node_name(p);
    if n.is_empty() || !pod_active(p) {
        return vec![];
    }
    vec![n.to_string()]
}

fn by_job(o: &Cached) -> Vec<String> {
    let Cached::Pod(p) = o else { return vec![] };
    super::kinds::controller_of(&p.metadata, "Job")
        .map(|(n, _)| vec![format!("{}/{n}", super::kinds::namespace(&p.metadata))])
        .unwrap_or_default()
}

fn by_service_name(o: &Cached) -> Vec<String> {
    let m = o.meta();
    m.labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .map(|s| vec![format!("{}/{s}", super::kinds::namespace(m))])
        .unwrap_or_default()
}

fn unscheduled(o: &Cached) -> Vec<String> {
    let Cached::Pod(p) = o else { return vec![] };
    if node_name(p).is_empty() && p.metadata.deletion_timestamp.is_none() {
        return vec!["true".into()];
    }
    vec![]
}

#[derive(Default)]
struct Cache {
    items: HashMap<String, Obj>,
    indexes: HashMap<&'static str, HashMap<String, BTreeSet<String>>>,
    revision: u64,
    synced: bool,
    subs: Vec<tokio::sync::mpsc::UnboundedSender<Notice>>,
}

/// One resource's cache and its subscribers.
pub struct Informer {
    prefix: String,
    decode: Option<super::kinds::Decoder>,
    indexers: Vec<(&'static str, IndexFn)>,
    cache: RwLock<Cache>,
    synced: tokio::sync::Notify,
}

impl std::fmt::Debug for Informer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Informer {
    /// An informer of `prefix` (not started).
    pub fn new(prefix: &str) -> Informer {
        let pods = prefix == "/registry/pods/";
        let mut indexers: Vec<(&'static str, IndexFn)> = vec![
            (index::NAMESPACE, by_namespace),
            (index::OWNER, by_owner),
            (index::CONTROLLER, by_controller),
            (index::UID, by_uid),
        ];
        if pods {
            indexers.push((index::NODE, by_node));
            indexers.push((index::UNSCHEDULED, unscheduled));
            indexers.push((index::JOB, by_job));
        }
        if prefix == "/registry/discovery.k8s.io/endpointslices/" {
            indexers.push((index::SERVICE_NAME, by_service_name));
        }
        Informer {
            prefix: prefix.to_string(),
            decode: super::kinds::decoder(prefix),
            indexers,
            cache: RwLock::new(Cache::default()),
            synced: tokio::sync::Notify::new(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The storage prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object under a storage key.
    pub fn get(&self, key: &str) -> Option<Obj> {
        self.read().items.get(key).cloned()
    }

    /// The objects whose `index` yields `value`.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Obj> {
        let c = self.read();
        c.indexes
            .get(index)
            .and_then(|m| m.get(value))
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| c.items.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many objects `index` maps to `value`.
    pub fn count(&self, index: &str, value: &str) -> usize {
        self.read()
            .indexes
            .get(index)
            .and_then(|m| m.get(value))
            .map_or(0, BTreeSet::len)
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Obj> {
        self.read().items.values().cloned().collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.read().items.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store revision the cache reflects.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    /// Whether the first list is in.
    pub fn has_synced(&self) -> bool {
        self.read().synced
    }

    /// Waits for the first list (`cache.WaitForCacheSync`).
    pub async fn wait_synced(&self) {
        loop {
            let n = self.synced.notified();
            if self.has_synced() {
                return;
            }
            n.await;
        }
    }

    /// Delivers every later change to `tx`.
    pub fn subscribe(&self, tx: tokio::sync::mpsc::UnboundedSender<Notice>) {
        self.write().subs.push(tx);
    }

    fn unindex(&self, c: &mut Cache, key: &str, o: &Cached) {
        for (name, f) in &self.indexers {
            if let Some(m) = c.indexes.get_mut(name) {
                for v in f(o) {
                    if let Some(set) = m.get_mut(&v) {
                        set.remove(key);
                        if set.is_empty() {
                            m.remove(&v);
                        }
                    }
                }
            }
        }
    }

    fn index(&self, c: &mut Cache, key: &str, o: &Cached) {
        for (name, f) in &self.indexers {
            let m = c.indexes.entry(name).or_default();
            for v in f(o) {
                m.entry(v).or_default().insert(key.to_string());
            }
        }
    }

    /// Stores `obj` under `key` (or removes it), updates the indexes and notifies.
    fn put(&self, c: &mut Cache, key: &str, obj: Option<Obj>, revision: u64) {
        let old = match &obj {
            Some(o) => c.items.insert(key.to_string(), o.clone()),
            None => c.items.remove(key),
        };
        if let Some(o) = &old {
            self.unindex(c, key, o);
        }
        if let Some(o) = &obj {
            self.index(c, key, o);
        }
        c.revision = c.revision.max(revision);
        let notice = match (obj, old) {
            (Some(o), old) => Notice {
                key: key.to_string(),
                obj: o,
                old,
                deleted: false,
            },
            (None, Some(old)) => Notice {
                key: key.to_string(),
                obj: old,
                old: None,
                deleted: true,
            },
            (None, None) => return,
        };
        c.subs.retain(|tx| tx.send(notice.clone()).is_ok());
    }

    /// Decodes a stored object; one that does not decode is logged with its key and skipped
    /// (the cache keeps what it had).
    fn decode(&self, kv: &KeyValue) -> Option<Cached> {
        let Some(decode) = self.decode else {
            tracing::warn!(prefix = %self.prefix, key = %kv.key, "informer: no type for this prefix; object skipped");
            return None;
        };
        match decode(&kv.value, kv.mod_revision) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(key = %kv.key, error = %e, "informer: object does not decode; skipped");
                None
            }
        }
    }

    /// Applies one watch event.
    pub fn apply(&self, ev: &Event) {
        match ev {
            Event::Put { kv, .. } => {
                let Some(o) = self.decode(kv) else { return };
                let mut c = self.write();
                self.put(&mut c, &kv.key, Some(o), kv.mod_revision);
            }
            Event::Delete { prev, revision } => {
                let mut c = self.write();
                self.put(&mut c, &prev.key, None, *revision);
            }
        }
    }

    /// Replaces the cache with a list read at `revision`; what differs is delivered as changes.
    pub fn replace(&self, items: &[KeyValue], revision: u64) {
        let fresh: HashMap<&str, &KeyValue> =
            items.iter().map(|kv| (kv.key.as_str(), kv)).collect();
        let mut c = self.write();
        let gone: Vec<String> = c
            .items
            .keys()
            .filter(|k| !fresh.contains_key(k.as_str()))
            .cloned()
            .collect();
        for k in gone {
            self.put(&mut c, &k, None, revision);
        }
        for kv in items {
            let same = c.items.get(&kv.key).is_some_and(|o| {
                super::kinds::resource_version(o.meta()) == kv.mod_revision.to_string()
            });
            if !same {
                if let Some(o) = self.decode(kv) {
                    self.put(&mut c, &kv.key, Some(o), revision);
                }
            }
        }
        c.revision = revision;
        if !c.synced {
            c.synced = true;
            self.synced.notify_waiters();
        }
    }

    /// Lists and watches until the task is aborted ([`crate::reflector::run`], client-go's
    /// `Reflector.Run`): a watch that ends or fails is followed by a new list.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Datastore>) {
        let prefix = self.prefix.clone();
        crate::reflector::run(store, &prefix, self.as_ref(), "informer").await;
    }
}

/// The informer is what its reflector fills (`SharedIndexInformer`'s `DeltaFIFO` and indexer).
impl crate::reflector::Sink for Informer {
    fn replace(&self, items: Vec<KeyValue>, revision: u64) {
        Informer::replace(self, &items, revision);
    }

    fn apply(&self, event: Event) {
        Informer::apply(self, &event);
    }
}

/// An informer read as `K` (a lister, `listers.PodLister` and the like).
pub struct Typed<K> {
    inner: Arc<Informer>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Typed<K> {
    fn clone(&self) -> Self {
        Typed {
            inner: self.inner.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Typed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<K: Kind> Typed<K> {
    fn typed(objs: Vec<Cached>) -> Vec<Arc<K>> {
        objs.iter().filter_map(|o| K::cached(o).cloned()).collect()
    }

    /// The storage prefix.
    pub fn prefix(&self) -> &str {
        self.inner.prefix()
    }

    /// The object under a storage key.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.inner.get(key).as_ref().and_then(K::cached).cloned()
    }

    /// The object `namespace/name` (`name` when cluster-scoped).
    pub fn get_named(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.get(&super::kinds::resource_of::<K>().key(namespace, name))
    }

    /// The objects whose `index` yields `value`.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        Self::typed(self.inner.by_index(index, value))
    }

    /// How many objects `index` maps to `value`.
    pub fn count(&self, index: &str, value: &str) -> usize {
        self.inner.count(index, value)
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        Self::typed(self.inner.list())
    }

    /// The untyped informer.
    pub fn informer(&self) -> &Arc<Informer> {
        &self.inner
    }
}

/// The informers of one controller manager (`SharedInformerFactory`): one per storage prefix,
/// started on first use, stopped when the factory is dropped.
#[derive(Clone)]
pub struct Informers {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Datastore>,
    map: Mutex<HashMap<String, Arc<Informer>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Informers list and watch on first use (tests fill them by hand otherwise).
    start: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl std::fmt::Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers").finish_non_exhaustive()
    }
}

impl Informers {
    /// A factory over `store`.
    pub fn new(store: Arc<dyn Datastore>) -> Informers {
        Informers {
            inner: Arc::new(Inner {
                store,
                map: Mutex::new(HashMap::new()),
                tasks: Mutex::new(vec![]),
                start: true,
            }),
        }
    }

    /// A factory whose informers are not started: a test fills them ([`test_support::refresh`])
    /// when it wants the cache to catch up with the store, and not before.
    #[cfg(test)]
    pub fn unstarted(store: Arc<dyn Datastore>) -> Informers {
        Informers {
            inner: Arc::new(Inner {
                store,
                map: Mutex::new(HashMap::new()),
                tasks: Mutex::new(vec![]),
                start: false,
            }),
        }
    }

    /// The informer of `prefix`, started if it is not yet.
    pub fn informer(&self, prefix: &str) -> Arc<Informer> {
        let mut map = self.inner.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = map.get(prefix) {
            return i.clone();
        }
        let i = Arc::new(Informer::new(prefix));
        map.insert(prefix.to_string(), i.clone());
        if !self.inner.start {
            return i;
        }
        let task = tokio::spawn(i.clone().run(self.inner.store.clone()));
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        i
    }

    /// The typed informer of `K`.
    pub fn of<K: Kind>(&self) -> Typed<K> {
        Typed {
            inner: self.informer(&super::kinds::resource_of::<K>().key_prefix()),
            _kind: PhantomData,
        }
    }

    /// Stops every informer and waits until they are gone (they hold the datastore).
    pub async fn stop(&self) {
        let tasks: Vec<_> = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// What the controllers' tests share: a store that counts the lists it serves, and caches
/// brought up to date by hand.
#[cfg(test)]
pub mod test_support {
    use super::*;

    pub use crate::teststore::TestStore;

    /// A store with the namespaces that always exist, its object layer, and informers that
    /// catch up only when [`Env::refresh`] says so.
    pub struct Env {
        /// The store.
        pub store: Arc<TestStore>,
        /// The object layer over it.
        pub objects: crate::objects::Objects,
        /// Unstarted informers over it.
        pub informers: Informers,
    }

    impl Env {
        /// A bootstrapped store.
        pub async fn new() -> Env {
            let store = Arc::new(TestStore::default());
            let dyn_store: Arc<dyn Datastore> = store.clone();
            let objects = crate::objects::Objects::new(dyn_store.clone());
            objects.bootstrap().await.expect("bootstrap");
            Env {
                objects,
                informers: Informers::unstarted(dyn_store),
                store,
            }
        }

        /// Brings the cache of `K` up to date; returns the changes it delivered.
        pub async fn refresh<K: Kind>(&self) -> Vec<Notice> {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            self.informers.of::<K>().informer().subscribe(tx);
            refresh::<K>(&self.informers, self.store.as_ref()).await;
            let mut out = vec![];
            while let Ok(n) = rx.try_recv() {
                out.push(n);
            }
            out
        }

        /// Stores `obj` of `K` as is (no admission), at its namespace and name.
        pub async fn put<K: Kind>(&self, obj: serde_json::Value) {
            let m = &obj["metadata"];
            let key = super::super::kinds::resource_of::<K>().key(
                m["namespace"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or(""),
            );
            self.store
                .create(&key, serde_json::to_vec(&obj).expect("json"))
                .await
                .expect("stored");
        }

        /// The stored objects of `K`.
        pub async fn stored<K: Kind>(&self) -> Vec<serde_json::Value> {
            let prefix = super::super::kinds::resource_of::<K>().key_prefix();
            let l = self
                .store
                .uncounted()
                .list(&prefix, None, 0, None)
                .await
                .expect("listing the store");
            l.items
                .iter()
                .map(|kv| serde_json::from_slice(&kv.value).expect("json"))
                .collect()
        }

        /// Runs `sync` and checks that it listed nothing from storage.
        pub async fn no_lists<T>(&self, sync: impl std::future::Future<Output = T>) -> T {
            let lists = self.store.lists();
            let out = sync.await;
            assert_eq!(
                self.store.lists(),
                lists,
                "a sync lists nothing from storage"
            );
            out
        }
    }

    impl std::ops::Deref for Env {
        type Target = TestStore;
        fn deref(&self) -> &TestStore {
            &self.store
        }
    }

    /// Brings the cache of `K` up to date with `store` (a relist: what changed is delivered
    /// to the subscribers).
    pub async fn refresh<K: Kind>(informers: &Informers, store: &dyn Datastore) {
        let i = informers.of::<K>();
        let l = store
            .list(i.prefix(), None, 0, None)
            .await
            .expect("listing the store");
        i.informer().replace(&l.items, l.revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubepull_datastore::memory::MemoryStore;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn pod(name: &str, node: &str, owner: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"metadata": {"name": name, "namespace": "a", "uid": format!("u-{name}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "uid": owner, "controller": true, "kind": "ReplicaSet", "name": "rs"}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}))
        .unwrap()
    }

    #[tokio::test]
    async fn lists_then_watches_with_indexes_and_notices() {
        let store: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
        store
            .create("/registry/pods/a/p1", pod("p1", "n1", "rs1"))
            .await
            .unwrap();
        store
            .create("/registry/pods/a/p2", pod("p2", "", "rs1"))
            .await
            .unwrap();
        let f = Informers::new(store.clone());
        let pods = f.informer("/registry/pods/");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        pods.subscribe(tx);
        pods.wait_synced().await;
        assert_eq!(pods.len(), 2);
        assert_eq!(pods.count(index::CONTROLLER, "rs1"), 2);
        assert_eq!(pods.count(index::NODE, "n1"), 1);
        assert_eq!(pods.count(index::UNSCHEDULED, "true"), 1);
        // trimmed: no containers
        let typed = f.of::<Pod>();
        let p1 = typed.get("/registry/pods/a/p1").unwrap();
        assert!(p1.spec.as_ref().unwrap().containers.is_empty());
        assert_eq!(node_name(&p1), "n1");
        // the same informer for a second user
        assert!(Arc::ptr_eq(&pods, &f.informer("/registry/pods/")));
        assert!(Arc::ptr_eq(&pods, typed.informer()));
        // a later change arrives with the state before it; indexes follow
        let kv = store.get("/registry/pods/a/p2").await.unwrap().unwrap();
        store
            .update(
                "/registry/pods/a/p2",
                pod("p2", "n1", "rs1"),
                kv.mod_revision,
            )
            .await
            .unwrap();
        let mut seen = vec![];
        while seen.len() < 3 {
            let n = rx.recv().await.unwrap();
            seen.push(n);
        }
        let upd = seen
            .iter()
            .find(|n| n.key.ends_with("p2") && n.old.is_some())
            .unwrap();
        assert_eq!(node_name(upd.obj::<Pod>().unwrap()), "n1");
        assert_eq!(node_name(upd.old::<Pod>().unwrap()), "");
        assert_eq!(pods.count(index::NODE, "n1"), 2);
        assert_eq!(pods.count(index::UNSCHEDULED, "true"), 0);
        store.delete("/registry/pods/a/p1", None).await.unwrap();
        let del = rx.recv().await.unwrap();
        assert!(del.deleted && del.key.ends_with("p1"));
        assert_eq!(pods.count(index::CONTROLLER, "rs1"), 1);
        assert_eq!(pods.revision(), store.current_revision().await.unwrap());
    }

    /// A watch the store closes because the informer fell behind (the memory store's bounded
    /// buffer, etcd's compaction) is followed by a list: the cache ends up whole, and every
    /// object reaches the subscribers.
    #[tokio::test]
    async fn a_closed_watch_is_followed_by_a_relist() {
        let store: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
        let f = Informers::new(store.clone());
        let pods = f.informer("/registry/pods/");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        pods.subscribe(tx);
        pods.wait_synced().await;
        // on this single-threaded runtime the informer does not run while the writes go in,
        // so more events than the watch buffers pile up and the store closes the watch
        let n = kubepull_datastore::memory::WATCH_BUFFER + 100;
        for k in 0..n {
            store
                .create(
                    &format!("/registry/pods/a/p{k}"),
                    pod(&format!("p{k}"), "", "rs1"),
                )
                .await
                .unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        while seen.len() < n {
            let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("every pod delivered")
                .unwrap();
            seen.insert(got.key);
        }
        assert_eq!(pods.len(), n);
        assert_eq!(pods.count(index::CONTROLLER, "rs1"), n);
        // and it watches again afterwards
        store.delete("/registry/pods/a/p0", None).await.unwrap();
        let del = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let n = rx.recv().await.unwrap();
                if n.deleted {
                    return n;
                }
            }
        })
        .await
        .unwrap();
        assert!(del.key.ends_with("/p0"));
        assert_eq!(pods.len(), n - 1);
    }

    #[test]
    fn an_object_that_does_not_decode_is_skipped() {
        let i = Informer::new("/registry/pods/");
        let kv = |k: &str, v: Value, rev: u64| KeyValue {
            key: format!("/registry/pods/a/{k}"),
            value: serde_json::to_vec(&v).unwrap(),
            create_revision: rev,
            mod_revision: rev,
        };
        let good = json!({"metadata": {"name": "good", "namespace": "a", "uid": "g"}});
        // a field of the wrong type
        let bad = json!({"metadata": {"name": "bad", "namespace": "a", "uid": "b",
            "ownerReferences": [{"controller": "yes"}]}});
        i.replace(&[kv("good", good.clone(), 1), kv("bad", bad.clone(), 2)], 2);
        assert_eq!(i.len(), 1);
        assert!(i.get("/registry/pods/a/good").is_some());
        // an update that does not decode keeps the last good state
        i.apply(&Event::Put {
            kv: kv("good", bad, 3),
            prev: None,
        });
        assert_eq!(
            i.get("/registry/pods/a/good")
                .unwrap()
                .meta()
                .resource_version
                .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn a_relist_delivers_the_differences() {
        let i = Informer::new("/registry/apps/replicasets/");
        let kv = |k: &str, rev: u64| KeyValue {
            key: format!("/registry/apps/replicasets/a/{k}"),
            value: serde_json::to_vec(
                &json!({"metadata": {"name": k, "namespace": "a", "uid": k}}),
            )
            .unwrap(),
            create_revision: rev,
            mod_revision: rev,
        };
        i.replace(&[kv("x", 1), kv("y", 2)], 2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        i.subscribe(tx);
        // y changed, x gone, z new; an unchanged object is not delivered again
        i.replace(&[kv("y", 5), kv("z", 6)], 7);
        let mut got = vec![];
        while let Ok(n) = rx.try_recv() {
            got.push((n.key.rsplit('/').next().unwrap().to_string(), n.deleted));
        }
        got.sort();
        assert_eq!(
            got,
            [
                ("x".to_string(), true),
                ("y".into(), false),
                ("z".into(), false)
            ]
        );
        assert_eq!(i.revision(), 7);
        assert_eq!(i.count(index::UID, "x"), 0);
        i.replace(&[kv("y", 5), kv("z", 6)], 8);
        assert!(rx.try_recv().is_err());
    }
}
