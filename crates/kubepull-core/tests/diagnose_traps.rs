//! `check_secrets`: one test per trap, the kubelet's credential order, and no secret in output.

use std::collections::BTreeMap;

use base64::Engine as _;
use kubepull_core::diagnose::{
    check_secrets, SecretLookup, ServiceAccountView, Severity, Trap, TrapInput, TrapReport,
};
use kubepull_core::dockerconfig::{self, DockerConfig};

const PASSWORD: &str = "hunter2-Pa55w0rd";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn json_secret(server: &str, user: &str) -> SecretLookup {
    let payload = format!(
        "{{\"auths\":{{\"{server}\":{{\"username\":\"{user}\",\"password\":\"{PASSWORD}\",\"auth\":\"{}\"}}}}}}",
        b64(&format!("{user}:{PASSWORD}"))
    );
    found(
        dockerconfig::DOCKER_CONFIG_JSON_TYPE,
        dockerconfig::DOCKER_CONFIG_JSON_KEY,
        &payload,
    )
}

fn found(type_: &str, key: &str, payload: &str) -> SecretLookup {
    let mut data = BTreeMap::new();
    data.insert(key.to_string(), payload.as_bytes().to_vec());
    SecretLookup::Found {
        type_: type_.to_string(),
        data,
    }
}

/// A builder over the owned parts of a [`TrapInput`].
struct Case {
    image: String,
    pod: Vec<String>,
    secrets: BTreeMap<String, SecretLookup>,
    names: Option<Vec<String>>,
    elsewhere: BTreeMap<String, Vec<String>>,
    sa: Option<(String, Vec<String>, bool)>,
    node: Option<DockerConfig>,
    workload: Option<String>,
}

impl Case {
    fn new(image: &str, pod: &[&str]) -> Case {
        Case {
            image: image.into(),
            pod: pod.iter().map(|s| s.to_string()).collect(),
            secrets: BTreeMap::new(),
            names: None,
            elsewhere: BTreeMap::new(),
            sa: None,
            node: None,
            workload: Some("deployment/web".into()),
        }
    }

    fn secret(mut self, name: &str, s: SecretLookup) -> Case {
        self.secrets.insert(name.into(), s);
        self
    }

    fn run(&self) -> TrapReport {
        let input = TrapInput {
            namespace: "app",
            image: &self.image,
            pod_pull_secrets: &self.pod,
            secrets: &self.secrets,
            namespace_secret_names: self.names.as_deref(),
            same_name_elsewhere: &self.elsewhere,
            service_account: self.sa.as_ref().map(|(n, p, e)| ServiceAccountView {
                name: n,
                pull_secrets: p,
                exists: *e,
            }),
            node_config: self.node.as_ref(),
            pod_name: Some("web-7d9f"),
            workload: self.workload.as_deref(),
        };
        let r = check_secrets(&input);
        assert_no_secret(&r);
        r
    }
}

fn assert_no_secret(r: &TrapReport) {
    let json = serde_json::to_string(r).unwrap();
    let dbg = format!("{r:?}");
    for s in [
        PASSWORD,
        &b64(&format!("alice:{PASSWORD}")),
        &b64(&format!("bob:{PASSWORD}")),
    ] {
        assert!(!json.contains(s), "secret in report JSON: {json}");
        assert!(!dbg.contains(s), "secret in report Debug: {dbg}");
    }
}

fn only(r: &TrapReport, pred: impl Fn(&Trap) -> bool) -> &kubepull_core::diagnose::Finding {
    let v: Vec<_> = r.findings.iter().filter(|f| pred(&f.trap)).collect();
    assert_eq!(v.len(), 1, "findings: {:#?}", r.findings);
    v[0]
}

#[test]
fn working_secret_gives_credentials_in_kubelet_order_without_passwords() {
    let mut c = Case::new("reg.example.com/team/app:1", &["first", "second"])
        .secret("first", json_secret("reg.example.com", "alice"))
        .secret("second", json_secret("https://reg.example.com/v1/", "bob"));
    c.node = Some(
        dockerconfig::decode_dockerconfigjson(
            format!(
                "{{\"auths\":{{\"reg.example.com/team\":{{\"auth\":\"{}\"}}}}}}",
                b64("carol:x")
            )
            .as_bytes(),
        )
        .unwrap(),
    );
    let r = c.run();
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.lookup_key, "reg.example.com/team/app");
    let order: Vec<(&str, &str)> = r
        .credentials
        .iter()
        .map(|c| (c.source.as_str(), c.username.as_str()))
        .collect();
    // pod secrets first (both normalize to reg.example.com, pod order), then the node config
    assert_eq!(
        order,
        vec![
            ("secret/first", "alice"),
            ("secret/second", "bob"),
            ("node", "carol")
        ]
    );
    assert_eq!(r.credentials[1].config_key, "https://reg.example.com/v1/");
}

