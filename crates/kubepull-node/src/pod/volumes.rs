//! Pod volumes (Secret, ConfigMap, emptyDir, downward API, projected, hostPath) and the
//! container mounts they give.
//!
//! Each volume lives under `<pods dir>/<pod uid>/volumes/kubernetes.io~<plugin>/<name>` (the
//! kubelet's layout, `pkg/kubelet/kubelet_getters.go` `getPodVolumeDir`); the pod directory is
//! 0700. Secret and projected volumes are tmpfs mounts (their content never reaches the disk);
//! `emptyDir` is a 0777 directory, or a tmpfs with `medium: Memory` (`size=` the `sizeLimit`).
//! Secret, ConfigMap, downward API and projected volumes are written with the kubelet's atomic
//! writer ([`atomic_write`]) and re-read from the API server on a periodic resync
//! ([`VOLUME_RESYNC`]), so a running container sees a rotated Secret within that period
//! (`subPath` mounts never update, as upstream). `hostPath` is refused unless the admin allowed
//! the path's directory with `--allow-host-path`.
//!
//! The runtime gets a plain list of [`Mount`]s (bind mounts).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::PostParams;
use kube::{Api, Client};

/// How often Secret, ConfigMap, downward API and projected volumes are re-read and rewritten
/// (the kubelet re-runs `SetUp` on every pod sync, about once a minute, with a watch-fed
/// cache; kubepull re-reads on its own, shorter period).
pub const VOLUME_RESYNC: Duration = Duration::from_secs(10);

/// The API server's `defaultMode` default for secret, configMap, downwardAPI and projected
/// volumes.
pub const DEFAULT_MODE: u32 = 0o644;

/// The kubelet's projected token expiry when none is given (`WarnOnlyBoundTokenExpirationSeconds`
/// is 3607; the API default of `expirationSeconds` is 3600).
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// What a mount comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    /// `secret`.
    Secret,
    /// `configMap`.
    ConfigMap,
    /// `emptyDir` on disk.
    EmptyDir,
    /// `emptyDir` with `medium: Memory` (tmpfs).
    EmptyDirMemory,
    /// `downwardAPI`.
    DownwardApi,
    /// `projected`.
    Projected,
    /// `hostPath`.
    HostPath,
}

impl VolumeKind {
    /// The kubelet's plugin directory name.
    fn plugin_dir(self) -> &'static str {
        match self {
            VolumeKind::Secret => "kubernetes.io~secret",
            VolumeKind::ConfigMap => "kubernetes.io~configmap",
            VolumeKind::EmptyDir | VolumeKind::EmptyDirMemory => "kubernetes.io~empty-dir",
            VolumeKind::DownwardApi => "kubernetes.io~downward-api",
            VolumeKind::Projected => "kubernetes.io~projected",
            VolumeKind::HostPath => "kubernetes.io~host-path",
        }
    }

    /// Volumes the kubelet always mounts read-only into containers.
    fn always_read_only(self) -> bool {
        matches!(
            self,
            VolumeKind::Secret
                | VolumeKind::ConfigMap
                | VolumeKind::DownwardApi
                | VolumeKind::Projected
        )
    }
}

/// One container mount: `host_path` bind-mounted at `container_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The source on the host.
    pub host_path: PathBuf,
    /// The destination in the container.
    pub container_path: String,
    /// Read-only bind.
    pub read_only: bool,
    /// What it comes from.
    pub kind: VolumeKind,
}

/// Node settings for volumes.
#[derive(Debug, Clone, Default)]
pub struct VolumeSettings {
    /// `<node root>/pods`.
    pub pods_dir: PathBuf,
    /// Host directories under which `hostPath` volumes are allowed (`--allow-host-path`); empty:
    /// none.
    pub host_path_allowed: Vec<PathBuf>,
}

/// A volume that could not be set up: the kubelet's `FailedMount` event message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "MountVolume.SetUp failed for volume {} : {message}",
    kubepull_core::gostr::quote(volume)
)]
pub struct VolumeError {
    /// The volume name.
    pub volume: String,
    /// Why (never holds Secret data or tokens).
    pub message: String,
}

/// A service account token held for a projected volume. Never printed.
#[derive(Clone)]
struct CachedToken {
    token: String,
    /// Clock time when it was issued.
    issued: Duration,
    ttl: Duration,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A pod's volume state, kept by its worker.
#[derive(Debug, Default)]
pub struct PodVolumes {
    /// Volume name → (host directory, kind), once set up.
    pub ready: HashMap<String, (PathBuf, VolumeKind)>,
    /// Clock time of the last full setup.
    pub synced_at: Option<Duration>,
    tokens: HashMap<String, CachedToken>,
}

impl PodVolumes {
    /// Whether every volume of the pod was set up at least once.
    pub fn all_ready(&self, pod: &Pod) -> bool {
        pod_volumes(pod)
            .iter()
            .all(|v| self.ready.contains_key(&v.name))
    }

    /// Whether a resync is due.
    pub fn due(&self, now: Duration) -> bool {
        match self.synced_at {
            None => true,
            Some(t) => now.saturating_sub(t) >= VOLUME_RESYNC,
        }
    }
}

fn pod_volumes(pod: &Pod) -> Vec<Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default()
}

/// One file of an atomic-writer payload.
#[derive(Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// Content.
    pub data: Vec<u8>,
    /// Mode bits.
    pub mode: u32,
}

impl std::fmt::Debug for FileProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // content may be Secret data
        f.debug_struct("FileProjection")
            .field("len", &self.data.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// The pod's `fsGroup`, if set.
fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

/// Sets up (or refreshes) every volume of `pod`. Volumes that fail are reported in the returned
/// list; the others are set up anyway. `now` is the worker's clock (token refresh).
pub async fn setup(
    client: &Client,
    settings: &VolumeSettings,
    pod: &Pod,
    state: &mut PodVolumes,
    now: Duration,
) -> Vec<VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut errors = vec![];
    if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
        errors.push(VolumeError {
            volume: String::new(),
            message: "the pod has no usable metadata.uid".into(),
        });
        return errors;
    }
    let pod_dir = settings.pods_dir.join(&uid);
    if let Err(e) = make_private_dirs(&settings.pods_dir, &pod_dir) {
        errors.push(VolumeError {
            volume: String::new(),
            message: format!("create {}: {e}", pod_dir.display()),
        });
        return errors;
    }
    for v in pod_volumes(pod) {
        match setup_one(client, settings, pod, &pod_dir, &v, state, now).await {
            Ok((path, kind)) => {
                state.ready.insert(v.name.clone(), (path, kind));
            }
            Err(message) => errors.push(VolumeError {
                volume: v.name.clone(),
                message,
            }),
        }
    }
    state.synced_at = Some(now);
    errors
}

