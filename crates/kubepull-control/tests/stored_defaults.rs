//! Objects stored before a default was added are read with it, on every read (GET, LIST, WATCH,
//! the base of a PATCH, an update's old object), as kube-apiserver's storage codec decodes what
//! it reads with the kind's defaults.

use std::sync::Arc;
use std::time::Duration;

use kubepull_control::objects::{Filter, ListOptions, Objects, WatchEvent};
use kubepull_control::resources::{self, Resource};
use kubepull_datastore::memory::MemoryStore;
use kubepull_datastore::Datastore;
use serde_json::{json, Value};

mod common;
use common::webhook::{tls, Hook, Reply};

type Events = tokio::sync::mpsc::Receiver<kubepull_control::errors::ApiResult<WatchEvent>>;

fn res(group: &str, version: &str, plural: &str) -> &'static Resource {
    resources::find(group, version, plural).unwrap()
}

/// A container as an earlier build stored it: none of the defaults added since (probe
/// periods, port protocols, env field-reference versions, volume modes).
fn old_container() -> Value {
    json!({"name": "c", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "readinessProbe": {"httpGet": {"port": 80}}, "ports": [{"containerPort": 80}],
        "env": [{"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]})
}

fn old_template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels},
        "spec": {"containers": [old_container()], "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "securityContext": {},
            "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}})
}

async fn api() -> (Objects, Arc<dyn Datastore>) {
    let store: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
    let o = Objects::new(store.clone());
    o.bootstrap().await.unwrap();
    (o, store)
}

async fn put_raw(store: &Arc<dyn Datastore>, r: &'static Resource, obj: &Value) {
    let key = resources::storage_of(r).key("default", obj["metadata"]["name"].as_str().unwrap());
    store
        .create(&key, serde_json::to_vec(obj).unwrap())
        .await
        .unwrap();
}

/// The defaults of a container and a volume at `t` (a pod template or a Pod).
fn assert_defaulted(t: &Value) {
    let c = &t["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["periodSeconds"], 10, "{t:#}");
    assert_eq!(c["ports"][0]["protocol"], "TCP", "{t:#}");
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(t["spec"]["volumes"][0]["secret"]["defaultMode"], 420);
}

/// A Deployment and its ReplicaSet stored before the template defaults: GET, LIST and WATCH
/// show them defaulted, and a JSON Patch that addresses a defaulted field applies (`replace`
/// needs the field there).
#[tokio::test]
async fn a_deployment_and_its_replicaset_read_with_the_defaults() {
    let (o, store) = api().await;
    let (deps, rss) = (
        res("apps", "v1", "deployments"),
        res("apps", "v1", "replicasets"),
    );
    let labels = json!({"app": "web"});
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels.clone()},
            "template": old_template(labels.clone()), "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": {}});
    let mut rs_labels = labels.clone();
    rs_labels["pod-template-hash"] = json!("abc");
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "default", "uid": "u2", "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": rs_labels.clone(),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": "u1", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": rs_labels.clone()},
            "template": old_template(rs_labels)},
        "status": {"replicas": 0}});
    put_raw(&store, deps, &dep).await;
    // a watch open before the ReplicaSet is written (served from the resource's shared
    // fan-out) sees it defaulted
    let (_, rv, _) = o
        .list(rss, Some("default"), &ListOptions::default())
        .await
        .unwrap();
    let all = || Filter::new(&ListOptions::default(), rss, Some("default")).unwrap();
    let mut live = o.watch(rss, Some("default"), rv, all()).await.unwrap();
    put_raw(&store, rss, &rs).await;
    let ev = tokio::time::timeout(Duration::from_secs(5), live.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ev.kind, "ADDED");
    assert_defaulted(&ev.object["spec"]["template"]);

    // GET
    assert_defaulted(&o.get(deps, "default", "web").await.unwrap()["spec"]["template"]);
    assert_defaulted(&o.get(rss, "default", "web-abc").await.unwrap()["spec"]["template"]);
    // LIST
    let (items, _, _) = o
        .list(rss, Some("default"), &ListOptions::default())
        .await
        .unwrap();
    assert_defaulted(&items[0]["spec"]["template"]);
    // WATCH from the start replays the stored object defaulted
    let mut w = o.watch(deps, Some("default"), 0, all()).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_defaulted(&ev.object["spec"]["template"]);

    // a JSON Patch replacing a field only the defaults set
    let patch = json!([{"op": "replace",
        "path": "/spec/template/spec/containers/0/readinessProbe/periodSeconds", "value": 20}]);
    let patched = o
        .patch(
            deps,
            "default",
            "web",
            "application/json-patch+json",
            &patch,
            None,
            false,
        )
        .await
        .unwrap();
    let probe = &patched["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["periodSeconds"], 20, "{patched:#}");
    // the spec changed: the generation counts it
    assert_eq!(patched["metadata"]["generation"], 2);
}

/// A running Job stored before the template defaults: its template is immutable, yet a label
/// (or a JSON Patch test of a defaulted field) changes nothing of it.
#[tokio::test]
async fn an_old_running_job_reads_with_the_template_defaults() {
    let (o, store) = api().await;
    let jobs = res("batch", "v1", "jobs");
    let labels = json!({"batch.kubernetes.io/controller-uid": "u3", "controller-uid": "u3",
        "batch.kubernetes.io/job-name": "old", "job-name": "old"});
    let mut template = old_template(labels.clone());
    template["spec"]["restartPolicy"] = json!("Never");
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "old", "namespace": "default", "uid": "u3", "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels.clone()},
        "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6,
            "completionMode": "NonIndexed", "suspend": false, "manualSelector": false,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u3"}},
            "template": template},
        "status": {"active": 1, "startTime": "2026-01-01T00:00:01Z"}});
    put_raw(&store, jobs, &job).await;
    assert_defaulted(&o.get(jobs, "default", "old").await.unwrap()["spec"]["template"]);
    let patch = json!([
        {"op": "test", "path": "/spec/template/spec/volumes/0/secret/defaultMode", "value": 420},
        {"op": "add", "path": "/metadata/labels/team", "value": "a"}]);
    let patched = o
        .patch(
            jobs,
            "default",
            "old",
            "application/json-patch+json",
            &patch,
            None,
            false,
        )
        .await
        .unwrap();
    assert_eq!(patched["metadata"]["labels"]["team"], "a");
    assert_eq!(patched["metadata"]["generation"], 1, "{patched:#}");
    assert_defaulted(&patched["spec"]["template"]);
}

