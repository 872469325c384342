//! The DaemonSet controller (kubernetes `pkg/controller/daemon/daemon_controller.go`,
//! `update.go`, `util/daemonset_util.go`, 1.32): one pod per node that should run it
//! ([`node_should_run`]: the template's node name, node selector and required node affinity,
//! the node's taints against the template's tolerations and the ones every daemon pod gets,
//! [`add_or_update_daemon_pod_tolerations`]). Pods are created with a node affinity naming
//! their node ([`replace_node_name_node_affinity`]) and bound by the scheduler, labelled with
//! the current ControllerRevision's `controller-revision-hash`; failed pods are deleted (under
//! a per-node back-off) and made again, surplus pods and pods on nodes that should not run
//! them deleted. A `RollingUpdate` replaces out-of-date pods within `maxUnavailable` (deleting
//! first) or `maxSurge` (creating first); `OnDelete` waits for the user to delete them. The
//! template's history is kept as ControllerRevisions (`constructHistory`, `dedupCurHistories`,
//! `cleanupHistory` within `revisionHistoryLimit`), and the status counts what runs where.
//!
//! [`plan`] decides over the DaemonSet, the nodes and its pods and is tested without a
//! server; [`DaemonSetController`] claims pods and revisions, keeps the history and carries the
//! plan out on the work queue, with expectations as the ReplicaSet controller has them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::expectations::Expectations;
use super::informer::{index, node_name, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref, reference};
use super::nodeaffinity::{self, RequiredNodeAffinity};
use super::queue::{self, Action, Plan};
use super::replicaset::{available, ready_since};
use super::{get_typed, refmanager, res};
use crate::errors::{ApiError, Cause};
use crate::objects::{Objects, User};
use crate::validation::{
    go_int_or_string, int_or_percent_value, not_more_than_100_percent, validate_int_or_percent,
};

/// daemon_controller.go `BurstReplicas`: the most pods created (and deleted) in one sync.
pub const BURST_REPLICAS: usize = 250;
/// `apps.DefaultDaemonSetUniqueLabelKey`: the revision hash, on pods and revisions.
pub use super::history::POD_REVISION_HASH_LABEL as HASH_LABEL;
/// `extensions.DaemonSetTemplateGenerationKey`: the template generation a pod was made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation an apps/v1 DaemonSet carries its template generation in
/// (`appsv1.DeprecatedTemplateGeneration`).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The failed-pod back-off (`failedPodsBackoff: flowcontrol.NewBackOff(1s, 15m)`).
pub const FAILED_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// The longest failed-pod back-off.
pub const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// `util.AddOrUpdateDaemonPodTolerations`: every daemon pod tolerates a node that is not ready
/// or unreachable (`NoExecute`), under disk, memory or PID pressure, cordoned, and — with
/// host networking — without a network (`NoSchedule`). A toleration the spec has with the
/// same key, operator, value and effect is replaced (`AddOrUpdateTolerationInPodSpec`).
pub fn add_or_update_daemon_pod_tolerations(spec: &mut PodSpec) {
    let mut add = vec![
        (nodeaffinity::TAINT_NOT_READY, "NoExecute"),
        (nodeaffinity::TAINT_UNREACHABLE, "NoExecute"),
        (nodeaffinity::TAINT_DISK_PRESSURE, "NoSchedule"),
        (nodeaffinity::TAINT_MEMORY_PRESSURE, "NoSchedule"),
        (nodeaffinity::TAINT_PID_PRESSURE, "NoSchedule"),
        (nodeaffinity::TAINT_UNSCHEDULABLE, "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        add.push((nodeaffinity::TAINT_NETWORK_UNAVAILABLE, "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in add {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Default::default()
        };
        // `Toleration.MatchToleration`: key, effect, operator and value compared as Go
        // strings (an absent one is "")
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let same = |o: &Toleration| {
            s(&o.key) == s(&t.key)
                && s(&o.effect) == s(&t.effect)
                && s(&o.operator) == s(&t.operator)
                && s(&o.value) == s(&t.value)
        };
        let mut updated = false;
        for o in tolerations.iter_mut().filter(|o| same(o)) {
            *o = t.clone();
            updated = true;
        }
        if !updated {
            tolerations.push(t);
        }
    }
}

/// `util.ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes one term
/// naming `node` (`matchFields` `metadata.name In [node]`); the rest of the affinity stays.
pub fn replace_node_name_node_affinity(affinity: Option<Affinity>, node: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: nodeaffinity::OBJECT_NAME_FIELD.into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        ..Default::default()
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    affinity
}

/// `util.GetTargetNodeName`: the node a pod is bound to, or the one its node affinity names
/// (the first `matchFields` `metadata.name In [one value]`).
pub fn target_node_name(pod: &Pod) -> Option<&str> {
    let n = node_name(pod);
    if !n.is_empty() {
        return Some(n);
    }
    let terms = &pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for t in terms {
        for e in t.match_fields.iter().flatten() {
            if e.key == nodeaffinity::OBJECT_NAME_FIELD && e.operator == "In" {
                return match e.values.as_deref() {
                    Some([v]) => Some(v.as_str()),
                    _ => None,
                };
            }
        }
    }
    None
}

fn template_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default()
}

/// `NodeShouldRunDaemonPod`: (should run, should continue running). A node the template
/// names otherwise, or whose labels or name the pod's required node affinity and node
/// selector do not match, runs nothing; an untolerated `NoSchedule`/`NoExecute` taint (the
/// daemon tolerations added, [`add_or_update_daemon_pod_tolerations`]) keeps a new pod off,
/// and only an untolerated `NoExecute` one stops a running pod.
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let mut spec = template_spec(ds);
    let name = kinds::name(&node.metadata);
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    add_or_update_daemon_pod_tolerations(&mut spec);
    // `predicates`: the node name fits (set above), the affinity (parse errors ignored)
    if !RequiredNodeAffinity::of_spec(&spec).matches(node) {
        return (false, false);
    }
    let taints = nodeaffinity::effective_taints(node);
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if nodeaffinity::find_matching_untolerated_taint(
        &taints,
        tolerations,
        nodeaffinity::schedule_or_execute,
    )
    .is_some()
    {
        let evicted = nodeaffinity::find_matching_untolerated_taint(&taints, tolerations, |t| {
            t.effect == "NoExecute"
        })
        .is_some();
        return (false, !evicted);
    }
    (true, true)
}

/// `util.GetTemplateGeneration`: the generation in [`TEMPLATE_GENERATION_ANNOTATION`], when it
/// parses.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// `util.IsPodUpdated`: the pod carries the current revision's hash, or the template
/// generation.
pub fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let label = |k: &str| pod.metadata.labels.as_ref().and_then(|l| l.get(k));
    let template_matches =
        generation.is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
    let hash_matches = !hash.is_empty() && label(HASH_LABEL).map(String::as_str) == Some(hash);
    hash_matches || template_matches
}

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let st = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if st.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    st.rolling_update.as_ref()
}

/// `util.SurgeCount`: `maxSurge` of `desired` (rounded up); none without a rolling update.
pub fn surge_count(ds: &DaemonSet, desired: i64) -> i64 {
    rolling(ds).map_or(0, |r| {
        super::deployment::scaled(r.max_surge.as_ref(), desired, true)
    })
}

/// `util.UnavailableCount`: `maxUnavailable` of `desired` (rounded up).
pub fn unavailable_count(ds: &DaemonSet, desired: i64) -> i64 {
    rolling(ds).map_or(0, |r| {
        super::deployment::scaled(r.max_unavailable.as_ref(), desired, true)
    })
}

/// `util.AllowsSurge`.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1) != 0
}

