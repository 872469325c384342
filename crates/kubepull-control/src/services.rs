//! Services: defaults, validation, ClusterIP and NodePort allocation, and the `kubernetes`
//! Service of the API server.
//!
//! - Defaults: k8s `pkg/apis/core/v1/defaults.go` (`SetDefaults_Service`).
//! - Validation: k8s `pkg/apis/core/validation/validation.go` (`ValidateService`,
//!   `validateServicePort`, `ValidateServiceUpdate`).
//! - Allocation: k8s `pkg/registry/core/service/ipallocator/bitmap.go` (range without the
//!   network and broadcast addresses, `calculateRangeOffset`) and
//!   `pkg/registry/core/service/allocator/bitmap.go` (`randomScanStrategyWithOffset`: a random
//!   free address of the upper band first, the lower band, kept for user-chosen addresses, only
//!   when the upper one is full); `pkg/registry/core/service/portallocator` for NodePorts.
//!   Each address and port is reserved by an atomic create of its own key (`/registry/ranges/…`,
//!   as `IPAddress` objects are with the `MultiCIDRServiceAllocator`), so servers sharing one
//!   etcd never hand out one twice; the in-memory bitmaps that pick candidates are rebuilt from
//!   the stored Services and keys when the server starts, changed under one lock, released on
//!   delete.
//! - The `kubernetes` Service: k8s `pkg/controlplane/controller/kubernetesservice/controller.go`
//!   (`CreateOrUpdateMasterServiceIfNeeded`), its Endpoints and EndpointSlice as the apiserver's
//!   endpoint reconciler writes them.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::errors::Cause;
use crate::podcidr::Ipv4Net;

/// `--service-cluster-ip-range` when not given (the kubeadm default, 10.96.0.0/12).
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// `--service-node-port-range` (kube-apiserver `DefaultServiceNodePortRange`: 30000-32767).
pub const NODE_PORT_BASE: u16 = 30000;
/// The number of node ports (2768).
pub const NODE_PORT_SIZE: u16 = 2768;

/// Why a service range cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not a CIDR.
    #[error(transparent)]
    Parse(#[from] crate::podcidr::CidrError),
    /// Larger than kube-apiserver accepts.
    #[error(
        "--service-cluster-ip-range {0} is too large; for 32-bit addresses, the mask must be >= 12"
    )]
    TooLarge(Ipv4Net),
    /// Fewer than 8 addresses (`ServiceIPRange`, pkg/controlplane/services.go).
    #[error("--service-cluster-ip-range {0} is too small: give at least 8 addresses (a /29 or larger, e.g. 10.96.0.0/12)")]
    TooSmall(Ipv4Net),
}

/// The Service IP range (`--service-cluster-ip-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRange {
    net: Ipv4Net,
    /// The first usable address (the network address + 1).
    base: u32,
    /// How many addresses are usable (without network and broadcast).
    max: u32,
}

impl ServiceRange {
    /// Parses and checks `--service-cluster-ip-range`.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let net = Ipv4Net::parse(s, "--service-cluster-ip-range")?;
        if net.prefix_len() < 12 {
            return Err(RangeError::TooLarge(net));
        }
        let size = 1u64 << (32 - net.prefix_len());
        if size < 8 {
            return Err(RangeError::TooSmall(net));
        }
        Ok(ServiceRange {
            net,
            base: u32::from(net.addr()) + 1,
            max: (size - 2) as u32,
        })
    }

    /// The network.
    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// The address at `index` (0 is the network address + 1).
    pub fn ip(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + index)
    }

    /// The index of `ip`, when it is a usable address of the range.
    pub fn index(&self, ip: Ipv4Addr) -> Option<u32> {
        let v = u32::from(ip);
        (v >= self.base && v - self.base < self.max).then(|| v - self.base)
    }

    /// The API server's Service IP: the first usable address (`ServiceIPRange`: index 1 of the
    /// network, 10.96.0.1 for 10.96.0.0/12).
    pub fn api_server_ip(&self) -> Ipv4Addr {
        self.ip(0)
    }
}

impl Default for ServiceRange {
    fn default() -> Self {
        ServiceRange::parse(DEFAULT_SERVICE_CIDR).expect("default range")
    }
}

/// `calculateRangeOffset` (ipallocator/bitmap.go): the lower band kept for static addresses.
pub fn range_offset(size: u64) -> u64 {
    const MIN: u64 = 16;
    const MAX: u64 = 256;
    const STEP: u64 = 16;
    if size <= MIN {
        return 0;
    }
    (size / STEP).clamp(MIN, MAX)
}

/// A bitmap allocator over `0..max` with a lower band `0..offset` for static choices.
#[derive(Debug, Clone)]
pub struct Bitmap {
    bits: Vec<u64>,
    max: u32,
    offset: u32,
    count: u32,
}

impl Bitmap {
    /// An empty bitmap.
    pub fn new(max: u32, offset: u32) -> Self {
        Bitmap {
            bits: vec![0; (max as usize).div_ceil(64)],
            max,
            offset: offset.min(max),
            count: 0,
        }
    }

