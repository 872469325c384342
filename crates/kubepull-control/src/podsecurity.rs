//! Pod Security admission, ported from k8s.io/pod-security-admission v0.33.4.
//!
//! - Namespace labels and their defaults: `api/constants.go`, `api/helpers.go`
//!   (`ParseLevel`, `ParseVersion`, `PolicyToEvaluate`).
//! - The checks: `policy/check_*.go`, each a function below named after its upstream file, with
//!   the upstream minimum versions and messages (`pluralize`, `joinQuote` from
//!   `policy/helpers.go`; containers visited init, regular, then ephemeral: `visitContainers`).
//! - Evaluation order and messages: `policy/checks.go` (sorted IDs, overrides),
//!   `admission/admission.go` (`EvaluatePod`, `EvaluatePodController`, `ValidateNamespace`,
//!   `isSignificantPodUpdate`).
//!
//! The checks read the typed pod (`k8s_openapi` `ObjectMeta` and `PodSpec`), as upstream's
//! read `*metav1.ObjectMeta` and `*corev1.PodSpec`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    self as core, AppArmorProfile, Capabilities, ContainerPort, PodSecurityContext, PodSpec,
    SELinuxOptions, SecurityContext, Volume, WindowsSecurityContextOptions,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

/// `pod-security.kubernetes.io/` label prefix.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
/// The newest minor version whose checks are implemented (psa v0.33 → Kubernetes 1.33).
pub const LATEST_MINOR: u32 = 33;

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No restrictions.
    Privileged,
    /// Known privilege escalations are prevented.
    Baseline,
    /// Hardening best practices.
    Restricted,
}

impl Level {
    /// `ParseLevel`.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// `latest` or `v1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The newest checks.
    Latest,
    /// The checks as of `v1.<minor>`.
    Minor(u32),
}

impl Version {
    /// `ParseVersion`: `latest` or `v1.<n>` (no leading zeros).
    pub fn parse(s: &str) -> Option<Version> {
        if s == "latest" {
            return Some(Version::Latest);
        }
        let n = s.strip_prefix("v1.")?;
        if n.is_empty()
            || !n.bytes().all(|b| b.is_ascii_digit())
            || (n.len() > 1 && n.starts_with('0'))
        {
            return None;
        }
        n.parse().ok().map(Version::Minor)
    }

    /// The minor version the checks are chosen for.
    fn minor(self) -> u32 {
        match self {
            Version::Latest => LATEST_MINOR,
            Version::Minor(m) => m.min(LATEST_MINOR),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Minor(m) => write!(f, "v1.{m}"),
        }
    }
}

/// A level at a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version.
    pub version: Version,
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// The three modes of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Refuse violating pods.
    pub enforce: LevelVersion,
    /// Log violations.
    pub audit: LevelVersion,
    /// Warn the client.
    pub warn: LevelVersion,
}

impl Policy {
    /// The cluster defaults: every mode at `level`, `latest`.
    pub fn defaults(level: Level) -> Policy {
        let lv = LevelVersion {
            level,
            version: Version::Latest,
        };
        Policy {
            enforce: lv,
            audit: lv,
            warn: lv,
        }
    }
}

/// One invalid namespace label: (label key, value, message).
pub type LabelError = (String, String, &'static str);

const LEVEL_ERR: &str = "must be one of privileged, baseline, restricted";
const VERSION_ERR: &str = "must be \"latest\" or \"v1.x\"";

/// `PolicyToEvaluate`: the policy of a namespace with `labels`, over `defaults`. Invalid enforce
/// levels fail closed (restricted), invalid audit/warn levels open (privileged), invalid
/// versions become latest. An unset warn level follows a stricter explicit enforce level.
pub fn policy_to_evaluate(
    labels: Option<&Map<String, Value>>,
    defaults: Policy,
) -> (Policy, Vec<LabelError>) {
    let mut p = defaults;
    let mut errs = vec![];
    let Some(labels) = labels else {
        return (p, errs);
    };
    let get = |k: &str| {
        labels
            .get(&format!("{LABEL_PREFIX}{k}"))
            .and_then(Value::as_str)
    };
    let mut has_enforce_level = false;
    let mut has_warn_level = false;
    let mut has_warn_version = false;
    for (mode, fallback) in [
        ("enforce", Level::Restricted),
        ("audit", Level::Privileged),
        ("warn", Level::Privileged),
    ] {
        let target = match mode {
            "enforce" => &mut p.enforce,
            "audit" => &mut p.audit,
            _ => &mut p.warn,
        };
        if let Some(v) = get(mode) {
            match Level::parse(v) {
                Some(l) => {
                    target.level = l;
                    if mode == "enforce" {
                        has_enforce_level = true;
                    }
                    if mode == "warn" {
                        has_warn_level = true;
                    }
                }
                None => {
                    target.level = fallback;
                    errs.push((format!("{LABEL_PREFIX}{mode}"), v.to_string(), LEVEL_ERR));
                }
            }
        }
        if let Some(v) = get(&format!("{mode}-version")) {
            if mode == "warn" {
                has_warn_version = true;
            }
            match Version::parse(v) {
                Some(ver) => target.version = ver,
                None => {
                    target.version = Version::Latest;
                    errs.push((
                        format!("{LABEL_PREFIX}{mode}-version"),
                        v.to_string(),
                        VERSION_ERR,
                    ));
                }
            }
        }
    }
    if !has_warn_level && has_enforce_level && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if !has_warn_version {
            p.warn.version = p.enforce.version;
        }
    }
    (p, errs)
}

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `ForbiddenReason`.
    pub reason: String,
    /// `ForbiddenDetail` (may be empty).
    pub detail: String,
}

