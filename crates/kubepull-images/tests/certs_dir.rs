//! Docker-style certificate directories (`certs.d/<host:port>/{ca.crt,client.cert,client.key}`,
//! read where a registry has no `hosts.toml`, as containerd's `config_path` does) against the
//! real registry over TLS, one of them requiring a client certificate.

use std::path::Path;
use std::sync::Arc;

use kubepull_images::{error_chain, parse_image, NoProgress, Puller};
use kubepull_registry::{Client, ClientConfig, HostsDir, Platform, TlsConfig};
use kubepull_store::Store;
use kubepull_testkit::fixture::secret_credential;
use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "certs";
const PASS: &str = "Certs-Pass-3";

/// Pulls `reg`'s `team/app:v1` with the certificate directory `certs` into a fresh store.
async fn pull(reg: &Registry, certs: &Path) -> Result<(), String> {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(&t.path().join("store")).unwrap();
    let hosts = HostsDir::load(certs).map_err(|e| e.to_string())?;
    let client = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
    let puller = Puller::new(client, store.clone(), Platform::host())
        .with_hosts(hosts)
        .with_unpack(false);
    let name = format!("{}/team/app:v1", reg.host());
    puller
        .pull(
            &parse_image(&name).unwrap(),
            &[secret_credential(&reg.host(), USER, PASS)],
            Arc::new(NoProgress),
        )
        .await
        .map(|_| ())
        .map_err(|e| error_chain(&e))
}

#[tokio::test]
async fn a_ca_in_the_certificate_directory_is_trusted() {
    let reg = Registry::start(&[(USER, PASS)]);
    reg.push("team/app", "v1", &busybox_image(&["true"], &[]))
        .await;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join(reg.host());
    std::fs::create_dir_all(&dir).unwrap();
    // without the CA the registry's certificate is not trusted
    let e = pull(&reg, t.path()).await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    std::fs::write(dir.join("ca.crt"), reg.ca_pem()).unwrap();
    pull(&reg, t.path()).await.unwrap();
}

#[tokio::test]
async fn a_client_certificate_in_the_certificate_directory_is_presented() {
    let reg = Registry::start_requiring_client_cert(&[(USER, PASS)]);
    reg.push("team/app", "v1", &busybox_image(&["true"], &[]))
        .await;
    let (cert, key) = reg.client_identity().unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join(reg.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), reg.ca_pem()).unwrap();
    // the registry refuses a connection without a client certificate: with TLS 1.3 the client
    // may finish its handshake before the server's alert arrives, so the refusal reads either
    // as the alert or as the connection closed under the first request
    let e = pull(&reg, t.path()).await.unwrap_err();
    assert!(
        (e.contains("tls") && e.contains("BadCertificate")) || e.contains("connection closed"),
        "{e}"
    );
    std::fs::write(dir.join("client.cert"), cert).unwrap();
    std::fs::write(dir.join("client.key"), key).unwrap();
    pull(&reg, t.path()).await.unwrap();
    // the key never shows in what the configuration prints
    let hosts = HostsDir::load(t.path()).unwrap();
    let shown = format!("{:?}", hosts.hosts_for(&reg.host()).unwrap());
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
