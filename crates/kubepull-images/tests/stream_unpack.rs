//! Layers unpacked while they download, against the real registry (TLS, htpasswd) and the
//! real node store: a pull leaves every layer's overlay snapshot in place (the same trees the
//! store builds from stored blobs), a container start then builds nothing, a layer that does
//! not verify leaves neither a snapshot nor an image record, and a resumed blob is unpacked
//! from the finished file. Needs root and overlayfs (skipped with a message otherwise).

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kubepull_core::reference::Digest;
use kubepull_images::{parse_image, NoProgress, PullError, PullReport, Puller};
use kubepull_registry::{Client, ClientConfig, Platform, TlsConfig};
use kubepull_store::{Store, UnpackOptions};
use kubepull_testkit::fixture::{push, secret_credential, serve};
use kubepull_testkit::tree::describe;
use kubepull_testkit::{Image, Registry};

const USER: &str = "streamer";
const PASS: &str = "Stream-Pass-41";

fn overlay_supported(t: &Path) -> bool {
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        eprintln!("SKIPPED: overlay snapshots need root");
        return false;
    }
    let (a, b, m) = (t.join("probe-a"), t.join("probe-b"), t.join("probe-m"));
    for d in [&a, &b, &m] {
        fs::create_dir_all(d).unwrap();
    }
    let data = std::ffi::CString::new(format!("lowerdir={}:{}", a.display(), b.display())).unwrap();
    let r = rustix::mount::mount(
        "overlay",
        &m,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    );
    let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
    if let Err(e) = r {
        eprintln!("SKIPPED: overlayfs cannot be mounted here: {e}");
        return false;
    }
    true
}

#[derive(Clone, Copy)]
enum Comp {
    None,
    Gzip,
    Zstd,
}

fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match data {
            Some(d) => {
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, path, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn compress(tar: &[u8], c: Comp) -> (Vec<u8>, &'static str) {
    match c {
        Comp::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

/// An image of `tars` (compressed as given); `diff_ids` overrides the config's list.
fn image(tars: &[(Vec<u8>, Comp)], diff_ids: Option<Vec<String>>) -> Image {
    let layers: Vec<(Vec<u8>, &str)> = tars.iter().map(|(t, c)| compress(t, *c)).collect();
    let diff_ids = diff_ids.unwrap_or_else(|| {
        tars.iter()
            .map(|(t, _)| Digest::sha256_of(t).to_string())
            .collect()
    });
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": Digest::sha256_of(b).to_string(), "size": b.len()});
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|(b, mt)| desc(mt, b)).collect::<Vec<_>>(),
    }))
    .unwrap();
    Image {
        config,
        layers: layers.into_iter().map(|(b, _)| b).collect(),
        manifest,
    }
}

/// Three layers, one per compression, with a deletion (whiteout) and a replaced file; the
/// second layer is large enough to arrive in many chunks.
fn three_layers() -> Vec<(Vec<u8>, Comp)> {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        (
            tar_of(&[
                ("etc", None),
                ("etc/conf", Some(b"one\n")),
                ("etc/gone", Some(b"bye\n")),
            ]),
            Comp::Gzip,
        ),
        (
            tar_of(&[
                ("data", None),
                ("data/big.bin", Some(&big)),
                ("etc/.wh.gone", Some(b"")),
            ]),
            Comp::None,
        ),
        (
            tar_of(&[("etc/conf", Some(b"three\n")), ("top", Some(b"z"))]),
            Comp::Zstd,
        ),
    ]
}

fn client(reg: &Registry) -> Client {
    Client::https(
        &TlsConfig::private_ca(reg.ca_pem().as_bytes().to_vec()),
        ClientConfig::default(),
    )
    .unwrap()
}

/// A store at `root` and a puller into it through `client`, for this host's platform.
fn store_and_puller(root: &Path, client: Client) -> (Store, Puller) {
    let store = Store::open(root).unwrap();
    let puller = Puller::new(client, store.clone(), Platform::host());
    (store, puller)
}

/// Pulls `name` from `reg` with the user's credential.
async fn pull(puller: &Puller, reg: &Registry, name: &str) -> Result<PullReport, PullError> {
    puller
        .pull(
            &parse_image(name).unwrap(),
            &[secret_credential(&reg.host(), USER, PASS)],
            Arc::new(NoProgress),
        )
        .await
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn snapshot_names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("snapshots"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_pull_leaves_every_layer_snapshot_ready() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);

    let root = t.path().join("store");
    let (store, puller) = store_and_puller(&root, client(&reg));
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert!(r.rootfs_ready, "{:?}", r.unpack_skipped);
    assert_eq!(r.snapshots_built, 3);
    assert_eq!(r.fetched_blobs, 4);
    let rec = store.image(&name).unwrap().unwrap();
    assert!(
        rec.layers.iter().all(|l| l.diff_id.is_some()),
        "the record carries the diff IDs"
    );

    // a container start finds every snapshot: nothing to read, nothing built
    let chain = store
        .layer_snapshot_from(
            &name,
            &rec.layers,
            &UnpackOptions::default(),
            &mut |i, _| panic!("layer {i} unpacked again at container start"),
        )
        .unwrap();
    assert_eq!(chain.built, 0);
    assert_eq!(snapshot_names(&root).len(), 3, "no build leftovers");

    // the same trees as snapshots built from the stored blobs afterwards
    let other = Store::open(&t.path().join("other")).unwrap();
    for b in std::iter::once(&img.config).chain(&img.layers) {
        other.put_blob_bytes(&Digest::sha256_of(b), b).unwrap();
    }
    let want = other
        .layer_snapshot(&name, &rec.layers, &UnpackOptions::default())
        .unwrap();
    for (ours, theirs) in chain.dirs.iter().zip(&want) {
        assert_eq!(describe(ours), describe(theirs), "{}", ours.display());
    }
    let gone = fs::symlink_metadata(chain.dirs[1].join("etc/gone")).unwrap();
    assert!(
        gone.file_type().is_char_device_like() && gone.rdev() == 0,
        "the deletion is an overlay whiteout"
    );

    // a second pull of the image reuses the blobs and the snapshots
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert_eq!((r.fetched_blobs, r.snapshots_built), (0, 0));
    assert!(r.rootfs_ready);
}

