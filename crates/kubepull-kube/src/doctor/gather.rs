//! Reading what the doctor needs from the API server (and from manifests), each object once.
//!
//! Only `get` and `list` are ever called: the doctor never writes to a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Event, Node, Pod, PodSpec, PodStatus, PodTemplateSpec, Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::Api;
use serde_json::Value;

use kubepull_core::diagnose::SecretLookup;

use super::DoctorError;

/// One pod to check: a live pod, or a pod a workload or manifest would create.
#[derive(Debug, Clone)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// The pod's name, or `KIND/NAME` for a template that has no live pod.
    pub name: String,
    /// A pod the API server admitted (its `imagePullSecrets` already carry the
    /// ServiceAccount's), as opposed to a template or manifest not yet admitted.
    pub live: bool,
    /// The pod spec.
    pub spec: PodSpec,
    /// The pod status (live pods).
    pub status: Option<PodStatus>,
    /// `metadata.uid` (live pods), to find its events.
    pub uid: Option<String>,
    /// The controlling workload as `kind/name` (`deployment/web`), for fixes.
    pub owner: Option<String>,
}

/// The ServiceAccount as the doctor saw it.
#[derive(Debug, Clone)]
pub enum SaRead {
    /// Exists; its `imagePullSecrets` names.
    Found(Vec<String>),
    /// 404.
    NotFound,
    /// Could not read it (403 or other): not a finding in itself.
    Unknown(String),
}

/// Everything read for one run, keyed so each object is read once.
#[derive(Debug, Default)]
pub struct Facts {
    /// `(namespace, name)` → what the API said of the Secret (a read that failed for another
    /// reason than 403/404 is `Forbidden` with the reason: the doctor could not check it).
    pub secrets: HashMap<(String, String), SecretLookup>,
    /// `(namespace, name)` → ServiceAccount.
    pub service_accounts: HashMap<(String, String), SaRead>,
    /// Namespace → every Secret name in it (`None`: could not list).
    pub secret_names: HashMap<String, Option<Vec<String>>>,
    /// Missing secret name → namespaces where a Secret of that name exists.
    pub elsewhere: HashMap<String, Vec<String>>,
    /// Pod UID → its events' `(reason, message, fieldPath)`, newest first.
    pub events: HashMap<String, Vec<(String, String, String)>>,
    /// Node name → `os/arch`.
    pub node_platform: HashMap<String, String>,
    /// Secrets given in manifests (`-f`): they win over the cluster's.
    pub file_secrets: HashMap<(String, String), SecretLookup>,
    /// ServiceAccounts given in manifests.
    pub file_service_accounts: HashMap<(String, String), Vec<String>>,
    /// API reads made (for the progress line and the benchmark).
    pub api_reads: usize,
}

/// Kinds `TYPE/NAME` accepts, with kubectl's short names.
pub fn canonical_kind(t: &str) -> Option<&'static str> {
    Some(match t.to_ascii_lowercase().as_str() {
        "pod" | "pods" | "po" => "pod",
        "deployment" | "deployments" | "deploy" | "deployment.apps" => "deployment",
        "statefulset" | "statefulsets" | "sts" | "statefulset.apps" => "statefulset",
        "daemonset" | "daemonsets" | "ds" | "daemonset.apps" => "daemonset",
        "replicaset" | "replicasets" | "rs" | "replicaset.apps" => "replicaset",
        "job" | "jobs" | "job.batch" => "job",
        "cronjob" | "cronjobs" | "cj" | "cronjob.batch" => "cronjob",
        _ => return None,
    })
}

fn api_message(e: &kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message.clone()),
        other => (0, other.to_string()),
    }
}

fn not_found(e: &kube::Error) -> bool {
    api_message(e).0 == 404
}

fn read_error(what: &str, e: kube::Error) -> DoctorError {
    let (code, message) = api_message(&e);
    DoctorError::Api {
        what: what.to_string(),
        code,
        message,
    }
}

/// `matchLabels` + `matchExpressions` as a label selector string.
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts = vec![];
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({vals})", e.key),
            "NotIn" => format!("{} notin ({vals})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => continue,
        });
    }
    parts.join(",")
}

