//! Helpers shared by the API server's kubectl tests: the real `/usr/bin/kubectl` with a
//! kubeconfig and a private HOME, and a server configuration in a temp dir.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use kubepull_control::ServerConfig;

/// Runs kubectl with `args` (and `stdin`); returns success and stdout+stderr.
pub fn kubectl(
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String) {
    use std::io::Write;
    let mut c = Command::new("kubectl");
    c.env("KUBECONFIG", kubeconfig).env("HOME", home).args(args);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("kubectl");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// A server on a free loopback port with an in-memory datastore under `dir`.
pub fn server_config(dir: &Path, controllers: bool) -> ServerConfig {
    ServerConfig {
        data_dir: dir.join("data"),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        datastore: "memory".into(),
        controllers,
        pod_security: kubepull_control::podsecurity::Level::Baseline,
        cluster_cidr: None,
        service_cluster_ip_range: None,
    }
}

/// An HTTPS client builder that trusts `server`'s CA and nothing else.
pub fn https_client_builder(server: &kubepull_control::ServerHandle) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
}
