//! The kubelet's credential keyring: which credentials a pull of an image tries, in which order.
//!
//! Ported from kubernetes `pkg/credentialprovider/keyring.go` (`BasicDockerKeyring.Add`,
//! `BasicDockerKeyring.Lookup`, `isDefaultRegistryMatch`, `UnionDockerKeyring.Lookup`),
//! `pkg/credentialprovider/config.go` (`ParseSchemelessURL`, `SplitURL`, `URLsMatch`,
//! `URLsMatchStr`), `pkg/credentialprovider/secrets/secrets.go` (`MakeDockerKeyring`,
//! `secretsToTrackedDockerConfigs`) and `pkg/credentialprovider/keyring.go`'s credential hash
//! (`TrackedAuthConfig`). Go's `net/url.Parse`, `net.SplitHostPort` and `path/filepath.Match`
//! are emulated as far as registry keys and image names exercise them.
//!
//! The rules that matter most (spec §3, §13):
//! - every matching key contributes, most specific (descending byte order) first;
//! - a `*` globs exactly one host label, label counts must be equal, ports must be equal strings,
//!   and a key path is a plain string prefix of the image path;
//! - Docker Hub credentials (`index.docker.io`) apply only through the fallback, when nothing
//!   else matched;
//! - pod secrets come before the node's config, and once any credential matches there is no
//!   anonymous attempt.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kubepull_core::keyring::{resolve, PullSecret};
//!
//! let mut data = BTreeMap::new();
//! data.insert(".dockerconfigjson".to_string(),
//!     br#"{"auths":{"registry.example.com":{"username":"alice","password":"s3cret"}}}"#.to_vec());
//! let secret = PullSecret { name: "regcred".into(), secret_type: "kubernetes.io/dockerconfigjson".into(), data };
//! let r = resolve("registry.example.com/team/app:v1", &[secret], None).unwrap();
//! assert_eq!(r.credentials[0].username, "alice");
//! assert_eq!(r.credentials[0].source.to_string(), "secret/regcred");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::dockerconfig::{self, redacted, DecodeError, DockerConfig};
use crate::reference::{self, ImageNameError};

/// The keyring key Docker Hub credentials land under (`defaultRegistryHost`).
pub const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

/// Where a credential came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// A pod pull secret.
    Secret {
        /// The Secret's name.
        name: String,
    },
    /// The node's docker config.
    Node,
    /// A raw legacy map added directly (upstream unit tests).
    Dockercfg,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Secret { name } => write!(f, "secret/{name}"),
            CredentialSource::Node => f.write_str("node"),
            CredentialSource::Dockercfg => f.write_str("dockercfg"),
        }
    }
}

/// One credential the kubelet would try (`TrackedAuthConfig`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
    /// The email.
    pub email: String,
    /// Where it came from.
    pub source: CredentialSource,
    /// The registry key as written in the config.
    pub config_key: String,
    /// The normalized keyring key it is stored under.
    pub keyring_key: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("email", &self.email)
            .field("source", &self.source)
            .field("config_key", &self.config_key)
            .field("keyring_key", &self.keyring_key)
            .finish()
    }
}

impl Credential {
    /// The credential hash the kubelet records for ensure-secret-pulled images: SHA-256 hex of
    /// Go's JSON encoding of `{username, password, email}`, empty fields omitted.
    pub fn credential_hash(&self) -> String {
        use sha2::Digest as _;
        let mut json = Vec::from(&b"{"[..]);
        let mut first = true;
        for (name, value) in [
            ("username", &self.username),
            ("password", &self.password),
            ("email", &self.email),
        ] {
            if value.is_empty() {
                continue;
            }
            if !first {
                json.push(b',');
            }
            first = false;
            json.extend_from_slice(format!("\"{name}\":").as_bytes());
            json.extend_from_slice(&crate::gojson::encode::quote(value.as_bytes()));
        }
        json.push(b'}');
        let sum = sha2::Sha256::digest(&json);
        sum.iter().map(|b| format!("{b:02x}")).collect()
    }
}

// ---- Go net/url emulation ---------------------------------------------------------------------

/// The parts of a Go `*url.URL` the keyring reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GoUrl {
    host: String,
    path: String,
}

fn is_unhex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The `net/url` escaping modes the keyring's parsing goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// `encodeHost`.
    Host,
    /// `encodeZone`.
    Zone,
    /// `encodePath`, `encodeUserPassword`, `encodeFragment`: only bad escapes fail.
    Other,
}

