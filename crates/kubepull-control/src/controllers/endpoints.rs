//! The Endpoints and EndpointSlice controllers (kubernetes `pkg/controller/endpoint`
//! `syncService`, `pkg/controller/endpointslice` with `staging/src/k8s.io/endpointslice`
//! `reconciler.go`): for every Service with a selector, the pods it selects that have an IP,
//! ready ones as `addresses` and the others as `notReadyAddresses` (all of them with
//! `publishNotReadyAddresses`), ports resolved from `targetPort` (a number, or a container port
//! name looked up in each pod); pods that are terminal or being deleted are left out of
//! Endpoints, and show as `terminating` in the slice.
//!
//! One EndpointSlice per Service and port set (up to 100 endpoints each: larger sets are split
//! as `maxEndpointsPerSlice` does), labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the
//! Service. Services without a selector are left to their owners. The work per change is the
//! Services of the changed pod's namespace whose selector matches it; a sync reads the
//! Service, its pods (the namespace's, through the informer's index, selected by label), its
//! Endpoints and its slices (indexed by `kubernetes.io/service-name`) from the shared
//! informers, as upstream reads its listers.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CoreEndpointPort, EndpointSubset, Endpoints, ObjectReference,
    Pod, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SliceEndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::expectations::Expectations;
use super::informer::{index, node_name, Informers, Notice, Typed};
use super::kinds::{self, new_controller_ref};
use super::queue::{self, Action, Plan};
use crate::errors::ApiError;
use crate::objects::Objects;
use crate::resources::{self, Resource};

/// `endpointslice.kubernetes.io/managed-by` of the slices this controller writes.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// `--max-endpoints-per-slice` default.
pub const MAX_PER_SLICE: usize = 100;

fn r(group: &str, plural: &str) -> &'static Resource {
    resources::find(group, "v1", plural).expect("served")
}

fn selector_of(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|m| !m.is_empty())
}

fn selector_matches(sel: &BTreeMap<String, String>, pod: &Pod) -> bool {
    !sel.is_empty()
        && sel
            .iter()
            .all(|(k, v)| pod.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
}

fn pod_ip(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .unwrap_or("")
}

fn protocol(sp: &ServicePort) -> String {
    sp.protocol.clone().unwrap_or_else(|| "TCP".into())
}

/// `podutil.FindPort`: a numeric targetPort as is, a name looked up in the pod's containers.
fn find_port(pod: Option<&Pod>, svc_port: &ServicePort) -> Option<i32> {
    match &svc_port.target_port {
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let proto = protocol(svc_port);
            pod?.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
        None => Some(svc_port.port),
    }
}

/// `podToEndpointAddressForService`/`podToEndpoint`: a pod's hostname is published when its
/// subdomain is the Service's name.
fn hostname_for(svc: &Service, p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    let h = spec.hostname.as_deref().unwrap_or("");
    (!h.is_empty()
        && spec.subdomain.as_deref().unwrap_or("") == kinds::name(&svc.metadata)
        && kinds::namespace(&p.metadata) == kinds::namespace(&svc.metadata))
    .then(|| h.to_string())
}

fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: Some(kinds::namespace(&p.metadata).to_string()),
        name: Some(kinds::name(&p.metadata).to_string()),
        uid: Some(kinds::uid(&p.metadata).to_string()),
        ..Default::default()
    }
}

/// Labels of the Endpoints and slices: the Service's, plus `service.kubernetes.io/headless`
/// for headless Services.
fn labels_of(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        l.insert("service.kubernetes.io/headless".into(), String::new());
    }
    l
}

