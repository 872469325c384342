//! Manifest lint: predicts what will break an image pull before a pod meets it.
//!
//! Input is multi-document YAML or JSON (a `kind: List` is expanded) holding Secrets,
//! ServiceAccounts, Pods and the workload kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! Job, CronJob, ReplicationController, PodTemplate). Every finding names its rule, file, line
//! and object, says why the pull would break and how to fix it, and never quotes a secret.
//!
//! Rules and severities (the severity says whether a pod will fail, not how likely):
//!
//! | rule | severity | the kubelet's behaviour it predicts |
//! | --- | --- | --- |
//! | `dockerconfigjson-missing-auths` | error | a `.dockerconfigjson` without `auths` decodes to no credentials |
//! | `auth-mismatch` | error | `auth` overrides `username`/`password`; one of the two is stale |
//! | `auth-not-base64` | error | a bad `auth` fails every pull that uses the secret |
//! | `creds-store-only` | error | `credsStore`/`credHelpers` are ignored; no usable entry remains |
//! | `secret-type-key-mismatch` | error | type and key must pair exactly or the secret is skipped |
//! | `dockerconfig-invalid-json` | error | the decode error becomes the container's waiting reason |
//! | `secret-data-not-base64` | error | the API server rejects the Secret |
//! | `invalid-image-reference` | error | `InvalidImageName` |
//! | `image-placeholder` | error | template text left in an image: `InvalidImageName` or a wrong image |
//! | `imagepullpolicy-invalid` | error | the API server rejects the pod |
//! | `pull-secret-not-found` | error, or warning when the inputs hold no Secret at all | `FailedToRetrieveImagePullSecret`, then an anonymous or partial pull |
//! | `no-matching-credential` | warning | the referenced secrets hold nothing for this registry: the pull goes anonymous |
//! | `plaintext-secret-env` | warning | not a pull problem: a credential in plain text in the manifest |
//!
//! `pull-secret-not-found` is a warning when the inputs hold no Secret at all, because linting
//! a Deployment alone is common and its secrets live elsewhere; it is an error when the inputs
//! hold Secrets but not this one, or hold it in another namespace (Secrets are namespaced).
//!
//! The rules about one pull Secret's type, key and payload are also available on their own as
//! [`check_pull_secret_payload`], which `kubepull doctor` uses on Secrets read from a cluster.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine as _;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use crate::dockerconfig::{self, DecodeError, DOCKERCFG_KEY, DOCKER_CONFIG_JSON_KEY};
use crate::keyring::{self, PullSecret};
use crate::pullpolicy::{messages, PullPolicy};
use crate::reference;

/// Deepest nesting of a document accepted; deeper input is rejected, not walked.
pub const MAX_DEPTH: usize = 128;
/// Most nodes one file may expand to (aliases included), against alias bombs.
pub const MAX_NODES: usize = 2_000_000;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The pull (or the object) will fail.
    Error,
    /// Likely wrong, or a risk.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule id.
    pub rule: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong and why it breaks the pull.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// The input file.
    pub file: String,
    /// 1-based line of the offending field.
    pub line: usize,
    /// `Kind/namespace/name`.
    pub object: String,
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub path: String,
}

/// Input that cannot be linted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LintInputError {
    /// The input file.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Options.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// Namespace of objects that name none (kubectl's `-n`).
    pub default_namespace: String,
}

impl Default for LintOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".into(),
        }
    }
}

/// The result of a lint run.
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    /// Findings, sorted by file and line.
    pub findings: Vec<Finding>,
    /// Files that could not be read as YAML/JSON; their objects were not linted.
    pub input_errors: Vec<LintInputError>,
}

impl LintReport {
    /// Whether an error-level finding exists.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

// ---- a YAML tree with line numbers ----------------------------------------------------------

/// A YAML/JSON node with its 1-based line.
#[derive(Clone, PartialEq)]
pub struct Node {
    /// 1-based line where the node starts.
    pub line: usize,
    /// The content.
    pub kind: NodeKind,
}

/// Node content.
#[derive(Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar, and whether it was quoted (quoted scalars are always strings).
    Scalar(String, bool),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

impl fmt::Debug for Node {
    /// Shapes and lines only: scalars may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeKind::Scalar(..) => write!(f, "<scalar@{}>", self.line),
            NodeKind::Seq(s) => f.debug_list().entries(s).finish(),
            NodeKind::Map(m) => f
                .debug_map()
                .entries(
                    m.iter()
                        .map(|(k, v)| (k.str().unwrap_or("?").to_string(), v)),
                )
                .finish(),
        }
    }
}

