//! Typed, classified errors. No variant carries a password, a token or a URL query.
//!
//! Every error has a [`kind`](Error::kind) and a one-line [`hint`](ErrorKind::hint) that tells
//! a user what to do. Server-supplied text is never copied into an error verbatim: only the
//! registry error `code` (`MANIFEST_UNKNOWN`, …) is kept, and only when it looks like one, so a
//! hostile server cannot make us print a header it echoed back.

use std::fmt;
use std::time::Duration;

use kubepull_core::reference::Digest;

use crate::transport::{TransportError, TransportErrorKind};

/// What went wrong, coarsely: the classification callers map to exit codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The registry or its token service rejected the credential.
    Unauthorized,
    /// The repository does not exist, or the credential has no pull access to it.
    NotFound,
    /// The tag or digest is not in the repository.
    ManifestUnknown,
    /// The index has no manifest for the wanted platform.
    PlatformNotFound,
    /// The registry throttled us (`429`), and retries ran out.
    RateLimited,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// The TCP connection could not be made, or broke.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// A transfer stopped sending bytes for longer than the stall timeout.
    Stalled,
    /// Content did not hash to its digest.
    DigestMismatch,
    /// A response was larger than its named limit.
    TooLarge,
    /// An image reference or digest did not parse.
    InvalidReference,
    /// The server did not speak the distribution protocol as expected.
    Protocol,
    /// The client refused to do something unsafe (credentials to an unsafe realm, over plain
    /// HTTP, to a metadata address, …).
    Policy,
    /// Writing to the caller's sink failed.
    Io,
}

impl ErrorKind {
    /// A one-line fix for a user.
    pub fn hint(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => {
                "check the username and password of the pull secret named in the error for this registry"
            }
            ErrorKind::NotFound => {
                "check the image name, and that the credential has pull access to the repository"
            }
            ErrorKind::ManifestUnknown => "check that the tag or digest exists in the repository",
            ErrorKind::PlatformNotFound => {
                "choose a platform the image provides (--platform os/arch[/variant])"
            }
            ErrorKind::RateLimited => {
                "wait and retry, or pull with a credential that has a higher rate limit"
            }
            ErrorKind::Tls => {
                "trust the registry's CA (hosts.toml `ca`) or fix the certificate's host names"
            }
            ErrorKind::Connect => "check the registry address and port, and the network path to it",
            ErrorKind::Dns => "check the registry host name and the node's DNS configuration",
            ErrorKind::Stalled => {
                "the registry stopped sending data; retry, or raise the stall timeout"
            }
            ErrorKind::DigestMismatch => {
                "the registry served corrupt or tampered content; retry, or tell its operator"
            }
            ErrorKind::TooLarge => {
                "the registry sent more data than allowed; check the image and the registry"
            }
            ErrorKind::InvalidReference => {
                "fix the image reference: [registry/]name[:tag][@sha256:<64 hex digits>]"
            }
            ErrorKind::Protocol => {
                "the registry answered unexpectedly; check that it speaks the OCI distribution API"
            }
            ErrorKind::Policy => {
                "the registry asked for something unsafe; fix its token realm or TLS set-up"
            }
            ErrorKind::Io => "check free space and permissions of the destination",
        }
    }

    /// Every kind, for tables and exhaustive tests.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::ManifestUnknown,
        ErrorKind::PlatformNotFound,
        ErrorKind::RateLimited,
        ErrorKind::Tls,
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Stalled,
        ErrorKind::DigestMismatch,
        ErrorKind::TooLarge,
        ErrorKind::InvalidReference,
        ErrorKind::Protocol,
        ErrorKind::Policy,
        ErrorKind::Io,
    ];

    /// The process exit code a command line reports for this kind (the table is in the crate
    /// docs, "Exit codes"). Codes 2..=9 stay free for usage errors, 20 is
    /// [`EXIT_NEVER_PULL`], 21 is [`EXIT_POLICY`], and every kind without a code of its own
    /// is 1. The command line reports exactly these codes (one table for both).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Unauthorized => 10,
            ErrorKind::NotFound => 11,
            ErrorKind::ManifestUnknown => 12,
            ErrorKind::PlatformNotFound => 13,
            ErrorKind::RateLimited => 14,
            ErrorKind::Tls => 15,
            ErrorKind::Connect | ErrorKind::Dns => 16,
            ErrorKind::Stalled => 17,
            ErrorKind::DigestMismatch => 18,
            ErrorKind::InvalidReference => 19,
            ErrorKind::Policy => EXIT_POLICY,
            ErrorKind::TooLarge | ErrorKind::Protocol | ErrorKind::Io => EXIT_OTHER,
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Stalled
        )
    }

    /// How far a pull got before failing; used to choose the most relevant error of several
    /// credential attempts (containerd `Resolve` keeps the error "furthest through the
    /// resolution process" the same way: core/remotes/docker/resolver.go, `firstErrPriority`).
    fn progress(self) -> u8 {
        match self {
            ErrorKind::Unauthorized => 0,
            ErrorKind::NotFound => 1,
            _ => 2,
        }
    }
}

