//! Field selectors as kube-apiserver reads them: which field labels each kind accepts (the
//! scheme's field-label conversion functions) and the value each label has on an object (the
//! kind's `ToSelectableFields`).
//!
//! - A label the kind does not accept is a 400 before anything is read: `field label not
//!   supported: X` for kinds with their own conversion function, and `"X" is not a known field
//!   selector: only "metadata.name", "metadata.namespace"` for the others
//!   (`runtime.DefaultMetaV1FieldSelectorConversion`).
//! - Values come from the object as the internal type holds it: booleans and integers as Go's
//!   `strconv` prints them (`spec.hostNetwork` of a pod that leaves it out is `false`), an
//!   Event's `source` falls back to its reporting controller, a Job's `status.successful` is its
//!   `status.succeeded` count. A label that is accepted but not selectable (a pod's
//!   `status.podIPs`) reads as empty, as a missing key of a `fields.Set` does.
//!
//! Sources (1.32): `pkg/apis/core/v1/conversion.go` (Pod, Node, Event, Namespace, Secret,
//! Service), `pkg/apis/events/v1/conversion.go`, `pkg/apis/batch/v1/
//! conversion.go`, `pkg/apis/certificates/v1/conversion.go`, and the `ToSelectableFields` /
//! `SelectableFields` / `GetAttrs` of `pkg/registry/core/{pod,node,event,namespace,secret,service}`,
//! `pkg/registry/batch/job` and `pkg/registry/certificates/certificates`.
//!
//! Custom resources (apiextensions-apiserver 1.32): the crConverter's `ConvertFieldLabel`
//! (`pkg/apiserver/conversion/converter.go`) accepts `metadata.name`, `metadata.namespace` of a
//! namespaced resource and the `selectableFields` of the version asked for (their `jsonPath`
//! without the leading dot), anything else is `field label not supported: X`; the values are
//! `customResourceStrategy.selectableFields` (`pkg/registry/customresource/strategy.go`): the
//! field's value as `fmt.Sprint` prints it, a missing field `""`.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::resources::Resource;

/// How one kind's objects are read by field selectors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FieldSet {
    /// `metadata.name` and, for namespaced kinds, `metadata.namespace` only.
    #[default]
    Meta,
    /// `v1` Pod.
    Pod,
    /// `v1` Node.
    Node,
    /// `v1` and `events.k8s.io/v1` Event (read in its core form, whichever shape it is served
    /// or stored in: [`crate::events::core_pointer`]).
    Event,
    /// `v1` Namespace.
    Namespace,
    /// `v1` Secret.
    Secret,
    /// `v1` Service.
    Service,
    /// `batch/v1` Job.
    Job,
    /// `certificates.k8s.io/v1` CertificateSigningRequest.
    Csr,
    /// A custom resource version: the labels of its `selectableFields` (each `jsonPath`
    /// without its leading dot, a simple dotted path).
    Custom(Arc<[String]>),
}

impl FieldSet {
    /// The field set of a served kind.
    pub fn of(r: &Resource) -> FieldSet {
        match (r.group, r.kind) {
            ("", "Pod") => FieldSet::Pod,
            ("", "Node") => FieldSet::Node,
            ("", "Event") | ("events.k8s.io", "Event") => FieldSet::Event,
            ("", "Namespace") => FieldSet::Namespace,
            ("", "Secret") => FieldSet::Secret,
            ("", "Service") => FieldSet::Service,
            ("batch", "Job") => FieldSet::Job,
            ("certificates.k8s.io", "CertificateSigningRequest") => FieldSet::Csr,
            _ => FieldSet::Meta,
        }
    }

    /// The label a field selector's `label` means for resource `r` of this field set, or the
    /// error kube-apiserver answers with 400: [`convert_label`] for built-in kinds, the
    /// crConverter's `ConvertFieldLabel` for custom resources.
    pub fn convert(&self, r: &Resource, label: &str) -> Result<Cow<'static, str>, String> {
        let FieldSet::Custom(paths) = self else {
            return convert_label(r, label).map(Cow::Borrowed);
        };
        match label {
            "metadata.name" => Ok(Cow::Borrowed("metadata.name")),
            "metadata.namespace" if r.namespaced => Ok(Cow::Borrowed("metadata.namespace")),
            _ if paths.iter().any(|p| p == label) => Ok(Cow::Owned(label.to_string())),
            _ => Err(format!("field label not supported: {label}")),
        }
    }
}

