//! The controllers, in process, over the object layer: Deployment → ReplicaSet → Pods
//! (kubernetes `pkg/controller/deployment`, `pkg/controller/replicaset`), a scheduler that binds
//! pods to Ready nodes, ownerReference garbage collection (`pkg/controller/garbagecollector`:
//! background, foreground, orphan), namespace deletion, and node lifecycle (a node whose lease
//! is not renewed turns NotReady).
//!
//! Level-triggered: every change in the store (and a periodic tick) runs one reconcile pass over
//! everything. Decisions are pure functions of the current objects.

pub mod cron;
pub mod cronjob;
pub mod endpoints;
pub mod job;
pub mod queue;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::objects::{DeleteOptions, ListOptions, Objects, User};
use crate::resources::{self, Resource};

/// How long a node may go without renewing its lease before it is NotReady (kube-controller-
/// manager `--node-monitor-grace-period`, 40 s).
pub const NODE_GRACE: Duration = Duration::from_secs(40);

pub use crate::objects::now;

fn res(plural: &str) -> &'static Resource {
    resources::RESOURCES
        .iter()
        .find(|r| {
            r.plural == plural && matches!(r.group, "" | "apps" | "batch" | "discovery.k8s.io")
        })
        .expect("served resource")
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// apimachinery `rand.SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| ALPHANUMS[(c as usize) % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a Deployment's template: FNV-32a over the canonical JSON of the
/// template (upstream hashes a spew dump of the Go struct; the value differs from a real
/// cluster's but is stable and has the same form), then `SafeEncodeString` of the decimal.
pub fn pod_template_hash(template: &Value, collisions: i64) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= *x as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(canonical(template).as_bytes());
    if collisions > 0 {
        feed(collisions.to_string().as_bytes());
    }
    safe_encode(&h.to_string())
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap_or_default(),
                        canonical(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (p * total + 99) / 100
            } else {
                p * total / 100
            }
        }
        _ => 0,
    }
}

fn owner_uids(o: &Value) -> Vec<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn controller_uid(o: &Value) -> Option<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&json!(true)))
        .and_then(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
}

fn is_pod_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
        })
}

fn is_active(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(s(p, "/status/phase"), "Succeeded" | "Failed")
}

fn owner_ref(kind: &str, api_version: &str, o: &Value) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
        "name": s(o, "/metadata/name"), "uid": s(o, "/metadata/uid"),
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// Records an event from a controller.
pub async fn event(
    objects: &Objects,
    component: &str,
    obj: &Value,
    kind: &str,
    etype: &str,
    reason: &str,
    message: &str,
) {
    let evr = res("events");
    let ns = s(obj, "/metadata/namespace");
    let ns = if ns.is_empty() { "default" } else { ns };
    let name = s(obj, "/metadata/name");
    let ts = now();
    let ev = json!({
        "metadata": {"name": format!("{name}.{:x}", jiff::Timestamp::now().as_nanosecond())},
        "involvedObject": {
            "kind": kind, "namespace": s(obj, "/metadata/namespace"), "name": name,
            "uid": s(obj, "/metadata/uid"), "apiVersion": s(obj, "/apiVersion"),
            "resourceVersion": s(obj, "/metadata/resourceVersion"),
        },
        "reason": reason, "message": message, "type": etype, "count": 1,
        "firstTimestamp": ts, "lastTimestamp": ts,
        "source": {"component": component},
        "reportingComponent": component, "reportingInstance": "",
    });
    let _ = objects.create(evr, ns, ev, &User::Admin, false).await;
}

/// What the controllers are configured with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The range node podCIDRs are allocated from (none: nodes get no podCIDR).
    pub cluster_cidr: Option<crate::podcidr::Ipv4Net>,
}

/// Runs the controllers until `shutdown` resolves.
pub async fn run(objects: Objects, shutdown: impl std::future::Future<Output = ()>) {
    run_with(objects, Settings::default(), shutdown).await
}

/// Runs the controllers with `settings` until `shutdown` resolves: the level-triggered pass
/// and the work-queue controllers (Jobs, CronJobs, Endpoints and EndpointSlices).
pub async fn run_with(
    objects: Objects,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let never = std::future::pending::<()>;
    let queued = async {
        tokio::join!(
            queue::run(objects.clone(), job::JobController, never()),
            queue::run(objects.clone(), cronjob::CronJobController, never()),
            queue::run(
                objects.clone(),
                endpoints::EndpointsController::default(),
                never()
            ),
        )
    };
    tokio::select! {
        _ = run_level(objects.clone(), settings, shutdown) => {}
        _ = queued => {}
    }
}

