//! The namespace lookups of NamespaceLifecycle admission, answered from a cache fed by a watch.
//!
//! Ported from kubernetes `plugin/pkg/admission/namespace/lifecycle/admission.go`
//! (`Lifecycle.Admit`): a create in a namespace is checked against the namespace informer's
//! lister first; the API server reads the namespace live (a GET from storage) only when
//!
//! - the cache does not have the namespace (it may have been created a moment ago, through this
//!   server or another one on the same etcd, and its watch event is still on the way), or
//! - this server was asked to delete the namespace within the last [`FORCE_LIVE_LOOKUP_TTL`]
//!   while the cache still shows it active (`forceLiveLookupCache`: a create right after a
//!   namespace DELETE must see it terminating), or
//! - the cache shows the namespace terminating (the live read decides: it may have been deleted
//!   and created again since).
//!
//! So a create in a known, active namespace costs no datastore read (with etcd: one round trip
//! instead of two), and a namespace being terminated still refuses creates. Upstream waits
//! `missingNamespaceWait` (50 ms) for the informer on a miss before the live read; here the live
//! read is made at once.
//!
//! The cache is a [`crate::watchcache::Cache`] of the namespaces: listed by the first lookup,
//! watched from the list's revision, listed again after its watch ended (lookups are live
//! meanwhile); namespace writes made through this server are seen by the next lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubepull_datastore::Datastore;

use crate::watchcache::Cache;

/// upstream `forceLiveLookupTTL`: how long after a namespace DELETE creates in it are checked
/// against storage while the cache still shows it active.
pub const FORCE_LIVE_LOOKUP_TTL: Duration = Duration::from_secs(30);
/// Where namespaces are stored (kube-apiserver's key layout).
const PREFIX: &str = "/registry/namespaces/";

/// The namespaces as last seen by a watch (see the module documentation).
#[derive(Debug)]
pub struct NamespaceCache {
    cache: Arc<Cache>,
    /// upstream `forceLiveLookupCache`: namespaces this server was asked to delete, and when.
    forced: Mutex<HashMap<String, Instant>>,
}

impl Default for NamespaceCache {
    fn default() -> Self {
        Self::new()
    }
}

impl NamespaceCache {
    /// An empty cache; the first lookup lists the namespaces.
    pub fn new() -> NamespaceCache {
        NamespaceCache {
            cache: Arc::new(Cache::new(PREFIX)),
            forced: Mutex::default(),
        }
    }

    /// The underlying cache (writes through [`crate::watchcache::Tracked`] are noted on it, so
    /// this server sees its own namespace writes at once).
    pub fn cache(&self) -> Arc<Cache> {
        self.cache.clone()
    }

