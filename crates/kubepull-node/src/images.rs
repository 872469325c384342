//! The kubelet's image step for one container: `EnsureImageExists`
//! (kubernetes `pkg/kubelet/images/image_manager.go`), with ensure-secret-pulled images
//! (KEP-2535, `pkg/kubelet/images/pullmanager`) under the kubelet's four
//! `imagePullCredentialsVerificationPolicy` values (default `NeverVerifyPreloadedImages`).
//!
//! The state machine, per container start attempt:
//!
//! 1. `applyDefaultImageTag`; a parse error is `InvalidImageName` (event `InspectFailed`).
//! 2. Presence by policy: `Always` treats the image as absent; `IfNotPresent`/`Never` ask the
//!    image service. `Never` and absent is `ErrImageNeverPull`.
//! 3. Present: with verification on, an image this node pulled with a pod Secret is handed to
//!    another pod only when one of that pod's credentials matches the record (by credential hash or
//!    by Secret coordinates), or when the image was pulled anonymously or with the node's own
//!    credentials. Otherwise the pod's credentials must be verified by pulling again (`Never`:
//!    `ErrImageNeverPull`, so presence is not revealed). The step fails closed: an image without
//!    a pull record is "preloaded" (trusted under `NeverVerifyPreloadedImages`) only when the
//!    admin listed its repository ([`PreloadedImages`]); otherwise it is verified like any other.
//!    Upstream trusts every image without a record, because containerd's store is also filled by
//!    `ctr`/`crictl`; kubepull's store is filled by kubepull only, so a missing record means a
//!    lost or failed record write, never an admin's preload. Unreadable records also mean
//!    "verify" (upstream: "any error reading the records counts as must pull").
//! 4. Credentials: the pod's Secrets, then the node's docker config (kubelet keyring order); a
//!    Secret that does not decode fails the step with the decoder's text as reason and message,
//!    with no back-off.
//! 5. Back-off keyed by `<pod UID>_<image as written>`: `ImagePullBackOff`, event `BackOff`.
//! 6. Pull: `Pulling`, then (after waiting for one of the node's pull slots:
//!    [`crate::pull_limits`]) `Pulled` with durations and size, the wait included, or
//!    `Failed` and back-off. The pull
//!    record is written before the image is handed to the container; if it cannot be written
//!    the pull fails (`ErrImagePull`, back-off), so no image is ever usable without its record.
//!
//! Every failure is followed by a `Failed` event `Error: <reason>`. Time is a parameter (a
//! [`Clock`]), so back-off is tested on a fake clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kubepull_core::backoff::{backoff_key, Backoff};
use kubepull_core::dockerconfig::DockerConfig;
use kubepull_core::keyring::{self, Credential, CredentialSource, PullSecret};
use kubepull_core::pullpolicy::{self, messages, reasons, PullDecision, PullPolicy};
use kubepull_core::reference::{self, Reference};

/// Event type, as on a Kubernetes Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event the step wants recorded against the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEvent {
    /// Normal or Warning.
    pub event_type: EventType,
    /// The reason (`Pulling`, `Pulled`, `Failed`, `BackOff`, …).
    pub reason: String,
    /// The exact kubelet message.
    pub message: String,
}

impl StepEvent {
    fn new(event_type: EventType, reason: &str, message: String) -> Self {
        StepEvent {
            event_type,
            reason: reason.to_string(),
            message,
        }
    }
}

/// A monotonic clock (time since an arbitrary origin).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct SystemClock(std::time::Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(std::time::Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Who may use an image this node pulled (a KEP-2535 pulled record, reduced to what the
/// decision needs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PulledBy {
    /// Pulled anonymously or with the node's own credentials: every pod may use it.
    pub node_pods_accessible: bool,
    /// Credential hashes that pulled it ([`Credential::credential_hash`]).
    pub credential_hashes: Vec<String>,
    /// Secret coordinates `namespace/name` that pulled it.
    pub secrets: Vec<String>,
}

/// An image present on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentImage {
    /// The image ID (`sha256:…` of the config; what `imageID` reports).
    pub image_ref: String,
    /// The pull record, or `None` for an image loaded outside the node agent.
    pub pulled_by: Option<PulledBy>,
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The image ID.
    pub image_ref: String,
    /// The image size in bytes, as reported in the `Pulled` event.
    pub size: u64,
    /// How long the pull itself took (without waiting for other pulls of the same image).
    pub pull_duration: Duration,
    /// Which credential worked (`None`: anonymous).
    pub credential: Option<Credential>,
}

