//! The node agent's main loop: register the Node, keep its Ready condition and Lease fresh,
//! watch the pods bound to it, run one worker per pod, serve container logs.
//!
//! Restart-safe: on start it lists what the runtime still runs, hands each container back to the
//! worker of its pod (adoption) and stops containers whose pod is gone. API server restarts are
//! survived by the watcher, which re-lists and re-watches.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::events::Recorder;
use crate::images::{
    Clock, ImageManager, ImageService, PreloadedImages, SystemClock, VerifyPolicy,
};
use crate::pod::{NodeContext, PodWorker, Track};
use crate::runtime::{ContainerRuntime, RuntimeContainer};

/// How often the node status and lease are renewed (kubelet `nodeStatusUpdateFrequency`,
/// `nodeLeaseDurationSeconds / 4`).
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// The lease duration the node announces (kubelet default 40 s).
pub const LEASE_SECONDS: i32 = 40;
/// The version the node reports.
pub const KUBELET_VERSION: &str = "v1.32.0-kubepull";

/// Node agent settings.
#[derive(Clone)]
pub struct AgentConfig {
    /// Node name.
    pub node_name: String,
    /// The node's address (InternalIP; with host networking also each pod's IP).
    pub node_ip: IpAddr,
    /// The node's own token.
    pub token: String,
    /// The cluster CA (PEM): the log endpoint accepts only the API server's client certificate
    /// signed by it.
    pub ca_pem: String,
    /// State directory.
    pub root: PathBuf,
    /// The node's docker config (credentials after the pods' Secrets).
    pub node_config: Option<kubepull_core::dockerconfig::DockerConfig>,
    /// The port of the log endpoint (0: any free port).
    pub log_port: u16,
    /// Ensure-secret-pulled policy.
    pub verify: VerifyPolicy,
    /// The admin's preloaded images / allowlist.
    pub preloaded: PreloadedImages,
    /// Host directories `hostPath` volumes may use (`--allow-host-path`); empty: none.
    pub allow_host_path: Vec<PathBuf>,
    /// CNI pod networking (`None`: pods share the host's network).
    pub pod_network: Option<PodNetworkSettings>,
    /// `serializeImagePulls` / `maxParallelImagePulls`.
    pub pull_limits: crate::pull_limits::PullLimits,
    /// The API server's address, where the `kubernetes` Service's cluster IP leads pods
    /// ([`crate::service_proxy`]); `None`: no portal.
    pub api_server: Option<std::net::SocketAddr>,
}

/// Where the CNI plugins and configuration are.
#[derive(Debug, Clone)]
pub struct PodNetworkSettings {
    /// Plugin directories (`--cni-bin-dir`).
    pub bin_dirs: Vec<PathBuf>,
    /// An administrator's configuration directory (`--cni-conf-dir`); without a configuration
    /// there the node writes its own for its podCIDR.
    pub conf_dir: Option<PathBuf>,
}

/// The effective network configuration list of a node with state in `root` (written at
/// start, read by `kubepull down`).
pub fn effective_conflist_path(root: &std::path::Path) -> PathBuf {
    root.join("cni").join("kubepull.conflist")
}

/// Where a node with state in `root` remembers that it installed the API server portal (the
/// node name; read by `kubepull down`).
pub fn portal_record_path(root: &std::path::Path) -> PathBuf {
    root.join("cni").join("portal")
}

/// The plugin directories a node with state in `root` uses (one per line; written at start,
/// read by `kubepull down`).
pub fn cni_bin_dirs_path(root: &std::path::Path) -> PathBuf {
    root.join("cni").join("bin-dirs")
}

