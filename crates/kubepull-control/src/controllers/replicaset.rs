//! The ReplicaSet controller (kubernetes `pkg/controller/replicaset/replica_set.go`, 1.32):
//! `syncReplicaSet` creates pods from the template up to `spec.replicas` (at most
//! `BurstReplicas`, 500, per sync) or deletes the surplus in `getPodsToDelete` order, then
//! writes the status (`calculateStatus`, replica_set_utils.go). Creations and deletions are
//! remembered as expectations (`controller_utils.go` `UIDTrackingControllerExpectations`): the
//! set is not managed again until the informer has seen them, so a cache that lags behind the
//! writes never makes it create or delete twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::informer::{index, pod_active, Informer, Informers, Obj};
use super::queue::{self, Action, Plan};
use super::{i, owner_ref, res, s};
use crate::errors::ApiError;
use crate::objects::Objects;

/// replica_set.go `BurstReplicas`.
pub const BURST_REPLICAS: i64 = 500;
/// `ExpectationsTimeout`.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

fn ready_since(p: &Value) -> Option<&str> {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
        .map(|c| s(c, "/lastTransitionTime"))
}

fn secs(t: &str) -> Option<i64> {
    t.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// `podutil.IsPodAvailable`: ready for at least `min_ready` seconds at `now`.
fn available(p: &Value, min_ready: i64, now: &str) -> bool {
    let Some(since) = ready_since(p) else {
        return false;
    };
    if min_ready == 0 {
        return true;
    }
    match (secs(since), secs(now)) {
        (Some(t), Some(n)) => t + min_ready <= n,
        _ => false,
    }
}

fn phase_rank(p: &Value) -> u8 {
    match s(p, "/status/phase") {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

/// `controller.ActivePods` order (the ones to delete first): unscheduled before scheduled,
/// pending before unknown before running, not ready before ready, ready for less time before
/// more, newer before older.
fn delete_order(p: &Value) -> impl Ord {
    (
        !s(p, "/spec/nodeName").is_empty(),
        phase_rank(p),
        ready_since(p).is_some(),
        std::cmp::Reverse(ready_since(p).unwrap_or("").to_string()),
        std::cmp::Reverse(s(p, "/metadata/creationTimestamp").to_string()),
    )
}

fn labels_match(template_labels: Option<&Value>, pod: &Value) -> bool {
    let Some(Value::Object(want)) = template_labels else {
        return true;
    };
    want.iter()
        .all(|(k, v)| pod.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
}

/// Syncs one ReplicaSet: `pods` are the pods it controls; `manage` is false while earlier
/// creations or deletions are not yet observed.
pub fn plan(rs: &Value, pods: &[Obj], manage: bool, now: &str) -> Plan {
    let mut p = Plan::default();
    let ns = s(rs, "/metadata/namespace").to_string();
    let name = s(rs, "/metadata/name").to_string();
    let mut active: Vec<&Value> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| pod_active(p))
        .collect();
    let want = i(rs, "/spec/replicas");
    let have = active.len() as i64;
    if manage && rs.pointer("/metadata/deletionTimestamp").is_none() {
        if have < want {
            let tpl = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            for _ in 0..(want - have).min(BURST_REPLICAS) {
                // controller_utils.go GetPodFromTemplate
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {
                        "generateName": format!("{name}-"),
                        "namespace": ns,
                        "labels": tpl.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                        "annotations": tpl.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                        "ownerReferences": [owner_ref("ReplicaSet", "apps/v1", rs)],
                    },
                    "spec": tpl.get("spec").cloned().unwrap_or(json!({})),
                });
                p.actions.push(Action::Create {
                    r: res("pods"),
                    ns: ns.clone(),
                    obj: pod,
                    report: Some(rs.clone()),
                });
            }
        } else if have > want {
            active.sort_by_key(|p| delete_order(p));
            for pod in active
                .iter()
                .take((have - want).min(BURST_REPLICAS) as usize)
            {
                let pn = s(pod, "/metadata/name").to_string();
                p.actions.push(Action::Delete {
                    r: res("pods"),
                    ns: ns.clone(),
                    name: pn.clone(),
                    propagation: None,
                    uid: Some(s(pod, "/metadata/uid").to_string()),
                });
                p.actions.push(Action::Event {
                    about: rs.clone(),
                    etype: "Normal",
                    reason: "SuccessfulDelete",
                    message: format!("Deleted pod: {pn}"),
                });
            }
        }
    }
    // calculateStatus, over the pods as they were read
    let min_ready = i(rs, "/spec/minReadySeconds");
    let tpl_labels = rs.pointer("/spec/template/metadata/labels");
    let ready = active.iter().filter(|p| ready_since(p).is_some()).count();
    let avail = active
        .iter()
        .filter(|p| available(p, min_ready, now))
        .count();
    let mut status = rs.get("status").cloned().unwrap_or(json!({}));
    status["replicas"] = json!(active.len());
    status["fullyLabeledReplicas"] = json!(active
        .iter()
        .filter(|p| labels_match(tpl_labels, p))
        .count());
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(avail);
    status["observedGeneration"] = json!(i(rs, "/metadata/generation"));
    if rs.get("status") != Some(&status) {
        let mut n = rs.clone();
        n["status"] = status;
        p.actions.push(Action::Update {
            r: res("replicasets"),
            obj: n,
            status: true,
        });
    }
    // ready pods that become available after minReadySeconds
    if min_ready > 0 && ready as i64 == want && avail as i64 != want {
        p.requeue_after = Some(Duration::from_secs(min_ready as u64));
    }
    p
}

#[derive(Debug)]
struct Expect {
    adds: HashSet<String>,
    dels: HashSet<String>,
    at: Instant,
}

/// The ReplicaSet controller over the shared informers.
pub struct ReplicaSetController {
    replica_sets: Arc<Informer>,
    pods: Arc<Informer>,
    expect: HashMap<String, Expect>,
}

impl ReplicaSetController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> ReplicaSetController {
        ReplicaSetController {
            replica_sets: informers.of(res("replicasets")),
            pods: informers.of(res("pods")),
            expect: HashMap::new(),
        }
    }

    fn satisfied(&self, key: &str) -> bool {
        self.expect.get(key).is_none_or(|e| {
            (e.adds.is_empty() && e.dels.is_empty()) || e.at.elapsed() > EXPECTATIONS_TIMEOUT
        })
    }
}

