//! An in-process [`Datastore`]: a sorted map plus the shared watch [`Hub`] (a bounded event
//! history and the watchers).
//!
//! Used by unit tests of the layers above, and as the reference implementation that the shared
//! conformance suite (`tests/conformance.rs`) also runs the real backends against.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::hub::Hub;
use crate::{Datastore, Error, Event, KeyValue, ListResult, Result, Revision, Watch};

pub use crate::hub::{HISTORY_EVENTS, WATCH_BUFFER};

struct Inner {
    data: BTreeMap<String, KeyValue>,
    hub: Hub,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            data: BTreeMap::new(),
            hub: Hub::new(0),
        }
    }
}

/// The in-process store.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (each write is one
        // insert), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Datastore for MemoryStore {
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
        let inner = self.lock();
        let revision = inner.hub.revision();
        if let Some(r) = at_revision {
            if r != revision {
                return Err(Error::Compacted {
                    requested: r,
                    oldest: revision,
                });
            }
        }
        let mut items = Vec::new();
        let mut more = false;
        let range = inner.data.range(prefix.to_string()..);
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
        inner.data.insert(key.to_string(), kv.clone());
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
        inner.data.insert(key.to_string(), kv.clone());
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
        let prev = inner.data.remove(key).ok_or_else(|| Error::NotFound {
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
