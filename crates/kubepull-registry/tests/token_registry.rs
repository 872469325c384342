//! The real CNCF distribution registry (Debian `docker-registry`) with `auth: token`, TLS from
//! a generated CA, and this crate's in-process token issuer (`testkit`): the Docker token
//! flow end to end, as the kubelet's runtime meets it.
//!
//! Needs (Debian): `docker-registry`, `openssl`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubepull_core::keyring::{resolve, PullSecret};
use kubepull_core::reference::parse_normalized_named;
use kubepull_registry::auth::Clock;
use kubepull_registry::testkit::{
    http_client, push, KeyHeader, RegistryAuth, RegistryConfig, RegistryProcess, TestCa, TestImage,
    TokenField, TokenServer, TokenServerConfig,
};
use kubepull_registry::{
    Client, ClientConfig, Error, ErrorKind, HttpsTransport, ManifestRef, Platform,
    RegistryCredential, StaticResolver, TlsConfig,
};

const ALICE_PASS: &str = "Alice-Token-Pass-31337";
const BOB_PASS: &str = "Bob-Token-Pass-4242";
const REFRESH: &str = "identity-token-Known-zork";

struct Bed {
    ca: TestCa,
    tokens: TokenServer,
    registry: RegistryProcess,
    image: TestImage,
    _work: tempfile::TempDir,
}

async fn bed(cfg: TokenServerConfig) -> Bed {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let tokens = TokenServer::start(&ca, cfg, work.path()).await.unwrap();
    tokens.add_user("alice", ALICE_PASS, &[("team/", &["pull"])]);
    tokens.add_user("bob", BOB_PASS, &[("other/", &["pull"])]);
    tokens.add_refresh_token(REFRESH, "alice");
    let registry = RegistryProcess::start(RegistryConfig {
        tls: Some(ca.server_cert(&["127.0.0.1", "localhost"])),
        auth: RegistryAuth::Token {
            realm: tokens.realm(),
            service: tokens.service(),
            issuer: tokens.issuer(),
            root_cert_bundle_pem: tokens.signing_cert_pem().to_string(),
        },
        storage: None,
        redirect_base_url: None,
        client_ca_pem: None,
    })
    .unwrap();
    let image = TestImage::new("amd64", 3);
    for repo in ["team/app", "other/thing"] {
        let auth = format!("Bearer {}", tokens.mint("admin", repo, &["pull", "push"]));
        push(
            &registry.base_url(),
            &http_client(Some(ca.cert_pem()), None).unwrap(),
            Some(&auth),
            repo,
            "v1",
            kubepull_registry::testkit::registry::OCI_MANIFEST,
            &image.manifest,
            &image.blobs(),
        )
        .await
        .unwrap_or_else(|e| panic!("push {repo}: {e}\n{}", registry.log()));
    }
    // pushing used minted tokens: the issuer has seen no request yet
    assert_eq!(tokens.requests().len(), 0);
    Bed {
        ca,
        tokens,
        registry,
        image,
        _work: work,
    }
}

impl Bed {
    fn client(&self) -> Client {
        Client::https(
            &TlsConfig::private_ca(self.ca.cert_pem()),
            ClientConfig::default(),
        )
        .unwrap()
    }