impl Node {
    /// The scalar text, if this is a scalar.
    pub fn str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// The value node under a mapping key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(m) => m
                .iter()
                .rev()
                .find(|(k, _)| k.str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string under a mapping key (null-like plain scalars count as absent).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        let n = self.get(key)?;
        match &n.kind {
            NodeKind::Scalar(s, quoted) if *quoted || !is_null(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a sequence (empty for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            NodeKind::Seq(s) => s,
            _ => &[],
        }
    }

    /// The entries of a mapping (empty for anything else).
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            NodeKind::Map(m) => m,
            _ => &[],
        }
    }

    /// This node as JSON (plain scalars typed the YAML 1.2 core way).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar(s, true) => Value::String(s.clone()),
            NodeKind::Scalar(s, false) => {
                if is_null(s) {
                    Value::Null
                } else if s == "true" || s == "false" {
                    Value::Bool(s == "true")
                } else if let Ok(i) = s.parse::<i64>() {
                    Value::from(i)
                } else {
                    Value::String(s.clone())
                }
            }
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Loads every document of a YAML or JSON file into trees with line numbers. Nesting deeper
/// than [`MAX_DEPTH`] and alias expansion beyond [`MAX_NODES`] are errors.
pub fn load_documents(file: &str, bytes: &[u8]) -> Result<Vec<Node>, LintInputError> {
    let err = |line: usize, message: String| LintInputError {
        file: file.to_string(),
        line,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        err(
            line,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    // stack of open containers: (node, pending map key)
    let mut stack: Vec<(Node, Option<Node>)> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut anchor_of: Vec<usize> = Vec::new();
    let mut count = 0usize;
    loop {
        let (ev, mark) = parser
            .next_token()
            .map_err(|e| err(e.marker().line(), format!("invalid YAML: {}", e.info())))?;
        let line = mark.line().max(1);
        let finished: Option<(Node, usize)> = match ev {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => None,
            Event::Scalar(s, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                Some((
                    Node {
                        line,
                        kind: NodeKind::Scalar(s, quoted),
                    },
                    anchor,
                ))
            }
            Event::Alias(id) => {
                let n = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err(line, "alias to an unknown anchor".into()))?;
                count += node_count(&n);
                Some((n, 0))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(
                        line,
                        format!("nesting deeper than {MAX_DEPTH} levels; no manifest needs that"),
                    ));
                }
                let kind = if matches!(ev, Event::SequenceStart(..)) {
                    NodeKind::Seq(vec![])
                } else {
                    NodeKind::Map(vec![])
                };
                stack.push((Node { line, kind }, None));
                anchor_of.push(anchor);
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (n, _) = stack
                    .pop()
                    .ok_or_else(|| err(line, "unbalanced YAML".into()))?;
                let anchor = anchor_of.pop().unwrap_or(0);
                Some((n, anchor))
            }
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        count += 1;
        if count > MAX_NODES {
            return Err(err(
                line,
                format!("more than {MAX_NODES} nodes (alias expansion?); refusing to continue"),
            ));
        }
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => docs.push(node),
            Some((parent, pending)) => match &mut parent.kind {
                NodeKind::Seq(items) => items.push(node),
                NodeKind::Map(entries) => match pending.take() {
                    None => *pending = Some(node),
                    Some(k) => entries.push((k, node)),
                },
                NodeKind::Scalar(..) => {}
            },
        }
    }
    Ok(docs)
}

fn node_count(n: &Node) -> usize {
    match &n.kind {
        NodeKind::Scalar(..) => 1,
        NodeKind::Seq(s) => 1 + s.iter().map(node_count).sum::<usize>(),
        NodeKind::Map(m) => {
            1 + m
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
    }
}

// ---- the object model -----------------------------------------------------------------------

struct Obj<'a> {
    file: &'a str,
    kind: String,
    namespace: String,
    name: String,
    node: &'a Node,
}

impl Obj<'_> {
    fn id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

struct SecretInfo {
    secret: PullSecret,
    file: String,
    line: usize,
    object: String,
}

fn collect<'a>(file: &'a str, n: &'a Node, opts: &LintOptions, out: &mut Vec<Obj<'a>>) {
    let Some(kind) = n.get_str("kind") else {
        return;
    };
    if kind == "List" || kind.ends_with("List") {
        for item in n.get("items").map(Node::items).unwrap_or_default() {
            collect(file, item, opts, out);
        }
        return;
    }
    let meta = n.get("metadata");
    out.push(Obj {
        file,
        kind: kind.to_string(),
        namespace: meta
            .and_then(|m| m.get_str("namespace"))
            .unwrap_or(&opts.default_namespace)
            .to_string(),
        name: meta
            .and_then(|m| m.get_str("name").or_else(|| m.get_str("generateName")))
            .unwrap_or("")
            .to_string(),
        node: n,
    });
}

