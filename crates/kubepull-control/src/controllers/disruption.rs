//! The disruption controller (kubernetes `pkg/controller/disruption/disruption.go`, 1.32):
//! keeps each PodDisruptionBudget's status — the pods it selects that are healthy
//! (`currentHealthy`: Ready and not being deleted, nor evicted in the last two minutes), how
//! many must be (`desiredHealthy`), how many are expected (`expectedPods`: with
//! `maxUnavailable` or a percentage `minAvailable`, the scale of the pods' controllers;
//! otherwise the number of pods), the disruptions still allowed, the evicted pods not yet
//! seen deleted (`disruptedPods`) and the `DisruptionAllowed` condition. A sync that fails
//! sets `disruptionsAllowed` to 0 with the condition's reason `SyncFailed` (`failSafe`), so
//! no eviction is approved while the budget is not known.
//!
//! A budget is synced when it changes and when a pod its selector matches (before or after
//! the change) is added, changed or deleted; a sync reads the pods of its namespace from the
//! cache.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::informer::{index, Informers, Notice, Typed};
use super::kinds::{self, controller_ref, reference};
use super::queue::{self, Action, Object};
use crate::disruption::{
    condition, conditions_are_up_to_date, selects, set_status_condition,
    update_disruption_allowed_condition, DELETION_TIMEOUT, DISRUPTION_ALLOWED, SYNC_FAILED,
};
use crate::errors::ApiError;
use crate::objects::Objects;

/// The component the controller's events name (upstream's recorder:
/// `v1.EventSource{Component: "controllermanager"}`).
pub const EVENT_SOURCE: &str = "controllermanager";

/// An event a sync records.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The involved object.
    pub about: ObjectReference,
    /// `Normal` or `Warning`.
    pub etype: &'static str,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// What a sync of one budget decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PdbPlan {
    /// The budget with the status to write (none: the status is up to date).
    pub status: Option<PodDisruptionBudget>,
    /// Events, recorded before the write.
    pub events: Vec<Event>,
    /// Sync again after this long (an evicted pod's deletion is due then).
    pub recheck: Option<Duration>,
}

/// `(uid, scale)` of the controller an ownerReference names in a namespace, `None` when that
/// controller does not exist (the `finders`).
pub type ScaleOf<'a> = &'a dyn Fn(&OwnerReference, &str) -> Result<Option<(String, i32)>, String>;

/// The event reference of a budget.
fn pdb_reference(pdb: &PodDisruptionBudget) -> ObjectReference {
    let m = &pdb.metadata;
    ObjectReference {
        api_version: Some("policy/v1".into()),
        kind: Some("PodDisruptionBudget".into()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path: None,
    }
}

/// The `String()` of a `*metav1.LabelSelector` (gogo-protobuf's generated form, which `%v`
/// prints).
pub fn selector_string(sel: Option<&LabelSelector>) -> String {
    let Some(sel) = sel else {
        return "nil".into();
    };
    let labels: String = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let exprs: String = sel
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.as_deref().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )
}

/// `intstr.GetScaledValueFromIntOrPercent(v, total, true)`.
fn scaled_value(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%').and_then(|d| d.parse::<i64>().ok()) else {
                return Err(format!("invalid value for IntOrString: invalid value {s:?}: strconv.Atoi: parsing {:?}: invalid syntax", s.trim_end_matches('%')));
            };
            let v = (p * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// `getExpectedScale`: the sum of the scales of the pods' controllers, and the pods without
/// a controller.
fn expected_scale(pods: &[Arc<Pod>], scale_of: ScaleOf<'_>) -> Result<(i32, Vec<String>), String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = vec![];
    for pod in pods {
        let Some(r) = controller_ref(&pod.metadata) else {
            unmanaged.push(kinds::name(&pod.metadata).to_string());
            continue;
        };
        if scales.contains_key(&r.uid) {
            continue;
        }
        match scale_of(r, kinds::namespace(&pod.metadata))? {
            Some((uid, n)) => {
                scales.insert(uid, n);
            }
            None => {
                return Err(format!(
                    "found no controllers for pod {:?}",
                    kinds::name(&pod.metadata)
                ))
            }
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

/// `getExpectedPodCount`: `(expectedCount, desiredHealthy, unmanagedPods)`.
pub fn expected_pod_count(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scale_of: ScaleOf<'_>,
) -> Result<(i32, i32, Vec<String>), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(mu) = &spec.max_unavailable {
        let (expected, unmanaged) = expected_scale(pods, scale_of)?;
        let max = scaled_value(mu, expected)?;
        return Ok((expected, (expected - max).max(0), unmanaged));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => {
            Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), *n, vec![]))
        }
        Some(ma @ IntOrString::String(_)) => {
            let (expected, unmanaged) = expected_scale(pods, scale_of)?;
            Ok((expected, scaled_value(ma, expected)?, unmanaged))
        }
        None => Ok((0, 0, vec![])),
    }
}