async fn run_level(
    objects: Objects,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut watch = None;
    loop {
        if watch.is_none() {
            let rev = objects.store().current_revision().await.unwrap_or(0);
            watch = objects.store().watch("/registry/", rev).await.ok();
        }
        if let Err(e) = reconcile_with(&objects, &settings).await {
            tracing::warn!(error = %e, "controllers: reconcile failed");
        }
        // wait for a change or a tick
        let tick = tokio::time::sleep(Duration::from_secs(2));
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick => {},
            ev = async {
                match watch.as_mut() {
                    Some(w) => w.events.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if ev.is_none() { watch = None; }
                // coalesce a burst of changes into one pass
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(w) = watch.as_mut() {
                    while w.events.try_recv().is_ok() {}
                }
            }
        }
    }
}

async fn list(objects: &Objects, plural: &str) -> Vec<Value> {
    objects
        .list(res(plural), None, &ListOptions::default())
        .await
        .map(|x| x.0)
        .unwrap_or_default()
}

/// One reconcile pass.
pub async fn reconcile(objects: &Objects) -> Result<(), crate::errors::ApiError> {
    reconcile_with(objects, &Settings::default()).await
}

/// One reconcile pass with `settings`.
pub async fn reconcile_with(
    objects: &Objects,
    settings: &Settings,
) -> Result<(), crate::errors::ApiError> {
    if let Some(c) = settings.cluster_cidr {
        node_ipam(objects, c).await;
    }
    namespaces(objects).await;
    garbage_collect(objects).await;
    deployments(objects).await;
    replicasets(objects).await;
    schedule(objects).await;
    node_lifecycle(objects).await;
    csr_cleaner(objects).await;
    Ok(())
}

/// The CSR cleaner (pkg/controller/certificates/cleaner/cleaner.go): issued, approved, denied and
/// failed requests go after an hour, pending ones after a day.
async fn csr_cleaner(objects: &Objects) {
    let Some(r) = resources::find("certificates.k8s.io", "v1", "certificatesigningrequests") else {
        return;
    };
    let (items, _, _) = objects
        .list(r, None, &ListOptions::default())
        .await
        .unwrap_or_default();
    let now = jiff::Timestamp::now().as_second();
    for csr in items {
        let Some(created) = csr
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        else {
            continue;
        };
        let decided = csr.pointer("/status/certificate").is_some()
            || csr
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty());
        let limit = if decided { 3600 } else { 24 * 3600 };
        if now - created.as_second() > limit {
            let name = s(&csr, "/metadata/name").to_string();
            let _ = objects
                .delete(r, "", &name, &crate::objects::DeleteOptions::default())
                .await;
        }
    }
}

async fn namespaces(objects: &Objects) {
    for ns in list(objects, "namespaces").await {
        if ns.pointer("/metadata/deletionTimestamp").is_none() {
            continue;
        }
        let name = s(&ns, "/metadata/name").to_string();
        let mut left = 0;
        let custom = objects.crds().storage_resources();
        for r in resources::RESOURCES
            .iter()
            .filter(|r| r.namespaced && r.group != "events.k8s.io")
            .chain(custom.into_iter().filter(|r| r.namespaced))
        {
            let (items, _, _) = objects
                .list(r, Some(&name), &ListOptions::default())
                .await
                .unwrap_or_default();
            for o in items {
                left += 1;
                let n = s(&o, "/metadata/name").to_string();
                if r.kind == "Pod" && o.pointer("/metadata/deletionTimestamp").is_some() {
                    // the node finishes graceful deletion; without a node, remove it
                    if s(&o, "/spec/nodeName").is_empty() {
                        let _ = objects.remove(r, &name, &n).await;
                    }
                    continue;
                }
                let _ = objects
                    .delete(
                        r,
                        &name,
                        &n,
                        &DeleteOptions {
                            propagation_policy: Some("Background".into()),
                            ..Default::default()
                        },
                    )
                    .await;
            }
        }
        if left == 0 {
            let _ = objects.remove(res("namespaces"), "", &name).await;
        }
    }
}

