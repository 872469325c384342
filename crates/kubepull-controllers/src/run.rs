//! The running controllers: watch-based informers feeding level-triggered reconcile passes.
//!
//! Every informer ([`kube::runtime::watcher`] into a [`kube::runtime::reflector`] store) re-lists
//! and re-watches with kube-rs's default backoff when the API server goes away, so the controllers
//! survive API server restarts. Any change wakes one reconcile pass over all controllers; a pass
//! also runs every [`ControllerOptions::resync`], so a failed write is retried (requeue) without
//! waiting for another change.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, reflector, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::deployment;
use crate::gc::{self, DependentAction, OwnerState};
use crate::hash;
use crate::nodelifecycle;
use crate::replicaset::{self, Diff};
use crate::scheduler;

/// Default interval between reconcile passes when nothing changes (the requeue delay).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(5);

/// Options for [`run_all`].
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Node monitor grace period: a Lease older than this marks its node NotReady (upstream 40 s).
    pub node_monitor_grace: Duration,
    /// Interval of level-triggered resync passes (also the retry delay after a failed write).
    pub resync: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            node_monitor_grace: nodelifecycle::DEFAULT_GRACE,
            resync: DEFAULT_RESYNC,
        }
    }
}

/// Errors of the running controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{action} failed: check that the API server is reachable and serves this resource")]
    Api {
        /// What was being done, e.g. `create pod default/web-abcde`.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Api { action, source }
}

struct Stores {
    pods: Store<Pod>,
    nodes: Store<Node>,
    leases: Store<Lease>,
    rss: Store<ReplicaSet>,
    deploys: Store<Deployment>,
}

fn informer<K>(api: Api<K>, wake: Arc<Notify>) -> (Store<K>, impl Future<Output = ()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let fut = async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::debug!(error = %e, "watch interrupted; re-listing");
            }
            wake.notify_one();
        }
    };
    (reader, fut)
}

/// Runs the Deployment and ReplicaSet controllers, the scheduler, the garbage collector and the
/// node lifecycle controller until `shutdown` completes.
pub async fn run_all(client: Client, opts: ControllerOptions, shutdown: impl Future) -> Result<()> {
    let wake = Arc::new(Notify::new());
    let (pods, f1) = informer(Api::<Pod>::all(client.clone()), wake.clone());
    let (nodes, f2) = informer(Api::<Node>::all(client.clone()), wake.clone());
    let (leases, f3) = informer(
        Api::<Lease>::namespaced(client.clone(), nodelifecycle::LEASE_NAMESPACE),
        wake.clone(),
    );
    let (rss, f4) = informer(Api::<ReplicaSet>::all(client.clone()), wake.clone());
    let (deploys, f5) = informer(Api::<Deployment>::all(client.clone()), wake.clone());
    let stores = Stores {
        pods,
        nodes,
        leases,
        rss,
        deploys,
    };
    let informers = async {
        tokio::join!(f1, f2, f3, f4, f5);
    };
    let loop_ = async {
        loop {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(opts.resync) => {}
            }
            // Let a burst of watch events settle into the stores before one pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Err(e) = pass(&client, &stores, &opts).await {
                tracing::warn!(error = %e, "reconcile pass failed; retrying at the next resync");
            }
        }
    };
    tokio::select! {
        _ = shutdown => {}
        () = informers => {}
        () = loop_ => {}
    }
    Ok(())
}

async fn pass(client: &Client, s: &Stores, opts: &ControllerOptions) -> Result<()> {
    let mut first_err = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "controller step failed");
            first_err.get_or_insert(e);
        }
    };
    keep(garbage_collect(client, s).await);
    keep(sync_deployments(client, s).await);
    keep(sync_replicasets(client, s).await);
    keep(node_lifecycle(client, s, opts).await);
    keep(schedule(client, s).await);
    first_err.map_or(Ok(()), Err)
}

fn ns_of(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// Builds an owner reference with controller and blockOwnerDeletion set
/// (upstream `metav1.NewControllerRef`).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Records an events.k8s.io/v1 Event about `regarding`.
async fn record(
    client: &Client,
    regarding: ObjectReference,
    type_: &str,
    reason: &str,
    note: String,
    controller: &str,
) -> Result<()> {
    let ns = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = format!(
        "{}.{}",
        regarding.name.clone().unwrap_or_default(),
        hash::random_suffix()
    );
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(Timestamp::now())),
        action: Some(reason.into()),
        reason: Some(reason.into()),
        note: Some(note),
        type_: Some(type_.into()),
        regarding: Some(regarding),
        reporting_controller: Some(controller.into()),
        reporting_instance: Some(format!("{controller}-kubepull")),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &ev)
        .await
        .map(|_| ())
        .map_err(api_err(format!("create event {ns}/{name}")))
}