/// Go `net/url.unescape` (a `+` is kept, as in every mode but `encodeQueryComponent`).
fn go_unescape(s: &str, mode: Escape) -> Result<String, String> {
    let host_like = matches!(mode, Escape::Host | Escape::Zone);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&x| is_unhex_digit(x)),
                b.get(i + 2).and_then(|&x| is_unhex_digit(x)),
            ) else {
                return Err("invalid URL escape".into());
            };
            // RFC 3986: in the host, %-encoding is only for non-ASCII bytes (and %25).
            if mode == Escape::Host && h < 8 && &b[i..i + 3] != b"%25" {
                return Err("invalid URL escape".into());
            }
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        if host_like && c < 0x80 && host_char_needs_escape(c) {
            return Err(format!("invalid character {:?} in host name", c as char));
        }
        out.push(c);
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go `net/url.shouldEscape(c, encodeHost)`.
fn host_char_needs_escape(c: u8) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
                | b'-'
                | b'_'
                | b'.'
                | b'~'
        ))
}

/// Go `net/url.validOptionalPort`.
fn valid_optional_port(p: &str) -> bool {
    p.is_empty() || (p.starts_with(':') && p[1..].bytes().all(|c| c.is_ascii_digit()))
}

/// Go `net/url.parseHost` as recent toolchains have it (after the bracketed-host hardening of
/// CVE-2025-47912): a `[` anywhere but at the start is an invalid IP-literal, and a bracketed host
/// must hold an IPv6 address (`netip.ParseAddr`, IPv4 rejected), optionally with a `%25` zone.
fn go_parse_host(host: &str) -> Result<String, String> {
    match host.rfind('[') {
        Some(i) if i > 0 => Err("invalid IP-literal".into()),
        Some(_) => {
            let Some(close) = host.rfind(']') else {
                return Err("missing ']' in host".into());
            };
            let colon_port = &host[close + 1..];
            if !valid_optional_port(colon_port) {
                return Err(format!("invalid port {colon_port:?} after host"));
            }
            let colon_port = go_unescape(colon_port, Escape::Host)?;
            // `close > 0` here: the `[` is at 0, and `rfind` finds the last `]`.
            let hostname = host.get(1..close).unwrap_or_default();
            let unescaped = match hostname.find("%25") {
                Some(z) => {
                    go_unescape(&hostname[..z], Escape::Host)?
                        + &go_unescape(&hostname[z..], Escape::Zone)?
                }
                None => go_unescape(hostname, Escape::Host)?,
            };
            if !is_ipv6_addr(&unescaped) {
                return Err("invalid host".into());
            }
            Ok(format!("[{unescaped}]{colon_port}"))
        }
        None => {
            if let Some(i) = host.rfind(':') {
                let port = &host[i..];
                if !valid_optional_port(port) {
                    return Err(format!("invalid port {port:?} after host"));
                }
            }
            go_unescape(host, Escape::Host)
        }
    }
}

/// Whether `netip.ParseAddr` accepts `s` as an IPv6 address (with an optional non-empty zone);
/// IPv4 addresses, which `parseHost` rejects inside brackets, are `false`.
fn is_ipv6_addr(s: &str) -> bool {
    let (addr, zone) = match s.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (s, None),
    };
    if zone == Some("") {
        return false;
    }
    addr.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Go `net/url.validUserinfo` (non-ASCII is rejected: Go ranges over runes).
fn valid_userinfo(s: &str) -> bool {
    s.bytes().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b':'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b'@'
            )
    })
}

