//! Pod address ranges: the cluster CIDR and one podCIDR per Node (kube-controller-manager
//! `--allocate-node-cidrs` with the range allocator, `pkg/controller/nodeipam/ipam/
//! range_allocator.go` and `cidrset/cidr_set.go`: each Node gets the next free /24 of the
//! cluster CIDR in `spec.podCIDR` and `spec.podCIDRs`, kept for the Node's lifetime).
//!
//! Unlike kube-controller-manager, the cluster CIDR has a default that suits the machine: at
//! the server's first start the routing table is read and the first candidate /16 that no
//! route overlaps is chosen, then remembered in the data directory (`cluster-cidr`), so that a
//! restart (when the pods' own bridges are in the routing table) keeps it.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

/// The candidates for the default cluster CIDR, in order (flannel's, podman's, then others).
pub const CANDIDATES: &[&str] = &[
    "10.244.0.0/16",
    "10.88.0.0/16",
    "172.30.0.0/16",
    "10.200.0.0/16",
    "10.123.0.0/16",
    "172.29.0.0/16",
];

/// The node mask (kube-controller-manager `--node-cidr-mask-size`, 24 for IPv4).
pub const NODE_MASK: u8 = 24;

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: u32,
    len: u8,
}

/// Why a CIDR or a routing table could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `a.b.c.d/len`.
    #[error("{field} {value:?} is not an IPv4 CIDR: write it as a.b.c.d/len, e.g. 10.244.0.0/16")]
    Parse {
        /// The flag or field.
        field: String,
        /// The value.
        value: String,
    },
    /// Too small to give a node its /24.
    #[error("--cluster-cidr {0} is smaller than a /24: give a /16 to /24 (e.g. 10.244.0.0/16)")]
    TooSmall(Ipv4Net),
    /// Every candidate overlaps a route.
    #[error("every candidate cluster CIDR ({}) overlaps a route of this machine; set --cluster-cidr to a free range", CANDIDATES.join(", "))]
    NoFreeRange,
    /// Every /24 is taken.
    #[error("the cluster CIDR {0} has no free /{NODE_MASK} left for another node")]
    Exhausted(Ipv4Net),
}

impl Ipv4Net {
    /// The network `addr/len` with host bits cleared.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        if len > 32 {
            return None;
        }
        Some(Ipv4Net {
            addr: u32::from(addr) & Self::mask_of(len),
            len,
        })
    }

    fn mask_of(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        }
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is `0.0.0.0/0`.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let m = Self::mask_of(self.len.min(other.len));
        self.addr & m == other.addr & m
    }

    /// The `i`-th subnet of length `len` inside this one.
    pub fn subnet(&self, len: u8, i: u32) -> Option<Ipv4Net> {
        if len < self.len || len > 32 {
            return None;
        }
        let count = 1u64 << (len - self.len);
        if i as u64 >= count {
            return None;
        }
        let step = if len == 32 { 1 } else { 1u32 << (32 - len) };
        Some(Ipv4Net {
            addr: self.addr + i * step,
            len,
        })
    }

    /// Parses `a.b.c.d/len`; `field` names the flag or field in the error.
    pub fn parse(s: &str, field: &str) -> Result<Self, CidrError> {
        let err = || CidrError::Parse {
            field: field.to_string(),
            value: s.to_string(),
        };
        let (a, l) = s.trim().split_once('/').ok_or_else(err)?;
        let a: Ipv4Addr = a.parse().map_err(|_| err())?;
        let l: u8 = l.parse().map_err(|_| err())?;
        Ipv4Net::new(a, l).ok_or_else(err)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ipv4Net::parse(s, "CIDR")
    }
}

/// The destinations of `/proc/net/route` (addresses and masks are little-endian hex).
pub fn routes_from_proc(table: &str) -> Vec<Ipv4Net> {
    let mut out = vec![];
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // the kernel prints the address's bytes as a little-endian u32
        let dst = Ipv4Addr::from(dst.to_le_bytes());
        let len = mask.count_ones() as u8;
        if let Some(n) = Ipv4Net::new(dst, len) {
            out.push(n);
        }
    }
    out
}

/// The machine's IPv4 routes (all tables `/proc/net/route` shows).
pub fn machine_routes() -> Vec<Ipv4Net> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| routes_from_proc(&t))
        .unwrap_or_default()
}

/// The first candidate no route overlaps (the default route does not count).
pub fn pick_cluster_cidr(routes: &[Ipv4Net]) -> Result<Ipv4Net, CidrError> {
    CANDIDATES
        .iter()
        .filter_map(|c| c.parse::<Ipv4Net>().ok())
        .find(|c| !routes.iter().any(|r| !r.is_default() && r.overlaps(c)))
        .ok_or(CidrError::NoFreeRange)
}

