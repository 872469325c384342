//! The range allocator (kubernetes `pkg/controller/nodeipam/ipam/range_allocator.go`
//! `AllocateOrOccupyCIDR`): a Node without `spec.podCIDR` gets the next free /24 of the cluster
//! CIDR in `spec.podCIDR` and `spec.podCIDRs`; ranges of existing Nodes stay taken. What it
//! allocated is remembered (the allocator's `cidrSet`) until the informer shows it, so two
//! nodes synced back to back never get the same range. The range is written as a patch of
//! `spec.podCIDR` and `spec.podCIDRs` only (`updateCIDRsAllocation`, `nodeutil.PatchNodeCIDRs`),
//! applied to the node as it is stored: what the node agent or anyone else wrote meanwhile
//! stays.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::informer::{Informers, Notice, Typed};
use super::kinds::{self, reference};
use super::queue::{self, Action};
use super::{record, res};
use crate::errors::ApiError;
use crate::objects::Objects;
use crate::podcidr::{allocate, CidrError, Ipv4Net};

fn pod_cidr(n: &Node) -> &str {
    n.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .unwrap_or("")
}

/// The ranges Nodes hold.
pub fn used(nodes: &[Arc<Node>]) -> Vec<Ipv4Net> {
    nodes
        .iter()
        .filter_map(|n| Ipv4Net::parse(pod_cidr(n), "spec.podCIDR").ok())
        .collect()
}

/// The patch giving `node` a range of `cluster` (none when it has one or is going):
/// `PatchNodeCIDRs`, `spec.podCIDR` and `spec.podCIDRs` and nothing else.
pub fn plan(
    node: &Node,
    cluster: Ipv4Net,
    used: &[Ipv4Net],
) -> Result<Option<(Action, Ipv4Net)>, CidrError> {
    if !pod_cidr(node).is_empty() || node.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let c = allocate(cluster, used)?;
    Ok(Some((
        Action::Patch {
            r: res("nodes"),
            ns: String::new(),
            name: kinds::name(&node.metadata).to_string(),
            patch: json!({"spec": {"podCIDR": c.to_string(), "podCIDRs": [c.to_string()]}}),
        },
        c,
    )))
}

/// The allocator over the shared node informer.
pub struct NodeIpam {
    cluster: Ipv4Net,
    nodes: Typed<Node>,
    allocated: HashMap<String, Ipv4Net>,
    reported: HashSet<String>,
}

