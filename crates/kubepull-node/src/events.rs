//! Events the node agent records, as the kubelet's event recorder does: `core/v1` Events with
//! `source.component: kubelet`, aggregated by (object, field path, reason, message) so a repeated
//! event bumps `count` and `lastTimestamp` instead of creating a new object (client-go
//! `tools/record/events_cache.go`, `EventCorrelator`, simplified to exact-match aggregation).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::images::EventType;

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Involved {
    /// `Pod`, `Node`.
    pub kind: String,
    /// Namespace (empty for cluster objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// API version.
    pub api_version: String,
    /// Resource version at the time.
    pub resource_version: String,
    /// `spec.containers{name}` or empty.
    pub field_path: String,
}

impl Involved {
    /// A pod, or one of its containers when `container` is given.
    pub fn pod(pod: &Pod, container: Option<&str>) -> Involved {
        Involved {
            kind: "Pod".into(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            api_version: "v1".into(),
            resource_version: pod.metadata.resource_version.clone().unwrap_or_default(),
            field_path: container
                .map(|c| format!("spec.containers{{{c}}}"))
                .unwrap_or_default(),
        }
    }
}

struct Seen {
    name: String,
    namespace: String,
    count: i32,
}

/// Records events for one node.
pub struct Recorder {
    client: Client,
    node: String,
    seen: Mutex<HashMap<(Involved, String, String), Seen>>,
}

/// How many distinct events are remembered for aggregation (client-go uses an LRU of 4096).
const MAX_REMEMBERED: usize = 4096;

impl Recorder {
    /// A recorder for `node`.
    pub fn new(client: Client, node: &str) -> Self {
        Recorder {
            client,
            node: node.to_string(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event; failures are logged, never fatal (as in the kubelet).
    pub async fn record(&self, obj: &Involved, event_type: EventType, reason: &str, message: &str) {
        if let Err(e) = self.try_record(obj, event_type, reason, message).await {
            tracing::warn!(reason, object = %obj.name, error = %e, "could not record event");
        }
    }

    async fn try_record(
        &self,
        obj: &Involved,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        // aggregate across resource versions of the object (client-go keys on the object's
        // identity and field path, not its resourceVersion)
        let mut ident = obj.clone();
        ident.resource_version.clear();
        let key = (ident, reason.to_string(), message.to_string());
        let previous = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.get(&key)
                .map(|s| (s.name.clone(), s.namespace.clone(), s.count))
        };
        let ns = if obj.namespace.is_empty() {
            "default".to_string()
        } else {
            obj.namespace.clone()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Some((name, ns, count)) = previous {
            let patch = serde_json::json!({
                "count": count + 1,
                "lastTimestamp": Time(now),
            });
            let r = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if r.is_ok() {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(s) = seen.get_mut(&key) {
                    s.count = count + 1;
                    s.namespace = ns;
                }
                return Ok(());
            }
            // The event expired or was deleted: create a new one.
        }
        // client-go names events `<object name>.<unique hex>`
        let name = format!("{}.{:x}", obj.name, now.as_nanosecond());
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some(obj.kind.clone()),
                namespace: (!obj.namespace.is_empty()).then(|| obj.namespace.clone()),
                name: Some(obj.name.clone()),
                uid: Some(obj.uid.clone()),
                api_version: Some(obj.api_version.clone()),
                resource_version: (!obj.resource_version.is_empty())
                    .then(|| obj.resource_version.clone()),
                field_path: (!obj.field_path.is_empty()).then(|| obj.field_path.clone()),
            },
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(event_type.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &ev).await?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(
            key,
            Seen {
                name,
                namespace: ns,
                count: 1,
            },
        );
        Ok(())
    }
}
