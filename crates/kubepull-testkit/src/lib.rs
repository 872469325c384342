//! Test fixtures shared by kubepull's crates. Real parts only: the Debian `docker-registry`
//! (CNCF distribution) started on a free loopback port with TLS from a throw-away CA and htpasswd
//! Basic auth; OCI images built here from the static busybox binary; a pusher speaking the
//! distribution API. Nothing here reads the user's `~/.docker` or `~/.kube`.

pub mod etcd;
pub mod image;
pub mod registry;

pub use image::{busybox_image, busybox_image_modes, Image};
pub use registry::Registry;

/// Panics with an actionable message when a required binary is missing.
pub fn need(bin: &str, pkg: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{bin}` not found: this test needs the real binary (apt-get install -y {pkg})"
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}