async fn garbage_collect(objects: &Objects) {
    let kinds = [
        "deployments",
        "replicasets",
        "pods",
        "cronjobs",
        "jobs",
        "services",
        "endpointslices",
    ];
    let mut all: Vec<(&'static Resource, Value)> = vec![];
    for k in kinds {
        for o in list(objects, k).await {
            all.push((res(k), o));
        }
    }
    let uids: HashSet<String> = all
        .iter()
        .map(|(_, o)| s(o, "/metadata/uid").to_string())
        .collect();
    // owners being deleted in the foreground or orphaning
    for (r, o) in &all {
        if o.pointer("/metadata/deletionTimestamp").is_none() {
            continue;
        }
        let fins: Vec<String> = o
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let uid = s(o, "/metadata/uid");
        let ns = s(o, "/metadata/namespace").to_string();
        let name = s(o, "/metadata/name").to_string();
        let dependents: Vec<&(&'static Resource, Value)> = all
            .iter()
            .filter(|(_, d)| owner_uids(d).iter().any(|u| u == uid))
            .collect();
        if fins.iter().any(|f| f == "orphan") {
            for (dr, d) in &dependents {
                let refs: Vec<Value> = d
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter(|x| s(x, "/uid") != uid).cloned().collect())
                    .unwrap_or_default();
                let _ = objects
                    .patch(
                        dr,
                        s(d, "/metadata/namespace"),
                        s(d, "/metadata/name"),
                        "application/merge-patch+json",
                        &json!({"metadata": {"ownerReferences": refs}}),
                        None,
                        false,
                    )
                    .await;
            }
            remove_finalizer(objects, r, &ns, &name, "orphan").await;
        } else if fins.iter().any(|f| f == "foregroundDeletion") {
            if dependents.is_empty() {
                remove_finalizer(objects, r, &ns, &name, "foregroundDeletion").await;
            } else {
                for (dr, d) in &dependents {
                    if d.pointer("/metadata/deletionTimestamp").is_none() {
                        let _ = objects
                            .delete(
                                dr,
                                s(d, "/metadata/namespace"),
                                s(d, "/metadata/name"),
                                &DeleteOptions {
                                    propagation_policy: Some("Foreground".into()),
                                    ..Default::default()
                                },
                            )
                            .await;
                    }
                }
            }
        }
    }
    // dependents whose owners are all gone (background)
    for (r, o) in &all {
        let owners = owner_uids(o);
        if owners.is_empty() || owners.iter().any(|u| uids.contains(u)) {
            continue;
        }
        if o.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let _ = objects
            .delete(
                r,
                s(o, "/metadata/namespace"),
                s(o, "/metadata/name"),
                &DeleteOptions {
                    propagation_policy: Some("Background".into()),
                    ..Default::default()
                },
            )
            .await;
    }
}

async fn remove_finalizer(
    objects: &Objects,
    r: &'static Resource,
    ns: &str,
    name: &str,
    fin: &str,
) {
    if let Ok(cur) = objects.get(r, ns, name).await {
        let fins: Vec<Value> = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|x| x.as_str() != Some(fin))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut next = cur.clone();
        next["metadata"]["finalizers"] = Value::Array(fins);
        let _ = objects.update(r, ns, name, next, None, false).await;
    }
}