    fn image_ref(&self, repo: &str) -> String {
        format!("{}/{repo}:v1", self.registry.host())
    }
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

fn keyring_creds(image: &str, secrets: &[PullSecret]) -> Vec<RegistryCredential> {
    resolve(image, secrets, None)
        .unwrap()
        .credentials
        .iter()
        .map(RegistryCredential::from_keyring)
        .collect()
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_pull_with_pull_secret_and_cached_token() {
    let b = bed(TokenServerConfig::default()).await;
    let image = b.image_ref("team/app");
    let creds = keyring_creds(
        &image,
        &[pull_secret(
            "regcred",
            &b.registry.host(),
            "alice",
            ALICE_PASS,
        )],
    );
    let c = b.client();
    let r = parse_normalized_named(&image).unwrap();
    let (repo, resolved) = c
        .resolve_image(&r, &creds, &amd64())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", b.registry.log()));
    assert_eq!(resolved.digest, b.image.digest());
    assert_eq!(
        resolved.credential_source.as_deref(),
        Some("secret/regcred")
    );
    let dir = tempfile::tempdir().unwrap();
    for (l, want) in resolved.manifest.layers.iter().zip(&b.image.layers) {
        let dest = dir.path().join(l.digest.hex());
        repo.fetch_blob_resumable(l, &dest, None).await.unwrap();
        assert_eq!(&std::fs::read(&dest).unwrap(), want);
    }
    assert_eq!(
        common::blob_bytes(&repo, &resolved.manifest.config)
            .await
            .unwrap(),
        b.image.config
    );
    // one token for manifest + config + 2 layers
    let reqs = b.tokens.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].grant, "basic");
    assert_eq!(reqs[0].user.as_deref(), Some("alice"));
    assert_eq!(reqs[0].scopes, vec!["repository:team/app:pull".to_string()]);
    // a new handle on the same client reuses the cached token
    let (_, again) = c.resolve_image(&r, &creds, &amd64()).await.unwrap();
    assert_eq!(again.digest, b.image.digest());
    assert_eq!(b.tokens.issued(), 1);
    // another client has its own cache
    b.client()
        .resolve_image(&r, &creds, &amd64())
        .await
        .unwrap();
    assert_eq!(b.tokens.issued(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_names_the_secret_and_no_access_is_not_found() {
    let b = bed(TokenServerConfig::default()).await;
    let host = b.registry.host();
    let c = b.client();
    let image = b.image_ref("team/app");
    let r = parse_normalized_named(&image).unwrap();

    let wrong = keyring_creds(
        &image,
        &[pull_secret("stale", &host, "alice", "not-the-password-x")],
    );
    let e = c.resolve_image(&r, &wrong, &amd64()).await.unwrap_err();
    assert!(matches!(e, Error::AllCredentialsFailed { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert_eq!(e.exit_code(), 10);
    assert!(e.to_string().contains("secret/stale"), "{e}");
    assert!(!format!("{e} {e:?}").contains("not-the-password-x"));

    // bob's credentials are right but grant nothing on team/app
    let bob = keyring_creds(&image, &[pull_secret("bobcred", &host, "bob", BOB_PASS)]);
    let e = c.resolve_image(&r, &bob, &amd64()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.exit_code(), 11);
    assert!(e.to_string().contains("no pull access"), "{e}");
    assert!(e.to_string().contains("secret/bobcred"), "{e}");
    assert!(!format!("{e} {e:?}").contains(BOB_PASS));
    // ... and bob can pull what he has access to
    let other = b.image_ref("other/thing");
    let bob = keyring_creds(&other, &[pull_secret("bobcred", &host, "bob", BOB_PASS)]);
    c.resolve_image(&parse_normalized_named(&other).unwrap(), &bob, &amd64())
        .await
        .unwrap();

    // anonymous: the issuer grants nothing, the registry says insufficient_scope
    let e = c.resolve_image(&r, &[], &amd64()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(b.tokens.requests().iter().any(|q| q.grant == "anonymous"));
}

#[derive(Clone)]
struct ManualClock(Arc<Mutex<Instant>>);

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_in_is_respected() {
    let b = bed(TokenServerConfig {
        ttl: Duration::from_secs(120),
        ..TokenServerConfig::default()
    })
    .await;
    let clock = ManualClock(Arc::new(Mutex::new(Instant::now())));
    let transport = HttpsTransport::new(&TlsConfig::private_ca(b.ca.cert_pem())).unwrap();
    let c = Client::with_clock(
        Arc::new(transport),
        Arc::new(StaticResolver::new()),
        ClientConfig::default(),
        Box::new(clock.clone()),
    );
    let image = b.image_ref("team/app");
    let creds = keyring_creds(
        &image,
        &[pull_secret(
            "regcred",
            &b.registry.host(),
            "alice",
            ALICE_PASS,
        )],
    );
    let r = parse_normalized_named(&image).unwrap();
    let (repo, _) = c.resolve_image(&r, &creds, &amd64()).await.unwrap();
    assert_eq!(b.tokens.issued(), 1);
    let v1 = ManifestRef::parse("v1").unwrap();
    *clock.0.lock().unwrap() += Duration::from_secs(100);
    repo.fetch_manifest(&v1).await.unwrap();
    assert_eq!(b.tokens.issued(), 1, "token still valid at 100 s of 120 s");
    *clock.0.lock().unwrap() += Duration::from_secs(30);
    repo.fetch_manifest(&v1).await.unwrap();
    assert_eq!(b.tokens.issued(), 2, "token expired at 130 s: fetched anew");
    repo.fetch_manifest(&v1).await.unwrap();
    assert_eq!(b.tokens.issued(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_access_token_fields_and_identity_token_post() {
    let b = bed(TokenServerConfig::default()).await;
    let image = b.image_ref("team/app");
    let r = parse_normalized_named(&image).unwrap();
    let creds = keyring_creds(
        &image,
        &[pull_secret(
            "regcred",
            &b.registry.host(),
            "alice",
            ALICE_PASS,
        )],
    );
    for (field, key_header) in [
        (TokenField::Token, KeyHeader::X5c),
        (TokenField::AccessToken, KeyHeader::Kid),
    ] {
        b.tokens.set_config(TokenServerConfig {
            field,
            key_header,
            ..b.tokens.config()
        });
        let (_, got) = b
            .client()
            .resolve_image(&r, &creds, &amd64())
            .await
            .unwrap_or_else(|e| panic!("{field:?} {key_header:?}: {e}\n{}", b.registry.log()));
        assert_eq!(got.digest, b.image.digest());
    }
    // an identity token: OAuth2 POST with grant_type=refresh_token
    let before = b.tokens.requests().len();
    let idt = [RegistryCredential::identity_token(
        "secret/idtoken",
        REFRESH,
    )];
    let (_, got) = b.client().resolve_image(&r, &idt, &amd64()).await.unwrap();
    assert_eq!(got.credential_source.as_deref(), Some("secret/idtoken"));
    let reqs = b.tokens.requests();
    let q = &reqs[before];
    assert_eq!(q.method, "POST");
    assert_eq!(q.grant, "refresh_token");
    assert_eq!(q.client_id.as_deref(), Some("kubepull"));
    assert_eq!(q.user.as_deref(), Some("alice"));
    // a wrong identity token is rejected and named
    let bad = [RegistryCredential::identity_token(
        "secret/old",
        "nope-token",
    )];
    let e = b
        .client()
        .resolve_image(&r, &bad, &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("secret/old"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_scope_fetch_one_token() {
    let b = bed(TokenServerConfig {
        // long enough that every request below misses the cache before the first token
        // arrives
        delay: Duration::from_millis(400),
        ..TokenServerConfig::default()
    })
    .await;
    let c = b.client();
    let image = b.image_ref("team/app");
    let r = parse_normalized_named(&image).unwrap();
    let cred = RegistryCredential::basic("secret/regcred", "alice", ALICE_PASS);
    let manifest: kubepull_registry::manifest::ImageManifest =
        serde_json::from_slice(&b.image.manifest).unwrap();
    let mut descs = vec![manifest.config.clone()];
    descs.extend(manifest.layers.iter().cloned());
    // 3 blobs × 3 handles (same client, same credential, same scope), all at once
    let mut tasks = vec![];
    for _ in 0..3 {
        let repo = Arc::new(c.repository(&r, Some(cred.clone())).unwrap());
        for d in &descs {
            let repo = repo.clone();
            let d = d.clone();
            tasks.push(tokio::spawn(
                async move { common::blob_bytes(&repo, &d).await },
            ));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let reqs = b.tokens.requests();
    assert_eq!(reqs.len(), 1, "single-flight: {reqs:?}");
}

/// `Repository::for_push`: tokens asked for `pull,push`, a blob larger than one upload chunk
/// sent in chunks and committed under its digest, the manifest last; a blob file whose bytes do
/// not match the digest is never committed; a pull-only account cannot push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_blobs_in_chunks_then_the_manifest() {
    let b = bed(TokenServerConfig::default()).await;
    b.tokens.add_user(
        "carol",
        "Carol-Push-Pass-9",
        &[("team/", &["pull", "push"])],
    );
    let host = b.registry.host();
    let image = format!("{host}/team/pushed:v2");
    let r = parse_normalized_named(&image).unwrap();
    let carol = keyring_creds(
        &image,
        &[pull_secret("pusher", &host, "carol", "Carol-Push-Pass-9")],
    );
    let c = b.client();
    let repo = c.repository(&r, carol.first().cloned()).unwrap().for_push();

    // a layer of one full chunk and a bit more (two PATCHes), and a small config
    let dir = tempfile::tempdir().unwrap();
    let layer: Vec<u8> = (0..kubepull_registry::UPLOAD_CHUNK + 4099)
        .map(|i| (i % 251) as u8)
        .collect();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let mut blobs = Vec::new();
    for (name, bytes) in [("layer", &layer[..]), ("config", &config[..])] {
        let d = kubepull_core::reference::Digest::sha256_of(bytes);
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        blobs.push((d, p, bytes.len() as u64));
    }
    let seen = std::sync::Mutex::new(Vec::new());
    for (d, p, size) in &blobs {
        let (n, uploaded) = repo
            .push_blob_file(d, p, &|s| seen.lock().unwrap().push(s))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", b.registry.log()));
        assert!(uploaded);
        assert_eq!(n, *size);
    }
    let progress = seen.lock().unwrap().clone();
    assert_eq!(
        &progress[..2],
        &[kubepull_registry::UPLOAD_CHUNK as u64, layer.len() as u64],
        "one progress step per chunk: {progress:?}"
    );
    // the second push of the same blob sends nothing
    let (_, again) = repo
        .push_blob_file(&blobs[0].0, &blobs[0].1, &|_| {})
        .await
        .unwrap();
    assert!(!again, "a blob the registry has is not uploaded again");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        blobs[1].0, blobs[1].2, blobs[0].0, blobs[0].2
    );
    let md = repo
        .push_manifest(
            &ManifestRef::parse("v2").unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.clone().into_bytes().into(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", b.registry.log()));
    assert_eq!(
        md,
        kubepull_core::reference::Digest::sha256_of(manifest.as_bytes())
    );
    // the token asked for push as well as pull, once for the whole push
    let reqs = b.tokens.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        reqs[0].scopes,
        vec!["repository:team/pushed:pull,push".to_string()]
    );

    // pulled back by another client: the same manifest and the layer's bytes
    let (prepo, resolved) = b
        .client()
        .resolve_image(&r, &carol, &amd64())
        .await
        .unwrap();
    assert_eq!(resolved.digest, md);
    let got = dir.path().join("got");
    prepo
        .fetch_blob_resumable(&resolved.manifest.layers[0], &got, None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), layer);

    // a file whose bytes are not its digest's: refused before the commit, nothing stored
    let liar = kubepull_core::reference::Digest::sha256_of(b"something else");
    let e = repo
        .push_blob_file(&liar, &blobs[1].1, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(!repo.blob_exists(&liar).await.unwrap());

    // alice may only pull: her push is refused, and her password never shows
    let alice = keyring_creds(
        &image,
        &[pull_secret("regcred", &host, "alice", ALICE_PASS)],
    );
    let arepo = b
        .client()
        .repository(&r, alice.first().cloned())
        .unwrap()
        .for_push();
    let fresh = dir.path().join("fresh");
    std::fs::write(&fresh, b"a blob the registry does not have").unwrap();
    let fresh_d = kubepull_core::reference::Digest::sha256_of(b"a blob the registry does not have");
    let e = arepo
        .push_blob_file(&fresh_d, &fresh, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Unauthorized),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains(ALICE_PASS));
    assert!(!repo.blob_exists(&fresh_d).await.unwrap());
}
