//! The watch hub shared by the stores that keep their own history (the in-process store and the
//! embedded redb store): the current revision, a bounded ring of the last changes, and the live
//! watchers.
//!
//! A [`Hub`] does no locking of its own: the store keeps it under the same lock as its data, and
//! both [`Hub::publish`] and [`Hub::watch`] take `&mut self`, so a watch's replay of the history
//! and its registration for live events happen under one lock. A change published by another
//! writer is therefore either in the replay or delivered live, never both and never neither.
//!
//! The rules are etcd's and kube-apiserver's watch cache's:
//! - a watch "after `r`" receives every change with a revision greater than `r`, in order
//!   (etcd's `WatchRequest.start_revision` is `r + 1`);
//! - `r` older than the history is refused with [`Error::Compacted`], which the API server
//!   answers with `410 Gone` ("too old resource version", kube-apiserver's
//!   `storage/cacher/watch_cache.go` `getAllEventsSinceLocked`); the client lists again;
//! - a watcher whose buffer is full is closed rather than allowed to hold memory without bound
//!   (kube-apiserver's `storage/cacher/cache_watcher.go` `cacheWatcher.add` stops a watcher
//!   that blocks too long); its stream ends and the client lists again.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use crate::{Error, Event, Result, Revision, Watch};

/// How many past events are kept for watches that start in the past. A watch from before the
/// oldest kept event gets [`Error::Compacted`] and the client lists again, as after an etcd
/// compaction.
pub const HISTORY_EVENTS: usize = 10_000;

/// How many events may wait for a slow watcher before its watch is closed (it then re-lists);
/// bounds memory per watcher.
pub const WATCH_BUFFER: usize = 4_096;

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Result<Event>>,
}

/// The revision, the bounded history and the watchers of one store.
pub struct Hub {
    revision: Revision,
    /// Events with a revision greater than this are in `history`; a watch after an older
    /// revision is compacted.
    floor: Revision,
    history: VecDeque<Event>,
    watchers: Vec<Watcher>,
    history_cap: usize,
    buffer: usize,
}

impl Hub {
    /// A hub for a store at `revision` with no history yet ([`HISTORY_EVENTS`] kept,
    /// [`WATCH_BUFFER`] per watcher). A watch after an older revision is compacted (after a
    /// restart, the history before it is gone).
    pub fn new(revision: Revision) -> Hub {
        Hub::with_limits(revision, HISTORY_EVENTS, WATCH_BUFFER)
    }

    /// As [`Hub::new`], keeping `history` past events and buffering `buffer` events per watcher
    /// (both at least 1).
    pub fn with_limits(revision: Revision, history: usize, buffer: usize) -> Hub {
        Hub {
            revision,
            floor: revision,
            history: VecDeque::new(),
            watchers: Vec::new(),
            history_cap: history.max(1),
            buffer: buffer.max(1),
        }
    }

    /// The revision of the last published change (the store's revision).
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The oldest revision a watch may start after.
    pub fn floor(&self) -> Revision {
        self.floor
    }

    /// How many watchers are registered (closed ones leave at the next publish).
    pub fn watchers(&self) -> usize {
        self.watchers.len()
    }