fn make_private_dirs(pods_dir: &Path, pod_dir: &Path) -> io::Result<()> {
    for d in [pods_dir, pod_dir] {
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

async fn setup_one(
    client: &Client,
    settings: &VolumeSettings,
    pod: &Pod,
    pod_dir: &Path,
    v: &Volume,
    state: &mut PodVolumes,
    now: Duration,
) -> Result<(PathBuf, VolumeKind), String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    if let Some(hp) = &v.host_path {
        return host_path(settings, &hp.path, hp.type_.as_deref().unwrap_or(""))
            .map(|p| (p, VolumeKind::HostPath));
    }
    let kind = if v.secret.is_some() {
        VolumeKind::Secret
    } else if v.config_map.is_some() {
        VolumeKind::ConfigMap
    } else if let Some(e) = &v.empty_dir {
        match e.medium.as_deref().unwrap_or("") {
            "" => VolumeKind::EmptyDir,
            "Memory" => VolumeKind::EmptyDirMemory,
            other => {
                return Err(format!(
                    "emptyDir medium {} is not supported on this node (use \"\" or \"Memory\")",
                    kubepull_core::gostr::quote(other)
                ))
            }
        }
    } else if v.downward_api.is_some() {
        VolumeKind::DownwardApi
    } else if v.projected.is_some() {
        VolumeKind::Projected
    } else {
        return Err(
            "this volume type is not supported by kubepull (supported: secret, configMap, \
             emptyDir, downwardAPI, projected, hostPath)"
                .into(),
        );
    };
    if v.name.is_empty() || v.name.contains('/') || v.name.starts_with('.') {
        return Err("invalid volume name".into());
    }
    let dir = pod_dir
        .join("volumes")
        .join(kind.plugin_dir())
        .join(&v.name);
    let fresh = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let gid = fs_group(pod);
    match kind {
        VolumeKind::EmptyDir | VolumeKind::EmptyDirMemory => {
            // a Memory volume is mounted again if its tmpfs is gone (the node rebooted)
            let remount = kind == VolumeKind::EmptyDirMemory && !is_mount_point(&dir);
            if fresh || remount {
                if remount {
                    let limit = empty_dir_size_limit(v)?;
                    let size = memory_medium_size(pod, limit, bytes(node_allocatable("memory")));
                    mount_tmpfs(&dir, 0o777, size)?;
                }
                // the kubelet: 0777 (umask ignored), group fsGroup with setgid
                set_mode(&dir, 0o777)?;
                if let Some(g) = gid {
                    chown_gid(&dir, g)?;
                    set_mode(&dir, 0o777 | 0o2000)?;
                }
            }
            return Ok((dir, kind));
        }
        VolumeKind::Secret | VolumeKind::Projected if fresh || !is_mount_point(&dir) => {
            // secrets live in memory only (the kubelet's secret volumes are tmpfs)
            mount_tmpfs(&dir, 0o755, None)?;
        }
        _ => {}
    }
    let payload = match kind {
        VolumeKind::Secret => {
            let s = v.secret.as_ref().ok_or("secret source missing")?;
            let name = s.secret_name.clone().unwrap_or_default();
            let mode = mode_of(s.default_mode);
            match get_secret(client, &ns, &name).await? {
                Some(data) => project_keys(&data, s.items.as_deref(), mode, "Secret", &name)?,
                None if s.optional.unwrap_or(false) => BTreeMap::new(),
                None => {
                    return Err(format!(
                        "secret {} not found",
                        kubepull_core::gostr::quote(&name)
                    ))
                }
            }
        }
        VolumeKind::ConfigMap => {
            let c = v.config_map.as_ref().ok_or("configMap source missing")?;
            let name = c.name.clone();
            let mode = mode_of(c.default_mode);
            match get_config_map(client, &ns, &name).await? {
                Some(data) => project_keys(&data, c.items.as_deref(), mode, "ConfigMap", &name)?,
                None if c.optional.unwrap_or(false) => BTreeMap::new(),
                None => {
                    return Err(format!(
                        "configmap {} not found",
                        kubepull_core::gostr::quote(&name)
                    ))
                }
            }
        }
        VolumeKind::DownwardApi => {
            let d = v
                .downward_api
                .as_ref()
                .ok_or("downwardAPI source missing")?;
            let mode = mode_of(d.default_mode);
            downward_files(pod, d.items.as_deref().unwrap_or(&[]), mode)?
        }
        VolumeKind::Projected => projected_payload(client, pod, &ns, &v.name, state, now).await?,
        _ => BTreeMap::new(),
    };
    atomic_write(&dir, &payload, gid).map_err(|e| format!("write {}: {e}", dir.display()))?;
    Ok((dir, kind))
}

/// An emptyDir's `sizeLimit` in bytes (rounded up, as `Quantity.Value`), or why it is not a
/// quantity.
fn empty_dir_size_limit(v: &Volume) -> Result<Option<u64>, String> {
    v.empty_dir
        .as_ref()
        .and_then(|e| e.size_limit.as_ref())
        .map(|q| quantity(&q.0, kubepull_core::qos::quantity_value).map(bytes))
        .transpose()
        .map_err(|e| format!("emptyDir sizeLimit: {e}"))
}

/// A byte count as a size: a negative one is 0, one past `u64` the largest.
fn bytes(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// The tmpfs size of a `medium: Memory` emptyDir (`pkg/volume/emptydir/empty_dir.go`,
/// `SizeMemoryBackedVolumes`): the smallest positive value of the node's allocatable memory, the
/// pod's memory limit (the sum of its containers' limits, only when every container has one, as
/// `ResourceConfigForPod`), and `sizeLimit`.
pub fn memory_medium_size(pod: &Pod, size_limit: Option<u64>, node_memory: u64) -> Option<u64> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let limits: Option<Vec<u64>> = containers
        .iter()
        .map(|c| {
            c.resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get("memory"))
                .and_then(|q| kubepull_core::qos::quantity_value(&q.0))
                .map(bytes)
        })
        .collect();
    let pod_limit = limits
        .filter(|l| !l.is_empty())
        .map(|l| l.iter().fold(0u64, |sum, n| sum.saturating_add(*n)));
    [Some(node_memory), pod_limit, size_limit]
        .into_iter()
        .flatten()
        .filter(|n| *n > 0)
        .min()
}