async fn set_rs_replicas(
    objects: &Objects,
    rs: &Value,
    replicas: i64,
    deploy: &Value,
    revision: Option<i64>,
) {
    let from = i(rs, "/spec/replicas");
    let mut patch = json!({"spec": {"replicas": replicas}, "metadata": {"annotations": {
        "deployment.kubernetes.io/desired-replicas": i(deploy, "/spec/replicas").to_string(),
        "deployment.kubernetes.io/max-replicas": (i(deploy, "/spec/replicas") + scaled(deploy.pointer("/spec/strategy/rollingUpdate/maxSurge"), i(deploy, "/spec/replicas"), true)).to_string(),
    }}});
    if let Some(rev) = revision {
        patch["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
            json!(rev.to_string());
    }
    let ok = objects
        .patch(
            res("replicasets"),
            s(rs, "/metadata/namespace"),
            s(rs, "/metadata/name"),
            "application/merge-patch+json",
            &patch,
            None,
            false,
        )
        .await
        .is_ok();
    if ok && from != replicas {
        let dir = if replicas > from { "up" } else { "down" };
        event(
            objects,
            "deployment-controller",
            deploy,
            "Deployment",
            "Normal",
            "ScalingReplicaSet",
            &format!(
                "Scaled {dir} replica set {} from {from} to {replicas}",
                s(rs, "/metadata/name")
            ),
        )
        .await;
    }
}

async fn deployments(objects: &Objects) {
    let all_rs = list(objects, "replicasets").await;
    for d in list(objects, "deployments").await {
        if d.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = s(&d, "/metadata/namespace").to_string();
        let dname = s(&d, "/metadata/name").to_string();
        let uid = s(&d, "/metadata/uid").to_string();
        let replicas = i(&d, "/spec/replicas");
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let collisions = i(&d, "/status/collisionCount");
        let hash = pod_template_hash(&template, collisions);
        let owned: Vec<&Value> = all_rs
            .iter()
            .filter(|rs| controller_uid(rs).as_deref() == Some(uid.as_str()))
            .collect();
        let max_rev = owned
            .iter()
            .map(|rs| {
                s(
                    rs,
                    "/metadata/annotations/deployment.kubernetes.io~1revision",
                )
                .parse::<i64>()
                .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let new_rs = owned
            .iter()
            .find(|rs| s(rs, "/metadata/labels/pod-template-hash") == hash)
            .map(|v| (*v).clone());
        let olds: Vec<&Value> = owned
            .iter()
            .filter(|rs| s(rs, "/metadata/labels/pod-template-hash") != hash)
            .copied()
            .collect();
        let recreate = s(&d, "/spec/strategy/type") == "Recreate";
        let old_total: i64 = olds.iter().map(|r| i(r, "/spec/replicas")).sum();
        let new_rs = match new_rs {
            Some(rs) => {
                if s(
                    &rs,
                    "/metadata/annotations/deployment.kubernetes.io~1revision",
                )
                .parse::<i64>()
                .unwrap_or(0)
                    < max_rev
                    && !olds.is_empty()
                {
                    // a rollback to an older template: it becomes the newest revision
                    set_rs_replicas(
                        objects,
                        &rs,
                        i(&rs, "/spec/replicas"),
                        &d,
                        Some(max_rev + 1),
                    )
                    .await;
                }
                rs
            }
            None => {
                let mut tpl = template.clone();
                tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut sel = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                sel["matchLabels"]["pod-template-hash"] = json!(hash);
                let start = if recreate || olds.is_empty() {
                    if recreate && old_total > 0 {
                        0
                    } else {
                        replicas
                    }
                } else {
                    0
                };
                let mut labels = tpl
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels["pod-template-hash"] = json!(hash);
                let rs = json!({
                    "metadata": {
                        "name": format!("{dname}-{hash}"),
                        "labels": labels,
                        "annotations": {
                            "deployment.kubernetes.io/revision": (max_rev + 1).to_string(),
                            "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                            "deployment.kubernetes.io/max-replicas": (replicas + scaled(d.pointer("/spec/strategy/rollingUpdate/maxSurge"), replicas, true)).to_string(),
                        },
                        "ownerReferences": [owner_ref("Deployment", "apps/v1", &d)],
                    },
                    "spec": {"replicas": start, "selector": sel, "template": tpl},
                });
                match objects
                    .create(res("replicasets"), &ns, rs, &User::Admin, false)
                    .await
                {
                    Ok(created) => {
                        if start > 0 {
                            event(
                                objects,
                                "deployment-controller",
                                &d,
                                "Deployment",
                                "Normal",
                                "ScalingReplicaSet",
                                &format!("Scaled up replica set {dname}-{hash} from 0 to {start}"),
                            )
                            .await;
                        }
                        created
                    }
                    Err(e) if e.code == 409 => {
                        // a hash collision with an RS that is not ours
                        let _ = objects
                            .patch(
                                res("deployments"),
                                &ns,
                                &dname,
                                "application/merge-patch+json",
                                &json!({"status": {"collisionCount": collisions + 1}}),
                                Some("status"),
                                false,
                            )
                            .await;
                        continue;
                    }
                    Err(_) => continue,
                }
            }
        };
        let new_count = i(&new_rs, "/spec/replicas");
        if recreate {
            let old_pods: i64 = olds.iter().map(|r| i(r, "/status/replicas")).sum();
            for o in &olds {
                if i(o, "/spec/replicas") > 0 {
                    set_rs_replicas(objects, o, 0, &d, None).await;
                }
            }
            if old_pods == 0 && new_count != replicas {
                set_rs_replicas(objects, &new_rs, replicas, &d, None).await;
            }
        } else if olds.is_empty() || old_total == 0 {
            if new_count != replicas {
                set_rs_replicas(objects, &new_rs, replicas, &d, None).await;
            }
        } else {
            let surge = scaled(
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                replicas,
                true,
            );
            let mut unavail = scaled(
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                replicas,
                false,
            );
            if surge == 0 && unavail == 0 {
                unavail = 1;
            }
            let total: i64 = old_total + new_count;
            // scale up the new RS within the surge
            let up = (replicas + surge - total).min(replicas - new_count).max(0);
            if up > 0 {
                set_rs_replicas(objects, &new_rs, new_count + up, &d, None).await;
            }
            // scale down old RSs while keeping the minimum available
            let available: i64 = owned
                .iter()
                .map(|r| i(r, "/status/availableReplicas"))
                .sum();
            let min_available = replicas - unavail;
            let mut can_remove = (available - min_available).max(0);
            // old replicas that are not available can go at once
            for o in &olds {
                let unavailable_old =
                    (i(o, "/spec/replicas") - i(o, "/status/availableReplicas")).max(0);
                can_remove += unavailable_old;
            }
            let new_total = (new_count + up).min(replicas);
            let excess_total = (old_total + new_total - replicas).max(0);
            let mut to_remove = can_remove
                .min(old_total)
                .min(excess_total.max(if new_total >= replicas { old_total } else { 0 }));
            for o in &olds {
                if to_remove == 0 {
                    break;
                }
                let cur = i(o, "/spec/replicas");
                let dec = cur.min(to_remove);
                if dec > 0 {
                    set_rs_replicas(objects, o, cur - dec, &d, None).await;
                    to_remove -= dec;
                }
            }
        }
        // revision history
        let limit = d
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10);
        let mut idle: Vec<&&Value> = olds
            .iter()
            .filter(|r| i(r, "/spec/replicas") == 0 && i(r, "/status/replicas") == 0)
            .collect();
        if idle.len() as i64 > limit {
            idle.sort_by_key(|r| {
                s(
                    r,
                    "/metadata/annotations/deployment.kubernetes.io~1revision",
                )
                .parse::<i64>()
                .unwrap_or(0)
            });
            let n = idle.len() - limit as usize;
            for r in idle.into_iter().take(n) {
                let _ = objects
                    .delete(
                        res("replicasets"),
                        &ns,
                        s(r, "/metadata/name"),
                        &DeleteOptions::default(),
                    )
                    .await;
            }
        }
        // status
        let fresh: Vec<Value> = list(objects, "replicasets")
            .await
            .into_iter()
            .filter(|rs| controller_uid(rs).as_deref() == Some(uid.as_str()))
            .collect();
        let sum = |p: &str| fresh.iter().map(|r| i(r, p)).sum::<i64>();
        let updated = fresh
            .iter()
            .find(|r| s(r, "/metadata/labels/pod-template-hash") == hash)
            .map(|r| i(r, "/status/replicas"))
            .unwrap_or(0);
        let available = sum("/status/availableReplicas");
        let unavail = scaled(
            d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
            replicas,
            false,
        );
        let min_available = replicas - unavail;
        let ts = now();
        let keep_time = |t: &str, st: &str| -> String {
            d.pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| s(c, "/type") == t && s(c, "/status") == st)
                })
                .map(|c| s(c, "/lastTransitionTime").to_string())
                .unwrap_or_else(|| ts.clone())
        };
        let avail_ok = available >= min_available;
        let complete =
            updated == replicas && sum("/status/replicas") == replicas && available == replicas;
        let new_name = s(&new_rs, "/metadata/name");
        let conditions = json!([
            {
                "type": "Available",
                "status": if avail_ok { "True" } else { "False" },
                "reason": if avail_ok { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                "message": if avail_ok { "Deployment has minimum availability.".to_string() } else { "Deployment does not have minimum availability.".to_string() },
                "lastUpdateTime": keep_time("Available", if avail_ok { "True" } else { "False" }),
                "lastTransitionTime": keep_time("Available", if avail_ok { "True" } else { "False" }),
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                "message": if complete { format!("ReplicaSet \"{new_name}\" has successfully progressed.") } else { format!("ReplicaSet \"{new_name}\" is progressing.") },
                "lastUpdateTime": ts,
                "lastTransitionTime": keep_time("Progressing", "True"),
            }
        ]);
        let mut status = json!({
            "observedGeneration": i(&d, "/metadata/generation"),
            "replicas": sum("/status/replicas"),
            "updatedReplicas": updated,
            "readyReplicas": sum("/status/readyReplicas"),
            "availableReplicas": available,
            "conditions": conditions,
        });
        let unavailable = (sum("/status/replicas") - available)
            .max(replicas - available)
            .max(0);
        if unavailable > 0 {
            status["unavailableReplicas"] = json!(unavailable);
        }
        if collisions > 0 {
            status["collisionCount"] = json!(collisions);
        }
        let mut cur = d.get("status").cloned().unwrap_or(json!({}));
        let mut cmp_old = cur.clone();
        let mut cmp_new = status.clone();
        for c in [&mut cmp_old, &mut cmp_new] {
            if let Some(Value::Array(cs)) = c.get_mut("conditions") {
                for x in cs {
                    if let Some(o) = x.as_object_mut() {
                        o.remove("lastUpdateTime");
                    }
                }
            }
        }
        if cmp_old != cmp_new {
            cur = status;
            let _ = objects
                .update(res("deployments"), &ns, &dname, json!({"metadata": {"resourceVersion": s(&d, "/metadata/resourceVersion")}, "status": cur}), Some("status"), false)
                .await;
        }
    }
}

