//! containerd's registry host configuration: `DIR/<host[:port]>/hosts.toml`.
//!
//! The format is containerd's (`docs/hosts.md`; parsed as `core/remotes/docker/config/
//! hosts.go`, `parseHostsFile` and `parseHostConfig` do):
//!
//! ```toml
//! server = "https://registry.example.com"       # default: https://<host>
//!
//! [host."https://mirror.example.com"]            # tried first, in file order
//!   capabilities = ["pull", "resolve"]          # default: pull, resolve, push
//!   ca = "mirror-ca.crt"                        # or ["a.crt", "b.crt"]; relative to this file
//!   client = [["client.crt", "client.key"]]     # or "both.pem", or ["both1.pem", "both2.pem"]
//!   skip_verify = false
//!   override_path = false                       # true: the URL path is the API root as is
//!   [host."https://mirror.example.com".header]
//!     x-custom = "value"                        # or ["v1", "v2"]
//! ```
//!
//! Top-level `capabilities`, `ca`, `client`, `skip_verify`, `override_path` and `header` apply
//! to the `server` entry. A registry without a directory uses `DIR/_default/hosts.toml` when
//! present. Unknown keys are ignored (containerd adds keys over time, `dial_timeout` for one);
//! a known key of the wrong type is an error naming the file and the key.
//!
//! # Order and capabilities
//!
//! Resolving a tag uses the hosts that have both `pull` and `resolve`; fetching by digest,
//! those with `pull` (containerd `core/remotes/docker/resolver.go`, `Resolve`). Mirrors come
//! first, in file order, then the `server` (when it has the capability). A host that fails
//! (image missing, unreachable, credentials refused) passes the pull to the next one; the
//! error of the last host tried is returned.
//!
//! # Credentials and mirrors
//!
//! The kubelet keyring is keyed by host: a pull secret for `registry.example.com` is a
//! credential *for that host*. So a mirror gets credentials only when the keyring has an entry
//! matching the mirror's own `host[:port]`; the server's credentials never go to a mirror (a
//! mirror operator would otherwise collect every tenant's registry passwords). See
//! [`crate::Client::resolve_image_via`]:
//!
//! ```no_run
//! # async fn demo(secrets: &[kubepull_core::keyring::PullSecret]) -> Result<(), Box<dyn std::error::Error>> {
//! use kubepull_core::{keyring, reference::parse_normalized_named};
//! use kubepull_registry::{Client, ClientConfig, HostsDir, Platform, RegistryCredential, TlsConfig};
//!
//! let hosts = HostsDir::load(std::path::Path::new("/etc/containerd/certs.d"))?;
//! let image = parse_normalized_named("registry.example.com/team/app:v1")?;
//! let client = Client::https(&TlsConfig::system(), ClientConfig::default())?;
//! // the keyring is asked about each host by that host's own name
//! let creds_for = |host: &kubepull_registry::RegistryHost| {
//!     keyring::resolve(&format!("{}/{}", host.host_label(), image.path()), secrets, None)
//!         .map(|r| r.credentials.iter().map(RegistryCredential::from_keyring).collect())
//!         .unwrap_or_default()
//! };
//! let hosts = hosts.hosts_for(image.domain())?;
//! let (repo, resolved) = client
//!     .resolve_image_via(&image, &hosts, creds_for, &Platform::host())
//!     .await?;
//! # let _ = (repo, resolved);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use crate::transport::TlsConfig;

/// Largest `hosts.toml` read (real ones are a few hundred bytes).
pub const MAX_HOSTS_FILE: u64 = 1024 * 1024;

/// Largest CA or client certificate/key file read.
pub const MAX_CERT_FILE: u64 = 1024 * 1024;

/// Most `[host."…"]` entries in one file: each is tried in turn on a failing pull.
pub const MAX_HOSTS_PER_FILE: usize = 32;

/// What a host may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Fetch content by digest.
    pub pull: bool,
    /// Resolve a tag to a digest.
    pub resolve: bool,
    /// Push (unused by a puller; kept for completeness).
    pub push: bool,
}

