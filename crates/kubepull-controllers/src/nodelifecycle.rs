//! Node lifecycle: a node whose Lease stops being renewed becomes NotReady.
//!
//! Ported from upstream `pkg/controller/nodelifecycle/node_lifecycle_controller.go`
//! (`tryUpdateNodeHealth`): after the grace period (upstream `--node-monitor-grace-period`, 40 s)
//! without a Lease renewal, the Ready condition becomes Unknown with reason `NodeStatusUnknown` and
//! message "Kubelet stopped posting node status.".

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Upstream default node-monitor grace period.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(40);
/// Namespace holding node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Reason and message upstream writes.
pub const UNKNOWN_REASON: &str = "NodeStatusUnknown";
/// Message upstream writes on the Ready condition.
pub const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";

/// The node's conditions to write when its Lease is stale, or `None` when nothing changes.
/// `lease` is the node's Lease (absent counts as never renewed since the node's creation).
pub fn stale_conditions(
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: std::time::Duration,
) -> Option<Vec<NodeCondition>> {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0)
        .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    if now.duration_since(renewed) <= grace {
        return None;
    }
    let mut conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let unknown = NodeCondition {
        type_: "Ready".into(),
        status: "Unknown".into(),
        reason: Some(UNKNOWN_REASON.into()),
        message: Some(UNKNOWN_MESSAGE.into()),
        last_heartbeat_time: lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| Time(t.0)),
        last_transition_time: Some(Time(now)),
    };
    match conds.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "Unknown" => return None,
        Some(c) => *c = unknown,
        None => conds.push(unknown),
    }
    Some(conds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn ready_node() -> Node {
        let mut n = Node::default();
        n.metadata.creation_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        n.status = Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        n
    }

    fn lease(at: Timestamp) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(at)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fresh_lease_keeps_node_ready() {
        let t = Timestamp::from_second(1_000).unwrap();
        let now = Timestamp::from_second(1_030).unwrap();
        assert!(stale_conditions(&ready_node(), Some(&lease(t)), now, DEFAULT_GRACE).is_none());
    }

    #[test]
    fn stale_lease_marks_unknown_once() {
        let t = Timestamp::from_second(1_000).unwrap();
        let now = Timestamp::from_second(1_041).unwrap();
        let conds = stale_conditions(&ready_node(), Some(&lease(t)), now, DEFAULT_GRACE).unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].status, "Unknown");
        assert_eq!(conds[0].message.as_deref(), Some(UNKNOWN_MESSAGE));
        let mut n = ready_node();
        n.status.as_mut().unwrap().conditions = Some(conds);
        assert!(stale_conditions(&n, Some(&lease(t)), now, DEFAULT_GRACE).is_none());
    }

    #[test]
    fn missing_lease_counts_from_creation() {
        let now = Timestamp::from_second(100).unwrap();
        assert!(stale_conditions(&ready_node(), None, now, DEFAULT_GRACE).is_some());
    }
}
