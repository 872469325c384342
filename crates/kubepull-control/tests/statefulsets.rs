//! StatefulSets with the real kubectl against the API server and its controllers: ordered
//! creation, scale down from the highest ordinal, a rolling update from the highest ordinal,
//! and the update validation's 422.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kubepull_control::start;

mod common;
use common::{
    dump_on_failure, eventually, get_json, items, kubectl, ok, refused, s, server_config,
};

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: default}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: reg.example/app:v1
"#;

const DB: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: nginx
  replicas: 1
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: c
        image: reg.example/db:v1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

/// The names of the set's pods, sorted.
fn pod_names(kc: &Path, home: &Path) -> Vec<String> {
    let mut names: Vec<String> = items(&get_json(kc, home, &["get", "pods", "-l", "app=web"]))
        .iter()
        .map(|p| s(p, "/metadata/name").to_string())
        .collect();
    names.sort();
    names
}

/// Writes a Running and Ready status onto every pod of the set that is not Ready yet (as the
/// node agent would); returns how many it changed.
fn make_ready(kc: &Path, home: &Path) -> usize {
    let status =
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    let mut n = 0;
    for p in items(&get_json(kc, home, &["get", "pods", "-l", "app=web"])) {
        let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if ready || p["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let name = s(&p, "/metadata/name");
        // a pod deleted meanwhile is no failure
        let _ = kubectl(
            kc,
            home,
            &[
                "patch",
                "pod",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                status,
            ],
            None,
        );
        n += 1;
    }
    n
}

/// The messages of the set's events, in the order they were recorded (their names end in the
/// nanosecond they were made at).
fn events(kc: &Path, home: &Path) -> Vec<String> {
    let mut evs: Vec<(u128, String)> = items(&get_json(
        kc,
        home,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
        ],
    ))
    .iter()
    .map(|e| {
        let name = s(e, "/metadata/name");
        let at = name
            .rsplit('.')
            .next()
            .and_then(|h| u128::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        (at, s(e, "/message").to_string())
    })
    .collect();
    evs.sort();
    evs.into_iter().map(|(_, m)| m).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        dump_on_failure(kc, home, &["get", "sts,pods,controllerrevisions,events", "-o", "yaml"]);
        ok(kc, home, &["apply", "-f", "-"], Some(WEB));

        // OrderedReady: web-0 alone until it is Ready, then web-1, then web-2
        for k in 0..3 {
            let want: Vec<String> = (0..=k).map(|i| format!("web-{i}")).collect();
            eventually(&format!("pods {want:?}"), || (pod_names(kc, home) == want).then_some(()));
            // the next one does not come while this one is not Ready
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(pod_names(kc, home), want);
            let p = get_json(kc, home, &["get", "pod", &format!("web-{k}")]);
            assert_eq!(s(&p, "/spec/hostname"), format!("web-{k}"));
            assert_eq!(s(&p, "/spec/subdomain"), "nginx");
            assert_eq!(s(&p, "/metadata/labels/statefulset.kubernetes.io~1pod-name"), format!("web-{k}"));
            assert_eq!(s(&p, "/metadata/labels/apps.kubernetes.io~1pod-index"), k.to_string());
            assert!(!s(&p, "/metadata/labels/controller-revision-hash").is_empty(), "{p}");
            assert_eq!(s(&p, "/metadata/ownerReferences/0/kind"), "StatefulSet");
            make_ready(kc, home);
        }
        eventually("3/3 ready", || {
            let v = get_json(kc, home, &["get", "sts", "web"]);
            (v["status"]["readyReplicas"] == 3 && v["status"]["availableReplicas"] == 3).then_some(())
        });
        let out = ok(kc, home, &["get", "sts"], None);
        assert!(out.lines().any(|l| l.starts_with("web") && l.contains("3/3")), "{out}");
        let revs = ok(kc, home, &["get", "controllerrevisions", "-o", "name"], None);
        assert_eq!(revs.lines().count(), 1, "{revs}");
        let evs = events(kc, home);
        assert_eq!(
            evs.iter().filter(|m| m.starts_with("create Pod")).collect::<Vec<_>>(),
            [
                "create Pod web-0 in StatefulSet web successful",
                "create Pod web-1 in StatefulSet web successful",
                "create Pod web-2 in StatefulSet web successful"
            ]
        );

        // scale down: web-2 goes first, then web-1
        ok(kc, home, &["scale", "sts", "web", "--replicas=1"], None);
        let mut seen = vec![];
        eventually("scaled to 1", || {
            let names = pod_names(kc, home);
            if seen.last() != Some(&names) {
                seen.push(names.clone());
            }
            (names == ["web-0"]).then_some(())
        });
        let expected: Vec<Vec<String>> = [&["web-0", "web-1", "web-2"][..], &["web-0", "web-1"], &["web-0"]]
            .iter()
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .collect();
        // every state seen is one of the ordered ones (a fast removal may not be seen)
        assert!(seen.iter().all(|n| expected.contains(n)), "{seen:?}");

        // back to 3, then a template change rolls the pods from the highest ordinal
        ok(kc, home, &["scale", "sts", "web", "--replicas=3"], None);
        let stop = Arc::new(AtomicBool::new(false));
        let readier = {
            let (kc, home, stop) = (kc.to_path_buf(), home.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    make_ready(&kc, &home);
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        ok(kc, home, &["rollout", "status", "sts/web", "--timeout=60s"], None);
        let before = events(kc, home).len();
        ok(kc, home, &["set", "image", "sts/web", "c=reg.example/app:v2"], None);
        let out = ok(kc, home, &["rollout", "status", "sts/web", "--timeout=60s"], None);
        assert!(out.contains("partitioned roll out complete") || out.contains("rolling update complete"), "{out}");
        stop.store(true, Ordering::Relaxed);
        readier.join().unwrap();
        let images: Vec<String> = items(&get_json(kc, home, &["get", "pods", "-l", "app=web"]))
            .iter()
            .map(|p| s(p, "/spec/containers/0/image").to_string())
            .collect();
        assert_eq!(images, ["reg.example/app:v2"; 3]);
        let deletes: Vec<String> = events(kc, home)[before..]
            .iter()
            .filter(|m| m.starts_with("delete Pod"))
            .cloned()
            .collect();
        assert_eq!(
            deletes,
            [
                "delete Pod web-2 in StatefulSet web successful",
                "delete Pod web-1 in StatefulSet web successful",
                "delete Pod web-0 in StatefulSet web successful"
            ]
        );
        let st = get_json(kc, home, &["get", "sts", "web"]);
        assert_eq!(st["status"]["currentRevision"], st["status"]["updateRevision"], "{st}");
        assert_eq!(st["status"]["updatedReplicas"], 3);
        let revs = ok(kc, home, &["get", "controllerrevisions", "-o", "name"], None);
        assert_eq!(revs.lines().count(), 2, "{revs}");

        // a claim per template, made before the pod that mounts it, owned by the set
        // (whenDeleted: Delete) and removed with it
        ok(kc, home, &["apply", "-f", "-"], Some(DB));
        let pod = eventually("db-0", || {
            let (good, out) = kubectl(kc, home, &["get", "pod", "db-0", "-o", "json"], None);
            good.then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap())
        });
        assert_eq!(s(&pod, "/spec/volumes/0/name"), "data", "{pod}");
        assert_eq!(s(&pod, "/spec/volumes/0/persistentVolumeClaim/claimName"), "data-db-0", "{pod}");
        let pvc = get_json(kc, home, &["get", "pvc", "data-db-0"]);
        assert_eq!(s(&pvc, "/metadata/labels/app"), "db", "{pvc}");
        assert_eq!(s(&pvc, "/metadata/ownerReferences/0/kind"), "StatefulSet", "{pvc}");
        assert_eq!(s(&pvc, "/metadata/ownerReferences/0/name"), "db", "{pvc}");
        ok(kc, home, &["delete", "sts", "db"], None);
        eventually("claim removed with its set", || {
            let (good, out) = kubectl(kc, home, &["get", "pvc", "-o", "name"], None);
            (good && !out.contains("data-db-0")).then_some(())
        });

        // the pod template is not validated with the set (as upstream): its pods are, and
        // their refusal is the set's FailedCreate event
        let bad = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: bad}}\n  template:\n    metadata: {labels: {app: bad}}\n    spec: {containers: []}\n";
        ok(kc, home, &["apply", "-f", "-"], Some(bad));
        let msg = eventually("FailedCreate", || {
            let evs = get_json(kc, home, &["get", "events", "--field-selector", "involvedObject.name=bad,reason=FailedCreate"]);
            items(&evs).first().map(|e| s(e, "/message").to_string())
        });
        assert!(
            msg.starts_with("create Pod bad-0 in StatefulSet bad failed error: Pod \"bad-0\" is invalid: spec.containers: Required value"),
            "{msg}"
        );

        // a field an update may not change: upstream's 422
        refused(
            kc,
            home,
            &["patch", "sts", "web", "--type=merge", "-p", r#"{"spec":{"serviceName":"other"}}"#],
            None,
            &["The StatefulSet \"web\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"],
        );
    })
    .await
    .unwrap();
    server.shutdown().await;
}
