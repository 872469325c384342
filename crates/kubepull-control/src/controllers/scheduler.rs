//! The scheduler: a pod without a node is bound to the node that passes the default
//! profile's filters ([`filter`]: not cordoned, no untolerated `NoSchedule`/`NoExecute` taint
//! — a node that is not Ready counts as tainted `node.kubernetes.io/not-ready` —, the pod's
//! `nodeSelector` and required node affinity, [`super::nodeaffinity`]; a pod whose affinity
//! names its nodes, as a DaemonSet's does, is tried on those alone) and runs the fewest
//! active pods (ties by name), the way kube-scheduler's default profile spreads pods
//! (`NodeResourcesFit` least-allocated, here by pod count); a pod no node fits gets
//! `PodScheduled=False/Unschedulable` and a `FailedScheduling` event once per message, with
//! kube-scheduler's message (`0/N nodes are available: …`). The decision is made on the pod
//! cache; the pod is read from the API only to write it. Driven by the queue: a new unscheduled pod enqueues its own
//! key; a node change enqueues the unscheduled pods (the scheduling queue's
//! `MoveAllToActiveOrBackoffQueue` on node events). Node loads come from the pod informer's
//! node index, so a decision costs the number of nodes, not the number of pods.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::informer::{index, node_name, Informers, Notice, Typed};
use super::kinds::{self, reference};
use super::nodeaffinity::{self, RequiredNodeAffinity};
use super::queue;
use super::{get_typed, record, res};
use crate::errors::ApiError;
use crate::objects::Objects;

/// What [`plan`] decided for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do (bound, terminating, gone, scheduling-gated, or already reported
    /// unschedulable).
    Nothing,
    /// Bind to this node.
    Bind(String),
    /// No node fits: report it with this message.
    Unschedulable(String),
}

/// Why `node` cannot take a pod, as the default profile's filters say it, in their order
/// (`NodeUnschedulable`, `TaintToleration`, `NodeAffinity`; the first that fails is the
/// node's reason): a cordoned node the pod does not tolerate, an untolerated `NoSchedule` or
/// `NoExecute` taint (the node's own or one its conditions imply,
/// [`nodeaffinity::effective_taints`]), a required node affinity or `nodeSelector` the node
/// does not match.
pub fn filter(
    node: &Node,
    affinity: &RequiredNodeAffinity,
    tolerations: &[Toleration],
) -> Result<(), String> {
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let unschedulable_taint = Taint {
        key: nodeaffinity::TAINT_UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if cordoned
        && !tolerations
            .iter()
            .any(|t| nodeaffinity::tolerates_taint(t, &unschedulable_taint))
    {
        return Err("node(s) were unschedulable".into());
    }
    let taints = nodeaffinity::effective_taints(node);
    if let Some(t) = nodeaffinity::find_matching_untolerated_taint(
        &taints,
        tolerations,
        nodeaffinity::schedule_or_execute,
    ) {
        return Err(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        ));
    }
    if !affinity.matches(node) {
        return Err("node(s) didn't match Pod's node affinity/selector".into());
    }
    Ok(())
}

