//! The resource quota controller (kubernetes `pkg/controller/resourcequota`:
//! `resource_quota_controller.go` `syncResourceQuota`, `replenishQuota`, and the monitors of
//! `resource_quota_monitor.go`): each quota's `status.hard` follows its `spec.hard` and its
//! `status.used` is the usage of the objects of its namespace ([`crate::quota::plan`]).
//!
//! A quota is synced when it changes, and when an object of its namespace that it tracks is
//! added or deleted, or updated in a way that can change its usage (a pod's phase or
//! deletion, a Service's or claim's spec); a sync lists only the resources the quota names, in
//! its namespace. Every quota is synced again at the resync period (kube-controller-manager's
//! `--resource-quota-sync-period`), which also catches the kinds no informer watches. A status
//! write carries the resourceVersion it was planned from; one that meets a newer version is
//! planned again from the cache ([`queue::Retry::Reread`]).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret,
    Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::informer::{index, Informers, Notice, Typed};
use super::kinds::{self, resource_of};
use super::queue;
use crate::errors::ApiError;
use crate::objects::{ListOptions, Objects};
use crate::quota::{self, Evaluator, Subject};
use crate::resources::{self, Resource};

/// The controller.
pub struct ResourceQuotaController {
    quotas: Typed<ResourceQuota>,
    /// The storage prefixes of the tracked kinds it watches, and their resources.
    tracked: Vec<(String, &'static Resource)>,
}

impl ResourceQuotaController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> ResourceQuotaController {
        let tracked = [
            resource_of::<Pod>(),
            resource_of::<Service>(),
            resource_of::<PersistentVolumeClaim>(),
            resource_of::<ConfigMap>(),
            resource_of::<Secret>(),
            resource_of::<ReplicationController>(),
            resource_of::<Deployment>(),
            resource_of::<ReplicaSet>(),
            resource_of::<StatefulSet>(),
            resource_of::<DaemonSet>(),
            resource_of::<ControllerRevision>(),
            resource_of::<Job>(),
            resource_of::<CronJob>(),
            resource_of::<Endpoints>(),
            resource_of::<EndpointSlice>(),
            resource_of::<Lease>(),
            resource_of::<PodDisruptionBudget>(),
        ]
        .into_iter()
        .map(|r| (r.key_prefix(), r))
        .collect();
        ResourceQuotaController {
            quotas: informers.of::<ResourceQuota>(),
            tracked,
        }
    }

    /// The tracked resource a storage key belongs to (the longest prefix).
    fn resource_of_key(&self, key: &str) -> Option<&'static Resource> {
        self.tracked
            .iter()
            .filter(|(p, _)| key.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, r)| *r)
    }
}

/// Whether an update can change an object's usage: a pod's phase or deletion (its resources
/// do not change in place), a Service's or claim's spec (or a claim's class annotation or
/// allocated storage). An update of any other kind leaves its count as it is.
fn usage_may_change(change: &Notice) -> bool {
    if let (Some(new), Some(old)) = (change.obj::<Pod>(), change.old::<Pod>()) {
        let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone());
        return phase(new) != phase(old)
            || new.metadata.deletion_timestamp != old.metadata.deletion_timestamp
            || new.metadata.deletion_grace_period_seconds
                != old.metadata.deletion_grace_period_seconds;
    }
    if let (Some(new), Some(old)) = (change.obj::<Service>(), change.old::<Service>()) {
        return new.spec != old.spec;
    }
    if let (Some(new), Some(old)) = (
        change.obj::<PersistentVolumeClaim>(),
        change.old::<PersistentVolumeClaim>(),
    ) {
        let allocated = |c: &PersistentVolumeClaim| {
            c.status
                .as_ref()
                .and_then(|s| s.allocated_resources.clone())
        };
        return new.spec != old.spec
            || new.metadata.annotations != old.metadata.annotations
            || allocated(new) != allocated(old);
    }
    false
}

/// The served resource (a built-in's first served version, a custom resource's storage
/// version) of a group and plural, namespaced.
fn served(objects: &Objects, group: &str, plural: &str) -> Option<&'static Resource> {
    resources::RESOURCES
        .iter()
        .chain(objects.crds().storage_resources())
        .find(|r| r.group == group && r.plural == plural && r.namespaced)
}

fn quotas_r() -> &'static Resource {
    resource_of::<ResourceQuota>()
}

