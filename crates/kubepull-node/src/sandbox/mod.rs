//! Pod sandboxes and the container isolation containerd's CRI plugin gives a pod.
//!
//! - [`security`]: the kubelet's side: the effective security context (pod and container level
//!   merged), `runAsNonRoot` verification, sysctl admission, QoS class, cgroup resources and
//!   `oom_score_adj`, with the kubelet's exact errors.
//! - [`spec`]: the OCI runtime spec containerd builds for a container
//!   (`populateDefaultUnixSpec`, then CRI `buildLinuxSpec` in its order), with [`oci_spec`] types.
//! - [`seccomp`]: containerd's RuntimeDefault seccomp profile as data.
//! - [`netns`]: the pod's persistent named network namespace (`/run/netns/kp-…`).
//! - [`pause`]: the per-pod holder of the IPC, UTS (and shared PID) namespaces.
//! - [`files`]: the per-pod `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`.

pub mod files;
pub mod netns;
pub mod pause;
pub mod seccomp;
pub mod security;
pub mod spec;

use serde::{Deserialize, Serialize};

/// What a pod's sandbox is: computed by the pod worker from the pod spec, created by the runtime
/// before the pod's first container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSandbox {
    /// Pod UID.
    pub pod_uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// The pod hostname (§9.1; empty for hostNetwork pods, which keep the node's).
    pub hostname: String,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `spec.hostPID`.
    pub host_pid: bool,
    /// `spec.hostIPC`.
    pub host_ipc: bool,
    /// `spec.shareProcessNamespace`.
    pub share_pid: bool,
    /// `spec.securityContext.sysctls`, already admitted.
    pub sysctls: Vec<(String, String)>,
    /// `Guaranteed`, `Burstable` or `BestEffort`.
    pub qos: String,
    /// `spec.hostAliases`: IP and names.
    pub host_aliases: Vec<(String, Vec<String>)>,
    /// The `resolv.conf` the pod's containers get.
    pub resolv_conf: String,
    /// The cgroup parent of the pod's containers (`/kubepods/<qos>/pod<uid>`).
    pub cgroup_parent: String,
    /// The values of the pod cgroup itself.
    #[serde(default)]
    pub pod_resources: PodResources,
}

/// The pod cgroup's values (k8s `pkg/kubelet/cm/helpers_linux.go` `ResourceConfigForPod`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodResources {
    /// `cpu.shares`.
    pub cpu_shares: u64,
    /// CFS quota in µs per period; 0: none.
    pub cpu_quota: i64,
    /// CFS period in µs.
    pub cpu_period: u64,
    /// Memory limit in bytes; 0: none.
    pub memory_limit: i64,
}

/// Seccomp for one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// containerd's default profile ([`seccomp::default_profile`]).
    #[default]
    RuntimeDefault,
    /// No filter.
    Unconfined,
}

/// CPU and memory limits of one container, as the kubelet computes them
/// (`calculateLinuxResources`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// `cpu.shares` (2 when the container asks for nothing).
    pub cpu_shares: u64,
    /// CFS quota in µs per period; 0 when there is no CPU limit.
    pub cpu_quota: i64,
    /// CFS period in µs.
    pub cpu_period: u64,
    /// Memory limit in bytes; 0 when there is none.
    pub memory_limit: i64,
    /// `oom_score_adj` by QoS.
    pub oom_score_adj: i32,
}

/// One container's effective security settings (§4.1), resolved by the pod worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSecurity {
    /// Effective `runAsUser`.
    pub run_as_user: Option<i64>,
    /// Effective `runAsGroup`.
    pub run_as_group: Option<i64>,
    /// fsGroup, then `supplementalGroups` (the CRI `SupplementalGroups`).
    pub supplemental_groups: Vec<i64>,
    /// `capabilities.add`, verbatim.
    pub cap_add: Vec<String>,
    /// `capabilities.drop`, verbatim.
    pub cap_drop: Vec<String>,
    /// `privileged`.
    pub privileged: bool,
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privs: bool,
    /// `procMount: Unmasked`.
    pub unmasked_proc: bool,
    /// The seccomp profile.
    pub seccomp: Seccomp,
    /// Resources.
    pub resources: Resources,
}
