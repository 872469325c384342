//! API watches fanned out from one datastore watch per resource.
//!
//! Ported in spirit from kube-apiserver's cacher (`k8s.io/apiserver/pkg/storage/cacher`):
//! `cacher.go` keeps one storage watch per resource and dispatches each event, decoded once, to
//! every watcher (`dispatchEvent`), each watcher filtering it by key and selectors
//! (`cacheWatcher.add`); `watch_cache.go` keeps the recent events in a cyclic buffer so a watch from
//! a recent resourceVersion replays from memory; `caching_object.go` serializes an object once
//! for every watcher that writes it in the same form. Here:
//!
//! - one [`Fanout`] per stored resource prefix and served kind: one datastore watch, each event
//!   decoded once into a [`Decoded`] shared by every watcher (the JSON line of each event type is
//!   encoded at most once, by the first watcher that writes it);
//! - the last [`RING`] events are kept; a watch from a revision older than the ring (or from
//!   before the fan-out started) is served by its own datastore watch as before;
//! - a watcher that falls more than [`BUFFER`] events behind loses its watch (its stream ends and
//!   the client lists again, as when the datastore drops a slow watcher);
//! - a fan-out whose watchers are all gone stops (its datastore watch is dropped), so an idle
//!   server keeps none; when its datastore watch ends, its watchers' streams end.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use kubepull_datastore::{Datastore, Event, Result, Revision};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Recent events kept for watches that start a little in the past.
pub const RING: usize = 256;
/// How far a watcher may fall behind before its watch ends.
pub const BUFFER: usize = 1_024;
/// How often a fan-out without watchers is looked for while no event arrives.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// One change, decoded once for every watcher.
#[derive(Debug)]
pub struct Decoded {
    /// The event's revision.
    pub revision: Revision,
    /// The storage key.
    pub key: String,
    /// The object as served (`kind`, `apiVersion`, `resourceVersion` set; after a delete, its
    /// last state with the delete's revision).
    pub object: Arc<Value>,
    /// The state before an update as stored (see [`Decoded::prev`]).
    prev: Option<Value>,
    /// The kind's resource, for the defaults of [`Decoded::prev`].
    resource: Option<&'static crate::resources::Resource>,
    /// `prev` read with the kind's defaults, made once when first asked.
    prev_served: OnceLock<Option<Value>>,
    /// The key was deleted.
    pub deleted: bool,
    /// The JSON watch lines, `ADDED`, `MODIFIED`, `DELETED`, each encoded once when first asked.
    lines: [OnceLock<Bytes>; 3],
}

