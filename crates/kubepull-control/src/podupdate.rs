//! What an update may change of a Pod, as kube-apiserver 1.32 validates it
//! (kubernetes `pkg/apis/core/validation/validation.go`): `ValidatePodUpdate` for the spec
//! (`ValidateContainerUpdates`, `activeDeadlineSeconds`, `validateOnlyAddedTolerations`,
//! `validateOnlyDeletedSchedulingGates`, the narrowing of a scheduling-gated pod's
//! `nodeSelector` and node affinity, and the munged deep-equal comparison of the rest),
//! `ValidatePodStatusUpdate` for the status, and `ValidatePodSpecificAnnotationUpdates` for
//! both. The new spec has been validated as a whole before ([`crate::admission`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use serde::Deserialize as _;
use serde_json::{json, Value};

use crate::errors::Cause;

/// `updatablePodSpecFieldsNoResources` (1.32, `InPlacePodVerticalScaling` off), joined as the
/// Forbidden message lists them.
pub(crate) const UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `core.MirrorPodAnnotationKey`.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
use crate::defaults::APPARMOR_PREFIX;

/// The spec of a stored Pod (`old`), typed. The store only holds specs that decoded when they
/// were written; one that does not decode now is reported, not guessed at.
fn stored_spec(old: &Value) -> Result<core::PodSpec, Cause> {
    core::PodSpec::deserialize(old.get("spec").unwrap_or(&json!({})))
        .map_err(|_| Cause::forbidden("spec", "the stored pod spec cannot be read"))
}

/// The checks of `ValidatePodUpdate` that follow `validatePodMetadataAndSpec`, for the new
/// object `obj` (its spec decoded as `new`) over the stored `old`.
pub(crate) fn validate_pod_update(new: &core::PodSpec, obj: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = annotation_updates(obj, old);
    match stored_spec(old) {
        Ok(old) => spec_update(new, &old, &mut causes),
        Err(c) => causes.push(c),
    }
    causes
}

/// `ValidatePodSpecificAnnotationUpdates`: AppArmor annotations and the mirror-pod annotation
/// may be neither added, removed nor changed.
fn annotation_updates(obj: &Value, old: &Value) -> Vec<Cause> {
    let empty = serde_json::Map::new();
    let annotations = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (new, old) = (annotations(obj), annotations(old));
    // the protected annotations, each with the noun upstream's messages use
    let protected = |k: &str| {
        [
            (k.starts_with(APPARMOR_PREFIX), "AppArmor annotations"),
            (k == MIRROR_POD_ANNOTATION, "mirror pod annotation"),
        ]
        .into_iter()
        .filter_map(|(hit, what)| hit.then_some(what))
    };
    let mut causes = vec![];
    let path = |k: &str| format!("metadata.annotations[{k}]");
    for k in old.keys().filter(|k| new.get(*k) != old.get(*k)) {
        for what in protected(k) {
            causes.push(Cause::forbidden(
                path(k),
                format!("may not remove or update {what}"),
            ));
        }
    }
    for k in new.keys().filter(|k| !old.contains_key(*k)) {
        for what in protected(k) {
            causes.push(Cause::forbidden(path(k), format!("may not add {what}")));
        }
    }
    causes
}

