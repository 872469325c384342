//! Table columns of Services, Endpoints, EndpointSlices, Jobs, CronJobs, DaemonSets,
//! StatefulSets, ReplicationControllers, ControllerRevisions, PersistentVolumeClaims,
//! ResourceQuotas, LimitRanges, PriorityClasses, PodDisruptionBudgets, IngressClasses and
//! NetworkPolicies (kubernetes
//! `pkg/printers/internalversion/printers.go`: `serviceColumnDefinitions`, `printService`,
//! `formatEndpoints`, `printEndpointSlice`, `printJob`, `printCronJob`, `printDaemonSet`,
//! `printStatefulSet`, `printReplicationController`, `printControllerRevision`,
//! `printPersistentVolumeClaim`, `printResourceQuota`, `printLimitRange`, `printPriorityClass`,
//! `printPodDisruptionBudget`, `printIngressClass`, `printNetworkPolicy`), and the rows'
//! `object` by `includeObject` (apiserver `pkg/endpoints/handlers/response.go`, `asTable`).

use serde_json::{json, Value};

use crate::services::format_selector;
use crate::table::{containers_images, human_duration, since};

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn col(name: &str, ty: &str, priority: i64) -> Value {
    let mut c =
        json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

fn age(o: &Value) -> Value {
    json!(since(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    ))
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.to_string()
    }
}

/// `metav1.FormatLabelSelector`.
fn label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|v| v.is_object()) else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = vec![];
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        let mut kv: Vec<(String, String)> = m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        kv.sort();
        parts.extend(kv.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key = s(e, "/key");
            parts.push(match s(e, "/operator") {
                "In" => format!("{key} in ({})", vals.join(",")),
                "NotIn" => format!("{key} notin ({})", vals.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => String::new(),
            });
        }
    }
    let out = parts.join(",");
    if out.is_empty() {
        "<none>".into()
    } else {
        out
    }
}

