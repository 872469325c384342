//! ReplicationControllers with the real kubectl against the API server and its controllers:
//! defaults, validation, pods created and owned, `kubectl scale rc`, adoption of a matching
//! orphan, and cascading deletion.

use kubepull_control::start;
use serde_json::Value;

mod common;
use common::{eventually, get_json, items, ok, refused, s, server_config};

const RC: &str = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: web}\nspec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: reg.example/app:v1}]\n";

fn pods_of(kc: &std::path::Path, home: &std::path::Path) -> Vec<Value> {
    items(&get_json(kc, home, &["get", "pods", "-l", "app=web"]))
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controllers_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        // invalid: a selector the template does not match, a restart policy other than Always
        let bad = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: bad}\nspec:\n  selector: {app: other}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      restartPolicy: OnFailure\n      activeDeadlineSeconds: 5\n      containers: [{name: c, image: x}]\n";
        refused(kc, home, &["apply", "-f", "-"], Some(bad), &[
            "The ReplicationController \"bad\" is invalid",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicationController is not Supported",
        ]);
        let no_template = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: bad}\nspec:\n  selector: {app: web}\n";
        refused(kc, home, &["apply", "-f", "-"], Some(no_template), &["spec.template: Required value"]);

        // the selector and labels default to the template's labels
        ok(kc, home, &["apply", "-f", "-"], Some(RC));
        let rc = get_json(kc, home, &["get", "rc", "web"]);
        assert_eq!(s(&rc, "/spec/selector/app"), "web");
        assert_eq!(s(&rc, "/metadata/labels/app"), "web");
        assert_eq!(rc["metadata"]["generation"], 1);
        let uid = s(&rc, "/metadata/uid").to_string();

        // its pods: generated names, controlled by it; the status follows
        let pods = eventually("two pods of the controller", || {
            let p = pods_of(kc, home);
            (p.len() == 2).then_some(p)
        });
        for p in &pods {
            assert!(s(p, "/metadata/name").starts_with("web-"));
            let o = &p["metadata"]["ownerReferences"][0];
            assert_eq!((s(o, "/kind"), s(o, "/apiVersion"), s(o, "/uid")), ("ReplicationController", "v1", uid.as_str()));
        }
        eventually("status.replicas 2", || {
            let rc = get_json(kc, home, &["get", "rc", "web"]);
            (rc["status"]["replicas"] == 2 && rc["status"]["observedGeneration"] == 1).then_some(())
        });
        let out = ok(kc, home, &["get", "rc", "-o", "wide"], None);
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
        assert!(out.lines().nth(1).unwrap().contains("app=web"), "{out}");

        // scale down through the scale subresource, whose selector is the label map
        let raw = ok(kc, home, &["get", "--raw", "/api/v1/namespaces/default/replicationcontrollers/web/scale"], None);
        let scale: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(s(&scale, "/status/selector"), "app=web");
        ok(kc, home, &["scale", "rc", "web", "--replicas=1"], None);
        eventually("one pod left", || (pods_of(kc, home).len() == 1).then_some(()));

        // an orphan with its labels is adopted, the surplus deleted
        let orphan = "apiVersion: v1\nkind: Pod\nmetadata: {name: stray, labels: {app: web}}\nspec:\n  containers: [{name: c, image: x}]\n";
        ok(kc, home, &["apply", "-f", "-"], Some(orphan));
        eventually("back to one pod after adoption", || {
            let p = pods_of(kc, home);
            (p.len() == 1 && p[0]["metadata"]["ownerReferences"][0]["uid"] == uid.as_str()).then_some(())
        });

        // deleting it deletes its pods (background cascading)
        ok(kc, home, &["delete", "rc", "web"], None);
        eventually("its pods are gone", || pods_of(kc, home).is_empty().then_some(()));
    })
    .await
    .unwrap();
    server.shutdown().await;
}
