//! Lint rules: each rule on a minimal manifest (rule id and line), clean manifests with no
//! finding, secrets never printed, and hostile input.

use kubepull_core::lint::{lint, load_documents, Finding, LintOptions, Severity};

const PW: &str = "Sup3r-S3cret-Passw0rd";

fn run(yaml: &str) -> Vec<Finding> {
    let r = lint(
        &[("m.yaml".to_string(), yaml.as_bytes().to_vec())],
        &LintOptions::default(),
    );
    assert!(r.input_errors.is_empty(), "{:?}", r.input_errors);
    for f in &r.findings {
        assert!(
            !f.message.contains(PW) && !f.fix.contains(PW),
            "secret leaked in {f:?}"
        );
    }
    r.findings
}

fn rules(f: &[Finding]) -> Vec<(&'static str, usize)> {
    f.iter().map(|f| (f.rule, f.line)).collect()
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret(name: &str, ty: &str, key: &str, payload: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: {ty}\ndata:\n  {key}: {}\n",
        b64(payload)
    )
}

fn deployment(image: &str, secrets: &[&str]) -> String {
    let mut s = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    );
    if !secrets.is_empty() {
        s.push_str("      imagePullSecrets:\n");
        for n in secrets {
            s.push_str(&format!("      - name: {n}\n"));
        }
    }
    s
}

fn good_payload() -> String {
    format!(
        r#"{{"auths":{{"reg.example.com":{{"username":"u","password":"{PW}","auth":"{}"}}}}}}"#,
        b64(&format!("u:{PW}"))
    )
}

