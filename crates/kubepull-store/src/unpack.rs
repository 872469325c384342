//! Layer unpacking: tar, tar+gzip and tar+zstd layers applied onto a root filesystem
//! directory, with OCI whiteouts.
//!
//! The rules follow containerd `archive/tar.go` (`applyNaive`, `createTarFile`) and umoci
//! `oci/layer/tar_extract.go` (`UnpackEntry`):
//!
//! - `.wh.<name>` deletes `<name>` from the lower layers; `.wh..wh..opq` deletes everything in
//!   its directory that this layer did not itself unpack. Whiteout files are never created.
//! - A path that exists is removed and replaced, except a directory replaced by a directory,
//!   whose metadata is merged.
//! - Every parent path component is resolved *inside* the root, symlinks included (the
//!   `securejoin` / `openat2(RESOLVE_IN_ROOT)` rule): a symlink may point anywhere, but a write
//!   never follows one out of the root. Names with a `..` component are rejected; absolute names
//!   are taken relative to the root, as tar does.
//! - Ownership, device nodes, fifos and extended attributes are applied only when running as
//!   root (and not [`UnpackOptions::rootless`]); otherwise devices and fifos are skipped and
//!   counted.
//!
//! The tar reader is this module's own: every header, long name and PAX record is bounded (see
//! the constants), and the decompressed size of a layer is bounded by
//! [`UnpackOptions::max_unpacked_bytes`] (the decompression-bomb guard).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kubepull_core::reference::Digest;

use crate::{Error, ImageRecord, Result, Store};

/// The longest entry name, link target or resolved path accepted: Linux `PATH_MAX`.
pub const MAX_PATH_LEN: usize = 4096;
/// The longest single path component: Linux `NAME_MAX`.
pub const MAX_NAME_LEN: usize = 255;
/// The largest PAX extended header accepted (paths, link targets and xattrs; real ones are a
/// few hundred bytes, security.capability and SELinux labels included).
pub const MAX_PAX_HEADER: u64 = 1 << 20;
/// Symlinks followed while resolving one path: Linux `MAXSYMLINKS`.
pub const MAX_SYMLINK_FOLLOWS: usize = 40;
/// Default bound on the entries of one layer (headers of any kind). The largest public images
/// have a few hundred thousand files.
pub const DEFAULT_MAX_ENTRIES: u64 = 2_000_000;
/// Default bound on the decompressed bytes of one layer: the decompression-bomb guard. gzip
/// expands at most about 1032:1, so a small hostile blob can otherwise fill a disk; 64 GiB is
/// above any real layer and below what a node should ever write for one.
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 64 << 30;

const BLOCK: usize = 512;
/// File content is copied through a buffer of this size.
const COPY_BUFFER: usize = 256 << 10;
const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// How layers are unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Bound on the headers of one layer.
    pub max_entries: u64,
    /// Bound on the decompressed bytes of one layer.
    pub max_unpacked_bytes: u64,
    /// Do not apply ownership, device nodes, fifos or xattrs even when running as root.
    /// Defaults to true when the process is not root.
    pub rootless: bool,
    /// How many layers [`Store::layer_snapshot_from`] applies at once: 0 (the default) for as
    /// many as there are cores, 1 for one after another, each onto the overlay of the layers
    /// below it. The snapshots are the same either way.
    pub parallel_layers: usize,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
            rootless: !rustix::process::geteuid().is_root(),
            parallel_layers: 0,
        }
    }
}

impl UnpackOptions {
    /// Whether owners, device nodes, fifos and xattrs are applied: as root, not rootless.
    pub(crate) fn privileged(&self) -> bool {
        !self.rootless && rustix::process::geteuid().is_root()
    }
}

/// What unpacking one layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar headers read (metadata headers included).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or merged.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Device nodes and fifos created.
    pub devices: u64,
    /// Device nodes and fifos skipped (not root).
    pub skipped_devices: u64,
    /// `.wh.<name>` whiteouts applied.
    pub whiteouts: u64,
    /// `.wh..wh..opq` opaque markers applied.
    pub opaque_dirs: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

impl LayerStats {
    fn add(&mut self, o: &LayerStats) {
        self.entries += o.entries;
        self.files += o.files;
        self.dirs += o.dirs;
        self.symlinks += o.symlinks;
        self.hardlinks += o.hardlinks;
        self.devices += o.devices;
        self.skipped_devices += o.skipped_devices;
        self.whiteouts += o.whiteouts;
        self.opaque_dirs += o.opaque_dirs;
        self.bytes += o.bytes;
    }
}

/// What unpacking an image did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Layers applied.
    pub layers: usize,
    /// Sums over the layers.
    pub total: LayerStats,
    /// The tree was copied from the layers' snapshots (the image does not keep its layer
    /// blobs); `total` then counts what was copied.
    pub from_snapshots: bool,
}