fn mode_of(m: Option<i32>) -> u32 {
    m.map(|m| (m as u32) & 0o7777).unwrap_or(DEFAULT_MODE)
}

fn api_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

async fn get_secret(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(s)) => {
            let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in s.string_data.unwrap_or_default() {
                out.insert(k, v.into_bytes());
            }
            for (k, v) in s.data.unwrap_or_default() {
                out.insert(k, v.0);
            }
            Ok(Some(out))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(api_text(&e)),
    }
}

async fn get_config_map(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(c)) => {
            let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in c.binary_data.unwrap_or_default() {
                out.insert(k, v.0);
            }
            for (k, v) in c.data.unwrap_or_default() {
                out.insert(k, v.into_bytes());
            }
            Ok(Some(out))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(api_text(&e)),
    }
}

/// Secret/ConfigMap keys to files (`pkg/volume/secret/secret.go` and `configmap.go`,
/// `MakePayload`): all keys, or the `items` (a missing key is an error unless optional).
fn project_keys(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    what: &str,
    name: &str,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let mut out = BTreeMap::new();
    match items {
        None | Some([]) => {
            for (k, v) in data {
                out.insert(
                    k.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: default_mode,
                    },
                );
            }
        }
        Some(items) => {
            for it in items {
                let Some(v) = data.get(&it.key) else {
                    return Err(format!(
                        "configured to use key {} but the {what} {} has no such key",
                        kubepull_core::gostr::quote(&it.key),
                        kubepull_core::gostr::quote(name)
                    ));
                };
                out.insert(
                    it.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: it.mode.map(|m| (m as u32) & 0o7777).unwrap_or(default_mode),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Go's `fieldpath.FormatMap` (`pkg/fieldpath/fieldpath.go`): sorted `key="value"` lines, the
/// value quoted as Go's `%q`, no trailing newline.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", kubepull_core::gostr::quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A downward API `fieldRef` value for a volume (`pkg/fieldpath/fieldpath.go`
/// `ExtractFieldPathAsString`, restricted to what volume validation allows).
pub fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
        rest.strip_suffix("']").map(str::to_string)
    };
    if let Some(k) = subscript("metadata.labels") {
        return Ok(pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    if let Some(k) = subscript("metadata.annotations") {
        return Ok(pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k).cloned())
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
        "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&pod.metadata.labels.clone().unwrap_or_default()),
        "metadata.annotations" => format_map(&pod.metadata.annotations.clone().unwrap_or_default()),
        other => {
            return Err(format!(
                "unsupported fieldPath {}: a volume supports metadata.name, metadata.namespace, \
                 metadata.uid, metadata.labels, metadata.annotations and their ['key'] forms",
                kubepull_core::gostr::quote(other)
            ))
        }
    })
}

/// A quantity in the units `scale` gives it ([`kubepull_core::qos::quantity_value`],
/// [`kubepull_core::qos::quantity_milli`]), or the error naming it.
fn quantity(s: &str, scale: fn(&str) -> Option<i128>) -> Result<i128, String> {
    scale(s).ok_or_else(|| format!("invalid quantity {}", kubepull_core::gostr::quote(s.trim())))
}

/// The node's allocatable cpu (milli-cores) and memory (bytes), for an unset limit.
fn node_allocatable(resource: &str) -> i128 {
    match resource {
        "cpu" => std::thread::available_parallelism().map_or(1, |n| n.get() as i128) * 1000,
        "memory" => std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<i128>().ok())
            })
            .map_or(0, |kb| kb * 1024),
        _ => 0,
    }
}

/// A `resourceFieldRef` value (`pkg/api/v1/resource/helpers.go`
/// `ExtractContainerResourceValue`): `ceil(quantity / divisor)`, in milli-units for cpu; an
/// unset limit is the node's allocatable (`MergeContainerResourceLimits`), an unset request the
/// limit (API defaulting) or 0.
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, String> {
    let (section, name) = resource.split_once('.').ok_or_else(|| {
        format!(
            "unsupported resource {}",
            kubepull_core::gostr::quote(resource)
        )
    })?;
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !name.starts_with("hugepages-") {
        return Err(format!(
            "unsupported resource {}",
            kubepull_core::gostr::quote(resource)
        ));
    }
    // cpu in milli-units (`MilliValue`), the others in base units (`Value`)
    let scale = if name == "cpu" {
        kubepull_core::qos::quantity_milli
    } else {
        kubepull_core::qos::quantity_value
    };
    let r = c.resources.clone().unwrap_or_default();
    let get =
        |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.as_ref()
                .and_then(|m| m.get(name))
                .map(|q| quantity(&q.0, scale))
        };
    let q = match section {
        "limits" => match get(&r.limits) {
            Some(q) => q?,
            None => node_allocatable(name),
        },
        "requests" => match get(&r.requests).or_else(|| get(&r.limits)) {
            Some(q) => q?,
            None => 0,
        },
        _ => {
            return Err(format!(
                "unsupported resource {}",
                kubepull_core::gostr::quote(resource)
            ))
        }
    };
    // a zero (or unset) divisor is 1
    let div = match divisor
        .filter(|d| !d.is_empty())
        .map(|d| quantity(d, scale))
    {
        Some(d) => d?,
        None => 0,
    };
    let div = match div {
        0 if name == "cpu" => 1000,
        0 => 1,
        d => d,
    };
    // math.Ceil(q / div); the API server refuses negative quantities and divisors outside its
    // lists, but an object stored before it did (or any quantity past i128, which saturates)
    // must not overflow here: `i128::MIN / -1` has no value
    let (Some(quot), Some(rem)) = (q.checked_div(div), q.checked_rem(div)) else {
        return Err(format!(
            "resource {}: quantity out of range",
            kubepull_core::gostr::quote(resource)
        ));
    };
    let v = quot + i128::from(rem != 0 && (q < 0) == (div < 0));
    Ok(v.to_string())
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let mut out = BTreeMap::new();
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            field_value(pod, &f.field_path)?
        } else if let Some(r) = &it.resource_field_ref {
            let cname = r.container_name.clone().unwrap_or_default();
            let c = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == cname))
                .ok_or_else(|| {
                    format!(
                        "resourceFieldRef: container {} not found in the pod",
                        kubepull_core::gostr::quote(&cname)
                    )
                })?;
            resource_value(c, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()))?
        } else {
            return Err(format!(
                "downwardAPI item {} needs fieldRef or resourceFieldRef",
                kubepull_core::gostr::quote(&it.path)
            ));
        };
        out.insert(
            it.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: it.mode.map(|m| (m as u32) & 0o7777).unwrap_or(default_mode),
            },
        );
    }
    Ok(out)
}

