//! Pulls an image from a registry into the node image store: resolve by name with the
//! credentials in kubelet order, fetch by digest, verify, store.
//!
//! One download per blob however many pulls ask: a blob already in the store is reused; a blob
//! being downloaded by another pull (thread or process) is waited for through the store's
//! per-blob lock, then reused. Layers download in parallel ([`DEFAULT_CONCURRENCY`]).
//!
//! Layers are unpacked into the store's overlay snapshots while they download
//! (the `stream_unpack` module), so a pull leaves every layer ready to run: a container start
//! finds the snapshots in place. A layer's snapshot is kept only after its blob digest and the
//! config's diff ID for it verified; the image record is written only after every layer did.
//! Without root (no overlay snapshots), with [`Puller::with_unpack`] `false`, or when the
//! config lists no diff IDs, the pull stores the blobs only and snapshots are made at the
//! first container start.
//!
//! With [`Puller::with_discard_unpacked_layers`] (containerd's CRI `discard_unpacked_layers`)
//! a layer unpacked while it downloads is not kept as a blob: its download is verified as
//! always, left in the store's ingest directory unsynced, and removed once every layer is
//! applied and verified, before the `syncfs` that makes the snapshots durable. A layer whose snapshot
//! is already there is not downloaded at all. When the layers cannot be unpacked after all,
//! the blobs are committed as in an ordinary pull.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt, TryStreamExt};
use kubepull_core::keyring::Credential;
use kubepull_core::reference::{self, Digest, Reference};
use kubepull_registry::{
    Client, ConfirmingHost, Descriptor, HostsDir, Platform, RegistryCredential, Repository,
};
use kubepull_store::{SnapshotChain, Store};

use crate::stream_unpack::{Feed, Feeds};

/// Layers fetched at once (containerd's default `max_concurrent_downloads` is 3).
pub const DEFAULT_CONCURRENCY: usize = 3;

