//! The verdict: one cause out of the trap report, the live probe and what the kubelet reported.
//!
//! Order of the rules in [`verdict()`]:
//!
//! 1. an invalid image reference is `invalid-image-name` (the kubelet never pulls);
//! 2. a running pod is `ok`; a failing local probe only adds a note, because the probe runs from
//!    this machine and the node's DNS, proxy, firewall and trusted CAs may differ;
//! 3. `imagePullPolicy: Never` with the image absent is `never-pull-missing`; a newest kubelet
//!    message reporting a successful pull is `ok` (the container waits for another reason);
//! 4. a pull secret whose payload does not decode fails every pull of the pod: `secret-format`;
//! 5. the live probe, when it probed the registry the kubelet's message names (or the message
//!    names none), beats the message text: transport failures, then the credential attempts
//!    (rate limit, rejected, forbidden, not found), then the manifest (missing, unsupported,
//!    platform missing from the index). A transport failure of the probe does not override a
//!    message in which the registry answered the node (401, 403, not found, ...): the node
//!    reaches the registry, so the failure is local to the machine running the probe;
//! 6. otherwise the newest classifiable kubelet message ([`classify_message`]);
//! 7. blocking secret traps explain credential failures: with no credential for the image the
//!    pull went out anonymously (`no-credentials-sent`, with the key comparison as evidence).

use serde::Serialize;

use super::message::{classify_message, cloud_registry, MessageClass};
use super::traps::{Severity, Trap, TrapReport};
use super::Cause;

/// Why the probe could not talk to the registry at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeFailure {
    /// The host name does not resolve.
    Dns,
    /// Connection refused (or reset, no route).
    Refused,
    /// Connecting or reading timed out.
    Timeout,
    /// The certificate's issuer is not trusted.
    TlsUntrusted,
    /// The certificate has expired, is not yet valid or names other hosts.
    TlsExpiredOrMismatch,
    /// One side speaks HTTP, the other HTTPS.
    HttpHttpsMismatch,
    /// Anything else, with its text.
    Other(String),
}

/// What one credential (or the anonymous attempt) got from the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptResult {
    /// The manifest request succeeded.
    Accepted,
    /// 401: the credentials (or their absence) were refused.
    Rejected,
    /// 403: authenticated, but not allowed to pull.
    Forbidden,
    /// 404 / `MANIFEST_UNKNOWN` / `NAME_UNKNOWN`.
    NotFound,
    /// 429 / `TOOMANYREQUESTS`.
    RateLimited,
    /// Anything else, with its text.
    Error(String),
}

/// One credential the probe tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialAttempt {
    /// `secret/NAME key` (or `node key`), or `anonymous`.
    pub label: String,
    /// What happened.
    pub result: AttemptResult,
}

/// What the probe learnt about the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestView {
    /// The manifest exists.
    Found {
        /// Whether it is an index / manifest list.
        is_index: bool,
        /// The index's platforms as `os/arch[/variant]` (empty for a single manifest).
        platforms: Vec<String>,
    },
    /// The registry does not have it.
    NotFound,
    /// A media type runtimes refuse (e.g. Docker schema 1), with the type.
    UnsupportedMediaType(String),
}

/// What the live registry probe found; filled by the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeView {
    /// The registry host that was probed.
    pub registry: String,
    /// Whether the registry answered at all.
    pub reachable: Result<(), ProbeFailure>,
    /// The credentials tried, in the kubelet's order, then `anonymous` when it was tried.
    pub attempts: Vec<CredentialAttempt>,
    /// The manifest, when a credential (or anonymous) got that far.
    pub manifest: Option<ManifestView>,
    /// The node's platform, e.g. `linux/amd64`.
    pub node_platform: Option<String>,
}

/// What the kubelet reported for the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeletView {
    /// The pod's namespace (for fixes).
    pub namespace: String,
    /// The container image as written (for fixes).
    pub image: String,
    /// `containerStatuses[].state.waiting.reason`.
    pub waiting_reason: Option<String>,
    /// Event messages and the waiting message, newest first.
    pub messages: Vec<String>,
    /// Whether the container is running.
    pub running: bool,
    /// The container's `imagePullPolicy`.
    pub pull_policy: String,
    /// Whether the image is known to be on the node (`None`: unknown).
    pub image_present: Option<bool>,
}