fn obj_ref<K: Resource<DynamicType = ()>>(o: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: o.meta().name.clone(),
        namespace: o.meta().namespace.clone(),
        uid: o.meta().uid.clone(),
        ..Default::default()
    }
}

async fn sync_replicasets(client: &Client, s: &Stores) -> Result<()> {
    let pods = s.pods.state();
    for rs in s.rss.state() {
        if rs.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (Some(uid), Some(name)) = (rs.metadata.uid.as_deref(), rs.metadata.name.as_deref())
        else {
            continue;
        };
        let ns = ns_of(&rs.metadata);
        let Some(spec) = rs.spec.as_ref() else {
            continue;
        };
        let pod_api = Api::<Pod>::namespaced(client.clone(), &ns);
        // Adoption (upstream `ClaimPods`): orphans in the namespace matching the selector.
        for p in pods.iter().filter(|p| {
            ns_of(&p.metadata) == ns
                && p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(|r| r.is_empty())
                && p.metadata.deletion_timestamp.is_none()
                && replicaset::selector_matches(&spec.selector, p.metadata.labels.as_ref())
        }) {
            let pname = p.name_any();
            let patch = json!({"metadata": {"ownerReferences": [controller_ref(rs.as_ref())],
                "uid": p.metadata.uid}});
            pod_api
                .patch(&pname, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("adopt pod {ns}/{pname}")))?;
        }
        let owned: Vec<&Pod> = pods
            .iter()
            .filter(|p| ns_of(&p.metadata) == ns && controller_uid(&p.metadata) == Some(uid))
            .filter(|p| replicaset::is_active(p))
            .map(AsRef::as_ref)
            .collect();
        match replicaset::diff(spec.replicas.unwrap_or(1), &owned) {
            Diff::Create(n) => {
                let template = spec.template.clone().unwrap_or_default();
                for _ in 0..n {
                    let mut meta = template.metadata.clone().unwrap_or_default();
                    // The name is generated here with upstream's alphabet and length so that
                    // servers without generateName support behave the same.
                    let pname = format!("{name}-{}", hash::random_suffix());
                    meta.generate_name = Some(format!("{name}-"));
                    meta.name = Some(pname.clone());
                    meta.namespace = Some(ns.clone());
                    meta.owner_references = Some(vec![controller_ref(rs.as_ref())]);
                    let pod = Pod {
                        metadata: meta,
                        spec: template.spec.clone(),
                        status: None,
                    };
                    pod_api
                        .create(&PostParams::default(), &pod)
                        .await
                        .map_err(api_err(format!("create pod {ns}/{pname}")))?;
                    record(
                        client,
                        obj_ref(rs.as_ref()),
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {pname}"),
                        "replicaset-controller",
                    )
                    .await?;
                }
            }
            Diff::Delete(names) => {
                for pname in names {
                    pod_api
                        .delete(&pname, &DeleteParams::default())
                        .await
                        .map_err(api_err(format!("delete pod {ns}/{pname}")))?;
                    record(
                        client,
                        obj_ref(rs.as_ref()),
                        "Normal",
                        "SuccessfulDelete",
                        format!("Deleted pod: {pname}"),
                        "replicaset-controller",
                    )
                    .await?;
                }
            }
            Diff::None => {}
        }
        let status = replicaset::status(&rs, &owned);
        if rs.status.as_ref() != Some(&status) {
            Api::<ReplicaSet>::namespaced(client.clone(), &ns)
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await
                .map_err(api_err(format!("update replicaset status {ns}/{name}")))?;
        }
    }
    Ok(())
}

