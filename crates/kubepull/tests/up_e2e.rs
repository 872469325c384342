//! End to end: `kubepull up` (API server, controllers and node agent in one process), the real
//! kubectl, the real registry (TLS, htpasswd) and real runc. The seed story: a private image with
//! its pull secret runs and logs; without the secret it fails with ErrImagePull then
//! ImagePullBackOff; an unsubstituted placeholder is InvalidImageName; a ServiceAccount's
//! imagePullSecrets reach pods; tenant B cannot start tenant A's cached private image.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "tenant-a";
const PASS: &str = "E2e-Registry-Pass-91";

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

    // runAsNonRoot with an image that runs as root: the kubelet's CreateContainerConfigError
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nonroot\n  labels: {{app: nonroot}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  securityContext: {{runAsNonRoot: true}}\n  containers:\n  - name: app\n    image: {image}\n    resources: {{limits: {{cpu: 100m, memory: 64Mi}}}}\n"
    ));
    let pods = up.wait_pods(
        "default",
        "app=nonroot",
        |p| waiting_reason(p) == "CreateContainerConfigError",
        "CreateContainerConfigError for runAsNonRoot",
    );
    let pod = &pods["items"][0];
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"nonroot_default({uid})\", container: app)"
        ),
        "{pod}"
    );
    assert_eq!(pod["status"]["qosClass"], "Guaranteed", "{pod}");

    // a sysctl outside the kubelet's safe list: the pod fails (kubelet sysctl admission)
    up.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sysctl\n  labels: {app: sysctl}\nspec:\n  securityContext:\n    sysctls: [{name: kernel.msgmax, value: '65536'}]\n  containers:\n  - name: app\n    image: busybox\n",
    );
    let pods = up.wait_pods(
        "default",
        "app=sysctl",
        |p| p["status"]["phase"] == "Failed",
        "Failed for an unsafe sysctl",
    );
    let st = &pods["items"][0]["status"];
    assert_eq!(st["reason"], "SysctlForbidden", "{st}");
    assert_eq!(
        st["message"], "forbidden sysctl: \"kernel.msgmax\" not allowlisted",
        "{st}"
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
                let containers = root.join("containers");
                for uid in kubepull_node::sandbox::pause::list(&containers) {
                    let _ = kubepull_node::sandbox::pause::remove(&containers, &uid);
                }
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
