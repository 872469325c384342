//! Unpacking layers into their snapshots while they download.
//!
//! Each layer blob of a pull has a [`Feed`]: the download side tells it where the bytes go
//! (the store's `ingest/<hex>.partial`, written front to back by the holder of the blob's lock),
//! how far they got and how the download ended; the unpack side, one blocking thread walking the
//! layers base first ([`Store::layer_snapshot_from`]), reads the same file behind the writer,
//! decompresses and applies it onto the overlay of the snapshots below, and commits the layer's
//! snapshot only once the download verified the blob's digest and the uncompressed stream
//! hashed to the config's diff ID. Downloads keep running in parallel at full speed: a layer
//! whose parents are not applied yet lands in its file (in the page cache) and is applied from
//! there when its turn comes; the reader holds nothing but the decompressor's buffers.
//!
//! Following the file instead of teeing the network stream through a channel keeps the
//! downloads independent of the unpack's order and pace (no bounded channel stalls a download
//! while an earlier layer is still being applied) and lets the unpack start the moment a layer's
//! first bytes are written. The bytes read are exactly the bytes the download hashed: the file
//! is written only by this pull (it holds the blob's lock), only appended to while it is
//! followed, and emptied only on a failure, which fails the feed and discards the snapshot.
//!
//! A blob that continues an interrupted download (the partial already holds bytes that another
//! attempt wrote) is not followed: it is applied from the finished, verified file. A blob that
//! was already in the store is applied from the store with its digest checked again, as
//! [`Store::layer_snapshot`] does.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use kubepull_core::reference::Digest;
use kubepull_store::{LayerInput, LayerRecord, Store};

/// How long a reader that caught up with the writer waits before looking at the file again
/// when no progress was reported (the writer's buffer may hold bytes already reported).
const CATCH_UP_WAIT: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
enum Source {
    /// Nothing known yet.
    #[default]
    Pending,
    /// The blob was in the store before this pull: read it from there, re-hashed.
    Reused,
    /// Being downloaded from its first byte into this file.
    Follow(PathBuf),
    /// Downloaded (and verified) by this pull, now at this path in the store (in `blobs/`, or
    /// left in `ingest/` by a pull that does not keep the blob).
    Fetched(PathBuf),
}

#[derive(Debug, Default)]
struct State {
    source: Source,
    /// Bytes the download reported (a wake-up counter for readers).
    written: u64,
    /// The download ended and verified.
    done: bool,
    /// The download failed (or the pull was cancelled): why.
    failed: Option<String>,
    /// Bumped when the download goes on from another host: a reader of an earlier
    /// generation stops (the file may be rewritten), and the layer is applied again from the
    /// finished file.
    generation: u64,
}

