//! Classify a pasted image-pull error message.
//!
//! The input is whatever a user has: a kubelet event (`Failed to pull image "x": rpc error: code
//! = Unknown desc = ...`), a container's waiting message, `Back-off pulling image ...`, or a
//! runtime's own text (containerd 1.x/2.x, CRI-O / `containers/image`, dockershim and
//! cri-dockerd, crictl). Runtimes wrap errors in layers (`failed to pull and unpack image ...:
//! failed to resolve reference ...: failed to authorize: failed to fetch oauth token: ...`); the
//! rules below look for the phrases the upstream producers write, not for whole messages, and
//! combine them by precedence:
//!
//! 1. kubelet decisions taken before any pull (invalid reference, `Never` policy);
//! 2. node-local failures: unusable pull-secret payloads, cloud credential providers, full disks;
//! 3. transport: TLS verification (Go `crypto/x509`), HTTP/HTTPS mismatch (Go `net/http`), DNS
//!    and connection errors (Go `net`) — a TLS error inside a token fetch is still TLS;
//! 4. rate limiting (429, `TOOMANYREQUESTS`), then timeouts;
//! 5. content: platform selection, unsupported manifests, corrupt downloads, unpack errors;
//! 6. registry answers: `MANIFEST_UNKNOWN`/`NAME_UNKNOWN` (distribution `registry/api/v2`),
//!    then authentication, decisive phrases (`no basic auth credentials`, `failed to fetch
//!    anonymous token`, `failed to fetch oauth token`, `invalid username/password`) before
//!    ambiguous ones (`insufficient_scope`, `pull access denied`, `authentication required`,
//!    bare 401/403);
//! 7. weak hints (bare `not found`, 5xx, `context canceled`).
//!
//! Within a tier the earlier rule wins, and within a rule the most specific phrase is quoted as
//! evidence. Some phrases mean different things in different places, so two guards apply: a
//! `dial unix` error is the kubelet failing to reach the container runtime's socket, not the
//! registry (its connection errors are dropped), and a Go JSON syntax error blames a pull secret
//! only when no registry response or token body is being parsed.
//!
//! Two adjustments follow: a failed pull without credentials against a cloud registry (ECR,
//! GCR/Artifact Registry, ACR) is first of all a cloud credential provider failure, because on
//! those nodes the kubelet's provider is what supplies the credentials; and a kubelet aggregate of
//! several runtime errors (`[rpc error: ..., rpc error: ...]`, one per keyring credential tried,
//! `pkg/kubelet/kuberuntime/kuberuntime_image.go` `PullImage`) proves that credentials were sent,
//! which rules out `no-credentials-sent`: all of them refused is `credentials-rejected`, or
//! `cloud-credential-provider` when the registry is a cloud registry or one attempt ended in a
//! server error (a token exchange failing server-side, as registries answer credentials of a
//! cloud identity they cannot map). Finally the ambiguous "repository does not exist or may
//! require authorization" / `insufficient_scope` answer reads as `image-not-found` on Docker
//! Hub (which answers so for a repository that does not exist) and as `no-credentials-sent` on
//! other registries; the other reading stays the first candidate.

use serde::Serialize;

use super::Cause;

/// What [`classify_message`] found in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageClass {
    /// The most likely cause.
    pub cause: Cause,
    /// Other causes the text still allows, most likely first (never contains `cause`). When only
    /// phrases below the transport tiers decided, `unknown` closes the list.
    pub candidates: Vec<Cause>,
    /// The component whose wording the text carries: `"containerd"`, `"cri-o"`,
    /// `"dockershim"` (docker daemon text, also through cri-dockerd) or `"kubelet"` (kubelet
    /// wording only).
    pub runtime: Option<&'static str>,
    /// The registry host the text names: the domain of the image named in the message (the
    /// implicit `docker.io` for a short name), else the host of the first URL, else the host of
    /// a failed DNS lookup.
    pub registry: Option<String>,
    /// The image reference the text names, as written.
    pub image: Option<String>,
    /// The first HTTP status code the text reports.
    pub http_status: Option<u16>,
    /// Short phrases from the message that decided the cause (redacted, see [`redact`]).
    pub evidence: Vec<String>,
}

/// Precedence tiers; a lower tier decides.
mod tier {
    pub const KUBELET: u8 = 0;
    pub const NODE: u8 = 1;
    pub const TRANSPORT: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const RATE: u8 = 4;
    pub const TIMEOUT: u8 = 5;
    pub const CONTENT: u8 = 6;
    pub const UNPACK: u8 = 7;
    pub const NOT_FOUND: u8 = 8;
    pub const AUTH: u8 = 9;
    pub const AUTH_AMBIGUOUS: u8 = 10;
    pub const WEAK: u8 = 11;
    pub const OK: u8 = 12;
}

use Cause as C;

/// A phrase rule: any of `needles` (lowercase, matched on the normalized lowercase text)
/// signals `cause` at `tier`, with `also` the causes the same phrase leaves open.
struct Rule {
    needles: &'static [&'static str],
    cause: Cause,
    tier: u8,
    also: &'static [Cause],
}

const fn rule(
    needles: &'static [&'static str],
    cause: Cause,
    tier: u8,
    also: &'static [Cause],
) -> Rule {
    Rule {
        needles,
        cause,
        tier,
        also,
    }
}

