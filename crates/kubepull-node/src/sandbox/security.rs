//! The kubelet's side of a container's isolation: effective security context, `runAsNonRoot`,
//! sysctl admission, QoS, resources. Pure functions of the pod (and the image user).

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubepull_core::qos::{pod_qos_class, quantity_milli};

use super::{ContainerSecurity, PodSandbox, Resources, Seccomp};

/// `MaxInt32`: the largest uid/gid a container may run as.
pub const MAX_USER_ID: i64 = 2_147_483_647;

/// `format.Pod`: `name_namespace(uid)`.
pub fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// The effective security context of a container, as the kubelet sends it to the runtime
/// (k8s `pkg/securitycontext/util.go` `DetermineEffectiveSecurityContext`,
/// `kuberuntime/security_context.go` `determineEffectiveSecurityContext`, `getSeccompProfile`).
/// The container's own fields win; the pod supplies runAsUser, runAsGroup, runAsNonRoot and
/// seccompProfile when the container leaves them unset, and fsGroup and supplementalGroups.
///
/// Seccomp: the node runs as a kubelet with `seccompDefault: true`, so a container that sets no
/// profile gets RuntimeDefault. What this node cannot honour is an error (the text becomes the
/// container's `CreateContainerConfigError`), never silently dropped.
pub fn effective(pod: &Pod, c: &Container) -> Result<ContainerSecurity, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let who = format!("container {:?}", c.name);
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    for (field, v) in [("runAsUser", run_as_user), ("runAsGroup", run_as_group)] {
        if let Some(v) = v {
            if !(0..=MAX_USER_ID).contains(&v) {
                return Err(format!(
                    "{who}: securityContext.{field} {v} is out of range: must be between 0 and {MAX_USER_ID}, inclusive"
                ));
            }
        }
    }
    // kubelet: fsGroup first, then volume groups (none here), then supplementalGroups
    let mut supplemental_groups = vec![];
    for g in psc
        .fs_group
        .into_iter()
        .chain(psc.supplemental_groups.clone().unwrap_or_default())
    {
        if !(0..=MAX_USER_ID).contains(&g) {
            return Err(format!(
                "{who}: securityContext group {g} is out of range: must be between 0 and {MAX_USER_ID}, inclusive"
            ));
        }
        if !supplemental_groups.contains(&g) {
            supplemental_groups.push(g);
        }
    }
    if let Some(p) = psc.supplemental_groups_policy.as_deref() {
        if p != "Merge" {
            return Err(format!(
                "unsupported supplementalGroupsPolicy: {p} (this node supports Merge)"
            ));
        }
    }
    let profile = sc.seccomp_profile.clone().or(psc.seccomp_profile.clone());
    let seccomp = match profile.as_ref().map(|p| p.type_.as_str()) {
        None | Some("RuntimeDefault") => Seccomp::RuntimeDefault,
        Some("Unconfined") => Seccomp::Unconfined,
        Some("Localhost") => {
            return Err(format!(
                "{who}: seccompProfile type Localhost ({:?}) is not supported on this node: use RuntimeDefault or Unconfined",
                profile
                    .and_then(|p| p.localhost_profile)
                    .unwrap_or_default()
            ))
        }
        Some(other) => return Err(format!("{who}: unknown seccompProfile type {other:?}")),
    };
    let apparmor = sc
        .app_armor_profile
        .clone()
        .or(psc.app_armor_profile.clone());
    if let Some(p) = apparmor {
        if p.type_ != "Unconfined" && !apparmor_enabled() {
            // containerd generateApparmorSpecOpts
            return Err(format!(
                "{who}: apparmor is not supported on this node (appArmorProfile type {:?}); use Unconfined",
                p.type_
            ));
        }
        if p.type_ != "Unconfined" {
            return Err(format!(
                "{who}: appArmorProfile type {:?} is not supported on this node; use Unconfined",
                p.type_
            ));
        }
    }
    if sc.se_linux_options.is_some() || psc.se_linux_options.is_some() {
        return Err(format!(
            "{who}: seLinuxOptions are not supported on this node (SELinux is not enabled)"
        ));
    }
    if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true)
        || psc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true)
    {
        return Err(format!(
            "{who}: windowsOptions.hostProcess is not supported on a Linux node"
        ));
    }
    if spec.host_users == Some(false) {
        return Err("hostUsers: false (user namespaces) is not supported on this node".into());
    }
    let unmasked_proc = match sc.proc_mount.as_deref() {
        None | Some("Default") => false,
        Some("Unmasked") => true,
        Some(other) => return Err(format!("{who}: unknown procMount {other:?}")),
    };
    let caps = sc.capabilities.clone().unwrap_or_default();
    Ok(ContainerSecurity {
        run_as_user,
        run_as_group,
        supplemental_groups,
        cap_add: caps.add.unwrap_or_default(),
        cap_drop: caps.drop.unwrap_or_default(),
        privileged: sc.privileged.unwrap_or(false),
        read_only_root: sc.read_only_root_filesystem.unwrap_or(false),
        // securitycontext.AddNoNewPrivileges: only an explicit false
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        unmasked_proc,
        seccomp,
        resources: Resources::default(),
    })
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

