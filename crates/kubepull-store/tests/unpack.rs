//! Layer unpacking: formats, OCI whiteouts, metadata, and hostile layers. Every hostile case
//! checks that nothing was written outside the destination and that the error names the
//! problem.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{gzip, zstd, Tar, DOCKER_GZ, H, TAR, TAR_GZ, TAR_ZST};
use kubepull_store::{unpack_layer, Error, UnpackError, UnpackOptions};

struct Bed {
    _t: tempfile::TempDir,
    /// A directory beside the root that no layer may touch.
    outside: PathBuf,
    /// The root filesystem, two levels below the temp dir so `../..` lands in `outside`'s
    /// parent.
    root: PathBuf,
}

impl Bed {
    fn new() -> Bed {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"keep").unwrap();
        let root = t.path().join("a/b/rootfs");
        fs::create_dir_all(&root).unwrap();
        Bed {
            _t: t,
            outside,
            root,
        }
    }

    fn top(&self) -> &Path {
        self.outside.parent().unwrap()
    }

    fn apply(
        &self,
        tar: &[u8],
        media_type: &str,
    ) -> kubepull_store::Result<kubepull_store::LayerStats> {
        unpack_layer(tar, media_type, &self.root, &UnpackOptions::default())
    }

    /// Everything outside the root is as the bed made it.
    fn assert_outside_untouched(&self) {
        let mut all = Vec::new();
        walk(self.top(), self.top(), &mut all);
        let all: Vec<String> = all
            .into_iter()
            .filter(|p| !p.starts_with("a/b/rootfs/"))
            .collect();
        assert_eq!(
            all,
            vec!["a", "a/b", "a/b/rootfs", "outside", "outside/secret"]
        );
        assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"keep");
        assert_eq!(
            fs::metadata(self.outside.join("secret")).unwrap().nlink(),
            1
        );
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut es: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    es.sort_by_key(|e| e.file_name());
    for e in es {
        let p = e.path();
        out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            walk(base, &p, out);
        }
    }
}

fn tree(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v
}

fn unsafe_reason(r: kubepull_store::Result<kubepull_store::LayerStats>) -> String {
    match r {
        Err(Error::Unpack {
            source: UnpackError::UnsafeEntry { reason, .. },
            ..
        }) => reason,
        other => panic!("expected an unsafe entry error, got {other:?}"),
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) == 0
}

