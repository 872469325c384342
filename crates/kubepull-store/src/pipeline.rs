//! Decompression on its own thread: a layer's decompressor runs ahead of the tar reader that
//! applies it, handing over filled buffers through a bounded channel, so inflating (the
//! largest cost of an unpack) overlaps hashing the diff ID, parsing the tar and writing files.
//!
//! The bytes the tar reader sees are exactly the decompressor's output, in order; the channel
//! holds at most [`DEPTH`] buffers of [`CHUNK`] bytes, so the decompressor never runs more than
//! a few MiB ahead: the decompression-bomb bound (counted by the reader) still stops it, since
//! a reader that gives up drops its end of the channel and the decompressor stops at its next
//! hand-over.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

/// Bytes per hand-over.
pub(crate) const CHUNK: usize = 256 << 10;
/// Buffers in flight between the threads (besides the one each side holds).
pub(crate) const DEPTH: usize = 4;

/// Files at least this large are handed to the [`Syncer`] once written.
pub(crate) const SYNC_AT_LEAST: u64 = 4 << 20;
/// Files waiting for the [`Syncer`]; a file that finds the queue full is left to the final
/// `syncfs`.
const SYNC_QUEUE: usize = 16;

/// Writes finished files of a snapshot build to disk in the background (`fdatasync` on a
/// thread of its own), so the `syncfs` that makes the snapshots durable before they are
/// renamed into place finds most of their data written already. Durability never depends on
/// it: an error here is ignored, the `syncfs` reports it.
pub(crate) struct Syncer {
    tx: Option<SyncSender<std::fs::File>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    pub(crate) fn new() -> Syncer {
        let (tx, rx) = mpsc::sync_channel::<std::fs::File>(SYNC_QUEUE);
        let thread = std::thread::Builder::new()
            .name("snapshot-sync".into())
            .spawn(move || {
                for f in rx {
                    let _ = f.sync_data();
                }
            })
            .ok();
        Syncer {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    /// Queues `f` (written, still open) unless the queue is full.
    pub(crate) fn submit(&self, f: std::fs::File) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(f);
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // the thread ends once the queue is drained; waiting for it keeps the fds from
        // outliving the build
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reading end: the decompressed stream, hashed into `hash` (when given) as it arrives.
pub(crate) struct ChunkReader<'h> {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    hash: Option<&'h mut sha2::Sha256>,
    ended: bool,
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let done = std::mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    // the buffer goes back to the decompressor (it may be gone: no matter)
                    let _ = self.back.send(done);
                    if let Some(h) = self.hash.as_deref_mut() {
                        sha2::Digest::update(h, &self.cur);
                    }
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                // the decompressor finished (it drops its sender at the end of the stream)
                Err(_) => {
                    self.ended = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The writing end, run on the decompressor's thread: reads `src` to its end (or to the first
/// error, which is handed over) in [`CHUNK`]s; stops early when the reader is gone.
pub(crate) fn produce(
    mut src: impl Read,
    tx: SyncSender<io::Result<Vec<u8>>>,
    back: Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = back.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut n = 0;
        let mut err = None;
        while n < CHUNK {
            match src.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        buf.truncate(n);
        if n > 0 && tx.send(Ok(buf)).is_err() {
            return;
        }
        if let Some(e) = err {
            let _ = tx.send(Err(e));
            return;
        }
        if n < CHUNK {
            // end of the stream: dropping `tx` tells the reader
            return;
        }
    }
}

/// The decompressor's end: filled buffers out, emptied ones back.
pub(crate) type Producer = (SyncSender<io::Result<Vec<u8>>>, Receiver<Vec<u8>>);

/// A connected pair: the channel the decompressor fills, the reader the tar parser reads.
pub(crate) fn channel(hash: Option<&mut sha2::Sha256>) -> (Producer, ChunkReader<'_>) {
    let (tx, rx) = mpsc::sync_channel(DEPTH);
    let (back_tx, back_rx) = mpsc::channel();
    (
        (tx, back_rx),
        ChunkReader {
            rx,
            back: back_tx,
            cur: Vec::new(),
            pos: 0,
            hash,
            ended: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn the_reader_gets_every_byte_in_order_and_hashes_them() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17] {
            let data = pattern(len);
            let mut h = <sha2::Sha256 as sha2::Digest>::new();
            let ((tx, back), mut r) = channel(Some(&mut h));
            let mut out = Vec::new();
            std::thread::scope(|s| {
                let src = data.as_slice();
                s.spawn(move || produce(src, tx, back));
                // odd read sizes across chunk boundaries
                let mut buf = [0u8; 7001];
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
            });
            drop(r);
            assert_eq!(out, data, "len {len}");
            let got: [u8; 32] = sha2::Digest::finalize(h).into();
            let want: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&data).into();
            assert_eq!(got, want, "len {len}");
        }
    }

    struct FailAfter(usize);
    impl Read for FailAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("corrupt deflate stream"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_decompression_error_reaches_the_reader_after_the_bytes_before_it() {
        let ((tx, back), mut r) = channel(None);
        std::thread::scope(|s| {
            s.spawn(move || produce(FailAfter(CHUNK + 10), tx, back));
            let mut got = 0;
            let mut buf = vec![0u8; 4096];
            let e = loop {
                match r.read(&mut buf) {
                    Ok(0) => panic!("end of stream instead of the error"),
                    Ok(n) => got += n,
                    Err(e) => break e,
                }
            };
            assert_eq!(got, CHUNK + 10);
            assert!(e.to_string().contains("corrupt deflate"), "{e}");
        });
    }

    /// An endless source (a decompression bomb): the producer stops once the reader is gone,
    /// having run at most the channel's depth ahead.
    struct Endless(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0
                .fetch_add(buf.len(), std::sync::atomic::Ordering::SeqCst);
            buf.fill(0);
            Ok(buf.len())
        }
    }

    #[test]
    fn the_producer_stops_when_the_reader_gives_up() {
        let produced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ((tx, back), mut r) = channel(None);
        std::thread::scope(|s| {
            let p = produced.clone();
            let h = s.spawn(move || produce(Endless(p), tx, back));
            let mut buf = vec![0u8; CHUNK];
            r.read_exact(&mut buf).unwrap();
            drop(r);
            h.join().unwrap();
        });
        assert!(
            produced.load(std::sync::atomic::Ordering::SeqCst) <= (DEPTH + 3) * CHUNK,
            "ran ahead {} bytes",
            produced.load(std::sync::atomic::Ordering::SeqCst)
        );
    }

    #[test]
    fn the_syncer_takes_files_until_its_queue_is_full_and_drains_on_drop() {
        let t = tempfile::tempdir().unwrap();
        let sync = Syncer::new();
        for i in 0..(SYNC_QUEUE * 3) {
            let p = t.path().join(format!("f{i}"));
            let mut f = std::fs::File::create(&p).unwrap();
            std::io::Write::write_all(&mut f, &[i as u8; 4096]).unwrap();
            sync.submit(f);
        }
        // returns once every queued file was synced and closed
        drop(sync);
        for i in 0..(SYNC_QUEUE * 3) {
            assert_eq!(
                std::fs::read(t.path().join(format!("f{i}"))).unwrap(),
                [i as u8; 4096]
            );
        }
    }
}
