//! Layers applied in parallel give the snapshots applying them one after another gives: the
//! cases where a layer depends on the layers below it (a path through a symlink of a lower
//! layer, a parent directory only a lower layer has, a hard link to a lower file, an opaque
//! directory over lower content, whiteouts and replacements). Each image is built twice: one
//! layer at a time onto the overlay of the layers below (`parallel_layers: 1`), and with the
//! base layer held back until the top layer was applied into its own snapshot. Needs root and
//! overlayfs; skipped with a message otherwise.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{describe, Node, Tar, H, TAR};
use kubepull_core::reference::Digest;
use kubepull_store::{
    overlay_lowerdir, unpack_image, ImageRecord, LayerInput, SnapshotChain, Store, UnpackOptions,
};

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
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

fn image(store: &Store, tars: &[Vec<u8>]) -> ImageRecord {
    let put = |b: &[u8]| {
        let d = Digest::sha256_of(b);
        store.put_blob_bytes(&d, b).unwrap();
        d
    };
    let cfg = put(b"{}");
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::sha256_of(t)).collect();
    ImageRecord::new(
        "example.test/app:1".into(),
        cfg.clone(),
        cfg.clone(),
        cfg,
        tars.iter()
            .map(|b| (put(b), TAR.to_string(), b.len() as u64))
            .collect(),
        "linux/amd64".into(),
        0,
    )
    .with_diff_ids(&diff_ids)
    .unwrap()
}

/// Opened once every layer above the base ended its first apply.
#[derive(Default)]
struct Gate {
    left: Mutex<usize>,
    cv: Condvar,
}

struct Held {
    data: std::io::Cursor<Vec<u8>>,
    gate: Arc<Gate>,
}

impl Read for Held {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut left = self.gate.left.lock().unwrap();
        // bounded, so that a machine that cannot apply two layers at once still finishes
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while *left > 0 && std::time::Instant::now() < deadline {
            left = self
                .gate
                .cv
                .wait_timeout(left, Duration::from_millis(100))
                .unwrap()
                .0;
        }
        drop(left);
        self.data.read(buf)
    }
}

/// The snapshots and the overlay of all of them, described.
fn trees(chain: &[PathBuf], t: &Path, name: &str) -> Vec<BTreeMap<String, Node>> {
    let mut out: Vec<_> = chain.iter().map(|d| describe(d)).collect();
    let merged = t.join(name);
    fs::create_dir(&merged).unwrap();
    let data = std::ffi::CString::new(format!("lowerdir={}", overlay_lowerdir(chain))).unwrap();
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    )
    .unwrap();
    let m = Mount(merged.clone());
    out.push(describe(&merged));
    drop(m);
    out
}

fn opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut buf).is_ok_and(|n| &buf[..n] == b"y")
}