    fn forced(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.forced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the cache knows `ns` exists and is not terminating (no
    /// `metadata.deletionTimestamp`, as the live check reads it), and no recent DELETE of it asks
    /// for a live lookup: the create may go on without reading the namespace. False means "read
    /// it from the datastore".
    pub async fn known_active(&self, store: &Arc<dyn Datastore>, ns: &str) -> bool {
        {
            let mut f = self.forced();
            match f.get(ns) {
                Some(at) if at.elapsed() < FORCE_LIVE_LOOKUP_TTL => return false,
                Some(_) => {
                    f.remove(ns);
                }
                None => {}
            }
        }
        let key = format!("{PREFIX}{ns}");
        self.cache
            .read(store, |items| {
                items.get(&key).is_some_and(|n| {
                    n.pointer("/metadata/deletionTimestamp")
                        .is_none_or(|t| t.is_null())
                })
            })
            .await
            .unwrap_or(false)
    }

    /// A DELETE of namespace `ns` was admitted: creates in it look it up live for the next
    /// [`FORCE_LIVE_LOOKUP_TTL`] (upstream adds it before the delete, which may still fail).
    pub fn force_live_lookup(&self, ns: &str) {
        let mut f = self.forced();
        let now = Instant::now();
        f.retain(|_, at| now.duration_since(*at) < FORCE_LIVE_LOOKUP_TTL);
        f.insert(ns.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubepull_datastore::memory::MemoryStore;

    #[tokio::test]
    async fn follows_the_store_and_forces_live_lookups() {
        let store: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
        store
            .create(
                "/registry/namespaces/a",
                br#"{"metadata":{"name":"a"}}"#.to_vec(),
            )
            .await
            .unwrap();
        let c = NamespaceCache::new();
        // listed by the first lookup
        assert!(c.known_active(&store, "a").await);
        assert!(
            !c.known_active(&store, "b").await,
            "unknown namespaces are looked up live"
        );
        // created later (elsewhere: not noted): seen through the watch
        let rb = store
            .create(
                "/registry/namespaces/b",
                br#"{"metadata":{"name":"b"}}"#.to_vec(),
            )
            .await
            .unwrap();
        let mut seen = false;
        for _ in 0..500 {
            if c.known_active(&store, "b").await {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen, "the watch did not bring namespace b");
        // terminating: not active (noted as a write through this server: seen at once)
        let rt = store
            .update(
                "/registry/namespaces/b",
                br#"{"metadata":{"name":"b","deletionTimestamp":"2026-01-01T00:00:00Z"}}"#.to_vec(),
                rb,
            )
            .await
            .unwrap();
        c.cache().note_write(rt);
        assert!(!c.known_active(&store, "b").await);
        // removed: not known
        let (rd, _) = store.delete("/registry/namespaces/b", None).await.unwrap();
        c.cache().note_write(rd);
        assert!(!c.known_active(&store, "b").await);
        // a DELETE admitted here: live lookups although the cache still shows it active
        assert!(c.known_active(&store, "a").await);
        c.force_live_lookup("a");
        assert!(!c.known_active(&store, "a").await);
    }

    /// NamespaceLifecycle through the API: creates in a namespace made a moment ago through
    /// another server on the same store succeed (a cache miss is read live), creates right after
    /// a DELETE of the namespace are refused, and a missing namespace is 404.
    #[tokio::test]
    async fn admission_through_two_servers_on_one_store() {
        use crate::objects::{DeleteOptions, Objects, User};
        use serde_json::json;
        let store: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
        let (a, b) = (Objects::new(store.clone()), Objects::new(store.clone()));
        let nsr = crate::resources::find("", "v1", "namespaces").unwrap();
        let sr = crate::resources::find("", "v1", "secrets").unwrap();
        let secret = |n: &str| json!({"metadata": {"name": n}, "data": {"k": "dg=="}});
        let e = b
            .create(sr, "nope", secret("s0"), &User::Admin, false)
            .await;
        assert_eq!(e.unwrap_err().code, 404);
        for i in 0..20 {
            let ns = format!("n{i}");
            a.create(
                nsr,
                "",
                json!({"metadata": {"name": ns}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
            b.create(sr, &ns, secret("s1"), &User::Admin, false)
                .await
                .unwrap_or_else(|e| panic!("create in {ns} through the other server: {e:?}"));
        }
        // a knows n0 (its own write): creates need no read
        assert!(a.namespaces.known_active(a.store(), "n0").await);
        a.create(sr, "n0", secret("s2"), &User::Admin, false)
            .await
            .unwrap();
        // DELETE through a: a create right after it through a is refused
        a.delete(nsr, "", "n0", &DeleteOptions::default())
            .await
            .unwrap();
        let e = a
            .create(sr, "n0", secret("s3"), &User::Admin, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 403, "{e:?}");
        assert!(e.message.contains("being terminated"), "{}", e.message);
        // once b's watch shows it terminating, b refuses too
        let mut refused = false;
        for _ in 0..500 {
            if !b.namespaces.known_active(b.store(), "n0").await {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused);
        let e = b
            .create(sr, "n0", secret("s4"), &User::Admin, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 403, "{e:?}");
    }
}
