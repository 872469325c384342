//! ReplicaSet decisions: which pods to create or delete, and the status to write.
//!
//! Ported from upstream `pkg/controller/replicaset/replica_set.go` (`manageReplicas`,
//! `getPodsToDelete`) and `replica_set_utils.go` (`calculateStatus`); deletion order follows
//! `controller.ActivePodsWithRanks` in reduced form (unscheduled, then pending, then not ready,
//! then newest first).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;

/// Upstream `BurstReplicas`: at most this many creations or deletions per sync, so one bad
/// ReplicaSet cannot flood the API server.
pub const BURST_REPLICAS: usize = 500;

/// Whether a pod is counted (not terminating, not finished; upstream `FilterActivePods`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether every label of `selector` matches `labels` (matchLabels; matchExpressions unsupported
/// and treated as not matching so nothing is adopted by mistake).
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        return false;
    }
    let Some(want) = selector.match_labels.as_ref().filter(|m| !m.is_empty()) else {
        return false;
    };
    let empty = BTreeMap::new();
    let have = labels.unwrap_or(&empty);
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// The difference between wanted and active pods.
#[derive(Debug, PartialEq, Eq)]
pub enum Diff {
    /// Create this many pods.
    Create(usize),
    /// Delete these pods (names).
    Delete(Vec<String>),
    /// Nothing to do.
    None,
}

fn rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<Option<i64>>) {
    let spec_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    let pending = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second());
    (
        u8::from(spec_node),
        u8::from(!pending),
        u8::from(is_ready(pod)),
        std::cmp::Reverse(created),
    )
}

/// `manageReplicas`: what to do for `replicas` wanted given the owned active pods.
pub fn diff(replicas: i32, owned_active: &[&Pod]) -> Diff {
    let want = usize::try_from(replicas.max(0)).unwrap_or(0);
    let have = owned_active.len();
    if have < want {
        return Diff::Create((want - have).min(BURST_REPLICAS));
    }
    if have > want {
        let mut pods: Vec<&&Pod> = owned_active.iter().collect();
        pods.sort_by_key(|p| rank(p));
        let n = (have - want).min(BURST_REPLICAS);
        return Diff::Delete(
            pods.into_iter()
                .take(n)
                .filter_map(|p| p.metadata.name.clone())
                .collect(),
        );
    }
    Diff::None
}

/// `calculateStatus`: counts over the owned active pods (availability treats `minReadySeconds`
/// as zero).
pub fn status(rs: &ReplicaSet, owned_active: &[&Pod]) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(owned_active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let ready = count(&is_ready);
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(count(&|p: &Pod| {
            let l = p.metadata.labels.as_ref();
            template_labels
                .iter()
                .all(|(k, v)| l.and_then(|l| l.get(k)) == Some(v))
        })),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        observed_generation: rs.metadata.generation,
        conditions: None,
        terminating_replicas: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    fn pod(name: &str, node: Option<&str>, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.spec = Some(PodSpec {
            node_name: node.map(Into::into),
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some(if ready { "Running" } else { "Pending" }.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn creates_missing_and_deletes_worst_first() {
        let a = pod("a", Some("n"), true);
        let b = pod("b", None, false);
        let c = pod("c", Some("n"), false);
        assert_eq!(diff(3, &[&a]), Diff::Create(2));
        assert_eq!(
            diff(1, &[&a, &b, &c]),
            Diff::Delete(vec!["b".into(), "c".into()])
        );
        assert_eq!(diff(1, &[&a]), Diff::None);
        assert_eq!(diff(-1, &[&a]), Diff::Delete(vec!["a".into()]));
    }

    #[test]
    fn status_counts() {
        let a = pod("a", Some("n"), true);
        let b = pod("b", None, false);
        let mut rs = ReplicaSet::default();
        rs.metadata.generation = Some(4);
        let s = status(&rs, &[&a, &b]);
        assert_eq!(
            (s.replicas, s.ready_replicas, s.observed_generation),
            (2, Some(1), Some(4))
        );
    }

    #[test]
    fn selector_needs_labels() {
        let sel = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([("app".to_string(), "x".to_string())].into()),
            ..Default::default()
        };
        assert!(selector_matches(
            &sel,
            Some(&[("app".to_string(), "x".to_string())].into())
        ));
        assert!(!selector_matches(&sel, None));
        assert!(!selector_matches(&Default::default(), None));
    }
}