/// `ValidateContainerUpdates`: the same number of containers (else nothing more is checked:
/// `true`), each with a non-empty image without surrounding whitespace.
fn container_updates(
    new: &[core::Container],
    old: &[core::Container],
    path: &str,
    causes: &mut Vec<Cause>,
) -> bool {
    if new.len() != old.len() {
        causes.push(Cause::forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return true;
    }
    for (i, c) in new.iter().enumerate() {
        let image = c.image.as_deref().unwrap_or("");
        if image.is_empty() {
            causes.push(Cause::required(format!("{path}[{i}].image"), ""));
        }
        if image.trim().len() != image.len() {
            causes.push(Cause::invalid(
                format!("{path}[{i}].image"),
                format!("{image:?}"),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    false
}

/// `ValidatePodUpdate`'s spec checks, in its order.
fn spec_update(new: &core::PodSpec, old: &core::PodSpec, causes: &mut Vec<Cause>) {
    let init = |s: &core::PodSpec| s.init_containers.clone().unwrap_or_default();
    if container_updates(&new.containers, &old.containers, "spec.containers", causes)
        || container_updates(&init(new), &init(old), "spec.initContainers", causes)
    {
        return;
    }
    // activeDeadlineSeconds: set where it was not, or lowered; never raised nor removed
    match (new.active_deadline_seconds, old.active_deadline_seconds) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            causes.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                n.to_string(),
                "must be between 0 and 2147483647, inclusive",
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            causes.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                n.to_string(),
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => causes.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            "\"null\"",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    only_added_tolerations(
        new.tolerations.as_deref().unwrap_or_default(),
        old.tolerations.as_deref().unwrap_or_default(),
        causes,
    );
    only_deleted_scheduling_gates(
        new.scheduling_gates.as_deref().unwrap_or_default(),
        old.scheduling_gates.as_deref().unwrap_or_default(),
        causes,
    );
    if same_spec(new, old) {
        return;
    }
    // the updatable fields are taken from the old spec; what differs then is forbidden
    let mut munged = new.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old.containers) {
        c.image.clone_from(&o.image);
    }
    if let Some(cs) = &mut munged.init_containers {
        for (c, o) in cs.iter_mut().zip(old.init_containers.iter().flatten()) {
            c.image.clone_from(&o.image);
        }
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.scheduling_gates.clone_from(&old.scheduling_gates);
    munged.tolerations.clone_from(&old.tolerations);
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    // a pod still gated may have its scheduling narrowed
    if old.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()) {
        if !semantic_eq(&munged.node_selector, &old.node_selector) {
            node_selector_mutation(
                munged.node_selector.as_ref(),
                old.node_selector.as_ref(),
                causes,
            );
            munged.node_selector.clone_from(&old.node_selector);
        }
        let old_na = old.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        let new_na = munged
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        if !semantic_eq(&old_na, &new_na) {
            node_affinity_mutation(new_na, old_na, causes);
            match &mut munged.affinity {
                None if old_na.is_none() => {}
                None => {
                    munged.affinity = Some(core::Affinity {
                        node_affinity: old_na.cloned(),
                        ..Default::default()
                    })
                }
                Some(a)
                    if old.affinity.is_none()
                        && a.pod_affinity.is_none()
                        && a.pod_anti_affinity.is_none() =>
                {
                    munged.affinity = None
                }
                Some(a) => a.node_affinity = old_na.cloned(),
            }
        }
    }
    if !same_spec(&munged, old) {
        causes.push(Cause::forbidden(
            "spec",
            format!("pod updates may not change fields other than {UPDATABLE_FIELDS}"),
        ));
    }
}

/// `validateOnlyAddedTolerations`: every old toleration is still there, only its
/// `tolerationSeconds` may change (one error at most); then `ValidateTolerations` of the new
/// list.
fn only_added_tolerations(
    new: &[core::Toleration],
    old: &[core::Toleration],
    causes: &mut Vec<Cause>,
) {
    // Go's strings: absent and empty are one value
    let fields = |t: &core::Toleration| {
        [&t.key, &t.operator, &t.value, &t.effect].map(|f| f.as_deref().unwrap_or("").to_string())
    };
    let kept = old
        .iter()
        .all(|o| new.iter().any(|n| fields(n) == fields(o)));
    if !kept {
        causes.push(Cause::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
        return;
    }
    crate::admission::validate_tolerations(new, "spec.tolerations", causes);
}

/// `validateOnlyDeletedSchedulingGates`: no gate the old spec did not have.
fn only_deleted_scheduling_gates(
    new: &[core::PodSchedulingGate],
    old: &[core::PodSchedulingGate],
    causes: &mut Vec<Cause>,
) {
    // upstream walks a map (in no order) of the new gates' last indexes
    let mut added: BTreeMap<usize, &str> = BTreeMap::new();
    for (i, g) in new.iter().enumerate() {
        if old.iter().all(|o| o.name != g.name) {
            added.retain(|_, n| *n != g.name);
            added.insert(i, &g.name);
        }
    }
    for (i, name) in added {
        causes.push(Cause::forbidden(
            format!("spec.schedulingGates[{i}].name"),
            format!("only deletion is allowed, but found new scheduling gate '{name}'"),
        ));
    }
}

/// `validateNodeSelectorMutation`: a gated pod's `nodeSelector` keeps every old entry.
fn node_selector_mutation(
    new: Option<&BTreeMap<String, String>>,
    old: Option<&BTreeMap<String, String>>,
    causes: &mut Vec<Cause>,
) {
    let kept = old
        .into_iter()
        .flatten()
        .all(|(k, v)| new.and_then(|n| n.get(k)) == Some(v));
    if !kept {
        causes.push(Cause::invalid(
            "spec.nodeSelector",
            go_string_map(new),
            "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
        ));
    }
}

/// `validateNodeAffinityMutation`: without old required terms anything may be set; with them
/// the terms stay as many, and each only gains requirements.
fn node_affinity_mutation(
    new: Option<&core::NodeAffinity>,
    old: Option<&core::NodeAffinity>,
    causes: &mut Vec<Cause>,
) {
    let Some(old_req) = required(old) else {
        return;
    };
    let path = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms";
    let old_terms = &old_req.node_selector_terms;
    let new_terms = required(new).map(|r| &r.node_selector_terms);
    let n = new_terms.map_or(0, Vec::len);
    if !old_terms.is_empty() && old_terms.len() != n {
        causes.push(Cause::invalid(
            path,
            go_terms(new_terms),
            "no additions/deletions to non-empty NodeSelectorTerms list are allowed",
        ));
        return;
    }
    for (i, (o, t)) in old_terms
        .iter()
        .zip(new_terms.into_iter().flatten())
        .enumerate()
    {
        if !term_has_only_additions(t, o) {
            causes.push(Cause::invalid(
                format!("{path}[{i}]"),
                go_term(t),
                "only additions are allowed (no mutations or deletions)",
            ));
        }
    }
}

/// The required node selector of a node affinity.
fn required(a: Option<&core::NodeAffinity>) -> Option<&core::NodeSelector> {
    a.and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    })
}

/// `validateNodeSelectorTermHasOnlyAdditions`.
fn term_has_only_additions(new: &core::NodeSelectorTerm, old: &core::NodeSelectorTerm) -> bool {
    let list = |l: &Option<Vec<core::NodeSelectorRequirement>>| l.clone().unwrap_or_default();
    let (ne, oe) = (list(&new.match_expressions), list(&old.match_expressions));
    let (nf, of) = (list(&new.match_fields), list(&old.match_fields));
    if oe.is_empty() && of.is_empty() && (!ne.is_empty() || !nf.is_empty()) {
        return false;
    }
    let prefix = |n: &[core::NodeSelectorRequirement], o: &[core::NodeSelectorRequirement]| {
        n.len() >= o.len() && semantic_eq(&n[..o.len()], o)
    };
    prefix(&ne, &oe) && prefix(&nf, &of)
}

/// Whether two pod specs are the same Go `core.PodSpec` (`apiequality.Semantic.DeepEqual`): a
/// non-pointer field's zero value is the field left out there (`hostNetwork: false`,
/// `workingDir: ""`, `readOnly: false`), so a client that decodes a stored pod into Go types
/// and sends it back without them (client-go does) changes nothing. Both are read through the
/// Pod protobuf message, whose decoding drops those zeros as Go's JSON does.
fn same_spec(a: &core::PodSpec, b: &core::PodSpec) -> bool {
    fn go_form(spec: &core::PodSpec) -> Option<Value> {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": spec});
        let bytes = crate::protobuf::encode(&pod).ok()?;
        let mut spec = crate::protobuf::decode(&bytes)
            .ok()?
            .get_mut("spec")?
            .take();
        drop_empty(&mut spec);
        Some(spec)
    }
    // equal as written is equal in Go too; the round trip is for the specs that differ
    semantic_eq(a, b)
        || match (go_form(a), go_form(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
}

/// `apiequality.Semantic.DeepEqual` (k8s.io/apimachinery `pkg/api/equality`) of two pod-spec
/// values as JSON shows them: an absent list or map equals an empty one (a pointer to an empty
/// struct does not equal an absent one), and quantities are equal as `Quantity.Cmp` finds them
/// (`1` and `1000m`, [`kubepull_core::qos::Quantity`]).
pub(crate) fn semantic_eq<T: serde::Serialize + ?Sized>(a: &T, b: &T) -> bool {
    let norm = |x: &T| {
        let mut v = serde_json::to_value(x).unwrap_or(Value::Null);
        drop_empty(&mut v);
        v
    };
    norm(a) == norm(b)
}

/// The fields of a pod spec that are `map[string]string`s: their keys are the user's, never
/// field names, so nothing in them is read as a quantity.
const STRING_MAPS: &[&str] = &[
    "nodeSelector",
    "matchLabels",
    "volumeAttributes",
    "options",
    "labels",
    "annotations",
];

/// The fields of a pod spec that are `ResourceList`s (a name → quantity map): a container's and
/// a claim template's `limits` and `requests`, the pod's `overhead`.
const RESOURCE_LISTS: &[&str] = &["limits", "requests", "overhead"];
/// The fields of a pod spec that are one quantity: an emptyDir's `sizeLimit`, a resource field
/// selector's `divisor`.
const QUANTITIES: &[&str] = &["sizeLimit", "divisor"];

/// A quantity in the one spelling equal quantities share, rounded up (away from zero) to a
/// multiple of `10^scale` first; text that is not a quantity is left as it is, equal only to
/// itself.
fn canonical_quantity(q: &mut Value, scale: i64) {
    if let Some(k) = q.as_str().and_then(kubepull_core::qos::Quantity::parse) {
        *q = Value::String(k.round_up(scale).key());
    }
}

/// The value as Go's semantic comparison sees it: empty lists, maps and nulls left out
/// ([`STRING_MAPS`], [`RESOURCE_LISTS`]) and quantities in one spelling: a resource list's
/// rounded up to milli-units as the defaults round them (`SetDefaults_ResourceList`, which
/// kube-apiserver applies to every body and every stored object it reads), the others at
/// nano-units, a quantity's precision.
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if STRING_MAPS.contains(&k.as_str()) {
                    continue;
                }
                if RESOURCE_LISTS.contains(&k.as_str()) {
                    if let Some(l) = x.as_object_mut() {
                        l.values_mut().for_each(|q| canonical_quantity(q, -3));
                        continue;
                    }
                } else if QUANTITIES.contains(&k.as_str()) {
                    canonical_quantity(x, -9);
                }
                drop_empty(x);
            }
            m.retain(|k, x| {
                !(x.is_null()
                    || x.as_array().is_some_and(Vec::is_empty)
                    || ((STRING_MAPS.contains(&k.as_str())
                        || RESOURCE_LISTS.contains(&k.as_str()))
                        && x.as_object().is_some_and(|o| o.is_empty())))
            });
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as `fmt` prints maps).
fn go_string_map(m: Option<&BTreeMap<String, String>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => format!(
            "map[string]string{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k:?}:{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Go's `%#v` of a `[]T` whose elements print with `item`.
fn go_slice<T>(ty: &str, l: Option<&Vec<T>>, item: impl Fn(&T) -> String) -> String {
    match l {
        None => format!("[]{ty}(nil)"),
        Some(l) => format!(
            "[]{ty}{{{}}}",
            l.iter().map(item).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn go_requirement(r: &core::NodeSelectorRequirement) -> String {
    format!(
        "core.NodeSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{}}}",
        r.key,
        r.operator,
        go_slice("string", r.values.as_ref(), |s| format!("{s:?}"))
    )
}

/// Go's `%#v` of a `core.NodeSelectorTerm`.
fn go_term(t: &core::NodeSelectorTerm) -> String {
    let reqs = |l: Option<&Vec<core::NodeSelectorRequirement>>| {
        go_slice("core.NodeSelectorRequirement", l, go_requirement)
    };
    format!(
        "core.NodeSelectorTerm{{MatchExpressions:{}, MatchFields:{}}}",
        reqs(t.match_expressions.as_ref()),
        reqs(t.match_fields.as_ref())
    )
}

fn go_terms(l: Option<&Vec<core::NodeSelectorTerm>>) -> String {
    go_slice("core.NodeSelectorTerm", l, go_term)
}

/// `ValidatePodStatusUpdate`, the parts served: the annotation updates, the condition types
/// (`validatePodConditions`: other than the system ones, qualified names; upstream names them
/// `metadata.conditions[i].Type`), `status.nominatedNodeName` a node name when it changes, and
/// no container, init container or ephemeral container going from terminated back to not
/// terminated unless its restart policy restarts it (`ValidateContainerStateTransition`,
/// `ValidateInitContainerStateTransition`). A status that does not decode is the decoder's
/// error, reported before.
pub(crate) fn validate_pod_status_update(obj: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = annotation_updates(obj, old);
    let status = |v: &Value| {
        core::PodStatus::deserialize(v.get("status").unwrap_or(&json!({}))).unwrap_or_default()
    };
    let (new_st, old_st) = (status(obj), status(old));
    for (i, c) in new_st.conditions.iter().flatten().enumerate() {
        if matches!(c.type_.as_str(), "PodScheduled" | "Ready" | "Initialized") {
            continue;
        }
        for msg in crate::validation::is_qualified_name(&c.type_) {
            causes.push(Cause::invalid(
                format!("metadata.conditions[{i}].Type"),
                format!("{:?}", c.type_),
                msg,
            ));
        }
    }
    let nominated = new_st.nominated_node_name.as_deref().unwrap_or("");
    if !nominated.is_empty() && Some(nominated) != old_st.nominated_node_name.as_deref() {
        for msg in crate::admission::dns1123_subdomain_problems(nominated) {
            causes.push(Cause::invalid(
                "status.nominatedNodeName",
                format!("{nominated:?}"),
                msg,
            ));
        }
    }
    // the QoS class is immutable (`ValidateImmutableField`); an update that leaves it out has
    // it backfilled from the stored pod before ([`crate::objects`], the status strategy's
    // `PrepareForUpdate`)
    let qos = |v: &Value| {
        v.pointer("/status/qosClass")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let spec = stored_spec(old).unwrap_or_default();
    // builds before the class was computed at creation stored every pod as BestEffort: the
    // class its resources make may replace that value (the node agent reports it)
    let repair = || qos(old) == "BestEffort" && qos(obj) == crate::objects::pod_qos_class(&spec);
    if qos(obj) != qos(old) && !repair() {
        causes.push(Cause::invalid(
            "status.qosClass",
            format!("{:?}", qos(obj)),
            "field is immutable",
        ));
    }
    let restart = spec.restart_policy.as_deref().unwrap_or("Always");
    let sidecars: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let lists = [
        (
            "containerStatuses",
            &new_st.container_statuses,
            &old_st.container_statuses,
            restart,
            false,
        ),
        (
            "initContainerStatuses",
            &new_st.init_container_statuses,
            &old_st.init_container_statuses,
            restart,
            true,
        ),
        (
            "ephemeralContainerStatuses",
            &new_st.ephemeral_container_statuses,
            &old_st.ephemeral_container_statuses,
            "Never",
            false,
        ),
    ];
    for (list, new, old, restart, init) in lists {
        if restart == "Always" {
            continue;
        }
        let terminated = |s: &core::ContainerStatus| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .map(|t| t.exit_code)
        };
        for (i, o) in old.iter().flatten().enumerate() {
            let Some(code) = terminated(o) else { continue };
            if (code != 0 && restart == "OnFailure")
                || (init && sidecars.contains(&o.name.as_str()))
            {
                continue;
            }
            for n in new.iter().flatten() {
                if n.name == o.name && terminated(n).is_none() {
                    causes.push(Cause::forbidden(
                        format!("status.{list}[{i}].state"),
                        "may not be transitioned to non-terminated state",
                    ));
                }
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{defaulted, validate, PodParts};

    fn pods() -> &'static crate::resources::Resource {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    fn pod(spec: Value) -> Value {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "img"}]);
        }
        defaulted(
            pods(),
            json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
        )
    }

    /// [`validate`] of `new` over `old` as the server calls it for a PUT: the spec typed.
    fn update(new: &Value, old: &Value) -> Vec<String> {
        let t: core::PodTemplateSpec = serde_json::from_value(new.clone()).unwrap();
        let parts = PodParts {
            meta: t.metadata.as_ref(),
            spec: t.spec.as_ref(),
        };
        validate(pods(), new, Some(old), Some(parts))
            .iter()
            .map(Cause::text)
            .collect()
    }

    fn forbidden() -> String {
        format!("spec: Forbidden: pod updates may not change fields other than {UPDATABLE_FIELDS}")
    }

    /// `ValidateContainerUpdates` and the images (TestValidatePodUpdate: "image change",
    /// "image change to empty", "init container image change", "removed container", …).
    #[test]
    fn images_may_change_containers_may_not_come_or_go() {
        let old = pod(json!({"initContainers": [{"name": "i", "image": "img"}]}));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("other:v2");
        new["spec"]["initContainers"][0]["image"] = json!("other:v2");
        assert!(update(&new, &old).is_empty());
        new["spec"]["containers"][0]["image"] = json!("");
        new["spec"]["initContainers"][0]["image"] = json!(" x");
        assert_eq!(
            update(&new, &old),
            [
                "spec.containers[0].image: Required value",
                "spec.initContainers[0].image: Invalid value: \" x\": must not have leading or trailing whitespace",
                "spec.containers[0].image: Required value",
                "spec.initContainers[0].image: Invalid value: \" x\": must not have leading or trailing whitespace",
            ]
        );
        // a container added: nothing else is looked at
        let mut more = old.clone();
        more["spec"]["containers"] =
            json!([{"name": "c", "image": "img"}, {"name": "d", "image": "img"}]);
        let more = pod(more["spec"].clone());
        let mut more_and_deadline = more.clone();
        more_and_deadline["spec"]["activeDeadlineSeconds"] = json!(5);
        assert_eq!(
            update(&more_and_deadline, &old),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        assert_eq!(
            update(&old, &more),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let mut no_init = old.clone();
        no_init["spec"]
            .as_object_mut()
            .unwrap()
            .remove("initContainers");
        assert_eq!(
            update(&no_init, &old),
            ["spec.initContainers: Forbidden: pod updates may not add or remove containers"]
        );
        // anything else of a container is the spec's
        let mut port = old.clone();
        port["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        assert_eq!(update(&pod(port["spec"].clone()), &old), [forbidden()]);
    }

    /// `activeDeadlineSeconds`: set, or lowered; not raised, removed or made negative
    /// (TestValidatePodUpdate's activeDeadlineSeconds cases).
    #[test]
    fn active_deadline_may_only_be_set_or_lowered() {
        let with = |d: Option<i64>| {
            let mut p = pod(json!({}));
            if let Some(d) = d {
                p["spec"]["activeDeadlineSeconds"] = json!(d);
            }
            p
        };
        let ok = [
            (None, None),
            (Some(30), None),
            (Some(20), Some(30)),
            (Some(30), Some(30)),
        ];
        for (new, old) in ok {
            assert!(
                update(&with(new), &with(old)).is_empty(),
                "{new:?} over {old:?}"
            );
        }
        assert_eq!(
            update(&with(Some(40)), &with(Some(30))),
            ["spec.activeDeadlineSeconds: Invalid value: 40: must be less than or equal to previous value"]
        );
        assert_eq!(
            update(&with(None), &with(Some(30))),
            ["spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"]
        );
        // the spec's range first (1…), then the update's (0…), which stops the checks
        assert_eq!(
            update(&with(Some(-1)), &with(Some(30))),
            [
                "spec.activeDeadlineSeconds: Invalid value: -1: must be between 1 and 2147483647, inclusive",
                "spec.activeDeadlineSeconds: Invalid value: -1: must be between 0 and 2147483647, inclusive",
            ]
        );
        assert_eq!(
            update(&with(Some(0)), &with(Some(30))),
            ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]
        );
    }

    /// `validateOnlyAddedTolerations`: additions and `tolerationSeconds` changes only; the new
    /// list is validated (TestValidatePodUpdate's toleration cases).
    #[test]
    fn tolerations_may_only_be_added() {
        let with = |t: Value| pod(json!({"tolerations": t}));
        let old = with(
            json!([{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 10}]),
        );
        // tolerationSeconds changed, one added
        let new = with(json!([
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 20},
            {"key": "k2", "operator": "Exists", "effect": "NoSchedule"}]));
        assert!(update(&new, &old).is_empty());
        // a value changed
        let new = with(
            json!([{"key": "k", "operator": "Equal", "value": "v2", "effect": "NoExecute", "tolerationSeconds": 10}]),
        );
        assert_eq!(
            update(&new, &old),
            ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
        // removed
        assert_eq!(
            update(&pod(json!({})), &old),
            ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
        // an invalid addition: ValidatePodSpec's and the update's ValidateTolerations
        let new = with(json!([
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 10},
            {"operator": "Equal", "value": "x", "tolerationSeconds": 5}]));
        let bad = [
            "spec.tolerations[1].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            "spec.tolerations[1].effect: Invalid value: \"\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        ];
        assert_eq!(update(&new, &old), [bad, bad].concat());
    }

    /// `validateOnlyDeletedSchedulingGates`; removing every gate is an update like another.
    #[test]
    fn scheduling_gates_may_only_be_removed() {
        let with = |g: &[&str]| {
            let gates: Vec<Value> = g.iter().map(|n| json!({"name": n})).collect();
            pod(json!({"schedulingGates": gates}))
        };
        assert!(update(&with(&["a"]), &with(&["a", "b"])).is_empty());
        assert!(update(&with(&[]), &with(&["a", "b"])).is_empty());
        assert_eq!(
            update(&with(&["a", "c", "d"]), &with(&["a"])),
            [
                "spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new scheduling gate 'c'",
                "spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'd'",
            ]
        );
    }

    /// A gated pod's `nodeSelector` may gain entries; an ungated one's may not change
    /// (TestValidatePodUpdate's nodeSelector cases).
    #[test]
    fn a_gated_pods_node_selector_may_only_grow() {
        let with = |gated: bool, sel: Value| {
            let gates = if gated {
                json!([{"name": "g"}])
            } else {
                json!([])
            };
            pod(json!({"schedulingGates": gates, "nodeSelector": sel}))
        };
        let old = with(true, json!({"foo": "bar"}));
        assert!(update(&with(true, json!({"foo": "bar", "foo2": "bar2"})), &old).is_empty());
        assert!(update(&with(true, json!({"a": "b"})), &with(true, json!({}))).is_empty());
        let msg = "only additions to spec.nodeSelector are allowed (no mutations or deletions)";
        assert_eq!(
            update(&with(true, json!({"foo2": "bar2"})), &old),
            [format!(
                "spec.nodeSelector: Invalid value: map[string]string{{\"foo2\":\"bar2\"}}: {msg}"
            )]
        );
        assert_eq!(
            update(&with(true, json!({"foo": "bar2"})), &old),
            [format!(
                "spec.nodeSelector: Invalid value: map[string]string{{\"foo\":\"bar2\"}}: {msg}"
            )]
        );
        let mut removed = old.clone();
        removed["spec"]
            .as_object_mut()
            .unwrap()
            .remove("nodeSelector");
        assert_eq!(
            update(&removed, &old),
            [format!(
                "spec.nodeSelector: Invalid value: map[string]string(nil): {msg}"
            )]
        );
        // ungated: any change is the spec's
        assert_eq!(
            update(
                &with(false, json!({"foo": "bar", "foo2": "bar2"})),
                &with(false, json!({"foo": "bar"}))
            ),
            [forbidden()]
        );
        // the gate removed in the same update: the old pod was gated
        let mut ungating = with(true, json!({"foo": "bar", "foo2": "bar2"}));
        ungating["spec"]["schedulingGates"] = json!([]);
        assert!(update(&ungating, &old).is_empty());
    }

    /// A gated pod's required node affinity may only be narrowed: terms gain requirements
    /// (TestValidatePodUpdate's nodeAffinity cases); the preferred terms may change.
    #[test]
    fn a_gated_pods_node_affinity_may_only_narrow() {
        let expr = |k: &str| json!({"key": k, "operator": "In", "values": ["v"]});
        let with = |gated: bool, affinity: Value| {
            let gates = if gated {
                json!([{"name": "g"}])
            } else {
                json!([])
            };
            let mut spec = json!({"schedulingGates": gates});
            if !affinity.is_null() {
                spec["affinity"] = affinity;
            }
            pod(spec)
        };
        let required = |terms: Value| json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
        let old = with(true, required(json!([{"matchExpressions": [expr("a")]}])));
        // an expression added to the term
        let narrower = with(
            true,
            required(json!([{"matchExpressions": [expr("a"), expr("b")]}])),
        );
        assert!(update(&narrower, &old).is_empty());
        // none before: anything, with or without an affinity
        assert!(update(&narrower, &with(true, Value::Null)).is_empty());
        assert!(update(&narrower, &with(true, json!({"nodeAffinity": {}}))).is_empty());
        // preferred terms are not checked
        let mut preferred = old.clone();
        preferred["spec"]["affinity"]["nodeAffinity"]
            ["preferredDuringSchedulingIgnoredDuringExecution"] =
            json!([{"weight": 1, "preference": {"matchExpressions": [expr("z")]}}]);
        assert!(update(&preferred, &old).is_empty());
        // a term added
        let path = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms";
        let two = with(
            true,
            required(
                json!([{"matchExpressions": [expr("a")]}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]),
            ),
        );
        assert_eq!(
            update(&two, &old),
            [format!("{path}: Invalid value: []core.NodeSelectorTerm{{core.NodeSelectorTerm{{MatchExpressions:[]core.NodeSelectorRequirement{{core.NodeSelectorRequirement{{Key:\"a\", Operator:\"In\", Values:[]string{{\"v\"}}}}}}, MatchFields:[]core.NodeSelectorRequirement(nil)}}, core.NodeSelectorTerm{{MatchExpressions:[]core.NodeSelectorRequirement(nil), MatchFields:[]core.NodeSelectorRequirement{{core.NodeSelectorRequirement{{Key:\"metadata.name\", Operator:\"In\", Values:[]string{{\"n\"}}}}}}}}}}: no additions/deletions to non-empty NodeSelectorTerms list are allowed")]
        );
        // the required terms removed
        assert_eq!(
            update(&with(true, json!({"nodeAffinity": {}})), &old),
            [format!("{path}: Invalid value: []core.NodeSelectorTerm(nil): no additions/deletions to non-empty NodeSelectorTerms list are allowed")]
        );
        // an expression changed
        let changed = with(true, required(json!([{"matchExpressions": [expr("b")]}])));
        assert_eq!(
            update(&changed, &old),
            [format!("{path}[0]: Invalid value: core.NodeSelectorTerm{{MatchExpressions:[]core.NodeSelectorRequirement{{core.NodeSelectorRequirement{{Key:\"b\", Operator:\"In\", Values:[]string{{\"v\"}}}}}}, MatchFields:[]core.NodeSelectorRequirement(nil)}}: only additions are allowed (no mutations or deletions)")]
        );
        // ungated: the spec's
        assert_eq!(
            update(
                &with(
                    false,
                    required(json!([{"matchExpressions": [expr("a"), expr("b")]}]))
                ),
                &with(false, required(json!([{"matchExpressions": [expr("a")]}])))
            ),
            [forbidden()]
        );
        // a pod affinity added with the node affinity to a pod that had none is the spec's
        let mut sneaky = narrower.clone();
        sneaky["spec"]["affinity"]["podAffinity"] = json!({});
        assert_eq!(update(&sneaky, &with(true, Value::Null)), [forbidden()]);
    }

    /// The rest of the spec, ephemeral containers included, is the Forbidden comparison's; a
    /// negative grace period may become 1; empty lists and maps are absent ones.
    #[test]
    fn the_rest_of_the_spec_is_immutable() {
        let old = pod(json!({}));
        for (field, v) in [
            ("nodeName", json!("n1")),
            ("restartPolicy", json!("Never")),
            (
                "ephemeralContainers",
                json!([{"name": "d", "image": "img"}]),
            ),
            ("terminationGracePeriodSeconds", json!(31)),
            ("hostname", json!("h")),
        ] {
            let mut new = old.clone();
            new["spec"][field] = v;
            assert_eq!(update(&new, &old), [forbidden()], "{field}");
        }
        let mut negative = old.clone();
        negative["spec"]["terminationGracePeriodSeconds"] = json!(-5);
        let mut one = old.clone();
        one["spec"]["terminationGracePeriodSeconds"] = json!(1);
        assert!(update(&one, &negative).is_empty());
        let mut empty = old.clone();
        empty["spec"]["tolerations"] = json!([]);
        empty["spec"]["nodeSelector"] = json!({});
        empty["spec"]["containers"][0]["env"] = json!([]);
        assert!(update(&empty, &old).is_empty());
        assert!(update(&old, &empty).is_empty());
        // a Go client's round trip leaves out the non-pointer fields at their zero value
        let mut stored = old.clone();
        stored["spec"]["hostNetwork"] = json!(false);
        stored["spec"]["containers"][0]["stdin"] = json!(false);
        stored["spec"]["containers"][0]["workingDir"] = json!("");
        stored["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 0}]);
        let mut sent = old.clone();
        sent["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        assert!(update(&sent, &stored).is_empty());
        sent["spec"]["hostNetwork"] = json!(true);
        assert_eq!(update(&sent, &stored), [forbidden()]);
        // a struct present, even empty, is not an absent one
        let mut affinity = old.clone();
        affinity["spec"]["affinity"] = json!({});
        assert_eq!(update(&affinity, &old), [forbidden()]);
    }

    /// Quantities compare as `Quantity.Cmp` (`apiequality.Semantic.DeepEqual`): `1` and
    /// `1000m` are one value, `1` and `2` are not; text that is not a quantity only equals
    /// itself.
    #[test]
    fn quantities_compare_by_value() {
        let with = |cpu: &str, size: &str| {
            pod(json!({"containers": [{"name": "c", "image": "img",
                "resources": {"limits": {"cpu": cpu, "memory": "1Gi"}}}],
                "overhead": {"cpu": cpu},
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": size}}]}))
        };
        let old = with("1", "1Gi");
        assert!(update(&with("1000m", "1024Mi"), &old).is_empty());
        assert!(update(&with("1000000u", "1073741824"), &old).is_empty());
        assert_eq!(update(&with("2", "1Gi"), &old), [forbidden()]);
        assert_eq!(update(&with("1", "1G"), &old), [forbidden()]);
        // a request defaulted from the limit (`1`) compared with one sent as `1000m`
        let mut sent = with("1", "1Gi");
        sent["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("1000m");
        assert!(update(&sent, &old).is_empty());
        assert!(semantic_eq(
            &json!({"divisor": "1"}),
            &json!({"divisor": "1000m"})
        ));
        assert!(!semantic_eq(
            &json!({"limits": {"cpu": "x"}}),
            &json!({"limits": {"cpu": "y"}})
        ));
        // only quantity fields are read as quantities
        assert!(!semantic_eq(
            &json!({"value": "1"}),
            &json!({"value": "1000m"})
        ));
        // a string map's keys are the user's: a label named `divisor` is text
        for map in ["labels", "annotations", "nodeSelector", "matchLabels"] {
            assert!(!semantic_eq(
                &json!({map: {"divisor": "1", "sizeLimit": "1"}}),
                &json!({map: {"divisor": "1000m", "sizeLimit": "1"}})
            ));
            assert!(!semantic_eq(
                &json!({map: {"limits": {"cpu": "1"}}}),
                &json!({map: {"limits": {"cpu": "1000m"}}})
            ));
            assert!(semantic_eq(&json!({map: {}}), &json!({})));
        }
        // values past any machine integer compare exactly (no saturation into equality)
        assert!(!semantic_eq(
            &json!({"limits": {"memory": "1e30"}}),
            &json!({"limits": {"memory": "2e30"}})
        ));
        assert!(!semantic_eq(
            &json!({"sizeLimit": "-1e40"}),
            &json!({"sizeLimit": "-2e40"})
        ));
        assert!(semantic_eq(
            &json!({"limits": {"memory": "1e30"}}),
            &json!({"limits": {"memory": "1000000000000000000000000000000"}})
        ));
        // resource lists are compared rounded up to milli-units (SetDefaults_ResourceList),
        // a size limit or a divisor at nano-units
        assert!(semantic_eq(
            &json!({"requests": {"cpu": "1.0001"}}),
            &json!({"requests": {"cpu": "1001m"}})
        ));
        assert!(semantic_eq(
            &json!({"overhead": {"cpu": "1n"}}),
            &json!({"overhead": {"cpu": "2n"}})
        ));
        assert!(semantic_eq(
            &json!({"limits": {"cpu": "-1.0001"}}),
            &json!({"limits": {"cpu": "-1001m"}})
        ));
        assert!(!semantic_eq(
            &json!({"sizeLimit": "1n"}),
            &json!({"sizeLimit": "2n"})
        ));
        assert!(!semantic_eq(
            &json!({"divisor": "1n"}),
            &json!({"divisor": "2n"})
        ));
        // not quantities (Go refuses them): text, equal only to itself
        assert!(!semantic_eq(
            &json!({"limits": {"cpu": "+-1"}}),
            &json!({"limits": {"cpu": "1"}})
        ));
    }

    /// `ValidatePodSpecificAnnotationUpdates`: the mirror-pod and AppArmor annotations.
    #[test]
    fn mirror_and_apparmor_annotations_are_fixed() {
        let old = pod(json!({}));
        let mut new = old.clone();
        new["metadata"]["annotations"] = json!({
            "kubernetes.io/config.mirror": "x",
            "container.apparmor.security.beta.kubernetes.io/c": "runtime/default",
            "other": "ok"});
        assert_eq!(
            update(&new, &old),
            [
                "metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not add mirror pod annotation",
                "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]: Forbidden: may not add AppArmor annotations",
            ]
        );
        assert!(update(&new, &new).is_empty());
        assert_eq!(
            update(&old, &new),
            [
                "metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not remove or update mirror pod annotation",
                "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]: Forbidden: may not remove or update AppArmor annotations",
            ]
        );
    }

    /// `ValidatePodStatusUpdate`: condition types, the nominated node, and terminated
    /// containers that may not run again (TestValidateContainerStateTransition's cases).
    #[test]
    fn status_updates_as_upstream() {
        let status = |restart: &str, st: Value| {
            let mut p = pod(json!({"restartPolicy": restart,
                "initContainers": [{"name": "i", "image": "img"},
                    {"name": "side", "image": "img", "restartPolicy": "Always"}]}));
            p["status"] = st;
            p
        };
        let terminated = |code: i32| json!({"terminated": {"exitCode": code}});
        let running = json!({"running": {}});
        let statuses = |c: Value, i: Value, side: Value| {
            json!({"containerStatuses": [{"name": "c", "image": "img", "imageID": "", "ready": false, "restartCount": 0, "state": c}],
                "initContainerStatuses": [
                    {"name": "i", "image": "img", "imageID": "", "ready": false, "restartCount": 0, "state": i},
                    {"name": "side", "image": "img", "imageID": "", "ready": false, "restartCount": 0, "state": side}]})
        };
        let check = |new: &Value, old: &Value| -> Vec<String> {
            validate(pods(), new, Some(old), None)
                .iter()
                .map(Cause::text)
                .collect()
        };
        let old = |r: &str, code: i32| {
            status(
                r,
                statuses(terminated(code), terminated(code), terminated(code)),
            )
        };
        let again = |r: &str| {
            status(
                r,
                statuses(running.clone(), running.clone(), running.clone()),
            )
        };
        assert!(check(&again("Always"), &old("Always", 0)).is_empty());
        assert!(check(&again("OnFailure"), &old("OnFailure", 1)).is_empty());
        let both = [
            "status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state",
            "status.initContainerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state",
        ];
        // a sidecar (restartable init container) may restart
        assert_eq!(check(&again("OnFailure"), &old("OnFailure", 0)), both);
        assert_eq!(check(&again("Never"), &old("Never", 1)), both);
        // ephemeral containers never restart
        let eph = |state: Value| {
            let mut p = old("Always", 0);
            p["status"]["ephemeralContainerStatuses"] = json!([{"name": "d", "image": "img", "imageID": "", "ready": false, "restartCount": 0, "state": state}]);
            p
        };
        assert_eq!(
            check(&eph(running.clone()), &eph(terminated(0))),
            ["status.ephemeralContainerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state"]
        );
        // condition types other than the system ones are qualified names; a changed
        // nominated node is a node name
        let mut new = old("Always", 0);
        new["status"]["conditions"] = json!([{"type": "Ready", "status": "True"},
            {"type": "example.com/ok", "status": "True"}, {"type": "not ok", "status": "True"}]);
        new["status"]["nominatedNodeName"] = json!("Bad_Node");
        let got = check(&new, &old("Always", 0));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("metadata.conditions[2].Type: Invalid value: \"not ok\": name part must consist of alphanumeric characters"), "{got:?}");
        assert!(got[1].starts_with("status.nominatedNodeName: Invalid value: \"Bad_Node\": a lowercase RFC 1123 subdomain"), "{got:?}");
        // the QoS class stays what creation set
        let mut stored = old("Always", 0);
        stored["status"]["qosClass"] = json!("Burstable");
        let mut new = stored.clone();
        assert!(check(&new, &stored).is_empty());
        new["status"]["qosClass"] = json!("Guaranteed");
        assert_eq!(
            check(&new, &stored),
            ["status.qosClass: Invalid value: \"Guaranteed\": field is immutable"]
        );
        // a BestEffort stored by builds that did not compute the class may become the class
        // the spec makes, and nothing else
        let mut stored = old("Always", 0);
        stored["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100m"}});
        stored["status"]["qosClass"] = json!("BestEffort");
        let mut new = stored.clone();
        new["status"]["qosClass"] = json!("Burstable");
        assert!(check(&new, &stored).is_empty());
        new["status"]["qosClass"] = json!("Guaranteed");
        assert_eq!(
            check(&new, &stored),
            ["status.qosClass: Invalid value: \"Guaranteed\": field is immutable"]
        );
    }
}
