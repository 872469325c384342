//! Ingresses and IngressClasses (`networking.k8s.io/v1`), stored and checked as kube-apiserver
//! checks them (pkg/apis/networking/validation/validation.go `ValidateIngressCreate`,
//! `ValidateIngressUpdate`, `ValidateIngressSpec`, `ValidateIngressClass`,
//! `ValidateIngressClassUpdate`, 1.32). No ingress controller runs here: an Ingress routes
//! nothing until one does, and its status stays empty.

use serde_json::Value;

use crate::admission::dns1123_subdomain_problems;
use crate::errors::Cause;

/// `invalidPathSequences`.
const BAD_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
/// `invalidPathSuffixes`.
const BAD_SUFFIXES: &[&str] = &["/..", "/."];
/// `supportedPathTypes`, sorted.
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
/// `annotationIngressClass`.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// `IsWildcardDNS1123Subdomain`'s shape message.
const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn q(v: &str) -> String {
    format!("{v:?}")
}

fn arr(v: &Value, p: &str) -> Vec<Value> {
    v.pointer(p)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `IsWildcardDNS1123Subdomain`.
fn wildcard_problems(host: &str) -> Vec<&'static str> {
    let mut out = vec![];
    if host.len() > 253 {
        out.push("must be no more than 253 characters");
    }
    let ok = host
        .strip_prefix("*.")
        .is_some_and(|rest| dns1123_subdomain_problems(rest).is_empty());
    if !ok {
        out.push(WILDCARD_MSG);
    }
    out
}

/// A host that names a DNS subdomain, or a wildcard one when it has a `*`.
fn host_problems(host: &str) -> Vec<&'static str> {
    if host.contains('*') {
        wildcard_problems(host)
    } else {
        dns1123_subdomain_problems(host)
    }
}

