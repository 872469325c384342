//! PersistentVolumeClaims, stored and checked as kube-apiserver checks them
//! (pkg/apis/core/validation/validation.go `ValidatePersistentVolumeClaim`,
//! `ValidatePersistentVolumeClaimSpec`, `ValidatePersistentVolumeClaimUpdate`, 1.32). Nothing
//! binds or provisions a volume: a claim stays `Pending` until a volume is bound to it by
//! another writer.

use serde_json::Value;

use crate::errors::Cause;
use kubepull_core::qos::Quantity;

/// `supportedAccessModes`.
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// `supportedVolumeModes`.
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// `ValidatePersistentVolumeClaimSpec` of the spec at `path` (`spec`, or a StatefulSet's
/// `spec.volumeClaimTemplates[i].spec`).
pub fn validate_claim_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let modes: Vec<&str> = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if modes.is_empty() {
        causes.push(Cause::required(
            format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        crate::validation::validate_label_selector(sel, &format!("{path}.selector"), causes);
    }
    let (mut rwop, mut other) = (false, false);
    for m in &modes {
        if !ACCESS_MODES.contains(m) {
            causes.push(Cause::not_supported(
                format!("{path}.accessModes"),
                format!("\"{m}\""),
                ACCESS_MODES,
            ));
        } else if *m == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        causes.push(Cause::forbidden(
            format!("{path}.accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    // fldPath.Child("resources").Key("storage")
    let storage_path = format!("{path}.resources[storage]");
    match spec
        .pointer("/resources/requests/storage")
        .and_then(Value::as_str)
    {
        None => causes.push(Cause::required(storage_path, "")),
        Some(q) => match Quantity::parse(q) {
            // ValidatePositiveQuantityValue
            Some(v) if v.sign() <= 0 => causes.push(Cause::invalid(
                storage_path,
                format!("{:?}", crate::quantities::go_string(q)),
                "must be greater than zero",
            )),
            Some(_) => {}
            // refused by the decoder first (`refuse_unparsable`)
            None => {}
        },
    }
    for (field, v) in [
        ("storageClassName", spec.get("storageClassName")),
        (
            "volumeAttributesClassName",
            spec.get("volumeAttributesClassName"),
        ),
    ] {
        let Some(name) = v.and_then(Value::as_str).filter(|n| !n.is_empty()) else {
            continue;
        };
        // ValidateClassName: NameIsDNSSubdomain
        for m in crate::admission::dns1123_subdomain_problems(name) {
            causes.push(Cause::invalid(
                format!("{path}.{field}"),
                format!("\"{name}\""),
                m,
            ));
        }
    }
    if let Some(mode) = spec.get("volumeMode").and_then(Value::as_str) {
        if !VOLUME_MODES.contains(&mode) {
            causes.push(Cause::not_supported(
                format!("{path}.volumeMode"),
                format!("\"{mode}\""),
                VOLUME_MODES,
            ));
        }
    }
    for field in ["dataSource", "dataSourceRef"] {
        if let Some(ds) = spec.get(field).filter(|v| v.is_object()) {
            validate_data_source(ds, &format!("{path}.{field}"), causes);
        }
    }
    let ref_ns = s(spec, "/dataSourceRef/namespace");
    let ds = spec.get("dataSource").filter(|v| v.is_object());
    let dsr = spec.get("dataSourceRef").filter(|v| v.is_object());
    if dsr.is_some() && !ref_ns.is_empty() {
        if ds.is_some() {
            causes.push(Cause::invalid(
                path,
                format!("{path}.dataSource"),
                "may not be specified when dataSourceRef.namespace is specified",
            ));
        }
    } else if let (Some(a), Some(b)) = (ds, dsr) {
        if a.get("apiGroup") != b.get("apiGroup")
            || s(a, "/kind") != s(b, "/kind")
            || s(a, "/name") != s(b, "/name")
        {
            causes.push(Cause::invalid(
                path,
                format!("{path}.dataSource"),
                "must match dataSourceRef",
            ));
        }
    }
}

/// `validateDataSource` / `validateDataSourceRef`.
fn validate_data_source(ds: &Value, path: &str, causes: &mut Vec<Cause>) {
    if s(ds, "/name").is_empty() {
        causes.push(Cause::required(format!("{path}.name"), ""));
    }
    let kind = s(ds, "/kind");
    if kind.is_empty() {
        causes.push(Cause::required(format!("{path}.kind"), ""));
    }
    let group = s(ds, "/apiGroup");
    if group.is_empty() && kind != "PersistentVolumeClaim" {
        causes.push(Cause::invalid(
            path,
            format!("\"{kind}\""),
            "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
        ));
    }
    if !group.is_empty() {
        for m in crate::admission::dns1123_subdomain_problems(group) {
            causes.push(Cause::invalid(
                format!("{path}.apiGroup"),
                format!("\"{group}\""),
                m,
            ));
        }
    }
    let ns = s(ds, "/namespace");
    if !ns.is_empty() {
        for m in crate::admission::dns1123_label_problems(ns) {
            causes.push(Cause::invalid(
                format!("{path}.namespace"),
                format!("\"{ns}\""),
                m,
            ));
        }
    }
}

/// `ValidatePersistentVolumeClaim` (the spec; the metadata is checked with every kind's) and,
/// on update, `ValidatePersistentVolumeClaimUpdate`: the spec is immutable except that a
/// volume name may be set once, a bound claim's storage request may grow, and the volume
/// attributes class may change; the storage request may not shrink.
pub fn validate_claim(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    validate_claim_spec(spec, "spec", &mut causes);
    let Some(old) = old else {
        return causes;
    };
    let old_spec = old.get("spec").unwrap_or(&null);
    let mut new_c = spec.clone();
    let mut old_c = old_spec.clone();
    if s(old_spec, "/volumeName").is_empty() {
        old_c["volumeName"] = spec.get("volumeName").cloned().unwrap_or(Value::Null);
    }
    // a storage class named by the beta annotation may move to the field once
    let ann = |o: &Value| {
        o.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (old_ann, new_ann) = (ann(old), ann(obj));
    let new_class = spec.get("storageClassName").and_then(Value::as_str);
    if old_ann.is_some()
        && old_spec.get("storageClassName").is_none_or(Value::is_null)
        && new_class.is_some()
        && new_class == old_ann.as_deref()
        && new_ann == old_ann
    {
        if let Some(m) = new_c.as_object_mut() {
            m.remove("storageClassName");
        }
    } else if new_ann != old_ann {
        causes.push(Cause::forbidden(
            "metadata.annotations[volume.beta.kubernetes.io/storage-class]",
            "field is immutable",
        ));
    }
    if s(obj, "/status/phase") == "Bound" {
        if let Some(req) = new_c.pointer_mut("/resources/requests") {
            req["storage"] = old_spec
                .pointer("/resources/requests/storage")
                .cloned()
                .unwrap_or(Value::Null);
        }
    }
    for c in [&mut new_c, &mut old_c] {
        if let Some(m) = c.as_object_mut() {
            m.remove("volumeAttributesClassName");
            m.retain(|_, v| !v.is_null());
        }
    }
    if !crate::podupdate::semantic_eq(&Some(&new_c), &Some(&old_c)) {
        causes.push(Cause::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let size = |v: &Value| {
        v.pointer("/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(kubepull_core::qos::quantity_milli)
            .unwrap_or(0)
    };
    // RecoverVolumeExpansionFailure is off by default in 1.32: no shrinking at all
    if size(spec) < size(old_spec) {
        causes.push(Cause::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(c: &[Cause]) -> Vec<String> {
        c.iter()
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

    fn claim(spec: Value) -> Value {
        json!({"metadata": {"name": "data"}, "spec": spec, "status": {"phase": "Pending"}})
    }

    #[test]
    fn a_good_claim_passes() {
        let c = claim(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "fast", "volumeMode": "Filesystem"}),
        );
        assert!(validate_claim(&c, None).is_empty());
    }

    #[test]
    fn spec_rules() {
        let c = claim(json!({}));
        assert_eq!(
            fields(&validate_claim(&c, None)),
            [
                "spec.accessModes:  at least 1 access mode is required",
                "spec.resources[storage]:  "
            ]
        );
        let c = claim(
            json!({"accessModes": ["ReadWriteOncePod", "ReadWriteOnce", "Sometimes"],
            "resources": {"requests": {"storage": "0"}}, "storageClassName": "Fast_Disk", "volumeMode": "Raw",
            "dataSource": {"kind": "Snapshot", "name": "s"}}),
        );
        let f = fields(&validate_claim(&c, None));
        assert!(
            f[0].starts_with("spec.accessModes: \"Sometimes\" supported values: \"ReadOnlyMany\""),
            "{f:?}"
        );
        assert_eq!(
            f[1],
            "spec.accessModes:  may not use ReadWriteOncePod with other access modes"
        );
        assert_eq!(
            f[2],
            "spec.resources[storage]: \"0\" must be greater than zero"
        );
        assert!(
            f[3].starts_with("spec.storageClassName: \"Fast_Disk\" a lowercase RFC 1123 subdomain"),
            "{f:?}"
        );
        assert_eq!(
            f[4],
            "spec.volumeMode: \"Raw\" supported values: \"Block\", \"Filesystem\""
        );
        assert_eq!(
            f[5],
            "spec.dataSource: \"Snapshot\" must be 'PersistentVolumeClaim' when referencing the default apiGroup"
        );
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn updates() {
        let old = claim(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        );
        // binding a volume once is allowed
        let mut bound = old.clone();
        bound["spec"]["volumeName"] = json!("pv-1");
        assert!(validate_claim(&bound, Some(&old)).is_empty());
        // a pending claim's size is part of the immutable spec
        let mut bigger = old.clone();
        bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(
            fields(&validate_claim(&bigger, Some(&old))),
            ["spec:  spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"]
        );
        // a bound claim may grow, never shrink
        let mut b_old = bound.clone();
        b_old["status"]["phase"] = json!("Bound");
        let mut grow = b_old.clone();
        grow["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(validate_claim(&grow, Some(&b_old)).is_empty());
        let mut shrink = b_old.clone();
        shrink["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
        assert_eq!(
            fields(&validate_claim(&shrink, Some(&b_old))),
            ["spec.resources.requests.storage:  field can not be less than previous value"]
        );
        // other fields stay
        let mut modes = old.clone();
        modes["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(validate_claim(&modes, Some(&old)).len(), 1);
    }
}