/// Where a node with state in `root` remembers its pods' attachments.
pub fn cni_results_dir(root: &std::path::Path) -> PathBuf {
    root.join("cni").join("results")
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("node_name", &self.node_name)
            .field("node_ip", &self.node_ip)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API server refused or failed a required call.
    #[error("api server: {what}")]
    Api {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The log endpoint could not start.
    #[error("log endpoint: {0}")]
    Logs(String),
    /// Pod networking could not be set up.
    #[error("pod network: {0}")]
    Network(String),
}

/// Shared view of which pods run here, for the log endpoint.
#[derive(Default)]
pub(crate) struct PodIndex {
    /// (namespace, name) → uid
    pub(crate) by_name: HashMap<(String, String), String>,
}

/// Runs the node agent until `shutdown` completes.
pub async fn run(
    client: Client,
    cfg: AgentConfig,
    images: Arc<dyn ImageService>,
    runtime: Arc<dyn ContainerRuntime>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let index = Arc::new(Mutex::new(PodIndex::default()));
    let tls =
        crate::logs::request_serving_certificate(&client, &cfg.node_name, cfg.node_ip, &cfg.ca_pem)
            .await
            .map_err(AgentError::Logs)?;
    let (log_port, log_task) = crate::logs::serve(
        cfg.node_ip,
        cfg.log_port,
        tls,
        runtime.clone(),
        index.clone(),
    )
    .await
    .map_err(AgentError::Logs)?;
    register_node(&client, &cfg, log_port).await?;
    let network = match &cfg.pod_network {
        Some(s) => Some(pod_network(&client, &cfg, s).await?),
        None => None,
    };

    let ctx = Arc::new(NodeContext {
        client: client.clone(),
        node_name: cfg.node_name.clone(),
        node_ip: cfg.node_ip.to_string(),
        images: ImageManager::new(images, clock.clone(), cfg.verify)
            .with_preloaded(cfg.preloaded.clone())
            .with_pull_limits(cfg.pull_limits),
        runtime: runtime.clone(),
        recorder: Recorder::new(client.clone(), &cfg.node_name),
        node_config: cfg.node_config.clone(),
        clock,
        volumes: crate::pod::volumes::VolumeSettings {
            pods_dir: cfg.root.join("pods"),
            host_path_allowed: cfg.allow_host_path.clone(),
        },
        network: network.clone(),
    });

    let heartbeat = tokio::spawn(heartbeat_loop(client.clone(), cfg.clone(), log_port));

    // containers left by a previous run, by pod uid
    let mut leftovers: HashMap<String, Vec<RuntimeContainer>> = HashMap::new();
    match runtime.list().await {
        Ok(list) => {
            for c in list {
                leftovers.entry(c.pod_uid.clone()).or_default().push(c);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list containers left by a previous run"),
    }

    let pods: Api<Pod> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", cfg.node_name));
    let mut stream = watcher(pods, wc).boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut init_seen: Vec<String> = Vec::new();
    tokio::pin!(shutdown);
    loop {
        let ev = tokio::select! {
            _ = &mut shutdown => break,
            ev = stream.next() => ev,
        };
        let ev = match ev {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Some(Ok(ev)) => ev,
        };
        match ev {
            watcher::Event::Init => init_seen.clear(),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                init_seen.push(uid.clone());
                index
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .by_name
                    .insert(
                        (
                            p.metadata.namespace.clone().unwrap_or_default(),
                            p.metadata.name.clone().unwrap_or_default(),
                        ),
                        uid.clone(),
                    );
                if let Some(tx) = workers.get(&uid) {
                    // the kubelet's own status writes come back through the watch: they do not
                    // wake the worker (kubelet config `checkAndUpdatePod` ignores status)
                    tx.send_if_modified(|old| {
                        let wake = old.as_ref().is_none_or(|o| differs_beyond_status(o, &p));
                        *old = Some(p);
                        wake
                    });
                } else {
                    let (tx, rx) = watch::channel(Some(p));
                    let adopted = leftovers.remove(&uid).unwrap_or_default();
                    tokio::spawn(pod_worker(ctx.clone(), rx, adopted));
                    workers.insert(uid, tx);
                }
            }
            watcher::Event::Delete(p) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                index
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .by_name
                    .retain(|_, v| *v != uid);
                if let Some(tx) = workers.remove(&uid) {
                    let _ = tx.send(None);
                }
            }
            watcher::Event::InitDone => {
                // containers whose pod no longer exists: stop and remove
                let gone: Vec<String> = leftovers
                    .keys()
                    .filter(|u| !init_seen.contains(u))
                    .cloned()
                    .collect();
                for uid in gone {
                    for c in leftovers.remove(&uid).unwrap_or_default() {
                        let _ = runtime.stop(&c.id, Duration::from_secs(10)).await;
                        let _ = runtime.remove(&c.id).await;
                    }
                }
                // networks of pods no longer bound here (a crash before their DEL), while their
                // network namespaces still exist
                if let Some(n) = &network {
                    for uid in n.cleanup(|u| init_seen.iter().any(|s| s == u)).await {
                        tracing::info!(pod_uid = %uid, "released the network of a pod that is gone");
                    }
                }
                // then the sandboxes (netns, pause, /dev/shm) of pods no longer bound here
                for uid in runtime.sandboxes().await {
                    if !init_seen.contains(&uid) && !workers.contains_key(&uid) {
                        if let Err(e) = runtime.remove_sandbox(&uid).await {
                            tracing::warn!(pod_uid = %uid, error = %e, "removing a leftover pod sandbox failed");
                        }
                    }
                }
                // volumes of pods deleted while the agent was away: unmount and remove
                let settings = ctx.volumes.clone();
                let keep: Vec<String> = init_seen.iter().chain(workers.keys()).cloned().collect();
                let _ = tokio::task::spawn_blocking(move || {
                    let Ok(rd) = std::fs::read_dir(&settings.pods_dir) else {
                        return;
                    };
                    for e in rd.flatten() {
                        let uid = e.file_name().to_string_lossy().into_owned();
                        if keep.contains(&uid) {
                            continue;
                        }
                        if let Err(err) = crate::pod::volumes::teardown(&settings, &uid) {
                            tracing::warn!(pod_uid = %uid, error = %err, "removing the volumes of a deleted pod failed");
                        }
                    }
                })
                .await;
            }
        }
    }
    heartbeat.abort();
    log_task.abort();
    for (_, tx) in workers.drain() {
        drop(tx);
    }
    Ok(())
}

/// Whether a pod changed in more than its status (and the bookkeeping fields every write
/// changes).
fn differs_beyond_status(a: &Pod, b: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut p = p.clone();
        p.status = None;
        p.metadata.resource_version = None;
        p.metadata.managed_fields = None;
        p
    };
    strip(a) != strip(b)
}

