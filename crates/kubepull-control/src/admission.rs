//! Defaulting, validation and strict decoding for the served types, as kube-apiserver does for
//! the fields kubepull uses (kubernetes `pkg/apis/core/v1/defaults.go`,
//! `pkg/apis/core/validation/validation.go`, `pkg/apis/apps/validation`). Messages never echo
//! Secret data.

use serde_json::{json, Value};

use crate::errors::Cause;
use crate::resources::Resource;

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub(crate) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Validates `metadata.name` for a resource.
pub fn validate_name(r: &Resource, name: &str) -> Vec<Cause> {
    if name.is_empty() {
        return vec![Cause::required(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    if r.group == "rbac.authorization.k8s.io" {
        // ValidateRBACName: path.IsValidPathSegmentName (k8s.io/apimachinery pkg/api/validation/path)
        let mut msgs = vec![];
        if name == "." || name == ".." {
            msgs.push(format!("may not be '{name}'"));
        }
        for bad in ["/", "%"] {
            if name.contains(bad) {
                msgs.push(format!("may not contain '{bad}'"));
            }
        }
        return msgs
            .into_iter()
            .map(|m| Cause::invalid("metadata.name", format!("\"{name}\""), m))
            .collect();
    }
    let label_only = matches!(r.kind, "Namespace" | "ServiceAccount");
    let ok = if label_only {
        is_dns1123_label(name)
    } else {
        is_dns1123_subdomain(name)
    };
    if ok {
        vec![]
    } else {
        vec![Cause::invalid(
            "metadata.name",
            format!("\"{name}\""),
            if label_only {
                DNS1123_LABEL_MSG
            } else {
                DNS1123_SUBDOMAIN_MSG
            },
        )]
    }
}

fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    if obj.pointer(pointer).is_none() {
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        let mut cur = obj;
        for (i, p) in parts.iter().enumerate() {
            if !cur.is_object() {
                return;
            }
            let last = i == parts.len() - 1;
            let m = cur.as_object_mut().expect("object");
            if last {
                m.insert(p.to_string(), value);
                return;
            }
            cur = m.entry(p.to_string()).or_insert_with(|| json!({}));
        }
    }
}

/// Pod spec defaults (`SetDefaults_PodSpec`, `SetDefaults_Container`).
pub fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "/restartPolicy", json!("Always"));
    set_default(spec, "/terminationGracePeriodSeconds", json!(30));
    set_default(spec, "/dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "/schedulerName", json!("default-scheduler"));
    set_default(spec, "/securityContext", json!({}));
    set_default(spec, "/enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs {
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if c.get("imagePullPolicy").is_none() && !image.is_empty() {
                    let p = kubepull_core::pullpolicy::default_pull_policy(&image);
                    c["imagePullPolicy"] = json!(p.as_str());
                }
                set_default(c, "/terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "/terminationMessagePolicy", json!("File"));
                set_default(c, "/resources", json!({}));
            }
        }
    }
}

/// Defaults for a new or updated object of `r`.
pub fn default_object(r: &Resource, obj: &mut Value) {
    match r.kind {
        "Secret" => {
            set_default(obj, "/type", json!("Opaque"));
            // stringData is write-only: merged into data (kube-apiserver secret strategy)
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                use base64::Engine as _;
                if !obj.get("data").is_some_and(Value::is_object) {
                    obj["data"] = json!({});
                }
                for (k, v) in sd {
                    obj["data"][k] =
                        json!(base64::engine::general_purpose::STANDARD
                            .encode(v.as_str().unwrap_or("")));
                }
            }
        }
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        "Deployment" => {
            set_default(obj, "/spec/replicas", json!(1));
            set_default(obj, "/spec/revisionHistoryLimit", json!(10));
            set_default(obj, "/spec/progressDeadlineSeconds", json!(600));
            if obj.pointer("/spec/strategy/type").is_none() {
                set_default(obj, "/spec/strategy/type", json!("RollingUpdate"));
            }
            if obj.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
                set_default(
                    obj,
                    "/spec/strategy/rollingUpdate/maxUnavailable",
                    json!("25%"),
                );
                set_default(obj, "/spec/strategy/rollingUpdate/maxSurge", json!("25%"));
            }
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec);
            }
        }
        "ReplicaSet" => {
            set_default(obj, "/spec/replicas", json!(1));
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec);
            }
        }
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            crate::webhooks::default_configuration(r, obj)
        }
        "Service" => crate::services::default_service(obj),
        "Job" => {
            crate::controllers::job::default_job(obj);
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec);
            }
        }
        "CronJob" => {
            crate::controllers::cronjob::default_cronjob(obj);
            if let Some(spec) = obj.pointer_mut("/spec/jobTemplate/spec/template/spec") {
                default_pod_spec(spec);
            }
        }
        "Namespace" => {
            // SetDefaults_Namespace (pkg/apis/core/v1/defaults.go): the name as a label, which
            // webhook namespaceSelectors use (`kubernetes.io/metadata.name NotIn [kube-system]`)
            if let Some(n) = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
            {
                if !obj
                    .pointer("/metadata/labels")
                    .is_some_and(Value::is_object)
                {
                    obj["metadata"]["labels"] = json!({});
                }
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(n);
            }
            set_default(obj, "/spec/finalizers", json!(["kubernetes"]));
            set_default(obj, "/status/phase", json!("Active"));
        }
        _ => {}
    }
}

