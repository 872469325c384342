//! The pod's network namespace: a persistent named netns, `ip netns add kp-<16 hex of the pod
//! UID>` (`/run/netns/kp-…`), with `lo` up. Containers join it by path; pod networking (CNI)
//! is attached to the same path. containerd names its own `cni-<uuid>`
//! (`pkg/netns/netns_linux.go`); the name here is derived from the pod UID so that a restarted
//! node agent finds it again.

use std::path::PathBuf;
use std::process::Command;

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The netns name of a pod: `kp-` and the first 16 hex digits of its UID without dashes.
pub fn pod_netns_name(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .take(16)
        .collect();
    format!("kp-{hex}")
}

/// The path containers (and CNI) use for a pod's network namespace.
pub fn pod_netns_path(uid: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(pod_netns_name(uid))
}

/// A netns operation failed.
#[derive(Debug, thiserror::Error)]
#[error("pod network namespace {name}: {what}")]
pub struct NetnsError {
    /// The netns name.
    pub name: String,
    /// What failed.
    pub what: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        format!(
            "run ip {}: {e} (apt-get install -y iproute2)",
            args.join(" ")
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates the pod's netns (idempotent) and brings `lo` up in it. Returns its path.
pub fn create_pod_netns(uid: &str) -> Result<PathBuf, NetnsError> {
    let name = pod_netns_name(uid);
    let path = pod_netns_path(uid);
    let err = |what: String| NetnsError {
        name: name.clone(),
        what,
    };
    if !path.exists() {
        ip(&["netns", "add", &name]).map_err(err)?;
    }
    ip(&["-n", &name, "link", "set", "lo", "up"]).map_err(err)?;
    Ok(path)
}

/// Deletes the pod's netns; a missing one is not an error.
pub fn delete_pod_netns(uid: &str) -> Result<(), NetnsError> {
    let name = pod_netns_name(uid);
    if !pod_netns_path(uid).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", &name]).map_err(|what| NetnsError { name, what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            pod_netns_name("6F1C2D3E-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
            "kp-6f1c2d3e4a5b6c7d"
        );
        assert_eq!(
            pod_netns_path("6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
            PathBuf::from("/run/netns/kp-6f1c2d3e4a5b6c7d")
        );
    }
}
