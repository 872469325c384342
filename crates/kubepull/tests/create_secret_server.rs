//! `kubepull create secret docker-registry` without `--dry-run=client` creates the Secret on the
//! API server of the kubeconfig; the stored Secret equals the client dry-run output.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_on_the_server_like_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = kubepull_control::start(kubepull_control::ServerConfig {
        data_dir: d.path().join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: "memory".into(),
        controllers: false,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        allow_privileged: true,
        cluster_cidr: None,
        service_cluster_ip_range: None,
    })
    .await
    .unwrap();
    let kc = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let kp = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_kubepull"))
                .env("HOME", &home)
                .env_remove("KUBECONFIG")
                .args(args)
                .output()
                .unwrap()
        };
        let base = [
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server=reg.example:5000",
            "--docker-username=alice",
            "--docker-password=S3cret-Value",
            "--docker-email=a@example.com",
        ];
        let kcs = format!("--kubeconfig={}", kc.display());
        // a namespace that does not exist: kubectl's error line, no secret in it
        let o = kp(&[&base[..], &[&kcs, "-n", "nowhere"]].concat());
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            e.trim(),
            "error: failed to create secret namespaces \"nowhere\" not found"
        );
        // created in the context's namespace (default)
        let o = kp(&[&base[..], &[&kcs]].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "secret/regcred created\n"
        );
        // again: AlreadyExists, as kubectl prints it
        let o = kp(&[&base[..], &[&kcs]].concat());
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("secrets \"regcred\" already exists"));
        // the stored data equals the client dry run's
        let dry = kp(&[&base[..], &["--dry-run=client", "-o", "json"]].concat());
        let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
        let got = Command::new("kubectl")
            .env("KUBECONFIG", &kc)
            .env("HOME", &home)
            .args(["get", "secret", "regcred", "-o", "json"])
            .output()
            .unwrap();
        let got: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
        assert_eq!(got["data"], dry["data"]);
        assert_eq!(got["type"], "kubernetes.io/dockerconfigjson");
    })
    .await
    .unwrap();
    server.shutdown().await;
}