/// Go `net/url.Parse` for `scheme://authority/path?query#fragment` input.
fn go_url_parse(raw: &str) -> Result<GoUrl, String> {
    let (raw, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    let Some((_, mut rest)) = raw.split_once("://") else {
        return Err("missing scheme".into());
    };
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((r, _query)) = rest.split_once('?') {
        rest = r;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            if !valid_userinfo(userinfo) {
                return Err("net/url: invalid userinfo".into());
            }
            // `parseAuthority` unescapes username and password; only a bad escape fails.
            for part in userinfo.splitn(2, ':') {
                go_unescape(part, Escape::Other)?;
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    let host = go_parse_host(host)?;
    let path = go_unescape(path, Escape::Other)?;
    // `Parse` then sets the fragment (`setFragment`), which fails on a bad escape.
    go_unescape(fragment, Escape::Other)?;
    Ok(GoUrl { host, path })
}

/// `ParseSchemelessURL`.
fn parse_schemeless_url(s: &str) -> Result<GoUrl, String> {
    go_url_parse(&format!("https://{s}"))
}

/// Go `net.SplitHostPort`; `None` where Go returns an error.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let i = hostport.rfind(':')?;
    let (host, j, k);
    if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != i {
            return None;
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..i];
        if host.contains(':') {
            return None;
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') || hostport[k..].contains(']') {
        return None;
    }
    Some((host, &hostport[i + 1..]))
}

/// `SplitURL`: host labels and port (empty when there is none or it does not parse).
fn split_url(u: &GoUrl) -> (Vec<&str>, &str) {
    let (host, port) = split_host_port(&u.host).unwrap_or((&u.host, ""));
    (host.split('.').collect(), port)
}

/// Go `path/filepath.Match` (Unix; upstream `config.go` `URLsMatch` calls it per host label),
/// ported byte for byte from Go's `path/filepath/match.go` (`Match`, `scanChunk`, `matchChunk`,
/// `getEsc`): `*`, `?`, `[...]` classes and `\` escapes. A malformed pattern is an error in Go,
/// which `URLsMatch` reports and `BasicDockerKeyring.Lookup` treats as no match, so it is `false`.
fn glob_match(pattern: &str, name: &str) -> bool {
    go_match(pattern.as_bytes(), name.as_bytes()).unwrap_or(false)
}

/// Go's path separator on Unix.
const SEPARATOR: u8 = b'/';

/// Go `utf8.DecodeRuneInString`: `(rune, width)`; `(U+FFFD, 1)` for an invalid byte and
/// `(U+FFFD, 0)` for empty input.
fn decode_rune(s: &[u8]) -> (char, usize) {
    if s.is_empty() {
        return (char::REPLACEMENT_CHARACTER, 0);
    }
    let max = s.len().min(4);
    for w in 1..=max {
        if let Ok(t) = std::str::from_utf8(&s[..w]) {
            if let Some(c) = t.chars().next() {
                return (c, w);
            }
        }
    }
    (char::REPLACEMENT_CHARACTER, 1)
}

/// Go `filepath.Match`; `None` is `ErrBadPattern`.
fn go_match(mut pattern: &[u8], mut name: &[u8]) -> Option<bool> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // Trailing * matches rest of string unless it has a /.
            return Some(!name.contains(&SEPARATOR));
        }
        // Look for match at current position.
        let r = match_chunk(chunk, name);
        // if we're the last chunk, make sure we've exhausted the name
        if let Ok(Some(t)) = r {
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        r.ok()?;
        if star {
            // Look for match skipping i+1 bytes. Cannot skip /.
            let mut i = 0;
            while i < name.len() && name[i] != SEPARATOR {
                match match_chunk(chunk, &name[i + 1..]) {
                    Ok(Some(t)) => {
                        // if we're the last chunk, make sure we exhausted the name
                        if pattern.is_empty() && !t.is_empty() {
                            i += 1;
                            continue;
                        }
                        name = t;
                        continue 'pattern;
                    }
                    Ok(None) => {}
                    Err(()) => return None,
                }
                i += 1;
            }
        }
        // Before returning false with no error, check that the remainder of the pattern is
        // syntactically valid.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"").ok()?;
        }
        return Some(false);
    }
    Some(name.is_empty())
}

/// Go `scanChunk`: `(star, chunk, rest)`.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut inrange = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            // A trailing `\\` is left for matchChunk to report as a bad pattern.
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => inrange = true,
            b']' => inrange = false,
            b'*' if !inrange => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Go `matchChunk`: `Ok(Some(rest))` on a match, `Ok(None)` on a mismatch, `Err` for a bad
/// pattern. After a mismatch the chunk is still parsed, to report bad patterns.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, ()> {
    let mut failed = false;
    while let Some(&c0) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c0 {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == SEPARATOR {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if c0 == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(());
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok((!failed).then_some(s))
}

/// Go `getEsc`: one (possibly escaped) range endpoint of a character class.
fn get_esc(mut chunk: &[u8]) -> Result<(char, &[u8]), ()> {
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(());
    }
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(());
        }
    }
    let (r, n) = decode_rune(chunk);
    if r == char::REPLACEMENT_CHARACTER && n == 1 {
        return Err(());
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(());
    }
    Ok((r, rest))
}

