//! Admission webhooks with the real kubectl: in-process HTTPS webhook servers on loopback (an
//! rcgen CA in `caBundle`) stand in for the operators and for hostile peers.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::common::admin_send;
use super::common::webhook::{tls, Hook, Reply};
use super::{kubectl, server_config, token_kubeconfig};
use kubepull_control::start;

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
    // caps replicas at 3 on `deployments/scale` (a Scale object)
    let cap = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            if r.pointer("/request/object/spec/replicas")
                .and_then(Value::as_i64)
                > Some(3)
            {
                Reply::Review(patch(
                    json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                ))
            } else {
                Reply::Review(json!({"allowed": true}))
            }
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
    let scale = config(
        "MutatingWebhookConfiguration",
        "c-scale",
        vec![webhook(
            "cap.example.com",
            &cap.url("/"),
            &t.ca_pem,
            json!([{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments/scale"]}]),
            json!({}),
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
                    {"operations": ["CREATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "configmaps", "pods/binding"], "scope": "Namespaced"},
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
    let cap_seen = cap.seen.clone();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        for c in [&mutating, &mutating2, &scale, &validating] {
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

        // a server-side dry run is admitted (the webhook is told) and not stored
        let (ok, out) = k(&["run", "dry", "--image=busybox", "-n", "default", "--dry-run=server", "-o", "json"], None);
        assert!(ok, "{out}");
        let json_start = out.find('{').unwrap();
        // stdout's JSON, then the Warning lines of stderr
        let dry: Value = serde_json::Deserializer::from_str(&out[json_start..])
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(dry.pointer("/spec/imagePullSecrets"), Some(&json!([{"name": "regcred"}])), "{dry}");
        let (ok, out) = k(&["get", "pod", "dry", "-n", "default"], None);
        assert!(!ok && out.contains("NotFound"), "{out}");
        let reviews = inject_seen.lock().unwrap().clone();
        let last = &reviews.last().unwrap()["request"];
        assert_eq!(last["name"], "dry");
        assert_eq!(last["dryRun"], true);
        assert_eq!(last["options"]["dryRun"], json!(["All"]));
        let (ok, out) = k(&["label", "pod", "web", "-n", "default", "dry=run", "--dry-run=server"], None);
        assert!(ok, "{out}");
        let (_, out) = k(&["get", "pod", "web", "-n", "default", "-o", "jsonpath={.metadata.labels.dry}"], None);
        assert_eq!(out.trim(), "", "a dry-run label was stored: {out}");

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

        // a binding is CREATE pods/binding of a Binding; the pod updates carrying it out are not
        // admitted again (the `*/status` webhook above would refuse them)
        let binding = r#"{"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"}, "target": {"kind": "Node", "name": "n1"}}"#;
        let (ok, out) = k(&["create", "--raw", "/api/v1/namespaces/default/pods/web/binding", "-f", "-"], Some(binding));
        assert!(ok, "{out}");
        let (_, out) = k(&["get", "pod", "web", "-n", "default", "-o", "jsonpath={.spec.nodeName}"], None);
        assert_eq!(out.trim(), "n1", "{out}");
        assert_eq!(status_seen.lock().unwrap().len(), 1);
        let b = deny_seen.lock().unwrap().iter().find(|r| r["request"]["subResource"] == "binding").cloned().unwrap();
        assert_eq!(b["request"]["kind"], json!({"group": "", "version": "v1", "kind": "Binding"}));
        assert_eq!(b["request"]["resource"], json!({"group": "", "version": "v1", "resource": "pods"}));
        assert_eq!(b["request"]["operation"], "CREATE");
        assert_eq!(b["request"]["name"], "web");
        assert_eq!(b["request"]["object"]["target"]["name"], "n1");

        // `kubectl scale`: UPDATE deployments/scale of an autoscaling/v1 Scale, mutated
        let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
        let (ok, out) = k(&["apply", "-f", "-"], Some(dep));
        assert!(ok, "{out}");
        assert!(cap_seen.lock().unwrap().is_empty(), "a plain update is not a scale");
        let (ok, out) = k(&["scale", "deployment", "d", "-n", "default", "--replicas=10"], None);
        assert!(ok, "{out}");
        let (_, out) = k(&["get", "deployment", "d", "-n", "default", "-o", "jsonpath={.spec.replicas}"], None);
        assert_eq!(out.trim(), "3", "{out}");
        let sc = cap_seen.lock().unwrap().clone();
        assert_eq!(sc.len(), 1, "{sc:?}");
        assert_eq!(sc[0]["request"]["kind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
        assert_eq!(sc[0]["request"]["resource"], json!({"group": "apps", "version": "v1", "resource": "deployments"}));
        assert_eq!(sc[0]["request"]["subResource"], "scale");
        assert_eq!(sc[0]["request"]["object"]["spec"]["replicas"], 10);
        assert_eq!(sc[0]["request"]["oldObject"]["spec"]["replicas"], 1);

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

/// Everything the server logs during a test (the process's global subscriber).
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| LogWriter)
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .try_init();
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// failurePolicy with unreachable and hostile webhooks, each bound to one namespace: with
/// `Fail` the request is refused with kube-apiserver's message (refused connection, timeout,
/// garbage body, a CA that did not sign the server, wrong uid, a patchType other than JSONPatch,
/// a 500) and nothing is stored; with `Ignore` the object is created and an audit line names
/// the webhook; a patch that does not apply is an error under either policy. Secret values never
/// reach a log line or an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policy_and_hostile_webhooks() {
    capture_logs();
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let other_ca = tls();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let slow = Hook::start(&t, Arc::new(|_: &Value| Reply::Hang)).await;
    let garbage = Hook::start(&t, Arc::new(|_: &Value| Reply::Raw(200, "garbage"))).await;
    let fine = Hook::start(
        &t,
        Arc::new(|_: &Value| Reply::Review(json!({"allowed": true}))),
    )
    .await;
    let wrong_uid = Hook::start(
        &t,
        Arc::new(|_: &Value| Reply::Review(json!({"uid": "not-the-request", "allowed": true}))),
    )
    .await;
    let merge = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            // a JSON patch array under another patchType
            Reply::Review(json!({"allowed": true, "patchType": "MergePatch", "patch": b64(r#"[{"op": "add", "path": "/metadata/labels/x", "value": "y"}]"#)}))
        }),
    )
    .await;
    let oops = Hook::start(&t, Arc::new(|_: &Value| Reply::Raw(500, "oops"))).await;
    let bad_patch = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(patch(json!([{"op": "remove", "path": "/spec/nothing"}])))
        }),
    )
    .await;
    let dead_url = format!("https://127.0.0.1:{dead_port}/");
    let rules = json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "secrets"]}]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("dead", dead_url.clone(), &t.ca_pem),
        ("slow", slow.url("/slow"), &t.ca_pem),
        ("garbage", garbage.url("/"), &t.ca_pem),
        ("badca", fine.url("/"), &other_ca.ca_pem),
        ("uid", wrong_uid.url("/"), &t.ca_pem),
        ("merge", merge.url("/"), &t.ca_pem),
        ("oops", oops.url("/"), &t.ca_pem),
        ("badpatch", bad_patch.url("/"), &t.ca_pem),
    ];
    let mut hooks = vec![];
    let mut namespaces = String::new();
    for (name, url, ca) in &cases {
        for policy in ["Fail", "Ignore"] {
            let ns = format!("{name}-{}", policy.to_lowercase());
            namespaces.push_str(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n"
            ));
            hooks.push(webhook(
                &format!("{name}-{}.example.com", policy.to_lowercase()),
                url,
                ca,
                rules.clone(),
                json!({
                    "failurePolicy": policy,
                    "timeoutSeconds": 1,
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                }),
            ));
        }
    }
    // a `service` webhook whose Service cannot be resolved to an endpoint: the reason is the
    // dial's, and failurePolicy decides
    for policy in ["Fail", "Ignore"] {
        let ns = format!("svc-{}", policy.to_lowercase());
        namespaces.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n"
        ));
        let mut h = webhook(
            &format!("svc-{}.example.com", policy.to_lowercase()),
            "",
            &t.ca_pem,
            rules.clone(),
            json!({
                "failurePolicy": policy,
                "timeoutSeconds": 1,
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            }),
        );
        h["clientConfig"] = json!({"service": {"namespace": "ops", "name": "pull-secrets", "path": "/mutate"}, "caBundle": b64(&t.ca_pem)});
        hooks.push(h);
    }
    let cfg = config("MutatingWebhookConfiguration", "hostile", hooks);
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let (slow_port, fine_port) = (slow.port, fine.port);
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["apply", "-f", "-"], Some(&namespaces));
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "-f", "-"], Some(&cfg));
        assert!(ok, "{out}");
        let expect_fail: Vec<(&str, String)> = vec![
            ("dead", format!("Internal error occurred: failed calling webhook \"dead-fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:{dead_port}/?timeout=1s\": dial tcp 127.0.0.1:{dead_port}: connect: connection refused")),
            ("slow", format!("Internal error occurred: failed calling webhook \"slow-fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:{slow_port}/slow?timeout=1s\": context deadline exceeded")),
            ("garbage", "Internal error occurred: failed calling webhook \"garbage-fail.example.com\": failed to call webhook: couldn't get version/kind; json parse error: ".to_string()),
            ("badca", format!("Internal error occurred: failed calling webhook \"badca-fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:{fine_port}/?timeout=1s\": tls: failed to verify certificate: x509: certificate signed by unknown authority")),
            ("uid", "Internal error occurred: failed calling webhook \"uid-fail.example.com\": received invalid webhook response: expected response.uid=".to_string()),
            ("merge", "Internal error occurred: failed calling webhook \"merge-fail.example.com\": unsupported patch type \"MergePatch\"".to_string()),
            ("oops", "Internal error occurred: failed calling webhook \"oops-fail.example.com\": failed to call webhook: an error on the server has prevented the request from succeeding".to_string()),
            ("svc", "Internal error occurred: failed calling webhook \"svc-fail.example.com\": failed to call webhook: Post \"https://pull-secrets.ops.svc:443/mutate?timeout=1s\": ".to_string()),
        ];
        for (name, msg) in &expect_fail {
            let ns = format!("{name}-fail");
            let (ok, out) = k(&["run", "p", "--image=busybox", "-n", &ns], None);
            assert!(!ok, "{name}: {out}");
            assert!(out.contains("Error from server (InternalError)") && out.contains(msg.as_str()), "{name}: {msg}\n{out}");
            let (ok, out) = k(&["get", "pods", "-n", &ns, "-o", "name"], None);
            assert!(ok && out.trim().is_empty(), "{name}: stored: {out}");
            // Ignore: created, and the fail-open is logged by webhook name
            let ns = format!("{name}-ignore");
            let (ok, out) = k(&["run", "p", "--image=busybox", "-n", &ns], None);
            assert!(ok, "{name}: {out}");
            let l = logs();
            assert!(l.contains(&format!("Failed calling webhook, failing open {name}-ignore.example.com")), "{name}\n{l}");
        }
        // a patch that does not apply fails the request whatever the policy
        for ns in ["badpatch-fail", "badpatch-ignore"] {
            let (ok, out) = k(&["run", "p", "--image=busybox", "-n", ns], None);
            assert!(!ok && out.contains("Error from server (InternalError)"), "{ns}: {out}");
        }

        // Secrets: a failing-open webhook logs no data; a failing-closed one echoes none
        const VALUE: &str = "hunter2-never-logged";
        let (ok, out) = k(&["create", "secret", "generic", "s", "-n", "dead-ignore", &format!("--from-literal=password={VALUE}")], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "secret", "generic", "s", "-n", "garbage-fail", &format!("--from-literal=password={VALUE}")], None);
        assert!(!ok && out.contains("garbage-fail.example.com"), "{out}");
        assert!(!out.contains(VALUE) && !out.contains(&b64(VALUE)), "{out}");
        let l = logs();
        assert!(l.contains("failing open dead-ignore.example.com"), "{l}");
        assert!(!l.contains(VALUE) && !l.contains(&b64(VALUE)), "{l}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// The configurations as kube-apiserver stores them: defaults filled in, and each rule of
/// `validation.go` refused with the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_are_defaulted_and_validated() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let good = config(
        "MutatingWebhookConfiguration",
        "defaults",
        vec![
            webhook(
                "a.example.com",
                "https://127.0.0.1:1/x",
                &t.ca_pem,
                pods_create(),
                json!({}),
            ),
            json!({
                "name": "svc.example.com",
                "clientConfig": {"service": {"namespace": "ops", "name": "pull-secrets", "path": "/mutate"}},
                "rules": pods_create(), "sideEffects": "NoneOnDryRun", "admissionReviewVersions": ["v1", "v1beta1"],
            }),
        ],
    );
    let bad = config(
        "ValidatingWebhookConfiguration",
        "bad",
        vec![
            json!({
                "name": "short.name",
                "clientConfig": {"url": "http://u:p@127.0.0.1/x?a=b#f", "caBundle": b64("not a certificate")},
                "rules": [{"operations": ["CREATE", "*"], "apiGroups": [], "apiVersions": ["v1"], "resources": ["*", "pods"], "scope": "Everywhere"}],
                "timeoutSeconds": 31,
                "failurePolicy": "Sometimes",
                "admissionReviewVersions": ["v1beta1"],
            }),
            json!({
                "name": "dup.example.com",
                "clientConfig": {"url": "https://127.0.0.1/", "service": {"namespace": "a", "name": "b"}},
                "rules": pods_create(), "sideEffects": "Some", "admissionReviewVersions": ["v1"],
            }),
            json!({
                "name": "dup.example.com",
                "clientConfig": {"service": {"namespace": "", "name": "b", "port": 70000, "path": "no-slash"}},
                "rules": pods_create(), "sideEffects": "None", "admissionReviewVersions": [],
            }),
        ],
    );
    let everything = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}]);
    let broken = config(
        "ValidatingWebhookConfiguration",
        "everything",
        vec![webhook(
            "everything.example.com",
            "https://127.0.0.1:1/",
            &t.ca_pem,
            everything,
            json!({}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["create", "-f", "-"], Some(&good));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "mutatingwebhookconfiguration", "defaults", "-o", "json"], None);
        assert!(ok, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let h = &v["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["objectSelector"], json!({}));
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(v["webhooks"][1]["clientConfig"]["service"]["port"], 443);

        let (ok, out) = k(&["create", "-f", "-"], Some(&bad));
        assert!(!ok, "{out}");
        for needle in [
            "The ValidatingWebhookConfiguration \"bad\" is invalid",
            "webhooks[0].name: Invalid value: \"short.name\": should be a domain with at least three segments separated by dots",
            "webhooks[0].rules[0].operations: Invalid value: []string{\"CREATE\", \"*\"}: if '*' is present, must not specify other operations",
            "webhooks[0].rules[0].apiGroups: Required value",
            "webhooks[0].rules[0].resources: Invalid value: []string{\"*\", \"pods\"}: if '*' is present, must not specify other resources without subresources",
            "webhooks[0].rules[0].scope: Unsupported value: \"Everywhere\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
            "webhooks[0].failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\"",
            "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
            "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
            "webhooks[0].clientConfig.url: Invalid value: \"u\": user information is not permitted in the URL",
            "webhooks[0].clientConfig.url: Invalid value: \"f\": fragments are not permitted in the URL",
            "webhooks[0].clientConfig.url: Invalid value: \"a=b\": query parameters are not permitted in the URL",
            "webhooks[0].clientConfig.caBundle: Invalid value: []byte{...}: unable to load root certificates: unable to parse bytes as PEM block",
            "webhooks[0].admissionReviewVersions: Invalid value: []string{\"v1beta1\"}: must include v1",
            "webhooks[1].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
            "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
            "webhooks[2].clientConfig.service.namespace: Required value",
            "webhooks[2].clientConfig.service.port: Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive",
            "webhooks[2].clientConfig.service.path: Invalid value: \"no-slash\": must start with a '/'",
            "webhooks[2].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
            "webhooks[2].name: Duplicate value: \"dup.example.com\"",
        ] {
            assert!(out.contains(needle), "{needle}\n{out}");
        }
        assert!(!out.contains(":p@"), "a URL password echoed: {out}");
        let (ok, out) = k(&["get", "validatingwebhookconfigurations", "-o", "name"], None);
        assert!(ok && out.trim().is_empty(), "{out}");

        // a webhook for everything that cannot be reached refuses every write, except to the
        // configurations: it can always be removed
        let (ok, out) = k(&["create", "-f", "-"], Some(&broken));
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "configmap", "c", "-n", "default"], None);
        assert!(!ok && out.contains("failed calling webhook \"everything.example.com\""), "{out}");
        let (ok, out) = k(&["label", "validatingwebhookconfiguration", "everything", "x=y"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["delete", "validatingwebhookconfiguration", "everything"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "configmap", "c", "-n", "default"], None);
        assert!(ok, "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Polls `f` until it returns `Some` (a failsafe bound, not a timing assertion).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("never happened: {what}");
}

/// Pods the controllers create (Deployment → ReplicaSet → Pods) go through the webhooks too:
/// the pull secret is added to each; a denial becomes the ReplicaSet's `FailedCreate` event with
/// the webhook's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_created_pods_are_admitted_by_webhooks() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let t = tls();
    let inject = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            if r.pointer("/request/object/spec/imagePullSecrets").is_some() {
                return Reply::Review(json!({"allowed": true}));
            }
            Reply::Review(patch(json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}])))
        }),
    )
    .await;
    let deny = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(
                json!({"allowed": false, "status": {"message": "no pods for app=blocked"}}),
            )
        }),
    )
    .await;
    let m = config(
        "MutatingWebhookConfiguration",
        "pull-secrets",
        vec![webhook(
            "inject.pull-secrets.example.com",
            &inject.url("/"),
            &t.ca_pem,
            pods_create(),
            json!({"failurePolicy": "Ignore", "timeoutSeconds": 2}),
        )],
    );
    let v = config(
        "ValidatingWebhookConfiguration",
        "blocker",
        vec![webhook(
            "blocker.example.com",
            &deny.url("/"),
            &t.ca_pem,
            pods_create(),
            json!({"objectSelector": {"matchLabels": {"app": "blocked"}}}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let seen = inject.seen.clone();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        for c in [&m, &v] {
            let (ok, out) = k(&["create", "-f", "-"], Some(c));
            assert!(ok, "{out}");
        }
        let deployment = |name: &str, replicas: u32| {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: registry.example/app:v1}}]}}\n")
        };
        let (ok, out) = k(&["apply", "-f", "-"], Some(&deployment("web", 2)));
        assert!(ok, "{out}");
        let pods = eventually("two pods of web", || {
            let (_, out) = k(&["get", "pods", "-n", "default", "-l", "app=web", "-o", "json"], None);
            let v: Value = serde_json::from_str(&out).ok()?;
            let items = v["items"].as_array()?.clone();
            (items.len() == 2).then_some(items)
        });
        for p in &pods {
            assert_eq!(p.pointer("/spec/imagePullSecrets"), Some(&json!([{"name": "regcred"}])), "{p}");
        }
        let reviews = seen.lock().unwrap().clone();
        assert!(
            reviews.iter().any(|r| r["request"]["userInfo"]["username"] == "system:kube-controller-manager"
                && r["request"]["namespace"] == "default"
                && r["request"]["object"]["metadata"]["generateName"].as_str().is_some_and(|g| g.starts_with("web-"))
                && r["request"].get("name").is_none()
                && r["request"]["object"]["metadata"].get("name").is_none()),
            "{reviews:?}"
        );

        let (ok, out) = k(&["apply", "-f", "-"], Some(&deployment("blocked", 1)));
        assert!(ok, "{out}");
        let ev = eventually("FailedCreate of blocked", || {
            let (_, out) = k(&["get", "events", "-n", "default", "-o", "json"], None);
            let v: Value = serde_json::from_str(&out).ok()?;
            v["items"].as_array()?.iter().find(|e| e["reason"] == "FailedCreate").cloned()
        });
        assert!(
            ev["message"].as_str().unwrap().contains("admission webhook \"blocker.example.com\" denied the request: no pods for app=blocked"),
            "{ev}"
        );
        let (_, out) = k(&["get", "pods", "-n", "default", "-l", "app=blocked", "-o", "name"], None);
        assert!(out.trim().is_empty(), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// Pod Security judges the pod as the mutating webhooks left it (kube-apiserver runs the
/// PodSecurity validating admission after mutating admission): a webhook that makes a container
/// privileged gets the pod refused at `baseline`, in the namespace it is limited to; the same
/// pod elsewhere is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_judges_the_pod_the_mutating_webhooks_made() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let escalate = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(patch(json!([{"op": "add",
                "path": "/spec/containers/0/securityContext", "value": {"privileged": true}}])))
        }),
    )
    .await;
    let cfg = config(
        "MutatingWebhookConfiguration",
        "escalate",
        vec![webhook(
            "escalate.example.com",
            &escalate.url("/"),
            &t.ca_pem,
            pods_create(),
            json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mutated"}}}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["create", "namespace", "mutated"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "-f", "-"], Some(&cfg));
        assert!(ok, "{out}");
        let (ok, out) = k(&["run", "p", "--image=busybox:1.36", "-n", "mutated"], None);
        assert!(!ok, "{out}");
        assert!(
            out.contains("Error from server (Forbidden): pods \"p\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"p\" must not set securityContext.privileged=true)"),
            "{out}"
        );
        let (ok, out) = k(&["get", "pods", "-n", "mutated", "-o", "name"], None);
        assert!(ok && out.trim().is_empty(), "stored: {out}");
        let (ok, out) = k(&["run", "p", "--image=busybox:1.36"], None);
        assert!(ok, "{out}");
    })
    .await
    .unwrap();
    assert_eq!(escalate.seen().len(), 1, "the webhook was asked once");
    server.shutdown().await;
}

