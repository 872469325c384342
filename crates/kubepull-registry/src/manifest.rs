//! OCI and Docker v2 manifests, indexes and platform selection.
//!
//! Digests in descriptors are validated while parsing ([`kubepull_core::reference::Digest`]),
//! so a manifest that names `sha256:../../etc/passwd` never yields a descriptor and no such
//! string reaches a URL or a path (CVE-2024-3727, containers/image#2403).
//!
//! Platform matching follows containerd `platforms` (`Normalize`, `Only`): `arm64` without a
//! variant is `arm64/v8`, `arm` without a variant is `arm/v7`, `amd64/v1` is `amd64`.

use std::collections::BTreeMap;
use std::fmt;

use kubepull_core::reference::Digest;
use serde::{Deserialize, Deserializer};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (signed), unsupported (containerd 2.0 dropped it too).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header of manifest requests: the four types we understand (containerd
/// `core/remotes/docker/resolver.go`, `NewResolver`, minus its `*/*`).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

fn de_digest<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
    let s = String::deserialize(d)?;
    Digest::parse(&s).map_err(|e| serde::de::Error::custom(format!("invalid digest: {e}")))
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type.
    #[serde(default)]
    pub media_type: String,
    /// The validated digest.
    #[serde(deserialize_with = "de_digest")]
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
    /// Foreign URLs (non-distributable layers only; never given credentials).
    #[serde(default)]
    pub urls: Vec<String>,
    /// The platform (index entries).
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker v2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// `schemaVersion`, 2.
    pub schema_version: u32,
    /// The media type field, if present.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// `schemaVersion`, 2.
    pub schema_version: u32,
    /// The media type field, if present.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest of either kind.
// Built once per fetched manifest; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An image manifest.
    Image(ImageManifest),
    /// An index / manifest list.
    Index(Index),
}

/// Why manifest bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Schema 1 or an unknown media type.
    #[error("unsupported manifest media type {0:?}")]
    Unsupported(String),
    /// Invalid JSON or a missing/invalid field (a digest that does not validate lands here).
    #[error("invalid manifest json: {0}")]
    Json(String),
    /// `schemaVersion` other than 2.
    #[error("unsupported schemaVersion {0}")]
    SchemaVersion(u32),
    /// The `mediaType` field contradicts the `Content-Type`.
    #[error("mediaType field {field:?} contradicts content type {header:?}")]
    MediaTypeMismatch {
        /// In the JSON.
        field: String,
        /// From the response.
        header: String,
    },
}

fn strip_params(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// Parses manifest bytes served with `content_type` (may be empty). When the header is
/// missing or generic, the JSON's `mediaType` field, then its shape (`manifests` means an
/// index), decides.
pub fn parse_manifest(content_type: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        schema_version: Option<u32>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let header = strip_params(content_type);
    let header = match header {
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST => Some(header),
        DOCKER_SCHEMA1 | "application/vnd.docker.distribution.manifest.v1+json" => {
            return Err(ManifestError::Unsupported(header.to_string()))
        }
        _ => None,
    };
    if let (Some(h), Some(f)) = (header, probe.media_type.as_deref()) {
        if h != f {
            return Err(ManifestError::MediaTypeMismatch {
                field: f.to_string(),
                header: h.to_string(),
            });
        }
    }
    let mt = header
        .map(str::to_string)
        .or(probe.media_type.clone())
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    if let Some(v) = probe.schema_version {
        if v != 2 {
            return Err(ManifestError::SchemaVersion(v));
        }
    }
    match mt.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => serde_json::from_slice(bytes)
            .map(Manifest::Index)
            .map_err(|e| ManifestError::Json(e.to_string())),
        OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice(bytes)
            .map(Manifest::Image)
            .map_err(|e| ManifestError::Json(e.to_string())),
        other => Err(ManifestError::Unsupported(
            other.chars().take(100).collect(),
        )),
    }
}

/// Whether a media type is a manifest or index (not a blob).
pub fn is_manifest_media_type(mt: &str) -> bool {
    matches!(
        strip_params(mt),
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
    )
}

