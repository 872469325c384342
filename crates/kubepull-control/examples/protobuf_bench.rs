//! Protobuf transcoding speed: decode (protobuf → Kubernetes JSON) and encode (JSON → protobuf)
//! of a typical Pod, Deployment and ConfigMapList, beside serde_json on the same objects.
//!
//! `cargo run --release -p kubepull-control --example protobuf_bench [ITERATIONS]`

use std::time::Instant;

use kubepull_control::protobuf::{decode, encode};
use serde_json::{json, Value};

fn pod(i: usize) -> Value {
    json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": "0b5c1d0e-7b6e-4f2e-9d8a-1c2d3e4f5a6b",
            "resourceVersion": "12345", "creationTimestamp": "2026-01-02T03:04:05Z",
            "labels": {"app": "web", "pod-template-hash": "5d9c7b"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-02T03:04:05Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c7b", "uid": "u", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "app", "image": "registry.example:5000/app:1.2.3",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}, {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}}],
            "imagePullSecrets": [{"name": "regcred"}], "nodeName": "node-1", "restartPolicy": "Always",
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "startTime": "2026-01-02T03:04:05Z",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:07Z"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "registry.example:5000/app:1.2.3", "imageID": "sha256:ab",
                "started": true, "state": {"running": {"startedAt": "2026-01-02T03:04:06Z"}}}]}})
}

fn measure(name: &str, obj: &Value, n: usize) {
    let pb = encode(obj).expect("encodes");
    let js = serde_json::to_vec(obj).expect("serializes");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(decode(std::hint::black_box(&pb)).expect("decodes"));
    }
    let dec = t.elapsed() / n as u32;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(encode(std::hint::black_box(obj)).expect("encodes"));
    }
    let enc = t.elapsed() / n as u32;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            serde_json::from_slice::<Value>(std::hint::black_box(&js)).expect("parses"),
        );
    }
    let jdec = t.elapsed() / n as u32;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::to_vec(std::hint::black_box(obj)).expect("serializes"));
    }
    let jenc = t.elapsed() / n as u32;
    println!(
        "{name:<22} protobuf {:>6} B  decode {dec:>10.2?}  encode {enc:>10.2?} | JSON {:>6} B  parse {jdec:>10.2?}  write {jenc:>10.2?}",
        pb.len(),
        js.len()
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    measure("Pod", &pod(0), n);
    let deploy = json!({"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod(0)["spec"].clone()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
        "status": {"replicas": 3, "readyReplicas": 3, "observedGeneration": 1}});
    measure("Deployment", &deploy, n);
    let items: Vec<Value> = (0..100).map(pod).collect();
    let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items});
    measure("PodList (100 pods)", &list, (n / 100).max(10));
}
