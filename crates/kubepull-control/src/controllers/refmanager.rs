//! Adoption and release of dependents by their controller (kubernetes
//! `pkg/controller/controller_ref_manager.go`, 1.32: `BaseControllerRefManager.ClaimObject`,
//! `PodControllerRefManager.ClaimPods`/`AdoptPod`/`ReleasePod`,
//! `ReplicaSetControllerRefManager.ClaimReplicaSets`, `RecheckDeletionTimestamp`), shared by
//! the ReplicaSet controller (pods), the Deployment controller (ReplicaSets) and the Job
//! controller (pods, with its tracking finalizer added on adoption and removed on release).
//!
//! [`claim`] is pure: from the controller and the candidates of its namespace (the informer
//! cache, by namespace index, as `getPodsForReplicaSet` and `getReplicaSetsForDeployment` list
//! them) it decides which objects the controller owns, which orphans it adopts and which of its
//! objects it releases. [`apply_claim`] carries the decision out through [`queue::apply`]:
//! before the first adoption the controller is read again from the API, not the cache, and
//! nothing is adopted if it is being deleted or its UID changed ([`can_adopt`]).
//!
//! The patches name the dependent's UID, as upstream's do (`ownerRefControllerPatch`,
//! `GenerateDeleteOwnerRefStrategicMergeBytes`); they are JSON merge patches of the whole
//! `ownerReferences` list as the cache holds it, guarded by the `resourceVersion` it was read
//! at, so an object re-created under the same name, or changed in between (someone else
//! adopting it first), is not written: the write conflicts and the controller syncs again from
//! the cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::json;

use super::informer::{index, Cached, Notice, Typed};
use super::kinds::{self, Kind};
use super::queue::{self, Action};
use crate::errors::ApiError;
use crate::objects::Objects;

/// A label selector that does not convert to a selector (`metav1.LabelSelectorAsSelector`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector: {0}")]
pub struct InvalidSelector(pub String);

/// Whether `sel` selects nothing and everything alike: no `matchLabels`, no
/// `matchExpressions` (`labels.Selector.Empty` of the converted selector).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// `metav1.LabelSelectorAsSelector(sel).Matches(labels)`: every `matchLabels` pair and every
/// expression holds (`NotIn` and `DoesNotExist` hold when the key is absent); an empty selector
/// matches everything. An expression with an unknown operator, `In`/`NotIn` without values or
/// `Exists`/`DoesNotExist` with values is an error naming it.
pub fn selects(
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<bool, InvalidSelector> {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    let mut ok = true;
    for (k, v) in sel.match_labels.iter().flatten() {
        ok &= get(k) == Some(v);
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let have = get(&e.key);
        ok &= match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(InvalidSelector(format!(
                    "matchExpressions key {:?}: operator {} needs at least one value",
                    e.key, e.operator
                )))
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(InvalidSelector(format!(
                    "matchExpressions key {:?}: operator {} takes no values",
                    e.key, e.operator
                )))
            }
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => !have.is_some_and(|h| values.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(InvalidSelector(format!(
                    "matchExpressions key {:?}: unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)",
                    e.key
                )))
            }
        };
    }
    Ok(ok)
}

/// What a controller does with one candidate (`ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It controls the object and its selector matches: the object is its own.
    Owned,
    /// An orphan its selector matches: adopt it.
    Adopt,
    /// It controls the object but its selector no longer matches: release it.
    Release,
    /// Not its own and left alone: another controller's, an orphan that does not match or is
    /// being deleted, or anything while the controller itself is being deleted.
    Ignore,
}

/// `BaseControllerRefManager.ClaimObject` for `obj` by the controller `controller`, where
/// `matches` is whether the controller's selector matches `obj`.
pub fn decide(controller: &ObjectMeta, obj: &ObjectMeta, matches: bool) -> Decision {
    let deleting = controller.deletion_timestamp.is_some();
    if let Some(r) = kinds::controller_ref(obj) {
        if r.uid != kinds::uid(controller) {
            // owned by someone else
            return Decision::Ignore;
        }
        if matches {
            // still ours, even while being deleted (claiming it takes no action)
            return Decision::Owned;
        }
        if deleting {
            return Decision::Ignore;
        }
        return Decision::Release;
    }
    // an orphan
    if deleting || !matches || obj.deletion_timestamp.is_some() {
        return Decision::Ignore;
    }
    Decision::Adopt
}