/// `getServiceExternalIP`.
fn external_ip(o: &Value) -> String {
    let ext: Vec<&str> = o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match s(o, "/spec/type") {
        "ClusterIP" | "NodePort" => {
            if ext.is_empty() {
                "<none>".into()
            } else {
                ext.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ips: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            let ip = s(i, "/ip");
                            if ip.is_empty() {
                                s(i, "/hostname").to_string()
                            } else {
                                ip.to_string()
                            }
                        })
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(ext.iter().map(|x| x.to_string()));
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

/// `makePortString`.
fn port_string(o: &Value) -> String {
    let ports = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() {
        return "<none>".into();
    }
    ports
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = s(p, "/protocol");
            match p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) {
                0 => format!("{port}/{proto}"),
                np => format!("{port}:{np}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `formatEndpoints` (no port filter).
pub fn format_endpoints(o: &Value) -> String {
    let subsets = o
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = vec![];
    let mut more = false;
    let mut count = 0;
    for ss in &subsets {
        let addrs = ss
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let ports = ss
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if ports.is_empty() {
            count += addrs.len();
            for a in &addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(a, "/ip").to_string());
            }
        } else {
            for p in &ports {
                count += addrs.len();
                for a in &addrs {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    let ip = s(a, "/ip");
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    list.push(if ip.contains(':') {
                        format!("[{ip}]:{port}")
                    } else {
                        format!("{ip}:{port}")
                    });
                }
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

fn list_with_more(list: Vec<String>, more: bool, count: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - 3);
    }
    if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

fn slice_ports(o: &Value) -> String {
    let ports = o
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut list = vec![];
    let mut more = false;
    for p in &ports {
        if list.len() < 3 {
            list.push(match p.get("port").and_then(Value::as_i64) {
                Some(n) => n.to_string(),
                None => match p.get("name").and_then(Value::as_str) {
                    Some(n) => n.to_string(),
                    None => "*".into(),
                },
            });
        } else if list.len() == 3 {
            more = true;
        }
    }
    list_with_more(list, more, ports.len())
}

fn slice_endpoints(o: &Value) -> String {
    let mut list = vec![];
    let mut more = false;
    let mut count = 0;
    for e in o
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        for a in e
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if list.len() < 3 {
                list.push(a.as_str().unwrap_or("").to_string());
            } else if list.len() == 3 {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(list, more, count)
}

fn has_cond(o: &Value, ty: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
        })
}

fn ts(o: &Value, p: &str) -> Option<jiff::Timestamp> {
    o.pointer(p)
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
}

fn job_cells(o: &Value) -> Vec<Value> {
    let succeeded = o
        .pointer("/status/succeeded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let par = o
                .pointer("/spec/parallelism")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if par > 1 {
                format!("{succeeded}/1 of {par}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (ts(o, "/status/startTime"), ts(o, "/status/completionTime")) {
        (None, _) => String::new(),
        (Some(st), None) => human_duration(jiff::Timestamp::now().as_second() - st.as_second()),
        (Some(st), Some(ct)) => human_duration(ct.as_second() - st.as_second()),
    };
    let status = if has_cond(o, "Complete") {
        "Complete"
    } else if has_cond(o, "Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_cond(o, "Suspended") {
        "Suspended"
    } else if has_cond(o, "FailureTarget") {
        "FailureTarget"
    } else if has_cond(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (c, i) = containers_images(o.pointer("/spec/template/spec"));
    vec![
        json!(s(o, "/metadata/name")),
        json!(status),
        json!(completions),
        json!(duration),
        age(o),
        json!(c),
        json!(i),
        json!(label_selector(o.pointer("/spec/selector"))),
    ]
}

/// Columns and cells for the kinds of this module; `None` for other kinds.
pub fn columns_and_cells(kind: &str, items: &[Value]) -> Option<(Vec<Value>, Vec<Vec<Value>>)> {
    let name = |o: &Value| json!(s(o, "/metadata/name"));
    Some(match kind {
        "Service" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Cluster-IP", "string", 0),
                col("External-IP", "string", 0),
                col("Port(s)", "string", 0),
                col("Age", "string", 0),
                col("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(s(o, "/spec/type")),
                        json!(or_none(s(o, "/spec/clusterIP"))),
                        json!(external_ip(o)),
                        json!(port_string(o)),
                        age(o),
                        json!(format_selector(o.pointer("/spec/selector"))),
                    ]
                })
                .collect(),
        ),
        "Endpoints" => (
            vec![
                col("Name", "string", 0),
                col("Endpoints", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| vec![name(o), json!(format_endpoints(o)), age(o)])
                .collect(),
        ),
        "EndpointSlice" => (
            vec![
                col("Name", "string", 0),
                col("AddressType", "string", 0),
                col("Ports", "string", 0),
                col("Endpoints", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(s(o, "/addressType")),
                        json!(slice_ports(o)),
                        json!(slice_endpoints(o)),
                        age(o),
                    ]
                })
                .collect(),
        ),
        "Job" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Completions", "string", 0),
                col("Duration", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            items.iter().map(job_cells).collect(),
        ),
        "CronJob" => (
            vec![
                col("Name", "string", 0),
                col("Schedule", "string", 0),
                col("Timezone", "string", 0),
                col("Suspend", "boolean", 0),
                col("Active", "integer", 0),
                col("Last Schedule", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let last = match o
                        .pointer("/status/lastScheduleTime")
                        .and_then(Value::as_str)
                    {
                        Some(t) => since(Some(t)),
                        None => "<none>".into(),
                    };
                    let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                        Some(true) => "True",
                        Some(false) => "False",
                        None => "<unset>",
                    };
                    let active = o
                        .pointer("/status/active")
                        .and_then(Value::as_array)
                        .map(|a| a.len())
                        .unwrap_or(0);
                    let (c, i) =
                        containers_images(o.pointer("/spec/jobTemplate/spec/template/spec"));
                    vec![
                        name(o),
                        json!(s(o, "/spec/schedule")),
                        json!(o
                            .pointer("/spec/timeZone")
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")),
                        json!(suspend),
                        json!(active),
                        json!(last),
                        age(o),
                        json!(c),
                        json!(i),
                        json!(label_selector(o.pointer("/spec/jobTemplate/spec/selector"))),
                    ]
                })
                .collect(),
        ),
        "DaemonSet" => (
            vec![
                col("Name", "string", 0),
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Node Selector", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let (c, i) = containers_images(o.pointer("/spec/template/spec"));
                    vec![
                        name(o),
                        json!(int(o, "/status/desiredNumberScheduled")),
                        json!(int(o, "/status/currentNumberScheduled")),
                        json!(int(o, "/status/numberReady")),
                        json!(int(o, "/status/updatedNumberScheduled")),
                        json!(int(o, "/status/numberAvailable")),
                        // labels.FormatLabels of the template's nodeSelector
                        json!(format_selector(
                            o.pointer("/spec/template/spec/nodeSelector")
                        )),
                        age(o),
                        json!(c),
                        json!(i),
                        json!(label_selector(o.pointer("/spec/selector"))),
                    ]
                })
                .collect(),
        ),
        "StatefulSet" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let (c, i) = containers_images(o.pointer("/spec/template/spec"));
                    vec![
                        name(o),
                        json!(format!(
                            "{}/{}",
                            int(o, "/status/readyReplicas"),
                            int(o, "/spec/replicas")
                        )),
                        age(o),
                        json!(c),
                        json!(i),
                    ]
                })
                .collect(),
        ),
        "ReplicationController" => (
            vec![
                col("Name", "string", 0),
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let (c, i) = containers_images(o.pointer("/spec/template/spec"));
                    vec![
                        name(o),
                        json!(int(o, "/spec/replicas")),
                        json!(int(o, "/status/replicas")),
                        json!(int(o, "/status/readyReplicas")),
                        age(o),
                        json!(c),
                        json!(i),
                        json!(format_selector(o.pointer("/spec/selector"))),
                    ]
                })
                .collect(),
        ),
        "ControllerRevision" => (
            vec![
                col("Name", "string", 0),
                col("Controller", "string", 0),
                col("Revision", "integer", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(revision_controller(o)),
                        json!(int(o, "/revision")),
                        age(o),
                    ]
                })
                .collect(),
        ),
        "Ingress" => (
            vec![
                col("Name", "string", 0),
                col("Class", "string", 0),
                col("Hosts", "string", 0),
                col("Address", "string", 0),
                col("Ports", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(o
                            .pointer("/spec/ingressClassName")
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")),
                        json!(ingress_hosts(o)),
                        json!(ingress_address(o)),
                        json!(if o
                            .pointer("/spec/tls")
                            .and_then(Value::as_array)
                            .is_some_and(|t| !t.is_empty())
                        {
                            "80, 443"
                        } else {
                            "80"
                        }),
                        age(o),
                    ]
                })
                .collect(),
        ),
        "PersistentVolume" => (
            vec![
                col("Name", "string", 0),
                col("Capacity", "string", 0),
                col("Access Modes", "string", 0),
                col("Reclaim Policy", "string", 0),
                col("Status", "string", 0),
                col("Claim", "string", 0),
                col("StorageClass", "string", 0),
                col("VolumeAttributesClass", "string", 0),
                col("Reason", "string", 0),
                col("Age", "string", 0),
                col("VolumeMode", "string", 1),
            ],
            items.iter().map(volume_cells).collect(),
        ),
        "PersistentVolumeClaim" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Volume", "string", 0),
                col("Capacity", "string", 0),
                col("Access Modes", "string", 0),
                col("StorageClass", "string", 0),
                col("VolumeAttributesClass", "string", 0),
                col("Age", "string", 0),
                col("VolumeMode", "string", 1),
            ],
            items.iter().map(claim_cells).collect(),
        ),
        "ResourceQuota" => (
            vec![
                col("Name", "string", 0),
                col("Age", "string", 0),
                col("Request", "string", 0),
                col("Limit", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let (request, limit) = quota_columns(o);
                    vec![name(o), age(o), json!(request), json!(limit)]
                })
                .collect(),
        ),
        "LimitRange" => (
            vec![col("Name", "string", 0), col("Created At", "date", 0)],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        o.pointer("/metadata/creationTimestamp")
                            .cloned()
                            .unwrap_or(Value::Null),
                    ]
                })
                .collect(),
        ),
        "PriorityClass" => (
            vec![
                col("Name", "string", 0),
                col("Value", "integer", 0),
                col("Global-Default", "boolean", 0),
                col("Age", "string", 0),
                col("PreemptionPolicy", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(int(o, "/value")),
                        json!(o
                            .get("globalDefault")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)),
                        age(o),
                        json!(match s(o, "/preemptionPolicy") {
                            "" => "<unset>",
                            p => p,
                        }),
                    ]
                })
                .collect(),
        ),
        "PodDisruptionBudget" => (
            vec![
                col("Name", "string", 0),
                col("Min Available", "string", 0),
                col("Max Unavailable", "string", 0),
                col("Allowed Disruptions", "integer", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(int_or_string(o.pointer("/spec/minAvailable"))),
                        json!(int_or_string(o.pointer("/spec/maxUnavailable"))),
                        json!(int(o, "/status/disruptionsAllowed")),
                        age(o),
                    ]
                })
                .collect(),
        ),
        "IngressClass" => (
            vec![
                col("Name", "string", 0),
                col("Controller", "string", 0),
                col("Parameters", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(s(o, "/spec/controller")),
                        json!(ingress_class_parameters(o)),
                        age(o),
                    ]
                })
                .collect(),
        ),
        "NetworkPolicy" => (
            vec![
                col("Name", "string", 0),
                col("Pod-Selector", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        name(o),
                        json!(label_selector(o.pointer("/spec/podSelector"))),
                        age(o),
                    ]
                })
                .collect(),
        ),
        _ => return None,
    })
}