impl Capabilities {
    /// containerd's default: everything.
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// One host a registry's content can come from.
#[derive(Clone)]
pub struct RegistryHost {
    /// `scheme://host[:port]`, no path.
    pub origin: Url,
    /// The API root path, `/v2` or `/prefix/v2` (or the configured path as is with
    /// `override_path`), no trailing slash.
    pub api_root: String,
    /// What it may be used for.
    pub capabilities: Capabilities,
    /// Its TLS settings (CA, client certificate, `skip_verify`); [`TlsConfig::default`]
    /// fields when the file sets none.
    pub tls: TlsConfig,
    /// Whether the file set any TLS option (otherwise the client's default TLS is used).
    pub custom_tls: bool,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Whether this is the `server` entry (the registry itself), not a mirror.
    pub is_server: bool,
}

impl fmt::Debug for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryHost")
            .field("origin", &self.origin.as_str())
            .field("api_root", &self.api_root)
            .field("capabilities", &self.capabilities)
            .field("tls", &self.tls)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("is_server", &self.is_server)
            .finish()
    }
}

impl RegistryHost {
    /// The default host of a registry with no configuration: `https://<host>/v2`
    /// (`docker.io` is served by `registry-1.docker.io`: containerd
    /// `core/remotes/docker/resolver.go`, `DefaultHost`).
    pub fn default_for(registry: &str) -> Result<RegistryHost, HostsError> {
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let origin = Url::parse(&format!("https://{host}/")).map_err(|_| HostsError::Field {
            file: PathBuf::from("<default>"),
            field: "server".into(),
            message: format!("{host:?} is not a valid host"),
        })?;
        Ok(RegistryHost {
            origin,
            api_root: "/v2".into(),
            capabilities: Capabilities::ALL,
            tls: TlsConfig::default(),
            custom_tls: false,
            headers: vec![],
            is_server: true,
        })
    }

    /// `host[:port]` of the origin: what the keyring is asked about.
    pub fn host_label(&self) -> String {
        crate::policy::host_label(&self.origin)
    }
}

/// The hosts of one registry, mirrors first.
#[derive(Debug, Clone)]
pub struct RegistryHosts {
    /// In order: mirrors (file order), then the server.
    pub hosts: Vec<RegistryHost>,
    /// The file they came from.
    pub file: PathBuf,
}

/// Why a hosts directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{file} is not valid toml: fix the syntax")]
    Toml {
        /// The file.
        file: PathBuf,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// A key has the wrong type or value.
    #[error("{file}: {field}: {message}")]
    Field {
        /// The file.
        file: PathBuf,
        /// The key, dotted (`host."https://m".ca`).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A certificate or key file named by a key could not be read.
    #[error("{file}: {field}: cannot read {path}")]
    CertFile {
        /// The hosts.toml file.
        file: PathBuf,
        /// The key naming it.
        field: String,
        /// The certificate or key path.
        path: PathBuf,
        /// Why (I/O error or too large).
        #[source]
        source: Box<HostsError>,
    },
    /// A file is larger than its limit.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
}

/// A loaded hosts directory (`/etc/containerd/certs.d` style).
#[derive(Debug, Clone, Default)]
pub struct HostsDir {
    registries: HashMap<String, RegistryHosts>,
    default: Option<RegistryHosts>,
}

pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, HostsError> {
    let io = |source| HostsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || HostsError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > limit {
        return Err(too_large());
    }
    // the size a file reports is not a bound: a device (`/dev/zero`), a fifo or a file that
    // grows reads on past it
    let mut buf = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, limit + 1),
        &mut buf,
    )
    .map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

impl HostsDir {
    /// No configuration: every registry is its own single host.
    pub fn empty() -> HostsDir {
        HostsDir::default()
    }