/// The pod spec of a workload object and its field path.
fn pod_spec<'a>(o: &Obj<'a>) -> Option<(&'a Node, &'static str)> {
    let n = o.node;
    match o.kind.as_str() {
        "Pod" => n.get("spec").map(|s| (s, "spec")),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => n
            .get("spec")?
            .get("template")?
            .get("spec")
            .map(|s| (s, "spec.template.spec")),
        "PodTemplate" => n.get("template")?.get("spec").map(|s| (s, "template.spec")),
        "CronJob" => n
            .get("spec")?
            .get("jobTemplate")?
            .get("spec")?
            .get("template")?
            .get("spec")
            .map(|s| (s, "spec.jobTemplate.spec.template.spec")),
        _ => None,
    }
}

struct Ctx<'a> {
    findings: Vec<Finding>,
    opts: &'a LintOptions,
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        rule: &'static str,
        severity: Severity,
        file: &str,
        line: usize,
        object: String,
        path: String,
        message: String,
        fix: &str,
    ) {
        self.findings.push(Finding {
            rule,
            severity,
            message,
            fix: fix.to_string(),
            file: file.to_string(),
            line,
            object,
            path,
        });
    }
}

/// Lints a set of files together (pull secrets may live in another file than the pods).
pub fn lint(inputs: &[(String, Vec<u8>)], opts: &LintOptions) -> LintReport {
    let mut report = LintReport::default();
    let mut docs: Vec<(String, Vec<Node>)> = Vec::new();
    for (file, bytes) in inputs {
        match load_documents(file, bytes) {
            Ok(d) => docs.push((file.clone(), d)),
            Err(e) => report.input_errors.push(e),
        }
    }
    let mut objs = Vec::new();
    for (file, ds) in &docs {
        for d in ds {
            collect(file, d, opts, &mut objs);
        }
    }
    let mut cx = Ctx {
        findings: vec![],
        opts,
    };
    // secrets and service accounts by (namespace, name)
    let mut secrets: BTreeMap<(String, String), SecretInfo> = BTreeMap::new();
    let mut sas: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for o in &objs {
        match o.kind.as_str() {
            "Secret" => {
                if let Some(info) = check_secret(&mut cx, o) {
                    secrets.insert((o.namespace.clone(), o.name.clone()), info);
                }
            }
            "ServiceAccount" => {
                let names = o
                    .node
                    .get("imagePullSecrets")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.get_str("name").map(str::to_string))
                    .collect();
                sas.insert((o.namespace.clone(), o.name.clone()), names);
            }
            _ => {}
        }
    }
    for o in &objs {
        if let Some((spec, path)) = pod_spec(o) {
            check_pod(&mut cx, o, spec, path, &secrets, &sas);
        }
    }
    let _ = cx.opts;
    report.findings = cx.findings;
    report
        .findings
        .sort_by(|a, b| (&a.file, a.line, a.rule).cmp(&(&b.file, b.line, b.rule)));
    report.findings.dedup();
    report
}

fn check_secret(cx: &mut Ctx<'_>, o: &Obj<'_>) -> Option<SecretInfo> {
    let n = o.node;
    let secret_type = n.get_str("type").unwrap_or("Opaque").to_string();
    let type_line = n.get("type").map_or(n.line, |t| t.line);
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut key_lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad_keys: Vec<String> = Vec::new();
    for (k, v) in n.get("data").map(Node::entries).unwrap_or_default() {
        let Some(key) = k.str() else { continue };
        let raw = v.str().unwrap_or_default();
        let cleaned: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()) {
            Ok(b) => {
                data.insert(key.to_string(), b);
            }
            Err(_) => {
                bad_keys.push(key.to_string());
                cx.add(
                "secret-data-not-base64",
                Severity::Error,
                o.file,
                v.line,
                o.id(),
                format!("data.{key}"),
                format!("data[{key}] is not valid base64; the API server rejects the Secret"),
                "put plain text under stringData instead, or base64-encode the value (base64 -w0)",
            )
            }
        }
        key_lines.insert(key.to_string(), v.line);
    }
    for (k, v) in n.get("stringData").map(Node::entries).unwrap_or_default() {
        let Some(key) = k.str() else { continue };
        data.insert(
            key.to_string(),
            v.str().unwrap_or_default().as_bytes().to_vec(),
        );
        key_lines.insert(key.to_string(), v.line);
    }
    let file = o.file;
    let id = o.id();
    let key_line = |k: &str| key_lines.get(k).copied().unwrap_or(type_line);
    for p in check_pull_secret_payload(&secret_type, &data) {
        // a .dockerconfigjson that failed base64 is already reported as secret-data-not-base64
        if matches!(p.kind, PayloadProblemKind::MissingKey { .. })
            && secret_type == dockerconfig::DOCKER_CONFIG_JSON_TYPE
            && bad_keys.iter().any(|k| k == DOCKER_CONFIG_JSON_KEY)
        {
            continue;
        }
        let (line, path) = match p.data_key {
            None => (type_line, "type".to_string()),
            Some(k) => (key_line(k), format!("data.{k}")),
        };
        cx.add(
            p.rule,
            Severity::Error,
            file,
            line,
            id.clone(),
            path,
            p.message,
            p.fix,
        );
    }
    Some(SecretInfo {
        secret: PullSecret {
            name: o.name.clone(),
            secret_type,
            data,
        },
        file: file.to_string(),
        line: type_line,
        object: id,
    })
}

