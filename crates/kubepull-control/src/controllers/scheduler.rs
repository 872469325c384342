//! The scheduler: a pod without a node is bound to the Ready, schedulable node its
//! `nodeSelector` matches that runs the fewest active pods (ties by name), the way
//! kube-scheduler's default profile spreads pods (`NodeResourcesFit` least-allocated, here by
//! pod count); a pod no node fits gets `PodScheduled=False/Unschedulable` and a
//! `FailedScheduling` event once. Driven by the queue: a new unscheduled pod enqueues its own
//! key; a node change enqueues the unscheduled pods (the scheduling queue's
//! `MoveAllToActiveOrBackoffQueue` on node events). Node loads come from the pod informer's
//! node index, so a decision costs the number of nodes, not the number of pods.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::informer::{index, Informer, Informers, Obj};
use super::queue;
use super::{event, now, res, s};
use crate::errors::ApiError;
use crate::objects::Objects;

/// A node pods may go to: Ready and not cordoned.
pub fn node_ready(n: &Value) -> bool {
    n.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
        })
        && n.pointer("/spec/unschedulable") != Some(&json!(true))
}

/// What [`plan`] decided for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do (bound, terminating, gone, or already reported unschedulable).
    Nothing,
    /// Bind to this node.
    Bind(String),
    /// No node fits: report it with this message.
    Unschedulable(String),
}

/// Picks a node for `pod` among `nodes`; `load(node)` is the node's active pod count.
pub fn plan(pod: &Value, nodes: &[Obj], load: impl Fn(&str) -> usize) -> Decision {
    if !s(pod, "/spec/nodeName").is_empty() || pod.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Decision::Nothing;
    }
    let selector = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let best = nodes
        .iter()
        .filter(|n| node_ready(n))
        .filter(|n| {
            selector
                .iter()
                .all(|(k, v)| n.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
        })
        .min_by_key(|n| {
            (
                load(s(n, "/metadata/name")),
                s(n, "/metadata/name").to_string(),
            )
        });
    if let Some(n) = best {
        return Decision::Bind(s(n, "/metadata/name").to_string());
    }
    let already = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "Unschedulable")
        });
    if already {
        return Decision::Nothing;
    }
    let total = nodes.len();
    let not_ready = nodes.iter().filter(|n| !node_ready(n)).count();
    Decision::Unschedulable(if total == 0 {
        "no nodes available to schedule pods".to_string()
    } else {
        format!("0/{total} nodes are available: {not_ready} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.")
    })
}

/// The scheduler over the shared informers.
pub struct Scheduler {
    pods: Arc<Informer>,
    nodes: Arc<Informer>,
    /// Pods bound here that the informer does not show bound yet (the scheduler cache's
    /// assumed pods), so a burst of pods spreads over the nodes.
    assumed: HashMap<String, String>,
}

impl Scheduler {
    /// A scheduler reading `informers`.
    pub fn new(informers: &Informers) -> Scheduler {
        Scheduler {
            pods: informers.of(res("pods")),
            nodes: informers.of(res("nodes")),
            assumed: HashMap::new(),
        }
    }

    fn unscheduled(&self) -> Vec<String> {
        self.pods
            .by_index(index::UNSCHEDULED, "true")
            .iter()
            .map(|p| queue::key_of(p))
            .collect()
    }
}

#[async_trait::async_trait]
impl queue::Controller for Scheduler {
    fn name(&self) -> &'static str {
        "default-scheduler"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![res("pods").key_prefix(), res("nodes").key_prefix()]
    }

    fn keys_for(
        &mut self,
        key: &str,
        obj: &Value,
        old: Option<&Value>,
        deleted: bool,
    ) -> Vec<String> {
        if key.starts_with(self.nodes.prefix()) {
            // a node that may take pods now, or frees its pods' places
            let changed = match old {
                Some(o) => {
                    node_ready(o) != node_ready(obj)
                        || o.pointer("/metadata/labels") != obj.pointer("/metadata/labels")
                }
                None => true,
            };
            if changed || deleted {
                return self.unscheduled();
            }
            return vec![];
        }
        if deleted || !s(obj, "/spec/nodeName").is_empty() {
            self.assumed.remove(&queue::key_of(obj));
            return vec![];
        }
        vec![queue::key_of(obj)]
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self.unscheduled())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let Some(cached) = self.pods.get(&res("pods").key(ns, name)) else {
            return Ok(None);
        };
        let nodes = self.nodes.list();
        let assumed = &self.assumed;
        let decision = plan(&cached, &nodes, |n| {
            self.pods.count(index::NODE, n) + assumed.values().filter(|x| *x == n).count()
        });
        match decision {
            Decision::Nothing => Ok(None),
            Decision::Unschedulable(msg) => {
                // the cache keeps a part of the pod: write the whole one, read now
                let Some(p) = objects.get_opt(res("pods"), ns, name).await? else {
                    return Ok(None);
                };
                let mut st = p.get("status").cloned().unwrap_or(json!({}));
                st["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastProbeTime": null, "lastTransitionTime": now()}]);
                let mut np = p.clone();
                np["status"] = st;
                objects
                    .update(res("pods"), ns, name, np, Some("status"), false)
                    .await?;
                event(
                    objects,
                    self.name(),
                    &p,
                    "Pod",
                    "Warning",
                    "FailedScheduling",
                    &msg,
                )
                .await;
                Ok(None)
            }
            Decision::Bind(node) => {
                let Some(p) = objects.get_opt(res("pods"), ns, name).await? else {
                    return Ok(None);
                };
                if !s(&p, "/spec/nodeName").is_empty() {
                    return Ok(None);
                }
                let mut np = p.clone();
                np["spec"]["nodeName"] = json!(node);
                let bound = crate::webhooks::bind(objects, ns, name, &node, async {
                    objects
                        .update(res("pods"), ns, name, np, None, false)
                        .await?;
                    let mut st = p.get("status").cloned().unwrap_or(json!({}));
                    st["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}]);
                    let _ = objects
                        .update(
                            res("pods"),
                            ns,
                            name,
                            json!({"status": st}),
                            Some("status"),
                            false,
                        )
                        .await;
                    Ok(())
                })
                .await;
                match bound {
                    Ok(()) => {
                        self.assumed.insert(key.to_string(), node.clone());
                        event(
                            objects,
                            self.name(),
                            &p,
                            "Pod",
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

    fn node(name: &str, ready: bool, labels: Value) -> Obj {
        Arc::new(json!({"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
    }

    fn pod(sel: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "a"}, "spec": {"nodeSelector": sel}})
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
        reported["status"] = json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]});
        assert_eq!(plan(&reported, &nodes, |_| 0), Decision::Nothing);
        // bound or terminating pods are left alone
        let mut bound = pod(json!({}));
        bound["spec"]["nodeName"] = json!("a");
        assert_eq!(plan(&bound, &nodes, |_| 0), Decision::Nothing);
    }
}
