//! The node image store: content-addressed blobs, image and pull records, cross-process
//! single-flight downloads, garbage collection, and layer unpacking.
//!
//! # Layout under the root directory
//!
//! ```text
//! blobs/sha256/<hex>        verified content, only ever created by rename (never partial)
//! ingest/<hex>.partial      a download in progress (owned by the holder of the blob's lock)
//! ingest/<pid>.<token>.<n>.tmp   small blobs and records being written, a pull's own downloads
//! locks/sha256/<hex>.lock   per-blob lock files (flock)
//! locks/owners/<pid>.<token>.lock   held (shared) by each process that has the store open
//! locks/store.lock          records and garbage collection
//! locks/gc.lock             pull leases (shared) against garbage collection (exclusive)
//! images/<sha256(name)>.json   image records
//! pulls/<hex>.json          pull records per image manifest (who pulled it, with what)
//! sources/<hex>             the repositories a blob was fetched from, one per line
//! ```
//!
//! # Crash safety and concurrency
//!
//! Every file that other readers see is written to a temporary name, `fsync`ed, and renamed
//! into place, then the directory is synced: a `kill -9` at any point leaves either the old or
//! the new state. Locks are `flock(2)` locks, which the kernel releases when the holding process
//! dies, so a killed pull never leaves a stale lock; its partial file stays in `ingest/`, where
//! the next writer of that blob resumes it (the registry client re-hashes it and requests the
//! rest with `Range`) and [`Store::gc`] removes it when nobody holds the blob's lock.
//!
//! Downloads are single-flight across threads and processes: a writer takes the blob's lock
//! ([`Store::lock_blob`]), checks [`Store::has_blob`] again (someone may have just finished),
//! downloads into [`Store::ingest_path`] and [`Store::commit_blob`]s it.
//!
//! A pull holds a [`Store::pull_lease`] from its first blob to its image record, so that
//! [`Store::gc`] never deletes a blob that is stored but not yet referenced.
//!
//! The store never reads the clock (times are passed in) and never sees credentials: pull
//! records carry the caller's credential hash only.
//!
//! Digests are [`Digest`]s, validated on parse (algorithm and hex length), so a digest can never
//! name a path outside the store.
//!
//! # Limits
//!
//! - Unpacking is path-based with an in-root resolver (symlinks in parent components are
//!   resolved inside the root, final components are never followed), not fd-based (`openat2`):
//!   safe against hostile layers, not against another process rewriting the rootfs during the
//!   unpack.
//! - Rootless unpack opens a read-only lower-layer parent directory (u+rwx) for the layer and
//!   restores it afterwards (as umoci does unprivileged); removing a whole read-only tree (the
//!   whiteout of a directory whose subdirectories are 0555) can still fail with `EACCES` when
//!   not root.
//! - Snapshot leases ([`Store::snapshot_lease`]) are flocks held by a process: a node agent that
//!   restarts while containers run must take them again before anything runs [`Store::gc`].

#![forbid(unsafe_code)]

mod owner;
mod pipeline;
mod snapshot;
pub mod timings;
mod unpack;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kubepull_core::reference::Digest;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

pub use snapshot::{
    chain_keys, mount_rootfs, overlay_lowerdir, snapshot_support, unmount_rootfs, LayerInput,
    SnapshotChain, SnapshotError, SnapshotLease, MAX_SNAPSHOT_LAYERS,
};
pub use unpack::{
    list_tar, unpack_image, unpack_layer, LayerStats, TarEntryInfo, TarEntryKind, UnpackError,
    UnpackOptions, UnpackStats, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_BYTES, MAX_NAME_LEN,
    MAX_PATH_LEN, MAX_PAX_HEADER, MAX_SYMLINK_FOLLOWS,
};

/// The largest image or pull record read (records are a few KiB).
pub const MAX_RECORD_SIZE: u64 = 4 << 20;

