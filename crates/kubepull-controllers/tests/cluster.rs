//! The controllers against kubepull's real API server (in process, loopback, temp dir), through
//! the same kube-rs client a user's cluster would see.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use kubepull_controllers::{run_all, ControllerOptions};
use serde_json::json;

/// Upper bound for one eventual condition; a failure prints the last observed state.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

struct Cluster {
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<kubepull_control::ServerHandle>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = kubepull_control::start(kubepull_control::ServerConfig {
            data_dir: dir.path().join("state"),
            bind_address: "127.0.0.1".parse().unwrap(),
            secure_port: 0,
            datastore: "memory".into(),
            controllers: false,
        })
        .await
        .unwrap();
        let kc = Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
        let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        let client = Client::try_from(cfg).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let opts = ControllerOptions {
            resync: Duration::from_millis(500),
            ..Default::default()
        };
        tokio::spawn(run_all(client.clone(), opts, async move {
            let _ = rx.await;
        }));
        Self {
            client,
            stop: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = std::time::Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() > WAIT_LIMIT => panic!("{what}: never happened; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn live(pods: Vec<Pod>) -> Vec<Pod> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn ready_node_with_lease(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    // Status is a subresource: write it there too, in case create dropped it.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})),
        )
        .await
        .unwrap();
    let ns: Api<Namespace> = Api::all(client.clone());
    let _ = ns
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "kube-node-lease"}})).unwrap(),
        )
        .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_lifecycle_scale_rollout_and_garbage_collection() {
    let c = Cluster::start().await;
    let client = c.client.clone();
    ready_node_with_lease(&client, "node-a").await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let d = deploys
        .create(&PostParams::default(), &deployment(3, "registry.invalid/app:1"))
        .await
        .unwrap();
    let d_uid = d.uid().unwrap();

    // One ReplicaSet web-<hash>, owned by the Deployment, and 3 pods owned by it, all bound.
    let rs = eventually("one replicaset", || async {
        let l = rss.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        match l.items.as_slice() {
            [rs] => Ok(rs.clone()),
            other => Err(format!("{} replicasets", other.len())),
        }
    })
    .await;
    let hash = rs.labels()["pod-template-hash"].clone();
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    let owner = &rs.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Deployment", d_uid.as_str()));
    assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    assert_eq!(rs.annotations()["deployment.kubernetes.io/revision"], "1");
    let rs_uid = rs.uid().unwrap();
    let bound = eventually("3 bound pods", || async {
        let l = live(pods.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items);
        let bound = l
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-a"))
            .count();
        if l.len() == 3 && bound == 3 {
            Ok(l)
        } else {
            Err(format!("{} pods, {bound} bound", l.len()))
        }
    })
    .await;
    let alphabet = "bcdfghjklmnpqrstvwxz2456789";
    for p in &bound {
        let name = p.name_any();
        let suffix = name
            .strip_prefix(&format!("web-{hash}-"))
            .unwrap_or_else(|| panic!("pod name {name}"));
        assert_eq!(suffix.len(), 5, "{name}");
        assert!(suffix.chars().all(|c| alphabet.contains(c)), "{name}");
        assert_eq!(p.labels()["app"], "web");
        assert_eq!(p.labels()["pod-template-hash"], hash);
        let o = &p.owner_references()[0];
        assert_eq!((o.kind.as_str(), o.uid.as_str(), o.controller), ("ReplicaSet", rs_uid.as_str(), Some(true)));
    }

    // Status for `kubectl rollout status`.
    eventually("deployment status", || async {
        let d = deploys.get("web").await.map_err(|e| e.to_string())?;
        let s = d.status.clone().unwrap_or_default();
        if s.observed_generation == d.metadata.generation && s.replicas == Some(3) && s.updated_replicas == Some(3) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;

    // Scale to 1: two pods go.
    deploys
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}})))
        .await
        .unwrap();
    eventually("scale to 1", || async {
        let l = live(pods.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items);
        if l.len() == 1 { Ok(()) } else { Err(format!("{} live pods", l.len())) }
    })
    .await;

    // A new image rolls out a second ReplicaSet with revision 2.
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "registry.invalid/app:2"}]}}}})),
        )
        .await
        .unwrap();
    eventually("new replicaset", || async {
        let l = rss.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let new = l.items.iter().find(|r| r.name_any() != rs.name_any());
        match new {
            Some(n) if n.annotations().get("deployment.kubernetes.io/revision").map(String::as_str) == Some("2")
                && n.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) >= 1 => Ok(()),
            _ => Err(format!("{:?}", l.items.iter().map(|r| r.name_any()).collect::<Vec<_>>())),
        }
    })
    .await;

    // Deleting the Deployment collects its ReplicaSets and their pods.
    deploys.delete("web", &DeleteParams::background()).await.unwrap();
    eventually("garbage collection", || async {
        let r = rss.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let p = live(pods.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items);
        if r.items.is_empty() && p.is_empty() {
            Ok(())
        } else {
            Err(format!("{} replicasets, {} live pods", r.items.len(), p.len()))
        }
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_without_nodes_is_unschedulable() {
    let c = Cluster::start().await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "lonely"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/app:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually("PodScheduled=False", || async {
        let p = pods.get("lonely").await.map_err(|e| e.to_string())?;
        let cond = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled").cloned());
        match cond {
            Some(c) if c.status == "False" && c.reason.as_deref() == Some("Unschedulable") => {
                assert!(c.message.unwrap_or_default().starts_with("0/0 nodes are available"));
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    c.stop().await;
}
