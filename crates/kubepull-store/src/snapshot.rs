//! Layer snapshots for overlayfs: each layer of a chain is unpacked once into
//! `snapshots/<chain key>/fs`, holding only that layer's changes in overlayfs form (whiteouts
//! are 0/0 character devices, opaque directories carry `trusted.overlay.opaque=y`), so a
//! container's root filesystem is an overlay mount with the chain's snapshots as `lowerdir`.
//!
//! A layer is applied the way containerd's overlay snapshotter does it (snapshots/overlay
//! `Prepare` + `archive.Apply`): the new snapshot is the upper directory of an overlay mount
//! over its parents, and the layer is unpacked onto the merged view with the ordinary rules
//! ([`crate::unpack_layer`]). The kernel then records deletions as overlay whiteouts, replaced
//! directories as opaque, and hard links to lower files as copies-up, exactly as it will read
//! them back. The base layer is unpacked directly.
//!
//! Layers are applied in parallel: a layer whose layers below are not complete yet is applied
//! into its own snapshot directly, in overlay form, and settled against them once they are
//! (see [`Store::layer_snapshot_from`]); the snapshots are those of the one-by-one apply.
//!
//! The chain key of layer `n` is `sha256(key(n-1) + " " + digest(n))` over the stored
//! (compressed) layer digests, and the digest's hex for the base layer: the OCI ChainID
//! construction, over the blobs the store holds rather than over uncompressed DiffIDs.
//!
//! Snapshots need root and overlayfs. Without them [`Store::layer_snapshot`] fails with
//! [`SnapshotError::Unsupported`] and callers fall back to [`crate::unpack_image`] into a fresh
//! directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use kubepull_core::reference::Digest;

use crate::{ctx, Error, LayerRecord, Result, Store, UnpackOptions};

/// Where [`Store::layer_snapshot_from`] reads a layer whose snapshot is not there yet.
pub enum LayerInput {
    /// The blob in the store, re-hashed while it is read.
    Stored,
    /// The blob's bytes as they arrive (a download in progress). After the layer is unpacked
    /// and `reader` read to its end, `verified` is called: it returns once the download has
    /// ended, `Ok` only if the whole blob verified against its digest. The snapshot is renamed
    /// into place only after that and the diff ID check.
    Stream {
        /// The blob's bytes, from the first.
        reader: Box<dyn io::Read + Send>,
        /// Waits for the blob's verification.
        verified: Box<dyn FnOnce() -> Result<()> + Send>,
    },
}

impl std::fmt::Debug for LayerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayerInput::Stored => "Stored",
            LayerInput::Stream { .. } => "Stream",
        })
    }
}

/// What [`Store::layer_snapshot_from`] made ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotChain {
    /// The snapshots' `fs` directories, base first.
    pub dirs: Vec<PathBuf>,
    /// How many of them this call built (the others were there already).
    pub built: usize,
    /// How many layers this call applied into a snapshot of their own while the layers below
    /// them were not complete yet, and kept (see [`Store::layer_snapshot_from`]).
    pub applied_apart: usize,
    /// How many layers this call applied again onto the overlay of the layers below, after
    /// applying them apart could not give the same snapshot.
    pub applied_again: usize,
}

/// The most layers one chain may have: the overlay mount option listing every lower directory
/// must fit in a page (4096 bytes) and each entry is about 90 bytes plus the store root.
pub const MAX_SNAPSHOT_LAYERS: usize = 40;

