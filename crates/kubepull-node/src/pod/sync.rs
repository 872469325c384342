//! One sync of a pod: containers in order (image step → create → start), restarts by
//! `restartPolicy` with the crash-loop back-off, termination, and the status update.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use kubepull_core::keyring::PullSecret;
use kubepull_core::pullpolicy::PullPolicy;

use super::env::{fetch_pull_secrets, resolve_env, EnvError};
use super::status::{build_status_with_ips, build_terminal_status, host_network};
use super::*;
use crate::events::Involved;
use crate::images::{EventType, ImageOutcome, ImageRequest};
use crate::runtime::ContainerRequest;

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

        // volumes: set up before any container starts (the kubelet's WaitForAttachAndMount),
        // then re-read and rewritten every VOLUME_RESYNC
        let now = ctx.clock.now();
        if self.volumes.due(now) {
            let errors =
                super::volumes::setup(&ctx.client, &ctx.volumes, pod, &mut self.volumes, now).await;
            for e in errors {
                ctx.recorder
                    .record(
                        &Involved::pod(pod, None),
                        EventType::Warning,
                        "FailedMount",
                        &e.to_string(),
                    )
                    .await;
            }
        }
        let volumes_ready = self.volumes.all_ready(pod);
        if !volumes_ready {
            wake = wake.min(super::volumes::VOLUME_RESYNC);
        }

        // kubelet admission: unsafe sysctls fail the pod (SysctlForbidden)
        if let Err(msg) = crate::sandbox::security::admit_sysctls(spec) {
            if self.rejected.is_none() {
                ctx.recorder
                    .record(
                        &Involved::pod(pod, None),
                        EventType::Warning,
                        crate::sandbox::security::SYSCTL_FORBIDDEN,
                        &msg,
                    )
                    .await;
            }
            self.rejected = Some((crate::sandbox::security::SYSCTL_FORBIDDEN.into(), msg));
            self.publish_status(ctx, pod).await;
            return Duration::from_secs(3600);
        }
        // the pod sandbox before any container (kubelet SyncPod → RunPodSandbox)
        let sandbox = self.pod_sandbox(ctx, pod).await;
        {
            match ctx.runtime.ensure_sandbox(&sandbox).await {
                Ok(created) => {
                    if created && self.tracks.values().any(|t| t.id.is_some()) {
                        // kubelet computePodActions: the sandbox changed, so every container
                        // is killed and started again in the new one
                        ctx.recorder
                            .record(
                                &Involved::pod(pod, None),
                                EventType::Normal,
                                "SandboxChanged",
                                "Pod sandbox changed, it will be killed and re-created.",
                            )
                            .await;
                        for t in self.tracks.values_mut() {
                            if let Some(id) = t.id.take() {
                                let _ = ctx.runtime.stop(&id, Duration::from_secs(0)).await;
                                let state = ctx.runtime.state(&id).await;
                                let _ = ctx.runtime.remove(&id).await;
                                t.last = Some(state);
                                t.state = None;
                                t.restarts += 1;
                            }
                        }
                    }
                    if created && self.net.is_some() {
                        // a new sandbox has a new network namespace: the old attachment is
                        // released (DEL) and the namespace made again for a fresh ADD below
                        self.release_network(ctx, pod).await;
                        if let Err(e) = ctx.runtime.ensure_sandbox(&sandbox).await {
                            tracing::warn!(pod = %pod_full_name(pod), error = %e, "re-creating the pod sandbox failed");
                        }
                    }
                    self.sandbox_ready = true;
                }
                Err(e) => {
                    ctx.recorder
                        .record(
                            &Involved::pod(pod, None),
                            EventType::Warning,
                            "FailedCreatePodSandBox",
                            &format!("Failed to create pod sandbox: {e}"),
                        )
                        .await;
                    self.publish_status(ctx, pod).await;
                    return requeue_after_error(random_unit());
                }
            }
        }
        // the pod network on the sandbox's network namespace (containerd RunPodSandbox:
        // the netns, then CNI ADD, then the containers join it)
        if self.sandbox_ready {
            if let Some(wait) = self.ensure_network(ctx, pod).await {
                self.publish_status(ctx, pod).await;
                return wait;
            }
        }
        let pod_ips = if host_network(pod) {
            vec![ctx.node_ip.clone()]
        } else {
            self.pod_ips(ctx)
        };
        let mut sync_error = false;

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
            if !volumes_ready {
                // ContainerCreating until every volume is mounted
                break;
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
                    // a sync that ends in an error is requeued after the pod worker's
                    // back-off period, whatever the image back-off window is
                    let _ = retry_after;
                    sync_error = true;
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
            let mounts = match super::volumes::container_mounts(c, &self.volumes.ready, &env) {
                Ok(m) => m,
                Err(e) => {
                    ctx.recorder
                        .record(
                            &involved,
                            EventType::Warning,
                            "Failed",
                            &format!("Error: {e}"),
                        )
                        .await;
                    track.waiting = Some((CREATE_CONTAINER_CONFIG_ERROR.into(), e.0));
                    sync_error = true;
                    break;
                }
            };
            // generateContainerConfig: effective security context, runAsNonRoot
            let security = match container_security(ctx, pod, c, &image).await {
                Ok(s) => s,
                Err(msg) => {
                    ctx.recorder
                        .record(
                            &involved,
                            EventType::Warning,
                            "Failed",
                            &format!("Error: {msg}"),
                        )
                        .await;
                    track.waiting = Some((CREATE_CONTAINER_CONFIG_ERROR.into(), msg));
                    sync_error = true;
                    break;
                }
            };
            let req = ContainerRequest {
                mounts,
                fs_group: spec.security_context.as_ref().and_then(|s| s.fs_group),
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
                security,
                sandbox: sandbox.clone(),
                attempt: track.restarts,
                hostname: sandbox.hostname.clone(),
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
                    if msg.contains("the pod sandbox is not running") {
                        self.sandbox_ready = false;
                    }
                    // everything before the shim runs is CRI CreateContainer's part; runc's
                    // own start failures come back as a StartError exit
                    let reason = if msg.starts_with("start shim") {
                        RUN_CONTAINER_ERROR
                    } else {
                        CREATE_CONTAINER_ERROR
                    };
                    track.waiting = Some((reason.into(), msg));
                    sync_error = true;
                    break;
                }
            }
        }
        self.publish_status(ctx, pod).await;
        if sync_error {
            return requeue_after_error(random_unit());
        }
        wake
    }

    /// The pod's sandbox; DNS warnings are recorded when it is first computed.
    async fn pod_sandbox(&self, ctx: &NodeContext, pod: &Pod) -> crate::sandbox::PodSandbox {
        let node_resolv = crate::sandbox::files::node_resolv_conf();
        let dns = crate::sandbox::files::pod_resolv_conf(pod, &node_resolv);
        if !self.sandbox_ready {
            for (reason, message) in &dns.warnings {
                ctx.recorder
                    .record(
                        &Involved::pod(pod, None),
                        EventType::Warning,
                        reason,
                        message,
                    )
                    .await;
            }
        }
        crate::sandbox::security::pod_sandbox(pod, dns.resolv_conf, DEFAULT_CGROUP_ROOT)
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
        // the containers are gone: unmount and remove the pod's volumes
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let settings = ctx.volumes.clone();
        let r =
            tokio::task::spawn_blocking(move || super::volumes::teardown(&settings, &uid)).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(pod = %pod_full_name(pod), error = %e, "removing the pod's volumes failed");
        }
        self.volumes = Default::default();
        // the network while its namespace exists (CNI DEL), then the sandbox (kubelet KillPod →
        // StopPodSandbox, RemovePodSandbox)
        self.release_network(ctx, pod).await;
        if let Some(uid) = pod.metadata.uid.as_deref() {
            if let Err(e) = ctx.runtime.remove_sandbox(uid).await {
                tracing::warn!(pod = %pod_full_name(pod), error = %e, "removing the pod sandbox failed");
            }
        }
        self.sandbox_ready = false;
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

    /// Reports the pod's status; a failed write is logged, and the next sync writes again.
    async fn publish_status(&mut self, ctx: &NodeContext, pod: &Pod) {
        if let Err(e) = self.publish(ctx, pod, false).await {
            tracing::warn!(pod = %pod_full_name(pod), error = %e, "status update failed");
        }
    }

    /// Reports the terminal status of a pod [`PodWorker::terminate`] stopped because it is
    /// being deleted ([`build_terminal_status`]), before the node removes the pod object. The
    /// caller retries an error: the pod must not go before its terminal phase is stored.
    pub async fn publish_terminal_status(
        &mut self,
        ctx: &NodeContext,
        pod: &Pod,
    ) -> Result<(), kube::Error> {
        self.publish(ctx, pod, true).await
    }

    async fn publish(
        &mut self,
        ctx: &NodeContext,
        pod: &Pod,
        terminal: bool,
    ) -> Result<(), kube::Error> {
        let pod_ips = if host_network(pod) {
            vec![ctx.node_ip.clone()]
        } else {
            self.pod_ips(ctx)
        };
        let build = if terminal {
            build_terminal_status
        } else {
            build_status_with_ips
        };
        let mut status = build(pod, &self.tracks, &ctx.node_ip, &pod_ips, self.start_time);
        if let Some((reason, message)) = &self.rejected {
            // a pod rejected by admission (kubelet rejectPod)
            status.phase = Some("Failed".into());
            status.reason = Some(reason.clone());
            status.message = Some(message.clone());
        }
        let value = serde_json::to_value(&status).map_err(kube::Error::SerdeError)?;
        if self.last_status.as_ref() == Some(&value) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or(""),
        );
        // the UID in the patch makes it apply only to this pod, not to a pod of the same name
        // created since (kubelet statusutil.PatchPodStatus)
        let patch = serde_json::json!({
            "metadata": { "uid": pod.metadata.uid },
            "status": value,
        });
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or(""),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
        self.last_status = Some(value);
        Ok(())
    }
}
