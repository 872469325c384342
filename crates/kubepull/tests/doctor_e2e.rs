//! `kubepull doctor` end to end: `kubepull up` stands in for a cluster (the doctor uses only
//! what a real API server offers), the real kubectl creates the broken situations, the real
//! `docker-registry` answers with Basic auth (TLS, htpasswd) and with token auth (this
//! project's RS256 issuer); a plain-HTTP registry, a closed port and an in-process server that
//! answers 429 cover what a healthy registry cannot produce. Every cause that can be produced
//! on loopback is checked, and no password or token appears in any output.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::*;
use kubepull_registry::testkit::{
    http_client, push, HttpResponse, HttpServer, RegistryAuth, RegistryConfig, RegistryProcess,
    TestCa, TestImage, TokenServer, TokenServerConfig,
};
use kubepull_testkit::{busybox_image, Registry};
use serde_json::Value;

const USER: &str = "doctor-user";
const PASS: &str = "Doctor-Registry-Pass-7731";
const WRONG: &str = "Doctor-Wrong-Pass-5521";
const ALICE_PASS: &str = "Doctor-Token-Alice-8802";
const BOB_PASS: &str = "Doctor-Token-Bob-1177";

/// Every secret value the test uses: none may appear in any output.
const SECRETS: &[&str] = &[PASS, WRONG, ALICE_PASS, BOB_PASS];