/// Why a snapshot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// This process cannot make overlay snapshots.
    #[error(
        "overlay snapshots are not available: {0}; unpack the image with unpack_image instead"
    )]
    Unsupported(String),
    /// The chain is longer than [`MAX_SNAPSHOT_LAYERS`].
    #[error(
        "image has {layers} layers, more than the {limit} an overlay mount can stack; \
         unpack the image with unpack_image instead"
    )]
    TooManyLayers {
        /// The layers of the image.
        layers: usize,
        /// [`MAX_SNAPSHOT_LAYERS`].
        limit: usize,
    },
    /// Mounting or unmounting the overlay failed.
    #[error("{op} overlay on {target}: {source}")]
    Mount {
        /// `mount` or `unmount`.
        op: &'static str,
        /// The mount point.
        target: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl From<SnapshotError> for Error {
    fn from(e: SnapshotError) -> Error {
        Error::Snapshot(e)
    }
}

/// The chain keys of `layers`, base first.
pub fn chain_keys(layers: &[LayerRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(layers.len());
    for l in layers {
        let key = match out.last() {
            None => Digest::sha256_of(l.digest.as_bytes()).hex().to_string(),
            Some(parent) => Digest::sha256_of(format!("{parent} {}", l.digest).as_bytes())
                .hex()
                .to_string(),
        };
        out.push(key);
    }
    out
}

/// The `lowerdir=` value for an overlay mount of `snapshots` (base first, as
/// [`Store::layer_snapshot`] returns them): overlayfs lists the top layer first.
pub fn overlay_lowerdir(snapshots: &[PathBuf]) -> String {
    snapshots
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// A snapshot built but not yet renamed into place, with its build lock.
struct Pending {
    tmp: PathBuf,
    key: String,
    _lock: Option<fs::File>,
}

/// Unmounts on drop (lazily, so an error path never leaves a mount behind).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Mounts the overlay of `lowers` at `target`, with `upper` and its work directory above, or
/// read-only without (then `lowers` must be at least two).
fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<Mounted, SnapshotError> {
    let above = upper.map(|(u, w)| [u, w]);
    for p in lowers
        .iter()
        .map(|p| p.as_path())
        .chain(above.iter().flatten().copied())
    {
        if p.to_string_lossy().contains([',', ':']) {
            return Err(SnapshotError::Unsupported(format!(
                "path {} has a ',' or ':' that an overlay mount option cannot hold",
                p.display()
            )));
        }
    }
    let mut data = format!("lowerdir={}", overlay_lowerdir(lowers));
    if let Some((upper, work)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            upper.display(),
            work.display()
        ));
    }
    let data = std::ffi::CString::new(data)
        .map_err(|_| SnapshotError::Unsupported("store path holds a NUL byte".to_string()))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        if upper.is_some() {
            rustix::mount::MountFlags::empty()
        } else {
            rustix::mount::MountFlags::RDONLY
        },
        data.as_c_str(),
    )
    .map_err(|e| SnapshotError::Mount {
        op: "mount",
        target: target.display().to_string(),
        source: e.into(),
    })?;
    Ok(Mounted(target.to_path_buf()))
}

/// Mounts a container's root filesystem at `target`: the chain's snapshots (from
/// [`Store::layer_snapshot`], base first) read-only below, `upper` and `work` (created if
/// missing; one pair per container, on the same filesystem) above. Stays mounted until
/// [`unmount_rootfs`].
pub fn mount_rootfs(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), SnapshotError> {
    for d in [upper, work, target] {
        fs::create_dir_all(d).map_err(|e| SnapshotError::Mount {
            op: "mount",
            target: d.display().to_string(),
            source: e,
        })?;
    }
    let m = mount_overlay(lowers, Some((upper, work)), target)?;
    std::mem::forget(m);
    Ok(())
}

/// Unmounts a root filesystem mounted by [`mount_rootfs`] (detaching it if busy). Not mounted
/// is not an error.
pub fn unmount_rootfs(target: &Path) -> Result<(), SnapshotError> {
    match rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(SnapshotError::Mount {
            op: "unmount",
            target: target.display().to_string(),
            source: e.into(),
        }),
    }
}

/// Shared locks on the snapshots of a chain: while held, [`Store::gc`] keeps them even if no
/// image record uses them any more (a running container's lower directories). Released on drop
/// or when the process dies.
#[derive(Debug)]
pub struct SnapshotLease {
    _files: Vec<fs::File>,
}

/// Whether layer snapshots of an image of `layers` layers can be built here, as
/// [`Store::layer_snapshot_from`] first checks (root, not rootless, at most
/// [`MAX_SNAPSHOT_LAYERS`] layers): a pull decides before it starts whether it unpacks.
pub fn snapshot_support(layers: usize, opts: &UnpackOptions) -> Result<(), SnapshotError> {
    if layers > MAX_SNAPSHOT_LAYERS {
        return Err(SnapshotError::TooManyLayers {
            layers,
            limit: MAX_SNAPSHOT_LAYERS,
        });
    }
    if opts.rootless || !rustix::process::geteuid().is_root() {
        return Err(SnapshotError::Unsupported(
            "they need root (overlay mounts, whiteout devices, trusted.* xattrs)".into(),
        ));
    }
    Ok(())
}

impl Store {
    /// Holds the snapshots of `layers` against garbage collection (see [`SnapshotLease`]).
    pub fn snapshot_lease(&self, layers: &[LayerRecord]) -> Result<SnapshotLease> {
        let lock_dir = self.root().join("locks/snapshots");
        ctx(fs::create_dir_all(&lock_dir), || {
            format!("create {}", lock_dir.display())
        })?;
        let mut files = Vec::new();
        for key in chain_keys(layers) {
            files.push(self.lock_named_shared(&format!("snapshots/{key}.lock"))?);
        }
        Ok(SnapshotLease { _files: files })
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.root().join("snapshots")
    }

