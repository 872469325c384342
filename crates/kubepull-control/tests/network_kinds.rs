//! IngressClasses and NetworkPolicies with the real kubectl against the API server: defaults,
//! validation with upstream's messages, generation, kubectl's columns, and `kubectl explain`
//! for the kinds served beside them (ResourceQuotas, LimitRanges, PodDisruptionBudgets,
//! PriorityClasses).

use kubepull_control::start;

mod common;
use common::{get_json, ok, refused, s, server_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_classes_and_network_policies_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        // an IngressClass: parameters without a scope are the cluster's
        let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec:\n  controller: k8s.io/ingress-nginx\n  parameters: {apiGroup: k8s.example.com, kind: Params, name: p}\n";
        ok(kc, home, &["apply", "-f", "-"], Some(class));
        let c = get_json(kc, home, &["get", "ingressclass", "nginx"]);
        assert_eq!(s(&c, "/spec/parameters/scope"), "Cluster");
        assert_eq!(c["metadata"]["generation"], 1);
        let table = ok(kc, home, &["get", "ingressclasses"], None);
        assert!(
            table.contains("CONTROLLER") && table.contains("Params.k8s.example.com/p"),
            "{table}"
        );
        // the controller may not change; a bad one is named
        let moved = class.replace("k8s.io/ingress-nginx", "example.com/other");
        refused(kc, home, &["apply", "-f", "-"], Some(&moved), &[
            "The IngressClass \"nginx\" is invalid",
            "spec.controller: Invalid value: \"example.com/other\": field is immutable",
        ]);
        let bad = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: bad}\nspec:\n  controller: nginx\n  parameters: {kind: Params, name: p, scope: Namespace}\n";
        refused(kc, home, &["apply", "-f", "-"], Some(bad), &[
            "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")",
            "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'",
        ]);
        assert!(!ok(kc, home, &["get", "ingressclasses", "-o", "name"], None).contains("bad"));

        // a NetworkPolicy: policy types and port protocols defaulted, generation counted
        let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]\n    ports: [{port: 80}]\n  egress:\n  - to: [{namespaceSelector: {}}]\n";
        ok(kc, home, &["apply", "-f", "-"], Some(policy));
        let p = get_json(kc, home, &["get", "netpol", "web"]);
        assert_eq!(p["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
        assert_eq!(s(&p, "/spec/ingress/0/ports/0/protocol"), "TCP");
        assert_eq!(p["metadata"]["generation"], 1);
        let changed = policy.replace("port: 80", "port: 8080");
        ok(kc, home, &["apply", "-f", "-"], Some(&changed));
        let p = get_json(kc, home, &["get", "netpol", "web"]);
        assert_eq!(p["metadata"]["generation"], 2);
        let table = ok(kc, home, &["get", "networkpolicies"], None);
        assert!(table.contains("POD-SELECTOR") && table.contains("app=web"), "{table}");
        let bad = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{}, {ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]\n    ports: [{port: 90, endPort: 80, protocol: ICMP}]\n";
        refused(kc, home, &["apply", "-f", "-"], Some(bad), &[
            "The NetworkPolicy \"bad\" is invalid",
            "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            "spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`",
            "spec.ingress[0].from[0]: Required value: must specify a peer",
            "spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr`",
        ]);
        assert!(!ok(kc, home, &["get", "netpol", "-o", "name"], None).contains("bad"));

        // the schemas of every kind served here reach kubectl explain
        for (what, want) in [
            ("networkpolicy.spec.podSelector", "LabelSelector"),
            ("ingressclass.spec.parameters.scope", "scope"),
            ("resourcequota.spec.hard", "hard"),
            ("limitrange.spec.limits.defaultRequest", "defaultRequest"),
            ("pdb.spec.minAvailable", "minAvailable"),
            ("priorityclass.preemptionPolicy", "preemptionPolicy"),
        ] {
            let out = ok(kc, home, &["explain", what], None);
            assert!(out.contains(want), "{what}: {out}");
        }
    })
    .await
    .unwrap();
}
