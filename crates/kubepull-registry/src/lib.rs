//! An OCI distribution registry client for pulling images the way the kubelet's container
//! runtime does: resolve by name, fetch by digest, verify always.
//!
//! - [`transport`]: the HTTP seam ([`Transport`]) with the real rustls-based
//!   [`HttpsTransport`] (configurable CA), and the [`Resolver`] seam the address policy uses.
//! - [`challenge`]: `WWW-Authenticate` parsing.
//! - [`auth`]: credentials ([`RegistryCredential`], from the kubelet keyring or an identity
//!   token), the Docker token flow and the token cache keyed by registry, repository, actions
//!   and credential identity.
//! - [`policy`]: where credentials may go (realm checks, host binding) and where the client
//!   may be sent at all (redirects, foreign URLs). **Read its docs**: they are the contract.
//! - [`manifest`]: OCI/Docker manifests and indexes, platform selection.
//! - [`Client`] / [`Repository`]: the protocol: challenge → Basic or Bearer → resolve a tag to
//!   a verified manifest (narrowing an index to a platform) → stream blobs, SHA-256 verified
//!   on the fly, resumed with `Range`, written to a temporary file and renamed only after
//!   verification.
//! - [`Error`]: typed, classified by [`ErrorKind`] with a one-line hint each; no variant
//!   ever holds a password or token.
//!
//! # Credentials, in the kubelet's order
//!
//! [`Client::resolve_image`] tries every credential the keyring returned, in order, and
//! goes anonymous only when there is none (kubelet: once any credential matched there is no
//! anonymous fallback). When all fail, [`Error::AllCredentialsFailed`] names each
//! credential's source (`secret/regcred`) with its failure.
//!
//! # Security rules in one place
//!
//! - Realm: https only for https registries, no userinfo, no metadata/link-local/
//!   unspecified/multicast addresses, never more internal than the registry; cross-host
//!   realms allowed (Docker Hub). See [`policy`].
//! - Redirects: `Authorization` is dropped on any change of scheme, host or port and never
//!   re-attached for the rest of that request; a `401` from a redirect target is never
//!   answered; every target passes the destination policy. Token endpoints may not redirect.
//! - Descriptor `urls`: only for non-distributable layers, only after the registry lacks the
//!   blob, never with credentials, destination policy applied.
//! - Plain HTTP only for registries listed in [`ClientConfig::insecure_registries`], and
//!   never with credentials.
//! - Digests are validated (algorithm, hex length) when parsed, before they reach a URL or a
//!   path; manifests are verified against pinned digests and against
//!   `Docker-Content-Digest`; blobs against their descriptor's digest and size.
//! - Every body read is bounded by a named constant: [`MAX_MANIFEST_SIZE`],
//!   [`auth::MAX_TOKEN_RESPONSE`], [`MAX_ERROR_BODY`], [`MAX_IN_MEMORY_BLOB`]; retries,
//!   redirects and resumes likewise ([`MAX_RETRIES`], [`MAX_REDIRECTS`], [`MAX_RESUMES`]).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), kubepull_registry::Error> {
//! use kubepull_core::reference::parse_normalized_named;
//! use kubepull_registry::{Client, ClientConfig, Platform, RegistryCredential, TlsConfig};
//!
//! let client = Client::https(&TlsConfig::system(), ClientConfig::default())?;
//! let image = parse_normalized_named("registry.example.com/team/app:v1").unwrap();
//! let creds = [RegistryCredential::basic("secret/regcred", "alice", "s3cret")];
//! let (repo, resolved) = client.resolve_image(&image, &creds, &Platform::host()).await?;
//! for layer in &resolved.manifest.layers {
//!     let dest = std::path::Path::new("/tmp").join(layer.digest.hex());
//!     repo.fetch_blob_to_file(layer, &dest).await?;
//! }
//! # Ok(()) }
//! ```

pub mod auth;
pub mod challenge;
mod client;
pub mod error;
pub mod manifest;
pub mod policy;
pub mod transport;

pub use auth::RegistryCredential;
pub use client::{
    Client, ClientConfig, FetchedManifest, ManifestRef, Repository, ResolvedImage, MAX_BACKOFF,
    MAX_ERROR_BODY, MAX_IN_MEMORY_BLOB, MAX_MANIFEST_SIZE, MAX_REDIRECTS, MAX_RESUMES, MAX_RETRIES,
    MAX_RETRY_AFTER, REQUEST_TIMEOUT, RETRY_BASE_DELAY, STALL_TIMEOUT,
};
pub use error::{Error, ErrorKind, Result};
pub use manifest::{Descriptor, Platform};
pub use transport::{HttpsTransport, Resolver, StaticResolver, TlsConfig, Transport};