/// The cluster CIDR of the server in `data_dir`: `flag` when given (and remembered), else the
/// remembered one, else a free candidate for `routes` (remembered).
pub fn cluster_cidr(
    data_dir: &Path,
    flag: Option<&str>,
    routes: &[Ipv4Net],
) -> Result<Ipv4Net, CidrError> {
    let file = data_dir.join("cluster-cidr");
    let net = match flag.filter(|f| !f.trim().is_empty()) {
        Some(f) => Ipv4Net::parse(f, "--cluster-cidr")?,
        None => match std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| Ipv4Net::parse(&s, "cluster-cidr").ok())
        {
            Some(n) => n,
            None => pick_cluster_cidr(routes)?,
        },
    };
    if net.prefix_len() > NODE_MASK {
        return Err(CidrError::TooSmall(net));
    }
    let _ = std::fs::write(&file, format!("{net}\n"));
    Ok(net)
}

/// The next free node range in `cluster` given the ranges already `used`.
pub fn allocate(cluster: Ipv4Net, used: &[Ipv4Net]) -> Result<Ipv4Net, CidrError> {
    let mut i = 0u32;
    while let Some(n) = cluster.subnet(NODE_MASK, i) {
        if !used.iter().any(|u| u.overlaps(&n)) {
            return Ok(n);
        }
        i += 1;
    }
    Err(CidrError::Exhausted(cluster))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_overlap() {
        assert_eq!(n("10.244.3.7/16").to_string(), "10.244.0.0/16");
        assert!(n("10.244.0.0/16").overlaps(&n("10.244.9.0/24")));
        assert!(n("10.244.9.0/24").overlaps(&n("10.0.0.0/8")));
        assert!(!n("10.244.0.0/16").overlaps(&n("10.88.0.0/16")));
        let e = Ipv4Net::parse("10.244.0.0", "--cluster-cidr").unwrap_err();
        assert!(e.to_string().contains("--cluster-cidr"), "{e}");
        assert!(Ipv4Net::parse("10.244.0.0/33", "x").is_err());
        assert!(Ipv4Net::parse("fd00::/64", "x").is_err());
    }

    #[test]
    fn proc_net_route_table() {
        // 192.0.2.0/24 on eth0, default via 192.0.2.1, 10.244.0.0/24 on a bridge
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 kp0\t0000F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = routes_from_proc(t);
        assert_eq!(
            r,
            vec![n("0.0.0.0/0"), n("192.0.2.0/24"), n("10.244.0.0/24")]
        );
    }

    #[test]
    fn cluster_cidr_avoids_the_machines_routes() {
        // nothing in the way: the first candidate
        assert_eq!(
            pick_cluster_cidr(&[n("0.0.0.0/0"), n("192.0.2.0/24")]).unwrap(),
            n("10.244.0.0/16")
        );
        // a route inside the first candidate, a covering /8 for the second's neighbour
        let routes = [
            n("0.0.0.0/0"),
            n("10.244.17.0/24"),
            n("10.88.0.0/16"),
            n("172.16.0.0/12"),
        ];
        assert_eq!(pick_cluster_cidr(&routes).unwrap(), n("10.200.0.0/16"));
        // everything private taken
        let all = [n("10.0.0.0/8"), n("172.16.0.0/12")];
        assert_eq!(pick_cluster_cidr(&all), Err(CidrError::NoFreeRange));
    }

    #[test]
    fn cluster_cidr_is_remembered() {
        let d = tempfile::tempdir().unwrap();
        let first = cluster_cidr(d.path(), None, &[n("10.244.0.0/24")]).unwrap();
        assert_eq!(first, n("10.88.0.0/16"));
        // later the routes change (the nodes' bridges): the choice stays
        let again = cluster_cidr(d.path(), None, &[n("10.88.0.0/24")]).unwrap();
        assert_eq!(again, first);
        // the flag wins and is remembered
        assert_eq!(
            cluster_cidr(d.path(), Some("172.30.0.0/16"), &[]).unwrap(),
            n("172.30.0.0/16")
        );
        assert_eq!(
            cluster_cidr(d.path(), None, &[]).unwrap(),
            n("172.30.0.0/16")
        );
        assert!(matches!(
            cluster_cidr(d.path(), Some("10.1.2.0/25"), &[]),
            Err(CidrError::TooSmall(_))
        ));
        assert!(matches!(
            cluster_cidr(d.path(), Some("nonsense"), &[]),
            Err(CidrError::Parse { .. })
        ));
    }

    #[test]
    fn nodes_get_distinct_ranges() {
        let c = n("10.244.0.0/16");
        let a = allocate(c, &[]).unwrap();
        let b = allocate(c, &[a]).unwrap();
        assert_eq!(a, n("10.244.0.0/24"));
        assert_eq!(b, n("10.244.1.0/24"));
        // a freed range is reused
        assert_eq!(allocate(c, &[b]).unwrap(), a);
        let small = n("10.9.9.0/24");
        let only = allocate(small, &[]).unwrap();
        assert_eq!(allocate(small, &[only]), Err(CidrError::Exhausted(small)));
    }
}