struct Doctor {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Doctor {
    fn json(&self) -> Vec<Value> {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor -o json printed no JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
    /// The verdict for `pod` (first container).
    fn for_pod(&self, pod: &str) -> Value {
        self.json()
            .into_iter()
            .find(|v| v["pod"] == pod)
            .unwrap_or_else(|| panic!("no verdict for {pod}:\n{}", self.stdout))
    }
}

struct Bed {
    up: Up,
    hosts: tempfile::TempDir,
    outputs: std::cell::RefCell<Vec<String>>,
}

impl Bed {
    fn doctor(&self, args: &[&str]) -> Doctor {
        self.doctor_with(args, true)
    }
    fn doctor_with(&self, args: &[&str], hosts: bool) -> Doctor {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubepull"));
        c.arg("doctor")
            .args(args)
            .arg("--kubeconfig")
            .arg(self.up.kubeconfig())
            .env("HOME", self.up.dir.path())
            .env_remove("KUBECONFIG");
        if hosts {
            c.arg("--hosts-dir").arg(self.hosts.path());
        }
        let o: Output = c.output().expect("run kubepull doctor");
        let d = Doctor {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        self.outputs
            .borrow_mut()
            .push(format!("{}\n{}", d.stdout, d.stderr));
        d
    }
    fn manifest(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.up.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        p
    }
}

fn docker_config(host: &str, user: &str, pass: &str) -> String {
    format!(r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{pass}"}}}}}}"#)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret_yaml(ns: &str, name: &str, type_: &str, key: &str, content: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: {type_}\ndata:\n  {key}: {}\n",
        b64(content)
    )
}

fn pod_yaml(ns: &str, name: &str, image: &str, secrets: &[&str]) -> String {
    let s = if secrets.is_empty() {
        String::new()
    } else {
        format!(
            "  imagePullSecrets: [{}]\n",
            secrets
                .iter()
                .map(|s| format!("{{name: {s}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{doctor: case}}\nspec:\n{s}  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: Always\n"
    )
}

fn assert_cause(v: &Value, cause: &str, ctx: &str) {
    assert_eq!(
        v["cause"],
        cause,
        "{ctx}: {}",
        serde_json::to_string_pretty(v).unwrap()
    );
    assert!(
        !v["summary"].as_str().unwrap_or("").is_empty(),
        "{ctx}: empty summary"
    );
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn write_hosts(dir: &Path, host: &str, server: &str, ca_pem: Option<&str>) {
    let h = dir.join(host);
    std::fs::create_dir_all(&h).unwrap();
    let mut toml = format!(
        "server = \"{server}\"\n\n[host.\"{server}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    );
    if let Some(ca) = ca_pem {
        std::fs::write(h.join("ca.crt"), ca).unwrap();
        toml.push_str(&format!("  ca = \"{}\"\n", h.join("ca.crt").display()));
    }
    std::fs::write(h.join("hosts.toml"), toml).unwrap();
}

#[test]
fn doctor_names_the_cause_and_the_fix() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // the Basic-auth registry with a runnable image, and an index without the node's platform
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["/bin/sh", "-c", "sleep 3600"], &[]);
    rt.block_on(reg.push("team/app", "v1", &img));
    let s390x = TestImage::new("s390x", 9);
    let auth = format!("Basic {}", b64(&format!("{USER}:{PASS}")));
    let reg_url = format!("https://{}", reg.host());
    rt.block_on(async {
        push(
            &reg_url,
            &http_client(Some(reg.ca_pem()), None).unwrap(),
            Some(&auth),
            "team/multi",
            &s390x.digest().to_string(),
            kubepull_registry::testkit::registry::OCI_MANIFEST,
            &s390x.manifest,
            &s390x.blobs(),
        )
        .await
        .unwrap();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"s390x","os":"linux"}}}}]}}"#,
            kubepull_registry::testkit::registry::OCI_MANIFEST,
            s390x.digest(),
            s390x.manifest.len()
        );
        push(
            &reg_url,
            &http_client(Some(reg.ca_pem()), None).unwrap(),
            Some(&auth),
            "team/multi",
            "v1",
            "application/vnd.oci.image.index.v1+json",
            index.as_bytes(),
            &[],
        )
        .await
        .unwrap();
    });

    // the token-auth registry: alice may pull team/, bob only other/
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (tokens, token_reg) = rt.block_on(async {
        let tokens = TokenServer::start(&ca, TokenServerConfig::default(), work.path())
            .await
            .unwrap();
        tokens.add_user("alice", ALICE_PASS, &[("team/", &["pull"])]);
        tokens.add_user("bob", BOB_PASS, &[("other/", &["pull"])]);
        let token_reg = RegistryProcess::start(RegistryConfig {
            tls: Some(ca.server_cert(&["127.0.0.1", "localhost"])),
            auth: RegistryAuth::Token {
                realm: tokens.realm(),
                service: tokens.service(),
                issuer: tokens.issuer(),
                root_cert_bundle_pem: tokens.signing_cert_pem().to_string(),
            },
            ..Default::default()
        })
        .unwrap();
        let img = TestImage::new("amd64", 4);
        let auth = format!(
            "Bearer {}",
            tokens.mint("admin", "team/app", &["pull", "push"])
        );
        push(
            &token_reg.base_url(),
            &http_client(Some(ca.cert_pem()), None).unwrap(),
            Some(&auth),
            "team/app",
            "v1",
            kubepull_registry::testkit::registry::OCI_MANIFEST,
            &img.manifest,
            &img.blobs(),
        )
        .await
        .unwrap();
        (tokens, token_reg)
    });

    // a registry on plain HTTP, a closed port, and a server that only answers 429
    let plain = RegistryProcess::start(RegistryConfig::default()).unwrap();
    let closed = kubepull_testkit::free_port();
    let limiter = rt.block_on(async {
        let tls = ca.server_cert(&["127.0.0.1"]).server_config();
        HttpServer::start(
            Some(tls),
            Arc::new(|_req| {
                Box::pin(async {
                    HttpResponse::json(
                        429,
                        &serde_json::json!({"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit"}]}),
                    )
                    .with_header("retry-after", "3600")
                })
            }),
        )
        .await
        .unwrap()
    });

    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    write_hosts(
        hosts.path(),
        &token_reg.host(),
        &token_reg.base_url(),
        Some(ca.cert_pem()),
    );
    let limiter_host = limiter.addr().to_string();
    write_hosts(
        hosts.path(),
        &limiter_host,
        &format!("https://{limiter_host}"),
        Some(ca.cert_pem()),
    );
    let up = start_up(hosts.path());
    let bed = Bed {
        up,
        hosts,
        outputs: Default::default(),
    };
    let up = &bed.up;
    let image = format!("{}/team/app:v1", reg.host());
    for ns in ["good", "wrongpass", "nosecret", "typo", "late", "never"] {
        up.ok(&["create", "namespace", ns]);
    }
    let create_secret = |ns: &str, name: &str, pass: &str| {
        up.create_pull_secret(name, &reg.host(), USER, pass, &["-n", ns]);
    };
    create_secret("good", "regcred", PASS);
    create_secret("wrongpass", "regcred", WRONG);
    create_secret("typo", "regcred", PASS);

    // live pods: one that runs, and the broken ones the node fails to pull
    up.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: good\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      imagePullSecrets: [{{name: regcred}}]\n      containers:\n      - name: app\n        image: {image}\n"
    ));
    up.apply(&pod_yaml("wrongpass", "app", &image, &["regcred"]));
    up.apply(&pod_yaml("nosecret", "app", &image, &[]));
    up.apply(&pod_yaml("typo", "app", &image, &["regcrd"]));
    up.apply(&pod_yaml("late", "app", &image, &[]));
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\n  namespace: never\n  labels: {{doctor: case}}\nspec:\n  containers:\n  - name: app\n    image: {}/team/absent:v1\n    imagePullPolicy: Never\n",
        reg.host()
    ));
    up.wait_pods(
        "good",
        "app=web",
        |p| p["status"]["phase"] == "Running",
        "web Running",
    );
    for ns in ["wrongpass", "nosecret", "typo", "late"] {
        up.wait_pods(
            ns,
            "doctor=case",
            |p| {
                matches!(
                    waiting_reason(p).as_str(),
                    "ErrImagePull" | "ImagePullBackOff"
                )
            },
            &format!("{ns}/app failing to pull"),
        );
    }
    up.wait_pods(
        "never",
        "doctor=case",
        |p| waiting_reason(p) == "ErrImageNeverPull",
        "never/app ErrImageNeverPull",
    );

    // ok: a Deployment whose pod runs (the workload's live pods are checked)
    let d = bed.doctor(&["deployment/web", "-n", "good", "-o", "json"]);
    assert_eq!(d.code, 0, "{}\n{}", d.stdout, d.stderr);
    let v = &d.json()[0];
    assert_cause(v, "ok", "good");
    assert_eq!(
        v["credentials"][0]["secret"],
        "secret/regcred",
        "{}",
        text(v)
    );
    assert_eq!(v["credentials"][0]["username"], USER, "{}", text(v));
    assert_eq!(v["credentials"][0]["result"], "accepted", "{}", text(v));

    // credentials-rejected: the registry said 401 to the secret's password
    let d = bed.doctor(&["app", "-n", "wrongpass", "-o", "json"]);
    assert_eq!(d.code, 1, "{}", d.stderr);
    let v = d.for_pod("app");
    assert_cause(&v, "credentials-rejected", "wrongpass");
    assert_eq!(v["credentials"][0]["result"], "rejected", "{}", text(&v));
    assert!(
        v["fix"]
            .as_str()
            .unwrap()
            .contains("kubectl create secret docker-registry")
            && v["fix"].as_str().unwrap().contains(&reg.host()),
        "the fix recreates the secret for the registry: {}",
        text(&v)
    );
    // the text output reads like describe and carries the same verdict
    let t = bed.doctor(&["app", "-n", "wrongpass"]);
    assert_eq!(t.code, 1);
    assert!(
        t.stdout.contains("Cause:       credentials-rejected") && t.stdout.contains("Fix:"),
        "{}",
        t.stdout
    );

    // no-credentials-sent: no secret, the registry wants one
    let v = bed
        .doctor(&["app", "-n", "nosecret", "-o", "json"])
        .for_pod("app");
    assert_cause(&v, "no-credentials-sent", "nosecret");

    // a misspelt secret name: the closest existing one is named
    let v = bed
        .doctor(&["app", "-n", "typo", "-o", "json"])
        .for_pod("app");
    assert_cause(&v, "no-credentials-sent", "typo");
    assert!(text(&v).contains("regcred"), "closest name: {}", text(&v));

    // the ServiceAccount was given its imagePullSecrets after the pod was created
    create_secret("late", "regcred", PASS);
    up.ok(&[
        "patch",
        "serviceaccount",
        "default",
        "-n",
        "late",
        "-p",
        r#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
    ]);
    let v = bed
        .doctor(&["app", "-n", "late", "-o", "json"])
        .for_pod("app");
    assert_cause(&v, "no-credentials-sent", "late");
    assert!(
        v["fix"].as_str().unwrap().contains("delete"),
        "the fix recreates the pod so admission copies the SA's secrets: {}",
        text(&v)
    );

    // never-pull-missing: the kubelet's ErrImageNeverPull
    let v = bed
        .doctor(&["app", "-n", "never", "-o", "json"])
        .for_pod("app");
    assert_cause(&v, "never-pull-missing", "never");

    // manifests not yet applied (-f): the rest of the causes
    let good_secret = |ns: &str, host: &str, user: &str, pass: &str| {
        secret_yaml(
            ns,
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &docker_config(host, user, pass),
        )
    };
    let case = |name: &str, yaml: String, with_hosts: bool| -> Value {
        let f = bed.manifest(name, &yaml);
        let d = bed.doctor_with(&["-f", f.to_str().unwrap(), "-o", "json"], with_hosts);
        assert!(
            d.code == 0 || d.code == 1,
            "{name}: {}\n{}",
            d.stdout,
            d.stderr
        );
        d.for_pod(name)
    };
    let v = case(
        "missing-tag",
        format!(
            "{}---\n{}",
            good_secret("good", &reg.host(), USER, PASS),
            pod_yaml(
                "good",
                "missing-tag",
                &format!("{}/team/app:v404", reg.host()),
                &["regcred"]
            )
        ),
        true,
    );
    assert_cause(&v, "image-not-found", "missing tag");
    let v = case(
        "platform",
        format!(
            "{}---\n{}",
            good_secret("good", &reg.host(), USER, PASS),
            pod_yaml(
                "good",
                "platform",
                &format!("{}/team/multi:v1", reg.host()),
                &["regcred"]
            )
        ),
        true,
    );
    assert_cause(
        &v,
        "platform-not-found",
        "index without the node's platform",
    );
    assert!(
        text(&v).contains("s390x"),
        "names what the index has: {}",
        text(&v)
    );
    let v = case(
        "untrusted",
        format!(
            "{}---\n{}",
            good_secret("good", &reg.host(), USER, PASS),
            pod_yaml("good", "untrusted", &image, &["regcred"])
        ),
        false,
    );
    assert_cause(&v, "tls-untrusted", "CA not trusted here");
    let v = case(
        "plainhttp",
        pod_yaml(
            "good",
            "plainhttp",
            &format!("{}/team/app:v1", plain.host()),
            &[],
        ),
        true,
    );
    assert_cause(&v, "http-https-mismatch", "plain HTTP registry");
    let v = case(
        "closed",
        pod_yaml(
            "good",
            "closed",
            &format!("127.0.0.1:{closed}/team/app:v1"),
            &[],
        ),
        true,
    );
    assert_cause(&v, "registry-unreachable", "closed port");
    let v = case(
        "limited",
        pod_yaml(
            "good",
            "limited",
            &format!("{limiter_host}/team/app:v1"),
            &[],
        ),
        true,
    );
    assert_cause(&v, "rate-limited", "429");
    let v = case(
        "badname",
        pod_yaml("good", "badname", "registry.example/team/app:${TAG}", &[]),
        true,
    );
    assert_cause(&v, "invalid-image-name", "placeholder");

    // token auth: the issuer refuses a wrong password, and bob has no access to team/
    let timage = format!("{}/team/app:v1", token_reg.host());
    let v = case(
        "token-ok",
        format!(
            "{}---\n{}",
            good_secret("good", &token_reg.host(), "alice", ALICE_PASS),
            pod_yaml("good", "token-ok", &timage, &["regcred"])
        ),
        true,
    );
    assert_cause(&v, "ok", "token auth, right password");
    let v = case(
        "token-wrong",
        format!(
            "{}---\n{}",
            good_secret("good", &token_reg.host(), "alice", WRONG),
            pod_yaml("good", "token-wrong", &timage, &["regcred"])
        ),
        true,
    );
    assert_cause(&v, "credentials-rejected", "token auth, wrong password");
    let v = case(
        "token-noaccess",
        format!(
            "{}---\n{}",
            good_secret("good", &token_reg.host(), "bob", BOB_PASS),
            pod_yaml("good", "token-noaccess", &timage, &["regcred"])
        ),
        true,
    );
    assert_cause(&v, "no-pull-access", "token auth, no grant");

    // secret traps, each named in the evidence
    let trap = |name: &str, secret: String, expect: &str| {
        let v = case(
            name,
            format!(
                "{secret}---\n{}",
                pod_yaml("good", name, &image, &["regcred"])
            ),
            true,
        );
        assert_ne!(v["cause"], "ok", "{name}: {}", text(&v));
        let t = text(&v).to_ascii_lowercase();
        assert!(
            t.contains(&expect.to_ascii_lowercase()),
            "{name}: expected {expect:?} in {}",
            serde_json::to_string_pretty(&v).unwrap()
        );
    };
    trap(
        "legacy",
        secret_yaml(
            "good",
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &format!(
                r#"{{"{}":{{"auth":"{}"}}}}"#,
                reg.host(),
                b64(&format!("{USER}:{PASS}"))
            ),
        ),
        "auths",
    );
    trap(
        "credsstore",
        secret_yaml(
            "good",
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            r#"{"auths":{},"credsStore":"desktop"}"#,
        ),
        "credsStore",
    );
    trap(
        "wrongkey",
        good_secret("good", "other.example.com", USER, PASS),
        "other.example.com",
    );
    trap(
        "wrongtype",
        secret_yaml(
            "good",
            "regcred",
            "Opaque",
            ".dockerconfigjson",
            &docker_config(&reg.host(), USER, PASS),
        ),
        "Opaque",
    );
    trap(
        "authmismatch",
        secret_yaml(
            "good",
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &format!(
                r#"{{"auths":{{"{}":{{"username":"{USER}","password":"{PASS}","auth":"{}"}}}}}}"#,
                reg.host(),
                b64(&format!("{USER}:{WRONG}"))
            ),
        ),
        "auth",
    );

    // -A: every pod, grouped by cause
    let all = bed.doctor(&["-A"]);
    assert_eq!(all.code, 1, "{}", all.stderr);
    assert!(
        all.stdout.contains("credentials-rejected (") && all.stdout.contains("can pull"),
        "{}",
        all.stdout
    );

    // one message alone
    let m = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args([
            "doctor",
            "--message",
            "Failed to pull image \"r.example/a:1\": rpc error: code = NotFound desc = failed to pull and unpack image \"r.example/a:1\": failed to resolve reference \"r.example/a:1\": r.example/a:1: not found",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&m.stdout).contains("image-not-found"),
        "{}",
        String::from_utf8_lossy(&m.stdout)
    );

    // as a kubectl plugin, with kubectl's global flags
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubepull"),
        bin.path().join("kubectl-kubepull"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("kubectl")
        .env("PATH", path)
        .env("HOME", up.dir.path())
        .args(["kubepull", "doctor", "app", "-n", "wrongpass", "-o", "json"])
        .arg("--kubeconfig")
        .arg(up.kubeconfig())
        .arg("--hosts-dir")
        .arg(bed.hosts.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("credentials-rejected"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    bed.outputs.borrow_mut().push(out);

    // no password, token or auth value anywhere in what doctor printed
    let auths: Vec<String> = [(USER, PASS), (USER, WRONG)]
        .iter()
        .map(|(u, p)| b64(&format!("{u}:{p}")))
        .collect();
    for out in bed.outputs.borrow().iter() {
        for s in SECRETS
            .iter()
            .map(|s| s.to_string())
            .chain(auths.iter().cloned())
        {
            assert!(
                !out.contains(&s),
                "a secret leaked into doctor's output:\n{out}"
            );
        }
        assert!(
            !out.contains("eyJ"),
            "a JWT leaked into doctor's output:\n{out}"
        );
    }
    drop(tokens);
}
