//! DNS pinning: the addresses the destination/realm policy checked are the addresses
//! connected to. Only the `Resolver` seam answers: no metadata address is ever connected to.
//!
//! Needs (Debian): `docker-registry`.

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kubepull_core::reference::parse_normalized_named;
use kubepull_registry::policy::{check_destination, Zone};
use kubepull_registry::testkit::registry::OCI_MANIFEST;
use kubepull_registry::testkit::{
    http_client, push, HttpResponse, HttpServer, RegistryAuth, RegistryConfig, RegistryProcess,
    TestCa, TestImage,
};
use kubepull_registry::transport::BoxFuture;
use kubepull_registry::{Client, ClientConfig, PinnedResolver, Platform, Resolver, TlsConfig};
use url::Url;

/// Answers `first` once, then `later` forever: a rebinding DNS server.
struct Flipping {
    first: IpAddr,
    later: IpAddr,
    calls: AtomicUsize,
}

impl Flipping {
    fn new(first: &str, later: &str) -> Arc<Flipping> {
        Arc::new(Flipping {
            first: first.parse().unwrap(),
            later: later.parse().unwrap(),
            calls: AtomicUsize::new(0),
        })
    }
}

impl Resolver for Flipping {
    fn resolve<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let a = if n == 0 { self.first } else { self.later };
        Box::pin(async move { Ok(vec![a]) })
    }
}

#[tokio::test]
async fn checked_answer_is_the_connected_answer() {
    let url = Url::parse("https://cdn.example.net/blob").unwrap();
    // unpinned, the rebinding works: the second answer is the metadata address
    let raw = Flipping::new("203.0.113.5", "169.254.169.254");
    assert!(check_destination(&url, Zone::Public, &*raw).await.is_ok());
    assert_eq!(
        raw.resolve("cdn.example.net", 443).await.unwrap(),
        vec!["169.254.169.254".parse::<IpAddr>().unwrap()]
    );
    // pinned: the check and every later lookup for the connection get the checked answer
    let flipping = Flipping::new("203.0.113.5", "169.254.169.254");
    let pinned = PinnedResolver::new(flipping.clone());
    assert!(check_destination(&url, Zone::Public, &pinned).await.is_ok());
    for _ in 0..3 {
        assert_eq!(
            pinned.connect_addrs("cdn.example.net", 443).await.unwrap(),
            vec!["203.0.113.5".parse::<IpAddr>().unwrap()]
        );
    }
    assert_eq!(
        pinned.connect_addrs("CDN.example.net.", 443).await.unwrap(),
        vec!["203.0.113.5".parse::<IpAddr>().unwrap()],
        "case and trailing dot name the same pin"
    );
    assert_eq!(flipping.calls.load(Ordering::SeqCst), 1);
    // a name first seen by a connection is pinned too, and a later check sees that answer
    let flipping = Flipping::new("169.254.169.254", "203.0.113.9");
    let pinned = PinnedResolver::new(flipping.clone());
    pinned.connect_addrs("evil.example.net", 443).await.unwrap();
    let evil = Url::parse("https://evil.example.net/").unwrap();
    assert!(check_destination(&evil, Zone::Public, &pinned)
        .await
        .is_err());
}

/// Serves a registry's storage directory over plain HTTP (one request per connection, so
/// every blob is a new connection and a new lookup).
async fn blob_server(root: std::path::PathBuf) -> HttpServer {
    HttpServer::start(
        None,
        Arc::new(move |req| {
            let root = root.clone();
            Box::pin(async move {
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
async fn real_connections_use_the_pinned_address() {
    // the registry redirects blob GETs to blobs.kubepull.test, a name only the test resolver
    // knows: its first answer is 127.0.0.1 (the blob server), every later one 127.0.0.2
    // (nothing listens there). The redirect policy checks the first answer; the blobs arrive
    // only if every connection uses it too.
    let storage = tempfile::tempdir().unwrap();
    let blobs = blob_server(storage.path().to_path_buf()).await;
    let ca = TestCa::new();
    let reg = RegistryProcess::start(RegistryConfig {
        tls: Some(ca.server_cert(&["127.0.0.1"])),
        auth: RegistryAuth::None,
        storage: Some(storage.path().to_path_buf()),
        redirect_base_url: Some(format!(
            "http://blobs.kubepull.test:{}",
            blobs.addr().port()
        )),
        client_ca_pem: None,
    })
    .unwrap();
    let img = TestImage::new("amd64", 5);
    push(
        &reg.base_url(),
        &http_client(Some(ca.cert_pem()), None).unwrap(),
        None,
        "team/app",
        "v1",
        OCI_MANIFEST,
        &img.manifest,
        &img.blobs(),
    )
    .await
    .unwrap();
    let flipping = Flipping::new("127.0.0.1", "127.0.0.2");
    let c = Client::https_with_resolver(
        &TlsConfig::private_ca(ca.cert_pem()),
        ClientConfig {
            max_retries: 0,
            ..ClientConfig::default()
        },
        flipping.clone(),
    )
    .unwrap();
    let r = parse_normalized_named(&format!("{}/team/app:v1", reg.host())).unwrap();
    let (repo, resolved) = c
        .resolve_image(&r, &[], &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    assert_eq!(resolved.digest, img.digest());
    for (l, want) in resolved.manifest.layers.iter().zip(&img.layers) {
        assert_eq!(&common::blob_bytes(&repo, l).await.unwrap()[..], &want[..]);
    }
    assert_eq!(
        common::blob_bytes(&repo, &resolved.manifest.config)
            .await
            .unwrap(),
        img.config
    );
    assert_eq!(
        flipping.calls.load(Ordering::SeqCst),
        1,
        "one lookup, pinned"
    );
}