trait CharDevice {
    fn is_char_device_like(&self) -> bool;
}
impl CharDevice for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_char_device(self)
    }
}

#[test]
fn a_layer_that_does_not_verify_leaves_no_snapshot_and_no_record() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let reg = Registry::start(&[(USER, PASS)]);
    let layers = three_layers();
    let mut ids: Vec<String> = layers
        .iter()
        .map(|(t, _)| Digest::sha256_of(t).to_string())
        .collect();
    // the config's diff ID of the middle layer names other content
    ids[1] = Digest::sha256_of(b"not this layer").to_string();
    let bad = image(&layers, Some(ids));
    // a layer whose blob verifies but is not a tar stream
    let not_tar = image(
        &[
            (layers[0].0.clone(), Comp::Gzip),
            (vec![0x5a; 4096], Comp::Gzip),
        ],
        None,
    );
    let rt = rt();
    push(&reg, "team/bad", "v1", &bad);
    push(&reg, "team/nottar", "v1", &not_tar);

    let root = t.path().join("store");
    let (store, puller) = store_and_puller(&root, client(&reg));
    let base_key = kubepull_store::chain_keys(&[kubepull_store::LayerRecord {
        digest: Digest::sha256_of(&bad.layers[0]).to_string(),
        media_type: String::new(),
        size: 0,
        diff_id: None,
        discarded: false,
    }])
    .remove(0);

    for (repo, want) in [
        ("team/bad", "rootfs.diff_ids"),
        ("team/nottar", "tar header"),
    ] {
        let name = format!("{}/{repo}:v1", reg.host());
        let e = rt.block_on(pull(&puller, &reg, &name)).unwrap_err();
        let msg = kubepull_images::error_chain(&e);
        assert!(matches!(e, PullError::Store(_)), "{msg}");
        assert!(msg.contains(want), "{msg}");
        assert!(store.image(&name).unwrap().is_none(), "no image record");
        // only the verified base layer's snapshot: nothing half-built, no temporary dirs
        assert_eq!(
            snapshot_names(&root),
            std::slice::from_ref(&base_key),
            "{repo}"
        );
    }
}

#[test]
fn a_resumed_blob_is_unpacked_from_the_finished_file() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let root = t.path().join("store");
    let (store, puller) = store_and_puller(&root, client(&reg));
    // half of the big layer is left from an interrupted pull
    let big = &img.layers[1];
    let d = Digest::sha256_of(big);
    fs::write(store.ingest_path(&d), &big[..big.len() / 2]).unwrap();
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert_eq!(r.resumed, (big.len() / 2) as u64);
    assert!(r.rootfs_ready && r.snapshots_built == 3, "{r:?}");
    let rec = store.image(&name).unwrap().unwrap();
    let dirs: Vec<PathBuf> = store
        .layer_snapshot(&name, &rec.layers, &UnpackOptions::default())
        .unwrap();
    assert_eq!(
        fs::metadata(dirs[1].join("data/big.bin")).unwrap().len(),
        3_000_000
    );
}

#[test]
fn without_unpack_a_pull_stores_blobs_only() {
    let t = tempfile::tempdir().unwrap();
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let root = t.path().join("store");
    let (store, puller) = store_and_puller(&root, client(&reg));
    let puller = puller.with_unpack(false);
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert!(!r.rootfs_ready);
    assert_eq!(r.unpack_skipped.as_deref(), Some("disabled"));
    assert!(snapshot_names(&root).is_empty());
    assert!(store.image(&name).unwrap().is_some());
}

/// The config is fetched beside the layers: a config whose diff IDs do not parse fails the
/// pull with the config's error (the layer downloads stop), leaving no record and no snapshot.
#[test]
fn a_config_that_does_not_parse_fails_the_pull_beside_the_layer_downloads() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let mut img = image(&three_layers(), None);
    img.config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": "sha256:not-a-list"},
    }))
    .unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    manifest["config"]["digest"] = Digest::sha256_of(&img.config).to_string().into();
    manifest["config"]["size"] = img.config.len().into();
    img.manifest = serde_json::to_vec(&manifest).unwrap();
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/badconfig", &img);
    let root = t.path().join("store");
    let (store, puller) = store_and_puller(&root, client(&reg));
    let e = rt.block_on(pull(&puller, &reg, &name)).unwrap_err();
    let msg = kubepull_images::error_chain(&e);
    assert!(matches!(e, PullError::Config { .. }), "{msg}");
    assert!(msg.contains("rootfs.diff_ids is not a list"), "{msg}");
    assert!(store.image(&name).unwrap().is_none(), "no image record");
    assert!(snapshot_names(&root).is_empty(), "no snapshot");
}

