//! Image references with the semantics of `github.com/distribution/reference` v0.6.0, the version
//! Kubernetes vendors, and the kubelet helpers built on it.
//!
//! Ported from distribution/reference v0.6.0: `regexp.go` (the grammar), `reference.go`
//! (`Parse`, `getBestReferenceType`), `normalize.go` (`ParseNormalizedNamed`,
//! `splitDockerDomain`, `familiarizeName`, `ParseDockerRef`), `helpers.go` (`FamiliarName`,
//! `FamiliarString`); opencontainers/go-digest `digest.go` (`Digest.Validate`) and
//! `algorithm.go` (`Algorithm.Validate`); kubernetes `pkg/util/parsers/parsers.go`
//! (`ParseImageName`) and `pkg/kubelet/images/image_manager.go` (`applyDefaultImageTag`).
//!
//! The grammar is matched by hand, in linear time, without a regex engine. Where the upstream
//! regular expression is ambiguous, Go's leftmost-first rule decides, which here means: the first
//! path segment is the domain whenever it can be (raw [`parse`] of `docker/docker` has domain
//! `docker`).
//!
//! ```
//! use kubepull_core::reference::{parse_normalized_named, parse_image_name};
//!
//! let r = parse_normalized_named("busybox:1.36").unwrap();
//! assert_eq!(r.name(), "docker.io/library/busybox");
//! assert_eq!(r.familiar_string(), "busybox:1.36");
//! let p = parse_image_name("quay.io/team/app").unwrap();
//! assert_eq!((p.repo.as_str(), p.tag.as_str()), ("quay.io/team/app", "latest"));
//! ```

use std::fmt;

use crate::gostr::quote;

/// Docker Hub's canonical domain (`defaultDomain`).
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy Docker Hub domain that normalizes to [`DEFAULT_DOMAIN`] (`legacyDefaultDomain`).
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of official Docker Hub images (`officialRepoPrefix`).
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The longest repository path, excluding the domain (`NameTotalLengthMax`).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The tag the kubelet assumes when an image has neither a tag nor a digest.
pub const DEFAULT_IMAGE_TAG: &str = "latest";

/// A reference error; Display is the upstream Go error string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// `ErrReferenceInvalidFormat`.
    #[error("invalid reference format")]
    InvalidFormat,
    /// `ErrNameContainsUppercase` (raw [`parse`]).
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// `ErrNameEmpty`.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// `ErrNameTooLong`.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// [`parse_normalized_named`]: the repository part has uppercase letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    RemoteNameUppercase(String),
    /// [`parse_normalized_named`]: the input is a 64-hex image identifier.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    /// The digest part is invalid.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// A digest validation error (go-digest); Display is the upstream Go error string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// `ErrDigestInvalidFormat`.
    #[error("invalid checksum digest format")]
    InvalidFormat,
    /// `ErrDigestInvalidLength`.
    #[error("invalid checksum digest length")]
    InvalidLength,
    /// `ErrDigestUnsupported`.
    #[error("unsupported digest algorithm")]
    Unsupported,
}

/// A validated content digest such as `sha256:e3b0…`: a registered algorithm (`sha256`,
/// `sha384` or `sha512`, the ones the kubelet links) and lowercase hex of the right length.
///
/// Safe to put into a URL path or a file name: it can only hold `[a-z0-9:]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256, 64 hex characters.
    Sha256,
    /// SHA-384, 96 hex characters.
    Sha384,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's name as written in digests.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// The number of hex characters of an encoded digest.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha384 => 96,
            DigestAlgorithm::Sha512 => 128,
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(DigestAlgorithm::Sha256),
            "sha384" => Some(DigestAlgorithm::Sha384),
            "sha512" => Some(DigestAlgorithm::Sha512),
            _ => None,
        }
    }
}

