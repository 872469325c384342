//! Starts the real CNCF distribution registry (Debian `docker-registry`,
//! `/usr/bin/docker-registry serve config.yml`) on a free loopback port in a temp dir, and
//! pushes test images through its API. The one launcher of the registry for every crate's
//! tests, examples and benches.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubepull_core::reference::Digest;

use super::tls::CertifiedKey;

/// How long the registry may take to listen.
pub const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts tried before giving up when the chosen port was taken in the meantime.
pub const REGISTRY_START_ATTEMPTS: u32 = 3;

/// How long [`RegistryProcess::restart`] keeps trying to bind the port it released (the
/// kernel may hold it a moment after the old process died).
pub const REGISTRY_RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`RegistryProcess::wait_log`] waits for the access log to catch up: a request's
/// line is written as the registry finishes it, which can be after the client has the whole
/// response.
pub const LOG_WAIT: Duration = Duration::from_secs(10);

/// How long the access log must stay unchanged for [`RegistryProcess::settled_log`].
pub const LOG_SETTLE: Duration = Duration::from_millis(500);

/// The registry's `auth` section.
#[derive(Debug, Clone)]
pub enum RegistryAuth {
    /// No authentication.
    None,
    /// `auth.htpasswd` with a bcrypt file of these `(user, password)` pairs, written into
    /// the registry's temp dir with `htpasswd -B` (Debian `apache2-utils`).
    Htpasswd {
        /// The users and their passwords.
        users: Vec<(String, String)>,
    },
    /// `auth.token`: distribution's token authentication.
    Token {
        /// Where clients get tokens.
        realm: String,
        /// The `service` (token `aud`).
        service: String,
        /// The token `iss`.
        issuer: String,
        /// The signing certificate(s), PEM.
        root_cert_bundle_pem: String,
    },
}

/// How to start a registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Serve HTTPS with this certificate; plain HTTP when `None`.
    pub tls: Option<CertifiedKey>,
    /// Authentication.
    pub auth: RegistryAuth,
    /// `storage.filesystem.rootdirectory`; a fresh directory in the temp dir when `None`
    /// (share one to serve the same content from several registries).
    pub storage: Option<PathBuf>,
    /// The `redirect` storage middleware's `baseurl`: blob `GET`s answer `307` to
    /// `BASEURL/docker/registry/v2/blobs/…`.
    pub redirect_base_url: Option<String>,
    /// `http.tls.clientcas`: require a client certificate signed by this CA (PEM).
    pub client_ca_pem: Option<String>,
}

impl Default for RegistryConfig {
    /// Plain HTTP, no authentication, fresh storage, no redirect, no client certificates.
    fn default() -> Self {
        RegistryConfig {
            tls: None,
            auth: RegistryAuth::None,
            storage: None,
            redirect_base_url: None,
            client_ca_pem: None,
        }
    }
}

