//! `kubepull operator` end to end on `kubepull up` (the operator uses only what a real API server
//! offers): installed from `kubepull operator manifests` (CRD and RBAC), run outside the cluster
//! under its own ServiceAccount's token (TokenRequest), its webhook called by the API server over
//! HTTPS with the CA it manages, pods pulling from the real `docker-registry` with Basic auth.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use kubepull_kube::operator::manifests;
use kubepull_testkit::{busybox_image, free_port, Registry};
use serde_json::Value;

const USER: &str = "operator-user";
const PASS: &str = "Operator-Registry-Pass-4410";
const WRONG: &str = "Operator-Rotated-Wrong-9921";
const NS: &str = "kubepull-system";
const SRC_NS: &str = "registry-creds";

struct Operator {
    child: Child,
    log: std::path::PathBuf,
}

impl Operator {
    fn start(
        up: &Up,
        kubeconfig: &Path,
        name: &str,
        bind: u16,
        url_port: u16,
        extra: &[&str],
    ) -> Operator {
        let log = up.dir.path().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kubepull"))
            .arg("operator")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", NS])
            .args(["--webhook-bind", &format!("127.0.0.1:{bind}")])
            .args([
                "--webhook-url",
                &format!("https://127.0.0.1:{url_port}/mutate-pods"),
            ])
            .args(extra)
            .env("POD_NAME", name)
            .env("HOME", up.dir.path())
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("start kubepull operator");
        Operator { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> Option<String>, ctx: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            ctx()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn secret_data(up: &Up, ns: &str, name: &str) -> Option<Value> {
    let o = up.kubectl(&["get", "secret", name, "-n", ns, "-o", "json"]);
    o.status
        .success()
        .then(|| json(&String::from_utf8_lossy(&o.stdout)))
}

fn pod_yaml(ns: &str, name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{op: e2e}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: Always\n"
    )
}

fn docker_config(host: &str, user: &str, pass: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!(
        r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{pass}","auth":"{auth}"}}}}}}"#
    )
}

fn set_source(up: &Up, name: &str, content: &str) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    up.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {SRC_NS}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {b64}\n"
    ));
}

fn cps_status(up: &Up, name: &str) -> Value {
    json(&up.ok(&["get", "clusterpullsecret", name, "-o", "json"]))["status"].clone()
}

fn condition(status: &Value, t: &str) -> (String, String) {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == t)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::Write;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The real registry (Basic auth) with a private image pushed, and a hosts directory trusting
/// it: `(registry, image, hosts dir)`. Checks that runc is there first.
fn registry_with_app() -> (Registry, String, tempfile::TempDir) {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["/bin/sh", "-c", "sleep 3600"], &[]);
    rt.block_on(reg.push("team/app", "v1", &img));
    let image = format!("{}/team/app:v1", reg.host());
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    (reg, image, hosts)
}

/// Installs what `operator manifests` prints except the Deployment and Service (the operator
/// runs as a local process), and the source Secret in its namespace.
fn install_outside_the_cluster(up: &Up, reg: &Registry) {
    let objects: Vec<Value> = manifests::objects(NS, "registry.invalid/kubepull:unused")
        .into_iter()
        .filter(|o| o["kind"] != "Deployment" && o["kind"] != "Service")
        .collect();
    up.apply(&manifests::yaml_stream(&objects));
    up.ok(&["create", "namespace", SRC_NS]);
    set_source(up, "regcred", &docker_config(&reg.host(), USER, PASS));
}

