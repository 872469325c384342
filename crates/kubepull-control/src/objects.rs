//! The object layer: Kubernetes objects as JSON over a [`Datastore`], with metadata management,
//! admission, validation, optimistic concurrency, selectors and watches. The HTTP server and the
//! in-process controllers both go through it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubepull_datastore::{Datastore, Error as StoreError, Event, KeyValue};
use serde_json::{json, Value};

use crate::admission;
use crate::errors::{ApiError, ApiResult, Cause};
use crate::fieldselect::FieldSet;
use crate::podsecurity;
use crate::resources::{self, is_core, Resource};
use crate::webhooks::{self, Attributes, Operation};

/// Applies a patch of `content_type` to `obj`.
pub fn apply_patch(obj: &mut Value, content_type: &str, body: &Value) -> ApiResult<()> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/merge-patch+json" | "application/apply-patch+yaml" => {
            crate::patch::merge_patch(obj, body)
        }
        "application/strategic-merge-patch+json" => {
            crate::patch::strategic_merge_patch(obj, body).map_err(ApiError::bad_request)?
        }
        "application/json-patch+json" => crate::patch::json_patch(obj, body)
            .map_err(|e| ApiError::unsupported_media(&e).with_code(422, "Invalid", e))?,
        other => return Err(ApiError::unsupported_media(other)),
    }
    Ok(())
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// The admin (and the in-process controllers).
    Admin,
    /// A node, `system:node:<name>`.
    Node(String),
    /// Any other authenticated user: a ServiceAccount token, a client certificate (shared: a
    /// connection's certificate user is authenticated once and each request borrows it).
    Other(Arc<crate::auth::UserInfo>),
}

impl User {
    /// The user name and groups (`user.Info`).
    pub fn identity(&self) -> (String, Vec<String>) {
        match self {
            User::Admin => (
                self.name(),
                vec!["system:masters".into(), "system:authenticated".into()],
            ),
            User::Node(_) => (
                self.name(),
                vec!["system:nodes".into(), "system:authenticated".into()],
            ),
            User::Other(u) => (u.name.clone(), u.groups.clone()),
        }
    }

    /// The user name as Kubernetes prints it.
    pub fn name(&self) -> String {
        match self {
            User::Admin => "kubepull-admin".into(),
            User::Node(n) => format!("system:node:{n}"),
            User::Other(u) => u.name.clone(),
        }
    }
}

/// List options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Label selector.
    pub label_selector: Option<String>,
    /// Field selector.
    pub field_selector: Option<String>,
    /// Page size (0: all).
    pub limit: usize,
    /// Continue token.
    pub continue_token: Option<String>,
}

/// Delete options.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Grace period.
    pub grace_period_seconds: Option<i64>,
    /// `Foreground`, `Background`, `Orphan`.
    pub propagation_policy: Option<String>,
    /// Precondition on UID.
    pub uid: Option<String>,
    /// Precondition on resourceVersion.
    pub resource_version: Option<String>,
}

/// The API over a store.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn Datastore>,
    pod_security: podsecurity::Level,
    /// Whether privileged containers are allowed (`--allow-privileged`).
    allow_privileged: bool,
    webhooks: Arc<webhooks::Webhooks>,
    crds: Arc<crate::crd::Registry>,
    services: Arc<crate::services::ServiceState>,
    /// NamespaceLifecycle admission's namespace lookups ([`crate::nslifecycle`]).
    pub(crate) namespaces: Arc<crate::nslifecycle::NamespaceCache>,
    /// ResourceQuota admission's view of which namespaces have quotas ([`crate::quota`]).
    pub(crate) quotas: Arc<crate::watchcache::Cache>,
    /// The RBAC authorizer's roles and bindings ([`crate::watchcache`]).
    pub(crate) rbac: Arc<crate::rbac::Caches>,
    /// The LimitRanger's and Priority admission's LimitRanges and PriorityClasses.
    pub(crate) policy: Arc<crate::limitranges::PolicyCaches>,
    /// API watches share one datastore watch per resource ([`crate::watchfanout`]).
    fanouts: Arc<crate::watchfanout::Fanouts>,
}

/// How many times an update is tried when the storage keeps refusing its write because the
/// object changed meanwhile (kube-apiserver's `GuaranteedUpdate` tries until it succeeds).
const UPDATE_TRIES: usize = 32;

/// What one try of an update came to.
enum Tried {
    /// Written (or, dry run, not written), as answered.
    Done(Value),
    /// Created: the key held nothing and the kind creates on update (or, dry run, not
    /// written), as answered.
    Created(Value),
    /// The storage refused the write: the object changed since it was read.
    Raced,
}

fn store_err(r: &Resource, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists { .. } => ApiError::already_exists(r, name),
        StoreError::NotFound { .. } => ApiError::not_found(r, name),
        StoreError::Conflict { .. } => ApiError::conflict(r, name),
        StoreError::Compacted { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        StoreError::Unavailable { message } => ApiError::unavailable(message),
        StoreError::Backend { message } => ApiError::internal(message),
    }
}

/// `checkName` (apiserver `handlers/rest.go`) of a patched or updated object: it has a name
/// (`ContextBasedNaming.ObjectName`'s `name must be provided`) and it is the URL's; for a patch
/// (`ns` given) first `EnsureObjectNamespaceMatchesRequestNamespace`, which `applyPatch` runs
/// before it: a namespace, if any, the URL's.
pub(crate) fn check_name(obj: &Value, ns: Option<&str>, name: &str) -> ApiResult<()> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (given, given_ns) = (s("/metadata/name"), s("/metadata/namespace"));
    if let Some(ns) = ns.filter(|ns| !ns.is_empty()) {
        if !given_ns.is_empty() && given_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .into(),
            ));
        }
    }
    if given.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name} based on URL) was undeterminable: name must be provided"
        )));
    }
    if given != name {
        return Err(ApiError::name_mismatch(given, name));
    }
    Ok(())
}

/// Whether a PUT of a missing object creates it: the kinds whose update strategy's
/// `AllowCreateOnUpdate` is true (kubernetes `pkg/registry/core/{event,endpoint,service}/
/// strategy.go`, `pkg/registry/coordination/lease/strategy.go`, `pkg/registry/rbac/{role,
/// rolebinding,clusterrole,clusterrolebinding}/strategy.go`; events.k8s.io Events are the core
/// Event storage's). Every other kind served here, custom resources
/// (`customResourceStrategy`) and CustomResourceDefinitions included, answers 404.
fn allows_create_on_update(r: &Resource) -> bool {
    resources::is_builtin(r)
        && matches!(
            (r.group, r.kind),
            ("", "Event" | "Endpoints" | "Service")
                | ("events.k8s.io", "Event")
                | ("coordination.k8s.io", "Lease")
                | (
                    "rbac.authorization.k8s.io",
                    "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
                )
        )
}

/// The 409 of an update whose body names a UID the stored object does not have (`stored`,
/// empty when there is none): `defaultUpdatedObjectInfo.Preconditions` makes the body's UID a
/// precondition, which the storage checks (`Preconditions.Check`) before its try-update
/// function, and `InterpretUpdateError` makes its error a conflict.
fn uid_precondition(r: &Resource, name: &str, obj: &Value, stored: &str) -> ApiResult<()> {
    match obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        Some(uid) if uid != stored => Err(ApiError::conflict(r, name).with_message(format!(
            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {stored}",
            r.qualified()
        ))),
        _ => Ok(()),
    }
}

/// How [`Objects::create_with`] is asked to create.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Creating {
    /// A POST whose body is decoded here (`strict`: unknown and duplicate fields refused).
    Post { strict: bool },
    /// A POST of a body the caller decoded.
    Decoded,
    /// A PUT of a missing object of a kind that creates on update (`Store.Update`'s
    /// `existingResourceVersion == 0` branch): the body was decoded by the update, the create
    /// is authorized as verb `create` before validating admission, and a key another writer
    /// filled meanwhile is a race, answered `None` (the update tries again).
    OnUpdate,
}

/// The field whose change counts `metadata.generation` up, for the kinds whose strategy keeps
/// one (`PrepareForCreate` sets 1, `PrepareForUpdate` adds one when the field changed):
/// Deployments (and their annotations), ReplicaSets, DaemonSets, StatefulSets, Jobs, CronJobs and
/// CustomResourceDefinitions by their `spec` ([`generation_changed`]),
/// webhook configurations by their `webhooks`; custom resources (`is_cr`) by everything but
/// their metadata and status ([`crate::crd::spec_changed`]).
fn generation_field(r: &Resource, is_cr: bool) -> Option<&'static str> {
    if is_cr {
        return Some("spec");
    }
    match (r.group, r.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")
        | ("", "ReplicationController")
        | ("networking.k8s.io", "Ingress" | "IngressClass" | "NetworkPolicy")
        | ("policy", "PodDisruptionBudget")
        | ("batch", "Job" | "CronJob")
        | ("apiextensions.k8s.io", "CustomResourceDefinition") => Some("spec"),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => Some("webhooks"),
        _ => None,
    }
}

/// Whether an update counts a built-in kind's generation up: the webhook configurations by
/// `reflect.DeepEqual` of their `webhooks` (an empty list is not an absent one), the others by
/// `apiequality.Semantic.DeepEqual` of their `spec` (quantities by value), and a Deployment by
/// its annotations too, which its ReplicaSets copy (`deploymentStrategy.PrepareForUpdate`).
fn generation_changed(r: &Resource, old: &Value, new: &Value, field: &str) -> bool {
    use crate::podupdate::semantic_eq;
    if field == "webhooks" {
        return old.get(field) != new.get(field);
    }
    let annotations = |o: &Value| json!({"annotations": o.pointer("/metadata/annotations")});
    (old.get(field) != new.get(field) && !semantic_eq(&old.get(field), &new.get(field)))
        || ((r.group, r.kind) == ("apps", "Deployment")
            && !semantic_eq(&annotations(old), &annotations(new)))
}

/// Drops from an update's `causes` those the stored object `old` has itself, at a path whose
/// value the update (`new`) leaves exactly as stored (or absent from both): a value that an earlier build stored,
/// before a check was added, does not make the object impossible to change (its finalizers,
/// owner references, data or status); changing that field, or making it wrong another way, is
/// still refused. A privileged container stays refused when the cluster does not allow them,
/// as kube-apiserver refuses updates of such pods stored before `--allow-privileged` was
/// turned off.
fn ratchet(
    allow_privileged: bool,
    r: &'static Resource,
    old: &Value,
    new: &Value,
    causes: &mut Vec<Cause>,
) {
    let Ok(template) = decode_pod_template(r, old) else {
        return;
    };
    let had = admission::with_privileged_policy(allow_privileged, || {
        admission::validate(r, old, None, pod_parts(None, template.as_ref()))
    });
    causes.retain(|c| {
        // a path absent from both (a container that inherits the pod's AppArmor profile has
        // none of its own where the cause points) is left as stored too
        let field = crate::events::ratchet_field(r, &c.field);
        let unchanged = || match (value_at(old, field), value_at(new, field)) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true,
            _ => false,
        };
        c.detail == "disallowed by cluster policy" || !had.contains(c) || !unchanged()
    });
}

/// The value at a field path as causes name it (`spec.containers[0].image`,
/// `data[.dockerconfigjson]`, `metadata.labels`), `None` when the path is not there.
fn value_at<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    let mut cur = v;
    let mut rest = field;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let key = &r[..end];
            cur = match key.parse::<usize>() {
                Ok(i) if cur.is_array() => cur.get(i)?,
                _ => cur.get(key)?,
            };
            rest = &r[end + 1..];
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        }
    }
    Some(cur)
}

/// Why the stored pod cannot be bound (`setPodHostAndAnnotations`, checked on the pod the
/// update read, so a binding that races another write is tried again on the new pod).
fn binding_refusal(name: &str, pod: &Value) -> Option<String> {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Some(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        ));
    }
    if let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Some(format!("pod {name} is already assigned to node {node:?}"));
    }
    if pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        return Some(format!("pod {name} has non-empty .spec.schedulingGates"));
    }
    None
}

/// A pod's QoS class from its containers' and init containers' resources
/// ([`kubepull_core::qos::pod_qos_class`], the class the node agent sizes the pod's cgroups by).
pub(crate) fn pod_qos_class(spec: &core::PodSpec) -> &'static str {
    fn list(l: Option<&BTreeMap<String, Quantity>>) -> impl Iterator<Item = (&str, &str)> {
        l.into_iter()
            .flatten()
            .map(|(n, q)| (n.as_str(), q.0.as_str()))
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    kubepull_core::qos::pod_qos_class(containers.map(|c| {
        let r = c.resources.as_ref();
        (
            list(r.and_then(|r| r.requests.as_ref())),
            list(r.and_then(|r| r.limits.as_ref())),
        )
    }))
    .as_str()
}

/// The metadata an update keeps from the stored object (`rest.BeforeUpdate`; what
/// `ValidateObjectMetaUpdate` would refuse to change).
const IMMUTABLE_METADATA: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "namespace",
    "name",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// What the storage does to an update's object after admission and the resourceVersion