/// Errors from the store. Messages name the path and never contain credentials (the store only
/// ever sees credential hashes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Content did not hash to its digest; nothing was stored.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The expected digest.
        expected: String,
        /// What the content hashed to.
        actual: String,
    },
    /// A blob is larger than the caller allows.
    #[error("blob {digest} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// The blob.
        digest: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A blob is not in the store.
    #[error("blob {0} is not in the store")]
    BlobNotFound(String),
    /// A layer blob the image's record does not keep ([`LayerRecord::discarded`]) is needed
    /// and is not in the store.
    #[error(
        "image {image}: layer {layer} was discarded after it was unpacked \
         (pulled with --discard-unpacked-layers) and its snapshot is not in the store; \
         `kubepull pull --no-unpack` of the image fetches its layer blobs again and keeps them"
    )]
    LayerDiscarded {
        /// The image name.
        image: String,
        /// The layer blob digest.
        layer: String,
    },
    /// [`Store::commit_blob`] was given the lock of another blob.
    #[error("commit of blob {digest} under the lock of {held}: take lock_blob({digest}) first")]
    WrongLock {
        /// The lock held.
        held: String,
        /// The blob being committed.
        digest: String,
    },
    /// A record file does not parse.
    #[error("corrupt record {path}: {reason}")]
    CorruptRecord {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// An overlay snapshot could not be made.
    #[error("{0}")]
    Snapshot(#[source] SnapshotError),
    /// A layer's uncompressed stream did not hash to the diff ID the image config lists;
    /// nothing of the layer was kept.
    #[error("layer {layer}: uncompressed content hashes to {actual}, but the image config's rootfs.diff_ids lists {expected}")]
    DiffIdMismatch {
        /// The layer blob digest.
        layer: String,
        /// The config's diff ID.
        expected: String,
        /// What the uncompressed stream hashed to.
        actual: String,
    },
    /// A layer could not be unpacked.
    #[error("unpack layer {layer}: {source}")]
    Unpack {
        /// The layer digest (or `-` for a stream).
        layer: String,
        /// Why, naming the tar entry.
        #[source]
        source: UnpackError,
    },
}

impl Error {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn ctx<T>(r: io::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(|source| Error::Io {
        what: what(),
        source,
    })
}

/// One layer of an image record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// The layer blob digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// The digest of its uncompressed tar stream (the config's `rootfs.diff_ids` entry), when
    /// known: a snapshot of the layer is kept only if the unpacked stream hashes to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// The image does not keep the layer's blob: it was unpacked into its snapshot and not
    /// kept after (a pull with `--discard-unpacked-layers`, containerd's CRI
    /// `discard_unpacked_layers`). The snapshot is the layer's content; the blob may still be
    /// in the store for another image, but this record does not hold it against
    /// [`Store::gc`], and whatever needs the blob (a blobs-only pull, [`unpack_image`]) must
    /// not take the record for its presence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discarded: bool,
}

/// An image in the store: a name and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The normalized name (`docker.io/library/busybox:1.36`, `reg:5000/app@sha256:…`).
    pub name: String,
    /// What the name resolved to (an index digest for multi-platform images): the repo digest.
    pub digest: String,
    /// The platform image manifest.
    pub manifest_digest: String,
    /// The config blob: the image ID.
    pub config_digest: String,
    /// Layers, base first.
    pub layers: Vec<LayerRecord>,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Config plus layers, compressed.
    pub size: u64,
    /// Unix seconds of the first pull under this name (kept when a record is replaced with
    /// `created_at == 0`).
    #[serde(default)]
    pub created_at: u64,
    /// Unix seconds of the latest pull.
    pub pulled_at: u64,
}

impl ImageRecord {
    /// A record. The times are zero until [`ImageRecord::with_times`] sets them (the store never
    /// reads the clock).
    pub fn new(
        name: String,
        digest: Digest,
        manifest_digest: Digest,
        config_digest: Digest,
        layers: Vec<(Digest, String, u64)>,
        platform: String,
        size: u64,
    ) -> ImageRecord {
        ImageRecord {
            name,
            digest: digest.to_string(),
            manifest_digest: manifest_digest.to_string(),
            config_digest: config_digest.to_string(),
            layers: layers
                .into_iter()
                .map(|(d, media_type, size)| LayerRecord {
                    digest: d.to_string(),
                    media_type,
                    size,
                    diff_id: None,
                    discarded: false,
                })
                .collect(),
            platform,
            size,
            created_at: 0,
            pulled_at: 0,
        }
    }

    /// Sets the creation and pull times (unix seconds).
    pub fn with_times(mut self, created_at: u64, pulled_at: u64) -> ImageRecord {
        self.created_at = created_at;
        self.pulled_at = pulled_at;
        self
    }

    /// Sets the layers' diff IDs (the config's `rootfs.diff_ids`, base first). Fails, changing
    /// nothing, when the count differs from the layers' (containerd refuses such an image:
    /// core/unpack/unpacker.go, "mismatched image rootfs and manifest layers").
    pub fn with_diff_ids(mut self, diff_ids: &[Digest]) -> Result<ImageRecord> {
        if diff_ids.len() != self.layers.len() {
            return Err(Error::CorruptRecord {
                path: self.name.clone(),
                reason: format!(
                    "the image config lists {} rootfs.diff_ids for {} manifest layers",
                    diff_ids.len(),
                    self.layers.len()
                ),
            });
        }
        for (l, d) in self.layers.iter_mut().zip(diff_ids) {
            l.diff_id = Some(d.to_string());
        }
        Ok(self)
    }

