//! Protocol and security behaviour against a scripted in-process registry (no sockets).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use kubepull_core::reference::{parse_normalized_named, Digest};
use kubepull_registry::transport::{Response, TransportError, TransportErrorKind};
use kubepull_registry::{Error, ErrorKind, ManifestRef, Platform, RegistryCredential};

fn image_ref() -> kubepull_core::reference::Reference {
    parse_normalized_named("reg.example.com/team/app:v1").unwrap()
}

fn alice() -> RegistryCredential {
    RegistryCredential::basic("secret/regcred", "alice", PASSWORD)
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn no_secret(s: &str) {
    for secret in [PASSWORD, TOKEN, REFRESH] {
        assert!(!s.contains(secret), "secret leaked into: {s}");
    }
    let b64 = basic("alice", PASSWORD);
    assert!(!s.contains(b64.trim_start_matches("Basic ")), "{s}");
}

fn assert_err_clean(e: &Error) {
    no_secret(&e.to_string());
    no_secret(&format!("{e:?}"));
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        no_secret(&s.to_string());
        src = s.source();
    }
}

#[tokio::test]
async fn basic_auth_pull_and_blobs_to_files() {
    let s = server(fake(AuthMode::Basic));
    let c = client(&s);
    let (repo, r) = c
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap();
    assert_eq!(r.credential_source.as_deref(), Some("secret/regcred"));
    assert_eq!(r.manifest.layers.len(), 2);
    assert_eq!(r.digest, Digest::sha256_of(&image(7).manifest));
    let dir = tempfile::tempdir().unwrap();
    for l in &r.manifest.layers {
        let dest = dir.path().join(l.digest.hex());
        let n = repo.fetch_blob_resumable(l, &dest, None).await.unwrap();
        assert_eq!(n.downloaded, l.size);
        assert_eq!(Digest::sha256_of(&std::fs::read(&dest).unwrap()), l.digest);
    }
    let cfg = common::blob_bytes(&repo, &r.manifest.config).await.unwrap();
    assert_eq!(cfg, Bytes::from(image(7).config));
    // nothing but the two blobs in the directory
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[tokio::test]
async fn anonymous_only_without_credentials_and_no_auth_header() {
    let s = server(fake(AuthMode::None));
    let c = client(&s);
    let (_, r) = c.resolve_image(&image_ref(), &[], &amd64()).await.unwrap();
    assert_eq!(r.credential_source, None);
    assert!(s.log.lock().unwrap().iter().all(|l| l.auth.is_none()));
}

#[tokio::test]
async fn bearer_cross_host_realm_token_cached_and_scoped() {
    let s = server(fake(AuthMode::Bearer {
        realm: "https://auth.example.com/token".into(),
    }));
    let c = client(&s);
    let (repo, r) = c
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap();
    for l in &r.manifest.layers {
        common::blob_bytes(&repo, l).await.unwrap();
    }
    let log = s.log.lock().unwrap().clone();
    let token_reqs: Vec<_> = log
        .iter()
        .filter(|l| l.host == "auth.example.com")
        .collect();
    assert_eq!(token_reqs.len(), 1, "token fetched once, then cached");
    let t = token_reqs[0];
    assert_eq!(t.method, http::Method::GET);
    assert!(t.url.contains("service=fake-registry"), "{}", t.url);
    assert!(
        t.url.contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{}",
        t.url
    );
    assert_eq!(t.auth.as_deref(), Some(basic("alice", PASSWORD).as_str()));
    // the registry only ever saw the bearer token, never the password
    for l in log.iter().filter(|l| l.host == "reg.example.com") {
        if let Some(a) = &l.auth {
            assert_eq!(a, &format!("Bearer {TOKEN}"));
        }
    }
    // a second repository handle with the same credential reuses the cached token
    let repo2 = c.repository(&image_ref(), Some(alice())).unwrap();
    repo2
        .fetch_manifest(&ManifestRef::parse("v1").unwrap())
        .await
        .unwrap();
    let n = s
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.host == "auth.example.com")
        .count();
    assert_eq!(n, 1);
    // another credential does not get alice's token
    let bob = RegistryCredential::basic("secret/bob", "bob", "other");
    let repo3 = c.repository(&image_ref(), Some(bob)).unwrap();
    let e = repo3
        .fetch_manifest(&ManifestRef::parse("v1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("secret/bob"), "{e}");
}

#[tokio::test]
async fn identity_token_uses_oauth_post_refresh_grant() {
    let s = server(fake(AuthMode::Bearer {
        realm: "https://auth.example.com/token".into(),
    }));
    let c = client(&s);
    let cred = RegistryCredential::identity_token("node", REFRESH);
    c.resolve_image(&image_ref(), &[cred], &amd64())
        .await
        .unwrap();
    let log = s.log.lock().unwrap();
    let t = log.iter().find(|l| l.host == "auth.example.com").unwrap();
    assert_eq!(t.method, http::Method::POST);
    assert!(t.auth.is_none());
    let body = String::from_utf8(t.body.clone().unwrap().to_vec()).unwrap();
    assert!(body.contains("grant_type=refresh_token"), "{body}");
    assert!(body.contains("client_id=kubepull"), "{body}");
    assert!(
        body.contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{body}"
    );
}

async fn realm_refused(realm: &str) -> (Error, Vec<Logged>) {
    let s = server(fake(AuthMode::Bearer {
        realm: realm.into(),
    }));
    let c = client(&s);
    let e = c
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap_err();
    let log = s.log.lock().unwrap().clone();
    (e, log)
}

#[tokio::test]
async fn unsafe_realms_get_no_credentials() {
    for realm in [
        "http://auth.example.com/token",
        "ftp://auth.example.com/token",
        "https://user:pw@auth.example.com/token",
        "https://evil.example.com/token",
        "https://evil6.example.com/token",
        "https://169.254.169.254/token",
        "https://[fd00:ec2::254]/token",
        "https://100.100.100.200/token",
        "https://metadata.google.internal/token",
        "https://0.0.0.0/token",
        "https://internal.example.com/token",
        "https://127.0.0.1:5000/token",
        "not a url",
    ] {
        let (e, log) = realm_refused(realm).await;
        let kind = e.kind();
        assert!(
            kind == ErrorKind::Policy || kind == ErrorKind::Protocol,
            "{realm}: {kind:?} {e}"
        );
        // the only requests went to the registry, and none carried a credential
        for l in &log {
            assert_eq!(l.host, "reg.example.com", "{realm}: request to {}", l.url);
            assert!(l.auth.is_none(), "{realm}");
        }
        assert_err_clean(&e);
    }
}

#[tokio::test]
async fn insecure_registry_anonymous_ok_credentials_refused() {
    let mut f = fake(AuthMode::None);
    f.registry_host = "plain.example.com:5080".into();
    let s = server(f);
    let mut cfg = fast_config();
    cfg.insecure_registries = vec!["plain.example.com:5080".into()];
    let c = client_with(&s, cfg.clone());
    let r = parse_normalized_named("plain.example.com:5080/team/app:v1").unwrap();
    c.resolve_image(&r, &[], &amd64()).await.unwrap();
    assert!(s
        .log
        .lock()
        .unwrap()
        .iter()
        .all(|l| l.url.starts_with("http://")));

    let mut f = fake(AuthMode::Basic);
    f.registry_host = "plain.example.com:5080".into();
    let s = server(f);
    let c = client_with(&s, cfg);
    let e = c.resolve_image(&r, &[alice()], &amd64()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Policy, "{e}");
    // the exit code the command line reports for a policy refusal (one table for both)
    assert_eq!(e.exit_code(), 21, "{e}");
    assert!(e.to_string().contains("plain http"), "{e}");
    assert!(s.log.lock().unwrap().iter().all(|l| l.auth.is_none()));
}

fn redirect_blobs(to: &'static str) -> Hook {
    Arc::new(move |req, fake| {
        let host = kubepull_registry::policy::host_label(&req.url);
        let path = req.url.path();
        if host == "reg.example.com" && path.contains("/blobs/") {
            // only once authenticated, like a real registry
            let r = fake.handle(req);
            if r.status != StatusCode::OK {
                return Some(r);
            }
            let d = path.rsplit('/').next().unwrap();
            return Some(resp(307, &[("location", &format!("{to}/data/{d}"))], ""));
        }
        if path.starts_with("/data/") {
            let d = path.trim_start_matches("/data/");
            if req.headers.contains_key(http::header::AUTHORIZATION) {
                return Some(resp(400, &[], "credentials leaked"));
            }
            if host == "reg.example.com" {
                // came back to the registry origin through storage: still no auth expected
                return Some(resp(200, &[], fake.blobs[d].clone()));
            }
            return Some(resp(200, &[], fake.blobs[d].clone()));
        }
        None
    })
}

#[tokio::test]
async fn cross_host_redirect_drops_authorization() {
    for storage in [
        "https://storage.example.net",
        "http://storage.example.net",
        "https://reg.example.com:8443",
        "http://reg.example.com",
    ] {
        let s = server(fake(AuthMode::Basic));
        *s.hook.lock().unwrap() = Some(redirect_blobs(storage));
        let c = client(&s);
        let (repo, r) = c
            .resolve_image(&image_ref(), &[alice()], &amd64())
            .await
            .unwrap();
        for l in &r.manifest.layers {
            common::blob_bytes(&repo, l).await.unwrap();
        }
        let log = s.log.lock().unwrap();
        let storage_reqs: Vec<_> = log.iter().filter(|l| l.url.contains("/data/")).collect();
        assert_eq!(storage_reqs.len(), 2, "{storage}");
        assert!(storage_reqs.iter().all(|l| l.auth.is_none()), "{storage}");
    }
}

#[tokio::test]
async fn redirect_back_to_registry_does_not_reattach() {
    let s = server(fake(AuthMode::Basic));
    *s.hook.lock().unwrap() = Some(Arc::new(|req, fake| {
        let host = kubepull_registry::policy::host_label(&req.url);
        let path = req.url.path().to_string();
        if host == "reg.example.com" && path.contains("/blobs/") {
            let r = fake.handle(req);
            if r.status != StatusCode::OK {
                return Some(r);
            }
            let d = path.rsplit('/').next().unwrap();
            return Some(resp(
                302,
                &[("location", &format!("https://storage.example.net/hop/{d}"))],
                "",
            ));
        }
        if path.starts_with("/hop/") {
            let d = path.trim_start_matches("/hop/");
            return Some(resp(
                307,
                &[("location", &format!("https://reg.example.com/data/{d}"))],
                "",
            ));
        }
        if path.starts_with("/data/") {
            if req.headers.contains_key(http::header::AUTHORIZATION) {
                return Some(resp(400, &[], "re-attached"));
            }
            return Some(resp(
                200,
                &[],
                fake.blobs[path.trim_start_matches("/data/")].clone(),
            ));
        }
        None
    }));
    let c = client(&s);
    let (repo, r) = c
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap();
    common::blob_bytes(&repo, &r.manifest.layers[1])
        .await
        .unwrap();
    let log = s.log.lock().unwrap();
    let back = log.iter().find(|l| l.url.contains("/data/")).unwrap();
    assert!(back.auth.is_none());
}

#[tokio::test]
async fn redirect_to_metadata_address_is_refused() {
    for target in [
        "http://169.254.169.254/latest/meta-data",
        "http://evil.example.com/x",
        "http://metadata.google.internal/x",
        "file:///etc/passwd",
        "http://10.0.0.1/x",
    ] {
        let s = server(fake(AuthMode::Basic));
        *s.hook.lock().unwrap() = Some(Arc::new(move |req, fake| {
            if req.url.path().contains("/blobs/") {
                let r = fake.handle(req);
                if r.status != StatusCode::OK {
                    return Some(r);
                }
                return Some(resp(302, &[("location", target)], ""));
            }
            None
        }));
        let c = client(&s);
        let (repo, r) = c
            .resolve_image(&image_ref(), &[alice()], &amd64())
            .await
            .unwrap();
        let e = common::blob_bytes(&repo, &r.manifest.layers[0])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Policy, "{target}: {e}");
        let log = s.log.lock().unwrap();
        assert!(log.iter().all(|l| l.host == "reg.example.com"), "{target}");
    }
}

#[tokio::test]
async fn wrong_blob_digest_rejected_and_nothing_kept() {
    let s = server(fake(AuthMode::None));
    let c = client(&s);
    let (repo, r) = c.resolve_image(&image_ref(), &[], &amd64()).await.unwrap();
    let layer = r.manifest.layers[1].clone();
    // same size, different content
    s.fake
        .lock()
        .unwrap()
        .blobs
        .insert(layer.digest.to_string(), vec![0xEE; layer.size as usize]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let e = repo
        .fetch_blob_resumable(&layer, &dest, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    // the partial is emptied: nothing unverified is kept to resume from
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), 0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // longer than the descriptor: stopped early, still nothing kept
    s.fake.lock().unwrap().blobs.insert(
        layer.digest.to_string(),
        vec![0xEE; layer.size as usize * 3],
    );
    let e = repo
        .fetch_blob_resumable(&layer, &dest, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), 0);
}

#[tokio::test]
async fn pinned_manifest_digest_verified() {
    let s = server(fake(AuthMode::None));
    let img = image(7);
    let other = image(8);
    let want = Digest::sha256_of(&img.manifest);
    // the registry serves another manifest under the pinned digest
    s.fake.lock().unwrap().manifests.insert(
        want.to_string(),
        (OCI_MANIFEST.into(), other.manifest.clone()),
    );
    let c = client(&s);
    let r = parse_normalized_named(&format!("reg.example.com/team/app@{want}")).unwrap();
    let e = c.resolve_image(&r, &[], &amd64()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");

    // a tag whose Docker-Content-Digest header lies is refused too
    let s = server(fake(AuthMode::None));
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, fake| {
        if req.url.path().ends_with("/manifests/v1") {
            let mut r = fake.handle(req);
            r.headers.insert(
                "docker-content-digest",
                http::HeaderValue::from_str(&Digest::sha256_of(b"lie").to_string()).unwrap(),
            );
            return Some(r);
        }
        None
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
}

#[tokio::test]
async fn oversized_manifest_rejected() {
    let big = vec![b' '; kubepull_registry::MAX_MANIFEST_SIZE as usize + 1];
    // announced by Content-Length
    let s = server(fake(AuthMode::None));
    s.fake
        .lock()
        .unwrap()
        .manifests
        .insert("v1".into(), (OCI_MANIFEST.into(), big.clone()));
    let e = client(&s)
        .resolve_image(&image_ref(), &[], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    // streamed without Content-Length
    let s = server(fake(AuthMode::None));
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
        if req.url.path().contains("/manifests/") {
            let chunks: Vec<Result<Bytes, TransportError>> = (0..5)
                .map(|_| Ok(Bytes::from(vec![b' '; 1024 * 1024])))
                .collect();
            return Some(Response {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Box::pin(futures_util::stream::iter(chunks)),
            });
        }
        None
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
}

#[tokio::test]
async fn malformed_challenge_and_token_json_are_clear_errors() {
    let s = server(fake(AuthMode::Basic));
    *s.hook.lock().unwrap() = Some(Arc::new(|req, _| {
        (req.url.path() != "/token").then(|| {
            resp(
                401,
                &[(
                    "www-authenticate",
                    r#"Bearer realm="https://auth.example.com/token"#,
                )],
                "",
            )
        })
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("malformed authentication challenge"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Protocol);

    for (body, want) in [
        (r#"{"token": "#, "not valid json"),
        (r#"{"expires_in": 60}"#, "no token"),
        (r#"{"token": "a\nb"}"#, "not a valid header"),
    ] {
        let s = server(fake(AuthMode::Bearer {
            realm: "https://auth.example.com/token".into(),
        }));
        *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
            (req.url.path() == "/token").then(|| resp(200, &[], body))
        }));
        let e = client(&s)
            .resolve_image(&image_ref(), &[alice()], &amd64())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("malformed token response"), "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }

    // an oversized token response is cut off
    let s = server(fake(AuthMode::Bearer {
        realm: "https://auth.example.com/token".into(),
    }));
    *s.hook.lock().unwrap() = Some(Arc::new(|req, _| {
        (req.url.path() == "/token").then(|| resp(200, &[], vec![b' '; 2 * 1024 * 1024]))
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
}

#[tokio::test]
async fn token_endpoint_redirect_not_followed() {
    let s = server(fake(AuthMode::Bearer {
        realm: "https://auth.example.com/token".into(),
    }));
    *s.hook.lock().unwrap() = Some(Arc::new(|req, _| {
        (req.url.path() == "/token").then(|| {
            resp(
                302,
                &[("location", "https://storage.example.net/steal")],
                "",
            )
        })
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Policy, "{e}");
    assert!(s
        .log
        .lock()
        .unwrap()
        .iter()
        .all(|l| l.host != "storage.example.net"));
}

#[tokio::test]
async fn traversal_digests_rejected_before_any_request() {
    for bad in [
        "sha256:../../../etc/passwd",
        "sha256:..%2f..%2fetc",
        "sha256:abc/../def",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        let e = ManifestRef::parse(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidReference, "{bad}");
    }
    assert!(ManifestRef::parse("../x").is_err());
    assert!(ManifestRef::parse("v1.2-rc").is_ok());
    // a manifest whose layer digest is a traversal string: refused at parse time
    let s = server(fake(AuthMode::None));
    let bad = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:../../../../etc/shadow","size":3},"layers":[]}"#;
    s.fake
        .lock()
        .unwrap()
        .manifests
        .insert("v1".into(), (OCI_MANIFEST.into(), bad.as_bytes().to_vec()));
    let e = client(&s)
        .resolve_image(&image_ref(), &[], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("invalid digest"), "{e}");
    assert!(s.log.lock().unwrap().iter().all(|l| !l.url.contains("..")));
}

fn cut_once(at: usize) -> Hook {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    Arc::new(move |req, fake| {
        if req.url.path().contains("/blobs/")
            && !req.headers.contains_key(http::header::RANGE)
            && !done.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let d = req.url.path().rsplit('/').next().unwrap();
            let blob = fake.blobs[d].clone();
            let len = blob.len().to_string();
            let chunks: Vec<Result<Bytes, TransportError>> = vec![
                Ok(Bytes::from(blob[..at].to_vec())),
                Err(TransportError::new(
                    TransportErrorKind::Body,
                    "connection reset",
                )),
            ];
            let mut r = resp(200, &[("content-length", len.as_str())], Bytes::new());
            r.body = Box::pin(futures_util::stream::iter(chunks));
            return Some(r);
        }
        None
    })
}

#[tokio::test]
async fn connection_cut_mid_blob_resumes_with_range_and_verifies() {
    let s = server(fake(AuthMode::Basic));
    *s.hook.lock().unwrap() = Some(cut_once(40_000));
    let c = client(&s);
    let (repo, r) = c
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap();
    let layer = &r.manifest.layers[0];
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    repo.fetch_blob_resumable(layer, &dest, None).await.unwrap();
    assert_eq!(
        Digest::sha256_of(&std::fs::read(&dest).unwrap()),
        layer.digest
    );
    let log = s.log.lock().unwrap();
    let ranged: Vec<_> = log.iter().filter_map(|l| l.range.clone()).collect();
    assert_eq!(ranged, vec!["bytes=40000-".to_string()]);
    // the resumed request was authenticated (same origin)
    assert!(log
        .iter()
        .filter(|l| l.range.is_some())
        .all(|l| l.auth.is_some()));
}

#[tokio::test]
async fn resume_against_a_server_that_ignores_range() {
    let s = server(fake(AuthMode::None));
    let cut = cut_once(12_345);
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, fake| {
        if let Some(r) = cut(req, fake) {
            return Some(r);
        }
        if req.url.path().contains("/blobs/") {
            // ignore Range: full body, 200
            let d = req.url.path().rsplit('/').next().unwrap();
            return Some(resp(200, &[], fake.blobs[d].clone()));
        }
        None
    }));
    let c = client(&s);
    let (repo, r) = c.resolve_image(&image_ref(), &[], &amd64()).await.unwrap();
    let layer = &r.manifest.layers[0];
    let b = common::blob_bytes(&repo, layer).await.unwrap();
    assert_eq!(Digest::sha256_of(&b), layer.digest);
}

#[tokio::test]
async fn stalled_body_resumes_then_gives_up() {
    let s = server(fake(AuthMode::None));
    let stall_every_time = |req: &kubepull_registry::transport::Request, fake: &Fake| {
        if req.url.path().contains("/blobs/") {
            let d = req.url.path().rsplit('/').next().unwrap();
            let blob = fake.blobs[d].clone();
            let first: Vec<Result<Bytes, TransportError>> =
                vec![Ok(Bytes::from(blob[..10].to_vec()))];
            let mut r = resp(200, &[], Bytes::new());
            r.body =
                Box::pin(futures_util::stream::iter(first).chain(futures_util::stream::pending()));
            return Some(r);
        }
        None
    };
    *s.hook.lock().unwrap() = Some(Arc::new(stall_every_time));
    let mut cfg = fast_config();
    cfg.stall_timeout = std::time::Duration::from_millis(30);
    cfg.max_resumes = 2;
    let c = client_with(&s, cfg);
    let (repo, r) = c.resolve_image(&image_ref(), &[], &amd64()).await.unwrap();
    let e = common::blob_bytes(&repo, &r.manifest.layers[0])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Stalled, "{e}");
    let blob_reqs = s
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.url.contains("/blobs/"))
        .count();
    assert_eq!(blob_reqs, 3, "one request and two resumes");
}

#[tokio::test]
async fn retries_5xx_and_429_then_rate_limited() {
    let s = server(fake(AuthMode::None));
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let n2 = n.clone();
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
        if req.url.path().contains("/manifests/") {
            match n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => return Some(resp(503, &[], "")),
                1 => return Some(resp(429, &[("retry-after", "0")], "")),
                _ => {}
            }
        }
        None
    }));
    client(&s)
        .resolve_image(&image_ref(), &[], &amd64())
        .await
        .unwrap();
    assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 3);

    let s = server(fake(AuthMode::None));
    *s.hook.lock().unwrap() = Some(Arc::new(|_, _| {
        Some(resp(
            429,
            &[("retry-after", "0")],
            r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#,
        ))
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(
        s.log.lock().unwrap().len() as u32,
        kubepull_registry::MAX_RETRIES + 1
    );
    // a Retry-After beyond the bound fails at once
    let s = server(fake(AuthMode::None));
    *s.hook.lock().unwrap() = Some(Arc::new(|_, _| {
        Some(resp(429, &[("retry-after", "86400")], ""))
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(s.log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn credentials_tried_in_order_and_failures_aggregated() {
    let s = server(fake(AuthMode::Basic));
    let wrong = RegistryCredential::basic("secret/old", "alice", "wrong-password-123");
    let c = client(&s);
    let (_, r) = c
        .resolve_image(&image_ref(), &[wrong.clone(), alice()], &amd64())
        .await
        .unwrap();
    assert_eq!(r.credential_source.as_deref(), Some("secret/regcred"));
    // no anonymous attempt after the credentials: every registry request after the first
    // challenge of each credential carried Authorization
    let log = s.log.lock().unwrap().clone();
    let anon = log.iter().filter(|l| l.auth.is_none()).count();
    assert_eq!(
        anon, 2,
        "one unauthenticated probe per credential: {log:#?}"
    );

    let other = RegistryCredential::basic("node", "bob", PASSWORD.to_string() + "-bob");
    let s = server(fake(AuthMode::Basic));
    let e = client(&s)
        .resolve_image(&image_ref(), &[wrong, other], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let msg = e.to_string();
    assert!(
        msg.contains("[secret/old] credentials from secret/old rejected"),
        "{msg}"
    );
    assert!(msg.contains("[node]"), "{msg}");
    assert_err_clean(&e);
    assert!(!msg.contains("wrong-password-123"));
    assert!(!format!("{e:?}").contains("wrong-password-123"));
    let Error::AllCredentialsFailed { attempts } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(attempts.len(), 2);
    // none of the requests went out without auth after a credential was chosen, except probes
    assert!(
        s.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.auth.is_none())
            .count()
            <= 2
    );
}

#[tokio::test]
async fn classified_not_found_errors() {
    let s = server(fake(AuthMode::None));
    let c = client(&s);
    let tag = parse_normalized_named("reg.example.com/team/app:nope").unwrap();
    let e = c.resolve_image(&tag, &[], &amd64()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ManifestUnknown, "{e}");
    let repo = parse_normalized_named("reg.example.com/team/other:v1").unwrap();
    let e = c.resolve_image(&repo, &[], &amd64()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // bearer with insufficient scope after authenticating = no pull access
    let s = server(fake(AuthMode::Bearer {
        realm: "https://auth.example.com/token".into(),
    }));
    *s.hook.lock().unwrap() = Some(Arc::new(|req, _| {
        (req.url.path() == "/token").then(|| resp(200, &[], r#"{"token":"useless"}"#))
    }));
    let e = client(&s)
        .resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!e.hint().is_empty());
}

#[tokio::test]
async fn index_platform_selection() {
    let s = server(fake(AuthMode::None));
    let amd = image(7);
    let arm = image(9);
    let idx = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}},
          {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
          {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
        Digest::sha256_of(&amd.manifest),
        amd.manifest.len(),
        Digest::sha256_of(&arm.manifest),
        arm.manifest.len(),
        Digest::sha256_of(b"att"),
        3
    );
    {
        let mut f = s.fake.lock().unwrap();
        f.manifests.insert(
            "multi".into(),
            (
                "application/vnd.oci.image.index.v1+json".into(),
                idx.clone().into_bytes(),
            ),
        );
        f.manifests.insert(
            Digest::sha256_of(&arm.manifest).to_string(),
            (OCI_MANIFEST.into(), arm.manifest.clone()),
        );
    }
    let c = client(&s);
    let r = parse_normalized_named("reg.example.com/team/app:multi").unwrap();
    let (_, got) = c
        .resolve_image(&r, &[], &Platform::parse("linux/arm64").unwrap())
        .await
        .unwrap();
    assert_eq!(got.digest, Digest::sha256_of(idx.as_bytes()));
    assert_eq!(
        got.manifest_descriptor.digest,
        Digest::sha256_of(&arm.manifest)
    );
    assert_eq!(got.platform.unwrap().to_string(), "linux/arm64/v8");
    let (_, got) = c.resolve_image(&r, &[], &amd64()).await.unwrap();
    assert_eq!(
        got.manifest_descriptor.digest,
        Digest::sha256_of(&amd.manifest)
    );
    let e = c
        .resolve_image(&r, &[], &Platform::parse("linux/s390x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PlatformNotFound);
    assert!(e.to_string().contains("linux/arm64/v8"), "{e}");
    // the host default is a valid platform
    let _ = Platform::host().to_string();
}

#[tokio::test]
async fn foreign_urls_only_for_nondistributable_and_without_credentials() {
    let s = server(fake(AuthMode::Basic));
    let foreign = b"foreign layer bytes".to_vec();
    let fd = Digest::sha256_of(&foreign);
    let f2 = foreign.clone();
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
        (kubepull_registry::policy::host_label(&req.url) == "storage.example.net").then(|| {
            if req.headers.contains_key(http::header::AUTHORIZATION) {
                resp(400, &[], "leak")
            } else {
                resp(200, &[], f2.clone())
            }
        })
    }));
    let c = client(&s);
    let repo = c.repository(&image_ref(), Some(alice())).unwrap();
    let desc: kubepull_registry::Descriptor = serde_json::from_str(&format!(
        r#"{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{fd}","size":{},"urls":["https://storage.example.net/layer.tgz"]}}"#,
        foreign.len()
    ))
    .unwrap();
    let b = common::blob_bytes(&repo, &desc).await.unwrap();
    assert_eq!(b, Bytes::from(foreign.clone()));
    let log = s.log.lock().unwrap().clone();
    let f = log
        .iter()
        .find(|l| l.host == "storage.example.net")
        .unwrap();
    assert!(f.auth.is_none());
    // a distributable layer never follows urls; a metadata url is refused
    let mut d2 = desc.clone();
    d2.media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    let e = common::blob_bytes(&repo, &d2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let mut d3 = desc.clone();
    d3.urls = vec!["http://169.254.169.254/latest".into()];
    let e = common::blob_bytes(&repo, &d3).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Policy, "{e}");
}

#[test]
fn debug_and_display_never_show_secrets() {
    let c = RegistryCredential::basic("secret/regcred", "alice", PASSWORD);
    no_secret(&format!("{c:?}"));
    let i = RegistryCredential::identity_token("node", REFRESH);
    no_secret(&format!("{i:?}"));
    let mut h = HeaderMap::new();
    let mut v = http::HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
    v.set_sensitive(true);
    h.insert(http::header::AUTHORIZATION, v);
    let req = kubepull_registry::transport::Request {
        method: http::Method::GET,
        url: url::Url::parse("https://u:pw@reg.example.com/v2/?token=abc").unwrap(),
        headers: h,
        body: Some(Bytes::from(format!("refresh_token={REFRESH}"))),
    };
    let d = format!("{req:?}");
    no_secret(&d);
    assert!(!d.contains("token=abc") && !d.contains("pw@"), "{d}");
    for k in [
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::ManifestUnknown,
        ErrorKind::PlatformNotFound,
        ErrorKind::RateLimited,
        ErrorKind::Tls,
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Stalled,
        ErrorKind::DigestMismatch,
        ErrorKind::TooLarge,
        ErrorKind::InvalidReference,
        ErrorKind::Protocol,
        ErrorKind::Policy,
        ErrorKind::Io,
    ] {
        assert!(!k.hint().is_empty() && !k.hint().ends_with('.'));
    }
}

#[tokio::test]
async fn revoked_cached_token_is_refetched_once() {
    let s = server(fake(AuthMode::Bearer {
        realm: "https://auth.example.com/token".into(),
    }));
    let c = client(&s);
    c.resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap();
    // the registry now rejects the cached token once (revoked server-side)
    let rejected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
        let bearer = req.headers.contains_key(http::header::AUTHORIZATION)
            && kubepull_registry::policy::host_label(&req.url) == "reg.example.com";
        (bearer && !rejected.swap(true, std::sync::atomic::Ordering::SeqCst)).then(|| {
            resp(
                401,
                &[(
                    "www-authenticate",
                    r#"Bearer realm="https://auth.example.com/token",service="fake-registry",error="invalid_token""#,
                )],
                "",
            )
        })
    }));
    let before = s
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.host == "auth.example.com")
        .count();
    c.resolve_image(&image_ref(), &[alice()], &amd64())
        .await
        .unwrap();
    let after = s
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.host == "auth.example.com")
        .count();
    assert_eq!(
        after - before,
        1,
        "exactly one new token after the rejection"
    );
}
