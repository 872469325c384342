//! The one list-then-watch loop every in-memory copy of a storage prefix is fed by: client-go
//! `tools/cache/reflector.go`. A [`Sink`] is what the reflector fills (client-go's `Store`); the
//! controllers' informers ([`crate::controllers::informer`]) and the API server's caches
//! ([`crate::watchcache`]) each implement it.
//!
//! - [`list_and_watch`] is one round of `Reflector.ListAndWatch`: list the prefix, open a watch
//!   from the list's revision, hand the list to the sink (`syncWith`, `Store.Replace`), and
//!   return the open watch. The returned [`Watching`] holds no reference to the datastore.
//! - [`Watching::follow`] is `watchHandler`: every event goes to the sink until the watch ends;
//!   an error (the consumer fell behind, the revision was compacted: "too old resource
//!   version", 410) ends it too, and the next round lists again.
//! - [`run`] is `Reflector.Run` (`wait.BackoffUntil` over `ListAndWatch`): rounds until the task
//!   is aborted; a failed list or watch waits before the next round, 100 ms doubling up to 5 s,
//!   and a watch that ended after it was opened waits 100 ms.
//!
//! The API server's caches are lazy: the read that needs one runs a round (the list happens in
//! that read, with the store it holds), follows the watch in a task of its own, and when the
//! watch ends the next read runs the next round.

use std::sync::Arc;
use std::time::Duration;

use kubepull_datastore::{Datastore, Event, KeyValue, Revision, Watch};

/// The first wait after a failed round, and the wait after a watch that ended.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest wait between failed rounds.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a reflector fills (client-go's `cache.Store` as a reflector uses it).
pub trait Sink: Send + Sync {
    /// Replaces the content with a list read at `revision` (`Store.Replace`).
    fn replace(&self, items: Vec<KeyValue>, revision: Revision);
    /// Applies one watch event (`Store.Add`, `Update`, `Delete`).
    fn apply(&self, event: Event);
}

/// Why a round did not get to watching.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The list failed.
    #[error("list of {prefix} failed: {source}")]
    List {
        /// The prefix listed.
        prefix: String,
        /// The datastore's error.
        source: kubepull_datastore::Error,
    },
    /// The watch from the list's revision could not be opened.
    #[error("watch of {prefix} failed: {source}")]
    Watch {
        /// The prefix watched.
        prefix: String,
        /// The datastore's error.
        source: kubepull_datastore::Error,
    },
}

/// How a followed watch ended.
#[derive(Debug)]
pub enum Ended {
    /// The datastore closed the watch (it is shutting down).
    Closed,
    /// The watch ended with an error (fell behind, compacted).
    Failed(kubepull_datastore::Error),
}

/// A watch opened by [`list_and_watch`], to be followed. It holds no reference to the datastore:
/// the watch ends when the datastore is closed.
pub struct Watching {
    watch: Watch,
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watching").finish_non_exhaustive()
    }
}

/// One round's list and watch (`Reflector.ListAndWatch` up to `watchHandler`): lists `prefix`,
/// opens a watch from the list's revision, then gives the list to `sink`. On an error the sink
/// is left as it was.
pub async fn list_and_watch(
    store: &dyn Datastore,
    prefix: &str,
    sink: &dyn Sink,
) -> Result<Watching, Error> {
    let list = store
        .list(prefix, None, 0, None)
        .await
        .map_err(|source| Error::List {
            prefix: prefix.to_string(),
            source,
        })?;
    let watch = store
        .watch(prefix, list.revision)
        .await
        .map_err(|source| Error::Watch {
            prefix: prefix.to_string(),
            source,
        })?;
    sink.replace(list.items, list.revision);
    Ok(Watching { watch })
}

impl Watching {
    /// Gives every event to `sink` until the watch ends (`watchHandler`).
    pub async fn follow(mut self, sink: &dyn Sink) -> Ended {
        while let Some(ev) = self.watch.events.recv().await {
            match ev {
                Ok(ev) => sink.apply(ev),
                Err(e) => return Ended::Failed(e),
            }
        }
        Ended::Closed
    }
}