/// `printResourceQuota`'s Request and Limit columns: `name: used/hard` for each resource of
/// `status.hard` in name order (an unset usage is `0`), those named `limits.*` in the second.
fn quota_columns(o: &Value) -> (String, String) {
    let used = o.pointer("/status/used");
    let (mut request, mut limit) = (vec![], vec![]);
    let Some(hard) = o.pointer("/status/hard").and_then(Value::as_object) else {
        return (String::new(), String::new());
    };
    let mut names: Vec<&String> = hard.keys().collect();
    names.sort();
    for name in names {
        let h = &hard[name.as_str()];
        let u = used
            .and_then(|u| u.get(name))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let cell = format!("{name}: {u}/{}", h.as_str().unwrap_or(""));
        if name.split('.').count() > 1 && name.split('.').next() == Some("limits") {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    (request.join(", "), limit.join(", "))
}

/// An `IntOrString`'s `String()`, `N/A` when unset (`printPodDisruptionBudget`).
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(t)) => t.clone(),
        _ => "N/A".into(),
    }
}

/// `printIngressClass`'s Parameters: `Kind[.apiGroup]/name`, `<none>` without parameters.
fn ingress_class_parameters(o: &Value) -> String {
    let Some(p) = o.pointer("/spec/parameters").filter(|p| p.is_object()) else {
        return "<none>".into();
    };
    let mut out = s(p, "/kind").to_string();
    if let Some(g) = p.get("apiGroup").and_then(Value::as_str) {
        out.push('.');
        out.push_str(g);
    }
    out.push('/');
    out.push_str(s(p, "/name"));
    out
}