/// Why a layer could not be unpacked. Names the tar entry; never includes file content.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The media type is not a tar layer.
    #[error(
        "unknown layer media type {0:?}: expected application/vnd.oci.image.layer.v1.tar \
         (optionally +gzip or +zstd) or application/vnd.docker.image.rootfs.diff.tar.gzip"
    )]
    UnknownMediaType(String),
    /// The compressed stream is corrupt.
    #[error("decompress layer: {0}")]
    Decompress(#[source] io::Error),
    /// The stream is not a valid tar.
    #[error("malformed tar header at byte {offset}: {reason}")]
    Malformed {
        /// Offset of the header in the decompressed stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The stream ended in the middle of an entry.
    #[error("truncated layer: the tar stream ends inside entry {entry:?}")]
    Truncated {
        /// The entry being read.
        entry: String,
    },
    /// The entry would write outside the root or is otherwise unsafe.
    #[error("unsafe tar entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry name.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// An entry type this unpacker does not support (sparse files, volume labels).
    #[error("tar entry {entry:?} has unsupported type {typeflag:?}")]
    UnsupportedType {
        /// The entry name.
        entry: String,
        /// The type flag.
        typeflag: char,
    },
    /// The decompressed layer is larger than allowed.
    #[error(
        "layer expands to more than {limit} bytes (UnpackOptions::max_unpacked_bytes); \
         refusing a possible decompression bomb"
    )]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The layer has too many entries.
    #[error("layer has more than {limit} tar entries (UnpackOptions::max_entries)")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// Applied into a snapshot of its own, the entry depends on what the layers below hold at
    /// `path` (a hard link to a lower file, a whiteout under a directory only a lower layer
    /// has): the layer is applied again onto the overlay of those layers. Never returned by
    /// the public unpacking functions.
    #[error("tar entry {entry:?} depends on {path:?} in the layers below")]
    NeedsLowerLayers {
        /// The entry name.
        entry: String,
        /// The path below.
        path: String,
    },
    /// A filesystem operation failed.
    #[error("tar entry {entry:?}: {op}: {source}")]
    Io {
        /// The entry name.
        entry: String,
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn layer_err(layer: &str, e: UnpackError) -> Error {
    Error::Unpack {
        layer: layer.to_string(),
        source: e,
    }
}

/// Unpacks one layer stream onto `dest` (created if missing). `media_type` must name a tar
/// layer; the compression is taken from the stream's magic bytes when they disagree.
pub fn unpack_layer(
    reader: impl Read + Send,
    media_type: &str,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<LayerStats> {
    unpack_layer_inner(reader, media_type, dest, opts, None, None, None)
        .map_err(|e| layer_err("-", e))
}

/// Applies every layer of `rec`, base first, onto `dest` (created if missing). Each layer blob is
/// re-hashed while it is read; a mismatch fails with [`Error::DigestMismatch`].
///
/// An image whose record does not keep its layer blobs ([`crate::LayerRecord::discarded`],
/// one of them not in the store: [`Store::discarded_blobs_missing`]) is copied from its
/// layers' snapshots instead ([`Store::copy_snapshots`], with `opts.rootless` honoured as
/// here), which hold the tree the blobs unpack to: each was verified against the blob's digest
/// and diff ID before it was kept. (A hard link a later layer adds to a lower layer's file is
/// the one difference: overlay copied that file up, so its names in the lower layer are a
/// separate file.)
/// containerd's `ctr images mount` likewise gives an image's tree from its snapshot chain
/// (cmd/ctr/commands/images/mount.go: `Unpack`, which finds every snapshot in place and
/// reads no layer content, then a view of the chain ID's snapshot). A layer without a
/// snapshot fails with [`Error::LayerDiscarded`], which names the pull that fetches the
/// blobs again (this call has no credentials to fetch them itself).
pub fn unpack_image(
    store: &Store,
    rec: &ImageRecord,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats> {
    if store.discarded_blobs_missing(rec) {
        let total = store.copy_snapshots(&rec.name, &rec.layers, dest, opts)?;
        return Ok(UnpackStats {
            layers: rec.layers.len(),
            total,
            from_snapshots: true,
        });
    }
    let mut stats = UnpackStats::default();
    for layer in &rec.layers {
        let s = apply_layer_blob(store, &rec.name, layer, dest, opts, None, None)?;
        stats.layers += 1;
        stats.total.add(&s);
    }
    Ok(stats)
}

/// Copies the tree at `src` (a layer chain's merged view: one snapshot, or their read-only
/// overlay) into `dest` (created if missing), keeping what unpacking the layers keeps: type,
/// content, owner, mode (setuid included), extended attributes (overlayfs' own left out),
/// times, device numbers, and hard links between files of the tree. Whiteout devices (what a
/// single snapshot may hold where a layer deleted nothing below) are not copied. `dest` itself
/// is left as it is (its owner, mode, times), as unpacking leaves it. Not `privileged`
/// ([`UnpackOptions::rootless`], or not root), as unpacking does: no owner and no extended
/// attributes are applied, and devices, fifos and sockets are skipped and counted. Returns what
/// was made, counted as unpacking counts it (`entries` is every path made; no whiteouts).
pub(crate) fn copy_tree(src: &Path, dest: &Path, privileged: bool) -> Result<LayerStats> {
    use std::os::unix::fs::FileTypeExt;
    let io_err = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e: io::Error| Error::io(what, e)
    };
    // after the content and the owner (chown clears setuid): mode, xattrs, times
    let finish = |from: &Path, to: &Path, m: &fs::Metadata| -> Result<()> {
        if privileged {
            std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))
                .map_err(io_err("chown", to))?;
        }
        if !m.file_type().is_symlink() {
            fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(io_err("chmod", to))?;
        }
        let xattrs = if privileged {
            xattrs_of(from).map_err(io_err("read xattrs of", from))?
        } else {
            Vec::new()
        };
        for (k, v) in xattrs {
            match rustix::fs::lsetxattr(
                to,
                OsStr::from_bytes(&k),
                &v,
                rustix::fs::XattrFlags::empty(),
            ) {
                Ok(()) | Err(rustix::io::Errno::NOTSUP) => {}
                Err(e) => return Err(io_err("set xattr on", to)(e.into())),
            }
        }
        set_times(to, mtime_of(m), atime_of(m)).map_err(io_err("set times", to))
    };
    let mut links: std::collections::HashMap<(u64, u64), PathBuf> = Default::default();
    let mut stats = LayerStats::default();
    // directories are finished after their entries (their times)
    let mut dirs: Vec<(PathBuf, PathBuf, fs::Metadata)> = Vec::new();
    let mut todo: Vec<(PathBuf, PathBuf)> = vec![(src.to_path_buf(), dest.to_path_buf())];
    while let Some((from, to)) = todo.pop() {
        let m = fs::symlink_metadata(&from).map_err(io_err("stat", &from))?;
        let ft = m.file_type();
        if ft.is_dir() {
            match fs::create_dir(&to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && to == dest => {}
                Err(e) => return Err(io_err("create", &to)(e)),
            }
            for e in fs::read_dir(&from).map_err(io_err("list", &from))? {
                let e = e.map_err(io_err("list", &from))?;
                todo.push((e.path(), to.join(e.file_name())));
            }
            dirs.push((from, to, m));
            continue;
        }
        if is_whiteout(&m) {
            continue;
        }
        let special = !(ft.is_file() || ft.is_symlink());
        if special && !privileged {
            stats.skipped_devices += 1;
            continue;
        }
        if m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                fs::hard_link(first, &to).map_err(io_err("link", &to))?;
                stats.hardlinks += 1;
                stats.entries += 1;
                continue;
            }
            links.insert((m.dev(), m.ino()), to.clone());
        }
        if ft.is_file() {
            let mut r = File::open(&from).map_err(io_err("open", &from))?;
            let mut w = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&to)
                .map_err(io_err("create", &to))?;
            stats.bytes += io::copy(&mut r, &mut w).map_err(io_err("copy to", &to))?;
            stats.files += 1;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(io_err("read link", &from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(io_err("create symlink", &to))?;
            stats.symlinks += 1;
        } else {
            let kind = if ft.is_char_device() {
                rustix::fs::FileType::CharacterDevice
            } else if ft.is_block_device() {
                rustix::fs::FileType::BlockDevice
            } else if ft.is_fifo() {
                rustix::fs::FileType::Fifo
            } else {
                rustix::fs::FileType::Socket
            };
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &to,
                kind,
                rustix::fs::Mode::from_raw_mode(0o600),
                m.rdev(),
            )
            .map_err(|e| io_err("create device node", &to)(e.into()))?;
            stats.devices += 1;
        }
        finish(&from, &to, &m)?;
        stats.entries += 1;
    }
    for (from, to, m) in dirs.into_iter().rev() {
        if to == dest {
            // the caller's directory: unpacking leaves it alone too
            continue;
        }
        finish(&from, &to, &m)?;
        stats.entries += 1;
        stats.dirs += 1;
    }
    Ok(stats)
}

/// Opens layer `d`'s blob (`open` is [`File::open`] but in tests): from `blobs/`, or for a
/// [discarded](crate::LayerRecord::discarded) layer from its download in `ingest/` while that
/// is there. A download committed (renamed into `blobs/`) between the two opens is found in
/// `blobs/` by a second look there, not taken for discarded.
fn open_layer_blob(
    store: &Store,
    image: &str,
    layer: &crate::LayerRecord,
    d: &Digest,
    open: &mut dyn FnMut(&Path) -> io::Result<File>,
) -> Result<(File, PathBuf)> {
    let blob = store.blob_path(d);
    let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    match open(&blob) {
        Ok(f) => return Ok((f, blob)),
        Err(e) if not_found(&e) && layer.discarded => {}
        Err(e) if not_found(&e) => return Err(Error::BlobNotFound(d.to_string())),
        Err(e) => return Err(Error::io(format!("open {}", blob.display()), e)),
    }
    let ingest = store.ingest_path(d);
    match open(&ingest) {
        Ok(f) => return Ok((f, ingest)),
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(Error::io(format!("open {}", ingest.display()), e)),
    }
    match open(&blob) {
        Ok(f) => Ok((f, blob)),
        Err(e) if not_found(&e) => Err(Error::LayerDiscarded {
            image: image.to_string(),
            layer: d.to_string(),
        }),
        Err(e) => Err(Error::io(format!("open {}", blob.display()), e)),
    }
}