    /// Whether `i` is taken.
    pub fn has(&self, i: u32) -> bool {
        i < self.max && self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Takes `i`; false if taken or out of range.
    pub fn allocate(&mut self, i: u32) -> bool {
        if i >= self.max || self.has(i) {
            return false;
        }
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
        self.count += 1;
        true
    }

    /// Frees `i`.
    pub fn release(&mut self, i: u32) {
        if self.has(i) {
            self.bits[(i / 64) as usize] &= !(1 << (i % 64));
            self.count -= 1;
        }
    }

    /// How many are taken.
    pub fn used(&self) -> u32 {
        self.count
    }

    /// `randomScanStrategyWithOffset.AllocateBit`: from a random start in the upper band
    /// `[offset, max)` scan forward (wrapping inside the band); only when the upper band is full,
    /// the same in the lower band `[0, offset)`. `random` picks the start.
    pub fn allocate_next(&mut self, random: u64) -> Option<u32> {
        for (lo, hi) in [(self.offset, self.max), (0, self.offset)] {
            let n = hi - lo;
            if n == 0 {
                continue;
            }
            let start = (random % n as u64) as u32;
            for k in 0..n {
                let i = lo + (start + k) % n;
                if !self.has(i) {
                    self.allocate(i);
                    return Some(i);
                }
            }
        }
        None
    }
}

/// The allocation state of a server: Service IPs and NodePorts.
#[derive(Debug, Clone)]
pub struct Allocations {
    range: ServiceRange,
    ips: Bitmap,
    ports: Bitmap,
}

/// What one Service holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Its ClusterIP index, if any.
    pub ip: Option<u32>,
    /// Its NodePorts.
    pub node_ports: Vec<u16>,
}

fn random_u64() -> u64 {
    let b = crate::objects::uuid();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in b.bytes() {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Allocations {
    /// Empty allocations over `range`.
    pub fn new(range: ServiceRange) -> Self {
        Allocations {
            range,
            ips: Bitmap::new(range.max, range_offset(range.max as u64 + 2) as u32),
            ports: Bitmap::new(
                NODE_PORT_SIZE as u32,
                range_offset(NODE_PORT_SIZE as u64) as u32,
            ),
        }
    }

    /// The range.
    pub fn range(&self) -> ServiceRange {
        self.range
    }

    /// Marks what a stored Service holds (rebuilding the state at start).
    pub fn mark(&mut self, svc: &Value) {
        let held = held_by(&self.range, svc);
        if let Some(i) = held.ip {
            self.ips.allocate(i);
        }
        for p in held.node_ports {
            self.ports.allocate((p - NODE_PORT_BASE) as u32);
        }
    }

    /// Frees what `held` names.
    pub fn release(&mut self, held: &Held) {
        if let Some(i) = held.ip {
            self.ips.release(i);
        }
        for p in &held.node_ports {
            if *p >= NODE_PORT_BASE {
                self.ports.release((p - NODE_PORT_BASE) as u32);
            }
        }
    }

    /// Allocates the ClusterIP and NodePorts a new (or changed) Service needs, writing them into
    /// `svc`. `old` is what the Service held before (an update): kept addresses and ports are not
    /// allocated again. On error nothing stays allocated. Returns what was newly taken.
    pub fn allocate(&mut self, svc: &mut Value, old: Option<&Value>) -> Result<Held, Vec<Cause>> {
        let before = old.map(|o| held_by(&self.range, o)).unwrap_or_default();
        let mut taken = Held::default();
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let result = (|| {
            if ty != "ExternalName" {
                let ip = svc
                    .pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if ip.is_empty() {
                    let i = self.ips.allocate_next(random_u64()).ok_or_else(|| {
                        vec![Cause::invalid(
                            "spec.clusterIPs",
                            "[]string{}",
                            format!(
                                "failed to allocate IP: range is full (the range of valid IPs is {})",
                                self.range.net
                            ),
                        )]
                    })?;
                    taken.ip = Some(i);
                    let a = self.range.ip(i).to_string();
                    svc["spec"]["clusterIP"] = json!(a);
                    svc["spec"]["clusterIPs"] = json!([a]);
                } else if ip != "None" {
                    let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                        vec![Cause::invalid(
                            "spec.clusterIPs[0]",
                            format!("{ip:?}"),
                            "must be empty, 'None', or a valid IP address",
                        )]
                    })?;
                    let fail = |why: String| {
                        vec![Cause::invalid(
                            "spec.clusterIPs",
                            format!("[]string{{{ip:?}}}"),
                            format!("failed to allocate IP {ip}: {why}"),
                        )]
                    };
                    let i = self.range.index(parsed).ok_or_else(|| {
                        fail(format!(
                            "provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            self.range.net
                        ))
                    })?;
                    if before.ip != Some(i) {
                        if !self.ips.allocate(i) {
                            return Err(fail("provided IP is already allocated".into()));
                        }
                        taken.ip = Some(i);
                    }
                    svc["spec"]["clusterIPs"] = json!([ip]);
                } else {
                    svc["spec"]["clusterIPs"] = json!(["None"]);
                }
            }
            if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
                let n = svc
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|a| a.len())
                    .unwrap_or(0);
                for k in 0..n {
                    let p = svc["spec"]["ports"][k]
                        .get("nodePort")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let field = format!("spec.ports[{k}].nodePort");
                    if p == 0 {
                        let i = self.ports.allocate_next(random_u64()).ok_or_else(|| {
                            vec![Cause::invalid(
                                field.clone(),
                                "0",
                                "failed to allocate a nodePort: range is full",
                            )]
                        })?;
                        let port = NODE_PORT_BASE + i as u16;
                        taken.node_ports.push(port);
                        svc["spec"]["ports"][k]["nodePort"] = json!(port);
                    } else {
                        let ok = (NODE_PORT_BASE as i64..(NODE_PORT_BASE + NODE_PORT_SIZE) as i64)
                            .contains(&p);
                        if !ok {
                            return Err(vec![Cause::invalid(
                                field,
                                p.to_string(),
                                format!(
                                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                                    NODE_PORT_BASE,
                                    NODE_PORT_BASE + NODE_PORT_SIZE - 1
                                ),
                            )]);
                        }
                        let port = p as u16;
                        if before.node_ports.contains(&port) || taken.node_ports.contains(&port) {
                            continue;
                        }
                        if !self.ports.allocate((port - NODE_PORT_BASE) as u32) {
                            return Err(vec![Cause::invalid(
                                field,
                                p.to_string(),
                                "provided port is already allocated",
                            )]);
                        }
                        taken.node_ports.push(port);
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(taken),
            Err(e) => {
                self.release(&taken);
                Err(e)
            }
        }
    }

    /// Addresses and ports in use.
    pub fn used(&self) -> (u32, u32) {
        (self.ips.used(), self.ports.used())
    }
}

/// What a stored Service holds in `range`.
pub fn held_by(range: &ServiceRange, svc: &Value) -> Held {
    let ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
        .and_then(|a| range.index(a));
    let node_ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter(|p| {
                    (NODE_PORT_BASE as u64..(NODE_PORT_BASE + NODE_PORT_SIZE) as u64).contains(p)
                })
                .map(|p| p as u16)
                .collect()
        })
        .unwrap_or_default();
    Held { ip, node_ports }
}

