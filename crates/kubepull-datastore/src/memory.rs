//! An in-process [`Datastore`]: a sorted map plus a bounded event history for watches.
//!
//! Used by unit tests of the layers above, and as the reference implementation that the shared
//! conformance suite (`tests/conformance.rs`) also runs the real backends against.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{Datastore, Error, Event, KeyValue, ListResult, Result, Revision, Watch};

/// How many past events are kept for watches that start in the past. A watch from before the
/// oldest kept event gets [`Error::Compacted`] and the client lists again, as with etcd compaction.
pub const HISTORY_EVENTS: usize = 10_000;

/// How many events may wait for a slow watcher before its watch is closed (it then re-lists);
/// bounds memory per watcher.
pub const WATCH_BUFFER: usize = 4_096;

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Result<Event>>,
}

#[derive(Default)]
struct Inner {
    data: BTreeMap<String, KeyValue>,
    revision: Revision,
    history: VecDeque<Event>,
    watchers: Vec<Watcher>,
}

impl Inner {
    fn oldest_watchable(&self) -> Revision {
        // A watch "after r" needs every event with revision > r.
        match self.history.front() {
            Some(e) => e.revision() - 1,
            None => self.revision,
        }
    }

    fn publish(&mut self, event: Event) {
        self.watchers.retain(|w| {
            if !event.key().starts_with(&w.prefix) {
                return !w.tx.is_closed();
            }
            // A full buffer closes the watch: the receiver sees the stream end and re-lists.
            w.tx.try_send(Ok(event.clone())).is_ok()
        });
        self.history.push_back(event);
        while self.history.len() > HISTORY_EVENTS {
            self.history.pop_front();
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
        Ok(self.lock().revision)
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
        if let Some(r) = at_revision {
            if r != inner.revision {
                return Err(Error::Compacted {
                    requested: r,
                    oldest: inner.revision,
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
            revision: inner.revision,
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
        inner.revision += 1;
        let kv = KeyValue {
            key: key.to_string(),
            value,
            create_revision: inner.revision,
            mod_revision: inner.revision,
        };
        inner.data.insert(key.to_string(), kv.clone());
        inner.publish(Event::Put { kv, prev: None });
        Ok(inner.revision)
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
        inner.revision += 1;
        let kv = KeyValue {
            key: key.to_string(),
            value,
            create_revision: prev.create_revision,
            mod_revision: inner.revision,
        };
        inner.data.insert(key.to_string(), kv.clone());
        inner.publish(Event::Put {
            kv,
            prev: Some(prev),
        });
        Ok(inner.revision)
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
        inner.revision += 1;
        let revision = inner.revision;
        inner.publish(Event::Delete {
            prev: prev.clone(),
            revision,
        });
        Ok((revision, prev))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let mut inner = self.lock();
        let oldest = inner.oldest_watchable();
        if after < oldest {
            return Err(Error::Compacted {
                requested: after,
                oldest,
            });
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        for e in inner.history.iter() {
            if e.revision() > after
                && e.key().starts_with(prefix)
                && tx.try_send(Ok(e.clone())).is_err()
            {
                return Err(Error::Compacted {
                    requested: after,
                    oldest: inner.revision,
                });
            }
        }
        inner.watchers.push(Watcher {
            prefix: prefix.to_string(),
            tx,
        });
        Ok(Watch { events: rx })
    }
}
