//! The transport seam: one HTTP exchange, no redirects, no authentication, no retries.
//!
//! All policy (auth, redirects, retries, limits, verification) lives above this trait in
//! [`crate::Client`], so a test can script a hostile server in-process by implementing
//! [`Transport`] and a real deployment uses [`HttpsTransport`]. The [`Resolver`] seam answers
//! "what addresses does this host have" for the realm and redirect policy, so tests never need
//! to connect to (or resolve) a metadata address.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A response body: a stream of chunks that may fail mid-way (a dropped connection).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// One HTTP request. The `Authorization` header, when present, is marked sensitive and
/// redacted from `Debug`.
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: Url,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (token POST forms only).
    pub body: Option<Bytes>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let redact = k == http::header::AUTHORIZATION || v.is_sensitive();
                (
                    k.as_str(),
                    if redact {
                        "<redacted>"
                    } else {
                        v.to_str().unwrap_or("<binary>")
                    },
                )
            })
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &crate::policy::sanitize_url(&self.url))
            .field("headers", &headers)
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("<{} bytes>", b.len())),
            )
            .finish()
    }
}

/// One HTTP response with a streamed body.
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: BodyStream,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Response {
    /// A response with an in-memory body (handy for scripted transports).
    pub fn from_bytes(status: StatusCode, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        let body: Bytes = body.into();
        Response {
            status,
            headers,
            body: Box::pin(futures_util::stream::iter(if body.is_empty() {
                vec![]
            } else {
                vec![Ok(body)]
            })),
        }
    }
}

/// The classes of transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// Name resolution failed.
    Dns,
    /// The TCP connection failed.
    Connect,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// A timeout elapsed.
    Timeout,
    /// The connection broke while reading the body.
    Body,
    /// Anything else.
    Other,
}

/// A transport failure. Its message is ours or the HTTP library's, never a header value.
#[derive(Debug, thiserror::Error)]
#[error("{kind_text}: {message}", kind_text = kind_text(self.kind))]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
}

fn kind_text(k: TransportErrorKind) -> &'static str {
    match k {
        TransportErrorKind::Dns => "dns lookup failed",
        TransportErrorKind::Connect => "connection failed",
        TransportErrorKind::Tls => "tls failed",
        TransportErrorKind::Timeout => "timed out",
        TransportErrorKind::Body => "connection broke while reading the body",
        TransportErrorKind::Other => "http error",
    }
}

impl TransportError {
    /// A new error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// The class.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }
}

/// Sends one HTTP request and returns the response headers with a streamed body. It must not
/// follow redirects and must not add credentials: [`crate::Client`] does both, by policy.
pub trait Transport: Send + Sync + 'static {
    /// Sends `req`.
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>>;
}

