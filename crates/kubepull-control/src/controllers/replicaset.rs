//! The ReplicaSet controller (kubernetes `pkg/controller/replicaset/replica_set.go`, 1.32):
//! `syncReplicaSet` creates pods from the template up to `spec.replicas` (at most
//! `BurstReplicas`, 500, per sync) or deletes the surplus in `getPodsToDelete` order, then
//! writes the status (`calculateStatus`, replica_set_utils.go), over the active pods of the
//! namespace it claims first ([`super::refmanager`]: orphans adopted, non-matching released;
//! an orphan that appears or is relabelled syncs the sets selecting it). Creations and deletions are
//! remembered as expectations (`controller_utils.go` `UIDTrackingControllerExpectations`): the
//! set is not managed again until the informer has seen them, so a cache that lags behind the
//! writes never makes it create or delete twice.

use std::sync::Arc;
use std::time::Duration;

use super::expectations::Expectations;
use super::informer::{index, node_name, pod_active, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref, reference};
use super::queue::{self, Action, Plan};
use super::{refmanager, res};
use crate::errors::ApiError;
use crate::objects::Objects;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// replica_set.go `BurstReplicas`.
pub const BURST_REPLICAS: i64 = 500;
pub use super::expectations::EXPECTATIONS_TIMEOUT;

/// When the pod turned Ready, if it is (`podutil.GetPodReadyCondition`).
pub fn ready_since(p: &Pod) -> Option<Option<&Time>> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref())
}

/// `podutil.IsPodAvailable`: ready for at least `min_ready` seconds at `now`.
pub fn available(p: &Pod, min_ready: i64, now: jiff::Timestamp) -> bool {
    let Some(since) = ready_since(p) else {
        return false;
    };
    if min_ready == 0 {
        return true;
    }
    since.is_some_and(|t| t.0.as_second() + min_ready <= now.as_second())
}

fn phase_rank(p: &Pod) -> u8 {
    match kinds::pod_phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

/// `controller.ActivePods` order (the ones to delete first): unscheduled before scheduled,
/// pending before unknown before running, not ready before ready, ready for less time before
/// more, newer before older.
fn delete_order(p: &Pod) -> impl Ord {
    (
        !node_name(p).is_empty(),
        phase_rank(p),
        ready_since(p).is_some(),
        std::cmp::Reverse(ready_since(p).flatten().cloned()),
        std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
    )
}

fn labels_match(
    template_labels: Option<&std::collections::BTreeMap<String, String>>,
    pod: &Pod,
) -> bool {
    let Some(want) = template_labels else {
        return true;
    };
    want.iter()
        .all(|(k, v)| pod.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
}

/// The pod a ReplicaSet creates (controller_utils.go `GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let tpl = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tm = tpl.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", kinds::name(&rs.metadata))),
            namespace: rs.metadata.namespace.clone(),
            labels: Some(tm.labels.unwrap_or_default()),
            annotations: Some(tm.annotations.unwrap_or_default()),
            owner_references: Some(vec![new_controller_ref(rs)]),
            ..Default::default()
        },
        spec: Some(tpl.spec.unwrap_or_default()),
        status: None,
    }
}

/// Syncs one ReplicaSet: `pods` are the pods it controls; `manage` is false while earlier
/// creations or deletions are not yet observed.
pub fn plan(rs: &ReplicaSet, pods: &[Arc<Pod>], manage: bool, now: jiff::Timestamp) -> Plan {
    let mut p = Plan::default();
    let ns = kinds::namespace(&rs.metadata).to_string();
    let spec = rs.spec.clone().unwrap_or_default();
    let mut active: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| pod_active(p))
        .collect();
    let want = i64::from(spec.replicas.unwrap_or(0));
    let have = active.len() as i64;
    if manage && rs.metadata.deletion_timestamp.is_none() {
        if have < want {
            for _ in 0..(want - have).min(BURST_REPLICAS) {
                p.actions.push(Action::Create {
                    r: res("pods"),
                    ns: ns.clone(),
                    obj: pod_from_template(rs).into(),
                    report: Some(reference(rs)),
                });
            }
        } else if have > want {
            active.sort_by_key(|p| delete_order(p));
            for pod in active
                .iter()
                .take((have - want).min(BURST_REPLICAS) as usize)
            {
                let pn = kinds::name(&pod.metadata).to_string();
                p.actions.push(Action::Delete {
                    r: res("pods"),
                    ns: ns.clone(),
                    name: pn.clone(),
                    propagation: None,
                    uid: Some(kinds::uid(&pod.metadata).to_string()),
                });
                p.actions.push(Action::Event {
                    about: reference(rs),
                    etype: "Normal",
                    reason: "SuccessfulDelete",
                    message: format!("Deleted pod: {pn}"),
                });
            }
        }
    }
    // calculateStatus, over the pods as they were read
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let tpl_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let ready = active.iter().filter(|p| ready_since(p).is_some()).count();
    let avail = active
        .iter()
        .filter(|p| available(p, min_ready, now))
        .count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut status = rs.status.clone().unwrap_or_default();
    status.replicas = count(active.len());
    status.fully_labeled_replicas = Some(count(
        active
            .iter()
            .filter(|p| labels_match(tpl_labels, p))
            .count(),
    ));
    status.ready_replicas = Some(count(ready));
    status.available_replicas = Some(count(avail));
    status.observed_generation = Some(rs.metadata.generation.unwrap_or(0));
    if rs.status.as_ref() != Some(&status) {
        let mut n = rs.clone();
        n.status = Some(status);
        p.actions.push(Action::Update {
            r: res("replicasets"),
            obj: n.into(),
            status: true,
        });
    }
    // ready pods that become available after minReadySeconds
    if min_ready > 0 && ready as i64 == want && avail as i64 != want {
        p.requeue_after = Some(Duration::from_secs(min_ready as u64));
    }
    p
}