/// A JSON watch line: `{"type":…,"object":…}` and a newline (apimachinery's `watch.Event`
/// through the JSON serializer), without copying the object.
pub fn json_line(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut v = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

impl Decoded {
    /// The state before an update (for selectors: an object that stops matching is `DELETED`),
    /// read with the kind's defaults as the object itself is: the etcd watcher decodes the
    /// previous value through the storage codec, which defaults it, whenever the watch's filter
    /// does not accept everything (`watchChan.prepareObjs`,
    /// k8s.io/apiserver `pkg/storage/etcd3/watcher.go`). Decoded at most once, on first use, so
    /// watches without selectors never pay for it ([`Decoded::prev_stored`]). A kind without
    /// stored defaults (a ConfigMap, an Event) reads as stored: its value, not a copy.
    pub fn prev(&self) -> Option<&Value> {
        match self.resource {
            Some(r) if crate::admission::has_stored_defaults(r) => self
                .prev_served
                .get_or_init(|| {
                    let mut p = self.prev.clone()?;
                    crate::admission::default_stored(r, &mut p);
                    Some(p)
                })
                .as_ref(),
            _ => self.prev.as_ref(),
        }
    }

    /// The state before an update as stored, without the kind's defaults: enough for a watch
    /// that selects on nothing but its namespace.
    pub fn prev_stored(&self) -> Option<&Value> {
        self.prev.as_ref()
    }

    /// The JSON watch line of this event as `kind` (`ADDED`, `MODIFIED`, `DELETED`), encoded at
    /// most once.
    pub fn json_line(&self, kind: &str) -> Bytes {
        let i = match kind {
            "ADDED" => 0,
            "MODIFIED" => 1,
            "DELETED" => 2,
            _ => return json_line(kind, &self.object),
        };
        self.lines[i]
            .get_or_init(|| json_line(kind, &self.object))
            .clone()
    }
}

struct Ring {
    /// Events after this revision are in `events` (or still to come).
    floor: Revision,
    events: VecDeque<Arc<Decoded>>,
    /// `None` once the datastore watch ended.
    tx: Option<broadcast::Sender<Arc<Decoded>>>,
}

/// One datastore watch shared by the API watches of one resource.
pub struct Fanout {
    ring: Mutex<Ring>,
}

impl Fanout {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a new watcher gets: the kept events after its revision, then the live ones.
pub struct Subscription {
    /// Kept events with a revision after the one asked for, oldest first.
    pub replay: Vec<Arc<Decoded>>,
    /// Later events.
    pub live: broadcast::Receiver<Arc<Decoded>>,
}

/// Which fan-out: the stored prefix, and the kind and apiVersion events are served as.
type Id = (String, &'static str, String);

/// The fan-outs of one API server.
#[derive(Default)]
pub struct Fanouts {
    map: Arc<Mutex<HashMap<Id, Arc<Fanout>>>>,
}

impl std::fmt::Debug for Fanouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.map.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("Fanouts").field("active", &n).finish()
    }
}

fn decode(kind: &str, api_version: &str, ev: Event) -> Arc<Decoded> {
    // read as every read from storage is: an Event in its group's shape
    // (`crate::events::served`), with the kind's defaults (`crate::admission::default_stored`)
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let resource = crate::resources::by_kind(group, kind);
    let served = |kv: &kubepull_datastore::KeyValue| {
        let mut o = crate::objects::decode(kv);
        if let Some(r) = resource {
            // an Event in the shape of the group it is watched through
            o = crate::events::served(r, o);
            crate::admission::default_stored(r, &mut o);
        }
        if o.is_object() {
            o["kind"] = json!(kind);
            o["apiVersion"] = json!(api_version);
        }
        o
    };
    let (revision, key, object, prev, deleted) = match ev {
        Event::Put { kv, prev } => (
            kv.mod_revision,
            kv.key.clone(),
            served(&kv),
            prev.as_ref().map(crate::objects::decode),
            false,
        ),
        Event::Delete { prev, revision } => {
            let mut o = served(&prev);
            if o.is_object() {
                o["metadata"]["resourceVersion"] = json!(revision.to_string());
            }
            (revision, prev.key, o, None, true)
        }
    };
    Arc::new(Decoded {
        revision,
        key,
        object: Arc::new(object),
        prev,
        resource,
        prev_served: OnceLock::new(),
        deleted,
        lines: Default::default(),
    })
}

impl Fanouts {
    /// Subscribes to the events under `prefix` (a resource's whole prefix) after `after`, served
    /// as `kind`/`api_version`. `Ok(None)`: `after` is older than the events kept; the caller
    /// watches the datastore itself.
    pub async fn subscribe(
        &self,
        store: &Arc<dyn Datastore>,
        prefix: &str,
        kind: &'static str,
        api_version: &str,
        after: Revision,
    ) -> Result<Option<Subscription>> {
        let id: Id = (prefix.to_string(), kind, api_version.to_string());
        if let Some(sub) = self.try_subscribe(&id, after) {
            return Ok(sub);
        }
        // start one: its history begins at the current revision
        let floor = store.current_revision().await?;
        let w = store.watch(prefix, floor).await?;
        let (tx, _) = broadcast::channel(BUFFER);
        let f = Arc::new(Fanout {
            ring: Mutex::new(Ring {
                floor,
                events: VecDeque::new(),
                tx: Some(tx),
            }),
        });
        {
            let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if m.contains_key(&id) {
                // another watcher started it meanwhile: use that one (ours is dropped)
                drop(m);
                return Ok(self.try_subscribe(&id, after).flatten());
            }
            m.insert(id.clone(), f.clone());
        }
        let sub = subscribe_to(&f, after);
        tokio::spawn(run(self.map.clone(), id, f, w));
        Ok(sub)
    }

    /// How many fan-outs are running.
    pub fn active(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// `None`: no fan-out for `id`; `Some(None)`: too old for it.
    fn try_subscribe(&self, id: &Id, after: Revision) -> Option<Option<Subscription>> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let f = m.get(id)?;
        Some(subscribe_to(f, after))
    }
}

fn subscribe_to(f: &Fanout, after: Revision) -> Option<Subscription> {
    let r = f.lock();
    let tx = r.tx.as_ref()?;
    if after < r.floor {
        return None;
    }
    Some(Subscription {
        replay: r
            .events
            .iter()
            .filter(|e| e.revision > after)
            .cloned()
            .collect(),
        live: tx.subscribe(),
    })
}

/// Reads the datastore watch, decodes each event once, keeps and dispatches it; stops when the
/// watch ends or no watcher is left.
async fn run(
    map: Arc<Mutex<HashMap<Id, Arc<Fanout>>>>,
    id: Id,
    f: Arc<Fanout>,
    mut w: kubepull_datastore::Watch,
) {
    let (kind, api_version) = (id.1, id.2.clone());
    let mut idle = tokio::time::interval(IDLE_CHECK);
    idle.tick().await;
    loop {
        let ev = tokio::select! {
            ev = w.events.recv() => ev,
            _ = idle.tick() => {
                if stop_if_unwatched(&map, &id, &f) {
                    return;
                }
                continue;
            }
        };
        let ev = match ev {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                tracing::debug!("watch of {}: {e}; its watchers list again", id.0);
                break;
            }
            None => break,
        };
        let d = decode(kind, &api_version, ev);
        {
            let mut r = f.lock();
            r.events.push_back(d.clone());
            while r.events.len() > RING {
                if let Some(old) = r.events.pop_front() {
                    r.floor = old.revision;
                }
            }
            if let Some(tx) = &r.tx {
                let _ = tx.send(d);
            }
        }
        if stop_if_unwatched(&map, &id, &f) {
            return;
        }
    }
    // the datastore watch ended: new watchers start another one; these end (and list again)
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    if m.get(&id).is_some_and(|x| Arc::ptr_eq(x, &f)) {
        m.remove(&id);
    }
    f.lock().tx = None;
}

