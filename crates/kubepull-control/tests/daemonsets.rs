//! DaemonSets with the real kubectl against the API server and its controllers: a pod on each
//! of two Ready nodes (made by the DaemonSet controller with a node affinity, bound by the
//! scheduler), the status counts, a rolling update after a template change that
//! `kubectl rollout status` follows (never two live pods on a node, never more than
//! `maxUnavailable` nodes without a ready one), the revisions `kubectl rollout history` lists,
//! the status of a DaemonSet whose pods are refused, and an invalid DaemonSet refused naming
//! the field. The test plays the nodes: it marks the pods
//! bound to them as running and ready, and removes terminating ones.

use kubepull_control::start;

mod common;
use common::{
    dump_on_failure, eventually, get_json, items, kubectl, node_finishes_terminating,
    node_runs_pods, ok, refused, s, server_config,
};

const NODE_READY: &str =
    r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}"#;

const DS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: c, image: "reg.example/agent:v1"}]
"#;

const NO_ACCOUNT_DS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: noaccount, namespace: default}
spec:
  selector: {matchLabels: {app: noaccount}}
  template:
    metadata: {labels: {app: noaccount}}
    spec:
      serviceAccountName: missing
      containers: [{name: c, image: "reg.example/agent:v1"}]
"#;

const BAD_DS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bad, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: other}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "reg.example/agent:v1"}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_pods_status_rollout_and_history_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        for n in ["n1", "n2"] {
            let node = format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n");
            ok(kc, home, &["apply", "-f", "-"], Some(&node));
            ok(
                kc,
                home,
                &["patch", "node", n, "--subresource=status", "--type=merge", "-p", NODE_READY],
                None,
            );
        }
        dump_on_failure(kc, home, &["get", "ds,pods,controllerrevisions", "-o", "yaml"]);
        ok(kc, home, &["apply", "-f", "-"], Some(DS));
        // a pod for each node, made with the node's affinity and bound to it by the scheduler
        let on_nodes = || {
            let pods = items(&get_json(kc, home, &["get", "pods", "-l", "app=agent"]));
            let mut nodes: Vec<String> = pods
                .iter()
                .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
                .map(|p| s(p, "/spec/nodeName").to_string())
                .collect();
            nodes.sort();
            (pods, nodes)
        };
        let pods = eventually("a pod bound on each node", || {
            let (pods, nodes) = on_nodes();
            (nodes == ["n1", "n2"]).then_some(pods)
        });
        for p in &pods {
            let term = &p["spec"]["affinity"]["nodeAffinity"]
                ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0];
            assert_eq!(term["matchFields"][0]["key"], "metadata.name");
            assert_eq!(term["matchFields"][0]["values"][0], p["spec"]["nodeName"]);
            assert!(!s(p, "/metadata/labels/controller-revision-hash").is_empty());
            assert_eq!(s(p, "/metadata/ownerReferences/0/kind"), "DaemonSet");
        }
        // the status counts follow the pods' readiness
        let st = eventually("all scheduled, ready and available", || {
            node_runs_pods(kc, home, "default");
            let ds = get_json(kc, home, &["get", "ds", "x"]);
            let st = ds["status"].clone();
            (st["numberAvailable"] == 2).then_some(st)
        });
        assert_eq!(st["desiredNumberScheduled"], 2);
        assert_eq!(st["currentNumberScheduled"], 2);
        assert_eq!(st["numberReady"], 2);
        assert_eq!(st["updatedNumberScheduled"], 2);
        assert_eq!(st["numberMisscheduled"], 0);
        let out = ok(kc, home, &["get", "ds", "x"], None);
        assert!(out.lines().nth(1).unwrap().starts_with("x "), "{out}");
        // a template change rolls out node by node: `kubectl rollout status` waits for it
        // while the nodes play along
        ok(
            kc,
            home,
            &["set", "image", "ds/x", "c=reg.example/agent:v2"],
            None,
        );
        let out = std::thread::scope(|sc| {
            let status = sc.spawn(|| {
                kubectl(
                    kc,
                    home,
                    &["rollout", "status", "ds/x", "--timeout=60s"],
                    None,
                )
            });
            eventually("the new template runs on both nodes", || {
                node_finishes_terminating(kc, home, "default");
                node_runs_pods(kc, home, "default");
                let pods = items(&get_json(kc, home, &["get", "pods", "-l", "app=agent"]));
                let live: Vec<&serde_json::Value> = pods
                    .iter()
                    .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
                    .collect();
                // the node a live pod is on or is made for (its node affinity)
                let target = |p: &serde_json::Value| {
                    let bound = s(p, "/spec/nodeName");
                    if bound.is_empty() {
                        s(p, "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0").to_string()
                    } else {
                        bound.to_string()
                    }
                };
                let ready = |p: &serde_json::Value| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                };
                for n in ["n1", "n2"] {
                    let on = live.iter().filter(|p| target(p) == n).count();
                    assert!(on <= 1, "two live pods on {n}: {pods:#?}");
                }
                // maxUnavailable 1: at most one node without a ready pod at any time
                let unready = ["n1", "n2"]
                    .iter()
                    .filter(|n| !live.iter().any(|p| target(p) == **n && ready(p)))
                    .count();
                assert!(unready <= 1, "both nodes unavailable: {pods:#?}");
                let updated = live
                    .iter()
                    .filter(|p| s(p, "/spec/containers/0/image") == "reg.example/agent:v2")
                    .count();
                let st = get_json(kc, home, &["get", "ds", "x"])["status"].clone();
                (updated == 2
                    && live.len() == 2
                    && pods.len() == 2
                    && st["updatedNumberScheduled"] == 2
                    && st["numberAvailable"] == 2)
                    .then_some(())
            });
            status.join().unwrap()
        });
        assert!(out.0, "{}", out.1);
        assert!(out.1.contains("Waiting for daemon set"), "{}", out.1);
        assert!(
            out.1.contains("daemon set \"x\" successfully rolled out"),
            "{}",
            out.1
        );
        let out = ok(kc, home, &["rollout", "history", "ds/x"], None);
        let revisions: Vec<&str> = out
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(revisions, ["1", "2"], "{out}");
        let revs = items(&get_json(kc, home, &["get", "controllerrevisions"]));
        assert_eq!(revs.len(), 2);
        assert!(revs
            .iter()
            .all(|r| s(r, "/metadata/ownerReferences/0/name") == "x"));
        // a pod that cannot be created (its service account does not exist) still leaves
        // the status written (syncDaemonSet writes it after a failed pod write)
        ok(kc, home, &["apply", "-f", "-"], Some(NO_ACCOUNT_DS));
        let st = eventually("the status of a DaemonSet whose pods are refused", || {
            let st = get_json(kc, home, &["get", "ds", "noaccount"])["status"].clone();
            (st["desiredNumberScheduled"] == 2).then_some(st)
        });
        assert_eq!(st["currentNumberScheduled"], 0);
        assert_eq!(st["numberUnavailable"], 2);
        let events = ok(kc, home, &["get", "events", "--field-selector=reason=FailedCreate"], None);
        assert!(events.contains("error looking up service account default/missing"), "{events}");
        // an invalid DaemonSet is refused (422) naming the fields
        let (good, out) = kubectl(kc, home, &["apply", "-f", "-"], Some(BAD_DS));
        assert!(!good);
        assert!(out.contains("The DaemonSet \"bad\" is invalid"), "{out}");
        refused(
            kc,
            home,
            &["create", "-f", "-"],
            Some(BAD_DS),
            &[
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        );
    })
    .await
    .unwrap();
}
