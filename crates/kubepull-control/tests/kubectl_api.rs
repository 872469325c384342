//! The API server with the real kubectl: the node authorizer's rule, anonymous access, strict
//! field validation, conflicts, Secret validation that never echoes data, and restart on the
//! same data directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubepull_control::{start, ServerConfig};

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut c = Command::new("kubectl");
    c.env("KUBECONFIG", kubeconfig).env("HOME", home).args(args);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("kubectl");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn node_kubeconfig(dir: &Path, url: &str, ca_pem: &str, token: &str) -> PathBuf {
    use base64::Engine as _;
    let p = dir.join("node.kubeconfig");
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: node-user}}\ncurrent-context: c\nusers:\n- name: node-user\n  user:\n    token: {token}\n",
            base64::engine::general_purpose::STANDARD.encode(ca_pem)
        ),
    )
    .unwrap();
    p
}

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: t}
---
apiVersion: v1
kind: Secret
metadata: {name: s1, namespace: t}
type: Opaque
stringData: {k: v1}
---
apiVersion: v1
kind: Secret
metadata: {name: s2, namespace: t}
type: Opaque
stringData: {k: v2}
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: t}
spec:
  nodeName: n1
  imagePullSecrets: [{name: s1}]
  containers: [{name: c, image: "reg.example/app:v1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: p2, namespace: t}
spec:
  nodeName: n2
  imagePullSecrets: [{name: s2}]
  containers: [{name: c, image: "reg.example/app:v1"}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_authorizer_validation_and_restart() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let cfg = ServerConfig {
        data_dir: data.clone(),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: String::new(),
        controllers: false,
        cluster_cidr: None,
    };
    let server = start(cfg.clone()).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let node = node_kubeconfig(
        d.path(),
        &server.url(),
        &server.ca_pem(),
        &server.node_token("n1"),
    );
    let url = server.url();
    let ca = server.ca_pem();
    tokio::task::spawn_blocking(move || {
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(MANIFESTS));
        assert!(ok, "{out}");

        // the node reads the secret its own pod uses, not the other node's
        let (ok, out) = kubectl(&node, &home, &["get", "secret", "s1", "-n", "t", "-o", "name"], None);
        assert!(ok, "{out}");
        let (ok, out) = kubectl(&node, &home, &["get", "secret", "s2", "-n", "t"], None);
        assert!(!ok);
        assert!(out.contains("Error from server (Forbidden)") && out.contains("system:node:n1"), "{out}");
        assert!(!out.contains("djI"), "secret data in an error: {out}");
        let (ok, out) = kubectl(&node, &home, &["get", "secrets", "-n", "t"], None);
        assert!(!ok && out.contains("Forbidden"), "{out}");
        // and creates only its own Lease
        let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: n2, namespace: kube-node-lease}\nspec: {holderIdentity: n2}\n";
        let (ok, out) = kubectl(&node, &home, &["create", "-f", "-"], Some(lease));
        assert!(!ok && out.contains("Forbidden"), "{out}");
        let own = lease.replace("n2", "n1");
        let (ok, out) = kubectl(&node, &home, &["create", "-f", "-"], Some(&own));
        assert!(ok, "{out}");

        // anonymous is denied
        let (ok, out) = {
            let o = Command::new("curl")
                .args(["-sS", "--cacert", "/dev/stdin", &format!("{url}/api/v1/namespaces")])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(ca.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
        };
        assert!(ok && out.contains("\"code\":401"), "{out}");

        // strict field validation, as kubectl asks for it
        let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: typo, namespace: t}\nspec:\n  containers: [{name: c, image: x, imagePullPolicyy: Always}]\n";
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(bad));
        assert!(!ok && out.contains("unknown field \"spec.containers[0].imagePullPolicyy\""), "{out}");
        // a bad pull policy value
        let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: pol, namespace: t}\nspec:\n  containers: [{name: c, image: x, imagePullPolicy: Sometimes}]\n";
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(bad));
        assert!(!ok && out.contains("Unsupported value: \"Sometimes\""), "{out}");
        // a dockerconfigjson secret that is not JSON: named field, data not echoed
        std::fs::write(home.join("cfg.json"), "{\"auths\": {\"r\": {\"password\": \"hunter22\"").unwrap();
        let (ok, out) = kubectl(
            &admin,
            &home,
            &["create", "secret", "generic", "broken", "-n", "t", "--type=kubernetes.io/dockerconfigjson",
              &format!("--from-file=.dockerconfigjson={}", home.join("cfg.json").display())],
            None,
        );
        assert!(!ok, "{out}");
        assert!(out.contains("data[.dockerconfigjson]") && !out.contains("hunter22"), "{out}");
        // an update with a stale resourceVersion is a conflict
        let (_, y) = kubectl(&admin, &home, &["get", "secret", "s1", "-n", "t", "-o", "yaml"], None);
        let (ok, out) = kubectl(&admin, &home, &["label", "secret", "s1", "-n", "t", "a=b"], None);
        assert!(ok, "{out}");
        let (ok, out) = kubectl(&admin, &home, &["replace", "-f", "-"], Some(&y));
        assert!(!ok && out.contains("Operation cannot be fulfilled on secrets \"s1\""), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;

    // everything survives a restart on the same data dir
    let server = start(cfg).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (ok, out) = kubectl(
            &admin,
            &home,
            &["get", "secrets,pods", "-n", "t", "-o", "name"],
            None,
        );
        assert!(ok, "{out}");
        for n in ["secret/s1", "secret/s2", "pod/p1", "pod/p2"] {
            assert!(out.contains(n), "{out}");
        }
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Bad bodies get a Status and store nothing; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_the_server_keeps_serving() {
    let d = tempfile::tempdir().unwrap();
    let server = start(ServerConfig {
        data_dir: d.path().join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: "memory".into(),
        controllers: false,
        cluster_cidr: None,
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
        .build()
        .unwrap();
    let url = format!("{}/api/v1/namespaces/default/secrets", server.url());
    let post = |body: Vec<u8>| {
        http.post(&url)
            .bearer_auth(server.admin_token())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "not valid JSON"),
        (b"[1,2]".to_vec(), 400, "JSON object"),
        (
            br#"{"metadata":{"name":"x","labels":{"a":5}},"type":"Opaque"}"#.to_vec(),
            400,
            "cannot be handled as a Secret",
        ),
        (
            br#"{"metadata":{"name":"Bad_Name"},"type":"Opaque"}"#.to_vec(),
            422,
            "metadata.name: Invalid value",
        ),
        (
            format!(
                r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
                "A".repeat(4 << 20)
            )
            .into_bytes(),
            400,
            "limit",
        ),
    ];
    for (body, code, needle) in cases {
        let r = post(body).await.unwrap();
        assert_eq!(r.status().as_u16(), code);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert!(v["message"].as_str().unwrap_or("").contains(needle), "{v}");
    }
    let r = http
        .get(&url)
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "nothing stored");
    // a missing namespace
    let r = http
        .post(format!("{}/api/v1/namespaces/nope/secrets", server.url()))
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(r#"{"metadata":{"name":"s"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    server.shutdown().await;
}

/// Shutdown closes open (keep-alive) connections and releases the redb file: a new server starts
/// on the same data dir in the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_and_releases_the_store() {
    let d = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        data_dir: d.path().join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: String::new(),
        controllers: true,
        cluster_cidr: None,
    };
    let server = start(cfg.clone()).await.unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
        .build()
        .unwrap();
    let r = http
        .get(format!("{}/api/v1/namespaces", server.url()))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // a watch keeps its connection open
    let w = http
        .get(format!("{}/api/v1/pods?watch=1", server.url()))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), 200);
    server.shutdown().await;
    let again = tokio::time::timeout(std::time::Duration::from_secs(10), start(cfg))
        .await
        .expect("restart in time")
        .expect("restart on the same data dir");
    again.shutdown().await;
    drop(w);
}
