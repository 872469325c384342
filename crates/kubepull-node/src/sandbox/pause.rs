//! The pod sandbox on the node: its state directory, network namespace, `/dev/shm`, files, and
//! the pause process that holds the pod's IPC and UTS namespaces (and its PID namespace when
//! `shareProcessNamespace: true`).
//!
//! containerd runs a pause *container*; here the pause is a host process (`kubepull
//! runtime-shim pause …`) that enters the pod's netns, unshares the namespaces the pod owns,
//! sets the hostname and the pod's sysctls, then forks the holder (PID 1 of the shared PID
//! namespace) and exits. Containers join `/proc/<pause>/ns/{ipc,uts,pid}` and
//! `/run/netns/kp-…`. A separate holder rather than the first container's namespaces because
//! the first container may exit and restart: its namespaces (and a shared PID namespace whose
//! init it would be) die with it, while the pause lives as long as the pod.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::LinuxNamespaceType;

use super::{files, netns, PodSandbox};

/// The state of one pod sandbox on disk: `<root>/.sandboxes/<uid>/`.
pub fn sandbox_dir(root: &Path, uid: &str) -> PathBuf {
    root.join(".sandboxes").join(uid)
}

/// A running sandbox.
#[derive(Debug, Clone)]
pub struct SandboxState {
    /// Its directory.
    pub dir: PathBuf,
    /// The pause (namespace holder) pid.
    pub pause_pid: u32,
    /// The pod's netns path (none for hostNetwork).
    pub netns: Option<PathBuf>,
}

impl SandboxState {
    /// The namespaces a container of this pod is created with (containerd
    /// `WithPodNamespaces`): network, IPC and UTS joined; PID joined when shared, new
    /// otherwise; a new mount namespace. Host namespaces are left out.
    pub fn container_namespaces(
        &self,
        sb: &PodSandbox,
    ) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        let ns = |n: &str| Some(PathBuf::from(format!("/proc/{}/ns/{n}", self.pause_pid)));
        let mut v = vec![(LinuxNamespaceType::Mount, None)];
        if !sb.host_network {
            v.push((LinuxNamespaceType::Network, self.netns.clone()));
            v.push((LinuxNamespaceType::Uts, ns("uts")));
        }
        if !sb.host_ipc {
            v.push((LinuxNamespaceType::Ipc, ns("ipc")));
        }
        if !sb.host_pid {
            v.push((
                LinuxNamespaceType::Pid,
                if sb.share_pid { ns("pid") } else { None },
            ));
        }
        v
    }

    /// The per-pod files and `/dev/shm`: destination, source, read-only.
    pub fn binds(&self, sb: &PodSandbox, read_only_root: bool) -> Vec<(String, PathBuf, bool)> {
        let mut v = vec![
            ("/etc/hosts".to_string(), self.dir.join("hosts"), false),
            (
                "/etc/hostname".to_string(),
                self.dir.join("hostname"),
                read_only_root,
            ),
            (
                "/etc/resolv.conf".to_string(),
                self.dir.join("resolv.conf"),
                read_only_root,
            ),
        ];
        if sb.host_ipc {
            v.push(("/dev/shm".to_string(), PathBuf::from("/dev/shm"), false));
        } else {
            v.push(("/dev/shm".to_string(), self.dir.join("shm"), false));
        }
        v
    }
}

fn pause_alive(pid: u32, dir: &Path) -> bool {
    // the holder's command line names its sandbox directory
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let s = String::from_utf8_lossy(&c);
            s.contains("pause") && s.contains(&*dir.to_string_lossy())
        })
        .unwrap_or(false)
}

/// The process is gone or a zombie: a zombie has left its namespaces and mounts (the kernel
/// releases them before the exit status waits for a reaper, which an init that reaps rarely
/// can hold back for a second or more).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state follows the command name, which is in parentheses and may hold any byte
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("pause.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn is_mountpoint(p: &Path) -> bool {
    let p = p.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(&*p)))
        .unwrap_or(false)
}