fn template_pod(ns: &str, label: String, t: Option<PodTemplateSpec>) -> Option<PodView> {
    let spec = t?.spec?;
    Some(PodView {
        namespace: ns.to_string(),
        owner: Some(label.clone()),
        name: label,
        live: false,
        spec,
        status: None,
        uid: None,
    })
}

/// The workload that controls a pod: a ReplicaSet's name less its pod-template-hash is its
/// Deployment (kube-controller-manager names ReplicaSets `DEPLOYMENT-HASH`).
fn owner_of(p: &Pod) -> Option<String> {
    let r = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))?;
    let hash = p
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    Some(match (r.kind.as_str(), hash) {
        ("ReplicaSet", Some(h)) if r.name.ends_with(&format!("-{h}")) => {
            format!("deployment/{}", &r.name[..r.name.len() - h.len() - 1])
        }
        (k, _) => format!("{}/{}", k.to_ascii_lowercase(), r.name),
    })
}

fn live_pod(p: Pod, default_ns: &str) -> Option<PodView> {
    let owner = owner_of(&p);
    Some(PodView {
        owner,
        namespace: p
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_ns.to_string()),
        name: p.metadata.name.clone()?,
        live: true,
        uid: p.metadata.uid.clone(),
        spec: p.spec?,
        status: p.status,
    })
}

/// The pods to check for `TYPE/NAME` in `ns`: the workload's live pods, or its template when
/// none exists.
pub async fn pods_of(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    facts: &mut Facts,
) -> Result<Vec<PodView>, DoctorError> {
    let what = format!("{kind}/{name}");
    facts.api_reads += 1;
    let (selector, template) = match kind {
        "pod" => {
            let p = Api::<Pod>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| read_error(&what, e))?;
            return Ok(live_pod(p, ns).into_iter().collect());
        }
        "deployment" => {
            let d = Api::<Deployment>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| read_error(&what, e))?;
            let s = d.spec.unwrap_or_default();
            (Some(s.selector), Some(s.template))
        }
        "statefulset" => {
            let d = Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| read_error(&what, e))?;
            let s = d.spec.unwrap_or_default();
            (Some(s.selector), Some(s.template))
        }
        "daemonset" => {
            let d = Api::<DaemonSet>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| read_error(&what, e))?;
            let s = d.spec.unwrap_or_default();
            (Some(s.selector), Some(s.template))
        }
        "replicaset" => {
            let d = Api::<ReplicaSet>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| read_error(&what, e))?;
            let s = d.spec.unwrap_or_default();
            (Some(s.selector), s.template)
        }
        "job" => {
            let d = Api::<Job>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| read_error(&what, e))?;
            let s = d.spec.unwrap_or_default();
            (s.selector, Some(s.template))
        }
        "cronjob" => {
            let d = Api::<CronJob>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| read_error(&what, e))?;
            // a CronJob's pods belong to its Jobs; check the template the next run uses
            let t = d.spec.and_then(|s| s.job_template.spec).map(|j| j.template);
            (None, t)
        }
        other => {
            return Err(DoctorError::Usage(format!(
                "unsupported kind {other:?}: use pod, deployment, statefulset, daemonset, replicaset, job or cronjob"
            )))
        }
    };
    if let Some(sel) = selector {
        let s = selector_string(&sel);
        if !s.is_empty() {
            let live = list_pods(client, Some(ns), Some(&s), facts).await?;
            if !live.is_empty() {
                return Ok(live);
            }
        }
    }
    Ok(template_pod(ns, format!("{kind}/{name}"), template)
        .into_iter()
        .collect())
}