#[test]
fn plain_gzip_zstd_and_docker_layers() {
    let tar = Tar::default()
        .dir("etc", 0o755)
        .file("etc/hostname", b"node\n", 0o644)
        .file("bin/tool", b"#!/bin/sh\n", 0o755)
        .symlink("bin/sh", "/bin/busybox")
        .finish();
    for (bytes, mt) in [
        (tar.clone(), TAR),
        (gzip(&tar), TAR_GZ),
        (zstd(&tar), TAR_ZST),
        (gzip(&tar), DOCKER_GZ),
        // registries that lie: the magic bytes decide
        (gzip(&tar), TAR),
        (zstd(&tar), TAR_GZ),
        (tar.clone(), TAR_GZ),
    ] {
        let bed = Bed::new();
        let s = bed.apply(&bytes, mt).unwrap();
        assert_eq!((s.files, s.dirs, s.symlinks), (2, 1, 1), "{mt}");
        assert_eq!(s.bytes, 15);
        assert_eq!(fs::read(bed.root.join("etc/hostname")).unwrap(), b"node\n");
        assert_eq!(
            fs::metadata(bed.root.join("bin/tool"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o755
        );
        assert_eq!(
            fs::read_link(bed.root.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        // an implicit parent directory is created 0755
        assert_eq!(
            fs::metadata(bed.root.join("bin"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::metadata(bed.root.join("etc/hostname")).unwrap().mtime(),
            1_600_000_000
        );
    }
}

#[test]
fn unknown_media_type_is_a_clear_error() {
    let bed = Bed::new();
    let e = bed
        .apply(
            &Tar::default().finish(),
            "application/vnd.oci.image.config.v1+json",
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unpack { source: UnpackError::UnknownMediaType(m), .. } if m.contains("config")),
        "{e}"
    );
    assert!(e.to_string().contains("unknown layer media type"), "{e}");
}

#[test]
fn multi_frame_zstd() {
    let a = Tar::default().file("one", b"1", 0o644).buf.clone();
    let b = Tar::default().file("two", b"2", 0o644).finish();
    let mut z = common::zstd_raw_frame(&a);
    z.extend(common::zstd_raw_frame(&b));
    let bed = Bed::new();
    bed.apply(&z, TAR_ZST).unwrap();
    assert_eq!(tree(&bed.root), vec!["one", "two"]);
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let bed = Bed::new();
    let lower = Tar::default()
        .dir("etc", 0o755)
        .file("etc/keep", b"k", 0o644)
        .file("etc/gone", b"g", 0o644)
        .dir("etc/sub", 0o755)
        .file("etc/sub/deep", b"d", 0o644)
        .dir("opq", 0o755)
        .file("opq/old", b"o", 0o644)
        .dir("opq/inner", 0o755)
        .file("opq/inner/old2", b"o", 0o644)
        .dir("opq/inner/nested", 0o755)
        .file("opq/inner/nested/old3", b"o", 0o644)
        .finish();
    bed.apply(&lower, TAR).unwrap();
    let upper = Tar::default()
        .whiteout("etc/.wh.gone")
        .whiteout("etc/.wh.sub")
        .whiteout("etc/.wh.never-existed")
        .dir("opq", 0o755)
        .whiteout("opq/.wh..wh..opq")
        .file("opq/new", b"n", 0o644)
        .dir("opq/inner", 0o755)
        .whiteout("opq/inner/.wh..wh..opq")
        .dir("opq/inner/nested", 0o755)
        .whiteout("opq/inner/nested/.wh..wh..opq")
        .file("opq/inner/nested/new3", b"n", 0o644)
        // aufs metadata is never unpacked
        .file(".wh..wh.plnk/123.456", b"", 0o644)
        .finish();
    let s = bed.apply(&upper, TAR).unwrap();
    assert_eq!(s.whiteouts, 3);
    assert_eq!(s.opaque_dirs, 3);
    assert_eq!(
        tree(&bed.root),
        vec![
            "etc",
            "etc/keep",
            "opq",
            "opq/inner",
            "opq/inner/nested",
            "opq/inner/nested/new3",
            "opq/new"
        ]
    );
    bed.assert_outside_untouched();
}

#[test]
fn opaque_keeps_entries_of_the_same_layer_that_came_first() {
    let bed = Bed::new();
    bed.apply(&Tar::default().file("d/old", b"o", 0o644).finish(), TAR)
        .unwrap();
    // the marker after the new entry (some tools sort it last)
    let upper = Tar::default()
        .file("d/new", b"n", 0o644)
        .whiteout("d/.wh..wh..opq")
        .finish();
    bed.apply(&upper, TAR).unwrap();
    assert_eq!(tree(&bed.root), vec!["d", "d/new"]);
}

#[test]
fn replacement_file_dir_symlink() {
    let bed = Bed::new();
    let lower = Tar::default()
        .dir("x", 0o755)
        .file("x/inside", b"i", 0o644)
        .file("y", b"file", 0o644)
        .symlink("z", "/outside")
        .finish();
    bed.apply(&lower, TAR).unwrap();
    let upper = Tar::default()
        .file("x", b"now a file", 0o600)
        .dir("y", 0o700)
        .file("z", b"not through the link", 0o644)
        .finish();
    bed.apply(&upper, TAR).unwrap();
    assert_eq!(fs::read(bed.root.join("x")).unwrap(), b"now a file");
    assert!(fs::symlink_metadata(bed.root.join("y")).unwrap().is_dir());
    assert_eq!(
        fs::metadata(bed.root.join("y"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert!(fs::symlink_metadata(bed.root.join("z")).unwrap().is_file());
    // a directory onto a directory merges
    let merge = Tar::default()
        .dir("y", 0o751)
        .file("y/a", b"a", 0o644)
        .finish();
    bed.apply(&merge, TAR).unwrap();
    bed.apply(&Tar::default().dir("y", 0o755).finish(), TAR)
        .unwrap();
    assert_eq!(tree(&bed.root), vec!["x", "y", "y/a", "z"]);
    assert_eq!(
        fs::metadata(bed.root.join("y"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    bed.assert_outside_untouched();
}

#[test]
fn hard_links_modes_long_names_and_times() {
    let bed = Bed::new();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(200));
    let mut sticky = H::new("tmp", b'5');
    sticky.mode = 0o1777;
    let mut setuid = H::new("bin/su", b'0');
    setuid.mode = 0o4755;
    setuid.uid = 0;
    let mut dated = H::new("dated", b'5');
    dated.mtime = 1_000_000;
    let tar = Tar::default()
        .entry(sticky, b"", &[])
        .entry(setuid, b"su", &[])
        .hardlink("bin/su-link", "bin/su")
        .hardlink("/bin/abs-link", "/bin/su")
        .file(&long, b"long", 0o644)
        .symlink("longlink", &long)
        .entry(dated, b"", &[])
        .file("dated/child", b"c", 0o644)
        .finish();
    let s = bed.apply(&tar, TAR).unwrap();
    assert_eq!(s.hardlinks, 2);
    let m = |p: &str| fs::symlink_metadata(bed.root.join(p)).unwrap();
    assert_eq!(m("tmp").permissions().mode() & 0o7777, 0o1777);
    assert_eq!(m("bin/su").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(m("bin/su").ino(), m("bin/su-link").ino());
    assert_eq!(m("bin/su").nlink(), 3);
    assert_eq!(fs::read(bed.root.join(&long)).unwrap(), b"long");
    assert_eq!(
        fs::read_link(bed.root.join("longlink")).unwrap(),
        Path::new(&long)
    );
    // directory times are set after their content is written
    assert_eq!(m("dated").mtime(), 1_000_000);
}

#[test]
fn ownership_devices_and_xattrs_when_root() {
    let bed = Bed::new();
    let mut owned = H::new("owned", b'0');
    owned.uid = 1234;
    owned.gid = 5678;
    owned.mode = 0o2755;
    let mut null = H::new("dev/null", b'3');
    null.devmajor = 1;
    null.devminor = 3;
    null.mode = 0o666;
    let mut fifo = H::new("run/fifo", b'6');
    fifo.mode = 0o600;
    let tar = Tar::default()
        .entry(
            owned,
            b"o",
            &[("user.kubepull", b"v1"), ("trusted.kubepull", b"v2")],
        )
        .entry(null, b"", &[])
        .entry(fifo, b"", &[])
        .finish();
    let s = bed.apply(&tar, TAR).unwrap();
    use std::os::unix::fs::FileTypeExt;
    if is_root() {
        assert_eq!(s.devices, 2);
        let m = fs::symlink_metadata(bed.root.join("owned")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        // chown before chmod: the setgid bit survives
        assert_eq!(m.permissions().mode() & 0o7777, 0o2755);
        let n = fs::symlink_metadata(bed.root.join("dev/null")).unwrap();
        assert!(n.file_type().is_char_device());
        assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
        assert!(fs::symlink_metadata(bed.root.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let mut buf = [0u8; 16];
        let n = rustix::fs::getxattr(
            bed.root.join("owned").as_path(),
            "trusted.kubepull",
            &mut buf,
        )
        .unwrap();
        assert_eq!(&buf[..n], b"v2");
    } else {
        assert_eq!(s.skipped_devices, 2);
    }
    // rootless: devices and fifos are skipped and counted, ownership is the caller's
    let bed = Bed::new();
    let opts = UnpackOptions {
        rootless: true,
        ..UnpackOptions::default()
    };
    let s = unpack_layer(tar.as_slice(), TAR, &bed.root, &opts).unwrap();
    assert_eq!((s.devices, s.skipped_devices), (0, 2));
    assert_eq!(tree(&bed.root), vec!["dev", "owned", "run"]);
    assert_eq!(
        fs::metadata(bed.root.join("owned")).unwrap().uid(),
        fs::metadata("/proc/self").unwrap().uid()
    );
}

// ---- hostile layers ----

#[test]
fn hostile_dotdot_name() {
    let bed = Bed::new();
    let tar = Tar::default().file("../../etc/x", b"pwned", 0o644).finish();
    let r = unsafe_reason(bed.apply(&tar, TAR));
    assert!(r.contains(".."), "{r}");
    let tar = Tar::default()
        .file("ok/../../../x", b"pwned", 0o644)
        .finish();
    unsafe_reason(bed.apply(&tar, TAR));
    bed.assert_outside_untouched();
}

#[test]
fn hostile_absolute_name_lands_inside() {
    let bed = Bed::new();
    let abs = format!("{}/x", bed.outside.display());
    let tar = Tar::default()
        .file(&abs, b"inside", 0o644)
        .file("/abs/path", b"p", 0o644)
        .finish();
    bed.apply(&tar, TAR).unwrap();
    assert_eq!(
        fs::read(bed.root.join(abs.trim_start_matches('/'))).unwrap(),
        b"inside"
    );
    assert_eq!(fs::read(bed.root.join("abs/path")).unwrap(), b"p");
    bed.assert_outside_untouched();
}

#[test]
fn hostile_symlink_to_root_then_write_through() {
    let bed = Bed::new();
    let marker = format!("kubepull-unpack-test-{}", std::process::id());
    let outside_abs = bed.outside.display().to_string();
    let tar = Tar::default()
        .symlink("a", "/")
        .file(&format!("a/{marker}"), b"x", 0o644)
        .symlink("o", &outside_abs)
        .file("o/secret", b"pwned", 0o644)
        .file("a/etc/passwd", b"root::0:0::/:/bin/sh\n", 0o644)
        .finish();
    bed.apply(&tar, TAR).unwrap();
    assert!(!Path::new("/").join(&marker).exists());
    // the writes resolved inside the root
    assert!(bed.root.join(&marker).exists());
    assert_eq!(
        fs::read(
            bed.root
                .join(outside_abs.trim_start_matches('/'))
                .join("secret")
        )
        .unwrap(),
        b"pwned"
    );
    assert_eq!(
        fs::read(bed.root.join("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
    assert!(fs::symlink_metadata(bed.root.join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
    bed.assert_outside_untouched();
}

#[test]
fn hostile_relative_symlink_escape_then_write_through() {
    let bed = Bed::new();
    let tar = Tar::default()
        .symlink("up", "../../..")
        .file("up/outside/secret", b"pwned", 0o644)
        .symlink("d/deeper", "../../../../../../..")
        .file("d/deeper/x", b"x", 0o644)
        // a chain of links
        .symlink("l1", "l2")
        .symlink("l2", "../up/outside")
        .file("l1/y", b"y", 0o644)
        .finish();
    bed.apply(&tar, TAR).unwrap();
    assert_eq!(fs::read(bed.root.join("outside/secret")).unwrap(), b"pwned");
    assert_eq!(fs::read(bed.root.join("outside/y")).unwrap(), b"y");
    assert!(bed.root.join("x").exists());
    bed.assert_outside_untouched();
    // a symlink loop is an error, not a hang
    let bed = Bed::new();
    let tar = Tar::default()
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .file("loop1/x", b"x", 0o644)
        .finish();
    let r = unsafe_reason(bed.apply(&tar, TAR));
    assert!(r.contains("symlinks"), "{r}");
    bed.assert_outside_untouched();
}

#[test]
fn hostile_whiteout_through_symlink_stays_inside() {
    let bed = Bed::new();
    let tar = Tar::default()
        .symlink("o", &bed.outside.display().to_string())
        .whiteout("o/.wh.secret")
        .symlink("up", "../../..")
        .whiteout("up/outside/.wh..wh..opq")
        .finish();
    bed.apply(&tar, TAR).unwrap();
    bed.assert_outside_untouched();
}

#[test]
fn hostile_hardlinks() {
    for target in ["../outside/secret", "../../../outside/secret"] {
        let bed = Bed::new();
        let tar = Tar::default().hardlink("steal", target).finish();
        let r = unsafe_reason(bed.apply(&tar, TAR));
        assert!(r.contains("hard link target"), "{r}");
        bed.assert_outside_untouched();
    }
    // through a symlink in the target's parent: resolved inside the root, where it is absent
    let bed = Bed::new();
    let tar = Tar::default()
        .symlink("o", &bed.outside.display().to_string())
        .hardlink("steal", "o/secret")
        .finish();
    let r = unsafe_reason(bed.apply(&tar, TAR));
    assert!(r.contains("not an earlier"), "{r}");
    assert!(!bed.root.join("steal").exists());
    bed.assert_outside_untouched();
    // to a directory
    let bed = Bed::new();
    let tar = Tar::default().dir("d", 0o755).hardlink("l", "d").finish();
    unsafe_reason(bed.apply(&tar, TAR));
}

#[test]
fn hostile_whiteout_names() {
    for name in [".wh.../x", "a/.wh...", ".wh..", "a/.wh./b", "a/.wh.x/y"] {
        let bed = Bed::new();
        fs::create_dir_all(bed.root.join("a/keep")).unwrap();
        let tar = Tar::default().whiteout(name).finish();
        let r = unsafe_reason(bed.apply(&tar, TAR));
        assert!(r.contains("whiteout"), "{name}: {r}");
        assert!(bed.root.join("a/keep").exists(), "{name}");
        bed.assert_outside_untouched();
    }
}

#[test]
fn hostile_headers() {
    // a GNU long name declaring a terabyte
    let bed = Bed::new();
    let mut l = H::new("././@LongLink", b'L');
    l.size = 1 << 40;
    let mut tar = Tar::default();
    tar.buf.extend_from_slice(&common::header(&l));
    let e = bed.apply(&tar.finish(), TAR).unwrap_err();
    assert!(
        e.to_string()
            .contains("gnu long name of 1099511627776 bytes"),
        "{e}"
    );
    // a PAX header declaring 16 MiB
    let mut x = H::new("pax", b'x');
    x.size = 16 << 20;
    let mut tar = Tar::default();
    tar.buf.extend_from_slice(&common::header(&x));
    let e = bed.apply(&tar.finish(), TAR).unwrap_err();
    assert!(e.to_string().contains("pax header"), "{e}");
    // a file declaring 2^62 bytes (base-256 size) with no data: truncated, nothing huge written
    let mut f = H::new("big", b'0');
    f.size = 1 << 62;
    let mut tar = Tar::default();
    tar.buf.extend_from_slice(&common::header(&f));
    tar.buf.extend_from_slice(&[7u8; 4096]);
    let e = bed.apply(&tar.buf, TAR).unwrap_err();
    assert!(
        matches!(e, Error::Unpack { source: UnpackError::Truncated { ref entry }, .. } if entry == "big"),
        "{e}"
    );
    // a zero-size long name is no long name: the header's name is used (Go archive/tar
    // reader.go, Reader.next: `if gnuLongName != ""`)
    let mut z = H::new("././@LongLink", b'L');
    z.size = 0;
    let mut tar = Tar::default();
    tar.raw(&z, b"").file("kept", b"", 0o644);
    bed.apply(&tar.finish(), TAR).unwrap();
    assert!(bed.root.join("kept").is_file());
    // a header with a bad checksum
    let mut h = common::header(&H::new("x", b'0'));
    h[0] = b'y';
    let e = bed
        .apply(&[h.as_slice(), &[0u8; 1024]].concat(), TAR)
        .unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    // garbage that is not a tar
    let e = bed.apply(&[0x42u8; 2000], TAR).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    // a name longer than PATH_MAX
    let long = "n/".repeat(2100);
    let r = unsafe_reason(bed.apply(&Tar::default().file(&long, b"", 0o644).finish(), TAR));
    assert!(r.contains("longer than 4096"), "{r}");
    // unsupported types
    let e = bed
        .apply(
            &Tar::default()
                .entry(H::new("sparse", b'S'), b"", &[])
                .finish(),
            TAR,
        )
        .unwrap_err();
    assert!(e.to_string().contains("unsupported type 'S'"), "{e}");
    // a zero-size regular file is fine
    bed.apply(&Tar::default().file("empty", b"", 0o644).finish(), TAR)
        .unwrap();
    assert_eq!(fs::read(bed.root.join("empty")).unwrap(), b"");
    bed.assert_outside_untouched();
}

#[test]
fn hostile_truncated_streams() {
    let tar = Tar::default().file("f", &[1u8; 5000], 0o644).finish();
    for cut in [100, 512, 700, 4000] {
        let bed = Bed::new();
        let e = bed.apply(&tar[..cut], TAR).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Unpack {
                    source: UnpackError::Truncated { .. },
                    ..
                }
            ),
            "{cut}: {e}"
        );
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    // a truncated gzip stream is a decompression error
    let gz = gzip(&tar);
    let bed = Bed::new();
    let e = bed.apply(&gz[..gz.len() - 10], TAR_GZ).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unpack {
                source: UnpackError::Decompress(_) | UnpackError::Truncated { .. },
                ..
            }
        ),
        "{e}"
    );
    // a corrupt zstd stream
    let mut z = zstd(&tar);
    let n = z.len();
    z.truncate(n / 2);
    let e = bed.apply(&z, TAR_ZST).unwrap_err();
    assert!(matches!(e, Error::Unpack { .. }), "{e}");
}

#[test]
fn gzip_bomb_is_bounded() {
    // 64 MiB of zeros compresses to about 64 KiB
    let mut big = H::new("zeros", b'0');
    big.size = 64 << 20;
    let mut tar = Tar::default();
    tar.buf.extend_from_slice(&common::header(&big));
    tar.buf.resize(tar.buf.len() + (64 << 20), 0);
    let bomb = gzip(&tar.finish());
    assert!(bomb.len() < 1 << 20);
    let bed = Bed::new();
    let opts = UnpackOptions {
        max_unpacked_bytes: 8 << 20,
        ..UnpackOptions::default()
    };
    let e = unpack_layer(bomb.as_slice(), TAR_GZ, &bed.root, &opts).unwrap_err();
    assert!(
        matches!(e, Error::Unpack { source: UnpackError::TooLarge { limit }, .. } if limit == 8 << 20),
        "{e}"
    );
    assert!(e.to_string().contains("decompression bomb"), "{e}");
    assert!(fs::metadata(bed.root.join("zeros")).unwrap().len() <= 8 << 20);
    // and the entry count is bounded
    let mut many = Tar::default();
    for i in 0..50 {
        many.file(&format!("f{i}"), b"", 0o644);
    }
    let opts = UnpackOptions {
        max_entries: 20,
        ..UnpackOptions::default()
    };
    let e = unpack_layer(many.finish().as_slice(), TAR, &bed.root, &opts).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unpack {
                source: UnpackError::TooManyEntries { limit: 20 },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn header_only_types_carry_no_data() {
    // a hard link and a directory declaring a size (some writers do): no data follows them
    let bed = Bed::new();
    let mut link = H::new("link", b'1');
    link.link = b"f".to_vec();
    link.size = 700;
    let mut dir = H::new("d", b'5');
    dir.size = 1024;
    let tar = Tar::default()
        .file("f", b"data", 0o644)
        .raw(&link, b"")
        .raw(&dir, b"")
        .file("after", b"still read", 0o644)
        .finish();
    bed.apply(&tar, TAR).unwrap();
    assert_eq!(fs::read(bed.root.join("after")).unwrap(), b"still read");
    assert_eq!(
        fs::metadata(bed.root.join("link")).unwrap().ino(),
        fs::metadata(bed.root.join("f")).unwrap().ino()
    );
}

/// Mutated real layers (flipped bytes, cut streams, spliced headers) never panic and never
/// write outside the root, whatever they unpack to.
#[test]
fn mutated_layers_never_escape() {
    let base = Tar::default()
        .dir("d", 0o755)
        .symlink("d/up", "../../..")
        .symlink("abs", "/")
        .file("d/up/x", b"x", 0o644)
        .hardlink("h", "d/up/x")
        .whiteout("d/.wh.up")
        .whiteout("d/.wh..wh..opq")
        .file(&"long/".repeat(30), b"long", 0o644)
        .file("abs/y", b"y", 0o644)
        .finish();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ok, mut failed) = (0, 0);
    for round in 0..300 {
        let mut t = base.clone();
        for _ in 0..(1 + next() % 8) {
            let i = (next() as usize) % t.len();
            match next() % 4 {
                0 => t[i] = next() as u8,
                1 => t[i] ^= 1 << (next() % 8),
                // names: swap in path characters that matter
                2 => t[i] = [b'/', b'.', b'\0', b'.'][(next() % 4) as usize],
                _ => t.truncate(i.max(1)),
            }
        }
        // most mutations break the header checksum: fix it half of the time so the body parses
        if round % 2 == 0 {
            for h in t
                .chunks_mut(512)
                .filter(|c| c.len() == 512 && &c[257..262] == b"ustar")
            {
                h[148..156].fill(b' ');
                let sum: u64 = h.iter().map(|&x| u64::from(x)).sum();
                h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            }
        }
        let bed = Bed::new();
        match bed.apply(&t, TAR) {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        bed.assert_outside_untouched();
    }
    // the mutations exercised both paths
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
}

#[test]
fn rootless_writes_into_read_only_lower_dirs() {
    let bed = Bed::new();
    let opts = UnpackOptions {
        rootless: true,
        ..UnpackOptions::default()
    };
    let lower = Tar::default()
        .dir("ro", 0o555)
        .file("ro/old", b"o", 0o444)
        .finish();
    unpack_layer(lower.as_slice(), TAR, &bed.root, &opts).unwrap();
    let upper = Tar::default()
        .file("ro/new", b"n", 0o644)
        .whiteout("ro/.wh.old")
        .finish();
    unpack_layer(upper.as_slice(), TAR, &bed.root, &opts).unwrap();
    assert_eq!(tree(&bed.root), vec!["ro", "ro/new"]);
    assert_eq!(
        fs::metadata(bed.root.join("ro"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o555
    );
    // the temp dir must stay removable
    fs::set_permissions(bed.root.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}
