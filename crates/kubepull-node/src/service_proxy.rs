//! The `kubernetes` Service's cluster IP, reachable from this node's pods, as kube-proxy makes
//! it reachable: in-cluster clients (client-go, kube-rs) read `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT` and dial the cluster IP, which no host route leads to.
//!
//! A DNAT rule in the node's own nat chain sends connections from the node's pods to
//! `CLUSTER_IP:PORT` on to the API server's address. When that address is a loopback one (the
//! API server of `kubepull up` listens on 127.0.0.1), the kernel must accept loopback
//! destinations on the pod-facing interfaces (`route_localnet`, as kube-proxy sets it for
//! localhost node ports), and the node then drops every other packet from its pods to
//! 127.0.0.0/8 that was not translated by its rule (kube-proxy's `KUBE-FIREWALL` guard,
//! CVE-2020-8558): pods reach the API server's port through the Service and nothing else on the
//! host's loopback.
//!
//! Rules carry the node's name in their chain names, so several nodes on one machine (each with
//! its own pod CIDR) keep their portals apart, and `kubepull down` removes exactly this node's.

use std::net::{IpAddr, SocketAddr};

use crate::podnet::CniError;

/// One node's portal to the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPortal {
    /// The `kubernetes` Service's cluster IP.
    pub cluster_ip: IpAddr,
    /// Its port (443).
    pub port: u16,
    /// Where the API server listens.
    pub target: SocketAddr,
    /// The pods whose connections are translated (the node's podCIDR); `None`: every source.
    pub pod_cidr: Option<String>,
}

/// The node's nat and filter chain names (at most 28 characters, as iptables allows).
pub fn chains(node_name: &str) -> (String, String) {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(node_name.as_bytes());
    let tag: String = h.iter().take(5).map(|b| format!("{b:02x}")).collect();
    (format!("KUBEPULL-SVC-{tag}"), format!("KUBEPULL-FW-{tag}"))
}

/// `iptables` waiting up to 5 s for the xtables lock (other nodes' rules change beside ours).
async fn iptables(args: &[&str]) -> Result<std::process::Output, CniError> {
    let mut a = vec!["-w", "5"];
    a.extend_from_slice(args);
    crate::podnet::iptables(&a).await
}

async fn must(args: &[&str]) -> Result<(), CniError> {
    let o = iptables(args).await?;
    if o.status.success() {
        return Ok(());
    }
    Err(CniError::Io {
        what: format!("iptables {}", args.join(" ")),
        source: std::io::Error::other(String::from_utf8_lossy(&o.stderr).trim().to_string()),
    })
}

/// Creates `chain` in `table` if absent and jumps to it first from `from`.
async fn ensure_chain(table: &str, from: &str, chain: &str, comment: &str) -> Result<(), CniError> {
    let _ = iptables(&["-t", table, "-N", chain]).await?;
    let jump = ["-m", "comment", "--comment", comment, "-j", chain];
    let mut check = vec!["-t", table, "-C", from];
    check.extend_from_slice(&jump);
    if !iptables(&check).await?.status.success() {
        let mut ins = vec!["-t", table, "-I", from, "1"];
        ins.extend_from_slice(&jump);
        must(&ins).await?;
    }
    must(&["-t", table, "-F", chain]).await
}

/// Installs (or rewrites) `node_name`'s portal. Idempotent.
pub async fn install(node_name: &str, p: &ApiPortal) -> Result<(), CniError> {
    let (nat, fw) = chains(node_name);
    let comment = format!("kubepull node {node_name}: service portals");
    ensure_chain("nat", "PREROUTING", &nat, &comment).await?;
    let dst = format!("{}/32", p.cluster_ip);
    let port = p.port.to_string();
    let to = p.target.to_string();
    let mut rule = vec!["-t", "nat", "-A", &nat];
    if let Some(c) = &p.pod_cidr {
        rule.extend_from_slice(&["-s", c]);
    }
    rule.extend_from_slice(&[
        "-d",
        &dst,
        "-p",
        "tcp",
        "--dport",
        &port,
        "-m",
        "comment",
        "--comment",
        "default/kubernetes:https",
        "-j",
        "DNAT",
        "--to-destination",
        &to,
    ]);
    must(&rule).await?;
    if p.target.ip().is_loopback() {
        let comment = format!("kubepull node {node_name}: no pod reaches host loopback");
        ensure_chain("filter", "INPUT", &fw, &comment).await?;
        let mut rule = vec!["-t", "filter", "-A", &fw];
        if let Some(c) = &p.pod_cidr {
            rule.extend_from_slice(&["-s", c]);
        } else {
            rule.extend_from_slice(&["!", "-s", "127.0.0.0/8"]);
        }
        rule.extend_from_slice(&[
            "-d",
            "127.0.0.0/8",
            "-m",
            "conntrack",
            "!",
            "--ctstate",
            "RELATED,ESTABLISHED,DNAT",
            "-j",
            "DROP",
        ]);
        must(&rule).await?;
    }
    Ok(())
}

/// Removes `node_name`'s portal (nothing to remove is fine).
pub async fn remove(node_name: &str) -> Result<(), CniError> {
    let (nat, fw) = chains(node_name);
    for (table, from, chain) in [("nat", "PREROUTING", &nat), ("filter", "INPUT", &fw)] {
        let listed = iptables(&["-t", table, "-S", from]).await?;
        for line in String::from_utf8_lossy(&listed.stdout).lines() {
            if line.ends_with(&format!("-j {chain}")) {
                let words = crate::podnet::rule_words(line);
                let mut args: Vec<&str> = vec!["-t", table, "-D"];
                args.extend(words.iter().skip(1).map(String::as_str));
                let _ = iptables(&args).await?;
            }
        }
        let _ = iptables(&["-t", table, "-F", chain]).await?;
        let _ = iptables(&["-t", table, "-X", chain]).await?;
    }
    Ok(())
}

/// Lets `ifname` (a pod-facing host interface: the bridge, a veth) carry loopback
/// destinations, which a DNAT to the API server's 127.0.0.1 needs (`route_localnet`).
pub fn allow_localnet(ifname: &str) -> std::io::Result<()> {
    if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
        return Err(std::io::Error::other(format!(
            "{ifname:?} is not an interface name"
        )));
    }
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{ifname}/route_localnet"),
        "1",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_fit_iptables_and_differ_per_node() {
        let (a, b) = chains("node-with-a-rather-long-name-0123456789");
        assert!(a.len() <= 28 && b.len() <= 28, "{a} {b}");
        assert_ne!(chains("n1"), chains("n2"));
        assert_eq!(chains("n1"), chains("n1"));
    }

    #[test]
    fn interface_names_cannot_leave_the_sysctl_directory() {
        for bad in ["", "../all", "a/b", ".."] {
            assert!(allow_localnet(bad).is_err(), "{bad}");
        }
    }
}