/// What is wrong with a pull Secret's key or payload (see [`PayloadProblem`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadProblemKind {
    /// The key the type requires is absent or empty: the kubelet skips the Secret.
    /// `holds_other` is the other format's key when the Secret holds that one instead.
    MissingKey {
        /// The key the type requires.
        key: &'static str,
        /// The other format's key, when present instead.
        holds_other: Option<&'static str>,
    },
    /// A legacy `.dockercfg` map (registry keys at the top level) stored as `.dockerconfigjson`.
    LegacyDockercfgAsJson,
    /// A `config.json` with `auths` stored as legacy `.dockercfg`.
    DockercfgJsonAsLegacy,
    /// `.dockerconfigjson` without an `auths` member (and no credential helpers).
    NoAuths,
    /// Only `credsStore`/`credHelpers` hold the credentials; the kubelet ignores both.
    CredsStoreOnly,
    /// The payload does not decode; `error` is the kubelet's text.
    InvalidJson {
        /// The decode error, as the kubelet reports it.
        error: String,
    },
    /// An `auth` field is not base64 of `username:password`.
    AuthNotBase64 {
        /// The registry key of the entry, when known.
        registry_key: Option<String>,
    },
    /// `auth` decodes to other credentials than the `username`/`password` fields.
    AuthMismatch {
        /// The registry key of the entry.
        registry_key: String,
    },
}

/// One problem [`check_pull_secret_payload`] finds. Messages and fixes never quote a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadProblem {
    /// The lint rule id.
    pub rule: &'static str,
    /// What is wrong, structured.
    pub kind: PayloadProblemKind,
    /// The data key concerned; `None` means the Secret's `type`.
    pub data_key: Option<&'static str>,
    /// What is wrong and why it breaks the pull.
    pub message: String,
    /// How to fix it.
    pub fix: &'static str,
}

