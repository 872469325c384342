//! The garbage collector (kubernetes `pkg/controller/garbagecollector/garbagecollector.go`,
//! 1.32) for Deployments, ReplicaSets, Pods, CronJobs, Jobs, Services and EndpointSlices:
//!
//! - `attemptToDeleteItem`: an object whose owners are all gone is deleted (`Background`, or
//!   the policy its own finalizers ask for); an object with a live owner loses only its dangling
//!   references and those to owners deleting in the foreground (`classifyReferences`); an
//!   object whose owners wait for it in the foreground, and which has dependents itself, is
//!   deleted in the foreground.
//! - `orphanDependents`: an owner deleted with `propagationPolicy: Orphan` carries the `orphan`
//!   finalizer; its dependents lose their reference to it, then the finalizer goes.
//! - `processDeletingDependentsItem`: an owner deleted in the foreground keeps its
//!   `foregroundDeletion` finalizer until no dependent blocking it (`blockOwnerDeletion`) is
//!   left.
//!
//! The dependency graph (`uidToNode`) is the owner index of the shared informers; an owner the
//! caches do not have is looked up in the store before anything is deleted because of it
//! (`isDangling` reads the owner live), so a cache that lags never deletes a live object's
//! dependents.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};

use super::informer::{index, Cached, Informer, Informers, Notice};
use super::kinds;
use super::queue::{self, Action};
use super::res;
use crate::errors::ApiError;
use crate::objects::Objects;
use crate::resources::{self, Resource};

/// `metav1.FinalizerOrphanDependents`.
pub const ORPHAN: &str = "orphan";
/// `metav1.FinalizerDeleteDependents`.
pub const FOREGROUND: &str = "foregroundDeletion";

/// The kinds collected, with their resources.
pub const KINDS: &[(&str, &str)] = &[
    ("Deployment", "deployments"),
    ("ReplicaSet", "replicasets"),
    ("Pod", "pods"),
    ("CronJob", "cronjobs"),
    ("Job", "jobs"),
    ("Service", "services"),
    ("EndpointSlice", "endpointslices"),
    ("DaemonSet", "daemonsets"),
    ("StatefulSet", "statefulsets"),
    ("ControllerRevision", "controllerrevisions"),
    ("PersistentVolumeClaim", "persistentvolumeclaims"),
];

// The collector reads only metadata (upstream's graph is built from metadata-only informers,
// `PartialObjectMetadata`), so any kind goes through the same code.

fn has_finalizer(m: &ObjectMeta, f: &str) -> bool {
    m.finalizers.iter().flatten().any(|x| x == f)
}

fn deleting(m: &ObjectMeta) -> bool {
    m.deletion_timestamp.is_some()
}

fn refs(m: &ObjectMeta) -> &[OwnerReference] {
    m.owner_references.as_deref().unwrap_or_default()
}

/// The metadata of an object read as JSON (`meta.Accessor`).
pub fn meta_of(o: &Value) -> Result<ObjectMeta, ApiError> {
    serde_json::from_value(o.get("metadata").cloned().unwrap_or_default())
        .map_err(|e| ApiError::internal(format!("metadata does not decode: {e}")))
}

/// How an owner reference classifies (`classifyReferences`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The owner exists and is not deleting its dependents.
    Solid,
    /// Gone, or another object of that name.
    Dangling,
    /// Being deleted in the foreground.
    Waiting,
}

/// Classifies an owner as the store has it (`None`: absent) for `reference`.
pub fn classify(reference: &OwnerReference, owner: Option<&ObjectMeta>) -> Owner {
    match owner {
        Some(o) if kinds::uid(o) == reference.uid => {
            if deleting(o) && has_finalizer(o, FOREGROUND) {
                Owner::Waiting
            } else {
                Owner::Solid
            }
        }
        _ => Owner::Dangling,
    }
}

fn remove_refs_patch(item: &ObjectMeta, uids: &[&str]) -> Value {
    let kept: Vec<&OwnerReference> = refs(item)
        .iter()
        .filter(|r| !uids.contains(&r.uid.as_str()))
        .collect();
    json!({"metadata": {"ownerReferences": kept, "resourceVersion": kinds::resource_version(item)}})
}