/// The label a field selector's `label` means for resource `r` (what the scheme's conversion
/// function returns), or the error kube-apiserver answers with 400.
pub fn convert_label(r: &Resource, label: &str) -> Result<&'static str, String> {
    let unsupported = || format!("field label not supported: {label}");
    let accept = |list: &[&'static str]| {
        list.iter()
            .find(|l| **l == label)
            .copied()
            .ok_or_else(unsupported)
    };
    match (r.group, r.kind) {
        ("", "Pod") => match label {
            // backwards compatibility with old v1 clients
            "spec.host" => Ok("spec.nodeName"),
            _ => accept(&[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ]),
        },
        ("", "Node") => accept(&["metadata.name", "spec.unschedulable"]),
        ("", "Event") => accept(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ]),
        ("events.k8s.io", "Event") => match label {
            "regarding.kind" => Ok("involvedObject.kind"),
            "regarding.namespace" => Ok("involvedObject.namespace"),
            "regarding.name" => Ok("involvedObject.name"),
            "regarding.uid" => Ok("involvedObject.uid"),
            "regarding.apiVersion" => Ok("involvedObject.apiVersion"),
            "regarding.resourceVersion" => Ok("involvedObject.resourceVersion"),
            "regarding.fieldPath" => Ok("involvedObject.fieldPath"),
            "reportingController" => Ok("reportingComponent"),
            _ => accept(&[
                "reason",
                "source",
                "type",
                "metadata.namespace",
                "metadata.name",
            ]),
        },
        ("", "Namespace") => accept(&["status.phase", "metadata.name"]),
        ("", "Secret") => accept(&["type", "metadata.namespace", "metadata.name"]),
        ("", "Service") => accept(&[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ]),
        ("batch", "Job") => accept(&["metadata.name", "metadata.namespace", "status.successful"]),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            accept(&["metadata.name", "spec.signerName"])
        }
        _ => match label {
            "metadata.name" => Ok("metadata.name"),
            "metadata.namespace" => Ok("metadata.namespace"),
            _ => Err(format!(
                "{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            )),
        },
    }
}

/// The value of the (converted) `label` on `obj`, as the kind's selectable fields give it.
pub fn value(set: &FieldSet, namespaced: bool, obj: &Value, label: &str) -> String {
    // An Event is read by its core form's paths (the internal Event both groups convert to),
    // mapped onto the events.k8s.io shape when it is served through that group or was stored
    // in it; nothing is copied
    let s = |p: &str| {
        let p = match set {
            FieldSet::Event => crate::events::core_pointer(obj, p),
            _ => std::borrow::Cow::Borrowed(p),
        };
        obj.pointer(&p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    // Go's strconv.FormatBool / strconv.Itoa of a field the JSON may leave out
    let b = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string()
    };
    let i = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string()
    };
    match label {
        "metadata.name" => return s("/metadata/name"),
        // generic.ObjectMetaFieldsSet(meta, hasNamespaceField)
        "metadata.namespace" if namespaced => return s("/metadata/namespace"),
        _ => {}
    }
    match (set, label) {
        (FieldSet::Pod, "spec.nodeName") => s("/spec/nodeName"),
        (FieldSet::Pod, "spec.restartPolicy") => s("/spec/restartPolicy"),
        (FieldSet::Pod, "spec.schedulerName") => s("/spec/schedulerName"),
        (FieldSet::Pod, "spec.serviceAccountName") => s("/spec/serviceAccountName"),
        (FieldSet::Pod, "spec.hostNetwork") => b("/spec/hostNetwork"),
        (FieldSet::Pod, "status.phase") => s("/status/phase"),
        // the internal pod holds podIPs only: v1's podIP, when set, becomes its first entry
        (FieldSet::Pod, "status.podIP") => match s("/status/podIP") {
            ip if ip.is_empty() => s("/status/podIPs/0/ip"),
            ip => ip,
        },
        (FieldSet::Pod, "status.nominatedNodeName") => s("/status/nominatedNodeName"),
        (FieldSet::Node, "spec.unschedulable") => b("/spec/unschedulable"),
        (FieldSet::Event, l) if l.starts_with("involvedObject.") => s(&format!(
            "/involvedObject/{}",
            &l["involvedObject.".len()..]
        )),
        (FieldSet::Event, "reason") => s("/reason"),
        // core/v1's JSON name of ReportingController
        (FieldSet::Event, "reportingComponent") => s("/reportingComponent"),
        (FieldSet::Event, "source") => match s("/source/component") {
            c if c.is_empty() => s("/reportingComponent"),
            c => c,
        },
        (FieldSet::Event, "type") => s("/type"),
        (FieldSet::Namespace, "status.phase") => s("/status/phase"),
        (FieldSet::Secret, "type") => s("/type"),
        (FieldSet::Service, "spec.clusterIP") => s("/spec/clusterIP"),
        (FieldSet::Service, "spec.type") => s("/spec/type"),
        (FieldSet::Job, "status.successful") => i("/status/succeeded"),
        (FieldSet::Csr, "spec.signerName") => s("/spec/signerName"),
        // fmt.Sprint of the value jsonpath finds: a string as is, a boolean `true`/`false`, an
        // integer in decimal; a missing field ""
        (FieldSet::Custom(paths), l) if paths.iter().any(|p| p == l) => {
            crate::objects::field_value(obj, l)
        }
        // accepted but not selectable (status.podIPs, a cluster-scoped object's namespace)
        _ => String::new(),
    }
}

