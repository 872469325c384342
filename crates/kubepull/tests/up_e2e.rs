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
    let out = up.create_pull_secret(
        "regcred",
        &reg.host(),
        USER,
        PASS,
        &["--docker-email=a@example.com", "-n", "tenant-a"],
    );
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
        assert_eq!(reg.wait_blob_gets(&d, 1), 1, "{}", reg.log());
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
    up.create_pull_secret("regcred", &reg.host(), USER, PASS, &["-n", "tenant-b"]);
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

/// `kubepull up --discard-unpacked-layers`: the node agent pulls a private image unpacking its
/// layers and keeping none of their blobs; the pod's container starts from the layer snapshots
/// and runs; the node's store then holds the manifest and the config, no layer blob and no
/// download left in `ingest/`, and its record marks the layers discarded.
#[test]
fn a_pod_runs_from_an_image_whose_layer_blobs_were_discarded() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(
        &["/bin/sh", "-c", "cat /etc/motd; sleep 3600"],
        &[("/etc/motd", b"started from the snapshots\n")],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/app", "v1", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let up = start_up_with(hosts.path(), &["--discard-unpacked-layers"]);
    let image = format!("{}/team/app:v1", reg.host());
    up.create_pull_secret("regcred", &reg.host(), USER, PASS, &[]);
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: discarded\n  labels: {{app: discarded}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {image}\n"
    ));
    up.wait_pods(
        "default",
        "app=discarded",
        |p| p["status"]["phase"] == "Running",
        "the pod Running",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = up.ok(&["logs", "discarded"]);
        if logs.contains("started from the snapshots") {
            break;
        }
        assert!(Instant::now() < deadline, "no logs: {logs:?}\n{}", up.log());
        std::thread::sleep(Duration::from_millis(300));
    }

    let store = up.node_dir().join("images");
    let blob = |b: &[u8]| {
        store
            .join("blobs/sha256")
            .join(kubepull_core::reference::Digest::sha256_of(b).hex())
    };
    for l in &img.layers {
        let d = kubepull_core::reference::Digest::sha256_of(l);
        assert_eq!(reg.wait_blob_gets(&d, 1), 1, "{}", reg.log());
        assert!(!blob(l).exists(), "layer blob {d} kept\n{}", up.log());
    }
    assert!(blob(&img.config).exists(), "the config is kept");
    assert!(blob(&img.manifest).exists(), "the manifest is kept");
    let ingest: Vec<String> = std::fs::read_dir(store.join("ingest"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(ingest.is_empty(), "left in ingest/: {ingest:?}");
    let o = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args(["images", "-o", "json", "--root"])
        .arg(&store)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stderr));
    });
    let rec = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == image.as_str()))
        .unwrap_or_else(|| panic!("{image} not in {v}"));
    assert_eq!(rec["layersDiscarded"], img.layers.len(), "{rec}");
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

    // a sysctl outside the kubelet's safe list: the pod fails (kubelet sysctl admission); in a
    // namespace whose Pod Security level admits it, so the node is the one that refuses
    up.ok(&["create", "namespace", "unsafe-sysctl"]);
    up.ok(&[
        "label",
        "namespace",
        "unsafe-sysctl",
        "pod-security.kubernetes.io/enforce=privileged",
        "pod-security.kubernetes.io/warn=privileged",
        "pod-security.kubernetes.io/audit=privileged",
    ]);
    up.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sysctl\n  namespace: unsafe-sysctl\n  labels: {app: sysctl}\nspec:\n  securityContext:\n    sysctls: [{name: kernel.msgmax, value: '65536'}]\n  containers:\n  - name: app\n    image: busybox\n",
    );
    let pods = up.wait_pods(
        "unsafe-sysctl",
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
    let name = up.name.clone();
    std::mem::forget(up);
    let up = start_up_in(hosts.path(), dir, Some(name));
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
    // the adopted pod keeps its network: same IP, no second ADD
    let ip_before = before["items"][0]["status"]["podIP"].as_str().unwrap_or("");
    assert!(
        !ip_before.is_empty() && ip_before != "127.0.0.1",
        "{ip_before:?}"
    );
    assert_eq!(
        after["items"][0]["status"]["podIP"],
        before["items"][0]["status"]["podIP"]
    );
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
    let (base, cidr) = unique_node();
    let server = loop {
        let l = log("server.log");
        let mut c = Command::new(kp)
            .args(["server", "--secure-port", "0", "--datastore", &etcd.spec()])
            .args(["--cluster-cidr", &cidr])
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
            // kubepull down --root: each node, its containers and their networks
            for root in &self.1 {
                let _ = Command::new(env!("CARGO_BIN_EXE_kubepull"))
                    .arg("down")
                    .arg("--root")
                    .arg(root)
                    .output();
            }
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
    let names = [format!("{base}-n1"), format!("{base}-n2")];
    for n in names.iter().map(String::as_str) {
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
            // each pod has an IP of its own node's podCIDR; the nodes' ranges differ
            let nv: serde_json::Value =
                serde_json::from_str(&up.get(&["get", "nodes", "-o", "json"])).unwrap();
            let cidrs: std::collections::HashMap<String, String> = nv["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    (
                        n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        n["spec"]["podCIDR"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            assert_ne!(cidrs[&names[0]], cidrs[&names[1]], "{cidrs:?}");
            for p in &items {
                let node = p["spec"]["nodeName"].as_str().unwrap_or("");
                let ip = p["status"]["podIP"].as_str().unwrap_or("");
                let prefix = cidrs[node].trim_end_matches("0/24");
                assert!(
                    cidrs[node].ends_with(".0/24") && ip.starts_with(prefix),
                    "pod IP {ip} is not in {node}'s podCIDR {}",
                    cidrs[node]
                );
            }
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
        assert_eq!(reg.wait_blob_gets(&d, 2), 2, "{}", reg.log());
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

fn netns_names() -> String {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn link_names() -> Vec<(String, String)> {
    let out = Command::new("ip").args(["-j", "link"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| {
            (
                l["ifname"].as_str().unwrap_or("").to_string(),
                l["master"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// CNI pod networking through `kubepull up`: each pod gets an IP of the node's podCIDR (in
/// `status.podIP(s)` and the `status.podIP` fieldRef), one pod reaches the other over its pod
/// IP, and `kubepull down` removes the process, the containers, the namespaces, the veths, the
/// bridge, the IP reservations and the masquerade rules.
#[test]
fn pod_ips_on_the_node_bridge_and_down_leaves_nothing() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let reg = Registry::start(&[(USER, PASS)]);
    let server_img = busybox_image(
        &[
            "/bin/sh",
            "-c",
            "echo my-ip=$MY_IP; exec nc -ll -p 8080 -e echo pong-from-server",
        ],
        &[],
    );
    let client_img = busybox_image(
        &[
            "/bin/sh",
            "-c",
            "until nc -w 2 $SERVER_IP 8080 </dev/null; do sleep 1; done; sleep 3600",
        ],
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/server", "v1", &server_img));
    rt.block_on(reg.push("team/client", "v1", &client_img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let up = start_up(hosts.path());
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\n  namespace: default\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{\"{}\":{{\"username\":\"{USER}\",\"password\":\"{PASS}\"}}}}}}'\n",
        reg.host()
    );
    up.apply(&secret);
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: server\n  labels: {{app: server}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}/team/server:v1\n    env:\n    - name: MY_IP\n      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}\n",
        reg.host()
    ));
    let v = up.wait_pods(
        "default",
        "app=server",
        |p| p["status"]["phase"] == "Running",
        "server Running",
    );
    let server = &v["items"][0];
    let server_ip = server["status"]["podIP"].as_str().unwrap_or("").to_string();
    assert_eq!(
        server["status"]["podIPs"],
        serde_json::json!([{"ip": server_ip}])
    );
    assert_eq!(server["status"]["hostIP"], "127.0.0.1");
    let node: serde_json::Value =
        serde_json::from_str(&up.ok(&["get", "node", &up.name, "-o", "json"])).unwrap();
    let cidr = node["spec"]["podCIDR"].as_str().unwrap_or("").to_string();
    let prefix = cidr.trim_end_matches("0/24");
    assert!(
        cidr.ends_with(".0/24") && server_ip.starts_with(prefix),
        "pod IP {server_ip:?} not in the node's podCIDR {cidr:?}"
    );
    let uid = server["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let ns_name = format!(
        "kp-{}",
        uid.chars()
            .filter(|c| *c != '-')
            .take(16)
            .collect::<String>()
    );
    assert!(netns_names().contains(&ns_name), "{}", netns_names());
    let bridge = kubepull_node::podnet::bridge_name(&up.name);
    assert!(link_names().iter().any(|(n, _)| *n == bridge));

    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\n  labels: {{app: client}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}/team/client:v1\n    env: [{{name: SERVER_IP, value: \"{server_ip}\"}}]\n",
        reg.host()
    ));
    let v = up.wait_pods(
        "default",
        "app=client",
        |p| p["status"]["phase"] == "Running",
        "client Running",
    );
    let client_ip = v["items"][0]["status"]["podIP"].as_str().unwrap_or("");
    assert!(client_ip.starts_with(prefix) && client_ip != server_ip);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = up.ok(&["logs", "client"]);
        if logs.contains("pong-from-server") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client never reached {server_ip}:8080: {logs:?}\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let logs = up.ok(&["logs", "server"]);
    assert!(logs.contains(&format!("my-ip={server_ip}")), "{logs}");

    // a pod that ran to completion gives its network back and keeps its reported IP
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: job\n  labels: {{app: job}}\nspec:\n  restartPolicy: Never\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}/team/client:v1\n    command: [/bin/sh, -c, 'ip addr show eth0 >/dev/null 2>&1; exit 0']\n",
        reg.host()
    ));
    let jv = up.wait_pods(
        "default",
        "app=job",
        |p| p["status"]["phase"] == "Succeeded",
        "job Succeeded",
    );
    let job_uid = jv["items"][0]["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let job_ns = format!(
        "kp-{}",
        job_uid
            .chars()
            .filter(|c| *c != '-')
            .take(16)
            .collect::<String>()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while netns_names().contains(&job_ns) {
        assert!(
            Instant::now() < deadline,
            "netns {job_ns} stays after the pod finished"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let job_ip = jv["items"][0]["status"]["podIP"].as_str().unwrap_or("");
    assert!(job_ip.starts_with(prefix), "{job_ip:?}");

    // deleting a pod releases its network
    up.ok(&["delete", "pod", "client", "--wait=true"]);
    let client_uid = v["items"][0]["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let client_ns = format!(
        "kp-{}",
        client_uid
            .chars()
            .filter(|c| *c != '-')
            .take(16)
            .collect::<String>()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while netns_names().contains(&client_ns) {
        assert!(
            Instant::now() < deadline,
            "netns {client_ns} stays after the pod is gone"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // kubepull down
    let data = up.dir.path().join("data");
    let o = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .arg("down")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "kubepull down: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("kubepull is down"), "{out}");
    let pid = up.child.id();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "kubepull up still runs after down"
    );
    let runc = Command::new("runc")
        .arg("--root")
        .arg(data.join("node/containers/.runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&runc.stdout).trim(),
        "",
        "containers left"
    );
    assert!(!netns_names().contains(&ns_name), "{}", netns_names());
    let links = link_names();
    assert!(
        !links.iter().any(|(n, _)| *n == bridge),
        "bridge {bridge} left"
    );
    assert!(
        !links.iter().any(|(_, m)| *m == bridge),
        "veths left on {bridge}"
    );
    let nat = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    let nat = String::from_utf8_lossy(&nat.stdout);
    assert!(!nat.contains(&ns_name), "masquerade rules left: {nat}");
    assert!(!data.join("node/cni").exists(), "IPAM state left");
    // a second down has nothing to do and succeeds
    let o = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .arg("down")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// After a crash: `kubepull node` is killed with SIGKILL, its pod is force-deleted meanwhile;
/// the restarted node releases that pod's network (DEL, namespace removed) while the pods still
/// bound to it keep theirs.
#[test]
fn a_restarted_node_releases_networks_of_pods_gone_while_it_was_down() {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["/bin/sh", "-c", "sleep 3600"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/app", "v3", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let root = dir.path().join("node");
    let kp = env!("CARGO_BIN_EXE_kubepull");
    let (name, cidr) = unique_node();
    let log = |n: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join(n))
            .unwrap()
    };
    struct Guard(Vec<Child>, PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = Command::new(env!("CARGO_BIN_EXE_kubepull"))
                .arg("down")
                .arg("--root")
                .arg(&self.1)
                .output();
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let l = log("server.log");
    let server = Command::new(kp)
        .args(["server", "--secure-port", "0", "--cluster-cidr", &cidr])
        .arg("--data-dir")
        .arg(&data)
        .stdout(l.try_clone().unwrap())
        .stderr(l)
        .spawn()
        .unwrap();
    let mut guard = Guard(vec![server], root.clone());
    let kubeconfig = data.join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
        .unwrap();
    let token = Command::new(kp)
        .args(["token", "node", &name, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let start_node = || {
        let l = log("node.log");
        Command::new(kp)
            .args(["node", "--server", &url, "--name", &name])
            .arg("--ca-file")
            .arg(data.join("pki/ca.crt"))
            .arg("--root")
            .arg(&root)
            .arg("--hosts-dir")
            .arg(hosts.path())
            .env("KUBEPULL_NODE_TOKEN", &token)
            .stdout(l.try_clone().unwrap())
            .stderr(l)
            .spawn()
            .unwrap()
    };
    guard.0.push(start_node());
    let k = Up2 {
        kubeconfig,
        home: dir.path().to_path_buf(),
    };
    k.get(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", reg.host()),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASS}"),
    ]);
    for p in ["stays", "goes"] {
        let f = dir.path().join(format!("{p}.yaml"));
        std::fs::write(&f, format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {p}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}/team/app:v3\n",
            reg.host()
        )).unwrap();
        k.get(&["apply", "-f", f.to_str().unwrap()]);
    }
    let netns_of = |pod: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&k.get(&["get", "pod", pod, "-o", "json"])).unwrap();
        let uid = v["metadata"]["uid"].as_str().unwrap_or("").replace('-', "");
        format!("kp-{}", &uid[..16.min(uid.len())])
    };
    let running = |pod: &str| -> bool {
        let v: serde_json::Value =
            serde_json::from_str(&k.get(&["get", "pod", pod, "-o", "json"])).unwrap();
        v["status"]["phase"] == "Running"
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !(running("stays") && running("goes")) {
        assert!(
            Instant::now() < deadline,
            "pods not Running: {}\n{}",
            k.get(&["get", "pods", "-o", "wide"]),
            std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ns_stays, ns_goes) = (netns_of("stays"), netns_of("goes"));
    assert!(netns_names().contains(&ns_goes) && netns_names().contains(&ns_stays));

    // the node dies; meanwhile its pod "goes" is removed from the API
    let mut node = guard.0.pop().unwrap();
    let _ = node.kill();
    let _ = node.wait();
    k.get(&["delete", "pod", "goes", "--grace-period=0", "--force"]);
    assert!(
        netns_names().contains(&ns_goes),
        "nothing cleans up while the node is down"
    );

    guard.0.push(start_node());
    let deadline = Instant::now() + Duration::from_secs(60);
    while netns_names().contains(&ns_goes) {
        assert!(
            Instant::now() < deadline,
            "the restarted node kept {ns_goes}:\n{}",
            std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        netns_names().contains(&ns_stays),
        "the bound pod lost its namespace"
    );
    assert!(running("stays"));
    let results = kubepull_node::agent::cni_results_dir(&root);
    let left: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "attachments remembered: {left:?}");
}
