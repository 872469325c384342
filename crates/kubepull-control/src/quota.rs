//! ResourceQuotas (core/v1 `resourcequotas`): their validation, the usage of the objects they
//! track, and the admission check that keeps a namespace within them.
//!
//! - Validation (pkg/apis/core/validation/validation.go): `ValidateResourceQuota`,
//!   `ValidateResourceQuotaUpdate`, `ValidateResourceQuotaStatusUpdate`,
//!   `ValidateResourceQuotaSpec` (`validateResourceQuotaScopes`,
//!   `validateScopedResourceSelectorRequirement`), `ValidateResourceQuotaResourceName` and
//!   `ValidateResourceQuantityValue`, with upstream's messages and field paths.
//! - Usage (pkg/quota/v1/evaluator/core, k8s.io/apiserver `pkg/quota/v1/generic`): the pod
//!   evaluator (object count, `pods`, compute requests and limits, huge pages, extended
//!   resources; terminal pods count as objects only; the scopes), the service evaluator
//!   (`services`, `services.nodeports`, `services.loadbalancers`), the claim evaluator
//!   (`persistentvolumeclaims`, `requests.storage`, and both per storage class) and the object
//!   count evaluator of every other resource (`count/<resource>[.<group>]`, with the legacy
//!   names `configmaps`, `secrets`, `replicationcontrollers` and `resourcequotas`).
//! - Admission (k8s.io/apiserver `pkg/admission/plugin/resourcequota`, `controller.go`
//!   `checkRequest` and `checkQuotas`): a create (and an update of a Service or a claim) that
//!   would exceed a quota of its namespace is forbidden; otherwise the quotas' `status.used`
//!   is charged, with the quota's resourceVersion as precondition, before the object is
//!   stored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use k8s_openapi::api::core::v1 as core;
use kubepull_core::qos::Quantity;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};

/// A resource list of quantities (`corev1.ResourceList`), by resource name.
pub type Usage = BTreeMap<String, Quantity>;

/// `isInvalidQuotaResource`.
const INVALID_QUOTA_RESOURCE: &str = "must be a standard resource for quota";

/// `fieldImmutableErrorMsg`.
const FIELD_IMMUTABLE: &str = "field is immutable";

/// The scopes of `standardResourceQuotaScopes` and `CrossNamespacePodAffinity`
/// (`helper.IsStandardResourceQuotaScope`).
const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// `standardQuotaResources` (pkg/apis/core/helper/helpers.go).
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// `helper.IsQuotaHugePageResourceName`.
fn is_quota_huge_pages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// `helper.IsStandardQuotaResourceName`.
fn is_standard_quota_resource(name: &str) -> bool {
    STANDARD_QUOTA_RESOURCES.contains(&name) || is_quota_huge_pages(name)
}

/// `IsResourceQuotaScopeValidForResource`: the pod scopes apply to `pods` and the compute
/// resources (`BestEffort` to `pods` alone); any other scope to everything.
fn scope_valid_for_resource(scope: &str, resource: &str) -> bool {
    const COMPUTE: &[&str] = &[
        "cpu",
        "memory",
        "limits.cpu",
        "limits.memory",
        "requests.cpu",
        "requests.memory",
    ];
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => resource == "pods" || COMPUTE.contains(&resource),
        "BestEffort" => resource == "pods",
        _ => true,
    }
}

/// `validateResourceName` then `ValidateResourceQuotaResourceName`: a qualified name; without
/// a `/`, a standard resource (the first check stops at a name that is not qualified) and one
/// quota knows.
fn validate_quota_resource_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    let qualified = crate::validation::is_qualified_name(name);
    let unqualified = !qualified.is_empty();
    for msg in qualified {
        causes.push(Cause::invalid(path, name, msg));
    }
    if !name.contains('/') {
        if !unqualified && !crate::quantities::is_standard_resource(name) {
            causes.push(Cause::invalid(
                path,
                name,
                "must be a standard resource type or fully qualified",
            ));
        }
        if !is_standard_quota_resource(name) {
            causes.push(Cause::invalid(path, name, INVALID_QUOTA_RESOURCE));
        }
    }
}

/// A resource list's names and values at `path` (`spec.hard`, `status.used`): each name
/// (`ValidateResourceQuotaResourceName`) then each value (`ValidateResourceQuantityValue`).
/// Go walks the map in a random order; here it is sorted.
fn validate_list(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for (k, v) in list.into_iter().flatten() {
        let at = format!("{path}[{k}]");
        validate_quota_resource_name(k, &at, causes);
        crate::quantities::validate_quantity_value(k, v, &at, causes);
    }
}