/// Pods in `ns` (all namespaces when `None`) matching `selector`.
pub async fn list_pods(
    client: &kube::Client,
    ns: Option<&str>,
    selector: Option<&str>,
    facts: &mut Facts,
) -> Result<Vec<PodView>, DoctorError> {
    let api: Api<Pod> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut lp = ListParams::default().limit(500);
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let mut out = vec![];
    loop {
        facts.api_reads += 1;
        let list = match api.list(&lp).await {
            Ok(l) => l,
            // client-go's pager: a continue token that expired (410) falls back to one full
            // list (tools/pager/pager.go, FullListIfExpired)
            Err(e) if api_message(&e).0 == 410 && lp.continue_token.is_some() => {
                out.clear();
                let mut full = ListParams::default();
                if let Some(s) = selector {
                    full = full.labels(s);
                }
                facts.api_reads += 1;
                let l = api.list(&full).await.map_err(|e| read_error("pods", e))?;
                out.extend(
                    l.items
                        .into_iter()
                        .filter_map(|p| live_pod(p, ns.unwrap_or("default"))),
                );
                break;
            }
            Err(e) => return Err(read_error("pods", e)),
        };
        let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
        out.extend(
            list.items
                .into_iter()
                .filter_map(|p| live_pod(p, ns.unwrap_or("default"))),
        );
        match next {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    Ok(out)
}

/// Pods that the objects of a manifest would create (Pods, and the templates of workloads),
/// and the Secrets and ServiceAccounts it defines.
pub fn pods_from_manifest(
    docs: &[Value],
    default_ns: &str,
    facts: &mut Facts,
) -> Result<Vec<PodView>, DoctorError> {
    let mut out = vec![];
    for d in docs {
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or("");
        let ns = d
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_ns)
            .to_string();
        let name = d
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let template = match kind {
            "Pod" => d.get("spec").cloned(),
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "Job"
            | "ReplicationController" => d.pointer("/spec/template/spec").cloned(),
            "CronJob" => d.pointer("/spec/jobTemplate/spec/template/spec").cloned(),
            "Secret" => {
                let s: Secret = serde_json::from_value(d.clone()).map_err(|e| {
                    DoctorError::Usage(format!("Secret {ns}/{name} in the manifest: {e}"))
                })?;
                let mut data: BTreeMap<String, Vec<u8>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in s.string_data.unwrap_or_default() {
                    data.insert(k, v.into_bytes());
                }
                facts.file_secrets.insert(
                    (ns, name),
                    SecretLookup::Found {
                        type_: s.type_.unwrap_or_else(|| "Opaque".into()),
                        data,
                    },
                );
                continue;
            }
            "ServiceAccount" => {
                let names = d
                    .get("imagePullSecrets")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.get("name").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                facts.file_service_accounts.insert((ns, name), names);
                continue;
            }
            _ => continue,
        };
        let Some(spec) = template else { continue };
        let spec: PodSpec = serde_json::from_value(spec).map_err(|e| {
            DoctorError::Usage(format!("{kind} {ns}/{name} in the manifest: pod spec: {e}"))
        })?;
        let label = if kind == "Pod" {
            name
        } else {
            format!("{}/{name}", kind.to_ascii_lowercase())
        };
        out.push(PodView {
            namespace: ns,
            owner: (kind != "Pod").then(|| label.clone()),
            name: label,
            live: false,
            spec,
            status: None,
            uid: None,
        });
    }
    Ok(out)
}

/// Reads, once each, every Secret and ServiceAccount the pods reference, the events of live
/// pods, the platforms of their nodes, and for missing Secrets the names that do exist.
pub async fn read_references(
    client: Option<&kube::Client>,
    pods: &[PodView],
    all_namespaces: bool,
    facts: &mut Facts,
) {
    let mut secret_keys = BTreeSet::new();
    let mut sa_keys = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    for p in pods {
        namespaces.insert(p.namespace.clone());
        for r in p.spec.image_pull_secrets.iter().flatten() {
            secret_keys.insert((p.namespace.clone(), r.name.clone()));
        }
        let sa = p
            .spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        sa_keys.insert((p.namespace.clone(), sa));
        if let Some(n) = &p.spec.node_name {
            nodes.insert(n.clone());
        }
    }
    // ServiceAccounts first: a template's effective secrets may come from one
    for key in &sa_keys {
        if let Some(names) = facts.file_service_accounts.get(key) {
            facts
                .service_accounts
                .insert(key.clone(), SaRead::Found(names.clone()));
            continue;
        }
        let Some(client) = client else {
            facts
                .service_accounts
                .insert(key.clone(), SaRead::Unknown("no cluster".into()));
            continue;
        };
        facts.api_reads += 1;
        let r = Api::<ServiceAccount>::namespaced(client.clone(), &key.0)
            .get(&key.1)
            .await;
        let v = match r {
            Ok(sa) => SaRead::Found(
                sa.image_pull_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .collect(),
            ),
            Err(e) if not_found(&e) => SaRead::NotFound,
            Err(e) => SaRead::Unknown(api_message(&e).1),
        };
        facts.service_accounts.insert(key.clone(), v);
    }
    // templates get their ServiceAccount's secrets at admission when they list none
    for p in pods.iter().filter(|p| !p.live) {
        if p.spec
            .image_pull_secrets
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        {
            continue;
        }
        let sa = p
            .spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        if let Some(SaRead::Found(names)) = facts.service_accounts.get(&(p.namespace.clone(), sa)) {
            for n in names {
                secret_keys.insert((p.namespace.clone(), n.clone()));
            }
        }
    }
    let secret_keys: Vec<_> = secret_keys.into_iter().collect();
    let mut to_fetch = vec![];
    for key in secret_keys {
        if let Some(s) = facts.file_secrets.get(&key) {
            facts.secrets.insert(key, s.clone());
        } else {
            to_fetch.push(key);
        }
    }
    if let Some(client) = client {
        use futures_util::StreamExt;
        let fetched: Vec<_> = futures_util::stream::iter(to_fetch.into_iter().map(|key| {
            let api = Api::<Secret>::namespaced(client.clone(), &key.0);
            async move {
                let r = api.get(&key.1).await;
                let v = match r {
                    Ok(s) => SecretLookup::Found {
                        type_: s.type_.unwrap_or_else(|| "Opaque".into()),
                        data: s
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0))
                            .collect(),
                    },
                    Err(e) => match api_message(&e) {
                        (404, _) => SecretLookup::NotFound,
                        (403, message) => SecretLookup::Forbidden { message },
                        (_, m) => SecretLookup::Forbidden {
                            message: format!("could not read it: {m}"),
                        },
                    },
                };
                (key, v)
            }
        }))
        .buffer_unordered(super::API_CONCURRENCY)
        .collect()
        .await;
        facts.api_reads += fetched.len();
        facts.secrets.extend(fetched);
    } else {
        for key in to_fetch {
            facts.secrets.insert(
                key,
                SecretLookup::Forbidden {
                    message: "could not read it: no cluster to read it from".into(),
                },
            );
        }
    }
    let Some(client) = client else { return };
    // names for the missing ones: what exists in the namespace, and where the name exists
    let missing: Vec<(String, String)> = facts
        .secrets
        .iter()
        .filter(|(_, v)| matches!(v, SecretLookup::NotFound))
        .map(|(k, _)| k.clone())
        .collect();
    for (ns, name) in &missing {
        if !facts.secret_names.contains_key(ns) {
            facts.api_reads += 1;
            let r = Api::<Secret>::namespaced(client.clone(), ns)
                .list_metadata(&ListParams::default())
                .await;
            let v = r.ok().map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|m| m.metadata.name)
                    .collect::<Vec<_>>()
            });
            facts.secret_names.insert(ns.clone(), v);
        }
        if !facts.elsewhere.contains_key(name) {
            facts.api_reads += 1;
            let r = Api::<Secret>::all(client.clone())
                .list_metadata(&ListParams::default().fields(&format!("metadata.name={name}")))
                .await;
            let v = r
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter(|m| m.metadata.name.as_deref() == Some(name))
                        .filter_map(|m| m.metadata.namespace)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            facts.elsewhere.insert(name.clone(), v);
        }
    }
    // events of live pods: one list per namespace, or one for all of them
    let live_uids: BTreeSet<String> = pods.iter().filter_map(|p| p.uid.clone()).collect();
    if !live_uids.is_empty() {
        let apis: Vec<Api<Event>> = if all_namespaces {
            vec![Api::all(client.clone())]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect()
        };
        let mut events: Vec<Event> = vec![];
        for api in apis {
            facts.api_reads += 1;
            if let Ok(l) = api
                .list(&ListParams::default().fields("involvedObject.kind=Pod"))
                .await
            {
                events.extend(l.items);
            }
        }
        events.sort_by_key(|e| {
            std::cmp::Reverse(
                e.last_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
                    .unwrap_or(0),
            )
        });
        for e in events {
            let Some(uid) = e.involved_object.uid.clone() else {
                continue;
            };
            if !live_uids.contains(&uid) {
                continue;
            }
            facts.events.entry(uid).or_default().push((
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.involved_object.field_path.unwrap_or_default(),
            ));
        }
    }
    for n in nodes {
        facts.api_reads += 1;
        if let Ok(node) = Api::<Node>::all(client.clone()).get(&n).await {
            if let Some(info) = node.status.and_then(|s| s.node_info) {
                facts.node_platform.insert(
                    n.clone(),
                    format!("{}/{}", info.operating_system, info.architecture),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelectorRequirement, ObjectMeta, OwnerReference,
    };

    #[test]
    fn selectors_print_as_kubectl_takes_them() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b),!canary");
    }

    #[test]
    fn kinds_accept_kubectl_short_names() {
        assert_eq!(canonical_kind("deploy"), Some("deployment"));
        assert_eq!(canonical_kind("sts"), Some("statefulset"));
        assert_eq!(canonical_kind("cj"), Some("cronjob"));
        assert_eq!(canonical_kind("service"), None);
    }

    #[test]
    fn a_replicaset_pod_names_its_deployment() {
        let pod = |kind: &str, name: &str, hash: Option<&str>| Pod {
            metadata: ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    kind: kind.into(),
                    name: name.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                labels: hash.map(|h| [("pod-template-hash".to_string(), h.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            owner_of(&pod("ReplicaSet", "web-5c7d9", Some("5c7d9"))).as_deref(),
            Some("deployment/web")
        );
        assert_eq!(
            owner_of(&pod("ReplicaSet", "bare", None)).as_deref(),
            Some("replicaset/bare")
        );
        assert_eq!(
            owner_of(&pod("Job", "nightly-1", None)).as_deref(),
            Some("job/nightly-1")
        );
    }

    #[test]
    fn manifests_give_pods_secrets_and_service_accounts() {
        let docs: Vec<Value> = vec![
            serde_json::json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"regcred","namespace":"a"},
                "type":"kubernetes.io/dockerconfigjson","stringData":{".dockerconfigjson":"{}"}}),
            serde_json::json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":"a"},
                "imagePullSecrets":[{"name":"regcred"}]}),
            serde_json::json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"a"},
                "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
                "spec":{"containers":[{"name":"c","image":"r.example/app:1"}]}}}}),
        ];
        let mut facts = Facts::default();
        let pods = pods_from_manifest(&docs, "default", &mut facts).unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].name, "deployment/web");
        assert_eq!(pods[0].owner.as_deref(), Some("deployment/web"));
        assert!(!pods[0].live);
        assert!(matches!(
            facts.file_secrets.get(&("a".into(), "regcred".into())),
            Some(SecretLookup::Found { type_, .. }) if type_ == "kubernetes.io/dockerconfigjson"
        ));
        assert_eq!(
            facts
                .file_service_accounts
                .get(&("a".into(), "default".into())),
            Some(&vec!["regcred".to_string()])
        );
        // a pod spec that does not decode names the object
        let bad = vec![
            serde_json::json!({"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":"nope"}}),
        ];
        let e = pods_from_manifest(&bad, "default", &mut facts).unwrap_err();
        assert!(e.to_string().contains("Pod default/p"), "{e}");
    }

    #[test]
    fn secret_debug_output_has_keys_not_values() {
        let s = SecretLookup::Found {
            type_: "kubernetes.io/dockerconfigjson".into(),
            data: [(".dockerconfigjson".to_string(), b"hunter2-secret".to_vec())].into(),
        };
        let d = format!("{s:?}");
        assert!(
            d.contains(".dockerconfigjson") && !d.contains("hunter2"),
            "{d}"
        );
    }
}