fn int(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// `printControllerRevision`'s controller: `formatResourceName` of the controller reference's
/// group kind, lower-cased (`daemonset.apps/agent`), `<none>` without one.
fn revision_controller(o: &Value) -> String {
    let refs = o
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    let Some(c) = refs.and_then(|a| {
        a.iter()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
    }) else {
        return "<none>".into();
    };
    // schema.ParseGroupVersion: "v1" is the core group, "apps/v1" the apps group
    let group = s(c, "/apiVersion")
        .split_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    let kind = s(c, "/kind");
    let gk = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    format!("{}/{}", gk.to_lowercase(), s(c, "/name"))
}

/// `printPersistentVolumeClaim`: a bound claim shows its volume's capacity and access modes;
/// the class is the beta annotation's, else `spec.storageClassName`.
fn claim_cells(o: &Value) -> Vec<Value> {
    let phase = if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        s(o, "/status/phase")
    };
    let volume = s(o, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        // `Quantity.String()` of a missing capacity is "0"
        let cap = match s(o, "/status/capacity/storage") {
            "" => "0",
            q => q,
        };
        (
            cap.to_string(),
            access_modes(o.pointer("/status/accessModes")),
        )
    };
    let class = o
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(o, "/spec/storageClassName"));
    let vac = o
        .pointer("/spec/volumeAttributesClassName")
        .and_then(Value::as_str)
        .unwrap_or("<unset>");
    let mode = o
        .pointer("/spec/volumeMode")
        .and_then(Value::as_str)
        .unwrap_or("<unset>");
    vec![
        json!(s(o, "/metadata/name")),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class),
        json!(vac),
        age(o),
        json!(mode),
    ]
}

