//! Pull policies: API defaulting and validation, the kubelet's pull decision, and the exact
//! status and event strings of the kubelet's image step.
//!
//! Sources: `pkg/apis/core/v1/defaults.go` (`SetDefaults_Container`),
//! `pkg/apis/core/validation/validation.go` (`validatePullPolicy`),
//! `pkg/kubelet/images/image_manager.go` (`EnsureImageExists`, `logIt`),
//! `pkg/kubelet/images/types.go` (error reasons), `pkg/kubelet/events/event.go` (event reasons),
//! `staging/src/k8s.io/apimachinery/pkg/util/errors/errors.go` (`aggregate.Error`).

use std::fmt;
use std::str::FromStr;

use crate::gostr::quote;

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    /// Pull on every container start.
    Always,
    /// Pull only when the image is not on the node.
    IfNotPresent,
    /// Never pull; fail when the image is not on the node.
    Never,
}

impl PullPolicy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }

    /// Validates an explicit value the way the API server does (`validatePullPolicy`): the
    /// comparison is case-sensitive, and the error names the field, e.g.
    /// `spec.containers[0].imagePullPolicy: Unsupported value: "always": supported values: "Always", "IfNotPresent", "Never"`.
    pub fn validate(value: &str, field_path: &str) -> Result<PullPolicy, UnsupportedPullPolicy> {
        value.parse().map_err(|_| UnsupportedPullPolicy {
            field_path: field_path.to_string(),
            value: value.to_string(),
        })
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PullPolicy {
    type Err = UnsupportedPullPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            _ => Err(UnsupportedPullPolicy {
                field_path: "imagePullPolicy".to_string(),
                value: s.to_string(),
            }),
        }
    }
}

/// An `imagePullPolicy` value outside the three supported ones; Display is the API server's
/// field error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field_path}: Unsupported value: {}: supported values: \"Always\", \"IfNotPresent\", \"Never\"", quote(.value))]
pub struct UnsupportedPullPolicy {
    /// The field, e.g. `spec.containers[0].imagePullPolicy`.
    pub field_path: String,
    /// The rejected value.
    pub value: String,
}

