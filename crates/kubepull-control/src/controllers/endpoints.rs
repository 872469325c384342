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
//! Services of the changed pod's namespace whose selector matches it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{json, Value};

use k8s_openapi::api::core::v1::{Pod, Service};

use super::informer::{node_name, Notice};
use super::kinds;
use super::queue::{self, Action, Object, Plan};
use crate::errors::ApiError;
use crate::objects::{ListOptions, Objects};
use crate::resources::{self, Resource};

/// `endpointslice.kubernetes.io/managed-by` of the slices this controller writes.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// `--max-endpoints-per-slice` default.
pub const MAX_PER_SLICE: usize = 100;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn r(group: &str, plural: &str) -> &'static Resource {
    resources::find(group, "v1", plural).expect("served")
}

fn selector_matches(sel: &serde_json::Map<String, Value>, pod: &Value) -> bool {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    !sel.is_empty()
        && sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)).is_some_and(|x| x == v))
}

fn pod_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
        })
}

/// `podutil.FindPort`: a numeric targetPort as is, a name looked up in the pod's containers.
fn find_port(pod: &Value, svc_port: &Value) -> Option<i64> {
    match svc_port.get("targetPort") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(name)) => {
            let proto = svc_port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP");
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)?
                .iter()
                .flat_map(|c| {
                    c.get("ports")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .find(|p| {
                    s(p, "/name") == name.as_str()
                        && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto
                })
                .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
        }
        _ => svc_port.get("port").and_then(Value::as_i64),
    }
}

/// `podToEndpointAddressForService`/`podToEndpoint`: a pod's hostname is published when its
/// subdomain is the Service's name.
fn hostname_for(svc: &Value, p: &Value) -> Option<String> {
    let h = s(p, "/spec/hostname");
    (!h.is_empty()
        && s(p, "/spec/subdomain") == s(svc, "/metadata/name")
        && s(p, "/metadata/namespace") == s(svc, "/metadata/namespace"))
    .then(|| h.to_string())
}

fn target_ref(p: &Value) -> Value {
    json!({"kind": "Pod", "namespace": s(p, "/metadata/namespace"), "name": s(p, "/metadata/name"),
        "uid": s(p, "/metadata/uid")})
}

/// Labels of the Endpoints and slices: the Service's, plus `service.kubernetes.io/headless`
/// for headless Services.
fn labels_of(svc: &Value) -> serde_json::Map<String, Value> {
    let mut l = svc
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if s(svc, "/spec/clusterIP") == "None" {
        l.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    l
}

/// The desired Endpoints of `svc` (`syncService`, then `RepackSubsets`).
pub fn desired_endpoints(svc: &Value, pods: &[Value]) -> Value {
    let publish_nr = svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
    let ports: Vec<Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // port set → (ready addresses, not ready addresses)
    type Addrs = (Vec<Value>, Vec<Value>);
    let mut subsets: BTreeMap<String, (Vec<Value>, Addrs)> = BTreeMap::new();
    for p in pods {
        let ip = s(p, "/status/podIP");
        // ShouldPodBeInEndpoints(pod, publishNotReadyAddresses): terminating pods only when
        // not-ready addresses are published
        if ip.is_empty()
            || (p.pointer("/metadata/deletionTimestamp").is_some() && !publish_nr)
            || matches!(s(p, "/status/phase"), "Succeeded" | "Failed")
        {
            continue;
        }
        let mut addr = json!({"ip": ip, "targetRef": target_ref(p)});
        let node = s(p, "/spec/nodeName");
        if !node.is_empty() {
            addr["nodeName"] = json!(node);
        }
        if let Some(h) = hostname_for(svc, p) {
            addr["hostname"] = json!(h);
        }
        let eps: Vec<Value> = ports
            .iter()
            .filter_map(|sp| {
                find_port(p, sp).map(|n| {
                    let mut e = json!({"port": n, "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP"))});
                    if !s(sp, "/name").is_empty() {
                        e["name"] = json!(s(sp, "/name"));
                    }
                    e
                })
            })
            .collect();
        let key = serde_json::to_string(&eps).unwrap_or_default();
        let entry = subsets
            .entry(key)
            .or_insert_with(|| (eps, (vec![], vec![])));
        if publish_nr || pod_ready(p) {
            entry.1 .0.push(addr);
        } else {
            entry.1 .1.push(addr);
        }
    }
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| s(a, "/ip").cmp(s(b, "/ip")));
            not_ready.sort_by(|a, b| s(a, "/ip").cmp(s(b, "/ip")));
            let mut ss = json!({});
            if !ready.is_empty() {
                ss["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                ss["notReadyAddresses"] = json!(not_ready);
            }
            if !ports.is_empty() {
                ss["ports"] = json!(ports);
            }
            ss
        })
        .collect();
    let mut subsets = subsets;
    let truncated = truncate_endpoints(&mut subsets);
    let mut ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": s(svc, "/metadata/name"), "namespace": s(svc, "/metadata/namespace"),
            "labels": labels_of(svc)},
    });
    if truncated {
        ep["metadata"]["annotations"] = json!({OVER_CAPACITY: "truncated"});
    }
    if !subsets.is_empty() {
        ep["subsets"] = json!(subsets);
    }
    ep
}