/// The image user as the kubelet sees it (containerd `getUserFromImage` + kubelet
/// `getImageUser`): the part before `:`; a number is a uid, anything else a user name; an image
/// without `User` runs as uid 0.
pub fn image_user(user: &str) -> (Option<i64>, String) {
    if user.is_empty() {
        return (Some(0), String::new());
    }
    let u = user.split(':').next().unwrap_or("");
    match u.parse::<i64>() {
        Ok(n) => (Some(n), String::new()),
        Err(_) => (None, u.to_string()),
    }
}

/// `verifyRunAsNonRoot` (k8s `pkg/kubelet/kuberuntime/security_context_others.go`), with the
/// kubelet's exact messages (`(pod: …, container: …)` suffix).
pub fn verify_run_as_non_root(
    pod: &Pod,
    c: &Container,
    image_user_field: &str,
) -> Result<(), String> {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    if sc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
        return Ok(());
    }
    let suffix = format!("(pod: {:?}, container: {})", format_pod(pod), c.name);
    if let Some(u) = sc.run_as_user.or(psc.run_as_user) {
        if u == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy {suffix}"
            ));
        }
        return Ok(());
    }
    let (uid, name) = image_user(image_user_field);
    match uid {
        None if !name.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root {suffix}"
        )),
        Some(0) => Err(format!(
            "container has runAsNonRoot and image will run as root {suffix}"
        )),
        Some(u) if !(1..=MAX_USER_ID).contains(&u) => Err(format!(
            "container has runAsNonRoot and image has an invalid user id ({u}). (Must be 1-({MAX_USER_ID})): must be between 0 and {MAX_USER_ID}, inclusive {suffix}"
        )),
        _ => Ok(()),
    }
}

/// The kubelet's safe sysctls (k8s `pkg/kubelet/sysctl/safe_sysctls.go`), with the namespace
/// each belongs to.
pub const SAFE_SYSCTLS: &[(&str, &str)] = &[
    ("kernel.shm_rmid_forced", "ipc"),
    ("net.ipv4.ip_local_port_range", "net"),
    ("net.ipv4.tcp_syncookies", "net"),
    ("net.ipv4.ping_group_range", "net"),
    ("net.ipv4.ip_unprivileged_port_start", "net"),
    ("net.ipv4.ip_local_reserved_ports", "net"),
    ("net.ipv4.tcp_keepalive_time", "net"),
    ("net.ipv4.tcp_fin_timeout", "net"),
    ("net.ipv4.tcp_keepalive_intvl", "net"),
    ("net.ipv4.tcp_keepalive_probes", "net"),
    ("net.ipv4.tcp_rmem", "net"),
    ("net.ipv4.tcp_wmem", "net"),
];

/// `SysctlForbidden`: the pod status reason when sysctl admission rejects a pod.
pub const SYSCTL_FORBIDDEN: &str = "SysctlForbidden";

