//! What a controller wrote and waits to see in its informer caches before it acts on the
//! object again (kubernetes `pkg/controller/controller_utils.go`
//! `UIDTrackingControllerExpectations` / `ControllerExpectations`: `ExpectCreations`,
//! `ExpectDeletions`, `CreationObserved`, `DeletionObserved`, `SatisfiedExpectations`,
//! `DeleteExpectations`, `ExpectationsTimeout`). A sync whose expectations are not met reads a
//! cache that does not show its last writes yet, so it must not create or delete again; the
//! change that meets them arrives as a notice and syncs the key.
//!
//! Expectations here are the UIDs themselves (what the server returned for a create, what a
//! delete named) rather than counts, so a create whose pod the informer had already shown by
//! the time the expectation is set is never waited for.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::informer::{index, Typed};
use super::kinds::{self, Kind};
use super::queue::Observed;

/// `ExpectationsTimeout`: expectations older than this are met (a write whose notice was lost
/// does not stall its object forever).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expect {
    adds: HashSet<String>,
    dels: HashSet<String>,
    at: Instant,
}

/// Creations and deletions per key (`namespace/name` of the controller's object).
#[derive(Debug, Default)]
pub struct Expectations {
    map: HashMap<String, Expect>,
}

impl Expectations {
    /// Expects the objects with UIDs `adds` to appear and those with UIDs `dels` to go (or
    /// start terminating) (`ExpectCreations` + `ExpectDeletions`, which replace what `key`
    /// expected before). Nothing to expect clears the key.
    pub fn expect(&mut self, key: &str, adds: HashSet<String>, dels: HashSet<String>) {
        self.expect_at(key, adds, dels, Instant::now());
    }

    /// [`Expectations::expect`] as if set at `at`.
    pub fn expect_at(
        &mut self,
        key: &str,
        adds: HashSet<String>,
        dels: HashSet<String>,
        at: Instant,
    ) {
        if adds.is_empty() && dels.is_empty() {
            self.map.remove(key);
            return;
        }
        self.map.insert(key.to_string(), Expect { adds, dels, at });
    }

    /// `ExpectCreations` / `ExpectDeletions` for the `K`s a sync created and deleted
    /// (`observed`), as far as `cache` does not show them yet: a created object not in it
    /// yet, a deleted one it still shows alive. Nothing written leaves `key` as it was;
    /// writes the cache already shows clear it.
    pub fn expect_unseen<K: Kind>(&mut self, key: &str, observed: &Observed, cache: &Typed<K>) {
        self.expect_unseen_in(key, observed, &[cache]);
    }

    /// [`Expectations::expect_unseen`] for a controller that writes objects of several kinds
    /// under one key (the Endpoints controller: a Service's Endpoints and EndpointSlices), each
    /// kind looked for in its own cache.
    pub fn expect_unseen_in(&mut self, key: &str, observed: &Observed, caches: &[&dyn Shows]) {
        let created: Vec<(&str, &dyn Shows)> = observed
            .created
            .iter()
            .filter_map(|o| {
                let kind = o.get("kind").and_then(Value::as_str)?;
                let cache = caches.iter().find(|c| c.kind() == kind)?;
                Some((o.pointer("/metadata/uid").and_then(Value::as_str)?, *cache))
            })
            .collect();
        let deleted: Vec<(&str, &dyn Shows)> = observed
            .deleted
            .iter()
            .filter_map(|(dr, uid)| {
                let cache = caches.iter().find(|c| {
                    let r = c.resource();
                    dr.group == r.group && dr.plural == r.plural
                })?;
                Some((uid.as_str(), *cache))
            })
            .collect();
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let adds = created
            .into_iter()
            .filter(|(u, c)| !c.shows(u))
            .map(|(u, _)| u.to_string())
            .collect();
        let dels = deleted
            .into_iter()
            .filter(|(u, c)| c.shows_alive(u))
            .map(|(u, _)| u.to_string())
            .collect();
        self.expect(key, adds, dels);
    }

    /// The keys of the `kind` controllers a pod change concerns (`addPod`/`updatePod`/
    /// `deletePod` of the ReplicaSet, ReplicationController, DaemonSet and StatefulSet
    /// controllers): the controller its controller reference names (and its previous
    /// version's), then `orphans`, the controllers an orphan is offered to, each once; every
    /// key has seen the pod created, and deleted when it is gone or terminating.
    pub fn pod_change_keys(
        &mut self,
        change: &super::informer::Notice,
        pod: &k8s_openapi::api::core::v1::Pod,
        kind: &str,
        orphans: Vec<String>,
    ) -> Vec<String> {
        let ns = kinds::namespace(&pod.metadata);
        let mut keys: Vec<String> = vec![];
        let owners = [
            Some(pod),
            change
                .old::<k8s_openapi::api::core::v1::Pod>()
                .map(|p| &**p),
        ]
        .into_iter()
        .flatten()
        .filter_map(|o| kinds::controller_of(&o.metadata, kind))
        .map(|(n, _)| format!("{ns}/{n}"));
        for k in owners.chain(orphans) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let uid = kinds::uid(&pod.metadata);
        let gone = change.deleted || pod.metadata.deletion_timestamp.is_some();
        for k in &keys {
            self.creation_observed(k, uid);
            if gone {
                self.deletion_observed(k, uid);
            }
        }
        keys
    }