/// `maxCapacity` of an Endpoints object (endpoints_controller.go).
pub const MAX_CAPACITY: usize = 1000;
/// `v1.EndpointsOverCapacity`.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// `truncateEndpoints`: at most [`MAX_CAPACITY`] addresses, ready ones first, each subset
/// keeping its proportion (rounded up, earlier subsets first). True when something was cut.
pub fn truncate_endpoints(subsets: &mut [Value]) -> bool {
    let len = |ss: &Value, k: &str| ss.get(k).and_then(Value::as_array).map_or(0, |a| a.len());
    let total_ready: usize = subsets.iter().map(|ss| len(ss, "addresses")).sum();
    let total_not_ready: usize = subsets.iter().map(|ss| len(ss, "notReadyAddresses")).sum();
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
        let key = if truncate_ready {
            "addresses"
        } else {
            "notReadyAddresses"
        };
        let n = len(ss, key);
        let to_add = ((n as f64 / num_total as f64) * max as f64).ceil() as usize;
        let to_add = to_add.min(can_be_added);
        if let Some(Value::Array(a)) = ss.get_mut(key) {
            a.truncate(to_add);
        }
        if truncate_ready {
            if let Some(m) = ss.as_object_mut() {
                m.remove("notReadyAddresses");
            }
        }
        can_be_added -= len(ss, key);
    }
    true
}

/// The desired EndpointSlices of `svc` (without names: the caller matches them to existing
/// slices by port set).
pub fn desired_slices(svc: &Value, pods: &[Value]) -> Vec<Value> {
    let publish_nr = svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
    let ports: Vec<Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut by_ports: BTreeMap<String, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    let mut sorted: Vec<&Value> = pods.iter().collect();
    sorted.sort_by(|a, b| s(a, "/status/podIP").cmp(s(b, "/status/podIP")));
    for p in sorted {
        let ip = s(p, "/status/podIP");
        if ip.is_empty() || matches!(s(p, "/status/phase"), "Succeeded" | "Failed") {
            continue;
        }
        // podToEndpoint (endpointslice utils): "ready" is never true for a terminating pod
        // unless not-ready addresses are published
        let terminating = p.pointer("/metadata/deletionTimestamp").is_some();
        let serving = publish_nr || pod_ready(p);
        let ready = publish_nr || (serving && !terminating);
        let mut ep = json!({
            "addresses": [ip],
            "conditions": {
                "ready": ready,
                "serving": serving,
                "terminating": terminating,
            },
            "targetRef": target_ref(p),
        });
        let node = s(p, "/spec/nodeName");
        if !node.is_empty() {
            ep["nodeName"] = json!(node);
        }
        if let Some(h) = hostname_for(svc, p) {
            ep["hostname"] = json!(h);
        }
        let eps: Vec<Value> = ports
            .iter()
            .filter_map(|sp| {
                find_port(p, sp).map(|n| {
                    json!({"name": s(sp, "/name"), "port": n,
                        "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP"))})
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
    labels.insert(
        "kubernetes.io/service-name".into(),
        json!(s(svc, "/metadata/name")),
    );
    labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        json!(MANAGED_BY),
    );
    let owner = json!([{
        "apiVersion": "v1", "kind": "Service", "name": s(svc, "/metadata/name"),
        "uid": s(svc, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true,
    }]);
    let mut out = vec![];
    if by_ports.is_empty() {
        // a Service with no endpoints still has one (empty) slice with its ports
        let eps: Vec<Value> = ports
            .iter()
            .filter(|sp| sp.get("targetPort").is_none_or(Value::is_number))
            .map(|sp| {
                json!({"name": s(sp, "/name"), "port": find_port(&json!({}), sp),
                    "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP"))})
            })
            .collect();
        by_ports.insert(String::new(), (eps, vec![]));
    }
    for (_, (ports, endpoints)) in by_ports {
        let chunks: Vec<Vec<Value>> = if endpoints.is_empty() {
            vec![vec![]]
        } else {
            endpoints
                .chunks(MAX_PER_SLICE)
                .map(|c| c.to_vec())
                .collect()
        };
        for chunk in chunks {
            out.push(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {
                    "generateName": format!("{}-", s(svc, "/metadata/name")),
                    "namespace": s(svc, "/metadata/namespace"),
                    "labels": labels, "ownerReferences": owner,
                },
                "addressType": "IPv4",
                "endpoints": chunk,
                "ports": ports,
            }));
        }
    }
    out
}