    /// Reads every `DIR/<host[:port]>/hosts.toml` (and `DIR/_default/hosts.toml`), with the
    /// certificate files they name. A registry directory without `hosts.toml` is read as
    /// Docker's `certs.d` layout, as containerd does: `*.crt` CA certificates and a `*.cert`
    /// client certificate with its `*.key` (the `certs_dir` module). Any bad file fails the
    /// whole load with an error naming it.
    pub fn load(dir: &Path) -> Result<HostsDir, HostsError> {
        let mut out = HostsDir::default();
        let entries = std::fs::read_dir(dir).map_err(|source| HostsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for e in entries {
            let e = e.map_err(|source| HostsError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let file = e.path().join("hosts.toml");
            let name = e.file_name().to_string_lossy().to_string();
            if !file.is_file() {
                if name != "_default" && e.path().is_dir() {
                    if let Some(h) = crate::certs_dir::load_cert_files(&e.path(), &name)? {
                        out.registries.insert(name.to_ascii_lowercase(), h);
                    }
                }
                continue;
            }
            if name == "_default" {
                out.default = Some(parse_hosts_file(&file, None)?);
            } else {
                let hosts = parse_hosts_file(&file, Some(&name))?;
                out.registries.insert(name.to_ascii_lowercase(), hosts);
            }
        }
        Ok(out)
    }

    /// The hosts for `registry` (`host[:port]`, as in an image reference), mirrors first;
    /// the registry itself when nothing is configured.
    pub fn hosts_for(&self, registry: &str) -> Result<Vec<RegistryHost>, HostsError> {
        let key = registry.to_ascii_lowercase();
        match self.registries.get(&key) {
            Some(h) => Ok(h.hosts.clone()),
            None => match &self.default {
                // `_default` has no server of its own: the registry is the server
                Some(d) => {
                    let mut hosts: Vec<RegistryHost> =
                        d.hosts.iter().filter(|h| !h.is_server).cloned().collect();
                    let mut server = RegistryHost::default_for(registry)?;
                    if let Some(s) = d.hosts.iter().find(|h| h.is_server) {
                        server.capabilities = s.capabilities;
                        server.tls = s.tls.clone();
                        server.custom_tls = s.custom_tls;
                        server.headers = s.headers.clone();
                    }
                    hosts.push(server);
                    Ok(hosts)
                }
                None => Ok(vec![RegistryHost::default_for(registry)?]),
            },
        }
    }
}

/// Parses one `hosts.toml`. `registry` is its directory name (`None` for `_default`).
pub fn parse_hosts_file(file: &Path, registry: Option<&str>) -> Result<RegistryHosts, HostsError> {
    let bytes = read_bounded(file, MAX_HOSTS_FILE)?;
    let text = String::from_utf8(bytes).map_err(|_| HostsError::Field {
        file: file.to_path_buf(),
        field: "(file)".into(),
        message: "not utf-8".into(),
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    parse_hosts_toml(&text, file, base, registry)
}

/// Parses `hosts.toml` text; relative certificate paths are taken from `base_dir`.
pub fn parse_hosts_toml(
    text: &str,
    file: &Path,
    base_dir: &Path,
    registry: Option<&str>,
) -> Result<RegistryHosts, HostsError> {
    let table: toml::Table = toml::from_str(text).map_err(|source| HostsError::Toml {
        file: file.to_path_buf(),
        source,
    })?;
    let ferr = |field: &str, message: &str| HostsError::Field {
        file: file.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    };
    let mut hosts = vec![];
    if let Some(h) = table.get("host") {
        let t = h
            .as_table()
            .ok_or_else(|| ferr("host", "expected tables [host.\"https://mirror\"]"))?;
        if t.len() > MAX_HOSTS_PER_FILE {
            return Err(ferr(
                "host",
                &format!("more than {MAX_HOSTS_PER_FILE} hosts: list fewer mirrors"),
            ));
        }
        for (name, v) in t {
            let field = format!("host.{name:?}");
            let vt = v
                .as_table()
                .ok_or_else(|| ferr(&field, "expected a table of host settings"))?;
            hosts.push(parse_host(name, vt, &field, file, base_dir, false)?);
        }
    }
    let server = match table.get("server") {
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| {
                    ferr(
                        "server",
                        "expected a string such as \"https://registry.example.com\"",
                    )
                })?
                .to_string(),
        ),
        None => None,
    };
    let server_name = match (&server, registry) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(r)) => {
            let d = RegistryHost::default_for(r).map_err(|_| {
                ferr(
                    "server",
                    "directory name is not a host[:port]; set server explicitly",
                )
            })?;
            Some(d.origin.as_str().trim_end_matches('/').to_string())
        }
        // _default: the registry itself, filled in by HostsDir::hosts_for
        (None, None) => Some("https://default.invalid".to_string()),
    };
    if let Some(s) = server_name {
        let mut h = parse_host(&s, &table, "server", file, base_dir, true)?;
        h.is_server = true;
        // a `[host]` table for the server's own URL configures the server (the common layout
        // `server = "https://r"` + `[host."https://r"] ca = …`): trying the same origin again
        // without that table's TLS settings would only hide the real error
        match hosts
            .iter_mut()
            .find(|x| x.origin == h.origin && x.api_root == h.api_root)
        {
            Some(same) => same.is_server = true,
            None => hosts.push(h),
        }
    }
    Ok(RegistryHosts {
        hosts,
        file: file.to_path_buf(),
    })
}

