//! The one test store of this crate: the in-process memory store (which keeps no list
//! snapshots, so a list at an older revision is `Compacted`) with the hooks the tests set:
//! it counts the lists it serves, can fail lists, watches, or the updates or deletes under a
//! prefix (`Unavailable`, as a store without quorum), can make one write after the first
//! list page that has more after it, one write just before an update (a writer racing it), and
//! one create just before a create of the same key (a creator racing it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use kubepull_datastore::memory::MemoryStore;
use kubepull_datastore::{Datastore, Error, KeyValue, ListResult, Result, Revision, Watch};

/// What to write over a page's first item: its stored value in, the new value out.
type Rewrite = Box<dyn FnOnce(&[u8]) -> Vec<u8> + Send>;

/// See the module documentation.
#[derive(Default)]
pub struct TestStore {
    inner: MemoryStore,
    lists: AtomicUsize,
    fail_lists: AtomicBool,
    fail_watches: AtomicBool,
    fail_deletes_under: Mutex<Option<String>>,
    fail_updates_under: Mutex<Option<String>>,
    rewrite_after_page: Mutex<Option<Rewrite>>,
    rewrite_before_update: Mutex<Option<(String, Rewrite)>>,
    create_before_create: Mutex<Option<(String, Vec<u8>)>>,
}

fn unavailable() -> Error {
    Error::Unavailable {
        message: "no quorum".into(),
    }
}

/// `Unavailable` when `key` is under the failing prefix (if one is set).
fn fail_under(prefix: &Mutex<Option<String>>, key: &str) -> Result<()> {
    let fails = prefix
        .lock()
        .unwrap()
        .as_deref()
        .is_some_and(|p| key.starts_with(p));
    if fails {
        Err(unavailable())
    } else {
        Ok(())
    }
}

impl TestStore {
    /// The memory store underneath, for reads a test makes without counting them.
    pub fn uncounted(&self) -> &MemoryStore {
        &self.inner
    }

    /// How many lists it served (failed ones included).
    pub fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }

    /// Lists fail while `on`.
    pub fn fail_lists(&self, on: bool) {
        self.fail_lists.store(on, Ordering::SeqCst);
    }

    /// Watches fail while `on`.
    pub fn fail_watches(&self, on: bool) {
        self.fail_watches.store(on, Ordering::SeqCst);
    }

    /// Deletes of keys under `prefix` fail (`None`: none fail).
    pub fn fail_deletes_under(&self, prefix: Option<&str>) {
        *self.fail_deletes_under.lock().unwrap() = prefix.map(str::to_string);
    }

    /// Updates of keys under `prefix` fail (`None`: none fail).
    pub fn fail_updates_under(&self, prefix: Option<&str>) {
        *self.fail_updates_under.lock().unwrap() = prefix.map(str::to_string);
    }

    /// After the first list page that has more after it, its first item is updated to what
    /// `rewrite` makes of it (once).
    pub fn rewrite_after_first_page(
        &self,
        rewrite: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static,
    ) {
        *self.rewrite_after_page.lock().unwrap() = Some(Box::new(rewrite));
    }

    /// Whether the rewrite has been made.
    pub fn rewritten(&self) -> bool {
        self.rewrite_after_page.lock().unwrap().is_none()
    }

    /// Just before the next update of `key`, `key` is updated to what `rewrite` makes of its
    /// stored value (once), so that update finds the key changed.
    pub fn rewrite_before_next_update(
        &self,
        key: &str,
        rewrite: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static,
    ) {
        *self.rewrite_before_update.lock().unwrap() = Some((key.to_string(), Box::new(rewrite)));
    }

    /// Just before the next create of `key`, `key` is created with `value` (once), so that
    /// create finds the key taken.
    pub fn create_before_next_create(&self, key: &str, value: Vec<u8>) {
        *self.create_before_create.lock().unwrap() = Some((key.to_string(), value));
    }
}

