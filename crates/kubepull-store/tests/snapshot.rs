//! Overlay snapshots: the overlay mount of an image's layer snapshots shows the same tree as
//! `unpack_image`. Needs root and overlayfs; skipped with a message otherwise.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{describe, layers, Tar, H, TAR};
use kubepull_core::reference::Digest;
use kubepull_store::{
    overlay_lowerdir, unpack_image, Error, ImageRecord, LayerInput, SnapshotError, Store,
    UnpackOptions,
};

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn image(store: &Store, name: &str) -> ImageRecord {
    image_of(store, name, layers())
}

fn image_of(store: &Store, name: &str, layers: Vec<(Vec<u8>, &str)>) -> ImageRecord {
    let put = |b: &[u8]| {
        let d = Digest::sha256_of(b);
        store.put_blob_bytes(&d, b).unwrap();
        d
    };
    let cfg = put(format!("{{\"name\":{name:?}}}").as_bytes());
    ImageRecord::new(
        name.into(),
        cfg.clone(),
        cfg.clone(),
        cfg,
        layers
            .iter()
            .map(|(b, mt)| (put(b), mt.to_string(), b.len() as u64))
            .collect(),
        "linux/amd64".into(),
        0,
    )
}

fn overlay_supported(t: &Path) -> bool {
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        eprintln!("SKIPPED: overlay snapshots need root");
        return false;
    }
    let (l, l2, m) = (t.join("probe-l"), t.join("probe-l2"), t.join("probe-m"));
    for d in [&l, &l2, &m] {
        fs::create_dir_all(d).unwrap();
    }
    // a read-only overlay needs two lower directories (kernels refuse one without an upper)
    let data =
        std::ffi::CString::new(format!("lowerdir={}:{}", l.display(), l2.display())).unwrap();
    match rustix::mount::mount(
        "overlay",
        &m,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    ) {
        Ok(()) => {
            drop(Mount(m));
            true
        }
        Err(e) => {
            eprintln!("SKIPPED: overlayfs cannot be mounted here: {e}");
            false
        }
    }
}