/// What an update frees: addresses and ports the old Service held that the new one does not.
pub fn freed_by_update(range: &ServiceRange, old: &Value, new: &Value) -> Held {
    let o = held_by(range, old);
    let n = held_by(range, new);
    Held {
        ip: o.ip.filter(|i| n.ip != Some(*i)),
        node_ports: o
            .node_ports
            .into_iter()
            .filter(|p| !n.node_ports.contains(p))
            .collect(),
    }
}

/// `SetDefaults_Service` and the registry's defaults (pkg/apis/core/v1/defaults.go,
/// pkg/registry/core/service/storage: `ipFamilies`/`ipFamilyPolicy` for a single-stack IPv4
/// cluster).
pub fn default_service(svc: &mut k8s_openapi::api::core::v1::Service) {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let spec = svc.spec.get_or_insert_with(Default::default);
    let ty = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    spec.session_affinity.get_or_insert_with(|| "None".into());
    for p in spec.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        // an unset (or zero) targetPort is the port (SetDefaults_Service)
        let unset = match &p.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    if ty != "ExternalName" {
        spec.internal_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
        spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
        spec.ip_family_policy
            .get_or_insert_with(|| "SingleStack".into());
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if ty == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    if spec.cluster_ip.is_none() {
        spec.cluster_ip = spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .cloned();
    }
    svc.status
        .get_or_insert_with(|| k8s_openapi::api::core::v1::ServiceStatus {
            load_balancer: Some(Default::default()),
            ..Default::default()
        });
}

/// `IsValidPortName` (apimachinery util/validation): IANA_SVC_NAME.
pub(crate) fn port_name_problem(s: &str) -> Option<&'static str> {
    if s.len() > 15 {
        return Some("must be no more than 15 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if s.contains("--") {
        return Some("must not contain consecutive hyphens");
    }
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Some("must contain at least one letter (a-z)");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("must not begin or end with a hyphen");
    }
    None
}

