//! The webhook's serving certificate, from a CA the operator manages itself: the CA lives in a
//! Secret in the operator's namespace (created by whichever replica comes first, read by the
//! others), each replica signs its own serving certificate with it, and the CA certificate is
//! what the webhook configuration's `caBundle` carries.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

use super::OperatorError;

/// Name of the Secret holding the CA.
pub const CA_SECRET: &str = "kubepull-operator-ca";

/// The CA as PEM.
#[derive(Clone)]
pub struct Ca {
    /// Certificate (public: goes into `caBundle`).
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn cert_err(e: impl std::fmt::Display) -> OperatorError {
    OperatorError::Certificate(e.to_string())
}

/// A new self-signed CA.
pub fn new_ca() -> Result<Ca, OperatorError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubepull-operator-webhook-ca");
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Reads the CA Secret, creating it first when no replica has.
pub async fn ensure_ca(client: &kube::Client, namespace: &str) -> Result<Ca, OperatorError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..3 {
        if let Some(s) = api.get_opt(CA_SECRET).await.map_err(OperatorError::api)? {
            let get = |k: &str| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
            };
            return match (get("tls.crt"), get("tls.key")) {
                (Some(cert_pem), Some(key_pem)) => Ok(Ca { cert_pem, key_pem }),
                _ => Err(OperatorError::Certificate(format!(
                    "secret {namespace}/{CA_SECRET} lacks tls.crt or tls.key; delete it and the operator makes a new CA"
                ))),
            };
        }
        let ca = new_ca()?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(CA_SECRET.into()),
                labels: Some(
                    [(
                        super::spec::MANAGED_BY_LABEL.to_string(),
                        "kubepull-operator-ca".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(
                [
                    (
                        "tls.crt".to_string(),
                        ByteString(ca.cert_pem.clone().into_bytes()),
                    ),
                    (
                        "tls.key".to_string(),
                        ByteString(ca.key_pem.clone().into_bytes()),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok(ca),
            // another replica won the race: read theirs
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(OperatorError::api(e)),
        }
    }
    Err(OperatorError::Certificate(format!(
        "could not create or read {namespace}/{CA_SECRET}"
    )))
}

/// A serving certificate for `names` (DNS names or IP addresses) signed by `ca`, as a rustls
/// server configuration.
pub fn server_config(
    ca: &Ca,
    names: &[String],
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, OperatorError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(cert_err)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(cert_err)?;
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(cert_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubepull-operator-webhook");
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let chain = vec![cert.der().clone()];
    let key_der =
        rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(cert_err)?;
    let mut tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(cert_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(cert_err)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The files of a mounted TLS Secret (what cert-manager writes for a `Certificate`).
pub const TLS_CERT_FILE: &str = "tls.crt";
/// The key.
pub const TLS_KEY_FILE: &str = "tls.key";
/// The CA that signed the certificate (goes into `caBundle`).
pub const TLS_CA_FILE: &str = "ca.crt";

/// How often the files are looked at again for a renewed certificate.
const RELOAD_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

fn load_certified_key(
    dir: &std::path::Path,
) -> Result<Arc<tokio_rustls::rustls::sign::CertifiedKey>, OperatorError> {
    use rustls_pki_types::pem::PemObject;
    let cert_path = dir.join(TLS_CERT_FILE);
    let key_path = dir.join(TLS_KEY_FILE);
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_file_iter(&cert_path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                OperatorError::Certificate(format!("--tls-dir: {}: {e}", cert_path.display()))
            })?;
    if chain.is_empty() {
        return Err(OperatorError::Certificate(format!(
            "--tls-dir: {} holds no certificate",
            cert_path.display()
        )));
    }
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key_path).map_err(|_| {
        // the error text of a key file is not shown: it might quote the file
        OperatorError::Certificate(format!(
            "--tls-dir: {} is not a PEM private key",
            key_path.display()
        ))
    })?;
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    let ck = tokio_rustls::rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| OperatorError::Certificate(format!("--tls-dir: {e}")))?;
    Ok(Arc::new(ck))
}

/// Reads the CA certificate of a TLS directory (for `caBundle`).
pub fn read_ca(dir: &std::path::Path) -> Result<String, OperatorError> {
    let p = dir.join(TLS_CA_FILE);
    let pem = std::fs::read_to_string(&p)
        .map_err(|e| OperatorError::Certificate(format!("--tls-dir: {}: {e}", p.display())))?;
    if !pem.contains("BEGIN CERTIFICATE") {
        return Err(OperatorError::Certificate(format!(
            "--tls-dir: {} is not a PEM certificate",
            p.display()
        )));
    }
    Ok(pem)
}

/// A serving certificate read from a directory and read again when cert-manager renews it
/// (the Secret's files change): a handshake after the change gets the new one.
#[derive(Debug)]
struct FileCerts {
    dir: std::path::PathBuf,
    state: std::sync::Mutex<FileCertsState>,
}

#[derive(Debug)]
struct FileCertsState {
    checked: std::time::Instant,
    modified: Option<std::time::SystemTime>,
    key: Arc<tokio_rustls::rustls::sign::CertifiedKey>,
}

fn modified(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(dir.join(TLS_CERT_FILE))
        .and_then(|m| m.modified())
        .ok()
}

impl tokio_rustls::rustls::server::ResolvesServerCert for FileCerts {
    fn resolve(
        &self,
        _hello: tokio_rustls::rustls::server::ClientHello<'_>,
    ) -> Option<Arc<tokio_rustls::rustls::sign::CertifiedKey>> {
        let mut st = self.state.lock().ok()?;
        if st.checked.elapsed() >= RELOAD_CHECK {
            st.checked = std::time::Instant::now();
            let m = modified(&self.dir);
            if m != st.modified {
                match load_certified_key(&self.dir) {
                    Ok(k) => {
                        st.key = k;
                        st.modified = m;
                    }
                    // half-written during a renewal: keep serving the previous one
                    Err(e) => eprintln!(
                        "kubepull operator: keeping the previous serving certificate: {e}"
                    ),
                }
            }
        }
        Some(st.key.clone())
    }
}

/// A rustls server configuration serving `dir/tls.crt` with `dir/tls.key` (a mounted
/// cert-manager Certificate Secret), renewed certificates picked up without a restart.
pub fn file_server_config(
    dir: &std::path::Path,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, OperatorError> {
    let key = load_certified_key(dir)?;
    let resolver = FileCerts {
        dir: dir.to_path_buf(),
        state: std::sync::Mutex::new(FileCertsState {
            checked: std::time::Instant::now(),
            modified: modified(dir),
            key,
        }),
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(cert_err)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_config_from_a_fresh_ca_and_no_key_in_debug() {
        let ca = new_ca().unwrap();
        assert!(ca.cert_pem.contains("BEGIN CERTIFICATE"));
        let dbg = format!("{ca:?}");
        assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
        server_config(&ca, &["127.0.0.1".into(), "svc.ns.svc".into()]).unwrap();
    }

    #[test]
    fn a_tls_directory_is_read_and_bad_files_are_named_without_their_content() {
        let d = tempfile::tempdir().unwrap();
        let e = file_server_config(d.path()).unwrap_err().to_string();
        assert!(e.contains("--tls-dir") && e.contains("tls.crt"), "{e}");
        let ca = new_ca().unwrap();
        let ca_key = KeyPair::from_pem(&ca.key_pem).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["svc.ns.svc".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(d.path().join(TLS_CERT_FILE), cert.pem()).unwrap();
        std::fs::write(d.path().join(TLS_KEY_FILE), "not a key: SECRET-MATERIAL").unwrap();
        let e = file_server_config(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("tls.key") && !e.contains("SECRET-MATERIAL"),
            "{e}"
        );
        std::fs::write(d.path().join(TLS_KEY_FILE), key.serialize_pem()).unwrap();
        file_server_config(d.path()).unwrap();
        assert!(read_ca(d.path()).is_err());
        std::fs::write(d.path().join(TLS_CA_FILE), &ca.cert_pem).unwrap();
        assert_eq!(read_ca(d.path()).unwrap(), ca.cert_pem);
    }
}