/// What a controller claims among its candidates.
#[derive(Debug, Clone)]
pub struct Claim<K> {
    /// What it owns once the claim is carried out, in candidate order: what it controls and
    /// matches, and the orphans it adopts (with the controller reference the adoption adds and
    /// the `resourceVersion` read from the cache, so a later write of the whole object
    /// conflicts instead of undoing the adoption).
    pub claimed: Vec<Arc<K>>,
    /// The orphans to adopt, as cached.
    pub adopt: Vec<Arc<K>>,
    /// Its objects to release, as cached.
    pub release: Vec<Arc<K>>,
    /// The finalizers an adoption adds and a release removes (`NewPodControllerRefManager`'s
    /// `finalizers`: the Job controller's tracking finalizer; none for the others).
    pub finalizers: Vec<String>,
}

impl<K> Default for Claim<K> {
    fn default() -> Self {
        Claim {
            claimed: vec![],
            adopt: vec![],
            release: vec![],
            finalizers: vec![],
        }
    }
}

/// `ClaimPods` / `ClaimReplicaSets`: decides for every candidate with the controller's
/// `selector`. A controller with an empty selector keeps what it controls and adopts and
/// releases nothing (the API refuses empty selectors for apps/v1; one that creeps in matches
/// nothing, as in `GetPodReplicaSets`, rather than every object of the namespace).
pub fn claim<C: Kind, K: Kind>(
    controller: &C,
    selector: &LabelSelector,
    candidates: &[Arc<K>],
) -> Result<Claim<K>, InvalidSelector> {
    let uid = kinds::uid(controller.metadata());
    let empty = selector_is_empty(selector);
    claim_by(controller, candidates, &[], |m| {
        if empty {
            Ok(kinds::controller_ref(m).is_some_and(|r| r.uid == uid))
        } else {
            selects(selector, m.labels.as_ref())
        }
    })
}

/// `ClaimPods` by a controller whose adoptions add `finalizers` and whose releases remove them
/// (`NewPodControllerRefManager(..., finalizers...)`, as the Job controller's `getPodsForJob`
/// with `batch.kubernetes.io/job-tracking`): the adopted objects in `claimed` carry them. The
/// selector is read as `metav1.LabelSelectorAsSelector` converts it: none selects nothing (what
/// the controller controls is released, no orphan adopted), an empty one selects everything
/// (the batch API accepts an empty `manualSelector`; every orphan among the candidates is
/// adopted).
pub fn claim_with_finalizers<C: Kind, K: Kind>(
    controller: &C,
    selector: Option<&LabelSelector>,
    candidates: &[Arc<K>],
    finalizers: &[&str],
) -> Result<Claim<K>, InvalidSelector> {
    claim_by(controller, candidates, finalizers, |m| match selector {
        None => Ok(false),
        Some(s) => selects(s, m.labels.as_ref()),
    })
}

/// `ClaimObject` for every candidate, `matches` being whether the controller's selector
/// matches it.
fn claim_by<C: Kind, K: Kind>(
    controller: &C,
    candidates: &[Arc<K>],
    finalizers: &[&str],
    matches: impl Fn(&ObjectMeta) -> Result<bool, InvalidSelector>,
) -> Result<Claim<K>, InvalidSelector> {
    let cm = controller.metadata();
    let mut out = Claim {
        finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
        ..Claim::default()
    };
    for obj in candidates {
        let m = obj.metadata();
        let matches = matches(m)?;
        match decide(cm, m, matches) {
            Decision::Owned => out.claimed.push(obj.clone()),
            Decision::Adopt => {
                let mut adopted = (**obj).clone();
                let am = adopted.metadata_mut();
                am.owner_references
                    .get_or_insert_with(Vec::new)
                    .push(kinds::new_controller_ref(controller));
                if let Some(f) = with_finalizers(am.finalizers.as_ref(), &out.finalizers) {
                    am.finalizers = Some(f);
                }
                out.claimed.push(Arc::new(adopted));
                out.adopt.push(obj.clone());
            }
            Decision::Release => out.release.push(obj.clone()),
            Decision::Ignore => {}
        }
    }
    Ok(out)
}

