//! Node lifecycle (kubernetes `pkg/controller/nodelifecycle/node_lifecycle_controller.go`
//! `monitorNodeHealth`/`tryUpdateNodeHealth`): a node whose Lease in `kube-node-lease` is not
//! renewed within the grace period (`--node-monitor-grace-period`, 40 s) has its conditions set
//! to `Unknown` (`NodeStatusUnknown`, "Kubelet stopped posting node status."). Instead of a
//! 5 s pass over every node, each node is looked at when it or its lease changes and again
//! when its grace period would run out.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::informer::{Informers, Notice, Typed};
use super::kinds;
use super::queue::{self, Action, Plan};
use super::scheduler::node_ready;
use super::{res, NODE_GRACE};
use crate::errors::ApiError;
use crate::objects::Objects;

/// The namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Syncs `node` with its `lease` at `now`: the status update of a node gone silent, or when to
/// look again.
pub fn plan(node: &Node, lease: Option<&Lease>, now: jiff::Timestamp) -> Plan {
    let Some(lease) = lease else {
        return Plan::default();
    };
    let now_s = now.as_second();
    let renewed = lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.as_second());
    let grace = NODE_GRACE.as_secs() as i64;
    let stale = renewed.is_none_or(|t| now_s - t > grace);
    if !stale {
        let left = renewed.unwrap_or(now_s) + grace - now_s;
        return Plan {
            actions: vec![],
            requeue_after: Some(Duration::from_secs(left.max(0) as u64 + 1)),
        };
    }
    if !node_ready(node) {
        return Plan::default();
    }
    let mut n = node.clone();
    if let Some(cs) = n.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        for c in cs.iter_mut() {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c.last_transition_time = Some(Time(now));
        }
    }
    Plan {
        actions: vec![Action::Update {
            r: res("nodes"),
            obj: n.into(),
            status: true,
        }],
        requeue_after: None,
    }
}

/// The node lifecycle controller over the shared node and lease informers.
pub struct NodeLifecycle {
    nodes: Typed<Node>,
    leases: Typed<Lease>,
}

impl NodeLifecycle {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> NodeLifecycle {
        NodeLifecycle {
            nodes: informers.of::<Node>(),
            leases: informers.of::<Lease>(),
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for NodeLifecycle {
    fn name(&self) -> &'static str {
        "node-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.nodes.prefix().to_string(),
            self.leases.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        if change.deleted {
            return vec![];
        }
        let m = change.obj.meta();
        if change.obj::<Lease>().is_some() && kinds::namespace(m) != LEASE_NAMESPACE {
            return vec![];
        }
        vec![kinds::name(m).to_string()]
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .nodes
            .list()
            .iter()
            .map(|n| kinds::name(&n.metadata).to_string())
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(node) = self.nodes.get_named("", key) else {
            return Ok(None);
        };
        let lease = self.leases.get_named(LEASE_NAMESPACE, key);
        let now = kinds::now_seconds();
        let plan = plan(&node, lease.as_deref(), now);
        queue::apply(objects, self.name(), plan.actions).await?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n", "resourceVersion": "2"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}))
        .unwrap()
    }

    fn condition(p: &Plan) -> &k8s_openapi::api::core::v1::NodeCondition {
        let [Action::Update {
            obj: queue::Object::Node(n),
            status: true,
            ..
        }] = &p.actions[..]
        else {
            panic!("{p:?}")
        };
        &n.status.as_ref().unwrap().conditions.as_ref().unwrap()[0]
    }

    #[test]
    fn a_silent_node_turns_unknown_and_a_live_one_is_checked_at_its_deadline() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let lease: Lease = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}}),
        )
        .unwrap();
        let p = plan(&node(), Some(&lease), at(10));
        assert!(p.actions.is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(31)));
        let p = plan(&node(), Some(&lease), at(41));
        let c = condition(&p);
        assert_eq!(c.status, "Unknown");
        assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(c.last_transition_time, Some(Time(at(41))));
        // no lease: not managed here; already unknown: nothing more
        assert!(plan(&node(), None, t0).actions.is_empty());
        let mut unknown = node();
        unknown
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "Unknown".into();
        assert!(plan(&unknown, Some(&lease), at(100)).actions.is_empty());
    }
}
