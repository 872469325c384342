//! A directory tree described for comparison: what unpacking an image must get right, per
//! path (type, mode, owner, size, link count, content digest, link target, file times, device
//! numbers). Two unpacks of one image (from its blobs, from its snapshots, by another tool)
//! must describe the same.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use kubepull_core::reference::Digest;

/// What a tree comparison looks at, per path.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    /// `d` directory, `l` symlink, `f` regular file, `o` anything else (devices, fifos).
    pub kind: char,
    /// Permission bits with setuid/setgid/sticky (0 for a symlink).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// A regular file's size.
    pub size: u64,
    /// A regular file's link count.
    pub nlink: u64,
    /// A regular file's content digest.
    pub content: Option<String>,
    /// A symlink's target.
    pub link: Option<String>,
    /// A file's or symlink's modification time.
    pub mtime: Option<i64>,
    /// A device node's or whiteout's device number.
    pub rdev: Option<u64>,
}

/// Every path under `root` (relative to it) with its [`Node`].
pub fn describe(root: &Path) -> BTreeMap<String, Node> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_file() {
                'f'
            } else {
                'o'
            };
            out.insert(
                p.strip_prefix(root).unwrap().display().to_string(),
                Node {
                    kind,
                    mode: if kind == 'l' {
                        0
                    } else {
                        m.permissions().mode() & 0o7777
                    },
                    uid: m.uid(),
                    gid: m.gid(),
                    size: if kind == 'f' { m.len() } else { 0 },
                    nlink: if kind == 'f' { m.nlink() } else { 0 },
                    content: (kind == 'f')
                        .then(|| Digest::sha256_of(&fs::read(&p).unwrap()).to_string()),
                    link: (kind == 'l').then(|| fs::read_link(&p).unwrap().display().to_string()),
                    // overlay whiteouts (device nodes) are made at unpack time: their mtime is
                    // the clock's, not the layer's
                    mtime: matches!(kind, 'f' | 'l').then(|| m.mtime()),
                    rdev: (kind == 'o').then(|| m.rdev()),
                },
            );
            if kind == 'd' {
                go(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}