/// What the worker of a pod being deleted does after writing its terminal status.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum TerminalWrite {
    /// Stored: the pod object may go.
    Stored,
    /// The pod is gone (404): nothing left to report or delete.
    PodGone,
    /// 409 or 422: the name may belong to another pod now (the UID in the patch differs), or
    /// the write conflicted or was refused; the pod is read to tell.
    Check(u16),
    /// Anything else (the server unreachable, 5xx, 429, 403): written again after a back-off.
    Retry,
}

fn terminal_write(r: &Result<(), kube::Error>) -> TerminalWrite {
    match r {
        Ok(()) => TerminalWrite::Stored,
        Err(kube::Error::Api(s)) if s.code == 404 => TerminalWrite::PodGone,
        Err(kube::Error::Api(s)) if matches!(s.code, 409 | 422) => TerminalWrite::Check(s.code),
        Err(_) => TerminalWrite::Retry,
    }
}

/// Waits `wait` (then doubles it, up to 10 s), or until the pod's object is gone; false when
/// it is.
async fn wait_or_gone(rx: &mut watch::Receiver<Option<Pod>>, wait: &mut Duration) -> bool {
    let gone = tokio::select! {
        r = rx.changed() => r.is_err() || rx.borrow_and_update().is_none(),
        _ = tokio::time::sleep(*wait) => false,
    };
    *wait = (*wait * 2).min(Duration::from_secs(10));
    !gone
}