/// The largest config blob read into memory (configs are a few KiB; 8 MiB is generous).
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Progress of a pull, for bars and logs.
pub trait Progress: Send + Sync {
    /// The image resolved; these blobs (config and layers) will be made present.
    fn resolved(&self, _image: &str, _digest: &Digest, _blobs: &[(Digest, u64)]) {}
    /// `n` more bytes of `digest` arrived.
    fn bytes(&self, _digest: &Digest, _n: u64) {}
    /// `digest` is present: downloaded now (`reused` false) or already there.
    fn blob_done(&self, _digest: &Digest, _reused: bool) {}
    /// The download of `digest` continued an interrupted one: the first `offset` bytes were
    /// already in the store's ingest directory and were not downloaded again.
    fn resumed(&self, _digest: &Digest, _offset: u64) {}
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The normalized image name the record is stored under.
    pub name: String,
    /// What the name resolved to (index or manifest digest).
    pub digest: Digest,
    /// The platform manifest digest.
    pub manifest_digest: Digest,
    /// The config digest (the image ID).
    pub config_digest: Digest,
    /// Config + layers, compressed.
    pub size: u64,
    /// Bytes downloaded by this pull.
    pub downloaded: u64,
    /// Bytes of interrupted earlier downloads this pull continued from (not downloaded again).
    pub resumed: u64,
    /// Blobs downloaded by this pull.
    pub fetched_blobs: usize,
    /// Blobs that were already present (or fetched by a concurrent pull).
    pub reused_blobs: usize,
    /// The credential that worked (`secret/NAME`, `node`), `None` for anonymous.
    pub credential_source: Option<String>,
    /// The index of that credential in the list given.
    pub credential_index: Option<usize>,
    /// Layer snapshots this pull built (unpacked while downloading).
    pub snapshots_built: usize,
    /// Every layer's snapshot is in place: a container start does no unpacking.
    pub rootfs_ready: bool,
    /// Why the layers were not unpacked, when they were not.
    pub unpack_skipped: Option<String>,
    /// Layers whose blobs the image does not keep (unpacked, then discarded).
    pub layers_discarded: usize,
    /// Wall time.
    pub duration: Duration,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The reference does not parse.
    #[error("invalid image reference {image:?}: {source}")]
    InvalidReference {
        /// The input.
        image: String,
        /// Why.
        #[source]
        source: reference::ReferenceError,
    },
    /// The registry side failed.
    #[error(transparent)]
    Registry(#[from] kubepull_registry::Error),
    /// The store failed.
    #[error("image store: {0}")]
    Store(#[from] kubepull_store::Error),
    /// The host configuration does not apply.
    #[error("hosts.toml: {0}")]
    Hosts(String),
    /// The image config is not usable.
    #[error("image config {digest}: {reason}")]
    Config {
        /// The config digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// A blocking task failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl PullError {
    /// The registry error kind, when the registry failed.
    pub fn kind(&self) -> Option<kubepull_registry::ErrorKind> {
        match self {
            PullError::Registry(e) => Some(e.kind()),
            PullError::InvalidReference { .. } => {
                Some(kubepull_registry::ErrorKind::InvalidReference)
            }
            _ => None,
        }
    }
}

/// An error with its causes, `a: b: c` (repeated texts skipped), for one-line reports.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}

/// Parses an image as written in a pod spec (normalized: `busybox` is
/// `docker.io/library/busybox`), once per pull: the [`Reference`] is what [`Puller::pull`],
/// the registry and [`store_name_of`] take.
pub fn parse_image(image: &str) -> Result<Reference, PullError> {
    reference::parse_normalized_named(image).map_err(|source| PullError::InvalidReference {
        image: image.to_string(),
        source,
    })
}

/// The normalized name an image is stored under: `docker.io/library/busybox:latest`,
/// `reg:5000/app@sha256:…` (the default tag applied as the kubelet does).
pub fn store_name_of(r: &Reference) -> String {
    let mut s = r.name();
    if let Some(t) = r.tag() {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = r.digest() {
        s.push('@');
        s.push_str(&d.to_string());
    }
    if r.tag().is_none() && r.digest().is_none() {
        s.push_str(":latest");
    }
    s
}

/// [`store_name_of`] an image still in its written form ([`parse_image`] first).
pub fn store_name(image: &str) -> Result<String, PullError> {
    parse_image(image).map(|r| store_name_of(&r))
}

/// Pulls images into a store.
#[derive(Clone)]
pub struct Puller {
    client: Client,
    store: Store,
    platform: Platform,
    concurrency: usize,
    unpack: bool,
    discard: bool,
    hosts: Option<Arc<HostsDir>>,
    images: Arc<tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Puller {
    /// A puller over a registry client and a store, for `platform`.
    pub fn new(client: Client, store: Store, platform: Platform) -> Self {
        Puller {
            client,
            store,
            platform,
            concurrency: DEFAULT_CONCURRENCY,
            unpack: true,
            discard: false,
            hosts: None,
            images: Arc::default(),
        }
    }

    /// Sets the number of layers fetched at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Whether layers are unpacked into the store's snapshots while they download (default
    /// true; needs root and overlayfs, skipped otherwise).
    pub fn with_unpack(mut self, unpack: bool) -> Self {
        self.unpack = unpack;
        self
    }

    /// Whether the blobs of layers unpacked by the pull are discarded once they are applied
    /// and verified (default false, as containerd's CRI `discard_unpacked_layers`:
    /// internal/cri/server/images/image_pull.go passes
    /// `WithChildLabelMap(images.ChildGCLabelsFilterLayers)`, so the manifest holds no GC
    /// reference to its layers and the content store's GC removes them after the unpack).
    /// Here the layer's download is never synced nor committed at all. Manifest and config
    /// blobs are always kept; the image record marks its layers
    /// [discarded](kubepull_store::LayerRecord::discarded). Only with [`Puller::with_unpack`].
    pub fn with_discard_unpacked_layers(mut self, discard: bool) -> Self {
        self.discard = discard;
        self
    }

    /// Whether [`Puller::with_discard_unpacked_layers`] is set.
    pub fn discards_unpacked_layers(&self) -> bool {
        self.discard
    }

    /// Whether this puller's pulls keep the layer blobs because they need them: blobs only
    /// ([`Puller::with_unpack`] `false`), or no layer snapshots here (not root). For such a
    /// pull an image whose record does not keep its layer blobs
    /// ([`Store::discarded_blobs_missing`]) is not present.
    pub fn needs_layer_blobs(&self) -> bool {
        !self.unpack
            || kubepull_store::snapshot_support(0, &kubepull_store::UnpackOptions::default())
                .is_err()
    }

    /// Uses containerd-style host configuration (mirrors, per-host TLS). Credentials go only to
    /// the registry's own host (its server entry, or a `[host]` entry for the same host): a
    /// mirror on another host is pulled from anonymously (the keyring is keyed by host, and a
    /// pod's secret for the registry is not a secret for a mirror).
    pub fn with_hosts(mut self, hosts: HostsDir) -> Self {
        self.hosts = Some(Arc::new(hosts));
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Pulls `reference` ([`parse_image`]) with `credentials` in order (anonymous when
    /// empty). Without a tag or digest the `latest` tag is pulled and recorded.
    pub async fn pull(
        &self,
        reference: &Reference,
        credentials: &[Credential],
        progress: Arc<dyn Progress>,
    ) -> Result<PullReport, PullError> {
        let started = Instant::now();
        kubepull_store::timings::mark(|| "pull start".into());
        let name = store_name_of(reference);
        // one pull per image name at a time in this process; others wait and then find the blobs
        let gate = {
            let mut m = self.images.lock().await;
            m.entry(name.clone()).or_default().clone()
        };
        let _held = gate.lock().await;

        let creds: Vec<RegistryCredential> = credentials
            .iter()
            .map(RegistryCredential::from_keyring)
            .collect();
        // the hosts a blob may also come from when the resolving host fails it
        let mut fallback_hosts: Vec<kubepull_registry::RegistryHost> = vec![];
        let mut server_label = String::new();
        let (repo, resolved) = match &self.hosts {
            None => {
                self.client
                    .resolve_image(reference, &creds, &self.platform)
                    .await?
            }
            Some(h) => {
                let hosts = h
                    .hosts_for(reference.domain())
                    .map_err(|e| PullError::Hosts(e.to_string()))?;
                server_label = hosts
                    .iter()
                    .find(|x| x.is_server)
                    .map(|x| x.host_label())
                    .unwrap_or_default();
                fallback_hosts = hosts.clone();
                let server_label = server_label.clone();
                self.client
                    .resolve_image_via(
                        reference,
                        &hosts,
                        // the keyring is keyed by host: the pod's credentials for the registry
                        // go to entries for the registry's own host only
                        |host| {
                            if host.is_server || host.host_label() == server_label {
                                creds.clone()
                            } else {
                                vec![]
                            }
                        },
                        &self.platform,
                    )
                    .await?
            }
        };
        kubepull_store::timings::mark(|| "manifest resolved".into());
        let credential_index = resolved
            .credential_source
            .as_ref()
            .and_then(|s| creds.iter().position(|c| c.source() == s));
        // Per-blob fallback (containerd core/remotes/docker/fetcher.go, Fetch: each blob is
        // tried on every host with the pull capability, in order): the resolving host first,
        // then the other pull hosts in hosts.toml order. Any host's bytes are verified
        // against the digest, so a mirror that fails or serves wrong bytes mid-pull costs a
        // retry, never a bad blob. Credentials go only to the registry's own host, as for
        // resolving: the one that worked, else the first.
        let mut repos: Vec<Arc<Repository>> = vec![Arc::new(repo)];
        let resolving = fallback_hosts
            .iter()
            .position(|h| h.origin == *repos[0].base_url() && h.capabilities.pull);
        for (i, h) in fallback_hosts.iter().enumerate() {
            if Some(i) == resolving || !h.capabilities.pull {
                continue;
            }
            let cred = if h.is_server || h.host_label() == server_label {
                credential_index
                    .and_then(|i| creds.get(i))
                    .or(creds.first())
                    .cloned()
            } else {
                None
            };
            repos.push(Arc::new(self.client.repository_on(reference, cred, h)?));
        }
        let repos = Arc::new(repos);
        let manifest_digest = resolved.manifest_descriptor.digest.clone();
        // a pull lease keeps a concurrent `gc` from deleting blobs committed before the image
        // record that references them is written
        let s = self.store.clone();
        let _lease = blocking(move || s.pull_lease()).await??;
        // The manifest is stored beside the downloads (before the image record that names it),
        // started with them and awaited whatever they end in: a pull that returns, even with
        // an error, has nothing of its own still being written (a temporary file in ingest/).
        let manifest_stored = {
            let store = self.store.clone();
            let bytes = resolved.manifest_bytes.clone();
            let md = manifest_digest.clone();
            async move { blocking(move || store.put_blob_bytes(&md, &bytes)).await }
        };

        let config = resolved.manifest.config.clone();
        let mut blobs: Vec<Descriptor> = vec![config.clone()];
        blobs.extend(resolved.manifest.layers.iter().cloned());
        progress.resolved(
            &name,
            &resolved.digest,
            &blobs
                .iter()
                .map(|d| (d.digest.clone(), d.size))
                .collect::<Vec<_>>(),
        );
        // blobs this repository's images hold (fetched from this repository before)
        let store = self.store.clone();
        let repo_name = reference.name();
        let names = repo_name.clone();
        let known: Arc<std::collections::HashSet<String>> = Arc::new(
            blocking(move || -> Result<_, kubepull_store::Error> {
                let mut set = std::collections::HashSet::new();
                for rec in store.images()? {
                    let same = reference::parse_normalized_named(&rec.name)
                        .is_ok_and(|r| r.name() == names);
                    if same {
                        set.extend(rec.blobs().map(str::to_string));
                        // a layer the image does not keep was fetched from the repository too
                        set.extend(rec.layers.iter().map(|l| l.digest.clone()));
                    }
                }
                Ok(set)
            })
            .await??,
        );
        let mut rec = kubepull_store::ImageRecord::new(
            name.clone(),
            resolved.digest.clone(),
            manifest_digest.clone(),
            config.digest.clone(),
            resolved
                .manifest
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.media_type.clone(), l.size))
                .collect(),
            resolved
                .platform
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| self.platform.to_string()),
            blobs.iter().map(|d| d.size).sum(),
        )
        .with_times(now_secs(), now_secs());
        // decided before anything is downloaded: where no snapshot can be built (not root,
        // too many layers) the layers are kept as blobs, as in an ordinary pull
        let discard = self.unpack
            && self.discard
            && kubepull_store::snapshot_support(
                rec.layers.len(),
                &kubepull_store::UnpackOptions::default(),
            )
            .is_ok();
        if discard {
            // the unpack reads a layer it applies again from the download left in ingest/
            for l in &mut rec.layers {
                l.discarded = true;
            }
        }
        // The layers' snapshots are held from here until the image record is written: until
        // then no record names them, and neither the node's snapshot cleanup nor `gc` may take
        // them (in particular not one this pull found in place and so did not download).
        let snapshot_lease = if self.unpack {
            let (store, layers) = (self.store.clone(), rec.layers.clone());
            Some(blocking(move || store.snapshot_lease(&layers)).await??)
        } else {
            None
        };
        // where each layer's snapshot lives: a layer whose snapshot is in place is not
        // downloaded by a pull that does not keep layer blobs
        let snapshot_dirs: Vec<Option<PathBuf>> = kubepull_store::chain_keys(&rec.layers)
            .iter()
            .map(|k| discard.then(|| self.store.snapshot_path(k)))
            .collect();
        // the downloads such a pull unpacks from and does not keep
        let holds = Arc::new(HeldPartials::new(self.store.clone()));
        // its writes to the store on blocking threads, waited for before it returns
        let writes = Writes::default();

        let feeds = Arc::new(Feeds::new(
            resolved.manifest.layers.iter().map(|l| &l.digest),
        ));
        // a cancelled pull (its future dropped) stops the unpack waiting for its downloads
        let _fail_on_drop = FailOnDrop(feeds.clone());
        // The config is fetched beside the layers, outside their concurrency limit (it is
        // small, and its diff IDs key the snapshots, so the unpack starts once it is here;
        // the layers' feeds keep what their downloads did until then). containerd's fetch
        // handler dispatches a manifest's config and layers together too
        // (core/images/handlers.go, Dispatch of ChildrenHandler's children).
        // Whichever of the config and the layers fails first stops the other, and its error is
        // the pull's.
        let config_failed = tokio::sync::Notify::new();
        let layers_failed = tokio::sync::Notify::new();
        let config_and_unpack = async {
            let r = async {
                let config_result = ensure_blob(
                    &repos,
                    &self.store,
                    &writes,
                    &config,
                    &repo_name,
                    known.contains(&config.digest.to_string()),
                    progress.clone(),
                    None,
                    Keep::Blob,
                )
                .await?;
                let (rec, unpack_skipped) = if self.unpack {
                    let store = self.store.clone();
                    let cd = config.digest.clone();
                    let bytes = blocking(move || store.read_blob(&cd, MAX_CONFIG_SIZE)).await??;
                    match config_diff_ids(&config.digest, &bytes)? {
                        ids if ids.is_empty() => (
                            rec,
                            Some("the image config lists no rootfs.diff_ids".to_string()),
                        ),
                        ids => (
                            rec.with_diff_ids(&ids).map_err(|e| PullError::Config {
                                digest: config.digest.to_string(),
                                reason: match e {
                                    kubepull_store::Error::CorruptRecord { reason, .. } => reason,
                                    e => e.to_string(),
                                },
                            })?,
                            None,
                        ),
                    }
                } else {
                    (rec, Some("disabled".to_string()))
                };
                Ok::<_, PullError>((config_result, rec, unpack_skipped))
            };
            let r = tokio::select! {
                r = r => r,
                // the layers' error is the pull's (returned below)
                () = layers_failed.notified() => Err(PullError::Internal("a layer failed".into())),
            };
            let (config_result, rec, unpack_skipped) = match r {
                Ok(x) => x,
                Err(e) => {
                    // the layers' downloads stop: the pull fails with this error
                    config_failed.notify_one();
                    return Err(e);
                }
            };
            let unpacked = if unpack_skipped.is_none() {
                let (store, feeds, layers, name, holds) = (
                    self.store.clone(),
                    feeds.clone(),
                    rec.layers.clone(),
                    name.clone(),
                    holds.clone(),
                );
                Some(
                    tokio::task::spawn_blocking(
                        move || -> Result<SnapshotChain, kubepull_store::Error> {
                            let present = || {
                                kubepull_store::chain_keys(&layers)
                                    .iter()
                                    .filter(|k| store.snapshot_path(k).is_dir())
                                    .count()
                            };
                            let before = present();
                            loop {
                                let restarts = feeds.restarts();
                                // every layer applied and verified: the downloads not
                                // kept go before the syncfs, so it never writes them
                                let mut applied = || {
                                    holds.discard();
                                };
                                match snapshot_from_feeds(
                                    &store,
                                    &name,
                                    &layers,
                                    &feeds,
                                    &mut applied,
                                ) {
                                    Ok(mut chain) => {
                                        chain.built = present().saturating_sub(before);
                                        return Ok(chain);
                                    }
                                    // a download went on from another host while its layer
                                    // was being applied: the snapshots below are kept, that
                                    // layer is applied again from its finished file
                                    Err(_) if feeds.restarts() != restarts => {}
                                    Err(e) => return Err(e),
                                }
                            }
                        },
                    )
                    .await,
                )
            } else {
                None
            };
            Ok((config_result, rec, unpack_skipped, unpacked))
        };
        let downloads = async {
            let layers = stream::iter(
                resolved
                    .manifest
                    .layers
                    .iter()
                    .cloned()
                    .zip(snapshot_dirs.iter().cloned()),
            )
            .map(|(d, snapshot)| {
                let repos = repos.clone();
                let store = self.store.clone();
                let writes = writes.clone();
                let progress = progress.clone();
                let known = known.contains(&d.digest.to_string());
                let repo_name = repo_name.clone();
                let feeds = feeds.clone();
                let keep = match snapshot {
                    Some(snapshot) => Keep::UnlessUnpacked {
                        snapshot,
                        held: holds.clone(),
                    },
                    None => Keep::Blob,
                };
                async move {
                    ensure_blob(
                        &repos,
                        &store,
                        &writes,
                        &d,
                        &repo_name,
                        known,
                        progress,
                        Some(feeds),
                        keep,
                    )
                    .await
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<Ensured>>();
            let r = tokio::select! {
                r = layers => r.map_err(|e| {
                    // the config's download stops
                    layers_failed.notify_one();
                    Some(e)
                }),
                // the config's error is the pull's (returned below)
                () = config_failed.notified() => Err(None),
            };
            if let Err(e) = &r {
                let why = match e {
                    Some(e) => error_chain(e),
                    None => "the image config failed".to_string(),
                };
                feeds.fail_unfinished(&why);
            }
            kubepull_store::timings::mark(|| "downloads done".into());
            r
        };
        let (results, config_and_unpack, manifest_stored) =
            tokio::join!(downloads, config_and_unpack, manifest_stored);
        // the commits of layers whose downloads stopped when another failed run to their end
        writes.settled().await;
        // a failed pull leaves none of the downloads it would not have kept (a cancelled one:
        // `holds` dropped)
        if results.is_err()
            || config_and_unpack.is_err()
            || matches!(
                &config_and_unpack,
                Ok((_, _, _, Some(Ok(Err(e))))) if !matches!(e, kubepull_store::Error::Snapshot(_))
            )
        {
            let h = holds.clone();
            blocking(move || h.discard()).await?;
        }
        let mut results = match results {
            Ok(r) => r,
            // a layer failed first
            Err(Some(e)) => return Err(e),
            // the config failed first: its error
            Err(None) => {
                config_and_unpack?;
                return Err(PullError::Internal("the image config failed".into()));
            }
        };
        let (config_result, mut rec, mut unpack_skipped, unpacked) = config_and_unpack?;
        manifest_stored??;
        let (mut snapshots_built, mut rootfs_ready) = (0, false);
        match unpacked {
            None => {}
            Some(Ok(Ok(chain))) => {
                snapshots_built = chain.built;
                rootfs_ready = true;
                if discard {
                    // snapshots found in place may have been committed by another pull
                    // whose renames are not durable yet: the record about to rely on them
                    // alone (no blobs) is written only once they are
                    let store = self.store.clone();
                    blocking(move || store.sync_snapshots_dir()).await??;
                    kubepull_store::timings::mark(|| "snapshots directory synced".into());
                }
            }
            // no overlay snapshots here (not root, no overlayfs, too many layers): the blobs
            // are stored; a container start unpacks another way
            Some(Ok(Err(kubepull_store::Error::Snapshot(e)))) => {
                unpack_skipped = Some(e.to_string());
            }
            // a layer that did not unpack (a diff ID that does not match, not a tar stream)
            // leaves nothing: the downloads this pull would not have kept went above
            Some(Ok(Err(e))) => return Err(PullError::Store(e)),
            Some(Err(e)) => return Err(PullError::Internal(e.to_string())),
        }
        if discard && !rootfs_ready {
            // nothing was unpacked after all (a snapshot error the checks before the pull
            // could not foresee): the layers are kept as blobs, as in an ordinary pull (a
            // verified download left in ingest/ is committed without fetching it again; a
            // layer skipped for its snapshot is fetched now). The results came in completion
            // order: each is matched with its layer by digest.
            for l in &mut rec.layers {
                l.discarded = false;
            }
            for r in results.iter_mut() {
                let Some(d) = resolved
                    .manifest
                    .layers
                    .iter()
                    .find(|l| l.digest == r.digest)
                else {
                    continue;
                };
                let again = ensure_blob(
                    &repos,
                    &self.store,
                    &writes,
                    d,
                    &repo_name,
                    known.contains(&d.digest.to_string()),
                    progress.clone(),
                    None,
                    Keep::Blob,
                )
                .await?;
                r.fetched |= again.fetched;
                r.downloaded += again.downloaded;
            }
        }
        results.push(config_result);
        let fetched_blobs = results.iter().filter(|r| r.fetched).count();
        let downloaded = results.iter().map(|r| r.downloaded).sum();
        let resumed = results.iter().map(|r| r.resumed).sum();
        let size = rec.size;
        let layers_discarded = rec.discarded_layers();

        kubepull_store::timings::mark(|| "downloads and unpack done".into());
        let store = self.store.clone();
        blocking(move || store.put_image(&rec)).await??;
        drop(snapshot_lease);
        kubepull_store::timings::mark(|| "image recorded".into());
        // the snapshots are committed and the record names them: the downloads the image does
        // not keep go, never synced
        // (normally removed before the snapshots' syncfs already; a layer whose snapshot
        // another pull committed meanwhile may still be downloading then)
        let left = holds.clone();
        if blocking(move || left.discard()).await? > 0 {
            kubepull_store::timings::mark(|| "unpacked layers discarded".into());
        }
        Ok(PullReport {
            name,
            digest: resolved.digest,
            manifest_digest,
            config_digest: config.digest,
            size,
            downloaded,
            resumed,
            fetched_blobs,
            reused_blobs: blobs.len() - fetched_blobs,
            credential_source: resolved.credential_source,
            credential_index,
            snapshots_built,
            rootfs_ready,
            unpack_skipped,
            layers_discarded,
            duration: started.elapsed(),
        })
    }
}

/// Bytes of a blob download between two background `fdatasync`s of its partial file. Measured
/// (100 MiB image of 25 MiB layers, interleaved runs, median of 9): at 32 MiB no layer was ever
/// written back before its commit, whose `fsync` then took 25–40 ms per layer on the pull's
/// critical path (0.197 s pull); at 8 MiB 0.170 s, at 4 MiB 0.166 s; at 1 GiB no setting
/// differed beyond the disk's run-to-run spread.
const WRITEBACK_EVERY: u64 = 4 << 20;

/// Writes a downloading blob's data to disk while it arrives: every [`WRITEBACK_EVERY`] bytes
/// a blocking task `fdatasync`s the partial file (one at a time per blob), so the page cache
/// does not hold the whole blob dirty until the commit's `fsync`, which then has only the tail
/// left to write. Durability does not depend on it (the commit still syncs); it moves the disk
/// writes off the end of the download, where they would delay the blob's commit.
struct Writeback {
    path: PathBuf,
    file: std::sync::Mutex<Option<std::fs::File>>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    last: std::sync::atomic::AtomicU64,
}

impl Writeback {
    fn new(path: PathBuf) -> Writeback {
        Writeback {
            path,
            file: std::sync::Mutex::new(None),
            busy: Arc::default(),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn progress(&self, done: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        let last = self.last.load(SeqCst);
        if done < last {
            // the partial was discarded and the download started again
            self.last.store(done, SeqCst);
            return;
        }
        if done - last < WRITEBACK_EVERY || self.busy.swap(true, SeqCst) {
            return;
        }
        self.last.store(done, SeqCst);
        let file = {
            let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_none() {
                *f = std::fs::File::open(&self.path).ok();
            }
            f.as_ref().and_then(|f| f.try_clone().ok())
        };
        let (Some(file), Ok(rt)) = (file, tokio::runtime::Handle::try_current()) else {
            self.busy.store(false, SeqCst);
            return;
        };
        let busy = self.busy.clone();
        rt.spawn_blocking(move || {
            // an error here is not the download's: the commit's fsync reports it
            let _ = file.sync_data();
            busy.store(false, SeqCst);
        });
    }
}

/// Builds the image's layer snapshots from the pull's feeds: each layer is read behind its
/// download (or from the store), base first. The one call into
/// [`Store::layer_snapshot_from_then`].
fn snapshot_from_feeds(
    store: &Store,
    name: &str,
    layers: &[kubepull_store::LayerRecord],
    feeds: &Feeds,
    applied: &mut dyn FnMut(),
) -> Result<SnapshotChain, kubepull_store::Error> {
    store.layer_snapshot_from_then(
        name,
        layers,
        &kubepull_store::UnpackOptions::default(),
        &mut |_, layer| feeds.input(layer, store),
        applied,
    )
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Fails the feeds still waiting when a pull ends or is dropped.
struct FailOnDrop(Arc<Feeds>);

impl Drop for FailOnDrop {
    fn drop(&mut self) {
        self.0.fail_unfinished("the pull was cancelled");
    }
}

/// The config's `rootfs.diff_ids` (OCI image-spec config.md), in order.
fn config_diff_ids(digest: &Digest, bytes: &[u8]) -> Result<Vec<Digest>, PullError> {
    let bad = |reason: String| PullError::Config {
        digest: digest.to_string(),
        reason,
    };
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "not JSON (line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Some(ids) = v.get("rootfs").and_then(|r| r.get("diff_ids")) else {
        return Ok(vec![]);
    };
    let ids = ids
        .as_array()
        .ok_or_else(|| bad("rootfs.diff_ids is not a list".into()))?;
    ids.iter()
        .enumerate()
        .map(|(i, d)| {
            d.as_str()
                .and_then(|s| Digest::parse(s).ok())
                .ok_or_else(|| bad(format!("rootfs.diff_ids[{i}] is not a digest")))
        })
        .collect()
}

/// A pull's writes to the store that run on blocking threads (commits, source lists,
/// holds). Such a write runs to its end even when the download that started it is dropped
/// (another layer failed, the config failed): the pull waits for them all before it returns,
/// so a pull that has returned has nothing of its own still being written (a temporary file
/// in ingest/, a commit half done).
#[derive(Clone, Default)]
struct Writes(Arc<tokio::sync::RwLock<()>>);

impl Writes {
    /// Runs `f` on a blocking thread as one of the pull's writes.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PullError> {
        let running = self.0.clone().read_owned().await;
        blocking(move || {
            let _running = running;
            f()
        })
        .await
    }

    /// Waits until none of the writes is running.
    async fn settled(&self) {
        drop(self.0.write().await);
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PullError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PullError::Internal(e.to_string()))
}

/// The verified downloads in ingest/ that a pull not keeping layer blobs unpacks from
/// ([`Keep::UnlessUnpacked`]), each held ([`kubepull_store::PartialHold`]), and the files of
/// its own ([`Store::private_ingest_path`]) it downloaded a layer into because another pull
/// held that layer's download and this pull's repository did not confirm it. They are
/// removed, never synced, as soon as every layer is applied and verified (before the
/// snapshots' `syncfs`, see [`Store::layer_snapshot_from_then`]), and whatever is left when
/// the pull ends, however it ends (a failed layer, a cancelled pull): a crash leaves the held
/// ones to `gc` and its own files to the next [`Store::open`].
struct HeldPartials {
    store: Store,
    held: std::sync::Mutex<Vec<kubepull_store::PartialHold>>,
    private: std::sync::Mutex<Vec<PathBuf>>,
}

impl HeldPartials {
    fn new(store: Store) -> HeldPartials {
        HeldPartials {
            store,
            held: std::sync::Mutex::default(),
            private: std::sync::Mutex::default(),
        }
    }

    fn take(&self) -> (Vec<kubepull_store::PartialHold>, Vec<PathBuf>) {
        (
            std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner())),
            std::mem::take(&mut *self.private.lock().unwrap_or_else(|e| e.into_inner())),
        )
    }

    fn add_private(&self, path: PathBuf) {
        self.private
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path);
    }

    fn add(&self, hold: kubepull_store::PartialHold) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hold);
    }

    /// Removes the held downloads ([`Store::discard_partial`]; blocking) and the files of
    /// this pull's own; returns how many there were. A removal that fails is logged: `gc`
    /// removes what is left in ingest/.
    fn discard(&self) -> usize {
        discard_partials(&self.store, self.take())
    }
}

fn discard_partials(
    store: &Store,
    (held, private): (Vec<kubepull_store::PartialHold>, Vec<PathBuf>),
) -> usize {
    let n = held.len() + private.len();
    for p in private {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %p.display(), "removing the download of a layer not kept")
            }
        }
    }
    for h in held {
        if let Err(e) = store.discard_partial(h) {
            tracing::warn!(error = %e, "removing the download of a layer not kept");
        }
    }
    n
}