/// `have` with every one of `add` it lacks appended, if it lacks any.
fn with_finalizers(have: Option<&Vec<String>>, add: &[String]) -> Option<Vec<String>> {
    let have = have.cloned().unwrap_or_default();
    let missing: Vec<String> = add.iter().filter(|f| !have.contains(f)).cloned().collect();
    (!missing.is_empty()).then(|| have.into_iter().chain(missing).collect())
}

/// `have` without any of `remove`, if it holds one.
fn without_finalizers(have: Option<&Vec<String>>, remove: &[String]) -> Option<Vec<String>> {
    let have = have?;
    have.iter().any(|f| remove.contains(f)).then(|| {
        have.iter()
            .filter(|f| !remove.contains(f))
            .cloned()
            .collect()
    })
}

fn refs_patch<K: Kind>(
    obj: &K,
    refs: Vec<OwnerReference>,
    finalizers: Option<Vec<String>>,
) -> Action {
    let m = obj.metadata();
    let mut patch = json!({"metadata": {
        "ownerReferences": refs,
        "uid": kinds::uid(m),
        "resourceVersion": kinds::resource_version(m),
    }});
    if let Some(f) = finalizers {
        patch["metadata"]["finalizers"] = json!(f);
    }
    Action::Patch {
        r: kinds::resource_of::<K>(),
        ns: kinds::namespace(m).to_string(),
        name: kinds::name(m).to_string(),
        patch,
    }
}

/// `AdoptPod` / `AdoptReplicaSet`: the patch adding `controller`'s controller reference
/// (`controller: true`, `blockOwnerDeletion: true`) to `obj`, naming `obj`'s UID.
pub fn adopt_patch<C: Kind, K: Kind>(controller: &C, obj: &K) -> Action {
    adopt_patch_with_finalizers(controller, obj, &[])
}

/// [`adopt_patch`] that also adds `finalizers` (`ownerRefControllerPatch(..., finalizers...)`).
pub fn adopt_patch_with_finalizers<C: Kind, K: Kind>(
    controller: &C,
    obj: &K,
    finalizers: &[String],
) -> Action {
    let m = obj.metadata();
    let mut refs = m.owner_references.clone().unwrap_or_default();
    refs.push(kinds::new_controller_ref(controller));
    refs_patch(
        obj,
        refs,
        with_finalizers(m.finalizers.as_ref(), finalizers),
    )
}

/// `ReleasePod` / `ReleaseReplicaSet`: the patch removing the reference to `controller_uid`
/// from `obj`, naming `obj`'s UID.
pub fn release_patch<K: Kind>(controller_uid: &str, obj: &K) -> Action {
    release_patch_with_finalizers(controller_uid, obj, &[])
}

/// [`release_patch`] that also removes `finalizers`
/// (`GenerateDeleteOwnerRefStrategicMergeBytes(..., finalizers...)`).
pub fn release_patch_with_finalizers<K: Kind>(
    controller_uid: &str,
    obj: &K,
    finalizers: &[String],
) -> Action {
    let m = obj.metadata();
    let refs = m
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != controller_uid)
        .cloned()
        .collect();
    refs_patch(
        obj,
        refs,
        without_finalizers(m.finalizers.as_ref(), finalizers),
    )
}

/// `RecheckDeletionTimestamp` over a fresh read of `cached` from the API (not the cache), with
/// the UID check of `getPodsForReplicaSet` / `getReplicaSetsForDeployment`: adoption is refused
/// when the controller is gone, was re-created (another UID) or is being deleted.
pub async fn can_adopt<C: Kind>(objects: &Objects, cached: &C) -> Result<(), ApiError> {
    let m = cached.metadata();
    let (ns, name, uid) = (kinds::namespace(m), kinds::name(m), kinds::uid(m));
    let refuse = |why: String| {
        ApiError::internal(format!(
            "can't adopt for {} {ns}/{name} ({uid}): {why}",
            C::KIND
        ))
    };
    let fresh = super::get_typed::<C>(objects, ns, name)
        .await
        .map_err(|e| refuse(format!("can't recheck DeletionTimestamp: {}", e.message)))?
        .ok_or_else(|| refuse("can't recheck DeletionTimestamp: not found".into()))?;
    let fm = fresh.metadata();
    if kinds::uid(fm) != uid {
        return Err(refuse(format!(
            "original {} {ns}/{name} is gone: got uid {}, wanted {uid}",
            C::KIND,
            kinds::uid(fm)
        )));
    }
    if let Some(t) = &fm.deletion_timestamp {
        return Err(refuse(format!(
            "{ns}/{name} has just been deleted at {}",
            t.0
        )));
    }
    Ok(())
}

