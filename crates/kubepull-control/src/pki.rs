//! Certificates and tokens, generated on first start under `DATA_DIR/pki/` (files 0600) and
//! reused afterwards: a CA, the serving certificate it signs, the admin token, and the key that
//! node tokens are derived from. Also writes `DATA_DIR/admin.kubeconfig`.

use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hmac::Mac;

/// The node token prefix: `kpn.<node name>.<hex HMAC-SHA256(node key, name)>`.
pub const NODE_TOKEN_PREFIX: &str = "kpn.";

/// Material the server runs with.
pub struct Pki {
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// Serving certificate, PEM.
    pub cert_pem: String,
    /// Serving key, PEM.
    pub key_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    node_key: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pki { .. }")
    }
}

fn random_hex(n: usize) -> std::io::Result<String> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn write_private(p: &Path, data: &str) -> std::io::Result<()> {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, p)
}

/// Errors setting up certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// File access.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation.
    #[error("generating certificates: {0}")]
    Cert(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Pki {
    /// Loads the material from `data_dir/pki`, generating what is missing. The serving
    /// certificate covers 127.0.0.1, ::1, localhost, the host name and `bind`.
    pub fn load_or_create(data_dir: &Path, bind: IpAddr) -> Result<Pki, PkiError> {
        let dir = data_dir.join("pki");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let p = |f: &str| dir.join(f);
        let read = |f: &str| std::fs::read_to_string(p(f)).ok();
        let (ca_pem, ca_key_pem) = match (read("ca.crt"), read("ca.key")) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
                let key = KeyPair::generate().map_err(|e| PkiError::Cert(e.to_string()))?;
                let mut params = CertificateParams::new(Vec::<String>::new())
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "kubepull-ca");
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params
                    .self_signed(&key)
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write_private(&p("ca.key"), &k).map_err(io(&p("ca.key")))?;
                write_private(&p("ca.crt"), &c).map_err(io(&p("ca.crt")))?;
                let _ = std::fs::remove_file(p("server.crt"));
                (c, k)
            }
        };
        let (cert_pem, key_pem) = match (read("server.crt"), read("server.key")) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                use rcgen::{CertificateParams, KeyPair};
                let ca_key =
                    KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Cert(e.to_string()))?;
                let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                let mut names = vec![
                    "127.0.0.1".to_string(),
                    "::1".to_string(),
                    "localhost".to_string(),
                    "kubernetes".to_string(),
                    "kubernetes.default".to_string(),
                    bind.to_string(),
                ];
                if !host.is_empty() {
                    names.push(host);
                }
                names.sort();
                names.dedup();
                let key = KeyPair::generate().map_err(|e| PkiError::Cert(e.to_string()))?;
                let mut params =
                    CertificateParams::new(names).map_err(|e| PkiError::Cert(e.to_string()))?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "kubepull-apiserver");
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params
                    .signed_by(&key, &issuer)
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write_private(&p("server.key"), &k).map_err(io(&p("server.key")))?;
                write_private(&p("server.crt"), &c).map_err(io(&p("server.crt")))?;
                (c, k)
            }
        };
        let admin_token = match read("admin.token") {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = random_hex(32).map_err(io(&p("admin.token")))?;
                write_private(&p("admin.token"), &t).map_err(io(&p("admin.token")))?;
                t
            }
        };
        let node_key = match read("node-token.key") {
            Some(t) if !t.trim().is_empty() => t.trim().as_bytes().to_vec(),
            _ => {
                let t = random_hex(32).map_err(io(&p("node-token.key")))?;
                write_private(&p("node-token.key"), &t).map_err(io(&p("node-token.key")))?;
                t.into_bytes()
            }
        };
        Ok(Pki {
            ca_pem,
            cert_pem,
            key_pem,
            admin_token,
            node_key,
        })
    }

    /// The token of node `name`.
    pub fn node_token(&self, name: &str) -> String {
        node_token_with(&self.node_key, name)
    }

    /// The node a token belongs to, if it is a valid node token.
    pub fn node_of(&self, token: &str) -> Option<String> {
        let rest = token.strip_prefix(NODE_TOKEN_PREFIX)?;
        let (name, _) = rest.rsplit_once('.')?;
        let expected = self.node_token(name);
        (expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0)
            .then(|| name.to_string())
    }

    /// Writes `admin.kubeconfig` for `server_url`.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let cfg = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubepull\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: kubepull\n  context:\n    cluster: kubepull\n    user: kubepull-admin\n    namespace: default\ncurrent-context: kubepull\nusers:\n- name: kubepull-admin\n  user:\n    token: {}\npreferences: {{}}\n",
            self.admin_token
        );
        write_private(path, &cfg).map_err(io(path))
    }
}

fn node_token_with(key: &[u8], name: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac accepts any key");
    mac.update(name.as_bytes());
    let sum = mac.finalize().into_bytes();
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("{NODE_TOKEN_PREFIX}{name}.{hex}")
}

/// The join token of node `name` for the server whose data dir is `data_dir`.
pub fn node_token(data_dir: &Path, name: &str) -> Result<String, PkiError> {
    let p = data_dir.join("pki/node-token.key");
    let key = std::fs::read_to_string(&p).map_err(io(&p))?;
    Ok(node_token_with(key.trim().as_bytes(), name))
}