/// Answers which addresses a host has, for the realm and redirect policy
/// ([`crate::policy`]). IP literals never reach it.
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host`.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>>;
}

/// The system resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host, port))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A fixed host → addresses table; unknown hosts fail to resolve. For tests, and for nodes
/// that pin registry addresses.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    table: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `host` (case-insensitive) with `addrs`.
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.table.insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        let r = self
            .table
            .get(&host.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host"));
        Box::pin(async move { r })
    }
}

/// How long an answer stays pinned: the policy's check and every connection within this time
/// use the same addresses (a DNS TTL below it is ignored on purpose: that is what DNS
/// rebinding abuses).
pub const PIN_TTL: Duration = Duration::from_secs(300);

/// Most host names pinned at once; expired pins go first, then all (a new lookup follows).
pub const MAX_PINS: usize = 1024;

/// DNS pinning: the one resolver both the destination/realm policy and the connections use.
///
/// A name the policy resolved (and checked) is connected to at exactly the addresses it
/// resolved to, for [`PIN_TTL`]: a DNS server that answers a public address to the check and
/// `169.254.169.254` to the connection (DNS rebinding) gets its first answer used for both.
/// A name first seen by a connection is resolved once and pinned the same way.
pub struct PinnedResolver {
    inner: Arc<dyn Resolver>,
    pins: std::sync::Mutex<HashMap<String, (Vec<IpAddr>, std::time::Instant)>>,
}

impl fmt::Debug for PinnedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedResolver").finish_non_exhaustive()
    }
}

impl PinnedResolver {
    /// Pins the answers of `inner`.
    pub fn new(inner: Arc<dyn Resolver>) -> Self {
        PinnedResolver {
            inner,
            pins: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn pinned(&self, host: &str) -> Option<Vec<IpAddr>> {
        let pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        pins.get(host)
            .filter(|(_, at)| at.elapsed() < PIN_TTL)
            .map(|(a, _)| a.clone())
    }

    fn pin(&self, host: String, addrs: Vec<IpAddr>) {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        if pins.len() >= MAX_PINS {
            pins.retain(|_, (_, at)| at.elapsed() < PIN_TTL);
            if pins.len() >= MAX_PINS {
                pins.clear();
            }
        }
        pins.insert(host, (addrs, std::time::Instant::now()));
    }

    /// The addresses to connect to for `host`: the pinned answer while fresh, else a new
    /// lookup, pinned.
    pub async fn connect_addrs(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(a) = self.pinned(&key) {
            return Ok(a);
        }
        let a = self.inner.resolve(&key, port).await?;
        if a.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no addresses",
            ));
        }
        self.pin(key, a.clone());
        Ok(a)
    }
}

impl Resolver for PinnedResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        Box::pin(self.connect_addrs(host, port))
    }
}

/// Adapts a [`PinnedResolver`] to reqwest's resolver hook.
struct ReqwestResolver(Arc<PinnedResolver>);

impl reqwest::dns::Resolve for ReqwestResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let r = self.0.clone();
        Box::pin(async move {
            // port 0: the connector puts the URL's port in
            let addrs = r.connect_addrs(name.as_str(), 0).await?;
            let it: reqwest::dns::Addrs = Box::new(
                addrs
                    .into_iter()
                    .map(|ip| std::net::SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(it)
        })
    }
}

/// TLS settings of [`HttpsTransport`].
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// Extra trusted CA certificates, PEM (containerd `hosts.toml` `ca`).
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Whether to trust the system's CA store too (default: yes when built with
    /// [`TlsConfig::system`]).
    pub system_roots: bool,
    /// A client certificate and its private key, PEM, concatenated (containerd
    /// `hosts.toml` `client`). The key is secret: never shown by `Debug`.
    pub client_identity_pem: Option<Vec<u8>>,
    /// Do not verify the server certificate at all (containerd `hosts.toml`
    /// `skip_verify`). Credentials still go to such a host when the keyring has them for it:
    /// whoever sets this accepts that a machine in the middle sees them.
    pub skip_verify: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("extra_roots_pem", &self.extra_roots_pem.len())
            .field("system_roots", &self.system_roots)
            .field(
                "client_identity_pem",
                &self.client_identity_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

impl TlsConfig {
    /// The system CA store only.
    pub fn system() -> Self {
        TlsConfig {
            system_roots: true,
            ..TlsConfig::default()
        }
    }

    /// Only the given CA (PEM), no system roots: what tests with a private CA use.
    pub fn private_ca(pem: impl Into<Vec<u8>>) -> Self {
        TlsConfig {
            extra_roots_pem: vec![pem.into()],
            ..TlsConfig::default()
        }
    }
}

/// Connection timeout of [`HttpsTransport`]: a registry that does not accept a TCP connection
/// and finish the TLS handshake in this time is treated as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The real transport: reqwest over rustls (no native TLS, no OpenSSL), HTTP/1.1 with
/// connection pooling, redirects disabled (the client follows them by policy).
///
/// HTTP/1.1 only, as skopeo (containers/image) speaks to registries: each blob downloading at
/// once gets a connection of its own, so the registry encrypts and the client decrypts them on
/// every core, and no blob waits behind another's flow-control window. Over one multiplexed
/// HTTP/2 connection (what ALPN picked with `docker-registry` before) the same pulls took
/// longer on loopback (README, "HTTP/1.1 connections" under Benchmarks).
#[derive(Clone, Debug)]
pub struct HttpsTransport {
    client: reqwest::Client,
}

impl HttpsTransport {
    /// A transport with the given TLS trust, resolving names with the system resolver
    /// (without pinning: prefer [`HttpsTransport::with_resolver`]).
    pub fn new(tls: &TlsConfig) -> Result<Self, TransportError> {
        Self::build(tls, None)
    }

    /// A transport that connects only to the addresses `resolver` pinned: the ones the
    /// destination and realm policy checked ([`PinnedResolver`]).
    pub fn with_resolver(
        tls: &TlsConfig,
        resolver: Arc<PinnedResolver>,
    ) -> Result<Self, TransportError> {
        Self::build(tls, Some(resolver))
    }

    fn build(
        tls: &TlsConfig,
        resolver: Option<Arc<PinnedResolver>>,
    ) -> Result<Self, TransportError> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("kubepull/", env!("CARGO_PKG_VERSION")))
            .tls_built_in_root_certs(tls.system_roots)
            .use_rustls_tls()
            .http1_only();
        for pem in &tls.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                TransportError::new(TransportErrorKind::Tls, format!("bad ca certificate: {e}"))
            })?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(pem) = &tls.client_identity_pem {
            let id = reqwest::Identity::from_pem(pem).map_err(|_| {
                TransportError::new(
                    TransportErrorKind::Tls,
                    "bad client certificate or key (expected pem certificate and private key)",
                )
            })?;
            b = b.identity(id);
        }
        if tls.skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(r) = resolver {
            b = b.dns_resolver(Arc::new(ReqwestResolver(r)));
        }
        let client = b
            .build()
            .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))?;
        Ok(HttpsTransport { client })
    }
}

/// Classifies a reqwest error by walking its cause chain.
fn classify(e: &reqwest::Error) -> TransportError {
    let mut chain = String::new();
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    let kind = if lower.contains("dns error") || lower.contains("failed to lookup address") {
        TransportErrorKind::Dns
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalid peer")
    {
        TransportErrorKind::Tls
    } else if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_connect()
        || lower.contains("connection closed")
        || lower.contains("connection reset")
        || lower.contains("broken pipe")
        || lower.contains("channel closed")
    {
        // also a server that drops the connection before answering (a TLS 1.3 server
        // refusing a missing client certificate does exactly that)
        TransportErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        TransportErrorKind::Body
    } else {
        TransportErrorKind::Other
    };
    // reqwest's message carries the URL; ours never hold credentials, but errors get the
    // sanitized form anyway (no query, no userinfo).
    let message = match e.url() {
        Some(u) => chain.replace(u.as_str(), &crate::policy::sanitize_url(u)),
        None => chain,
    };
    TransportError::new(kind, message)
}

impl Transport for HttpsTransport {
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            let mut rb = self
                .client
                .request(req.method, req.url)
                .headers(req.headers);
            if let Some(body) = req.body {
                rb = rb.body(body);
            }
            let resp = rb.send().await.map_err(|e| classify(&e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes_stream().map(|r| {
                r.map_err(|e| {
                    let mut t = classify(&e);
                    if t.kind == TransportErrorKind::Other {
                        t.kind = TransportErrorKind::Body;
                    }
                    t
                })
            });
            Ok(Response {
                status,
                headers,
                body: Box::pin(body),
            })
        })
    }
}
