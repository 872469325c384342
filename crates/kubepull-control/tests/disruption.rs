//! PodDisruptionBudgets and the `pods/eviction` subresource with the real kubectl against the
//! API server and its controllers: budgets refused with kube-apiserver's messages, the status
//! the disruption controller computes (`kubectl get pdb`'s ALLOWED DISRUPTIONS), evictions
//! allowed and refused (429) by a budget, and `kubectl drain` blocked by a budget and then
//! allowed. The test plays the node: it marks the pods bound to it Running and Ready.

use kubepull_control::start;
use serde_json::{json, Value};

mod common;
use common::{
    admin_send, dump_on_failure, eventually, get_json, https_client_builder, items,
    node_finishes_terminating, node_runs_pods, ok, refused, s, server_config,
};

const NODE_READY: &str =
    r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}"#;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "reg.example/web:v1"}]
"#;

fn budget(name: &str, spec: &str) -> String {
    format!("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n")
}

fn eviction(pod: &str) -> String {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "default"}})
        .to_string()
}

fn evict_path(pod: &str) -> String {
    format!("/api/v1/namespaces/default/pods/{pod}/eviction")
}

fn live_web_pods(kc: &std::path::Path, home: &std::path::Path) -> Vec<Value> {
    items(&get_json(kc, home, &["get", "pods", "-l", "app=web"]))
        .into_iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .collect()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_evictions_and_drain_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        dump_on_failure(kc, home, &["get", "pdb,pods", "-o", "yaml"]);

        // budgets kube-apiserver refuses, with its messages
        refused(kc, home, &["apply", "-f", "-"], Some(&budget("bad", "{minAvailable: 1, maxUnavailable: 1, selector: {matchLabels: {app: web}}}")), &[
            "The PodDisruptionBudget \"bad\" is invalid",
            "spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:(*intstr.IntOrString)(…), Selector:(*v1.LabelSelector)(…), MaxUnavailable:(*intstr.IntOrString)(…), UnhealthyPodEvictionPolicy:(*policy.UnhealthyPodEvictionPolicyType)(nil)}: minAvailable and maxUnavailable cannot be both set",
        ]);
        refused(kc, home, &["apply", "-f", "-"], Some(&budget("bad", "{minAvailable: 150%, selector: {}}")), &[
            "spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
        ]);
        refused(kc, home, &["apply", "-f", "-"], Some(&budget("bad", "{maxUnavailable: -1}")), &[
            "spec.maxUnavailable: Invalid value: -1: must be greater than or equal to 0",
        ]);
        refused(kc, home, &["apply", "-f", "-"], Some(&budget("bad", "{minAvailable: 1, unhealthyPodEvictionPolicy: Sometimes, selector: {matchExpressions: [{key: app, operator: Has}]}}")), &[
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Has\": not a valid selector operator",
            "spec.unhealthyPodEvictionPolicy: Unsupported value: \"Sometimes\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\"",
        ]);
        assert!(items(&get_json(kc, home, &["get", "pdb"])).is_empty());

        // a node running two pods of a Deployment
        ok(kc, home, &["apply", "-f", "-"], Some("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n"));
        ok(kc, home, &["patch", "node", "n1", "--subresource=status", "--type=merge", "-p", NODE_READY], None);
        ok(kc, home, &["apply", "-f", "-"], Some(DEPLOYMENT));
        let pods = eventually("two web pods running and ready on n1", || {
            node_runs_pods(kc, home, "default");
            let p = live_web_pods(kc, home);
            (p.len() == 2 && p.iter().all(|p| ready(p) && s(p, "/spec/nodeName") == "n1")).then_some(p)
        });

        // the budget and the status the controller computes
        ok(kc, home, &["create", "pdb", "p", "--selector=app=web", "--min-available=1"], None);
        let pdb = eventually("the budget allows one disruption", || {
            let b = get_json(kc, home, &["get", "pdb", "p"]);
            (b["status"]["disruptionsAllowed"] == 1 && b["status"]["observedGeneration"] == 1).then_some(b)
        });
        let st = &pdb["status"];
        assert_eq!((st["currentHealthy"].clone(), st["desiredHealthy"].clone(), st["expectedPods"].clone()), (json!(2), json!(1), json!(2)));
        let c = &st["conditions"][0];
        assert_eq!((s(c, "/type"), s(c, "/status"), s(c, "/reason")), ("DisruptionAllowed", "True", "SufficientPods"));
        let out = ok(kc, home, &["get", "pdb"], None);
        let mut lines = out.lines();
        assert!(lines.next().unwrap().contains("ALLOWED DISRUPTIONS"), "{out}");
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(&row[..4], ["p", "1", "N/A", "1"], "{out}");

        // an eviction the budget allows: the pod is marked and deleted, the disruption taken
        let first = s(&pods[0], "/metadata/name").to_string();
        let second = s(&pods[1], "/metadata/name").to_string();
        ok(kc, home, &["create", "--raw", &evict_path(&first), "-f", "-"], Some(&eviction(&first)));
        let evicted = get_json(kc, home, &["get", "pod", &first]);
        assert!(evicted["metadata"].get("deletionTimestamp").is_some(), "{evicted}");
        let cond = evicted["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "DisruptionTarget").cloned().unwrap();
        assert_eq!((s(&cond, "/status"), s(&cond, "/reason"), s(&cond, "/message")), ("True", "EvictionByEvictionAPI", "Eviction API: evicting"));
        eventually("no disruption left while the replacement is not ready", || {
            let b = get_json(kc, home, &["get", "pdb", "p"]);
            (b["status"]["disruptionsAllowed"] == 0 && b["status"]["currentHealthy"] == 1).then_some(())
        });
        // the next one would leave fewer than minAvailable: 429
        refused(kc, home, &["create", "--raw", &evict_path(&second), "-f", "-"], Some(&eviction(&second)), &[
            "Cannot evict pod as it would violate the pod's disruption budget.",
        ]);
        assert!(get_json(kc, home, &["get", "pod", &second])["metadata"].get("deletionTimestamp").is_none());

        // drain: cordons the node, retries the eviction the budget refuses, gives up
        node_finishes_terminating(kc, home, "default");
        let out = refused(kc, home, &["drain", "n1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5s"], None, &[
            "node/n1 cordoned",
            "Cannot evict pod as it would violate the pod's disruption budget",
            "will retry after 5s",
        ]);
        assert!(out.contains(&second), "{out}");
        assert!(get_json(kc, home, &["get", "node", "n1"])["spec"]["unschedulable"] == true);
        assert!(get_json(kc, home, &["get", "pod", &second])["metadata"].get("deletionTimestamp").is_none());

        // a budget relaxed (policy/v1 allows updating the spec): the drain goes through
        ok(kc, home, &["patch", "pdb", "p", "--type=merge", "-p", r#"{"spec":{"minAvailable":0}}"#], None);
        eventually("the new generation observed, one disruption allowed", || {
            let b = get_json(kc, home, &["get", "pdb", "p"]);
            (b["status"]["observedGeneration"] == 2 && b["status"]["disruptionsAllowed"] == 1).then_some(())
        });
        let out = ok(kc, home, &["drain", "n1", "--ignore-daemonsets", "--delete-emptydir-data", "--grace-period=0", "--timeout=30s"], None);
        assert!(out.contains(&format!("evicting pod default/{second}")), "{out}");
        assert!(out.contains("node/n1 drained"), "{out}");
        let left: Vec<Value> = items(&get_json(kc, home, &["get", "pods", "-l", "app=web"]))
            .into_iter()
            .filter(|p| s(p, "/spec/nodeName") == "n1")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The eviction subresource's answers, over HTTP without the controllers (the budgets' status
/// written by hand): 429 with the `DisruptionBudget` cause, an allowed eviction taking one
/// disruption and recording the pod, 500 for a pod of two budgets, and a pod of none deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_answers_over_http() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = https_client_builder(&server).build().unwrap();
    let base = format!("{}/api/v1/namespaces/default/pods", server.url());
    let pdbs = format!(
        "{}/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        server.url()
    );
    let send = |m: reqwest::Method, url: String, ct: &'static str, body: Value| {
        let (http, server) = (&http, &server);
        async move { admin_send(http, server, m, url, ct, &body).await }
    };
    let json_ct = "application/json";
    let merge = "application/merge-patch+json";
    for (name, app) in [("a", "web"), ("b", "web"), ("solo", "solo")] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let (code, v) = send(reqwest::Method::POST, base.clone(), json_ct, pod).await;
        assert_eq!(code, 201, "{v}");
        let running = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let (code, v) = send(
            reqwest::Method::PATCH,
            format!("{base}/{name}/status"),
            merge,
            running,
        )
        .await;
        assert_eq!(code, 200, "{v}");
    }
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let (code, v) = send(reqwest::Method::POST, pdbs.clone(), json_ct, pdb).await;
    assert_eq!(code, 201, "{v}");
    let set_status = |allowed: i64| {
        json!({"status": {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": 2,
            "desiredHealthy": 1, "expectedPods": 2}})
    };
    let (code, v) = send(
        reqwest::Method::PATCH,
        format!("{pdbs}/p/status"),
        merge,
        set_status(0),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let body = |pod: &str| json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}});

    // no disruption allowed: 429 naming the budget
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/a/eviction"),
        json_ct,
        body("a"),
    )
    .await;
    assert_eq!(code, 429, "{v}");
    assert_eq!(v["reason"], "TooManyRequests");
    assert_eq!(
        v["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(v["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        v["details"]["causes"][0]["message"],
        "The disruption budget p needs 1 healthy pods and has 2 currently"
    );
    // the name of the body must be the pod's
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/a/eviction"),
        json_ct,
        body("b"),
    )
    .await;
    assert_eq!(
        (code, v["message"].clone()),
        (
            400,
            json!("name in URL does not match name in Eviction object")
        )
    );

    // one allowed: taken, the pod recorded, the pod deleted (not bound: at once)
    let (code, v) = send(
        reqwest::Method::PATCH,
        format!("{pdbs}/p/status"),
        merge,
        set_status(1),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/a/eviction"),
        json_ct,
        body("a"),
    )
    .await;
    assert_eq!((code, v["status"].clone()), (201, json!("Success")), "{v}");
    let (code, _) = send(
        reqwest::Method::GET,
        format!("{base}/a"),
        json_ct,
        Value::Null,
    )
    .await;
    assert_eq!(code, 404);
    let (_, p) = send(
        reqwest::Method::GET,
        format!("{pdbs}/p"),
        json_ct,
        Value::Null,
    )
    .await;
    assert_eq!(p["status"]["disruptionsAllowed"], 0);
    assert!(p["status"]["disruptedPods"]["a"].is_string(), "{p}");
    let c = &p["status"]["conditions"][0];
    assert_eq!(
        (c["status"].clone(), c["reason"].clone()),
        (json!("False"), json!("InsufficientPods"))
    );

    // a pod two budgets cover: 500, not evicted
    for name in ["s1", "s2"] {
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "solo"}}}});
        let (code, v) = send(reqwest::Method::POST, pdbs.clone(), json_ct, pdb).await;
        assert_eq!(code, 201, "{v}");
    }
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/solo/eviction"),
        json_ct,
        body("solo"),
    )
    .await;
    assert_eq!(code, 500, "{v}");
    assert_eq!(v["message"], "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.");
    let (code, _) = send(
        reqwest::Method::GET,
        format!("{base}/solo"),
        json_ct,
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    // none: deleted; a pod that is not there: 404
    let (code, _) = send(
        reqwest::Method::DELETE,
        format!("{pdbs}/s1"),
        json_ct,
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = send(
        reqwest::Method::DELETE,
        format!("{pdbs}/s2"),
        json_ct,
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    // a dry run (the Eviction's own) evicts nothing
    let mut dry = body("solo");
    dry["deleteOptions"] = json!({"dryRun": ["All"]});
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/solo/eviction"),
        json_ct,
        dry,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let (code, pod) = send(
        reqwest::Method::GET,
        format!("{base}/solo"),
        json_ct,
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert!(pod["metadata"].get("deletionTimestamp").is_none(), "{pod}");
    assert!(
        pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "DisruptionTarget"),
        "{pod}"
    );
    // the Eviction's preconditions are the delete's (the budget-free path)
    let mut wrong_uid = body("solo");
    wrong_uid["deleteOptions"] = json!({"preconditions": {"uid": "not-the-pods"}});
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/solo/eviction"),
        json_ct,
        wrong_uid,
    )
    .await;
    assert_eq!(code, 409, "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("Operation cannot be fulfilled on Pod \"solo\": the UID in the precondition (not-the-pods) does not match the UID in record ("), "{v}");
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/solo/eviction"),
        json_ct,
        body("solo"),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let (code, v) = send(
        reqwest::Method::POST,
        format!("{base}/solo/eviction"),
        json_ct,
        body("solo"),
    )
    .await;
    assert_eq!(
        (code, v["message"].clone()),
        (404, json!("pods \"solo\" not found"))
    );
    server.shutdown().await;
}