pub(crate) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// `ValidateService` (and `ValidateServiceUpdate` when `old` is given).
pub fn validate_service(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = vec![];
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("");
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.contains(&ty) {
        c.push(Cause::not_supported("spec.type", format!("{ty:?}"), &types));
    }
    let cluster_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    let headless = cluster_ip == "None";
    let ports: Vec<Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && !headless && ty != "ExternalName" {
        c.push(Cause::required("spec.ports", ""));
    }
    if ty == "ExternalName" {
        let en = spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if en.is_empty() {
            c.push(Cause::required("spec.externalName", ""));
        }
        if !cluster_ip.is_empty() {
            c.push(Cause::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
    }
    if headless && matches!(ty, "NodePort" | "LoadBalancer") {
        c.push(Cause::invalid(
            "spec.clusterIPs[0]",
            "\"None\"",
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<Ipv4Addr>().is_err() {
        c.push(Cause::invalid(
            "spec.clusterIPs[0]",
            format!("{cluster_ip:?}"),
            "must be empty, 'None', or a valid IP address",
        ));
    }
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            if require_name {
                c.push(Cause::required(format!("{f}.name"), ""));
            }
        } else {
            for msg in crate::admission::dns1123_label_problems(name) {
                c.push(Cause::invalid(
                    format!("{f}.name"),
                    format!("{name:?}"),
                    msg,
                ));
            }
            if !names.insert(name.to_string()) {
                c.push(Cause {
                    reason: "FieldValueDuplicate",
                    field: format!("{f}.name"),
                    value: Some(format!("{name:?}")),
                    detail: String::new(),
                });
            }
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            c.push(Cause::invalid(
                format!("{f}.port"),
                port.to_string(),
                PORT_RANGE,
            ));
        }
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        let protos = ["SCTP", "TCP", "UDP"];
        if proto.is_empty() {
            c.push(Cause::required(format!("{f}.protocol"), ""));
        } else if !protos.contains(&proto) {
            c.push(Cause::not_supported(
                format!("{f}.protocol"),
                format!("{proto:?}"),
                &protos,
            ));
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    c.push(Cause::invalid(
                        format!("{f}.targetPort"),
                        n.to_string(),
                        PORT_RANGE,
                    ));
                }
            }
            Some(Value::String(s)) => {
                if let Some(why) = port_name_problem(s) {
                    c.push(Cause::invalid(
                        format!("{f}.targetPort"),
                        format!("{s:?}"),
                        why,
                    ));
                }
            }
            _ => {}
        }
        let node_port = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 && ty == "ClusterIP" {
            c.push(Cause::forbidden(
                format!("{f}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        if !keys.insert((port, proto.to_string())) {
            c.push(Cause {
                reason: "FieldValueDuplicate",
                field: f.clone(),
                value: Some(format!(
                    "core.ServicePort{{Name:{name:?}, Protocol:{proto:?}, Port:{port}}}"
                )),
                detail: String::new(),
            });
        }
    }
    let affinity = spec
        .get("sessionAffinity")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(affinity, "None" | "ClientIP") {
        c.push(Cause::not_supported(
            "spec.sessionAffinity",
            format!("{affinity:?}"),
            &["ClientIP", "None"],
        ));
    }
    // ValidateService: unversionedvalidation.ValidateLabels(spec.selector)
    crate::validation::validate_labels(spec.get("selector"), "spec.selector", &mut c);
    if let Some(old) = old {
        // ValidateServiceUpdate: the ClusterIP may not change once set (except to or from
        // ExternalName, which has none)
        let old_ip = old
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        let old_ty = old
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !old_ip.is_empty()
            && old_ty != "ExternalName"
            && ty != "ExternalName"
            && !cluster_ip.is_empty()
            && cluster_ip != old_ip
        {
            c.push(Cause::invalid(
                "spec.clusterIPs[0]",
                format!("[]string{{{cluster_ip:?}}}"),
                "may not change once set",
            ));
        }
    }
    c
}

/// The `kubernetes` Service: `default/kubernetes`, ClusterIP the first address of the range,
/// port 443 → the API server's port.
pub fn kubernetes_service(range: &ServiceRange, secure_port: u16) -> Value {
    let ip = range.api_server_ip().to_string();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP", "sessionAffinity": "None",
            "clusterIP": ip, "clusterIPs": [ip],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}],
        },
    })
}

/// The `kubernetes` Endpoints and EndpointSlice: the API server's address and port.
pub fn kubernetes_endpoints(ip: &str, secure_port: u16) -> (Value, Value) {
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{
            "addresses": [{"ip": ip}],
            "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}],
        }],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}],
    });
    (ep, slice)
}