/// Picks a node for `pod` among `nodes`; `load(node)` is the node's active pod count. The
/// pod's required affinity is compiled once and each node filtered once ([`filter`]); when its
/// terms name their nodes (NodeAffinity `PreFilter`, [`nodeaffinity::required_node_names`])
/// only those are filtered and the others count as `node(s) didn't satisfy plugin(s)
/// [NodeAffinity]` (`SetAbsentNodesStatus`), and names that conflict leave no node to try.
/// No node fitting gives kube-scheduler's `FitError` message: the reasons counted and sorted,
/// or the `PreFilter`'s own; a pod already reported unschedulable with that message is left
/// alone (`UpdatePodCondition` writes only a changed condition).
pub fn plan(pod: &Pod, nodes: &[Arc<Node>], load: impl Fn(&str) -> usize) -> Decision {
    // a scheduling-gated pod waits for its gates to be removed (the `SchedulingGates`
    // PreEnqueue plugin, pkg/scheduler/framework/plugins/schedulinggates)
    if !wants_scheduling(pod) {
        return Decision::Nothing;
    }
    let affinity = RequiredNodeAffinity::of(pod);
    let spec = pod.spec.as_ref();
    let tolerations = spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let names = spec.and_then(nodeaffinity::required_node_names);
    let total = nodes.len();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(usize, &str)> = None;
    let mut prefilter: Option<&str> = None;
    match &names {
        // `errReasonConflict`
        Some(n) if n.is_empty() => prefilter = Some("pod affinity terms conflict"),
        _ => {
            let mut filtered = 0;
            for n in nodes {
                let name = kinds::name(&n.metadata);
                if names.as_ref().is_some_and(|names| !names.contains(name)) {
                    continue;
                }
                filtered += 1;
                match filter(n, &affinity, tolerations) {
                    Ok(()) => {
                        let key = (load(name), name);
                        if best.is_none_or(|b| key < b) {
                            best = Some(key);
                        }
                    }
                    Err(reason) => *reasons.entry(reason).or_default() += 1,
                }
            }
            if names.is_some() && filtered < total {
                reasons.insert(
                    "node(s) didn't satisfy plugin(s) [NodeAffinity]".into(),
                    total - filtered,
                );
            }
        }
    }
    if let Some((_, n)) = best {
        return Decision::Bind(n.to_string());
    }
    let msg = if total == 0 {
        "no nodes available to schedule pods".to_string()
    } else {
        // `FitError.Error`: the PreFilter's message, or the "N reason" strings sorted
        let why = match prefilter {
            Some(m) => m.to_string(),
            None => {
                let mut counted: Vec<String> =
                    reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                counted.sort();
                counted.join(", ")
            }
        };
        format!(
            "0/{total} nodes are available: {why}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
        )
    };
    let already = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(msg.as_str())
            })
        });
    if already {
        return Decision::Nothing;
    }
    Decision::Unschedulable(msg)
}

/// Whether the scheduler has anything to decide for `pod`: not bound, not terminating, not
/// scheduling-gated.
fn wants_scheduling(pod: &Pod) -> bool {
    let gated = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty());
    node_name(pod).is_empty() && pod.metadata.deletion_timestamp.is_none() && !gated
}

/// `PodScheduled` with `status` (and `reason`, `message`), now.
pub(crate) fn scheduled_condition(
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> PodCondition {
    PodCondition {
        type_: "PodScheduled".into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        last_transition_time: Some(Time(kinds::now_seconds())),
        ..Default::default()
    }
}

/// Sets `c` in `conds`, replacing a condition of its type and keeping the others
/// (`podutil.UpdatePodCondition`); the transition time stays when the status does not change.
pub(crate) fn upsert_condition(conds: &mut Vec<PodCondition>, mut c: PodCondition) {
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(old) => {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time.take();
            }
            *old = c;
        }
        None => conds.push(c),
    }
}

