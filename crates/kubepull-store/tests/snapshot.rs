//! Overlay snapshots: the overlay mount of an image's layer snapshots shows the same tree as
//! `unpack_image`. Needs root and overlayfs; skipped with a message otherwise.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{describe, layers};
use kubepull_core::reference::Digest;
use kubepull_store::{
    overlay_lowerdir, unpack_image, Error, ImageRecord, SnapshotError, Store, UnpackOptions,
};

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn image(store: &Store, name: &str) -> ImageRecord {
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
        layers()
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
    let (l, m) = (t.join("probe-l"), t.join("probe-m"));
    fs::create_dir_all(&l).unwrap();
    fs::create_dir_all(&m).unwrap();
    let data = std::ffi::CString::new(format!("lowerdir={}", l.display())).unwrap();
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
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(
        lowers[1].join("opq").as_path(),
        "trusted.overlay.opaque",
        &mut buf,
    )
    .unwrap();
    assert_eq!(&buf[..n], b"y");
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
