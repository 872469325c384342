//! Manifest resolution: a tag or digest to a verified manifest, an index narrowed to a
//! platform, and the kubelet's credential loop over the configured hosts.

use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, Method};
use kubepull_core::reference::{Digest, DigestAlgorithm, Reference};

use crate::auth::RegistryCredential;
use crate::error::{Attempt, Error, Result};
use crate::hosts::RegistryHost;
use crate::manifest::{parse_manifest, Descriptor, Manifest, Platform, MANIFEST_ACCEPT};
use crate::transport::Response;

use super::blob::digest_of;
use super::{
    content_length, header_str, Auth, Client, FetchedManifest, ManifestRef, Repository,
    ResolvedImage, MAX_MANIFEST_SIZE,
};

impl Client {
    /// Resolves `reference` through the hosts configured for its registry
    /// ([`HostsDir::hosts_for`](crate::hosts::HostsDir::hosts_for)): a tag on hosts with
    /// `pull` and `resolve`, a digest on hosts with `pull`, in order (mirrors, then the
    /// server); a host that fails passes on to the next, and the last host's error is
    /// returned. On each host the credentials `credentials_for(host)` returns are tried as in
    /// [`Client::resolve_image`].
    ///
    /// `credentials_for` must return the keyring's matches for **that host's**
    /// `host[:port]` ([`RegistryHost::host_label`]), e.g. `keyring::resolve(&format!("{}/{}",
    /// host.host_label(), image_path), …)`: a mirror gets credentials only when a pull
    /// secret names the mirror, never the server's (see [`crate::hosts`]). The returned
    /// repository is bound to the host that answered; fetch the blobs from it.
    pub async fn resolve_image_via<F>(
        &self,
        reference: &Reference,
        hosts: &[RegistryHost],
        credentials_for: F,
        platform: &Platform,
    ) -> Result<(Repository, ResolvedImage)>
    where
        F: Fn(&RegistryHost) -> Vec<RegistryCredential>,
    {
        let by_tag = reference.digest().is_none();
        let mut last: Option<Error> = None;
        for h in hosts {
            if !h.capabilities.pull || (by_tag && !h.capabilities.resolve) {
                continue;
            }
            let creds = credentials_for(h);
            let r = self
                .resolve_with(reference, &creds, platform, |c| {
                    self.repository_on(reference, c, h)
                })
                .await;
            match r {
                Ok(x) => return Ok(x),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Protocol {
            host: reference.domain().to_string(),
            message: format!(
                "no configured host may {} this image: check capabilities in hosts.toml",
                if by_tag { "resolve" } else { "pull" }
            ),
        }))
    }

    /// Resolves `reference` for `platform`, trying every credential in order as the kubelet
    /// does (kubernetes `pkg/kubelet/images/image_manager.go` → `kuberuntime_image.go`,
    /// `PullImage`: one attempt per credential, errors aggregated); anonymously only when
    /// `credentials` is empty. Returns the repository handle bound to the credential that
    /// worked, to fetch the blobs with.
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        credentials: &[RegistryCredential],
        platform: &Platform,
    ) -> Result<(Repository, ResolvedImage)> {
        self.resolve_with(reference, credentials, platform, |c| {
            self.repository(reference, c)
        })
        .await
    }

    /// The kubelet's credential loop over repositories made by `make`.
    async fn resolve_with<M>(
        &self,
        reference: &Reference,
        credentials: &[RegistryCredential],
        platform: &Platform,
        make: M,
    ) -> Result<(Repository, ResolvedImage)>
    where
        M: Fn(Option<RegistryCredential>) -> Result<Repository>,
    {
        if credentials.is_empty() {
            let repo = make(None)?;
            let r = repo
                .resolve_image(&ManifestRef::of(reference), platform)
                .await?;
            return Ok((repo, r));
        }
        let mut attempts = Vec::new();
        for c in credentials {
            let repo = make(Some(c.clone()))?;
            match repo
                .resolve_image(&ManifestRef::of(reference), platform)
                .await
            {
                Ok(r) => return Ok((repo, r)),
                Err(error) => attempts.push(Attempt {
                    source: c.source().to_string(),
                    error,
                }),
            }
        }
        Err(Error::AllCredentialsFailed { attempts })
    }
}

impl Repository {
    /// `HEAD` the manifest to learn its descriptor without its body; falls back to `GET`
    /// when the registry sends no usable `Docker-Content-Digest` (containerd
    /// `dockerResolver.Resolve`). For a digest reference, the digest is the reference's
    /// and the bytes are verified by [`fetch_manifest`](Self::fetch_manifest) later.
    pub async fn resolve(&self, reference: &ManifestRef) -> Result<Descriptor> {
        let url = self.url("manifests", &reference.to_string());
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let resp = self.send(Method::HEAD, url, h, Auth::Registry).await?;
        if resp.status.is_success() {
            let size = content_length(&resp.headers);
            let mt = header_str(&resp.headers, CONTENT_TYPE)
                .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
            let dgst = match reference {
                ManifestRef::Digest(d) => Some(d.clone()),
                ManifestRef::Tag(_) => header_str(&resp.headers, docker_content_digest())
                    .and_then(|s| Digest::parse(s).ok()),
            };
            if let (Some(digest), Some(size), Some(media_type)) = (dgst, size, mt) {
                if size > MAX_MANIFEST_SIZE {
                    return Err(Error::TooLarge {
                        what: "manifest",
                        limit: MAX_MANIFEST_SIZE,
                    });
                }
                if crate::manifest::is_manifest_media_type(&media_type) {
                    return Ok(Descriptor {
                        media_type,
                        digest,
                        size,
                        urls: vec![],
                        platform: None,
                        annotations: Default::default(),
                    });
                }
            }
        } else {
            return Err(self.manifest_status_error(resp, reference).await);
        }
        Ok(self.fetch_manifest(reference).await?.descriptor)
    }

