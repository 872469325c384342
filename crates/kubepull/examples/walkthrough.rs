//! The seed walkthrough, narrated: a private registry with a password, a small image pushed to
//! it, `kubepull up` (API server + controllers + node agent), then the real kubectl creates the
//! pull secret and a Deployment that runs; the same Deployment without the secret fails with
//! ErrImagePull then ImagePullBackOff and the events say why; an unsubstituted placeholder is
//! InvalidImageName. Everything runs on loopback in a temporary directory.
//!
//! Run: `cargo run --release -p kubepull --example walkthrough` (scripts/run.sh does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "alice";
const PASS: &str = "Walkthrough-Pass-2026";

fn bold(s: &str) {
    println!("\n\x1b[1m$ {s}\x1b[0m");
}

fn say(s: &str) {
    println!("\n\x1b[36m# {s}\x1b[0m");
}

struct Env {
    kubeconfig: PathBuf,
    home: PathBuf,
    dir: PathBuf,
}

impl Env {
    fn kubectl(&self, args: &[&str], show: bool) -> (bool, String) {
        if show {
            bold(&format!(
                "kubectl {}",
                args.join(" ").replace(PASS, "********")
            ));
        }
        let o = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .args(args)
            .output()
            .expect("kubectl");
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if show {
            print!("{out}");
        }
        (o.status.success(), out)
    }

    fn apply(&self, name: &str, yaml: &str) {
        let p = self.dir.join(name);
        std::fs::write(&p, yaml).expect("write manifest");
        say(&format!(
            "{name}:\n{}",
            yaml.trim_end().replace('\n', "\n# ")
        ));
        self.kubectl(&["apply", "-f", p.to_str().unwrap_or_default()], true);
    }

    fn wait(&self, ns: &str, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (_, out) = self.kubectl(&["get", "pods", "-n", ns], false);
            if done(&out) || Instant::now() > deadline {
                bold(&format!("kubectl get pods -n {ns}   # {what}"));
                print!("{out}");
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().to_path_buf();

    say("1. A private registry (the CNCF distribution registry, Debian docker-registry) on loopback, TLS from a throw-away CA, one user with a password");
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(
        &[
            "/bin/sh",
            "-c",
            "echo hello from a private image; while true; do sleep 3600; done",
        ],
        &[],
    );
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(reg.push("team-a/hello", "v1", &img));
    let image = format!("{}/team-a/hello:v1", reg.host());
    println!(
        "pushed {image} ({} layers, digest {})",
        img.layers.len(),
        img.digest()
    );
    let hosts = dir.join("hosts");
    reg.write_hosts_dir(&hosts);
    println!(
        "registry CA trusted through {}/{}/hosts.toml",
        hosts.display(),
        reg.host()
    );

    say("2. kubepull up: API server, controllers and a node agent (runc) in one process");
    let data = dir.join("data");
    let log = std::fs::File::create(dir.join("kubepull.log")).expect("log");
    let exe = std::env::var_os("KUBEPULL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/kubepull"));
    bold(&format!(
        "kubepull up --data-dir {} --hosts-dir {} --secure-port 0 &",
        data.display(),
        hosts.display()
    ));
    let mut up: Child = Command::new(&exe)
        .args(["up", "--secure-port", "0", "--name", "node-1"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--hosts-dir")
        .arg(&hosts)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {}: {e} (build it first: cargo build --release)",
                exe.display()
            )
        });
    let env = Env {
        kubeconfig: data.join("admin.kubeconfig"),
        home: dir.clone(),
        dir: dir.clone(),
    };
    let started = Instant::now();
    loop {
        if env.kubeconfig.exists() && env.kubectl(&["get", "nodes"], false).1.contains("Ready") {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "kubepull up did not start:\n{}",
                std::fs::read_to_string(dir.join("kubepull.log")).unwrap_or_default()
            );
            down(&exe, &data);
            let _ = up.kill();
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "up in {:.1}s; export KUBECONFIG={}",
        started.elapsed().as_secs_f64(),
        env.kubeconfig.display()
    );
    env.kubectl(&["get", "nodes"], true);

