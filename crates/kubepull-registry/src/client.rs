//! The client: authentication, redirects, retries, resolve by name, fetch by digest.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use kubepull_core::reference::{Digest, DigestAlgorithm, Reference};
use sha2::Digest as _;
use tokio::io::{AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::auth::{
    parse_token_response, Clock, RegistryCredential, SecretString, SystemClock, TokenCache,
    TokenKey, MAX_TOKEN_RESPONSE, OAUTH_CLIENT_ID,
};
use crate::challenge::{parse_challenges, Challenge, Scheme};
use crate::error::{Attempt, Error, PolicyViolation, Result};
use crate::hosts::RegistryHost;
use crate::manifest::{
    is_non_distributable, parse_manifest, Descriptor, ImageManifest, Manifest, Platform,
    MANIFEST_ACCEPT,
};
use crate::policy::{self, host_label, Zone};
use crate::transport::{
    HttpsTransport, PinnedResolver, Request, Resolver, Response, SystemResolver, TlsConfig,
    Transport, TransportError, TransportErrorKind,
};

/// Largest manifest or index we read: containerd's `MaxManifestSize`
/// (core/remotes/docker/resolver.go; "4M bytes represents a much larger upper bound for images
/// which may contain large annotations"; containerd writes `4 * 1048 * 1048`, we use 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// Largest error body we read: only the registry error `code` is used, and real error bodies
/// are well under 1 KiB; a hostile server must not make us buffer more
/// (google/go-containerregistry#2296).
pub const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Most redirects followed for one request (Go's `net/http` default is 10; a blob redirect
/// chain is normally one hop).
pub const MAX_REDIRECTS: u32 = 5;

/// Retries of one request after `429`, `5xx` or a connection failure before any byte of the
/// body arrived.
pub const MAX_RETRIES: u32 = 4;

/// First back-off delay; doubled per retry up to [`MAX_BACKOFF`].
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(250);

/// Longest back-off between retries when the server gives no `Retry-After`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Longest `Retry-After` we wait for; a longer one fails at once as rate-limited instead of
/// hanging a pull for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Resumes (with `Range`) of one blob after a dropped connection or a stall. Bounded because
/// a registry that ignores `Range` makes every resume re-send the prefix
/// (podman-container-tools/container-libs#1114, the O(N²) concern).
pub const MAX_RESUMES: u32 = 5;

/// A body that sends no byte for this long is stalled (containerd's
/// `image_pull_progress_timeout` is 5 min for a whole pull; this is per read).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Time to wait for a response's headers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A progress callback: `(digest, bytes_done, total)`, called after every chunk written.
/// Called from the transfer tasks, so it must be cheap and must not block.
pub type ProgressFn = Arc<dyn Fn(&Digest, u64, u64) + Send + Sync>;

/// Most per-host transports (one per distinct `hosts.toml` TLS setting) a client keeps; each
/// holds a connection pool. Past it the cache starts over.
pub const MAX_HOST_TRANSPORTS: usize = 64;

/// Client settings. Every knob defaults to the named constant.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries (`host[:port]`) served over plain HTTP. Anonymous access only: credentials
    /// never travel over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// [`MAX_RETRIES`].
    pub max_retries: u32,
    /// [`RETRY_BASE_DELAY`].
    pub retry_base_delay: Duration,
    /// [`MAX_RETRY_AFTER`].
    pub max_retry_after: Duration,
    /// [`MAX_RESUMES`].
    pub max_resumes: u32,
    /// [`STALL_TIMEOUT`].
    pub stall_timeout: Duration,
    /// [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: vec![],
            max_retries: MAX_RETRIES,
            retry_base_delay: RETRY_BASE_DELAY,
            max_retry_after: MAX_RETRY_AFTER,
            max_resumes: MAX_RESUMES,
            stall_timeout: STALL_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

struct Inner {
    transport: Arc<dyn Transport>,
    resolver: Arc<dyn Resolver>,
    tokens: TokenCache,
    config: ClientConfig,
    /// Set for HTTPS clients: the base TLS and the pinned resolver that per-host transports
    /// (hosts.toml `ca`, `client`, `skip_verify`) are built from.
    https: Option<(TlsConfig, Arc<PinnedResolver>)>,
    /// Per-host transports, by origin; bounded by the hosts configured.
    host_transports: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn Transport>>>,
}

/// A registry client. Cheap to clone; clones share the connection pool and token cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// A tag or a digest to fetch a manifest by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// A tag (validated: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl ManifestRef {
    /// Parses a tag or a digest, validating either before it can reach a URL.
    pub fn parse(s: &str) -> Result<ManifestRef> {
        if s.contains(':') {
            return Digest::parse(s)
                .map(ManifestRef::Digest)
                .map_err(|e| Error::invalid_digest(s, e));
        }
        // distribution/reference regexp.go, `tag`
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
            });
        if ok {
            Ok(ManifestRef::Tag(s.to_string()))
        } else {
            Err(Error::InvalidReference {
                input: s.chars().take(100).collect(),
                source: kubepull_core::reference::ReferenceError::InvalidFormat,
            })
        }
    }

    /// The reference of an image: its digest when pinned, else its tag, else `latest`.
    pub fn of(reference: &Reference) -> ManifestRef {
        match (reference.digest(), reference.tag()) {
            (Some(d), _) => ManifestRef::Digest(d.clone()),
            (None, Some(t)) => ManifestRef::Tag(t.to_string()),
            (None, None) => ManifestRef::Tag("latest".to_string()),
        }
    }
}

impl std::fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestRef::Tag(t) => f.write_str(t),
            ManifestRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// A manifest as fetched: its bytes, verified digest and parsed form.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type, digest (computed from the bytes) and size.
    pub descriptor: Descriptor,
    /// The exact bytes (what the digest covers).
    pub bytes: Bytes,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// The result of resolving an image for a platform.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// What the reference resolved to: the index digest for a multi-platform image, else the
    /// manifest digest (the "repo digest" the kubelet reports).
    pub digest: Digest,
    /// The selected image manifest's descriptor (equal to `digest` for single-platform).
    pub manifest_descriptor: Descriptor,
    /// The image manifest.
    pub manifest: ImageManifest,
    /// Its exact bytes.
    pub manifest_bytes: Bytes,
    /// The index entry's platform, for multi-platform images.
    pub platform: Option<Platform>,
    /// The credential that worked (`secret/NAME`), `None` for anonymous.
    pub credential_source: Option<String>,
}

impl Client {
    /// A client over any transport and resolver.
    pub fn new(
        transport: Arc<dyn Transport>,
        resolver: Arc<dyn Resolver>,
        config: ClientConfig,
    ) -> Client {
        Self::with_clock(transport, resolver, config, Box::new(SystemClock))
    }

