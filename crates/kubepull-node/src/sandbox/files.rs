//! The per-pod files bound into every container: `/etc/hosts` (kubelet `managedHostsFileContent`),
//! `/etc/resolv.conf` (kubelet `GetPodDNS`, written as containerd's `parseDNSOptions`) and
//! `/etc/hostname` (containerd `setupSandboxFiles`).

use k8s_openapi::api::core::v1::Pod;

/// `MaxDNSNameservers`.
pub const MAX_NAMESERVERS: usize = 3;
/// `MaxDNSSearchPaths`.
pub const MAX_SEARCH: usize = 32;

/// The kubelet's `/etc/hosts` (k8s `kubelet_pods.go` `managedHostsFileContent`). For a
/// hostNetwork pod, `node_hosts` is the node's `/etc/hosts`.
pub fn hosts_file(
    host_network: bool,
    node_hosts: &str,
    pod_ips: &[String],
    hostname: &str,
    domain: Option<&str>,
    aliases: &[(String, Vec<String>)],
) -> String {
    let mut s = String::new();
    if host_network {
        s.push_str("# Kubernetes-managed hosts file (host network).\n");
        s.push_str(node_hosts);
    } else {
        s.push_str("# Kubernetes-managed hosts file.\n");
        s.push_str("127.0.0.1\tlocalhost\n");
        s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        s.push_str("fe00::0\tip6-localnet\n");
        s.push_str("fe00::0\tip6-mcastprefix\n");
        s.push_str("fe00::1\tip6-allnodes\n");
        s.push_str("fe00::2\tip6-allrouters\n");
        for ip in pod_ips {
            match domain {
                Some(d) if !d.is_empty() => {
                    s.push_str(&format!("{ip}\t{hostname}.{d}\t{hostname}\n"))
                }
                _ => s.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
    }
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in aliases {
            s.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    s
}

/// What `GetPodDNS` decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDns {
    /// `resolv.conf` content.
    pub resolv_conf: String,
    /// Warning events for the pod: (reason, message).
    pub warnings: Vec<(String, String)>,
}

/// Parses `nameserver`, `search` and `options` of a resolv.conf (k8s `dns.go`
/// `parseResolvConf`): the last `search`/`options` line wins; `.` search entries are dropped.
fn parse_resolv(s: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut search, mut opts) = (vec![], vec![], vec![]);
    for line in s.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => ns.extend(f.next().map(str::to_string)),
            Some("search") => search = f.filter(|d| *d != ".").map(str::to_string).collect(),
            Some("options") => opts = f.map(str::to_string).collect(),
            _ => {}
        }
    }
    (ns, search, opts)
}

/// The node's resolv.conf as the kubelet would be configured with it: `/etc/resolv.conf`, or
/// systemd-resolved's upstream file when `/etc/resolv.conf` only names the local stub
/// (`127.0.0.53`), which a pod in its own network namespace cannot reach.
pub fn node_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (ns, _, _) = parse_resolv(&etc);
    if !ns.is_empty() && ns.iter().all(|n| n.starts_with("127.0.0.53")) {
        if let Ok(s) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return s;
        }
    }
    etc
}

/// The pod's resolv.conf (k8s `pkg/kubelet/network/dns/dns.go` `GetPodDNS`). The node has no
/// cluster DNS, so `ClusterFirst` (and `ClusterFirstWithHostNet`) fall back to `Default` — the
/// node's nameservers, search and options — with the kubelet's `MissingClusterDNS` warning;
/// `None` uses only `dnsConfig`. `dnsConfig` is appended, duplicates removed, and at most 3
/// nameservers are kept (`DNSConfigForming` warning).
pub fn pod_resolv_conf(pod: &Pod, node_resolv: &str) -> PodDns {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".into());
    let host_network = spec.host_network == Some(true);
    let mut warnings = vec![];
    let (mut ns, mut search, mut opts) = match policy.as_str() {
        "None" => (vec![], vec![], vec![]),
        "Default" => parse_resolv(node_resolv),
        "ClusterFirst" if host_network => parse_resolv(node_resolv),
        _ => {
            warnings.push((
                "MissingClusterDNS".to_string(),
                format!(
                    "pod: {:?}. kubelet does not have ClusterDNS IP configured and cannot create Pod using {policy:?} policy. Falling back to \"Default\" policy.",
                    super::security::format_pod(pod)
                ),
            ));
            parse_resolv(node_resolv)
        }
    };
    if let Some(c) = &spec.dns_config {
        for n in c.nameservers.iter().flatten() {
            if !ns.contains(n) {
                ns.push(n.clone());
            }
        }
        for d in c.searches.iter().flatten() {
            if !search.contains(d) {
                search.push(d.clone());
            }
        }
        for o in c.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            let v = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            };
            let key = |s: &str| s.split(':').next().unwrap_or("").to_string();
            match opts.iter_mut().find(|x| key(x) == name) {
                Some(x) => *x = v,
                None => opts.push(v),
            }
        }
    }
    if ns.len() > MAX_NAMESERVERS {
        ns.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming".to_string(),
            format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                ns.join(" ")
            ),
        ));
    }
    if search.len() > MAX_SEARCH {
        search.truncate(MAX_SEARCH);
        warnings.push((
            "DNSConfigForming".to_string(),
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                search.join(" ")
            ),
        ));
    }
    // containerd parseDNSOptions: search, nameservers, options; each line only when non-empty
    let mut s = String::new();
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    for n in &ns {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !opts.is_empty() {
        s.push_str(&format!("options {}\n", opts.join(" ")));
    }
    PodDns {
        resolv_conf: s,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

    #[test]
    fn hosts() {
        let h = hosts_file(
            false,
            "",
            &["10.0.0.5".into()],
            "web",
            None,
            &[("1.2.3.4".into(), vec!["a".into(), "b".into()])],
        );
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.0.0.5\tweb\n"));
        assert!(h.ends_with("\n# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"));
        let h = hosts_file(true, "1.1.1.1 node\n", &[], "", None, &[]);
        assert_eq!(
            h,
            "# Kubernetes-managed hosts file (host network).\n1.1.1.1 node\n"
        );
    }

    #[test]
    fn resolv() {
        let node = "nameserver 10.1.1.1\nsearch a.example .\nsearch b.example\noptions ndots:2\n";
        let mut p = Pod {
            spec: Some(PodSpec {
                dns_config: Some(PodDNSConfig {
                    nameservers: Some(vec![
                        "10.2.2.2".into(),
                        "10.3.3.3".into(),
                        "10.4.4.4".into(),
                    ]),
                    searches: Some(vec!["c.example".into()]),
                    options: Some(vec![PodDNSConfigOption {
                        name: Some("ndots".into()),
                        value: Some("5".into()),
                    }]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = pod_resolv_conf(&p, node);
        assert_eq!(
            d.resolv_conf,
            "search b.example c.example\nnameserver 10.1.1.1\nnameserver 10.2.2.2\nnameserver 10.3.3.3\noptions ndots:5\n"
        );
        let reasons: Vec<&str> = d.warnings.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(reasons, ["MissingClusterDNS", "DNSConfigForming"]);
        p.spec.as_mut().unwrap().dns_policy = Some("None".into());
        p.spec.as_mut().unwrap().dns_config = None;
        assert_eq!(pod_resolv_conf(&p, node).resolv_conf, "");
    }
}
