//! Credentials, the Docker token flow and the token cache.
//!
//! Ported from distribution `registry/client/auth/session.go` (`tokenHandler.getToken`,
//! `fetchTokenWithBasicAuth`, `fetchTokenWithOAuth`, `minimumTokenLifetimeSeconds`) and
//! containerd `core/remotes/docker/auth/fetch.go` (`FetchToken`, `FetchTokenWithOAuth`,
//! `access_token` canonicalised into `token`):
//!
//! - a username/password credential asks the realm with `GET ?service=…&scope=…` and Basic
//!   authentication;
//! - an identity token (the `identitytoken` of a docker config, an OAuth2 refresh token) uses
//!   the OAuth2 `POST` grant `grant_type=refresh_token`;
//! - no credential: anonymous `GET`;
//! - the response may name the token `token` or `access_token` (krustlet/krustlet#255);
//!   `expires_in` below 60 s or missing means 60 s.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Largest token response we read. Real ones are JWTs of a few KiB (with an `x5c` chain up to
/// ~10 KiB); bounding the read stops a hostile realm from exhausting memory
/// (google/go-containerregistry#2296, unbounded body reads).
pub const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;

/// Lifetime of a token whose response has no (or a shorter) `expires_in` (distribution
/// `registry/client/auth/session.go`, `minimumTokenLifetimeSeconds`).
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Longest lifetime we cache a token for, whatever `expires_in` says: a revoked credential
/// stops working within this time.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Most tokens kept in a [`TokenCache`]; expired entries are evicted first.
pub const MAX_CACHED_TOKENS: usize = 1024;

/// The OAuth2 `client_id` sent with `POST` grants (containerd sends `containerd-client`).
pub const OAUTH_CLIENT_ID: &str = "kubepull";

/// A secret string: redacted in `Debug` and `Display`-less.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        })
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Secret {
    Password {
        username: String,
        password: SecretString,
    },
    IdentityToken {
        token: SecretString,
    },
}

/// One credential for one registry, with where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    source: String,
    secret: Secret,
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RegistryCredential");
        d.field("source", &self.source);
        match &self.secret {
            Secret::Password { username, password } => {
                d.field("username", username).field("password", password)
            }
            Secret::IdentityToken { token } => d.field("identity_token", token),
        };
        d.finish()
    }
}

impl RegistryCredential {
    /// A username/password credential; `source` names it in errors (`secret/regcred`).
    pub fn basic(
        source: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        RegistryCredential {
            source: source.into(),
            secret: Secret::Password {
                username: username.into(),
                password: SecretString::new(password),
            },
        }
    }

    /// An identity (OAuth2 refresh) token credential.
    pub fn identity_token(source: impl Into<String>, token: impl Into<String>) -> Self {
        RegistryCredential {
            source: source.into(),
            secret: Secret::IdentityToken {
                token: SecretString::new(token),
            },
        }
    }

    /// A credential the kubelet keyring returned (`kubepull_core::keyring`), named by its
    /// source (`secret/NAME` or `node`).
    pub fn from_keyring(c: &kubepull_core::keyring::Credential) -> Self {
        Self::basic(c.source.to_string(), &c.username, &c.password)
    }

    /// Where it came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The username, for a username/password credential.
    pub fn username(&self) -> Option<&str> {
        match &self.secret {
            Secret::Password { username, .. } => Some(username),
            Secret::IdentityToken { .. } => None,
        }
    }