/// The phrase rules, in order of preference inside a tier.
const RULES: &[Rule] = &[
    // kubelet `pkg/kubelet/images/image_manager.go` EnsureImageExists: ErrImageNeverPull with
    // "Container image %q is not present with pull policy of Never".
    rule(
        &[
            "is not present with pull policy of never",
            "errimageneverpull",
        ],
        C::NeverPullMissing,
        tier::KUBELET,
        &[],
    ),
    // kubelet `applyDefaultImageTag`: "Failed to apply default image tag %q: couldn't parse
    // image reference %q: %v"; distribution/reference `ErrReferenceInvalidFormat` "invalid
    // reference format", `ErrNameContainsUppercase` "repository name must be lowercase".
    rule(
        &[
            "repository name must be lowercase",
            "invalid reference format",
            "couldn't parse image reference",
            "couldn't parse image name",
            "failed to apply default image tag",
            "failed to parse image reference",
            "invalidimagename",
            "invalid image name",
        ],
        C::InvalidImageName,
        tier::KUBELET,
        &[],
    ),
    // containers/image short-name resolution (CRI-O with `short-name-mode = "enforcing"` or no
    // unqualified-search registries): the name must be fully qualified.
    rule(
        &[
            "did not resolve to an alias",
            "short-name resolution enforced",
            "short name resolution",
        ],
        C::InvalidImageName,
        tier::NODE,
        &[C::ImageNotFound],
    ),
    // k8s `pkg/credentialprovider/config.go` decodeDockerConfigFieldAuth, also in
    // containers/image `pkg/docker/config` (CRI-O): the auth field is not base64(user:password);
    // containerd CRI `image_pull.go` ParseAuth: "invalid decoded auth: %q".
    rule(
        &[
            "unable to parse auth field",
            "must be formatted as base64(username:password)",
            "invalid decoded auth",
            "illegal base64 data at input byte",
        ],
        C::SecretFormat,
        tier::NODE,
        &[C::CredentialsRejected],
    ),
    // kubelet credential provider plugins (`pkg/credentialprovider/plugin/plugin.go`: "error
    // execing credential provider plugin %s for image %s", "Failed getting credential from
    // external registry credential provider"), cloud SDK credential chains (AWS
    // "NoCredentialProviders", Azure AD "AADSTS..." codes), the in-tree
    // ECR/GCR/ACR providers and docker credential helpers ("error getting credentials").
    rule(
        &[
            "credential provider plugin",
            "external registry credential provider",
            "credentialprovider",
            "failed to get credential from",
            "error getting credentials",
            "error getting credential",
            "exec plugin",
            "ecr-credential-provider",
            "acr-credential-provider",
            "gcr-credential-provider",
            "auth-provider-gcp",
            "getauthorizationtoken",
            "failed to retrieve ecr",
            "metadata server",
            "instance metadata",
            "managed identity",
            "nocredentialproviders",
            "no valid providers in chain",
            "failed to refresh cached credentials",
            "aadsts",
            "imds",
            "webidentityerr",
            "ecr authorization token",
        ],
        C::CloudCredentialProvider,
        tier::NODE,
        &[C::NoCredentialsSent],
    ),
    // Go syscall ENOSPC / EDQUOT / EROFS while writing content or snapshots.
    rule(
        &[
            "no space left on device",
            "disk quota exceeded",
            "read-only file system",
        ],
        C::DiskOrExtract,
        tier::NODE,
        &[],
    ),
    // Go crypto/x509 expiry and host-name errors (`CertificateInvalidError` Expired,
    // `HostnameError`).
    rule(
        &[
            "certificate has expired",
            "is not yet valid",
            "certificate is valid for",
            "certificate is not valid for any names",
            "doesn't contain any ip sans",
            "relies on legacy common name field",
            "certificate is not valid for",
        ],
        C::TlsExpiredOrMismatch,
        tier::TRANSPORT,
        &[],
    ),
    // Go crypto/x509 `UnknownAuthorityError` and platform verifiers; OpenSSL-style wording.
    rule(
        &[
            "certificate signed by unknown authority",
            "certificate is not trusted",
            "self signed certificate",
            "self-signed certificate",
            "unable to get local issuer certificate",
            "certificate verify failed",
            "unknown certificate authority",
            "remote error: tls: unknown certificate",
            "remote error: tls: bad certificate",
            "tls: failed to verify certificate",
            "x509: ",
            "remote error: tls: ",
        ],
        C::TlsUntrusted,
        tier::TRANSPORT,
        &[],
    ),
    // Go net/http "http: server gave HTTP response to HTTPS client", crypto/tls "first record
    // does not look like a TLS handshake", net/http "malformed HTTP response" (plain HTTP client
    // reading a TLS server), the 400 body "Client sent an HTTP request to an HTTPS server".
    rule(
        &[
            "server gave http response to https client",
            "first record does not look like a tls handshake",
            "tls: oversized record received",
            "malformed http response",
            "client sent an http request to an https server",
        ],
        C::HttpHttpsMismatch,
        tier::TRANSPORT,
        &[],
    ),
    // Go net DNSError: "no such host", "server misbehaving", and libc resolver texts.
    rule(
        &[
            "no such host",
            "server misbehaving",
            "temporary failure in name resolution",
            "name or service not known",
            "nodename nor servname provided",
            "no address associated with hostname",
            "dial tcp: lookup ",
        ],
        C::DnsFailure,
        tier::TRANSPORT,
        &[],
    ),
    // Go net OpError texts from connect(2)/read(2), and proxies.
    rule(
        &[
            "connection refused",
            "no route to host",
            "network is unreachable",
            "host is unreachable",
            "connection reset by peer",
            "connection timed out",
            "cannot assign requested address",
            "network is down",
            "proxyconnect tcp",
            "proxy authentication required",
            "broken pipe",
        ],
        C::RegistryUnreachable,
        tier::CONNECT,
        &[C::Timeout],
    ),
    // distribution errcode TOOMANYREQUESTS ("toomanyrequests"), Docker Hub's "You have reached
    // your pull rate limit", HTTP 429 reason text.
    rule(
        &[
            "toomanyrequests",
            "too many requests",
            "rate limit",
            "ratelimit",
            "pull qps exceeded",
        ],
        C::RateLimited,
        tier::RATE,
        &[],
    ),
    // containerd CRI `image_pull.go`: "cancel pulling image %s because of no progress in %v";
    // Go context / net/http / grpc deadlines.
    rule(
        &[
            "because of no progress in",
            "context deadline exceeded",
            "client.timeout exceeded",
            "request canceled while waiting for connection",
            "tls handshake timeout",
            "timeout awaiting response headers",
            "deadlineexceeded",
            "i/o timeout",
            "operation timed out",
        ],
        C::Timeout,
        tier::TIMEOUT,
        &[C::RegistryUnreachable],
    ),
    // containerd `platforms` / image handlers: "no match for platform in manifest"; docker
    // daemon "no matching manifest for linux/amd64 in the manifest list entries" and "does not
    // match the specified platform"; containers/image "choosing image instance", "no image
    // found in manifest list for architecture".
    rule(
        &[
            "no match for platform in manifest",
            "no matching manifest for",
            "does not match the specified platform",
            "cannot be used on this platform",
            "choosing image instance",
            "choosing an image from manifest list",
            "no image found in manifest list for architecture",
            "no image found in image index for architecture",
            "image might be filtered out",
        ],
        C::PlatformNotFound,
        tier::CONTENT,
        &[],
    ),
    // containerd 2.x schema 1 converter refusal, docker/containerd "unsupported media type",
    // "mediaType in manifest should be ...", "unsupported manifest".
    rule(
        &[
            "schema 1 images",
            "schema 1 support",
            "schema 1 not supported",
            "is no longer supported since containerd",
            "manifest.v1+prettyjws",
            "manifest version 2, schema 1",
            "unsupported media type",
            "mediatype in manifest should be",
            "unsupported manifest",
            "failed to get converter",
            "schema1",
            "unknown media type",
            "unexpected media type",
            "no processor for media type",
            "unsupported mediatype",
            "byte manifest for",
        ],
        C::UnsupportedManifest,
        tier::CONTENT,
        &[],
    ),
    // containerd content store: "unexpected commit digest", "failed size validation", "short
    // read", "failed to read expected number of bytes: unexpected EOF"; digest verifiers.
    rule(
        &[
            "unexpected commit digest",
            "unexpected commit size",
            "failed size validation",
            "digest mismatch",
            "digest did not match",
            "unexpected digest: ",
            "unexpected size: ",
            "short read",
            "failed to read expected number of bytes",
            "unexpected eof",
            "verification failed",
            "size mismatch",
            "does not match digest",
        ],
        C::CorruptDownload,
        tier::CONTENT,
        &[C::RegistryUnreachable],
    ),
    // containerd unpacker: an image whose config does not describe its layers.
    rule(
        &[
            "number of layers and diffids don't match",
            "mismatched image rootfs and manifest layers",
        ],
        C::CorruptDownload,
        tier::CONTENT,
        &[C::UnsupportedManifest],
    ),
    // containerd `diff/apply` / snapshotters and docker `layer` store.
    rule(
        &[
            "failed to extract layer",
            "apply layer error",
            "wrong diff id",
            "lchown",
            "failed to register layer",
            "error creating overlay mount",
            "failed to prepare extraction snapshot",
            "failed to stat snapshot",
            "failed to mount",
            "max depth exceeded",
        ],
        C::DiskOrExtract,
        tier::UNPACK,
        &[C::CorruptDownload],
    ),
    // distribution `registry/api/v2/errors.go`: MANIFEST_UNKNOWN "manifest unknown",
    // NAME_UNKNOWN "repository name not known to registry"; docker daemon "manifest for %s not
    // found"; CRI-O "reading manifest %s in %s: manifest unknown".
    rule(
        &[
            "manifest unknown",
            "manifest_unknown",
            "name unknown",
            "name_unknown",
            "repository name not known to registry",
            "requested image not found",
            "not found in repository",
            "references to blobs and/or manifests are missing",
        ],
        C::ImageNotFound,
        tier::NOT_FOUND,
        &[],
    ),
    // distribution BLOB_UNKNOWN: the manifest names a blob the registry lacks.
    rule(
        &[
            "blob unknown",
            "blob_unknown",
            "unknown blob",
            "could not fetch content",
        ],
        C::ImageNotFound,
        tier::NOT_FOUND,
        &[C::CorruptDownload],
    ),
    // containerd `remotes/docker/authorizer.go`: basic-auth challenge and the CRI plugin gave no
    // username/secret for the host. docker/distribution `ErrNoBasicAuthCredentials` says the
    // same. The kubelet 1.1 dockertools wording names it too.
    rule(
        &[
            "no basic auth credentials",
            "there are no credentials on this request",
        ],
        C::NoCredentialsSent,
        tier::AUTH,
        &[C::NoPullAccess],
    ),
    // containers/image `docker_client.go` ErrUnauthorizedForCredentials "unable to retrieve
    // auth token: invalid username/password"; Docker Hub "incorrect username or password";
    // Artifactory "Bad credentials"; ECR "Your authorization token has expired".
    rule(
        &["invalid username/password", "unable to retrieve auth token"],
        C::CredentialsRejected,
        tier::AUTH,
        // containers/image says this for any 401 from the token realm, anonymous included
        &[C::NoCredentialsSent, C::SecretFormat],
    ),
    rule(
        &[
            "incorrect username or password",
            "login attempt to",
            "bad credentials",
            "bad_credential",
            "invalid credentials",
            "invalid clientid or client secret",
            "password or token is incorrect",
            "password was incorrect",
            "authentication failed",
            "authorization token has expired",
            "server message: invalid_token",
        ],
        C::CredentialsRejected,
        tier::AUTH,
        &[C::SecretFormat],
    ),
    // kubelet `getPullSecretsForPod`: event FailedToRetrieveImagePullSecret, the pull goes on
    // without the missing secrets.
    rule(
        &["unable to retrieve some image pull secrets"],
        C::NoCredentialsSent,
        tier::AUTH,
        &[C::NoPullAccess, C::ImageNotFound],
    ),
    // Go encoding/json errors while decoding a pull secret (kubelet `MakeDockerKeyring`).
    rule(
        &[
            "looking for beginning of value",
            "invalid character '",
            "json: cannot unmarshal",
            "unexpected end of json input",
        ],
        C::SecretFormat,
        tier::AUTH,
        &[C::Unknown],
    ),
    // docker daemon: "pull access denied for %s, repository does not exist or may require
    // 'docker login'"; containerd resolver: "pull access denied, repository does not exist or
    // may require authorization"; a token without the pull scope (distribution `insufficient_scope`).
    // Docker Hub answers a repository that does not exist exactly like a private one.
    rule(
        &[
            "repository does not exist or may require",
            "does not exist or no pull access",
            "insufficient_scope",
        ],
        C::ImageNotFound,
        tier::AUTH_AMBIGUOUS,
        &[
            C::NoCredentialsSent,
            C::NoPullAccess,
            C::CredentialsRejected,
        ],
    ),
    // Older containerd GenerateTokenOptions: a Bearer challenge without scope — the registry
    // refuses the anonymous request for a non-public repository (OpenShift registries).
    rule(
        &["no scope specified for token auth challenge"],
        C::NoPullAccess,
        tier::AUTH_AMBIGUOUS,
        &[C::NoCredentialsSent, C::ImageNotFound],
    ),
    // distribution errcode DENIED "requested access to the resource is denied" and cloud
    // registries' "denied: Permission ... denied".
    rule(
        &["requested access to the resource is denied", "denied: "],
        C::NoPullAccess,
        tier::AUTH_AMBIGUOUS,
        &[
            C::ImageNotFound,
            C::NoCredentialsSent,
            C::CredentialsRejected,
        ],
    ),
    // distribution errcode UNAUTHORIZED "authentication required".
    rule(
        &[
            "authentication required",
            "access to the requested resource is not authorized",
            "unauthorized",
        ],
        C::NoCredentialsSent,
        tier::AUTH_AMBIGUOUS,
        &[
            C::CredentialsRejected,
            C::SecretFormat,
            C::NoPullAccess,
            C::ImageNotFound,
        ],
    ),
    // kubelet `evalCRIPullErr`: "image pull failed for %s because the registry is unavailable";
    // CRI-O "pinging container registry %s".
    rule(
        &[
            "registry is unavailable",
            "registryunavailable",
            "pinging container registry",
            "pinging docker registry",
        ],
        C::RegistryUnreachable,
        tier::WEAK,
        &[C::Unknown],
    ),
    // Server errors named without a code (distribution UNAVAILABLE "service unavailable").
    rule(
        &[
            "service unavailable",
            "bad gateway",
            "gateway timeout",
            "internal server error",
            "use of closed network connection",
            "server sent goaway",
        ],
        C::RegistryUnreachable,
        tier::WEAK,
        &[C::Unknown, C::Timeout],
    ),
    // kubelet cancellation after the runtime request timeout (grpc code Canceled).
    rule(
        &["context canceled", "code = canceled"],
        C::Timeout,
        tier::WEAK,
        &[C::Unknown],
    ),
    // containerd unpack of a digest it never fetched (often an index whose children were skipped
    // as unsupported media types); the same text is a known runtime bug, so it stays open.
    rule(
        &["failed to unpack", "unpack: "],
        C::DiskOrExtract,
        tier::WEAK,
        &[C::Unknown],
    ),
    // Success texts (kubelet events "Successfully pulled image", "already present on machine").
    rule(
        &[
            "successfully pulled image",
            "already present on machine",
            "container image already present",
        ],
        C::Ok,
        tier::OK,
        &[],
    ),
];

