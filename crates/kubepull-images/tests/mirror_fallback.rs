//! Per-blob fallback across the hosts of `hosts.toml`, with real registries over TLS: a mirror
//! that resolves the image but then fails a blob (serves wrong bytes, or has lost it) passes
//! that blob to the next host, the registry itself; every byte is verified against the
//! digest, so the pull succeeds with the right content and, as root, the layers' snapshots
//! built from what verified.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use kubepull_core::reference::Digest;
use kubepull_images::{parse_image, NoProgress, Puller};
use kubepull_registry::{Client, ClientConfig, HostsDir, Platform, TlsConfig};
use kubepull_store::Store;
use kubepull_testkit::fixture::secret_credential;
use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "origin";
const PASS: &str = "Origin-Pass-5";

/// Pulls `name` with the user's credential for `server` (the registry's own host).
async fn pull(
    puller: &Puller,
    server: &Registry,
    name: &str,
) -> Result<kubepull_images::PullReport, kubepull_images::PullError> {
    puller
        .pull(
            &parse_image(name).unwrap(),
            &[secret_credential(&server.host(), USER, PASS)],
            Arc::new(NoProgress),
        )
        .await
}

fn blob_file(reg: &Registry, d: &Digest) -> std::path::PathBuf {
    reg.storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&d.hex()[..2])
        .join(d.hex())
        .join("data")
}

fn hosts_dir(dir: &Path, server: &Registry, mirror: &Registry) {
    let d = dir.join(server.host());
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("server-ca.crt"), server.ca_pem()).unwrap();
    fs::write(d.join("mirror-ca.crt"), mirror.ca_pem()).unwrap();
    fs::write(
        d.join("hosts.toml"),
        format!(
            "server = \"https://{s}\"\nca = \"server-ca.crt\"\n\n[host.\"https://{m}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"mirror-ca.crt\"\n",
            s = server.host(),
            m = mirror.host()
        ),
    )
    .unwrap();
}