/// comparison, before validation (`rest.BeforeUpdate`, the strategies' `PrepareForUpdate`, the
/// Service storage's `beginUpdate`): a status update keeps everything but the status (the
/// status strategies); any other keeps the status, the kind, the immutable metadata, counts the
/// generation of kinds that have one (on the object mutating admission made, so a webhook's
/// spec change counts) and applies the kind's own preparation.
fn prepare_update(
    r: &'static Resource,
    cr: Option<&crate::crd::Served>,
    old: &Value,
    mut obj: Value,
    subresource: Option<&str>,
) -> Value {
    let has_status = r.subresources.contains(&"status");
    match subresource {
        Some("status") => {
            let mut n = status_update(r, cr, old, obj);
            // a Pod's QoS class is set at creation: a status without one keeps the stored one
            // (`podStatusStrategy.PrepareForUpdate`)
            if r.group.is_empty() && r.kind == "Pod" && n["status"].is_object() {
                let stored = old
                    .pointer("/status/qosClass")
                    .filter(|q| q.as_str() != Some(""));
                let given = n["status"]
                    .get("qosClass")
                    .filter(|q| q.as_str() != Some(""));
                if let (None, Some(q)) = (given, stored) {
                    n["status"]["qosClass"] = q.clone();
                }
            }
            n
        }
        // `BindingREST.setPodHostAndAnnotations`: the stored pod with the node set and the
        // Binding's annotations added, nothing else of the body (binding_refusal checked the
        // stored pod first)
        Some("binding") => {
            let mut n = old.clone();
            n["spec"]["nodeName"] = obj
                .pointer("/spec/nodeName")
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(Value::Object(a)) = obj.pointer("/metadata/annotations") {
                if !a.is_empty() {
                    if !n["metadata"]["annotations"].is_object() {
                        n["metadata"]["annotations"] = json!({});
                    }
                    for (k, v) in a {
                        n["metadata"]["annotations"][k] = v.clone();
                    }
                }
            }
            // and PodScheduled=True in the same write (`podutil.UpdatePodCondition`), so a
            // once-gated pod does not keep SchedulingGated when a later status write fails
            let mut conds: Vec<core::PodCondition> = n
                .pointer("/status/conditions")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default();
            crate::controllers::scheduler::upsert_condition(
                &mut conds,
                crate::controllers::scheduler::scheduled_condition("True", None, None),
            );
            if let Ok(c) = serde_json::to_value(conds) {
                if !n["status"].is_object() {
                    n["status"] = json!({});
                }
                n["status"]["conditions"] = c;
            }
            n
        }
        _ => {
            if has_status {
                obj["status"] = old.get("status").cloned().unwrap_or(Value::Null);
                if obj["status"].is_null() {
                    if let Some(o) = obj.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            obj["apiVersion"] = json!(r.api_version());
            obj["kind"] = json!(r.kind);
            // immutable metadata
            for f in IMMUTABLE_METADATA {
                match old.pointer(&format!("/metadata/{f}")) {
                    Some(v) => obj["metadata"][f] = v.clone(),
                    None => {
                        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove(f);
                        }
                    }
                }
            }
            admission::prepare(r, &mut obj, false);
            if crate::crd::is_crd(r) {
                crate::crd::default_crd(&mut obj);
                crate::crd::warn_unsupported(&obj);
            }
            if is_core(r, "Service") {
                crate::services::keep_allocated(old, &mut obj);
            }
            // counted on the object as stored: what the kind's preparation filled in (a Job's
            // generated selector, a CRD's defaults) is no change
            if let Some(field) = generation_field(r, cr.is_some()) {
                let g = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let changed = if cr.is_some() {
                    crate::crd::spec_changed(old, &obj)
                } else {
                    generation_changed(r, old, &obj, field)
                };
                obj["metadata"]["generation"] = json!(if changed { g + 1 } else { g });
            }
            match (r.group, r.kind) {
                _ if cr.is_some() => {}
                ("apps", "DaemonSet") => {
                    admission::daemonset_template_generation(&mut obj, Some(old))
                }
                ("", "PersistentVolumeClaim" | "PersistentVolume") => {
                    crate::claims::drop_disabled_fields(&mut obj, Some(old))
                }
                _ => {}
            }
            obj
        }
    }
}

/// The object a status update writes, as the kinds' status strategies make it
/// (`PrepareForUpdate`, then `rest.BeforeUpdate`): a custom resource is the stored object with
/// the request's status, none when it has none (`customresource` `statusStrategy` copies the
/// old object over the new); a built-in kind keeps the request's metadata but its stored spec,
/// and what its strategy also resets: a Deployment its labels (`deploymentStatusStrategy`), a
/// Pod its owner references (`podStatusStrategy`); a Namespace's name label is set again
/// (`namespaceStrategy.Canonicalize`). A CRD's takes the request's metadata too: in 1.32 its
/// `statusStrategy` calls `ResetObjectMetaForStatus` with the new object twice, which resets
/// nothing. So a controller's status write can also set annotations, as the deployment
/// controller's revision annotation. The immutable metadata and the generation stay the
/// stored ones, and managed fields the request cannot set.
fn status_update(r: &Resource, cr: Option<&crate::crd::Served>, old: &Value, obj: Value) -> Value {
    if cr.is_some() {
        let mut n = old.clone();
        match obj.get("status") {
            Some(st) => n["status"] = st.clone(),
            None => {
                if let Some(m) = n.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        return n;
    }
    let status = obj.get("status").cloned().unwrap_or(json!({}));
    let mut n = {
        let mut n = obj;
        if !n.is_object() {
            n = json!({});
        }
        if !n.get("metadata").is_some_and(Value::is_object) {
            n["metadata"] = json!({});
        }
        let mut keep = |path: &str| {
            let (parent, field) = path.rsplit_once('/').unwrap_or(("", path));
            let stored = old.pointer(path).cloned();
            if let Some(m) = n.pointer_mut(parent).and_then(Value::as_object_mut) {
                match stored {
                    Some(v) => m.insert(field.to_string(), v),
                    None => m.remove(field),
                };
            }
        };
        let mut reset = vec!["/spec"];
        reset.extend(match (r.group, r.kind) {
            ("apps", "Deployment") => &["/metadata/labels"][..],
            ("", "Pod") => &["/metadata/ownerReferences"],
            _ => &[],
        });
        for path in reset {
            keep(path);
        }
        // the immutable metadata, the generation (`rest.BeforeUpdate`) and the managed fields
        // a subresource's request cannot set
        for f in IMMUTABLE_METADATA
            .iter()
            .chain(&["generation", "managedFields"])
        {
            keep(&format!("/metadata/{f}"));
        }
        n["apiVersion"] = json!(r.api_version());
        n["kind"] = json!(r.kind);
        if is_core(r, "Namespace") {
            if let Some(name) = old.pointer("/metadata/name").cloned() {
                if !n["metadata"]["labels"].is_object() {
                    n["metadata"]["labels"] = json!({});
                }
                n["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            }
        }
        n
    };
    n["status"] = status;
    n
}

/// A stored object as read through `r` (the resource the client named): an Event in `r`'s
/// group's shape ([`crate::events::served`]), with the kind's defaults
/// ([`admission::default_stored`]).
fn stored_with_defaults(r: &Resource, obj: Value) -> Value {
    let mut obj = crate::events::served(r, obj);
    admission::default_stored(r, &mut obj);
    obj
}

/// What is stored of an object written through `r`: an Event in its core form
/// ([`crate::events::stored`]), the others as they are.
fn encode_as(r: &Resource, obj: &Value) -> Vec<u8> {
    encode(&crate::events::stored(r, obj))
}

/// Reads a stored value into an object with its resourceVersion.
pub fn decode(kv: &KeyValue) -> Value {
    let mut v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert(
            "resourceVersion".into(),
            Value::String(kv.mod_revision.to_string()),
        );
    }
    v
}

/// Whether `new` encodes the object `stored` holds: the same bytes, or the same JSON in
/// another key order (which has the same length).
fn unchanged(new: &[u8], stored: &[u8]) -> bool {
    new.len() == stored.len()
        && (new == stored
            || serde_json::from_slice::<Value>(new)
                .is_ok_and(|n| serde_json::from_slice::<Value>(stored).is_ok_and(|s| n == s)))
}

fn encode(obj: &Value) -> Vec<u8> {
    if obj.pointer("/metadata/resourceVersion").is_none() {
        // a new object: nothing to leave out, no copy
        return serde_json::to_vec(obj).unwrap_or_default();
    }
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&o).unwrap_or_default()
}

/// A stored or admitted object of a built-in kind as its k8s-openapi type. Such objects were
/// decoded into that type on the way in ([`admission::decode`]), so this fails only for a
/// corrupt store (a 500 naming the type).
fn typed<T: serde::de::DeserializeOwned>(obj: &Value) -> ApiResult<T> {
    T::deserialize(obj).map_err(|e| {
        ApiError::internal(format!(
            "decoding {}: {e}",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("object")
        ))
    })
}

/// The pod template of `obj` (a Pod's own metadata and spec) as its k8s-openapi type, decoded
/// once for validation, the warnings and Pod Security admission; `None` for kinds without one
/// (`admission::pod_template_path`).
fn decode_pod_template(r: &Resource, obj: &Value) -> ApiResult<Option<core::PodTemplateSpec>> {
    let Some(pointer) = admission::pod_template_pointer(r) else {
        return Ok(None);
    };
    Ok(Some(match obj.pointer(&pointer) {
        Some(t) => typed(t)?,
        None => Default::default(),
    }))
}

/// The pod metadata and spec of a typed Pod, or else of a decoded template.
fn pod_parts<'a>(
    pod: Option<&'a core::Pod>,
    template: Option<&'a core::PodTemplateSpec>,
) -> Option<admission::PodParts<'a>> {
    match (pod, template) {
        (Some(p), _) => Some(admission::PodParts {
            meta: Some(&p.metadata),
            spec: p.spec.as_ref(),
        }),
        (None, Some(t)) => Some(admission::PodParts {
            meta: t.metadata.as_ref(),
            spec: t.spec.as_ref(),
        }),
        (None, None) => None,
    }
}

/// The strategy's warnings for the request: the workload's own (`admission::workload_warnings`)
/// and its pod spec's (`admission::pod_spec_warnings`).
fn add_pod_warnings(r: &Resource, obj: &Value, parts: Option<admission::PodParts<'_>>) {
    for w in admission::workload_warnings(r, obj) {
        crate::warnings::add(w);
    }
    let (Some(path), Some(spec)) = (admission::pod_template_path(r), parts.and_then(|p| p.spec))
    else {
        return;
    };
    for w in admission::pod_spec_warnings(spec, path) {
        crate::warnings::add(w);
    }
}

/// Where a stored object failed to decode, without the value that failed: serde's message
/// ("invalid type: string \"…\", expected …") can quote stored data.
fn decode_problem(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let kind = match msg.split_once(':') {
        Some((k, _)) if !k.contains('"') => k.to_string(),
        _ => "invalid value".to_string(),
    };
    if e.line() > 0 {
        format!("{kind} at line {} column {}", e.line(), e.column())
    } else {
        kind
    }
}

/// Now as `metav1.Time` prints it: RFC 3339, whole seconds (truncated, as Go's `Time.Truncate`).
pub fn now() -> String {
    time_string(jiff::Timestamp::now())
}

fn time_string(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The metadata a create sets (`rest.BeforeCreate`, k8s.io/apiserver
/// `pkg/registry/rest/create.go`, and `FillObjectMetaSystemFields`), on the JSON of most kinds
/// and on the typed metadata of a Pod: one set of rules for both.
trait NewMeta {
    fn name(&self) -> &str;
    fn generate_name(&self) -> Option<&str>;
    fn namespace(&self) -> Option<&str>;
    fn set_name(&mut self, name: &str);
    fn set_namespace(&mut self, ns: Option<&str>);
    /// uid, creationTimestamp and (for kinds that count them) generation 1; resourceVersion,
    /// deletionTimestamp and managedFields cleared.
    fn stamp(&mut self, uid: String, created: jiff::Timestamp, generation: bool);
}

impl NewMeta for serde_json::Map<String, Value> {
    fn name(&self) -> &str {
        self.get("name").and_then(Value::as_str).unwrap_or("")
    }
    fn generate_name(&self) -> Option<&str> {
        self.get("generateName").and_then(Value::as_str)
    }
    fn namespace(&self) -> Option<&str> {
        self.get("namespace").and_then(Value::as_str)
    }
    fn set_name(&mut self, name: &str) {
        self.insert("name".into(), json!(name));
    }
    fn set_namespace(&mut self, ns: Option<&str>) {
        match ns {
            Some(ns) => self.insert("namespace".into(), json!(ns)),
            None => self.remove("namespace"),
        };
    }
    fn stamp(&mut self, uid: String, created: jiff::Timestamp, generation: bool) {
        self.insert("uid".into(), json!(uid));
        self.insert("creationTimestamp".into(), json!(time_string(created)));
        self.remove("resourceVersion");
        self.remove("deletionTimestamp");
        self.remove("managedFields");
        if generation {
            self.insert("generation".into(), json!(1));
        }
    }
}

impl NewMeta for ObjectMeta {
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
    fn generate_name(&self) -> Option<&str> {
        self.generate_name.as_deref()
    }
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn set_name(&mut self, name: &str) {
        self.name = Some(name.into());
    }
    fn set_namespace(&mut self, ns: Option<&str>) {
        self.namespace = ns.map(str::to_string);
    }
    fn stamp(&mut self, uid: String, created: jiff::Timestamp, generation: bool) {
        self.uid = Some(uid);
        self.creation_timestamp = Some(crate::controllers::kinds::meta_time(created));
        self.resource_version = None;
        self.deletion_timestamp = None;
        self.managed_fields = None;
        if generation {
            self.generation = Some(1);
        }
    }
}

/// Fills in a new object's metadata: the name (generated from `generateName` when empty), the
/// request's namespace (a different one in the body is a 400), uid, creation time. Returns the
/// name the request gave (maybe empty) and the object's name.
fn new_meta(
    md: &mut impl NewMeta,
    r: &Resource,
    ns: &str,
    generation: bool,
) -> ApiResult<(String, String)> {
    let requested_name = md.name().to_string();
    let mut name = requested_name.clone();
    if name.is_empty() {
        if let Some(g) = md.generate_name() {
            name = generated_name(g);
            md.set_name(&name);
        }
    }
    if r.namespaced {
        if md.namespace().is_some_and(|given| given != ns) {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        md.set_namespace(Some(ns));
    } else {
        md.set_namespace(None);
    }
    md.stamp(uuid(), jiff::Timestamp::now(), generation);
    Ok((requested_name, name))
}

fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    // the kernel's getrandom (one system call; no file opened per object)
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let t = jiff::Timestamp::now().as_nanosecond() as u128;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

/// A random v4 UUID.
pub fn uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(x >> 4)] as char);
        out.push(HEX[usize::from(x & 0x0f)] as char);
    }
    out
}

/// Where the ServiceAccount admission mounts a pod's API credentials
/// (`DefaultAPITokenMountPath`).
pub const API_TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `shouldAutomount` (plugin/pkg/admission/serviceaccount/admission.go): the pod's
/// `automountServiceAccountToken`, else the ServiceAccount's, else true.
fn should_automount(sa: &core::ServiceAccount, spec: &core::PodSpec) -> bool {
    spec.automount_service_account_token
        .or(sa.automount_service_account_token)
        .unwrap_or(true)
}

/// `mountServiceAccountToken` (plugin/pkg/admission/serviceaccount/admission.go): a
/// `kube-api-access-XXXXX` projected volume (`TokenVolumeSource`: a bound token valid 3607 s,
/// the `kube-root-ca.crt` ConfigMap's `ca.crt`, the namespace) mounted read-only at
/// [`API_TOKEN_MOUNT_PATH`] in every init and app container that has nothing mounted there.
/// A volume already named `kube-api-access-*` is reused.
pub fn mount_service_account_token(spec: &mut core::PodSpec) {
    let existing = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| &v.name)
        .find(|n| n.starts_with("kube-api-access-"))
        .cloned();
    let has_volume = existing.is_some();
    let name = existing.unwrap_or_else(|| format!("kube-api-access-{}", random_suffix(5)));
    let mount = core::VolumeMount {
        name: name.clone(),
        read_only: Some(true),
        mount_path: API_TOKEN_MOUNT_PATH.into(),
        ..Default::default()
    };
    let mut needs = false;
    let init = spec.init_containers.iter_mut().flatten();
    for c in init.chain(spec.containers.iter_mut()) {
        let taken = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == API_TOKEN_MOUNT_PATH);
        if !taken {
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(mount.clone());
            needs = true;
        }
    }
    if has_volume || !needs {
        return;
    }
    let projected = core::ProjectedVolumeSource {
        default_mode: Some(0o644),
        sources: Some(vec![
            core::VolumeProjection {
                service_account_token: Some(core::ServiceAccountTokenProjection {
                    path: "token".into(),
                    expiration_seconds: Some(3607),
                    audience: None,
                }),
                ..Default::default()
            },
            core::VolumeProjection {
                config_map: Some(core::ConfigMapProjection {
                    name: crate::rootca::CONFIGMAP.into(),
                    items: Some(vec![core::KeyToPath {
                        key: "ca.crt".into(),
                        path: "ca.crt".into(),
                        mode: None,
                    }]),
                    optional: None,
                }),
                ..Default::default()
            },
            core::VolumeProjection {
                downward_api: Some(core::DownwardAPIProjection {
                    items: Some(vec![core::DownwardAPIVolumeFile {
                        path: "namespace".into(),
                        field_ref: Some(core::ObjectFieldSelector {
                            api_version: Some("v1".into()),
                            field_path: "metadata.namespace".into(),
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ]),
    };
    spec.volumes
        .get_or_insert_with(Vec::new)
        .push(core::Volume {
            name,
            projected: Some(projected),
            ..Default::default()
        });
}

/// `SimpleNameGenerator.GenerateName` (k8s.io/apiserver pkg/storage/names): the base cut to
/// 58 bytes (`MaxGeneratedNameLength`, so the name fits a 63-character label; here on a
/// character boundary) and 5 random characters.
fn generated_name(base: &str) -> String {
    let mut cut = base.len().min(63 - 5);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &base[..cut], random_suffix(5))
}

/// `generateName` suffix: 5 characters from apimachinery's alphabet (`util/rand`).
pub fn random_suffix(n: usize) -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes(n)
        .iter()
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect()
}

/// A parsed label selector requirement.
#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn split_top(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn parse_label_selector(s: &str) -> ApiResult<Vec<Req>> {
    let mut reqs = vec![];
    for part in split_top(s) {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let set = |rest: &str| -> Vec<String> {
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        };
        if let Some(k) = p.strip_prefix('!') {
            reqs.push(Req::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = p.split_once("!=") {
            reqs.push(Req::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once(" notin ") {
            reqs.push(Req::NotIn(k.trim().into(), set(v)));
        } else if let Some((k, v)) = p.split_once(" in ") {
            reqs.push(Req::In(k.trim().into(), set(v)));
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            reqs.push(Req::Exists(p.to_string()));
        } else {
            return Err(ApiError::bad_request(format!(
                "unable to parse requirement: found '{p}', expected: in, notin, =, ==, !=, gt, lt"
            )));
        }
    }
    Ok(reqs)
}

fn label_matches(reqs: &[Req], obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => get(k) == Some(v.as_str()),
        Req::Ne(k, v) => get(k) != Some(v.as_str()),
        Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
    })
}

/// A field's value at a dotted path (missing is empty; a non-string is its JSON text).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for p in path.split('.') {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parses a field selector for resource `r` of field set `set`, each label converted as the
/// kind's scheme converts it (a label the kind does not select by is a 400:
/// [`crate::fieldselect::FieldSet::convert`]).
fn parse_field_selector(s: &str, r: &Resource, set: &FieldSet) -> ApiResult<Vec<FieldReq>> {
    // every term is parsed (and the terms sorted) before a label is converted, as upstream
    let terms = crate::fieldselect::parse(s).map_err(ApiError::bad_request)?;
    terms
        .into_iter()
        .map(|(label, eq, value)| {
            set.convert(r, &label)
                .map(|l| (l, eq, value))
                .map_err(ApiError::bad_request)
        })
        .collect()
}

/// One field requirement: the converted label, `=` (true) or `!=`, the value.
type FieldReq = (std::borrow::Cow<'static, str>, bool, String);

/// A compiled list/watch filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    labels: Vec<Req>,
    fields: Vec<FieldReq>,
    field_set: FieldSet,
    namespaced: bool,
    namespace: Option<String>,
}

impl Filter {
    /// Builds a filter for objects of resource `r` (as the client named it: an
    /// `events.k8s.io` selector's labels are that group's); `namespace` limits to one namespace.
    pub fn new(opts: &ListOptions, r: &Resource, namespace: Option<&str>) -> ApiResult<Filter> {
        Filter::with_fields(opts, r, FieldSet::of(r), namespace)
    }

    /// [`Filter::new`] with the field set given: a custom resource version's
    /// ([`crate::crd::Served::fields`]) selects by its `selectableFields` too.
    pub fn with_fields(
        opts: &ListOptions,
        r: &Resource,
        field_set: FieldSet,
        namespace: Option<&str>,
    ) -> ApiResult<Filter> {
        Ok(Filter {
            labels: match &opts.label_selector {
                Some(s) => parse_label_selector(s)?,
                None => vec![],
            },
            fields: match &opts.field_selector {
                Some(s) => parse_field_selector(s, r, &field_set)?,
                None => vec![],
            },
            field_set,
            namespaced: r.namespaced,
            namespace: namespace.map(str::to_string),
        })
    }

    /// Whether the filter reads the object's content (labels or fields), not only its namespace:
    /// the previous state of an update is then read with the kind's defaults (the etcd watcher's
    /// `!wc.acceptAll()`).
    pub fn selects(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }

    /// Whether an object passes.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if obj.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns) {
                return false;
            }
        }
        label_matches(&self.labels, obj)
            && self.fields.iter().all(|(k, eq, v)| {
                let have = crate::fieldselect::value(&self.field_set, self.namespaced, obj, k);
                (have == *v) == *eq
            })
    }
}

fn continue_token(rev: u64, key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rev, "start": key}).to_string())
}

fn parse_continue(t: &str) -> ApiResult<(u64, String)> {
    use base64::Engine as _;
    let bad = || ApiError::bad_request("continue key is not valid: invalid continue token".into());
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&b).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// A watch event for the API.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub kind: &'static str,
    /// The object.
    pub object: Arc<Value>,
    /// The change as decoded once for every watcher of the resource (its JSON line is encoded
    /// once too), when the watch is served by a [`crate::watchfanout`].
    pub shared: Option<Arc<crate::watchfanout::Decoded>>,
}

impl WatchEvent {
    /// The JSON watch line of this event.
    pub fn json_line(&self) -> bytes::Bytes {
        match &self.shared {
            Some(d) => d.json_line(self.kind),
            None => crate::watchfanout::json_line(self.kind, &self.object),
        }
    }
}

