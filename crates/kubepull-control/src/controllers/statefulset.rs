//! The StatefulSet controller (kubernetes 1.32 `pkg/controller/statefulset`: `stateful_set.go`
//! `sync`, `stateful_set_control.go` `UpdateStatefulSet`, `stateful_set_utils.go`,
//! `stateful_pod_control.go`) and the StatefulSet validation (`pkg/apis/apps/validation`
//! `ValidateStatefulSet`, `ValidateStatefulSetUpdate`, `ValidateStatefulSetStatusUpdate`).
//!
//! A set owns the pods named `<set>-<ordinal>` for the ordinals `spec.ordinals.start` up to
//! `start + replicas - 1`, each with its stable hostname (`spec.hostname`, `spec.subdomain`
//! the set's `serviceName`), the `statefulset.kubernetes.io/pod-name` and
//! `apps.kubernetes.io/pod-index` labels and its revision's `controller-revision-hash`, and,
//! before the pod is created, one PersistentVolumeClaim per `volumeClaimTemplates` entry
//! named `<template>-<set>-<ordinal>`, which the pod's volume of the template's name mounts.
//!
//! `OrderedReady` (the default) creates one pod at a time in ordinal order and goes on only
//! once it is Running and Ready (and available for `minReadySeconds`), deletes surplus pods
//! from the highest ordinal, one at a time, and halts while a pod is unhealthy; `Parallel`
//! creates and deletes without waiting. A failed or succeeded pod is deleted and created
//! again. A `RollingUpdate` deletes, from the highest ordinal down to the `partition`, one pod
//! at a time whose revision is not the update revision, waiting for each to be healthy again;
//! `OnDelete` leaves replacement to whoever deletes a pod. The revisions are
//! ControllerRevisions holding the template as a patch (`getPatch`), created, reused on a
//! rollback and truncated to `revisionHistoryLimit` as upstream does ([`super::history`]).
//!
//! [`plan`] is pure: from the set, its revisions, the pods it claimed and the namespace's
//! claims it decides the writes, their events and the status. The sync claims the pods and
//! revisions ([`super::refmanager`]), picks the revisions (creating the update revision when
//! the template is new), carries the plan out and remembers the pods it created and deleted
//! ([`super::expectations`]): it does not act on the set again until the informer has shown
//! them.
//!
//! The cache keeps no pod volumes ([`super::kinds::trim_pod`]), so the storage of a pod is
//! made at its creation only (`newStatefulSetPod`'s `updateStorage`); upstream's later
//! `storageMatches` check could only lead to an update that the pod's immutable volumes
//! refuse.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};

use super::expectations::Expectations;
use super::history;
use super::informer::{index, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref, reference};
use super::queue::{self, Action, Observed};
use super::{refmanager, res};
use crate::errors::{ApiError, Cause};
use crate::objects::Objects;

/// `apps.StatefulSetPodNameLabel`.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// `apps.PodIndexLabel` (the `PodIndexLabel` feature, on in 1.32).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

const RETAIN: &str = "Retain";
const DELETE: &str = "Delete";

fn spec(set: &StatefulSet) -> &StatefulSetSpec {
    static EMPTY: OnceLock<StatefulSetSpec> = OnceLock::new();
    set.spec
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(StatefulSetSpec::default))
}

/// `*spec.replicas` (defaulted to 1).
fn replicas(set: &StatefulSet) -> i64 {
    i64::from(spec(set).replicas.unwrap_or(1))
}

/// `getStartOrdinal`: `spec.ordinals.start`, else 0 (`StatefulSetStartOrdinal`, on in 1.32).
fn start_ordinal(set: &StatefulSet) -> i64 {
    i64::from(
        spec(set)
            .ordinals
            .as_ref()
            .and_then(|o| o.start)
            .unwrap_or(0),
    )
}

/// `getEndOrdinal` (inclusive).
fn end_ordinal(set: &StatefulSet) -> i64 {
    start_ordinal(set) + replicas(set) - 1
}

fn min_ready(set: &StatefulSet) -> i64 {
    i64::from(spec(set).min_ready_seconds.unwrap_or(0))
}

fn update_type(set: &StatefulSet) -> &str {
    spec(set)
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// `getParentNameAndOrdinal` (`(.*)-([0-9]+)$`): the parent's name and the ordinal, -1 when
/// the digits do not fit an int32; `("", -1)` for a name of another shape.
pub fn parent_and_ordinal(name: &str) -> (&str, i64) {
    match name.rsplit_once('-') {
        Some((parent, digits))
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (parent, digits.parse::<i32>().map_or(-1, i64::from))
        }
        _ => ("", -1),
    }
}

fn ordinal(p: &Pod) -> i64 {
    parent_and_ordinal(kinds::name(&p.metadata)).1
}

/// `isMemberOf`: the pod's name says it is one of the set's.
fn is_member_of(set: &StatefulSet, p: &Pod) -> bool {
    parent_and_ordinal(kinds::name(&p.metadata)).0 == kinds::name(&set.metadata)
}

/// `podInOrdinalRange`.
fn in_ordinal_range(p: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(p);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

/// `getPodName`.
pub fn pod_name(set: &StatefulSet, ordinal: i64) -> String {
    format!("{}-{ordinal}", kinds::name(&set.metadata))
}

/// `getPersistentVolumeClaimName`.
pub fn claim_name(set: &StatefulSet, template: &str, ordinal: i64) -> String {
    format!("{template}-{}-{ordinal}", kinds::name(&set.metadata))
}

fn label<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// `getPodRevision`.
fn pod_revision(p: &Pod) -> &str {
    label(p, history::POD_REVISION_HASH_LABEL).unwrap_or("")
}

/// `identityMatches`.
fn identity_matches(set: &StatefulSet, p: &Pod) -> bool {
    let name = kinds::name(&p.metadata);
    let (parent, ord) = parent_and_ordinal(name);
    ord >= 0
        && parent == kinds::name(&set.metadata)
        && name == pod_name(set, ord)
        && kinds::namespace(&p.metadata) == kinds::namespace(&set.metadata)
        && label(p, POD_NAME_LABEL) == Some(name)
}

fn phase(p: &Pod) -> &str {
    kinds::pod_phase(p)
}

/// `isCreated`: the server has given it a phase.
fn is_created(p: &Pod) -> bool {
    !phase(p).is_empty()
}

fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// `isRunningAndReady`.
fn running_and_ready(p: &Pod) -> bool {
    phase(p) == "Running" && kinds::pod_ready(p)
}

/// `isRunningAndAvailable` (`podutil.IsPodAvailable`).
fn running_and_available(p: &Pod, min_ready: i64, now: jiff::Timestamp) -> bool {
    super::replicaset::available(p, min_ready, now)
}

/// `isHealthy`.
fn is_healthy(p: &Pod) -> bool {
    running_and_ready(p) && !is_terminating(p)
}

// --- claims and their retention policy (stateful_set_utils.go) ---

/// `getPersistentVolumeClaimRetentionPolicy`: `(whenDeleted, whenScaled)`, Retain when unset.
fn retention_policy(set: &StatefulSet) -> (&str, &str) {
    let p = spec(set).persistent_volume_claim_retention_policy.as_ref();
    (
        p.and_then(|p| p.when_deleted.as_deref()).unwrap_or(RETAIN),
        p.and_then(|p| p.when_scaled.as_deref()).unwrap_or(RETAIN),
    )
}

/// An owner as an ownerReference names it.
struct Owner<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    uid: &'a str,
}

fn set_owner(set: &StatefulSet) -> Owner<'_> {
    Owner {
        api_version: "apps/v1",
        kind: "StatefulSet",
        name: kinds::name(&set.metadata),
        uid: kinds::uid(&set.metadata),
    }
}

fn pod_owner(p: &Pod) -> Owner<'_> {
    Owner {
        api_version: "v1",
        kind: "Pod",
        name: kinds::name(&p.metadata),
        uid: kinds::uid(&p.metadata),
    }
}

fn refs(c: &PersistentVolumeClaim) -> &[OwnerReference] {
    c.metadata.owner_references.as_deref().unwrap_or_default()
}

/// `matchesRef`: the same group/version, kind and name.
fn matches_ref(r: &OwnerReference, o: &Owner) -> bool {
    r.api_version == o.api_version && r.kind == o.kind && r.name == o.name
}

/// `hasOwnerRef` (by UID).
fn has_owner_ref(c: &PersistentVolumeClaim, o: &Owner) -> bool {
    refs(c).iter().any(|r| r.uid == o.uid)
}

/// `hasStaleOwnerRef`: the first reference naming the object has another UID.
fn has_stale_owner_ref(c: &PersistentVolumeClaim, o: &Owner) -> bool {
    refs(c)
        .iter()
        .find(|r| matches_ref(r, o))
        .is_some_and(|r| r.uid != o.uid)
}

/// `hasUnexpectedController`.
fn has_unexpected_controller(c: &PersistentVolumeClaim, set: &StatefulSet, p: &Pod) -> bool {
    if retention_policy(set) == (RETAIN, RETAIN) {
        return false;
    }
    let (so, po) = (set_owner(set), pod_owner(p));
    for r in refs(c) {
        if matches_ref(r, &so) {
            if r.uid != so.uid {
                return true;
            }
            continue;
        }
        if matches_ref(r, &po) {
            if r.uid != po.uid {
                return true;
            }
            continue;
        }
        if r.controller == Some(true) {
            return true;
        }
    }
    false
}

/// `hasNonControllerOwner`.
fn has_non_controller_owner(c: &PersistentVolumeClaim, set: &StatefulSet, p: &Pod) -> bool {
    refs(c).iter().any(|r| {
        (r.uid == kinds::uid(&set.metadata) || r.uid == kinds::uid(&p.metadata))
            && r.controller != Some(true)
    })
}

/// `isClaimOwnerUpToDate`: the claim's owners follow the retention policy (none for
/// Retain/Retain, the set for `whenDeleted: Delete`, the pod once scaled down for
/// `whenScaled: Delete`); a claim with stale references or another controller is left alone.
pub fn claim_owner_up_to_date(c: &PersistentVolumeClaim, set: &StatefulSet, p: &Pod) -> bool {
    let (so, po) = (set_owner(set), pod_owner(p));
    if has_stale_owner_ref(c, &so) || has_stale_owner_ref(c, &po) {
        return true;
    }
    if has_unexpected_controller(c, set, p) {
        return !(has_owner_ref(c, &so) || has_owner_ref(c, &po));
    }
    if has_non_controller_owner(c, set, p) {
        return false;
    }
    let scaled_down = !in_ordinal_range(p, set);
    match retention_policy(set) {
        (DELETE, RETAIN) => has_owner_ref(c, &so) && !has_owner_ref(c, &po),
        (RETAIN, DELETE) => !has_owner_ref(c, &so) && scaled_down == has_owner_ref(c, &po),
        (DELETE, DELETE) => {
            scaled_down != has_owner_ref(c, &so) && scaled_down == has_owner_ref(c, &po)
        }
        // Retain/Retain, and an unknown policy treated as Retain
        _ => !(has_owner_ref(c, &so) || has_owner_ref(c, &po)),
    }
}

