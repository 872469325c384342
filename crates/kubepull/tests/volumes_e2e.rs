//! Pod volumes end to end: `kubepull up`, the real kubectl, registry and runc. Secret,
//! ConfigMap (items, modes), emptyDir (disk and `medium: Memory` as a sized tmpfs), downward API,
//! `subPath` and `readOnly` mounts seen from inside the container; a rotated Secret reaching the
//! running container; a missing Secret's `FailedMount` until it is created; `hostPath` refused by
//! default and allowed under `--allow-host-path`; the volume directories and mounts removed with
//! the pod.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "vol-user";
const PASS: &str = "Volumes-Pass-52";

struct Bed {
    _reg: Registry,
    _hosts: tempfile::TempDir,
    up: Up,
    image: String,
}

fn bed(extra: &[&str]) -> Bed {
    assert!(runc_works(), "runc is required (apt-get install -y runc)");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["sleep", "3600"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("team/vol", "v1", &img));
    let hosts = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(hosts.path());
    // hostPath volumes are what these tests are about: the cluster admits them (Pod Security
    // `privileged`), the node decides (--allow-host-path)
    let mut args = vec!["--pod-security", "privileged"];
    args.extend_from_slice(extra);
    let up = start_up_with(hosts.path(), &args);
    up.create_pull_secret("regcred", &reg.host(), USER, PASS, &[]);
    let image = format!("{}/team/vol:v1", reg.host());
    Bed {
        _reg: reg,
        _hosts: hosts,
        up,
        image,
    }
}

