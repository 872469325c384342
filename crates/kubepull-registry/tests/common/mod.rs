//! A scripted, in-process registry behind the `Transport` seam: no sockets, so hostile
//! behaviour (bad realms, redirects, cut connections, lies about digests) is a closure.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use kubepull_core::reference::Digest;
use kubepull_registry::transport::{BoxFuture, Request, Response, TransportError};
use kubepull_registry::{Client, ClientConfig, Descriptor, Repository, StaticResolver, Transport};

pub const PASSWORD: &str = "pa55-Known-Secret-xyzzy";
pub const TOKEN: &str = "tok-Known-Bearer-plugh";
pub const REFRESH: &str = "refresh-Known-Identity-frotz";

/// What one request looked like, as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    pub url: String,
    pub host: String,
    pub auth: Option<String>,
    pub range: Option<String>,
    pub body: Option<Bytes>,
}

#[derive(Clone, Debug)]
pub enum AuthMode {
    None,
    Basic,
    /// `Bearer realm=<realm>`; the token endpoint accepts Basic or the refresh grant.
    Bearer {
        realm: String,
    },
}

pub type Hook = Arc<dyn Fn(&Request, &Fake) -> Option<Response> + Send + Sync>;

/// The fake registry's state.
#[derive(Clone)]
pub struct Fake {
    pub registry_host: String,
    pub repo: String,
    pub auth: AuthMode,
    pub user: String,
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub blobs: HashMap<String, Vec<u8>>,
}

pub struct Server {
    pub fake: Mutex<Fake>,
    pub log: Mutex<Vec<Logged>>,
    pub hook: Mutex<Option<Hook>>,
}

pub fn resp(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    Response::from_bytes(StatusCode::from_u16(status).unwrap(), h, body)
}

pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn err_body(code: &str) -> String {
    format!(r#"{{"errors":[{{"code":"{code}","message":"m","detail":null}}]}}"#)
}

impl Fake {
    pub fn handle(&self, req: &Request) -> Response {
        let path = req.url.path().to_string();
        let host = kubepull_registry::policy::host_label(&req.url);
        let auth = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if path == "/token" {
            let ok_basic = auth.as_deref() == Some(&basic(&self.user, PASSWORD));
            let ok_refresh = req.method == Method::POST
                && req.body.as_ref().is_some_and(|b| {
                    let s = String::from_utf8_lossy(b);
                    s.contains("grant_type=refresh_token")
                        && s.contains(&format!("refresh_token={REFRESH}"))
                });
            let anonymous = auth.is_none() && req.method == Method::GET;
            if ok_basic || ok_refresh {
                return resp(
                    200,
                    &[("content-type", "application/json")],
                    format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#),
                );
            }
            if anonymous {
                return resp(200, &[], r#"{"token":"anon-token"}"#);
            }
            return resp(401, &[], "");
        }
        if host != self.registry_host {
            return resp(404, &[], "not here");
        }
        match &self.auth {
            AuthMode::None => {}
            AuthMode::Basic => {
                if auth.as_deref() != Some(&basic(&self.user, PASSWORD)) {
                    return resp(
                        401,
                        &[("www-authenticate", r#"Basic realm="fake""#)],
                        err_body("UNAUTHORIZED"),
                    );
                }
            }
            AuthMode::Bearer { realm } => {
                if auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
                    let scope = format!("repository:{}:pull", self.repo);
                    let err = if auth.is_some() {
                        ",error=\"insufficient_scope\""
                    } else {
                        ""
                    };
                    return resp(
                        401,
                        &[(
                            "www-authenticate",
                            &format!(
                                r#"Bearer realm="{realm}",service="fake-registry",scope="{scope}"{err}"#
                            ),
                        )],
                        err_body("UNAUTHORIZED"),
                    );
                }
            }
        }
        if path == "/v2/" {
            return resp(200, &[], "{}");
        }
        let prefix = format!("/v2/{}/", self.repo);
        let Some(rest) = path.strip_prefix(&prefix) else {
            return resp(404, &[], err_body("NAME_UNKNOWN"));
        };
        if let Some(r) = rest.strip_prefix("manifests/") {
            let Some((ct, body)) = self.manifests.get(r) else {
                return resp(404, &[], err_body("MANIFEST_UNKNOWN"));
            };
            let d = Digest::sha256_of(body).to_string();
            let len = body.len().to_string();
            let h = [
                ("content-type", ct.as_str()),
                ("docker-content-digest", d.as_str()),
                ("content-length", len.as_str()),
            ];
            if req.method == Method::HEAD {
                return resp(200, &h, Bytes::new());
            }
            return resp(200, &h, body.clone());
        }
        if let Some(d) = rest.strip_prefix("blobs/") {
            let Some(body) = self.blobs.get(d) else {
                return resp(404, &[], err_body("BLOB_UNKNOWN"));
            };
            if let Some(start) = req
                .headers
                .get(http::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.strip_suffix('-'))
                .and_then(|v| v.parse::<usize>().ok())
            {
                let part = body[start.min(body.len())..].to_vec();
                let cr = format!("bytes {start}-{}/{}", body.len() - 1, body.len());
                return resp(206, &[("content-range", cr.as_str())], part);
            }
            let len = body.len().to_string();
            return resp(200, &[("content-length", len.as_str())], body.clone());
        }
        resp(404, &[], "")
    }
}

impl Transport for Server {
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        self.log.lock().unwrap().push(Logged {
            method: req.method.clone(),
            url: req.url.to_string(),
            host: kubepull_registry::policy::host_label(&req.url),
            auth: req
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string()),
            range: req
                .headers
                .get(http::header::RANGE)
                .map(|v| v.to_str().unwrap().to_string()),
            body: req.body.clone(),
        });
        let fake = self.fake.lock().unwrap().clone();
        let hook = self.hook.lock().unwrap().clone();
        let r = hook
            .and_then(|h| h(&req, &fake))
            .unwrap_or_else(|| fake.handle(&req));
        Box::pin(async move { Ok(r) })
    }
}

/// A small image: config + two layers, single-platform OCI manifest.
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
}

