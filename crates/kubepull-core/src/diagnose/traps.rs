//! Pull-secret traps: what the kubelet will see for one pod and image, and what is wrong with it.
//!
//! [`check_secrets`] replays the kubelet's path (kubelet-semantics §2 and §3):
//!
//! 1. `pod.spec.imagePullSecrets` in order; empty names are skipped, each other name is fetched
//!    from the pod's namespace, and a failed fetch only costs that Secret
//!    (`getPullSecretsForPod`, event `FailedToRetrieveImagePullSecret`);
//! 2. a Secret is used only when its type and key pair exactly (`secrets.go`
//!    `MakeDockerKeyring`); a payload that does not decode aborts the whole keyring — the
//!    per-secret payload checks are the lint rules ([`check_pull_secret_payload`]);
//! 3. the keyring lookup of the image's normalized repository name, pod secrets first, then the
//!    node's config ([`keyring::resolve`]);
//! 4. the ServiceAccount: admission (`plugin/pkg/admission/serviceaccount/admission.go`,
//!    `Admit`) copies the ServiceAccount's `imagePullSecrets` into a pod **only on CREATE and
//!    only when the pod lists none**; the kubelet never reads the ServiceAccount. Secrets the
//!    ServiceAccount lists but the pod lacks were therefore added after the pod was created,
//!    or were never merged because the pod had its own list.
//!
//! Every finding carries a `fix` with the values filled in; passwords are always placeholders.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::dockerconfig::{self, DockerConfig, SecretKind};
use crate::keyring::{self, PullSecret, NODE_KEY_PREFIX};
use crate::lint::{check_pull_secret_payload, PayloadProblemKind};
use crate::reference;

/// What the API server answered for one referenced Secret name.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretLookup {
    /// The Secret exists.
    Found {
        /// Its `type`.
        type_: String,
        /// Its `data`, base64-decoded.
        data: BTreeMap<String, Vec<u8>>,
    },
    /// `404 NotFound`.
    NotFound,
    /// The caller may not read it (`403`); `message` is the API server's text.
    Forbidden {
        /// The API server's message.
        message: String,
    },
}

impl fmt::Debug for SecretLookup {
    /// Shows the type and data keys with their sizes, never the data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretLookup::Found { type_, data } => f
                .debug_struct("Found")
                .field("type_", type_)
                .field(
                    "data",
                    &data
                        .iter()
                        .map(|(k, v)| format!("{k}: <{} bytes>", v.len()))
                        .collect::<Vec<_>>(),
                )
                .finish(),
            SecretLookup::NotFound => f.write_str("NotFound"),
            SecretLookup::Forbidden { message } => f
                .debug_struct("Forbidden")
                .field("message", message)
                .finish(),
        }
    }
}

/// The pod's ServiceAccount as the API server has it now.
#[derive(Debug, Clone, Copy)]
pub struct ServiceAccountView<'a> {
    /// `spec.serviceAccountName` (admission sets `default` when empty).
    pub name: &'a str,
    /// Its `imagePullSecrets` names, in order.
    pub pull_secrets: &'a [String],
    /// Whether it exists (`false`: `pull_secrets` is empty and meaningless).
    pub exists: bool,
}

/// Everything [`check_secrets`] needs; the edge fills it from the API server.
#[derive(Debug, Clone, Copy)]
pub struct TrapInput<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The container image as written in the pod spec.
    pub image: &'a str,
    /// `pod.spec.imagePullSecrets` names, in order (empty names included).
    pub pod_pull_secrets: &'a [String],
    /// Each referenced name and what the API server said about it; a name missing from the map
    /// was not looked up.
    pub secrets: &'a BTreeMap<String, SecretLookup>,
    /// All Secret names in the namespace (`None`: they could not be listed).
    pub namespace_secret_names: Option<&'a [String]>,
    /// For each missing name, the other namespaces that hold a Secret of that name.
    pub same_name_elsewhere: &'a BTreeMap<String, Vec<String>>,
    /// The pod's ServiceAccount, when it was looked up.
    pub service_account: Option<ServiceAccountView<'a>>,
    /// A docker config standing in for the node's (`--docker-config`); the kubelet appends its
    /// credentials after the pod's.
    pub node_config: Option<&'a DockerConfig>,
    /// The pod's name, used in fixes (`kubectl delete pod NAME`).
    pub pod_name: Option<&'a str>,
    /// The pod's controlling workload as `kind/name` (e.g. `deployment/web`), used in fixes.
    pub workload: Option<&'a str>,
}