#[test]
fn clean_manifests_have_no_findings() {
    let docs = [
        secret("regcred", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", &good_payload()),
        deployment("reg.example.com/team/app:1.0", &["regcred"]),
        deployment("nginx:1.27", &[]),
        deployment("busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &[]),
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\nimagePullSecrets:\n- name: regcred\n".into(),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  serviceAccountName: builder\n  containers:\n  - name: c\n    image: reg.example.com/x/y:2\n    imagePullPolicy: IfNotPresent\n    env:\n    - {name: TOKEN_URL, value: https://auth}\n    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: pw}}}\n    - {name: KEY_ID, value: abc}\n".into(),
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: cj\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          imagePullSecrets: [{name: regcred}]\n          containers: [{name: c, image: reg.example.com/a/b:3}]\n".into(),
        secret("legacy", "kubernetes.io/dockercfg", ".dockercfg", r#"{"reg.example.com":{"auth":"dTpw"}}"#),
    ];
    let findings = run(&docs.join("---\n"));
    assert!(findings.is_empty(), "{findings:#?}");
    // the shipped example too
    let good = include_str!("../../../examples/good.yaml");
    assert!(run(good).is_empty());
}

#[test]
fn each_rule_fires_with_its_line() {
    let f = run(&secret(
        "s",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"reg.io":{"username":"u","password":"p"}}"#,
    ));
    assert_eq!(rules(&f), [("dockerconfigjson-missing-auths", 7)]);

    let f = run(&secret(
        "s",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        &format!(
            r#"{{"auths":{{"r.io":{{"username":"u","password":"{PW}","auth":"{}"}}}}}}"#,
            b64("u:other")
        ),
    ));
    assert_eq!(rules(&f), [("auth-mismatch", 7)]);
    assert!(f[0].message.contains("password") && !f[0].message.contains("other"));

    let f = run(&secret(
        "s",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        &format!(
            r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#,
            b64(&b64("u:p"))
        ),
    ));
    assert_eq!(rules(&f), [("auth-not-base64", 7)]);
    assert!(f[0].message.contains("twice"));
    let f = run(&secret(
        "s",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths":{"r.io":{"auth":"not base64!"}}}"#,
    ));
    assert_eq!(rules(&f), [("auth-not-base64", 7)]);

    let f = run(&secret(
        "s",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths":{"r.io":{}},"credsStore":"desktop"}"#,
    ));
    assert_eq!(rules(&f), [("creds-store-only", 7)]);

    let f = run(&secret(
        "s",
        "kubernetes.io/dockerconfigjson",
        ".dockercfg",
        r#"{"r.io":{}}"#,
    ));
    assert_eq!(rules(&f), [("secret-type-key-mismatch", 5)]);

    let f = run(&secret(
        "s",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths": {"#,
    ));
    assert_eq!(rules(&f), [("dockerconfig-invalid-json", 7)]);
    assert!(f[0].message.contains("unexpected end of JSON input"));

    let opaque = format!(
        "{}---\n{}",
        secret("regcred", "Opaque", ".dockerconfigjson", &good_payload()),
        deployment("reg.example.com/a:1", &["regcred"])
    );
    let f = run(&opaque);
    assert_eq!(rules(&f), [("secret-type-key-mismatch", 5)]);

    let f = run(&deployment("reg.example.com/Team/app:1", &[]));
    assert_eq!(rules(&f), [("invalid-image-reference", 10)]);
    assert!(f[0].message.contains("Failed to apply default image tag"));

    for img in [
        "reg.io/app:#(tag)#",
        "reg.io/app:${TAG}",
        "\"reg.io/app:{{ .Values.tag }}\"",
        "reg.io/app:__TAG__",
    ] {
        let f = run(&deployment(img, &[]));
        assert_eq!(rules(&f), [("image-placeholder", 10)], "{img}");
    }

    let f = run(&deployment("reg.example.com/a:1", &["missing"]));
    assert_eq!(rules(&f), [("pull-secret-not-found", 12)]);
    assert_eq!(
        f[0].severity,
        Severity::Warning,
        "no Secret in the inputs at all"
    );
    let other_ns = format!(
        "{}---\n{}",
        secret(
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &good_payload()
        )
        .replace("  name: regcred", "  name: regcred\n  namespace: other"),
        deployment("reg.example.com/a:1", &["regcred"])
    );
    let f = run(&other_ns);
    assert_eq!(rules(&f), [("pull-secret-not-found", 21)]);
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].message.contains("other"));

    let nomatch = format!(
        "{}---\n{}",
        secret(
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &good_payload()
        ),
        deployment("ghcr.io/a/b:1", &["regcred"])
    );
    let f = run(&nomatch);
    assert_eq!(rules(&f), [("no-matching-credential", 18)]);

    let env = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: nginx:1\n    env:\n    - name: DB_PASSWORD\n      value: {PW}\n");
    let f = run(&env);
    assert_eq!(rules(&f), [("plaintext-secret-env", 10)]);

    let f = run("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: nginx:1\n    imagePullPolicy: always\n");
    assert_eq!(rules(&f), [("imagepullpolicy-invalid", 8)]);
}

#[test]
fn service_account_secrets_apply_only_when_the_pod_has_none() {
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\nimagePullSecrets: [{name: from-sa}]\n";
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: reg.example.com/a:1}]\n";
    let f = run(&format!(
        "{sa}---\n{pod}---\n{}",
        secret(
            "other",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &good_payload()
        )
    ));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].rule, "pull-secret-not-found");
    assert!(f[0].message.contains("from-sa") && f[0].message.contains("ServiceAccount"));
}

#[test]
fn hostile_input_is_an_error_not_a_crash() {
    let deep = "a:\n".to_string() + &"- ".repeat(100_000) + "x\n";
    assert!(load_documents("d.yaml", deep.as_bytes()).is_err());
    let flow = "[".repeat(5000);
    assert!(load_documents("f.yaml", flow.as_bytes()).is_err());
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    let e = load_documents("bomb.yaml", bomb.as_bytes()).unwrap_err();
    assert!(e.message.contains("nodes"), "{e}");
    let e = load_documents("bad.yaml", b"a: [1, 2\nb: c\n").unwrap_err();
    assert_eq!(e.file, "bad.yaml");
    assert!(e.line >= 1);
    let e = load_documents("bin.yaml", b"a: \xff\xfe\n").unwrap_err();
    assert!(e.message.contains("UTF-8"));
    let r = lint(&[("x.yaml".into(), b"kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: '%%%not-base64'\n".to_vec())], &LintOptions::default());
    assert_eq!(
        r.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["secret-data-not-base64"]
    );
}