/// `attemptToDeleteItem` for an object not being deleted: `owners` are its references with
/// their classification, `has_dependents` whether anything names it as owner.
pub fn plan_item(
    r: &'static Resource,
    item: &ObjectMeta,
    owners: &[(OwnerReference, Owner)],
    has_dependents: bool,
) -> Vec<Action> {
    if owners.is_empty() || deleting(item) {
        return vec![];
    }
    let of = |k: Owner| -> Vec<&str> {
        owners
            .iter()
            .filter(|(_, c)| *c == k)
            .map(|(r, _)| r.uid.as_str())
            .collect()
    };
    let (solid, dangling, waiting) = (of(Owner::Solid), of(Owner::Dangling), of(Owner::Waiting));
    let ns = kinds::namespace(item).to_string();
    let name = kinds::name(item).to_string();
    let uid = Some(kinds::uid(item).to_string());
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return vec![];
        }
        let gone: Vec<&str> = dangling.into_iter().chain(waiting).collect();
        return vec![Action::Patch {
            r,
            ns,
            name,
            patch: remove_refs_patch(item, &gone),
        }];
    }
    let propagation = if !waiting.is_empty() && has_dependents {
        "Foreground"
    } else if has_finalizer(item, ORPHAN) {
        "Orphan"
    } else if has_finalizer(item, FOREGROUND) {
        "Foreground"
    } else {
        "Background"
    };
    vec![Action::Delete {
        r,
        ns,
        name,
        propagation: Some(propagation),
        uid,
    }]
}

fn without_finalizer(item: &ObjectMeta, f: &str) -> Value {
    let kept: Vec<&String> = item
        .finalizers
        .iter()
        .flatten()
        .filter(|x| *x != f)
        .collect();
    json!({"metadata": {"finalizers": kept, "resourceVersion": kinds::resource_version(item)}})
}

