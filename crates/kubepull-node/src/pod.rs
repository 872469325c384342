//! One pod on this node: start its containers in order (image step → create → start), restart
//! them by `restartPolicy` with the kubelet's crash-loop back-off, stop them on deletion, and
//! compute the status the kubelet would report (`pkg/kubelet/kubelet_pods.go`,
//! `generateAPIPodStatus`, `getPhase`; `pkg/kubelet/status/generate.go`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, Client};

use kubepull_core::backoff::Backoff;
use kubepull_core::keyring::PullSecret;
use kubepull_core::pullpolicy::PullPolicy;

use crate::events::{Involved, Recorder};
use crate::images::{EventType, ImageManager, ImageOutcome, ImageRequest};
use crate::runtime::{ContainerRequest, ContainerRuntime, RuntimeState};

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
    /// CNI pod networking (`None`: every pod uses the host's network).
    pub network: Option<crate::podnet::PodNetwork>,
}

/// A pod's worker state.
pub struct PodWorker {
    /// Per container name.
    pub tracks: HashMap<String, Track>,
    crash: Backoff,
    start_time: Option<jiff::Timestamp>,
    last_status: Option<serde_json::Value>,
    retry_now: Option<String>,
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
            net: None,
        }
    }
}

fn pod_full_name(pod: &Pod) -> String {
    // format.Pod: name_namespace(uid)
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// Why env resolution failed: the `CreateContainerConfigError` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError(pub String);

/// Resolves a container's environment as the kubelet's `makeEnvironmentVariables` does for the
/// sources kubepull serves: `envFrom` (Secret/ConfigMap with prefix), `env` values,
/// `valueFrom.secretKeyRef`/`configMapKeyRef` (honouring `optional`), `fieldRef` for pod metadata.
/// `$(VAR)` references are expanded against earlier variables.
pub async fn resolve_env(
    client: &Client,
    pod: &Pod,
    c: &Container,
    node_ip: &str,
    pod_ips: &[String],
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = out.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            out.push((k, v));
        }
    };
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        if let Some(r) = &ef.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match secrets.get_opt(&r.name).await {
                Ok(Some(s)) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        set(
                            &mut out,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into(),
                        );
                    }
                }
                Ok(None) if optional => {}
                Ok(None) => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
                Err(e) => return Err(EnvError(api_error_text(&e))),
            }
        }
        if let Some(r) = &ef.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match cms.get_opt(&r.name).await {
                Ok(Some(m)) => {
                    for (k, v) in m.data.unwrap_or_default() {
                        set(&mut out, format!("{prefix}{k}"), v);
                    }
                }
                Ok(None) if optional => {}
                Ok(None) => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
                Err(e) => return Err(EnvError(api_error_text(&e))),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match secrets.get_opt(&r.name).await {
                    Ok(Some(s)) => match s.data.unwrap_or_default().get(&r.key) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {}/{}",
                                r.key, ns, r.name
                            )))
                        }
                    },
                    Ok(None) if optional => continue,
                    Ok(None) => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
                    Err(err) => return Err(EnvError(api_error_text(&err))),
                }
            } else if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match cms.get_opt(&r.name).await {
                    Ok(Some(m)) => match m.data.unwrap_or_default().get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                r.key, ns, r.name
                            )))
                        }
                    },
                    Ok(None) if optional => continue,
                    Ok(None) => {
                        return Err(EnvError(format!("configmap \"{}\" not found", r.name)))
                    }
                    Err(err) => return Err(EnvError(api_error_text(&err))),
                }
            } else if let Some(f) = &vf.field_ref {
                match f.field_path.as_str() {
                    "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                    "metadata.namespace" => ns.clone(),
                    "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
                    "spec.nodeName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default(),
                    "spec.serviceAccountName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_default(),
                    // kubelet_pods.go podFieldSelectorRuntimeValue: podIPs joined with ","
                    "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
                    "status.podIPs" => pod_ips.join(","),
                    "status.hostIP" | "status.hostIPs" => node_ip.to_string(),
                    other => {
                        return Err(EnvError(format!("unsupported fieldRef {other:?}")));
                    }
                }
            } else {
                String::new()
            }
        } else {
            expand(e.value.as_deref().unwrap_or(""), &out)
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

/// `$(VAR)` expansion (`third_party/forked/golang/expansion`): `$$` escapes, unknown references
/// stay as written.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let b = input.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push_str(&input[last..i]);
                out.push('$');
                i += 2;
                last = i;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = input[i + 2..].find(')') {
                    let name = &input[i + 2..i + 2 + end];
                    out.push_str(&input[last..i]);
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&input[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    last = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&input[last..]);
    out
}

fn api_error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Fetches the pod's pull Secrets; returns the usable ones and the names that could not be read.
pub async fn fetch_pull_secrets(client: &Client, pod: &Pod) -> (Vec<PullSecret>, Vec<String>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut found = vec![];
    let mut missing = vec![];
    for r in pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default()
    {
        let name = r.name.clone();
        if name.is_empty() {
            continue;
        }
        match api.get(&name).await {
            Ok(s) => found.push(PullSecret {
                name: name.clone(),
                secret_type: s.type_.clone().unwrap_or_default(),
                data: s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            }),
            Err(_) => missing.push(name),
        }
    }
    (found, missing)
}

impl PodWorker {
    /// One sync of a live pod. Returns when the worker wants to be woken again at the latest.
    pub async fn sync(&mut self, ctx: &NodeContext, pod: &Pod) -> Duration {
        let spec = match &pod.spec {
            Some(s) => s,
            None => return Duration::from_secs(60),
        };
        if self.start_time.is_none() {
            self.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref().map(|t| t.0))
                    .unwrap_or_else(jiff::Timestamp::now),
            );
        }
        let restart_policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let mut wake = Duration::from_secs(2);
        let retry = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RETRY_NOW_ANNOTATION))
            .cloned();
        if retry.is_some() && retry != self.retry_now {
            if let Some(uid) = pod.metadata.uid.as_deref() {
                ctx.images.reset_backoff(Some(uid));
            }
            self.crash = crash_backoff();
            for t in self.tracks.values_mut() {
                if t.waiting
                    .as_ref()
                    .is_some_and(|w| w.0 == CRASH_LOOP_BACK_OFF)
                {
                    t.waiting = None;
                }
            }
            self.retry_now = retry;
        }
        let mut secrets: Option<(Vec<PullSecret>, Vec<String>)> = None;
        let uid = pod.metadata.uid.clone().unwrap_or_default();

        if let Some(wait) = self.ensure_network(ctx, pod).await {
            self.publish_status(ctx, pod).await;
            return wait;
        }
        let pod_ips = if host_network(pod) {
            vec![ctx.node_ip.clone()]
        } else {
            self.pod_ips(ctx)
        };
        let netns = self.net.as_ref().map(|n| n.netns.clone());

        for c in &spec.containers {
            let track = self.tracks.entry(c.name.clone()).or_default();
            // refresh the runtime state of the current instance
            if let Some(id) = &track.id {
                track.state = Some(ctx.runtime.state(id).await);
            }
            match &track.state {
                Some(RuntimeState::Running { .. }) | Some(RuntimeState::Created) => continue,
                Some(RuntimeState::Exited {
                    exit_code,
                    finished_at,
                    ..
                }) => {
                    let restart = match restart_policy.as_str() {
                        "Never" => false,
                        "OnFailure" => *exit_code != 0,
                        _ => true,
                    };
                    if !restart {
                        continue;
                    }
                    // crash-loop back-off since the last termination (kubelet doBackOff)
                    let key = format!(
                        "{}_{}_{}_{}",
                        pod.metadata.name.as_deref().unwrap_or(""),
                        pod.metadata.namespace.as_deref().unwrap_or(""),
                        uid,
                        c.name
                    );
                    let now_wall = jiff::Timestamp::now();
                    let since_exit = now_wall.duration_since(*finished_at).unsigned_abs();
                    let now = ctx.clock.now();
                    let exit_mono = now.saturating_sub(since_exit);
                    if let Some(e) = self.crash.entry(&key) {
                        let expired =
                            exit_mono.saturating_sub(e.last_update) > Duration::from_secs(600);
                        if !expired && since_exit < e.window {
                            let msg = format!(
                                "back-off {} restarting failed container={} pod={}",
                                kubepull_core::pullpolicy::messages::go_duration_ms(e.window),
                                c.name,
                                pod_full_name(pod)
                            );
                            if track.waiting.as_ref().map(|w| w.0.as_str())
                                != Some(CRASH_LOOP_BACK_OFF)
                            {
                                ctx.recorder
                                    .record(
                                        &Involved::pod(pod, Some(&c.name)),
                                        EventType::Warning,
                                        "BackOff",
                                        &format!(
                                            "Back-off restarting failed container {} in pod {}",
                                            c.name,
                                            pod_full_name(pod)
                                        ),
                                    )
                                    .await;
                            }
                            track.waiting = Some((CRASH_LOOP_BACK_OFF.into(), msg));
                            wake = wake.min(e.window - since_exit + Duration::from_millis(100));
                            continue;
                        }
                    }
                    self.crash.next(&key, exit_mono);
                    // remove the old instance, keep it as lastState
                    if let Some(id) = track.id.take() {
                        let _ = ctx.runtime.remove(&id).await;
                    }
                    track.last = track.state.take();
                    track.restarts += 1;
                }
                Some(RuntimeState::Unknown) => {
                    track.id = None;
                    track.state = None;
                }
                None => {}
            }

            // image step
            let (pull_secrets, missing) = match &secrets {
                Some(s) => s.clone(),
                None => {
                    let s = fetch_pull_secrets(&ctx.client, pod).await;
                    if !s.1.is_empty() {
                        let names: Vec<&str> = s.1.iter().map(String::as_str).collect();
                        ctx.recorder
                            .record(
                                &Involved::pod(pod, None),
                                EventType::Warning,
                                kubepull_core::pullpolicy::events::FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET,
                                &kubepull_core::pullpolicy::messages::failed_to_retrieve_pull_secrets(&names),
                            )
                            .await;
                    }
                    secrets = Some(s.clone());
                    s
                }
            };
            let _ = missing;
            let image = c.image.clone().unwrap_or_default();
            let policy = c
                .image_pull_policy
                .as_deref()
                .and_then(|p| PullPolicy::validate(p, "imagePullPolicy").ok());
            let req = ImageRequest {
                pod_uid: &uid,
                namespace: pod.metadata.namespace.as_deref().unwrap_or(""),
                image: &image,
                policy,
                pull_secrets: &pull_secrets,
                node_config: ctx.node_config.as_ref(),
            };
            let mut events = vec![];
            let outcome = ctx.images.ensure_image(&req, &mut events).await;
            let involved = Involved::pod(pod, Some(&c.name));
            for e in &events {
                ctx.recorder
                    .record(&involved, e.event_type, &e.reason, &e.message)
                    .await;
            }
            let image_ref = match outcome {
                ImageOutcome::Ready { image_ref } => image_ref,
                ImageOutcome::Waiting {
                    reason,
                    message,
                    retry_after,
                } => {
                    track.waiting = Some((reason, message));
                    // the kubelet requeues a failed sync after 10-15 s; retry at the end of
                    // the back-off window when known
                    let next = retry_after.unwrap_or(Duration::from_secs(10));
                    wake = wake.min(next.max(Duration::from_secs(1)));
                    // containers start in order: later ones wait for this one
                    break;
                }
            };
            track.image_ref = image_ref.clone();

            // env
            let node_ip = ctx.node_ip.clone();
            let env = match resolve_env(&ctx.client, pod, c, &node_ip, &pod_ips).await {
                Ok(e) => e,
                Err(EnvError(msg)) => {
                    ctx.recorder
                        .record(
                            &involved,
                            EventType::Warning,
                            "Failed",
                            &format!("Error: {msg}"),
                        )
                        .await;
                    track.waiting = Some((CREATE_CONTAINER_CONFIG_ERROR.into(), msg));
                    wake = wake.min(Duration::from_secs(10));
                    break;
                }
            };
            let sc = c.security_context.as_ref();
            let psc = spec.security_context.as_ref();
            let req = ContainerRequest {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                pod_name: pod.metadata.name.clone().unwrap_or_default(),
                pod_uid: uid.clone(),
                name: c.name.clone(),
                image: image.clone(),
                image_ref,
                command: c.command.clone().unwrap_or_default(),
                args: c.args.clone().unwrap_or_default(),
                env,
                working_dir: c.working_dir.clone(),
                run_as_user: sc
                    .and_then(|s| s.run_as_user)
                    .or_else(|| psc.and_then(|s| s.run_as_user)),
                run_as_group: sc
                    .and_then(|s| s.run_as_group)
                    .or_else(|| psc.and_then(|s| s.run_as_group)),
                attempt: track.restarts,
                hostname: spec
                    .hostname
                    .clone()
                    .or_else(|| pod.metadata.name.clone())
                    .unwrap_or_default(),
                netns: netns.clone(),
            };
            match ctx.runtime.start(&req).await {
                Ok(id) => {
                    // pkg/kubelet/kuberuntime/kuberuntime_container.go, startContainer
                    ctx.recorder
                        .record(
                            &involved,
                            EventType::Normal,
                            "Created",
                            &format!("Created container: {}", c.name),
                        )
                        .await;
                    ctx.recorder
                        .record(
                            &involved,
                            EventType::Normal,
                            "Started",
                            &format!("Started container {}", c.name),
                        )
                        .await;
                    track.state = Some(ctx.runtime.state(&id).await);
                    track.id = Some(id);
                    track.waiting = None;
                }
                Err(msg) => {
                    ctx.recorder
                        .record(
                            &involved,
                            EventType::Warning,
                            "Failed",
                            &format!("Error: {msg}"),
                        )
                        .await;
                    track.waiting = Some((RUN_CONTAINER_ERROR.into(), msg));
                    wake = wake.min(Duration::from_secs(10));
                    break;
                }
            }
        }
        self.publish_status(ctx, pod).await;
        wake
    }

    /// Stops every container of a pod being deleted (grace from the pod), removes them.
    pub async fn terminate(&mut self, ctx: &NodeContext, pod: &Pod) {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        for (name, t) in self.tracks.iter_mut() {
            if let Some(id) = t.id.take() {
                if matches!(t.state, Some(RuntimeState::Running { .. })) {
                    ctx.recorder
                        .record(
                            &Involved::pod(pod, Some(name)),
                            EventType::Normal,
                            "Killing",
                            &format!("Stopping container {name}"),
                        )
                        .await;
                }
                let _ = ctx.runtime.stop(&id, Duration::from_secs(grace)).await;
                t.state = Some(ctx.runtime.state(&id).await);
                let _ = ctx.runtime.remove(&id).await;
            }
        }
        self.release_network(ctx, pod).await;
    }

    // ---- pod network (CNI): create the netns if absent → ADD → record the IPs; on the way
    // out DEL → delete the netns. Kept apart from the container steps above.

    /// Attaches the pod to the network once; `Some(wait)` when that failed and the sync has to
    /// stop here (kubelet `FailedCreatePodSandBox`).
    async fn ensure_network(&mut self, ctx: &NodeContext, pod: &Pod) -> Option<Duration> {
        let net = ctx.network.as_ref()?;
        if self.net.is_some() || host_network(pod) {
            return None;
        }
        let r = crate::podnet::PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        };
        let ports = pod
            .spec
            .as_ref()
            .map(crate::podnet::port_mappings)
            .unwrap_or_default();
        match net.setup(&r, &ports).await {
            Ok(ips) => {
                self.net = Some(ips);
                None
            }
            Err(e) => {
                // kubelet kuberuntime_manager.go SyncPod: "Failed to create pod sandbox: %v"
                // around containerd's "failed to setup network for sandbox %q: %w"
                let msg = format!(
                    "Failed to create pod sandbox: failed to setup network for sandbox {:?}: {e}",
                    crate::podnet::netns::pod_netns_name(&r.uid)
                );
                tracing::warn!(pod = %pod_full_name(pod), error = %e, "pod network setup failed");
                ctx.recorder
                    .record(
                        &Involved::pod(pod, None),
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        &msg,
                    )
                    .await;
                Some(Duration::from_secs(10))
            }
        }
    }

    /// A pod that reached Succeeded or Failed gives its network back (the kubelet's
    /// `syncTerminatedPod` stops the sandbox; `status.podIP` stays as reported).
    pub async fn finished(&mut self, ctx: &NodeContext, pod: &Pod) {
        if !host_network(pod) {
            self.release_network(ctx, pod).await;
        }
    }

    /// Detaches the pod from the network (idempotent; a failure is retried at the next agent
    /// start).
    async fn release_network(&mut self, ctx: &NodeContext, pod: &Pod) {
        let Some(net) = ctx.network.as_ref() else {
            return;
        };
        self.net = None;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Err(e) = net.teardown(&uid).await {
            tracing::warn!(pod = %pod_full_name(pod), error = %e, "pod network teardown failed");
        }
    }

    /// The pod's IPs: from CNI, or the node's for host-network pods.
    fn pod_ips(&self, ctx: &NodeContext) -> Vec<String> {
        match &self.net {
            Some(n) => n.ips.iter().map(|i| i.to_string()).collect(),
            None if ctx.network.is_none() => vec![ctx.node_ip.clone()],
            None => vec![],
        }
    }

    async fn publish_status(&mut self, ctx: &NodeContext, pod: &Pod) {
        let pod_ips = if host_network(pod) {
            vec![ctx.node_ip.clone()]
        } else {
            self.pod_ips(ctx)
        };
        let status =
            build_status_with_ips(pod, &self.tracks, &ctx.node_ip, &pod_ips, self.start_time);
        let value = match serde_json::to_value(&status) {
            Ok(v) => v,
            Err(_) => return,
        };
        if self.last_status.as_ref() == Some(&value) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or(""),
        );
        let patch = serde_json::json!({ "status": value });
        match api
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or(""),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => self.last_status = Some(value),
            Err(e) => tracing::warn!(pod = %pod_full_name(pod), error = %e, "status update failed"),
        }
    }
}