impl Violation {
    fn new(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
        Some(Violation {
            reason: reason.into(),
            detail: detail.into(),
        })
    }
}

/// The violations joined as upstream prints them: `reason (detail), reason (detail)`.
pub fn describe(vs: &[Violation]) -> String {
    vs.iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// The pod metadata and spec a check looks at (upstream's checks take `*metav1.ObjectMeta` and
/// `*corev1.PodSpec`).
struct Pod<'a> {
    meta: &'a ObjectMeta,
    spec: &'a PodSpec,
}

/// What a check reads of a container: ephemeral containers are visited as containers
/// (`visitContainers`, `policy/visitor.go`, passes `(*corev1.Container)(&c.EphemeralContainerCommon)`).
struct Container<'a> {
    name: &'a str,
    sc: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
}

impl<'a> Pod<'a> {
    /// init containers, containers, ephemeral containers (`visitContainers`).
    fn containers(&self) -> Vec<Container<'a>> {
        let s = self.spec;
        let common = |c: &'a core::Container| Container {
            name: &c.name,
            sc: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        };
        let init = s.init_containers.iter().flatten().map(common);
        let regular = s.containers.iter().map(common);
        let ephemeral = s.ephemeral_containers.iter().flatten().map(|c| Container {
            name: &c.name,
            sc: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
        init.chain(regular).chain(ephemeral).collect()
    }

    fn pod_sc(&self) -> Option<&'a PodSecurityContext> {
        self.spec.security_context.as_ref()
    }

    fn is_windows(&self) -> bool {
        self.spec.os.as_ref().is_some_and(|os| os.name == "windows")
    }

    fn annotations(&self) -> impl Iterator<Item = (&'a String, &'a String)> {
        self.meta.annotations.iter().flatten()
    }

    fn volumes(&self) -> &'a [Volume] {
        self.spec.volumes.as_deref().unwrap_or_default()
    }
}

impl<'a> Container<'a> {
    fn name(&self) -> String {
        self.name.to_string()
    }
}

/// Setters joined with " and ": `pod`, `containers "a", "b"`, …
fn setters(pod: bool, containers: &[String], extra: Option<String>) -> Vec<String> {
    let mut s = vec![];
    if pod {
        s.push("pod".to_string());
    }
    if !containers.is_empty() {
        s.push(containers_phrase(containers));
    }
    s.extend(extra);
    s
}

// ---- baseline ----

/// `check_appArmorProfile.go` (`appArmorProfile_1_0`).
fn app_armor_profile(p: &Pod) -> Option<Violation> {
    let bad_type = |v: Option<&AppArmorProfile>| -> Option<String> {
        let t = &v?.type_;
        (!matches!(t.as_str(), "RuntimeDefault" | "Localhost")).then(|| t.clone())
    };
    let mut bad_values = BTreeSet::new();
    let pod_bad = match bad_type(p.pod_sc().and_then(|s| s.app_armor_profile.as_ref())) {
        Some(t) => {
            bad_values.insert(t);
            true
        }
        None => false,
    };
    let mut bad_containers = vec![];
    for c in p.containers() {
        if let Some(t) = bad_type(c.sc.and_then(|s| s.app_armor_profile.as_ref())) {
            bad_values.insert(t);
            bad_containers.push(c.name());
        }
    }
    let mut bad_annotations = vec![];
    for (k, v) in p.annotations() {
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
        {
            bad_annotations.push(format!("{k}={v:?}"));
        }
    }
    bad_annotations.sort();
    let mut values: Vec<String> = bad_values.into_iter().collect();
    let annotation_setter = (!bad_annotations.is_empty())
        .then(|| pluralize("annotation", "annotations", bad_annotations.len()).to_string());
    values.extend(bad_annotations);
    let s = setters(pod_bad, &bad_containers, annotation_setter);
    if s.is_empty() {
        return None;
    }
    Violation::new(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            s.join(" and "),
            join_quote(&values)
        ),
    )
}