fn controller_ref_to(o: &Owner) -> OwnerReference {
    OwnerReference {
        api_version: o.api_version.to_string(),
        kind: o.kind.to_string(),
        name: o.name.to_string(),
        uid: o.uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `updateClaimOwnerRefForSetAndPod`: the references to the set and the pod are scrubbed and
/// made again as the policy wants them (none beside another controller).
pub fn update_claim_owner_refs(c: &mut PersistentVolumeClaim, set: &StatefulSet, p: &Pod) {
    let unexpected = has_unexpected_controller(c, set, p);
    let (so, po) = (set_owner(set), pod_owner(p));
    let mut list: Vec<OwnerReference> = refs(c)
        .iter()
        .filter(|r| !(matches_ref(r, &so) || matches_ref(r, &po)))
        .cloned()
        .collect();
    if !unexpected {
        let add = |list: &mut Vec<OwnerReference>, o: &Owner| {
            if !list.iter().any(|r| r.uid == o.uid) {
                list.push(controller_ref_to(o));
            }
        };
        let scaled_down = !in_ordinal_range(p, set);
        match retention_policy(set) {
            (DELETE, RETAIN) => add(&mut list, &so),
            (RETAIN, DELETE) if scaled_down => add(&mut list, &po),
            (DELETE, DELETE) if scaled_down => add(&mut list, &po),
            (DELETE, DELETE) => add(&mut list, &so),
            _ => {}
        }
    }
    c.metadata.owner_references = Some(list);
}

/// `getPersistentVolumeClaims`: the claims of the pod with `ordinal`, by template name, in
/// template order: each template named for the pod, in the set's namespace, labelled with the
/// template's labels and the selector's `matchLabels`.
fn claims_for(set: &StatefulSet, ordinal: i64) -> Vec<(String, PersistentVolumeClaim)> {
    let sel_labels = spec(set).selector.match_labels.clone().unwrap_or_default();
    spec(set)
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let tname = kinds::name(&t.metadata).to_string();
            let mut c = t.clone();
            c.metadata.name = Some(claim_name(set, &tname, ordinal));
            c.metadata.namespace = set.metadata.namespace.clone();
            let mut labels = c.metadata.labels.take().unwrap_or_default();
            labels.extend(sel_labels.clone());
            c.metadata.labels = (!labels.is_empty()).then_some(labels);
            (tname, c)
        })
        .collect()
}

// --- pods (stateful_set_utils.go) ---

/// `newStatefulSetPod`: `GetPodFromTemplate` with the set as controller, then `initIdentity`
/// and `updateStorage`.
pub fn new_pod(set: &StatefulSet, ordinal: i64) -> Pod {
    let tpl = &spec(set).template;
    let tm = tpl.metadata.clone().unwrap_or_default();
    let name = pod_name(set, ordinal);
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.to_string(), name.clone());
    labels.insert(POD_INDEX_LABEL.to_string(), ordinal.to_string());
    let mut pod_spec = tpl.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    pod_spec.subdomain = spec(set).service_name.clone().filter(|s| !s.is_empty());
    // updateStorage: a volume per claim template, then the template's other volumes
    let claims = claims_for(set, ordinal);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(t, c)| Volume {
            name: t.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: kinds::name(&c.metadata).to_string(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        pod_spec
            .volumes
            .take()
            .into_iter()
            .flatten()
            .filter(|v| !claims.iter().any(|(t, _)| *t == v.name)),
    );
    pod_spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(format!("{}-", kinds::name(&set.metadata))),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![new_controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// `newVersionedStatefulSetPod`: the pod of `ordinal` at the current revision when it is
/// below the partition (or, without a rolling update's settings, among the current
/// replicas), else at the update revision.
fn new_versioned_pod(revs: &Revisions, ordinal: i64) -> Pod {
    let cs = revs.current_set;
    let ru = spec(cs)
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref());
    let current_replicas = cs
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let start = start_ordinal(cs);
    // upstream's `a && b || c`
    let at_current = (update_type(cs) == "RollingUpdate"
        && ru.is_none()
        && ordinal < start + i64::from(current_replicas))
        || ru.is_some_and(|ru| ordinal < start + i64::from(ru.partition.unwrap_or(0)));
    let (set, rev) = if at_current {
        (cs, revs.current)
    } else {
        (revs.update_set, revs.update)
    };
    let mut p = new_pod(set, ordinal);
    if let Some(l) = p.metadata.labels.as_mut() {
        l.insert(
            history::POD_REVISION_HASH_LABEL.to_string(),
            kinds::name(&rev.metadata).to_string(),
        );
    }
    p
}

// --- revisions (stateful_set_utils.go, stateful_set_control.go) ---

/// `getPatch`: the set's template as a patch that replaces it (`$patch: replace`).
pub fn get_patch(set: &StatefulSet) -> Value {
    let mut t = serde_json::to_value(&spec(set).template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// `newRevision`: a ControllerRevision of the set's template, with the set's annotations.
pub fn new_revision(set: &StatefulSet, revision: i64, collision_count: i32) -> ControllerRevision {
    let mut cr = history::new_controller_revision(
        set,
        spec(set)
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref()),
        get_patch(set),
        revision,
        Some(collision_count),
    );
    if let Some(a) = &set.metadata.annotations {
        cr.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(a.clone());
    }
    cr
}

/// `ApplyRevision`: the set with the template the revision holds.
pub fn apply_revision(set: &StatefulSet, rev: &ControllerRevision) -> Result<StatefulSet, String> {
    use serde::Deserialize as _;
    let what = || {
        format!(
            "ControllerRevision {}/{}",
            kinds::namespace(&rev.metadata),
            kinds::name(&rev.metadata)
        )
    };
    let mut t = rev
        .data
        .as_ref()
        .and_then(|d| d.0.pointer("/spec/template"))
        .cloned()
        .ok_or_else(|| format!("{} has no spec.template in its data", what()))?;
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    let template = PodTemplateSpec::deserialize(&t)
        .map_err(|e| format!("{}: spec.template does not decode: {e}", what()))?;
    let mut s = set.clone();
    s.spec.get_or_insert_with(Default::default).template = template;
    Ok(s)
}

/// Which update revision `getStatefulSetRevisions` settles on.
#[derive(Debug, Clone)]
pub enum UpdateRevision {
    /// The newest revision already holds the template.
    Existing(Arc<ControllerRevision>),
    /// An older revision holds it: it is given this revision number (a rollback).
    Rollback(Arc<ControllerRevision>, i64),
    /// No revision holds it: this one is created.
    New(Box<ControllerRevision>),
}

/// `getStatefulSetRevisions`' choice of the update revision among `revisions` (sorted).
pub fn choose_update_revision(
    set: &StatefulSet,
    revisions: &[Arc<ControllerRevision>],
    collision_count: i32,
) -> UpdateRevision {
    let updated = new_revision(set, history::next_revision(revisions), collision_count);
    let equal = history::find_equal_revisions(revisions, &updated);
    match (equal.last(), revisions.last()) {
        (Some(eq), Some(last)) if history::equal_revision(last, eq) => {
            UpdateRevision::Existing(last.clone())
        }
        (Some(eq), _) => UpdateRevision::Rollback((*eq).clone(), updated.revision),
        (None, _) => UpdateRevision::New(Box::new(updated)),
    }
}

/// `truncateHistory`: the revisions that are neither current, update, nor any pod's,
/// oldest first, beyond `revisionHistoryLimit` (none when it is negative), to delete.
pub fn truncate_history(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    revisions: &[Arc<ControllerRevision>],
    current: &str,
    update: &str,
) -> Vec<Action> {
    let limit = i64::from(spec(set).revision_history_limit.unwrap_or(10));
    let live = |n: &str| n == current || n == update || pods.iter().any(|p| pod_revision(p) == n);
    let old: Vec<&Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| !live(kinds::name(&r.metadata)))
        .collect();
    if limit < 0 || old.len() as i64 <= limit {
        return vec![];
    }
    old[..old.len() - limit as usize]
        .iter()
        .map(|r| Action::Delete {
            r: res("controllerrevisions"),
            ns: kinds::namespace(&r.metadata).to_string(),
            name: kinds::name(&r.metadata).to_string(),
            propagation: None,
            uid: None,
        })
        .collect()
}

// --- the plan (stateful_set_control.go `updateStatefulSet`) ---

/// The revisions a sync works with.
#[derive(Debug, Clone, Copy)]
pub struct Revisions<'a> {
    /// `status.currentRevision` (or the update revision, the first time).
    pub current: &'a ControllerRevision,
    /// The revision of the set's template.
    pub update: &'a ControllerRevision,
    /// The set at the current revision (`ApplyRevision`).
    pub current_set: &'a StatefulSet,
    /// The set at the update revision.
    pub update_set: &'a StatefulSet,
    /// The collision count the revisions were named with.
    pub collision_count: i32,
}

/// An event recorded when a write fails: `message` and the error's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `FailedCreate`, `FailedUpdate`, `FailedDelete`.
    pub reason: &'static str,
    /// The message up to the error (`create Pod web-0 in StatefulSet web failed error: `).
    pub message: String,
}

/// One write, the events recorded when it is made and those when it fails.
#[derive(Debug, Clone)]
pub struct Step {
    /// The write (or an event).
    pub action: Action,
    /// Events after it succeeds.
    pub success: Vec<Action>,
    /// Events when it fails.
    pub failure: Vec<Failure>,
}

/// What a sync of a StatefulSet decided.
#[derive(Debug, Clone, Default)]
pub struct SetPlan {
    /// The writes in order; the first that fails ends them.
    pub steps: Vec<Step>,
    /// An error found without writing (a claim being deleted): the sync fails with it after
    /// the steps before it and the status.
    pub error: Option<String>,
    /// The set with its new status, when it changed.
    pub status: Option<StatefulSet>,
    /// Look again after this long (`minReadySeconds`).
    pub requeue_after: Option<Duration>,
}