/// One layer blob's download as the unpack sees it.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    state: Mutex<State>,
    cv: Condvar,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic while holding the lock leaves plain data behind: keep going with it
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.lock();
        f(&mut s);
        drop(s);
        self.cv.notify_all();
    }

    /// The blob was already in the store.
    pub(crate) fn reused(&self) {
        self.update(|s| {
            s.source = Source::Reused;
            s.done = true;
        });
    }

    /// The download starts from the first byte into `partial`.
    pub(crate) fn follow(&self, partial: PathBuf) {
        self.update(|s| s.source = Source::Follow(partial));
    }

    /// The download failed on one host and goes on from the next ([`crate::puller`]'s
    /// per-blob fallback): the partial may be discarded and rewritten, so it is no longer
    /// followed; the layer is applied from the finished file instead.
    pub(crate) fn restart(&self) {
        self.update(|s| {
            if matches!(s.source, Source::Follow(_)) {
                s.source = Source::Pending;
            }
            s.generation += 1;
        });
    }

    /// The download reported `done` bytes.
    pub(crate) fn progress(&self, done: u64) {
        self.update(|s| s.written = done);
    }

    /// The download verified and the blob is at `path` (committed, or its verified partial).
    pub(crate) fn fetched(&self, path: PathBuf) {
        self.update(|s| {
            if !matches!(s.source, Source::Follow(_)) {
                s.source = Source::Fetched(path);
            }
            s.done = true;
        });
    }

    /// The download failed; readers and waiters get `why`.
    pub(crate) fn fail(&self, why: &str) {
        self.update(|s| {
            if !s.done && s.failed.is_none() {
                s.failed = Some(why.to_string());
            }
        });
    }

    fn failed_err(why: &str) -> io::Error {
        io::Error::other(format!("download failed: {why}"))
    }

    /// Waits until the download ended; `Ok` only if it verified.
    fn wait_done(&self) -> io::Result<()> {
        let mut s = self.lock();
        loop {
            if let Some(why) = &s.failed {
                return Err(Self::failed_err(why));
            }
            if s.done {
                return Ok(());
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The feeds of one pull's layers, by digest (a layer listed twice has one feed).
#[derive(Debug, Default)]
pub(crate) struct Feeds {
    by_digest: HashMap<String, Arc<Feed>>,
    restarts: std::sync::atomic::AtomicUsize,
}

impl Feeds {
    pub(crate) fn new<'a>(layers: impl IntoIterator<Item = &'a Digest>) -> Feeds {
        Feeds {
            by_digest: layers
                .into_iter()
                .map(|d| (d.to_string(), Arc::default()))
                .collect(),
            restarts: Default::default(),
        }
    }

    pub(crate) fn get(&self, d: &Digest) -> Option<Arc<Feed>> {
        self.by_digest.get(&d.to_string()).cloned()
    }

    /// `d`'s download goes on from another host (see [`Feed::restart`]).
    pub(crate) fn restart(&self, d: &Digest) {
        if let Some(f) = self.get(d) {
            self.restarts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            f.restart();
        }
    }

    /// How many downloads went on from another host so far.
    pub(crate) fn restarts(&self) -> usize {
        self.restarts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Fails every feed whose download has not ended (a failed or cancelled pull).
    pub(crate) fn fail_unfinished(&self, why: &str) {
        for f in self.by_digest.values() {
            f.fail(why);
        }
    }

    /// What the unpack reads for `layer`: waits until its download started from the first
    /// byte (follow it), ended, or failed.
    pub(crate) fn input(
        &self,
        layer: &LayerRecord,
        store: &Store,
    ) -> Result<LayerInput, kubepull_store::Error> {
        let io_err = |what: String, e: io::Error| kubepull_store::Error::io(what, e);
        let Some(feed) = self.by_digest.get(&layer.digest).cloned() else {
            return Ok(LayerInput::Stored);
        };
        let mut s = feed.lock();
        loop {
            if let Some(why) = &s.failed {
                return Err(io_err(
                    format!("layer {}", layer.digest),
                    Feed::failed_err(why),
                ));
            }
            let path = match &s.source {
                Source::Pending => {
                    s = feed.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                Source::Reused => return Ok(LayerInput::Stored),
                Source::Follow(p) | Source::Fetched(p) => p.clone(),
            };
            let file = match File::open(&path) {
                Ok(f) => f,
                // committed (renamed into the store) since: the state changes right after
                Err(e) if e.kind() == io::ErrorKind::NotFound && !s.done => {
                    s = feed
                        .cv
                        .wait_timeout(s, CATCH_UP_WAIT)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // followed, then committed before the unpack got here: it is in the store
                    let d = Digest::parse(&layer.digest).map_err(|e| {
                        io_err(format!("layer {}", layer.digest), io::Error::other(e))
                    })?;
                    let p = store.blob_path(&d);
                    match File::open(&p) {
                        Ok(f) => f,
                        Err(e) => return Err(io_err(format!("open {}", p.display()), e)),
                    }
                }
                Err(e) => return Err(io_err(format!("open {}", path.display()), e)),
            };
            let generation = s.generation;
            drop(s);
            let reader = FeedReader {
                feed: feed.clone(),
                file,
                generation,
            };
            let f = feed.clone();
            let digest = layer.digest.clone();
            return Ok(LayerInput::Stream {
                reader: Box::new(reader),
                verified: Box::new(move || {
                    f.wait_done()
                        .map_err(|e| io_err(format!("layer {digest}"), e))
                }),
            });
        }
    }
}

/// Reads a blob file behind its writer: at the end of what is written so far it waits for
/// more, until the download ends (then the end of the file is the end of the blob) or fails.
struct FeedReader {
    feed: Arc<Feed>,
    file: File,
    generation: u64,
}

/// What a reader of a restarted download returns.
pub(crate) const RESTARTED: &str = "the download went on from another host";

impl Read for FeedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let seen = {
                let s = self.feed.lock();
                if let Some(why) = &s.failed {
                    return Err(Feed::failed_err(why));
                }
                if s.generation != self.generation {
                    return Err(io::Error::other(RESTARTED));
                }
                (s.written, s.done)
            };
            let n = self.file.read(buf)?;
            if n > 0 || seen.1 {
                // done was seen before this read: every byte was in the file already
                return Ok(n);
            }
            let s = self.feed.lock();
            if s.written == seen.0
                && !s.done
                && s.failed.is_none()
                && s.generation == self.generation
            {
                drop(
                    self.feed
                        .cv
                        .wait_timeout(s, CATCH_UP_WAIT)
                        .unwrap_or_else(|e| e.into_inner()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reader_follows_a_growing_file_to_its_end() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("blob.partial");
        let mut w = File::create(&p).unwrap();
        let d = Digest::sha256_of(b"x");
        let feeds = Feeds::new([&d]);
        let feed = feeds.get(&d).unwrap();
        feed.follow(p.clone());
        let store = Store::open(&t.path().join("store")).unwrap();
        let rec = LayerRecord {
            digest: d.to_string(),
            media_type: String::new(),
            size: 0,
            diff_id: None,
            discarded: false,
        };
        let LayerInput::Stream {
            mut reader,
            verified,
        } = feeds.input(&rec, &store).unwrap()
        else {
            panic!("not a stream")
        };
        let writer = std::thread::spawn(move || {
            for i in 0..50u8 {
                w.write_all(&[i; 1000]).unwrap();
                feed.progress(u64::from(i + 1) * 1000);
            }
            // reported before written (a buffered writer): the reader must still get it all
            feed.progress(51_000);
            std::thread::sleep(Duration::from_millis(30));
            w.write_all(&[50; 1000]).unwrap();
            feed.fetched(p);
        });
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        writer.join().unwrap();
        assert_eq!(all.len(), 51_000);
        assert!(all
            .chunks(1000)
            .enumerate()
            .all(|(i, c)| c == [i as u8; 1000]));
        verified().unwrap();
    }

    #[test]
    fn a_failed_download_fails_the_reader_and_the_verification() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("blob.partial");
        std::fs::write(&p, b"some").unwrap();
        let d = Digest::sha256_of(b"y");
        let feeds = Feeds::new([&d]);
        feeds.get(&d).unwrap().follow(p);
        let store = Store::open(&t.path().join("store")).unwrap();
        let rec = LayerRecord {
            digest: d.to_string(),
            media_type: String::new(),
            size: 0,
            diff_id: None,
            discarded: false,
        };
        let LayerInput::Stream {
            mut reader,
            verified,
        } = feeds.input(&rec, &store).unwrap()
        else {
            panic!("not a stream")
        };
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        feeds.fail_unfinished("digest mismatch");
        let e = reader.read(&mut buf).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let e = verified().unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        // a pending feed fails the unpack's wait too
        let d2 = Digest::sha256_of(b"z");
        let feeds = Feeds::new([&d2]);
        feeds.fail_unfinished("cancelled");
        let rec2 = LayerRecord {
            digest: d2.to_string(),
            ..rec
        };
        let e = feeds.input(&rec2, &store).unwrap_err();
        assert!(e.to_string().contains("cancelled"), "{e}");
    }
}
