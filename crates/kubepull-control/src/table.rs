//! Server-side printing: `meta.k8s.io/v1` Tables with the columns kubectl shows against a real
//! cluster (kubernetes `pkg/printers/internalversion/printers.go`).

use serde_json::{json, Value};

use crate::resources::Resource;

/// apimachinery `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: `<unknown>` for a missing time.
pub fn since(ts: Option<&str>) -> String {
    match ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        None => "<unknown>".into(),
        Some(t) => human_duration(jiff::Timestamp::now().duration_since(t).as_secs()),
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn col(name: &str, ty: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": priority})
}

/// The pod STATUS column (`printPod`).
pub fn pod_status(pod: &Value) -> (String, i64, String, usize, usize) {
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.len())
        .unwrap_or(0);
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<String> = None;
    let mut has_running = false;
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in statuses.iter().rev() {
        restarts += n(c, "/restartCount");
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
        {
            if last_restart.as_deref().is_none_or(|l| l < t) {
                last_restart = Some(t.to_string());
            }
        }
        let w = s(c, "/state/waiting/reason");
        let t = s(c, "/state/terminated/reason");
        if !w.is_empty() {
            reason = w.to_string();
        } else if c.pointer("/state/terminated").is_some() {
            reason = if !t.is_empty() {
                t.to_string()
            } else if n(c, "/state/terminated/signal") != 0 {
                format!("Signal:{}", n(c, "/state/terminated/signal"))
            } else {
                format!("ExitCode:{}", n(c, "/state/terminated/exitCode"))
            };
        } else if c.get("ready") == Some(&json!(true)) && c.pointer("/state/running").is_some() {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        let pod_ready = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
            });
        reason = if pod_ready {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(pod, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_str = match (&last_restart, restarts) {
        (Some(t), r) if r > 0 => format!("{r} ({} ago)", since(Some(t))),
        _ => restarts.to_string(),
    };
    (reason, restarts, restarts_str, ready, total)
}

fn row(obj: &Value, cells: Vec<Value>) -> Value {
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        },
    })
}

