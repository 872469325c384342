//! The pure rules behind `kubepull doctor`: why can a pod not pull its image?
//!
//! The command gathers data at the edge (the pod, its events, the Secrets it references, a live
//! probe of the registry); this module only judges it, without I/O:
//!
//! - [`message`]: [`classify_message`] reads any pull error a user pastes (kubelet event, waiting
//!   message, CRI-O, containerd 1.x/2.x, dockershim/cri-dockerd or crictl wording) and names the
//!   most likely [`Cause`], the other causes still possible, and the phrases that decided it.
//! - [`traps`]: [`check_secrets`] replays what the kubelet does with the pod's
//!   `imagePullSecrets` and reports every trap on the way (missing or unreadable Secret, wrong
//!   type or key, unusable payload, no matching registry key, ServiceAccount secrets the pod never
//!   received), each with a concrete fix.
//! - [`verdict`](mod@verdict): [`verdict()`] combines the trap report, the live probe and what the
//!   kubelet reported into one [`Verdict`].
//!
//! Nothing here ever echoes a secret: message evidence goes through [`redact`], and credential
//! views carry registry keys and usernames only.
//!
//! ```
//! use kubepull_core::diagnose::{classify_message, Cause};
//!
//! let c = classify_message(
//!     "Failed to pull image \"10.0.0.5:5000/tools/jq:1.7\": failed to pull and unpack image \
//!      \"10.0.0.5:5000/tools/jq:1.7\": failed to resolve reference \"10.0.0.5:5000/tools/jq:1.7\": \
//!      pull access denied, repository does not exist or may require authorization: \
//!      authorization failed: no basic auth credentials",
//! );
//! assert_eq!(c.cause, Cause::NoCredentialsSent);
//! assert_eq!(c.runtime, Some("containerd"));
//! assert_eq!(c.registry.as_deref(), Some("10.0.0.5:5000"));
//! assert_eq!(c.evidence[0], "authorization failed: no basic auth credentials");
//! ```

pub mod message;
pub mod traps;
pub mod verdict;

pub use message::{classify_message, redact, MessageClass};
pub use traps::{
    check_secrets, CredentialView, Finding, KeySource, SecretLookup, ServiceAccountView, Severity,
    Trap, TrapInput, TrapReport,
};
pub use verdict::{
    verdict, AttemptResult, CredentialAttempt, KubeletView, ManifestView, ProbeFailure, ProbeView,
    Verdict,
};

use std::fmt;
use std::str::FromStr;

/// Why an image pull fails (or [`Cause::Ok`] when it does not).
///
/// The string form ([`Cause::as_str`], [`Display`](fmt::Display), serde) is a stable kebab-case
/// name such as `credentials-rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The image pulls (or the pod runs).
    Ok,
    /// Credentials were sent and the registry or its token service refused them (401).
    CredentialsRejected,
    /// The pull went out without credentials although the registry requires them.
    NoCredentialsSent,
    /// The registry knows who is asking but that identity may not pull this repository (403).
    NoPullAccess,
    /// The repository or tag does not exist (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, 404).
    ImageNotFound,
    /// The image exists but has no manifest for the node's OS/architecture.
    PlatformNotFound,
    /// The registry throttles the pulls (429, `TOOMANYREQUESTS`).
    RateLimited,
    /// The registry's certificate is signed by an authority the node does not trust.
    TlsUntrusted,
    /// The registry's certificate has expired, is not yet valid, or names other hosts.
    TlsExpiredOrMismatch,
    /// The node cannot resolve the registry host name.
    DnsFailure,
    /// The registry does not answer (connection refused or reset, no route, network unreachable).
    RegistryUnreachable,
    /// The registry speaks plain HTTP and the runtime HTTPS (or the other way round).
    HttpHttpsMismatch,
    /// The image field is not a valid image reference.
    InvalidImageName,
    /// `imagePullPolicy: Never` and the image is not on the node.
    NeverPullMissing,
    /// A pull secret's payload cannot be used (bad `auth` field, wrong format for its type).
    SecretFormat,
    /// The kubelet's cloud credential provider (ECR, GCR/Artifact Registry, ACR) failed or gave
    /// credentials the registry refused.
    CloudCredentialProvider,
    /// The layers downloaded but could not be stored or unpacked (disk full, extract errors).
    DiskOrExtract,
    /// A download was cut short or its content does not match its digest or size.
    CorruptDownload,
    /// The manifest's media type or schema is not supported by the runtime.
    UnsupportedManifest,
    /// The pull did not finish in time (deadline, no progress, I/O timeout).
    Timeout,
    /// Nothing known explains the text.
    Unknown,
}