/// What to write so that the stored Endpoints and slices of `svc` are the desired ones.
/// `svc` `None`: the Service is gone (its Endpoints go; slices go with their owner).
pub fn plan(
    ns: &str,
    name: &str,
    svc: Option<&Value>,
    pods: &[Value],
    current_ep: Option<&Value>,
    current_slices: &[Value],
) -> Plan {
    let mut p = Plan::default();
    let ep_r = r("", "endpoints");
    let sl_r = r("discovery.k8s.io", "endpointslices");
    let managed = |e: &Value| {
        e.pointer("/metadata/labels/endpointslice.kubernetes.io~1managed-by")
            .and_then(Value::as_str)
            == Some(MANAGED_BY)
    };
    let svc = match svc {
        Some(svc)
            if svc
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty()) =>
        {
            svc
        }
        other => {
            // no Service, or one without a selector: nothing of ours should remain
            if other.is_none() {
                if let Some(ep) = current_ep {
                    p.actions.push(Action::Delete {
                        r: ep_r,
                        ns: ns.into(),
                        name: name.into(),
                        propagation: None,
                        uid: Some(s(ep, "/metadata/uid").to_string()),
                    });
                }
            }
            for sl in current_slices.iter().filter(|x| managed(x)) {
                p.actions.push(Action::Delete {
                    r: sl_r,
                    ns: ns.into(),
                    name: s(sl, "/metadata/name").into(),
                    propagation: None,
                    uid: None,
                });
            }
            return p;
        }
    };
    let sel = svc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let selected: Vec<Value> = pods
        .iter()
        .filter(|x| selector_matches(&sel, x))
        .cloned()
        .collect();
    // Endpoints
    let want = desired_endpoints(svc, &selected);
    match current_ep {
        None => p.actions.push(Action::Create {
            r: ep_r,
            ns: ns.into(),
            obj: Object::Json(want),
            report: None,
        }),
        Some(cur) => {
            let over = |e: &Value| {
                e.pointer("/metadata/annotations")
                    .and_then(|a| a.get(OVER_CAPACITY))
                    .cloned()
            };
            if cur.get("subsets") != want.get("subsets")
                || cur.pointer("/metadata/labels") != want.pointer("/metadata/labels")
                || over(cur) != over(&want)
            {
                let mut next = cur.clone();
                next["metadata"]["labels"] = want["metadata"]["labels"].clone();
                match over(&want) {
                    Some(v) => {
                        if !next["metadata"]["annotations"].is_object() {
                            next["metadata"]["annotations"] = json!({});
                        }
                        next["metadata"]["annotations"][OVER_CAPACITY] = v;
                    }
                    None => {
                        if let Some(a) = next["metadata"]["annotations"].as_object_mut() {
                            a.remove(OVER_CAPACITY);
                        }
                    }
                }
                match want.get("subsets") {
                    Some(ss) => next["subsets"] = ss.clone(),
                    None => {
                        if let Some(m) = next.as_object_mut() {
                            m.remove("subsets");
                        }
                    }
                }
                p.actions.push(Action::Update {
                    r: ep_r,
                    obj: Object::Json(next),
                    status: false,
                });
            }
        }
    }
    // slices: reuse existing ones in order, create the rest, delete the surplus
    let want = desired_slices(svc, &selected);
    let want_n = want.len();
    let mut existing: Vec<&Value> = current_slices.iter().filter(|x| managed(x)).collect();
    existing.sort_by(|a, b| s(a, "/metadata/name").cmp(s(b, "/metadata/name")));
    for (k, w) in want.into_iter().enumerate() {
        match existing.get(k) {
            Some(cur) => {
                if cur.get("endpoints") != w.get("endpoints")
                    || cur.get("ports") != w.get("ports")
                    || cur.pointer("/metadata/labels") != w.pointer("/metadata/labels")
                {
                    let mut next = (*cur).clone();
                    next["endpoints"] = w["endpoints"].clone();
                    next["ports"] = w["ports"].clone();
                    next["metadata"]["labels"] = w["metadata"]["labels"].clone();
                    p.actions.push(Action::Update {
                        r: sl_r,
                        obj: Object::Json(next),
                        status: false,
                    });
                }
            }
            None => p.actions.push(Action::Create {
                r: sl_r,
                ns: ns.into(),
                obj: Object::Json(w),
                report: None,
            }),
        }
    }
    for extra in existing.iter().skip(want_n) {
        p.actions.push(Action::Delete {
            r: sl_r,
            ns: ns.into(),
            name: s(extra, "/metadata/name").into(),
            propagation: None,
            uid: None,
        });
    }
    p
}