#[async_trait::async_trait]
impl queue::Controller for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![res("replicasets").key_prefix(), res("pods").key_prefix()]
    }

    fn keys_for(
        &mut self,
        key: &str,
        obj: &Value,
        old: Option<&Value>,
        deleted: bool,
    ) -> Vec<String> {
        if key.starts_with(self.replica_sets.prefix()) {
            let k = queue::key_of(obj);
            if deleted {
                self.expect.remove(&k);
            }
            return vec![k];
        }
        let ns = s(obj, "/metadata/namespace");
        let uid = s(obj, "/metadata/uid");
        let mut keys = vec![];
        for o in [Some(obj), old].into_iter().flatten() {
            if let Some((n, _)) = queue::controller_of(o, "ReplicaSet") {
                let k = format!("{ns}/{n}");
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        for k in &keys {
            if let Some(e) = self.expect.get_mut(k) {
                // CreationObserved / DeletionObserved
                e.adds.remove(uid);
                if deleted || obj.pointer("/metadata/deletionTimestamp").is_some() {
                    e.dels.remove(uid);
                }
            }
        }
        keys
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .replica_sets
            .list()
            .iter()
            .map(|r| queue::key_of(r))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(rs) = self.replica_sets.get(&res("replicasets").key(ns, name)) else {
            self.expect.remove(key);
            return Ok(None);
        };
        let manage = self.satisfied(key);
        let pods = self
            .pods
            .by_index(index::CONTROLLER, s(&rs, "/metadata/uid"));
        let plan = plan(&rs, &pods, manage, &super::now());
        let dels: HashSet<String> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { uid, .. } => uid.clone(),
                _ => None,
            })
            .collect();
        let mut created = vec![];
        let res = queue::apply_observed(objects, self.name(), plan.actions, &mut created).await;
        if !created.is_empty() || !dels.is_empty() {
            let adds: HashSet<String> = created
                .iter()
                .map(|p| s(p, "/metadata/uid").to_string())
                .filter(|u| self.pods.count(index::UID, u) == 0)
                .collect();
            let dels: HashSet<String> = dels
                .into_iter()
                .filter(|u| {
                    self.pods
                        .by_index(index::UID, u)
                        .iter()
                        .any(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                })
                .collect();
            self.expect.insert(
                key.to_string(),
                Expect {
                    adds,
                    dels,
                    at: Instant::now(),
                },
            );
        }
        res?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:10:00Z";

    fn rs(replicas: i64) -> Value {
        json!({"metadata": {"name": "web-abc", "namespace": "a", "uid": "rs1", "generation": 2, "resourceVersion": "7"},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    }

    fn pod(name: &str, node: &str, ready: bool, created: &str) -> Obj {
        let mut p = json!({"metadata": {"name": name, "namespace": "a", "uid": format!("u-{name}"), "creationTimestamp": created,
            "labels": {"app": "web"}, "ownerReferences": [{"uid": "rs1", "controller": true, "kind": "ReplicaSet", "name": "web-abc"}]},
            "spec": {"nodeName": node}, "status": {"phase": "Running"}});
        if ready {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        Arc::new(p)
    }

    #[test]
    fn creates_the_missing_pods_from_the_template() {
        let p = plan(&rs(3), &[pod("a", "n", true, "t1")], true, NOW);
        let creates: Vec<&Value> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { obj, report, .. } => {
                    assert!(report.is_some());
                    Some(obj)
                }
                _ => None,
            })
            .collect();
        assert_eq!(creates.len(), 2);
        assert_eq!(creates[0]["metadata"]["generateName"], "web-abc-");
        assert_eq!(creates[0]["metadata"]["labels"]["app"], "web");
        assert_eq!(creates[0]["metadata"]["ownerReferences"][0]["uid"], "rs1");
        assert_eq!(creates[0]["spec"]["containers"][0]["image"], "x");
        // status reflects the pods read
        let Some(Action::Update {
            obj, status: true, ..
        }) = p.actions.last()
        else {
            panic!()
        };
        assert_eq!(obj["status"]["replicas"], 1);
        assert_eq!(obj["status"]["readyReplicas"], 1);
        assert_eq!(obj["status"]["observedGeneration"], 2);
    }

    #[test]
    fn unobserved_writes_hold_back_management_but_not_status() {
        let p = plan(&rs(3), &[], false, NOW);
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
        let p = plan(&rs(1), &pods, true, NOW);
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
        let mut gone = (*pod("gone", "n", true, "t")).clone();
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut done = (*pod("done", "n", false, "t")).clone();
        done["status"]["phase"] = json!("Succeeded");
        let p = plan(&rs(1), &[Arc::new(gone), Arc::new(done)], true, NOW);
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
        r["spec"]["minReadySeconds"] = json!(3600);
        let p = plan(&r, &[pod("a", "n", true, "t")], true, NOW);
        let Some(Action::Update { obj, .. }) = p.actions.last() else {
            panic!()
        };
        assert_eq!(obj["status"]["readyReplicas"], 1);
        assert_eq!(obj["status"]["availableReplicas"], 0);
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
        c.expect.insert(
            "a/web-abc".into(),
            Expect {
                adds: ["u-a".to_string()].into(),
                dels: ["u-old".to_string()].into(),
                at: Instant::now(),
            },
        );
        assert!(!c.satisfied("a/web-abc"));
        let p = pod("a", "", false, "t");
        let keys = c.keys_for("/registry/pods/a/a", &p, None, false);
        assert_eq!(keys, ["a/web-abc"]);
        assert!(!c.satisfied("a/web-abc"), "the deletion is not seen yet");
        let mut old = (*pod("old", "n", true, "t")).clone();
        old["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        c.keys_for("/registry/pods/a/old", &old, None, false);
        assert!(c.satisfied("a/web-abc"));
        // an expectation never met expires
        c.expect.insert(
            "a/other".into(),
            Expect {
                adds: ["never".to_string()].into(),
                dels: Default::default(),
                at: Instant::now() - EXPECTATIONS_TIMEOUT - Duration::from_secs(1),
            },
        );
        assert!(c.satisfied("a/other"));
    }

    #[test]
    fn a_settled_set_writes_nothing() {
        let mut r = rs(1);
        let p = plan(&r, &[pod("a", "n", true, "t")], true, NOW);
        let Some(Action::Update { obj, .. }) = p.actions.last() else {
            panic!()
        };
        r["status"] = obj["status"].clone();
        assert!(plan(&r, &[pod("a", "n", true, "t")], true, NOW)
            .actions
            .is_empty());
    }
}