async fn projected_payload(
    client: &Client,
    pod: &Pod,
    ns: &str,
    volume: &str,
    state: &mut PodVolumes,
    now: Duration,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let v = pod_volumes(pod)
        .into_iter()
        .find(|v| v.name == volume)
        .and_then(|v| v.projected)
        .ok_or("projected source missing")?;
    let mode = mode_of(v.default_mode);
    let mut out = BTreeMap::new();
    for src in v.sources.unwrap_or_default() {
        if let Some(s) = &src.secret {
            let name = s.name.clone();
            match get_secret(client, ns, &name).await? {
                Some(d) => out.extend(project_keys(&d, s.items.as_deref(), mode, "Secret", &name)?),
                None if s.optional.unwrap_or(false) => {}
                None => {
                    return Err(format!(
                        "secret {} not found",
                        kubepull_core::gostr::quote(&name)
                    ))
                }
            }
        } else if let Some(c) = &src.config_map {
            let name = c.name.clone();
            match get_config_map(client, ns, &name).await? {
                Some(d) => out.extend(project_keys(
                    &d,
                    c.items.as_deref(),
                    mode,
                    "ConfigMap",
                    &name,
                )?),
                None if c.optional.unwrap_or(false) => {}
                None => {
                    return Err(format!(
                        "configmap {} not found",
                        kubepull_core::gostr::quote(&name)
                    ))
                }
            }
        } else if let Some(d) = &src.downward_api {
            out.extend(downward_files(
                pod,
                d.items.as_deref().unwrap_or(&[]),
                mode,
            )?);
        } else if let Some(t) = &src.service_account_token {
            let key = format!("{volume}/{}", t.path);
            let token = service_account_token(
                client,
                pod,
                ns,
                t.audience.as_deref(),
                t.expiration_seconds,
                state.tokens.get(&key),
                now,
            )
            .await?;
            out.insert(
                t.path.clone(),
                FileProjection {
                    data: token.token.clone().into_bytes(),
                    mode,
                },
            );
            state.tokens.insert(key, token);
        } else {
            return Err(
                "projected source type not supported (use secret, configMap, \
                        downwardAPI or serviceAccountToken)"
                    .into(),
            );
        }
    }
    Ok(out)
}

/// A bound service account token for the pod (`pkg/kubelet/token/token_manager.go`): the cached
/// one while it is younger than 80 % of its TTL and 24 h, otherwise a new `TokenRequest`
/// (`POST /api/v1/namespaces/NS/serviceaccounts/SA/token`). If a refresh fails while the old
/// token is still valid, the old one is kept.
async fn service_account_token(
    client: &Client,
    pod: &Pod,
    ns: &str,
    audience: Option<&str>,
    expiration: Option<i64>,
    cached: Option<&CachedToken>,
    now: Duration,
) -> Result<CachedToken, String> {
    if let Some(c) = cached {
        let age = now.saturating_sub(c.issued);
        if age < c.ttl.mul_f64(0.8) && age < Duration::from_secs(24 * 3600) {
            return Ok(c.clone());
        }
    }
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let seconds = expiration.unwrap_or(DEFAULT_TOKEN_SECONDS);
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audience.filter(|a| !a.is_empty()).map(|a| vec![a.to_string()]).unwrap_or_default(),
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.metadata.name.clone().unwrap_or_default(),
                "uid": pod.metadata.uid.clone().unwrap_or_default(),
            },
        },
    });
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let r: Result<TokenRequest, kube::Error> = api
        .create_subresource("token", &sa, &PostParams::default(), &body)
        .await;
    let err = match r {
        Ok(tr) => {
            let status = tr
                .status
                .ok_or("the API server's TokenRequest has no status")?;
            if status.token.is_empty() {
                return Err("the API server returned an empty token".into());
            }
            return Ok(CachedToken {
                token: status.token,
                issued: now,
                ttl: Duration::from_secs(seconds.max(600) as u64),
            });
        }
        Err(e) => e,
    };
    if let Some(c) = cached {
        if now.saturating_sub(c.issued) < c.ttl {
            tracing::warn!(serviceaccount = %sa, error = %api_text(&err), "token refresh failed; keeping the current token");
            return Ok(c.clone());
        }
    }
    Err(match &err {
        // no such subresource: 404 (or 405 from a server that knows the resource but not the
        // POST); a missing ServiceAccount is a 404 naming it
        kube::Error::Api(s)
            if (s.code == 404 && !s.message.contains("serviceaccounts")) || s.code == 405 =>
        {
            format!(
                "failed to fetch token: the API server does not serve TokenRequest \
                 (POST serviceaccounts/{sa}/token: {} {}); serviceAccountToken projections need it",
                s.code, s.message
            )
        }
        other => format!("failed to fetch token: {}", api_text(other)),
    })
}