    /// The object `uid` was seen in the cache (`CreationObserved`).
    pub fn creation_observed(&mut self, key: &str, uid: &str) {
        if let Some(e) = self.map.get_mut(key) {
            e.adds.remove(uid);
        }
    }

    /// The object `uid` was seen gone or terminating (`DeletionObserved`).
    pub fn deletion_observed(&mut self, key: &str, uid: &str) {
        if let Some(e) = self.map.get_mut(key) {
            e.dels.remove(uid);
        }
    }

    /// Whether `key` may be managed again: everything it expected was seen, or the
    /// expectations expired (`SatisfiedExpectations`).
    pub fn satisfied(&self, key: &str) -> bool {
        self.map.get(key).is_none_or(|e| {
            (e.adds.is_empty() && e.dels.is_empty()) || e.at.elapsed() > EXPECTATIONS_TIMEOUT
        })
    }

    /// How long a sync of `key` should wait for what it expects before it is tried again:
    /// `None` when satisfied, else the time left until the expectations expire (a key whose
    /// notices never come is still synced then, not left waiting for an unrelated event).
    pub fn wait_left(&self, key: &str) -> Option<Duration> {
        if self.satisfied(key) {
            return None;
        }
        let at = self.map.get(key)?.at;
        Some(EXPECTATIONS_TIMEOUT.saturating_sub(at.elapsed()))
    }

    /// Forgets `key` (`DeleteExpectations`: its object is gone).
    pub fn forget(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// How many keys wait for something.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key waits for anything.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// An informer cache as expectations look into it: which kind it holds, and whether it shows
/// an object (by UID), and shows it alive (not terminating).
pub trait Shows {
    /// The kind cached (`Pod`, `EndpointSlice`, …).
    fn kind(&self) -> &'static str;
    /// The resource cached.
    fn resource(&self) -> &'static crate::resources::Resource;
    /// Whether the cache holds the object `uid`.
    fn shows(&self, uid: &str) -> bool;
    /// Whether the cache holds the object `uid` without a deletion timestamp.
    fn shows_alive(&self, uid: &str) -> bool;
}

impl<K: Kind> Shows for Typed<K> {
    fn kind(&self) -> &'static str {
        K::KIND
    }

    fn resource(&self) -> &'static crate::resources::Resource {
        kinds::resource_of::<K>()
    }

    fn shows(&self, uid: &str) -> bool {
        self.count(index::UID, uid) > 0
    }

    fn shows_alive(&self, uid: &str) -> bool {
        self.by_index(index::UID, uid)
            .iter()
            .any(|o| o.metadata().deletion_timestamp.is_none())
    }
}

/// The controller's own writes to its primary objects (a Job's or CronJob's status), not yet
/// shown by the cache: the key is not synced from a cached copy that is older than what it
/// wrote (the informer's notice of the write syncs it). Upstream syncs from the lister and
/// counts on the write conflict; a sync that writes nothing to the object (it only creates
/// pods from a stale status) would not conflict, so the stale copy is not read at all.
///
/// A sync that writes the object twice (the CronJob controller: the active list's UIDs, then
/// the status) records both versions it replaced, so neither the copy it read nor the one its
/// first write returned is synced from.
#[derive(Debug, Default)]
pub struct OwnWrites {
    map: HashMap<String, (Vec<String>, Instant)>,
}

impl OwnWrites {
    /// `key` was written over the version `resource_version` (the one the sync read, or the
    /// one its previous write returned). The versions one sync replaced add up; the next sync
    /// starts over ([`OwnWrites::stale`] clears them once the cache shows another version).
    pub fn wrote(&mut self, key: &str, resource_version: &str) {
        let e = self
            .map
            .entry(key.to_string())
            .or_insert_with(|| (vec![], Instant::now()));
        if !e.0.iter().any(|v| v == resource_version) {
            e.0.push(resource_version.to_string());
        }
        e.1 = Instant::now();
    }

    /// Whether the cached copy of `key` at `resource_version` is one the last writes replaced
    /// (so it does not show them). Another copy, or an expired entry
    /// ([`EXPECTATIONS_TIMEOUT`]), clears the entry.
    pub fn stale(&mut self, key: &str, resource_version: &str) -> bool {
        match self.map.get(key) {
            Some((rvs, at))
                if rvs.iter().any(|v| v == resource_version)
                    && at.elapsed() <= EXPECTATIONS_TIMEOUT =>
            {
                true
            }
            Some(_) => {
                self.map.remove(key);
                false
            }
            None => false,
        }
    }