#[test]
fn operator_propagates_race_free_validates_rotates_and_fails_over() {
    let (reg, image, hosts) = registry_with_app();
    let up = start_up(hosts.path());

    // install from the printed manifests; the operator itself runs here, outside the cluster
    install_outside_the_cluster(&up, &reg);

    // the operator's own identity: a token for its ServiceAccount, bound by its printed RBAC
    let token = up
        .ok(&[
            "create",
            "token",
            "kubepull-operator",
            "-n",
            NS,
            "--duration",
            "2h",
        ])
        .trim()
        .to_string();
    let admin: Value = json(&up.ok(&["config", "view", "--raw", "-o", "json"]));
    let cluster = &admin["clusters"][0]["cluster"];
    let sa_kubeconfig = up.dir.path().join("operator.kubeconfig");
    std::fs::write(
        &sa_kubeconfig,
        serde_json::to_string(&serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "op", "user": {"token": token}}],
            "contexts": [{"name": "op", "context": {"cluster": "c", "user": "op"}}],
            "current-context": "op"
        }))
        .unwrap(),
    )
    .unwrap();
    // what the operator's own identity may do (asked with its token, not by impersonation)
    for (verb, res, want) in [
        ("list", "secrets", "yes"),
        ("patch", "serviceaccounts", "yes"),
        ("watch", "namespaces", "yes"),
        ("create", "pods", "no"),
        ("delete", "namespaces", "no"),
        ("update", "configmaps", "no"),
        ("create", "clusterrolebindings", "no"),
        ("delete", "serviceaccounts", "no"),
    ] {
        let o = Command::new("kubectl")
            .env("KUBECONFIG", &sa_kubeconfig)
            .env("HOME", up.dir.path())
            .args(["auth", "can-i", verb, res, "-A"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            want,
            "can-i {verb} {res} as the operator: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // two replicas with leader election; the webhook URL is replica b's
    let (a_port, b_port, metrics_port) = (free_port(), free_port(), free_port());
    let a = Operator::start(
        &up,
        &sa_kubeconfig,
        "replica-a",
        a_port,
        b_port,
        &[
            "--leader-elect",
            "--metrics-bind",
            &format!("127.0.0.1:{metrics_port}"),
        ],
    );
    let lease_holder = || {
        let o = up.kubectl(&["get", "lease", "kubepull-operator", "-n", NS, "-o", "json"]);
        o.status.success().then(|| {
            json(&String::from_utf8_lossy(&o.stdout))["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    };
    let first = wait_for("a leader", lease_holder, || a.log());
    assert!(first.starts_with("replica-a"), "{first}");
    let b = Operator::start(
        &up,
        &sa_kubeconfig,
        "replica-b",
        b_port,
        b_port,
        &["--leader-elect"],
    );
    wait_for(
        "the webhook configuration",
        || {
            let o = up.kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                "kubepull-operator",
                "-o",
                "json",
            ]);
            o.status.success().then(String::new)
        },
        || a.log(),
    );

    let cps = |name: &str, secret: &str, extra: &str| {
        format!(
            "apiVersion: kubepull.io/v1alpha1\nkind: ClusterPullSecret\nmetadata:\n  name: {name}\nspec:\n  secretRef: {{namespace: {SRC_NS}, name: {secret}}}\n{extra}"
        )
    };
    up.apply(&cps(
        "corp",
        "regcred",
        "  excludeNamespaces: [\"skip-*\"]\n",
    ));

    // a namespace created and at once given a pod, 20 times: each pod carries the secret
    let mut yaml = String::new();
    for i in 0..20 {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: race-{i}\n---\n{}---\n",
            pod_yaml(&format!("race-{i}"), "app", &image)
        ));
    }
    yaml.push_str("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: skip-me\n---\n");
    yaml.push_str(&pod_yaml("skip-me", "app", &image));
    up.apply(&yaml);
    for i in 0..20 {
        let ns = format!("race-{i}");
        let pod = json(&up.ok(&["get", "pod", "app", "-n", &ns, "-o", "json"]));
        assert_eq!(
            pod["spec"]["imagePullSecrets"],
            serde_json::json!([{"name": "regcred"}]),
            "pod in {ns} was admitted without the secret\n{}\n{}",
            a.log(),
            b.log()
        );
        let copy = secret_data(&up, &ns, "regcred").expect("the copy exists before the pod");
        assert_eq!(
            copy["metadata"]["labels"]["kubepull.io/cluster-pull-secret"],
            "corp"
        );
    }
    for i in 0..20 {
        up.wait_pods(
            &format!("race-{i}"),
            "op=e2e",
            |p| p["status"]["phase"] == "Running",
            "race pods Running",
        );
    }
    // excluded by an anchored glob; the source's and the operator's namespaces never get copies
    let skip = json(&up.ok(&["get", "pod", "app", "-n", "skip-me", "-o", "json"]));
    assert!(skip["spec"]["imagePullSecrets"].is_null(), "{skip}");
    assert!(secret_data(&up, "skip-me", "regcred").is_none());
    assert!(secret_data(&up, NS, "regcred").is_none());
    let src = secret_data(&up, SRC_NS, "regcred").unwrap();
    assert!(
        src["metadata"]["labels"].is_null(),
        "the source was touched: {src}"
    );
    wait_for(
        "status with 20+ copies",
        || {
            let s = cps_status(&up, "corp");
            (s["namespaces"].as_i64().unwrap_or(0) >= 21 && condition(&s, "Ready").0 == "True")
                .then(String::new)
        },
        || format!("{}\n{}", cps_status(&up, "corp"), a.log()),
    );
    let table = up.ok(&["get", "clusterpullsecrets"]);
    assert!(
        table.contains("SOURCE") && table.contains(&format!("{SRC_NS}/regcred")),
        "{table}"
    );

    // rotation: a wrong password reaches every copy and a new pod fails with it; the right one
    // reaches them again and a new pod runs
    set_source(&up, "regcred", &docker_config(&reg.host(), USER, WRONG));
    let want = secret_data(&up, SRC_NS, "regcred").unwrap()["data"].clone();
    wait_for(
        "rotated copies",
        || {
            (0..20)
                .all(|i| secret_data(&up, &format!("race-{i}"), "regcred").unwrap()["data"] == want)
                .then(String::new)
        },
        || a.log(),
    );
    up.apply(&pod_yaml("race-3", "after-wrong", &image));
    up.wait_pods(
        "race-3",
        "op=e2e",
        |p| {
            p["metadata"]["name"] != "after-wrong"
                || matches!(
                    waiting_reason(p).as_str(),
                    "ErrImagePull" | "ImagePullBackOff"
                )
        },
        "a pod pulling with the rotated (wrong) password to fail",
    );
    set_source(&up, "regcred", &docker_config(&reg.host(), USER, PASS));
    let want = secret_data(&up, SRC_NS, "regcred").unwrap()["data"].clone();
    wait_for(
        "copies rotated back",
        || (secret_data(&up, "race-3", "regcred").unwrap()["data"] == want).then(String::new),
        || a.log(),
    );
    up.apply(&pod_yaml("race-4", "after-right", &image));
    up.wait_pods(
        "race-4",
        "op=e2e",
        |p| p["status"]["phase"] == "Running",
        "pod after rotation",
    );

    // a broken source is refused with a status and an Event, and copied nowhere
    set_source(&up, "legacy", r#"{"registry.example":{"auth":"dTpw"}}"#);
    up.apply(&cps("broken", "legacy", ""));
    let (st, reason) = wait_for(
        "the broken source's status",
        || {
            let c = condition(&cps_status(&up, "broken"), "SourceValid");
            (!c.0.is_empty()).then(|| format!("{}|{}", c.0, c.1))
        },
        || a.log(),
    )
    .split_once('|')
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .unwrap();
    assert_eq!((st.as_str(), reason.as_str()), ("False", "SourceInvalid"));
    assert!(secret_data(&up, "race-0", "legacy").is_none());
    let events = up.ok(&["get", "events", "-A", "-o", "json"]);
    assert!(
        events.contains("SourceInvalid"),
        "no Event for the broken source"
    );

    // ServiceAccount injection in labelled namespaces only
    set_source(&up, "mirror-cred", &docker_config(&reg.host(), USER, PASS));
    up.apply(&cps(
        "sa-mode",
        "mirror-cred",
        "  injection: ServiceAccount\n  namespaceSelector: {matchLabels: {pull: sa}}\n",
    ));
    up.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: sa-ns\n  labels: {pull: sa}\n");
    wait_for(
        "the default ServiceAccount patched",
        || {
            let sa = json(&up.ok(&["get", "sa", "default", "-n", "sa-ns", "-o", "json"]));
            (sa["imagePullSecrets"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["name"] == "mirror-cred")))
            .then(String::new)
        },
        || a.log(),
    );
    assert!(
        secret_data(&up, "race-0", "mirror-cred").is_none(),
        "selector ignored"
    );

    // deleting the CR removes its copies
    up.ok(&["delete", "clusterpullsecret", "sa-mode"]);
    wait_for(
        "copies of a deleted ClusterPullSecret gone",
        || {
            secret_data(&up, "sa-ns", "mirror-cred")
                .is_none()
                .then(String::new)
        },
        || a.log(),
    );

    // metrics
    let m = metrics(metrics_port);
    assert!(
        m.contains("kubepull_operator_copies_total{action=\"create\"}"),
        "{m}"
    );
    assert!(m.contains("kubepull_operator_leader 1"), "{m}");

    // kill -9 of the leader: the other replica takes over, the next namespace gets its copy
    let mut a = a;
    let _ = a.child.kill();
    let _ = a.child.wait();
    let holder = wait_for(
        "replica-b to take the lease",
        || lease_holder().filter(|h| h.starts_with("replica-b")),
        || b.log(),
    );
    assert!(holder.starts_with("replica-b"));
    up.ok(&["create", "namespace", "after-failover"]);
    wait_for(
        "a copy in the namespace created after failover",
        || secret_data(&up, "after-failover", "regcred").map(|_| String::new()),
        || b.log(),
    );

    // no secret in any output
    let all = format!(
        "{}{}{}{}",
        a.log(),
        b.log(),
        up.ok(&["get", "clusterpullsecrets", "-o", "yaml"]),
        up.ok(&["get", "events", "-A", "-o", "yaml"])
    );
    for s in [PASS, WRONG] {
        assert!(
            !all.contains(s),
            "a password leaked into logs, status or events"
        );
    }
    assert!(
        !a.log().contains("forbidden") && !b.log().contains("forbidden"),
        "{}\n{}",
        a.log(),
        b.log()
    );
}

/// The operator as users install it: built into an image by `scripts/image.sh` and pushed with
/// `kubepull push` to the private registry, installed from `kubepull operator manifests` (two
/// replicas, its own ServiceAccount and RBAC, the restricted Pod Security level), pulled by the
/// node with a pull secret, running in pods that reach the API server through the `kubernetes`
/// Service (in-cluster config: `KUBERNETES_SERVICE_HOST`, the `kube-api-access` token and CA),
/// and called by the API server through its Service.
#[test]
fn operator_runs_in_cluster_from_its_image() {
    let (reg, app_image, hosts) = registry_with_app();
    let work = tempfile::tempdir().unwrap();
    // the image, pushed with kubepull's own client (Docker's certs.d layout to trust the registry)
    let certs = work.path().join("certs.d");
    std::fs::create_dir_all(certs.join(reg.host())).unwrap();
    std::fs::write(certs.join(reg.host()).join("ca.crt"), reg.ca_pem()).unwrap();
    let push_secret = work.path().join("push.yaml");
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(docker_config(&reg.host(), USER, PASS));
    std::fs::write(
        &push_secret,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: push\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {b64}\n"),
    )
    .unwrap();
    let op_image = format!("{}/kubepull/operator:e2e", reg.host());
    let o = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/image.sh"))
        .arg(&op_image)
        .arg("-q")
        .arg("--secret")
        .arg(&push_secret)
        .arg("--hosts-dir")
        .arg(&certs)
        .env("KUBEPULL_BIN", env!("CARGO_BIN_EXE_kubepull"))
        .env("OUT", work.path().join("layout"))
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scripts/image.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let node_metrics = free_port();
    let up = start_up_with(
        hosts.path(),
        &["--metrics-bind", &format!("127.0.0.1:{node_metrics}")],
    );

    // the namespace and the pull secret for the operator's image, then everything printed
    up.ok(&["create", "namespace", NS]);
    up.create_pull_secret("operator-pull", &reg.host(), USER, PASS, &["-n", NS]);
    let printed = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args([
            "operator",
            "manifests",
            "--namespace",
            NS,
            "--image",
            &op_image,
        ])
        .args(["--image-pull-secret", "operator-pull"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    up.apply(&String::from_utf8_lossy(&printed.stdout));
    let pods_ctx = || {
        format!(
            "{}\n{}\n--- kubepull up log ---\n{}",
            up.kubectl_text(&["get", "pods", "-n", NS, "-o", "yaml"]),
            up.kubectl_text(&[
                "logs",
                "-n",
                NS,
                "-l",
                "app.kubernetes.io/name=kubepull-operator",
                "--tail",
                "50",
                "--prefix"
            ]),
            up.log()
        )
    };
    wait_for(
        "two operator pods Running and Ready",
        || {
            let o = up.kubectl(&[
                "get",
                "pods",
                "-n",
                NS,
                "-l",
                "app.kubernetes.io/name=kubepull-operator",
                "-o",
                "json",
            ]);
            let v = json(&String::from_utf8_lossy(&o.stdout));
            let items = v["items"].as_array().cloned().unwrap_or_default();
            (items.len() == 2
                && items.iter().all(|p| {
                    p["status"]["phase"] == "Running"
                        && p["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                }))
            .then(String::new)
        },
        pods_ctx,
    );
    // in-cluster: the pods carry the API credentials the ServiceAccount admission mounted
    let pod = json(&up.ok(&[
        "get",
        "pods",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/name=kubepull-operator",
        "-o",
        "json",
    ]))["items"][0]
        .clone();
    let vols = pod["spec"]["volumes"].to_string();
    assert!(vols.contains("kube-api-access-"), "{vols}");
    assert!(vols.contains("kube-root-ca.crt"), "{vols}");
    // one replica leads (the Lease names a pod), and the webhook points at the Service
    let holder = wait_for(
        "a leader",
        || {
            let o = up.kubectl(&["get", "lease", "kubepull-operator", "-n", NS, "-o", "json"]);
            o.status
                .success()
                .then(|| {
                    json(&String::from_utf8_lossy(&o.stdout))["spec"]["holderIdentity"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .filter(|h| h.starts_with("kubepull-operator-"))
        },
        pods_ctx,
    );
    assert!(!holder.is_empty());
    let mwc = wait_for(
        "the webhook configuration",
        || {
            let o = up.kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                "kubepull-operator",
                "-o",
                "json",
            ]);
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
        },
        pods_ctx,
    );
    let mwc = json(&mwc);
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["service"]["name"], "kubepull-operator",
        "{mwc}"
    );
    assert!(mwc["webhooks"][0]["clientConfig"]["url"].is_null(), "{mwc}");

    // the operator at work: a new namespace's first pod carries the copy and runs
    up.ok(&["create", "namespace", SRC_NS]);
    set_source(&up, "regcred", &docker_config(&reg.host(), USER, PASS));
    up.apply(&format!(
        "apiVersion: kubepull.io/v1alpha1\nkind: ClusterPullSecret\nmetadata:\n  name: corp\nspec:\n  secretRef: {{namespace: {SRC_NS}, name: regcred}}\n"
    ));
    wait_for(
        "the ClusterPullSecret Ready",
        || (condition(&cps_status(&up, "corp"), "Ready").0 == "True").then(String::new),
        pods_ctx,
    );
    up.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fresh\n---\n{}",
        pod_yaml("fresh", "app", &app_image)
    ));
    let pod = json(&up.ok(&["get", "pod", "app", "-n", "fresh", "-o", "json"]));
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        serde_json::json!([{"name": "regcred"}]),
        "the pod was admitted without the secret\n{}",
        pods_ctx()
    );
    up.wait_pods(
        "fresh",
        "op=e2e",
        |p| p["status"]["phase"] == "Running",
        "the new namespace's pod Running",
    );
    // the node's metrics count the pulls; the API server's, its requests and the webhook calls
    let node = metrics(node_metrics);
    assert!(
        node.contains("kubepull_node_image_pulls_total{result=\"success\",cause=\"\"}"),
        "{node}"
    );
    assert!(
        node.contains("kubepull_node_image_pull_bytes_total "),
        "{node}"
    );
    let api = up.ok(&["get", "--raw", "/metrics"]);
    assert!(
        api.contains("apiserver_request_total{verb=\"POST\",group=\"\",resource=\"pods\",subresource=\"\",code=\"201\"}"),
        "{api}"
    );
    assert!(
        api.contains("apiserver_admission_webhook_request_total{name=\"pull-secrets.kubepull.io\",type=\"admit\",operation=\"CREATE\",result=\"allowed\",rejected=\"false\"}"),
        "{api}"
    );
    assert!(!api.contains(PASS) && !node.contains(PASS));
    // no replica's log shows the registry password
    let logs = up.kubectl_text(&[
        "logs",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/name=kubepull-operator",
        "--tail",
        "-1",
    ]);
    assert!(!logs.contains(PASS), "{logs}");
}

fn write_tls_dir(dir: &Path) -> String {
    let (ca, cert, key) = kubepull_testkit::registry::tls_material();
    std::fs::create_dir_all(dir).unwrap();
    // as cert-manager writes a Secret's files: each replaced whole
    for (name, content) in [("ca.crt", &ca), ("tls.key", &key), ("tls.crt", &cert)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    ca
}

/// `--tls-dir` (the cert-manager option): the operator serves the mounted certificate, puts its
/// `ca.crt` in the webhook configuration, keeps no CA of its own, and picks up a renewal
/// (another CA even) without a restart.
#[test]
fn operator_serves_a_mounted_certificate_and_follows_its_renewal() {
    let (reg, image, hosts) = registry_with_app();
    let up = start_up(hosts.path());
    install_outside_the_cluster(&up, &reg);
    let tls = up.dir.path().join("tls");
    let first_ca = write_tls_dir(&tls);
    let port = free_port();
    let op = Operator::start(
        &up,
        &up.kubeconfig(),
        "replica-tls",
        port,
        port,
        &["--tls-dir", tls.to_str().unwrap()],
    );
    let ca_bundle = || {
        let o = up.kubectl(&[
            "get",
            "mutatingwebhookconfiguration",
            "kubepull-operator",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ]);
        let b = String::from_utf8_lossy(&o.stdout).trim().to_string();
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .ok()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    wait_for(
        "the webhook configuration with the mounted CA",
        || ca_bundle().filter(|c| *c == first_ca),
        || op.log(),
    );
    up.apply(&format!(
        "apiVersion: kubepull.io/v1alpha1\nkind: ClusterPullSecret\nmetadata:\n  name: corp\nspec:\n  secretRef: {{namespace: {SRC_NS}, name: regcred}}\n"
    ));
    wait_for(
        "the ClusterPullSecret Ready",
        || (condition(&cps_status(&up, "corp"), "Ready").0 == "True").then(String::new),
        || op.log(),
    );
    let admitted = |ns: &str| {
        up.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n{}",
            pod_yaml(ns, "app", &image)
        ));
        json(&up.ok(&["get", "pod", "app", "-n", ns, "-o", "json"]))["spec"]["imagePullSecrets"]
            .clone()
    };
    assert_eq!(
        admitted("first"),
        serde_json::json!([{"name": "regcred"}]),
        "{}",
        op.log()
    );
    // no CA of its own
    let o = up.kubectl(&["get", "secret", "kubepull-operator-ca", "-n", NS]);
    assert!(!o.status.success(), "the operator made its own CA");

    // renewed (by another CA): the configuration and the served certificate follow
    let second_ca = write_tls_dir(&tls);
    assert_ne!(first_ca, second_ca);
    up.ok(&["create", "namespace", "nudge"]);
    wait_for(
        "the renewed CA in the webhook configuration",
        || ca_bundle().filter(|c| *c == second_ca),
        || op.log(),
    );
    // the served certificate is checked again every few seconds: a pod admitted after that
    // carries the secret (failurePolicy Ignore would admit it without, so this proves the
    // API server trusted the renewed certificate)
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        admitted("second"),
        serde_json::json!([{"name": "regcred"}]),
        "{}\n{}",
        op.log(),
        up.log()
    );
}