fn svc_ports(svc: &Service) -> Vec<ServicePort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true)
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The desired Endpoints of `svc` (`syncService`, then `RepackSubsets`).
pub fn desired_endpoints(svc: &Service, pods: &[&Pod]) -> Endpoints {
    let publish_nr = publish_not_ready(svc);
    let ports = svc_ports(svc);
    // port set → (ready addresses, not ready addresses)
    type Addrs = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut subsets: BTreeMap<String, (Vec<CoreEndpointPort>, Addrs)> = BTreeMap::new();
    for p in pods {
        let ip = pod_ip(p);
        // ShouldPodBeInEndpoints(pod, publishNotReadyAddresses): terminating pods only when
        // not-ready addresses are published
        if ip.is_empty()
            || (p.metadata.deletion_timestamp.is_some() && !publish_nr)
            || matches!(kinds::pod_phase(p), "Succeeded" | "Failed")
        {
            continue;
        }
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let addr = EndpointAddress {
            ip: ip.to_string(),
            target_ref: Some(target_ref(p)),
            node_name: node.filter(|n| !n.is_empty()),
            hostname: hostname_for(svc, p),
        };
        let eps: Vec<CoreEndpointPort> = ports
            .iter()
            .filter_map(|sp| {
                find_port(Some(p), sp).map(|n| CoreEndpointPort {
                    port: n,
                    protocol: Some(protocol(sp)),
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    app_protocol: None,
                })
            })
            .collect();
        let key = serde_json::to_string(&eps).unwrap_or_default();
        let entry = subsets
            .entry(key)
            .or_insert_with(|| (eps, (vec![], vec![])));
        if publish_nr || kinds::pod_ready(p) {
            entry.1 .0.push(addr);
        } else {
            entry.1 .1.push(addr);
        }
    }
    let mut subsets: Vec<EndpointSubset> = subsets
        .into_values()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: non_empty(ready),
                not_ready_addresses: non_empty(not_ready),
                ports: non_empty(ports),
            }
        })
        .collect();
    let truncated = truncate_endpoints(&mut subsets);
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels_of(svc)),
            annotations: truncated
                .then(|| [(OVER_CAPACITY.to_string(), "truncated".to_string())].into()),
            ..Default::default()
        },
        subsets: non_empty(subsets),
    }
}

/// `maxCapacity` of an Endpoints object (endpoints_controller.go).
pub const MAX_CAPACITY: usize = 1000;
/// `v1.EndpointsOverCapacity`.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// `truncateEndpoints`: at most [`MAX_CAPACITY`] addresses, ready ones first, each subset
/// keeping its proportion (rounded up, earlier subsets first). True when something was cut.
pub fn truncate_endpoints(subsets: &mut [EndpointSubset]) -> bool {
    let len = |a: &Option<Vec<EndpointAddress>>| a.as_ref().map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|ss| len(&ss.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|ss| len(&ss.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, num_total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for ss in subsets.iter_mut() {
        if truncate_ready {
            ss.not_ready_addresses = None;
        }
        let list = if truncate_ready {
            &mut ss.addresses
        } else {
            &mut ss.not_ready_addresses
        };
        let n = len(list);
        let to_add = ((n as f64 / num_total as f64) * max as f64).ceil() as usize;
        let to_add = to_add.min(can_be_added);
        if let Some(a) = list.as_mut() {
            a.truncate(to_add);
        }
        can_be_added -= len(list);
    }
    true
}

/// The desired EndpointSlices of `svc` (without names: the caller matches them to existing
/// slices by port set).
pub fn desired_slices(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSlice> {
    let publish_nr = publish_not_ready(svc);
    let ports = svc_ports(svc);
    let svc_name = kinds::name(&svc.metadata);
    let mut by_ports: BTreeMap<String, (Vec<SliceEndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    let mut sorted: Vec<&&Pod> = pods.iter().collect();
    sorted.sort_by(|a, b| pod_ip(a).cmp(pod_ip(b)));
    for p in sorted {
        let ip = pod_ip(p);
        if ip.is_empty() || matches!(kinds::pod_phase(p), "Succeeded" | "Failed") {
            continue;
        }
        // podToEndpoint (endpointslice utils): "ready" is never true for a terminating pod
        // unless not-ready addresses are published
        let terminating = p.metadata.deletion_timestamp.is_some();
        let serving = publish_nr || kinds::pod_ready(p);
        let ready = publish_nr || (serving && !terminating);
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let ep = Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            target_ref: Some(target_ref(p)),
            node_name: node.filter(|n| !n.is_empty()),
            hostname: hostname_for(svc, p),
            ..Default::default()
        };
        let eps: Vec<SliceEndpointPort> = ports
            .iter()
            .filter_map(|sp| {
                find_port(Some(p), sp).map(|n| SliceEndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(n),
                    protocol: Some(protocol(sp)),
                    app_protocol: None,
                })
            })
            .collect();
        let key = serde_json::to_string(&eps).unwrap_or_default();
        by_ports
            .entry(key)
            .or_insert_with(|| (eps, vec![]))
            .1
            .push(ep);
    }
    let mut labels = labels_of(svc);
    labels.insert("kubernetes.io/service-name".into(), svc_name.to_string());
    labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        MANAGED_BY.to_string(),
    );
    let owner = new_controller_ref(svc);
    let mut out = vec![];
    if by_ports.is_empty() {
        // a Service with no endpoints still has one (empty) slice with its ports
        let eps: Vec<SliceEndpointPort> = ports
            .iter()
            .filter(|sp| !matches!(sp.target_port, Some(IntOrString::String(_))))
            .map(|sp| SliceEndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: find_port(None, sp),
                protocol: Some(protocol(sp)),
                app_protocol: None,
            })
            .collect();
        by_ports.insert(String::new(), (eps, vec![]));
    }
    for (_, (ports, endpoints)) in by_ports {
        let chunks: Vec<Vec<Endpoint>> = if endpoints.is_empty() {
            vec![vec![]]
        } else {
            endpoints
                .chunks(MAX_PER_SLICE)
                .map(|c| c.to_vec())
                .collect()
        };
        for chunk in chunks {
            out.push(EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{svc_name}-")),
                    namespace: svc.metadata.namespace.clone(),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: chunk,
                ports: Some(ports.clone()),
            });
        }
    }
    out
}