/// `IsValidUserID` / `IsValidGroupID` (k8s.io/apimachinery `pkg/util/validation`), as
/// `ValidatePodSecurityContext` and `ValidateSecurityContext` (pkg/apis/core/validation) apply
/// them: 0 ..= math.MaxInt32.
fn validate_ids(sc: Option<&Value>, path: &str, fields: &[&str], causes: &mut Vec<Cause>) {
    let Some(sc) = sc else { return };
    let check = |v: &Value, field: String, causes: &mut Vec<Cause>| {
        if let Some(n) = v.as_i64() {
            if !(0..=i64::from(i32::MAX)).contains(&n) {
                causes.push(Cause::invalid(
                    field,
                    n.to_string(),
                    "must be between 0 and 2147483647, inclusive",
                ));
            }
        }
    };
    for f in fields {
        match (sc.get(*f), *f) {
            (Some(Value::Array(gs)), "supplementalGroups") => {
                for (i, g) in gs.iter().enumerate() {
                    check(g, format!("{path}.{f}[{i}]"), causes);
                }
            }
            (Some(v), _) => check(v, format!("{path}.{f}"), causes),
            (None, _) => {}
        }
    }
}

/// The user and group ID ranges of a pod spec, in `ValidatePodSpec` order: containers, init
/// containers, ephemeral containers, then the pod's security context.
fn validate_pod_ids(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get(list) {
            for (i, c) in cs.iter().enumerate() {
                validate_ids(
                    c.get("securityContext"),
                    &format!("{path}.{list}[{i}].securityContext"),
                    &["runAsUser", "runAsGroup"],
                    causes,
                );
            }
        }
    }
    validate_ids(
        spec.get("securityContext"),
        &format!("{path}.securityContext"),
        &["fsGroup", "runAsUser", "runAsGroup", "supplementalGroups"],
        causes,
    );
}