async fn case(damage: &str) {
    let server = Registry::start(&[(USER, PASS)]);
    let mirror = Registry::start(&[]);
    let img = busybox_image(&["true"], &[("etc/motd", b"from the registry\n")]);
    server.push("team/app", "v1", &img).await;
    mirror.push("team/app", "v1", &img).await;
    let layer = Digest::sha256_of(&img.layers[1]);
    let f = blob_file(&mirror, &layer);
    match damage {
        // same length, other bytes: the digest check fails
        "corrupt" => fs::write(&f, vec![0x42; img.layers[1].len()]).unwrap(),
        _ => fs::remove_file(&f).unwrap(),
    }

    let t = tempfile::tempdir().unwrap();
    hosts_dir(&t.path().join("hosts"), &server, &mirror);
    let store = Store::open(&t.path().join("store")).unwrap();
    let client = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
    let puller = Puller::new(client, store.clone(), Platform::host())
        .with_hosts(HostsDir::load(&t.path().join("hosts")).unwrap());
    let name = format!("{}/team/app:v1", server.host());
    let r = pull(&puller, &server, &name).await.unwrap();
    // the mirror served the manifest and the good blobs; the registry only the failed one
    let base = Digest::sha256_of(&img.layers[0]);
    assert_eq!(mirror.wait_blob_gets(&base, 1), 1, "{damage}");
    assert_eq!(server.wait_blob_gets(&layer, 1), 1, "{damage}");
    assert_eq!(server.settled_blob_gets(&base), 0, "{damage}");
    assert_eq!(
        server.log().matches("GET /v2/team/app/manifests").count(),
        0,
        "{damage}: resolved on the mirror"
    );
    // what is stored verifies
    let stored = fs::read(store.blob_path(&layer)).unwrap();
    assert_eq!(Digest::sha256_of(&stored), layer);
    if r.rootfs_ready {
        let rec = store.image(&name).unwrap().unwrap();
        let dirs = store
            .layer_snapshot(&name, &rec.layers, &Default::default())
            .unwrap();
        assert_eq!(
            fs::read(dirs[1].join("etc/motd")).unwrap(),
            b"from the registry\n"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_serving_wrong_bytes_falls_back_per_blob() {
    case("corrupt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_missing_a_blob_falls_back_per_blob() {
    case("missing").await;
}

/// `hosts.toml` with two mirrors before the registry: `first` (a URL; with the CA of a TLS
/// mirror), then `second`, then the registry itself.
fn hosts_dir_two_mirrors(
    dir: &Path,
    server: &Registry,
    (first, first_ca): (&str, Option<&str>),
    second: &Registry,
) {
    let d = dir.join(server.host());
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("server-ca.crt"), server.ca_pem()).unwrap();
    fs::write(d.join("second-ca.crt"), second.ca_pem()).unwrap();
    let first_ca = match first_ca {
        Some(pem) => {
            fs::write(d.join("first-ca.crt"), pem).unwrap();
            "  ca = \"first-ca.crt\"\n"
        }
        None => "",
    };
    fs::write(
        d.join("hosts.toml"),
        format!(
            "server = \"https://{s}\"\nca = \"server-ca.crt\"\n\n\
             [host.\"{first}\"]\n  capabilities = [\"pull\", \"resolve\"]\n{first_ca}\n\
             [host.\"https://{m}\"]\n  capabilities = [\"pull\"]\n  ca = \"second-ca.crt\"\n",
            s = server.host(),
            m = second.host()
        ),
    )
    .unwrap();
}

/// A mirror that serves the image's manifest and answers `503` to everything else.
async fn unavailable_mirror(
    manifest: Vec<u8>,
    heads: Arc<std::sync::atomic::AtomicUsize>,
) -> kubepull_registry::testkit::http::HttpServer {
    use kubepull_registry::testkit::http::{HttpResponse, HttpServer};
    let digest = Digest::sha256_of(&manifest).to_string();
    HttpServer::start(
        None,
        Arc::new(move |req| {
            let (manifest, digest, heads) = (manifest.clone(), digest.clone(), heads.clone());
            Box::pin(async move {
                if req.path() == "/v2/" {
                    return HttpResponse::new(200, "{}");
                }
                if req.path().contains("/manifests/") {
                    return HttpResponse::new(200, manifest)
                        .with_header("content-type", "application/vnd.oci.image.manifest.v1+json")
                        .with_header("docker-content-digest", &digest);
                }
                if req.method == "HEAD" && req.path().contains("/blobs/") {
                    heads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                HttpResponse::new(503, "")
            })
        }),
    )
    .await
    .unwrap()
}

/// A whole layer left in ingest/ (by a pull that died after its download verified, or held by
/// a pull that unpacks from it) is confirmed through the same hosts the blob's fetch would
/// use: the first mirror, which resolved the image, does not have the blob (`404`) or is
/// unavailable (`503`); the second mirror confirms it (`HEAD`, anonymous as mirrors are), so
/// the layer is taken from ingest/ and downloaded from no host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_download_is_confirmed_by_the_mirror_that_would_serve_it() {
    let server = Registry::start(&[(USER, PASS)]);
    let second = Registry::start(&[]);
    let missing = Registry::start(&[]);
    let img = busybox_image(&["true"], &[("etc/motd", b"from ingest\n")]);
    server.push("team/app", "v1", &img).await;
    second.push("team/app", "v1", &img).await;
    missing.push("team/app", "v1", &img).await;
    let layer = Digest::sha256_of(&img.layers[1]);
    fs::remove_file(blob_file(&missing, &layer)).unwrap();
    let heads_503 = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let unavailable = unavailable_mirror(img.manifest.clone(), heads_503.clone()).await;
    let heads = |reg: &Registry| {
        reg.settled_log()
            .lines()
            .filter(|l| l.contains(&format!("\"HEAD /v2/team/app/blobs/{layer} ")))
            .count()
    };
    let t = tempfile::tempdir().unwrap();
    let name = format!("{}/team/app:v1", server.host());
    let mut case = 0;
    for first in ["404", "503"] {
        for held in [false, true] {
            case += 1;
            let what = format!("first mirror {first}, held {held}");
            let hosts = t.path().join(format!("hosts{case}"));
            let first_host = match first {
                "404" => (
                    format!("https://{}", missing.host()),
                    Some(missing.ca_pem().to_string()),
                ),
                _ => (unavailable.base_url(), None),
            };
            hosts_dir_two_mirrors(
                &hosts,
                &server,
                (&first_host.0, first_host.1.as_deref()),
                &second,
            );
            let store = Store::open(&t.path().join(format!("store{case}"))).unwrap();
            let client = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
            let puller = Puller::new(client, store.clone(), Platform::host())
                .with_hosts(HostsDir::load(&hosts).unwrap());
            fs::write(store.ingest_path(&layer), &img.layers[1]).unwrap();
            let hold = held.then(|| store.hold_partial(&layer).unwrap());
            let (second_heads, first_heads) = (
                heads(&second),
                match first {
                    "404" => heads(&missing),
                    _ => heads_503.load(std::sync::atomic::Ordering::SeqCst),
                },
            );
            let r = pull(&puller, &server, &name)
                .await
                .unwrap_or_else(|e| panic!("{what}: {}", kubepull_images::error_chain(&e)));
            assert!(
                r.resumed >= img.layers[1].len() as u64,
                "{what}: the layer was not taken from ingest/: {r:?}"
            );
            // asked the first mirror, then the second, which confirmed
            let asked_first = match first {
                "404" => heads(&missing),
                _ => heads_503.load(std::sync::atomic::Ordering::SeqCst),
            };
            assert!(
                asked_first > first_heads,
                "{what}: the first mirror was not asked"
            );
            assert!(
                heads(&second) > second_heads,
                "{what}: the second mirror was not asked"
            );
            // downloaded from no host
            for reg in [&server, &second, &missing] {
                assert_eq!(reg.settled_blob_gets(&layer), 0, "{what}: {}", reg.host());
            }
            let stored = fs::read(store.blob_path(&layer))
                .or_else(|_| fs::read(store.ingest_path(&layer)))
                .unwrap();
            assert_eq!(Digest::sha256_of(&stored), layer, "{what}");
            if let Some(hold) = hold {
                store.discard_partial(hold).unwrap();
            }
        }
    }
}

/// A pull-through mirror that serves every blob of `img` on `GET` but answers `200` to any
/// `HEAD`, with the headers `head` gives (a catch-all; a real registry names the blob's digest
/// and size). Counts the `HEAD`s and `GET`s of `layer`.
async fn catch_all_mirror(
    img: &kubepull_testkit::Image,
    head: Vec<(&'static str, String)>,
    layer: Digest,
    counts: Arc<[std::sync::atomic::AtomicUsize; 2]>,
) -> kubepull_registry::testkit::http::HttpServer {
    use kubepull_registry::testkit::http::{HttpResponse, HttpServer};
    use std::sync::atomic::Ordering::SeqCst;
    let blobs: Arc<std::collections::HashMap<String, Vec<u8>>> = Arc::new(
        std::iter::once(&img.config)
            .chain(&img.layers)
            .map(|b| (Digest::sha256_of(b).to_string(), b.clone()))
            .collect(),
    );
    HttpServer::start(
        None,
        Arc::new(move |req| {
            let (blobs, head, counts) = (blobs.clone(), head.clone(), counts.clone());
            let layer = format!("/blobs/{layer}");
            Box::pin(async move {
                if req.path() == "/v2/" {
                    return HttpResponse::new(200, "{}");
                }
                let is_layer = req.path().ends_with(&layer);
                if req.method == "HEAD" {
                    if is_layer {
                        counts[0].fetch_add(1, SeqCst);
                    }
                    return head
                        .iter()
                        .fold(HttpResponse::new(200, ""), |r, (k, v)| r.with_header(k, v));
                }
                let blob = req
                    .path()
                    .rsplit_once("/blobs/")
                    .and_then(|(_, d)| blobs.get(d));
                match blob {
                    Some(b) => {
                        if is_layer {
                            counts[1].fetch_add(1, SeqCst);
                        }
                        HttpResponse::new(200, b.clone())
                    }
                    None => HttpResponse::new(404, ""),
                }
            })
        }),
    )
    .await
    .unwrap()
}

/// A whole layer in ingest/ (left by a pull of another repository) is not vouched for by a
/// mirror of `hosts.toml` that answers `200` to any `HEAD`: without a `Docker-Content-Digest`
/// naming the blob (missing or another digest) a host other than the resolving one confirms
/// nothing, so the file is not taken and the layer is downloaded (from that mirror, the
/// registry having lost it) and verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_all_mirror_answering_any_head_does_not_vouch_for_a_download_in_ingest() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["true"], &[("etc/motd", b"from the mirror\n")]);
    server.push("team/app", "v1", &img).await;
    let layer = Digest::sha256_of(&img.layers[1]);
    // the registry answers 404 for the layer: only the mirror is left to confirm it
    fs::remove_file(blob_file(&server, &layer)).unwrap();
    let len = img.layers[1].len().to_string();
    let other = Digest::sha256_of(b"another blob").to_string();
    let t = tempfile::tempdir().unwrap();
    let name = format!("{}/team/app:v1", server.host());
    for (case, head) in [
        vec![("content-length", len.clone())],
        vec![
            ("content-length", len.clone()),
            ("docker-content-digest", other),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let counts = Arc::new([
            std::sync::atomic::AtomicUsize::new(0),
            std::sync::atomic::AtomicUsize::new(0),
        ]);
        let mirror = catch_all_mirror(&img, head.clone(), layer.clone(), counts.clone()).await;
        let hosts = t.path().join(format!("hosts{case}"));
        let d = hosts.join(server.host());
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("server-ca.crt"), server.ca_pem()).unwrap();
        fs::write(
            d.join("hosts.toml"),
            format!(
                "server = \"https://{}\"\nca = \"server-ca.crt\"\n\n\
                 [host.\"{}\"]\n  capabilities = [\"pull\"]\n",
                server.host(),
                mirror.base_url()
            ),
        )
        .unwrap();
        let store = Store::open(&t.path().join(format!("store{case}"))).unwrap();
        let client = Client::https(&TlsConfig::system(), ClientConfig::default()).unwrap();
        let puller = Puller::new(client, store.clone(), Platform::host())
            .with_hosts(HostsDir::load(&hosts).unwrap());
        fs::write(store.ingest_path(&layer), &img.layers[1]).unwrap();
        let what = format!("HEAD answered 200 with {head:?}");
        let r = pull(&puller, &server, &name)
            .await
            .unwrap_or_else(|e| panic!("{what}: {}", kubepull_images::error_chain(&e)));
        assert!(
            counts[0].load(SeqCst) > 0,
            "{what}: the mirror was not asked"
        );
        assert_eq!(r.resumed, 0, "{what}: the layer was taken from ingest/");
        assert!(
            counts[1].load(SeqCst) > 0,
            "{what}: the layer was not downloaded"
        );
        let stored = fs::read(store.blob_path(&layer)).unwrap();
        assert_eq!(Digest::sha256_of(&stored), layer, "{what}");
    }
}