/// How bad a finding is for the pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The pull fails because of it (or goes out without the credentials it needs).
    Blocking,
    /// Wrong or risky, but the pull may still succeed.
    Warning,
}

/// One registry key from a Secret (or the node config) and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySource {
    /// The registry key as written.
    pub key: String,
    /// `secret/NAME` or `node`.
    pub source: String,
}

/// A trap between the pod spec and the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "trap", rename_all = "kebab-case")]
pub enum Trap {
    /// The image is not a valid reference: the kubelet stops at `InvalidImageName`.
    InvalidImage {
        /// The parser's message.
        error: String,
    },
    /// A referenced Secret does not exist in the pod's namespace.
    SecretNotFound {
        /// The referenced name.
        name: String,
        /// The closest existing name in the namespace (edit distance), if any.
        closest: Option<String>,
        /// Other namespaces holding a Secret of that name.
        elsewhere: Vec<String>,
    },
    /// The Secret could not be read with the caller's rights.
    SecretForbidden {
        /// The referenced name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// A referenced name was not looked up by the caller.
    SecretNotChecked {
        /// The referenced name.
        name: String,
    },
    /// An empty name in `imagePullSecrets`; the kubelet skips it.
    EmptySecretName {
        /// Its index in the list.
        index: usize,
    },
    /// The same name is referenced twice; its credentials are tried twice.
    DuplicateReference {
        /// The name.
        name: String,
    },
    /// The Secret's type is not a pull-secret type; the kubelet skips it silently.
    WrongType {
        /// The Secret's name.
        name: String,
        /// Its type.
        #[serde(rename = "type")]
        type_: String,
    },
    /// The key the type requires is absent or empty; the kubelet skips the Secret.
    MissingKey {
        /// The Secret's name.
        name: String,
        /// The key the type requires.
        key: String,
        /// The other format's key, when the Secret holds that instead.
        holds_other: Option<String>,
    },
    /// A legacy `.dockercfg` map stored as `.dockerconfigjson`: no credentials.
    LegacyDockercfgAsJson {
        /// The Secret's name.
        name: String,
    },
    /// A `config.json` (`auths`) stored as legacy `.dockercfg`: no credentials.
    DockercfgJsonAsLegacy {
        /// The Secret's name.
        name: String,
    },
    /// The payload does not decode; every pull of the pod fails with this error.
    InvalidJson {
        /// The Secret's name.
        name: String,
        /// The kubelet's error text.
        error: String,
    },
    /// An `auth` field is not base64 of `username:password`; every pull fails.
    AuthNotBase64 {
        /// The Secret's name.
        name: String,
        /// The registry key, when known.
        key: Option<String>,
    },
    /// `auth` decodes to other credentials than `username`/`password`; `auth` wins.
    AuthMismatch {
        /// The Secret's name.
        name: String,
        /// The registry key.
        key: String,
    },
    /// Only `credsStore`/`credHelpers` hold the credentials; the kubelet ignores them.
    CredsStoreOnly {
        /// The Secret's name.
        name: String,
    },
    /// `.dockerconfigjson` without `auths`.
    NoAuths {
        /// The Secret's name.
        name: String,
    },
    /// Usable credentials exist but none matches the image: the pull goes anonymous.
    NoMatchingKey {
        /// The image's lookup key.
        lookup_key: String,
        /// Every registry key that was available, with its source.
        keys: Vec<KeySource>,
    },
    /// Neither the pod nor its ServiceAccount lists a pull secret (and no node config matched).
    NoPullSecrets,
    /// The ServiceAccount lists pull secrets the pod lacks.
    ServiceAccountAddedLater {
        /// The ServiceAccount.
        sa: String,
        /// Its pull secrets that the pod does not have.
        missing: Vec<String>,
        /// Whether the pod has its own list (admission then ignores the ServiceAccount's
        /// entirely); `false` means the pod has none, so they were added after it was created.
        pod_had_own: bool,
    },
    /// The pod's ServiceAccount does not exist.
    ServiceAccountMissing {
        /// Its name.
        sa: String,
    },
}

/// One trap with its severity, explanation and fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What is wrong, structured.
    pub trap: Trap,
    /// Whether it breaks the pull.
    pub severity: Severity,
    /// One sentence: what is wrong and what the kubelet does about it.
    pub message: String,
    /// A command or edit that fixes it (placeholders for secrets).
    pub fix: String,
}