/// A Go `%#v` of a string list of a named type (`[]core.ResourceQuotaScope{"A", "B"}`, or
/// `(nil)` when absent).
fn go_list(type_name: &str, items: Option<&Vec<String>>) -> String {
    match items {
        None => format!("{type_name}(nil)"),
        Some(v) => format!(
            "{type_name}{{{}}}",
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `%#v` of a `core.ScopeSelector` (the field error prints the pointer's target).
fn go_scope_selector(sel: &core::ScopeSelector) -> String {
    let exprs = sel.match_expressions.as_ref().map(|v| {
        v.iter()
            .map(|r| {
                format!(
                    "core.ScopedResourceSelectorRequirement{{ScopeName:{:?}, Operator:{:?}, Values:{}}}",
                    r.scope_name,
                    r.operator,
                    go_list("[]string", r.values.as_ref())
                )
            })
            .collect::<Vec<_>>()
    });
    let list = match exprs {
        None => "[]core.ScopedResourceSelectorRequirement(nil)".to_string(),
        Some(e) => format!(
            "[]core.ScopedResourceSelectorRequirement{{{}}}",
            e.join(", ")
        ),
    };
    format!("core.ScopeSelector{{MatchExpressions:{list}}}")
}

/// `ValidateResourceQuotaSpec`: `spec.hard` ([`validate_list`]), then
/// `validateResourceQuotaScopes` and `validateScopeSelector`.
fn validate_spec(spec: &core::ResourceQuotaSpec, causes: &mut Vec<Cause>) {
    validate_list(spec.hard.as_ref(), "spec.hard", causes);
    let hard: Vec<&String> = spec.hard.iter().flat_map(|h| h.keys()).collect();
    let scopes_shown = || go_list("[]core.ResourceQuotaScope", spec.scopes.as_ref());
    let conflicting = |set: &BTreeSet<&str>| {
        [
            ("BestEffort", "NotBestEffort"),
            ("Terminating", "NotTerminating"),
        ]
        .iter()
        .filter(|(a, b)| set.contains(a) && set.contains(b))
        .count()
    };
    // validateResourceQuotaScopes
    if let Some(scopes) = spec.scopes.as_ref().filter(|s| !s.is_empty()) {
        let mut set = BTreeSet::new();
        for scope in scopes {
            if !SCOPES.contains(&scope.as_str()) {
                causes.push(Cause::invalid(
                    "spec.scopes",
                    scopes_shown(),
                    "unsupported scope",
                ));
            }
            for k in &hard {
                if is_standard_quota_resource(k) && !scope_valid_for_resource(scope, k) {
                    causes.push(Cause::invalid(
                        "spec.scopes",
                        scopes_shown(),
                        "unsupported scope applied to resource",
                    ));
                }
            }
            set.insert(scope.as_str());
        }
        for _ in 0..conflicting(&set) {
            causes.push(Cause::invalid(
                "spec.scopes",
                scopes_shown(),
                "conflicting scopes",
            ));
        }
    }
    // validateScopeSelector → validateScopedResourceSelectorRequirement
    let Some(sel) = &spec.scope_selector else {
        return;
    };
    let at = "spec.scopeSelector.matchExpressions";
    let mut set = BTreeSet::new();
    for req in sel.match_expressions.iter().flatten() {
        let scope = req.scope_name.as_str();
        if !SCOPES.contains(&scope) {
            causes.push(Cause::invalid(
                format!("{at}.scopeName"),
                format!("{scope:?}"),
                "unsupported scope",
            ));
        }
        for k in &hard {
            if is_standard_quota_resource(k) && !scope_valid_for_resource(scope, k) {
                causes.push(Cause::invalid(
                    at,
                    go_scope_selector(sel),
                    "unsupported scope applied to resource",
                ));
            }
        }
        if matches!(
            scope,
            "BestEffort"
                | "NotBestEffort"
                | "Terminating"
                | "NotTerminating"
                | "CrossNamespacePodAffinity"
        ) && req.operator != "Exists"
        {
            causes.push(Cause::invalid(
                format!("{at}.operator"),
                format!("{:?}", req.operator),
                "must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            ));
        }
        let values = req.values.as_ref().map_or(0, Vec::len);
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values == 0 {
                    causes.push(Cause::required(
                        format!("{at}.values"),
                        "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if values != 0 {
                    causes.push(Cause::invalid(
                        format!("{at}.values"),
                        go_list("[]string", req.values.as_ref()),
                        "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                    ));
                }
            }
            op => causes.push(Cause::invalid(
                format!("{at}.operator"),
                format!("{op:?}"),
                "not a valid selector operator",
            )),
        }
        set.insert(scope);
    }
    for _ in 0..conflicting(&set) {
        causes.push(Cause::invalid(at, scopes_shown(), "conflicting scopes"));
    }
}

/// `ValidateResourceQuotaStatus` (and the status part of `ValidateResourceQuotaStatusUpdate`):
/// `status.hard` and `status.used` as [`validate_list`] checks them.
fn validate_status(status: Option<&core::ResourceQuotaStatus>, causes: &mut Vec<Cause>) {
    if let Some(s) = status {
        validate_list(s.hard.as_ref(), "status.hard", causes);
        validate_list(s.used.as_ref(), "status.used", causes);
    }
}

/// A ResourceQuota's checks past its metadata: on create `ValidateResourceQuota` (the spec,
/// then the status); on an update `ValidateResourceQuotaUpdate` (the spec, and
/// `spec.scopes` unchanged as a set) and `ValidateResourceQuotaStatusUpdate` (the status): an
/// update of the object keeps the stored status and one of `status` keeps the stored spec
/// (the strategies' `PrepareForUpdate`), so the part a request did not change passes as it
/// was stored.
pub fn validate_resource_quota(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    let Ok(q) = serde_json::from_value::<core::ResourceQuota>(obj.clone()) else {
        return causes;
    };
    let spec = q.spec.clone().unwrap_or_default();
    validate_spec(&spec, &mut causes);
    if let Some(old) = old {
        let old_scopes: BTreeSet<String> = old
            .pointer("/spec/scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        let new_scopes: BTreeSet<String> = spec.scopes.iter().flatten().cloned().collect();
        if old_scopes != new_scopes {
            causes.push(Cause::invalid(
                "spec.scopes",
                go_list("[]core.ResourceQuotaScope", spec.scopes.as_ref()),
                FIELD_IMMUTABLE,
            ));
        }
    }
    validate_status(q.status.as_ref(), &mut causes);
    causes
}

// ---------------------------------------------------------------------------------------------
// usage

fn quantity(text: &str) -> Option<Quantity> {
    Quantity::parse(text)
}

/// `resource.NewQuantity(n, resource.DecimalSI)`.
fn count(n: usize) -> Quantity {
    Quantity::parse(&n.to_string()).expect("a count")
}

/// `resource.Quantity{Format: resource.DecimalSI}`.
fn zero() -> Quantity {
    count(0)
}

/// `quota.Add`.
pub fn add(a: &Usage, b: &Usage) -> Usage {
    let mut out = a.clone();
    for (k, v) in b {
        out.entry(k.clone())
            .and_modify(|q| *q = q.add(v))
            .or_insert_with(|| v.clone());
    }
    out
}

/// `quota.Mask`: the entries of `list` named in `names`.
fn mask<'a>(list: &Usage, names: impl IntoIterator<Item = &'a String>) -> Usage {
    names
        .into_iter()
        .filter_map(|n| list.get(n).map(|q| (n.clone(), q.clone())))
        .collect()
}

/// `quota.Equals`: the same names with equal values.
pub fn equals(a: &Usage, b: &Usage) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

/// `quota.SubtractWithNonNegativeResult`.
fn subtract_non_negative(a: &Usage, b: &Usage) -> Usage {
    let mut out: Usage = a
        .iter()
        .map(|(k, v)| {
            let d = b.get(k).map_or_else(|| v.clone(), |o| v.add(&o.neg()));
            (k.clone(), if d.sign() > 0 { d } else { zero() })
        })
        .collect();
    for k in b.keys() {
        out.entry(k.clone()).or_insert_with(zero);
    }
    out
}

/// A decoded resource list (`corev1.ResourceList`); a value that is not a quantity is left
/// out (the decoder refuses those first).
pub fn usage_of(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Usage {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| quantity(&v.0).map(|q| (k.clone(), q)))
        .collect()
}

/// `Quantity.String()` of a computed quantity (a sum has no cached text: the canonical form).
pub fn shown(q: &Quantity) -> String {
    crate::quantities::canonical(q)
}

/// A resource list as the API writes it.
pub fn to_json(u: &Usage) -> Value {
    Value::Object(
        u.iter()
            .map(|(k, v)| (k.clone(), json!(shown(v))))
            .collect(),
    )
}

/// `prettyPrint`: `name=value` sorted by name, joined by `,`.
fn pretty(u: &Usage) -> String {
    u.iter()
        .map(|(k, v)| format!("{k}={}", shown(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// What measures the usage of a resource (`quota.Evaluator`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evaluator {
    /// `podEvaluator`.
    Pod,
    /// `serviceEvaluator`.
    Service,
    /// `pvcEvaluator`.
    Claim,
    /// `objectCountEvaluator` of `resource` in `group`.
    Count { group: String, resource: String },
}

/// Resources quota does not track (pkg/quota/v1/install `ignoredResources`): the virtual
/// review kinds and events.
const IGNORED: &[(&str, &str)] = &[
    ("", "bindings"),
    ("", "componentstatuses"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
];

/// `storageClassSuffix`.
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// `pvcResources`.
const CLAIM_RESOURCES: &[&str] = &["persistentvolumeclaims", "requests.storage"];

/// `podResources`.
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// `serviceResources`.
const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];

impl Evaluator {
    /// The evaluator of a resource (`registry.Get`, or the object count evaluator the
    /// admission plugin makes for any other); none for an ignored one.
    pub fn of(group: &str, resource: &str) -> Option<Evaluator> {
        if IGNORED.contains(&(group, resource)) {
            return None;
        }
        Some(match (group, resource) {
            ("", "pods") => Evaluator::Pod,
            ("", "services") => Evaluator::Service,
            ("", "persistentvolumeclaims") => Evaluator::Claim,
            _ => Evaluator::Count {
                group: group.into(),
                resource: resource.into(),
            },
        })
    }

    /// The group and resource it measures.
    pub fn group_resource(&self) -> (&str, &str) {
        match self {
            Evaluator::Pod => ("", "pods"),
            Evaluator::Service => ("", "services"),
            Evaluator::Claim => ("", "persistentvolumeclaims"),
            Evaluator::Count { group, resource } => (group, resource),
        }
    }

    /// `generic.ObjectCountQuotaResourceNameFor`: `count/<resource>[.<group>]`.
    fn count_name(&self) -> String {
        match self.group_resource() {
            ("", r) => format!("count/{r}"),
            (g, r) => format!("count/{r}.{g}"),
        }
    }

    /// `legacyObjectCountAliases`: the name before `count/…`.
    fn alias(&self) -> Option<&'static str> {
        match self.group_resource() {
            ("", "configmaps") => Some("configmaps"),
            ("", "secrets") => Some("secrets"),
            ("", "replicationcontrollers") => Some("replicationcontrollers"),
            ("", "resourcequotas") => Some("resourcequotas"),
            _ => None,
        }
    }

    /// `MatchingResources`: the names of `input` this evaluator measures.
    pub fn matching_resources<'a>(&self, input: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        input
            .into_iter()
            .filter(|n| self.measures(n))
            .map(String::from)
            .collect()
    }

    fn measures(&self, n: &str) -> bool {
        match self {
            Evaluator::Pod => {
                POD_RESOURCES.contains(&n)
                    || n.starts_with("hugepages-")
                    || n.starts_with("requests.hugepages-")
                    // isExtendedResourceNameForQuota
                    || (!crate::quantities::is_native(n) && n.starts_with("requests."))
            }
            Evaluator::Service => SERVICE_RESOURCES.contains(&n),
            Evaluator::Claim => {
                n == "count/persistentvolumeclaims"
                    || CLAIM_RESOURCES.contains(&n)
                    || CLAIM_RESOURCES
                        .iter()
                        .any(|r| n.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
            }
            Evaluator::Count { .. } => n == self.count_name() || Some(n) == self.alias(),
        }
    }

    /// `Handles`: creates; and updates of Services and claims (whose usage an update can
    /// change). A Pod's usage changes on update only with in-place resize, off in 1.32.
    pub fn handles_update(&self) -> bool {
        matches!(self, Evaluator::Service | Evaluator::Claim)
    }

    /// The evaluators of the resources a quota names in `hard` (`CalculateUsage`'s
    /// registry walk): the pod, service and claim evaluators when they measure one of them,
    /// and the object count of each other `count/…` or legacy name.
    pub fn for_hard<'a>(hard: impl IntoIterator<Item = &'a str>) -> BTreeSet<Evaluator> {
        let mut out = BTreeSet::new();
        for n in hard {
            for e in [Evaluator::Pod, Evaluator::Service, Evaluator::Claim] {
                if e.measures(n) {
                    out.insert(e);
                }
            }
            let legacy = match n {
                "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
                    Some(("", n))
                }
                _ => None,
            };
            let counted = n.strip_prefix("count/").map(|gr| match gr.split_once('.') {
                Some((r, g)) => (g, r),
                None => ("", gr),
            });
            if let Some((g, r)) = legacy.or(counted) {
                if let Some(e) = Evaluator::of(g, r) {
                    if matches!(e, Evaluator::Count { .. }) {
                        out.insert(e);
                    }
                }
            }
        }
        out
    }
}

/// An object decoded for its evaluator.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A Pod.
    Pod(Box<core::Pod>),
    /// A Service.
    Service(Box<core::Service>),
    /// A PersistentVolumeClaim.
    Claim(Box<core::PersistentVolumeClaim>),
    /// Any other object (counted).
    Other,
}

impl Subject {
    /// Decodes `obj` for `e`; `None` when it does not decode as its type.
    pub fn decode(e: &Evaluator, obj: &Value) -> Option<Subject> {
        Some(match e {
            Evaluator::Pod => Subject::Pod(Box::new(serde_json::from_value(obj.clone()).ok()?)),
            Evaluator::Service => {
                Subject::Service(Box::new(serde_json::from_value(obj.clone()).ok()?))
            }
            Evaluator::Claim => Subject::Claim(Box::new(serde_json::from_value(obj.clone()).ok()?)),
            Evaluator::Count { .. } => Subject::Other,
        })
    }
}

/// A scope requirement of a quota (`corev1.ScopedResourceSelectorRequirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeReq {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// `getScopeSelectorsFromQuota`: each of `spec.scopes` as `Exists`, then the scope selector's
/// expressions.
pub fn scope_selectors(q: &core::ResourceQuota) -> Vec<ScopeReq> {
    let spec = q.spec.as_ref();
    let mut out: Vec<ScopeReq> = spec
        .and_then(|s| s.scopes.as_ref())
        .into_iter()
        .flatten()
        .map(|s| ScopeReq {
            scope: s.clone(),
            operator: "Exists".into(),
            values: vec![],
        })
        .collect();
    out.extend(
        spec.and_then(|s| s.scope_selector.as_ref())
            .and_then(|s| s.match_expressions.as_ref())
            .into_iter()
            .flatten()
            .map(|r| ScopeReq {
                scope: r.scope_name.clone(),
                operator: r.operator.clone(),
                values: r.values.clone().unwrap_or_default(),
            }),
    );
    out
}

/// `podMatchesScopeFunc` (a non-pod matches no scope: `generic.MatchesNoScopeFunc`).
fn matches_scope(sel: &ScopeReq, s: &Subject) -> bool {
    let Subject::Pod(pod) = s else {
        return false;
    };
    let spec = pod.spec.as_ref();
    let terminating = spec
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|d| d >= 0);
    let best_effort =
        || spec.is_some_and(|s| crate::objects::pod_qos_class(s) == "BestEffort") || spec.is_none();
    match sel.scope.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort(),
        "NotBestEffort" => !best_effort(),
        "PriorityClass" => {
            let class = spec
                .and_then(|s| s.priority_class_name.as_deref())
                .unwrap_or("");
            // podMatchesSelector: the labels {PriorityClass: <class>} when it has one
            let present = !class.is_empty();
            match sel.operator.as_str() {
                "Exists" => present,
                "DoesNotExist" => !present,
                "In" => present && sel.values.iter().any(|v| v == class),
                "NotIn" => !present || !sel.values.iter().any(|v| v == class),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// `usesCrossNamespacePodAffinity`: a pod (anti-)affinity term, required or preferred, that
/// names namespaces or has a namespace selector.
fn uses_cross_namespace_affinity(pod: &core::Pod) -> bool {
    let Some(a) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let cross = |t: &core::PodAffinityTerm| {
        t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
    };
    let terms = |req: Option<&Vec<core::PodAffinityTerm>>,
                 pref: Option<&Vec<core::WeightedPodAffinityTerm>>| {
        req.into_iter().flatten().any(cross)
            || pref
                .into_iter()
                .flatten()
                .any(|w| cross(&w.pod_affinity_term))
    };
    a.pod_affinity.as_ref().is_some_and(|p| {
        terms(
            p.required_during_scheduling_ignored_during_execution
                .as_ref(),
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    }) || a.pod_anti_affinity.as_ref().is_some_and(|p| {
        terms(
            p.required_during_scheduling_ignored_during_execution
                .as_ref(),
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    })
}

/// `QuotaV1Pod`: a pod is charged compute resources unless it is terminal (Succeeded,
/// Failed) or its deletion's grace period is over (`now`, seconds since the epoch).
fn pod_charged(pod: &core::Pod, now: i64) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed" | "Succeeded")) {
        return false;
    }
    if let (Some(t), Some(grace)) = (
        &pod.metadata.deletion_timestamp,
        pod.metadata.deletion_grace_period_seconds,
    ) {
        if now > t.0.as_second() + grace {
            return false;
        }
    }
    true
}

/// `addResourceList`.
fn add_into(list: &mut Usage, more: &Usage) {
    *list = add(list, more);
}

/// `maxResourceList`.
fn max_into(list: &mut Usage, other: &Usage) {
    for (k, v) in other {
        match list.get(k) {
            Some(cur) if v <= cur => {}
            _ => {
                list.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `resourcehelper.PodRequests` (or `PodLimits` when `limits`; k8s.io/component-helpers
/// `resource/helpers.go`): the containers' sum; each init container in turn at most raises it
/// (a restartable one — a sidecar — adds to it and to every later init container); then the
/// overhead, added to every request and, for limits, to the limits that are set.
pub fn pod_resources(spec: &core::PodSpec, limits: bool) -> Usage {
    let of = |c: &core::Container| {
        let r = c.resources.as_ref();
        usage_of(if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        })
    };
    let mut total = Usage::new();
    for c in &spec.containers {
        add_into(&mut total, &of(c));
    }
    let mut sidecars = Usage::new();
    let mut init = Usage::new();
    for c in spec.init_containers.iter().flatten() {
        let own = of(c);
        let this = if c.restart_policy.as_deref() == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        max_into(&mut init, &this);
    }
    max_into(&mut total, &init);
    let overhead = usage_of(spec.overhead.as_ref());
    if limits {
        for (k, v) in overhead {
            if let Some(cur) = total.get_mut(&k) {
                *cur = cur.add(&v);
            }
        }
    } else {
        add_into(&mut total, &overhead);
    }
    total
}

/// `podComputeUsageHelper`: `pods` 1, each of cpu, memory and ephemeral storage's request
/// under its own name and `requests.<name>`, their limits as `limits.<name>`, huge pages'
/// requests under both names, and extended resources as `requests.<name>`.
fn pod_compute_usage(requests: &Usage, limits: &Usage) -> Usage {
    let mut out = Usage::new();
    out.insert("pods".into(), count(1));
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.into(), q.clone());
            out.insert(format!("requests.{r}"), q.clone());
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), q.clone());
        }
    }
    for (k, q) in requests {
        if k.starts_with("hugepages-") {
            out.insert(k.clone(), q.clone());
            out.insert(format!("requests.{k}"), q.clone());
        }
        if crate::quantities::is_extended(k) {
            out.insert(format!("requests.{k}"), q.clone());
        }
    }
    out
}

/// `Usage` of an object (`now`: seconds since the epoch, for a pod being deleted).
pub fn usage(e: &Evaluator, s: &Subject, now: i64) -> Usage {
    let mut out = Usage::new();
    match (e, s) {
        (Evaluator::Pod, Subject::Pod(pod)) => {
            // PodUsageFunc: every stored pod counts as an object; the rest only while charged
            out.insert("count/pods".into(), count(1));
            if !pod_charged(pod, now) {
                return out;
            }
            let spec = pod.spec.clone().unwrap_or_default();
            let requests = pod_resources(&spec, false);
            let limits = pod_resources(&spec, true);
            out = add(&out, &pod_compute_usage(&requests, &limits));
        }
        (Evaluator::Service, Subject::Service(svc)) => {
            let spec = svc.spec.clone().unwrap_or_default();
            let ports = spec.ports.as_ref().map_or(0, Vec::len);
            out.insert("count/services".into(), count(1));
            out.insert("services".into(), count(1));
            out.insert("services.loadbalancers".into(), zero());
            out.insert("services.nodeports".into(), zero());
            match spec.type_.as_deref() {
                Some("NodePort") => {
                    out.insert("services.nodeports".into(), count(ports));
                }
                Some("LoadBalancer") => {
                    // node ports are counted unless the balancer is told not to allocate them
                    let node_ports = if spec.allocate_load_balancer_node_ports == Some(false) {
                        spec.ports
                            .iter()
                            .flatten()
                            .filter(|p| p.node_port.is_some_and(|n| n != 0))
                            .count()
                    } else {
                        ports
                    };
                    out.insert("services.nodeports".into(), count(node_ports));
                    out.insert("services.loadbalancers".into(), count(1));
                }
                _ => {}
            }
        }
        (Evaluator::Claim, Subject::Claim(pvc)) => {
            out.insert("persistentvolumeclaims".into(), count(1));
            out.insert("count/persistentvolumeclaims".into(), count(1));
            // GetPersistentVolumeClaimClass: the beta annotation first
            let class = pvc
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
                .cloned()
                .or_else(|| pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
                .unwrap_or_default();
            if !class.is_empty() {
                out.insert(
                    format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
                    count(1),
                );
            }
            if let Some(storage) = claim_storage(pvc) {
                out.insert("requests.storage".into(), storage.clone());
                if !class.is_empty() {
                    out.insert(
                        format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                        storage,
                    );
                }
            }
        }
        (e @ Evaluator::Count { .. }, _) => {
            out.insert(e.count_name(), count(1));
            if let Some(a) = e.alias() {
                out.insert(a.into(), count(1));
            }
        }
        _ => {}
    }
    out
}

/// `getStorageUsage`: the claim's storage request, or its allocated storage when larger,
/// rounded up to whole bytes.
fn claim_storage(pvc: &core::PersistentVolumeClaim) -> Option<Quantity> {
    let whole = |q: Quantity| q.round_up(0);
    let request = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| quantity(&q.0))
        .map(whole);
    let allocated = pvc
        .status
        .as_ref()
        .and_then(|s| s.allocated_resources.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| quantity(&q.0));
    match (request, allocated) {
        (Some(r), Some(a)) if a > r => Some(whole(a)),
        (r, _) => r,
    }
}

/// `generic.Matches`: the quota names (in `status.hard`) a resource this evaluator measures,
/// and the object matches every scope of the quota.
pub fn quota_matches(e: &Evaluator, q: &core::ResourceQuota, s: &Subject) -> bool {
    let hard = q.status.as_ref().and_then(|s| s.hard.as_ref());
    let names = hard.into_iter().flat_map(|h| h.keys().map(String::as_str));
    !e.matching_resources(names).is_empty()
        && scope_selectors(q).iter().all(|sel| matches_scope(sel, s))
}

/// `podEvaluator.Constraints`: when a quota tracks cpu or memory (requests or limits), every
/// container and init container must name them: `must specify <resource> for: <containers>;
/// …`, by resource then container name.
fn pod_constraints(required: &[String], s: &Subject) -> Result<(), String> {
    const VALIDATION_SET: &[&str] = &[
        "cpu",
        "memory",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ];
    let Subject::Pod(pod) = s else {
        return Ok(());
    };
    let required: BTreeSet<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|r| VALIDATION_SET.contains(r))
        .collect();
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let spec = pod.spec.clone().unwrap_or_default();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = c.resources.as_ref();
        let usage = pod_compute_usage(
            &usage_of(r.and_then(|r| r.requests.as_ref())),
            &usage_of(r.and_then(|r| r.limits.as_ref())),
        );
        for name in &required {
            if !usage.contains_key(*name) {
                missing.entry(name).or_default().insert(c.name.clone());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, cs)| {
            format!(
                "{r} for: {}",
                cs.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// `hasUsageStats`: every resource of the quota's `status.hard` that the request touches has
/// a `status.used` value.
fn has_usage_stats(q: &core::ResourceQuota, interesting: &[String]) -> bool {
    let st = q.status.as_ref();
    let used = st.and_then(|s| s.used.as_ref());
    st.and_then(|s| s.hard.as_ref())
        .into_iter()
        .flat_map(|h| h.keys())
        .filter(|k| interesting.contains(k))
        .all(|k| used.is_some_and(|u| u.contains_key(k)))
}

/// The object a request makes and, for an update, the one it replaces (with whether that
/// one was stored: it has a resourceVersion).
pub struct Request<'a> {
    /// The evaluator of the request's resource.
    pub evaluator: &'a Evaluator,
    /// The new object.
    pub obj: &'a Subject,
    /// The stored object an update replaces.
    pub old: Option<(&'a Subject, bool)>,
    /// Seconds since the epoch.
    pub now: i64,
}

/// `CheckRequest` (k8s.io/apiserver `pkg/admission/plugin/resourcequota/controller.go`) over
/// the namespace's quotas: for every quota that matches the object, its constraints
/// (`failed quota: <name>: …`) and known usage (`status unknown for quota: …`); the object's
/// usage (never negative), on update the increase over the old object's; then each matching
/// quota's `status.used` plus what it tracks of that, refused when above `status.hard`
/// (`exceeded quota: <name>, requested: …, used: …, limited: …`). The answer is the new
/// `status.used` of each quota the request charges (by index), or the refusal's text.
pub fn check_request(
    quotas: &[core::ResourceQuota],
    req: &Request<'_>,
) -> Result<Vec<(usize, Usage)>, String> {
    let e = req.evaluator;
    let mut interesting = vec![];
    for (i, q) in quotas.iter().enumerate() {
        if !quota_matches(e, q, req.obj) {
            continue;
        }
        let name = q.metadata.name.as_deref().unwrap_or("");
        let hard = q.status.as_ref().and_then(|s| s.hard.as_ref());
        let restricted =
            e.matching_resources(hard.into_iter().flat_map(|h| h.keys().map(String::as_str)));
        if let Err(why) = pod_constraints(&restricted, req.obj) {
            return Err(format!("failed quota: {name}: {why}"));
        }
        if !has_usage_stats(q, &restricted) {
            let mut names = restricted.clone();
            names.sort();
            return Err(format!(
                "status unknown for quota: {name}, resources: {}",
                names.join(",")
            ));
        }
        interesting.push(i);
    }
    let input = usage(e, req.obj, req.now);
    let negative: Vec<&str> = input
        .iter()
        .filter(|(_, q)| q.sign() < 0)
        .map(|(k, _)| k.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        ));
    }
    if interesting.is_empty() {
        return Ok(vec![]);
    }
    let mut deltas: BTreeMap<usize, Usage> =
        interesting.iter().map(|i| (*i, input.clone())).collect();
    if let Some((old, stored)) = req.old {
        if stored {
            let prev = usage(e, old, req.now);
            let delta = subtract_non_negative(&input, &prev);
            for i in &interesting {
                if quota_matches(e, &quotas[*i], old) {
                    deltas.insert(*i, delta.clone());
                }
            }
        }
    }
    // quota.RemoveZeros
    deltas.retain(|_, d| {
        d.retain(|_, q| q.sign() != 0);
        !d.is_empty()
    });
    let mut out = vec![];
    for (i, delta) in deltas {
        let q = &quotas[i];
        let st = q.status.clone().unwrap_or_default();
        let hard = usage_of(st.hard.as_ref());
        let used = usage_of(st.used.as_ref());
        let requested = mask(&delta, hard.keys());
        let new_usage = add(&used, &requested);
        let masked = mask(&new_usage, requested.keys());
        let exceeded: Vec<String> = hard
            .iter()
            .filter(|(k, h)| masked.get(*k).is_some_and(|n| n > *h))
            .map(|(k, _)| k.clone())
            .collect();
        if !exceeded.is_empty() {
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                q.metadata.name.as_deref().unwrap_or(""),
                pretty(&mask(&requested, &exceeded)),
                pretty(&mask(&used, &exceeded)),
                pretty(&mask(&hard, &exceeded)),
            ));
        }
        if !equals(&new_usage, &used) {
            out.push((i, new_usage));
        }
    }
    Ok(out)
}

/// The resource quotas are served (`resourcequotas`, core/v1).
fn quota_resource() -> Option<&'static Resource> {
    resources::find("", "v1", "resourcequotas")
}

/// The namespaces whose requests quota admission is checking, each with its turn (upstream's
/// quota evaluator hands a namespace's waiting requests to one worker at a time, so that they
/// charge the quotas one after the other rather than conflict).
static CHECKING: LazyLock<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// The turn of namespace `ns` (shared by the requests checked at the same time; forgotten once
/// none is).
fn namespace_lock(ns: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut m = CHECKING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(l) = m.get(ns).and_then(Weak::upgrade) {
        return l;
    }
    m.retain(|_, w| w.strong_count() > 0);
    let l = Arc::new(tokio::sync::Mutex::new(()));
    m.insert(ns.to_string(), Arc::downgrade(&l));
    l
}

/// How many times the quotas' status writes are tried again after a conflict (`checkQuotas`'
/// retries).
const RETRIES: usize = 3;

/// The ResourceQuota admission plugin's `Validate` (the last validating admission, before
/// the object is stored): a request on a subresource, or outside a namespace, or of an
/// ignored resource, or an update of a kind whose usage an update does not change, is let
/// through; otherwise [`check_request`] against the namespace's quotas, and the quotas it
/// charges written (`UpdateQuotaStatus`, with the read resourceVersion as precondition). The
/// quotas whose write met a newer version are read again and checked again, at most
/// `RETRIES` more times; the last write error is then the answer. A dry run writes nothing.
///
/// Whether the namespace has quotas is read from a cache of them (upstream's admission reads
/// an informer's; this one holds every write made through this server, so a quota just
/// created is seen); when it has, they are read from storage, so that the resourceVersion
/// precondition of the charge is the current one unless another writer is at it. The requests
/// of one namespace take turns (`namespace_lock`).
pub async fn admit(
    objects: &Objects,
    r: &Resource,
    ns: &str,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
    subresource: Option<&str>,
) -> ApiResult<()> {
    if subresource.is_some() || !r.namespaced || ns.is_empty() {
        return Ok(());
    }
    let Some(e) = Evaluator::of(r.group, r.plural) else {
        return Ok(());
    };
    if old.is_some() && !e.handles_update() {
        return Ok(());
    }
    let Some(rq) = quota_resource() else {
        return Ok(());
    };
    // a namespace without quotas (the cache, which holds this server's writes, says so) is
    // done; otherwise the quotas are read from storage, with their resourceVersions
    let prefix = rq.key(ns, "");
    let any = objects
        .quotas
        .read(objects.store(), |items| {
            crate::watchcache::under(items, &prefix).next().is_some()
        })
        .await;
    if any == Some(false) {
        return Ok(());
    }
    // one request of a namespace at a time is checked and charged, on the quotas as they are
    // once its turn comes
    let lock = namespace_lock(ns);
    let _turn = lock.lock().await;
    let (items, _, _) = objects.list(rq, Some(ns), &ListOptions::default()).await?;
    let Some(subject) = Subject::decode(&e, obj) else {
        return Ok(());
    };
    let old_subject = old.and_then(|o| Subject::decode(&e, o)).map(|s| {
        let stored = old
            .and_then(|o| o.pointer("/metadata/resourceVersion"))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty());
        (s, stored)
    });
    let req = Request {
        evaluator: &e,
        obj: &subject,
        old: old_subject.as_ref().map(|(s, stored)| (s, *stored)),
        now: jiff::Timestamp::now().as_second(),
    };
    let forbidden = |why: String| {
        ApiError::forbidden(
            r,
            name,
            format!("{} \"{name}\" is forbidden: {why}", r.qualified()),
        )
    };
    let mut items = items;
    let mut remaining = RETRIES;
    loop {
        let quotas: Vec<core::ResourceQuota> = items
            .iter()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect();
        let values: Vec<&Value> = items
            .iter()
            .filter(|v| serde_json::from_value::<core::ResourceQuota>((*v).clone()).is_ok())
            .collect();
        let charged = check_request(&quotas, &req).map_err(forbidden)?;
        if charged.is_empty() || crate::webhooks::dry_run() {
            return Ok(());
        }
        let mut failed = BTreeSet::new();
        let mut last_err = None;
        for (i, used) in charged {
            let mut q = values[i].clone();
            q["status"]["used"] = to_json(&used);
            let qname = q
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let write = Box::pin(objects.update(rq, ns, &qname, q, Some("status"), false));
            if let Err(err) = write.await {
                failed.insert(qname);
                last_err = Some(err);
            }
        }
        let Some(err) = last_err else {
            return Ok(());
        };
        if remaining == 0 {
            return Err(err);
        }
        remaining -= 1;
        // the quotas whose write failed, as they are now (a quota removed meanwhile is not
        // checked again)
        let (now, _, _) = objects
            .list(rq, Some(ns), &ListOptions::default())
            .await
            .map_err(|_| err)?;
        items = now
            .into_iter()
            .filter(|q| {
                q.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| failed.contains(n))
            })
            .collect();
        if items.is_empty() {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the controller's computation

/// `CalculateUsageStats` for one evaluator over the objects of its resource in the quota's
/// namespace: each tracked resource from 0, plus the usage of every object that matches all
/// the quota's scopes.
fn usage_stats(
    e: &Evaluator,
    resources: &[String],
    scopes: &[ScopeReq],
    items: &[Subject],
    now: i64,
) -> Usage {
    let mut used: Usage = resources.iter().map(|r| (r.clone(), zero())).collect();
    for s in items {
        if scopes.iter().all(|sel| matches_scope(sel, s)) {
            used = add(&used, &usage(e, s, now));
        }
    }
    used
}

/// The status the quota controller writes for `q` (pkg/controller/resourcequota
/// `syncResourceQuota` with `quota.CalculateUsage`), or `None` when the stored one is current:
/// `hard` is `spec.hard`; `used` keeps the past observations, overwritten by the usage of the
/// objects in the namespace (`listed`: each evaluator's objects, those it could list) for the
/// resources an evaluator measures, and masked to the names of `hard`. A status without
/// `hard` or `used`, or whose `hard` differs from the spec, is written even when unchanged.
pub fn plan(
    q: &core::ResourceQuota,
    listed: &BTreeMap<Evaluator, Vec<Subject>>,
    now: i64,
) -> Option<core::ResourceQuotaStatus> {
    let spec_hard = usage_of(q.spec.as_ref().and_then(|s| s.hard.as_ref()));
    let st = q.status.as_ref();
    let status_hard = st.and_then(|s| s.hard.as_ref());
    let status_used = st.and_then(|s| s.used.as_ref());
    let mut dirty = status_hard.is_none()
        || status_used.is_none()
        || !equals(&spec_hard, &usage_of(status_hard));
    let old_used = usage_of(status_used);
    let mut used = old_used.clone();
    let names: Vec<&str> = spec_hard.keys().map(String::as_str).collect();
    let scopes = scope_selectors(q);
    let mut observed = Usage::new();
    let mut matched = BTreeSet::new();
    for (e, items) in listed {
        let resources = e.matching_resources(names.iter().copied());
        if resources.is_empty() {
            continue;
        }
        matched.extend(resources.iter().cloned());
        observed = add(&observed, &usage_stats(e, &resources, &scopes, items, now));
    }
    for (k, v) in mask(&observed, &matched) {
        used.insert(k, v);
    }
    let used = mask(&used, spec_hard.keys());
    dirty = dirty || !equals(&used, &old_used);
    if !dirty {
        return None;
    }
    let text =
        |u: &Usage| -> BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
            u.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity(shown(v)),
                    )
                })
                .collect()
        };
    // `hard` is the spec's, as written
    let hard = q
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    Some(core::ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(text(&used)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(causes: Vec<Cause>) -> Vec<String> {
        causes.iter().map(Cause::text).collect()
    }

    fn quota(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn resource_names_and_quantities_are_checked() {
        assert!(validate_resource_quota(
            &quota(json!({"hard": {"pods": "2", "requests.cpu": "1500m",
                "count/configmaps": "3", "gold.storageclass.storage.k8s.io/requests.storage": "1Gi",
                "requests.example.com/gpu": "2", "hugepages-2Mi": "4Mi"}})),
            None
        )
        .is_empty());
        assert_eq!(
            texts(validate_resource_quota(
                &quota(json!({"hard": {"pods": "-1", "foo": "1", "storage": "1",
                    "services": "1500m", "bad name": "1"}})),
                None
            )),
            [
                r#"spec.hard[bad name]: Invalid value: bad name: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#,
                r#"spec.hard[bad name]: Invalid value: bad name: must be a standard resource for quota"#,
                r#"spec.hard[foo]: Invalid value: foo: must be a standard resource type or fully qualified"#,
                r#"spec.hard[foo]: Invalid value: foo: must be a standard resource for quota"#,
                r#"spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0"#,
                r#"spec.hard[services]: Invalid value: 1500m: must be an integer"#,
                r#"spec.hard[storage]: Invalid value: storage: must be a standard resource for quota"#,
            ]
        );
    }

    #[test]
    fn scopes_and_scope_selectors_are_checked() {
        assert_eq!(
            texts(validate_resource_quota(
                &quota(json!({"hard": {"pods": "1", "services": "1"},
                    "scopes": ["BestEffort", "NotBestEffort", "Bogus"]})),
                None
            )),
            [
                r#"spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort", "Bogus"}: unsupported scope applied to resource"#,
                r#"spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort", "Bogus"}: unsupported scope applied to resource"#,
                r#"spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort", "Bogus"}: unsupported scope"#,
                r#"spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort", "Bogus"}: conflicting scopes"#,
            ]
        );
        assert_eq!(
            texts(validate_resource_quota(
                &quota(json!({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
                    {"scopeName": "Terminating", "operator": "In", "values": ["a"]},
                    {"scopeName": "PriorityClass", "operator": "NotIn"},
                    {"scopeName": "PriorityClass", "operator": "Exists", "values": ["x"]},
                    {"scopeName": "PriorityClass", "operator": "Gt"}]}})),
                None
            )),
            [
                r#"spec.scopeSelector.matchExpressions.operator: Invalid value: "In": must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"#,
                "spec.scopeSelector.matchExpressions.values: Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                r#"spec.scopeSelector.matchExpressions.values: Invalid value: []string{"x"}: must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"#,
                r#"spec.scopeSelector.matchExpressions.operator: Invalid value: "Gt": not a valid selector operator"#,
            ]
        );
    }

    #[test]
    fn scopes_are_immutable_and_status_is_checked() {
        let old = quota(json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}));
        let mut new = quota(json!({"hard": {"pods": "1"}}));
        new["status"] = json!({"hard": {"pods": "1"}, "used": {"pods": "-1"}});
        assert_eq!(
            texts(validate_resource_quota(&new, Some(&old))),
            [
                "spec.scopes: Invalid value: []core.ResourceQuotaScope(nil): field is immutable",
                r#"status.used[pods]: Invalid value: "-1": must be greater than or equal to 0"#,
            ]
        );
    }

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    fn pod(spec: Value) -> Subject {
        let p = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec});
        Subject::decode(&Evaluator::Pod, &p).unwrap()
    }

    fn shown_usage(u: &Usage) -> BTreeMap<String, String> {
        u.iter().map(|(k, v)| (k.clone(), shown(v))).collect()
    }

    #[test]
    fn pod_usage_sums_containers_and_takes_the_largest_init_container() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "image": "i", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "200m"}}},
                {"name": "b", "image": "i", "resources": {"requests": {"cpu": "200m", "memory": "64Mi",
                    "example.com/gpu": "1", "hugepages-2Mi": "2Mi"}}}],
            "initContainers": [
                {"name": "i", "image": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
            "overhead": {"cpu": "10m"}}));
        let u = shown_usage(&usage(&Evaluator::Pod, &p, 0));
        let want: BTreeMap<String, String> = [
            ("count/pods", "1"),
            ("pods", "1"),
            ("cpu", "1010m"),
            ("requests.cpu", "1010m"),
            ("limits.cpu", "210m"),
            ("memory", "128Mi"),
            ("requests.memory", "128Mi"),
            ("requests.example.com/gpu", "1"),
            ("hugepages-2Mi", "2Mi"),
            ("requests.hugepages-2Mi", "2Mi"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(u, want);
        // a sidecar adds to the containers and to the init containers after it
        let p = pod(json!({
            "containers": [{"name": "a", "image": "i", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "s", "image": "i", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "i", "image": "i", "resources": {"requests": {"cpu": "2"}}}]}));
        assert_eq!(usage(&Evaluator::Pod, &p, 0)["requests.cpu"], q("2500m"));
    }

    #[test]
    fn a_terminal_pod_counts_as_an_object_only() {
        let p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "i",
            "resources": {"requests": {"cpu": "1"}}}]}, "status": {"phase": "Succeeded"}});
        let s = Subject::decode(&Evaluator::Pod, &p).unwrap();
        assert_eq!(
            shown_usage(&usage(&Evaluator::Pod, &s, 0)),
            BTreeMap::from([("count/pods".to_string(), "1".to_string())])
        );
        // deleted with its grace period over
        let p = json!({"metadata": {"name": "p", "deletionTimestamp": "2020-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 30}, "spec": {"containers": []}});
        let s = Subject::decode(&Evaluator::Pod, &p).unwrap();
        let t = jiff::Timestamp::from_second(1_577_836_800)
            .unwrap()
            .as_second();
        assert!(usage(&Evaluator::Pod, &s, t + 10).contains_key("pods"));
        assert!(!usage(&Evaluator::Pod, &s, t + 31).contains_key("pods"));
    }

    #[test]
    fn service_and_claim_usage() {
        let svc = |spec: Value| {
            let s = json!({"metadata": {"name": "s"}, "spec": spec});
            let s = Subject::decode(&Evaluator::Service, &s).unwrap();
            shown_usage(&usage(&Evaluator::Service, &s, 0))
        };
        let lb = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 81}]}));
        assert_eq!(lb["services.loadbalancers"], "1");
        assert_eq!(lb["services.nodeports"], "2");
        let np = svc(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        assert_eq!(np["services.nodeports"], "1");
        assert_eq!(np["services.loadbalancers"], "0");
        assert_eq!(svc(json!({"ports": [{"port": 80}]}))["services"], "1");
        let c = json!({"metadata": {"name": "c"}, "spec": {"storageClassName": "gold",
            "resources": {"requests": {"storage": "1.5"}}}});
        let c = Subject::decode(&Evaluator::Claim, &c).unwrap();
        let u = shown_usage(&usage(&Evaluator::Claim, &c, 0));
        assert_eq!(u["requests.storage"], "2");
        assert_eq!(u["gold.storageclass.storage.k8s.io/requests.storage"], "2");
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/persistentvolumeclaims"],
            "1"
        );
        assert_eq!(u["persistentvolumeclaims"], "1");
    }

    #[test]
    fn scopes_select_pods() {
        let best_effort = pod(json!({"containers": [{"name": "a", "image": "i"}]}));
        let burstable = pod(json!({"containers": [{"name": "a", "image": "i",
            "resources": {"requests": {"cpu": "1"}}}], "activeDeadlineSeconds": 5,
            "priorityClassName": "high"}));
        let sel = |scope: &str, op: &str, values: &[&str]| ScopeReq {
            scope: scope.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        assert!(matches_scope(
            &sel("BestEffort", "Exists", &[]),
            &best_effort
        ));
        assert!(!matches_scope(
            &sel("BestEffort", "Exists", &[]),
            &burstable
        ));
        assert!(matches_scope(
            &sel("NotBestEffort", "Exists", &[]),
            &burstable
        ));
        assert!(matches_scope(
            &sel("Terminating", "Exists", &[]),
            &burstable
        ));
        assert!(matches_scope(
            &sel("NotTerminating", "Exists", &[]),
            &best_effort
        ));
        assert!(matches_scope(
            &sel("PriorityClass", "In", &["high"]),
            &burstable
        ));
        assert!(!matches_scope(
            &sel("PriorityClass", "In", &["high"]),
            &best_effort
        ));
        assert!(matches_scope(
            &sel("PriorityClass", "NotIn", &["high"]),
            &best_effort
        ));
        assert!(!matches_scope(
            &sel("CrossNamespacePodAffinity", "Exists", &[]),
            &burstable
        ));
        let cross = pod(
            json!({"containers": [{"name": "a", "image": "i"}], "affinity": {
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "k", "namespaces": ["other"]}]}}}),
        );
        assert!(matches_scope(
            &sel("CrossNamespacePodAffinity", "Exists", &[]),
            &cross
        ));
        assert!(!matches_scope(
            &sel("BestEffort", "Exists", &[]),
            &Subject::Other
        ));
    }

    fn rq(name: &str, hard: Value, used: Option<Value>) -> core::ResourceQuota {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "5"},
            "spec": {"hard": hard.clone()}});
        if let Some(u) = used {
            v["status"] = json!({"hard": hard, "used": u});
        }
        serde_json::from_value(v).unwrap()
    }

    fn cpu_pod(cpu: Option<&str>) -> Subject {
        let res = match cpu {
            Some(c) => json!({"requests": {"cpu": c}}),
            None => json!({}),
        };
        pod(
            json!({"containers": [{"name": "web", "image": "i", "resources": res},
            {"name": "side", "image": "i", "resources": res}]}),
        )
    }

    #[test]
    fn admission_charges_refuses_and_requires_known_usage() {
        let quotas = [rq(
            "compute",
            json!({"pods": "2", "requests.cpu": "1"}),
            Some(json!({"pods": "1", "requests.cpu": "200m"})),
        )];
        let p = cpu_pod(Some("100m"));
        let req = Request {
            evaluator: &Evaluator::Pod,
            obj: &p,
            old: None,
            now: 0,
        };
        let charged = check_request(&quotas, &req).unwrap();
        assert_eq!(charged.len(), 1);
        assert_eq!(
            shown_usage(&charged[0].1),
            BTreeMap::from([
                ("pods".to_string(), "2".to_string()),
                ("requests.cpu".to_string(), "400m".to_string())
            ])
        );
        let full = [rq(
            "compute",
            json!({"pods": "2", "requests.cpu": "1"}),
            Some(json!({"pods": "2", "requests.cpu": "900m"})),
        )];
        assert_eq!(
            check_request(&full, &req).unwrap_err(),
            "exceeded quota: compute, requested: pods=1,requests.cpu=200m, used: pods=2,requests.cpu=900m, limited: pods=2,requests.cpu=1"
        );
        let none = cpu_pod(None);
        let req = Request {
            evaluator: &Evaluator::Pod,
            obj: &none,
            old: None,
            now: 0,
        };
        assert_eq!(
            check_request(&quotas, &req).unwrap_err(),
            "failed quota: compute: must specify requests.cpu for: side,web"
        );
        // status.hard known, status.used not yet
        let unknown = [rq("q", json!({"pods": "2"}), Some(json!({})))];
        let req = Request {
            evaluator: &Evaluator::Pod,
            obj: &p,
            old: None,
            now: 0,
        };
        assert_eq!(
            check_request(&unknown, &req).unwrap_err(),
            "status unknown for quota: q, resources: pods"
        );
        // a quota without status matches nothing yet; one of other resources is not charged
        let others = [
            rq("fresh", json!({"pods": "0"}), None),
            rq(
                "cm",
                json!({"configmaps": "1"}),
                Some(json!({"configmaps": "1"})),
            ),
        ];
        assert!(check_request(&others, &req).unwrap().is_empty());
    }

    #[test]
    fn counts_and_service_updates_charge_the_difference() {
        let cm = Evaluator::of("", "configmaps").unwrap();
        let quotas = [rq(
            "objects",
            json!({"count/configmaps": "3", "configmaps": "5"}),
            Some(json!({"count/configmaps": "3", "configmaps": "3"})),
        )];
        let req = Request {
            evaluator: &cm,
            obj: &Subject::Other,
            old: None,
            now: 0,
        };
        assert_eq!(
            check_request(&quotas, &req).unwrap_err(),
            "exceeded quota: objects, requested: count/configmaps=1, used: count/configmaps=3, limited: count/configmaps=3"
        );
        let dep = Evaluator::of("apps", "deployments").unwrap();
        assert_eq!(
            dep.matching_resources(["count/deployments.apps", "pods"]),
            ["count/deployments.apps"]
        );
        let svc = |t: &str| {
            Subject::decode(
                &Evaluator::Service,
                &json!({"metadata": {"name": "s"}, "spec": {"type": t, "ports": [{"port": 1}]}}),
            )
            .unwrap()
        };
        let quotas = [rq(
            "svc",
            json!({"services": "5", "services.nodeports": "1"}),
            Some(json!({"services": "1", "services.nodeports": "1"})),
        )];
        let (new, old) = (svc("NodePort"), svc("ClusterIP"));
        let req = Request {
            evaluator: &Evaluator::Service,
            obj: &new,
            old: Some((&old, true)),
            now: 0,
        };
        assert_eq!(
            check_request(&quotas, &req).unwrap_err(),
            "exceeded quota: svc, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1"
        );
        // unchanged usage charges nothing
        let req = Request {
            evaluator: &Evaluator::Service,
            obj: &old,
            old: Some((&old, true)),
            now: 0,
        };
        assert!(check_request(&quotas, &req).unwrap().is_empty());
    }

    #[test]
    fn plan_sets_hard_and_counts_what_matches() {
        let quota = rq(
            "q",
            json!({"pods": "5", "requests.memory": "1Gi", "count/configmaps": "3", "secrets": "2"}),
            None,
        );
        let pods = vec![
            pod(json!({"containers": [{"name": "a", "image": "i",
                "resources": {"requests": {"memory": "128Mi"}}}]})),
            pod(json!({"containers": [{"name": "a", "image": "i",
                "resources": {"requests": {"memory": "128Mi"}}}]})),
        ];
        let cm = Evaluator::of("", "configmaps").unwrap();
        let secrets = Evaluator::of("", "secrets").unwrap();
        let listed = BTreeMap::from([
            (Evaluator::Pod, pods),
            (cm.clone(), vec![Subject::Other]),
            (secrets.clone(), vec![]),
        ]);
        assert_eq!(
            Evaluator::for_hard(["pods", "requests.memory", "count/configmaps", "secrets"]),
            BTreeSet::from([Evaluator::Pod, cm, secrets])
        );
        let st = plan(&quota, &listed, 0).expect("a first status");
        let used: BTreeMap<String, String> = st
            .used
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        assert_eq!(
            used,
            BTreeMap::from([
                ("count/configmaps".to_string(), "1".to_string()),
                ("pods".to_string(), "2".to_string()),
                ("requests.memory".to_string(), "256Mi".to_string()),
                ("secrets".to_string(), "0".to_string()),
            ])
        );
        assert_eq!(st.hard.unwrap().len(), 4);
        // current: nothing to write
        let current = rq(
            "q",
            json!({"pods": "5", "requests.memory": "1Gi", "count/configmaps": "3", "secrets": "2"}),
            Some(
                json!({"count/configmaps": "1", "pods": "2", "requests.memory": "256Mi", "secrets": "0"}),
            ),
        );
        assert!(plan(&current, &listed, 0).is_none());
        // a scoped quota counts only the pods in its scope
        let mut scoped = current.clone();
        scoped.spec.as_mut().unwrap().scopes = Some(vec!["BestEffort".into()]);
        let st = plan(&scoped, &listed, 0).unwrap();
        assert_eq!(st.used.unwrap()["pods"].0, "0");
    }
}
