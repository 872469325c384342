//! KEP-2535 pull records over the real registry (TLS, htpasswd) and the real node store: an
//! image another tenant cached is never handed out on the strength of blobs alone, and a pull
//! whose record cannot be written fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kubepull_core::keyring::PullSecret;
use kubepull_core::pullpolicy::PullPolicy;
use kubepull_core::reference::Digest;
use kubepull_images::Puller;
use kubepull_node::images::{
    ImageManager, ImageOutcome, ImageRequest, StepEvent, SystemClock, VerifyPolicy,
};
use kubepull_node::service::StoreImageService;
use kubepull_registry::{Client, ClientConfig, Platform, TlsConfig};
use kubepull_store::Store;
use kubepull_testkit::{busybox_image, Image, Registry};

const USER: &str = "tenant-a";
const PASS: &str = "Records-Pass-77";

/// The user's pull secret `regcred` for `server`.
fn secret(server: &str) -> PullSecret {
    secret_for("regcred", server, USER, PASS)
}

/// A `kubernetes.io/dockerconfigjson` pull secret `name` with `user`'s credential for `server`.
fn secret_for(name: &str, server: &str, user: &str, pass: &str) -> PullSecret {
    let json = format!(r#"{{"auths":{{"{server}":{{"username":"{user}","password":"{pass}"}}}}}}"#);
    PullSecret {
        name: name.into(),
        secret_type: "kubernetes.io/dockerconfigjson".into(),
        data: BTreeMap::from([(".dockerconfigjson".into(), json.into_bytes())]),
    }
}

struct Node {
    store: Store,
    images: ImageManager,
    _dir: tempfile::TempDir,
}

fn node(reg: &Registry) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("images")).unwrap();
    let client = Client::https(
        &TlsConfig::private_ca(reg.ca_pem().as_bytes().to_vec()),
        ClientConfig::default(),
    )
    .unwrap();
    let puller = Puller::new(client, store.clone(), Platform::host());
    let images = ImageManager::new(
        Arc::new(StoreImageService::new(puller)),
        Arc::new(SystemClock::default()),
        VerifyPolicy::default(),
    );
    Node {
        store,
        images,
        _dir: dir,
    }
}

/// A registry serving a busybox image as `team/app:v1` to the user; the image, its name and a
/// node pulling from the registry.
async fn private_app() -> (Registry, Image, String, Node) {
    let reg = Registry::start(&[(USER, PASS)]);
    let img = busybox_image(&["sleep", "1"], &[]);
    reg.push("team/app", "v1", &img).await;
    let image = format!("{}/team/app:v1", reg.host());
    let n = node(&reg);
    (reg, img, image, n)
}

async fn step(
    n: &Node,
    ns: &str,
    uid: &str,
    image: &str,
    policy: PullPolicy,
    secrets: &[PullSecret],
) -> (ImageOutcome, Vec<StepEvent>) {
    let mut ev = vec![];
    let o = n
        .images
        .ensure_image(
            &ImageRequest {
                pod_uid: uid,
                namespace: ns,
                image,
                policy: Some(policy),
                pull_secrets: secrets,
                node_config: None,
            },
            &mut ev,
        )
        .await;
    (o, ev)
}

/// Tenant A's pod `uid` asking for `image` (`IfNotPresent`) with its pull secret for `reg`.
async fn tenant_a_step(
    n: &Node,
    reg: &Registry,
    uid: &str,
    image: &str,
) -> (ImageOutcome, Vec<StepEvent>) {
    let a = [secret(&reg.host())];
    step(n, "tenant-a", uid, image, PullPolicy::IfNotPresent, &a).await
}

/// Asserts that a [`step`] ended `Ready`.
fn assert_ready((o, ev): (ImageOutcome, Vec<StepEvent>)) {
    assert!(matches!(o, ImageOutcome::Ready { .. }), "{o:?} {ev:?}");
}

fn waiting(o: &ImageOutcome) -> (String, String) {
    match o {
        ImageOutcome::Waiting {
            reason, message, ..
        } => (reason.clone(), message.clone()),
        other => panic!("expected Waiting, got {other:?}"),
    }
}

fn records_file(store: &Store, manifest: &Digest) -> PathBuf {
    store
        .root()
        .join("pulls")
        .join(format!("{}.json", manifest.hex()))
}

/// Tenant A pulls a private image with its secret. When the image has no pull record (lost,
/// corrupt), tenant B's pod without credentials is not started from the cached blobs: its pull is
/// sent to the registry, which refuses it; with `Never` it is told the image is absent.
#[tokio::test]
async fn cached_private_image_without_record_is_verified() {
    let (reg, img, image, n) = private_app().await;

    assert_ready(tenant_a_step(&n, &reg, "pod-a", &image).await);
    let manifest = img.digest();
    let recs = n.store.pull_records(&manifest).unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].source, "secret/tenant-a/regcred");
    // the manifest requests (GET and HEAD) so far, once A's lines are all in the log
    let manifest_requests = |log: &str| {
        log.matches("GET /v2/team/app/manifests").count()
            + log.matches("HEAD /v2/team/app/manifests").count()
    };
    let gets_before = manifest_requests(&reg.settled_log());

    for damage in ["lost", "corrupt"] {
        match damage {
            "lost" => std::fs::remove_file(records_file(&n.store, &manifest)).unwrap(),
            _ => std::fs::write(records_file(&n.store, &manifest), b"{not json").unwrap(),
        }
        // the image (config and layers) is still in the store
        assert!(n.store.image(&image).unwrap().is_some());
        let (o, ev) = step(
            &n,
            "tenant-b",
            "pod-b",
            &image,
            PullPolicy::IfNotPresent,
            &[],
        )
        .await;
        let (reason, msg) = waiting(&o);
        assert_eq!(reason, "ErrImagePull", "{damage}: {msg}");
        assert!(
            ev.iter().any(|e| e.reason == "Pulling"),
            "{damage}: the registry must be asked: {ev:?}"
        );
        let (o, _) = step(&n, "tenant-b", "pod-b2", &image, PullPolicy::Never, &[]).await;
        assert_eq!(waiting(&o).0, "ErrImageNeverPull", "{damage}");
        n.images.reset_backoff(None);
    }
    // B's attempts reached the registry (manifest requests refused)
    let log = reg.wait_log(|l| manifest_requests(l) > gets_before);
    assert!(manifest_requests(&log) > gets_before, "{log}");
    // tenant A again, with its secret: verified, a fresh record replaces the corrupt one
    assert_ready(tenant_a_step(&n, &reg, "pod-a2", &image).await);
    assert_eq!(n.store.pull_records(&manifest).unwrap().len(), 1);
    // and now B with the same credential under another name matches by hash
    let mut other = secret(&reg.host());
    other.name = "copied".into();
    assert_ready(
        step(
            &n,
            "tenant-b",
            "pod-b3",
            &image,
            PullPolicy::Never,
            &[other],
        )
        .await,
    );
}

