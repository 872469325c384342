//! PersistentVolumeClaims, PersistentVolumes, Ingresses, ControllerRevisions and the stored
//! shape of DaemonSets and StatefulSets with the real kubectl: tables, defaults, validation,
//! claim and volume updates, the StatefulSet scale subresource, Pod Security warnings for the
//! new workload kinds, and `kubectl apply --prune` without an allowlist.

use kubepull_control::start;

mod common;
use common::{kubectl, server_config};

const CLAIM: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: fast\n  resources: {requests: {storage: 1Gi}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_revisions_and_workload_kinds_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);

        // a claim: stored Pending with its defaults, shown in kubectl's columns
        let (ok, out) = k(&["apply", "-f", "-"], Some(CLAIM));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "pvc", "data", "-o", "wide"], None);
        assert!(ok, "{out}");
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE", "VOLUMEMODE"]
        );
        let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            (row[0], row[1], row[2], row[3], row[5]),
            ("data", "Pending", "fast", "<unset>", "Filesystem"),
            "{out}"
        );

        // a pending claim's spec is immutable; a bound claim may grow but not shrink
        let (ok, out) = k(&["patch", "pvc", "data", "-p", r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#], None);
        assert!(!ok, "{out}");
        assert!(out.contains("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"), "{out}");
        let (ok, out) = k(&["patch", "pvc", "data", "-p", r#"{"spec":{"volumeName":"pv-1"}}"#], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["patch", "pvc", "data", "--subresource=status", "-p",
            r#"{"status":{"phase":"Bound","capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"]}}"#], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "pvc", "data", "--no-headers"], None);
        assert!(ok, "{out}");
        let row: Vec<&str> = out.split_whitespace().collect();
        assert_eq!((row[1], row[2], row[3], row[4]), ("Bound", "pv-1", "1Gi", "RWO"), "{out}");
        let (ok, out) = k(&["patch", "pvc", "data", "-p", r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["patch", "pvc", "data", "-p", r#"{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}"#], None);
        assert!(!ok, "{out}");
        assert!(out.contains("spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"), "{out}");

        // a bad claim names each field, and a quantity that does not parse is the decoder's
        let bad = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: bad}\nspec:\n  accessModes: [ReadWriteOncePod, ReadWriteOnce, Sometimes]\n  volumeMode: Raw\n  resources: {requests: {storage: \"0\"}}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(bad));
        assert!(!ok, "{out}");
        for needle in [
            "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
            "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            "spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", \"Filesystem\"",
        ] {
            assert!(out.contains(needle), "{needle}\n{out}");
        }
        let garbled = bad.replace("\"0\"", "lots");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&garbled));
        assert!(!ok && out.contains("quantities must match the regular expression"), "{out}");
        let (_, out) = k(&["get", "pvc", "-o", "name"], None);
        assert_eq!(out.trim(), "persistentvolumeclaim/data");

        // ControllerRevisions: data is mandatory and immutable, shown with their controller
        let rev = "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata: {name: r}\nrevision: -1\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(rev));
        assert!(!ok, "{out}");
        assert!(out.contains("data: Required value: data is mandatory"), "{out}");
        assert!(out.contains("revision: Invalid value: -1: must be greater than or equal to 0"), "{out}");
        let rev = "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata:\n  name: r\n  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: u1, controller: true}]\nrevision: 2\ndata: {spec: {template: {x: 1}}}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(rev));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "controllerrevisions", "--no-headers"], None);
        assert!(ok, "{out}");
        let row: Vec<&str> = out.split_whitespace().collect();
        assert_eq!((row[0], row[1], row[2]), ("r", "daemonset.apps/agent", "2"), "{out}");
        let (ok, out) = k(&["patch", "controllerrevision", "r", "--type=merge", "-p", r#"{"data":{"spec":{"template":{"x":2}}}}"#], None);
        assert!(!ok && out.contains("data: Invalid value:") && out.contains("field is immutable"), "{out}");

        // a StatefulSet's name is a DNS label; its defaults, columns and scale subresource
        let sts = |name: &str| format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {name}}}\nspec:\n  serviceName: web\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: nginx, image: nginx}}]\n  volumeClaimTemplates:\n  - metadata: {{name: www}}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {{requests: {{storage: 1Gi}}}}\n");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&sts("web.v2")));
        assert!(!ok, "{out}");
        assert!(out.contains("metadata.name: Invalid value: \"web.v2\": must not contain dots"), "{out}");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&sts("web")));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "sts", "web", "-o", "jsonpath={.spec.podManagementPolicy} {.spec.replicas} {.spec.updateStrategy.type} {.spec.updateStrategy.rollingUpdate.partition} {.spec.persistentVolumeClaimRetentionPolicy.whenDeleted} {.spec.revisionHistoryLimit} {.spec.volumeClaimTemplates[0].spec.volumeMode} {.spec.volumeClaimTemplates[0].status.phase} {.status.replicas} {.metadata.generation}"], None);
        assert!(ok, "{out}");
        assert_eq!(out, "OrderedReady 1 RollingUpdate 0 Retain 10 Filesystem Pending 0 1");
        let (ok, out) = k(&["scale", "sts", "web", "--replicas=3"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "sts", "web", "--no-headers"], None);
        assert!(ok && out.starts_with("web") && out.contains("0/3"), "{out}");
        let (_, out) = k(&["get", "sts", "web", "-o", "jsonpath={.metadata.generation}"], None);
        assert_eq!(out, "2");

        // a DaemonSet's defaults and columns; its template meets Pod Security's warnings
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: w\n  labels: {pod-security.kubernetes.io/warn: baseline}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(ns));
        assert!(ok, "{out}");
        let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: w}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      hostNetwork: true\n      nodeSelector: {disk: ssd}\n      containers: [{name: c, image: busybox}]\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(ds));
        assert!(ok, "{out}");
        assert!(out.contains("Warning: would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"), "{out}");
        let (ok, out) = k(&["get", "ds", "agent", "-n", "w", "-o", "jsonpath={.spec.updateStrategy.type} {.spec.updateStrategy.rollingUpdate.maxUnavailable} {.spec.updateStrategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.template.spec.restartPolicy} {.status.desiredNumberScheduled}"], None);
        assert!(ok, "{out}");
        assert_eq!(out, "RollingUpdate 1 0 10 Always 0");
        // the template generation the strategy keeps: 1, counted up by template changes only,
        // whatever an update asks for
        let tg = || k(&["get", "ds", "agent", "-n", "w", "-o", r#"jsonpath={.metadata.annotations.deprecated\.daemonset\.template\.generation}"#], None).1;
        assert_eq!(tg(), "1");
        let (ok, out) = k(&["set", "image", "ds/agent", "-n", "w", "c=busybox:1.36"], None);
        assert!(ok, "{out}");
        assert_eq!(tg(), "2");
        let (ok, out) = k(&["annotate", "ds", "agent", "-n", "w", "--overwrite", "deprecated.daemonset.template.generation=1", "team=a"], None);
        assert!(ok, "{out}");
        assert_eq!(tg(), "2");
        let (ok, out) = k(&["get", "ds", "-n", "w"], None);
        assert!(ok, "{out}");
        assert!(out.lines().next().unwrap().contains("NODE SELECTOR"), "{out}");
        assert!(out.contains("disk=ssd"), "{out}");

        // a PersistentVolume: defaults, columns, one source, immutable source
        let pv = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv1}\nspec:\n  capacity: {storage: 5Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /srv/pv1}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(pv));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "pv", "pv1", "--no-headers"], None);
        assert!(ok, "{out}");
        let row: Vec<&str> = out.split_whitespace().collect();
        assert_eq!((row[0], row[1], row[2], row[3], row[4]), ("pv1", "5Gi", "RWO", "Retain", "Pending"), "{out}");
        let (_, out) = k(&["get", "pv", "pv1", "-o", "jsonpath={.spec.volumeMode} {.spec.hostPath.type}|{.status.lastPhaseTransitionTime}"], None);
        assert!(out.starts_with("Filesystem |20"), "{out}");
        let (ok, out) = k(&["patch", "pv", "pv1", "-p", r#"{"spec":{"hostPath":{"path":"/srv/other"}}}"#], None);
        assert!(!ok && out.contains("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"), "{out}");
        let two = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv2}\nspec:\n  capacity: {storage: 5Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /srv/pv2}\n  nfs: {server: nfs.example, path: exports}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(two));
        assert!(!ok && out.contains("spec.nfs: Forbidden: may not specify more than 1 volume type"), "{out}");

        // an Ingress made by kubectl's typed command (a protobuf body), its columns, a bad one
        let (ok, out) = k(&["create", "ingress", "web", "--class=nginx", "--rule=web.example.com/*=web:80,tls=web-tls"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "ingress", "web", "--no-headers"], None);
        assert!(ok, "{out}");
        let row: Vec<&str> = out.split_whitespace().collect();
        assert_eq!((row[0], row[1], row[2], row[3], row[4]), ("web", "nginx", "web.example.com", "80,", "443"), "{out}");
        let (_, out) = k(&["get", "ingress", "web", "-o", "jsonpath={.spec.rules[0].http.paths[0].pathType} {.metadata.generation} {.status}"], None);
        assert_eq!(out, r#"Prefix 1 {"loadBalancer":{}}"#);
        let (ok, out) = k(&["create", "ingress", "bad", "--rule=10.0.0.1/api=Web:http"], None);
        assert!(!ok, "{out}");
        assert!(out.contains("spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address"), "{out}");
        assert!(out.contains("spec.rules[0].http.paths[0].backend.service.name: Invalid value: \"Web\": a DNS-1035 label"), "{out}");

        // every kind of kubectl's default prune list is served: --prune needs no allowlist
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, labels: {set: p}}\n";
        let (ok, out) = k(&["apply", "--prune", "-l", "set=p", "-f", "-"], Some(cm));
        assert!(ok, "{out}");
        let (ok, out) = k(&["apply", "--prune", "-l", "set=p", "-f", "-"], Some(&cm.replace("c1", "c2")));
        assert!(ok && out.contains("configmap/c1 pruned"), "{out}");

        // `kubectl get all` lists both kinds; kubectl explain knows them
        let (ok, out) = k(&["get", "all", "-A", "-o", "name"], None);
        assert!(ok, "{out}");
        assert!(out.contains("daemonset.apps/agent") && out.contains("statefulset.apps/web"), "{out}");
        let (ok, out) = k(&["explain", "sts.spec.volumeClaimTemplates"], None);
        assert!(ok && out.contains("PersistentVolumeClaim"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}
