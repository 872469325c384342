//! Against the real CNCF distribution registry (Debian `docker-registry`), over TLS from a CA
//! this test generates, with htpasswd Basic auth; the image is pushed through the registry
//! API and pulled with the credentials of a Kubernetes pull secret, resolved by the kubelet
//! keyring.
//!
//! Needs (Debian): `apt-get install -y docker-registry apache2-utils`
//! (`docker-registry` for the registry, `htpasswd` from apache2-utils). Everything runs on
//! 127.0.0.1 with free ports and temp dirs; ~/.docker and ~/.kube are never read.

mod common;

use std::collections::BTreeMap;

use kubepull_core::keyring::{resolve, PullSecret};
use kubepull_core::reference::{parse_normalized_named, Digest};
use kubepull_registry::testkit::registry::{descriptor_json, free_port, wait_log_at, OCI_MANIFEST};
use kubepull_registry::testkit::{
    basic_authorization, http_client, push, RegistryAuth, RegistryConfig, RegistryProcess, TestCa,
    TestImage,
};
use kubepull_registry::{Client, ClientConfig, ErrorKind, Platform, RegistryCredential, TlsConfig};

const USER: &str = "testuser";
const PASS: &str = "Real-Registry-Pass-42";

/// A registry serving HTTPS from a fresh CA with Basic auth for `users`; and that CA.
fn start_registry(users: &[(&str, &str)]) -> (RegistryProcess, TestCa) {
    let ca = TestCa::new();
    let reg = RegistryProcess::start(RegistryConfig {
        tls: Some(ca.server_cert(&["127.0.0.1", "localhost"])),
        auth: RegistryAuth::Htpasswd {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        },
        ..RegistryConfig::default()
    })
    .unwrap();
    (reg, ca)
}

/// Pushes blobs and a manifest as `team/app:TAG` through the distribution API as `user`.
async fn push_as(
    (reg, ca): &(RegistryProcess, TestCa),
    (user, pass): (&str, &str),
    tag: &str,
    media_type: &str,
    manifest: &[u8],
    blobs: &[Vec<u8>],
) {
    push(
        &reg.base_url(),
        &http_client(Some(ca.cert_pem()), None).unwrap(),
        Some(&basic_authorization(user, pass)),
        "team/app",
        tag,
        media_type,
        manifest,
        blobs,
    )
    .await
    .unwrap_or_else(|e| panic!("push {tag}: {e}\n{}", reg.log()));
}

