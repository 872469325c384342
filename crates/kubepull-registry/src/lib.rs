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
//! - [`hosts`]: containerd's `hosts.toml` ([`HostsDir::load`]): mirrors tried in order by
//!   capability, falling back to the server, per-host CA / client certificate /
//!   `skip_verify` / headers / API root ([`Client::resolve_image_via`]).
//! - Blob downloads: [`Repository::fetch_blob_resumable`] streams one blob into a partial
//!   file (resuming what an interrupted download left there) and reports
//!   `(digest, bytes_done, total)` to a [`ProgressFn`]; the image service (`kubepull-images`)
//!   runs several at once and commits them into the node store.
//! - [`Error`]: typed, classified by [`ErrorKind`] with a one-line hint each and an exit code
//!   ([`ErrorKind::exit_code`]); no variant ever holds a password or token.
//! - `testkit` (cargo feature): a test CA, a tiny HTTP server, an in-process token issuer
//!   signing RS256 JWTs as distribution expects, and a launcher for the real
//!   `docker-registry`, for this crate's and other crates' tests.
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
//! - Plain HTTP only for registries listed in [`ClientConfig::insecure_registries`] (or
//!   `http://` hosts in `hosts.toml`), and never with credentials.
//! - DNS pinning: [`Client::https`] shares one [`PinnedResolver`] between the policy and the
//!   connections, so the addresses a realm or redirect target was checked at are the ones
//!   connected to (no DNS rebinding to a metadata address after the check).
//! - Mirrors get credentials only when the keyring has an entry for the mirror's own host
//!   (see [`hosts`]).
//! - Digests are validated (algorithm, hex length) when parsed, before they reach a URL or a
//!   path; manifests are verified against pinned digests and against
//!   `Docker-Content-Digest`; blobs against their descriptor's digest and size.
//! - Every body read is bounded by a named constant: [`MAX_MANIFEST_SIZE`],
//!   [`auth::MAX_TOKEN_RESPONSE`], [`MAX_ERROR_BODY`]; retries,
//!   redirects and resumes likewise ([`MAX_RETRIES`], [`MAX_REDIRECTS`], [`MAX_RESUMES`]).
//!
//! # Exit codes
//!
//! [`ErrorKind::exit_code`] (and [`Error::exit_code`]) map a failure to the exit code the
//! command line reports; the table is part of the interface:
//!
//! | code | kind | meaning |
//! |---|---|---|
//! | 10 | [`ErrorKind::Unauthorized`] | the registry or its token service rejected the credentials |
//! | 11 | [`ErrorKind::NotFound`] | repository not found, or no pull access with the credential |
//! | 12 | [`ErrorKind::ManifestUnknown`] | the tag or digest is not in the repository |
//! | 13 | [`ErrorKind::PlatformNotFound`] | the image has no manifest for the platform |
//! | 14 | [`ErrorKind::RateLimited`] | `429` after all retries |
//! | 15 | [`ErrorKind::Tls`] | TLS handshake or certificate verification failed |
//! | 16 | [`ErrorKind::Dns`], [`ErrorKind::Connect`] | the registry is unreachable |
//! | 17 | [`ErrorKind::Stalled`] | a transfer stalled or a request timed out |
//! | 18 | [`ErrorKind::DigestMismatch`] | content did not match its digest or size |
//! | 19 | [`ErrorKind::InvalidReference`] | the image reference or digest does not parse |
//! | 20 | [`error::EXIT_NEVER_PULL`] | pull policy `Never` and the image is not present (reported by the command line, never by this crate) |
//! | 21 | [`ErrorKind::Policy`] ([`error::EXIT_POLICY`]) | refused as unsafe: a token realm or redirect target, credentials over plain HTTP |
//! | 1 | every other kind | protocol, size limit, local I/O |
//!
//! # Limits
//!
//! - Only one client certificate per host in `hosts.toml` (more is an error naming the key);
//!   `dial_timeout` and other unknown `hosts.toml` keys are ignored, as containerd ignores
//!   unknown keys.
//! - A host's custom TLS needs a client built by [`Client::https`] (or its variants); a client
//!   over a custom [`Transport`] uses that transport for every host.
//! - The fuzz targets (`fuzz/`: `challenge`, `token`, `manifest`) need nightly and cargo-fuzz;
//!   the challenge round-trip property also runs as a proptest with the ordinary tests.
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
//! // one verified download into a partial file, resumed if one was left there
//! let progress: kubepull_registry::ProgressFn =
//!     std::sync::Arc::new(|digest, done, total| eprintln!("{digest}: {done}/{total}"));
//! let layer = &resolved.manifest.layers[0];
//! let fetched = repo
//!     .fetch_blob_resumable(layer, std::path::Path::new("/tmp/layer.partial"), Some(&progress))
//!     .await?;
//! # let _ = fetched;
//! # Ok(()) }
//! ```

pub mod auth;
mod certs_dir;
pub mod challenge;
mod client;
pub mod error;
pub mod hosts;
pub mod manifest;
pub mod policy;
pub mod transport;

pub use auth::RegistryCredential;
pub use client::push::UPLOAD_CHUNK;
pub use client::{
    Client, ClientConfig, ConfirmingHost, FetchedManifest, ManifestRef, ProgressFn, Repository,
    ResolvedImage, ResumableFetch, MAX_BACKOFF, MAX_ERROR_BODY, MAX_MANIFEST_SIZE, MAX_REDIRECTS,
    MAX_RESUMES, MAX_RETRIES, MAX_RETRY_AFTER, REQUEST_TIMEOUT, RETRY_BASE_DELAY, STALL_TIMEOUT,
};
pub use error::{Error, ErrorKind, Result};
pub use hosts::{HostsDir, RegistryHost};
pub use manifest::{Descriptor, Platform};
pub use transport::{
    HttpsTransport, PinnedResolver, Resolver, StaticResolver, SystemResolver, TlsConfig, Transport,
};
#[cfg(feature = "testkit")]
pub mod testkit;
