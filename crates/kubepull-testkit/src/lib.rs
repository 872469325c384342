//! Test fixtures shared by kubepull's crates. Real parts only: the Debian `docker-registry`
//! (CNCF distribution) started on a free loopback port with TLS from a throw-away CA and htpasswd
//! Basic auth; OCI images built here from the static busybox binary; a pusher speaking the
//! distribution API. Nothing here reads the user's `~/.docker` or `~/.kube`.

pub mod etcd;
pub mod fixture;
pub mod image;
pub mod registry;
pub mod tree;

pub use image::{busybox_image, busybox_image_modes, Image};
pub use registry::Registry;

/// Panics with an actionable message when a required binary is missing.
pub use kubepull_registry::testkit::registry::require_binary as need;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    kubepull_registry::testkit::registry::free_port().expect("no free port on 127.0.0.1")
}