async fn sync_deployments(client: &Client, s: &Stores) -> Result<()> {
    let all_rs = s.rss.state();
    for d in s.deploys.state() {
        if d.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(uid) = d.metadata.uid.as_deref() else {
            continue;
        };
        let ns = ns_of(&d.metadata);
        let owned: Vec<&ReplicaSet> = all_rs
            .iter()
            .filter(|r| ns_of(&r.metadata) == ns && controller_uid(&r.metadata) == Some(uid))
            .map(AsRef::as_ref)
            .collect();
        let plan = match deployment::plan(&d, &owned, Timestamp::now()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(deployment = %d.name_any(), error = %e, "cannot sync deployment");
                continue;
            }
        };
        let rs_api = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
        for action in plan.actions {
            match action {
                deployment::Action::Create(mut rs) => {
                    rs.metadata.owner_references = Some(vec![controller_ref(d.as_ref())]);
                    let rname = rs.metadata.name.clone().unwrap_or_default();
                    let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    rs_api
                        .create(&PostParams::default(), &rs)
                        .await
                        .map_err(api_err(format!("create replicaset {ns}/{rname}")))?;
                    if n > 0 {
                        record(
                            client,
                            obj_ref(d.as_ref()),
                            "Normal",
                            "ScalingReplicaSet",
                            deployment::scaling_message(&rname, 0, n),
                            "deployment-controller",
                        )
                        .await?;
                    }
                }
                deployment::Action::Scale {
                    name,
                    from,
                    to,
                    annotations,
                } => {
                    let patch = json!({"metadata": {"annotations": annotations},
                        "spec": {"replicas": to}});
                    rs_api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map_err(api_err(format!("scale replicaset {ns}/{name}")))?;
                    if from != to {
                        record(
                            client,
                            obj_ref(d.as_ref()),
                            "Normal",
                            "ScalingReplicaSet",
                            deployment::scaling_message(&name, from, to),
                            "deployment-controller",
                        )
                        .await?;
                    }
                }
                deployment::Action::Delete(name) => {
                    rs_api
                        .delete(&name, &DeleteParams::background())
                        .await
                        .map_err(api_err(format!("delete replicaset {ns}/{name}")))?;
                }
            }
        }
        if d.status.as_ref() != Some(&plan.status) {
            Api::<Deployment>::namespaced(client.clone(), &ns)
                .patch_status(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": plan.status })),
                )
                .await
                .map_err(api_err(format!(
                    "update deployment status {ns}/{}",
                    d.name_any()
                )))?;
        }
    }
    Ok(())
}

async fn schedule(client: &Client, s: &Stores) -> Result<()> {
    let pods = s.pods.state();
    let nodes: Vec<Node> = s.nodes.state().iter().map(|n| (**n).clone()).collect();
    let mut load: HashMap<String, usize> = HashMap::new();
    for p in &pods {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *load.entry(n).or_default() += 1;
        }
    }
    for p in &pods {
        let spec = p.spec.as_ref();
        if spec.and_then(|s| s.node_name.as_ref()).is_some()
            || p.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let ns = ns_of(&p.metadata);
        let name = p.name_any();
        let api = Api::<Pod>::namespaced(client.clone(), &ns);
        match scheduler::pick_node(p, &nodes, &load) {
            Ok(node) => {
                let binding = Binding {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    },
                    target: ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Node".into()),
                        name: Some(node.clone()),
                        ..Default::default()
                    },
                };
                let res: Result<serde_json::Value, kube::Error> = api
                    .create_subresource("binding", &name, &PostParams::default(), &binding)
                    .await;
                match res {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => {
                        tracing::warn!(
                            pod = %name,
                            "the API server does not serve pods/binding; assigning spec.nodeName by patch"
                        );
                        api.patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"nodeName": node}})),
                        )
                        .await
                        .map_err(api_err(format!("patch pod {ns}/{name} nodeName")))?;
                    }
                    Err(e) => return Err(api_err(format!("bind pod {ns}/{name}"))(e)),
                }
                *load.entry(node.clone()).or_default() += 1;
                record(
                    client,
                    obj_ref(p.as_ref()),
                    "Normal",
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                    scheduler::SCHEDULER_NAME,
                )
                .await?;
            }
            Err(msg) => {
                let already = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter().any(|c| {
                            c.type_ == "PodScheduled"
                                && c.status == "False"
                                && c.message.as_deref() == Some(msg.as_str())
                        })
                    });
                if already {
                    continue;
                }
                let patch = json!({"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": msg, "lastTransitionTime": Timestamp::now().to_string()}]}});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_err(format!("update pod status {ns}/{name}")))?;
                record(
                    client,
                    obj_ref(p.as_ref()),
                    "Warning",
                    "FailedScheduling",
                    msg,
                    scheduler::SCHEDULER_NAME,
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn node_lifecycle(client: &Client, s: &Stores, opts: &ControllerOptions) -> Result<()> {
    let leases = s.leases.state();
    let now = Timestamp::now();
    for node in s.nodes.state() {
        let name = node.name_any();
        let lease = leases.iter().find(|l| l.name_any() == name);
        if let Some(conds) = nodelifecycle::stale_conditions(
            &node,
            lease.map(AsRef::as_ref),
            now,
            opts.node_monitor_grace,
        ) {
            // A strategic merge would merge conditions by type; a merge patch replaces the list,
            // which is why the whole list is computed.
            Api::<Node>::all(client.clone())
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"conditions": conds}})),
                )
                .await
                .map_err(api_err(format!("mark node {name} not ready")))?;
        }
    }
    Ok(())
}