#[test]
fn missing_secret_suggests_closest_name() {
    let mut c =
        Case::new("reg.example.com/app:1", &["regcerd"]).secret("regcerd", SecretLookup::NotFound);
    c.names = Some(vec![
        "default-token".into(),
        "regcred".into(),
        "regcred-old".into(),
    ]);
    let r = c.run();
    let f = only(&r, |t| matches!(t, Trap::SecretNotFound { .. }));
    assert_eq!(
        f.trap,
        Trap::SecretNotFound {
            name: "regcerd".into(),
            closest: Some("regcred".into()),
            elsewhere: vec![]
        }
    );
    assert_eq!(f.severity, Severity::Blocking);
    assert!(
        f.fix.contains("kubectl edit deployment/web -n app") && f.fix.contains("to regcred"),
        "{}",
        f.fix
    );
    assert!(r.credentials.is_empty());
}

#[test]
fn missing_secret_found_in_another_namespace_is_copied() {
    let mut c =
        Case::new("reg.example.com/app:1", &["regcred"]).secret("regcred", SecretLookup::NotFound);
    c.elsewhere
        .insert("regcred".into(), vec!["default".into(), "ops".into()]);
    let r = c.run();
    let f = only(&r, |t| matches!(t, Trap::SecretNotFound { .. }));
    assert!(
        f.fix
            .starts_with("kubectl get secret regcred -n default -o yaml |"),
        "{}",
        f.fix
    );
    assert!(f.fix.ends_with("kubectl apply -n app -f -"));
    assert!(f.message.contains("default, ops"));
}

#[test]
fn missing_secret_without_hint_is_created_for_the_image_registry() {
    let r = Case::new("reg.example.com:5000/app:1", &["regcred"])
        .secret("regcred", SecretLookup::NotFound)
        .run();
    let f = only(&r, |t| matches!(t, Trap::SecretNotFound { .. }));
    assert!(f.fix.starts_with("kubectl create secret docker-registry regcred --docker-server=reg.example.com:5000 --docker-username=<user> --docker-password=<password> -n app"), "{}", f.fix);
    // Docker Hub images get kubectl's default server
    let r = Case::new("nginx", &["hub"])
        .secret("hub", SecretLookup::NotFound)
        .run();
    assert!(r.findings[0]
        .fix
        .contains("--docker-server=https://index.docker.io/v1/"));
}

#[test]
fn missing_secret_is_only_a_warning_when_another_secret_works() {
    let r = Case::new("reg.example.com/app:1", &["gone", "ok"])
        .secret("gone", SecretLookup::NotFound)
        .secret("ok", json_secret("reg.example.com", "alice"))
        .run();
    let f = only(&r, |t| matches!(t, Trap::SecretNotFound { .. }));
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(r.credentials.len(), 1);
}

#[test]
fn forbidden_secret_is_reported_with_a_can_i_check() {
    let r = Case::new("reg.example.com/app:1", &["regcred"])
        .secret(
            "regcred",
            SecretLookup::Forbidden {
                message:
                    "secrets \"regcred\" is forbidden: User \"dev\" cannot get resource \"secrets\""
                        .into(),
            },
        )
        .run();
    let f = only(&r, |t| matches!(t, Trap::SecretForbidden { .. }));
    assert_eq!(f.severity, Severity::Warning);
    assert!(f
        .fix
        .starts_with("kubectl auth can-i get secret/regcred -n app"));
}

#[test]
fn opaque_secret_is_skipped_and_converted() {
    let r = Case::new("reg.example.com/app:1", &["regcred"])
        .secret(
            "regcred",
            found("Opaque", ".dockerconfigjson", "{\"auths\":{}}"),
        )
        .run();
    let f = only(&r, |t| matches!(t, Trap::WrongType { .. }));
    assert_eq!(f.severity, Severity::Blocking);
    assert!(f.fix.contains("--type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=config.json -n app"), "{}", f.fix);
    assert!(f.fix.contains("kubectl delete secret regcred -n app"));
}