/// One decision-relevant observation.
#[derive(Debug, Clone)]
struct Signal {
    cause: Cause,
    tier: u8,
    also: Vec<Cause>,
    evidence: String,
}

/// The message normalized for matching: pasted line breaks undone, escaped quotes unescaped,
/// whitespace collapsed. `low` is the ASCII-lowercase copy with identical byte offsets.
struct Text {
    orig: String,
    low: String,
}

impl Text {
    fn new(input: &str) -> Text {
        // Literal escapes from JSON or Go %q output.
        let s = input
            .replace("\\\\\"", "\"")
            .replace("\\\"", "\"")
            .replace("\\n", "\n")
            .replace("\\t", " ");
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\n' || c == '\r' {
                // A break between two word characters is a terminal wrap inside a word
                // ("contai\nnerd"); anything else is a separator. A run of breaks is one break.
                let run_end = chars[i..]
                    .iter()
                    .position(|c| *c != '\r' && *c != '\n')
                    .map_or(chars.len(), |n| i + n);
                let prev = out.chars().next_back();
                let next = chars.get(run_end);
                let inside_word =
                    matches!((prev, next), (Some(p), Some(n)) if is_word(p) && is_word(*n));
                if !inside_word && !out.ends_with(' ') {
                    out.push(' ');
                }
                i = run_end;
                continue;
            }
            i += 1;
            if c.is_whitespace() {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
                continue;
            }
            out.push(c);
        }
        let orig = out.trim().to_string();
        let low = orig.to_ascii_lowercase();
        Text { orig, low }
    }

    /// The byte offsets of every occurrence of `needle` in the lowercase text.
    fn find_all<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.low.match_indices(needle).map(|(i, _)| i)
    }

    fn contains(&self, needle: &str) -> bool {
        self.low.contains(needle)
    }

    /// The clause around `[start, end)`: extended to the surrounding `": "` separators and
    /// trimmed to a short, redacted phrase.
    fn clause(&self, start: usize, end: usize) -> String {
        let before = &self.orig[..start];
        let mut s = before.rfind(": ").map(|i| i + 2).unwrap_or(0);
        if start - s > 100 {
            s = floor_char_boundary(&self.orig, start.saturating_sub(60));
        }
        let after = &self.orig[end..];
        let mut e = after.find(": ").map(|i| end + i).unwrap_or(self.orig.len());
        if e - end > 100 {
            e = ceil_char_boundary(&self.orig, end + 60);
        }
        // A short clause ("no such host") reads better with the one before it ("lookup x on
        // y:53: no such host").
        if e - s < 40 && s >= 2 {
            let prev = self.orig[..s - 2].rfind(": ").map(|i| i + 2).unwrap_or(0);
            if s - prev <= 80 {
                s = prev;
            }
        }
        let phrase = self.orig[s..e]
            .trim()
            .trim_matches(|c: char| matches!(c, '"' | ',' | '[' | ']' | '{' | '}' | '.' | ';'))
            .trim();
        redact(phrase)
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/'
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The longest input read; a longer paste is cut (at a character boundary) before classifying.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Classifies a pull error message. Never panics; unknown text gives [`Cause::Unknown`]. Only
/// the first [`MAX_MESSAGE_BYTES`] are read.
pub fn classify_message(text: &str) -> MessageClass {
    let text = &text[..floor_char_boundary(text, text.len().min(MAX_MESSAGE_BYTES))];
    let t = Text::new(text);
    let image = extract_image(&t);
    let registry = extract_registry(&t, image.as_deref());
    let http_status = extract_status(&t);
    let runtime = detect_runtime(&t);

    let mut signals: Vec<Signal> = Vec::new();
    for r in RULES {
        // One signal per rule: the first needle found in the text.
        // The needles are listed most specific first; the first one present is the evidence.
        let hit = r
            .needles
            .iter()
            .find_map(|n| find_needle(&t.low, n).map(|i| (i, n.len())));
        if let Some((i, len)) = hit {
            if r.cause == C::TlsUntrusted
                && t.contains("tls handshake timeout")
                && !t.contains("x509")
            {
                continue;
            }
            signals.push(Signal {
                cause: r.cause,
                tier: r.tier,
                also: r.also.to_vec(),
                evidence: t.clause(i, i + len),
            });
        }
    }
    special_signals(&t, http_status, &mut signals);

    // A JSON syntax error is a pull secret's only when no registry answer is being parsed
    // (docker "error parsing HTTP 404 response body: invalid character '<' ...", containerd
    // "unable to decode token response").
    const PARSING_REGISTRY: &[&str] = &[
        "response body",
        "token response",
        "bearer token",
        "error parsing http",
        "image config",
        "manifest",
    ];
    if PARSING_REGISTRY.iter().any(|n| t.contains(n)) {
        signals.retain(|s| !(s.cause == C::SecretFormat && s.also == [C::Unknown]));
    }

    // "dial unix /run/containerd/containerd.sock": the kubelet (or crictl) cannot reach the
    // container runtime, so connection errors say nothing about the registry.
    if let Some(i) = t.low.find("dial unix ") {
        signals.retain(|s| s.tier > tier::CONNECT || s.cause != C::RegistryUnreachable);
        signals.push(Signal {
            cause: C::Unknown,
            tier: tier::TRANSPORT,
            also: vec![],
            evidence: format!(
                "the container runtime itself is unreachable: {}",
                t.clause(i, i + "dial unix ".len())
            ),
        });
    }

    let Some(best) = signals
        .iter()
        .enumerate()
        .min_by_key(|(i, s)| (s.tier, *i))
        .map(|(_, s)| s.clone())
    else {
        return MessageClass {
            cause: C::Unknown,
            candidates: vec![],
            runtime,
            registry,
            image,
            http_status,
            evidence: vec![],
        };
    };

    let mut cause = best.cause;
    let mut candidates: Vec<Cause> = best.also.clone();
    let mut ordered: Vec<&Signal> = signals.iter().collect();
    ordered.sort_by_key(|s| s.tier);
    for s in &ordered {
        candidates.push(s.cause);
    }
    for s in &ordered {
        candidates.extend(s.also.iter().copied());
    }

    // Several runtime errors aggregated by the kubelet: one per keyring credential tried, so
    // credentials were sent (kuberuntime_image.go PullImage; the anonymous pull is one call).
    let attempts = t.find_all("rpc error:").count();
    let credentials_tried = attempts >= 2 && is_aggregate(&t.low);
    let cloud = registry.as_deref().and_then(cloud_registry);
    let mut extra_evidence = Vec::new();
    if credentials_tried && matches!(cause, C::NoCredentialsSent | C::CredentialsRejected) {
        candidates.retain(|c| *c != C::NoCredentialsSent);
        let server_error = http_status.is_some_and(|s| s >= 500);
        extra_evidence.push(format!(
            "{attempts} pull attempts, one per credential the kubelet found"
        ));
        // Several credentials for one image, all refused, one of them with a server error: the
        // shape of a cloud provider's credentials (one per login server, exchanged server-side
        // by the registry's token service) rather than of one user-made secret.
        if server_error || cloud.is_some() {
            if let Some(st) = http_status.filter(|s| *s >= 500) {
                let needle = st.to_string();
                if let Some(i) = t.low.find(&needle) {
                    extra_evidence.push(t.clause(i, i + needle.len()));
                }
            }
            cause = C::CloudCredentialProvider;
            candidates.insert(0, C::CredentialsRejected);
        } else {
            cause = C::CredentialsRejected;
            candidates.insert(0, C::CloudCredentialProvider);
        }
    } else if let Some(provider) = cloud {
        match cause {
            C::NoCredentialsSent => {
                cause = C::CloudCredentialProvider;
                candidates.insert(0, C::NoCredentialsSent);
                extra_evidence.push(format!("{provider} registry: the kubelet's credential provider supplies its credentials"));
            }
            C::CredentialsRejected | C::NoPullAccess => {
                candidates.insert(0, C::CloudCredentialProvider);
            }
            _ => {}
        }
    }
    if credentials_tried && cause == C::ImageNotFound {
        candidates.retain(|c| *c != C::NoCredentialsSent);
    }
    // "repository does not exist or may require authorization" / insufficient_scope: Docker
    // Hub gives it for a repository that does not exist (public images are the rule there);
    // on a private registry the usual reason is a pull without credentials.
    let hub = |r: &str| {
        matches!(
            r,
            "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
        )
    };
    if cause == C::ImageNotFound
        && best.tier == tier::AUTH_AMBIGUOUS
        && !credentials_tried
        && cloud.is_none()
        && registry.as_deref().is_some_and(|r| !hub(r))
    {
        cause = C::NoCredentialsSent;
        candidates.insert(0, C::ImageNotFound);
    }

    let mut seen = Vec::new();
    candidates.retain(|c| {
        if *c == cause || *c == C::Ok || seen.contains(c) {
            false
        } else {
            seen.push(*c);
            true
        }
    });
    // Below the transport tiers a phrase never proves its cause outright: keep "unknown" open
    // as the last alternative.
    if best.tier >= tier::TIMEOUT && cause != C::Unknown && !candidates.contains(&C::Unknown) {
        candidates.push(C::Unknown);
    }
    if cause == C::Ok {
        candidates.clear();
    }

    let mut evidence: Vec<String> = Vec::new();
    let mut push = |e: String| {
        if !e.is_empty() && !evidence.contains(&e) && evidence.len() < 6 {
            evidence.push(e);
        }
    };
    push(best.evidence.clone());
    for s in ordered
        .iter()
        .filter(|s| s.cause == cause || s.tier == best.tier)
    {
        push(s.evidence.clone());
    }
    for e in extra_evidence {
        push(e);
    }

    MessageClass {
        cause,
        candidates,
        runtime,
        registry,
        image,
        http_status,
        evidence,
    }
}

/// Error-code prefixes that only count at the start of a clause.
const CODE_PREFIXES: &[&str] = &["denied: "];

/// Where `needle` occurs in `low`. An error-code prefix (distribution `DENIED` prints as
/// `denied: ...`) only counts at the start of a clause, so that a file system's "permission
/// denied: unknown" is not read as the registry's answer.
fn find_needle(low: &str, needle: &str) -> Option<usize> {
    if !CODE_PREFIXES.contains(&needle) {
        return low.find(needle);
    }
    low.match_indices(needle).map(|(i, _)| i).find(|&i| {
        let before = &low[..i];
        before.is_empty()
            || before.ends_with(": ")
            || before.ends_with('"')
            || before.ends_with('(')
            || before.ends_with('[')
    })
}

/// Whether the text holds a Go `utilerrors.NewAggregate` list of runtime errors: `[err1, err2]`.
fn is_aggregate(low: &str) -> bool {
    low.contains("[rpc error:") || low.contains(", rpc error:")
}

/// Rules that need more than a phrase: token fetches, bare status codes, dial timeouts.
fn special_signals(t: &Text, status: Option<u16>, out: &mut Vec<Signal>) {
    let status_in = |needle: &str| -> Option<(u16, usize)> {
        let i = t.low.find(needle)?;
        let rest = &t.low[i..];
        let st = extract_status_from(rest);
        st.map(|s| (s, i))
    };
    // containerd authorizer.go doBearerAuth: with a secret, POST to the token endpoint and wrap
    // errors in "failed to fetch oauth token"; without one, GET and wrap in "failed to fetch
    // anonymous token". A 401/404/400/405 from the POST falls back to a GET with the same
    // credentials whose error is returned unwrapped ("failed to authorize: unexpected status
    // from GET request to ...").
    if let Some((s, i)) = status_in("failed to fetch anonymous token") {
        let (cause, also): (Cause, &[Cause]) = match s {
            401 => (C::NoCredentialsSent, &[C::NoPullAccess, C::ImageNotFound]),
            403 => (C::NoPullAccess, &[C::NoCredentialsSent, C::ImageNotFound]),
            429 => (C::RateLimited, &[]),
            _ => (C::NoCredentialsSent, &[C::Unknown]),
        };
        out.push(Signal {
            cause,
            tier: tier::AUTH,
            also: also.to_vec(),
            evidence: t.clause(i, i + "failed to fetch anonymous token".len()),
        });
    } else if let Some(i) = t.low.find("failed to fetch anonymous token") {
        out.push(Signal {
            cause: C::NoCredentialsSent,
            tier: tier::AUTH_AMBIGUOUS,
            also: vec![C::NoPullAccess],
            evidence: t.clause(i, i + "failed to fetch anonymous token".len()),
        });
    }
    if let Some(i) = t.low.find("failed to fetch oauth token") {
        let s = extract_status_from(&t.low[i..]);
        let (cause, also): (Cause, &[Cause]) = match s {
            Some(403) => (C::CredentialsRejected, &[C::NoPullAccess]),
            Some(429) => (C::RateLimited, &[]),
            _ => (C::CredentialsRejected, &[C::SecretFormat, C::NoPullAccess]),
        };
        out.push(Signal {
            cause,
            tier: tier::AUTH,
            also: also.to_vec(),
            evidence: t.clause(i, i + "failed to fetch oauth token".len()),
        });
    }
    if !t.contains("anonymous token") && !t.contains("oauth token") {
        if let Some((s @ (401 | 403), i)) = status_in("failed to authorize: unexpected status") {
            let also: &[Cause] = if s == 403 {
                &[C::NoPullAccess]
            } else {
                &[C::SecretFormat]
            };
            out.push(Signal {
                cause: C::CredentialsRejected,
                tier: tier::AUTH,
                also: also.to_vec(),
                evidence: t.clause(i, i + "failed to authorize".len()),
            });
        }
    }
    // containerd resolver: a 401 on the manifest request itself (not on the token realm) is
    // what a Basic-auth registry answers to wrong credentials — without credentials the
    // authorizer stops earlier with "no basic auth credentials" — or a Bearer registry to a
    // token it does not accept (core/remotes/docker/resolver.go, unexpectedResponseErr).
    for method in [
        "unexpected status from head request to ",
        "unexpected status from get request to ",
    ] {
        let Some(i) = t.low.find(method) else {
            continue;
        };
        let rest = &t.low[i + method.len()..];
        let url = rest.split(": ").next().unwrap_or("");
        let token_url = ["token", "oauth", "/auth", "jwt"]
            .iter()
            .any(|w| url.contains(w));
        if !token_url && extract_status_from(rest) == Some(401) {
            out.push(Signal {
                cause: C::CredentialsRejected,
                tier: tier::AUTH,
                also: vec![C::NoCredentialsSent, C::SecretFormat],
                evidence: t.clause(i, i + method.len() + url.len()),
            });
        }
        break;
    }
    // A dial that times out is a registry that does not answer (firewall drop); a DNS lookup
    // timing out is already a DNS failure.
    if let Some(i) = t.low.find("i/o timeout") {
        if t.contains("dial tcp") && !t.contains("lookup ") {
            out.push(Signal {
                cause: C::RegistryUnreachable,
                tier: tier::CONNECT,
                also: vec![C::Timeout],
                evidence: t.clause(i, i + "i/o timeout".len()),
            });
        }
    }
    // A bare EOF from an HTTP request: the connection closed without an answer.
    for ending in [": eof", "\": eof"] {
        if let Some(i) = t.low.find(ending) {
            let after = &t.low[i + ending.len()..];
            if after.is_empty() || !after.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                out.push(Signal {
                    cause: C::RegistryUnreachable,
                    tier: tier::WEAK,
                    also: vec![C::HttpHttpsMismatch, C::TlsUntrusted],
                    evidence: t.clause(i, i + ending.len()),
                });
                break;
            }
        }
    }
    // Bare HTTP statuses.
    if let Some(s) = status {
        let (cause, tier_, also): (Cause, u8, &[Cause]) = match s {
            401 => (
                C::NoCredentialsSent,
                tier::AUTH_AMBIGUOUS,
                &[C::CredentialsRejected, C::SecretFormat],
            ),
            403 => (
                C::NoPullAccess,
                tier::AUTH_AMBIGUOUS,
                &[C::CredentialsRejected, C::NoCredentialsSent],
            ),
            404 => (C::ImageNotFound, tier::WEAK, &[C::Unknown]),
            429 => (C::RateLimited, tier::RATE, &[]),
            500..=599 => (C::RegistryUnreachable, tier::WEAK, &[C::Unknown]),
            _ => (C::Unknown, tier::WEAK, &[]),
        };
        if cause != C::Unknown {
            let i = status_position(&t.low).map_or(0, |(_, i)| i);
            out.push(Signal {
                cause,
                tier: tier_,
                also: also.to_vec(),
                evidence: t.clause(i, (i + 3).min(t.orig.len())),
            });
        }
    }
    // containerd resolver: "failed to resolve reference %q: %s: not found" (errdefs.ErrNotFound
    // after every host answered 404); elsewhere a bare "not found" is only a hint.
    let content_digest = t.contains("content digest") && t.contains("not found");
    if content_digest {
        let i = t.low.find("content digest").unwrap_or(0);
        out.push(Signal {
            cause: C::UnsupportedManifest,
            tier: tier::CONTENT,
            also: vec![C::Unknown, C::CorruptDownload],
            evidence: t.clause(i, i + "content digest".len()),
        });
    } else if let Some(i) = t.low.find(": not found") {
        let platform = t.contains("platform");
        let strong = t.contains("failed to resolve reference") || t.contains("manifest for ");
        if !platform {
            out.push(Signal {
                cause: C::ImageNotFound,
                tier: if strong { tier::NOT_FOUND } else { tier::WEAK },
                also: vec![],
                evidence: t.clause(i, i + ": not found".len()),
            });
        }
    }
    if t.contains("manifest for ") && t.contains(" not found") && !t.contains("platform") {
        if let Some(i) = t.low.find("manifest for ") {
            out.push(Signal {
                cause: C::ImageNotFound,
                tier: tier::NOT_FOUND,
                also: vec![],
                evidence: t.clause(i, i + "manifest for ".len()),
            });
        }
    }
    // "<something naming an image> not found": Harbor "artifact x not found", old docker "image
    // x not found", containerd "content at <url> not found" (a blob the registry lacks).
    for (i, _) in t.low.match_indices(" not found") {
        let window = floor_char_boundary(&t.low, i.saturating_sub(120));
        let from = t.low[window..i]
            .rfind(": ")
            .map_or(window, |j| window + j + 2);
        let clause = &t.low[from..i];
        const NAMES: &[&str] = &[
            "artifact ",
            "repository ",
            "image ",
            "tag ",
            "manifest ",
            "content at ",
        ];
        const OTHER: &[&str] = &[
            "platform",
            "snapshot",
            "content digest",
            "secret",
            "serviceaccount",
            "service account",
            "no such",
            "config",
        ];
        if NAMES.iter().any(|n| clause.contains(n)) && !OTHER.iter().any(|n| clause.contains(n)) {
            let also = if clause.contains("content at ") {
                vec![C::CorruptDownload]
            } else {
                vec![]
            };
            out.push(Signal {
                cause: C::ImageNotFound,
                tier: tier::NOT_FOUND,
                also,
                evidence: t.clause(i, i + " not found".len()),
            });
            break;
        }
    }
    if t.contains("code = notfound") && !t.contains("platform") {
        let i = t.low.find("code = notfound").unwrap_or(0);
        out.push(Signal {
            cause: C::ImageNotFound,
            tier: tier::WEAK,
            also: vec![C::PlatformNotFound],
            evidence: t.clause(i, i + "code = notfound".len()),
        });
    }
}