/// The ReplicaSet controller over the shared informers.
pub struct ReplicaSetController {
    replica_sets: Typed<ReplicaSet>,
    pods: Typed<Pod>,
    expect: Expectations,
}

impl ReplicaSetController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> ReplicaSetController {
        ReplicaSetController {
            replica_sets: informers.of::<ReplicaSet>(),
            pods: informers.of::<Pod>(),
            expect: Expectations::default(),
        }
    }

    fn satisfied(&self, key: &str) -> bool {
        self.expect.satisfied(key)
    }
}

#[async_trait::async_trait]
impl queue::Controller for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.replica_sets.prefix().to_string(),
            self.pods.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if let Some(rs) = change.obj::<ReplicaSet>() {
            let k = kinds::key_of(&rs.metadata);
            if change.deleted {
                self.expect.forget(&k);
            }
            return vec![k];
        }
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        // an orphan: offered to the matching sets (addPod / updatePod)
        let orphans = refmanager::orphan_keys(change, &self.replica_sets, |rs| {
            rs.spec.as_ref().map(|s| &s.selector)
        });
        self.expect
            .pod_change_keys(change, pod, "ReplicaSet", orphans)
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .replica_sets
            .list()
            .iter()
            .map(|r| kinds::key_of(&r.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(rs) = self.replica_sets.get_named(ns, name) else {
            self.expect.forget(key);
            return Ok(None);
        };
        let manage = self.satisfied(key);
        // syncReplicaSet / getPodsForReplicaSet: the namespace's active pods, claimed (owned
        // and matching, orphans adopted, non-matching released); a selector that does not
        // convert is logged and the set left alone
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .by_index(index::NAMESPACE, ns)
            .into_iter()
            .filter(|p| pod_active(p))
            .collect();
        let selector = rs
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let claim = match refmanager::claim(&*rs, &selector, &candidates) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(replicaset = %key, error = %e, "not synced: its selector does not convert");
                return Ok(None);
            }
        };
        refmanager::apply_claim(objects, self.name(), &*rs, &claim).await?;
        let pods = claim.claimed;
        let plan = plan(&rs, &pods, manage, jiff::Timestamp::now());
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
    use serde_json::{json, Value};

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn rs(replicas: i64) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": "web-abc", "namespace": "a", "uid": "rs1", "generation": 2, "resourceVersion": "7"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
        .unwrap()
    }

    fn pod_value(name: &str, node: &str, ready: bool, created: &str) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "a", "uid": format!("u-{name}"), "creationTimestamp": created,
            "labels": {"app": "web"}, "ownerReferences": [{"apiVersion": "apps/v1", "uid": "rs1", "controller": true, "kind": "ReplicaSet", "name": "web-abc"}]},
            "spec": {"containers": [], "nodeName": node}, "status": {"phase": "Running"}});
        if ready {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        p
    }

    fn pod(name: &str, node: &str, ready: bool, created: &str) -> Arc<Pod> {
        Arc::new(serde_json::from_value(pod_value(name, node, ready, created)).unwrap())
    }

    const T: &str = "2026-01-01T00:00:00Z";

    fn status_update(p: &Plan) -> &ReplicaSet {
        let Some(Action::Update {
            obj: queue::Object::ReplicaSet(rs),
            status: true,
            ..
        }) = p.actions.last()
        else {
            panic!("{p:?}")
        };
        rs
    }

    #[test]
    fn creates_the_missing_pods_from_the_template() {
        let p = plan(&rs(3), &[pod("a", "n", true, T)], true, now());
        let creates: Vec<&Pod> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    obj: queue::Object::Pod(obj),
                    report,
                    ..
                } => {
                    assert_eq!(report.as_ref().unwrap().name.as_deref(), Some("web-abc"));
                    Some(obj)
                }
                _ => None,
            })
            .collect();
        assert_eq!(creates.len(), 2);
        let m = &creates[0].metadata;
        assert_eq!(m.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(m.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(m.owner_references.as_ref().unwrap()[0].uid, "rs1");
        assert_eq!(
            creates[0].spec.as_ref().unwrap().containers[0]
                .image
                .as_deref(),
            Some("x")
        );
        // the JSON the server gets
        let v = queue::Object::from(creates[0].clone()).to_value().unwrap();
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        // status reflects the pods read
        let st = status_update(&p).status.as_ref().unwrap();
        assert_eq!(st.replicas, 1);
        assert_eq!(st.ready_replicas, Some(1));
        assert_eq!(st.observed_generation, Some(2));
    }

    #[test]
    fn unobserved_writes_hold_back_management_but_not_status() {
        let p = plan(&rs(3), &[], false, now());
        assert!(p
            .actions
            .iter()
            .all(|a| matches!(a, Action::Update { status: true, .. })));
    }

    #[test]
    fn deletes_unscheduled_then_not_ready_then_newest() {
        let pods = vec![
            pod("old-ready", "n", true, "2026-01-01T00:00:01Z"),
            pod("new-ready", "n", true, "2026-01-01T00:00:05Z"),
            pod("not-ready", "n", false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", "", false, "2026-01-01T00:00:00Z"),
        ];
        let p = plan(&rs(1), &pods, true, now());
        let deleted: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["unscheduled", "not-ready", "new-ready"]);
    }

    #[test]
    fn terminating_and_finished_pods_do_not_count() {
        let mut gone = pod_value("gone", "n", true, T);
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut done = pod_value("done", "n", false, T);
        done["status"]["phase"] = json!("Succeeded");
        let pods: Vec<Arc<Pod>> = [gone, done]
            .into_iter()
            .map(|v| Arc::new(serde_json::from_value(v).unwrap()))
            .collect();
        let p = plan(&rs(1), &pods, true, now());
        assert_eq!(
            p.actions
                .iter()
                .filter(|a| matches!(a, Action::Create { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn min_ready_seconds_delays_availability() {
        let mut r = rs(1);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(3600);
        let p = plan(&r, &[pod("a", "n", true, T)], true, now());
        let st = status_update(&p).status.as_ref().unwrap();
        assert_eq!(st.ready_replicas, Some(1));
        assert_eq!(st.available_replicas, Some(0));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(3600)));
    }

    /// Creations the informer has not shown yet keep the set from being managed again; seeing
    /// the pod (or the expectations timing out) releases it.
    #[tokio::test]
    async fn expectations_are_met_by_what_the_informer_shows() {
        use super::queue::Controller as _;
        let store: Arc<dyn kubepull_datastore::Datastore> =
            Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let informers = Informers::new(store);
        let mut c = ReplicaSetController::new(&informers);
        c.expect.expect(
            "a/web-abc",
            ["u-a".to_string()].into(),
            ["u-old".to_string()].into(),
        );
        assert!(!c.satisfied("a/web-abc"));
        let notice = |p: Arc<Pod>| Notice {
            key: format!("/registry/pods/a/{}", kinds::name(&p.metadata)),
            obj: kinds::Cached::Pod(p),
            old: None,
            deleted: false,
        };
        let keys = c.keys_for(&notice(pod("a", "", false, T)));
        assert_eq!(keys, ["a/web-abc"]);
        assert!(!c.satisfied("a/web-abc"), "the deletion is not seen yet");
        let mut old = pod_value("old", "n", true, T);
        old["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        c.keys_for(&notice(Arc::new(serde_json::from_value(old).unwrap())));
        assert!(c.satisfied("a/web-abc"));
        // an expectation never met expires
        c.expect.expect_at(
            "a/other",
            ["never".to_string()].into(),
            Default::default(),
            tokio::time::Instant::now() - EXPECTATIONS_TIMEOUT - Duration::from_secs(1),
        );
        assert!(c.satisfied("a/other"));
    }

    #[test]
    fn a_settled_set_writes_nothing() {
        let mut r = rs(1);
        let p = plan(&r, &[pod("a", "n", true, T)], true, now());
        r.status = status_update(&p).status.clone();
        assert!(plan(&r, &[pod("a", "n", true, T)], true, now())
            .actions
            .is_empty());
    }
}