async fn pod_worker(
    ctx: Arc<NodeContext>,
    mut rx: watch::Receiver<Option<Pod>>,
    adopted: Vec<RuntimeContainer>,
) {
    let mut w = PodWorker::default();
    // adopt the newest instance of each container; remove older ones
    let mut newest: HashMap<String, RuntimeContainer> = HashMap::new();
    for c in adopted {
        match newest.get(&c.name) {
            Some(n) if n.attempt >= c.attempt => {
                let _ = ctx.runtime.remove(&c.id).await;
            }
            _ => {
                if let Some(old) = newest.insert(c.name.clone(), c) {
                    let _ = ctx.runtime.remove(&old.id).await;
                }
            }
        }
    }
    for (name, c) in newest {
        w.tracks.insert(
            name,
            Track {
                id: Some(c.id.clone()),
                restarts: c.attempt,
                state: Some(ctx.runtime.state(&c.id).await),
                ..Default::default()
            },
        );
    }
    let mut last: Option<Pod> = None;
    loop {
        let pod = rx.borrow_and_update().clone();
        let Some(pod) = pod else {
            // the pod object is gone: stop everything
            if let Some(p) = &last {
                w.terminate(&ctx, p).await;
            }
            return;
        };
        last = Some(pod.clone());
        if pod.metadata.deletion_timestamp.is_some() {
            w.terminate(&ctx, &pod).await;
            // syncTerminatingPod: the terminal phase is reported before the pod object goes
            // (a pod kept by a finalizer, such as a Job's, shows Failed or Succeeded), and
            // the final delete waits until it is stored (status manager canBeDeleted)
            let api: Api<Pod> = Api::namespaced(
                ctx.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or(""),
            );
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut wait = Duration::from_millis(200);
            loop {
                let written = w.publish_terminal_status(&ctx, &pod).await;
                let step = match terminal_write(&written) {
                    TerminalWrite::Stored => break,
                    TerminalWrite::PodGone => return,
                    // a 409 or 422 names this pod only if it still has its UID (status manager:
                    // "Pod was deleted and then recreated, skipping status update")
                    TerminalWrite::Check(code) => match api.get_opt(&name).await {
                        Ok(Some(p)) if p.metadata.uid == pod.metadata.uid => {
                            if code == 422 {
                                // a status this server will never store (the stored pod no
                                // longer validates) does not keep the pod forever
                                tracing::warn!(pod = %crate::pod::pod_full_name(&pod), "terminal status refused; removing the pod without it");
                                break;
                            }
                            TerminalWrite::Retry
                        }
                        Ok(_) => return,
                        Err(_) => TerminalWrite::Retry,
                    },
                    retry => retry,
                };
                if let (TerminalWrite::Retry, Err(e)) = (step, &written) {
                    tracing::warn!(pod = %crate::pod::pod_full_name(&pod), error = %e, retry_in = ?wait, "terminal status update failed");
                }
                if !wait_or_gone(&mut rx, &mut wait).await {
                    return;
                }
            }
            // the kubelet's final delete: grace 0, with the UID as precondition; retried until
            // the pod is gone (404) or the name is another pod's (409, the precondition)
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let mut wait = Duration::from_millis(200);
            loop {
                match api.delete(&name, &dp).await {
                    Ok(_) => return,
                    Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => return,
                    Err(e) => {
                        tracing::warn!(pod = %crate::pod::pod_full_name(&pod), error = %e, retry_in = ?wait, "final pod delete failed");
                    }
                }
                if !wait_or_gone(&mut rx, &mut wait).await {
                    return;
                }
            }
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let wake = if phase == "Succeeded" || phase == "Failed" {
            w.finished(&ctx, &pod).await;
            Duration::from_secs(3600)
        } else {
            w.sync(&ctx, &pod).await
        };
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(wake) => {},
        }
    }
}

/// How long the node waits for the API server to allocate its podCIDR.
const POD_CIDR_WAIT: Duration = Duration::from_secs(60);