/// `hostPath`: allowed only under a directory the admin listed; the `type` is checked as the
/// kubelet does (`pkg/volume/hostpath/host_path.go` `checkType`).
fn host_path(settings: &VolumeSettings, path: &str, type_: &str) -> Result<PathBuf, String> {
    if settings.host_path_allowed.is_empty() {
        return Err(format!(
            "hostPath volumes are not allowed on this node ({}); the node admin can allow a \
             directory with --allow-host-path DIR",
            kubepull_core::gostr::quote(path)
        ));
    }
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "hostPath {} must be an absolute path without \"..\"",
            kubepull_core::gostr::quote(path)
        ));
    }
    let allowed_dirs: Vec<PathBuf> = settings
        .host_path_allowed
        .iter()
        .filter_map(|a| std::fs::canonicalize(a).ok())
        .collect();
    let outside = || {
        format!(
            "hostPath {} is outside the directories this node allows (--allow-host-path)",
            kubepull_core::gostr::quote(path)
        )
    };
    // before creating anything: the nearest existing ancestor, resolved, must be allowed
    if !p.exists() {
        let mut anc = p;
        while !anc.exists() {
            anc = anc.parent().unwrap_or(Path::new("/"));
        }
        let real = std::fs::canonicalize(anc).map_err(|e| format!("hostPath {path}: {e}"))?;
        if !allowed_dirs.iter().any(|a| real.starts_with(a)) {
            return Err(outside());
        }
    }
    match type_ {
        "DirectoryOrCreate" if !p.exists() => {
            std::fs::create_dir_all(p).map_err(|e| format!("create {path}: {e}"))?;
            set_mode(p, 0o755)?;
        }
        "FileOrCreate" if !p.exists() => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("create {path}: {e}"))?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(p)
                .map_err(|e| format!("create {path}: {e}"))?;
            set_mode(p, 0o644)?;
        }
        _ => {}
    }
    // the allowlist applies to the resolved path: a symlink cannot lead out of it
    let real = std::fs::canonicalize(p).map_err(|e| format!("hostPath {path}: {e}"))?;
    if !allowed_dirs.iter().any(|a| real.starts_with(a)) {
        return Err(outside());
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("hostPath {path}: {e}"))?;
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    let ok = match type_ {
        "" | "DirectoryOrCreate" | "FileOrCreate" => true,
        "Directory" => ft.is_dir(),
        "File" => ft.is_file(),
        "Socket" => ft.is_socket(),
        "CharDevice" => ft.is_char_device(),
        "BlockDevice" => ft.is_block_device(),
        other => {
            return Err(format!(
                "hostPath type {} is not known",
                kubepull_core::gostr::quote(other)
            ))
        }
    };
    if !ok {
        return Err(format!(
            "hostPath type check failed: {path} is not a {type_}"
        ));
    }
    Ok(real)
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", p.display()))
}

fn chown_gid(p: &Path, gid: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(p, None, Some(gid)).map_err(|e| format!("chown {}: {e}", p.display()))
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines().any(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|mp| Path::new(&unescape_mountinfo(mp)) == real)
            })
        })
        .unwrap_or(false)
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_tmpfs(dir: &Path, mode: u32, size: Option<u64>) -> Result<(), String> {
    let mut data = format!("mode={mode:o}");
    if let Some(s) = size {
        data.push_str(&format!(",size={s}"));
    }
    let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        data.as_c_str(),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))
}

/// Unmounts and removes a pod's volume directories (after its containers are gone).
pub fn teardown(settings: &VolumeSettings, uid: &str) -> Result<(), String> {
    if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
        return Ok(());
    }
    let pod_dir = settings.pods_dir.join(uid);
    let vols = pod_dir.join("volumes");
    if let Ok(plugins) = std::fs::read_dir(&vols) {
        for p in plugins.flatten() {
            if let Ok(rd) = std::fs::read_dir(p.path()) {
                for v in rd.flatten() {
                    let path = v.path();
                    while is_mount_point(&path) {
                        rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH)
                            .map_err(|e| format!("unmount {}: {e}", path.display()))?;
                    }
                }
            }
        }
    }
    match std::fs::remove_dir_all(&pod_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", pod_dir.display())),
    }
}

/// Validates a payload path as the atomic writer does (`validatePath`).
fn validate_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("invalid path: must not be empty".into());
    }
    if p.len() > 4096 {
        return Err(format!(
            "invalid path: must be less than or equal to 4096 characters: {p}"
        ));
    }
    if p.starts_with('/') {
        return Err(format!("invalid path: must be relative path: {p}"));
    }
    if p.starts_with("..") {
        return Err(format!("invalid path: must not start with '..': {p}"));
    }
    for el in p.split('/') {
        if el == ".." {
            return Err(format!("invalid path: must not contain '..': {p}"));
        }
        if el.len() > 255 {
            return Err(format!("invalid path: element too long: {p}"));
        }
    }
    Ok(())
}

