//! The ReplicationController manager (kubernetes `pkg/controller/replication`, 1.32), which
//! upstream runs as the ReplicaSet controller over ReplicationControllers converted to
//! ReplicaSets (`conversion.go`): here each controller is converted to a ReplicaSet, planned by
//! [`super::replicaset::plan`], and the plan's writes are turned back to the controller (its
//! pods' controller reference, its events, its status). Its selector is a label map, so the
//! pods it claims are those whose labels contain it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Pod, ReplicationController, ReplicationControllerCondition, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::expectations::Expectations;
use super::informer::{index, pod_active, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref, reference};
use super::queue::{self, Action, Object, Plan};
use super::{refmanager, replicaset, res};
use crate::errors::ApiError;
use crate::objects::Objects;

/// The selector of a controller, as the ReplicaSet it converts to has it.
fn selector(rc: &ReplicationController) -> LabelSelector {
    LabelSelector {
        match_labels: rc.spec.as_ref().and_then(|s| s.selector.clone()),
        match_expressions: None,
    }
}

/// `Convert_v1_ReplicationController_To_apps_ReplicaSet`.
pub fn as_replica_set(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: selector(rc),
            template: spec.template,
        }),
        status: rc.status.clone().map(|s| ReplicaSetStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            observed_generation: s.observed_generation,
            ..ReplicaSetStatus::default()
        }),
    }
}

/// The plan for `rc`: the ReplicaSet plan of its conversion, its writes turned back to `rc`.
pub fn plan(
    rc: &ReplicationController,
    pods: &[Arc<Pod>],
    manage: bool,
    now: jiff::Timestamp,
) -> Plan {
    let rs = as_replica_set(rc);
    let mut p = replicaset::plan(&rs, pods, manage, now);
    let owner = new_controller_ref(rc);
    let about = reference(rc);
    for a in &mut p.actions {
        match a {
            Action::Create { obj, report, .. } => {
                if let Object::Pod(pod) = obj {
                    pod.metadata.owner_references = Some(vec![owner.clone()]);
                }
                if report.is_some() {
                    *report = Some(about.clone());
                }
            }
            Action::Event { about: a, .. } => *a = about.clone(),
            Action::Update {
                r,
                obj,
                status: true,
            } => {
                if let Object::ReplicaSet(n) = obj {
                    let st = n.status.clone().unwrap_or_default();
                    let mut c = rc.clone();
                    c.status = Some(ReplicationControllerStatus {
                        replicas: st.replicas,
                        fully_labeled_replicas: st.fully_labeled_replicas,
                        ready_replicas: st.ready_replicas,
                        available_replicas: st.available_replicas,
                        observed_generation: st.observed_generation,
                        conditions: rc
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.clone())
                            .filter(|c: &Vec<ReplicationControllerCondition>| !c.is_empty()),
                    });
                    *r = res("replicationcontrollers");
                    *obj = c.into();
                }
            }
            _ => {}
        }
    }
    // the status is written only when it changed, compared as the controller's own
    p.actions.retain(|a| match a {
        Action::Update {
            obj: Object::ReplicationController(c),
            status: true,
            ..
        } => c.status != rc.status,
        _ => true,
    });
    p
}

/// The ReplicationController manager over the shared informers.
pub struct ReplicationManager {
    controllers: Typed<ReplicationController>,
    pods: Typed<Pod>,
    expect: Expectations,
}

impl ReplicationManager {
    /// A manager reading `informers`.
    pub fn new(informers: &Informers) -> ReplicationManager {
        ReplicationManager {
            controllers: informers.of::<ReplicationController>(),
            pods: informers.of::<Pod>(),
            expect: Expectations::default(),
        }
    }
}

fn selector_map(rc: &ReplicationController) -> Option<&BTreeMap<String, String>> {
    rc.spec.as_ref().and_then(|s| s.selector.as_ref())
}