struct Planner<'a> {
    set: &'a StatefulSet,
    revs: Revisions<'a>,
    claims: &'a HashMap<String, Arc<PersistentVolumeClaim>>,
    now: jiff::Timestamp,
    out: SetPlan,
}

impl Planner<'_> {
    fn event(&self, etype: &'static str, reason: &'static str, message: String) -> Action {
        Action::Event {
            about: reference(self.set),
            etype,
            reason,
            message,
        }
    }

    fn set_name(&self) -> &str {
        kinds::name(&self.set.metadata)
    }

    /// `recordPodEvent`'s success event.
    fn pod_success(&self, verb: &str, pod: &str) -> Action {
        let reason = match verb {
            "create" => "SuccessfulCreate",
            "update" => "SuccessfulUpdate",
            _ => "SuccessfulDelete",
        };
        self.event(
            "Normal",
            reason,
            format!(
                "{verb} Pod {pod} in StatefulSet {} successful",
                self.set_name()
            ),
        )
    }

    /// `recordPodEvent`'s failure event, the error to be appended.
    fn pod_failure(&self, verb: &str, pod: &str, detail: &str) -> Failure {
        Failure {
            reason: match verb {
                "create" => "FailedCreate",
                "update" => "FailedUpdate",
                _ => "FailedDelete",
            },
            message: format!(
                "{verb} Pod {pod} in StatefulSet {} failed error: {detail}",
                self.set_name()
            ),
        }
    }

    /// `DeleteStatefulPod`.
    fn delete_pod(&mut self, p: &Pod) {
        let name = kinds::name(&p.metadata).to_string();
        self.out.steps.push(Step {
            action: Action::Delete {
                r: res("pods"),
                ns: kinds::namespace(&self.set.metadata).to_string(),
                name: name.clone(),
                propagation: None,
                uid: p.metadata.uid.clone(),
            },
            success: vec![self.pod_success("delete", &name)],
            failure: vec![self.pod_failure("delete", &name, "")],
        });
    }

    /// `createPersistentVolumeClaims` for `pod` (at `set`): the claims the cache does not
    /// have are created, with the owners the retention policy wants (upstream sets them
    /// with an update once the claim is seen; the result is the same); a claim being deleted
    /// is an error. `pod_failure` is the pod event a failed create also records.
    fn create_claims(
        &mut self,
        set: &StatefulSet,
        pod: &Pod,
        pod_failure: Option<Failure>,
    ) -> Result<(), String> {
        let pname = kinds::name(&pod.metadata).to_string();
        let mut errs = vec![];
        for (_, mut c) in claims_for(set, ordinal(pod)) {
            let cname = kinds::name(&c.metadata).to_string();
            match self.claims.get(&cname) {
                None => {
                    update_claim_owner_refs(&mut c, set, pod);
                    if c.metadata
                        .owner_references
                        .as_ref()
                        .is_some_and(Vec::is_empty)
                    {
                        c.metadata.owner_references = None;
                    }
                    let mut failure = vec![Failure {
                        reason: "FailedCreate",
                        message: format!(
                            "create Claim {cname} for Pod {pname} in StatefulSet {} failed error: ",
                            self.set_name()
                        ),
                    }];
                    if let Some(f) = &pod_failure {
                        failure.push(Failure {
                            reason: f.reason,
                            message: format!("{}failed to create PVC {cname}: ", f.message),
                        });
                    }
                    self.out.steps.push(Step {
                        action: Action::Create {
                            r: res("persistentvolumeclaims"),
                            ns: kinds::namespace(&self.set.metadata).to_string(),
                            obj: c.into(),
                            report: None,
                        },
                        success: vec![self.event(
                            "Normal",
                            "SuccessfulCreate",
                            format!(
                                "create Claim {cname} Pod {pname} in StatefulSet {} success",
                                self.set_name()
                            ),
                        )],
                        failure,
                    });
                }
                Some(existing) if existing.metadata.deletion_timestamp.is_some() => {
                    errs.push(format!("pvc {cname} is being deleted"));
                }
                Some(_) => {}
            }
        }
        aggregate(errs)
    }

    /// `ClaimsMatchRetentionPolicy` over the cached claims (a missing one matches).
    fn claims_match(&self, set: &StatefulSet, pod: &Pod) -> bool {
        claims_for(set, ordinal(pod)).iter().all(|(_, c)| {
            self.claims
                .get(kinds::name(&c.metadata))
                .is_none_or(|c| claim_owner_up_to_date(c, set, pod))
        })
    }

    /// `UpdatePodClaimForRetentionPolicy`: the cached claims whose owners do not follow the
    /// policy are updated; `failure` is the event a failed update records.
    fn update_claims(&mut self, set: &StatefulSet, pod: &Pod, failure: Option<Failure>) {
        for (_, c) in claims_for(set, ordinal(pod)) {
            let cname = kinds::name(&c.metadata).to_string();
            let Some(cached) = self.claims.get(&cname) else {
                continue;
            };
            if claim_owner_up_to_date(cached, set, pod) {
                continue;
            }
            let mut claim = (**cached).clone();
            update_claim_owner_refs(&mut claim, set, pod);
            self.out.steps.push(Step {
                action: Action::Update {
                    r: res("persistentvolumeclaims"),
                    obj: claim.into(),
                    status: false,
                },
                success: vec![],
                failure: failure
                    .iter()
                    .map(|f| Failure {
                        reason: f.reason,
                        message: format!(
                            "{}Could not update claim {cname} for delete policy ownerRefs: ",
                            f.message
                        ),
                    })
                    .collect(),
            });
        }
    }

    /// `PodClaimIsStale`: with `whenScaled: Delete`, a claim that names another pod of the
    /// same name blocks the pod's creation.
    fn claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> bool {
        if retention_policy(set).1 == RETAIN {
            return false;
        }
        claims_for(set, ordinal(pod)).iter().any(|(_, c)| {
            self.claims
                .get(kinds::name(&c.metadata))
                .is_some_and(|c| has_stale_owner_ref(c, &pod_owner(pod)))
        })
    }

    /// `processReplica`: whether the monotonic walk stops here.
    fn process_replica(&mut self, monotonic: bool, pod: &Pod) -> bool {
        let set = self.set;
        let update_set = self.revs.update_set;
        let name = kinds::name(&pod.metadata).to_string();
        if matches!(phase(pod), "Failed" | "Succeeded") {
            if !is_terminating(pod) {
                self.delete_pod(pod);
            }
            return true;
        }
        if !is_created(pod) {
            if self.claim_is_stale(set, pod) {
                return true;
            }
            // CreateStatefulPod: the claims, then the pod
            let pod_failure = self.pod_failure("create", &name, "");
            if let Err(e) = self.create_claims(set, pod, Some(pod_failure)) {
                let ev = self.event(
                    "Warning",
                    "FailedCreate",
                    format!("{}{e}", self.pod_failure("create", &name, "").message),
                );
                self.out.steps.push(Step {
                    action: ev,
                    success: vec![],
                    failure: vec![],
                });
                self.out.error = Some(e);
                return true;
            }
            self.out.steps.push(Step {
                action: Action::Create {
                    r: res("pods"),
                    ns: kinds::namespace(&set.metadata).to_string(),
                    obj: pod.clone().into(),
                    report: None,
                },
                success: vec![self.pod_success("create", &name)],
                failure: vec![self.pod_failure("create", &name, "")],
            });
            // the claims that existed already get the owners the policy wants
            let update_failure = self.pod_failure("update", &name, "");
            self.update_claims(set, pod, Some(update_failure));
            // a new pod matches its identity and claims: nothing more to do for it
            return monotonic;
        }
        if phase(pod) == "Pending" {
            // createMissingPersistentVolumeClaims
            if let Err(e) = self.create_claims(set, pod, None) {
                self.out.error = Some(e);
                return true;
            }
            let update_failure = self.pod_failure("update", &name, "");
            self.update_claims(set, pod, Some(update_failure));
        }
        if monotonic
            && (is_terminating(pod)
                || !running_and_ready(pod)
                || !running_and_available(pod, min_ready(set), self.now))
        {
            return true;
        }
        let retention_match = self.claims_match(update_set, pod);
        if identity_matches(set, pod) && retention_match {
            return false;
        }
        // UpdateStatefulPod: the identity labels (a merge patch: the cache does not hold the
        // whole pod) and the claims' owners
        if !retention_match {
            let f = self.pod_failure("update", &name, "");
            self.update_claims(update_set, pod, Some(f));
        }
        let action = if identity_matches(set, pod) {
            // only the claims changed: upstream writes the pod as it is, which changes nothing
            self.pod_success("update", &name)
        } else {
            Action::Patch {
                r: res("pods"),
                ns: kinds::namespace(&set.metadata).to_string(),
                name: name.clone(),
                patch: json!({"metadata": {"labels": {
                    POD_NAME_LABEL: name,
                    POD_INDEX_LABEL: ordinal(pod).to_string(),
                }}}),
            }
        };
        let success = match action {
            Action::Event { .. } => vec![],
            _ => vec![self.pod_success("update", &name)],
        };
        self.out.steps.push(Step {
            action,
            success,
            failure: vec![self.pod_failure("update", &name, "")],
        });
        false
    }

    /// `processCondemned`: whether the monotonic walk stops here.
    fn process_condemned(
        &mut self,
        monotonic: bool,
        pod: &Pod,
        first_unhealthy: Option<&str>,
    ) -> bool {
        if is_terminating(pod) {
            return monotonic;
        }
        let is_first = first_unhealthy == Some(kinds::name(&pod.metadata));
        if monotonic
            && !is_first
            && (!running_and_ready(pod)
                || !running_and_available(pod, min_ready(self.set), self.now))
        {
            return true;
        }
        self.delete_pod(pod);
        true
    }
}

