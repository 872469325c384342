//! Where credentials may go, and where the client may be sent at all.
//!
//! # Realm policy (where a `Bearer` challenge may send the credential)
//!
//! A registry answers `401` with `WWW-Authenticate: Bearer realm="URL"`, and the client sends the
//! user's credential to that URL. A hostile or compromised registry can name any URL, so the
//! client checks the realm before it sends anything (the class of CVE-2020-15157,
//! GHSA-xf85-363p-868w, google/go-containerregistry#2193/#2243/#2285/#2292):
//!
//! 1. Scheme: `https`, or `http` only when the registry itself is a plain-HTTP registry the
//!    operator marked insecure. An `http` realm for an `https` registry is refused.
//! 2. No userinfo (`https://user:pw@host/`): it would be sent as credentials of its own and
//!    hides the real host from a reader.
//! 3. Not a cloud metadata host by name (`metadata.google.internal`, `metadata.goog`,
//!    `metadata`).
//! 4. The host (IP literal or every address the [`Resolver`]
//!    returns) must not be unspecified (`0.0.0.0`, `::`), multicast, broadcast, link-local
//!    (`169.254.0.0/16`, `fe80::/10`), or a metadata address (`169.254.169.254`,
//!    `fd00:ec2::254`, `100.100.100.200`). IPv4-mapped IPv6 addresses are checked as IPv4.
//! 5. Zone: the realm may not be "more internal" than the registry. A registry whose addresses
//!    are public may only name a public realm; a registry on a private network
//!    (`10/8`, `172.16/12`, `192.168/16`, `100.64/10`, `fc00::/7`) may name a private or public
//!    realm; only a loopback registry may name a loopback realm. This keeps in-cluster
//!    registries with in-cluster token services working and stops a public registry from
//!    aiming a node's credentials at the node's own network.
//!
//! **Host binding.** The realm host is *not* required to equal the registry host: Docker Hub's
//! registry `registry-1.docker.io` uses the realm `auth.docker.io`, and GCR, Quay and Harbor
//! deployments do similar things (dotnet/sdk#54225 explains why nobody binds them). Cross-host
//! realms are therefore allowed, subject to rules 1–5; the credential sent there is only ever
//! the one the keyring chose for *this registry*, never another registry's. Redirects from the
//! token endpoint are not followed (§11.1 of the project's landscape notes).
//!
//! # Destination policy (redirects and descriptor `urls`)
//!
//! Rules 2–5 also apply to every redirect target and every foreign-layer URL, even though no
//! credential is sent there (SSRF toward metadata endpoints: containerd/containerd#13775,
//! google/go-containerregistry#2293). A redirect may go from `https` to `http` (blob storage
//! behind a CDN), because blob content is verified against its digest; it never carries the
//! `Authorization` header.
//!
//! # Plain HTTP
//!
//! Credentials (Basic or Bearer, or a token request with Basic) are never sent over plain HTTP,
//! not even to an insecure registry (docker/for-win#13344, containers/image#45). An insecure
//! registry is usable anonymously only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::error::PolicyViolation;
use crate::transport::Resolver;

/// Host names of cloud metadata services, refused by name before resolution.
pub const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// How internal an address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Zone {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918, CGNAT `100.64.0.0/10`, unique-local `fc00::/7`.
    Private,
    /// Everything else that is not forbidden.
    Public,
}