    async fn manifest_status_error(&self, resp: Response, reference: &ManifestRef) -> Error {
        let status = resp.status;
        let e = self.status_error(status, resp).await;
        let code = match &e {
            Error::Status { code, .. } => code.clone(),
            _ => None,
        };
        match (status.as_u16(), code.as_deref()) {
            (404, Some("NAME_UNKNOWN")) | (403, _) => Error::NotFound {
                host: self.host.clone(),
                repository: self.name.clone(),
                source_label: self.source_label(),
            },
            (404, _) => Error::ManifestUnknown {
                repository: format!("{}/{}", self.host, self.name),
                reference: reference.to_string(),
            },
            _ => e,
        }
    }

    /// `GET` a manifest by tag or digest: bounded to [`MAX_MANIFEST_SIZE`], its digest
    /// computed from the bytes and checked against the digest asked for (a pinned reference)
    /// and against `Docker-Content-Digest` when the registry sends one (never trusted alone).
    pub async fn fetch_manifest(&self, reference: &ManifestRef) -> Result<FetchedManifest> {
        let url = self.url("manifests", &reference.to_string());
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let resp = self.send(Method::GET, url, h, Auth::Registry).await?;
        if !resp.status.is_success() {
            return Err(self.manifest_status_error(resp, reference).await);
        }
        let ct = header_str(&resp.headers, CONTENT_TYPE)
            .unwrap_or("")
            .to_string();
        let header_digest = header_str(&resp.headers, docker_content_digest()).map(str::to_string);
        let host = self.host.clone();
        let bytes = self
            .read_limited(resp, MAX_MANIFEST_SIZE, "manifest", &host)
            .await?;
        let digest = match reference {
            ManifestRef::Digest(want) => {
                let got = digest_of(want.algorithm(), &bytes);
                if &got != want {
                    return Err(Error::DigestMismatch {
                        expected: want.clone(),
                        actual: got,
                    });
                }
                got
            }
            ManifestRef::Tag(_) => {
                let got = digest_of(DigestAlgorithm::Sha256, &bytes);
                if let Some(hd) = header_digest.as_deref().and_then(|s| Digest::parse(s).ok()) {
                    let ours = digest_of(hd.algorithm(), &bytes);
                    if ours != hd {
                        return Err(Error::DigestMismatch {
                            expected: hd,
                            actual: ours,
                        });
                    }
                }
                got
            }
        };
        let manifest = parse_manifest(&ct, &bytes).map_err(|e| Error::Manifest {
            digest: digest.clone(),
            reason: e.to_string(),
        })?;
        let media_type = match &manifest {
            Manifest::Image(m) => m.media_type.clone(),
            Manifest::Index(i) => i.media_type.clone(),
        }
        .or_else(|| {
            crate::manifest::is_manifest_media_type(&ct)
                .then(|| ct.split(';').next().unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| match &manifest {
            Manifest::Image(_) => crate::manifest::OCI_MANIFEST.to_string(),
            Manifest::Index(_) => crate::manifest::OCI_INDEX.to_string(),
        });
        Ok(FetchedManifest {
            descriptor: Descriptor {
                media_type,
                digest,
                size: bytes.len() as u64,
                urls: vec![],
                platform: None,
                annotations: Default::default(),
            },
            bytes,
            manifest,
        })
    }

    /// Resolves a tag or digest to an image manifest for `platform`: an index is narrowed
    /// to its first entry for the platform, and that child is fetched by digest and verified
    /// (size and digest), so a pinned index digest can never be confused with a platform
    /// manifest digest (oras-project/rust-oci-client#149, lensapp/lens-sandbox#135).
    pub async fn resolve_image(
        &self,
        reference: &ManifestRef,
        platform: &Platform,
    ) -> Result<ResolvedImage> {
        let top = self.fetch_manifest(reference).await?;
        let credential_source = self.credential.as_ref().map(|c| c.source().to_string());
        match top.manifest {
            Manifest::Image(m) => Ok(ResolvedImage {
                digest: top.descriptor.digest.clone(),
                manifest_descriptor: top.descriptor,
                manifest: m,
                manifest_bytes: top.bytes,
                platform: None,
                credential_source,
            }),
            Manifest::Index(index) => {
                let entry = index
                    .select(platform)
                    .ok_or_else(|| Error::PlatformNotFound {
                        wanted: platform.to_string(),
                        available: index.platforms(),
                    })?;
                if entry.size > MAX_MANIFEST_SIZE {
                    return Err(Error::TooLarge {
                        what: "manifest",
                        limit: MAX_MANIFEST_SIZE,
                    });
                }
                let child = self
                    .fetch_manifest(&ManifestRef::Digest(entry.digest.clone()))
                    .await?;
                if child.descriptor.size != entry.size {
                    return Err(Error::SizeMismatch {
                        digest: entry.digest.clone(),
                        expected: entry.size,
                        actual: child.descriptor.size,
                    });
                }
                let Manifest::Image(m) = child.manifest else {
                    return Err(Error::Manifest {
                        digest: entry.digest.clone(),
                        reason: "an index entry for the platform is itself an index".into(),
                    });
                };
                let mut desc = child.descriptor;
                desc.platform = entry.platform.clone();
                Ok(ResolvedImage {
                    digest: top.descriptor.digest,
                    manifest_descriptor: desc,
                    manifest: m,
                    manifest_bytes: child.bytes,
                    platform: entry.platform.clone(),
                    credential_source,
                })
            }
        }
    }
}

pub(super) fn docker_content_digest() -> HeaderName {
    HeaderName::from_static("docker-content-digest")
}