pub fn descriptor_json(mt: &str, data: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{mt}","digest":"{}","size":{}}}"#,
        Digest::sha256_of(data),
        data.len()
    )
}

pub fn image(seed: u8) -> Image {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layers = vec![
        (0..100_000u32).map(|i| (i % 251) as u8 ^ seed).collect(),
        vec![seed; 4096],
    ];
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{},{}]}}"#,
        descriptor_json("application/vnd.oci.image.config.v1+json", &config),
        descriptor_json("application/vnd.oci.image.layer.v1.tar", &layers[0]),
        descriptor_json("application/vnd.oci.image.layer.v1.tar+gzip", &layers[1]),
    )
    .into_bytes();
    Image {
        config,
        layers,
        manifest,
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn fake(auth: AuthMode) -> Fake {
    let img = image(7);
    let mut f = Fake {
        registry_host: "reg.example.com".into(),
        repo: "team/app".into(),
        auth,
        user: "alice".into(),
        manifests: HashMap::new(),
        blobs: HashMap::new(),
    };
    f.manifests
        .insert("v1".into(), (OCI_MANIFEST.into(), img.manifest.clone()));
    f.manifests.insert(
        Digest::sha256_of(&img.manifest).to_string(),
        (OCI_MANIFEST.into(), img.manifest.clone()),
    );
    f.blobs
        .insert(Digest::sha256_of(&img.config).to_string(), img.config);
    for l in img.layers {
        f.blobs.insert(Digest::sha256_of(&l).to_string(), l);
    }
    f
}

pub fn server(f: Fake) -> Arc<Server> {
    Arc::new(Server {
        fake: Mutex::new(f),
        log: Mutex::new(vec![]),
        hook: Mutex::new(None),
    })
}

pub fn resolver() -> StaticResolver {
    let public: IpAddr = "203.0.113.10".parse().unwrap();
    StaticResolver::new()
        .with("reg.example.com", &[public])
        .with("auth.example.com", &["203.0.113.11".parse().unwrap()])
        .with("storage.example.net", &["198.51.100.20".parse().unwrap()])
        .with("evil.example.com", &["169.254.169.254".parse().unwrap()])
        .with("evil6.example.com", &["fd00:ec2::254".parse().unwrap()])
        .with("internal.example.com", &["10.1.2.3".parse().unwrap()])
}

pub fn fast_config() -> ClientConfig {
    ClientConfig {
        retry_base_delay: Duration::from_millis(1),
        stall_timeout: Duration::from_millis(200),
        ..ClientConfig::default()
    }
}

pub fn client(s: &Arc<Server>) -> Client {
    client_with(s, fast_config())
}

pub fn client_with(s: &Arc<Server>, cfg: ClientConfig) -> Client {
    let t: Arc<dyn Transport> = s.clone();
    Client::new(t, Arc::new(resolver()), cfg)
}

/// `reg.example.com/team/app` on the scripted registry, with alice's Basic credential from
/// the pull secret `regcred`.
pub fn repo(s: &Arc<Server>) -> Repository {
    client(s)
        .repository(
            &kubepull_core::reference::parse_normalized_named("reg.example.com/team/app:v1")
                .unwrap(),
            Some(kubepull_registry::RegistryCredential::basic(
                "secret/regcred",
                "alice",
                PASSWORD,
            )),
        )
        .unwrap()
}

/// Fetches a blob the way a pull does (streamed into a partial file, verified) and returns its
/// bytes.
pub async fn blob_bytes(repo: &Repository, desc: &Descriptor) -> kubepull_registry::Result<Bytes> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let partial = dir.path().join("blob.partial");
    repo.fetch_blob_resumable(desc, &partial, None).await?;
    Ok(Bytes::from(
        std::fs::read(&partial).expect("read the fetched blob"),
    ))
}