async fn replicasets(objects: &Objects) {
    let pods = list(objects, "pods").await;
    for rs in list(objects, "replicasets").await {
        if rs.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = s(&rs, "/metadata/namespace").to_string();
        let name = s(&rs, "/metadata/name").to_string();
        let uid = s(&rs, "/metadata/uid").to_string();
        let want = i(&rs, "/spec/replicas");
        let mut mine: Vec<&Value> = pods
            .iter()
            .filter(|p| controller_uid(p).as_deref() == Some(uid.as_str()) && is_active(p))
            .collect();
        let have = mine.len() as i64;
        if have < want {
            for _ in 0..(want - have).min(500) {
                let mut tpl = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
                let labels = tpl
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                let pod = json!({
                    "metadata": {
                        "generateName": format!("{name}-"),
                        "labels": labels,
                        "annotations": tpl.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                        "ownerReferences": [owner_ref("ReplicaSet", "apps/v1", &rs)],
                    },
                    "spec": tpl.get_mut("spec").map(Value::take).unwrap_or(json!({})),
                });
                match objects
                    .create(res("pods"), &ns, pod, &User::Admin, false)
                    .await
                {
                    Ok(p) => {
                        event(
                            objects,
                            "replicaset-controller",
                            &rs,
                            "ReplicaSet",
                            "Normal",
                            "SuccessfulCreate",
                            &format!("Created pod: {}", s(&p, "/metadata/name")),
                        )
                        .await;
                    }
                    Err(e) => {
                        event(
                            objects,
                            "replicaset-controller",
                            &rs,
                            "ReplicaSet",
                            "Warning",
                            "FailedCreate",
                            &format!("Error creating: {}", e.message),
                        )
                        .await;
                        break;
                    }
                }
            }
        } else if have > want {
            // delete unscheduled, then not ready, then newest first (controller.ActivePods order)
            mine.sort_by_key(|p| {
                (
                    !s(p, "/spec/nodeName").is_empty(),
                    is_pod_ready(p),
                    std::cmp::Reverse(s(p, "/metadata/creationTimestamp").to_string()),
                )
            });
            for p in mine.iter().take((have - want) as usize) {
                let pn = s(p, "/metadata/name");
                if objects
                    .delete(res("pods"), &ns, pn, &DeleteOptions::default())
                    .await
                    .is_ok()
                {
                    event(
                        objects,
                        "replicaset-controller",
                        &rs,
                        "ReplicaSet",
                        "Normal",
                        "SuccessfulDelete",
                        &format!("Deleted pod: {pn}"),
                    )
                    .await;
                }
            }
        }
        let fresh: Vec<&Value> = pods
            .iter()
            .filter(|p| controller_uid(p).as_deref() == Some(uid.as_str()) && is_active(p))
            .collect();
        let ready = fresh.iter().filter(|p| is_pod_ready(p)).count() as i64;
        let status = json!({
            "replicas": fresh.len(),
            "fullyLabeledReplicas": fresh.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": i(&rs, "/metadata/generation"),
        });
        if rs.get("status") != Some(&status) {
            let _ = objects
                .update(res("replicasets"), &ns, &name, json!({"metadata": {"resourceVersion": s(&rs, "/metadata/resourceVersion")}, "status": status}), Some("status"), false)
                .await;
        }
    }
}

