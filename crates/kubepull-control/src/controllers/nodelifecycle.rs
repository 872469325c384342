//! Node lifecycle (kubernetes `pkg/controller/nodelifecycle/node_lifecycle_controller.go`
//! `monitorNodeHealth`/`tryUpdateNodeHealth`): a node whose Lease in `kube-node-lease` is not
//! renewed within the grace period (`--node-monitor-grace-period`, 40 s) has its conditions set
//! to `Unknown` (`NodeStatusUnknown`, "Kubelet stopped posting node status."). Instead of a
//! 5 s pass over every node, each node is looked at when it or its lease changes and again
//! when its grace period would run out.
//!
//! The controller writes only the conditions it changes: a strategic-merge patch of
//! `status.conditions` (merged by `type`) on the status subresource, applied by the API server
//! to the node as it is stored, so what the node agent wrote meanwhile to other fields or
//! other conditions stays (upstream sends `UpdateStatus` of the node read again after a
//! conflict; the patch needs neither the read nor the retry).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};

use super::informer::{Informers, Notice, Typed};
use super::kinds;
use super::queue;
use super::{res, NODE_GRACE};
use crate::errors::ApiError;
use crate::objects::Objects;

/// The namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The conditions the controller sets to `Unknown` (`tryUpdateNodeHealth` `nodeConditionTypes`;
/// `NetworkUnavailable` is left to whoever manages the network).
pub const CONDITION_TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What a sync of one node decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// The conditions to write, as the strategic-merge patch of the node's status.
    pub patch: Option<Value>,
    /// Look again after this long.
    pub requeue_after: Option<Duration>,
}

