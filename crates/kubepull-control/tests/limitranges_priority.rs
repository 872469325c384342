//! LimitRanges and PriorityClasses with the real kubectl against the API server: the system
//! classes, a global default class and the pods it gives a priority, the Priority admission's
//! refusals, a LimitRange's defaults and bounds on pods and claims, and invalid objects refused
//! with kube-apiserver's messages.

use kubepull_control::start;

mod common;
use common::{get_json, items, ok, refused, s, server_config};

fn pod(name: &str, extra: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers: [{{name: c, image: reg.example/app:v1}}]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_classes_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        // the system classes exist from the start and stay
        let pcs = get_json(kc, home, &["get", "pc"]);
        let mut names: Vec<(String, i64)> = items(&pcs)
            .iter()
            .map(|p| (s(p, "/metadata/name").to_string(), p["value"].as_i64().unwrap()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("system-cluster-critical".to_string(), 2_000_000_000),
                ("system-node-critical".to_string(), 2_000_001_000),
            ]
        );
        let table = ok(kc, home, &["get", "priorityclasses"], None);
        assert!(table.contains("system-node-critical"), "{table}");
        refused(
            kc,
            home,
            &["delete", "pc", "system-node-critical"],
            None,
            &["priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a system priority class and cannot be deleted"],
        );

        // invalid classes
        refused(
            kc,
            home,
            &["create", "priorityclass", "toohigh", "--value=1000000001"],
            None,
            &["PriorityClass.scheduling.k8s.io \"toohigh\" is invalid: value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
        );
        refused(
            kc,
            home,
            &["create", "priorityclass", "system-mine", "--value=1"],
            None,
            &["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"],
        );

        // one global default
        ok(kc, home, &["create", "priorityclass", "high", "--value=1000", "--global-default", "--description=first"], None);
        let high = get_json(kc, home, &["get", "pc", "high"]);
        assert_eq!(s(&high, "/preemptionPolicy"), "PreemptLowerPriority");
        assert_eq!(high["globalDefault"], true);
        refused(
            kc,
            home,
            &["create", "priorityclass", "second", "--value=5", "--global-default"],
            None,
            &["priorityclasses.scheduling.k8s.io \"second\" is forbidden: PriorityClass high is already marked as default. Only one default can exist"],
        );
        refused(
            kc,
            home,
            &["patch", "pc", "high", "--type=merge", "-p", "{\"value\": 2000}"],
            None,
            &["The PriorityClass \"high\" is invalid: value: Forbidden: may not be changed in an update."],
        );
        ok(kc, home, &["create", "priorityclass", "never", "--value=10", "--preemption-policy=Never"], None);
        // an update may not make a second default; the default itself may change
        refused(
            kc,
            home,
            &["patch", "pc", "never", "--type=merge", "-p", "{\"globalDefault\": true}"],
            None,
            &["priorityclasses.scheduling.k8s.io \"never\" is forbidden: PriorityClass high is already marked as default. Only one default can exist"],
        );
        ok(kc, home, &["patch", "pc", "high", "--type=merge", "-p", "{\"description\": \"the default\"}"], None);

        // pods: the default class, a named class, an unknown one, a disagreeing priority
        ok(kc, home, &["apply", "-f", "-"], Some(&pod("plain", "")));
        let p = get_json(kc, home, &["get", "pod", "plain"]);
        assert_eq!(p["spec"]["priority"], 1000);
        assert_eq!(s(&p, "/spec/priorityClassName"), "high");
        assert_eq!(s(&p, "/spec/preemptionPolicy"), "PreemptLowerPriority");
        ok(kc, home, &["apply", "-f", "-"], Some(&pod("calm", "  priorityClassName: never\n")));
        let p = get_json(kc, home, &["get", "pod", "calm"]);
        assert_eq!(p["spec"]["priority"], 10);
        assert_eq!(s(&p, "/spec/preemptionPolicy"), "Never");
        refused(
            kc,
            home,
            &["apply", "-f", "-"],
            Some(&pod("lost", "  priorityClassName: foo\n")),
            &["pods \"lost\" is forbidden: no PriorityClass with name foo was found"],
        );
        refused(
            kc,
            home,
            &["apply", "-f", "-"],
            Some(&pod("pushy", "  priorityClassName: high\n  priority: 5\n")),
            &["pods \"pushy\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"],
        );
        // a critical pod in kube-system
        ok(
            kc,
            home,
            &["apply", "-n", "kube-system", "-f", "-"],
            Some(&pod("critical", "  priorityClassName: system-node-critical\n")),
        );
        let p = get_json(kc, home, &["get", "pod", "-n", "kube-system", "critical"]);
        assert_eq!(p["spec"]["priority"], 2_000_001_000);

        // without a default, a pod gets priority 0
        ok(kc, home, &["delete", "pc", "high"], None);
        ok(kc, home, &["apply", "-f", "-"], Some(&pod("zero", "")));
        let p = get_json(kc, home, &["get", "pod", "zero"]);
        assert_eq!(p["spec"]["priority"], 0);
        assert!(p["spec"].get("priorityClassName").is_none(), "{p}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

const LIMITS: &str = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    max: {cpu: 500m}\n    default: {cpu: 300m, memory: 256Mi}\n    defaultRequest: {cpu: 100m, memory: 128Mi}\n  - type: Pod\n    max: {memory: 1Gi}\n  - type: PersistentVolumeClaim\n    max: {storage: 1Gi}\n";

fn claim(name: &str, size: &str) -> String {
    format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        ok(kc, home, &["create", "namespace", "lr"], None);
        // a pod before any LimitRange keeps its resources as given
        ok(kc, home, &["apply", "-n", "lr", "-f", "-"], Some(&pod("before", "")));
        let p = get_json(kc, home, &["get", "pod", "-n", "lr", "before"]);
        assert!(p["metadata"]["annotations"].get("kubernetes.io/limit-ranger").is_none(), "{p}");

        // invalid ranges
        let bad = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: bad}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m}\n    defaultRequest: {cpu: 800m}\n  - type: Pod\n    default: {cpu: 1}\n";
        refused(
            kc,
            home,
            &["apply", "-n", "lr", "-f", "-"],
            Some(bad),
            &[
                "The LimitRange \"bad\" is invalid",
                "spec.limits[0].defaultRequest[cpu]: Invalid value: resource.Quantity{i:resource.int64Amount{value:800, scale:-3}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"800m\", Format:\"DecimalSI\"}: default request value 800m is greater than default limit value 500m",
                "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
            ],
        );
        let no_storage = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: bad}\nspec:\n  limits:\n  - type: PersistentVolumeClaim\n    min: {cpu: 1}\n";
        refused(
            kc,
            home,
            &["apply", "-n", "lr", "-f", "-"],
            Some(no_storage),
            &["spec.limits[0].limits: Required value: either minimum or maximum storage value is required, but neither was provided"],
        );

        ok(kc, home, &["apply", "-n", "lr", "-f", "-"], Some(LIMITS));
        let listed = ok(kc, home, &["get", "limits", "-n", "lr"], None);
        assert!(listed.contains("limits"), "{listed}");

        // a pod without resources gets the defaults and the annotation
        ok(kc, home, &["apply", "-n", "lr", "-f", "-"], Some(&pod("defaulted", "")));
        let p = get_json(kc, home, &["get", "pod", "-n", "lr", "defaulted"]);
        let r = &p["spec"]["containers"][0]["resources"];
        assert_eq!(s(r, "/requests/cpu"), "100m");
        assert_eq!(s(r, "/requests/memory"), "128Mi");
        assert_eq!(s(r, "/limits/cpu"), "300m");
        assert_eq!(s(r, "/limits/memory"), "256Mi");
        assert_eq!(
            s(&p, "/metadata/annotations/kubernetes.io~1limit-ranger"),
            "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
        );
        assert_eq!(s(&p, "/status/qosClass"), "Burstable");

        // over the container's max, over the pod's max
        let big = "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n  - name: c\n    image: reg.example/app:v1\n    resources: {limits: {cpu: '1'}}\n";
        refused(
            kc,
            home,
            &["apply", "-n", "lr", "-f", "-"],
            Some(big),
            &["pods \"big\" is forbidden: maximum cpu usage per Container is 500m, but limit is 1"],
        );
        let wide = "apiVersion: v1\nkind: Pod\nmetadata: {name: wide}\nspec:\n  containers:\n  - {name: a, image: x, resources: {limits: {memory: 768Mi}}}\n  - {name: b, image: x, resources: {limits: {memory: 768Mi}}}\n";
        refused(
            kc,
            home,
            &["apply", "-n", "lr", "-f", "-"],
            Some(wide),
            &["pods \"wide\" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 1536Mi"],
        );
        // other namespaces are not affected
        ok(kc, home, &["apply", "-f", "-"], Some(big));

        // claims: the storage bound
        refused(
            kc,
            home,
            &["apply", "-n", "lr", "-f", "-"],
            Some(&claim("huge", "2Gi")),
            &["persistentvolumeclaims \"huge\" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi"],
        );
        ok(kc, home, &["apply", "-n", "lr", "-f", "-"], Some(&claim("small", "512Mi")));

        // once the range is gone, pods are left alone again
        ok(kc, home, &["delete", "limitrange", "-n", "lr", "limits"], None);
        ok(kc, home, &["apply", "-n", "lr", "-f", "-"], Some(big));
    })
    .await
    .unwrap();
    server.shutdown().await;
}