fn node_ready(n: &Value) -> bool {
    n.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
        })
        && n.pointer("/spec/unschedulable") != Some(&json!(true))
}

async fn schedule(objects: &Objects) {
    let pods = list(objects, "pods").await;
    let nodes = list(objects, "nodes").await;
    let mut load: HashMap<String, usize> = HashMap::new();
    for p in &pods {
        let n = s(p, "/spec/nodeName");
        if !n.is_empty() && is_active(p) {
            *load.entry(n.to_string()).or_default() += 1;
        }
    }
    for p in pods.iter().filter(|p| {
        s(p, "/spec/nodeName").is_empty() && p.pointer("/metadata/deletionTimestamp").is_none()
    }) {
        let ns = s(p, "/metadata/namespace").to_string();
        let name = s(p, "/metadata/name").to_string();
        let selector = p
            .pointer("/spec/nodeSelector")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let fits: Vec<&Value> = nodes
            .iter()
            .filter(|n| node_ready(n))
            .filter(|n| {
                selector.iter().all(|(k, v)| {
                    n.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1"))) == Some(v)
                })
            })
            .collect();
        let Some(best) = fits.iter().min_by_key(|n| {
            (
                load.get(s(n, "/metadata/name")).copied().unwrap_or(0),
                s(n, "/metadata/name").to_string(),
            )
        }) else {
            let already = p
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        s(c, "/type") == "PodScheduled" && s(c, "/reason") == "Unschedulable"
                    })
                });
            if !already {
                let total = nodes.len();
                let not_ready = nodes.iter().filter(|n| !node_ready(n)).count();
                let msg = if total == 0 {
                    "no nodes available to schedule pods".to_string()
                } else {
                    format!("0/{total} nodes are available: {not_ready} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.")
                };
                let mut st = p.get("status").cloned().unwrap_or(json!({}));
                st["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastProbeTime": null, "lastTransitionTime": now()}]);
                let _ = objects
                    .update(
                        res("pods"),
                        &ns,
                        &name,
                        json!({"status": st}),
                        Some("status"),
                        false,
                    )
                    .await;
                event(
                    objects,
                    "default-scheduler",
                    p,
                    "Pod",
                    "Warning",
                    "FailedScheduling",
                    &msg,
                )
                .await;
            }
            continue;
        };
        let node = s(best, "/metadata/name").to_string();
        let mut np = p.clone();
        np["spec"]["nodeName"] = json!(node);
        let bound = crate::webhooks::bind(objects, &ns, &name, &node, async {
            objects
                .update(res("pods"), &ns, &name, np, None, false)
                .await?;
            let mut st = p.get("status").cloned().unwrap_or(json!({}));
            st["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}]);
            let _ = objects
                .update(
                    res("pods"),
                    &ns,
                    &name,
                    json!({"status": st}),
                    Some("status"),
                    false,
                )
                .await;
            Ok(())
        })
        .await;
        if bound.is_ok() {
            *load.entry(node.clone()).or_default() += 1;
            event(
                objects,
                "default-scheduler",
                p,
                "Pod",
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {node}"),
            )
            .await;
        }
    }
}

