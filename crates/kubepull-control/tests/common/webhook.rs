//! An HTTPS admission webhook server on loopback (an rcgen CA for its `caBundle`) that keeps
//! every AdmissionReview it receives and answers as the test says.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// A CA and a serving certificate for 127.0.0.1 that it issued.
pub struct Tls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn tls() -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "webhook-ca");
    let ca = p.self_signed(&ca_key).unwrap();
    let ca_pem = ca.pem();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    lp.distinguished_name.push(DnType::CommonName, "webhook");
    let cert = lp.signed_by(&key, &issuer).unwrap();
    Tls {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// What a test webhook answers.
pub enum Reply {
    /// An AdmissionReview response (`response` only; uid filled in unless given).
    Review(Value),
    /// Any status and body.
    Raw(u16, &'static str),
    /// Never answers.
    Hang,
}

pub type Behaviour = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// An HTTPS webhook server on loopback; every review it receives is kept.
pub struct Hook {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    pub async fn start(t: &Tls, behaviour: Behaviour) -> Hook {
        use http_body_util::BodyExt;
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(t.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(t.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen2.clone();
                let behaviour = behaviour.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            let behaviour = behaviour.clone();
                            async move {
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let review: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                seen.lock().unwrap().push(review.clone());
                                let (status, out) = match behaviour(&review) {
                                    Reply::Review(mut resp) => {
                                        if resp.get("uid").is_none() {
                                            resp["uid"] = review["request"]["uid"].clone();
                                        }
                                        (200, serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})).unwrap())
                                    }
                                    Reply::Raw(s, b) => (s, b.as_bytes().to_vec()),
                                    Reply::Hang => {
                                        futures_util::future::pending::<()>().await;
                                        (200, vec![])
                                    }
                                };
                                let mut r = hyper::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::from(out),
                                ));
                                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                r.headers_mut().insert(
                                    "content-type",
                                    hyper::header::HeaderValue::from_static("application/json"),
                                );
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Hook { port, seen, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