/// The combined answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The cause.
    pub cause: Cause,
    /// Other causes still possible, most likely first.
    pub candidates: Vec<Cause>,
    /// One line.
    pub summary: String,
    /// Short lines that support the cause.
    pub evidence: Vec<String>,
    /// A command or edit that fixes it.
    pub fix: String,
}

/// Same registry? `docker.io` and its API and index hosts count as one.
fn same_registry(a: &str, b: &str) -> bool {
    let norm = |h: &str| {
        let h = h.to_ascii_lowercase();
        match h.as_str() {
            "docker.io"
            | "index.docker.io"
            | "registry-1.docker.io"
            | "registry.hub.docker.com" => "docker.io".to_string(),
            _ => h.strip_suffix(":443").map(str::to_string).unwrap_or(h),
        }
    };
    norm(a) == norm(b)
}

/// The registry host of an image for fixes (`docker.io` for Docker Hub names).
fn registry_of(image: &str) -> String {
    crate::reference::parse_normalized_named(image)
        .map(|r| r.domain().to_string())
        .unwrap_or_else(|_| "<registry>".into())
}

fn repo_of(image: &str) -> String {
    crate::reference::parse_normalized_named(image)
        .map(|r| r.name())
        .unwrap_or_else(|_| image.to_string())
}

struct Fixes<'a> {
    k: &'a KubeletView,
    traps: &'a TrapReport,
}