/// Builds `tars` (the base first) both ways; returns the parallel build's chain, after
/// checking that its snapshots, their overlay and the opaque markers equal the one-by-one
/// build's, and that the overlay shows what `unpack_image` makes.
fn both_ways(t: &Path, tars: &[Vec<u8>]) -> Option<(SnapshotChain, PathBuf)> {
    if !overlay_supported(t) {
        return None;
    }
    let one = Store::open(&t.join("one")).unwrap();
    let rec = image(&one, tars);
    let seq = one
        .layer_snapshot(
            &rec.name,
            &rec.layers,
            &UnpackOptions {
                parallel_layers: 1,
                ..UnpackOptions::default()
            },
        )
        .unwrap();

    let par = Store::open(&t.join("par")).unwrap();
    let rec = image(&par, tars);
    let gate = Arc::new(Gate {
        left: Mutex::new(tars.len() - 1),
        cv: Condvar::new(),
    });
    let chain = par
        .layer_snapshot_from(
            &rec.name,
            &rec.layers,
            &UnpackOptions {
                parallel_layers: tars.len(),
                ..UnpackOptions::default()
            },
            &mut |i, _| {
                let gate = gate.clone();
                let data = std::io::Cursor::new(tars[i].clone());
                if i == 0 {
                    return Ok(LayerInput::Stream {
                        reader: Box::new(Held { data, gate }),
                        verified: Box::new(|| Ok(())),
                    });
                }
                Ok(LayerInput::Stream {
                    reader: Box::new(data),
                    verified: Box::new(move || {
                        *gate.left.lock().unwrap() -= 1;
                        gate.cv.notify_all();
                        Ok(())
                    }),
                })
            },
        )
        .unwrap();
    assert_eq!(chain.built, tars.len());

    let (want, got) = (trees(&seq, t, "m-seq"), trees(&chain.dirs, t, "m-par"));
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        for (k, v) in w {
            assert_eq!(g.get(k), Some(v), "snapshot {i}: {k}");
        }
        for k in g.keys() {
            assert!(
                w.contains_key(k),
                "snapshot {i}: {k} only in the parallel build"
            );
        }
    }
    for (a, b) in seq.iter().zip(&chain.dirs) {
        for (k, n) in describe(a) {
            if n.kind == 'd' {
                assert_eq!(opaque(&a.join(&k)), opaque(&b.join(&k)), "opaque {k}");
            }
        }
    }
    let flat = t.join("flat");
    unpack_image(&one, &rec, &flat, &UnpackOptions::default()).unwrap();
    let flat = describe(&flat);
    let merged = got.last().unwrap();
    for (k, v) in &flat {
        assert_eq!(merged.get(k), Some(v), "{k}");
    }
    for k in merged.keys() {
        assert!(flat.contains_key(k), "{k} only in the overlay");
    }
    Some((chain, t.join("m-par")))
}

fn dir_owned(name: &str, mode: u32, uid: u64) -> H {
    let mut h = H::new(name, b'5');
    h.mode = mode;
    h.uid = uid;
    h.gid = uid;
    h
}

#[test]
fn a_path_through_a_lower_symlink_is_applied_again_onto_the_overlay() {
    let t = tempfile::tempdir().unwrap();
    let l0 = Tar::default()
        .dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .symlink("lib", "usr/lib")
        .finish();
    let l1 = Tar::default().file("lib/libx.so", b"x", 0o644).finish();
    let Some((chain, _)) = both_ways(t.path(), &[l0, l1]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (0, 1));
    assert!(chain.dirs[1].join("usr/lib/libx.so").is_file());
    assert!(!chain.dirs[1].join("lib").exists());
}

#[test]
fn a_parent_only_in_a_lower_layer_keeps_its_owner_and_mode() {
    let t = tempfile::tempdir().unwrap();
    let l0 = Tar::default()
        .entry(dir_owned("opt", 0o750, 1000), b"", &[])
        .entry(dir_owned("opt/app", 0o711, 1001), b"", &[])
        .file("opt/app/old", b"old", 0o644)
        .finish();
    let l1 = Tar::default()
        .file("opt/app/new/file", b"new", 0o600)
        .file("opt/app/other", b"other", 0o644)
        .finish();
    let Some((chain, _)) = both_ways(t.path(), &[l0, l1]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (1, 0));
    let m = fs::metadata(chain.dirs[1].join("opt/app")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o711, 1001));
    let m = fs::metadata(chain.dirs[1].join("opt")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o750, 1000));
    // copied up untouched (only a directory below it changed): the base's times
    let (a, b) = (
        fs::metadata(chain.dirs[0].join("opt")).unwrap(),
        fs::metadata(chain.dirs[1].join("opt")).unwrap(),
    );
    assert_eq!(a.mtime(), b.mtime());
}

#[test]
fn a_hard_link_to_a_lower_file_is_applied_again_onto_the_overlay() {
    let t = tempfile::tempdir().unwrap();
    let l0 = Tar::default()
        .dir("bin", 0o755)
        .file("bin/tool", b"tool", 0o755)
        .finish();
    let l1 = Tar::default()
        .dir("bin", 0o755)
        .hardlink("bin/tool2", "bin/tool")
        .finish();
    let Some((chain, merged)) = both_ways(t.path(), &[l0, l1]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (0, 1));
    let _ = merged;
    let m = fs::metadata(chain.dirs[1].join("bin/tool2")).unwrap();
    assert_eq!(m.nlink(), 2);
}