#[test]
fn type_and_key_traps() {
    // dockercfg type holding .dockerconfigjson
    let r = Case::new("reg.example.com/app:1", &["s"])
        .secret(
            "s",
            found(
                dockerconfig::DOCKERCFG_TYPE,
                ".dockerconfigjson",
                "{\"auths\":{}}",
            ),
        )
        .run();
    let f = only(&r, |t| matches!(t, Trap::MissingKey { .. }));
    assert_eq!(
        f.trap,
        Trap::MissingKey {
            name: "s".into(),
            key: ".dockercfg".into(),
            holds_other: Some(".dockerconfigjson".into())
        }
    );
    // a legacy map stored as .dockerconfigjson
    let legacy = format!(
        "{{\"reg.example.com\":{{\"auth\":\"{}\"}}}}",
        b64(&format!("alice:{PASSWORD}"))
    );
    let r = Case::new("reg.example.com/app:1", &["s"])
        .secret(
            "s",
            found(
                dockerconfig::DOCKER_CONFIG_JSON_TYPE,
                ".dockerconfigjson",
                &legacy,
            ),
        )
        .run();
    let f = only(&r, |t| matches!(t, Trap::LegacyDockercfgAsJson { .. }));
    assert!(f.fix.contains("jq '{auths: .}'"));
    assert_eq!(f.severity, Severity::Blocking);
    // a config.json stored as legacy .dockercfg
    let modern = format!(
        "{{\"auths\":{{\"reg.example.com\":{{\"auth\":\"{}\"}}}}}}",
        b64(&format!("alice:{PASSWORD}"))
    );
    let r = Case::new("reg.example.com/app:1", &["s"])
        .secret(
            "s",
            found(dockerconfig::DOCKERCFG_TYPE, ".dockercfg", &modern),
        )
        .run();
    only(&r, |t| matches!(t, Trap::DockercfgJsonAsLegacy { .. }));
    // no auths; creds store only
    let r = Case::new("reg.example.com/app:1", &["s"])
        .secret(
            "s",
            found(
                dockerconfig::DOCKER_CONFIG_JSON_TYPE,
                ".dockerconfigjson",
                "{\"credsStore\":\"desktop\"}",
            ),
        )
        .run();
    only(&r, |t| matches!(t, Trap::CredsStoreOnly { .. }));
    let r = Case::new("reg.example.com/app:1", &["s"])
        .secret(
            "s",
            found(
                dockerconfig::DOCKER_CONFIG_JSON_TYPE,
                ".dockerconfigjson",
                "{}",
            ),
        )
        .run();
    only(&r, |t| matches!(t, Trap::NoAuths { .. }));
}

#[test]
fn undecodable_payloads_block_every_credential() {
    let r = Case::new("reg.example.com/app:1", &["bad", "good"])
        .secret(
            "bad",
            found(
                dockerconfig::DOCKER_CONFIG_JSON_TYPE,
                ".dockerconfigjson",
                "{\"auths\":",
            ),
        )
        .secret("good", json_secret("reg.example.com", "alice"))
        .run();
    let f = only(&r, |t| matches!(t, Trap::InvalidJson { .. }));
    assert_eq!(
        f.trap,
        Trap::InvalidJson {
            name: "bad".into(),
            error: "unexpected end of JSON input".into()
        }
    );
    // the kubelet stops building the keyring: the good secret is not used either
    assert!(r.credentials.is_empty());
    assert_eq!(r.lookup_key, "reg.example.com/app");

    let payload = "{\"auths\":{\"reg.example.com\":{\"auth\":\"bm9jb2xvbg==\"}}}"; // "nocolon"
    let r = Case::new("reg.example.com/app:1", &["s"])
        .secret(
            "s",
            found(
                dockerconfig::DOCKER_CONFIG_JSON_TYPE,
                ".dockerconfigjson",
                payload,
            ),
        )
        .run();
    let f = only(&r, |t| matches!(t, Trap::AuthNotBase64 { .. }));
    assert_eq!(
        f.trap,
        Trap::AuthNotBase64 {
            name: "s".into(),
            key: Some("reg.example.com".into())
        }
    );
    assert!(f.fix.contains("--docker-password=<password>"));
}

#[test]
fn auth_mismatch_is_reported() {
    let payload = format!(
        "{{\"auths\":{{\"reg.example.com\":{{\"username\":\"alice\",\"password\":\"old-{PASSWORD}\",\"auth\":\"{}\"}}}}}}",
        b64(&format!("alice:{PASSWORD}"))
    );
    let r = Case::new("reg.example.com/app:1", &["s"])
        .secret(
            "s",
            found(
                dockerconfig::DOCKER_CONFIG_JSON_TYPE,
                ".dockerconfigjson",
                &payload,
            ),
        )
        .run();
    let f = only(&r, |t| matches!(t, Trap::AuthMismatch { .. }));
    assert_eq!(
        f.trap,
        Trap::AuthMismatch {
            name: "s".into(),
            key: "reg.example.com".into()
        }
    );
    assert_eq!(r.credentials.len(), 1);
    assert!(!serde_json::to_string(&r).unwrap().contains("old-"));
}