fn time(t: jiff::Timestamp) -> Time {
    Time(t)
}

fn terminated(state: &RuntimeState, id: Option<&str>) -> Option<ContainerStateTerminated> {
    match state {
        RuntimeState::Exited {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => Some(ContainerStateTerminated {
            exit_code: *exit_code,
            reason: Some(reason.clone()),
            started_at: started_at.map(time),
            finished_at: Some(time(*finished_at)),
            container_id: id.map(|i| format!("runc://{i}")),
            ..Default::default()
        }),
        _ => None,
    }
}

/// `spec.hostNetwork`.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod status the kubelet would report for these container tracks, for a pod on the host's
/// network (the pod IP is the node IP).
pub fn build_status(
    pod: &Pod,
    tracks: &HashMap<String, Track>,
    node_ip: &str,
    start_time: Option<jiff::Timestamp>,
) -> PodStatus {
    build_status_with_ips(pod, tracks, node_ip, &[node_ip.to_string()], start_time)
}

/// The pod status the kubelet would report for these container tracks with the pod's IPs
/// (primary first; empty until the network is set up, when the kubelet leaves `podIP` unset).
pub fn build_status_with_ips(
    pod: &Pod,
    tracks: &HashMap<String, Track>,
    node_ip: &str,
    pod_ips: &[String],
    start_time: Option<jiff::Timestamp>,
) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let mut statuses = vec![];
    let (mut running, mut waiting, mut succeeded, mut failed) = (0, 0, 0, 0);
    let mut unready = vec![];
    for c in &spec.containers {
        let t = tracks.get(&c.name).cloned().unwrap_or_default();
        let id = t.id.as_deref();
        let (state, ready, started) = match (&t.state, &t.waiting) {
            (Some(RuntimeState::Running { started_at }), _) => {
                running += 1;
                (
                    ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(time(*started_at)),
                        }),
                        ..Default::default()
                    },
                    true,
                    true,
                )
            }
            (_, Some((reason, message))) => {
                waiting += 1;
                // a restarting container counts as running for the phase (kubelet getPhase)
                if t.last.is_some() && restart_policy != "Never" {
                    running += 1;
                    waiting -= 1;
                }
                (
                    ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.clone()),
                            message: (!message.is_empty()).then(|| message.clone()),
                        }),
                        ..Default::default()
                    },
                    false,
                    false,
                )
            }
            (Some(s @ RuntimeState::Exited { exit_code, .. }), None) => {
                if *exit_code == 0 {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
                (
                    ContainerState {
                        terminated: terminated(s, id),
                        ..Default::default()
                    },
                    false,
                    false,
                )
            }
            _ => {
                waiting += 1;
                (
                    ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(CONTAINER_CREATING.into()),
                            message: None,
                        }),
                        ..Default::default()
                    },
                    false,
                    false,
                )
            }
        };
        if !ready {
            unready.push(c.name.clone());
        }
        statuses.push(ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: t.image_ref.clone(),
            ready,
            started: Some(started),
            restart_count: t.restarts as i32,
            state: Some(state),
            last_state: t.last.as_ref().and_then(|l| {
                terminated(l, None).map(|term| ContainerState {
                    terminated: Some(term),
                    ..Default::default()
                })
            }),
            container_id: id.map(|i| format!("runc://{i}")),
            ..Default::default()
        });
    }
    let total = spec.containers.len();
    // pkg/kubelet/kubelet_pods.go getPhase
    let phase = if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if succeeded + failed == total && total > 0 {
        if restart_policy == "Always" {
            "Running"
        } else if failed > 0 && restart_policy == "Never" {
            "Failed"
        } else if failed > 0 {
            "Running"
        } else {
            "Succeeded"
        }
    } else {
        "Pending"
    };
    let now = time(jiff::Timestamp::now());
    let previous: BTreeMap<String, PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_.clone(), c))
        .collect();
    let cond = |type_: &str, ok: bool, reason: Option<String>, message: Option<String>| {
        let status = if ok { "True" } else { "False" }.to_string();
        let last_transition_time = match previous.get(type_) {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        PodCondition {
            type_: type_.to_string(),
            status,
            reason,
            message,
            last_transition_time,
            last_probe_time: None,
            ..Default::default()
        }
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let all_ready = unready.is_empty() && total > 0;
    let (ready_reason, ready_msg) = if all_ready {
        (None, None)
    } else if completed {
        (Some("PodCompleted".to_string()), None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let mut conditions = vec![
        cond("PodReadyToStartContainers", !completed, None, None),
        cond(
            "Initialized",
            true,
            completed.then(|| "PodCompleted".to_string()),
            None,
        ),
        cond("Ready", all_ready, ready_reason.clone(), ready_msg.clone()),
        cond("ContainersReady", all_ready, ready_reason, ready_msg),
    ];
    if let Some(s) = previous.get("PodScheduled") {
        conditions.push(s.clone());
    } else {
        conditions.push(cond("PodScheduled", true, None, None));
    }
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        host_ip: Some(node_ip.to_string()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: node_ip.to_string(),
        }]),
        // kubelet_pods.go generateAPIPodStatus: podIP is podIPs[0]
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: start_time.map(time),
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
        assert_eq!(expand("plain", &env), "plain");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    fn pod(containers: &[&str], restart: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some("uid-1".into());
        let mut spec = k8s_openapi::api::core::v1::PodSpec {
            restart_policy: Some(restart.into()),
            ..Default::default()
        };
        for c in containers {
            spec.containers.push(Container {
                name: c.to_string(),
                image: Some("reg/app:v1".into()),
                ..Default::default()
            });
        }
        p.spec = Some(spec);
        p
    }

    #[test]
    fn status_waiting_on_image_pull() {
        let p = pod(&["app"], "Always");
        let mut tracks = HashMap::new();
        tracks.insert(
            "app".to_string(),
            Track {
                waiting: Some(("ImagePullBackOff".into(), "Back-off pulling image".into())),
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.unwrap()[0];
        let w = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(!cs.ready);
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [app]")
        );
    }

    #[test]
    fn status_running_and_completed() {
        let p = pod(&["app"], "Always");
        let mut tracks = HashMap::new();
        tracks.insert(
            "app".to_string(),
            Track {
                id: Some("c1".into()),
                state: Some(RuntimeState::Running {
                    started_at: jiff::Timestamp::now(),
                }),
                image_ref: "sha256:ab".into(),
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("runc://c1"));

        let p = pod(&["job"], "Never");
        let mut tracks = HashMap::new();
        tracks.insert(
            "job".to_string(),
            Track {
                id: Some("c2".into()),
                state: Some(RuntimeState::Exited {
                    exit_code: 1,
                    reason: "Error".into(),
                    started_at: None,
                    finished_at: jiff::Timestamp::now(),
                }),
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn status_pod_ips_from_the_network() {
        let p = pod(&["app"], "Always");
        let tracks = HashMap::new();
        // before CNI ADD: no podIP yet, the host IP is there
        let s = build_status_with_ips(&p, &tracks, "192.0.2.2", &[], None);
        assert_eq!(s.pod_ip, None);
        assert_eq!(s.pod_ips, None);
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.2"));
        assert_eq!(s.host_ips.unwrap()[0].ip, "192.0.2.2");
        // dual stack: the primary first, all in podIPs
        let ips = vec!["10.244.1.5".to_string(), "fd00::5".to_string()];
        let s = build_status_with_ips(&p, &tracks, "192.0.2.2", &ips, None);
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.5"));
        let all: Vec<String> = s.pod_ips.unwrap().into_iter().map(|i| i.ip).collect();
        assert_eq!(all, ips);
        // host network: the node's IP
        let s = build_status(&p, &tracks, "192.0.2.2", None);
        assert_eq!(s.pod_ip.as_deref(), Some("192.0.2.2"));
    }

    #[test]
    fn crash_loop_counts_as_running() {
        let p = pod(&["app"], "Always");
        let mut tracks = HashMap::new();
        tracks.insert(
            "app".to_string(),
            Track {
                waiting: Some((CRASH_LOOP_BACK_OFF.into(), "back-off 10s".into())),
                last: Some(RuntimeState::Exited {
                    exit_code: 2,
                    reason: "Error".into(),
                    started_at: None,
                    finished_at: jiff::Timestamp::now(),
                }),
                restarts: 1,
                ..Default::default()
            },
        );
        let s = build_status(&p, &tracks, "127.0.0.1", None);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            2
        );
    }
}
