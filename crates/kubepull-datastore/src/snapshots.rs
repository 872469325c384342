//! The read snapshots the embedded and in-process stores keep so that the pages of one list are
//! read at one revision.
//!
//! On etcd, every page after the first is read at the first page's revision (MVCC: etcd keeps
//! every revision until it is compacted), which is what kube-apiserver's continue token promises:
//! `staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go` `GetList` encodes the last key and the
//! list's resourceVersion into the token and reads the next page `WithRev(continueRV)`; the token
//! is refused with `410 Gone` only once etcd compacted that revision (every 5 minutes by default,
//! `--etcd-compaction-interval`).
//!
//! The embedded store keeps only the current value of each key. Instead, a list whose page is
//! full (the one that can be continued; whole reads and pages with room left cannot) keeps the
//! read snapshot it was served from (a redb read transaction; in memory, the map as it was),
//! keyed by the list's revision, and a later list at that revision reads that snapshot. A
//! snapshot no continue token names is dropped [`PENDING_TTL`] after its list; when the API
//! server hands out a continue token it retains the snapshot, which is then dropped
//! [`SNAPSHOT_TTL`] after that (kube-apiserver's default compaction interval). At most
//! [`MAX_SNAPSHOTS`] are kept: beyond that the oldest one no token names is dropped (else the
//! oldest), so a client that lists often cannot pin unbounded space. Expiry runs on every
//! list and write. A list at a revision whose snapshot is gone (and that
//! is not the current revision) fails with [`crate::Error::Compacted`], as a compacted revision
//! does on etcd.
//!
//! What a kept snapshot costs: lists at the same revision share one snapshot; a redb read
//! transaction keeps the pages it sees from being reused, so while snapshots are kept the file
//! holds the pages written over since the oldest of them (at most [`SNAPSHOT_TTL`] worth of
//! writes while a token is out, [`PENDING_TTL`] otherwise, as etcd keeps its history until
//! compaction); the in-process store copies its map on
//! the first write after a list (copy on write).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::Revision;

/// How long a list's snapshot is kept after the last list that started at its revision: the
/// 5 minutes of kube-apiserver's default etcd compaction interval.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(5 * 60);

/// The most list snapshots kept at once (distinct revisions).
pub const MAX_SNAPSHOTS: usize = 64;

/// How long the snapshot of a list that gave out no continue token is kept (at most
/// [`SnapshotLimits::ttl`]): the API server asks for longer ([`crate::Datastore::retain_list_snapshot`]) in the
/// same request, as soon as it hands out a token, so a list nobody can continue pins the
/// file's freed pages (and the cache's memory for them) only this long.
pub const PENDING_TTL: Duration = Duration::from_secs(2);

/// How long list snapshots are kept and how many (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// How long a snapshot is kept after the last list that started at its revision.
    pub ttl: Duration,
    /// The most snapshots kept at once (at least 1).
    pub max: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        SnapshotLimits {
            ttl: SNAPSHOT_TTL,
            max: MAX_SNAPSHOTS,
        }
    }
}

struct Kept<S> {
    snap: S,
    /// When the last list started at this revision (or its continuation was retained).
    taken: Instant,
    /// A continue token names its revision ([`Snapshots::retain`]): kept for the whole TTL, not
    /// [`PENDING_TTL`].
    continued: bool,
}

/// Snapshots by revision, bounded in time and number.
pub(crate) struct Snapshots<S> {
    limits: SnapshotLimits,
    kept: BTreeMap<Revision, Kept<S>>,
}

impl<S: Clone> Snapshots<S> {
    pub(crate) fn new(limits: SnapshotLimits) -> Self {
        Snapshots {
            limits: SnapshotLimits {
                ttl: limits.ttl,
                max: limits.max.max(1),
            },
            kept: BTreeMap::new(),
        }
    }

    /// Drops the snapshots past their time (the stores call it on every list and write too,
    /// so an idle list API does not keep them).
    pub(crate) fn expire(&mut self, now: Instant) {
        let ttl = self.limits.ttl;
        let pending = ttl.min(PENDING_TTL);
        self.kept.retain(|_, k| {
            let age = now.saturating_duration_since(k.taken);
            age < if k.continued { ttl } else { pending }
        });
    }

    /// A continue token names `revision`: its snapshot is kept the whole TTL from `now`.
    pub(crate) fn retain(&mut self, revision: Revision, now: Instant) {
        self.expire(now);
        if let Some(k) = self.kept.get_mut(&revision) {
            k.continued = true;
            k.taken = now;
        }
    }

    /// The snapshot kept for `revision`, if it is still kept. Reading it does not keep it
    /// longer: only a continue token does ([`Snapshots::retain`]); the further pages one
    /// request reads itself are read within [`PENDING_TTL`] (or the request reads the list
    /// again whole).
    pub(crate) fn get(&mut self, revision: Revision, now: Instant) -> Option<S> {
        self.expire(now);
        self.kept.get(&revision).map(|k| k.snap.clone())
    }