/// Carries out `claim` for `controller` as `component`: the releases, then (after
/// [`can_adopt`]) the adoptions. An object gone meanwhile is no error; any other failure is
/// returned after the releases were tried (`ClaimObject`'s errors fail the sync, which is
/// retried).
pub async fn apply_claim<C: Kind, K: Kind>(
    objects: &Objects,
    component: &str,
    controller: &C,
    claim: &Claim<K>,
) -> Result<(), ApiError> {
    let uid = kinds::uid(controller.metadata());
    for o in &claim.release {
        tracing::debug!(
            component,
            object = %kinds::key_of(o.metadata()),
            controller = %kinds::key_of(controller.metadata()),
            "removing the controller reference"
        );
    }
    let released = queue::apply(
        objects,
        component,
        claim
            .release
            .iter()
            .map(|o| release_patch_with_finalizers(uid, &**o, &claim.finalizers))
            .collect(),
    )
    .await;
    if claim.adopt.is_empty() {
        return released;
    }
    let adopted = match can_adopt(objects, controller).await {
        Ok(()) => {
            queue::apply(
                objects,
                component,
                claim
                    .adopt
                    .iter()
                    .map(|o| adopt_patch_with_finalizers(controller, &**o, &claim.finalizers))
                    .collect(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    released.and(adopted)
}

/// The controllers of `controllers` (in `m`'s namespace) whose selector matches the labels of
/// `m` (`GetPodReplicaSets`, `GetDeploymentsForReplicaSet`): none for an object without labels;
/// a controller with an empty or invalid selector matches nothing.
pub fn matching_controllers<C: Kind>(
    controllers: &Typed<C>,
    m: &ObjectMeta,
    selector: fn(&C) -> Option<&LabelSelector>,
) -> Vec<String> {
    matching(controllers, m, by_label_selector(selector, false))
}

/// The keys of the controllers in the orphan's namespace that `selects` its labels.
fn matching<C: Kind>(
    controllers: &Typed<C>,
    m: &ObjectMeta,
    selects_labels: impl Fn(&C, &BTreeMap<String, String>) -> bool,
) -> Vec<String> {
    let Some(labels) = m.labels.as_ref().filter(|l| !l.is_empty()) else {
        return vec![];
    };
    controllers
        .by_index(index::NAMESPACE, kinds::namespace(m))
        .iter()
        .filter(|c| selects_labels(c, labels))
        .map(|c| kinds::key_of(c.metadata()))
        .collect()
}

fn by_label_selector<C: Kind>(
    selector: fn(&C) -> Option<&LabelSelector>,
    empty_selects_all: bool,
) -> impl Fn(&C, &BTreeMap<String, String>) -> bool {
    move |c, labels| {
        selector(c).is_some_and(|s| {
            (empty_selects_all || !selector_is_empty(s)) && selects(s, Some(labels)) == Ok(true)
        })
    }
}

/// The controllers an orphan's change concerns (the orphan branches of `addPod`/`updatePod`
/// and `addReplicaSet`/`updateReplicaSet`): a new orphan not being deleted, or an orphan whose
/// labels or controller reference changed, is offered to every matching controller so one can
/// adopt it. Deletions and objects with a controller concern no one here.
pub fn orphan_keys<C: Kind>(
    change: &Notice,
    controllers: &Typed<C>,
    selector: fn(&C) -> Option<&LabelSelector>,
) -> Vec<String> {
    orphan_keys_by(change, controllers, by_label_selector(selector, false))
}

/// [`orphan_keys`] for the Job controller (`getPodJobs`): a Job with an empty selector matches
/// every orphan with labels, as `LabelSelectorAsSelector` makes it `Everything`.
pub fn orphan_keys_of_jobs<C: Kind>(
    change: &Notice,
    controllers: &Typed<C>,
    selector: fn(&C) -> Option<&LabelSelector>,
) -> Vec<String> {
    orphan_keys_by(change, controllers, by_label_selector(selector, true))
}

/// [`orphan_keys`] for controllers whose selector is a label map (a ReplicationController's,
/// `labels.SelectorFromSet`): an empty map selects nothing here, as
/// `getPodControllers` skips controllers with an empty selector.
pub fn orphan_keys_of_map<C: Kind>(
    change: &Notice,
    controllers: &Typed<C>,
    selector: fn(&C) -> Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    orphan_keys_by(change, controllers, move |c, labels| {
        selector(c).is_some_and(|want| {
            !want.is_empty() && want.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
    })
}

fn orphan_keys_by<C: Kind>(
    change: &Notice,
    controllers: &Typed<C>,
    selects_labels: impl Fn(&C, &BTreeMap<String, String>) -> bool,
) -> Vec<String> {
    let m = change.obj.meta();
    if change.deleted || kinds::controller_ref(m).is_some() {
        return vec![];
    }
    match change.old.as_ref().map(Cached::meta) {
        None if m.deletion_timestamp.is_some() => return vec![],
        Some(old) if old.labels == m.labels && kinds::controller_ref(old).is_none() => {
            return vec![]
        }
        _ => {}
    }
    matching(controllers, m, selects_labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::Value;

    fn rs(deleting: bool) -> ReplicaSet {
        let mut v = json!({"metadata": {"name": "web", "namespace": "a", "uid": "rs1", "resourceVersion": "4"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    }

    /// A pod of namespace `a` with `labels`, controlled by `controller` (a ReplicaSet UID).
    fn pod(name: &str, labels: Value, controller: Option<&str>, deleting: bool) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": name, "namespace": "a", "uid": format!("u-{name}"),
            "resourceVersion": "9", "labels": labels}});
        if let Some(c) = controller {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "x", "uid": c, "controller": true}]);
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter().map(|p| kinds::name(&p.metadata)).collect()
    }

    fn sel(v: Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn adopts_matching_orphans_and_skips_the_rest() {
        let web = json!({"app": "web"});
        let pods = vec![
            pod("orphan", web.clone(), None, false),
            pod("other-labels", json!({"app": "api"}), None, false),
            pod("no-labels", Value::Null, None, false),
            pod("orphan-deleting", web.clone(), None, true),
            pod("owned", web.clone(), Some("rs1"), false),
            pod("someone-elses", web.clone(), Some("rs2"), false),
        ];
        let r = rs(false);
        let c = claim(&r, &r.spec.as_ref().unwrap().selector, &pods).unwrap();
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert!(c.release.is_empty());
        assert_eq!(names(&c.claimed), ["orphan", "owned"]);
        // the adopted pod is counted with the reference the adoption adds
        let adopted = &c.claimed[0];
        assert_eq!(
            kinds::controller_of(&adopted.metadata, "ReplicaSet"),
            Some(("web", "rs1"))
        );
    }

    #[test]
    fn releases_owned_objects_the_selector_no_longer_matches() {
        let pods = vec![
            pod("relabelled", json!({"app": "api"}), Some("rs1"), false),
            pod("kept", json!({"app": "web", "x": "y"}), Some("rs1"), false),
            pod("theirs", json!({"app": "api"}), Some("rs2"), false),
        ];
        let r = rs(false);
        let c = claim(&r, &r.spec.as_ref().unwrap().selector, &pods).unwrap();
        assert_eq!(names(&c.release), ["relabelled"]);
        assert!(c.adopt.is_empty());
        assert_eq!(names(&c.claimed), ["kept"]);
    }

    #[test]
    fn a_controller_being_deleted_keeps_what_it_owns_and_touches_nothing() {
        let pods = vec![
            pod("orphan", json!({"app": "web"}), None, false),
            pod("owned", json!({"app": "web"}), Some("rs1"), false),
            pod("relabelled", json!({"app": "api"}), Some("rs1"), false),
        ];
        let r = rs(true);
        let c = claim(&r, &r.spec.as_ref().unwrap().selector, &pods).unwrap();
        assert!(c.adopt.is_empty() && c.release.is_empty());
        assert_eq!(names(&c.claimed), ["owned"]);
    }

    #[test]
    fn decisions_follow_claim_object() {
        let r = rs(false);
        let gone = rs(true);
        let meta = |p: Arc<Pod>| p.metadata.clone();
        let orphan = meta(pod("o", json!({}), None, false));
        let orphan_deleting = meta(pod("o", json!({}), None, true));
        let ours = meta(pod("p", json!({}), Some("rs1"), false));
        let ours_deleting = meta(pod("p", json!({}), Some("rs1"), true));
        let theirs = meta(pod("t", json!({}), Some("rs2"), false));
        use Decision::*;
        for (what, c, o, matches, want) in [
            ("orphan, match", &r, &orphan, true, Adopt),
            ("orphan, no match", &r, &orphan, false, Ignore),
            ("orphan being deleted", &r, &orphan_deleting, true, Ignore),
            ("orphan, controller deleted", &gone, &orphan, true, Ignore),
            ("ours, match", &r, &ours, true, Owned),
            ("ours being deleted, match", &r, &ours_deleting, true, Owned),
            ("ours, controller deleted", &gone, &ours, true, Owned),
            ("ours, no match", &r, &ours, false, Release),
            (
                "ours, no match, controller deleted",
                &gone,
                &ours,
                false,
                Ignore,
            ),
            ("theirs, match", &r, &theirs, true, Ignore),
            ("theirs, no match", &r, &theirs, false, Ignore),
        ] {
            assert_eq!(decide(&c.metadata, o, matches), want, "{what}");
        }
    }

    #[test]
    fn an_empty_selector_adopts_and_releases_nothing() {
        let pods = vec![
            pod("orphan", json!({"app": "web"}), None, false),
            pod("owned", json!({"app": "api"}), Some("rs1"), false),
        ];
        let c = claim(&rs(false), &LabelSelector::default(), &pods).unwrap();
        assert!(c.adopt.is_empty() && c.release.is_empty());
        assert_eq!(names(&c.claimed), ["owned"]);
    }

    #[test]
    fn selectors_as_upstream() {
        let l: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let yes = |s: Value| selects(&sel(s), Some(&l)).unwrap();
        assert!(yes(json!({"matchLabels": {"app": "web"}})));
        assert!(!yes(json!({"matchLabels": {"app": "web", "x": "y"}})));
        assert!(yes(
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]})
        ));
        assert!(!yes(
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]})
        ));
        assert!(yes(
            json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]})
        ));
        assert!(yes(
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})
        ));
        assert!(!yes(
            json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]})
        ));
        assert!(yes(json!({})));
        assert!(!selects(&sel(json!({"matchLabels": {"app": "web"}})), None).unwrap());
        for bad in [
            json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "app", "operator": "Like", "values": ["x"]}]}),
        ] {
            let e = selects(&sel(bad.clone()), Some(&l)).unwrap_err();
            assert!(e.to_string().contains("\"app\""), "{e} for {bad}");
        }
        let pods = vec![pod("p", json!({"app": "web"}), None, false)];
        assert!(claim(
            &rs(false),
            &sel(json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]})),
            &pods
        )
        .is_err());
    }

    #[test]
    fn patches_add_or_remove_only_the_controller_reference_and_name_the_object() {
        let r = rs(false);
        let mut p = (*pod("p", json!({"app": "web"}), None, false)).clone();
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "keep".into(),
            uid: "cm1".into(),
            ..Default::default()
        }]);
        let Action::Patch {
            r: res,
            ns,
            name,
            patch,
        } = adopt_patch(&r, &p)
        else {
            panic!()
        };
        assert_eq!((res.plural, ns.as_str(), name.as_str()), ("pods", "a", "p"));
        assert_eq!(
            patch,
            json!({"metadata": {"uid": "u-p", "resourceVersion": "9", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "cm1"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs1",
                    "controller": true, "blockOwnerDeletion": true}]}})
        );
        let mut owned = p.clone();
        owned
            .metadata
            .owner_references
            .as_mut()
            .unwrap()
            .push(kinds::new_controller_ref(&r));
        let Action::Patch { patch, .. } = release_patch("rs1", &owned) else {
            panic!()
        };
        assert_eq!(
            patch,
            json!({"metadata": {"uid": "u-p", "resourceVersion": "9", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "cm1"}]}})
        );
    }

    /// The object layer over an in-memory store, with the namespace `a`.
    async fn objects() -> Objects {
        let o = Objects::new(Arc::new(kubepull_datastore::memory::MemoryStore::new()));
        o.create(
            kinds::resource_of::<k8s_openapi::api::core::v1::Namespace>(),
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            &crate::objects::User::Admin,
            false,
        )
        .await
        .unwrap();
        o
    }

    async fn create<K: Kind>(o: &Objects, v: Value) -> K {
        let r = kinds::resource_of::<K>();
        serde_json::from_value(
            o.create(r, "a", v, &crate::objects::User::Admin, false)
                .await
                .unwrap(),
        )
        .unwrap()
    }

    async fn stored_pod(o: &Objects, name: &str) -> Pod {
        super::super::get_typed::<Pod>(o, "a", name)
            .await
            .unwrap()
            .unwrap()
    }

    fn pod_json(name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}})
    }

    fn rs_json() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    }

    fn controllers(p: &Pod) -> Vec<(String, String)> {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.controller == Some(true))
            .map(|r| (r.kind.clone(), r.uid.clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_claim_adopts_and_releases_through_the_api() {
        let o = objects().await;
        let r: ReplicaSet = create(&o, rs_json()).await;
        let orphan: Pod = create(&o, pod_json("orphan", "web")).await;
        let other: Pod = create(&o, pod_json("other", "api")).await;
        let mut mine = pod_json("mine", "api");
        mine["metadata"]["ownerReferences"] = json!([kinds::new_controller_ref(&r),
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "cm1"}]);
        let mine: Pod = create(&o, mine).await;
        let pods: Vec<Arc<Pod>> = [orphan, other, mine].into_iter().map(Arc::new).collect();
        let c = claim(&r, &r.spec.as_ref().unwrap().selector, &pods).unwrap();
        apply_claim(&o, "test", &r, &c).await.unwrap();
        let uid = kinds::uid(&r.metadata).to_string();
        assert_eq!(
            controllers(&stored_pod(&o, "orphan").await),
            [("ReplicaSet".to_string(), uid.clone())]
        );
        assert!(controllers(&stored_pod(&o, "other").await).is_empty());
        // released: its other reference stays
        let released = stored_pod(&o, "mine").await;
        assert!(controllers(&released).is_empty());
        let left: Vec<&str> = released
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|r| r.uid.as_str())
            .collect();
        assert_eq!(left, ["cm1"]);
    }

    #[tokio::test]
    async fn a_stale_cache_conflicts_instead_of_overwriting() {
        let o = objects().await;
        let r: ReplicaSet = create(&o, rs_json()).await;
        let cached: Pod = create(&o, pod_json("p", "web")).await;
        // meanwhile another controller adopts the pod
        o.patch(
            kinds::resource_of::<Pod>(),
            "a",
            "p",
            "application/merge-patch+json",
            &json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                "name": "j", "uid": "job1", "controller": true}]}}),
            None,
            false,
        )
        .await
        .unwrap();
        let c = claim(&r, &r.spec.as_ref().unwrap().selector, &[Arc::new(cached)]).unwrap();
        assert_eq!(c.adopt.len(), 1, "the cache still shows an orphan");
        let e = apply_claim(&o, "test", &r, &c).await.unwrap_err();
        assert_eq!(
            super::super::queue::retry_for(&e),
            super::super::queue::Retry::Reread,
            "{e:?}"
        );
        assert_eq!(
            controllers(&stored_pod(&o, "p").await),
            [("Job".to_string(), "job1".to_string())]
        );
    }

    #[tokio::test]
    async fn no_adoption_by_a_controller_re_created_or_being_deleted() {
        let o = objects().await;
        let r: ReplicaSet = create(&o, rs_json()).await;
        let p: Pod = create(&o, pod_json("p", "web")).await;
        let pods = [Arc::new(p)];
        // the cache still holds an older ReplicaSet of the same name
        let mut old = r.clone();
        old.metadata.uid = Some("an-older-uid".into());
        let c = claim(&old, &r.spec.as_ref().unwrap().selector, &pods).unwrap();
        let e = apply_claim(&o, "test", &old, &c).await.unwrap_err();
        assert!(
            e.message.contains("is gone: got uid") && e.message.contains("an-older-uid"),
            "{}",
            e.message
        );
        assert!(controllers(&stored_pod(&o, "p").await).is_empty());
        // being deleted (a finalizer holds it), while the cache does not know yet
        o.patch(
            kinds::resource_of::<ReplicaSet>(),
            "a",
            "web",
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": ["example.com/hold"]}}),
            None,
            false,
        )
        .await
        .unwrap();
        o.delete(
            kinds::resource_of::<ReplicaSet>(),
            "a",
            "web",
            &crate::objects::DeleteOptions::default(),
        )
        .await
        .unwrap();
        let c = claim(&r, &r.spec.as_ref().unwrap().selector, &pods).unwrap();
        let e = apply_claim(&o, "test", &r, &c).await.unwrap_err();
        assert!(e.message.contains("has just been deleted"), "{}", e.message);
        assert!(controllers(&stored_pod(&o, "p").await).is_empty());
        // gone altogether
        let c = claim(&r, &r.spec.as_ref().unwrap().selector, &pods).unwrap();
        o.patch(
            kinds::resource_of::<ReplicaSet>(),
            "a",
            "web",
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": null}}),
            None,
            false,
        )
        .await
        .unwrap();
        let e = apply_claim(&o, "test", &r, &c).await.unwrap_err();
        assert!(e.message.contains("not found"), "{}", e.message);
        assert!(controllers(&stored_pod(&o, "p").await).is_empty());
    }

    /// An orphan's add, or a change of its labels or controller, is offered to the matching
    /// controllers of its namespace; other changes concern no one.
    #[tokio::test]
    async fn orphans_are_offered_to_the_matching_controllers() {
        let store: Arc<dyn kubepull_datastore::Datastore> =
            Arc::new(kubepull_datastore::memory::MemoryStore::new());
        for (ns, name, sel) in [
            ("a", "web", json!({"matchLabels": {"app": "web"}})),
            (
                "a",
                "web-front",
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
            ),
            ("a", "api", json!({"matchLabels": {"app": "api"}})),
            ("a", "empty", json!({})),
            (
                "a",
                "bad",
                json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}),
            ),
            ("b", "web", json!({"matchLabels": {"app": "web"}})),
        ] {
            let v = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}")},
                "spec": {"selector": sel}});
            store
                .create(
                    &kinds::resource_of::<ReplicaSet>().key(ns, name),
                    serde_json::to_vec(&v).unwrap(),
                )
                .await
                .unwrap();
        }
        let informers = super::super::informer::Informers::new(store);
        let rss = informers.of::<ReplicaSet>();
        rss.informer().wait_synced().await;
        let notice = |p: Arc<Pod>, old: Option<Arc<Pod>>, deleted: bool| Notice {
            key: format!("/registry/pods/a/{}", kinds::name(&p.metadata)),
            obj: Cached::Pod(p),
            old: old.map(Cached::Pod),
            deleted,
        };
        let keys = |n: &Notice| {
            let mut k = orphan_keys(n, &rss, |r: &ReplicaSet| {
                r.spec.as_ref().map(|s| &s.selector)
            });
            k.sort();
            k
        };
        let web = pod("p", json!({"app": "web", "tier": "front"}), None, false);
        assert_eq!(
            keys(&notice(web.clone(), None, false)),
            ["a/web", "a/web-front"]
        );
        // an update that changes neither labels nor the controller: no one
        assert!(keys(&notice(web.clone(), Some(web.clone()), false)).is_empty());
        // relabelled
        let api = pod("p", json!({"app": "api"}), None, false);
        assert_eq!(
            keys(&notice(api.clone(), Some(web.clone()), false)),
            ["a/api"]
        );
        // released by its controller
        let was_owned = pod("p", json!({"app": "web"}), Some("x"), false);
        let released = pod("p", json!({"app": "web"}), None, false);
        assert_eq!(
            keys(&notice(released.clone(), Some(was_owned), false)),
            ["a/web"]
        );
        // owned, deleted, new while being deleted, without labels: no one
        let owned = pod("p", json!({"app": "web"}), Some("x"), false);
        assert!(keys(&notice(owned, None, false)).is_empty());
        assert!(keys(&notice(released, None, true)).is_empty());
        assert!(keys(&notice(
            pod("p", json!({"app": "web"}), None, true),
            None,
            false
        ))
        .is_empty());
        assert!(keys(&notice(pod("p", Value::Null, None, false), None, false)).is_empty());
        // as the Job controller's getPodJobs: an empty selector matches every labelled orphan
        let mut k = orphan_keys_of_jobs(&notice(web, None, false), &rss, |r: &ReplicaSet| {
            r.spec.as_ref().map(|s| &s.selector)
        });
        k.sort();
        assert_eq!(k, ["a/empty", "a/web", "a/web-front"]);
        informers.stop().await;
    }
}
