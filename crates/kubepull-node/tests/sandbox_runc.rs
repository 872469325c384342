//! Pod isolation with the real runc: each test builds a busybox image into a node store, creates
//! the pod's sandbox (netns, pause, files) and runs a container through the runtime shim, then
//! tears everything down. Needs root, runc and iproute2.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kubepull_node::runc::RuncRuntime;
use kubepull_node::runtime::{ContainerRequest, ContainerRuntime, RuntimeState};
use kubepull_node::sandbox::{netns, pause, security, ContainerSecurity, PodSandbox};

const IMAGE: &str = "test.local/busybox:1";

fn prerequisites() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create namespaces and cgroups: run them as root"
    );
    kubepull_testkit::need("runc", "runc");
    kubepull_testkit::need("ip", "iproute2");
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is required (apt-get install -y busybox-static)"
    );
}

struct Node {
    _dir: tempfile::TempDir,
    rt: Arc<RuncRuntime>,
}

fn node() -> Node {
    prerequisites();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = kubepull_store::Store::open(&dir.path().join("store")).expect("store");
    let img = kubepull_testkit::busybox_image(&["/bin/sh"], &[]);
    store
        .put_blob_bytes(&img.config_digest(), &img.config)
        .expect("config");
    let mut layers = vec![];
    for l in &img.layers {
        let d = kubepull_core::reference::Digest::sha256_of(l);
        store.put_blob_bytes(&d, l).expect("layer");
        layers.push((
            d,
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
            l.len() as u64,
        ));
    }
    store
        .put_blob_bytes(&img.digest(), &img.manifest)
        .expect("manifest");
    let rec = kubepull_store::ImageRecord::new(
        kubepull_images::store_name(IMAGE).expect("name"),
        img.digest(),
        img.digest(),
        img.config_digest(),
        layers,
        "linux/amd64".into(),
        0,
    );
    store.put_image(&rec).expect("put image");
    let rt = RuncRuntime::new(
        &dir.path().join("containers"),
        store,
        vec![env!("CARGO_BIN_EXE_kubepull-node-shim").into()],
    )
    .expect("runtime");
    Node {
        _dir: dir,
        rt: Arc::new(rt),
    }
}

fn uid() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:016x}-{:04x}-test", n as u64, std::process::id() as u16)
}

fn pod(containers: Vec<Container>, f: impl FnOnce(&mut PodSpec)) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("iso".into());
    p.metadata.namespace = Some("default".into());
    p.metadata.uid = Some(uid());
    let mut spec = PodSpec {
        containers,
        ..Default::default()
    };
    f(&mut spec);
    p.spec = Some(spec);
    p
}

fn sh(name: &str, script: &str, sc: Option<SecurityContext>) -> Container {
    Container {
        name: name.into(),
        image: Some(IMAGE.into()),
        command: Some(vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ]),
        security_context: sc,
        ..Default::default()
    }
}

/// What a container left behind.
struct Ran {
    exit_code: i32,
    reason: String,
    log: String,
}

/// The first attempt of container `c` of pod `iso` in sandbox `sb`, with `security`.
fn request(c: &Container, sb: &PodSandbox, security: ContainerSecurity) -> ContainerRequest {
    ContainerRequest {
        namespace: "default".into(),
        pod_name: "iso".into(),
        pod_uid: sb.pod_uid.clone(),
        name: c.name.clone(),
        image: IMAGE.into(),
        image_ref: String::new(),
        command: c.command.clone().unwrap_or_default(),
        args: vec![],
        env: vec![],
        working_dir: None,
        security,
        sandbox: sb.clone(),
        attempt: 0,
        hostname: sb.hostname.clone(),
        mounts: vec![],
        fs_group: None,
    }
}

