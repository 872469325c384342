//! A throw-away certificate authority (rcgen, ECDSA P-256) issuing server and client
//! certificates for loopback tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls;

/// A certificate with its private key, PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey").finish_non_exhaustive()
    }
}

impl CertifiedKey {
    /// Writes `NAME.crt` and `NAME.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, &self.cert_pem)?;
        std::fs::write(&k, &self.key_pem)?;
        Ok((c, k))
    }

    /// A rustls server configuration presenting this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs: Vec<_> =
            rustls::pki_types::pem::PemObject::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
                .expect("certificate we generated parses");
        let key = <rustls::pki_types::PrivateKeyDer<'static> as rustls::pki_types::pem::PemObject>::from_pem_slice(
            self.key_pem.as_bytes(),
        )
        .expect("key we generated parses");
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key match");
        Arc::new(cfg)
    }
}

/// A test CA.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA (`CN=kubepull test CA`).
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("p-256 key generation");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty names");
        params
            .distinguished_name
            .push(DnType::CommonName, "kubepull test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `names` (DNS names or IP literals).
    pub fn server_cert(&self, names: &[&str]) -> CertifiedKey {
        self.leaf(
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            "kubepull test server",
        )
    }

    /// A client certificate (`CN=cn`).
    pub fn client_cert(&self, cn: &str) -> CertifiedKey {
        self.leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, cn)
    }

    fn leaf(&self, names: &[&str], eku: ExtendedKeyUsagePurpose, cn: &str) -> CertifiedKey {
        let key = KeyPair::generate().expect("p-256 key generation");
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("valid names");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing a leaf");
        CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
