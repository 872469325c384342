//! Admission webhooks (`admissionregistration.k8s.io/v1` MutatingWebhookConfiguration and
//! ValidatingWebhookConfiguration), ported from k8s.io/apiserver `pkg/admission/plugin/webhook/**`
//! and kubernetes `pkg/apis/admissionregistration/{v1/defaults.go,validation/validation.go}`:
//!
//! - [`default_mutating`], [`default_validating`], [`validate_configuration`]: what the API server stores.
//! - [`Webhooks`]: the configurations, cached (re-read when a watch on them reports a change)
//!   and dispatched: [`Webhooks::mutate`] after the built-in mutating admission (ServiceAccount,
//!   defaults), [`Webhooks::validate`] after validation and Pod Security, before storage.
//! - Calls are `AdmissionReview` v1 JSON POSTs over HTTPS verified against `caBundle` (the system
//!   roots without one), with the webhook's timeout; responses are checked as
//!   `request/admissionreview.go` `VerifyAdmissionResponse` does, and failures follow
//!   `failurePolicy` with the upstream messages.
//! - Objects never appear in logs: a webhook skipped under `failurePolicy: Ignore` logs its name
//!   and the transport error only.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1 as admreg;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{ListOptions, Objects, User};
use crate::resources::{self, Resource};

/// The API group of the configurations.
pub const GROUP: &str = "admissionregistration.k8s.io";

/// The largest webhook response read (an object of the request size limit, patched, encoded).
const MAX_RESPONSE: usize = 4 * crate::server::MAX_BODY;

// ---------------------------------------------------------------------------------------------
// Defaulting and validation of the configurations
// ---------------------------------------------------------------------------------------------

/// Defaults of a webhook (`pkg/apis/admissionregistration/v1/defaults.go`:
/// `SetDefaults_ValidatingWebhook`, `SetDefaults_MutatingWebhook`, `SetDefaults_Rule`,
/// `SetDefaults_ServiceReference`): failurePolicy Fail, matchPolicy Equivalent, empty
/// namespaceSelector and objectSelector, timeoutSeconds 10, rule scope `*`, service port 443.
macro_rules! default_webhook {
    ($h:expr) => {{
        let h = $h;
        h.failure_policy.get_or_insert_with(|| "Fail".into());
        h.match_policy.get_or_insert_with(|| "Equivalent".into());
        h.namespace_selector.get_or_insert_with(Default::default);
        h.object_selector.get_or_insert_with(Default::default);
        h.timeout_seconds.get_or_insert(10);
        for rule in h.rules.iter_mut().flatten() {
            rule.scope.get_or_insert_with(|| "*".into());
        }
        if let Some(svc) = h.client_config.service.as_mut() {
            svc.port.get_or_insert(443);
        }
    }};
}

/// Defaults of a MutatingWebhookConfiguration: each webhook's (see `default_webhook`) and
/// reinvocationPolicy Never (`SetDefaults_MutatingWebhook`).
pub fn default_mutating(c: &mut admreg::MutatingWebhookConfiguration) {
    for h in c.webhooks.iter_mut().flatten() {
        default_webhook!(&mut *h);
        h.reinvocation_policy.get_or_insert_with(|| "Never".into());
    }
}

