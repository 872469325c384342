//! A tar writer for tests: it writes what real tools write and what hostile layers contain
//! (`..` names, absolute names, huge sizes), which archive builders refuse to produce.

#![allow(dead_code)]

/// One tar being built.
#[derive(Default)]
pub struct Tar {
    pub buf: Vec<u8>,
}

/// Header fields of one entry.
#[derive(Clone)]
pub struct H {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: Vec<u8>,
    pub devmajor: u64,
    pub devminor: u64,
}

impl H {
    pub fn new(name: &str, typeflag: u8) -> H {
        H {
            name: name.as_bytes().to_vec(),
            typeflag,
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1_600_000_000,
            link: Vec::new(),
            devmajor: 0,
            devminor: 0,
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    if s.len() < field.len() {
        field[..s.len()].copy_from_slice(s.as_bytes());
        field[s.len()] = 0;
    } else {
        // GNU base-256
        field.fill(0);
        field[0] = 0x80;
        let bytes = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
    }
}

pub fn header(h: &H) -> [u8; 512] {
    let mut b = [0u8; 512];
    let n = h.name.len().min(100);
    b[..n].copy_from_slice(&h.name[..n]);
    octal(&mut b[100..108], u64::from(h.mode));
    octal(&mut b[108..116], h.uid);
    octal(&mut b[116..124], h.gid);
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime);
    b[156] = h.typeflag;
    let n = h.link.len().min(100);
    b[157..157 + n].copy_from_slice(&h.link[..n]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], h.devmajor);
    octal(&mut b[337..345], h.devminor);
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

impl Tar {
    pub fn raw(&mut self, h: &H, data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(&header(h));
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// An entry, with a PAX header first when the name or link is long or xattrs are given.
    pub fn entry(&mut self, h: H, data: &[u8], xattrs: &[(&str, &[u8])]) -> &mut Self {
        let mut h = h;
        if h.typeflag == b'0' {
            h.size = data.len() as u64;
        }
        let mut pax = Vec::new();
        let mut rec = |k: &[u8], v: &[u8]| {
            let body = [b" ".as_slice(), k, b"=", v, b"\n"].concat();
            let mut len = body.len() + 1;
            while format!("{len}").len() + body.len() != len {
                len += 1;
            }
            pax.extend_from_slice(format!("{len}").as_bytes());
            pax.extend_from_slice(&body);
        };
        if h.name.len() > 100 {
            rec(b"path", &h.name);
        }
        if h.link.len() > 100 {
            rec(b"linkpath", &h.link);
        }
        for (k, v) in xattrs {
            rec(format!("SCHILY.xattr.{k}").as_bytes(), v);
        }
        if !pax.is_empty() {
            let mut x = H::new("PaxHeaders/x", b'x');
            x.size = pax.len() as u64;
            self.raw(&x, &pax);
        }
        self.raw(&h, data)
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let mut h = H::new(name, b'0');
        h.mode = mode;
        self.entry(h, data, &[])
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let mut h = H::new(name, b'5');
        h.mode = mode;
        self.entry(h, b"", &[])
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = H::new(name, b'2');
        h.mode = 0o777;
        h.link = target.as_bytes().to_vec();
        self.entry(h, b"", &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = H::new(name, b'1');
        h.link = target.as_bytes().to_vec();
        self.entry(h, b"", &[])
    }

    pub fn whiteout(&mut self, name: &str) -> &mut Self {
        self.file(name, b"", 0o644)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.buf);
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const TAR_ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_GZ: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// One zstd frame of raw (stored) blocks, written by hand so that frame boundaries are exact
/// (RFC 8878 section 3.1.1).
pub fn zstd_raw_frame(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x28, 0xb5, 0x2f, 0xfd, 0xa0];
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let chunks: Vec<&[u8]> = data.chunks(100_000).collect();
    if chunks.is_empty() {
        v.extend_from_slice(&[1, 0, 0]);
    }
    for (i, c) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let h = last | ((c.len() as u32) << 3);
        v.extend_from_slice(&h.to_le_bytes()[..3]);
        v.extend_from_slice(c);
    }
    v
}

/// A three-layer image: whiteouts, an opaque dir, hard links (one across layers), symlinks,
/// setuid, sticky, owners, file/dir replacement, long names.
pub fn layers() -> Vec<(Vec<u8>, &'static str)> {
    let mut owned = H::new("home/user/owned", b'0');
    owned.uid = 1000;
    owned.gid = 1001;
    owned.mode = 0o640;
    let mut suid = H::new("bin/suid", b'0');
    suid.mode = 0o4755;
    let mut old = H::new("old", b'0');
    old.mtime = 1_234_567_890;
    let l1 = Tar::default()
        .dir("etc", 0o755)
        .file("etc/conf", b"one\n", 0o644)
        .dir("bin", 0o755)
        .file("bin/app", b"\x7fELF app", 0o755)
        .entry(suid, b"suid", &[])
        .hardlink("bin/app-link", "bin/app")
        .symlink("bin/rel", "app")
        .symlink("conf-abs", "/etc/conf")
        .dir("tmp", 0o1777)
        .dir("home", 0o755)
        .dir("home/user", 0o750)
        .entry(owned, b"mine", &[])
        .dir("opq", 0o755)
        .file("opq/old", b"old", 0o644)
        .dir("opq/sub", 0o755)
        .file("opq/sub/old2", b"old2", 0o644)
        .file("gone", b"gone", 0o644)
        .dir("gonedir", 0o755)
        .file("gonedir/x", b"x", 0o644)
        .file("becomes-dir", b"file", 0o644)
        .dir("becomes-file", 0o755)
        .file("becomes-file/y", b"y", 0o644)
        .entry(old, b"old times", &[])
        .finish();
    let l2 = Tar::default()
        .whiteout(".wh.gone")
        .whiteout(".wh.gonedir")
        .dir("opq", 0o755)
        .whiteout("opq/.wh..wh..opq")
        .file("opq/new", b"new", 0o600)
        .file("etc/conf", b"two\n", 0o600)
        .dir("becomes-dir", 0o700)
        .file("becomes-dir/z", b"z", 0o644)
        .file("becomes-file", b"now a file", 0o644)
        .dir("newdir", 0o711)
        .file(
            &format!("newdir/{}", "long-".repeat(40)),
            b"long name",
            0o644,
        )
        .finish();
    let l3 = Tar::default()
        .whiteout("bin/.wh.rel")
        .hardlink("newdir/link-to-suid", "bin/suid")
        .symlink("newdir/dangling", "../does/not/exist")
        .finish();
    vec![(gzip(&l1), TAR_GZ), (l2, TAR), (gzip(&l3), TAR_GZ)]
}

/// The tree comparison the unpack tests share with the other crates' tests.
#[allow(unused_imports)]
pub use kubepull_testkit::tree::{describe, Node};