/// `URLsMatchStr`: whether keyring key `key` matches lookup key `target` (both schemeless).
pub fn urls_match(key: &str, target: &str) -> bool {
    let (Ok(g), Ok(t)) = (parse_schemeless_url(key), parse_schemeless_url(target)) else {
        return false;
    };
    let (g_parts, g_port) = split_url(&g);
    let (t_parts, t_port) = split_url(&t);
    if g_port != t_port || g_parts.len() != t_parts.len() || !t.path.starts_with(&g.path) {
        return false;
    }
    g_parts
        .iter()
        .zip(&t_parts)
        .all(|(gp, tp)| glob_match(gp, tp))
}

/// The keyring key a config key is stored under (`BasicDockerKeyring.Add`), or `None` when the
/// kubelet skips the entry because the key does not parse as a URL.
pub fn normalize_registry_key(config_key: &str) -> Option<String> {
    let value = if config_key.starts_with("https://") || config_key.starts_with("http://") {
        config_key.to_string()
    } else {
        format!("https://{config_key}")
    };
    let u = go_url_parse(&value).ok()?;
    let mut path = u.path.as_str();
    if path.starts_with("/v2/") || path.starts_with("/v1/") {
        path = &path[3..];
    }
    Some(if !path.is_empty() && path != "/" {
        format!("{}{}", u.host, path)
    } else {
        u.host
    })
}

/// `isDefaultRegistryMatch`: whether a lookup key pulls from Docker Hub by its shape.
fn is_default_registry_match(image: &str) -> bool {
    let mut parts = image.splitn(2, '/');
    let first = parts.next().unwrap_or_default();
    if first.is_empty() {
        return false;
    }
    if parts.next().is_none() {
        return true;
    }
    if first == "docker.io" || first == "index.docker.io" {
        return true;
    }
    !first.contains(['.', ':'])
}

/// What a lookup found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupResult {
    /// The credentials, in the order the kubelet tries them.
    pub credentials: Vec<Credential>,
    /// The keyring keys that matched, in order; `index.docker.io (default-registry fallback)`
    /// when the Docker Hub fallback applied.
    pub matched_keys: Vec<String>,
}

/// Appended to a matched key that applied through the Docker Hub fallback.
pub const FALLBACK_SUFFIX: &str = "(default-registry fallback)";
/// Prefixed to matched keys of the node's keyring.
pub const NODE_KEY_PREFIX: &str = "node:";

/// A `BasicDockerKeyring`.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    index: Vec<String>,
    creds: HashMap<String, Vec<Credential>>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every entry of a config (`BasicDockerKeyring.Add`). Entries whose key does not
    /// parse are skipped, as the kubelet only logs them.
    pub fn add(&mut self, config: &DockerConfig, source: CredentialSource) {
        for (key, entry) in &config.entries {
            let Some(norm) = normalize_registry_key(key) else {
                continue;
            };
            self.creds
                .entry(norm.clone())
                .or_default()
                .push(Credential {
                    username: entry.username.clone(),
                    password: entry.password.clone(),
                    email: entry.email.clone(),
                    source: source.clone(),
                    config_key: key.clone(),
                    keyring_key: norm.clone(),
                });
            self.index.push(norm);
        }
        // de-duplicated and reverse-sorted so more specific paths come first
        self.index.sort_unstable_by(|a, b| b.cmp(a));
        self.index.dedup();
    }

    /// The keyring keys, in lookup order.
    pub fn keys(&self) -> &[String] {
        &self.index
    }

    /// Whether the keyring holds no key.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// `BasicDockerKeyring.Lookup` with the matched keys.
    pub fn lookup_detailed(&self, lookup_key: &str) -> LookupResult {
        let mut r = LookupResult::default();
        for k in &self.index {
            if urls_match(k, lookup_key) {
                r.credentials.extend(self.creds[k].iter().cloned());
                r.matched_keys.push(k.clone());
            }
        }
        if r.credentials.is_empty() && is_default_registry_match(lookup_key) {
            if let Some(c) = self.creds.get(DEFAULT_REGISTRY_HOST) {
                r.credentials = c.clone();
                r.matched_keys
                    .push(format!("{DEFAULT_REGISTRY_HOST} {FALLBACK_SUFFIX}"));
            }
        }
        r
    }

    /// `BasicDockerKeyring.Lookup`: the credentials for a lookup key, in order.
    pub fn lookup(&self, lookup_key: &str) -> Vec<Credential> {
        self.lookup_detailed(lookup_key).credentials
    }
}