/// An owner being deleted: `orphanDependents` (finalizer `orphan`) or
/// `processDeletingDependentsItem` (finalizer `foregroundDeletion`). `dependents` are the
/// objects that name it as owner, with their resources.
pub fn plan_deleting(
    r: &'static Resource,
    item: &ObjectMeta,
    dependents: &[(&'static Resource, Cached)],
) -> Vec<Action> {
    if !deleting(item) {
        return vec![];
    }
    let uid = kinds::uid(item);
    let ns = kinds::namespace(item).to_string();
    let name = kinds::name(item).to_string();
    let mut out = vec![];
    if has_finalizer(item, ORPHAN) {
        for (dr, d) in dependents {
            out.push(Action::Patch {
                r: dr,
                ns: kinds::namespace(d.meta()).to_string(),
                name: kinds::name(d.meta()).to_string(),
                patch: remove_refs_patch(d.meta(), &[uid]),
            });
        }
        out.push(Action::Patch {
            r,
            ns,
            name,
            patch: without_finalizer(item, ORPHAN),
        });
    } else if has_finalizer(item, FOREGROUND) {
        let blocking = dependents.iter().any(|(_, d)| {
            refs(d.meta())
                .iter()
                .any(|x| x.uid == uid && x.block_owner_deletion == Some(true))
        });
        if !blocking {
            out.push(Action::Patch {
                r,
                ns,
                name,
                patch: without_finalizer(item, FOREGROUND),
            });
        }
    }
    out
}

/// The garbage collector over the shared informers.
pub struct GarbageCollector {
    kinds: Vec<(&'static str, &'static Resource, Arc<Informer>)>,
}

impl GarbageCollector {
    /// A collector reading `informers`.
    pub fn new(informers: &Informers) -> GarbageCollector {
        GarbageCollector {
            kinds: KINDS
                .iter()
                .map(|(k, p)| (*k, res(p), informers.informer(&res(p).key_prefix())))
                .collect(),
        }
    }

    fn kind_of_key(&self, key: &str) -> Option<&(&'static str, &'static Resource, Arc<Informer>)> {
        self.kinds
            .iter()
            .find(|(_, _, i)| key.starts_with(i.prefix()))
    }

    fn key_of(r: &Resource, o: &ObjectMeta) -> String {
        r.key(kinds::namespace(o), kinds::name(o))
    }

    /// Every cached object naming `uid` as owner.
    fn dependents(&self, uid: &str) -> Vec<(&'static Resource, Cached)> {
        let mut out = vec![];
        for (_, r, i) in &self.kinds {
            for d in i.by_index(index::OWNER, uid) {
                out.push((*r, d));
            }
        }
        out
    }

    /// The cached owner named by `reference`, if its kind is cached.
    fn cached_owner(&self, reference: &OwnerReference) -> Option<Option<Cached>> {
        let (_, _, inf) = self.kinds.iter().find(|(k, _, _)| *k == reference.kind)?;
        Some(inf.by_index(index::UID, &reference.uid).into_iter().next())
    }

    /// The owner as the store has it now (`isDangling`'s live read).
    async fn live_owner(
        &self,
        objects: &Objects,
        ns: &str,
        reference: &OwnerReference,
    ) -> Result<Option<Option<ObjectMeta>>, ApiError> {
        let api_version = reference.api_version.as_str();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = reference.kind.as_str();
        let r = resources::RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .or_else(|| {
                resources::RESOURCES
                    .iter()
                    .find(|r| r.group == group && r.kind == kind)
            });
        let Some(r) = r else {
            // a kind this server does not serve: never collect because of it
            return Ok(None);
        };
        let ns = if r.namespaced { ns } else { "" };
        match objects.get_opt(r, ns, &reference.name).await? {
            Some(o) => Ok(Some(Some(meta_of(&o)?))),
            None => Ok(Some(None)),
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        self.kinds.iter().map(|(_, r, _)| r.key_prefix()).collect()
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let key = change.key.as_str();
        let obj = change.obj.meta();
        let old = change.old.as_ref().map(Cached::meta);
        let mut keys = vec![];
        let uid = kinds::uid(obj);
        if change.deleted {
            // the dependents of a gone owner, and owners waiting for this dependent
            for (r, d) in self.dependents(uid) {
                keys.push(Self::key_of(r, d.meta()));
            }
            for reference in refs(obj) {
                if let Some(Some(o)) = self.cached_owner(reference) {
                    let o = o.meta();
                    if deleting(o) && has_finalizer(o, FOREGROUND) {
                        if let Some((_, r, _)) =
                            self.kinds.iter().find(|(k, _, _)| *k == reference.kind)
                        {
                            keys.push(Self::key_of(r, o));
                        }
                    }
                }
            }
            return keys;
        }
        if deleting(obj) && (has_finalizer(obj, ORPHAN) || has_finalizer(obj, FOREGROUND)) {
            keys.push(key.to_string());
            if has_finalizer(obj, FOREGROUND)
                && !old.is_some_and(|o| deleting(o) && has_finalizer(o, FOREGROUND))
            {
                // markDeletingDependents: the dependents are looked at
                for (r, d) in self.dependents(uid) {
                    keys.push(Self::key_of(r, d.meta()));
                }
            }
        }
        let owned = !refs(obj).is_empty();
        let refs_changed = old.is_none_or(|o| o.owner_references != obj.owner_references);
        if owned && refs_changed && !keys.iter().any(|k| k == key) {
            keys.push(key.to_string());
        }
        keys
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        let mut keys = vec![];
        for (_, r, i) in &self.kinds {
            for o in i.list() {
                let m = o.meta();
                if !refs(m).is_empty() || deleting(m) {
                    keys.push(Self::key_of(r, m));
                }
            }
        }
        Ok(keys)
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some((_, r, _)) = self.kind_of_key(key) else {
            return Ok(None);
        };
        let r: &'static Resource = r;
        let rest = key.strip_prefix(&r.key_prefix()).unwrap_or("");
        let (ns, name) = if r.namespaced {
            queue::split_key(rest)
        } else {
            ("", rest)
        };
        // the latest state of the item, read live (attemptToDeleteItem's getObject)
        let Some(item) = objects.get_opt(r, ns, name).await? else {
            return Ok(None);
        };
        let item = meta_of(&item)?;
        let uid = kinds::uid(&item).to_string();
        let actions = if deleting(&item) {
            let deps = self.dependents(&uid);
            plan_deleting(r, &item, &deps)
        } else {
            let mut owners = vec![];
            for reference in refs(&item) {
                let class = match self.cached_owner(reference) {
                    Some(Some(o)) => classify(reference, Some(o.meta())),
                    _ => match self.live_owner(objects, ns, reference).await? {
                        Some(live) => classify(reference, live.as_ref()),
                        None => Owner::Solid,
                    },
                };
                owners.push((reference.clone(), class));
            }
            let has_dependents = !self.dependents(&uid).is_empty();
            plan_item(r, &item, &owners, has_dependents)
        };
        queue::apply(objects, self.name(), actions).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, refs: Value) -> ObjectMeta {
        serde_json::from_value(json!({"name": name, "namespace": "a", "uid": format!("u-{name}"), "resourceVersion": "4", "ownerReferences": refs}))
            .unwrap()
    }

    fn oref_json(name: &str, block: bool) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": format!("u-{name}"), "controller": true, "blockOwnerDeletion": block})
    }

    fn oref(name: &str, block: bool) -> OwnerReference {
        serde_json::from_value(oref_json(name, block)).unwrap()
    }

    fn cached_rs(m: ObjectMeta) -> Cached {
        Cached::ReplicaSet(Arc::new(k8s_openapi::api::apps::v1::ReplicaSet {
            metadata: m,
            ..Default::default()
        }))
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn deletes(a: &[Action]) -> Vec<(String, &'static str)> {
        a.iter()
            .filter_map(|x| match x {
                Action::Delete {
                    name, propagation, ..
                } => Some((name.clone(), propagation.unwrap_or(""))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn classifies_owners_as_upstream() {
        let r = oref("rs", true);
        let mut owner = obj("rs", json!([]));
        assert_eq!(classify(&r, Some(&owner)), Owner::Solid);
        assert_eq!(classify(&r, None), Owner::Dangling);
        let mut other = owner.clone();
        other.uid = Some("recreated".into());
        assert_eq!(classify(&r, Some(&other)), Owner::Dangling);
        owner.deletion_timestamp = Some(serde_json::from_value(json!(NOW)).unwrap());
        assert_eq!(classify(&r, Some(&owner)), Owner::Solid);
        owner.finalizers = Some(vec![FOREGROUND.into()]);
        assert_eq!(classify(&r, Some(&owner)), Owner::Waiting);
    }

    #[test]
    fn orphans_are_deleted_in_the_background_or_as_their_finalizers_say() {
        let pods = res("pods");
        let p = obj("p", json!([oref_json("rs", true)]));
        let a = plan_item(pods, &p, &[(oref("rs", true), Owner::Dangling)], false);
        assert_eq!(deletes(&a), [("p".to_string(), "Background")]);
        let Action::Delete { uid, .. } = &a[0] else {
            panic!()
        };
        assert_eq!(uid.as_deref(), Some("u-p"));
        let mut f = p.clone();
        f.finalizers = Some(vec![ORPHAN.into()]);
        assert_eq!(
            deletes(&plan_item(
                pods,
                &f,
                &[(oref("rs", true), Owner::Dangling)],
                false
            )),
            [("p".to_string(), "Orphan")]
        );
        // a live owner keeps it; no owners: nothing to collect
        assert!(plan_item(pods, &p, &[(oref("rs", true), Owner::Solid)], false).is_empty());
        assert!(plan_item(pods, &obj("x", json!([])), &[], false).is_empty());
    }

    #[test]
    fn a_live_owner_keeps_the_object_but_dangling_references_go() {
        let pods = res("pods");
        let p = obj("p", json!([oref_json("a", true), oref_json("b", false)]));
        let a = plan_item(
            pods,
            &p,
            &[
                (oref("a", true), Owner::Solid),
                (oref("b", false), Owner::Dangling),
            ],
            false,
        );
        let [Action::Patch { patch, .. }] = &a[..] else {
            panic!("{a:?}")
        };
        assert_eq!(
            patch["metadata"]["ownerReferences"],
            json!([oref_json("a", true)])
        );
        assert_eq!(patch["metadata"]["resourceVersion"], "4");
    }

    #[test]
    fn foreground_owners_take_dependents_down_first() {
        let rs = obj("rs", json!([oref_json("d", true)]));
        // the owner waits: a dependent with dependents of its own goes in the foreground
        let a = plan_item(
            res("replicasets"),
            &rs,
            &[(oref("d", true), Owner::Waiting)],
            true,
        );
        assert_eq!(deletes(&a), [("rs".to_string(), "Foreground")]);
        let a = plan_item(
            res("replicasets"),
            &rs,
            &[(oref("d", true), Owner::Waiting)],
            false,
        );
        assert_eq!(deletes(&a), [("rs".to_string(), "Background")]);
        // the owner keeps its finalizer while a blocking dependent is left
        let mut d = obj("d", json!([]));
        d.deletion_timestamp = Some(serde_json::from_value(json!(NOW)).unwrap());
        d.finalizers = Some(vec![FOREGROUND.into(), "keep".into()]);
        let dep = cached_rs(rs.clone());
        assert!(plan_deleting(res("deployments"), &d, &[(res("replicasets"), dep)]).is_empty());
        let a = plan_deleting(res("deployments"), &d, &[]);
        let [Action::Patch { patch, .. }] = &a[..] else {
            panic!()
        };
        assert_eq!(patch["metadata"]["finalizers"], json!(["keep"]));
    }

    #[test]
    fn orphaning_removes_the_references_then_the_finalizer() {
        let mut d = obj("d", json!([]));
        d.deletion_timestamp = Some(serde_json::from_value(json!(NOW)).unwrap());
        d.finalizers = Some(vec![ORPHAN.into()]);
        let rs = cached_rs(obj(
            "rs",
            json!([oref_json("d", true), oref_json("other", false)]),
        ));
        let a = plan_deleting(res("deployments"), &d, &[(res("replicasets"), rs)]);
        assert_eq!(a.len(), 2);
        let Action::Patch { name, patch, .. } = &a[0] else {
            panic!()
        };
        assert_eq!(name, "rs");
        assert_eq!(
            patch["metadata"]["ownerReferences"],
            json!([oref_json("other", false)])
        );
        let Action::Patch { name, patch, .. } = &a[1] else {
            panic!()
        };
        assert_eq!(name, "d");
        assert_eq!(patch["metadata"]["finalizers"], json!([]));
    }
}
