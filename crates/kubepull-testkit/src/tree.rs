//! A directory tree described for comparison: what unpacking an image must get right, per
//! path (type, mode, owner, size, link count, content digest, link target, file times, device
//! numbers). Two unpacks of one image (from its blobs, from its snapshots, by another tool)
//! must describe the same.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use kubepull_core::reference::Digest;

/// What a tree comparison looks at, per path.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    /// `d` directory, `l` symlink, `f` regular file, `c` character device (an overlay whiteout
    /// is one, 0:0), `b` block device, `p` fifo, `s` socket.
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
    /// A device node's or whiteout's device number (`c`, `b`).
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
            } else if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else if ft.is_fifo() {
                'p'
            } else if ft.is_socket() {
                's'
            } else {
                '?'
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
                    rdev: matches!(kind, 'c' | 'b').then(|| m.rdev()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(cmd: &[&str]) -> bool {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// An overlay whiteout (a character device 0:0) and a fifo of the same mode describe
    /// differently: a copy that turned one into the other does not compare equal.
    #[test]
    fn a_whiteout_and_a_fifo_describe_differently() {
        let t = tempfile::tempdir().unwrap();
        let (wh, fifo) = (t.path().join("wh"), t.path().join("fifo"));
        fs::create_dir(&wh).unwrap();
        fs::create_dir(&fifo).unwrap();
        assert!(run(&[
            "mkfifo",
            "-m",
            "600",
            fifo.join("x").to_str().unwrap()
        ]));
        if !run(&[
            "mknod",
            "-m",
            "600",
            wh.join("x").to_str().unwrap(),
            "c",
            "0",
            "0",
        ]) {
            eprintln!("SKIPPED: device nodes need root");
            return;
        }
        let (a, b) = (describe(&wh), describe(&fifo));
        assert_eq!((a["x"].kind, b["x"].kind), ('c', 'p'));
        assert_eq!((a["x"].rdev, b["x"].rdev), (Some(0), None));
        assert_ne!(a, b);
    }
}
