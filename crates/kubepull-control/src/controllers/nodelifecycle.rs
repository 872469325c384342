//! Node lifecycle (kubernetes `pkg/controller/nodelifecycle/node_lifecycle_controller.go`
//! `monitorNodeHealth`/`tryUpdateNodeHealth`): a node whose Lease in `kube-node-lease` is not
//! renewed within the grace period (`--node-monitor-grace-period`, 40 s) has its conditions set
//! to `Unknown` (`NodeStatusUnknown`, "Kubelet stopped posting node status."). Instead of a
//! 5 s pass over every node, each node is looked at when it or its lease changes and again
//! when its grace period would run out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::informer::{Informer, Informers};
use super::queue::{self, Action, Plan};
use super::scheduler::node_ready;
use super::{res, s, NODE_GRACE};
use crate::errors::ApiError;
use crate::objects::Objects;
use crate::resources::{self, Resource};

fn leases() -> &'static Resource {
    resources::find("coordination.k8s.io", "v1", "leases").expect("leases served")
}

/// The namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Syncs `node` with its `lease` at `now` (seconds): the status update of a node gone silent,
/// or when to look again.
pub fn plan(node: &Value, lease: Option<&Value>, now: i64, now_str: &str) -> Plan {
    let Some(lease) = lease else {
        return Plan::default();
    };
    let renewed = s(lease, "/spec/renewTime")
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second());
    let grace = NODE_GRACE.as_secs() as i64;
    let stale = renewed.is_none_or(|t| now - t > grace);
    if !stale {
        let left = renewed.unwrap_or(now) + grace - now;
        return Plan {
            actions: vec![],
            requeue_after: Some(Duration::from_secs(left.max(0) as u64 + 1)),
        };
    }
    if !node_ready(node) {
        return Plan::default();
    }
    let mut n = node.clone();
    if let Some(Value::Array(cs)) = n.pointer_mut("/status/conditions") {
        for c in cs.iter_mut() {
            c["status"] = json!("Unknown");
            c["reason"] = json!("NodeStatusUnknown");
            c["message"] = json!("Kubelet stopped posting node status.");
            c["lastTransitionTime"] = json!(now_str);
        }
    }
    Plan {
        actions: vec![Action::Update {
            r: res("nodes"),
            obj: n,
            status: true,
        }],
        requeue_after: None,
    }
}

/// The node lifecycle controller over the shared node and lease informers.
pub struct NodeLifecycle {
    nodes: Arc<Informer>,
    leases: Arc<Informer>,
}

impl NodeLifecycle {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> NodeLifecycle {
        NodeLifecycle {
            nodes: informers.of(res("nodes")),
            leases: informers.of(leases()),
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for NodeLifecycle {
    fn name(&self) -> &'static str {
        "node-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![res("nodes").key_prefix(), leases().key_prefix()]
    }

    fn keys_for(
        &mut self,
        key: &str,
        obj: &Value,
        _old: Option<&Value>,
        deleted: bool,
    ) -> Vec<String> {
        if deleted {
            return vec![];
        }
        if key.starts_with(self.leases.prefix()) && s(obj, "/metadata/namespace") != LEASE_NAMESPACE
        {
            return vec![];
        }
        vec![s(obj, "/metadata/name").to_string()]
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .nodes
            .list()
            .iter()
            .map(|n| s(n, "/metadata/name").to_string())
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(node) = self.nodes.get(&res("nodes").key("", key)) else {
            return Ok(None);
        };
        let lease = self.leases.get(&leases().key(LEASE_NAMESPACE, key));
        let plan = plan(
            &node,
            lease.as_deref(),
            jiff::Timestamp::now().as_second(),
            &super::now(),
        );
        queue::apply(objects, self.name(), plan.actions).await?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Value {
        json!({"metadata": {"name": "n", "resourceVersion": "2"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
    }

    #[test]
    fn a_silent_node_turns_unknown_and_a_live_one_is_checked_at_its_deadline() {
        let t0 = "2026-01-01T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        let lease = json!({"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}});
        let p = plan(&node(), Some(&lease), t0 + 10, "x");
        assert!(p.actions.is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(31)));
        let p = plan(&node(), Some(&lease), t0 + 41, "later");
        let [Action::Update {
            obj, status: true, ..
        }] = &p.actions[..]
        else {
            panic!()
        };
        assert_eq!(obj["status"]["conditions"][0]["status"], "Unknown");
        assert_eq!(
            obj["status"]["conditions"][0]["reason"],
            "NodeStatusUnknown"
        );
        assert_eq!(
            obj["status"]["conditions"][0]["lastTransitionTime"],
            "later"
        );
        // no lease: not managed here; already unknown: nothing more
        assert!(plan(&node(), None, t0, "x").actions.is_empty());
        let mut unknown = node();
        unknown["status"]["conditions"][0]["status"] = json!("Unknown");
        assert!(plan(&unknown, Some(&lease), t0 + 100, "x")
            .actions
            .is_empty());
    }
}