    /// Copies the root filesystem the snapshots of `layers` make (what mounting them gives)
    /// into `dest` (created if missing, with its parents), for an image whose record does not
    /// keep its layer blobs ([`LayerRecord::discarded`]; [`crate::unpack_image`] of it comes
    /// here): what unpacking the blobs would make. Several layers are read through their
    /// read-only overlay (mounted in a build directory of the store); the snapshots are held
    /// while copied. `dest` itself keeps its owner and mode; with `opts.rootless` (or not
    /// root) no owner, extended attribute or device node is applied, as unpacking does. Fails
    /// with [`Error::LayerDiscarded`] naming the first layer without a snapshot.
    pub fn copy_snapshots(
        &self,
        image: &str,
        layers: &[LayerRecord],
        dest: &Path,
        opts: &crate::UnpackOptions,
    ) -> Result<crate::LayerStats> {
        let _lease = self.snapshot_lease(layers)?;
        let dirs: Vec<PathBuf> = chain_keys(layers)
            .iter()
            .map(|k| self.snapshot_path(k))
            .collect();
        if let Some(i) = dirs.iter().position(|d| !d.is_dir()) {
            return Err(Error::LayerDiscarded {
                image: image.to_string(),
                layer: layers[i].digest.clone(),
            });
        }
        ctx(fs::create_dir_all(dest), || {
            format!("create {}", dest.display())
        })?;
        match dirs.as_slice() {
            [] => Ok(crate::LayerStats::default()),
            [one] => crate::unpack::copy_tree(one, dest, opts.privileged()),
            _ => {
                // the lowest layer last in the overlay's list (overlay_lowerdir)
                let tmp = self.new_build_dir()?;
                // where remove_tmp looks for a mount before it removes anything
                let merged = tmp.join("merged");
                if let Err(e) = fs::create_dir(&merged) {
                    remove_tmp(&tmp);
                    return Err(Error::io(format!("create {}", merged.display()), e));
                }
                let r = mount_overlay(&dirs, None, &merged)
                    .map_err(Error::from)
                    .and_then(|m| {
                        let r = crate::unpack::copy_tree(&merged, dest, opts.privileged());
                        drop(m);
                        r
                    });
                remove_tmp(&tmp);
                r
            }
        }
    }

    /// Syncs the snapshots directory: the renames of snapshots another call committed are
    /// durable before a record that relies on them alone (its layers discarded) is written.
    pub fn sync_snapshots_dir(&self) -> Result<()> {
        crate::sync_dir(&self.snapshots_dir())
    }

    /// The directory of a snapshot (its `fs` is the overlay lower directory).
    pub fn snapshot_path(&self, key: &str) -> PathBuf {
        self.snapshots_dir().join(key).join("fs")
    }

    /// Makes sure every layer of the chain has a snapshot, unpacking each missing one once
    /// (across threads and processes), and returns their `fs` directories, base first. Mount
    /// them with `lowerdir=` [`overlay_lowerdir`]. Needs root and overlayfs.
    pub fn layer_snapshot(
        &self,
        image: &str,
        layers: &[LayerRecord],
        opts: &UnpackOptions,
    ) -> Result<Vec<PathBuf>> {
        self.layer_snapshot_from(image, layers, opts, &mut |_, _| Ok(LayerInput::Stored))
            .map(|c| c.dirs)
    }

    /// [`Store::layer_snapshot`], reading each layer that needs a snapshot from what `input`
    /// returns for it (called on the calling thread with the layer's index, base first, only
    /// for layers whose snapshot is missing, in order): a pull unpacks layers while they
    /// download this way.
    ///
    /// Layers are applied in parallel, as many at once as there are cores, lower layers first
    /// when they compete. A layer whose layers below are all complete is applied onto their
    /// overlay. Any other is applied into a snapshot of its own, in overlay form (whiteouts as
    /// 0/0 character devices, opaque directories marked), as containerd's overlay applier does
    /// (diff/apply/apply_linux.go: `archive.Apply` into the upper directory with
    /// `OverlayConvertWhiteout` and `WithParents`); once the layers below are complete, what it
    /// assumed about them is checked and the copy-ups the overlay would have made are done
    /// (`unpack::settle`), and where that cannot give the same snapshot (a hard link to a
    /// file below, a parent directory that is a symlink below, a whiteout under a directory
    /// only a lower layer has) the layer is applied again, from the stored blob, onto their
    /// overlay. Either way each snapshot is the one applying the layers one after another
    /// makes. A snapshot is renamed into place only after the blob's digest and (when the
    /// record has it) the layer's diff ID verified and one `syncfs` made it durable. On an
    /// error the failed layer's snapshot and those of the layers above it are removed; the
    /// snapshots below it, complete and verified, stay.
    pub fn layer_snapshot_from(
        &self,
        image: &str,
        layers: &[LayerRecord],
        opts: &UnpackOptions,
        input: &mut dyn FnMut(usize, &LayerRecord) -> Result<LayerInput>,
    ) -> Result<SnapshotChain> {
        self.layer_snapshot_from_then(image, layers, opts, input, &mut || {})
    }