/// `labels.FormatLabels`/`SelectorFromSet(...).String()`: `k=v,…` sorted, `<none>` if empty.
pub fn format_selector(m: Option<&Value>) -> String {
    let m: BTreeMap<String, String> = m
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where a reserved ClusterIP is recorded in the datastore (one key per address, created
/// atomically, as the `IPAddress` objects of the `MultiCIDRServiceAllocator` allocator are), so
/// that several API servers on one etcd never hand out one address twice.
pub const IP_KEYS: &str = "/registry/ranges/serviceips/";
/// Where a reserved NodePort is recorded.
pub const PORT_KEYS: &str = "/registry/ranges/servicenodeports/";

/// One reservable thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Ip(u32),
    Port(u16),
}

/// A server's Service allocation state: the datastore's reservation keys are the truth; the
/// in-memory bitmaps (built from the stored Services and keys on first use, at start) pick
/// candidates. Allocation happens under one lock per server and each reservation is an atomic
/// create, so concurrent creates, here or on another server, never share an address or port.
#[derive(Debug)]
pub struct ServiceState {
    range: ServiceRange,
    alloc: tokio::sync::Mutex<Option<Allocations>>,
}

fn unavailable(e: impl std::fmt::Display) -> crate::errors::ApiError {
    crate::errors::ApiError::unavailable(format!("service allocations: {e}"))
}

impl ServiceState {
    /// No state yet over `range`.
    pub fn new(range: ServiceRange) -> Self {
        ServiceState {
            range,
            alloc: tokio::sync::Mutex::new(None),
        }
    }

    /// The range.
    pub fn range(&self) -> ServiceRange {
        self.range
    }

    fn key(&self, item: Item) -> String {
        match item {
            Item::Ip(i) => format!("{IP_KEYS}{}", self.range.ip(i)),
            Item::Port(p) => format!("{PORT_KEYS}{p}"),
        }
    }

    fn items(held: &Held) -> Vec<Item> {
        held.ip
            .map(Item::Ip)
            .into_iter()
            .chain(held.node_ports.iter().map(|p| Item::Port(*p)))
            .collect()
    }

    async fn list_all(
        store: &dyn kubepull_datastore::Datastore,
        prefix: &str,
    ) -> Result<Vec<kubepull_datastore::KeyValue>, crate::errors::ApiError> {
        let mut out = vec![];
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list(prefix, after.as_deref(), 500, None)
                .await
                .map_err(unavailable)?;
            after = page.items.last().map(|kv| kv.key.clone());
            out.extend(page.items);
            if !page.more || after.is_none() {
                return Ok(out);
            }
        }
    }

    /// The allocations, rebuilt the first time from the stored Services (whose missing
    /// reservation keys are written: the repair step) and the reservation keys.
    async fn lock(
        &self,
        store: &dyn kubepull_datastore::Datastore,
    ) -> Result<tokio::sync::MappedMutexGuard<'_, Allocations>, crate::errors::ApiError> {
        let mut g = self.alloc.lock().await;
        if g.is_none() {
            let mut a = Allocations::new(self.range);
            for kv in Self::list_all(store, "/registry/services/").await? {
                let svc = crate::objects::decode(&kv);
                a.mark(&svc);
                let owner = json!({"namespace": svc.pointer("/metadata/namespace"), "name": svc.pointer("/metadata/name")});
                for item in Self::items(&held_by(&self.range, &svc)) {
                    match store
                        .create(&self.key(item), owner.to_string().into_bytes())
                        .await
                    {
                        Ok(_) | Err(kubepull_datastore::Error::AlreadyExists { .. }) => {}
                        Err(e) => return Err(unavailable(e)),
                    }
                }
            }
            for kv in Self::list_all(store, IP_KEYS).await? {
                if let Some(i) = kv.key[IP_KEYS.len()..]
                    .parse::<Ipv4Addr>()
                    .ok()
                    .and_then(|ip| self.range.index(ip))
                {
                    a.ips.allocate(i);
                }
            }
            for kv in Self::list_all(store, PORT_KEYS).await? {
                if let Ok(p) = kv.key[PORT_KEYS.len()..].parse::<u16>() {
                    if p >= NODE_PORT_BASE {
                        a.ports.allocate((p - NODE_PORT_BASE) as u32);
                    }
                }
            }
            *g = Some(a);
        }
        Ok(tokio::sync::MutexGuard::map(g, |o| {
            o.as_mut().expect("initialised above")
        }))
    }

    /// Allocates what `svc` needs (see [`Allocations::allocate`]) and reserves it in `store`.
    /// Returns what was newly taken; on error nothing stays reserved.
    pub async fn allocate(
        &self,
        store: &dyn kubepull_datastore::Datastore,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<Held, AllocError> {
        let mut a = self.lock(store).await?;
        let requested_ip = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|x| x.parse::<Ipv4Addr>().ok())
            .and_then(|ip| self.range.index(ip));
        let requested_ports: Vec<u16> = held_by(&self.range, svc).node_ports;
        // what memory says is taken but no key records was freed by another server
        let before = old.map(|o| held_by(&self.range, o)).unwrap_or_default();
        let mut statics: Vec<Item> = requested_ip
            .filter(|i| before.ip != Some(*i))
            .map(Item::Ip)
            .into_iter()
            .collect();
        statics.extend(
            requested_ports
                .iter()
                .filter(|p| !before.node_ports.contains(p))
                .map(|p| Item::Port(*p)),
        );
        for item in &statics {
            let marked = match item {
                Item::Ip(i) => a.ips.has(*i),
                Item::Port(p) => a.ports.has((p - NODE_PORT_BASE) as u32),
            };
            if marked
                && store
                    .get(&self.key(*item))
                    .await
                    .map_err(unavailable)?
                    .is_none()
            {
                match item {
                    Item::Ip(i) => a.ips.release(*i),
                    Item::Port(p) => a.ports.release((p - NODE_PORT_BASE) as u32),
                }
            }
        }
        let owner = json!({"namespace": svc.pointer("/metadata/namespace"), "name": svc.pointer("/metadata/name")}).to_string();
        loop {
            let mut attempt = svc.clone();
            let held = a.allocate(&mut attempt, old).map_err(AllocError::Invalid)?;
            let mut created: Vec<Item> = vec![];
            let mut conflict = None;
            for item in Self::items(&held) {
                match store
                    .create(&self.key(item), owner.clone().into_bytes())
                    .await
                {
                    Ok(_) => created.push(item),
                    Err(kubepull_datastore::Error::AlreadyExists { .. }) => {
                        conflict = Some(item);
                        break;
                    }
                    Err(e) => {
                        for c in &created {
                            let _ = store.delete(&self.key(*c), None).await;
                        }
                        a.release(&held);
                        return Err(unavailable(e).into());
                    }
                }
            }
            let Some(taken) = conflict else {
                *svc = attempt;
                return Ok(held);
            };
            // another server holds it: it stays marked here, the rest is given back
            for c in &created {
                let _ = store.delete(&self.key(*c), None).await;
            }
            let mut rest = held.clone();
            match taken {
                Item::Ip(_) => rest.ip = None,
                Item::Port(p) => rest.node_ports.retain(|x| *x != p),
            }
            a.release(&rest);
            if statics.contains(&taken) {
                let cause = match taken {
                    Item::Ip(i) => {
                        let ip = self.range.ip(i);
                        Cause::invalid(
                            "spec.clusterIPs",
                            format!("[]string{{\"{ip}\"}}"),
                            format!("failed to allocate IP {ip}: provided IP is already allocated"),
                        )
                    }
                    Item::Port(p) => {
                        let k = svc
                            .pointer("/spec/ports")
                            .and_then(Value::as_array)
                            .and_then(|ps| {
                                ps.iter().position(|x| {
                                    x.get("nodePort").and_then(Value::as_u64) == Some(p as u64)
                                })
                            })
                            .unwrap_or(0);
                        Cause::invalid(
                            format!("spec.ports[{k}].nodePort"),
                            p.to_string(),
                            "provided port is already allocated",
                        )
                    }
                };
                return Err(AllocError::Invalid(vec![cause]));
            }
        }
    }

    /// Gives back what `held` names (memory and reservation keys).
    pub async fn release(&self, store: &dyn kubepull_datastore::Datastore, held: &Held) {
        if let Ok(mut a) = self.lock(store).await {
            a.release(held);
        }
        for item in Self::items(held) {
            if let Err(e) = store.delete(&self.key(item), None).await {
                if !matches!(e, kubepull_datastore::Error::NotFound { .. }) {
                    tracing::warn!(key = %self.key(item), error = %e, "releasing a Service reservation failed");
                }
            }
        }
    }

    /// Frees what a removed Service held.
    pub async fn release_service(&self, store: &dyn kubepull_datastore::Datastore, svc: &Value) {
        self.release(store, &held_by(&self.range, svc)).await;
    }
}

