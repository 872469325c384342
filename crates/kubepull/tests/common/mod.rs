//! The `kubepull up` harness shared by the end-to-end tests: one API server, controllers and
//! node agent in a process, driven with the real kubectl; stopped, with its containers, on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Up {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub name: String,
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A node name and a cluster CIDR of this test's own (its bridge and pod IPs differ from those
/// of tests running at the same time): 10.X.0.0/16 with X from the pid, skipping ranges the
/// machine routes.
pub fn unique_node() -> (String, String) {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let pid = std::process::id();
    let routes = Command::new("ip")
        .args(["-j", "route"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut x = 0;
    for k in 0..150 {
        x = 60 + (pid + n * 7 + k) % 150;
        if !routes.contains(&format!("\"10.{x}.")) {
            break;
        }
    }
    (format!("node-e2e-{pid}-{n}"), format!("10.{x}.0.0/16"))
}

impl Drop for Up {
    fn drop(&mut self) {
        // kubepull down: the process, its containers and their networks
        let _ = Command::new(env!("CARGO_BIN_EXE_kubepull"))
            .arg("down")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .output();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // containers left running are stopped with their runc state
        let runc_root = self.dir.path().join("data/node/containers/.runc");
        if let Ok(out) = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .arg("list")
            .arg("-q")
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "-f", id])
                    .status();
            }
        }
        // then the pod sandboxes (netns, pause, /dev/shm, pod cgroup) of pods left running
        let containers = self.dir.path().join("data/node/containers");
        for uid in kubepull_node::sandbox::pause::list(&containers) {
            let _ = kubepull_node::sandbox::pause::remove(&containers, &uid);
        }
        // container root filesystems (overlay) and volume mounts left mounted
        unmount_under(self.dir.path());
    }
}

/// The mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts
}

/// Lazily unmounts every mount at or below `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
}

impl Up {
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/admin.kubeconfig")
    }
    /// The node agent's state: its image store is `images/`, its containers `containers/`.
    pub fn node_dir(&self) -> PathBuf {
        self.dir.path().join("data/node")
    }
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default();
        // container output too, for diagnosis
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("data/node/containers")) {
            for e in rd.flatten() {
                if let Ok(l) = std::fs::read_to_string(e.path().join("container.log")) {
                    s.push_str(&format!(
                        "\n--- container {} ---\n{l}",
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
        s
    }
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .args(args)
            .output()
            .expect("kubectl")
    }
    /// kubectl's stdout and stderr, whatever its status (for diagnostics).
    #[allow(dead_code)]
    pub fn kubectl_text(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed:\n{}\n{}\n--- kubepull up log ---\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// `kubectl create secret docker-registry NAME` for `server` with `user` and `password`, plus
    /// `extra` arguments (a namespace, an email); kubectl's output.
    #[allow(dead_code)]
    pub fn create_pull_secret(
        &self,
        name: &str,
        server: &str,
        user: &str,
        password: &str,
        extra: &[&str],
    ) -> String {
        let mut args = vec![
            "create".to_string(),
            "secret".into(),
            "docker-registry".into(),
            name.into(),
            format!("--docker-server={server}"),
            format!("--docker-username={user}"),
            format!("--docker-password={password}"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
    pub fn apply(&self, yaml: &str) {
        let p = self.dir.path().join(format!("m{}.yaml", yaml.len()));
        std::fs::write(&p, yaml).unwrap();
        self.ok(&["apply", "-f", p.to_str().unwrap()]);
    }
    /// Waits until `jsonpath` on the pods matching `selector` in `ns` yields `want` for all.
    pub fn wait_pods(
        &self,
        ns: &str,
        selector: &str,
        what: impl Fn(&serde_json::Value) -> bool,
        why: &str,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.ok(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if !items.is_empty() && items.iter().all(&what) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {why}: {}\n--- kubepull up log ---\n{}",
                serde_json::to_string_pretty(&v["items"]).unwrap_or_default(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

pub fn waiting_reason(p: &serde_json::Value) -> String {
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

pub fn start_up(hosts: &Path) -> Up {
    start_up_in(hosts, tempfile::tempdir().unwrap(), None)
}

/// `kubepull up` with extra flags.
pub fn start_up_with(hosts: &Path, extra: &[&str]) -> Up {
    start_up_full(hosts, tempfile::tempdir().unwrap(), None, extra)
}

/// `kubepull up` in `dir` (again under `name` when given).
pub fn start_up_in(hosts: &Path, dir: tempfile::TempDir, name: Option<String>) -> Up {
    start_up_full(hosts, dir, name, &[])
}

/// `kubepull up` in `dir` (again under `name` when given) with extra flags.
pub fn start_up_full(
    hosts: &Path,
    dir: tempfile::TempDir,
    name: Option<String>,
    extra: &[&str],
) -> Up {
    let (fresh, cidr) = unique_node();
    // a restart keeps the cluster CIDR remembered in the data dir
    let cidr_args: Vec<String> = match name {
        None => vec!["--cluster-cidr".into(), cidr],
        Some(_) => vec![],
    };
    let name = name.unwrap_or(fresh);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("up.log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args(["up", "--secure-port", "0", "--name", &name])
        .args(&cidr_args)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--hosts-dir")
        .arg(hosts)
        .args(extra)
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start kubepull up");
    let up = Up { child, dir, name };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if up.kubeconfig().exists() {
            let o = up.kubectl(&["get", "nodes", "-o", "name"]);
            if String::from_utf8_lossy(&o.stdout).contains(&format!("node/{}", up.name)) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "kubepull up did not come up:\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    up
}

pub fn runc_works() -> bool {
    Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