/// Unmounts on drop.
struct BindMount(PathBuf);

impl BindMount {
    fn read_only(dir: &Path) -> BindMount {
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("mount").arg("--bind").arg(dir).arg(dir));
        let m = BindMount(dir.to_path_buf());
        ok(Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir));
        m
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The records directory is read-only: the pull itself succeeds but its record cannot be written,
/// so the step fails (`ErrImagePull`, back-off) and no container gets the image. Once the
/// directory is writable again the retry records and succeeds.
#[tokio::test]
async fn failed_record_write_fails_the_pull() {
    if !rustix_is_root() {
        panic!("this test needs root (a read-only bind mount)");
    }
    let (reg, img, image, n) = private_app().await;

    let ro = BindMount::read_only(&n.store.root().join("pulls"));
    let (o, ev) = tenant_a_step(&n, &reg, "pod-a", &image).await;
    let (reason, msg) = waiting(&o);
    assert_eq!(reason, "ErrImagePull");
    assert!(msg.contains("failed to record the pull"), "{msg}");
    assert!(!ev.iter().any(|e| e.reason == "Pulled"), "{ev:?}");
    assert!(!msg.contains(PASS));
    assert!(n.store.pull_records(&img.digest()).unwrap().is_empty());
    // another tenant does not get the stored image either
    let (o, _) = step(&n, "tenant-b", "pod-b", &image, PullPolicy::Never, &[]).await;
    assert_eq!(waiting(&o).0, "ErrImageNeverPull");
    // back-off, then writable again
    let (o, _) = tenant_a_step(&n, &reg, "pod-a", &image).await;
    assert_eq!(waiting(&o).0, "ImagePullBackOff");
    drop(ro);
    n.images.reset_backoff(None);
    assert_ready(tenant_a_step(&n, &reg, "pod-a", &image).await);
    assert_eq!(n.store.pull_records(&img.digest()).unwrap().len(), 1);
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Blobs another repository's pull stored are not reused for a manifest in a repository the
/// registry does not serve them from: they are fetched again from this repository, so a
/// manifest that merely names a cached private layer gets nothing.
#[tokio::test]
async fn stored_blobs_of_another_repository_are_not_reused() {
    let reg = Registry::start(&[(USER, PASS), ("tenant-b", "B-pass-31")]);
    let img = busybox_image(&["sleep", "1"], &[("/secret.txt", b"tenant a only")]);
    reg.push("team/app", "v1", &img).await;
    reg.push("other/app", "v1", &img).await;
    reg.push("third/app", "v1", &img).await;
    // the registry no longer serves the layers in other/app (its manifest still names them)
    for layer in &img.layers {
        let d = Digest::sha256_of(layer);
        let link = reg
            .storage()
            .join("docker/registry/v2/repositories/other/app/_layers/sha256")
            .join(d.hex());
        std::fs::remove_dir_all(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    }
    let n = node(&reg);
    let image = format!("{}/team/app:v1", reg.host());
    assert_ready(tenant_a_step(&n, &reg, "pod-a", &image).await);

    let b = [secret_for("b", &reg.host(), "tenant-b", "B-pass-31")];
    let other = format!("{}/other/app:v1", reg.host());
    let (o, ev) = step(
        &n,
        "tenant-b",
        "pod-b",
        &other,
        PullPolicy::IfNotPresent,
        &b,
    )
    .await;
    let (reason, msg) = waiting(&o);
    assert_eq!(reason, "ErrImagePull", "{msg} {ev:?}");
    assert!(n.store.image(&other).unwrap().is_none());

    // an intact repository with the same content: fetched again from it, then usable
    let layer = Digest::sha256_of(img.layers.last().unwrap());
    let gets = reg.settled_blob_gets(&layer);
    let third = format!("{}/third/app:v1", reg.host());
    assert_ready(
        step(
            &n,
            "tenant-b",
            "pod-b2",
            &third,
            PullPolicy::IfNotPresent,
            &b,
        )
        .await,
    );
    assert_eq!(
        reg.wait_blob_gets(&layer, gets + 1),
        gets + 1,
        "{}",
        reg.log()
    );
    // and the same repository again reuses what it fetched
    assert_ready(step(&n, "tenant-b", "pod-b3", &third, PullPolicy::Always, &b).await);
    assert_eq!(reg.settled_blob_gets(&layer), gets + 1);
}
