//! The node range allocator through the real kubectl: each Node gets its own /24 of a cluster
//! CIDR that no route of this machine overlaps, and keeps it across a server restart.

use std::path::Path;
use std::process::Command;

use kubepull_control::podcidr::{machine_routes, Ipv4Net};
use kubepull_control::{start, ServerConfig};

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

async fn pod_cidr(kc: &Path, home: &Path, node: &str) -> (String, Vec<String>) {
    for _ in 0..200 {
        let out = kubectl(kc, home, &["get", "node", node, "-o", "json"], None);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if let Some(c) = v.pointer("/spec/podCIDR").and_then(|c| c.as_str()) {
            let list = v["spec"]["podCIDRs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            return (c.to_string(), list);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("node {node} got no podCIDR");
}

fn node_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_distinct_pod_cidrs_off_the_machines_routes() {
    let d = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        data_dir: d.path().join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: String::new(),
        controllers: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
    };
    let server = start(cfg.clone()).await.unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path();
    let cluster: Ipv4Net = std::fs::read_to_string(d.path().join("data/cluster-cidr"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for r in machine_routes() {
        assert!(
            r.is_default() || !r.overlaps(&cluster),
            "cluster CIDR {cluster} overlaps the route {r}"
        );
    }
    kubectl(&kc, home, &["apply", "-f", "-"], Some(&node_yaml("node-a")));
    kubectl(&kc, home, &["apply", "-f", "-"], Some(&node_yaml("node-b")));
    let (a, al) = pod_cidr(&kc, home, "node-a").await;
    let (b, bl) = pod_cidr(&kc, home, "node-b").await;
    assert_eq!(al, vec![a.clone()]);
    assert_eq!(bl, vec![b.clone()]);
    let (na, nb): (Ipv4Net, Ipv4Net) = (a.parse().unwrap(), b.parse().unwrap());
    assert_eq!(na.prefix_len(), 24);
    assert!(!na.overlaps(&nb), "{a} and {b} overlap");
    assert!(cluster.overlaps(&na) && cluster.overlaps(&nb));
    server.shutdown().await;

    // a restart keeps the cluster CIDR and the nodes' ranges; a new node gets a third range
    let server = start(cfg).await.unwrap();
    kubectl(&kc, home, &["apply", "-f", "-"], Some(&node_yaml("node-c")));
    let (c, _) = pod_cidr(&kc, home, "node-c").await;
    let nc: Ipv4Net = c.parse().unwrap();
    assert!(cluster.overlaps(&nc));
    assert!(!nc.overlaps(&na) && !nc.overlaps(&nb), "{c} vs {a}, {b}");
    assert_eq!(pod_cidr(&kc, home, "node-a").await.0, a);
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_cluster_cidr_is_refused_with_the_flag_named() {
    let d = tempfile::tempdir().unwrap();
    let e = start(ServerConfig {
        data_dir: d.path().join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: String::new(),
        controllers: true,
        cluster_cidr: Some("10.244.0.0".into()),
        service_cluster_ip_range: None,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--cluster-cidr"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_cluster_cidr_leaves_the_node_without_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let server = start(ServerConfig {
        data_dir: d.path().join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: String::new(),
        controllers: true,
        // room for one node only
        cluster_cidr: Some("10.251.77.0/24".into()),
        service_cluster_ip_range: None,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
    })
    .await
    .unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path();
    kubectl(&kc, home, &["apply", "-f", "-"], Some(&node_yaml("first")));
    let (first, _) = pod_cidr(&kc, home, "first").await;
    assert_eq!(first, "10.251.77.0/24");
    kubectl(&kc, home, &["apply", "-f", "-"], Some(&node_yaml("second")));
    let mut seen = String::new();
    for _ in 0..100 {
        seen = kubectl(
            &kc,
            home,
            &[
                "get",
                "events",
                "-n",
                "default",
                "--field-selector",
                "involvedObject.name=second",
                "-o",
                "json",
            ],
            None,
        );
        if seen.contains("CIDRNotAvailable") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        seen.contains("Node second status is now: CIDRNotAvailable"),
        "{seen}"
    );
    let out = kubectl(&kc, home, &["get", "node", "second", "-o", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.pointer("/spec/podCIDR").is_none(), "{v}");
    server.shutdown().await;
}
