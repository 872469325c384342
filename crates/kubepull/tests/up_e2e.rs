//! End to end: `kubepull up` (API server, controllers and node agent in one process), the real
//! kubectl, the real registry (TLS, htpasswd) and real runc. The seed story: a private image with
//! its pull secret runs and logs; without the secret it fails with ErrImagePull then
//! ImagePullBackOff; an unsubstituted placeholder is InvalidImageName; a ServiceAccount's
//! imagePullSecrets reach pods; tenant B cannot start tenant A's cached private image.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "tenant-a";
const PASS: &str = "E2e-Registry-Pass-91";

struct Up {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Up {
    fn drop(&mut self) {
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
        // container root filesystems (overlay) and volume mounts left mounted
        unmount_under(self.dir.path());
    }
}

/// Lazily unmounts every mount at or below `dir` (deepest first).
fn unmount_under(dir: &Path) {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
}

impl Up {
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/admin.kubeconfig")
    }
    fn log(&self) -> String {
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
    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .args(args)
            .output()
            .expect("kubectl")
    }
    fn ok(&self, args: &[&str]) -> String {
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
    fn apply(&self, yaml: &str) {
        let p = self.dir.path().join(format!("m{}.yaml", yaml.len()));
        std::fs::write(&p, yaml).unwrap();
        self.ok(&["apply", "-f", p.to_str().unwrap()]);
    }
    /// Waits until `jsonpath` on the pods matching `selector` in `ns` yields `want` for all.
    fn wait_pods(
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

fn waiting_reason(p: &serde_json::Value) -> String {
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn start_up(hosts: &Path) -> Up {
    start_up_in(hosts, tempfile::tempdir().unwrap())
}

fn start_up_in(hosts: &Path, dir: tempfile::TempDir) -> Up {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("up.log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args(["up", "--secure-port", "0", "--name", "node-e2e"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--hosts-dir")
        .arg(hosts)
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start kubepull up");
    let up = Up { child, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if up.kubeconfig().exists() {
            let o = up.kubectl(&["get", "nodes", "-o", "name"]);
            if String::from_utf8_lossy(&o.stdout).contains("node/node-e2e") {
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

fn runc_works() -> bool {
    Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn seed_story_with_kubectl_registry_and_runc() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(
        &[
            "/bin/sh",
            "-c",
            "echo hello from kubepull; echo user=$(id -u) greeting=$GREETING; sleep 3600",
        ],
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/app", "v1", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let up = start_up(hosts.path());
    let image = format!("{}/team/app:v1", reg.host());

    up.ok(&["create", "namespace", "tenant-a"]);
    up.ok(&["create", "namespace", "tenant-b"]);
    let out = up.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", reg.host()),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASS}"),
        "--docker-email=a@example.com",
        "-n",
        "tenant-a",
    ]);
    assert_eq!(out.trim(), "secret/regcred created");

    // 1. private image with its secret: Running, logs visible
    up.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: tenant-a\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      imagePullSecrets: [{{name: regcred}}]\n      containers:\n      - name: app\n        image: {image}\n        imagePullPolicy: IfNotPresent\n        env: [{{name: GREETING, value: hi}}]\n"
    ));
    let pods = up.wait_pods(
        "tenant-a",
        "app=web",
        |p| p["status"]["phase"] == "Running",
        "web pods Running",
    );
    let name = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let table = up.ok(&["get", "pods", "-n", "tenant-a"]);
    assert!(
        table.contains("1/1") && table.contains("Running"),
        "{table}\n{}",
        up.log()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = up.ok(&["logs", &name, "-n", "tenant-a"]);
        if logs.contains("hello from kubepull") {
            assert!(logs.contains("greeting=hi"), "{logs}");
            break;
        }
        assert!(Instant::now() < deadline, "no logs: {logs:?}\n{}", up.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    let events = up.ok(&["get", "events", "-n", "tenant-a"]);
    assert!(
        events.contains("Pulling") && events.contains("Successfully pulled image"),
        "{events}"
    );
    assert!(events.contains("Started"), "{events}");
    // one GET per blob, however many pods asked
    for layer in &img.layers {
        let d = kubepull_core::reference::Digest::sha256_of(layer);
        assert_eq!(reg.blob_gets(&d), 1, "{}", reg.log());
    }

    // 2. the same image without the secret, in another tenant: never started from the cache
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nosecret\n  namespace: tenant-b\n  labels: {{app: nosecret}}\nspec:\n  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: IfNotPresent\n"
    ));
    let pods = up.wait_pods(
        "tenant-b",
        "app=nosecret",
        |p| waiting_reason(p) == "ImagePullBackOff",
        "ErrImagePull then ImagePullBackOff",
    );
    let msg = pods["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.starts_with(&format!(
            "Back-off pulling image \"{image}\": ErrImagePull: "
        )),
        "{msg}"
    );
    let describe = up.ok(&["describe", "pod", "nosecret", "-n", "tenant-b"]);
    assert!(describe.contains("Failed to pull image"), "{describe}");
    assert!(
        describe.contains("ImagePullBackOff") || describe.contains("Back-off pulling image"),
        "{describe}"
    );
    let table = up.ok(&["get", "pods", "-n", "tenant-b"]);
    assert!(
        table.contains("ImagePullBackOff") || table.contains("ErrImagePull"),
        "{table}"
    );
    assert!(!up.log().contains(PASS), "the password reached the log");

    // 3. a ServiceAccount's imagePullSecrets reach pods created afterwards
    up.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", reg.host()),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASS}"),
        "-n",
        "tenant-b",
    ]);
    up.ok(&[
        "patch",
        "serviceaccount",
        "default",
        "-n",
        "tenant-b",
        "-p",
        r#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
    ]);
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: viasa\n  namespace: tenant-b\n  labels: {{app: viasa}}\nspec:\n  containers:\n  - name: app\n    image: {image}\n"
    ));
    let pods = up.wait_pods(
        "tenant-b",
        "app=viasa",
        |p| p["status"]["phase"] == "Running",
        "pod with SA pull secret Running",
    );
    assert_eq!(
        pods["items"][0]["spec"]["imagePullSecrets"][0]["name"],
        "regcred"
    );

    // 4. an unsubstituted placeholder
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: placeholder\n  namespace: tenant-a\n  labels: {{app: placeholder}}\nspec:\n  containers:\n  - name: app\n    image: {}/team/app:${{TAG}}\n",
        reg.host()
    ));
    up.wait_pods(
        "tenant-a",
        "app=placeholder",
        |p| waiting_reason(p) == "InvalidImageName",
        "InvalidImageName",
    );

    // 5. deleting the Deployment removes its pods and their containers
    up.ok(&["delete", "deployment", "web", "-n", "tenant-a"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = up.ok(&[
            "get", "pods", "-n", "tenant-a", "-l", "app=web", "-o", "name",
        ]);
        if out.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pods not deleted: {out}\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Faults: a crashing container goes to CrashLoopBackOff with its exit code; a rotated password
/// is used once the Secret is fixed and `kubepull retry` skips the back-off; `kill -9` of the
/// whole `kubepull up` process and a restart on the same data dir adopt the running container
/// without restarting it.
#[test]
fn crash_loop_rotation_and_agent_kill_9() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let mut reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["/bin/sh", "-c", "echo up; sleep 3600"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/app", "v1", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let mut up = start_up(hosts.path());
    let image = format!("{}/team/app:v1", reg.host());
    let secret = |pass: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\n  namespace: default\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{\"{}\":{{\"username\":\"{USER}\",\"password\":\"{pass}\"}}}}}}'\n",
            reg.host()
        )
    };

    // a stale password: ErrImagePull, then back-off
    up.apply(&secret("stale-password"));
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: rotate\n  labels: {{app: rotate}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {image}\n"
    ));
    up.wait_pods(
        "default",
        "app=rotate",
        |p| waiting_reason(p) == "ImagePullBackOff",
        "back-off with a stale password",
    );
    // rotate the password in the Secret, retry now instead of waiting out the back-off
    up.apply(&secret(PASS));
    let o = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .env("KUBECONFIG", up.kubeconfig())
        .env("HOME", up.dir.path())
        .args(["retry", "rotate"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    up.wait_pods(
        "default",
        "app=rotate",
        |p| p["status"]["phase"] == "Running",
        "Running after the rotation",
    );

    // a container that exits 3: CrashLoopBackOff, lastState has the exit code
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\n  labels: {{app: crash}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {image}\n    command: [/bin/sh, -c, 'echo crashing; exit 3']\n"
    ));
    let pods = up.wait_pods(
        "default",
        "app=crash",
        |p| {
            waiting_reason(p) == "CrashLoopBackOff"
                && p["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(0)
                    >= 1
        },
        "CrashLoopBackOff",
    );
    let cs = &pods["items"][0]["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
    let msg = cs["state"]["waiting"]["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("back-off 10s restarting failed container=app pod=crash_default("),
        "{msg}"
    );

    // a referenced Secret that does not exist: a warning event, and the pull goes on with the
    // others; the registry is down at first and the pod recovers on its own once it is back
    reg.stop();
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: recover\n  labels: {{app: recover}}\nspec:\n  imagePullSecrets: [{{name: ghost}}, {{name: regcred}}]\n  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: Always\n"
    ));
    up.wait_pods(
        "default",
        "app=recover",
        |p| waiting_reason(p) == "ImagePullBackOff",
        "back-off while the registry is down",
    );
    let events = up.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=recover",
    ]);
    assert!(
        events.contains("FailedToRetrieveImagePullSecret")
            && events.contains("Unable to retrieve some image pull secrets (ghost); attempting to pull the image may not succeed."),
        "{events}"
    );
    reg.restart();
    up.wait_pods(
        "default",
        "app=recover",
        |p| p["status"]["phase"] == "Running",
        "recovered after the registry came back",
    );

    // kill -9 of the whole process; the restarted agent adopts the running container
    let before = up.wait_pods(
        "default",
        "app=rotate",
        |p| p["status"]["phase"] == "Running",
        "Running",
    );
    let cid = before["items"][0]["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(up.child.id().to_string())
        .status();
    let _ = up.child.wait();
    let dir = std::mem::replace(&mut up.dir, tempfile::tempdir().unwrap());
    std::mem::forget(up);
    let up = start_up_in(hosts.path(), dir);
    std::thread::sleep(Duration::from_secs(3));
    let after = up.wait_pods(
        "default",
        "app=rotate",
        |p| p["status"]["phase"] == "Running",
        "Running after kill -9",
    );
    let cs = &after["items"][0]["status"]["containerStatuses"][0];
    assert_eq!(
        cs["containerID"].as_str().unwrap_or(""),
        cid,
        "the container was replaced: {cs}"
    );
    assert_eq!(cs["restartCount"], 0, "{cs}");
    assert!(!up.log().contains(PASS), "the password reached the log");
}

/// More than one machine: `kubepull server` on a real etcd, two `kubepull node` processes with
/// their own roots; a Deployment's two replicas land on both nodes, both run, and each node
/// fetches each blob once.
#[test]
fn two_nodes_on_etcd() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let etcd = kubepull_testkit::etcd::Etcd::start(1);
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(
        &["/bin/sh", "-c", "echo multi; sleep 3600"],
        &[("/etc/multi", b"1\n")],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/app", "v2", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let kp = env!("CARGO_BIN_EXE_kubepull");
    let log = |n: &str| std::fs::File::create(dir.path().join(n)).unwrap();
    let mut children: Vec<Child> = vec![];
    // etcd may need a moment: the server retries by being restarted until it listens
    let deadline = Instant::now() + Duration::from_secs(30);
    let server = loop {
        let l = log("server.log");
        let mut c = Command::new(kp)
            .args(["server", "--secure-port", "0", "--datastore", &etcd.spec()])
            .arg("--data-dir")
            .arg(&data)
            .stdout(l.try_clone().unwrap())
            .stderr(l)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        match c.try_wait() {
            Ok(None) => break c,
            _ => assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            ),
        }
    };
    children.push(server);
    struct Kill(Vec<Child>, Vec<PathBuf>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
            for root in &self.1 {
                let rr = root.join("containers/.runc");
                if let Ok(out) = Command::new("runc")
                    .arg("--root")
                    .arg(&rr)
                    .args(["list", "-q"])
                    .output()
                {
                    for id in String::from_utf8_lossy(&out.stdout).lines() {
                        let _ = Command::new("runc")
                            .arg("--root")
                            .arg(&rr)
                            .args(["delete", "-f", id])
                            .status();
                    }
                }
                unmount_under(root);
            }
        }
    }
    let kubeconfig = data.join("admin.kubeconfig");
    while !kubeconfig.exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
        .unwrap();
    let mut roots = vec![];
    for n in ["n1", "n2"] {
        let token = Command::new(kp)
            .args(["token", "node", n, "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
        let root = dir.path().join(n);
        roots.push(root.clone());
        let l = log(&format!("{n}.log"));
        children.push(
            Command::new(kp)
                .args(["node", "--server", &url, "--name", n])
                .arg("--ca-file")
                .arg(data.join("pki/ca.crt"))
                .arg("--root")
                .arg(&root)
                .arg("--hosts-dir")
                .arg(hosts.path())
                .env("KUBEPULL_NODE_TOKEN", token)
                .stdout(l.try_clone().unwrap())
                .stderr(l)
                .spawn()
                .unwrap(),
        );
    }
    let _guard = Kill(children, roots);
    let up = Up2 {
        kubeconfig,
        home: dir.path().to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while up.get(&["get", "nodes"]).matches(" Ready ").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "nodes not Ready: {}",
            up.get(&["get", "nodes"])
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    up.get(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", reg.host()),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASS}"),
    ]);
    let manifest = dir.path().join("d.yaml");
    std::fs::write(&manifest, format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: spread\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: spread}}\n  template:\n    metadata:\n      labels: {{app: spread}}\n    spec:\n      imagePullSecrets: [{{name: regcred}}]\n      containers:\n      - name: app\n        image: {}/team/app:v2\n",
        reg.host()
    )).unwrap();
    up.get(&["apply", "-f", manifest.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = up.get(&["get", "pods", "-l", "app=spread", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let running = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        let nodes: std::collections::HashSet<String> = items
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
            .collect();
        if running == 2 {
            assert_eq!(nodes.len(), 2, "both replicas on one node: {nodes:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not Running on two nodes: {}\n{}\n{}",
            up.get(&["get", "pods", "-o", "wide"]),
            std::fs::read_to_string(dir.path().join("n1.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("n2.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // each node downloaded each layer once: two GETs per layer in all
    for layer in &img.layers {
        let d = kubepull_core::reference::Digest::sha256_of(layer);
        assert_eq!(reg.blob_gets(&d), 2, "{}", reg.log());
    }
}

struct Up2 {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Up2 {
    fn get(&self, args: &[&str]) -> String {
        let o = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .args(args)
            .output()
            .expect("kubectl");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}