impl Objects {
    /// The API over `store`.
    pub fn new(store: Arc<dyn Datastore>) -> Self {
        let rbac = Arc::new(crate::rbac::Caches::new());
        let namespaces = Arc::new(crate::nslifecycle::NamespaceCache::new());
        // writes to the cached prefixes are noted, so this server reads its own writes
        let policy = Arc::new(crate::limitranges::PolicyCaches::new());
        let mut cached = rbac.all();
        cached.push(namespaces.cache());
        let quotas = Arc::new(crate::watchcache::Cache::new("/registry/resourcequotas/"));
        cached.push(quotas.clone());
        cached.extend(policy.all());
        let store: Arc<dyn Datastore> = Arc::new(crate::watchcache::Tracked::new(store, cached));
        Objects {
            namespaces,
            quotas,
            rbac,
            policy,
            fanouts: Arc::default(),
            store,
            pod_security: podsecurity::Level::Baseline,
            allow_privileged: true,
            webhooks: Default::default(),
            crds: Arc::default(),
            services: Arc::new(crate::services::ServiceState::new(Default::default())),
        }
    }

    /// The custom resources served (from the CustomResourceDefinitions).
    pub fn crds(&self) -> &crate::crd::Registry {
        &self.crds
    }

    /// A stored object as served: custom resources in the requested version.
    /// An object read from storage as a client sees it: a custom resource in its served form,
    /// a built-in kind with its defaults ([`admission::default_stored`]).
    fn present(&self, r: &Resource, obj: Value) -> Value {
        match self.crds.served(r) {
            Some(sv) => crate::crd::present(&sv, obj),
            None => stored_with_defaults(r, obj),
        }
    }

    /// The Service IP range (`--service-cluster-ip-range`).
    pub fn with_service_range(mut self, range: crate::services::ServiceRange) -> Self {
        self.services = Arc::new(crate::services::ServiceState::new(range));
        self
    }

