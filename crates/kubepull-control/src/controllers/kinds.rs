//! The typed objects the controllers read and write (k8s-openapi's API types, as client-go's
//! typed clientsets and listers hand them to kube-controller-manager): decoded once when an
//! informer receives them, serialized only when a write goes out. Fields these types do not
//! know are dropped on decoding, as a Go controller's typed decode drops them.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, ObjectReference, PersistentVolumeClaim, Pod,
    ReplicationController, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use crate::resources::{self, Resource};

/// A type the controllers cache and write.
pub trait Kind:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Clone
    + std::fmt::Debug
    + PartialEq
    + Send
    + Sync
    + 'static
{
    /// The cached object when it is of this type.
    fn cached(o: &Cached) -> Option<&Arc<Self>>;
    /// Wraps a cached object.
    fn wrap(o: Arc<Self>) -> Cached;
    /// Wraps an object for a write.
    fn into_object(self) -> Object;
}

/// The served resource of `K`.
pub fn resource_of<K: Kind>() -> &'static Resource {
    resources::RESOURCES
        .iter()
        .find(|r| r.group == K::GROUP && r.version == K::VERSION && r.plural == K::URL_PATH_SEGMENT)
        .expect("a served resource")
}

macro_rules! kinds {
    ($($t:ident),* $(,)?) => {
        /// An object as an informer caches it.
        #[derive(Debug, Clone)]
        pub enum Cached {
            $(
                #[doc = concat!("A `", stringify!($t), "`.")]
                $t(Arc<$t>),
            )*
        }

        /// An object a write carries.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Object {
            $(
                #[doc = concat!("A `", stringify!($t), "`.")]
                $t($t),
            )*
            /// An object of a kind not typed here, as JSON.
            Json(Value),
        }

        impl Cached {
            /// Its metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Cached::$t(o) => &o.metadata,)*
                }
            }
        }

        impl Object {
            /// The JSON the API server receives (with `apiVersion` and `kind`).
            pub fn to_value(&self) -> serde_json::Result<Value> {
                match self {
                    $(Object::$t(o) => serde_json::to_value(o),)*
                    Object::Json(v) => Ok(v.clone()),
                }
            }
        }

        $(
            impl Kind for $t {
                fn cached(o: &Cached) -> Option<&Arc<Self>> {
                    match o {
                        Cached::$t(x) => Some(x),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
                fn wrap(o: Arc<Self>) -> Cached {
                    Cached::$t(o)
                }
                fn into_object(self) -> Object {
                    Object::$t(self)
                }
            }

            impl From<$t> for Object {
                fn from(o: $t) -> Object {
                    Object::$t(o)
                }
            }
        )*

        /// The decoder of the storage prefix `prefix`, if a controller caches it.
        pub fn decoder(prefix: &str) -> Option<Decoder> {
            $(
                if resource_of::<$t>().key_prefix() == prefix {
                    return Some(decode::<$t>);
                }
            )*
            None
        }
    };
}

kinds!(
    Pod,
    ReplicaSet,
    Deployment,
    Job,
    CronJob,
    Service,
    Endpoints,
    EndpointSlice,
    Namespace,
    Node,
    Lease,
    ConfigMap,
    DaemonSet,
    StatefulSet,
    ControllerRevision,
    PersistentVolumeClaim,
    ReplicationController,
    PodDisruptionBudget,
);

/// Decodes stored bytes into a cached object.
pub type Decoder = fn(&[u8], u64) -> serde_json::Result<Cached>;

/// Decodes `bytes` (the stored JSON) as `K`, with `resourceVersion` the revision it was stored
/// at; a pod keeps only what the controllers read ([`trim_pod`]).
pub fn decode<K: Kind>(bytes: &[u8], revision: u64) -> serde_json::Result<Cached> {
    let mut o: K = serde_json::from_slice(bytes)?;
    let m = k8s_openapi::Metadata::metadata_mut(&mut o);
    m.resource_version = Some(revision.to_string());
    m.managed_fields = None;
    let c = K::wrap(Arc::new(o));
    Ok(match c {
        Cached::Pod(p) => Cached::Pod(Arc::new(trim_pod(Arc::unwrap_or_clone(p)))),
        c => c,
    })
}