/// The real transport, except that the config's download never answers and one layer's is a
/// `404 BLOB_UNKNOWN` (a hostile registry the real one cannot play).
struct ConfigHangsLayerMissing {
    inner: kubepull_registry::HttpsTransport,
    config: String,
    missing: String,
}

impl kubepull_registry::Transport for ConfigHangsLayerMissing {
    fn send(
        &self,
        req: kubepull_registry::transport::Request,
    ) -> kubepull_registry::transport::BoxFuture<
        '_,
        Result<
            kubepull_registry::transport::Response,
            kubepull_registry::transport::TransportError,
        >,
    > {
        let path = req.url.path().to_string();
        if path.ends_with(&format!("/blobs/{}", self.config)) {
            return Box::pin(std::future::pending());
        }
        if path.ends_with(&format!("/blobs/{}", self.missing)) {
            let mut h = http::HeaderMap::new();
            h.insert("content-type", "application/json".parse().unwrap());
            return Box::pin(async move {
                Ok(kubepull_registry::transport::Response::from_bytes(
                    http::StatusCode::NOT_FOUND,
                    h,
                    r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                ))
            });
        }
        self.inner.send(req)
    }
}

/// A layer that fails ends the pull with its error at once, without waiting for the config's
/// download (which here never finishes); nothing is recorded.
#[test]
fn a_failed_layer_ends_the_pull_without_waiting_for_the_config() {
    let t = tempfile::tempdir().unwrap();
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/halfgone", &img);
    let missing = Digest::sha256_of(&img.layers[1]).to_string();
    let transport = ConfigHangsLayerMissing {
        inner: kubepull_registry::HttpsTransport::new(&TlsConfig::private_ca(
            reg.ca_pem().as_bytes().to_vec(),
        ))
        .unwrap(),
        config: Digest::sha256_of(&img.config).to_string(),
        missing: missing.clone(),
    };
    let client = Client::new(
        Arc::new(transport),
        Arc::new(kubepull_registry::SystemResolver),
        ClientConfig::default(),
    );
    let root = t.path().join("store");
    let (store, puller) = store_and_puller(&root, client);
    // a liveness guard, not a timing: before, this pull waited for the config forever
    let e = rt
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(120),
                pull(&puller, &reg, &name),
            )
            .await
        })
        .expect("the pull waited for the config's download")
        .unwrap_err();
    let msg = kubepull_images::error_chain(&e);
    assert!(msg.contains(&missing), "{msg}");
    assert!(store.image(&name).unwrap().is_none(), "no image record");
    assert!(snapshot_names(&root).is_empty(), "no snapshot");
}

/// A puller that does not keep the blobs of the layers it unpacks.
fn discarding(root: &Path, client: Client) -> (Store, Puller) {
    let (store, puller) = store_and_puller(root, client);
    (store, puller.with_discard_unpacked_layers(true))
}

/// Whether any bytes of blob `d` are on disk in the store (committed, or a download left).
fn blob_bytes_left(store: &Store, d: &Digest) -> bool {
    store.has_blob(d) || fs::metadata(store.ingest_path(d)).is_ok_and(|m| m.len() > 0)
}