/// The kubelet's atomic writer (`pkg/volume/util/atomic_writer.go` `Write`): the files live in
/// a timestamped directory `..<UTC yyyy_mm_dd_hh_mm_ss>.<random>`, `..data` links to it, and each
/// top-level name is a link into `..data`; an update writes a new directory and renames a new
/// `..data` link over the old one, so readers see the old or the new set, never a mix. Nothing
/// is written when the content and modes are unchanged. With `fs_group`, files get that group
/// and `mode | 0440`, directories `| 02110` (`pkg/volume/volume_linux.go`
/// `SetVolumeOwnership` for a read-only volume). Returns whether anything was written.
pub fn atomic_write(
    dir: &Path,
    payload: &BTreeMap<String, FileProjection>,
    fs_group: Option<u32>,
) -> io::Result<bool> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    for p in payload.keys() {
        validate_path(p).map_err(bad)?;
    }
    let data_link = dir.join("..data");
    let old_ts = std::fs::read_link(&data_link).ok();
    let top: BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    if let Some(old) = &old_ts {
        if same_content(&dir.join(old), payload, fs_group) {
            make_top_links(dir, &top)?;
            return Ok(false);
        }
    }
    // 1. the new timestamped directory
    let ts = jiff::Timestamp::now()
        .strftime("%Y_%m_%d_%H_%M_%S")
        .to_string();
    let ts_dir = loop {
        let name = format!("..{ts}.{}", random_suffix());
        let p = dir.join(&name);
        match std::fs::create_dir(&p) {
            Ok(()) => break p,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let r = (|| -> io::Result<()> {
        std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
        // 2. the files, with their modes (umask ignored)
        for (p, f) in payload {
            let path = ts_dir.join(p);
            if let Some(parent) = path.parent() {
                if parent != ts_dir {
                    std::fs::create_dir_all(parent)?;
                    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
                }
            }
            std::fs::write(&path, &f.data)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
        }
        // 3. ownership
        if let Some(g) = fs_group {
            set_group_perms(&ts_dir, g)?;
        }
        // 4. ..data_tmp -> new, renamed over ..data
        let tmp_link = dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp_link);
        let name = ts_dir
            .file_name()
            .ok_or_else(|| io::Error::other("timestamped directory has no name"))?;
        std::os::unix::fs::symlink(name, &tmp_link)?;
        std::fs::rename(&tmp_link, &data_link)?;
        Ok(())
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    // 5. top-level links, stale entries, the old directory
    make_top_links(dir, &top)?;
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(&name) {
            continue;
        }
        if e.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
            std::fs::remove_file(e.path())?;
        }
    }
    if let Some(old) = old_ts {
        let old = dir.join(old);
        if old != ts_dir && old.starts_with(dir) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(true)
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:09}", h.finish() % 1_000_000_000)
}

fn make_top_links(dir: &Path, top: &BTreeSet<String>) -> io::Result<()> {
    for name in top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
        }
    }
    Ok(())
}

fn set_group_perms(root: &Path, gid: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(root)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(root, None, Some(gid))?;
    let mode = meta.permissions().mode() & 0o7777;
    let new = if meta.is_dir() {
        mode | 0o440 | 0o2000 | 0o110
    } else {
        mode | 0o440
    };
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(new))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(root)?.flatten() {
            set_group_perms(&e.path(), gid)?;
        }
    }
    Ok(())
}

fn same_content(
    old: &Path,
    payload: &BTreeMap<String, FileProjection>,
    fs_group: Option<u32>,
) -> bool {
    let mut found = BTreeSet::new();
    if !collect_files(old, old, &mut found) {
        return false;
    }
    if found.len() != payload.len() {
        return false;
    }
    payload.iter().all(|(p, f)| {
        let path = old.join(p);
        let want_mode = if fs_group.is_some() {
            f.mode | 0o440
        } else {
            f.mode
        };
        found.contains(p)
            && std::fs::symlink_metadata(&path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o7777 == want_mode)
            && std::fs::read(&path).is_ok_and(|d| d == f.data)
    })
}

fn collect_files(base: &Path, dir: &Path, out: &mut BTreeSet<String>) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                if !collect_files(base, &p, out) {
                    return false;
                }
            }
            Ok(_) => {
                if let Ok(rel) = p.strip_prefix(base) {
                    out.insert(rel.to_string_lossy().into_owned());
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Why a container's mounts cannot be made: a `CreateContainerConfigError` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MountError(pub String);

/// The container's mounts from its `volumeMounts` (`pkg/kubelet/kubelet_pods.go` `makeMounts`):
/// `subPath`/`subPathExpr` (resolved inside the volume, never out of it), `readOnly` (always
/// read-only for Secret, ConfigMap, downward API and projected volumes), and only
/// `mountPropagation: None`.
pub fn container_mounts(
    c: &Container,
    volumes: &HashMap<String, (PathBuf, VolumeKind)>,
    env: &[(String, String)],
) -> Result<Vec<Mount>, MountError> {
    let mut out = vec![];
    for m in c.volume_mounts.iter().flatten() {
        if let Some(p) = m.mount_propagation.as_deref() {
            if p != "None" {
                return Err(MountError(format!(
                    "volumeMount {}: mountPropagation {p} is not supported by this node (use None)",
                    kubepull_core::gostr::quote(&m.name)
                )));
            }
        }
        let Some((dir, kind)) = volumes.get(&m.name) else {
            return Err(MountError(format!(
                "unable to find volume {} for volumeMount at {}",
                kubepull_core::gostr::quote(&m.name),
                m.mount_path
            )));
        };
        if !m.mount_path.starts_with('/') {
            return Err(MountError(format!(
                "volumeMount {}: mountPath {} must be absolute",
                kubepull_core::gostr::quote(&m.name),
                kubepull_core::gostr::quote(&m.mount_path)
            )));
        }
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => Some(s.clone()),
            (_, Some(e)) if !e.is_empty() => Some(super::env::expand(e, env)),
            _ => None,
        };
        let host = match sub {
            None => dir.clone(),
            Some(sub) => subpath(dir, *kind, &sub).map_err(|e| {
                MountError(format!(
                    "volumeMount {} subPath {}: {e}",
                    kubepull_core::gostr::quote(&m.name),
                    kubepull_core::gostr::quote(&sub)
                ))
            })?,
        };
        out.push(Mount {
            host_path: host,
            container_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false) || kind.always_read_only(),
            kind: *kind,
        });
    }
    Ok(out)
}

