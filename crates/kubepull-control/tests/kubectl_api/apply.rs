//! Server-side apply with the real kubectl: re-applying an unchanged pod, fields removed from
//! a manifest, conflicts with `kubectl scale` and `--force-conflicts`, managed fields as
//! `--show-managed-fields` prints them, custom resources and the status subresource.

use std::path::Path;

use kubepull_control::start;

use super::common::{admin_send, ok, refused};
use super::server_config;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: c
    image: reg.example/app:v1
    ports: [{containerPort: 80}]
"#;

fn deployment(labels: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{{labels}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: reg.example/app:v1}}]
"#
    )
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: caches.ssa.example.com}
spec:
  group: ssa.example.com
  scope: Namespaced
  names: {plural: caches, singular: cache, kind: Cache}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              tier: {type: string}
              mirrors:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [host]
                items:
                  type: object
                  required: [host]
                  properties:
                    host: {type: string}
                    weight: {type: integer}
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

/// Runs `f` with an admin kubeconfig and a HOME for kubectl against a fresh server.
async fn with_kubectl(f: impl FnOnce(&Path, &Path) + Send + 'static) {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || f(&admin, &home))
        .await
        .unwrap();
    server.shutdown().await;
}

/// A pod applied twice: the second apply changes nothing (no 422 for a changed container
/// list), the ServiceAccount token mount admission added stays, and the applier's fields are
/// in `managedFields`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_of_an_unchanged_pod_again() {
    with_kubectl(|admin, home| {
        let ok = |args: &[&str], stdin: Option<&str>| ok(admin, home, args, stdin);
        let apply = ["apply", "--server-side", "-f", "-"];

        // a pod applied twice: the second apply changes nothing, and the token volume the
        // ServiceAccount admission mounted stays
        let out = ok(&apply, Some(POD));
        assert!(out.contains("pod/web serverside-applied"), "{out}");
        let out = ok(&apply, Some(POD));
        assert!(out.contains("pod/web serverside-applied"), "{out}");
        let mounts = ok(
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.spec.containers[0].volumeMounts[*].mountPath}",
            ],
            None,
        );
        assert_eq!(
            mounts.trim(),
            "/var/run/secrets/kubernetes.io/serviceaccount"
        );
        let mf = ok(
            &["get", "pod", "web", "-o", "yaml", "--show-managed-fields"],
            None,
        );
        assert!(
            mf.contains("manager: kubectl\n    operation: Apply"),
            "{mf}"
        );
        assert!(mf.contains("fieldsType: FieldsV1"), "{mf}");
        assert!(mf.contains("k:{\"name\":\"c\"}:"), "{mf}");
        assert!(
            mf.contains("k:{\"containerPort\":80,\"protocol\":\"TCP\"}:"),
            "{mf}"
        );
        // the mount is nobody's: not in the applier's fields
        assert!(!mf.contains("f:volumeMounts"), "{mf}");
        // a changed image is applied
        ok(&apply, Some(&POD.replace("app:v1", "app:v2")));
        let image = ok(
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.spec.containers[0].image}",
            ],
            None,
        );
        assert_eq!(image.trim(), "reg.example/app:v2");

        // a pod created (not applied) is its creator's, defaults included, the token mount
        // admission added not
        ok(
            &["create", "-f", "-"],
            Some(&POD.replace("name: web", "name: made")),
        );
        let mf = ok(
            &["get", "pod", "made", "-o", "yaml", "--show-managed-fields"],
            None,
        );
        assert!(
            mf.contains("manager: kubectl-create\n    operation: Update"),
            "{mf}"
        );
        assert!(mf.contains("f:terminationMessagePath: {}"), "{mf}");
        assert!(
            !mf.contains("f:volumeMounts") && !mf.contains("f:volumes"),
            "{mf}"
        );
        assert!(!mf.contains("f:status"), "{mf}");
    })
    .await;
}

