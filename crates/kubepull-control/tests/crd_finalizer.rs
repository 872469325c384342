//! Deleting a CustomResourceDefinition with the real kubectl honours its custom resources'
//! finalizers (apiextensions-apiserver `crd_finalizer.go`): the CRD gets the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer and the `Terminating` condition, its
//! instances are deleted through the normal delete path, one held by a finalizer keeps the CRD
//! (and itself) until the finalizer is removed, creates are refused meanwhile, and then both go
//! and the kind leaves discovery. On the embedded store and on etcd.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::kubectl;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

fn widget(name: &str, finalizers: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: t, finalizers: [{finalizers}]}}\nspec: {{size: 1}}\n"
    )
}

/// Waits (at most a minute) until `f` answers `Some`.
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scenario(kc: &Path, home: &Path) {
    let k = |args: &[&str], stdin: Option<&str>| kubectl(kc, home, args, stdin);
    let must = |args: &[&str], stdin: Option<&str>| {
        let (ok, out) = k(args, stdin);
        assert!(ok, "kubectl {args:?}: {out}");
        out
    };
    must(&["apply", "-f", "-"], Some(CRD));
    must(
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
        ],
        None,
    );
    must(&["create", "namespace", "t"], None);
    must(
        &["create", "-f", "-"],
        Some(&widget("held", "example.com/hold")),
    );
    must(&["create", "-f", "-"], Some(&widget("free", "")));

    let out = must(
        &["delete", "crd", "widgets.example.com", "--wait=false"],
        None,
    );
    assert!(out.contains("deleted"), "{out}");
    let crd_field = |path: &str| {
        k(
            &[
                "get",
                "crd",
                "widgets.example.com",
                "-o",
                &format!("jsonpath={path}"),
            ],
            None,
        )
    };
    let cond = r#"{.status.conditions[?(@.type=="Terminating")]}"#;
    // the instance without finalizers goes; the held one is being deleted and stays; the CRD
    // stays, terminating, with its finalizer
    until("the free instance to go", || {
        let (ok, out) = k(&["get", "widget", "free", "-n", "t"], None);
        (!ok && out.contains("NotFound")).then_some(())
    });
    until("the CRD to show the deletion in progress", || {
        let (ok, out) = crd_field(r#"{.status.conditions[?(@.type=="Terminating")].reason}"#);
        (ok && out.trim() == "InstanceDeletionInProgress").then_some(())
    });
    let (ok, out) = crd_field(cond);
    assert!(ok, "{out}");
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["status"], "True", "{c}");
    assert_eq!(
        c["message"], "CustomResource deletion is in progress",
        "{c}"
    );
    let (ok, out) = crd_field("{.metadata.finalizers}{.metadata.deletionTimestamp}");
    assert!(
        ok && out.contains("customresourcecleanup.apiextensions.k8s.io") && out.contains('T'),
        "{out}"
    );
    // the finalizer deletes the instances one after the other: `free` gone does not mean the
    // delete of `held` was already written
    until("held to be marked for deletion", || {
        let (ok, out) = k(
            &[
                "get",
                "widget",
                "held",
                "-n",
                "t",
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ],
            None,
        );
        (ok && !out.trim().is_empty()).then_some(())
    });
    let (ok, out) = k(&["get", "crd"], None);
    assert!(ok && out.contains("widgets.example.com"), "{out}");

    // creates are refused while the CRD is terminating (once this server has seen the
    // condition); reads and updates still work
    let out = until("creates to be refused", || {
        let (ok, out) = k(&["create", "-f", "-"], Some(&widget("new", "")));
        assert!(!ok || out.contains("created"), "{out}");
        (!ok).then_some(out)
    });
    assert!(
        out.contains("(MethodNotAllowed)")
            && out.contains("create not allowed while custom resource definition is terminating"),
        "{out}"
    );
    let (ok, out) = k(&["get", "widget", "new", "-n", "t"], None);
    assert!(!ok && out.contains("NotFound"), "{out}");
    must(&["label", "widget", "held", "-n", "t", "still=here"], None);
    // a while later, it is all still there
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, out) = k(&["get", "widget", "held", "-n", "t", "-o", "name"], None);
    assert!(ok && out.trim() == "widget.example.com/held", "{out}");
    let (ok, out) = crd_field(r#"{.status.conditions[?(@.type=="Terminating")].status}"#);
    assert!(ok && out.trim() == "True", "{out}");

    // the finalizer removed, the instance goes, then the CRD, and the kind leaves discovery
    must(
        &[
            "patch",
            "widget",
            "held",
            "-n",
            "t",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
        None,
    );
    must(
        &[
            "wait",
            "--for=delete",
            "crd/widgets.example.com",
            "--timeout=60s",
        ],
        None,
    );
    let (ok, out) = k(
        &["get", "--raw", "/apis/example.com/v1/namespaces/t/widgets"],
        None,
    );
    assert!(!ok && out.contains("NotFound"), "{out}");
    let (ok, out) = k(&["get", "--raw", "/apis"], None);
    assert!(ok && !out.contains("example.com"), "{out}");
    let (ok, out) = k(&["get", "--raw", "/openapi/v3"], None);
    assert!(ok && !out.contains("apis/example.com"), "{out}");

    // created again, it starts empty
    must(&["apply", "-f", "-"], Some(CRD));
    must(
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
        ],
        None,
    );
    let out = until("the new CRD to be served", || {
        let (ok, out) = k(&["get", "widgets", "-n", "t", "-o", "name"], None);
        ok.then_some(out)
    });
    assert!(out.trim().is_empty(), "{out}");
    let (ok, out) = crd_field("{.status.conditions[*].type}");
    assert!(ok && !out.contains("Terminating"), "{out}");

    // a CRD whose instances carry no finalizers goes at once with them
    must(&["create", "-f", "-"], Some(&widget("w", "")));
    must(
        &["delete", "crd", "widgets.example.com", "--timeout=60s"],
        None,
    );
    let (ok, out) = k(&["get", "crd", "widgets.example.com"], None);
    assert!(!ok && out.contains("NotFound"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_deletion_waits_for_instance_finalizers_on_redb() {
    let d = tempfile::tempdir().unwrap();
    let cfg = kubepull_control::ServerConfig {
        datastore: String::new(),
        ..common::server_config(d.path(), false)
    };
    let server = kubepull_control::start(cfg).await.unwrap();
    let (kc, home) = (server.kubeconfig_path(), d.path().to_path_buf());
    tokio::task::spawn_blocking(move || scenario(&kc, &home))
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_deletion_waits_for_instance_finalizers_on_etcd() {
    let e = kubepull_testkit::etcd::Etcd::start(1);
    let spec = format!("etcd://{}", e.clients[0]);
    // etcd takes a moment to elect itself
    let deadline = Instant::now() + Duration::from_secs(30);
    while kubepull_control::etcd_store::EtcdStore::connect_with(
        &kubepull_datastore::etcd_store::EtcdOptions::with_servers(&spec),
    )
    .await
    .is_err()
    {
        assert!(Instant::now() < deadline, "etcd did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = kubepull_control::ServerConfig {
        datastore: spec,
        ..common::server_config(d.path(), false)
    };
    let server = kubepull_control::start(cfg).await.unwrap();
    let (kc, home) = (server.kubeconfig_path(), d.path().to_path_buf());
    tokio::task::spawn_blocking(move || scenario(&kc, &home))
        .await
        .unwrap();
    server.shutdown().await;
}