/// Applies one stored layer blob onto `dest`, re-hashing the blob as it is read (and its
/// uncompressed stream, when the record knows the layer's diff ID).
///
/// A [discarded](crate::LayerRecord::discarded) layer's blob is not in `blobs/`: it is read
/// from its download in `ingest/` while that is still there (a pull that does not keep it
/// applies it from there; the digest is checked at the end all the same), and is otherwise
/// [`Error::LayerDiscarded`].
pub(crate) fn apply_layer_blob(
    store: &Store,
    image: &str,
    layer: &crate::LayerRecord,
    dest: &Path,
    opts: &UnpackOptions,
    sync: Option<&crate::pipeline::Syncer>,
    direct: Option<&mut DirectLog>,
) -> Result<LayerStats> {
    let d = Digest::parse(&layer.digest).map_err(|e| Error::CorruptRecord {
        path: image.to_string(),
        reason: format!("layer digest {:?}: {e}", layer.digest),
    })?;
    let (f, p) = open_layer_blob(store, image, layer, &d, &mut |p| File::open(p))?;
    let mut hr = HashingReader {
        inner: f,
        hash: <sha2::Sha256 as sha2::Digest>::new(),
    };
    let s = apply_layer_stream(image, &mut hr, layer, dest, opts, sync, direct, |hr| {
        let sum: [u8; 32] = sha2::Digest::finalize(hr.hash.clone()).into();
        let actual = Digest::from_sha256_bytes(&sum);
        if actual != d {
            return Err(Error::DigestMismatch {
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    });
    s.map_err(|e| match e {
        Error::Io { what, source } if what == "read layer" => {
            Error::io(format!("read {}", p.display()), source)
        }
        e => e,
    })
}

/// Applies a layer read from `reader` (the blob's bytes) onto `dest`: unpacks it, reads the
/// blob to its end, then calls `blob_verified` (which checks the blob's digest, or waits for
/// the download that verifies it), then compares the uncompressed stream with the layer's
/// diff ID when the record has one. The caller discards `dest` on any error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_layer_stream<R: Read + Send>(
    image: &str,
    reader: &mut R,
    layer: &crate::LayerRecord,
    dest: &Path,
    opts: &UnpackOptions,
    sync: Option<&crate::pipeline::Syncer>,
    direct: Option<&mut DirectLog>,
    blob_verified: impl FnOnce(&mut R) -> Result<()>,
) -> Result<LayerStats> {
    let want = match &layer.diff_id {
        Some(s) => Some(Digest::parse(s).map_err(|e| Error::CorruptRecord {
            path: image.to_string(),
            reason: format!("layer diff ID {s:?}: {e}"),
        })?),
        None => None,
    };
    let mut diff = <sha2::Sha256 as sha2::Digest>::new();
    let s = unpack_layer_inner(
        &mut *reader,
        &layer.media_type,
        dest,
        opts,
        want.as_ref().map(|_| &mut diff),
        sync,
        direct,
    )
    .map_err(|e| layer_err(&layer.digest, e))?;
    // the tar end may come before the end of the blob (padding, the compression trailer)
    crate::ctx(io::copy(reader, &mut io::sink()), || {
        "read layer".to_string()
    })?;
    blob_verified(reader)?;
    if let Some(want) = want {
        let sum: [u8; 32] = sha2::Digest::finalize(diff).into();
        let actual = Digest::from_sha256_bytes(&sum);
        if actual != want {
            return Err(Error::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: want.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(s)
}

struct HashingReader<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn compression_of(media_type: &str) -> Option<Compression> {
    // OCI image-spec media-types.md and Docker image manifest v2.2
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Reads zstd streams of one or more frames (pigz-like concatenation is legal in zstd too).
struct ZstdFrames<R: BufRead> {
    dec: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(dec) = self.dec.take() else {
                return Ok(0);
            };
            let (mut src, fd) = dec.into_parts();
            if src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.dec = Some(
                ruzstd::decoding::StreamingDecoder::new_with_decoder(src, fd)
                    .map_err(io::Error::other)?,
            );
        }
    }
}

fn decompressor<'a, R: Read + Send + 'a>(
    reader: R,
    media_type: &str,
) -> Result<Box<dyn Read + Send + 'a>, UnpackError> {
    let declared = compression_of(media_type)
        .ok_or_else(|| UnpackError::UnknownMediaType(media_type.into()))?;
    let mut br = BufReader::with_capacity(1 << 16, reader);
    let head = br.fill_buf().map_err(UnpackError::Decompress)?;
    // some registries serve a media type that does not match the bytes: trust the magic
    let actual = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if declared == Compression::None
        || head.is_empty()
        || (head.len() >= 263 && &head[257..262] == b"ustar")
    {
        Compression::None
    } else {
        declared
    };
    Ok(match actual {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => {
            let dec = ruzstd::decoding::StreamingDecoder::new(br)
                .map_err(|e| UnpackError::Decompress(io::Error::other(e)))?;
            Box::new(ZstdFrames { dec: Some(dec) })
        }
    })
}

/// The decompressed stream, counted against the bomb guard.
struct TarStream<'a> {
    r: Box<dyn Read + 'a>,
    offset: u64,
    limit: u64,
}

impl TarStream<'_> {
    /// Fills `buf`; returns how much was read (less only at the end of the stream).
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, UnpackError> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    self.offset += k as u64;
                    if self.offset > self.limit {
                        return Err(UnpackError::TooLarge { limit: self.limit });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(UnpackError::Decompress(e)),
            }
        }
        Ok(n)
    }

    fn read_exact_or_truncated(&mut self, buf: &mut [u8], entry: &[u8]) -> Result<(), UnpackError> {
        if self.read_full(buf)? < buf.len() {
            return Err(UnpackError::Truncated {
                entry: lossy(entry),
            });
        }
        Ok(())
    }

    /// Skips `n` bytes of entry data.
    fn skip(&mut self, mut n: u64, entry: &[u8]) -> Result<(), UnpackError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact_or_truncated(&mut buf[..k], entry)?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Skips the padding after an entry's data. The stream may end inside it: that is the end
    /// of the archive (Go archive/tar reader.go, Reader.next reads the padding with
    /// `tryReadFull`, whose `io.EOF` ends the archive).
    fn skip_padding(&mut self, n: u64) -> Result<(), UnpackError> {
        let mut buf = [0u8; BLOCK];
        let n = n.min(BLOCK as u64) as usize;
        self.read_full(&mut buf[..n])?;
        Ok(())
    }

    /// Reads a metadata entry's data (long names, PAX headers), bounded by `max`.
    fn read_meta(&mut self, size: u64, max: u64, what: &str) -> Result<Vec<u8>, UnpackError> {
        if size > max {
            return Err(UnpackError::Malformed {
                offset: self.offset,
                reason: format!("{what} of {size} bytes is larger than the {max} allowed"),
            });
        }
        let mut v = vec![0u8; size as usize];
        self.read_exact_or_truncated(&mut v, what.as_bytes())?;
        self.skip_padding(padding(size))?;
        Ok(v)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// A numeric header field: octal (NUL/space padded) or base-256 (two's complement, GNU and
/// star), possibly negative (an mtime before 1970).
// Go archive/tar strconv.go, parser.parseNumeric: overflow past 63 bits is an error
fn numeric_signed(field: &[u8]) -> Option<i64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let inv: u8 = if field[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let mut c = b ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = x << 8 | u64::from(c);
        }
        let x = i64::try_from(x).ok()?;
        return Some(if inv == 0xff { !x } else { x });
    }
    octal(field).and_then(|v| i64::try_from(v).ok())
}

/// A numeric field that may not be negative (size, mode, ids).
fn numeric(field: &[u8]) -> Option<u64> {
    numeric_signed(field).and_then(|v| u64::try_from(v).ok())
}

/// An octal field.
// Go archive/tar strconv.go, parser.parseOctal: leading and trailing NULs and spaces are
// trimmed (unused fields are NUL-filled), then the text up to a NUL is parsed; empty is 0
fn octal(field: &[u8]) -> Option<u64> {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |i| i + 1);
    let t = cstr(&field[start..end]);
    if start == end {
        return Some(0);
    }
    // strconv.ParseUint takes no sign (Rust's from_str_radix would take a '+')
    if t.is_empty() || !t.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(t).ok()?, 8).ok()
}

#[derive(Debug, Default, Clone)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
    atime: Option<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// PAX records `"%d %s=%s\n"`. An empty value keeps the header's own field.
// Go archive/tar reader.go, parsePAX and mergePAX ("Keep the original USTAR value");
// strconv.go, parsePAXRecord and validPAXRecord
fn parse_pax(mut data: &[u8], offset: u64) -> Result<Pax, UnpackError> {
    let bad = |reason: &str| UnpackError::Malformed {
        offset,
        reason: format!("pax header: {reason}"),
    };
    let mut pax = Pax::default();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("record without a length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("record length is not a number"))?;
        if len < 5 || len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("record length does not match its content"));
        }
        let rec = &data[sp + 1..len - 1];
        data = &data[len..];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("record without '='"))?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        let nul_in = match k {
            b"path" | b"linkpath" | b"uname" | b"gname" => v,
            _ => k,
        };
        if k.is_empty() || nul_in.contains(&0) {
            return Err(bad("record with an empty key or a NUL byte"));
        }
        let text = |v: &[u8]| (!v.is_empty()).then(|| v.to_vec());
        let num = |v: &[u8]| -> Result<Option<u64>, UnpackError> {
            if v.is_empty() {
                return Ok(None);
            }
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| bad("numeric record is not a number"))
        };
        let time = |v: &[u8], what: &str| -> Result<Option<(i64, u32)>, UnpackError> {
            if v.is_empty() {
                return Ok(None);
            }
            pax_time(v).map(Some).ok_or_else(|| bad(what))
        };
        match k {
            b"path" => pax.path = text(v),
            b"linkpath" => pax.linkpath = text(v),
            b"size" => pax.size = num(v)?,
            b"uid" => pax.uid = num(v)?,
            b"gid" => pax.gid = num(v)?,
            b"mtime" => pax.mtime = time(v, "bad mtime")?,
            b"atime" => pax.atime = time(v, "bad atime")?,
            _ => {
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    // a later record for the same key replaces the earlier one
                    pax.xattrs.retain(|(n, _)| n != name);
                    if !v.is_empty() {
                        pax.xattrs.push((name.to_vec(), v.to_vec()));
                    }
                }
            }
        }
    }
    Ok(pax)
}

