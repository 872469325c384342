//! The reconciler: turns triggers into passes over the `ClusterPullSecret`s they touch, applies
//! each plan (bounded concurrency, conflicts retried, every failure counted and requeued), writes
//! status and Events, patches ServiceAccounts, removes orphaned copies and keeps the webhook
//! configuration current. It acts only while this replica leads.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource as _};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::plan::{self, CopyView, NamespaceView, ServiceAccountView, SourceState};
use super::spec::{self, ClusterPullSecret, ClusterPullSecretStatus};
use super::{source, Shared, Trigger, NAME};

type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Writes in flight per pass.
const CONCURRENCY: usize = 32;

/// The copy of `src` for namespace `ns`, owned by `cr`.
pub(super) fn copy_of(cr: &str, src: &Secret, ns: &str, hash: &str) -> Secret {
    let src_ns = src.metadata.namespace.clone().unwrap_or_default();
    let name = src.metadata.name.clone().unwrap_or_default();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(spec::copy_labels(cr)),
            annotations: Some(
                [
                    (
                        spec::SOURCE_ANNOTATION.to_string(),
                        format!("{src_ns}/{name}"),
                    ),
                    (spec::HASH_ANNOTATION.to_string(), hash.to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        type_: src.type_.clone(),
        data: src.data.clone(),
        ..Default::default()
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn copy_views(shared: &Shared) -> Vec<CopyView> {
    shared
        .copies
        .state()
        .iter()
        .filter_map(|m| {
            let labels = m.metadata.labels.as_ref()?;
            Some(CopyView {
                namespace: m.metadata.namespace.clone()?,
                name: m.metadata.name.clone()?,
                owner: labels.get(spec::OWNER_LABEL)?.clone(),
                hash: m
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(spec::HASH_ANNOTATION))
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn namespace_views(shared: &Shared) -> Vec<NamespaceView> {
    let mut v: Vec<NamespaceView> = shared
        .namespaces
        .state()
        .iter()
        .map(|m| Shared::ns_view(m))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

enum Outcome {
    Written,
    Conflict(String),
    Failed(String),
}

async fn write_copy(
    shared: &Shared,
    cr: &str,
    src: &Secret,
    hash: &str,
    ns: String,
    create: bool,
) -> Outcome {
    let api: Api<Secret> = Api::namespaced(shared.client.clone(), &ns);
    let copy = copy_of(cr, src, &ns, hash);
    let name = copy.metadata.name.clone().unwrap_or_default();
    if create {
        match api.create(&PostParams::default(), &copy).await {
            Ok(_) => {
                shared
                    .metrics
                    .inc("kubepull_operator_copies_total", "action=\"create\"");
                return Outcome::Written;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // someone made it between the cache and now: ours (update it) or not (conflict)
                let owner = api
                    .get_metadata_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|m| m.metadata.labels)
                    .and_then(|l| l.get(spec::OWNER_LABEL).cloned());
                if owner.as_deref() != Some(cr) {
                    return Outcome::Conflict(ns);
                }
            }
            Err(e) => return Outcome::Failed(format!("create {ns}/{name}: {e}")),
        }
    }
    let patch = json!([
        {"op": "add", "path": "/data", "value": copy.data},
        {"op": "add", "path": "/metadata/annotations", "value": copy.metadata.annotations},
        {"op": "add", "path": "/metadata/labels", "value": copy.metadata.labels},
    ]);
    let patch: json_patch::Patch = match serde_json::from_value(patch) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(format!("patch {ns}/{name}: {e}")),
    };
    let same_type = api
        .get_opt(&name)
        .await
        .ok()
        .flatten()
        .map(|s| s.type_ == copy.type_)
        .unwrap_or(true);
    if same_type {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => {
                shared
                    .metrics
                    .inc("kubepull_operator_copies_total", "action=\"update\"");
                return Outcome::Written;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Outcome::Failed(format!("update {ns}/{name}: {e}")),
        }
    } else {
        // a Secret's type is immutable: replace the copy
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
    match api.create(&PostParams::default(), &copy).await {
        Ok(_) => {
            shared
                .metrics
                .inc("kubepull_operator_copies_total", "action=\"create\"");
            Outcome::Written
        }
        Err(e) => Outcome::Failed(format!("recreate {ns}/{name}: {e}")),
    }
}

async fn delete_copy(shared: &Shared, ns: &str, name: &str) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(shared.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            shared
                .metrics
                .inc("kubepull_operator_copies_total", "action=\"delete\"");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(format!("delete {ns}/{name}: {e}")),
    }
}

/// One `ClusterPullSecret`; `Err` means "try again later".
async fn reconcile_cr(shared: &Shared, name: &str) -> Result<(), String> {
    let cr = shared.crs.get(&ObjectRef::<ClusterPullSecret>::new(name));
    let copies = copy_views(shared);
    let Some(cr) = cr.filter(|c| c.metadata.deletion_timestamp.is_none()) else {
        // gone: its copies go too
        let mut failures = Vec::new();
        for c in copies.iter().filter(|c| c.owner == name) {
            if let Err(e) = delete_copy(shared, &c.namespace, &c.name).await {
                failures.push(e);
            }
        }
        return if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        };
    };
    let spec = &cr.spec;
    let src_api: Api<Secret> = Api::namespaced(shared.client.clone(), &spec.secret_ref.namespace);
    let src = src_api
        .get_opt(&spec.secret_ref.name)
        .await
        .map_err(|e| format!("read source: {e}"))?;
    let state = source::judge(src.as_ref());
    let namespaces = namespace_views(shared);
    let generation = cr.metadata.generation;
    let mut status = cr.status.clone().unwrap_or_default();
    let old_status = status.clone();
    status.source = format!("{}/{}", spec.secret_ref.namespace, spec.secret_ref.name);
    status.observed_generation = generation;

    let plan = match plan::plan_copies(
        name,
        spec,
        &state,
        &namespaces,
        &copies,
        &shared.cfg.namespace,
    ) {
        Ok(p) => p,
        Err(e) => {
            plan::set_condition(
                &mut status.conditions,
                plan::condition(
                    "Ready",
                    false,
                    "InvalidSelector",
                    e.to_string(),
                    generation,
                    now(),
                ),
            );
            write_status(shared, &cr, &old_status, status).await;
            return Ok(());
        }
    };

    let mut failures: Vec<String> = Vec::new();
    let mut written = 0usize;
    let mut conflicts = plan.conflicts.clone();
    if let (SourceState::Valid { hash }, Some(src)) = (&state, src.as_ref()) {
        let jobs = plan
            .create
            .iter()
            .map(|ns| (ns.clone(), true))
            .chain(plan.update.iter().map(|ns| (ns.clone(), false)));
        let futs: Vec<BoxFut<'_, Outcome>> = jobs
            .map(|(ns, create)| {
                Box::pin(write_copy(shared, name, src, hash, ns, create)) as BoxFut<'_, Outcome>
            })
            .collect();
        let mut results = futures_util::stream::iter(futs).buffer_unordered(CONCURRENCY);
        while let Some(o) = results.next().await {
            match o {
                Outcome::Written => written += 1,
                Outcome::Conflict(ns) => conflicts.push(ns),
                Outcome::Failed(e) => failures.push(e),
            }
        }
    }
    let futs: Vec<BoxFut<'_, Result<(), String>>> = plan
        .delete
        .iter()
        .map(|(ns, n)| Box::pin(delete_copy(shared, ns, n)) as BoxFut<'_, Result<(), String>>)
        .collect();
    let mut deletes = futures_util::stream::iter(futs).buffer_unordered(CONCURRENCY);
    while let Some(r) = deletes.next().await {
        if let Err(e) = r {
            failures.push(e);
        }
    }
    conflicts.sort();
    conflicts.dedup();

    status.namespaces = (plan.current.len() + written) as i64;
    status.conflicts = conflicts.clone();
    let (valid, reason, message) = match &state {
        SourceState::Valid { .. } => (
            true,
            "SourceValid",
            "the source is a usable pull secret".to_string(),
        ),
        SourceState::Missing => (
            false,
            "SourceNotFound",
            format!(
                "secret {}/{} not found; create it with kubectl create secret docker-registry",
                spec.secret_ref.namespace, spec.secret_ref.name
            ),
        ),
        SourceState::Invalid { reason, message } => (false, *reason, message.clone()),
    };
    let was_valid = old_status
        .conditions
        .iter()
        .find(|c| c.type_ == "SourceValid")
        .map(|c| c.status == "True");
    plan::set_condition(
        &mut status.conditions,
        plan::condition(
            "SourceValid",
            valid,
            reason,
            message.clone(),
            generation,
            now(),
        ),
    );
    let (ready, ready_reason, ready_msg) = if !valid {
        (false, reason, format!("not propagated: {message}"))
    } else if !failures.is_empty() {
        shared.metrics.add(
            "kubepull_operator_failures_total",
            "reason=\"write\"",
            failures.len() as u64,
        );
        (
            false,
            "WriteFailed",
            format!("{} write(s) failed; retrying", failures.len()),
        )
    } else if !conflicts.is_empty() {
        (
            false,
            "NameTaken",
            format!(
                "a Secret named {} that the operator does not own exists in: {}",
                spec.secret_ref.name,
                conflicts.join(", ")
            ),
        )
    } else {
        (
            true,
            "Copied",
            format!("{} namespace(s) hold a current copy", status.namespaces),
        )
    };
    plan::set_condition(
        &mut status.conditions,
        plan::condition(
            "Ready",
            ready,
            ready_reason,
            ready_msg.clone(),
            generation,
            now(),
        ),
    );
    if !valid && was_valid != Some(false) {
        shared.metrics.inc(
            "kubepull_operator_failures_total",
            &format!("reason=\"{reason}\""),
        );
        publish(shared, &cr, EventType::Warning, reason, &message).await;
    }
    if !conflicts.is_empty() && old_status.conflicts != conflicts {
        publish(shared, &cr, EventType::Warning, "NameTaken", &ready_msg).await;
    }
    write_status(shared, &cr, &old_status, status).await;
    shared.metrics.inc(
        "kubepull_operator_reconciles_total",
        if failures.is_empty() {
            "result=\"ok\""
        } else {
            "result=\"error\""
        },
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

async fn publish(
    shared: &Shared,
    cr: &ClusterPullSecret,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let _ = shared.recorder.publish(&ev, &cr.object_ref(&())).await;
}

fn same_status(a: &ClusterPullSecretStatus, b: &ClusterPullSecretStatus) -> bool {
    let strip = |s: &ClusterPullSecretStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

async fn write_status(
    shared: &Shared,
    cr: &ClusterPullSecret,
    old: &ClusterPullSecretStatus,
    new: ClusterPullSecretStatus,
) {
    if same_status(old, &new) && cr.status.is_some() {
        return;
    }
    let api: Api<ClusterPullSecret> = Api::all(shared.client.clone());
    let name = cr.metadata.name.clone().unwrap_or_default();
    if let Err(e) = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": new })),
        )
        .await
    {
        shared
            .metrics
            .inc("kubepull_operator_failures_total", "reason=\"status\"");
        eprintln!("kubepull operator: status of {name}: {e}");
    }
}

/// ServiceAccounts: each gets the names of the `ServiceAccount`-injecting `ClusterPullSecret`s
/// that cover it and whose copy is in its namespace; names it added before and no longer should
/// carry are removed; names users listed are never touched.
async fn service_accounts(shared: &Shared) -> Result<(), String> {
    let crs = shared.cr_specs();
    let copies = copy_views(shared);
    let mut failures = Vec::new();
    for sa in shared.service_accounts.state() {
        let ns = sa.metadata.namespace.clone().unwrap_or_default();
        let Some(nsv) = shared
            .namespaces
            .get(&ObjectRef::new(&ns))
            .map(|m| Shared::ns_view(&m))
        else {
            continue;
        };
        let sa_name = sa.metadata.name.clone().unwrap_or_default();
        let desired: BTreeSet<String> = crs
            .iter()
            .filter(|(cr, s)| {
                s.injection.service_accounts()
                    && plan::covers_service_account(s, &sa_name)
                    && plan::selects(s, &nsv, &shared.cfg.namespace).unwrap_or(false)
                    && copies
                        .iter()
                        .any(|c| &c.owner == cr && c.namespace == ns && c.name == s.secret_ref.name)
            })
            .map(|(_, s)| s.secret_ref.name.clone())
            .collect();
        let added: Vec<String> = sa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(spec::SA_ADDED_ANNOTATION))
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let view = ServiceAccountView {
            namespace: ns.clone(),
            name: sa_name.clone(),
            pull_secrets: sa
                .image_pull_secrets
                .iter()
                .flatten()
                .map(|r| r.name.clone())
                .collect(),
            added,
            resource_version: sa.metadata.resource_version.clone().unwrap_or_default(),
        };
        let Some((names, added)) = plan::service_account_change(&view, &desired) else {
            continue;
        };
        let mut ops = vec![
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": view.resource_version}),
            json!({"op": "add", "path": "/imagePullSecrets",
                   "value": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}),
        ];
        let key = spec::SA_ADDED_ANNOTATION
            .replace('~', "~0")
            .replace('/', "~1");
        match (sa.metadata.annotations.is_some(), added.is_empty()) {
            (true, true) if view.added.is_empty() => {}
            (true, true) => ops.push(json!({"op": "remove", "path": format!("/metadata/annotations/{key}")})),
            (true, false) => ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{key}"), "value": added.join(",")})),
            (false, false) => ops.push(json!({"op": "add", "path": "/metadata/annotations",
                                             "value": {spec::SA_ADDED_ANNOTATION: added.join(",")}})),
            (false, true) => {}
        }
        let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
            Ok(p) => p,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let api: Api<ServiceAccount> = Api::namespaced(shared.client.clone(), &ns);
        match api
            .patch(&sa_name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => shared
                .metrics
                .inc("kubepull_operator_serviceaccount_patches_total", ""),
            Err(e) => failures.push(format!("serviceaccount {ns}/{sa_name}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The webhook configuration the operator keeps current.
pub fn webhook_configuration(cfg: &super::OperatorConfig, ca_pem: &str) -> Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let client_config = match &cfg.webhook_url {
        Some(url) => json!({"url": url, "caBundle": ca}),
        None => json!({
            "service": {"namespace": cfg.namespace, "name": cfg.service_name,
                        "path": super::webhook::PATH, "port": 443},
            "caBundle": ca
        }),
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": {spec::MANAGED_BY_LABEL: spec::MANAGED_BY}},
        "webhooks": [{
            "name": "pull-secrets.kubepull.io",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "NoneOnDryRun",
            "failurePolicy": "Ignore",
            "matchPolicy": "Equivalent",
            "reinvocationPolicy": "Never",
            "timeoutSeconds": cfg.webhook_timeout_seconds,
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "NotIn",
                "values": ["kube-system", cfg.namespace]
            }]},
            "objectSelector": {},
            "clientConfig": client_config
        }]
    })
}

async fn ensure_webhook_configuration(shared: &Shared, ca_pem: &str) -> Result<(), String> {
    let want = webhook_configuration(&shared.cfg, ca_pem);
    let api: Api<MutatingWebhookConfiguration> = Api::all(shared.client.clone());
    let mut desired: MutatingWebhookConfiguration =
        serde_json::from_value(want).map_err(|e| e.to_string())?;
    match api.get_opt(NAME).await.map_err(|e| e.to_string())? {
        None => api
            .create(&PostParams::default(), &desired)
            .await
            .map(|_| ())
            .or_else(|e| match e {
                kube::Error::Api(a) if a.code == 409 => Ok(()),
                e => Err(e.to_string()),
            }),
        Some(have) => {
            let current = serde_json::to_value(&have.webhooks).map_err(|e| e.to_string())?;
            let wanted = serde_json::to_value(&desired.webhooks).map_err(|e| e.to_string())?;
            if covers(&current, &wanted) {
                return Ok(());
            }
            desired.metadata.resource_version = have.metadata.resource_version.clone();
            api.replace(NAME, &PostParams::default(), &desired)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

/// Whether `have` holds every field of `want` with the same value (the server adds defaults).
fn covers(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, v)| {
            h.get(k).is_some_and(|hv| covers(hv, v))
                || v.as_object().is_some_and(|o| o.is_empty()) && h.get(k).is_none()
        }),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| covers(a, b))
        }
        (h, w) => h == w,
    }
}

/// Where the webhook configuration's `caBundle` comes from.
#[derive(Debug, Clone)]
pub enum CaSource {
    /// The CA the operator manages itself.
    Pem(String),
    /// `ca.crt` of a TLS directory (a mounted cert-manager Certificate Secret), read again at
    /// each full pass so a renewed CA reaches the configuration.
    File(std::path::PathBuf),
}

impl CaSource {
    fn pem(&self) -> Result<String, String> {
        match self {
            CaSource::Pem(p) => Ok(p.clone()),
            CaSource::File(dir) => super::certs::read_ca(dir).map_err(|e| e.to_string()),
        }
    }
}

/// The reconcile loop.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Trigger>,
    tx: mpsc::UnboundedSender<Trigger>,
    mut leading: watch::Receiver<bool>,
    ca: CaSource,
) {
    let _ = shared.crs.wait_until_ready().await;
    let _ = shared.namespaces.wait_until_ready().await;
    let _ = shared.copies.wait_until_ready().await;
    let _ = shared.service_accounts.wait_until_ready().await;
    let mut resync = tokio::time::interval(shared.cfg.resync);
    let mut pending: BTreeSet<Trigger> = BTreeSet::from([Trigger::All]);
    loop {
        if !*leading.borrow() {
            if leading.wait_for(|l| *l).await.is_err() {
                return;
            }
            pending.insert(Trigger::All);
        }
        if pending.is_empty() {
            tokio::select! {
                t = rx.recv() => match t {
                    Some(t) => { pending.insert(t); }
                    None => return,
                },
                _ = resync.tick() => { pending.insert(Trigger::All); }
                _ = leading.changed() => continue,
            }
            // let a burst (a namespace created with its pods, many namespaces at once) arrive
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while let Ok(t) = rx.try_recv() {
            pending.insert(t);
        }
        let batch = std::mem::take(&mut pending);
        let crs = shared.cr_specs();
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut all = false;
        let mut sas = false;
        for t in &batch {
            match t {
                Trigger::All => all = true,
                Trigger::Cr(n) => {
                    dirty.insert(n.clone());
                }
                Trigger::Source(ns, name) => dirty.extend(
                    crs.iter()
                        .filter(|(_, s)| {
                            &s.secret_ref.namespace == ns && &s.secret_ref.name == name
                        })
                        .map(|(n, _)| n.clone()),
                ),
                Trigger::ServiceAccounts => sas = true,
            }
        }
        if all {
            dirty.extend(crs.iter().map(|(n, _)| n.clone()));
            let names: BTreeSet<String> = crs.iter().map(|(n, _)| n.clone()).collect();
            // copies whose ClusterPullSecret is gone (deleted while the operator was down)
            for c in plan::orphans(&copy_views(&shared), &names) {
                dirty.insert(c.owner.clone());
            }
            let ensured = match ca.pem() {
                Ok(pem) => ensure_webhook_configuration(&shared, &pem).await,
                Err(e) => Err(e),
            };
            if let Err(e) = ensured {
                shared.metrics.inc(
                    "kubepull_operator_failures_total",
                    "reason=\"webhook-configuration\"",
                );
                eprintln!("kubepull operator: webhook configuration: {e}");
                requeue(&tx, Trigger::All);
            }
        }
        let mut touched = false;
        for name in &dirty {
            if !*leading.borrow() {
                break;
            }
            touched = true;
            if let Err(e) = reconcile_cr(&shared, name).await {
                shared
                    .metrics
                    .inc("kubepull_operator_reconciles_total", "result=\"error\"");
                eprintln!("kubepull operator: {name}: {e}");
                requeue(&tx, Trigger::Cr(name.clone()));
            }
        }
        if (sas || all || touched) && *leading.borrow() {
            if let Err(e) = service_accounts(&shared).await {
                eprintln!("kubepull operator: {e}");
                requeue(&tx, Trigger::ServiceAccounts);
            }
        }
    }
}

fn requeue(tx: &mpsc::UnboundedSender<Trigger>, t: Trigger) {
    let tx = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = tx.send(t);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_configuration_is_safe_by_default() {
        let mut cfg = super::super::OperatorConfig::new("kubepull-system");
        let w = webhook_configuration(&cfg, "PEM");
        let h = &w["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Ignore");
        assert_eq!(h["sideEffects"], "NoneOnDryRun");
        assert_eq!(h["timeoutSeconds"], 5);
        assert_eq!(
            h["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["kube-system", "kubepull-system"])
        );
        assert_eq!(h["clientConfig"]["service"]["name"], "kubepull-operator");
        cfg.webhook_url = Some("https://127.0.0.1:9443/mutate-pods".into());
        let w = webhook_configuration(&cfg, "PEM");
        assert_eq!(
            w["webhooks"][0]["clientConfig"]["url"],
            "https://127.0.0.1:9443/mutate-pods"
        );
        assert!(w["webhooks"][0]["clientConfig"].get("service").is_none());
    }

    #[test]
    fn covers_ignores_server_defaults_but_not_changes() {
        let want = json!([{"a": 1, "b": {"c": "x"}, "sel": {}}]);
        assert!(covers(
            &json!([{"a": 1, "b": {"c": "x", "d": 2}, "sel": {}}]),
            &want
        ));
        assert!(covers(&json!([{"a": 1, "b": {"c": "x"}}]), &want));
        assert!(!covers(&json!([{"a": 2, "b": {"c": "x"}}]), &want));
        assert!(!covers(&json!([]), &want));
    }

    #[test]
    fn copies_carry_owner_labels_and_hash_not_source_metadata() {
        let src = Secret {
            metadata: ObjectMeta {
                name: Some("regcred".into()),
                namespace: Some("kubepull-system".into()),
                labels: Some([("team".into(), "x".into())].into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            immutable: Some(true),
            ..Default::default()
        };
        let c = copy_of("cps", &src, "team-a", "abc");
        assert_eq!(c.metadata.namespace.as_deref(), Some("team-a"));
        let l = c.metadata.labels.unwrap();
        assert_eq!(l.get(spec::OWNER_LABEL).map(String::as_str), Some("cps"));
        assert!(!l.contains_key("team"));
        assert_eq!(
            c.metadata
                .annotations
                .unwrap()
                .get(spec::HASH_ANNOTATION)
                .map(String::as_str),
            Some("abc")
        );
        assert_eq!(
            c.immutable, None,
            "an immutable copy could never be rotated"
        );
    }
}