impl Drop for HeldPartials {
    fn drop(&mut self) {
        let left = self.take();
        if left.0.is_empty() && left.1.is_empty() {
            return;
        }
        let store = self.store.clone();
        // discard_partial waits for the blob's lock: not on a runtime thread
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || discard_partials(&store, left));
            }
            Err(_) => {
                discard_partials(&store, left);
            }
        }
    }
}

/// Which host `repos[i]` is for [`Repository::blob_confirmed`]: the first resolved the image.
fn confirming_host(i: usize) -> ConfirmingHost {
    if i == 0 {
        ConfirmingHost::Resolving
    } else {
        ConfirmingHost::Other
    }
}

/// Whether a host of this pull confirms it serves `desc` (`HEAD` answered 2xx with the blob's
/// size, and its digest as [`Repository::blob_confirmed`] requires of that host, with the
/// credentials that host gets), asked in the order the blob's fetch tries them: the resolving
/// host, then the other hosts with the `pull` capability in `hosts.toml` order (containerd
/// core/remotes/docker/fetcher.go, Fetch: each host in turn until one serves the blob).
/// A host that answers 404, 405, 5xx, not at all, or without the headers that name the blob
/// passes the question to the next.
async fn confirmed_by_a_host(repos: &[Arc<Repository>], desc: &Descriptor) -> bool {
    for (i, repo) in repos.iter().enumerate() {
        if repo.blob_confirmed(desc, confirming_host(i)).await {
            return true;
        }
        if let Some(next) = repos.get(i + 1) {
            tracing::debug!(
                blob = %desc.digest,
                host = %repo.base_url(),
                next = %next.base_url(),
                "blob not confirmed; asking the next host"
            );
        }
    }
    false
}