/// Sysctl admission (k8s `pkg/kubelet/sysctl/allowlist.go` `validateSysctl`/`Admit`): the error
/// is the pod's status message (`forbidden sysctl: …`). The node allows no unsafe sysctls.
pub fn admit_sysctls(spec: &PodSpec) -> Result<(), String> {
    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.clone())
        .unwrap_or_default();
    for s in sysctls {
        // the kubelet accepts the slash form too (net/ipv4/...)
        let name = s.name.replace('/', ".");
        let err = match SAFE_SYSCTLS.iter().find(|(n, _)| *n == name) {
            Some((_, "net")) if spec.host_network == Some(true) => {
                format!("{:?} not allowed with host net enabled", s.name)
            }
            Some((_, "ipc")) if spec.host_ipc == Some(true) => {
                format!("{:?} not allowed with host ipc enabled", s.name)
            }
            Some(_) => continue,
            None => format!("{:?} not allowlisted", s.name),
        };
        return Err(format!("forbidden sysctl: {err}"));
    }
    Ok(())
}

fn get(r: Option<&ResourceRequirements>, limits: bool, name: &str) -> i128 {
    r.and_then(|r| {
        if limits {
            r.limits.as_ref()
        } else {
            r.requests.as_ref()
        }
    })
    .and_then(|m| m.get(name))
    .and_then(|q| quantity_milli(&q.0))
    .unwrap_or(0)
}

/// A container's (request, limit) for `name` in milli-units, with API defaulting applied (a
/// missing request takes the limit).
fn req_limit(c: &Container, name: &str) -> (i128, i128) {
    let r = c.resources.as_ref();
    let limit = get(r, true, name);
    let mut req = get(r, false, name);
    let has_req = r
        .and_then(|r| r.requests.as_ref())
        .is_some_and(|m| m.contains_key(name));
    if !has_req {
        req = limit;
    }
    (req, limit)
}

/// `status.qosClass`: [`kubepull_core::qos::pod_qos_class`] over the pod's containers and init
/// containers, the class the API server stores at creation.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    fn list(
        l: Option<&std::collections::BTreeMap<String, Quantity>>,
    ) -> impl Iterator<Item = (&str, &str)> {
        l.into_iter()
            .flatten()
            .map(|(n, q)| (n.as_str(), q.0.as_str()))
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    pod_qos_class(containers.map(|c| {
        let r = c.resources.as_ref();
        (
            list(r.and_then(|r| r.requests.as_ref())),
            list(r.and_then(|r| r.limits.as_ref())),
        )
    }))
    .as_str()
}

/// The pod's QoS class as the kubelet reads it (k8s `pkg/apis/core/v1/helper/qos` `GetPodQOS`):
/// the `status.qosClass` the API server stored at creation, computed from the spec only when
/// the status has none.
///
/// A stored `BestEffort` that the spec does not make is taken for what builds before the class
/// was computed at creation stored for every pod: the computed class is used (and reported,
/// which the API server accepts as that repair).
pub fn pod_qos(pod: &Pod) -> String {
    let computed = || qos_class(pod.spec.as_ref().unwrap_or(&PodSpec::default())).to_string();
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("BestEffort") => computed(),
        Some(q) if !q.is_empty() => q.to_string(),
        _ => computed(),
    }
}

/// `QuotaPeriod`, µs.
pub const QUOTA_PERIOD: u64 = 100_000;

/// `MilliCPUToShares` (k8s `pkg/kubelet/cm/helpers_linux.go`).
pub fn milli_cpu_to_shares(milli: i128) -> u64 {
    if milli == 0 {
        return 2;
    }
    (milli.saturating_mul(1024) / 1000).clamp(2, 262_144) as u64
}

/// A container's cgroup resources (k8s `kuberuntime_container_linux.go`
/// `calculateLinuxResources`) and `oom_score_adj` (`pkg/kubelet/qos/policy.go`
/// `GetContainerOOMScoreAdjust`; `mem_capacity` is the node's memory in bytes).
pub fn resources(c: &Container, qos: &str, mem_capacity: i128) -> Resources {
    let (cpu_req, cpu_limit) = req_limit(c, "cpu");
    let (mem_req, mem_limit) = req_limit(c, "memory");
    let cpu_quota = if cpu_limit == 0 {
        0
    } else {
        (cpu_limit.saturating_mul(QUOTA_PERIOD as i128) / 1000).clamp(1000, i64::MAX as i128) as i64
    };
    let oom_score_adj = match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let req_bytes = mem_req / 1000;
            let adj = if mem_capacity > 0 {
                1000 - (1000 * req_bytes) / mem_capacity
            } else {
                1000
            };
            let adj = adj.max(3) as i32;
            if adj >= 1000 {
                999
            } else {
                adj
            }
        }
    };
    Resources {
        cpu_shares: milli_cpu_to_shares(if cpu_req == 0 { cpu_limit } else { cpu_req }),
        cpu_quota,
        cpu_period: QUOTA_PERIOD,
        memory_limit: (mem_limit / 1000) as i64,
        oom_score_adj,
    }
}