/// The policy the API server fills in when `imagePullPolicy` is empty (`SetDefaults_Container`):
/// `Always` when the tag the kubelet's `ParseImageName` finds is exactly `latest` (implicit when
/// there is neither a tag nor a digest), otherwise `IfNotPresent`, including for an image that
/// does not parse (the error is ignored there; the kubelet later reports `InvalidImageName`).
pub fn default_pull_policy(image: &str) -> PullPolicy {
    match crate::reference::parse_image_name(image) {
        Ok(parsed) if parsed.tag == "latest" => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// The effective policy of a container: the explicit value when set, else the default.
pub fn effective_pull_policy(image: &str, specified: Option<PullPolicy>) -> PullPolicy {
    specified.unwrap_or_else(|| default_pull_policy(image))
}

/// What the kubelet does about an image before pulling (`EnsureImageExists`, feature gate
/// `KubeletEnsureSecretPulledImages` off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Pull the image.
    Pull,
    /// Use the image already on the node (`Pulled`, "already present on machine").
    UsePresent,
    /// Fail with `ErrImageNeverPull`.
    NeverPullAbsent,
}

/// The kubelet's decision table (§5.2 of the spec): `Always` pulls; `IfNotPresent` pulls only
/// when absent; `Never` uses a present image and fails otherwise.
pub fn decide(policy: PullPolicy, image_present: bool) -> PullDecision {
    match (policy, image_present) {
        (PullPolicy::Always, _) => PullDecision::Pull,
        (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => PullDecision::UsePresent,
        (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::Never, false) => PullDecision::NeverPullAbsent,
    }
}

/// Container waiting reasons of the image step (`pkg/kubelet/images/types.go`).
pub mod reasons {
    /// The pull is in back-off.
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    /// The runtime's image status call failed.
    pub const IMAGE_INSPECT_ERROR: &str = "ImageInspectError";
    /// The pull failed.
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    /// Policy `Never` and the image is absent.
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    /// The image string does not parse.
    pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";
    /// The runtime reported the registry unavailable.
    pub const REGISTRY_UNAVAILABLE: &str = "RegistryUnavailable";
    /// Signature validation failed in the runtime.
    pub const SIGNATURE_VALIDATION_FAILED: &str = "SignatureValidationFailed";
}

/// Event reasons of the image step (`pkg/kubelet/events/event.go`).
pub mod events {
    /// A pull starts.
    pub const PULLING: &str = "Pulling";
    /// A pull finished, or the image is already present.
    pub const PULLED: &str = "Pulled";
    /// A failure.
    pub const FAILED: &str = "Failed";
    /// The image string or status could not be inspected.
    pub const INSPECT_FAILED: &str = "InspectFailed";
    /// Policy `Never` and the image is absent.
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    /// The pull is in back-off.
    pub const BACK_OFF: &str = "BackOff";
    /// A referenced pull secret could not be fetched (recorded on the pod).
    pub const FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET: &str = "FailedToRetrieveImagePullSecret";
}

/// The exact messages of the image step. `image` is the container's `image` field as written.
pub mod messages {
    use crate::gostr::quote;
    use std::time::Duration;

    /// `Pulling image "<img>"`.
    pub fn pulling(image: &str) -> String {
        format!("Pulling image {}", quote(image))
    }

    /// `Successfully pulled image "<img>" in <d1> (<d2> including waiting). Image size: <n> bytes.`
    /// with durations printed like Go's `time.Duration.Truncate(time.Millisecond).String()`.
    pub fn pulled(image: &str, pull: Duration, including_waiting: Duration, size: u64) -> String {
        format!(
            "Successfully pulled image {} in {} ({} including waiting). Image size: {} bytes.",
            quote(image),
            go_duration_ms(pull),
            go_duration_ms(including_waiting),
            size
        )
    }

    /// `Container image "<img>" already present on machine`.
    pub fn already_present(image: &str) -> String {
        format!(
            "Container image {} already present on machine",
            quote(image)
        )
    }

    /// `Container image "<img>" already present on machine and can be accessed by the pod`
    /// (ensure-secret-pulled images verified the pod's credentials).
    pub fn already_present_accessible(image: &str) -> String {
        format!(
            "Container image {} already present on machine and can be accessed by the pod",
            quote(image)
        )
    }

    /// `Failed to pull image "<img>": <err>`.
    pub fn failed_to_pull(image: &str, err: &str) -> String {
        format!("Failed to pull image {}: {err}", quote(image))
    }

    /// `Container image "<img>" is not present with pull policy of Never`.
    pub fn never_pull(image: &str) -> String {
        format!(
            "Container image {} is not present with pull policy of Never",
            quote(image)
        )
    }

    /// `Back-off pulling image "<img>"` (the event).
    pub fn back_off_event(image: &str) -> String {
        format!("Back-off pulling image {}", quote(image))
    }

    /// The waiting message in back-off: the event text plus `: <reason>: <message>` of the
    /// previous failure when one is stored.
    pub fn back_off_waiting(image: &str, previous: Option<(&str, &str)>) -> String {
        match previous {
            Some((reason, msg)) => format!("{}: {reason}: {msg}", back_off_event(image)),
            None => back_off_event(image),
        }
    }

    /// `Failed to apply default image tag "<img>": <parse error>` (InvalidImageName).
    pub fn invalid_image(image: &str, parse_error: &str) -> String {
        format!(
            "Failed to apply default image tag {}: {parse_error}",
            quote(image)
        )
    }

    /// `Failed to inspect image "": <err>` — the kubelet quotes the empty image ref here.
    pub fn inspect_failed(err: &str) -> String {
        format!("Failed to inspect image \"\": {err}")
    }

    /// `Error: <reason>`, the `Failed` event that follows every failure of the image step.
    pub fn error_event(reason: &str) -> String {
        format!("Error: {reason}")
    }

    /// `Unable to retrieve some image pull secrets (<a>, <b>); attempting to pull the image may not succeed.`
    pub fn failed_to_retrieve_pull_secrets(names: &[&str]) -> String {
        format!(
            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
            names.join(", ")
        )
    }

    /// Go's `time.Duration.String()` after truncation to milliseconds, e.g. `1.234s`, `512ms`,
    /// `1m2.5s`, `0s`.
    pub fn go_duration_ms(d: Duration) -> String {
        let ms = d.as_millis();
        if ms == 0 {
            return "0s".to_string();
        }
        if ms < 1000 {
            return format!("{ms}ms");
        }
        let total_secs = ms / 1000;
        let frac_ms = ms % 1000;
        let h = total_secs / 3600;
        let m = (total_secs % 3600) / 60;
        let s = total_secs % 60;
        let mut secs = s.to_string();
        if frac_ms != 0 {
            let frac = format!("{frac_ms:03}");
            secs.push('.');
            secs.push_str(frac.trim_end_matches('0'));
        }
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h{m}m"));
        } else if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&secs);
        out.push('s');
        out
    }
}

