//! `kubepull doctor`: why a pod cannot pull its image, on any cluster, with the fix.
//!
//! For each container (init, regular, ephemeral) of the pods asked about, the doctor
//!
//! 1. builds the pull secrets exactly as the kubelet sees them (the pod's
//!    `imagePullSecrets` after ServiceAccount admission; for a template or manifest not yet
//!    admitted, the ServiceAccount's when the pod lists none) and checks them for the classic
//!    traps ([`kubepull_core::diagnose::check_secrets`]);
//! 2. probes the registry from where it runs, with each credential in the kubelet's order
//!    ([`probe`]), unless told not to;
//! 3. reads what the kubelet said (the container's waiting state and the pod's events) and
//!    classifies the runtime's text ([`kubepull_core::diagnose::classify_message`]);
//! 4. gives one verdict ([`kubepull_core::diagnose::verdict()`]): a cause, the other possible
//!    causes, a summary, the evidence, and the fix.
//!
//! Every Secret, ServiceAccount, Node and namespace's events is read once however many pods
//! refer to it, and every distinct (image, credentials) pair is probed once, in parallel with
//! a bound ([`API_CONCURRENCY`], [`PROBE_CONCURRENCY`]). Only `get` and `list` are used.

pub mod gather;
pub mod probe;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use kubepull_core::diagnose::{self, Cause, KubeletView, ProbeView, SecretLookup, TrapInput};
use kubepull_core::dockerconfig::DockerConfig;
use kubepull_core::keyring::{self, PullSecret};
use kubepull_core::{pullpolicy, reference};
use kubepull_registry::{Client, HostsDir, Platform, RegistryCredential};
use serde::Serialize;

use gather::{Facts, PodView, SaRead};

/// Concurrent API reads.
pub const API_CONCURRENCY: usize = 16;
/// Concurrent registry probes.
pub const PROBE_CONCURRENCY: usize = 8;

/// Why the doctor could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// No usable kubeconfig.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The API server refused or failed a read the doctor cannot do without.
    #[error("reading {what}: {message}")]
    Api {
        /// What was being read (`deployment/web`).
        what: String,
        /// The HTTP status (0 when the request did not complete).
        code: u16,
        /// The API server's message.
        message: String,
    },
}

