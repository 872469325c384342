//! The writer a blob download streams into: bytes gather in a buffer of the caller's size, and
//! each full buffer is handed whole (moved, not copied) to a blocking thread that writes it,
//! while the next one fills. `tokio::fs::File` would copy every write into a buffer of its own
//! first; here the only copy is the one into the buffer, so a download costs one memcpy per
//! byte less.

use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

/// A write in flight: the file and the buffer come back with its result.
type Inflight = JoinHandle<(File, Vec<u8>, io::Result<()>)>;

/// Double-buffered writes to a file on a blocking thread. The file's offset is the starting
/// point (a clone of a handle shares it). Call [`AsyncWriteExt::flush`] (or `shutdown`) before
/// dropping it: what is still buffered is otherwise lost, as with any buffered writer.
///
/// [`AsyncWriteExt::flush`]: tokio::io::AsyncWriteExt::flush
pub(crate) struct FileWriter {
    /// `None` while a write holds it.
    file: Option<File>,
    /// The buffer being filled.
    buf: Vec<u8>,
    /// The other buffer, when no write holds it.
    spare: Option<Vec<u8>>,
    inflight: Option<Inflight>,
    cap: usize,
    /// A write failed: every later write and flush fails too, so nothing lands after a gap.
    failed: Option<(io::ErrorKind, String)>,
}

impl FileWriter {
    /// A writer to `file` in buffers of `cap` bytes.
    pub(crate) fn new(file: File, cap: usize) -> FileWriter {
        FileWriter {
            file: Some(file),
            buf: Vec::with_capacity(cap),
            spare: None,
            inflight: None,
            cap: cap.max(1),
            failed: None,
        }
    }

    /// The failure an earlier write had, again.
    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    /// Waits for the write in flight, if any, and takes back the file and its buffer.
    fn poll_inflight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(h) = self.inflight.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let joined = ready!(Pin::new(h).poll(cx));
        self.inflight = None;
        let (file, mut buf, res) = match joined {
            Ok(x) => x,
            Err(e) => {
                let e = io::Error::other(e.to_string());
                self.failed = Some((e.kind(), e.to_string()));
                return Poll::Ready(Err(e));
            }
        };
        buf.clear();
        self.file = Some(file);
        self.spare = Some(buf);
        if let Err(e) = &res {
            self.failed = Some((e.kind(), e.to_string()));
        }
        Poll::Ready(res)
    }

    /// Starts writing the filled buffer (after the write before it has finished) and switches
    /// to the spare one.
    fn poll_submit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_inflight(cx))?;
        self.check()?;
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let Some(mut file) = self.file.take() else {
            return Poll::Ready(Err(io::Error::other("the blob file was lost")));
        };
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(self.cap));
        let full = std::mem::replace(&mut self.buf, next);
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            let res = file.write_all(&full);
            (file, full, res)
        }));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for FileWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.buf.len() >= self.cap {
            ready!(self.poll_submit(cx))?;
        }
        let n = (self.cap - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_submit(cx))?;
        ready!(self.poll_inflight(cx))?;
        self.check().into()
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};
    use tokio::io::AsyncWriteExt;

    /// Bytes written in pieces of every size, across many buffers, land in order from the
    /// file's offset; a flush leaves nothing behind; the handle the writer got is the caller's
    /// file (a clone sharing the offset).
    #[tokio::test]
    async fn writes_land_in_order_from_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"head").unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = FileWriter::new(f.try_clone().unwrap(), 4096);
        let mut at = 0;
        for size in (1..).cycle() {
            if at >= data.len() {
                break;
            }
            let end = (at + size * 37).min(data.len());
            w.write_all(&data[at..end]).await.unwrap();
            at = end;
        }
        w.flush().await.unwrap();
        drop(w);
        let mut got = vec![];
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..], &data[..]);
        assert_eq!(f.stream_position().unwrap(), 4 + data.len() as u64);
    }

    /// A failed write is the error of the next write or flush, not lost, and of every one
    /// after it: nothing is written after a gap.
    #[tokio::test]
    async fn a_failed_write_is_reported() {
        // a file opened read-only refuses writes
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let mut w = FileWriter::new(File::open(&path).unwrap(), 8);
        let mut failed = false;
        for _ in 0..4 {
            if w.write_all(&[1; 8]).await.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            failed = w.flush().await.is_err();
        }
        assert!(failed);
        assert!(w.write_all(&[1; 8]).await.is_err());
        assert!(w.flush().await.is_err());
    }
}
