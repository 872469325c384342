//! Pushing to a registry (OCI distribution spec, "Push": distribution
//! `registry/client/repository.go`, `blobs.Create` / `httpBlobUpload`): a blob is uploaded in
//! chunks (`POST` to open the upload, one `PATCH` per chunk, `PUT ?digest=` to commit), so
//! memory stays bounded whatever the blob's size; the manifest goes last, by `PUT`, so a tag never
//! names a manifest whose blobs are not all in place.
//!
//! Tokens for a pushing handle are asked for the `pull,push` scope. Every byte read from disk is
//! hashed on the way out and checked against the digest before the upload is committed: a file
//! that changed underneath is never stored under the wrong name.

use std::path::Path;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, Method, StatusCode};
use kubepull_core::reference::Digest;
use tokio::io::AsyncReadExt;
use url::Url;

use super::{header_str, Auth, Hasher, ManifestRef, Repository};
use crate::error::{Error, Result};
use crate::policy;

/// Bytes sent per `PATCH` of a chunked upload.
pub const UPLOAD_CHUNK: usize = 16 << 20;

impl Repository {
    /// The same repository, asking tokens for `pull,push` (needed before any upload).
    pub fn for_push(mut self) -> Self {
        self.push = true;
        self
    }

    /// Whether the registry already has `digest` in this repository (`HEAD /v2/NAME/blobs/D`).
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.head_blob(digest).await?.is_some())
    }

    /// Resolves an upload `Location` against the registry and checks it as a redirect is
    /// checked (no metadata or link-local targets; credentials stay on the registry's origin).
    async fn upload_location(&self, headers: &HeaderMap, current: &Url) -> Result<Url> {
        let loc = header_str(headers, LOCATION)
            .and_then(|l| current.join(l).ok())
            .ok_or_else(|| Error::Protocol {
                host: self.host.clone(),
                message: "upload response without a valid Location".into(),
            })?;
        let zone = self.zone().await;
        policy::check_destination(&loc, zone, &*self.client.inner.resolver)
            .await
            .map_err(|v| self.policy_err(&policy::host_label(&loc), v))?;
        Ok(loc)
    }

    /// Uploads the file at `path` as blob `digest` unless the registry has it already.
    /// `progress` is called with the bytes sent so far. Returns the blob's size and whether it
    /// was uploaded (`false`: already present).
    pub async fn push_blob_file(
        &self,
        digest: &Digest,
        path: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(u64, bool)> {
        let io_err = |e: std::io::Error| Error::Io {
            what: format!("reading {}", path.display()),
            source: e,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
        let size = file.metadata().await.map_err(io_err)?.len();
        if self.blob_exists(digest).await? {
            progress(size);
            return Ok((size, false));
        }
        // open the upload session
        let start = {
            let mut u = self.base.clone();
            u.set_path(&format!("{}/{}/blobs/uploads/", self.api_root, self.name));
            u
        };
        let resp = self
            .send_body(
                Method::POST,
                start.clone(),
                HeaderMap::new(),
                Auth::Registry,
                Some(Bytes::new()),
            )
            .await?;
        if resp.status != StatusCode::ACCEPTED {
            return Err(self.status_error(resp.status, resp).await);
        }
        let mut loc = self.upload_location(&resp.headers, &start).await?;
        let mut hasher = Hasher::new(digest.algorithm());
        let mut sent = 0u64;
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        loop {
            let mut n = 0;
            while n < buf.len() {
                let r = file.read(&mut buf[n..]).await.map_err(io_err)?;
                if r == 0 {
                    break;
                }
                n += r;
            }
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            let mut h = HeaderMap::new();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            // distribution's chunked upload: `Content-Range: <start>-<end>` (inclusive)
            let range = format!("{}-{}", sent, sent + n as u64 - 1);
            h.insert(
                http::header::CONTENT_RANGE,
                HeaderValue::from_str(&range).map_err(|_| Error::Protocol {
                    host: self.host.clone(),
                    message: "content range".into(),
                })?,
            );
            let body = Bytes::copy_from_slice(&buf[..n]);
            let resp = self
                .send_body(Method::PATCH, loc.clone(), h, Auth::Registry, Some(body))
                .await?;
            if resp.status != StatusCode::ACCEPTED {
                self.cancel_upload(&loc).await;
                return Err(self.status_error(resp.status, resp).await);
            }
            loc = self.upload_location(&resp.headers, &loc).await?;
            sent += n as u64;
            progress(sent);
        }
        let actual = hasher.finish();
        if &actual != digest {
            self.cancel_upload(&loc).await;
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let mut commit = loc.clone();
        commit
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let resp = self
            .send_body(
                Method::PUT,
                commit,
                HeaderMap::new(),
                Auth::Registry,
                Some(Bytes::new()),
            )
            .await?;
        if resp.status != StatusCode::CREATED {
            return Err(self.status_error(resp.status, resp).await);
        }
        Ok((sent, true))
    }

    /// Best effort: drops an upload session that will not be committed.
    async fn cancel_upload(&self, loc: &Url) {
        let _ = self
            .send(
                Method::DELETE,
                loc.clone(),
                HeaderMap::new(),
                Auth::Registry,
            )
            .await;
    }

    /// Puts a manifest under `reference` (a tag, or its own digest). Returns the digest the
    /// registry stored it under (checked against the bytes sent when the registry says).
    pub async fn push_manifest(
        &self,
        reference: &ManifestRef,
        media_type: &str,
        body: Bytes,
    ) -> Result<Digest> {
        let ours = Digest::sha256_of(&body);
        if let ManifestRef::Digest(d) = reference {
            if d != &ours {
                return Err(Error::DigestMismatch {
                    expected: d.clone(),
                    actual: ours,
                });
            }
        }
        let url = self.url("manifests", &reference.to_string());
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::Protocol {
                host: self.host.clone(),
                message: format!("media type {media_type:?} is not a valid header value"),
            })?,
        );
        let resp = self
            .send_body(Method::PUT, url, h, Auth::Registry, Some(body))
            .await?;
        if resp.status != StatusCode::CREATED {
            return Err(self.status_error(resp.status, resp).await);
        }
        if let Some(theirs) = header_str(&resp.headers, super::resolve::docker_content_digest())
            .and_then(|s| Digest::parse(s).ok())
        {
            if theirs != ours {
                return Err(Error::DigestMismatch {
                    expected: ours,
                    actual: theirs,
                });
            }
        }
        Ok(ours)
    }
}
