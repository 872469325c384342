//! One pod on this node: start its containers in order (image step → create → start), restart
//! them by `restartPolicy` with the kubelet's crash-loop back-off, stop them on deletion, and
//! compute the status the kubelet would report (`pkg/kubelet/kubelet_pods.go`,
//! `generateAPIPodStatus`, `getPhase`; `pkg/kubelet/status/generate.go`).

mod env;
mod status;
mod sync;
pub mod volumes;

pub use env::{expand, fetch_pull_secrets, resolve_env, EnvError};
pub use status::build_status;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;

use kubepull_core::backoff::Backoff;

use crate::events::Recorder;
use crate::images::ImageManager;
use crate::runtime::{ContainerRuntime, RuntimeState};

/// `ContainerCreating`: the waiting reason before the first start.
pub const CONTAINER_CREATING: &str = "ContainerCreating";
/// `CrashLoopBackOff`.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
/// `CreateContainerConfigError` (env from a missing Secret/ConfigMap key).
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// `CreateContainerError`/`RunContainerError` (the runtime failed).
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";

/// The pod annotation an operator sets (to any new value, e.g. a timestamp) to make the node
/// retry a pod's image pulls and crashed containers now instead of waiting out the back-off:
/// `kubectl annotate pod NAME kubepull.io/retry-now="$(date +%s)" --overwrite` (or
/// `kubepull retry NAME`). The kubelet has no such control.
pub const RETRY_NOW_ANNOTATION: &str = "kubepull.io/retry-now";

/// The kubelet's container restart back-off: 10 s doubling to 300 s
/// (`pkg/kubelet/kubelet.go`: `backOffPeriod`, `MaxContainerBackOff`).
pub fn crash_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(10), Duration::from_secs(300))
}

/// What the worker knows about one container.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// Runtime ID of the current instance.
    pub id: Option<String>,
    /// Restart count.
    pub restarts: u32,
    /// Waiting reason and message while not running.
    pub waiting: Option<(String, String)>,
    /// The image ID once pulled.
    pub image_ref: String,
    /// The current instance's state.
    pub state: Option<RuntimeState>,
    /// The last terminated instance (lastState).
    pub last: Option<RuntimeState>,
}

/// Everything a pod sync needs from the node.
pub struct NodeContext {
    /// API client (node credentials).
    pub client: Client,
    /// This node's name.
    pub node_name: String,
    /// This node's IP (host network: also the pod IP).
    pub node_ip: String,
    /// The image step.
    pub images: ImageManager,
    /// The runtime.
    pub runtime: std::sync::Arc<dyn ContainerRuntime>,
    /// Event recorder.
    pub recorder: Recorder,
    /// The node's docker config.
    pub node_config: Option<kubepull_core::dockerconfig::DockerConfig>,
    /// Monotonic clock for back-offs.
    pub clock: std::sync::Arc<dyn crate::images::Clock>,
    /// Where pod volumes live, and which `hostPath`s are allowed.
    pub volumes: volumes::VolumeSettings,
}

/// A pod's worker state.
pub struct PodWorker {
    /// Per container name.
    pub tracks: HashMap<String, Track>,
    pub(crate) crash: Backoff,
    pub(crate) start_time: Option<jiff::Timestamp>,
    pub(crate) last_status: Option<serde_json::Value>,
    pub(crate) retry_now: Option<String>,
    pub(crate) volumes: volumes::PodVolumes,
}

impl Default for PodWorker {
    fn default() -> Self {
        PodWorker {
            tracks: HashMap::new(),
            crash: crash_backoff(),
            start_time: None,
            last_status: None,
            retry_now: None,
            volumes: Default::default(),
        }
    }
}

pub(crate) fn pod_full_name(pod: &Pod) -> String {
    // format.Pod: name_namespace(uid)
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}
