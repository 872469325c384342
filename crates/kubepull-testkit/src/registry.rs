//! The real registry (`docker-registry serve`) with TLS and htpasswd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubepull_core::reference::Digest;

use crate::image::Image;

/// A running registry; killed and its directory removed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    ca_pem: String,
    dir: tempfile::TempDir,
    users: Vec<(String, String)>,
    /// A client certificate and key (PEM) the registry accepts, when it requires one.
    client: Option<(String, String)>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry serving HTTPS on 127.0.0.1 with Basic auth for `users` (no
    /// authentication at all when `users` is empty: an anonymous mirror).
    pub fn start(users: &[(&str, &str)]) -> Registry {
        Self::start_with(users, false)
    }

    /// [`Registry::start`], refusing TLS connections without a client certificate signed by
    /// its CA (distribution's `http.tls.clientcas`); [`Registry::client_identity`] is one.
    pub fn start_requiring_client_cert(users: &[(&str, &str)]) -> Registry {
        Self::start_with(users, true)
    }

    fn start_with(users: &[(&str, &str)], client_cert: bool) -> Registry {
        crate::need("docker-registry", "docker-registry");
        crate::need("htpasswd", "apache2-utils");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let (ca_pem, cert_pem, key_pem, client) = tls_material_with_client();
        std::fs::write(d.join("ca.crt"), &ca_pem).expect("write ca");
        std::fs::write(d.join("server.crt"), cert_pem).expect("write cert");
        std::fs::write(d.join("server.key"), key_pem).expect("write key");
        let htpasswd = d.join("htpasswd");
        for (i, (u, p)) in users.iter().enumerate() {
            let mut c = Command::new("htpasswd");
            c.arg(if i == 0 { "-Bbc" } else { "-Bb" })
                .arg(&htpasswd)
                .args([u, p]);
            let out = c.output().expect("htpasswd");
            assert!(out.status.success(), "htpasswd failed");
        }
        let port = crate::free_port();
        let clientcas = if client_cert {
            format!("    clientcas:\n      - {}\n", d.join("ca.crt").display())
        } else {
            String::new()
        };
        let cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: kubepull-test-secret\n  tls:\n    certificate: {crt}\n    key: {key}\n{clientcas}{auth}health:\n  storagedriver:\n    enabled: false\n",
            data = d.join("data").display(),
            crt = d.join("server.crt").display(),
            key = d.join("server.key").display(),
            auth = if users.is_empty() {
                String::new()
            } else {
                format!(
                    "auth:\n  htpasswd:\n    realm: kubepull-test\n    path: {}\n",
                    htpasswd.display()
                )
            },
        );
        std::fs::write(d.join("config.yml"), cfg).expect("write config");
        let log = std::fs::File::create(d.join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let mut reg = Registry {
            child,
            port,
            ca_pem,
            dir,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            client: client_cert.then_some(client),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = reg.child.try_wait() {
                panic!("docker-registry exited ({st}):\n{}", reg.log());
            }
            assert!(
                Instant::now() < deadline,
                "registry did not listen:\n{}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Stops the registry process (the port and stored content stay for [`Registry::restart`]).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again on the same port with the same content.
    pub fn restart(&mut self) {
        self.stop();
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("registry.log"))
            .expect("log file");
        self.child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("restarting docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen again:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) that signed the registry's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The client certificate and key (PEM) a registry from
    /// [`Registry::start_requiring_client_cert`] accepts.
    pub fn client_identity(&self) -> Option<(&str, &str)> {
        self.client.as_ref().map(|(c, k)| (c.as_str(), k.as_str()))
    }

    /// The CA file path.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The registry's log (includes the access log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's storage root (`docker/registry/v2/...` below it), for tests that damage
    /// what the registry serves.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// How many `GET` requests for blob `digest` the registry answered with 200/206/307.
    pub fn blob_gets(&self, digest: &Digest) -> usize {
        let needle = format!("/blobs/{digest}");
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains(&needle))
            .filter(|l| l.contains("\" 200 ") || l.contains("\" 206 ") || l.contains("\" 307 "))
            .count()
    }

    /// Writes a containerd-style hosts directory trusting this registry's CA: `DIR/HOST/hosts.toml`.
    pub fn write_hosts_dir(&self, dir: &Path) {
        let h = dir.join(self.host());
        std::fs::create_dir_all(&h).expect("hosts dir");
        std::fs::write(h.join("ca.crt"), &self.ca_pem).expect("write ca");
        std::fs::write(
            h.join("hosts.toml"),
            // containerd's own layout (ctr reads it too): the host entry carries the CA
            format!(
                "server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{ca}\"\n",
                host = self.host(),
                ca = h.join("ca.crt").display()
            ),
        )
        .expect("write hosts.toml");
    }

    /// Pushes an image as `repo:tag` with the first user's credentials.
    pub async fn push(&self, repo: &str, tag: &str, img: &Image) {
        let (user, pass) = self.users.first().cloned().unwrap_or_default();
        let mut http = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca pem"),
            )
            .use_rustls_tls();
        if let Some((c, k)) = &self.client {
            http = http.identity(
                reqwest::Identity::from_pem(format!("{c}\n{k}").as_bytes()).expect("client pem"),
            );
        }
        let http = http.build().expect("http client");
        let base = format!("https://{}", self.host());
        let mut blobs: Vec<&Vec<u8>> = vec![&img.config];
        blobs.extend(img.layers.iter());
        for b in blobs {
            let d = Digest::sha256_of(b);
            let r = http
                .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                .basic_auth(&user, Some(&pass))
                .send()
                .await
                .expect("start upload");
            assert_eq!(r.status(), 202, "start upload");
            let loc = r.headers()["location"]
                .to_str()
                .expect("location")
                .to_string();
            let loc = if loc.starts_with('/') {
                format!("{base}{loc}")
            } else {
                loc
            };
            let sep = if loc.contains('?') { '&' } else { '?' };
            let r = http
                .put(format!("{loc}{sep}digest={d}"))
                .basic_auth(&user, Some(&pass))
                .header("content-type", "application/octet-stream")
                .body(b.clone())
                .send()
                .await
                .expect("upload");
            assert_eq!(r.status(), 201, "finish upload of {d}");
        }
        let r = http
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .basic_auth(&user, Some(&pass))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(img.manifest.clone())
            .send()
            .await
            .expect("put manifest");
        assert_eq!(r.status(), 201, "put manifest");
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1/localhost, as PEM.
pub fn tls_material() -> (String, String, String) {
    let (ca, cert, key, _) = tls_material_with_client();
    (ca, cert, key)
}

/// [`tls_material`] plus a client certificate and key signed by the same CA.
pub fn tls_material_with_client() -> (String, String, String, (String, String)) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kubepull test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let mut cp = CertificateParams::new(Vec::<String>::new()).expect("client params");
    cp.distinguished_name
        .push(rcgen::DnType::CommonName, "kubepull test client");
    cp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = cp.signed_by(&client_key, &issuer).expect("client cert");
    (
        ca_cert.pem(),
        cert.pem(),
        key.serialize_pem(),
        (client.pem(), client_key.serialize_pem()),
    )
}