pub(crate) fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(format!("{path}.containers"), "")),
        Some(cs) if cs.is_empty() => causes.push(Cause::required(format!("{path}.containers"), "")),
        Some(cs) => {
            let mut names = std::collections::HashSet::new();
            for (i, c) in cs.iter().enumerate() {
                let cp = format!("{path}.containers[{i}]");
                let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty() {
                    causes.push(Cause::required(format!("{cp}.name"), ""));
                } else if !is_dns1123_label(name) {
                    causes.push(Cause::invalid(
                        format!("{cp}.name"),
                        format!("\"{name}\""),
                        DNS1123_LABEL_MSG,
                    ));
                } else if !names.insert(name.to_string()) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate",
                        field: format!("{cp}.name"),
                        value: Some(format!("\"{name}\"")),
                        detail: String::new(),
                    });
                }
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                if image.trim().is_empty() {
                    causes.push(Cause::required(format!("{cp}.image"), ""));
                }
                if let Some(p) = c.get("imagePullPolicy").and_then(Value::as_str) {
                    if kubepull_core::pullpolicy::PullPolicy::validate(p, "").is_err() {
                        causes.push(Cause::not_supported(
                            format!("{cp}.imagePullPolicy"),
                            format!("\"{p}\""),
                            &["Always", "IfNotPresent", "Never"],
                        ));
                    }
                }
            }
        }
    }
    if let Some(p) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !matches!(p, "Always" | "OnFailure" | "Never") {
            causes.push(Cause::not_supported(
                format!("{path}.restartPolicy"),
                format!("\"{p}\""),
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
    if let Some(Value::Array(ps)) = spec.get("imagePullSecrets") {
        for (i, s) in ps.iter().enumerate() {
            if s.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                causes.push(Cause::required(
                    format!("{path}.imagePullSecrets[{i}].name"),
                    "",
                ));
            }
        }
    }
    validate_pod_ids(spec, path, causes);
}

/// Validates a Secret's type and data (`ValidateSecret`). The value of a bad key is never echoed.
fn validate_secret(obj: &Value, causes: &mut Vec<Cause>) {
    use base64::Engine as _;
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    let data = obj.get("data").and_then(Value::as_object);
    let mut decoded = std::collections::BTreeMap::new();
    let mut total = 0usize;
    if let Some(d) = data {
        for (k, v) in d {
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                causes.push(Cause::invalid(
                    format!("data[{k}]"),
                    format!("\"{k}\""),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
                continue;
            }
            let bytes = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
            match bytes {
                Some(b) => {
                    total += b.len();
                    decoded.insert(k.clone(), b);
                }
                None if v.is_null() => {
                    decoded.insert(k.clone(), vec![]);
                }
                None => causes.push(Cause::invalid(
                    format!("data[{k}]"),
                    "\"<secret contents redacted>\"",
                    "illegal base64 data",
                )),
            }
        }
    }
    if total > 1 << 20 {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: "data".into(),
            value: None,
            detail: "Too long: may not be more than 1048576 bytes".into(),
        });
    }
    let json_key = |key: &str, causes: &mut Vec<Cause>| match decoded.get(key) {
        None => causes.push(Cause::required(format!("data[{key}]"), "")),
        Some(b) => {
            // json.Unmarshal into map[string]interface{}: Go's own syntax errors
            if let Err(e) = kubepull_core::gojson::decode::validate(b) {
                causes.push(Cause::invalid(
                    format!("data[{key}]"),
                    "\"<secret contents redacted>\"",
                    e.to_string(),
                ));
            } else if b.iter().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
                let kind = match b.iter().find(|c| !c.is_ascii_whitespace()) {
                    Some(b'[') => "array",
                    Some(b'"') => "string",
                    Some(b't') | Some(b'f') => "bool",
                    Some(b'n') => "",
                    _ => "number",
                };
                if !kind.is_empty() {
                    causes.push(Cause::invalid(
                        format!("data[{key}]"),
                        "\"<secret contents redacted>\"",
                        format!("json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"),
                    ));
                }
            }
        }
    };
    match ty {
        "kubernetes.io/dockerconfigjson" => json_key(".dockerconfigjson", causes),
        "kubernetes.io/dockercfg" => json_key(".dockercfg", causes),
        "kubernetes.io/basic-auth" => {
            if !decoded.contains_key("username") && !decoded.contains_key("password") {
                causes.push(Cause::required("data[username]", ""));
                causes.push(Cause::required("data[password]", ""));
            }
        }
        "kubernetes.io/ssh-auth" => {
            if !decoded.contains_key("ssh-privatekey") {
                causes.push(Cause::required("data[ssh-privatekey]", ""));
            }
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !decoded.contains_key(k) {
                    causes.push(Cause::required(format!("data[{k}]"), ""));
                }
            }
        }
        _ => {}
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) else {
        return selector.get("matchExpressions").is_some();
    };
    ml.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Validates a new object (or the new version on update).