#[async_trait::async_trait]
impl queue::Controller for ReplicationManager {
    fn name(&self) -> &'static str {
        "replication-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.controllers.prefix().to_string(),
            self.pods.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if let Some(rc) = change.obj::<ReplicationController>() {
            let k = kinds::key_of(&rc.metadata);
            if change.deleted {
                self.expect.forget(&k);
            }
            return vec![k];
        }
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        let orphans = refmanager::orphan_keys_of_map(change, &self.controllers, selector_map);
        self.expect
            .pod_change_keys(change, pod, "ReplicationController", orphans)
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .controllers
            .list()
            .iter()
            .map(|r| kinds::key_of(&r.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(rc) = self.controllers.get_named(ns, name) else {
            self.expect.forget(key);
            return Ok(None);
        };
        let manage = self.expect.satisfied(key);
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .by_index(index::NAMESPACE, ns)
            .into_iter()
            .filter(|p| pod_active(p))
            .collect();
        let claim = match refmanager::claim(&*rc, &selector(&rc), &candidates) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(replicationcontroller = %key, error = %e, "not synced: its selector does not convert");
                return Ok(None);
            }
        };
        refmanager::apply_claim(objects, self.name(), &*rc, &claim).await?;
        let plan = plan(&rc, &claim.claimed, manage, jiff::Timestamp::now());
        let mut observed = queue::Observed::default();
        let res = queue::apply_observed(objects, self.name(), plan.actions, &mut observed).await;
        self.expect.expect_unseen(key, &observed, &self.pods);
        res?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn rc(replicas: i64, status: serde_json::Value) -> ReplicationController {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "a", "uid": "rc1", "generation": 3, "resourceVersion": "7"},
            "spec": {"replicas": replicas, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web", "tier": "f"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
            "status": status}))
        .unwrap()
    }

    fn pod(name: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "a", "uid": format!("u-{name}"),
                "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": "rc1", "controller": true}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn creates_pods_owned_by_the_controller_and_reports_on_it() {
        let p = plan(&rc(2, json!({"replicas": 0})), &[], true, now());
        let creates: Vec<&Action> = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Create { .. }))
            .collect();
        assert_eq!(creates.len(), 2);
        let Action::Create {
            obj: Object::Pod(pod),
            report,
            ..
        } = creates[0]
        else {
            panic!("a pod create")
        };
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("v1", "ReplicationController", "rc1", Some(true))
        );
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(
            report.as_ref().and_then(|r| r.kind.as_deref()),
            Some("ReplicationController")
        );
        // the status (observedGeneration 3) goes to the controller's own resource
        let status = p.actions.iter().find_map(|a| match a {
            Action::Update {
                r,
                obj: Object::ReplicationController(c),
                status: true,
            } => Some((r.plural, c)),
            _ => None,
        });
        let (plural, c) = status.expect("a status write");
        assert_eq!(plural, "replicationcontrollers");
        assert_eq!(c.status.as_ref().unwrap().observed_generation, Some(3));
    }

    #[test]
    fn deletes_the_surplus_and_leaves_an_unchanged_status_alone() {
        let pods = [pod("web-a"), pod("web-b"), pod("web-c")];
        let st = json!({"replicas": 3, "fullyLabeledReplicas": 0, "readyReplicas": 3, "availableReplicas": 3, "observedGeneration": 3});
        let p = plan(&rc(2, st.clone()), &pods, true, now());
        let deletes = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Delete { .. }))
            .count();
        assert_eq!(deletes, 1);
        assert!(p.actions.iter().any(|a| matches!(a,
            Action::Event { about, reason: "SuccessfulDelete", .. } if about.kind.as_deref() == Some("ReplicationController"))));
        // three pods, as many as wanted, status as computed: nothing to write
        let p = plan(&rc(3, st), &pods, true, now());
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        // not managed while expectations are pending: only the status
        let p = plan(&rc(5, json!({})), &pods, false, now());
        assert!(p
            .actions
            .iter()
            .all(|a| matches!(a, Action::Update { status: true, .. })));
    }
}