/// Runs the pod's containers in order (each to completion unless `background`), then tears the
/// pod down; returns what the last one did.
async fn run(node: &Node, pod: &Pod, background: usize) -> Ran {
    let rt = &node.rt;
    let sb = security::pod_sandbox(pod, "nameserver 192.0.2.1\n".into(), "/kubepods");
    rt.ensure_sandbox(&sb).await.expect("sandbox");
    let spec = pod.spec.as_ref().expect("spec");
    let mut ids = vec![];
    let mut last = None;
    for (i, c) in spec.containers.iter().enumerate() {
        let mut sec = security::effective(pod, c).expect("security");
        sec.resources = security::resources(c, &sb.qos, security::node_memory());
        let req = request(c, &sb, sec);
        let id = rt.start(&req).await.expect("start");
        ids.push(id.clone());
        if i < background {
            continue;
        }
        let mut state = rt.state(&id).await;
        for _ in 0..600 {
            if matches!(state, RuntimeState::Exited { .. }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            state = rt.state(&id).await;
        }
        let log = std::fs::read_to_string(node.rt_dir().join(&id).join("container.log"))
            .unwrap_or_default();
        let RuntimeState::Exited {
            exit_code, reason, ..
        } = state
        else {
            panic!("container {} did not exit: {state:?}; log: {log}", c.name);
        };
        last = Some(Ran {
            exit_code,
            reason,
            log,
        });
    }
    for id in ids {
        rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
        rt.remove(&id).await.expect("remove");
    }
    rt.remove_sandbox(&sb.pod_uid)
        .await
        .expect("remove sandbox");
    assert!(
        !netns::pod_netns_path(&sb.pod_uid).exists(),
        "the pod netns is deleted with the sandbox"
    );
    last.expect("a container ran")
}

impl Node {
    fn rt_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("containers")
    }
}

impl Drop for Node {
    /// A failed test still removes its containers and pod sandboxes (netns, pause, mounts).
    fn drop(&mut self) {
        let runc_root = self.rt_dir().join(".runc");
        if let Ok(out) = std::process::Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = std::process::Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "-f", id])
                    .status();
            }
        }
        let root = self.rt_dir();
        for uid in kubepull_node::sandbox::pause::list(&root) {
            let _ = kubepull_node::sandbox::pause::remove(&root, &uid);
        }
    }
}

/// The PIDs a container listed, one a line, in its log.
fn pids_listed(log: &str) -> Vec<u32> {
    log.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn sc(f: impl FnOnce(&mut SecurityContext)) -> Option<SecurityContext> {
    let mut s = SecurityContext::default();
    f(&mut s);
    Some(s)
}

#[tokio::test]
async fn pod_sees_only_its_own_processes() {
    let n = node();
    let p = pod(
        vec![sh(
            "ps",
            "for d in /proc/[0-9]*; do echo ${d#/proc/}; done; /bin/busybox ps -o pid,comm",
            None,
        )],
        |_| {},
    );
    let r = run(&n, &p, 0).await;
    assert_eq!(r.exit_code, 0, "{}", r.log);
    let pids = pids_listed(&r.log);
    // the shell is PID 1 of its own namespace; only it and its children are visible
    assert!(pids.contains(&1), "{}", r.log);
    assert!(pids.len() <= 3 && pids.iter().all(|p| *p < 10), "{}", r.log);
    assert!(
        !r.log.contains("kubepull"),
        "host processes are visible: {}",
        r.log
    );
}

#[tokio::test]
async fn host_pid_sees_the_nodes_processes() {
    // control for the test above: the same listing with hostPID shows the node's processes
    let n = node();
    let p = pod(
        vec![sh(
            "ps",
            "for d in /proc/[0-9]*; do echo ${d#/proc/}; done",
            None,
        )],
        |s| s.host_pid = Some(true),
    );
    let r = run(&n, &p, 0).await;
    let pids = pids_listed(&r.log);
    assert!(pids.contains(&std::process::id()), "{}", r.log);
}

#[tokio::test]
async fn privileged_gets_the_nodes_capabilities_and_no_seccomp() {
    let n = node();
    let p = pod(
        vec![sh(
            "c",
            "cat /proc/self/status; /bin/busybox mount -t tmpfs t /tmp; echo mount=$?",
            sc(|s| s.privileged = Some(true)),
        )],
        |_| {},
    );
    let r = run(&n, &p, 0).await;
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    assert_eq!(
        cap_line(&r.log, "CapBnd:"),
        cap_line(&own, "CapBnd:"),
        "{}",
        r.log
    );
    assert!(
        r.log.contains("Seccomp:\t0") && r.log.contains("mount=0"),
        "{}",
        r.log
    );
}

#[tokio::test]
async fn share_process_namespace_shows_the_other_container() {
    let n = node();
    let p = pod(
        vec![
            sh("sleeper", "exec /bin/busybox sleep 30", None),
            sh(
                "looker",
                "sleep 0.5; cat /proc/[0-9]*/cmdline | /bin/busybox tr '\\0' ' '; echo",
                None,
            ),
        ],
        |s| s.share_process_namespace = Some(true),
    );
    let r = run(&n, &p, 1).await;
    assert!(r.log.contains("sleep 30"), "{}", r.log);
}

#[tokio::test]
async fn pod_cannot_reach_the_hosts_loopback() {
    let n = node();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let _ = std::io::Write::write_all(&mut s, b"hello\n");
            let mut b = [0u8; 16];
            let _ = s.read(&mut b);
        }
    });
    let script = format!("/bin/busybox nc 127.0.0.1 {port} </dev/null; echo rc=$?");
    // its own network namespace: nothing listens there
    let p = pod(vec![sh("nc", &script, None)], |_| {});
    let r = run(&n, &p, 0).await;
    assert!(
        r.log.contains("rc=1") && !r.log.contains("hello"),
        "{}",
        r.log
    );
    // control: the same container with hostNetwork reaches the listener
    let p = pod(vec![sh("nc", &script, None)], |s| {
        s.host_network = Some(true)
    });
    let r = run(&n, &p, 0).await;
    assert!(r.log.contains("hello"), "{}", r.log);
}

