//! The node agent's Prometheus metrics (`--metrics-bind ADDR`, plain HTTP `GET /metrics`): image
//! pulls by result and cause (the cause in `kubepull doctor`'s vocabulary, from the error the
//! pull ended with), their durations and bytes, back-offs, and the ensure-secret-pulled
//! (KEP-2535) decisions for images already present.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use kubepull_core::metrics::{labels, Desc, Kind, Registry, SLOW_BUCKETS};

const DESCS: &[Desc] = &[
    Desc {
        name: "kubepull_node_image_pulls_total",
        help: "Image pulls by result (success, failure) and, for failures, the cause as kubepull doctor names it.",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_node_image_pull_duration_seconds",
        help: "Time from the start of a pull to its end (queueing behind the node's pull limit included), by result.",
        kind: Kind::Histogram(SLOW_BUCKETS),
    },
    Desc {
        name: "kubepull_node_image_pull_bytes_total",
        help: "Bytes of the images pulled (their size as stored).",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_node_image_pull_backoffs_total",
        help: "Container starts held back by an image pull back-off (ImagePullBackOff).",
        kind: Kind::Counter,
    },
    Desc {
        name: "kubepull_node_image_present_decisions_total",
        help: "Decisions for an image already on the node: used as present, or pulled again to verify the pod's credentials (ensure-secret-pulled, KEP-2535), or refused under policy Never.",
        kind: Kind::Counter,
    },
];

/// The node's metrics (one per process).
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::new(DESCS))
}

/// A pull that ended: `error` is the failure's text (classified, never recorded as such).
pub fn pull_finished(seconds: f64, bytes: Option<u64>, error: Option<&str>) {
    let r = registry();
    match error {
        None => {
            r.inc(
                "kubepull_node_image_pulls_total",
                &labels(&[("result", "success"), ("cause", "")]),
            );
            r.observe(
                "kubepull_node_image_pull_duration_seconds",
                &labels(&[("result", "success")]),
                seconds,
            );
            if let Some(b) = bytes {
                r.add("kubepull_node_image_pull_bytes_total", "", b as f64);
            }
        }
        Some(e) => {
            let cause = kubepull_core::diagnose::message::classify_message(e).cause;
            r.inc(
                "kubepull_node_image_pulls_total",
                &labels(&[("result", "failure"), ("cause", cause.as_str())]),
            );
            r.observe(
                "kubepull_node_image_pull_duration_seconds",
                &labels(&[("result", "failure")]),
                seconds,
            );
        }
    }
}

/// A container start held back by the image's back-off.
pub fn back_off() {
    registry().inc("kubepull_node_image_pull_backoffs_total", "");
}

/// A decision for an image already present: `used`, `verify` (pulled again to check the pod's
/// credentials) or `never` (policy Never and verification required).
pub fn present_decision(decision: &'static str) {
    registry().inc(
        "kubepull_node_image_present_decisions_total",
        &labels(&[("decision", decision)]),
    );
}

/// Serves `/metrics` (and `/healthz`) on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let (code, body, ct) = match req.uri().path() {
                        "/metrics" => (
                            StatusCode::OK,
                            registry().render(),
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                        "/healthz" => (StatusCode::OK, "ok".to_string(), "text/plain"),
                        _ => (StatusCode::NOT_FOUND, "not found".to_string(), "text/plain"),
                    };
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = code;
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(ct),
                    );
                    Ok::<_, Infallible>(r)
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
    }
    conns.abort_all();
}

/// Binds `addr` for [`serve`], naming the flag in the error.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-bind {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_the_doctor_cause_and_never_by_their_text() {
        pull_finished(
            0.5,
            None,
            Some("failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://r.example/token: 401 Unauthorized"),
        );
        let t = registry().render();
        assert!(
            t.contains("kubepull_node_image_pulls_total{result=\"failure\",cause=\""),
            "{t}"
        );
        assert!(!t.contains("r.example"), "{t}");
        pull_finished(2.0, Some(1024), None);
        let t = registry().render();
        assert!(t.contains("kubepull_node_image_pull_bytes_total"), "{t}");
        assert!(
            t.contains("kubepull_node_image_pull_duration_seconds_count{result=\"success\"}"),
            "{t}"
        );
    }
}
