//! The container runtime as the pod worker sees it (the CRI runtime calls, reduced).
//!
//! The real implementation runs containers with runc through `kubepull-runtime`; tests of the pod
//! worker script one.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

/// What to run: one container of one pod, fully resolved (env values already read from Secrets
/// and ConfigMaps).
#[derive(Clone, PartialEq, Eq)]
pub struct ContainerRequest {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name.
    pub name: String,
    /// The image as written in the pod.
    pub image: String,
    /// The image ID the image step returned.
    pub image_ref: String,
    /// `command` (overrides the image entrypoint).
    pub command: Vec<String>,
    /// `args` (override the image cmd).
    pub args: Vec<String>,
    /// Environment, in order; values may be secret.
    pub env: Vec<(String, String)>,
    /// `workingDir`.
    pub working_dir: Option<String>,
    /// `securityContext.runAsUser` (container over pod).
    pub run_as_user: Option<i64>,
    /// `securityContext.runAsGroup`.
    pub run_as_group: Option<i64>,
    /// The restart count this start is (0 for the first).
    pub attempt: u32,
    /// The pod's hostname.
    pub hostname: String,
    /// The pod's network namespace to join (`None`: the host's network).
    pub netns: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for ContainerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // env values may come from Secrets: names only
        f.debug_struct("ContainerRequest")
            .field("namespace", &self.namespace)
            .field("pod_name", &self.pod_name)
            .field("name", &self.name)
            .field("image", &self.image)
            .field("attempt", &self.attempt)
            .field(
                "env",
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A container's state in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeState {
    /// Created, not started yet.
    Created,
    /// Running since `started_at` (RFC 3339).
    Running {
        /// Start time.
        started_at: jiff::Timestamp,
    },
    /// Exited.
    Exited {
        /// Exit code (128 + signal for a signal).
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`.
        reason: String,
        /// Start time.
        started_at: Option<jiff::Timestamp>,
        /// End time.
        finished_at: jiff::Timestamp,
    },
    /// The runtime no longer knows it.
    Unknown,
}

/// A container the runtime knows, for adoption after a restart of the node agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeContainer {
    /// Runtime ID.
    pub id: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name.
    pub name: String,
    /// Restart count.
    pub attempt: u32,
}

/// `kubectl logs` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the container exits.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Prefix lines with their RFC 3339 timestamps.
    pub timestamps: bool,
    /// The previous instance (attempt - 1).
    pub previous: bool,
}

/// A stream of log bytes.
pub type LogStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The runtime calls the pod worker makes.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Creates and starts a container; returns its runtime ID. The error text becomes the
    /// container's `CreateContainerError`/`RunContainerError` message: it must not contain
    /// secrets.
    async fn start(&self, req: &ContainerRequest) -> Result<String, String>;
    /// The state of a container.
    async fn state(&self, id: &str) -> RuntimeState;
    /// Stops a container: SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), String>;
    /// Removes a stopped container and its files.
    async fn remove(&self, id: &str) -> Result<(), String>;
    /// Every container the runtime has.
    async fn list(&self) -> Result<Vec<RuntimeContainer>, String>;
    /// The logs of a container.
    async fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStream, String>;
}