/// The pod made for `node` (`util.CreatePodTemplate` and `GetPodFromTemplate`): the template
/// with the daemon tolerations, the template generation and revision hash labels, the node
/// affinity naming the node (no `nodeName`: the scheduler binds it), `generateName` the
/// DaemonSet's name and the DaemonSet as controller.
pub fn pod_for_node(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let tpl = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tm = tpl.metadata.unwrap_or_default();
    let mut spec = tpl.spec.unwrap_or_default();
    add_or_update_daemon_pod_tolerations(&mut spec);
    spec.affinity = Some(replace_node_name_node_affinity(spec.affinity.take(), node));
    let mut labels = tm.labels.unwrap_or_default();
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(HASH_LABEL.into(), hash.to_string());
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", kinds::name(&ds.metadata))),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(tm.annotations.unwrap_or_default()),
            finalizers: tm.finalizers,
            owner_references: Some(vec![new_controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `getPatch`: what a revision stores — the template, to be put back whole
/// (`{"spec": {"template": {…, "$patch": "replace"}}}`).
pub fn history_patch(ds: &DaemonSet) -> Value {
    let mut template = ds
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.template).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(m) = template.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// `Match`: whether `rev` stores the DaemonSet's current template.
pub fn revision_matches(ds: &DaemonSet, rev: &ControllerRevision) -> bool {
    rev.data.as_ref().map(|d| &d.0) == Some(&history_patch(ds))
}

/// The revision hash of the template (`controller.ComputeHash(&ds.Spec.Template,
/// ds.Status.CollisionCount)`).
pub fn template_hash(ds: &DaemonSet) -> String {
    let template = ds
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.template).ok())
        .unwrap_or(Value::Null);
    let collisions = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    super::pod_template_hash(&template, i64::from(collisions))
}

/// The revision `snapshot` creates: named `<daemonset>-<hash>`, the template's labels with the
/// hash, the DaemonSet's annotations (`kubernetes.io/change-cause` shows in `kubectl rollout
/// history`), controlled by the DaemonSet.
pub fn snapshot(ds: &DaemonSet, revision: i64) -> ControllerRevision {
    let hash = template_hash(ds);
    let mut labels = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", kinds::name(&ds.metadata))),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![new_controller_ref(ds)]),
            ..Default::default()
        },
        data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(
            history_patch(ds),
        )),
        revision,
    }
}

/// The failed-pod back-off per DaemonSet, generation and node (`flowcontrol.Backoff`: 1 s
/// doubling up to 15 min; an entry not touched for twice the maximum starts over).
#[derive(Debug, Default)]
pub struct FailedBackoff {
    entries: HashMap<String, (Duration, jiff::Timestamp)>,
}

impl FailedBackoff {
    /// `IsInBackOffSinceUpdate`.
    pub fn in_backoff(&self, key: &str, now: jiff::Timestamp) -> Option<Duration> {
        let (delay, at) = self.entries.get(key)?;
        let since = now.duration_since(*at);
        let since = Duration::try_from(since).unwrap_or_default();
        (since < *delay).then(|| *delay - since)
    }

    /// `Next`: the back-off doubles (or starts at 1 s).
    pub fn next(&mut self, key: &str, now: jiff::Timestamp) {
        // `GC`: expired entries go
        let expired = |at: &jiff::Timestamp| {
            Duration::try_from(now.duration_since(*at)).unwrap_or_default() > 2 * FAILED_BACKOFF_MAX
        };
        self.entries.retain(|_, (_, at)| !expired(at));
        let delay = match self.entries.get(key) {
            Some((d, _)) => (*d * 2).min(FAILED_BACKOFF_MAX),
            None => FAILED_BACKOFF_INITIAL,
        };
        self.entries.insert(key.to_string(), (delay, now));
    }
}

/// `podByCreationTimestampAndPhase`: scheduled first, then oldest, then by name.
fn creation_order(p: &Pod) -> impl Ord + '_ {
    (
        node_name(p).is_empty(),
        p.metadata.creation_timestamp.clone(),
        kinds::name(&p.metadata),
    )
}

fn phase(p: &Pod) -> &str {
    kinds::pod_phase(p)
}

fn ready(p: &Pod) -> bool {
    ready_since(p).is_some()
}

/// The writes one sync decides, with the pods it deletes as (name, uid).
#[derive(Default)]
struct Writes {
    create: Vec<String>,
    delete: Vec<String>,
}

/// Syncs one DaemonSet at `now`: `nodes` all nodes; `pods` the pods it controls (with their
/// target node: bound, or named by their affinity); `hash` the current revision's;
/// `old_revisions` the other revisions it controls; `manage` false while earlier creations or
/// deletions are not yet observed (then only the status is written, without
/// `observedGeneration`).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    hash: &str,
    old_revisions: &[Arc<ControllerRevision>],
    manage: bool,
    backoff: &mut FailedBackoff,
    now: jiff::Timestamp,
) -> Plan {
    let mut p = Plan::default();
    let ns = kinds::namespace(&ds.metadata).to_string();
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    // getNodesToDaemonPods: terminal pods being deleted are done with
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        let terminal = matches!(phase(pod), "Succeeded" | "Failed");
        if terminal && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(n) = target_node_name(pod) {
            by_node.entry(n).or_default().push(pod);
        }
    }
    for v in by_node.values_mut() {
        v.sort_by(|a, b| creation_order(a).cmp(&creation_order(b)));
    }
    let by_name: HashMap<&str, &Pod> = pods
        .iter()
        .map(|p| (kinds::name(&p.metadata), &**p))
        .collect();
    let should: HashMap<&str, (bool, bool)> = nodes
        .iter()
        .map(|n| (kinds::name(&n.metadata), node_should_run(n, ds)))
        .collect();
    let mut requeue: Option<Duration> = None;
    let mut later = |d: Duration| {
        requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    };
    if manage {
        let mut w = Writes::default();
        let mut events = vec![];
        // manage: podsShouldBeOnNode for every node
        for node in nodes {
            let name = kinds::name(&node.metadata);
            let (should_run, should_continue) = should[name];
            let daemon_pods = by_node.get(name);
            match daemon_pods {
                None if should_run => w.create.push(name.to_string()),
                _ if should_continue => {
                    let mut running: Vec<&Pod> = vec![];
                    for pod in daemon_pods.into_iter().flatten() {
                        if pod.metadata.deletion_timestamp.is_some() {
                            continue;
                        }
                        let pn = kinds::name(&pod.metadata);
                        match phase(pod) {
                            "Failed" => {
                                // fighting a kubelet that rejects the pod: back off
                                let key = format!(
                                    "{}/{}/{name}",
                                    kinds::uid(&ds.metadata),
                                    ds.status
                                        .as_ref()
                                        .and_then(|s| s.observed_generation)
                                        .unwrap_or(0)
                                );
                                if let Some(left) = backoff.in_backoff(&key, now) {
                                    later(left);
                                    continue;
                                }
                                backoff.next(&key, now);
                                events.push(("Warning", "FailedDaemonPod", format!("Found failed daemon pod {ns}/{pn} on node {name}, will try to kill it")));
                                w.delete.push(pn.to_string());
                            }
                            "Succeeded" => {
                                events.push(("Normal", "SucceededDaemonPod", format!("Found succeeded daemon pod {ns}/{pn} on node {name}, will try to delete it")));
                                w.delete.push(pn.to_string());
                            }
                            _ => running.push(pod),
                        }
                    }
                    if !allows_surge(ds) {
                        // one pod per node: all but the oldest go
                        w.delete.extend(
                            running
                                .iter()
                                .skip(1)
                                .map(|p| kinds::name(&p.metadata).to_string()),
                        );
                    } else if running.is_empty() {
                        if should_run {
                            w.create.push(name.to_string());
                        }
                    } else if running.len() > 1 {
                        // surging: the oldest new pod and the oldest old pod may both run
                        let (mut newest, mut oldest) = (None::<&Pod>, None::<&Pod>);
                        for pod in &running {
                            let slot = if pod
                                .metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(HASH_LABEL))
                                .map(String::as_str)
                                == Some(hash)
                            {
                                &mut newest
                            } else {
                                &mut oldest
                            };
                            if slot.is_none() {
                                *slot = Some(pod);
                            } else {
                                w.delete.push(kinds::name(&pod.metadata).to_string());
                            }
                        }
                        if let (Some(new), Some(old)) = (newest, oldest) {
                            if !ready(old) || available(new, min_ready, now) {
                                w.delete.push(kinds::name(&old.metadata).to_string());
                            }
                        }
                    }
                }
                Some(daemon_pods) if !should_continue => {
                    w.delete.extend(
                        daemon_pods
                            .iter()
                            .filter(|p| p.metadata.deletion_timestamp.is_none())
                            .map(|p| kinds::name(&p.metadata).to_string()),
                    );
                }
                _ => {}
            }
        }
        // getUnscheduledPodsWithoutNode: pods waiting for a node that is gone
        for (n, ps) in &by_node {
            if should.contains_key(n) {
                continue;
            }
            w.delete.extend(
                ps.iter()
                    .filter(|p| node_name(p).is_empty())
                    .map(|p| kinds::name(&p.metadata).to_string()),
            );
        }
        for (etype, reason, message) in events {
            p.actions.push(Action::Event {
                about: reference(ds),
                etype,
                reason,
                message,
            });
        }
        let manage_wrote = !w.create.is_empty() || !w.delete.is_empty();
        if !manage_wrote {
            // the rolling update runs once manage has nothing left to do (its expectations,
            // set by the writes above, would not be satisfied otherwise)
            if rolling(ds).is_some() {
                w = rolling_update(ds, nodes, &should, &by_node, hash, min_ready, now);
            }
        }
        sync_nodes(&mut p, ds, hash, &w, &by_name);
        cleanup_history(&mut p, ds, pods, old_revisions);
    }
    // updateDaemonSetStatus, over the pods as they were read
    let generation = template_generation(ds);
    let (mut desired, mut current, mut mis, mut nready, mut updated, mut avail) =
        (0, 0, 0, 0, 0, 0);
    for node in nodes {
        let name = kinds::name(&node.metadata);
        let (should_run, _) = should[name];
        let scheduled = by_node.get(name).filter(|v| !v.is_empty());
        if should_run {
            desired += 1;
            let Some(ps) = scheduled else { continue };
            current += 1;
            let pod = ps[0];
            if ready(pod) {
                nready += 1;
                if available(pod, min_ready, now) {
                    avail += 1;
                }
            }
            if is_pod_updated(pod, hash, generation) {
                updated += 1;
            }
        } else if scheduled.is_some() {
            mis += 1;
        }
    }
    let unavailable = desired - avail;
    let mut status = ds.status.clone().unwrap_or_default();
    let old = status.clone();
    status.desired_number_scheduled = desired;
    status.current_number_scheduled = current;
    status.number_misscheduled = mis;
    status.number_ready = nready;
    status.updated_number_scheduled = Some(updated);
    status.number_available = Some(avail);
    status.number_unavailable = Some(unavailable);
    let generation_seen =
        old.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0);
    // storeDaemonSetStatus: nothing to write when the counts are the same and the generation
    // seen
    let same = old.desired_number_scheduled == desired
        && old.current_number_scheduled == current
        && old.number_misscheduled == mis
        && old.number_ready == nready
        && old.updated_number_scheduled.unwrap_or(0) == updated
        && old.number_available.unwrap_or(0) == avail
        && old.number_unavailable.unwrap_or(0) == unavailable
        && generation_seen;
    if !same {
        if manage {
            status.observed_generation = ds.metadata.generation;
        }
        let mut n = ds.clone();
        n.status = Some(status);
        p.actions.push(Action::Update {
            r: res("daemonsets"),
            obj: n.into(),
            status: true,
        });
    }
    // resync after minReadySeconds, against clock skew
    if min_ready > 0 && nready != avail {
        later(Duration::from_secs(min_ready as u64));
    }
    p.requeue_after = requeue;
    p
}