/// The node's image service (the CRI image calls): presence, pull, pull records.
#[async_trait]
pub trait ImageService: Send + Sync {
    /// `ImageStatus` by the defaulted image name (parsed once by the step): the image if
    /// present.
    async fn image_status(&self, image: &Reference) -> Result<Option<PresentImage>, String>;
    /// `PullImage` of the defaulted image name (parsed once by the step) with credentials in
    /// kubelet order (anonymous when empty). The error text becomes the waiting message, so it
    /// must never contain a secret.
    async fn pull_image(
        &self,
        image: &Reference,
        credentials: &[Credential],
    ) -> Result<PulledImage, String>;
    /// Records who pulled an image (KEP-2535 pulled record).
    async fn record_pulled(
        &self,
        image_ref: &str,
        namespace: &str,
        credential: Option<&Credential>,
    ) -> Result<(), String>;
}

/// Ensure-secret-pulled verification policy (`imagePullCredentialsVerificationPolicy`, kubelet
/// `pkg/kubelet/apis/config/types.go`, `ImagePullCredentialsVerificationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyPolicy {
    /// The behaviour without the feature: a present image is used by every pod.
    NeverVerify,
    /// The default: images this node pulled are verified; images the admin listed as preloaded
    /// ([`PreloadedImages`]) and that have no pull record are trusted.
    #[default]
    NeverVerifyPreloadedImages,
    /// Images whose repository is on the allowlist ([`PreloadedImages`]) are trusted; every
    /// other present image is verified.
    NeverVerifyAllowlistedImages,
    /// Every present image is verified.
    AlwaysVerify,
}

impl VerifyPolicy {
    /// The kubelet's names, in its order.
    pub const NAMES: [&'static str; 4] = [
        "NeverVerify",
        "NeverVerifyPreloadedImages",
        "NeverVerifyAllowlistedImages",
        "AlwaysVerify",
    ];

    /// The kubelet's name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyPolicy::NeverVerify => Self::NAMES[0],
            VerifyPolicy::NeverVerifyPreloadedImages => Self::NAMES[1],
            VerifyPolicy::NeverVerifyAllowlistedImages => Self::NAMES[2],
            VerifyPolicy::AlwaysVerify => Self::NAMES[3],
        }
    }
}

/// A policy name that is not one of the kubelet's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown image pull credentials verification policy {0:?}: use NeverVerify, \
     NeverVerifyPreloadedImages, NeverVerifyAllowlistedImages or AlwaysVerify"
)]
pub struct UnknownVerifyPolicy(pub String);

impl std::str::FromStr for VerifyPolicy {
    type Err = UnknownVerifyPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "NeverVerify" => Ok(VerifyPolicy::NeverVerify),
            "NeverVerifyPreloadedImages" => Ok(VerifyPolicy::NeverVerifyPreloadedImages),
            "NeverVerifyAllowlistedImages" => Ok(VerifyPolicy::NeverVerifyAllowlistedImages),
            "AlwaysVerify" => Ok(VerifyPolicy::AlwaysVerify),
            other => Err(UnknownVerifyPolicy(other.to_string())),
        }
    }
}

/// An entry of the preloaded-images list that the kubelet's validation would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("preloaded images line {line}: {entry:?}: {reason}")]
pub struct PreloadedError {
    /// 1-based line.
    pub line: usize,
    /// The entry as written.
    pub entry: String,
    /// What is wrong and how to write it.
    pub reason: String,
}

/// The repositories the admin declared: under `NeverVerifyPreloadedImages` the images loaded on
/// this node outside a pod's pull (trusted when they have no pull record), under
/// `NeverVerifyAllowlistedImages` the kubelet's `preloadedImagesVerificationAllowlist`.
///
/// Entries follow the kubelet's allowlist rules (KEP-2535; kubelet config validation of
/// `preloadedImagesVerificationAllowlist`): an exact, fully normalized repository name without
/// tag or digest (`docker.io/library/busybox`), or a prefix ending in `/*` with at least a
/// host before it (`registry.example:5000/base/*`); no surrounding spaces, `*` only as the
/// trailing `/*`. One entry per line; blank lines and lines starting with `#` are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreloadedImages {
    entries: Vec<String>,
}

