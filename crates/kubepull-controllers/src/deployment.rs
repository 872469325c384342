//! Deployment decisions: which ReplicaSets to create, scale or delete, and the status to write.
//!
//! Ported from upstream `pkg/controller/deployment` (`sync.go`: `getNewReplicaSet`,
//! `scaleReplicaSet`, `cleanupDeployment`, `calculateStatus`; `rolling.go`:
//! `reconcileNewReplicaSet`, `reconcileOldReplicaSets`; `recreate.go`; `util/deployment_util.go`
//! for revisions, annotations and conditions). Reduced: no pause/rollback, no progress deadline,
//! `minReadySeconds` treated as zero, old ReplicaSets scaled down oldest first without the separate
//! unhealthy-pod pass.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::hash::compute_hash;
use crate::rollout::{self, RolloutError};

/// Label carrying the template hash.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Revision annotation.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Desired-replicas annotation.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Max-replicas annotation (desired + maxSurge).
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Upstream default `spec.revisionHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// One write the controller makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet (owner reference added by the caller).
    Create(Box<ReplicaSet>),
    /// Set `spec.replicas` of a ReplicaSet and merge these annotations.
    Scale {
        /// ReplicaSet name.
        name: String,
        /// Current `spec.replicas`.
        from: i32,
        /// New `spec.replicas`.
        to: i32,
        /// Annotations to set.
        annotations: BTreeMap<String, String>,
    },
    /// Delete an old ReplicaSet beyond the history limit.
    Delete(String),
}

/// Everything one sync decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Writes, in order.
    pub actions: Vec<Action>,
    /// The status to write.
    pub status: DeploymentStatus,
}

/// Upstream 1.32 `scaleReplicaSet` event text.
pub fn scaling_message(rs: &str, from: i32, to: i32) -> String {
    let op = if to > from { "up" } else { "down" };
    format!("Scaled {op} replica set {rs} from {from} to {to}")
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn condition(
    old: Option<&DeploymentStatus>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    let prev = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_));
    let same = prev.is_some_and(|p| {
        p.status == status
            && p.reason.as_deref() == Some(reason)
            && p.message.as_deref() == Some(&message)
    });
    let transition = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => None,
    };
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: if same {
            prev.and_then(|p| p.last_update_time.clone())
        } else {
            Some(Time(now))
        },
        last_transition_time: transition.or(Some(Time(now))),
    }
}

/// Plans one sync of `d` given the ReplicaSets it controls.
pub fn plan(d: &Deployment, owned: &[&ReplicaSet], now: Timestamp) -> Result<Plan, RolloutError> {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let name = d.metadata.name.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = compute_hash(&spec.template, collision);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let (surge, unavailable) = if recreate {
        (0, desired)
    } else {
        rollout::resolve_fenceposts(
            ru.and_then(|r| r.max_surge.as_ref()),
            ru.and_then(|r| r.max_unavailable.as_ref()),
            desired,
        )?
    };
    let new_rs = owned
        .iter()
        .copied()
        .find(|r| r.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)) == Some(&hash));
    let mut old: Vec<&ReplicaSet> = owned
        .iter()
        .copied()
        .filter(|r| new_rs.is_none_or(|n| !std::ptr::eq(*r, n)))
        .collect();
    old.sort_by_key(|r| {
        (
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            r.metadata.name.clone(),
        )
    });
    let max_old_revision = old.iter().map(|r| revision(r)).max().unwrap_or(0);
    let new_revision = match new_rs {
        Some(r) if revision(r) > max_old_revision => revision(r),
        _ => max_old_revision + 1,
    };
    let annotations = BTreeMap::from([
        (REVISION.to_string(), new_revision.to_string()),
        (DESIRED_REPLICAS.to_string(), desired.to_string()),
        (MAX_REPLICAS.to_string(), (desired + surge).to_string()),
    ]);
    let all_replicas: i32 = owned.iter().map(|r| replicas(r)).sum();
    let old_running: i32 = old
        .iter()
        .map(|r| replicas(r).max(r.status.as_ref().map_or(0, |s| s.replicas)))
        .sum();
    let mut actions = Vec::new();
    let new_name = format!("{name}-{hash}");
    let new_target = if recreate {
        if old_running > 0 {
            0
        } else {
            desired
        }
    } else if let Some(n) = new_rs {
        if old.iter().all(|r| replicas(r) == 0) {
            desired
        } else {
            rollout::new_rs_replicas(desired, surge, all_replicas, replicas(n))
        }
    } else {
        rollout::new_rs_replicas(desired, surge, all_replicas, 0)
    };
    let created = new_rs.is_none();
    match new_rs {
        None => {
            let mut template = spec.template.clone();
            let tmeta = template.metadata.get_or_insert_with(Default::default);
            tmeta
                .labels
                .get_or_insert_with(Default::default)
                .insert(HASH_LABEL.into(), hash.clone());
            let mut selector = spec.selector.clone();
            selector
                .match_labels
                .get_or_insert_with(Default::default)
                .insert(HASH_LABEL.into(), hash.clone());
            actions.push(Action::Create(Box::new(ReplicaSet {
                metadata: ObjectMeta {
                    name: Some(new_name.clone()),
                    namespace: d.metadata.namespace.clone(),
                    labels: tmeta.labels.clone(),
                    annotations: Some(annotations.clone()),
                    ..Default::default()
                },
                spec: Some(ReplicaSetSpec {
                    replicas: Some(new_target),
                    min_ready_seconds: spec.min_ready_seconds,
                    selector,
                    template: Some(template),
                }),
                status: None,
            })));
        }
        Some(n) => {
            let current = n.metadata.annotations.clone().unwrap_or_default();
            let stale = annotations.iter().any(|(k, v)| current.get(k) != Some(v));
            if replicas(n) != new_target || stale {
                actions.push(Action::Scale {
                    name: n.metadata.name.clone().unwrap_or_default(),
                    from: replicas(n),
                    to: new_target,
                    annotations: annotations.clone(),
                });
            }
        }
    }
    // Scale old ReplicaSets down.
    let mut budget = if recreate {
        i32::MAX
    } else {
        let (nr, na) = new_rs.map_or((0, 0), |n| {
            (
                replicas(n),
                n.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0),
            )
        });
        rollout::old_scale_down_budget(desired, unavailable, all_replicas, nr, na)
    };
    for r in &old {
        let cur = replicas(r);
        if cur == 0 || budget == 0 {
            continue;
        }
        let by = cur.min(budget);
        budget -= by;
        actions.push(Action::Scale {
            name: r.metadata.name.clone().unwrap_or_default(),
            from: cur,
            to: cur - by,
            annotations: BTreeMap::new(),
        });
    }
    // History cleanup: old, empty ReplicaSets beyond the limit, oldest first.
    let limit = usize::try_from(
        spec.revision_history_limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .max(0),
    )
    .unwrap_or(0);
    let empty: Vec<&&ReplicaSet> = old
        .iter()
        .filter(|r| replicas(r) == 0 && r.status.as_ref().map_or(0, |s| s.replicas) == 0)
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    if empty.len() > limit {
        for r in &empty[..empty.len() - limit] {
            actions.push(Action::Delete(r.metadata.name.clone().unwrap_or_default()));
        }
    }
    // Status (upstream `calculateStatus`).
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| owned.iter().map(|r| f(r)).sum::<i32>();
    let actual = sum(&|r| r.status.as_ref().map_or(0, |s| s.replicas));
    let ready = sum(&|r| {
        r.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    });
    let available = sum(&|r| {
        r.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    });
    let updated = new_rs.map_or(0, |n| n.status.as_ref().map_or(0, |s| s.replicas));
    let old_status = d.status.as_ref();
    let min_available = desired - if recreate { 0 } else { unavailable };
    let available_cond = if available >= min_available {
        condition(
            old_status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            old_status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    let complete =
        updated == desired && actual == desired && available >= desired && old_running == 0;
    let (reason, message) = if complete && !created {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else if created {
        (
            "NewReplicaSetCreated",
            format!("Created new replica set \"{new_name}\""),
        )
    } else if old_status
        .and_then(|s| s.conditions.as_ref())
        .is_none_or(|c| !c.iter().any(|c| c.type_ == "Progressing"))
    {
        (
            "FoundNewReplicaSet",
            format!("Found new replica set \"{new_name}\""),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    };
    let progressing = condition(old_status, "Progressing", "True", reason, message, now);
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(actual),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((all_replicas.max(desired) - available).max(0)),
        conditions: Some(vec![available_cond, progressing]),
        collision_count: collision,
        terminating_replicas: None,
    };
    Ok(Plan { actions, status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn deploy(replicas: i32, image: &str) -> Deployment {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn created(plan: &Plan) -> ReplicaSet {
        match &plan.actions[0] {
            Action::Create(rs) => (**rs).clone(),
            other => panic!("expected create, got {other:?}"),
        }
    }

    fn with_status(mut rs: ReplicaSet, n: i32) -> ReplicaSet {
        rs.metadata.uid = Some(rs.metadata.name.clone().unwrap());
        rs.status = Some(ReplicaSetStatus {
            replicas: n,
            ready_replicas: Some(n),
            available_replicas: Some(n),
            ..Default::default()
        });
        rs
    }

    #[test]
    fn first_sync_creates_hashed_replicaset() {
        let d = deploy(3, "nginx:1");
        let p = plan(&d, &[], Timestamp::UNIX_EPOCH).unwrap();
        let rs = created(&p);
        let hash = compute_hash(&d.spec.as_ref().unwrap().template, None);
        assert_eq!(
            rs.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
        let a = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION], "1");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert_eq!(rs.metadata.labels.as_ref().unwrap()[HASH_LABEL], hash);
        let sel = rs
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(sel[HASH_LABEL], hash);
        let c = p.status.conditions.unwrap();
        assert_eq!(c[1].reason.as_deref(), Some("NewReplicaSetCreated"));
        assert_eq!(
            scaling_message("web-x", 0, 3),
            "Scaled up replica set web-x from 0 to 3"
        );
    }

    #[test]
    fn steady_state_is_complete_and_stable() {
        let d = deploy(3, "nginx:1");
        let rs = with_status(created(&plan(&d, &[], Timestamp::UNIX_EPOCH).unwrap()), 3);
        let p = plan(&d, &[&rs], Timestamp::UNIX_EPOCH).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let mut d2 = d.clone();
        d2.status = Some(p.status.clone());
        let p2 = plan(&d2, &[&rs], Timestamp::from_second(99).unwrap()).unwrap();
        let c = p2.status.conditions.as_ref().unwrap();
        assert_eq!(c[1].reason.as_deref(), Some("NewReplicaSetAvailable"));
        let mut d3 = d2.clone();
        d3.status = Some(p2.status.clone());
        let p3 = plan(&d3, &[&rs], Timestamp::from_second(200).unwrap()).unwrap();
        assert_eq!(p3.status, p2.status, "status must not churn");
        assert_eq!(p3.status.updated_replicas, Some(3));
        assert_eq!(c[0].reason.as_deref(), Some("MinimumReplicasAvailable"));
    }

    #[test]
    fn scale_down_then_rollout() {
        let d = deploy(3, "nginx:1");
        let rs = with_status(created(&plan(&d, &[], Timestamp::UNIX_EPOCH).unwrap()), 3);
        let p = plan(&deploy(1, "nginx:1"), &[&rs], Timestamp::UNIX_EPOCH).unwrap();
        assert!(matches!(
            &p.actions[0],
            Action::Scale { from: 3, to: 1, .. }
        ));
        // New image: a second RS with surge 1 (25% of 3 rounded up), old untouched (0 unavailable).
        let p = plan(&deploy(3, "nginx:2"), &[&rs], Timestamp::UNIX_EPOCH).unwrap();
        let new = created(&p);
        assert_eq!(new.spec.as_ref().unwrap().replicas, Some(1));
        assert_eq!(new.metadata.annotations.as_ref().unwrap()[REVISION], "2");
        assert_eq!(p.actions.len(), 1);
        // Once the new pod is available, one old pod may go.
        let new = with_status(new, 1);
        let p = plan(&deploy(3, "nginx:2"), &[&rs, &new], Timestamp::UNIX_EPOCH).unwrap();
        assert!(p.actions.contains(&Action::Scale {
            name: rs.metadata.name.clone().unwrap(),
            from: 3,
            to: 2,
            annotations: BTreeMap::new()
        }));
    }

    #[test]
    fn recreate_scales_old_to_zero_first() {
        let mut d = deploy(2, "nginx:1");
        let rs = with_status(created(&plan(&d, &[], Timestamp::UNIX_EPOCH).unwrap()), 2);
        d = deploy(2, "nginx:2");
        d.spec.as_mut().unwrap().strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let p = plan(&d, &[&rs], Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(created(&p).spec.unwrap().replicas, Some(0));
        assert!(matches!(
            &p.actions[1],
            Action::Scale { from: 2, to: 0, .. }
        ));
    }

    #[test]
    fn history_limit_deletes_oldest_empty() {
        let mut d = deploy(1, "nginx:3");
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let mut olds = Vec::new();
        for (i, img) in ["nginx:1", "nginx:2"].iter().enumerate() {
            let mut rs = with_status(
                created(&plan(&deploy(1, img), &[], Timestamp::UNIX_EPOCH).unwrap()),
                0,
            );
            rs.spec.as_mut().unwrap().replicas = Some(0);
            rs.metadata.creation_timestamp = Some(Time(Timestamp::from_second(i as i64).unwrap()));
            olds.push(rs);
        }
        let refs: Vec<&ReplicaSet> = olds.iter().collect();
        let p = plan(&d, &refs, Timestamp::UNIX_EPOCH).unwrap();
        assert!(p
            .actions
            .contains(&Action::Delete(olds[0].metadata.name.clone().unwrap())));
        assert!(!p
            .actions
            .contains(&Action::Delete(olds[1].metadata.name.clone().unwrap())));
    }
}