impl Digest {
    /// Parses and validates a digest exactly as go-digest's `Digest.Validate` does.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        // go-digest digest.go, Digest.Validate
        let i = match s.find(':') {
            Some(i) if i > 0 && i + 1 != s.len() => i,
            _ => return Err(DigestError::InvalidFormat),
        };
        let (alg, encoded) = (&s[..i], &s[i + 1..]);
        let Some(algorithm) = DigestAlgorithm::from_name(alg) else {
            // DigestRegexpAnchored: [a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+
            if !digest_regexp_anchored(s) {
                return Err(DigestError::InvalidFormat);
            }
            return Err(DigestError::Unsupported);
        };
        // go-digest algorithm.go, Algorithm.Validate
        if encoded.len() != algorithm.hex_len() {
            return Err(DigestError::InvalidLength);
        }
        if !encoded
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::InvalidFormat);
        }
        Ok(Digest {
            algorithm,
            hex: encoded.to_string(),
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        let sum = sha2::Sha256::digest(bytes);
        Digest {
            algorithm: DigestAlgorithm::Sha256,
            hex: hex(&sum),
        }
    }

    /// A SHA-256 digest from a finished hash.
    pub fn from_sha256_bytes(sum: &[u8; 32]) -> Digest {
        Digest {
            algorithm: DigestAlgorithm::Sha256,
            hex: hex(sum),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// go-digest `DigestRegexpAnchored`: `^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`.
fn digest_regexp_anchored(s: &str) -> bool {
    let Some((alg, enc)) = s.split_once(':') else {
        return false;
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['.', '+', '_', '-']).all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let enc_ok = !enc.is_empty()
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    alg_ok && enc_ok
}

/// A parsed image reference: `[domain/]path[:tag][@digest]`.
///
/// From [`parse_normalized_named`] the domain is always set (`docker.io` for Docker Hub);
/// from the raw [`parse`] it may be empty.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The domain (registry host, with port), possibly empty for a raw [`parse`].
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path without the domain.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `Name()`: domain/path (or just the path when the domain is empty).
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// `FamiliarName`: the name with a `docker.io/` domain removed, and `library/` removed when
    /// what remains is a single segment.
    pub fn familiar_name(&self) -> String {
        // normalize.go, familiarizeName
        if self.domain == DEFAULT_DOMAIN {
            if let Some(rest) = self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                if !rest.contains('/') {
                    return rest.to_string();
                }
            }
            return self.path.clone();
        }
        self.name()
    }

    /// `FamiliarString`: the familiar name plus `:tag` and `@digest` when present.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// A copy without tag or digest.
    pub fn repository(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    /// `String()`: the name plus `:tag` and `@digest` when present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

// ---- the grammar (regexp.go) -------------------------------------------------------------------

/// `alphanumeric = [a-z0-9]+`, `separator = [._]|__|[-]+`,
/// `pathComponent = alphanumeric (separator alphanumeric)*`.
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        // one alphanumeric run
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // one separator
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == b.len() {
            return false;
        }
    }
}

/// `remoteName = pathComponent ('/' pathComponent)*`.
fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `domainNameComponent = [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    match b {
        [] => false,
        [c] => c.is_ascii_alphanumeric(),
        [first, mid @ .., last] => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && mid.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
    }
}

/// `domainAndPort = (domainName | ipv6address) (':' [0-9]+)?`.
fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        // ipv6address = \[(?:[a-fA-F0-9:]+)\]
        let Some(end) = rest.find(']') else {
            return false;
        };
        let inner = &rest[..end];
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        let after = &rest[end + 1..];
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(p) => ("x", Some(p)),
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host.split('.').all(is_domain_component)
}

/// `tag = [\w][\w.-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `digestPat = [A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`.
fn is_digest_pat(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else {
        return false;
    };
    let comp_ok = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric())
    };
    alg.split(['-', '_', '+', '.']).all(comp_ok)
        && hex.len() >= 32
        && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

/// `ReferenceRegexp` matched against `s`: `(name, tag, digest)` or `None` when it doesn't match.
fn match_reference(s: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let (left, digest) = match s.split_once('@') {
        Some((l, d)) => {
            if !is_digest_pat(d) {
                return None;
            }
            (l, Some(d))
        }
        None => (s, None),
    };
    // A ':' after the last '/' can only start the tag: path components have no ':' and a
    // domain's port is always followed by '/'.
    let last_slash = left.rfind('/');
    let (name, tag) = match left.rfind(':') {
        Some(c) if last_slash.is_none_or(|sl| c > sl) => {
            let t = &left[c + 1..];
            if !is_tag(t) {
                return None;
            }
            (&left[..c], Some(t))
        }
        _ => (left, None),
    };
    split_name(name)?;
    Some((name, tag, digest))
}

/// `anchoredNameRegexp`: `(domain, path)`; the domain is empty when the first segment cannot be
/// one. Leftmost-first: the optional domain is taken whenever the whole name still matches.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if let Some((first, rest)) = name.split_once('/') {
        if is_domain_and_port(first) && is_remote_name(rest) {
            return Some((first, rest));
        }
    }
    is_remote_name(name).then_some(("", name))
}