/// `--discard-unpacked-layers`: the layers are verified and unpacked as in an ordinary pull,
/// their snapshots are the same, and their blobs are not kept (manifest and config are);
/// `gc` finds nothing wrong; what needs the blobs says how to get them, and a blobs-only pull
/// fetches them again. A pull whose snapshots are in place downloads no layer.
#[test]
fn discarding_unpacked_layers_keeps_the_snapshots_not_the_layer_blobs() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let layers = three_layers();
    let img = image(&layers, None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let root = t.path().join("store");
    let (store, puller) = discarding(&root, client(&reg));
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert!(r.rootfs_ready, "{:?}", r.unpack_skipped);
    assert_eq!((r.snapshots_built, r.layers_discarded), (3, 3));
    assert_eq!(r.fetched_blobs, 4);
    let digests: Vec<Digest> = img.layers.iter().map(|l| Digest::sha256_of(l)).collect();
    for d in &digests {
        assert!(!blob_bytes_left(&store, d), "layer {d} kept");
        assert!(!store.ingest_path(d).exists(), "layer {d} left in ingest/");
        assert_eq!(reg.wait_blob_gets(d, 1), 1);
    }
    assert!(store.has_blob(&Digest::sha256_of(&img.config)));
    assert!(store.has_blob(&img.digest()), "the manifest is kept");
    let rec = store.image(&name).unwrap().unwrap();
    assert!(rec.layers.iter().all(|l| l.discarded), "{rec:?}");

    // the same snapshots as an ordinary pull's
    let (normal, normal_puller) = store_and_puller(&t.path().join("normal"), client(&reg));
    rt.block_on(pull(&normal_puller, &reg, &name)).unwrap();
    // (which downloaded each layer a second time)
    for d in &digests {
        assert_eq!(reg.wait_blob_gets(d, 2), 2);
    }
    let ours = store
        .layer_snapshot_from(
            &name,
            &rec.layers,
            &UnpackOptions::default(),
            &mut |i, _| panic!("layer {i} unpacked again"),
        )
        .unwrap();
    let theirs = normal
        .layer_snapshot(&name, &rec.layers, &UnpackOptions::default())
        .unwrap();
    for (a, b) in ours.dirs.iter().zip(&theirs) {
        assert_eq!(describe(a), describe(b), "{}", a.display());
    }

    // gc: nothing missing, nothing to remove, the snapshots stay
    let g = store.gc().unwrap();
    assert_eq!(g, kubepull_store::GcReport::default());
    assert_eq!(snapshot_names(&root).len(), 3);
    assert_eq!(store.image(&name).unwrap().unwrap(), rec);

    // unpacked, it is copied from its snapshots: the tree its blobs unpack to
    let (ours, theirs) = (t.path().join("rootfs"), t.path().join("rootfs-normal"));
    let s = kubepull_store::unpack_image(&store, &rec, &ours, &UnpackOptions::default()).unwrap();
    assert!(s.from_snapshots && s.layers == 3, "{s:?}");
    assert!(s.total.files >= 3 && s.total.bytes >= 3_000_000, "{s:?}");
    let normal_rec = normal.image(&name).unwrap().unwrap();
    let s = kubepull_store::unpack_image(&normal, &normal_rec, &theirs, &UnpackOptions::default())
        .unwrap();
    assert!(!s.from_snapshots, "{s:?}");
    assert_eq!(describe(&ours), describe(&theirs));

    // the snapshots are in place: pulled again, or as part of another image with the same
    // lower layers, those layers are not downloaded at all
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert_eq!(
        (r.fetched_blobs, r.downloaded, r.snapshots_built),
        (0, 0, 0)
    );
    let mut more = layers.clone();
    more[2] = (tar_of(&[("other", Some(b"o"))]), Comp::Gzip);
    let img2 = image(&more, None);
    let name2 = push(&reg, "team/app", "v2", &img2);
    let r = rt.block_on(pull(&puller, &reg, &name2)).unwrap();
    assert!(r.rootfs_ready && r.snapshots_built == 1, "{r:?}");
    let top2 = Digest::sha256_of(&img2.layers[2]);
    assert_eq!(reg.wait_blob_gets(&top2, 1), 1);
    for d in &digests {
        assert_eq!(reg.settled_blob_gets(d), 2, "layer {d} downloaded again");
    }
    assert!(!blob_bytes_left(&store, &top2));

    // the same layers in another repository: its registry must serve them before their
    // snapshots are used (as a stored blob is not handed to a pull of another repository)
    let other = push(&reg, "other/app", "v1", &img);
    let r = rt.block_on(pull(&puller, &reg, &other)).unwrap();
    assert!(r.rootfs_ready && r.snapshots_built == 0, "{r:?}");
    for d in &digests {
        assert_eq!(
            reg.wait_blob_gets(d, 3),
            3,
            "layer {d} not fetched from other/app"
        );
        assert!(!blob_bytes_left(&store, d));
    }

    // a blobs-only pull does not take the record for the blobs: it fetches them again
    let blobs_only = puller.clone().with_unpack(false);
    let r = rt.block_on(pull(&blobs_only, &reg, &name)).unwrap();
    assert_eq!(r.layers_discarded, 0);
    for d in &digests {
        assert_eq!(reg.wait_blob_gets(d, 4), 4, "layer {d}");
        assert!(store.has_blob(d));
    }
    let rec = store.image(&name).unwrap().unwrap();
    assert!(rec.layers.iter().all(|l| !l.discarded));
    kubepull_store::unpack_image(
        &store,
        &rec,
        &t.path().join("rootfs2"),
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(store.gc().unwrap().blobs_removed, 0);
}

/// The real transport, except that one blob's `GET` answers these bytes instead.
struct ServesOtherBytes {
    inner: kubepull_registry::HttpsTransport,
    blob: String,
    bytes: Vec<u8>,
}

impl kubepull_registry::Transport for ServesOtherBytes {
    fn send(
        &self,
        req: kubepull_registry::transport::Request,
    ) -> kubepull_registry::transport::BoxFuture<
        '_,
        Result<
            kubepull_registry::transport::Response,
            kubepull_registry::transport::TransportError,
        >,
    > {
        if req.method == http::Method::GET
            && req.url.path().ends_with(&format!("/blobs/{}", self.blob))
        {
            let mut h = http::HeaderMap::new();
            h.insert("content-type", "application/octet-stream".parse().unwrap());
            let bytes = self.bytes.clone();
            return Box::pin(async move {
                Ok(kubepull_registry::transport::Response::from_bytes(
                    http::StatusCode::OK,
                    h,
                    bytes,
                ))
            });
        }
        self.inner.send(req)
    }
}

/// Without keeping layer blobs, a layer whose blob does not match its digest, or whose
/// content does not match the config's diff ID, leaves neither blob nor snapshot, and no
/// record; the verified layers below it keep their snapshots.
#[test]
fn a_bad_layer_not_kept_leaves_neither_blob_nor_snapshot() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let layers = three_layers();
    let img = image(&layers, None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let mut ids: Vec<String> = layers
        .iter()
        .map(|(t, _)| Digest::sha256_of(t).to_string())
        .collect();
    ids[1] = Digest::sha256_of(b"not this layer").to_string();
    let bad_diff = image(&layers, Some(ids));
    let bad_diff_name = push(&reg, "team/baddiff", "v1", &bad_diff);
    let middle = Digest::sha256_of(&img.layers[1]);
    let mut flipped = img.layers[1].clone();
    flipped[1000] ^= 0xff;
    let transport = ServesOtherBytes {
        inner: kubepull_registry::HttpsTransport::new(&TlsConfig::private_ca(
            reg.ca_pem().as_bytes().to_vec(),
        ))
        .unwrap(),
        blob: middle.to_string(),
        bytes: flipped,
    };
    let corrupting = Client::new(
        Arc::new(transport),
        Arc::new(kubepull_registry::SystemResolver),
        ClientConfig::default(),
    );
    let root = t.path().join("store");
    let (store, puller) = discarding(&root, corrupting);
    let e = rt.block_on(pull(&puller, &reg, &name)).unwrap_err();
    let msg = kubepull_images::error_chain(&e);
    assert!(msg.contains("digest"), "{msg}");
    assert!(store.image(&name).unwrap().is_none(), "no record");
    assert!(
        !blob_bytes_left(&store, &middle),
        "the bad layer's bytes are gone"
    );
    let rec_layers: Vec<kubepull_store::LayerRecord> = img
        .layers
        .iter()
        .map(|l| kubepull_store::LayerRecord {
            digest: Digest::sha256_of(l).to_string(),
            media_type: String::new(),
            size: 0,
            diff_id: None,
            discarded: true,
        })
        .collect();
    let keys = kubepull_store::chain_keys(&rec_layers);
    let snaps = snapshot_names(&root);
    assert!(
        !snaps.contains(&keys[1]) && !snaps.contains(&keys[2]),
        "no snapshot of the bad layer or above: {snaps:?}"
    );
    assert!(
        snaps.iter().all(|s| keys.contains(s)),
        "no build leftovers: {snaps:?}"
    );

    // a blob that verifies but whose content is not the config's diff ID
    let root = t.path().join("store2");
    let (store, puller) = discarding(&root, client(&reg));
    let name = bad_diff_name;
    let e = rt.block_on(pull(&puller, &reg, &name)).unwrap_err();
    let msg = kubepull_images::error_chain(&e);
    assert!(msg.contains("rootfs.diff_ids"), "{msg}");
    assert!(store.image(&name).unwrap().is_none(), "no record");
    assert!(
        !blob_bytes_left(&store, &middle),
        "the bad layer's bytes are gone"
    );
    assert_eq!(snapshot_names(&root), vec![keys[0].clone()]);
}

/// Without keeping layer blobs: concurrent pulls of images sharing the layers download each
/// layer once, and a download left by an interrupted pull is resumed, not fetched again.
#[test]
fn not_keeping_layer_blobs_still_shares_and_resumes_downloads() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let name2 = push(&reg, "team/app", "v2", &img);
    let root = t.path().join("store");
    let (store, puller) = discarding(&root, client(&reg));
    // another puller (as another process would be): no shared in-process state
    let other = Puller::new(client(&reg), store.clone(), Platform::host())
        .with_discard_unpacked_layers(true);
    let (a, b) =
        rt.block_on(async { tokio::join!(pull(&puller, &reg, &name), pull(&other, &reg, &name2)) });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.rootfs_ready && b.rootfs_ready, "{a:?} {b:?}");
    for l in &img.layers {
        let d = Digest::sha256_of(l);
        assert_eq!(reg.wait_blob_gets(&d, 1), 1, "{d}");
        assert!(!blob_bytes_left(&store, &d), "{d} kept");
    }
    assert_eq!(snapshot_names(&root).len(), 3);

    // half of the big layer left by an interrupted pull into a fresh store
    let root = t.path().join("resumed");
    let (store, puller) = discarding(&root, client(&reg));
    let big = &img.layers[1];
    let d = Digest::sha256_of(big);
    fs::write(store.ingest_path(&d), &big[..big.len() / 2]).unwrap();
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert_eq!(r.resumed, (big.len() / 2) as u64);
    assert!(r.rootfs_ready && r.layers_discarded == 3, "{r:?}");
    assert!(!blob_bytes_left(&store, &d));
    let rec = store.image(&name).unwrap().unwrap();
    let dirs = store
        .layer_snapshot(&name, &rec.layers, &UnpackOptions::default())
        .unwrap();
    assert_eq!(
        fs::metadata(dirs[1].join("data/big.bin")).unwrap().len(),
        3_000_000
    );
}