/// `formatHosts`: up to three rule hosts, `*` when none names one.
fn ingress_hosts(o: &Value) -> String {
    let rules = o
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut list: Vec<&str> = vec![];
    let mut more = false;
    for r in rules {
        if list.len() == 3 {
            more = true;
        }
        let h = s(r, "/host");
        if !more && !h.is_empty() {
            list.push(h);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    let out = list.join(",");
    if more {
        format!("{out} + {} more...", rules.len() - 3)
    } else {
        out
    }
}

/// `ingressLoadBalancerStatusStringer`, wide as the server prints tables: each entry's IP, else
/// its hostname, sorted and once each.
fn ingress_address(o: &Value) -> String {
    let all: std::collections::BTreeSet<&str> = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| match s(i, "/ip") {
            "" => s(i, "/hostname"),
            ip => ip,
        })
        .filter(|x| !x.is_empty())
        .collect();
    all.into_iter().collect::<Vec<_>>().join(",")
}

/// `printPersistentVolume`: the claim as `namespace/name`, the class as for a claim.
fn volume_cells(o: &Value) -> Vec<Value> {
    let phase = if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        s(o, "/status/phase")
    };
    let claim = if o.pointer("/spec/claimRef").is_some_and(Value::is_object) {
        format!(
            "{}/{}",
            s(o, "/spec/claimRef/namespace"),
            s(o, "/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    let class = o
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(o, "/spec/storageClassName"));
    let or_unset = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("<unset>")
            .to_string()
    };
    // `Quantity.String()` of a missing capacity is "0"
    let size = match s(o, "/spec/capacity/storage") {
        "" => "0",
        q => q,
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(size),
        json!(access_modes(o.pointer("/spec/accessModes"))),
        json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase),
        json!(claim),
        json!(class),
        json!(or_unset("/spec/volumeAttributesClassName")),
        json!(s(o, "/status/reason")),
        age(o),
        json!(or_unset("/spec/volumeMode")),
    ]
}