/// `Parse`: parses a reference without normalization. The domain is the first path segment
/// whenever it matches the domain grammar, and empty otherwise.
pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
    // reference.go, Parse
    let Some((name, tag, digest)) = match_reference(s) else {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        if match_reference(&s.to_lowercase()).is_some() {
            return Err(ReferenceError::NameContainsUppercase);
        }
        return Err(ReferenceError::InvalidFormat);
    };
    let (domain, path) = split_name(name).ok_or(ReferenceError::InvalidFormat)?;
    if path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    let digest = match digest {
        Some(d) => Some(Digest::parse(d)?),
        None => None,
    };
    Ok(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// `splitDockerDomain`: the domain and the remainder of a familiar name.
fn split_docker_domain(name: &str) -> (String, String) {
    // normalize.go, splitDockerDomain
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first
            {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            } else {
                (first.to_string(), name[i + 1..].to_string())
            }
        }
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `ParseNormalizedNamed`: parses a familiar name such as `busybox` or `quay.io/a/b:v1` into a
/// fully qualified reference (`docker.io/library/busybox`). This is what the kubelet and the
/// API server's defaulting use.
pub fn parse_normalized_named(s: &str) -> Result<Reference, ReferenceError> {
    // normalize.go, ParseNormalizedNamed
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ReferenceError::HexIdentifier(s.to_string()));
    }
    let (domain, remainder) = split_docker_domain(s);
    let remote_name = match remainder.find(':') {
        Some(i) => &remainder[..i],
        None => &remainder[..],
    };
    if remote_name.to_lowercase() != remote_name {
        return Err(ReferenceError::RemoteNameUppercase(remote_name.to_string()));
    }
    let r = parse(&format!("{domain}/{remainder}"))?;
    if r.path.is_empty() {
        return Err(ReferenceError::InvalidFormat);
    }
    Ok(r)
}

/// `ParseDockerRef`: [`parse_normalized_named`], then `:latest` added when there is neither a
/// tag nor a digest, and the tag dropped when there are both.
pub fn parse_docker_ref(s: &str) -> Result<Reference, ReferenceError> {
    // normalize.go, ParseDockerRef
    let mut r = parse_normalized_named(s)?;
    if r.digest.is_some() {
        r.tag = None;
    } else if r.tag.is_none() {
        r.tag = Some(DEFAULT_IMAGE_TAG.to_string());
    }
    Ok(r)
}

/// What the kubelet's `ParseImageName` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedImageName {
    /// The normalized repository name (`Name()`), the keyring lookup key.
    pub repo: String,
    /// The tag; `latest` when there is neither a tag nor a digest; empty with a digest only.
    pub tag: String,
    /// The digest, or empty.
    pub digest: String,
}

/// A kubelet image-name error: `couldn't parse image name "<img>": <err>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("couldn't parse image name {}: {source}", quote(.image))]
pub struct ImageNameError {
    /// The image string as written.
    pub image: String,
    /// The reference error.
    #[source]
    pub source: ReferenceError,
}

/// The kubelet's `ParseImageName` (`pkg/util/parsers/parsers.go`).
pub fn parse_image_name(image: &str) -> Result<ParsedImageName, ImageNameError> {
    let r = parse_normalized_named(image).map_err(|source| ImageNameError {
        image: image.to_string(),
        source,
    })?;
    let digest = r.digest.as_ref().map(|d| d.to_string()).unwrap_or_default();
    let mut tag = r.tag.clone().unwrap_or_default();
    if tag.is_empty() && digest.is_empty() {
        tag = DEFAULT_IMAGE_TAG.to_string();
    }
    Ok(ParsedImageName {
        repo: r.name(),
        tag,
        digest,
    })
}