impl PreloadedImages {
    /// Parses and validates a list.
    pub fn parse(text: &str) -> Result<Self, PreloadedError> {
        let mut entries = vec![];
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
                continue;
            }
            let err = |reason: &str| PreloadedError {
                line: i + 1,
                entry: raw.to_string(),
                reason: reason.to_string(),
            };
            if raw.trim() != raw {
                return Err(err("remove the spaces around the entry"));
            }
            let (repo, wildcard) = match raw.strip_suffix("/*") {
                Some(r) => (r, true),
                None => (raw, false),
            };
            if repo.contains('*') {
                return Err(err("'*' is only allowed as a trailing \"/*\""));
            }
            if wildcard {
                if repo.is_empty() || repo.contains('@') {
                    return Err(err(
                        "a wildcard entry needs a registry host before \"/*\" (host/path/*)",
                    ));
                }
                entries.push(format!("{repo}/*"));
                continue;
            }
            let parsed = reference::parse_normalized_named(repo).map_err(|e| {
                err(&format!(
                    "not a repository name ({e}); write e.g. docker.io/library/busybox"
                ))
            })?;
            if parsed.tag().is_some() || parsed.digest().is_some() {
                return Err(err("remove the tag or digest: entries name repositories"));
            }
            if parsed.name() != repo {
                return Err(err(&format!(
                    "write the fully normalized name {:?}",
                    parsed.name()
                )));
            }
            entries.push(repo.to_string());
        }
        Ok(PreloadedImages { entries })
    }

    /// Whether the repository (fully normalized, no tag or digest) is listed.
    pub fn matches(&self, repository: &str) -> bool {
        self.entries.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => repository.starts_with(prefix),
            None => e == repository,
        })
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One container's image request.
#[derive(Debug, Clone)]
pub struct ImageRequest<'a> {
    /// The pod UID (back-off key).
    pub pod_uid: &'a str,
    /// The pod namespace (Secret coordinates).
    pub namespace: &'a str,
    /// The container's `image` field as written.
    pub image: &'a str,
    /// The container's `imagePullPolicy` (already defaulted by the API server; `None` applies
    /// the default rule again).
    pub policy: Option<PullPolicy>,
    /// The pod's pull Secrets that could be fetched, in pod order.
    pub pull_secrets: &'a [PullSecret],
    /// The node's docker config, if any.
    pub node_config: Option<&'a DockerConfig>,
}

/// The outcome of the image step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOutcome {
    /// The image is there: start the container.
    Ready {
        /// The image ID.
        image_ref: String,
    },
    /// The container waits with this reason and message.
    Waiting {
        /// `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, …
        reason: String,
        /// The kubelet's message.
        message: String,
        /// When a retry may succeed (end of the back-off window), if known.
        retry_after: Option<Duration>,
    },
}

/// The image step, with its back-off and previous-failure memory (one per node).
pub struct ImageManager {
    service: Arc<dyn ImageService>,
    clock: Arc<dyn Clock>,
    verify: VerifyPolicy,
    preloaded: PreloadedImages,
    gate: crate::pull_limits::PullGate,
    state: Mutex<State>,
}

struct State {
    backoff: Backoff,
    previous: HashMap<String, (String, String)>,
}

impl ImageManager {
    /// A manager over an image service.
    pub fn new(
        service: Arc<dyn ImageService>,
        clock: Arc<dyn Clock>,
        verify: VerifyPolicy,
    ) -> Self {
        ImageManager {
            service,
            clock,
            verify,
            preloaded: PreloadedImages::default(),
            gate: crate::pull_limits::PullGate::new(crate::pull_limits::PullLimits::default()),
            state: Mutex::new(State {
                backoff: Backoff::kubelet_image_pull(),
                previous: HashMap::new(),
            }),
        }
    }

    /// The admin's preloaded images / allowlist (see [`PreloadedImages`]).
    pub fn with_preloaded(mut self, preloaded: PreloadedImages) -> Self {
        self.preloaded = preloaded;
        self
    }

    /// The node-wide pull limits (default: the kubelet's, one pull at a time).
    pub fn with_pull_limits(mut self, limits: crate::pull_limits::PullLimits) -> Self {
        self.gate = crate::pull_limits::PullGate::new(limits);
        self
    }