fn after(t: &Time, d: Duration) -> jiff::Timestamp {
    t.0 + jiff::SignedDuration::try_from(d).unwrap_or_default()
}

/// `buildDisruptedPodMap`: the evicted pods still expected to be deleted (not yet marked, and
/// evicted less than [`DELETION_TIMEOUT`] ago), when to look again, and a `NotDeleted` event
/// for each pod whose deletion did not come in time.
fn disrupted_pod_map(
    pods: &[Arc<Pod>],
    pdb: &PodDisruptionBudget,
    now: jiff::Timestamp,
    events: &mut Vec<Event>,
) -> (BTreeMap<String, Time>, Option<jiff::Timestamp>) {
    let mut out = BTreeMap::new();
    let mut recheck: Option<jiff::Timestamp> = None;
    let Some(disrupted) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (out, None);
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = kinds::name(&pod.metadata);
        let Some(t) = disrupted.get(name) else {
            continue;
        };
        let expected = after(t, DELETION_TIMEOUT);
        if expected < now {
            // upstream names the budget's namespace twice
            let ns = kinds::namespace(&pdb.metadata);
            events.push(Event {
                about: reference(&**pod),
                etype: "Warning",
                reason: "NotDeleted",
                message: format!("Pod was expected by PDB {ns}/{ns} to be deleted but it wasn't"),
            });
        } else {
            recheck = Some(recheck.map_or(expected, |r| r.min(expected)));
            out.insert(name.to_string(), t.clone());
        }
    }
    (out, recheck)
}

/// `countHealthyPods`: Ready pods not being deleted nor evicted less than
/// [`DELETION_TIMEOUT`] ago.
fn count_healthy(
    pods: &[Arc<Pod>],
    disrupted: &BTreeMap<String, Time>,
    now: jiff::Timestamp,
) -> i32 {
    let n = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            disrupted
                .get(kinds::name(&p.metadata))
                .is_none_or(|t| after(t, DELETION_TIMEOUT) <= now)
        })
        .filter(|p| kinds::pod_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `failSafe`: no disruption allowed, the condition `SyncFailed` with the error. `None` when
/// the status says so already.
fn fail_safe(
    pdb: &PodDisruptionBudget,
    err: &str,
    now: jiff::Timestamp,
) -> Option<PodDisruptionBudget> {
    let mut n = pdb.clone();
    let st = n.status.get_or_insert_with(Default::default);
    st.disruptions_allowed = 0;
    let gen = st.observed_generation.unwrap_or(0);
    set_status_condition(
        st.conditions.get_or_insert_with(Vec::new),
        condition(DISRUPTION_ALLOWED, "False", SYNC_FAILED, err, gen),
        now,
    );
    (n.status != pdb.status).then_some(n)
}

/// Syncs one budget (`trySync`, `updatePdbStatus`, and `failSafe` when it fails): `pods` are
/// the pods of its namespace its selector matches, or why they could not be listed;
/// `scale_of` finds the scale of a pod's controller.
pub fn plan(
    pdb: &PodDisruptionBudget,
    pods: Result<&[Arc<Pod>], String>,
    scale_of: ScaleOf<'_>,
    now: jiff::Timestamp,
) -> PdbPlan {
    let mut p = PdbPlan::default();
    let about = pdb_reference(pdb);
    let pods = match pods {
        Ok(pods) => pods,
        Err(e) => {
            p.events.push(Event {
                about,
                etype: "Warning",
                reason: "NoPods",
                message: format!("Failed to get pods: {e}"),
            });
            p.status = fail_safe(pdb, &e, now);
            return p;
        }
    };
    if pods.is_empty() {
        p.events.push(Event {
            about: about.clone(),
            etype: "Normal",
            reason: "NoPods",
            message: "No matching pods found".into(),
        });
    }
    let (expected, desired, unmanaged) = match expected_pod_count(pdb, pods, scale_of) {
        Ok(x) => x,
        Err(e) => {
            p.events.push(Event {
                about,
                etype: "Warning",
                reason: "CalculateExpectedPodCountFailed",
                message: format!("Failed to calculate the number of expected pods: {e}"),
            });
            p.status = fail_safe(pdb, &e, now);
            return p;
        }
    };
    if !unmanaged.is_empty() {
        p.events.push(Event {
            about,
            etype: "Warning",
            reason: "UnmanagedPods",
            message: format!(
                "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                selector_string(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
            ),
        });
    }
    let (disrupted, recheck) = disrupted_pod_map(pods, pdb, now, &mut p.events);
    let healthy = count_healthy(pods, &disrupted, now);
    // updatePdbStatus: no disruption while no pod is expected, so a budget whose pods
    // appear is safe before its first sync
    let mut allowed = healthy - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let generation = pdb.metadata.generation.unwrap_or(0);
    let st = pdb.status.clone().unwrap_or_default();
    let same_disrupted = st.disrupted_pods.clone().unwrap_or_default() == disrupted;
    if !(st.current_healthy == healthy
        && st.desired_healthy == desired
        && st.expected_pods == expected
        && st.disruptions_allowed == allowed
        && same_disrupted
        && st.observed_generation.unwrap_or(0) == generation
        && conditions_are_up_to_date(pdb))
    {
        let mut n = pdb.clone();
        n.status = Some(k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus {
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
            disruptions_allowed: allowed,
            disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
            observed_generation: Some(generation),
            conditions: st.conditions.clone(),
        });
        update_disruption_allowed_condition(&mut n, now);
        p.status = Some(n);
    }
    p.recheck = recheck.map(|t| {
        Duration::try_from(t.duration_since(now)).unwrap_or_default() + Duration::from_millis(1)
    });
    p
}

/// `stalePodDisruptionTimeout`: how long a pod not being deleted may keep a
/// `DisruptionTarget=True` condition (an eviction whose delete did not follow) before the
/// controller sets it to False.
pub const STALE_POD_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);