/// Exit code for "pull policy is `Never` and the image is not present": not a registry error
/// (no request is made), reserved here so the whole table lives in one place.
pub const EXIT_NEVER_PULL: i32 = 20;

/// Exit code for a request refused as unsafe by this crate's policy (a token realm or redirect
/// target refused, credentials over plain HTTP).
pub const EXIT_POLICY: i32 = 21;

/// Exit code of any failure without a code of its own.
pub const EXIT_OTHER: i32 = 1;

/// Why the realm of a `Bearer` challenge (or a redirect target) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// A plain-HTTP realm for an HTTPS registry.
    #[error("realm uses plain http for an https registry")]
    PlainHttpRealm,
    /// A scheme other than http or https.
    #[error("unsupported url scheme {0:?}")]
    Scheme(String),
    /// The URL has a user name or password in it.
    #[error("url carries userinfo")]
    Userinfo,
    /// The URL has no host.
    #[error("url has no host")]
    NoHost,
    /// A cloud metadata host name.
    #[error("host {0} is a cloud metadata endpoint")]
    MetadataHost(String),
    /// The host is or resolves to a forbidden address.
    #[error("host {host} resolves to {addr}, a {class} address")]
    ForbiddenAddress {
        /// The host name.
        host: String,
        /// The offending address.
        addr: std::net::IpAddr,
        /// Its class (`link-local`, `metadata`, …).
        class: &'static str,
    },
    /// The host resolves to an address more internal than the registry's.
    #[error("host {host} resolves to {addr}, a {class} address, but the registry is not {class}")]
    MoreInternalThanRegistry {
        /// The host name.
        host: String,
        /// The offending address.
        addr: std::net::IpAddr,
        /// `loopback` or `private`.
        class: &'static str,
    },
    /// The host did not resolve (so it cannot be checked).
    #[error("host {0} did not resolve")]
    Unresolvable(String),
    /// Credentials would travel over plain HTTP.
    #[error("refusing to send credentials over plain http")]
    CredentialsOverPlainHttp,
    /// The token endpoint answered with a redirect.
    #[error("token endpoint answered with a redirect")]
    TokenRedirect,
}

/// One credential's failed attempt, for [`Error::AllCredentialsFailed`].
#[derive(Debug)]
pub struct Attempt {
    /// Where the credential came from (`secret/regcred`, `node`), or `anonymous`.
    pub source: String,
    /// What failed.
    pub error: Error,
}