/// A Deployment: a label dropped from the manifest is removed, one another manager set stays;
/// `kubectl scale` owns the replicas (409 as kubectl prints it) until `--force-conflicts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_removes_dropped_fields_and_conflicts_with_scale() {
    with_kubectl(|admin, home| {
        let ok = |args: &[&str], stdin: Option<&str>| ok(admin, home, args, stdin);
        let refused = |args: &[&str], stdin: Option<&str>, wants: &[&str]| {
            refused(admin, home, args, stdin, wants)
        };
        let apply = ["apply", "--server-side", "-f", "-"];

        // a label the manifest no longer has is removed; one another manager set stays
        ok(&apply, Some(&deployment("app: web, tier: front", 2)));
        ok(&["label", "deployment", "web", "team=a"], None);
        ok(&apply, Some(&deployment("app: web", 2)));
        let labels = ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.labels}"], None);
        assert!(!labels.contains("tier") && labels.contains("\"team\":\"a\""), "{labels}");
        let mf = ok(&["get", "deployment", "web", "-o", "yaml", "--show-managed-fields"], None);
        assert!(mf.contains("manager: kubectl-label\n    operation: Update"), "{mf}");
        assert!(!mf.contains("f:tier"), "{mf}");

        // kubectl scale owns the replicas: applying other replicas is a conflict, forced it
        // takes them back
        ok(&["scale", "deployment", "web", "--replicas=5"], None);
        let mf = ok(&["get", "deployment", "web", "-o", "yaml", "--show-managed-fields"], None);
        assert!(mf.contains("subresource: scale"), "{mf}");
        refused(
            &apply,
            Some(&deployment("app: web", 2)),
            &[
                "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas",
                "--force-conflicts",
            ],
        );
        let replicas = ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"], None);
        assert_eq!(replicas.trim(), "5");
        ok(&["apply", "--server-side", "--force-conflicts", "-f", "-"], Some(&deployment("app: web", 2)));
        let replicas = ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"], None);
        assert_eq!(replicas.trim(), "2");
        let mf = ok(&["get", "deployment", "web", "-o", "yaml", "--show-managed-fields"], None);
        assert!(!mf.contains("subresource: scale"), "{mf}");
        // an unchanged manifest applies again without conflict
        ok(&apply, Some(&deployment("app: web", 2)));
    })
    .await;
}

/// A custom resource: merged by its schema's list map, a field no longer applied removed,
/// a conflict between appliers, its status applied on the subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_of_a_custom_resource_and_its_status() {
    with_kubectl(|admin, home| {
        let ok = |args: &[&str], stdin: Option<&str>| ok(admin, home, args, stdin);
        let refused = |args: &[&str], stdin: Option<&str>, wants: &[&str]| {
            refused(admin, home, args, stdin, wants)
        };
        let apply = ["apply", "--server-side", "-f", "-"];

        // a custom resource: merged by its schema's list map, a field no longer applied
        // removed, its status applied on the subresource
        ok(&["apply", "-f", "-"], Some(CRD));
        ok(&["wait", "--for=condition=Established", "crd/caches.ssa.example.com"], None);
        let cache = "apiVersion: ssa.example.com/v1\nkind: Cache\nmetadata: {name: c1}\nspec:\n  size: 3\n  tier: gold\n  mirrors: [{host: a, weight: 1}, {host: b, weight: 2}]\n";
        ok(&apply, Some(cache));
        ok(&apply, Some(cache));
        ok(
            &["apply", "--server-side", "--field-manager=other", "-f", "-"],
            Some("apiVersion: ssa.example.com/v1\nkind: Cache\nmetadata: {name: c1}\nspec:\n  mirrors: [{host: c, weight: 3}]\n"),
        );
        ok(&apply, Some("apiVersion: ssa.example.com/v1\nkind: Cache\nmetadata: {name: c1}\nspec:\n  size: 4\n  mirrors: [{host: a, weight: 1}]\n"));
        let spec = ok(&["get", "cache", "c1", "-o", "jsonpath={.spec}"], None);
        assert_eq!(
            spec.trim(),
            r#"{"mirrors":[{"host":"a","weight":1},{"host":"c","weight":3}],"size":4}"#
        );
        refused(
            &["apply", "--server-side", "--field-manager=other", "-f", "-"],
            Some("apiVersion: ssa.example.com/v1\nkind: Cache\nmetadata: {name: c1}\nspec:\n  size: 5\n"),
            &["Apply failed with 1 conflict: conflict with \"kubectl\": .spec.size"],
        );
        ok(
            &["apply", "--server-side", "--subresource=status", "--field-manager=cache-controller", "-f", "-"],
            Some("apiVersion: ssa.example.com/v1\nkind: Cache\nmetadata: {name: c1}\nstatus: {ready: true}\n"),
        );
        let ready = ok(&["get", "cache", "c1", "-o", "jsonpath={.status.ready}"], None);
        assert_eq!(ready.trim(), "true");
        let mf = ok(&["get", "cache", "c1", "-o", "yaml", "--show-managed-fields"], None);
        assert!(
            mf.contains("manager: cache-controller\n    operation: Apply\n    subresource: status"),
            "{mf}"
        );
        assert!(mf.contains("f:ready: {}"), "{mf}");
    })
    .await;
}