    say("3. The pull secret, exactly as the seed documents create it");
    env.kubectl(&["create", "namespace", "team-a"], true);
    env.kubectl(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &format!("--docker-server={}", reg.host()),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={PASS}"),
            "--docker-email=alice@example.com",
            "-n",
            "team-a",
        ],
        true,
    );
    env.kubectl(&["get", "secrets", "-n", "team-a"], true);

    say("4. A Deployment that names the secret in imagePullSecrets: the node pulls with it and runs the container with runc");
    env.apply(
        "with-secret.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: hello\n  namespace: team-a\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: hello}}\n  template:\n    metadata:\n      labels: {{app: hello}}\n    spec:\n      imagePullSecrets:\n      - name: regcred\n      containers:\n      - name: hello\n        image: {image}\n"),
    );
    env.wait("team-a", "Running", |o| o.matches("Running").count() >= 2);
    env.kubectl(&["get", "deployments", "-n", "team-a"], true);
    let (_, pods) = env.kubectl(
        &[
            "get",
            "pods",
            "-n",
            "team-a",
            "-l",
            "app=hello",
            "-o",
            "name",
        ],
        false,
    );
    if let Some(p) = pods.lines().next() {
        env.kubectl(&["logs", p.trim(), "-n", "team-a"], true);
    }

    say("5. The same image without the secret, in another namespace: ErrImagePull, then ImagePullBackOff (the cached private image is not handed to a pod without access)");
    env.kubectl(&["create", "namespace", "team-b"], true);
    env.apply(
        "without-secret.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: hello\n  namespace: team-b\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: hello}}\n  template:\n    metadata:\n      labels: {{app: hello}}\n    spec:\n      containers:\n      - name: hello\n        image: {image}\n        imagePullPolicy: IfNotPresent\n"),
    );
    env.wait("team-b", "ImagePullBackOff", |o| {
        o.contains("ImagePullBackOff")
    });
    let (_, pods) = env.kubectl(&["get", "pods", "-n", "team-b", "-o", "name"], false);
    if let Some(p) = pods.lines().next() {
        let name = p.trim().trim_start_matches("pod/");
        env.kubectl(&["describe", "pod", name, "-n", "team-b"], true);
    }
    env.kubectl(&["get", "events", "-n", "team-b"], true);

    say("5b. Ask kubepull doctor why: the credentials the kubelet tries, what the registry answers, the one cause and the fix");
    bold(&format!(
        "kubepull doctor deployment/hello -n team-b --hosts-dir {}",
        hosts.display()
    ));
    let o = Command::new(&exe)
        .args(["doctor", "deployment/hello", "-n", "team-b"])
        .arg("--hosts-dir")
        .arg(&hosts)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HOME", &env.home)
        .output()
        .expect("kubepull doctor");
    print!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("(exit {})", o.status.code().unwrap_or(-1));

    say("6. An image with an unsubstituted placeholder");
    env.apply(
        "placeholder.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: placeholder\n  namespace: team-a\nspec:\n  containers:\n  - name: app\n    image: {}/team-a/hello:${{TAG}}\n", reg.host()),
    );
    env.wait("team-a", "InvalidImageName", |o| {
        o.contains("InvalidImageName")
    });

    say("7. Fix it without waiting out the back-off: give team-b the secret through its ServiceAccount, recreate the pod");
    env.kubectl(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &format!("--docker-server={}", reg.host()),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={PASS}"),
            "-n",
            "team-b",
        ],
        true,
    );
    env.kubectl(
        &[
            "patch",
            "serviceaccount",
            "default",
            "-n",
            "team-b",
            "-p",
            r#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
        ],
        true,
    );
    env.kubectl(&["delete", "pods", "--all", "-n", "team-b"], true);
    env.wait("team-b", "Running", |o| o.contains("Running"));

    say("Done. Stopping kubepull, its containers and their networks.");
    bold(&format!("kubepull down --data-dir {}", data.display()));
    down(&exe, &data);
    let _ = up.kill();
    let _ = up.wait();
}

/// `kubepull down`: the up process, its containers and their pod networks.
fn down(exe: &Path, data: &Path) {
    let _ = Command::new(exe)
        .arg("down")
        .arg("--data-dir")
        .arg(data)
        .status();
    cleanup_runc(&data.join("node/containers/.runc"));
}

fn cleanup_runc(root: &Path) {
    if let Ok(out) = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .output()
    {
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(root)
                .args(["delete", "-f", id])
                .status();
        }
    }
}