    /// [`Store::layer_snapshot_from`], calling `applied` once every layer it applied is
    /// applied and verified (blob digest and diff ID), and before anything is made durable
    /// (the `syncfs`) or renamed into place; not after an error. A pull that does not keep the
    /// layers' blobs removes their downloads there, so the `syncfs` never writes them (a crash
    /// before the snapshots are committed leaves neither: the layers are fetched again).
    pub fn layer_snapshot_from_then(
        &self,
        image: &str,
        layers: &[LayerRecord],
        opts: &UnpackOptions,
        input: &mut dyn FnMut(usize, &LayerRecord) -> Result<LayerInput>,
        applied: &mut dyn FnMut(),
    ) -> Result<SnapshotChain> {
        snapshot_support(layers.len(), opts)?;
        let dir = self.snapshots_dir();
        ctx(fs::create_dir_all(&dir), || {
            format!("create {}", dir.display())
        })?;
        {
            use std::os::unix::fs::PermissionsExt;
            ctx(
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)),
                || format!("chmod 0700 {}", dir.display()),
            )?;
        }
        let lock_dir = self.root().join("locks/snapshots");
        ctx(fs::create_dir_all(&lock_dir), || {
            format!("create {}", lock_dir.display())
        })?;
        // a builder killed mid-layer (kill -9 of a pull) left its overlay mounted: detach and
        // remove it before building again
        self.remove_dead_builds();
        let keys = chain_keys(layers);
        let workers = match opts.parallel_layers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let sched = Sched::new(layers.len(), workers);
        // large files start on their way to the disk while other layers are applied, so the
        // final syncfs has little left to write
        let sync = crate::pipeline::Syncer::new();
        // Snapshots built by this call stay in their build directories (the overlays of the
        // layers above stack on them there) until the end: then one `syncfs` makes every file
        // of every one durable, and only then are they renamed into place, so a snapshot under
        // its key never holds data a crash could lose. Their build locks are held until then.
        let mut outcomes: Vec<(usize, Result<PathBuf>)> = Vec::new();
        let mut locks: Vec<Option<fs::File>> = (0..layers.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            let mut jobs = Vec::new();
            for (i, (layer, key)) in layers.iter().zip(&keys).enumerate() {
                if sched.cancelled(i + 1) {
                    break; // a layer below failed: nothing above it is kept
                }
                let fs_dir = self.snapshot_path(key);
                if !fs_dir.is_dir() {
                    // the build lock is not the lease lock: a container holding the snapshots
                    // of a shorter chain (a shared lease) must not block building a longer one
                    let lock = match self.lock_named(&format!("snapshots/{key}.build.lock")) {
                        Ok(l) => l,
                        Err(e) => {
                            sched.finish(i, None);
                            outcomes.push((i, Err(e)));
                            break;
                        }
                    };
                    if !fs_dir.is_dir() {
                        let source = match input(i, layer) {
                            Ok(source) => source,
                            Err(e) => {
                                sched.finish(i, None);
                                outcomes.push((i, Err(e)));
                                break;
                            }
                        };
                        locks[i] = Some(lock);
                        let (sched, sync) = (&sched, &sync);
                        let job = std::thread::Builder::new()
                            .name(format!("snapshot-{i}"))
                            .spawn_scoped(s, move || {
                                let r =
                                    self.build_layer(i, image, layer, opts, source, sched, sync);
                                sched.finish(i, r.as_ref().ok().map(|tmp| tmp.join("fs")));
                                r
                            });
                        match job {
                            Ok(h) => jobs.push((i, h)),
                            Err(e) => {
                                sched.finish(i, None);
                                outcomes
                                    .push((i, Err(Error::io("start a snapshot build thread", e))));
                                break;
                            }
                        }
                        continue;
                    }
                }
                sched.finish(i, Some(fs_dir));
            }
            for (i, h) in jobs {
                let r = h.join().unwrap_or_else(|_| {
                    sched.finish(i, None);
                    Err(Error::io(
                        format!("apply layer {}", layers[i].digest),
                        io::Error::other("the snapshot build thread panicked"),
                    ))
                });
                outcomes.push((i, r));
            }
        });
        crate::timings::mark(|| "layers applied".into());
        drop(sync);
        crate::timings::mark(|| "background syncs drained".into());
        outcomes.sort_by_key(|(i, _)| *i);
        // the layers below the first failed one are complete and verified: they are kept
        let failed = outcomes.iter().find(|(_, r)| r.is_err()).map(|(i, _)| *i);
        let mut pending = Vec::new();
        let mut result = Ok(());
        for (i, r) in outcomes {
            match r {
                Ok(tmp) if failed.is_none_or(|f| i < f) => pending.push(Pending {
                    tmp,
                    key: keys[i].clone(),
                    _lock: locks[i].take(),
                }),
                Ok(tmp) => remove_tmp(&tmp),
                Err(e) if Some(i) == failed => result = Err(e),
                Err(_) => {}
            }
        }
        let built = pending.len();
        if failed.is_none() {
            applied();
        }
        let committed = self.commit_snapshots(pending);
        crate::timings::mark(|| "snapshots committed".into());
        result?;
        committed?;
        let dirs = keys.iter().map(|k| self.snapshot_path(k)).collect();
        Ok(SnapshotChain {
            dirs,
            built,
            applied_apart: sched.apart.load(Ordering::SeqCst),
            applied_again: sched.again.load(Ordering::SeqCst),
        })
    }

    /// A new build directory `snapshots/tmp-<pid>.<token>.<n>` ([`crate::owner`]) with its
    /// (empty) `fs`; never one an earlier process with this PID left.
    fn new_build_dir(&self) -> Result<PathBuf> {
        let dir = self.snapshots_dir();
        ctx(fs::create_dir_all(&dir), || {
            format!("create {}", dir.display())
        })?;
        loop {
            let tmp = dir.join(format!(
                "tmp-{}.{}",
                crate::owner::incarnation(),
                crate::TMP_SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::create_dir(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("create {}", tmp.display()), e)),
            }
            let upper = tmp.join("fs");
            ctx(fs::create_dir(&upper), || {
                format!("create {}", upper.display())
            })?;
            return Ok(tmp);
        }
    }

    /// Builds layer `i`'s snapshot (see [`Store::layer_snapshot_from`]) and returns its build
    /// directory once it is complete; removes it on an error.
    #[allow(clippy::too_many_arguments)]
    fn build_layer(
        &self,
        i: usize,
        image: &str,
        layer: &LayerRecord,
        opts: &UnpackOptions,
        source: LayerInput,
        sched: &Sched,
        sync: &crate::pipeline::Syncer,
    ) -> Result<PathBuf> {
        let Some(permit) = sched.acquire(i) else {
            return Err(cancelled(layer));
        };
        crate::timings::mark(|| format!("layer {i} start"));
        if let Some(lowers) = sched.lowers_complete(i) {
            let r = self.build_snapshot(image, layer, &lowers, opts, source, sync);
            crate::timings::mark(|| format!("layer {i} applied onto the layers below"));
            return r;
        }
        let direct = self.build_direct(i, image, layer, opts, source, sched, sync);
        crate::timings::mark(|| format!("layer {i} applied apart"));
        drop(permit);
        let built = match direct? {
            Direct::Built(tmp, log) => Some((tmp, log)),
            Direct::NeedsLowers(verified) => {
                // applied again from the store: the download must have verified and stored it
                if let Some(v) = verified {
                    v()?;
                }
                None
            }
        };
        let Some(lowers) = sched.wait_lowers(i) else {
            if let Some((tmp, _)) = built {
                remove_tmp(&tmp);
            }
            return Err(cancelled(layer));
        };
        crate::timings::mark(|| format!("layer {i} layers below complete"));
        if let Some((tmp, log)) = built {
            let settled = self.settle_direct(&tmp, &lowers, &log);
            crate::timings::mark(|| format!("layer {i} settled"));
            match settled {
                Ok(true) => {
                    sched.apart.fetch_add(1, Ordering::SeqCst);
                    return Ok(tmp);
                }
                Ok(false) => remove_tmp(&tmp),
                Err(e) => {
                    remove_tmp(&tmp);
                    return Err(e);
                }
            }
        }
        let Some(_permit) = sched.acquire(i) else {
            return Err(cancelled(layer));
        };
        sched.again.fetch_add(1, Ordering::SeqCst);
        let r = self.build_snapshot(image, layer, &lowers, opts, LayerInput::Stored, sync);
        crate::timings::mark(|| format!("layer {i} applied again"));
        r
    }

    /// Applies a layer into a snapshot of its own, before the layers below it are complete.
    #[allow(clippy::too_many_arguments)]
    fn build_direct(
        &self,
        i: usize,
        image: &str,
        layer: &LayerRecord,
        opts: &UnpackOptions,
        source: LayerInput,
        sched: &Sched,
        sync: &crate::pipeline::Syncer,
    ) -> Result<Direct> {
        let tmp = self.new_build_dir()?;
        let upper = tmp.join("fs");
        let mut log = crate::unpack::DirectLog::default();
        let mut unverified = None;
        let r = match source {
            LayerInput::Stored => crate::unpack::apply_layer_blob(
                self,
                image,
                layer,
                &upper,
                opts,
                Some(sync),
                Some(&mut log),
            ),
            LayerInput::Stream { reader, verified } => {
                let mut verified = Some(verified);
                let mut reader = Cancellable {
                    inner: reader,
                    cancel: sched.cancel.clone(),
                    index: i,
                };
                let r = crate::unpack::apply_layer_stream(
                    image,
                    &mut reader,
                    layer,
                    &upper,
                    opts,
                    Some(sync),
                    Some(&mut log),
                    |_| verified.take().map_or(Ok(()), |v| v()),
                );
                unverified = verified;
                r
            }
        };
        match r {
            Ok(_) => Ok(Direct::Built(tmp, Box::new(log))),
            Err(Error::Unpack {
                source: crate::UnpackError::NeedsLowerLayers { .. },
                ..
            }) => {
                remove_tmp(&tmp);
                Ok(Direct::NeedsLowers(unverified))
            }
            Err(e) => {
                remove_tmp(&tmp);
                Err(e)
            }
        }
    }

    /// [`crate::unpack::settle`] against the merged tree of `lowers` (mounted read-only in the
    /// build directory when there are several).
    fn settle_direct(
        &self,
        tmp: &Path,
        lowers: &[PathBuf],
        log: &crate::unpack::DirectLog,
    ) -> Result<bool> {
        let upper = tmp.join("fs");
        if let [one] = lowers {
            return crate::unpack::settle(&upper, one, log);
        }
        let merged = tmp.join("merged");
        ctx(fs::create_dir_all(&merged), || {
            format!("create {}", merged.display())
        })?;
        let m = mount_overlay(lowers, None, &merged)?;
        let r = crate::unpack::settle(&upper, &merged, log);
        drop(m);
        let _ = fs::remove_dir(&merged);
        r
    }

    /// Makes the snapshots built by one call durable (one `syncfs` of the store's filesystem)
    /// and renames them into place, base first; the snapshots directory is synced once.
    fn commit_snapshots(&self, pending: Vec<Pending>) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let dir = self.snapshots_dir();
        let synced = fs::File::open(&dir)
            .and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from))
            .map_err(|e| Error::io(format!("sync the filesystem of {}", dir.display()), e));
        crate::timings::mark(|| "syncfs".into());
        if let Err(e) = synced {
            for p in &pending {
                remove_tmp(&p.tmp);
            }
            return Err(e);
        }
        let mut first_err = None;
        for p in pending {
            let dest = dir.join(&p.key);
            if first_err.is_some() {
                remove_tmp(&p.tmp);
                continue;
            }
            if let Err(e) = fs::rename(&p.tmp, &dest) {
                remove_tmp(&p.tmp);
                first_err = Some(Error::io(format!("rename to {}", dest.display()), e));
            }
        }
        let synced = crate::sync_dir(&dir);
        match first_err {
            Some(e) => Err(e),
            None => synced,
        }
    }

    /// Applies one layer into a new build directory `snapshots/tmp-<pid>.<n>` (its `fs` on the
    /// overlay of `lowers`) and returns that directory; removes it on an error.
    fn build_snapshot(
        &self,
        image: &str,
        layer: &LayerRecord,
        lowers: &[PathBuf],
        opts: &UnpackOptions,
        source: LayerInput,
        sync: &crate::pipeline::Syncer,
    ) -> Result<PathBuf> {
        let tmp = self.new_build_dir()?;
        let upper = tmp.join("fs");
        let work = tmp.join("work");
        let merged = tmp.join("merged");
        for d in [&work, &merged] {
            if let Err(e) = fs::create_dir_all(d) {
                remove_tmp(&tmp);
                return Err(Error::io(format!("create {}", d.display()), e));
            }
        }
        let apply = |dest: &Path| -> Result<()> {
            match source {
                LayerInput::Stored => crate::unpack::apply_layer_blob(
                    self,
                    image,
                    layer,
                    dest,
                    opts,
                    Some(sync),
                    None,
                )
                .map(|_| ()),
                LayerInput::Stream {
                    mut reader,
                    verified,
                } => crate::unpack::apply_layer_stream(
                    image,
                    &mut reader,
                    layer,
                    dest,
                    opts,
                    Some(sync),
                    None,
                    |_| verified(),
                )
                .map(|_| ()),
            }
        };
        let r = if lowers.is_empty() {
            apply(&upper)
        } else {
            match mount_overlay(lowers, Some((&upper, &work)), &merged) {
                Ok(m) => {
                    let r = apply(&merged);
                    drop(m);
                    r
                }
                Err(e) => Err(e.into()),
            }
        };
        if let Err(e) = r {
            remove_tmp(&tmp);
            return Err(e);
        }
        let _ = fs::remove_dir_all(&work);
        let _ = fs::remove_dir(&merged);
        Ok(tmp)
    }

    /// Removes the leftovers of builds whose process is gone (their overlay detached first):
    /// its owner lock is free ([`crate::owner`]), whatever process has its PID now.
    fn remove_dead_builds(&self) {
        let Ok(rd) = fs::read_dir(self.snapshots_dir()) else {
            return;
        };
        let mut owners = crate::owner::Owners::default();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if self.dead_build(&name, &mut owners) {
                remove_tmp(&e.path());
            }
        }
        let _ = owners.release(self.root());
    }

    /// Whether snapshot directory `name` is a build (`tmp-<owner>.<n>`) whose process is gone.
    fn dead_build(&self, name: &str, owners: &mut crate::owner::Owners) -> bool {
        name.strip_prefix("tmp-")
            .and_then(crate::owner::owner_of)
            .is_some_and(|o| owners.dead(self.root(), &o).unwrap_or(false))
    }

    /// Removes the snapshots no image record uses and no [`SnapshotLease`] holds (what
    /// [`Store::gc`] does for snapshots, without touching blobs or waiting for pulls): the node
    /// calls it when a container is removed. Returns how many were removed.
    pub fn gc_unused_snapshots(&self) -> Result<usize> {
        let _l = self.store_lock()?;
        let images = self.images()?;
        self.gc_snapshots(&images)
    }

    /// Removes snapshots that no image record's chain uses (skipping ones being built or held
    /// by a [`SnapshotLease`]) and
    /// the leftovers of interrupted builds. Returns how many snapshots were removed.
    pub(crate) fn gc_snapshots(&self, images: &[crate::ImageRecord]) -> Result<usize> {
        let dir = self.snapshots_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
        };
        let used: std::collections::HashSet<String> =
            images.iter().flat_map(|r| chain_keys(&r.layers)).collect();
        let mut removed = 0;
        let mut owners = crate::owner::Owners::default();
        for e in rd {
            let e = ctx(e, || format!("list {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("tmp-") {
                if self.dead_build(&name, &mut owners) {
                    remove_tmp(&e.path());
                }
                continue;
            }
            if used.contains(&name) {
                continue;
            }
            let Some(_lock) = self.try_lock_named(&format!("snapshots/{name}.lock"))? else {
                continue;
            };
            ctx(fs::remove_dir_all(e.path()), || {
                format!("remove {}", e.path().display())
            })?;
            let _ = fs::remove_file(self.root().join(format!("locks/snapshots/{name}.lock")));
            let _ = fs::remove_file(
                self.root()
                    .join(format!("locks/snapshots/{name}.build.lock")),
            );
            removed += 1;
        }
        owners.release(self.root())?;
        Ok(removed)
    }
}