/// Whether a layer is non-distributable (a "foreign" layer whose `urls` may be used).
pub fn is_non_distributable(mt: &str) -> bool {
    mt.contains(".nondistributable.") || mt.contains(".foreign.")
}

/// A platform: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Platform {
    /// `os`.
    #[serde(default)]
    pub os: String,
    /// `architecture`.
    #[serde(default)]
    pub architecture: String,
    /// `variant`.
    #[serde(default)]
    pub variant: Option<String>,
    /// `os.version`.
    #[serde(default, rename = "os.version")]
    pub os_version: Option<String>,
}

/// A `--platform` string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: want os/arch[/variant]")]
pub struct PlatformParseError(String);

impl Platform {
    /// `os/arch[/variant]`, lowercased and normalized.
    pub fn parse(s: &str) -> Result<Platform, PlatformParseError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return Err(PlatformParseError(s.chars().take(100).collect()));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
            os_version: None,
        }
        .normalized())
    }

    /// This host's platform (containerd `platforms.DefaultSpec`), from the build target.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
        .normalized()
    }

    /// containerd `platforms.Normalize` for the architectures that have variant aliases.
    pub fn normalized(mut self) -> Platform {
        self.os = self.os.to_ascii_lowercase();
        let (arch, variant) = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", Some("v1") | None) => ("amd64", None),
            ("x86_64" | "x86-64", v) => ("amd64", v),
            ("aarch64" | "arm64", Some("8") | Some("v8") | None) => ("arm64", Some("v8")),
            ("aarch64", v) => ("arm64", v),
            ("armhf", _) => ("arm", Some("v7")),
            ("armel", _) => ("arm", Some("v6")),
            ("arm", None | Some("7")) => ("arm", Some("v7")),
            ("arm", Some("5")) => ("arm", Some("v5")),
            ("arm", Some("6")) => ("arm", Some("v6")),
            ("i386", v) => ("386", v),
            (a, v) => (a, v),
        };
        let arch = arch.to_string();
        let variant = variant.map(str::to_string);
        self.architecture = arch;
        self.variant = variant;
        self
    }

    /// Whether an index entry's platform is this one (after normalization of both).
    pub fn matches(&self, other: &Platform) -> bool {
        let a = self.clone().normalized();
        let b = other.clone().normalized();
        a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Index {
    /// The first manifest entry for `platform`, in index order (the order the image author
    /// chose, as Docker and containerd's `Only` matcher with `LimitManifests(…, 1)` pick).
    pub fn select(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            is_manifest_media_type(&d.media_type)
                && d.platform.as_ref().is_some_and(|p| platform.matches(p))
        })
    }

    /// The platforms on offer, for error messages.
    pub fn platforms(&self) -> String {
        let v: Vec<String> = self
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn index() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":10,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        )
    }

    #[test]
    fn select_platform() {
        let Manifest::Index(i) = parse_manifest(OCI_INDEX, index().as_bytes()).unwrap() else {
            panic!("not an index")
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(i.select(&amd).unwrap().digest.to_string(), D1);
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(i.select(&arm).unwrap().digest.to_string(), D2);
        assert!(i.select(&Platform::parse("linux/s390x").unwrap()).is_none());
        assert_eq!(i.platforms(), "linux/amd64, linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/../x").is_err());
    }

    #[test]
    fn traversal_digest_rejected() {
        let bad = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"sha256:../../../etc/passwd","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse_manifest(OCI_MANIFEST, bad.as_bytes()),
            Err(ManifestError::Json(_))
        ));
    }

    #[test]
    fn media_type_sniffing() {
        assert!(matches!(
            parse_manifest("application/json", index().as_bytes()),
            Ok(Manifest::Index(_))
        ));
        assert!(matches!(
            parse_manifest(DOCKER_MANIFEST, index().as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            parse_manifest(DOCKER_SCHEMA1, b"{}"),
            Err(ManifestError::Unsupported(_))
        ));
        assert!(matches!(
            parse_manifest("", br#"{"schemaVersion":1}"#),
            Err(ManifestError::SchemaVersion(1))
        ));
    }
}