    /// Every blob the record keeps alive: the manifests, the config, and the layers not
    /// [discarded](LayerRecord::discarded).
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        [
            self.digest.as_str(),
            self.manifest_digest.as_str(),
            self.config_digest.as_str(),
        ]
        .into_iter()
        .chain(
            self.layers
                .iter()
                .filter(|l| !l.discarded)
                .map(|l| l.digest.as_str()),
        )
    }

    /// The layers whose blobs the image does not keep ([`LayerRecord::discarded`]).
    pub fn discarded_layers(&self) -> usize {
        self.layers.iter().filter(|l| l.discarded).count()
    }
}

/// Who pulled an image manifest successfully (KEP-2535 pulled record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRecord {
    /// SHA-256 of the credential (`Credential::credential_hash`), never the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_hash: Option<String>,
    /// `secret/<namespace>/<name>`, `node`, or `anonymous`.
    pub source: String,
    /// Unix seconds.
    pub pulled_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PullRecords {
    /// Pulled at least once without credentials.
    #[serde(default)]
    anonymous: bool,
    records: Vec<PullRecord>,
}

/// How many source repositories are kept per blob.
pub const MAX_BLOB_SOURCES: usize = 1000;

/// How many pull records are kept per image (the kubelet keeps about 100).
pub const MAX_PULL_RECORDS: usize = 100;

/// What [`Store::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_removed: usize,
    /// Bytes freed (blobs and stale partial downloads).
    pub bytes_freed: u64,
    /// Partial downloads removed.
    pub partials_removed: usize,
    /// Blobs kept because a download or reader holds their lock.
    pub skipped_locked: usize,
    /// Layer snapshots no image uses any more, removed.
    pub snapshots_removed: usize,
}

/// The exclusive, cross-process lock on one blob. Released on drop (and by the kernel if the
/// process dies).
#[derive(Debug)]
pub struct BlobLock {
    _file: File,
    path: PathBuf,
    digest: String,
}

impl BlobLock {
    /// The locked digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// A pull's hold on a verified download in `ingest/` that it unpacks from and does not keep
/// (see [`Store::hold_partial`]). Released on drop or when the process dies.
#[derive(Debug)]
pub struct PartialHold {
    _file: File,
    digest: Digest,
}

/// A pull in progress (see [`Store::pull_lease`]).
#[derive(Debug)]
pub struct PullLease {
    _file: File,
}

/// The store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    root: Arc<PathBuf>,
    /// This process's owner lock ([`owner`]): its temporary files are not removed while held.
    _owner: Arc<File>,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn sync_dir(dir: &Path) -> Result<()> {
    let d = ctx(File::open(dir), || {
        format!("open directory {}", dir.display())
    })?;
    ctx(d.sync_all(), || format!("sync directory {}", dir.display()))
}

fn sha256_file(path: &Path) -> Result<(Digest, u64)> {
    let mut f = ctx(File::open(path), || format!("open {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = ctx(f.read(&mut buf), || format!("read {}", path.display()))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    let sum: [u8; 32] = h.finalize().into();
    Ok((Digest::from_sha256_bytes(&sum), n))
}

fn flock(file: &File, blocking: bool) -> io::Result<bool> {
    use rustix::fs::FlockOperation;
    let op = if blocking {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    flock_op(file, op, blocking)
}

fn flock_op(file: &File, op: rustix::fs::FlockOperation, blocking: bool) -> io::Result<bool> {
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) if !blocking => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Locks the lock file at `p` (created if missing); `None` if a non-blocking `op` would block.
/// Lock files of deleted blobs and snapshots are unlinked by their exclusive holder (in
/// [`Store::gc`]), so after locking, the open file must still be the one at the path (same
/// inode); otherwise the lock is retried on the new file.
fn lock_path(p: &Path, op: rustix::fs::FlockOperation) -> Result<Option<File>> {
    use rustix::fs::FlockOperation as Op;
    use std::os::unix::fs::MetadataExt;
    let blocking = matches!(op, Op::LockExclusive | Op::LockShared);
    loop {
        let f = ctx(
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(p),
            || format!("open lock {}", p.display()),
        )?;
        if !ctx(flock_op(&f, op, blocking), || {
            format!("lock {}", p.display())
        })? {
            return Ok(None);
        }
        let held = ctx(f.metadata(), || format!("stat lock {}", p.display()))?;
        match fs::metadata(p) {
            Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => return Ok(Some(f)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("stat lock {}", p.display()), e)),
        }
    }
}

impl Store {
    /// Opens (creating) a store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        for d in [
            "blobs/sha256",
            "ingest",
            "locks/sha256",
            owner::OWNERS_DIR,
            "images",
            "pulls",
            "sources",
        ] {
            let p = root.join(d);
            ctx(fs::create_dir_all(&p), || format!("create {}", p.display()))?;
        }
        // only root reads the store: layers may hold setuid files and private content
        {
            use std::os::unix::fs::PermissionsExt;
            ctx(
                fs::set_permissions(root, fs::Permissions::from_mode(0o700)),
                || format!("chmod 0700 {}", root.display()),
            )?;
        }
        let store = Store {
            root: Arc::new(root.to_path_buf()),
            _owner: Arc::new(owner::hold(root)?),
        };
        store.remove_dead_tmp()?;
        Ok(store)
    }

    /// Removes `ingest/<pid>.<token>.<n>.tmp` files of processes that are gone (their owner
    /// lock is free: [`owner`]), whatever process has their PID now, and the owner locks of
    /// gone processes. Partial downloads (`*.partial`) are kept for the next writer to resume;
    /// [`Store::gc`] removes unlocked ones.
    fn remove_dead_tmp(&self) -> Result<(usize, u64)> {
        let ingest = self.root.join("ingest");
        let (mut n, mut bytes) = (0, 0);
        let mut owners = owner::Owners::default();
        for e in ctx(fs::read_dir(&ingest), || {
            format!("list {}", ingest.display())
        })? {
            let e = ctx(e, || format!("list {}", ingest.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".tmp") else {
                continue;
            };
            // a name of no owner is no one's: removed
            let dead = match owner::owner_of(stem) {
                Some(o) => owners.dead(&self.root, &o)?,
                None => true,
            };
            if dead {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                if fs::remove_file(e.path()).is_ok() {
                    n += 1;
                    bytes += size;
                }
            }
        }
        owners.release(&self.root)?;
        Ok((n, bytes))
    }

    /// A pull lease: while any is held, [`Store::gc`] waits, so blobs a pull has stored but not
    /// yet referenced from an image record are not collected. Shared between pulls; released on
    /// drop or when the process dies.
    pub fn pull_lease(&self) -> Result<PullLease> {
        let f = self.lock_file("gc.lock")?;
        ctx(
            flock_op(&f, rustix::fs::FlockOperation::LockShared, true),
            || "take a pull lease".to_string(),
        )?;
        Ok(PullLease { _file: f })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives (it may not exist).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A blob's size, if present.
    pub fn blob_size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(d)).ok().map(|m| m.len())
    }

    /// A new empty file in `ingest/` of this process alone (`<pid>.<token>.<n>.tmp`, made
    /// with `O_EXCL`): removed when the store is next opened, or by [`Store::gc`], once the
    /// process is gone, even if another process has its PID by then.
    pub fn private_ingest_path(&self) -> Result<PathBuf> {
        loop {
            let p = self.root.join("ingest").join(format!(
                "{}.{}.tmp",
                owner::incarnation(),
                TMP_SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            match OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(_) => return Ok(p),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("create {}", p.display()), e)),
            }
        }
    }