/// One term of a field selector: label, whether it is `=`/`==` (true) or `!=` (false), value.
pub type Term = (String, bool, String);

/// Parses a field selector as `fields.ParseSelector` does: terms split at commas that are not
/// escaped, sorted, each split at its first operator (`!=`, `==`, `=`, tried in that order at
/// each position), and each value unescaped (`\\`, `\,` and `\=`; an unescaped `,` or `=` in a
/// value is an error). Nothing is trimmed. An error is the text kube-apiserver answers with 400.
pub fn parse(selector: &str) -> Result<Vec<Term>, String> {
    let mut parts = split_terms(selector);
    parts.sort_unstable();
    let mut out = vec![];
    for part in parts {
        if part.is_empty() {
            continue;
        }
        let Some((lhs, eq, rhs)) = split_term(part) else {
            return Err(format!(
                "invalid selector: '{selector}'; can't understand '{part}'"
            ));
        };
        out.push((lhs.to_string(), eq, unescape_value(rhs)?));
    }
    Ok(out)
}

/// `splitTerms`: the comma-separated terms; a backslash-escaped comma stays in its term.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return vec![];
    }
    let mut terms = vec![];
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// `splitTerm`: the first operator in the term splits it (the label has no escapes).
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, eq) in [("!=", false), ("==", true), ("=", true)] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], eq, value));
            }
        }
    }
    None
}