/// The pod cgroup's values (k8s `pkg/kubelet/cm/helpers_linux.go` `ResourceConfigForPod`):
/// shares from the summed CPU requests; a CPU quota only when every container has a CPU limit
/// and a memory limit only when every container has a memory limit (always the case for
/// Guaranteed pods); BestEffort pods get shares 2 only. Init containers count through the
/// kubelet's `max(largest init container, sum of containers)`.
pub fn pod_resources(spec: &PodSpec, qos: &str) -> super::PodResources {
    let sum = |name: &str, limits: bool| -> (i128, bool) {
        let mut total = 0;
        let mut all = true;
        for c in &spec.containers {
            let (req, lim) = req_limit(c, name);
            let v = if limits { lim } else { req };
            if v == 0 {
                all = false;
            }
            total += v;
        }
        for c in spec.init_containers.iter().flatten() {
            let (req, lim) = req_limit(c, name);
            let v = if limits { lim } else { req };
            total = total.max(v);
        }
        (total, all)
    };
    if qos == "BestEffort" {
        return super::PodResources {
            cpu_shares: 2,
            cpu_period: QUOTA_PERIOD,
            ..Default::default()
        };
    }
    let (cpu_req, _) = sum("cpu", false);
    let (cpu_lim, all_cpu) = sum("cpu", true);
    let (mem_lim, all_mem) = sum("memory", true);
    super::PodResources {
        cpu_shares: milli_cpu_to_shares(cpu_req),
        cpu_quota: if all_cpu && cpu_lim > 0 {
            ((cpu_lim * QUOTA_PERIOD as i128) / 1000).max(1000) as i64
        } else {
            0
        },
        cpu_period: QUOTA_PERIOD,
        memory_limit: if all_mem { (mem_lim / 1000) as i64 } else { 0 },
    }
}

/// containerd's sysctls for a sandbox that has its own network namespace
/// (`internal/cri/server/podsandbox/sandbox_run_linux.go`; `enable_unprivileged_ports` and
/// `enable_unprivileged_icmp` default to true in containerd 2.0), unless the pod sets them.
pub const SANDBOX_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
];

/// The pod hostname (k8s `kubelet_pods.go` `GeneratePodHostNameAndDomain`,
/// `truncatePodHostnameIfNeeded`): `spec.hostname` or the pod name, at most 63 characters with
/// trailing `-` and `.` removed after truncation; `<host>.<subdomain>.<ns>.svc.cluster.local`
/// when `setHostnameAsFQDN`.
pub fn pod_hostname(pod: &Pod) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut host = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    if host.len() > 63 {
        host.truncate(63);
        host = host.trim_end_matches(['-', '.']).to_string();
    }
    if spec.set_hostname_as_fqdn == Some(true) {
        if let Some(sub) = spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
            return format!(
                "{host}.{sub}.{}.svc.cluster.local",
                pod.metadata.namespace.as_deref().unwrap_or("")
            );
        }
    }
    host
}

/// The pod's cgroup parent for the cgroupfs driver (k8s `pod_container_manager_linux.go`,
/// `qos_container_manager_linux.go`): `/kubepods/pod<uid>` for Guaranteed pods,
/// `/kubepods/burstable/pod<uid>`, `/kubepods/besteffort/pod<uid>`. `root` replaces
/// `/kubepods`.
pub fn cgroup_parent(root: &str, qos: &str, uid: &str) -> String {
    let root = root.trim_end_matches('/');
    match qos {
        "Guaranteed" => format!("{root}/pod{uid}"),
        "Burstable" => format!("{root}/burstable/pod{uid}"),
        _ => format!("{root}/besteffort/pod{uid}"),
    }
}

