//! Node benchmark: `kubepull up` with the real registry and runc. 100 pods of one private image
//! (a Deployment with 100 replicas): registry GETs per blob, time from `kubectl apply` to all
//! Running, RSS of the `kubepull up` process (API server + controllers + node agent) with 100
//! pods; then 20 single pods created one at a time with the image cached: create → Running
//! latency p50/p99.
//!
//! Run: `cargo run --release -p kubepull --example pod_bench` (scripts/bench-pods.sh).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubepull_testkit::{busybox_image, Registry};

fn kubectl(kc: &std::path::Path, home: &std::path::Path, args: &[&str]) -> String {
    let o = Command::new("kubectl")
        .env("KUBECONFIG", kc)
        .env("HOME", home)
        .args(args)
        .output()
        .expect("kubectl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// veth interfaces on this machine.
fn veth_count() -> usize {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .lines()
    .count()
}

fn running(kc: &std::path::Path, home: &std::path::Path, sel: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(&kubectl(
        kc,
        home,
        &["get", "pods", "-l", sel, "-o", "json"],
    ))
    .unwrap_or(serde_json::Value::Null);
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count()
        })
        .unwrap_or(0)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Creates `n` pods one at a time through the API and times each from the POST to the first GET
/// that shows it Running.
async fn api_starts(data: &std::path::Path, image: &str, n: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(data.join("admin.kubeconfig")).expect("kubeconfig");
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server url")
        .to_string();
    let token = std::fs::read_to_string(data.join("pki/admin.token"))
        .expect("token")
        .trim()
        .to_string();
    let ca = std::fs::read(data.join("pki/ca.crt")).expect("ca");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
        .build()
        .expect("client");
    let mut lat = vec![];
    for i in 0..n {
        let name = format!("api-{i}");
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"imagePullSecrets": [{"name": "regcred"}], "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]}});
        let t = Instant::now();
        let r = http
            .post(format!("{url}/api/v1/namespaces/default/pods"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
            .await
            .expect("create");
        assert!(r.status().is_success(), "create: {}", r.status());
        loop {
            let v: serde_json::Value = http
                .get(format!("{url}/api/v1/namespaces/default/pods/{name}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            if v["status"]["phase"] == "Running" || t.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lat.push(t.elapsed().as_secs_f64());
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    lat
}

fn main() {
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let reg = Registry::start(&[("bench", "Bench-Pass-2")]);
    let img = busybox_image(&["/bin/sh", "-c", "sleep 3600"], &[]);
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(reg.push("bench/app", "v1", &img));
    let work = tempfile::tempdir().expect("temp");
    let w = work.path();
    reg.write_hosts_dir(&w.join("hosts"));
    let data = w.join("data");
    let veths_before = veth_count();
    let log = std::fs::File::create(w.join("up.log")).expect("log");
    let mut up = Command::new(&kp)
        .args(["up", "--secure-port", "0", "--name", "bench-node"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--hosts-dir")
        .arg(w.join("hosts"))
        .env("KUBEPULL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("kubepull up");
    let kc = data.join("admin.kubeconfig");
    while !(kc.exists() && kubectl(&kc, w, &["get", "nodes"]).contains("Ready")) {
        std::thread::sleep(Duration::from_millis(100));
    }
    kubectl(
        &kc,
        w,
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &format!("--docker-server={}", reg.host()),
            "--docker-username=bench",
            "--docker-password=Bench-Pass-2",
        ],
    );
    let image = format!("{}/bench/app:v1", reg.host());
    let m = w.join("deploy.yaml");
    std::fs::write(&m, format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: many\nspec:\n  replicas: 100\n  selector:\n    matchLabels: {{app: many}}\n  template:\n    metadata:\n      labels: {{app: many}}\n    spec:\n      imagePullSecrets: [{{name: regcred}}]\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: app\n        image: {image}\n")).expect("manifest");
    let t0 = Instant::now();
    kubectl(&kc, w, &["apply", "-f", m.to_str().unwrap_or_default()]);
    let deadline = Instant::now() + Duration::from_secs(600);
    while running(&kc, w, "app=many") < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let all = t0.elapsed();
    let n_running = running(&kc, w, "app=many");
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_mib(up.id());
    let gets: Vec<usize> = img
        .layers
        .iter()
        .map(|l| reg.blob_gets(&kubepull_core::reference::Digest::sha256_of(l)))
        .collect();
    // cached image: single pods, one at a time
    let mut lat = vec![];
    for i in 0..20 {
        let p = w.join(format!("p{i}.yaml"));
        std::fs::write(&p, format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: single-{i}\n  labels: {{single: \"{i}\"}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: IfNotPresent\n")).expect("pod");
        let t = Instant::now();
        kubectl(&kc, w, &["apply", "-f", p.to_str().unwrap_or_default()]);
        while running(&kc, w, &format!("single={i}")) < 1 && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        lat.push(t.elapsed().as_secs_f64());
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let p50 = lat[lat.len() / 2];
    let p99 = lat[((lat.len() - 1) as f64 * 0.99) as usize];
    // the same through the API alone (POST, then GET every 10 ms): no kubectl process in the
    // measure, only what the control plane and the node take
    let api_lat = rt.block_on(api_starts(&data, &image, 20));
    let api_p50 = api_lat[api_lat.len() / 2];
    let api_p99 = api_lat[((api_lat.len() - 1) as f64 * 0.99) as usize];
    println!("\n| measure | value |");
    println!("| --- | ---: |");
    println!("| pods Running (of 100) | {n_running} |");
    println!(
        "| `kubectl apply` → 100 pods Running | {:.1} s |",
        all.as_secs_f64()
    );
    println!("| registry GETs per layer blob | {gets:?} |");
    println!("| RSS of `kubepull up` (server + controllers + node agent) with {n_running} pods | {rss:.1} MiB |");
    println!(
        "| single pod, image cached: create → Running p50 (incl. kubectl) | {:.0} ms |",
        p50 * 1000.0
    );
    println!(
        "| single pod, image cached: create → Running p99 (incl. kubectl) | {:.0} ms |",
        p99 * 1000.0
    );
    println!(
        "| single pod, image cached: create → Running through the API (POST, GET every 10 ms), p50 / p99 | {:.0} ms / {:.0} ms |",
        api_p50 * 1000.0,
        api_p99 * 1000.0
    );
    kubectl(&kc, w, &["delete", "deployment", "many", "--wait=false"]);
    // kubepull down: the process, the containers and their networks
    let _ = Command::new(&kp)
        .arg("down")
        .arg("--data-dir")
        .arg(&data)
        .status();
    let _ = up.kill();
    let _ = up.wait();
    // what teardown left: pod network namespaces, veths, mounts under the data dir
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .lines()
    .filter(|l| l.starts_with("kp-"))
    .count();
    let veths = veth_count().saturating_sub(veths_before);
    let data_real = std::fs::canonicalize(&data).unwrap_or(data.clone());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| std::path::Path::new(m).starts_with(&data_real))
        .count();
    println!("| after `kubepull down`: pod netns / veths added / mounts under the data dir | {netns} / {veths} / {mounts} |");
}