/// A namespace created by `kubectl apply --server-side`: its default ServiceAccount, which
/// the serviceaccounts controller makes, is not the apply's (neither its managed fields nor
/// its manager).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_created_by_apply_does_not_lend_its_fields_to_its_service_account() {
    with_kubectl(|admin, home| {
        let ok = |args: &[&str], stdin: Option<&str>| ok(admin, home, args, stdin);
        ok(
            &["apply", "--server-side", "-f", "-"],
            Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: team, labels: {a: b}}\n"),
        );
        let ns = ok(
            &["get", "ns", "team", "-o", "json", "--show-managed-fields"],
            None,
        );
        assert!(ns.contains(r#""operation": "Apply""#), "{ns}");
        let sa = ok(
            &[
                "get",
                "sa",
                "default",
                "-n",
                "team",
                "-o",
                "json",
                "--show-managed-fields",
            ],
            None,
        );
        let sa: serde_json::Value = serde_json::from_str(&sa).unwrap();
        for e in sa["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(
                (e["manager"].as_str(), e["operation"].as_str()),
                (Some("kube-controller-manager"), Some("Update")),
                "{sa}"
            );
        }
        assert!(!sa.to_string().contains("f:labels"), "{sa}");
    })
    .await;
}

/// apiserver `versionCheckManager` and `checkName`: an apply of another kind, or of an object
/// named otherwise than the URL, is a 400, and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_of_another_kind_or_name_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = super::common::https_client_builder(&server)
        .build()
        .unwrap();
    let url = |name: &str| {
        format!(
            "{}/api/v1/namespaces/default/configmaps/{name}?fieldManager=t",
            server.url()
        )
    };
    let cases = [
        (
            "y",
            r#"{"apiVersion":"v1","kind":"Foo","metadata":{"name":"y"}}"#,
            "invalid object type: /v1, Kind=Foo",
        ),
        (
            "y",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            "the name of the object (x) does not match the name on the URL (y)",
        ),
        (
            "y",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
            "the name of the object () does not match the name on the URL (y)",
        ),
    ];
    for (name, body, want) in cases {
        let r = http
            .patch(url(name))
            .bearer_auth(server.admin_token())
            .header("content-type", "application/apply-patch+yaml")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["message"], want, "{body}");
    }
    for name in ["x", "y"] {
        let r = http
            .get(url(name))
            .bearer_auth(server.admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{name}");
    }
    server.shutdown().await;
}