    /// A stable identity for cache keys: SHA-256 over the kind, username and secret. It is
    /// not reversible into the secret and is never shown.
    pub(crate) fn identity(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        match &self.secret {
            Secret::Password { username, password } => {
                h.update(b"password\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(password.expose().as_bytes());
            }
            Secret::IdentityToken { token } => {
                h.update(b"identity\0");
                h.update(token.expose().as_bytes());
            }
        }
        h.finalize().into()
    }

    /// The `Authorization: Basic …` value, when this credential can make one.
    pub(crate) fn basic_header(&self) -> Option<String> {
        use base64::Engine as _;
        match &self.secret {
            Secret::Password { username, password } if !password.expose().is_empty() => {
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose()))
                ))
            }
            _ => None,
        }
    }

    /// The refresh token of an identity-token credential.
    pub(crate) fn refresh_token(&self) -> Option<&str> {
        match &self.secret {
            Secret::IdentityToken { token } => Some(token.expose()),
            Secret::Password { .. } => None,
        }
    }
}

/// A clock seam: the token cache asks it for "now".
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The token endpoint's JSON answer (distribution `getTokenResponse`, containerd
/// `FetchTokenResponse`/`OAuthTokenResponse`).
#[derive(Deserialize)]
struct TokenResponseJson {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// A parsed token response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The bearer token.
    pub token: SecretString,
    /// How long to use it.
    pub lifetime: Duration,
}

/// Why a token response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenResponseError {
    /// Not JSON, or not an object of the right shape.
    #[error("token response is not valid json")]
    Json,
    /// Neither `token` nor `access_token`.
    #[error("token response holds no token")]
    NoToken,
    /// The token cannot go into an HTTP header.
    #[error("token has characters not allowed in an http header")]
    BadToken,
}

/// Parses a token response body: `access_token` wins over `token` (containerd
/// `auth/fetch.go`, `FetchToken`), empty means absent, `expires_in` is clamped to
/// [`MIN_TOKEN_LIFETIME`]..=[`MAX_TOKEN_LIFETIME`].
pub fn parse_token_response(body: &[u8]) -> Result<TokenResponse, TokenResponseError> {
    let j: TokenResponseJson =
        serde_json::from_slice(body).map_err(|_| TokenResponseError::Json)?;
    let token = j
        .access_token
        .filter(|t| !t.is_empty())
        .or(j.token.filter(|t| !t.is_empty()))
        .ok_or(TokenResponseError::NoToken)?;
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenResponseError::BadToken);
    }
    let secs = j.expires_in.unwrap_or(0).max(0) as u64;
    let lifetime = Duration::from_secs(secs).clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
    Ok(TokenResponse {
        token: SecretString::new(token),
        lifetime,
    })
}

/// What a token is for: a token is only ever reused for the same registry, repository, actions
/// and credential (§11.8: one tenant's token is never served to another).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// The repository path.
    pub repository: String,
    /// The actions, sorted (`pull`).
    pub actions: Vec<String>,
    /// A SHA-256 identity of the credential (kind, username, secret), or `None` for
    /// anonymous.
    pub credential: Option<[u8; 32]>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("registry", &self.registry)
            .field("repository", &self.repository)
            .field("actions", &self.actions)
            .field("credential", &self.credential.map(|_| "<identity>"))
            .finish()
    }
}

/// A bounded cache of bearer tokens with expiry, keyed by [`TokenKey`].
///
/// It also serializes token fetches per key ([`TokenCache::flight`]): when many requests
/// for the same scope miss the cache at once (parallel layer downloads), one fetches the
/// token and the others wait for it and then find it cached (single-flight).
pub struct TokenCache {
    clock: Box<dyn Clock>,
    entries: Mutex<HashMap<TokenKey, (SecretString, Instant)>>,
    flights: Mutex<HashMap<TokenKey, Weak<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.entries.lock().map(|e| e.len()).unwrap_or(0))
            .finish()
    }
}