const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities<'a>(c: &Container<'a>) -> Option<&'a Capabilities> {
    c.sc?.capabilities.as_ref()
}

/// `check_capabilities_baseline.go` (`capabilitiesBaseline_1_0`).
fn capabilities_baseline(p: &Pod) -> Option<Violation> {
    let mut bad_containers = vec![];
    let mut bad = BTreeSet::new();
    for c in p.containers() {
        let mut any = false;
        let add = capabilities(&c).and_then(|caps| caps.add.as_ref());
        for cap in add.into_iter().flatten() {
            if !BASELINE_CAPS.contains(&cap.as_str()) {
                any = true;
                bad.insert(cap.clone());
            }
        }
        if any {
            bad_containers.push(c.name());
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    Violation::new(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad_containers),
            join_quote(&bad)
        ),
    )
}

/// `check_hostNamespaces.go`.
fn host_namespaces(p: &Pod) -> Option<Violation> {
    let s = p.spec;
    let on: Vec<String> = [
        ("hostNetwork", s.host_network),
        ("hostPID", s.host_pid),
        ("hostIPC", s.host_ipc),
    ]
    .into_iter()
    .filter(|(_, v)| *v == Some(true))
    .map(|(f, _)| format!("{f}=true"))
    .collect();
    if on.is_empty() {
        return None;
    }
    Violation::new("host namespaces", on.join(", "))
}