/// `utilerrors.NewAggregate(errs).Error()`.
fn aggregate(errs: Vec<String>) -> Result<(), String> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// The counts of `computeReplicaStatus` over `pods`.
fn count_status(
    st: &mut Counts,
    pods: &[&Pod],
    min_ready: i64,
    revs: &Revisions,
    now: jiff::Timestamp,
) {
    let current = kinds::name(&revs.current.metadata);
    let update = kinds::name(&revs.update.metadata);
    for p in pods {
        if is_created(p) {
            st.replicas += 1;
        }
        if running_and_ready(p) {
            st.ready += 1;
            if running_and_available(p, min_ready, now) {
                st.available += 1;
            }
        }
        if is_created(p) && !is_terminating(p) {
            let r = pod_revision(p);
            if r == current {
                st.current += 1;
            }
            if r == update {
                st.updated += 1;
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    replicas: i32,
    ready: i32,
    available: i32,
    current: i32,
    updated: i32,
}

/// The status `updateStatefulSet` computes, as the API serializes it (`omitempty` fields
/// left out when zero).
fn status_of(set: &StatefulSet, revs: &Revisions, c: Counts) -> StatefulSetStatus {
    let nz = |n: i32| (n != 0).then_some(n);
    let ne = |s: &str| (!s.is_empty()).then(|| s.to_string());
    StatefulSetStatus {
        observed_generation: set.metadata.generation.filter(|g| *g != 0),
        replicas: c.replicas,
        ready_replicas: nz(c.ready),
        current_replicas: nz(c.current),
        updated_replicas: nz(c.updated),
        available_replicas: Some(c.available),
        current_revision: ne(kinds::name(&revs.current.metadata)),
        update_revision: ne(kinds::name(&revs.update.metadata)),
        collision_count: Some(revs.collision_count),
        conditions: None,
    }
}

/// `completeRollingUpdate`: once every replica the status counts (`status.replicas`, not the
/// spec's) is updated and ready, the update revision is the current one.
fn complete_rolling_update(set: &StatefulSet, st: &mut StatefulSetStatus) {
    if update_type(set) == "RollingUpdate"
        && st.updated_replicas.unwrap_or(0) == st.replicas
        && st.ready_replicas.unwrap_or(0) == st.replicas
    {
        st.current_replicas = st.updated_replicas;
        st.current_revision = st.update_revision.clone();
    }
}

/// `inconsistentStatus`: whether the status is to be written.
fn inconsistent_status(set: &StatefulSet, st: &StatefulSetStatus) -> bool {
    let old = set.status.clone().unwrap_or_default();
    st.observed_generation.unwrap_or(0) > old.observed_generation.unwrap_or(0)
        || st.replicas != old.replicas
        || st.current_replicas.unwrap_or(0) != old.current_replicas.unwrap_or(0)
        || st.ready_replicas.unwrap_or(0) != old.ready_replicas.unwrap_or(0)
        || st.updated_replicas.unwrap_or(0) != old.updated_replicas.unwrap_or(0)
        || st.current_revision != old.current_revision
        || st.available_replicas.unwrap_or(0) != old.available_replicas.unwrap_or(0)
        || st.update_revision != old.update_revision
}

/// Syncs one StatefulSet (`updateStatefulSet`, `updateStatefulSetStatus`): `pods` are the pods
/// it claimed, `claims` the PersistentVolumeClaims of its namespace by name.
pub fn plan(
    set: &StatefulSet,
    revs: &Revisions,
    pods: &[Arc<Pod>],
    claims: &HashMap<String, Arc<PersistentVolumeClaim>>,
    now: jiff::Timestamp,
) -> SetPlan {
    let mut pl = Planner {
        set,
        revs: *revs,
        claims,
        now,
        out: SetPlan::default(),
    };
    let min_ready = min_ready(set);
    let start = start_ordinal(set);
    let count = replicas(set).max(0) as usize;
    // replicas by ordinal; the others with a valid ordinal are condemned
    let mut replica_pods: Vec<Option<Pod>> = vec![None; count];
    let mut condemned: Vec<&Pod> = vec![];
    for p in pods {
        if in_ordinal_range(p, set) {
            replica_pods[(ordinal(p) - start) as usize] = Some((**p).clone());
        } else if ordinal(p) >= 0 {
            condemned.push(p);
        }
    }
    let replica_pods: Vec<Pod> = replica_pods
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.unwrap_or_else(|| new_versioned_pod(revs, start + i as i64)))
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    let first_unhealthy: Option<String> = replica_pods
        .iter()
        .chain(condemned.iter().rev().copied())
        .find(|p| !is_healthy(p))
        .map(|p| kinds::name(&p.metadata).to_string());
    let mut counts = Counts::default();
    let mut current_adjust = 0;
    if set.metadata.deletion_timestamp.is_some() {
        let all: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
        count_status(&mut counts, &all, min_ready, revs, now);
    } else {
        let monotonic = spec(set).pod_management_policy.as_deref() != Some("Parallel");
        'work: {
            for p in &replica_pods {
                let stop = pl.process_replica(monotonic, p);
                if pl.out.error.is_some() || (monotonic && stop) {
                    break 'work;
                }
            }
            // the condemned pods' claims follow the policy
            for p in &condemned {
                if !pl.claims_match(revs.update_set, p) {
                    pl.update_claims(revs.update_set, p, None);
                }
            }
            for p in &condemned {
                if pl.process_condemned(monotonic, p, first_unhealthy.as_deref()) && monotonic {
                    break 'work;
                }
            }
            if update_type(set) == "OnDelete" {
                break 'work;
            }
            // the rolling update: from the highest ordinal down to the partition, one pod
            let update_min = spec(set)
                .update_strategy
                .as_ref()
                .and_then(|u| u.rolling_update.as_ref())
                .map_or(0, |r| i64::from(r.partition.unwrap_or(0)));
            let update_name = kinds::name(&revs.update.metadata);
            for target in (0..replica_pods.len()).rev() {
                if (target as i64) < update_min {
                    break;
                }
                let p = &replica_pods[target];
                if pod_revision(p) != update_name && !is_terminating(p) {
                    pl.delete_pod(p);
                    current_adjust = 1;
                    break 'work;
                }
                if !is_healthy(p) {
                    break 'work;
                }
            }
        }
        let all: Vec<&Pod> = replica_pods
            .iter()
            .chain(condemned.iter().copied())
            .collect();
        count_status(&mut counts, &all, min_ready, revs, now);
    }
    counts.current -= current_adjust;
    let mut st = status_of(set, revs, counts);
    complete_rolling_update(set, &mut st);
    if inconsistent_status(set, &st) {
        let mut s = set.clone();
        s.status = Some(st.clone());
        pl.out.status = Some(s);
    }
    if min_ready > 0 && i64::from(st.available_replicas.unwrap_or(0)) != replicas(set) {
        pl.out.requeue_after = Some(Duration::from_secs(min_ready as u64));
    }
    pl.out
}

// --- the controller (stateful_set.go) ---

/// The StatefulSet controller over the shared informers.
pub struct StatefulSetController {
    sets: Typed<StatefulSet>,
    pods: Typed<Pod>,
    revisions: Typed<ControllerRevision>,
    claims: Typed<PersistentVolumeClaim>,
    expect: Expectations,
}

impl StatefulSetController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> StatefulSetController {
        StatefulSetController {
            sets: informers.of::<StatefulSet>(),
            pods: informers.of::<Pod>(),
            revisions: informers.of::<ControllerRevision>(),
            claims: informers.of::<PersistentVolumeClaim>(),
            expect: Expectations::default(),
        }
    }

    /// The update revision `getStatefulSetRevisions` settles on, created or renumbered.
    async fn update_revision(
        &self,
        objects: &Objects,
        set: &StatefulSet,
        revisions: &[Arc<ControllerRevision>],
        collision_count: &mut i32,
    ) -> Result<ControllerRevision, ApiError> {
        match choose_update_revision(set, revisions, *collision_count) {
            UpdateRevision::Existing(r) => Ok((*r).clone()),
            UpdateRevision::Rollback(r, n) => {
                // realHistory.UpdateControllerRevision
                let mut u = (*r).clone();
                u.revision = n;
                let v = queue::Object::from(u)
                    .to_value()
                    .map_err(|e| ApiError::internal(format!("encoding the revision: {e}")))?;
                let stored = objects
                    .update(
                        res("controllerrevisions"),
                        kinds::namespace(&r.metadata),
                        kinds::name(&r.metadata),
                        v,
                        None,
                        false,
                    )
                    .await?;
                serde_json::from_value(stored).map_err(|e| {
                    ApiError::internal(format!("the updated revision does not decode: {e}"))
                })
            }
            UpdateRevision::New(r) => {
                history::create_controller_revision(
                    objects,
                    kinds::name(&set.metadata),
                    &r,
                    collision_count,
                )
                .await
            }
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.sets.prefix().to_string(),
            self.pods.prefix().to_string(),
            self.revisions.prefix().to_string(),
            self.claims.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if let Some(set) = change.obj::<StatefulSet>() {
            let k = kinds::key_of(&set.metadata);
            if change.deleted {
                self.expect.forget(&k);
            }
            return vec![k];
        }
        // revisions and claims are read, not watched (as upstream's listers)
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        // an orphan: offered to the sets selecting it (addPod / updatePod)
        let orphans =
            refmanager::orphan_keys(change, &self.sets, |s| s.spec.as_ref().map(|s| &s.selector));
        self.expect
            .pod_change_keys(change, pod, "StatefulSet", orphans)
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .sets
            .list()
            .iter()
            .map(|s| kinds::key_of(&s.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(set) = self.sets.get_named(ns, name) else {
            self.expect.forget(key);
            return Ok(None);
        };
        if let Some(left) = self.expect.wait_left(key) {
            // the informer shows the last writes first; their notices sync the set again, or
            // the expectations expire
            return Ok(Some(left));
        }
        let selector = spec(&set).selector.clone();
        // adoptOrphanRevisions and ListRevisions: the revisions it selects and owns or adopts
        let revision_candidates = self.revisions.by_index(index::NAMESPACE, ns);
        let mut rclaim = match refmanager::claim(&*set, &selector, &revision_candidates) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(statefulset = %key, error = %e, "not synced: its selector does not convert");
                return Ok(None);
            }
        };
        rclaim.release.clear();
        refmanager::apply_claim(objects, self.name(), &*set, &rclaim).await?;
        let mut revisions = rclaim.claimed;
        history::sort_controller_revisions(&mut revisions);
        // getPodsForStatefulSet: the pods named for it, claimed
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .by_index(index::NAMESPACE, ns)
            .into_iter()
            .filter(|p| is_member_of(&set, p))
            .collect();
        let pclaim = refmanager::claim(&*set, &selector, &candidates)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        refmanager::apply_claim(objects, self.name(), &*set, &pclaim).await?;
        let pods = pclaim.claimed;
        // getStatefulSetRevisions
        let mut collision_count = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let update = self
            .update_revision(objects, &set, &revisions, &mut collision_count)
            .await?;
        let current_name = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_default();
        let current = revisions
            .iter()
            .find(|r| kinds::name(&r.metadata) == current_name)
            .map(|r| (**r).clone())
            .unwrap_or_else(|| update.clone());
        let current_set = apply_revision(&set, &current).map_err(ApiError::internal)?;
        let update_set = apply_revision(&set, &update).map_err(ApiError::internal)?;
        let claims: HashMap<String, Arc<PersistentVolumeClaim>> = if spec(&set)
            .volume_claim_templates
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        {
            self.claims
                .by_index(index::NAMESPACE, ns)
                .into_iter()
                .map(|c| (kinds::name(&c.metadata).to_string(), c))
                .collect()
        } else {
            HashMap::new()
        };
        let revs = Revisions {
            current: &current,
            update: &update,
            current_set: &current_set,
            update_set: &update_set,
            collision_count,
        };
        let plan = plan(&set, &revs, &pods, &claims, jiff::Timestamp::now());
        // the writes, each with its events; the first failure ends them
        let mut observed = Observed::default();
        let mut failed: Option<ApiError> = None;
        for step in plan.steps {
            let before = observed.created.len();
            let creates = match &step.action {
                Action::Create { r, obj, .. } => Some((
                    *r,
                    match obj {
                        queue::Object::Pod(p) => kinds::name(&p.metadata).to_string(),
                        queue::Object::PersistentVolumeClaim(c) => {
                            kinds::name(&c.metadata).to_string()
                        }
                        _ => String::new(),
                    },
                )),
                _ => None,
            };
            match queue::apply_observed(objects, self.name(), vec![step.action], &mut observed)
                .await
            {
                Ok(()) if creates.is_some() && observed.created.len() == before => {
                    // already there: the cache is behind; no event, the set is synced again
                    // (CreateStatefulPod sinks the error)
                    let (r, n) = creates.unwrap_or_else(|| (res("pods"), String::new()));
                    failed = Some(ApiError::already_exists(r, &n));
                    break;
                }
                Ok(()) => {
                    queue::apply(objects, self.name(), step.success).await?;
                }
                Err(e) => {
                    for f in step.failure {
                        super::record(
                            objects,
                            self.name(),
                            &reference(&*set),
                            "Warning",
                            f.reason,
                            &format!("{}{}", f.message, e.message),
                        )
                        .await;
                    }
                    failed = Some(e);
                    break;
                }
            }
        }
        self.expect.expect_unseen(key, &observed, &self.pods);
        // the status, even after a failure (performUpdate)
        if let Some(s) = plan.status {
            let r = queue::apply(
                objects,
                self.name(),
                vec![Action::Update {
                    r: res("statefulsets"),
                    obj: s.into(),
                    status: true,
                }],
            )
            .await;
            if let (Err(e), None) = (r, &failed) {
                failed = Some(e);
            }
        }
        // truncateHistory, even after a failure
        let truncate = truncate_history(
            &set,
            &pods,
            &revisions,
            kinds::name(&current.metadata),
            kinds::name(&update.metadata),
        );
        let r = queue::apply(objects, self.name(), truncate).await;
        if let Some(e) = failed {
            return Err(e);
        }
        r?;
        if let Some(e) = plan.error {
            return Err(ApiError::internal(e));
        }
        Ok(plan.requeue_after)
    }
}

// --- validation (pkg/apis/apps/validation/validation.go) ---

fn opt_i(v: &Value, p: &str) -> Option<i64> {
    v.pointer(p).and_then(Value::as_i64)
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// `ValidateNonnegativeField`.
fn nonnegative(v: &Value, p: &str, field: &str, c: &mut Vec<Cause>) {
    if let Some(n) = opt_i(v, p).filter(|n| *n < 0) {
        c.push(Cause::invalid(
            field,
            n.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// `ValidateStatefulSetSpec` (the spec as JSON; the template's spec decoded, when given).
fn validate_spec(
    obj: &Value,
    template: Option<&k8s_openapi::api::core::v1::PodSpec>,
) -> Vec<Cause> {
    let mut c = vec![];
    match s(obj, "/spec/podManagementPolicy") {
        "" => c.push(Cause::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => c.push(Cause::invalid(
            "spec.podManagementPolicy",
            format!("{other:?}"),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let partition = opt_i(obj, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    let rolling = obj
        .pointer("/spec/updateStrategy/rollingUpdate")
        .filter(|v| !v.is_null());
    let rolling_go = || {
        format!("apps.RollingUpdateStatefulSetStrategy{{Partition:{partition}, MaxUnavailable:(*intstr.IntOrString)(nil)}}")
    };
    match s(obj, "/spec/updateStrategy/type") {
        "" => c.push(Cause::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if rolling.is_some() {
                c.push(Cause::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    rolling_go(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if rolling.is_some() {
                nonnegative(
                    obj,
                    "/spec/updateStrategy/rollingUpdate/partition",
                    "spec.updateStrategy.rollingUpdate.partition",
                    &mut c,
                );
            }
        }
        other => c.push(Cause::invalid(
            "spec.updateStrategy",
            format!(
                "apps.StatefulSetUpdateStrategy{{Type:{other:?}, RollingUpdate:{}}}",
                if rolling.is_some() {
                    "(*apps.RollingUpdateStatefulSetStrategy)(0x…)"
                } else {
                    "(*apps.RollingUpdateStatefulSetStrategy)(nil)"
                }
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    // ValidatePersistentVolumeClaimRetentionPolicy
    if let Some(p) = obj
        .pointer("/spec/persistentVolumeClaimRetentionPolicy")
        .filter(|v| v.is_object())
    {
        for f in ["whenDeleted", "whenScaled"] {
            let v = s(p, &format!("/{f}"));
            if !matches!(v, RETAIN | DELETE) {
                // upstream prints the sorted set (`sets.List`)
                c.push(Cause::not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{f}"),
                    format!("{v:?}"),
                    &[DELETE, RETAIN],
                ));
            }
        }
    }
    nonnegative(obj, "/spec/replicas", "spec.replicas", &mut c);
    nonnegative(obj, "/spec/minReadySeconds", "spec.minReadySeconds", &mut c);
    nonnegative(obj, "/spec/ordinals/start", "spec.ordinals.start", &mut c);
    // the typed spec always has a selector, so an absent one arrives as `{}`
    let sel = obj
        .pointer("/spec/selector")
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
    match sel {
        None => c.push(Cause::required("spec.selector", "")),
        Some(sel) => {
            let before = c.len();
            crate::validation::validate_label_selector(sel, "spec.selector", &mut c);
            let n = |k: &str| {
                sel.get(k).and_then(Value::as_object).map_or(0, |m| m.len())
                    + sel.get(k).and_then(Value::as_array).map_or(0, Vec::len)
            };
            if n("matchLabels") + n("matchExpressions") == 0 {
                c.push(Cause::invalid(
                    "spec.selector",
                    "v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement{}}",
                    "empty selector is invalid for statefulset",
                ));
            }
            // ValidatePodTemplateSpecForStatefulSet, once the selector converts
            let selector: Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector, _> =
                serde_json::from_value(sel.clone());
            if c.len() == before {
                if let Ok(selector) = selector {
                    let labels = obj.pointer("/spec/template/metadata/labels");
                    let typed: Option<BTreeMap<String, String>> =
                        labels.and_then(|l| serde_json::from_value(l.clone()).ok());
                    if !refmanager::selector_is_empty(&selector)
                        && !refmanager::selects(&selector, typed.as_ref()).unwrap_or(false)
                    {
                        c.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            super::job::go_map(labels),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            }
        }
    }
    // ValidatePodTemplateSpecForStatefulSet: the template's labels and annotations are checked
    // with every workload's (`admission::validate`); the pod spec itself is not validated
    // (upstream's TODO: its volumes lack the claim templates' until the pods are made)
    // a spec that was not decoded is read for the two fields the rule needs
    let read;
    let t = match template {
        Some(t) => t,
        None => {
            read = k8s_openapi::api::core::v1::PodSpec {
                restart_policy: obj
                    .pointer("/spec/template/spec/restartPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                active_deadline_seconds: obj
                    .pointer("/spec/template/spec/activeDeadlineSeconds")
                    .and_then(Value::as_i64),
                ..Default::default()
            };
            &read
        }
    };
    crate::admission::validate_long_running_template(t, "StatefulSet", &mut c);
    c
}

/// `ValidateStatefulSetStatus` and `ValidateStatefulSetStatusUpdate`'s collision count.
fn validate_status(obj: &Value, old: &Value) -> Vec<Cause> {
    let mut c = vec![];
    for f in [
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
        "observedGeneration",
        "collisionCount",
    ] {
        nonnegative(obj, &format!("/status/{f}"), &format!("status.{f}"), &mut c);
    }
    let n = |f: &str| opt_i(obj, &format!("/status/{f}")).unwrap_or(0);
    let replicas = n("replicas");
    for f in [
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
    ] {
        if n(f) > replicas {
            c.push(Cause::invalid(
                format!("status.{f}"),
                n(f).to_string(),
                "cannot be greater than status.replicas",
            ));
        }
    }
    if n("availableReplicas") > n("readyReplicas") {
        c.push(Cause::invalid(
            "status.availableReplicas",
            n("availableReplicas").to_string(),
            "cannot be greater than status.readyReplicas",
        ));
    }
    // apivalidation.IsDecremented
    if let Some(was) = opt_i(old, "/status/collisionCount") {
        let now = opt_i(obj, "/status/collisionCount");
        if now.is_none_or(|n| n < was) {
            c.push(Cause::invalid(
                "status.collisionCount",
                now.unwrap_or(0).to_string(),
                "cannot be decremented",
            ));
        }
    }
    c
}

/// `ValidateStatefulSet` / `ValidateStatefulSetUpdate` past the object metadata (which the
/// server checks for every kind), or, for a status write (`template` `None` with `old`),
/// `ValidateStatefulSetStatusUpdate`. `template` is the template's pod spec as the server
/// decoded it: `Some(None)` for a template without a spec.
pub fn validate_statefulset_decoded(
    obj: &Value,
    old: Option<&Value>,
    template: Option<Option<&k8s_openapi::api::core::v1::PodSpec>>,
) -> Vec<Cause> {
    let Some(template) = template else {
        return match old {
            Some(old) => validate_status(obj, old),
            None => validate_spec(obj, None),
        };
    };
    let mut c = validate_spec(obj, template);
    if let Some(old) = old {
        // the fields an update may change are taken from the old spec; anything else that
        // differs is forbidden (apiequality.Semantic.DeepEqual)
        let strip = |v: &Value| {
            let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(m) = spec.as_object_mut() {
                for f in [
                    "replicas",
                    "template",
                    "updateStrategy",
                    "minReadySeconds",
                    "ordinals",
                    "persistentVolumeClaimRetentionPolicy",
                ] {
                    m.remove(f);
                }
            }
            spec
        };
        if !crate::podupdate::semantic_eq(&strip(obj), &strip(old)) {
            c.push(Cause::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn set_with(replicas: i64, extra: Value) -> StatefulSet {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "a", "uid": "s1", "generation": 2, "resourceVersion": "7"},
            "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn rev(set: &StatefulSet, n: i64) -> ControllerRevision {
        let mut r = new_revision(set, n, 0);
        r.metadata.namespace = Some("a".into());
        r
    }

    /// A pod of `set` at `revision`, Running and Ready when `ready`.
    fn pod(ord: i64, revision: &str, phase: &str, ready: bool) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": format!("web-{ord}"), "namespace": "a", "uid": format!("u{ord}"),
            "labels": {"app": "web", POD_NAME_LABEL: format!("web-{ord}"), POD_INDEX_LABEL: ord.to_string(),
                history::POD_REVISION_HASH_LABEL: revision},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s1", "controller": true}]},
            "spec": {"containers": []}, "status": {"phase": phase}});
        if ready {
            v["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    struct Fixture {
        set: StatefulSet,
        current: ControllerRevision,
        update: ControllerRevision,
        current_set: StatefulSet,
        update_set: StatefulSet,
    }

    impl Fixture {
        /// The set at one revision.
        fn new(set: StatefulSet) -> Fixture {
            let r = rev(&set, 1);
            Fixture {
                current_set: apply_revision(&set, &r).unwrap(),
                update_set: apply_revision(&set, &r).unwrap(),
                current: r.clone(),
                update: r,
                set,
            }
        }

        /// The set whose template changed from `old`'s.
        fn updated(old: &StatefulSet, set: StatefulSet) -> Fixture {
            let c = rev(old, 1);
            let u = rev(&set, 2);
            Fixture {
                current_set: apply_revision(&set, &c).unwrap(),
                update_set: apply_revision(&set, &u).unwrap(),
                current: c,
                update: u,
                set,
            }
        }

        fn revs(&self) -> Revisions<'_> {
            Revisions {
                current: &self.current,
                update: &self.update,
                current_set: &self.current_set,
                update_set: &self.update_set,
                collision_count: 0,
            }
        }

        fn cur(&self) -> String {
            kinds::name(&self.current.metadata).to_string()
        }

        fn upd(&self) -> String {
            kinds::name(&self.update.metadata).to_string()
        }

        fn plan(&self, pods: &[Arc<Pod>]) -> SetPlan {
            self.plan_with(pods, &HashMap::new())
        }

        fn plan_with(
            &self,
            pods: &[Arc<Pod>],
            claims: &HashMap<String, Arc<PersistentVolumeClaim>>,
        ) -> SetPlan {
            plan(&self.set, &self.revs(), pods, claims, now())
        }
    }

    fn created(p: &SetPlan) -> Vec<String> {
        p.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Create { obj, .. } => Some(
                    obj.to_value().unwrap()["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ),
                _ => None,
            })
            .collect()
    }

    fn deleted(p: &SetPlan) -> Vec<String> {
        p.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn events(p: &SetPlan) -> Vec<String> {
        p.steps
            .iter()
            .flat_map(|s| std::iter::once(&s.action).chain(s.success.iter()))
            .filter_map(|a| match a {
                Action::Event {
                    reason, message, ..
                } => Some(format!("{reason}: {message}")),
                _ => None,
            })
            .collect()
    }

    /// A pod's change syncs the set controlling it (before and after the change) and, for an
    /// orphan, the sets selecting it; what the informer shows meets the expectations.
    #[tokio::test]
    async fn pod_changes_sync_their_sets() {
        use super::queue::Controller as _;
        let store: Arc<dyn kubepull_datastore::Datastore> =
            Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let informers = Informers::new(store);
        let mut c = StatefulSetController::new(&informers);
        let notice = |p: Arc<Pod>, deleted: bool| Notice {
            key: format!("/registry/pods/a/{}", kinds::name(&p.metadata)),
            obj: kinds::Cached::Pod(p),
            old: None,
            deleted,
        };
        c.expect.expect(
            "a/web",
            ["u0".to_string()].into(),
            ["u1".to_string()].into(),
        );
        assert_eq!(
            c.keys_for(&notice(pod(0, "r", "Pending", false), false)),
            ["a/web"]
        );
        assert!(!c.expect.satisfied("a/web"), "the deletion is not seen yet");
        assert_eq!(
            c.keys_for(&notice(pod(1, "r", "Running", true), true)),
            ["a/web"]
        );
        assert!(c.expect.satisfied("a/web"));
        // another controller's pod is not the set's
        let mut other = (*pod(2, "r", "Running", true)).clone();
        other.metadata.owner_references.as_mut().unwrap()[0].kind = "ReplicaSet".into();
        assert!(c.keys_for(&notice(Arc::new(other), false)).is_empty());
    }

    /// A sync while creations or deletions are not yet seen writes nothing and asks to be
    /// tried again when the expectations expire, so a missed notice does not stall the set.
    #[tokio::test]
    async fn a_sync_waiting_for_its_writes_comes_back_when_they_expire() {
        use super::queue::Controller as _;
        use crate::controllers::informer::test_support::Env;
        let env = Env::new().await;
        let mut c = StatefulSetController::new(&env.informers);
        env.put::<StatefulSet>(serde_json::to_value(set_with(1, json!({}))).unwrap())
            .await;
        env.refresh::<StatefulSet>().await;
        c.expect
            .expect("a/web", ["u0".to_string()].into(), Default::default());
        let left = c.sync(&env.objects, "a/web").await.unwrap();
        assert!(
            left.is_some_and(
                |d| d > Duration::ZERO && d <= super::super::expectations::EXPECTATIONS_TIMEOUT
            ),
            "{left:?}"
        );
        assert!(env.stored::<Pod>().await.is_empty());
    }

    /// `completeRollingUpdate` counts against the replicas the status has, not the spec's.
    #[test]
    fn a_rolling_update_completes_over_the_status_replicas() {
        let set = set_with(3, json!({}));
        let mut st = StatefulSetStatus {
            replicas: 2,
            ready_replicas: Some(2),
            updated_replicas: Some(2),
            current_replicas: Some(1),
            current_revision: Some("r1".into()),
            update_revision: Some("r2".into()),
            ..Default::default()
        };
        complete_rolling_update(&set, &mut st);
        assert_eq!(st.current_revision.as_deref(), Some("r2"));
        assert_eq!(st.current_replicas, Some(2));
        st.ready_replicas = Some(1);
        st.current_revision = Some("r1".into());
        complete_rolling_update(&set, &mut st);
        assert_eq!(st.current_revision.as_deref(), Some("r1"));
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-0"), ("web", 0));
        assert_eq!(parent_and_ordinal("my-web-12"), ("my-web", 12));
        assert_eq!(parent_and_ordinal("web-"), ("", -1));
        assert_eq!(parent_and_ordinal("web-1a"), ("", -1));
        assert_eq!(parent_and_ordinal("web"), ("", -1));
        // does not fit an int32: the parent, no ordinal
        assert_eq!(parent_and_ordinal("web-99999999999"), ("web", -1));
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time_with_its_identity() {
        let f = Fixture::new(set_with(3, json!({})));
        let p = f.plan(&[]);
        assert_eq!(created(&p), ["web-0"]);
        assert_eq!(
            events(&p),
            ["SuccessfulCreate: create Pod web-0 in StatefulSet web successful"]
        );
        let Action::Create { obj, report, .. } = &p.steps[0].action else {
            panic!()
        };
        assert!(report.is_none());
        let v = obj.to_value().unwrap();
        assert_eq!(v["metadata"]["generateName"], "web-");
        assert_eq!(v["metadata"]["labels"][POD_NAME_LABEL], "web-0");
        assert_eq!(v["metadata"]["labels"][POD_INDEX_LABEL], "0");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert_eq!(
            v["metadata"]["labels"][history::POD_REVISION_HASH_LABEL],
            f.upd()
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(v["spec"]["hostname"], "web-0");
        assert_eq!(v["spec"]["subdomain"], "nginx");
        // web-0 created but not ready: nothing more
        let r = f.upd();
        assert!(created(&f.plan(&[pod(0, &r, "Pending", false)])).is_empty());
        assert!(created(&f.plan(&[pod(0, &r, "Running", false)])).is_empty());
        // ready: the next one
        assert_eq!(created(&f.plan(&[pod(0, &r, "Running", true)])), ["web-1"]);
        // a gap is filled first
        assert_eq!(created(&f.plan(&[pod(1, &r, "Running", true)])), ["web-0"]);
    }

    #[test]
    fn ordinals_start_where_the_spec_says() {
        let f = Fixture::new(set_with(2, json!({"spec": {"ordinals": {"start": 5}}})));
        assert_eq!(created(&f.plan(&[])), ["web-5"]);
        // web-0 is out of the range 5..=6: condemned once the replicas are healthy
        let r = f.upd();
        let p = f.plan(&[
            pod(0, &r, "Running", true),
            pod(5, &r, "Running", true),
            pod(6, &r, "Running", true),
        ]);
        assert_eq!(deleted(&p), ["web-0"]);
    }

    #[test]
    fn parallel_creates_and_deletes_without_waiting() {
        let f = Fixture::new(set_with(
            3,
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ));
        assert_eq!(created(&f.plan(&[])), ["web-0", "web-1", "web-2"]);
        let r = f.upd();
        let f1 = Fixture::new(set_with(
            1,
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ));
        let p = f1.plan(&[
            pod(0, &r, "Running", true),
            pod(1, &r, "Pending", false),
            pod(2, &r, "Running", true),
        ]);
        assert_eq!(deleted(&p), ["web-2", "web-1"]);
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
        let f = Fixture::new(set_with(1, json!({})));
        let r = f.upd();
        let all = [
            pod(0, &r, "Running", true),
            pod(1, &r, "Running", true),
            pod(2, &r, "Running", true),
        ];
        let p = f.plan(&all);
        assert_eq!(deleted(&p), ["web-2"]);
        assert_eq!(
            events(&p),
            ["SuccessfulDelete: delete Pod web-2 in StatefulSet web successful"]
        );
        assert!(p.steps[0]
            .failure
            .iter()
            .any(|f| f.message == "delete Pod web-2 in StatefulSet web failed error: "));
        // web-2 terminating: wait for it
        let mut gone: Pod = (*all[2]).clone();
        gone.metadata.deletion_timestamp = Some(kinds::meta_time(now()));
        assert!(deleted(&f.plan(&[all[0].clone(), all[1].clone(), Arc::new(gone)])).is_empty());
        // web-2 gone: web-1 next
        assert_eq!(deleted(&f.plan(&all[..2])), ["web-1"]);
        // an unhealthy replica halts the scale down, unless it is the condemned pod itself
        let p = f.plan(&[pod(0, &r, "Running", false), all[1].clone()]);
        assert!(deleted(&p).is_empty());
        let p = f.plan(&[all[0].clone(), pod(1, &r, "Running", false)]);
        assert_eq!(deleted(&p), ["web-1"]);
    }

    #[test]
    fn failed_and_succeeded_pods_are_deleted_to_be_created_again() {
        let f = Fixture::new(set_with(2, json!({})));
        let r = f.upd();
        let p = f.plan(&[pod(0, &r, "Failed", false), pod(1, &r, "Running", true)]);
        assert_eq!(deleted(&p), ["web-0"]);
        assert!(created(&p).is_empty());
        let p = f.plan(&[pod(0, &r, "Running", true), pod(1, &r, "Succeeded", false)]);
        assert_eq!(deleted(&p), ["web-1"]);
    }

    #[test]
    fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
        let old = set_with(3, json!({}));
        let new = set_with(
            3,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}}),
        );
        let f = Fixture::updated(&old, new.clone());
        let (c, u) = (f.cur(), f.upd());
        assert_ne!(c, u);
        let at = |revs: [&str; 3]| -> Vec<Arc<Pod>> {
            (0..3)
                .map(|i| pod(i, revs[i as usize], "Running", true))
                .collect()
        };
        let p = f.plan(&at([&c, &c, &c]));
        assert_eq!(deleted(&p), ["web-2"]);
        // the status counts the deleted pod out of the current ones
        let st = p.status.as_ref().unwrap().status.as_ref().unwrap();
        assert_eq!(st.current_replicas, Some(2));
        assert_eq!(st.update_revision.as_deref(), Some(u.as_str()));
        // web-2 recreated at the update revision and not ready yet: wait
        let mut pods = at([&c, &c, &u]);
        pods[2] = pod(2, &u, "Running", false);
        assert!(deleted(&f.plan(&pods)).is_empty());
        // ready: web-1 next
        assert_eq!(deleted(&f.plan(&at([&c, &c, &u]))), ["web-1"]);
        // the recreated pod takes the template of its revision
        let mut missing = at([&c, &u, &u]);
        missing.remove(1);
        let p = f.plan(&missing);
        assert_eq!(created(&p), ["web-1"]);
        let Action::Create { obj, .. } = &p.steps[0].action else {
            panic!()
        };
        let v = obj.to_value().unwrap();
        assert_eq!(v["spec"]["containers"][0]["image"], "y");
        assert_eq!(v["metadata"]["labels"][history::POD_REVISION_HASH_LABEL], u);
        // a partition of 2 keeps web-0 and web-1 at the current revision
        let part = set_with(
            3,
            json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}},
                "template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}}),
        );
        let f2 = Fixture::updated(&old, part);
        let (c2, u2) = (f2.cur(), f2.upd());
        let p = f2.plan(&at([&c2, &c2, &u2]));
        assert!(deleted(&p).is_empty());
        // a pod below the partition is created at the current revision
        let mut pods = at([&c2, &c2, &u2]);
        pods.remove(0);
        let p = f2.plan(&pods);
        let Action::Create { obj, .. } = &p.steps[0].action else {
            panic!()
        };
        let v = obj.to_value().unwrap();
        assert_eq!(v["spec"]["containers"][0]["image"], "x");
        assert_eq!(
            v["metadata"]["labels"][history::POD_REVISION_HASH_LABEL],
            c2
        );
        // complete: every pod updated and ready, the update revision becomes the current one
        let done = f.plan(&at([&u, &u, &u]));
        let st = done.status.as_ref().unwrap().status.as_ref().unwrap();
        assert_eq!(st.current_revision.as_deref(), Some(u.as_str()));
        assert_eq!(st.current_replicas, Some(3));
    }

    #[test]
    fn on_delete_leaves_pods_at_their_revision() {
        let old = set_with(2, json!({}));
        let new = set_with(
            2,
            json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
                "template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}}),
        );
        let f = Fixture::updated(&old, new);
        let c = f.cur();
        let p = f.plan(&[pod(0, &c, "Running", true), pod(1, &c, "Running", true)]);
        assert!(deleted(&p).is_empty() && created(&p).is_empty());
        // a deleted pod comes back at the update revision
        let p = f.plan(&[pod(0, &c, "Running", true)]);
        let Action::Create { obj, .. } = &p.steps[0].action else {
            panic!()
        };
        assert_eq!(
            obj.to_value().unwrap()["spec"]["containers"][0]["image"],
            "y"
        );
    }

    fn claims_set(policy: Value) -> StatefulSet {
        set_with(
            2,
            json!({"spec": {"persistentVolumeClaimRetentionPolicy": policy,
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
                "template": {"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]}}}}),
        )
    }

    #[test]
    fn claims_are_created_before_the_pod_that_mounts_them() {
        let f = Fixture::new(claims_set(
            json!({"whenDeleted": "Delete", "whenScaled": "Retain"}),
        ));
        let p = f.plan(&[]);
        assert_eq!(created(&p), ["data-web-0", "web-0"]);
        let Action::Create { obj: claim, .. } = &p.steps[0].action else {
            panic!()
        };
        let c = claim.to_value().unwrap();
        assert_eq!(c["kind"], "PersistentVolumeClaim");
        assert_eq!(c["metadata"]["labels"], json!({"tier": "db", "app": "web"}));
        // whenDeleted: Delete: the set owns the claim
        assert_eq!(c["metadata"]["ownerReferences"][0]["uid"], "s1");
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1Gi");
        let Action::Create { obj: pod_obj, .. } = &p.steps[1].action else {
            panic!()
        };
        // the claim's volume replaces the template's volume of that name
        assert_eq!(
            pod_obj.to_value().unwrap()["spec"]["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                {"name": "cache", "emptyDir": {}}])
        );
        assert_eq!(
            events(&p),
            [
                "SuccessfulCreate: create Claim data-web-0 Pod web-0 in StatefulSet web success",
                "SuccessfulCreate: create Pod web-0 in StatefulSet web successful"
            ]
        );
        // a failed claim create names the claim and the pod
        assert_eq!(
            p.steps[0].failure,
            [
                Failure {
                    reason: "FailedCreate",
                    message: "create Claim data-web-0 for Pod web-0 in StatefulSet web failed error: ".into()
                },
                Failure {
                    reason: "FailedCreate",
                    message: "create Pod web-0 in StatefulSet web failed error: failed to create PVC data-web-0: ".into()
                }
            ]
        );
        // Retain/Retain: no owner
        let f = Fixture::new(claims_set(
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        ));
        let Action::Create { obj, .. } = &f.plan(&[]).steps[0].action else {
            panic!()
        };
        assert!(obj.to_value().unwrap()["metadata"]
            .get("ownerReferences")
            .is_none());
    }

    fn claim(name: &str, owners: Value) -> Arc<PersistentVolumeClaim> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "a", "resourceVersion": "3",
                "ownerReferences": owners}, "spec": {}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn a_claim_being_deleted_holds_the_pod_back() {
        let f = Fixture::new(claims_set(
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        ));
        let mut c = (*claim("data-web-0", json!([]))).clone();
        c.metadata.deletion_timestamp = Some(kinds::meta_time(now()));
        let claims = HashMap::from([("data-web-0".to_string(), Arc::new(c))]);
        let p = f.plan_with(&[], &claims);
        assert!(created(&p).is_empty());
        assert_eq!(p.error.as_deref(), Some("pvc data-web-0 is being deleted"));
        assert_eq!(
            events(&p),
            ["FailedCreate: create Pod web-0 in StatefulSet web failed error: pvc data-web-0 is being deleted"]
        );
    }

    #[test]
    fn claims_follow_the_retention_policy() {
        let set = claims_set(json!({"whenDeleted": "Retain", "whenScaled": "Delete"}));
        let f = Fixture::new(set);
        let r = f.upd();
        let p0 = pod(0, &r, "Running", true);
        let p1 = pod(1, &r, "Running", true);
        let p2 = pod(2, &r, "Running", true);
        let claims: HashMap<String, Arc<PersistentVolumeClaim>> = [0, 1, 2]
            .iter()
            .map(|i| {
                let n = format!("data-web-{i}");
                (n.clone(), claim(&n, json!([])))
            })
            .collect();
        // web-2 is scaled down: its claim gets the pod as controller, then the pod goes
        let p = f.plan_with(&[p0, p1, p2], &claims);
        let updates: Vec<Value> = p
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Update {
                    obj, status: false, ..
                } => Some(obj.to_value().unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(updates.len(), 1, "{updates:?}");
        assert_eq!(updates[0]["metadata"]["name"], "data-web-2");
        assert_eq!(
            updates[0]["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "web-2", "uid": "u2", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(deleted(&p), ["web-2"]);
        // a claim still naming an earlier web-0 blocks its creation
        let stale = HashMap::from([(
            "data-web-0".to_string(),
            claim(
                "data-web-0",
                json!([{"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "old", "controller": true}]),
            ),
        )]);
        assert!(created(&f.plan_with(&[], &stale)).is_empty());
    }

    #[test]
    fn claim_owner_rules() {
        let set = claims_set(json!({"whenDeleted": "Delete", "whenScaled": "Delete"}));
        let r = "r";
        let in_range = pod(1, r, "Running", true);
        let scaled = pod(5, r, "Running", true);
        let set_ref = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s1", "controller": true});
        let pod_ref = json!({"apiVersion": "v1", "kind": "Pod", "name": "web-5", "uid": "u5", "controller": true});
        assert!(claim_owner_up_to_date(
            &claim("c", json!([set_ref])),
            &set,
            &in_range
        ));
        assert!(!claim_owner_up_to_date(
            &claim("c", json!([])),
            &set,
            &in_range
        ));
        assert!(!claim_owner_up_to_date(
            &claim("c", json!([set_ref])),
            &set,
            &scaled
        ));
        assert!(claim_owner_up_to_date(
            &claim("c", json!([pod_ref])),
            &set,
            &scaled
        ));
        // another controller: left alone
        let other = json!({"apiVersion": "x/v1", "kind": "X", "name": "x", "uid": "x1", "controller": true});
        assert!(claim_owner_up_to_date(
            &claim("c", json!([other])),
            &set,
            &in_range
        ));
        let mut c = (*claim(
            "c",
            json!([other, {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "u1"}]),
        ))
        .clone();
        assert!(!claim_owner_up_to_date(&c, &set, &in_range));
        update_claim_owner_refs(&mut c, &set, &in_range);
        assert_eq!(
            serde_json::to_value(&c.metadata.owner_references).unwrap(),
            json!([other])
        );
    }

    #[test]
    fn the_status_is_written_only_when_it_changes() {
        let f = Fixture::new(set_with(2, json!({"spec": {"minReadySeconds": 3600}})));
        let r = f.upd();
        let pods = [pod(0, &r, "Running", true), pod(1, &r, "Pending", false)];
        let p = f.plan(&pods);
        let s = p.status.clone().unwrap();
        let st = s.status.as_ref().unwrap();
        assert_eq!(st.replicas, 2);
        assert_eq!(st.ready_replicas, Some(1));
        assert_eq!(st.available_replicas, Some(0));
        assert_eq!(st.current_replicas, Some(2));
        assert_eq!(st.updated_replicas, Some(2));
        assert_eq!(st.observed_generation, Some(2));
        assert_eq!(st.collision_count, Some(0));
        assert_eq!(st.current_revision.as_deref(), Some(r.as_str()));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(3600)));
        let settled = Fixture { set: s, ..f };
        assert!(settled.plan(&pods).status.is_none());
    }

    #[test]
    fn a_set_being_deleted_only_reports() {
        let mut set = set_with(3, json!({}));
        set.metadata.deletion_timestamp = Some(kinds::meta_time(now()));
        let f = Fixture::new(set);
        let p = f.plan(&[pod(5, &f.upd(), "Running", true)]);
        assert!(p.steps.is_empty());
        assert_eq!(p.status.unwrap().status.unwrap().replicas, 1);
    }

    #[test]
    fn a_pod_without_its_identity_labels_is_patched() {
        let f = Fixture::new(set_with(1, json!({})));
        let mut p0 = (*pod(0, &f.upd(), "Running", true)).clone();
        p0.metadata.labels.as_mut().unwrap().remove(POD_NAME_LABEL);
        let p = f.plan(&[Arc::new(p0)]);
        let Action::Patch { name, patch, .. } = &p.steps[0].action else {
            panic!("{:?}", p.steps)
        };
        assert_eq!(name, "web-0");
        assert_eq!(patch["metadata"]["labels"][POD_NAME_LABEL], "web-0");
        assert_eq!(
            events(&p),
            ["SuccessfulUpdate: update Pod web-0 in StatefulSet web successful"]
        );
    }

    #[test]
    fn revisions_are_reused_created_and_rolled_back() {
        let a = set_with(1, json!({}));
        let b = set_with(
            1,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}}),
        );
        let ra = Arc::new(rev(&a, 1));
        let rb = Arc::new(rev(&b, 2));
        assert!(
            matches!(choose_update_revision(&a, &[], 0), UpdateRevision::New(r) if r.revision == 1)
        );
        assert!(
            matches!(choose_update_revision(&a, std::slice::from_ref(&ra), 0), UpdateRevision::Existing(r) if r.revision == 1)
        );
        assert!(
            matches!(choose_update_revision(&b, std::slice::from_ref(&ra), 0), UpdateRevision::New(r) if r.revision == 2)
        );
        // back to a's template: a's revision renumbered 3
        assert!(matches!(
            choose_update_revision(&a, &[ra.clone(), rb.clone()], 0),
            UpdateRevision::Rollback(r, 3) if r.revision == 1
        ));
        // the revision data restores the template
        let restored = apply_revision(&a, &rb).unwrap();
        assert_eq!(
            restored.spec.unwrap().template.spec.unwrap().containers[0]
                .image
                .as_deref(),
            Some("y")
        );
        assert_eq!(get_patch(&a)["spec"]["template"]["$patch"], "replace");
        let broken = ControllerRevision {
            data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(
                json!({}),
            )),
            ..(*ra).clone()
        };
        assert!(apply_revision(&a, &broken)
            .unwrap_err()
            .contains("has no spec.template"));
    }

    #[test]
    fn history_keeps_the_live_revisions_and_the_limit() {
        let mut set = set_with(1, json!({"spec": {"revisionHistoryLimit": 1}}));
        let revs: Vec<Arc<ControllerRevision>> = (1..=5)
            .map(|i| {
                let s = set_with(
                    1,
                    json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": format!("i{i}")}]}}}}),
                );
                Arc::new(rev(&s, i))
            })
            .collect();
        let name = |i: usize| kinds::name(&revs[i].metadata).to_string();
        let pods = [pod(0, &name(1), "Running", true)];
        let del = truncate_history(&set, &pods, &revs, &name(3), &name(4));
        let gone: Vec<String> = del
            .iter()
            .map(|a| match a {
                Action::Delete { name, .. } => name.clone(),
                _ => panic!(),
            })
            .collect();
        // 0 and 2 are not live; one of them is kept: the newer
        assert_eq!(gone, [name(0)]);
        set.spec.as_mut().unwrap().revision_history_limit = Some(-1);
        assert!(truncate_history(&set, &pods, &revs, &name(3), &name(4)).is_empty());
    }

    fn valid() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "a"},
            "spec": {"replicas": 1, "serviceName": "nginx", "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "x"}]}}}})
    }

    fn texts(obj: &Value, old: Option<&Value>) -> Vec<String> {
        let spec: Option<k8s_openapi::api::core::v1::PodSpec> = obj
            .pointer("/spec/template/spec")
            .map(|s| serde_json::from_value(s.clone()).unwrap());
        validate_statefulset_decoded(obj, old, Some(spec.as_ref()))
            .iter()
            .map(|c| {
                let v = c
                    .value
                    .as_ref()
                    .map(|v| format!(" {v}:"))
                    .unwrap_or_default();
                format!("{}: {}:{v} {}", c.field, c.reason, c.detail)
            })
            .collect()
    }

    #[test]
    fn validation_follows_validate_stateful_set_spec() {
        assert!(
            texts(&valid(), None).is_empty(),
            "{:?}",
            texts(&valid(), None)
        );
        let case = |patch: Value| {
            let mut v = valid();
            merge(&mut v, patch);
            texts(&v, None)
        };
        assert_eq!(
            case(json!({"spec": {"podManagementPolicy": "Sometimes"}})),
            ["spec.podManagementPolicy: FieldValueInvalid: \"Sometimes\": must be 'OrderedReady' or 'Parallel'"]
        );
        assert_eq!(
            case(json!({"spec": {"podManagementPolicy": null}})),
            ["spec.podManagementPolicy: FieldValueRequired: "]
        );
        assert_eq!(
            case(json!({"spec": {"updateStrategy": {"type": "OnDelete"}}})),
            ["spec.updateStrategy.rollingUpdate: FieldValueInvalid: apps.RollingUpdateStatefulSetStrategy{Partition:0, MaxUnavailable:(*intstr.IntOrString)(nil)}: only allowed for updateStrategy 'RollingUpdate'"]
        );
        assert_eq!(
            case(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": -1}}}})),
            ["spec.updateStrategy.rollingUpdate.partition: FieldValueInvalid: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            case(json!({"spec": {"updateStrategy": {"type": "Sometimes", "rollingUpdate": null}}})),
            ["spec.updateStrategy: FieldValueInvalid: apps.StatefulSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: must be 'RollingUpdate' or 'OnDelete'"]
        );
        assert_eq!(
            case(json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Keep"}}})),
            ["spec.persistentVolumeClaimRetentionPolicy.whenScaled: FieldValueNotSupported: \"Keep\": supported values: \"Delete\", \"Retain\""]
        );
        assert_eq!(
            case(
                json!({"spec": {"replicas": -1, "minReadySeconds": -2, "ordinals": {"start": -3}}})
            ),
            [
                "spec.replicas: FieldValueInvalid: -1: must be greater than or equal to 0",
                "spec.minReadySeconds: FieldValueInvalid: -2: must be greater than or equal to 0",
                "spec.ordinals.start: FieldValueInvalid: -3: must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            case(json!({"spec": {"selector": null}})),
            ["spec.selector: FieldValueRequired: "]
        );
        assert_eq!(
            case(json!({"spec": {"selector": {"matchLabels": {"app": "db"}}}})),
            ["spec.template.metadata.labels: FieldValueInvalid: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"]
        );
        let mut empty = valid();
        empty["spec"]["selector"] = json!({"matchLabels": {}});
        assert_eq!(
            texts(&empty, None),
            ["spec.selector: FieldValueInvalid: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement{}}: empty selector is invalid for statefulset"]
        );
        assert_eq!(
            case(json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 5}}}})),
            [
                "spec.template.spec.restartPolicy: FieldValueNotSupported: \"Never\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: FieldValueForbidden: activeDeadlineSeconds in StatefulSet is not Supported"
            ]
        );
    }

    #[test]
    fn updates_may_change_only_some_fields() {
        let old = valid();
        let mut ok = valid();
        merge(
            &mut ok,
            json!({"spec": {"replicas": 5, "minReadySeconds": 3, "ordinals": {"start": 2},
                "updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
                "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"},
                "template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}}),
        );
        assert!(
            texts(&ok, Some(&old)).is_empty(),
            "{:?}",
            texts(&ok, Some(&old))
        );
        let mut bad = valid();
        merge(&mut bad, json!({"spec": {"serviceName": "other"}}));
        assert_eq!(
            texts(&bad, Some(&old)),
            ["spec: FieldValueForbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]
        );
    }

    #[test]
    fn status_updates_are_checked() {
        let old = json!({"status": {"replicas": 2, "collisionCount": 2}});
        let st = |s: Value| -> Vec<String> {
            validate_statefulset_decoded(&json!({"status": s}), Some(&old), None)
                .iter()
                .map(|c| format!("{}: {}", c.field, c.detail))
                .collect()
        };
        assert!(st(
            json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 1, "collisionCount": 2})
        )
        .is_empty());
        assert_eq!(
            st(
                json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 3, "collisionCount": 1})
            ),
            [
                "status.readyReplicas: cannot be greater than status.replicas",
                "status.availableReplicas: cannot be greater than status.replicas",
                "status.availableReplicas: cannot be greater than status.readyReplicas",
                "status.collisionCount: cannot be decremented"
            ]
        );
        assert_eq!(
            st(json!({"replicas": 0, "observedGeneration": -1, "collisionCount": 2})),
            ["status.observedGeneration: must be greater than or equal to 0"]
        );
    }
}