fn pull_secret(name: &str, host: &str, user: &str, pass: &str) -> PullSecret {
    let cfg = format!(r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{pass}"}}}}}}"#);
    let mut data = BTreeMap::new();
    data.insert(".dockerconfigjson".to_string(), cfg.into_bytes());
    PullSecret {
        name: name.into(),
        secret_type: "kubernetes.io/dockerconfigjson".into(),
        data,
    }
}

fn client(ca: &TestCa) -> Client {
    Client::https(
        &TlsConfig::private_ca(ca.cert_pem().as_bytes().to_vec()),
        ClientConfig::default(),
    )
    .unwrap()
}

fn keyring_creds(image: &str, secrets: &[PullSecret]) -> Vec<RegistryCredential> {
    resolve(image, secrets, None)
        .unwrap()
        .credentials
        .iter()
        .map(RegistryCredential::from_keyring)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_registry_basic_auth_pull_with_pull_secret() {
    let started = start_registry(&[(USER, PASS)]);
    let (reg, ca) = &started;
    let amd = TestImage::new("amd64", 1);
    let arm = TestImage::new("arm64", 2);
    let mut blobs = amd.blobs();
    blobs.extend(arm.blobs());
    push_as(
        &started,
        (USER, PASS),
        "v1",
        OCI_MANIFEST,
        &amd.manifest,
        &blobs,
    )
    .await;
    push_as(
        &started,
        (USER, PASS),
        "arm",
        OCI_MANIFEST,
        &arm.manifest,
        &[],
    )
    .await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        descriptor_json(OCI_MANIFEST, &amd.manifest)
            .replace('}', r#","platform":{"os":"linux","architecture":"amd64"}}"#),
        descriptor_json(OCI_MANIFEST, &arm.manifest).replace(
            '}',
            r#","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}"#
        ),
    );
    push_as(
        &started,
        (USER, PASS),
        "multi",
        "application/vnd.oci.image.index.v1+json",
        index.as_bytes(),
        &[],
    )
    .await;

    let host = reg.host();
    let image = format!("{host}/team/app:v1");
    let secrets = [
        pull_secret("stale", &host, USER, "not-the-password"),
        pull_secret("regcred", &format!("{host}/team"), USER, PASS),
    ];
    let creds = keyring_creds(&image, &secrets);
    assert_eq!(creds.len(), 2);
    let c = client(ca);
    let r = parse_normalized_named(&image).unwrap();
    let (repo, resolved) = c
        .resolve_image(&r, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    // keyring order: the more specific key (host/team) first
    assert_eq!(
        resolved.credential_source.as_deref(),
        Some("secret/regcred")
    );
    assert_eq!(resolved.digest, Digest::sha256_of(&amd.manifest));
    let dir = tempfile::tempdir().unwrap();
    for (l, want) in resolved.manifest.layers.iter().zip(&amd.layers) {
        let dest = dir.path().join(l.digest.hex());
        repo.fetch_blob_resumable(l, &dest, None).await.unwrap();
        assert_eq!(&std::fs::read(&dest).unwrap(), want);
    }
    assert_eq!(
        common::blob_bytes(&repo, &resolved.manifest.config)
            .await
            .unwrap(),
        amd.config
    );
    // HEAD resolve gives the same descriptor
    let d = repo
        .resolve(&kubepull_registry::ManifestRef::parse("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(d.digest, resolved.digest);

    // multi-platform: index narrowed to arm64
    let multi = parse_normalized_named(&format!("{host}/team/app:multi")).unwrap();
    let (_, m) = c
        .resolve_image(&multi, &creds, &Platform::parse("linux/arm64").unwrap())
        .await
        .unwrap();
    assert_eq!(m.digest, Digest::sha256_of(index.as_bytes()));
    assert_eq!(
        m.manifest_descriptor.digest,
        Digest::sha256_of(&arm.manifest)
    );
    // pinned by digest
    let pinned = parse_normalized_named(&format!(
        "{host}/team/app@{}",
        Digest::sha256_of(&amd.manifest)
    ))
    .unwrap();
    c.resolve_image(&pinned, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();

    // wrong password only: Unauthorized, naming the secret, never the password
    let bad = keyring_creds(&image, &secrets[..1]);
    let e = c
        .resolve_image(&r, &bad, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("secret/stale"), "{e}");
    assert!(!format!("{e} {e:?}").contains("not-the-password"));
    // unknown tag
    let nope = parse_normalized_named(&format!("{host}/team/app:nope")).unwrap();
    let e = c
        .resolve_image(&nope, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ManifestUnknown, "{e}");
    // no secrets at all: anonymous, rejected
    let e = c
        .resolve_image(&r, &[], &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    // a client that does not trust the CA: classified as TLS
    let untrusting = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
    let e = untrusting
        .resolve_image(&r, &creds, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    // nothing listening: connect error
    let closed =
        parse_normalized_named(&format!("127.0.0.1:{}/team/app:v1", free_port().unwrap())).unwrap();
    let cfg = ClientConfig {
        max_retries: 0,
        ..ClientConfig::default()
    };
    let e = Client::https(
        &TlsConfig::private_ca(ca.cert_pem().as_bytes().to_vec()),
        cfg,
    )
    .unwrap()
    .resolve_image(&closed, &[], &Platform::parse("linux/amd64").unwrap())
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
}

/// The launcher: every htpasswd user is accepted, the access log counts blob `GET`s, and a
/// restarted registry listens on the same port with the same content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launcher_users_access_log_and_restart() {
    let mut started = start_registry(&[(USER, PASS), ("second", "Second-Pass-7")]);
    let img = TestImage::new("amd64", 3);
    push_as(
        &started,
        ("second", "Second-Pass-7"),
        "v1",
        OCI_MANIFEST,
        &img.manifest,
        &img.blobs(),
    )
    .await;
    let (reg, ca) = &mut started;
    let layer = Digest::sha256_of(&img.layers[1]);
    assert_eq!(reg.settled_blob_gets(&layer), 0, "{}", reg.log());

    reg.stop();
    assert!(std::net::TcpStream::connect(reg.host()).is_err());
    reg.restart().unwrap();
    let http = http_client(Some(ca.cert_pem()), None).unwrap();
    let get = |auth: String| {
        http.get(format!("{}/v2/team/app/blobs/{layer}", reg.base_url()))
            .header("authorization", auth)
            .send()
    };
    let r = get(basic_authorization(USER, PASS)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), img.layers[1]);
    let r = get(basic_authorization(USER, "not-the-password"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(reg.wait_blob_gets(&layer, 1), 1, "{}", reg.log());
}

/// A restart whose port is still taken when the registry starts (held here for a moment, as
/// the kernel or another process may hold a released port) retries until it binds, and the
/// restarted registry serves the same content.
#[test]
fn restart_retries_while_the_port_is_taken() {
    let mut reg = RegistryProcess::start(RegistryConfig::default()).unwrap();
    reg.stop();
    let holder = std::net::TcpListener::bind(reg.host()).unwrap();
    // freed once the restart has failed to bind (not after a fixed time: a slow start might
    // come after it)
    let (path, seen) = (reg.log_path(), reg.log().len());
    let release = std::thread::spawn(move || {
        wait_log_at(&path, |l| {
            l.get(seen..)
                .is_some_and(|l| l.contains("address already in use"))
        });
        drop(holder);
    });
    reg.restart().unwrap_or_else(|e| panic!("{e}"));
    release.join().unwrap();
    assert!(
        reg.log().contains("address already in use"),
        "{}",
        reg.log()
    );
    assert!(std::net::TcpStream::connect(reg.host()).is_ok());
}
