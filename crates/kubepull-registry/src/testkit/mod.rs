//! Test fixtures for this crate's tests and other crates' tests (cargo feature `testkit`):
//!
//! - [`TestCa`]: a throw-away CA issuing server and client certificates (rcgen);
//! - [`HttpServer`]: a tiny HTTP/1.1 server, plain or TLS, with an async handler;
//! - [`TokenServer`]: an in-process HTTPS token issuer signing RS256 JWTs exactly as
//!   distribution's `token` authentication verifies them;
//! - [`RegistryProcess`]: the real `docker-registry` (Debian package) on a free loopback
//!   port, with TLS (optionally requiring client certificates), htpasswd users or token
//!   authentication, an optional blob redirect and the access log on; stop and restart on the
//!   same port; [`push`] (with [`http_client`]) and [`TestImage`] to put content into it. The one
//!   launcher of the registry: `kubepull-testkit`'s `Registry` wraps it.
//!
//! Everything listens on 127.0.0.1 only and stops when dropped. Needs the Debian packages
//! `docker-registry`, `openssl` (RSA key generation for token signing) and, for htpasswd,
//! `apache2-utils`.

pub mod http;
pub mod registry;
pub mod tls;
pub mod token;

pub use http::{HttpRequest, HttpResponse, HttpServer};
pub use registry::{
    basic_authorization, http_client, push, RegistryAuth, RegistryConfig, RegistryProcess,
    TestImage,
};
pub use tls::{CertifiedKey, TestCa};
pub use token::{Anonymous, KeyHeader, TokenField, TokenRequest, TokenServer, TokenServerConfig};