/// The first HTTP status in the text.
fn extract_status(t: &Text) -> Option<u16> {
    extract_status_from(&t.low)
}

/// HTTP reason phrases (Go `net/http` StatusText) that follow a code.
const REASONS: &[&str] = &[
    " unauthorized",
    " forbidden",
    " not found",
    " too many requests",
    " internal server error",
    " bad gateway",
    " service unavailable",
    " gateway timeout",
    " bad request",
    " method not allowed",
    " conflict",
    " request timeout",
    " precondition failed",
    " unprocessable entity",
    " not implemented",
];

/// Words that precede a code: "status 403", "status code: 429", "HTTP status: 500".
const STATUS_PREFIXES: &[&str] = &[
    "status ",
    "status: ",
    "status code ",
    "status code: ",
    "status code=",
    "statuscode=",
    "statuscode: ",
    "status=",
    "http status: ",
    "http ",
    "code: ",
];

/// Finds the first three-digit HTTP status in lowercase text: a code followed by its reason
/// phrase, or preceded by a status word.
fn extract_status_from(low: &str) -> Option<u16> {
    status_position(low).map(|(code, _)| code)
}

/// [`extract_status_from`] with the byte offset of the code.
fn status_position(low: &str) -> Option<(u16, usize)> {
    let b = low.as_bytes();
    let mut i = 0;
    while i + 3 <= b.len() {
        let is_code = b[i..i + 3].iter().all(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && (i + 3 == b.len() || !b[i + 3].is_ascii_alphanumeric());
        if is_code {
            let code: u16 = (b[i] - b'0') as u16 * 100
                + (b[i + 1] - b'0') as u16 * 10
                + (b[i + 2] - b'0') as u16;
            if (100..=599).contains(&code) {
                let after = &low[i + 3..];
                let before = &low[..i];
                if REASONS.iter().any(|r| after.starts_with(r))
                    || STATUS_PREFIXES.iter().any(|p| before.ends_with(p))
                {
                    return Some((code, i));
                }
            }
        }
        i += 1;
    }
    None
}

/// The image the message names (kubelet, containerd, docker and CRI-O wordings).
fn extract_image(t: &Text) -> Option<String> {
    const QUOTED_AFTER: &[&str] = &[
        "failed to pull image \"",
        "back-off pulling image \"",
        "pulling image \"",
        "pull image \"",
        "pullimage \"",
        "container image \"",
        "sandbox image \"",
        "failed to pull and unpack image \"",
        "failed to resolve reference \"",
        "couldn't parse image reference \"",
        "failed to apply default image tag \"",
        "image \"",
        "reference \"",
    ];
    for p in QUOTED_AFTER {
        if let Some(i) = t.low.find(p) {
            let start = i + p.len();
            if let Some(len) = t.orig[start..].find('"') {
                let img = t.orig[start..start + len].trim();
                if !img.is_empty() && !img.contains(' ') {
                    return Some(redact(img));
                }
            }
        }
    }
    // docker: "manifest for %s not found", "pull access denied for %s,", kubelet 1.x "image
    // pull failed for %s,", "cancel pulling image %s because".
    const WORD_AFTER: &[&str] = &[
        "manifest for ",
        "pull access denied for ",
        "image pull failed for ",
        "cancel pulling image ",
        "source docker://",
    ];
    for p in WORD_AFTER {
        if let Some(i) = t.low.find(p) {
            let start = i + p.len();
            let word: String = t.orig[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ',' && *c != '"')
                .collect();
            let word = word.trim_end_matches(':').to_string();
            if !word.is_empty() {
                return Some(redact(&word));
            }
        }
    }
    // CRI-O / containers/image: "reading manifest TAG in REPO".
    const READING_MANIFEST: &str = "reading manifest ";
    if let Some(i) = t.low.find(READING_MANIFEST) {
        let rest = &t.orig[i + READING_MANIFEST.len()..];
        let mut words = rest.split(' ');
        if let (Some(tag), Some("in"), Some(repo)) = (words.next(), words.next(), words.next()) {
            let repo = repo.trim_end_matches(':');
            // a digest reference reads "reading manifest sha256:... in repo"
            let sep = if tag.contains(':') { "@" } else { ":" };
            return Some(redact(&format!("{repo}{sep}{tag}")));
        }
    }
    None
}

/// The registry domain of an image reference, with distribution's rule (`splitDockerDomain`):
/// the first component is a domain when it contains `.` or `:` or is `localhost`; otherwise the
/// image lives on `docker.io`.
fn image_domain(image: &str) -> Option<String> {
    let image = image
        .strip_prefix("https://")
        .or_else(|| image.strip_prefix("http://"))
        .unwrap_or(image);
    if image.is_empty() || image.contains('*') {
        return None;
    }
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            Some(first.to_ascii_lowercase())
        }
        _ => Some("docker.io".to_string()),
    }
}

