//! Certificates and tokens, generated on first start under `DATA_DIR/pki/` (files 0600) and
//! reused afterwards: a CA, the serving certificate it signs, the API server's client certificate
//! for nodes (`apiserver-kubelet-client.crt`, CN `kube-apiserver-kubelet-client`), the admin
//! token, and the key that node tokens are derived from. Also writes `DATA_DIR/admin.kubeconfig`.
//!
//! Node tokens carry a generation (`DATA_DIR/pki/node-generations`, `NAME GEN` lines): revoking a
//! node's token bumps its generation, and every request re-checks it, so a revoked token stops
//! working at once, also in a running server.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use hmac::Mac;

/// The CN of the API server's client certificate towards nodes (kubeadm's name).
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// The signer of node serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// The node token prefix: `kpn.<node name>.<hex HMAC-SHA256(node key, name)>`.
pub const NODE_TOKEN_PREFIX: &str = "kpn.";

/// The node token generations as last read, with the file's (mtime, inode) then.
type Generations = (Option<(SystemTime, u64)>, HashMap<String, u32>);

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
    /// The API server's client certificate towards nodes, PEM.
    pub kubelet_client_cert_pem: String,
    /// Its key, PEM.
    pub kubelet_client_key_pem: String,
    ca_key_pem: String,
    node_key: Vec<u8>,
    generations_path: PathBuf,
    generations: Mutex<Generations>,
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

pub(crate) fn write_private(p: &Path, data: &str) -> std::io::Result<()> {
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
        Self::load_or_create_for(data_dir, bind, None)
    }

    /// [`load_or_create`](Self::load_or_create), the serving certificate also naming the
    /// `kubernetes` Service's cluster IP and DNS names (`kubernetes.default.svc[.cluster.local]`)
    /// as kube-apiserver's does, so in-cluster clients verify it. A serving certificate made for
    /// other names is made anew.
    pub fn load_or_create_for(
        data_dir: &Path,
        bind: IpAddr,
        service_ip: Option<IpAddr>,
    ) -> Result<Pki, PkiError> {
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
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut names = vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
            bind.to_string(),
        ];
        if let Some(ip) = service_ip {
            names.push(ip.to_string());
        }
        if !host.is_empty() {
            names.push(host);
        }
        names.sort();
        names.dedup();
        let names_line = names.join(",");
        let same_names = read("server.names").is_some_and(|n| n.trim() == names_line);
        let (cert_pem, key_pem) = match (read("server.crt"), read("server.key")) {
            (Some(c), Some(k)) if same_names => (c, k),
            _ => {
                use rcgen::{CertificateParams, KeyPair};
                let ca_key =
                    KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Cert(e.to_string()))?;
                let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
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
                write_private(&p("server.names"), &names_line).map_err(io(&p("server.names")))?;
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
        let (kubelet_client_cert_pem, kubelet_client_key_pem) = match (
            read("apiserver-kubelet-client.crt"),
            read("apiserver-kubelet-client.key"),
        ) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
                let ca_key =
                    KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Cert(e.to_string()))?;
                let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
                let key = KeyPair::generate().map_err(|e| PkiError::Cert(e.to_string()))?;
                let mut params = CertificateParams::new(Vec::<String>::new())
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, KUBELET_CLIENT_CN);
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params
                    .signed_by(&key, &issuer)
                    .map_err(|e| PkiError::Cert(e.to_string()))?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                let kp = p("apiserver-kubelet-client.key");
                write_private(&kp, &k).map_err(io(&kp))?;
                let cp = p("apiserver-kubelet-client.crt");
                write_private(&cp, &c).map_err(io(&cp))?;
                (c, k)
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
            kubelet_client_cert_pem,
            kubelet_client_key_pem,
            ca_key_pem,
            node_key,
            generations_path: p(GENERATIONS_FILE),
            generations: Mutex::new((None, HashMap::new())),
        })
    }

    /// The current generation of node `name`'s token (re-read when the file changed).
    fn generation(&self, name: &str) -> u32 {
        // the file is replaced by rename on every change: a new inode even within one mtime tick
        let mtime = std::fs::metadata(&self.generations_path)
            .and_then(|m| {
                use std::os::unix::fs::MetadataExt as _;
                Ok((m.modified()?, m.ino()))
            })
            .ok();
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 != mtime || mtime.is_none() {
            g.1 = read_generations(&self.generations_path);
            g.0 = mtime;
        }
        g.1.get(name).copied().unwrap_or(0)
    }

    /// The token of node `name` (its current generation).
    pub fn node_token(&self, name: &str) -> String {
        node_token_with(&self.node_key, name, self.generation(name))
    }

    /// The node a token belongs to, if it is a valid node token of the node's current
    /// generation.
    pub fn node_of(&self, token: &str) -> Option<String> {
        let rest = token.strip_prefix(NODE_TOKEN_PREFIX)?;
        let (head, _) = rest.rsplit_once('.')?;
        // `NAME` (generation 0) or `NAME.gN`; names may contain dots, so try both readings
        let mut candidates = vec![head];
        if let Some((n, g)) = head.rsplit_once(".g") {
            if !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()) {
                candidates.push(n);
            }
        }
        candidates.into_iter().find_map(|name| {
            let expected = self.node_token(name);
            (expected.len() == token.len()
                && expected
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |a, (x, y)| a | (x ^ y))
                    == 0)
                .then(|| name.to_string())
        })
    }

    /// Signs a node's serving certificate request (PEM) for `node`: the request must name
    /// `system:node:<node>` in group `system:nodes` and ask only for DNS names and IP
    /// addresses. The certificate is valid for a year, for server authentication only.
    pub fn sign_kubelet_serving(&self, csr_pem: &str, node: &str) -> Result<String, String> {
        use rcgen::{DnType, DnValue, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("spec.request: not a PEM certificate request: {e}"))?;
        let text = |v: &DnValue| match v {
            DnValue::PrintableString(s) => s.to_string(),
            DnValue::Utf8String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        let dn = &csr.params.distinguished_name;
        let cn = dn.get(&DnType::CommonName).map(text).unwrap_or_default();
        let org = dn
            .get(&DnType::OrganizationName)
            .map(text)
            .unwrap_or_default();
        let want = format!("system:node:{node}");
        if cn != want || org != "system:nodes" {
            return Err(format!(
                "the request's subject must be CN={want}, O=system:nodes (got CN={cn:?}, O={org:?})"
            ));
        }
        if csr.params.subject_alt_names.is_empty()
            || csr
                .params
                .subject_alt_names
                .iter()
                .any(|s| !matches!(s, SanType::DnsName(_) | SanType::IpAddress(_)))
        {
            return Err(
                "the request must name DNS names or IP addresses only, and at least one".into(),
            );
        }
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).map_err(|e| e.to_string())?;
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(&self.ca_pem, ca_key).map_err(|e| e.to_string())?;
        let now = std::time::SystemTime::now();
        csr.params.not_before = now.into();
        csr.params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
        csr.params.is_ca = rcgen::IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        csr.params.use_authority_key_identifier_extension = true;
        let cert = csr.signed_by(&issuer).map_err(|e| e.to_string())?;
        Ok(cert.pem())
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

const GENERATIONS_FILE: &str = "node-generations";

fn read_generations(p: &Path) -> HashMap<String, u32> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (n, g) = l.trim().split_once(' ')?;
            Some((n.to_string(), g.trim().parse().ok()?))
        })
        .collect()
}

