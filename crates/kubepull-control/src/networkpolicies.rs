//! NetworkPolicies (`networking.k8s.io/v1`), stored and checked as kube-apiserver checks them
//! (pkg/apis/networking/validation/validation.go `ValidateNetworkPolicy`,
//! `ValidateNetworkPolicySpec`, `ValidateNetworkPolicyPort`, `ValidateNetworkPolicyPeer`,
//! `ValidateIPBlock`, 1.32). Nothing enforces them here: as on a cluster whose network plugin
//! does not implement NetworkPolicy, they are stored and listed, and pods' traffic is not
//! filtered.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::errors::Cause;
use crate::services::{port_name_problem, PORT_RANGE};
use crate::validation::validate_label_selector;

fn q(v: &str) -> String {
    format!("{v:?}")
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `ValidateNetworkPolicy` and `ValidateNetworkPolicyUpdate` (the spec; the metadata is checked
/// with every kind's): the same spec rules on create and update.
pub fn validate_network_policy(obj: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    match spec.get("podSelector") {
        Some(sel) if sel.is_object() => {
            validate_label_selector(sel, "spec.podSelector", &mut causes)
        }
        _ => {}
    }
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in items(spec, dir).iter().enumerate() {
            let path = format!("spec.{dir}[{i}]");
            for (j, port) in items(rule, "ports").iter().enumerate() {
                validate_port(port, &format!("{path}.ports[{j}]"), &mut causes);
            }
            for (j, peer) in items(rule, peers).iter().enumerate() {
                validate_peer(peer, &format!("{path}.{peers}[{j}]"), &mut causes);
            }
        }
    }
    let types: Vec<&str> = items(spec, "policyTypes")
        .iter()
        .map(|t| t.as_str().unwrap_or(""))
        .collect();
    if types.len() > 2 {
        let listed: Vec<String> = types.iter().map(|t| q(t)).collect();
        causes.push(Cause::invalid(
            "spec.policyTypes",
            format!("[]networking.PolicyType{{{}}}", listed.join(", ")),
            "may not specify more than two policyTypes",
        ));
        return causes;
    }
    for (i, t) in types.iter().enumerate() {
        if !matches!(*t, "Ingress" | "Egress") {
            causes.push(Cause::not_supported(
                format!("spec.policyTypes[{i}]"),
                q(t),
                &["Ingress", "Egress"],
            ));
        }
    }
    causes
}

/// `ValidateNetworkPolicyPort`.
fn validate_port(port: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(p) = port.get("protocol").and_then(Value::as_str) {
        if !matches!(p, "TCP" | "UDP" | "SCTP") {
            causes.push(Cause::not_supported(
                format!("{path}.protocol"),
                q(p),
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let end = port.get("endPort").and_then(Value::as_i64);
    let port_num_ok = |n: i64| (1..=65535).contains(&n);
    match port.get("port") {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if !port_num_ok(n) {
                causes.push(Cause::invalid(
                    format!("{path}.port"),
                    n.to_string(),
                    PORT_RANGE,
                ));
            }
            if let Some(e) = end {
                if e < n {
                    causes.push(Cause::invalid(
                        format!("{path}.endPort"),
                        n.to_string(),
                        "must be greater than or equal to `port`",
                    ));
                }
                if !port_num_ok(e) {
                    causes.push(Cause::invalid(
                        format!("{path}.endPort"),
                        e.to_string(),
                        PORT_RANGE,
                    ));
                }
            }
        }
        Some(Value::String(name)) => {
            if let Some(e) = end {
                causes.push(Cause::invalid(
                    format!("{path}.endPort"),
                    e.to_string(),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            if let Some(m) = port_name_problem(name) {
                causes.push(Cause::invalid(format!("{path}.port"), q(name), m));
            }
        }
        _ => {
            if let Some(e) = end {
                causes.push(Cause::invalid(
                    format!("{path}.endPort"),
                    e.to_string(),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

/// `ValidateNetworkPolicyPeer`: exactly one kind of peer, or pod and namespace selectors
/// together; never an IP block with another.
fn validate_peer(peer: &Value, path: &str, causes: &mut Vec<Cause>) {
    let mut n = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(key).filter(|v| v.is_object()) {
            n += 1;
            validate_label_selector(sel, &format!("{path}.{key}"), causes);
        }
    }
    let block = peer.get("ipBlock").filter(|v| v.is_object());
    if let Some(b) = block {
        n += 1;
        validate_ip_block(b, &format!("{path}.ipBlock"), causes);
    }
    if n == 0 {
        causes.push(Cause::required(path, "must specify a peer"));
    } else if n > 1 && block.is_some() {
        causes.push(Cause::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

/// A CIDR as `netutils.ParseCIDRSloppy` reads it (IPv4 octets may have leading zeros): the
/// network's address (the given address masked) and its prefix length.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let ip = if ip.contains(':') {
        IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?)
    } else {
        let octets: Vec<u8> = ip
            .split('.')
            .map(|o| {
                (!o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| o.parse::<u16>().ok())
                    .flatten()
                    .filter(|v| *v <= 255)
                    .map(|v| v as u8)
            })
            .collect::<Option<_>>()?;
        let [a, b, c, d] = octets[..] else {
            return None;
        };
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    };
    let masked = match ip {
        IpAddr::V4(v4) if len <= 32 => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) if len <= 128 => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
        _ => return None,
    };
    Some((masked, len))
}

/// Whether network `net/len` contains `ip` (`net.IPNet.Contains`: never across families).
fn contains((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(i) & m == u32::from(n)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(i) & m == u128::from(n)
        }
        _ => false,
    }
}

/// `IsValidCIDR`'s message.
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// `ValidateIPBlock`: a CIDR, and exceptions that are strict subsets of it.
fn validate_ip_block(b: &Value, path: &str, causes: &mut Vec<Cause>) {
    let cidr = b.get("cidr").and_then(Value::as_str).unwrap_or("");
    if cidr.is_empty() {
        causes.push(Cause::required(format!("{path}.cidr"), ""));
        return;
    }
    let Some(net) = parse_cidr(cidr) else {
        causes.push(Cause::invalid(format!("{path}.cidr"), q(cidr), CIDR_MSG));
        return;
    };
    for (i, e) in items(b, "except").iter().enumerate() {
        let e = e.as_str().unwrap_or("");
        let field = format!("{path}.except[{i}]");
        let Some(except) = parse_cidr(e) else {
            causes.push(Cause::invalid(field, q(e), CIDR_MSG));
            continue;
        };
        if !contains(net, except.0) || net.1 >= except.1 {
            causes.push(Cause::invalid(
                field,
                q(e),
                "must be a strict subset of `cidr`",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(obj: Value) -> Vec<String> {
        validate_network_policy(&obj)
            .iter()
            .map(|c| {
                format!(
                    "{}: {} {}",
                    c.field,
                    c.value.as_deref().unwrap_or(""),
                    c.detail
                )
            })
            .collect()
    }

    fn policy(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn a_good_policy_passes() {
        let p = policy(json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {}, "namespaceSelector": {"matchLabels": {"team": "a"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                "ports": [{"port": 80, "endPort": 90, "protocol": "TCP"}, {"port": "http"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "010.000.0.0/16"}}]}],
            "policyTypes": ["Ingress", "Egress"]}));
        assert!(lines(p).is_empty());
    }

    #[test]
    fn bad_ports_peers_and_types_are_named_as_upstream_names_them() {
        let p = policy(json!({"podSelector": {},
            "ingress": [{"ports": [{"port": 0, "protocol": "ICMP"}, {"port": 90, "endPort": 80},
                {"port": "http", "endPort": 90}, {"endPort": 5}, {"port": "Bad--Name"}],
                "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8", "11.0.0.0/16", "x"]}},
                {"ipBlock": {"cidr": "10.0.0.0/33"}}, {"ipBlock": {}}]}],
            "policyTypes": ["Ingress", "Sideways"]}));
        assert_eq!(
            lines(p),
            [
                "spec.ingress[0].ports[0].protocol: \"ICMP\" supported values: \"TCP\", \"UDP\", \"SCTP\"",
                "spec.ingress[0].ports[0].port: 0 must be between 1 and 65535, inclusive",
                "spec.ingress[0].ports[1].endPort: 90 must be greater than or equal to `port`",
                "spec.ingress[0].ports[2].endPort: 90 may not be specified when `port` is non-numeric",
                "spec.ingress[0].ports[3].endPort: 5 may not be specified when `port` is not specified",
                "spec.ingress[0].ports[4].port: \"Bad--Name\" must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ingress[0].from[0]:  must specify a peer",
                "spec.ingress[0].from[1]:  may not specify both ipBlock and another peer",
                "spec.egress[0].to[0].ipBlock.except[0]: \"10.0.0.0/8\" must be a strict subset of `cidr`",
                "spec.egress[0].to[0].ipBlock.except[1]: \"11.0.0.0/16\" must be a strict subset of `cidr`",
                "spec.egress[0].to[0].ipBlock.except[2]: \"x\" must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                "spec.egress[0].to[1].ipBlock.cidr: \"10.0.0.0/33\" must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                "spec.egress[0].to[2].ipBlock.cidr:  ",
                "spec.policyTypes[1]: \"Sideways\" supported values: \"Ingress\", \"Egress\"",
            ]
        );
        let three =
            policy(json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]}));
        assert_eq!(
            lines(three),
            ["spec.policyTypes: []networking.PolicyType{\"Ingress\", \"Egress\", \"Ingress\"} may not specify more than two policyTypes"]
        );
    }

    #[test]
    fn cidrs_parse_as_parse_cidr_sloppy_reads_them() {
        assert_eq!(
            parse_cidr("10.1.2.3/8"),
            Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8))
        );
        assert_eq!(parse_cidr("2001:db8::1/64").map(|c| c.1), Some(64));
        for bad in [
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.256/8",
            "::/129",
            "10.0.0.0/+8",
            "a/b",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(!contains(v6, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0))));
    }
}