/// `check_hostPathVolumes.go`.
fn host_path_volumes(p: &Pod) -> Option<Violation> {
    let names: Vec<String> = p
        .volumes()
        .iter()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.clone())
        .collect();
    if names.is_empty() {
        return None;
    }
    Violation::new(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

/// `check_hostPorts.go`.
fn host_ports(p: &Pod) -> Option<Violation> {
    let mut bad_containers = vec![];
    // a set of strings, listed sorted as strings (`sets.NewString().List()`)
    let mut ports = BTreeSet::new();
    for c in p.containers() {
        let mut any = false;
        for h in c.ports.iter().filter_map(|port| port.host_port) {
            if h != 0 {
                any = true;
                ports.insert(h.to_string());
            }
        }
        if any {
            bad_containers.push(c.name());
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    Violation::new(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

/// `check_privileged.go`.
fn privileged(p: &Pod) -> Option<Violation> {
    let bad: Vec<String> = p
        .containers()
        .into_iter()
        .filter(|c| c.sc.and_then(|s| s.privileged) == Some(true))
        .map(|c| c.name())
        .collect();
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

/// `check_procMount.go`.
fn proc_mount(p: &Pod) -> Option<Violation> {
    let mut bad = vec![];
    let mut values = BTreeSet::new();
    for c in p.containers() {
        if let Some(v) = c.sc.and_then(|s| s.proc_mount.as_deref()) {
            if v != "Default" {
                bad.push(c.name());
                values.insert(v.to_string());
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    Violation::new(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&values)
        ),
    )
}

/// `check_seLinuxOptions.go` (`seLinuxOptions1_0`, `…1_31` adds `container_engine_t`).
fn se_linux_options(p: &Pod, minor: u32) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |o: &SELinuxOptions| -> bool {
        let mut ok = true;
        let t = o.type_.as_deref().unwrap_or("");
        let allowed = matches!(
            t,
            "" | "container_t" | "container_init_t" | "container_kvm_t"
        ) || (minor >= 31 && t == "container_engine_t");
        if !allowed {
            types.insert(t.to_string());
            ok = false;
        }
        if !o.user.as_deref().unwrap_or("").is_empty() {
            set_user = true;
            ok = false;
        }
        if !o.role.as_deref().unwrap_or("").is_empty() {
            set_role = true;
            ok = false;
        }
        ok
    };
    let pod_bad = p
        .pod_sc()
        .and_then(|s| s.se_linux_options.as_ref())
        .is_some_and(|o| !valid(o));
    let mut bad = vec![];
    for c in p.containers() {
        if let Some(o) = c.sc.and_then(|s| s.se_linux_options.as_ref()) {
            if !valid(o) {
                bad.push(c.name());
            }
        }
    }
    let s = setters(pod_bad, &bad, None);
    if s.is_empty() {
        return None;
    }
    let mut data = vec![];
    if !types.is_empty() {
        let t: Vec<String> = types.into_iter().collect();
        data.push(format!(
            "{} {}",
            pluralize("type", "types", t.len()),
            join_quote(&t)
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    Violation::new(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            s.join(" and "),
            data.join("; ")
        ),
    )
}

fn pod_seccomp(p: &Pod) -> Option<String> {
    Some(p.pod_sc()?.seccomp_profile.as_ref()?.type_.clone())
}

fn container_seccomp(c: &Container) -> Option<String> {
    Some(c.sc?.seccomp_profile.as_ref()?.type_.clone())
}

/// `check_seccompProfile_baseline.go` (`seccompProfileBaseline_1_0` on the alpha annotations,
/// `…_1_19` on the fields).
fn seccomp_profile_baseline(p: &Pod, minor: u32) -> Option<Violation> {
    if minor < 19 {
        let mut bad = vec![];
        for (k, v) in p.annotations() {
            if (k == SECCOMP_POD_ANNOTATION || k.starts_with(SECCOMP_CONTAINER_ANNOTATION_PREFIX))
                && v == "unconfined"
            {
                bad.push(format!("{k}={v:?}"));
            }
        }
        bad.sort();
        if bad.is_empty() {
            return None;
        }
        return Violation::new(
            "seccompProfile",
            format!(
                "forbidden {} {}",
                pluralize("annotation", "annotations", bad.len()),
                bad.join(", ")
            ),
        );
    }
    let mut values = BTreeSet::new();
    let pod_bad = match pod_seccomp(p) {
        Some(t) if t == "Unconfined" => {
            values.insert(t);
            true
        }
        _ => false,
    };
    let mut bad = vec![];
    for c in p.containers() {
        if let Some(t) = container_seccomp(&c) {
            if t == "Unconfined" {
                values.insert(t);
                bad.push(c.name());
            }
        }
    }
    let s = setters(pod_bad, &bad, None);
    if s.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    Violation::new(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            s.join(" and "),
            join_quote(&values)
        ),
    )
}

/// `check_sysctls.go`: the allowed set grows with the version.
fn sysctls(p: &Pod, minor: u32) -> Option<Violation> {
    let mut allowed = vec![
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
    ];
    if minor >= 27 {
        allowed.push("net.ipv4.ip_local_reserved_ports");
    }
    if minor >= 29 {
        allowed.extend([
            "net.ipv4.tcp_keepalive_time",
            "net.ipv4.tcp_fin_timeout",
            "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes",
        ]);
    }
    if minor >= 32 {
        allowed.extend(["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]);
    }
    let bad: Vec<String> = p
        .pod_sc()
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| s.name.as_str())
        .filter(|n| !allowed.contains(n))
        .map(str::to_string)
        .collect();
    if bad.is_empty() {
        return None;
    }
    Violation::new("forbidden sysctls", bad.join(", "))
}

/// `check_windowsHostProcess.go`.
fn windows_host_process(p: &Pod) -> Option<Violation> {
    let hp =
        |w: Option<&WindowsSecurityContextOptions>| w.and_then(|w| w.host_process) == Some(true);
    let pod_bad = hp(p.pod_sc().and_then(|s| s.windows_options.as_ref()));
    let bad: Vec<String> = p
        .containers()
        .into_iter()
        .filter(|c| hp(c.sc.and_then(|s| s.windows_options.as_ref())))
        .map(|c| c.name())
        .collect();
    let s = setters(pod_bad, &bad, None);
    if s.is_empty() {
        return None;
    }
    Violation::new(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            s.join(" and ")
        ),
    )
}

// ---- restricted ----

/// `check_allowPrivilegeEscalation.go` (1.8; windows pods skipped from 1.25).
fn allow_privilege_escalation(p: &Pod, minor: u32) -> Option<Violation> {
    if minor >= 25 && p.is_windows() {
        return None;
    }
    let bad: Vec<String> = p
        .containers()
        .into_iter()
        .filter(|c| c.sc.and_then(|s| s.allow_privilege_escalation) != Some(false))
        .map(|c| c.name())
        .collect();
    if bad.is_empty() {
        return None;
    }
    Violation::new(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

/// `check_capabilities_restricted.go` (1.22; windows pods skipped from 1.25).
fn capabilities_restricted(p: &Pod, minor: u32) -> Option<Violation> {
    if minor >= 25 && p.is_windows() {
        return None;
    }
    let mut missing_drop = vec![];
    let mut adding = vec![];
    let mut forbidden = BTreeSet::new();
    for c in p.containers() {
        let Some(caps) = capabilities(&c) else {
            missing_drop.push(c.name());
            continue;
        };
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            missing_drop.push(c.name());
        }
        let mut any = false;
        for a in caps.add.iter().flatten() {
            if a != "NET_BIND_SERVICE" {
                any = true;
                forbidden.insert(a.clone());
            }
        }
        if any {
            adding.push(c.name());
        }
    }
    let mut details = vec![];
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let f: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&f)
        ));
    }
    if details.is_empty() {
        return None;
    }
    Violation::new("unrestricted capabilities", details.join("; "))
}

/// `check_restrictedVolumes.go`: a volume of an allowed type passes; the others are named by
/// the first restricted type set, in upstream's `switch` order, else `unknown`.
fn restricted_volumes(p: &Pod) -> Option<Violation> {
    let mut bad = vec![];
    let mut types = BTreeSet::new();
    for v in p.volumes() {
        let allowed = v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.image.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some();
        if allowed {
            continue;
        }
        bad.push(v.name.clone());
        let known = [
            ("hostPath", v.host_path.is_some()),
            ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
            ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
            ("gitRepo", v.git_repo.is_some()),
            ("nfs", v.nfs.is_some()),
            ("iscsi", v.iscsi.is_some()),
            ("glusterfs", v.glusterfs.is_some()),
            ("rbd", v.rbd.is_some()),
            ("flexVolume", v.flex_volume.is_some()),
            ("cinder", v.cinder.is_some()),
            ("cephfs", v.cephfs.is_some()),
            ("flocker", v.flocker.is_some()),
            ("fc", v.fc.is_some()),
            ("azureFile", v.azure_file.is_some()),
            ("vsphereVolume", v.vsphere_volume.is_some()),
            ("quobyte", v.quobyte.is_some()),
            ("azureDisk", v.azure_disk.is_some()),
            ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
            ("portworxVolume", v.portworx_volume.is_some()),
            ("scaleIO", v.scale_io.is_some()),
            ("storageos", v.storageos.is_some()),
        ];
        let t = known
            .iter()
            .find(|(_, set)| *set)
            .map_or("unknown", |(t, _)| *t);
        types.insert(t.to_string());
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    Violation::new(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

/// `check_runAsNonRoot.go`.
fn run_as_non_root(p: &Pod) -> Option<Violation> {
    let pod_v = p.pod_sc().and_then(|s| s.run_as_non_root);
    let pod_bad = pod_v == Some(false);
    let pod_ok = pod_v == Some(true);
    let mut explicit = vec![];
    let mut implicit = vec![];
    for c in p.containers() {
        match c.sc.and_then(|s| s.run_as_non_root) {
            Some(false) => explicit.push(c.name()),
            Some(true) => {}
            None => {
                if !pod_ok {
                    implicit.push(c.name())
                }
            }
        }
    }
    let s = setters(pod_bad, &explicit, None);
    if !s.is_empty() {
        return Violation::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                s.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return Violation::new(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

/// `check_runAsUser.go` (1.23).
fn run_as_user(p: &Pod) -> Option<Violation> {
    let pod_bad = p.pod_sc().and_then(|s| s.run_as_user) == Some(0);
    let bad: Vec<String> = p
        .containers()
        .into_iter()
        .filter(|c| c.sc.and_then(|s| s.run_as_user) == Some(0))
        .map(|c| c.name())
        .collect();
    let s = setters(pod_bad, &bad, None);
    if s.is_empty() {
        return None;
    }
    Violation::new(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", s.join(" and ")),
    )
}

/// `check_seccompProfile_restricted.go` (1.19; windows pods skipped from 1.25).
fn seccomp_profile_restricted(p: &Pod, minor: u32) -> Option<Violation> {
    if minor >= 25 && p.is_windows() {
        return None;
    }
    let valid = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut values = BTreeSet::new();
    let mut pod_bad = false;
    let mut pod_set = false;
    if let Some(t) = pod_seccomp(p) {
        if valid(&t) {
            pod_set = true;
        } else {
            pod_bad = true;
            values.insert(t);
        }
    }
    let mut explicit = vec![];
    let mut implicit = vec![];
    for c in p.containers() {
        match container_seccomp(&c) {
            Some(t) if !valid(&t) => {
                explicit.push(c.name());
                values.insert(t);
            }
            Some(_) => {}
            None => {
                if !pod_set {
                    implicit.push(c.name());
                }
            }
        }
    }
    let s = setters(pod_bad, &explicit, None);
    if !s.is_empty() {
        let values: Vec<String> = values.into_iter().collect();
        return Violation::new(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                s.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if !implicit.is_empty() {
        return Violation::new(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

/// Evaluates the pod (`meta`, `spec`) against `lv`: the failed checks, in upstream order
/// (baseline IDs sorted, then restricted IDs sorted; a restricted check that applies at this
/// version replaces the baseline check it overrides).
pub fn evaluate(lv: LevelVersion, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    if lv.level == Level::Privileged {
        return vec![];
    }
    let p = Pod { meta, spec };
    let minor = lv.version.minor();
    let restricted = lv.level == Level::Restricted;
    let caps_r = restricted && minor >= 22;
    let seccomp_r = restricted && minor >= 19;
    let mut out: Vec<Option<Violation>> = vec![
        app_armor_profile(&p),
        if caps_r {
            None
        } else {
            capabilities_baseline(&p)
        },
        host_namespaces(&p),
        if restricted {
            None
        } else {
            host_path_volumes(&p)
        },
        host_ports(&p),
        privileged(&p),
        proc_mount(&p),
        se_linux_options(&p, minor),
        if seccomp_r {
            None
        } else {
            seccomp_profile_baseline(&p, minor)
        },
        sysctls(&p, minor),
        windows_host_process(&p),
    ];
    if restricted {
        out.extend([
            if minor >= 8 {
                allow_privilege_escalation(&p, minor)
            } else {
                None
            },
            if caps_r {
                capabilities_restricted(&p, minor)
            } else {
                None
            },
            restricted_volumes(&p),
            run_as_non_root(&p),
            if minor >= 23 { run_as_user(&p) } else { None },
            if seccomp_r {
                seccomp_profile_restricted(&p, minor)
            } else {
                None
            },
        ]);
    }
    out.into_iter().flatten().collect()
}

/// `corev1.SeccompPodAnnotationKey`.
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// `corev1.SeccompContainerAnnotationKeyPrefix`.
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn annotation<'a>(m: &'a ObjectMeta, key: &str) -> &'a str {
    m.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

/// The seccomp annotations of a pod as stored (the pod's and its containers'), in order.
pub fn seccomp_annotations(pod: &Value) -> Vec<(&str, &Value)> {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            *k == SECCOMP_POD_ANNOTATION || k.starts_with(SECCOMP_CONTAINER_ANNOTATION_PREFIX)
        })
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

/// `isSignificantPodUpdate` (pod-security-admission `admission/admission.go`): only these pod
/// updates are evaluated: a changed number of containers, init containers or ephemeral
/// containers, a changed pod seccomp annotation, a (init) container whose image or seccomp
/// annotation changed (by position), an ephemeral container added or whose image or seccomp
/// annotation changed (by name). `n`/`o` are the new and old pods' metadata and spec (a pod
/// without a spec has an empty one).
pub fn significant_pod_update(
    n_meta: &ObjectMeta,
    n: &PodSpec,
    o_meta: &ObjectMeta,
    o: &PodSpec,
) -> bool {
    let init = |s: &PodSpec| s.init_containers.as_deref().unwrap_or_default().len();
    let eph = |s: &PodSpec| s.ephemeral_containers.as_deref().unwrap_or_default().len();
    if eph(n) != eph(o)
        || annotation(n_meta, SECCOMP_POD_ANNOTATION) != annotation(o_meta, SECCOMP_POD_ANNOTATION)
        || init(n) != init(o)
        || n.containers.len() != o.containers.len()
    {
        return true;
    }
    // isSignificantContainerUpdate
    let changed = |name: &str, image: &Option<String>, old_image: &Option<String>| {
        let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{name}");
        image.as_deref().unwrap_or("") != old_image.as_deref().unwrap_or("")
            || annotation(n_meta, &key) != annotation(o_meta, &key)
    };
    let pairs = n
        .init_containers
        .iter()
        .flatten()
        .zip(o.init_containers.iter().flatten())
        .chain(n.containers.iter().zip(&o.containers));
    for (c, oc) in pairs {
        if changed(&c.name, &c.image, &oc.image) {
            return true;
        }
    }
    let old_eph = o.ephemeral_containers.as_deref().unwrap_or_default();
    n.ephemeral_containers.iter().flatten().any(|c| {
        match old_eph.iter().find(|oc| oc.name == c.name) {
            // an ephemeral container added
            None => true,
            Some(oc) => changed(&c.name, &c.image, &oc.image),
        }
    })
}

/// The result of admitting one pod or pod template.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Enforce refused it: the message after `violates PodSecurity`.
    pub denied: Option<String>,
    /// `Warning` header texts.
    pub warnings: Vec<String>,
    /// The audit annotation text, when the audit level is violated.
    pub audit: Option<String>,
}

/// `EvaluatePod` / `EvaluatePodController`: `enforce` is false for workload templates (warn and
/// audit only).
pub fn admit(policy: &Policy, meta: &ObjectMeta, spec: &PodSpec, enforce: bool) -> Decision {
    let mut d = Decision::default();
    if enforce && policy.enforce.level != Level::Privileged {
        let v = evaluate(policy.enforce, meta, spec);
        if !v.is_empty() {
            d.denied = Some(format!(
                "violates PodSecurity \"{}\": {}",
                policy.enforce,
                describe(&v)
            ));
        }
    }
    if policy.audit.level != Level::Privileged {
        let v = evaluate(policy.audit, meta, spec);
        if !v.is_empty() {
            d.audit = Some(format!(
                "would violate PodSecurity \"{}\": {}",
                policy.audit,
                describe(&v)
            ));
        }
    }
    if d.denied.is_none() && policy.warn.level != Level::Privileged {
        let v = evaluate(policy.warn, meta, spec);
        if !v.is_empty() {
            d.warnings.push(format!(
                "would violate PodSecurity \"{}\": {}",
                policy.warn,
                describe(&v)
            ));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The checks on a pod written as JSON, decoded as the server decodes a body.
    fn evaluate(lv: LevelVersion, meta: &Value, spec: &Value) -> Vec<Violation> {
        let meta: ObjectMeta = serde_json::from_value(meta.clone()).expect("metadata");
        let spec: PodSpec = serde_json::from_value(spec.clone()).expect("spec");
        super::evaluate(lv, &meta, &spec)
    }

    fn significant_pod_update(new: &Value, old: &Value) -> bool {
        let parts = |p: &Value| -> (ObjectMeta, PodSpec) {
            let pod: core::Pod = serde_json::from_value(p.clone()).expect("pod");
            (pod.metadata, pod.spec.unwrap_or_default())
        };
        let ((nm, ns), (om, os)) = (parts(new), parts(old));
        super::significant_pod_update(&nm, &ns, &om, &os)
    }

    fn lv(level: Level) -> LevelVersion {
        LevelVersion {
            level,
            version: Version::Latest,
        }
    }

    #[test]
    fn restricted_message_matches_upstream_example() {
        let spec = json!({"containers": [{"name": "c", "image": "x"}]});
        let v = evaluate(lv(Level::Restricted), &json!({}), &spec);
        assert_eq!(
            format!("violates PodSecurity \"restricted:latest\": {}", describe(&v)),
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let ok = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        });
        assert!(evaluate(lv(Level::Restricted), &json!({}), &ok).is_empty());
    }

    #[test]
    fn baseline_checks_in_sorted_order() {
        let spec = json!({
            "hostNetwork": true, "hostPID": true,
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                                "seLinuxOptions": {"type": "foo", "user": "u"}},
            "initContainers": [{"name": "i", "securityContext": {"privileged": true}}],
            "containers": [
                {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 443, "hostPort": 8443}]},
                {"name": "b", "securityContext": {"procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"}}},
            ],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}],
        });
        let v = evaluate(lv(Level::Baseline), &json!({}), &spec);
        assert_eq!(
            describe(&v),
            "non-default capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), host namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume \"h\"), hostPort (container \"a\" uses hostPorts 8080, 8443), privileged (containers \"i\", \"a\" must not set securityContext.privileged=true), procMount (container \"b\" must not set securityContext.procMount to \"Unmasked\"), seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type \"foo\"; user may not be set), seccompProfile (container \"b\" must not set securityContext.seccompProfile.type to \"Unconfined\"), forbidden sysctls (kernel.msgmax)"
        );
        // restricted replaces hostPath volumes, capabilities and seccomp with its own checks
        let r = describe(&evaluate(lv(Level::Restricted), &json!({}), &spec));
        assert!(!r.contains("hostPath volumes"), "{r}");
        assert!(
            r.contains(
                "restricted volume types (volume \"h\" uses restricted volume type \"hostPath\")"
            ),
            "{r}"
        );
        assert!(r.contains("container \"a\" must not include \"CHOWN\", \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add"), "{r}");
        assert!(!r.contains("non-default capabilities"), "{r}");
    }

    #[test]
    fn versions_select_checks() {
        let spec = json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}, "sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]},
                          "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]});
        let at = |m: u32| {
            describe(&evaluate(
                LevelVersion {
                    level: Level::Restricted,
                    version: Version::Minor(m),
                },
                &json!({}),
                &spec,
            ))
        };
        assert!(at(22).contains("forbidden sysctls"));
        assert!(!at(22).contains("runAsUser=0"));
        assert!(at(23).contains("runAsUser=0 (pod must not set runAsUser=0)"));
        assert!(!at(32).contains("sysctls"));
        assert_eq!(at(99), at(33), "newer than the newest check is the newest");
    }

    #[test]
    fn labels_parse_and_fail_closed() {
        let labels = json!({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.30"});
        let (p, errs) = policy_to_evaluate(labels.as_object(), Policy::defaults(Level::Baseline));
        assert!(errs.is_empty());
        assert_eq!(p.enforce.to_string(), "restricted:v1.30");
        assert_eq!(
            p.warn.to_string(),
            "restricted:v1.30",
            "warn follows a stricter enforce"
        );
        let labels = json!({"pod-security.kubernetes.io/enforce": "strict", "pod-security.kubernetes.io/warn": "nope", "pod-security.kubernetes.io/audit-version": "1.2"});
        let (p, errs) = policy_to_evaluate(labels.as_object(), Policy::defaults(Level::Baseline));
        assert_eq!(p.enforce.level, Level::Restricted);
        assert_eq!(p.warn.level, Level::Privileged);
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].2, "must be one of privileged, baseline, restricted");
        assert_eq!(errs[1].2, "must be \"latest\" or \"v1.x\"");
        for bad in ["v1.01", "v2.1", "1.2", "v1.", "latest "] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn significant_updates() {
        let a = json!({"spec": {"containers": [{"name": "c", "image": "x"}]}, "metadata": {"labels": {}}});
        let mut b = a.clone();
        b["metadata"]["labels"]["k"] = json!("v");
        assert!(!significant_pod_update(&b, &a));
        b["spec"]["containers"][0]["image"] = json!("y");
        assert!(significant_pod_update(&b, &a));
        let mut e = a.clone();
        e["spec"]["ephemeralContainers"] = json!([{"name": "d", "image": "busybox"}]);
        assert!(significant_pod_update(&e, &a));
        // an ephemeral container's image by name
        let mut e2 = e.clone();
        assert!(!significant_pod_update(&e2, &e));
        e2["spec"]["ephemeralContainers"][0]["image"] = json!("busybox:2");
        assert!(significant_pod_update(&e2, &e));
    }

    /// The seccomp annotations are significant (`isSignificantPodUpdate`,
    /// `isSignificantContainerUpdate`): the pod's, and a container's by its name; other
    /// annotations are not.
    #[test]
    fn seccomp_annotations_are_significant_updates() {
        let a = json!({"metadata": {"annotations": {"team": "a"}},
            "spec": {"containers": [{"name": "c", "image": "x"}],
                "initContainers": [{"name": "i", "image": "x"}]}});
        let with = |k: &str, v: &str| {
            let mut b = a.clone();
            b["metadata"]["annotations"][k] = json!(v);
            b
        };
        assert!(!significant_pod_update(&with("team", "b"), &a));
        assert!(significant_pod_update(
            &with("seccomp.security.alpha.kubernetes.io/pod", "unconfined"),
            &a
        ));
        assert!(significant_pod_update(
            &a,
            &with(
                "seccomp.security.alpha.kubernetes.io/pod",
                "runtime/default"
            )
        ));
        for c in ["c", "i"] {
            let key = format!("container.seccomp.security.alpha.kubernetes.io/{c}");
            assert!(significant_pod_update(&with(&key, "unconfined"), &a), "{c}");
        }
        // an annotation for a container the pod does not have changes nothing
        assert!(!significant_pod_update(
            &with(
                "container.seccomp.security.alpha.kubernetes.io/other",
                "unconfined"
            ),
            &a
        ));
    }

    #[test]
    fn ephemeral_containers_are_checked_after_the_others() {
        let spec = json!({
            "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}],
            "initContainers": [{"name": "i", "image": "x"}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox",
                "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_PTRACE"]}},
                "ports": [{"containerPort": 1, "hostPort": 9000}]}],
        });
        assert_eq!(
            describe(&evaluate(lv(Level::Baseline), &json!({}), &spec)),
            "non-default capabilities (container \"dbg\" must not include \"SYS_PTRACE\" in securityContext.capabilities.add), hostPort (container \"dbg\" uses hostPort 9000), privileged (containers \"c\", \"dbg\" must not set securityContext.privileged=true)"
        );
        // restricted: the order of visits is init, regular, ephemeral
        let r = describe(&evaluate(lv(Level::Restricted), &json!({}), &spec));
        assert!(r.contains("containers \"i\", \"c\", \"dbg\" must set securityContext.allowPrivilegeEscalation=false"), "{r}");
    }

    #[test]
    fn a_pod_without_a_spec_has_no_images() {
        let none = json!({"metadata": {"name": "p"}});
        let empty = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        assert!(!significant_pod_update(&none, &empty));
        let one = json!({"spec": {"containers": [{"name": "c", "image": "x"}]}});
        assert!(significant_pod_update(&one, &none));
        assert!(significant_pod_update(&none, &one));
        // a pod with no spec passes every check (there is nothing to check)
        assert!(super::evaluate(
            lv(Level::Restricted),
            &ObjectMeta::default(),
            &PodSpec::default()
        )
        .is_empty());
    }
}
