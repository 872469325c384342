//! Deployments, ReplicaSets, the scheduler, garbage collection and namespace deletion with the
//! real kubectl against the API server and its controllers: a rollout with maxSurge and
//! maxUnavailable, revision history and `rollout undo`, scaling, the three deletion
//! propagation policies, and a terminating namespace. The test plays the node: it marks the
//! pods bound to its Node as running and ready.

use std::path::Path;

use kubepull_control::start;

mod common;
use common::{
    dump_on_failure, eventually, get_json, items, kubectl, node_finishes_terminating,
    node_runs_pods, ok, refused, s, server_config,
};

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
const NODE_READY: &str =
    r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}"#;

fn deployment(ns: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  replicas: {replicas}\n  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: {image}}}]\n"
    )
}

/// Pods of the namespace that are not terminating: (name, image, node).
fn live_pods(kc: &Path, home: &Path, ns: &str) -> Vec<(String, String, String)> {
    items(&get_json(kc, home, &["get", "pods", "-n", ns]))
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .map(|p| {
            (
                s(p, "/metadata/name").to_string(),
                s(p, "/spec/containers/0/image").to_string(),
                s(p, "/spec/nodeName").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_roll_scale_and_delete_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        dump_on_failure(
            kc,
            home,
            &["get", "deploy,rs,pods", "-n", "r", "-o", "yaml"],
        );
        ok(kc, home, &["apply", "-f", "-"], Some(NODE));
        ok(
            kc,
            home,
            &[
                "patch",
                "node",
                "n1",
                "--subresource=status",
                "--type=merge",
                "-p",
                NODE_READY,
            ],
            None,
        );
        ok(kc, home, &["create", "namespace", "r"], None);

        // three pods from the template, each bound to the node
        ok(
            kc,
            home,
            &["apply", "-f", "-"],
            Some(&deployment("r", "reg.example/app:v1", 3)),
        );
        let pods = eventually("3 scheduled pods", || {
            let p = live_pods(kc, home, "r");
            (p.len() == 3 && p.iter().all(|(_, _, n)| n == "n1")).then_some(p)
        });
        // the scheduler records the binding as the PodScheduled condition
        eventually("PodScheduled=True on the 3 pods", || {
            let all = items(&get_json(kc, home, &["get", "pods", "-n", "r"]));
            all.iter()
                .all(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
                    })
                })
                .then_some(())
        });
        let rs1 = get_json(kc, home, &["get", "rs", "-n", "r"]);
        let rs1 = &items(&rs1)[0];
        let hash = s(rs1, "/metadata/labels/pod-template-hash").to_string();
        assert_eq!(s(rs1, "/metadata/name"), format!("web-{hash}"));
        assert_eq!(
            s(
                rs1,
                "/metadata/annotations/deployment.kubernetes.io~1revision"
            ),
            "1"
        );
        for (name, _, _) in &pods {
            assert!(name.starts_with(&format!("web-{hash}-")), "{name}");
        }
        let out = ok(kc, home, &["describe", "rs", "-n", "r"], None);
        assert!(
            out.contains("SuccessfulCreate") && out.contains("Created pod: web-"),
            "{out}"
        );
        eventually("the deployment available", || {
            node_runs_pods(kc, home, "r");
            let d = get_json(kc, home, &["get", "deploy", "web", "-n", "r"]);
            (d["status"]["availableReplicas"] == 3 && d["status"]["updatedReplicas"] == 3)
                .then_some(())
        });
        let out = ok(
            kc,
            home,
            &[
                "rollout",
                "status",
                "deployment/web",
                "-n",
                "r",
                "--timeout=20s",
            ],
            None,
        );
        assert!(out.contains("successfully rolled out"), "{out}");

        // a rolling update with maxSurge 1, maxUnavailable 0: never fewer than 3 ready pods
        ok(
            kc,
            home,
            &[
                "set",
                "image",
                "deployment/web",
                "-n",
                "r",
                "c=reg.example/app:v2",
            ],
            None,
        );
        eventually("all pods on v2", || {
            node_runs_pods(kc, home, "r");
            let pods = live_pods(kc, home, "r");
            assert!(pods.len() <= 4, "more than replicas + maxSurge: {pods:?}");
            let d = get_json(kc, home, &["get", "deploy", "web", "-n", "r"]);
            let done = d["status"]["updatedReplicas"] == 3
                && d["status"]["availableReplicas"] == 3
                && d["status"]["replicas"] == 3;
            node_finishes_terminating(kc, home, "r");
            (done && pods.iter().all(|(_, img, _)| img.ends_with(":v2"))).then_some(())
        });
        let out = ok(
            kc,
            home,
            &["rollout", "history", "deployment/web", "-n", "r"],
            None,
        );
        assert!(out.contains('1') && out.contains('2'), "{out}");
        // the Deployment carries its new ReplicaSet's revision (`SetDeploymentRevision`)
        let d = get_json(kc, home, &["get", "deploy", "web", "-n", "r"]);
        assert_eq!(
            s(
                &d,
                "/metadata/annotations/deployment.kubernetes.io~1revision"
            ),
            "2",
            "{d}"
        );
        let out = ok(
            kc,
            home,
            &["describe", "deployment", "web", "-n", "r"],
            None,
        );
        assert!(
            out.contains("ScalingReplicaSet") && out.contains("Scaled up replica set web-"),
            "{out}"
        );

        // rollout undo: the first ReplicaSet comes back as revision 3
        ok(
            kc,
            home,
            &["rollout", "undo", "deployment/web", "-n", "r"],
            None,
        );
        eventually("back on v1", || {
            node_runs_pods(kc, home, "r");
            node_finishes_terminating(kc, home, "r");
            let rs = get_json(
                kc,
                home,
                &["get", "rs", format!("web-{hash}").as_str(), "-n", "r"],
            );
            let pods = live_pods(kc, home, "r");
            let d = get_json(kc, home, &["get", "deploy", "web", "-n", "r"]);
            (s(
                &rs,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            ) == "3"
                && s(
                    &d,
                    "/metadata/annotations/deployment.kubernetes.io~1revision",
                ) == "3"
                && pods.len() == 3
                && pods.iter().all(|(_, img, _)| img.ends_with(":v1")))
            .then_some(())
        });

        // scale
        ok(
            kc,
            home,
            &["scale", "deployment/web", "-n", "r", "--replicas=5"],
            None,
        );
        eventually("5 pods", || {
            (live_pods(kc, home, "r").len() == 5).then_some(())
        });
        ok(
            kc,
            home,
            &["scale", "deployment/web", "-n", "r", "--replicas=2"],
            None,
        );
        eventually("2 pods", || {
            node_finishes_terminating(kc, home, "r");
            (live_pods(kc, home, "r").len() == 2).then_some(())
        });

        // orphan: the ReplicaSets stay, without their owner
        ok(
            kc,
            home,
            &["delete", "deployment", "web", "-n", "r", "--cascade=orphan"],
            None,
        );
        let rss = eventually("orphaned replica sets", || {
            let rss = items(&get_json(kc, home, &["get", "rs", "-n", "r"]));
            (!rss.is_empty()
                && rss.iter().all(|r| {
                    r["metadata"]
                        .get("ownerReferences")
                        .is_none_or(|o| o.as_array().is_some_and(|a| a.is_empty()))
                }))
            .then_some(rss)
        });
        assert_eq!(rss.len(), 2, "{rss:?}");
        let (good, _) = kubectl(kc, home, &["get", "deployment", "web", "-n", "r"], None);
        assert!(!good, "the orphaning owner is gone");
        assert_eq!(live_pods(kc, home, "r").len(), 2);

        // background: deleting a ReplicaSet takes its pods
        for r in &rss {
            ok(
                kc,
                home,
                &["delete", "rs", s(r, "/metadata/name"), "-n", "r"],
                None,
            );
        }
        eventually("pods collected", || {
            node_finishes_terminating(kc, home, "r");
            live_pods(kc, home, "r").is_empty().then_some(())
        });

        // foreground: the Deployment stays until its ReplicaSet and pods are gone
        ok(
            kc,
            home,
            &["apply", "-f", "-"],
            Some(&deployment("r", "reg.example/app:v3", 2)),
        );
        eventually("2 pods", || {
            (live_pods(kc, home, "r").len() == 2).then_some(())
        });
        ok(
            kc,
            home,
            &[
                "delete",
                "deployment",
                "web",
                "-n",
                "r",
                "--cascade=foreground",
                "--wait=false",
            ],
            None,
        );
        let dep = get_json(kc, home, &["get", "deployment", "web", "-n", "r"]);
        assert!(dep["metadata"]["deletionTimestamp"].is_string(), "{dep}");
        eventually("foreground deletion done", || {
            node_finishes_terminating(kc, home, "r");
            let (gone, _) = kubectl(kc, home, &["get", "deployment", "web", "-n", "r"], None);
            let rss = items(&get_json(kc, home, &["get", "rs", "-n", "r"]));
            (!gone && rss.is_empty() && live_pods(kc, home, "r").is_empty()).then_some(())
        });

        // a namespace that terminates takes its content
        ok(
            kc,
            home,
            &["apply", "-f", "-"],
            Some(&deployment("r", "reg.example/app:v4", 1)),
        );
        eventually("1 pod", || {
            (live_pods(kc, home, "r").len() == 1).then_some(())
        });
        ok(
            kc,
            home,
            &["delete", "namespace", "r", "--wait=false"],
            None,
        );
        eventually("namespace gone", || {
            node_finishes_terminating(kc, home, "r");
            let (there, _) = kubectl(kc, home, &["get", "namespace", "r"], None);
            (!there).then_some(())
        });
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// `podStrategy.PrepareForCreate` as kubectl shows it: `status.qosClass` from the containers'
/// and init containers' cpu and memory (requests defaulting from limits, compared as numbers),
/// immutable afterwards (`ValidatePodStatusUpdate`; a status without one keeps it), and a pod
/// with scheduling gates created `PodScheduled=False/SchedulingGated`, which the scheduler
/// replaces with `PodScheduled=True` when the gates are gone and it binds the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_qos_class_and_scheduling_gates_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        let pod = |name: &str, extra: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}")
        };
        let qos = |name: &str| {
            ok(kc, home, &["get", "pod", name, "-o", "jsonpath={.status.qosClass}"], None)
        };
        let guaranteed = "  initContainers: [{name: i, image: busybox, resources: {limits: {cpu: 500m, memory: 64Mi}}}]\n  containers: [{name: c, image: busybox, resources: {requests: {cpu: '1', memory: 128Mi}, limits: {cpu: 1000m, memory: '134217728'}}}]\n";
        let burstable = "  containers:\n  - {name: c, image: busybox, resources: {limits: {cpu: '1', memory: 64Mi}}}\n  - {name: d, image: busybox}\n";
        let best_effort = "  containers: [{name: c, image: busybox, resources: {requests: {ephemeral-storage: 1Gi}}}]\n";
        for (name, extra, want) in [
            ("g", guaranteed, "Guaranteed"),
            ("b", burstable, "Burstable"),
            ("e", best_effort, "BestEffort"),
        ] {
            ok(kc, home, &["create", "-f", "-"], Some(&pod(name, extra)));
            assert_eq!(qos(name), want, "{name}");
        }
        // the class is immutable; a status without one keeps the stored one
        refused(
            kc,
            home,
            &["patch", "pod", "g", "--subresource=status", "--type=merge", "-p", r#"{"status":{"qosClass":"BestEffort"}}"#],
            None,
            &["The Pod \"g\" is invalid: status.qosClass: Invalid value: \"BestEffort\": field is immutable"],
        );
        let mut g = get_json(kc, home, &["get", "pod", "g"]);
        g["status"].as_object_mut().unwrap().remove("qosClass");
        g["status"]["phase"] = serde_json::json!("Running");
        ok(kc, home, &["replace", "--subresource=status", "-f", "-"], Some(&g.to_string()));
        assert_eq!(qos("g"), "Guaranteed");
        let g = get_json(kc, home, &["get", "pod", "g"]);
        assert_eq!(s(&g, "/status/phase"), "Running");

        // a gated pod: PodScheduled=False/SchedulingGated until its gates are removed
        ok(kc, home, &["apply", "-f", "-"], Some(NODE));
        ok(kc, home, &["patch", "node", "n1", "--subresource=status", "--type=merge", "-p", NODE_READY], None);
        let gated = "  schedulingGates: [{name: example.com/wait}]\n  containers: [{name: c, image: busybox}]\n";
        ok(kc, home, &["create", "-f", "-"], Some(&pod("w", gated)));
        let conditions = |p: &serde_json::Value| p["status"]["conditions"].clone();
        let w = get_json(kc, home, &["get", "pod", "w"]);
        assert_eq!(
            conditions(&w),
            serde_json::json!([{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates"}]),
            "{w:#}"
        );
        assert_eq!(s(&w, "/spec/nodeName"), "");
        ok(kc, home, &["patch", "pod", "w", "--type=json", "-p", r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#], None);
        let w = eventually("w bound", || {
            let w = get_json(kc, home, &["get", "pod", "w"]);
            let scheduled = conditions(&w)
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "True"));
            (s(&w, "/spec/nodeName") == "n1" && scheduled).then_some(w)
        });
        let c = conditions(&w);
        let c: Vec<_> = c.as_array().unwrap().iter().filter(|c| c["type"] == "PodScheduled").collect();
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].get("reason").is_none() && c[0].get("message").is_none(), "{c:?}");
        assert!(c[0]["lastTransitionTime"].is_string(), "{c:?}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The defaults kube-apiserver gives a Pod and a workload's pod template as it decodes them
/// (`SetObjectDefaults_Pod`, `SetObjectDefaults_PodTemplate`), a new Pod's status as
/// `PrepareForCreate` sets it whatever the body says, and a Pod update comparing quantities
/// by value (`apiequality.Semantic.DeepEqual`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_and_template_defaults_new_status_and_quantities_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        let spec = "initContainers: [{name: i, image: busybox:1.36, resources: {limits: {cpu: 500m, memory: 64Mi}}}]
containers:
- name: c
  image: busybox:1.36
  resources: {limits: {cpu: '1', memory: 128Mi}}
  ports: [{containerPort: 8080}]
  readinessProbe: {httpGet: {port: 8080}}
  env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
  volumeMounts: [{name: s, mountPath: /s}]
volumes: [{name: s, secret: {secretName: s}}, {name: scratch}]
";
        let indent = |n: usize| {
            spec.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect::<String>()
        };
        // a Pod whose body claims a running status
        let pod = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: lim}}\nspec:\n{}status: {{phase: Running, podIP: 10.244.0.9, conditions: [{{type: Ready, status: 'True'}}]}}\n", indent(2));
        ok(kc, home, &["create", "-f", "-"], Some(&pod));
        let p = get_json(kc, home, &["get", "pod", "lim"]);
        // requests default to limits (SetDefaults_Pod), so the pod is Guaranteed
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["resources"]["requests"], serde_json::json!({"cpu": "1", "memory": "128Mi"}), "{p:#}");
        assert_eq!(p["spec"]["initContainers"][0]["resources"]["requests"], serde_json::json!({"cpu": "500m", "memory": "64Mi"}));
        assert_eq!(p["status"], serde_json::json!({"phase": "Pending", "qosClass": "Guaranteed"}), "{p:#}");
        assert_eq!(p["spec"]["enableServiceLinks"], true);
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["readinessProbe"], serde_json::json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}));
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(p["spec"]["volumes"][0]["secret"]["defaultMode"], 420);
        assert_eq!(p["spec"]["volumes"][1]["emptyDir"], serde_json::json!({}));

        // an update that writes a quantity another way changes nothing; another value is refused
        let mut same = p.clone();
        same["spec"]["containers"][0]["resources"]["limits"]["cpu"] = serde_json::json!("1000m");
        same["spec"]["containers"][0]["resources"]["limits"]["memory"] = serde_json::json!("134217728");
        ok(kc, home, &["replace", "-f", "-"], Some(&same.to_string()));
        let mut other = get_json(kc, home, &["get", "pod", "lim"]);
        other["spec"]["containers"][0]["resources"]["limits"]["cpu"] = serde_json::json!("2");
        refused(kc, home, &["replace", "-f", "-"], Some(&other.to_string()),
            &["The Pod \"lim\" is invalid: spec: Forbidden: pod updates may not change fields other than"]);

        // a Deployment's template gets the pod spec's defaults, not the Pod-only ones
        let deploy = format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n{}", indent(6));
        ok(kc, home, &["create", "-f", "-"], Some(&deploy));
        let t = get_json(kc, home, &["get", "deployment", "web"])["spec"]["template"]["spec"].clone();
        let c = &t["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{t:#}");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(t["volumes"][0]["secret"]["defaultMode"], 420);
        assert_eq!(t["volumes"][1]["emptyDir"], serde_json::json!({}));
        assert_eq!(t["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
        assert!(c["resources"].get("requests").is_none(), "{t:#}");
        assert!(t.get("enableServiceLinks").is_none(), "{t:#}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}
