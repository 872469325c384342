//! One pod on this node: start its containers in order (image step → create → start), restart
//! them by `restartPolicy` with the kubelet's crash-loop back-off, stop them on deletion, and
//! compute the status the kubelet would report (`pkg/kubelet/kubelet_pods.go`,
//! `generateAPIPodStatus`, `getPhase`; `pkg/kubelet/status/generate.go`).

mod env;
mod status;
mod sync;
pub mod volumes;

pub use env::{expand, fetch_pull_secrets, resolve_env, EnvError};
pub use status::{build_status, build_status_with_ips, build_terminal_status, host_network};

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
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
/// `RunContainerError` (the runtime could not start a created container).
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
/// `CreateContainerError` (the runtime could not create the container: image config, rootfs,
/// OCI spec, user), as for a failed CRI `CreateContainer`.
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";

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

/// The cgroup under which pods run (the kubelet's cgroupfs-driver root `/kubepods`).
pub const DEFAULT_CGROUP_ROOT: &str = "/kubepods";

/// The pod worker's back-off after a sync that ended in an error (k8s `pkg/kubelet/kubelet.go`
/// `backOffPeriod`).
pub const BACK_OFF_PERIOD: Duration = Duration::from_secs(10);

/// When a sync that ended in an error is requeued: `wait.Jitter(backOffPeriod, 0.5)`, i.e.
/// uniformly in [10 s, 15 s) (k8s `pkg/kubelet/pod_workers.go` `completeWork`, the rule of the
/// releases before the `MinBackoffExpiration` clamp, which gives the same delay for image
/// pulls). `unit` is a random number in [0, 1).
pub fn requeue_after_error(unit: f64) -> Duration {
    BACK_OFF_PERIOD.mul_f64(1.0 + 0.5 * unit.clamp(0.0, 0.999_999))
}

/// A random number in [0, 1).
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The effective security context of a container with its resources, and the kubelet's
/// `verifyRunAsNonRoot` against the image user. The error is the
/// `CreateContainerConfigError` message.
pub(crate) async fn container_security(
    ctx: &NodeContext,
    pod: &Pod,
    c: &Container,
    image: &str,
) -> Result<crate::sandbox::ContainerSecurity, String> {
    use crate::sandbox::security;
    let mut sec = security::effective(pod, c)?;
    let image_user = ctx.runtime.image_user(image).await?;
    security::verify_run_as_non_root(pod, c, image_user.as_deref().unwrap_or(""))?;
    let qos = security::pod_qos(pod);
    sec.resources = security::resources(c, &qos, security::node_memory());
    Ok(sec)
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
    /// CNI pod networking (`None`: every pod uses the host's network).
    pub network: Option<crate::podnet::PodNetwork>,
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
    /// The sandbox exists (created or found again by the runtime).
    pub(crate) sandbox_ready: bool,
    /// Admission rejected the pod: (reason, message); the pod is Failed.
    pub(crate) rejected: Option<(String, String)>,
    /// The pod's network attachment once CNI ADD succeeded.
    pub net: Option<crate::podnet::PodIps>,
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
            sandbox_ready: false,
            rejected: None,
            net: None,
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