/// Removes an interrupted build, first detaching a mount a dead builder may have left, so the
/// removal never goes through an overlay into the lower snapshots.
fn remove_tmp(tmp: &Path) {
    let merged = tmp.join("merged");
    let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
    if fs::remove_dir(&merged).is_err() && merged.exists() {
        // still a mount point or not empty: leave it rather than risk deleting through it
        return;
    }
    let _ = fs::remove_dir_all(tmp);
}

/// How a layer applied into a snapshot of its own came out.
enum Direct {
    /// Applied into this build directory; what it assumed about the layers below.
    Built(PathBuf, Box<crate::unpack::DirectLog>),
    /// It needs the layers below (applied again onto their overlay, from the store, after the
    /// download's verification, which is still to be waited for when given).
    NeedsLowers(Option<Box<dyn FnOnce() -> Result<()> + Send>>),
}

fn cancelled(layer: &LayerRecord) -> Error {
    Error::io(
        format!("apply layer {}", layer.digest),
        io::Error::other("a layer below it failed"),
    )
}

/// A layer's stream, cut off once a layer below it failed (nothing above a failed layer is
/// kept).
struct Cancellable {
    inner: Box<dyn io::Read + Send>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    index: usize,
}

impl io::Read for Cancellable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::SeqCst) < self.index {
            return Err(io::Error::other("a layer below it failed"));
        }
        self.inner.read(buf)
    }
}