/// The text of an aggregate of pull errors, as `utilerrors.NewAggregate(errs).Error()` prints
/// it: one message alone; otherwise the distinct messages in order, joined by `", "` inside
/// `[` `]`; a single message without brackets when all are identical.
pub fn aggregate_error(messages: &[String]) -> String {
    match messages {
        [] => String::new(),
        [one] => one.clone(),
        many => {
            let mut seen: Vec<&str> = Vec::new();
            for m in many {
                if !seen.contains(&m.as_str()) {
                    seen.push(m);
                }
            }
            if seen.len() == 1 {
                seen[0].to_string()
            } else {
                format!("[{}]", seen.join(", "))
            }
        }
    }
}

/// How the kubelet classifies a failed pull by the runtime's error text (`EnsureImageExists`):
/// returns `(waiting reason, waiting message)`.
pub fn classify_pull_error(image: &str, err: &str) -> (&'static str, String) {
    if let Some(rest) = err.strip_prefix(reasons::REGISTRY_UNAVAILABLE) {
        (
            reasons::REGISTRY_UNAVAILABLE,
            format!("image pull failed for {image} because the registry is unavailable{rest}"),
        )
    } else if let Some(rest) = err.strip_prefix(reasons::SIGNATURE_VALIDATION_FAILED) {
        (
            reasons::SIGNATURE_VALIDATION_FAILED,
            format!("image pull failed for {image} because the signature validation failed{rest}"),
        )
    } else {
        (reasons::ERR_IMAGE_PULL, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::messages::*;
    use super::*;
    use std::time::Duration;

    #[test]
    fn decision_table() {
        use PullDecision::*;
        use PullPolicy::*;
        assert_eq!(decide(Always, true), Pull);
        assert_eq!(decide(Always, false), Pull);
        assert_eq!(decide(IfNotPresent, true), UsePresent);
        assert_eq!(decide(IfNotPresent, false), Pull);
        assert_eq!(decide(Never, true), UsePresent);
        assert_eq!(decide(Never, false), NeverPullAbsent);
    }

    #[test]
    fn validation_message() {
        let e = PullPolicy::validate("always", "spec.containers[0].imagePullPolicy").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.containers[0].imagePullPolicy: Unsupported value: \"always\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        );
    }

    #[test]
    fn aggregate_like_apimachinery() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(aggregate_error(&s(&[])), "");
        assert_eq!(aggregate_error(&s(&["a"])), "a");
        assert_eq!(aggregate_error(&s(&["a", "a"])), "a");
        assert_eq!(aggregate_error(&s(&["a", "b", "a"])), "[a, b]");
    }

    #[test]
    fn durations_like_go() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration_ms(ms(0)), "0s");
        assert_eq!(go_duration_ms(Duration::from_micros(999)), "0s");
        assert_eq!(go_duration_ms(ms(512)), "512ms");
        assert_eq!(go_duration_ms(ms(1234)), "1.234s");
        assert_eq!(go_duration_ms(ms(1500)), "1.5s");
        assert_eq!(go_duration_ms(ms(2000)), "2s");
        assert_eq!(go_duration_ms(ms(62_500)), "1m2.5s");
        assert_eq!(go_duration_ms(ms(3_600_000)), "1h0m0s");
    }

    #[test]
    fn classify() {
        assert_eq!(
            classify_pull_error("r/x:1", "RegistryUnavailable: down"),
            (
                "RegistryUnavailable",
                "image pull failed for r/x:1 because the registry is unavailable: down".into()
            )
        );
        assert_eq!(classify_pull_error("x", "boom").0, "ErrImagePull");
    }

    #[test]
    fn message_strings() {
        assert_eq!(
            back_off_waiting("busybox", Some(("ErrImagePull", "denied"))),
            "Back-off pulling image \"busybox\": ErrImagePull: denied"
        );
        assert_eq!(
            back_off_waiting("busybox", None),
            "Back-off pulling image \"busybox\""
        );
        assert_eq!(
            pulled("busybox", Duration::from_millis(1234), Duration::from_millis(1500), 42),
            "Successfully pulled image \"busybox\" in 1.234s (1.5s including waiting). Image size: 42 bytes."
        );
        assert_eq!(
            failed_to_retrieve_pull_secrets(&["a", "b"]),
            "Unable to retrieve some image pull secrets (a, b); attempting to pull the image may not succeed."
        );
    }
}