/// Server-side apply of an `autoscaling/v1` Scale to a Deployment's and a ReplicaSet's scale
/// subresource, as kube-apiserver's `TestScaleAllResources` (test/integration/apiserver/apply/
/// scale_test.go) runs it: a conflict with the manager that applied the replicas on the
/// object, forced it takes them (an `Apply` entry of subresource `scale` on the parent), a
/// replace takes them back (an `Update` entry without a time, as upstream's `ToParent` makes
/// it; a stale `resourceVersion` is a conflict), applying the same value shares them, a scale
/// patch takes them alone; a body of the parent's kind is refused as upstream refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_of_a_scale() {
    use serde_json::{json, Value};
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = super::https_client_builder(&server).build().unwrap();
    for (plural, kind) in [("deployments", "Deployment"), ("replicasets", "ReplicaSet")] {
        let url = |sub: &str, q: &str| {
            format!(
                "{}/apis/apps/v1/namespaces/default/{plural}/test{sub}?{q}",
                server.url()
            )
        };
        let (h, s) = (&http, &server);
        let send = move |method: reqwest::Method, u: String, ct: &'static str, body: Value| async move {
            admin_send(h, s, method, u, ct, &body).await
        };
        let apply = |sub: &'static str, q: &'static str, body: Value| {
            send(
                reqwest::Method::PATCH,
                url(sub, q),
                "application/apply-patch+yaml",
                body,
            )
        };
        let scale = |replicas: i64| {
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "test", "namespace": "default"},
                "spec": {"replicas": replicas}})
        };
        let owners = |obj: &Value| -> Vec<String> {
            obj["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_some())
                .map(|e| e["manager"].as_str().unwrap().to_string())
                .collect()
        };
        let get = || async {
            let (code, v) = send(
                reqwest::Method::GET,
                url("", ""),
                "application/json",
                json!({}),
            )
            .await;
            assert_eq!(code, 200, "{v}");
            v
        };
        let parent = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "test"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}}});
        let (code, v) = apply("", "fieldManager=apply_test", parent.clone()).await;
        assert_eq!(code, 201, "{v}");

        // another value than the applier's: a conflict naming it
        let (code, v) = apply("/scale", "fieldManager=apply_scale", scale(17)).await;
        assert_eq!(code, 409, "{v}");
        assert_eq!(
            v["message"],
            "Apply failed with 1 conflict: conflict with \"apply_test\": .spec.replicas"
        );
        // forced: the Scale is answered, the parent has the replicas and an Apply entry of
        // the scale subresource owns them
        let (code, v) = apply("/scale", "fieldManager=apply_scale&force=true", scale(17)).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(
            (v["kind"].clone(), v["spec"]["replicas"].clone()),
            (json!("Scale"), json!(17))
        );
        let obj = get().await;
        assert_eq!(obj["spec"]["replicas"], 17);
        assert_eq!(owners(&obj), ["apply_scale"]);
        let entry = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "apply_scale")
            .unwrap()
            .clone();
        assert_eq!(
            entry,
            json!({"manager": "apply_scale", "operation": "Apply", "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                "subresource": "scale"})
        );
        // first: Apply entries come first, the one without a time before the others
        assert_eq!(obj["metadata"]["managedFields"][0], entry);
        let applier = obj["metadata"]["managedFields"][1].clone();
        assert_eq!(applier["manager"], "apply_test");
        assert!(applier["fieldsV1"]["f:spec"].get("f:template").is_some());

        // a replace of the Scale takes them
        let (code, v) = send(
            reqwest::Method::PUT,
            url("/scale", "fieldManager=replace_test"),
            "application/json",
            scale(7),
        )
        .await;
        assert_eq!(code, 200, "{v}");
        let obj = get().await;
        assert_eq!(
            (obj["spec"]["replicas"].clone(), owners(&obj)),
            (json!(7), vec!["replace_test".to_string()])
        );
        // an Update entry of the parent's version, without a time (`ToParent`)
        let entry = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "replace_test")
            .unwrap()
            .clone();
        assert_eq!(
            entry,
            json!({"manager": "replace_test", "operation": "Update", "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                "subresource": "scale"})
        );
        // a replace naming an older resourceVersion is a conflict
        let mut stale = scale(9);
        stale["metadata"]["resourceVersion"] = json!("1");
        let (code, v) = send(
            reqwest::Method::PUT,
            url("/scale", "fieldManager=replace_test"),
            "application/json",
            stale,
        )
        .await;
        assert_eq!(code, 409, "{v}");
        // the same value applied: shared
        let (code, v) = apply("/scale", "fieldManager=co_owning_test", scale(7)).await;
        assert_eq!(code, 200, "{v}");
        let obj = get().await;
        let mut o = owners(&obj);
        o.sort();
        assert_eq!(
            (obj["spec"]["replicas"].clone(), o),
            (
                json!(7),
                vec!["co_owning_test".to_string(), "replace_test".to_string()]
            )
        );
        // a merge patch of the Scale: its manager alone
        let (code, v) = send(
            reqwest::Method::PATCH,
            url("/scale", "fieldManager=scale_test"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 5}}),
        )
        .await;
        assert_eq!(code, 200, "{v}");
        let obj = get().await;
        assert_eq!(
            (obj["spec"]["replicas"].clone(), owners(&obj)),
            (json!(5), vec!["scale_test".to_string()])
        );

        // the parent's kind is not a Scale; an apply names its manager
        let (code, v) = apply("/scale", "fieldManager=apply_test", parent).await;
        assert_eq!(code, 400, "{v}");
        assert_eq!(
            v["message"],
            format!("invalid object type: apps/v1, Kind={kind}")
        );
        let (code, v) = apply("/scale", "", scale(3)).await;
        assert_eq!(code, 422, "{v}");
        assert_eq!(get().await["spec"]["replicas"], 5);
    }
    server.shutdown().await;
}