/// The problems the kubelet will meet in a Secret of a pull-secret type (`secret_type` and its
/// decoded `data`), as the lint rules `secret-type-key-mismatch`, `dockerconfig-invalid-json`,
/// `auth-not-base64`, `creds-store-only`, `dockerconfigjson-missing-auths` and `auth-mismatch`
/// report them. A Secret of any other type gives no problem here (it is only wrong when a pod
/// references it).
pub fn check_pull_secret_payload(
    secret_type: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Vec<PayloadProblem> {
    let mut out = Vec::new();
    match secret_type {
        dockerconfig::DOCKER_CONFIG_JSON_TYPE => {
            match data.get(DOCKER_CONFIG_JSON_KEY).filter(|v| !v.is_empty()) {
                None => {
                    let other = data.contains_key(DOCKERCFG_KEY);
                    let also = if other {
                        " (it holds .dockercfg, the key of type kubernetes.io/dockercfg)"
                    } else {
                        ""
                    };
                    out.push(PayloadProblem {
                    rule: "secret-type-key-mismatch",
                    kind: PayloadProblemKind::MissingKey {
                        key: DOCKER_CONFIG_JSON_KEY,
                        holds_other: other.then_some(DOCKERCFG_KEY),
                    },
                    data_key: None,
                    message: format!("type kubernetes.io/dockerconfigjson needs a non-empty .dockerconfigjson key{also}; the kubelet skips this secret"),
                    fix: "store the docker config under .dockerconfigjson, or set the type that matches the key",
                });
                }
                Some(payload) => check_dockerconfigjson(&mut out, payload),
            }
        }
        dockerconfig::DOCKERCFG_TYPE => match data.get(DOCKERCFG_KEY).filter(|v| !v.is_empty()) {
            None => {
                let other = data.contains_key(DOCKER_CONFIG_JSON_KEY);
                out.push(PayloadProblem {
                    rule: "secret-type-key-mismatch",
                    kind: PayloadProblemKind::MissingKey {
                        key: DOCKERCFG_KEY,
                        holds_other: other.then_some(DOCKER_CONFIG_JSON_KEY),
                    },
                    data_key: None,
                    message: format!(
                        "type kubernetes.io/dockercfg needs a non-empty .dockercfg key{}; the kubelet skips this secret",
                        if other { " (it holds .dockerconfigjson: use type kubernetes.io/dockerconfigjson)" } else { "" }
                    ),
                    fix: "use type kubernetes.io/dockerconfigjson with key .dockerconfigjson (what kubectl create secret docker-registry writes)",
                });
            }
            Some(payload) => match dockerconfig::decode_dockercfg(payload) {
                Err(e) => out.push(invalid_json(DOCKERCFG_KEY, &e)),
                Ok(_) => {
                    if let Ok(raw) = dockerconfig::inspect_config(payload) {
                        if raw.has_auths {
                            out.push(PayloadProblem {
                                rule: "secret-type-key-mismatch",
                                kind: PayloadProblemKind::DockercfgJsonAsLegacy,
                                data_key: Some(DOCKERCFG_KEY),
                                message: "a config.json with `auths` stored as legacy .dockercfg: the kubelet reads `auths` as a registry host and finds no credential".into(),
                                fix: "use type kubernetes.io/dockerconfigjson with key .dockerconfigjson",
                            });
                        }
                    }
                }
            },
        },
        _ => {}
    }
    out
}

fn invalid_json(key: &'static str, e: &DecodeError) -> PayloadProblem {
    let (rule, kind, fix) = match e {
        DecodeError::Base64(_) | DecodeError::AuthNoColon => (
            "auth-not-base64",
            PayloadProblemKind::AuthNotBase64 { registry_key: None },
            "set auth to base64(username:password), e.g. printf '%s:%s' USER PASS | base64 -w0, or regenerate with kubectl create secret docker-registry",
        ),
        _ => (
            "dockerconfig-invalid-json",
            PayloadProblemKind::InvalidJson {
                error: e.to_string(),
            },
            "regenerate the secret with kubectl create secret docker-registry, or fix the JSON",
        ),
    };
    PayloadProblem {
        rule,
        kind,
        data_key: Some(key),
        message: format!(
            "the kubelet cannot decode {key} and fails every pull that uses this secret with: {e}"
        ),
        fix,
    }
}

fn check_dockerconfigjson(out: &mut Vec<PayloadProblem>, payload: &[u8]) {
    let key = Some(DOCKER_CONFIG_JSON_KEY);
    let raw = match dockerconfig::inspect_config(payload) {
        Ok(r) => r,
        Err(e) => return out.push(invalid_json(DOCKER_CONFIG_JSON_KEY, &e)),
    };
    let helpers = raw.creds_store.is_some() || !raw.cred_helpers.is_empty();
    if !raw.has_auths {
        if helpers {
            out.push(PayloadProblem {
                rule: "creds-store-only",
                kind: PayloadProblemKind::CredsStoreOnly,
                data_key: key,
                message: "the config has credsStore/credHelpers but no auths: the kubelet reads only auths, so this secret holds no credential".into(),
                fix: "create the secret from the registry credentials (kubectl create secret docker-registry), not from a desktop config.json",
            });
        } else {
            let (why, kind) = if raw.looks_like_dockercfg {
                (
                    "a legacy .dockercfg map (registry keys at the top level) stored as .dockerconfigjson",
                    PayloadProblemKind::LegacyDockercfgAsJson,
                )
            } else {
                (
                    ".dockerconfigjson has no auths member",
                    PayloadProblemKind::NoAuths,
                )
            };
            out.push(PayloadProblem {
                rule: "dockerconfigjson-missing-auths",
                kind,
                data_key: key,
                message: format!("{why}: the API server accepts it, but the kubelet finds no credentials in it"),
                fix: "wrap the entries as {\"auths\": {...}}, or store it under .dockercfg with type kubernetes.io/dockercfg",
            });
        }
        return;
    }
    match dockerconfig::decode_dockerconfigjson(payload) {
        // `auth` problems are reported per entry below, with the registry key
        Err(DecodeError::Base64(_)) | Err(DecodeError::AuthNoColon) | Ok(_) => {}
        Err(e) => return out.push(invalid_json(DOCKER_CONFIG_JSON_KEY, &e)),
    }
    let usable = raw.auths.iter().any(|(_, e)| {
        e.auth.as_deref().is_some_and(|a| !a.is_empty())
            || e.username.as_deref().is_some_and(|u| !u.is_empty())
            || e.password.as_deref().is_some_and(|p| !p.is_empty())
    });
    if helpers && !usable {
        out.push(PayloadProblem {
            rule: "creds-store-only",
            kind: PayloadProblemKind::CredsStoreOnly,
            data_key: key,
            message: "the auths entries are empty and the credentials live in credsStore/credHelpers, which the kubelet ignores".into(),
            fix: "create the secret from the registry credentials (kubectl create secret docker-registry), not from a desktop config.json",
        });
    }
    for (rkey, e) in &raw.auths {
        let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) else {
            continue;
        };
        let not_base64 = PayloadProblemKind::AuthNotBase64 {
            registry_key: Some(rkey.clone()),
        };
        match dockerconfig::decode_auth_field(auth) {
            Err(DecodeError::AuthNoColon) => {
                let double = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .is_some_and(|inner| {
                        dockerconfig::decode_auth_field(inner.trim()).is_ok()
                    });
                let msg = if double {
                    format!("auth of {rkey:?} is base64-encoded twice; the kubelet decodes it once and finds no username:password")
                } else {
                    format!("auth of {rkey:?} does not decode to username:password (no colon); the kubelet fails every pull that uses this secret")
                };
                out.push(PayloadProblem {
                    rule: "auth-not-base64",
                    kind: not_base64,
                    data_key: key,
                    message: msg,
                    fix: "set auth to base64(username:password) encoded once: printf '%s:%s' USER PASS | base64 -w0",
                });
            }
            Err(err) => out.push(PayloadProblem {
                rule: "auth-not-base64",
                kind: not_base64,
                data_key: key,
                message: format!("auth of {rkey:?} is not valid base64 ({err}); the kubelet fails every pull that uses this secret"),
                fix: "set auth to base64(username:password): printf '%s:%s' USER PASS | base64 -w0 (no spaces or line breaks)",
            }),
            Ok((u, p)) => {
                let mut parts = Vec::new();
                if e.username.as_deref().is_some_and(|x| !x.is_empty() && x != u) {
                    parts.push("username");
                }
                if e.password.as_deref().is_some_and(|x| !x.is_empty() && x != p) {
                    parts.push("password");
                }
                if !parts.is_empty() {
                    out.push(PayloadProblem {
                        rule: "auth-mismatch",
                        kind: PayloadProblemKind::AuthMismatch {
                            registry_key: rkey.clone(),
                        },
                        data_key: key,
                        message: format!("auth of {rkey:?} decodes to a different {} than the {} field; the kubelet uses auth and ignores the field", parts.join(" and "), parts.join("/")),
                        fix: "regenerate the secret so auth is base64(username:password) of the current credentials, or drop the stale one",
                    });
                }
            }
        }
    }
}