    /// [`Client::new`] with a clock for the token cache.
    pub fn with_clock(
        transport: Arc<dyn Transport>,
        resolver: Arc<dyn Resolver>,
        config: ClientConfig,
        clock: Box<dyn Clock>,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                transport,
                resolver,
                tokens: TokenCache::new(clock),
                config,
                https: None,
                host_transports: Default::default(),
            }),
        }
    }

    /// The real HTTPS client with the system resolver, DNS-pinned: the policy and the
    /// connections share one [`PinnedResolver`], so an address the policy checked is the
    /// address connected to.
    pub fn https(tls: &TlsConfig, config: ClientConfig) -> Result<Client> {
        Self::https_with_resolver(tls, config, Arc::new(SystemResolver))
    }

    /// [`Client::https`] resolving names with `resolver` (pinned) for both the policy
    /// and the connections: a node that pins registry addresses, or a test.
    pub fn https_with_resolver(
        tls: &TlsConfig,
        config: ClientConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Client> {
        let pinned = Arc::new(PinnedResolver::new(resolver));
        let t = HttpsTransport::with_resolver(tls, pinned.clone()).map_err(|source| {
            Error::Transport {
                host: "<tls setup>".into(),
                source,
            }
        })?;
        let mut c = Self::new(Arc::new(t), pinned.clone(), config);
        if let Some(inner) = Arc::get_mut(&mut c.inner) {
            inner.https = Some((tls.clone(), pinned));
        }
        Ok(c)
    }

    /// The transport for `host`: the client's own unless the host has TLS settings of its
    /// own and this is an HTTPS client (a client over a custom [`Transport`] uses that
    /// transport for every host).
    fn transport_for(&self, host: &RegistryHost) -> Result<Arc<dyn Transport>> {
        let Some((base, pinned)) = &self.inner.https else {
            return Ok(self.inner.transport.clone());
        };
        if !host.custom_tls {
            return Ok(self.inner.transport.clone());
        }
        // keyed by origin and TLS settings: a reloaded hosts.toml with another CA or client
        // certificate must not reuse a connection pool built for the old one
        let key = {
            let mut h = sha2::Sha256::new();
            h.update(host.origin.as_str().as_bytes());
            for pem in &host.tls.extra_roots_pem {
                h.update(b"\0ca\0");
                h.update(pem);
            }
            if let Some(id) = &host.tls.client_identity_pem {
                h.update(b"\0client\0");
                h.update(id);
            }
            h.update([
                u8::from(host.tls.skip_verify),
                u8::from(host.tls.system_roots),
            ]);
            format!("{:x}", h.finalize())
        };
        let mut map = self
            .inner
            .host_transports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get(&key) {
            return Ok(t.clone());
        }
        let mut tls = base.clone();
        tls.extra_roots_pem
            .extend(host.tls.extra_roots_pem.iter().cloned());
        tls.system_roots |= host.tls.system_roots;
        tls.client_identity_pem = host.tls.client_identity_pem.clone();
        tls.skip_verify = host.tls.skip_verify;
        let t: Arc<dyn Transport> = Arc::new(
            HttpsTransport::with_resolver(&tls, pinned.clone()).map_err(|source| {
                Error::Transport {
                    host: host.host_label(),
                    source,
                }
            })?,
        );
        if map.len() >= MAX_HOST_TRANSPORTS {
            map.clear();
        }
        map.insert(key, t.clone());
        Ok(t)
    }

    /// A handle on one repository served by `host` (a `hosts.toml` mirror or server), with
    /// the host's TLS settings, API root and headers. Plain HTTP when the host's URL says
    /// `http://` (credentials still never travel over it).
    pub fn repository_on(
        &self,
        reference: &Reference,
        credential: Option<RegistryCredential>,
        host: &RegistryHost,
    ) -> Result<Repository> {
        let mut extra_headers = HeaderMap::new();
        for (k, v) in &host.headers {
            if let (Ok(k), Ok(mut v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                // a configured header may carry a secret: keep it out of Debug output
                v.set_sensitive(true);
                extra_headers.append(k, v);
            }
        }
        Ok(Repository {
            client: self.clone(),
            transport: self.transport_for(host)?,
            host: host.host_label(),
            base: host.origin.clone(),
            api_root: host.api_root.clone(),
            extra_headers,
            name: reference.path().to_string(),
            credential,
            auth: tokio::sync::Mutex::new(AuthState::Unknown),
            zone: tokio::sync::OnceCell::new(),
            push: false,
        })
    }

    /// Resolves `reference` through the hosts configured for its registry
    /// ([`HostsDir::hosts_for`](crate::hosts::HostsDir::hosts_for)): a tag on hosts with
    /// `pull` and `resolve`, a digest on hosts with `pull`, in order (mirrors, then the
    /// server); a host that fails passes on to the next, and the last host's error is
    /// returned. On each host the credentials `credentials_for(host)` returns are tried as in
    /// [`Client::resolve_image`].
    ///
    /// `credentials_for` must return the keyring's matches for **that host's**
    /// `host[:port]` ([`RegistryHost::host_label`]), e.g. `keyring::resolve(&format!("{}/{}",
    /// host.host_label(), image_path), …)`: a mirror gets credentials only when a pull
    /// secret names the mirror, never the server's (see [`crate::hosts`]). The returned
    /// repository is bound to the host that answered; fetch the blobs from it.
    pub async fn resolve_image_via<F>(
        &self,
        reference: &Reference,
        hosts: &[RegistryHost],
        credentials_for: F,
        platform: &Platform,
    ) -> Result<(Repository, ResolvedImage)>
    where
        F: Fn(&RegistryHost) -> Vec<RegistryCredential>,
    {
        let by_tag = reference.digest().is_none();
        let mut last: Option<Error> = None;
        for h in hosts {
            if !h.capabilities.pull || (by_tag && !h.capabilities.resolve) {
                continue;
            }
            let creds = credentials_for(h);
            let r = self
                .resolve_with(reference, &creds, platform, |c| {
                    self.repository_on(reference, c, h)
                })
                .await;
            match r {
                Ok(x) => return Ok(x),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Protocol {
            host: reference.domain().to_string(),
            message: format!(
                "no configured host may {} this image: check capabilities in hosts.toml",
                if by_tag { "resolve" } else { "pull" }
            ),
        }))
    }

    /// A handle on one repository with one credential (or anonymous).
    pub fn repository(
        &self,
        reference: &Reference,
        credential: Option<RegistryCredential>,
    ) -> Result<Repository> {
        let domain = reference.domain();
        // containerd core/remotes/docker/resolver.go, DefaultHost
        let host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        let insecure = self
            .inner
            .config
            .insecure_registries
            .iter()
            .any(|r| r.eq_ignore_ascii_case(domain) || r.eq_ignore_ascii_case(host));
        let scheme = if insecure { "http" } else { "https" };
        let base =
            Url::parse(&format!("{scheme}://{host}/")).map_err(|_| Error::InvalidReference {
                input: reference.to_string(),
                source: kubepull_core::reference::ReferenceError::InvalidFormat,
            })?;
        Ok(Repository {
            client: self.clone(),
            transport: self.inner.transport.clone(),
            host: host_label(&base),
            base,
            api_root: "/v2".to_string(),
            extra_headers: HeaderMap::new(),
            name: reference.path().to_string(),
            credential,
            auth: tokio::sync::Mutex::new(AuthState::Unknown),
            zone: tokio::sync::OnceCell::new(),
            push: false,
        })
    }

    /// Resolves `reference` for `platform`, trying every credential in order as the kubelet
    /// does (kubernetes `pkg/kubelet/images/image_manager.go` → `kuberuntime_image.go`,
    /// `PullImage`: one attempt per credential, errors aggregated); anonymously only when
    /// `credentials` is empty. Returns the repository handle bound to the credential that
    /// worked, to fetch the blobs with.
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        credentials: &[RegistryCredential],
        platform: &Platform,
    ) -> Result<(Repository, ResolvedImage)> {
        self.resolve_with(reference, credentials, platform, |c| {
            self.repository(reference, c)
        })
        .await
    }

    /// The kubelet's credential loop over repositories made by `make`.
    async fn resolve_with<M>(
        &self,
        reference: &Reference,
        credentials: &[RegistryCredential],
        platform: &Platform,
        make: M,
    ) -> Result<(Repository, ResolvedImage)>
    where
        M: Fn(Option<RegistryCredential>) -> Result<Repository>,
    {
        if credentials.is_empty() {
            let repo = make(None)?;
            let r = repo
                .resolve_image(&ManifestRef::of(reference), platform)
                .await?;
            return Ok((repo, r));
        }
        let mut attempts = Vec::new();
        for c in credentials {
            let repo = make(Some(c.clone()))?;
            match repo
                .resolve_image(&ManifestRef::of(reference), platform)
                .await
            {
                Ok(r) => return Ok((repo, r)),
                Err(error) => attempts.push(Attempt {
                    source: c.source().to_string(),
                    error,
                }),
            }
        }
        Err(Error::AllCredentialsFailed { attempts })
    }
}

