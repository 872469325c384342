//! Blob fetch: streamed into a partial file, hashed on the fly, resumed with `Range`,
//! verified against the descriptor's digest and size.

use std::path::Path;

use futures_util::StreamExt;
use http::header::HeaderValue;
use http::{HeaderMap, Method};
use kubepull_core::reference::{Digest, DigestAlgorithm};
use sha2::Digest as _;
use tokio::io::{AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::error::{Error, Result};
use crate::manifest::{is_non_distributable, Descriptor};
use crate::policy::{self, host_label};

use super::{content_length, header_str, Auth, ProgressFn, Repository};

/// The host a [`Repository::blob_confirmed`] asks, which decides what its `HEAD` must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmingHost {
    /// The host that resolved the image: a `Docker-Content-Digest`, when sent, must name the
    /// blob (a redirect to storage may drop it); `Content-Length` must be the blob's size.
    Resolving,
    /// Another host the blob may come from (a mirror of `hosts.toml`): `Docker-Content-Digest`
    /// must be sent and name the blob, and `Content-Length` must be the blob's size.
    Other,
}

#[derive(Clone)]
pub(super) enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(super) fn new(a: DigestAlgorithm) -> Hasher {
        match a {
            DigestAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    pub(super) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    pub(super) fn finish(self) -> Digest {
        let (alg, sum): (&str, Vec<u8>) = match self {
            Hasher::Sha256(h) => ("sha256", h.finalize().to_vec()),
            Hasher::Sha384(h) => ("sha384", h.finalize().to_vec()),
            Hasher::Sha512(h) => ("sha512", h.finalize().to_vec()),
        };
        let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
        // a hash we computed always validates
        Digest::parse(&format!("{alg}:{hex}")).unwrap_or_else(|_| Digest::sha256_of(&[]))
    }
}

pub(super) fn digest_of(alg: DigestAlgorithm, bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(alg);
    h.update(bytes);
    h.finish()
}

/// Write buffer of a blob file: few, large writes.
const BLOB_WRITE_BUFFER: usize = 1 << 20;

/// Where a download continues: the bytes the sink already holds and their hash.
#[derive(Clone)]
struct Resume {
    offset: u64,
    hasher: Hasher,
}

/// How a transfer ended.
enum Fetched {
    /// Verified; the blob's size.
    Done(u64),
    /// The registry ignored the range of a resume: the caller starts again from zero.
    RangeIgnored,
}

/// What [`Repository::fetch_blob_resumable`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumableFetch {
    /// Bytes of an earlier partial download that were kept (0 when there was none or it was
    /// discarded).
    pub resumed_from: u64,
    /// Bytes received from the registry and kept.
    pub downloaded: u64,
    /// An earlier partial was discarded: the registry ignored `Range`, or the partial was
    /// corrupt.
    pub restarted: bool,
}