/// The key prefix of a pod whose stale `DisruptionTarget` condition is to be cleared (a
/// namespace name has no `:`, so it is told apart from a budget's `namespace/name`).
const STALE_POD_KEY: &str = "pod:";

/// `nonTerminatingPodHasStaleDisruptionCondition`: whether a pod not being deleted and not
/// finished has a `DisruptionTarget=True` condition not set by the kubelet, and how long
/// until it is stale.
pub fn stale_disruption_condition(pod: &Pod, now: jiff::Timestamp) -> Option<Duration> {
    if pod.metadata.deletion_timestamp.is_some()
        || matches!(kinds::pod_phase(pod), "Succeeded" | "Failed")
    {
        return None;
    }
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")?;
    if c.status != "True" || c.reason.as_deref() == Some("TerminationByKubelet") {
        return None;
    }
    let since = c
        .last_transition_time
        .as_ref()
        .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0);
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
    Some(STALE_POD_DISRUPTION_TIMEOUT.saturating_sub(elapsed))
}

/// The disruption controller over the shared informers.
pub struct DisruptionController {
    pdbs: Typed<PodDisruptionBudget>,
    pods: Typed<Pod>,
    replica_sets: Typed<ReplicaSet>,
    deployments: Typed<Deployment>,
    stateful_sets: Typed<StatefulSet>,
    rcs: Typed<ReplicationController>,
}