#[test]
fn overlay_of_snapshots_equals_unpack_image() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let store = Store::open(&t.path().join("store")).unwrap();
    let rec = image(&store, "example.test/app:1");
    let opts = UnpackOptions::default();
    // several threads ask at once: each layer is built once, all get the same chain
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let (store, rec, opts) = (store.clone(), rec.clone(), opts.clone());
            std::thread::spawn(move || store.layer_snapshot(&rec.name, &rec.layers, &opts).unwrap())
        })
        .collect();
    let all: Vec<Vec<PathBuf>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let lowers = all[0].clone();
    assert!(all.iter().all(|l| *l == lowers));
    assert_eq!(lowers.len(), 3);
    assert_eq!(
        fs::read_dir(t.path().join("store/snapshots"))
            .unwrap()
            .count(),
        3,
        "one snapshot per layer, no leftovers"
    );

    // the snapshots hold overlay whiteouts, not .wh. files
    let wh = fs::symlink_metadata(lowers[1].join("gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    // the opaque directory hides what lies below: marked opaque, or (as kernels that apply the
    // removals one by one record it) each lower entry whited out
    let mut buf = [0u8; 4];
    let opaque = rustix::fs::lgetxattr(
        lowers[1].join("opq").as_path(),
        "trusted.overlay.opaque",
        &mut buf,
    )
    .is_ok_and(|n| &buf[..n] == b"y");
    let whited = ["old", "sub"].iter().all(|n| {
        fs::symlink_metadata(lowers[1].join("opq").join(n))
            .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
    });
    assert!(opaque || whited, "opq is neither opaque nor whited out");
    assert!(
        !lowers[1].join("bin").exists(),
        "a layer snapshot holds only its own changes"
    );

    let merged = t.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let data = std::ffi::CString::new(format!("lowerdir={}", overlay_lowerdir(&lowers))).unwrap();
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    )
    .unwrap();
    let m = Mount(merged.clone());
    let flat = t.path().join("flat");
    unpack_image(&store, &rec, &flat, &opts).unwrap();
    let (ours, want) = (describe(&merged), describe(&flat));
    drop(m);
    assert!(want.contains_key("opq/new") && !want.contains_key("opq/old"));
    for (k, v) in &want {
        assert_eq!(ours.get(k), Some(v), "{k}");
    }
    for k in ours.keys() {
        assert!(want.contains_key(k), "{k} only in the overlay");
    }

    // a second image sharing the base reuses its snapshot
    let ino = fs::metadata(&lowers[0]).unwrap().ino();
    let mut other = rec.clone();
    other.name = "example.test/other:1".into();
    other.layers.truncate(1);
    store.put_image(&rec).unwrap();
    store.put_image(&other).unwrap();
    let again = store
        .layer_snapshot(&other.name, &other.layers, &opts)
        .unwrap();
    assert_eq!(again, lowers[..1]);
    assert_eq!(fs::metadata(&again[0]).unwrap().ino(), ino);

    // gc keeps snapshots an image uses or a lease holds, and removes the rest
    assert_eq!(store.gc().unwrap().snapshots_removed, 0);
    store.remove_image(&rec.name).unwrap();
    let lease = store.snapshot_lease(&rec.layers).unwrap();
    assert_eq!(store.gc().unwrap().snapshots_removed, 0);
    assert!(lowers[2].exists());
    drop(lease);
    assert_eq!(store.gc().unwrap().snapshots_removed, 2);
    assert!(lowers[0].exists() && !lowers[1].exists() && !lowers[2].exists());
    let left: Vec<_> = fs::read_dir(t.path().join("store/snapshots"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1, "no build leftovers");
}

#[test]
fn rootless_snapshots_are_refused_with_the_fallback_named() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path()).unwrap();
    let rec = image(&store, "x");
    let opts = UnpackOptions {
        rootless: true,
        ..UnpackOptions::default()
    };
    let e = store
        .layer_snapshot(&rec.name, &rec.layers, &opts)
        .unwrap_err();
    assert!(
        matches!(e, Error::Snapshot(SnapshotError::Unsupported(_))),
        "{e}"
    );
    assert!(e.to_string().contains("unpack_image"), "{e}");
    assert!(
        !t.path().join("snapshots").exists()
            || fs::read_dir(t.path().join("snapshots"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// The uncompressed stream's digest (the config's `rootfs.diff_ids` entry).
fn diff_id(blob: &[u8]) -> Digest {
    let mut out = Vec::new();
    if blob.starts_with(&[0x1f, 0x8b]) {
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(blob), &mut out).unwrap();
    } else {
        out = blob.to_vec();
    }
    Digest::sha256_of(&out)
}

fn image_with_diff_ids(store: &Store, name: &str) -> ImageRecord {
    let ids: Vec<Digest> = layers().iter().map(|(b, _)| diff_id(b)).collect();
    image(store, name).with_diff_ids(&ids).unwrap()
}

/// The blobs of the test layers, as a pull would stream them.
fn streamed(i: usize, verified: kubepull_store::Result<()>) -> LayerInput {
    let blob = layers()[i].0.clone();
    LayerInput::Stream {
        reader: Box::new(std::io::Cursor::new(blob)),
        verified: Box::new(move || verified),
    }
}

fn snapshot_dirs(store_root: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(store_root.join("snapshots")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

#[test]
fn streamed_layers_give_the_snapshots_of_stored_ones() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let opts = UnpackOptions::default();
    let a = Store::open(&t.path().join("a")).unwrap();
    let rec = image_with_diff_ids(&a, "example.test/app:1");
    let mut asked = vec![];
    let chain = a
        .layer_snapshot_from(&rec.name, &rec.layers, &opts, &mut |i, _| {
            asked.push(i);
            Ok(streamed(i, Ok(())))
        })
        .unwrap();
    assert_eq!(
        asked,
        [0, 1, 2],
        "each missing layer asked for once, base first"
    );
    assert_eq!(chain.built, 3);
    // a second call finds every snapshot: no input asked, nothing built
    let again = a
        .layer_snapshot_from(&rec.name, &rec.layers, &opts, &mut |i, _| {
            panic!("layer {i} asked for again")
        })
        .unwrap();
    assert_eq!((again.built, &again.dirs), (0, &chain.dirs));
    assert_eq!(
        a.layer_snapshot(&rec.name, &rec.layers, &opts).unwrap(),
        chain.dirs
    );

    let b = Store::open(&t.path().join("b")).unwrap();
    let rec_b = image_with_diff_ids(&b, "example.test/app:1");
    let stored = b.layer_snapshot(&rec_b.name, &rec_b.layers, &opts).unwrap();
    for (s, w) in chain.dirs.iter().zip(&stored) {
        assert_eq!(describe(s), describe(w), "{}", s.display());
    }
}

#[test]
fn a_layer_that_does_not_verify_leaves_no_snapshot() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let opts = UnpackOptions::default();
    let root = t.path().join("s");
    let store = Store::open(&root).unwrap();
    let rec = image_with_diff_ids(&store, "example.test/app:1");

    // the download of layer 1 fails its digest check after the layer was unpacked
    let e = store
        .layer_snapshot_from(&rec.name, &rec.layers, &opts, &mut |i, _| {
            Ok(streamed(
                i,
                if i == 1 {
                    Err(Error::DigestMismatch {
                        expected: "sha256:aa".into(),
                        actual: "sha256:bb".into(),
                    })
                } else {
                    Ok(())
                },
            ))
        })
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    let keys = kubepull_store::chain_keys(&rec.layers);
    assert_eq!(
        snapshot_dirs(&root),
        [keys[0].clone()],
        "only the verified base snapshot, no half-built one"
    );

    // a wrong diff ID in the record: refused, streamed or read from the store
    let mut bad = rec.clone();
    bad.layers[1].diff_id = Some(Digest::sha256_of(b"something else").to_string());
    let e = store
        .layer_snapshot_from(&bad.name, &bad.layers, &opts, &mut |i, _| {
            Ok(streamed(i, Ok(())))
        })
        .unwrap_err();
    match &e {
        Error::DiffIdMismatch {
            layer,
            expected,
            actual,
        } => {
            assert_eq!(layer, &rec.layers[1].digest);
            assert_eq!(Some(expected), bad.layers[1].diff_id.as_ref());
            assert_eq!(Some(actual), rec.layers[1].diff_id.as_ref());
        }
        e => panic!("{e}"),
    }
    assert!(e.to_string().contains("rootfs.diff_ids"), "{e}");
    let e = store
        .layer_snapshot(&bad.name, &bad.layers, &opts)
        .unwrap_err();
    assert!(matches!(e, Error::DiffIdMismatch { .. }), "{e}");
    assert_eq!(snapshot_dirs(&root), [keys[0].clone()]);

    // a record whose config lists the wrong number of diff IDs is refused
    let e = image(&store, "x").with_diff_ids(&[]).unwrap_err();
    assert!(e.to_string().contains("0 rootfs.diff_ids for 3"), "{e}");

    // the right record builds the rest on the kept base
    let chain = store
        .layer_snapshot_from(&rec.name, &rec.layers, &opts, &mut |i, _| {
            assert_ne!(i, 0, "the base snapshot is there");
            Ok(streamed(i, Ok(())))
        })
        .unwrap();
    assert_eq!(chain.built, 2);
    assert_eq!(snapshot_dirs(&root).len(), 3);
}

/// An image whose layer blobs were discarded unpacks from its snapshots as its blobs unpack
/// (`unpack_image` of an image that keeps them): into an existing directory that keeps its own
/// mode, and, rootless, with no owner, extended attribute, device node or fifo applied.
#[test]
fn a_discarded_image_unpacks_from_its_snapshots_as_its_blobs_do() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let mut ls = layers();
    let mut null = H::new("dev/null", b'3');
    (null.devmajor, null.devminor) = (1, 3);
    let mut owned = H::new("dev/owned", b'0');
    (owned.uid, owned.gid, owned.size) = (1234, 1235, 1);
    ls.push((
        Tar::default()
            .dir("dev", 0o755)
            .entry(null, b"", &[])
            .entry(H::new("dev/fifo", b'6'), b"", &[])
            .entry(owned, b"o", &[("user.kept", b"yes")])
            .finish(),
        TAR,
    ));
    let discarding = Store::open(&t.path().join("discarding")).unwrap();
    let keeping = Store::open(&t.path().join("keeping")).unwrap();
    let name = "example.test/app:1";
    let mut rec = image_of(&discarding, name, ls.clone());
    let kept = image_of(&keeping, name, ls);
    discarding
        .layer_snapshot(&rec.name, &rec.layers, &UnpackOptions::default())
        .unwrap();
    for l in &mut rec.layers {
        l.discarded = true;
        fs::remove_file(discarding.blob_path(&Digest::parse(&l.digest).unwrap())).unwrap();
    }
    let user_kept = |p: &Path| {
        let mut buf = [0u8; 8];
        rustix::fs::lgetxattr(p, "user.kept", &mut buf).map(|n| buf[..n].to_vec())
    };
    for rootless in [false, true] {
        let opts = UnpackOptions {
            rootless,
            ..Default::default()
        };
        let (ours, theirs) = (
            t.path().join(format!("ours-{rootless}")),
            t.path().join(format!("theirs-{rootless}")),
        );
        for d in [&ours, &theirs] {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        }
        let s = unpack_image(&discarding, &rec, &ours, &opts).unwrap();
        assert!(s.from_snapshots, "{s:?}");
        let b = unpack_image(&keeping, &kept, &theirs, &opts).unwrap();
        assert!(!b.from_snapshots, "{b:?}");
        let what = format!("rootless {rootless}");
        for d in [&ours, &theirs] {
            let mode = fs::metadata(d).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o700, "{what}: {} changed mode", d.display());
        }
        assert_eq!(describe(&ours), describe(&theirs), "{what}");
        assert_eq!(
            (s.total.devices, s.total.skipped_devices),
            (b.total.devices, b.total.skipped_devices),
            "{what}"
        );
        let owned = fs::metadata(ours.join("dev/owned")).unwrap();
        if rootless {
            assert!(!ours.join("dev/null").exists() && !ours.join("dev/fifo").exists());
            assert_eq!((owned.uid(), owned.gid()), (0, 0), "{what}");
            assert!(user_kept(&ours.join("dev/owned")).is_err(), "{what}");
            assert_eq!(s.total.skipped_devices, 2, "{what}");
        } else {
            let null = fs::symlink_metadata(ours.join("dev/null")).unwrap();
            assert!(null.file_type().is_char_device() && null.rdev() == rustix::fs::makedev(1, 3));
            assert!(fs::symlink_metadata(ours.join("dev/fifo"))
                .unwrap()
                .file_type()
                .is_fifo());
            assert_eq!((owned.uid(), owned.gid()), (1234, 1235), "{what}");
            assert_eq!(
                user_kept(&ours.join("dev/owned")).unwrap(),
                b"yes",
                "{what}"
            );
        }
    }
}