/// One credential the kubelet would send, in the order it tries them. Never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialView {
    /// `secret/NAME` or `node`.
    pub source: String,
    /// The registry key as written in the config.
    pub config_key: String,
    /// The keyring key it matched under.
    pub keyring_key: String,
    /// The username.
    pub username: String,
}

/// What [`check_secrets`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrapReport {
    /// The traps, blocking ones first, then in the order met.
    pub findings: Vec<Finding>,
    /// The keyring lookup key of the image (empty when the image is invalid).
    pub lookup_key: String,
    /// The credentials the kubelet would try, in order; empty means an anonymous pull.
    pub credentials: Vec<CredentialView>,
}

impl TrapReport {
    /// Whether a blocking finding exists.
    pub fn has_blocking(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Blocking)
    }
}

/// Optimal-string-alignment distance (Damerau-Levenshtein with adjacent transpositions).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The existing name closest to `name`: distance at most 2, or at most a third of the longer
/// name; ties go to the smaller distance, then the lexicographically first name.
pub fn closest_name<'a>(name: &str, existing: &'a [String]) -> Option<&'a str> {
    existing
        .iter()
        .filter(|n| n.as_str() != name)
        .map(|n| (edit_distance(name, n), n.as_str()))
        .filter(|(d, n)| {
            let longer = name.chars().count().max(n.chars().count());
            *d <= 2 || *d * 3 <= longer
        })
        .min()
        .map(|(_, n)| n)
}

/// The `--docker-server` value for an image: its registry host, or Docker Hub's
/// `https://index.docker.io/v1/` (kubectl's default, found through the kubelet's Hub fallback).
fn docker_server(image: &str) -> String {
    match reference::parse_normalized_named(image) {
        Ok(r) if r.domain() != "docker.io" => r.domain().to_string(),
        Ok(_) => "https://index.docker.io/v1/".to_string(),
        Err(_) => "<registry>".to_string(),
    }
}

struct Ctx<'a> {
    input: &'a TrapInput<'a>,
    server: String,
    findings: Vec<Finding>,
}

