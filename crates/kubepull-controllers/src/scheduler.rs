//! Node choice for pending pods.
//!
//! Ported in reduced form from upstream `pkg/scheduler/schedule_one.go` (`schedulePod`,
//! `FitError.Error`) and the NodeUnschedulable, NodeName, NodeAffinity (nodeSelector) and
//! TaintToleration (not-ready) plugins: a node fits when it is Ready, not cordoned and matches the
//! pod's `nodeSelector` and `spec.nodeName`; among fitting nodes the one with the fewest pods wins
//! (ties by name, so the choice is deterministic).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};

/// Scheduler name reported on events (upstream `v1.DefaultSchedulerName`).
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Why one node did not fit; the texts are upstream's plugin reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misfit {
    /// `ErrReasonNotReady` through the not-ready taint (TaintToleration).
    NotReady,
    /// NodeUnschedulable plugin.
    Unschedulable,
    /// NodeAffinity plugin (`ErrReasonPod`).
    Selector,
    /// NodeName plugin.
    NodeName,
}

impl Misfit {
    fn reason(self) -> &'static str {
        match self {
            Misfit::NotReady => "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
            Misfit::Unschedulable => "node(s) were unschedulable",
            Misfit::Selector => "node(s) didn't match Pod's node affinity/selector",
            Misfit::NodeName => "node(s) didn't match the requested node name",
        }
    }
}

/// Whether a node's Ready condition is True.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn misfit(pod: &Pod, node: &Node) -> Option<Misfit> {
    let spec = pod.spec.as_ref();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if let Some(want) = spec.and_then(|s| s.node_name.as_deref()) {
        if want != name {
            return Some(Misfit::NodeName);
        }
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = spec.and_then(|s| s.node_selector.as_ref()) {
        if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return Some(Misfit::Selector);
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Some(Misfit::Unschedulable);
    }
    if !node_is_ready(node) {
        return Some(Misfit::NotReady);
    }
    None
}

/// Picks a node for `pod`, or returns the FailedScheduling message (upstream `FitError.Error`:
/// `0/N nodes are available: <count> <reason>, ....` with reasons sorted by text).
pub fn pick_node(
    pod: &Pod,
    nodes: &[Node],
    pods_per_node: &HashMap<String, usize>,
) -> Result<String, String> {
    if nodes.is_empty() {
        // Upstream returns ErrNoNodesAvailable here; the count prefix keeps the FitError shape.
        return Err("0/0 nodes are available: no nodes available to schedule pods.".into());
    }
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut best: Option<(usize, &str)> = None;
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        match misfit(pod, node) {
            Some(m) => *reasons.entry(m.reason()).or_default() += 1,
            None => {
                let load = pods_per_node.get(name).copied().unwrap_or(0);
                if best.is_none_or(|(l, n)| (load, name) < (l, n)) {
                    best = Some((load, name));
                }
            }
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_string()),
        None => {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            Err(format!(
                "0/{} nodes are available: {}. preemption: 0/{} nodes are available: {} Preemption is not helpful for scheduling.",
                nodes.len(),
                parts.join(", "),
                nodes.len(),
                nodes.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodSpec};

    fn node(name: &str, ready: bool, labels: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n.status = Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        n
    }

    #[test]
    fn least_loaded_ready_node_wins() {
        let nodes = vec![
            node("a", true, &[]),
            node("b", true, &[]),
            node("c", false, &[]),
        ];
        let load = HashMap::from([("a".to_string(), 2), ("b".to_string(), 1)]);
        assert_eq!(pick_node(&Pod::default(), &nodes, &load), Ok("b".into()));
    }

    #[test]
    fn selector_and_cordon_are_respected() {
        let mut cordoned = node("a", true, &[("disk", "ssd")]);
        cordoned.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        let nodes = vec![
            cordoned,
            node("b", true, &[]),
            node("c", true, &[("disk", "ssd")]),
        ];
        let pod = Pod {
            spec: Some(PodSpec {
                node_selector: Some([("disk".to_string(), "ssd".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pick_node(&pod, &nodes, &HashMap::new()), Ok("c".into()));
        let msg = pick_node(&pod, &nodes[..2], &HashMap::new()).unwrap_err();
        assert!(msg.starts_with("0/2 nodes are available: "), "{msg}");
        assert!(
            msg.contains("1 node(s) didn't match Pod's node affinity/selector"),
            "{msg}"
        );
        assert!(msg.contains("1 node(s) were unschedulable"), "{msg}");
    }

    #[test]
    fn no_nodes_message() {
        let msg = pick_node(&Pod::default(), &[], &HashMap::new()).unwrap_err();
        assert!(msg.starts_with("0/0 nodes are available: "));
        let msg =
            pick_node(&Pod::default(), &[node("a", false, &[])], &HashMap::new()).unwrap_err();
        assert!(msg.contains("1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }"));
    }
}