impl DoctorError {
    /// Whether the user asked for something that does not exist or cannot be parsed.
    pub fn is_usage(&self) -> bool {
        matches!(self, DoctorError::Usage(_)) || matches!(self, DoctorError::Api { code: 404, .. })
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every pod in the namespace (or in all namespaces).
    All,
    /// One pod by name.
    Pod(String),
    /// `TYPE/NAME`: a workload's live pods, or its template.
    Object {
        /// Canonical kind ([`gather::canonical_kind`]).
        kind: String,
        /// Name.
        name: String,
    },
    /// Pods matching a label selector.
    Selector(String),
    /// Manifests not yet applied: their Pods and workload templates, with the Secrets and
    /// ServiceAccounts they define (the cluster's are read for the rest, when reachable).
    Manifests(Vec<serde_json::Value>),
}

/// The doctor's options.
#[derive(Clone)]
pub struct Options {
    /// What to check.
    pub selection: Selection,
    /// `-n`; the kubeconfig context's namespace when `None`.
    pub namespace: Option<String>,
    /// `-A`.
    pub all_namespaces: bool,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--hosts-dir`: registry TLS and mirrors, containerd's layout (as the node has it).
    pub hosts: Option<Arc<HostsDir>>,
    /// `--docker-config`: the node's docker config, tried after the pod's secrets.
    pub node_config: Option<DockerConfig>,
    /// `--no-probe` clears it.
    pub probe: bool,
    /// The registry client for probes.
    pub client: Client,
}

/// One credential the kubelet would try, and what the registry said to it.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialReport {
    /// `secret/NAME`, or `node` for the node's docker config.
    pub secret: String,
    /// The config key it came from.
    pub key: String,
    /// The username (never the password).
    pub username: String,
    /// What the registry said: `accepted`, `rejected`, `forbidden`, `not-found`,
    /// `rate-limited`, `error: …`, or `not-probed`.
    pub result: String,
}

/// The verdict for one container.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerReport {
    /// Namespace.
    pub namespace: String,
    /// Pod name (or `KIND/NAME` for a template).
    pub pod: String,
    /// Container name.
    pub container: String,
    /// `init`, `regular` or `ephemeral`.
    #[serde(skip)]
    pub container_kind: &'static str,
    /// The image as written.
    pub image: String,
    /// The one cause.
    pub cause: Cause,
    /// Other causes still possible, most likely first.
    pub candidates: Vec<Cause>,
    /// One line.
    pub summary: String,
    /// What the verdict rests on.
    pub evidence: Vec<String>,
    /// The command or edit that fixes it.
    pub fix: String,
    /// The credentials in the kubelet's order.
    pub credentials: Vec<CredentialReport>,
}

impl ContainerReport {
    /// Whether this container can pull.
    pub fn ok(&self) -> bool {
        self.cause == Cause::Ok
    }
}

/// What a run found, and how much it read.
#[derive(Debug)]
pub struct Report {
    /// One entry per container checked.
    pub containers: Vec<ContainerReport>,
    /// Things the user should know about the run itself (a cluster that could not be read).
    pub notes: Vec<String>,
    /// API reads made.
    pub api_reads: usize,
    /// Registry probes made (distinct image and credential sets).
    pub probes: usize,
}

/// Progress: `(done, total)` containers.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Connects with kubectl's rules (see [`crate::connect`]).
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<(kube::Client, String), DoctorError> {
    crate::connect(kubeconfig, context)
        .await
        .map_err(DoctorError::Kubeconfig)
}

/// One container to judge.
struct Job<'a> {
    pod: &'a PodView,
    kind: &'static str,
    name: String,
    image: String,
    policy: Option<String>,
}

fn containers(p: &PodView) -> Vec<Job<'_>> {
    let mut v = vec![];
    for c in p.spec.init_containers.iter().flatten() {
        v.push(Job {
            pod: p,
            kind: "init",
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            policy: c.image_pull_policy.clone(),
        });
    }
    for c in &p.spec.containers {
        v.push(Job {
            pod: p,
            kind: "regular",
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            policy: c.image_pull_policy.clone(),
        });
    }
    for c in p.spec.ephemeral_containers.iter().flatten() {
        v.push(Job {
            pod: p,
            kind: "ephemeral",
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            policy: c.image_pull_policy.clone(),
        });
    }
    v
}

/// The pull secret names the kubelet uses for `p`: the pod's own, or for a pod not yet
/// admitted that lists none, its ServiceAccount's (admission copies them only then).
fn effective_secret_names(p: &PodView, facts: &Facts) -> Vec<String> {
    let own: Vec<String> = p
        .spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect();
    if p.live || !own.is_empty() {
        return own;
    }
    match facts
        .service_accounts
        .get(&(p.namespace.clone(), sa_name(p)))
    {
        Some(SaRead::Found(names)) => names.clone(),
        _ => own,
    }
}

fn sa_name(p: &PodView) -> String {
    p.spec
        .service_account_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// What the kubelet said about one container: its state and the pod's events for it.
fn kubelet_view(job: &Job<'_>, facts: &Facts, policy: &str) -> KubeletView {
    let mut view = KubeletView {
        namespace: job.pod.namespace.clone(),
        image: job.image.clone(),
        waiting_reason: None,
        messages: vec![],
        running: false,
        pull_policy: policy.to_string(),
        image_present: None,
    };
    let Some(status) = &job.pod.status else {
        return view;
    };
    let statuses = match job.kind {
        "init" => status.init_container_statuses.as_ref(),
        "ephemeral" => status.ephemeral_container_statuses.as_ref(),
        _ => status.container_statuses.as_ref(),
    };
    if let Some(cs) = statuses.and_then(|v| v.iter().find(|c| c.name == job.name)) {
        if let Some(state) = &cs.state {
            if let Some(w) = &state.waiting {
                view.waiting_reason = w.reason.clone();
                if let Some(m) = w.message.clone().filter(|m| !m.is_empty()) {
                    view.messages.push(m);
                }
            }
            // a container that ran has its image, whatever the events say
            view.running = state.running.is_some() || state.terminated.is_some();
        }
        if !cs.image_id.is_empty() {
            view.running = true;
        }
    }
    if let Some(uid) = &job.pod.uid {
        for (reason, message, field) in facts.events.get(uid).into_iter().flatten() {
            let for_me = field.is_empty() || field.contains(&format!("{{{}}}", job.name));
            let about_pull = matches!(
                reason.as_str(),
                "Failed"
                    | "BackOff"
                    | "FailedToRetrieveImagePullSecret"
                    | "ErrImageNeverPull"
                    | "InspectFailed"
            );
            if for_me && about_pull && !message.is_empty() && !view.messages.contains(message) {
                view.messages.push(message.clone());
            }
        }
    }
    view
}

/// An attempt's result as the `result` column shows it.
fn attempt_text(r: &diagnose::AttemptResult) -> String {
    use diagnose::AttemptResult as A;
    match r {
        A::Accepted => "accepted".into(),
        A::Rejected => "rejected".into(),
        A::Forbidden => "forbidden".into(),
        A::NotFound => "not-found".into(),
        A::RateLimited => "rate-limited".into(),
        A::Error(e) => format!("error: {e}"),
    }
}

/// The probe's key: the same image with the same credentials on the same platform is probed
/// once.
type ProbeKey = (String, String, Vec<String>);

/// Runs the doctor.
pub async fn run(opts: &Options, progress: Option<Progress<'_>>) -> Result<Report, DoctorError> {
    let mut notes = vec![];
    let mut facts = Facts::default();
    let manifests = matches!(opts.selection, Selection::Manifests(_));
    let cluster = match connect(opts.kubeconfig.as_deref(), opts.context.as_deref()).await {
        Ok(c) => Some(c),
        Err(e) if manifests => {
            notes.push(format!(
                "no cluster ({e}): only the Secrets and ServiceAccounts in the manifests are known"
            ));
            None
        }
        Err(e) => return Err(e),
    };
    let ns = opts
        .namespace
        .clone()
        .or_else(|| cluster.as_ref().map(|c| c.1.clone()))
        .unwrap_or_else(|| "default".into());
    let client = cluster.as_ref().map(|c| &c.0);
    let pods: Vec<PodView> = match (&opts.selection, client) {
        (Selection::Manifests(docs), _) => gather::pods_from_manifest(docs, &ns, &mut facts)?,
        (_, None) => return Err(DoctorError::Kubeconfig("no cluster".into())),
        (Selection::All, Some(c)) => {
            let ns = (!opts.all_namespaces).then_some(ns.as_str());
            gather::list_pods(c, ns, None, &mut facts).await?
        }
        (Selection::Selector(s), Some(c)) => {
            let ns = (!opts.all_namespaces).then_some(ns.as_str());
            gather::list_pods(c, ns, Some(s), &mut facts).await?
        }
        (Selection::Pod(name), Some(c)) => gather::pods_of(c, &ns, "pod", name, &mut facts).await?,
        (Selection::Object { kind, name }, Some(c)) => {
            gather::pods_of(c, &ns, kind, name, &mut facts).await?
        }
    };
    gather::read_references(client, &pods, opts.all_namespaces, &mut facts).await;

    // the static half, per container
    struct Pending<'a> {
        job: Job<'a>,
        traps: diagnose::TrapReport,
        kubelet: KubeletView,
        image_valid: bool,
        probe_key: Option<ProbeKey>,
        creds: Vec<(String, RegistryCredential)>,
        cred_rows: Vec<CredentialReport>,
        reference: Option<reference::Reference>,
        platform: Platform,
    }
    let mut pending = vec![];
    for p in &pods {
        let names = effective_secret_names(p, &facts);
        let mut secrets: BTreeMap<String, SecretLookup> = BTreeMap::new();
        let mut pull_secrets = vec![];
        for n in &names {
            let r = facts.secrets.get(&(p.namespace.clone(), n.clone()));
            if let Some(SecretLookup::Found { type_, data }) = r {
                pull_secrets.push(PullSecret {
                    name: n.clone(),
                    secret_type: type_.clone(),
                    data: data.clone(),
                });
            }
            secrets.insert(n.clone(), r.cloned().unwrap_or(SecretLookup::NotFound));
        }
        let ns_names = facts.secret_names.get(&p.namespace).cloned().flatten();
        let elsewhere: BTreeMap<String, Vec<String>> = names
            .iter()
            .filter_map(|n| {
                facts.elsewhere.get(n).map(|v| {
                    (
                        n.clone(),
                        v.iter().filter(|x| **x != p.namespace).cloned().collect(),
                    )
                })
            })
            .collect();
        let sa = sa_name(p);
        let sa_read = facts
            .service_accounts
            .get(&(p.namespace.clone(), sa.clone()))
            .cloned();
        let sa_secrets: Vec<String> = match &sa_read {
            Some(SaRead::Found(v)) => v.clone(),
            _ => vec![],
        };
        let platform = p
            .spec
            .node_name
            .as_ref()
            .and_then(|n| facts.node_platform.get(n))
            .and_then(|s| Platform::parse(s).ok())
            .unwrap_or_else(Platform::host);
        for job in containers(p) {
            let input = TrapInput {
                namespace: &p.namespace,
                image: &job.image,
                pod_pull_secrets: &names,
                secrets: &secrets,
                namespace_secret_names: ns_names.as_deref(),
                same_name_elsewhere: &elsewhere,
                service_account: match &sa_read {
                    Some(SaRead::Unknown(_)) | None => None,
                    Some(r) => Some(diagnose::ServiceAccountView {
                        name: &sa,
                        pull_secrets: &sa_secrets,
                        exists: matches!(r, SaRead::Found(_)),
                    }),
                },
                node_config: opts.node_config.as_ref(),
                pod_name: p.live.then_some(p.name.as_str()),
                workload: p.owner.as_deref(),
            };
            let traps = diagnose::check_secrets(&input);
            let specified = job
                .policy
                .as_deref()
                .and_then(|s| pullpolicy::PullPolicy::validate(s, "imagePullPolicy").ok());
            let policy = pullpolicy::effective_pull_policy(&job.image, specified);
            let kubelet = kubelet_view(&job, &facts, policy.as_str());
            let defaulted = reference::apply_default_image_tag(&job.image).ok();
            let parsed = defaulted
                .as_deref()
                .and_then(|s| reference::parse_normalized_named(s).ok());
            let resolution =
                keyring::resolve(&job.image, &pull_secrets, opts.node_config.as_ref()).ok();
            let creds: Vec<(String, RegistryCredential)> = resolution
                .iter()
                .flat_map(|r| r.credentials.iter())
                .map(|c| {
                    (
                        format!("{} ({})", c.source, c.config_key),
                        RegistryCredential::from_keyring(c),
                    )
                })
                .collect();
            let cred_rows: Vec<CredentialReport> = resolution
                .iter()
                .flat_map(|r| r.credentials.iter())
                .map(|c| CredentialReport {
                    secret: c.source.to_string(),
                    key: c.config_key.clone(),
                    username: c.username.clone(),
                    result: "not-probed".into(),
                })
                .collect();
            let probe_key = (opts.probe && parsed.is_some()).then(|| {
                (
                    defaulted.clone().unwrap_or_default(),
                    platform.to_string(),
                    resolution
                        .iter()
                        .flat_map(|r| r.credentials.iter())
                        .map(|c| c.credential_hash())
                        .collect(),
                )
            });
            pending.push(Pending {
                image_valid: parsed.is_some(),
                job,
                traps,
                kubelet,
                probe_key,
                creds,
                cred_rows,
                reference: parsed,
                platform: platform.clone(),
            });
        }
    }

    // the live half: each distinct probe once, in parallel with a bound
    let mut probes: HashMap<ProbeKey, ProbeView> = HashMap::new();
    {
        use futures_util::StreamExt;
        let mut todo: Vec<(ProbeKey, &Pending<'_>)> = vec![];
        for p in &pending {
            if let Some(k) = &p.probe_key {
                if !todo.iter().any(|(t, _)| t == k) {
                    todo.push((k.clone(), p));
                }
            }
        }
        let total = todo.len();
        let hosts = opts.hosts.as_deref();
        let mut stream = futures_util::stream::iter(todo.into_iter().map(|(k, p)| async move {
            let r = p.reference.as_ref()?;
            let view = probe::probe(&opts.client, hosts, r, &p.creds, &p.platform).await;
            Some((k, view))
        }))
        .buffer_unordered(PROBE_CONCURRENCY);
        let mut done = 0;
        while let Some(r) = stream.next().await {
            done += 1;
            if let Some(cb) = progress {
                cb(done, total);
            }
            if let Some((k, v)) = r {
                probes.insert(k, v);
            }
        }
    }

    let mut out = vec![];
    for p in pending {
        let probe = p.probe_key.as_ref().and_then(|k| probes.get(k));
        let v = diagnose::verdict(&p.traps, probe, &p.kubelet, p.image_valid);
        let mut rows = p.cred_rows;
        if let Some(pv) = probe {
            for (row, a) in rows.iter_mut().zip(pv.attempts.iter()) {
                row.result = attempt_text(&a.result);
            }
        }
        out.push(ContainerReport {
            namespace: p.job.pod.namespace.clone(),
            pod: p.job.pod.name.clone(),
            container: p.job.name.clone(),
            container_kind: p.job.kind,
            image: p.job.image.clone(),
            cause: v.cause,
            candidates: v.candidates,
            summary: v.summary,
            evidence: v.evidence,
            fix: v.fix,
            credentials: rows,
        });
    }
    Ok(Report {
        containers: out,
        notes,
        api_reads: facts.api_reads,
        probes: probes.len(),
    })
}
