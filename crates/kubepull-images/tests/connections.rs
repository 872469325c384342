//! How a pull talks to a real registry over TLS: HTTP/1.1, as skopeo does, although the
//! registry offers HTTP/2 through ALPN (one multiplexed connection was slower).

use std::sync::Arc;

use kubepull_core::keyring::{Credential, CredentialSource};
use kubepull_images::{parse_image, NoProgress, Puller};
use kubepull_registry::{Client, ClientConfig, HostsDir, Platform, TlsConfig};
use kubepull_store::Store;
use kubepull_testkit::{busybox_image, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_fetched_over_http1_although_the_registry_offers_http2() {
    let (user, pass) = ("puller", "Puller-Pass-3");
    let reg = Registry::start(&[(user, pass)]);
    let img = busybox_image(&["true"], &[("etc/motd", b"hello\n")]);
    reg.push("team/app", "v1", &img).await;
    // the registry does offer HTTP/2 (ALPN), so the protocol below is the client's choice
    let probe = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(reg.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(format!("https://{}/v2/", reg.host()))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.version(), reqwest::Version::HTTP_2);

    let before = reg.log().len();
    let t = tempfile::tempdir().unwrap();
    reg.write_hosts_dir(&t.path().join("hosts"));
    let store = Store::open(&t.path().join("store")).unwrap();
    let client = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
    let puller = Puller::new(client, store, Platform::host())
        .with_hosts(HostsDir::load(&t.path().join("hosts")).unwrap());
    let cred = Credential {
        username: user.into(),
        password: pass.into(),
        email: String::new(),
        source: CredentialSource::Secret {
            name: "regcred".into(),
        },
        config_key: reg.host(),
        keyring_key: reg.host(),
    };
    let image = parse_image(&format!("{}/team/app:v1", reg.host())).unwrap();
    puller
        .pull(&image, &[cred], Arc::new(NoProgress))
        .await
        .unwrap();

    // the pull's requests, after the push's (the access log is written as requests finish)
    let pushed = before;
    let pull_gets = |log: &str| {
        log[pushed..]
            .lines()
            .filter(|l| l.contains("\"GET /v2/team/app/"))
            .count()
    };
    // the manifest, the config and both layers
    let log = reg.wait_log(|l| pull_gets(l) >= 4);
    let requests: Vec<&str> = log[pushed..]
        .lines()
        .filter(|l| l.contains("\"GET /v2/team/app/"))
        .collect();
    assert!(requests.len() >= 4, "{log}");
    for r in &requests {
        assert!(r.contains(" HTTP/1.1\" "), "not HTTP/1.1: {r}");
    }
}
