//! ResourceQuotas with the real kubectl against the API server and its controllers: invalid
//! quotas refused, `kubectl create quota`, the usage the quota controller observes, creates
//! charged and refused by quota admission, a quota whose cpu requests every container must
//! name, usage released when an object goes, and `status.hard` following the spec.

use kubepull_control::start;
use serde_json::Value;

mod common;
use common::{dump_on_failure, eventually, get_json, items, ok, refused, s, server_config};

fn pod(name: &str, cpu: Option<&str>) -> String {
    let resources = match cpu {
        Some(c) => format!("resources: {{requests: {{cpu: {c}}}}}"),
        None => "resources: {}".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: q}}\nspec:\n  containers: [{{name: c, image: reg.example/app:v1, {resources}}}]\n"
    )
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n";

fn widget(name: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: c}}\n")
}

fn used(kc: &std::path::Path, home: &std::path::Path) -> Value {
    get_json(kc, home, &["get", "quota", "q", "-n", "q"])["status"]["used"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_quotas_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (kc, home) = (kc.as_path(), home.as_path());
        ok(kc, home, &["create", "namespace", "q"], None);
        dump_on_failure(kc, home, &["get", "quota,pods,cm", "-n", "q", "-o", "yaml"]);

        // invalid quotas: a negative quantity, a name quota does not know, a fraction of a count
        refused(kc, home, &["create", "quota", "bad", "-n", "q", "--hard=pods=-1"], None, &[
            "error: failed to create quota: ResourceQuota \"bad\" is invalid",
            "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0",
        ]);
        refused(kc, home, &["create", "quota", "bad", "-n", "q", "--hard=foo=1,services=1500m"], None, &[
            "spec.hard[foo]: Invalid value: foo: must be a standard resource type or fully qualified",
            "spec.hard[foo]: Invalid value: foo: must be a standard resource for quota",
            "spec.hard[services]: Invalid value: 1500m: must be an integer",
        ]);
        let scoped = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: bad, namespace: q}\nspec:\n  hard: {services: '1'}\n  scopes: [BestEffort, NotBestEffort]\n";
        refused(kc, home, &["create", "-f", "-"], Some(scoped), &[
            "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"BestEffort\", \"NotBestEffort\"}: unsupported scope applied to resource",
            "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"BestEffort\", \"NotBestEffort\"}: conflicting scopes",
        ]);

        ok(kc, home, &["create", "quota", "q", "-n", "q", "--hard=pods=2,requests.cpu=1,count/configmaps=3"], None);
        // the controller observes the namespace: no pods, its configmaps (the root CA's)
        let cms = eventually("the quota's first status", || {
            let q = get_json(kc, home, &["get", "quota", "q", "-n", "q"]);
            let cms = items(&get_json(kc, home, &["get", "cm", "-n", "q"])).len();
            let u = &q["status"]["used"];
            (s(&q, "/status/hard/pods") == "2"
                && u["pods"] == "0"
                && u["requests.cpu"] == "0"
                && u["count/configmaps"] == cms.to_string().as_str())
            .then_some(cms)
        });

        // a pod that does not request cpu is refused while requests.cpu is limited
        refused(kc, home, &["create", "-f", "-"], Some(&pod("nocpu", None)), &[
            "pods \"nocpu\" is forbidden: failed quota: q: must specify requests.cpu for: c",
        ]);
        // two pods are charged as they are created
        ok(kc, home, &["create", "-f", "-"], Some(&pod("p1", Some("500m"))));
        // a dry run is checked, and charges nothing
        ok(kc, home, &["create", "--dry-run=server", "-f", "-"], Some(&pod("p2", Some("400m"))));
        let u = used(kc, home);
        assert_eq!((s(&u, "/pods"), s(&u, "/requests.cpu")), ("1", "500m"), "{u}");
        ok(kc, home, &["create", "-f", "-"], Some(&pod("p2", Some("400m"))));
        let u = used(kc, home);
        assert_eq!((s(&u, "/pods"), s(&u, "/requests.cpu")), ("2", "900m"), "{u}");
        // a third is over the pod count
        refused(kc, home, &["create", "-f", "-"], Some(&pod("p3", Some("100m"))), &[
            "Error from server (Forbidden)",
            "pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2",
        ]);
        let out = ok(kc, home, &["describe", "quota", "q", "-n", "q"], None);
        let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
        for want in [["pods", "2", "2"], ["requests.cpu", "900m", "1"]] {
            assert!(rows.iter().any(|r| r[..] == want[..]), "{want:?}\n{out}");
        }
        assert!(rows.iter().any(|r| r[..] == ["Resource", "Used", "Hard"]), "{out}");
        let out = ok(kc, home, &["get", "quota", "-n", "q"], None);
        assert!(out.contains("pods: 2/2, requests.cpu: 900m/1"), "{out}");
        refused(kc, home, &["create", "--dry-run=server", "-f", "-"], Some(&pod("p3", Some("100m"))), &[
            "pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2",
        ]);

        // object counts: configmaps up to the limit, then refused
        for i in cms..3 {
            ok(kc, home, &["create", "configmap", &format!("c{i}"), "-n", "q"], None);
        }
        refused(kc, home, &["create", "configmap", "c9", "-n", "q"], None, &[
            "configmaps \"c9\" is forbidden: exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=3, limited: count/configmaps=3",
        ]);

        // a pod gone is released by the controller; a raised limit reaches the status
        ok(kc, home, &["delete", "pod", "p1", "-n", "q", "--grace-period=0", "--force"], None);
        eventually("the deleted pod released", || {
            let u = used(kc, home);
            (u["pods"] == "1" && u["requests.cpu"] == "400m").then_some(())
        });
        ok(kc, home, &["patch", "quota", "q", "-n", "q", "-p", r#"{"spec":{"hard":{"pods":"3"}}}"#], None);
        eventually("status.hard following the spec", || {
            let q = get_json(kc, home, &["get", "quota", "q", "-n", "q"]);
            (s(&q, "/status/hard/pods") == "3").then_some(())
        });
        ok(kc, home, &["create", "-f", "-"], Some(&pod("p3", Some("100m"))));
        ok(kc, home, &["create", "-f", "-"], Some(&pod("p4", Some("100m"))));
        let u = used(kc, home);
        assert_eq!((s(&u, "/pods"), s(&u, "/requests.cpu")), ("3", "600m"), "{u}");
        // the scopes cannot change
        refused(kc, home, &["patch", "quota", "q", "-n", "q", "-p", r#"{"spec":{"scopes":["NotTerminating"]}}"#], None, &[
            "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"NotTerminating\"}: field is immutable",
        ]);

        // concurrent creates take turns: exactly as many as the quota allows
        ok(kc, home, &["create", "namespace", "c"], None);
        ok(kc, home, &["create", "quota", "s", "-n", "c", "--hard=secrets=3"], None);
        eventually("the secrets quota observed", || {
            let q = get_json(kc, home, &["get", "quota", "s", "-n", "c"]);
            (q["status"]["used"]["secrets"] == "0").then_some(())
        });
        let results: Vec<(bool, String)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|i| {
                    sc.spawn(move || {
                        let name = format!("s{i}");
                        common::kubectl(kc, home, &["create", "secret", "generic", &name, "-n", "c"], None)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created = results.iter().filter(|(good, _)| *good).count();
        assert_eq!(created, 3, "{results:?}");
        for (_, out) in results.iter().filter(|(good, _)| !*good) {
            assert!(out.contains("exceeded quota: s, requested: secrets=1, used: secrets=3, limited: secrets=3"), "{out}");
        }
        let q = get_json(kc, home, &["get", "quota", "s", "-n", "c"]);
        assert_eq!(q["status"]["used"]["secrets"], "3");

        // custom resources are counted too, by admission and by the controller
        ok(kc, home, &["apply", "-f", "-"], Some(CRD));
        eventually("widgets served", || {
            common::kubectl(kc, home, &["get", "widgets", "-n", "c"], None).0.then_some(())
        });
        ok(kc, home, &["create", "quota", "w", "-n", "c", "--hard=count/widgets.example.com=1"], None);
        eventually("the widget quota observed", || {
            let q = get_json(kc, home, &["get", "quota", "w", "-n", "c"]);
            (q["status"]["used"]["count/widgets.example.com"] == "0").then_some(())
        });
        ok(kc, home, &["create", "-f", "-"], Some(&widget("w1")));
        refused(kc, home, &["create", "-f", "-"], Some(&widget("w2")), &[
            "widgets.example.com \"w2\" is forbidden: exceeded quota: w, requested: count/widgets.example.com=1, used: count/widgets.example.com=1, limited: count/widgets.example.com=1",
        ]);
        // a change of the quota syncs it: the widget deleted is released
        ok(kc, home, &["delete", "widget", "w1", "-n", "c"], None);
        ok(kc, home, &["label", "quota", "w", "-n", "c", "touched=yes"], None);
        eventually("the deleted widget released", || {
            let q = get_json(kc, home, &["get", "quota", "w", "-n", "c"]);
            (q["status"]["used"]["count/widgets.example.com"] == "0").then_some(())
        });
        ok(kc, home, &["create", "-f", "-"], Some(&widget("w2")));
    })
    .await
    .unwrap();
    server.shutdown().await;
}