/// A running `docker-registry`; killed (by its own PID) and its temp dir removed on drop.
///
/// Its log (see [`RegistryProcess::log`]) includes the access log: one line per request, with
/// method, path, status and bytes sent.
pub struct RegistryProcess {
    child: Child,
    port: u16,
    tls: bool,
    storage: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for RegistryProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryProcess")
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback TCP port (bound then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Panics with the install hint unless `bin` is on `PATH`.
pub fn require_binary(bin: &str, debian_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{bin}` not found: this test needs the real binary (apt-get install -y {debian_package})"
    );
}

impl RegistryProcess {
    /// Writes the configuration and starts the registry; waits until it listens.
    ///
    /// The port is picked free and released before the registry binds it, so another
    /// process may take it in between: a start that fails on "address already in use" is
    /// retried on a new port (at most [`REGISTRY_START_ATTEMPTS`] times).
    pub fn start(config: RegistryConfig) -> std::io::Result<RegistryProcess> {
        require_binary("docker-registry", "docker-registry");
        let mut attempt = 1;
        loop {
            match Self::start_on(&config, free_port()?) {
                Err(e)
                    if attempt < REGISTRY_START_ATTEMPTS
                        && e.to_string().contains("address already in use") =>
                {
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn start_on(config: &RegistryConfig, port: u16) -> std::io::Result<RegistryProcess> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let storage = config.storage.clone().unwrap_or_else(|| d.join("data"));
        let mut y = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    uploadpurging:\n      enabled: false\n  delete:\n    enabled: true\n",
            storage.display()
        );
        if let Some(base) = &config.redirect_base_url {
            y.push_str(&format!(
                "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: {base}\n"
            ));
        } else {
            y.push_str("  redirect:\n    disable: true\n");
        }
        y.push_str(&format!(
            "http:\n  addr: 127.0.0.1:{port}\n  secret: kubepull-test-secret\n"
        ));
        if let Some(tls) = &config.tls {
            let (c, k) = tls.write(d, "server")?;
            y.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.display(),
                k.display()
            ));
            if let Some(ca) = &config.client_ca_pem {
                let p = d.join("client-ca.crt");
                std::fs::write(&p, ca)?;
                y.push_str(&format!("    clientcas:\n      - {}\n", p.display()));
            }
        }
        match &config.auth {
            RegistryAuth::None => {}
            RegistryAuth::Htpasswd { users } => {
                let path = d.join("htpasswd");
                write_htpasswd(&path, users)?;
                y.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kubepull-test\n    path: {}\n",
                    path.display()
                ));
            }
            RegistryAuth::Token {
                realm,
                service,
                issuer,
                root_cert_bundle_pem,
            } => {
                let bundle = d.join("token-roots.pem");
                std::fs::write(&bundle, root_cert_bundle_pem)?;
                y.push_str(&format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    bundle.display()
                ));
            }
        }
        y.push_str("health:\n  storagedriver:\n    enabled: false\n");
        std::fs::write(d.join("config.yml"), y)?;
        std::fs::File::create(d.join("registry.log"))?;
        let child = spawn(d)?;
        let mut reg = RegistryProcess {
            child,
            port,
            tls: config.tls.is_some(),
            storage,
            dir,
        };
        reg.wait_listening(0)?;
        Ok(reg)
    }

    /// Waits until the registry has said "listening on" more than `before` times (so it is
    /// *this* registry that listens, not some other process that took the port) and a
    /// connection succeeds.
    fn wait_listening(&mut self, before: usize) -> std::io::Result<()> {
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        let deadline = Instant::now() + REGISTRY_START_TIMEOUT;
        loop {
            if self.log().matches(&listening).count() > before
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && matches!(self.child.try_wait(), Ok(None))
            {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "docker-registry exited ({st}) during start-up:\n{}",
                    self.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "docker-registry did not listen:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the registry process; the port, configuration and stored content stay for
    /// [`RegistryProcess::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again (after [`RegistryProcess::stop`], or stopping it first) on
    /// the same port with the same configuration and content; waits until it listens.
    ///
    /// The port was released by the stopped process and may not be bindable yet (or was
    /// taken by another process in between): a start that exits on "address already in use"
    /// is retried until [`REGISTRY_RESTART_TIMEOUT`], then fails naming the port.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let deadline = Instant::now() + REGISTRY_RESTART_TIMEOUT;
        loop {
            let log = self.log();
            let before = log
                .matches(&format!("listening on 127.0.0.1:{}", self.port))
                .count();
            self.child = spawn(self.dir.path())?;
            let r = self.wait_listening(before);
            // this start's own output, not an earlier attempt's
            let in_use = || {
                self.log()
                    .get(log.len()..)
                    .is_some_and(|l| l.contains("address already in use"))
            };
            match r {
                Err(_) if in_use() && Instant::now() < deadline => {
                    self.stop();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) if in_use() => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!(
                            "docker-registry could not bind 127.0.0.1:{} again within {:?} of \
                             its restart (address already in use): {e}",
                            self.port, REGISTRY_RESTART_TIMEOUT
                        ),
                    ))
                }
                r => return r,
            }
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.host()
        )
    }

    /// The storage root.
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// The registry's temp dir (its configuration, certificates and log); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log so far, access log included.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the log satisfies `until` (at most [`LOG_WAIT`]) and returns it (as it is at
    /// the deadline if it never did: the caller's assertion then shows it). The access log
    /// line of a request is written as the registry finishes it, which can be after the client
    /// has the whole response, so a test reads the log through this after a pull.
    pub fn wait_log(&self, until: impl Fn(&str) -> bool) -> String {
        wait_log_at(&self.log_path(), until)
    }

    /// Where the registry writes its log (read by [`RegistryProcess::log`]).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The log once no line was added to it for [`LOG_SETTLE`] (waiting at most
    /// [`LOG_WAIT`]): what exact counts and negative checks read after a pull has returned, so
    /// that a request whose line is still on its way is counted.
    pub fn settled_log(&self) -> String {
        let deadline = Instant::now() + LOG_WAIT;
        let mut last = self.log();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.log();
            if now.len() != last.len() {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= LOG_SETTLE || Instant::now() > deadline {
                return last;
            }
        }
    }

    /// How many `GET` requests for blob `digest` the registry answered with 200, 206 or 307
    /// (from its access log as it is now; after a pull, [`RegistryProcess::wait_blob_gets`]
    /// or [`RegistryProcess::settled_blob_gets`]).
    pub fn blob_gets(&self, digest: &Digest) -> usize {
        blob_gets_in(&self.log(), digest)
    }

    /// [`RegistryProcess::blob_gets`] once the log has settled ([`RegistryProcess::settled_log`]):
    /// for a count that must not have grown (a negative check) or a baseline.
    pub fn settled_blob_gets(&self, digest: &Digest) -> usize {
        blob_gets_in(&self.settled_log(), digest)
    }

    /// [`RegistryProcess::blob_gets`] once the log has at least `expected` of them (waiting as
    /// [`RegistryProcess::wait_log`] does) and has then settled
    /// ([`RegistryProcess::settled_log`]): an exact count, so a later duplicate request shows
    /// (`== expected` is then a real check, not the first `expected` lines seen).
    pub fn wait_blob_gets(&self, digest: &Digest, expected: usize) -> usize {
        self.wait_log(|l| blob_gets_in(l, digest) >= expected);
        self.settled_blob_gets(digest)
    }
}