impl Ctx<'_> {
    fn ns(&self) -> &str {
        self.input.namespace
    }

    fn push(&mut self, trap: Trap, severity: Severity, message: String, fix: String) {
        self.findings.push(Finding {
            trap,
            severity,
            message,
            fix,
        });
    }

    /// `kubectl create secret docker-registry` for `name`, applied in place.
    fn create_secret(&self, name: &str) -> String {
        format!(
            "kubectl create secret docker-registry {name} --docker-server={} --docker-username=<user> --docker-password=<password> -n {} --dry-run=client -o yaml | kubectl apply -f -",
            self.server,
            self.ns()
        )
    }

    /// Delete and recreate `name` (a Secret's type is immutable).
    fn recreate_secret(&self, name: &str) -> String {
        format!(
            "kubectl delete secret {name} -n {ns} && kubectl create secret docker-registry {name} --docker-server={} --docker-username=<user> --docker-password=<password> -n {ns}",
            self.server,
            ns = self.ns()
        )
    }

    /// How to get a new pod so admission runs again.
    fn recreate_pod(&self) -> String {
        match (self.input.workload, self.input.pod_name) {
            (Some(w), _) => format!("kubectl rollout restart {w} -n {}", self.ns()),
            (None, Some(p)) => format!(
                "kubectl get pod {p} -n {ns} -o yaml > pod.yaml && kubectl delete pod {p} -n {ns} && edit pod.yaml (remove spec.imagePullSecrets, status, metadata.uid/resourceVersion) && kubectl create -f pod.yaml",
                ns = self.ns()
            ),
            (None, None) => format!(
                "delete the pod (kubectl delete pod <pod> -n {}) and let its controller create a new one",
                self.ns()
            ),
        }
    }

    /// How to add `names` to the pod template's imagePullSecrets.
    fn add_to_workload(&self, names: &[String]) -> String {
        let ops: Vec<String> = names
            .iter()
            .map(|n| {
                format!(
                    "{{\"op\":\"add\",\"path\":\"/spec/template/spec/imagePullSecrets/-\",\"value\":{{\"name\":\"{n}\"}}}}"
                )
            })
            .collect();
        match self.input.workload {
            Some(w) => format!(
                "kubectl patch {w} -n {} --type=json -p '[{}]'",
                self.ns(),
                ops.join(",")
            ),
            None => format!(
                "add {} to imagePullSecrets of the pod's workload template (kubectl edit <kind>/<name> -n {}); a pod's list cannot be changed in place",
                names.join(", "),
                self.ns()
            ),
        }
    }
}

