//! End to end: a pull-secret operator's mutating webhook (HTTPS with its own CA in `caBundle`,
//! `failurePolicy: Ignore`, a short timeout, kube-system excluded) adds the tenant's pull secret
//! to the pods of a Deployment that names none; the node pulls the private image with it from
//! the real registry and runc runs it. The real kubectl drives `kubepull up`.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};

use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "tenant-shop";
const PASS: &str = "Webhook-E2e-Pass-27";

/// The webhook: an HTTPS server on loopback answering AdmissionReviews (one request per
/// connection); pods without imagePullSecrets get `regcred`. Returns its port and the reviews.
async fn pull_secret_webhook(cert_pem: &str, key_pem: &str) -> (u16, Arc<Mutex<Vec<Value>>>) {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                let (head_end, len) = loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let review: Value =
                    serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
                seen.lock().unwrap().push(review.clone());
                let mut response = json!({"uid": review["request"]["uid"], "allowed": true});
                if review
                    .pointer("/request/object/spec/imagePullSecrets")
                    .is_none()
                {
                    use base64::Engine as _;
                    let ops = json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}]);
                    response["patchType"] = json!("JSONPatch");
                    response["patch"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(ops.to_string()));
                }
                let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).to_string();
                let _ = s
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, seen)
}

#[test]
fn a_pull_secret_webhook_lets_a_deployment_pull_a_private_image() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(
        &[
            "/bin/sh",
            "-c",
            "echo pulled with an injected secret; sleep 3600",
        ],
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("shop/app", "v1", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let (ca_pem, cert_pem, key_pem) = kubepull_testkit::registry::tls_material();
    let (port, seen) = rt.block_on(pull_secret_webhook(&cert_pem, &key_pem));
    let up = start_up(hosts.path());
    let image = format!("{}/shop/app:v1", reg.host());

    up.ok(&["create", "namespace", "shop"]);
    up.create_pull_secret("regcred", &reg.host(), USER, PASS, &["-n", "shop"]);
    use base64::Engine as _;
    up.apply(&format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: pull-secrets}}\nwebhooks:\n- name: inject.pull-secrets.example.com\n  clientConfig:\n    url: https://127.0.0.1:{port}/mutate\n    caBundle: {}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}}]\n  namespaceSelector:\n    matchExpressions: [{{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}}]\n  failurePolicy: Ignore\n  timeoutSeconds: 3\n  sideEffects: None\n  admissionReviewVersions: [v1]\n",
        base64::engine::general_purpose::STANDARD.encode(&ca_pem)
    ));
    // no imagePullSecrets in the template: the webhook adds them to each pod
    up.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    ));
    let pods = up.wait_pods(
        "shop",
        "app=web",
        |p| p["status"]["phase"] == "Running",
        "web Running",
    );
    let pod = &pods["items"][0];
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}]),
        "{pod}"
    );
    let events = up.ok(&["get", "events", "-n", "shop"]);
    assert!(events.contains("Successfully pulled image"), "{events}");
    let reviews = seen.lock().unwrap().clone();
    assert!(
        reviews.iter().any(|r| r["request"]["namespace"] == "shop"),
        "{reviews:?}"
    );
    assert!(!reviews
        .iter()
        .any(|r| r["request"]["namespace"] == "kube-system"));
    assert!(!up.log().contains(PASS), "the password reached the log");
}