fn node_token_with(key: &[u8], name: &str, generation: u32) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac accepts any key");
    if generation == 0 {
        mac.update(name.as_bytes());
    } else {
        mac.update(format!("{name}\n{generation}").as_bytes());
    }
    let sum = mac.finalize().into_bytes();
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    if generation == 0 {
        format!("{NODE_TOKEN_PREFIX}{name}.{hex}")
    } else {
        format!("{NODE_TOKEN_PREFIX}{name}.g{generation}.{hex}")
    }
}

/// The join token of node `name` for the server whose data dir is `data_dir`.
pub fn node_token(data_dir: &Path, name: &str) -> Result<String, PkiError> {
    let p = data_dir.join("pki/node-token.key");
    let key = std::fs::read_to_string(&p).map_err(io(&p))?;
    let generation = read_generations(&data_dir.join("pki").join(GENERATIONS_FILE))
        .get(name)
        .copied()
        .unwrap_or(0);
    Ok(node_token_with(key.trim().as_bytes(), name, generation))
}

/// Revokes node `name`'s current token: its generation goes up by one, so the old token is
/// refused by the server (also a running one) and `node_token` gives the new one.
pub fn revoke_node_token(data_dir: &Path, name: &str) -> Result<u32, PkiError> {
    let key = data_dir.join("pki/node-token.key");
    if !key.exists() {
        return Err(PkiError::Io {
            path: key,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no node token key: is this a server's --data-dir?",
            ),
        });
    }
    let p = data_dir.join("pki").join(GENERATIONS_FILE);
    let mut g = read_generations(&p);
    let next = g.get(name).copied().unwrap_or(0) + 1;
    g.insert(name.to_string(), next);
    let mut lines: Vec<String> = g.iter().map(|(n, v)| format!("{n} {v}")).collect();
    lines.sort();
    write_private(&p, &(lines.join("\n") + "\n")).map_err(io(&p))?;
    Ok(next)
}