impl Cause {
    /// Every cause, in declaration order.
    pub const ALL: [Cause; 21] = [
        Cause::Ok,
        Cause::CredentialsRejected,
        Cause::NoCredentialsSent,
        Cause::NoPullAccess,
        Cause::ImageNotFound,
        Cause::PlatformNotFound,
        Cause::RateLimited,
        Cause::TlsUntrusted,
        Cause::TlsExpiredOrMismatch,
        Cause::DnsFailure,
        Cause::RegistryUnreachable,
        Cause::HttpHttpsMismatch,
        Cause::InvalidImageName,
        Cause::NeverPullMissing,
        Cause::SecretFormat,
        Cause::CloudCredentialProvider,
        Cause::DiskOrExtract,
        Cause::CorruptDownload,
        Cause::UnsupportedManifest,
        Cause::Timeout,
        Cause::Unknown,
    ];

    /// The stable kebab-case name, e.g. `"no-credentials-sent"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Ok => "ok",
            Cause::CredentialsRejected => "credentials-rejected",
            Cause::NoCredentialsSent => "no-credentials-sent",
            Cause::NoPullAccess => "no-pull-access",
            Cause::ImageNotFound => "image-not-found",
            Cause::PlatformNotFound => "platform-not-found",
            Cause::RateLimited => "rate-limited",
            Cause::TlsUntrusted => "tls-untrusted",
            Cause::TlsExpiredOrMismatch => "tls-expired-or-mismatch",
            Cause::DnsFailure => "dns-failure",
            Cause::RegistryUnreachable => "registry-unreachable",
            Cause::HttpHttpsMismatch => "http-https-mismatch",
            Cause::InvalidImageName => "invalid-image-name",
            Cause::NeverPullMissing => "never-pull-missing",
            Cause::SecretFormat => "secret-format",
            Cause::CloudCredentialProvider => "cloud-credential-provider",
            Cause::DiskOrExtract => "disk-or-extract",
            Cause::CorruptDownload => "corrupt-download",
            Cause::UnsupportedManifest => "unsupported-manifest",
            Cause::Timeout => "timeout",
            Cause::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Cause::from_str`]: the text is not one of the kebab-case cause names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cause {given:?}: expected one of ok, credentials-rejected, no-credentials-sent, no-pull-access, image-not-found, platform-not-found, rate-limited, tls-untrusted, tls-expired-or-mismatch, dns-failure, registry-unreachable, http-https-mismatch, invalid-image-name, never-pull-missing, secret-format, cloud-credential-provider, disk-or-extract, corrupt-download, unsupported-manifest, timeout, unknown")]
pub struct ParseCauseError {
    /// The text that was given.
    pub given: String,
}

impl FromStr for Cause {
    type Err = ParseCauseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cause::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseCauseError {
                given: s.to_string(),
            })
    }
}

impl serde::Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Cause {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Cause::ALL {
            assert!(seen.insert(c.as_str()), "duplicate name {}", c.as_str());
            assert_eq!(c.as_str().parse::<Cause>(), Ok(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
            let back: Cause = serde_json::from_str(&format!("\"{}\"", c.as_str())).unwrap();
            assert_eq!(back, c);
        }
        assert_eq!(seen.len(), 21);
        let err = "credential-rejected".parse::<Cause>().unwrap_err();
        assert!(err.to_string().contains("credentials-rejected"));
    }
}