/// `secs[.fraction]`, as seconds and nanoseconds after them.
// Go archive/tar strconv.go, parsePAXTime: every fraction character is a digit, the first
// nine count; a negative time subtracts its fraction
fn pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (ss, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = ss.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: u32 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
    }
    if ss.starts_with('-') && nanos > 0 {
        return Some((secs.checked_sub(1)?, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

/// The type of a tar entry (its typeflag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarEntryKind {
    /// `0`, NUL (old tars) or `7` (contiguous file): a regular file.
    File,
    /// `1`.
    HardLink,
    /// `2`.
    Symlink,
    /// `3`.
    Char,
    /// `4`.
    Block,
    /// `5`.
    Dir,
    /// `6`.
    Fifo,
}
use TarEntryKind as Kind;

struct Entry {
    name: Vec<u8>,
    link: Vec<u8>,
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: (i64, u32),
    atime: (i64, u32),
    devmajor: u64,
    devminor: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    // Go archive/tar format.go, block.getFormat: the checksum field is octal only
    let Some(want) = octal(&h[148..156]) else {
        return false;
    };
    // the checksum field counts as spaces; historic tars summed signed bytes
    // (Go archive/tar format.go, block.computeChecksum; reader.go, readHeader)
    let unsigned: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    let signed: i64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    want == unsigned || i64::try_from(want).is_ok_and(|w| w == signed)
}

struct Unpacker<'a> {
    root: &'a Path,
    privileged: bool,
    stats: LayerStats,
    /// Paths (relative to the root, resolved) this layer wrote: `.wh..wh..opq` keeps them.
    unpacked: HashSet<PathBuf>,
    /// Directories whose mode and times are applied at the end of the layer (their content
    /// changes their mtime; a read-only mode would stop an unprivileged unpack).
    dirs: Vec<DeferredDir>,
    /// The file copy buffer, reused across entries.
    buf: Vec<u8>,
    /// Lower-layer directories made writable for this layer (unprivileged only).
    restore: Vec<DeferredDir>,
    /// Where large files go to be written to disk in the background (snapshot builds).
    sync: Option<&'a crate::pipeline::Syncer>,
    /// Applying into a snapshot of its own, not onto the overlay of the layers below: what the
    /// result depends on in those layers.
    direct: Option<&'a mut DirectLog>,
}

/// A resolved parent directory.
struct Resolved {
    /// Its components below the root.
    comps: Vec<Vec<u8>>,
    /// Direct apply: whether the layers below may show through it.
    below: bool,
}

/// The overlayfs xattr of an opaque directory.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// An overlay whiteout: a 0/0 character device.
fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

/// What a layer applied into a snapshot of its own (in overlay form, while the layers below
/// it may still be in progress) assumed about those layers. Applied through an overlay of
/// them, the same layer would have seen their merged tree wherever its own snapshot has
/// nothing; [`settle`] checks these assumptions against that tree once it is complete and
/// does what the overlay's copy-up would have done.
#[derive(Debug, Default)]
pub(crate) struct DirectLog {
    /// Directories made where this layer deleted something (opaque here; through the overlay
    /// they are opaque only if the layers below have the name).
    opaque: HashSet<PathBuf>,
    /// Whiteouts made (through the overlay they are made only if the layers below have the
    /// name).
    whiteouts: Vec<PathBuf>,
    /// Directories made as parents where the layers below could have had the path: each must
    /// be absent below or a directory there (whose owner, mode, xattrs and times an overlay
    /// copy-up would have kept); its inode.
    implicit: std::collections::BTreeMap<PathBuf, u64>,
    /// Directories named by a directory entry where the layers below could have one (merged
    /// with it): the xattrs the layer set on them.
    named: std::collections::BTreeMap<PathBuf, Vec<Vec<u8>>>,
    /// Directories in which the layer created or removed entries (their mtime is the
    /// unpack's, through an overlay as well).
    modified: HashSet<PathBuf>,
    /// Directories the layer marked opaque (`.wh..wh..opq`) before it unpacked anything under
    /// them: marked here as containerd's overlay applier marks them; [`settle`] turns each
    /// into what applying the marker onto the overlay makes.
    markers: HashSet<PathBuf>,
}

struct DeferredDir {
    path: PathBuf,
    ino: u64,
    mode: u32,
    mtime: (i64, u32),
    atime: (i64, u32),
}

/// Unpacks one layer; with `diff`, the whole uncompressed stream (to its very end, past the
/// end-of-archive blocks) is hashed into it: the layer's diff ID.
fn unpack_layer_inner(
    reader: impl Read + Send,
    media_type: &str,
    dest: &Path,
    opts: &UnpackOptions,
    diff: Option<&mut sha2::Sha256>,
    sync: Option<&crate::pipeline::Syncer>,
    direct: Option<&mut DirectLog>,
) -> Result<LayerStats, UnpackError> {
    let r = decompressor(reader, media_type)?;
    fs::create_dir_all(dest).map_err(|e| UnpackError::Io {
        entry: "/".into(),
        op: format!("create {}", dest.display()),
        source: e,
    })?;
    // the decompressor runs on its own thread, ahead of the tar reader (crate::pipeline); the
    // diff ID is hashed on this side, over exactly the bytes the tar reader is handed
    let ((tx, back), chunks) = crate::pipeline::channel(diff);
    std::thread::scope(|s| {
        let producer = std::thread::Builder::new()
            .name("unpack-inflate".into())
            .spawn_scoped(s, move || crate::pipeline::produce(r, tx, back))
            .map_err(|e| UnpackError::Io {
                entry: "/".into(),
                op: "start the decompression thread".into(),
                source: e,
            })?;
        let ts = TarStream {
            r: Box::new(chunks),
            offset: 0,
            limit: opts.max_unpacked_bytes,
        };
        // `ts` (the reading end) is dropped when this returns: a decompressor still running
        // (an error or the bomb bound stopped the reader) stops at its next hand-over
        let r = unpack_tar(ts, dest, opts, sync, direct);
        if producer.join().is_err() {
            return Err(UnpackError::Decompress(io::Error::other(
                "the decompression thread panicked",
            )));
        }
        r
    })
}

/// Applies the tar stream `ts` onto `dest`, then reads `ts` to its end.
fn unpack_tar(
    mut ts: TarStream<'_>,
    dest: &Path,
    opts: &UnpackOptions,
    sync: Option<&crate::pipeline::Syncer>,
    direct: Option<&mut DirectLog>,
) -> Result<LayerStats, UnpackError> {
    let mut u = Unpacker {
        root: dest,
        privileged: opts.privileged(),
        stats: LayerStats::default(),
        unpacked: HashSet::new(),
        dirs: Vec::new(),
        buf: Vec::new(),
        restore: Vec::new(),
        sync,
        direct,
    };
    while let Some(e) = next_entry(&mut ts, &mut u.stats.entries, opts.max_entries)? {
        // only regular files carry data: a size on any other type is not followed by data
        // (Go archive/tar reader.go, isHeaderOnlyType)
        let data = if e.kind == Kind::File { e.size } else { 0 };
        let consumed = u.apply(&e, &mut ts)?;
        ts.skip(data - consumed.min(data), &e.name)?;
        ts.skip_padding(padding(data))?;
    }
    u.finish()?;
    // read to the end so the compression trailer (gzip CRC and length, zstd checksum) is
    // verified; what follows the end-of-archive blocks still counts toward the bound
    let mut rest = [0u8; 8192];
    while ts.read_full(&mut rest)? > 0 {}
    Ok(u.stats)
}

/// Reads headers up to the next entry (GNU long names and PAX records applied) and returns it;
/// its data, if any, is left in the stream. `None` at the end of the archive. `entries` counts
/// every header read, metadata headers included.
fn next_entry(
    ts: &mut TarStream<'_>,
    entries: &mut u64,
    max_entries: u64,
) -> Result<Option<Entry>, UnpackError> {
    let mut pax: Option<Pax> = None;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    loop {
        let offset = ts.offset;
        let mut h = [0u8; BLOCK];
        let n = ts.read_full(&mut h)?;
        if n == 0 {
            // a stream without the end-of-archive blocks: accepted, as Go's archive/tar does
            return Ok(None);
        }
        if n < BLOCK {
            return Err(UnpackError::Truncated {
                entry: "(header)".into(),
            });
        }
        if h.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        *entries += 1;
        if *entries > max_entries {
            return Err(UnpackError::TooManyEntries { limit: max_entries });
        }
        if !checksum_ok(&h) {
            return Err(UnpackError::Malformed {
                offset,
                reason: "header checksum does not match (not a tar stream?)".into(),
            });
        }
        let bad_num = |field: &str| UnpackError::Malformed {
            offset,
            reason: format!("{field} field is not a number"),
        };
        let typeflag = h[156];
        let hsize = numeric(&h[124..136]).ok_or_else(|| bad_num("size"))?;
        match typeflag {
            b'L' => {
                long_name = Some(
                    cstr(&ts.read_meta(hsize, MAX_PATH_LEN as u64, "gnu long name")?).to_vec(),
                );
                continue;
            }
            b'K' => {
                long_link = Some(
                    cstr(&ts.read_meta(hsize, MAX_PATH_LEN as u64, "gnu long link")?).to_vec(),
                );
                continue;
            }
            b'x' | b'X' => {
                let data = ts.read_meta(hsize, MAX_PAX_HEADER, "pax header")?;
                pax = Some(parse_pax(&data, offset)?);
                continue;
            }
            b'g' => {
                // global PAX headers hold defaults no layer tool relies on
                ts.read_meta(hsize, MAX_PAX_HEADER, "pax global header")?;
                continue;
            }
            _ => {}
        }
        let p = pax.take().unwrap_or_default();
        // Go archive/tar reader.go, Reader.next: a GNU long name or link takes priority over
        // PAX, which takes priority over the header (format.go, block.getFormat: "ustar\0" is
        // USTAR/PAX with a 155-byte prefix, or star, with a 131-byte one, when it ends in
        // "tar\0"; GNU and V7 headers have no prefix)
        let name = if let Some(n) = long_name.take().filter(|n| !n.is_empty()) {
            n
        } else if let Some(n) = p.path.clone() {
            n
        } else {
            let base = cstr(&h[0..100]);
            let prefix = match (&h[257..263], &h[508..512]) {
                (b"ustar\0", b"tar\0") => cstr(&h[345..476]),
                (b"ustar\0", _) => cstr(&h[345..500]),
                _ => &[][..],
            };
            if prefix.is_empty() {
                base.to_vec()
            } else {
                [prefix, b"/", base].concat()
            }
        };
        let link = long_link
            .take()
            .filter(|l| !l.is_empty())
            .or_else(|| p.linkpath.clone())
            .unwrap_or_else(|| cstr(&h[157..257]).to_vec());
        let size = p.size.unwrap_or(hsize);
        let kind = match typeflag {
            // Go archive/tar reader.go, Reader.next: "Legacy archives use trailing slash for
            // directories"
            b'\0' if name.ends_with(b"/") => Kind::Dir,
            b'0' | b'\0' | b'7' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            other => {
                return Err(UnpackError::UnsupportedType {
                    entry: lossy(&name),
                    typeflag: other as char,
                })
            }
        };
        let mtime = match p.mtime {
            Some(t) => t,
            None => (
                numeric_signed(&h[136..148]).ok_or_else(|| bad_num("mtime"))?,
                0,
            ),
        };
        let e = Entry {
            kind,
            mode: (numeric(&h[100..108]).ok_or_else(|| bad_num("mode"))? & 0o7777) as u32,
            uid: p
                .uid
                .map_or_else(|| numeric(&h[108..116]).ok_or_else(|| bad_num("uid")), Ok)?,
            gid: p
                .gid
                .map_or_else(|| numeric(&h[116..124]).ok_or_else(|| bad_num("gid")), Ok)?,
            size,
            mtime,
            atime: p.atime.unwrap_or(mtime),
            devmajor: numeric(&h[329..337]).unwrap_or(0),
            devminor: numeric(&h[337..345]).unwrap_or(0),
            xattrs: p.xattrs,
            name,
            link,
        };
        return Ok(Some(e));
    }
}

/// One entry of a tar stream as the unpacker reads it (GNU long names and PAX records applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntryInfo {
    /// The entry name, as stored (not yet checked or cleaned).
    pub name: Vec<u8>,
    /// The link name field: the target of a hard or symbolic link.
    pub link: Vec<u8>,
    /// The entry type.
    pub kind: TarEntryKind,
    /// The size field (only regular files are followed by that much data).
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
}

