//! Node-wide image pull limits, as the kubelet has them: `serializeImagePulls` (default true:
//! one pull at a time) and `maxParallelImagePulls` (KEP-3673: at most N pulls at once when
//! pulls are not serialized; unset means no limit).
//!
//! Upstream (`pkg/kubelet/images/image_manager.go`, `NewImageManager`) picks
//! `newSerialImagePuller` when pulls are serialized, else `newParallelImagePuller` with a token
//! channel of `maxParallelImagePulls` slots (`pkg/kubelet/images/puller.go`): a pull waits for
//! a slot, runs, and frees it. The `Pulling` event is recorded before the wait, so a queued
//! pull shows as `Pulling` and its `Pulled` event reports the time spent waiting
//! ("… in 1.2s (5.3s including waiting)"). Here a [`tokio::sync::Semaphore`] (first come,
//! first served, like the serial puller's channel) is the token channel, and a pull that has
//! to wait is also logged with the number of pulls ahead of it.
//!
//! The configuration is validated as the kubelet validates it
//! (`pkg/kubelet/apis/config/validation/validation.go`, `ValidateKubeletConfiguration`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `serializeImagePulls` and `maxParallelImagePulls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullLimits {
    serialize: bool,
    max_parallel: Option<u32>,
}

impl Default for PullLimits {
    /// The kubelet's defaults: serialized, no parallel limit set.
    fn default() -> Self {
        PullLimits {
            serialize: true,
            max_parallel: None,
        }
    }
}

/// A pull-limit configuration the kubelet would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullLimitsError {
    /// `maxParallelImagePulls` below 1.
    #[error("invalid configuration: maxParallelImagePulls {0} must be a positive number")]
    NotPositive(i64),
    /// `maxParallelImagePulls` above 1 with serialized pulls.
    #[error(
        "invalid configuration: maxParallelImagePulls cannot be larger than 1 unless \
         SerializeImagePulls (--serialize-image-pulls) is set to false"
    )]
    SerializedWithParallel,
}

impl PullLimits {
    /// Validated limits (the kubelet's two rules for these fields).
    pub fn new(serialize: bool, max_parallel: Option<i64>) -> Result<Self, PullLimitsError> {
        let max_parallel = match max_parallel {
            None => None,
            Some(n) if n < 1 => return Err(PullLimitsError::NotPositive(n)),
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        };
        if serialize && max_parallel.is_some_and(|n| n > 1) {
            return Err(PullLimitsError::SerializedWithParallel);
        }
        Ok(PullLimits {
            serialize,
            max_parallel,
        })
    }

    /// Pulls allowed at once; `None` for no limit.
    pub fn slots(&self) -> Option<usize> {
        if self.serialize {
            Some(1)
        } else {
            self.max_parallel.map(|n| n as usize)
        }
    }
}

impl std::fmt::Display for PullLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.slots() {
            Some(1) => f.write_str("one image pull at a time"),
            Some(n) => write!(f, "at most {n} image pulls at a time"),
            None => f.write_str("image pulls unlimited"),
        }
    }
}

/// The node's pull slots.
#[derive(Debug)]
pub(crate) struct PullGate {
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
    running: AtomicUsize,
}

/// A pull slot, freed on drop.
pub(crate) struct PullSlot<'a> {
    gate: &'a PullGate,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for PullSlot<'_> {
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Decrements a counter on drop (a waiting pull whose future is dropped leaves the queue).
struct Count<'a>(&'a AtomicUsize);

impl Drop for Count<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PullGate {
    pub(crate) fn new(limits: PullLimits) -> Self {
        PullGate {
            slots: limits.slots().map(|n| Arc::new(Semaphore::new(n))),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        }
    }

    /// Waits for a slot (first come, first served). `image` names the pull in the log line of
    /// a pull that has to wait.
    pub(crate) async fn acquire(&self, image: &str) -> PullSlot<'_> {
        let permit = match &self.slots {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
                    let _queued = Count(&self.waiting);
                    tracing::info!(
                        image,
                        running = self.running.load(Ordering::SeqCst),
                        ahead,
                        "image pull queued: the node's pull limit (serializeImagePulls / maxParallelImagePulls) is reached"
                    );
                    // the semaphore is never closed
                    sem.clone().acquire_owned().await.ok()
                }
            },
        };
        self.running.fetch_add(1, Ordering::SeqCst);
        PullSlot {
            gate: self,
            _permit: permit,
        }
    }

    /// (pulls running, pulls waiting for a slot).
    pub(crate) fn load(&self) -> (usize, usize) {
        (
            self.running.load(Ordering::SeqCst),
            self.waiting.load(Ordering::SeqCst),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_the_kubelet() {
        assert_eq!(PullLimits::default().slots(), Some(1));
        assert_eq!(PullLimits::new(true, None).unwrap().slots(), Some(1));
        assert_eq!(PullLimits::new(true, Some(1)).unwrap().slots(), Some(1));
        assert_eq!(PullLimits::new(false, None).unwrap().slots(), None);
        assert_eq!(PullLimits::new(false, Some(5)).unwrap().slots(), Some(5));
        let e = PullLimits::new(true, Some(3)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: maxParallelImagePulls cannot be larger than 1 unless \
             SerializeImagePulls (--serialize-image-pulls) is set to false"
        );
        let e = PullLimits::new(false, Some(0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: maxParallelImagePulls 0 must be a positive number"
        );
        assert!(PullLimits::new(false, Some(-2)).is_err());
    }
}
