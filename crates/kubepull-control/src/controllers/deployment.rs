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
//! when one of its ReplicaSets changes, when an orphaned ReplicaSet it selects appears or is
//! relabelled, and (Recreate) when one of their pods is deleted. A sync first claims the
//! namespace's ReplicaSets ([`super::refmanager`]: orphans adopted, non-matching released).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::informer::{index, Cached, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref, reference};
use super::queue::{self, Action, Plan};
use super::{pod_template_hash, refmanager, res};
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

fn ann<'a>(m: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    m.annotations.as_ref()?.get(k).map(String::as_str)
}

fn set_ann(m: &mut ObjectMeta, k: &str, v: String) {
    m.annotations
        .get_or_insert_with(Default::default)
        .insert(k.to_string(), v);
}

fn n32(v: Option<i32>) -> i64 {
    v.map_or(0, i64::from)
}

fn to_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// `*deployment.Spec.Replicas`.
fn replicas(d: &Deployment) -> i64 {
    n32(d.spec.as_ref().and_then(|s| s.replicas))
}

/// `*rs.Spec.Replicas`.
fn rs_replicas(rs: &ReplicaSet) -> i64 {
    n32(rs.spec.as_ref().and_then(|s| s.replicas))
}

fn set_rs_replicas(rs: &mut ReplicaSet, n: i64) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(to_i32(n));
}

fn rs_status(
    rs: &ReplicaSet,
    f: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>,
) -> i64 {
    n32(rs.status.as_ref().and_then(f))
}

fn rs_available(rs: &ReplicaSet) -> i64 {
    rs_status(rs, |s| s.available_replicas)
}

fn rs_status_replicas(rs: &ReplicaSet) -> i64 {
    rs_status(rs, |s| Some(s.replicas))
}

fn revision(rs: &ReplicaSet) -> i64 {
    ann(&rs.metadata, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("Recreate")
}

/// `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled(v: Option<&IntOrString>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(IntOrString::Int(n)) => i64::from(*n),
        Some(IntOrString::String(s)) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (p * total + 99) / 100
            } else {
                p * total / 100
            }
        }
        None => 0,
    }
}

fn rolling_update(d: &Deployment) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDeployment> {
    d.spec.as_ref()?.strategy.as_ref()?.rolling_update.as_ref()
}

/// `ResolveFenceposts`: (maxSurge, maxUnavailable), never both zero.
fn fenceposts(d: &Deployment) -> (i64, i64) {
    let desired = replicas(d);
    let ru = rolling_update(d);
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired, true);
    let mut unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// `MaxSurge`.
pub fn max_surge(d: &Deployment) -> i64 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// `MaxUnavailable`.
pub fn max_unavailable(d: &Deployment) -> i64 {
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

/// The template without the `pod-template-hash` label (and empty metadata as none).
fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(HASH_LABEL);
            if l.is_empty() {
                m.labels = None;
            }
        }
        if *m == ObjectMeta::default() {
            t.metadata = None;
        }
    }
    t
}

/// `EqualIgnoreHash`: two pod templates equal but for the `pod-template-hash` label, compared
/// as `apiequality.Semantic.DeepEqual` (quantities by value: `1` is `1000m`). Both are compared
/// with the pod template defaults applied, as kube-apiserver applies them when it reads an
/// object from storage too: a template stored before a default was added matches the same
/// template written since.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let (a, b) = (without_hash(a), without_hash(b));
    if a == b {
        return true;
    }
    let defaulted = |mut t: PodTemplateSpec| {
        crate::defaults::default_pod_template(Some(&mut t));
        t
    };
    let (a, b) = (defaulted(a), defaulted(b));
    a == b || crate::podupdate::semantic_eq(&a, &b)
}

/// The `pod-template-hash` of a template (see [`pod_template_hash`]).
pub fn template_hash(t: &PodTemplateSpec, collisions: i64) -> String {
    pod_template_hash(&serde_json::to_value(t).unwrap_or_default(), collisions)
}

fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

fn creation(m: &ObjectMeta) -> (Option<Time>, String) {
    (m.creation_timestamp.clone(), kinds::name(m).to_string())
}

fn cond<'a>(status: &'a DeploymentStatus, t: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == t)
}

fn new_cond(t: &str, st: &str, reason: &str, message: String, now: &Time) -> DeploymentCondition {
    DeploymentCondition {
        type_: t.to_string(),
        status: st.to_string(),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
        reason: Some(reason.to_string()),
        message: Some(message),
    }
}