    /// Forgets `key` (its object is gone).
    pub fn forget(&mut self, key: &str) {
        self.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(x: &[&str]) -> HashSet<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn met_by_observations_or_by_time() {
        let mut e = Expectations::default();
        assert!(e.satisfied("a/x"));
        e.expect("a/x", set(&["p1", "p2"]), set(&["old"]));
        assert!(!e.satisfied("a/x"));
        e.creation_observed("a/x", "p1");
        e.creation_observed("a/x", "p2");
        assert!(!e.satisfied("a/x"), "the deletion is not seen yet");
        // another key's observation does not count
        e.deletion_observed("a/y", "old");
        assert!(!e.satisfied("a/x"));
        e.deletion_observed("a/x", "old");
        assert!(e.satisfied("a/x"));
        // expired
        e.expect_at(
            "a/z",
            set(&["never"]),
            set(&[]),
            Instant::now() - EXPECTATIONS_TIMEOUT - Duration::from_secs(1),
        );
        assert!(e.satisfied("a/z"));
        // nothing to expect, and forgetting, clear the key
        e.expect("a/x", set(&[]), set(&[]));
        e.forget("a/z");
        assert!(e.satisfied("a/x") && e.satisfied("a/z"));
    }

    /// What a sync wrote is expected as far as the cache does not show it: pods created but
    /// not cached, pods deleted but cached alive; other kinds and shown writes are not.
    #[tokio::test]
    async fn what_the_cache_does_not_show_is_expected() {
        use super::super::informer::test_support::Env;
        use k8s_openapi::api::batch::v1::Job;
        use k8s_openapi::api::core::v1::Pod;
        use serde_json::json;
        let env = Env::new().await;
        let pod = |name: &str, deleting: bool| {
            let mut p = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}")}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            p
        };
        for (n, deleting) in [("cached", false), ("alive", false), ("going", true)] {
            env.put::<Pod>(pod(n, deleting)).await;
        }
        env.refresh::<Pod>().await;
        let pods = env.informers.of::<Pod>();
        let pods_r = kinds::resource_of::<Pod>();
        let observed = Observed {
            created: vec![
                pod("cached", false),
                pod("new", false),
                json!({"kind": "Event", "metadata": {"uid": "u-event"}}),
            ],
            deleted: vec![
                (pods_r, "u-alive".into()),
                (pods_r, "u-going".into()),
                (pods_r, "u-gone".into()),
                (kinds::resource_of::<Job>(), "u-job".into()),
            ],
        };
        let mut e = Expectations::default();
        e.expect_unseen("default/x", &observed, &pods);
        assert!(!e.satisfied("default/x"));
        let Expect { adds, dels, .. } = &e.map["default/x"];
        assert_eq!(adds, &set(&["u-new"]));
        assert_eq!(dels, &set(&["u-alive"]));
        // everything already shown: cleared
        let shown = Observed {
            created: vec![pod("cached", false)],
            deleted: vec![(pods_r, "u-going".into())],
        };
        e.expect_unseen("default/x", &shown, &pods);
        assert!(e.satisfied("default/x") && e.is_empty());
        // nothing of the kind written: left as it was
        e.expect("default/y", set(&["p"]), set(&[]));
        e.expect_unseen("default/y", &Observed::default(), &pods);
        let only_a_job = Observed {
            created: vec![],
            deleted: vec![(kinds::resource_of::<Job>(), "u-job".into())],
        };
        e.expect_unseen("default/y", &only_a_job, &pods);
        assert!(!e.satisfied("default/y"));
        // several kinds under one key, each looked for in its own cache
        let jobs = env.informers.of::<Job>();
        let both = Observed {
            created: vec![
                pod("new", false),
                pod("cached", false),
                json!({"kind": "Job", "metadata": {"uid": "u-new-job"}}),
            ],
            deleted: vec![(pods_r, "u-alive".into())],
        };
        e.expect_unseen_in("default/z", &both, &[&pods, &jobs]);
        let Expect { adds, dels, .. } = &e.map["default/z"];
        assert_eq!(adds, &set(&["u-new", "u-new-job"]));
        assert_eq!(dels, &set(&["u-alive"]));
    }

    #[test]
    fn own_writes_hold_back_the_copy_they_replaced() {
        let mut w = OwnWrites::default();
        assert!(!w.stale("a/x", "5"));
        w.wrote("a/x", "5");
        assert!(w.stale("a/x", "5"));
        assert!(w.stale("a/x", "5"), "still the old copy");
        assert!(!w.stale("a/x", "9"), "the cache shows the write");
        assert!(!w.stale("a/x", "5"), "the entry is gone once seen");
        w.wrote("a/y", "1");
        w.forget("a/y");
        assert!(!w.stale("a/y", "1"));
        // two writes in one sync: both copies they replaced are stale, the last one's is not
        w.wrote("a/z", "3");
        w.wrote("a/z", "4");
        assert!(w.stale("a/z", "3"));
        assert!(w.stale("a/z", "4"));
        assert!(!w.stale("a/z", "5"));
        assert!(
            !w.stale("a/z", "3"),
            "cleared once the cache shows the last write"
        );
    }
}
