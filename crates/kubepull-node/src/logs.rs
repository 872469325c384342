//! The node's log endpoint, what the API server's `pods/log` subresource proxies to:
//! `GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&timestamps=&previous=`
//! (the kubelet's path), over HTTPS with a self-signed certificate, answering only requests that
//! carry this node's token as `Authorization: Bearer`.

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

/// Constant-time comparison for the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    token: Arc<String>,
    runtime: Arc<dyn ContainerRuntime>,
    index: Arc<Mutex<PodIndex>>,
) -> Result<Response<Body>, Infallible> {
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(auth.as_bytes(), token.as_bytes()) {
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

/// Starts the endpoint; returns its port and the server task.
pub(crate) async fn serve(
    ip: IpAddr,
    port: u16,
    token: String,
    runtime: Arc<dyn ContainerRuntime>,
    index: Arc<Mutex<PodIndex>>,
) -> Result<(u16, tokio::task::JoinHandle<()>), String> {
    let names = vec!["localhost".to_string(), ip.to_string()];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let cert = ck.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der())
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|e| format!("bind {ip}:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let token = Arc::new(token);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let token = token.clone();
            let runtime = runtime.clone();
            let index = index.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    handle(req, token.clone(), runtime.clone(), index.clone())
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