pub fn validate(r: &Resource, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if old.is_none() {
        causes.extend(validate_name(r, name));
    }
    match r.kind {
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            causes.extend(crate::webhooks::validate_configuration(r, obj))
        }
        "Secret" => {
            validate_secret(obj, &mut causes);
            if let Some(old) = old {
                if old.get("type") != obj.get("type") {
                    causes.push(Cause::invalid(
                        "type",
                        format!(
                            "\"{}\"",
                            obj.get("type").and_then(Value::as_str).unwrap_or("")
                        ),
                        "field is immutable",
                    ));
                }
                if old.get("immutable") == Some(&json!(true))
                    && (old.get("data") != obj.get("data")
                        || obj.get("immutable") != Some(&json!(true)))
                {
                    causes.push(Cause::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            // ValidateRoleBindingUpdate: roleRef is immutable
            if let Some(old) = old {
                if old.get("roleRef") != obj.get("roleRef") {
                    let s = |p: &str| {
                        obj.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    causes.push(Cause::invalid(
                        "roleRef",
                        format!(
                            "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                            s("/roleRef/apiGroup"),
                            s("/roleRef/kind"),
                            s("/roleRef/name")
                        ),
                        "cannot change roleRef",
                    ));
                }
            }
        }
        "ConfigMap" => {
            if let Some(old) = old {
                if old.get("immutable") == Some(&json!(true))
                    && (old.get("data") != obj.get("data")
                        || obj.get("immutable") != Some(&json!(true)))
                {
                    causes.push(Cause::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        "Pod" => {
            match obj.get("spec") {
                Some(spec) => validate_pod_spec(spec, "spec", &mut causes),
                None => causes.push(Cause::required("spec.containers", "")),
            }
            if let Some(old) = old {
                // pod updates may only change images and a few fields (ValidatePodUpdate)
                let strip = |v: &Value| {
                    let mut s = v.get("spec").cloned().unwrap_or(json!({}));
                    if let Some(Value::Array(cs)) = s.get_mut("containers") {
                        for c in cs {
                            if let Some(o) = c.as_object_mut() {
                                o.remove("image");
                            }
                        }
                    }
                    if let Some(o) = s.as_object_mut() {
                        o.remove("activeDeadlineSeconds");
                        o.remove("tolerations");
                        o.remove("terminationGracePeriodSeconds");
                        // binding sets nodeName once
                        if old.pointer("/spec/nodeName").is_none() {
                            o.remove("nodeName");
                        }
                    }
                    s
                };
                if strip(old) != strip(obj) {
                    causes.push(Cause::forbidden(
                        "spec",
                        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                    ));
                }
            }
        }
        "Service" => causes.extend(crate::services::validate_service(obj, old)),
        "Job" => causes.extend(crate::controllers::job::validate_job(obj, old)),
        "CronJob" => causes.extend(crate::controllers::cronjob::validate_cronjob(obj, old)),
        "Deployment" | "ReplicaSet" => {
            let sel = obj.pointer("/spec/selector");
            match sel {
                None => causes.push(Cause::required("spec.selector", "")),
                Some(sel) => {
                    let labels = obj
                        .pointer("/spec/template/metadata/labels")
                        .cloned()
                        .unwrap_or(json!({}));
                    if !labels_match(sel, &labels) {
                        causes.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            format!("map[string]string{}", go_map(&labels)),
                            "`selector` does not match template `labels`",
                        ));
                    }
                    if let Some(old) = old {
                        if old.pointer("/spec/selector") != Some(sel) {
                            causes.push(Cause::invalid(
                                "spec.selector",
                                format!("v1.LabelSelector{{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}", go_map(sel.get("matchLabels").unwrap_or(&json!({})))),
                                "field is immutable",
                            ));
                        }
                    }
                }
            }
            match obj.pointer("/spec/template/spec") {
                Some(spec) => validate_pod_spec(spec, "spec.template.spec", &mut causes),
                None => causes.push(Cause::required("spec.template.spec.containers", "")),
            }
            if let Some(n) = obj.pointer("/spec/replicas").and_then(Value::as_i64) {
                if n < 0 {
                    causes.push(Cause::invalid(
                        "spec.replicas",
                        n.to_string(),
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
        _ => {}
    }
    causes
}

fn go_map(v: &Value) -> String {
    let items: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("\"{k}\":\"{}\"", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    format!("{{{}}}", items.join(", "))
}

/// The object decoded into its typed struct and encoded again: `None` for kinds without one,
/// `Err` with the decoder's reason when it does not decode (a string where a list belongs, a
/// number for a label).
fn typed_round_trip(r: &Resource, obj: &Value) -> Option<Result<Value, String>> {
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: &Value,
    ) -> Result<Value, String> {
        serde_json::from_value::<T>(v.clone())
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string()))
    }
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coord, core::v1 as core};
    Some(match (r.group, r.kind) {
        ("", "Pod") => round::<core::Pod>(obj),
        ("", "Secret") => round::<core::Secret>(obj),
        ("", "ConfigMap") => round::<core::ConfigMap>(obj),
        ("", "ServiceAccount") => round::<core::ServiceAccount>(obj),
        ("", "Namespace") => round::<core::Namespace>(obj),
        ("", "Node") => round::<core::Node>(obj),
        ("", "Event") => round::<core::Event>(obj),
        ("apps", "Deployment") => round::<apps::Deployment>(obj),
        ("apps", "ReplicaSet") => round::<apps::ReplicaSet>(obj),
        ("coordination.k8s.io", "Lease") => round::<coord::Lease>(obj),
        ("", "Service") => round::<core::Service>(obj),
        ("", "Endpoints") => round::<core::Endpoints>(obj),
        ("discovery.k8s.io", "EndpointSlice") => {
            round::<k8s_openapi::api::discovery::v1::EndpointSlice>(obj)
        }
        ("batch", "Job") => round::<k8s_openapi::api::batch::v1::Job>(obj),
        ("batch", "CronJob") => round::<k8s_openapi::api::batch::v1::CronJob>(obj),
        ("rbac.authorization.k8s.io", "Role") => round::<k8s_openapi::api::rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            round::<k8s_openapi::api::rbac::v1::ClusterRole>(obj)
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            round::<k8s_openapi::api::rbac::v1::RoleBinding>(obj)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            round::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(obj)
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            round::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>(obj)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => round::<
            k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
        >(obj),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            round::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>(obj)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => round::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(obj),
        _ => return None,
    })
}

/// Strict decoding: fields the typed object does not have (`strict decoding error: unknown
/// field "spec.foo"`). Compares the input with its round trip through the typed struct.
pub fn unknown_fields(r: &Resource, obj: &Value) -> Vec<String> {
    match typed_round_trip(r, obj) {
        Some(Ok(typed)) => {
            let mut out = vec![];
            diff(obj, &typed, "", &mut out);
            out
        }
        _ => vec![],
    }
}

/// Why a body cannot be handled as its kind, from one decode: a type error when `check_types`,
/// unknown fields when `strict`. Otherwise the unknown fields are removed from `obj` (with a
/// warning each when the request's `fieldValidation` is `Warn`). The text follows kube-apiserver: `Pod in version "v1" cannot be
/// handled as a Pod: …`.
pub fn decoding_problem(
    r: &Resource,
    obj: &mut Value,
    check_types: bool,
    strict: bool,
) -> Option<String> {
    let warn = !strict && crate::warnings::warn_unknown_fields();
    if !check_types && !strict && !warn {
        return None;
    }
    let why = match typed_round_trip(r, obj)? {
        Err(e) if check_types => e,
        Err(_) => return None,

        Ok(typed) if strict => {
            let mut unknown = vec![];
            diff(obj, &typed, "", &mut unknown);
            if unknown.is_empty() {
                return None;
            }
            format!(
                "strict decoding error: {}",
                unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        // fieldValidation=Warn or Ignore: the unknown fields are dropped, as decoding into the
        // typed object drops them; with Warn, one warning each (k8s.io/apiserver
        // `pkg/endpoints/handlers/rest.go`, `addStrictDecodingWarnings`)
        Ok(typed) => {
            if warn {
                let mut unknown = vec![];
                diff(obj, &typed, "", &mut unknown);
                for f in unknown {
                    crate::warnings::add(format!("unknown field \"{f}\""));
                }
            }
            prune(obj, &typed);
            return None;
        }
    };
    Some(format!(
        "{} in version \"{}\" cannot be handled as a {}: {why}",
        r.kind, r.version, r.kind
    ))
}

/// Removes from `input` what [`diff`] reports as unknown.
fn prune(input: &mut Value, typed: &Value) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            a.retain(|k, v| match b.get(k) {
                Some(tv) => {
                    prune(v, tv);
                    true
                }
                None => {
                    v.is_null()
                        || matches!(k.as_str(), "apiVersion" | "kind")
                        || matches!(v, Value::Object(m) if m.is_empty())
                        || matches!(v, Value::Array(a) if a.is_empty())
                }
            });
        }
        (Value::Array(a), Value::Array(b)) => {
            for (x, y) in a.iter_mut().zip(b.iter()) {
                prune(x, y);
            }
        }
        _ => {}
    }
}

fn diff(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(tv) => diff(v, tv, &p, out),
                    None if v.is_null() => {}
                    None if matches!(k.as_str(), "apiVersion" | "kind") => {}
                    None => {
                        // empty values the typed struct omits are not unknown
                        let empty = matches!(v, Value::Object(m) if m.is_empty())
                            || matches!(v, Value::Array(a) if a.is_empty());
                        if !empty {
                            out.push(p);
                        }
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> &'static Resource {
        crate::resources::find("", "v1", "secrets").unwrap()
    }

    #[test]
    fn dockerconfigjson_secret_validation_never_echoes_data() {
        use base64::Engine as _;
        let bad = base64::engine::general_purpose::STANDARD
            .encode("{\"auths\":{\"r\":{\"password\":\"hunter2\"");
        let obj = json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": bad}});
        let c = validate(secret(), &obj, None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].text(),
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": unexpected end of JSON input"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        let obj = json!({"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson", "data": {}});
        assert_eq!(
            validate(secret(), &obj, None)[0].text(),
            "data[.dockerconfigjson]: Required value"
        );
    }

    #[test]
    fn unknown_fields_are_found() {
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicyy": "Always"}], "foo": 1}});
        assert_eq!(
            unknown_fields(pods, &obj),
            vec!["spec.containers[0].imagePullPolicyy", "spec.foo"]
        );
    }

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_label("a.b"));
    }
}