fn extract_registry(t: &Text, image: Option<&str>) -> Option<String> {
    if let Some(d) = image.and_then(image_domain) {
        return Some(d);
    }
    for scheme in ["https://", "http://"] {
        if let Some(i) = t.low.find(scheme) {
            let rest = &t.low[i + scheme.len()..];
            let auth = rest.split(['/', '"', ' ', '?']).next().unwrap_or("");
            let host = auth
                .rsplit('@')
                .next()
                .unwrap_or(auth)
                .trim_end_matches(':');
            if !host.is_empty() && !host.contains('*') {
                return Some(host.to_string());
            }
        }
    }
    if let Some(i) = t.low.find("lookup ") {
        let host: String = t.low[i + "lookup ".len()..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ':')
            .collect();
        if !host.is_empty() {
            return Some(host);
        }
    }
    None
}

/// Which cloud registry `host` belongs to, if any: the registries whose nodes get credentials
/// from a kubelet credential provider (ECR, GCR / Artifact Registry, ACR).
pub fn cloud_registry(host: &str) -> Option<&'static str> {
    let host = host.split(':').next().unwrap_or(host);
    if host.contains(".dkr.ecr.")
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
    {
        return Some("ECR");
    }
    if host == "gcr.io" || host.ends_with(".gcr.io") || host.ends_with("-docker.pkg.dev") {
        return Some("GCR/Artifact Registry");
    }
    if [".azurecr.io", ".azurecr.cn", ".azurecr.de", ".azurecr.us"]
        .iter()
        .any(|s| host.ends_with(s))
    {
        return Some("ACR");
    }
    None
}