#[derive(Debug)]
enum Status {
    Pending,
    /// Its snapshot's `fs` directory (in place, or in its build directory).
    Complete(PathBuf),
    Failed,
}

#[derive(Debug)]
struct SchedState {
    status: Vec<Status>,
    /// Layers that may be applied at once, less those being applied.
    free: usize,
    /// Layers waiting to be applied: the lowest goes first.
    waiting: std::collections::BTreeSet<usize>,
}

/// The layers of one [`Store::layer_snapshot_from`] call: which are complete, and a bound on
/// how many are applied at once.
#[derive(Debug)]
struct Sched {
    state: std::sync::Mutex<SchedState>,
    cv: std::sync::Condvar,
    /// The lowest failed layer (`usize::MAX`: none).
    cancel: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Layers applied apart and kept, and applied again.
    apart: std::sync::atomic::AtomicUsize,
    again: std::sync::atomic::AtomicUsize,
}

/// A place among the layers being applied, given back on drop.
struct Permit<'a>(&'a Sched);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.lock().free += 1;
        self.0.cv.notify_all();
    }
}

impl Sched {
    fn new(layers: usize, workers: usize) -> Sched {
        Sched {
            state: std::sync::Mutex::new(SchedState {
                status: (0..layers).map(|_| Status::Pending).collect(),
                free: workers.max(1),
                waiting: Default::default(),
            }),
            cv: std::sync::Condvar::new(),
            cancel: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
            apart: Default::default(),
            again: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SchedState> {
        // the state is plain data: a panicked holder leaves it usable
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a layer below `i` failed.
    fn cancelled(&self, i: usize) -> bool {
        self.cancel.load(Ordering::SeqCst) < i
    }

    /// Layer `i` is complete (`Some` of its `fs` directory) or failed.
    fn finish(&self, i: usize, dir: Option<PathBuf>) {
        let mut s = self.lock();
        match dir {
            Some(d) => s.status[i] = Status::Complete(d),
            None => {
                s.status[i] = Status::Failed;
                self.cancel.fetch_min(i, Ordering::SeqCst);
            }
        }
        drop(s);
        self.cv.notify_all();
    }

    /// Waits for a place to apply layer `i`; `None` once a layer below it failed.
    fn acquire(&self, i: usize) -> Option<Permit<'_>> {
        let mut s = self.lock();
        s.waiting.insert(i);
        loop {
            if self.cancelled(i) {
                s.waiting.remove(&i);
                drop(s);
                self.cv.notify_all();
                return None;
            }
            if s.free > 0 && s.waiting.first() == Some(&i) {
                s.waiting.remove(&i);
                s.free -= 1;
                drop(s);
                // the next waiter may go if there are more places
                self.cv.notify_all();
                return Some(Permit(self));
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn complete_below(s: &SchedState, i: usize) -> Option<Vec<PathBuf>> {
        s.status[..i]
            .iter()
            .map(|st| match st {
                Status::Complete(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// The `fs` directories of the layers below `i` if they are all complete now.
    fn lowers_complete(&self, i: usize) -> Option<Vec<PathBuf>> {
        Self::complete_below(&self.lock(), i)
    }

    /// Waits until the layers below `i` are complete (their `fs` directories) or one failed
    /// (`None`).
    fn wait_lowers(&self, i: usize) -> Option<Vec<PathBuf>> {
        let mut s = self.lock();
        loop {
            if s.status[..i].iter().any(|st| matches!(st, Status::Failed)) {
                return None;
            }
            if let Some(d) = Self::complete_below(&s, i) {
                return Some(d);
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}