/// The range allocator (`pkg/controller/nodeipam/ipam/range_allocator.go`
/// `AllocateOrOccupyCIDR`): a Node without `spec.podCIDR` gets the next free /24 of the cluster
/// CIDR in `spec.podCIDR` and `spec.podCIDRs`; ranges of existing Nodes stay taken.
async fn node_ipam(objects: &Objects, cluster: crate::podcidr::Ipv4Net) {
    use crate::podcidr::{allocate, Ipv4Net};
    let nodes = list(objects, "nodes").await;
    let mut used: Vec<Ipv4Net> = nodes
        .iter()
        .filter_map(|n| Ipv4Net::parse(s(n, "/spec/podCIDR"), "spec.podCIDR").ok())
        .collect();
    for n in nodes.iter().filter(|n| {
        s(n, "/spec/podCIDR").is_empty() && n.pointer("/metadata/deletionTimestamp").is_none()
    }) {
        let name = s(n, "/metadata/name");
        match allocate(cluster, &used) {
            Ok(c) => {
                let mut nn = n.clone();
                nn["spec"]["podCIDR"] = json!(c.to_string());
                nn["spec"]["podCIDRs"] = json!([c.to_string()]);
                if objects
                    .update(res("nodes"), "", name, nn, None, false)
                    .await
                    .is_ok()
                {
                    used.push(c);
                }
            }
            Err(e) => {
                // once per node and process (the pass runs every 2 s)
                static REPORTED: std::sync::Mutex<Option<HashSet<String>>> =
                    std::sync::Mutex::new(None);
                let first = REPORTED
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(HashSet::new)
                    .insert(format!("{}/{name}", s(n, "/metadata/uid")));
                if !first {
                    continue;
                }
                tracing::warn!(node = %name, error = %e, "no podCIDR for node");
                // nodeutil.RecordNodeStatusChange(recorder, node, "CIDRNotAvailable")
                event(
                    objects,
                    "cidrAllocator",
                    n,
                    "Node",
                    "Normal",
                    "CIDRNotAvailable",
                    &format!("Node {name} status is now: CIDRNotAvailable"),
                )
                .await;
            }
        }
    }
}

