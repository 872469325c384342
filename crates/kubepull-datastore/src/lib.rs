//! Storage for the kubepull API server.
//!
//! The API server keeps every object as bytes under a key (`/registry/<resource>/<namespace>/<name>`,
//! the layout kube-apiserver uses in etcd). A [`Datastore`] is a key-value store with a single
//! global, strictly increasing **revision**: every successful write gets the next revision, and that
//! number is the object's `metadata.resourceVersion`. This is etcd's model, so the etcd backend
//! maps onto it directly (resourceVersion is the etcd revision) and the embedded backend
//! reproduces it.
//!
//! Backends:
//! - [`memory::MemoryStore`]: in-process, for unit tests of code above the store; also the
//!   reference the shared conformance suite is checked against.
//! - [`redb_store::RedbStore`] (embedded, the default): one file in the data directory; an
//!   acknowledged write has been committed durably.
//! - [`etcd_store::EtcdStore`]: etcd over gRPC; several API servers can share one etcd cluster.
//!
//! [`open`] picks the backend from the server's storage flags.
//!
//! Writes are compare-and-swap on the key's `mod_revision`, which is how the API server turns a
//! stale `resourceVersion` into `409 Conflict` without a lock.
//!
//! Watches: [`Datastore::watch`] returns every change under a prefix with a revision greater than
//! the one given, in revision order, then live changes. A revision that is no longer in the
//! backend's history fails with [`Error::Compacted`] (the API server's `410 Gone`, "too old
//! resource version"). The in-process and embedded stores share one watch implementation, the
//! [`hub::Hub`]; etcd keeps its own history and the etcd store multiplexes etcd's watches.

#![forbid(unsafe_code)]

pub mod etcd_store;
pub mod hub;
pub mod memory;
pub mod redb_store;
pub mod snapshots;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// A store revision (etcd's `revision`; the API's `resourceVersion`). Revision 0 means "none".
pub type Revision = u64;

/// A stored value and its revisions.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The stored bytes (a JSON object for the API server).
    pub value: Vec<u8>,
    /// The revision of the write that created this key.
    pub create_revision: Revision,
    /// The revision of the last write to this key: the object's `resourceVersion`.
    pub mod_revision: Revision,
}

// Values may hold Secrets: Debug prints sizes, never the bytes.
impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A key was created (`prev` is `None`) or updated (`prev` is the value before).
    Put {
        /// The new value; `kv.mod_revision` is the event's revision.
        kv: KeyValue,
        /// The value before the write, if the key existed.
        prev: Option<KeyValue>,
    },
    /// A key was deleted.
    Delete {
        /// The value that was deleted (its last state).
        prev: KeyValue,
        /// The revision of the delete.
        revision: Revision,
    },
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key this change is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// The result of [`Datastore::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Matching keys in ascending key order, at most `limit` of them.
    pub items: Vec<KeyValue>,
    /// The store revision the list was read at (the list's `resourceVersion`).
    pub revision: Revision,
    /// True when more keys match after the last one returned.
    pub more: bool,
}

/// A stream of watch events. It ends (returns `None`) when the store closes the watch, for example
/// when the consumer fell too far behind; the caller then lists again and re-watches.
pub struct Watch {
    /// Events in revision order. An `Err` is the last item.
    pub events: mpsc::Receiver<Result<Event>>,
}

/// Errors from a datastore. Messages never contain stored values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` of a key that exists.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `update`/`delete` of a key that does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The key's `mod_revision` is not the expected one (someone else wrote it).
    #[error("key {key:?} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The revision in the store.
        actual: Revision,
    },
    /// A watch or a paginated list asked for a revision the store no longer has.
    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// The backend failed (I/O, corruption, network, etcd error).
    #[error("datastore backend: {message}")]
    Backend {
        /// What failed; never includes stored values.
        message: String,
    },
    /// The backend is unreachable (etcd down, no quorum); callers may retry.
    #[error("datastore unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A key-value store with global revisions, compare-and-swap writes and watches.
#[async_trait]
pub trait Datastore: Send + Sync + 'static {
    /// The store's current revision (the revision of the last write; 0 if none).
    async fn current_revision(&self) -> Result<Revision>;

    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in ascending key order, strictly after `start_after` when given,
    /// at most `limit` (0 means no limit). When `at_revision` is given, the list is read as of that
    /// revision (for consistent pagination); a revision older than the store keeps is
    /// [`Error::Compacted`]. etcd keeps every revision until compaction; the embedded and
    /// in-process stores keep the snapshot each list was read from for a while
    /// ([`snapshots`]), so a list at the revision of an earlier list reads what that list read,
    /// and any other past revision is `Compacted`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<ListResult>;

    /// A continue token now names `revision`: what a list at it reads is kept for the token's
    /// lifetime ([`snapshots::SNAPSHOT_TTL`] on the embedded and in-process stores, whose
    /// other list snapshots go after [`snapshots::PENDING_TTL`]); nothing to do on etcd, which
    /// keeps every revision until compaction. (No default: a store that wraps another must
    /// pass it on.)
    fn retain_list_snapshot(&self, revision: Revision);

    /// Creates `key`; fails with [`Error::AlreadyExists`] if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision>;

    /// Replaces `key` if its `mod_revision` is `expected` ([`Error::Conflict`] otherwise,
    /// [`Error::NotFound`] if absent). Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision>;

    /// Deletes `key`, only if its `mod_revision` is `expected` when given. Returns the revision of
    /// the delete and the value that was deleted.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Changes under `prefix` with a revision greater than `after`, then live changes.
    /// `after` older than the store's history is [`Error::Compacted`].
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch>;
}

/// How the API server stores its objects (the storage flags of `kubepull server`).
#[derive(Clone, Debug, Default)]
pub enum StoreConfig {
    /// The embedded redb file `state.redb` in the data directory (the default).
    #[default]
    Embedded,
    /// In memory only (tests).
    Memory,
    /// An etcd cluster (`--etcd-servers` and the other `--etcd-*` flags).
    Etcd(etcd_store::EtcdOptions),
}

impl StoreConfig {
    /// The older `--datastore` spelling: empty or `redb`, `memory`, or `etcd://h1:2379,h2:2379`.
    pub fn parse(spec: &str) -> Result<StoreConfig> {
        match spec {
            "" | "redb" => Ok(StoreConfig::Embedded),
            "memory" => Ok(StoreConfig::Memory),
            s if s.starts_with("etcd://") => Ok(StoreConfig::Etcd(
                etcd_store::EtcdOptions::with_servers(s),
            )),
            other => Err(Error::Backend {
                message: format!(
                    "--datastore {other:?} is not understood: use nothing (embedded redb), or --etcd-servers https://host:2379[,...] with --etcd-cafile/--etcd-certfile/--etcd-keyfile"
                ),
            }),
        }
    }
}

/// Opens the store `cfg` names; the embedded file lives in `data_dir`.
pub async fn open(cfg: &StoreConfig, data_dir: &Path) -> Result<Arc<dyn Datastore>> {
    Ok(match cfg {
        StoreConfig::Embedded => {
            Arc::new(redb_store::RedbStore::open(&data_dir.join("state.redb"))?)
        }
        StoreConfig::Memory => Arc::new(memory::MemoryStore::with_snapshot_limits(
            snapshots::SnapshotLimits::default(),
        )),
        StoreConfig::Etcd(o) => Arc::new(etcd_store::EtcdStore::connect_with(o).await?),
    })
}