#[tokio::test]
async fn run_as_non_root_with_a_root_image_fails_with_the_kubelets_message() {
    let n = node();
    let p = pod(
        vec![sh("app", "id", sc(|s| s.run_as_non_root = Some(true)))],
        |_| {},
    );
    let user =
        n.rt.image_user(IMAGE)
            .await
            .expect("image user")
            .expect("known");
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let err = security::verify_run_as_non_root(&p, c, &user).expect_err("must refuse");
    assert_eq!(
        err,
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"iso_default({})\", container: app)",
            p.metadata.uid.as_deref().unwrap_or("")
        )
    );
    // with a non-root user the container runs as that user with fsGroup and supplementalGroups
    let p = pod(
        vec![sh("app", "id", sc(|s| s.run_as_non_root = Some(true)))],
        |s| {
            s.security_context = Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                fs_group: Some(2000),
                supplemental_groups: Some(vec![4000]),
                ..Default::default()
            })
        },
    );
    let c = &p.spec.as_ref().expect("spec").containers[0];
    security::verify_run_as_non_root(&p, c, &user).expect("non-root passes");
    let r = run(&n, &p, 0).await;
    assert!(
        r.log.contains("uid=1000 gid=3000 groups=2000,3000,4000")
            || r.log.contains("uid=1000 gid=3000 groups=3000,2000,4000"),
        "{}",
        r.log
    );
}

fn cap_line(log: &str, key: &str) -> u64 {
    log.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| u64::from_str_radix(l[key.len()..].trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {key} in {log}"))
}

#[tokio::test]
async fn capabilities_drop_all_and_net_raw() {
    let n = node();
    let script = "cat /proc/self/status";
    let p = pod(
        vec![sh(
            "c",
            script,
            sc(|s| {
                s.capabilities = Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    add: None,
                })
            }),
        )],
        |_| {},
    );
    let r = run(&n, &p, 0).await;
    assert_eq!(cap_line(&r.log, "CapEff:"), 0, "{}", r.log);
    assert_eq!(cap_line(&r.log, "CapBnd:"), 0, "{}", r.log);
    // containerd's default set has NET_RAW (bit 13) and no SYS_ADMIN (bit 21)
    let p = pod(vec![sh("c", script, None)], |_| {});
    let r = run(&n, &p, 0).await;
    let bnd = cap_line(&r.log, "CapBnd:");
    assert_eq!(bnd.count_ones(), 14, "{}", r.log);
    assert_ne!(bnd & (1 << 13), 0, "{}", r.log);
    assert_eq!(bnd & (1 << 21), 0, "{}", r.log);
    // drop NET_RAW: gone, and a raw socket (ping) is refused
    let p = pod(
        vec![sh(
            "c",
            "cat /proc/self/status; /bin/busybox ping -c 1 -W 1 127.0.0.1; echo rc=$?",
            sc(|s| {
                s.capabilities = Some(Capabilities {
                    drop: Some(vec!["NET_RAW".into()]),
                    add: None,
                })
            }),
        )],
        |_| {},
    );
    let r = run(&n, &p, 0).await;
    assert_eq!(cap_line(&r.log, "CapBnd:") & (1 << 13), 0, "{}", r.log);
    assert!(r.log.contains("rc=1"), "{}", r.log);
}

