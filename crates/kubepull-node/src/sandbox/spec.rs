//! The OCI runtime spec of a container, built as containerd builds it: the default Unix spec
//! (containerd `pkg/oci/spec.go` `populateDefaultUnixSpec`, `pkg/oci/mounts.go`), then the CRI
//! changes of `internal/cri/server/container_create_linux.go` `buildLinuxSpec` in their order.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilities, LinuxCpu, LinuxDevice,
    LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, Mount, Process, Root, Spec, User,
};

use super::{seccomp, ContainerSecurity, Seccomp};

/// containerd's default capabilities (`pkg/oci/spec.go` `defaultUnixCaps`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The kubelet's masked paths (k8s `pkg/securitycontext/util.go` `defaultMaskedPaths`, newest).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kubelet's read-only paths (`defaultReadonlyPaths`).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Capability names by bit number (linux `include/uapi/linux/capability.h`).
const CAP_BITS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities this process holds in its bounding set (containerd `cap.Current()`), for
/// `add: [ALL]` and privileged containers.
pub fn current_caps() -> Vec<String> {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("CapBnd:"))
                .and_then(|l| u64::from_str_radix(l[7..].trim(), 16).ok())
        })
        .unwrap_or(0);
    CAP_BITS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Everything about a container the spec needs besides its security settings.
#[derive(Debug, Clone, Default)]
pub struct SpecInput {
    /// argv.
    pub args: Vec<String>,
    /// Image env then container env, already merged (`K=V`).
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// uid, primary gid, additional gids (primary included).
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Additional gids.
    pub additional_gids: Vec<u32>,
    /// The sandbox hostname (the `HOSTNAME` env; the node's for hostNetwork pods).
    pub hostname: String,
    /// Namespaces: type and the path to join (none: a new one).
    pub namespaces: Vec<(LinuxNamespaceType, Option<PathBuf>)>,
    /// Bind mounts the runtime adds: destination, host source, read-only.
    pub binds: Vec<(String, PathBuf, bool)>,
    /// `cgroupsPath`.
    pub cgroups_path: String,
    /// The host has cgroup v2 only (unified).
    pub cgroup_v2: bool,
    /// The memory controller accounts swap (`memory.memsw.*` / `memory.swap.max`).
    pub swap_accounting: bool,
    /// The capabilities the node holds (see [`current_caps`]).
    pub node_caps: Vec<String>,
    /// Sysctls to set (the pod's, for a container owning the sandbox namespaces).
    pub sysctls: Vec<(String, String)>,
    /// Annotations.
    pub annotations: Vec<(String, String)>,
}

/// A spec the node refuses to build: the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn mount(dest: &str, typ: &str, source: &str, opts: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(opts.iter().map(|s| s.to_string()).collect()));
    m
}

/// containerd `defaultMounts`, without `/run` (`WithoutRunMount`).
fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
    ]
}

/// `"CAP_" + upper(name)` (containerd `WithCapabilities`), parsed into a capability the runtime
/// knows; an unknown name is refused with the field named.
fn cap_name(field: &str, name: &str) -> Result<(String, Capability), SpecError> {
    let full = format!("CAP_{}", name.to_uppercase());
    let bare = &full[4..];
    Capability::from_str(bare)
        .map(|c| (full.clone(), c))
        .map_err(|_| {
            SpecError(format!(
                "securityContext.capabilities.{field}: unknown capability {name:?} (write names without the CAP_ prefix, e.g. NET_ADMIN)"
            ))
        })
}

fn caps_set(names: &[String]) -> Capabilities {
    names
        .iter()
        .filter_map(|n| Capability::from_str(n.trim_start_matches("CAP_")).ok())
        .collect()
}