#[async_trait]
impl Datastore for TestStore {
    fn retain_list_snapshot(&self, revision: Revision) {
        self.inner.retain_list_snapshot(revision);
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<ListResult> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        if self.fail_lists.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        let page = self
            .inner
            .list(prefix, start_after, limit, at_revision)
            .await?;
        if page.more {
            let rewrite = self.rewrite_after_page.lock().unwrap().take();
            if let (Some(rewrite), Some(first)) = (rewrite, page.items.first()) {
                self.inner
                    .update(&first.key, rewrite(&first.value), first.mod_revision)
                    .await?;
            }
        }
        Ok(page)
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let race = {
            let mut slot = self.create_before_create.lock().unwrap();
            match slot.take() {
                Some((k, first)) if k == key => Some(first),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(first) = race {
            self.inner.create(key, first).await?;
        }
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        fail_under(&self.fail_updates_under, key)?;
        let race = {
            let mut slot = self.rewrite_before_update.lock().unwrap();
            match slot.take() {
                Some((k, rewrite)) if k == key => Some(rewrite),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(rewrite) = race {
            if let Some(kv) = self.inner.get(key).await? {
                self.inner
                    .update(key, rewrite(&kv.value), kv.mod_revision)
                    .await?;
            }
        }
        self.inner.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        fail_under(&self.fail_deletes_under, key)?;
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        if self.fail_watches.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.inner.watch(prefix, after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn updates_and_deletes_fail_only_under_their_prefix() {
        let s = TestStore::default();
        let a = s.create("/registry/pods/a", b"1".to_vec()).await.unwrap();
        let b = s
            .create("/registry/secrets/b", b"1".to_vec())
            .await
            .unwrap();
        s.fail_updates_under(Some("/registry/pods/"));
        assert!(matches!(
            s.update("/registry/pods/a", b"2".to_vec(), a).await,
            Err(Error::Unavailable { .. })
        ));
        // deletes are not failed by the update prefix, nor other keys by either
        let b = s
            .update("/registry/secrets/b", b"2".to_vec(), b)
            .await
            .unwrap();
        s.fail_deletes_under(Some("/registry/secrets/"));
        assert!(matches!(
            s.delete("/registry/secrets/b", Some(b)).await,
            Err(Error::Unavailable { .. })
        ));
        s.fail_updates_under(None);
        let a = s
            .update("/registry/pods/a", b"3".to_vec(), a)
            .await
            .unwrap();
        s.delete("/registry/pods/a", Some(a)).await.unwrap();
        s.fail_deletes_under(None);
        s.delete("/registry/secrets/b", Some(b)).await.unwrap();
    }

    /// The racing write comes once, before the next update of its key only: that update finds
    /// the key changed, the next one is made.
    #[tokio::test]
    async fn a_racing_write_comes_before_the_next_update_of_its_key() {
        let s = TestStore::default();
        let a = s.create("/a", b"1".to_vec()).await.unwrap();
        let b = s.create("/b", b"1".to_vec()).await.unwrap();
        s.rewrite_before_next_update("/a", |v| [v, b"+racer"].concat());
        let b = s.update("/b", b"2".to_vec(), b).await.unwrap();
        assert!(matches!(
            s.update("/a", b"2".to_vec(), a).await,
            Err(Error::Conflict { .. })
        ));
        let now = s.get("/a").await.unwrap().unwrap();
        assert_eq!(now.value, b"1+racer");
        s.update("/a", b"3".to_vec(), now.mod_revision)
            .await
            .unwrap();
        s.update("/b", b"3".to_vec(), b).await.unwrap();
    }

    #[tokio::test]
    async fn a_racing_create_comes_before_the_next_create_of_its_key() {
        let s = TestStore::default();
        s.create_before_next_create("/a", b"racer".to_vec());
        s.create("/b", b"1".to_vec()).await.unwrap();
        assert!(matches!(
            s.create("/a", b"mine".to_vec()).await,
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(s.get("/a").await.unwrap().unwrap().value, b"racer");
        // once only
        s.create("/c", b"1".to_vec()).await.unwrap();
    }
}