/// A file of this pull's own in ingest/ ([`Store::private_ingest_path`]), removed when dropped
/// unless [kept](OwnFile::keep): a pull that fails or is cancelled while downloading into it
/// leaves nothing there (a long-running node agent would otherwise keep it until restarted).
struct OwnFile(Option<PathBuf>);

impl OwnFile {
    /// The path, now someone else's to remove or commit.
    fn keep(&mut self) -> Option<PathBuf> {
        self.0.take()
    }
}

impl Drop for OwnFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Whether a pull keeps a blob it downloads.
enum Keep {
    /// Committed into the store (synced).
    Blob,
    /// A layer unpacked by a pull that does not keep layer blobs, whose snapshot is this
    /// directory: not downloaded when the snapshot is in place; otherwise downloaded, verified
    /// and left in ingest/ unsynced, held ([`kubepull_store::PartialHold`]) in `held` until
    /// the pull discards it.
    UnlessUnpacked {
        /// The layer's snapshot directory.
        snapshot: PathBuf,
        /// Where the pull's holds go.
        held: Arc<HeldPartials>,
    },
}

/// What [`ensure_blob`] did.
struct Ensured {
    /// The blob.
    digest: Digest,
    /// Downloaded by this pull (not reused).
    fetched: bool,
    /// Bytes downloaded.
    downloaded: u64,
    /// Bytes resumed from an earlier partial download.
    resumed: u64,
}