/// `helper.GetAccessModesAsString`: the short names of the modes present, in a fixed order.
fn access_modes(modes: Option<&Value>) -> String {
    let have: Vec<&str> = modes
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| have.contains(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// `includeObject` of a Table request (`TableOptions`): `None`, `Metadata` (the default) or
/// `Object`; anything else is refused as the apiserver does.
pub fn include_object(q: Option<&str>) -> Result<&'static str, String> {
    match q.unwrap_or("") {
        "" | "Metadata" => Ok("Metadata"),
        "None" => Ok("None"),
        "Object" => Ok("Object"),
        other => Err(format!("unrecognized includeObject value: {other:?}")),
    }
}

/// Sets each row's `object` from `items` (in row order) by `mode`: `Object` the whole object,
/// `Metadata` a `PartialObjectMetadata`, `None` nothing.
pub fn set_row_objects(table: &mut Value, items: &[Value], mode: &str) {
    let Some(rows) = table.get_mut("rows").and_then(Value::as_array_mut) else {
        return;
    };
    for (row, obj) in rows.iter_mut().zip(items) {
        match mode {
            "Object" => row["object"] = obj.clone(),
            "None" => {
                if let Some(m) = row.as_object_mut() {
                    m.insert("object".into(), Value::Null);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemonset_statefulset_revision_columns() {
        let ds = json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "reg/agent:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        let (cols, rows) = columns_and_cells("DaemonSet", &[ds]).unwrap();
        assert_eq!(cols.len(), 11);
        assert_eq!(cols[6]["name"], "Node Selector");
        assert_eq!(
            rows[0][..7],
            [
                json!("agent"),
                json!(3),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("disk=ssd")
            ]
        );
        assert_eq!(rows[0][8], "c");
        assert_eq!(rows[0][9], "reg/agent:1");
        assert_eq!(rows[0][10], "app=agent");
        let bare =
            json!({"metadata": {"name": "b"}, "spec": {"template": {"spec": {"containers": []}}}});
        let (_, rows) = columns_and_cells("DaemonSet", &[bare]).unwrap();
        assert_eq!(rows[0][6], "<none>");
        assert_eq!(rows[0][1], 0);

        let sts = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "n", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2}});
        let (cols, rows) = columns_and_cells("StatefulSet", &[sts]).unwrap();
        assert_eq!(cols.len(), 5);
        assert_eq!(rows[0][1], "2/3");

        let rev = json!({"metadata": {"name": "web-7d9f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]}, "revision": 4});
        let (_, rows) = columns_and_cells("ControllerRevision", &[rev]).unwrap();
        assert_eq!(rows[0][1], "statefulset.apps/web");
        assert_eq!(rows[0][2], 4);
        let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
        let (_, rows) = columns_and_cells("ControllerRevision", &[orphan]).unwrap();
        assert_eq!(rows[0][1], "<none>");
    }

    #[test]
    fn claim_columns() {
        let pending = json!({"metadata": {"name": "data-web-0"}, "spec": {"storageClassName": "fast", "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}});
        let (cols, rows) = columns_and_cells("PersistentVolumeClaim", &[pending]).unwrap();
        assert_eq!(cols.len(), 9);
        assert_eq!(
            rows[0][..7],
            [
                json!("data-web-0"),
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!("fast"),
                json!("<unset>")
            ]
        );
        assert_eq!(rows[0][8], "Filesystem");
        let bound = json!({"metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
            "spec": {"volumeName": "pv-1", "storageClassName": "fast"},
            "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOncePod", "ReadWriteOnce"]}});
        let (_, rows) = columns_and_cells("PersistentVolumeClaim", &[bound]).unwrap();
        assert_eq!(
            rows[0][..6],
            [
                json!("c"),
                json!("Terminating"),
                json!("pv-1"),
                json!("2Gi"),
                json!("RWO,RWOP"),
                json!("old")
            ]
        );
        assert_eq!(rows[0][8], "<unset>");
        let pv = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany", "ReadOnlyMany"],
            "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "a", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        let (cols, rows) = columns_and_cells("PersistentVolume", &[pv]).unwrap();
        assert_eq!(cols.len(), 11);
        assert_eq!(
            rows[0][..9],
            [
                json!("pv1"),
                json!("5Gi"),
                json!("ROX,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("a/data"),
                json!(""),
                json!("<unset>"),
                json!("")
            ]
        );
        assert_eq!(rows[0][10], "Filesystem");
    }

    #[test]
    fn policy_and_class_columns() {
        let rq = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"requests.cpu": "2", "limits.memory": "1Gi", "pods": "10", "count/configmaps": "5"},
            "used": {"requests.cpu": "500m", "pods": "3"}}});
        let (cols, rows) = columns_and_cells("ResourceQuota", &[rq]).unwrap();
        assert_eq!(cols.len(), 4);
        assert_eq!(
            rows[0][2..],
            [
                json!("count/configmaps: 0/5, pods: 3/10, requests.cpu: 500m/2"),
                json!("limits.memory: 0/1Gi")
            ]
        );
        let t = "2026-12-08T02:00:00Z";
        let lr = json!({"metadata": {"name": "l", "creationTimestamp": t}});
        let (cols, rows) = columns_and_cells("LimitRange", &[lr]).unwrap();
        assert_eq!(cols[1]["type"], "date");
        assert_eq!(rows[0], [json!("l"), json!(t)]);
        let pc = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": true});
        let (_, rows) = columns_and_cells("PriorityClass", &[pc]).unwrap();
        assert_eq!(
            [&rows[0][..3], &rows[0][4..]].concat(),
            [json!("high"), json!(1000), json!(true), json!("<unset>")]
        );
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"},
            "status": {"disruptionsAllowed": 2}});
        let (_, rows) = columns_and_cells("PodDisruptionBudget", &[pdb]).unwrap();
        assert_eq!(
            rows[0][..4],
            [json!("p"), json!("50%"), json!("N/A"), json!(2)]
        );
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"maxUnavailable": 1}});
        let (_, rows) = columns_and_cells("PodDisruptionBudget", &[pdb]).unwrap();
        assert_eq!(rows[0][1..4], [json!("N/A"), json!("1"), json!(0)]);
        let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"}}});
        let bare = json!({"metadata": {"name": "b"}, "spec": {"controller": "a.io/b"}});
        let (_, rows) = columns_and_cells("IngressClass", &[ic, bare]).unwrap();
        assert_eq!(
            rows[0][1..3],
            [
                json!("k8s.io/ingress-nginx"),
                json!("Params.k8s.example.com/p")
            ]
        );
        assert_eq!(rows[1][2], json!("<none>"));
        let np = json!({"metadata": {"name": "n"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}});
        let all = json!({"metadata": {"name": "a"}, "spec": {"podSelector": {}}});
        let (_, rows) = columns_and_cells("NetworkPolicy", &[np, all]).unwrap();
        assert_eq!(rows[0][1], json!("app=web"));
        assert_eq!(rows[1][1], json!("<none>"));
    }

    #[test]
    fn ingress_columns() {
        let i = json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}],
            "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"hostname": "lb.example.com"}, {"ip": "10.0.0.1", "hostname": "x"}, {"ip": "10.0.0.9"}]}}});
        let (cols, rows) = columns_and_cells("Ingress", &[i]).unwrap();
        assert_eq!(cols.len(), 6);
        assert_eq!(
            rows[0][..5],
            [
                json!("web"),
                json!("nginx"),
                json!("a.example,b.example,c.example + 2 more..."),
                json!("10.0.0.1,10.0.0.9,lb.example.com"),
                json!("80, 443")
            ]
        );
        let bare = json!({"metadata": {"name": "d"}, "spec": {"defaultBackend": {}}});
        let (_, rows) = columns_and_cells("Ingress", &[bare]).unwrap();
        assert_eq!(
            rows[0][1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
    }

    #[test]
    fn service_columns() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "selector": {"b": "2", "a": "1"}, "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        let (cols, rows) = columns_and_cells("Service", &[svc]).unwrap();
        assert_eq!(cols.len(), 7);
        assert_eq!(rows[0][1], "NodePort");
        assert_eq!(rows[0][3], "<none>");
        assert_eq!(rows[0][4], "80:30080/TCP,53/UDP");
        assert_eq!(rows[0][6], "a=1,b=2");
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11", "ports": []}});
        let (_, rows) = columns_and_cells("Service", &[lb]).unwrap();
        assert_eq!(rows[0][3], "<pending>");
        assert_eq!(rows[0][4], "<none>");
    }

    #[test]
    fn endpoints_columns() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            format_endpoints(&ep),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
        assert_eq!(format_endpoints(&json!({})), "<none>");
        let sl = json!({"addressType": "IPv4", "ports": [{"port": 80}], "endpoints": [{"addresses": ["10.0.0.1"]}]});
        let (_, rows) = columns_and_cells("EndpointSlice", &[sl]).unwrap();
        assert_eq!(rows[0][2], "80");
        assert_eq!(rows[0][3], "10.0.0.1");
        let empty = json!({"addressType": "IPv4"});
        let (_, rows) = columns_and_cells("EndpointSlice", &[empty]).unwrap();
        assert_eq!(rows[0][2], "<unset>");
    }

    #[test]
    fn job_and_cronjob_columns() {
        let j = json!({"metadata": {"name": "pi"}, "spec": {"completions": 3, "selector": {"matchLabels": {"x": "y"}}},
            "status": {"succeeded": 3, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        let (_, rows) = columns_and_cells("Job", &[j]).unwrap();
        assert_eq!(rows[0][1], "Complete");
        assert_eq!(rows[0][2], "3/3");
        assert_eq!(rows[0][3], "42s");
        assert_eq!(rows[0][7], "x=y");
        let w = json!({"metadata": {"name": "w"}, "spec": {"parallelism": 2}});
        let (_, rows) = columns_and_cells("Job", &[w]).unwrap();
        assert_eq!(rows[0][1], "Running");
        assert_eq!(rows[0][2], "0/1 of 2");
        assert_eq!(rows[0][3], "");
        let cj = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *", "suspend": false}});
        let (_, rows) = columns_and_cells("CronJob", &[cj]).unwrap();
        assert_eq!(rows[0][2], "<none>");
        assert_eq!(rows[0][3], "False");
        assert_eq!(rows[0][5], "<none>");
    }

    #[test]
    fn include_object_modes() {
        assert_eq!(include_object(None), Ok("Metadata"));
        assert_eq!(include_object(Some("Object")), Ok("Object"));
        assert!(include_object(Some("All"))
            .unwrap_err()
            .contains("unrecognized includeObject value"));
        let items = vec![json!({"kind": "Pod", "metadata": {"name": "a"}, "spec": {"x": 1}})];
        let mut t =
            json!({"rows": [{"cells": ["a"], "object": {"kind": "PartialObjectMetadata"}}]});
        set_row_objects(&mut t, &items, "Object");
        assert_eq!(t["rows"][0]["object"]["spec"]["x"], 1);
        set_row_objects(&mut t, &items, "None");
        assert!(t["rows"][0]["object"].is_null());
    }
}