impl Fixes<'_> {
    fn server(&self) -> String {
        match registry_of(&self.k.image).as_str() {
            "docker.io" => "https://index.docker.io/v1/".into(),
            r => r.to_string(),
        }
    }

    /// The fix of the first blocking trap, if any.
    fn trap_fix(&self) -> Option<String> {
        self.traps
            .findings
            .iter()
            .find(|f| f.severity == Severity::Blocking)
            .map(|f| f.fix.clone())
    }

    fn create_secret(&self) -> String {
        format!(
            "kubectl create secret docker-registry regcred --docker-server={} --docker-username=<user> --docker-password=<password> -n {ns} && kubectl patch serviceaccount default -n {ns} -p '{{\"imagePullSecrets\":[{{\"name\":\"regcred\"}}]}}'  # then recreate the pod (pods that use another ServiceAccount or list their own imagePullSecrets need regcred there)",
            self.server(),
            ns = self.k.namespace
        )
    }

    fn for_cause(&self, cause: Cause, probe: Option<&ProbeView>) -> String {
        let host = registry_of(&self.k.image);
        let repo = repo_of(&self.k.image);
        let ns = &self.k.namespace;
        match cause {
            Cause::Ok => "nothing to fix".into(),
            Cause::CredentialsRejected => self.trap_fix().unwrap_or_else(|| {
                format!(
                    "kubectl create secret docker-registry <secret> --docker-server={} --docker-username=<user> --docker-password=<current-password> -n {ns} --dry-run=client -o yaml | kubectl apply -f -  # refresh the credentials the pod uses",
                    self.server()
                )
            }),
            Cause::NoCredentialsSent => self.trap_fix().unwrap_or_else(|| self.create_secret()),
            Cause::NoPullAccess => format!(
                "grant the pulling identity read access to {repo} in the registry (or make it public); check with: skopeo inspect --creds <user>:<password> docker://{}",
                self.k.image
            ),
            Cause::ImageNotFound => format!(
                "list the existing tags (skopeo list-tags docker://{repo}) and set the image to one of them, or push {}",
                self.k.image
            ),
            Cause::PlatformNotFound => {
                let p = probe
                    .and_then(|p| p.node_platform.clone())
                    .unwrap_or_else(|| "linux/amd64".into());
                format!(
                    "publish the image for the node's platform: docker buildx build --platform {p} -t {} --push .  (or schedule the pod on nodes of a platform the image has)",
                    self.k.image
                )
            }
            Cause::RateLimited => format!(
                "authenticate the pulls: kubectl create secret docker-registry dockerhub --docker-server={} --docker-username=<user> --docker-password=<access-token> -n {ns}, add it to imagePullSecrets; or pull through a mirror",
                self.server()
            ),
            Cause::TlsUntrusted => format!(
                "install the registry's CA on every node: /etc/containerd/certs.d/{host}/ca.crt (containerd, with config_path set) or /etc/docker/certs.d/{host}/ca.crt (docker), then restart the runtime"
            ),
            Cause::TlsExpiredOrMismatch => {
                let (h, port) = host.split_once(':').unwrap_or((host.as_str(), "443"));
                format!(
                    "renew the registry certificate so it is valid now and names {h}; inspect it with: openssl s_client -connect {h}:{port} -servername {h} </dev/null | openssl x509 -noout -dates -ext subjectAltName"
                )
            }
            Cause::DnsFailure => format!(
                "on the node: getent hosts {}  # fix the node's resolver (/etc/resolv.conf, VPN/corporate DNS) or the registry name",
                host.split(':').next().unwrap_or(&host)
            ),
            Cause::RegistryUnreachable => format!(
                "from the node: curl -sv https://{host}/v2/  # start the registry, open the firewall or set the runtime's proxy"
            ),
            Cause::HttpHttpsMismatch => format!(
                "tell the runtime the registry is plain HTTP: /etc/containerd/certs.d/{host}/hosts.toml with server = \"http://{host}\" and [host.\"http://{host}\"] capabilities = [\"pull\", \"resolve\"] (or serve HTTPS)"
            ),
            Cause::InvalidImageName => self.trap_fix().unwrap_or_else(|| {
                "write the image as registry.example.com/team/app:1.2.3 (lowercase repository path, no scheme)".into()
            }),
            Cause::NeverPullMissing => format!(
                "load the image into the node's runtime (ctr -n k8s.io images import image.tar, or crictl pull {}), or set imagePullPolicy: IfNotPresent",
                self.k.image
            ),
            Cause::SecretFormat => self.trap_fix().unwrap_or_else(|| {
                format!(
                    "kubectl create secret docker-registry <secret> --docker-server={} --docker-username=<user> --docker-password=<password> -n {ns} --dry-run=client -o yaml | kubectl apply -f -",
                    self.server()
                )
            }),
            Cause::CloudCredentialProvider => {
                let provider = cloud_registry(&host).unwrap_or("the registry's cloud");
                format!(
                    "give the node identity pull rights on {repo} ({provider}) and check the kubelet's --image-credential-provider-config matchImages covers {host}"
                )
            }
            Cause::DiskOrExtract => "free space on the node's image filesystem: df -h /var/lib/containerd; crictl rmi --prune".into(),
            Cause::CorruptDownload => format!(
                "remove the partial download and pull again: crictl rmi {} ; if it repeats, check the registry or proxy serving the blob",
                self.k.image
            ),
            Cause::UnsupportedManifest => format!(
                "re-push the image as Docker schema 2 / OCI: skopeo copy --format v2s2 docker://{img} docker://{img}",
                img = self.k.image
            ),
            Cause::Timeout => "raise containerd's image_pull_progress_timeout (or the kubelet's --runtime-request-timeout), or pre-pull the image on the node".into(),
            Cause::Unknown => format!(
                "kubectl describe pod -n {ns}  # read the newest Failed event; rerun doctor with --message '<text>'"
            ),
        }
    }
}

fn push_unique(v: &mut Vec<Cause>, c: Cause) {
    if !v.contains(&c) {
        v.push(c);
    }
}