/// A whole layer left in ingest/ (by a pull of another repository that died after its
/// download verified, or that did not keep the blob) is not handed to a pull of a repository
/// whose registry does not serve it: the registry is asked, says no, and the pull fails
/// without the layer; with or without keeping layer blobs.
#[test]
fn a_finished_download_left_in_ingest_is_confirmed_by_the_pulling_repository() {
    let t = tempfile::tempdir().unwrap();
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, _) = serve(USER, PASS, "team/app", &img);
    // other/app names the same layers, but its registry no longer serves the base layer
    let other = push(&reg, "other/app", "v1", &img);
    let base = Digest::sha256_of(&img.layers[0]);
    let link = reg.storage().join(format!(
        "docker/registry/v2/repositories/other/app/_layers/sha256/{}/link",
        base.hex()
    ));
    fs::remove_file(&link).unwrap();
    let asked = |log: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("/v2/other/app/blobs/{base}")))
            .count()
    };
    for (i, discard) in [false, true].into_iter().enumerate() {
        let root = t.path().join(format!("store{i}"));
        let (store, puller) = store_and_puller(&root, client(&reg));
        let puller = puller.with_discard_unpacked_layers(discard);
        // what a pull of team/app leaves when it dies after the download verified
        fs::write(store.ingest_path(&base), &img.layers[0]).unwrap();
        store
            .add_blob_source(&base, &format!("{}/team/app", reg.host()))
            .unwrap();
        let before = asked(&reg.log());
        let e = rt.block_on(pull(&puller, &reg, &other)).unwrap_err();
        let msg = kubepull_images::error_chain(&e);
        assert!(msg.contains("not found"), "discard {discard}: {msg}");
        assert!(
            asked(&reg.wait_log(|l| asked(l) > before)) > before,
            "discard {discard}: other/app was not asked for {base}"
        );
        assert!(store.image(&other).unwrap().is_none(), "no record");
        assert!(!store.has_blob(&base), "the layer is not stored");
        assert!(
            !store
                .blob_sources(&base)
                .unwrap()
                .iter()
                .any(|r| r.ends_with("other/app")),
            "other/app is not noted as a source"
        );
    }
    // held by another pull: fetched into a file of this pull's own, which the failed fetch
    // does not leave behind (this process lives on, as the node agent does)
    let root = t.path().join("held");
    let (store, puller) = store_and_puller(&root, client(&reg));
    fs::write(store.ingest_path(&base), &img.layers[0]).unwrap();
    let hold = store.hold_partial(&base).unwrap();
    let e = rt.block_on(pull(&puller, &reg, &other)).unwrap_err();
    let msg = kubepull_images::error_chain(&e);
    assert!(msg.contains("not found"), "{msg}");
    let left: Vec<String> = fs::read_dir(root.join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(fs::read(store.ingest_path(&base)).unwrap(), img.layers[0]);
    assert!(store.discard_partial(hold).unwrap());
}