impl NodeIpam {
    /// An allocator of `cluster` reading `informers`.
    pub fn new(informers: &Informers, cluster: Ipv4Net) -> NodeIpam {
        NodeIpam {
            cluster,
            nodes: informers.of::<Node>(),
            allocated: HashMap::new(),
            reported: HashSet::new(),
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for NodeIpam {
    fn name(&self) -> &'static str {
        "cidrAllocator"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![res("nodes").key_prefix()]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let Some(node) = change.obj::<Node>() else {
            return vec![];
        };
        let name = kinds::name(&node.metadata).to_string();
        if change.deleted || !pod_cidr(node).is_empty() {
            // the informer has it now (or the range is free again); a warning given for the
            // node is forgotten with it
            self.allocated.remove(&name);
            self.reported
                .remove(&format!("{}/{name}", kinds::uid(&node.metadata)));
            return vec![];
        }
        vec![name]
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .nodes
            .list()
            .iter()
            .filter(|n| pod_cidr(n).is_empty())
            .map(|n| kinds::name(&n.metadata).to_string())
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(node) = self.nodes.get_named("", key) else {
            return Ok(None);
        };
        if self.allocated.contains_key(key) {
            // given a range the cache does not show yet: its arrival (or the node's deletion)
            // forgets it, and a second range is not taken meanwhile
            return Ok(None);
        }
        let mut taken = used(&self.nodes.list());
        taken.extend(self.allocated.values().copied());
        match plan(&node, self.cluster, &taken) {
            Ok(None) => Ok(None),
            Ok(Some((a, c))) => {
                queue::apply(objects, self.name(), vec![a]).await?;
                self.allocated.insert(key.to_string(), c);
                Ok(None)
            }
            Err(e) => {
                // once per node and process
                if self
                    .reported
                    .insert(format!("{}/{key}", kinds::uid(&node.metadata)))
                {
                    tracing::warn!(node = %key, error = %e, "no podCIDR for node");
                    // nodeutil.RecordNodeStatusChange(recorder, node, "CIDRNotAvailable")
                    record(
                        objects,
                        self.name(),
                        &reference(&*node),
                        "Normal",
                        "CIDRNotAvailable",
                        &format!("Node {key} status is now: CIDRNotAvailable"),
                    )
                    .await;
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::User;

    #[test]
    fn a_node_without_a_range_gets_the_next_free_one() {
        let cluster = Ipv4Net::parse("10.244.0.0/16", "c").unwrap();
        let taken = vec![Ipv4Net::parse("10.244.0.0/24", "x").unwrap()];
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": "n2", "resourceVersion": "3"}, "spec": {}}),
        )
        .unwrap();
        let (a, c) = plan(&node, cluster, &taken).unwrap().unwrap();
        assert_eq!(c.to_string(), "10.244.1.0/24");
        let Action::Patch {
            r, ns, name, patch, ..
        } = a
        else {
            panic!()
        };
        assert_eq!((r.plural, ns.as_str(), name.as_str()), ("nodes", "", "n2"));
        // the two fields and nothing else
        assert_eq!(
            patch,
            json!({"spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}})
        );
        let mut has = node.clone();
        has.spec.as_mut().unwrap().pod_cidr = Some("10.244.9.0/24".into());
        assert!(plan(&has, cluster, &taken).unwrap().is_none());
        // a full cluster range is an error, not a panic
        let tiny = Ipv4Net::parse("10.0.0.0/24", "c").unwrap();
        assert!(plan(&node, tiny, &[tiny]).is_err());
    }

    /// The node agent writes the node's status and someone cordons and labels it after the
    /// allocator's cache was filled: the range is written beside what they wrote.
    #[tokio::test]
    async fn what_others_wrote_meanwhile_survives() {
        use super::queue::Controller as _;
        let store: std::sync::Arc<dyn kubepull_datastore::Datastore> =
            std::sync::Arc::new(kubepull_datastore::memory::MemoryStore::new());
        let objects = Objects::new(store.clone());
        let informers = Informers::new(store);
        let cluster = Ipv4Net::parse("10.244.0.0/16", "c").unwrap();
        let mut c = NodeIpam::new(&informers, cluster);
        let nodes = res("nodes");
        objects
            .create(
                nodes,
                "",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        c.nodes.informer().wait_synced().await;
        // from here on the cache is stale
        informers.stop().await;
        let cached = c.nodes.get_named("", "n").unwrap();
        objects
            .patch(
                nodes,
                "",
                "n",
                "application/merge-patch+json",
                &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
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
                &json!({"metadata": {"labels": {"zone": "a"}}, "spec": {"unschedulable": true}}),
                None,
                false,
            )
            .await
            .unwrap();
        assert_eq!(c.sync(&objects, "n").await.unwrap(), None);
        let n: Node = super::super::get_typed(&objects, "", "n")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(
            kinds::resource_version(&n.metadata),
            kinds::resource_version(&cached.metadata)
        );
        let spec = n.spec.as_ref().unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.0.0/24"));
        assert_eq!(
            spec.pod_cidrs.as_deref(),
            Some(&["10.244.0.0/24".to_string()][..])
        );
        assert_eq!(spec.unschedulable, Some(true));
        assert_eq!(n.metadata.labels.as_ref().unwrap()["zone"], "a");
        let ready = &n.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "True")
        );
        // synced again before the cache shows the range: no second range is taken (the
        // server would refuse a changed podCIDR anyway)
        let before = objects.get(nodes, "", "n").await.unwrap();
        assert_eq!(c.sync(&objects, "n").await.unwrap(), None);
        assert_eq!(objects.get(nodes, "", "n").await.unwrap(), before);
    }
}