/// `rollingUpdate`: the out-of-date pods to delete (not surging: within `maxUnavailable`) or
/// the nodes to start a new pod on beside the old one (surging: within `maxSurge`; the old
/// pod goes once the new one is available).
fn rolling_update<'a>(
    ds: &DaemonSet,
    nodes: &'a [Arc<Node>],
    should: &HashMap<&str, (bool, bool)>,
    by_node: &BTreeMap<&'a str, Vec<&'a Pod>>,
    hash: &str,
    min_ready: i64,
    now: jiff::Timestamp,
) -> Writes {
    let generation = template_generation(ds);
    // updatedDesiredNodeCounts: every node that should run a pod is considered, with or
    // without pods
    let mut node_pods: BTreeMap<&'a str, Vec<&'a Pod>> = by_node.clone();
    let mut desired = 0i64;
    for n in nodes {
        let name = kinds::name(&n.metadata);
        if should[name].0 {
            desired += 1;
            node_pods.entry(name).or_default();
        }
    }
    let mut max_unavailable = unavailable_count(ds, desired);
    let max_surge = surge_count(ds, desired);
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let is_available = |p: &Pod| available(p, min_ready, now);
    let split = |pods: &[&'a Pod]| find_updated_pods_on_node(pods, hash, generation);
    let name_of = |p: &Pod| kinds::name(&p.metadata).to_string();
    let mut w = Writes::default();
    if max_surge == 0 {
        let mut num_unavailable = 0i64;
        let mut allowed = vec![];
        let mut candidates = vec![];
        for pods in node_pods.values() {
            let Some((new, old)) = split(pods) else {
                num_unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => num_unavailable += 1,
                (Some(new), None) => {
                    if !is_available(new) {
                        num_unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !is_available(old) {
                        allowed.push(name_of(old));
                        num_unavailable += 1;
                    } else if num_unavailable < max_unavailable {
                        candidates.push(name_of(old));
                    }
                }
            }
        }
        let remaining = (max_unavailable - num_unavailable).clamp(0, candidates.len() as i64);
        w.delete = allowed;
        w.delete
            .extend(candidates.into_iter().take(remaining as usize));
        return w;
    }
    let mut should_not_run = vec![];
    let mut candidate_nodes = vec![];
    let mut allowed_nodes = vec![];
    let (mut num_surge, mut num_available) = (0i64, 0i64);
    for (node, pods) in &node_pods {
        let Some((new, old)) = split(pods) else {
            num_surge += 1;
            continue;
        };
        if let Some(p) = old.or(new) {
            if is_available(p) {
                num_available += 1;
            }
        }
        let runs_here = should.get(node).is_some_and(|s| s.0);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !is_available(old) {
                    if !runs_here {
                        w.delete.push(name_of(old));
                    } else {
                        allowed_nodes.push(node.to_string());
                    }
                } else if !runs_here {
                    should_not_run.push(name_of(old));
                } else if num_surge < max_surge {
                    candidate_nodes.push(node.to_string());
                }
            }
            (Some(new), Some(old)) => {
                if !is_available(new) {
                    num_surge += 1;
                } else {
                    w.delete.push(name_of(old));
                }
            }
        }
    }
    // with surge the owner expects full availability: a pod on a node that should no longer
    // run it goes only when more pods are available than desired
    let deletable = (num_available - desired).clamp(0, should_not_run.len() as i64);
    w.delete
        .extend(should_not_run.into_iter().take(deletable as usize));
    let remaining = (max_surge - num_surge).clamp(0, candidate_nodes.len() as i64);
    w.create = allowed_nodes;
    w.create
        .extend(candidate_nodes.into_iter().take(remaining as usize));
    w
}

/// `findUpdatedPodsOnNode`: the node's new and old pod (not terminating), none when it has
/// more than one of either.
#[allow(clippy::type_complexity)]
fn find_updated_pods_on_node<'a>(
    pods: &[&'a Pod],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_pod_updated(p, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*p);
    }
    Some((new, old))
}

