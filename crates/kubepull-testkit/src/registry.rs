//! The real registry (`docker-registry serve`) with TLS from a throw-away CA and htpasswd:
//! the registry crate's launcher ([`RegistryProcess`]) with the CA, the users and a client
//! identity kept for pushing and for writing client configuration.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use kubepull_registry::testkit::{
    basic_authorization, http_client, push, CertifiedKey, RegistryAuth, RegistryConfig,
    RegistryProcess, TestCa,
};

use crate::image::Image;

/// A running registry serving HTTPS on 127.0.0.1; killed and its directory removed on drop.
/// Dereferences to its [`RegistryProcess`] (`host`, `log`, `blob_gets`, `storage`, `stop`,
/// `restart`, ...).
pub struct Registry {
    process: RegistryProcess,
    ca_pem: String,
    users: Vec<(String, String)>,
    /// A client certificate and key (PEM) the registry accepts, when it requires one.
    client: Option<(String, String)>,
}

impl Deref for Registry {
    type Target = RegistryProcess;
    fn deref(&self) -> &RegistryProcess {
        &self.process
    }
}

impl DerefMut for Registry {
    fn deref_mut(&mut self) -> &mut RegistryProcess {
        &mut self.process
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
        let (ca_pem, cert_pem, key_pem, client) = tls_material_with_client();
        let users: Vec<(String, String)> = users
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        let process = RegistryProcess::start(RegistryConfig {
            tls: Some(CertifiedKey { cert_pem, key_pem }),
            auth: if users.is_empty() {
                RegistryAuth::None
            } else {
                RegistryAuth::Htpasswd {
                    users: users.clone(),
                }
            },
            client_ca_pem: client_cert.then(|| ca_pem.clone()),
            ..RegistryConfig::default()
        })
        .unwrap_or_else(|e| panic!("starting docker-registry: {e}"));
        std::fs::write(process.dir().join("ca.crt"), &ca_pem).expect("write ca");
        Registry {
            process,
            ca_pem,
            users,
            client: client_cert.then_some(client),
        }
    }

    /// Starts the registry again on the same port with the same content.
    pub fn restart(&mut self) {
        self.process
            .restart()
            .unwrap_or_else(|e| panic!("restarting docker-registry: {e}"));
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
        self.process.dir().join("ca.crt")
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
        let http = http_client(Some(&self.ca_pem), self.client_identity()).expect("http client");
        let authorization = self.users.first().map(|(u, p)| basic_authorization(u, p));
        let mut blobs = vec![img.config.clone()];
        blobs.extend(img.layers.iter().cloned());
        push(
            &self.base_url(),
            &http,
            authorization.as_deref(),
            repo,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &img.manifest,
            &blobs,
        )
        .await
        .unwrap_or_else(|e| panic!("push {repo}:{tag}: {e}"));
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1/localhost, as PEM.
pub fn tls_material() -> (String, String, String) {
    let (ca, cert, key, _) = tls_material_with_client();
    (ca, cert, key)
}

/// [`tls_material`] plus a client certificate and key signed by the same CA.
pub fn tls_material_with_client() -> (String, String, String, (String, String)) {
    let ca = TestCa::new();
    let server = ca.server_cert(&["127.0.0.1", "localhost"]);
    let client = ca.client_cert("kubepull test client");
    (
        ca.cert_pem().to_string(),
        server.cert_pem,
        server.key_pem,
        (client.cert_pem, client.key_pem),
    )
}