fn group_of(api_version: &str) -> Result<&str, String> {
    // schema.ParseGroupVersion
    match api_version.split('/').collect::<Vec<_>>()[..] {
        [""] | [_] => Ok(""),
        [g, _] => Ok(g),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

impl DisruptionController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> DisruptionController {
        DisruptionController {
            pdbs: informers.of::<PodDisruptionBudget>(),
            pods: informers.of::<Pod>(),
            replica_sets: informers.of::<ReplicaSet>(),
            deployments: informers.of::<Deployment>(),
            stateful_sets: informers.of::<StatefulSet>(),
            rcs: informers.of::<ReplicationController>(),
        }
    }

    /// The budgets of the pod's namespace that select it.
    fn pdbs_of(&self, pod: &Pod) -> Vec<String> {
        self.pdbs
            .by_index(index::NAMESPACE, kinds::namespace(&pod.metadata))
            .iter()
            .filter(|b| selects(b, pod.metadata.labels.as_ref()))
            .map(|b| kinds::key_of(&b.metadata))
            .collect()
    }

    /// `syncStalePodDisruption`: a pod whose `DisruptionTarget=True` condition is stale gets
    /// it set to False (read whole from the API: the cache keeps a part of each pod), by a
    /// status write guarded by its resourceVersion; one not stale yet is looked at again when
    /// it is.
    async fn sync_stale_pod_disruption(
        &self,
        objects: &Objects,
        key: &str,
    ) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(cached) = self.pods.get_named(ns, name) else {
            return Ok(None);
        };
        match stale_disruption_condition(&cached, jiff::Timestamp::now()) {
            None => return Ok(None),
            Some(wait) if !wait.is_zero() => return Ok(Some(wait)),
            Some(_) => {}
        }
        let Some(mut pod) = super::get_typed::<Pod>(objects, ns, name).await? else {
            return Ok(None);
        };
        if stale_disruption_condition(&pod, jiff::Timestamp::now()) != Some(Duration::ZERO) {
            return Ok(None);
        }
        let st = pod.status.get_or_insert_with(Default::default);
        super::scheduler::upsert_condition(
            st.conditions.get_or_insert_with(Vec::new),
            k8s_openapi::api::core::v1::PodCondition {
                type_: "DisruptionTarget".into(),
                status: "False".into(),
                last_transition_time: Some(kinds::meta_time(jiff::Timestamp::now())),
                ..Default::default()
            },
        );
        queue::apply(
            objects,
            EVENT_SOURCE,
            vec![Action::Update {
                r: kinds::resource_of::<Pod>(),
                obj: pod.into(),
                status: true,
            }],
        )
        .await?;
        Ok(None)
    }

    /// The finders (`getPodReplicationController`, `getPodDeployment`, `getPodReplicaSet`,
    /// `getPodStatefulSet`, `getScaleController`) over the caches.
    fn scale_of(&self, r: &OwnerReference, ns: &str) -> Result<Option<(String, i32)>, String> {
        let group = group_of(&r.api_version)?;
        let uid_is =
            |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| kinds::uid(m) == r.uid;
        let apps = matches!(group, "apps" | "extensions");
        if r.kind == "ReplicationController" && group.is_empty() {
            if let Some(rc) = self
                .rcs
                .get_named(ns, &r.name)
                .filter(|c| uid_is(&c.metadata))
            {
                let n = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((r.uid.clone(), n)));
            }
        }
        if r.kind == "ReplicaSet" && apps {
            if let Some(rs) = self
                .replica_sets
                .get_named(ns, &r.name)
                .filter(|s| uid_is(&s.metadata))
            {
                match controller_ref(&rs.metadata) {
                    Some(d) if d.kind == "Deployment" => {
                        if matches!(group_of(&d.api_version)?, "apps" | "extensions") {
                            if let Some(dep) = self
                                .deployments
                                .get_named(ns, &d.name)
                                .filter(|x| kinds::uid(&x.metadata) == d.uid)
                            {
                                let n = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                                return Ok(Some((d.uid.clone(), n)));
                            }
                        }
                    }
                    _ => {
                        let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        return Ok(Some((r.uid.clone(), n)));
                    }
                }
            }
        }
        if r.kind == "StatefulSet" && group == "apps" {
            if let Some(ss) = self
                .stateful_sets
                .get_named(ns, &r.name)
                .filter(|s| uid_is(&s.metadata))
            {
                let n = ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((r.uid.clone(), n)));
            }
        }
        // getScaleController: the scale subresource of the kind the reference names
        let Some(res) = crate::resources::by_kind(group, &r.kind) else {
            return Err(format!(
                "no matches for kind {:?} in version {:?}",
                r.kind, r.api_version
            ));
        };
        if !res.subresources.contains(&"scale") {
            return Err(format!(
                "{} does not implement the scale subresource",
                res.qualified()
            ));
        }
        let found = match (res.group, res.kind) {
            ("apps", "ReplicaSet") => self
                .replica_sets
                .get_named(ns, &r.name)
                .filter(|x| uid_is(&x.metadata))
                .map(|x| x.spec.as_ref().and_then(|s| s.replicas)),
            ("apps", "Deployment") => self
                .deployments
                .get_named(ns, &r.name)
                .filter(|x| uid_is(&x.metadata))
                .map(|x| x.spec.as_ref().and_then(|s| s.replicas)),
            ("apps", "StatefulSet") => self
                .stateful_sets
                .get_named(ns, &r.name)
                .filter(|x| uid_is(&x.metadata))
                .map(|x| x.spec.as_ref().and_then(|s| s.replicas)),
            ("", "ReplicationController") => self
                .rcs
                .get_named(ns, &r.name)
                .filter(|x| uid_is(&x.metadata))
                .map(|x| x.spec.as_ref().and_then(|s| s.replicas)),
            _ => None,
        };
        Ok(found.map(|n| (r.uid.clone(), n.unwrap_or(1))))
    }
}

