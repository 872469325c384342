//! `verdict`: one test per rule path (see the module docs for the order).

use std::collections::BTreeMap;

use base64::Engine as _;
use kubepull_core::diagnose::{
    check_secrets, verdict, AttemptResult, Cause, CredentialAttempt, KubeletView, ManifestView,
    ProbeFailure, ProbeView, SecretLookup, TrapInput, TrapReport,
};
use kubepull_core::dockerconfig;

fn secret(server: &str) -> SecretLookup {
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cr3t-value");
    let mut data = BTreeMap::new();
    data.insert(
        dockerconfig::DOCKER_CONFIG_JSON_KEY.to_string(),
        format!("{{\"auths\":{{\"{server}\":{{\"auth\":\"{auth}\"}}}}}}").into_bytes(),
    );
    SecretLookup::Found {
        type_: dockerconfig::DOCKER_CONFIG_JSON_TYPE.into(),
        data,
    }
}

fn traps(image: &str, pod: &[&str], secrets: &[(&str, SecretLookup)]) -> TrapReport {
    let pod: Vec<String> = pod.iter().map(|s| s.to_string()).collect();
    let secrets: BTreeMap<String, SecretLookup> = secrets
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    let none = BTreeMap::new();
    check_secrets(&TrapInput {
        namespace: "app",
        image,
        pod_pull_secrets: &pod,
        secrets: &secrets,
        namespace_secret_names: None,
        same_name_elsewhere: &none,
        service_account: None,
        node_config: None,
        pod_name: None,
        workload: Some("deployment/web"),
    })
}

fn kubelet(image: &str, messages: &[&str]) -> KubeletView {
    KubeletView {
        namespace: "app".into(),
        image: image.into(),
        waiting_reason: Some("ImagePullBackOff".into()),
        messages: messages.iter().map(|s| s.to_string()).collect(),
        running: false,
        pull_policy: "IfNotPresent".into(),
        image_present: None,
    }
}

fn probe(registry: &str, attempts: &[(&str, AttemptResult)]) -> ProbeView {
    ProbeView {
        registry: registry.into(),
        reachable: Ok(()),
        attempts: attempts
            .iter()
            .map(|(l, r)| CredentialAttempt {
                label: l.to_string(),
                result: r.clone(),
            })
            .collect(),
        manifest: None,
        node_platform: Some("linux/amd64".into()),
    }
}

fn check(v: &kubepull_core::diagnose::Verdict, cause: Cause) {
    assert_eq!(v.cause, cause, "{v:#?}");
    assert!(!v.summary.is_empty() && !v.summary.contains('\n'));
    assert!(!v.fix.is_empty());
    assert!(!v.candidates.contains(&v.cause));
    assert!(!serde_json::to_string(v).unwrap().contains("s3cr3t"));
}

#[test]
fn invalid_reference() {
    let img = "https://reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let v = verdict(&t, None, &kubelet(img, &[]), false);
    check(&v, Cause::InvalidImageName);
    assert!(
        v.evidence[0].contains("invalid reference format"),
        "{:?}",
        v.evidence
    );
}

#[test]
fn running_pod_with_failing_probe_is_ok_with_a_note() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let mut k = kubelet(img, &[]);
    k.running = true;
    let mut p = probe("reg.example.com", &[]);
    p.reachable = Err(ProbeFailure::Dns);
    let v = verdict(&t, Some(&p), &k, true);
    check(&v, Cause::Ok);
    assert!(v
        .summary
        .contains("DNS, proxy, firewall and trusted CAs may differ"));
    assert!(v.candidates.is_empty());
}

#[test]
fn never_policy_and_absent_image() {
    let img = "localhost/dev:1";
    let t = traps(img, &[], &[]);
    let mut k = kubelet(img, &[]);
    k.pull_policy = "Never".into();
    k.waiting_reason = Some("ErrImageNeverPull".into());
    let v = verdict(&t, None, &k, true);
    check(&v, Cause::NeverPullMissing);
    assert!(v.fix.contains("imagePullPolicy: IfNotPresent"));
}

#[test]
fn undecodable_secret_is_secret_format() {
    let img = "reg.example.com/app:1";
    let mut data = BTreeMap::new();
    data.insert(".dockerconfigjson".to_string(), b"{\"auths\": [".to_vec());
    let bad = SecretLookup::Found {
        type_: dockerconfig::DOCKER_CONFIG_JSON_TYPE.into(),
        data,
    };
    let t = traps(img, &["regcred"], &[("regcred", bad)]);
    let v = verdict(
        &t,
        None,
        &kubelet(img, &["unexpected end of JSON input"]),
        true,
    );
    check(&v, Cause::SecretFormat);
    assert!(v
        .fix
        .starts_with("kubectl create secret docker-registry regcred"));
}