/// `validateIngressBackend`.
fn validate_backend(b: &Value, at: &str, causes: &mut Vec<Cause>) {
    let resource = b.get("resource").filter(|v| !v.is_null());
    let service = b.get("service").filter(|v| !v.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => causes.push(Cause::invalid(
            at,
            "\"\"",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let at = format!("{at}.resource");
            let group = s(r, "/apiGroup");
            if !group.is_empty() {
                for m in dns1123_subdomain_problems(group) {
                    causes.push(Cause::invalid(format!("{at}.apiGroup"), q(group), m));
                }
            }
            for f in ["kind", "name"] {
                let v = s(r, &format!("/{f}"));
                if v.is_empty() {
                    causes.push(Cause::required(
                        format!("{at}.{f}"),
                        format!("{f} is required"),
                    ));
                } else {
                    // IsValidPathSegmentName
                    for bad in ["/", "%"] {
                        if v.contains(bad) {
                            causes.push(Cause::invalid(
                                format!("{at}.{f}"),
                                q(v),
                                format!("may not contain '{bad}'"),
                            ));
                        }
                    }
                    if v == "." || v == ".." {
                        causes.push(Cause::invalid(
                            format!("{at}.{f}"),
                            q(v),
                            format!("may not be '{v}'"),
                        ));
                    }
                }
            }
        }
        (None, Some(svc)) => {
            let name = s(svc, "/name");
            if name.is_empty() {
                causes.push(Cause::required(format!("{at}.service.name"), ""));
            } else {
                // ValidateServiceName: NameIsDNS1035Label
                if name.len() > 63 {
                    causes.push(Cause::invalid(
                        format!("{at}.service.name"),
                        q(name),
                        "must be no more than 63 characters",
                    ));
                }
                let b = name.as_bytes();
                let shaped = b[0].is_ascii_lowercase()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                    && !name.ends_with('-');
                if !shaped {
                    causes.push(Cause::invalid(
                        format!("{at}.service.name"),
                        q(name),
                        crate::crd::DNS1035_MSG,
                    ));
                }
            }
            let port_name = s(svc, "/port/name");
            let number = svc
                .pointer("/port/number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            match (port_name.is_empty(), number != 0) {
                (false, true) => causes.push(Cause::invalid(
                    at,
                    "\"\"",
                    "cannot set both port name & port number",
                )),
                (false, false) => {
                    if let Some(m) = crate::services::port_name_problem(port_name) {
                        causes.push(Cause::invalid(
                            format!("{at}.service.port.name"),
                            q(port_name),
                            m,
                        ));
                    }
                }
                (true, true) => {
                    if !(1..=65535).contains(&number) {
                        causes.push(Cause::invalid(
                            format!("{at}.service.port.number"),
                            number.to_string(),
                            crate::services::PORT_RANGE,
                        ));
                    }
                }
                (true, false) => {
                    causes.push(Cause::required(at, "port name or number is required"))
                }
            }
        }
        (None, None) => causes.push(Cause::invalid(
            at,
            "\"\"",
            "resource or service backend is required",
        )),
    }
}

/// `validateHTTPIngressPath`.
fn validate_path(p: &Value, at: &str, causes: &mut Vec<Cause>) {
    let Some(ty) = p.get("pathType").and_then(Value::as_str) else {
        causes.push(Cause::required(
            format!("{at}.pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let path = s(p, "/path");
    match ty {
        "Exact" | "Prefix" => {
            if !path.starts_with('/') {
                causes.push(Cause::invalid(
                    format!("{at}.path"),
                    q(path),
                    "must be an absolute path",
                ));
            }
            if !path.is_empty() {
                for seq in BAD_SEQUENCES {
                    if path.contains(seq) {
                        causes.push(Cause::invalid(
                            format!("{at}.path"),
                            q(path),
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suf in BAD_SUFFIXES {
                    if path.ends_with(suf) {
                        causes.push(Cause::invalid(
                            format!("{at}.path"),
                            q(path),
                            format!("cannot end with '{suf}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !path.is_empty() && !path.starts_with('/') {
                causes.push(Cause::invalid(
                    format!("{at}.path"),
                    q(path),
                    "must be an absolute path",
                ));
            }
        }
        other => causes.push(Cause::not_supported(
            format!("{at}.pathType"),
            q(other),
            PATH_TYPES,
        )),
    }
    validate_backend(
        p.get("backend").unwrap_or(&Value::Null),
        &format!("{at}.backend"),
        causes,
    );
}

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

/// `IngressValidationOptions`: what an update may keep because the stored object had it.
#[derive(Clone, Copy, Default)]
struct Opts {
    /// `AllowInvalidSecretName`: a stored TLS secret name was not a valid Secret name.
    invalid_secret_names: bool,
    /// `AllowInvalidWildcardHostRule`: a stored rule under a wildcard host was not valid.
    invalid_wildcard_rules: bool,
}

/// `allowInvalidSecretName` and `allowInvalidWildcardHostRule` of the stored object.
fn opts_of(old: &Value) -> Opts {
    let invalid_secret_names = arr(old, "/spec/tls").iter().any(|t| {
        let n = s(t, "/secretName");
        !n.is_empty() && !dns1123_subdomain_problems(n).is_empty()
    });
    let invalid_wildcard_rules = arr(old, "/spec/rules").iter().any(|r| {
        if !s(r, "/host").contains('*') {
            return false;
        }
        let mut c = vec![];
        validate_rule_value(r, "", &mut c);
        !c.is_empty()
    });
    Opts {
        invalid_secret_names,
        invalid_wildcard_rules,
    }
}

/// `validateIngressRuleValue`.
fn validate_rule_value(rule: &Value, at: &str, causes: &mut Vec<Cause>) {
    if let Some(http) = rule.get("http").filter(|v| !v.is_null()) {
        let paths = arr(http, "/paths");
        if paths.is_empty() {
            causes.push(Cause::required(format!("{at}.http.paths"), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            validate_path(p, &format!("{at}.http.paths[{j}]"), causes);
        }
    }
}

/// `ValidateIngressSpec`.
fn validate_spec(obj: &Value, opts: Opts, causes: &mut Vec<Cause>) {
    let rules = arr(obj, "/spec/rules");
    let default = obj.pointer("/spec/defaultBackend").filter(|v| !v.is_null());
    if rules.is_empty() && default.is_none() {
        causes.push(Cause::invalid(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        validate_backend(b, "spec.defaultBackend", causes);
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let host = s(rule, "/host");
        if !host.is_empty() {
            if is_ip(host) {
                causes.push(Cause::invalid(
                    format!("{at}.host"),
                    q(host),
                    "must be a DNS name, not an IP address",
                ));
            }
            for m in host_problems(host) {
                causes.push(Cause::invalid(format!("{at}.host"), q(host), m));
            }
        }
        if !host.contains('*') || !opts.invalid_wildcard_rules {
            validate_rule_value(rule, &at, causes);
        }
    }
    for (i, tls) in arr(obj, "/spec/tls").iter().enumerate() {
        for (j, h) in arr(tls, "/hosts").iter().enumerate() {
            let h = h.as_str().unwrap_or("");
            for m in host_problems(h) {
                causes.push(Cause::invalid(format!("spec.tls[{i}].hosts[{j}]"), q(h), m));
            }
        }
        // validateTLSSecretName: ValidateSecretName, for a name that is set
        let secret = s(tls, "/secretName");
        if !secret.is_empty() && !opts.invalid_secret_names {
            for m in dns1123_subdomain_problems(secret) {
                causes.push(Cause::invalid(
                    format!("spec.tls[{i}].secretName"),
                    q(secret),
                    m,
                ));
            }
        }
    }
    if let Some(class) = obj
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
    {
        for m in dns1123_subdomain_problems(class) {
            causes.push(Cause::invalid("spec.ingressClassName", q(class), m));
        }
    }
}

/// `ValidateIngressCreate` / `ValidateIngressUpdate` (the spec; the metadata is checked with
/// every kind's). An update may keep what the stored object had, as upstream's options allow:
/// invalid TLS secret names once one was, invalid rules under wildcard hosts once one was.
pub fn validate_ingress(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    validate_spec(obj, old.map(opts_of).unwrap_or_default(), &mut causes);
    // ValidateIngressCreate only
    if old.is_none() {
        let ann = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CLASS_ANNOTATION))
            .and_then(Value::as_str);
        let class = obj
            .pointer("/spec/ingressClassName")
            .and_then(Value::as_str);
        if let (Some(a), Some(c)) = (ann, class) {
            if a != c {
                causes.push(Cause::invalid(
                    format!("annotations.{CLASS_ANNOTATION}"),
                    q(a),
                    "must match `ingressClassName` when both are specified",
                ));
            }
        }
    }
    causes
}

/// `maxLenIngressClassController`.
const MAX_CONTROLLER_LEN: usize = 250;
/// `httpPathFmt` (apimachinery util/validation).
const HTTP_PATH_FMT: &str = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+";

/// `IsDomainPrefixedPath` (apimachinery util/validation): `host/path`, the host a DNS subdomain,
/// the path HTTP path characters.
fn domain_prefixed_path(field: &str, v: &str, causes: &mut Vec<Cause>) {
    if v.is_empty() {
        causes.push(Cause::required(field, ""));
        return;
    }
    let Some((host, path)) = v
        .split_once('/')
        .filter(|(h, p)| !h.is_empty() && !p.is_empty())
    else {
        causes.push(Cause::invalid(
            field,
            q(v),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    for m in dns1123_subdomain_problems(host) {
        causes.push(Cause::invalid(field, q(host), m));
    }
    let http_path = |b: u8| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b);
    if !path.bytes().all(http_path) {
        causes.push(Cause::invalid(
            field,
            q(path),
            format!("Invalid path (regex used for validation is '{HTTP_PATH_FMT}')"),
        ));
    }
}

/// `validateIngressClassParametersReference` (with `validateIngressTypedLocalObjectReference`).
fn class_parameters(p: &Value, causes: &mut Vec<Cause>) {
    const PATH: &str = "spec.parameters";
    if let Some(g) = p.get("apiGroup").and_then(Value::as_str) {
        for m in dns1123_subdomain_problems(g) {
            causes.push(Cause::invalid(format!("{PATH}.apiGroup"), q(g), m));
        }
    }
    for (key, what) in [("kind", "kind is required"), ("name", "name is required")] {
        match s(p, &format!("/{key}")) {
            "" => causes.push(Cause::required(format!("{PATH}.{key}"), what)),
            v => {
                for m in crate::rbac::path_segment_problems(v) {
                    causes.push(Cause::invalid(format!("{PATH}.{key}"), q(v), m));
                }
            }
        }
    }
    let Some(scope) = p.get("scope").and_then(Value::as_str) else {
        causes.push(Cause::required(format!("{PATH}.scope"), ""));
        return;
    };
    let namespace = p.get("namespace").and_then(Value::as_str);
    match scope {
        "Namespace" => match namespace {
            None => causes.push(Cause::required(
                format!("{PATH}.namespace"),
                "`parameters.scope` is set to 'Namespace'",
            )),
            Some(ns) => {
                for m in crate::admission::dns1123_label_problems(ns) {
                    causes.push(Cause::invalid(format!("{PATH}.namespace"), q(ns), m));
                }
            }
        },
        "Cluster" => {
            if namespace.is_some() {
                causes.push(Cause::forbidden(
                    format!("{PATH}.namespace"),
                    "`parameters.scope` is set to 'Cluster'",
                ));
            }
        }
        other => causes.push(Cause::not_supported(
            format!("{PATH}.scope"),
            q(other),
            &["Cluster", "Namespace"],
        )),
    }
}

/// `ValidateIngressClass` / `ValidateIngressClassUpdate` (the spec; the metadata is checked
/// with every kind's): the controller a domain-prefixed path of at most 250 bytes, immutable;
/// the parameters a reference with a kind, a name and a scope.
pub fn validate_ingress_class(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    let controller = s(obj, "/spec/controller");
    if let Some(old) = old {
        let was = s(old, "/spec/controller");
        if was != controller {
            causes.push(Cause::invalid(
                "spec.controller",
                q(controller),
                "field is immutable",
            ));
        }
    }
    if controller.len() > MAX_CONTROLLER_LEN {
        causes.push(Cause::too_long(
            "spec.controller",
            MAX_CONTROLLER_LEN as u64,
        ));
    }
    domain_prefixed_path("spec.controller", controller, &mut causes);
    if let Some(p) = obj.pointer("/spec/parameters").filter(|p| p.is_object()) {
        class_parameters(p, &mut causes);
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ingress_classes_are_checked_as_upstream() {
        let class = |spec: Value| json!({"metadata": {"name": "nginx"}, "spec": spec});
        let ok = class(json!({"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p", "scope": "Cluster"}}));
        assert!(validate_ingress_class(&ok, None).is_empty());
        let bad = class(json!({"controller": "nginx",
            "parameters": {"kind": "a/b", "scope": "Namespace"}}));
        assert_eq!(
            lines(&validate_ingress_class(&bad, None)),
            [
                "spec.controller: \"nginx\" must be a domain-prefixed path (such as \"acme.io/foo\")",
                "spec.parameters.kind: \"a/b\" may not contain '/'",
                "spec.parameters.name:  name is required",
                "spec.parameters.namespace:  `parameters.scope` is set to 'Namespace'",
            ]
        );
        let bad = class(json!({"controller": "Bad_Host/x y",
            "parameters": {"kind": "K", "name": "n", "scope": "Cluster", "namespace": "ns"}}));
        let got = lines(&validate_ingress_class(&bad, None));
        assert!(
            got[0].starts_with("spec.controller: \"Bad_Host\" a lowercase RFC 1123 subdomain"),
            "{got:?}"
        );
        assert_eq!(got[1], "spec.controller: \"x y\" Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')");
        assert_eq!(
            got[2],
            "spec.parameters.namespace:  `parameters.scope` is set to 'Cluster'"
        );
        let no_scope = class(
            json!({"controller": "a.io/b", "parameters": {"kind": "K", "name": "n", "scope": "Everywhere"}}),
        );
        assert_eq!(
            lines(&validate_ingress_class(&no_scope, None)),
            ["spec.parameters.scope: \"Everywhere\" supported values: \"Cluster\", \"Namespace\""]
        );
        // the controller may not change
        let moved = class(json!({"controller": "b.io/c"}));
        assert_eq!(
            lines(&validate_ingress_class(&moved, Some(&ok))),
            ["spec.controller: \"b.io/c\" field is immutable"]
        );
        let long = class(json!({"controller": format!("a.io/{}", "x".repeat(250))}));
        assert_eq!(
            lines(&validate_ingress_class(&long, None)),
            ["spec.controller:  may not be more than 250 bytes"]
        );
    }

    fn lines(c: &[Cause]) -> Vec<String> {
        c.iter()
            .map(|c| {
                format!(
                    "{}: {} {}",
                    c.field,
                    c.value.as_deref().unwrap_or(""),
                    c.detail
                )
            })
            .collect()
    }

    fn ing(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn a_good_ingress_passes() {
        let i = ing(
            json!({"ingressClassName": "nginx", "rules": [{"host": "*.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "/api", "pathType": "Exact", "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}],
            "tls": [{"hosts": ["www.example.com"], "secretName": "tls"}]}),
        );
        assert!(
            validate_ingress(&i, None).is_empty(),
            "{:?}",
            lines(&validate_ingress(&i, None))
        );
    }

    #[test]
    fn rules_paths_and_backends() {
        assert_eq!(
            lines(&validate_ingress(&ing(json!({})), None)),
            ["spec: []networking.IngressRule(nil) either `defaultBackend` or `rules` must be specified"]
        );
        let i = ing(json!({"rules": [
            {"host": "10.0.0.1", "http": {"paths": [{"path": "a//b", "pathType": "Prefix", "backend": {}}]}},
            {"host": "foo.*.com", "http": {"paths": [{"path": "/x", "backend": {"service": {"name": "Web", "port": {"number": 80, "name": "http"}}}}]}},
            {"http": {"paths": [{"path": "/x/..", "pathType": "Regex", "backend": {"service": {"name": "web"}}}]}},
            {"http": {"paths": [{"path": "/y/.", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 70000}}}}]}}
        ]}));
        let l = lines(&validate_ingress(&i, None));
        let want = [
            "spec.rules[0].host: \"10.0.0.1\" must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].path: \"a//b\" must be an absolute path",
            "spec.rules[0].http.paths[0].path: \"a//b\" must not contain '//'",
            "spec.rules[0].http.paths[0].backend: \"\" resource or service backend is required",
            "spec.rules[1].host: \"foo.*.com\" a wildcard DNS-1123 subdomain",
            "spec.rules[1].http.paths[0].pathType:  pathType must be specified",
            "spec.rules[2].http.paths[0].pathType: \"Regex\" supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            "spec.rules[2].http.paths[0].backend:  port name or number is required",
            "spec.rules[3].http.paths[0].path: \"/y/.\" cannot end with '/.'",
            "spec.rules[3].http.paths[0].backend.service.port.number: 70000 must be between 1 and 65535, inclusive",
        ];
        assert_eq!(l.len(), want.len(), "{l:#?}");
        for (got, w) in l.iter().zip(want) {
            assert!(got.starts_with(w), "{got}\n{w}");
        }
        let both = ing(
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80, "name": "http"}},
            "resource": {"kind": "Bucket", "name": "b"}}}),
        );
        assert_eq!(
            lines(&validate_ingress(&both, None)),
            ["spec.defaultBackend: \"\" cannot set both resource and service backends"]
        );
        let mut ann = ing(
            json!({"ingressClassName": "a", "defaultBackend": {"resource": {"kind": "Bucket", "name": "b"}}}),
        );
        ann["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "b"});
        assert_eq!(
            lines(&validate_ingress(&ann, None)),
            ["annotations.kubernetes.io/ingress.class: \"b\" must match `ingressClassName` when both are specified"]
        );
        // an update does not check the annotation
        assert!(validate_ingress(&ann, Some(&ann)).is_empty());
    }

    #[test]
    fn an_update_keeps_a_stored_bad_secret_name() {
        let old = ing(
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
            "tls": [{"secretName": "Bad_Name"}]}),
        );
        assert_eq!(validate_ingress(&old, None).len(), 1);
        assert!(validate_ingress(&old, Some(&old)).is_empty());
        // allowInvalidSecretName: an object that had one may keep having one
        let mut other = old.clone();
        other["spec"]["tls"][0]["secretName"] = json!("Worse_Name");
        assert!(validate_ingress(&other, Some(&old)).is_empty());
        // one that had none may not start
        let mut good = old.clone();
        good["spec"]["tls"][0]["secretName"] = json!("tls");
        assert_eq!(validate_ingress(&other, Some(&good)).len(), 1);
    }
}