/// Whether an image string still holds template text.
fn placeholder(image: &str) -> Option<&'static str> {
    let b = image.as_bytes();
    if image.contains("${") || image.contains("$(") {
        return Some("a shell/envsubst variable");
    }
    if image.contains("{{") || image.contains("}}") {
        return Some("a Helm/Go template expression");
    }
    if image.contains("#(") || image.contains(")#") || image.contains("#{") {
        return Some("a pipeline token placeholder");
    }
    if let Some(i) = image.find('$') {
        if b.get(i + 1)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            return Some("a shell variable");
        }
    }
    if image.contains('<') || image.contains('>') {
        return Some("an angle-bracket placeholder");
    }
    let pct = image.matches('%').count();
    if pct >= 2 {
        return Some("a %VAR% placeholder");
    }
    // __TAG__ / __IMAGE_TAG__
    let mut rest = image;
    while let Some(i) = rest.find("__") {
        let after = &rest[i + 2..];
        if let Some(j) = after.find("__") {
            let inner = &after[..j];
            if !inner.is_empty()
                && inner
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
            {
                return Some("a __VAR__ placeholder");
            }
        }
        rest = after;
    }
    None
}

fn env_name_is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(['_', '-', '.'])
        .filter(|w| !w.is_empty())
        .collect();
    let Some(last) = words.last() else {
        return false;
    };
    // names that point at a secret rather than hold one
    if matches!(
        *last,
        "URL"
            | "URI"
            | "FILE"
            | "PATH"
            | "DIR"
            | "ID"
            | "NAME"
            | "HOST"
            | "PORT"
            | "ENDPOINT"
            | "TYPE"
            | "HEADER"
            | "REF"
            | "ARN"
            | "TTL"
            | "EXPIRY"
            | "LENGTH"
            | "SIZE"
            | "KIND"
    ) {
        return false;
    }
    words.iter().any(|w| {
        matches!(
            *w,
            "PASSWORD" | "PASSWD" | "PWD" | "PASS" | "SECRET" | "TOKEN" | "APIKEY" | "CREDENTIALS"
        )
    }) || *last == "KEY"
        || upper.ends_with("PASSWORD")
        || upper.ends_with("SECRET")
        || upper.ends_with("TOKEN")
}