#[tokio::test]
async fn read_only_root_filesystem_refuses_writes() {
    let n = node();
    let p = pod(
        vec![sh(
            "c",
            "echo x > /probe; echo rc=$?; echo y > /dev/shm/ok && echo shm-ok",
            sc(|s| s.read_only_root_filesystem = Some(true)),
        )],
        |_| {},
    );
    let r = run(&n, &p, 0).await;
    assert!(
        r.log.contains("Read-only file system") && r.log.contains("rc=1"),
        "{}",
        r.log
    );
    assert!(r.log.contains("shm-ok"), "{}", r.log);
}

#[tokio::test]
async fn seccomp_runtime_default_blocks_unshare_and_mount() {
    let n = node();
    let script = "/bin/busybox grep Seccomp: /proc/self/status; /bin/busybox unshare -U true; echo unshare=$?; /bin/busybox mount -t tmpfs t /tmp; echo mount=$?";
    let p = pod(vec![sh("c", script, None)], |_| {});
    let r = run(&n, &p, 0).await;
    assert!(r.log.contains("Seccomp:\t2"), "{}", r.log);
    assert!(
        r.log.contains("unshare=") && !r.log.contains("unshare=0"),
        "{}",
        r.log
    );
    assert!(
        r.log.contains("mount=") && !r.log.contains("mount=0"),
        "{}",
        r.log
    );
    assert!(r.log.contains("Operation not permitted"), "{}", r.log);
    // Unconfined: no filter
    let p = pod(
        vec![sh(
            "c",
            "/bin/busybox grep Seccomp: /proc/self/status",
            sc(|s| {
                s.seccomp_profile = Some(SeccompProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                })
            }),
        )],
        |_| {},
    );
    let r = run(&n, &p, 0).await;
    assert!(r.log.contains("Seccomp:\t0"), "{}", r.log);
}

#[tokio::test]
async fn memory_limit_kills_a_big_allocation_as_oom_killed() {
    let n = node();
    let mut c = sh(
        "hog",
        // the shell itself holds 100 MiB in a variable: it is the OOM killer's only choice
        "x=$(/bin/busybox head -c 104857600 /dev/zero | /bin/busybox tr '\\0' a); echo survived ${#x}",
        None,
    );
    let q = |s: &str| Quantity(s.into());
    c.resources = Some(ResourceRequirements {
        limits: Some(
            [
                ("memory".to_string(), q("32Mi")),
                ("cpu".to_string(), q("500m")),
            ]
            .into(),
        ),
        ..Default::default()
    });
    let p = pod(vec![c], |_| {});
    assert_eq!(
        security::qos_class(p.spec.as_ref().expect("spec")),
        "Guaranteed"
    );
    let r = run(&n, &p, 0).await;
    assert!(!r.log.contains("survived"), "{}", r.log);
    assert_eq!(
        (r.exit_code, r.reason.as_str()),
        (137, "OOMKilled"),
        "{}",
        r.log
    );
}

#[tokio::test]
async fn hostname_and_pod_files() {
    let n = node();
    let p = pod(
        vec![sh(
            "c",
            "hostname; cat /etc/hostname /etc/resolv.conf /etc/hosts; echo range=$(cat /proc/sys/net/ipv4/ip_local_port_range) unpriv=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)",
            None,
        )],
        |s| {
            s.hostname = Some("web-0".into());
            s.security_context = Some(PodSecurityContext {
                sysctls: Some(vec![k8s_openapi::api::core::v1::Sysctl {
                    name: "net.ipv4.ip_local_port_range".into(),
                    value: "20000 30000".into(),
                }]),
                ..Default::default()
            });
        },
    );
    let r = run(&n, &p, 0).await;
    let mut lines = r.log.lines();
    assert_eq!(lines.next(), Some("web-0"), "{}", r.log);
    assert_eq!(lines.next(), Some("web-0"), "{}", r.log);
    assert!(r.log.contains("nameserver 192.0.2.1"), "{}", r.log);
    assert!(
        r.log.contains("# Kubernetes-managed hosts file."),
        "{}",
        r.log
    );
    // the pod's sysctl and containerd's injected one, in the pod's own netns only
    assert!(
        r.log.contains("range=20000\t30000 unpriv=0")
            || r.log.contains("range=20000 30000 unpriv=0"),
        "{}",
        r.log
    );
    let host_range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("host sysctl");
    assert!(!host_range.starts_with("20000"), "{host_range}");
}