/// Lists the entries of an uncompressed tar stream with the unpacker's own header reader,
/// consuming entry data as [`unpack_layer`] does and writing nothing: the entries unpacking
/// would meet, up to the error (if any) that would stop it before it touches the file system.
pub fn list_tar(
    reader: impl Read,
    opts: &UnpackOptions,
) -> (Vec<TarEntryInfo>, Result<(), UnpackError>) {
    let mut ts = TarStream {
        r: Box::new(reader),
        offset: 0,
        limit: opts.max_unpacked_bytes,
    };
    let mut entries = 0;
    let mut out = Vec::new();
    loop {
        let e = match next_entry(&mut ts, &mut entries, opts.max_entries) {
            Ok(Some(e)) => e,
            Ok(None) => return (out, Ok(())),
            Err(err) => return (out, Err(err)),
        };
        let data = if e.kind == Kind::File { e.size } else { 0 };
        let skipped = ts
            .skip(data, &e.name)
            .and_then(|()| ts.skip_padding(padding(data)));
        out.push(TarEntryInfo {
            name: e.name,
            link: e.link,
            kind: e.kind,
            size: e.size,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
        });
        if let Err(err) = skipped {
            return (out, Err(err));
        }
    }
}

fn unsafe_entry(name: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::UnsafeEntry {
        entry: lossy(name),
        reason: reason.into(),
    }
}