fn probe_failure_cause(f: &ProbeFailure) -> (Cause, String) {
    match f {
        ProbeFailure::Dns => (
            Cause::DnsFailure,
            "probe: the registry host does not resolve".into(),
        ),
        ProbeFailure::Refused => (
            Cause::RegistryUnreachable,
            "probe: connection refused".into(),
        ),
        ProbeFailure::Timeout => (Cause::Timeout, "probe: connection timed out".into()),
        ProbeFailure::TlsUntrusted => (
            Cause::TlsUntrusted,
            "probe: certificate signed by an untrusted authority".into(),
        ),
        ProbeFailure::TlsExpiredOrMismatch => (
            Cause::TlsExpiredOrMismatch,
            "probe: certificate expired or not valid for the host".into(),
        ),
        ProbeFailure::HttpHttpsMismatch => (
            Cause::HttpHttpsMismatch,
            "probe: the registry answers plain HTTP".into(),
        ),
        ProbeFailure::Other(t) => {
            let c = classify_message(t).cause;
            let c = if c == Cause::Unknown {
                Cause::RegistryUnreachable
            } else {
                c
            };
            (c, format!("probe: {}", super::redact(t)))
        }
    }
}

/// The trap evidence for credential causes: the blocking findings' messages.
fn trap_evidence(traps: &TrapReport) -> Vec<String> {
    traps
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Blocking)
        .map(|f| f.message.clone())
        .collect()
}

/// The newest kubelet message that classifies to a cause (a success counts), else the waiting
/// reason's, else the newest message's class.
fn message_class(k: &KubeletView) -> Option<MessageClass> {
    let mut first = None;
    for m in &k.messages {
        let c = classify_message(m);
        if c.cause != Cause::Unknown {
            return Some(c);
        }
        if first.is_none() {
            first = Some(c);
        }
    }
    if let Some(r) = &k.waiting_reason {
        let c = classify_message(r);
        if c.cause != Cause::Unknown {
            return Some(c);
        }
    }
    first
}