/// Runs every check for one image of one pod. Pure; see the module docs for the order.
pub fn check_secrets(input: &TrapInput<'_>) -> TrapReport {
    let mut cx = Ctx {
        input,
        server: docker_server(input.image),
        findings: vec![],
    };
    let ns = input.namespace.to_string();

    // 1. the pod's list, as the kubelet walks it
    let mut pull_secrets: Vec<PullSecret> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (index, name) in input.pod_pull_secrets.iter().enumerate() {
        if name.is_empty() {
            cx.push(
                Trap::EmptySecretName { index },
                Severity::Warning,
                format!("imagePullSecrets[{index}] has an empty name; the kubelet skips it"),
                match input.workload {
                    Some(w) => format!("kubectl patch {w} -n {ns} --type=json -p '[{{\"op\":\"remove\",\"path\":\"/spec/template/spec/imagePullSecrets/{index}\"}}]'"),
                    None => format!("remove imagePullSecrets[{index}] (empty name) from the pod's workload template (kubectl edit <kind>/<name> -n {ns})"),
                },
            );
            continue;
        }
        if seen.contains(&name.as_str()) {
            cx.push(
                Trap::DuplicateReference { name: name.clone() },
                Severity::Warning,
                format!("pull secret {name:?} is listed twice; the kubelet tries its credentials twice"),
                format!("remove the second {name:?} entry from imagePullSecrets of the pod's workload template"),
            );
            // the kubelet does not de-duplicate (kubelet_pods.go getPullSecretsForPod)
            if let Some(SecretLookup::Found { type_, data }) = input.secrets.get(name) {
                pull_secrets.push(PullSecret {
                    name: name.clone(),
                    secret_type: type_.clone(),
                    data: data.clone(),
                });
            }
            continue;
        }
        seen.push(name);
        match input.secrets.get(name) {
            None => cx.push(
                Trap::SecretNotChecked { name: name.clone() },
                Severity::Warning,
                format!("pull secret {name:?} was not looked up"),
                format!("kubectl get secret {name} -n {ns}"),
            ),
            Some(SecretLookup::NotFound) => secret_not_found(&mut cx, name),
            Some(SecretLookup::Forbidden { message }) => cx.push(
                Trap::SecretForbidden {
                    name: name.clone(),
                    message: message.clone(),
                },
                Severity::Warning,
                format!("pull secret {name:?} could not be read with your rights, so it was not checked (the kubelet reads it with the node's rights)"),
                format!("kubectl auth can-i get secret/{name} -n {ns}  # rerun with a user that may read Secrets in {ns}"),
            ),
            Some(SecretLookup::Found { type_, data }) => {
                if SecretKind::from_secret_type(type_).is_none() {
                    let fix = match data.get(dockerconfig::DOCKER_CONFIG_JSON_KEY) {
                        Some(_) => format!(
                            "kubectl get secret {name} -n {ns} -o jsonpath='{{.data.\\.dockerconfigjson}}' | base64 -d > config.json && kubectl delete secret {name} -n {ns} && kubectl create secret generic {name} --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=config.json -n {ns}"
                        ),
                        None => cx.recreate_secret(name),
                    };
                    cx.push(
                        Trap::WrongType {
                            name: name.clone(),
                            type_: type_.clone(),
                        },
                        Severity::Blocking,
                        format!("pull secret {name:?} has type {type_:?}; the kubelet uses only kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg and skips it silently"),
                        fix,
                    );
                } else {
                    payload_traps(&mut cx, name, type_, data);
                }
                pull_secrets.push(PullSecret {
                    name: name.clone(),
                    secret_type: type_.clone(),
                    data: data.clone(),
                });
            }
        }
    }

    // 2. the ServiceAccount
    if let Some(sa) = input.service_account {
        service_account_traps(&mut cx, &sa);
    }

    // 3. the keyring, exactly as the kubelet resolves it
    let mut report_lookup = String::new();
    let mut credentials = Vec::new();
    match keyring::resolve(input.image, &pull_secrets, input.node_config) {
        Err(keyring::ResolveError::Secret { .. }) => {
            // already reported as InvalidJson / AuthNotBase64: no credential at all
            if let Ok(p) = reference::parse_image_name(input.image) {
                report_lookup = p.repo;
            }
        }
        Err(e) => {
            cx.push(
                Trap::InvalidImage {
                    error: e.to_string(),
                },
                Severity::Blocking,
                format!("the image is not a valid reference, so the kubelet never pulls: {e}"),
                "write the image as registry.example.com/team/app:1.2.3 (lowercase repository path, no scheme)".into(),
            );
        }
        Ok(r) => {
            report_lookup = r.lookup_key.clone();
            credentials = r
                .credentials
                .iter()
                .map(|c| CredentialView {
                    source: c.source.to_string(),
                    config_key: c.config_key.clone(),
                    keyring_key: c.keyring_key.clone(),
                    username: c.username.clone(),
                })
                .collect();
            if r.credentials.is_empty() {
                no_match(&mut cx, &pull_secrets, &r.lookup_key);
            }
        }
    }

    // Skipped or missing secrets block when nothing else gives a credential.
    let no_credentials = credentials.is_empty();
    for f in &mut cx.findings {
        if matches!(
            f.trap,
            Trap::SecretNotFound { .. }
                | Trap::WrongType { .. }
                | Trap::MissingKey { .. }
                | Trap::LegacyDockercfgAsJson { .. }
                | Trap::DockercfgJsonAsLegacy { .. }
                | Trap::CredsStoreOnly { .. }
                | Trap::NoAuths { .. }
        ) {
            f.severity = if no_credentials {
                Severity::Blocking
            } else {
                Severity::Warning
            };
        }
    }
    cx.findings.sort_by_key(|f| f.severity);
    TrapReport {
        findings: cx.findings,
        lookup_key: report_lookup,
        credentials,
    }
}

