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

use std::collections::BTreeSet;

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

/// The pod spec and metadata a check looks at.
struct Pod<'a> {
    meta: &'a Value,
    spec: &'a Value,
}

impl<'a> Pod<'a> {
    /// init containers, containers, ephemeral containers (`visitContainers`).
    fn containers(&self) -> Vec<&'a Value> {
        let mut out = vec![];
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            if let Some(cs) = self.spec.get(list).and_then(Value::as_array) {
                out.extend(cs.iter());
            }
        }
        out
    }

    fn pod_sc(&self, field: &str) -> Option<&'a Value> {
        self.spec.get("securityContext").and_then(|s| s.get(field))
    }

    fn is_windows(&self) -> bool {
        self.spec.pointer("/os/name").and_then(Value::as_str) == Some("windows")
    }

    fn annotations(&self) -> Option<&'a Map<String, Value>> {
        self.meta.get("annotations").and_then(Value::as_object)
    }
}

fn name_of(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn csc<'a>(c: &'a Value, field: &str) -> Option<&'a Value> {
    c.get("securityContext").and_then(|s| s.get(field))
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
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
    let bad_type = |v: Option<&Value>| -> Option<String> {
        let t = v?.get("type")?.as_str()?;
        (!matches!(t, "RuntimeDefault" | "Localhost")).then(|| t.to_string())
    };
    let mut bad_values = BTreeSet::new();
    let pod_bad = match bad_type(p.pod_sc("appArmorProfile")) {
        Some(t) => {
            bad_values.insert(t);
            true
        }
        None => false,
    };
    let mut bad_containers = vec![];
    for c in p.containers() {
        if let Some(t) = bad_type(csc(c, "appArmorProfile")) {
            bad_values.insert(t);
            bad_containers.push(name_of(c));
        }
    }
    let mut bad_annotations = vec![];
    if let Some(a) = p.annotations() {
        for (k, v) in a {
            let v = v.as_str().unwrap_or("");
            if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
            {
                bad_annotations.push(format!("{k}={v:?}"));
            }
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

/// `check_capabilities_baseline.go` (`capabilitiesBaseline_1_0`).
fn capabilities_baseline(p: &Pod) -> Option<Violation> {
    let mut bad_containers = vec![];
    let mut bad = BTreeSet::new();
    for c in p.containers() {
        let mut any = false;
        for cap in str_list(csc(c, "capabilities").and_then(|x| x.get("add"))) {
            if !BASELINE_CAPS.contains(&cap.as_str()) {
                any = true;
                bad.insert(cap);
            }
        }
        if any {
            bad_containers.push(name_of(c));
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
    let mut on = vec![];
    for f in ["hostNetwork", "hostPID", "hostIPC"] {
        if p.spec.get(f).and_then(Value::as_bool) == Some(true) {
            on.push(format!("{f}=true"));
        }
    }
    if on.is_empty() {
        return None;
    }
    Violation::new("host namespaces", on.join(", "))
}

/// `check_hostPathVolumes.go`.
fn host_path_volumes(p: &Pod) -> Option<Violation> {
    let names: Vec<String> = p
        .spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
                .map(name_of)
                .collect()
        })
        .unwrap_or_default();
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
        for port in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(h) = port
                .get("hostPort")
                .and_then(Value::as_i64)
                .filter(|h| *h != 0)
            {
                any = true;
                ports.insert(h.to_string());
            }
        }
        if any {
            bad_containers.push(name_of(c));
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
        .filter(|c| csc(c, "privileged").and_then(Value::as_bool) == Some(true))
        .map(name_of)
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
        if let Some(v) = csc(c, "procMount").and_then(Value::as_str) {
            if v != "Default" {
                bad.push(name_of(c));
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
    let mut valid = |o: &Value| -> bool {
        let mut ok = true;
        let t = o.get("type").and_then(Value::as_str).unwrap_or("");
        let allowed = matches!(
            t,
            "" | "container_t" | "container_init_t" | "container_kvm_t"
        ) || (minor >= 31 && t == "container_engine_t");
        if !allowed {
            types.insert(t.to_string());
            ok = false;
        }
        if !o
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            set_user = true;
            ok = false;
        }
        if !o
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            set_role = true;
            ok = false;
        }
        ok
    };
    let pod_bad = p.pod_sc("seLinuxOptions").is_some_and(|o| !valid(o));
    let mut bad = vec![];
    for c in p.containers() {
        if let Some(o) = csc(c, "seLinuxOptions") {
            if !valid(o) {
                bad.push(name_of(c));
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

fn seccomp_type(v: Option<&Value>) -> Option<String> {
    v?.get("type")?.as_str().map(str::to_string)
}

/// `check_seccompProfile_baseline.go` (`seccompProfileBaseline_1_0` on the alpha annotations,
/// `…_1_19` on the fields).
fn seccomp_profile_baseline(p: &Pod, minor: u32) -> Option<Violation> {
    if minor < 19 {
        let mut bad = vec![];
        if let Some(a) = p.annotations() {
            for (k, v) in a {
                let v = v.as_str().unwrap_or("");
                if (k == "seccomp.security.alpha.kubernetes.io/pod"
                    || k.starts_with("container.seccomp.security.alpha.kubernetes.io/"))
                    && v == "unconfined"
                {
                    bad.push(format!("{k}={v:?}"));
                }
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
    let pod_bad = match seccomp_type(p.pod_sc("seccompProfile")) {
        Some(t) if t == "Unconfined" => {
            values.insert(t);
            true
        }
        _ => false,
    };
    let mut bad = vec![];
    for c in p.containers() {
        if let Some(t) = seccomp_type(csc(c, "seccompProfile")) {
            if t == "Unconfined" {
                values.insert(t);
                bad.push(name_of(c));
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
        .pod_sc("sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
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
    let hp = |v: Option<&Value>| {
        v.and_then(|w| w.get("hostProcess"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let pod_bad = hp(p.pod_sc("windowsOptions"));
    let bad: Vec<String> = p
        .containers()
        .into_iter()
        .filter(|c| hp(csc(c, "windowsOptions")))
        .map(name_of)
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
        .filter(|c| csc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(name_of)
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
        let caps = csc(c, "capabilities").filter(|v| !v.is_null());
        let Some(caps) = caps else {
            missing_drop.push(name_of(c));
            continue;
        };
        if !str_list(caps.get("drop")).iter().any(|d| d == "ALL") {
            missing_drop.push(name_of(c));
        }
        let mut any = false;
        for a in str_list(caps.get("add")) {
            if a != "NET_BIND_SERVICE" {
                any = true;
                forbidden.insert(a);
            }
        }
        if any {
            adding.push(name_of(c));
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

/// `check_restrictedVolumes.go`.
fn restricted_volumes(p: &Pod) -> Option<Violation> {
    const ALLOWED: &[&str] = &[
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    const KNOWN: &[(&str, &str)] = &[
        ("hostPath", "hostPath"),
        ("gcePersistentDisk", "gcePersistentDisk"),
        ("awsElasticBlockStore", "awsElasticBlockStore"),
        ("gitRepo", "gitRepo"),
        ("nfs", "nfs"),
        ("iscsi", "iscsi"),
        ("glusterfs", "glusterfs"),
        ("rbd", "rbd"),
        ("flexVolume", "flexVolume"),
        ("cinder", "cinder"),
        ("cephfs", "cephfs"),
        ("flocker", "flocker"),
        ("fc", "fc"),
        ("azureFile", "azureFile"),
        ("vsphereVolume", "vsphereVolume"),
        ("quobyte", "quobyte"),
        ("azureDisk", "azureDisk"),
        ("photonPersistentDisk", "photonPersistentDisk"),
        ("portworxVolume", "portworxVolume"),
        ("scaleIO", "scaleIO"),
        ("storageos", "storageos"),
    ];
    let mut bad = vec![];
    let mut types = BTreeSet::new();
    for v in p
        .spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let set = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
        if ALLOWED.iter().any(|k| set(k)) {
            continue;
        }
        bad.push(name_of(v));
        let t = KNOWN
            .iter()
            .find(|(k, _)| set(k))
            .map(|(_, t)| *t)
            .unwrap_or("unknown");
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
    let pod_v = p.pod_sc("runAsNonRoot").and_then(Value::as_bool);
    let pod_bad = pod_v == Some(false);
    let pod_ok = pod_v == Some(true);
    let mut explicit = vec![];
    let mut implicit = vec![];
    for c in p.containers() {
        match csc(c, "runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicit.push(name_of(c)),
            Some(true) => {}
            None => {
                if !pod_ok {
                    implicit.push(name_of(c))
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
    let pod_bad = p.pod_sc("runAsUser").and_then(Value::as_i64) == Some(0);
    let bad: Vec<String> = p
        .containers()
        .into_iter()
        .filter(|c| csc(c, "runAsUser").and_then(Value::as_i64) == Some(0))
        .map(name_of)
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
    if let Some(t) = seccomp_type(p.pod_sc("seccompProfile")) {
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
        match seccomp_type(csc(c, "seccompProfile")) {
            Some(t) if !valid(&t) => {
                explicit.push(name_of(c));
                values.insert(t);
            }
            Some(_) => {}
            None => {
                if !pod_set {
                    implicit.push(name_of(c));
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

/// Evaluates the pod (`metadata`, `spec`) against `lv`: the failed checks, in upstream order
/// (baseline IDs sorted, then restricted IDs sorted; a restricted check that applies at this
/// version replaces the baseline check it overrides).
pub fn evaluate(lv: LevelVersion, meta: &Value, spec: &Value) -> Vec<Violation> {
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

/// `isSignificantPodUpdate`: only these pod updates are evaluated.
pub fn significant_pod_update(new: &Value, old: &Value) -> bool {
    let images = |v: &Value, list: &str| -> Vec<Option<String>> {
        v.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for list in ["containers", "initContainers"] {
        if images(new, list) != images(old, list) {
            return true;
        }
    }
    // an added ephemeral container, or one whose image changed
    let eph = |v: &Value| -> Vec<(String, Option<String>)> {
        v.pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            name_of(c),
                            c.get("image").and_then(Value::as_str).map(str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_e = eph(old);
    eph(new).iter().any(|e| !old_e.contains(e))
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
/// audit only). `name` and `plural` shape the denial message.
pub fn admit(policy: &Policy, meta: &Value, spec: &Value, enforce: bool) -> Decision {
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
    }
}
