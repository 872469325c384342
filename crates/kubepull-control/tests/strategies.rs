//! What the kinds' strategies add on create and update: `WarningsOnCreate`'s name warning
//! and `PrepareForUpdate`'s generation rules (a Deployment's annotations, a webhook
//! configuration's `webhooks` compared strictly).

use std::sync::Arc;

use kubepull_control::objects::{Objects, User};
use kubepull_control::resources::{self, Resource};
use kubepull_datastore::memory::MemoryStore;
use serde_json::{json, Value};

fn res(group: &str, plural: &str) -> &'static Resource {
    resources::find(group, "v1", plural).unwrap()
}

async fn api() -> Objects {
    let o = Objects::new(Arc::new(MemoryStore::new()));
    o.bootstrap().await.unwrap();
    o
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

const DOTTED: &str = "a DNS label is recommended: [must not contain dots]";

/// A name that is not a DNS label is stored with upstream's warning for the kinds whose names
/// become Pod names or hostnames, on create only.
#[tokio::test]
async fn names_that_are_not_dns_labels_are_warned_about_on_create() {
    let o = api().await;
    let selector = json!({"matchLabels": {"app": "web"}});
    let bodies = [
        (
            res("", "pods"),
            json!({"metadata": {"name": "web.v1"},
            "spec": template()["spec"].clone()}),
            "the Pod's hostname",
        ),
        (
            res("apps", "deployments"),
            json!({"metadata": {"name": "web.v1"},
            "spec": {"selector": selector, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}),
            "Pod names and hostnames",
        ),
        (
            res("apps", "replicasets"),
            json!({"metadata": {"name": "web.v1"},
            "spec": {"selector": selector, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}),
            "Pod names and hostnames",
        ),
        (
            res("batch", "jobs"),
            json!({"metadata": {"name": "web.v1"},
            "spec": {"suspend": true, "template": template()}}),
            "Pod names and hostnames",
        ),
        (
            res("batch", "cronjobs"),
            json!({"metadata": {"name": "web.v1"},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": template()}}}}),
            "Pod names and hostnames",
        ),
    ];
    for (r, body, used_in) in bodies {
        let (made, warnings) =
            kubepull_control::warnings::collect(o.create(r, "default", body, &User::Admin, false))
                .await;
        let made = made.unwrap_or_else(|e| panic!("{}: {}", r.kind, e.message));
        assert_eq!(
            warnings.first().map(String::as_str),
            Some(format!("metadata.name: this is used in {used_in}, which can result in surprising behavior; {DOTTED}").as_str()),
            "{}: {warnings:?}",
            r.kind
        );
        // an update gives no name warning
        let mut again = made.clone();
        again["metadata"]["labels"] = json!({"x": "y"});
        let (updated, warnings) = kubepull_control::warnings::collect(
            o.update(r, "default", "web.v1", again, None, false),
        )
        .await;
        updated.unwrap();
        assert!(!warnings.iter().any(|w| w.contains(DOTTED)), "{warnings:?}");
    }
    // other kinds have no such warning
    let (made, warnings) = kubepull_control::warnings::collect(o.create(
        res("", "configmaps"),
        "default",
        json!({"metadata": {"name": "web.v1"}}),
        &User::Admin,
        false,
    ))
    .await;
    made.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// A Deployment's generation counts an annotation change (its ReplicaSets copy them), not a
/// label change; a ReplicaSet's counts neither.
#[tokio::test]
async fn a_deployment_generation_counts_its_annotations() {
    let o = api().await;
    for (plural, bumps) in [("deployments", true), ("replicasets", false)] {
        let r = res("apps", plural);
        let mut obj = o
            .create(
                r,
                "default",
                json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        assert_eq!(obj["metadata"]["generation"], 1);
        obj["metadata"]["labels"] = json!({"team": "a"});
        obj = o
            .update(r, "default", "web", obj, None, false)
            .await
            .unwrap();
        assert_eq!(obj["metadata"]["generation"], 1, "{plural}: a label");
        // an empty map is no annotations
        obj["metadata"]["annotations"] = json!({});
        obj = o
            .update(r, "default", "web", obj, None, false)
            .await
            .unwrap();
        assert_eq!(obj["metadata"]["generation"], 1, "{plural}: no annotations");
        obj["metadata"]["annotations"] = json!({"note": "x"});
        obj = o
            .update(r, "default", "web", obj, None, false)
            .await
            .unwrap();
        let want = if bumps { 2 } else { 1 };
        assert_eq!(
            obj["metadata"]["generation"], want,
            "{plural}: an annotation"
        );
    }
}

/// A webhook configuration's generation compares `webhooks` as `reflect.DeepEqual`: an empty
/// list where there was none is a change, in the list and in a webhook.
#[tokio::test]
async fn a_webhook_configuration_generation_compares_strictly() {
    let o = api().await;
    let r = resources::find(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
    )
    .unwrap();
    let mut obj = o
        .create(
            r,
            "",
            json!({"metadata": {"name": "w"}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(obj.get("webhooks").is_none(), "{obj:#}");
    obj["webhooks"] = json!([]);
    let mut obj = o.update(r, "", "w", obj, None, false).await.unwrap();
    assert_eq!(obj["metadata"]["generation"], 2, "{obj:#}");
    obj["webhooks"] = json!([{"name": "a.example.com", "sideEffects": "None",
        "admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://example.com/a"}}]);
    let mut obj = o.update(r, "", "w", obj, None, false).await.unwrap();
    assert_eq!(obj["metadata"]["generation"], 3, "{obj:#}");
    assert!(obj["webhooks"][0].get("rules").is_none(), "{obj:#}");
    obj["webhooks"][0]["rules"] = json!([]);
    let obj = o.update(r, "", "w", obj, None, false).await.unwrap();
    assert_eq!(obj["metadata"]["generation"], 4, "{obj:#}");
}

/// A new Pod is stored as the pod strategy's `PrepareForCreate` leaves it: its affinity terms'
/// `matchLabelKeys` made requirements (`mutatePodAffinity`), its AppArmor field given the
/// annotation and its annotation the field (`applyAppArmorVersionSkew`, with the deprecation
/// warning).
#[tokio::test]
async fn a_new_pods_affinity_and_app_armor_are_prepared() {
    let o = api().await;
    let pods = res("", "pods");
    let body = json!({"metadata": {"name": "p", "labels": {"rev": "3"},
            "annotations": {"container.apparmor.security.beta.kubernetes.io/b": "localhost/prof"}},
        "spec": {"containers": [
            {"name": "a", "image": "i",
                "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}},
            {"name": "b", "image": "i"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "matchLabelKeys": ["rev"],
                    "labelSelector": {"matchLabels": {"app": "web"}}}]}}}});
    let (made, warnings) =
        kubepull_control::warnings::collect(o.create(pods, "default", body, &User::Admin, false))
            .await;
    let made = made.unwrap();
    let stored = o.get(pods, "default", "p").await.unwrap();
    for p in [&made, &stored] {
        assert_eq!(
            p["metadata"]["annotations"],
            json!({"container.apparmor.security.beta.kubernetes.io/a": "runtime/default",
                "container.apparmor.security.beta.kubernetes.io/b": "localhost/prof"})
        );
        assert_eq!(
            p["spec"]["containers"][1]["securityContext"]["appArmorProfile"],
            json!({"type": "Localhost", "localhostProfile": "prof"})
        );
        let term = &p["spec"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(
            term["labelSelector"]["matchExpressions"],
            json!([{"key": "rev", "operator": "In", "values": ["3"]}])
        );
    }
    assert!(
        warnings.contains(&"metadata.annotations[container.apparmor.security.beta.kubernetes.io/b]: deprecated since v1.30; use the \"appArmorProfile\" field instead".to_string()),
        "{warnings:?}"
    );
}

/// A status update writes the status and the request's metadata, as the kinds' status
/// strategies allow: a Deployment's annotations but not its labels or spec
/// (`deploymentStatusStrategy`), a Pod's labels but not its owner references or spec
/// (`podStatusStrategy`), a ReplicaSet's labels and annotations but not its spec; the
/// immutable metadata and the generation stay.
#[tokio::test]
async fn a_status_update_keeps_the_metadata_its_strategy_allows() {
    let o = api().await;
    let mut workload = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template()}});
    // a Deployment's and a ReplicaSet's pods restart Always
    workload["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    for (plural, labels_kept) in [("deployments", false), ("replicasets", true)] {
        let r = res("apps", plural);
        let made = o
            .create(r, "default", workload.clone(), &User::Admin, false)
            .await
            .unwrap();
        let mut body = made.clone();
        body["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        body["metadata"]["labels"] = json!({"app": "web", "team": "a"});
        body["metadata"]["uid"] = json!("");
        body["metadata"]["generation"] = json!(7);
        body["spec"]["replicas"] = json!(5);
        body["status"] = json!({"observedGeneration": 1, "replicas": 1});
        let written = o
            .update(r, "default", "web", body, Some("status"), false)
            .await
            .unwrap();
        assert_eq!(written["status"]["replicas"], 1, "{plural}");
        assert_eq!(
            written["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1",
            "{plural}"
        );
        let want_labels = if labels_kept {
            json!({"app": "web", "team": "a"})
        } else {
            json!({"app": "web"})
        };
        assert_eq!(written["metadata"]["labels"], want_labels, "{plural}");
        // the status write's manager owns what it changed outside the reset fields (a real
        // cluster's kube-controller-manager status entry owns the revision annotation)
        let entries = written["metadata"]["managedFields"].as_array().unwrap();
        let status_entry = entries
            .iter()
            .find(|e| e["subresource"] == "status")
            .unwrap_or_else(|| panic!("{plural}: {entries:?}"));
        let owned = &status_entry["fieldsV1"];
        assert!(
            owned["f:metadata"]["f:annotations"]
                .get("f:deployment.kubernetes.io/revision")
                .is_some(),
            "{plural}: {owned}"
        );
        assert_eq!(
            owned["f:metadata"]["f:labels"].get("f:team").is_some(),
            labels_kept,
            "{plural}: {owned}"
        );
        assert!(owned.get("f:spec").is_none(), "{plural}: {owned}");
        assert!(
            owned["f:status"].get("f:replicas").is_some(),
            "{plural}: {owned}"
        );
        assert_eq!(written["spec"]["replicas"], 1, "{plural}");
        assert_eq!(
            written["metadata"]["uid"], made["metadata"]["uid"],
            "{plural}"
        );
        assert_eq!(written["metadata"]["generation"], 1, "{plural}");
        assert_eq!(
            written["metadata"]["creationTimestamp"],
            made["metadata"]["creationTimestamp"]
        );
        // an invalid annotation key through the status is refused as on any update
        let mut bad = written.clone();
        bad["metadata"]["annotations"] = json!({"-x": "y"});
        let e = o
            .update(r, "default", "web", bad, Some("status"), false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 422, "{plural}: {}", e.message);
    }
    let pods = resources::find("", "v1", "pods").unwrap();
    let made = o
        .create(
            pods,
            "default",
            json!({"metadata": {"name": "p"}, "spec": template()["spec"].clone()}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
    let mut body = made.clone();
    body["metadata"]["labels"] = json!({"seen": "yes"});
    body["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node",
        "name": "n", "uid": "0b7c5bd4-0000-4000-8000-000000000000"}]);
    body["spec"]["containers"][0]["image"] = json!("other");
    body["status"]["phase"] = json!("Pending");
    let written = o
        .update(pods, "default", "p", body, Some("status"), false)
        .await
        .unwrap();
    assert_eq!(written["metadata"]["labels"], json!({"seen": "yes"}));
    assert!(
        written["metadata"].get("ownerReferences").is_none(),
        "{written}"
    );
    assert_eq!(written["spec"]["containers"][0]["image"], "busybox:1.36");
    assert_eq!(written["status"]["phase"], "Pending");
}

/// The status updates of the kinds with more to their strategies: a Namespace keeps its name
/// label (`namespaceStrategy.Canonicalize`); a CRD takes the request's labels (1.32's CRD
/// status strategy resets no metadata); a body that is not an object is a 400, not a crash.
#[tokio::test]
async fn namespace_and_crd_status_updates_and_bodies_that_are_not_objects() {
    let o = api().await;
    let namespaces = resources::find("", "v1", "namespaces").unwrap();
    let made = o
        .create(
            namespaces,
            "",
            json!({"metadata": {"name": "team-a"}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
    let mut body = made.clone();
    body["metadata"]["labels"] = json!({"owner": "a"});
    let written = o
        .update(namespaces, "", "team-a", body, Some("status"), false)
        .await
        .unwrap();
    assert_eq!(
        written["metadata"]["labels"],
        json!({"owner": "a", "kubernetes.io/metadata.name": "team-a"})
    );
    let crds = resources::find("apiextensions.k8s.io", "v1", "customresourcedefinitions").unwrap();
    let made = o
        .create(
            crds,
            "",
            json!({"metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
            &User::Admin,
            false,
        )
        .await
        .unwrap();
    let mut body = made.clone();
    body["metadata"]["labels"] = json!({"team": "a"});
    let written = o
        .update(crds, "", "widgets.example.com", body, Some("status"), false)
        .await
        .unwrap();
    assert_eq!(written["metadata"]["labels"], json!({"team": "a"}));
    for (r, ns, name) in [
        (namespaces, "", "team-a"),
        (crds, "", "widgets.example.com"),
    ] {
        for sub in [None, Some("status")] {
            let e = o
                .update(r, ns, name, json!([]), sub, false)
                .await
                .unwrap_err();
            assert_eq!(e.code, 400, "{}", e.message);
        }
    }
}