fn secret_not_found(cx: &mut Ctx<'_>, name: &str) {
    let ns = cx.ns().to_string();
    let input = cx.input;
    let closest = input
        .namespace_secret_names
        .and_then(|names| closest_name(name, names))
        .map(str::to_string);
    let elsewhere = input
        .same_name_elsewhere
        .get(name)
        .cloned()
        .unwrap_or_default();
    let mut message = format!("pull secret {name:?} does not exist in namespace {ns:?}; the kubelet warns FailedToRetrieveImagePullSecret and pulls without it");
    let fix = if let Some(other) = elsewhere.first() {
        message.push_str(&format!(
            " (it exists in {}: Secrets are namespaced)",
            elsewhere.join(", ")
        ));
        format!(
            "kubectl get secret {name} -n {other} -o yaml | sed -e '/^  namespace:/d' -e '/^  uid:/d' -e '/^  resourceVersion:/d' -e '/^  creationTimestamp:/d' | kubectl apply -n {ns} -f -"
        )
    } else if let Some(c) = &closest {
        message.push_str(&format!(" (did you mean {c:?}?)"));
        match input.workload {
            Some(w) => format!(
                "kubectl edit {w} -n {ns}  # change imagePullSecrets name {name} to {c}"
            ),
            None => format!("change imagePullSecrets name {name} to {c} in the pod's workload template (kubectl edit <kind>/<name> -n {ns})"),
        }
    } else {
        cx.create_secret(name)
    };
    cx.push(
        Trap::SecretNotFound {
            name: name.to_string(),
            closest,
            elsewhere,
        },
        Severity::Blocking,
        message,
        fix,
    );
}

fn payload_traps(cx: &mut Ctx<'_>, name: &str, type_: &str, data: &BTreeMap<String, Vec<u8>>) {
    let ns = cx.ns().to_string();
    for p in check_pull_secret_payload(type_, data) {
        let (trap, severity, fix) = match p.kind {
            PayloadProblemKind::MissingKey { key, holds_other } => {
                let fix = match holds_other {
                    Some(other) => {
                        let escaped = other.replace('.', "\\.");
                        let as_json = other == dockerconfig::DOCKER_CONFIG_JSON_KEY;
                        let convert = if as_json { "" } else { " | jq '{auths: .}'" };
                        format!(
                            "kubectl get secret {name} -n {ns} -o jsonpath='{{.data.{escaped}}}' | base64 -d{convert} > config.json && kubectl delete secret {name} -n {ns} && kubectl create secret generic {name} --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=config.json -n {ns}"
                        )
                    }
                    None => cx.recreate_secret(name),
                };
                (
                    Trap::MissingKey {
                        name: name.to_string(),
                        key: key.to_string(),
                        holds_other: holds_other.map(str::to_string),
                    },
                    Severity::Blocking,
                    fix,
                )
            }
            PayloadProblemKind::LegacyDockercfgAsJson => (
                Trap::LegacyDockercfgAsJson {
                    name: name.to_string(),
                },
                Severity::Blocking,
                format!(
                    "kubectl get secret {name} -n {ns} -o jsonpath='{{.data.\\.dockerconfigjson}}' | base64 -d | jq '{{auths: .}}' > config.json && kubectl create secret generic {name} --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=config.json -n {ns} --dry-run=client -o yaml | kubectl apply -f -"
                ),
            ),
            PayloadProblemKind::DockercfgJsonAsLegacy => (
                Trap::DockercfgJsonAsLegacy {
                    name: name.to_string(),
                },
                Severity::Blocking,
                format!(
                    "kubectl get secret {name} -n {ns} -o jsonpath='{{.data.\\.dockercfg}}' | base64 -d > config.json && kubectl delete secret {name} -n {ns} && kubectl create secret generic {name} --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=config.json -n {ns}"
                ),
            ),
            PayloadProblemKind::NoAuths => (
                Trap::NoAuths {
                    name: name.to_string(),
                },
                Severity::Blocking,
                cx.create_secret(name),
            ),
            PayloadProblemKind::CredsStoreOnly => (
                Trap::CredsStoreOnly {
                    name: name.to_string(),
                },
                Severity::Blocking,
                cx.create_secret(name),
            ),
            PayloadProblemKind::InvalidJson { error } => (
                Trap::InvalidJson {
                    name: name.to_string(),
                    error,
                },
                Severity::Blocking,
                cx.create_secret(name),
            ),
            PayloadProblemKind::AuthNotBase64 { registry_key } => (
                Trap::AuthNotBase64 {
                    name: name.to_string(),
                    key: registry_key,
                },
                Severity::Blocking,
                cx.create_secret(name),
            ),
            PayloadProblemKind::AuthMismatch { registry_key } => (
                Trap::AuthMismatch {
                    name: name.to_string(),
                    key: registry_key,
                },
                Severity::Blocking,
                cx.create_secret(name),
            ),
        };
        cx.push(
            trap,
            severity,
            format!("pull secret {name:?}: {}", p.message),
            fix,
        );
    }
}