fn check_pod(
    cx: &mut Ctx<'_>,
    o: &Obj<'_>,
    spec: &Node,
    spec_path: &str,
    secrets: &BTreeMap<(String, String), SecretInfo>,
    sas: &BTreeMap<(String, String), Vec<String>>,
) {
    let id = o.id();
    let file = o.file;
    // effective pull secrets: the pod's, else its ServiceAccount's (admission copies them only
    // when the pod has none)
    let pod_refs: Vec<(String, usize)> = spec
        .get("imagePullSecrets")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.get_str("name").map(|n| (n.to_string(), i.line)))
        .filter(|(n, _)| !n.is_empty())
        .collect();
    let sa_name = spec
        .get_str("serviceAccountName")
        .or_else(|| spec.get_str("serviceAccount"))
        .unwrap_or("default");
    let (refs, via_sa): (Vec<(String, usize)>, bool) = if !pod_refs.is_empty() {
        (pod_refs, false)
    } else if let Some(names) = sas.get(&(o.namespace.clone(), sa_name.to_string())) {
        (
            names
                .iter()
                .filter(|n| !n.is_empty())
                .map(|n| (n.clone(), spec.line))
                .collect(),
            true,
        )
    } else {
        (vec![], false)
    };
    let any_secret_in_inputs = !secrets.is_empty();
    let mut found_secrets = Vec::new();
    let mut all_found = true;
    for (name, line) in &refs {
        match secrets.get(&(o.namespace.clone(), name.clone())) {
            Some(info) => found_secrets.push(info),
            None => {
                all_found = false;
                let elsewhere: Vec<&str> = secrets
                    .keys()
                    .filter(|(_, n)| n == name)
                    .map(|(ns, _)| ns.as_str())
                    .collect();
                let via = if via_sa {
                    format!(" (from ServiceAccount {sa_name})")
                } else {
                    String::new()
                };
                let (sev, msg) = if !elsewhere.is_empty() {
                    (Severity::Error, format!("pull secret {name:?}{via} is not in namespace {:?}; it exists only in {}: secrets are namespaced and the kubelet reads the pod's namespace", o.namespace, elsewhere.join(", ")))
                } else if any_secret_in_inputs {
                    (Severity::Error, format!("pull secret {name:?}{via} is not among the inputs for namespace {:?}: the kubelet warns FailedToRetrieveImagePullSecret and pulls without it", o.namespace))
                } else {
                    (Severity::Warning, format!("pull secret {name:?}{via} is not among the inputs (no Secret was given); if it does not exist in namespace {:?}, pulls go without it", o.namespace))
                };
                cx.add(
                    "pull-secret-not-found",
                    sev,
                    file,
                    *line,
                    id.clone(),
                    format!("{spec_path}.imagePullSecrets"),
                    msg,
                    "create the secret in the pod's namespace (kubectl create secret docker-registry NAME -n NS ...), or fix the name",
                );
            }
        }
    }
    // an Opaque (or other) secret referenced as a pull secret
    for info in &found_secrets {
        let s = &info.secret;
        if dockerconfig::usable_pull_secret_payload(&s.secret_type, &s.data).is_none()
            && s.secret_type != dockerconfig::DOCKER_CONFIG_JSON_TYPE
            && s.secret_type != dockerconfig::DOCKERCFG_TYPE
        {
            cx.add(
                "secret-type-key-mismatch",
                Severity::Error,
                &info.file,
                info.line,
                info.object.clone(),
                "type".into(),
                format!("secret {:?} is used as a pull secret by {id} but has type {:?}; the kubelet uses only kubernetes.io/dockerconfigjson (.dockerconfigjson) and kubernetes.io/dockercfg (.dockercfg) and skips it silently", s.name, s.secret_type),
                "set type: kubernetes.io/dockerconfigjson (the type is immutable: delete and recreate the secret)",
            );
        }
    }
    let pull_secrets: Vec<PullSecret> = found_secrets.iter().map(|i| i.secret.clone()).collect();
    // when no referenced secret is usable at all, the findings above already explain the
    // anonymous pull
    let any_usable = pull_secrets
        .iter()
        .any(|s| dockerconfig::usable_pull_secret_payload(&s.secret_type, &s.data).is_some());
    for group in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in spec
            .get(group)
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let cpath = format!("{spec_path}.{group}[{i}]");
            if let Some(img_node) = c.get("image") {
                let image = img_node.str().unwrap_or_default();
                if let Some(what) = placeholder(image) {
                    cx.add("image-placeholder", Severity::Error, file, img_node.line, id.clone(), format!("{cpath}.image"),
                        format!("image {image:?} still holds {what}: the template was not rendered, so the kubelet reports InvalidImageName or pulls the wrong image"),
                        "render the manifest (helm template, envsubst, kustomize) before applying it, or write the real tag");
                } else if let Err(e) = reference::apply_default_image_tag(image) {
                    cx.add("invalid-image-reference", Severity::Error, file, img_node.line, id.clone(), format!("{cpath}.image"),
                        format!("the container will wait with InvalidImageName: {}", messages::invalid_image(image, &e.to_string())),
                        "use a lowercase repository path and a valid tag or digest, e.g. registry.example.com/team/app:1.2.3");
                } else if !refs.is_empty() && all_found && any_usable {
                    if let Ok(r) = keyring::resolve(image, &pull_secrets, None) {
                        if r.credentials.is_empty() {
                            let names: Vec<&str> = refs.iter().map(|(n, _)| n.as_str()).collect();
                            cx.add("no-matching-credential", Severity::Warning, file, img_node.line, id.clone(), format!("{cpath}.image"),
                                format!("no credential in {} matches {:?} (lookup key {}): the kubelet pulls anonymously, which fails for a private image", names.join(", "), image, r.lookup_key),
                                "add an auths entry for this registry host (as written in the image) to the pull secret");
                        }
                    }
                }
            }
            if let Some(p) = c.get("imagePullPolicy") {
                let v = p.str().unwrap_or_default();
                if PullPolicy::validate(v, &format!("{cpath}.imagePullPolicy")).is_err()
                    && !v.is_empty()
                {
                    let e =
                        PullPolicy::validate(v, &format!("{cpath}.imagePullPolicy")).unwrap_err();
                    cx.add(
                        "imagepullpolicy-invalid",
                        Severity::Error,
                        file,
                        p.line,
                        id.clone(),
                        format!("{cpath}.imagePullPolicy"),
                        format!("the API server rejects the pod: {e}"),
                        "use exactly Always, IfNotPresent or Never (case-sensitive)",
                    );
                }
            }
            for (j, env) in c
                .get("env")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let (Some(name), Some(value)) = (env.get_str("name"), env.get("value")) else {
                    continue;
                };
                let literal = value.str().unwrap_or_default();
                if !literal.is_empty() && env_name_is_secret(name) {
                    cx.add("plaintext-secret-env", Severity::Warning, file, value.line, id.clone(), format!("{cpath}.env[{j}].value"),
                        format!("env var {name} holds a literal value that looks like a credential; anyone who can read the {} can read it", o.kind),
                        "move the value into a Secret and use valueFrom.secretKeyRef");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based() {
        let d = load_documents("f", b"a: 1\nb:\n  c: x\n").unwrap();
        assert_eq!(d[0].get("a").unwrap().line, 1);
        assert_eq!(d[0].get("b").unwrap().get("c").unwrap().line, 3);
    }

    #[test]
    fn placeholders() {
        for i in [
            "r/a:${TAG}",
            "r/a:#(tag)#",
            "r/a:{{ .Values.tag }}",
            "r/a:__TAG__",
            "r/a:<tag>",
            "r/a:%TAG%",
            "r/a:$TAG",
        ] {
            assert!(placeholder(i).is_some(), "{i}");
        }
        for i in [
            "r/a:1.0",
            "r/my__app:v1",
            "registry.example.com/a_b/c:latest",
        ] {
            assert!(placeholder(i).is_none(), "{i}");
        }
    }

    #[test]
    fn env_names() {
        for n in [
            "DB_PASSWORD",
            "API_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "STRIPE_API_KEY",
            "password",
            "GITHUB_TOKEN",
        ] {
            assert!(env_name_is_secret(n), "{n}");
        }
        for n in [
            "TOKEN_URL",
            "KEY_ID",
            "PASSWORD_FILE",
            "SECRET_NAME",
            "LOG_LEVEL",
            "KEYCLOAK_HOST",
            "AWS_ACCESS_KEY_ID",
        ] {
            assert!(!env_name_is_secret(n), "{n}");
        }
    }
}
