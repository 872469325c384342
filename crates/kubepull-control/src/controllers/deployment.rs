//! The Deployment controller (kubernetes `pkg/controller/deployment`, 1.32): `syncDeployment`
//! (deployment_controller.go) choosing between a scaling event (`sync`, proportional scaling in
//! sync.go `scale`), `rolloutRolling` (rolling.go) and `rolloutRecreate` (recreate.go); new
//! ReplicaSets named by the `pod-template-hash` with the revision annotations
//! (`getNewReplicaSet`, util/deployment_util.go `SetNewReplicaSetAnnotations`), revision
//! history clean-up (`cleanupDeployment`) and the status with its `Available` and
//! `Progressing` conditions (`calculateStatus`, progress.go `syncRolloutStatus`).
//!
//! [`plan`] is pure: it reads the Deployment and its ReplicaSets and returns the writes. The
//! controller reads both from the shared informers; a Deployment is synced when it changes,
//! when one of its ReplicaSets changes, and (Recreate) when one of their pods is deleted.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::informer::{index, Cached, Informers, Notice, Typed};
use super::kinds;
use super::queue::{self, Action, Object, Plan};
use super::reference_of;
use super::{i, owner_ref, pod_template_hash, res, s, scaled};
use crate::errors::ApiError;
use crate::objects::Objects;

/// `RevisionAnnotation`.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// `RevisionHistoryAnnotation`.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `DesiredReplicasAnnotation`.
pub const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
/// `MaxReplicasAnnotation`.
pub const MAX: &str = "deployment.kubernetes.io/max-replicas";
/// `DefaultDeploymentUniqueLabelKey`.
pub const HASH_LABEL: &str = "pod-template-hash";
/// deployment_controller.go `maxRevHistoryLengthInChars`.
const MAX_REV_HISTORY_CHARS: usize = 2000;

fn ann<'a>(o: &'a Value, k: &str) -> Option<&'a str> {
    o.get("metadata")?.get("annotations")?.get(k)?.as_str()
}

fn set_ann(o: &mut Value, k: &str, v: String) {
    if !o["metadata"]["annotations"].is_object() {
        o["metadata"]["annotations"] = json!({});
    }
    o["metadata"]["annotations"][k] = json!(v);
}

fn replicas(o: &Value) -> i64 {
    i(o, "/spec/replicas")
}

fn revision(rs: &Value) -> i64 {
    ann(rs, REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn is_rolling(d: &Value) -> bool {
    s(d, "/spec/strategy/type") != "Recreate"
}

/// `ResolveFenceposts`: (maxSurge, maxUnavailable), never both zero.
fn fenceposts(d: &Value) -> (i64, i64) {
    let desired = replicas(d);
    let surge = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        desired,
        true,
    );
    let mut unavailable = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        desired,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// `MaxSurge`.
pub fn max_surge(d: &Value) -> i64 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// `MaxUnavailable`.
pub fn max_unavailable(d: &Value) -> i64 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// Drops `null` members: a Go struct decodes `null` and a missing field alike (kubectl
/// `rollout undo` sends `creationTimestamp: null` in the template it copies).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    strip_nulls(&mut t);
    if let Some(Value::Object(l)) = t.pointer_mut("/metadata/labels") {
        l.remove(HASH_LABEL);
        if l.is_empty() {
            if let Some(Value::Object(m)) = t.get_mut("metadata") {
                m.remove("labels");
            }
        }
    }
    t
}

/// `EqualIgnoreHash`: two pod templates equal but for the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    without_hash(a) == without_hash(b)
}

fn creation(o: &Value) -> (String, String) {
    (
        s(o, "/metadata/creationTimestamp").to_string(),
        s(o, "/metadata/name").to_string(),
    )
}

fn cond<'a>(status: &'a Value, t: &str) -> Option<&'a Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| s(c, "/type") == t)
}

fn new_cond(t: &str, st: &str, reason: &str, message: String, now: &str) -> Value {
    json!({"type": t, "status": st, "lastUpdateTime": now, "lastTransitionTime": now,
        "reason": reason, "message": message})
}

/// `SetDeploymentCondition`.
fn set_cond(status: &mut Value, mut c: Value) {
    if let Some(cur) = cond(status, s(&c, "/type")) {
        if s(cur, "/status") == s(&c, "/status") && s(cur, "/reason") == s(&c, "/reason") {
            return;
        }
        if s(cur, "/status") == s(&c, "/status") {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    remove_cond(status, s(&c, "/type").to_string().as_str());
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(a) = status["conditions"].as_array_mut() {
        a.push(c);
    }
}

fn remove_cond(status: &mut Value, t: &str) {
    if let Some(a) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        a.retain(|c| s(c, "/type") != t);
    }
}

/// `HasProgressDeadline` (a missing value is the default, 600 s).
fn progress_deadline(d: &Value) -> Option<i64> {
    match d
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64)
    {
        Some(x) if x == i32::MAX as i64 => None,
        Some(x) => Some(x),
        None => Some(600),
    }
}

/// What [`plan`] reads besides the Deployment.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The ReplicaSets the Deployment controls.
    pub replica_sets: Vec<Value>,
    /// A ReplicaSet of the namespace with the name a new one would get, when one exists
    /// (a hash collision unless it is the Deployment's own).
    pub name_taken: Option<Value>,
    /// Recreate: pods of old ReplicaSets still pending or running (`oldPodsRunning`).
    pub old_pods_running: bool,
}

struct St<'a> {
    d: &'a Value,
    status: Value,
    rss: Vec<Value>,
    created: Vec<bool>,
    actions: Vec<Action>,
    updates: HashMap<usize, usize>,
    now: &'a str,
    abort: bool,
}