/// `syncNodes`: at most [`BURST_REPLICAS`] creations (each a pod for its node) and deletions,
/// with the events upstream's pod control records.
fn sync_nodes(p: &mut Plan, ds: &DaemonSet, hash: &str, w: &Writes, by_name: &HashMap<&str, &Pod>) {
    let ns = kinds::namespace(&ds.metadata).to_string();
    for node in w.create.iter().take(BURST_REPLICAS) {
        p.actions.push(Action::Create {
            r: res("pods"),
            ns: ns.clone(),
            obj: pod_for_node(ds, hash, node).into(),
            report: Some(reference(ds)),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for pn in w
        .delete
        .iter()
        .filter(|n| seen.insert(*n))
        .take(BURST_REPLICAS)
    {
        p.actions.push(Action::Delete {
            r: res("pods"),
            ns: ns.clone(),
            name: pn.clone(),
            propagation: None,
            uid: by_name
                .get(pn.as_str())
                .map(|p| kinds::uid(&p.metadata).to_string()),
        });
        p.actions.push(Action::Event {
            about: reference(ds),
            etype: "Normal",
            reason: "SuccessfulDelete",
            message: format!("Deleted pod: {pn}"),
        });
    }
}

/// `cleanupHistory`: old revisions beyond `revisionHistoryLimit` (default 10) go, oldest
/// first, except those a pod (a terminal one being deleted included) still carries the hash
/// of.
fn cleanup_history(
    p: &mut Plan,
    ds: &DaemonSet,
    pods: &[Arc<Pod>],
    old: &[Arc<ControllerRevision>],
) {
    let keep = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut to_kill = old.len().saturating_sub(keep);
    if to_kill == 0 {
        return;
    }
    let live: std::collections::HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH_LABEL))
        .filter(|h| !h.is_empty())
        .map(String::as_str)
        .collect();
    let mut sorted: Vec<&Arc<ControllerRevision>> = old.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    for r in sorted {
        if to_kill == 0 {
            break;
        }
        let h = r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .map(String::as_str);
        if h.is_some_and(|h| live.contains(h)) {
            continue;
        }
        p.actions.push(Action::Delete {
            r: res("controllerrevisions"),
            ns: kinds::namespace(&ds.metadata).to_string(),
            name: kinds::name(&r.metadata).to_string(),
            propagation: None,
            uid: None,
        });
        to_kill -= 1;
    }
}

/// The controller's name (events, logs).
pub const COMPONENT: &str = "daemonset-controller";

/// The DaemonSet controller over the shared informers.
pub struct DaemonSetController {
    daemonsets: Typed<DaemonSet>,
    pods: Typed<Pod>,
    nodes: Typed<Node>,
    revisions: Typed<ControllerRevision>,
    expect: Expectations,
    backoff: FailedBackoff,
    /// The node each unbound daemon pod was made for, by pod UID: the cache keeps no pod
    /// affinity, so a pod read once (or created here) is not read again.
    targets: HashMap<String, String>,
}

fn selector_of(ds: &DaemonSet) -> Option<&LabelSelector> {
    ds.spec.as_ref().map(|s| &s.selector)
}

impl DaemonSetController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> DaemonSetController {
        DaemonSetController {
            daemonsets: informers.of::<DaemonSet>(),
            pods: informers.of::<Pod>(),
            nodes: informers.of::<Node>(),
            revisions: informers.of::<ControllerRevision>(),
            expect: Expectations::default(),
            backoff: FailedBackoff::default(),
            targets: HashMap::new(),
        }
    }

    /// The claimed pods with their target node known: the cache keeps a pod's required node
    /// affinity, so this reads from the API (once per pod) only for an unbound pod whose cached
    /// copy names no node there (one adopted without it).
    async fn with_targets(
        &mut self,
        objects: &Objects,
        pods: Vec<Arc<Pod>>,
    ) -> Result<Vec<Arc<Pod>>, ApiError> {
        let mut out = Vec::with_capacity(pods.len());
        for pod in pods {
            if target_node_name(&pod).is_some() {
                out.push(pod);
                continue;
            }
            let uid = kinds::uid(&pod.metadata).to_string();
            let target = match self.targets.get(&uid) {
                Some(t) => Some(t.clone()),
                None => {
                    let ns = kinds::namespace(&pod.metadata);
                    let full = get_typed::<Pod>(objects, ns, kinds::name(&pod.metadata)).await?;
                    let t = full.as_ref().and_then(target_node_name).map(str::to_string);
                    if let Some(t) = &t {
                        self.targets.insert(uid, t.clone());
                    }
                    t
                }
            };
            match target {
                Some(t) => {
                    let mut p = (*pod).clone();
                    let spec = p.spec.get_or_insert_with(Default::default);
                    spec.affinity = Some(replace_node_name_node_affinity(None, &t));
                    out.push(Arc::new(p));
                }
                None => out.push(pod),
            }
        }
        Ok(out)
    }

    /// `constructHistory`: the revisions the DaemonSet controls (claimed), labelled with their
    /// hash, split into the current one (made when missing, `snapshot`; duplicates removed,
    /// `dedupCurHistories`; its revision raised above the others) and the old ones. Returns the
    /// current hash and the old revisions.
    async fn construct_history(
        &mut self,
        objects: &Objects,
        ds: &DaemonSet,
        selector: &LabelSelector,
        pods: &[Arc<Pod>],
    ) -> Result<(String, Vec<Arc<ControllerRevision>>), ApiError> {
        let ns = kinds::namespace(&ds.metadata);
        let candidates = self.revisions.by_index(index::NAMESPACE, ns);
        let claim = refmanager::claim(ds, selector, &candidates)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        refmanager::apply_claim(objects, COMPONENT, ds, &claim).await?;
        let mut current = vec![];
        let mut old = vec![];
        for h in claim.claimed {
            let h = if h
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(HASH_LABEL))
            {
                h
            } else {
                // the hash label is the revision's name (no hash collision to mind)
                let mut n = (*h).clone();
                let name = kinds::name(&n.metadata).to_string();
                n.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(HASH_LABEL.into(), name.clone());
                let body = queue::Object::from(n)
                    .to_value()
                    .map_err(|e| ApiError::internal(format!("encoding the revision: {e}")))?;
                let stored = objects
                    .update(res("controllerrevisions"), ns, &name, body, None, false)
                    .await?;
                Arc::new(decode_revision(stored)?)
            };
            if revision_matches(ds, &h) {
                current.push(h);
            } else {
                old.push(h);
            }
        }
        let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let cur = if current.is_empty() {
            self.snapshot(objects, ds, next).await?
        } else {
            // dedupCurHistories: the highest revision stays; the pods get its hash
            let keep = current
                .iter()
                .fold(None::<&Arc<ControllerRevision>>, |k, c| match k {
                    Some(k) if k.revision > c.revision => Some(k),
                    _ => Some(c),
                })
                .cloned()
                .expect("one current revision");
            let keep_hash = hash_of(&keep).to_string();
            let mut actions = vec![];
            if current.len() > 1 {
                for pod in pods {
                    let has = pod.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL));
                    if has.map(String::as_str) != Some(keep_hash.as_str()) {
                        actions.push(Action::Patch {
                            r: res("pods"),
                            ns: ns.to_string(),
                            name: kinds::name(&pod.metadata).to_string(),
                            patch: json!({"metadata": {"labels": {HASH_LABEL: keep_hash}}}),
                        });
                    }
                }
                for c in &current {
                    if kinds::name(&c.metadata) != kinds::name(&keep.metadata) {
                        actions.push(Action::Delete {
                            r: res("controllerrevisions"),
                            ns: ns.to_string(),
                            name: kinds::name(&c.metadata).to_string(),
                            propagation: None,
                            uid: None,
                        });
                    }
                }
            }
            if keep.revision < next {
                let mut n = (*keep).clone();
                n.revision = next;
                actions.push(Action::Update {
                    r: res("controllerrevisions"),
                    obj: n.into(),
                    status: false,
                });
            }
            queue::apply(objects, COMPONENT, actions).await?;
            keep
        };
        Ok((hash_of(&cur).to_string(), old))
    }

    /// `snapshot`: creates the current revision. A revision of that name storing another
    /// template is a hash collision: the DaemonSet's `collisionCount` goes up (unless the count
    /// used was stale) and the sync fails, to run again with the new hash.
    async fn snapshot(
        &self,
        objects: &Objects,
        ds: &DaemonSet,
        revision: i64,
    ) -> Result<Arc<ControllerRevision>, ApiError> {
        let ns = kinds::namespace(&ds.metadata);
        let rev = snapshot(ds, revision);
        let name = kinds::name(&rev.metadata).to_string();
        let body = queue::Object::from(rev)
            .to_value()
            .map_err(|e| ApiError::internal(format!("encoding the revision: {e}")))?;
        let r = res("controllerrevisions");
        match objects.create(r, ns, body, &User::Admin, false).await {
            Ok(v) => Ok(Arc::new(decode_revision(v)?)),
            Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {
                let Some(existing) = get_typed::<ControllerRevision>(objects, ns, &name).await?
                else {
                    return Err(e);
                };
                if revision_matches(ds, &existing) {
                    return Ok(Arc::new(existing));
                }
                let Some(mut fresh) =
                    get_typed::<DaemonSet>(objects, ns, kinds::name(&ds.metadata)).await?
                else {
                    return Err(e);
                };
                let count = |d: &DaemonSet| d.status.as_ref().and_then(|s| s.collision_count);
                if count(&fresh) != count(ds) {
                    return Err(ApiError::internal(format!(
                        "found a stale collision count ({:?}, expected {:?}) of DaemonSet {:?} while processing; will retry until it is updated",
                        count(ds), count(&fresh), kinds::name(&ds.metadata)
                    )));
                }
                let st = fresh.status.get_or_insert_with(Default::default);
                st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                queue::apply(
                    objects,
                    COMPONENT,
                    vec![Action::Update {
                        r: res("daemonsets"),
                        obj: fresh.into(),
                        status: true,
                    }],
                )
                .await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

fn hash_of(r: &ControllerRevision) -> &str {
    r.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .map(String::as_str)
        .unwrap_or("")
}

fn decode_revision(v: Value) -> Result<ControllerRevision, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::internal(format!("decoding the revision: {e}")))
}

#[async_trait::async_trait]
impl queue::Controller for DaemonSetController {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.daemonsets.prefix().to_string(),
            self.pods.prefix().to_string(),
            self.nodes.prefix().to_string(),
            self.revisions.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if let Some(ds) = change.obj::<DaemonSet>() {
            let k = kinds::key_of(&ds.metadata);
            if change.deleted {
                self.expect.forget(&k);
            }
            return vec![k];
        }
        if let Some(node) = change.obj::<Node>() {
            // addNode / updateNode: the DaemonSets whose decision for the node changes
            let all = self.daemonsets.list();
            let keys = all.iter().filter(|ds| match change.old::<Node>() {
                _ if change.deleted => true,
                None => node_should_run(node, ds).0,
                Some(old) => node_should_run(old, ds) != node_should_run(node, ds),
            });
            return keys.map(|ds| kinds::key_of(&ds.metadata)).collect();
        }
        if let Some(rev) = change.obj::<ControllerRevision>() {
            let ns = kinds::namespace(&rev.metadata);
            let mut keys: Vec<String> = [Some(rev), change.old::<ControllerRevision>()]
                .into_iter()
                .flatten()
                .filter_map(|r| kinds::controller_of(&r.metadata, "DaemonSet"))
                .map(|(n, _)| format!("{ns}/{n}"))
                .collect();
            keys.dedup();
            for k in refmanager::orphan_keys(change, &self.daemonsets, selector_of) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            return keys;
        }
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        let uid = kinds::uid(&pod.metadata);
        if change.deleted || !node_name(pod).is_empty() {
            self.targets.remove(uid);
        }
        let orphans = refmanager::orphan_keys(change, &self.daemonsets, selector_of);
        self.expect
            .pod_change_keys(change, pod, "DaemonSet", orphans)
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .daemonsets
            .list()
            .iter()
            .map(|d| kinds::key_of(&d.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(ds) = self.daemonsets.get_named(ns, name) else {
            self.expect.forget(key);
            return Ok(None);
        };
        let selector = selector_of(&ds).cloned().unwrap_or_default();
        if refmanager::selector_is_empty(&selector) {
            super::record(
                objects,
                self.name(),
                &reference(&*ds),
                "Warning",
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            .await;
            return Ok(None);
        }
        // a DaemonSet being deleted: its revisions may be going, so its status is not
        // computed either
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        // getDaemonPods: the namespace's pods, claimed
        let candidates = self.pods.by_index(index::NAMESPACE, ns);
        let claim = match refmanager::claim(&*ds, &selector, &candidates) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(daemonset = %key, error = %e, "not synced: its selector does not convert");
                return Ok(None);
            }
        };
        refmanager::apply_claim(objects, self.name(), &*ds, &claim).await?;
        let pods = self.with_targets(objects, claim.claimed).await?;
        let (hash, old) = self
            .construct_history(objects, &ds, &selector, &pods)
            .await?;
        let manage = self.expect.satisfied(key);
        let nodes = self.nodes.list();
        let plan = plan(
            &ds,
            &nodes,
            &pods,
            &hash,
            &old,
            manage,
            &mut self.backoff,
            jiff::Timestamp::now(),
        );
        // syncDaemonSet: the status is written even when a pod write failed
        // (`updateDaemonSetStatus` after `updateDaemonSet`), and the first error returned
        let (status, writes): (Vec<Action>, Vec<Action>) = plan
            .actions
            .into_iter()
            .partition(|a| matches!(a, Action::Update { status: true, .. }));
        let mut observed = queue::Observed::default();
        let res = queue::apply_observed(objects, self.name(), writes, &mut observed).await;
        let status_res = queue::apply(objects, self.name(), status).await;
        if let (Err(_), Err(e)) = (&res, &status_res) {
            tracing::warn!(daemonset = %key, error = %e, "failed to update status");
        }
        for o in &observed.created {
            if let Ok(p) = serde_json::from_value::<Pod>(o.clone()) {
                if let Some(t) = target_node_name(&p) {
                    self.targets
                        .insert(kinds::uid(&p.metadata).to_string(), t.to_string());
                }
            }
        }
        self.expect.expect_unseen(key, &observed, &self.pods);
        res?;
        status_res?;
        Ok(plan.requeue_after)
    }
}

// ---------------------------------------------------------------------------------------------
// validation

fn nonnegative(obj: &Value, ptr: &str, field: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = obj.pointer(ptr).and_then(Value::as_i64) {
        if n < 0 {
            causes.push(Cause::invalid(
                field,
                n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// `ValidateDaemonSetUpdateStrategy` / `ValidateRollingUpdateDaemonSet`.
fn validate_update_strategy(obj: &Value, causes: &mut Vec<Cause>) {
    let st = obj.pointer("/spec/updateStrategy");
    let ty = st
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match ty {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = st
                .and_then(|s| s.get("rollingUpdate"))
                .filter(|v| !v.is_null())
            else {
                causes.push(Cause::required("spec.updateStrategy.rollingUpdate", ""));
                return;
            };
            let get = |k: &str| -> IntOrString {
                ru.get(k)
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or(IntOrString::Int(0))
            };
            let (mu, ms) = (get("maxUnavailable"), get("maxSurge"));
            let base = "spec.updateStrategy.rollingUpdate";
            validate_int_or_percent(&mu, &format!("{base}.maxUnavailable"), causes);
            validate_int_or_percent(&ms, &format!("{base}.maxSurge"), causes);
            not_more_than_100_percent(&mu, &format!("{base}.maxUnavailable"), causes);
            not_more_than_100_percent(&ms, &format!("{base}.maxSurge"), causes);
            let has_unavailable = int_or_percent_value(&mu) != 0;
            let has_surge = int_or_percent_value(&ms) != 0;
            if has_unavailable && has_surge {
                causes.push(Cause::invalid(
                    format!("{base}.maxSurge"),
                    go_int_or_string(&ms),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                causes.push(Cause::required(
                    format!("{base}.maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                ));
            }
        }
        other => {
            let ru = if st
                .and_then(|s| s.get("rollingUpdate"))
                .is_some_and(|v| !v.is_null())
            {
                "(*apps.RollingUpdateDaemonSet)(…)"
            } else {
                "(*apps.RollingUpdateDaemonSet)(nil)"
            };
            causes.push(Cause::not_supported(
                "spec.updateStrategy",
                format!("apps.DaemonSetUpdateStrategy{{Type:{other:?}, RollingUpdate:{ru}}}"),
                &["RollingUpdate", "OnDelete"],
            ))
        }
    }
}

/// Go's `%#v` of a `v1.LabelSelector` given as JSON (how `field.Invalid` prints one): an absent
/// map or list is `nil`, an empty one `{}`.
fn go_label_selector(sel: Option<&Value>) -> String {
    let ml = match sel
        .and_then(|s| s.get("matchLabels"))
        .filter(|m| !m.is_null())
    {
        Some(m) => super::job::go_map(Some(m)),
        None => "map[string]string(nil)".into(),
    };
    let me = match sel
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
    {
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let f = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let values = match e.get("values").and_then(Value::as_array) {
                        Some(vs) => {
                            let vs: Vec<String> = vs
                                .iter()
                                .map(|v| format!("{:?}", v.as_str().unwrap_or("")))
                                .collect();
                            format!("[]string{{{}}}", vs.join(", "))
                        }
                        None => "[]string(nil)".into(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        f("key"),
                        f("operator")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".into(),
    };
    format!("v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")
}

/// `ValidateDaemonSet` / `ValidateDaemonSetUpdate` (pkg/apis/apps/validation/validation.go)
/// and the strategy's immutable selector (pkg/registry/apps/daemonset/strategy.go
/// `ValidateUpdate`), over the decoded and defaulted object: the selector (required, valid, not
/// empty, matching the template's labels), the pod template (`template`: its decoded spec,
/// `None` for a status write) with restart policy `Always` and no `activeDeadlineSeconds`,
/// `minReadySeconds`, the update strategy, `revisionHistoryLimit`. The status subresource
/// (`ValidateDaemonSetStatusUpdate`): non-negative counts and a collision count that does not
/// go down.
pub fn validate_daemonset_decoded(
    obj: &Value,
    old: Option<&Value>,
    template: Option<Option<&PodSpec>>,
) -> Vec<Cause> {
    let mut c = vec![];
    let Some(template) = template else {
        validate_status(obj, old, &mut c);
        return c;
    };
    // the typed spec always has a selector, so an absent one arrives as `{}`
    let sel = obj.pointer("/spec/selector").filter(|s| s.is_object());
    let labels = obj.pointer("/spec/template/metadata/labels");
    match sel {
        None => c.push(Cause::required("spec.selector", "")),
        Some(sel) => {
            let before = c.len();
            crate::validation::validate_label_selector(sel, "spec.selector", &mut c);
            let typed: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> =
                serde_json::from_value(sel.clone()).ok();
            let template_labels: Option<std::collections::BTreeMap<String, String>> =
                labels.and_then(|l| serde_json::from_value(l.clone()).ok());
            // a selector that does not convert is not matched (LabelSelectorAsSelector fails)
            if let Some(typed) = &typed {
                if c.len() == before
                    && super::refmanager::selects(typed, template_labels.as_ref()) == Ok(false)
                {
                    c.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        super::job::go_map(labels),
                        "`selector` does not match template `labels`",
                    ));
                }
                if super::refmanager::selector_is_empty(typed) {
                    c.push(Cause::invalid(
                        "spec.selector",
                        go_label_selector(Some(sel)),
                        "empty selector is invalid for daemonset",
                    ));
                }
            }
        }
    }
    match template {
        Some(spec) => {
            let allow = crate::quantities::old_spec_allows_indivisible_huge_pages(
                old,
                "/spec/template/spec",
            );
            crate::admission::validate_template_spec(
                spec,
                obj.pointer("/spec/template/metadata/annotations"),
                "spec.template.spec",
                allow,
                &mut c,
            );
            crate::admission::validate_long_running_template(spec, "DaemonSet", &mut c);
        }
        None => c.push(Cause::required("spec.template.spec.containers", "")),
    }
    nonnegative(obj, "/spec/minReadySeconds", "spec.minReadySeconds", &mut c);
    validate_update_strategy(obj, &mut c);
    nonnegative(
        obj,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        &mut c,
    );
    if let Some(old) = old {
        // `ValidateImmutableField`: `apiequality.Semantic.DeepEqual`, so an empty list or map
        // equals an absent one
        let (was, now) = (old.pointer("/spec/selector"), obj.pointer("/spec/selector"));
        if !crate::podupdate::semantic_eq(&was, &now) {
            c.push(Cause::invalid(
                "spec.selector",
                go_label_selector(now),
                "field is immutable",
            ));
        }
    }
    c
}

/// `ValidateDaemonSetStatusUpdate` (`validateDaemonSetStatus`, the collision count).
fn validate_status(obj: &Value, old: Option<&Value>, c: &mut Vec<Cause>) {
    for f in [
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
        "observedGeneration",
        "updatedNumberScheduled",
        "numberAvailable",
        "numberUnavailable",
        "collisionCount",
    ] {
        nonnegative(obj, &format!("/status/{f}"), &format!("status.{f}"), c);
    }
    let count = |v: &Value| v.pointer("/status/collisionCount").and_then(Value::as_i64);
    if let Some(old) = old {
        if let Some(was) = count(old) {
            let now = count(obj);
            if now.is_none_or(|n| n < was) {
                c.push(Cause::invalid(
                    "status.collisionCount",
                    now.unwrap_or(0).to_string(),
                    "cannot be decremented",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn ds_value() -> Value {
        json!({"metadata": {"name": "agent", "namespace": "a", "uid": "ds1", "generation": 2, "resourceVersion": "7"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Always",
                        "terminationMessagePolicy": "File"}],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"}}}})
    }

    fn ds() -> DaemonSet {
        serde_json::from_value(ds_value()).unwrap()
    }

    fn node(name: &str, labels: Value, taints: Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap(),
        )
    }

    fn nodes(names: &[&str]) -> Vec<Arc<Node>> {
        names
            .iter()
            .map(|n| node(n, json!({}), json!([])))
            .collect()
    }

    const T: &str = "2026-01-01T00:00:00Z";

    fn pod(
        name: &str,
        node: &str,
        hash: &str,
        phase: &str,
        ready: bool,
        created: &str,
    ) -> Arc<Pod> {
        let mut p = json!({"metadata": {"name": name, "namespace": "a", "uid": format!("u-{name}"), "creationTimestamp": created,
            "labels": {"app": "agent", HASH_LABEL: hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "uid": "ds1", "controller": true, "kind": "DaemonSet", "name": "agent"}]},
            "spec": {"containers": [], "nodeName": node}, "status": {"phase": phase}});
        if ready {
            p["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": T}]);
        }
        Arc::new(serde_json::from_value(p).unwrap())
    }

    fn run(ds: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>], hash: &str) -> Plan {
        plan(
            ds,
            nodes,
            pods,
            hash,
            &[],
            true,
            &mut FailedBackoff::default(),
            now(),
        )
    }

    fn created(p: &Plan) -> Vec<Pod> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    obj: queue::Object::Pod(p),
                    ..
                } => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn created_on(p: &Plan) -> Vec<String> {
        created(p)
            .iter()
            .map(|p| target_node_name(p).unwrap().to_string())
            .collect()
    }

    fn deleted(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, r, .. } if r.plural == "pods" => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn status(p: &Plan) -> k8s_openapi::api::apps::v1::DaemonSetStatus {
        p.actions
            .iter()
            .find_map(|a| match a {
                Action::Update {
                    obj: queue::Object::DaemonSet(d),
                    status: true,
                    ..
                } => d.status.clone(),
                _ => None,
            })
            .expect("a status write")
    }

    #[test]
    fn a_pod_per_node_with_affinity_tolerations_and_hash() {
        let p = run(&ds(), &nodes(&["n1", "n2"]), &[], "h1");
        assert_eq!(created_on(&p), ["n1", "n2"]);
        let pod = &created(&p)[0];
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name, None, "the scheduler binds daemon pods");
        let m = &pod.metadata;
        assert_eq!(m.generate_name.as_deref(), Some("agent-"));
        assert_eq!(m.labels.as_ref().unwrap()[HASH_LABEL], "h1");
        assert_eq!(m.owner_references.as_ref().unwrap()[0].kind, "DaemonSet");
        let tolerated: Vec<(&str, &str)> = spec
            .tolerations
            .iter()
            .flatten()
            .map(|t| (t.key.as_deref().unwrap(), t.effect.as_deref().unwrap()))
            .collect();
        assert_eq!(
            tolerated,
            [
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ]
        );
        let st = status(&p);
        assert_eq!(st.desired_number_scheduled, 2);
        assert_eq!(st.current_number_scheduled, 0);
        assert_eq!(st.number_unavailable, Some(2));
        assert_eq!(st.observed_generation, Some(2));
    }

    #[test]
    fn host_network_pods_tolerate_network_unavailable_and_own_tolerations_are_replaced() {
        let mut spec: PodSpec = serde_json::from_value(json!({"containers": [], "hostNetwork": true,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "value": "", "effect": "NoExecute", "tolerationSeconds": 7}]})).unwrap();
        add_or_update_daemon_pod_tolerations(&mut spec);
        let t = spec.tolerations.unwrap();
        // an empty value matches an absent one (`MatchToleration` compares strings)
        assert_eq!(t.len(), 7);
        assert_eq!(t[0].toleration_seconds, None);
        assert_eq!(t[1].toleration_seconds, None);
        assert_eq!(
            t[6].key.as_deref(),
            Some("node.kubernetes.io/network-unavailable")
        );
    }

    #[test]
    fn nodes_the_daemonset_does_not_fit_get_nothing() {
        let mut d = ds_value();
        d["spec"]["template"]["spec"]["nodeSelector"] = json!({"role": "edge"});
        let d: DaemonSet = serde_json::from_value(d).unwrap();
        let ns = vec![
            node("edge", json!({"role": "edge"}), json!([])),
            node("core", json!({}), json!([])),
            node(
                "tainted",
                json!({"role": "edge"}),
                json!([{"key": "k", "effect": "NoSchedule"}]),
            ),
        ];
        let p = run(&d, &ns, &[], "h1");
        assert_eq!(created_on(&p), ["edge"]);
        assert_eq!(status(&p).desired_number_scheduled, 1);
        // a tolerated taint lets it run there; a NoExecute one evicts a running pod, a
        // NoSchedule one does not
        let tol = |mut v: Value| {
            v["spec"]["template"]["spec"]["tolerations"] =
                json!([{"key": "k", "operator": "Exists"}]);
            serde_json::from_value::<DaemonSet>(v).unwrap()
        };
        assert_eq!(node_should_run(&ns[2], &tol(ds_value())), (true, true));
        assert_eq!(node_should_run(&ns[2], &ds()), (false, true));
        let evicting = node("e", json!({}), json!([{"key": "k", "effect": "NoExecute"}]));
        assert_eq!(node_should_run(&evicting, &ds()), (false, false));
        // required node affinity
        let mut aff = ds_value();
        aff["spec"]["template"]["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "role", "operator": "NotIn", "values": ["edge"]}]}]}}});
        let aff: DaemonSet = serde_json::from_value(aff).unwrap();
        assert_eq!(created_on(&run(&aff, &ns, &[], "h")), ["core"]);
        // the pod's own affinity is replaced by the node's name
        let made = &created(&run(&aff, &ns, &[], "h"))[0];
        let terms = &made
            .spec
            .as_ref()
            .unwrap()
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].match_expressions, None);
        // a not-ready node counts as tainted not-ready NoSchedule: not started there, kept
        let not_ready: Arc<Node> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "nr"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}}))
            .unwrap(),
        );
        assert_eq!(node_should_run(&not_ready, &ds()), (false, true));
        // and a node the template names is the only one
        let mut named = ds_value();
        named["spec"]["template"]["spec"]["nodeName"] = json!("core");
        let named: DaemonSet = serde_json::from_value(named).unwrap();
        assert_eq!(node_should_run(&ns[0], &named), (false, false));
    }

    #[test]
    fn surplus_misplaced_and_finished_pods_go() {
        let pods = vec![
            pod("old", "n1", "h1", "Running", true, "2026-01-01T00:00:01Z"),
            pod("dup", "n1", "h1", "Running", true, "2026-01-01T00:00:05Z"),
            pod("done", "n2", "h1", "Succeeded", false, T),
            pod("away", "gone", "h1", "Running", true, T),
            pod("ev", "evict", "h1", "Running", true, T),
        ];
        let mut unbound = (*pod("lost", "", "h1", "Pending", false, T)).clone();
        unbound.spec.as_mut().unwrap().affinity =
            Some(replace_node_name_node_affinity(None, "gone"));
        let mut all = pods.clone();
        all.push(Arc::new(unbound));
        let mut ns = nodes(&["n1", "n2"]);
        ns.push(node(
            "evict",
            json!({}),
            json!([{"key": "k", "effect": "NoExecute"}]),
        ));
        let p = run(&ds(), &ns, &all, "h1");
        // the duplicate on n1, the succeeded pod on n2, the pod on a node that evicts it, the
        // unbound pod for a gone node (a bound one there is the pod GC's)
        assert_eq!(deleted(&p), ["dup", "done", "ev", "lost"]);
        assert!(
            created_on(&p).is_empty(),
            "n2 gets a new pod once the old one is gone"
        );
        assert!(p.actions.iter().any(|a| matches!(
            a,
            Action::Event {
                reason: "SucceededDaemonPod",
                ..
            }
        )));
        let st = status(&p);
        assert_eq!(st.desired_number_scheduled, 2);
        assert_eq!(st.current_number_scheduled, 2);
        assert_eq!(st.number_misscheduled, 1);
        assert_eq!(st.number_ready, 1);
    }

    #[test]
    fn failed_pods_are_deleted_under_a_back_off() {
        let pods = vec![pod("bad", "n1", "h1", "Failed", false, T)];
        let mut backoff = FailedBackoff::default();
        let d = ds();
        let p = plan(
            &d,
            &nodes(&["n1"]),
            &pods,
            "h1",
            &[],
            true,
            &mut backoff,
            now(),
        );
        assert_eq!(deleted(&p), ["bad"]);
        assert!(p.actions.iter().any(
            |a| matches!(a, Action::Event { reason: "FailedDaemonPod", message, .. }
            if message == "Found failed daemon pod a/bad on node n1, will try to kill it")
        ));
        // the next failure on that node within the back-off waits
        let again = vec![pod("bad2", "n1", "h1", "Failed", false, T)];
        let p = plan(
            &d,
            &nodes(&["n1"]),
            &again,
            "h1",
            &[],
            true,
            &mut backoff,
            now(),
        );
        assert!(deleted(&p).is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
        let later = now() + jiff::SignedDuration::from_secs(2);
        let p = plan(
            &d,
            &nodes(&["n1"]),
            &again,
            "h1",
            &[],
            true,
            &mut backoff,
            later,
        );
        assert_eq!(deleted(&p), ["bad2"]);
        // doubled
        let p = plan(
            &d,
            &nodes(&["n1"]),
            &again,
            "h1",
            &[],
            true,
            &mut backoff,
            later,
        );
        assert_eq!(p.requeue_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn rolling_update_replaces_within_max_unavailable() {
        let ns = nodes(&["n1", "n2", "n3"]);
        let pods = vec![
            pod("p1", "n1", "old", "Running", true, T),
            pod("p2", "n2", "old", "Running", true, T),
            pod("p3", "n3", "old", "Running", true, T),
        ];
        let p = run(&ds(), &ns, &pods, "new");
        assert_eq!(deleted(&p), ["p1"]);
        assert_eq!(status(&p).updated_number_scheduled, Some(0));
        // an unavailable new pod uses up the budget
        let pods2 = vec![
            pod("q1", "n1", "new", "Running", false, T),
            pod("p2", "n2", "old", "Running", true, T),
            pod("p3", "n3", "old", "Running", true, T),
        ];
        assert!(deleted(&run(&ds(), &ns, &pods2, "new")).is_empty());
        // 2 of 3 (rounded up from 50%) at once
        let mut wide = ds_value();
        wide["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!("50%");
        let wide: DaemonSet = serde_json::from_value(wide).unwrap();
        assert_eq!(deleted(&run(&wide, &ns, &pods, "new")), ["p1", "p2"]);
        // OnDelete leaves old pods alone
        let mut od = ds_value();
        od["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        let od: DaemonSet = serde_json::from_value(od).unwrap();
        assert!(deleted(&run(&od, &ns, &pods, "new")).is_empty());
        // not while earlier writes are unobserved
        let p = plan(
            &ds(),
            &ns,
            &pods,
            "new",
            &[],
            false,
            &mut FailedBackoff::default(),
            now(),
        );
        assert!(deleted(&p).is_empty());
        assert_eq!(status(&p).observed_generation, None);
    }

    #[test]
    fn rolling_update_with_surge_creates_first() {
        let mut sv = ds_value();
        sv["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": 1});
        let d: DaemonSet = serde_json::from_value(sv).unwrap();
        let ns = nodes(&["n1", "n2"]);
        let pods = vec![
            pod("p1", "n1", "old", "Running", true, T),
            pod("p2", "n2", "old", "Running", true, T),
        ];
        let p = run(&d, &ns, &pods, "new");
        assert_eq!(created_on(&p), ["n1"]);
        assert!(deleted(&p).is_empty());
        // the new pod is available: the old one on its node goes, the next node surges
        let pods = vec![
            pod("p1", "n1", "old", "Running", true, T),
            pod("q1", "n1", "new", "Running", true, "2026-01-01T00:00:09Z"),
            pod("p2", "n2", "old", "Running", true, T),
        ];
        let p = run(&d, &ns, &pods, "new");
        assert_eq!(deleted(&p), ["p1"]);
    }

    #[test]
    fn old_revisions_beyond_the_limit_go_unless_a_pod_uses_them() {
        let rev = |name: &str, n: i64, hash: &str| {
            Arc::new(ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some([(HASH_LABEL.to_string(), hash.to_string())].into()),
                    ..Default::default()
                },
                revision: n,
                data: None,
            })
        };
        let old = vec![rev("r3", 3, "c"), rev("r1", 1, "a"), rev("r2", 2, "b")];
        let mut d = ds_value();
        d["spec"]["revisionHistoryLimit"] = json!(1);
        let d: DaemonSet = serde_json::from_value(d).unwrap();
        let pods = vec![pod("p1", "n1", "a", "Running", true, T)];
        let p = plan(
            &d,
            &nodes(&["n1"]),
            &pods,
            "a",
            &old,
            true,
            &mut FailedBackoff::default(),
            now(),
        );
        let gone: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { r, name, .. } if r.plural == "controllerrevisions" => {
                    Some(name.as_str())
                }
                _ => None,
            })
            .collect();
        // oldest first; r1 is what a pod runs
        assert_eq!(gone, ["r2", "r3"]);
    }

    #[test]
    fn a_settled_daemonset_writes_nothing() {
        let mut d = ds();
        let ns = nodes(&["n1"]);
        let pods = vec![pod("p1", "n1", "h1", "Running", true, T)];
        let p = run(&d, &ns, &pods, "h1");
        let st = status(&p);
        assert_eq!(st.number_available, Some(1));
        assert_eq!(st.updated_number_scheduled, Some(1));
        d.status = Some(st);
        assert!(run(&d, &ns, &pods, "h1").actions.is_empty());
    }

    #[test]
    fn revisions_store_the_template() {
        let d = ds();
        let r = snapshot(&d, 3);
        assert!(revision_matches(&d, &r));
        assert_eq!(r.revision, 3);
        let hash = template_hash(&d);
        assert_eq!(
            r.metadata.name.as_deref(),
            Some(format!("agent-{hash}").as_str())
        );
        assert_eq!(r.metadata.labels.as_ref().unwrap()[HASH_LABEL], hash);
        assert_eq!(
            r.data.as_ref().unwrap().0["spec"]["template"]["$patch"],
            "replace"
        );
        let mut changed = ds_value();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y");
        let changed: DaemonSet = serde_json::from_value(changed).unwrap();
        assert!(!revision_matches(&changed, &r));
        assert_ne!(template_hash(&changed), hash);
        // a collision gives another name
        let mut collided = d.clone();
        collided.status = Some(k8s_openapi::api::apps::v1::DaemonSetStatus {
            collision_count: Some(1),
            ..Default::default()
        });
        assert_ne!(template_hash(&collided), hash);
    }

    fn causes(v: &Value, old: Option<&Value>) -> Vec<String> {
        let d: DaemonSet = serde_json::from_value(v.clone()).unwrap();
        let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        validate_daemonset_decoded(v, old, Some(spec))
            .iter()
            .map(|c| match &c.value {
                Some(val) => format!("{}: {}: {}", c.field, val, c.detail),
                None => format!("{}: {}", c.field, c.detail),
            })
            .collect()
    }

    #[test]
    fn validation() {
        assert_eq!(causes(&ds_value(), None), Vec::<String>::new());
        let mut v = ds_value();
        v["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        v["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        v["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        v["spec"]["minReadySeconds"] = json!(-1);
        v["spec"]["revisionHistoryLimit"] = json!(-2);
        assert_eq!(
            causes(&v, None),
            [
                "spec.template.metadata.labels: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: \"Never\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: activeDeadlineSeconds in DaemonSet is not Supported",
                "spec.minReadySeconds: -1: must be greater than or equal to 0",
                "spec.revisionHistoryLimit: -2: must be greater than or equal to 0",
            ]
        );
        let mut empty = ds_value();
        empty["spec"]["selector"] = json!({});
        assert!(causes(&empty, None)[0]
            .starts_with("spec.selector: v1.LabelSelector{MatchLabels:map[string]string(nil)"));
        assert!(causes(&empty, None)[0].ends_with("empty selector is invalid for daemonset"));
        let strategy = |ru: Value| {
            let mut v = ds_value();
            v["spec"]["updateStrategy"]["rollingUpdate"] = ru;
            causes(&v, None)
        };
        assert_eq!(
            strategy(json!({"maxUnavailable": 0, "maxSurge": 0})),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: cannot be 0 when maxSurge is 0"]
        );
        assert_eq!(
            strategy(json!({"maxUnavailable": 1, "maxSurge": "10%"})),
            ["spec.updateStrategy.rollingUpdate.maxSurge: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"10%\"}: may not be set when maxUnavailable is non-zero"]
        );
        assert_eq!(
            strategy(json!({"maxUnavailable": "150%"})),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"]
        );
        assert_eq!(strategy(json!({"maxUnavailable": "x"})).len(), 2);
        // a number in a string counts as that number (`IntValue`): only the percent error
        assert_eq!(
            strategy(json!({"maxUnavailable": "5"})),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"5\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]
        );
        assert!(strategy(json!({"maxUnavailable": "x"}))[0]
            .contains("a valid percent string must be a numeric string followed by an ending '%'"));
        let mut bad_type = ds_value();
        bad_type["spec"]["updateStrategy"] = json!({"type": "Sometimes"});
        assert_eq!(
            causes(&bad_type, None),
            ["spec.updateStrategy: apps.DaemonSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\""]
        );
        let mut no_ru = ds_value();
        no_ru["spec"]["updateStrategy"] = json!({"type": "RollingUpdate"});
        assert_eq!(
            causes(&no_ru, None),
            ["spec.updateStrategy.rollingUpdate: "]
        );
        // the selector is immutable
        let mut moved = ds_value();
        moved["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let c = causes(&moved, Some(&ds_value()));
        assert_eq!(c.len(), 1);
        assert!(c[0].starts_with("spec.selector: v1.LabelSelector{MatchLabels:map[string]string{"));
        assert!(c[0].ends_with("field is immutable"));
        // compared semantically: an empty expression list equals an absent one
        let mut same = ds_value();
        same["spec"]["selector"]["matchExpressions"] = json!([]);
        assert_eq!(causes(&same, Some(&ds_value())), Vec::<String>::new());
        // and printed with the expressions it has
        let mut exprs = ds_value();
        exprs["spec"]["selector"]["matchExpressions"] =
            json!([{"key": "app", "operator": "In", "values": ["agent", "b"]}]);
        assert_eq!(
            causes(&exprs, Some(&ds_value())),
            ["spec.selector: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"agent\"}, MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"In\", Values:[]string{\"agent\", \"b\"}}}}: field is immutable"]
        );
        // status writes: counts and the collision count
        let mut st = ds_value();
        st["status"] = json!({"numberReady": -1, "collisionCount": 1});
        let mut was = ds_value();
        was["status"] = json!({"collisionCount": 2});
        let c: Vec<String> = validate_daemonset_decoded(&st, Some(&was), None)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.detail))
            .collect();
        assert_eq!(
            c,
            [
                "status.numberReady: must be greater than or equal to 0",
                "status.collisionCount: cannot be decremented"
            ]
        );
    }
}
