//! The mutating admission webhook: appends the selected pull secrets to each new pod's
//! `imagePullSecrets`, after making sure the copy is in the pod's namespace, so no pod can race
//! the copy. It answers `allowed` whatever happens (the webhook adds, it never blocks), and
//! counts every answer that lacks a secret it should have carried.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use super::plan::{admission_names, admission_patch, NamespaceView};
use super::Shared;

/// Path the webhook configuration points at.
pub const PATH: &str = "/mutate-pods";
/// Largest AdmissionReview body read (kube-apiserver's own request limit is 3 MiB).
const MAX_BODY: usize = 3 << 20;

fn allowed(uid: &str, patch: Option<&Value>, warnings: &[String]) -> Value {
    let mut r = json!({"uid": uid, "allowed": true});
    if let Some(p) = patch {
        r["patchType"] = json!("JSONPatch");
        r["patch"] =
            json!(base64::engine::general_purpose::STANDARD.encode(p.to_string().as_bytes()));
    }
    if !warnings.is_empty() {
        r["warnings"] = json!(warnings);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": r})
}

/// Answers one AdmissionReview (the JSON body the API server posted).
pub async fn admit(shared: &Shared, review: &Value) -> Result<Value, String> {
    let req = review
        .get("request")
        .ok_or("AdmissionReview without request")?;
    let uid = req
        .get("uid")
        .and_then(Value::as_str)
        .ok_or("AdmissionReview request without uid")?;
    let is_pod = req.pointer("/kind/kind").and_then(Value::as_str) == Some("Pod")
        && req
            .pointer("/kind/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty();
    let op = req.get("operation").and_then(Value::as_str).unwrap_or("");
    let sub = req.get("subResource").and_then(Value::as_str).unwrap_or("");
    if !is_pod || op != "CREATE" || !sub.is_empty() {
        return Ok(allowed(uid, None, &[]));
    }
    let ns_name = req.get("namespace").and_then(Value::as_str).unwrap_or("");
    let pod = req
        .get("object")
        .ok_or("AdmissionReview request without object")?;
    let dry_run = req.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    let ns = match shared.namespace_view(ns_name).await {
        Some(n) => n,
        None => NamespaceView {
            name: ns_name.to_string(),
            ..Default::default()
        },
    };
    let crs = shared.cr_specs();
    let names = admission_names(pod, &ns, &crs, &shared.cfg.namespace);
    if names.is_empty() {
        shared.metrics.inc(
            "kubepull_operator_webhook_requests_total",
            "result=\"unchanged\"",
        );
        return Ok(allowed(uid, None, &[]));
    }
    // Only names whose copy is (now) in the namespace: a name without its Secret would send the
    // kubelet looking for a Secret that is not there.
    let mut ready = Vec::new();
    let mut warnings = Vec::new();
    for name in names {
        let owners: Vec<&(String, _)> = crs
            .iter()
            .filter(|(_, s)| s.secret_ref.name == name && s.injection.admission())
            .collect();
        let mut ok = false;
        let mut why = String::from("no usable source");
        for (cr, spec) in owners {
            match shared.ensure_copy(cr, spec, &ns.name, dry_run).await {
                Ok(true) => {
                    ok = true;
                    break;
                }
                Ok(false) => why = "source not usable or name taken".into(),
                Err(e) => why = e,
            }
        }
        if ok {
            ready.push(name);
        } else {
            shared.metrics.inc(
                "kubepull_operator_webhook_skipped_total",
                "reason=\"copy-unavailable\"",
            );
            warnings.push(format!(
                "kubepull-operator: pull secret {name:?} not added to this pod: {why}"
            ));
        }
    }
    if ready.is_empty() {
        shared.metrics.inc(
            "kubepull_operator_webhook_requests_total",
            "result=\"skipped\"",
        );
        return Ok(allowed(uid, None, &warnings));
    }
    let patch = admission_patch(pod, &ready);
    shared.metrics.inc(
        "kubepull_operator_webhook_requests_total",
        "result=\"mutated\"",
    );
    shared
        .metrics
        .inc("kubepull_operator_webhook_mutations_total", "");
    Ok(allowed(uid, Some(&patch), &warnings))
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let start = Instant::now();
    let reply = |code: StatusCode, body: String, ct: &str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        if let Ok(v) = ct.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        Ok(r)
    };
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/healthz") | ("GET", "/readyz") => {
            return reply(StatusCode::OK, "ok".into(), "text/plain")
        }
        ("POST", PATH) => {}
        _ => return reply(StatusCode::NOT_FOUND, "not found".into(), "text/plain"),
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body unreadable or over {MAX_BODY} bytes: {e}"),
                "text/plain",
            )
        }
    };
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("AdmissionReview is not JSON: {e}"),
                "text/plain",
            )
        }
    };
    let out = match admit(&shared, &review).await {
        Ok(v) => v,
        Err(e) => {
            shared.metrics.inc(
                "kubepull_operator_webhook_skipped_total",
                "reason=\"bad-request\"",
            );
            return reply(StatusCode::BAD_REQUEST, e, "text/plain");
        }
    };
    shared
        .metrics
        .observe_webhook(start.elapsed().as_secs_f64());
    reply(StatusCode::OK, out.to_string(), "application/json")
}

/// Serves the webhook (HTTPS) on `listener` until `shutdown` resolves.
pub async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
        });
    }
}

/// Serves `/metrics` (plain HTTP) on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move {
                    let (code, body, ct) = match req.uri().path() {
                        "/metrics" => (
                            StatusCode::OK,
                            shared.metrics.render(),
                            "text/plain; version=0.0.4",
                        ),
                        "/healthz" | "/readyz" => (StatusCode::OK, "ok".into(), "text/plain"),
                        _ => (StatusCode::NOT_FOUND, "not found".into(), "text/plain"),
                    };
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = code;
                    if let Ok(v) = ct.parse() {
                        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                    }
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
        });
    }
}