impl St<'_> {
    fn event(&mut self, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            about: reference_of(self.d, "Deployment"),
            etype: "Normal",
            reason,
            message,
        });
    }

    fn push_update(&mut self, idx: usize) {
        let obj = self.rss[idx].clone();
        match self.updates.get(&idx) {
            Some(&a) => {
                if let Action::Update { obj: o, .. } = &mut self.actions[a] {
                    *o = Object::Json(obj);
                }
            }
            None => {
                self.updates.insert(idx, self.actions.len());
                self.actions.push(Action::Update {
                    r: res("replicasets"),
                    obj: Object::Json(obj),
                    status: false,
                });
            }
        }
    }

    /// `scaleReplicaSet`.
    fn scale(&mut self, idx: usize, new_scale: i64, op: &str) {
        let d = self.d;
        let desired = replicas(d);
        let max = desired + max_surge(d);
        let rs = &self.rss[idx];
        let old = replicas(rs);
        let size_needs = old != new_scale;
        let ann_needs = ann(rs, DESIRED) != Some(desired.to_string().as_str())
            || ann(rs, MAX) != Some(max.to_string().as_str());
        if size_needs || ann_needs {
            let rs = &mut self.rss[idx];
            rs["spec"]["replicas"] = json!(new_scale);
            set_ann(rs, DESIRED, desired.to_string());
            set_ann(rs, MAX, max.to_string());
            let name = s(rs, "/metadata/name").to_string();
            self.push_update(idx);
            if size_needs {
                self.event(
                    "ScalingReplicaSet",
                    format!("Scaled {op} replica set {name} from {old} to {new_scale}"),
                );
            }
        }
    }

    /// `scaleReplicaSetAndRecordEvent`.
    fn scale_and_record(&mut self, idx: usize, new_scale: i64) -> bool {
        let cur = replicas(&self.rss[idx]);
        if cur == new_scale {
            return false;
        }
        let op = if cur < new_scale { "up" } else { "down" };
        self.scale(idx, new_scale, op);
        true
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template is the Deployment's.
    fn find_new(&self) -> Option<usize> {
        let tpl = self.d.pointer("/spec/template").unwrap_or(&Value::Null);
        let hash = pod_template_hash(tpl, i(self.d, "/status/collisionCount"));
        let mut idx: Vec<usize> = (0..self.rss.len()).collect();
        idx.sort_by_key(|x| creation(&self.rss[*x]));
        idx.into_iter().find(|x| {
            let rs = &self.rss[*x];
            equal_ignore_hash(rs.pointer("/spec/template").unwrap_or(&Value::Null), tpl)
                || s(rs, "/metadata/labels/pod-template-hash") == hash
        })
    }

    fn olds(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|x| Some(*x) != new).collect()
    }

    fn active(&self, of: &[usize]) -> Vec<usize> {
        of.iter()
            .copied()
            .filter(|x| replicas(&self.rss[*x]) > 0)
            .collect()
    }

    fn sum(&self, of: &[usize], f: impl Fn(&Value) -> i64) -> i64 {
        of.iter().map(|x| f(&self.rss[*x])).sum()
    }

    /// `NewRSNewReplicas`.
    fn new_rs_new_replicas(&self, all: &[usize], new: &Value) -> i64 {
        let d = self.d;
        if !is_rolling(d) {
            return replicas(d);
        }
        let surge = scaled(
            d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
            replicas(d),
            true,
        );
        let current = self.sum(all, replicas);
        let max_total = replicas(d) + surge;
        if current >= max_total {
            return replicas(new);
        }
        let up = (max_total - current).min(replicas(d) - replicas(new));
        replicas(new) + up
    }

    /// `SetNewReplicaSetAnnotations` (with `copyDeploymentAnnotationsToReplicaSet`).
    fn set_new_rs_annotations(&self, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
        const SKIP: &[&str] = &[
            "kubectl.kubernetes.io/last-applied-configuration",
            REVISION,
            REVISION_HISTORY,
            DESIRED,
            MAX,
            "deprecated.deployment.rollback.to",
        ];
        let mut changed = false;
        if let Some(Value::Object(da)) = self.d.pointer("/metadata/annotations") {
            for (k, v) in da {
                if SKIP.contains(&k.as_str()) || ann(rs, k) == v.as_str() {
                    continue;
                }
                set_ann(rs, k, v.as_str().unwrap_or("").to_string());
                changed = true;
            }
        }
        let old = ann(rs, REVISION).map(str::to_string);
        let old_int = match old.as_deref() {
            None | Some("") => 0,
            Some(o) => match o.parse::<i64>() {
                Ok(x) => x,
                Err(_) => return false,
            },
        };
        if old_int < new_revision {
            set_ann(rs, REVISION, new_revision.to_string());
            changed = true;
            if let Some(old) = old.filter(|o| !o.is_empty()) {
                // rolling back to this ReplicaSet: keep the revisions it had
                let hist = ann(rs, REVISION_HISTORY).unwrap_or("").to_string();
                if hist.is_empty() {
                    set_ann(rs, REVISION_HISTORY, old);
                } else {
                    let revs: Vec<&str> = hist.split(',').collect();
                    let mut total = hist.len() + old.len() + 1;
                    let mut start = 0;
                    while total > MAX_REV_HISTORY_CHARS && start < revs.len() {
                        total -= revs[start].len() + 1;
                        start += 1;
                    }
                    if total <= MAX_REV_HISTORY_CHARS {
                        let mut keep: Vec<&str> = revs[start..].to_vec();
                        keep.push(&old);
                        set_ann(rs, REVISION_HISTORY, keep.join(","));
                    }
                }
            }
        }
        if !exists {
            let desired = replicas(self.d);
            set_ann(rs, DESIRED, desired.to_string());
            set_ann(rs, MAX, (desired + max_surge(self.d)).to_string());
            changed = true;
        }
        changed
    }

    /// `getAllReplicaSetsAndSyncRevision` / `getNewReplicaSet`.
    fn new_rs(&mut self, create: bool, name_taken: Option<&Value>) -> Option<usize> {
        let d = self.d;
        let existing = self.find_new();
        let olds = self.olds(existing);
        let max_old = olds
            .iter()
            .map(|x| revision(&self.rss[*x]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(n) = existing {
            let mut rs = self.rss[n].clone();
            let changed = self.set_new_rs_annotations(&mut rs, new_revision, true);
            let min_ready = d
                .pointer("/spec/minReadySeconds")
                .cloned()
                .unwrap_or(json!(0));
            let min_ready_needs = rs
                .pointer("/spec/minReadySeconds")
                .cloned()
                .unwrap_or(json!(0))
                != min_ready;
            if changed || min_ready_needs {
                rs["spec"]["minReadySeconds"] = min_ready;
                self.rss[n] = rs;
                self.push_update(n);
            }
            if cond(&self.status, "Progressing").is_none() {
                let c = new_cond(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    format!(
                        "Found new replica set \"{}\"",
                        s(&self.rss[n], "/metadata/name")
                    ),
                    self.now,
                );
                set_cond(&mut self.status, c);
            }
            return Some(n);
        }
        if !create {
            return None;
        }
        let tpl = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let collisions = i(d, "/status/collisionCount");
        let hash = pod_template_hash(&tpl, collisions);
        let name = format!("{}-{hash}", s(d, "/metadata/name"));
        if let Some(taken) = name_taken {
            let ours = super::queue::controller_of(taken, "Deployment")
                .is_some_and(|(_, u)| u == s(d, "/metadata/uid"));
            if ours
                && equal_ignore_hash(
                    taken.pointer("/spec/template").unwrap_or(&Value::Null),
                    &tpl,
                )
            {
                self.rss.push(taken.clone());
                self.created.push(false);
                return Some(self.rss.len() - 1);
            }
            // a hash collision: the next template hash is computed with a higher count
            self.status["collisionCount"] = json!(collisions + 1);
            self.abort = true;
            return None;
        }
        let mut t = tpl.clone();
        if !t["metadata"].is_object() {
            t["metadata"] = json!({});
        }
        if !t["metadata"]["labels"].is_object() {
            t["metadata"]["labels"] = json!({});
        }
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut sel = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        if !sel["matchLabels"].is_object() {
            sel["matchLabels"] = json!({});
        }
        sel["matchLabels"][HASH_LABEL] = json!(hash);
        let mut rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": s(d, "/metadata/namespace"),
                "labels": t["metadata"]["labels"].clone(),
                "ownerReferences": [owner_ref("Deployment", "apps/v1", d)],
            },
            "spec": {"replicas": 0, "selector": sel, "template": t},
        });
        if let Some(m) = d.pointer("/spec/minReadySeconds") {
            rs["spec"]["minReadySeconds"] = m.clone();
        }
        let mut all = olds.clone();
        all.push(self.rss.len());
        self.rss.push(rs.clone());
        self.created.push(true);
        let n = self.rss.len() - 1;
        let count = self.new_rs_new_replicas(&all, &rs);
        rs["spec"]["replicas"] = json!(count);
        self.set_new_rs_annotations(&mut rs, new_revision, false);
        self.rss[n] = rs.clone();
        self.actions.push(Action::Create {
            r: res("replicasets"),
            ns: s(d, "/metadata/namespace").to_string(),
            obj: Object::Json(rs),
            report: None,
        });
        if count > 0 {
            self.event(
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
            );
        }
        if progress_deadline(d).is_some() {
            let c = new_cond(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                self.now,
            );
            set_cond(&mut self.status, c);
        }
        Some(n)
    }

    /// `isScalingEvent`.
    fn is_scaling_event(&self) -> bool {
        let all: Vec<usize> = (0..self.rss.len()).collect();
        self.active(&all).iter().any(|x| {
            ann(&self.rss[*x], DESIRED)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v != replicas(self.d))
        })
    }

    /// sync.go `scale`.
    fn proportional_scale(&mut self, new: Option<usize>, olds: &[usize]) {
        let d = self.d;
        // FindActiveOrLatest
        let mut by_newest = olds.to_vec();
        by_newest.sort_by_key(|x| std::cmp::Reverse(creation(&self.rss[*x])));
        let mut all: Vec<usize> = by_newest.clone();
        all.extend(new);
        let active = self.active(&all);
        let single = match active.len() {
            0 => new.or_else(|| by_newest.first().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(x) = single {
            if replicas(&self.rss[x]) != replicas(d) {
                self.scale_and_record(x, replicas(d));
            }
            return;
        }
        // IsSaturated: the new ReplicaSet is fully available, the old ones go to zero
        if let Some(n) = new {
            let rs = &self.rss[n];
            let saturated = replicas(rs) == replicas(d)
                && ann(rs, DESIRED).and_then(|v| v.parse::<i64>().ok()) == Some(replicas(d))
                && i(rs, "/status/availableReplicas") == replicas(d);
            if saturated {
                for o in self.active(olds) {
                    self.scale_and_record(o, 0);
                }
                return;
            }
        }
        if !is_rolling(d) {
            return;
        }
        let mut all = active;
        let all_replicas = self.sum(&all, replicas);
        let allowed = if replicas(d) > 0 {
            replicas(d) + max_surge(d)
        } else {
            0
        };
        let to_add = allowed - all_replicas;
        let op = if to_add > 0 {
            // ReplicaSetsBySizeNewer
            all.sort_by(|a, b| {
                replicas(&self.rss[*b])
                    .cmp(&replicas(&self.rss[*a]))
                    .then_with(|| creation(&self.rss[*b]).cmp(&creation(&self.rss[*a])))
            });
            "up"
        } else if to_add < 0 {
            // ReplicaSetsBySizeOlder
            all.sort_by(|a, b| {
                replicas(&self.rss[*b])
                    .cmp(&replicas(&self.rss[*a]))
                    .then_with(|| creation(&self.rss[*a]).cmp(&creation(&self.rss[*b])))
            });
            "down"
        } else {
            ""
        };
        let mut added = 0;
        let mut sizes: Vec<i64> = vec![];
        for x in &all {
            let rs = &self.rss[*x];
            if to_add != 0 {
                let p = proportion(rs, d, to_add, added);
                sizes.push(replicas(rs) + p);
                added += p;
            } else {
                sizes.push(replicas(rs));
            }
        }
        for (k, x) in all.iter().enumerate() {
            if k == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale(*x, sizes[k], op);
        }
    }

    /// `cleanupDeployment`.
    fn cleanup(&mut self, olds: &[usize]) {
        let Some(limit) = self
            .d
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
        else {
            return;
        };
        let mut cleanable: Vec<usize> = olds
            .iter()
            .copied()
            .filter(|x| {
                !self.created[*x]
                    && self.rss[*x]
                        .pointer("/metadata/deletionTimestamp")
                        .is_none()
            })
            .collect();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return;
        }
        cleanable.sort_by_key(|x| (revision(&self.rss[*x]), creation(&self.rss[*x])));
        for x in cleanable.into_iter().take(diff as usize) {
            let rs = &self.rss[x];
            if i(rs, "/status/replicas") != 0
                || replicas(rs) != 0
                || i(rs, "/metadata/generation") > i(rs, "/status/observedGeneration")
            {
                continue;
            }
            self.actions.push(Action::Delete {
                r: res("replicasets"),
                ns: s(rs, "/metadata/namespace").to_string(),
                name: s(rs, "/metadata/name").to_string(),
                propagation: None,
                uid: Some(s(rs, "/metadata/uid").to_string()),
            });
        }
    }

    /// `calculateStatus`.
    fn calculate_status(&mut self, new: Option<usize>) {
        let d = self.d;
        let all: Vec<usize> = (0..self.rss.len()).collect();
        let available = self.sum(&all, |r| i(r, "/status/availableReplicas"));
        let total = self.sum(&all, replicas);
        let unavailable = (total - available).max(0);
        let mut st = serde_json::Map::new();
        let mut put = |k: &str, v: i64| {
            if v != 0 {
                st.insert(k.into(), json!(v));
            }
        };
        put("observedGeneration", i(d, "/metadata/generation"));
        put("replicas", self.sum(&all, |r| i(r, "/status/replicas")));
        put(
            "updatedReplicas",
            new.map_or(0, |n| i(&self.rss[n], "/status/replicas")),
        );
        put(
            "readyReplicas",
            self.sum(&all, |r| i(r, "/status/readyReplicas")),
        );
        put("availableReplicas", available);
        put("unavailableReplicas", unavailable);
        if let Some(c) = self.status.get("collisionCount") {
            st.insert("collisionCount".into(), c.clone());
        }
        if let Some(c) = self.status.get("conditions") {
            st.insert("conditions".into(), c.clone());
        }
        let mut st = Value::Object(st);
        let c = if available >= replicas(d) - max_unavailable(d) {
            new_cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_cond(&mut st, c);
        self.status = st;
    }
}

/// `GetProportion` with `getReplicaSetFraction`.
fn proportion(rs: &Value, d: &Value, to_add: i64, added: i64) -> i64 {
    if replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas(d) == 0 {
        -replicas(rs)
    } else {
        let deployment_replicas = replicas(d) + max_surge(d);
        let annotated = ann(rs, MAX)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| i(d, "/status/replicas"));
        if annotated == 0 {
            0
        } else {
            let size = (replicas(rs) * deployment_replicas) as f64 / annotated as f64;
            size.round() as i64 - replicas(rs)
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn status_of(d: &Value) -> Value {
    d.get("status").cloned().unwrap_or(json!({}))
}

/// `DeploymentComplete`.
fn complete(d: &Value, st: &Value) -> bool {
    let r = replicas(d);
    i(st, "/updatedReplicas") == r
        && i(st, "/replicas") == r
        && i(st, "/availableReplicas") == r
        && i(st, "/observedGeneration") >= i(d, "/metadata/generation")
}

/// `DeploymentProgressing`.
fn progressing(d: &Value, new: &Value) -> bool {
    let old = status_of(d);
    let old_old = i(&old, "/replicas") - i(&old, "/updatedReplicas");
    let new_old = i(new, "/replicas") - i(new, "/updatedReplicas");
    i(new, "/updatedReplicas") > i(&old, "/updatedReplicas")
        || new_old < old_old
        || i(new, "/readyReplicas") > i(&old, "/readyReplicas")
        || i(new, "/availableReplicas") > i(&old, "/availableReplicas")
}

fn secs(t: &str) -> Option<i64> {
    t.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Syncs one Deployment at `now` (RFC 3339): the writes, and when to look again.
pub fn plan(d: &Value, observed: &Observed, now: &str) -> Plan {
    let mut st = St {
        d,
        status: status_of(d),
        rss: observed.replica_sets.clone(),
        created: vec![false; observed.replica_sets.len()],
        actions: vec![],
        updates: HashMap::new(),
        now,
        abort: false,
    };
    let mut requeue = None;
    let rollout = d.pointer("/metadata/deletionTimestamp").is_none()
        && d.pointer("/spec/paused") != Some(&json!(true))
        && !{
            let probe = St {
                d,
                status: json!({}),
                rss: observed.replica_sets.clone(),
                created: vec![],
                actions: vec![],
                updates: HashMap::new(),
                now,
                abort: false,
            };
            probe.is_scaling_event()
        };
    if d.pointer("/metadata/deletionTimestamp").is_some() {
        // syncStatusOnly
        let new = st.new_rs(false, None);
        st.calculate_status(new);
    } else if !rollout {
        // sync: scaling (and clean-up while paused)
        let new = st.new_rs(false, None);
        let olds = st.olds(new);
        st.proportional_scale(new, &olds);
        if d.pointer("/spec/paused") == Some(&json!(true)) {
            st.cleanup(&olds);
        }
        st.calculate_status(new);
    } else {
        let new = if is_rolling(d) {
            rollout_rolling(&mut st, observed)
        } else {
            rollout_recreate(&mut st, observed)
        };
        if !st.abort {
            requeue = sync_rollout_status(&mut st, new);
        }
    }
    let mut actions = st.actions;
    let old_status = status_of(d);
    if st.status != old_status {
        let mut nd = d.clone();
        nd["status"] = st.status;
        actions.push(Action::Update {
            r: res("deployments"),
            obj: Object::Json(nd),
            status: true,
        });
    }
    Plan {
        actions,
        requeue_after: requeue,
    }
}

/// rolling.go `rolloutRolling`; returns the new ReplicaSet.
fn rollout_rolling(st: &mut St<'_>, observed: &Observed) -> Option<usize> {
    let new = st.new_rs(true, observed.name_taken.as_ref())?;
    let d = st.d;
    let olds = st.olds(Some(new));
    let mut all = olds.clone();
    all.push(new);
    // reconcileNewReplicaSet
    let scaled_up = if replicas(&st.rss[new]) == replicas(d) {
        false
    } else if replicas(&st.rss[new]) > replicas(d) {
        st.scale_and_record(new, replicas(d))
    } else {
        let nr = st.rss[new].clone();
        let count = st.new_rs_new_replicas(&all, &nr);
        st.scale_and_record(new, count)
    };
    if scaled_up {
        st.calculate_status(Some(new));
        return Some(new);
    }
    // reconcileOldReplicaSets
    let active_olds = st.active(&olds);
    let old_count = st.sum(&active_olds, replicas);
    let mut scaled_down = false;
    if old_count > 0 {
        let all_count = st.sum(&all, replicas);
        let min_available = replicas(d) - max_unavailable(d);
        let new_unavailable = replicas(&st.rss[new]) - i(&st.rss[new], "/status/availableReplicas");
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down > 0 {
            // cleanupUnhealthyReplicas
            let mut sorted = active_olds.clone();
            sorted.sort_by_key(|x| creation(&st.rss[*x]));
            let mut cleaned = 0;
            for x in &sorted {
                if cleaned >= max_scaled_down {
                    break;
                }
                let rs = &st.rss[*x];
                let (r, avail) = (replicas(rs), i(rs, "/status/availableReplicas"));
                if r == 0 || r == avail {
                    continue;
                }
                let down = (max_scaled_down - cleaned).min(r - avail);
                st.scale_and_record(*x, r - down);
                cleaned += down;
            }
            // scaleDownOldReplicaSetsForRollingUpdate
            let available = st.sum(&all, |r| i(r, "/status/availableReplicas"));
            let mut scaled = 0;
            if available > min_available {
                let total = available - min_available;
                for x in &sorted {
                    if scaled >= total {
                        break;
                    }
                    let r = replicas(&st.rss[*x]);
                    if r == 0 {
                        continue;
                    }
                    let down = r.min(total - scaled);
                    st.scale_and_record(*x, r - down);
                    scaled += down;
                }
            }
            scaled_down = cleaned + scaled > 0;
        }
    }
    if !scaled_down && complete(d, &status_of(d)) {
        st.cleanup(&olds);
    }
    st.calculate_status(Some(new));
    Some(new)
}

/// recreate.go `rolloutRecreate`; returns the new ReplicaSet.
fn rollout_recreate(st: &mut St<'_>, observed: &Observed) -> Option<usize> {
    let d = st.d;
    let new = st.new_rs(false, None);
    let olds = st.olds(new);
    let mut scaled_down = false;
    for x in st.active(&olds) {
        if st.scale_and_record(x, 0) {
            scaled_down = true;
        }
    }
    let old_running = st.sum(&olds, |r| i(r, "/status/replicas")) > 0 || observed.old_pods_running;
    if scaled_down || old_running {
        st.calculate_status(new);
        return new;
    }
    let new = match new {
        Some(n) => Some(n),
        None => st.new_rs(true, observed.name_taken.as_ref()),
    };
    let Some(n) = new else {
        st.calculate_status(None);
        return None;
    };
    st.scale_and_record(n, replicas(d));
    let olds = st.olds(Some(n));
    if complete(d, &status_of(d)) {
        st.cleanup(&olds);
    }
    st.calculate_status(Some(n));
    Some(n)
}

/// progress.go `syncRolloutStatus` (on the status [`St::calculate_status`] computed) and
/// `requeueStuckDeployment`.
fn sync_rollout_status(st: &mut St<'_>, new: Option<usize>) -> Option<Duration> {
    let d = st.d;
    let deadline = progress_deadline(d);
    if deadline.is_none() {
        remove_cond(&mut st.status, "Progressing");
    }
    let old = status_of(d);
    let current = cond(&old, "Progressing").cloned();
    let is_complete = i(&st.status, "/replicas") == i(&st.status, "/updatedReplicas")
        && current
            .as_ref()
            .is_some_and(|c| s(c, "/reason") == "NewReplicaSetAvailable");
    let new_name = new.map(|n| s(&st.rss[n], "/metadata/name").to_string());
    if let (Some(deadline), false) = (deadline, is_complete) {
        if complete(d, &st.status) {
            let msg = match &new_name {
                Some(n) => format!("ReplicaSet \"{n}\" has successfully progressed."),
                None => format!(
                    "Deployment \"{}\" has successfully progressed.",
                    s(d, "/metadata/name")
                ),
            };
            set_cond(
                &mut st.status,
                new_cond("Progressing", "True", "NewReplicaSetAvailable", msg, st.now),
            );
        } else if progressing(d, &st.status) {
            let msg = match &new_name {
                Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
                None => format!("Deployment \"{}\" is progressing.", s(d, "/metadata/name")),
            };
            let mut c = new_cond("Progressing", "True", "ReplicaSetUpdated", msg, st.now);
            if let Some(cur) = &current {
                if s(cur, "/status") == "True" {
                    c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                }
                remove_cond(&mut st.status, "Progressing");
            }
            set_cond(&mut st.status, c);
        } else if let Some(c) = cond(&st.status, "Progressing") {
            // DeploymentTimedOut
            let timed_out = match s(c, "/reason") {
                "NewReplicaSetAvailable" => false,
                "ProgressDeadlineExceeded" => true,
                _ => match (secs(s(c, "/lastUpdateTime")), secs(st.now)) {
                    (Some(from), Some(now)) => from + deadline < now,
                    _ => false,
                },
            };
            if timed_out {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
                    None => format!(
                        "Deployment \"{}\" has timed out progressing.",
                        s(d, "/metadata/name")
                    ),
                };
                set_cond(
                    &mut st.status,
                    new_cond(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        msg,
                        st.now,
                    ),
                );
            }
        }
    }
    // requeueStuckDeployment: look again when the deadline passes
    let c = cond(&st.status, "Progressing")?;
    let deadline = deadline?;
    if s(c, "/status") != "True"
        || s(c, "/reason") == "NewReplicaSetAvailable"
        || complete(d, &st.status)
    {
        return None;
    }
    let after = secs(s(c, "/lastUpdateTime"))? + deadline - secs(st.now)?;
    Some(Duration::from_secs(after.max(0) as u64 + 1))
}

/// The Deployment controller over the shared informers.
pub struct DeploymentController {
    deployments: Typed<Deployment>,
    replica_sets: Typed<ReplicaSet>,
    pods: Typed<Pod>,
}

fn rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("Recreate")
}

fn to_json<K: serde::Serialize>(o: &K) -> Result<Value, ApiError> {
    serde_json::to_value(o).map_err(|e| ApiError::internal(format!("encoding: {e}")))
}

impl DeploymentController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> DeploymentController {
        DeploymentController {
            deployments: informers.of::<Deployment>(),
            replica_sets: informers.of::<ReplicaSet>(),
            pods: informers.of::<Pod>(),
        }
    }

    fn owner_key(&self, rs: &ObjectMeta) -> Option<String> {
        kinds::controller_of(rs, "Deployment").map(|(n, _)| format!("{}/{n}", kinds::namespace(rs)))
    }
}

#[async_trait::async_trait]
impl queue::Controller for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.deployments.prefix().to_string(),
            self.replica_sets.prefix().to_string(),
            self.pods.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let m = change.obj.meta();
        if change.obj::<Deployment>().is_some() {
            return vec![kinds::key_of(m)];
        }
        if change.obj::<ReplicaSet>().is_some() {
            let mut keys: Vec<String> = [Some(m), change.old.as_ref().map(Cached::meta)]
                .into_iter()
                .flatten()
                .filter_map(|o| self.owner_key(o))
                .collect();
            keys.dedup();
            return keys;
        }
        // deletePod: a Recreate rollout waits for the old pods to be gone
        if !change.deleted {
            return vec![];
        }
        let Some((rs_name, _)) = kinds::controller_of(m, "ReplicaSet") else {
            return vec![];
        };
        let Some(rs) = self.replica_sets.get_named(kinds::namespace(m), rs_name) else {
            return vec![];
        };
        let Some(dk) = self.owner_key(&rs.metadata) else {
            return vec![];
        };
        let (dns, dname) = queue::split_key(&dk);
        match self.deployments.get_named(dns, dname) {
            Some(d) if !rolling(&d) => vec![dk],
            _ => vec![],
        }
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .deployments
            .list()
            .iter()
            .map(|d| kinds::key_of(&d.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(typed) = self.deployments.get_named(ns, name) else {
            return Ok(None);
        };
        let d = to_json(&*typed)?;
        let uid = kinds::uid(&typed.metadata);
        let mut rss = self.replica_sets.by_index(index::CONTROLLER, uid);
        rss.retain(|r| kinds::controller_of(&r.metadata, "Deployment").is_some());
        let rss = rss
            .iter()
            .map(|r| to_json(&**r))
            .collect::<Result<Vec<Value>, ApiError>>()?;
        let hash = pod_template_hash(
            d.pointer("/spec/template").unwrap_or(&Value::Null),
            i(&d, "/status/collisionCount"),
        );
        let name_taken = self
            .replica_sets
            .get_named(ns, &format!("{name}-{hash}"))
            .map(|v| to_json(&*v))
            .transpose()?;
        let old_pods_running = !is_rolling(&d)
            && rss.iter().any(|rs| {
                self.pods
                    .by_index(index::CONTROLLER, s(rs, "/metadata/uid"))
                    .iter()
                    .any(|p| {
                        !matches!(
                            p.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Succeeded" | "Failed")
                        )
                    })
                    && !equal_ignore_hash(
                        rs.pointer("/spec/template").unwrap_or(&Value::Null),
                        d.pointer("/spec/template").unwrap_or(&Value::Null),
                    )
            });
        let observed = Observed {
            replica_sets: rss,
            name_taken,
            old_pods_running,
        };
        let plan = plan(&d, &observed, &super::now());
        queue::apply(objects, self.name(), plan.actions).await?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "a", "uid": "d-uid", "generation": 1,
                "resourceVersion": "5"},
            "spec": {"replicas": replicas, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    /// A ReplicaSet of `d` as the controller would have made it, with `avail` available pods.
    fn rs_of(d: &Value, rev: i64, spec: i64, avail: i64, created: &str) -> Value {
        let tpl = d["spec"]["template"].clone();
        let hash = pod_template_hash(&tpl, 0);
        let mut t = tpl.clone();
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        json!({"metadata": {"name": format!("web-{hash}"), "namespace": "a", "uid": format!("rs-{hash}"),
                "creationTimestamp": created, "resourceVersion": "3", "generation": 1,
                "labels": t["metadata"]["labels"].clone(),
                "annotations": {REVISION: rev.to_string(), DESIRED: d["spec"]["replicas"].to_string(),
                    MAX: (replicas(d) + max_surge(d)).to_string()},
                "ownerReferences": [owner_ref("Deployment", "apps/v1", d)]},
            "spec": {"replicas": spec, "template": t},
            "status": {"replicas": avail, "readyReplicas": avail, "availableReplicas": avail, "observedGeneration": 1}})
    }

    fn obs(rss: Vec<Value>) -> Observed {
        Observed {
            replica_sets: rss,
            ..Default::default()
        }
    }

    fn scales(p: &Plan) -> Vec<(String, i64)> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Update {
                    obj: Object::Json(obj),
                    status: false,
                    ..
                } => Some((s(obj, "/metadata/name").to_string(), replicas(obj))),
                Action::Create {
                    obj: Object::Json(obj),
                    ..
                } => Some((format!("+{}", s(obj, "/metadata/name")), replicas(obj))),
                _ => None,
            })
            .collect()
    }

    fn status(p: &Plan) -> Value {
        p.actions
            .iter()
            .find_map(|a| match a {
                Action::Update {
                    obj: Object::Json(obj),
                    status: true,
                    ..
                } => Some(obj["status"].clone()),
                _ => None,
            })
            .expect("a status update")
    }

    #[test]
    fn a_new_deployment_gets_a_replica_set_with_all_replicas() {
        let d = deploy(3, "nginx:1");
        let p = plan(&d, &obs(vec![]), NOW);
        let Action::Create {
            obj: Object::Json(obj),
            ..
        } = &p.actions[0]
        else {
            panic!("{:?}", p.actions)
        };
        let hash = pod_template_hash(&d["spec"]["template"], 0);
        assert_eq!(s(obj, "/metadata/name"), format!("web-{hash}"));
        assert_eq!(replicas(obj), 3);
        assert_eq!(
            obj["spec"]["selector"]["matchLabels"][HASH_LABEL],
            json!(hash)
        );
        assert_eq!(
            obj["spec"]["template"]["metadata"]["labels"][HASH_LABEL],
            json!(hash)
        );
        assert_eq!(ann(obj, REVISION), Some("1"));
        assert_eq!(ann(obj, MAX), Some("4"));
        assert_eq!(obj["metadata"]["ownerReferences"][0]["uid"], "d-uid");
        let Action::Event { message, .. } = &p.actions[1] else {
            panic!()
        };
        assert_eq!(
            message,
            &format!("Scaled up replica set web-{hash} from 0 to 3")
        );
        let st = status(&p);
        assert_eq!(st["observedGeneration"], 1);
        assert_eq!(st["unavailableReplicas"], 3);
        let conds: Vec<(&str, &str)> = st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (s(c, "/type"), s(c, "/reason")))
            .collect();
        assert_eq!(
            conds,
            [
                ("Progressing", "NewReplicaSetCreated"),
                ("Available", "MinimumReplicasUnavailable")
            ]
        );
    }

    #[test]
    fn a_rolling_update_surges_then_scales_the_old_set_down() {
        let old_d = deploy(4, "nginx:1");
        let old = rs_of(&old_d, 1, 4, 4, "2026-01-01T00:00:00Z");
        let d = deploy(4, "nginx:2");
        // step 1: the new set is created within the surge (25% of 4 = 1)
        let p = plan(&d, &obs(vec![old.clone()]), NOW);
        let hash = pod_template_hash(&d["spec"]["template"], 0);
        assert_eq!(scales(&p)[0], (format!("+web-{hash}"), 1));
        let new = {
            let Action::Create {
                obj: Object::Json(obj),
                ..
            } = &p.actions[0]
            else {
                panic!()
            };
            let mut n = obj.clone();
            n["metadata"]["uid"] = json!("new");
            n["metadata"]["resourceVersion"] = json!("9");
            n["metadata"]["creationTimestamp"] = json!("2026-01-01T00:01:00Z");
            n
        };
        assert_eq!(ann(&new, REVISION), Some("2"));
        // the same step ran the old-set reconcile: 4 available, min 3: one old pod may go
        assert!(
            scales(&p).contains(&(s(&old, "/metadata/name").to_string(), 3)),
            "{:?}",
            scales(&p)
        );
        // step 2: old 3 (3 available), new 1 (not yet available): nothing can go, the new
        // set stays at 1 + (5 - 4) = 2
        let mut old2 = old.clone();
        old2["spec"]["replicas"] = json!(3);
        old2["status"] = json!({"replicas": 3, "availableReplicas": 3});
        let p = plan(&d, &obs(vec![old2.clone(), new.clone()]), NOW);
        assert_eq!(scales(&p), [(s(&new, "/metadata/name").to_string(), 2)]);
        // step 3: the new set's pods are available: the old one goes to 0 in steps
        let mut new3 = new.clone();
        new3["spec"]["replicas"] = json!(4);
        new3["status"] = json!({"replicas": 4, "availableReplicas": 4});
        let mut old3 = old2.clone();
        old3["spec"]["replicas"] = json!(1);
        old3["status"] = json!({"replicas": 1, "availableReplicas": 1});
        let p = plan(&d, &obs(vec![old3, new3]), NOW);
        assert_eq!(scales(&p), [(s(&old, "/metadata/name").to_string(), 0)]);
    }

    #[test]
    fn max_unavailable_zero_keeps_every_old_pod_until_new_ones_are_available() {
        let mut d = deploy(2, "nginx:2");
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 1, "maxUnavailable": 0});
        let old = rs_of(&deploy(2, "nginx:1"), 1, 2, 2, "2026-01-01T00:00:00Z");
        let mut new = rs_of(&d, 2, 1, 0, "2026-01-01T00:01:00Z");
        new["status"] = json!({"replicas": 1});
        let p = plan(&d, &obs(vec![old, new]), NOW);
        assert!(scales(&p).is_empty(), "{:?}", scales(&p));
    }

    #[test]
    fn recreate_scales_old_to_zero_and_waits_for_their_pods() {
        let mut d = deploy(2, "nginx:2");
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        let mut od = deploy(2, "nginx:1");
        od["spec"]["strategy"] = json!({"type": "Recreate"});
        let old = rs_of(&od, 1, 2, 2, "2026-01-01T00:00:00Z");
        let p = plan(&d, &obs(vec![old.clone()]), NOW);
        assert_eq!(scales(&p), [(s(&old, "/metadata/name").to_string(), 0)]);
        // old pods still terminating: no new set yet
        let mut old0 = old.clone();
        old0["spec"]["replicas"] = json!(0);
        let mut o = obs(vec![old0.clone()]);
        o.old_pods_running = true;
        assert!(scales(&plan(&d, &o, NOW)).is_empty());
        // gone: the new set with every replica
        old0["status"] = json!({"replicas": 0});
        let p = plan(&d, &obs(vec![old0]), NOW);
        let sc = scales(&p);
        assert_eq!(sc.len(), 1);
        assert!(sc[0].0.starts_with('+') && sc[0].1 == 2, "{sc:?}");
    }

    #[test]
    fn scaling_during_a_rollout_is_proportional() {
        // upstream TestScale "proportional scaling: 5 -> 10" style: two active sets 5+5 of a
        // deployment scaled from 10 to 20 (maxSurge 0 here for clear numbers)
        let mut d = deploy(20, "nginx:3");
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": 1});
        let mut a = rs_of(&deploy(10, "nginx:1"), 1, 5, 5, "2026-01-01T00:00:00Z");
        let mut b = rs_of(&deploy(10, "nginx:2"), 2, 5, 5, "2026-01-01T00:01:00Z");
        for x in [&mut a, &mut b] {
            set_ann(x, DESIRED, "10".into());
            set_ann(x, MAX, "10".into());
        }
        let p = plan(&d, &obs(vec![a.clone(), b.clone()]), NOW);
        let mut sc = scales(&p);
        sc.sort();
        let mut want = vec![
            (s(&a, "/metadata/name").to_string(), 10),
            (s(&b, "/metadata/name").to_string(), 10),
        ];
        want.sort();
        assert_eq!(sc, want);
        // the annotations follow the new size
        for a in &p.actions {
            if let Action::Update {
                obj: Object::Json(obj),
                status: false,
                ..
            } = a
            {
                assert_eq!(ann(obj, DESIRED), Some("20"));
            }
        }
    }

    #[test]
    fn a_scale_of_a_settled_deployment_scales_its_only_set() {
        let d0 = deploy(3, "nginx:1");
        let rs = rs_of(&d0, 1, 3, 3, "2026-01-01T00:00:00Z");
        let d = deploy(5, "nginx:1");
        let p = plan(&d, &obs(vec![rs.clone()]), NOW);
        assert_eq!(scales(&p), [(s(&rs, "/metadata/name").to_string(), 5)]);
        let Some(Action::Event { message, .. }) = p.actions.get(1) else {
            panic!()
        };
        assert!(
            message.starts_with("Scaled up replica set web-") && message.ends_with("from 3 to 5")
        );
    }

    #[test]
    fn a_complete_rollout_reports_progress_done_and_trims_history() {
        let mut d = deploy(1, "nginx:9");
        d["spec"]["revisionHistoryLimit"] = json!(1);
        let mut rss = vec![];
        for (k, img) in ["nginx:1", "nginx:2", "nginx:3"].iter().enumerate() {
            let mut r = rs_of(
                &deploy(1, img),
                k as i64 + 1,
                0,
                0,
                &format!("2026-01-01T00:0{k}:00Z"),
            );
            r["status"] = json!({"replicas": 0, "observedGeneration": 1});
            rss.push(r);
        }
        let new = rs_of(&d, 4, 1, 1, "2026-01-01T00:09:00Z");
        rss.push(new.clone());
        d["status"] = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1});
        let p = plan(&d, &obs(rss.clone()), NOW);
        let deleted: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        // the two oldest revisions go, one is kept
        assert_eq!(
            deleted,
            [s(&rss[0], "/metadata/name"), s(&rss[1], "/metadata/name")]
        );
        let st = status(&p);
        let prog = cond(&st, "Progressing").unwrap();
        assert_eq!(s(prog, "/reason"), "NewReplicaSetAvailable");
        assert_eq!(
            s(prog, "/message"),
            format!(
                "ReplicaSet \"{}\" has successfully progressed.",
                s(&new, "/metadata/name")
            )
        );
        assert!(st.get("unavailableReplicas").is_none());
    }

    #[test]
    fn rolling_back_makes_the_old_set_the_newest_revision() {
        let d = deploy(1, "nginx:1");
        let mut back = rs_of(&d, 1, 0, 0, "2026-01-01T00:00:00Z");
        back["status"] = json!({"replicas": 0});
        let cur = rs_of(&deploy(1, "nginx:2"), 2, 1, 1, "2026-01-01T00:01:00Z");
        let p = plan(&d, &obs(vec![back.clone(), cur]), NOW);
        let upd = p
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Update {
                    obj: Object::Json(obj),
                    status: false,
                    ..
                } if s(obj, "/metadata/name") == s(&back, "/metadata/name") => Some(obj.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(ann(&upd, REVISION), Some("3"));
        assert_eq!(ann(&upd, REVISION_HISTORY), Some("1"));
        // and it is scaled up in the same single update
        assert_eq!(replicas(&upd), 1);
    }

    #[test]
    fn templates_equal_but_for_the_hash_label_and_nulls() {
        let t = json!({"metadata": {"labels": {"app": "web", HASH_LABEL: "x"}}, "spec": {"containers": []}});
        let u = json!({"metadata": {"labels": {"app": "web"}, "creationTimestamp": null}, "spec": {"containers": []}});
        assert!(equal_ignore_hash(&t, &u));
        let mut u2 = u.clone();
        u2["metadata"]["labels"]["app"] = json!("api");
        assert!(!equal_ignore_hash(&t, &u2));
        assert_eq!(
            pod_template_hash(&u, 0),
            pod_template_hash(&without_hash(&t), 0)
        );
    }

    #[test]
    fn a_paused_deployment_scales_but_does_not_roll_out() {
        let old = rs_of(&deploy(2, "nginx:1"), 1, 2, 2, "2026-01-01T00:00:00Z");
        let mut d = deploy(2, "nginx:2");
        d["spec"]["paused"] = json!(true);
        assert!(scales(&plan(&d, &obs(vec![old.clone()]), NOW)).is_empty());
        d["spec"]["replicas"] = json!(4);
        assert_eq!(
            scales(&plan(&d, &obs(vec![old.clone()]), NOW)),
            [(s(&old, "/metadata/name").to_string(), 4)]
        );
    }

    #[test]
    fn a_hash_collision_bumps_the_collision_count() {
        let d = deploy(1, "nginx:1");
        let mut other = rs_of(&d, 1, 1, 1, "2026-01-01T00:00:00Z");
        other["metadata"]["ownerReferences"] = json!([]);
        other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        let o = Observed {
            replica_sets: vec![],
            name_taken: Some(other),
            old_pods_running: false,
        };
        let p = plan(&d, &o, NOW);
        assert!(scales(&p).is_empty());
        assert_eq!(status(&p)["collisionCount"], 1);
    }

    #[test]
    fn an_unchanged_deployment_writes_nothing() {
        let d0 = deploy(2, "nginx:1");
        let rs = rs_of(&d0, 1, 2, 2, "2026-01-01T00:00:00Z");
        let p = plan(&d0, &obs(vec![rs.clone()]), NOW);
        let mut d = d0.clone();
        d["status"] = status(&p);
        let p2 = plan(&d, &obs(vec![rs]), "2026-01-01T00:05:00Z");
        assert!(p2.actions.is_empty(), "{:?}", p2.actions);
    }
}