/// Removes the fan-out when nobody watches it any more (under the map's lock, so no watcher
/// subscribes meanwhile).
fn stop_if_unwatched(map: &Mutex<HashMap<Id, Arc<Fanout>>>, id: &Id, f: &Arc<Fanout>) -> bool {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    let mut r = f.lock();
    if r.tx.as_ref().is_some_and(|t| t.receiver_count() > 0) {
        return false;
    }
    if m.get(id).is_some_and(|x| Arc::ptr_eq(x, f)) {
        m.remove(id);
    }
    r.tx = None;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Filter, ListOptions, Objects, User, WatchEvent};
    use kubepull_datastore::memory::MemoryStore;
    use std::time::Duration;

    fn put(key: &str, obj: Value, prev: Value) -> Event {
        let kv = |v: &Value, rev: Revision| kubepull_datastore::KeyValue {
            key: key.into(),
            value: serde_json::to_vec(v).unwrap(),
            create_revision: 2,
            mod_revision: rev,
        };
        Event::Put {
            kv: kv(&obj, 3),
            prev: Some(kv(&prev, 2)),
        }
    }

    /// The previous state of a kind without stored defaults is the stored value itself (no
    /// copy per event); a Pod's is read with the pod defaults.
    #[test]
    fn prev_is_copied_only_for_kinds_with_stored_defaults() {
        let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"a": "b"}});
        let d = decode(
            "ConfigMap",
            "v1",
            put("/registry/configmaps/default/c", cm.clone(), cm),
        );
        let (served, stored) = (d.prev().unwrap(), d.prev_stored().unwrap());
        assert!(
            std::ptr::eq(served, stored),
            "a ConfigMap's prev is not copied"
        );
        assert_eq!(served["data"]["a"], "b");
        let pod = json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let d = decode(
            "Pod",
            "v1",
            put("/registry/pods/default/p", pod.clone(), pod),
        );
        assert_eq!(d.prev_stored().unwrap()["spec"].get("restartPolicy"), None);
        assert_eq!(
            d.prev().unwrap()["spec"]["restartPolicy"],
            "Always",
            "defaulted"
        );
    }

    async fn next(
        rx: &mut tokio::sync::mpsc::Receiver<crate::errors::ApiResult<WatchEvent>>,
    ) -> WatchEvent {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("event in time")
            .expect("watch open")
            .expect("event")
    }

    fn name(e: &WatchEvent) -> &str {
        e.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Watchers of one resource share each decoded event and its JSON line; each applies its own
    /// namespace and selector (an update that stops matching is DELETED); a watch from before the
    /// fan-out's history gets its own datastore watch; the fan-out stops with its last watcher.
    #[tokio::test]
    async fn watchers_share_one_decoded_event() {
        let store: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
        let o = Objects::new(store.clone());
        o.bootstrap().await.unwrap();
        let cm = crate::resources::find("", "v1", "configmaps").unwrap();
        let rev = store.current_revision().await.unwrap();
        let all = Filter::new(&ListOptions::default(), cm, None).unwrap();
        let web = Filter::new(
            &ListOptions {
                label_selector: Some("app=web".into()),
                ..Default::default()
            },
            cm,
            Some("default"),
        )
        .unwrap();
        let mut a = o.watch(cm, None, rev, all.clone()).await.unwrap();
        let mut b = o.watch(cm, Some("default"), rev, web).await.unwrap();
        let body = |n: &str, app: &str| json!({"metadata": {"name": n, "labels": {"app": app}}, "data": {"k": "v"}});
        let c1 = o
            .create(cm, "default", body("c1", "web"), &User::Admin, false)
            .await
            .unwrap();
        o.create(cm, "kube-system", body("c2", "web"), &User::Admin, false)
            .await
            .unwrap();
        let (ea, eb) = (next(&mut a).await, next(&mut b).await);
        assert_eq!(
            (ea.kind, name(&ea), eb.kind, name(&eb)),
            ("ADDED", "c1", "ADDED", "c1")
        );
        let (sa, sb) = (ea.shared.clone().unwrap(), eb.shared.clone().unwrap());
        assert!(Arc::ptr_eq(&sa, &sb), "one decoded event for both watchers");
        assert_eq!(ea.json_line(), eb.json_line());
        let line: Value = serde_json::from_slice(&ea.json_line()).unwrap();
        assert_eq!(line["type"], "ADDED");
        assert_eq!(line["object"]["kind"], "ConfigMap");
        assert_eq!(
            line["object"]["metadata"]["resourceVersion"],
            c1["metadata"]["resourceVersion"]
        );
        // the other namespace: only the watcher of all namespaces
        let e = next(&mut a).await;
        assert_eq!((e.kind, name(&e)), ("ADDED", "c2"));
        // a label change that stops matching: DELETED for the selector's watcher
        let mut c1 = c1;
        c1["metadata"]["labels"]["app"] = json!("db");
        o.update(cm, "default", "c1", c1, None, false)
            .await
            .unwrap();
        let (ea, eb) = (next(&mut a).await, next(&mut b).await);
        assert_eq!((ea.kind, eb.kind), ("MODIFIED", "DELETED"));
        assert!(Arc::ptr_eq(
            ea.shared.as_ref().unwrap(),
            eb.shared.as_ref().unwrap()
        ));
        // a delete
        o.delete(cm, "kube-system", "c2", &Default::default())
            .await
            .unwrap();
        let e = next(&mut a).await;
        assert_eq!((e.kind, name(&e)), ("DELETED", "c2"));
        // a watch from the past (before the fan-out started): its own datastore watch, replaying
        let mut old = o.watch(cm, None, rev - 1, all.clone()).await.unwrap();
        let e = next(&mut old).await;
        assert_eq!((e.kind, name(&e)), ("ADDED", "c1"));
        assert!(e.shared.is_none());
        // a watch from a recent revision replays from the fan-out's ring
        let mut recent = o.watch(cm, None, rev + 1, all).await.unwrap();
        let e = next(&mut recent).await;
        assert!(e.shared.is_some());
        // every watcher gone: the fan-out stops with the next event
        drop((a, b, recent));
        tokio::time::sleep(Duration::from_millis(50)).await;
        o.create(cm, "default", body("c3", "web"), &User::Admin, false)
            .await
            .unwrap();
        let mut stopped = false;
        for _ in 0..500 {
            if o.fanouts_active() == 0 {
                stopped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(stopped, "the fan-out outlived its watchers");
    }
}