/// Splits and checks an entry name: no `..`, bounded lengths; absolute names are relative to
/// the root. An empty result is the root itself.
fn clean_name(name: &[u8]) -> Result<Vec<Vec<u8>>, UnpackError> {
    if name.is_empty() {
        return Err(unsafe_entry(name, "empty name"));
    }
    if name.len() > MAX_PATH_LEN {
        return Err(unsafe_entry(
            &name[..64],
            format!("name is longer than {MAX_PATH_LEN} bytes"),
        ));
    }
    if name.contains(&0) {
        return Err(unsafe_entry(name, "name contains a NUL byte"));
    }
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(unsafe_entry(
                    name,
                    "name has a \"..\" component (it could escape the root)",
                ))
            }
            c if c.len() > MAX_NAME_LEN => {
                return Err(unsafe_entry(
                    name,
                    format!("a component is longer than {MAX_NAME_LEN} bytes"),
                ))
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn rel_path(comps: &[Vec<u8>]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in comps {
        p.push(OsStr::from_bytes(c));
    }
    p
}

impl Unpacker<'_> {
    fn io_err(&self, e: &Entry, op: impl Into<String>) -> impl FnOnce(io::Error) -> UnpackError {
        let entry = lossy(&e.name);
        let op = op.into();
        move |source| UnpackError::Io { entry, op, source }
    }

    /// Resolves `comps` inside the root: every component that is a symlink is followed with the
    /// root as `/` (`..` stops at the root), like `securejoin.SecureJoin`
    /// (cyphar/filepath-securejoin join.go). Missing directories are created when `create`;
    /// otherwise `None` is returned for a missing one.
    ///
    /// Applying a layer into its own snapshot ([`Unpacker::direct`]), the root holds only this
    /// layer's changes: a whiteout device reads as absent (a directory made there is opaque, as
    /// overlayfs makes it), and a component missing where the layers below may show through is
    /// created and noted ([`DirectLog::implicit`]) for [`settle`] to check against them, or, when
    /// not `create`, ends the direct apply ([`UnpackError::NeedsLowerLayers`]).
    fn resolve(
        &mut self,
        name: &[u8],
        comps: &[Vec<u8>],
        create: bool,
    ) -> Result<Option<Resolved>, UnpackError> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        // direct apply: whether the layers below may show through out[..=i]
        let mut below: Vec<bool> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut follows = 0usize;
        let mut len = 0usize;
        while let Some(c) = queue.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if let Some(last) = out.pop() {
                        len -= last.len() + 1;
                        below.pop();
                    }
                    continue;
                }
                _ => {}
            }
            len += c.len() + 1;
            if len > MAX_PATH_LEN {
                return Err(unsafe_entry(
                    name,
                    format!("resolved path is longer than {MAX_PATH_LEN} bytes"),
                ));
            }
            let p = self.root.join(rel_path(&out)).join(OsStr::from_bytes(&c));
            let shows = self.direct.is_some() && below.last().copied().unwrap_or(true);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    len -= c.len() + 1;
                    follows += 1;
                    if follows > MAX_SYMLINK_FOLLOWS {
                        return Err(unsafe_entry(
                            name,
                            format!("more than {MAX_SYMLINK_FOLLOWS} symlinks in its path"),
                        ));
                    }
                    let target = fs::read_link(&p).map_err(|source| UnpackError::Io {
                        entry: lossy(name),
                        op: format!("read symlink {}", p.display()),
                        source,
                    })?;
                    let t = target.into_os_string().into_vec();
                    if t.starts_with(b"/") {
                        out.clear();
                        below.clear();
                        len = 0;
                    }
                    for part in t.split(|&b| b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                Ok(m) if m.is_dir() => {
                    let rel = rel_path(&out).join(OsStr::from_bytes(&c));
                    let hides = self
                        .direct
                        .as_ref()
                        .is_some_and(|d| d.opaque.contains(&rel) || d.markers.contains(&rel));
                    below.push(shows && !hides);
                    out.push(c);
                }
                Ok(m) if self.direct.is_some() && is_whiteout(&m) => {
                    // deleted by this layer: absent, and nothing below shows through
                    if !create {
                        return Ok(None);
                    }
                    let rel = rel_path(&out).join(OsStr::from_bytes(&c));
                    fs::remove_file(&p)
                        .and_then(|()| fs::DirBuilder::new().mode(0o755).create(&p))
                        .map_err(|source| UnpackError::Io {
                            entry: lossy(name),
                            op: format!("create parent directory {}", p.display()),
                            source,
                        })?;
                    if let Some(d) = self.direct.as_deref_mut() {
                        d.modified.insert(rel_path(&out));
                    }
                    self.make_opaque(name, &p, rel)?;
                    below.push(false);
                    out.push(c);
                }
                Ok(_) => {
                    return Err(unsafe_entry(
                        name,
                        format!(
                            "parent {} is not a directory",
                            rel_path(&out).join(OsStr::from_bytes(&c)).display()
                        ),
                    ))
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    let rel = rel_path(&out).join(OsStr::from_bytes(&c));
                    if shows && !create {
                        return Err(UnpackError::NeedsLowerLayers {
                            entry: lossy(name),
                            path: rel.display().to_string(),
                        });
                    }
                    if !create {
                        return Ok(None);
                    }
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&p)
                        .map_err(|source| UnpackError::Io {
                            entry: lossy(name),
                            op: format!("create parent directory {}", p.display()),
                            source,
                        })?;
                    if let Some(d) = self.direct.as_deref_mut() {
                        if shows {
                            let ino = fs::symlink_metadata(&p).map(|m| m.ino()).unwrap_or(0);
                            d.implicit.insert(rel, ino);
                        } else {
                            d.modified.insert(rel_path(&out));
                        }
                    }
                    below.push(shows);
                    out.push(c);
                }
                Err(source) => {
                    return Err(UnpackError::Io {
                        entry: lossy(name),
                        op: format!("stat {}", p.display()),
                        source,
                    })
                }
            }
        }
        Ok(Some(Resolved {
            below: self.direct.is_some() && below.last().copied().unwrap_or(true),
            comps: out,
        }))
    }

    /// `.wh..wh..opq` in a direct apply. containerd's overlay applier only marks the directory
    /// (archive/tar_opts_linux.go, `OverlayConvertWhiteout`: `Setxattr(dir,
    /// "trusted.overlay.opaque", "y")`), which needs nothing from the layers below. Applied
    /// onto their overlay instead, the marker removes every entry below that the layer did not
    /// unpack before it, each removal leaving a whiteout: when the layer unpacked nothing under
    /// the directory yet (the order image builders write: the directory, its marker, then its
    /// entries), that is every name the layers below have there, so [`settle`] can make the
    /// same snapshot from their merged tree. Otherwise, or when the directory is not one the
    /// layer named itself, the layer is applied onto the overlay
    /// ([`UnpackError::NeedsLowerLayers`]).
    fn opaque_direct(&mut self, e: &Entry, parent: &[Vec<u8>]) -> Result<u64, UnpackError> {
        let needs = || UnpackError::NeedsLowerLayers {
            entry: lossy(&e.name),
            path: lossy(parent.last().map_or(&b"/"[..], |c| c.as_slice())),
        };
        let Some(Resolved { comps: dir, .. }) = self.resolve(&e.name, parent, false)? else {
            return Err(needs());
        };
        let rel = rel_path(&dir);
        let Some(d) = self.direct.as_deref() else {
            return Err(needs());
        };
        let under = |p: &Path| p != rel && p.starts_with(&rel);
        let simple = !dir.is_empty()
            && self.unpacked.contains(&rel)
            && !self.unpacked.iter().any(|p| under(p))
            && !d.opaque.contains(&rel)
            && !d.implicit.contains_key(&rel)
            && !d.markers.contains(&rel)
            && !d.opaque.iter().any(|p| under(p))
            && !d.implicit.keys().any(|p| under(p))
            && !d.named.keys().any(|p| under(p))
            && !d.whiteouts.iter().any(|p| under(p))
            && fs::symlink_metadata(self.root.join(&rel)).is_ok_and(|m| m.is_dir());
        if !simple {
            return Err(needs());
        }
        let p = self.root.join(&rel);
        rustix::fs::lsetxattr(&p, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty()).map_err(
            |err| UnpackError::Io {
                entry: lossy(&e.name),
                op: format!("mark {} opaque", p.display()),
                source: err.into(),
            },
        )?;
        if let Some(d) = self.direct.as_deref_mut() {
            d.markers.insert(rel);
        }
        self.stats.opaque_dirs += 1;
        Ok(0)
    }

    /// Marks a directory of a direct apply opaque (`trusted.overlay.opaque=y`, what containerd's
    /// `archive.OverlayConvertWhiteout` writes for `.wh..wh..opq` and what overlayfs writes for
    /// a directory made where a lower entry was deleted).
    fn make_opaque(&mut self, name: &[u8], p: &Path, rel: PathBuf) -> Result<(), UnpackError> {
        rustix::fs::lsetxattr(p, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty()).map_err(
            |e| UnpackError::Io {
                entry: lossy(name),
                op: format!("mark {} opaque", p.display()),
                source: e.into(),
            },
        )?;
        if let Some(d) = self.direct.as_deref_mut() {
            d.modified.insert(rel.clone());
            d.opaque.insert(rel);
        }
        Ok(())
    }

    /// Applies one entry; returns how many data bytes it consumed.
    fn apply(&mut self, e: &Entry, ts: &mut TarStream<'_>) -> Result<u64, UnpackError> {
        let comps = clean_name(&e.name)?;
        if comps.first().is_some_and(|c| c.starts_with(b".wh..wh.")) {
            // aufs metadata (.wh..wh.plnk, .wh..wh.aufs, .wh..wh.orph): never unpacked
            // (moby pkg/archive/diff.go, UnpackLayer: "Skip AUFS metadata dirs")
            return Ok(0);
        }
        let Some((base, parent)) = comps.split_last() else {
            // the root itself: containerd ignores it ("resolved to root")
            return Ok(0);
        };
        if let Some(c) = parent
            .iter()
            .find(|c| c.starts_with(WHITEOUT_PREFIX.as_bytes()))
        {
            return Err(unsafe_entry(
                &e.name,
                format!("directory component {:?} is a whiteout name", lossy(c)),
            ));
        }
        let base_s = base.as_slice();
        // containerd archive/tar.go applyNaive: whiteouts
        if base_s == WHITEOUT_OPAQUE.as_bytes() {
            if self.direct.is_some() {
                return self.opaque_direct(e, parent);
            }
            let Some(Resolved { comps: dir, .. }) = self.resolve(&e.name, parent, true)? else {
                return Ok(0);
            };
            self.opaque(e, &dir)?;
            self.stats.opaque_dirs += 1;
            return Ok(0);
        }
        if let Some(orig) = base_s.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if orig.is_empty() || orig == b"." || orig == b".." {
                return Err(unsafe_entry(
                    &e.name,
                    "whiteout of \".\", \"..\" or nothing",
                ));
            }
            if orig.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): never unpacked, as in Docker
                return Ok(0);
            }
            self.stats.whiteouts += 1;
            let Some(Resolved { comps: dir, below }) = self.resolve(&e.name, parent, false)? else {
                return Ok(0);
            };
            self.ensure_writable(e, &dir)?;
            let target = self.root.join(rel_path(&dir)).join(OsStr::from_bytes(orig));
            remove_any(&target)
                .map_err(self.io_err(e, format!("apply whiteout to {}", target.display())))?;
            if let Some(d) = self.direct.as_deref_mut() {
                d.modified.insert(rel_path(&dir));
                if below {
                    // an overlay whiteout hides the name in the layers below (containerd
                    // archive.OverlayConvertWhiteout: mknod c 0 0); settle keeps it only where
                    // they have the name
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &target,
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::Mode::empty(),
                        0,
                    )
                    .map_err(io::Error::from)
                    .map_err(self.io_err(e, format!("create whiteout {}", target.display())))?;
                    if let Some(d) = self.direct.as_deref_mut() {
                        d.whiteouts
                            .push(rel_path(&dir).join(OsStr::from_bytes(orig)));
                    }
                }
            }
            return Ok(0);
        }
        let Some(Resolved { comps: dir, below }) = self.resolve(&e.name, parent, true)? else {
            return Ok(0);
        };
        self.ensure_writable(e, &dir)?;
        let rel = rel_path(&dir).join(OsStr::from_bytes(base));
        let path = self.root.join(&rel);
        // containerd createTarFile: replace anything there except dir-onto-dir (merged)
        let existing = fs::symlink_metadata(&path).ok();
        let mut replaced = false;
        if let Some(m) = &existing {
            if !(m.is_dir() && e.kind == Kind::Dir) {
                remove_any(&path).map_err(self.io_err(e, format!("replace {}", path.display())))?;
                replaced = true;
            }
        }
        self.unpacked.insert(rel.clone());
        if e.kind != Kind::Dir {
            if let Some(d) = self.direct.as_deref_mut() {
                d.modified.insert(rel_path(&dir));
            }
        }
        let mut consumed = 0;
        match e.kind {
            Kind::Dir => {
                let was_dir = existing.as_ref().is_some_and(|m| m.is_dir());
                if !was_dir {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&path)
                        .map_err(self.io_err(e, "create directory"))?;
                }
                if let Some(d) = self.direct.as_deref_mut() {
                    let keys = e.xattrs.iter().map(|(k, _)| k.clone());
                    if replaced {
                        // a directory made where this layer deleted something: overlayfs makes
                        // it opaque
                        d.modified.insert(rel_path(&dir));
                        self.make_opaque(&e.name, &path, rel.clone())?;
                    } else if d.named.contains_key(&rel)
                        || d.implicit.contains_key(&rel)
                        || (!was_dir && below)
                    {
                        // merged with a directory below, if there is one (settle)
                        d.named.entry(rel.clone()).or_default().extend(keys);
                    } else if !was_dir {
                        d.modified.insert(rel_path(&dir));
                    }
                }
                self.stats.dirs += 1;
            }
            Kind::File => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc_o_nofollow())
                    .open(&path)
                    .map_err(self.io_err(e, "create file"))?;
                let mut buf = std::mem::take(&mut self.buf);
                buf.resize(COPY_BUFFER, 0);
                let mut left = e.size;
                while left > 0 {
                    let k = left.min(buf.len() as u64) as usize;
                    ts.read_exact_or_truncated(&mut buf[..k], &e.name)?;
                    io::Write::write_all(&mut f, &buf[..k])
                        .map_err(self.io_err(e, "write file"))?;
                    left -= k as u64;
                }
                self.buf = buf;
                if let Some(sync) = self.sync {
                    if e.size >= crate::pipeline::SYNC_AT_LEAST {
                        sync.submit(f);
                    }
                }
                consumed = e.size;
                self.stats.files += 1;
                self.stats.bytes += e.size;
            }
            Kind::Symlink => {
                if e.link.len() > MAX_PATH_LEN || e.link.is_empty() {
                    return Err(unsafe_entry(&e.name, "symlink target is empty or too long"));
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&e.link), &path)
                    .map_err(self.io_err(e, "create symlink"))?;
                self.stats.symlinks += 1;
            }
            Kind::HardLink => {
                let lcomps = clean_name(&e.link).map_err(|err| match err {
                    UnpackError::UnsafeEntry { reason, .. } => unsafe_entry(
                        &e.name,
                        format!("hard link target {:?}: {reason}", lossy(&e.link)),
                    ),
                    other => other,
                })?;
                let Some((lbase, lparent)) = lcomps.split_last() else {
                    return Err(unsafe_entry(&e.name, "hard link to the root"));
                };
                // containerd hardlinkRootPath: the parent resolves in the root, the last
                // component is linked as it is (a link to a symlink links the symlink)
                let resolved = self.resolve(&e.name, lparent, false)?;
                let direct = self.direct.is_some();
                if let Some(r) = resolved.as_ref().filter(|r| r.below) {
                    let t = self
                        .root
                        .join(rel_path(&r.comps))
                        .join(OsStr::from_bytes(lbase));
                    if fs::symlink_metadata(&t).is_err() {
                        // the target may be a file of a layer below
                        return Err(UnpackError::NeedsLowerLayers {
                            entry: lossy(&e.name),
                            path: lossy(&e.link),
                        });
                    }
                }
                let target = resolved.map(|r| {
                    self.root
                        .join(rel_path(&r.comps))
                        .join(OsStr::from_bytes(lbase))
                });
                let Some(target) = target.filter(|t| {
                    fs::symlink_metadata(t)
                        .is_ok_and(|m| !(m.is_dir() || (direct && is_whiteout(&m))))
                }) else {
                    return Err(unsafe_entry(
                        &e.name,
                        format!(
                            "hard link target {:?} is not an earlier non-directory entry",
                            lossy(&e.link)
                        ),
                    ));
                };
                fs::hard_link(&target, &path).map_err(self.io_err(e, "create hard link"))?;
                self.stats.hardlinks += 1;
                return Ok(0);
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                if !self.privileged {
                    self.unpacked.remove(&rel);
                    self.stats.skipped_devices += 1;
                    return Ok(0);
                }
                let ft = match e.kind {
                    Kind::Char => rustix::fs::FileType::CharacterDevice,
                    Kind::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let major = u32::try_from(e.devmajor)
                    .map_err(|_| unsafe_entry(&e.name, "device major out of range"))?;
                let minor = u32::try_from(e.devminor)
                    .map_err(|_| unsafe_entry(&e.name, "device minor out of range"))?;
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &path,
                    ft,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(io::Error::from)
                .map_err(self.io_err(e, "create device node"))?;
                self.stats.devices += 1;
            }
        }
        self.metadata(e, &path)?;
        Ok(consumed)
    }

    /// Ownership, mode, xattrs and times, in that order: chown clears setuid bits (containerd
    /// createTarFile: "must happen after chown").
    fn metadata(&mut self, e: &Entry, path: &Path) -> Result<(), UnpackError> {
        if self.privileged {
            let uid =
                u32::try_from(e.uid).map_err(|_| unsafe_entry(&e.name, "uid out of range"))?;
            let gid =
                u32::try_from(e.gid).map_err(|_| unsafe_entry(&e.name, "gid out of range"))?;
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(self.io_err(e, "chown"))?;
        }
        if e.kind == Kind::Dir {
            let ino = fs::symlink_metadata(path).map(|m| m.ino()).unwrap_or(0);
            self.dirs.push(DeferredDir {
                path: path.to_path_buf(),
                ino,
                mode: e.mode,
                mtime: e.mtime,
                atime: e.atime,
            });
        } else if e.kind != Kind::Symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(e.mode))
                .map_err(self.io_err(e, "chmod"))?;
        }
        if self.privileged {
            for (k, v) in &e.xattrs {
                let name = OsStr::from_bytes(k);
                match rustix::fs::lsetxattr(path, name, v, rustix::fs::XattrFlags::empty()) {
                    Ok(()) => {}
                    // containerd: xattrs the filesystem does not support are skipped
                    Err(rustix::io::Errno::NOTSUP) => {}
                    Err(rustix::io::Errno::PERM) if e.kind == Kind::Symlink => {}
                    Err(err) => {
                        return Err(UnpackError::Io {
                            entry: lossy(&e.name),
                            op: format!("set xattr {}", lossy(k)),
                            source: err.into(),
                        })
                    }
                }
            }
        }
        if e.kind != Kind::Dir {
            set_times(path, e.mtime, e.atime).map_err(self.io_err(e, "set times"))?;
        }
        Ok(())
    }

    /// containerd applyNaive, `.wh..wh..opq`: removes everything under `dir` this layer did not
    /// unpack.
    fn opaque(&mut self, e: &Entry, dir: &[Vec<u8>]) -> Result<(), UnpackError> {
        let rel = rel_path(dir);
        let mut stack = vec![rel];
        while let Some(d) = stack.pop() {
            let abs = self.root.join(&d);
            let rd = match fs::read_dir(&abs) {
                Ok(rd) => rd,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(self.io_err(e, format!("list {}", abs.display()))(err)),
            };
            for ent in rd {
                let ent = ent.map_err(self.io_err(e, format!("list {}", abs.display())))?;
                let child = d.join(ent.file_name());
                if self.unpacked.contains(&child) {
                    if ent.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(child);
                    }
                    continue;
                }
                let p = self.root.join(&child);
                remove_any(&p).map_err(self.io_err(e, format!("remove {}", p.display())))?;
            }
        }
        Ok(())
    }

    /// Unprivileged, a directory a lower layer made read-only (0555) cannot take new entries:
    /// give the owner rwx until the end of the layer, then restore the mode (umoci
    /// oci/layer/unpriv.go, `Wrap`).
    fn ensure_writable(&mut self, e: &Entry, dir: &[Vec<u8>]) -> Result<(), UnpackError> {
        if self.privileged {
            return Ok(());
        }
        let p = self.root.join(rel_path(dir));
        let m =
            fs::symlink_metadata(&p).map_err(self.io_err(e, format!("stat {}", p.display())))?;
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o700 == 0o700 || self.restore.iter().any(|r| r.ino == m.ino()) {
            return Ok(());
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o700))
            .map_err(self.io_err(e, format!("make {} writable", p.display())))?;
        self.restore.push(DeferredDir {
            path: p,
            ino: m.ino(),
            mode,
            mtime: (m.mtime(), 0),
            atime: (m.atime(), 0),
        });
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UnpackError> {
        // lower-layer directories opened up for this layer get their modes back (the layer's
        // own directories then get theirs, below)
        for r in self.restore.drain(..).rev() {
            if fs::symlink_metadata(&r.path).is_ok_and(|m| m.is_dir() && m.ino() == r.ino) {
                fs::set_permissions(&r.path, fs::Permissions::from_mode(r.mode)).map_err(
                    |source| UnpackError::Io {
                        entry: r.path.display().to_string(),
                        op: "restore mode".into(),
                        source,
                    },
                )?;
            }
        }
        // deepest last-written first, so a parent's times are set after its children changed it
        for DeferredDir {
            path,
            ino,
            mode,
            mtime,
            atime,
        } in self.dirs.drain(..).rev()
        {
            let Ok(m) = fs::symlink_metadata(&path) else {
                continue; // removed later in the layer
            };
            if !m.is_dir() || m.ino() != ino {
                continue; // replaced later in the layer
            }
            let err = |op: &str| {
                let op = op.to_string();
                let entry = path.display().to_string();
                move |source| UnpackError::Io { entry, op, source }
            };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(err("chmod"))?;
            set_times(&path, mtime, atime).map_err(err("set times"))?;
        }
        Ok(())
    }
}