/// Why an address is never a destination, or `None`.
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    let ip = canonical(ip);
    match ip {
        IpAddr::V4(v4) => {
            if v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200) {
                Some("metadata")
            } else if v4.is_unspecified() {
                Some("unspecified")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_broadcast() {
                Some("broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254) {
                Some("metadata")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// The zone of an allowed address.
pub fn zone(ip: IpAddr) -> Zone {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Zone::Loopback
            } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                Zone::Private
            } else {
                Zone::Public
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Zone::Loopback
            } else if (v6.segments()[0] & 0xfe00) == 0xfc00 {
                Zone::Private
            } else {
                Zone::Public
            }
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// A URL without userinfo, query or fragment, for errors and logs (containerd sanitizes URLs
/// the same way, commit `64cc8cdec`).
pub fn sanitize_url(u: &Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// `host[:port]` of a URL, for messages.
pub fn host_label(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "<no host>".to_string(),
    }
}

/// The addresses of a URL's host: the literal, or what the resolver answers.
async fn addresses(u: &Url, resolver: &dyn Resolver) -> Result<Vec<IpAddr>, PolicyViolation> {
    let port = u.port_or_known_default().unwrap_or(443);
    match u.host() {
        None => Err(PolicyViolation::NoHost),
        Some(Host::Ipv4(a)) => Ok(vec![IpAddr::V4(a)]),
        Some(Host::Ipv6(a)) => Ok(vec![IpAddr::V6(a)]),
        Some(Host::Domain(d)) => {
            let name = d.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&name.as_str()) {
                return Err(PolicyViolation::MetadataHost(name));
            }
            if name == "localhost" || name.ends_with(".localhost") {
                return Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            }
            match resolver.resolve(&name, port).await {
                Ok(a) if !a.is_empty() => Ok(a),
                _ => Err(PolicyViolation::Unresolvable(name)),
            }
        }
    }
}

/// The zone of the registry: the most public zone among its addresses (a registry that
/// resolves to any public address is treated as public). Forbidden addresses are not
/// checked here (the registry is the user's choice).
pub async fn registry_zone(registry: &Url, resolver: &dyn Resolver) -> Zone {
    match addresses(registry, resolver).await {
        Ok(a) => a.into_iter().map(zone).max().unwrap_or(Zone::Public),
        Err(_) => Zone::Public,
    }
}

/// Checks a destination (redirect target, foreign URL, realm) against rules 2–5 of the
/// module docs, given the registry's zone.
pub async fn check_destination(
    target: &Url,
    registry_zone: Zone,
    resolver: &dyn Resolver,
) -> Result<(), PolicyViolation> {
    match target.scheme() {
        "https" | "http" => {}
        other => return Err(PolicyViolation::Scheme(other.to_string())),
    }
    if !target.username().is_empty() || target.password().is_some() {
        return Err(PolicyViolation::Userinfo);
    }
    let host = host_label(target);
    for addr in addresses(target, resolver).await? {
        if let Some(class) = forbidden_class(addr) {
            return Err(PolicyViolation::ForbiddenAddress { host, addr, class });
        }
        let z = zone(addr);
        if z < registry_zone {
            let class = if z == Zone::Loopback {
                "loopback"
            } else {
                "private"
            };
            return Err(PolicyViolation::MoreInternalThanRegistry { host, addr, class });
        }
    }
    Ok(())
}

/// Checks a `Bearer` realm (rules 1–5 of the module docs) before any credential is sent.
pub async fn check_realm(
    registry: &Url,
    realm: &Url,
    registry_zone: Zone,
    resolver: &dyn Resolver,
) -> Result<(), PolicyViolation> {
    match (registry.scheme(), realm.scheme()) {
        ("https", "https") | ("http", "http") | ("http", "https") => {}
        ("https", "http") => return Err(PolicyViolation::PlainHttpRealm),
        (_, other) => return Err(PolicyViolation::Scheme(other.to_string())),
    }
    check_destination(realm, registry_zone, resolver).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::StaticResolver;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn classes() {
        for (ip, class) in [
            ("169.254.169.254", "metadata"),
            ("100.100.100.200", "metadata"),
            ("fd00:ec2::254", "metadata"),
            ("::ffff:169.254.169.254", "metadata"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
        ] {
            assert_eq!(forbidden_class(ip.parse().unwrap()), Some(class), "{ip}");
        }
        assert_eq!(forbidden_class("8.8.8.8".parse().unwrap()), None);
        assert_eq!(zone("10.1.2.3".parse().unwrap()), Zone::Private);
        assert_eq!(zone("100.64.0.1".parse().unwrap()), Zone::Private);
        assert_eq!(zone("fd12::1".parse().unwrap()), Zone::Private);
        assert_eq!(zone("::1".parse().unwrap()), Zone::Loopback);
        assert_eq!(zone("::ffff:127.0.0.1".parse().unwrap()), Zone::Loopback);
        assert_eq!(zone("1.1.1.1".parse().unwrap()), Zone::Public);
    }

    #[tokio::test]
    async fn realm_rules() {
        let r = StaticResolver::new()
            .with("auth.example.com", &["203.0.113.7".parse().unwrap()])
            .with("evil.example.com", &["169.254.169.254".parse().unwrap()])
            .with("internal.example.com", &["10.0.0.5".parse().unwrap()]);
        let reg = u("https://registry.example.com");
        let pubz = Zone::Public;
        assert!(
            check_realm(&reg, &u("https://auth.example.com/token"), pubz, &r)
                .await
                .is_ok()
        );
        assert_eq!(
            check_realm(&reg, &u("http://auth.example.com/token"), pubz, &r).await,
            Err(PolicyViolation::PlainHttpRealm)
        );
        assert!(matches!(
            check_realm(&reg, &u("ftp://auth.example.com/token"), pubz, &r).await,
            Err(PolicyViolation::Scheme(_))
        ));
        assert_eq!(
            check_realm(&reg, &u("https://u:p@auth.example.com/t"), pubz, &r).await,
            Err(PolicyViolation::Userinfo)
        );
        assert!(matches!(
            check_realm(&reg, &u("https://evil.example.com/t"), pubz, &r).await,
            Err(PolicyViolation::ForbiddenAddress {
                class: "metadata",
                ..
            })
        ));
        assert!(matches!(
            check_realm(&reg, &u("https://metadata.google.internal./t"), pubz, &r).await,
            Err(PolicyViolation::MetadataHost(_))
        ));
        assert!(matches!(
            check_realm(&reg, &u("https://[fd00:ec2::254]/t"), pubz, &r).await,
            Err(PolicyViolation::ForbiddenAddress {
                class: "metadata",
                ..
            })
        ));
        assert!(matches!(
            check_realm(&reg, &u("https://internal.example.com/t"), pubz, &r).await,
            Err(PolicyViolation::MoreInternalThanRegistry {
                class: "private",
                ..
            })
        ));
        assert!(matches!(
            check_realm(&reg, &u("https://127.0.0.1:5000/t"), pubz, &r).await,
            Err(PolicyViolation::MoreInternalThanRegistry {
                class: "loopback",
                ..
            })
        ));
        assert!(matches!(
            check_realm(&reg, &u("https://nowhere.example.com/t"), pubz, &r).await,
            Err(PolicyViolation::Unresolvable(_))
        ));
        // a private registry may use a private realm, a loopback one a loopback realm
        assert!(check_realm(
            &reg,
            &u("https://internal.example.com/t"),
            Zone::Private,
            &r
        )
        .await
        .is_ok());
        assert!(
            check_realm(&reg, &u("https://127.0.0.1:5000/t"), Zone::Loopback, &r)
                .await
                .is_ok()
        );
        // link-local is forbidden even for a loopback registry
        assert!(
            check_realm(&reg, &u("https://169.254.10.10/t"), Zone::Loopback, &r)
                .await
                .is_err()
        );
    }

    #[test]
    fn sanitize() {
        assert_eq!(
            sanitize_url(&u("https://u:p@h:1/p?token=x#f")),
            "https://h:1/p"
        );
    }
}