/// What to write so that the stored Endpoints and slices of `svc` are the desired ones.
/// `svc` `None`: the Service is gone (its Endpoints go; slices go with their owner).
pub fn plan<P: Borrow<Pod>>(
    ns: &str,
    name: &str,
    svc: Option<&Service>,
    pods: &[P],
    current_ep: Option<&Endpoints>,
    current_slices: &[EndpointSlice],
) -> Plan {
    let mut p = Plan::default();
    let ep_r = r("", "endpoints");
    let sl_r = r("discovery.k8s.io", "endpointslices");
    let managed = |e: &EndpointSlice| {
        e.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"))
            .map(String::as_str)
            == Some(MANAGED_BY)
    };
    let (svc, sel) = match svc.and_then(|s| Some((s, selector_of(s)?))) {
        Some(x) => x,
        None => {
            // no Service, or one without a selector: nothing of ours should remain
            if svc.is_none() {
                if let Some(ep) = current_ep {
                    p.actions.push(Action::Delete {
                        r: ep_r,
                        ns: ns.into(),
                        name: name.into(),
                        propagation: None,
                        uid: Some(kinds::uid(&ep.metadata).to_string()),
                    });
                }
            }
            for sl in current_slices.iter().filter(|x| managed(x)) {
                p.actions.push(Action::Delete {
                    r: sl_r,
                    ns: ns.into(),
                    name: kinds::name(&sl.metadata).into(),
                    propagation: None,
                    uid: None,
                });
            }
            return p;
        }
    };
    let selected: Vec<&Pod> = pods
        .iter()
        .map(|x| x.borrow())
        .filter(|x| selector_matches(sel, x))
        .collect();
    // Endpoints
    let want = desired_endpoints(svc, &selected);
    match current_ep {
        None => p.actions.push(Action::Create {
            r: ep_r,
            ns: ns.into(),
            obj: want.into(),
            report: None,
        }),
        Some(cur) => {
            let over = |e: &Endpoints| {
                e.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(OVER_CAPACITY))
                    .cloned()
            };
            if cur.subsets != want.subsets
                || cur.metadata.labels != want.metadata.labels
                || over(cur) != over(&want)
            {
                let mut next = cur.clone();
                next.metadata.labels = want.metadata.labels.clone();
                match over(&want) {
                    Some(v) => {
                        next.metadata
                            .annotations
                            .get_or_insert_with(Default::default)
                            .insert(OVER_CAPACITY.into(), v);
                    }
                    None => {
                        if let Some(a) = next.metadata.annotations.as_mut() {
                            a.remove(OVER_CAPACITY);
                        }
                    }
                }
                next.subsets = want.subsets.clone();
                p.actions.push(Action::Update {
                    r: ep_r,
                    obj: next.into(),
                    status: false,
                });
            }
        }
    }
    // slices: reuse existing ones in order, create the rest, delete the surplus
    let want = desired_slices(svc, &selected);
    let want_n = want.len();
    let mut existing: Vec<&EndpointSlice> = current_slices.iter().filter(|x| managed(x)).collect();
    existing.sort_by(|a, b| kinds::name(&a.metadata).cmp(kinds::name(&b.metadata)));
    for (k, w) in want.into_iter().enumerate() {
        match existing.get(k) {
            Some(cur) => {
                if cur.endpoints != w.endpoints
                    || cur.ports != w.ports
                    || cur.metadata.labels != w.metadata.labels
                {
                    let mut next = (*cur).clone();
                    next.endpoints = w.endpoints;
                    next.ports = w.ports;
                    next.metadata.labels = w.metadata.labels;
                    p.actions.push(Action::Update {
                        r: sl_r,
                        obj: next.into(),
                        status: false,
                    });
                }
            }
            None => p.actions.push(Action::Create {
                r: sl_r,
                ns: ns.into(),
                obj: w.into(),
                report: None,
            }),
        }
    }
    for extra in existing.iter().skip(want_n) {
        p.actions.push(Action::Delete {
            r: sl_r,
            ns: ns.into(),
            name: kinds::name(&extra.metadata).into(),
            propagation: None,
            uid: None,
        });
    }
    p
}