/// A registry client error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry or token service rejected the credential.
    #[error("credentials from {source_label} rejected by {host}")]
    Unauthorized {
        /// The host that rejected it.
        host: String,
        /// The credential's source, or `anonymous`.
        source_label: String,
    },
    /// The repository does not exist or the credential has no pull access.
    #[error("repository {repository} not found on {host}, or no pull access with {source_label}")]
    NotFound {
        /// The registry host.
        host: String,
        /// The repository path.
        repository: String,
        /// The credential's source, or `anonymous`.
        source_label: String,
    },
    /// A blob is not in the repository.
    #[error("blob {digest} not found in {repository}")]
    BlobUnknown {
        /// The repository path.
        repository: String,
        /// The blob's digest.
        digest: Digest,
    },
    /// The tag or digest is unknown.
    #[error("manifest {reference} not found in {repository}")]
    ManifestUnknown {
        /// The repository path.
        repository: String,
        /// The tag or digest.
        reference: String,
    },
    /// No index entry matches the platform.
    #[error("no manifest for platform {wanted} (image provides: {available})")]
    PlatformNotFound {
        /// The platform asked for.
        wanted: String,
        /// The platforms in the index, comma-separated.
        available: String,
    },
    /// `429` after all retries.
    #[error("rate limited by {host}")]
    RateLimited {
        /// The host.
        host: String,
        /// The last `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// A transport failure (TLS, connect, DNS, timeout).
    #[error("request to {host} failed")]
    Transport {
        /// The host.
        host: String,
        /// The cause.
        #[source]
        source: TransportError,
    },
    /// No bytes for longer than the stall timeout, and resumes ran out.
    #[error("transfer from {host} stalled for {timeout:?}")]
    Stalled {
        /// The host.
        host: String,
        /// The stall timeout.
        timeout: Duration,
    },
    /// Content hashed to another digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
    },
    /// Content length differs from the descriptor's size.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// Bytes received (so far).
        actual: u64,
    },
    /// A response exceeded its limit.
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A reference did not parse.
    #[error("invalid image reference {input:?}")]
    InvalidReference {
        /// The input (an image reference carries no secret).
        input: String,
        /// Why.
        #[source]
        source: kubepull_core::reference::ReferenceError,
    },
    /// A digest did not parse.
    #[error("invalid digest {input:?}")]
    InvalidDigest {
        /// The input, truncated to 100 characters.
        input: String,
        /// Why.
        #[source]
        source: kubepull_core::reference::DigestError,
    },
    /// The server misbehaved.
    #[error("protocol error from {host}: {message}")]
    Protocol {
        /// The host.
        host: String,
        /// What we expected; never server text except a registry error code.
        message: String,
    },
    /// An unexpected HTTP status.
    #[error("unexpected status {status} from {host}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        /// The host.
        host: String,
        /// The status code.
        status: u16,
        /// The registry error code, if the body had a well-formed one.
        code: Option<String>,
    },
    /// A `WWW-Authenticate` header did not parse.
    #[error("malformed authentication challenge from {host}")]
    Challenge {
        /// The host.
        host: String,
        /// Why.
        #[source]
        source: crate::challenge::ChallengeError,
    },
    /// The token response did not parse or held no token.
    #[error("malformed token response from {host}: {reason}")]
    TokenResponse {
        /// The realm host.
        host: String,
        /// Why (our words).
        reason: &'static str,
    },
    /// The client refused an unsafe action.
    #[error("refused unsafe request to {host}")]
    Policy {
        /// The host.
        host: String,
        /// The rule that fired.
        #[source]
        violation: PolicyViolation,
    },
    /// The manifest JSON is invalid or unsupported.
    #[error("invalid manifest {digest}: {reason}")]
    Manifest {
        /// Its digest.
        digest: Digest,
        /// Why (our words or the JSON error's position).
        reason: String,
    },
    /// Writing the sink failed.
    #[error("writing {what} failed")]
    Io {
        /// What was being written.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Every credential failed; the attempts in order.
    #[error("{}", Attempts(attempts))]
    AllCredentialsFailed {
        /// Per credential, in the order tried.
        attempts: Vec<Attempt>,
    },
}

struct Attempts<'a>(&'a [Attempt]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pull failed with every credential:")?;
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, " [{}] {}", a.source, a.error)?;
            let mut src = std::error::Error::source(&a.error);
            while let Some(s) = src {
                write!(f, ": {s}")?;
                src = s.source();
            }
        }
        Ok(())
    }
}