/// Defaults of a ValidatingWebhookConfiguration (`SetDefaults_ValidatingWebhook`).
pub fn default_validating(c: &mut admreg::ValidatingWebhookConfiguration) {
    for h in c.webhooks.iter_mut().flatten() {
        default_webhook!(h);
    }
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `%v` of a `[]string` in a field error: `[]string{"a", "b"}`.
fn go_strings(v: &[String]) -> String {
    format!(
        "[]string{{{}}}",
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn has_wildcard(v: &[String]) -> bool {
    v.iter().any(|s| s == "*")
}

/// `validateResources` (validation.go).
fn validate_resources(resources: &[String], path: &str, causes: &mut Vec<Cause>) {
    if resources.is_empty() {
        causes.push(Cause::required(path, ""));
    }
    let mut res_with_wild_sub = HashSet::new();
    let mut sub_with_wild_res = HashSet::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, rs) in resources.iter().enumerate() {
        if rs.is_empty() {
            causes.push(Cause::required(format!("{path}[{i}]"), ""));
            continue;
        }
        if rs == "*/*" {
            double = true;
        }
        if rs == "*" {
            single = true;
        }
        let Some((res, sub)) = rs.split_once('/') else {
            plain = rs != "*";
            continue;
        };
        if res_with_wild_sub.contains(res) {
            causes.push(Cause::invalid(
                format!("{path}[{i}]"),
                format!("{rs:?}"),
                format!("if '{res}/*' is present, must not specify {rs}"),
            ));
        }
        if sub_with_wild_res.contains(sub) {
            causes.push(Cause::invalid(
                format!("{path}[{i}]"),
                format!("{rs:?}"),
                format!("if '*/{sub}' is present, must not specify {rs}"),
            ));
        }
        if sub == "*" {
            res_with_wild_sub.insert(res.to_string());
        }
        if res == "*" {
            sub_with_wild_res.insert(sub.to_string());
        }
    }
    if resources.len() > 1 && double {
        causes.push(Cause::invalid(
            path,
            go_strings(resources),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        causes.push(Cause::invalid(
            path,
            go_strings(resources),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// `validateRuleWithOperations` and `validateRule` (validation.go).
fn validate_rule(rule: &Value, path: &str, causes: &mut Vec<Cause>) {
    let ops = strs(rule.get("operations"));
    if ops.is_empty() {
        causes.push(Cause::required(format!("{path}.operations"), ""));
    }
    if ops.len() > 1 && has_wildcard(&ops) {
        causes.push(Cause::invalid(
            format!("{path}.operations"),
            go_strings(&ops),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        const OPS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
        if !OPS.contains(&op.as_str()) {
            causes.push(Cause::not_supported(
                format!("{path}.operations[{i}]"),
                format!("{op:?}"),
                OPS,
            ));
        }
    }
    let groups = strs(rule.get("apiGroups"));
    if groups.is_empty() {
        causes.push(Cause::required(format!("{path}.apiGroups"), ""));
    }
    if groups.len() > 1 && has_wildcard(&groups) {
        causes.push(Cause::invalid(
            format!("{path}.apiGroups"),
            go_strings(&groups),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = strs(rule.get("apiVersions"));
    if versions.is_empty() {
        causes.push(Cause::required(format!("{path}.apiVersions"), ""));
    }
    if versions.len() > 1 && has_wildcard(&versions) {
        causes.push(Cause::invalid(
            format!("{path}.apiVersions"),
            go_strings(&versions),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            causes.push(Cause::required(format!("{path}.apiVersions[{i}]"), ""));
        }
    }
    validate_resources(
        &strs(rule.get("resources")),
        &format!("{path}.resources"),
        causes,
    );
    if let Some(scope) = rule.get("scope").and_then(Value::as_str) {
        const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
        if !SCOPES.contains(&scope) {
            causes.push(Cause::not_supported(
                format!("{path}.scope"),
                format!("{scope:?}"),
                SCOPES,
            ));
        }
    }
}

/// `webhook.ValidateWebhookURL(fldPath, url, forceHttps=true)` (k8s.io/apiserver
/// `pkg/util/webhook/validation.go`).
fn validate_url(u: &str, path: &str, causes: &mut Vec<Cause>) {
    const FORM: &str = "; desired format: https://host[/path]";
    let parsed = match url::Url::parse(u) {
        Ok(p) => p,
        Err(e) => {
            causes.push(Cause::required(
                path,
                format!("url must be a valid URL: {e}{FORM}"),
            ));
            return;
        }
    };
    if parsed.scheme() != "https" {
        causes.push(Cause::invalid(
            path,
            format!("{:?}", parsed.scheme()),
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        causes.push(Cause::invalid(
            path,
            "\"\"",
            format!("host must be specified{FORM}"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // the value is the user name only: a password is never echoed
        causes.push(Cause::invalid(
            path,
            format!("{:?}", parsed.username()),
            "user information is not permitted in the URL",
        ));
    }
    if let Some(f) = parsed.fragment() {
        causes.push(Cause::invalid(
            path,
            format!("{f:?}"),
            "fragments are not permitted in the URL",
        ));
    }
    if let Some(q) = parsed.query() {
        causes.push(Cause::invalid(
            path,
            format!("{q:?}"),
            "query parameters are not permitted in the URL",
        ));
    }
}

/// `webhook.ValidateWebhookService` (k8s.io/apiserver `pkg/util/webhook/validation.go`).
fn validate_service(svc: &Value, path: &str, causes: &mut Vec<Cause>) {
    let s = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or("");
    if s("name").is_empty() {
        causes.push(Cause::required(format!("{path}.name"), ""));
    }
    if s("namespace").is_empty() {
        causes.push(Cause::required(format!("{path}.namespace"), ""));
    }
    let port = svc.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        causes.push(Cause::invalid(
            format!("{path}.port"),
            port.to_string(),
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let Some(p) = svc.get("path").and_then(Value::as_str) else {
        return;
    };
    if p.is_empty() || p == "/" {
        return;
    }
    if p == "//" {
        causes.push(Cause::invalid(
            format!("{path}.path"),
            format!("{p:?}"),
            "segment[0] may not be empty",
        ));
        return;
    }
    if !p.starts_with('/') {
        causes.push(Cause::invalid(
            format!("{path}.path"),
            format!("{p:?}"),
            "must start with a '/'",
        ));
    }
    let check = p.strip_prefix('/').unwrap_or(p);
    let check = check.strip_suffix('/').unwrap_or(check);
    for (i, step) in check.split('/').enumerate() {
        if step.is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.path"),
                format!("{p:?}"),
                format!("segment[{i}] may not be empty"),
            ));
        } else if !crate::admission::is_dns1123_subdomain(step) {
            causes.push(Cause::invalid(
                format!("{path}.path"),
                format!("{p:?}"),
                format!("segment[{i}]: {}", crate::admission::DNS1123_SUBDOMAIN_MSG),
            ));
        }
    }
}

/// The certificates of a `caBundle` (base64 in JSON, PEM inside), or why they cannot be used
/// (`webhook.ValidateCABundle`: client-go's `TLSConfigFor` with `CAData`).
fn parse_ca_bundle(b64: &str) -> Result<Vec<reqwest::Certificate>, String> {
    use base64::Engine as _;
    const BAD: &str = "unable to load root certificates: unable to parse bytes as PEM block";
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| BAD.to_string())?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| BAD.to_string())?;
    if certs.is_empty() {
        return Err(BAD.into());
    }
    Ok(certs)
}

/// `IsFullyQualifiedName` (k8s.io/apimachinery `pkg/util/validation`).
fn validate_hook_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    if name.is_empty() {
        causes.push(Cause::required(path, ""));
    } else if !crate::admission::is_dns1123_subdomain(name) {
        causes.push(Cause::invalid(
            path,
            format!("{name:?}"),
            crate::admission::DNS1123_SUBDOMAIN_MSG,
        ));
    } else if name.split('.').count() < 3 {
        causes.push(Cause::invalid(
            path,
            format!("{name:?}"),
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

/// `ValidateMutatingWebhookConfiguration` / `ValidateValidatingWebhookConfiguration`
/// (`pkg/apis/admissionregistration/validation/validation.go`), after defaulting: webhook names
/// fully qualified and unique, rules, failurePolicy, matchPolicy, sideEffects `None` or
/// `NoneOnDryRun` (required), timeoutSeconds 1..30, selectors, reinvocationPolicy, exactly one of
/// `url` (https, no user, fragment or query) and `service`, admissionReviewVersions (this server
/// sends `v1` only, so `v1` must be listed), and a `caBundle` of PEM certificates.
/// `matchConditions` (CEL) are refused: this server cannot evaluate them.
pub fn validate_configuration(r: &Resource, obj: &Value) -> Vec<Cause> {
    let mutating = r.kind == "MutatingWebhookConfiguration";
    let mut causes = vec![];
    let empty = vec![];
    let hooks = match obj.get("webhooks") {
        None | Some(Value::Null) => &empty,
        Some(Value::Array(a)) => a,
        Some(_) => return vec![Cause::invalid("webhooks", "", "must be a list of webhooks")],
    };
    let mut names = HashSet::new();
    for (i, h) in hooks.iter().enumerate() {
        let p = format!("webhooks[{i}]");
        let name = h.get("name").and_then(Value::as_str).unwrap_or("");
        validate_hook_name(name, &format!("{p}.name"), &mut causes);
        if let Some(rules) = h.get("rules").and_then(Value::as_array) {
            for (j, rule) in rules.iter().enumerate() {
                validate_rule(rule, &format!("{p}.rules[{j}]"), &mut causes);
            }
        }
        let enum_field = |field: &str, allowed: &[&str], causes: &mut Vec<Cause>| {
            if let Some(v) = h.get(field).filter(|v| !v.is_null()) {
                let s = v.as_str().unwrap_or("");
                if !allowed.contains(&s) {
                    causes.push(Cause::not_supported(
                        format!("{p}.{field}"),
                        format!("{s:?}"),
                        allowed,
                    ));
                }
            }
        };
        enum_field("failurePolicy", &["Fail", "Ignore"], &mut causes);
        enum_field("matchPolicy", &["Equivalent", "Exact"], &mut causes);
        // the typed webhook (k8s-openapi) holds sideEffects as a string, so an absent one
        // arrives empty: both are "not specified"
        match h
            .get("sideEffects")
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
        {
            None => causes.push(Cause::required(
                format!("{p}.sideEffects"),
                "must specify one of None, NoneOnDryRun",
            )),
            Some(_) => enum_field("sideEffects", &["None", "NoneOnDryRun"], &mut causes),
        }
        if let Some(t) = h.get("timeoutSeconds").filter(|v| !v.is_null()) {
            let n = t.as_i64().unwrap_or(0);
            if !(1..=30).contains(&n) {
                causes.push(Cause::invalid(
                    format!("{p}.timeoutSeconds"),
                    t.to_string(),
                    "the timeout value must be between 1 and 30 seconds",
                ));
            }
        }
        for sel in ["namespaceSelector", "objectSelector"] {
            if let Some(s) = h.get(sel) {
                crate::validation::validate_label_selector(s, &format!("{p}.{sel}"), &mut causes);
            }
        }
        if mutating {
            enum_field("reinvocationPolicy", &["IfNeeded", "Never"], &mut causes);
        }
        let cc = h.get("clientConfig").cloned().unwrap_or(json!({}));
        let url = cc.get("url").filter(|v| !v.is_null());
        let svc = cc.get("service").filter(|v| !v.is_null());
        match (url, svc) {
            (Some(u), None) => validate_url(
                u.as_str().unwrap_or(""),
                &format!("{p}.clientConfig.url"),
                &mut causes,
            ),
            (None, Some(s)) => {
                validate_service(s, &format!("{p}.clientConfig.service"), &mut causes)
            }
            _ => causes.push(Cause::required(
                format!("{p}.clientConfig"),
                "exactly one of url or service is required",
            )),
        }
        if let Some(ca) = cc.get("caBundle").and_then(Value::as_str) {
            if !ca.is_empty() {
                if let Err(why) = parse_ca_bundle(ca) {
                    causes.push(Cause::invalid(
                        format!("{p}.clientConfig.caBundle"),
                        "[]byte{...}",
                        why,
                    ));
                }
            }
        }
        if h.get("matchConditions")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            causes.push(Cause::forbidden(
                format!("{p}.matchConditions"),
                "matchConditions (CEL expressions) are not supported by this API server; use rules, namespaceSelector and objectSelector",
            ));
        }
        // validateAdmissionReviewVersions
        let versions = strs(h.get("admissionReviewVersions"));
        let vp = format!("{p}.admissionReviewVersions");
        if versions.is_empty() {
            causes.push(Cause::required(&vp, "must specify one of v1, v1beta1"));
        } else {
            let mut seen = HashSet::new();
            for (j, v) in versions.iter().enumerate() {
                if !seen.insert(v.as_str()) {
                    causes.push(Cause::invalid(
                        format!("{vp}[{j}]"),
                        format!("{v:?}"),
                        "duplicate version",
                    ));
                }
            }
            if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
                causes.push(Cause::invalid(
                    &vp,
                    go_strings(&versions),
                    "must include at least one of v1, v1beta1",
                ));
            } else if !versions.iter().any(|v| v == "v1") {
                causes.push(Cause::invalid(
                    &vp,
                    go_strings(&versions),
                    "must include v1: this API server sends AdmissionReview v1 only",
                ));
            }
        }
        if !name.is_empty() && !names.insert(name) {
            causes.push(Cause::duplicate(format!("{p}.name"), format!("{name:?}")));
        }
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// The request context: who asks, dry run, options
// ---------------------------------------------------------------------------------------------

/// What admission needs from the API request: the user, dry run, the field manager.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    user: User,
    dry_run: bool,
    field_manager: Option<String>,
    /// The rest of the request carries out an operation already admitted ([`admit_binding`]).
    admitted: Arc<AtomicBool>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

/// Runs `f` (an API request) with its requester known to admission webhooks. Outside a request
/// (the in-process controllers) webhooks see `system:kube-controller-manager`.
pub async fn scope<F: std::future::Future>(
    user: User,
    dry_run: bool,
    field_manager: Option<String>,
    f: F,
) -> F::Output {
    REQUEST
        .scope(
            RequestInfo {
                user,
                dry_run,
                field_manager,
                admitted: Default::default(),
            },
            f,
        )
        .await
}

tokio::task_local! {
    static INTERNAL: ();
}

fn internal() -> bool {
    INTERNAL.try_with(|_| ()).is_ok()
        || REQUEST
            .try_with(|i| i.admitted.load(Ordering::SeqCst))
            .unwrap_or(false)
}

/// Admits a pod's binding to a node (`pods/binding` CREATE of a `Binding`) in an API request;
/// the writes that follow in the same request carry it out and are not admitted again.
pub async fn admit_binding(
    objects: &Objects,
    namespace: &str,
    pod: &str,
    node: &str,
) -> ApiResult<()> {
    bind(objects, namespace, pod, node, async { Ok(()) }).await?;
    let _ = REQUEST.try_with(|i| i.admitted.store(true, Ordering::SeqCst));
    Ok(())
}

/// A pod's binding to a node (`pods/binding` CREATE of a `Binding`, what the scheduler sends):
/// the webhooks are asked about the Binding, and the pod and status updates that carry it out
/// (`f`) are storage of that one operation, not admitted again (kubernetes
/// `pkg/registry/core/pod/storage` `BindingREST.Create`). A target changed by a mutating webhook
/// is not followed.
pub async fn bind<T, F: std::future::Future<Output = ApiResult<T>>>(
    objects: &Objects,
    namespace: &str,
    pod: &str,
    node: &str,
    f: F,
) -> ApiResult<T> {
    let pods = resources::find("", "v1", "pods").expect("pods");
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let a = Attributes {
        r: pods,
        kind: Some(("", "v1", "Binding")),
        sub: Some("binding"),
        op: Operation::Create,
        namespace,
        name: pod,
        options: None,
    };
    subresource(objects, &a, binding, None, |_| f).await
}

/// A request on a subresource whose object is not the resource's (`a.kind`): the webhooks get
/// `obj` (mutated ones change it) and `old`; `f` gets the admitted object and makes the writes,
/// which are not admitted again.
pub async fn subresource<T, F, Fut>(
    objects: &Objects,
    a: &Attributes<'_>,
    obj: Value,
    old: Option<&Value>,
    f: F,
) -> ApiResult<T>
where
    F: FnOnce(Value) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    subresource_checked(objects, a, obj, old, |_| Ok(()), |obj, ()| f(obj)).await
}

/// [`subresource`] with the storage's own check of the mutated object between the mutating and
/// the validating webhooks (`rest.UpdatedObjectInfo` then `updateValidation`); `f` gets what
/// the check returns.
pub async fn subresource_checked<T, C, K, F, Fut>(
    objects: &Objects,
    a: &Attributes<'_>,
    mut obj: Value,
    old: Option<&Value>,
    check: K,
    f: F,
) -> ApiResult<T>
where
    K: FnOnce(&Value) -> ApiResult<C>,
    F: FnOnce(Value, C) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let hooks = objects.webhooks();
    hooks.mutate(objects, a, Some(&mut obj), old).await?;
    let checked = check(&obj)?;
    hooks.validate(objects, a, Some(&obj), old).await?;
    INTERNAL.scope((), f(obj, checked)).await
}

/// Whether the current API request is a dry run (`dryRun=All`): admitted, validated, not stored.
pub fn dry_run() -> bool {
    REQUEST.try_with(|i| i.dry_run).unwrap_or(false)
}

fn request_info() -> Option<RequestInfo> {
    REQUEST.try_with(Clone::clone).ok()
}

fn user_info(info: &Option<RequestInfo>) -> Value {
    match info.as_ref().map(|i| &i.user) {
        None => {
            json!({"username": "system:kube-controller-manager", "groups": ["system:authenticated"]})
        }
        Some(User::Other(u)) => {
            let mut v = json!({"username": u.name, "groups": u.groups});
            if !u.uid.is_empty() {
                v["uid"] = json!(u.uid);
            }
            if !u.extra.is_empty() {
                v["extra"] = json!(u.extra);
            }
            v
        }
        Some(u) => {
            let (name, groups) = u.identity();
            json!({"username": name, "groups": groups})
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Matching (generic/webhook.go ShouldCallHook, predicates/*)
// ---------------------------------------------------------------------------------------------

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// One admission request's attributes (`admission.Attributes`).
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// The resource as requested.
    pub r: &'static Resource,
    /// The group, version and kind sent when it is not the resource's (a `pods/binding` request
    /// is a `v1 Binding`, `deployments/scale` an `autoscaling/v1 Scale`).
    pub kind: Option<(&'static str, &'static str, &'static str)>,
    /// The subresource (`status`), if any.
    pub sub: Option<&'a str>,
    /// The operation.
    pub op: Operation,
    /// The namespace (empty for cluster-scoped objects).
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The operation's options (`CreateOptions`, `UpdateOptions`, `DeleteOptions`).
    pub options: Option<Value>,
}

#[derive(Debug, Clone, Default)]
struct Rule {
    operations: Vec<String>,
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<String>,
    scope: String,
}

impl Rule {
    /// `rules.Matcher.Matches` (`predicates/rules/rules.go`): scope, operation, group, version
    /// and resource (`res/sub`, `*`, `*/*`, `res/*`, `*/sub`).
    fn matches(&self, a: &Attributes<'_>) -> bool {
        self.matches_as(a, a.r)
    }

    /// As [`Rule::matches`], for the request made through `r` (an equivalent resource).
    fn matches_as(&self, a: &Attributes<'_>, r: &Resource) -> bool {
        let any = |items: &[String], want: &str| items.iter().any(|i| i == "*" || i == want);
        let is_ns = a.r.group.is_empty() && a.r.plural == "namespaces";
        let scope = match self.scope.as_str() {
            "Namespaced" => !is_ns && !a.namespace.is_empty(),
            "Cluster" => is_ns || a.namespace.is_empty(),
            _ => true,
        };
        let op = self
            .operations
            .iter()
            .any(|o| o == "*" || o == a.op.as_str());
        let sub = a.sub.unwrap_or("");
        let res = self.resources.iter().any(|rs| {
            let (p, s) = rs.split_once('/').unwrap_or((rs.as_str(), ""));
            (p == "*" || p == r.plural) && (s == "*" || s == sub)
        });
        scope && op && any(&self.groups, r.group) && any(&self.versions, r.version) && res
    }
}

/// A `metav1.LabelSelector`; `None` requirements: matches nothing (a selector that failed to
/// parse).
#[derive(Debug, Clone, Default)]
struct Selector {
    match_labels: Vec<(String, String)>,
    exprs: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    fn parse(v: Option<&Value>) -> Selector {
        let Some(v) = v else {
            return Selector::default();
        };
        Selector {
            match_labels: v
                .get("matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            exprs: v
                .get("matchExpressions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            (
                                e.get("key").and_then(Value::as_str).unwrap_or("").into(),
                                e.get("operator")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .into(),
                                strs(e.get("values")),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.exprs.is_empty()
    }

    fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.match_labels
            .iter()
            .all(|(k, v)| get(k) == Some(v.as_str()))
            && self.exprs.iter().all(|(k, op, vs)| match op.as_str() {
                "In" => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
                "NotIn" => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
                "Exists" => get(k).is_some(),
                "DoesNotExist" => get(k).is_none(),
                _ => false,
            })
    }
}

fn labels_of(o: Option<&Value>) -> Option<&serde_json::Map<String, Value>> {
    o.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
}

/// Where a webhook is.
#[derive(Clone)]
enum Target {
    /// `clientConfig.url`, with its client (trusting the caBundle, or the system roots).
    Url {
        url: String,
        client: Result<reqwest::Client, String>,
    },
    /// `clientConfig.service`: resolved at each call ([`resolve_service`]).
    Service {
        namespace: String,
        name: String,
        path: String,
        port: u16,
        ca: Option<Result<Vec<reqwest::Certificate>, String>>,
    },
}

/// One webhook of a configuration.
#[derive(Clone)]
struct Hook {
    name: String,
    rules: Vec<Rule>,
    ignore_failures: bool,
    namespace_selector: Selector,
    object_selector: Selector,
    side_effects: Option<String>,
    timeout: Duration,
    timeout_secs: u64,
    reinvoke_if_needed: bool,
    /// `matchPolicy: Equivalent` (the default): also called for a write through another
    /// version or group of the same stored resource, with the object in the matched version.
    equivalent: bool,
    target: Target,
}

fn client(ca: Option<&[reqwest::Certificate]>) -> Result<reqwest::ClientBuilder, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let Some(certs) = ca {
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c.clone());
        }
    }
    Ok(b)
}

impl Hook {
    fn parse(h: &Value) -> Hook {
        let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let cc = h.get("clientConfig").cloned().unwrap_or(json!({}));
        let ca = cc
            .get("caBundle")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(parse_ca_bundle);
        let target = match cc.get("service").filter(|v| !v.is_null()) {
            Some(svc) => Target::Service {
                namespace: svc
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
                name: svc.get("name").and_then(Value::as_str).unwrap_or("").into(),
                path: svc.get("path").and_then(Value::as_str).unwrap_or("").into(),
                port: svc
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(443),
                ca,
            },
            None => {
                let client = match &ca {
                    Some(Err(e)) => Err(e.clone()),
                    Some(Ok(certs)) => client(Some(certs)),
                    None => client(None),
                }
                .and_then(|b| b.build().map_err(|e| e.to_string()));
                Target::Url {
                    url: cc
                        .get("url")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    client,
                }
            }
        };
        let timeout_secs = h
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 30);
        Hook {
            name: s("name"),
            rules: h
                .get("rules")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|r| Rule {
                            operations: strs(r.get("operations")),
                            groups: strs(r.get("apiGroups")),
                            versions: strs(r.get("apiVersions")),
                            resources: strs(r.get("resources")),
                            scope: r
                                .get("scope")
                                .and_then(Value::as_str)
                                .unwrap_or("*")
                                .to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ignore_failures: s("failurePolicy") == "Ignore",
            namespace_selector: Selector::parse(h.get("namespaceSelector")),
            object_selector: Selector::parse(h.get("objectSelector")),
            side_effects: h
                .get("sideEffects")
                .and_then(Value::as_str)
                .map(str::to_string),
            timeout: Duration::from_secs(timeout_secs),
            timeout_secs,
            reinvoke_if_needed: s("reinvocationPolicy") == "IfNeeded",
            equivalent: s("matchPolicy") != "Exact",
            target,
        }
    }
}

/// The configurations, each kind sorted by configuration name, webhooks in list order
/// (`configuration/{mutating,validating}_webhook_manager.go`).
#[derive(Default)]
struct Snapshot {
    mutating: Vec<Hook>,
    validating: Vec<Hook>,
}

// ---------------------------------------------------------------------------------------------
// The cache and the dispatchers
// ---------------------------------------------------------------------------------------------

/// The webhook configurations, cached: read once, and again after a watch on them (or a write
/// through this server) reports a change.
#[derive(Default)]
pub struct Webhooks {
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    stale: Arc<AtomicBool>,
    watching: Arc<AtomicBool>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

/// Whether `r` is a webhook configuration (such writes invalidate the cache).
pub fn is_configuration(r: &Resource) -> bool {
    r.group == GROUP
        && matches!(
            r.kind,
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration"
        )
}

/// An error from calling a webhook (`webhookutil.ErrCallingWebhook`): failurePolicy decides.
#[derive(Debug)]
struct CallError(String);

/// What a call came to.
enum Outcome {
    /// Allowed, maybe with a patch (operations, patchType).
    Allowed(Option<(Value, String)>),
    /// Denied: the error to return.
    Rejected(ApiError),
}

impl Webhooks {
    /// Marks the cache stale (a configuration was written through this server).
    pub fn invalidate(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }

    async fn snapshot(&self, objects: &Objects) -> ApiResult<Arc<Snapshot>> {
        if !self.watching.swap(true, Ordering::SeqCst) {
            self.start_watch(objects).await;
        }
        let cached = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(s) = cached {
            if !self.stale.load(Ordering::SeqCst) {
                return Ok(s);
            }
        }
        self.stale.store(false, Ordering::SeqCst);
        let mut snap = Snapshot::default();
        for (kind, out) in [
            ("mutatingwebhookconfigurations", &mut snap.mutating),
            ("validatingwebhookconfigurations", &mut snap.validating),
        ] {
            let r = resources::find(GROUP, "v1", kind).expect("webhook configurations");
            let (mut items, _, _) = objects.list(r, None, &ListOptions::default()).await?;
            items.sort_by(|a, b| {
                a.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .cmp(&b.pointer("/metadata/name").and_then(Value::as_str))
            });
            for c in &items {
                for h in c
                    .get("webhooks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(Hook::parse(h));
                }
            }
        }
        let snap = Arc::new(snap);
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(snap.clone());
        Ok(snap)
    }

    /// Watches the configurations' keys: any event marks the cache stale; when the watch ends
    /// (the store closed it), the next request starts another.
    async fn start_watch(&self, objects: &Objects) {
        let store = objects.store().clone();
        let prefix = format!("/registry/{GROUP}/");
        let rev = match store.list(&prefix, None, 1, None).await {
            Ok(p) => p.revision,
            Err(_) => {
                self.watching.store(false, Ordering::SeqCst);
                return;
            }
        };
        let w = match store.watch(&prefix, rev).await {
            Ok(w) => w,
            Err(_) => {
                self.watching.store(false, Ordering::SeqCst);
                return;
            }
        };
        drop(store);
        self.stale.store(true, Ordering::SeqCst);
        let (stale, watching) = (self.stale.clone(), self.watching.clone());
        let mut events = w.events;
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                stale.store(true, Ordering::SeqCst);
                if ev.is_err() {
                    break;
                }
            }
            stale.store(true, Ordering::SeqCst);
            watching.store(false, Ordering::SeqCst);
        });
    }

    /// The mutating webhooks (`mutating/dispatcher.go`), after the built-in mutating admission:
    /// serially in order; JSONPatch responses applied to `obj`; a second round for
    /// `reinvocationPolicy: IfNeeded` webhooks when a later webhook changed the object
    /// (`pkg/admission/reinvocation.go`). `obj` is `None` for DELETE. Returns whether a webhook
    /// changed the object.
    pub async fn mutate(
        &self,
        objects: &Objects,
        a: &Attributes<'_>,
        mut obj: Option<&mut Value>,
        old: Option<&Value>,
    ) -> ApiResult<bool> {
        if exempt(a.r) || internal() {
            return Ok(false);
        }
        let snap = self.snapshot(objects).await?;
        if snap.mutating.is_empty() {
            return Ok(false);
        }
        let info = request_info();
        let mut ns_labels = None;
        let mut eqs = None;
        let mut previously_invoked: HashSet<usize> = HashSet::new();
        let mut should_reinvoke: HashSet<usize> = HashSet::new();
        let mut reinvoke = false;
        let mut any_changed = false;
        for round in 0..2 {
            if round == 1 && !reinvoke {
                break;
            }
            for (i, h) in snap.mutating.iter().enumerate() {
                if round == 1 && !should_reinvoke.contains(&i) {
                    continue;
                }
                let current = obj.as_deref();
                let Some(as_r) = self
                    .should_call(objects, h, a, current, old, &mut ns_labels, &mut eqs)
                    .await?
                else {
                    continue;
                };
                // the objects in the version the webhook matched
                let conv = |o| convert(a, o, as_r);
                let (current, old_as) = (current.map(conv), old.map(conv));
                let outcome = self
                    .call(
                        objects,
                        h,
                        a,
                        as_r,
                        current.as_deref(),
                        old_as.as_deref(),
                        &info,
                        true,
                        round,
                        i,
                    )
                    .await?;
                // what a patch applies to when the webhook was called as an equivalent resource
                let converted = if std::ptr::eq(as_r, a.r) {
                    None
                } else {
                    current.map(Cow::into_owned)
                };
                let changed = match outcome {
                    Outcome::Rejected(e) => return Err(e),
                    Outcome::Allowed(None) => false,
                    Outcome::Allowed(Some((patch, patch_type))) => match obj.as_deref_mut() {
                        None => {
                            return Err(ApiError::internal(format!(
                                "Internal error occurred: admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                                h.name
                            )))
                        }
                        Some(_) if patch_type != "JSONPatch" => {
                            self.failed(
                                h,
                                true,
                                round,
                                i,
                                format!("unsupported patch type {patch_type:?}"),
                            )?;
                            false
                        }
                        Some(o) if std::ptr::eq(as_r, a.r) => apply(a, a.r, h, o, &patch)?,
                        // patched in the matched version, then converted back
                        Some(o) => {
                            let mut eq = converted.unwrap_or_default();
                            let changed = apply(a, as_r, h, &mut eq, &patch)?;
                            *o = convert_between(a, &eq, as_r, a.r).into_owned();
                            changed
                        }
                    },
                };
                if changed {
                    any_changed = true;
                    should_reinvoke.extend(previously_invoked.drain());
                    reinvoke = true;
                }
                if round == 0 && h.reinvoke_if_needed {
                    previously_invoked.insert(i);
                }
            }
        }
        Ok(any_changed)
    }

    /// The validating webhooks (`validating/dispatcher.go`), after validation and Pod Security:
    /// all matching webhooks at once; the first error (in webhook order) is returned.
    pub async fn validate(
        &self,
        objects: &Objects,
        a: &Attributes<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        if exempt(a.r) || internal() {
            return Ok(());
        }
        let snap = self.snapshot(objects).await?;
        if snap.validating.is_empty() {
            return Ok(());
        }
        let info = request_info();
        let mut ns_labels = None;
        let mut eqs = None;
        let mut calls = vec![];
        for (i, h) in snap.validating.iter().enumerate() {
            if let Some(as_r) = self
                .should_call(objects, h, a, obj, old, &mut ns_labels, &mut eqs)
                .await?
            {
                let conv = |o| convert(a, o, as_r);
                let (obj, old) = (obj.map(conv), old.map(conv));
                let info = &info;
                calls.push(async move {
                    self.call(
                        objects,
                        h,
                        a,
                        as_r,
                        obj.as_deref(),
                        old.as_deref(),
                        info,
                        false,
                        0,
                        i,
                    )
                    .await
                });
            }
        }
        for r in futures_util::future::join_all(calls).await {
            match r? {
                Outcome::Rejected(e) => return Err(e),
                Outcome::Allowed(_) => {}
            }
        }
        Ok(())
    }

    /// `ShouldCallHook` (`generic/webhook.go`): namespaceSelector (against the namespace's
    /// labels; a Namespace's own labels; never for other cluster-scoped objects), objectSelector
    /// (the new or the old object), then the rules: the request's resource, else (matchPolicy
    /// `Equivalent`) the first equivalent resource a rule matches
    /// (`EquivalentResourcesFor`). Returns the resource the webhook is called as.
    async fn should_call(
        &self,
        objects: &Objects,
        h: &Hook,
        a: &Attributes<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
        ns_labels: &mut Option<Option<serde_json::Map<String, Value>>>,
        eqs: &mut Option<Vec<&'static Resource>>,
    ) -> ApiResult<Option<&'static Resource>> {
        let is_ns = a.r.group.is_empty() && a.r.plural == "namespaces";
        if !h.namespace_selector.is_empty() && (is_ns || !a.namespace.is_empty()) {
            let labels = if is_ns && a.sub.is_none() {
                // the namespace itself: its labels as written (the stored ones for DELETE)
                labels_of(obj.or(old)).cloned()
            } else {
                if ns_labels.is_none() {
                    let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
                    let name = if is_ns { a.name } else { a.namespace };
                    // `predicates/namespace/matcher.go`: a missing namespace is a 404
                    let n = objects.get(nsr, "", name).await?;
                    *ns_labels = Some(labels_of(Some(&n)).cloned());
                }
                ns_labels.clone().flatten()
            };
            if !h.namespace_selector.matches(labels.as_ref()) {
                return Ok(None);
            }
        }
        // `predicates/object/matcher.go`: a missing object never matches
        let object_matches =
            |o: Option<&Value>| o.is_some_and(|o| h.object_selector.matches(labels_of(Some(o))));
        if !(h.object_selector.is_empty() || object_matches(obj) || object_matches(old)) {
            return Ok(None);
        }
        if h.rules.iter().any(|r| r.matches(a)) {
            return Ok(Some(a.r));
        }
        // a subresource of a kind of its own has equivalents only as a custom resource's scale
        if !h.equivalent || (a.kind.is_some() && a.sub != Some("scale")) {
            return Ok(None);
        }
        let eqs = eqs.get_or_insert_with(|| equivalents(objects, a.r, a.sub));
        // earlier rules first (`ShouldCallHook`'s OuterLoop), then the equivalents in order
        for rule in &h.rules {
            if let Some(e) = eqs.iter().find(|e| rule.matches_as(a, e)) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Calls one webhook; transport and response failures go through failurePolicy.
    async fn call(
        &self,
        objects: &Objects,
        h: &Hook,
        a: &Attributes<'_>,
        as_r: &'static Resource,
        obj: Option<&Value>,
        old: Option<&Value>,
        info: &Option<RequestInfo>,
        mutating: bool,
        round: usize,
        index: usize,
    ) -> ApiResult<Outcome> {
        // `callAttrMutatingHook` / `callHook`: sideEffects matter for dry runs only
        let dry_run = info.as_ref().is_some_and(|i| i.dry_run);
        let side_effects = h.side_effects.as_deref();
        if dry_run && side_effects.is_none() {
            return self.failed(
                h,
                mutating,
                round,
                index,
                "Webhook SideEffects is nil".into(),
            );
        }
        if dry_run && !matches!(side_effects, Some("None" | "NoneOnDryRun")) {
            return Err(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                h.name
            )));
        }
        let uid = crate::objects::uuid();
        let review = review(a, as_r, obj, old, info, &uid);
        let op = a.op.as_str();
        match send(objects, h, &review, &uid, mutating).await {
            Ok(o) => {
                let (result, rejected) = match &o {
                    Outcome::Allowed(_) => ("allowed", false),
                    Outcome::Rejected(_) => ("rejected", true),
                };
                crate::metrics::webhook_call(&h.name, mutating, op, result, rejected);
                Ok(o)
            }
            Err(CallError(reason)) => {
                let result = if h.ignore_failures {
                    "error_ignored"
                } else {
                    "error"
                };
                crate::metrics::webhook_call(&h.name, mutating, op, result, false);
                self.failed(h, mutating, round, index, reason)
            }
        }
    }

    /// failurePolicy: `Fail` → 500 `Internal error occurred: failed calling webhook …`; `Ignore`
    /// → the request goes on, and an audit line records the fail-open (name and reason only).
    fn failed(
        &self,
        h: &Hook,
        mutating: bool,
        round: usize,
        index: usize,
        reason: String,
    ) -> ApiResult<Outcome> {
        let err = format!("failed calling webhook {:?}: {reason}", h.name);
        if h.ignore_failures {
            let annotation = if mutating {
                format!("failed-open.mutation.webhook.admission.k8s.io/round_{round}_index_{index}")
            } else {
                format!("failed-open.validating.webhook.admission.k8s.io/round_0_index_{index}")
            };
            tracing::warn!(target: "audit", webhook = %h.name, %annotation, "Failed calling webhook, failing open {}: {err}", h.name);
            return Ok(Outcome::Allowed(None));
        }
        tracing::warn!(webhook = %h.name, "Failed calling webhook, failing closed {}: {err}", h.name);
        Err(ApiError::internal(format!(
            "Internal error occurred: {err}"
        )))
    }
}

/// `rules.IsExemptAdmissionConfigurationResource`: webhook and policy configurations are never
/// sent to webhooks.
fn exempt(r: &Resource) -> bool {
    r.group == GROUP
        && matches!(
            r.kind,
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

/// Applies a webhook's JSONPatch (`mutating/dispatcher.go` `callAttrMutatingHook`): patch
/// errors are 500s, the result must decode as its kind, is defaulted again, and may not change
/// the object's identity. Returns whether the object changed.
/// `as_r`: the resource the webhook was called as (the object is in its version); refusals name
/// the resource asked for, as its storage would.
fn apply(
    a: &Attributes<'_>,
    as_r: &'static Resource,
    h: &Hook,
    obj: &mut Value,
    patch: &Value,
) -> ApiResult<bool> {
    if patch.as_array().is_some_and(Vec::is_empty) {
        return Ok(false);
    }
    if a.kind.is_some() {
        // a subresource's own kind (Binding, Scale): patched as it is
        let mut next = obj.clone();
        crate::patch::json_patch(&mut next, patch)
            .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?;
        let changed = next != *obj;
        *obj = next;
        return Ok(changed);
    }

    let mut next = obj.clone();
    crate::patch::json_patch(&mut next, patch)
        .map_err(|e| ApiError::internal(format!("Internal error occurred: {e}")))?;
    if let Some(why) = crate::admission::decode_without_defaults(as_r, &mut next) {
        return Err(ApiError::internal(format!(
            "Internal error occurred: {why}"
        )));
    }
    let mut causes = vec![];
    for f in ["name", "namespace", "uid", "creationTimestamp"] {
        let p = format!("/metadata/{f}");
        if next.pointer(&p) != obj.pointer(&p) {
            causes.push(Cause::invalid(
                format!("metadata.{f}"),
                format!(
                    "{:?}",
                    next.pointer(&p).and_then(Value::as_str).unwrap_or("")
                ),
                format!(
                    "field is immutable (changed by admission webhook {:?})",
                    h.name
                ),
            ));
        }
    }
    for f in ["apiVersion", "kind"] {
        if next.get(f) != obj.get(f) {
            causes.push(Cause::invalid(
                f,
                format!("{:?}", next.get(f).and_then(Value::as_str).unwrap_or("")),
                format!("may not be changed by admission webhook {:?}", h.name),
            ));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(a.r, a.name, causes));
    }
    // `changed` compares the patched object before it is defaulted again, as upstream does
    let changed = next != *obj;
    // defaulted again; the strategy's preparation comes after all of mutating admission
    crate::admission::decode(as_r, &mut next, true, false);
    *obj = next;
    Ok(changed)
}

/// The resources stored as `r` is, that a webhook of matchPolicy `Equivalent` registered for
/// one of them is called for (`EquivalentResourcesFor`): the other group's Events, a custom
/// resource's other served versions that have the subresource asked for, in the CRD's
/// `spec.versions` order (upstream also lists versions that are not served; a webhook whose
/// rules name only those is not called here).
fn equivalents(
    objects: &Objects,
    r: &'static Resource,
    sub: Option<&str>,
) -> Vec<&'static Resource> {
    if r.kind == "Event" && resources::is_builtin(r) {
        let other = if r.group.is_empty() {
            resources::find(crate::events::GROUP, "v1", "events")
        } else {
            resources::find("", "v1", "events")
        };
        return other.into_iter().collect();
    }
    let crds = objects.crds();
    if crds.served(r).is_none() {
        return vec![];
    }
    crds.versions_in_spec_order(r.group, r.plural)
        .iter()
        .filter(|v| v.as_str() != r.version)
        .filter_map(|v| crds.find(r.group, v, r.plural))
        // a subresource only where that version has it
        .filter(|e| match sub {
            None => true,
            Some(s) => e.subresources.contains(&s),
        })
        .collect()
}

/// The request's object as the webhook's resource `to` has it ([`convert_between`]).
fn convert<'v>(a: &Attributes<'_>, obj: &'v Value, to: &'static Resource) -> Cow<'v, Value> {
    convert_between(a, obj, a.r, to)
}

/// `obj` of resource `from` as resource `to` has it: an Event in the other group's shape, a
/// custom resource with the other version's `apiVersion` (conversion `None`); as it is for the
/// same resource, and for a subresource of a kind of its own (a Scale is `autoscaling/v1`
/// whichever version it scales).
fn convert_between<'v>(
    a: &Attributes<'_>,
    obj: &'v Value,
    from: &'static Resource,
    to: &'static Resource,
) -> Cow<'v, Value> {
    if std::ptr::eq(from, to) || a.kind.is_some() {
        return Cow::Borrowed(obj);
    }
    if from.kind == "Event" && resources::is_builtin(from) {
        let core = crate::events::stored(from, obj).into_owned();
        return Cow::Owned(crate::events::served(to, core));
    }
    let mut o = obj.clone();
    if o.is_object() {
        o["apiVersion"] = json!(to.api_version());
    }
    Cow::Owned(o)
}

/// The `AdmissionReview` v1 request (`request/admissionreview.go` `CreateV1AdmissionReview`).
fn review(
    a: &Attributes<'_>,
    as_r: &Resource,
    obj: Option<&Value>,
    old: Option<&Value>,
    info: &Option<RequestInfo>,
    uid: &str,
) -> Value {
    let (group, version, kind) = a.kind.unwrap_or((a.r.group, a.r.version, a.r.kind));
    let request_gvk = json!({"group": group, "version": version, "kind": kind});
    let request_gvr = json!({"group": a.r.group, "version": a.r.version, "resource": a.r.plural});
    // an equivalent resource's webhook sees its own kind and resource, and what was asked for
    // in requestKind and requestResource
    // (a subresource of a kind of its own keeps it: a Scale is a Scale in every version)
    let same = std::ptr::eq(as_r, a.r);
    let gvk = if same || a.kind.is_some() {
        request_gvk.clone()
    } else {
        json!({"group": as_r.group, "version": as_r.version, "kind": as_r.kind})
    };
    let gvr = if same {
        request_gvr.clone()
    } else {
        json!({"group": as_r.group, "version": as_r.version, "resource": as_r.plural})
    };
    let mut req = json!({
        "uid": uid,
        "kind": gvk,
        "resource": gvr,
        "requestKind": request_gvk,
        "requestResource": request_gvr,
        "operation": a.op.as_str(),
        "userInfo": user_info(info),
        "object": obj.cloned().unwrap_or(Value::Null),
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": info.as_ref().is_some_and(|i| i.dry_run),
    });
    if let Some(s) = a.sub {
        req["subResource"] = json!(s);
        req["requestSubResource"] = json!(s);
    }
    if !a.name.is_empty() {
        req["name"] = json!(a.name);
    }
    if !a.namespace.is_empty() {
        req["namespace"] = json!(a.namespace);
    }
    let mut options = a.options.clone().unwrap_or_else(|| {
        let kind = match a.op {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        };
        json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"})
    });
    if let Some(fm) = info.as_ref().and_then(|i| i.field_manager.as_ref()) {
        if a.op != Operation::Delete {
            options["fieldManager"] = json!(fm);
        }
    }
    if info.as_ref().is_some_and(|i| i.dry_run) {
        options["dryRun"] = json!(["All"]);
    }
    req["options"] = options;
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req})
}

/// Sends the review and checks the answer (`VerifyAdmissionResponse`).
async fn send(
    objects: &Objects,
    h: &Hook,
    review: &Value,
    uid: &str,
    mutating: bool,
) -> Result<Outcome, CallError> {
    let q = format!("?timeout={}s", h.timeout_secs);
    let (client, url, shown) = match &h.target {
        Target::Url { url, client } => {
            let client = client
                .clone()
                .map_err(|e| CallError(format!("could not get REST client: {e}")))?;
            (client, format!("{url}{q}"), format!("{url}{q}"))
        }
        Target::Service {
            namespace,
            name,
            path,
            port,
            ca,
        } => {
            let host = format!("{name}.{namespace}.svc");
            let shown = format!("https://{host}:{port}{path}{q}");
            let certs = match ca {
                Some(Err(e)) => return Err(CallError(format!("could not get REST client: {e}"))),
                Some(Ok(c)) => Some(c.as_slice()),
                None => None,
            };
            // the dialer resolves the service (`webhookutil.ClientManager.HookClient`): a
            // failure reads as a failed Post
            let addr = resolve_service(objects, namespace, name, *port)
                .await
                .map_err(|e| CallError(format!("failed to call webhook: Post {shown:?}: {e}")))?;
            let client = service_client(&host, addr, certs)
                .map_err(|e| CallError(format!("could not get REST client: {e}")))?;
            let url = format!("https://{host}:{}{path}{q}", addr.port());
            (client, url, shown)
        }
    };
    let body = serde_json::to_vec(review).unwrap_or_default();
    let (status, bytes) = post(&client, &url, &shown, body, h.timeout).await?;
    if !status.is_success() {
        return Err(CallError(format!(
            "failed to call webhook: {}",
            non_success(status.as_u16(), &bytes)
        )));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        CallError(format!(
            "failed to call webhook: couldn't get version/kind; json parse error: {e}"
        ))
    })?;
    verify(&v, uid, mutating, &h.name).map_err(CallError)
}

/// A client for a `service` webhook: `host` (`NAME.NAMESPACE.svc`, the TLS server name) dials
/// `addr`, the endpoint [`resolve_service`] picked.
fn service_client(
    host: &str,
    addr: SocketAddr,
    ca: Option<&[reqwest::Certificate]>,
) -> Result<reqwest::Client, String> {
    client(ca)?
        .resolve(host, addr)
        .build()
        .map_err(|e| e.to_string())
}

/// POSTs the review within `timeout`; `shown` is the URL as errors name it.
async fn post(
    client: &reqwest::Client,
    url: &str,
    shown: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(reqwest::StatusCode, Vec<u8>), CallError> {
    let fail = |why: String| CallError(format!("failed to call webhook: Post {shown:?}: {why}"));
    let exchange = async {
        let resp = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json, */*")
            .body(body)
            .send()
            .await
            .map_err(|e| fail(transport_error(&e)))?;
        let status = resp.status();
        let mut bytes = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(transport_error(&e)))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(CallError(format!(
                    "failed to call webhook: the response is larger than {MAX_RESPONSE} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(fail("context deadline exceeded".into())),
        Ok(r) => r,
    }
}

/// A non-2xx answer as client-go words it: the `Status` message when the body is one, else
/// `errors.NewGenericServerResponse`'s text.
fn non_success(code: u16, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if v.get("kind").and_then(Value::as_str) == Some("Status") {
            if let Some(m) = v.get("message").and_then(Value::as_str) {
                return m.to_string();
            }
        }
    }
    match code {
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "the server has asked for the client to provide credentials".into(),
        403 => "the server does not allow access to the requested resource".into(),
        404 => "the server could not find the requested resource".into(),
        409 => "the server reported a conflict".into(),
        500 => "an error on the server has prevented the request from succeeding".into(),
        503 => "the server is currently unable to handle the request".into(),
        504 => "the server was unable to return a response in the time allotted, but may still be processing the request".into(),
        c => format!("the server responded with the status code {c} but did not return more information"),
    }
}

/// `VerifyAdmissionResponse` (`request/admissionreview.go`), then the response's meaning as
/// `callAttrMutatingHook` / `callHook` read it. `Err` is the reason of an `ErrCallingWebhook`
/// (failurePolicy decides).
fn verify(v: &Value, uid: &str, mutating: bool, name: &str) -> Result<Outcome, String> {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        // client-go's decoder; the body itself is not repeated (it may echo the object)
        return Err(
            "failed to call webhook: Object 'Kind' is missing in the webhook response".into(),
        );
    }
    let invalid = |e: String| format!("received invalid webhook response: {e}");
    let Some(resp) = v.get("response").filter(|r| !r.is_null()) else {
        return Err(invalid("webhook response was absent".into()));
    };
    let got = resp.get("uid").and_then(Value::as_str).unwrap_or("");
    if got != uid {
        return Err(invalid(format!(
            "expected response.uid={uid:?}, got {got:?}"
        )));
    }
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        )));
    }
    let patch_type = resp.get("patchType").filter(|t| !t.is_null());
    let patch = resp.get("patch").and_then(Value::as_str).unwrap_or("");
    if mutating {
        if !patch.is_empty() && patch_type.is_none() {
            return Err(invalid(
                "webhook returned response.patch but not response.patchType".into(),
            ));
        }
        if patch.is_empty() && patch_type.is_some() {
            return Err(invalid(
                "webhook returned response.patchType but not response.patch".into(),
            ));
        }
        if patch_type.is_some_and(|t| t.as_str().is_none_or(str::is_empty)) {
            return Err(invalid(
                "webhook returned invalid response.patchType of \"\"".into(),
            ));
        }
    } else {
        if !patch.is_empty() {
            return Err(invalid(
                "validating webhook may not return response.patch".into(),
            ));
        }
        if patch_type.is_some() {
            return Err(invalid(
                "validating webhook may not return response.patchType".into(),
            ));
        }
    }
    for w in resp
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            crate::warnings::add(w);
        }
    }
    if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
        return Ok(Outcome::Rejected(ApiError::denied(
            name,
            resp.get("status"),
        )));
    }
    if patch.is_empty() {
        return Ok(Outcome::Allowed(None));
    }
    // `patch` is []byte in Go: bad base64 fails decoding the response; a patch that is not a
    // JSON patch is `received undecodable patch`
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| {
            let at = match e {
                base64::DecodeError::InvalidByte(at, _)
                | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                _ => patch.len(),
            };
            format!("failed to call webhook: illegal base64 data at input byte {at}")
        })?;
    let undecodable = |e: String| format!("received undecodable patch in webhook response: {e}");
    let ops: Value = serde_json::from_slice(&bytes).map_err(|e| undecodable(e.to_string()))?;
    if !ops.is_array() {
        return Err(undecodable(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into(),
        ));
    }
    if ops.as_array().is_some_and(Vec::is_empty) {
        return Ok(Outcome::Allowed(None));
    }
    let patch_type = patch_type.and_then(Value::as_str).unwrap_or("").to_string();
    Ok(Outcome::Allowed(Some((ops, patch_type))))
}

fn transport_error(e: &reqwest::Error) -> String {
    let mut chain = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let all = chain.join(": ");
    // a CA of the same name that did not sign the certificate is Go's unknown authority too
    if all.contains("UnknownIssuer")
        || all.contains("unknown issuer")
        || all.contains("BadSignature")
    {
        "tls: failed to verify certificate: x509: certificate signed by unknown authority".into()
    } else if all.contains("NotValidForName") || all.contains("not valid for name") {
        let host = e
            .url()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        format!("tls: failed to verify certificate: x509: certificate is not valid for {host}")
    } else if all.contains("Expired") {
        "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
            .into()
    } else if all.contains("Connection refused") {
        let addr = e
            .url()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(443)
                )
            })
            .unwrap_or_default();
        format!("dial tcp {addr}: connect: connection refused")
    } else {
        all
    }
}

// ---------------------------------------------------------------------------------------------
// `service` client configs
// ---------------------------------------------------------------------------------------------

/// Resolves `service` client configs to an address to dial (the TLS server name stays
/// `<name>.<namespace>.svc`), as kube-apiserver's endpoint resolver does (k8s.io/apiserver
/// `pkg/util/proxy/proxy.go` `ResolveEndpoint`): the Service (ClusterIP, NodePort or
/// LoadBalancer) must have the port; a ready endpoint of the matching port name is dialled.
pub async fn resolve_service(
    objects: &Objects,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<SocketAddr, String> {
    let (Some(svcr), Some(epr)) = (
        resources::find("", "v1", "services"),
        resources::find("", "v1", "endpoints"),
    ) else {
        return Err(format!(
            "service \"{namespace}/{name}\" cannot be resolved: this API server does not serve services and endpoints; use clientConfig.url"
        ));
    };
    let svc = objects
        .get(svcr, namespace, name)
        .await
        .map_err(|e| e.message)?;
    let eps = objects.get_opt(epr, namespace, name).await.ok().flatten();
    let slices = match resources::find("discovery.k8s.io", "v1", "endpointslices") {
        Some(r) => objects
            .list(
                r,
                Some(namespace),
                &ListOptions {
                    label_selector: Some(format!("kubernetes.io/service-name={name}")),
                    ..Default::default()
                },
            )
            .await
            .map(|(items, _, _)| items)
            .unwrap_or_default(),
        None => vec![],
    };
    pick_endpoint(&svc, eps.as_ref(), &slices, port)
}

/// The address behind `port` of a Service: `findServicePort`, then the first ready address of
/// the Endpoints subset (or EndpointSlice) port of the same name.
pub fn pick_endpoint(
    svc: &Value,
    endpoints: Option<&Value>,
    slices: &[Value],
    port: u16,
) -> Result<SocketAddr, String> {
    let name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ty = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer") {
        return Err(format!("unsupported service type {ty:?}"));
    }
    let svc_port = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        })
        .ok_or_else(|| format!("no service port {port} found for service {name:?}"))?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    let addr = |ip: &str, p: u64| -> Option<SocketAddr> {
        let ip: std::net::IpAddr = ip.parse().ok()?;
        Some(SocketAddr::new(ip, u16::try_from(p).ok()?))
    };
    for ss in endpoints
        .and_then(|e| e.get("subsets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(first) = ss
            .get("addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        else {
            continue;
        };
        for p in ss
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if p.get("name").and_then(Value::as_str).unwrap_or("") == port_name {
                if let Some(a) = addr(
                    first.get("ip").and_then(Value::as_str).unwrap_or(""),
                    p.get("port").and_then(Value::as_u64).unwrap_or(0),
                ) {
                    return Ok(a);
                }
            }
        }
    }
    for sl in slices {
        let Some(p) = sl
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
        else {
            continue;
        };
        for ep in sl
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if ep.pointer("/conditions/ready") == Some(&json!(false)) {
                continue;
            }
            if let Some(a) = ep
                .get("addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .and_then(|ip| addr(ip, p))
            {
                return Ok(a);
            }
        }
    }
    Err(format!("no endpoints available for service {name:?}"))
}

impl ApiError {
    /// A webhook's rejection (`errors/statuserror.go` `ToStatusErr`): `admission webhook "x"
    /// denied the request: <message | reason>`, a code below 400 becomes 400.
    fn denied(name: &str, status: Option<&Value>) -> ApiError {
        let s = status.cloned().unwrap_or(json!({}));
        let code = s
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| *c >= 400 && *c < 600)
            .unwrap_or(400);
        let message = s.get("message").and_then(Value::as_str).unwrap_or("");
        let reason = s.get("reason").and_then(Value::as_str).unwrap_or("");
        let text = if !message.is_empty() {
            format!(": {message}")
        } else if !reason.is_empty() {
            format!(": {reason}")
        } else {
            " without explanation".to_string()
        };
        let mut e = ApiError::bad_request(format!(
            "admission webhook {name:?} denied the request{text}"
        ));
        e.code = code;
        e.reason = status_reason(reason);
        e.details = s.get("details").cloned();
        e
    }
}

/// A `metav1.StatusReason` as a static string (unknown reasons are dropped, as kubectl shows
/// them without one).
fn status_reason(r: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    KNOWN.iter().find(|k| **k == r).copied().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(
        group: &str,
        plural: &str,
        sub: Option<&'static str>,
        op: Operation,
        ns: &'static str,
    ) -> Attributes<'static> {
        Attributes {
            r: resources::RESOURCES
                .iter()
                .find(|r| r.group == group && r.plural == plural)
                .unwrap(),
            kind: None,
            sub,
            op,
            namespace: ns,
            name: "x",
            options: None,
        }
    }

    fn rule(ops: &[&str], groups: &[&str], resources: &[&str], scope: &str) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            operations: v(ops),
            groups: v(groups),
            versions: v(&["*"]),
            resources: v(resources),
            scope: scope.into(),
        }
    }

    #[test]
    fn rules_match_as_upstream() {
        let pod = attrs("", "pods", None, Operation::Create, "default");
        let status = attrs("", "pods", Some("status"), Operation::Update, "default");
        let ns = attrs("", "namespaces", None, Operation::Create, "");
        let node = attrs("", "nodes", None, Operation::Create, "");
        // `*` is every resource without a subresource; `*/*` everything; `pods/*` pods and
        // all its subresources; `*/status` status only
        assert!(rule(&["*"], &["*"], &["*"], "*").matches(&pod));
        assert!(!rule(&["*"], &["*"], &["*"], "*").matches(&status));
        assert!(rule(&["*"], &["*"], &["*/*"], "*").matches(&status));
        assert!(rule(&["*"], &[""], &["pods/*"], "*").matches(&pod));
        assert!(rule(&["*"], &[""], &["pods/*"], "*").matches(&status));
        assert!(rule(&["UPDATE"], &["*"], &["*/status"], "*").matches(&status));
        assert!(!rule(&["UPDATE"], &["*"], &["*/status"], "*").matches(&pod));
        assert!(!rule(&["CREATE"], &[""], &["pods/status"], "*").matches(&status));
        assert!(!rule(&["CREATE"], &["apps"], &["pods"], "*").matches(&pod));
        // scope: a Namespace is cluster-scoped
        assert!(rule(&["*"], &["*"], &["*"], "Namespaced").matches(&pod));
        assert!(!rule(&["*"], &["*"], &["*"], "Namespaced").matches(&ns));
        assert!(!rule(&["*"], &["*"], &["*"], "Namespaced").matches(&node));
        assert!(rule(&["*"], &["*"], &["*"], "Cluster").matches(&ns));
        assert!(!rule(&["*"], &["*"], &["*"], "Cluster").matches(&pod));
        // webhook and policy configurations are exempt
        let r = resources::find(GROUP, "v1", "validatingwebhookconfigurations").unwrap();
        assert!(exempt(r));
        assert!(!exempt(resources::find("", "v1", "pods").unwrap()));
    }

    #[test]
    fn selectors() {
        let s = Selector::parse(Some(&json!({
            "matchLabels": {"a": "1"},
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
                {"key": "skip", "operator": "DoesNotExist"},
            ],
        })));
        let labels = |v: Value| v.as_object().cloned();
        assert!(
            s.matches(labels(json!({"a": "1", "kubernetes.io/metadata.name": "default"})).as_ref())
        );
        assert!(!s.matches(
            labels(json!({"a": "1", "kubernetes.io/metadata.name": "kube-system"})).as_ref()
        ));
        assert!(!s.matches(labels(json!({"a": "1", "skip": ""})).as_ref()));
        assert!(!s.matches(None));
        assert!(Selector::parse(Some(&json!({}))).is_empty());
        let bad = Selector::parse(Some(
            &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
        ));
        assert!(!bad.matches(labels(json!({"a": "1"})).as_ref()));
    }

    #[test]
    fn responses_are_verified() {
        let ok = |resp: Value| json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp});
        let err = |v: Value, mutating: bool| match verify(&v, "u1", mutating, "h.example.com") {
            Err(e) => e,
            Ok(_) => panic!("accepted {v}"),
        };
        assert_eq!(
            err(ok(json!({"uid": "u2", "allowed": true})), true),
            "received invalid webhook response: expected response.uid=\"u1\", got \"u2\""
        );
        assert_eq!(
            err(json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u1", "allowed": true}}), true),
            "received invalid webhook response: expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"
        );
        assert_eq!(
            err(
                ok(json!({"uid": "u1", "allowed": true, "patch": "W10="})),
                true
            ),
            "received invalid webhook response: webhook returned response.patch but not response.patchType"
        );
        assert_eq!(
            err(
                ok(json!({"uid": "u1", "allowed": true, "patchType": "JSONPatch"})),
                true
            ),
            "received invalid webhook response: webhook returned response.patchType but not response.patch"
        );
        assert_eq!(
            err(
                ok(
                    json!({"uid": "u1", "allowed": true, "patchType": "JSONPatch", "patch": "W10="})
                ),
                false
            ),
            "received invalid webhook response: validating webhook may not return response.patch"
        );
        assert_eq!(
            err(
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
                true
            ),
            "received invalid webhook response: webhook response was absent"
        );
        match verify(
            &ok(json!({"uid": "u1", "allowed": true, "patchType": "JSONPatch", "patch": "W10="})),
            "u1",
            true,
            "h",
        ) {
            Ok(Outcome::Allowed(None)) => {}
            _ => panic!("patch"),
        }
        // e30= is `{}`: not a JSON patch; `!!` is not base64
        assert_eq!(
            err(ok(json!({"uid": "u1", "allowed": true, "patchType": "JSONPatch", "patch": "e30="})), true),
            "received undecodable patch in webhook response: json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(
            err(
                ok(
                    json!({"uid": "u1", "allowed": true, "patchType": "JSONPatch", "patch": "W10!"})
                ),
                true
            ),
            "failed to call webhook: illegal base64 data at input byte 3"
        );
        assert_eq!(
            err(ok(json!({"uid": "u1", "allowed": true, "patchType": "", "patch": "W10="})), true),
            "received invalid webhook response: webhook returned invalid response.patchType of \"\""
        );
        assert_eq!(
            err(ok(json!({"uid": "u1", "allowed": true, "patchType": "JSONPatch"})), false),
            "received invalid webhook response: validating webhook may not return response.patchType"
        );
        // ToStatusErr: message, else reason, else "without explanation"; codes below 400 → 400
        let denied = |status: Value| match verify(
            &ok(json!({"uid": "u1", "allowed": false, "status": status})),
            "u1",
            false,
            "h.example.com",
        ) {
            Ok(Outcome::Rejected(e)) => e,
            _ => panic!("not rejected"),
        };
        let e = denied(json!({"code": 403, "reason": "Forbidden", "message": "no"}));
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (
                403,
                "Forbidden",
                "admission webhook \"h.example.com\" denied the request: no"
            )
        );
        let e = denied(json!({"code": 200, "reason": "NotNice"}));
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (
                400,
                "",
                "admission webhook \"h.example.com\" denied the request: NotNice"
            )
        );
        let e = denied(json!(null));
        assert_eq!(
            e.message,
            "admission webhook \"h.example.com\" denied the request without explanation"
        );
    }

    #[test]
    fn service_endpoints_are_picked_by_port_name() {
        let svc = json!({
            "metadata": {"name": "pull-secrets", "namespace": "ops"},
            "spec": {"type": "ClusterIP", "ports": [{"name": "https", "port": 443, "targetPort": 8443}, {"name": "metrics", "port": 9090}]},
        });
        let eps = json!({"subsets": [
            {"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"name": "https", "port": 8443}]},
            {"addresses": [{"ip": "10.1.0.5"}], "ports": [{"name": "metrics", "port": 9090}, {"name": "https", "port": 8443}]},
        ]});
        assert_eq!(
            pick_endpoint(&svc, Some(&eps), &[], 443).unwrap(),
            "10.1.0.5:8443".parse().unwrap()
        );
        assert_eq!(
            pick_endpoint(&svc, Some(&eps), &[], 8443).unwrap_err(),
            "no service port 8443 found for service \"pull-secrets\""
        );
        let slice = json!({
            "ports": [{"name": "https", "port": 8443}],
            "endpoints": [
                {"addresses": ["10.2.0.1"], "conditions": {"ready": false}},
                {"addresses": ["10.2.0.2"], "conditions": {"ready": true}},
            ],
        });
        assert_eq!(
            pick_endpoint(&svc, None, &[slice], 443).unwrap(),
            "10.2.0.2:8443".parse().unwrap()
        );
        assert_eq!(
            pick_endpoint(&svc, None, &[], 443).unwrap_err(),
            "no endpoints available for service \"pull-secrets\""
        );
        let external = json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName"}});
        assert_eq!(
            pick_endpoint(&external, None, &[], 443).unwrap_err(),
            "unsupported service type \"ExternalName\""
        );
    }

    /// A TLS server on loopback presenting a certificate for `names`, answering `ok`.
    async fn tls_server(names: &[&str]) -> (u16, String) {
        use rustls_pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = p.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
        let certs =
            vec![rustls_pki_types::CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()];
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
            .unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 8192];
                        let _ = s.read(&mut buf).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        let _ = s.shutdown().await;
                    }
                });
            }
        });
        (port, ca_pem)
    }

    #[tokio::test]
    async fn service_webhooks_are_dialled_at_the_endpoint_with_the_service_name() {
        let host = "pull-secrets.ops.svc";
        let call = |port: u16, ca: String| async move {
            let certs = parse_ca_bundle(&{
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(ca)
            })
            .unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let client = service_client(host, addr, Some(&certs)).unwrap();
            let url = format!("https://{host}:{port}/mutate?timeout=2s");
            let shown = format!("https://{host}:443/mutate?timeout=2s");
            post(
                &client,
                &url,
                &shown,
                b"{}".to_vec(),
                Duration::from_secs(2),
            )
            .await
        };
        // the serving certificate names the service: verified against the caBundle
        let (port, ca) = tls_server(&[host]).await;
        let (status, body) = call(port, ca).await.map_err(|e| e.0).unwrap();
        assert_eq!((status.as_u16(), body.as_slice()), (200, b"ok".as_slice()));
        // a certificate for the endpoint's address only is not the service's
        let (port, ca) = tls_server(&["127.0.0.1"]).await;
        let e = call(port, ca).await.map(|_| ()).unwrap_err().0;
        assert_eq!(
            e,
            format!("failed to call webhook: Post \"https://{host}:443/mutate?timeout=2s\": tls: failed to verify certificate: x509: certificate is not valid for {host}")
        );
    }

    #[tokio::test]
    async fn the_cache_follows_changes_made_elsewhere() {
        // two object layers over one store stand for two API servers over one etcd: the cache
        // of one sees what the other writes (the watch), without a restart
        let store: Arc<dyn kubepull_datastore::Datastore> =
            Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let here = Objects::new(store.clone());
        let elsewhere = Objects::new(store);
        let cache = Webhooks::default();
        assert!(cache.snapshot(&here).await.unwrap().validating.is_empty());
        let r = resources::find(GROUP, "v1", "validatingwebhookconfigurations").unwrap();
        let cfg = json!({"metadata": {"name": "v"}, "webhooks": [{
            "name": "v.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://127.0.0.1:1/"},
            "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
        }]});
        elsewhere
            .create(r, "", cfg, &User::Admin, false)
            .await
            .unwrap();
        let mut seen = 0;
        for _ in 0..200 {
            seen = cache.snapshot(&here).await.unwrap().validating.len();
            if seen == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, 1);
        elsewhere
            .delete(r, "", "v", &Default::default())
            .await
            .unwrap();
        for _ in 0..200 {
            seen = cache.snapshot(&here).await.unwrap().validating.len();
            if seen == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, 0);
    }

    #[test]
    fn defaults_and_validation() {
        let r = resources::find(GROUP, "v1", "mutatingwebhookconfigurations").unwrap();
        let mut c = json!({"metadata": {"name": "c"}, "webhooks": [{
            "name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "n", "name": "s"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "pods/status"]}],
        }]});
        c = crate::admission::defaulted(r, c);
        let h = &c["webhooks"][0];
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        assert!(
            validate_configuration(r, &c).is_empty(),
            "{:?}",
            validate_configuration(r, &c)
        );
        // resources: `x/*` with `x/y`, `*/*` with others
        let mut causes = vec![];
        validate_resources(&["pods/*".into(), "pods/status".into()], "r", &mut causes);
        validate_resources(&["*/*".into(), "pods".into()], "s", &mut causes);
        let texts: Vec<String> = causes.iter().map(Cause::text).collect();
        assert_eq!(
            texts,
            vec![
                "r[1]: Invalid value: \"pods/status\": if 'pods/*' is present, must not specify pods/status".to_string(),
                "s: Invalid value: []string{\"*/*\", \"pods\"}: if '*/*' is present, must not specify other resources".to_string(),
            ]
        );
        // a CEL matchCondition is refused rather than ignored
        c["webhooks"][0]["matchConditions"] = json!([{"name": "x", "expression": "true"}]);
        assert!(validate_configuration(r, &c)
            .iter()
            .any(|c| c.field == "webhooks[0].matchConditions"));
    }
}
