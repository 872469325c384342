//! The node's log endpoint, what the API server's `pods/log` subresource proxies to:
//! `GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&timestamps=&previous=`
//! (the kubelet's path), over HTTPS with a serving certificate the cluster CA signed for this
//! node (requested with a CertificateSigningRequest at start), answering only clients that
//! present a certificate of the same CA issued to `kube-apiserver-kubelet-client`: the API
//! server, never a node token or a user.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::agent::PodIndex;
use crate::runtime::{ContainerRuntime, LogOptions};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{msg}\n")))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

/// The CN the API server's client certificate carries.
pub const API_SERVER_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// The common name of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    cn
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    client_cn: Option<Arc<str>>,
    runtime: Arc<dyn ContainerRuntime>,
    index: Arc<Mutex<PodIndex>>,
) -> Result<Response<Body>, Infallible> {
    if client_cn.as_deref() != Some(API_SERVER_CLIENT_CN) {
        return Ok(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (ns, pod, container) = match parts.as_slice() {
        ["containerLogs", ns, pod, container] => (*ns, *pod, *container),
        _ => return Ok(text(StatusCode::NOT_FOUND, "not found")),
    };
    let mut opts = LogOptions::default();
    for (k, v) in req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        let yes = v == "true" || v == "1";
        match k {
            "follow" => opts.follow = yes,
            "timestamps" => opts.timestamps = yes,
            "previous" => opts.previous = yes,
            "tailLines" => opts.tail_lines = v.parse().ok(),
            _ => {}
        }
    }
    let uid = index
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .by_name
        .get(&(ns.to_string(), pod.to_string()))
        .cloned();
    let Some(uid) = uid else {
        return Ok(text(
            StatusCode::NOT_FOUND,
            &format!("pod {ns}/{pod} is not running on this node"),
        ));
    };
    let list = runtime.list().await.unwrap_or_default();
    let mut instances: Vec<_> = list
        .into_iter()
        .filter(|c| c.pod_uid == uid && c.name == container)
        .collect();
    instances.sort_by_key(|c| c.attempt);
    let pick = if opts.previous {
        instances
            .len()
            .checked_sub(2)
            .and_then(|i| instances.get(i))
    } else {
        instances.last()
    };
    let Some(c) = pick else {
        let msg = if opts.previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start")
        };
        return Ok(text(StatusCode::BAD_REQUEST, &msg));
    };
    match runtime.logs(&c.id, opts).await {
        Ok(stream) => {
            let body = StreamBody::new(stream.map(|r| r.map(Frame::data)));
            let mut resp = Response::new(BodyExt::boxed_unsync(body));
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain"),
            );
            Ok(resp)
        }
        Err(e) => Ok(text(StatusCode::INTERNAL_SERVER_ERROR, &e)),
    }
}

/// The endpoint's TLS material: its serving certificate and key (PEM), and the CA whose client
/// certificates it accepts.
#[derive(Clone)]
pub struct ServingTls {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
    /// The cluster CA, PEM.
    pub ca_pem: String,
}

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServingTls { .. }")
    }
}

/// Starts the endpoint; returns its port and the server task.
pub(crate) async fn serve(
    ip: IpAddr,
    port: u16,
    tls: ServingTls,
    runtime: Arc<dyn ContainerRuntime>,
    index: Arc<Mutex<PodIndex>>,
) -> Result<(u16, tokio::task::JoinHandle<()>), String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("serving certificate: {e}"))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| format!("serving key: {e}"))?;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
        let c = c.map_err(|e| format!("CA certificate: {e}"))?;
        roots.add(c).map_err(|e| format!("CA certificate: {e}"))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let verifier = tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("client verifier: {e}"))?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|e| format!("bind {ip}:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let runtime = runtime.clone();
            let index = index.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cn: Option<Arc<str>> = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| common_name(c))
                    .map(Arc::from);
                let svc = hyper::service::service_fn(move |req| {
                    handle(req, client_cn.clone(), runtime.clone(), index.clone())
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    Ok((port, task))
}

/// Asks the API server for this node's serving certificate: a CertificateSigningRequest with
/// signer `kubernetes.io/kubelet-serving` for `system:node:<name>` (group `system:nodes`), naming
/// the node's name and address, which the API server approves and signs for the node itself.
pub async fn request_serving_certificate(
    client: &kube::Client,
    node_name: &str,
    node_ip: IpAddr,
    ca_pem: &str,
) -> Result<ServingTls, String> {
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequest, CertificateSigningRequestSpec,
    };
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut sans = vec![node_ip.to_string()];
    if node_name.parse::<IpAddr>().is_err() {
        sans.push(node_name.to_string());
    }
    let mut params = rcgen::CertificateParams::new(sans).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:node:{node_name}"),
    );
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| e.to_string())?;
    let obj = CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(format!("csr-{node_name}-")),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: k8s_openapi::ByteString(csr.into_bytes()),
            signer_name: "kubernetes.io/kubelet-serving".into(),
            usages: Some(vec!["digital signature".into(), "server auth".into()]),
            ..Default::default()
        },
        status: None,
    };
    let api: kube::Api<CertificateSigningRequest> = kube::Api::all(client.clone());
    let created = api
        .create(&kube::api::PostParams::default(), &obj)
        .await
        .map_err(|e| format!("requesting the serving certificate: {e}"))?;
    let cert = created
        .status
        .and_then(|s| s.certificate)
        .map(|c| c.0)
        .ok_or_else(|| {
            format!(
                "the API server did not issue a serving certificate (certificatesigningrequest {} is pending)",
                created.metadata.name.unwrap_or_default()
            )
        })?;
    Ok(ServingTls {
        cert_pem: String::from_utf8(cert)
            .map_err(|_| "the issued certificate is not PEM".to_string())?,
        key_pem: key.serialize_pem(),
        ca_pem: ca_pem.to_string(),
    })
}