fn strings(v: &toml::Value) -> Option<Vec<String>> {
    match v {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

fn parse_host(
    name: &str,
    t: &toml::Table,
    field: &str,
    file: &Path,
    base_dir: &Path,
    top_level: bool,
) -> Result<RegistryHost, HostsError> {
    let ferr = |key: &str, message: &str| HostsError::Field {
        file: file.to_path_buf(),
        field: if top_level {
            key.to_string()
        } else {
            format!("{field}.{key}")
        },
        message: message.to_string(),
    };
    let name_field = if top_level { "server" } else { "host" };
    // containerd hosts.go, parseHostConfig: no scheme means https
    let with_scheme = if name.contains("://") {
        name.to_string()
    } else {
        format!("https://{name}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| {
        ferr(
            name_field,
            &format!("{name:?} is not a url such as \"https://mirror.example.com\""),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ferr(
            name_field,
            &format!("{name:?}: use http:// or https:// and a host"),
        ));
    }
    // a fragment is never sent, and would stay on the origin every request is built from
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(ferr(
            name_field,
            &format!(
                "{}: no userinfo, query or fragment in host urls; credentials come from pull \
                 secrets",
                crate::policy::sanitize_url(&url)
            ),
        ));
    }
    let override_path = match t.get("override_path") {
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ferr("override_path", "expected true or false"))?,
        None => false,
    };
    let path = url.path().trim_end_matches('/').to_string();
    // containerd hosts.go: path defaults to /v2; a path without override_path gets /v2
    // appended; with override_path it is the API root as written
    let api_root = if override_path {
        path.clone()
    } else if path.is_empty() {
        "/v2".to_string()
    } else if path.ends_with("/v2") {
        path.clone()
    } else {
        format!("{path}/v2")
    };
    let mut origin = url.clone();
    origin.set_path("/");
    let capabilities = match t.get("capabilities") {
        Some(v) => {
            let list = strings(v).ok_or_else(|| {
                ferr(
                    "capabilities",
                    "expected an array of \"pull\", \"resolve\", \"push\"",
                )
            })?;
            let mut c = Capabilities::default();
            for s in list {
                match s.as_str() {
                    "pull" => c.pull = true,
                    "resolve" => c.resolve = true,
                    "push" => c.push = true,
                    other => {
                        return Err(ferr(
                            "capabilities",
                            &format!(
                            "unknown capability {other:?}: use \"pull\", \"resolve\" or \"push\""
                        ),
                        ))
                    }
                }
            }
            c
        }
        None => Capabilities::ALL,
    };
    let read_cert = |key: &str, path: &Path| -> Result<Vec<u8>, HostsError> {
        read_bounded(path, MAX_CERT_FILE).map_err(|e| HostsError::CertFile {
            file: file.to_path_buf(),
            field: if top_level {
                key.to_string()
            } else {
                format!("{field}.{key}")
            },
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    };
    let resolve_path = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    let mut tls = TlsConfig {
        system_roots: true,
        ..TlsConfig::default()
    };
    let mut custom_tls = false;
    if let Some(v) = t.get("ca") {
        let list = strings(v).ok_or_else(|| {
            ferr(
                "ca",
                "expected a path or an array of paths to pem ca certificates",
            )
        })?;
        for p in list {
            let path = resolve_path(&p);
            let pem = read_cert("ca", &path)?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(ferr(
                    "ca",
                    &format!("{} holds no pem certificate", path.display()),
                ));
            }
            tls.extra_roots_pem.push(pem);
        }
        custom_tls = true;
    }
    if let Some(v) = t.get("client") {
        // containerd hosts.go: a string is a file with both certificate and key; an array
        // holds such strings or [cert, key] pairs
        let bad = || {
            ferr(
                "client",
                "expected \"both.pem\", [\"both.pem\"] or [[\"client.crt\", \"client.key\"]]",
            )
        };
        let mut pairs: Vec<(String, Option<String>)> = vec![];
        match v {
            toml::Value::String(s) => pairs.push((s.clone(), None)),
            toml::Value::Array(a) => {
                for item in a {
                    match item {
                        toml::Value::String(s) => pairs.push((s.clone(), None)),
                        toml::Value::Array(p) => {
                            let p: Vec<String> = p
                                .iter()
                                .map(|x| x.as_str().map(str::to_string))
                                .collect::<Option<_>>()
                                .ok_or_else(bad)?;
                            match p.as_slice() {
                                [c] => pairs.push((c.clone(), None)),
                                [c, k] => pairs.push((c.clone(), Some(k.clone()))),
                                _ => return Err(bad()),
                            }
                        }
                        _ => return Err(bad()),
                    }
                }
            }
            _ => return Err(bad()),
        }
        if pairs.len() > 1 {
            return Err(ferr(
                "client",
                "more than one client certificate: keep the one this host accepts",
            ));
        }
        if let Some((c, k)) = pairs.into_iter().next() {
            let mut pem = read_cert("client", &resolve_path(&c))?;
            if let Some(k) = k {
                pem.push(b'\n');
                pem.extend(read_cert("client", &resolve_path(&k))?);
            }
            tls.client_identity_pem = Some(pem);
        }
        custom_tls = true;
    }
    if let Some(v) = t.get("skip_verify") {
        tls.skip_verify = v
            .as_bool()
            .ok_or_else(|| ferr("skip_verify", "expected true or false"))?;
        custom_tls |= tls.skip_verify;
    }
    let mut headers = vec![];
    if let Some(v) = t.get("header") {
        let ht = v.as_table().ok_or_else(|| {
            ferr(
                "header",
                "expected a table of header = \"value\" or [\"values\"]",
            )
        })?;
        for (k, v) in ht {
            let key = format!("header.{k}");
            if http::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(ferr(&key, "not a valid header name"));
            }
            let values =
                strings(v).ok_or_else(|| ferr(&key, "expected a string or an array of strings"))?;
            for val in values {
                if http::header::HeaderValue::from_str(&val).is_err() {
                    return Err(ferr(&key, "value has characters not allowed in a header"));
                }
                headers.push((k.to_ascii_lowercase(), val));
            }
        }
    }
    Ok(RegistryHost {
        origin,
        api_root,
        capabilities,
        tls,
        custom_tls,
        headers,
        is_server: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistryHosts, HostsError> {
        parse_hosts_toml(
            text,
            Path::new("/etc/certs.d/r/hosts.toml"),
            Path::new("/nonexistent"),
            Some("reg.example.com:5000"),
        )
    }

    #[test]
    fn order_capabilities_paths() {
        let h = parse(
            r#"
server = "https://reg.example.com:5000"
capabilities = ["pull", "resolve"]

[host."https://mirror-b.example.com/prefix"]
  capabilities = ["pull"]
[host."http://mirror-a.example.com:8080"]
[host."https://raw.example.com/api"]
  override_path = true
  [host."https://raw.example.com/api".header]
    x-one = "1"
    x-many = ["a", "b"]
"#,
        )
        .unwrap();
        let labels: Vec<_> = h
            .hosts
            .iter()
            .map(|x| x.origin.as_str().to_string())
            .collect();
        assert_eq!(
            labels,
            [
                "https://mirror-b.example.com/",
                "http://mirror-a.example.com:8080/",
                "https://raw.example.com/",
                "https://reg.example.com:5000/"
            ],
            "file order, server last"
        );
        assert_eq!(h.hosts[0].api_root, "/prefix/v2");
        assert_eq!(
            h.hosts[0].capabilities,
            Capabilities {
                pull: true,
                resolve: false,
                push: false
            }
        );
        assert_eq!(h.hosts[1].api_root, "/v2");
        assert_eq!(h.hosts[1].capabilities, Capabilities::ALL);
        assert_eq!(h.hosts[2].api_root, "/api");
        assert_eq!(h.hosts[2].headers.len(), 3);
        assert!(h.hosts[3].is_server && !h.hosts[0].is_server);
        assert!(!h.hosts[3].capabilities.push);
        assert!(!h.hosts[3].custom_tls);
    }

    #[test]
    fn server_defaults_to_the_directory_name() {
        let h = parse("").unwrap();
        assert_eq!(h.hosts.len(), 1);
        assert_eq!(h.hosts[0].origin.as_str(), "https://reg.example.com:5000/");
        let d = parse_hosts_toml("", Path::new("f"), Path::new("."), Some("docker.io")).unwrap();
        assert_eq!(d.hosts[0].origin.as_str(), "https://registry-1.docker.io/");
    }

    #[test]
    fn bad_files_name_file_and_field() {
        for (text, field) in [
            ("server = 5", "server"),
            ("server = \"ftp://x\"", "server"),
            ("server = \"https://u:p@x\"", "server"),
            ("capabilities = [\"pull\", \"fly\"]", "capabilities"),
            (
                "[host.\"https://m\"]\ncapabilities = \"pull\"\nca = 3",
                "host.\"https://m\".ca",
            ),
            (
                "[host.\"https://m\"]\nskip_verify = \"yes\"",
                "host.\"https://m\".skip_verify",
            ),
            (
                "[host.\"https://m\"]\nclient = [[\"a\",\"b\",\"c\"]]",
                "host.\"https://m\".client",
            ),
            (
                "[host.\"https://m\".header]\n\"bad header\" = \"x\"",
                "host.\"https://m\".header.bad header",
            ),
            (
                "[host.\"https://m\".header]\nx = \"a\\nb\"",
                "host.\"https://m\".header.x",
            ),
            ("host = 1", "host"),
            ("ca = \"missing.crt\"", "missing.crt"),
        ] {
            let e = parse(text).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("hosts.toml"), "{text}: {msg}");
            assert!(msg.contains(field), "{text}: {msg}");
        }
        let e = parse("server = ").unwrap_err();
        assert!(matches!(e, HostsError::Toml { .. }), "{e}");
    }

    #[test]
    fn ca_and_client_files_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(d.join("c.crt"), "CERT").unwrap();
        std::fs::write(d.join("c.key"), "KEY").unwrap();
        std::fs::write(d.join("not-ca.crt"), "hello").unwrap();
        let h = parse_hosts_toml(
            "ca = [\"ca.crt\"]\nclient = [[\"c.crt\", \"c.key\"]]\nskip_verify = true",
            &d.join("hosts.toml"),
            d,
            Some("r"),
        )
        .unwrap();
        let s = &h.hosts[0];
        assert!(s.custom_tls && s.tls.skip_verify && s.tls.system_roots);
        assert_eq!(s.tls.extra_roots_pem.len(), 1);
        assert_eq!(
            s.tls.client_identity_pem.as_deref(),
            Some(&b"CERT\nKEY"[..])
        );
        assert!(
            !format!("{s:?}").contains("KEY"),
            "client key never in Debug"
        );
        let e = parse_hosts_toml("ca = \"not-ca.crt\"", &d.join("hosts.toml"), d, Some("r"))
            .unwrap_err();
        assert!(e.to_string().contains("no pem certificate"), "{e}");
    }

    #[test]
    fn load_dir_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("reg.example.com:5000")).unwrap();
        std::fs::write(
            d.join("reg.example.com:5000/hosts.toml"),
            "[host.\"https://mirror.example.com\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join("_default")).unwrap();
        std::fs::write(
            d.join("_default/hosts.toml"),
            "[host.\"https://everything.example.com\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join("empty.example.com")).unwrap();
        let h = HostsDir::load(d).unwrap();
        let r = h.hosts_for("REG.example.com:5000").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].host_label(), "mirror.example.com");
        assert_eq!(r[1].host_label(), "reg.example.com:5000");
        let other = h.hosts_for("other.example.com").unwrap();
        assert_eq!(other.len(), 2);
        assert_eq!(other[0].host_label(), "everything.example.com");
        assert_eq!(other[1].host_label(), "other.example.com");
        assert!(other[1].is_server);
        assert_eq!(
            HostsDir::empty().hosts_for("x.example.com").unwrap().len(),
            1
        );
        std::fs::write(d.join("reg.example.com:5000/hosts.toml"), "server = [").unwrap();
        let e = HostsDir::load(d).unwrap_err();
        assert!(
            e.to_string().contains("reg.example.com:5000/hosts.toml"),
            "{e}"
        );
    }
}