/// The node's pod network: the administrator's configuration, else the node's own list on the
/// podCIDR the API server allocated (waiting for it). The effective list is written to
/// [`effective_conflist_path`].
async fn pod_network(
    client: &Client,
    cfg: &AgentConfig,
    s: &PodNetworkSettings,
) -> Result<crate::podnet::PodNetwork, AgentError> {
    use crate::podnet::{Cni, NetworkConfigList, NodeNetwork, PodNetwork};
    let err = |e: crate::podnet::CniError| AgentError::Network(e.to_string());
    if !is_root() {
        return Err(AgentError::Network(
            "network namespaces and the CNI plugins need root: run the node as root, or give --pod-network host".into(),
        ));
    }
    let list = match &s.conf_dir {
        Some(d) => Some(
            NetworkConfigList::load_dir(d)
                .map_err(err)?
                .ok_or_else(|| {
                    AgentError::Network(format!(
                        "--cni-conf-dir {}: no .conf, .conflist or .json file",
                        d.display()
                    ))
                })?,
        ),
        None => None,
    };
    let mut pod_cidr = None;
    let (list, raw) = match list {
        Some(l) => {
            let raw = std::fs::read(&l.source_name).unwrap_or_default();
            (l, raw)
        }
        None => {
            let cidr = wait_for_pod_cidr(client, &cfg.node_name).await?;
            pod_cidr = Some(cidr.clone());
            let nn = NodeNetwork::new(&cfg.node_name, &cidr, &cfg.root);
            tracing::info!(pod_cidr = %cidr, bridge = %nn.bridge, "pod network");
            let raw = serde_json::to_vec_pretty(&nn.conflist()).unwrap_or_default();
            (nn.config_list().map_err(err)?, raw)
        }
    };
    let path = effective_conflist_path(&cfg.root);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| AgentError::Network(format!("create {}: {e}", parent.display())))?;
    }
    std::fs::write(&path, raw)
        .map_err(|e| AgentError::Network(format!("write {}: {e}", path.display())))?;
    let dirs: Vec<String> = s
        .bin_dirs
        .iter()
        .map(|d| format!("{}\n", d.display()))
        .collect();
    let bin_dirs = cni_bin_dirs_path(&cfg.root);
    std::fs::write(&bin_dirs, dirs.concat())
        .map_err(|e| AgentError::Network(format!("write {}: {e}", bin_dirs.display())))?;
    let cni = Cni::new(s.bin_dirs.clone(), list);
    // every plugin must be there (containerd reports NetworkPluginNotReady otherwise)
    for p in &cni.list().plugins {
        let t = p.get("type").and_then(|t| t.as_str()).unwrap_or("");
        cni.find_plugin(t).map_err(err)?;
    }
    let portal = match cfg.api_server {
        Some(target) => api_portal(client, target, pod_cidr).await,
        None => None,
    };
    let localnet = portal.as_ref().is_some_and(|p| p.target.ip().is_loopback());
    if let Some(p) = &portal {
        // remembered first, so that `kubepull down` finds the rules even after a crash
        let record = portal_record_path(&cfg.root);
        std::fs::write(&record, &cfg.node_name)
            .map_err(|e| AgentError::Network(format!("write {}: {e}", record.display())))?;
        crate::service_proxy::install(&cfg.node_name, p)
            .await
            .map_err(|e| AgentError::Network(format!("the kubernetes Service portal: {e}")))?;
        tracing::info!(cluster_ip = %p.cluster_ip, port = p.port, target = %p.target, "pods reach the API server through the kubernetes Service");
    }
    Ok(PodNetwork::new(cni, cni_results_dir(&cfg.root)).with_route_localnet(localnet))
}

/// The portal for the `default/kubernetes` Service (its cluster IP and first port) to
/// `target`; `None` (logged) when the Service is missing or has no cluster IP.
async fn api_portal(
    client: &Client,
    target: std::net::SocketAddr,
    pod_cidr: Option<String>,
) -> Option<crate::service_proxy::ApiPortal> {
    use k8s_openapi::api::core::v1::Service;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = match api.get_opt("kubernetes").await {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::warn!(
                "no default/kubernetes Service: pods cannot reach the API server by its cluster IP"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading default/kubernetes: pods cannot reach the API server by its cluster IP");
            return None;
        }
    };
    let spec = svc.spec?;
    let cluster_ip = spec.cluster_ip?.parse().ok()?;
    let port = u16::try_from(spec.ports?.first()?.port).ok()?;
    Some(crate::service_proxy::ApiPortal {
        cluster_ip,
        port,
        target,
        pod_cidr,
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

async fn wait_for_pod_cidr(client: &Client, name: &str) -> Result<String, AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + POD_CIDR_WAIT;
    loop {
        match nodes.get(name).await {
            Ok(n) => {
                if let Some(c) = n.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                    return Ok(c);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the node's podCIDR"),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AgentError::Network(format!(
                "node {name} has no spec.podCIDR after {}s: run the API server with its controllers (they allocate from --cluster-cidr), or give the node --cni-conf-dir",
                POD_CIDR_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn node_object(cfg: &AgentConfig, log_port: u16) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({
            "type": t, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": cfg.node_name,
            "labels": {
                "kubernetes.io/hostname": cfg.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            },
        },
        "status": node_status(cfg, log_port, &now, cond),
    })
}

fn node_status(
    cfg: &AgentConfig,
    log_port: u16,
    _now: &str,
    cond: impl Fn(&str, &str, &str, &str) -> serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": cfg.node_ip.to_string()},
            {"type": "Hostname", "address": cfg.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": log_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "linux",
            "containerRuntimeVersion": "runc://1.1",
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
        "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
    })
}

async fn register_node(
    client: &Client,
    cfg: &AgentConfig,
    log_port: u16,
) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let obj = node_object(cfg, log_port);
    let node: Node =
        serde_json::from_value(obj.clone()).map_err(|e| AgentError::Logs(e.to_string()))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(source) => {
            return Err(AgentError::Api {
                what: format!("register node {}", cfg.node_name),
                source,
            })
        }
    }
    update_node_status(client, cfg, log_port).await
}

async fn update_node_status(
    client: &Client,
    cfg: &AgentConfig,
    log_port: u16,
) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let obj = node_object(cfg, log_port);
    let patch = serde_json::json!({ "status": obj["status"] });
    nodes
        .patch_status(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| AgentError::Api {
            what: "update node status".into(),
            source,
        })?;
    Ok(())
}