/// A Secret as far as the kubelet's keyring is concerned.
#[derive(Clone, PartialEq, Eq)]
pub struct PullSecret {
    /// The Secret's name.
    pub name: String,
    /// Its `type`.
    pub secret_type: String,
    /// Its data, decoded from base64.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for PullSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullSecret")
            .field("name", &self.name)
            .field("secret_type", &self.secret_type)
            .field(
                "data",
                &self
                    .data
                    .iter()
                    .map(|(k, v)| (k.as_str(), format!("<{} bytes>", v.len())))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why the kubelet fails before pulling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The image string does not parse (`InvalidImageName`).
    #[error(transparent)]
    InvalidImage(#[from] ImageNameError),
    /// A usable pull secret does not decode; Display is the kubelet's text, which becomes the
    /// container's waiting reason.
    #[error("{source}")]
    Secret {
        /// The Secret's name.
        name: String,
        /// The decode error.
        #[source]
        source: DecodeError,
    },
}

/// The ordered credentials for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The keyring lookup key (the normalized repository name).
    pub lookup_key: String,
    /// The keyring keys that matched, pod secrets' first; node keys carry the
    /// [`NODE_KEY_PREFIX`] and fallback matches the [`FALLBACK_SUFFIX`].
    pub matched_keys: Vec<String>,
    /// The credentials in the order the kubelet tries them; empty means an anonymous pull.
    pub credentials: Vec<Credential>,
}

/// Builds the pod-secret keyring (`secretsToTrackedDockerConfigs`): `None` when no secret is
/// usable; an error when any usable secret fails to decode.
pub fn keyring_from_secrets(secrets: &[PullSecret]) -> Result<Option<Keyring>, ResolveError> {
    let mut k = Keyring::new();
    let mut n = 0;
    for s in secrets {
        let Some((kind, payload)) =
            dockerconfig::usable_pull_secret_payload(&s.secret_type, &s.data)
        else {
            continue;
        };
        let cfg =
            dockerconfig::decode_payload(kind, payload).map_err(|source| ResolveError::Secret {
                name: s.name.clone(),
                source,
            })?;
        k.add(
            &cfg,
            CredentialSource::Secret {
                name: s.name.clone(),
            },
        );
        n += 1;
    }
    Ok((n > 0).then_some(k))
}

/// Resolves a raw lookup key against pod secrets and the node config (`MakeDockerKeyring` then
/// `UnionDockerKeyring.Lookup`).
pub fn resolve_lookup_key(
    lookup_key: &str,
    pod_secrets: &[PullSecret],
    node_config: Option<&DockerConfig>,
) -> Result<Resolution, ResolveError> {
    let mut r = Resolution {
        lookup_key: lookup_key.to_string(),
        matched_keys: vec![],
        credentials: vec![],
    };
    if let Some(k) = keyring_from_secrets(pod_secrets)? {
        let l = k.lookup_detailed(lookup_key);
        r.credentials.extend(l.credentials);
        r.matched_keys.extend(l.matched_keys);
    }
    if let Some(cfg) = node_config {
        let mut k = Keyring::new();
        k.add(cfg, CredentialSource::Node);
        let l = k.lookup_detailed(lookup_key);
        r.credentials.extend(l.credentials);
        r.matched_keys.extend(
            l.matched_keys
                .into_iter()
                .map(|m| format!("{NODE_KEY_PREFIX}{m}")),
        );
    }
    Ok(r)
}

/// The full kubelet resolution for a container image: parse it (an invalid image fails with
/// the kubelet's `couldn't parse image name` text), then [`resolve_lookup_key`] with the
/// normalized repository name.
pub fn resolve(
    image: &str,
    pod_secrets: &[PullSecret],
    node_config: Option<&DockerConfig>,
) -> Result<Resolution, ResolveError> {
    let parsed = reference::parse_image_name(image)?;
    resolve_lookup_key(&parsed.repo, pod_secrets, node_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "abc"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abd"));
        assert!(glob_match("*kubernetes", "kubernetes"));
        assert!(glob_match("r?g", "reg"));
        assert!(glob_match("reg[0-9]", "reg5"));
        assert!(!glob_match("reg[^0-9]", "reg5"));
        assert!(!glob_match("reg[", "reg"));
        assert!(glob_match("\\*", "*"));
    }

    /// Cases from Go's `path/filepath/match_test.go` (`matchTests`), `ErrBadPattern` as `false`.
    #[test]
    fn go_match_tests() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a\u{263a}b", true),
            ("a[^a]b", "a\u{263a}b", true),
            ("a???b", "a\u{263a}b", false),
            ("a[^a][^a][^a]b", "a\u{263a}b", false),
            ("[a-\u{3b6}]*", "\u{3b1}", true),
            ("*[a-\u{3b6}]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("[]a]", "]", false),
            ("[-]", "-", false),
            ("[x-]", "x", false),
            ("[x-]", "-", false),
            ("[x-]", "z", false),
            ("[-x]", "x", false),
            ("[-x]", "-", false),
            ("[-x]", "a", false),
            ("\\", "a", false),
            ("[a-b-c]", "a", false),
            ("[", "a", false),
            ("[^", "a", false),
            ("[^bc", "a", false),
            ("a[", "a", false),
            ("a[", "ab", false),
            ("a[", "x", false),
            ("a/b[", "x", false),
            ("*x", "xxx", true),
        ];
        for &(p, n, want) in cases {
            assert_eq!(glob_match(p, n), want, "Match({p:?}, {n:?})");
        }
    }

    #[test]
    fn url_parse_quirks() {
        // userinfo: non-ASCII and bad escapes fail; a valid one is dropped.
        assert_eq!(
            normalize_registry_key("u:p@quay.io").as_deref(),
            Some("quay.io")
        );
        assert_eq!(normalize_registry_key("u\u{e9}:p@quay.io"), None);
        assert_eq!(normalize_registry_key("u%zz@quay.io"), None);
        // fragment with a bad escape fails in setFragment.
        assert_eq!(
            normalize_registry_key("quay.io#ok").as_deref(),
            Some("quay.io")
        );
        assert_eq!(normalize_registry_key("quay.io#%zz"), None);
        // bracketed hosts must be IPv6 literals; a later `[` is rejected.
        assert_eq!(
            normalize_registry_key("[::1]:5000/x").as_deref(),
            Some("[::1]:5000/x")
        );
        assert_eq!(normalize_registry_key("[1.2.3.4]"), None);
        assert_eq!(normalize_registry_key("[abc]"), None);
        assert_eq!(normalize_registry_key("[::1]["), None);
        assert_eq!(
            normalize_registry_key("[fe80::1%25en0]").as_deref(),
            Some("[fe80::1%en0]")
        );
        assert_eq!(normalize_registry_key("[fe80::1%25]"), None);
        assert!(urls_match("[::1]:5000", "[::1]:5000/app"));
        assert!(!urls_match("[::1]:5000", "[::1]:5001/app"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(key in "\\PC{0,24}", target in "\\PC{0,24}") {
            let _ = normalize_registry_key(&key);
            let _ = urls_match(&key, &target);
            let _ = glob_match(&key, &target);
            let mut k = Keyring::new();
            k.add(
                &DockerConfig {
                    entries: vec![(key.clone(), crate::dockerconfig::DockerConfigEntry::default())],
                },
                CredentialSource::Node,
            );
            let _ = k.lookup_detailed(&target);
        }

        #[test]
        fn never_panics_url_alphabet(
            key in "[\\[\\]a-c*?^\\\\:/%0-9@#?. -]{0,16}",
            target in "[\\[\\]a-c*?:/%0-9@#?. -]{0,16}",
        ) {
            let _ = normalize_registry_key(&key);
            let _ = urls_match(&key, &target);
            let _ = glob_match(&key, &target);
        }
    }

    #[test]
    fn passwords_stay_out_of_debug() {
        let pw = "correct-horse-battery";
        let mut data = BTreeMap::new();
        data.insert(
            ".dockerconfigjson".to_string(),
            format!(r#"{{"auths":{{"r.io":{{"username":"u","password":"{pw}"}}}}}}"#).into_bytes(),
        );
        let s = PullSecret {
            name: "s".into(),
            secret_type: "kubernetes.io/dockerconfigjson".into(),
            data,
        };
        assert!(!format!("{s:?}").contains(pw));
        let r = resolve("r.io/a", std::slice::from_ref(&s), None).unwrap();
        assert_eq!(r.credentials[0].password, pw);
        assert!(!format!("{r:?}").contains(pw));
        let k = keyring_from_secrets(&[s]).unwrap().unwrap();
        assert!(!format!("{k:?}").contains(pw));
    }
}