/// The `GET`s of blob `digest` answered with 200, 206 or 307 in an access log.
/// [`RegistryProcess::wait_log`] for the log at `path`: for a thread that cannot borrow the
/// registry (one that frees a port while the registry restarts).
pub fn wait_log_at(path: &Path, until: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if until(&log) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blob_gets_in(log: &str, digest: &Digest) -> usize {
    let needle = format!("/blobs/{digest}");
    log.lines()
        .filter(|l| l.contains("\"GET ") && l.contains(&needle))
        .filter(|l| l.contains("\" 200 ") || l.contains("\" 206 ") || l.contains("\" 307 "))
        .count()
}

/// `docker-registry serve DIR/config.yml`, appending its output to `DIR/registry.log`.
fn spawn(d: &Path) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("registry.log"))?;
    Command::new("docker-registry")
        .arg("serve")
        .arg(d.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// Writes a bcrypt htpasswd file with `users`, with `htpasswd -Bb` (Debian `apache2-utils`).
fn write_htpasswd(path: &Path, users: &[(String, String)]) -> std::io::Result<()> {
    require_binary("htpasswd", "apache2-utils");
    std::fs::write(path, "")?;
    for (user, password) in users {
        let out = Command::new("htpasswd")
            .arg("-Bb")
            .arg(path)
            .args([user, password])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "htpasswd failed for user {user:?}"
            )));
        }
    }
    Ok(())
}

/// The `Authorization` value for HTTP Basic with `user` and `password`.
pub fn basic_authorization(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes())
    )
}

/// A small single-platform OCI image: config and two layers (one of 600 KB so streaming is
/// exercised).
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The config blob.
    pub config: Vec<u8>,
    /// The layer blobs.
    pub layers: Vec<Vec<u8>>,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
}

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `{"mediaType","digest","size"}` of `data`.
pub fn descriptor_json(media_type: &str, data: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"{}","size":{}}}"#,
        Digest::sha256_of(data),
        data.len()
    )
}

impl TestImage {
    /// An image for `arch` whose content depends on `seed`.
    pub fn new(arch: &str, seed: u8) -> TestImage {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{}},"seed":{seed}}}"#
        )
        .into_bytes();
        let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
        let big: Vec<u8> = (0..600_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let layers = vec![big, vec![seed; 1000]];
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{},{}]}}"#,
            descriptor_json("application/vnd.oci.image.config.v1+json", &config),
            descriptor_json("application/vnd.oci.image.layer.v1.tar", &layers[0]),
            descriptor_json("application/vnd.oci.image.layer.v1.tar", &layers[1]),
        )
        .into_bytes();
        TestImage {
            config,
            layers,
            manifest,
        }
    }

    /// The manifest digest.
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }

    /// Every blob (config first).
    pub fn blobs(&self) -> Vec<Vec<u8>> {
        let mut v = vec![self.config.clone()];
        v.extend(self.layers.iter().cloned());
        v
    }
}

/// A client for [`push`] trusting `ca_pem` (the system roots when `None`) and presenting
/// `identity` (a client certificate and its key, PEM) when given.
pub fn http_client(
    ca_pem: Option<&str>,
    identity: Option<(&str, &str)>,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder().use_rustls_tls();
    if let Some(ca) = ca_pem {
        b = b.tls_built_in_root_certs(false).add_root_certificate(
            reqwest::Certificate::from_pem(ca.as_bytes()).map_err(|e| e.to_string())?,
        );
    }
    if let Some((cert, key)) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map_err(|e| e.to_string())?,
        );
    }
    b.build().map_err(|e| e.to_string())
}

/// Pushes `blobs` and then the manifest under `tag` through the distribution API
/// (monolithic uploads) with `http` (see [`http_client`]),
/// authenticating with the `Authorization` value given (a Basic header from
/// [`basic_authorization`], or `Bearer` with a token from [`super::TokenServer::mint`]).
#[allow(clippy::too_many_arguments)]
pub async fn push(
    base_url: &str,
    http: &reqwest::Client,
    authorization: Option<&str>,
    repo: &str,
    tag: &str,
    media_type: &str,
    manifest: &[u8],
    blobs: &[Vec<u8>],
) -> Result<(), String> {
    let with_auth = |rb: reqwest::RequestBuilder| match authorization {
        Some(a) => rb.header("authorization", a),
        None => rb,
    };
    for blob in blobs {
        let d = Digest::sha256_of(blob);
        let r = with_auth(http.post(format!("{base_url}/v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 202 {
            return Err(format!("start upload: {}", r.status()));
        }
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("upload without location")?
            .to_string();
        let loc = if loc.starts_with('/') {
            format!("{base_url}{loc}")
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = with_auth(http.put(format!("{loc}{sep}digest={d}")))
            .header("content-type", "application/octet-stream")
            .body(blob.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!("finish upload of {d}: {}", r.status()));
        }
    }
    let r = with_auth(http.put(format!("{base_url}/v2/{repo}/manifests/{tag}")))
        .header("content-type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 201 {
        return Err(format!(
            "put manifest: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    Ok(())
}