#[async_trait::async_trait]
impl queue::Controller for DisruptionController {
    fn name(&self) -> &'static str {
        "disruption-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        // the workload caches are read as listers; waiting for them keeps the first syncs
        // from finding no controller
        vec![
            self.pdbs.prefix().to_string(),
            self.pods.prefix().to_string(),
            self.replica_sets.prefix().to_string(),
            self.deployments.prefix().to_string(),
            self.stateful_sets.prefix().to_string(),
            self.rcs.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if let Some(b) = change.obj::<PodDisruptionBudget>() {
            return vec![kinds::key_of(&b.metadata)];
        }
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        // addPod / updatePod / deletePod: the budgets of the pod as it is and, when its
        // labels changed, as it was; and the pod itself when its DisruptionTarget condition
        // is to be cleared
        let mut keys = self.pdbs_of(pod);
        if !change.deleted && stale_disruption_condition(pod, jiff::Timestamp::now()).is_some() {
            keys.push(format!("{STALE_POD_KEY}{}", kinds::key_of(&pod.metadata)));
        }
        if let Some(old) = change.old::<Pod>() {
            if old.metadata.labels != pod.metadata.labels {
                for k in self.pdbs_of(old) {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        keys
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .pdbs
            .list()
            .iter()
            .map(|b| kinds::key_of(&b.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        if let Some(pod_key) = key.strip_prefix(STALE_POD_KEY) {
            return self.sync_stale_pod_disruption(objects, pod_key).await;
        }
        let (ns, name) = queue::split_key(key);
        let Some(pdb) = self.pdbs.get_named(ns, name) else {
            return Ok(None);
        };
        // getPodsForPdb: LabelSelectorAsSelector (no selector selects nothing, an empty one
        // every pod of the namespace)
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        let pods: Result<Vec<Arc<Pod>>, String> = match selector {
            None => Ok(vec![]),
            Some(sel) => self
                .pods
                .by_index(index::NAMESPACE, ns)
                .into_iter()
                .filter_map(
                    |p| match super::refmanager::selects(sel, p.metadata.labels.as_ref()) {
                        Ok(true) => Some(Ok(p)),
                        Ok(false) => None,
                        Err(e) => Some(Err(e.to_string())),
                    },
                )
                .collect(),
        };
        let scale_of = |r: &OwnerReference, ns: &str| self.scale_of(r, ns);
        let plan = plan(
            &pdb,
            pods.as_deref().map_err(Clone::clone),
            &scale_of,
            jiff::Timestamp::now(),
        );
        let mut actions: Vec<Action> = plan
            .events
            .into_iter()
            .map(|e| Action::Event {
                about: e.about,
                etype: e.etype,
                reason: e.reason,
                message: e.message,
            })
            .collect();
        if let Some(n) = plan.status {
            let obj = serde_json::to_value(&n)
                .map_err(|e| ApiError::internal(format!("encoding the budget: {e}")))?;
            actions.push(Action::Update {
                r: crate::disruption::resource()?,
                obj: Object::Json(obj),
                status: true,
            });
        }
        // a write that conflicts is synced again from the cache (queue::retry_for); the
        // events' source is upstream's recorder's (`controllermanager`)
        queue::apply(objects, EVENT_SOURCE, actions).await?;
        Ok(plan.recheck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn pdb(spec: Value, status: Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "a", "uid": "b1", "generation": 1},
            "spec": spec, "status": status}),
        )
        .unwrap()
    }

    fn pod(name: &str, ready: bool, owner: Option<&str>) -> Arc<Pod> {
        let mut p = json!({"metadata": {"name": name, "namespace": "a", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        if let Some(o) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": o, "uid": o, "controller": true}]);
        }
        Arc::new(serde_json::from_value(p).unwrap())
    }

    fn no_controllers(_: &OwnerReference, _: &str) -> Result<Option<(String, i32)>, String> {
        Ok(None)
    }

    fn scale_5(r: &OwnerReference, _: &str) -> Result<Option<(String, i32)>, String> {
        Ok(Some((r.uid.clone(), 5)))
    }

    fn status(p: &PdbPlan) -> k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus {
        p.status
            .as_ref()
            .expect("a status write")
            .status
            .clone()
            .unwrap()
    }

    #[test]
    fn min_available_counts_the_ready_pods() {
        let b = pdb(
            json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
            json!({}),
        );
        let pods = [
            pod("a", true, None),
            pod("b", true, None),
            pod("c", false, None),
        ];
        let p = plan(&b, Ok(&pods), &no_controllers, now());
        let st = status(&p);
        assert_eq!(
            (
                st.current_healthy,
                st.desired_healthy,
                st.expected_pods,
                st.disruptions_allowed
            ),
            (2, 1, 3, 1)
        );
        assert_eq!(st.observed_generation, Some(1));
        let c = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("DisruptionAllowed", "True", "SufficientPods")
        );
        assert!(p.events.is_empty());
        // written once: the same observation again writes nothing
        let settled = p.status.unwrap();
        let again = plan(&settled, Ok(&pods), &no_controllers, now());
        assert!(again.status.is_none(), "{again:?}");
        // one pod fewer ready: no disruption left
        let pods = [pod("a", true, None), pod("b", false, None)];
        let st = status(&plan(&settled, Ok(&pods), &no_controllers, now()));
        assert_eq!(st.disruptions_allowed, 0);
        assert_eq!(
            st.conditions.as_ref().unwrap()[0].reason,
            "InsufficientPods"
        );
    }

    #[test]
    fn max_unavailable_and_percentages_use_the_controllers_scale() {
        let pods = [
            pod("a", true, Some("rs1")),
            pod("b", true, Some("rs1")),
            pod("c", true, Some("rs1")),
        ];
        let b = pdb(json!({"maxUnavailable": 1, "selector": {}}), json!({}));
        let st = status(&plan(&b, Ok(&pods), &scale_5, now()));
        assert_eq!(
            (
                st.expected_pods,
                st.desired_healthy,
                st.current_healthy,
                st.disruptions_allowed
            ),
            (5, 4, 3, 0)
        );
        let b = pdb(json!({"minAvailable": "50%", "selector": {}}), json!({}));
        let st = status(&plan(&b, Ok(&pods), &scale_5, now()));
        // 50% of 5 rounded up
        assert_eq!(
            (st.expected_pods, st.desired_healthy, st.disruptions_allowed),
            (5, 3, 0)
        );
        let b = pdb(json!({"maxUnavailable": "40%", "selector": {}}), json!({}));
        let st = status(&plan(&b, Ok(&pods), &scale_5, now()));
        assert_eq!((st.desired_healthy, st.disruptions_allowed), (3, 0));
    }

    #[test]
    fn a_pod_without_a_known_controller_fails_safe() {
        let b = pdb(
            json!({"maxUnavailable": 1, "selector": {}}),
            json!({"disruptionsAllowed": 2, "observedGeneration": 1}),
        );
        let pods = [pod("a", true, Some("gone"))];
        let p = plan(&b, Ok(&pods), &no_controllers, now());
        let st = status(&p);
        assert_eq!(st.disruptions_allowed, 0);
        let c = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("False", "SyncFailed", "found no controllers for pod \"a\"")
        );
        assert_eq!(p.events[0].reason, "CalculateExpectedPodCountFailed");
        assert_eq!(
            p.events[0].message,
            "Failed to calculate the number of expected pods: found no controllers for pod \"a\""
        );
        // failing the same way again writes nothing
        let again = plan(&p.status.unwrap(), Ok(&pods), &no_controllers, now());
        assert!(again.status.is_none());
        // pods without a controller are reported and left out of the scale
        let pods = [pod("a", true, None), pod("b", true, Some("rs1"))];
        let p = plan(&b, Ok(&pods), &scale_5, now());
        assert_eq!(status(&p).expected_pods, 5);
        assert_eq!(p.events[0].reason, "UnmanagedPods");
        assert!(p.events[0].message.starts_with("Pods selected by this PodDisruptionBudget (selector: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}) were found to be unmanaged."));
    }

    #[test]
    fn evicted_pods_do_not_count_until_the_deletion_timeout() {
        let b = pdb(
            json!({"minAvailable": 1, "selector": {}}),
            json!({"disruptedPods": {"a": "2026-01-01T00:09:00Z", "b": "2026-01-01T00:00:00Z", "gone": "2026-01-01T00:09:30Z"}}),
        );
        let pods = [
            pod("a", true, None),
            pod("b", true, None),
            pod("c", true, None),
        ];
        let p = plan(&b, Ok(&pods), &no_controllers, now());
        let st = status(&p);
        // a is expected to be deleted; b's deletion did not come in time; gone is gone
        assert_eq!(st.current_healthy, 2);
        assert_eq!(st.disrupted_pods.unwrap().keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].reason, "NotDeleted");
        assert_eq!(p.events[0].about.name.as_deref(), Some("b"));
        assert_eq!(
            p.events[0].message,
            "Pod was expected by PDB a/a to be deleted but it wasn't"
        );
        // looked at again when a's deletion is due
        assert_eq!(
            p.recheck,
            Some(Duration::from_secs(60) + Duration::from_millis(1))
        );
        // a pod marked for deletion is not healthy, nor is it kept in the map
        let mut gone: Pod = (*pods[0]).clone();
        gone.metadata.deletion_timestamp = Some(Time(now()));
        let pods = [Arc::new(gone), pods[1].clone(), pods[2].clone()];
        let st = status(&plan(&b, Ok(&pods), &no_controllers, now()));
        assert_eq!(st.current_healthy, 2);
        assert!(st.disrupted_pods.is_none());
    }

    #[test]
    fn no_pods_no_disruptions_and_an_event() {
        let b = pdb(json!({"maxUnavailable": 3, "selector": {}}), json!({}));
        let p = plan(&b, Ok(&[]), &no_controllers, now());
        let st = status(&p);
        assert_eq!((st.expected_pods, st.disruptions_allowed), (0, 0));
        assert_eq!(p.events[0].message, "No matching pods found");
        let p = plan(&b, Err("bad selector".into()), &no_controllers, now());
        assert_eq!(p.events[0].message, "Failed to get pods: bad selector");
        assert_eq!(status(&p).conditions.unwrap()[0].reason, "SyncFailed");
    }

    #[test]
    fn a_new_generation_is_observed() {
        let pods = [pod("a", true, None)];
        let b = pdb(json!({"minAvailable": 0, "selector": {}}), json!({}));
        let mut settled = plan(&b, Ok(&pods), &no_controllers, now()).status.unwrap();
        settled.metadata.generation = Some(2);
        let st = status(&plan(&settled, Ok(&pods), &no_controllers, now()));
        assert_eq!(st.observed_generation, Some(2));
        assert_eq!(st.conditions.unwrap()[0].observed_generation, Some(2));
    }

    /// A pod's change syncs the budgets that select it as it is and as it was; a sync reads
    /// the caches only and writes the status, and a write from a stale copy of the budget
    /// conflicts and is synced again (not dropped).
    #[tokio::test]
    async fn pod_changes_sync_their_budgets_from_the_caches() {
        use crate::controllers::informer::test_support::Env;
        use crate::controllers::queue::Controller as _;
        let env = Env::new().await;
        let mut c = DisruptionController::new(&env.informers);
        for (name, sel) in [
            ("web", json!({"matchLabels": {"app": "web"}})),
            ("db", json!({"matchLabels": {"app": "db"}})),
            ("all", json!({})),
        ] {
            env.put::<PodDisruptionBudget>(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": "default", "uid": format!("b-{name}"), "generation": 1},
                "spec": {"minAvailable": 1, "selector": sel}}))
            .await;
        }
        // another namespace's budget selects nothing here
        env.put::<PodDisruptionBudget>(
            json!({"metadata": {"name": "web", "namespace": "other", "uid": "o"},
            "spec": {"selector": {}}}),
        )
        .await;
        env.refresh::<PodDisruptionBudget>().await;
        let pod_json = |app: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u-p", "labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        };
        env.put::<Pod>(pod_json("web")).await;
        let mut keys: Vec<String> = env
            .refresh::<Pod>()
            .await
            .iter()
            .flat_map(|n| c.keys_for(n))
            .collect();
        keys.sort();
        assert_eq!(keys, ["default/all", "default/web"]);
        // relabelled: the budgets of both its labels
        let relabelled = Notice {
            key: "/registry/pods/default/p".into(),
            obj: kinds::Cached::Pod(Arc::new(serde_json::from_value(pod_json("db")).unwrap())),
            old: Some(kinds::Cached::Pod(Arc::new(
                serde_json::from_value(pod_json("web")).unwrap(),
            ))),
            deleted: false,
        };
        let mut keys = c.keys_for(&relabelled);
        keys.sort();
        assert_eq!(keys, ["default/all", "default/db", "default/web"]);
        env.no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        let stored = env.stored::<PodDisruptionBudget>().await;
        let web = stored
            .iter()
            .find(|b| b["metadata"]["uid"] == "b-web")
            .unwrap();
        assert_eq!(web["status"]["currentHealthy"], 1);
        assert_eq!(web["status"]["expectedPods"], 1);
        assert_eq!(web["status"]["disruptionsAllowed"], 0);
        assert_eq!(web["status"]["conditions"][0]["reason"], "InsufficientPods");
        // the cache still has the copy before that write: its write conflicts, to be synced
        // again from the cache once it caught up
        env.put::<Pod>(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q", "namespace": "default", "uid": "u-q", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))
        .await;
        env.refresh::<Pod>().await;
        let e = c.sync(&env.objects, "default/web").await.unwrap_err();
        assert_eq!(queue::retry_for(&e), queue::Retry::Reread, "{e}");
        env.refresh::<PodDisruptionBudget>().await;
        env.no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        let stored = env.stored::<PodDisruptionBudget>().await;
        let web = stored
            .iter()
            .find(|b| b["metadata"]["uid"] == "b-web")
            .unwrap();
        assert_eq!(web["status"]["disruptionsAllowed"], 1);
        // a pod evicted long ago but not deleted: its DisruptionTarget condition set to False
        env.put::<Pod>(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kept", "namespace": "default", "uid": "u-k"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "conditions": [{"type": "DisruptionTarget", "status": "True",
                "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}))
        .await;
        let keys: Vec<String> = env
            .refresh::<Pod>()
            .await
            .iter()
            .flat_map(|n| c.keys_for(n))
            .collect();
        assert_eq!(keys, ["default/all", "pod:default/kept"]);
        c.sync(&env.objects, "pod:default/kept").await.unwrap();
        let kept = env
            .stored::<Pod>()
            .await
            .into_iter()
            .find(|p| p["metadata"]["name"] == "kept")
            .unwrap();
        let cond = &kept["status"]["conditions"][0];
        assert_eq!(
            (cond["type"].as_str(), cond["status"].as_str()),
            (Some("DisruptionTarget"), Some("False")),
            "{kept}"
        );
        assert!(cond.get("reason").is_none(), "{kept}");
        // a budget that is gone: nothing to do
        env.no_lists(c.sync(&env.objects, "default/gone"))
            .await
            .unwrap();
    }

    #[test]
    fn a_disruption_target_not_followed_by_a_deletion_turns_stale() {
        let with = |status: &str, reason: &str, at: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "a"},
                "status": {"phase": "Running", "conditions": [{"type": "DisruptionTarget", "status": status,
                    "reason": reason, "lastTransitionTime": at}]}}))
            .unwrap()
        };
        // set a minute ago: stale in a minute; three minutes ago: stale now
        let p = with("True", "EvictionByEvictionAPI", "2026-01-01T00:09:00Z");
        assert_eq!(
            stale_disruption_condition(&p, now()),
            Some(Duration::from_secs(60))
        );
        let p = with("True", "EvictionByEvictionAPI", "2026-01-01T00:07:00Z");
        assert_eq!(stale_disruption_condition(&p, now()), Some(Duration::ZERO));
        // the kubelet's, a false one, a terminating or finished pod: never stale
        let p = with("True", "TerminationByKubelet", "2026-01-01T00:00:00Z");
        assert_eq!(stale_disruption_condition(&p, now()), None);
        let p = with("False", "", "2026-01-01T00:00:00Z");
        assert_eq!(stale_disruption_condition(&p, now()), None);
        let mut p = with("True", "EvictionByEvictionAPI", "2026-01-01T00:00:00Z");
        p.metadata.deletion_timestamp = Some(Time(now()));
        assert_eq!(stale_disruption_condition(&p, now()), None);
        let mut p = with("True", "EvictionByEvictionAPI", "2026-01-01T00:00:00Z");
        p.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(stale_disruption_condition(&p, now()), None);
    }

    #[test]
    fn scaled_values_round_up() {
        assert_eq!(scaled_value(&IntOrString::String("50%".into()), 5), Ok(3));
        assert_eq!(scaled_value(&IntOrString::String("0%".into()), 5), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(2), 5), Ok(2));
        assert_eq!(group_of("apps/v1"), Ok("apps"));
        assert_eq!(group_of("v1"), Ok(""));
        assert!(group_of("a/b/c").is_err());
    }
}
