//! The API server with the real kubectl: the node authorizer's rule, anonymous access, strict
//! field validation, conflicts, Secret validation that never echoes data, and restart on the
//! same data directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubepull_control::{start, ServerConfig};

#[path = "kubectl_api/apply.rs"]
mod apply;
#[path = "kubectl_api/crd.rs"]
mod crd;
#[path = "kubectl_api/webhooks.rs"]
mod webhooks;

mod common;
use common::{https_client_builder, kubectl, server_config};

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
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
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
        // a node cannot act as anyone else (impersonation), not even another node
        for who in ["--as=kubepull-admin", "--as=system:node:n2"] {
            let (ok, out) = kubectl(&node, &home, &["get", "secret", "s2", "-n", "t", who], None);
            assert!(
                !ok && out.contains(r#"User "system:node:n1" cannot impersonate resource "users""#),
                "{out}"
            );
        }
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
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
    })
    .await
    .unwrap();
    let http = https_client_builder(&server).build().unwrap();
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
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
    };
    let server = start(cfg.clone()).await.unwrap();
    let http = https_client_builder(&server).build().unwrap();
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

/// Pod Security admission as kubectl meets it: a `restricted` namespace refuses a privileged pod
/// with the upstream text, `warn` gives kubectl's `Warning:` line, the cluster default
/// (`baseline`) refuses hostPath volumes and privileged containers, Deployments only warn, label
/// changes apply to new pods, bad labels and out-of-range IDs are refused with the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_admission_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: r\n  labels: {pod-security.kubernetes.io/enforce: restricted}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: w\n  labels: {pod-security.kubernetes.io/enforce: privileged, pod-security.kubernetes.io/warn: restricted}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(ns));
        assert!(ok, "{out}");
        let pod = |name: &str, ns: &str, extra: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n{extra}")
        };
        let privileged = "    securityContext: {privileged: true}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("priv", "r", privileged)));
        assert!(!ok, "{out}");
        assert!(
            out.contains("Error from server (Forbidden): error when creating \"STDIN\": pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": privileged (container \"c\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"),
            "{out}"
        );
        // a restricted-compliant pod is admitted there
        let good = "    securityContext:\n      allowPrivilegeEscalation: false\n      runAsNonRoot: true\n      runAsUser: 1000\n      capabilities: {drop: [ALL]}\n      seccompProfile: {type: RuntimeDefault}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("good", "r", good)));
        assert!(ok && !out.contains("Warning"), "{out}");

        // warn=restricted: admitted, with kubectl's Warning line
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("loose", "w", "")));
        assert!(ok, "{out}");
        assert!(
            out.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)"),
            "{out}"
        );

        // the cluster default (baseline) in an unlabelled namespace
        let host_path = "  volumes:\n  - name: root\n    hostPath: {path: /}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("hp", "default", host_path)));
        assert!(!ok, "{out}");
        assert!(out.contains("pods \"hp\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")"), "{out}");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("pr", "default", privileged)));
        assert!(!ok && out.contains("violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"), "{out}");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("plain", "default", "")));
        assert!(ok && !out.contains("Warning"), "{out}");
        let (_, out) = k(&["get", "pods", "-n", "default", "-o", "name"], None);
        assert!(out.contains("pod/plain") && !out.contains("pod/hp") && !out.contains("pod/pr"), "{out}");

        // a Deployment is never refused, only warned about
        let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: r}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      hostNetwork: true\n      containers: [{name: c, image: busybox}]\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(dep));
        assert!(ok, "{out}");
        assert!(out.contains("Warning: would violate PodSecurity \"restricted:latest\": host namespaces (hostNetwork=true), allowPrivilegeEscalation != false"), "{out}");

        // label changes take effect for new pods; a stricter enforce level warns about existing pods
        let (ok, out) = k(&["label", "ns", "default", "pod-security.kubernetes.io/enforce=privileged"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("hp", "default", host_path)));
        assert!(ok, "{out}");
        let (ok, out) = k(&["label", "--overwrite", "ns", "w", "pod-security.kubernetes.io/enforce=restricted"], None);
        assert!(ok, "{out}");
        assert!(out.contains("Warning: existing pods in namespace \"w\" violate the new PodSecurity enforce level \"restricted:latest\""), "{out}");
        assert!(out.contains("Warning: loose: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"), "{out}");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("loose2", "w", "")));
        assert!(!ok && out.contains("violates PodSecurity \"restricted:latest\""), "{out}");

        // bad labels are refused, naming the label
        let (ok, out) = k(&["label", "ns", "r", "pod-security.kubernetes.io/warn=strict"], None);
        assert!(!ok, "{out}");
        assert!(out.contains("metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"), "{out}");
        let (ok, out) = k(&["label", "ns", "r", "pod-security.kubernetes.io/enforce-version=1.30"], None);
        assert!(!ok && out.contains("must be \"latest\" or \"v1.x\""), "{out}");

        // IDs out of range, with the upstream field errors
        let ids = "    securityContext: {runAsUser: -1}\n  securityContext:\n    fsGroup: 2147483648\n    supplementalGroups: [1, -5]\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(&pod("ids", "w", ids)));
        assert!(!ok, "{out}");
        for needle in [
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.fsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.supplementalGroups[1]: Invalid value: -5: must be between 0 and 2147483647, inclusive",
        ] {
            assert!(out.contains(needle), "{needle}\n{out}");
        }
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// A TLS endpoint standing in for a node's log server (hostile cases only): it presents
/// `cert_pem`, and answers every request with `hello`.
async fn fake_node(cert_pem: &str, key_pem: &str) -> (u16, tokio::task::JoinHandle<()>) {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nhello\n")
                        .await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    (port, task)
}

fn csr_yaml(name: &str, cn: &str) -> (String, String) {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  signerName: kubernetes.io/kubelet-serving\n  usages: [digital signature, server auth]\n  request: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        key.serialize_pem(),
    )
}