impl Error {
    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
            Error::NotFound { .. } | Error::BlobUnknown { .. } => ErrorKind::NotFound,
            Error::ManifestUnknown { .. } => ErrorKind::ManifestUnknown,
            Error::PlatformNotFound { .. } => ErrorKind::PlatformNotFound,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Transport { source, .. } => match source.kind() {
                TransportErrorKind::Tls => ErrorKind::Tls,
                TransportErrorKind::Dns => ErrorKind::Dns,
                TransportErrorKind::Timeout => ErrorKind::Stalled,
                TransportErrorKind::Connect | TransportErrorKind::Body => ErrorKind::Connect,
                TransportErrorKind::Other => ErrorKind::Protocol,
            },
            Error::Stalled { .. } => ErrorKind::Stalled,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => ErrorKind::DigestMismatch,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::InvalidReference { .. } | Error::InvalidDigest { .. } => {
                ErrorKind::InvalidReference
            }
            Error::Protocol { .. }
            | Error::Status { .. }
            | Error::Challenge { .. }
            | Error::TokenResponse { .. }
            | Error::Manifest { .. } => ErrorKind::Protocol,
            Error::Policy { .. } => ErrorKind::Policy,
            Error::Io { .. } => ErrorKind::Io,
            Error::AllCredentialsFailed { attempts } => {
                let mut best: Option<ErrorKind> = None;
                for a in attempts {
                    let k = a.error.kind();
                    if best.is_none_or(|b| k.progress() >= b.progress()) {
                        best = Some(k);
                    }
                }
                best.unwrap_or(ErrorKind::Protocol)
            }
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// The exit code of [`kind`](Self::kind) ([`ErrorKind::exit_code`]).
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    /// The one-line fix for [`kind`](Self::kind).
    pub fn hint(&self) -> &'static str {
        self.kind().hint()
    }

    pub(crate) fn invalid_digest(
        input: &str,
        source: kubepull_core::reference::DigestError,
    ) -> Self {
        Error::InvalidDigest {
            input: input.chars().take(100).collect(),
            source,
        }
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_hint_and_its_exit_code() {
        let mut hints = std::collections::HashSet::new();
        let mut codes = std::collections::HashMap::new();
        for k in ErrorKind::ALL {
            let h = k.hint();
            assert!(!h.is_empty() && h == h.trim(), "{k:?}");
            assert!(!h.ends_with('.'), "{k:?}: no trailing period");
            assert!(hints.insert(h), "{k:?}: hint shared with another kind");
            let c = k.exit_code();
            assert!(
                c == EXIT_OTHER || c == EXIT_POLICY || (10..=19).contains(&c),
                "{k:?}: {c}"
            );
            assert_ne!(c, EXIT_NEVER_PULL);
            codes.entry(c).or_insert_with(Vec::new).push(k);
        }
        // the documented table: one code per kind, except DNS and connect (both "unreachable")
        for (code, kinds) in &codes {
            if *code != EXIT_OTHER {
                assert!(
                    kinds.len() == 1 || kinds == &[ErrorKind::Connect, ErrorKind::Dns],
                    "{code}: {kinds:?}"
                );
            }
        }
        assert_eq!(ErrorKind::Unauthorized.exit_code(), 10);
        assert_eq!(ErrorKind::NotFound.exit_code(), 11);
        assert_eq!(ErrorKind::ManifestUnknown.exit_code(), 12);
        assert_eq!(ErrorKind::PlatformNotFound.exit_code(), 13);
        assert_eq!(ErrorKind::RateLimited.exit_code(), 14);
        assert_eq!(ErrorKind::Tls.exit_code(), 15);
        assert_eq!(ErrorKind::Dns.exit_code(), 16);
        assert_eq!(ErrorKind::Stalled.exit_code(), 17);
        assert_eq!(ErrorKind::DigestMismatch.exit_code(), 18);
        assert_eq!(ErrorKind::InvalidReference.exit_code(), 19);
        assert_eq!(ErrorKind::Policy.exit_code(), 21);
        assert_eq!(ErrorKind::Protocol.exit_code(), EXIT_OTHER);
    }
}