/// What the merged tree of the layers below holds at a path.
enum Below {
    /// Nothing: absent, whited out, or under something that is not a directory.
    Absent,
    /// A directory.
    Dir(fs::Metadata),
    /// Anything else.
    Other,
}

/// Looks `rel` up in `lower` (the merged tree of the layers below, or the one layer) as
/// overlayfs does: no symlink is followed, a non-directory ends the lookup.
fn below_at(lower: &Path, rel: &Path) -> io::Result<Below> {
    let comps: Vec<_> = rel.components().collect();
    let mut p = lower.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        let m = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Below::Absent),
            Err(e) => return Err(e),
        };
        let last = i + 1 == comps.len();
        if m.is_dir() {
            if last {
                return Ok(Below::Dir(m));
            }
        } else if last && !is_whiteout(&m) {
            return Ok(Below::Other);
        } else {
            return Ok(Below::Absent);
        }
    }
    Ok(Below::Absent)
}

fn mtime_of(m: &fs::Metadata) -> (i64, u32) {
    (m.mtime(), u32::try_from(m.mtime_nsec()).unwrap_or(0))
}

fn atime_of(m: &fs::Metadata) -> (i64, u32) {
    (m.atime(), u32::try_from(m.atime_nsec()).unwrap_or(0))
}