/// `UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut v = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            v.push(c);
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' || c == '=' {
            // Go prints the rune as a number (`%v` of a rune)
            return Err(format!(
                "invalid field selector: unescaped character in value: {}",
                c as u32
            ));
        } else {
            v.push(c);
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn r(group: &str, plural: &str) -> &'static Resource {
        find(group, "v1", plural).unwrap_or_else(|| panic!("{group}/{plural}"))
    }

    #[test]
    fn labels_each_kind_accepts() {
        let pods = r("", "pods");
        assert_eq!(convert_label(pods, "spec.nodeName"), Ok("spec.nodeName"));
        assert_eq!(convert_label(pods, "spec.host"), Ok("spec.nodeName"));
        assert_eq!(
            convert_label(pods, "status.phse"),
            Err("field label not supported: status.phse".to_string())
        );
        let nodes = r("", "nodes");
        assert!(convert_label(nodes, "metadata.namespace").is_err());
        assert_eq!(
            convert_label(nodes, "spec.unschedulable"),
            Ok("spec.unschedulable")
        );
        let ev = r("events.k8s.io", "events");
        assert_eq!(
            convert_label(ev, "regarding.name"),
            Ok("involvedObject.name")
        );
        assert_eq!(
            convert_label(ev, "reportingController"),
            Ok("reportingComponent")
        );
        assert!(convert_label(ev, "involvedObject.name").is_err());
        assert_eq!(
            convert_label(r("", "events"), "involvedObject.name"),
            Ok("involvedObject.name")
        );
        let cm = r("", "configmaps");
        assert_eq!(convert_label(cm, "metadata.name"), Ok("metadata.name"));
        assert_eq!(
            convert_label(cm, "data.x"),
            Err(r#""data.x" is not a known field selector: only "metadata.name", "metadata.namespace""#.to_string())
        );
        assert_eq!(
            convert_label(r("batch", "jobs"), "status.successful"),
            Ok("status.successful")
        );
        assert!(convert_label(r("apps", "deployments"), "spec.replicas").is_err());
    }

    #[test]
    fn selectors_parse_as_fields_parse_selector() {
        let t = |l: &str, eq: bool, v: &str| (l.to_string(), eq, v.to_string());
        assert_eq!(
            parse(r"spec.nodeName=n1,metadata.name!=a\,b").unwrap(),
            [
                t("metadata.name", false, "a,b"),
                t("spec.nodeName", true, "n1")
            ]
        );
        assert_eq!(parse("a==b").unwrap(), [t("a", true, "b")]);
        assert_eq!(
            parse("a=b!=c").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(parse(r"a=b\=c").unwrap(), [t("a", true, "b=c")]);
        assert_eq!(parse("a = b").unwrap(), [t("a ", true, " b")]);
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("a=b,,").unwrap(), [t("a", true, "b")]);
        assert_eq!(
            parse("a=b,c").unwrap_err(),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            parse(r"a=b\x").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            parse(r"a=b\").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \"
        );
    }

    #[test]
    fn values_as_the_selectable_fields_give_them() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {},
            "status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}});
        assert_eq!(
            value(&FieldSet::Pod, true, &pod, "spec.hostNetwork"),
            "false"
        );
        assert_eq!(
            value(&FieldSet::Pod, true, &pod, "status.podIP"),
            "10.0.0.1"
        );
        assert_eq!(value(&FieldSet::Pod, true, &pod, "status.podIPs"), "");
        assert_eq!(value(&FieldSet::Pod, true, &pod, "metadata.namespace"), "d");
        let hn = json!({"spec": {"hostNetwork": true}});
        assert_eq!(value(&FieldSet::Pod, true, &hn, "spec.hostNetwork"), "true");
        let node = json!({"metadata": {"name": "n"}});
        assert_eq!(
            value(&FieldSet::Node, false, &node, "spec.unschedulable"),
            "false"
        );
        assert_eq!(
            value(&FieldSet::Node, false, &node, "metadata.namespace"),
            ""
        );
        let ev =
            json!({"source": {}, "reportingComponent": "kubelet", "involvedObject": {"name": "p"}});
        assert_eq!(value(&FieldSet::Event, true, &ev, "source"), "kubelet");
        let ev2 = json!({"source": {"component": "scheduler"}, "reportingComponent": "x"});
        assert_eq!(value(&FieldSet::Event, true, &ev2, "source"), "scheduler");
        assert_eq!(
            value(&FieldSet::Event, true, &ev, "involvedObject.name"),
            "p"
        );
        // an Event served through events.k8s.io/v1, or stored in its shape by an earlier build
        let ev3 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "regarding": {"kind": "Pod", "name": "p"},
            "reportingController": "kubelet", "deprecatedSource": {}, "reason": "Failed"});
        assert_eq!(
            value(&FieldSet::Event, true, &ev3, "involvedObject.name"),
            "p"
        );
        assert_eq!(
            value(&FieldSet::Event, true, &ev3, "involvedObject.kind"),
            "Pod"
        );
        assert_eq!(
            value(&FieldSet::Event, true, &ev3, "reportingComponent"),
            "kubelet"
        );
        assert_eq!(value(&FieldSet::Event, true, &ev3, "source"), "kubelet");
        // a non-empty podIP wins over podIPs, as the v1 -> internal conversion gives it
        let two = json!({"status": {"podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.1"}]}});
        assert_eq!(
            value(&FieldSet::Pod, true, &two, "status.podIP"),
            "10.0.0.2"
        );
        let job = json!({"status": {"succeeded": 3}});
        assert_eq!(value(&FieldSet::Job, true, &job, "status.successful"), "3");
        assert_eq!(
            value(&FieldSet::Job, true, &json!({}), "status.successful"),
            "0"
        );
    }

    #[test]
    fn custom_resource_labels_and_values() {
        let set = FieldSet::Custom(
            ["spec.color", "spec.on", "spec.size"]
                .map(String::from)
                .into(),
        );
        let none = FieldSet::Custom(Arc::from([]));
        let mut ns = r("", "configmaps").clone();
        ns.group = "example.com";
        ns.kind = "Widget";
        let mut cluster = ns.clone();
        cluster.namespaced = false;
        assert_eq!(
            set.convert(&ns, "spec.color"),
            Ok(Cow::Borrowed("spec.color"))
        );
        assert_eq!(
            set.convert(&ns, "metadata.name"),
            Ok(Cow::Borrowed("metadata.name"))
        );
        assert_eq!(
            set.convert(&ns, "metadata.namespace"),
            Ok(Cow::Borrowed("metadata.namespace"))
        );
        // the crConverter: no namespace label on a cluster-scoped resource, its own message
        assert_eq!(
            set.convert(&cluster, "metadata.namespace"),
            Err("field label not supported: metadata.namespace".to_string())
        );
        assert_eq!(
            set.convert(&ns, ".spec.color"),
            Err("field label not supported: .spec.color".to_string())
        );
        assert_eq!(
            none.convert(&ns, "spec.color"),
            Err("field label not supported: spec.color".to_string())
        );
        let o = json!({"metadata": {"name": "w", "namespace": "d"},
            "spec": {"color": "blue", "on": true, "size": 42}});
        assert_eq!(value(&set, true, &o, "spec.color"), "blue");
        assert_eq!(value(&set, true, &o, "spec.on"), "true");
        assert_eq!(value(&set, true, &o, "spec.size"), "42");
        assert_eq!(value(&set, true, &o, "metadata.namespace"), "d");
        assert_eq!(value(&set, true, &json!({"spec": {}}), "spec.color"), "");
        // not a selectable field of this set
        assert_eq!(value(&none, true, &o, "spec.color"), "");
    }
}
