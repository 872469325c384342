//! `kubepull operator manifests`: everything needed to install the operator on a cluster, with
//! least-privilege RBAC. The webhook configuration is not among them: the operator writes it
//! itself, with the `caBundle` of the CA it manages.

use serde_json::{json, Value};

use super::spec::{self, MANAGED_BY, MANAGED_BY_LABEL};
use super::NAME;

/// Container port of the webhook.
pub const WEBHOOK_PORT: u16 = 8443;
/// Container port of `/metrics`.
pub const METRICS_PORT: u16 = 9090;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// The cluster-wide rules. RBAC cannot narrow Secrets by label: the operator only ever lists and
/// watches Secrets with its own label selector (its copies) or in the namespaces that hold a
/// source, and writes only the copies it labelled.
pub fn cluster_rules() -> Value {
    json!([
        rule(&[spec::GROUP], &[spec::PLURAL], &["get", "list", "watch"]),
        rule(&[spec::GROUP], &[&format!("{}/status", spec::PLURAL)], &["get", "patch", "update"]),
        rule(&[""], &["namespaces"], &["get", "list", "watch"]),
        rule(&[""], &["serviceaccounts"], &["get", "list", "watch", "patch"]),
        rule(&[""], &["secrets"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        rule(&["admissionregistration.k8s.io"], &["mutatingwebhookconfigurations"], &["get", "list", "watch", "create"]),
        {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
         "resourceNames": [NAME], "verbs": ["update", "patch"]}
    ])
}

/// The rules in the operator's own namespace (its Lease).
pub fn namespace_rules() -> Value {
    json!([
        rule(&["coordination.k8s.io"], &["leases"], &["create"]),
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [NAME],
         "verbs": ["get", "update"]}
    ])
}

/// Every object, in the order `kubectl apply -f` should create them.
pub fn objects(namespace: &str, image: &str) -> Vec<Value> {
    objects_pulling_with(namespace, image, &[])
}

/// [`objects`], the Deployment's pods pulling the image with `pull_secrets` (Secrets the user
/// creates in `namespace`; a private registry needs them).
pub fn objects_pulling_with(namespace: &str, image: &str, pull_secrets: &[String]) -> Vec<Value> {
    let pull: Vec<Value> = pull_secrets.iter().map(|n| json!({"name": n})).collect();
    let labels = json!({"app.kubernetes.io/name": NAME, MANAGED_BY_LABEL: MANAGED_BY});
    let selector = json!({"app.kubernetes.io/name": NAME});
    let subject = json!([{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]);
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": namespace, "labels": {
                   "pod-security.kubernetes.io/enforce": "restricted"}}}),
        spec::crd(),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": NAME, "namespace": namespace, "labels": labels}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": NAME, "labels": labels}, "rules": cluster_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": NAME, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
               "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
               "rules": namespace_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
               "subjects": subject}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
               "spec": {"selector": selector, "ports": [
                   {"name": "webhook", "port": 443, "targetPort": WEBHOOK_PORT},
                   {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "imagePullSecrets": pull,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                        "runAsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "operator",
                        "image": image,
                        "args": ["operator", "--namespace", namespace, "--leader-elect",
                                 "--webhook-bind", format!("0.0.0.0:{WEBHOOK_PORT}"),
                                 "--metrics-bind", format!("0.0.0.0:{METRICS_PORT}")],
                        "env": [{"name": "POD_NAME",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "ports": [{"name": "webhook", "containerPort": WEBHOOK_PORT},
                                  {"name": "metrics", "containerPort": METRICS_PORT}],
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                      "limits": {"memory": "128Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }}),
    ]
}

/// Where the cert-manager Secret is mounted in the operator's pods.
pub const TLS_MOUNT: &str = "/etc/kubepull-operator/tls";
/// The Secret cert-manager writes the serving certificate to.
pub const TLS_SECRET: &str = "kubepull-operator-tls";

/// Switches `objects` to a serving certificate issued by cert-manager (cert-manager.io/v1): a
/// self-signed Issuer makes a CA Certificate, a CA Issuer signs the webhook's Certificate for
/// the Service's names into the Secret [`TLS_SECRET`] (`tls.crt`, `tls.key`, `ca.crt`), which
/// the Deployment mounts and passes with `--tls-dir`; the operator then serves it (renewals
/// included) and puts its `ca.crt` in the webhook configuration's `caBundle`.
pub fn use_cert_manager(objects: &mut Vec<Value>, namespace: &str) {
    let labels = json!({"app.kubernetes.io/name": NAME, MANAGED_BY_LABEL: MANAGED_BY});
    let meta = |name: &str| json!({"name": name, "namespace": namespace, "labels": labels});
    let ca_secret = "kubepull-operator-cert-manager-ca";
    let extra = vec![
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": meta("kubepull-operator-selfsigned"), "spec": {"selfSigned": {}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": meta("kubepull-operator-ca"),
               "spec": {"isCA": true, "commonName": "kubepull-operator-webhook-ca",
                        "secretName": ca_secret,
                        "privateKey": {"algorithm": "ECDSA", "size": 256},
                        "issuerRef": {"kind": "Issuer", "name": "kubepull-operator-selfsigned"}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": meta("kubepull-operator-ca"), "spec": {"ca": {"secretName": ca_secret}}}),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": meta(NAME),
               "spec": {"secretName": TLS_SECRET,
                        "dnsNames": [format!("{NAME}.{namespace}.svc"),
                                     format!("{NAME}.{namespace}.svc.cluster.local")],
                        "privateKey": {"algorithm": "ECDSA", "size": 256},
                        "issuerRef": {"kind": "Issuer", "name": "kubepull-operator-ca"}}}),
    ];
    for o in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
        let spec = &mut o["spec"]["template"]["spec"];
        spec["volumes"] = json!([{"name": "tls", "secret": {"secretName": TLS_SECRET}}]);
        let c = &mut spec["containers"][0];
        c["volumeMounts"] = json!([{"name": "tls", "mountPath": TLS_MOUNT, "readOnly": true}]);
        if let Some(args) = c["args"].as_array_mut() {
            args.push(json!("--tls-dir"));
            args.push(json!(TLS_MOUNT));
        }
    }
    objects.extend(extra);
}

fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) if plain(s) => s.clone(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => other.to_string(),
    }
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, val) in o {
                let key = scalar(&Value::String(k.clone()));
                match val {
                    Value::Object(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent + 2, out);
                    }
                    Value::Array(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent, out);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(val))),
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                match item {
                    Value::Object(x) if !x.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        // the first line of the item goes after the dash
                        let trimmed = inner.trim_start_matches(' ');
                        out.push_str(&format!("{pad}- {trimmed}"));
                    }
                    Value::Array(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        emit(item, indent + 2, out);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// A YAML stream of `objects` (`---` between documents).
pub fn yaml_stream(objects: &[Value]) -> String {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        emit(o, 0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads YAML back with the YAML library the CLI uses, to prove the emitter's output means
    /// what the JSON meant.
    fn parse(y: &str) -> Vec<Value> {
        fn conv(y: &yaml_rust2::Yaml) -> Value {
            use yaml_rust2::Yaml;
            match y {
                Yaml::Hash(h) => Value::Object(
                    h.iter()
                        .map(|(k, v)| (k.as_str().unwrap().to_string(), conv(v)))
                        .collect(),
                ),
                Yaml::Array(a) => Value::Array(a.iter().map(conv).collect()),
                Yaml::String(s) => Value::String(s.clone()),
                Yaml::Integer(i) => json!(i),
                Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
                Yaml::Boolean(b) => json!(b),
                Yaml::Null => Value::Null,
                other => panic!("unexpected {other:?}"),
            }
        }
        yaml_rust2::YamlLoader::load_from_str(y)
            .unwrap()
            .iter()
            .map(conv)
            .collect()
    }

    #[test]
    fn yaml_round_trips_every_object() {
        let objs = objects("kubepull-system", "registry.example:5000/kubepull:1.0");
        let y = yaml_stream(&objs);
        assert_eq!(parse(&y), objs);
    }

    #[test]
    fn cert_manager_issues_the_certificate_the_deployment_mounts() {
        let mut objs = objects_pulling_with("ops", "r.example/kubepull:1", &["pull".into()]);
        use_cert_manager(&mut objs, "ops");
        assert_eq!(parse(&yaml_stream(&objs)), objs);
        let cert = objs
            .iter()
            .find(|o| o["kind"] == "Certificate" && o["metadata"]["name"] == NAME)
            .unwrap();
        assert_eq!(cert["spec"]["secretName"], TLS_SECRET);
        assert_eq!(cert["spec"]["dnsNames"][0], "kubepull-operator.ops.svc");
        let ca_issuer = objs
            .iter()
            .find(|o| o["kind"] == "Issuer" && o["metadata"]["name"] == "kubepull-operator-ca")
            .unwrap();
        assert_eq!(
            ca_issuer["spec"]["ca"]["secretName"],
            "kubepull-operator-cert-manager-ca"
        );
        let d = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["imagePullSecrets"], json!([{"name": "pull"}]));
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], TLS_SECRET);
        assert_eq!(
            pod["containers"][0]["volumeMounts"][0]["mountPath"],
            TLS_MOUNT
        );
        let args = pod["containers"][0]["args"].to_string();
        assert!(
            args.contains(&format!("\"--tls-dir\",\"{TLS_MOUNT}\"")),
            "{args}"
        );
    }

    #[test]
    fn tricky_scalars_survive() {
        let v = vec![
            json!({"a": "true", "b": "0123", "c": "", "d": "x: y", "e": [[1, 2], {"k": "#"}],
                            "f": {}, "g": [], "h": "kubepull.io/v1alpha1", "i": "-x", "j": null}),
        ];
        assert_eq!(parse(&yaml_stream(&v)), v);
    }

    #[test]
    fn rbac_is_least_privilege() {
        let rules = cluster_rules();
        let text = rules.to_string();
        assert!(!text.contains("\"*\""), "no wildcards: {text}");
        for r in rules.as_array().unwrap() {
            let res: Vec<&str> = r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let verbs: Vec<&str> = r["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            if res == ["namespaces"] {
                assert_eq!(verbs, ["get", "list", "watch"]);
            }
            if res == ["serviceaccounts"] {
                assert_eq!(verbs, ["get", "list", "watch", "patch"]);
            }
            assert!(
                !verbs.contains(&"escalate")
                    && !verbs.contains(&"bind")
                    && !verbs.contains(&"impersonate")
            );
        }
    }
}