fn service_account_traps(cx: &mut Ctx<'_>, sa: &ServiceAccountView<'_>) {
    let ns = cx.ns().to_string();
    if !sa.exists {
        cx.push(
            Trap::ServiceAccountMissing {
                sa: sa.name.to_string(),
            },
            Severity::Warning,
            format!("ServiceAccount {:?} does not exist in {ns:?}; admission rejects new pods that use it", sa.name),
            format!("kubectl create serviceaccount {} -n {ns}", sa.name),
        );
        return;
    }
    let pod = cx.input.pod_pull_secrets;
    let missing: Vec<String> = sa
        .pull_secrets
        .iter()
        .filter(|n| !n.is_empty() && !pod.contains(n))
        .cloned()
        .collect();
    // admission.go Admit: `if len(pod.Spec.ImagePullSecrets) == 0` copies the ServiceAccount's
    // list; any entry, even an empty name, counts as the pod's own list.
    let pod_had_own = !pod.is_empty();
    if !missing.is_empty() {
        let (message, fix, severity) = if pod_had_own {
            (
                format!("ServiceAccount {:?} lists {} but the pod does not: admission copies the ServiceAccount's imagePullSecrets only into pods that list none, so the pod's own list wins with no merge", sa.name, missing.join(", ")),
                cx.add_to_workload(&missing),
                Severity::Warning,
            )
        } else {
            (
                format!("ServiceAccount {:?} lists {} but the pod has no imagePullSecrets: they were added after the pod was created, and admission copies them only when a pod is created", sa.name, missing.join(", ")),
                format!("{}  # a new pod gets the ServiceAccount's imagePullSecrets", cx.recreate_pod()),
                Severity::Blocking,
            )
        };
        cx.push(
            Trap::ServiceAccountAddedLater {
                sa: sa.name.to_string(),
                missing,
                pod_had_own,
            },
            severity,
            message,
            fix,
        );
    } else if pod.iter().all(String::is_empty) && cx.input.node_config.is_none() {
        let fix = format!(
            "{} && kubectl patch serviceaccount {} -n {ns} -p '{{\"imagePullSecrets\":[{{\"name\":\"regcred\"}}]}}' && {}",
            cx.create_secret("regcred"),
            sa.name,
            cx.recreate_pod()
        );
        cx.push(
            Trap::NoPullSecrets,
            Severity::Warning,
            format!("neither the pod nor ServiceAccount {:?} lists a pull secret: the kubelet pulls anonymously (fine for a public image)", sa.name),
            fix,
        );
    }
}

/// Splits `host[:port][/path]` into host, port and path (path with its leading `/`).
fn split_key(key: &str) -> (&str, &str, &str) {
    let (hostport, path) = match key.find('/') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    match hostport.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p, path),
        _ => (hostport, "", path),
    }
}