fn mount_shm(path: &Path) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir_all(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    if is_mountpoint(path) {
        return Ok(());
    }
    // containerd: MS_NOEXEC|MS_NOSUID|MS_NODEV, mode=1777,size=64 MiB (defaultShmSize)
    mount(
        Some("shm"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=67108864"),
    )
    .map_err(|e| format!("mount the pod's /dev/shm at {}: {e}", path.display()))
}

fn unmount(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
}

fn write_atomic(path: &Path, content: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Creates the pod cgroup and writes its values (cgroup v1 controllers, or v2).
fn pod_cgroup(parent: &str, r: &super::PodResources) -> Result<(), String> {
    let rel = parent.trim_start_matches('/');
    let write = |p: PathBuf, v: String| -> Result<(), String> {
        std::fs::write(&p, &v).map_err(|e| format!("write {v:?} to {}: {e}", p.display()))
    };
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| format!("create cgroup {}: {e}", p.display()))
    };
    if crate::runc::cgroup_v2() {
        let base = PathBuf::from("/sys/fs/cgroup");
        // enable cpu and memory for the children of each ancestor
        let mut cur = base.clone();
        for part in rel.split('/') {
            let _ = std::fs::write(cur.join("cgroup.subtree_control"), "+cpu +memory +pids");
            cur = cur.join(part);
            mkdir(&cur)?;
        }
        // runc's conversion of shares to weight
        let weight = 1 + ((r.cpu_shares.max(2) - 2) * 9999) / 262_142;
        write(cur.join("cpu.weight"), weight.to_string())?;
        let quota = if r.cpu_quota > 0 {
            r.cpu_quota.to_string()
        } else {
            "max".into()
        };
        write(cur.join("cpu.max"), format!("{quota} {}", r.cpu_period))?;
        let mem = if r.memory_limit > 0 {
            r.memory_limit.to_string()
        } else {
            "max".into()
        };
        write(cur.join("memory.max"), mem)?;
        return Ok(());
    }
    let cpu = PathBuf::from("/sys/fs/cgroup/cpu").join(rel);
    if Path::new("/sys/fs/cgroup/cpu").exists() {
        mkdir(&cpu)?;
        write(cpu.join("cpu.shares"), r.cpu_shares.max(2).to_string())?;
        write(cpu.join("cpu.cfs_period_us"), r.cpu_period.to_string())?;
        let quota = if r.cpu_quota > 0 { r.cpu_quota } else { -1 };
        write(cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
    }
    let mem = PathBuf::from("/sys/fs/cgroup/memory").join(rel);
    if Path::new("/sys/fs/cgroup/memory").exists() {
        mkdir(&mem)?;
        let limit = if r.memory_limit > 0 {
            r.memory_limit
        } else {
            -1
        };
        write(mem.join("memory.limit_in_bytes"), limit.to_string())?;
    }
    Ok(())
}

/// Creates the sandbox of a pod, or finds it running. `shim` runs the pause
/// (`[kubepull, runtime-shim]`). The flag is true when a new pause (new namespaces) was
/// started: containers still running in the namespaces of a previous one must be re-created.
pub fn ensure(
    root: &Path,
    sb: &PodSandbox,
    shim: &[std::ffi::OsString],
) -> Result<(SandboxState, bool), String> {
    let dir = sandbox_dir(root, &sb.pod_uid);
    let netns_present = sb.host_network || netns::pod_netns_path(&sb.pod_uid).exists();
    if netns_present && dir.join("sandbox.json").exists() {
        if let Some(state) = find(root, &sb.pod_uid) {
            return Ok((state, false));
        }
    }
    if !netns_present {
        // a pause still running in a network namespace that is gone is of no use
        if let Some(pid) = read_pid(&dir).filter(|p| pause_alive(*p, &dir)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    write_atomic(
        &dir.join("sandbox.json"),
        &serde_json::to_string(sb).map_err(|e| e.to_string())?,
    )?;
    let netns = if sb.host_network {
        None
    } else {
        Some(netns::create_pod_netns(&sb.pod_uid).map_err(|e| e.to_string())?)
    };
    if !sb.host_ipc {
        mount_shm(&dir.join("shm"))?;
    }
    let node_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let hostname = if sb.hostname.is_empty() {
        node_name
    } else {
        sb.hostname.clone()
    };
    write_atomic(&dir.join("hostname"), &format!("{hostname}\n"))?;
    let node_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    write_atomic(
        &dir.join("hosts"),
        &files::hosts_file(
            sb.host_network,
            &node_hosts,
            &[],
            &hostname,
            None,
            &sb.host_aliases,
        ),
    )?;
    write_atomic(&dir.join("resolv.conf"), &sb.resolv_conf)?;
    if !sb.cgroup_parent.is_empty() {
        pod_cgroup(&sb.cgroup_parent, &sb.pod_resources)?;
    }

    if let Some(pid) = read_pid(&dir) {
        if pause_alive(pid, &dir) {
            return Ok((
                SandboxState {
                    dir,
                    pause_pid: pid,
                    netns,
                },
                false,
            ));
        }
    }
    let _ = std::fs::remove_file(dir.join("pause.pid"));
    let (prog, rest) = shim.split_first().ok_or("no shim command")?;
    let mut flags = vec![];
    if !sb.host_ipc {
        flags.push("ipc");
    }
    if !sb.host_network {
        flags.push("uts");
    }
    if sb.share_pid && !sb.host_pid {
        flags.push("pid");
    }
    let mut c = Command::new(prog);
    c.args(rest)
        .arg("pause")
        .arg(&dir)
        .arg(netns.as_deref().unwrap_or(Path::new("-")))
        .arg(if flags.is_empty() {
            "-".to_string()
        } else {
            flags.join(",")
        })
        .arg(&hostname);
    for (k, v) in &sb.sysctls {
        c.arg(format!("{k}={v}"));
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let out = c
        .output()
        .map_err(|e| format!("start the pod's pause process: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pause process: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let pid = read_pid(&dir).ok_or("pause process wrote no pid")?;
    Ok((
        SandboxState {
            dir,
            pause_pid: pid,
            netns,
        },
        true,
    ))
}

/// The sandbox of a pod, if it runs.
pub fn find(root: &Path, uid: &str) -> Option<SandboxState> {
    running(root, uid).ok()
}

/// The sandbox of a pod if it runs, or why it does not: "the pod sandbox is not running: …"
/// naming the part that is missing (no pause pid, a pause that has exited, an unreadable
/// `sandbox.json`).
pub fn running(root: &Path, uid: &str) -> Result<SandboxState, String> {
    let dir = sandbox_dir(root, uid);
    let not_running = |why: String| format!("the pod sandbox is not running: {why}");
    let pid = read_pid(&dir).ok_or_else(|| {
        not_running(format!(
            "it has no pause process (no pid in {})",
            dir.join("pause.pid").display()
        ))
    })?;
    if !pause_alive(pid, &dir) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let live = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| !r.is_empty() && !r.starts_with(" Z"));
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        return Err(not_running(if !live {
            format!("its pause process {pid} has exited")
        } else if cmdline.is_empty() {
            format!("its pause process {pid} shows no command line (it is starting or exiting)")
        } else {
            format!("its pause process {pid} has exited (the pid is another process's now)")
        }));
    }
    let sandbox_json = dir.join("sandbox.json");
    let sb: PodSandbox = std::fs::read(&sandbox_json)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| not_running(format!("read {}: {e}", sandbox_json.display())))?;
    Ok(SandboxState {
        dir,
        pause_pid: pid,
        netns: (!sb.host_network).then(|| netns::pod_netns_path(uid)),
    })
}

/// The pods with a sandbox directory under `root`.
pub fn list(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join(".sandboxes"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The mount points of the cgroup hierarchies (v1 controllers and the v2 unified one).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    (f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2"))
                        .then(|| PathBuf::from(f[1]))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Tears a pod's sandbox down: kills the pause, unmounts `/dev/shm`, deletes the netns and
/// the pod cgroup, removes the directory. Missing parts are not errors.
pub fn remove(root: &Path, uid: &str) -> Result<(), String> {
    let dir = sandbox_dir(root, uid);
    let sb: Option<PodSandbox> = std::fs::read(dir.join("sandbox.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(pid) = read_pid(&dir) {
        if pause_alive(pid, &dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            for _ in 0..100 {
                if exited(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let shm = dir.join("shm");
    if is_mountpoint(&shm) {
        unmount(&shm);
    }
    if sb.as_ref().is_none_or(|s| !s.host_network) {
        netns::delete_pod_netns(uid).map_err(|e| e.to_string())?;
    }
    if let Some(sb) = &sb {
        if !sb.cgroup_parent.is_empty() {
            for m in cgroup_mounts() {
                let _ = std::fs::remove_dir(m.join(sb.cgroup_parent.trim_start_matches('/')));
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// The pause mode of the shim: `pause DIR NETNS|- FLAGS|- HOSTNAME [SYSCTL=VALUE…]`. FLAGS is a
/// comma list of `ipc`, `uts`, `pid`. Enters NETNS, unshares the flagged namespaces, sets the
/// hostname (new UTS) and the sysctls, starts the holder (`pause-hold`, PID 1 of a new PID
/// namespace), writes its pid to `DIR/pause.pid` and returns. `prefix` is the command that
/// runs the shim (argv before `pause`). Returns the process exit code.
pub fn pause_main(prefix: &[std::ffi::OsString], args: &[std::ffi::OsString]) -> i32 {
    use nix::sched::CloneFlags;
    let fail = |m: String| {
        eprintln!("{m}");
        1
    };
    let [dir, netns_path, flags, hostname, sysctls @ ..] = args else {
        return fail(
            "usage: runtime-shim pause DIR NETNS|- FLAGS|- HOSTNAME [SYSCTL=VALUE…]".into(),
        );
    };
    let dir = PathBuf::from(dir);
    if netns_path != "-" {
        let f = match std::fs::File::open(netns_path) {
            Ok(f) => f,
            Err(e) => return fail(format!("open {}: {e}", Path::new(netns_path).display())),
        };
        if let Err(e) = nix::sched::setns(&f, CloneFlags::CLONE_NEWNET) {
            return fail(format!("join the pod netns: {e}"));
        }
    }
    let flags = flags.to_string_lossy();
    let mut clone = CloneFlags::empty();
    for f in flags.split(',') {
        clone |= match f {
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            "pid" => CloneFlags::CLONE_NEWPID,
            _ => CloneFlags::empty(),
        };
    }
    if !clone.is_empty() {
        if let Err(e) = nix::sched::unshare(clone) {
            return fail(format!("unshare {flags}: {e}"));
        }
    }
    if clone.contains(CloneFlags::CLONE_NEWUTS) {
        if let Err(e) = nix::unistd::sethostname(hostname) {
            return fail(format!("sethostname: {e}"));
        }
    }
    for s in sysctls {
        let s = s.to_string_lossy();
        let Some((k, v)) = s.split_once('=') else {
            continue;
        };
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        if let Err(e) = std::fs::write(&p, v) {
            return fail(format!("set sysctl {k}={v}: {e}"));
        }
    }
    // the holder is our child: in the new PID namespace it is PID 1
    let Some((prog, rest)) = prefix.split_first() else {
        return fail("no shim command".into());
    };
    let mut c = Command::new(prog);
    c.args(rest)
        .arg("pause-hold")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = match c.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("start the namespace holder: {e}")),
    };
    let kill_child = |pid: u32| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    };
    // `spawn` returns once the holder's exec has begun, before the kernel has set up its
    // command line: until then /proc/<pid>/cmdline reads empty and `find` would take the new
    // pod sandbox for one whose pause has exited. The pid is published only after the holder
    // says it runs its own code, and `find` sees it.
    if let Err(e) = wait_ready(&mut child, &dir) {
        kill_child(child.id());
        return fail(e);
    }
    match write_atomic(&dir.join("pause.pid"), &child.id().to_string()) {
        Ok(()) => 0,
        Err(e) => {
            kill_child(child.id());
            fail(e)
        }
    }
}

/// The line the holder writes to its stdout once it runs (after `setsid`).
const HOLDER_READY: &[u8] = b"ready\n";

/// Waits for the holder's ready line, then checks that `find` recognises it.
fn wait_ready(child: &mut std::process::Child, dir: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut out = child
        .stdout
        .take()
        .ok_or("the namespace holder has no stdout")?;
    let mut got = vec![0u8; HOLDER_READY.len()];
    out.read_exact(&mut got)
        .map_err(|e| format!("the namespace holder exited before it was ready: {e}"))?;
    if got != HOLDER_READY {
        return Err(format!(
            "the namespace holder wrote {:?}, not its ready line",
            String::from_utf8_lossy(&got)
        ));
    }
    if !pause_alive(child.id(), dir) {
        return Err(format!(
            "the namespace holder {} does not show its sandbox directory in its command line",
            child.id()
        ));
    }
    Ok(())
}

/// The holder (`pause-hold DIR`): its own session, reaps whatever is reparented to it (as PID 1
/// of a shared PID namespace), never exits on its own.
pub fn hold_main() -> i32 {
    use std::io::Write;
    let _ = nix::unistd::setsid();
    // tell the pause that started us that we run; stdout is not used again
    let mut out = std::io::stdout().lock();
    if out
        .write_all(HOLDER_READY)
        .and_then(|()| out.flush())
        .is_err()
    {
        return 1;
    }
    drop(out);
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    loop {
        if nix::sys::wait::waitpid(None, None).is_err() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zombie counts as exited at once, before anything reaps it; a live process does not.
    #[test]
    fn a_zombie_has_exited() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!exited(pid));
        child.kill().unwrap();
        // not reaped yet: a zombie until wait()
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !exited(pid) {
            assert!(std::time::Instant::now() < deadline, "{pid} never exited");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "reaped too early"
        );
        child.wait().unwrap();
        assert!(exited(pid));
    }

    /// `running` names what is missing: the pid, a live pause, a readable `sandbox.json`.
    #[test]
    fn running_says_why_a_sandbox_is_not_running() {
        let root = tempfile::tempdir().unwrap();
        let uid = "6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
        let dir = sandbox_dir(root.path(), uid);
        std::fs::create_dir_all(&dir).unwrap();
        let err = running(root.path(), uid).unwrap_err();
        assert_eq!(
            err,
            format!(
                "the pod sandbox is not running: it has no pause process (no pid in {})",
                dir.join("pause.pid").display()
            )
        );
        assert!(find(root.path(), uid).is_none());

        // a pid that has exited (and been reaped)
        let mut gone = Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        std::fs::write(dir.join("pause.pid"), gone.id().to_string()).unwrap();
        let err = running(root.path(), uid).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "the pod sandbox is not running: its pause process {} has exited",
                gone.id()
            )),
            "{err}"
        );
        // a live process that is not this sandbox's pause
        std::fs::write(dir.join("pause.pid"), std::process::id().to_string()).unwrap();
        assert_eq!(
            running(root.path(), uid).unwrap_err(),
            format!(
                "the pod sandbox is not running: its pause process {} has exited (the pid is \
                 another process's now)",
                std::process::id()
            )
        );

        // a live process whose command line names "pause" and the directory stands in for the
        // holder
        let mut holder = Command::new("sh")
            .args(["-c", "sleep 60; exit 0", "pause-hold"])
            .arg(&dir)
            .spawn()
            .unwrap();
        std::fs::write(dir.join("pause.pid"), holder.id().to_string()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !pause_alive(holder.id(), &dir) {
            assert!(std::time::Instant::now() < deadline, "sh never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = running(root.path(), uid).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "the pod sandbox is not running: read {}: ",
                dir.join("sandbox.json").display()
            )),
            "{err}"
        );
        let sb = PodSandbox {
            pod_uid: uid.into(),
            host_network: true,
            ..Default::default()
        };
        std::fs::write(dir.join("sandbox.json"), serde_json::to_vec(&sb).unwrap()).unwrap();
        let state = running(root.path(), uid).unwrap();
        assert_eq!(state.pause_pid, holder.id());
        assert_eq!(state.netns, None);
        let _ = holder.kill();
        let _ = holder.wait();
    }
}