impl Up {
    fn logs_contain(&self, pod: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let o = self.kubectl(&["logs", pod]);
            let logs = String::from_utf8_lossy(&o.stdout).into_owned();
            if logs.contains(want) {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "logs of {pod} never showed {want:?}:\n{logs}\n--- log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    fn events_contain(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ev = self.ok(&["get", "events", "-o", "json"]);
            let v: serde_json::Value = serde_json::from_str(&ev).unwrap();
            let msgs: Vec<String> = v["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["reason"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect();
            if let Some(m) = msgs.iter().find(|m| m.contains(want)) {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no event with {want:?}: {msgs:#?}\n--- log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

const SCRIPT: &str = r#"echo "cm-modes=$(stat -c %a /etc/cm/..data/app.conf),$(stat -c %a /etc/cm/..data/sub/other.txt)"
echo "cm-items=$(ls /etc/cm | tr '\n' ,)"
echo "subpath=$(cat /etc/app.conf)"
grep ' /mem ' /proc/mounts | sed 's/^/memmount=/'
echo "labels<<$(cat /etc/podinfo/labels)>>"
echo "memlimit=$(cat /etc/podinfo/mem_limit)"
touch /disk/x && echo disk-rw-ok
touch /disk-ro/y 2>/dev/null || echo disk-ro-refused
test -e /disk-ro/x && echo disk-ro-sees-x
touch /etc/sec/z 2>/dev/null || echo secret-ro-refused
echo "secgid=$(stat -c %g /etc/sec/..data/password)"
echo "host=$(cat /host/marker)"
while true; do echo "password=$(cat /etc/sec/password) conf=$(cat /etc/cm/app.conf) sub=$(cat /etc/app.conf)"; sleep 1; done"#;

/// Secret, ConfigMap, emptyDir, downward API and hostPath volumes in one running pod, seen from
/// inside the container; the Secret rotated while it runs; everything removed with the pod.
#[test]
fn volumes_in_a_running_pod_and_secret_rotation() {
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("marker"), "from-the-host").unwrap();
    let b = bed(&["--allow-host-path", allowed.path().to_str().unwrap()]);
    let up = &b.up;
    up.ok(&[
        "create",
        "secret",
        "generic",
        "app-secret",
        "--from-literal=password=Vol-Secret-First-77",
    ]);
    up.ok(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=app.conf=listen=8080",
        "--from-literal=other=second-key",
        "--from-literal=unused=not-projected",
    ]);
    let script = serde_json::to_string(SCRIPT).unwrap();
    up.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: vols, tier: front}}
spec:
  restartPolicy: Never
  imagePullSecrets: [{{name: regcred}}]
  securityContext: {{fsGroup: 2345}}
  containers:
  - name: app
    image: {image}
    command: ["/bin/sh", "-c", {script}]
    resources: {{limits: {{memory: 64Mi, cpu: 250m}}}}
    volumeMounts:
    - {{name: sec, mountPath: /etc/sec}}
    - {{name: cm, mountPath: /etc/cm}}
    - {{name: cm, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: mem, mountPath: /mem}}
    - {{name: disk, mountPath: /disk}}
    - {{name: disk, mountPath: /disk-ro, readOnly: true}}
    - {{name: dw, mountPath: /etc/podinfo}}
    - {{name: host, mountPath: /host, readOnly: true}}
  volumes:
  - {{name: sec, secret: {{secretName: app-secret}}}}
  - name: cm
    configMap:
      name: app-config
      defaultMode: 256
      items: [{{key: app.conf, path: app.conf}}, {{key: other, path: sub/other.txt, mode: 388}}]
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  - {{name: disk, emptyDir: {{}}}}
  - name: dw
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: mem_limit, resourceFieldRef: {{containerName: app, resource: limits.memory, divisor: 1Mi}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
"#,
        image = b.image,
        host = allowed.path().display(),
    ));
    let logs = up.logs_contain("vols", "password=Vol-Secret-First-77");
    // configMap: only the items, defaultMode 0400 and item mode 0604, both | 0440 for fsGroup
    assert!(logs.contains("cm-modes=440,644"), "{logs}");
    assert!(logs.contains("cm-items=app.conf,sub,"), "{logs}");
    assert!(logs.contains("subpath=listen=8080"), "{logs}");
    // emptyDir Memory: a tmpfs of sizeLimit
    let mem = logs
        .lines()
        .find(|l| l.starts_with("memmount="))
        .unwrap_or_else(|| panic!("/mem is not a mount: {logs}"));
    assert!(
        mem.contains(" tmpfs ") && mem.contains("size=8192k"),
        "{mem}"
    );
    assert!(
        logs.contains("labels<<app=\"vols\"\ntier=\"front\">>"),
        "{logs}"
    );
    assert!(logs.contains("memlimit=64"), "{logs}");
    assert!(
        logs.contains("disk-rw-ok") && logs.contains("disk-ro-refused"),
        "{logs}"
    );
    assert!(logs.contains("disk-ro-sees-x"), "{logs}");
    assert!(logs.contains("secret-ro-refused"), "{logs}");
    assert!(logs.contains("secgid=2345"), "{logs}");
    assert!(logs.contains("host=from-the-host"), "{logs}");

    // on the host: pod directories 0700, the secret volume a tmpfs (never on disk)
    use std::os::unix::fs::PermissionsExt;
    let pods = up.node_dir().join("pods");
    assert_eq!(
        std::fs::metadata(&pods).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let pod: serde_json::Value =
        serde_json::from_str(&up.ok(&["get", "pod", "vols", "-o", "json"])).unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let pod_dir = pods.join(&uid);
    assert_eq!(
        std::fs::metadata(&pod_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mounted = mounts_under(&pod_dir);
    assert!(
        mounted
            .iter()
            .any(|m| m.ends_with("kubernetes.io~secret/sec")),
        "{mounted:?}"
    );

    // rotate the Secret: the running container reads the new value
    up.ok(&[
        "patch",
        "secret",
        "app-secret",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"password":"cm90YXRlZA=="}}"#,
    ]);
    up.logs_contain("vols", "password=rotated");
    // the ConfigMap too; its subPath mount keeps the content it started with (as upstream)
    up.ok(&[
        "patch",
        "configmap",
        "app-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"app.conf":"listen=9090"}}"#,
    ]);
    let logs = up.logs_contain("vols", "conf=listen=9090");
    let last = logs
        .lines()
        .rev()
        .find(|l| l.contains("conf=listen=9090"))
        .unwrap();
    assert!(last.contains("sub=listen=8080"), "{last}");
    // the agent's own log never shows Secret data
    let agent_log = std::fs::read_to_string(up.dir.path().join("up.log")).unwrap_or_default();
    assert!(!agent_log.contains("Vol-Secret-First-77"), "{agent_log}");

    // deleting the pod unmounts and removes its volumes
    up.ok(&["delete", "pod", "vols", "--wait=true"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pod_dir.exists() || !mounts_under(&pod_dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "volumes of the deleted pod remain: {:?}\n{}",
            mounts_under(&pod_dir),
            up.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        allowed.path().join("marker").exists(),
        "hostPath content must survive"
    );
}

/// A missing non-optional Secret: `FailedMount` and ContainerCreating until it is created;
/// hostPath refused without `--allow-host-path`; a serviceAccountToken projection either gets a
/// token from TokenRequest or fails with a clear `FailedMount`.
#[test]
fn failed_mounts_missing_secret_host_path_and_token() {
    let b = bed(&[]);
    let up = &b.up;
    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: waits\n  labels: {{app: waits}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}\n    command: [\"/bin/sh\", \"-c\", \"cat /s/key; sleep 3600\"]\n    volumeMounts: [{{name: s, mountPath: /s}}]\n  volumes: [{{name: s, secret: {{secretName: later}}}}]\n",
        b.image
    ));
    let ev = up.events_contain("FailedMount");
    assert_eq!(
        ev,
        "FailedMount: MountVolume.SetUp failed for volume \"s\" : secret \"later\" not found"
    );
    let pods = up.wait_pods(
        "default",
        "app=waits",
        |p| p["status"]["phase"] == "Pending" && waiting_reason(p) == "ContainerCreating",
        "Pending in ContainerCreating",
    );
    assert_eq!(waiting_reason(&pods["items"][0]), "ContainerCreating");
    up.ok(&[
        "create",
        "secret",
        "generic",
        "later",
        "--from-literal=key=now-here",
    ]);
    up.logs_contain("waits", "now-here");

    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hostpath\n  labels: {{app: hostpath}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}\n    volumeMounts: [{{name: h, mountPath: /h}}]\n  volumes: [{{name: h, hostPath: {{path: /etc}}}}]\n",
        b.image
    ));
    let ev = up.events_contain("volume \"h\"");
    assert!(
        ev.contains("hostPath volumes are not allowed on this node")
            && ev.contains("--allow-host-path"),
        "{ev}"
    );
    // the event can come before the pod's status says so: wait for both
    let pods = up.wait_pods(
        "default",
        "app=hostpath",
        |p| p["status"]["phase"] == "Pending" && waiting_reason(p) == "ContainerCreating",
        "Pending in ContainerCreating",
    );
    assert_eq!(waiting_reason(&pods["items"][0]), "ContainerCreating");

    up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: token\n  labels: {{app: token}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}\n    command: [\"/bin/sh\", \"-c\", \"echo token-bytes=$(wc -c < /var/run/secrets/tokens/t); sleep 3600\"]\n    volumeMounts: [{{name: tok, mountPath: /var/run/secrets/tokens}}]\n  volumes:\n  - name: tok\n    projected:\n      sources:\n      - serviceAccountToken: {{path: t, expirationSeconds: 3607}}\n      - downwardAPI: {{items: [{{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}]}}\n",
        b.image
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = up.kubectl(&["logs", "token"]);
        let logs = String::from_utf8_lossy(&o.stdout).into_owned();
        if logs.contains("token-bytes=") {
            // TokenRequest is served: a real token was written
            assert!(!logs.contains("token-bytes=0"), "{logs}");
            break;
        }
        let ev = up.ok(&["get", "events", "-o", "json"]);
        if ev.contains("volume \\\"tok\\\" : failed to fetch token") {
            assert!(
                ev.contains("the API server does not serve TokenRequest")
                    || ev.contains("serviceaccounts"),
                "{ev}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "neither a token nor a FailedMount: {ev}\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The agent is killed (`kill -9`) while a container runs; the admin removes the image and runs
/// `kubepull gc` on the node's store: the snapshots under the running container are kept (its
/// shim holds them) and the container keeps running.
#[test]
fn snapshots_stay_while_the_agent_is_down() {
    let mut b = bed(&[]);
    b.up.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: keeps\n  labels: {{app: keeps}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - name: app\n    image: {}\n    command: [\"/bin/sh\", \"-c\", \"echo up; sleep 3600\"]\n",
        b.image
    ));
    b.up.logs_contain("keeps", "up");
    let store = b.up.node_dir().join("images");
    let snaps = store.join("snapshots");
    let before: Vec<_> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!before.is_empty());
    let _ = b.up.child.kill();
    let _ = b.up.child.wait();

    let kp = |args: &[&str]| -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_kubepull"))
            .args(args)
            .arg("--root")
            .arg(&store)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    kp(&["rmi", &b.image]);
    let out = kp(&["gc"]);
    assert!(out.contains("and 0 layer snapshots"), "{out}");
    for s in &before {
        assert!(snaps.join(s).join("fs").is_dir(), "{s:?} removed: {out}");
    }
    // the container still runs
    let runc_root = b.up.node_dir().join("containers/.runc");
    let o = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["list", "-f", "json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|c| c["status"] == "running")),
        "{list}"
    );
}