/// Why a registry key does not match a lookup key, in the terms of the kubelet's rule
/// (`URLsMatch`: equal ports, equal label counts with one-label globs, case-sensitive hosts,
/// then a plain path prefix). The match itself is decided by [`keyring`]; this only explains.
pub fn mismatch_reason(config_key: &str, lookup_key: &str) -> String {
    let Some(norm) = keyring::normalize_registry_key(config_key) else {
        return "not a valid URL, so the kubelet skips this entry".into();
    };
    let (kh, kp, kpath) = split_key(&norm);
    let (lh, lp, lpath) = split_key(lookup_key);
    let port = |p: &str| {
        if p.is_empty() {
            "none".to_string()
        } else {
            p.to_string()
        }
    };
    if kp != lp {
        return format!(
            "ports differ (key {}, image {}); they must be equal strings",
            port(kp),
            port(lp)
        );
    }
    if kh != lh {
        if kh.eq_ignore_ascii_case(lh) {
            return format!("host {kh} differs from {lh} only in case; matching is case-sensitive");
        }
        if kh.contains('*') && kh.split('.').count() != lh.split('.').count() {
            return format!(
                "{kh} has {} labels and {lh} has {}; each * matches exactly one label",
                kh.split('.').count(),
                lh.split('.').count()
            );
        }
        if !kh.contains(['*', '?', '[']) {
            return format!("host {kh} is not {lh}");
        }
    }
    if !lpath.starts_with(kpath) {
        return format!("path {kpath} is not a prefix of {lpath}");
    }
    format!("does not match {lookup_key}")
}

fn no_match(cx: &mut Ctx<'_>, pull_secrets: &[PullSecret], lookup_key: &str) {
    let mut keys = Vec::new();
    for s in pull_secrets {
        let Some((kind, payload)) =
            dockerconfig::usable_pull_secret_payload(&s.secret_type, &s.data)
        else {
            continue;
        };
        if let Ok(cfg) = dockerconfig::decode_payload(kind, payload) {
            for (k, _) in &cfg.entries {
                keys.push(KeySource {
                    key: k.clone(),
                    source: format!("secret/{}", s.name),
                });
            }
        }
    }
    if let Some(cfg) = cx.input.node_config {
        for (k, _) in &cfg.entries {
            keys.push(KeySource {
                key: k.clone(),
                source: NODE_KEY_PREFIX.trim_end_matches(':').to_string(),
            });
        }
    }
    if keys.is_empty() {
        return;
    }
    let list: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{} ({}: {})",
                k.key,
                k.source,
                mismatch_reason(&k.key, lookup_key)
            )
        })
        .collect();
    let names: Vec<String> = pull_secrets.iter().map(|s| s.name.clone()).collect();
    let target = names.first().cloned().unwrap_or_else(|| "regcred".into());
    let fix = if names.is_empty() {
        format!(
            "{} && {}",
            cx.create_secret(&target),
            cx.add_to_workload(std::slice::from_ref(&target))
        )
    } else {
        cx.create_secret(&target)
    };
    cx.push(
        Trap::NoMatchingKey {
            lookup_key: lookup_key.to_string(),
            keys,
        },
        Severity::Blocking,
        format!("no registry key matches the image's lookup key {lookup_key}: available keys are {}; the kubelet pulls anonymously", list.join(", ")),
        fix,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("regcred", "regcred"), 0);
        assert_eq!(edit_distance("regcred", "regcerd"), 1);
        assert_eq!(edit_distance("regcred", "reg-cred"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        let names = vec![
            "regcred-x".to_string(),
            "regcrex".to_string(),
            "zzz".to_string(),
        ];
        assert_eq!(closest_name("regcred", &names), Some("regcrex"));
        let tie = vec!["abd".to_string(), "abe".to_string()];
        assert_eq!(closest_name("abc", &tie), Some("abd"));
        assert_eq!(closest_name("regcred", &["other-thing".to_string()]), None);
    }
}
