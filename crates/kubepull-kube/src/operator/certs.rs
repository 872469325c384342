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
}