/// A Pod stored before `schedulerName` was defaulted, watched with a field selector on it: an
/// update that leaves the field alone is `MODIFIED` for a watch served from the shared fan-out
/// and for one with its own datastore watch, as the previous state is read with the defaults
/// too (the etcd watcher decodes it through the storage codec); read as stored it would not
/// match, and the update would show as `ADDED`.
#[tokio::test]
async fn a_field_selector_watch_compares_the_previous_state_with_its_defaults() {
    let (o, store) = api().await;
    let pods = res("", "v1", "pods");
    let mut pod = old_template(json!({"app": "web"}));
    pod["spec"].as_object_mut().unwrap().remove("schedulerName");
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"] = json!({"name": "p", "namespace": "default", "uid": "u4",
        "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}});
    put_raw(&store, pods, &pod).await;
    let (_, rv, _) = o
        .list(pods, Some("default"), &ListOptions::default())
        .await
        .unwrap();
    let by_scheduler = || {
        let opts = ListOptions {
            field_selector: Some("spec.schedulerName=default-scheduler".into()),
            ..Default::default()
        };
        Filter::new(&opts, pods, Some("default")).unwrap()
    };
    // from the current revision: the fan-out; from before its first event: a datastore watch
    let mut fanned = o
        .watch(pods, Some("default"), rv, by_scheduler())
        .await
        .unwrap();
    let mut own = o
        .watch(pods, Some("default"), rv - 1, by_scheduler())
        .await
        .unwrap();
    async fn next(w: &mut Events) -> (&'static str, Value) {
        let f = tokio::time::timeout(Duration::from_secs(5), w.recv());
        let ev = f.await.unwrap().unwrap().unwrap();
        (ev.kind, ev.object["metadata"]["labels"]["team"].clone())
    }
    assert_eq!(next(&mut own).await, ("ADDED", Value::Null));
    // an update as an earlier build wrote it: still no schedulerName stored
    pod["metadata"]["labels"]["team"] = json!("a");
    let key = resources::storage_of(pods).key("default", "p");
    store
        .update(&key, serde_json::to_vec(&pod).unwrap(), rv)
        .await
        .unwrap();
    assert_eq!(next(&mut fanned).await, ("MODIFIED", json!("a")));
    assert_eq!(next(&mut own).await, ("MODIFIED", json!("a")));
}

/// A DELETE's admission webhooks receive the object being deleted as `oldObject` with the
/// kind's defaults, as kube-apiserver reads it from storage, even when it was stored without
/// them.
#[tokio::test]
async fn a_delete_webhook_sees_the_stored_object_with_its_defaults() {
    let (o, store) = api().await;
    let t = tls();
    let hook = Hook::start(
        &t,
        Arc::new(|_: &Value| Reply::Review(json!({"allowed": true}))),
    )
    .await;
    let ca_bundle = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&t.ca_pem)
    };
    let cfg = json!({"metadata": {"name": "deletes"}, "webhooks": [{
        "name": "deletes.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": hook.url("/"), "caBundle": ca_bundle},
        "rules": [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": ["pods"]}]}]});
    let vwc = res(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
    );
    o.create(vwc, "", cfg, &kubepull_control::objects::User::Admin, false)
        .await
        .unwrap();
    let pods = res("", "v1", "pods");
    let mut pod = old_template(json!({"app": "web"}));
    pod["spec"].as_object_mut().unwrap().remove("schedulerName");
    pod["metadata"] = json!({"name": "p", "namespace": "default", "uid": "u5",
        "creationTimestamp": "2026-01-01T00:00:00Z"});
    put_raw(&store, pods, &pod).await;
    o.delete(pods, "default", "p", &Default::default())
        .await
        .unwrap();
    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let old = &seen[0]["request"]["oldObject"];
    assert_eq!(seen[0]["request"]["operation"], "DELETE");
    assert_eq!(old["spec"]["schedulerName"], "default-scheduler", "{old:#}");
    assert_defaulted(old);
}