#[async_trait::async_trait]
impl queue::Controller for ResourceQuotaController {
    fn name(&self) -> &'static str {
        "resourcequota-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        let mut p = vec![self.quotas.prefix().to_string()];
        p.extend(self.tracked.iter().map(|(p, _)| p.clone()));
        p
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if let Some(q) = change.obj::<ResourceQuota>() {
            return if change.deleted {
                vec![]
            } else {
                vec![kinds::key_of(&q.metadata)]
            };
        }
        // replenishQuota: the quotas of the object's namespace that track its resource
        let Some(r) = self.resource_of_key(&change.key) else {
            return vec![];
        };
        let Some(e) = Evaluator::of(r.group, r.plural) else {
            return vec![];
        };
        if change.old.is_some() && !change.deleted && !usage_may_change(change) {
            return vec![];
        }
        let ns = change.obj.meta().namespace.as_deref().unwrap_or("");
        if ns.is_empty() {
            return vec![];
        }
        self.quotas
            .by_index(index::NAMESPACE, ns)
            .into_iter()
            .filter(|q| {
                let hard = q.status.as_ref().and_then(|s| s.hard.as_ref());
                let names = hard.into_iter().flat_map(|h| h.keys().map(String::as_str));
                !e.matching_resources(names).is_empty()
            })
            .map(|q| kinds::key_of(&q.metadata))
            .collect()
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .quotas
            .list()
            .iter()
            .map(|q| kinds::key_of(&q.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(q) = self.quotas.get_named(ns, name) else {
            return Ok(None);
        };
        let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
        let evaluators =
            Evaluator::for_hard(hard.into_iter().flat_map(|h| h.keys().map(String::as_str)));
        let mut listed = BTreeMap::new();
        for e in evaluators {
            let (group, plural) = e.group_resource();
            // a count of a resource that is not served has no evaluator
            let Some(r) = served(objects, group, plural) else {
                continue;
            };
            let (items, _, _) = objects.list(r, Some(ns), &ListOptions::default()).await?;
            let subjects: Vec<Subject> = items
                .iter()
                .filter_map(|o| Subject::decode(&e, o))
                .collect();
            listed.insert(e, subjects);
        }
        let now = jiff::Timestamp::now().as_second();
        let Some(status) = quota::plan(&q, &listed, now) else {
            return Ok(None);
        };
        let mut next = (*q).clone();
        next.status = Some(status);
        let v = serde_json::to_value(&next)
            .map_err(|e| ApiError::internal(format!("encoding the ResourceQuota: {e}")))?;
        crate::managedfields::controller(objects.update(
            quotas_r(),
            ns,
            name,
            v,
            Some("status"),
            false,
        ))
        .await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use serde_json::json;

    use super::super::informer::test_support::Env;
    use super::super::kinds::Cached;
    use super::super::queue::Controller as _;
    use super::*;

    fn quota(name: &str, hard: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"hard": hard.clone()}, "status": {"hard": hard}})
    }

    fn pod(name: &str, phase: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": "250m"}}}]},
            "status": {"phase": phase}})
    }

    #[tokio::test]
    async fn a_pod_change_syncs_the_quotas_that_track_pods() {
        let env = Env::new().await;
        env.put::<ResourceQuota>(quota("compute", json!({"pods": "4", "requests.cpu": "2"})))
            .await;
        env.put::<ResourceQuota>(quota("objects", json!({"configmaps": "4"})))
            .await;
        let first: Vec<String> = {
            let mut c = ResourceQuotaController::new(&env.informers);
            let notices = env.refresh::<ResourceQuota>().await;
            notices.iter().flat_map(|n| c.keys_for(n)).collect()
        };
        assert_eq!(first, ["default/compute", "default/objects"]);
        let mut c = ResourceQuotaController::new(&env.informers);
        env.put::<Pod>(pod("a", "Pending")).await;
        env.put::<Pod>(pod("done", "Succeeded")).await;
        let notices = env.refresh::<Pod>().await;
        let keys: BTreeSet<String> = notices.iter().flat_map(|n| c.keys_for(n)).collect();
        assert_eq!(keys, BTreeSet::from(["default/compute".to_string()]));
        c.sync(&env.objects, "default/compute").await.unwrap();
        let stored = env.stored::<ResourceQuota>().await;
        let compute = stored
            .iter()
            .find(|q| q["metadata"]["name"] == "compute")
            .unwrap();
        assert_eq!(
            compute["status"]["used"],
            json!({"pods": "1", "requests.cpu": "250m"})
        );
        // a label change leaves the usage as it is; a phase change does not
        let p: Pod = serde_json::from_value(pod("a", "Pending")).unwrap();
        let mut relabelled = p.clone();
        relabelled.metadata.labels = None;
        let mut finished = p.clone();
        finished.status.as_mut().unwrap().phase = Some("Failed".into());
        let notice = |new: &Pod| Notice {
            key: resource_of::<Pod>().key("default", "a"),
            obj: Cached::Pod(Arc::new(new.clone())),
            old: Some(Cached::Pod(Arc::new(p.clone()))),
            deleted: false,
        };
        assert!(c.keys_for(&notice(&relabelled)).is_empty());
        assert_eq!(c.keys_for(&notice(&finished)), ["default/compute"]);
        // a synced quota whose usage is current is not written again
        env.refresh::<ResourceQuota>().await;
        let before = env.stored::<ResourceQuota>().await;
        c.sync(&env.objects, "default/compute").await.unwrap();
        assert_eq!(env.stored::<ResourceQuota>().await, before);
    }
}