/// The real transport, except that every `HEAD` is answered `405 Method Not Allowed` (a
/// registry or a presigned redirect that does not allow the method).
struct HeadNotAllowed(kubepull_registry::HttpsTransport);

impl HeadNotAllowed {
    /// A client of `reg` over this transport.
    fn client(reg: &Registry) -> Client {
        let transport = HeadNotAllowed(
            kubepull_registry::HttpsTransport::new(&TlsConfig::private_ca(
                reg.ca_pem().as_bytes().to_vec(),
            ))
            .unwrap(),
        );
        Client::new(
            Arc::new(transport),
            Arc::new(kubepull_registry::SystemResolver),
            ClientConfig::default(),
        )
    }
}

impl kubepull_registry::Transport for HeadNotAllowed {
    fn send(
        &self,
        req: kubepull_registry::transport::Request,
    ) -> kubepull_registry::transport::BoxFuture<
        '_,
        Result<
            kubepull_registry::transport::Response,
            kubepull_registry::transport::TransportError,
        >,
    > {
        if req.method == http::Method::HEAD {
            return Box::pin(async move {
                Ok(kubepull_registry::transport::Response::from_bytes(
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    http::HeaderMap::new(),
                    "",
                ))
            });
        }
        self.0.send(req)
    }
}

/// A finished download in ingest/ the pulling repository does not confirm (its `HEAD` is not
/// allowed) is downloaded again, not a failed pull: left by a killed pull, it is emptied and
/// fetched; held by another pull (which unpacks from it), it is fetched into a file of this
/// pull's own and committed, and the held file is not written.
#[test]
fn a_download_left_in_ingest_that_the_registry_does_not_confirm_is_fetched_again() {
    let t = tempfile::tempdir().unwrap();
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let base = Digest::sha256_of(&img.layers[0]);
    for (i, held) in [false, true].into_iter().enumerate() {
        let (store, puller) = store_and_puller(
            &t.path().join(format!("store{i}")),
            HeadNotAllowed::client(&reg),
        );
        let partial = store.ingest_path(&base);
        fs::write(&partial, &img.layers[0]).unwrap();
        let hold = held.then(|| store.hold_partial(&base).unwrap());
        let before = fs::metadata(&partial).unwrap();
        let gets = reg.blob_gets(&base);
        rt.block_on(pull(&puller, &reg, &name))
            .unwrap_or_else(|e| panic!("held {held}: {}", kubepull_images::error_chain(&e)));
        assert_eq!(reg.wait_blob_gets(&base, gets + 1), gets + 1, "held {held}");
        assert_eq!(fs::read(store.blob_path(&base)).unwrap(), img.layers[0]);
        if let Some(hold) = hold {
            let after = fs::metadata(&partial).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                (after.ino(), after.mtime(), after.mtime_nsec()),
                (before.ino(), before.mtime(), before.mtime_nsec()),
                "the held file was written"
            );
            assert_eq!(fs::read(&partial).unwrap(), img.layers[0]);
            store.discard_partial(hold).unwrap();
        }
    }
}

