//! The same OCI image unpacked by umoci (the reference unpacker, Debian `umoci`) and by
//! `unpack_image` from the store must give the same tree: types, modes, sizes, content, link
//! targets, owners, hard-link counts and file times.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::{describe, layers, Tar, TAR, TAR_GZ};
use kubepull_core::reference::Digest;
use kubepull_store::{unpack_image, ImageRecord, Store, UnpackOptions};

fn diff_id(blob: &[u8], media_type: &str) -> Digest {
    if media_type == TAR_GZ {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(blob), &mut out).unwrap();
        Digest::sha256_of(&out)
    } else {
        Digest::sha256_of(blob)
    }
}

/// Writes an OCI image layout with the image tagged `t`; returns (config, manifest) blobs.
fn write_layout(dir: &Path, layers: &[(Vec<u8>, &str)]) -> (Vec<u8>, Vec<u8>) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |b: &[u8]| {
        let d = Digest::sha256_of(b);
        fs::write(dir.join("blobs/sha256").join(d.hex()), b).unwrap();
        d
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|(b, mt)| diff_id(b, mt).to_string()).collect::<Vec<_>>(),
        },
    }))
    .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": layers.iter().map(|(b, mt)| serde_json::json!({
            "mediaType": mt, "digest": put(b).to_string(), "size": b.len(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let md = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md.to_string(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "t"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (config, manifest)
}

#[test]
fn same_tree_as_umoci() {
    if Command::new("umoci").arg("--version").output().is_err() {
        eprintln!("SKIPPED: umoci is not installed (Debian package `umoci`)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layers = layers();
    let (config, manifest) = write_layout(&t.path().join("layout"), &layers);

    let root = fs::metadata("/proc/self").unwrap().uid() == 0;
    let bundle = t.path().join("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !root {
        cmd.arg("--rootless");
    }
    let out = cmd
        .arg("--image")
        .arg(format!("{}:t", t.path().join("layout").display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store = Store::open(&t.path().join("store")).unwrap();
    let put = |b: &[u8]| {
        let d = Digest::sha256_of(b);
        store.put_blob_bytes(&d, b).unwrap();
        d
    };
    let md = put(&manifest);
    let rec = ImageRecord::new(
        "example.test/umoci:t".into(),
        md.clone(),
        md,
        put(&config),
        layers
            .iter()
            .map(|(b, mt)| (put(b), mt.to_string(), b.len() as u64))
            .collect(),
        "linux/amd64".into(),
        0,
    );
    let mine = t.path().join("mine");
    let opts = UnpackOptions {
        rootless: !root,
        ..UnpackOptions::default()
    };
    let stats = unpack_image(&store, &rec, &mine, &opts).unwrap();
    assert_eq!(stats.layers, 3);

    let theirs = describe(&bundle.join("rootfs"));
    let ours = describe(&mine);
    assert!(theirs.contains_key("opq/new") && theirs.contains_key("home/user/owned"));
    for (k, v) in &theirs {
        assert_eq!(ours.get(k), Some(v), "{k}: umoci has {v:?}");
    }
    for k in ours.keys() {
        assert!(theirs.contains_key(k), "{k} is only in ours");
    }
    // the comparison is not vacuous: the whiteouts and the opaque dir took effect
    for gone in ["gone", "gonedir", "opq/old", "opq/sub", "bin/rel"] {
        assert!(!ours.contains_key(gone), "{gone}");
    }
    assert_eq!(ours["bin/suid"].mode, 0o4755);
    assert_eq!(ours["bin/suid"].nlink, 2);
    assert_eq!(ours["old"].mtime, Some(1_234_567_890));
}

#[test]
fn unpack_image_detects_a_corrupt_layer_blob() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path()).unwrap();
    let layer = Tar::default().file("f", b"content", 0o644).finish();
    let d = Digest::sha256_of(&layer);
    store.put_blob_bytes(&d, &layer).unwrap();
    let rec = ImageRecord::new(
        "x".into(),
        d.clone(),
        d.clone(),
        d.clone(),
        vec![(d.clone(), TAR.into(), layer.len() as u64)],
        "linux/amd64".into(),
        0,
    );
    unpack_image(
        &store,
        &rec,
        &t.path().join("ok"),
        &UnpackOptions::default(),
    )
    .unwrap();
    let mut bad = layer.clone();
    bad.extend_from_slice(&[0u8; 512]); // extra padding: the tar still reads, the digest differs
    fs::write(store.blob_path(&d), &bad).unwrap();
    let e = unpack_image(
        &store,
        &rec,
        &t.path().join("bad"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, kubepull_store::Error::DigestMismatch { .. }),
        "{e}"
    );
    fs::remove_file(store.blob_path(&d)).unwrap();
    let e = unpack_image(
        &store,
        &rec,
        &t.path().join("gone"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, kubepull_store::Error::BlobNotFound(_)), "{e}");
}