/// The extended attributes of `p` (not followed), overlayfs' own left out.
fn xattrs_of(p: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    // XATTR_LIST_MAX and XATTR_SIZE_MAX (linux/limits.h)
    let mut names = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(p, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; 65536];
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        match rustix::fs::lgetxattr(p, OsStr::from_bytes(name), &mut value) {
            Ok(k) => out.push((name.to_vec(), value[..k].to_vec())),
            // removed since the listing
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Completes a layer applied into its own snapshot `upper` once the layers below it are
/// complete (`lower`: their merged tree, or the one layer below), so that the snapshot is what
/// applying the layer onto the overlay of those layers makes of it, as far as the overlay
/// shows it. Returns false, changing nothing, when it cannot be: a parent directory the layer
/// made is a symlink or a file below (through the overlay the symlink would have been
/// followed, the file refused); the caller then applies the layer onto the overlay instead.
///
/// Otherwise each directory the layer made as a parent where the layers below have one gets
/// that directory's owner, mode, xattrs and (unless the layer changed its entries) times, and
/// each directory the layer named gets the xattrs it has below that the layer did not set:
/// what an overlay copy-up keeps (containerd archive/tar.go `mkparent` copies the same from
/// the parents: `copyDirInfo`, `copyUpXAttrs`).
pub(crate) fn settle(upper: &Path, lower: &Path, log: &DirectLog) -> Result<bool> {
    let io_err = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e: io::Error| Error::io(what, e)
    };
    let mut below: std::collections::BTreeMap<&Path, Below> = Default::default();
    for rel in log.implicit.keys().chain(log.named.keys()) {
        if below.contains_key(rel.as_path()) {
            continue;
        }
        let b = below_at(lower, rel).map_err(io_err("stat", &lower.join(rel)))?;
        if matches!(b, Below::Other) && log.implicit.contains_key(rel) {
            return Ok(false);
        }
        below.insert(rel, b);
    }
    // Overlay whiteouts and opaque directories as the overlay makes them: only where the
    // layers below show the name, which an opaque directory above hides (parents first)
    let mut opaque: std::collections::BTreeSet<&Path> = Default::default();
    let shown = |rel: &Path, opaque: &std::collections::BTreeSet<&Path>| -> io::Result<bool> {
        if rel.ancestors().skip(1).any(|a| opaque.contains(a)) {
            return Ok(false);
        }
        Ok(!matches!(below_at(lower, rel)?, Below::Absent))
    };
    let candidates: std::collections::BTreeSet<&Path> = log
        .opaque
        .iter()
        .chain(log.named.keys())
        .map(PathBuf::as_path)
        .collect();
    for rel in candidates {
        let p = upper.join(rel);
        if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let made_over_deleted = log.opaque.contains(rel);
        // a directory named where a non-directory is below replaced it
        let over_other = !made_over_deleted
            && matches!(below.get(rel), Some(Below::Other))
            && !rel.ancestors().skip(1).any(|a| opaque.contains(a));
        if over_other || (made_over_deleted && shown(rel, &opaque).map_err(io_err("stat", &p))?) {
            if over_other {
                rustix::fs::lsetxattr(&p, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
                    .map_err(|e| io_err("mark opaque", &p)(e.into()))?;
            }
            opaque.insert(rel);
        } else if made_over_deleted {
            match rustix::fs::lremovexattr(&p, OPAQUE_XATTR) {
                Ok(()) | Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(io_err("unmark opaque", &p)(e.into())),
            }
        }
    }
    for rel in &log.whiteouts {
        let p = upper.join(rel);
        if fs::symlink_metadata(&p).is_ok_and(|m| is_whiteout(&m))
            && !shown(rel, &opaque).map_err(io_err("stat", &p))?
        {
            // the directory keeps the times the layer gave it
            let parent = p.parent().unwrap_or(upper);
            let pm = fs::symlink_metadata(parent).map_err(io_err("stat", parent))?;
            fs::remove_file(&p).map_err(io_err("remove", &p))?;
            set_times(parent, mtime_of(&pm), atime_of(&pm)).map_err(io_err("set times", parent))?;
        }
    }
    // a directory made where none is below is a new entry of its parent
    let mut modified: HashSet<&Path> = log.modified.iter().map(PathBuf::as_path).collect();
    for (rel, b) in &below {
        if !matches!(b, Below::Dir(_)) {
            if let Some(parent) = rel.parent() {
                modified.insert(parent);
            }
        }
    }
    for (rel, b) in &below {
        let Below::Dir(lm) = b else {
            continue;
        };
        let p = upper.join(rel);
        let Ok(um) = fs::symlink_metadata(&p) else {
            continue; // removed later in the layer
        };
        if !um.is_dir() {
            continue;
        }
        let named = log.named.get(*rel);
        if named.is_none() {
            if log.implicit.get(*rel) != Some(&um.ino()) {
                continue; // replaced later in the layer
            }
            std::os::unix::fs::lchown(&p, Some(lm.uid()), Some(lm.gid()))
                .map_err(io_err("chown", &p))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(lm.mode() & 0o7777))
                .map_err(io_err("chmod", &p))?;
        }
        let from = lower.join(rel);
        for (k, v) in xattrs_of(&from).map_err(io_err("read xattrs of", &from))? {
            if named.is_some_and(|set| set.contains(&k)) {
                continue;
            }
            match rustix::fs::lsetxattr(
                &p,
                OsStr::from_bytes(&k),
                &v,
                rustix::fs::XattrFlags::empty(),
            ) {
                Ok(()) | Err(rustix::io::Errno::NOTSUP) => {}
                Err(e) => return Err(io_err("set xattr on", &p)(e.into())),
            }
        }
        if named.is_none() && !modified.contains(*rel) {
            set_times(&p, mtime_of(lm), atime_of(lm)).map_err(io_err("set times", &p))?;
        }
    }
    // `.wh..wh..opq` applied apart ([`Unpacker::opaque_direct`]). Onto the overlay, the marker
    // removes each name the layers below show in the directory (a whiteout each), a directory
    // the layer then makes over one of them is opaque (overlayfs marks a directory made over
    // a whiteout), and the directory itself is not marked. Parents first.
    let markers: std::collections::BTreeSet<&Path> =
        log.markers.iter().map(PathBuf::as_path).collect();
    for rel in &markers {
        if rel.ancestors().skip(1).any(|a| markers.contains(a)) {
            // a marker inside a marked directory: applied onto the overlay instead
            return Ok(false);
        }
    }
    for rel in markers {
        let p = upper.join(rel);
        let Ok(pm) = fs::symlink_metadata(&p) else {
            continue; // removed later in the layer
        };
        if !pm.is_dir() {
            continue;
        }
        let hidden = rel.ancestors().skip(1).any(|a| opaque.contains(a));
        let lower_dir = !hidden
            && matches!(
                below_at(lower, rel).map_err(io_err("stat", &p))?,
                Below::Dir(_)
            );
        if lower_dir {
            let from = lower.join(rel);
            for ent in fs::read_dir(&from).map_err(io_err("list", &from))? {
                let ent = ent.map_err(io_err("list", &from))?;
                let child = rel.join(ent.file_name());
                if matches!(
                    below_at(lower, &child).map_err(io_err("stat", &from))?,
                    Below::Absent
                ) {
                    continue;
                }
                let up = upper.join(&child);
                match fs::symlink_metadata(&up) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &up,
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::Mode::empty(),
                        0,
                    )
                    .map_err(|e| io_err("create whiteout", &up)(e.into()))?,
                    Err(e) => return Err(io_err("stat", &up)(e)),
                    Ok(m) if m.is_dir() => rustix::fs::lsetxattr(
                        &up,
                        OPAQUE_XATTR,
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(|e| io_err("mark opaque", &up)(e.into()))?,
                    Ok(_) => {}
                }
            }
        }
        if lower_dir || !opaque.contains(rel) {
            match rustix::fs::lremovexattr(&p, OPAQUE_XATTR) {
                Ok(()) | Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(io_err("unmark opaque", &p)(e.into())),
            }
        }
        // the directory keeps the times the layer gave it
        set_times(&p, mtime_of(&pm), atime_of(&pm)).map_err(io_err("set times", &p))?;
    }
    Ok(true)
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn set_times(path: &Path, mtime: (i64, u32), atime: (i64, u32)) -> io::Result<()> {
    let ts = |t: (i64, u32)| rustix::fs::Timespec {
        tv_sec: t.0,
        tv_nsec: t.1.into(),
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Removes a file, symlink or directory tree without following symlinks.
fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A discarded layer's download committed into `blobs/` between the look in `blobs/` and
    /// the look in `ingest/` is found, not reported discarded; one in neither place is.
    #[test]
    fn a_download_committed_between_the_two_looks_is_found() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let data = b"layer bytes".to_vec();
        let d = Digest::sha256_of(&data);
        std::fs::write(store.ingest_path(&d), &data).unwrap();
        let layer = crate::LayerRecord {
            digest: d.to_string(),
            media_type: String::new(),
            size: data.len() as u64,
            diff_id: None,
            discarded: true,
        };
        let mut looks = 0;
        let mut open = |p: &Path| {
            let r = File::open(p);
            looks += 1;
            if looks == 1 {
                // an ordinary pull commits the download right after this look
                std::fs::rename(store.ingest_path(&d), store.blob_path(&d)).unwrap();
            }
            r
        };
        let (_, at) = open_layer_blob(&store, "img", &layer, &d, &mut open).unwrap();
        assert_eq!(at, store.blob_path(&d));

        std::fs::remove_file(store.blob_path(&d)).unwrap();
        let e = open_layer_blob(&store, "img", &layer, &d, &mut |p| File::open(p)).unwrap_err();
        assert!(matches!(e, Error::LayerDiscarded { .. }), "{e}");
    }
}