/// kube-apiserver checks a Role for escalation in the RBAC storage, after mutating admission
/// (`pkg/registry/rbac/role/policybased/storage.go`): a namespace admin whose Role a mutating
/// webhook widens with a rule it does not hold is refused, one whose Role the webhook narrows to
/// what it holds is allowed, on create and on update; an update of the garbage collector's
/// fields only (finalizers) is not checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_escalation_is_checked_on_what_mutating_webhooks_made() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let nodes = json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]});
    let nodes2 = nodes.clone();
    // label hook=grow: a nodes rule is added; hook=shrink: the nodes rules are taken out
    let hook = Hook::start(
        &t,
        Arc::new(move |r: &Value| {
            let role = &r["request"]["object"];
            let rules = role["rules"].as_array().cloned().unwrap_or_default();
            let ops = match role
                .pointer("/metadata/labels/hook")
                .and_then(Value::as_str)
            {
                Some("grow") if !rules.contains(&nodes2) => {
                    vec![json!({"op": "add", "path": "/rules/-", "value": nodes2.clone()})]
                }
                Some("shrink") => rules
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(_, rule)| rule["resources"] == json!(["nodes"]))
                    .map(|(i, _)| json!({"op": "remove", "path": format!("/rules/{i}")}))
                    .collect(),
                _ => vec![],
            };
            Reply::Review(if ops.is_empty() {
                json!({"allowed": true})
            } else {
                patch(json!(ops))
            })
        }),
    )
    .await;
    let cfg = config(
        "MutatingWebhookConfiguration",
        "roles",
        vec![webhook(
            "roles.example.com",
            &hook.url("/"),
            &t.ca_pem,
            json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["rbac.authorization.k8s.io"],
                "apiVersions": ["v1"], "resources": ["roles"]}]),
            json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "t"}}}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let dir = d.path().to_path_buf();
    let (url, ca) = (server.url(), server.ca_pem());
    let role = |name: &str, hook: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": "t", "labels": {"hook": hook}},
            "rules": rules})
        .to_string()
    };
    let pods = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]});
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        for args in [
            &["create", "namespace", "t"][..],
            &["create", "serviceaccount", "lead", "-n", "t"],
            &["create", "rolebinding", "lead-admin", "--clusterrole=admin", "--serviceaccount=t:lead", "-n", "t"],
        ] {
            let (ok, out) = k(args, None);
            assert!(ok, "{args:?}: {out}");
        }
        let (ok, out) = k(&["create", "-f", "-"], Some(&cfg));
        assert!(ok, "{out}");
        let (ok, token) = k(&["create", "token", "lead", "-n", "t"], None);
        assert!(ok, "{token}");
        let lead = token_kubeconfig(&dir, "lead.kubeconfig", &url, &ca, &format!("    token: {}\n", token.trim()));
        let kl = |args: &[&str], stdin: Option<&str>| kubectl(&lead, &home, args, stdin);
        let refused = |out: &str, name: &str| {
            out.contains(&format!("roles.rbac.authorization.k8s.io \"{name}\" is forbidden: user \"system:serviceaccount:t:lead\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:t\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}}"))
        };
        let rules_of = |name: &str| {
            let (ok, out) = k(&["get", "role", name, "-n", "t", "-o", "json"], None);
            assert!(ok, "{out}");
            serde_json::from_str::<Value>(&out).unwrap()["rules"].clone()
        };

        // create: the webhook widens what the user may grant → refused, nothing stored
        let (ok, out) = kl(&["create", "-f", "-"], Some(&role("grow", "grow", json!([pods]))));
        assert!(!ok && refused(&out, "grow"), "{out}");
        let (ok, out) = k(&["get", "role", "grow", "-n", "t"], None);
        assert!(!ok && out.contains("not found"), "{out}");
        // create: the body asks for more than the user holds, the webhook takes it out → stored
        let (ok, out) = kl(&["create", "-f", "-"], Some(&role("shrink", "shrink", json!([pods, nodes]))));
        assert!(ok, "{out}");
        assert_eq!(rules_of("shrink"), json!([pods]));

        // update: a label that makes the webhook widen the role → refused, the role unchanged
        let (ok, out) = kl(&["create", "role", "plain", "--verb=get", "--resource=pods"], None);
        assert!(ok, "{out}");
        let (ok, out) = kl(&["label", "role", "plain", "hook=grow"], None);
        assert!(!ok && refused(&out, "plain"), "{out}");
        assert_eq!(rules_of("plain"), json!([pods]));
        let (ok, out) = k(&["get", "role", "plain", "-n", "t", "-o", "jsonpath={.metadata.labels}"], None);
        assert!(ok && out.trim().is_empty(), "{out}");

        // a role wider than the user: finalizers only (the garbage collector's fields) is no
        // escalation; any other change is, unless the webhook narrows the role to what it holds
        let (ok, out) = k(&["create", "role", "wide", "--verb=get", "--resource=nodes", "-n", "t"], None);
        assert!(ok, "{out}");
        let (ok, out) = kl(&["patch", "role", "wide", "--type=merge", "-p", "{\"metadata\":{\"finalizers\":[\"example.com/keep\"]}}"], None);
        assert!(ok, "{out}");
        let (ok, out) = kl(&["label", "role", "wide", "x=y"], None);
        assert!(!ok && refused(&out, "wide"), "{out}");
        let (ok, out) = kl(&["label", "role", "wide", "hook=shrink"], None);
        assert!(ok, "{out}");
        assert_eq!(rules_of("wide"), json!([]));
        let (ok, out) = kl(&["patch", "role", "wide", "--type=merge", "-p", "{\"metadata\":{\"finalizers\":null}}"], None);
        assert!(ok, "{out}");
    })
    .await
    .unwrap();
    assert!(hook.seen().len() >= 6, "{:?}", hook.seen().len());
    server.shutdown().await;
}