async fn node_lifecycle(objects: &Objects) {
    let leases = objects
        .list(
            resources::find("coordination.k8s.io", "v1", "leases").expect("leases"),
            Some("kube-node-lease"),
            &ListOptions::default(),
        )
        .await
        .map(|x| x.0)
        .unwrap_or_default();
    let now_t = jiff::Timestamp::now();
    for n in list(objects, "nodes").await {
        let name = s(&n, "/metadata/name");
        let Some(lease) = leases.iter().find(|l| s(l, "/metadata/name") == name) else {
            continue;
        };
        let renewed = s(lease, "/spec/renewTime").parse::<jiff::Timestamp>().ok();
        let stale =
            renewed.is_none_or(|t| now_t.duration_since(t).as_secs() > NODE_GRACE.as_secs() as i64);
        if stale && node_ready(&n) {
            let mut st = n.get("status").cloned().unwrap_or(json!({}));
            if let Some(Value::Array(cs)) = st.get_mut("conditions") {
                for c in cs.iter_mut() {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(now());
                }
            }
            let _ = objects
                .update(
                    res("nodes"),
                    "",
                    name,
                    json!({"status": st}),
                    Some("status"),
                    false,
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn csr_cleaner_removes_old_requests() {
        let objects = Objects::new(std::sync::Arc::new(
            kubepull_datastore::memory::MemoryStore::new(),
        ));
        let r = resources::find("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        let old = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(2 * 3600)).to_string();
        let new = jiff::Timestamp::now().to_string();
        for (name, created, issued) in [
            ("old-issued", &old, true),
            ("old-pending", &old, false),
            ("new-issued", &new, true),
        ] {
            let mut o = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": name, "uid": name, "creationTimestamp": created},
                "spec": {"signerName": "kubernetes.io/kubelet-serving", "request": ""}});
            if issued {
                o["status"] = json!({"certificate": "eA=="});
            }
            objects
                .store()
                .create(&r.key("", name), serde_json::to_vec(&o).unwrap())
                .await
                .unwrap();
        }
        csr_cleaner(&objects).await;
        let (left, _, _) = objects
            .list(r, None, &ListOptions::default())
            .await
            .unwrap();
        let names: Vec<&str> = left.iter().map(|o| s(o, "/metadata/name")).collect();
        assert_eq!(names, ["new-issued", "old-pending"]);
    }

    #[test]
    fn hashes_and_scaling() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let h = pod_template_hash(&t, 0);
        assert_eq!(h, pod_template_hash(&t, 0));
        assert_ne!(h, pod_template_hash(&t, 1));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(scaled(Some(&json!("25%")), 3, true), 1);
        assert_eq!(scaled(Some(&json!("25%")), 3, false), 0);
        assert_eq!(scaled(Some(&json!(2)), 3, false), 2);
        // '0' is 48, 48 % 27 = 21 -> '4'; '1' -> '5'; '9' is 57, 57 % 27 = 3 -> 'f'
        assert_eq!(safe_encode("019"), "45f");
    }
}