    /// Where the holder of `d`'s lock writes a download in progress.
    pub fn ingest_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}.partial", d.hex()))
    }

    fn lock_file(&self, name: &str) -> Result<File> {
        let p = self.root.join("locks").join(name);
        ctx(
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&p),
            || format!("open lock {}", p.display()),
        )
    }

    fn blob_lock_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(d.algorithm().as_str())
            .join(format!("{}.lock", d.hex()))
    }

    /// Locks a blob's lock file. [`Store::gc`] unlinks the lock files of blobs it deletes while
    /// holding their lock, so after locking, the open file must still be the one at the path
    /// (same inode); otherwise the lock is retried on the new file.
    fn lock_blob_inner(&self, d: &Digest, blocking: bool) -> Result<Option<BlobLock>> {
        let p = self.blob_lock_path(d);
        let op = if blocking {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::NonBlockingLockExclusive
        };
        Ok(lock_path(&p, op)?.map(|f| BlobLock {
            _file: f,
            path: p,
            digest: d.to_string(),
        }))
    }

    /// Waits for and takes the exclusive cross-process lock on blob `d`. Callers then check
    /// [`Store::has_blob`] again (another writer may have just finished) and, if absent,
    /// download into [`Store::ingest_path`].
    pub fn lock_blob(&self, d: &Digest) -> Result<BlobLock> {
        match self.lock_blob_inner(d, true)? {
            Some(l) => Ok(l),
            None => Err(Error::io(
                format!("lock blob {d}"),
                io::Error::from(io::ErrorKind::WouldBlock),
            )),
        }
    }

    /// Takes the lock on blob `d` if nobody holds it.
    pub fn try_lock_blob(&self, d: &Digest) -> Result<Option<BlobLock>> {
        self.lock_blob_inner(d, false)
    }

    /// Takes the exclusive lock `locks/<name>`, waiting for it.
    fn lock_named(&self, name: &str) -> Result<File> {
        let p = self.root.join("locks").join(name);
        lock_path(&p, rustix::fs::FlockOperation::LockExclusive)?
            .ok_or_else(|| Error::io(format!("lock {name}"), io::ErrorKind::WouldBlock.into()))
    }

    /// Takes the shared lock `locks/<name>`, waiting for exclusive holders.
    fn lock_named_shared(&self, name: &str) -> Result<File> {
        let p = self.root.join("locks").join(name);
        lock_path(&p, rustix::fs::FlockOperation::LockShared)?
            .ok_or_else(|| Error::io(format!("lock {name}"), io::ErrorKind::WouldBlock.into()))
    }

    /// Takes the exclusive lock `locks/<name>` if it is free.
    fn try_lock_named(&self, name: &str) -> Result<Option<File>> {
        let p = self.root.join("locks").join(name);
        lock_path(&p, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    }

    fn store_lock(&self) -> Result<File> {
        let f = self.lock_file("store.lock")?;
        ctx(flock(&f, true), || "lock the store".to_string())?;
        Ok(f)
    }

    fn partial_hold_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(d.algorithm().as_str())
            .join(format!("{}.unpack.lock", d.hex()))
    }

    /// Whether `rec` names a layer whose blob it does not keep ([`LayerRecord::discarded`])
    /// and that is not in the store: whatever needs the layer blobs (a blobs-only pull, a pull
    /// that cannot unpack here, a container's unpacked copy) must take the image as absent.
    pub fn discarded_blobs_missing(&self, rec: &ImageRecord) -> bool {
        rec.layers
            .iter()
            .any(|l| l.discarded && Digest::parse(&l.digest).map_or(true, |d| !self.has_blob(&d)))
    }

    /// Holds blob `d`'s download in [`Store::ingest_path`], verified and left there rather than
    /// committed, against [`Store::discard_partial`] by other pulls: a pull that does not keep
    /// a layer's blob (`--discard-unpacked-layers`) unpacks from the partial file until its
    /// snapshot is committed. Take it while holding the blob's lock (then no one can have
    /// removed the file since it verified). Shared: pulls of images with the same layer each
    /// hold it.
    pub fn hold_partial(&self, d: &Digest) -> Result<PartialHold> {
        let p = self.partial_hold_path(d);
        let f = lock_path(&p, rustix::fs::FlockOperation::LockShared)?.ok_or_else(|| {
            Error::io(
                format!("lock {}", p.display()),
                io::ErrorKind::WouldBlock.into(),
            )
        })?;
        Ok(PartialHold {
            _file: f,
            digest: d.clone(),
        })
    }

    /// Whether a pull holds blob `d`'s download in [`Store::ingest_path`]
    /// ([`Store::hold_partial`]): verified and read by its unpack, so no writer may touch it.
    /// Call it holding the blob's lock; a stale hold file (its pull died) is removed.
    pub fn partial_held(&self, d: &Digest) -> Result<bool> {
        let p = self.partial_hold_path(d);
        if !p.exists() {
            return Ok(false);
        }
        match lock_path(&p, rustix::fs::FlockOperation::NonBlockingLockExclusive)? {
            None => Ok(true),
            Some(_free) => {
                // unlinked while held exclusively: lockers re-check the inode (lock_path)
                let _ = fs::remove_file(&p);
                Ok(false)
            }
        }
    }

    /// Releases `hold` and removes the partial download it held, without ever syncing it,
    /// unless another pull still holds it (that pull removes it when done) or someone committed
    /// it into `blobs/` meanwhile. Waits for the blob's lock (a writer resuming the file
    /// finishes first). Returns whether the file was removed.
    pub fn discard_partial(&self, hold: PartialHold) -> Result<bool> {
        let d = hold.digest.clone();
        drop(hold);
        let _lock = self.lock_blob(&d)?;
        let p = self.partial_hold_path(&d);
        let Some(_only) = lock_path(&p, rustix::fs::FlockOperation::NonBlockingLockExclusive)?
        else {
            return Ok(false);
        };
        let ingest = self.ingest_path(&d);
        let removed = match fs::remove_file(&ingest) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(format!("remove {}", ingest.display()), e)),
        };
        // unlinked while held exclusively: lockers re-check the inode (lock_path)
        let _ = fs::remove_file(&p);
        Ok(removed)
    }

    /// Moves a complete file into `blobs/`: fsync, rename, sync the directory. With `verify`,
    /// hashes it first and rejects (and deletes) a mismatch.
    pub fn commit_blob(&self, lock: &BlobLock, src: &Path, d: &Digest, verify: bool) -> Result<()> {
        if lock.digest != d.to_string() {
            return Err(Error::WrongLock {
                held: lock.digest.clone(),
                digest: d.to_string(),
            });
        }
        if verify {
            let (actual, _) = sha256_file(src)?;
            if &actual != d {
                let _ = fs::remove_file(src);
                return Err(Error::DigestMismatch {
                    expected: d.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        let f = ctx(File::open(src), || format!("open {}", src.display()))?;
        ctx(f.sync_all(), || format!("sync {}", src.display()))?;
        drop(f);
        let dest = self.blob_path(d);
        ctx(fs::rename(src, &dest), || {
            format!("rename {} to {}", src.display(), dest.display())
        })?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        self.write_replace(dest, bytes, true)
    }

    /// Replaces `dest` with `bytes` through a temporary file and a rename, so a reader sees
    /// the old or the new content; with `durable`, the file and then its directory are
    /// `fsync`ed too (without, a crash may leave the old content, none, or an empty file).
    fn write_replace(&self, dest: &Path, bytes: &[u8], durable: bool) -> Result<()> {
        let tmp = self.private_ingest_path()?;
        let mut f = ctx(
            OpenOptions::new().write(true).truncate(true).open(&tmp),
            || format!("open {}", tmp.display()),
        )?;
        let r = f
            .write_all(bytes)
            .and_then(|()| if durable { f.sync_all() } else { Ok(()) });
        if let Err(e) = r {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(format!("write {}", tmp.display()), e));
        }
        drop(f);
        if let Err(e) = fs::rename(&tmp, dest) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(format!("rename to {}", dest.display()), e));
        }
        if durable {
            if let Some(parent) = dest.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Stores small content (manifests, configs) after verifying it.
    pub fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        let actual = Digest::sha256_of(bytes);
        if &actual != d {
            return Err(Error::DigestMismatch {
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        if self.has_blob(d) {
            return Ok(());
        }
        self.write_atomic(&self.blob_path(d), bytes)
    }

    /// Reads a blob of at most `max` bytes, verifying its digest.
    pub fn read_blob(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound(d.to_string()))
            }
            Err(e) => return Err(Error::io(format!("open {}", p.display()), e)),
        };
        let size = ctx(f.metadata(), || format!("stat {}", p.display()))?.len();
        if size > max {
            return Err(Error::TooLarge {
                digest: d.to_string(),
                size,
                limit: max,
            });
        }
        // bounded even if the file changed since the stat
        let mut bytes = Vec::with_capacity(size as usize);
        ctx(
            f.take(max.saturating_add(1)).read_to_end(&mut bytes),
            || format!("read {}", p.display()),
        )?;
        let actual = Digest::sha256_of(&bytes);
        if &actual != d {
            return Err(Error::DigestMismatch {
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    fn image_path(&self, name: &str) -> PathBuf {
        // names may hold any character: the file is named by their hash
        self.root
            .join("images")
            .join(format!("{}.json", Digest::sha256_of(name.as_bytes()).hex()))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, p: &Path) -> Result<Option<T>> {
        let meta = match fs::metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("stat {}", p.display()), e)),
        };
        if meta.len() > MAX_RECORD_SIZE {
            return Err(Error::CorruptRecord {
                path: p.display().to_string(),
                reason: format!("larger than {MAX_RECORD_SIZE} bytes"),
            });
        }
        let bytes = match fs::read(p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("read {}", p.display()), e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::CorruptRecord {
                path: p.display().to_string(),
                // not the serde message: it can quote the file's content
                reason: format!(
                    "invalid json ({:?} error) at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })
    }

    /// Writes (replaces) an image record.
    pub fn put_image(&self, rec: &ImageRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| Error::CorruptRecord {
            path: rec.name.clone(),
            reason: e.to_string(),
        })?;
        let _l = self.store_lock()?;
        let p = self.image_path(&rec.name);
        if rec.created_at == 0 {
            if let Some(old) = self
                .read_json::<ImageRecord>(&p)?
                .filter(|o| o.name == rec.name)
            {
                let mut rec = rec.clone();
                rec.created_at = old.created_at;
                let bytes = serde_json::to_vec_pretty(&rec).map_err(|e| Error::CorruptRecord {
                    path: rec.name.clone(),
                    reason: e.to_string(),
                })?;
                return self.write_atomic(&p, &bytes);
            }
        }
        self.write_atomic(&p, &bytes)
    }

    /// The record of `name`, if any.
    pub fn image(&self, name: &str) -> Result<Option<ImageRecord>> {
        let r: Option<ImageRecord> = self.read_json(&self.image_path(name))?;
        // a hash collision is not a concern, but a record must describe the name it is under
        Ok(r.filter(|r| r.name == name))
    }

    /// Every image record, sorted by name.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in ctx(fs::read_dir(&dir), || format!("list {}", dir.display()))? {
            let e = ctx(e, || format!("list {}", dir.display()))?;
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            if let Some(r) = self.read_json::<ImageRecord>(&p)? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes an image record (its blobs go at the next [`Store::gc`]). False if absent.
    pub fn remove_image(&self, name: &str) -> Result<bool> {
        let _l = self.store_lock()?;
        let p = self.image_path(name);
        match fs::remove_file(&p) {
            Ok(()) => {
                sync_dir(&self.root.join("images"))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("remove {}", p.display()), e)),
        }
    }

    fn pulls_path(&self, manifest: &Digest) -> PathBuf {
        self.root
            .join("pulls")
            .join(format!("{}.json", manifest.hex()))
    }

    /// Adds a pull record for an image manifest (deduplicated by source and hash; bounded by
    /// [`MAX_PULL_RECORDS`], oldest dropped). A corrupt records file is replaced: dropping
    /// records only makes later pods verify their credentials again.
    pub fn record_pull(&self, manifest: &Digest, rec: &PullRecord) -> Result<()> {
        let _l = self.store_lock()?;
        let p = self.pulls_path(manifest);
        let mut all: PullRecords = match self.read_json(&p) {
            Ok(r) => r.unwrap_or_default(),
            Err(Error::CorruptRecord { .. }) => PullRecords::default(),
            Err(e) => return Err(e),
        };
        if rec.credential_hash.is_none() {
            all.anonymous = true;
        }
        all.records
            .retain(|r| !(r.source == rec.source && r.credential_hash == rec.credential_hash));
        all.records.push(rec.clone());
        if all.records.len() > MAX_PULL_RECORDS {
            let excess = all.records.len() - MAX_PULL_RECORDS;
            all.records.drain(..excess);
        }
        let bytes = serde_json::to_vec_pretty(&all).map_err(|e| Error::CorruptRecord {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        self.write_atomic(&p, &bytes)
    }

    /// The pull records of an image manifest.
    pub fn pull_records(&self, manifest: &Digest) -> Result<Vec<PullRecord>> {
        Ok(self
            .read_json::<PullRecords>(&self.pulls_path(manifest))?
            .unwrap_or_default()
            .records)
    }

    /// Whether the image manifest was ever pulled without credentials.
    pub fn pulled_anonymously(&self, manifest: &Digest) -> Result<bool> {
        Ok(self
            .read_json::<PullRecords>(&self.pulls_path(manifest))?
            .is_some_and(|r| r.anonymous))
    }

    fn sources_path(&self, d: &Digest) -> PathBuf {
        self.root.join("sources").join(d.hex())
    }

    /// Notes that blob `d` was fetched (and verified) from `repository` (`host/path`). Call it
    /// while holding the blob's lock, after [`Store::commit_blob`], so a pull of the same
    /// repository waiting on the lock finds it. Bounded at [`MAX_BLOB_SOURCES`] (oldest dropped).
    ///
    /// Replaced atomically but not `fsync`ed: the list only lets a later pull reuse the blob
    /// without fetching it again, so what a crash can leave (the list before, no list, an empty
    /// or zeroed file) grants no repository a blob it was not fetched from: it costs a fetch,
    /// never a wrong reuse. The blob itself was made durable by the commit. (Two `fsync`s less
    /// per blob, taken under the store lock that every commit and record waits on.)
    pub fn add_blob_source(&self, d: &Digest, repository: &str) -> Result<()> {
        if repository.contains('\n') || repository.is_empty() {
            return Err(Error::CorruptRecord {
                path: self.sources_path(d).display().to_string(),
                reason: "a repository name is one non-empty line".into(),
            });
        }
        let _l = self.store_lock()?;
        let p = self.sources_path(d);
        let mut lines = self.blob_sources(d)?;
        if lines.iter().any(|l| l == repository) {
            return Ok(());
        }
        lines.push(repository.to_string());
        if lines.len() > MAX_BLOB_SOURCES {
            let excess = lines.len() - MAX_BLOB_SOURCES;
            lines.drain(..excess);
        }
        let mut text = lines.join("\n");
        text.push('\n');
        self.write_replace(&p, text.as_bytes(), false)
    }

    /// The repositories blob `d` was fetched from ([`Store::add_blob_source`]).
    pub fn blob_sources(&self, d: &Digest) -> Result<Vec<String>> {
        let p = self.sources_path(d);
        match fs::read(&p) {
            // only whole lines count: every name is written with its newline, so a file cut
            // short (the list is not fsynced) cannot turn `team/app-private` into `team/app`
            Ok(b) if b.len() as u64 <= MAX_RECORD_SIZE => Ok(String::from_utf8_lossy(&b)
                .split_inclusive('\n')
                .filter_map(|l| l.strip_suffix('\n'))
                .filter(|l| !l.is_empty() && !l.contains('\0'))
                .map(str::to_string)
                .collect()),
            // an oversized file is treated as empty: the blob is fetched again (fail closed)
            Ok(_) => Ok(vec![]),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(Error::io(format!("read {}", p.display()), e)),
        }
    }

    /// Deletes blobs that no image record references, unless their lock is held; removes
    /// partial downloads nobody owns, the download holds ([`Store::hold_partial`]) of pulls
    /// that died, and pull records of deleted manifests; keeps the source lists of layers an
    /// image names without keeping their blobs. Waits for pull
    /// leases ([`Store::pull_lease`]) to be released first.
    pub fn gc(&self) -> Result<GcReport> {
        let lease = self.lock_file("gc.lock")?;
        ctx(flock(&lease, true), || {
            "wait for pulls to finish".to_string()
        })?;
        let _l = self.store_lock()?;
        let mut referenced: HashSet<String> = HashSet::new();
        // layers the images do not keep: their source lists stay (a pull of the repository
        // uses the snapshot instead of fetching the layer again)
        let mut named: HashSet<String> = HashSet::new();
        let images = self.images()?;
        for r in &images {
            for b in r.blobs() {
                referenced.insert(b.to_string());
            }
            named.extend(r.layers.iter().map(|l| l.digest.clone()));
        }
        let mut report = GcReport::default();
        let dir = self.root.join("blobs/sha256");
        for e in ctx(fs::read_dir(&dir), || format!("list {}", dir.display()))? {
            let e = ctx(e, || format!("list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            if referenced.contains(&d.to_string()) {
                continue;
            }
            let Some(_lock) = self.try_lock_blob(&d)? else {
                report.skipped_locked += 1;
                continue;
            };
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            ctx(fs::remove_file(e.path()), || {
                format!("remove {}", e.path().display())
            })?;
            let _ = fs::remove_file(self.pulls_path(&d));
            if !named.contains(&d.to_string()) {
                // a discarded layer's source list stays with the image that names it
                let _ = fs::remove_file(self.sources_path(&d));
            }
            if !self.ingest_path(&d).exists() {
                // unlinked while held: lockers re-check the inode (lock_blob_inner)
                let _ = fs::remove_file(&_lock.path);
            }
            report.blobs_removed += 1;
            report.bytes_freed += size;
        }
        let ingest = self.root.join("ingest");
        for e in ctx(fs::read_dir(&ingest), || {
            format!("list {}", ingest.display())
        })? {
            let e = ctx(e, || format!("list {}", ingest.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            if let Some(hex) = name.strip_suffix(".partial") {
                let Ok(d) = Digest::parse(&format!("sha256:{hex}")) else {
                    continue;
                };
                if let Some(_lock) = self.try_lock_blob(&d)? {
                    let _ = fs::remove_file(e.path());
                    report.partials_removed += 1;
                    report.bytes_freed += size;
                }
            }
        }
        // the source lists of blobs that are neither stored nor named by an image (a layer
        // whose download was discarded, of an image removed since)
        let sources = self.root.join("sources");
        for e in ctx(fs::read_dir(&sources), || {
            format!("list {}", sources.display())
        })? {
            let e = ctx(e, || format!("list {}", sources.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            if !self.has_blob(&d) && !named.contains(&d.to_string()) {
                let _ = fs::remove_file(e.path());
            }
        }
        // holds on downloads ([`Store::hold_partial`]) left by pulls that died: no one holds
        // them
        let locks = self.root.join("locks/sha256");
        for e in ctx(fs::read_dir(&locks), || format!("list {}", locks.display()))? {
            let e = ctx(e, || format!("list {}", locks.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".unpack.lock") else {
                continue;
            };
            let Ok(d) = Digest::parse(&format!("sha256:{hex}")) else {
                continue;
            };
            // under the blob's lock, as every taker of a hold
            if let Some(lock) = self.try_lock_blob(&d)? {
                if !self.partial_held(&d)? && !self.has_blob(&d) && !self.ingest_path(&d).exists() {
                    // unlinked while held: lockers re-check the inode (lock_blob_inner)
                    let _ = fs::remove_file(&lock.path);
                }
            }
        }
        let (n, bytes) = self.remove_dead_tmp()?;
        report.partials_removed += n;
        report.bytes_freed += bytes;
        report.snapshots_removed = self.gc_snapshots(&images)?;
        Ok(report)
    }

    /// Bytes used by blobs.
    pub fn disk_usage(&self) -> Result<u64> {
        let dir = self.root.join("blobs/sha256");
        let mut n = 0;
        for e in ctx(fs::read_dir(&dir), || format!("list {}", dir.display()))? {
            let e = ctx(e, || format!("list {}", dir.display()))?;
            n += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
        Ok(n)
    }
}
