//! The kubelet's image-pull back-off, with time as a parameter.
//!
//! Ported from client-go `util/flowcontrol/backoff.go` (`Backoff.Next`,
//! `Backoff.IsInBackOffSinceUpdate`, `Backoff.GC`, `hasExpired`) as the kubelet configures it in
//! `pkg/kubelet/kubelet.go` (`backOffPeriod` = 10 s, `MaxContainerBackOff` = 300 s, no jitter) and
//! uses it in `pkg/kubelet/images/image_manager.go` (`EnsureImageExists`).
//!
//! The schedule: after a failed pull the window is 10 s; each failure inside an unexpired entry
//! doubles it up to 300 s. An entry expires when more than 2 × 300 s pass after its last failure.
//! A successful pull does **not** reset an entry; only [`Backoff::gc`] removes expired entries.
//!
//! Times are [`Duration`]s since any epoch the caller picks (a monotonic clock in the node agent, a
//! plain counter in tests), so the rules stay pure and testable without sleeping.
//!
//! ```
//! use std::time::Duration;
//! use kubepull_core::backoff::{Backoff, backoff_key};
//!
//! let mut b = Backoff::kubelet_image_pull();
//! let key = backoff_key("3f1c…-uid", "registry.example.com/app:v1");
//! let s = Duration::from_secs;
//! b.next(&key, s(0)); // first failure: 10 s window
//! assert!(b.is_in_backoff_since_update(&key, s(9)));
//! assert!(!b.is_in_backoff_since_update(&key, s(10)));
//! b.next(&key, s(10)); // second failure: 20 s window
//! assert_eq!(b.window(&key), Some(s(20)));
//! ```

use std::collections::HashMap;
use std::time::Duration;

/// The kubelet's initial image-pull back-off (`pkg/kubelet/kubelet.go`, `backOffPeriod`).
pub const IMAGE_PULL_INITIAL: Duration = Duration::from_secs(10);
/// The kubelet's maximum image-pull back-off (`pkg/kubelet/kubelet.go`, `MaxContainerBackOff`).
pub const IMAGE_PULL_MAX: Duration = Duration::from_secs(300);

/// The back-off key the kubelet uses for image pulls: `"<pod UID>_<image as written>"`
/// (`pkg/kubelet/images/image_manager.go`, `EnsureImageExists`: `backOffKey := fmt.Sprintf("%s_%s", pod.UID, container.Image)`).
///
/// The image is the container's `image` field exactly as written, with no default tag added, so
/// two containers of one pod with the same image string share an entry.
pub fn backoff_key(pod_uid: &str, image: &str) -> String {
    format!("{pod_uid}_{image}")
}

/// One key's state (`backoffEntry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The current window.
    pub window: Duration,
    /// When the last failure was recorded.
    pub last_update: Duration,
}

/// A set of per-key exponential back-offs (client-go `flowcontrol.Backoff` without jitter).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    /// A back-off with the given initial and maximum windows (factor 2, no jitter).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// The kubelet's image-pull back-off: 10 s doubling to 300 s.
    pub fn kubelet_image_pull() -> Self {
        Self::new(IMAGE_PULL_INITIAL, IMAGE_PULL_MAX)
    }

    /// client-go `hasExpired`: an entry is stable again when more than twice the maximum has
    /// passed since its last update (`eventTime.Sub(lastUpdate) > maxDuration*2`).
    fn has_expired(&self, now: Duration, last_update: Duration) -> bool {
        now.saturating_sub(last_update) > self.max * 2
    }

    /// Records a failure at `now` (client-go `Backoff.Next`): a missing or expired entry starts at
    /// the initial window, otherwise the window doubles up to the maximum.
    pub fn next(&mut self, key: &str, now: Duration) {
        let window = match self.entries.get(key) {
            Some(e) if !self.has_expired(now, e.last_update) => (e.window * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                window,
                last_update: now,
            },
        );
    }

    /// Whether `key` is in back-off at `now` (client-go `Backoff.IsInBackOffSinceUpdate`): an
    /// unexpired entry exists and less than its window has passed since its last failure.
    pub fn is_in_backoff_since_update(&self, key: &str, now: Duration) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if self.has_expired(now, e.last_update) => false,
            Some(e) => now.saturating_sub(e.last_update) < e.window,
        }
    }

    /// When the current window of `key` ends, if it has an entry.
    pub fn retry_at(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.last_update + e.window)
    }

    /// The current window of `key`, if it has an entry.
    pub fn window(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.window)
    }

    /// The entry of `key`, if any.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.entries.get(key).copied()
    }

    /// Removes entries whose last failure is more than twice the maximum old (client-go
    /// `Backoff.GC`). The kubelet runs this after every successful pull.
    pub fn gc(&mut self, now: Duration) {
        let max2 = self.max * 2;
        self.entries
            .retain(|_, e| now.saturating_sub(e.last_update) <= max2);
    }

    /// Forgets `key` so the next attempt pulls at once. The kubelet has no such operation; the
    /// node agent offers it so an operator can retry as soon as the cause is fixed. Returns
    /// whether an entry existed.
    pub fn reset(&mut self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Forgets every key that starts with `prefix` (for example `"<pod UID>_"` to retry all images
    /// of one pod). Returns how many entries were removed.
    pub fn reset_prefix(&mut self, prefix: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|k, _| !k.starts_with(prefix));
        before - self.entries.len()
    }

    /// The number of keys with an entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key has an entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn windows_double_to_the_cap() {
        let mut b = Backoff::kubelet_image_pull();
        let mut t = 0;
        let mut seen = vec![];
        for _ in 0..7 {
            b.next("k", s(t));
            let w = b.window("k").unwrap();
            seen.push(w.as_secs());
            t += w.as_secs();
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn success_does_not_reset_but_gc_expires() {
        let mut b = Backoff::kubelet_image_pull();
        b.next("k", s(0));
        b.next("k", s(10));
        b.gc(s(100)); // success at 100 s: entry still young, kept
        b.next("k", s(200));
        assert_eq!(b.window("k"), Some(s(40)));
        b.gc(s(801)); // 601 s after the last failure: removed
        assert!(b.is_empty());
    }

    #[test]
    fn expiry_needs_strictly_more_than_twice_max() {
        let mut b = Backoff::kubelet_image_pull();
        b.next("k", s(0));
        b.next("k", s(10)); // 20 s
        b.next("k", s(610)); // exactly 600 s later: not expired, doubles
        assert_eq!(b.window("k"), Some(s(40)));
        b.next("k", s(1211)); // 601 s later: expired, restarts
        assert_eq!(b.window("k"), Some(s(10)));
    }

    #[test]
    fn reset_clears_one_pod() {
        let mut b = Backoff::kubelet_image_pull();
        b.next(&backoff_key("uid1", "a"), s(0));
        b.next(&backoff_key("uid1", "b"), s(0));
        b.next(&backoff_key("uid2", "a"), s(0));
        assert_eq!(b.reset_prefix("uid1_"), 2);
        assert!(!b.is_in_backoff_since_update(&backoff_key("uid1", "a"), s(1)));
        assert!(b.is_in_backoff_since_update(&backoff_key("uid2", "a"), s(1)));
        assert!(b.reset(&backoff_key("uid2", "a")));
        assert!(!b.reset(&backoff_key("uid2", "a")));
    }
}