/// The kubelet's `applyDefaultImageTag` (`pkg/kubelet/images/image_manager.go`): appends
/// `:latest` (the parsed tag) when there is no digest and the image does not already end with
/// it. Never adds a domain: `busybox` becomes `busybox:latest`.
pub fn apply_default_image_tag(image: &str) -> Result<String, ImageNameError> {
    apply_default_image_tag_parsed(image).map(|(defaulted, _)| defaulted)
}

/// [`apply_default_image_tag`] from one parse: the defaulted name and that name parsed (what
/// [`parse_normalized_named`] returns for it: `latest` added as the tag exactly when the name
/// gets `:latest` appended).
pub fn apply_default_image_tag_parsed(image: &str) -> Result<(String, Reference), ImageNameError> {
    // image_manager.go, applyDefaultImageTag, on parsers.go ParseImageName
    let mut r = parse_normalized_named(image).map_err(|source| ImageNameError {
        image: image.to_string(),
        source,
    })?;
    let tag = match (&r.tag, &r.digest) {
        (Some(t), _) => t.clone(),
        (None, None) => DEFAULT_IMAGE_TAG.to_string(),
        (None, Some(_)) => String::new(),
    };
    if r.digest.is_none() && !tag.is_empty() && !image.ends_with(&format!(":{tag}")) {
        let defaulted = format!("{image}:{tag}");
        r.tag = Some(tag);
        return Ok((defaulted, r));
    }
    Ok((image.to_string(), r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let r = parse_normalized_named("localhost:5000/a/b:v1").unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(parse("docker/docker").unwrap().domain(), "docker");
        assert_eq!(parse("").unwrap_err(), ReferenceError::NameEmpty);
        assert_eq!(
            parse_normalized_named("Busybox").unwrap_err().to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            apply_default_image_tag("busybox").unwrap(),
            "busybox:latest"
        );
        // one parse gives what parsing the defaulted name again gives
        let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for image in [
            "busybox".to_string(),
            "busybox:1.36".to_string(),
            "localhost:5000/a/b".to_string(),
            "localhost:5000/a/b:latest".to_string(),
            "quay.io/a/b:v1".to_string(),
            format!("busybox@sha256:{h}"),
            format!("busybox:1.36@sha256:{h}"),
            "docker.io/library/busybox".to_string(),
            "index.docker.io/busybox".to_string(),
        ] {
            let (defaulted, parsed) = apply_default_image_tag_parsed(&image).unwrap();
            assert_eq!(
                defaulted,
                apply_default_image_tag(&image).unwrap(),
                "{image}"
            );
            assert_eq!(
                parsed,
                parse_normalized_named(&defaulted).unwrap(),
                "{image}"
            );
        }
        for bad in ["Busybox", "busybox:", h, ""] {
            assert_eq!(
                apply_default_image_tag_parsed(bad).unwrap_err(),
                apply_default_image_tag(bad).unwrap_err()
            );
            assert!(apply_default_image_tag_parsed(bad)
                .unwrap_err()
                .to_string()
                .starts_with("couldn't parse image name "));
        }
        assert!(is_path_component("a__b"));
        assert!(!is_path_component("a___b"));
        assert!(is_path_component("a---b"));
        assert!(!is_path_component("a-"));
    }

    #[test]
    fn digests() {
        let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(Digest::parse(&format!("sha256:{h}")).unwrap().hex(), h);
        assert_eq!(Digest::sha256_of(b"").to_string(), format!("sha256:{h}"));
        assert_eq!(
            Digest::parse("sha256:../../etc/passwd"),
            Err(DigestError::InvalidLength)
        );
        assert_eq!(Digest::parse("sha256:"), Err(DigestError::InvalidFormat));
        assert_eq!(
            Digest::parse(&format!("sha256:{}", h.to_uppercase())),
            Err(DigestError::InvalidFormat)
        );
        assert_eq!(Digest::parse("md5:abc"), Err(DigestError::Unsupported));
        assert_eq!(Digest::parse("md5:a/b"), Err(DigestError::InvalidFormat));
    }
}