/// kube-apiserver compares an update's resourceVersion in the storage's try-update function,
/// after mutating admission (`Store.Update`: `objInfo.UpdatedObject`, whose transformers run
/// the mutating admission of `handlers/update.go`, then the comparison, then validation): a
/// `kubectl replace` with a stale resourceVersion is sent to the mutating webhook with the
/// resourceVersion it names; the webhook's denial is what kubectl reports, otherwise the 409;
/// a webhook that sets the stored resourceVersion makes it an update of the stored object; a
/// stale body that validation would refuse is the 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_resource_version_is_compared_after_mutating_webhooks() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let hook = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            let req = &r["request"];
            match req
                .pointer("/object/metadata/labels/hook")
                .and_then(Value::as_str)
            {
                Some("deny") => Reply::Review(json!({"allowed": false,
                    "status": {"code": 403, "message": "not this one"}})),
                Some("current") => Reply::Review(patch(json!([{"op": "replace",
                    "path": "/metadata/resourceVersion",
                    "value": req["oldObject"]["metadata"]["resourceVersion"].clone()}]))),
                _ => Reply::Review(json!({"allowed": true})),
            }
        }),
    )
    .await;
    let cfg = config(
        "MutatingWebhookConfiguration",
        "rv",
        vec![webhook(
            "rv.example.com",
            &hook.url("/"),
            &t.ca_pem,
            json!([{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["configmaps"]}]),
            json!({}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let seen = hook.seen.clone();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["create", "-f", "-"], Some(&cfg));
        assert!(ok, "{out}");
        let cm = |labels: Value, data: &str, rv: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "immutable": true,
                "metadata": {"name": "c", "namespace": "default", "labels": labels,
                    "resourceVersion": rv},
                "data": {"a": data}})
            .to_string()
        };
        let (ok, out) = k(&["create", "-f", "-"], Some(&cm(json!({}), "1", "")));
        assert!(ok, "{out}");
        let rv_of = || {
            let (ok, out) = k(&["get", "cm", "c", "-o", "jsonpath={.metadata.resourceVersion}"], None);
            assert!(ok, "{out}");
            out.trim().to_string()
        };
        let stale = rv_of();
        let (ok, out) = k(&["label", "cm", "c", "step=two"], None);
        assert!(ok, "{out}");
        let current = rv_of();
        assert_ne!(stale, current);
        let asked = seen.lock().unwrap().len();

        // stale: the webhook is asked (with the stale resourceVersion), then the 409
        let (ok, out) = k(&["replace", "-f", "-"], Some(&cm(json!({"step": "three"}), "1", &stale)));
        assert!(!ok, "{out}");
        assert!(out.contains("Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"), "{out}");
        let reviews = seen.lock().unwrap().clone();
        assert_eq!(reviews.len(), asked + 1, "the webhook was not asked");
        assert_eq!(reviews[asked]["request"]["object"]["metadata"]["resourceVersion"], json!(stale));
        // stale and denied: the webhook's denial, not the 409
        let (ok, out) = k(&["replace", "-f", "-"], Some(&cm(json!({"hook": "deny"}), "1", &stale)));
        assert!(!ok, "{out}");
        assert!(out.contains("admission webhook \"rv.example.com\" denied the request: not this one"), "{out}");
        // stale and invalid (an immutable ConfigMap's data): the 409, validation never ran
        let (ok, out) = k(&["replace", "-f", "-"], Some(&cm(json!({}), "9", &stale)));
        assert!(!ok, "{out}");
        assert!(out.contains("(Conflict)") && !out.contains("immutable"), "{out}");
        // stale, the webhook sets the stored resourceVersion: an update of the stored object
        let (ok, out) = k(&["replace", "-f", "-"], Some(&cm(json!({"hook": "current"}), "1", &stale)));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "cm", "c", "-o", "jsonpath={.metadata.labels}"], None);
        assert!(ok && out.contains("\"hook\":\"current\"") && !out.contains("step"), "{out}");
        assert_ne!(rv_of(), current);
        // current and invalid: 422
        let current = rv_of();
        let (ok, out) = k(&["replace", "-f", "-"], Some(&cm(json!({}), "9", &current)));
        assert!(!ok && out.contains("The ConfigMap \"c\" is invalid: data: Forbidden: field is immutable when `immutable` is set"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// kube-apiserver's storage prepares an updated object (`rest.BeforeUpdate`, the strategy's
/// `PrepareForUpdate`) after mutating admission: a mutating webhook sees the object as the
/// request sent it (the status it names, not the stored one), a spec change the webhook makes
/// counts in the generation, and a status it sets on the main resource is dropped as the
/// request's own is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_is_prepared_after_mutating_webhooks() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let hook = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            match r["request"]["object"]
                .pointer("/metadata/labels/hook")
                .and_then(Value::as_str)
            {
                Some("spec") => Reply::Review(patch(json!([{"op": "replace",
                    "path": "/spec/registry", "value": "mutated.example"}]))),
                Some("status") => Reply::Review(patch(json!([{"op": "add",
                    "path": "/status", "value": {"namespaces": 7}}]))),
                _ => Reply::Review(json!({"allowed": true})),
            }
        }),
    )
    .await;
    let cfg = config(
        "MutatingWebhookConfiguration",
        "prepare",
        vec![webhook(
            "prepare.example.com",
            &hook.url("/"),
            &t.ca_pem,
            json!([{"operations": ["UPDATE"], "apiGroups": ["kubepull.io"], "apiVersions": ["v1alpha1"],
                "resources": ["clusterpullsecrets"]}]),
            json!({}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let seen = hook.seen.clone();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["apply", "-f", "-"], Some(super::crd::CLUSTER_PULL_SECRET_CRD));
        assert!(ok, "{out}");
        let (ok, out) = k(&["wait", "--for=condition=Established", "crd/clusterpullsecrets.kubepull.io"], None);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "-f", "-"], Some(&cfg));
        assert!(ok, "{out}");
        let get = || {
            let (ok, out) = k(&["get", "cps", "corp", "-o", "json"], None);
            assert!(ok, "{out}");
            serde_json::from_str::<Value>(&out).unwrap()
        };
        let put = |hook: &str, rv: &Value| {
            let body = json!({"apiVersion": "kubepull.io/v1alpha1", "kind": "ClusterPullSecret",
                "metadata": {"name": "corp", "labels": {"hook": hook}, "resourceVersion": rv},
                "spec": {"registry": "a.example", "secretRef": {"name": "regcred", "namespace": "kube-system"}},
                "status": {"namespaces": 3}});
            k(&["replace", "--raw", "/apis/kubepull.io/v1alpha1/clusterpullsecrets/corp", "-f", "-"], Some(&body.to_string()))
        };
        let (ok, out) = k(&["create", "-f", "-"], Some(&json!({"apiVersion": "kubepull.io/v1alpha1",
            "kind": "ClusterPullSecret", "metadata": {"name": "corp"},
            "spec": {"registry": "a.example", "secretRef": {"name": "regcred", "namespace": "kube-system"}}}).to_string()));
        assert!(ok, "{out}");
        let v = get();
        assert_eq!(v["metadata"]["generation"], 1);

        // the webhook sees the request's status; its spec change is counted, the status dropped
        let (ok, out) = put("spec", &v["metadata"]["resourceVersion"]);
        assert!(ok, "{out}");
        let review = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(review["request"]["object"]["status"], json!({"namespaces": 3}));
        assert_eq!(review["request"]["object"]["spec"]["registry"], "a.example");
        let v = get();
        assert_eq!(v["spec"]["registry"], "mutated.example");
        assert_eq!(v["metadata"]["generation"], 2);
        assert!(v.get("status").is_none(), "{v}");

        // a status the webhook sets on the main resource is dropped too
        let (ok, out) = put("status", &v["metadata"]["resourceVersion"]);
        assert!(ok, "{out}");
        let v = get();
        assert!(v.get("status").is_none(), "{v}");
        assert_eq!(v["spec"]["registry"], "a.example");
        assert_eq!(v["metadata"]["generation"], 3);
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// kube-apiserver admits a create before its storage prepares it (`rest.BeforeCreate` in
/// `Store.Create`, the strategy's `PrepareForCreate`): a mutating webhook sees a Pod's unset
/// status as Go encodes it (`{}`) and a Deployment's or ReplicaSet's as the body gave it; a
/// status the webhook sets on a new Pod is replaced (phase Pending, the QoS class of the limits
/// the webhook added, whose requests are defaulted from them); a new ReplicaSet starts with
/// `{"replicas":0}` and a Deployment with `{}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_is_prepared_after_mutating_webhooks() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let hook = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            if r["request"]["kind"]["kind"] == "Pod"
                && r["request"]["object"].pointer("/metadata/labels/hook") == Some(&json!("status"))
            {
                return Reply::Review(patch(json!([
                    {"op": "add", "path": "/status", "value": {"phase": "Running", "podIP": "10.0.0.9"}},
                    {"op": "add", "path": "/spec/containers/0/resources",
                        "value": {"limits": {"cpu": "1", "memory": "1Gi"}}}])));
            }
            Reply::Review(json!({"allowed": true}))
        }),
    )
    .await;
    let rules = json!([
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]},
        {"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
            "resources": ["deployments", "replicasets"]}]);
    let cfg = config(
        "MutatingWebhookConfiguration",
        "prepare",
        vec![webhook(
            "prepare.example.com",
            &hook.url("/"),
            &t.ca_pem,
            rules,
            json!({}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let seen = hook.seen.clone();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["create", "-f", "-"], Some(&cfg));
        assert!(ok, "{out}");
        let last = || seen.lock().unwrap().last().cloned().unwrap();
        let create = |body: Value| {
            let (ok, out) = k(
                &["create", "-o", "json", "-f", "-"],
                Some(&body.to_string()),
            );
            assert!(ok, "{out}");
            serde_json::from_str::<Value>(&out).unwrap()
        };
        let pod = |name: &str, hook: &str| {
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"hook": hook}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
        };

        let p = create(pod("plain", "none"));
        assert_eq!(last()["request"]["object"]["status"], json!({}));
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"}),
            "{p:#}"
        );

        let p = create(pod("mutated", "status"));
        assert_eq!(last()["request"]["object"]["status"], json!({}));
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"}),
            "{p:#}"
        );
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Gi"})
        );

        let template = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}});
        let rs = create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web"}, "spec": {"replicas": 0,
                "selector": {"matchLabels": {"app": "web"}}, "template": template.clone()},
            "status": {"replicas": 5, "readyReplicas": 5}}));
        assert_eq!(
            last()["request"]["object"]["status"],
            json!({"replicas": 5, "readyReplicas": 5})
        );
        assert_eq!(rs["status"], json!({"replicas": 0}), "{rs:#}");
        let dep = create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 0, "paused": true,
                "selector": {"matchLabels": {"app": "web"}}, "template": template}}));
        assert_eq!(last()["request"]["object"]["status"], json!({}));
        assert_eq!(dep["status"], json!({}), "{dep:#}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// A validating webhook's refusal of a scale (here with a 409 Conflict status) is the answer:
/// the webhook is called once, not once per retry of a datastore conflict. A validating webhook
/// on a custom resource's `/scale` gets an `autoscaling/v1` Scale of the resource and refuses it.
/// Neither parent changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_webhook_refuses_a_scale_once() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = super::https_client_builder(&server).build().unwrap();
    let t = tls();
    let freeze = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(json!({"allowed": false,
                "status": {"code": 409, "reason": "Conflict", "message": "scaling is frozen"}}))
        }),
    )
    .await;
    let (h, s) = (&http, &server);
    let send = move |method: reqwest::Method, path: &str, ct: &'static str, body: Value| {
        let url = format!("{}{path}", s.url());
        async move { admin_send(h, s, method, url, ct, &body).await }
    };
    let post = |path: &'static str, body: Value| {
        send(reqwest::Method::POST, path, "application/json", body)
    };
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"scale": {"specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas"}}}]}});
    let (code, v) = post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let mut served = false;
    for _ in 0..100 {
        if send(reqwest::Method::GET, widgets, "application/json", json!({}))
            .await
            .0
            == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served, "the CRD is served");
    let (code, v) = post(
        "/apis/example.com/v1/namespaces/default/widgets",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"replicas": 1}}),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let (code, v) = post("/apis/apps/v1/namespaces/default/deployments", dep).await;
    assert_eq!(code, 201, "{v}");
    let cfg = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "freeze"},
        "webhooks": [webhook("freeze.example.com", &freeze.url("/"), &t.ca_pem,
            json!([{"operations": ["UPDATE"], "apiGroups": ["apps", "example.com"], "apiVersions": ["v1"],
                "resources": ["deployments/scale", "widgets/scale"]}]), json!({}))]});
    let (code, v) = post(
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        cfg,
    )
    .await;
    assert_eq!(code, 201, "{v}");

    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 5}});
    let (code, v) = send(
        reqwest::Method::PUT,
        "/apis/apps/v1/namespaces/default/deployments/d/scale",
        "application/json",
        scale,
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("scaling is frozen"),
        "{v}"
    );
    assert_eq!(freeze.seen().len(), 1, "called once");
    let (_, v) = send(
        reqwest::Method::GET,
        "/apis/apps/v1/namespaces/default/deployments/d",
        "application/json",
        json!({}),
    )
    .await;
    assert_eq!(v["spec"]["replicas"], 1, "{v}");

    let (code, v) = send(
        reqwest::Method::PATCH,
        "/apis/example.com/v1/namespaces/default/widgets/w/scale",
        "application/merge-patch+json",
        json!({"spec": {"replicas": 4}}),
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")), "{v}");
    let seen = freeze.seen();
    assert_eq!(seen.len(), 2, "called once more");
    let rq = &seen[1]["request"];
    assert_eq!(
        rq["kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(
        rq["resource"],
        json!({"group": "example.com", "version": "v1", "resource": "widgets"})
    );
    assert_eq!(rq["subResource"], "scale");
    assert_eq!(rq["operation"], "UPDATE");
    assert_eq!(
        (
            &rq["object"]["spec"]["replicas"],
            &rq["oldObject"]["spec"]["replicas"]
        ),
        (&json!(4), &json!(1))
    );
    let (_, v) = send(
        reqwest::Method::GET,
        "/apis/example.com/v1/namespaces/default/widgets/w",
        "application/json",
        json!({}),
    )
    .await;
    assert_eq!(v["spec"]["replicas"], 1, "{v}");
    server.shutdown().await;
}

/// matchPolicy `Equivalent` (the default): a validating webhook registered for a CRD's `v1` is
/// called for a create through `v1beta1`, with the object as `v1` (kind and resource `v1`,
/// requestKind and requestResource `v1beta1`), and its refusal holds; one with `Exact` is not
/// called; one whose rule names two other versions gets the first in the CRD's `spec.versions`
/// order. A webhook on core `events` is called for a create through `events.k8s.io` with the
/// Event in its core form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivalent_versions_and_groups_reach_the_webhooks() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let http = super::https_client_builder(&server).build().unwrap();
    let t = tls();
    let deny = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(json!({"allowed": false, "status": {"message": "no widgets"}}))
        }),
    )
    .await;
    let deny_scale = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(json!({"allowed": false, "status": {"message": "no scaling"}}))
        }),
    )
    .await;
    let exact = Hook::start(
        &t,
        Arc::new(|_: &Value| Reply::Review(json!({"allowed": true}))),
    )
    .await;
    let in_order = Hook::start(
        &t,
        Arc::new(|_: &Value| Reply::Review(json!({"allowed": true}))),
    )
    .await;
    let events = Hook::start(
        &t,
        Arc::new(|_: &Value| Reply::Review(json!({"allowed": true}))),
    )
    .await;
    // a mutating webhook on core events patches the core form (`message`); the change reaches
    // the Event written through events.k8s.io as its `note`
    let retitle = Hook::start(
        &t,
        Arc::new(|_: &Value| {
            Reply::Review(patch(
                json!([{"op": "replace", "path": "/message", "value": "looked again"}]),
            ))
        }),
    )
    .await;
    let (h, s) = (&http, &server);
    let post = move |path: &str, body: Value| {
        let url = format!("{}{path}", s.url());
        async move { admin_send(h, s, reqwest::Method::POST, url, "application/json", &body).await }
    };
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    let scale = json!({"scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}});
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": false, "schema": schema, "subresources": scale},
                {"name": "v1", "served": true, "storage": true, "schema": schema, "subresources": scale},
                {"name": "v1beta1", "served": true, "storage": false, "schema": schema, "subresources": scale}]}});
    let (code, v) = post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let beta = "/apis/example.com/v1beta1/namespaces/default/widgets";
    for _ in 0..100 {
        let url = format!("{}{beta}", s.url());
        let empty = json!({});
        if admin_send(h, s, reqwest::Method::GET, url, "application/json", &empty)
            .await
            .0
            == 200
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // a widget to scale, made before the webhooks
    let (code, v) = post(
        "/apis/example.com/v1/namespaces/default/widgets",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"replicas": 1}}),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let v1_widgets = json!([{"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["widgets"]}]);
    // a rule naming two other versions: the first of them in the CRD's order is used
    let two_widgets = json!([{"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1", "v1alpha1"], "resources": ["widgets"]}]);
    let v1_scale = json!([{"operations": ["UPDATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["widgets/scale"]}]);
    let core_events = json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["events"]}]);
    let cfg = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "equivalent"},
    "webhooks": [
        webhook("order.example.com", &in_order.url("/"), &t.ca_pem, two_widgets, json!({})),
        webhook("deny.example.com", &deny.url("/"), &t.ca_pem, v1_widgets.clone(), json!({})),
        webhook("scale.example.com", &deny_scale.url("/"), &t.ca_pem, v1_scale, json!({})),
        webhook("exact.example.com", &exact.url("/"), &t.ca_pem, v1_widgets, json!({"matchPolicy": "Exact"})),
        webhook("events.example.com", &events.url("/"), &t.ca_pem, core_events, json!({})),
    ]});
    let (code, v) = post(
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        cfg,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let core_events = json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["events"]}]);
    let cfg = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "retitle"},
        "webhooks": [webhook("retitle.example.com", &retitle.url("/"), &t.ca_pem, core_events, json!({}))]});
    let (code, v) = post(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        cfg,
    )
    .await;
    assert_eq!(code, 201, "{v}");

    let (code, v) = post(
        beta,
        json!({"apiVersion": "example.com/v1beta1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 1}}),
    )
    .await;
    assert_ne!(code, 201, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("no widgets"),
        "{v}"
    );
    let seen = deny.seen();
    assert_eq!(seen.len(), 1);
    let rq = &seen[0]["request"];
    assert_eq!(
        rq["kind"],
        json!({"group": "example.com", "version": "v1", "kind": "Widget"}),
        "{rq}"
    );
    assert_eq!(rq["resource"]["version"], "v1", "{rq}");
    assert_eq!(rq["requestKind"]["version"], "v1beta1", "{rq}");
    assert_eq!(rq["requestResource"]["version"], "v1beta1", "{rq}");
    assert_eq!(rq["object"]["apiVersion"], "example.com/v1", "{rq}");
    assert_eq!(rq["object"]["spec"]["size"], 1, "{rq}");
    assert!(
        exact.seen().is_empty(),
        "an Exact webhook is called for its own version only"
    );
    let seen = in_order.seen();
    assert_eq!(seen.len(), 1);
    let rq = &seen[0]["request"];
    assert_eq!(rq["kind"]["version"], "v1alpha1", "{rq}");
    assert_eq!(rq["object"]["apiVersion"], "example.com/v1alpha1", "{rq}");
    // a scale through v1beta1 reaches the webhook on v1's scale, as a Scale of v1's resource
    let url = format!("{}{beta}/s/scale", s.url());
    let body = json!({"spec": {"replicas": 3}});
    let merge = "application/merge-patch+json";
    let (code, v) = admin_send(h, s, reqwest::Method::PATCH, url, merge, &body).await;
    assert_ne!(code, 200, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("no scaling"),
        "{v}"
    );
    let seen = deny_scale.seen();
    assert_eq!(seen.len(), 1);
    let rq = &seen[0]["request"];
    assert_eq!(
        rq["kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
        "{rq}"
    );
    assert_eq!(
        rq["resource"],
        json!({"group": "example.com", "version": "v1", "resource": "widgets"}),
        "{rq}"
    );
    assert_eq!(rq["requestResource"]["version"], "v1beta1", "{rq}");
    assert_eq!(rq["subResource"], "scale", "{rq}");
    assert_eq!(rq["object"]["spec"]["replicas"], 3, "{rq}");

    let (code, v) = post(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e.1"},
        "eventTime": "2026-12-07T10:00:00.000000Z", "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-1", "action": "Check", "reason": "Checked", "type": "Normal",
        "note": "looked", "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}}),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["note"], "looked again", "{v}");
    assert_eq!(retitle.seen()[0]["request"]["object"]["message"], "looked");
    let seen = events.seen();
    assert_eq!(seen.len(), 1);
    let rq = &seen[0]["request"];
    assert_eq!(
        rq["kind"],
        json!({"group": "", "version": "v1", "kind": "Event"}),
        "{rq}"
    );
    assert_eq!(rq["requestKind"]["group"], "events.k8s.io", "{rq}");
    assert_eq!(rq["object"]["involvedObject"]["name"], "p", "{rq}");
    assert_eq!(rq["object"]["message"], "looked again", "{rq}");
    assert_eq!(rq["object"]["apiVersion"], "v1", "{rq}");
    server.shutdown().await;
}

/// `kubectl replace` of a missing Lease creates it, as on a real cluster (its GET finds
/// nothing, its PUT creates: `AllowCreateOnUpdate`), and the create is one to admission and
/// authorization: the mutating webhook is asked with operation CREATE, no oldObject and
/// CreateOptions naming kubectl's field manager, the validating webhook sees CREATE and what the
/// mutating one made (its refusal stores nothing), the managed fields are the field manager's
/// `Update` entry; a replace of the stored Lease is an UPDATE. A user RBAC allows to update
/// Leases but not to create them is refused the create (`withAuthorization`'s 403) and may
/// update. A replace of a missing ConfigMap is still kubectl's NotFound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_of_a_missing_lease_creates_it() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let t = tls();
    let mutating = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            let op = r["request"]["operation"]
                .as_str()
                .unwrap_or("")
                .to_lowercase();
            Reply::Review(patch(
                json!([{"op": "add", "path": "/metadata/labels/op", "value": op}]),
            ))
        }),
    )
    .await;
    let validating = Hook::start(
        &t,
        Arc::new(|r: &Value| {
            if r.pointer("/request/object/metadata/labels/hook") == Some(&json!("deny")) {
                return Reply::Review(json!({"allowed": false,
                    "status": {"code": 403, "message": "no such lease"}}));
            }
            Reply::Review(json!({"allowed": true}))
        }),
    )
    .await;
    let rules = json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["coordination.k8s.io"],
        "apiVersions": ["v1"], "resources": ["leases"]}]);
    let mcfg = config(
        "MutatingWebhookConfiguration",
        "leases",
        vec![webhook(
            "m.example.com",
            &mutating.url("/"),
            &t.ca_pem,
            rules.clone(),
            json!({}),
        )],
    );
    let vcfg = config(
        "ValidatingWebhookConfiguration",
        "leases",
        vec![webhook(
            "v.example.com",
            &validating.url("/"),
            &t.ca_pem,
            rules,
            json!({}),
        )],
    );
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let dir = d.path().to_path_buf();
    let (url, ca) = (server.url(), server.ca_pem());
    let (mseen, vseen) = (mutating.seen.clone(), validating.seen.clone());
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        for args in [
            &["create", "namespace", "t"][..],
            &["create", "serviceaccount", "updater", "-n", "t"],
            &["create", "role", "lease-updater", "--verb=get,update", "--resource=leases.coordination.k8s.io", "-n", "t"],
            &["create", "rolebinding", "lease-updater", "--role=lease-updater", "--serviceaccount=t:updater", "-n", "t"],
        ] {
            let (ok, out) = k(args, None);
            assert!(ok, "{args:?}: {out}");
        }
        for cfg in [&mcfg, &vcfg] {
            let (ok, out) = k(&["create", "-f", "-"], Some(cfg));
            assert!(ok, "{out}");
        }
        let lease = |name: &str, hook: &str| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "t", "labels": {"hook": hook}},
                "spec": {"holderIdentity": "me"}})
            .to_string()
        };
        let get = |name: &str| {
            let (ok, out) = k(&["get", "lease", name, "-n", "t", "-o", "json", "--show-managed-fields"], None);
            ok.then(|| serde_json::from_str::<Value>(&out).unwrap())
        };

        let (ok, out) = k(&["replace", "-f", "-"], Some(&lease("l", "none")));
        assert!(ok, "{out}");
        assert_eq!(out.trim(), "lease.coordination.k8s.io/l replaced");
        let m = mseen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(m["request"]["operation"], "CREATE");
        assert_eq!(m["request"]["oldObject"], Value::Null);
        assert_eq!(m["request"]["name"], "l");
        assert_eq!(m["request"]["options"]["kind"], "CreateOptions");
        assert_eq!(m["request"]["options"]["fieldManager"], "kubectl-replace");
        let v = vseen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(v["request"]["operation"], "CREATE");
        assert_eq!(v["request"]["oldObject"], Value::Null);
        assert_eq!(v["request"]["object"]["metadata"]["labels"]["op"], "create");
        let made = get("l").expect("created");
        assert_eq!(made["metadata"]["labels"]["op"], "create");
        let mf = &made["metadata"]["managedFields"];
        assert_eq!(mf.as_array().map(Vec::len), Some(1), "{made}");
        assert_eq!((&mf[0]["manager"], &mf[0]["operation"]), (&json!("kubectl-replace"), &json!("Update")));

        // there now: an update
        let (ok, out) = k(&["replace", "-f", "-"], Some(&lease("l", "again")));
        assert!(ok, "{out}");
        let m = mseen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(m["request"]["operation"], "UPDATE");
        assert_eq!(m["request"]["oldObject"]["metadata"]["labels"]["op"], "create");
        assert_eq!(get("l").unwrap()["metadata"]["uid"], made["metadata"]["uid"]);

        // the validating webhook refuses the create: nothing stored
        let (ok, out) = k(&["replace", "-f", "-"], Some(&lease("d", "deny")));
        assert!(!ok, "{out}");
        assert!(out.contains("admission webhook \"v.example.com\" denied the request: no such lease"), "{out}");
        assert_eq!(vseen.lock().unwrap().last().unwrap()["request"]["operation"], "CREATE");
        assert!(get("d").is_none());

        // update without create: refused the create, allowed the update
        let (ok, token) = k(&["create", "token", "updater", "-n", "t"], None);
        assert!(ok, "{token}");
        let updater = token_kubeconfig(&dir, "updater.kubeconfig", &url, &ca, &format!("    token: {}\n", token.trim()));
        let ku = |args: &[&str], stdin: Option<&str>| kubectl(&updater, &home, args, stdin);
        let (ok, out) = ku(&["replace", "-f", "-"], Some(&lease("u", "none")));
        assert!(!ok, "{out}");
        assert!(out.contains("Error from server (Forbidden): error when replacing \"STDIN\": leases.coordination.k8s.io \"u\" is forbidden: "), "{out}");
        assert!(get("u").is_none());
        let (ok, out) = ku(&["replace", "-f", "-"], Some(&lease("l", "by-updater")));
        assert!(ok, "{out}");
        assert_eq!(get("l").unwrap()["metadata"]["labels"]["hook"], "by-updater");

        // a ConfigMap does not create on update
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "t"}, "data": {"a": "1"}}).to_string();
        let (ok, out) = k(&["replace", "-f", "-"], Some(&cm));
        assert!(!ok, "{out}");
        assert!(out.contains("Error from server (NotFound): error when replacing \"STDIN\": configmaps \"c\" not found"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}