/// Why an allocation failed.
#[derive(Debug)]
pub enum AllocError {
    /// The Service asks for something it cannot have (field errors).
    Invalid(Vec<Cause>),
    /// The datastore failed.
    Store(crate::errors::ApiError),
}

impl From<crate::errors::ApiError> for AllocError {
    fn from(e: crate::errors::ApiError) -> Self {
        AllocError::Store(e)
    }
}

impl AllocError {
    /// The API error for Service `name`.
    pub fn into_api(self, r: &crate::resources::Resource, name: &str) -> crate::errors::ApiError {
        match self {
            AllocError::Invalid(c) => crate::errors::ApiError::invalid(r, name, c),
            AllocError::Store(e) => e,
        }
    }
}

/// `dropTypeDependentFields` (pkg/registry/core/service/strategy.go): a type change drops the
/// allocated values the new type cannot have when the update left them as they were (NodePorts
/// going to ClusterIP, the ClusterIP going to ExternalName).
fn drop_type_dependent_fields(old: &Value, new: &mut Value, ty: &str) {
    let old_ty = old
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if old_ty == ty {
        return;
    }
    if matches!(ty, "ClusterIP" | "ExternalName") {
        let old_ports = old.pointer("/spec/ports").cloned().unwrap_or(Value::Null);
        if let Some(Value::Array(ps)) = new.pointer_mut("/spec/ports") {
            for p in ps.iter_mut() {
                let same = old_ports.as_array().is_some_and(|ops| {
                    ops.iter().any(|o| {
                        o.get("port") == p.get("port") && o.get("nodePort") == p.get("nodePort")
                    })
                });
                if same {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                }
            }
        }
        if let Some(m) = new.get_mut("spec").and_then(Value::as_object_mut) {
            if old.pointer("/spec/externalTrafficPolicy") == m.get("externalTrafficPolicy") {
                m.remove("externalTrafficPolicy");
            }
        }
    }
    if ty == "ExternalName" {
        if let Some(m) = new.get_mut("spec").and_then(Value::as_object_mut) {
            if old.pointer("/spec/clusterIP") == m.get("clusterIP") {
                m.remove("clusterIP");
                m.remove("clusterIPs");
                m.remove("ipFamilies");
                m.remove("ipFamilyPolicy");
                m.remove("internalTrafficPolicy");
            }
        }
    }
}