fn detect_runtime(t: &Text) -> Option<&'static str> {
    const CONTAINERD: &[&str] = &[
        "failed to pull and unpack image",
        "failed to resolve reference",
        "failed to do request",
        "httpreaderseeker",
        "failed commit on ref",
        "failed to unpack image on snapshotter",
        "failed to get converter",
        "no match for platform in manifest",
        "because of no progress in",
        "failed to fetch anonymous token",
        "failed to fetch oauth token",
        "failed to copy:",
        "unexpected status from",
        "failed to get sandbox image",
        "io.containerd",
    ];
    const CRIO: &[&str] = &[
        "pinging container registry",
        "reading manifest",
        "choosing image instance",
        "initializing source docker://",
        "error initializing source",
        "unable to retrieve auth token",
        "writing blob",
        "copying system image",
        "registryunavailable",
    ];
    const DOCKER: &[&str] = &[
        "error response from daemon",
        "pull access denied for",
        "manifest for ",
        "trying to pull repository",
        "/v1/_ping",
        "docker login",
    ];
    const KUBELET: &[&str] = &[
        "is not present with pull policy of never",
        "failed to apply default image tag",
        "couldn't parse image",
        "errimageneverpull",
        "invalidimagename",
        "back-off pulling image",
        "errimagepull",
        "imagepullbackoff",
        "failed to pull image",
    ];
    if CONTAINERD.iter().any(|n| t.contains(n)) {
        Some("containerd")
    } else if CRIO.iter().any(|n| t.contains(n)) {
        Some("cri-o")
    } else if DOCKER.iter().any(|n| t.contains(n)) {
        Some("dockershim")
    } else if KUBELET.iter().any(|n| t.contains(n)) {
        Some("kubelet")
    } else {
        None
    }
}

