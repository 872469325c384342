//! The range allocator (kubernetes `pkg/controller/nodeipam/ipam/range_allocator.go`
//! `AllocateOrOccupyCIDR`): a Node without `spec.podCIDR` gets the next free /24 of the cluster
//! CIDR in `spec.podCIDR` and `spec.podCIDRs`; ranges of existing Nodes stay taken. What it
//! allocated is remembered (the allocator's `cidrSet`) until the informer shows it, so two
//! nodes synced back to back never get the same range.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::informer::{Informer, Informers, Obj};
use super::queue::{self, Action};
use super::{event, res, s};
use crate::errors::ApiError;
use crate::objects::Objects;
use crate::podcidr::{allocate, CidrError, Ipv4Net};

/// The ranges Nodes hold.
pub fn used(nodes: &[Obj]) -> Vec<Ipv4Net> {
    nodes
        .iter()
        .filter_map(|n| Ipv4Net::parse(s(n, "/spec/podCIDR"), "spec.podCIDR").ok())
        .collect()
}

/// The update giving `node` a range of `cluster` (none when it has one or is going).
pub fn plan(
    node: &Value,
    cluster: Ipv4Net,
    used: &[Ipv4Net],
) -> Result<Option<(Action, Ipv4Net)>, CidrError> {
    if !s(node, "/spec/podCIDR").is_empty() || node.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Ok(None);
    }
    let c = allocate(cluster, used)?;
    let mut n = node.clone();
    n["spec"]["podCIDR"] = json!(c.to_string());
    n["spec"]["podCIDRs"] = json!([c.to_string()]);
    Ok(Some((
        Action::Update {
            r: res("nodes"),
            obj: n,
            status: false,
        },
        c,
    )))
}

/// The allocator over the shared node informer.
pub struct NodeIpam {
    cluster: Ipv4Net,
    nodes: Arc<Informer>,
    allocated: HashMap<String, Ipv4Net>,
    reported: HashSet<String>,
}

impl NodeIpam {
    /// An allocator of `cluster` reading `informers`.
    pub fn new(informers: &Informers, cluster: Ipv4Net) -> NodeIpam {
        NodeIpam {
            cluster,
            nodes: informers.of(res("nodes")),
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

    fn keys_for(
        &mut self,
        _key: &str,
        obj: &Value,
        _old: Option<&Value>,
        deleted: bool,
    ) -> Vec<String> {
        let name = s(obj, "/metadata/name").to_string();
        if deleted || !s(obj, "/spec/podCIDR").is_empty() {
            // the informer has it now (or the range is free again)
            self.allocated.remove(&name);
            return vec![];
        }
        vec![name]
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .nodes
            .list()
            .iter()
            .filter(|n| s(n, "/spec/podCIDR").is_empty())
            .map(|n| s(n, "/metadata/name").to_string())
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(node) = self.nodes.get(&res("nodes").key("", key)) else {
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
                    .insert(format!("{}/{key}", s(&node, "/metadata/uid")))
                {
                    tracing::warn!(node = %key, error = %e, "no podCIDR for node");
                    // nodeutil.RecordNodeStatusChange(recorder, node, "CIDRNotAvailable")
                    event(
                        objects,
                        self.name(),
                        &node,
                        "Node",
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

    #[test]
    fn a_node_without_a_range_gets_the_next_free_one() {
        let cluster = Ipv4Net::parse("10.244.0.0/16", "c").unwrap();
        let taken = vec![Ipv4Net::parse("10.244.0.0/24", "x").unwrap()];
        let node = json!({"metadata": {"name": "n2", "resourceVersion": "3"}, "spec": {}});
        let (a, c) = plan(&node, cluster, &taken).unwrap().unwrap();
        assert_eq!(c.to_string(), "10.244.1.0/24");
        let Action::Update { obj, .. } = a else {
            panic!()
        };
        assert_eq!(obj["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
        assert_eq!(obj["metadata"]["resourceVersion"], "3");
        let mut has = node.clone();
        has["spec"]["podCIDR"] = json!("10.244.9.0/24");
        assert!(plan(&has, cluster, &taken).unwrap().is_none());
        // a full cluster range is an error, not a panic
        let tiny = Ipv4Net::parse("10.0.0.0/24", "c").unwrap();
        assert!(plan(&node, tiny, &[tiny]).is_err());
    }
}