/// Hashes what a partial download holds, reading it only (a partial another pull holds
/// verified is never opened for writing here). `None` when there is none or it is longer than
/// the blob (to be emptied).
fn hash_partial(
    p: &Path,
    size: u64,
    alg: DigestAlgorithm,
) -> std::io::Result<Option<(u64, Hasher)>> {
    use std::io::Read;
    let mut f = match std::fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if f.metadata()?.len() > size {
        return Ok(None);
    }
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = match f.read(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok(Some((n, h)))
}

impl Repository {
    /// Streams a blob into `sink`, hashing on the fly, resuming with `Range` after a dropped
    /// connection or a stall (at most [`ClientConfig::max_resumes`] times), and verifying size
    /// and digest at the end, continuing after the `resume.offset` bytes the sink already
    /// holds (hashed into `resume.hasher`). `progress` receives `(digest, bytes_done, total)`
    /// after every chunk written (`bytes_done` never goes backwards: a resume continues from
    /// where the transfer stopped). On error, `sink` holds unverified bytes: the caller
    /// discards them.
    ///
    /// For non-distributable layers the registry is asked first; when it does not have the
    /// blob, the descriptor's `urls` are tried without any credential, each checked by the
    /// destination policy.
    async fn fetch_blob_resuming<W: AsyncWrite + Unpin + Send>(
        &self,
        desc: &Descriptor,
        sink: &mut W,
        progress: Option<&ProgressFn>,
        resume: Option<Resume>,
    ) -> Result<Fetched> {
        let url = self.url("blobs", &desc.digest.to_string());
        let from_registry = resume.clone();
        match self
            .fetch_blob_from(url, Auth::Registry, desc, sink, progress, from_registry)
            .await
        {
            Err(e @ Error::BlobUnknown { .. })
                if is_non_distributable(&desc.media_type) && !desc.urls.is_empty() =>
            {
                let mut last = e;
                for u in &desc.urls {
                    let Ok(u) = Url::parse(u) else { continue };
                    let zone = self.zone().await;
                    if let Err(v) =
                        policy::check_destination(&u, zone, &*self.client.inner.resolver).await
                    {
                        last = self.policy_err(&host_label(&u), v);
                        continue;
                    }
                    // bytes may reach the sink: only one url is tried
                    return self
                        .fetch_blob_from(u, Auth::Never, desc, sink, progress, resume)
                        .await;
                }
                Err(last)
            }
            r => r,
        }
    }

    async fn fetch_blob_from<W: AsyncWrite + Unpin + Send>(
        &self,
        url: Url,
        auth: Auth,
        desc: &Descriptor,
        sink: &mut W,
        progress: Option<&ProgressFn>,
        resume: Option<Resume>,
    ) -> Result<Fetched> {
        let cfg = &self.client.inner.config;
        let resuming = resume.is_some();
        let (mut hasher, mut written) = match resume {
            Some(r) => (r.hasher, r.offset),
            None => (Hasher::new(desc.digest.algorithm()), 0),
        };
        let mut resumes = 0;
        let io = |source| Error::Io {
            what: format!("blob {}", desc.digest),
            source,
        };
        'request: loop {
            let mut h = HeaderMap::new();
            if written > 0 {
                let v = HeaderValue::from_str(&format!("bytes={written}-")).map_err(|_| {
                    Error::Protocol {
                        host: self.host.clone(),
                        message: "bad range".into(),
                    }
                })?;
                h.insert(http::header::RANGE, v);
            }
            let resp = self.send(Method::GET, url.clone(), h, auth).await?;
            let host = self.host.clone();
            let mut skip: u64 = match resp.status.as_u16() {
                // the registry does not serve ranges (or not this one): the partial the
                // caller resumed from is of no use, it starts again from zero
                200 | 416 if resuming && written > 0 => return Ok(Fetched::RangeIgnored),
                200 => {
                    if let Some(cl) = content_length(&resp.headers) {
                        if cl != desc.size {
                            return Err(Error::SizeMismatch {
                                digest: desc.digest.clone(),
                                expected: desc.size,
                                actual: cl,
                            });
                        }
                    }
                    // a registry that ignores Range resends from zero: drop what we have
                    written
                }
                206 if written > 0 => {
                    let start = header_str(&resp.headers, http::header::CONTENT_RANGE)
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.parse::<u64>().ok());
                    if start != Some(written) {
                        return Err(Error::Protocol {
                            host,
                            message: "206 response with a content-range we did not ask for".into(),
                        });
                    }
                    0
                }
                404 => {
                    let e = self.status_error(resp.status, resp).await;
                    return Err(match e {
                        Error::Status { code: Some(c), .. } if c == "NAME_UNKNOWN" => {
                            Error::NotFound {
                                host: self.host.clone(),
                                repository: self.name.clone(),
                                source_label: self.source_label(),
                            }
                        }
                        _ => Error::BlobUnknown {
                            repository: format!("{}/{}", self.host, self.name),
                            digest: desc.digest.clone(),
                        },
                    });
                }
                403 => {
                    return Err(Error::NotFound {
                        host: self.host.clone(),
                        repository: self.name.clone(),
                        source_label: self.source_label(),
                    })
                }
                _ => return Err(self.status_error(resp.status, resp).await),
            };
            let mut body = resp.body;
            loop {
                let next = match tokio::time::timeout(cfg.stall_timeout, body.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        if resumes < cfg.max_resumes {
                            resumes += 1;
                            continue 'request;
                        }
                        return Err(Error::Stalled {
                            host,
                            timeout: cfg.stall_timeout,
                        });
                    }
                };
                match next {
                    None => break,
                    Some(Err(source)) => {
                        if resumes < cfg.max_resumes {
                            resumes += 1;
                            continue 'request;
                        }
                        return Err(Error::Transport { host, source });
                    }
                    Some(Ok(mut chunk)) => {
                        if skip > 0 {
                            let n = skip.min(chunk.len() as u64) as usize;
                            let _ = chunk.split_to(n);
                            skip -= n as u64;
                        }
                        if chunk.is_empty() {
                            continue;
                        }
                        if written + chunk.len() as u64 > desc.size {
                            return Err(Error::SizeMismatch {
                                digest: desc.digest.clone(),
                                expected: desc.size,
                                actual: written + chunk.len() as u64,
                            });
                        }
                        hasher.update(&chunk);
                        sink.write_all(&chunk).await.map_err(io)?;
                        written += chunk.len() as u64;
                        if let Some(p) = progress {
                            p(&desc.digest, written, desc.size);
                        }
                    }
                }
            }
            if written < desc.size {
                // premature end of body: a dropped connection in disguise
                if resumes < cfg.max_resumes {
                    resumes += 1;
                    continue 'request;
                }
                return Err(Error::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: written,
                });
            }
            break;
        }
        sink.flush().await.map_err(io)?;
        let actual = hasher.finish();
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(Fetched::Done(written))
    }

    /// `HEAD /v2/NAME/blobs/D` (after redirects): the response's headers when it is 2xx,
    /// `None` for 404, an error otherwise.
    pub(super) async fn head_blob(&self, digest: &Digest) -> Result<Option<HeaderMap>> {
        let url = self.url("blobs", &digest.to_string());
        let resp = self
            .send(Method::HEAD, url, HeaderMap::new(), Auth::Registry)
            .await?;
        match resp.status {
            s if s.is_success() => Ok(Some(resp.headers)),
            http::StatusCode::NOT_FOUND => Ok(None),
            s => Err(self.status_error(s, resp).await),
        }
    }

    /// Whether this host confirms it serves `desc` from this repository with this repository's
    /// credentials: `HEAD /v2/NAME/blobs/D` answered 2xx with a `Content-Length` equal to the
    /// descriptor's size and, when sent, a `Docker-Content-Digest` naming the descriptor's
    /// digest (distribution registry/client/repository.go, `blobStatter.Stat`: the size comes
    /// from `Content-Length`, a 2xx without it is an error). A host other than the one that
    /// resolved the image ([`ConfirmingHost::Other`], a mirror of `hosts.toml`) must send the
    /// digest: a catch-all answering 200 to any `HEAD` confirms nothing. Anything else (404,
    /// 403, 405, an error, a header that does not match) is "not confirmed": the caller
    /// downloads the blob instead. The descriptor's `urls` never count: they come from the
    /// manifest, which may name any digest.
    pub async fn blob_confirmed(&self, desc: &Descriptor, host: ConfirmingHost) -> bool {
        let Ok(Some(h)) = self.head_blob(&desc.digest).await else {
            return false;
        };
        let digest = header_str(&h, super::resolve::docker_content_digest()).map(str::trim);
        let digest_ok = match digest {
            Some(d) => d == desc.digest.to_string(),
            None => host == ConfirmingHost::Resolving,
        };
        digest_ok && content_length(&h) == Some(desc.size)
    }

    /// Downloads a blob into `partial`, resuming an earlier download there: the file's bytes
    /// (left by a dropped connection, a cancelled pull or a process killed with `kill -9`) are
    /// hashed again, and only the rest is requested with `Range: bytes=N-`. The partial is
    /// discarded and the blob downloaded in full when the registry ignores the range (`200`
    /// instead of `206`, or `416`), or when the result does not verify (a corrupt partial).
    /// A partial that already holds the whole blob is kept only once this repository confirms
    /// it serves the blob (a `HEAD`, with its credentials); such a file is only read, never
    /// opened for writing.
    ///
    /// On success `partial` holds exactly the verified blob (flushed, not synced: the caller
    /// commits it). On a content error (digest or size mismatch of a full download) it is
    /// emptied; on other errors (network, registry) it keeps what arrived, for the next
    /// attempt. The caller serialises writers of one `partial` (the store's per-blob lock).
    ///
    /// `progress` starts at the resumed offset; it goes back to 0 when the partial is
    /// discarded.
    pub async fn fetch_blob_resumable(
        &self,
        desc: &Descriptor,
        partial: &Path,
        progress: Option<&ProgressFn>,
    ) -> Result<ResumableFetch> {
        self.fetch_blob_resumable_trusting(
            desc,
            partial,
            progress,
            false,
            ConfirmingHost::Resolving,
        )
        .await
    }

    /// [`Repository::fetch_blob_resumable`], where `trusted` says the caller knows the blob is
    /// this repository's already (its store names this repository as the blob's source, or
    /// this very pull verified the file): a partial holding the whole blob is then kept without
    /// the `HEAD`. Without that, or when the registry does not confirm the blob, the partial is
    /// emptied and the blob downloaded in full. `host` says which host this repository is for
    /// that `HEAD` ([`Repository::blob_confirmed`]).
    pub async fn fetch_blob_resumable_trusting(
        &self,
        desc: &Descriptor,
        partial: &Path,
        progress: Option<&ProgressFn>,
        trusted: bool,
        host: ConfirmingHost,
    ) -> Result<ResumableFetch> {
        let io = |what: &str, source| Error::Io {
            what: format!("{what} {}", partial.display()),
            source,
        };
        let (offset, hasher) = {
            let p = partial.to_path_buf();
            let (size, alg) = (desc.size, desc.digest.algorithm());
            tokio::task::spawn_blocking(move || hash_partial(&p, size, alg))
                .await
                .map_err(|e| io("hash partial blob", std::io::Error::other(e.to_string())))?
                .map_err(|e| io("read partial blob", e))?
                .unwrap_or((0, Hasher::new(alg)))
        };
        if offset == desc.size
            && offset > 0
            && hasher.clone().finish() == desc.digest
            && (trusted || self.blob_confirmed(desc, host).await)
        {
            // The whole blob is there already (a pull that did not keep it, or one that died
            // before its commit, left it). It is this repository's only if the caller knows it
            // is or the registry confirms it has the blob there for these credentials: bytes
            // another repository served are never handed to a pull whose registry would not
            // serve them. Not confirmed: downloaded again below (the file is emptied first).
            if let Some(p) = progress {
                p(&desc.digest, offset, desc.size);
            }
            return Ok(ResumableFetch {
                resumed_from: offset,
                downloaded: 0,
                restarted: false,
            });
        }
        let file = {
            let p = partial.to_path_buf();
            tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&p)
            })
            .await
            .map_err(|e| io("open partial blob", std::io::Error::other(e.to_string())))?
            .map_err(|e| io("open partial blob", e))?
        };
        let mut file = tokio::fs::File::from_std(file);
        let mut restarted = false;
        let mut start = Some((offset, hasher));
        if offset == 0 {
            // none, too long, or complete but wrong: from the first byte
            file.set_len(0)
                .await
                .map_err(|e| io("truncate partial blob", e))?;
        } else if offset == desc.size {
            // complete but wrong: start again
            file.set_len(0)
                .await
                .map_err(|e| io("truncate partial blob", e))?;
            start = None;
            restarted = true;
        }
        loop {
            let (offset, hasher) = start
                .take()
                .unwrap_or((0, Hasher::new(desc.digest.algorithm())));
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| io("seek partial blob", e))?;
            if offset > 0 {
                if let Some(p) = progress {
                    p(&desc.digest, offset, desc.size);
                }
            }
            let resume = (offset > 0).then_some(Resume { offset, hasher });
            let mut w = tokio::io::BufWriter::with_capacity(BLOB_WRITE_BUFFER, &mut file);
            let r = self
                .fetch_blob_resuming(desc, &mut w, progress, resume)
                .await;
            let flushed = w.flush().await;
            drop(w);
            match r {
                Ok(Fetched::Done(n)) => {
                    flushed.map_err(|e| io("write blob", e))?;
                    return Ok(ResumableFetch {
                        resumed_from: offset,
                        downloaded: n - offset,
                        restarted,
                    });
                }
                Ok(Fetched::RangeIgnored) | Err(Error::DigestMismatch { .. }) if offset > 0 => {
                    file.set_len(0)
                        .await
                        .map_err(|e| io("truncate partial blob", e))?;
                    restarted = true;
                }
                Ok(Fetched::RangeIgnored) => {
                    return Err(Error::Protocol {
                        host: self.host.clone(),
                        message: "range ignored without a resume".into(),
                    })
                }
                // a transfer that ended short is resumable; content that does not match is not
                Err(
                    e @ Error::SizeMismatch {
                        actual, expected, ..
                    },
                ) if actual < expected => return Err(e),
                Err(e @ (Error::DigestMismatch { .. } | Error::SizeMismatch { .. })) => {
                    let _ = file.set_len(0).await;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
