//! containerd `hosts.toml` with the real registry (Debian `docker-registry`): a private CA
//! trusted through `ca`, mirrors tried first and falling back to the server, and the rule
//! that a mirror gets credentials only when the keyring has them for the mirror's host.
//!
//! Needs (Debian): `docker-registry`, `apache2-utils` (htpasswd).

mod common;

use std::sync::Arc;

use common::*;
use kubepull_core::reference::parse_normalized_named;
use kubepull_registry::testkit::registry::OCI_MANIFEST;
use kubepull_registry::testkit::{
    basic_authorization, http_client, push, RegistryAuth, RegistryConfig, RegistryProcess, TestCa,
    TestImage,
};
use kubepull_registry::{
    Client, ClientConfig, ErrorKind, HostsDir, Platform, RegistryCredential, RegistryHost,
    TlsConfig,
};

const PASS: &str = "Hosts-Toml-Pass-777";

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_from_hosts_toml_and_mirror_fallback() {
    let ca = TestCa::new();
    let server = RegistryProcess::start(RegistryConfig {
        tls: Some(ca.server_cert(&["127.0.0.1"])),
        auth: RegistryAuth::Htpasswd {
            users: vec![("alice".into(), PASS.into())],
        },
        storage: None,
        redirect_base_url: None,
        client_ca_pem: None,
    })
    .unwrap();
    let mirror = RegistryProcess::start(RegistryConfig {
        tls: None,
        auth: RegistryAuth::None,
        storage: None,
        redirect_base_url: None,
        client_ca_pem: None,
    })
    .unwrap();
    let img = TestImage::new("amd64", 11);
    let basic = basic_authorization("alice", PASS);
    push(
        &server.base_url(),
        &http_client(Some(ca.cert_pem()), None).unwrap(),
        Some(&basic),
        "team/app",
        "v1",
        OCI_MANIFEST,
        &img.manifest,
        &img.blobs(),
    )
    .await
    .unwrap();

    let hosts_dir = tempfile::tempdir().unwrap();
    let d = hosts_dir.path().join(server.host());
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("registry-ca.crt"), ca.cert_pem()).unwrap();
    std::fs::write(
        d.join("hosts.toml"),
        format!(
            "server = \"{}\"\nca = \"registry-ca.crt\"\n\n[host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            server.base_url(),
            mirror.base_url()
        ),
    )
    .unwrap();
    let hosts = HostsDir::load(hosts_dir.path()).unwrap();
    let list = hosts.hosts_for(&server.host()).unwrap();
    assert_eq!(list.len(), 2);

    // the client trusts only the system store: the CA comes from hosts.toml
    let c = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
    let image = format!("{}/team/app:v1", server.host());
    let r = parse_normalized_named(&image).unwrap();
    let server_host = server.host();
    let creds_for = |h: &RegistryHost| {
        if h.host_label() == server_host {
            vec![RegistryCredential::basic("secret/regcred", "alice", PASS)]
        } else {
            vec![]
        }
    };
    let (repo, resolved) = c
        .resolve_image_via(&r, &list, creds_for, &amd64())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(resolved.digest, img.digest());
    assert_eq!(repo.base_url().as_str(), format!("{}/", server.base_url()));
    assert_eq!(
        resolved.credential_source.as_deref(),
        Some("secret/regcred")
    );
    let dir = tempfile::tempdir().unwrap();
    for (l, want) in resolved.manifest.layers.iter().zip(&img.layers) {
        let p = dir.path().join(l.digest.hex());
        repo.fetch_blob_resumable(l, &p, None).await.unwrap();
        assert_eq!(&std::fs::read(&p).unwrap(), want);
    }
    // the mirror was asked first (and did not have the image)
    let log = mirror.wait_log(|l| l.contains("/v2/team/app/manifests/v1"));
    assert!(log.contains("/v2/team/app/manifests/v1"), "{log}");

    // without the hosts.toml CA the same pull fails on TLS
    let e = c
        .resolve_image_via(
            &r,
            &HostsDir::empty().hosts_for(&server.host()).unwrap(),
            creds_for,
            &amd64(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert_eq!(e.exit_code(), 15);

    // once the mirror has the image, it serves it (anonymously: no secret names it)
    push(
        &mirror.base_url(),
        &http_client(None, None).unwrap(),
        None,
        "team/app",
        "v1",
        OCI_MANIFEST,
        &img.manifest,
        &img.blobs(),
    )
    .await
    .unwrap();
    let (repo, resolved) = c
        .resolve_image_via(&r, &list, creds_for, &amd64())
        .await
        .unwrap();
    assert_eq!(repo.base_url().as_str(), format!("{}/", mirror.base_url()));
    assert_eq!(resolved.credential_source, None);
    common::blob_bytes(&repo, &resolved.manifest.config)
        .await
        .unwrap();
}

#[tokio::test]
async fn mirror_gets_credentials_only_from_its_own_keyring_entry() {
    let s = server(fake(AuthMode::Basic));
    // the mirror answers 401 Basic to everyone and records what it got
    *s.hook.lock().unwrap() = Some(Arc::new(|req, _| {
        (req.url.host_str() == Some("mirror.example.com"))
            .then(|| resp(401, &[("www-authenticate", r#"Basic realm="mirror""#)], ""))
    }));
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("reg.example.com")).unwrap();
    std::fs::write(
        dir.path().join("reg.example.com/hosts.toml"),
        "[host.\"https://mirror.example.com\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
    )
    .unwrap();
    let hosts = HostsDir::load(dir.path())
        .unwrap()
        .hosts_for("reg.example.com")
        .unwrap();
    let r = parse_normalized_named("reg.example.com/team/app:v1").unwrap();
    let creds_for = |h: &RegistryHost| match h.host_label().as_str() {
        "reg.example.com" => vec![RegistryCredential::basic(
            "secret/regcred",
            "alice",
            PASSWORD,
        )],
        _ => vec![],
    };
    let (repo, got) = c
        .resolve_image_via(&r, &hosts, creds_for, &amd64())
        .await
        .unwrap();
    assert_eq!(repo.base_url().as_str(), "https://reg.example.com/");
    assert_eq!(got.credential_source.as_deref(), Some("secret/regcred"));
    let log = s.log.lock().unwrap().clone();
    let mirror: Vec<_> = log
        .iter()
        .filter(|l| l.host == "mirror.example.com")
        .collect();
    assert!(!mirror.is_empty(), "mirror tried first");
    assert!(mirror.iter().all(|l| l.auth.is_none()), "{mirror:?}");
    // a secret for the mirror's own host is used there
    s.log.lock().unwrap().clear();
    let creds_for = |h: &RegistryHost| {
        vec![RegistryCredential::basic(
            format!("secret/for-{}", h.host_label()),
            "alice",
            PASSWORD,
        )]
    };
    let _ = c
        .resolve_image_via(&r, &hosts, creds_for, &amd64())
        .await
        .unwrap();
    let log = s.log.lock().unwrap().clone();
    assert!(log
        .iter()
        .any(|l| l.host == "mirror.example.com" && l.auth.is_some()));

    // a push-only mirror and a pull-only (no resolve) mirror are skipped for a tag
    std::fs::write(
        dir.path().join("reg.example.com/hosts.toml"),
        "[host.\"https://mirror.example.com\"]\ncapabilities = [\"pull\"]\n",
    )
    .unwrap();
    let hosts = HostsDir::load(dir.path())
        .unwrap()
        .hosts_for("reg.example.com")
        .unwrap();
    s.log.lock().unwrap().clear();
    c.resolve_image_via(&r, &hosts, creds_for, &amd64())
        .await
        .unwrap();
    assert!(s
        .log
        .lock()
        .unwrap()
        .iter()
        .all(|l| l.host != "mirror.example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_and_skip_verify_from_hosts_toml() {
    let ca = TestCa::new();
    let client_ca = TestCa::new();
    let reg = RegistryProcess::start(RegistryConfig {
        tls: Some(ca.server_cert(&["127.0.0.1"])),
        client_ca_pem: Some(client_ca.cert_pem().to_string()),
        ..RegistryConfig::default()
    })
    .unwrap();
    let img = TestImage::new("amd64", 12);
    // push through the same hosts.toml machinery is not needed: push with a client that
    // presents a certificate
    let id = client_ca.client_cert("pusher");
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .identity(
            reqwest::Identity::from_pem(format!("{}{}", id.cert_pem, id.key_pem).as_bytes())
                .unwrap(),
        )
        .build()
        .unwrap();
    let base = reg.base_url();
    for b in img.blobs() {
        let d = kubepull_core::reference::Digest::sha256_of(&b);
        let r = http
            .post(format!("{base}/v2/team/app/blobs/uploads/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
        assert_eq!(r.status(), 202, "{}", reg.log());
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with('/') {
            format!("{base}{loc}")
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = http
            .put(format!("{loc}{sep}digest={d}"))
            .body(b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = http
        .put(format!("{base}/v2/team/app/manifests/v1"))
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let hosts_dir = tempfile::tempdir().unwrap();
    let d = hosts_dir.path().join(reg.host());
    std::fs::create_dir_all(&d).unwrap();
    let (crt, key) = client_ca.client_cert("node").write(&d, "client").unwrap();
    std::fs::write(d.join("ca.crt"), ca.cert_pem()).unwrap();
    let write = |body: String| std::fs::write(d.join("hosts.toml"), body).unwrap();
    // no retries: the refused handshakes below fail at once
    let c = Client::https(
        &TlsConfig::system(),
        ClientConfig {
            max_retries: 0,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let r = parse_normalized_named(&format!("{}/team/app:v1", reg.host())).unwrap();
    let pull = |hosts: Vec<RegistryHost>| {
        let c = c.clone();
        let r = r.clone();
        async move { c.resolve_image_via(&r, &hosts, |_| vec![], &amd64()).await }
    };
    let load = || {
        HostsDir::load(hosts_dir.path())
            .unwrap()
            .hosts_for(&reg.host())
            .unwrap()
    };

    // CA trusted but no client certificate: the registry refuses the handshake
    write("ca = \"ca.crt\"\n".to_string());
    let e = pull(load()).await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Tls | ErrorKind::Connect),
        "{e:?}"
    );
    // with the client certificate pair (file names relative to hosts.toml)
    write(format!(
        "ca = \"ca.crt\"\nclient = [[\"{}\", \"{}\"]]\n",
        crt.file_name().unwrap().to_string_lossy(),
        key.file_name().unwrap().to_string_lossy()
    ));
    let (_, got) = pull(load())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    assert_eq!(got.digest, img.digest());
    // skip_verify instead of the CA
    write(format!(
        "skip_verify = true\nclient = [[\"{}\", \"{}\"]]\n",
        crt.display(),
        key.display()
    ));
    let (_, got) = pull(load()).await.unwrap();
    assert_eq!(got.digest, img.digest());
    // neither: the certificate is not trusted
    write(format!(
        "client = [[\"{}\", \"{}\"]]\n",
        crt.display(),
        key.display()
    ));
    let e = pull(load()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}

#[tokio::test]
async fn hosts_toml_headers_and_api_root_reach_the_mirror() {
    let s = server(fake(AuthMode::None));
    let seen = Arc::new(std::sync::Mutex::new(vec![]));
    let seen2 = seen.clone();
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, fake| {
        if req.url.host_str() != Some("mirror.example.com") {
            return None;
        }
        seen2.lock().unwrap().push((
            req.url.path().to_string(),
            req.headers
                .get("x-mirror-tenant")
                .map(|v| v.to_str().unwrap().to_string()),
        ));
        // the mirror serves the registry's content under /cache/v2
        let mut f = fake.clone();
        f.registry_host = "mirror.example.com".into();
        let path = req.url.path().strip_prefix("/cache")?;
        let mut r2 = kubepull_registry::transport::Request {
            method: req.method.clone(),
            url: req.url.clone(),
            headers: req.headers.clone(),
            body: None,
        };
        r2.url.set_path(path);
        Some(f.handle(&r2))
    }));
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("reg.example.com")).unwrap();
    std::fs::write(
        dir.path().join("reg.example.com/hosts.toml"),
        "[host.\"https://mirror.example.com/cache\"]\ncapabilities = [\"pull\", \"resolve\"]\n[host.\"https://mirror.example.com/cache\".header]\nx-mirror-tenant = \"team-a\"\n",
    )
    .unwrap();
    let hosts = HostsDir::load(dir.path())
        .unwrap()
        .hosts_for("reg.example.com")
        .unwrap();
    let r = parse_normalized_named("reg.example.com/team/app:v1").unwrap();
    let (repo, got) = c
        .resolve_image_via(&r, &hosts, |_| vec![], &amd64())
        .await
        .unwrap();
    common::blob_bytes(&repo, &got.manifest.config)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|(p, _)| p == "/cache/v2/team/app/manifests/v1"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(p, _)| p.starts_with("/cache/v2/team/app/blobs/")),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(_, h)| h.as_deref() == Some("team-a")),
        "{seen:?}"
    );
    assert!(
        !format!("{repo:?}").contains("team-a"),
        "configured headers stay out of Debug"
    );
}