/// Sets `PodScheduled=True` on a pod just bound (`bound`: the pod as the binding stored it),
/// keeping its other conditions: the status write is guarded by the pod's resourceVersion, and
/// a write that conflicts (the node agent reported meanwhile) is made again on the status as it
/// is now, up to three times, so neither the agent's status nor the condition is lost. The
/// scheduler and the `pods/binding` subresource both bind through it (upstream sets the
/// condition in the binding, `setPodHostAndAnnotations`).
pub async fn mark_scheduled(
    objects: &Objects,
    ns: &str,
    name: &str,
    bound: serde_json::Value,
) -> Result<(), ApiError> {
    let mut current = bound;
    for attempt in 0..3 {
        let mut pod: Pod = serde_json::from_value(current)
            .map_err(|e| ApiError::internal(format!("decoding the bound pod: {e}")))?;
        let st = pod.status.get_or_insert_with(Default::default);
        upsert_condition(
            st.conditions.get_or_insert_with(Vec::new),
            scheduled_condition("True", None, None),
        );
        // the whole pod as bound: a status update also writes the metadata it carries
        // (`podStatusStrategy`), so a part would drop the pod's labels and annotations
        let body = serde_json::to_value(&pod)
            .map_err(|e| ApiError::internal(format!("encoding the bound pod: {e}")))?;
        match objects
            .update(res("pods"), ns, name, body, Some("status"), false)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 && attempt < 2 => {
                match objects.get_opt(res("pods"), ns, name).await? {
                    Some(now) => current = now,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The scheduler over the shared informers.
pub struct Scheduler {
    pods: Typed<Pod>,
    nodes: Typed<Node>,
    /// Pods bound here that the informer does not show bound yet (the scheduler cache's
    /// assumed pods), so a burst of pods spreads over the nodes.
    assumed: HashMap<String, String>,
}

impl Scheduler {
    /// A scheduler reading `informers`.
    pub fn new(informers: &Informers) -> Scheduler {
        Scheduler {
            pods: informers.of::<Pod>(),
            nodes: informers.of::<Node>(),
            assumed: HashMap::new(),
        }
    }

    fn unscheduled(&self) -> Vec<String> {
        self.pods
            .by_index(index::UNSCHEDULED, "true")
            .iter()
            .map(|p| kinds::key_of(&p.metadata))
            .collect()
    }
}

#[async_trait::async_trait]
impl queue::Controller for Scheduler {
    fn name(&self) -> &'static str {
        "default-scheduler"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.pods.prefix().to_string(),
            self.nodes.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if let Some(node) = change.obj::<Node>() {
            // a node that may take pods now, or frees its pods' places
            let changed = match change.old::<Node>() {
                Some(o) => {
                    nodeaffinity::effective_taints(o) != nodeaffinity::effective_taints(node)
                        || o.metadata.labels != node.metadata.labels
                }
                None => true,
            };
            if changed || change.deleted {
                return self.unscheduled();
            }
            return vec![];
        }
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        let key = kinds::key_of(&pod.metadata);
        if change.deleted || !node_name(pod).is_empty() {
            self.assumed.remove(&key);
            return vec![];
        }
        vec![key]
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self.unscheduled())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(cached) = self.pods.get_named(ns, name) else {
            return Ok(None);
        };
        if !wants_scheduling(&cached) {
            return Ok(None);
        }
        // plan on the cached pod (it keeps what the decision reads: node selector, required
        // node affinity, tolerations, gates, conditions); only a write reads the whole pod
        let nodes = self.nodes.list();
        let assumed = &self.assumed;
        let load = |n: &str| {
            self.pods.count(index::NODE, n) + assumed.values().filter(|x| *x == n).count()
        };
        if plan(&cached, &nodes, load) == Decision::Nothing {
            return Ok(None);
        }
        // the write below needs the whole pod: read now, it carries its resourceVersion, so a
        // status written meanwhile makes the update conflict and the sync run again
        let Some(mut p) = get_typed::<Pod>(objects, ns, name).await? else {
            return Ok(None);
        };
        let decision = plan(&p, &nodes, load);
        match decision {
            Decision::Nothing => Ok(None),
            Decision::Unschedulable(msg) => {
                let about = reference(&p);
                let st = p.status.get_or_insert_with(Default::default);
                upsert_condition(
                    st.conditions.get_or_insert_with(Vec::new),
                    scheduled_condition("False", Some("Unschedulable"), Some(&msg)),
                );
                queue::apply(
                    objects,
                    self.name(),
                    vec![queue::Action::Update {
                        r: res("pods"),
                        obj: p.into(),
                        status: true,
                    }],
                )
                .await?;
                record(
                    objects,
                    self.name(),
                    &about,
                    "Warning",
                    "FailedScheduling",
                    &msg,
                )
                .await;
                Ok(None)
            }
            Decision::Bind(node) => {
                let about = reference(&p);
                let mut np = p;
                np.spec.get_or_insert_with(Default::default).node_name = Some(node.clone());
                // the scheduler's Binding carries the pod's UID only (schedule_one.go `bind`):
                // no resourceVersion precondition, no annotations
                np.metadata.resource_version = None;
                np.metadata.annotations = None;
                let np = queue::Object::from(np)
                    .to_value()
                    .map_err(|e| ApiError::internal(format!("encoding the pod: {e}")))?;
                let bound = crate::webhooks::bind(objects, ns, name, &node, async {
                    let stored = objects
                        .update(res("pods"), ns, name, np, Some("binding"), false)
                        .await?;
                    // the binding is made: a status the node agent rewrites anyway is not worth
                    // failing it for
                    if let Err(e) = mark_scheduled(objects, ns, name, stored).await {
                        tracing::info!(pod = %key, error = %e, "PodScheduled condition not written");
                    }
                    Ok(())
                })
                .await;
                match bound {
                    Ok(()) => {
                        self.assumed.insert(key.to_string(), node.clone());
                        record(
                            objects,
                            self.name(),
                            &about,
                            "Normal",
                            "Scheduled",
                            &format!("Successfully assigned {ns}/{name} to {node}"),
                        )
                        .await;
                        Ok(None)
                    }
                    // a webhook refusing the binding: look again later, like any failed write
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(name: &str, ready: bool, labels: Value) -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})).unwrap())
    }

    fn pod(sel: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "a"},
            "spec": {"containers": [], "nodeSelector": sel}}))
        .unwrap()
    }

    #[test]
    fn pod_scheduled_is_set_beside_the_other_conditions() {
        let ready = PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            ..Default::default()
        };
        let mut conds = vec![ready.clone()];
        upsert_condition(
            &mut conds,
            scheduled_condition("False", Some("Unschedulable"), Some("no nodes")),
        );
        let first = conds[1].last_transition_time.clone();
        assert!(first.is_some());
        // the same status again keeps its transition time; a new status replaces it in place
        let mut again = scheduled_condition("False", Some("Unschedulable"), Some("still none"));
        again.last_transition_time = None;
        upsert_condition(&mut conds, again);
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[1].last_transition_time, first);
        assert_eq!(conds[1].message.as_deref(), Some("still none"));
        upsert_condition(&mut conds, scheduled_condition("True", None, None));
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0], ready);
        assert_eq!(conds[1].status, "True");
        assert_eq!(conds[1].reason, None);
    }

    /// The condition is written as a status update naming the pod (an update's object must
    /// name itself), beside the conditions the pod already has.
    #[tokio::test]
    async fn a_bound_pod_is_marked_scheduled() {
        let store: Arc<dyn kubepull_datastore::Datastore> =
            Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let objects = Objects::new(store);
        objects.bootstrap().await.unwrap();
        let made = objects
            .create(
                res("pods"),
                "default",
                json!({"metadata": {"name": "p", "labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}),
                &crate::objects::User::Admin,
                false,
            )
            .await
            .unwrap();
        mark_scheduled(&objects, "default", "p", made)
            .await
            .unwrap();
        let now = objects.get(res("pods"), "default", "p").await.unwrap();
        let conds = now["status"]["conditions"].as_array().unwrap();
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
            "{now}"
        );
        // the status write keeps what the pod's metadata holds
        assert_eq!(now["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(now["metadata"]["annotations"], json!({"a": "b"}));
    }

    #[test]
    fn binds_to_the_least_loaded_ready_node_matching_the_selector() {
        let nodes = vec![
            node("a", true, json!({"disk": "ssd"})),
            node("b", true, json!({"disk": "ssd"})),
            node("c", false, json!({"disk": "ssd"})),
            node("d", true, json!({})),
        ];
        let load = |n: &str| if n == "a" { 5 } else { 1 };
        assert_eq!(
            plan(&pod(json!({"disk": "ssd"})), &nodes, load),
            Decision::Bind("b".into())
        );
        // ties go by name
        assert_eq!(
            plan(&pod(json!({})), &nodes, |_| 0),
            Decision::Bind("a".into())
        );
    }

    fn with_spec(extra: Value) -> Pod {
        let mut v =
            json!({"metadata": {"name": "p", "namespace": "a"}, "spec": {"containers": []}});
        for (k, x) in extra.as_object().unwrap() {
            v["spec"][k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn tainted(name: &str, taints: Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name}, "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn required_node_affinity_picks_the_nodes() {
        let nodes = vec![
            node("a", true, json!({"zone": "x"})),
            node("b", true, json!({"zone": "y"})),
        ];
        let aff = |terms: Value| {
            with_spec(json!({"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
        };
        let by_zone = aff(
            json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["y"]}]}]),
        );
        assert_eq!(plan(&by_zone, &nodes, |_| 0), Decision::Bind("b".into()));
        // a DaemonSet pod names its node in matchFields
        let by_name = aff(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]),
        );
        assert_eq!(
            plan(&by_name, &nodes, |n| if n == "a" { 9 } else { 0 }),
            Decision::Bind("a".into())
        );
        let nowhere = aff(
            json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]}]),
        );
        assert_eq!(
            plan(&nowhere, &nodes, |_| 0),
            Decision::Unschedulable("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.".into())
        );
    }

    /// A pod whose affinity names its node (a DaemonSet's) is filtered on that node alone:
    /// the others count as not satisfying NodeAffinity's PreFilter, whatever else they have;
    /// names that conflict leave no node.
    #[test]
    fn a_pod_naming_its_node_is_filtered_on_it_alone() {
        let mut cordoned = (*tainted("b", json!([]))).clone();
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        let nodes = vec![
            tainted(
                "a",
                json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
            ),
            Arc::new(cordoned),
            tainted("c", json!([])),
        ];
        let name_in = |vs: Value| json!({"key": "metadata.name", "operator": "In", "values": vs});
        let aff = |fields: Value| {
            with_spec(json!({"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": fields}]}}}}))
        };
        assert_eq!(
            plan(&aff(json!([name_in(json!(["a"]))])), &nodes, |_| 0),
            Decision::Unschedulable("0/3 nodes are available: 1 node(s) had untolerated taint {gpu: yes}, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.".into())
        );
        // a node that does not exist: every node is left out
        assert_eq!(
            plan(&aff(json!([name_in(json!(["gone"]))])), &nodes[..2], |_| 0),
            Decision::Unschedulable("0/2 nodes are available: 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.".into())
        );
        assert_eq!(
            plan(
                &aff(json!([name_in(json!(["a"])), name_in(json!(["c"]))])),
                &nodes,
                |_| 0
            ),
            Decision::Unschedulable("0/3 nodes are available: pod affinity terms conflict. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.".into())
        );
        assert_eq!(
            plan(&aff(json!([name_in(json!(["c"]))])), &nodes, |_| 0),
            Decision::Bind("c".into())
        );
    }

    /// A pod already reported unschedulable for the same reason is decided on the cache: the
    /// API is not read (the pod as stored, which the cache does not show yet, is not looked
    /// at), nothing is written.
    #[tokio::test]
    async fn a_pod_reported_unschedulable_costs_no_read() {
        use crate::controllers::informer::test_support::Env;
        use crate::controllers::queue::Controller as _;
        use kubepull_datastore::Datastore as _;
        let env = Env::new().await;
        let mut s = Scheduler::new(&env.informers);
        let msg = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
        env.put::<Node>(json!({"metadata": {"name": "a"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .await;
        let p = |conditions: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u"},
                "spec": {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"disk": "ssd"}},
                "status": {"phase": "Pending", "conditions": conditions}})
        };
        env.put::<Pod>(p(json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg}])))
            .await;
        env.refresh::<Node>().await;
        env.refresh::<Pod>().await;
        // the stored pod loses its condition behind the cache's back
        let key = res("pods").key("default", "p");
        let rev = env
            .uncounted()
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .mod_revision;
        env.uncounted()
            .update(&key, serde_json::to_vec(&p(json!([]))).unwrap(), rev)
            .await
            .unwrap();
        s.sync(&env.objects, "default/p").await.unwrap();
        let stored = env.stored::<Pod>().await;
        assert_eq!(stored[0]["status"]["conditions"], json!([]), "{stored:?}");
        // once the cache shows the pod without the condition, it is written
        env.refresh::<Pod>().await;
        s.sync(&env.objects, "default/p").await.unwrap();
        let stored = env.stored::<Pod>().await;
        assert_eq!(stored[0]["status"]["conditions"][0]["message"], msg);
    }

    #[test]
    fn untolerated_taints_exclude_a_node() {
        let nodes = vec![
            tainted(
                "a",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            ),
            tainted("b", json!([{"key": "evict", "effect": "NoExecute"}])),
            tainted("c", json!([{"key": "soft", "effect": "PreferNoSchedule"}])),
        ];
        // a PreferNoSchedule taint does not filter
        assert_eq!(
            plan(&with_spec(json!({})), &nodes, |n| if n == "c" {
                5
            } else {
                0
            }),
            Decision::Bind("c".into())
        );
        let tolerant = with_spec(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            plan(&tolerant, &nodes, |n| if n == "c" { 5 } else { 0 }),
            Decision::Bind("a".into())
        );
        let picky = with_spec(json!({"nodeSelector": {"none": "x"}}));
        let Decision::Unschedulable(msg) = plan(&picky, &nodes[..2], |_| 0) else {
            panic!()
        };
        assert_eq!(msg, "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {evict: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.");
        // a cordoned node is reported as such, before its taints
        let mut cordoned = (*tainted("d", json!([]))).clone();
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        let Decision::Unschedulable(msg) =
            plan(&with_spec(json!({})), &[Arc::new(cordoned.clone())], |_| 0)
        else {
            panic!()
        };
        assert!(
            msg.starts_with("0/1 nodes are available: 1 node(s) were unschedulable."),
            "{msg}"
        );
        let tolerates = with_spec(
            json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            plan(&tolerates, &[Arc::new(cordoned)], |_| 0),
            Decision::Bind("d".into())
        );
    }

    #[test]
    fn no_fitting_node_is_reported_once() {
        let nodes = vec![node("a", false, json!({}))];
        let Decision::Unschedulable(msg) = plan(&pod(json!({})), &nodes, |_| 0) else {
            panic!()
        };
        assert!(msg.starts_with("0/1 nodes are available: 1 node(s) had untolerated taint"));
        assert_eq!(
            plan(&pod(json!({})), &[], |_| 0),
            Decision::Unschedulable("no nodes available to schedule pods".into())
        );
        let mut reported = pod(json!({}));
        reported.status = Some(serde_json::from_value(json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg}]})).unwrap());
        assert_eq!(plan(&reported, &nodes, |_| 0), Decision::Nothing);
        // a new reason is reported again
        let two = vec![node("a", false, json!({})), node("b", false, json!({}))];
        assert!(
            matches!(plan(&reported, &two, |_| 0), Decision::Unschedulable(m) if m.starts_with("0/2 "))
        );
        // bound or terminating pods are left alone
        let mut bound = pod(json!({}));
        bound.spec.as_mut().unwrap().node_name = Some("a".into());
        assert_eq!(plan(&bound, &nodes, |_| 0), Decision::Nothing);
        // and so are scheduling-gated ones, until their gates are gone
        let ready = vec![node("a", true, json!({}))];
        let mut gated = pod(json!({}));
        gated.spec.as_mut().unwrap().scheduling_gates =
            Some(vec![serde_json::from_value(json!({"name": "g"})).unwrap()]);
        assert_eq!(plan(&gated, &ready, |_| 0), Decision::Nothing);
        gated.spec.as_mut().unwrap().scheduling_gates = Some(vec![]);
        assert_eq!(plan(&gated, &ready, |_| 0), Decision::Bind("a".into()));
    }
}