/// Rounds of [`list_and_watch`] and [`Watching::follow`] until the task is aborted
/// (`Reflector.Run`); see the module documentation for the waits. `name` labels the log lines.
pub async fn run(store: Arc<dyn Datastore>, prefix: &str, sink: &dyn Sink, name: &str) {
    let mut delay = BACKOFF_START;
    loop {
        match list_and_watch(store.as_ref(), prefix, sink).await {
            Ok(w) => {
                delay = BACKOFF_START;
                match w.follow(sink).await {
                    Ended::Failed(e) => {
                        tracing::info!(prefix, error = %e, "{name}: watch ended; listing again")
                    }
                    Ended::Closed => {
                        tracing::info!(prefix, "{name}: watch closed; listing again")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "{name}: retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubepull_datastore::memory::MemoryStore;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Keys and values, and every call in order.
    #[derive(Default)]
    struct Recorder {
        items: Mutex<BTreeMap<String, Vec<u8>>>,
        calls: Mutex<Vec<String>>,
    }

    impl Sink for Recorder {
        fn replace(&self, items: Vec<KeyValue>, revision: Revision) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("replace {} @{revision}", items.len()));
            *self.items.lock().unwrap() = items.into_iter().map(|kv| (kv.key, kv.value)).collect();
        }

        fn apply(&self, event: Event) {
            let mut items = self.items.lock().unwrap();
            let line = match event {
                Event::Put { kv, .. } => {
                    let l = format!("put {}", kv.key);
                    items.insert(kv.key, kv.value);
                    l
                }
                Event::Delete { prev, .. } => {
                    items.remove(&prev.key);
                    format!("delete {}", prev.key)
                }
            };
            self.calls.lock().unwrap().push(line);
        }
    }

    #[tokio::test]
    async fn a_round_lists_then_follows_the_watch_from_the_lists_revision() {
        let store = MemoryStore::new();
        store.create("/p/a", b"1".to_vec()).await.unwrap();
        store.create("/q/x", b"1".to_vec()).await.unwrap();
        let rev = store.create("/p/b", b"2".to_vec()).await.unwrap();
        let sink = Recorder::default();
        let w = list_and_watch(&store, "/p/", &sink).await.unwrap();
        assert_eq!(*sink.calls.lock().unwrap(), [format!("replace 2 @{rev}")]);
        store.delete("/p/a", None).await.unwrap();
        store.create("/p/c", b"3".to_vec()).await.unwrap();
        store.create("/q/y", b"1".to_vec()).await.unwrap();
        // the store closing the watch ends the round
        let follow = tokio::spawn(async move {
            let sink = sink;
            let ended = w.follow(&sink).await;
            (sink, ended)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(store);
        let (sink, ended) = follow.await.unwrap();
        assert!(matches!(ended, Ended::Closed), "{ended:?}");
        assert_eq!(
            sink.calls.lock().unwrap()[1..],
            ["delete /p/a".to_string(), "put /p/c".into()]
        );
        let keys: Vec<String> = sink.items.lock().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["/p/b", "/p/c"]);
    }

    /// etcd ends a watch whose revision was compacted with an error (the memory store closes
    /// one that fell behind instead): the events before it are applied, then the round ends.
    #[tokio::test]
    async fn a_watch_that_ends_with_an_error_reports_it() {
        let (tx, events) = tokio::sync::mpsc::channel(4);
        let kv = KeyValue {
            key: "/p/a".into(),
            value: b"1".to_vec(),
            create_revision: 5,
            mod_revision: 5,
        };
        tx.send(Ok(Event::Put { kv, prev: None })).await.unwrap();
        tx.send(Err(kubepull_datastore::Error::Compacted {
            requested: 5,
            oldest: 9,
        }))
        .await
        .unwrap();
        let sink = Recorder::default();
        let ended = Watching {
            watch: Watch { events },
        }
        .follow(&sink)
        .await;
        assert!(
            matches!(
                ended,
                Ended::Failed(kubepull_datastore::Error::Compacted { .. })
            ),
            "{ended:?}"
        );
        assert_eq!(*sink.calls.lock().unwrap(), ["put /p/a"]);
        // the sender is still open: the error, not the channel, ended the round
        drop(tx);
    }

    #[tokio::test]
    async fn a_failed_list_or_watch_leaves_the_sink_alone() {
        for list_fails in [true, false] {
            let store = crate::teststore::TestStore::default();
            store.fail_lists(list_fails);
            store.fail_watches(true);
            store.create("/p/a", b"1".to_vec()).await.unwrap();
            let sink = Recorder::default();
            let e = list_and_watch(&store, "/p/", &sink).await.unwrap_err();
            if list_fails {
                assert!(matches!(e, Error::List { .. }), "{e:?}");
            } else {
                assert!(matches!(e, Error::Watch { .. }), "{e:?}");
            }
            assert!(e.to_string().contains("/p/"), "{e}");
            assert!(sink.calls.lock().unwrap().is_empty());
        }
    }
}