/// Syncs `node` with its `lease` at `now`: the conditions of a node gone silent, or when to
/// look again. Of [`CONDITION_TYPES`], a condition that is not yet `Unknown` becomes
/// `Unknown` (`NodeStatusUnknown`) and a missing one is added as `Unknown`
/// (`NodeStatusNeverUpdated`, heartbeat the node's creation); the others are not named.
pub fn plan(node: &Node, lease: Option<&Lease>, now: jiff::Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::default();
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
        return Decision {
            patch: None,
            requeue_after: Some(Duration::from_secs(left.max(0) as u64 + 1)),
        };
    }
    let current = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut changed: Vec<NodeCondition> = vec![];
    for t in CONDITION_TYPES {
        match current.iter().find(|c| c.type_ == t) {
            None => changed.push(NodeCondition {
                type_: t.to_string(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: Some(Time(now)),
            }),
            Some(c) if c.status != "Unknown" => changed.push(NodeCondition {
                type_: t.to_string(),
                status: "Unknown".into(),
                reason: Some("NodeStatusUnknown".into()),
                message: Some("Kubelet stopped posting node status.".into()),
                // the heartbeat the node posted stays as it is stored
                last_heartbeat_time: None,
                last_transition_time: Some(Time(now)),
            }),
            Some(_) => {}
        }
    }
    Decision {
        patch: (!changed.is_empty()).then(|| json!({"status": {"conditions": changed}})),
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
        let d = plan(&node, lease.as_deref(), now);
        if let Some(mut patch) = d.patch {
            // decided on the cached node: guarded by its resourceVersion, so a status the node
            // agent wrote meanwhile makes this conflict and the node be judged again
            // (monitorNodeHealth's UpdateStatus of the lister's copy, retried after a Get)
            patch["metadata"]["resourceVersion"] =
                serde_json::json!(kinds::resource_version(&node.metadata));
            let patch = &patch;
            match objects
                .patch(
                    res("nodes"),
                    "",
                    key,
                    "application/strategic-merge-patch+json",
                    patch,
                    Some("status"),
                    false,
                )
                .await
            {
                Ok(_) => {}
                // gone meanwhile: its deletion reaches the controller as a change of its own
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(d.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::User;
    use std::sync::Arc;

    const T0: &str = "2026-01-01T00:00:00Z";

    fn node_json() -> Value {
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n", "resourceVersion": "2", "creationTimestamp": "2025-12-31T00:00:00Z"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "lastHeartbeatTime": T0, "lastTransitionTime": T0},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "DiskPressure", "status": "Unknown", "reason": "NodeStatusUnknown"},
                {"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated"}]}})
    }

    fn node() -> Node {
        serde_json::from_value(node_json()).unwrap()
    }

    fn lease() -> Lease {
        serde_json::from_value(
            json!({"metadata": {"name": "n", "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": "n", "renewTime": "2026-01-01T00:00:00.000000Z"}}),
        )
        .unwrap()
    }

    fn at(s: i64) -> jiff::Timestamp {
        T0.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(s)
    }

    #[test]
    fn a_silent_node_turns_unknown_and_a_live_one_is_checked_at_its_deadline() {
        let p = plan(&node(), Some(&lease()), at(10));
        assert_eq!(p.patch, None);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(31)));
        let p = plan(&node(), Some(&lease()), at(41));
        // only the conditions that change are named: Ready and MemoryPressure turn Unknown,
        // PIDPressure was never posted, DiskPressure is Unknown already and
        // NetworkUnavailable is not the controller's
        assert_eq!(
            p.patch,
            Some(json!({"status": {"conditions": [
                {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastTransitionTime": "2026-01-01T00:00:41Z"},
                {"type": "MemoryPressure", "status": "Unknown", "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastTransitionTime": "2026-01-01T00:00:41Z"},
                {"type": "PIDPressure", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": "2025-12-31T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:41Z"}]}}))
        );
        assert_eq!(p.requeue_after, None);
        // no lease: not managed here
        assert_eq!(plan(&node(), None, at(100)), Decision::default());
        // a cordoned or NotReady node goes Unknown as well
        let mut v = node_json();
        v["spec"] = json!({"unschedulable": true});
        v["status"]["conditions"][0]["status"] = json!("False");
        let n: Node = serde_json::from_value(v).unwrap();
        let p = plan(&n, Some(&lease()), at(100)).patch.unwrap();
        assert_eq!(p["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(p["status"]["conditions"][0]["status"], "Unknown");
        // every condition Unknown already: nothing more
        let mut v = node_json();
        for t in CONDITION_TYPES {
            v["status"]["conditions"]
                .as_array_mut()
                .unwrap()
                .retain(|c| c["type"] != t);
            v["status"]["conditions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": t, "status": "Unknown"}));
        }
        let n: Node = serde_json::from_value(v).unwrap();
        assert_eq!(plan(&n, Some(&lease()), at(100)), Decision::default());
    }

    /// The node agent writes its addresses and a condition heartbeat, and someone labels the
    /// node, after the controller's cache was filled: the controller's write keeps them.
    #[tokio::test]
    async fn what_others_wrote_meanwhile_survives() {
        let store: Arc<dyn kubepull_datastore::Datastore> =
            Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let objects = Objects::new(store.clone());
        let informers = Informers::new(store.clone());
        let mut c = NodeLifecycle::new(&informers);
        let mut v = node_json();
        v["metadata"] = json!({"name": "n"});
        let nodes = res("nodes");
        objects
            .create(
                res("namespaces"),
                "",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        objects
            .create(nodes, "", v, &User::Admin, false)
            .await
            .unwrap();
        objects
            .create(
                kinds::resource_of::<Lease>(),
                LEASE_NAMESPACE,
                serde_json::to_value(lease()).unwrap(),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        c.nodes.informer().wait_synced().await;
        c.leases.informer().wait_synced().await;
        // the informers see the node and the lease; then the informers stop seeing anything
        // (the cache is stale from here on)
        informers.stop().await;
        let cached = c.nodes.get_named("", "n").unwrap();
        assert!(c.leases.get_named(LEASE_NAMESPACE, "n").is_some());
        objects
            .patch(
                nodes,
                "",
                "n",
                "application/strategic-merge-patch+json",
                &json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.7"}],
                    "conditions": [{"type": "NetworkUnavailable", "status": "True", "reason": "NoRoute"},
                        {"type": "Ready", "lastHeartbeatTime": "2026-01-01T00:00:05Z"}]}}),
                Some("status"),
                false,
            )
            .await
            .unwrap();
        objects
            .patch(
                nodes,
                "",
                "n",
                "application/merge-patch+json",
                &json!({"metadata": {"labels": {"zone": "a"}}}),
                None,
                false,
            )
            .await
            .unwrap();
        // the lease is long stale by the wall clock, but the cached node is older than the
        // stored one: the patch names the cached resourceVersion and conflicts, as upstream's
        // UpdateStatus of the lister's copy does (a Ready written meanwhile is not overwritten)
        use super::queue::Controller as _;
        let e = c.sync(&objects, "n").await.unwrap_err();
        assert_eq!(e.code, 409, "{}", e.message);
        let n: Node = super::super::get_typed(&objects, "", "n")
            .await
            .unwrap()
            .unwrap();
        let ready = n
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_ne!(ready.status, "Unknown");
        // synced again from a cache that has caught up: only the conditions change
        let informers = Informers::new(store);
        let mut c = NodeLifecycle::new(&informers);
        c.nodes.informer().wait_synced().await;
        c.leases.informer().wait_synced().await;
        assert_eq!(c.sync(&objects, "n").await.unwrap(), None);
        let n: Node = super::super::get_typed(&objects, "", "n")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(
            kinds::resource_version(&n.metadata),
            kinds::resource_version(&cached.metadata)
        );
        let st = n.status.as_ref().unwrap();
        let cond = |t: &str| {
            st.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t)
                .unwrap()
        };
        assert_eq!(cond("Ready").status, "Unknown");
        assert_eq!(cond("Ready").reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            cond("Ready").last_heartbeat_time,
            Some(Time("2026-01-01T00:00:05Z".parse().unwrap()))
        );
        assert_eq!(cond("MemoryPressure").status, "Unknown");
        assert_eq!(cond("PIDPressure").status, "Unknown");
        assert_eq!(cond("NetworkUnavailable").status, "True");
        assert_eq!(
            cond("NetworkUnavailable").reason.as_deref(),
            Some("NoRoute")
        );
        assert_eq!(st.addresses.as_ref().unwrap()[0].address, "10.0.0.7");
        assert_eq!(n.metadata.labels.as_ref().unwrap()["zone"], "a");
    }
}
