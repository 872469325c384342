//! The client: authentication, redirects, retries, resolve by name, fetch by digest.
//!
//! - this module: [`Client`] (transports, repository handles), [`Repository`], the limits;
//! - `auth`: challenges, Basic, the Docker token flow and the token cache;
//! - `request`: one logical request (credentials by origin, redirects, retries, bounded reads);
//! - `resolve`: tag or digest to a verified manifest, platform selection, the credential loop;
//! - `blob`: verified, resumable blob downloads into a partial file;
//! - `push`: chunked, digest-checked uploads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use kubepull_core::reference::{Digest, Reference};
use sha2::Digest as _;
use url::Url;

use crate::auth::{Clock, RegistryCredential, SecretString, SystemClock, TokenCache, TokenKey};
use crate::challenge::Challenge;
use crate::error::{Error, PolicyViolation, Result};
use crate::hosts::RegistryHost;
use crate::manifest::{Descriptor, ImageManifest, Manifest, Platform};
use crate::policy::{self, host_label, Zone};
use crate::transport::{
    HttpsTransport, PinnedResolver, Resolver, SystemResolver, TlsConfig, Transport,
};

mod auth;
mod blob;
pub(crate) mod push;
mod request;
mod resolve;

use blob::Hasher;
pub use blob::{ConfirmingHost, ResumableFetch};

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

/// Where one request may go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// To the registry: credentials attached while on the registry's origin.
    Registry,
    /// A foreign URL: never credentials.
    Never,
}

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