/// `SetDeploymentCondition`.
fn set_cond(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = cond(status, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_cond(status, &c.type_.clone());
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

fn remove_cond(status: &mut DeploymentStatus, t: &str) {
    if let Some(a) = status.conditions.as_mut() {
        a.retain(|c| c.type_ != t);
    }
}

/// `HasProgressDeadline` (a missing value is the default, 600 s).
fn progress_deadline(d: &Deployment) -> Option<i64> {
    match d.spec.as_ref().and_then(|s| s.progress_deadline_seconds) {
        Some(i32::MAX) => None,
        Some(x) => Some(i64::from(x)),
        None => Some(600),
    }
}

/// What [`plan`] reads besides the Deployment.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The ReplicaSets the Deployment controls.
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    /// A ReplicaSet of the namespace with the name a new one would get, when one exists
    /// (a hash collision unless it is the Deployment's own).
    pub name_taken: Option<Arc<ReplicaSet>>,
    /// Recreate: pods of old ReplicaSets still pending or running (`oldPodsRunning`).
    pub old_pods_running: bool,
}

struct St<'a> {
    d: &'a Deployment,
    status: DeploymentStatus,
    rss: Vec<ReplicaSet>,
    created: Vec<bool>,
    actions: Vec<Action>,
    updates: HashMap<usize, usize>,
    now: Time,
    abort: bool,
    /// `SetDeploymentRevision`: the revision the Deployment's annotation is to carry, the new
    /// ReplicaSet's (written with the status, as `getNewReplicaSet` writes it).
    revision: Option<String>,
}