#[test]
fn no_matching_key_lists_the_keys_with_their_source() {
    let r = Case::new("reg.example.com/team/app:1", &["s"])
        .secret("s", json_secret("reg.example.com:5000", "alice"))
        .run();
    let f = only(&r, |t| matches!(t, Trap::NoMatchingKey { .. }));
    match &f.trap {
        Trap::NoMatchingKey { lookup_key, keys } => {
            assert_eq!(lookup_key, "reg.example.com/team/app");
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0].key, "reg.example.com:5000");
            assert_eq!(keys[0].source, "secret/s");
        }
        _ => unreachable!(),
    }
    assert_eq!(f.severity, Severity::Blocking);
    assert!(
        f.message
            .contains("reg.example.com:5000 (secret/s: ports differ (key 5000, image none)"),
        "{}",
        f.message
    );
    assert!(f.fix.contains("--docker-server=reg.example.com "));
}

#[test]
fn mismatch_reasons_follow_the_kubelet_rule() {
    use kubepull_core::diagnose::traps::mismatch_reason;
    assert!(
        mismatch_reason("https://Reg.Example.com", "reg.example.com/a").contains("only in case")
    );
    assert!(mismatch_reason("*.azurecr.io", "azurecr.io/a")
        .contains("each * matches exactly one label"));
    assert!(
        mismatch_reason("quay.io/org/", "quay.io/org").contains("path /org/ is not a prefix of")
    );
    assert!(mismatch_reason("other.io", "quay.io/a").contains("host other.io is not quay.io"));
    assert!(mismatch_reason("reg io", "quay.io/a").contains("not a valid URL"));
}

#[test]
fn service_account_secrets_added_after_the_pod() {
    let mut c = Case::new("reg.example.com/app:1", &[]);
    c.sa = Some(("builder".into(), vec!["regcred".into()], true));
    let r = c.run();
    let f = only(&r, |t| matches!(t, Trap::ServiceAccountAddedLater { .. }));
    assert_eq!(
        f.trap,
        Trap::ServiceAccountAddedLater {
            sa: "builder".into(),
            missing: vec!["regcred".into()],
            pod_had_own: false
        }
    );
    assert_eq!(f.severity, Severity::Blocking);
    assert!(
        f.fix
            .starts_with("kubectl rollout restart deployment/web -n app"),
        "{}",
        f.fix
    );
}

#[test]
fn service_account_secrets_ignored_because_the_pod_has_its_own() {
    let mut c = Case::new("reg.example.com/app:1", &["own"])
        .secret("own", json_secret("reg.example.com", "alice"));
    c.sa = Some(("default".into(), vec!["own".into(), "sa-cred".into()], true));
    let r = c.run();
    let f = only(&r, |t| matches!(t, Trap::ServiceAccountAddedLater { .. }));
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.fix,
        "kubectl patch deployment/web -n app --type=json -p '[{\"op\":\"add\",\"path\":\"/spec/template/spec/imagePullSecrets/-\",\"value\":{\"name\":\"sa-cred\"}}]'"
    );
}

#[test]
fn service_account_missing_and_no_pull_secrets() {
    let mut c = Case::new("reg.example.com/app:1", &[]);
    c.sa = Some(("ghost".into(), vec![], false));
    let r = c.run();
    let f = only(&r, |t| matches!(t, Trap::ServiceAccountMissing { .. }));
    assert_eq!(f.fix, "kubectl create serviceaccount ghost -n app");

    let mut c = Case::new("reg.example.com/app:1", &[]);
    c.sa = Some(("default".into(), vec![], true));
    let r = c.run();
    let f = only(&r, |t| matches!(t, Trap::NoPullSecrets));
    assert!(f.fix.contains("kubectl patch serviceaccount default -n app -p '{\"imagePullSecrets\":[{\"name\":\"regcred\"}]}'"), "{}", f.fix);
}

#[test]
fn empty_and_duplicate_references() {
    let r = Case::new("reg.example.com/app:1", &["", "s", "s"])
        .secret("s", json_secret("reg.example.com", "alice"))
        .run();
    only(&r, |t| matches!(t, Trap::EmptySecretName { index: 0 }));
    only(&r, |t| matches!(t, Trap::DuplicateReference { .. }));
    // the kubelet does not de-duplicate: the same credential is tried twice
    assert_eq!(r.credentials.len(), 2);
    assert!(r.credentials.iter().all(|c| c.source == "secret/s"));
}

#[test]
fn invalid_image_is_reported() {
    let r = Case::new("https://reg.example.com/app:1", &[]).run();
    let f = only(&r, |t| matches!(t, Trap::InvalidImage { .. }));
    assert_eq!(f.severity, Severity::Blocking);
    assert!(r.lookup_key.is_empty());
}

#[test]
fn secret_lookup_debug_hides_data() {
    let s = json_secret("reg.example.com", "alice");
    let d = format!("{s:?}");
    assert!(
        !d.contains(PASSWORD) && d.contains(".dockerconfigjson: <"),
        "{d}"
    );
}