/// Removes secrets from text that is echoed back: URL userinfo (`https://user:pass@host`),
/// `Authorization`/`Basic`/`Bearer` values, and the values of `password=`, `passwd=`,
/// `secret=`, `token=`, `access_token=`, `refresh_token=`, `id_token=`, `auth=`, JSON
/// `"password"`/`"auth"`/`"identitytoken"` members and `--docker-password`/`-p` style flags.
pub fn redact(text: &str) -> String {
    let mut s = redact_userinfo(text);
    s = redact_authorization(&s);
    for word in ["bearer ", "basic "] {
        s = redact_scheme_credential(&s, word);
    }
    for key in [
        "password=",
        "passwd=",
        "secret=",
        "access_token=",
        "refresh_token=",
        "id_token=",
        "token=",
        "auth=",
        "password:",
        "--docker-password ",
        "--password ",
    ] {
        s = redact_after_word(&s, key);
    }
    for key in [
        "invalid decoded auth:",
        "\"password\":",
        "\"auth\":",
        "\"identitytoken\":",
        "\"registrytoken\":",
        "\"token\":",
        "\"access_token\":",
        "\"refresh_token\":",
    ] {
        s = redact_json_member(&s, key);
    }
    s
}

/// Replaces the value of `Authorization:` headers, scheme and credential together.
fn redact_authorization(s: &str) -> String {
    const KEY: &str = "authorization:";
    let low = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(rel) = low[from..].find(KEY) {
        let mut start = from + rel + KEY.len();
        while s[start..].starts_with(' ') {
            start += 1;
        }
        let mut end = start;
        for _ in 0..2 {
            // the scheme word, then its credential
            let word_end = s[end..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',' || c == ';')
                .map(|e| end + e)
                .unwrap_or(s.len());
            let word = low[end..word_end].to_string();
            end = word_end;
            let scheme = matches!(
                word.as_str(),
                "basic" | "bearer" | "token" | "digest" | "negotiate"
            );
            if !scheme || !s[end..].starts_with(' ') {
                break;
            }
            end += 1;
        }
        from = end.max(start);
        if end == start {
            continue;
        }
        out.push_str(&s[last..start]);
        out.push_str(MASK);
        last = end;
    }
    out.push_str(&s[last..]);
    out
}