async fn renew_lease(client: &Client, cfg: &AgentConfig) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = jiff::Timestamp::now();
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": cfg.node_name, "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": cfg.node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        },
    });
    match leases
        .patch(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&lease),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let l: Lease = serde_json::from_value(lease).map_err(kube::Error::SerdeError)?;
            leases.create(&PostParams::default(), &l).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

async fn heartbeat_loop(client: Client, cfg: AgentConfig, log_port: u16) {
    loop {
        if let Err(e) = renew_lease(&client, &cfg).await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
        if let Err(e) = update_node_status(&client, &cfg, log_port).await {
            tracing::warn!(error = %e, "node status update failed");
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_and_stop_when_the_pod_object_goes() {
        let (tx, mut rx) = watch::channel(Some(Pod::default()));
        let mut wait = Duration::from_millis(200);
        assert!(wait_or_gone(&mut rx, &mut wait).await, "still there");
        assert_eq!(wait, Duration::from_millis(400));
        for _ in 0..10 {
            assert!(wait_or_gone(&mut rx, &mut wait).await);
        }
        assert_eq!(wait, Duration::from_secs(10), "capped");
        // an update of the pod is not its removal
        tx.send(Some(Pod::default())).unwrap();
        assert!(wait_or_gone(&mut rx, &mut wait).await);
        tx.send(None).unwrap();
        assert!(!wait_or_gone(&mut rx, &mut wait).await, "gone");
        drop(tx);
        assert!(!wait_or_gone(&mut rx, &mut wait).await, "the watch ended");
    }

    #[test]
    fn a_terminal_status_is_written_again_until_stored_or_the_pod_is_gone() {
        let api = |code: u16| -> Result<(), kube::Error> {
            Err(kube::Error::Api(
                kube::core::Status {
                    code,
                    message: "x".into(),
                    reason: "y".into(),
                    ..kube::core::Status::success()
                }
                .boxed(),
            ))
        };
        assert_eq!(terminal_write(&Ok(())), TerminalWrite::Stored);
        assert_eq!(terminal_write(&api(404)), TerminalWrite::PodGone);
        // a pod of the same name with another UID, or a conflict, or a refusal: read the pod
        for code in [409, 422] {
            assert_eq!(
                terminal_write(&api(code)),
                TerminalWrite::Check(code),
                "{code}"
            );
        }
        // the pod must not be deleted before its terminal phase is stored
        for code in [500, 503, 429, 403] {
            assert_eq!(terminal_write(&api(code)), TerminalWrite::Retry, "{code}");
        }
        let unreachable = Err(kube::Error::SerdeError(
            serde_json::from_str::<u8>("x").unwrap_err(),
        ));
        assert_eq!(terminal_write(&unreachable), TerminalWrite::Retry);
    }

    #[test]
    fn own_status_writes_do_not_wake_the_worker() {
        let mut a = Pod::default();
        a.metadata.name = Some("p".into());
        a.metadata.resource_version = Some("1".into());
        let mut b = a.clone();
        b.metadata.resource_version = Some("2".into());
        b.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
        assert!(!differs_beyond_status(&a, &b));
        b.metadata.annotations =
            Some([("kubepull.io/retry-now".to_string(), "1".to_string())].into());
        assert!(differs_beyond_status(&a, &b));
        let mut c = a.clone();
        c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        assert!(differs_beyond_status(&a, &c));
    }
}