/// The same for a custom resource's scale subresource (its `specReplicasPath`): an applied
/// Scale conflicts with the replicas' applier, forced it owns them on the custom resource with
/// the resource's API version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_of_a_custom_resources_scale() {
    use serde_json::{json, Value};
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = super::https_client_builder(&server).build().unwrap();
    let (h, s) = (&http, &server);
    let send = move |method: reqwest::Method, path: String, ct: &'static str, body: Value| async move {
        admin_send(h, s, method, format!("{}{path}", s.url()), ct, &body).await
    };
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.ssa.example.com"},
        "spec": {"group": "ssa.example.com", "scope": "Namespaced",
            "names": {"plural": "pools", "kind": "Pool"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"scale": {"specReplicasPath": ".spec.size",
                    "statusReplicasPath": ".status.size"}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer"}, "tier": {"type": "string"}}},
                    "status": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}});
    let (code, v) = send(
        reqwest::Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(),
        "application/json",
        crd,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let path = |sub: &str, q: &str| {
        format!("/apis/ssa.example.com/v1/namespaces/default/pools/p{sub}?{q}")
    };
    let pool = json!({"apiVersion": "ssa.example.com/v1", "kind": "Pool", "metadata": {"name": "p"},
        "spec": {"size": 2, "tier": "a"}});
    let mut created = (0, Value::Null);
    for _ in 0..100 {
        created = send(
            reqwest::Method::PATCH,
            path("", "fieldManager=applier"),
            "application/apply-patch+yaml",
            pool.clone(),
        )
        .await;
        if created.0 == 201 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(created.0, 201, "{}", created.1);
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "p"},
        "spec": {"replicas": 4}});
    let (code, v) = send(
        reqwest::Method::PATCH,
        path("/scale", "fieldManager=scaler"),
        "application/apply-patch+yaml",
        scale.clone(),
    )
    .await;
    assert_eq!(code, 409, "{v}");
    // the conflict is the Scale's, at its own path (upstream applies to the Scale)
    assert_eq!(
        v["message"],
        "Apply failed with 1 conflict: conflict with \"applier\": .spec.replicas"
    );
    let (code, v) = send(
        reqwest::Method::PATCH,
        path("/scale", "fieldManager=scaler&force=true"),
        "application/apply-patch+yaml",
        scale,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["spec"]["replicas"], 4);
    let (_, obj) = send(
        reqwest::Method::GET,
        path("", ""),
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(obj["spec"], json!({"size": 4, "tier": "a"}));
    let mf = obj["metadata"]["managedFields"].as_array().unwrap();
    let by = |m: &str| mf.iter().find(|e| e["manager"] == m).unwrap().clone();
    assert_eq!(
        by("scaler"),
        json!({"manager": "scaler", "operation": "Apply", "apiVersion": "ssa.example.com/v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}, "subresource": "scale"})
    );
    assert_eq!(by("applier")["fieldsV1"]["f:spec"], json!({"f:tier": {}}));
    server.shutdown().await;
}

/// structured-merge-diff's validation of an applied configuration (`ObjectToTyped` in
/// `structuredMergeManager.Apply`): a scalar of the wrong type is refused with its message at
/// the field's path, a 500 as upstream's (a plain error through `ErrorToAPIStatus`), whether
/// the object exists or not; a quantity written as a number is a quantity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_scalar_of_the_wrong_type_is_refused() {
    with_kubectl(|admin, home| {
        let ok = |args: &[&str], stdin: Option<&str>| ok(admin, home, args, stdin);
        let refused = |args: &[&str], stdin: Option<&str>, wants: &[&str]| {
            refused(admin, home, args, stdin, wants)
        };
        let apply = ["apply", "--server-side", "-f", "-"];
        let quoted = deployment("app: web", 3).replace("replicas: 3", "replicas: \"3\"");
        let want = "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.replicas: expected numeric (int or float), got string";
        refused(&apply, Some(&quoted), &[want]);
        ok(&apply, Some(&deployment("app: web", 2)));
        refused(&apply, Some(&quoted), &[want]);
        let replicas = ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"], None);
        assert_eq!(replicas.trim(), "2");
        let image = deployment("app: web", 2).replace("image: reg.example/app:v1", "image: 3, resources: {limits: {cpu: 1}}");
        refused(
            &apply,
            Some(&image),
            &[r#".spec.template.spec.containers[name="c"].image: expected string, got &value.valueUnstructured{Value:3}"#],
        );
        let cpu = deployment("app: web", 2).replace("image: reg.example/app:v1", "image: reg.example/app:v1, resources: {limits: {cpu: 1}}");
        ok(&apply, Some(&cpu));
    })
    .await;
}

/// JSON Patch, merge and strategic merge patches and replaces of a Deployment's Scale, as
/// kube-apiserver's scale storage takes them (`scaleUpdatedObjectInfo`): the patch is applied to
/// the current Scale and a `resourceVersion` the patched Scale carries is a precondition (a
/// JSON Patch `copy` onto it included), a failing `test` is the patch's own error, the Scale is
/// decoded and checked by `ValidateScale`, and a replace checks its field manager as any update;
/// `kubectl patch --subresource=scale --type=json` works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_and_replaces_of_a_deployments_scale() {
    use serde_json::{json, Value};
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = super::https_client_builder(&server).build().unwrap();
    let url = |sub: &str, q: &str| {
        format!(
            "{}/apis/apps/v1/namespaces/default/deployments{sub}?{q}",
            server.url()
        )
    };
    let (h, s) = (&http, &server);
    let send = move |method: reqwest::Method, u: String, ct: &'static str, body: Value| async move {
        admin_send(h, s, method, u, ct, &body).await
    };
    let patch = |ct: &'static str, body: Value| {
        send(reqwest::Method::PATCH, url("/test/scale", ""), ct, body)
    };
    const JSON: &str = "application/json-patch+json";
    let replicas = || async {
        let (code, v) = send(reqwest::Method::GET, url("/test", ""), JSON, json!({})).await;
        assert_eq!(code, 200, "{v}");
        (
            v["spec"]["replicas"].clone(),
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "test"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "t"}},
            "template": {"metadata": {"labels": {"app": "t"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let (code, v) = send(reqwest::Method::POST, url("", ""), "application/json", dep).await;
    assert_eq!(code, 201, "{v}");

    // JSON Patch and strategic merge patch
    let (code, v) = patch(
        JSON,
        json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
    )
    .await;
    assert_eq!(
        (code, &v["kind"], &v["spec"]["replicas"]),
        (200, &json!("Scale"), &json!(3)),
        "{v}"
    );
    let (code, v) = patch(
        "application/strategic-merge-patch+json",
        json!({"spec": {"replicas": 4}}),
    )
    .await;
    assert_eq!((code, &v["spec"]["replicas"]), (200, &json!(4)), "{v}");
    let (n, rv) = replicas().await;
    assert_eq!(n, 4);

    // a `test` of the current resourceVersion passes; a stale one fails as a JSON Patch does
    let (code, v) = patch(
        JSON,
        json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/replicas", "value": 5}]),
    )
    .await;
    assert_eq!((code, &v["spec"]["replicas"]), (200, &json!(5)), "{v}");
    let (code, v) = patch(
        JSON,
        json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": "/spec/replicas", "value": 6}]),
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (422, Some("Invalid")), "{v}");
    // a resourceVersion a `copy` puts there is a precondition
    let (code, v) = patch(
        JSON,
        json!([{"op": "copy", "from": "/metadata/name", "path": "/metadata/resourceVersion"},
        {"op": "replace", "path": "/spec/replicas", "value": 6}]),
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")), "{v}");
    assert_eq!(replicas().await.0, 5);

    // `ValidateScale`, and the Scale decoded
    let (code, v) = patch(
        "application/merge-patch+json",
        json!({"spec": {"replicas": -1}}),
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["message"],
        "Scale.autoscaling \"test\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    let scale = |r: Value| {
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": "test", "namespace": "default"}, "spec": {"replicas": r}})
    };
    let (code, v) = send(
        reqwest::Method::PUT,
        url("/test/scale", ""),
        "application/json",
        scale(json!("3")),
    )
    .await;
    assert_eq!(
        (code, v["reason"].as_str()),
        (400, Some("BadRequest")),
        "{v}"
    );
    assert_eq!(
        v["message"],
        "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal string into Go struct field ScaleSpec.spec.replicas of type int32"
    );
    let (code, v) = patch(
        "application/merge-patch+json",
        json!({"spec": {"replicas": "3"}}),
    )
    .await;
    assert_eq!(code, 422, "{v}");
    let m = v["message"].as_str().unwrap();
    assert!(
        m.starts_with(" \"\" is invalid: patch: Invalid value: ")
            && m.ends_with(": json: cannot unmarshal string into Go struct field ScaleSpec.spec.replicas of type int32"),
        "{m}"
    );
    // a replace checks its field manager (`ValidateUpdateOptions`)
    let long = format!("fieldManager={}", "m".repeat(129));
    let (code, v) = send(
        reqwest::Method::PUT,
        url("/test/scale", &long),
        "application/json",
        scale(json!(2)),
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("fieldManager"),
        "{v}"
    );
    assert_eq!(replicas().await.0, 5);

    // kubectl's JSON Patch of the subresource
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        ok(
            &admin,
            &home,
            &[
                "patch",
                "deployment",
                "test",
                "--subresource=scale",
                "--type=json",
                "-p",
                r#"[{"op": "replace", "path": "/spec/replicas", "value": 2}]"#,
            ],
            None,
        );
        let out = ok(
            &admin,
            &home,
            &[
                "get",
                "deployment",
                "test",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        );
        assert_eq!(out.trim(), "2");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The metadata checks every kind gets (`ValidateObjectMeta`), as kubectl users meet them: a
/// client-side apply of a ConfigMap over 256 KiB is refused for its last-applied annotation
/// (a server-side apply, which keeps none, stores it); an owner reference without a UID and a
/// finalizer without a domain are refused; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_metadata_is_validated_as_kube_apiserver_does() {
    with_kubectl(|admin, home| {
        let ok = |args: &[&str], stdin: Option<&str>| ok(admin, home, args, stdin);
        let refused = |args: &[&str], stdin: Option<&str>, wants: &[&str]| {
            refused(admin, home, args, stdin, wants)
        };
        let big = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{blob: {}}}\n",
            "x".repeat(300 * 1024)
        );
        refused(
            &["apply", "-f", "-"],
            Some(&big),
            &[r#"The ConfigMap "big" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"#],
        );
        ok(&["apply", "--server-side", "-f", "-"], Some(&big));
        let owned = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: big}]}\n";
        refused(
            &["create", "-f", "-"],
            Some(owned),
            &[r#"metadata.ownerReferences.uid: Invalid value: "": uid must not be empty"#],
        );
        let kept = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, finalizers: [keep]}\n";
        refused(
            &["create", "-f", "-"],
            Some(kept),
            &[r#"metadata.finalizers[0]: Invalid value: "keep": name is neither a standard finalizer name nor is it fully qualified"#],
        );
        let names = ok(&["get", "configmaps", "-o", "name"], None);
        assert!(
            !names.contains("owned") && !names.contains("kept"),
            "{names}"
        );
    })
    .await;
}
