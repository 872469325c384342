//! The real registry (Debian `docker-registry`) with its `redirect` storage middleware (blob
//! `GET` → `307` to another origin, like S3 or a CDN), and over plain HTTP.
//!
//! Needs (Debian): `docker-registry`, `openssl`, `apache2-utils` (htpasswd).

mod common;

use std::sync::{Arc, Mutex};

use kubepull_core::reference::parse_normalized_named;
use kubepull_registry::error::PolicyViolation;
use kubepull_registry::testkit::registry::OCI_MANIFEST;
use kubepull_registry::testkit::{
    basic_authorization, http_client, push, HttpResponse, HttpServer, RegistryAuth, RegistryConfig,
    RegistryProcess, TestCa, TestImage, TokenServer, TokenServerConfig,
};
use kubepull_registry::{
    Client, ClientConfig, Error, ErrorKind, Platform, RegistryCredential, TlsConfig,
};

const PASS: &str = "Redirect-Pass-8086";

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

/// Serves the registry's storage directory read-only over plain HTTP, recording each
/// request's path and whether it carried `Authorization`.
async fn blob_server(
    root: std::path::PathBuf,
    seen: Arc<Mutex<Vec<(String, bool)>>>,
) -> HttpServer {
    HttpServer::start(
        None,
        Arc::new(move |req| {
            let root = root.clone();
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock().unwrap().push((
                    req.path().to_string(),
                    req.header("authorization").is_some(),
                ));
                let rel = req.path().trim_start_matches('/');
                if rel.split('/').any(|c| c == ".." || c.is_empty()) {
                    return HttpResponse::new(400, "");
                }
                match std::fs::read(root.join(rel)) {
                    Ok(b) => HttpResponse::new(200, b),
                    Err(_) => HttpResponse::new(404, ""),
                }
            })
        }),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_redirect_to_another_origin_never_carries_authorization() {
    let storage = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(vec![]));
    let blobs = blob_server(storage.path().to_path_buf(), seen.clone()).await;
    let ca = TestCa::new();
    let reg = RegistryProcess::start(RegistryConfig {
        tls: Some(ca.server_cert(&["127.0.0.1"])),
        auth: RegistryAuth::Htpasswd {
            users: vec![("alice".into(), PASS.into())],
        },
        storage: Some(storage.path().to_path_buf()),
        redirect_base_url: Some(blobs.base_url()),
        client_ca_pem: None,
    })
    .unwrap();
    let img = TestImage::new("amd64", 9);
    let basic = basic_authorization("alice", PASS);
    push(
        &reg.base_url(),
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
    let c = Client::https(
        &TlsConfig::private_ca(ca.cert_pem()),
        ClientConfig::default(),
    )
    .unwrap();
    let r = parse_normalized_named(&format!("{}/team/app:v1", reg.host())).unwrap();
    let creds = [RegistryCredential::basic("secret/regcred", "alice", PASS)];
    let (repo, resolved) = c
        .resolve_image(&r, &creds, &amd64())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    let dir = tempfile::tempdir().unwrap();
    for (l, want) in resolved.manifest.layers.iter().zip(&img.layers) {
        let dest = dir.path().join(l.digest.hex());
        repo.fetch_blob_resumable(l, &dest, None).await.unwrap();
        assert_eq!(&std::fs::read(&dest).unwrap(), want);
    }
    let seen = seen.lock().unwrap().clone();
    let layer_hits: Vec<_> = seen
        .iter()
        .filter(|(p, _)| p.starts_with("/docker/registry/v2/blobs/sha256/"))
        .collect();
    assert_eq!(
        layer_hits.len(),
        2,
        "both layers came from the redirect target: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, auth)| !auth),
        "Authorization reached the redirect target: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_registry_is_anonymous_only() {
    // an open plain-HTTP registry: listed as insecure, pulled anonymously
    let open = RegistryProcess::start(RegistryConfig {
        tls: None,
        auth: RegistryAuth::None,
        storage: None,
        redirect_base_url: None,
        client_ca_pem: None,
    })
    .unwrap();
    let img = TestImage::new("amd64", 4);
    push(
        &open.base_url(),
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
    let r = parse_normalized_named(&format!("{}/team/app:v1", open.host())).unwrap();
    // not listed as insecure: https is tried and fails (TLS against a plain server)
    let strict = Client::https(
        &TlsConfig::system(),
        ClientConfig {
            max_retries: 0,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let e = strict.resolve_image(&r, &[], &amd64()).await.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Tls | ErrorKind::Connect | ErrorKind::Protocol
        ),
        "{e}"
    );
    let cfg = ClientConfig {
        insecure_registries: vec![open.host()],
        ..ClientConfig::default()
    };
    let c = Client::https(&TlsConfig::system(), cfg.clone()).unwrap();
    let (repo, resolved) = c.resolve_image(&r, &[], &amd64()).await.unwrap();
    assert_eq!(resolved.digest, img.digest());
    assert_eq!(
        common::blob_bytes(&repo, &resolved.manifest.config)
            .await
            .unwrap(),
        img.config
    );

    // a plain-HTTP registry that asks for Basic: the credential is refused, not sent
    let work = tempfile::tempdir().unwrap();
    let basic_reg = RegistryProcess::start(RegistryConfig {
        tls: None,
        auth: RegistryAuth::Htpasswd {
            users: vec![("alice".into(), PASS.into())],
        },
        storage: Some(open.storage().to_path_buf()),
        redirect_base_url: None,
        client_ca_pem: None,
    })
    .unwrap();
    // a plain-HTTP registry with token auth (https realm): no Basic to the realm either
    let ca = TestCa::new();
    let tokens = TokenServer::start(&ca, TokenServerConfig::default(), work.path())
        .await
        .unwrap();
    tokens.add_user("alice", PASS, &[("team/", &["pull"])]);
    let token_reg = RegistryProcess::start(RegistryConfig {
        tls: None,
        auth: RegistryAuth::Token {
            realm: tokens.realm(),
            service: tokens.service(),
            issuer: tokens.issuer(),
            root_cert_bundle_pem: tokens.signing_cert_pem().to_string(),
        },
        storage: Some(open.storage().to_path_buf()),
        redirect_base_url: None,
        client_ca_pem: None,
    })
    .unwrap();
    let c = Client::https(
        &TlsConfig::private_ca(ca.cert_pem()),
        ClientConfig {
            insecure_registries: vec![basic_reg.host(), token_reg.host()],
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let creds = [RegistryCredential::basic("secret/regcred", "alice", PASS)];
    for reg in [&basic_reg, &token_reg] {
        let r = parse_normalized_named(&format!("{}/team/app:v1", reg.host())).unwrap();
        let e = c.resolve_image(&r, &creds, &amd64()).await.unwrap_err();
        let Error::AllCredentialsFailed { attempts } = &e else {
            panic!("{e:?}")
        };
        assert!(
            matches!(
                attempts[0].error,
                Error::Policy {
                    violation: PolicyViolation::CredentialsOverPlainHttp,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(!format!("{e} {e:?}").contains(PASS));
    }
    assert!(
        tokens.requests().is_empty(),
        "no credential reached the realm"
    );
    // the basic registry never saw an Authorization header: it logs the user of every
    // authenticated request
    assert!(!basic_reg.log().contains("alice"), "{}", basic_reg.log());
}