/// The Endpoints + EndpointSlice controller over the work queue, reading the shared informers
/// (endpoints_controller.go and endpointslice_controller.go `syncService`: serviceLister,
/// podLister, endpointsLister, endpointSliceLister). The Endpoints and slices it creates are
/// expected (`ControllerExpectations`; upstream's `endpointSliceTracker`): until the cache
/// shows them a sync of their Service waits, so a cache that lags never makes it create a
/// second slice; their arrival syncs the Service again.
pub struct EndpointsController {
    services: Typed<Service>,
    pods: Typed<Pod>,
    endpoints: Typed<Endpoints>,
    slices: Typed<EndpointSlice>,
    expect: Expectations,
}

impl std::fmt::Debug for EndpointsController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointsController")
            .finish_non_exhaustive()
    }
}

impl EndpointsController {
    /// A controller reading `informers`.
    pub fn new(informers: &Informers) -> EndpointsController {
        EndpointsController {
            services: informers.of::<Service>(),
            pods: informers.of::<Pod>(),
            endpoints: informers.of::<Endpoints>(),
            slices: informers.of::<EndpointSlice>(),
            expect: Expectations::default(),
        }
    }
}

#[async_trait::async_trait]
impl queue::Controller for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoint-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![
            self.services.prefix().to_string(),
            self.pods.prefix().to_string(),
            self.endpoints.prefix().to_string(),
            self.slices.prefix().to_string(),
        ]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let meta = change.obj.meta();
        let ns = kinds::namespace(meta).to_string();
        if let Some(svc) = change.obj::<Service>() {
            let key = kinds::key_of(&svc.metadata);
            if change.deleted {
                self.expect.forget(&key);
            }
            return vec![key];
        }
        // its Endpoints or slices: one created is observed, one deleted is written again
        // (onEndpointsDelete, onEndpointSliceDelete); updates are this controller's own
        let owner = if change.obj::<Endpoints>().is_some() {
            Some(kinds::key_of(meta))
        } else if change.obj::<EndpointSlice>().is_some() {
            meta.labels
                .as_ref()
                .and_then(|l| l.get(super::informer::SERVICE_NAME_LABEL))
                .map(|s| format!("{ns}/{s}"))
        } else {
            None
        };
        if change.obj::<Endpoints>().is_some() || change.obj::<EndpointSlice>().is_some() {
            let Some(key) = owner else { return vec![] };
            // gone, or terminating (held by a finalizer): the deletion this controller asked
            // for is seen, as the cache's `shows_alive` counts it
            if change.deleted || meta.deletion_timestamp.is_some() {
                // first seen already terminating: its creation is seen too
                if change.old.is_none() {
                    self.expect.creation_observed(&key, kinds::uid(meta));
                }
                self.expect.deletion_observed(&key, kinds::uid(meta));
                return vec![key];
            }
            if change.old.is_none() {
                self.expect.creation_observed(&key, kinds::uid(meta));
                return vec![key];
            }
            return vec![];
        }
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        let old = change.old::<Pod>();
        // the pod's Services before and after the change; an unchanged pod maps to nothing
        if let Some(o) = old {
            let st = |p: &Pod| {
                p.status.as_ref().map(|s| {
                    (
                        s.pod_ip.clone(),
                        s.pod_ips.clone(),
                        s.conditions.clone(),
                        s.phase.clone(),
                    )
                })
            };
            // podEndpointsChanged: labels, hostname and subdomain, deletion, readiness, IPs
            let names = |p: &Pod| {
                p.spec
                    .as_ref()
                    .map(|s| (s.hostname.clone(), s.subdomain.clone()))
            };
            let same = st(o) == st(pod)
                && names(o) == names(pod)
                && o.metadata.labels == pod.metadata.labels
                && o.metadata.deletion_timestamp == pod.metadata.deletion_timestamp
                && node_name(o) == node_name(pod);
            if same {
                return vec![];
            }
        }
        self.services
            .by_index(index::NAMESPACE, &ns)
            .iter()
            .filter_map(|svc| {
                let sel = selector_of(svc)?;
                (selector_matches(sel, pod) || old.is_some_and(|o| selector_matches(sel, o)))
                    .then(|| kinds::key_of(&svc.metadata))
            })
            .collect()
    }

    async fn all_keys(&mut self, _objects: &Objects) -> Result<Vec<String>, ApiError> {
        Ok(self
            .services
            .list()
            .iter()
            .map(|s| kinds::key_of(&s.metadata))
            .collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        if let Some(left) = self.expect.wait_left(key) {
            // the cache does not show the Endpoints or slices last created or deleted; their
            // notice syncs the Service again, or the expectations expire
            return Ok(Some(left));
        }
        let svc = self.services.get_named(ns, name);
        let selector = svc.as_deref().and_then(selector_of);
        let has_selector = selector.is_some();
        let pods: Vec<Arc<Pod>> = match selector {
            Some(sel) => {
                let mut pods = self.pods.by_index(index::NAMESPACE, ns);
                pods.retain(|p| selector_matches(sel, p));
                pods
            }
            None => vec![],
        };
        let ep = self.endpoints.get_named(ns, name);
        // dropEndpointSlicesPendingDeletion: a slice being deleted is neither reused nor
        // deleted again
        let slices: Vec<EndpointSlice> = self
            .slices
            .by_index(index::SERVICE_NAME, key)
            .into_iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .map(Arc::unwrap_or_clone)
            .collect();
        // a Service without a selector manages its own Endpoints
        let ep = if has_selector || svc.is_none() {
            ep
        } else {
            None
        };
        let ep = ep.filter(|_| name != "kubernetes" || ns != "default");
        let plan = plan(ns, name, svc.as_deref(), &pods, ep.as_deref(), &slices);
        let mut observed = queue::Observed::default();
        let res = queue::apply_observed(objects, self.name(), plan.actions, &mut observed).await;
        // ExpectCreations / ExpectDeletions: what the caches do not show yet
        self.expect
            .expect_unseen_in(key, &observed, &[&self.endpoints, &self.slices]);
        res?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::super::expectations::EXPECTATIONS_TIMEOUT;
    use super::*;
    use serde_json::{json, Value};
    use std::collections::HashSet;

    // Fixtures are JSON as stored, decoded as the controller decodes them; what the controller
    // computes is read back as the JSON the API server receives.
    fn typed<K: serde::de::DeserializeOwned>(v: &Value) -> K {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn json_of<T: serde::Serialize>(o: &T) -> Value {
        serde_json::to_value(o).unwrap()
    }

    fn plan(
        ns: &str,
        name: &str,
        svc: Option<&Value>,
        pods: &[Value],
        ep: Option<&Value>,
        slices: &[Value],
    ) -> Plan {
        let svc: Option<Service> = svc.map(typed);
        let pods: Vec<Pod> = pods.iter().map(typed).collect();
        let ep: Option<Endpoints> = ep.map(typed);
        let slices: Vec<EndpointSlice> = slices.iter().map(typed).collect();
        super::plan(ns, name, svc.as_ref(), &pods, ep.as_ref(), &slices)
    }

    fn desired_endpoints(svc: &Value, pods: &[Value]) -> Value {
        let pods: Vec<Pod> = pods.iter().map(typed).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        json_of(&super::desired_endpoints(&typed(svc), &refs))
    }

    fn desired_slices(svc: &Value, pods: &[Value]) -> Vec<Value> {
        let pods: Vec<Pod> = pods.iter().map(typed).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        super::desired_slices(&typed(svc), &refs)
            .iter()
            .map(json_of)
            .collect()
    }

    fn truncate_endpoints(subsets: &mut Vec<Value>) -> bool {
        let mut t: Vec<EndpointSubset> = subsets.iter().map(typed).collect();
        let cut = super::truncate_endpoints(&mut t);
        *subsets = t.iter().map(json_of).collect();
        cut
    }

    fn svc(sel: Value, ports: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": {"selector": sel, "ports": ports, "clusterIP": "10.96.0.10"}})
    }

    fn pod(name: &str, ip: &str, ready: bool, labels: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    /// Stores the Service `default/web` selecting `app: web`, port `http` to the pods' `http`.
    async fn create_web_service(env: &crate::controllers::informer::test_support::Env) {
        env.objects
            .create(
                r("", "services"),
                "default",
                json!({"metadata": {"name": "web", "namespace": "default"},
                    "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}),
                &crate::objects::User::Admin,
                false,
            )
            .await
            .unwrap();
    }

    /// A deletion the controller expects is seen when the cache shows the slice terminating
    /// (held by a finalizer), as when it is gone; until then the sync waits, and asks to be
    /// tried again when the expectations would expire instead of waiting for another event.
    #[tokio::test]
    async fn a_terminating_slice_meets_the_deletion_expected_of_it() {
        use crate::controllers::informer::test_support::Env;
        use crate::controllers::queue::Controller as _;
        let env = Env::new().await;
        let mut c = EndpointsController::new(&env.informers);
        create_web_service(&env).await;
        env.put::<Pod>(pod("a", "10.0.0.1", true, json!({"app": "web"})))
            .await;
        env.refresh::<Service>().await;
        env.refresh::<Pod>().await;
        env.no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        for n in env
            .refresh::<Endpoints>()
            .await
            .iter()
            .chain(env.refresh::<EndpointSlice>().await.iter())
        {
            c.keys_for(n);
        }
        assert!(c.expect.satisfied("default/web"));
        let slice = env.stored::<EndpointSlice>().await.remove(0);
        let name = slice["metadata"]["name"].as_str().unwrap().to_string();
        let uid = slice["metadata"]["uid"].as_str().unwrap().to_string();
        let slices = r("discovery.k8s.io", "endpointslices");
        env.objects
            .patch(
                slices,
                "default",
                &name,
                "application/merge-patch+json",
                &json!({"metadata": {"finalizers": ["example.com/hold"]}}),
                None,
                false,
            )
            .await
            .unwrap();
        for n in env.refresh::<EndpointSlice>().await {
            assert!(c.keys_for(&n).is_empty(), "its own update syncs nothing");
        }
        // the controller deleted the slice and waits to see it
        c.expect
            .expect("default/web", HashSet::new(), HashSet::from([uid.clone()]));
        let wait = env
            .no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        assert!(
            wait.is_some_and(|w| w > Duration::ZERO && w <= EXPECTATIONS_TIMEOUT),
            "{wait:?}"
        );
        env.objects
            .delete(slices, "default", &name, &Default::default())
            .await
            .unwrap();
        let keys: Vec<String> = env
            .refresh::<EndpointSlice>()
            .await
            .iter()
            .flat_map(|n| c.keys_for(n))
            .collect();
        assert_eq!(keys, ["default/web"]);
        assert!(c.expect.satisfied("default/web"));
        // the slice being deleted is not reused: the Service gets a new one beside it
        env.no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        let slices = env.stored::<EndpointSlice>().await;
        assert_eq!(slices.len(), 2, "{slices:?}");
        let fresh = slices
            .iter()
            .find(|s| s["metadata"]["name"] != name.as_str())
            .unwrap();
        assert_eq!(fresh["endpoints"][0]["addresses"][0], "10.0.0.1");
    }

    /// A sync reads the Service, its pods, Endpoints and slices from the caches (nothing
    /// listed from storage); the Endpoints and slice it created, until the cache shows them,
    /// keep a second sync from creating another slice; their arrival syncs the Service again.
    #[tokio::test]
    async fn syncs_from_the_cache_and_expects_its_creations() {
        use crate::controllers::informer::test_support::Env;
        use crate::controllers::queue::Controller as _;
        let env = Env::new().await;
        let mut c = EndpointsController::new(&env.informers);
        create_web_service(&env).await;
        for (n, ip) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
            env.put::<Pod>(pod(n, ip, true, json!({"app": "web"})))
                .await;
        }
        env.put::<Pod>(pod("other", "10.0.0.9", true, json!({"app": "db"})))
            .await;
        env.refresh::<Service>().await;
        env.refresh::<Endpoints>().await;
        env.refresh::<EndpointSlice>().await;
        // the pods reaching the cache sync the Service that selects them
        let keys: Vec<String> = env
            .refresh::<Pod>()
            .await
            .iter()
            .flat_map(|n| c.keys_for(n))
            .collect();
        assert_eq!(keys, ["default/web", "default/web"]);
        env.no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        let eps = env.stored::<Endpoints>().await;
        let web: Vec<&Value> = eps
            .iter()
            .filter(|e| e["metadata"]["name"] == "web")
            .collect();
        assert_eq!(web.len(), 1);
        // the named port is found in the cached (trimmed) pods
        assert_eq!(web[0]["subsets"][0]["ports"][0]["port"], 8080);
        assert_eq!(
            web[0]["subsets"][0]["addresses"].as_array().unwrap().len(),
            2
        );
        assert_eq!(env.stored::<EndpointSlice>().await.len(), 1);
        // the caches of Endpoints and slices lag: no second slice
        assert!(!c.expect.satisfied("default/web"));
        env.no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        assert_eq!(env.stored::<EndpointSlice>().await.len(), 1);
        // they catch up: the Service is synced again, and the expectations are met
        let mut keys: Vec<String> = env
            .refresh::<Endpoints>()
            .await
            .iter()
            .chain(env.refresh::<EndpointSlice>().await.iter())
            .flat_map(|n| c.keys_for(n))
            .collect();
        keys.dedup();
        assert_eq!(keys, ["default/web"]);
        assert!(c.expect.satisfied("default/web"));
        // a third pod: the slice is updated, not duplicated
        env.put::<Pod>(pod("c", "10.0.0.3", false, json!({"app": "web"})))
            .await;
        let keys: Vec<String> = env
            .refresh::<Pod>()
            .await
            .iter()
            .flat_map(|n| c.keys_for(n))
            .collect();
        assert_eq!(keys, ["default/web"]);
        env.no_lists(c.sync(&env.objects, "default/web"))
            .await
            .unwrap();
        let slices = env.stored::<EndpointSlice>().await;
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0]["endpoints"].as_array().unwrap().len(), 3);
        // every Service, from the cache
        let keys = env.no_lists(c.all_keys(&env.objects)).await.unwrap();
        assert!(keys.contains(&"default/web".to_string()), "{keys:?}");
    }

    #[test]
    fn endpoints_from_selected_pods() {
        let s = svc(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]),
        );
        let pods = vec![
            pod("b", "10.0.0.2", true, json!({"app": "web"})),
            pod("a", "10.0.0.1", false, json!({"app": "web"})),
            pod("c", "10.0.0.3", true, json!({"app": "other"})),
            pod("d", "", true, json!({"app": "web"})),
        ];
        let p = plan("default", "web", Some(&s), &pods, None, &[]);
        let ep = match &p.actions[0] {
            Action::Create { obj, .. } => obj.to_value().unwrap(),
            other => panic!("{other:?}"),
        };
        let ss = &ep["subsets"][0];
        assert_eq!(ss["addresses"].as_array().unwrap().len(), 1);
        assert_eq!(ss["addresses"][0]["ip"], "10.0.0.2");
        assert_eq!(ss["addresses"][0]["targetRef"]["name"], "b");
        assert_eq!(ss["notReadyAddresses"][0]["ip"], "10.0.0.1");
        assert_eq!(
            ss["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let slice = match &p.actions[1] {
            Action::Create { obj, .. } => obj.to_value().unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            MANAGED_BY
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
        let eps = slice["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0]["addresses"][0], "10.0.0.1");
        assert_eq!(eps[0]["conditions"]["ready"], false);
        assert_eq!(eps[1]["conditions"]["ready"], true);
        assert_eq!(
            slice["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        // stored as desired: nothing to write
        let mut cur_ep = ep.clone();
        cur_ep["metadata"]["resourceVersion"] = json!("4");
        let mut cur_slice = slice.clone();
        cur_slice["metadata"]["name"] = json!("web-abcde");
        let p = plan(
            "default",
            "web",
            Some(&s),
            &pods,
            Some(&cur_ep),
            &[cur_slice.clone()],
        );
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        // a pod becomes ready: both are updated
        let mut pods2 = pods.clone();
        pods2[1] = pod("a", "10.0.0.1", true, json!({"app": "web"}));
        let p = plan(
            "default",
            "web",
            Some(&s),
            &pods2,
            Some(&cur_ep),
            &[cur_slice.clone()],
        );
        assert_eq!(p.actions.len(), 2, "{:?}", p.actions);
        // the Service goes: its Endpoints go
        let p = plan("default", "web", None, &pods, Some(&cur_ep), &[]);
        assert!(matches!(&p.actions[0], Action::Delete { r, .. } if r.kind == "Endpoints"));
    }

    #[test]
    fn over_capacity_truncates_as_upstream() {
        // TestTruncateEndpoints-like: 1200 ready over two subsets (800/400) keep 667/333 (the
        // first rounded up), not-ready ones go
        let addrs = |n: usize, base: usize| -> Vec<Value> {
            (0..n)
                .map(|k| json!({"ip": format!("10.1.{}.{}", (base + k) / 250, (base + k) % 250)}))
                .collect()
        };
        let mut subsets = vec![
            json!({"addresses": addrs(800, 0), "notReadyAddresses": addrs(10, 5000), "ports": [{"port": 80}]}),
            json!({"addresses": addrs(400, 2000), "ports": [{"port": 81}]}),
        ];
        assert!(truncate_endpoints(&mut subsets));
        assert_eq!(subsets[0]["addresses"].as_array().unwrap().len(), 667);
        assert_eq!(subsets[1]["addresses"].as_array().unwrap().len(), 333);
        assert!(subsets[0].get("notReadyAddresses").is_none());
        // 900 ready + 300 not ready: the not-ready ones are cut to 100
        let mut subsets =
            vec![json!({"addresses": addrs(900, 0), "notReadyAddresses": addrs(300, 3000)})];
        assert!(truncate_endpoints(&mut subsets));
        assert_eq!(subsets[0]["addresses"].as_array().unwrap().len(), 900);
        assert_eq!(
            subsets[0]["notReadyAddresses"].as_array().unwrap().len(),
            100
        );
        let mut small = vec![json!({"addresses": addrs(3, 0)})];
        assert!(!truncate_endpoints(&mut small));
    }

    #[test]
    fn terminating_pods_as_upstream() {
        let s = svc(
            json!({"app": "web"}),
            json!([{"port": 80, "targetPort": 80, "protocol": "TCP"}]),
        );
        let mut p = pod("a", "10.0.0.1", true, json!({"app": "web"}));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(desired_endpoints(&s, std::slice::from_ref(&p))
            .get("subsets")
            .is_none());
        let sl = &desired_slices(&s, std::slice::from_ref(&p))[0];
        assert_eq!(
            sl["endpoints"][0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        let mut publish = s.clone();
        publish["spec"]["publishNotReadyAddresses"] = json!(true);
        let ep = desired_endpoints(&publish, std::slice::from_ref(&p));
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.1");
        let sl = &desired_slices(&publish, std::slice::from_ref(&p))[0];
        assert_eq!(sl["endpoints"][0]["conditions"]["ready"], true);
    }

    #[test]
    fn large_services_are_split_into_slices_of_100() {
        let s = svc(
            json!({"app": "web"}),
            json!([{"port": 80, "targetPort": 80, "protocol": "TCP"}]),
        );
        let pods: Vec<Value> = (0..250)
            .map(|k| {
                pod(
                    &format!("p{k}"),
                    &format!("10.0.{}.{}", k / 200, k % 200 + 1),
                    true,
                    json!({"app": "web"}),
                )
            })
            .collect();
        let slices = desired_slices(&s, &pods);
        let sizes: Vec<usize> = slices
            .iter()
            .map(|x| x["endpoints"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[test]
    fn headless_without_ports_and_no_selector() {
        let mut s = svc(json!({"app": "web"}), json!([]));
        s["spec"]["clusterIP"] = json!("None");
        let ep = desired_endpoints(&s, &[pod("a", "10.0.0.1", true, json!({"app": "web"}))]);
        assert_eq!(
            ep["metadata"]["labels"]["service.kubernetes.io/headless"],
            ""
        );
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.1");
        assert!(ep["subsets"][0].get("ports").is_none());
        // a pod whose subdomain is the Service publishes its hostname
        let mut named = pod("b", "10.0.0.2", true, json!({"app": "web"}));
        named["spec"]["hostname"] = json!("web-0");
        named["spec"]["subdomain"] = json!("web");
        let ep = desired_endpoints(&s, std::slice::from_ref(&named));
        assert_eq!(ep["subsets"][0]["addresses"][0]["hostname"], "web-0");
        assert_eq!(
            desired_slices(&s, std::slice::from_ref(&named))[0]["endpoints"][0]["hostname"],
            "web-0"
        );
        named["spec"]["subdomain"] = json!("other");
        let ep = desired_endpoints(&s, std::slice::from_ref(&named));
        assert!(ep["subsets"][0]["addresses"][0].get("hostname").is_none());
        let manual = svc(json!({}), json!([{"port": 80}]));
        let user_ep = json!({"metadata": {"name": "web", "uid": "x"}});
        let p = plan("default", "web", Some(&manual), &[], Some(&user_ep), &[]);
        assert!(
            p.actions.is_empty(),
            "a Service without a selector keeps its own Endpoints"
        );
    }
}