#[tokio::test]
async fn pod_cgroup_carries_the_pod_limits() {
    let n = node();
    let mut c = sh("c", "true", None);
    c.resources = Some(ResourceRequirements {
        limits: Some(
            [
                ("memory".to_string(), Quantity("48Mi".into())),
                ("cpu".to_string(), Quantity("250m".into())),
            ]
            .into(),
        ),
        ..Default::default()
    });
    let p = pod(vec![c], |_| {});
    let sb = security::pod_sandbox(&p, String::new(), "/kubepods");
    assert_eq!(sb.cgroup_parent, format!("/kubepods/pod{}", sb.pod_uid));
    n.rt.ensure_sandbox(&sb).await.expect("sandbox");
    let read = |p: String| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let rel = sb.cgroup_parent.trim_start_matches('/');
    let dirs: Vec<String> = if kubepull_node::runc::cgroup_v2() {
        let d = format!("/sys/fs/cgroup/{rel}");
        assert_eq!(
            read(format!("{d}/memory.max")).trim(),
            (48u64 << 20).to_string()
        );
        assert_eq!(read(format!("{d}/cpu.max")).trim(), "25000 100000");
        vec![d]
    } else {
        let m = format!("/sys/fs/cgroup/memory/{rel}");
        let c = format!("/sys/fs/cgroup/cpu/{rel}");
        assert_eq!(
            read(format!("{m}/memory.limit_in_bytes")).trim(),
            (48u64 << 20).to_string()
        );
        assert_eq!(read(format!("{c}/cpu.cfs_quota_us")).trim(), "25000");
        assert_eq!(read(format!("{c}/cpu.shares")).trim(), "256");
        vec![m, c]
    };
    n.rt.remove_sandbox(&sb.pod_uid).await.expect("remove");
    for d in dirs {
        assert!(!Path::new(&d).exists(), "{d} is removed with the pod");
    }
}