/// Combines everything into one verdict. Pure; see the module docs for the rule order.
///
/// `image_ref_valid` is the kubelet's own check, i.e.
/// [`reference::apply_default_image_tag`](crate::reference::apply_default_image_tag)`(image).is_ok()`;
/// `probe` is `None` when no live probe ran.
pub fn verdict(
    traps: &TrapReport,
    probe: Option<&ProbeView>,
    kubelet: &KubeletView,
    image_ref_valid: bool,
) -> Verdict {
    let fixes = Fixes { k: kubelet, traps };
    let mk = |cause: Cause, candidates: Vec<Cause>, summary: String, evidence: Vec<String>| {
        let fix = fixes.for_cause(cause, probe);
        let mut candidates = candidates;
        candidates.retain(|c| *c != cause);
        Verdict {
            cause,
            candidates,
            summary,
            evidence,
            fix,
        }
    };

    // 1. invalid reference
    if !image_ref_valid {
        let mut ev: Vec<String> = traps
            .findings
            .iter()
            .filter_map(|f| match &f.trap {
                Trap::InvalidImage { error } => Some(error.clone()),
                _ => None,
            })
            .collect();
        if ev.is_empty() {
            ev.push(format!(
                "image {:?} is not a valid reference",
                kubelet.image
            ));
        }
        return mk(
            Cause::InvalidImageName,
            vec![],
            format!("the image {:?} is not a valid reference; the kubelet never pulls it (InvalidImageName)", kubelet.image),
            ev,
        );
    }

    // 2. running
    if kubelet.running {
        let mut ev = vec!["the container is running".to_string()];
        let mut summary = "the container is running: the image was pulled".to_string();
        if let Some(p) = probe {
            let failed = match &p.reachable {
                Err(f) => Some(probe_failure_cause(f).1),
                Ok(())
                    if !p.attempts.is_empty()
                        && !p
                            .attempts
                            .iter()
                            .any(|a| a.result == AttemptResult::Accepted) =>
                {
                    Some("probe: no credential could read the manifest".to_string())
                }
                Ok(()) => None,
            };
            if let Some(f) = failed {
                summary.push_str("; the local probe failed, but it runs from this machine and the node's DNS, proxy, firewall and trusted CAs may differ (or the image was already on the node)");
                ev.push(f);
            }
        }
        return mk(Cause::Ok, vec![], summary, ev);
    }

    let msg = message_class(kubelet);
    let msg_cause = msg.as_ref().map(|m| m.cause);

    // 3. Never policy
    let never_reason = kubelet.waiting_reason.as_deref() == Some("ErrImageNeverPull")
        || msg_cause == Some(Cause::NeverPullMissing);
    if kubelet.pull_policy == "Never" && (never_reason || kubelet.image_present == Some(false)) {
        return mk(
            Cause::NeverPullMissing,
            vec![],
            format!("imagePullPolicy is Never and {:?} is not on the node, so the kubelet does not pull it", kubelet.image),
            vec![format!("imagePullPolicy: Never"), msg
                .as_ref()
                .and_then(|m| m.evidence.first().cloned())
                .unwrap_or_else(|| "image not present on the node".into())],
        );
    }

    // the newest kubelet message says the image is there
    if let Some(m) = msg.as_ref().filter(|m| m.cause == Cause::Ok) {
        return mk(
            Cause::Ok,
            vec![],
            "the image was pulled (the newest kubelet message says so); the container waits for another reason".into(),
            m.evidence.clone(),
        );
    }

    // 4. undecodable pull secret: every pull of the pod fails with the decode error
    if let Some(f) = traps.findings.iter().find(|f| {
        matches!(
            f.trap,
            Trap::InvalidJson { .. } | Trap::AuthNotBase64 { .. }
        )
    }) {
        return mk(
            Cause::SecretFormat,
            vec![],
            "a pull secret does not decode, so the kubelet fails every pull of this pod with the decode error".into(),
            vec![f.message.clone()],
        );
    }

    // 5. the live probe, when it speaks about the same registry
    let msg_registry = msg.as_ref().and_then(|m| m.registry.clone());
    // A message in which the registry answered proves the node reaches it: a transport failure
    // of the local probe then says nothing about the node.
    let node_reached = msg.as_ref().is_some_and(|m| registry_answered(m.cause));
    let mut probe_note = None;
    if let Some(p) = probe {
        let agrees = msg_registry
            .as_deref()
            .is_none_or(|r| same_registry(r, &p.registry));
        if let (true, Err(f)) = (agrees && node_reached, &p.reachable) {
            probe_note = Some(format!(
                "{}, but the kubelet's message shows the node reached {}: the difference is local to this machine",
                probe_failure_cause(f).1,
                p.registry
            ));
        } else if agrees {
            if let Some(v) = from_probe(p, traps, kubelet, msg.as_ref(), &mk) {
                return v;
            }
        }
    }

    // 6. the kubelet's message
    let Some(m) = msg else {
        let blocking = trap_evidence(traps);
        if !blocking.is_empty() && traps.credentials.is_empty() {
            return mk(
                Cause::NoCredentialsSent,
                vec![Cause::Unknown],
                "no kubelet message yet, but the pull will go out without credentials".into(),
                blocking,
            );
        }
        return mk(
            Cause::Unknown,
            vec![],
            "no kubelet message and no probe result explain the failure".into(),
            vec![],
        );
    };
    let mut cause = m.cause;
    let mut candidates = m.candidates.clone();
    let mut evidence = m.evidence.clone();

    // 7. blocking traps explain credential failures
    let credential_cause = matches!(
        cause,
        Cause::NoCredentialsSent
            | Cause::CredentialsRejected
            | Cause::NoPullAccess
            | Cause::ImageNotFound
            | Cause::CloudCredentialProvider
    ) && (cause != Cause::ImageNotFound
        || candidates.contains(&Cause::NoCredentialsSent));
    if credential_cause {
        let blocking = trap_evidence(traps);
        if traps.credentials.is_empty() && !blocking.is_empty() {
            if cause != Cause::NoCredentialsSent {
                candidates.insert(0, cause);
            }
            cause = Cause::NoCredentialsSent;
            evidence.extend(blocking);
        } else if !traps.credentials.is_empty() && cause == Cause::NoCredentialsSent {
            // the kubelet has credentials for this image: they were sent and refused, unless
            // the runtime dropped them
            let creds: Vec<String> = traps
                .credentials
                .iter()
                .map(|c| format!("{} {} (user {})", c.source, c.config_key, c.username))
                .collect();
            candidates.insert(0, Cause::NoCredentialsSent);
            cause = Cause::CredentialsRejected;
            evidence.push(format!("the kubelet sends {}", creds.join(", ")));
        } else if cause == Cause::CredentialsRejected {
            evidence.extend(
                traps
                    .findings
                    .iter()
                    .filter(|f| matches!(f.trap, Trap::AuthMismatch { .. }))
                    .map(|f| f.message.clone()),
            );
        }
    }
    let summary = summary_for(cause, kubelet, m.registry.as_deref());
    evidence.extend(probe_note);
    let mut v = mk(cause, candidates, summary, evidence);
    if let Some(p) = probe {
        if msg_registry
            .as_deref()
            .is_some_and(|r| !same_registry(r, &p.registry))
        {
            v.evidence.push(format!(
                "the probe reached {} but the kubelet's message names {}: probe results not used",
                p.registry,
                msg_registry.as_deref().unwrap_or_default()
            ));
        }
    }
    v
}