/// The Table for a list of objects of `r`.
pub fn table(r: &Resource, items: &[Value], resource_version: u64) -> Value {
    let age = |o: &Value| {
        json!(since(
            o.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
        ))
    };
    let name = |o: &Value| json!(s(o, "/metadata/name"));
    let (columns, rows): (Vec<Value>, Vec<Value>) = match r.kind {
        k if crate::table_workloads::columns_and_cells(k, &[]).is_some() => {
            let (cols, cells) =
                crate::table_workloads::columns_and_cells(k, items).unwrap_or_default();
            let rows = items.iter().zip(cells).map(|(o, c)| row(o, c)).collect();
            (cols, rows)
        }
        "Pod" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Status", "string", 0),
                col("Restarts", "string", 0),
                col("Age", "string", 0),
                col("IP", "string", 1),
                col("Node", "string", 1),
                col("Nominated Node", "string", 1),
                col("Readiness Gates", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let (reason, _, restarts, ready, total) = pod_status(o);
                    let ip = s(o, "/status/podIP");
                    let node = s(o, "/spec/nodeName");
                    row(
                        o,
                        vec![
                            name(o),
                            json!(format!("{ready}/{total}")),
                            json!(reason),
                            json!(restarts),
                            age(o),
                            json!(if ip.is_empty() { "<none>" } else { ip }),
                            json!(if node.is_empty() { "<none>" } else { node }),
                            json!("<none>"),
                            json!("<none>"),
                        ],
                    )
                })
                .collect(),
        ),
        "Secret" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Data", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let data = o
                        .get("data")
                        .and_then(Value::as_object)
                        .map(|m| m.len())
                        .unwrap_or(0);
                    row(o, vec![name(o), json!(s(o, "/type")), json!(data), age(o)])
                })
                .collect(),
        ),
        "ConfigMap" => (
            vec![
                col("Name", "string", 0),
                col("Data", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let d = o
                        .get("data")
                        .and_then(Value::as_object)
                        .map(|m| m.len())
                        .unwrap_or(0)
                        + o.get("binaryData")
                            .and_then(Value::as_object)
                            .map(|m| m.len())
                            .unwrap_or(0);
                    row(o, vec![name(o), json!(d), age(o)])
                })
                .collect(),
        ),
        "ServiceAccount" => (
            vec![
                col("Name", "string", 0),
                col("Secrets", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let d = o
                        .get("secrets")
                        .and_then(Value::as_array)
                        .map(|m| m.len())
                        .unwrap_or(0);
                    row(o, vec![name(o), json!(d), age(o)])
                })
                .collect(),
        ),
        "Namespace" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| row(o, vec![name(o), json!(s(o, "/status/phase")), age(o)]))
                .collect(),
        ),
        "Deployment" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Up-to-date", "string", 0),
                col("Available", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let (c, i) = containers_images(o.pointer("/spec/template/spec"));
                    row(
                        o,
                        vec![
                            name(o),
                            json!(format!(
                                "{}/{}",
                                n(o, "/status/readyReplicas"),
                                n(o, "/spec/replicas")
                            )),
                            json!(n(o, "/status/updatedReplicas")),
                            json!(n(o, "/status/availableReplicas")),
                            age(o),
                            json!(c),
                            json!(i),
                            json!(selector(o)),
                        ],
                    )
                })
                .collect(),
        ),
        "ReplicaSet" => (
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
                    row(
                        o,
                        vec![
                            name(o),
                            json!(n(o, "/spec/replicas")),
                            json!(n(o, "/status/replicas")),
                            json!(n(o, "/status/readyReplicas")),
                            age(o),
                            json!(c),
                            json!(i),
                            json!(selector(o)),
                        ],
                    )
                })
                .collect(),
        ),
        "Node" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
                col("Internal-IP", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let ready = o
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
                        .map(|c| s(c, "/status"))
                        .unwrap_or("");
                    // printNode: no Ready condition at all is "Unknown"
                    let mut st = match ready {
                        "True" => "Ready".to_string(),
                        "" => "Unknown".to_string(),
                        _ => "NotReady".to_string(),
                    };
                    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                        st.push_str(",SchedulingDisabled");
                    }
                    let ip = o
                        .pointer("/status/addresses")
                        .and_then(Value::as_array)
                        .and_then(|a| a.iter().find(|x| s(x, "/type") == "InternalIP"))
                        .map(|x| s(x, "/address").to_string())
                        .unwrap_or_else(|| "<none>".into());
                    row(
                        o,
                        vec![
                            name(o),
                            json!(st),
                            json!("<none>"),
                            age(o),
                            json!(s(o, "/status/nodeInfo/kubeletVersion")),
                            json!(ip),
                        ],
                    )
                })
                .collect(),
        ),
        // eventColumnDefinitions and printEvent (pkg/printers/internalversion/printers.go), as
        // the server prints them (wide: kubectl shows the priority-1 columns with `-o wide`)
        "Event" => (
            vec![
                col("Last Seen", "string", 0),
                col("Type", "string", 0),
                col("Reason", "string", 0),
                col("Object", "string", 0),
                col("Subobject", "string", 1),
                col("Source", "string", 1),
                col("Message", "string", 0),
                col("First Seen", "string", 1),
                col("Count", "string", 1),
                col("Name", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    // the columns read the core form (the internal Event both groups print
                    // from); the row's object is the one served
                    let c = crate::events::normalised(o);
                    let c = &*c;
                    let ts = |p: &str| c.pointer(p).and_then(Value::as_str);
                    let first = match ts("/firstTimestamp") {
                        Some(t) => since(Some(t)),
                        None => since(ts("/eventTime")),
                    };
                    let mut last = match ts("/lastTimestamp") {
                        Some(t) => since(Some(t)),
                        None => first.clone(),
                    };
                    let mut count = n(c, "/count");
                    if c.get("series").is_some_and(|x| !x.is_null()) {
                        last = since(ts("/series/lastObservedTime"));
                        count = n(c, "/series/count");
                    } else if count == 0 {
                        // singleton events have no count in the new API
                        count = 1;
                    }
                    let kind = s(c, "/involvedObject/kind").to_lowercase();
                    let target = match s(c, "/involvedObject/name") {
                        "" => kind,
                        name => format!("{kind}/{name}"),
                    };
                    // formatEventSource
                    let first_of = |a: &str, b: &str| {
                        if a.is_empty() {
                            s(c, b).to_string()
                        } else {
                            a.to_string()
                        }
                    };
                    let component = first_of(s(c, "/source/component"), "/reportingComponent");
                    let instance = first_of(s(c, "/source/host"), "/reportingInstance");
                    let source = if instance.is_empty() {
                        component
                    } else {
                        format!("{component}, {instance}")
                    };
                    row(
                        o,
                        vec![
                            json!(last),
                            json!(s(c, "/type")),
                            json!(s(c, "/reason")),
                            json!(target),
                            json!(s(c, "/involvedObject/fieldPath")),
                            json!(source),
                            json!(s(c, "/message").trim()),
                            json!(first),
                            json!(count),
                            json!(s(c, "/metadata/name")),
                        ],
                    )
                })
                .collect(),
        ),
        "CertificateSigningRequest" => (
            vec![
                col("Name", "string", 0),
                col("Age", "string", 0),
                col("SignerName", "string", 0),
                col("Requestor", "string", 0),
                col("RequestedDuration", "string", 0),
                col("Condition", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let conds: Vec<String> = o
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .map(|cs| {
                            cs.iter()
                                .filter_map(|c| c.get("type").and_then(Value::as_str))
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut cond = if conds.is_empty() {
                        "Pending".to_string()
                    } else {
                        conds.join(",")
                    };
                    if o.pointer("/status/certificate").is_some() {
                        cond.push_str(",Issued");
                    }
                    row(
                        o,
                        vec![
                            name(o),
                            age(o),
                            json!(s(o, "/spec/signerName")),
                            json!(s(o, "/spec/username")),
                            json!("<none>"),
                            json!(cond),
                        ],
                    )
                })
                .collect(),
        ),
        // apiextensions-apiserver `pkg/registry/customresourcedefinition/tableconvertor`
        "CustomResourceDefinition" => (
            vec![col("Name", "string", 0), col("Created At", "date", 0)],
            items
                .iter()
                .map(|o| row(o, vec![name(o), json!(s(o, "/metadata/creationTimestamp"))]))
                .collect(),
        ),
        "Lease" => (
            vec![
                col("Name", "string", 0),
                col("Holder", "string", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    row(
                        o,
                        vec![name(o), json!(s(o, "/spec/holderIdentity")), age(o)],
                    )
                })
                .collect(),
        ),
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => (
            vec![
                col("Name", "string", 0),
                col("Webhooks", "integer", 0),
                col("Age", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let n = o
                        .get("webhooks")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    row(o, vec![name(o), json!(n), age(o)])
                })
                .collect(),
        ),
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            items
                .iter()
                .map(|o| row(o, vec![name(o), age(o)]))
                .collect(),
        ),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The containers' names and images, comma-separated (`layoutContainerCells`).
pub(crate) fn containers_images(spec: Option<&Value>) -> (String, String) {
    let cs = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    (
        cs.iter()
            .map(|c| s(c, "/name").to_string())
            .collect::<Vec<_>>()
            .join(","),
        cs.iter()
            .map(|c| s(c, "/image").to_string())
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn selector(o: &Value) -> String {
    o.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
    }

    /// printEvent: a repeated Event's series gives Last Seen and Count; a singleton's count is
    /// 1; First Seen falls back to eventTime, Last Seen to First Seen; Object is the kind alone
    /// without a name; Source is the component (or reporting controller) and host (or
    /// instance); the message is trimmed; an events.k8s.io-shaped Event prints the same.
    #[test]
    fn event_rows() {
        let r = crate::resources::find("", "v1", "events").unwrap();
        let ago = |secs: i64| {
            (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
        };
        let series = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning", "message": " Back-off pulling image \n",
            "eventTime": ago(600), "reportingComponent": "kubelet", "reportingInstance": "node-1",
            "series": {"count": 7, "lastObservedTime": ago(30)}});
        let single = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "n.2"}, "regarding": {"kind": "Node"}, "reason": "Ready",
            "type": "Normal", "note": "ok", "deprecatedSource": {"component": "kubepull-node", "host": "h"},
            "deprecatedFirstTimestamp": ago(120)});
        let t = table(r, &[series, single], 1);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "30s",
                "Warning",
                "BackOff",
                "pod/web",
                "spec.containers{app}",
                "kubelet, node-1",
                "Back-off pulling image",
                "10m",
                7,
                "web.1"
            ])
        );
        assert_eq!(
            t["rows"][1]["cells"],
            json!([
                "2m",
                "Normal",
                "Ready",
                "node",
                "",
                "kubepull-node, h",
                "ok",
                "2m",
                1,
                "n.2"
            ])
        );
    }

    #[test]
    fn pod_status_column() {
        let pod = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(pod_status(&pod).0, "ImagePullBackOff");
        let pod = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        let st = pod_status(&pod);
        assert_eq!((st.0.as_str(), st.3, st.4), ("Running", 1, 1));
    }
}