#[test]
fn an_opaque_dir_over_lower_content_is_applied_again_onto_the_overlay() {
    let t = tempfile::tempdir().unwrap();
    let l0 = Tar::default()
        .dir("d", 0o755)
        .file("d/x", b"x", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/y", b"y", 0o644)
        .finish();
    let l1 = Tar::default()
        .dir("d", 0o755)
        .dir("d/sub", 0o700)
        .whiteout("d/.wh..wh..opq")
        .file("d/new", b"new", 0o644)
        .finish();
    let Some((chain, _)) = both_ways(t.path(), &[l0, l1]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (0, 1));
}

/// The order image builders write (the directory, its `.wh..wh..opq`, then its entries): the
/// layer is applied apart (marked as containerd's overlay applier marks it) and settled, no
/// second apply, and the snapshots are those of the one-by-one apply (whiteouts for the names
/// below, directories made over them opaque, the marked directory itself not marked).
#[test]
fn an_opaque_marker_before_its_directory_s_entries_is_settled_without_a_second_apply() {
    let t = tempfile::tempdir().unwrap();
    let l0 = Tar::default()
        .dir("d", 0o755)
        .file("d/x", b"x", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/y", b"y", 0o644)
        .dir("d/keep", 0o755)
        .file("d/keep/k", b"k", 0o644)
        .symlink("d/link", "x")
        .file("e", b"e", 0o644)
        .finish();
    let l1 = Tar::default()
        .dir("d", 0o750)
        .whiteout("d/.wh..wh..opq")
        .file("d/new", b"new", 0o644)
        .dir("d/sub", 0o700)
        .file("d/sub/z", b"z", 0o644)
        .file("d/x", b"x2", 0o644)
        .file("d/implicit/f", b"f", 0o644)
        .dir("e", 0o755)
        .whiteout("e/.wh..wh..opq")
        .file("e/in", b"in", 0o644)
        .dir("fresh", 0o755)
        .whiteout("fresh/.wh..wh..opq")
        .file("fresh/a", b"a", 0o644)
        .finish();
    let Some((chain, _)) = both_ways(t.path(), &[l0, l1]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (1, 0));
    let top = &chain.dirs[1];
    let whiteout = |p: &str| {
        use std::os::unix::fs::FileTypeExt;
        fs::symlink_metadata(top.join(p))
            .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
    };
    assert!(whiteout("d/keep") && whiteout("d/link"));
    assert!(!whiteout("d/x") && !whiteout("d/new"));
    assert!(!opaque(&top.join("d")) && opaque(&top.join("d/sub")));
    assert!(!opaque(&top.join("d/implicit")));
    assert!(opaque(&top.join("e")) && !opaque(&top.join("fresh")));
}

/// The same over two layers below (settled against their overlay), and a marker after an
/// entry of its directory, which is still applied again onto the overlay.
#[test]
fn an_opaque_marker_over_two_layers_below_is_settled_against_their_overlay() {
    let t = tempfile::tempdir().unwrap();
    let l0 = Tar::default()
        .dir("d", 0o755)
        .file("d/a", b"a", 0o644)
        .finish();
    let l1 = Tar::default()
        .dir("d", 0o755)
        .whiteout("d/.wh.a")
        .file("d/b", b"b", 0o644)
        .dir("d/c", 0o755)
        .finish();
    let l2 = Tar::default()
        .dir("d", 0o755)
        .whiteout("d/.wh..wh..opq")
        .dir("d/c", 0o711)
        .finish();
    let Some((chain, _)) = both_ways(t.path(), &[l0.clone(), l1.clone(), l2]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (2, 0));
    let top = &chain.dirs[2];
    assert!(opaque(&top.join("d/c")) && !opaque(&top.join("d")));
    // a/ was already whited out below: nothing for it here
    assert!(!top.join("d/a").exists());
    let t = tempfile::tempdir().unwrap();
    let late = Tar::default()
        .dir("d", 0o755)
        .file("d/first", b"1", 0o644)
        .whiteout("d/.wh..wh..opq")
        .finish();
    let Some((chain, _)) = both_ways(t.path(), &[l0, l1, late]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (1, 1));
}

#[test]
fn whiteouts_and_replacements_applied_apart_match_the_overlay() {
    let t = tempfile::tempdir().unwrap();
    let l0 = Tar::default()
        .file("f", b"f", 0o644)
        .dir("g", 0o755)
        .file("g/h", b"h", 0o644)
        .file("k", b"k", 0o644)
        .dir("keep", 0o755)
        .file("keep/a", b"a", 0o644)
        .symlink("link", "keep")
        .finish();
    let l1 = Tar::default()
        .whiteout(".wh.f")
        .file("g", b"now a file", 0o644)
        .dir("k", 0o700)
        .file("k/inside", b"i", 0o644)
        .whiteout(".wh.not-there")
        .dir("m", 0o755)
        .file("m/n", b"n", 0o644)
        .dir("m/n", 0o755)
        .dir("keep", 0o755)
        .whiteout("keep/.wh.a")
        .file("keep/b", b"b", 0o644)
        .dir("link", 0o755)
        .dir("w", 0o755)
        .whiteout("w/.wh.none")
        .finish();
    let l2 = Tar::default()
        .dir("g", 0o755)
        .file("g/again", b"again", 0o644)
        .whiteout(".wh.k")
        .dir("k", 0o755)
        .finish();
    let Some((chain, _)) = both_ways(t.path(), &[l0, l1, l2]) else {
        return;
    };
    assert_eq!((chain.applied_apart, chain.applied_again), (2, 0));
    // a directory over a lower file is opaque; one over a name nothing below has is not
    assert!(opaque(&chain.dirs[1].join("k")) && !opaque(&chain.dirs[1].join("m/n")));
    assert!(!chain.dirs[1].join("not-there").exists());
    // a whiteout of nothing leaves its directory as the layer dated it
    assert!(!chain.dirs[1].join("w/none").exists());
    assert_eq!(
        fs::metadata(chain.dirs[1].join("w")).unwrap().mtime(),
        1_600_000_000
    );
}

#[test]
fn a_failed_layer_discards_the_layers_above_it_applied_apart_and_keeps_the_ones_below() {
    let t = tempfile::tempdir().unwrap();
    if !overlay_supported(t.path()) {
        return;
    }
    let tars = [
        Tar::default().file("a", b"a", 0o644).finish(),
        Tar::default().file("b", b"b", 0o644).finish(),
        Tar::default().file("c", b"c", 0o644).finish(),
    ];
    let root = t.path().join("s");
    let store = Store::open(&root).unwrap();
    let rec = image(&store, &tars);
    // layer 0 is held until layer 1 has failed its verification, so layer 1 (and layer 2, if it
    // started before the failure cancelled it) is applied apart, not on a finished layer 0
    let gate = Arc::new(Gate {
        left: Mutex::new(1),
        cv: Condvar::new(),
    });
    let e = store
        .layer_snapshot_from(
            &rec.name,
            &rec.layers,
            &UnpackOptions {
                parallel_layers: 3,
                ..UnpackOptions::default()
            },
            &mut |i, _| {
                let gate = gate.clone();
                let data = std::io::Cursor::new(tars[i].clone());
                if i == 0 {
                    return Ok(LayerInput::Stream {
                        reader: Box::new(Held { data, gate }),
                        verified: Box::new(|| Ok(())),
                    });
                }
                Ok(LayerInput::Stream {
                    reader: Box::new(data),
                    verified: Box::new(move || {
                        if i == 1 {
                            *gate.left.lock().unwrap() -= 1;
                            gate.cv.notify_all();
                            return Err(kubepull_store::Error::DigestMismatch {
                                expected: "sha256:aa".into(),
                                actual: "sha256:bb".into(),
                            });
                        }
                        Ok(())
                    }),
                })
            },
        )
        .unwrap_err();
    assert!(
        matches!(e, kubepull_store::Error::DigestMismatch { .. }),
        "{e}"
    );
    let keys = kubepull_store::chain_keys(&rec.layers);
    let mut left: Vec<String> = fs::read_dir(root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [keys[0].clone()], "the base only, no build leftovers");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "a mount left behind"
    );
}