impl St<'_> {
    fn new<'a>(d: &'a Deployment, rss: &[Arc<ReplicaSet>], now: Time) -> St<'a> {
        St {
            d,
            status: status_of(d),
            rss: rss.iter().map(|r| (**r).clone()).collect(),
            created: vec![false; rss.len()],
            actions: vec![],
            updates: HashMap::new(),
            now,
            abort: false,
            revision: None,
        }
    }

    fn event(&mut self, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            about: reference(self.d),
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
                    *o = obj.into();
                }
            }
            None => {
                self.updates.insert(idx, self.actions.len());
                self.actions.push(Action::Update {
                    r: res("replicasets"),
                    obj: obj.into(),
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
        let old = rs_replicas(rs);
        let size_needs = old != new_scale;
        let ann_needs = ann(&rs.metadata, DESIRED) != Some(desired.to_string().as_str())
            || ann(&rs.metadata, MAX) != Some(max.to_string().as_str());
        if size_needs || ann_needs {
            let rs = &mut self.rss[idx];
            set_rs_replicas(rs, new_scale);
            set_ann(&mut rs.metadata, DESIRED, desired.to_string());
            set_ann(&mut rs.metadata, MAX, max.to_string());
            let name = kinds::name(&rs.metadata).to_string();
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
        let cur = rs_replicas(&self.rss[idx]);
        if cur == new_scale {
            return false;
        }
        let op = if cur < new_scale { "up" } else { "down" };
        self.scale(idx, new_scale, op);
        true
    }

    fn collisions(&self) -> i64 {
        n32(self.d.status.as_ref().and_then(|s| s.collision_count))
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template is the Deployment's.
    fn find_new(&self) -> Option<usize> {
        let tpl = template(self.d);
        let hash = template_hash(&tpl, self.collisions());
        let mut idx: Vec<usize> = (0..self.rss.len()).collect();
        idx.sort_by_key(|x| creation(&self.rss[*x].metadata));
        idx.into_iter().find(|x| {
            let rs = &self.rss[*x];
            equal_ignore_hash(&rs_template(rs), &tpl)
                || rs.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)) == Some(&hash)
        })
    }

    fn olds(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|x| Some(*x) != new).collect()
    }

    fn active(&self, of: &[usize]) -> Vec<usize> {
        of.iter()
            .copied()
            .filter(|x| rs_replicas(&self.rss[*x]) > 0)
            .collect()
    }

    fn sum(&self, of: &[usize], f: impl Fn(&ReplicaSet) -> i64) -> i64 {
        of.iter().map(|x| f(&self.rss[*x])).sum()
    }

    /// `NewRSNewReplicas`.
    fn new_rs_new_replicas(&self, all: &[usize], new: &ReplicaSet) -> i64 {
        let d = self.d;
        if !is_rolling(d) {
            return replicas(d);
        }
        let surge = scaled(
            rolling_update(d).and_then(|r| r.max_surge.as_ref()),
            replicas(d),
            true,
        );
        let current = self.sum(all, rs_replicas);
        let max_total = replicas(d) + surge;
        if current >= max_total {
            return rs_replicas(new);
        }
        let up = (max_total - current).min(replicas(d) - rs_replicas(new));
        rs_replicas(new) + up
    }

    /// `SetNewReplicaSetAnnotations` (with `copyDeploymentAnnotationsToReplicaSet`).
    fn set_new_rs_annotations(&self, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
        const SKIP: &[&str] = &[
            "kubectl.kubernetes.io/last-applied-configuration",
            REVISION,
            REVISION_HISTORY,
            DESIRED,
            MAX,
            "deprecated.deployment.rollback.to",
        ];
        let m = &mut rs.metadata;
        let mut changed = false;
        if let Some(da) = self.d.metadata.annotations.as_ref() {
            for (k, v) in da {
                if SKIP.contains(&k.as_str()) || ann(m, k) == Some(v.as_str()) {
                    continue;
                }
                set_ann(m, k, v.clone());
                changed = true;
            }
        }
        let old = ann(m, REVISION).map(str::to_string);
        let old_int = match old.as_deref() {
            None | Some("") => 0,
            Some(o) => match o.parse::<i64>() {
                Ok(x) => x,
                Err(_) => return false,
            },
        };
        if old_int < new_revision {
            set_ann(m, REVISION, new_revision.to_string());
            changed = true;
            if let Some(old) = old.filter(|o| !o.is_empty()) {
                // rolling back to this ReplicaSet: keep the revisions it had
                let hist = ann(m, REVISION_HISTORY).unwrap_or("").to_string();
                if hist.is_empty() {
                    set_ann(m, REVISION_HISTORY, old);
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
                        set_ann(m, REVISION_HISTORY, keep.join(","));
                    }
                }
            }
        }
        if !exists {
            let desired = replicas(self.d);
            set_ann(m, DESIRED, desired.to_string());
            set_ann(m, MAX, (desired + max_surge(self.d)).to_string());
            changed = true;
        }
        changed
    }

    /// `getAllReplicaSetsAndSyncRevision` / `getNewReplicaSet`.
    fn new_rs(&mut self, create: bool, name_taken: Option<&ReplicaSet>) -> Option<usize> {
        let d = self.d;
        let existing = self.find_new();
        let olds = self.olds(existing);
        let max_old = olds
            .iter()
            .map(|x| revision(&self.rss[*x]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let d_min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(n) = existing {
            let mut rs = self.rss[n].clone();
            let changed = self.set_new_rs_annotations(&mut rs, new_revision, true);
            let min_ready = d_min_ready.unwrap_or(0);
            let min_ready_needs = rs
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0)
                != min_ready;
            if changed || min_ready_needs {
                rs.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = Some(min_ready);
                self.rss[n] = rs;
                self.push_update(n);
            } else {
                // the revision the new ReplicaSet's annotation already has
                self.revision = Some(ann(&rs.metadata, REVISION).unwrap_or("").to_string());
            }
            if cond(&self.status, "Progressing").is_none() {
                let c = new_cond(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    format!(
                        "Found new replica set \"{}\"",
                        kinds::name(&self.rss[n].metadata)
                    ),
                    &self.now,
                );
                set_cond(&mut self.status, c);
            }
            return Some(n);
        }
        if !create {
            return None;
        }
        let tpl = template(d);
        let collisions = self.collisions();
        let hash = template_hash(&tpl, collisions);
        let name = format!("{}-{hash}", kinds::name(&d.metadata));
        if let Some(taken) = name_taken {
            let ours = kinds::controller_of(&taken.metadata, "Deployment")
                .is_some_and(|(_, u)| u == kinds::uid(&d.metadata));
            if ours && equal_ignore_hash(&rs_template(taken), &tpl) {
                self.rss.push(taken.clone());
                self.created.push(false);
                self.revision = Some(new_revision.to_string());
                return Some(self.rss.len() - 1);
            }
            // a hash collision: the next template hash is computed with a higher count
            self.status.collision_count = Some(to_i32(collisions + 1));
            self.abort = true;
            return None;
        }
        let mut t = tpl;
        t.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.to_string(), hash.clone());
        let mut sel = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        sel.match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.to_string(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: t.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![new_controller_ref(d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                selector: sel,
                template: Some(t),
                min_ready_seconds: d_min_ready,
            }),
            status: None,
        };
        let mut all = olds.clone();
        all.push(self.rss.len());
        self.rss.push(rs.clone());
        self.created.push(true);
        let n = self.rss.len() - 1;
        let count = self.new_rs_new_replicas(&all, &rs);
        set_rs_replicas(&mut rs, count);
        self.set_new_rs_annotations(&mut rs, new_revision, false);
        self.revision = Some(new_revision.to_string());
        self.rss[n] = rs.clone();
        self.actions.push(Action::Create {
            r: res("replicasets"),
            ns: kinds::namespace(&d.metadata).to_string(),
            obj: rs.into(),
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
                &self.now,
            );
            set_cond(&mut self.status, c);
        }
        Some(n)
    }

    /// `isScalingEvent`.
    fn is_scaling_event(&self) -> bool {
        let all: Vec<usize> = (0..self.rss.len()).collect();
        self.active(&all).iter().any(|x| {
            ann(&self.rss[*x].metadata, DESIRED)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v != replicas(self.d))
        })
    }

    /// sync.go `scale`.
    fn proportional_scale(&mut self, new: Option<usize>, olds: &[usize]) {
        let d = self.d;
        // FindActiveOrLatest
        let mut by_newest = olds.to_vec();
        by_newest.sort_by_key(|x| std::cmp::Reverse(creation(&self.rss[*x].metadata)));
        let mut all: Vec<usize> = by_newest.clone();
        all.extend(new);
        let active = self.active(&all);
        let single = match active.len() {
            0 => new.or_else(|| by_newest.first().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(x) = single {
            if rs_replicas(&self.rss[x]) != replicas(d) {
                self.scale_and_record(x, replicas(d));
            }
            return;
        }
        // IsSaturated: the new ReplicaSet is fully available, the old ones go to zero
        if let Some(n) = new {
            let rs = &self.rss[n];
            let saturated = rs_replicas(rs) == replicas(d)
                && ann(&rs.metadata, DESIRED).and_then(|v| v.parse::<i64>().ok())
                    == Some(replicas(d))
                && rs_available(rs) == replicas(d);
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
        let all_replicas = self.sum(&all, rs_replicas);
        let allowed = if replicas(d) > 0 {
            replicas(d) + max_surge(d)
        } else {
            0
        };
        let to_add = allowed - all_replicas;
        let key = |rs: &ReplicaSet| (rs_replicas(rs), creation(&rs.metadata));
        let op = if to_add > 0 {
            // ReplicaSetsBySizeNewer
            all.sort_by(|a, b| {
                let (ra, ca) = key(&self.rss[*a]);
                let (rb, cb) = key(&self.rss[*b]);
                rb.cmp(&ra).then_with(|| cb.cmp(&ca))
            });
            "up"
        } else if to_add < 0 {
            // ReplicaSetsBySizeOlder
            all.sort_by(|a, b| {
                let (ra, ca) = key(&self.rss[*a]);
                let (rb, cb) = key(&self.rss[*b]);
                rb.cmp(&ra).then_with(|| ca.cmp(&cb))
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
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
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
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return;
        };
        let mut cleanable: Vec<usize> = olds
            .iter()
            .copied()
            .filter(|x| !self.created[*x] && self.rss[*x].metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by_key(|x| (revision(&self.rss[*x]), creation(&self.rss[*x].metadata)));
        for x in cleanable.into_iter().take(diff as usize) {
            let rs = &self.rss[x];
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            self.actions.push(Action::Delete {
                r: res("replicasets"),
                ns: kinds::namespace(&rs.metadata).to_string(),
                name: kinds::name(&rs.metadata).to_string(),
                propagation: None,
                uid: Some(kinds::uid(&rs.metadata).to_string()),
            });
        }
    }

    /// `calculateStatus`.
    fn calculate_status(&mut self, new: Option<usize>) {
        let d = self.d;
        let all: Vec<usize> = (0..self.rss.len()).collect();
        let available = self.sum(&all, rs_available);
        let total = self.sum(&all, rs_replicas);
        let unavailable = (total - available).max(0);
        // zero counts are left out, as Go's omitempty leaves them
        let nz = |v: i64| (v != 0).then(|| to_i32(v));
        let mut st = DeploymentStatus {
            observed_generation: d.metadata.generation.filter(|g| *g != 0),
            replicas: nz(self.sum(&all, rs_status_replicas)),
            updated_replicas: nz(new.map_or(0, |n| rs_status_replicas(&self.rss[n]))),
            ready_replicas: nz(self.sum(&all, |r| rs_status(r, |s| s.ready_replicas))),
            available_replicas: nz(available),
            unavailable_replicas: nz(unavailable),
            collision_count: self.status.collision_count,
            conditions: self.status.conditions.clone(),
            ..Default::default()
        };
        let c = if available >= replicas(d) - max_unavailable(d) {
            new_cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                &self.now,
            )
        } else {
            new_cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                &self.now,
            )
        };
        set_cond(&mut st, c);
        self.status = st;
    }
}

/// `GetProportion` with `getReplicaSetFraction`.
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i64, added: i64) -> i64 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas(d) == 0 {
        -rs_replicas(rs)
    } else {
        let deployment_replicas = replicas(d) + max_surge(d);
        let annotated = ann(&rs.metadata, MAX)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| n32(d.status.as_ref().and_then(|s| s.replicas)));
        if annotated == 0 {
            0
        } else {
            let size = (rs_replicas(rs) * deployment_replicas) as f64 / annotated as f64;
            size.round() as i64 - rs_replicas(rs)
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn status_of(d: &Deployment) -> DeploymentStatus {
    d.status.clone().unwrap_or_default()
}

/// `DeploymentComplete`.
fn complete(d: &Deployment, st: &DeploymentStatus) -> bool {
    let r = replicas(d);
    n32(st.updated_replicas) == r
        && n32(st.replicas) == r
        && n32(st.available_replicas) == r
        && st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`.
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = status_of(d);
    let old_old = n32(old.replicas) - n32(old.updated_replicas);
    let new_old = n32(new.replicas) - n32(new.updated_replicas);
    n32(new.updated_replicas) > n32(old.updated_replicas)
        || new_old < old_old
        || n32(new.ready_replicas) > n32(old.ready_replicas)
        || n32(new.available_replicas) > n32(old.available_replicas)
}

/// Syncs one Deployment at `now`: the writes, and when to look again.
pub fn plan(d: &Deployment, observed: &Observed, now: jiff::Timestamp) -> Plan {
    let now = kinds::meta_time(now);
    let mut st = St::new(d, &observed.replica_sets, now.clone());
    let mut requeue = None;
    let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let deleting = d.metadata.deletion_timestamp.is_some();
    let rollout =
        !deleting && !paused && !St::new(d, &observed.replica_sets, now).is_scaling_event();
    if deleting {
        // syncStatusOnly
        let new = st.new_rs(false, None);
        st.calculate_status(new);
    } else if !rollout {
        // sync: scaling (and clean-up while paused)
        let new = st.new_rs(false, None);
        let olds = st.olds(new);
        st.proportional_scale(new, &olds);
        if paused {
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
    let revision = st
        .revision
        .filter(|rev| ann(&d.metadata, REVISION) != Some(rev.as_str()));
    if st.status != status_of(d) || revision.is_some() {
        let mut nd = d.clone();
        if let Some(rev) = revision {
            set_ann(&mut nd.metadata, REVISION, rev);
        }
        nd.status = Some(st.status);
        actions.push(Action::Update {
            r: res("deployments"),
            obj: nd.into(),
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
    let new = st.new_rs(true, observed.name_taken.as_deref())?;
    let d = st.d;
    let olds = st.olds(Some(new));
    let mut all = olds.clone();
    all.push(new);
    // reconcileNewReplicaSet
    let scaled_up = if rs_replicas(&st.rss[new]) == replicas(d) {
        false
    } else if rs_replicas(&st.rss[new]) > replicas(d) {
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
    let old_count = st.sum(&active_olds, rs_replicas);
    let mut scaled_down = false;
    if old_count > 0 {
        let all_count = st.sum(&all, rs_replicas);
        let min_available = replicas(d) - max_unavailable(d);
        let new_unavailable = rs_replicas(&st.rss[new]) - rs_available(&st.rss[new]);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down > 0 {
            // cleanupUnhealthyReplicas
            let mut sorted = active_olds.clone();
            sorted.sort_by_key(|x| creation(&st.rss[*x].metadata));
            let mut cleaned = 0;
            for x in &sorted {
                if cleaned >= max_scaled_down {
                    break;
                }
                let rs = &st.rss[*x];
                let (r, avail) = (rs_replicas(rs), rs_available(rs));
                if r == 0 || r == avail {
                    continue;
                }
                let down = (max_scaled_down - cleaned).min(r - avail);
                st.scale_and_record(*x, r - down);
                cleaned += down;
            }
            // scaleDownOldReplicaSetsForRollingUpdate
            let available = st.sum(&all, rs_available);
            let mut scaled = 0;
            if available > min_available {
                let total = available - min_available;
                for x in &sorted {
                    if scaled >= total {
                        break;
                    }
                    let r = rs_replicas(&st.rss[*x]);
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
    let old_running = st.sum(&olds, rs_status_replicas) > 0 || observed.old_pods_running;
    if scaled_down || old_running {
        st.calculate_status(new);
        return new;
    }
    let new = match new {
        Some(n) => Some(n),
        None => st.new_rs(true, observed.name_taken.as_deref()),
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

fn update_secs(c: &DeploymentCondition) -> Option<i64> {
    c.last_update_time.as_ref().map(|t| t.0.as_second())
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
    let is_complete = n32(st.status.replicas) == n32(st.status.updated_replicas)
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    let new_name = new.map(|n| kinds::name(&st.rss[n].metadata).to_string());
    let d_name = kinds::name(&d.metadata);
    let now = st.now.clone();
    if let (Some(deadline), false) = (deadline, is_complete) {
        if complete(d, &st.status) {
            let msg = match &new_name {
                Some(n) => format!("ReplicaSet \"{n}\" has successfully progressed."),
                None => format!("Deployment \"{d_name}\" has successfully progressed."),
            };
            set_cond(
                &mut st.status,
                new_cond("Progressing", "True", "NewReplicaSetAvailable", msg, &now),
            );
        } else if progressing(d, &st.status) {
            let msg = match &new_name {
                Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
                None => format!("Deployment \"{d_name}\" is progressing."),
            };
            let mut c = new_cond("Progressing", "True", "ReplicaSetUpdated", msg, &now);
            if let Some(cur) = &current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_cond(&mut st.status, "Progressing");
            }
            set_cond(&mut st.status, c);
        } else if let Some(c) = cond(&st.status, "Progressing") {
            // DeploymentTimedOut
            let timed_out = match c.reason.as_deref() {
                Some("NewReplicaSetAvailable") => false,
                Some("ProgressDeadlineExceeded") => true,
                _ => update_secs(c).is_some_and(|from| from + deadline < now.0.as_second()),
            };
            if timed_out {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
                    None => format!("Deployment \"{d_name}\" has timed out progressing."),
                };
                set_cond(
                    &mut st.status,
                    new_cond(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        msg,
                        &now,
                    ),
                );
            }
        }
    }
    // requeueStuckDeployment: look again when the deadline passes
    let c = cond(&st.status, "Progressing")?;
    let deadline = deadline?;
    if c.status != "True"
        || c.reason.as_deref() == Some("NewReplicaSetAvailable")
        || complete(d, &st.status)
    {
        return None;
    }
    let after = update_secs(c)? + deadline - now.0.as_second();
    Some(Duration::from_secs(after.max(0) as u64 + 1))
}

/// The Deployment controller over the shared informers.
pub struct DeploymentController {
    deployments: Typed<Deployment>,
    replica_sets: Typed<ReplicaSet>,
    pods: Typed<Pod>,
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
            // an orphan: offered to the matching Deployments (addReplicaSet /
            // updateReplicaSet)
            keys.extend(refmanager::orphan_keys(change, &self.deployments, |d| {
                d.spec.as_ref().map(|s| &s.selector)
            }));
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
            Some(d) if !is_rolling(&d) => vec![dk],
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
        let Some(d) = self.deployments.get_named(ns, name) else {
            return Ok(None);
        };
        // getReplicaSetsForDeployment: the namespace's ReplicaSets, claimed (owned and
        // matching, orphans adopted, non-matching released)
        let candidates = self.replica_sets.by_index(index::NAMESPACE, ns);
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let claim = refmanager::claim(&*d, &selector, &candidates).map_err(|e| {
            ApiError::internal(format!("deployment {key} has invalid label selector: {e}"))
        })?;
        refmanager::apply_claim(objects, self.name(), &*d, &claim).await?;
        let rss = claim.claimed;
        let collisions = n32(d.status.as_ref().and_then(|s| s.collision_count));
        let tpl = template(&d);
        let hash = template_hash(&tpl, collisions);
        let new_name = format!("{name}-{hash}");
        // the set of that name as claimed (an adopted one carries its new reference)
        let name_taken = rss
            .iter()
            .find(|r| kinds::name(&r.metadata) == new_name)
            .cloned()
            .or_else(|| self.replica_sets.get_named(ns, &new_name));
        let old_pods_running = !is_rolling(&d)
            && rss.iter().any(|rs| {
                self.pods
                    .by_index(index::CONTROLLER, kinds::uid(&rs.metadata))
                    .iter()
                    .any(|p| {
                        !matches!(
                            p.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Succeeded" | "Failed")
                        )
                    })
                    && !equal_ignore_hash(&rs_template(rs), &tpl)
            });
        let observed = Observed {
            replica_sets: rss,
            name_taken,
            old_pods_running,
        };
        let plan = plan(&d, &observed, jiff::Timestamp::now());
        queue::apply(objects, self.name(), plan.actions).await?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Fixtures are written as JSON, the way the API server stores them, and decoded as the
    // informers decode them; what a plan writes is read back as the JSON the server receives.

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn typed<K: serde::de::DeserializeOwned>(v: &Value) -> K {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn plan_at(d: &Value, o: &Observed, now: &str) -> Plan {
        plan(&typed(d), o, now.parse().unwrap())
    }

    fn s<'a>(v: &'a Value, p: &str) -> &'a str {
        v.pointer(p).and_then(Value::as_str).unwrap_or("")
    }

    fn replicas(o: &Value) -> i64 {
        o.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    fn ann<'a>(o: &'a Value, k: &str) -> Option<&'a str> {
        o.get("metadata")?.get("annotations")?.get(k)?.as_str()
    }

    fn set_ann(o: &mut Value, k: &str, v: String) {
        o["metadata"]["annotations"][k] = json!(v);
    }

    fn cond<'a>(status: &'a Value, t: &str) -> Option<&'a Value> {
        status
            .get("conditions")
            .and_then(Value::as_array)?
            .iter()
            .find(|c| s(c, "/type") == t)
    }

    fn json_of(o: &queue::Object) -> Value {
        o.to_value().unwrap()
    }

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
        let hash = template_hash(&typed(&tpl), 0);
        let mut t = tpl.clone();
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        json!({"metadata": {"name": format!("web-{hash}"), "namespace": "a", "uid": format!("rs-{hash}"),
                "creationTimestamp": created, "resourceVersion": "3", "generation": 1,
                "labels": t["metadata"]["labels"].clone(),
                "annotations": {REVISION: rev.to_string(), DESIRED: d["spec"]["replicas"].to_string(),
                    MAX: (replicas(d) + max_surge(&typed(d))).to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "d-uid", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": spec, "template": t},
            "status": {"replicas": avail, "readyReplicas": avail, "availableReplicas": avail, "observedGeneration": 1}})
    }

    fn obs(rss: Vec<Value>) -> Observed {
        Observed {
            replica_sets: rss.iter().map(|r| Arc::new(typed(r))).collect(),
            ..Default::default()
        }
    }

    fn scales(p: &Plan) -> Vec<(String, i64)> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Update {
                    obj, status: false, ..
                } => {
                    let obj = json_of(obj);
                    Some((s(&obj, "/metadata/name").to_string(), replicas(&obj)))
                }
                Action::Create { obj, .. } => {
                    let obj = json_of(obj);
                    Some((format!("+{}", s(&obj, "/metadata/name")), replicas(&obj)))
                }
                _ => None,
            })
            .collect()
    }

    fn status(p: &Plan) -> Value {
        status_write(p)["status"].take()
    }

    /// The Deployment the plan's status update writes.
    fn status_write(p: &Plan) -> Value {
        p.actions
            .iter()
            .find_map(|a| match a {
                Action::Update {
                    obj, status: true, ..
                } => Some(json_of(obj)),
                _ => None,
            })
            .expect("a status update")
    }

    /// `SetDeploymentRevision`: the Deployment carries its new ReplicaSet's revision, written
    /// with its status (`kubectl rollout undo` patches the annotations it expects there).
    #[test]
    fn a_deployment_carries_its_new_replica_sets_revision() {
        // a new ReplicaSet: its revision, 1
        let d = deploy(2, "nginx:1");
        let p = plan_at(&d, &obs(vec![]), NOW);
        assert_eq!(ann(&status_write(&p), REVISION), Some("1"));
        // an existing new ReplicaSet of revision 3 (after a rollback): its revision
        let rs = rs_of(&d, 3, 2, 2, "2026-01-01T00:00:00Z");
        let p = plan_at(&d, &obs(vec![rs.clone()]), NOW);
        let written = status_write(&p);
        assert_eq!(ann(&written, REVISION), Some("3"));
        // a template change: the next revision
        let d2 = deploy(2, "nginx:2");
        let mut d2_annotated = d2.clone();
        set_ann(&mut d2_annotated, REVISION, "3".into());
        let p = plan_at(&d2_annotated, &obs(vec![rs]), NOW);
        assert_eq!(ann(&status_write(&p), REVISION), Some("4"));
        // nothing else of the Deployment changes
        let mut d_annotated = d.clone();
        set_ann(&mut d_annotated, REVISION, "3".into());
        let mut kept = written.clone();
        kept.as_object_mut().unwrap().remove("status");
        assert_eq!(kept, d_annotated);
    }

    #[test]
    fn a_new_deployment_gets_a_replica_set_with_all_replicas() {
        let d = deploy(3, "nginx:1");
        let p = plan_at(&d, &obs(vec![]), NOW);
        let Action::Create { obj, .. } = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        let obj = &json_of(obj);
        let hash = template_hash(&typed(&d["spec"]["template"]), 0);
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
        let p = plan_at(&d, &obs(vec![old.clone()]), NOW);
        let hash = template_hash(&typed(&d["spec"]["template"]), 0);
        assert_eq!(scales(&p)[0], (format!("+web-{hash}"), 1));
        let new = {
            let Action::Create { obj, .. } = &p.actions[0] else {
                panic!()
            };
            let mut n = json_of(obj);
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
        let p = plan_at(&d, &obs(vec![old2.clone(), new.clone()]), NOW);
        assert_eq!(scales(&p), [(s(&new, "/metadata/name").to_string(), 2)]);
        // step 3: the new set's pods are available: the old one goes to 0 in steps
        let mut new3 = new.clone();
        new3["spec"]["replicas"] = json!(4);
        new3["status"] = json!({"replicas": 4, "availableReplicas": 4});
        let mut old3 = old2.clone();
        old3["spec"]["replicas"] = json!(1);
        old3["status"] = json!({"replicas": 1, "availableReplicas": 1});
        let p = plan_at(&d, &obs(vec![old3, new3]), NOW);
        assert_eq!(scales(&p), [(s(&old, "/metadata/name").to_string(), 0)]);
    }

    #[test]
    fn max_unavailable_zero_keeps_every_old_pod_until_new_ones_are_available() {
        let mut d = deploy(2, "nginx:2");
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 1, "maxUnavailable": 0});
        let old = rs_of(&deploy(2, "nginx:1"), 1, 2, 2, "2026-01-01T00:00:00Z");
        let mut new = rs_of(&d, 2, 1, 0, "2026-01-01T00:01:00Z");
        new["status"] = json!({"replicas": 1});
        let p = plan_at(&d, &obs(vec![old, new]), NOW);
        assert!(scales(&p).is_empty(), "{:?}", scales(&p));
    }

    #[test]
    fn recreate_scales_old_to_zero_and_waits_for_their_pods() {
        let mut d = deploy(2, "nginx:2");
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        let mut od = deploy(2, "nginx:1");
        od["spec"]["strategy"] = json!({"type": "Recreate"});
        let old = rs_of(&od, 1, 2, 2, "2026-01-01T00:00:00Z");
        let p = plan_at(&d, &obs(vec![old.clone()]), NOW);
        assert_eq!(scales(&p), [(s(&old, "/metadata/name").to_string(), 0)]);
        // old pods still terminating: no new set yet
        let mut old0 = old.clone();
        old0["spec"]["replicas"] = json!(0);
        let mut o = obs(vec![old0.clone()]);
        o.old_pods_running = true;
        assert!(scales(&plan_at(&d, &o, NOW)).is_empty());
        // gone: the new set with every replica
        old0["status"] = json!({"replicas": 0});
        let p = plan_at(&d, &obs(vec![old0]), NOW);
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
        let p = plan_at(&d, &obs(vec![a.clone(), b.clone()]), NOW);
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
                obj, status: false, ..
            } = a
            {
                assert_eq!(ann(&json_of(obj), DESIRED), Some("20"));
            }
        }
    }

    #[test]
    fn a_scale_of_a_settled_deployment_scales_its_only_set() {
        let d0 = deploy(3, "nginx:1");
        let rs = rs_of(&d0, 1, 3, 3, "2026-01-01T00:00:00Z");
        let d = deploy(5, "nginx:1");
        let p = plan_at(&d, &obs(vec![rs.clone()]), NOW);
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
        let p = plan_at(&d, &obs(rss.clone()), NOW);
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
        let p = plan_at(&d, &obs(vec![back.clone(), cur]), NOW);
        let upd = p
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Update {
                    obj, status: false, ..
                } => Some(json_of(obj))
                    .filter(|o| s(o, "/metadata/name") == s(&back, "/metadata/name")),
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
        assert!(equal_ignore_hash(&typed(&t), &typed(&u)));
        let mut u2 = u.clone();
        u2["metadata"]["labels"]["app"] = json!("api");
        assert!(!equal_ignore_hash(&typed(&t), &typed(&u2)));
        assert_eq!(
            template_hash(&typed(&u), 0),
            template_hash(&without_hash(&typed(&t)), 0)
        );
        // quantities by value
        let with_cpu = |cpu: &str| {
            typed(&json!({"spec": {"containers": [{"name": "c",
                "resources": {"limits": {"cpu": cpu}}}]}}))
        };
        assert!(equal_ignore_hash(&with_cpu("1"), &with_cpu("1000m")));
        assert!(!equal_ignore_hash(&with_cpu("1"), &with_cpu("2")));
        // a template stored without a default matches one stored with it
        let port = |p: Value| {
            typed(&json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [p]}]}}))
        };
        assert!(equal_ignore_hash(
            &port(json!({"containerPort": 80})),
            &port(json!({"containerPort": 80, "protocol": "TCP"}))
        ));
        assert!(!equal_ignore_hash(
            &port(json!({"containerPort": 80})),
            &port(json!({"containerPort": 80, "protocol": "UDP"}))
        ));
        // only the hash label: no labels, no metadata
        let only = json!({"metadata": {"labels": {HASH_LABEL: "x"}}, "spec": {"containers": []}});
        assert!(equal_ignore_hash(
            &typed(&only),
            &typed(&json!({"spec": {"containers": []}}))
        ));
    }

    #[test]
    fn a_paused_deployment_scales_but_does_not_roll_out() {
        let old = rs_of(&deploy(2, "nginx:1"), 1, 2, 2, "2026-01-01T00:00:00Z");
        let mut d = deploy(2, "nginx:2");
        d["spec"]["paused"] = json!(true);
        assert!(scales(&plan_at(&d, &obs(vec![old.clone()]), NOW)).is_empty());
        d["spec"]["replicas"] = json!(4);
        assert_eq!(
            scales(&plan_at(&d, &obs(vec![old.clone()]), NOW)),
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
            name_taken: Some(Arc::new(typed(&other))),
            old_pods_running: false,
        };
        let p = plan_at(&d, &o, NOW);
        assert!(scales(&p).is_empty());
        assert_eq!(status(&p)["collisionCount"], 1);
    }

    #[test]
    fn an_unchanged_deployment_writes_nothing() {
        let d0 = deploy(2, "nginx:1");
        let rs = rs_of(&d0, 1, 2, 2, "2026-01-01T00:00:00Z");
        let p = plan_at(&d0, &obs(vec![rs.clone()]), NOW);
        let d = status_write(&p);
        assert_eq!(ann(&d, REVISION), Some("1"));
        let p2 = plan_at(&d, &obs(vec![rs]), "2026-01-01T00:05:00Z");
        assert!(p2.actions.is_empty(), "{:?}", p2.actions);
    }
}