impl TokenCache {
    /// An empty cache on `clock`.
    pub fn new(clock: Box<dyn Clock>) -> Self {
        TokenCache {
            clock,
            entries: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The fetch lock of `key`: hold it while checking the cache again and fetching, so
    /// concurrent misses for one key make one token request. Locks nobody holds any more
    /// are dropped on the next call.
    pub fn flight(&self, key: &TokenKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut f = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = f.get(key).and_then(Weak::upgrade) {
            return a;
        }
        f.retain(|_, w| w.strong_count() > 0);
        let a = Arc::new(tokio::sync::Mutex::new(()));
        f.insert(key.clone(), Arc::downgrade(&a));
        a
    }

    /// A live token for `key`.
    pub fn get(&self, key: &TokenKey) -> Option<SecretString> {
        let now = self.clock.now();
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e.get(key) {
            Some((t, exp)) if *exp > now => Some(t.clone()),
            Some(_) => {
                e.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores a token for `lifetime` from now.
    pub fn insert(&self, key: TokenKey, token: SecretString, lifetime: Duration) {
        let now = self.clock.now();
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() >= MAX_CACHED_TOKENS {
            e.retain(|_, (_, exp)| *exp > now);
            if e.len() >= MAX_CACHED_TOKENS {
                e.clear();
            }
        }
        e.insert(key, (token, now + lifetime));
    }

    /// Forgets `key` (after the registry rejected its token).
    pub fn remove(&self, key: &TokenKey) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_variants() {
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.token.expose(), "abc");
        assert_eq!(t.lifetime, Duration::from_secs(300));
        let t = parse_token_response(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t.token.expose(), "xyz");
        assert_eq!(t.lifetime, MIN_TOKEN_LIFETIME);
        let t = parse_token_response(br#"{"token":"","access_token":"a","expires_in":5}"#).unwrap();
        assert_eq!((t.token.expose(), t.lifetime), ("a", MIN_TOKEN_LIFETIME));
        let t = parse_token_response(br#"{"token":"a","expires_in":99999999}"#).unwrap();
        assert_eq!(t.lifetime, MAX_TOKEN_LIFETIME);
        assert_eq!(
            parse_token_response(b"{\"token\":"),
            Err(TokenResponseError::Json)
        );
        assert_eq!(parse_token_response(b"[1]"), Err(TokenResponseError::Json));
        assert_eq!(
            parse_token_response(br#"{"expires_in":60}"#),
            Err(TokenResponseError::NoToken)
        );
        assert_eq!(
            parse_token_response(br#"{"token":"a\r\nX-Evil: 1"}"#),
            Err(TokenResponseError::BadToken)
        );
        assert_eq!(
            parse_token_response(br#"{"token":"a","expires_in":"soon"}"#),
            Err(TokenResponseError::Json)
        );
    }

    struct Manual(Mutex<Instant>);
    impl Clock for Arc<Manual> {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    #[test]
    fn cache_expiry_and_keys() {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        let cache = TokenCache::new(Box::new(clock.clone()));
        let a = RegistryCredential::basic("secret/a", "u", "p1");
        let b = RegistryCredential::basic("secret/b", "u", "p2");
        let key = |c: &RegistryCredential| TokenKey {
            registry: "r".into(),
            repository: "x".into(),
            actions: vec!["pull".into()],
            credential: Some(c.identity()),
        };
        cache.insert(key(&a), SecretString::new("ta"), Duration::from_secs(60));
        assert_eq!(cache.get(&key(&a)).unwrap().expose(), "ta");
        assert!(cache.get(&key(&b)).is_none(), "another credential's token");
        let mut other_repo = key(&a);
        other_repo.repository = "y".into();
        assert!(cache.get(&other_repo).is_none());
        *clock.0.lock().unwrap() += Duration::from_secs(61);
        assert!(cache.get(&key(&a)).is_none(), "expired");
    }

    #[test]
    fn debug_is_redacted() {
        let pw = "hunter2-very-secret";
        let c = RegistryCredential::basic("secret/x", "alice", pw);
        let i = RegistryCredential::identity_token("node", pw);
        for s in [format!("{c:?}"), format!("{i:?}")] {
            assert!(!s.contains(pw), "{s}");
        }
        assert!(format!("{c:?}").contains("alice"));
    }
}