/// A `subPath` inside a volume: relative, no `..`, and after resolving symlinks still inside
/// the volume (the kubelet's `doSafeMakeDir`/`subpath` checks). A missing path is created as a
/// directory in writable volumes.
fn subpath(dir: &Path, kind: VolumeKind, sub: &str) -> Result<PathBuf, String> {
    let p = Path::new(sub);
    if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err("must be a relative path without \"..\"".into());
    }
    let base = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let full = base.join(p);
    if std::fs::symlink_metadata(&full).is_err() {
        if kind.always_read_only() {
            return Err("no such file or directory in the volume".into());
        }
        // create one component at a time, refusing links on the way
        let mut cur = base.clone();
        for c in p.components() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => break,
                Ok(_) => {}
                Err(_) => {
                    std::fs::create_dir(&cur).map_err(|e| e.to_string())?;
                    set_mode(&cur, 0o755)?;
                }
            }
        }
    }
    let real = std::fs::canonicalize(&full).map_err(|e| e.to_string())?;
    if !real.starts_with(&base) {
        return Err("resolves outside the volume".into());
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn atomic_writer_layout_update_and_removal() {
        let d = tempfile::tempdir().unwrap();
        let mut p = BTreeMap::new();
        p.insert("user".to_string(), f("alice", 0o400));
        p.insert("conf/app.ini".to_string(), f("a=1", 0o644));
        assert!(atomic_write(d.path(), &p, None).unwrap());
        let data = std::fs::read_link(d.path().join("..data")).unwrap();
        assert!(data.to_string_lossy().starts_with(".."), "{data:?}");
        assert_eq!(
            std::fs::read_link(d.path().join("user")).unwrap(),
            Path::new("..data/user")
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("user")).unwrap(),
            "alice"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("conf/app.ini")).unwrap(),
            "a=1"
        );
        let mode = std::fs::metadata(d.path().join("user"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o400);
        // unchanged: nothing written, same ..data
        assert!(!atomic_write(d.path(), &p, None).unwrap());
        assert_eq!(std::fs::read_link(d.path().join("..data")).unwrap(), data);
        // update and remove a key: new directory, old one gone, stale link gone
        p.insert("user".to_string(), f("bob", 0o400));
        p.remove("conf/app.ini");
        assert!(atomic_write(d.path(), &p, None).unwrap());
        let data2 = std::fs::read_link(d.path().join("..data")).unwrap();
        assert_ne!(data, data2);
        assert!(!d.path().join(&data).exists());
        assert_eq!(
            std::fs::read_to_string(d.path().join("user")).unwrap(),
            "bob"
        );
        assert!(std::fs::symlink_metadata(d.path().join("conf")).is_err());
        // a mode change alone is an update
        p.insert("user".to_string(), f("bob", 0o440));
        assert!(atomic_write(d.path(), &p, None).unwrap());
    }

    #[test]
    fn atomic_writer_refuses_bad_paths() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "..data"] {
            let mut p = BTreeMap::new();
            p.insert(bad.to_string(), f("x", 0o644));
            assert!(atomic_write(d.path(), &p, None).is_err(), "{bad:?}");
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn fs_group_ownership() {
        let d = tempfile::tempdir().unwrap();
        let mut p = BTreeMap::new();
        p.insert("k".to_string(), f("v", 0o400));
        atomic_write(d.path(), &p, Some(4321)).unwrap();
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(d.path().join("k")).unwrap();
        assert_eq!(m.gid(), 4321);
        assert_eq!(m.mode() & 0o7777, 0o440);
        assert!(!atomic_write(d.path(), &p, Some(4321)).unwrap());
    }

    #[test]
    fn downward_api_values() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.labels = Some(BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front \"end\"".to_string()),
        ]));
        assert_eq!(
            field_value(&pod, "metadata.labels").unwrap(),
            "app=\"web\"\ntier=\"front \\\"end\\\"\""
        );
        assert_eq!(field_value(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_value(&pod, "metadata.name").unwrap(), "web");
        assert!(field_value(&pod, "spec.nodeName").is_err());

        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "app",
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}
        }))
        .unwrap();
        assert_eq!(resource_value(&c, "limits.cpu", None).unwrap(), "1");
        assert_eq!(resource_value(&c, "limits.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(
            resource_value(&c, "limits.memory", Some("1Mi")).unwrap(),
            "64"
        );
        assert_eq!(
            resource_value(&c, "requests.memory", None).unwrap(),
            (64 * 1024 * 1024).to_string()
        );
        assert!(resource_value(&c, "limits.gpu", None).is_err());
        // a zero divisor is 1; quotients are rounded up
        assert_eq!(resource_value(&c, "limits.cpu", Some("0")).unwrap(), "1");
        assert_eq!(resource_value(&c, "limits.cpu", Some("100m")).unwrap(), "3");
        assert_eq!(
            resource_value(&c, "limits.memory", Some("1G")).unwrap(),
            "1"
        );
        assert_eq!(
            resource_value(&c, "limits.cpu", Some("x")),
            Err("invalid quantity \"x\"".to_string())
        );
    }

    /// Negative and saturated quantities (stored before the API server refused them) give a
    /// value or an error naming the resource, never an overflow.
    #[test]
    fn resource_values_out_of_range() {
        let c = |mem: &str, cpu: &str| -> Container {
            serde_json::from_value(serde_json::json!({
                "name": "app", "resources": {"limits": {"cpu": cpu, "memory": mem}}
            }))
            .unwrap()
        };
        // -2e40 saturates to i128::MIN, which -1 cannot divide
        assert_eq!(
            resource_value(&c("-2e40", "1"), "limits.memory", Some("-1")),
            Err("resource \"limits.memory\": quantity out of range".to_string())
        );
        assert_eq!(
            resource_value(&c("-2e40", "-2e40"), "limits.cpu", Some("-1m")),
            Err("resource \"limits.cpu\": quantity out of range".to_string())
        );
        assert_eq!(
            resource_value(&c("2e40", "1"), "limits.memory", Some("-1")).unwrap(),
            (-i128::MAX).to_string()
        );
        assert_eq!(
            resource_value(&c("2e40", "1"), "limits.memory", None).unwrap(),
            i128::MAX.to_string()
        );
        // negative values round up (towards +∞, math.Ceil)
        assert_eq!(
            resource_value(&c("-3", "1"), "limits.memory", Some("2")).unwrap(),
            "-1"
        );
        assert_eq!(
            resource_value(&c("-3", "1"), "limits.memory", Some("-2")).unwrap(),
            "2"
        );
        assert_eq!(
            resource_value(&c("1", "-1500m"), "limits.cpu", Some("1")).unwrap(),
            "-1"
        );
    }

    #[test]
    fn memory_medium_size_is_the_smallest_limit() {
        let pod = |limits: &[Option<&str>]| -> Pod {
            let containers: Vec<serde_json::Value> = limits
                .iter()
                .enumerate()
                .map(|(i, l)| match l {
                    Some(l) => serde_json::json!({"name": format!("c{i}"), "resources": {"limits": {"memory": l}}}),
                    None => serde_json::json!({"name": format!("c{i}")}),
                })
                .collect();
            serde_json::from_value(serde_json::json!({"spec": {"containers": containers}})).unwrap()
        };
        let mi = 1024 * 1024;
        assert_eq!(
            memory_medium_size(&pod(&[Some("64Mi")]), Some(8 * mi), 1 << 40),
            Some(8 * mi)
        );
        assert_eq!(
            memory_medium_size(&pod(&[Some("32Mi"), Some("32Mi")]), Some(128 * mi), 1 << 40),
            Some(64 * mi)
        );
        // one container without a limit: no pod limit
        assert_eq!(
            memory_medium_size(&pod(&[Some("32Mi"), None]), None, 1 << 30),
            Some(1 << 30)
        );
        assert_eq!(memory_medium_size(&pod(&[None]), None, 0), None);
        // limits past u64 saturate rather than overflow their sum
        assert_eq!(
            memory_medium_size(&pod(&[Some("16Ei"), Some("1e30")]), None, 0),
            Some(u64::MAX)
        );
        assert_eq!(
            memory_medium_size(&pod(&[Some("16Ei"), Some("16Ei")]), Some(mi), 0),
            Some(mi)
        );
    }

    #[test]
    fn empty_dir_size_limits() {
        let vol = |limit: &str| -> Volume {
            serde_json::from_value(serde_json::json!({
                "name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": limit}}))
            .unwrap()
        };
        assert_eq!(empty_dir_size_limit(&vol("8Mi")), Ok(Some(8 * 1024 * 1024)));
        assert_eq!(empty_dir_size_limit(&vol("2e3")), Ok(Some(2000)));
        assert_eq!(empty_dir_size_limit(&vol("5k")), Ok(Some(5000)));
        // a fraction of a byte is rounded up
        assert_eq!(empty_dir_size_limit(&vol("100m")), Ok(Some(1)));
        assert_eq!(empty_dir_size_limit(&vol("1.5")), Ok(Some(2)));
        assert_eq!(
            empty_dir_size_limit(&vol("5x")),
            Err("emptyDir sizeLimit: invalid quantity \"5x\"".to_string())
        );
        assert!(empty_dir_size_limit(&vol("")).is_err());
        let none: Volume =
            serde_json::from_value(serde_json::json!({"name": "v", "emptyDir": {}})).unwrap();
        assert_eq!(empty_dir_size_limit(&none), Ok(None));
    }

    #[test]
    fn mounts_subpath_and_propagation() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("v");
        std::fs::create_dir(&vol).unwrap();
        std::fs::write(vol.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("out")).unwrap();
        let mut vols = HashMap::new();
        vols.insert("cfg".to_string(), (vol.clone(), VolumeKind::ConfigMap));
        vols.insert("scratch".to_string(), (vol.clone(), VolumeKind::EmptyDir));
        let c = |mounts: serde_json::Value| -> Container {
            serde_json::from_value(serde_json::json!({"name": "a", "volumeMounts": mounts}))
                .unwrap()
        };
        let m = container_mounts(
            &c(serde_json::json!([
                {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "f"},
                {"name": "scratch", "mountPath": "/data", "subPathExpr": "$(POD)/x"},
            ])),
            &vols,
            &[("POD".into(), "web".into())],
        )
        .unwrap();
        assert!(m[0].read_only, "configMap mounts are read-only");
        assert!(m[0].host_path.ends_with("v/f"));
        assert!(!m[1].read_only);
        assert!(m[1].host_path.ends_with("v/web/x") && m[1].host_path.is_dir());
        for (bad, why) in [
            (
                serde_json::json!([{"name": "cfg", "mountPath": "/x", "subPath": "out"}]),
                "outside",
            ),
            (
                serde_json::json!([{"name": "cfg", "mountPath": "/x", "subPath": "../v"}]),
                "..",
            ),
            (
                serde_json::json!([{"name": "nope", "mountPath": "/x"}]),
                "unable to find volume",
            ),
            (
                serde_json::json!([{"name": "cfg", "mountPath": "/x", "mountPropagation": "HostToContainer"}]),
                "mountPropagation",
            ),
        ] {
            let e = container_mounts(&c(bad), &vols, &[]).unwrap_err();
            assert!(e.0.contains(why), "{e}");
        }
    }

    #[test]
    fn host_path_refused_by_default_and_outside_the_allowlist() {
        let s = VolumeSettings::default();
        let e = host_path(&s, "/etc", "").unwrap_err();
        assert!(e.contains("--allow-host-path"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("etc-link")).unwrap();
        let s = VolumeSettings {
            pods_dir: PathBuf::new(),
            host_path_allowed: vec![d.path().to_path_buf()],
        };
        assert!(host_path(&s, d.path().to_str().unwrap(), "Directory").is_ok());
        let e = host_path(&s, d.path().join("etc-link").to_str().unwrap(), "").unwrap_err();
        assert!(e.contains("outside"), "{e}");
        let e = host_path(&s, "/etc", "").unwrap_err();
        assert!(e.contains("outside"), "{e}");
        let e = host_path(&s, d.path().to_str().unwrap(), "File").unwrap_err();
        assert!(e.contains("not a File"), "{e}");
        let made = d.path().join("new/dir");
        assert!(host_path(&s, made.to_str().unwrap(), "DirectoryOrCreate").is_ok());
        assert!(made.is_dir());
        // nothing is created outside the allowed directories, not even through a link
        let other = tempfile::tempdir().unwrap();
        let outside = other.path().join("created-by-pod");
        let e = host_path(&s, outside.to_str().unwrap(), "DirectoryOrCreate").unwrap_err();
        assert!(e.contains("outside"), "{e}");
        assert!(!outside.exists());
        std::os::unix::fs::symlink(other.path(), d.path().join("to-other")).unwrap();
        let via = d.path().join("to-other/x/y");
        let e = host_path(&s, via.to_str().unwrap(), "FileOrCreate").unwrap_err();
        assert!(e.contains("outside"), "{e}");
        assert!(!other.path().join("x").exists());
    }
}