/// The Endpoints + EndpointSlice controller over the work queue. It keeps the selectors of
/// the Services it has seen, per namespace, so a pod change maps to the Services selecting it.
#[derive(Debug, Default)]
pub struct EndpointsController {
    selectors: HashMap<String, HashMap<String, BTreeMap<String, String>>>,
}

#[async_trait::async_trait]
impl queue::Controller for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoint-controller"
    }

    fn prefixes(&self) -> Vec<String> {
        vec![r("", "services").key_prefix(), r("", "pods").key_prefix()]
    }

    fn keys_for(&mut self, change: &Notice) -> Vec<String> {
        let ns = kinds::namespace(change.obj.meta()).to_string();
        if let Some(svc) = change.obj::<Service>() {
            let name = kinds::name(&svc.metadata).to_string();
            let sel = svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            let m = self.selectors.entry(ns.clone()).or_default();
            if change.deleted {
                m.remove(&name);
            } else {
                m.insert(name.clone(), sel);
            }
            return vec![format!("{ns}/{name}")];
        }
        let Some(pod) = change.obj::<Pod>() else {
            return vec![];
        };
        let old = change.old::<Pod>();
        let Some(svcs) = self.selectors.get(&ns) else {
            return vec![];
        };
        // the pod's Services before and after the change; an unchanged pod maps to nothing
        if let Some(o) = old {
            let st = |p: &Pod| {
                p.status
                    .as_ref()
                    .map(|s| (s.pod_ip.clone(), s.conditions.clone(), s.phase.clone()))
            };
            let same = st(o) == st(pod)
                && o.metadata.labels == pod.metadata.labels
                && o.metadata.deletion_timestamp == pod.metadata.deletion_timestamp
                && node_name(o) == node_name(pod);
            if same {
                return vec![];
            }
        }
        let matches = |sel: &BTreeMap<String, String>, p: &Pod| {
            !sel.is_empty()
                && sel
                    .iter()
                    .all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        };
        svcs.iter()
            .filter(|(_, sel)| matches(sel, pod) || old.is_some_and(|o| matches(sel, o)))
            .map(|(n, _)| format!("{ns}/{n}"))
            .collect()
    }

    async fn all_keys(&mut self, objects: &Objects) -> Result<Vec<String>, ApiError> {
        let (items, _, _) = objects
            .list(r("", "services"), None, &ListOptions::default())
            .await?;
        self.selectors.clear();
        for svc in &items {
            self.selectors
                .entry(s(svc, "/metadata/namespace").to_string())
                .or_default()
                .insert(
                    s(svc, "/metadata/name").to_string(),
                    svc.pointer("/spec/selector")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default(),
                );
        }
        Ok(items.iter().map(queue::key_of).collect())
    }

    async fn sync(&mut self, objects: &Objects, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = queue::split_key(key);
        let svc = objects.get_opt(r("", "services"), ns, name).await?;
        let has_selector = svc
            .as_ref()
            .and_then(|x| x.pointer("/spec/selector"))
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        let pods = if has_selector {
            let sel = svc
                .as_ref()
                .and_then(|x| x.pointer("/spec/selector"))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            objects
                .list(
                    r("", "pods"),
                    Some(ns),
                    &ListOptions {
                        label_selector: sel,
                        ..Default::default()
                    },
                )
                .await?
                .0
        } else {
            vec![]
        };
        let ep = objects.get_opt(r("", "endpoints"), ns, name).await?;
        let (slices, _, _) = objects
            .list(
                r("discovery.k8s.io", "endpointslices"),
                Some(ns),
                &ListOptions {
                    label_selector: Some(format!("kubernetes.io/service-name={name}")),
                    ..Default::default()
                },
            )
            .await?;
        // a Service without a selector manages its own Endpoints
        let ep = if has_selector || svc.is_none() {
            ep
        } else {
            None
        };
        let ep = ep.filter(|_| name != "kubernetes" || ns != "default");
        let plan = plan(ns, name, svc.as_ref(), &pods, ep.as_ref(), &slices);
        queue::apply(objects, self.name(), plan.actions).await?;
        Ok(plan.requeue_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Action::Create {
                obj: Object::Json(obj),
                ..
            } => obj.clone(),
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
            Action::Create {
                obj: Object::Json(obj),
                ..
            } => obj.clone(),
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
