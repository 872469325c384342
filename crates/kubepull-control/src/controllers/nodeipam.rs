//! The range allocator (kubernetes `pkg/controller/nodeipam/ipam/range_allocator.go`
//! `AllocateOrOccupyCIDR`): a Node without `spec.podCIDR` gets the next free /24 of the cluster
//! CIDR in `spec.podCIDR` and `spec.podCIDRs`; ranges of existing Nodes stay taken. What it
//! allocated is remembered (the allocator's `cidrSet`) until the informer shows it, so two
//! nodes synced back to back never get the same range.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;

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

/// The update giving `node` a range of `cluster` (none when it has one or is going).
pub fn plan(
    node: &Node,
    cluster: Ipv4Net,
    used: &[Ipv4Net],
) -> Result<Option<(Action, Ipv4Net)>, CidrError> {
    if !pod_cidr(node).is_empty() || node.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let c = allocate(cluster, used)?;
    let mut n = node.clone();
    let spec = n.spec.get_or_insert_with(Default::default);
    spec.pod_cidr = Some(c.to_string());
    spec.pod_cidrs = Some(vec![c.to_string()]);
    Ok(Some((
        Action::Update {
            r: res("nodes"),
            obj: n.into(),
            status: false,
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
    use serde_json::json;

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
        let Action::Update {
            obj: queue::Object::Node(obj),
            ..
        } = a
        else {
            panic!()
        };
        let spec = obj.spec.as_ref().unwrap();
        assert_eq!(
            spec.pod_cidrs.as_deref(),
            Some(&["10.244.1.0/24".to_string()][..])
        );
        assert_eq!(obj.metadata.resource_version.as_deref(), Some("3"));
        let mut has = node.clone();
        has.spec.as_mut().unwrap().pod_cidr = Some("10.244.9.0/24".into());
        assert!(plan(&has, cluster, &taken).unwrap().is_none());
        // a full cluster range is an error, not a panic
        let tiny = Ipv4Net::parse("10.0.0.0/24", "c").unwrap();
        assert!(plan(&node, tiny, &[tiny]).is_err());
    }
}