#[derive(Debug, Clone)]
enum AuthState {
    Unknown,
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

/// One repository on one registry, with one credential (or none). Holds the negotiated
/// authentication; cheap to share behind an `Arc` for parallel blob fetches.
pub struct Repository {
    client: Client,
    transport: Arc<dyn Transport>,
    base: Url,
    api_root: String,
    extra_headers: HeaderMap,
    host: String,
    name: String,
    credential: Option<RegistryCredential>,
    auth: tokio::sync::Mutex<AuthState>,
    zone: tokio::sync::OnceCell<Zone>,
    /// Tokens are asked for `pull,push` instead of `pull` ([`Repository::for_push`]).
    push: bool,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("base", &self.base.as_str())
            .field("name", &self.name)
            .field("credential", &self.credential.as_ref().map(|c| c.source()))
            .finish_non_exhaustive()
    }
}

fn origin(u: &Url) -> (String, Option<String>, Option<u16>) {
    (
        u.scheme().to_string(),
        u.host_str().map(str::to_ascii_lowercase),
        u.port_or_known_default(),
    )
}

fn sensitive(v: &str) -> Result<HeaderValue, ()> {
    let mut h = HeaderValue::from_str(v).map_err(|_| ())?;
    h.set_sensitive(true);
    Ok(h)
}

