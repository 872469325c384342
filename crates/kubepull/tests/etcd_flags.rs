//! `kubepull server` with the etcd flags against a real etcd that requires a user and password:
//! a wrong password (from the environment) stops the server with a message naming the flags and
//! never the password; the right one (from `--etcd-password-file`) serves, with the objects under
//! `--etcd-prefix` in etcd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubepull_testkit::etcd::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_with_etcd_password_authentication() {
    let e = Etcd::start(1);
    // wait for etcd, then set up users and turn authentication on
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut admin = loop {
        if let Ok(mut c) = etcd_client::Client::connect(e.urls.clone(), None).await {
            if c.get("x", None).await.is_ok() {
                break c;
            }
        }
        assert!(Instant::now() < deadline, "etcd did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    admin.user_add("root", "root-pw-55", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.role_add("kubepull").await.unwrap();
    for p in [
        etcd_client::Permission::read_write("/kp-cli/").with_prefix(),
        etcd_client::Permission::read_write("compact_rev_key"),
    ] {
        admin.role_grant_permission("kubepull", p).await.unwrap();
    }
    admin.user_add("kp", "right-pw-8812", None).await.unwrap();
    admin.user_grant_role("kp", "kubepull").await.unwrap();
    admin.auth_enable().await.unwrap();

    let d = tempfile::tempdir().unwrap();
    let server = |extra: &[&str], env_pw: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubepull"));
        c.args(["server", "--secure-port", "0", "--data-dir"])
            .arg(d.path().join("data"))
            .args(["--etcd-servers", &e.urls[0], "--etcd-prefix", "/kp-cli"])
            .args(["--etcd-username", "kp"])
            .args(extra)
            .env_remove("KUBEPULL_ETCD_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(p) = env_pw {
            c.env("KUBEPULL_ETCD_PASSWORD", p);
        }
        c.spawn().unwrap()
    };

    // wrong password from the environment: the server stops, naming the flags, not the password
    let out = server(&[], Some("wrong-pw-3301"))
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--etcd-username") && err.contains("--etcd-password-file"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-pw-3301") && !err.contains("right-pw-8812"),
        "{err}"
    );

    // the right password from a file: it serves
    let pw = d.path().join("etcd-password");
    std::fs::write(&pw, "right-pw-8812\n").unwrap();
    let mut child = server(&["--etcd-password-file", pw.to_str().unwrap()], None);
    let stderr = child.stderr.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        for l in BufReader::new(stderr).lines() {
            let Ok(l) = l else { break };
            seen.push_str(&l);
            seen.push('\n');
            if l.contains("listening on") {
                break;
            }
        }
        seen
    });
    let seen = tokio::time::timeout(Duration::from_secs(60), lines)
        .await
        .expect("the server started in time")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("listening on"), "{seen}");
    assert!(!seen.contains("right-pw-8812"), "{seen}");
    // the server's objects are under the prefix in etcd
    let mut root = etcd_client::Client::connect(
        e.urls.clone(),
        Some(etcd_client::ConnectOptions::new().with_user("root", "root-pw-55")),
    )
    .await
    .unwrap();
    let ns = root.get("/kp-cli/namespaces/default", None).await.unwrap();
    assert_eq!(ns.kvs().len(), 1);
    let stray = root
        .get(
            "/registry/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(stray.count(), 0);
}
