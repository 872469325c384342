//! The API server's Prometheus metrics at `/metrics`, with kube-apiserver's names and labels
//! (k8s.io/apiserver `pkg/endpoints/metrics/metrics.go`: `apiserver_request_total`,
//! `apiserver_request_duration_seconds`, which leaves WATCH and CONNECT out), so existing
//! dashboards and alerts read them; plus the admission webhook calls
//! (`apiserver_admission_webhook_request_total`).

use std::sync::OnceLock;

use kubepull_core::metrics::{labels, Desc, Kind, Registry, FAST_BUCKETS};

const DESCS: &[Desc] = &[
    Desc {
        name: "apiserver_request_total",
        help: "Counter of apiserver requests broken out for each verb, group, resource, subresource and HTTP response code.",
        kind: Kind::Counter,
    },
    Desc {
        name: "apiserver_request_duration_seconds",
        help: "Response latency distribution in seconds for each verb, group, resource and subresource (WATCH and CONNECT excluded).",
        kind: Kind::Histogram(FAST_BUCKETS),
    },
    Desc {
        name: "apiserver_admission_webhook_request_total",
        help: "Admission webhook calls by webhook name, type (admit or validating), operation, result and rejection.",
        kind: Kind::Counter,
    },
];

/// The server's metrics (one per process, as kube-apiserver's legacy registry).
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::new(DESCS))
}

/// What a request path names: `(group, resource, subresource, named)`; `None` for non-resource
/// paths (discovery, OpenAPI, health).
pub fn target(path: &str) -> Option<(String, String, String, bool)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let rest: &[&str] = match rest {
        // /namespaces/NS/RESOURCE…; /namespaces and /namespaces/NS[/status] are namespaces
        ["namespaces", _ns, r, tail @ ..] if !matches!(*r, "status" | "finalize") => {
            let mut v = vec![*r];
            v.extend_from_slice(tail);
            return Some(split(group, &v));
        }
        r => r,
    };
    if rest.is_empty() {
        return None;
    }
    Some(split(group, rest))
}

fn split(group: &str, rest: &[&str]) -> (String, String, String, bool) {
    let resource = rest.first().copied().unwrap_or("").to_string();
    let named = rest.len() >= 2;
    let sub = rest.get(2).copied().unwrap_or("").to_string();
    (group.to_string(), resource, sub, named)
}

/// kube-apiserver's verb label: LIST and WATCH for collection reads, DELETECOLLECTION, APPLY.
pub fn verb(method: &str, query: &str, named: bool, content_type: &str) -> &'static str {
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    match method {
        "GET" if watch => "WATCH",
        "GET" if named => "GET",
        "GET" => "LIST",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" if content_type.starts_with("application/apply-patch") => "APPLY",
        "PATCH" => "PATCH",
        "DELETE" if named => "DELETE",
        "DELETE" => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

/// Records one finished request.
pub fn record(method: &str, path: &str, query: &str, content_type: &str, code: u16, seconds: f64) {
    let Some((group, resource, sub, named)) = target(path) else {
        return;
    };
    let v = verb(method, query, named, content_type);
    let r = registry();
    let code = code.to_string();
    r.inc(
        "apiserver_request_total",
        &labels(&[
            ("verb", v),
            ("group", &group),
            ("resource", &resource),
            ("subresource", &sub),
            ("code", &code),
        ]),
    );
    if v != "WATCH" {
        r.observe(
            "apiserver_request_duration_seconds",
            &labels(&[
                ("verb", v),
                ("group", &group),
                ("resource", &resource),
                ("subresource", &sub),
            ]),
            seconds,
        );
    }
}

/// Records one admission webhook call.
pub fn webhook_call(name: &str, mutating: bool, operation: &str, result: &str, rejected: bool) {
    registry().inc(
        "apiserver_admission_webhook_request_total",
        &labels(&[
            ("name", name),
            ("type", if mutating { "admit" } else { "validating" }),
            ("operation", operation),
            ("result", result),
            ("rejected", if rejected { "true" } else { "false" }),
        ]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_what_kube_apiserver_labels() {
        let t = |p| target(p).map(|(g, r, s, n)| format!("{g}|{r}|{s}|{n}"));
        assert_eq!(
            t("/api/v1/namespaces/a/pods").as_deref(),
            Some("|pods||false")
        );
        assert_eq!(
            t("/api/v1/namespaces/a/pods/p/status").as_deref(),
            Some("|pods|status|true")
        );
        assert_eq!(
            t("/api/v1/namespaces").as_deref(),
            Some("|namespaces||false")
        );
        assert_eq!(
            t("/api/v1/namespaces/a").as_deref(),
            Some("|namespaces||true")
        );
        assert_eq!(
            t("/api/v1/namespaces/a/finalize").as_deref(),
            Some("|namespaces|finalize|true")
        );
        assert_eq!(
            t("/apis/apps/v1/namespaces/a/deployments/d/scale").as_deref(),
            Some("apps|deployments|scale|true")
        );
        assert_eq!(
            t("/apis/apps/v1/deployments").as_deref(),
            Some("apps|deployments||false")
        );
        assert_eq!(t("/api/v1"), None);
        assert_eq!(t("/apis"), None);
        assert_eq!(t("/openapi/v2"), None);
        assert_eq!(verb("GET", "watch=true&rv=1", false, ""), "WATCH");
        assert_eq!(verb("GET", "", false, ""), "LIST");
        assert_eq!(verb("GET", "", true, ""), "GET");
        assert_eq!(verb("DELETE", "", false, ""), "DELETECOLLECTION");
        assert_eq!(
            verb("PATCH", "", true, "application/apply-patch+yaml"),
            "APPLY"
        );
    }
}