    /// Pulls running and pulls waiting for a slot, now.
    pub fn pull_load(&self) -> (usize, usize) {
        self.gate.load()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the back-off of one pod (all its images) or of every pod: the operator's "retry
    /// now" once the cause is fixed (the kubelet has no such control).
    pub fn reset_backoff(&self, pod_uid: Option<&str>) {
        let mut st = self.state();
        match pod_uid {
            Some(uid) => {
                let prefix = format!("{uid}_");
                st.backoff.reset_prefix(&prefix);
                st.previous.retain(|k, _| !k.starts_with(&prefix));
            }
            None => {
                st.backoff = Backoff::kubelet_image_pull();
                st.previous.clear();
            }
        }
    }

    /// Runs the step; `events` receives the events in the order the kubelet records them.
    pub async fn ensure_image(
        &self,
        req: &ImageRequest<'_>,
        events: &mut Vec<StepEvent>,
    ) -> ImageOutcome {
        let image = req.image;
        // 1. applyDefaultImageTag, parsed once: the parsed name is carried to the image service
        let (defaulted, parsed) = match reference::apply_default_image_tag_parsed(image) {
            Ok(d) => d,
            Err(e) => return invalid_image_name(events, image, &e),
        };
        let policy = req
            .policy
            .unwrap_or_else(|| pullpolicy::default_pull_policy(image));

        // 2. presence
        let present = if policy == PullPolicy::Always {
            None
        } else {
            match self.service.image_status(&parsed).await {
                Ok(p) => p,
                Err(e) => {
                    let msg = messages::inspect_failed(&e);
                    events.push(StepEvent::new(
                        EventType::Warning,
                        pullpolicy::events::INSPECT_FAILED,
                        msg.clone(),
                    ));
                    return fail(events, reasons::IMAGE_INSPECT_ERROR, msg, None);
                }
            }
        };

        // 4 (needed by 3 with verification on). Credentials, kubelet keyring order.
        let resolution = keyring::resolve(image, req.pull_secrets, req.node_config);

        match pullpolicy::decide(policy, present.is_some()) {
            PullDecision::NeverPullAbsent => return self.never_pull(image, events),
            PullDecision::UsePresent => {
                let p = present.clone().unwrap_or_else(|| PresentImage {
                    image_ref: String::new(),
                    pulled_by: None,
                });
                let creds = resolution
                    .as_ref()
                    .map(|r| r.credentials.as_slice())
                    .unwrap_or(&[]);
                let repository = parsed.name();
                if !self.must_verify(&p, &repository, req.namespace, creds) {
                    crate::metrics::present_decision("used");
                    let msg = if self.verify == VerifyPolicy::NeverVerify {
                        messages::already_present(image)
                    } else {
                        messages::already_present_accessible(image)
                    };
                    events.push(StepEvent::new(
                        EventType::Normal,
                        pullpolicy::events::PULLED,
                        msg,
                    ));
                    return ImageOutcome::Ready {
                        image_ref: p.image_ref,
                    };
                }
                if policy == PullPolicy::Never {
                    crate::metrics::present_decision("never");
                    return self.never_pull(image, events);
                }
                crate::metrics::present_decision("verify");
            }
            PullDecision::Pull => {}
        }

        let resolution = match resolution {
            Ok(r) => r,
            Err(keyring::ResolveError::InvalidImage(e)) => {
                let msg = messages::invalid_image(image, &e.to_string());
                return fail(events, reasons::INVALID_IMAGE_NAME, msg, None);
            }
            Err(e @ keyring::ResolveError::Secret { .. }) => {
                // The decoder's text is both reason and message; no back-off (kubelet).
                let text = e.to_string();
                return fail(events, &text.clone(), text, None);
            }
        };

        // 5. back-off
        let key = backoff_key(req.pod_uid, image);
        let now = self.clock.now();
        {
            let st = self.state();
            if st.backoff.is_in_backoff_since_update(&key, now) {
                let prev = st.previous.get(&key).cloned();
                let retry_after = st.backoff.retry_at(&key).map(|t| t.saturating_sub(now));
                drop(st);
                crate::metrics::back_off();
                events.push(StepEvent::new(
                    EventType::Normal,
                    pullpolicy::events::BACK_OFF,
                    messages::back_off_event(image),
                ));
                let msg = messages::back_off_waiting(
                    image,
                    prev.as_ref().map(|(r, m)| (r.as_str(), m.as_str())),
                );
                return fail(events, reasons::IMAGE_PULL_BACK_OFF, msg, retry_after);
            }
        }

        // 6. pull
        self.state().previous.remove(&key);
        events.push(StepEvent::new(
            EventType::Normal,
            pullpolicy::events::PULLING,
            messages::pulling(image),
        ));
        let started = self.clock.now();
        // the kubelet records Pulling before a queued pull waits for its slot
        // (image_manager.go: logIt(PullingImage) then puller.pullImage)
        let slot = self.gate.acquire(&defaulted).await;
        let result = self
            .service
            .pull_image(&parsed, &resolution.credentials)
            .await;
        drop(slot);
        let seconds = self.clock.now().saturating_sub(started).as_secs_f64();
        match result {
            Ok(pulled) => {
                let waited = self.clock.now().saturating_sub(started);
                self.state().backoff.gc(self.clock.now());
                if self.verify != VerifyPolicy::NeverVerify {
                    // Fail closed: the image is handed to the container only once its record is
                    // written; without a record every later pod would have to be verified, but
                    // this pod's own credentials were checked, so a lost record must not go
                    // unnoticed either. The pull is failed and retried after the back-off.
                    if let Err(e) = self
                        .service
                        .record_pulled(&pulled.image_ref, req.namespace, pulled.credential.as_ref())
                        .await
                    {
                        let err = format!("failed to record the pull (KEP-2535 pull record): {e}");
                        crate::metrics::pull_finished(seconds, None, Some(&err));
                        return self.pull_failed(image, &key, &err, events);
                    }
                }
                crate::metrics::pull_finished(seconds, Some(pulled.size), None);
                events.push(StepEvent::new(
                    EventType::Normal,
                    pullpolicy::events::PULLED,
                    messages::pulled(
                        image,
                        pulled.pull_duration,
                        waited.max(pulled.pull_duration),
                        pulled.size,
                    ),
                ));
                ImageOutcome::Ready {
                    image_ref: pulled.image_ref,
                }
            }
            Err(err) => {
                crate::metrics::pull_finished(seconds, None, Some(&err));
                self.pull_failed(image, &key, &err, events)
            }
        }
    }

    fn pull_failed(
        &self,
        image: &str,
        key: &str,
        err: &str,
        events: &mut Vec<StepEvent>,
    ) -> ImageOutcome {
        events.push(StepEvent::new(
            EventType::Warning,
            pullpolicy::events::FAILED,
            messages::failed_to_pull(image, err),
        ));
        let (reason, msg) = pullpolicy::classify_pull_error(image, err);
        let now = self.clock.now();
        let retry_after = {
            let mut st = self.state();
            st.backoff.next(key, now);
            st.previous
                .insert(key.to_string(), (reason.to_string(), msg.clone()));
            st.backoff.retry_at(key).map(|t| t.saturating_sub(now))
        };
        fail(events, reason, msg, retry_after)
    }
    fn never_pull(&self, image: &str, events: &mut Vec<StepEvent>) -> ImageOutcome {
        let msg = messages::never_pull(image);
        events.push(StepEvent::new(
            EventType::Warning,
            pullpolicy::events::ERR_IMAGE_NEVER_PULL,
            msg.clone(),
        ));
        fail(events, reasons::ERR_IMAGE_NEVER_PULL, msg, None)
    }

    /// KEP-2535 `MustAttemptImagePull` for a present image (`pkg/kubelet/images/pullmanager`,
    /// `PullManager.MustAttemptImagePull` with the policy enforcer of
    /// `image_pull_policies.go`), failing closed for images without a record (module docs).
    fn must_verify(
        &self,
        present: &PresentImage,
        repository: &str,
        namespace: &str,
        creds: &[Credential],
    ) -> bool {
        let pulled_by = match (self.verify, &present.pulled_by) {
            (VerifyPolicy::NeverVerify, _) => return false,
            (VerifyPolicy::NeverVerifyAllowlistedImages, _)
                if self.preloaded.matches(repository) =>
            {
                return false
            }
            (VerifyPolicy::NeverVerifyPreloadedImages, None) => {
                return !self.preloaded.matches(repository)
            }
            (_, None) => return true,
            (_, Some(p)) => p,
        };
        if pulled_by.node_pods_accessible {
            return false;
        }
        // Only credentials with a source take part: pod Secrets, not the node's config.
        !creds.iter().any(|c| match &c.source {
            CredentialSource::Secret { name } => {
                pulled_by.credential_hashes.contains(&c.credential_hash())
                    || pulled_by.secrets.contains(&format!("{namespace}/{name}"))
            }
            _ => false,
        })
    }
}

/// An image name that does not parse: a FailedToInspectImage warning, then InvalidImageName
/// (image_manager.go, EnsureImageExists, on the applyDefaultImageTag error).
fn invalid_image_name(
    events: &mut Vec<StepEvent>,
    image: &str,
    err: &reference::ImageNameError,
) -> ImageOutcome {
    let msg = messages::invalid_image(image, &err.to_string());
    events.push(StepEvent::new(
        EventType::Warning,
        pullpolicy::events::INSPECT_FAILED,
        msg.clone(),
    ));
    fail(events, reasons::INVALID_IMAGE_NAME, msg, None)
}

fn fail(
    events: &mut Vec<StepEvent>,
    reason: &str,
    message: String,
    retry_after: Option<Duration>,
) -> ImageOutcome {
    events.push(StepEvent::new(
        EventType::Warning,
        pullpolicy::events::FAILED,
        messages::error_event(reason),
    ));
    ImageOutcome::Waiting {
        reason: reason.to_string(),
        message,
        retry_after,
    }
}
