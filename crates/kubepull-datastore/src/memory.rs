//! An in-process [`Datastore`]: a sorted map plus the shared watch [`Hub`] (a bounded event
//! history and the watchers).
//!
//! Used by unit tests of the layers above, and as the reference implementation that the shared
//! conformance suite (`tests/conformance.rs`) also runs the real backends against.
//!
//! Paginated lists: a store made with [`MemoryStore::with_snapshot_limits`] (what
//! `--datastore memory` opens, with [`SnapshotLimits::default`]) reads the pages of one list as
//! one state, as the embedded store does: the map is shared copy-on-write, every list keeps the
//! map it read under its revision ([`crate::snapshots`]), and a list `at_revision` reads that map
//! (the first write after a list copies the map). [`MemoryStore::new`] keeps no snapshots: a
//! list at a past revision is `Compacted`, the store "that cannot read the past" the API
//! server's fallback (one whole read) is tested against.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;

use crate::hub::Hub;
use crate::snapshots::{SnapshotLimits, Snapshots};
use crate::{Datastore, Error, Event, KeyValue, ListResult, Result, Revision, Watch};

pub use crate::hub::{HISTORY_EVENTS, WATCH_BUFFER};
pub use crate::snapshots::{MAX_SNAPSHOTS, SNAPSHOT_TTL};

type Map = BTreeMap<String, KeyValue>;

struct Inner {
    /// Shared with the kept list snapshots; writes copy it when it is shared.
    data: Arc<Map>,
    hub: Hub,
    snapshots: Snapshots<Arc<Map>>,
}

/// The in-process store.
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_snapshot_limits(SnapshotLimits {
            ttl: std::time::Duration::ZERO,
            max: 1,
        })
    }
}

impl MemoryStore {
    /// An empty store at revision 0 that keeps no list snapshots (a list at a revision other
    /// than the current one is [`Error::Compacted`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping list snapshots as `limits` says.
    pub fn with_snapshot_limits(limits: SnapshotLimits) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                data: Arc::new(Map::new()),
                hub: Hub::new(0),
                snapshots: Snapshots::new(limits),
            }),
        }
    }

    /// How many list snapshots are kept now (each at its own revision).
    pub fn kept_snapshots(&self) -> usize {
        self.lock().snapshots.len(Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (each write is one
        // insert), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Datastore for MemoryStore {
    fn retain_list_snapshot(&self, revision: Revision) {
        self.lock().snapshots.retain(revision, Instant::now());
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.lock().hub.revision())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().data.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<ListResult> {
        let data = {
            let mut inner = self.lock();
            let now = Instant::now();
            let revision = inner.hub.revision();
            match at_revision.and_then(|r| inner.snapshots.get(r, now).map(|d| (d, r))) {
                Some((d, r)) => (d, r, false),
                None => {
                    if let Some(r) = at_revision {
                        if r != revision {
                            return Err(Error::Compacted {
                                requested: r,
                                oldest: revision,
                            });
                        }
                    }
                    (inner.data.clone(), revision, true)
                }
            }
        };
        let (data, revision, fresh) = data;
        let mut items = Vec::new();
        let mut more = false;
        let range = data.range(prefix.to_string()..);
        for (k, kv) in range {
            if !k.starts_with(prefix) {
                break;
            }
            if start_after.is_some_and(|s| k.as_str() <= s) {
                continue;
            }
            if limit != 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(kv.clone());
        }
        // a full page may be continued: its snapshot is kept (a whole read, or a page with
        // room left, is not: nothing can continue it)
        if fresh && limit != 0 && items.len() == limit {
            self.lock()
                .snapshots
                .keep(revision, data.clone(), Instant::now());
        }
        Ok(ListResult {
            items,
            revision,
            more,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let mut inner = self.lock();
        if inner.data.contains_key(key) {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        let revision = inner.hub.revision() + 1;
        let kv = KeyValue {
            key: key.to_string(),
            value,
            create_revision: revision,
            mod_revision: revision,
        };
        // expired snapshots let go of the map first: no copy for them
        inner.snapshots.expire(Instant::now());
        Arc::make_mut(&mut inner.data).insert(key.to_string(), kv.clone());
        inner.hub.publish(Event::Put { kv, prev: None });
        Ok(revision)
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let mut inner = self.lock();
        let prev = match inner.data.get(key) {
            None => {
                return Err(Error::NotFound {
                    key: key.to_string(),
                })
            }
            Some(p) if p.mod_revision != expected => {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected,
                    actual: p.mod_revision,
                })
            }
            Some(p) => p.clone(),
        };
        let revision = inner.hub.revision() + 1;
        let kv = KeyValue {
            key: key.to_string(),
            value,
            create_revision: prev.create_revision,
            mod_revision: revision,
        };
        // expired snapshots let go of the map first: no copy for them
        inner.snapshots.expire(Instant::now());
        Arc::make_mut(&mut inner.data).insert(key.to_string(), kv.clone());
        inner.hub.publish(Event::Put {
            kv,
            prev: Some(prev),
        });
        Ok(revision)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let mut inner = self.lock();
        match inner.data.get(key) {
            None => {
                return Err(Error::NotFound {
                    key: key.to_string(),
                })
            }
            Some(p) => {
                if let Some(e) = expected {
                    if p.mod_revision != e {
                        return Err(Error::Conflict {
                            key: key.to_string(),
                            expected: e,
                            actual: p.mod_revision,
                        });
                    }
                }
            }
        }
        inner.snapshots.expire(Instant::now());
        let prev = Arc::make_mut(&mut inner.data)
            .remove(key)
            .ok_or_else(|| Error::NotFound {
                key: key.to_string(),
            })?;
        let revision = inner.hub.revision() + 1;
        inner.hub.publish(Event::Delete {
            prev: prev.clone(),
            revision,
        });
        Ok((revision, prev))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        self.lock().hub.watch(prefix, after)
    }
}