    /// `CreateOrUpdateMasterServiceIfNeeded` (pkg/controlplane/controller/kubernetesservice)
    /// with `reconcile`: the `default/kubernetes` Service with port 443 → `port`, and its
    /// Endpoints and EndpointSlice with the API server's address, as the apiserver's endpoint
    /// reconciler keeps them. The Service's ClusterIP is kept when it exists.
    pub async fn ensure_kubernetes_service(&self, host: &str, port: u16) -> ApiResult<()> {
        let svc_r = resources::find("", "v1", "services").expect("services");
        let want = crate::services::kubernetes_service(&self.services.range(), port);
        match self.get_opt(svc_r, "default", "kubernetes").await? {
            None => match self
                .create(svc_r, "default", want, &User::Admin, false)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            },
            Some(cur) => {
                if cur.pointer("/spec/ports") != want.pointer("/spec/ports")
                    || cur.pointer("/spec/type") != want.pointer("/spec/type")
                {
                    let mut next = cur.clone();
                    next["spec"]["ports"] = want["spec"]["ports"].clone();
                    next["spec"]["type"] = want["spec"]["type"].clone();
                    self.update(svc_r, "default", "kubernetes", next, None, false)
                        .await?;
                }
            }
        }
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        let (ep, slice) = crate::services::kubernetes_endpoints(ip, port);
        for (r, want) in [
            (
                resources::find("", "v1", "endpoints").expect("endpoints"),
                ep,
            ),
            (
                resources::find("discovery.k8s.io", "v1", "endpointslices").expect("slices"),
                slice,
            ),
        ] {
            match self.get_opt(r, "default", "kubernetes").await? {
                None => match self.create(r, "default", want, &User::Admin, false).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                },
                Some(cur) => {
                    let mut next = want.clone();
                    next["metadata"] = cur["metadata"].clone();
                    if next != cur {
                        self.update(r, "default", "kubernetes", next, None, false)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The Service allocation state.
    pub fn services(&self) -> &crate::services::ServiceState {
        &self.services
    }

    /// The Pod Security level of namespaces without `pod-security.kubernetes.io/*` labels
    /// (enforce, audit and warn; `baseline` unless set).
    pub fn with_pod_security(mut self, level: podsecurity::Level) -> Self {
        self.pod_security = level;
        self
    }

    /// Whether pods and pod templates may have privileged containers (kube-apiserver's
    /// `--allow-privileged`; allowed unless set). Refused ones are invalid:
    /// `spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy`.
    pub fn with_allow_privileged(mut self, allow: bool) -> Self {
        self.allow_privileged = allow;
        self
    }

    /// The admission webhooks' configurations.
    pub(crate) fn webhooks(&self) -> &webhooks::Webhooks {
        &self.webhooks
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Datastore> {
        &self.store
    }

    /// Gets one object.
    pub async fn get(&self, r: &'static Resource, ns: &str, name: &str) -> ApiResult<Value> {
        let sr = resources::storage_of(r);
        match self.store.get(&sr.key(ns, name)).await {
            Ok(Some(kv)) => Ok(self.present(r, decode(&kv))),
            // named as asked (`events.events.k8s.io "x" not found`, `qualifiedResourceFromContext`)
            Ok(None) => Err(ApiError::not_found(r, name)),
            Err(e) => Err(store_err(r, name, e)),
        }
    }

    /// Gets one object if it exists.
    pub async fn get_opt(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        match self.get(r, ns, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects (namespace `None`: all). Returns items, the list's resourceVersion and a
    /// continue token.
    pub async fn list(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<(Vec<Value>, u64, Option<String>)> {
        let sr = resources::storage_of(r);
        let cr = self.crds.served(sr);
        // the labels are those of the resource asked for (events.k8s.io's `regarding.*`, a
        // custom resource version's selectable fields)
        let fields = cr
            .as_ref()
            .map_or_else(|| FieldSet::of(r), |sv| sv.fields.clone());
        let filter = Filter::with_fields(opts, r, fields, None)?;
        let prefix = match ns {
            Some(ns) if sr.namespaced => format!("{}{}/", sr.key_prefix(), ns),
            _ => sr.key_prefix(),
        };
        let (first_start, asked_at) = match &opts.continue_token {
            Some(t) => {
                let (rv, k) = parse_continue(t)?;
                (Some(k), Some(rv))
            }
            None => (None, None),
        };
        // Pages after the first are read at the first page's revision, so the list is one
        // snapshot and a watch from its resourceVersion misses nothing (`GetList` in kubernetes
        // `storage/etcd3/store.go` pins `withRev` the same way). A store that cannot read the
        // past refuses the pinned page after a write; that list is then read again whole, in
        // one read, which every store answers from one snapshot.
        // a page one more than the client's limit (when smaller): a store keeps a list's
        // snapshot only for a full page, which is the one that can be continued
        let mut page_size = if opts.limit > 0 {
            (opts.limit + 1).min(500)
        } else {
            500
        };
        'read: loop {
            let mut out = vec![];
            let mut start = first_start.clone();
            let mut at = asked_at;
            loop {
                let page = match self
                    .store
                    .list(&prefix, start.as_deref(), page_size, at)
                    .await
                {
                    Ok(p) => p,
                    Err(StoreError::Compacted { .. }) if asked_at.is_none() && at.is_some() => {
                        page_size = 0;
                        continue 'read;
                    }
                    Err(StoreError::Compacted { .. }) => return Err(ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into())),
                    Err(other) => return Err(store_err(sr, "", other)),
                };
                let revision = *at.get_or_insert(page.revision);
                let last_key = page.items.last().map(|kv| kv.key.clone());
                for kv in &page.items {
                    let obj = match &cr {
                        Some(sv) => crate::crd::present(sv, decode(kv)),
                        None => stored_with_defaults(r, decode(kv)),
                    };
                    if filter.matches(&obj) {
                        out.push(obj);
                        if opts.limit > 0 && out.len() == opts.limit {
                            let more = page.more
                                || kv.key
                                    != page.items.last().map(|l| l.key.clone()).unwrap_or_default();
                            let token = more.then(|| {
                                self.store.retain_list_snapshot(revision);
                                continue_token(revision, &kv.key)
                            });
                            return Ok((out, revision, token));
                        }
                    }
                }
                if !page.more {
                    return Ok((out, revision, None));
                }
                start = last_key;
            }
        }
    }

    /// Creates an object (admission, defaulting, validation).
    pub async fn create(
        &self,
        r: &'static Resource,
        ns: &str,
        obj: Value,
        user: &User,
        strict: bool,
    ) -> ApiResult<Value> {
        self.create_with(r, ns, obj, user, Creating::Post { strict })
            .await
            .map(Option::unwrap_or_default)
    }

    /// [`Objects::create`] of a body the caller decoded into its type and encoded again
    /// (`admission::decode_body`, with its unknown fields handled): it is not decoded a
    /// second time.
    pub async fn create_decoded(
        &self,
        r: &'static Resource,
        ns: &str,
        obj: Value,
        user: &User,
    ) -> ApiResult<Value> {
        self.create_with(r, ns, obj, user, Creating::Decoded)
            .await
            .map(Option::unwrap_or_default)
    }

    /// The create of [`Objects::create`], [`Objects::create_decoded`] and of an update of a
    /// missing object ([`Creating::OnUpdate`]; `None` when another writer created it first).
    async fn create_with(
        &self,
        r: &'static Resource,
        ns: &str,
        mut obj: Value,
        user: &User,
        how: Creating,
    ) -> ApiResult<Option<Value>> {
        let (strict, decoded) = match how {
            Creating::Post { strict } => (strict, false),
            Creating::Decoded | Creating::OnUpdate => (false, true),
        };
        let sr = resources::storage_of(r);
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body must be a JSON object".into(),
            ));
        }
        let cr = self.crds.served(r);
        if let Some(sv) = &cr {
            crate::crd::refuse_create_while_terminating(sv)?;
        }
        // a Pod is admitted as its typed object: the body is decoded once (with the Pod
        // defaults), the metadata, ServiceAccount admission and status are set on the Pod, and
        // it is encoded once for the mutating webhooks, validation and storage
        // (a body the caller decoded is not decoded again)
        let mut pod = None;
        if !decoded && r.group.is_empty() && r.kind == "Pod" {
            let body = std::mem::take(&mut obj);
            pod = Some(admission::decode_pod(r, body, strict).map_err(ApiError::bad_request)?);
        } else if let Some(why) = (!decoded)
            .then(|| admission::decode(r, &mut obj, true, strict))
            .flatten()
        {
            return Err(ApiError::bad_request(why));
        }
        if let Some(sv) = &cr {
            crate::crd::admit_body(sv, &mut obj, strict)?;
            if sv.status {
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        let generation = generation_field(r, cr.is_some()).is_some();
        let (requested_name, name) = match &mut pod {
            Some(p) => new_meta(&mut p.metadata, r, ns, generation)?,
            None => {
                obj["apiVersion"] = json!(r.api_version());
                obj["kind"] = json!(r.kind);
                if obj.get("metadata").is_none() {
                    obj["metadata"] = json!({});
                }
                let md = obj["metadata"].as_object_mut().expect("metadata");
                new_meta(md, r, ns, generation)?
            }
        };
        crate::managedfields::on_create(r, cr.as_deref(), &mut obj, pod.as_mut());
        // admission (NamespaceLifecycle): the namespace must exist and not be terminating; a
        // namespace the cache knows to be active needs no read
        if r.namespaced && !self.namespaces.known_active(&self.store, ns).await {
            let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
            match self.get_opt(nsr, "", ns).await? {
                None => return Err(ApiError::not_found(nsr, ns)),
                Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() && r.kind != "Event" => {
                    return Err(ApiError::forbidden(
                        r,
                        &name,
                        format!("{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated", r.qualified()),
                    ))
                }
                _ => {}
            }
        }
        // LimitRanger's mutating half, before ServiceAccount; Priority after it
        let mut limit_ranges = vec![];
        if let Some(p) = &mut pod {
            limit_ranges = crate::limitranges::admit_pod(self, r, ns, &requested_name, p).await?;
            self.admit_pod(ns, &name, p).await?;
            crate::priority::admit_pod(self, &requested_name, p).await?;
            obj = serde_json::to_value(&*p).map_err(|e| ApiError::internal(e.to_string()))?;
        } else if crate::crd::is_crd(r) {
            crate::crd::default_crd(&mut obj);
            crate::crd::warn_unsupported(&obj);
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        // the webhooks see the body as Go encodes it: an unset status struct is its zero value
        if obj.get("status").is_none() {
            if let Some(zero) = admission::zero_status(r) {
                obj["status"] = zero;
            }
        }
        let mut attrs = Attributes {
            r,
            kind: None,
            sub: None,
            op: Operation::Create,
            namespace: if r.namespaced { ns } else { "" },
            name: &requested_name,
            options: None,
        };
        // mutating webhooks see a generateName create without a name, as upstream (the name is
        // generated after mutating admission); validating webhooks see the generated name
        if requested_name.is_empty() {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("name");
            }
        }
        let mutated = self
            .webhooks
            .mutate(self, &attrs, Some(&mut obj), None)
            .await?;
        obj["metadata"]["name"] = json!(name);
        attrs.name = &name;
        if mutated && pod.is_some() {
            // what the webhooks made of it, decoded once more (as kube-apiserver decodes a
            // webhook's patched object back into the typed Pod)
            pod = Some(typed(&obj)?);
        }
        // the strategy's `PrepareForCreate`, after mutating admission (`rest.BeforeCreate`)
        if let Some(p) = &mut pod {
            let changed = crate::defaults::prepare_pod_create(p);
            let to_value = |v: Result<Value, serde_json::Error>| {
                v.map_err(|e| ApiError::internal(e.to_string()))
            };
            obj["status"] = to_value(serde_json::to_value(&p.status))?;
            if changed {
                // the affinity terms' requirements and the AppArmor fields and annotations
                obj["spec"] = to_value(serde_json::to_value(&p.spec))?;
                if let Some(a) = &p.metadata.annotations {
                    obj["metadata"]["annotations"] = to_value(serde_json::to_value(a))?;
                }
            }
        } else {
            admission::prepare(r, &mut obj, true);
        }
        // the RBAC storage's escalation check, on what mutating admission made (as the name
        // the request gave: upstream generates a name after it)
        crate::rbac::confirm_no_escalation(self, user, r, ns, &requested_name, &obj, None).await?;
        // the pod template, decoded once (a Pod is already typed) for validation, the warnings
        // and Pod Security admission
        let template = match &pod {
            Some(_) => None,
            None => decode_pod_template(r, &obj)?,
        };
        let parts = pod_parts(pod.as_ref(), template.as_ref());
        let mut causes = admission::with_privileged_policy(self.allow_privileged, || {
            admission::validate(r, &obj, None, parts)
        });
        if let Some(sv) = &cr {
            causes.extend(crate::crd::validate_cr(sv, &obj, None));
        }
        if crate::crd::is_crd(r) {
            causes.extend(crate::crd::validate_crd(&obj, None));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(r, &name, causes));
        }
        // the strategy's `WarningsOnCreate`, once the object is valid
        admission::name_warnings(r, &obj)
            .into_iter()
            .for_each(crate::warnings::add);
        add_pod_warnings(r, &obj, parts);
        if how == Creating::OnUpdate {
            // the update handler's `withAuthorization` around the create validation
            // (apiserver `handlers/update.go`): the create is authorized as verb `create`, once
            // the object is valid and before validating admission
            self.authorize_create_on_update(user, r, ns, &name).await?;
        }
        // validating admission: LimitRanger, Priority, then PodSecurity
        if let Some(p) = &pod {
            crate::limitranges::validate_pod(r, &name, p, &limit_ranges)?;
        } else if is_core(r, "PersistentVolumeClaim") {
            crate::limitranges::validate_claim(self, r, ns, &name, &obj).await?;
        }
        crate::priority::admit_class(self, r, &obj, false).await?;
        self.pod_security_admission(r, ns, &requested_name, &obj, None, parts)
            .await?;
        self.webhooks
            .validate(self, &attrs, Some(&obj), None)
            .await?;
        crate::quota::admit(self, r, ns, &name, &obj, None, None).await?;
        if webhooks::dry_run() {
            return Ok(Some(obj));
        }
        let held = if is_core(r, "Service") {
            Some(
                self.services
                    .allocate(self.store.as_ref(), &mut obj, None)
                    .await
                    .map_err(|e| e.into_api(r, &name))?,
            )
        } else {
            None
        };
        let bytes = match &cr {
            Some(sv) => encode(&crate::crd::to_storage(sv, &obj)),
            None => encode_as(r, &obj),
        };
        let rev = match self.store.create(&sr.key(ns, &name), bytes).await {
            Ok(rev) => rev,
            Err(e) => {
                if let Some(h) = &held {
                    self.services.release(self.store.as_ref(), h).await;
                }
                // `GuaranteedUpdate`: its create lost to another writer's, it reads the key
                // again and tries once more (the update's try-update function, now on that
                // object)
                if how == Creating::OnUpdate && matches!(e, StoreError::AlreadyExists { .. }) {
                    return Ok(None);
                }
                return Err(store_err(r, &name, e));
            }
        };
        if webhooks::is_configuration(r) {
            self.webhooks.invalidate();
        }
        obj["metadata"]["resourceVersion"] = json!(rev.to_string());
        if crate::crd::is_crd(r) {
            crate::crd::sync(self).await?;
            return self.get(r, "", &name).await.map(Some);
        }
        if let Some(sv) = &cr {
            // answered as read back: from the storage version into the requested one
            obj = crate::crd::present(sv, crate::crd::to_storage(sv, &obj));
        }
        if is_core(r, "Namespace") {
            // every namespace gets its default ServiceAccount (serviceaccounts-controller)
            let sa = resources::find("", "v1", "serviceaccounts").expect("sa");
            let _ = Box::pin(crate::managedfields::controller(self.create(
                sa,
                &name,
                json!({"metadata": {"name": "default"}}),
                &User::Admin,
                false,
            )))
            .await;
        }
        Ok(Some(obj))
    }

    /// `withAuthorization` (apiserver `handlers/update.go`): the create an update of a missing
    /// object becomes is authorized as verb `create` on the same resource and name; a refusal
    /// is `errors.NewForbidden(resource, name, reason)` with the authorizer's reason, which the
    /// RBAC authorizer leaves empty when no rule allows the request.
    async fn authorize_create_on_update(
        &self,
        user: &User,
        r: &'static Resource,
        ns: &str,
        name: &str,
    ) -> ApiResult<()> {
        let ns = if r.namespaced { ns } else { "" };
        match crate::server::authorize_resource(self, user, "create", r, ns, name, "").await {
            Err(e) if e.code == 403 => Err(ApiError::forbidden(
                r,
                name,
                format!("{} \"{name}\" is forbidden: ", r.qualified()),
            )),
            other => other,
        }
    }

    /// The Pod Security policy of namespace `ns` (its labels over the cluster default).
    pub async fn pod_security_policy(&self, ns: &str) -> ApiResult<podsecurity::Policy> {
        let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
        let n = self.get_opt(nsr, "", ns).await?;
        let labels = n
            .as_ref()
            .and_then(|n| n.pointer("/metadata/labels"))
            .and_then(Value::as_object);
        Ok(podsecurity::policy_to_evaluate(
            labels,
            podsecurity::Policy::defaults(self.pod_security),
        )
        .0)
    }

    /// Pod Security admission (k8s.io/pod-security-admission `admission/admission.go`): pods are
    /// enforced, warned about and audited on create and significant updates (`parts`: the pod's
    /// or the template's metadata and spec when the caller decoded them, else `obj` is decoded); Deployment and
    /// ReplicaSet templates are warned about and audited only; namespace labels are validated,
    /// and a stricter enforce level warns about existing pods that violate it.
    async fn pod_security_admission(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        obj: &Value,
        old: Option<&Value>,
        parts: Option<admission::PodParts<'_>>,
    ) -> ApiResult<()> {
        let (decoded, template);
        let empty_meta = ObjectMeta::default();
        let empty = core::PodSpec::default();
        let (meta, spec, enforce) = match r.kind {
            // a custom resource of a built-in kind's name is no pod spec to enforce
            _ if !resources::is_builtin(r) => return Ok(()),
            "Pod" => {
                // an update that leaves the spec and the seccomp annotations as they were is
                // not significant: nothing to decode
                if old.is_some_and(|o| {
                    o.get("spec") == obj.get("spec")
                        && podsecurity::seccomp_annotations(o)
                            == podsecurity::seccomp_annotations(obj)
                }) {
                    return Ok(());
                }
                // what Pod Security reads of a stored pod is its metadata and spec: decoded as
                // a PodTemplateSpec (the fields it has), the status is not decoded
                let (meta, spec) = match parts {
                    Some(p) => (p.meta, p.spec),
                    None => {
                        decoded = typed::<core::PodTemplateSpec>(obj)?;
                        (decoded.metadata.as_ref(), decoded.spec.as_ref())
                    }
                };
                if let Some(o) = old {
                    let old = typed::<core::PodTemplateSpec>(o)?;
                    if !podsecurity::significant_pod_update(
                        meta.unwrap_or(&empty_meta),
                        spec.unwrap_or(&empty),
                        old.metadata.as_ref().unwrap_or(&empty_meta),
                        old.spec.as_ref().unwrap_or(&empty),
                    ) {
                        return Ok(());
                    }
                }
                (meta.unwrap_or(&empty_meta), spec, true)
            }
            "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "StatefulSet"
            | "ReplicationController"
            | "Job"
            | "CronJob" => {
                // pod-security-admission's PodSpecExtractor: the templates of workloads
                let t = if r.kind == "CronJob" {
                    "/spec/jobTemplate/spec/template"
                } else {
                    "/spec/template"
                };
                if let Some(o) = old {
                    if o.pointer(t) == obj.pointer(t) {
                        return Ok(());
                    }
                }
                let (meta, spec) = match parts {
                    Some(p) => (p.meta, p.spec),
                    None => {
                        template = match obj.pointer(t) {
                            Some(t) => typed::<core::PodTemplateSpec>(t)?,
                            None => Default::default(),
                        };
                        (template.metadata.as_ref(), template.spec.as_ref())
                    }
                };
                (meta.unwrap_or(&empty_meta), spec, false)
            }
            "Namespace" => return self.pod_security_namespace(r, name, obj, old).await,
            _ => return Ok(()),
        };
        let policy = self.pod_security_policy(ns).await?;
        let d = podsecurity::admit(&policy, meta, spec.unwrap_or(&empty), enforce);
        if let Some(a) = &d.audit {
            tracing::warn!(target: "audit", namespace = ns, name, kind = r.kind, "pod-security.kubernetes.io/audit-violations: {a}");
        }
        if let Some(why) = d.denied {
            let msg = if name.is_empty() {
                format!("{} is forbidden: {why}", r.qualified())
            } else {
                format!("{} \"{name}\" is forbidden: {why}", r.qualified())
            };
            return Err(ApiError::forbidden(r, name, msg));
        }
        for w in d.warnings {
            crate::warnings::add(w);
        }
        Ok(())
    }

    /// `ValidateNamespace`: labels must parse; a changed enforce level is tried on the pods
    /// already in the namespace, and violations come back as warnings.
    async fn pod_security_namespace(
        &self,
        r: &'static Resource,
        name: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let defaults = podsecurity::Policy::defaults(self.pod_security);
        let (policy, errs) = podsecurity::policy_to_evaluate(labels, defaults);
        let old_policy = old.map(|o| {
            podsecurity::policy_to_evaluate(
                o.pointer("/metadata/labels").and_then(Value::as_object),
                defaults,
            )
            .0
        });
        let changed = old.is_none_or(|o| {
            let ps = |v: &Value| -> Vec<(String, Value)> {
                v.pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| k.starts_with(podsecurity::LABEL_PREFIX))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            ps(o) != ps(obj)
        });
        if !changed {
            return Ok(());
        }
        if !errs.is_empty() {
            let causes = errs
                .into_iter()
                .map(|(k, v, m)| {
                    Cause::invalid(format!("metadata.labels[{k}]"), format!("{v:?}"), m)
                })
                .collect();
            return Err(ApiError::invalid(r, name, causes));
        }
        let Some(old_policy) = old_policy else {
            return Ok(());
        };
        if policy.enforce == old_policy.enforce
            || policy.enforce.level == podsecurity::Level::Privileged
        {
            return Ok(());
        }
        let pods = resources::find("", "v1", "pods").expect("pods");
        let (items, _, _) = self.list(pods, Some(name), &ListOptions::default()).await?;
        let empty = core::PodSpec::default();
        let mut lines = vec![];
        let empty_meta = ObjectMeta::default();
        for p in &items {
            // metadata and spec only (see `pod_security_admission`); a stored pod that does not
            // decode (written around the server) is logged and left out of these warnings
            // instead of failing the namespace update
            let p = match typed::<core::PodTemplateSpec>(p) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(namespace = %name, error = %e.message, "a stored pod does not decode; left out of the Pod Security warnings");
                    continue;
                }
            };
            let meta = p.metadata.as_ref().unwrap_or(&empty_meta);
            let v = podsecurity::evaluate(policy.enforce, meta, p.spec.as_ref().unwrap_or(&empty));
            if !v.is_empty() {
                let reasons: Vec<&str> = v.iter().map(|x| x.reason.as_str()).collect();
                lines.push(format!(
                    "{}: {}",
                    meta.name.as_deref().unwrap_or(""),
                    reasons.join(", ")
                ));
            }
        }
        if !lines.is_empty() {
            crate::warnings::add(format!(
                "existing pods in namespace {name:?} violate the new PodSecurity enforce level \"{}\"",
                policy.enforce
            ));
            for l in lines {
                crate::warnings::add(l);
            }
        }
        Ok(())
    }

    /// ServiceAccount admission (plugin/pkg/admission/serviceaccount/admission.go `Admit`):
    /// `serviceAccountName` defaults to `default` (the deprecated `serviceAccount` is read when
    /// it is unset, as `Convert_v1_PodSpec_To_core_PodSpec` does); the account must exist; the
    /// API credentials are mounted ([`mount_service_account_token`]) unless the pod or the
    /// account opts out (`shouldAutomount`); the account's `imagePullSecrets` are copied into a
    /// pod that has none.
    async fn admit_pod(&self, ns: &str, name: &str, pod: &mut core::Pod) -> ApiResult<()> {
        let pods = resources::find("", "v1", "pods").expect("pods");
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let sa_name = pod
            .spec
            .as_ref()
            .and_then(|s| {
                non_empty(&s.service_account_name).or_else(|| non_empty(&s.service_account))
            })
            .unwrap_or_else(|| "default".into());
        let sar = resources::find("", "v1", "serviceaccounts").expect("sa");
        // a lookup that fails is the admission's Forbidden, whatever failed (`Admit`:
        // "error looking up service account"); a stored account that does not decode is
        // named by the field that failed, not echoed
        let looking_up = |why: String| {
            ApiError::forbidden(
                pods,
                name,
                format!("pods \"{name}\" is forbidden: error looking up service account {ns}/{sa_name}: {why}"),
            )
        };
        let sa: core::ServiceAccount = match self.get_opt(sar, ns, &sa_name).await? {
            Some(sa) => serde_json::from_value::<core::ServiceAccount>(sa).map_err(|e| {
                looking_up(format!(
                    "the stored serviceaccount \"{sa_name}\" cannot be decoded ({}); replace it with `kubectl replace -f` or delete and re-create it",
                    decode_problem(&e)
                ))
            })?,
            None => return Err(looking_up(format!("serviceaccount \"{sa_name}\" not found"))),
        };
        let Some(spec) = pod.spec.as_mut() else {
            return Ok(());
        };
        if should_automount(&sa, spec) {
            mount_service_account_token(spec);
        }
        spec.service_account_name = Some(sa_name.clone());
        spec.service_account = Some(sa_name);
        if spec.image_pull_secrets.as_ref().is_none_or(Vec::is_empty) {
            if let Some(ips) = sa.image_pull_secrets.filter(|s| !s.is_empty()) {
                spec.image_pull_secrets = Some(ips);
            }
        }
        Ok(())
    }

    /// Replaces an object (PUT) or its status (`status` subresource), as the server.
    pub async fn update(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
        strict: bool,
    ) -> ApiResult<Value> {
        self.update_by(&User::Admin, r, ns, name, obj, subresource, strict)
            .await
            .map(|(obj, _)| obj)
    }

    /// [`Objects::update`] on behalf of `user`: a user's Role, ClusterRole and binding updates
    /// go through the RBAC storage's escalation check.
    ///
    /// As kube-apiserver's `GuaranteedUpdate`, a write the storage refuses because the object
    /// changed since it was read is tried again on the object as it now is, admission included:
    /// an update without a resourceVersion then succeeds, one with a resourceVersion gets the
    /// 409 of the comparison.
    ///
    /// An update of a missing object of a kind whose strategy allows it creates it (as
    /// `Store.Update` when `AllowCreateOnUpdate`; it runs the create of a POST); the answer says
    /// whether it did (the handler's 201).
    #[allow(clippy::too_many_arguments)]
    pub async fn update_by(
        &self,
        user: &User,
        r: &'static Resource,
        ns: &str,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
        strict: bool,
    ) -> ApiResult<(Value, bool)> {
        self.update_with(user, r, ns, name, obj, subresource, strict, true)
            .await
    }

    /// [`Objects::update_by`]; `create`: whether a missing object may be created (a patch's
    /// update never creates: the patcher's `createNewObject` is a 404).
    #[allow(clippy::too_many_arguments)]
    async fn update_with(
        &self,
        user: &User,
        r: &'static Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        strict: bool,
        create: bool,
    ) -> ApiResult<(Value, bool)> {
        // the handler's part, once: the body decoded and its namespace and name checked
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body must be a JSON object".into(),
            ));
        }
        let cr = self.crds.served(r);
        if cr
            .as_ref()
            .is_some_and(|sv| subresource.is_some_and(|s| s != "status" || !sv.status))
        {
            return Err(ApiError::path_not_found());
        }
        if let Some(why) = admission::decode(r, &mut obj, subresource.is_none(), strict) {
            return Err(ApiError::bad_request(why));
        }
        if let Some(sv) = &cr {
            crate::crd::admit_body(sv, &mut obj, strict)?;
        }
        // what mutating admission sees is the object as the request made it, decoded (its
        // kind and, as the handler's `EnsureObjectNamespaceMatchesRequestNamespace`, its
        // namespace set): `rest.BeforeUpdate` and the strategies' `PrepareForUpdate` run after
        // it, in the storage's try-update function ([`prepare_update`])
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind);
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let given_ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !r.namespaced {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("namespace");
            }
        } else if given_ns.is_empty() {
            obj["metadata"]["namespace"] = json!(ns);
        } else if given_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        // the object names itself, and by the URL's name: an update is not a rename
        // (handlers `checkName`, which the patcher's `applyPatch` runs on the patched object)
        check_name(&obj, None, name)?;
        for _ in 0..UPDATE_TRIES {
            match self
                .try_update(
                    user,
                    r,
                    ns,
                    name,
                    cr.as_deref(),
                    obj.clone(),
                    subresource,
                    create,
                )
                .await?
            {
                Tried::Done(v) => return Ok((v, false)),
                Tried::Created(v) => return Ok((v, true)),
                Tried::Raced => continue,
            }
        }
        Err(ApiError::conflict(r, name))
    }

    /// One try of [`Objects::update_by`] on the object as stored now (`GuaranteedUpdate`'s
    /// try-update function).
    #[allow(clippy::too_many_arguments)]
    async fn try_update(
        &self,
        user: &User,
        r: &'static Resource,
        ns: &str,
        name: &str,
        cr: Option<&crate::crd::Served>,
        obj: Value,
        subresource: Option<&str>,
        create: bool,
    ) -> ApiResult<Tried> {
        let sr = resources::storage_of(r);
        let key = sr.key(ns, name);
        let Some(cur_kv) = self
            .store
            .get(&key)
            .await
            .map_err(|e| store_err(r, name, e))?
        else {
            // the storage checks a UID precondition on the empty object it read for a missing
            // key (`GuaranteedUpdate` with `ignoreNotFound`), before the try-update function
            // (which answers 404 unless the kind creates on update)
            if subresource != Some("binding") {
                uid_precondition(r, name, &obj, "")?;
            }
            if !create || subresource.is_some() || !allows_create_on_update(r) {
                return Err(ApiError::not_found(r, name));
            }
            return Ok(
                match self
                    .create_with(r, ns, obj, user, Creating::OnUpdate)
                    .await?
                {
                    Some(created) => Tried::Created(created),
                    None => Tried::Raced,
                },
            );
        };
        let old = self.present(r, decode(&cur_kv));
        // an update without a UID keeps the stored one (`rest.BeforeUpdate`); a UID in the
        // body is a precondition (`defaultUpdatedObjectInfo.Preconditions`), which a re-created
        // object fails with 409 (`Preconditions.Check`, `InterpretUpdateError`); the storage
        // checks it before its try-update function (`GuaranteedUpdate`), so before mutating
        // admission and before the resourceVersion
        let stored_uid = old
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        uid_precondition(r, name, &obj, stored_uid)?;
        let mut new = obj;
        let kept = crate::managedfields::on_update(r, cr, &old, &mut new, subresource);
        let attrs = Attributes {
            r,
            kind: None,
            sub: subresource,
            op: Operation::Update,
            namespace: if r.namespaced { ns } else { "" },
            name,
            options: None,
        };
        if is_core(r, "Pod") && subresource.is_none() {
            // the Priority admission of a pod update
            crate::priority::keep_on_update(&mut new, &old);
        }
        self.webhooks
            .mutate(self, &attrs, Some(&mut new), Some(&old))
            .await?;
        // the RBAC storage's escalation check (its wrapped `UpdatedObjectInfo`), on what
        // mutating admission made
        crate::rbac::confirm_no_escalation(self, user, r, ns, name, &new, Some(&old)).await?;
        // the resourceVersion, where kube-apiserver's storage compares it: in `Store.Update`'s
        // try-update function, after `objInfo.UpdatedObject` (mutating admission, the RBAC
        // storage's escalation check) and before `rest.BeforeUpdate` (validation); read from
        // the object admission made, none, empty or 0 being an unconditional update (the
        // versioner reads them all as 0), which custom resources do not allow
        // (`customResourceStrategy.AllowUnconditionalUpdate`)
        let given = match new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(rv) if !rv.is_empty() => rv
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
            _ => 0,
        };
        let expected = match given {
            n if n != 0 => n,
            _ if cr.is_some() => {
                return Err(ApiError::invalid_as(
                    r.group,
                    r.plural,
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        "0x0",
                        "must be specified for an update",
                    )],
                ))
            }
            _ => cur_kv.mod_revision,
        };
        if expected != cur_kv.mod_revision {
            return Err(ApiError::conflict(r, name));
        }
        if subresource == Some("binding") {
            if let Some(why) = binding_refusal(name, &old) {
                return Err(ApiError::binding_conflict(name, &why));
            }
        }
        let mut new = prepare_update(r, cr, &old, new, subresource);
        crate::managedfields::keep(&mut new, kept);
        new["metadata"]["resourceVersion"] = json!(cur_kv.mod_revision.to_string());
        // the pod template, decoded once for validation, the warnings and Pod Security
        // admission; a status update is validated without it (the status strategies validate
        // the status and metadata only)
        let template = match subresource {
            None => decode_pod_template(r, &new)?,
            Some(_) => None,
        };
        let parts = pod_parts(None, template.as_ref());
        // a binding is not validated (BindingREST writes the node and annotations only)
        let mut causes = if subresource == Some("binding") {
            vec![]
        } else {
            admission::with_privileged_policy(self.allow_privileged, || {
                admission::validate(r, &new, Some(&old), parts)
            })
        };
        // the Job status strategy's `ValidateUpdate` (its status transitions)
        if subresource == Some("status") && (r.group, r.kind) == ("batch", "Job") {
            causes.extend(crate::controllers::job::validate_job_status_update(
                &new, &old,
            ));
        }
        if let Some(sv) = &cr {
            causes.extend(crate::crd::validate_cr(sv, &new, subresource));
        }
        if crate::crd::is_crd(r) && subresource.is_none() {
            causes.extend(crate::crd::validate_crd(&new, Some(&old)));
        }
        if !causes.is_empty() {
            ratchet(self.allow_privileged, r, &old, &new, &mut causes);
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(r, name, causes));
        }
        if subresource.is_none() {
            // `WarningsOnUpdate`: none for a Pod (`podStrategy` skips them on update), a
            // workload's when its generation changed (its strategy bumps it on any change of
            // its spec)
            let changed = match admission::pod_template_path(r) {
                Some("") | None => false,
                Some(_) => {
                    old.pointer("/metadata/generation") != new.pointer("/metadata/generation")
                }
            };
            if changed {
                add_pod_warnings(r, &new, parts);
            }
            // validating admission: LimitRanger (claims), Priority, then PodSecurity
            if is_core(r, "PersistentVolumeClaim") {
                crate::limitranges::validate_claim(self, r, ns, name, &new).await?;
            }
            crate::priority::admit_class(self, r, &new, true).await?;
            self.pod_security_admission(r, ns, name, &new, Some(&old), parts)
                .await?;
        }
        self.webhooks
            .validate(self, &attrs, Some(&new), Some(&old))
            .await?;
        crate::quota::admit(self, r, ns, name, &new, Some(&old), subresource).await?;
        if webhooks::dry_run() {
            return Ok(Tried::Done(new));
        }
        if webhooks::is_configuration(r) {
            self.webhooks.invalidate();
        }
        // an object being deleted whose finalizers are gone is removed now
        let finalizers_empty = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
        // (ShouldDeleteDuringUpdate: a pod only once its grace period is over)
        if new.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers_empty
            && (!is_core(r, "Pod")
                || new
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    == Some(0))
        {
            if crate::crd::is_crd(r) {
                crate::crd::delete_instances(self, &new).await?;
            }
            let (rev, _) = self
                .store
                .delete(&key, Some(cur_kv.mod_revision))
                .await
                .map_err(|e| store_err(r, name, e))?;
            if is_core(r, "Service") {
                self.services
                    .release_service(self.store.as_ref(), &old)
                    .await;
            }
            new["metadata"]["resourceVersion"] = json!(rev.to_string());
            if crate::crd::is_crd(r) {
                crate::crd::sync(self).await?;
            }
            return Ok(Tried::Done(self.present(r, new)));
        }
        let held = if is_core(r, "Service") && subresource.is_none() {
            Some(
                self.services
                    .allocate(self.store.as_ref(), &mut new, Some(&old))
                    .await
                    .map_err(|e| e.into_api(r, name))?,
            )
        } else {
            None
        };
        let bytes = match &cr {
            Some(sv) => encode(&crate::crd::to_storage(sv, &new)),
            None => encode_as(r, &new),
        };
        // `GuaranteedUpdate` (apiserver storage/etcd3 `store.go`): an object encoded as it is
        // stored is not written (no new resourceVersion, no event); the stored one is returned
        if unchanged(&bytes, &cur_kv.value) {
            if let Some(h) = &held {
                self.services.release(self.store.as_ref(), h).await;
            }
            return Ok(Tried::Done(old));
        }
        let rev = match self.store.update(&key, bytes, cur_kv.mod_revision).await {
            Ok(rev) => rev,
            Err(e) => {
                if let Some(h) = &held {
                    self.services.release(self.store.as_ref(), h).await;
                }
                if matches!(e, StoreError::Conflict { .. }) {
                    return Ok(Tried::Raced);
                }
                return Err(store_err(r, name, e));
            }
        };
        if held.is_some() {
            let freed = crate::services::freed_by_update(&self.services.range(), &old, &new);
            self.services.release(self.store.as_ref(), &freed).await;
        }
        new["metadata"]["resourceVersion"] = json!(rev.to_string());
        if crate::crd::is_crd(r) {
            crate::crd::sync(self).await?;
            return self.get(r, "", name).await.map(Tried::Done);
        }
        Ok(Tried::Done(match &cr {
            Some(sv) => crate::crd::present(sv, crate::crd::to_storage(sv, &new)),
            None => new,
        }))
    }

    /// Applies a patch, retrying on write conflicts (the patch is re-applied to the latest
    /// version, as kube-apiserver does), as the server.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &Value,
        subresource: Option<&str>,
        strict: bool,
    ) -> ApiResult<Value> {
        self.patch_by(
            &User::Admin,
            r,
            ns,
            name,
            content_type,
            body,
            subresource,
            strict,
        )
        .await
    }

    /// [`Objects::patch`] on behalf of `user` (see [`Objects::update_by`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_by(
        &self,
        user: &User,
        r: &'static Resource,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &Value,
        subresource: Option<&str>,
        strict: bool,
    ) -> ApiResult<Value> {
        if self.crds.served(r).is_some() {
            crate::crd::refuse_strategic(content_type)?;
        }
        let apply = crate::managedfields::is_apply(content_type);
        for _ in 0..8 {
            let cur = self.get(r, ns, name).await?;
            let mut next = if apply {
                let cr = self.crds.served(r);
                crate::managedfields::apply(r, cr.as_deref(), Some(&cur), body, subresource)?
            } else {
                let mut next = cur.clone();
                apply_patch(&mut next, content_type, body)?;
                next
            };
            // a patch carries no precondition: a UID it changes is refused as immutable
            // (`ValidateObjectMetaUpdate`)
            if next.pointer("/metadata/uid") != cur.pointer("/metadata/uid") {
                if let Some(uid) = next
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                {
                    return Err(ApiError::invalid(
                        r,
                        name,
                        vec![Cause::invalid(
                            "metadata.uid",
                            format!("\"{uid}\""),
                            "field is immutable",
                        )],
                    ));
                }
            }
            // a patch that sets a resourceVersion (a merge patch's field, a JSON Patch's
            // operation on it) makes it a precondition on the patched object, as upstream
            // compares the patched object's version; otherwise the current one is used, and a
            // conflict with another writer is tried again
            let sets_rv = match body {
                Value::Array(ops) => ops.iter().any(|op| {
                    op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
                        && matches!(
                            op.get("op").and_then(Value::as_str),
                            Some("add" | "replace" | "copy" | "move")
                        )
                }),
                _ => body.pointer("/metadata/resourceVersion").is_some(),
            };
            if !sets_rv {
                next["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            }
            let applied = apply.then(|| crate::managedfields::applied(r, ns, name, &next));
            match crate::managedfields::applying(
                applied,
                self.update_with(user, r, ns, name, next, subresource, strict, false),
            )
            .await
            .map(|(obj, _)| obj)
            {
                Err(e) if e.code == 409 && e.reason == "Conflict" && !sets_rv => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(r, name))
    }

    /// Deletes an object, honouring finalizers, graceful pod deletion and propagation policy.
    pub async fn delete(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        crate::priority::refuse_system_delete(r, name)?;
        let sr = resources::storage_of(r);
        let key = sr.key(ns, name);
        if webhooks::is_configuration(r) {
            self.webhooks.invalidate();
        }
        for attempt in 0..8 {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| store_err(r, name, e))?
                .ok_or_else(|| ApiError::not_found(r, name))?;
            // read as the storage codec reads it, with the kind's defaults: what the DELETE's
            // admission sees as `oldObject` and what a graceful delete writes back
            // (`Store.Delete` in k8s.io/apiserver pkg/registry/generic/registry/store.go gets
            // the object through the storage's decoding)
            let mut obj = stored_with_defaults(r, decode(&kv));
            if let Some(uid) = &opts.uid {
                if obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str()) {
                    return Err(ApiError::conflict(r, name).with_message(format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        r.qualified(),
                        obj.pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    )));
                }
            }
            if let Some(rv) = &opts.resource_version {
                if *rv != kv.mod_revision.to_string() {
                    return Err(ApiError::conflict(r, name));
                }
            }
            if attempt == 0 {
                self.delete_admission(r, ns, name, opts, &obj).await?;
                if webhooks::dry_run() {
                    return Ok(obj);
                }
                if is_core(r, "Namespace") {
                    // NamespaceLifecycle: creates in it are checked live from now on
                    self.namespaces.force_live_lookup(name);
                }
            }
            let mut finalizers: Vec<Value> = obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            match opts.propagation_policy.as_deref() {
                Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
                    finalizers.push(json!("foregroundDeletion"))
                }
                Some("Orphan") if !finalizers.contains(&json!("orphan")) => {
                    finalizers.push(json!("orphan"))
                }
                _ => {}
            }
            if crate::crd::is_crd(r) {
                crate::crd::begin_deletion(&mut obj, &mut finalizers);
            }
            let graceful_pod = is_core(r, "Pod")
                && obj
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty())
                && obj
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .is_none_or(|p| p != "Succeeded" && p != "Failed")
                && opts.grace_period_seconds.unwrap_or(1) > 0;
            let namespace = is_core(r, "Namespace");
            if finalizers.is_empty() && !graceful_pod && !namespace {
                if crate::crd::is_crd(r) {
                    crate::crd::delete_instances(self, &obj).await?;
                }
                match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok((rev, _)) => {
                        if is_core(r, "Service") {
                            self.services
                                .release_service(self.store.as_ref(), &obj)
                                .await;
                        }
                        obj["metadata"]["resourceVersion"] = json!(rev.to_string());
                        if crate::crd::is_crd(r) {
                            crate::crd::sync(self).await?;
                        }
                        return Ok(self.present(r, obj));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_err(r, name, e)),
                }
            }
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                // a pod held by finalizers: the final delete (grace 0) ends its grace period,
                // so it goes as soon as the finalizers do
                let grace = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if is_core(r, "Pod") && opts.grace_period_seconds == Some(0) && grace != Some(0) {
                    obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    match self
                        .store
                        .update(&key, encode_as(r, &obj), kv.mod_revision)
                        .await
                    {
                        Ok(rev) => {
                            obj["metadata"]["resourceVersion"] = json!(rev.to_string());
                        }
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => return Err(store_err(r, name, e)),
                    }
                }
                return Ok(self.present(r, obj));
            }
            obj["metadata"]["deletionTimestamp"] = json!(now());
            if graceful_pod {
                let g = opts
                    .grace_period_seconds
                    .or_else(|| {
                        obj.pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(30);
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(g);
            } else {
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            if !finalizers.is_empty() {
                obj["metadata"]["finalizers"] = Value::Array(finalizers);
            }
            if namespace {
                obj["status"]["phase"] = json!("Terminating");
            }
            match self
                .store
                .update(&key, encode_as(r, &obj), kv.mod_revision)
                .await
            {
                Ok(rev) => {
                    obj["metadata"]["resourceVersion"] = json!(rev.to_string());
                    return Ok(self.present(r, obj));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_err(r, name, e)),
            }
        }
        Err(ApiError::conflict(r, name))
    }

    /// Admission webhooks for a DELETE: the object being deleted is `oldObject`.
    async fn delete_admission(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
        obj: &Value,
    ) -> ApiResult<()> {
        let mut options = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"});
        if let Some(g) = opts.grace_period_seconds {
            options["gracePeriodSeconds"] = json!(g);
        }
        if let Some(p) = &opts.propagation_policy {
            options["propagationPolicy"] = json!(p);
        }
        if let Some(u) = &opts.uid {
            options["preconditions"]["uid"] = json!(u);
        }
        if let Some(v) = &opts.resource_version {
            options["preconditions"]["resourceVersion"] = json!(v);
        }
        let attrs = Attributes {
            r,
            kind: None,
            sub: None,
            op: Operation::Delete,
            namespace: if r.namespaced { ns } else { "" },
            name,
            options: Some(options),
        };
        self.webhooks.mutate(self, &attrs, None, Some(obj)).await?;
        self.webhooks.validate(self, &attrs, None, Some(obj)).await
    }

    /// Removes an object at once (the final step of graceful deletion and finalization).
    pub async fn remove(&self, r: &'static Resource, ns: &str, name: &str) -> ApiResult<()> {
        let sr = resources::storage_of(r);
        match self.store.delete(&sr.key(ns, name), None).await {
            Ok((_, prev)) => {
                if is_core(r, "Service") {
                    self.services
                        .release_service(self.store.as_ref(), &decode(&prev))
                        .await;
                }
                Ok(())
            }
            Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(r, name, e)),
        }
    }

    /// How many resources have a watch fan-out running ([`crate::watchfanout`]).
    pub fn fanouts_active(&self) -> usize {
        self.fanouts.active()
    }

    /// Watches objects of `r` (namespace `None`: all) after revision `after`.
    pub async fn watch(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        after: u64,
        filter: Filter,
    ) -> ApiResult<tokio::sync::mpsc::Receiver<ApiResult<WatchEvent>>> {
        let sr = resources::storage_of(r);
        let prefix = match ns {
            Some(ns) if sr.namespaced => format!("{}{}/", sr.key_prefix(), ns),
            _ => sr.key_prefix(),
        };
        // built-in resources: one datastore watch per resource, each event decoded once
        if self.crds.served(r).is_none() {
            let sub = self
                .fanouts
                .subscribe(
                    &self.store,
                    &sr.key_prefix(),
                    r.kind,
                    &r.api_version(),
                    after,
                )
                .await
                .map_err(|e| store_err(r, "", e))?;
            if let Some(sub) = sub {
                return Ok(fanned_out(sub, prefix, after, filter));
            }
        }
        let mut w = self
            .store
            .watch(&prefix, after)
            .await
            .map_err(|e| store_err(r, "", e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let kind = r.kind;
        let api_version = r.api_version();
        let cr = self.crds.served(r);
        let present = move |o: Value| match &cr {
            Some(sv) => crate::crd::present(sv, o),
            None => stored_with_defaults(r, o),
        };
        tokio::spawn(async move {
            while let Some(ev) = w.events.recv().await {
                let out = match ev {
                    Err(e) => Err(store_err(sr, "", e)),
                    Ok(Event::Put { kv, prev }) => {
                        let mut obj = present(decode(&kv));
                        obj["kind"] = json!(kind);
                        obj["apiVersion"] = json!(api_version);
                        // the previous state read as the object is, with the kind's defaults,
                        // when the filter reads more than the namespace (`watchChan.prepareObjs`,
                        // k8s.io/apiserver pkg/storage/etcd3/watcher.go)
                        let was = prev.as_ref().map(decode).is_some_and(|p| {
                            filter.matches(&if filter.selects() { present(p) } else { p })
                        });
                        let is = filter.matches(&obj);
                        let kind = match (was, is) {
                            (false, true) => "ADDED",
                            (true, true) => "MODIFIED",
                            (true, false) => "DELETED",
                            (false, false) => continue,
                        };
                        Ok(WatchEvent {
                            kind,
                            object: Arc::new(obj),
                            shared: None,
                        })
                    }
                    Ok(Event::Delete { prev, revision }) => {
                        let mut obj = present(decode(&prev));
                        if !filter.matches(&obj) {
                            continue;
                        }
                        obj["kind"] = json!(kind);
                        obj["apiVersion"] = json!(api_version);
                        obj["metadata"]["resourceVersion"] = json!(revision.to_string());
                        Ok(WatchEvent {
                            kind: "DELETED",
                            object: Arc::new(obj),
                            shared: None,
                        })
                    }
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// The API events of one watcher from a fan-out: the keys under `prefix` (its namespace), after
/// `after`, through its selectors (`cacheWatcher.convertToWatchEvent`: an update that makes the
/// object match is `ADDED`, one that makes it stop matching is `DELETED`).
fn fanned_out(
    sub: crate::watchfanout::Subscription,
    prefix: String,
    after: u64,
    filter: Filter,
) -> tokio::sync::mpsc::Receiver<ApiResult<WatchEvent>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let crate::watchfanout::Subscription { replay, mut live } = sub;
        let mut replay = replay.into_iter();
        loop {
            let d = match replay.next() {
                Some(d) => d,
                None => tokio::select! {
                    r = live.recv() => match r {
                        Ok(d) => d,
                        // fell behind, or the datastore watch ended: the stream ends, the
                        // client lists again
                        Err(_) => return,
                    },
                    // the client left: let go of the fan-out at once
                    _ = tx.closed() => return,
                },
            };
            if d.revision <= after || !d.key.starts_with(&prefix) {
                continue;
            }
            let is = filter.matches(&d.object);
            let kind = if d.deleted {
                if !is {
                    continue;
                }
                "DELETED"
            } else {
                let prev = if filter.selects() {
                    d.prev()
                } else {
                    d.prev_stored()
                };
                let was = prev.is_some_and(|p| filter.matches(p));
                match (was, is) {
                    (false, true) => "ADDED",
                    (true, true) => "MODIFIED",
                    (true, false) => "DELETED",
                    (false, false) => continue,
                }
            };
            let ev = WatchEvent {
                kind,
                object: d.object.clone(),
                shared: Some(d),
            };
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
    });
    rx
}

impl Objects {
    /// Creates the namespaces that always exist.
    pub async fn bootstrap(&self) -> ApiResult<()> {
        let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            match self
                .create(
                    nsr,
                    "",
                    json!({"metadata": {"name": ns}}),
                    &User::Admin,
                    false,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 409 => {
                    // make sure the default ServiceAccount exists too
                    let sa = resources::find("", "v1", "serviceaccounts").expect("sa");
                    let _ = self
                        .create(
                            sa,
                            ns,
                            json!({"metadata": {"name": "default"}}),
                            &User::Admin,
                            false,
                        )
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
        // the RBAC bootstrap policy: created when missing, left alone when present
        let (roles, bindings) = crate::rbac::bootstrap_objects();
        let cr = resources::find("rbac.authorization.k8s.io", "v1", "clusterroles").expect("cr");
        let crb =
            resources::find("rbac.authorization.k8s.io", "v1", "clusterrolebindings").expect("crb");
        for (r, objs) in [(cr, roles), (crb, bindings)] {
            for o in objs {
                match self.create(r, "", o, &User::Admin, false).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // the system PriorityClasses (kube-apiserver's
        // `scheduling/bootstrap-system-priority-classes` post-start hook): created when missing
        if let Some(pcr) = resources::find("scheduling.k8s.io", "v1", "priorityclasses") {
            for pc in crate::priority::system_priority_classes() {
                match self.create(pcr, "", pc, &User::Admin, false).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // the admissions' informers sync before the server serves (their `SetReadyFunc`)
        self.policy.start(&self.store).await;
        Ok(())
    }
}

impl ApiError {
    fn with_code(mut self, code: u16, reason: &'static str, message: String) -> Self {
        self.code = code;
        self.reason = reason;
        self.message = message;
        self
    }

    fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

/// Whether a pod's spec names the object `kind`/`name`, as the node authorizer's graph links
/// them (plugin/pkg/auth/authorizer/node/graph_populator.go): its ServiceAccount
/// (`spec.serviceAccountName`), the Secrets of `VisitPodSecretNames` and the ConfigMaps of
/// `VisitPodConfigmapNames` (pkg/api/v1/pod/util.go). An empty name is never a reference
/// (`skipEmptyNames`).
pub fn pod_references(spec: &core::PodSpec, kind: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let is = |n: Option<&str>| n == Some(name);
    let init = spec.init_containers.iter().flatten();
    // `VisitContainers` with `AllContainers`: init, regular, then ephemeral containers, each
    // as its env and envFrom
    let envs = spec
        .containers
        .iter()
        .chain(init)
        .map(|c| (c.env.as_deref(), c.env_from.as_deref()))
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (c.env.as_deref(), c.env_from.as_deref())),
        );
    let volumes = spec.volumes.iter().flatten();
    match kind {
        "ServiceAccount" => is(spec.service_account_name.as_deref()),
        // `VisitPodSecretNames`: pull secrets, env and envFrom, then the volume sources that
        // name a Secret
        "Secret" => {
            spec.image_pull_secrets
                .iter()
                .flatten()
                .any(|s| is(Some(&s.name)))
                || envs.into_iter().any(|(env, env_from)| {
                    env_from
                        .unwrap_or_default()
                        .iter()
                        .any(|e| is(e.secret_ref.as_ref().map(|r| r.name.as_str())))
                        || env.unwrap_or_default().iter().any(|e| {
                            is(e.value_from
                                .as_ref()
                                .and_then(|v| v.secret_key_ref.as_ref())
                                .map(|r| r.name.as_str()))
                        })
                })
                || volumes.into_iter().any(|v| {
                    let secret_ref =
                        |r: Option<&core::LocalObjectReference>| is(r.map(|r| r.name.as_str()));
                    is(v.azure_file.as_ref().map(|a| a.secret_name.as_str()))
                        || secret_ref(v.cephfs.as_ref().and_then(|c| c.secret_ref.as_ref()))
                        || secret_ref(v.cinder.as_ref().and_then(|c| c.secret_ref.as_ref()))
                        || secret_ref(v.flex_volume.as_ref().and_then(|f| f.secret_ref.as_ref()))
                        || v.projected.iter().any(|p| {
                            p.sources
                                .iter()
                                .flatten()
                                .any(|s| is(s.secret.as_ref().map(|s| s.name.as_str())))
                        })
                        || is(v
                            .rbd
                            .as_ref()
                            .and_then(|r| r.secret_ref.as_ref())
                            .map(|r| r.name.as_str()))
                        || is(v.secret.as_ref().and_then(|s| s.secret_name.as_deref()))
                        || is(v.scale_io.as_ref().map(|s| s.secret_ref.name.as_str()))
                        || secret_ref(v.iscsi.as_ref().and_then(|i| i.secret_ref.as_ref()))
                        || secret_ref(v.storageos.as_ref().and_then(|s| s.secret_ref.as_ref()))
                        || secret_ref(
                            v.csi
                                .as_ref()
                                .and_then(|c| c.node_publish_secret_ref.as_ref()),
                        )
                })
        }
        // `VisitPodConfigmapNames`: env and envFrom, configMap volumes and projected sources
        "ConfigMap" => {
            envs.into_iter().any(|(env, env_from)| {
                env_from
                    .unwrap_or_default()
                    .iter()
                    .any(|e| is(e.config_map_ref.as_ref().map(|r| r.name.as_str())))
                    || env.unwrap_or_default().iter().any(|e| {
                        is(e.value_from
                            .as_ref()
                            .and_then(|v| v.config_map_key_ref.as_ref())
                            .map(|r| r.name.as_str()))
                    })
            }) || volumes.into_iter().any(|v| {
                is(v.config_map.as_ref().map(|c| c.name.as_str()))
                    || v.projected.iter().any(|p| {
                        p.sources
                            .iter()
                            .flatten()
                            .any(|s| is(s.config_map.as_ref().map(|c| c.name.as_str())))
                    })
            })
        }
        _ => false,
    }
}

/// Whether a stored pod's spec names `kind`/`name` ([`pod_references`]), its spec decoded into
/// the typed spec. A pod whose spec does not decode (a corrupt store) names nothing.
pub fn stored_pod_references(pod: &Value, kind: &str, name: &str) -> bool {
    use serde::Deserialize as _;
    let Some(spec) = pod.get("spec") else {
        return false;
    };
    match core::PodSpec::deserialize(spec) {
        Ok(spec) => pod_references(&spec, kind, name),
        Err(e) => {
            tracing::warn!(
                pod = field_value(pod, "metadata.name"),
                "stored pod spec does not decode: {}",
                decode_problem(&e)
            );
            false
        }
    }
}

/// A convenience for causes.
pub fn invalid(r: &Resource, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(r, name, causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_list_longer_than_a_page_is_one_snapshot_when_a_write_comes_between_pages() {
        let store = Arc::new(crate::teststore::TestStore::default());
        store.rewrite_after_first_page(|first| {
            let mut v: Value = serde_json::from_slice(first).unwrap();
            v["data"]["k"] = json!("changed");
            serde_json::to_vec(&v).unwrap()
        });
        let r = resources::find("", "v1", "configmaps").unwrap();
        for i in 0..600 {
            let name = format!("cm-{i:04}");
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"}, "data": {"k": "old"}});
            store
                .create(&r.key("default", &name), serde_json::to_vec(&obj).unwrap())
                .await
                .unwrap();
        }
        let objects = Objects::new(store.clone());
        let (items, rv, token) = objects
            .list(r, Some("default"), &ListOptions::default())
            .await
            .unwrap();
        assert!(store.rewritten());
        assert!(token.is_none());
        assert_eq!(items.len(), 600);
        // the list's resourceVersion covers every item as returned: the write made before
        // the list's revision is in it, so a watch from that revision loses nothing
        assert_eq!(rv, 601, "600 creates and the write between the pages");
        assert_eq!(items[0]["data"]["k"], "changed", "{}", items[0]);
        assert!(items.iter().all(|o| o["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v <= rv)));
    }

    #[test]
    fn pod_references_follow_projected_volumes_and_ephemeral_containers() {
        let p = json!({"spec": {
            "serviceAccountName": "bot",
            "volumes": [{"name": "v", "projected": {"sources": [
                {"secret": {"name": "s1"}}, {"configMap": {"name": "c1"}},
                {"serviceAccountToken": {"path": "token"}}]}}],
            "ephemeralContainers": [{"name": "dbg", "env": [{"name": "X",
                "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}]}]}});
        let p: core::PodSpec = serde_json::from_value(p["spec"].clone()).unwrap();
        assert!(pod_references(&p, "Secret", "s1"));
        assert!(pod_references(&p, "ConfigMap", "c1"));
        assert!(pod_references(&p, "Secret", "s2"));
        assert!(pod_references(&p, "ServiceAccount", "bot"));
        assert!(!pod_references(&p, "Secret", "other"));
        assert!(!pod_references(&p, "ConfigMap", "s1"));
    }

    /// `SimpleNameGenerator`: the base cut to 58 bytes, 5 random characters after it; a
    /// character is never cut in two.
    #[test]
    fn generated_names_fit_a_label() {
        let n = generated_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        let long = "a".repeat(70);
        let n = generated_name(&long);
        assert_eq!(n.len(), 63);
        assert!(
            n.starts_with(&"a".repeat(58)) && !n[58..].contains('a'),
            "{n}"
        );
        let wide = format!("{}é", "a".repeat(57));
        let n = generated_name(&wide);
        assert!(
            n.starts_with(&"a".repeat(57)) && !n.contains('é') && n.len() == 62,
            "{n}"
        );
    }

    #[test]
    fn uuids_are_random_v4() {
        let a = uuid();
        assert_eq!(a.len(), 36, "{a}");
        for (i, c) in a.char_indices() {
            match i {
                8 | 13 | 18 | 23 => assert_eq!(c, '-', "{a}"),
                14 => assert_eq!(c, '4', "{a}"),
                19 => assert!("89ab".contains(c), "{a}"),
                _ => assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{a}"),
            }
        }
        assert_ne!(a, uuid());
    }

    #[test]
    fn custom_resource_field_selectors() {
        let mut w = crate::resources::find("", "v1", "configmaps")
            .unwrap()
            .clone();
        w.group = "example.com";
        w.kind = "Widget";
        let set = FieldSet::Custom(["spec.color", "spec.on"].map(String::from).into());
        let f = |fs: &str| {
            let opts = ListOptions {
                field_selector: Some(fs.to_string()),
                ..Default::default()
            };
            Filter::with_fields(&opts, &w, set.clone(), None)
        };
        let blue = json!({"metadata": {"name": "a", "namespace": "d"}, "spec": {"color": "blue", "on": true}});
        let red = json!({"metadata": {"name": "b", "namespace": "d"}, "spec": {"color": "red"}});
        let m = |fs: &str, o: &Value| f(fs).unwrap().matches(o);
        assert!(m("spec.color=blue", &blue));
        assert!(!m("spec.color=blue", &red));
        assert!(m("spec.color!=blue", &red));
        assert!(m("spec.on=true", &blue));
        // a missing boolean is "", not "false"
        assert!(!m("spec.on=false", &red));
        assert!(m("spec.on=", &red));
        assert!(m(
            "spec.color=red,metadata.namespace=d,metadata.name=b",
            &red
        ));
        let e = f("spec.size=1").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "field label not supported: spec.size")
        );
        // the kind's own field set (none declared) refuses what the version does not declare
        let plain = Filter::new(
            &ListOptions {
                field_selector: Some("spec.color=blue".into()),
                ..Default::default()
            },
            &w,
            None,
        );
        assert!(plain.is_err());
    }

    #[test]
    fn selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}, "namespace": "d"}, "spec": {"nodeName": "n1"}});
        let f = |l: &str, fs: &str| {
            Filter::new(
                &ListOptions {
                    label_selector: (!l.is_empty()).then(|| l.to_string()),
                    field_selector: (!fs.is_empty()).then(|| fs.to_string()),
                    ..Default::default()
                },
                crate::resources::find("", "v1", "pods").unwrap(),
                None,
            )
            .unwrap()
            .matches(&o)
        };
        assert!(f("app=web", ""));
        assert!(f("app in (web, api),tier", ""));
        assert!(!f("app notin (web)", ""));
        assert!(f("!missing", "spec.nodeName=n1"));
        assert!(!f("", "spec.nodeName!=n1"));
        assert!(f("", "metadata.namespace=d"));
    }

    fn pods() -> &'static Resource {
        resources::find("", "v1", "pods").unwrap()
    }

    async fn api() -> Objects {
        let store: Arc<dyn Datastore> = Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let o = Objects::new(store);
        o.bootstrap().await.unwrap();
        o
    }

    /// An object stored before a default was added is read with it (as kube-apiserver's storage
    /// codec defaults what it reads): a label added to such a Pod is no spec change, and the
    /// stored spec gains the defaults.
    #[tokio::test]
    async fn an_update_reads_the_stored_object_with_its_defaults() {
        let store: Arc<dyn Datastore> = Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let o = Objects::new(store.clone());
        o.bootstrap().await.unwrap();
        let container = json!({"name": "c", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "resources": {"limits": {"cpu": "1"}}, "readinessProbe": {"httpGet": {"port": 80}},
            "ports": [{"containerPort": 80}]});
        let old = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "old", "namespace": "default", "uid": "u1",
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [container], "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler", "securityContext": {},
                "enableServiceLinks": true},
            "status": {"phase": "Pending", "qosClass": "Burstable"}});
        let key = resources::storage_of(pods()).key("default", "old");
        store.create(&key, encode(&old)).await.unwrap();
        let patch = json!({"metadata": {"labels": {"a": "b"}}});
        let patched = o
            .patch(
                pods(),
                "default",
                "old",
                "application/merge-patch+json",
                &patch,
                None,
                false,
            )
            .await
            .unwrap();
        assert_eq!(patched["metadata"]["labels"]["a"], "b");
        let c = &patched["spec"]["containers"][0];
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10, "{c}");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"]["requests"], json!({"cpu": "1"}));
        assert_eq!(patched["status"], old["status"]);
    }

    /// An update without a UID keeps the stored one; a UID in a PUT (or status) body is a
    /// precondition (409 when it is not the stored one), a patch that changes it is 422
    /// (immutable); neither changes anything.
    #[tokio::test]
    async fn a_uid_in_an_update_must_be_the_stored_one() {
        let o = api().await;
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let stored = o
            .create(
                cm,
                "default",
                json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        let uid = stored["metadata"]["uid"].as_str().unwrap().to_string();
        let mut other = stored.clone();
        other["metadata"]["uid"] = json!("6a1e5b3c-0000-4000-8000-000000000000");
        other["data"]["a"] = json!("2");
        let e = o
            .update(cm, "default", "c", other, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            format!("Operation cannot be fulfilled on configmaps \"c\": Precondition failed: UID in precondition: 6a1e5b3c-0000-4000-8000-000000000000, UID in object meta: {uid}")
        );
        let patch = json!({"metadata": {"uid": "6a1e5b3c-0000-4000-8000-000000000000"}, "data": {"a": "3"}});
        let e = o
            .patch(
                cm,
                "default",
                "c",
                "application/merge-patch+json",
                &patch,
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 422, "{}", e.message);
        assert_eq!(
            e.message,
            "ConfigMap \"c\" is invalid: metadata.uid: Invalid value: \"6a1e5b3c-0000-4000-8000-000000000000\": field is immutable"
        );
        assert_eq!(o.get(cm, "default", "c").await.unwrap(), stored);
        // no UID: the stored one is kept; the same UID: a precondition that holds
        let mut none = stored.clone();
        none["metadata"].as_object_mut().unwrap().remove("uid");
        none["data"]["a"] = json!("4");
        let updated = o
            .update(cm, "default", "c", none, None, false)
            .await
            .unwrap();
        assert_eq!(updated["metadata"]["uid"], json!(uid));
        let patch = json!({"metadata": {"uid": uid}, "data": {"a": "5"}});
        let patched = o
            .patch(
                cm,
                "default",
                "c",
                "application/merge-patch+json",
                &patch,
                None,
                false,
            )
            .await
            .unwrap();
        assert_eq!(patched["data"]["a"], "5");
        // the status subresource too
        let pod = o
            .create(
                pods(),
                "default",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        let mut st = pod.clone();
        st["metadata"]["uid"] = json!("6a1e5b3c-0000-4000-8000-000000000000");
        st["status"]["phase"] = json!("Running");
        let e = o
            .update(pods(), "default", "p", st, Some("status"), false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 409, "{}", e.message);
    }

    /// kube-apiserver's order on update (the handler, then `Store.Update`): the body decoded and
    /// its namespace checked, the UID precondition before the try-update function, the
    /// resourceVersion inside it after mutating admission and before validation; a status
    /// update is compared on the resourceVersion its body names.
    #[tokio::test]
    async fn an_update_checks_the_uid_then_the_resource_version_then_validates() {
        let o = api().await;
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let first = o
            .create(
                cm,
                "default",
                json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        let uid = first["metadata"]["uid"].as_str().unwrap().to_string();
        let mut second = first.clone();
        second["metadata"]["labels"] = json!({"x": "y"});
        let second = o
            .update(cm, "default", "c", second, None, false)
            .await
            .unwrap();
        // stale and another UID: the precondition's 409
        let mut stale = first.clone();
        stale["metadata"]["uid"] = json!("6a1e5b3c-0000-4000-8000-000000000000");
        let e = o
            .update(cm, "default", "c", stale, None, false)
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            format!("Operation cannot be fulfilled on configmaps \"c\": Precondition failed: UID in precondition: 6a1e5b3c-0000-4000-8000-000000000000, UID in object meta: {uid}")
        );
        // stale and invalid: the conflict, validation never runs
        let mut stale = first.clone();
        stale["data"]["a"] = json!("9");
        let e = o
            .update(cm, "default", "c", stale, None, false)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"), "{}", e.message);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
        );
        // a body naming another object: 400, as is a patch that renames (checkName)
        let mut renamed = second.clone();
        renamed["metadata"]["name"] = json!("other");
        let e = o
            .update(cm, "default", "c", renamed, None, false)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "the name of the object (other) does not match the name on the URL (c)"
            )
        );
        let e = o
            .patch(
                cm,
                "default",
                "c",
                "application/merge-patch+json",
                &json!({"metadata": {"name": "other"}}),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "the name of the object (other) does not match the name on the URL (c)"
            )
        );
        // a body in another namespace: 400 (`EnsureObjectNamespaceMatchesRequestNamespace`)
        let mut elsewhere = second.clone();
        elsewhere["metadata"]["namespace"] = json!("other");
        let e = o
            .update(cm, "default", "c", elsewhere, None, false)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "the namespace of the provided object does not match the namespace sent on the request")
        );
        // the body is decoded and its namespace checked before the stored object is read, as
        // the handler does before the storage: 400, not 404
        let e = o
            .update(
                cm,
                "default",
                "missing",
                json!({"metadata": {"name": "missing"}, "data": "x"}),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 400, "{}", e.message);
        let e = o
            .update(
                cm,
                "default",
                "missing",
                json!({"metadata": {"name": "missing", "namespace": "other"}}),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 400, "{}", e.message);
        let e = o
            .update(
                cm,
                "default",
                "missing",
                json!({"metadata": {"name": "missing"}}),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 404, "{}", e.message);
        // current and invalid: 422
        let mut bad = second.clone();
        bad["data"]["a"] = json!("9");
        let e = o
            .update(cm, "default", "c", bad, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422, "{}", e.message);
        assert_eq!(o.get(cm, "default", "c").await.unwrap(), second);
        // the status subresource: a stale resourceVersion in its body conflicts, none updates
        let pod = o
            .create(
                pods(),
                "default",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        let mut st = pod.clone();
        st["status"]["message"] = json!("waiting");
        let moved = o
            .update(pods(), "default", "p", st, Some("status"), false)
            .await
            .unwrap();
        assert_ne!(
            moved["metadata"]["resourceVersion"],
            pod["metadata"]["resourceVersion"]
        );
        let mut st = pod.clone();
        st["status"]["phase"] = json!("Running");
        let e = o
            .update(pods(), "default", "p", st.clone(), Some("status"), false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 409, "{}", e.message);
        st["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let done = o
            .update(pods(), "default", "p", st, Some("status"), false)
            .await
            .unwrap();
        assert_eq!(done["status"]["phase"], "Running");
    }

    /// A write that races an update (made between the update's read and its write) makes the
    /// update try again on the object as it now is, as `GuaranteedUpdate` does: one without a
    /// resourceVersion replaces the racer's, one naming the version it read gets 409; a patch
    /// is applied again to the racer's object.
    #[tokio::test]
    async fn an_update_raced_by_another_write_is_tried_again() {
        let store = Arc::new(crate::teststore::TestStore::default());
        let o = Objects::new(store.clone());
        o.bootstrap().await.unwrap();
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let key = cm.key("default", "c");
        let racer = |v: &[u8]| {
            let mut obj: Value = serde_json::from_slice(v).unwrap();
            obj["data"]["racer"] = json!("was here");
            serde_json::to_vec(&obj).unwrap()
        };
        let first = o
            .create(
                cm,
                "default",
                json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        // no resourceVersion: tried again, the body replaces the racer's write
        let mut body = first.clone();
        body["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        body["data"]["a"] = json!("2");
        store.rewrite_before_next_update(&key, racer);
        let done = o
            .update(cm, "default", "c", body, None, false)
            .await
            .unwrap();
        assert_eq!(done["data"], json!({"a": "2"}));
        assert_eq!(o.get(cm, "default", "c").await.unwrap(), done);
        // the resourceVersion it read: the 409, the racer's write kept
        let mut body = done.clone();
        body["data"]["a"] = json!("3");
        store.rewrite_before_next_update(&key, racer);
        let e = o
            .update(cm, "default", "c", body, None, false)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"), "{}", e.message);
        let now = o.get(cm, "default", "c").await.unwrap();
        assert_eq!(now["data"], json!({"a": "2", "racer": "was here"}));
        // a patch without a resourceVersion: applied to the racer's object
        store.rewrite_before_next_update(&key, |v: &[u8]| {
            let mut obj: Value = serde_json::from_slice(v).unwrap();
            obj["data"]["second"] = json!("racer");
            serde_json::to_vec(&obj).unwrap()
        });
        let patched = o
            .patch(
                cm,
                "default",
                "c",
                "application/merge-patch+json",
                &json!({"data": {"a": "4"}}),
                None,
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            patched["data"],
            json!({"a": "4", "racer": "was here", "second": "racer"})
        );
    }

    /// An object an earlier build stored with a value a later check refuses (written straight
    /// to storage here) can still be changed where the update leaves that value alone; an
    /// update that makes the value differently wrong is refused.
    #[tokio::test]
    async fn an_update_is_not_refused_for_what_the_stored_object_already_had() {
        let o = api().await;
        let cm = resources::find("", "v1", "configmaps").unwrap();
        o.store()
            .create(
                &cm.key("default", "old"),
                serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "old", "namespace": "default", "uid": "u-old",
                        "creationTimestamp": "2026-01-01T00:00:00Z",
                        "labels": {"-bad-": "x"}},
                    "data": {"k": "v"}}))
                .unwrap(),
            )
            .await
            .unwrap();
        let mut c = o.get(cm, "default", "old").await.unwrap();
        c["data"]["k"] = json!("changed");
        c["metadata"]["finalizers"] = json!(["example.com/f"]);
        let stored = o
            .update(cm, "default", "old", c.clone(), None, false)
            .await
            .unwrap();
        assert_eq!(stored["data"]["k"], "changed");
        c["metadata"]["labels"] = json!({"-bad-": "x", "-worse-": "y"});
        c["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
        let e = o
            .update(cm, "default", "old", c, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422, "{e:?}");
        // the labels changed: both keys are judged
        assert!(e.message.contains("\"-worse-\""), "{}", e.message);
        assert!(e.message.contains("\"-bad-\""), "{}", e.message);

        // a Deployment whose container inherits the pod's AppArmor profile while its
        // annotation names another (refused since the check came): the cause points at the
        // container's own profile, absent before and after, and a scale still goes through
        let deps = resources::find("apps", "v1", "deployments").unwrap();
        o.store()
            .create(
                &deps.key("default", "armored"),
                serde_json::to_vec(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "armored", "namespace": "default", "uid": "u-dep",
                        "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                        "template": {"metadata": {"labels": {"a": "b"}, "annotations": {
                            "container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
                            "spec": {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
                                "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}))
                .unwrap(),
            )
            .await
            .unwrap();
        let mut d = o.get(deps, "default", "armored").await.unwrap();
        d["spec"]["replicas"] = json!(3);
        let stored = o
            .update(deps, "default", "armored", d, None, false)
            .await
            .unwrap();
        assert_eq!(stored["spec"]["replicas"], 3);
    }

    /// A stored ServiceAccount that does not decode (written straight to storage) makes the pod
    /// create a Forbidden that names the account and the fix, as upstream's failed lookup,
    /// without quoting the stored value; nothing is stored.
    #[tokio::test]
    async fn an_undecodable_service_account_is_forbidden_not_an_internal_error() {
        let o = api().await;
        let sa = resources::find("", "v1", "serviceaccounts").unwrap();
        o.store()
            .create(
                &sa.key("default", "broken"),
                serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "broken", "namespace": "default"},
                    "imagePullSecrets": "hunter2-not-a-list"}))
                .unwrap(),
            )
            .await
            .unwrap();
        let e = o
            .create(
                pods(),
                "default",
                json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "broken",
                    "containers": [{"name": "c", "image": "busybox:1.36"}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 403, "{}", e.message);
        assert!(
            e.message.starts_with("pods \"p\" is forbidden: error looking up service account default/broken: the stored serviceaccount \"broken\" cannot be decoded (invalid type)"),
            "{}",
            e.message
        );
        assert!(e.message.contains("kubectl replace"), "{}", e.message);
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(o.get_opt(pods(), "default", "p").await.unwrap().is_none());
    }

    /// ServiceAccount admission on the typed Pod: the account's pull secrets, the API
    /// credentials in init and app containers, the account names, status; ephemeral containers
    /// cannot be set on create (`ValidatePodCreate`).
    #[tokio::test]
    async fn pods_are_admitted_as_typed_objects() {
        let o = api().await;
        let sa = resources::find("", "v1", "serviceaccounts").unwrap();
        o.create(
            sa,
            "default",
            json!({"metadata": {"name": "bot"}, "imagePullSecrets": [{"name": "regcred"}]}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
        let pod = o
            .create(
                pods(),
                "default",
                json!({"metadata": {"generateName": "web-"}, "spec": {"serviceAccount": "bot",
                    "initContainers": [{"name": "i", "image": "busybox:1.36"}],
                    "containers": [{"name": "c", "image": "busybox:1.36"},
                        {"name": "own", "image": "busybox:1.36", "volumeMounts": [
                            {"name": "mine", "mountPath": API_TOKEN_MOUNT_PATH}]}],
                    "volumes": [{"name": "mine", "emptyDir": {}}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        let e = o
            .create(
                pods(),
                "default",
                json!({"metadata": {"name": "dbg"}, "spec": {"serviceAccount": "bot",
                    "containers": [{"name": "c", "image": "busybox:1.36"}],
                    "ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36"}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "Pod \"dbg\" is invalid: spec.ephemeralContainers: Forbidden: cannot be set on create"
        );
        assert!(o.get_opt(pods(), "default", "dbg").await.unwrap().is_none());
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(pod["metadata"]["namespace"], "default");
        assert_eq!(pod["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert!(pod["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
        let spec = &pod["spec"];
        assert_eq!(spec["serviceAccountName"], "bot");
        assert_eq!(spec["serviceAccount"], "bot");
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
        let vol = &spec["volumes"][1];
        let vname = vol["name"].as_str().unwrap();
        assert!(vname.starts_with("kube-api-access-"), "{vol}");
        assert_eq!(
            vol["projected"],
            json!({"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]})
        );
        let mount = json!([{"name": vname, "readOnly": true, "mountPath": API_TOKEN_MOUNT_PATH}]);
        assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
        assert_eq!(spec["containers"][0]["volumeMounts"], mount);
        assert_eq!(
            spec["containers"][1]["volumeMounts"],
            json!([{"name": "mine", "mountPath": API_TOKEN_MOUNT_PATH}])
        );
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        // stored as answered
        let stored = o.get(pods(), "default", name).await.unwrap();
        assert_eq!(stored, pod);

        // the pod's own pull secrets and opt-out are kept
        let pod = o
            .create(
                pods(),
                "default",
                json!({"metadata": {"name": "quiet"}, "spec": {"serviceAccountName": "bot",
                    "automountServiceAccountToken": false, "imagePullSecrets": [{"name": "own"}],
                    "containers": [{"name": "c", "image": "busybox:1.36"}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "own"}]));
        assert!(pod["spec"].get("volumes").is_none(), "{pod}");
        assert!(pod["spec"]["containers"][0].get("volumeMounts").is_none());
    }

    /// Bodies that are not pods are refused before admission (400, not the missing account's
    /// 403); a pod without a spec or with null containers is invalid (422), not a crash.
    #[tokio::test]
    async fn pods_that_do_not_decode_or_have_no_containers() {
        let o = api().await;
        let nsr = resources::find("", "v1", "namespaces").unwrap();
        o.create(
            nsr,
            "",
            json!({"metadata": {"name": "t"}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
        let sa = resources::find("", "v1", "serviceaccounts").unwrap();
        o.delete(sa, "t", "default", &DeleteOptions::default())
            .await
            .unwrap();
        let e = o
            .create(
                pods(),
                "t",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": 5}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Pod in version \"v1\" cannot be handled as a Pod: invalid type: integer `5`, expected a string"
        );
        let e = o
            .create(
                pods(),
                "t",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(e.message, "pods \"p\" is forbidden: error looking up service account t/default: serviceaccount \"default\" not found");
        for body in [
            json!({"metadata": {"name": "nospec"}}),
            json!({"metadata": {"name": "null"}, "spec": {"containers": null}}),
        ] {
            let e = o
                .create(pods(), "default", body, &User::Admin, false)
                .await
                .unwrap_err();
            assert_eq!(e.code, 422, "{e:?}");
            assert!(format!("{e:?}").contains("spec.containers"), "{e:?}");
        }
    }

    #[test]
    fn a_token_volume_already_there_is_reused() {
        let mut spec: core::PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": "kube-api-access-abcde", "emptyDir": {}}]}))
        .unwrap();
        mount_service_account_token(&mut spec);
        let spec = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            spec["volumes"],
            json!([{"name": "kube-api-access-abcde", "emptyDir": {}}])
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([{"name": "kube-api-access-abcde", "readOnly": true, "mountPath": API_TOKEN_MOUNT_PATH}])
        );
        // nothing to mount into: no volume
        let mut spec = core::PodSpec::default();
        mount_service_account_token(&mut spec);
        assert_eq!(spec, core::PodSpec::default());
    }

    /// A stricter enforce level on a namespace is tried on its pods' metadata and spec: a pod
    /// whose stored status does not decode (a status update is stored without a type check) is
    /// still judged, and named in the warnings.
    #[tokio::test]
    async fn a_new_enforce_level_judges_pods_by_metadata_and_spec() {
        let o = api().await;
        let nsr = resources::find("", "v1", "namespaces").unwrap();
        o.create(
            nsr,
            "",
            json!({"metadata": {"name": "w"}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
        o.create(
            pods(),
            "w",
            json!({"metadata": {"name": "root"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
        let status = json!({"metadata": {"name": "root"}, "status": {"phase": 5}});
        let p = o
            .update(pods(), "w", "root", status, Some("status"), false)
            .await
            .unwrap();
        assert_eq!(p["status"]["phase"], 5);
        assert!(
            serde_json::from_value::<core::Pod>(p).is_err(),
            "not a whole Pod"
        );
        let mut ns = o.get(nsr, "", "w").await.unwrap();
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = json!("restricted");
        let (r, warnings) = crate::warnings::collect(o.update(nsr, "", "w", ns, None, false)).await;
        r.unwrap();
        assert_eq!(
            warnings,
            [
                "existing pods in namespace \"w\" violate the new PodSecurity enforce level \"restricted:latest\"",
                "root: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
            ]
        );
    }

    /// A plain update may not set `spec.nodeName` (`ValidatePodUpdate`); the binding's write
    /// does. With privileged containers disallowed (`--allow-privileged=false`) a Pod with one
    /// is refused, on create and on update; allowed by default.
    #[tokio::test]
    async fn pod_updates_binding_and_the_privileged_policy() {
        // Pod Security would refuse the privileged pods itself
        let o = api()
            .await
            .with_pod_security(podsecurity::Level::Privileged);
        let pod = |name: &str, privileged: bool| {
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x:1",
                "securityContext": {"privileged": privileged}}]}})
        };
        o.create(pods(), "default", pod("p", false), &User::Admin, false)
            .await
            .unwrap();
        let mut p = o.get(pods(), "default", "p").await.unwrap();
        p["spec"]["nodeName"] = json!("n1");
        let e = o
            .update(pods(), "default", "p", p.clone(), None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422, "{e:?}");
        assert!(
            e.message.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than"),
            "{}",
            e.message
        );
        // the binding writes spec.nodeName and adds its annotations, whatever else its body
        // holds; a resourceVersion or UID it carries is a precondition
        let mut body = p.clone();
        body["metadata"]["labels"] = json!({"sneaked": "in"});
        body["metadata"]["annotations"] = json!({"example.com/bound-by": "test"});
        body["spec"]["containers"][0]["image"] = json!("other:2");
        body["metadata"]["resourceVersion"] = json!("1");
        let e = o
            .update(pods(), "default", "p", body.clone(), Some("binding"), false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 409, "a stale resourceVersion: {e:?}");
        body["metadata"]["resourceVersion"] = json!("");
        body["metadata"]["uid"] = json!("another-pod");
        let e = o
            .update(pods(), "default", "p", body.clone(), Some("binding"), false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 409, "another pod's UID: {e:?}");
        body["metadata"]["uid"] = p["metadata"]["uid"].clone();
        let bound = o
            .update(pods(), "default", "p", body.clone(), Some("binding"), false)
            .await
            .unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert!(
            bound["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
            "{bound}"
        );
        assert_eq!(bound["metadata"].get("labels"), None);
        assert_eq!(
            bound["metadata"]["annotations"]["example.com/bound-by"],
            "test"
        );
        assert_eq!(bound["spec"]["containers"][0]["image"], "x:1");
        // a pod already bound is refused as BindingREST refuses it: 409 on pods/binding
        body["spec"]["nodeName"] = json!("n2");
        let e = o
            .update(pods(), "default", "p", body, Some("binding"), false)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                409,
                "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\""
            )
        );
        assert_eq!(e.details.as_ref().unwrap()["kind"], "pods/binding");
        let strict = o.clone().with_allow_privileged(false);
        let refused = "Pod \"q\" is invalid: spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy";
        let e = strict
            .create(pods(), "default", pod("q", true), &User::Admin, false)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (422, refused));
        o.create(pods(), "default", pod("q", true), &User::Admin, false)
            .await
            .unwrap();
        let q = o.get(pods(), "default", "q").await.unwrap();
        let e = strict
            .update(pods(), "default", "q", q.clone(), None, false)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (422, refused));
        o.update(pods(), "default", "q", q, None, false)
            .await
            .unwrap();
    }

    /// Pod updates are judged only when significant (`isSignificantPodUpdate`): a label change
    /// of a pod that violates the namespace's level goes through, a new image is refused.
    #[tokio::test]
    async fn only_significant_pod_updates_are_judged() {
        let o = api().await;
        let nsr = resources::find("", "v1", "namespaces").unwrap();
        o.create(
            nsr,
            "",
            json!({"metadata": {"name": "s"}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
        o.create(
            pods(),
            "s",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
        let mut ns = o.get(nsr, "", "s").await.unwrap();
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = json!("restricted");
        let (r, _) = crate::warnings::collect(o.update(nsr, "", "s", ns, None, false)).await;
        r.unwrap();
        let mut p = o.get(pods(), "s", "p").await.unwrap();
        p["metadata"]["labels"] = json!({"a": "b"});
        let p = o.update(pods(), "s", "p", p, None, false).await.unwrap();
        assert_eq!(p["metadata"]["labels"], json!({"a": "b"}));
        // a seccomp annotation is significant with the spec unchanged
        let mut a = p.clone();
        a["metadata"]["annotations"] =
            json!({"container.seccomp.security.alpha.kubernetes.io/c": "unconfined"});
        let e = o
            .update(pods(), "s", "p", a, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 403, "{e:?}");
        let mut p = p;
        p["spec"]["containers"][0]["image"] = json!("x:2");
        let e = o
            .update(pods(), "s", "p", p, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 403, "{e:?}");
        assert!(
            e.message.starts_with("pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
            "{}",
            e.message
        );
    }

    /// A resourceVersion of "0" is no precondition (`Store.Update` reads it as unset): the
    /// update is unconditional for a built-in kind; a stale one is still a conflict, also when
    /// a JSON Patch or a merge patch sets it.
    #[tokio::test]
    async fn an_update_with_resource_version_zero_is_unconditional() {
        let o = api().await;
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let c = o
            .create(
                cm,
                "default",
                json!({"metadata": {"name": "z"}, "data": {"k": "1"}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        let mut next = c.clone();
        next["data"]["k"] = json!("2");
        let v = o
            .update(cm, "default", "z", next, None, false)
            .await
            .unwrap();
        let mut zero = v.clone();
        zero["metadata"]["resourceVersion"] = json!("0");
        zero["data"]["k"] = json!("3");
        let v = o
            .update(cm, "default", "z", zero, None, false)
            .await
            .unwrap();
        assert_eq!(v["data"]["k"], "3");
        let mut stale = c.clone();
        stale["data"]["k"] = json!("4");
        let e = o
            .update(cm, "default", "z", stale, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 409, "{}", e.message);
        // a JSON Patch replacing the resourceVersion makes it a precondition, as a merge
        // patch's field does: a stale one is a conflict, the current one applies
        let old_rv = c["metadata"]["resourceVersion"].clone();
        for (ct, body) in [
            (
                "application/json-patch+json",
                json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": old_rv},
                    {"op": "replace", "path": "/data/k", "value": "5"}]),
            ),
            (
                "application/merge-patch+json",
                json!({"metadata": {"resourceVersion": old_rv}, "data": {"k": "5"}}),
            ),
        ] {
            let e = o
                .patch(cm, "default", "z", ct, &body, None, false)
                .await
                .unwrap_err();
            assert_eq!(e.code, 409, "{ct}: {}", e.message);
        }
        let now = v["metadata"]["resourceVersion"].clone();
        let v = o
            .patch(
                cm,
                "default",
                "z",
                "application/json-patch+json",
                &json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": now},
                    {"op": "replace", "path": "/data/k", "value": "6"}]),
                None,
                false,
            )
            .await
            .unwrap();
        assert_eq!(v["data"]["k"], "6");
    }

    /// Jobs, CronJobs and webhook configurations keep a generation as their strategies do: 1
    /// on create, one more for each update that changes their spec (their webhooks), none for
    /// a change of metadata alone.
    #[tokio::test]
    async fn jobs_cronjobs_and_webhook_configurations_count_their_generation() {
        let o = api().await;
        let jobs = resources::find("batch", "v1", "jobs").unwrap();
        let job = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 1, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}});
        let j = o
            .create(jobs, "default", job, &User::Admin, false)
            .await
            .unwrap();
        assert_eq!(j["metadata"]["generation"], 1, "{j}");
        let mut j2 = j.clone();
        j2["metadata"]["labels"]["team"] = json!("a");
        // the selector is generated on create only (PrepareForCreate): an update without it
        // is refused, not given it back
        let mut dropped = j2.clone();
        dropped["spec"].as_object_mut().unwrap().remove("selector");
        let e = o
            .update(jobs, "default", "j", dropped, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422, "{}", e.message);
        assert!(
            e.message.contains("spec.selector: Required value"),
            "{}",
            e.message
        );
        let j2 = o
            .update(jobs, "default", "j", j2, None, false)
            .await
            .unwrap();
        assert_eq!(j2["metadata"]["generation"], 1, "labels alone: {j2}");
        let mut j3 = j2.clone();
        j3["spec"]["parallelism"] = json!(2);
        let j3 = o
            .update(jobs, "default", "j", j3, None, false)
            .await
            .unwrap();
        assert_eq!(j3["metadata"]["generation"], 2, "{j3}");

        let cronjobs = resources::find("batch", "v1", "cronjobs").unwrap();
        let cj = json!({"metadata": {"name": "cj"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}});
        let cj = o
            .create(cronjobs, "default", cj, &User::Admin, false)
            .await
            .unwrap();
        assert_eq!(cj["metadata"]["generation"], 1, "{cj}");
        let mut cj2 = cj.clone();
        cj2["spec"]["suspend"] = json!(true);
        let cj2 = o
            .update(cronjobs, "default", "cj", cj2, None, false)
            .await
            .unwrap();
        assert_eq!(cj2["metadata"]["generation"], 2, "{cj2}");

        let vwc = resources::find(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
        )
        .unwrap();
        let hook = |name: &str| {
            json!({"name": name, "clientConfig": {"url": "https://127.0.0.1:9/x"},
            "sideEffects": "None", "admissionReviewVersions": ["v1"]})
        };
        let w = json!({"metadata": {"name": "w"}, "webhooks": [hook("a.example.com")]});
        let w = o.create(vwc, "", w, &User::Admin, false).await.unwrap();
        assert_eq!(w["metadata"]["generation"], 1, "{w}");
        let mut w2 = w.clone();
        w2["webhooks"] = json!([hook("a.example.com"), hook("b.example.com")]);
        let w2 = o.update(vwc, "", "w", w2, None, false).await.unwrap();
        assert_eq!(w2["metadata"]["generation"], 2, "{w2}");
        // a ConfigMap has none
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let c = o
            .create(
                cm,
                "default",
                json!({"metadata": {"name": "c"}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        assert!(c["metadata"].get("generation").is_none(), "{c}");
    }

    /// An empty pull secret name is stored (the kubelet skips it) with upstream's warning, for
    /// a Pod and a Deployment's template; a workload update that leaves the template as it was
    /// warns about nothing; an invalid pod gets no warnings, only its causes.
    #[tokio::test]
    async fn empty_pull_secret_names_are_stored_with_a_warning() {
        let o = api().await;
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}],
            "imagePullSecrets": [{"name": ""}]}});
        let (r, warnings) =
            crate::warnings::collect(o.create(pods(), "default", pod.clone(), &User::Admin, false))
                .await;
        let stored = r.unwrap();
        assert_eq!(stored["spec"]["imagePullSecrets"], json!([{"name": ""}]));
        assert_eq!(
            warnings,
            ["spec.imagePullSecrets[0].name: invalid empty name \"\""]
        );
        let mut bad = pod.clone();
        bad["metadata"]["name"] = json!("bad");
        bad["spec"]["containers"][0]["image"] = json!("");
        let (r, warnings) =
            crate::warnings::collect(o.create(pods(), "default", bad, &User::Admin, false)).await;
        assert_eq!(r.unwrap_err().code, 422);
        assert!(warnings.is_empty(), "{warnings:?}");

        let deployments = resources::find("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": pod["spec"].clone()}}});
        let (r, warnings) =
            crate::warnings::collect(o.create(deployments, "default", d, &User::Admin, false))
                .await;
        let mut d = r.unwrap();
        assert_eq!(
            warnings,
            ["spec.template.spec.imagePullSecrets[0].name: invalid empty name \"\""]
        );
        // any change of the spec bumps the generation, and the warnings come again
        // (WarningsOnUpdate compares generations); an update of the labels alone does not
        d["spec"]["replicas"] = json!(3);
        let (r, warnings) =
            crate::warnings::collect(o.update(deployments, "default", "d", d, None, false)).await;
        let mut d = r.unwrap();
        assert_eq!(
            warnings,
            ["spec.template.spec.imagePullSecrets[0].name: invalid empty name \"\""]
        );
        d["metadata"]["labels"] = json!({"team": "a"});
        let (r, warnings) =
            crate::warnings::collect(o.update(deployments, "default", "d", d, None, false)).await;
        let mut d = r.unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y");
        let (r, warnings) =
            crate::warnings::collect(o.update(deployments, "default", "d", d, None, false)).await;
        r.unwrap();
        assert_eq!(
            warnings,
            ["spec.template.spec.imagePullSecrets[0].name: invalid empty name \"\""]
        );
    }

    /// The node authorizer's Secret edges cover every volume source `VisitPodSecretNames`
    /// visits, and init containers' env; a stored pod is read through its typed spec; an
    /// empty name is never a reference.
    #[test]
    fn pod_references_follow_every_secret_volume_source() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "x"}],
            "initContainers": [{"name": "i", "image": "x", "envFrom": [{"configMapRef": {"name": "c-init"}}],
                "env": [{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "c-env", "key": "k"}}}]}],
            "imagePullSecrets": [{"name": ""}],
            "volumes": [
                {"name": "a", "azureFile": {"secretName": "s-azure", "shareName": "x"}},
                {"name": "b", "cephfs": {"monitors": ["m"], "secretRef": {"name": "s-ceph"}}},
                {"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s-csi"}}},
                {"name": "d", "rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": "s-rbd"}}},
                {"name": "e", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0, "secretRef": {"name": "s-iscsi"}}},
                {"name": "f", "flexVolume": {"driver": "d", "secretRef": {"name": "s-flex"}}},
                {"name": "g", "configMap": {"name": "c-vol"}}]}});
        for s in ["s-azure", "s-ceph", "s-csi", "s-rbd", "s-iscsi", "s-flex"] {
            assert!(stored_pod_references(&pod, "Secret", s), "{s}");
            assert!(!stored_pod_references(&pod, "ConfigMap", s), "{s}");
        }
        for c in ["c-init", "c-env", "c-vol"] {
            assert!(stored_pod_references(&pod, "ConfigMap", c), "{c}");
            assert!(!stored_pod_references(&pod, "Secret", c), "{c}");
        }
        assert!(!stored_pod_references(&pod, "Secret", ""));
        assert!(!stored_pod_references(&pod, "ServiceAccount", ""));
        // a spec that does not decode names nothing
        let corrupt = json!({"spec": {"containers": "x", "serviceAccountName": "bot"}});
        assert!(!stored_pod_references(&corrupt, "ServiceAccount", "bot"));
    }

    fn lease(name: &str) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name}, "spec": {"holderIdentity": "a"}})
    }

    /// A PUT of a missing object creates it where the kind's strategy allows it
    /// (`AllowCreateOnUpdate`): a new object's metadata (uid, creationTimestamp, the body's
    /// resourceVersion dropped, as the storage's create drops it), readable after; a second PUT
    /// is an update. Other kinds, status updates and patches still answer 404; a UID in the body
    /// is a precondition the missing object fails (409) before that.
    #[tokio::test]
    async fn a_put_of_a_missing_object_creates_it_where_the_kind_allows() {
        let o = api().await;
        let leases = resources::find("coordination.k8s.io", "v1", "leases").unwrap();
        let mut body = lease("l");
        body["metadata"]["resourceVersion"] = json!("12345");
        body["metadata"]["creationTimestamp"] = json!("2001-01-01T00:00:00Z");
        let (made, created) = o
            .update_by(&User::Admin, leases, "default", "l", body, None, false)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(made["spec"]["holderIdentity"], "a");
        assert_eq!(made["metadata"]["namespace"], "default");
        assert_ne!(made["metadata"]["resourceVersion"], "12345");
        assert_ne!(
            made["metadata"]["creationTimestamp"],
            "2001-01-01T00:00:00Z"
        );
        assert_eq!(
            made["metadata"]["uid"].as_str().map(str::len),
            Some(36),
            "{made}"
        );
        assert_eq!(o.get(leases, "default", "l").await.unwrap(), made);
        let mut next = made.clone();
        next["spec"]["holderIdentity"] = json!("b");
        let (updated, created) = o
            .update_by(&User::Admin, leases, "default", "l", next, None, false)
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(updated["spec"]["holderIdentity"], "b");
        assert_eq!(updated["metadata"]["uid"], made["metadata"]["uid"]);

        // the create's validation, as a POST's
        let e = o
            .update_by(
                &User::Admin,
                leases,
                "default",
                "Bad",
                lease("Bad"),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 422, "{}", e.message);
        assert!(
            e.message.contains("metadata.name: Invalid value: \"Bad\""),
            "{}",
            e.message
        );
        assert!(o.get_opt(leases, "default", "Bad").await.unwrap().is_none());

        // RBAC kinds and Endpoints
        let roles = resources::find("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        let role = json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""],
            "resources": ["configmaps"], "verbs": ["get"]}]});
        let (made, created) = o
            .update_by(&User::Admin, roles, "default", "r", role, None, false)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(o.get(roles, "default", "r").await.unwrap(), made);
        let crs = resources::find("rbac.authorization.k8s.io", "v1", "clusterroles").unwrap();
        let (made, created) = o
            .update_by(
                &User::Admin,
                crs,
                "",
                "cr",
                json!({"metadata": {"name": "cr"}}),
                None,
                false,
            )
            .await
            .unwrap();
        assert!(created);
        assert!(made["metadata"].get("namespace").is_none(), "{made}");
        let eps = resources::find("", "v1", "endpoints").unwrap();
        let (_, created) = o
            .update_by(
                &User::Admin,
                eps,
                "default",
                "e",
                json!({"metadata": {"name": "e"}}),
                None,
                false,
            )
            .await
            .unwrap();
        assert!(created);

        // kinds that do not create on update
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let e = o
            .update(
                cm,
                "default",
                "c",
                json!({"metadata": {"name": "c"}}),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (404, "configmaps \"c\" not found")
        );
        let pod = json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let e = o
            .update(pods(), "default", "p", pod, None, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 404, "{}", e.message);
        let nsr = resources::find("", "v1", "namespaces").unwrap();
        let e = o
            .update(
                nsr,
                "",
                "gone",
                json!({"metadata": {"name": "gone"}}),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 404, "{}", e.message);
        // nor through a status update, nor a patch
        let e = o
            .update(leases, "default", "s", lease("s"), Some("status"), false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 404, "{}", e.message);
        let e = o
            .patch(
                leases,
                "default",
                "p",
                "application/merge-patch+json",
                &json!({"spec": {"holderIdentity": "x"}}),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 404, "{}", e.message);
        assert!(o.get_opt(leases, "default", "p").await.unwrap().is_none());

        // a UID in the body: the storage's precondition, on any kind
        for (r, name, body) in [
            (cm, "c", json!({"metadata": {"name": "c", "uid": "u-1"}})),
            (
                leases,
                "u",
                json!({"metadata": {"name": "u", "uid": "u-1"}}),
            ),
        ] {
            let e = o
                .update(r, "default", name, body, None, false)
                .await
                .unwrap_err();
            assert_eq!(e.code, 409, "{}", e.message);
            assert_eq!(
                e.message,
                format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: u-1, UID in object meta: ", r.qualified())
            );
            assert!(o.get_opt(r, "default", name).await.unwrap().is_none());
        }
    }

    /// A create on update that loses to another writer's create is tried again as an update of
    /// that object (`GuaranteedUpdate`): without a resourceVersion the body replaces it (not
    /// created, the racer's uid kept), with one it gets the 409 of the comparison.
    #[tokio::test]
    async fn a_create_on_update_raced_by_a_create_updates_what_the_racer_made() {
        let store = Arc::new(crate::teststore::TestStore::default());
        let o = Objects::new(store.clone());
        o.bootstrap().await.unwrap();
        let leases = resources::find("coordination.k8s.io", "v1", "leases").unwrap();
        let racer = |name: &str| {
            let mut v = lease(name);
            v["metadata"]["namespace"] = json!("default");
            v["metadata"]["uid"] = json!("racer-uid");
            v["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            v["spec"]["holderIdentity"] = json!("racer");
            serde_json::to_vec(&v).unwrap()
        };
        store.create_before_next_create(&leases.key("default", "l"), racer("l"));
        let (done, created) = o
            .update_by(
                &User::Admin,
                leases,
                "default",
                "l",
                lease("l"),
                None,
                false,
            )
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(done["spec"]["holderIdentity"], "a");
        assert_eq!(done["metadata"]["uid"], "racer-uid");
        assert_eq!(o.get(leases, "default", "l").await.unwrap(), done);

        store.create_before_next_create(&leases.key("default", "m"), racer("m"));
        let mut body = lease("m");
        body["metadata"]["resourceVersion"] = json!("1");
        let e = o
            .update_by(&User::Admin, leases, "default", "m", body, None, false)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"), "{}", e.message);
        let now = o.get(leases, "default", "m").await.unwrap();
        assert_eq!(now["spec"]["holderIdentity"], "racer");
    }

    /// The create an update becomes is authorized as verb `create` (`withAuthorization`): a
    /// user RBAC allows to update Leases but not to create them gets the 403 with the
    /// authorizer's (empty) reason and nothing is stored; one also allowed to create them
    /// creates it.
    #[tokio::test]
    async fn a_create_on_update_needs_the_create_verb() {
        let o = api().await;
        let roles = resources::find("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        let rbs = resources::find("rbac.authorization.k8s.io", "v1", "rolebindings").unwrap();
        for (name, verbs) in [
            ("updater", json!(["get", "update"])),
            ("writer", json!(["update", "create"])),
        ] {
            o.create(
                roles,
                "default",
                json!({"metadata": {"name": name}, "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": verbs}]}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
            o.create(rbs, "default", json!({"metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}]}),
                &User::Admin, false).await.unwrap();
        }
        let user = |name: &str| {
            User::Other(Arc::new(crate::auth::UserInfo {
                name: name.into(),
                uid: String::new(),
                groups: vec!["system:authenticated".into()],
                extra: Default::default(),
            }))
        };
        let leases = resources::find("coordination.k8s.io", "v1", "leases").unwrap();
        let e = o
            .update_by(
                &user("updater"),
                leases,
                "default",
                "l",
                lease("l"),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(e.message, "leases.coordination.k8s.io \"l\" is forbidden: ");
        assert_eq!(
            e.details,
            Some(json!({"name": "l", "group": "coordination.k8s.io", "kind": "leases"}))
        );
        assert!(o.get_opt(leases, "default", "l").await.unwrap().is_none());
        let (_, created) = o
            .update_by(
                &user("writer"),
                leases,
                "default",
                "l",
                lease("l"),
                None,
                false,
            )
            .await
            .unwrap();
        assert!(created);
        // the object there, the update needs no create
        let (_, created) = o
            .update_by(
                &user("updater"),
                leases,
                "default",
                "l",
                lease("l"),
                None,
                false,
            )
            .await
            .unwrap();
        assert!(!created);
    }

    /// An update's object names itself (`checkName`): an empty or missing name is a 400, not
    /// the URL's name filled in; so is a patch that removes it.
    #[tokio::test]
    async fn an_update_without_a_name_is_refused() {
        let o = api().await;
        let cm = resources::find("", "v1", "configmaps").unwrap();
        o.create(
            cm,
            "default",
            json!({"metadata": {"name": "c"}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
        let leases = resources::find("coordination.k8s.io", "v1", "leases").unwrap();
        let want =
            "the name of the object (c based on URL) was undeterminable: name must be provided";
        for body in [
            json!({"data": {"a": "1"}}),
            json!({"metadata": {"name": ""}}),
        ] {
            for r in [cm, leases] {
                let e = o
                    .update(r, "default", "c", body.clone(), None, false)
                    .await
                    .unwrap_err();
                assert_eq!((e.code, e.message.as_str()), (400, want));
            }
        }
        let e = o
            .patch(
                cm,
                "default",
                "c",
                "application/json-patch+json",
                &json!([{"op": "remove", "path": "/metadata/name"}]),
                None,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, want));
        assert!(o.get_opt(leases, "default", "c").await.unwrap().is_none());
    }
}