    /// Keeps `snap` as the snapshot of `revision` (a list just started there); a snapshot already
    /// kept for it stays (it is the same state) and is kept [`SnapshotLimits::ttl`] from `now`.
    pub(crate) fn keep(&mut self, revision: Revision, snap: S, now: Instant) {
        self.expire(now);
        if let Some(k) = self.kept.get_mut(&revision) {
            k.taken = now;
            return;
        }
        if self.limits.ttl.is_zero() {
            return;
        }
        while self.kept.len() >= self.limits.max {
            let victim = self
                .kept
                .iter()
                .find(|(_, k)| !k.continued)
                .or_else(|| self.kept.iter().next())
                .map(|(r, _)| *r);
            match victim {
                Some(r) => {
                    self.kept.remove(&r);
                }
                None => break,
            }
        }
        self.kept.insert(
            revision,
            Kept {
                snap,
                taken: now,
                continued: false,
            },
        );
    }

    /// How many snapshots are kept now.
    pub(crate) fn len(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.kept.len()
    }

    /// Drops every snapshot.
    pub(crate) fn clear(&mut self) {
        self.kept.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ttl_s: u64, max: usize) -> SnapshotLimits {
        SnapshotLimits {
            ttl: Duration::from_secs(ttl_s),
            max,
        }
    }

    #[test]
    fn a_snapshot_no_token_names_is_kept_briefly_and_a_retained_one_the_ttl() {
        let t0 = Instant::now();
        let mut s = Snapshots::new(limits(300, 8));
        s.keep(5, "five", t0);
        s.keep(6, "six", t0);
        assert_eq!(s.len(t0 + PENDING_TTL - Duration::from_millis(1)), 2);
        s.retain(6, t0 + Duration::from_millis(1));
        // expiry on its own (as on a write): the unretained one goes after PENDING_TTL
        s.expire(t0 + PENDING_TTL);
        assert_eq!(s.len(t0 + PENDING_TTL), 1);
        assert_eq!(s.get(6, t0 + Duration::from_secs(300)), Some("six"));
        assert_eq!(s.get(6, t0 + Duration::from_secs(301)), None);
        // retaining what is gone changes nothing
        s.retain(5, t0);
        assert_eq!(s.len(t0), 0);
    }

    #[test]
    fn kept_until_the_ttl_after_the_last_list_at_the_revision() {
        let t0 = Instant::now();
        let mut s = Snapshots::new(limits(300, 8));
        s.keep(5, "five", t0);
        s.retain(5, t0);
        assert_eq!(s.get(5, t0 + Duration::from_secs(299)), Some("five"));
        // a continuation does not extend it
        assert_eq!(s.get(5, t0 + Duration::from_secs(300)), None);
        assert_eq!(s.len(t0 + Duration::from_secs(300)), 0);

        // a new list at the same revision does
        s.keep(7, "seven", t0);
        s.retain(7, t0);
        s.keep(7, "seven again", t0 + Duration::from_secs(200));
        assert_eq!(s.get(7, t0 + Duration::from_secs(450)), Some("seven"));
        assert_eq!(s.get(7, t0 + Duration::from_secs(500)), None);
        assert_eq!(s.get(6, t0), None);
    }

    #[test]
    fn the_cap_drops_snapshots_no_token_names_first_then_the_oldest() {
        let t0 = Instant::now();
        let mut s = Snapshots::new(limits(300, 3));
        s.keep(1, 1, t0);
        s.keep(2, 2, t0);
        s.keep(3, 3, t0);
        // a token names 1: 2 (the oldest no token names) goes
        s.retain(1, t0);
        s.keep(4, 4, t0);
        assert_eq!(s.len(t0), 3);
        assert_eq!(s.get(2, t0), None);
        assert_eq!(s.get(3, t0), Some(3));
        assert_eq!(s.get(4, t0), Some(4));
        // all named by tokens now: the oldest goes
        s.retain(3, t0);
        s.retain(4, t0);
        s.keep(5, 5, t0);
        assert_eq!(s.len(t0), 3);
        assert_eq!(s.get(1, t0), None);
        for r in [3, 4, 5] {
            assert_eq!(s.get(r, t0), Some(r));
        }
        // expired ones make room before anything is evicted
        let mut s = Snapshots::new(limits(10, 2));
        s.keep(1, 1, t0);
        s.retain(1, t0);
        s.keep(2, 2, t0 + Duration::from_secs(5));
        s.retain(2, t0 + Duration::from_secs(5));
        s.keep(3, 3, t0 + Duration::from_secs(11));
        assert_eq!(s.get(2, t0 + Duration::from_secs(11)), Some(2));
        assert_eq!(s.get(3, t0 + Duration::from_secs(11)), Some(3));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing_and_a_zero_cap_is_one() {
        let t0 = Instant::now();
        let mut s = Snapshots::new(limits(0, 8));
        s.keep(1, 1, t0);
        assert_eq!(s.get(1, t0), None);
        let mut s = Snapshots::new(limits(60, 0));
        s.keep(1, 1, t0);
        s.keep(2, 2, t0);
        assert_eq!(s.len(t0), 1);
        assert_eq!(s.get(2, t0), Some(2));
    }
}