#[test]
fn probe_transport_failure_beats_message_for_the_same_registry() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let k = kubelet(
        img,
        &["Failed to pull image \"reg.example.com/app:1\": rpc error: code = DeadlineExceeded desc = context deadline exceeded"],
    );
    let mut p = probe("reg.example.com", &[]);
    p.reachable = Err(ProbeFailure::TlsUntrusted);
    let v = verdict(&t, Some(&p), &k, true);
    check(&v, Cause::TlsUntrusted);
    assert!(v.candidates.contains(&Cause::Timeout));
    assert!(v
        .fix
        .contains("/etc/containerd/certs.d/reg.example.com/ca.crt"));
}

#[test]
fn local_probe_failure_does_not_override_a_registry_answer_seen_by_the_node() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let k = kubelet(
        img,
        &["failed to resolve reference \"reg.example.com/app:1\": reg.example.com/app:1: not found"],
    );
    let mut p = probe("reg.example.com", &[]);
    p.reachable = Err(ProbeFailure::Dns);
    let v = verdict(&t, Some(&p), &k, true);
    check(&v, Cause::ImageNotFound);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("local to this machine")),
        "{:?}",
        v.evidence
    );
}

#[test]
fn probe_of_another_registry_does_not_override_the_message() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let k = kubelet(
        img,
        &["failed to do request: Head \"https://mirror.internal/v2/app/manifests/1\": dial tcp: lookup mirror.internal on 10.0.0.10:53: no such host"],
    );
    let mut p = probe("reg.example.com", &[]);
    p.reachable = Err(ProbeFailure::Refused);
    let v = verdict(&t, Some(&p), &k, true);
    // the message names the mirror host, the probe reached the image's registry
    check(&v, Cause::DnsFailure);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("probe results not used")),
        "{:?}",
        v.evidence
    );
}

#[test]
fn no_matching_key_and_anonymous_401_is_no_credentials_sent() {
    let img = "reg.example.com/team/app:1";
    let t = traps(
        img,
        &["regcred"],
        &[("regcred", secret("reg.example.com:5000"))],
    );
    let p = probe("reg.example.com", &[("anonymous", AttemptResult::Rejected)]);
    let v = verdict(&t, Some(&p), &kubelet(img, &[]), true);
    check(&v, Cause::NoCredentialsSent);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.contains("lookup key reg.example.com/team/app")));
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("reg.example.com:5000 (secret/regcred: ports differ")),
        "{:?}",
        v.evidence
    );
    assert!(
        v.fix.contains("--docker-server=reg.example.com "),
        "{}",
        v.fix
    );
}

#[test]
fn rejected_credentials() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &["regcred"], &[("regcred", secret("reg.example.com"))]);
    let p = probe(
        "reg.example.com",
        &[("secret/regcred reg.example.com", AttemptResult::Rejected)],
    );
    let v = verdict(&t, Some(&p), &kubelet(img, &[]), true);
    check(&v, Cause::CredentialsRejected);
    assert!(v.evidence[0].contains("401 for secret/regcred"));
    assert!(v.fix.contains("<current-password>"));
}

#[test]
fn forbidden_is_no_pull_access() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &["regcred"], &[("regcred", secret("reg.example.com"))]);
    let p = probe(
        "reg.example.com",
        &[("secret/regcred reg.example.com", AttemptResult::Forbidden)],
    );
    let v = verdict(&t, Some(&p), &kubelet(img, &[]), true);
    check(&v, Cause::NoPullAccess);
}

#[test]
fn manifest_paths() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &["regcred"], &[("regcred", secret("reg.example.com"))]);
    let k = kubelet(img, &[]);
    let ok = [("secret/regcred reg.example.com", AttemptResult::Accepted)];

    let mut p = probe("reg.example.com", &ok);
    p.manifest = Some(ManifestView::NotFound);
    check(&verdict(&t, Some(&p), &k, true), Cause::ImageNotFound);

    p.manifest = Some(ManifestView::UnsupportedMediaType(
        "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
    ));
    check(&verdict(&t, Some(&p), &k, true), Cause::UnsupportedManifest);

    p.manifest = Some(ManifestView::Found {
        is_index: true,
        platforms: vec!["linux/arm64".into(), "linux/arm/v7".into()],
    });
    let v = verdict(&t, Some(&p), &k, true);
    check(&v, Cause::PlatformNotFound);
    assert!(v.fix.contains("--platform linux/amd64"));

    // the platform is there and the credential works: the node differs from this machine
    p.manifest = Some(ManifestView::Found {
        is_index: true,
        platforms: vec!["linux/amd64".into()],
    });
    let k2 = kubelet(
        img,
        &["failed to do request: Head \"https://reg.example.com/v2/app/manifests/1\": dial tcp 10.0.0.5:443: connect: connection refused"],
    );
    let v = verdict(&t, Some(&p), &k2, true);
    check(&v, Cause::RegistryUnreachable);
    assert!(v.summary.contains("so the node differs"));
}

