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

/// The served resource (its first served version) of a group and plural, namespaced.
fn served(group: &str, plural: &str) -> Option<&'static Resource> {
    resources::RESOURCES
        .iter()
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
            let Some(r) = served(group, plural) else {
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