/// The registry error `code` of an error body, if it is well-formed (distribution
/// `registry/api/errcode`: `{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`).
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct E {
        errors: Vec<C>,
    }
    #[derive(serde::Deserialize)]
    struct C {
        code: String,
    }
    let e: E = serde_json::from_slice(body).ok()?;
    let code = e.errors.into_iter().next()?.code;
    (!code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    .then_some(code)
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    // RFC 9110 §10.2.3: delay-seconds; HTTP-dates fall back to our back-off.
    let v = h.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(a: DigestAlgorithm) -> Hasher {
        match a {
            DigestAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    fn finish(self) -> Digest {
        let (alg, sum): (&str, Vec<u8>) = match self {
            Hasher::Sha256(h) => ("sha256", h.finalize().to_vec()),
            Hasher::Sha384(h) => ("sha384", h.finalize().to_vec()),
            Hasher::Sha512(h) => ("sha512", h.finalize().to_vec()),
        };
        let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
        // a hash we computed always validates
        Digest::parse(&format!("{alg}:{hex}")).unwrap_or_else(|_| Digest::sha256_of(&[]))
    }
}

fn digest_of(alg: DigestAlgorithm, bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(alg);
    h.update(bytes);
    h.finish()
}

/// Write buffer of a blob file: few, large writes.
const BLOB_WRITE_BUFFER: usize = 1 << 20;

/// Where a download continues: the bytes the sink already holds and their hash.
#[derive(Clone)]
struct Resume {
    offset: u64,
    hasher: Hasher,
}

/// How a transfer ended.
enum Fetched {
    /// Verified; the blob's size.
    Done(u64),
    /// The registry ignored the range of a resume: the caller starts again from zero.
    RangeIgnored,
}

/// What [`Repository::fetch_blob_resumable`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumableFetch {
    /// Bytes of an earlier partial download that were kept (0 when there was none or it was
    /// discarded).
    pub resumed_from: u64,
    /// Bytes received from the registry and kept.
    pub downloaded: u64,
    /// An earlier partial was discarded: the registry ignored `Range`, or the partial was
    /// corrupt.
    pub restarted: bool,
}

/// Opens (creating) a partial download and hashes what it holds; a partial longer than the
/// blob is emptied.
fn hash_partial(
    p: &Path,
    size: u64,
    alg: DigestAlgorithm,
) -> std::io::Result<(std::fs::File, u64, Hasher)> {
    use std::io::Read;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)?;
    let mut h = Hasher::new(alg);
    if f.metadata()?.len() > size {
        f.set_len(0)?;
        return Ok((f, 0, h));
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = match f.read(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((f, n, h))
}

/// Where one request may go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// To the registry: credentials attached while on the registry's origin.
    Registry,
    /// A foreign URL: never credentials.
    Never,
}

pub(crate) mod push;

impl Repository {
    /// The repository path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry's base URL (`https://host[:port]/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn source_label(&self) -> String {
        self.credential
            .as_ref()
            .map_or_else(|| "anonymous".to_string(), |c| c.source().to_string())
    }

    fn url(&self, kind: &str, reference: &str) -> Url {
        // `name` comes from a validated Reference and `reference` is a validated tag or
        // digest, so the join cannot escape `/v2/`.
        let mut u = self.base.clone();
        u.set_path(&format!(
            "{}/{}/{kind}/{reference}",
            self.api_root, self.name
        ));
        u
    }

    async fn zone(&self) -> Zone {
        *self
            .zone
            .get_or_init(|| policy::registry_zone(&self.base, &*self.client.inner.resolver))
            .await
    }

    /// The token scope's actions (distribution `token` scope grammar).
    fn actions(&self) -> &'static str {
        if self.push {
            "pull,push"
        } else {
            "pull"
        }
    }

    fn token_key(&self) -> TokenKey {
        TokenKey {
            registry: self.host.clone(),
            repository: self.name.clone(),
            actions: self.actions().split(',').map(str::to_string).collect(),
            credential: self.credential.as_ref().map(|c| c.identity()),
        }
    }

    fn policy_err(&self, host: &str, violation: PolicyViolation) -> Error {
        Error::Policy {
            host: host.to_string(),
            violation,
        }
    }

    /// `GET /v2/` without credentials: the challenges the registry sends (empty when it
    /// needs no authentication).
    pub async fn ping(&self) -> Result<Vec<Challenge>> {
        let mut u = self.base.clone();
        u.set_path(&format!("{}/", self.api_root));
        let resp = self
            .raw_send(Method::GET, u, HeaderMap::new(), None)
            .await?;
        match resp.status {
            s if s.is_success() => Ok(vec![]),
            StatusCode::UNAUTHORIZED => self.challenges(&resp.headers),
            s => Err(self.status_error(s, resp).await),
        }
    }

    fn challenges(&self, headers: &HeaderMap) -> Result<Vec<Challenge>> {
        let mut out = Vec::new();
        for v in headers.get_all(http::header::WWW_AUTHENTICATE) {
            let s = v.to_str().map_err(|_| Error::Challenge {
                host: self.host.clone(),
                source: crate::challenge::ChallengeError::NotAscii,
            })?;
            out.extend(parse_challenges(s).map_err(|source| Error::Challenge {
                host: self.host.clone(),
                source,
            })?);
        }
        Ok(out)
    }

    /// Sends with a timeout on the response headers.
    async fn raw_send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let host = host_label(&url);
        let req = Request {
            method,
            url,
            headers,
            body,
        };
        let cfg = &self.client.inner.config;
        match tokio::time::timeout(cfg.request_timeout, self.transport.send(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(Error::Transport { host, source }),
            Err(_) => Err(Error::Transport {
                host,
                source: TransportError::new(TransportErrorKind::Timeout, "no response headers"),
            }),
        }
    }

    /// The `Authorization` value for the registry, fetching a token if needed.
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        let state = self.auth.lock().await.clone();
        let v = match state {
            AuthState::Unknown => return Ok(None),
            AuthState::Basic => match self.credential.as_ref().and_then(|c| c.basic_header()) {
                Some(v) => v,
                None => return Ok(None),
            },
            AuthState::Bearer { realm, service } => {
                let key = self.token_key();
                let tok = match self.client.inner.tokens.get(&key) {
                    Some(t) => t,
                    None => {
                        // single-flight: one fetch per key, the others wait and re-check
                        let tokens = &self.client.inner.tokens;
                        let flight = tokens.flight(&key);
                        let _guard = flight.lock().await;
                        match tokens.get(&key) {
                            Some(t) => t,
                            None => {
                                let t = self.fetch_token(&realm, service.as_deref()).await?;
                                tokens.insert(key, t.token.clone(), t.lifetime);
                                t.token
                            }
                        }
                    }
                };
                format!("Bearer {}", tok.expose())
            }
        };
        sensitive(&v).map(Some).map_err(|_| Error::Protocol {
            host: self.host.clone(),
            message: "credential cannot form an authorization header".into(),
        })
    }

    /// Reacts to a `401` from the registry: picks the challenge and checks its realm.
    ///
    /// A cached token is dropped only when the failed request carried it (`sent_auth`): a
    /// fresh handle's first, unauthenticated request must not evict a good token.
    async fn handle_challenge(&self, headers: &HeaderMap, sent_auth: bool) -> Result<()> {
        let cs = self.challenges(headers)?;
        // containerd auth/parse.go, byScheme: bearer before basic
        if let Some(c) = cs.iter().find(|c| c.scheme == Scheme::Bearer) {
            let realm = c.param("realm").ok_or_else(|| Error::Protocol {
                host: self.host.clone(),
                message: "bearer challenge without realm".into(),
            })?;
            let realm = Url::parse(realm).map_err(|_| Error::Protocol {
                host: self.host.clone(),
                message: "bearer challenge realm is not a url".into(),
            })?;
            let zone = self.zone().await;
            policy::check_realm(&self.base, &realm, zone, &*self.client.inner.resolver)
                .await
                .map_err(|v| self.policy_err(&host_label(&realm), v))?;
            if sent_auth {
                self.client.inner.tokens.remove(&self.token_key());
            }
            *self.auth.lock().await = AuthState::Bearer {
                service: c.param("service").map(str::to_string),
                realm,
            };
            return Ok(());
        }
        if cs.iter().any(|c| c.scheme == Scheme::Basic) {
            match &self.credential {
                Some(c) if c.basic_header().is_some() => {
                    if self.base.scheme() != "https" {
                        return Err(
                            self.policy_err(&self.host, PolicyViolation::CredentialsOverPlainHttp)
                        );
                    }
                    *self.auth.lock().await = AuthState::Basic;
                    return Ok(());
                }
                _ => {
                    return Err(Error::Unauthorized {
                        host: self.host.clone(),
                        source_label: self.source_label(),
                    })
                }
            }
        }
        Err(Error::Protocol {
            host: self.host.clone(),
            message: "401 without a supported basic or bearer challenge".into(),
        })
    }

    /// The Docker token flow against a checked realm.
    async fn fetch_token(
        &self,
        realm: &Url,
        service: Option<&str>,
    ) -> Result<crate::auth::TokenResponse> {
        let realm_host = host_label(realm);
        let scope = format!("repository:{}:{}", self.name, self.actions());
        let cred = self.credential.as_ref();
        let sends_secret =
            cred.is_some_and(|c| c.basic_header().is_some() || c.refresh_token().is_some());
        if sends_secret && (realm.scheme() != "https" || self.base.scheme() != "https") {
            return Err(self.policy_err(&realm_host, PolicyViolation::CredentialsOverPlainHttp));
        }
        let mut headers = HeaderMap::new();
        let (method, url, body) = if let Some(rt) = cred.and_then(|c| c.refresh_token()) {
            // distribution session.go, fetchTokenWithOAuth: refresh_token grant
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", rt);
            form.append_pair("client_id", OAUTH_CLIENT_ID);
            if let Some(s) = service {
                form.append_pair("service", s);
            }
            form.append_pair("scope", &scope);
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
            );
            (
                Method::POST,
                realm.clone(),
                Some(Bytes::from(form.finish())),
            )
        } else {
            // distribution session.go, fetchTokenWithBasicAuth; containerd auth/fetch.go,
            // FetchToken: GET with service and scope, Basic when there is a secret
            let mut u = realm.clone();
            {
                let mut q = u.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                q.append_pair("scope", &scope);
            }
            if let Some(b) = cred.and_then(|c| c.basic_header()) {
                let v = sensitive(&b).map_err(|_| Error::Protocol {
                    host: self.host.clone(),
                    message: "credential cannot form an authorization header".into(),
                })?;
                headers.insert(AUTHORIZATION, v);
            }
            (Method::GET, u, None)
        };
        let resp = self.raw_send(method, url, headers, body).await?;
        let status = resp.status;
        if status.is_redirection() {
            return Err(self.policy_err(&realm_host, PolicyViolation::TokenRedirect));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                host: realm_host,
                source_label: self.source_label(),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Error::RateLimited {
                host: realm_host,
                retry_after: retry_after(&resp.headers),
            });
        }
        if !status.is_success() {
            return Err(self.status_error(status, resp).await);
        }
        let body = self
            .read_limited(resp, MAX_TOKEN_RESPONSE, "token response", &realm_host)
            .await?;
        parse_token_response(&body).map_err(|e| Error::TokenResponse {
            host: realm_host,
            reason: match e {
                crate::auth::TokenResponseError::Json => "not valid json",
                crate::auth::TokenResponseError::NoToken => "no token in response",
                crate::auth::TokenResponseError::BadToken => "token is not a valid header value",
            },
        })
    }

    /// One logical request: credentials on the registry's origin only, the challenge
    /// answered once, redirects followed by policy, `429`/`5xx` retried with back-off.
    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        auth: Auth,
    ) -> Result<Response> {
        self.send_body(method, url, headers, auth, None).await
    }

    /// [`send`](Self::send) with a request body (uploads), sent again on each retry.
    async fn send_body(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        auth: Auth,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let mut body = body;
        let cfg = &self.client.inner.config;
        let base_origin = origin(&self.base);
        let mut url = url;
        let mut method = method;
        // Once a redirect leaves the registry's origin, credentials are gone for the rest of
        // the chain, even if a later hop comes back (google/go-containerregistry#2337 →
        // #2349/#2360; GHSA-vh4v-2xq2-g5cg; GHSA-qvqc-4c52-x6qp).
        let mut credentials_allowed = auth == Auth::Registry;
        let mut redirects = 0;
        let mut retries = 0;
        // One challenge round for the unauthenticated probe, and one more when a (possibly
        // stale or revoked) cached bearer token was rejected: the token is evicted and fetched
        // anew once. A rejected Basic credential is not re-sent.
        let mut challenged_probe = false;
        let mut challenged_token = false;
        loop {
            let mut h = headers.clone();
            let on_origin = origin(&url) == base_origin;
            if on_origin {
                for (k, v) in &self.extra_headers {
                    h.append(k, v.clone());
                }
            }
            let attach = credentials_allowed && on_origin;
            let mut sent_auth = false;
            if attach {
                if let Some(v) = self.authorization().await? {
                    if url.scheme() != "https" {
                        return Err(
                            self.policy_err(&self.host, PolicyViolation::CredentialsOverPlainHttp)
                        );
                    }
                    h.insert(AUTHORIZATION, v);
                    sent_auth = true;
                }
            }
            let resp = match self
                .raw_send(method.clone(), url.clone(), h, body.clone())
                .await
            {
                Ok(r) => r,
                Err(Error::Transport { source, .. })
                    if retries < cfg.max_retries
                        && matches!(
                            source.kind(),
                            TransportErrorKind::Connect | TransportErrorKind::Timeout
                        ) =>
                {
                    self.backoff(retries, None).await;
                    retries += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status;
            if status == StatusCode::UNAUTHORIZED {
                let bearer = matches!(*self.auth.lock().await, AuthState::Bearer { .. });
                let again = if !sent_auth {
                    !std::mem::replace(&mut challenged_probe, true)
                } else {
                    bearer && !std::mem::replace(&mut challenged_token, true)
                };
                if attach && again {
                    self.handle_challenge(&resp.headers, sent_auth).await?;
                    continue;
                }
                return Err(self.unauthorized(&resp.headers, sent_auth, &url));
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let ra = retry_after(&resp.headers);
                let too_long = ra.is_some_and(|d| d > cfg.max_retry_after);
                if retries < cfg.max_retries && !too_long && status != StatusCode::NOT_IMPLEMENTED {
                    self.backoff(retries, ra).await;
                    retries += 1;
                    continue;
                }
                if status == StatusCode::TOO_MANY_REQUESTS {
                    return Err(Error::RateLimited {
                        host: host_label(&url),
                        retry_after: ra,
                    });
                }
                return Ok(resp);
            }
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Error::Protocol {
                        host: host_label(&url),
                        message: format!("more than {MAX_REDIRECTS} redirects"),
                    });
                }
                let loc = resp
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| Error::Protocol {
                        host: host_label(&url),
                        message: "redirect without a valid location".into(),
                    })?;
                let zone = self.zone().await;
                policy::check_destination(&loc, zone, &*self.client.inner.resolver)
                    .await
                    .map_err(|v| self.policy_err(&host_label(&loc), v))?;
                if origin(&loc) != base_origin {
                    credentials_allowed = false;
                }
                if status.as_u16() == 303 {
                    method = Method::GET;
                    body = None;
                }
                url = loc;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn backoff(&self, attempt: u32, retry_after: Option<Duration>) {
        let cfg = &self.client.inner.config;
        let d = retry_after.unwrap_or_else(|| {
            cfg.retry_base_delay
                .saturating_mul(1u32 << attempt.min(16))
                .min(MAX_BACKOFF)
        });
        tokio::time::sleep(d).await;
    }

    fn unauthorized(&self, headers: &HeaderMap, sent_auth: bool, url: &Url) -> Error {
        let insufficient = self.challenges(headers).ok().is_some_and(|cs| {
            cs.iter()
                .any(|c| c.param("error") == Some("insufficient_scope"))
        });
        if origin(url) != origin(&self.base) {
            // a 401 from a redirect target is never answered with credentials
            // (CVE-2020-15157)
            return Error::Unauthorized {
                host: host_label(url),
                source_label: "none (redirect target)".into(),
            };
        }
        if insufficient || (!sent_auth && self.credential.is_none()) {
            Error::NotFound {
                host: self.host.clone(),
                repository: self.name.clone(),
                source_label: self.source_label(),
            }
        } else {
            Error::Unauthorized {
                host: self.host.clone(),
                source_label: self.source_label(),
            }
        }
    }

    async fn status_error(&self, status: StatusCode, resp: Response) -> Error {
        let host = self.host.clone();
        let body = self
            .read_limited(resp, MAX_ERROR_BODY, "error body", &host)
            .await
            .unwrap_or_default();
        Error::Status {
            host,
            status: status.as_u16(),
            code: error_code(&body),
        }
    }

    /// Reads a whole body, refusing more than `limit` bytes (by `Content-Length` before
    /// reading, and by counting while reading).
    async fn read_limited(
        &self,
        resp: Response,
        limit: u64,
        what: &'static str,
        host: &str,
    ) -> Result<Bytes> {
        if let Some(cl) = content_length(&resp.headers) {
            if cl > limit {
                return Err(Error::TooLarge { what, limit });
            }
        }
        let stall = self.client.inner.config.stall_timeout;
        let mut body = resp.body;
        let mut buf = BytesMut::new();
        loop {
            let next = tokio::time::timeout(stall, body.next())
                .await
                .map_err(|_| Error::Stalled {
                    host: host.to_string(),
                    timeout: stall,
                })?;
            match next {
                None => break,
                Some(Err(source)) => {
                    return Err(Error::Transport {
                        host: host.to_string(),
                        source,
                    })
                }
                Some(Ok(chunk)) => {
                    if buf.len() as u64 + chunk.len() as u64 > limit {
                        return Err(Error::TooLarge { what, limit });
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        Ok(buf.freeze())
    }

    /// `HEAD` the manifest to learn its descriptor without its body; falls back to `GET`
    /// when the registry sends no usable `Docker-Content-Digest` (containerd
    /// `dockerResolver.Resolve`). For a digest reference, the digest is the reference's
    /// and the bytes are verified by [`fetch_manifest`](Self::fetch_manifest) later.
    pub async fn resolve(&self, reference: &ManifestRef) -> Result<Descriptor> {
        let url = self.url("manifests", &reference.to_string());
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let resp = self.send(Method::HEAD, url, h, Auth::Registry).await?;
        if resp.status.is_success() {
            let size = content_length(&resp.headers);
            let mt = header_str(&resp.headers, CONTENT_TYPE)
                .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
            let dgst = match reference {
                ManifestRef::Digest(d) => Some(d.clone()),
                ManifestRef::Tag(_) => header_str(&resp.headers, docker_content_digest())
                    .and_then(|s| Digest::parse(s).ok()),
            };
            if let (Some(digest), Some(size), Some(media_type)) = (dgst, size, mt) {
                if size > MAX_MANIFEST_SIZE {
                    return Err(Error::TooLarge {
                        what: "manifest",
                        limit: MAX_MANIFEST_SIZE,
                    });
                }
                if crate::manifest::is_manifest_media_type(&media_type) {
                    return Ok(Descriptor {
                        media_type,
                        digest,
                        size,
                        urls: vec![],
                        platform: None,
                        annotations: Default::default(),
                    });
                }
            }
        } else {
            return Err(self.manifest_status_error(resp, reference).await);
        }
        Ok(self.fetch_manifest(reference).await?.descriptor)
    }

    async fn manifest_status_error(&self, resp: Response, reference: &ManifestRef) -> Error {
        let status = resp.status;
        let e = self.status_error(status, resp).await;
        let code = match &e {
            Error::Status { code, .. } => code.clone(),
            _ => None,
        };
        match (status.as_u16(), code.as_deref()) {
            (404, Some("NAME_UNKNOWN")) | (403, _) => Error::NotFound {
                host: self.host.clone(),
                repository: self.name.clone(),
                source_label: self.source_label(),
            },
            (404, _) => Error::ManifestUnknown {
                repository: format!("{}/{}", self.host, self.name),
                reference: reference.to_string(),
            },
            _ => e,
        }
    }

    /// `GET` a manifest by tag or digest: bounded to [`MAX_MANIFEST_SIZE`], its digest
    /// computed from the bytes and checked against the digest asked for (a pinned reference)
    /// and against `Docker-Content-Digest` when the registry sends one (never trusted alone).
    pub async fn fetch_manifest(&self, reference: &ManifestRef) -> Result<FetchedManifest> {
        let url = self.url("manifests", &reference.to_string());
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let resp = self.send(Method::GET, url, h, Auth::Registry).await?;
        if !resp.status.is_success() {
            return Err(self.manifest_status_error(resp, reference).await);
        }
        let ct = header_str(&resp.headers, CONTENT_TYPE)
            .unwrap_or("")
            .to_string();
        let header_digest = header_str(&resp.headers, docker_content_digest()).map(str::to_string);
        let host = self.host.clone();
        let bytes = self
            .read_limited(resp, MAX_MANIFEST_SIZE, "manifest", &host)
            .await?;
        let digest = match reference {
            ManifestRef::Digest(want) => {
                let got = digest_of(want.algorithm(), &bytes);
                if &got != want {
                    return Err(Error::DigestMismatch {
                        expected: want.clone(),
                        actual: got,
                    });
                }
                got
            }
            ManifestRef::Tag(_) => {
                let got = digest_of(DigestAlgorithm::Sha256, &bytes);
                if let Some(hd) = header_digest.as_deref().and_then(|s| Digest::parse(s).ok()) {
                    let ours = digest_of(hd.algorithm(), &bytes);
                    if ours != hd {
                        return Err(Error::DigestMismatch {
                            expected: hd,
                            actual: ours,
                        });
                    }
                }
                got
            }
        };
        let manifest = parse_manifest(&ct, &bytes).map_err(|e| Error::Manifest {
            digest: digest.clone(),
            reason: e.to_string(),
        })?;
        let media_type = match &manifest {
            Manifest::Image(m) => m.media_type.clone(),
            Manifest::Index(i) => i.media_type.clone(),
        }
        .or_else(|| {
            crate::manifest::is_manifest_media_type(&ct)
                .then(|| ct.split(';').next().unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| match &manifest {
            Manifest::Image(_) => crate::manifest::OCI_MANIFEST.to_string(),
            Manifest::Index(_) => crate::manifest::OCI_INDEX.to_string(),
        });
        Ok(FetchedManifest {
            descriptor: Descriptor {
                media_type,
                digest,
                size: bytes.len() as u64,
                urls: vec![],
                platform: None,
                annotations: Default::default(),
            },
            bytes,
            manifest,
        })
    }

    /// Resolves a tag or digest to an image manifest for `platform`: an index is narrowed
    /// to its first entry for the platform, and that child is fetched by digest and verified
    /// (size and digest), so a pinned index digest can never be confused with a platform
    /// manifest digest (oras-project/rust-oci-client#149, lensapp/lens-sandbox#135).
    pub async fn resolve_image(
        &self,
        reference: &ManifestRef,
        platform: &Platform,
    ) -> Result<ResolvedImage> {
        let top = self.fetch_manifest(reference).await?;
        let credential_source = self.credential.as_ref().map(|c| c.source().to_string());
        match top.manifest {
            Manifest::Image(m) => Ok(ResolvedImage {
                digest: top.descriptor.digest.clone(),
                manifest_descriptor: top.descriptor,
                manifest: m,
                manifest_bytes: top.bytes,
                platform: None,
                credential_source,
            }),
            Manifest::Index(index) => {
                let entry = index
                    .select(platform)
                    .ok_or_else(|| Error::PlatformNotFound {
                        wanted: platform.to_string(),
                        available: index.platforms(),
                    })?;
                if entry.size > MAX_MANIFEST_SIZE {
                    return Err(Error::TooLarge {
                        what: "manifest",
                        limit: MAX_MANIFEST_SIZE,
                    });
                }
                let child = self
                    .fetch_manifest(&ManifestRef::Digest(entry.digest.clone()))
                    .await?;
                if child.descriptor.size != entry.size {
                    return Err(Error::SizeMismatch {
                        digest: entry.digest.clone(),
                        expected: entry.size,
                        actual: child.descriptor.size,
                    });
                }
                let Manifest::Image(m) = child.manifest else {
                    return Err(Error::Manifest {
                        digest: entry.digest.clone(),
                        reason: "an index entry for the platform is itself an index".into(),
                    });
                };
                let mut desc = child.descriptor;
                desc.platform = entry.platform.clone();
                Ok(ResolvedImage {
                    digest: top.descriptor.digest,
                    manifest_descriptor: desc,
                    manifest: m,
                    manifest_bytes: child.bytes,
                    platform: entry.platform.clone(),
                    credential_source,
                })
            }
        }
    }

    /// Streams a blob into `sink`, hashing on the fly, resuming with `Range` after a dropped
    /// connection or a stall (at most [`ClientConfig::max_resumes`] times), and verifying size
    /// and digest at the end, continuing after the `resume.offset` bytes the sink already
    /// holds (hashed into `resume.hasher`). `progress` receives `(digest, bytes_done, total)`
    /// after every chunk written (`bytes_done` never goes backwards: a resume continues from
    /// where the transfer stopped). On error, `sink` holds unverified bytes: the caller
    /// discards them.
    ///
    /// For non-distributable layers the registry is asked first; when it does not have the
    /// blob, the descriptor's `urls` are tried without any credential, each checked by the
    /// destination policy.
    async fn fetch_blob_resuming<W: AsyncWrite + Unpin + Send>(
        &self,
        desc: &Descriptor,
        sink: &mut W,
        progress: Option<&ProgressFn>,
        resume: Option<Resume>,
    ) -> Result<Fetched> {
        let url = self.url("blobs", &desc.digest.to_string());
        let from_registry = resume.clone();
        match self
            .fetch_blob_from(url, Auth::Registry, desc, sink, progress, from_registry)
            .await
        {
            Err(e @ Error::BlobUnknown { .. })
                if is_non_distributable(&desc.media_type) && !desc.urls.is_empty() =>
            {
                let mut last = e;
                for u in &desc.urls {
                    let Ok(u) = Url::parse(u) else { continue };
                    let zone = self.zone().await;
                    if let Err(v) =
                        policy::check_destination(&u, zone, &*self.client.inner.resolver).await
                    {
                        last = self.policy_err(&host_label(&u), v);
                        continue;
                    }
                    // bytes may reach the sink: only one url is tried
                    return self
                        .fetch_blob_from(u, Auth::Never, desc, sink, progress, resume)
                        .await;
                }
                Err(last)
            }
            r => r,
        }
    }

    async fn fetch_blob_from<W: AsyncWrite + Unpin + Send>(
        &self,
        url: Url,
        auth: Auth,
        desc: &Descriptor,
        sink: &mut W,
        progress: Option<&ProgressFn>,
        resume: Option<Resume>,
    ) -> Result<Fetched> {
        let cfg = &self.client.inner.config;
        let resuming = resume.is_some();
        let (mut hasher, mut written) = match resume {
            Some(r) => (r.hasher, r.offset),
            None => (Hasher::new(desc.digest.algorithm()), 0),
        };
        let mut resumes = 0;
        let io = |source| Error::Io {
            what: format!("blob {}", desc.digest),
            source,
        };
        'request: loop {
            let mut h = HeaderMap::new();
            if written > 0 {
                let v = HeaderValue::from_str(&format!("bytes={written}-")).map_err(|_| {
                    Error::Protocol {
                        host: self.host.clone(),
                        message: "bad range".into(),
                    }
                })?;
                h.insert(http::header::RANGE, v);
            }
            let resp = self.send(Method::GET, url.clone(), h, auth).await?;
            let host = self.host.clone();
            let mut skip: u64 = match resp.status.as_u16() {
                // the registry does not serve ranges (or not this one): the partial the
                // caller resumed from is of no use, it starts again from zero
                200 | 416 if resuming && written > 0 => return Ok(Fetched::RangeIgnored),
                200 => {
                    if let Some(cl) = content_length(&resp.headers) {
                        if cl != desc.size {
                            return Err(Error::SizeMismatch {
                                digest: desc.digest.clone(),
                                expected: desc.size,
                                actual: cl,
                            });
                        }
                    }
                    // a registry that ignores Range resends from zero: drop what we have
                    written
                }
                206 if written > 0 => {
                    let start = header_str(&resp.headers, http::header::CONTENT_RANGE)
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.parse::<u64>().ok());
                    if start != Some(written) {
                        return Err(Error::Protocol {
                            host,
                            message: "206 response with a content-range we did not ask for".into(),
                        });
                    }
                    0
                }
                404 => {
                    let e = self.status_error(resp.status, resp).await;
                    return Err(match e {
                        Error::Status { code: Some(c), .. } if c == "NAME_UNKNOWN" => {
                            Error::NotFound {
                                host: self.host.clone(),
                                repository: self.name.clone(),
                                source_label: self.source_label(),
                            }
                        }
                        _ => Error::BlobUnknown {
                            repository: format!("{}/{}", self.host, self.name),
                            digest: desc.digest.clone(),
                        },
                    });
                }
                403 => {
                    return Err(Error::NotFound {
                        host: self.host.clone(),
                        repository: self.name.clone(),
                        source_label: self.source_label(),
                    })
                }
                _ => return Err(self.status_error(resp.status, resp).await),
            };
            let mut body = resp.body;
            loop {
                let next = match tokio::time::timeout(cfg.stall_timeout, body.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        if resumes < cfg.max_resumes {
                            resumes += 1;
                            continue 'request;
                        }
                        return Err(Error::Stalled {
                            host,
                            timeout: cfg.stall_timeout,
                        });
                    }
                };
                match next {
                    None => break,
                    Some(Err(source)) => {
                        if resumes < cfg.max_resumes {
                            resumes += 1;
                            continue 'request;
                        }
                        return Err(Error::Transport { host, source });
                    }
                    Some(Ok(mut chunk)) => {
                        if skip > 0 {
                            let n = skip.min(chunk.len() as u64) as usize;
                            let _ = chunk.split_to(n);
                            skip -= n as u64;
                        }
                        if chunk.is_empty() {
                            continue;
                        }
                        if written + chunk.len() as u64 > desc.size {
                            return Err(Error::SizeMismatch {
                                digest: desc.digest.clone(),
                                expected: desc.size,
                                actual: written + chunk.len() as u64,
                            });
                        }
                        hasher.update(&chunk);
                        sink.write_all(&chunk).await.map_err(io)?;
                        written += chunk.len() as u64;
                        if let Some(p) = progress {
                            p(&desc.digest, written, desc.size);
                        }
                    }
                }
            }
            if written < desc.size {
                // premature end of body: a dropped connection in disguise
                if resumes < cfg.max_resumes {
                    resumes += 1;
                    continue 'request;
                }
                return Err(Error::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: written,
                });
            }
            break;
        }
        sink.flush().await.map_err(io)?;
        let actual = hasher.finish();
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(Fetched::Done(written))
    }

    /// Downloads a blob into `partial`, resuming an earlier download there: the file's bytes
    /// (left by a dropped connection, a cancelled pull or a process killed with `kill -9`) are
    /// hashed again, and only the rest is requested with `Range: bytes=N-`. The partial is
    /// discarded and the blob downloaded in full when the registry ignores the range (`200`
    /// instead of `206`, or `416`), or when the result does not verify (a corrupt partial).
    ///
    /// On success `partial` holds exactly the verified blob (flushed, not synced: the caller
    /// commits it). On a content error (digest or size mismatch of a full download) it is
    /// emptied; on other errors (network, registry) it keeps what arrived, for the next
    /// attempt. The caller serialises writers of one `partial` (the store's per-blob lock).
    ///
    /// `progress` starts at the resumed offset; it goes back to 0 when the partial is
    /// discarded.
    pub async fn fetch_blob_resumable(
        &self,
        desc: &Descriptor,
        partial: &Path,
        progress: Option<&ProgressFn>,
    ) -> Result<ResumableFetch> {
        let io = |what: &str, source| Error::Io {
            what: format!("{what} {}", partial.display()),
            source,
        };
        let (file, offset, hasher) = {
            let p = partial.to_path_buf();
            let (size, alg) = (desc.size, desc.digest.algorithm());
            tokio::task::spawn_blocking(move || hash_partial(&p, size, alg))
                .await
                .map_err(|e| io("hash partial blob", std::io::Error::other(e.to_string())))?
                .map_err(|e| io("read partial blob", e))?
        };
        let mut file = tokio::fs::File::from_std(file);
        let mut start = Some((offset, hasher));
        let mut restarted = false;
        loop {
            let (offset, hasher) = start
                .take()
                .unwrap_or((0, Hasher::new(desc.digest.algorithm())));
            if offset == desc.size && offset > 0 {
                if hasher.clone().finish() == desc.digest {
                    if let Some(p) = progress {
                        p(&desc.digest, offset, desc.size);
                    }
                    return Ok(ResumableFetch {
                        resumed_from: offset,
                        downloaded: 0,
                        restarted,
                    });
                }
                // complete but wrong: start again
                file.set_len(0)
                    .await
                    .map_err(|e| io("truncate partial blob", e))?;
                restarted = true;
                continue;
            }
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| io("seek partial blob", e))?;
            if offset > 0 {
                if let Some(p) = progress {
                    p(&desc.digest, offset, desc.size);
                }
            }
            let resume = (offset > 0).then_some(Resume { offset, hasher });
            let mut w = tokio::io::BufWriter::with_capacity(BLOB_WRITE_BUFFER, &mut file);
            let r = self
                .fetch_blob_resuming(desc, &mut w, progress, resume)
                .await;
            let flushed = w.flush().await;
            drop(w);
            match r {
                Ok(Fetched::Done(n)) => {
                    flushed.map_err(|e| io("write blob", e))?;
                    return Ok(ResumableFetch {
                        resumed_from: offset,
                        downloaded: n - offset,
                        restarted,
                    });
                }
                Ok(Fetched::RangeIgnored) | Err(Error::DigestMismatch { .. }) if offset > 0 => {
                    file.set_len(0)
                        .await
                        .map_err(|e| io("truncate partial blob", e))?;
                    restarted = true;
                }
                Ok(Fetched::RangeIgnored) => {
                    return Err(Error::Protocol {
                        host: self.host.clone(),
                        message: "range ignored without a resume".into(),
                    })
                }
                // a transfer that ended short is resumable; content that does not match is not
                Err(
                    e @ Error::SizeMismatch {
                        actual, expected, ..
                    },
                ) if actual < expected => return Err(e),
                Err(e @ (Error::DigestMismatch { .. } | Error::SizeMismatch { .. })) => {
                    let _ = file.set_len(0).await;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn docker_content_digest() -> HeaderName {
    HeaderName::from_static("docker-content-digest")
}

fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    header_str(h, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Client>();
    is::<Repository>();
    let _ = SecretString::new("");
}