/// The sandbox of a pod (§2.1, §2.2). `resolv_conf` is the content chosen by
/// [`super::files::pod_resolv_conf`].
pub fn pod_sandbox(pod: &Pod, resolv_conf: String, cgroup_root: &str) -> PodSandbox {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let qos = pod_qos(pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut sysctls: Vec<(String, String)> = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name.replace('/', "."), s.value))
        .collect();
    if !host_network {
        for (k, v) in SANDBOX_SYSCTLS {
            if !sysctls.iter().any(|(n, _)| n == k) {
                sysctls.push((k.to_string(), v.to_string()));
            }
        }
    }
    PodSandbox {
        pod_uid: uid.clone(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        hostname: if host_network {
            String::new()
        } else {
            pod_hostname(pod)
        },
        host_network,
        host_pid: spec.host_pid == Some(true),
        host_ipc: spec.host_ipc == Some(true),
        share_pid: spec.share_process_namespace == Some(true),
        sysctls,
        host_aliases: spec
            .host_aliases
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.ip, a.hostnames.unwrap_or_default()))
            .collect(),
        resolv_conf,
        cgroup_parent: cgroup_parent(cgroup_root, &qos, &uid),
        pod_resources: pod_resources(&spec, &qos),
        qos,
    }
}

/// The node's memory in bytes (`/proc/meminfo` MemTotal), for `oom_score_adj`.
pub fn node_memory() -> i128 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i128>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, SeccompProfile, SecurityContext, Sysctl,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod_with(c: Container, psc: Option<PodSecurityContext>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some("u-1".into());
        p.spec = Some(PodSpec {
            containers: vec![c],
            security_context: psc,
            ..Default::default()
        });
        p
    }

    fn ctr(sc: Option<SecurityContext>) -> Container {
        Container {
            name: "app".into(),
            security_context: sc,
            ..Default::default()
        }
    }

    #[test]
    fn pod_level_fields_fill_container_gaps() {
        let p = pod_with(
            ctr(Some(SecurityContext {
                run_as_user: Some(7),
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    add: None,
                }),
                ..Default::default()
            })),
            Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                fs_group: Some(2000),
                supplemental_groups: Some(vec![4000, 2000]),
                seccomp_profile: Some(SeccompProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
        );
        let s = effective(&p, &p.spec.as_ref().unwrap().containers[0]).unwrap();
        assert_eq!(s.run_as_user, Some(7));
        assert_eq!(s.run_as_group, Some(3000));
        assert_eq!(s.supplemental_groups, vec![2000, 4000]);
        assert!(s.no_new_privs);
        assert_eq!(s.cap_drop, vec!["ALL".to_string()]);
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        // nil allowPrivilegeEscalation keeps NoNewPrivileges false
        let p = pod_with(ctr(None), None);
        let s = effective(&p, &p.spec.as_ref().unwrap().containers[0]).unwrap();
        assert!(!s.no_new_privs);
        assert_eq!(s.seccomp, Seccomp::RuntimeDefault);
    }

    #[test]
    fn refused_settings_name_the_field() {
        let p = pod_with(
            ctr(Some(SecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "Localhost".into(),
                    localhost_profile: Some("p.json".into()),
                }),
                ..Default::default()
            })),
            None,
        );
        let e = effective(&p, &p.spec.as_ref().unwrap().containers[0]).unwrap_err();
        assert!(e.contains("Localhost") && e.contains("p.json"), "{e}");
        let p = pod_with(
            ctr(Some(SecurityContext {
                run_as_user: Some(4_294_967_296),
                ..Default::default()
            })),
            None,
        );
        let e = effective(&p, &p.spec.as_ref().unwrap().containers[0]).unwrap_err();
        assert!(e.contains("runAsUser 4294967296 is out of range"), "{e}");
    }

    #[test]
    fn run_as_non_root_messages() {
        let nonroot = |sc: SecurityContext| {
            pod_with(
                ctr(Some(SecurityContext {
                    run_as_non_root: Some(true),
                    ..sc
                })),
                None,
            )
        };
        let p = nonroot(SecurityContext::default());
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            verify_run_as_non_root(&p, c, "").unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"web_default(u-1)\", container: app)"
        );
        assert_eq!(
            verify_run_as_non_root(&p, c, "0:0").unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"web_default(u-1)\", container: app)"
        );
        assert_eq!(
            verify_run_as_non_root(&p, c, "app").unwrap_err(),
            "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: \"web_default(u-1)\", container: app)"
        );
        assert!(verify_run_as_non_root(&p, c, "1000:0").is_ok());
        let p = nonroot(SecurityContext {
            run_as_user: Some(0),
            ..Default::default()
        });
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            verify_run_as_non_root(&p, c, "1000").unwrap_err(),
            "container's runAsUser breaks non-root policy (pod: \"web_default(u-1)\", container: app)"
        );
        // not asked: anything goes
        let p = pod_with(ctr(None), None);
        assert!(verify_run_as_non_root(&p, &p.spec.as_ref().unwrap().containers[0], "").is_ok());
    }

    #[test]
    fn sysctl_admission() {
        let spec = |names: &[&str], host_net: bool| PodSpec {
            host_network: Some(host_net),
            security_context: Some(PodSecurityContext {
                sysctls: Some(
                    names
                        .iter()
                        .map(|n| Sysctl {
                            name: n.to_string(),
                            value: "1".into(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(admit_sysctls(&spec(
            &["net.ipv4.tcp_syncookies", "kernel.shm_rmid_forced"],
            false
        ))
        .is_ok());
        assert_eq!(
            admit_sysctls(&spec(&["kernel.msgmax"], false)).unwrap_err(),
            "forbidden sysctl: \"kernel.msgmax\" not allowlisted"
        );
        assert_eq!(
            admit_sysctls(&spec(&["net.ipv4.tcp_syncookies"], true)).unwrap_err(),
            "forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled"
        );
    }

    fn res(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        let m = |v: &[(&str, &str)]| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_and_resources() {
        let spec = |c: Container| PodSpec {
            containers: vec![c],
            ..Default::default()
        };
        assert_eq!(qos_class(&spec(res(&[], &[]))), "BestEffort");
        let g = res(&[], &[("cpu", "500m"), ("memory", "32Mi")]);
        assert_eq!(qos_class(&spec(g.clone())), "Guaranteed");
        let r = resources(&g, "Guaranteed", 8 << 30);
        assert_eq!(r.cpu_shares, 512);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.memory_limit, 32 << 20);
        assert_eq!(r.oom_score_adj, -997);
        let b = res(&[("memory", "4Gi")], &[]);
        assert_eq!(qos_class(&spec(b.clone())), "Burstable");
        let r = resources(&b, "Burstable", 8 << 30);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.memory_limit), (2, 0, 0));
        assert_eq!(r.oom_score_adj, 500);
        assert_eq!(
            resources(&res(&[], &[]), "BestEffort", 8 << 30).oom_score_adj,
            1000
        );
        assert_eq!(
            resources(&res(&[("cpu", "1m")], &[]), "Burstable", 8 << 30).oom_score_adj,
            999
        );
        assert_eq!(milli_cpu_to_shares(100_000_000), 262_144);
    }

    #[test]
    fn pod_cgroup_values() {
        let spec = |cs: Vec<Container>| PodSpec {
            containers: cs,
            ..Default::default()
        };
        let g = spec(vec![
            res(&[], &[("cpu", "500m"), ("memory", "32Mi")]),
            res(&[], &[("cpu", "250m"), ("memory", "16Mi")]),
        ]);
        let r = pod_resources(&g, qos_class(&g));
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit),
            (768, 75_000, 48 << 20)
        );
        // one container without limits: no quota, no memory limit
        let b = spec(vec![
            res(&[], &[("cpu", "500m"), ("memory", "32Mi")]),
            res(&[("cpu", "100m")], &[]),
        ]);
        let r = pod_resources(&b, qos_class(&b));
        assert_eq!((r.cpu_shares, r.cpu_quota, r.memory_limit), (614, 0, 0));
        let e = spec(vec![res(&[], &[])]);
        assert_eq!(pod_resources(&e, "BestEffort").cpu_shares, 2);
    }

    #[test]
    fn hostnames_and_cgroups() {
        let mut p = pod_with(ctr(None), None);
        p.metadata.name = Some(format!("{}-.x", "a".repeat(62)));
        assert_eq!(pod_hostname(&p), "a".repeat(62));
        assert_eq!(
            cgroup_parent("/kubepods", "Burstable", "u"),
            "/kubepods/burstable/podu"
        );
        assert_eq!(
            cgroup_parent("/kubepods/", "Guaranteed", "u"),
            "/kubepods/podu"
        );
    }
}
