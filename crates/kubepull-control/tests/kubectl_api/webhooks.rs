//! Admission webhooks with the real kubectl: in-process HTTPS webhook servers on loopback (an
//! rcgen CA in `caBundle`) stand in for the operators and for hostile peers.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::{kubectl, server_config};
use kubepull_control::start;

/// A CA and a serving certificate for 127.0.0.1 that it issued.
struct Tls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn tls() -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "webhook-ca");
    let ca = p.self_signed(&ca_key).unwrap();
    let ca_pem = ca.pem();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    lp.distinguished_name.push(DnType::CommonName, "webhook");
    let cert = lp.signed_by(&key, &issuer).unwrap();
    Tls {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// What a test webhook answers.
enum Reply {
    /// An AdmissionReview response (`response` only; uid filled in unless given).
    Review(Value),
    /// Any status and body.
    Raw(u16, &'static str),
    /// Never answers.
    Hang,
}

type Behaviour = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// An HTTPS webhook server on loopback; every review it receives is kept.
struct Hook {
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    async fn start(t: &Tls, behaviour: Behaviour) -> Hook {
        use http_body_util::BodyExt;
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(t.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(t.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen2.clone();
                let behaviour = behaviour.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            let behaviour = behaviour.clone();
                            async move {
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let review: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                seen.lock().unwrap().push(review.clone());
                                let (status, out) = match behaviour(&review) {
                                    Reply::Review(mut resp) => {
                                        if resp.get("uid").is_none() {
                                            resp["uid"] = review["request"]["uid"].clone();
                                        }
                                        (200, serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})).unwrap())
                                    }
                                    Reply::Raw(s, b) => (s, b.as_bytes().to_vec()),
                                    Reply::Hang => {
                                        futures_util::future::pending::<()>().await;
                                        (200, vec![])
                                    }
                                };
                                let mut r = hyper::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::from(out),
                                ));
                                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                r.headers_mut().insert(
                                    "content-type",
                                    hyper::header::HeaderValue::from_static("application/json"),
                                );
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Hook { port, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn patch(ops: Value) -> Value {
    json!({"allowed": true, "patchType": "JSONPatch", "patch": b64(&ops.to_string())})
}

/// One webhook of a configuration, as YAML-compatible JSON.
fn webhook(name: &str, url: &str, ca_pem: &str, rules: Value, extra: Value) -> Value {
    let mut h = json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": b64(ca_pem)},
        "rules": rules,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    for (k, v) in extra.as_object().unwrap() {
        h[k] = v.clone();
    }
    h
}

fn pods_create() -> Value {
    json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
}

fn config(kind: &str, name: &str, hooks: Vec<Value>) -> String {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": hooks,
    })
    .to_string()
}

/// The pull-secret operator's case: a mutating webhook on pods CREATE (failurePolicy Ignore, a
/// short timeout, kube-system excluded by namespaceSelector, a self-managed CA) adds a label and
/// an imagePullSecret to a pod from `kubectl run`, and sees the AdmissionReview kube-apiserver
/// sends; an objectSelector opts pods out; a validating webhook's denial reaches kubectl with
/// its message and nothing is stored; `*/status` rules see status updates only; a DELETE is sent
/// with the object as oldObject; webhooks run in name order and `IfNeeded` ones run again after
/// a later webhook changed the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_and_validating_webhooks_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let inject = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            let pod = &r["request"]["object"];
            // idempotent, as IfNeeded webhooks must be: a reinvocation adds nothing twice
            if pod.pointer("/metadata/labels/injected").is_some() {
                return Reply::Review(json!({"allowed": true}));
            }
            let mut ops = vec![];
            if pod.pointer("/metadata/labels").is_none() {
                ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
            }
            ops.push(json!({"op": "add", "path": "/metadata/labels/injected", "value": "yes"}));
            if pod.pointer("/spec/imagePullSecrets").is_none() {
                ops.push(json!({"op": "add", "path": "/spec/imagePullSecrets", "value": []}));
            }
            ops.push(json!({"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "regcred"}}));
            let mut p = patch(json!(ops));
            p["warnings"] = json!(["pull secret regcred added"]);
            Reply::Review(p)
        }),
    )
    .await;
    // runs after `inject` (configurations in name order) and changes the object: `inject` is
    // IfNeeded, so it is called again (and adds nothing twice: it sees its own label)
    let second = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            if r.pointer("/request/object/metadata/annotations/second")
                .is_some()
            {
                return Reply::Review(json!({"allowed": true}));
            }
            let ops = if r.pointer("/request/object/metadata/annotations").is_none() {
                json!([{"op": "add", "path": "/metadata/annotations", "value": {"second": "done"}}])
            } else {
                json!([{"op": "add", "path": "/metadata/annotations/second", "value": "done"}])
            };
            Reply::Review(patch(ops))
        }),
    )
    .await;
    let deny = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            let o = if r["request"]["operation"] == "DELETE" {
                &r["request"]["oldObject"]
            } else {
                &r["request"]["object"]
            };
            if o.pointer("/metadata/labels/forbidden").is_some() {
                Reply::Review(json!({"allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": "objects labelled forbidden are not allowed"}}))
            } else {
                Reply::Review(json!({"allowed": true, "warnings": ["checked by deny.example.com"]}))
            }
        }),
    )
    .await;
    let status_only = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(
                json!({"allowed": false, "status": {"message": "status is read-only here"}}),
            )
        }),
    )
    .await;

    let mutating = config(
        "MutatingWebhookConfiguration",
        "a-pull-secrets",
        vec![webhook(
            "inject.pull-secrets.example.com",
            &inject.url("/mutate"),
            &t.ca_pem,
            pods_create(),
            json!({
                "failurePolicy": "Ignore",
                "timeoutSeconds": 2,
                "reinvocationPolicy": "IfNeeded",
                "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]},
                "objectSelector": {"matchExpressions": [{"key": "pull-secrets.example.com/skip", "operator": "DoesNotExist"}]},
            }),
        )],
    );
    let mutating2 = config(
        "MutatingWebhookConfiguration",
        "b-second",
        vec![webhook(
            "second.example.com",
            &second.url("/"),
            &t.ca_pem,
            pods_create(),
            json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}),
        )],
    );
    let validating = config(
        "ValidatingWebhookConfiguration",
        "deny",
        vec![
            webhook(
                "deny.example.com",
                &deny.url("/validate"),
                &t.ca_pem,
                json!([
                    {"operations": ["CREATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "configmaps"], "scope": "Namespaced"},
                ]),
                json!({}),
            ),
            webhook(
                "status.example.com",
                &status_only.url("/"),
                &t.ca_pem,
                json!([{"operations": ["UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}]),
                json!({}),
            ),
        ],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let inject_seen = inject.seen.clone();
    let second_seen = second.seen.clone();
    let deny_seen = deny.seen.clone();
    let status_seen = status_only.seen.clone();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        for c in [&mutating, &mutating2, &validating] {
            let (ok, out) = k(&["create", "-f", "-"], Some(c));
            assert!(ok, "{out}");
        }
        let (ok, out) = k(&["get", "mutatingwebhookconfigurations"], None);
        assert!(ok && out.contains("a-pull-secrets") && out.contains("WEBHOOKS"), "{out}");

        // the mutating webhook's label and pull secret, its warning, and one reinvocation
        let (ok, out) = k(&["run", "web", "--image=registry.example/app:v1", "-n", "default"], None);
        assert!(ok, "{out}");
        assert!(out.contains("Warning: pull secret regcred added"), "{out}");
        assert!(out.contains("Warning: checked by deny.example.com"), "{out}");
        let (ok, out) = k(&["get", "pod", "web", "-n", "default", "-o", "json"], None);
        assert!(ok, "{out}");
        let pod: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(pod.pointer("/metadata/labels/injected"), Some(&json!("yes")), "{pod}");
        assert_eq!(pod.pointer("/metadata/labels/run"), Some(&json!("web")), "{pod}");
        assert_eq!(pod.pointer("/metadata/annotations/second"), Some(&json!("done")), "{pod}");
        assert_eq!(pod.pointer("/spec/imagePullSecrets"), Some(&json!([{"name": "regcred"}])), "{pod}");
        let reviews = inject_seen.lock().unwrap().clone();
        assert_eq!(reviews.len(), 2, "called, then reinvoked once: {reviews:?}");
        let rq = &reviews[0]["request"];
        assert_eq!(reviews[0]["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(reviews[0]["kind"], "AdmissionReview");
        assert_eq!(rq["kind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        assert_eq!(rq["resource"], json!({"group": "", "version": "v1", "resource": "pods"}));
        assert_eq!(rq["requestKind"], rq["kind"]);
        assert_eq!(rq["requestResource"], rq["resource"]);
        assert!(rq.get("subResource").is_none(), "{rq}");
        assert_eq!(rq["operation"], "CREATE");
        assert_eq!(rq["name"], "web");
        assert_eq!(rq["namespace"], "default");
        assert_eq!(rq["userInfo"]["username"], "kubepull-admin");
        assert!(rq["userInfo"]["groups"].as_array().unwrap().contains(&json!("system:masters")));
        assert_eq!(rq["dryRun"], false);
        assert_eq!(rq["oldObject"], Value::Null);
        assert_eq!(rq["options"]["kind"], "CreateOptions");
        assert_eq!(rq["options"]["fieldManager"], "kubectl-run");
        // after the built-in admission: the ServiceAccount is already set
        assert_eq!(rq["object"]["spec"]["serviceAccountName"], "default");
        assert_eq!(rq["uid"].as_str().unwrap().len(), 36);
        assert_ne!(rq["uid"], reviews[1]["request"]["uid"]);
        // the second round sees the second webhook's change
        assert_eq!(reviews[1].pointer("/request/object/metadata/annotations/second"), Some(&json!("done")));
        assert_eq!(second_seen.lock().unwrap().len(), 1);

        // kube-system is excluded by the namespaceSelector; an objectSelector opts a pod out
        let (ok, out) = k(&["run", "sys", "--image=busybox", "-n", "kube-system"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["run", "optout", "--image=busybox", "-n", "default", "--labels=pull-secrets.example.com/skip=true"], None);
        assert!(ok, "{out}");
        let reviews = inject_seen.lock().unwrap().clone();
        assert_eq!(reviews.len(), 2, "{reviews:?}");
        assert!(!reviews.iter().any(|r| r["request"]["namespace"] == "kube-system"));
        let (_, out) = k(&["get", "pod", "optout", "-n", "default", "-o", "jsonpath={.metadata.labels.injected}"], None);
        assert_eq!(out.trim(), "", "{out}");

        // a denial: kubectl shows the webhook's message; nothing is stored
        let (ok, out) = k(&["run", "bad", "--image=busybox", "-n", "default", "--labels=forbidden=yes"], None);
        assert!(!ok, "{out}");
        assert!(
            out.contains("Error from server (Forbidden): admission webhook \"deny.example.com\" denied the request: objects labelled forbidden are not allowed"),
            "{out}"
        );
        let (ok, out) = k(&["get", "pod", "bad", "-n", "default"], None);
        assert!(!ok && out.contains("NotFound"), "{out}");

        // DELETE: the object is oldObject; a denial keeps it
        let (ok, out) = k(&["create", "configmap", "keep", "-n", "default", "--from-literal=a=b"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["label", "configmap", "keep", "-n", "default", "forbidden=yes"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["delete", "configmap", "keep", "-n", "default"], None);
        assert!(!ok && out.contains("admission webhook \"deny.example.com\" denied the request"), "{out}");
        let (ok, out) = k(&["get", "configmap", "keep", "-n", "default", "-o", "name"], None);
        assert!(ok, "{out}");
        let del = deny_seen.lock().unwrap().iter().find(|r| r["request"]["operation"] == "DELETE").cloned().unwrap();
        assert_eq!(del["request"]["object"], Value::Null);
        assert_eq!(del["request"]["oldObject"]["metadata"]["name"], "keep");
        assert_eq!(del["request"]["options"]["kind"], "DeleteOptions");

        // `*/status`: a label change (UPDATE pods) is not sent; a status update is, and denied
        let (ok, out) = k(&["label", "pod", "web", "-n", "default", "tier=front"], None);
        assert!(ok, "{out}");
        assert!(status_seen.lock().unwrap().is_empty());
        let (ok, out) = k(&["patch", "pod", "web", "-n", "default", "--subresource=status", "--type=merge", "-p", r#"{"status":{"message":"x"}}"#], None);
        assert!(!ok, "{out}");
        assert!(out.contains("admission webhook \"status.example.com\" denied the request: status is read-only here"), "{out}");
        let st = status_seen.lock().unwrap().clone();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0]["request"]["subResource"], "status");
        assert_eq!(st[0]["request"]["requestSubResource"], "status");
        assert_eq!(st[0]["request"]["operation"], "UPDATE");
        assert_eq!(st[0]["request"]["oldObject"]["metadata"]["name"], "web");

        // configurations themselves are never sent to webhooks; deleting one stops the calls
        let (ok, out) = k(&["delete", "validatingwebhookconfiguration", "deny"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["run", "bad2", "--image=busybox", "-n", "default", "--labels=forbidden=yes"], None);
        assert!(ok, "{out}");
    })
    .await
    .unwrap();
    assert!(deny
        .seen()
        .iter()
        .all(|r| r["request"]["kind"]["group"] != "admissionregistration.k8s.io"));
    server.shutdown().await;
}