const MASK: &str = "REDACTED";

/// Replaces `scheme://user:pass@` with `scheme://REDACTED@`.
fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '?' || c == '#')
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str(MASK);
            out.push('@');
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the credential after an HTTP auth scheme word (`Bearer x`, `Basic x`) when it looks
/// like one: at least 8 characters of the token68 alphabet. `no basic auth credentials` stays.
fn redact_scheme_credential(s: &str, word: &str) -> String {
    let low = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(rel) = low[from..].find(word) {
        let i = from + rel;
        let start = i + word.len();
        from = start;
        if i > 0 && low.as_bytes()[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let len = s[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/=".contains(c)))
            .unwrap_or(s.len() - start);
        if len < 8 {
            continue;
        }
        out.push_str(&s[last..start]);
        out.push_str(MASK);
        last = start + len;
        from = last;
    }
    out.push_str(&s[last..]);
    out
}

/// Replaces the value after every (ASCII case-insensitive) occurrence of `key` up to the next
/// delimiter.
fn redact_after_word(s: &str, key: &str) -> String {
    let low = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(rel) = low[from..].find(key) {
        let i = from + rel;
        let mut start = i + key.len();
        if key.ends_with(':') {
            while s[start..].starts_with(' ') {
                start += 1;
            }
        }
        from = start;
        // For "token=" do not fire inside "access_token=" twice: the earlier pass already
        // replaced the value with MASK, which is harmless to mask again.
        let end = s[start..]
            .find(|c: char| {
                c.is_whitespace()
                    || c == '&'
                    || c == '"'
                    || c == '\''
                    || c == ','
                    || c == ';'
                    || c == ')'
                    || c == ']'
                    || c == '}'
            })
            .map(|e| start + e)
            .unwrap_or(s.len());
        if end == start {
            continue;
        }
        out.push_str(&s[last..start]);
        out.push_str(MASK);
        last = end;
        from = end;
    }
    out.push_str(&s[last..]);
    out
}

/// Replaces the string value of a JSON member such as `"password": "..."`.
fn redact_json_member(s: &str, key: &str) -> String {
    let low = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(rel) = low[from..].find(key) {
        let i = from + rel;
        let mut j = i + key.len();
        from = j;
        let bytes = s.as_bytes();
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b'"' {
            continue;
        }
        let start = j + 1;
        let end = s[start..].find('"').map(|e| start + e).unwrap_or(s.len());
        out.push_str(&s[last..start]);
        out.push_str(MASK);
        last = end;
        from = end;
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_evidence_points_at_the_status_not_an_earlier_number() {
        let c = classify_message(
            "Head https://10.0.403.1/v2/a/manifests/sha256:403403: unexpected status: 403 Forbidden",
        );
        assert_eq!(c.http_status, Some(403));
        assert!(
            c.evidence.iter().any(|e| e.contains("403 Forbidden")),
            "{:?}",
            c.evidence
        );
    }

    #[test]
    fn status_extraction() {
        assert_eq!(extract_status_from("x: 403 forbidden"), Some(403));
        assert_eq!(
            extract_status_from("status \n403 trying".replace('\n', "").as_str()),
            Some(403)
        );
        assert_eq!(
            extract_status_from("received unexpected http status: 500 internal server error"),
            Some(500)
        );
        assert_eq!(extract_status_from("sha256:4031b33a 401"), None);
        assert_eq!(extract_status_from("port 5000 and 401x"), None);
    }

    #[test]
    fn text_normalization_joins_wrapped_words() {
        let t = Text::new("write /var/lib/contai\nnerd/x: no space\n left");
        assert_eq!(t.orig, "write /var/lib/containerd/x: no space left");
        let t = Text::new("failed for quay.io/foo:baz, \nthis may be");
        assert_eq!(t.orig, "failed for quay.io/foo:baz, this may be");
    }

    #[test]
    fn image_domains() {
        assert_eq!(image_domain("centos").as_deref(), Some("docker.io"));
        assert_eq!(image_domain("localhost/x").as_deref(), Some("localhost"));
        assert_eq!(image_domain("reg:5000/x").as_deref(), Some("reg:5000"));
        assert_eq!(
            image_domain("https://harbor.x/y:1").as_deref(),
            Some("harbor.x")
        );
        assert_eq!(
            cloud_registry("1.dkr.ecr.eu-west-1.amazonaws.com"),
            Some("ECR")
        );
        assert_eq!(
            cloud_registry("europe-docker.pkg.dev"),
            Some("GCR/Artifact Registry")
        );
        assert_eq!(cloud_registry("x.azurecr.io"), Some("ACR"));
        assert_eq!(cloud_registry("ghcr.io"), None);
    }
}