impl Ensured {
    fn reused(digest: &Digest) -> Ensured {
        Ensured {
            digest: digest.clone(),
            fetched: false,
            downloaded: 0,
            resumed: 0,
        }
    }
}

/// Makes one blob present (or, with [`Keep::UnlessUnpacked`], its layer's snapshot or its
/// verified download).
#[allow(clippy::too_many_arguments)]
async fn ensure_blob(
    repos: &[Arc<Repository>],
    store: &Store,
    writes: &Writes,
    desc: &Descriptor,
    repo_name: &str,
    known: bool,
    progress: Arc<dyn Progress>,
    feeds: Option<Arc<Feeds>>,
    keep: Keep,
) -> Result<Ensured, PullError> {
    let feed: Option<Arc<Feed>> = feeds.as_ref().and_then(|f| f.get(&desc.digest));
    let fetched_here = |store: &Store| -> Result<bool, PullError> {
        Ok(known
            || store
                .blob_sources(&desc.digest)?
                .iter()
                .any(|r| r == repo_name))
    };
    // A stored blob is reused only when it was fetched from this repository before (an image of
    // this repository holds it, or its source list names the repository): blobs cached by a
    // pull of another repository (with other credentials) are fetched and verified again from
    // this one, so content is never handed to a pull whose registry would not serve it here.
    // A layer whose snapshot is in place is not needed at all by a pull that does not keep
    // layer blobs (the pull's snapshot lease keeps it there; the unpack does not read it), on
    // the same condition: it was fetched from this repository before.
    let present = |store: &Store| -> Result<bool, PullError> {
        let in_place = store.has_blob(&desc.digest)
            || matches!(&keep, Keep::UnlessUnpacked { snapshot, .. } if snapshot.is_dir());
        Ok(in_place && fetched_here(store)?)
    };
    if present(store)? {
        if let Some(f) = &feed {
            f.reused();
        }
        progress.blob_done(&desc.digest, true);
        return Ok(Ensured::reused(&desc.digest));
    }
    // the cross-process lock: whoever holds it downloads; the others wait and then reuse
    let s = store.clone();
    let d = desc.digest.clone();
    let lock = blocking(move || s.lock_blob(&d)).await??;
    if present(store)? {
        if let Some(f) = &feed {
            f.reused();
        }
        progress.blob_done(&desc.digest, true);
        drop(lock);
        return Ok(Ensured::reused(&desc.digest));
    }
    let discard = match &keep {
        Keep::UnlessUnpacked { held, .. } => Some(held.clone()),
        Keep::Blob => None,
    };
    // a partial left by an interrupted pull (even one killed with kill -9) is resumed: the
    // registry is asked only for the rest; one another pull verified and left there (it does
    // not keep the blob) verifies again and is not downloaded at all
    let path: PathBuf = store.ingest_path(&desc.digest);
    // A download another pull verified and holds (it unpacks from it and does not keep the
    // blob) is only read here: confirmed with this repository, never truncated nor appended
    // to. Its size is the size of the one content with this digest, so a descriptor naming
    // another size can match no download at all: it fails without touching the file.
    let held_size = {
        let (s, d, p) = (store.clone(), desc.digest.clone(), path.clone());
        blocking(move || -> Result<Option<u64>, kubepull_store::Error> {
            if !s.partial_held(&d)? {
                return Ok(None);
            }
            let m = std::fs::metadata(&p)
                .map_err(|e| kubepull_store::Error::io(format!("stat {}", p.display()), e))?;
            Ok(Some(m.len()))
        })
        .await??
    };
    if let Some(actual) = held_size.filter(|n| *n != desc.size) {
        return Err(kubepull_registry::Error::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual,
        }
        .into());
    }
    // The `HEAD` is skipped when the store's source list already names this repository for
    // the digest (this pull's own hold, a manifest naming a layer twice, the fallback that
    // keeps what this pull verified): the file is this repository's already.
    let trusted = fetched_here(store)?;
    // A whole download in ingest/ (held by another pull, or left by one that died) is this
    // repository's once a host of this pull confirms it serves the blob, asked in the order
    // the blob's fetch tries them: the mirror that would serve the pull may confirm what the
    // first host does not have.
    let whole = held_size.is_some() || {
        let p = path.clone();
        let size = desc.size;
        blocking(move || std::fs::metadata(&p).is_ok_and(|m| size > 0 && m.len() == size)).await?
    };
    let confirmed = !trusted && whole && confirmed_by_a_host(repos, desc).await;
    if whole && !trusted && !confirmed && held_size.is_none() {
        // not confirmed by any host: downloaded again in full (as the fetch would do after
        // asking the first host once more), into the file this pull's lock owns
        let p = path.clone();
        writes
            .run(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_len(0))
            })
            .await?
            .map_err(|e| kubepull_store::Error::io(format!("truncate {}", path.display()), e))?;
    }
    // A held download not confirmed (404, 405, 403, any error from every host) is downloaded
    // again into a file of this pull's own: the held file is never written. That file is
    // committed, or, by a pull that does not keep the layer, unpacked from and removed with
    // the pull's other downloads (never synced); whatever ends the pull removes it.
    let private = if held_size.is_some() && !trusted && !confirmed {
        Some(store.private_ingest_path()?)
    } else {
        None
    };
    let trusted = trusted || confirmed;
    // removed if this returns before the file is committed or handed to the pull's holds (an
    // error, a cancelled pull)
    let mut own_file = OwnFile(private.clone());
    let path = private.clone().unwrap_or(path);
    let reported = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(f) = &feed {
        // followed only from the first byte: a partial from an earlier attempt may be
        // discarded and rewritten by the resume, so such a blob is unpacked once verified
        if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
            f.follow(path.clone());
        }
    }
    // a download that is not kept is never synced (removed before the snapshots' syncfs)
    let writeback = discard
        .is_none()
        .then(|| Arc::new(Writeback::new(path.clone())));
    let pf: kubepull_registry::ProgressFn = {
        let (progress, reported, feed) = (progress.clone(), reported.clone(), feed.clone());
        let writeback = writeback.clone();
        Arc::new(move |d: &Digest, done: u64, _total: u64| {
            let before = reported.swap(done, std::sync::atomic::Ordering::Relaxed);
            if done > before {
                progress.bytes(d, done - before);
            }
            if let Some(f) = &feed {
                f.progress(done);
            }
            if let Some(w) = &writeback {
                w.progress(done);
            }
        })
    };
    let mut attempt = 0;
    let fetched = loop {
        let repo = &repos[attempt];
        match repo
            .fetch_blob_resumable_trusting(
                desc,
                &path,
                Some(&pf),
                trusted,
                confirming_host(attempt),
            )
            .await
        {
            Ok(f) => break f,
            Err(e) if attempt + 1 < repos.len() => {
                attempt += 1;
                tracing::warn!(
                    blob = %desc.digest,
                    failed = %repo.base_url(),
                    next = %repos[attempt].base_url(),
                    error = %error_chain(&e),
                    "blob fetch failed; trying the next host"
                );
                if let Some(f) = &feeds {
                    f.restart(&desc.digest);
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    if fetched.resumed_from > 0 {
        progress.resumed(&desc.digest, fetched.resumed_from);
    }
    kubepull_store::timings::mark(|| format!("blob {} downloaded", desc.digest));
    // fetch_blob_resumable verified size and digest
    if let Some(holds) = discard {
        // held before the blob's lock is released: no other pull can remove it meanwhile; the
        // repository is noted as for a committed blob (a later pull of it may use the snapshot).
        // After a download of this pull's own, the held file is held too: it has the bytes
        // this repository just served (the same digest), and a layer applied again from the
        // store (`LayerInput::Stored`) reads it there, not in the file of this pull's own.
        let s = store.clone();
        let d = desc.digest.clone();
        let repo_name = repo_name.to_string();
        let hold = writes
            .run(move || -> Result<_, kubepull_store::Error> {
                let hold = s.hold_partial(&d)?;
                s.add_blob_source(&d, &repo_name)?;
                Ok(hold)
            })
            .await??;
        // before the unpack is told: its `applied` step removes what is held by then
        holds.add(hold);
        if let Some(own) = own_file.keep() {
            holds.add_private(own);
        }
        drop(lock);
        if let Some(f) = &feed {
            f.fetched(path);
        }
        progress.blob_done(&desc.digest, false);
        return Ok(Ensured {
            digest: desc.digest.clone(),
            fetched: true,
            downloaded: fetched.downloaded,
            resumed: fetched.resumed_from,
        });
    }
    let s = store.clone();
    let d = desc.digest.clone();
    let repo_name = repo_name.to_string();
    // committed or not, the file is gone from its place once this returns
    let own = own_file.keep();
    writes
        .run(move || -> Result<(), kubepull_store::Error> {
            let committed = s.commit_blob(&lock, &path, &d, false);
            if committed.is_err() && own.is_some() {
                let _ = std::fs::remove_file(&path);
            }
            committed?;
            // still under the blob's lock: a waiting pull of this repository reuses it
            s.add_blob_source(&d, &repo_name)
        })
        .await??;
    kubepull_store::timings::mark(|| format!("blob {} committed", desc.digest));
    if let Some(f) = &feed {
        f.fetched(store.blob_path(&desc.digest));
    }
    progress.blob_done(&desc.digest, false);
    Ok(Ensured {
        digest: desc.digest.clone(),
        fetched: true,
        downloaded: fetched.downloaded,
        resumed: fetched.resumed_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_name_applies_the_default_tag_and_normalizes_once() {
        let r = parse_image("busybox").unwrap();
        assert_eq!(store_name_of(&r), "docker.io/library/busybox:latest");
        assert_eq!(r.tag(), None, "the reference itself is left as written");
        let r = parse_image("reg.example.com:5000/team/app:v1").unwrap();
        assert_eq!(store_name_of(&r), "reg.example.com:5000/team/app:v1");
        let d = Digest::sha256_of(b"m");
        let r = parse_image(&format!("reg.example.com/app@{d}")).unwrap();
        assert_eq!(store_name_of(&r), format!("reg.example.com/app@{d}"));
        // the stored name parses back to the same name: records are found by it
        let again = parse_image(&store_name_of(&r)).unwrap();
        assert_eq!(store_name_of(&again), store_name_of(&r));
        assert_eq!(
            store_name("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn a_bad_reference_is_an_invalid_reference_naming_the_input() {
        let e = parse_image("Not/Valid:::").unwrap_err();
        assert_eq!(
            e.kind(),
            Some(kubepull_registry::ErrorKind::InvalidReference)
        );
        assert!(e.to_string().contains("\"Not/Valid:::\""), "{e}");
    }
}