async fn garbage_collect(client: &Client, s: &Stores) -> Result<()> {
    let deploys = s.deploys.state();
    let rss = s.rss.state();
    let pods = s.pods.state();
    let mut owners = OwnerState::default();
    let metas: Vec<&ObjectMeta> = deploys
        .iter()
        .map(|d| &d.metadata)
        .chain(rss.iter().map(|r| &r.metadata))
        .collect();
    // Known owner kinds only: an owner of a kind not watched here is assumed alive, so nothing
    // is deleted because of a kind this collector cannot see.
    let known: HashSet<&str> = ["Deployment", "ReplicaSet"].into();
    for m in &metas {
        let Some(uid) = m.uid.clone() else { continue };
        owners.live.insert(uid.clone());
        if m.deletion_timestamp.is_some() {
            let f = m.finalizers.iter().flatten();
            for f in f {
                if f == gc::FOREGROUND {
                    owners.foreground.insert(uid.clone());
                } else if f == gc::ORPHAN {
                    owners.orphaning.insert(uid.clone());
                }
            }
        }
    }
    let unknown_owner = |m: &ObjectMeta| {
        m.owner_references
            .iter()
            .flatten()
            .any(|r| !known.contains(r.kind.as_str()))
    };
    // Dependents: ReplicaSets and Pods.
    for r in &rss {
        if unknown_owner(&r.metadata) {
            continue;
        }
        let action = gc::dependent_action(&r.metadata, &owners);
        apply_gc::<ReplicaSet>(client, &r.metadata, action).await?;
    }
    for p in &pods {
        if unknown_owner(&p.metadata) {
            continue;
        }
        let action = gc::dependent_action(&p.metadata, &owners);
        apply_gc::<Pod>(client, &p.metadata, action).await?;
    }
    // Finalizers of owners being deleted.
    let dependents: Vec<&ObjectMeta> = rss
        .iter()
        .map(|r| &r.metadata)
        .chain(pods.iter().map(|p| &p.metadata))
        .collect();
    for d in &deploys {
        finish_owner::<Deployment>(client, &d.metadata, &dependents).await?;
    }
    for r in &rss {
        finish_owner::<ReplicaSet>(client, &r.metadata, &dependents).await?;
    }
    Ok(())
}

async fn apply_gc<K>(client: &Client, meta: &ObjectMeta, action: DependentAction) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let ns = ns_of(meta);
    let name = meta.name.clone().unwrap_or_default();
    let api = Api::<K>::namespaced(client.clone(), &ns);
    let what = format!("{} {ns}/{name}", K::kind(&()));
    let ignore_gone = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    };
    match action {
        DependentAction::Keep => Ok(()),
        DependentAction::Delete => ignore_gone(
            api.delete(&name, &DeleteParams::background())
                .await
                .map(|_| ()),
        )
        .map_err(api_err(format!("collect {what}"))),
        DependentAction::DeleteForeground => ignore_gone(
            api.delete(&name, &DeleteParams::foreground())
                .await
                .map(|_| ()),
        )
        .map_err(api_err(format!("collect {what} in the foreground"))),
        DependentAction::RemoveOwners(uids) => {
            let refs: Vec<&OwnerReference> = meta
                .owner_references
                .iter()
                .flatten()
                .filter(|r| !uids.contains(&r.uid))
                .collect();
            let patch = json!({"metadata": {"ownerReferences": refs}});
            ignore_gone(
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ()),
            )
            .map_err(api_err(format!("orphan {what}")))
        }
    }
}

async fn finish_owner<K>(
    client: &Client,
    meta: &ObjectMeta,
    dependents: &[&ObjectMeta],
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    if meta.deletion_timestamp.is_none() {
        return Ok(());
    }
    let (Some(uid), Some(fins)) = (meta.uid.as_deref(), meta.finalizers.as_ref()) else {
        return Ok(());
    };
    let mut keep: Vec<&String> = Vec::new();
    let mut changed = false;
    for f in fins {
        if (f == gc::FOREGROUND || f == gc::ORPHAN)
            && gc::may_remove_finalizer(uid, f, dependents.iter().copied())
        {
            changed = true;
        } else {
            keep.push(f);
        }
    }
    if !changed {
        return Ok(());
    }
    let ns = ns_of(meta);
    let name = meta.name.clone().unwrap_or_default();
    let patch = json!({"metadata": {"finalizers": keep}});
    match Api::<K>::namespaced(client.clone(), &ns)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(api_err(format!(
            "remove finalizers of {} {ns}/{name}",
            K::kind(&())
        ))(e)),
    }
}