/// Causes whose message means the registry (or its token service) answered the node.
fn registry_answered(c: Cause) -> bool {
    matches!(
        c,
        Cause::CredentialsRejected
            | Cause::NoCredentialsSent
            | Cause::NoPullAccess
            | Cause::ImageNotFound
            | Cause::PlatformNotFound
            | Cause::RateLimited
            | Cause::UnsupportedManifest
            | Cause::CorruptDownload
            | Cause::DiskOrExtract
    )
}

type Mk<'a> = dyn Fn(Cause, Vec<Cause>, String, Vec<String>) -> Verdict + 'a;

fn from_probe(
    p: &ProbeView,
    traps: &TrapReport,
    k: &KubeletView,
    msg: Option<&MessageClass>,
    mk: &Mk<'_>,
) -> Option<Verdict> {
    let mut cands: Vec<Cause> = Vec::new();
    if let Some(m) = msg {
        push_unique(&mut cands, m.cause);
        for c in &m.candidates {
            push_unique(&mut cands, *c);
        }
    }
    let msg_ev: Vec<String> = msg.map(|m| m.evidence.clone()).unwrap_or_default();
    if let Err(f) = &p.reachable {
        let (cause, ev) = probe_failure_cause(f);
        let mut evidence = vec![ev];
        evidence.extend(msg_ev);
        return Some(mk(
            cause,
            cands,
            summary_for(cause, k, Some(&p.registry)),
            evidence,
        ));
    }
    let attempts = &p.attempts;
    if attempts.is_empty() {
        return None;
    }
    let label_list = |pred: &dyn Fn(&AttemptResult) -> bool| -> Vec<String> {
        attempts
            .iter()
            .filter(|a| pred(&a.result))
            .map(|a| a.label.clone())
            .collect()
    };
    let accepted = label_list(&|r| *r == AttemptResult::Accepted);
    if !accepted.is_empty() {
        // the registry serves the manifest to someone: look at the manifest itself
        let ev_ok = format!("probe: {} can read the manifest", accepted.join(", "));
        match &p.manifest {
            Some(ManifestView::NotFound) => {
                return Some(mk(
                    Cause::ImageNotFound,
                    cands,
                    summary_for(Cause::ImageNotFound, k, Some(&p.registry)),
                    vec![format!(
                        "probe: {} does not exist in {}",
                        k.image, p.registry
                    )],
                ))
            }
            Some(ManifestView::UnsupportedMediaType(t)) => {
                return Some(mk(
                    Cause::UnsupportedManifest,
                    cands,
                    summary_for(Cause::UnsupportedManifest, k, Some(&p.registry)),
                    vec![format!("probe: manifest media type {t}")],
                ))
            }
            Some(ManifestView::Found {
                is_index: true,
                platforms,
            }) => {
                if let Some(np) = &p.node_platform {
                    let has = platforms
                        .iter()
                        .any(|x| x == np || x.starts_with(&format!("{np}/")));
                    if !has {
                        return Some(mk(
                            Cause::PlatformNotFound,
                            cands,
                            summary_for(Cause::PlatformNotFound, k, Some(&p.registry)),
                            vec![
                                format!("node platform {np}"),
                                format!("image index has {}", platforms.join(", ")),
                            ],
                        ));
                    }
                }
            }
            _ => {}
        }
        // the manifest is fine: credentials from the probe work; is that what the kubelet has?
        let anonymous_ok = accepted.iter().any(|l| l == "anonymous");
        if let Some(m) = msg {
            if m.cause != Cause::Unknown {
                let mut ev = m.evidence.clone();
                ev.push(ev_ok);
                let mut cand = m.candidates.clone();
                let mut cause = m.cause;
                if matches!(
                    cause,
                    Cause::NoCredentialsSent | Cause::CredentialsRejected | Cause::NoPullAccess
                ) && !anonymous_ok
                    && traps.credentials.is_empty()
                {
                    cand.insert(0, cause);
                    cause = Cause::NoCredentialsSent;
                    ev.extend(trap_evidence(traps));
                }
                return Some(mk(
                    cause,
                    cand,
                    format!(
                        "{}; the registry serves the image to {} from here, so the node differs",
                        summary_for(cause, k, Some(&p.registry)),
                        accepted.join(", ")
                    ),
                    ev,
                ));
            }
        }
        if msg.is_none() && k.waiting_reason.is_none() {
            // nothing failed: a pod not created yet, or one the kubelet has not tried
            return Some(mk(
                Cause::Ok,
                vec![],
                format!(
                    "the registry serves the image to {}, and the kubelet reports no pull failure",
                    accepted.join(", ")
                ),
                vec![ev_ok],
            ));
        }
        return Some(mk(
            Cause::Unknown,
            cands,
            format!(
                "the registry serves the image to {} from here; the failure is on the node",
                accepted.join(", ")
            ),
            vec![ev_ok],
        ));
    }
    // nobody got the manifest
    let rate = label_list(&|r| *r == AttemptResult::RateLimited);
    if !rate.is_empty() {
        return Some(mk(
            Cause::RateLimited,
            cands,
            summary_for(Cause::RateLimited, k, Some(&p.registry)),
            vec![format!(
                "probe: 429 Too Many Requests for {}",
                rate.join(", ")
            )],
        ));
    }
    let rejected = label_list(&|r| *r == AttemptResult::Rejected);
    let forbidden = label_list(&|r| *r == AttemptResult::Forbidden);
    let not_found = label_list(&|r| *r == AttemptResult::NotFound);
    let only_anonymous = attempts.iter().all(|a| a.label == "anonymous");
    if traps.credentials.is_empty()
        && only_anonymous
        && (!rejected.is_empty() || !forbidden.is_empty() || !not_found.is_empty())
    {
        // the kubelet pulls anonymously and the registry wants credentials
        let mut ev = vec![format!(
            "the kubelet has no credential for lookup key {}",
            traps.lookup_key
        )];
        ev.extend(trap_evidence(traps));
        let probe_line = if !rejected.is_empty() {
            "probe: anonymous pull refused (401)"
        } else if !forbidden.is_empty() {
            "probe: anonymous pull forbidden (403)"
        } else {
            "probe: anonymous pull gets not found (private or missing)"
        };
        ev.push(probe_line.into());
        let cause = if cloud_registry(&p.registry).is_some() && trap_evidence(traps).is_empty() {
            cands.insert(0, Cause::NoCredentialsSent);
            Cause::CloudCredentialProvider
        } else {
            if !not_found.is_empty() {
                cands.insert(0, Cause::ImageNotFound);
            }
            Cause::NoCredentialsSent
        };
        return Some(mk(
            cause,
            cands,
            summary_for(cause, k, Some(&p.registry)),
            ev,
        ));
    }
    let with_creds = |v: &[String]| v.iter().any(|l| l != "anonymous");
    if with_creds(&rejected) {
        let mut ev = vec![format!("probe: 401 for {}", rejected.join(", "))];
        ev.extend(
            traps
                .findings
                .iter()
                .filter(|f| matches!(f.trap, Trap::AuthMismatch { .. }))
                .map(|f| f.message.clone()),
        );
        let cause = if cloud_registry(&p.registry).is_some() {
            cands.insert(0, Cause::CredentialsRejected);
            Cause::CloudCredentialProvider
        } else {
            Cause::CredentialsRejected
        };
        return Some(mk(
            cause,
            cands,
            summary_for(cause, k, Some(&p.registry)),
            ev,
        ));
    }
    if !forbidden.is_empty() {
        return Some(mk(
            Cause::NoPullAccess,
            cands,
            summary_for(Cause::NoPullAccess, k, Some(&p.registry)),
            vec![format!("probe: 403 for {}", forbidden.join(", "))],
        ));
    }
    if !not_found.is_empty() {
        cands.insert(0, Cause::NoPullAccess);
        return Some(mk(
            Cause::ImageNotFound,
            cands,
            summary_for(Cause::ImageNotFound, k, Some(&p.registry)),
            vec![format!("probe: not found for {}", not_found.join(", "))],
        ));
    }
    // only errors: classify their texts
    let errors: Vec<&str> = attempts
        .iter()
        .filter_map(|a| match &a.result {
            AttemptResult::Error(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let first = errors.first()?;
    let c = classify_message(first);
    if c.cause == Cause::Unknown {
        return None;
    }
    let mut ev = vec![format!("probe: {}", super::redact(first))];
    ev.extend(c.evidence);
    Some(mk(
        c.cause,
        c.candidates,
        summary_for(c.cause, k, Some(&p.registry)),
        ev,
    ))
}

/// One line per cause.
fn summary_for(cause: Cause, k: &KubeletView, registry: Option<&str>) -> String {
    let reg = registry
        .map(str::to_string)
        .unwrap_or_else(|| registry_of(&k.image));
    let img = &k.image;
    match cause {
        Cause::Ok => format!("{img} pulls"),
        Cause::CredentialsRejected => format!("{reg} refuses the credentials sent for {img}"),
        Cause::NoCredentialsSent => format!("the pull of {img} goes to {reg} without credentials"),
        Cause::NoPullAccess => format!("the identity pulling {img} may not read it on {reg}"),
        Cause::ImageNotFound => format!("{img} does not exist on {reg} (wrong repository or tag)"),
        Cause::PlatformNotFound => format!("{img} has no variant for the node's platform"),
        Cause::RateLimited => format!("{reg} rate-limits the pulls"),
        Cause::TlsUntrusted => {
            format!("the node does not trust the certificate authority of {reg}")
        }
        Cause::TlsExpiredOrMismatch => {
            format!("the certificate of {reg} has expired or does not name it")
        }
        Cause::DnsFailure => format!("the node cannot resolve {reg}"),
        Cause::RegistryUnreachable => format!("{reg} does not answer"),
        Cause::HttpHttpsMismatch => {
            format!("{reg} speaks plain HTTP and the runtime HTTPS (or the reverse)")
        }
        Cause::InvalidImageName => format!("{img} is not a valid image reference"),
        Cause::NeverPullMissing => format!("imagePullPolicy Never and {img} is not on the node"),
        Cause::SecretFormat => "a pull secret's payload cannot be used".into(),
        Cause::CloudCredentialProvider => {
            format!("the node's cloud credential provider gives no usable credentials for {reg}")
        }
        Cause::DiskOrExtract => {
            format!("the layers of {img} cannot be stored or unpacked on the node")
        }
        Cause::CorruptDownload => {
            format!("a download of {img} was cut short or does not match its digest")
        }
        Cause::UnsupportedManifest => {
            format!("the manifest of {img} uses a format the runtime refuses")
        }
        Cause::Timeout => format!("the pull of {img} does not finish in time"),
        Cause::Unknown => format!("the pull of {img} fails for a reason the message does not show"),
    }
}