/// Walks `/dev` for the device nodes a privileged container gets (containerd
/// `WithPrivileged` → `WithDevices(HostDevices)`).
fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = vec![];
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                let name = e.file_name();
                if !["pts", "shm", "mqueue", "fd"].contains(&name.to_string_lossy().as_ref()) {
                    stack.push(p);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if p == Path::new("/dev/console") {
                continue;
            }
            let rdev = m.rdev();
            let mut dev = LinuxDevice::default();
            dev.set_path(p);
            dev.set_typ(typ);
            dev.set_major(nix::sys::stat::major(rdev) as i64);
            dev.set_minor(nix::sys::stat::minor(rdev) as i64);
            dev.set_file_mode(Some(m.mode() & 0o7777));
            dev.set_uid(Some(m.uid()));
            dev.set_gid(Some(m.gid()));
            out.push(dev);
        }
    }
    out
}

/// Builds a container's spec: `populateDefaultUnixSpec`, then `buildLinuxSpec`'s steps
/// (§3.2 of the node's sandbox notes), then the user and seccomp (`platformSpecOpts`).
pub fn build(input: &SpecInput, sec: &ContainerSecurity) -> Result<Spec, SpecError> {
    // -- the default Unix spec, WithoutRunMount, WithoutDefaultSecuritySettings (no rlimits,
    //    no seccomp, no apparmor)
    let mut bounding: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    let mut effective = bounding.clone();
    let mut permitted = bounding.clone();
    let mut inheritable: Vec<String> = vec![];
    let mut mounts = default_mounts();
    let mut masked: Vec<String>;
    let mut readonly: Vec<String>;

    // 3. process args (already resolved by the caller)
    if input.args.is_empty() {
        return Err(SpecError("no command specified".into()));
    }
    // 4. WithDefaultPathEnv, WithNewPrivileges; 7. HOSTNAME; 8. image env, then CRI env
    let mut env: Vec<String> = vec![];
    let mut set_env = |kv: &str| {
        let key = kv.split('=').next().unwrap_or("");
        match env
            .iter_mut()
            .find(|e| e.split('=').next().unwrap_or("") == key)
        {
            Some(e) => *e = kv.to_string(),
            None => env.push(kv.to_string()),
        }
    };
    set_env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    set_env(&format!("HOSTNAME={}", input.hostname));
    for kv in &input.env {
        set_env(kv);
    }

    // 9. mounts (WithMounts): supplied mounts sorted by depth; default mounts at the same
    //    destination dropped; the cgroup mount added read-only
    let mut binds = input.binds.clone();
    binds.sort_by_key(|(d, _, _)| d.split('/').filter(|s| !s.is_empty()).count());
    mounts.retain(|m| {
        !binds
            .iter()
            .any(|(d, _, _)| Path::new(d) == m.destination().as_path())
    });
    mounts.push(mount(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", "ro"],
    ));
    for (dest, src, ro) in &binds {
        mounts.push(mount(
            dest,
            "bind",
            &src.to_string_lossy(),
            &["rbind", "rprivate", if *ro { "ro" } else { "rw" }],
        ));
    }

    // 10. masked and read-only paths from the kubelet (empty for procMount: Unmasked)
    if sec.unmasked_proc {
        masked = vec![];
        readonly = vec![];
    } else {
        masked = MASKED_PATHS.iter().map(|s| s.to_string()).collect();
        readonly = READONLY_PATHS.iter().map(|s| s.to_string()).collect();
    }

    // 11. capabilities (internal/cri/opts/spec_opts.go WithCapabilities)
    let mut adds = vec![];
    let mut drops = vec![];
    for a in &sec.cap_add {
        if !a.eq_ignore_ascii_case("ALL") {
            adds.push(cap_name("add", a)?.0);
        }
    }
    for d in &sec.cap_drop {
        if !d.eq_ignore_ascii_case("ALL") {
            drops.push(cap_name("drop", d)?.0);
        }
    }
    if sec.cap_add.iter().any(|a| a.eq_ignore_ascii_case("ALL")) {
        bounding = input.node_caps.clone();
        effective = input.node_caps.clone();
        permitted = input.node_caps.clone();
    }
    if sec.cap_drop.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        bounding.clear();
        effective.clear();
        permitted.clear();
        inheritable.clear();
    }
    for a in adds {
        for set in [&mut bounding, &mut effective, &mut permitted] {
            if !set.contains(&a) {
                set.push(a.clone());
            }
        }
    }
    for d in drops {
        for set in [
            &mut bounding,
            &mut effective,
            &mut permitted,
            &mut inheritable,
        ] {
            set.retain(|c| *c != d);
        }
    }

    // 12. privileged (pkg/oci/spec_opts.go WithPrivileged, WithHostDevices, WithAllDevicesAllowed)
    let mut devices = vec![];
    let mut device_rules = vec![{
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(false);
        r.set_access(Some("rwm".into()));
        r
    }];
    if sec.privileged {
        bounding = input.node_caps.clone();
        effective = input.node_caps.clone();
        permitted = input.node_caps.clone();
        masked = vec![];
        readonly = vec![];
        for m in mounts.iter_mut() {
            let t = m.typ().clone().unwrap_or_default();
            if t == "sysfs" || t == "cgroup" {
                let opts: Vec<String> = m
                    .options()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| if o == "ro" { "rw".into() } else { o })
                    .collect();
                m.set_options(Some(opts));
            }
        }
        devices = host_devices();
        let mut all = LinuxDeviceCgroup::default();
        all.set_allow(true);
        all.set_access(Some("rwm".into()));
        device_rules = vec![all];
    }

    // 13. WithoutAmbientCaps; 14. NoNewPrivileges from allowPrivilegeEscalation, readonly root
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(caps_set(&bounding)));
    caps.set_effective(Some(caps_set(&effective)));
    caps.set_permitted(Some(caps_set(&permitted)));
    caps.set_inheritable(Some(caps_set(&inheritable)));
    caps.set_ambient(Some(Capabilities::new()));

    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_args(Some(input.args.clone()));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(if input.cwd.is_empty() {
        "/"
    } else {
        &input.cwd
    }));
    process.set_capabilities(Some(caps));
    process.set_rlimits(None);
    process.set_no_new_privileges(Some(sec.no_new_privs && !sec.privileged));
    // 16. OOM score
    process.set_oom_score_adj(Some(sec.resources.oom_score_adj));
    // user (platformSpecOpts WithUser, WithAdditionalGIDs)
    let mut user = User::default();
    user.set_uid(input.uid);
    user.set_gid(input.gid);
    user.set_additional_gids(Some(input.additional_gids.clone()));
    process.set_user(user);
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);

    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(sec.read_only_root));

    // 15. resources
    let r = sec.resources;
    let mut cpu = LinuxCpu::default();
    if r.cpu_shares != 0 {
        cpu.set_shares(Some(r.cpu_shares));
    }
    if r.cpu_period != 0 && r.cpu_quota != 0 {
        cpu.set_period(Some(r.cpu_period));
    }
    if r.cpu_quota != 0 {
        cpu.set_quota(Some(r.cpu_quota));
    }
    let mut resources = LinuxResources::default();
    resources.set_cpu(Some(cpu));
    if r.memory_limit > 0 {
        let mut mem = LinuxMemory::default();
        mem.set_limit(Some(r.memory_limit));
        if input.swap_accounting {
            // containerd WithResources: no swap beyond the limit
            mem.set_swap(Some(r.memory_limit));
        }
        resources.set_memory(Some(mem));
    }
    resources.set_devices(Some(device_rules));
    if input.cgroup_v2 {
        // kubelet calculateLinuxResources: the whole container is OOM-killed as a group on
        // cgroup v2 (singleProcessOOMKill defaults to false there)
        resources.set_unified(Some(
            [("memory.oom.group".to_string(), "1".to_string())].into(),
        ));
    }

    // 17. namespaces; 19. a cgroup namespace on cgroup v2 for unprivileged containers
    let mut namespaces: Vec<LinuxNamespace> = input
        .namespaces
        .iter()
        .map(|(t, p)| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(*t);
            ns.set_path(p.clone());
            ns
        })
        .collect();
    if input.cgroup_v2 && !sec.privileged {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Cgroup);
        namespaces.push(ns);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .resources(resources)
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .devices(devices)
        .build()
        .map_err(|e| SpecError(e.to_string()))?;
    if !input.sysctls.is_empty() {
        linux.set_sysctl(Some(input.sysctls.iter().cloned().collect()));
    }
    // seccomp from the final bounding set (generateSeccompSpecOpts: none when privileged)
    if sec.seccomp == Seccomp::RuntimeDefault && !sec.privileged {
        linux.set_seccomp(Some(seccomp::default_profile(&bounding)));
    }

    let mut spec = Spec::default();
    spec.set_version("1.0.2".into());
    spec.set_root(Some(root));
    spec.set_process(Some(process));
    // the hostname belongs to the sandbox's UTS namespace, which containers join
    spec.set_hostname(None);
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));
    spec.set_annotations(Some(input.annotations.iter().cloned().collect()));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SpecInput {
        SpecInput {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into(), "HOSTNAME=x".into()],
            hostname: "web".into(),
            namespaces: vec![(LinuxNamespaceType::Pid, None)],
            node_caps: CAP_BITS.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn caps(s: &Spec) -> Vec<String> {
        let mut v: Vec<String> = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn default_spec_is_containerds() {
        let s = build(&input(), &ContainerSecurity::default()).unwrap();
        let mut want: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(caps(&s), want);
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.no_new_privileges(), Some(false));
        assert!(p.rlimits().is_none());
        // the pod env wins over HOSTNAME, PATH replaced in place
        assert_eq!(
            p.env().as_ref().unwrap(),
            &vec!["PATH=/bin".to_string(), "HOSTNAME=x".to_string()]
        );
        let l = s.linux().as_ref().unwrap();
        assert_eq!(l.masked_paths().as_ref().unwrap().len(), MASKED_PATHS.len());
        assert!(l.seccomp().is_some());
        let dests: Vec<String> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
    }

    #[test]
    fn capabilities_add_drop_all() {
        let sec = ContainerSecurity {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["NET_BIND_SERVICE".into()],
            ..Default::default()
        };
        let s = build(&input(), &sec).unwrap();
        assert_eq!(caps(&s), vec!["CAP_NET_BIND_SERVICE".to_string()]);
        let sec = ContainerSecurity {
            cap_drop: vec!["net_raw".into()],
            ..Default::default()
        };
        assert!(!caps(&build(&input(), &sec).unwrap()).contains(&"CAP_NET_RAW".to_string()));
        let sec = ContainerSecurity {
            cap_add: vec!["CAP_NET_ADMIN".into()],
            ..Default::default()
        };
        let e = build(&input(), &sec).unwrap_err();
        assert!(
            e.0.contains("capabilities.add") && e.0.contains("CAP_NET_ADMIN"),
            "{e}"
        );
        let sec = ContainerSecurity {
            cap_add: vec!["all".into()],
            ..Default::default()
        };
        assert_eq!(caps(&build(&input(), &sec).unwrap()).len(), CAP_BITS.len());
    }

    #[test]
    fn privileged_and_readonly_and_binds() {
        let sec = ContainerSecurity {
            privileged: true,
            no_new_privs: false,
            ..Default::default()
        };
        let s = build(&input(), &sec).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert!(l.seccomp().is_none());
        assert!(l.masked_paths().as_ref().unwrap().is_empty());
        let sys = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap()
            .clone();
        assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));

        let mut i = input();
        i.binds = vec![
            ("/etc/hosts".into(), "/x/hosts".into(), false),
            ("/dev/shm".into(), "/x/shm".into(), false),
        ];
        let sec = ContainerSecurity {
            read_only_root: true,
            no_new_privs: true,
            unmasked_proc: true,
            seccomp: Seccomp::Unconfined,
            ..Default::default()
        };
        let s = build(&i, &sec).unwrap();
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(
            s.process().as_ref().unwrap().no_new_privileges(),
            Some(true)
        );
        let l = s.linux().as_ref().unwrap();
        assert!(l.seccomp().is_none());
        assert!(l.masked_paths().as_ref().unwrap().is_empty());
        let shm: Vec<&Mount> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].typ().as_deref(), Some("bind"));
    }

    #[test]
    fn empty_argv_is_refused() {
        let mut i = input();
        i.args.clear();
        assert_eq!(
            build(&i, &ContainerSecurity::default()).unwrap_err().0,
            "no command specified"
        );
    }
}