/// The same, by a pull that does not keep layer blobs: the layer another pull holds and this
/// pull's repository does not confirm is fetched into a file of this pull's own, unpacked from
/// it, and not kept either: nothing of it in `blobs/`, no file of its own left in ingest/, the
/// record marks it discarded, the held file is neither written nor removed while held, and
/// once the other pull lets it go, it goes.
#[test]
fn a_held_download_not_confirmed_is_not_kept_by_a_pull_that_discards() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let base = Digest::sha256_of(&img.layers[0]);
    let root = t.path().join("store");
    let (store, puller) = discarding(&root, HeadNotAllowed::client(&reg));
    let partial = store.ingest_path(&base);
    fs::write(&partial, &img.layers[0]).unwrap();
    let hold = store.hold_partial(&base).unwrap();
    let before = fs::metadata(&partial).unwrap();
    let gets = reg.blob_gets(&base);
    let r = rt
        .block_on(pull(&puller, &reg, &name))
        .unwrap_or_else(|e| panic!("{}", kubepull_images::error_chain(&e)));
    assert!(r.rootfs_ready && r.layers_discarded == 3, "{r:?}");
    assert_eq!(reg.wait_blob_gets(&base, gets + 1), gets + 1);
    assert!(!store.has_blob(&base), "the layer was kept in blobs/");
    let rec = store.image(&name).unwrap().unwrap();
    assert!(rec.layers.iter().all(|l| l.discarded), "{rec:?}");
    // in ingest/ only the held file, untouched
    let left: Vec<String> = fs::read_dir(root.join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![format!("{}.partial", base.hex())]);
    let after = fs::metadata(&partial).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec()),
        "the held file was written"
    );
    // the snapshots are the ones the blobs make
    let (normal, normal_puller) = store_and_puller(&t.path().join("normal"), client(&reg));
    rt.block_on(pull(&normal_puller, &reg, &name)).unwrap();
    let (ours, theirs) = (t.path().join("ours"), t.path().join("theirs"));
    kubepull_store::unpack_image(&store, &rec, &ours, &UnpackOptions::default()).unwrap();
    let normal_rec = normal.image(&name).unwrap().unwrap();
    kubepull_store::unpack_image(&normal, &normal_rec, &theirs, &UnpackOptions::default()).unwrap();
    assert_eq!(describe(&ours), describe(&theirs));
    // the other pull lets its download go: no one else holds it, it is removed
    assert!(store.discard_partial(hold).unwrap());
    assert!(!partial.exists());
}

/// A download another pull holds (verified, unpacked from, not kept) is never written by a
/// pull whose descriptor gives that digest another size: that pull fails, the file stays.
#[test]
fn a_held_download_is_not_rewritten_by_a_descriptor_of_another_size() {
    let t = tempfile::tempdir().unwrap();
    let img = image(&three_layers(), None);
    let rt = rt();
    let (reg, _) = serve(USER, PASS, "team/app", &img);
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let size = img.layers[0].len() as u64;
    m["layers"][0]["size"] = serde_json::json!(size - 1);
    let bad = Image {
        manifest: serde_json::to_vec(&m).unwrap(),
        ..img.clone()
    };
    let bad_name = push(&reg, "team/app", "bad", &bad);
    let base = Digest::sha256_of(&img.layers[0]);
    let (store, puller) = store_and_puller(&t.path().join("store"), client(&reg));
    // another pull that does not keep the layer verified it and unpacks from it
    fs::write(store.ingest_path(&base), &img.layers[0]).unwrap();
    let held = store.hold_partial(&base).unwrap();
    let e = rt.block_on(pull(&puller, &reg, &bad_name)).unwrap_err();
    let msg = kubepull_images::error_chain(&e);
    assert!(msg.contains("size mismatch"), "{msg}");
    assert_eq!(fs::read(store.ingest_path(&base)).unwrap(), img.layers[0]);
    assert!(store.discard_partial(held).unwrap());
}

/// Without keeping layer blobs, a layer's download is removed once the layers are applied and
/// verified, before the snapshots are made durable and put in place: the `syncfs` that
/// commits them never writes it (watched from another thread: when the top snapshot appears,
/// no download is left in ingest/).
#[test]
fn downloads_not_kept_are_gone_before_the_snapshots_are_committed() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let layers = three_layers();
    let img = image(&layers, None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let root = t.path().join("store");
    let (store, puller) = discarding(&root, client(&reg));
    let digests: Vec<Digest> = img.layers.iter().map(|l| Digest::sha256_of(l)).collect();
    let rec_layers: Vec<kubepull_store::LayerRecord> = layers
        .iter()
        .zip(&digests)
        .map(|((tar, _), d)| kubepull_store::LayerRecord {
            digest: d.to_string(),
            media_type: String::new(),
            size: 0,
            diff_id: Some(Digest::sha256_of(tar).to_string()),
            discarded: true,
        })
        .collect();
    let top = store.snapshot_path(kubepull_store::chain_keys(&rec_layers).last().unwrap());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (store, digests, done) = (store.clone(), digests.clone(), done.clone());
        std::thread::spawn(move || -> Option<Vec<bool>> {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if top.is_dir() {
                    return Some(
                        digests
                            .iter()
                            .map(|d| store.ingest_path(d).exists())
                            .collect(),
                    );
                }
            }
            None
        })
    };
    let r = rt.block_on(pull(&puller, &reg, &name));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = r.unwrap();
    assert!(r.rootfs_ready && r.layers_discarded == 3, "{r:?}");
    let left = watcher
        .join()
        .unwrap()
        .expect("the top snapshot was committed");
    assert_eq!(
        left,
        vec![false; 3],
        "downloads left in ingest/ at the commit"
    );
}