/// `patchAllocatedValues` (pkg/registry/core/service/storage/storage.go): an update that leaves
/// the ClusterIP or a NodePort empty keeps the allocated one.
pub fn keep_allocated(old: &Value, new: &mut Value) {
    let ty = new
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    drop_type_dependent_fields(old, new, &ty);
    if ty == "ExternalName" {
        return;
    }
    let empty = new
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if empty {
        if let Some(ip) = old.pointer("/spec/clusterIP").cloned() {
            new["spec"]["clusterIP"] = ip;
            if let Some(ips) = old.pointer("/spec/clusterIPs").cloned() {
                new["spec"]["clusterIPs"] = ips;
            }
        }
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        let old_ports = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(ps)) = new.pointer_mut("/spec/ports") {
            for p in ps {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                if let Some(o) = old_ports.iter().find(|o| {
                    o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol")
                }) {
                    if let Some(np) = o.get("nodePort") {
                        p["nodePort"] = np.clone();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_offsets_as_upstream() {
        // ipallocator/bitmap_test.go TestCalculateRangeOffset cases
        assert_eq!(range_offset(1 << 8), 16); // /24
        assert_eq!(range_offset(1 << 4), 0); // /28
        assert_eq!(range_offset(1 << 12), 256); // /20
        assert_eq!(range_offset(1 << 10), 64); // /22
        assert_eq!(range_offset(2768), 173); // node ports
    }

    #[test]
    fn range_parse_and_limits() {
        let r = ServiceRange::default();
        assert_eq!(r.api_server_ip(), "10.96.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(r.index("10.96.0.0".parse().unwrap()), None);
        assert_eq!(r.index("10.111.255.255".parse().unwrap()), None);
        assert_eq!(r.index("10.111.255.254".parse().unwrap()), Some(r.max - 1));
        assert!(matches!(
            ServiceRange::parse("10.0.0.0/8"),
            Err(RangeError::TooLarge(_))
        ));
        assert!(matches!(
            ServiceRange::parse("10.0.0.0/30"),
            Err(RangeError::TooSmall(_))
        ));
        let e = ServiceRange::parse("10.0.0/24").unwrap_err().to_string();
        assert!(e.contains("--service-cluster-ip-range"), "{e}");
    }

    #[test]
    fn dynamic_allocation_prefers_the_upper_band_and_never_repeats() {
        let r = ServiceRange::parse("10.0.0.0/24").unwrap();
        let mut a = Allocations::new(r);
        let offset = range_offset(256) as u32;
        let mut seen = HashSet::new();
        for k in 0..(r.max - offset) {
            let mut svc = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
            a.allocate(&mut svc, None).unwrap();
            let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
            let i = r.index(ip).unwrap();
            assert!(i >= offset, "allocation {k} took {ip} from the lower band");
            assert!(seen.insert(i), "{ip} given twice");
        }
        // the upper band is full: the lower band is used now
        let mut svc = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        a.allocate(&mut svc, None).unwrap();
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(r.index(ip).unwrap() < offset);
        for _ in 1..offset {
            let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
            a.allocate(&mut svc, None).unwrap();
        }
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        let e = a.allocate(&mut svc, None).unwrap_err();
        assert!(e[0].detail.contains("range is full"), "{e:?}");
    }

    #[test]
    fn static_addresses_and_ports_are_taken_once() {
        let r = ServiceRange::parse("10.0.0.0/24").unwrap();
        let mut a = Allocations::new(r);
        let mut s1 = json!({"spec": {"type": "NodePort", "clusterIP": "10.0.0.10", "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        let held = a.allocate(&mut s1, None).unwrap();
        assert_eq!(held.ip, r.index("10.0.0.10".parse().unwrap()));
        assert_eq!(held.node_ports.len(), 2);
        let auto = s1["spec"]["ports"][1]["nodePort"].as_u64().unwrap();
        assert!((30000..32768).contains(&auto));
        // the same address again
        let mut s2 = json!({"spec": {"clusterIP": "10.0.0.10", "ports": [{"port": 80}]}});
        let e = a.allocate(&mut s2, None).unwrap_err();
        assert_eq!(
            e[0].text(),
            "spec.clusterIPs: Invalid value: []string{\"10.0.0.10\"}: failed to allocate IP 10.0.0.10: provided IP is already allocated"
        );
        // a taken node port: the IP it took first is released again
        let mut s3 = json!({"spec": {"type": "NodePort", "clusterIP": "10.0.0.11", "ports": [{"port": 80, "nodePort": 30080}]}});
        let e = a.allocate(&mut s3, None).unwrap_err();
        assert_eq!(
            e[0].text(),
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        assert!(!a.ips.has(r.index("10.0.0.11".parse().unwrap()).unwrap()));
        // out of range
        let mut s4 = json!({"spec": {"clusterIP": "192.168.0.1", "ports": [{"port": 80}]}});
        let e = a.allocate(&mut s4, None).unwrap_err();
        assert!(
            e[0].detail
                .contains("is not in the valid range. The range of valid IPs is 10.0.0.0/24"),
            "{e:?}"
        );
        // headless takes nothing
        let mut h = json!({"spec": {"clusterIP": "None"}});
        assert_eq!(a.allocate(&mut h, None).unwrap(), Held::default());
        // release, then the address is free again
        a.release(&held_by(&r, &s1));
        assert_eq!(a.used(), (0, 0));
        let mut s2 = json!({"spec": {"clusterIP": "10.0.0.10", "ports": [{"port": 80}]}});
        a.allocate(&mut s2, None).unwrap();
        // an update keeping its address allocates nothing new
        let old = s2.clone();
        let mut upd = s2.clone();
        assert_eq!(a.allocate(&mut upd, Some(&old)).unwrap(), Held::default());
    }

    #[test]
    fn type_changes_drop_what_the_new_type_cannot_have() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"],
            "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        keep_allocated(&old, &mut new);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none(), "{new}");
        assert!(new["spec"].get("externalTrafficPolicy").is_none(), "{new}");
        assert_eq!(new["spec"]["clusterIP"], "10.0.0.5");
        assert!(validate_service(
            &{
                let mut n = new.clone();
                n["spec"]["sessionAffinity"] = json!("None");
                n
            },
            Some(&old)
        )
        .is_empty());
        let mut en = old.clone();
        en["spec"]["type"] = json!("ExternalName");
        en["spec"]["externalName"] = json!("example.com");
        keep_allocated(&old, &mut en);
        assert!(en["spec"].get("clusterIP").is_none(), "{en}");
        // back from NodePort to NodePort with the port left out: the allocated one is kept
        let mut np = old.clone();
        np["spec"]["ports"][0]
            .as_object_mut()
            .unwrap()
            .remove("nodePort");
        keep_allocated(&old, &mut np);
        assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
    }

    #[test]
    fn state_rebuilt_from_stored_services() {
        let r = ServiceRange::parse("10.0.0.0/24").unwrap();
        let mut a = Allocations::new(r);
        a.mark(
            &json!({"spec": {"clusterIP": "10.0.0.20", "ports": [{"port": 1, "nodePort": 31000}]}}),
        );
        let mut s = json!({"spec": {"type": "NodePort", "clusterIP": "10.0.0.20", "ports": [{"port": 80}]}});
        assert!(a.allocate(&mut s, None).is_err());
        let mut s =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}});
        assert!(a.allocate(&mut s, None).is_err());
    }

    #[test]
    fn defaults_and_validation() {
        let svc = json!({"metadata": {"name": "a"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}});
        let r = crate::resources::find("", "v1", "services").unwrap();
        let svc = crate::admission::defaulted(r, svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert!(validate_service(&svc, None).is_empty());

        let bad = json!({"spec": {"type": "Weird", "sessionAffinity": "None", "ports": [
            {"port": 0, "protocol": "TCP"}, {"name": "a", "port": 80, "protocol": "FOO", "targetPort": "Bad_Name"},
            {"name": "a", "port": 80, "protocol": "FOO", "nodePort": 30001}]}});
        let texts: Vec<String> = validate_service(&bad, None)
            .iter()
            .map(Cause::text)
            .collect();
        let want = [
            "spec.type: Unsupported value: \"Weird\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[1].targetPort: Invalid value: \"Bad_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ];
        for w in want {
            assert!(texts.iter().any(|t| t == w), "missing {w:?} in {texts:#?}");
        }
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("spec.ports[2].name: Duplicate value")),
            "{texts:#?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("spec.ports[2]: Duplicate value")),
            "{texts:#?}"
        );

        let no_ports = json!({"spec": {"type": "ClusterIP", "sessionAffinity": "None"}});
        assert_eq!(
            validate_service(&no_ports, None)[0].text(),
            "spec.ports: Required value"
        );
        let headless =
            json!({"spec": {"type": "ClusterIP", "clusterIP": "None", "sessionAffinity": "None"}});
        assert!(validate_service(&headless, None).is_empty());
        let headless_np = json!({"spec": {"type": "NodePort", "clusterIP": "None", "sessionAffinity": "None", "ports": [{"port": 1, "protocol": "TCP"}]}});
        assert_eq!(
            validate_service(&headless_np, None)[0].text(),
            "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
        );
        let np_on_cip = json!({"spec": {"type": "ClusterIP", "sessionAffinity": "None", "ports": [{"port": 1, "protocol": "TCP", "nodePort": 30000}]}});
        assert_eq!(
            validate_service(&np_on_cip, None)[0].text(),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        );
        // immutable clusterIP
        let old = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.0.0.5", "sessionAffinity": "None", "ports": [{"port": 1, "protocol": "TCP"}]}});
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.0.0.6");
        assert_eq!(
            validate_service(&new, Some(&old))[0].text(),
            "spec.clusterIPs[0]: Invalid value: []string{\"10.0.0.6\"}: may not change once set"
        );
    }
}
