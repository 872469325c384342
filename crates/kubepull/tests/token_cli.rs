//! `kubepull token node NAME` and `kubepull token revoke node NAME` against a running server's
//! data directory: the revoked token gets 401 from the next request on, the new one works, and
//! neither command prints anything secret but the token asked for.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_node_token_takes_effect_in_the_running_server() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let server = kubepull_control::start(kubepull_control::ServerConfig {
        data_dir: data.clone(),
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
    let kp = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_kubepull"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, old, err) = kp(&["token", "node", "n1"]);
    assert!(ok && old.starts_with("kpn.n1."), "{old} {err}");
    assert_eq!(old, server.node_token("n1"));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
        .build()
        .unwrap();
    let url = format!("{}/api/v1/nodes", server.url());
    let status = |t: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(&url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(old.clone()).await, 200);
    let other = server.node_token("n2");

    let (ok, out, err) = kp(&["token", "revoke", "node", "n1"]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked") && !out.contains(&old), "{out}");
    assert_eq!(status(old.clone()).await, 401, "the revoked token");
    assert_eq!(status(other).await, 200, "other nodes keep theirs");
    let (ok, new, err) = kp(&["token", "node", "n1"]);
    assert!(ok && new != old, "{new} {err}");
    assert_eq!(status(new.clone()).await, 200, "the new token");
    // revoking again retires the second one too
    assert!(kp(&["token", "revoke", "node", "n1"]).0);
    assert_eq!(status(new).await, 401);
    // a directory that is not a server's
    let o = Command::new(env!("CARGO_BIN_EXE_kubepull"))
        .args(["token", "revoke", "node", "n1", "--data-dir"])
        .arg(d.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is this a server's --data-dir?"));
    server.shutdown().await;
}