/// A pull not keeping layer blobs that cannot make snapshots here (more layers than the
/// overlay stacks; likewise without root) knows it before it starts: it keeps the blobs as an
/// ordinary pull does, each downloaded once and committed, with no second look at the
/// registry (no `HEAD` to confirm a download it left in ingest/).
#[test]
fn a_pull_that_cannot_unpack_keeps_the_blobs_from_the_start() {
    let t = tempfile::tempdir().unwrap();
    let tars: Vec<(Vec<u8>, Comp)> = (0..=kubepull_store::MAX_SNAPSHOT_LAYERS)
        .map(|i| {
            let name = format!("f{i}");
            (tar_of(&[(name.as_str(), Some(b"x"))]), Comp::Gzip)
        })
        .collect();
    let img = image(&tars, None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/many", &img);
    let (store, puller) = discarding(&t.path().join("store"), client(&reg));
    let r = rt.block_on(pull(&puller, &reg, &name)).unwrap();
    assert!(!r.rootfs_ready && r.unpack_skipped.is_some(), "{r:?}");
    assert_eq!(r.layers_discarded, 0);
    assert_eq!(r.fetched_blobs, img.layers.len() + 1);
    let rec = store.image(&name).unwrap().unwrap();
    assert!(rec.layers.iter().all(|l| !l.discarded));
    for l in &img.layers {
        let d = Digest::sha256_of(l);
        assert!(store.has_blob(&d), "{d}");
        assert_eq!(reg.wait_blob_gets(&d, 1), 1, "{d}");
    }
    // a HEAD's log line lands as late as a GET's: the log once it has settled
    let log = reg.settled_log();
    let heads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"HEAD /v2/team/many/blobs/"))
        .collect();
    assert!(heads.is_empty(), "{heads:#?}");
}

/// An image whose layer blobs are not kept is copied out of its snapshots for a container
/// that cannot mount them: the same tree as unpacking the blobs gives (deletions, replaced
/// files, modes), with the layer chain of one or of several snapshots.
#[test]
fn a_discarded_image_is_copied_from_its_snapshots_as_its_blobs_unpack() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let layers = three_layers();
    let img = image(&layers, None);
    let rt = rt();
    let (reg, name) = serve(USER, PASS, "team/app", &img);
    let one = image(&layers[..1], None);
    let one_name = push(&reg, "team/one", "v1", &one);
    let (store, puller) = discarding(&t.path().join("store"), client(&reg));
    let (normal, normal_puller) = store_and_puller(&t.path().join("normal"), client(&reg));
    for (i, name) in [name, one_name].iter().enumerate() {
        rt.block_on(pull(&puller, &reg, name)).unwrap();
        rt.block_on(pull(&normal_puller, &reg, name)).unwrap();
        let rec = store.image(name).unwrap().unwrap();
        assert!(store.discarded_blobs_missing(&rec));
        // into a directory whose parents are not there yet, as unpacking the blobs allows
        let ours = t.path().join(format!("copied{i}/rootfs"));
        let s =
            kubepull_store::unpack_image(&store, &rec, &ours, &UnpackOptions::default()).unwrap();
        assert!(s.from_snapshots, "{s:?}");
        let theirs = t.path().join(format!("unpacked{i}"));
        let normal_rec = normal.image(name).unwrap().unwrap();
        kubepull_store::unpack_image(&normal, &normal_rec, &theirs, &UnpackOptions::default())
            .unwrap();
        assert_eq!(describe(&ours), describe(&theirs), "{name}");
        assert!(!describe(&ours).is_empty());
    }
    // no build directory left behind
    let root = t.path().join("store");
    let snaps = snapshot_names(&root);
    assert!(snaps.iter().all(|s| !s.starts_with("tmp-")), "{snaps:?}");

    // a layer with neither its blob nor its snapshot (removed by hand): the error names the
    // image, the layer and the pull that fetches the blobs again; nothing is copied
    let name = format!("{}/team/app:v1", reg.host());
    let rec = store.image(&name).unwrap().unwrap();
    let keys = kubepull_store::chain_keys(&rec.layers);
    fs::rename(
        root.join("snapshots").join(&keys[1]),
        t.path().join("aside"),
    )
    .unwrap();
    let dest = t.path().join("missing");
    let e =
        kubepull_store::unpack_image(&store, &rec, &dest, &UnpackOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&name)
            && msg.contains(&rec.layers[1].digest)
            && msg.contains("`kubepull pull --no-unpack` of the image fetches its layer blobs"),
        "{msg}"
    );
    assert!(!dest.exists());
}