/// Node credentials: a node gets its serving certificate from the cluster CA through a
/// CertificateSigningRequest (only for its own name); the `pods/log` proxy refuses a node whose
/// certificate the CA did not sign, or that the CA issued to another node; a revoked node token
/// gets 401 at once, and the node's new token works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_serving_certificates_and_token_revocation() {
    let d = tempfile::tempdir().unwrap();
    let cfg = server_config(d.path(), false);
    let data_dir = cfg.data_dir.clone();
    let server = start(cfg).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let node = node_kubeconfig(
        d.path(),
        &server.url(),
        &server.ca_pem(),
        &server.node_token("other"),
    );
    // a node presenting a self-signed certificate
    let rogue = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (rogue_port, rogue_task) =
        fake_node(&rogue.cert.pem(), &rogue.signing_key.serialize_pem()).await;
    let (ok, out, other_key, other_cert) = {
        let (node, home, admin) = (node.clone(), home.clone(), admin.clone());
        tokio::task::spawn_blocking(move || {
            // a node may not ask for another node's certificate
            let (y, _) = csr_yaml("steal", "system:node:n1");
            let (ok, out) = kubectl(&node, &home, &["create", "-f", "-"], Some(&y));
            assert!(!ok && out.contains("must be CN=system:node:other, O=system:nodes"), "{out}");
            // a request that is not PEM
            let bad = "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {name: bad}\nspec: {signerName: kubernetes.io/kubelet-serving, request: aGVsbG8=}\n";
            let (ok, out) = kubectl(&node, &home, &["create", "-f", "-"], Some(bad));
            assert!(!ok && out.contains("spec.request: Invalid value") && !out.contains("hello"), "{out}");
            // its own: approved and issued by the CA
            let (y, key) = csr_yaml("own", "system:node:other");
            let (ok, out) = kubectl(&node, &home, &["create", "-f", "-"], Some(&y));
            assert!(ok, "{out}");
            let (ok, out) = kubectl(&node, &home, &["get", "csr", "own", "-o", "jsonpath={.status.certificate}"], None);
            assert!(ok, "{out}");
            use base64::Engine as _;
            let cert = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(out.trim()).unwrap()).unwrap();
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
            // a caller impersonating a node gets no certificate in the node's name: the
            // request is stored, not approved or issued
            let (y, _) = csr_yaml("posed", "system:node:other");
            let (ok, out) = kubectl(&admin, &home, &["create", "-f", "-", "--as=system:node:other", "--as-group=system:nodes"], Some(&y));
            assert!(ok, "{out}");
            let (ok, out) = kubectl(&admin, &home, &["get", "csr", "posed", "-o", "jsonpath={.status}"], None);
            assert!(ok && !out.contains("certificate") && !out.contains("Approved"), "{out}");
            let (ok, out) = kubectl(&node, &home, &["get", "csr", "own"], None);
            (ok, out, key, cert)
        })
        .await
        .unwrap()
    };
    assert!(
        ok && out.contains("Approved,Issued") && out.contains("system:node:other"),
        "{out}"
    );
    // a node with a CA-signed certificate issued to another node
    let (imp_port, imp_task) = fake_node(&other_cert, &other_key).await;
    let admin2 = admin.clone();
    let home2 = home.clone();
    tokio::task::spawn_blocking(move || {
        let objs = format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: rogue}}\nstatus:\n  addresses: [{{type: InternalIP, address: 127.0.0.1}}]\n  daemonEndpoints: {{kubeletEndpoint: {{Port: {rogue_port}}}}}\n---\napiVersion: v1\nkind: Node\nmetadata: {{name: imp}}\nstatus:\n  addresses: [{{type: InternalIP, address: 127.0.0.1}}]\n  daemonEndpoints: {{kubeletEndpoint: {{Port: {imp_port}}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p-rogue}}\nspec: {{nodeName: rogue, containers: [{{name: c, image: busybox}}]}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p-imp}}\nspec: {{nodeName: imp, containers: [{{name: c, image: busybox}}]}}\n"
        );
        let (ok, out) = kubectl(&admin2, &home2, &["create", "-f", "-"], Some(&objs));
        assert!(ok, "{out}");
        let put_status = |n: &str, port: u16| {
            let (ok, out) = kubectl(&admin2, &home2, &["patch", "node", n, "--subresource=status", "--type=merge", "-p",
                &format!("{{\"status\":{{\"addresses\":[{{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"}}],\"daemonEndpoints\":{{\"kubeletEndpoint\":{{\"Port\":{port}}}}}}}}}")], None);
            assert!(ok, "{out}");
        };
        put_status("rogue", rogue_port);
        put_status("imp", imp_port);
        let (ok, out) = kubectl(&admin2, &home2, &["logs", "p-rogue"], None);
        assert!(!ok, "{out}");
        assert!(out.contains(&format!("Error from server: Get \"https://127.0.0.1:{rogue_port}/containerLogs/default/p-rogue/c\": tls: failed to verify certificate: x509: certificate signed by unknown authority")), "{out}");
        let (ok, out) = kubectl(&admin2, &home2, &["logs", "p-imp"], None);
        assert!(!ok && !out.contains("hello"), "{out}");
        assert!(out.contains("the serving certificate of node \"imp\" is issued to \"system:node:other\""), "{out}");
    })
    .await
    .unwrap();
    rogue_task.abort();
    imp_task.abort();

    // revocation: the running server refuses the old token at once; the new one works
    let (ok, out) = {
        let (node, home) = (node.clone(), home.clone());
        tokio::task::spawn_blocking(move || {
            kubectl(&node, &home, &["get", "nodes", "-o", "name"], None)
        })
        .await
        .unwrap()
    };
    assert!(ok, "{out}");
    assert_eq!(
        kubepull_control::pki::revoke_node_token(&data_dir, "other").unwrap(),
        1
    );
    let new_token = kubepull_control::node_token(&data_dir, "other").unwrap();
    assert_ne!(new_token, server.node_token("rogue"));
    let fresh = d.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let fresh_cfg = node_kubeconfig(&fresh, &server.url(), &server.ca_pem(), &new_token);
    tokio::task::spawn_blocking(move || {
        let (ok, out) = kubectl(&node, &home, &["get", "nodes", "-o", "name"], None);
        assert!(!ok && out.contains("Unauthorized"), "{out}");
        let (ok, out) = kubectl(&fresh_cfg, &home, &["get", "nodes", "-o", "name"], None);
        assert!(ok && out.contains("node/rogue"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

fn token_kubeconfig(dir: &Path, name: &str, url: &str, ca_pem: &str, user: &str) -> PathBuf {
    use base64::Engine as _;
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: t}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n{user}",
            base64::engine::general_purpose::STANDARD.encode(ca_pem)
        ),
    )
    .unwrap();
    p
}

/// ServiceAccount tokens with the real kubectl: `kubectl create token` (protobuf body) issues a
/// JWT the server authenticates (`kubectl auth whoami`), RBAC refuses what is not granted with
/// the upstream message and allows what a RoleBinding grants (`kubectl auth can-i`, `--list`),
/// bound tokens die with their pod, all tokens with their ServiceAccount; client certificates
/// signed by the cluster CA are users (CN, O); bad TokenRequest bodies are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_whoami_and_rbac() {
    use base64::Engine as _;
    let d = tempfile::tempdir().unwrap();
    let cfg = server_config(d.path(), false);
    let pki = cfg.data_dir.join("pki");
    let server = start(cfg).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let (url, ca) = (server.url(), server.ca_pem());
    // a client certificate signed by the cluster CA: CN jane, O devs
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jane");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "devs");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let jane = token_kubeconfig(
        d.path(),
        "jane.kubeconfig",
        &url,
        &ca,
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b(&cert.pem()),
            b(&key.serialize_pem())
        ),
    );
    let dir = d.path().to_path_buf();
    let (url2, ca2) = (url.clone(), ca.clone());
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        let (ok, out) = k(&["create", "namespace", "t"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "serviceaccount", "bot", "-n", "t"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "token", "bot", "-n", "t", "--duration=5m"]);
        assert!(!ok && out.contains("TokenRequest.authentication.k8s.io \"bot\" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"), "{out}");
        let (ok, out) = k(&["create", "token", "nobody", "-n", "t"]);
        assert!(!ok && out.contains("serviceaccounts \"nobody\" not found"), "{out}");
        let (ok, token) = k(&["create", "token", "bot", "-n", "t"]);
        assert!(ok && token.starts_with("eyJ"), "{token}");
        let token = token.trim().to_string();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], "system:serviceaccount:t:bot");
        assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "bot");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
        let bot = token_kubeconfig(&dir, "bot.kubeconfig", &url2, &ca2, &format!("    token: {token}\n"));
        let kb = |args: &[&str]| kubectl(&bot, &home, args, None);
        let (ok, out) = kb(&["auth", "whoami"]);
        assert!(ok, "{out}");
        for needle in ["system:serviceaccount:t:bot", "[system:serviceaccounts system:serviceaccounts:t system:authenticated]"] {
            assert!(out.contains(needle), "{needle}\n{out}");
        }
        // nothing granted yet
        let (ok, out) = kb(&["get", "secrets"]);
        assert!(!ok);
        assert!(out.contains("Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:t:bot\" cannot list resource \"secrets\" in API group \"\" in the namespace \"t\""), "{out}");
        let (ok, out) = kb(&["auth", "can-i", "list", "pods"]);
        assert!(!ok && out.trim() == "no", "{out}");
        // grant view in t
        let rb = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: bot-view, namespace: t}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{kind: ServiceAccount, name: bot, namespace: t}]\n";
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(rb));
        assert!(ok, "{out}");
        let (ok, out) = kb(&["get", "pods"]);
        assert!(ok, "{out}");
        let (ok, out) = kb(&["auth", "can-i", "list", "pods"]);
        assert!(ok && out.trim() == "yes", "{out}");
        let (ok, out) = kb(&["auth", "can-i", "get", "secrets"]);
        assert!(!ok && out.trim() == "no", "{out}");
        let (ok, out) = kb(&["auth", "can-i", "list", "pods", "-n", "default"]);
        assert!(!ok && out.trim() == "no", "{out}");
        let (ok, out) = kb(&["auth", "can-i", "--list"]);
        assert!(ok, "{out}");
        assert!(out.contains("deployments.apps") && out.contains("selfsubjectreviews.authentication.k8s.io") && !out.contains("secrets "), "{out}");
        let (ok, out) = kb(&["create", "configmap", "x", "--from-literal=a=b"]);
        assert!(!ok && out.contains("cannot create resource \"configmaps\""), "{out}");
        let (ok, out) = k(&["get", "clusterroles", "-o", "name"]);
        assert!(ok && out.contains("clusterrole.rbac.authorization.k8s.io/cluster-admin") && out.contains("clusterrole.rbac.authorization.k8s.io/view"), "{out}");

        // impersonation (`kubectl --as`): the admin acts as the ServiceAccount, with its
        // groups and permissions, not the admin's
        let sa = "--as=system:serviceaccount:t:bot";
        let (ok, out) = k(&["auth", "can-i", "list", "pods", "-n", "t", sa]);
        assert!(ok && out.trim() == "yes", "{out}");
        let (ok, out) = k(&["auth", "can-i", "get", "secrets", "-n", "t", sa]);
        assert!(!ok && out.trim() == "no", "{out}");
        let (ok, out) = k(&["get", "secrets", "-n", "t", sa]);
        assert!(!ok && out.contains("User \"system:serviceaccount:t:bot\" cannot list resource \"secrets\""), "{out}");
        let (ok, out) = k(&["auth", "whoami", sa]);
        assert!(ok && out.contains("[system:serviceaccounts system:serviceaccounts:t system:authenticated]"), "{out}");
        let (ok, out) = k(&["auth", "whoami", "--as=alice", "--as-group=devs", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"]);
        assert!(ok && out.trim() == r#"alice ["devs","system:authenticated"]"#, "{out}");
        // a user may impersonate only what RBAC grants it the verb `impersonate` on
        let (ok, out) = kb(&["get", "pods", "--as=alice"]);
        assert!(!ok && out.contains(r#"users "alice" is forbidden: User "system:serviceaccount:t:bot" cannot impersonate resource "users" in API group "" at the cluster scope"#), "{out}");
        let grant = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: as-alice}\nrules: [{apiGroups: [\"\"], resources: [users], verbs: [impersonate], resourceNames: [alice]}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: bot-as-alice}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: as-alice}\nsubjects: [{kind: ServiceAccount, name: bot, namespace: t}]\n";
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(grant));
        assert!(ok, "{out}");
        // (the authorizer sees the new binding a moment later, as on any cluster)
        let mut last = String::new();
        let granted = (0..50).any(|_| {
            let (ok, out) = kb(&["auth", "whoami", "--as=alice"]);
            last = out;
            ok || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                false
            }
        });
        assert!(granted && last.contains("alice"), "{last}");
        let (ok, out) = kb(&["get", "pods", "--as=alice", "-n", "t"]);
        assert!(!ok && out.contains(r#"User "alice" cannot list resource "pods""#), "{out}");
        let (ok, out) = kb(&["get", "pods", "--as=alice", "--as-group=system:masters"]);
        assert!(!ok && out.contains(r#"groups "system:masters" is forbidden: User "system:serviceaccount:t:bot" cannot impersonate resource "groups""#), "{out}");

        // a pod-bound token dies with its pod
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: t}\nspec: {serviceAccountName: bot, containers: [{name: c, image: busybox}]}\n";
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(pod));
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "token", "default", "-n", "t", "--bound-object-kind=Pod", "--bound-object-name=p"]);
        assert!(!ok && out.contains("cannot bind token for serviceaccount \"default\" to pod running with different serviceaccount name."), "{out}");
        let (ok, bound) = k(&["create", "token", "bot", "-n", "t", "--bound-object-kind=Pod", "--bound-object-name=p"]);
        assert!(ok, "{bound}");
        let bound_cfg = token_kubeconfig(&dir, "bound.kubeconfig", &url2, &ca2, &format!("    token: {}\n", bound.trim()));
        let (ok, out) = kubectl(&bound_cfg, &home, &["auth", "whoami", "-o", "json"], None);
        assert!(ok && out.contains("authentication.kubernetes.io/pod-name") && out.contains("\"p\""), "{out}");
        let (ok, out) = k(&["delete", "pod", "p", "-n", "t", "--grace-period=0", "--force"]);
        assert!(ok, "{out}");
        let (ok, out) = kubectl(&bound_cfg, &home, &["auth", "whoami"], None);
        assert!(!ok && out.contains("Unauthorized"), "{out}");
        // and every token of a deleted ServiceAccount
        let (ok, out) = k(&["delete", "serviceaccount", "bot", "-n", "t"]);
        assert!(ok, "{out}");
        let (ok, out) = kb(&["get", "pods"]);
        assert!(!ok && out.contains("Unauthorized"), "{out}");

        // a client certificate from the cluster CA
        let (ok, out) = kubectl(&jane, &home, &["auth", "whoami"], None);
        assert!(ok && out.contains("jane") && out.contains("[devs system:authenticated]"), "{out}");
        let (ok, out) = kubectl(&jane, &home, &["get", "pods"], None);
        assert!(!ok && out.contains("User \"jane\" cannot list resource \"pods\""), "{out}");
        // discovery is RBAC's too: without system:discovery, users cannot read /api
        let (ok, out) = k(&["delete", "clusterrolebinding", "system:discovery"]);
        assert!(ok, "{out}");
        let (ok, out) = kubectl(&jane, &home, &["get", "--raw", "/api"], None);
        assert!(!ok && out.contains("forbidden: User \"jane\" cannot get path \"/api\""), "{out}");
        let (ok, out) = k(&["get", "--raw", "/api"]);
        assert!(ok && out.contains("APIVersions"), "{out}");
    })
    .await
    .unwrap();

    // bad TokenRequest bodies: a Status, nothing issued, the server keeps serving
    let http = https_client_builder(&server).build().unwrap();
    let url = format!(
        "{}/api/v1/namespaces/default/serviceaccounts/default/token",
        server.url()
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "application/json",
            br#"{"kind":"Pod","apiVersion":"v1"}"#.to_vec(),
            400,
            "must be a authentication.k8s.io/v1 TokenRequest, not a Pod",
        ),
        (
            "application/json",
            br#"{"spec":{"expirationSeconds":"soon"}}"#.to_vec(),
            400,
            "spec.expirationSeconds must be an integer",
        ),
        (
            "application/json",
            br#"{"spec":{"boundObjectRef":{"kind":"ConfigMap","apiVersion":"v1","name":"x"}}}"#
                .to_vec(),
            400,
            "cannot bind token to object of type v1, Kind=ConfigMap",
        ),
        (
            "application/vnd.kubernetes.protobuf",
            b"k8s\x00\x0a\xff".to_vec(),
            400,
            "decoding the envelope (runtime.Unknown) from protobuf",
        ),
        (
            "application/vnd.kubernetes.protobuf",
            b"garbage".to_vec(),
            400,
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
        ),
        (
            "application/json",
            format!(r#"{{"spec":{{"audiences":["{}"]}}}}"#, "A".repeat(4 << 20)).into_bytes(),
            400,
            "limit",
        ),
    ];
    for (ct, body, code, needle) in cases {
        let r = http
            .post(&url)
            .bearer_auth(server.admin_token())
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{needle}");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert!(v["message"].as_str().unwrap_or("").contains(needle), "{v}");
        assert!(!v.to_string().contains("eyJ"), "{v}");
    }
    let r = http
        .post(&url)
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // a token signed by another key is refused
    let other = tempfile::tempdir().unwrap();
    let forged = kubepull_control::auth::TokenIssuer::load_or_create(other.path()).unwrap();
    let t = forged
        .issue(&kubepull_control::auth::Claims {
            namespace: "default".into(),
            name: "default".into(),
            uid: "x".into(),
            audiences: vec![kubepull_control::auth::ISSUER.into()],
            iat: jiff::Timestamp::now().as_second(),
            exp: jiff::Timestamp::now().as_second() + 3600,
            jti: "j".into(),
            bound: None,
            node: None,
        })
        .unwrap();
    let r = http
        .get(format!("{}/api/v1/namespaces", server.url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    server.shutdown().await;
}

/// RBAC escalation prevention with kubectl's own `create role|rolebinding|clusterrolebinding`
/// (protobuf bodies): a namespace admin grants only what it holds, roleRef is immutable, and
/// cluster-scoped grants need cluster permissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_escalation_is_prevented() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let dir = d.path().to_path_buf();
    let (url, ca) = (server.url(), server.ca_pem());
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        for args in [
            &["create", "namespace", "t"][..],
            &["create", "serviceaccount", "lead", "-n", "t"],
            &["create", "rolebinding", "lead-admin", "--clusterrole=admin", "--serviceaccount=t:lead", "-n", "t"],
        ] {
            let (ok, out) = k(args);
            assert!(ok, "{args:?}: {out}");
        }
        let (ok, token) = k(&["create", "token", "lead", "-n", "t"]);
        assert!(ok, "{token}");
        let lead = token_kubeconfig(&dir, "lead.kubeconfig", &url, &ca, &format!("    token: {}\n", token.trim()));
        let kl = |args: &[&str]| kubectl(&lead, &home, args, None);
        let (ok, out) = kl(&["create", "role", "pod-reader", "--verb=get,list", "--resource=pods"]);
        assert!(ok, "{out}");
        let (ok, out) = kl(&["create", "role", "big", "--verb=get", "--resource=nodes,pods"]);
        assert!(!ok, "{out}");
        assert!(
            out.contains("roles.rbac.authorization.k8s.io \"big\" is forbidden: user \"system:serviceaccount:t:lead\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:t\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
            "{out}"
        );
        let (ok, out) = kl(&["create", "rolebinding", "eve-admin", "--clusterrole=cluster-admin", "--user=eve"]);
        assert!(!ok && out.contains("is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"), "{out}");
        let (ok, out) = kl(&["create", "rolebinding", "eve-view", "--clusterrole=view", "--user=eve"]);
        assert!(ok, "{out}");
        let (ok, out) = kl(&["create", "rolebinding", "eve-reader", "--role=pod-reader", "--user=eve"]);
        assert!(ok, "{out}");
        let (ok, out) = kl(&["create", "clusterrolebinding", "eve-view", "--clusterrole=view", "--user=eve"]);
        assert!(!ok && out.contains("clusterrolebindings.rbac.authorization.k8s.io is forbidden: User \"system:serviceaccount:t:lead\" cannot create resource \"clusterrolebindings\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"), "{out}");
        // eve got view in t (as the binding says), nothing elsewhere
        let sar = "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: eve\n  resourceAttributes: {namespace: t, verb: list, group: apps, resource: deployments}\n";
        let (ok, out) = kubectl(&admin, &home, &["create", "-f", "-", "-o", "jsonpath={.status.allowed} {.status.reason}"], Some(sar));
        assert!(ok && out.starts_with("true RBAC: allowed by RoleBinding \"eve-view/t\" of ClusterRole \"view\" to eve"), "{out}");
        let (ok, out) = kubectl(&admin, &home, &["create", "-f", "-", "-o", "jsonpath={.status.allowed}"], Some(&sar.replace("namespace: t", "namespace: default")));
        assert!(ok && out.trim() == "false", "{out}");
        let (ok, out) = kubectl(&admin, &home, &["create", "-f", "-"], Some("apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  resourceAttributes: {verb: list, resource: pods}\n"));
        assert!(!ok && out.contains("spec.user: Invalid value: \"\": at least one of user or group must be specified"), "{out}");
        // roleRef cannot change
        let (ok, out) = k(&["patch", "rolebinding", "eve-view", "-n", "t", "--type=merge", "-p", "{\"roleRef\":{\"name\":\"edit\"}}"]);
        assert!(!ok && out.contains("roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"), "{out}");
        // the stored binding carries the defaulted roleRef apiGroup; writing it out again is
        // no change, and patching a binding that does not exist is 404 as for any object
        let (ok, out) = k(&["get", "rolebinding", "eve-view", "-n", "t", "-o", "jsonpath={.roleRef.apiGroup}"]);
        assert!(ok && out.trim() == "rbac.authorization.k8s.io", "{out}");
        let (ok, out) = k(&["patch", "rolebinding", "eve-view", "-n", "t", "--type=merge", "-p", "{\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\"}}"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["patch", "rolebinding", "nobody", "-n", "t", "--type=merge", "-p", "{\"subjects\":[]}"]);
        assert!(!ok && out.contains("rolebindings.rbac.authorization.k8s.io \"nobody\" not found"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The review endpoints and CertificateSigningRequests refuse bad bodies with a Status, store
/// nothing, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_and_csr_endpoints_refuse_bad_bodies() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = https_client_builder(&server).build().unwrap();
    let ssar = format!(
        "{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        server.url()
    );
    let csr = format!(
        "{}/apis/certificates.k8s.io/v1/certificatesigningrequests",
        server.url()
    );
    let csr_strict = format!("{csr}?fieldValidation=Strict");
    let big = format!(
        r#"{{"spec":{{"resourceAttributes":{{"verb":"{}"}}}}}}"#,
        "A".repeat(4 << 20)
    );
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (&ssar, "application/json", b"{nope".to_vec(), 400, "not valid JSON"),
        (&ssar, "application/json", br#"{"kind":"Secret"}"#.to_vec(), 400, "must be a authorization.k8s.io/v1 SelfSubjectAccessReview, not a Secret"),
        (&ssar, "application/json", br#"{"spec":{}}"#.to_vec(), 422, "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"),
        (&ssar, "application/json", br#"{"spec":{"resourceAttributes":{"verb":"get"},"nonResourceAttributes":{"path":"/"}}}"#.to_vec(), 422, "cannot be specified in combination with resourceAttributes"),
        (&ssar, "application/vnd.kubernetes.protobuf", b"k8s\x00\x12\x05ab".to_vec(), 400, "decoding the envelope (runtime.Unknown) from protobuf"),
        (&ssar, "application/json", big.clone().into_bytes(), 400, "limit"),
        (&csr, "application/json", br#"{"metadata":{"name":"c"},"spec":{"signerName":"kubernetes.io/kubelet-serving"}}"#.to_vec(), 422, "spec.request: Required value"),
        (&csr, "application/json", br#"{"metadata":{"name":"c"},"spec":{"request":"bm90IGEgcGVt"}}"#.to_vec(), 422, "spec.signerName: Required value"),
        (&csr, "application/json", big.into_bytes(), 400, "limit"),
        // decoded into the typed object first: a wrong type, or an unknown field with
        // fieldValidation=Strict, is a 400 before any validation
        (&csr, "application/json", br#"{"metadata":{"name":"c"},"spec":{"request":5}}"#.to_vec(), 400, "CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: "),
        (&csr_strict, "application/json", br#"{"metadata":{"name":"c"},"spec":{"request":"bm90IGEgcGVt","bogus":1}}"#.to_vec(), 400, "CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: strict decoding error: unknown field \"spec.bogus\""),
        (&csr, "application/json", br#"{"metadata":{"name":"c"},"spec":{"signerName":"example.com/x","request":"bm90IGEgcGVt"}}"#.to_vec(), 422, "spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST"),
    ];
    for (url, ct, body, code, needle) in cases {
        let r = http
            .post(url)
            .bearer_auth(server.admin_token())
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{needle}");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert!(v["message"].as_str().unwrap_or("").contains(needle), "{v}");
    }
    // reviews are not stored or listed
    let r = http
        .get(&ssar)
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = http
        .get(&csr)
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "{v}");
    // a good request is stored as the typed object: the status is the server's, the requestor
    // recorded, an unknown field dropped with a warning (fieldValidation=Warn, the default)
    {
        use base64::Engine as _;
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let body = serde_json::json!({"metadata": {"name": "good"},
            "spec": {"signerName": "example.com/x", "usages": ["client auth"], "bogus": 1,
                "request": base64::engine::general_purpose::STANDARD.encode(pem)},
            "status": {"certificate": "aGk="}});
        let r = http
            .post(&csr)
            .bearer_auth(server.admin_token())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let warning = r
            .headers()
            .get("warning")
            .and_then(|w| w.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            warning.contains(r#"unknown field \"spec.bogus\""#),
            "{warning}"
        );
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert!(
            v.get("status")
                .is_none_or(|s| s.get("certificate").is_none()),
            "{v}"
        );
        assert!(v["spec"].get("bogus").is_none(), "{v}");
        assert!(
            !v["spec"]["username"].as_str().unwrap_or("").is_empty(),
            "{v}"
        );
    }
    // and a good review still works
    let r = http
        .post(&ssar)
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(r#"{"spec":{"resourceAttributes":{"verb":"get","resource":"pods","namespace":"default"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["status"]["allowed"], true);
    server.shutdown().await;
}

/// TokenReview and LocalSubjectAccessReview with kubectl: a ServiceAccount token is reviewed
/// (never echoed back), audiences are honoured, and only permitted callers may ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_and_local_access_review() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let dir = d.path().to_path_buf();
    let (url, ca) = (server.url(), server.ca_pem());
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        assert!(k(&["create", "namespace", "t"], None).0);
        assert!(k(&["create", "serviceaccount", "bot", "-n", "t"], None).0);
        let (ok, token) = k(&["create", "token", "bot", "-n", "t"], None);
        assert!(ok, "{token}");
        let token = token.trim().to_string();
        let review = |tok: &str, auds: &str| {
            format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {tok}\n{auds}")
        };
        let (ok, out) = k(&["create", "-f", "-", "-o", "json"], Some(&review(&token, "")));
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"]["authenticated"], true, "{v}");
        assert_eq!(v["status"]["user"]["username"], "system:serviceaccount:t:bot");
        assert_eq!(v["status"]["audiences"], serde_json::json!(["https://kubernetes.default.svc.cluster.local"]));
        assert!(!out.contains(&token), "the token is echoed: {out}");
        let (ok, out) = k(&["create", "-f", "-", "-o", "json"], Some(&review(&token, "  audiences: [vault]\n")));
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_ne!(v["status"]["authenticated"], true, "{v}");
        assert_eq!(v["status"]["error"], "invalid bearer token");
        let (ok, out) = k(&["create", "-f", "-", "-o", "jsonpath={.status.authenticated}"], Some(&review("kpn.n1.deadbeef", "")));
        assert!(ok && out.trim().is_empty(), "{out}");
        // the ServiceAccount itself may not review tokens
        let bot = token_kubeconfig(&dir, "bot.kubeconfig", &url, &ca, &format!("    token: {token}\n"));
        // (--validate=false: for a kind without a PATCH operation kubectl's client-side check lists
        // CustomResourceDefinitions, which this user may not, as against kube-apiserver)
        let (ok, out) = kubectl(&bot, &home, &["create", "--validate=false", "-f", "-"], Some(&review(&token, "")));
        assert!(!ok && out.contains("User \"system:serviceaccount:t:bot\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"), "{out}");
        // a local access review answers in its namespace only
        let lsar = "apiVersion: authorization.k8s.io/v1\nkind: LocalSubjectAccessReview\nmetadata: {namespace: t}\nspec:\n  user: system:serviceaccount:t:bot\n  groups: [system:serviceaccounts]\n  resourceAttributes: {verb: create, group: authentication.k8s.io, resource: selfsubjectreviews}\n";
        let (ok, out) = k(&["create", "-f", "-", "-o", "jsonpath={.status.allowed}"], Some(lsar));
        assert!(ok && out.trim() == "false", "{out}");
        let granted = lsar.replace("groups: [system:serviceaccounts]", "groups: [system:authenticated]");
        let (ok, out) = k(&["create", "-f", "-", "-o", "jsonpath={.status.allowed}"], Some(&granted));
        assert!(ok && out.trim() == "true", "{out}");
        let other_ns = lsar.replace("verb: create,", "verb: create, namespace: default,");
        let (ok, out) = k(&["create", "-f", "-"], Some(&other_ns));
        assert!(!ok && out.contains("spec.resourceAttributes.namespace must match metadata.namespace"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Is every leaf of `want` (what kubectl marshals) in `got` (what the server stored)? Nulls
/// (Go's zero `creationTimestamp`) are skipped; the server may add defaults.
fn assert_subset(want: &serde_json::Value, got: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (want, got) {
        (Value::Null, _) => {}
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                if v.is_null() {
                    continue;
                }
                let Some(gv) = g.get(k) else {
                    panic!("{path}.{k}: kubectl sent {v}, the stored object has nothing");
                };
                assert_subset(v, gv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}: {want} vs {got}");
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                assert_subset(a, b, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

/// kubectl 1.32 sends protobuf bodies and asks for protobuf answers for every `kubectl create`
/// subcommand of a served kind: what is stored is what kubectl meant (`--dry-run=client -o json`
/// prints the Go object it marshals: an explicit `--replicas=0`, empty ConfigMap and Secret
/// values, the bound object's uid), `auth can-i` (plain and `--list`) and `auth whoami` work,
/// and errors come back as protobuf `Status` objects that kubectl prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_every_served_kind_over_protobuf() {
    use base64::Engine as _;
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["web.example".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (crt, keyf) = (d.path().join("tls.crt"), d.path().join("tls.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&keyf, key.serialize_pem()).unwrap();
    let served = |g: &str, p: &str| kubepull_control::resources::find(g, "v1", p).is_some();
    let (jobs, cronjobs, services) = (
        served("batch", "jobs"),
        served("batch", "cronjobs"),
        served("", "services"),
    );
    let (dir, url, ca) = (d.path().to_path_buf(), server.url(), server.ca_pem());
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        let (ok, out) = k(&["create", "namespace", "pb"]);
        assert!(ok, "{out}");
        let (crt, keyf) = (
            format!("--cert={}", crt.display()),
            format!("--key={}", keyf.display()),
        );
        let mut cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec!["namespace", "pb2"], vec!["namespace", "pb2"]),
            (
                vec![
                    "secret",
                    "generic",
                    "gen",
                    "-n",
                    "pb",
                    "--from-literal=user=admin",
                    "--from-literal=empty=",
                ],
                vec!["secret", "gen", "-n", "pb"],
            ),
            (
                vec![
                    "secret",
                    "docker-registry",
                    "reg",
                    "-n",
                    "pb",
                    "--docker-server=reg.example:5000",
                    "--docker-username=u",
                    "--docker-password=pw-1",
                    "--docker-email=u@example.com",
                ],
                vec!["secret", "reg", "-n", "pb"],
            ),
            (
                vec!["secret", "tls", "tls", "-n", "pb", &crt, &keyf],
                vec!["secret", "tls", "-n", "pb"],
            ),
            (
                vec![
                    "configmap",
                    "cm",
                    "-n",
                    "pb",
                    "--from-literal=a=1",
                    "--from-literal=b=",
                ],
                vec!["configmap", "cm", "-n", "pb"],
            ),
            (
                vec!["serviceaccount", "bot", "-n", "pb"],
                vec!["serviceaccount", "bot", "-n", "pb"],
            ),
            (
                vec![
                    "deployment",
                    "web",
                    "-n",
                    "pb",
                    "--image=nginx:1.27",
                    "--replicas=3",
                    "--port=8080",
                ],
                vec!["deployment", "web", "-n", "pb"],
            ),
            (
                vec![
                    "deployment",
                    "zero",
                    "-n",
                    "pb",
                    "--image=busybox",
                    "--replicas=0",
                    "--",
                    "sleep",
                    "3600",
                ],
                vec!["deployment", "zero", "-n", "pb"],
            ),
            (
                vec![
                    "role",
                    "reader",
                    "-n",
                    "pb",
                    "--verb=get,list",
                    "--resource=pods,deployments.apps",
                ],
                vec!["role", "reader", "-n", "pb"],
            ),
            (
                vec![
                    "clusterrole",
                    "health",
                    "--verb=get",
                    "--non-resource-url=/healthz",
                ],
                vec!["clusterrole", "health"],
            ),
            (
                vec![
                    "clusterrole",
                    "agg",
                    "--aggregation-rule=rbac.example.com/aggregate=true",
                ],
                vec!["clusterrole", "agg"],
            ),
            (
                vec![
                    "rolebinding",
                    "rb",
                    "-n",
                    "pb",
                    "--role=reader",
                    "--serviceaccount=pb:bot",
                    "--user=alice",
                    "--group=devs",
                ],
                vec!["rolebinding", "rb", "-n", "pb"],
            ),
            (
                vec![
                    "clusterrolebinding",
                    "crb",
                    "--clusterrole=health",
                    "--serviceaccount=pb:bot",
                ],
                vec!["clusterrolebinding", "crb"],
            ),
        ];
        if jobs {
            cases.push((
                vec!["job", "j", "-n", "pb", "--image=busybox", "--", "true"],
                vec!["job", "j", "-n", "pb"],
            ));
        }
        if cronjobs {
            cases.push((
                vec![
                    "cronjob",
                    "cj",
                    "-n",
                    "pb",
                    "--image=busybox",
                    "--schedule=*/5 * * * *",
                    "--",
                    "true",
                ],
                vec!["cronjob", "cj", "-n", "pb"],
            ));
        }
        if services {
            cases.push((
                vec!["service", "clusterip", "svc", "-n", "pb", "--tcp=80:8080"],
                vec!["service", "svc", "-n", "pb"],
            ));
        }
        cases.extend([
            (
                vec![
                    "ingress",
                    "web",
                    "-n",
                    "pb",
                    "--class=nginx",
                    "--rule=web.example/*=svc:80,tls=web-tls",
                    "--annotation=team=a",
                ],
                vec!["ingress", "web", "-n", "pb"],
            ),
            (
                vec![
                    "quota",
                    "q",
                    "-n",
                    "pb2",
                    "--hard=count/configmaps=10,secrets=20",
                ],
                vec!["quota", "q", "-n", "pb2"],
            ),
            (
                vec![
                    "poddisruptionbudget",
                    "web",
                    "-n",
                    "pb",
                    "--selector=app=web",
                    "--min-available=50%",
                ],
                vec!["pdb", "web", "-n", "pb"],
            ),
            (
                vec![
                    "priorityclass",
                    "batch-low",
                    "--value=100",
                    "--description=batch work",
                    "--preemption-policy=Never",
                ],
                vec!["priorityclass", "batch-low"],
            ),
        ]);
        for (args, get) in &cases {
            // before the subcommand's own `--`
            let mut dry = vec!["create", "--dry-run=client", "-o", "json"];
            dry.extend(args);
            let (ok, want) = k(&dry);
            assert!(ok, "{want}");
            let want: serde_json::Value =
                serde_json::from_str(&want).unwrap_or_else(|e| panic!("{dry:?}: {e}: {want}"));
            let mut create = vec!["create"];
            create.extend(args);
            let (ok, out) = k(&create);
            assert!(ok && out.contains("created"), "{args:?}: {out}");
            let mut g = vec!["get"];
            g.extend(get);
            g.extend(["-o", "json"]);
            let (ok, got) = k(&g);
            assert!(ok, "{got}");
            let got: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_subset(&want, &got, &format!("{args:?}"));
        }
        let get = |args: &[&str]| -> serde_json::Value {
            let mut a = vec!["get"];
            a.extend(args);
            a.extend(["-o", "json"]);
            let (ok, out) = k(&a);
            assert!(ok, "{out}");
            serde_json::from_str(&out).unwrap()
        };
        // the quirks, spelled out: Go writes these zeros and empties, and they are meant
        let zero = get(&["deployment", "zero", "-n", "pb"]);
        assert_eq!(zero["spec"]["replicas"], 0);
        assert_eq!(
            zero["spec"]["template"]["spec"]["containers"][0]["command"],
            serde_json::json!(["sleep", "3600"])
        );
        let web = get(&["deployment", "web", "-n", "pb"]);
        assert_eq!(web["spec"]["replicas"], 3);
        assert_eq!(web["metadata"]["labels"]["app"], "web");
        assert_eq!(
            web["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.27"
        );
        assert_eq!(
            web["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            8080
        );
        assert_eq!(
            get(&["configmap", "cm", "-n", "pb"])["data"],
            serde_json::json!({"a": "1", "b": ""})
        );
        let gen = get(&["secret", "gen", "-n", "pb"]);
        assert_eq!(
            gen["data"],
            serde_json::json!({"user": "YWRtaW4=", "empty": ""})
        );
        assert_eq!(gen["type"], "Opaque");
        let reg = get(&["secret", "reg", "-n", "pb"]);
        assert_eq!(reg["type"], "kubernetes.io/dockerconfigjson");
        let cfg = base64::engine::general_purpose::STANDARD
            .decode(reg["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
        assert_eq!(cfg["auths"]["reg.example:5000"]["username"], "u");
        assert_eq!(
            get(&["secret", "tls", "-n", "pb"])["type"],
            "kubernetes.io/tls"
        );

        // a token bound to a Secret: the uid travels as BoundObjectReference.uID
        let uid = gen["metadata"]["uid"].as_str().unwrap().to_string();
        let (ok, out) = k(&[
            "create",
            "token",
            "bot",
            "-n",
            "pb",
            "--audience=vault",
            "--duration=10m",
            "--bound-object-kind=Secret",
            "--bound-object-name=gen",
            "--bound-object-uid=00000000-0000-0000-0000-000000000000",
        ]);
        assert!(
            !ok && out.contains("does not match the UID in record"),
            "{out}"
        );
        let bound = format!("--bound-object-uid={uid}");
        let (ok, token) = k(&[
            "create",
            "token",
            "bot",
            "-n",
            "pb",
            "--audience=vault",
            "--duration=10m",
            "--bound-object-kind=Secret",
            "--bound-object-name=gen",
            &bound,
        ]);
        assert!(ok && token.starts_with("eyJ"), "{token}");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.trim().split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], serde_json::json!(["vault"]));
        assert_eq!(claims["kubernetes.io"]["secret"]["uid"], uid.as_str());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            600
        );

        // can-i and whoami, as the admin and as the ServiceAccount the RoleBinding names
        let (ok, out) = k(&["auth", "can-i", "create", "deployments.apps", "-n", "pb"]);
        assert!(ok && out.trim() == "yes", "{out}");
        let (ok, token) = k(&["create", "token", "bot", "-n", "pb"]);
        assert!(ok, "{token}");
        let bot = token_kubeconfig(
            &dir,
            "pb-bot.kubeconfig",
            &url,
            &ca,
            &format!("    token: {}\n", token.trim()),
        );
        let kb = |args: &[&str]| kubectl(&bot, &home, args, None);
        let (ok, out) = kb(&["auth", "can-i", "list", "pods", "-n", "pb"]);
        assert!(ok && out.trim() == "yes", "{out}");
        let (ok, out) = kb(&["auth", "can-i", "delete", "pods", "-n", "pb"]);
        assert!(!ok && out.trim() == "no", "{out}");
        let (ok, out) = kb(&["auth", "can-i", "--list", "-n", "pb"]);
        assert!(
            ok && out.contains("deployments.apps") && out.contains("[/healthz]"),
            "{out}"
        );
        let (ok, out) = kb(&["auth", "whoami", "-o", "json"]);
        assert!(ok, "{out}");
        let me: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            me["status"]["userInfo"]["username"],
            "system:serviceaccount:pb:bot"
        );

        // describe reads through the typed clients too: protobuf objects and lists back
        let (ok, out) = k(&["describe", "deployment", "web", "-n", "pb"]);
        assert!(
            ok && out.contains("nginx:1.27")
                && out.contains("app=web")
                && out.contains("Port:          8080"),
            "{out}"
        );
        let (ok, out) = k(&["describe", "secret", "gen", "-n", "pb"]);
        assert!(
            ok && out.contains("user:   5 bytes") && out.contains("empty:  0 bytes"),
            "{out}"
        );
        let (ok, out) = k(&["describe", "serviceaccount", "bot", "-n", "pb"]);
        assert!(ok && out.contains("Name:                bot"), "{out}");

        // errors are protobuf Status objects kubectl prints
        let (ok, out) = k(&["create", "namespace", "pb"]);
        assert!(
            !ok && out.contains("namespaces \"pb\" already exists"),
            "{out}"
        );
        let (ok, out) = k(&["create", "deployment", "Bad_Name", "-n", "pb", "--image=x"]);
        assert!(
            !ok && out.contains("metadata.name: Invalid value: \"Bad_Name\""),
            "{out}"
        );
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The protobuf wire contract beyond kubectl: protobuf answers and Status errors, the
/// length-framed watch stream, Tables never protobuf (406), unknown Content-Types (415), and
/// malformed protobuf (400, nothing stored, the server keeps serving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_responses_watch_and_refusals() {
    use kubepull_control::protobuf::{decode, decode_watch_frames, encode, MEDIA_TYPE};
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = https_client_builder(&server).build().unwrap();
    let base = format!("{}/api/v1/namespaces/default/configmaps", server.url());
    let cm = serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "c1", "labels": {"a": "b"}}, "data": {"k": "v", "e": ""}});
    let r = http
        .post(&base)
        .bearer_auth(server.admin_token())
        .header("content-type", MEDIA_TYPE)
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .body(encode(&cm).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.headers()["content-type"], MEDIA_TYPE);
    let created = decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(created["data"], serde_json::json!({"k": "v", "e": ""}));
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    assert!(created["metadata"]["creationTimestamp"].as_str().is_some());

    // a 404 as a protobuf Status
    let r = http
        .get(format!("{base}/nope"))
        .bearer_auth(server.admin_token())
        .header("accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let st = decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (
            st["kind"].as_str(),
            st["reason"].as_str(),
            st["code"].as_i64()
        ),
        (Some("Status"), Some("NotFound"), Some(404))
    );
    assert_eq!(st["message"], "configmaps \"nope\" not found");

    // what is not an API object stays JSON
    let r = http
        .get(format!("{}/version", server.url()))
        .bearer_auth(server.admin_token())
        .header("accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["content-type"].to_str().unwrap()
        ),
        (200, "application/json")
    );

    // a list, protobuf
    let r = http
        .get(&base)
        .bearer_auth(server.admin_token())
        .header("accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    let list = decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"][0]["metadata"]["name"], "c1");

    // Tables are never protobuf: 406 when nothing else is accepted, plain JSON when it is
    let table = "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io";
    let r = http
        .get(&base)
        .bearer_auth(server.admin_token())
        .header("accept", table)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["reason"], "NotAcceptable");
    assert_eq!(v["message"], "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf");
    let r = http
        .get(&base)
        .bearer_auth(server.admin_token())
        .header("accept", format!("{table},application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["kind"], "ConfigMapList");

    // watch: 4-byte length frames of WatchEvents, each object a full envelope
    let r = http
        .get(format!("{base}?watch=1&timeoutSeconds=1"))
        .bearer_auth(server.admin_token())
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let body = r.bytes().await.unwrap();
    let (events, rest) = decode_watch_frames(&body).unwrap();
    assert_eq!(rest, 0);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "ADDED");
    assert_eq!(events[0].1["metadata"]["name"], "c1");
    assert_eq!(events[0].1["kind"], "ConfigMap");

    // a live event on a watch from c1's resourceVersion: the stream is read until it arrives
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut r = http
        .get(format!(
            "{base}?watch=1&resourceVersion={rv}&timeoutSeconds=300"
        ))
        .bearer_auth(server.admin_token())
        .header("accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    let c2 = serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "live"}, "binaryData": {"b": "AAE="}});
    let made = http
        .post(&base)
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(c2.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let mut buf = vec![];
    let events = loop {
        let chunk = r
            .chunk()
            .await
            .unwrap()
            .expect("the watch ended before the event");
        buf.extend_from_slice(&chunk);
        let (events, _) = decode_watch_frames(&buf).unwrap();
        if !events.is_empty() {
            break events;
        }
    };
    drop(r);
    assert_eq!(events[0].0, "ADDED");
    assert_eq!(events[0].1["metadata"]["name"], "live");
    assert_eq!(events[0].1["binaryData"], serde_json::json!({"b": "AAE="}));
    let r = http
        .delete(format!("{base}/live"))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // subresources: pods/binding (a v1 Binding) and deployments/scale (an autoscaling/v1 Scale)
    let ns_base = format!("{}/api/v1/namespaces/default", server.url());
    let pod = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let r = http
        .post(format!("{ns_base}/pods"))
        .bearer_auth(server.admin_token())
        .header("content-type", MEDIA_TYPE)
        .body(encode(&pod).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let binding = serde_json::json!({"kind": "Binding", "apiVersion": "v1", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n1"}});
    let r = http
        .post(format!("{ns_base}/pods/p/binding"))
        .bearer_auth(server.admin_token())
        .header("content-type", MEDIA_TYPE)
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf, application/json",
        )
        .body(encode(&binding).unwrap())
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    assert_eq!(code, 201, "{:?}", decode(&body));
    let st = decode(&body).unwrap();
    assert_eq!(
        (st["kind"].as_str(), st["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    let r = http
        .get(format!("{ns_base}/pods/p"))
        .bearer_auth(server.admin_token())
        .header("accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    let got = decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(got["spec"]["nodeName"], "n1");
    assert_eq!(got["spec"]["containers"][0]["image"], "busybox");
    // a plain update may not move it (ValidatePodUpdate); a gated pod is not bound
    let mut moved = got.clone();
    moved["spec"]["nodeName"] = serde_json::json!("n2");
    let r = http
        .put(format!("{ns_base}/pods/p"))
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&moved).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let st: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{st}"
    );
    let gated = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "g"},
        "spec": {"schedulingGates": [{"name": "example.com/wait"}], "containers": [{"name": "c", "image": "busybox"}]}});
    let r = http
        .post(format!("{ns_base}/pods"))
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&gated).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = http
        .post(format!("{ns_base}/pods/g/binding"))
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&serde_json::json!({"kind": "Binding", "apiVersion": "v1", "metadata": {"name": "g"},
            "target": {"kind": "Node", "name": "n1"}})).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let st: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        st["message"],
        "Operation cannot be fulfilled on pods/binding \"g\": pod g has non-empty .spec.schedulingGates"
    );
    let deploy = serde_json::json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "d"}},
            "template": {"metadata": {"labels": {"a": "d"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let apps = format!(
        "{}/apis/apps/v1/namespaces/default/deployments",
        server.url()
    );
    let r = http
        .post(&apps)
        .bearer_auth(server.admin_token())
        .header("content-type", MEDIA_TYPE)
        .body(encode(&deploy).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = http
        .get(format!("{apps}/d/scale"))
        .bearer_auth(server.admin_token())
        .header("accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    let mut scale = decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(1))
    );
    scale["spec"]["replicas"] = serde_json::json!(0);
    let r = http
        .put(format!("{apps}/d/scale"))
        .bearer_auth(server.admin_token())
        .header("content-type", MEDIA_TYPE)
        .header("accept", MEDIA_TYPE)
        .body(encode(&scale).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // ScaleSpec.replicas is a plain int32 with omitempty: Go's JSON of 0 leaves it out
    assert_eq!(
        decode(&r.bytes().await.unwrap()).unwrap()["spec"],
        serde_json::json!({})
    );
    let r = http
        .get(format!("{apps}/d"))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["spec"]["replicas"], 0, "scaled to 0");

    // refused bodies store nothing, and the server keeps serving
    let post = |ct: &str, body: Vec<u8>| {
        http.post(&base)
            .bearer_auth(server.admin_token())
            .header("content-type", ct.to_string())
            .body(body)
            .send()
    };
    let r = post("text/plain", b"name: x".to_vec()).await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["reason"], "UnsupportedMediaType");
    assert_eq!(v["message"], "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf");
    let mut truncated = encode(&serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c2"}, "data": {"k": "v"}})).unwrap();
    // past the two empty strings at the end, into the object
    truncated.truncate(truncated.len() - 8);
    let wrong_type = encode(
        &serde_json::json!({"kind": "Secret", "apiVersion": "v9", "metadata": {"name": "c3"}}),
    );
    assert!(wrong_type.is_err(), "no v9 Secret message");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            truncated,
            "decoding the envelope (runtime.Unknown) from protobuf",
        ),
        (
            b"{\"metadata\":{\"name\":\"c4\"}}".to_vec(),
            "provided data does not appear to be a protobuf message",
        ),
        (b"k8s\x00".to_vec(), "empty body"),
        (vec![], "empty data"),
    ];
    for (body, needle) in cases {
        let r = post(MEDIA_TYPE, body).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{needle}");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert!(v["message"].as_str().unwrap_or("").contains(needle), "{v}");
    }
    let r = http
        .get(&base)
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "only c1: {v}");
    server.shutdown().await;
}

/// OpenAPI as kubectl uses it: `explain` from the v3 documents (plain, `--recursive`) and from the
/// v2 protobuf document (`-o plaintext-openapiv2`), server-side field validation detected from
/// the PATCH operations (`Strict` refuses an unknown field with the upstream text, `--validate=warn`
/// gives the warning), and `apply`'s strategic-merge patch built from the patch merge keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_explain_validation_and_apply_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["explain", "deployment.spec.template.spec.containers"], None);
        assert!(ok, "{out}");
        assert!(out.contains("GROUP:      apps") && out.contains("KIND:       Deployment"), "{out}");
        assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
        assert!(out.contains("List of containers belonging to the pod."), "{out}");
        assert!(out.contains("imagePullPolicy\t<string>"), "{out}");

        let (ok, out) = k(&["explain", "secret", "--recursive"], None);
        assert!(ok, "{out}");
        assert!(out.contains("KIND:       Secret"), "{out}");
        assert!(out.contains("stringData\t<map[string]string>"), "{out}");
        // nested fields of referenced definitions are expanded
        assert!(out.contains("managedFields\t<[]ManagedFieldsEntry>"), "{out}");
        assert!(out.contains("fieldsType\t<string>"), "{out}");

        let (ok, out) = k(&["explain", "-o", "plaintext-openapiv2", "pod.spec"], None);
        assert!(ok, "{out}");
        assert!(out.contains("RESOURCE: spec <Object>"), "{out}");
        assert!(out.contains("PodSpec is a description of a pod."), "{out}");
        assert!(out.contains("imagePullSecrets\t<[]Object>"), "{out}");

        // kinds of every served group are explained
        for what in ["role.rules", "lease.spec", "csr.spec.usages", "node.spec.podCIDR"] {
            let (ok, out) = k(&["explain", what], None);
            assert!(ok && out.contains("FIELD:"), "{what}: {out}");
        }
        let (ok, out) = k(&["explain", "deployment.spec.nope"], None);
        assert!(!ok && out.contains("field \"nope\" does not exist"), "{out}");

        // kinds without a PATCH operation (the reviews) are validated by kubectl itself against
        // the v2 document it reads as protobuf
        let sar = "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: eve\n  bogus: 1\n  resourceAttributes: {verb: list, resource: pods, nope: x}\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(sar));
        assert!(!ok, "{out}");
        assert!(out.contains("error validating data: [ValidationError(SubjectAccessReview.spec): unknown field \"bogus\" in io.k8s.api.authorization.v1.SubjectAccessReviewSpec, ValidationError(SubjectAccessReview.spec.resourceAttributes): unknown field \"nope\" in io.k8s.api.authorization.v1.ResourceAttributes]"), "{out}");

        // server-side field validation: Strict (kubectl's default) refuses, Warn warns
        let dep = |extra: &str, image: &str, env: &str| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\nspec:\n  replicas: 1\n{extra}  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n{env}      - name: side\n        image: busybox\n")
        };
        let env = "        env:\n        - {name: A, value: a}\n        - {name: B, value: b}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(&dep("  replicass: 2\n", "nginx", env)));
        assert!(!ok, "{out}");
        assert!(
            out.contains("Error from server (BadRequest): error when creating \"STDIN\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicass\""),
            "{out}"
        );
        let (ok, out) = k(&["apply", "--validate=warn", "-f", "-"], Some(&dep("  replicass: 2\n", "nginx", env)));
        assert!(ok, "{out}");
        assert!(out.contains("Warning: unknown field \"spec.replicass\""), "{out}");
        assert!(out.contains("deployment.apps/web created"), "{out}");
        let (ok, out) = k(&["apply", "--validate=false", "-f", "-"], Some(&dep("  replicass: 3\n", "nginx", env)));
        assert!(ok && !out.contains("Warning"), "{out}");
        // a patch is checked as the object it makes
        let (ok, out) = k(&["apply", "--validate=warn", "-f", "-"], Some(&dep("  paused: false\n  pausd: true\n", "nginx", env)));
        assert!(ok && out.contains("Warning: unknown field \"spec.pausd\""), "{out}");
        let (ok, out) = k(&["apply", "-f", "-"], Some(&dep("  pausd: true\n", "nginx", env)));
        assert!(!ok && out.contains("error when patching \"STDIN\"") && out.contains("strict decoding error: unknown field \"spec.pausd\""), "{out}");
        // in both cases the unknown field is dropped, as upstream's decoding drops it
        let (ok, out) = k(&["get", "deployment", "web", "-o", "jsonpath={.spec}"], None);
        assert!(ok && out.contains("\"replicas\":1") && !out.contains("replicass"), "{out}");

        // apply: the image of container c changes, env B is dropped; the patch addresses
        // containers and env by their merge key (name), so `side` and A are kept
        let env2 = "        env:\n        - {name: A, value: a}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(&dep("", "nginx:2", env2)));
        assert!(ok, "{out}");
        assert!(out.contains("deployment.apps/web configured"), "{out}");
        let (ok, out) = k(&["get", "deployment", "web", "-o", "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image};{end}|{.spec.template.spec.containers[0].env}"], None);
        assert!(ok, "{out}");
        assert_eq!(out, "c=nginx:2;side=busybox;|[{\"name\":\"A\",\"value\":\"a\"}]");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The OpenAPI endpoints over HTTP: discovery hashes are uppercase hex SHA-512 of the documents,
/// a stale hash is redirected, a current one is immutable, the v2 document is served as JSON and
/// as protobuf, an unacceptable `Accept` gets 406, and odd paths get 404 without harming the
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_endpoints_over_http() {
    use sha2::Digest as _;
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = https_client_builder(&server)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, accept: &str| {
        http.get(format!("{}{path}", server.url()))
            .bearer_auth(server.admin_token())
            .header("accept", accept)
            .send()
    };
    let disc: serde_json::Value = serde_json::from_slice(
        &get("/openapi/v3", "application/json")
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let url = disc["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(&url, "application/json").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, immutable");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body = r.bytes().await.unwrap();
    let h: String = sha2::Sha512::digest(&body)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(url.ends_with(&format!("?hash={h}")), "{url}");
    assert_eq!(etag, format!("\"{h}\""));
    let r = get("/openapi/v3/apis/apps/v1?hash=0000", "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"].to_str().unwrap(), url);
    for (path, accept) in [
        ("/openapi/v2", "text/html"),
        ("/openapi/v3/api/v1", "application/yaml"),
    ] {
        assert_eq!(get(path, accept).await.unwrap().status(), 406, "{path}");
    }
    let r = get(
        "/openapi/v2",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    let pb = r.bytes().await.unwrap();
    let r = get("/openapi/v2", "application/json").await.unwrap();
    let v2: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"].is_object());
    assert!(pb.len() > 100_000 && pb.windows(22).any(|w| w == b"io.k8s.api.core.v1.Pod"));
    for odd in [
        "/openapi/v3/apis",
        "/openapi/v3/apis/x/y/z",
        "/openapi/v3/%ff",
        "/openapi/v3/api/v1/../../v2",
        "/openapi/v2/extra",
    ] {
        let r = get(odd, "*/*").await.unwrap();
        assert_eq!(r.status(), 404, "{odd}");
    }
    assert_eq!(
        get("/openapi/v3/api/v1", "*/*").await.unwrap().status(),
        200
    );

    // a group version registered at runtime appears, and its URL changes with its document
    let url_of = |d: &serde_json::Value| {
        d["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
            .as_str()
            .map(str::to_string)
    };
    let discovery = || async {
        serde_json::from_slice::<serde_json::Value>(
            &get("/openapi/v3", "application/json")
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap()
    };
    let reg = server.openapi();
    let schema = |field: &str| serde_json::json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {field: {"type": "string", "description": "A synthetic field."}}}}});
    let kind = |field: &str| {
        kubepull_control::openapi::CustomKind::new("CronTab", "crontabs", true, schema(field))
    };
    reg.set_group_version("stable.example.com", "v1", &[kind("cronSpec")])
        .unwrap();
    let u1 = url_of(&discovery().await).expect("registered");
    let doc: serde_json::Value = serde_json::from_slice(
        &get(&u1, "application/json")
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        doc["components"]["schemas"]["com.example.stable.v1.CronTab"]["properties"]["spec"]
            ["properties"]["cronSpec"]["description"],
        "A synthetic field."
    );
    reg.set_group_version("stable.example.com", "v1", &[kind("image")])
        .unwrap();
    let u2 = url_of(&discovery().await).expect("registered");
    assert_ne!(u1, u2);
    let r = get(&u1, "application/json").await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"].to_str().unwrap(), u2);
    // the other group versions keep their URLs
    assert_eq!(
        discovery().await["paths"]["apis/apps/v1"]["serverRelativeURL"],
        url.as_str()
    );
    reg.remove_group_version("stable.example.com", "v1");
    assert_eq!(url_of(&discovery().await), None);
    assert_eq!(
        get("/openapi/v3/apis/stable.example.com/v1", "*/*")
            .await
            .unwrap()
            .status(),
        404
    );
    server.shutdown().await;
}

/// Metadata-only answers (what client-go's metadata client and kube-rs's metadata watches ask
/// for): list, get and watch give `meta.k8s.io/v1` PartialObjectMetadata without the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_object_metadata_for_list_get_and_watch() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = https_client_builder(&server).build().unwrap();
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s1", "labels": {"a": "b"}}, "data": {"k": "TWV0YS1TZWNyZXQtVmFsdWU="}});
    let r = http
        .post(format!(
            "{}/api/v1/namespaces/default/secrets",
            server.url()
        ))
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(secret.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let get = |path: String, accept: &'static str| {
        http.get(format!("{}{path}", server.url()))
            .bearer_auth(server.admin_token())
            .header("accept", accept)
            .send()
    };
    let list_accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let text = get("/api/v1/namespaces/default/secrets".into(), list_accept)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["kind"], "PartialObjectMetadataList", "{v}");
    assert_eq!(v["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(v["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(v["items"][0]["metadata"]["labels"]["a"], "b");
    assert!(
        !text.contains("TWV0YS1TZWNyZXQtVmFsdWU="),
        "data in a metadata list: {text}"
    );
    let one: serde_json::Value = serde_json::from_str(
        &get(
            "/api/v1/namespaces/default/secrets/s1".into(),
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )
        .await
        .unwrap()
        .text()
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(one["kind"], "PartialObjectMetadata", "{one}");
    assert!(one.get("data").is_none());
    // a watch from the start streams metadata only
    let mut w = get(
        "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1".into(),
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    .await
    .unwrap();
    let mut body = Vec::new();
    while let Ok(Some(c)) = w.chunk().await {
        body.extend_from_slice(&c);
    }
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("\"PartialObjectMetadata\""), "{body}");
    assert!(!body.contains("TWV0YS1TZWNyZXQtVmFsdWU="), "{body}");
    // a plain Accept still gets the whole object
    let full = get(
        "/api/v1/namespaces/default/secrets/s1".into(),
        "application/json",
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(full.contains("TWV0YS1TZWNyZXQtVmFsdWU="));
    server.shutdown().await;
}

/// `/metrics` under kube-apiserver's names: requests by verb, resource and code as kubectl made
/// them; readable by the admin and by what RBAC allows (`system:monitoring`), not by others.
/// The counters are the process's: the requests counted are made on a custom resource of a
/// group no other test serves, so the other tests of this binary, running beside it, add
/// nothing to the series checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_follow_rbac() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let dir = d.path().to_path_buf();
    let (url, ca) = (server.url(), server.ca_pem());
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gauges.metrics.test.kubepull.io}\nspec:\n  group: metrics.test.kubepull.io\n  scope: Namespaced\n  names: {plural: gauges, kind: Gauge}\n  versions:\n  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}\n";
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(crd));
        assert!(ok, "{out}");
        for args in [
            &["wait", "--for=condition=Established", "crd/gauges.metrics.test.kubepull.io"][..],
            &["create", "namespace", "m"],
            &["create", "serviceaccount", "scraper", "-n", "m"],
        ] {
            let (ok, out) = k(args);
            assert!(ok, "{args:?}: {out}");
        }
        let gauge = "apiVersion: metrics.test.kubepull.io/v1\nkind: Gauge\nmetadata: {name: c, namespace: m}\n";
        let (ok, out) = kubectl(&admin, &home, &["create", "-f", "-"], Some(gauge));
        assert!(ok, "{out}");
        for args in [&["get", "gauges", "-n", "m"][..], &["get", "gauge", "c", "-n", "m"]] {
            let (ok, out) = k(args);
            assert!(ok, "{args:?}: {out}");
        }
        let (_, out) = k(&["get", "gauge", "missing", "-n", "m"]);
        assert!(out.contains("NotFound"), "{out}");
        let (ok, text) = k(&["get", "--raw", "/metrics"]);
        assert!(ok, "{text}");
        let series = |verb: &str, code: &str| {
            format!("apiserver_request_total{{verb=\"{verb}\",group=\"metrics.test.kubepull.io\",resource=\"gauges\",subresource=\"\",code=\"{code}\"}} ")
        };
        for want in [
            "# TYPE apiserver_request_total counter".to_string(),
            format!("{}1\n", series("POST", "201")),
            series("LIST", "200"),
            series("GET", "200"),
            series("GET", "404"),
            "apiserver_request_duration_seconds_bucket{verb=\"POST\",group=\"metrics.test.kubepull.io\",resource=\"gauges\",subresource=\"\",le=\"+Inf\"} 1\n".to_string(),
        ] {
            assert!(text.contains(&want), "missing {want}:\n{text}");
        }
        // a ServiceAccount without the right is refused, with it (system:monitoring) allowed
        let (ok, token) = k(&["create", "token", "scraper", "-n", "m"]);
        assert!(ok, "{token}");
        let sa = token_kubeconfig(&dir, "scraper.kubeconfig", &url, &ca, &format!("    token: {}\n", token.trim()));
        let (ok, out) = kubectl(&sa, &home, &["get", "--raw", "/metrics"], None);
        assert!(!ok && out.contains("forbidden"), "{out}");
        let (ok, out) = k(&["create", "clusterrolebinding", "scrape", "--clusterrole=system:monitoring", "--serviceaccount=m:scraper"]);
        assert!(ok, "{out}");
        let (ok, out) = kubectl(&sa, &home, &["get", "--raw", "/metrics"], None);
        assert!(ok && out.contains("apiserver_request_total"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Pod checks as kubectl meets them (`ValidatePodCreate`, `validateEphemeralContainers`, the
/// grace period's defaults and warning): a Pod with ephemeral containers is refused with the
/// target that names no container; a Pod's negative grace period is stored as 1, a
/// Deployment's is kept with kubectl's `Warning:` line; nothing refused is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_ephemeral_containers_and_grace_periods_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let dbg = "apiVersion: v1\nkind: Pod\nmetadata: {name: dbg}\nspec:\n  containers: [{name: c, image: busybox}]\n  ephemeralContainers: [{name: d, image: busybox, targetContainerName: nope}]\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(dbg));
        assert!(!ok, "{out}");
        assert!(out.contains("The Pod \"dbg\" is invalid: \n* spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\"\n* spec.ephemeralContainers: Forbidden: cannot be set on create"), "{out}");
        let (ok, out) = k(&["get", "pod", "dbg"], None);
        assert!(!ok && out.contains("NotFound"), "{out}");

        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: quick}\nspec:\n  terminationGracePeriodSeconds: -5\n  containers: [{name: c, image: busybox}]\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(pod));
        assert!(ok && !out.contains("Warning"), "{out}");
        let (ok, out) = k(&["get", "pod", "quick", "-o", "jsonpath={.spec.terminationGracePeriodSeconds}"], None);
        assert_eq!((ok, out.trim()), (true, "1"));

        let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: -3\n      containers: [{name: c, image: busybox}]\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(dep));
        assert!(ok, "{out}");
        assert!(out.contains("Warning: spec.template.spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1"), "{out}");
        let (ok, out) = k(&["get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.terminationGracePeriodSeconds}"], None);
        assert_eq!((ok, out.trim()), (true, "-3"));
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Namespace names as kubectl meets them (`ValidateNamespaceName`, `IsDNS1123Label`): dots and
/// length have their own messages, each a cause; nothing is created. A `generateName` is
/// validated as a prefix, and a long one that is valid is cut so the name fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_names_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["create", "namespace", "team.a"], None);
        assert!(!ok, "{out}");
        assert!(out.contains("The Namespace \"team.a\" is invalid: metadata.name: Invalid value: \"team.a\": must not contain dots"), "{out}");
        let long = format!("team.{}", "a".repeat(60));
        let (ok, out) = k(&["create", "namespace", &long], None);
        assert!(!ok, "{out}");
        assert!(out.contains(&format!("The Namespace \"{long}\" is invalid: \n* metadata.name: Invalid value: \"{long}\": must be no more than 63 characters\n* metadata.name: Invalid value: \"{long}\": must not contain dots")), "{out}");
        let (ok, out) = k(&["get", "namespaces", "-o", "name"], None);
        assert!(ok && !out.contains("team"), "{out}");
        let (ok, out) = k(&["create", "namespace", &"a".repeat(63)], None);
        assert!(ok, "{out}");
        // generateName: validated as a prefix, the generated name cut to fit
        let gen = |g: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{generateName: {g}}}\n");
        let long = format!("{}-", "b".repeat(64));
        let (ok, out) = k(&["create", "-f", "-"], Some(&gen(&long)));
        assert!(!ok, "{out}");
        assert!(out.contains(&format!("metadata.generateName: Invalid value: \"{long}\": must be no more than 63 characters")), "{out}");
        let (ok, out) = k(&["create", "-f", "-"], Some(&gen(&format!("{}-", "c".repeat(62)))));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "namespaces", "-o", "name"], None);
        let made = out.lines().find(|l| l.contains("ccc")).unwrap_or_default().trim_start_matches("namespace/");
        assert!(ok && made.len() == 63 && made.starts_with(&"c".repeat(58)), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Field selectors as kube-apiserver reads them: each kind's own labels (others refused with
/// its message), values as the kind's selectable fields give them (a pod that leaves
/// `hostNetwork` out is `false`; an Event's `source` is its component), and `events.k8s.io`'s
/// `regarding.*` labels.
#[tokio::test]
async fn field_selectors_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["run", "p1", "--image=registry.example/app:1"], None);
        assert!(ok, "{out}");
        let event = "apiVersion: v1\nkind: Event\nmetadata: {name: p1.1, namespace: default}\n\
            involvedObject: {kind: Pod, name: p1, namespace: default}\nreason: Failed\n\
            message: pull failed\ntype: Warning\nsource: {component: kubelet}\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(event));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "pods", "--field-selector", "spec.hostNetwork=false", "-o", "name"], None);
        assert!(ok && out.trim() == "pod/p1", "{out}");
        let (ok, out) = k(&["get", "pods", "--field-selector", "spec.host=", "-o", "name"], None);
        assert!(ok && out.trim() == "pod/p1", "{out}");
        let (ok, out) = k(&["get", "pods", "--field-selector", "status.phse=Pending"], None);
        assert!(!ok && out.contains("field label not supported: status.phse"), "{out}");
        let (ok, out) = k(&["get", "configmaps", "--field-selector", "data.x=1"], None);
        assert!(
            !ok && out.contains(r#""data.x" is not a known field selector: only "metadata.name", "metadata.namespace""#),
            "{out}"
        );
        let (ok, out) = k(&["get", "events", "--field-selector", "source=kubelet,involvedObject.name=p1", "-o", "name"], None);
        assert!(ok && out.trim() == "event/p1.1", "{out}");
        let (ok, out) = k(&["get", "events.v1.events.k8s.io", "--field-selector", "regarding.name=p1", "-o", "name"], None);
        assert!(ok && out.trim() == "event.events.k8s.io/p1.1", "{out}");
        let (ok, out) = k(&["get", "events.v1.events.k8s.io", "--field-selector", "involvedObject.name=p1"], None);
        assert!(!ok && out.contains("field label not supported: involvedObject.name"), "{out}");
        // an Event written through events.k8s.io/v1 is selected by either group's labels
        let event = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: p1.2, namespace: default}\n\
            regarding: {kind: Pod, name: p1, namespace: default}\nreason: BackOff\nnote: back-off\n\
            type: Warning\naction: Pulling\nreportingController: kubelet\nreportingInstance: n1\n\
            eventTime: 2026-01-01T00:00:00.000000Z\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(event));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "events", "--field-selector", "involvedObject.name=p1,reason=BackOff,source=kubelet", "-o", "name"], None);
        assert!(ok && out.trim() == "event/p1.2", "{out}");
        let (ok, out) = k(&["get", "events.v1.events.k8s.io", "--field-selector", "reportingController=kubelet,regarding.kind=Pod", "-o", "name"], None);
        assert!(ok && out.trim() == "event.events.k8s.io/p1.2", "{out}");
        // values are unescaped, terms are not trimmed, and an unescaped `=` in a value is refused
        let (ok, out) = k(&["get", "pods", "--field-selector", r"metadata.name=p\,1", "-o", "name"], None);
        assert!(ok && out.trim().is_empty(), "{out}");
        let (ok, out) = k(&["get", "pods", "--field-selector", "metadata.name=p=1"], None);
        assert!(!ok && out.contains("invalid field selector: unescaped character in value: 61"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Events through both groups, stored once: an Event a client wrote through events.k8s.io/v1
/// (as kube-rs's `Recorder` does) fills `kubectl get events`' columns and reads as a core Event
/// (JSON and protobuf); a core Event reads through events.k8s.io/v1 in that group's shape
/// (JSON, Table rows' objects); events.k8s.io/v1's stricter validation refuses with
/// kube-apiserver's messages.
#[tokio::test]
async fn events_through_both_groups() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let recorded = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: web.1, namespace: default}\n\
            regarding: {kind: Pod, name: web, namespace: default}\nreason: Created\nnote: made it\n\
            type: Normal\naction: Reconciling\nreportingController: example.com/operator\n\
            reportingInstance: op-1\neventTime: 2026-01-01T00:00:00.000000Z\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(recorded));
        assert!(ok, "{out}");
        // a missing Event is named as the group asked for it
        let (ok, out) = k(&["get", "events.v1.events.k8s.io", "nope"], None);
        assert!(!ok && out.contains(r#"events.events.k8s.io "nope" not found"#), "{out}");
        let (ok, out) = k(&["get", "events", "nope"], None);
        assert!(!ok && out.contains(r#"events "nope" not found"#), "{out}");
        let (ok, out) = k(&["get", "events"], None);
        assert!(ok, "{out}");
        let line = out.lines().find(|l| l.contains("pod/web")).unwrap_or_default();
        for want in ["Normal", "Created", "pod/web", "made it"] {
            assert!(line.contains(want), "{want}: {out}");
        }
        let (ok, out) = k(&["get", "events", "web.1", "-o", "jsonpath={.involvedObject.name}/{.message}/{.reportingComponent}"], None);
        assert!(ok && out == "web/made it/example.com/operator", "{out}");
        let legacy = "apiVersion: v1\nkind: Event\nmetadata: {name: web.2, namespace: default}\n\
            involvedObject: {kind: Pod, name: web, namespace: default}\nreason: Pulled\n\
            message: pulled\ntype: Normal\nsource: {component: kubelet}\ncount: 2\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(legacy));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "events.v1.events.k8s.io", "web.2", "-o", "jsonpath={.regarding.name}/{.note}/{.deprecatedSource.component}/{.deprecatedCount}"], None);
        assert!(ok && out == "web/pulled/kubelet/2", "{out}");
        let (ok, out) = k(&["get", "events.v1.events.k8s.io"], None);
        assert!(ok && out.contains("pulled") && out.contains("made it"), "{out}");
        // events.k8s.io/v1's own rules
        let bare = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: web.3, namespace: default}\n\
            regarding: {kind: Pod, name: web, namespace: default}\nnote: x\ntype: Normal\n\
            eventTime: 2026-01-01T00:00:00.000000Z\n";
        let (ok, out) = k(&["create", "-f", "-"], Some(bare));
        assert!(!ok, "{out}");
        for want in ["reportingController: Required value", "reportingInstance: Required value", "action: Required value", "reason: Required value"] {
            assert!(out.contains(want), "{want}: {out}");
        }
        let (ok, out) = k(&["patch", "events.v1.events.k8s.io", "web.1", "--type=merge", "-p", r#"{"note":"changed"}"#], None);
        assert!(!ok && out.contains(r#"message: Invalid value: "changed": field is immutable"#), "{out}");
    })
    .await
    .unwrap();

    let http = https_client_builder(&server).build().unwrap();
    let get = |path: &str, accept: &str| {
        http.get(format!("{}{path}", server.url()))
            .bearer_auth(server.admin_token())
            .header("accept", accept.to_string())
            .send()
    };
    // protobuf: each group's message
    let proto = "application/vnd.kubernetes.protobuf";
    let r = get("/api/v1/namespaces/default/events/web.1", proto)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let core = kubepull_control::protobuf::decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["message"], "made it");
    assert_eq!(core["reportingComponent"], "example.com/operator");
    let r = get(
        "/apis/events.k8s.io/v1/namespaces/default/events/web.2",
        proto,
    )
    .await
    .unwrap();
    let ev = kubepull_control::protobuf::decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
    assert_eq!(ev["note"], "pulled");
    assert_eq!(ev["deprecatedCount"], 2);
    // Table through events.k8s.io: the core columns, the rows' objects in the group's shape
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let r = get(
        "/apis/events.k8s.io/v1/namespaces/default/events?includeObject=Object",
        table,
    )
    .await
    .unwrap();
    let t: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let rows = t["rows"].as_array().cloned().unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r["object"]["metadata"]["name"] == "web.2")
        .unwrap();
    assert_eq!(row["cells"][2], "Pulled", "{row}");
    assert_eq!(row["cells"][3], "pod/web", "{row}");
    assert_eq!(row["cells"][6], "pulled", "{row}");
    assert_eq!(row["object"]["note"], "pulled", "{row}");
    assert!(row["object"].get("message").is_none(), "{row}");
    server.shutdown().await;
}