/// The pod fields the controllers read from the cache; the rest of a pod (volumes, images,
/// commands, env, status details) is not kept (`SharedIndexInformer.SetTransform`, which
/// kube-controller-manager uses to drop `managedFields`). Whoever needs more reads the pod.
///
/// - every controller: name, namespace, uid, resourceVersion, generation, creation and
///   deletion timestamps, labels, ownerReferences, finalizers (the Job's tracking finalizer),
///   `status.phase`, `status.conditions` (Ready for ReplicaSets and Endpoints,
///   `DisruptionTarget` for Jobs);
/// - scheduler: `spec.nodeName`, `spec.nodeSelector`, `spec.schedulingGates` (a gated pod
///   is not scheduled);
/// - Job: the completion-index annotation (`batch.kubernetes.io/job-completion-index`) and
///   the index failure counts (`batch.kubernetes.io/job-index-failure-count`,
///   `job-index-ignored-failure-count`: `backoffLimitPerIndex`), the only annotations kept,
///   and per container and init container status its name,
///   `restartCount` (`OnFailure` back-off) and terminated state's `exitCode` (the
///   `podFailurePolicy`'s `onExitCodes`) and `finishedAt` (the failure back-off);
/// - Endpoints and EndpointSlices: `spec.hostname`, `spec.subdomain`, the containers that
///   declare ports with their name and ports' name, number and protocol (a named
///   `targetPort`), `status.podIP`, `status.podIPs`, `spec.nodeName`.
pub fn trim_pod(p: Pod) -> Pod {
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, ContainerState, ContainerStateTerminated, ContainerStatus,
        PodSpec, PodStatus,
    };
    // every kept list is collected afresh and shrunk: `into_iter().map().collect()` into the
    // same element type reuses the source's allocation, which would keep a whole container
    // per pod alive
    fn fresh<T>(mut v: Vec<T>) -> Vec<T> {
        v.shrink_to_fit();
        v
    }
    // a container status: its name, restarts and termination (exit code, finish time)
    fn trim_statuses(cs: Vec<ContainerStatus>) -> Vec<ContainerStatus> {
        fresh(
            cs.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    restart_count: c.restart_count,
                    state: c
                        .state
                        .and_then(|st| st.terminated)
                        .map(|t| ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: t.exit_code,
                                finished_at: t.finished_at,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    ..Default::default()
                })
                .collect(),
        )
    }
    let m = p.metadata;
    let annotations = m.annotations.and_then(|mut a| {
        let kept: std::collections::BTreeMap<String, String> = [
            super::job::INDEX_KEY,
            super::job::INDEX_FAILURE_COUNT_KEY,
            super::job::INDEX_IGNORED_FAILURE_COUNT_KEY,
        ]
        .into_iter()
        .filter_map(|k| a.remove_entry(k))
        .collect();
        (!kept.is_empty()).then_some(kept)
    });
    Pod {
        metadata: ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            labels: m.labels,
            annotations,
            owner_references: m.owner_references,
            finalizers: m.finalizers,
            ..Default::default()
        },
        spec: p.spec.map(|s| PodSpec {
            node_name: s.node_name,
            node_selector: s.node_selector,
            // what decides where a pod may run: its required node affinity (a DaemonSet's
            // pods name their node there) and its tolerations
            affinity: s
                .affinity
                .and_then(|a| a.node_affinity)
                .and_then(|na| na.required_during_scheduling_ignored_during_execution)
                .map(|req| k8s_openapi::api::core::v1::Affinity {
                    node_affinity: Some(k8s_openapi::api::core::v1::NodeAffinity {
                        required_during_scheduling_ignored_during_execution: Some(req),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            tolerations: s.tolerations.map(fresh),
            scheduling_gates: s.scheduling_gates,
            hostname: s.hostname,
            subdomain: s.subdomain,
            containers: fresh(
                s.containers
                    .into_iter()
                    .filter(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
                    .map(|c| Container {
                        name: c.name,
                        ports: c.ports.map(|ps| {
                            fresh(
                                ps.into_iter()
                                    .map(|p| ContainerPort {
                                        name: p.name,
                                        container_port: p.container_port,
                                        protocol: p.protocol,
                                        ..Default::default()
                                    })
                                    .collect(),
                            )
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: p.status.map(|s| PodStatus {
            phase: s.phase,
            conditions: s.conditions,
            pod_ip: s.pod_ip,
            pod_ips: s.pod_ips,
            container_statuses: s.container_statuses.map(trim_statuses),
            init_container_statuses: s.init_container_statuses.map(trim_statuses),
            ..Default::default()
        }),
    }
}

/// `metadata.name` (empty when unset).
pub fn name(m: &ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or("")
}

/// `metadata.namespace` (empty when unset).
pub fn namespace(m: &ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or("")
}

/// `metadata.uid` (empty when unset).
pub fn uid(m: &ObjectMeta) -> &str {
    m.uid.as_deref().unwrap_or("")
}

/// `namespace/name` of an object.
pub fn key_of(m: &ObjectMeta) -> String {
    format!("{}/{}", namespace(m), name(m))
}

/// The controller ownerReference (`metav1.GetControllerOf`).
pub fn controller_ref(m: &ObjectMeta) -> Option<&OwnerReference> {
    m.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The controller ownerReference of `m` when it is of `kind`: `(name, uid)`.
pub fn controller_of<'a>(m: &'a ObjectMeta, kind: &str) -> Option<(&'a str, &'a str)> {
    controller_ref(m)
        .filter(|r| r.kind == kind)
        .map(|r| (r.name.as_str(), r.uid.as_str()))
}

/// The ownerReference a controller puts on what it creates (`metav1.NewControllerRef`).
pub fn new_controller_ref<K: Kind>(owner: &K) -> OwnerReference {
    let m = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: name(m).to_string(),
        uid: uid(m).to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The reference an event about `o` names (`reference.GetReference`).
pub fn reference<K: Kind>(o: &K) -> ObjectReference {
    let m = o.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path: None,
    }
}

/// `metav1.Time` of `t`, whole seconds as it is serialized.
pub fn meta_time(t: jiff::Timestamp) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(t.as_second()).unwrap_or(t),
    )
}

/// `metav1.Now()` as it is serialized: whole seconds.
pub fn now_seconds() -> jiff::Timestamp {
    meta_time(jiff::Timestamp::now()).0
}

/// `metadata.resourceVersion` (empty when unset).
pub fn resource_version(m: &ObjectMeta) -> &str {
    m.resource_version.as_deref().unwrap_or("")
}

/// A pod's `status.phase` (empty when unset).
pub fn pod_phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the pod's `Ready` condition is true (`podutil.IsPodReady`).
pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Listed objects decoded as `K`; one that does not decode is logged and left out.
pub fn decode_listed<K: Kind>(items: Vec<Value>) -> Vec<K> {
    items
        .into_iter()
        .filter_map(|v| {
            let key = format!(
                "{}/{}",
                v.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                v.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            );
            match serde_json::from_value::<K>(v) {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(kind = K::KIND, object = %key, error = %e, "object does not decode; left out");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_once_with_the_revision_and_trims_pods() {
        let bytes = serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "a", "uid": "u", "annotations": {"x": "y"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "hostIP": "10.0.0.1"},
            "unknownField": 1,
        }))
        .unwrap();
        let d = decoder("/registry/pods/").unwrap();
        let Cached::Pod(p) = d(&bytes, 42).unwrap() else {
            panic!("not a pod")
        };
        assert_eq!(p.metadata.resource_version.as_deref(), Some("42"));
        assert!(p.metadata.annotations.is_none() && p.metadata.managed_fields.is_none());
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.containers.is_empty());
        // nothing of the dropped containers stays allocated
        assert_eq!(spec.containers.capacity(), 0);
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert!(p.status.as_ref().unwrap().host_ip.is_none());
        // not a pod's shape: an error, not a panic
        assert!(d(br#"{"metadata": {"name": 5}}"#, 1).is_err());
        assert!(d(br#"{"kind": "Node"}"#, 1).is_err());
    }

    #[test]
    fn every_controller_prefix_has_a_decoder() {
        for p in [
            "/registry/pods/",
            "/registry/apps/replicasets/",
            "/registry/apps/deployments/",
            "/registry/batch/jobs/",
            "/registry/batch/cronjobs/",
            "/registry/services/",
            "/registry/endpoints/",
            "/registry/discovery.k8s.io/endpointslices/",
            "/registry/namespaces/",
            "/registry/nodes/",
            "/registry/coordination.k8s.io/leases/",
            "/registry/configmaps/",
        ] {
            assert!(decoder(p).is_some(), "{p}");
        }
        assert!(decoder("/registry/secrets/").is_none());
    }

    #[test]
    fn owner_and_event_references() {
        let rs: ReplicaSet = serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "a", "uid": "u1", "resourceVersion": "3"}}),
        )
        .unwrap();
        let r = new_controller_ref(&rs);
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.uid.as_str()),
            ("apps/v1", "ReplicaSet", "u1")
        );
        let m = ObjectMeta {
            owner_references: Some(vec![r]),
            ..Default::default()
        };
        assert_eq!(controller_of(&m, "ReplicaSet"), Some(("web", "u1")));
        assert_eq!(controller_of(&m, "Job"), None);
        let e = reference(&rs);
        assert_eq!(e.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(e.resource_version.as_deref(), Some("3"));
    }
}