    /// Records a committed change: its revision becomes the hub's revision, every watcher whose
    /// prefix matches gets it, and it joins the history. The store publishes changes in revision
    /// order, under the lock that also guards [`Hub::watch`].
    pub fn publish(&mut self, event: Event) {
        debug_assert!(
            event.revision() > self.revision,
            "events are published in revision order"
        );
        self.revision = event.revision();
        self.watchers.retain(|w| {
            if !event.key().starts_with(&w.prefix) {
                return !w.tx.is_closed();
            }
            // A full buffer closes the watch: the receiver sees the stream end and re-lists.
            w.tx.try_send(Ok(event.clone())).is_ok()
        });
        self.history.push_back(event);
        while self.history.len() > self.history_cap {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.revision();
            }
        }
    }

    /// Starts a watch of the keys under `prefix` after revision `after`: the kept changes newer
    /// than `after` are queued first, then live changes follow. Fails with
    /// [`Error::Compacted`] when `after` is older than the history, or when the replay alone
    /// would overflow the watcher's buffer (the client lists instead).
    pub fn watch(&mut self, prefix: &str, after: Revision) -> Result<Watch> {
        if after < self.floor {
            return Err(Error::Compacted {
                requested: after,
                oldest: self.floor,
            });
        }
        let (tx, rx) = mpsc::channel(self.buffer);
        // the history is in revision order: skip what the watcher already has
        let start = self.history.partition_point(|e| e.revision() <= after);
        for e in self.history.range(start..) {
            if e.key().starts_with(prefix) && tx.try_send(Ok(e.clone())).is_err() {
                return Err(Error::Compacted {
                    requested: after,
                    oldest: self.revision,
                });
            }
        }
        self.watchers.push(Watcher {
            prefix: prefix.to_string(),
            tx,
        });
        Ok(Watch { events: rx })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, Mutex};

    use super::*;
    use crate::KeyValue;

    fn put(key: &str, rev: Revision) -> Event {
        Event::Put {
            kv: KeyValue {
                key: key.to_string(),
                value: rev.to_le_bytes().to_vec(),
                create_revision: rev,
                mod_revision: rev,
            },
            prev: None,
        }
    }

    /// Every event already queued on `w`, and whether the stream has ended.
    fn drain(w: &mut Watch) -> (Vec<Result<Event>>, bool) {
        let mut out = vec![];
        loop {
            match w.events.try_recv() {
                Ok(e) => out.push(e),
                Err(mpsc::error::TryRecvError::Empty) => return (out, false),
                Err(mpsc::error::TryRecvError::Disconnected) => return (out, true),
            }
        }
    }

    fn revisions(events: Vec<Result<Event>>) -> Vec<Revision> {
        events
            .into_iter()
            .map(|e| e.expect("an event").revision())
            .collect()
    }

    #[test]
    fn replay_starts_strictly_after_the_revision_asked_for() {
        let mut h = Hub::new(0);
        for r in 1..=5 {
            h.publish(put(&format!("/a/{r}"), r));
        }
        assert_eq!(h.revision(), 5);
        let mut w = h.watch("/a/", 2).unwrap();
        assert_eq!(revisions(drain(&mut w).0), [3, 4, 5]);
        // from the current revision: nothing to replay, then live events
        let mut now = h.watch("/a/", 5).unwrap();
        assert!(drain(&mut now).0.is_empty());
        // from 0 (the floor of a new store): everything
        let mut all = h.watch("/a/", 0).unwrap();
        assert_eq!(revisions(drain(&mut all).0), [1, 2, 3, 4, 5]);
        h.publish(put("/a/6", 6));
        assert_eq!(revisions(drain(&mut w).0), [6]);
        assert_eq!(revisions(drain(&mut now).0), [6]);
        assert_eq!(revisions(drain(&mut all).0), [6]);
        // a revision in the future is accepted: its events arrive when they happen
        let mut later = h.watch("/a/", 8).unwrap();
        assert!(drain(&mut later).0.is_empty());
    }

    #[test]
    fn replay_and_live_events_keep_to_the_prefix() {
        let mut h = Hub::new(0);
        h.publish(put("/pods/default/a", 1));
        h.publish(put("/pods/defaults/b", 2));
        h.publish(put("/secrets/default/c", 3));
        let mut w = h.watch("/pods/default/", 0).unwrap();
        assert_eq!(revisions(drain(&mut w).0), [1]);
        h.publish(put("/pods/defaults/d", 4));
        h.publish(put("/pods/default/e", 5));
        let (events, ended) = drain(&mut w);
        assert_eq!(revisions(events), [5]);
        assert!(!ended);
    }

    #[test]
    fn a_watch_below_the_floor_is_compacted() {
        let mut h = Hub::with_limits(10, 3, 100);
        // a store reopened at revision 10 has no history before it
        assert_eq!(h.floor(), 10);
        match h.watch("/", 9) {
            Err(Error::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (9, 10)),
            other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
        }
        assert!(h.watch("/", 10).is_ok());
        for r in 11..=15 {
            h.publish(put("/k", r));
        }
        // 3 kept: 13, 14, 15; the floor is the last one dropped
        assert_eq!(h.floor(), 12);
        match h.watch("/", 11) {
            Err(Error::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (11, 12))
            }
            other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
        }
        let mut w = h.watch("/", 12).unwrap();
        assert_eq!(revisions(drain(&mut w).0), [13, 14, 15]);
    }

    #[test]
    fn a_replay_larger_than_the_buffer_is_refused() {
        let mut h = Hub::with_limits(0, 100, 2);
        for r in 1..=3 {
            h.publish(put("/k", r));
        }
        match h.watch("/", 0) {
            Err(Error::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (0, 3)),
            other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
        }
        assert_eq!(h.watchers(), 0, "a refused watch is not registered");
        // two fit
        let mut w = h.watch("/", 1).unwrap();
        assert_eq!(revisions(drain(&mut w).0), [2, 3]);
    }

    #[test]
    fn a_slow_watcher_is_closed_and_the_others_go_on() {
        let mut h = Hub::with_limits(0, 100, 2);
        let mut slow = h.watch("/", 0).unwrap();
        let mut fast = h.watch("/", 0).unwrap();
        let gone = h.watch("/other/", 0).unwrap();
        drop(gone);
        for r in 1..=3 {
            h.publish(put("/k", r));
            let (events, ended) = drain(&mut fast);
            assert_eq!(revisions(events), [r]);
            assert!(!ended);
        }
        // the slow one got what fit, then its stream ended; the dropped one left too
        let (events, ended) = drain(&mut slow);
        assert_eq!(revisions(events), [1, 2]);
        assert!(ended);
        assert_eq!(h.watchers(), 1);
    }

    #[test]
    fn no_event_is_lost_or_repeated_when_watches_start_during_publishing() {
        const N: u64 = 2_000;
        const WATCHERS: usize = 8;
        let hub = Arc::new(Mutex::new(Hub::with_limits(0, N as usize, N as usize)));
        let start = Arc::new(Barrier::new(WATCHERS + 1));
        let publisher = {
            let (hub, start) = (hub.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for r in 1..=N {
                    hub.lock()
                        .unwrap()
                        .publish(put(&format!("/k/{}", r % 7), r));
                    if r % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let watchers: Vec<_> = (0..WATCHERS)
            .map(|i| {
                let (hub, start) = (hub.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..i * 50 {
                        std::thread::yield_now();
                    }
                    // read a revision, let publishing go on, then watch after it
                    let after = hub.lock().unwrap().revision();
                    std::thread::yield_now();
                    let w = hub.lock().unwrap().watch("/k/", after).unwrap();
                    (after, w)
                })
            })
            .collect();
        publisher.join().unwrap();
        for t in watchers {
            let (after, mut w) = t.join().unwrap();
            let (events, ended) = drain(&mut w);
            assert!(!ended);
            let got = revisions(events);
            let want: Vec<Revision> = (after + 1..=N).collect();
            assert_eq!(got, want, "watch after {after}");
        }
    }
}