#[test]
fn rate_limited_probe() {
    let img = "nginx:1.27";
    let t = traps(img, &[], &[]);
    let p = probe(
        "registry-1.docker.io",
        &[("anonymous", AttemptResult::RateLimited)],
    );
    let k = kubelet(img, &["Failed to pull image \"nginx:1.27\": toomanyrequests: You have reached your pull rate limit"]);
    let v = verdict(&t, Some(&p), &k, true);
    check(&v, Cause::RateLimited);
    assert!(v
        .fix
        .contains("--docker-server=https://index.docker.io/v1/"));
}

#[test]
fn cloud_registry_without_credentials_is_the_provider() {
    let img = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1";
    let t = traps(img, &[], &[]);
    let p = probe(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        &[("anonymous", AttemptResult::Rejected)],
    );
    let v = verdict(&t, Some(&p), &kubelet(img, &[]), true);
    check(&v, Cause::CloudCredentialProvider);
    assert_eq!(v.candidates[0], Cause::NoCredentialsSent);
    assert!(v.fix.contains("ECR"));
}

#[test]
fn message_only_with_blocking_trap_explains_missing_credentials() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &["regcred"], &[("regcred", SecretLookup::NotFound)]);
    let k = kubelet(
        img,
        &["failed to resolve reference \"reg.example.com/app:1\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"],
    );
    let v = verdict(&t, None, &k, true);
    check(&v, Cause::NoCredentialsSent);
    assert_eq!(v.candidates[0], Cause::ImageNotFound);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.contains("\"regcred\" does not exist")));
    assert!(v.fix.starts_with(
        "kubectl create secret docker-registry regcred --docker-server=reg.example.com"
    ));
}

#[test]
fn message_says_no_credentials_but_the_kubelet_has_some() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &["regcred"], &[("regcred", secret("reg.example.com"))]);
    let k = kubelet(
        img,
        &["Error response from daemon: Get https://reg.example.com/v2/app/manifests/1: unauthorized: authentication required"],
    );
    let v = verdict(&t, None, &k, true);
    check(&v, Cause::CredentialsRejected);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.contains("secret/regcred reg.example.com (user alice)")));
}

#[test]
fn newest_message_a_success_means_the_pull_is_fine() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let k = kubelet(
        img,
        &[
            "Successfully pulled image \"reg.example.com/app:1\" in 1.2s",
            "Failed to pull image \"reg.example.com/app:1\": rpc error: code = Unknown desc = manifest unknown",
        ],
    );
    let v = verdict(&t, None, &k, true);
    check(&v, Cause::Ok);
    assert!(v.summary.contains("waits for another reason"));
}

#[test]
fn probe_texts_are_classified() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let k = kubelet(img, &[]);
    let mut p = probe("reg.example.com", &[]);
    p.reachable = Err(ProbeFailure::Other(
        "Get \"https://u:pw-SECRET@reg.example.com/v2/\": dial tcp: lookup reg.example.com: no such host".into(),
    ));
    let v = verdict(&t, Some(&p), &k, true);
    check(&v, Cause::DnsFailure);
    assert!(!serde_json::to_string(&v).unwrap().contains("pw-SECRET"));

    let p = probe(
        "reg.example.com",
        &[(
            "anonymous",
            AttemptResult::Error("Get \"https://reg.example.com/v2/\": x509: certificate signed by unknown authority".into()),
        )],
    );
    let v = verdict(&t, Some(&p), &k, true);
    check(&v, Cause::TlsUntrusted);
}

#[test]
fn nothing_known_is_unknown() {
    let img = "reg.example.com/app:1";
    let t = traps(img, &[], &[]);
    let mut k = kubelet(img, &[]);
    k.waiting_reason = None;
    let v = verdict(&t, None, &k, true);
    check(&v, Cause::Unknown);
}