#[tokio::test]
async fn sandbox_is_found_again_and_recreated_when_its_pause_dies() {
    let n = node();
    let p = pod(vec![sh("c", "true", None)], |_| {});
    let sb = security::pod_sandbox(&p, String::new(), "/kubepods");
    assert!(
        n.rt.ensure_sandbox(&sb).await.expect("create"),
        "first: created"
    );
    assert!(
        !n.rt.ensure_sandbox(&sb).await.expect("find"),
        "second: found running"
    );
    assert_eq!(n.rt.sandboxes().await, vec![sb.pod_uid.clone()]);
    let dir = n.rt_dir().join(".sandboxes").join(&sb.pod_uid);
    let pid: i32 = std::fs::read_to_string(dir.join("pause.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    // the holder is in the pod netns, with its own UTS namespace named after the pod
    let ns = |p: &str| std::fs::read_link(p).expect("ns link");
    let ino = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(netns::pod_netns_path(&sb.pod_uid)).expect("netns"),
    );
    assert_eq!(
        ns(&format!("/proc/{pid}/ns/net")),
        std::path::PathBuf::from(format!("net:[{ino}]"))
    );
    assert_ne!(ns(&format!("/proc/{pid}/ns/uts")), ns("/proc/self/ns/uts"));
    assert_ne!(ns(&format!("/proc/{pid}/ns/net")), ns("/proc/self/ns/net"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill pause");
    for _ in 0..100 {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        n.rt.ensure_sandbox(&sb).await.expect("re-create"),
        "a new pause"
    );
    n.rt.remove_sandbox(&sb.pod_uid).await.expect("remove");
    assert!(n.rt.sandboxes().await.is_empty());
    assert!(!netns::pod_netns_path(&sb.pod_uid).exists());
}

#[tokio::test]
async fn an_unknown_capability_is_refused_naming_the_field() {
    let n = node();
    let c = sh(
        "c",
        "true",
        sc(|s| {
            s.capabilities = Some(Capabilities {
                add: Some(vec!["CAP_NET_ADMIN".into()]),
                drop: None,
            })
        }),
    );
    let p = pod(vec![c.clone()], |_| {});
    let sb = security::pod_sandbox(&p, String::new(), "/kubepods");
    n.rt.ensure_sandbox(&sb).await.expect("sandbox");
    let req = request(&c, &sb, security::effective(&p, &c).expect("security"));
    let err = n.rt.start(&req).await.expect_err("refused");
    assert!(
        err.contains("securityContext.capabilities.add") && err.contains("\"CAP_NET_ADMIN\""),
        "{err}"
    );
    // the refused container leaves no rootfs mounted and no bundle
    let dir = n
        .rt_dir()
        .join(kubepull_node::runc::container_id(&sb.pod_uid, "c", 0));
    let mounted: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| std::path::Path::new(m).starts_with(&dir))
        .map(str::to_string)
        .collect();
    assert!(mounted.is_empty(), "left mounted: {mounted:?}");
    assert!(
        !dir.exists(),
        "the bundle of a refused container is removed"
    );
    n.rt.remove_sandbox(&sb.pod_uid).await.expect("remove");
}

/// A sandbox is running as soon as its pause publishes its pid: the pause writes the holder's
/// pid only once the holder runs, when `/proc/<pid>/cmdline` (what `find` checks) names the
/// sandbox. Before, the pid was written while the holder's exec was still under way (its
/// command line reads empty until the kernel has set up its stack), for some hundred
/// microseconds in one sandbox in ten, sometimes past `ensure`'s return: a container started
/// right after its sandbox met "the pod sandbox is not running". A second thread checks the
/// sandbox from the moment the pid file appears until `ensure` returns.
#[test]
fn a_new_sandbox_is_running_as_soon_as_its_pid_is_written() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let n = node();
    let root = n.rt_dir();
    let shim: Vec<std::ffi::OsString> = vec![env!("CARGO_BIN_EXE_kubepull-node-shim").into()];
    const ROUNDS: usize = 150;
    // this thread (and so the shim and the holder it starts) on one core, the watcher on
    // another: the window shows most often that way
    let here = nix::unistd::Pid::from_raw(0);
    let allowed = nix::sched::sched_getaffinity(here).expect("affinity");
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&c| allowed.is_set(c).unwrap_or(false))
        .collect();
    let pin = |cpu: usize| {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).expect("cpu");
        nix::sched::sched_setaffinity(here, &set).expect("pin");
    };
    pin(cpus[0]);
    let mut uids = vec![];
    let mut not_running = vec![];
    for _ in 0..ROUNDS {
        // hostNetwork: no netns to create
        let p = pod(vec![sh("c", "true", None)], |s| s.host_network = Some(true));
        let sb = security::pod_sandbox(&p, String::new(), "");
        let pid_file = pause::sandbox_dir(&root, &sb.pod_uid).join("pause.pid");
        let ensured = AtomicBool::new(false);
        let checked = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                pin(*cpus.last().expect("a cpu"));
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    // read before the check: the last round checks after `ensure` returned
                    let last = ensured.load(Ordering::SeqCst);
                    if pid_file.exists() {
                        pause::running(&root, &sb.pod_uid)?;
                    }
                    if last {
                        return Ok(());
                    }
                    if std::time::Instant::now() > deadline {
                        return Err("ensure never returned".to_string());
                    }
                    // a short sleep, not a spin: a spinning thread keeps the holder's exec on
                    // the other core and hides the window
                    std::thread::sleep(Duration::from_micros(50));
                }
            });
            let (_, created) = pause::ensure(&root, &sb, &shim).expect("ensure");
            ensured.store(true, Ordering::SeqCst);
            assert!(created, "a new pause for a new pod");
            watcher.join().expect("watcher")
        });
        if let Err(e) = checked {
            not_running.push(e);
        }
        uids.push(sb.pod_uid);
    }
    // removal waits for each killed pause to be reaped: all at once
    std::thread::scope(|s| {
        for uid in &uids {
            let root = &root;
            s.spawn(move || pause::remove(root, uid).expect("remove"));
        }
    });
    assert!(
        not_running.is_empty(),
        "{} of {ROUNDS} new sandboxes were not running once their pid was written: {:?}",
        not_running.len(),
        not_running
    );
}
