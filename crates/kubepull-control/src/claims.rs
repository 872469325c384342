//! PersistentVolumeClaims and PersistentVolumes, stored and checked as kube-apiserver checks
//! them (pkg/apis/core/validation/validation.go `ValidatePersistentVolumeClaim`,
//! `ValidatePersistentVolumeClaimSpec`, `ValidatePersistentVolumeClaimUpdate`,
//! `ValidatePersistentVolume`, `ValidatePersistentVolumeSpec`, `ValidatePersistentVolumeUpdate`,
//! 1.32). Nothing binds or provisions a volume: claims and volumes stay `Pending` until another
//! writer binds them.

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

fn q(v: &str) -> String {
    format!("{v:?}")
}

/// `DropDisabledFields` for the VolumeAttributesClass feature (off in 1.32): a claim's or a
/// volume's `volumeAttributesClassName` is dropped unless the stored object has one already.
pub fn drop_disabled_fields(obj: &mut Value, old: Option<&Value>) {
    let in_use = old
        .and_then(|o| o.pointer("/spec/volumeAttributesClassName"))
        .is_some_and(|v| !v.is_null());
    if !in_use {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("volumeAttributesClassName");
        }
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Whether a claim's or a volume's spec names no access mode.
fn no_access_modes(spec: &Value) -> bool {
    spec.get("accessModes")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}

/// The access modes of a claim's or a volume's spec at `path`: supported ones, and
/// `ReadWriteOncePod` alone.
fn access_modes(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let modes: Vec<&str> = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (mut rwop, mut other) = (false, false);
    for m in &modes {
        if !ACCESS_MODES.contains(m) {
            causes.push(Cause::not_supported(
                format!("{path}.accessModes"),
                q(m),
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
}

/// A claim's or a volume's class names (`ValidateClassName`: `NameIsDNSSubdomain`) and volume
/// mode.
fn classes_and_mode(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    for field in ["storageClassName", "volumeAttributesClassName"] {
        let Some(name) = spec
            .get(field)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        for m in crate::admission::dns1123_subdomain_problems(name) {
            causes.push(Cause::invalid(format!("{path}.{field}"), q(name), m));
        }
    }
    if let Some(mode) = spec.get("volumeMode").and_then(Value::as_str) {
        if !VOLUME_MODES.contains(&mode) {
            causes.push(Cause::not_supported(
                format!("{path}.volumeMode"),
                q(mode),
                VOLUME_MODES,
            ));
        }
    }
}

/// `ValidatePersistentVolumeClaimSpec` of the spec at `path` (`spec`, or a StatefulSet's
/// `spec.volumeClaimTemplates[i].spec`).
pub fn validate_claim_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    if no_access_modes(spec) {
        causes.push(Cause::required(
            format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        crate::validation::validate_label_selector(sel, &format!("{path}.selector"), causes);
    }
    access_modes(spec, path, causes);
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
    classes_and_mode(spec, path, causes);
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
/// volume name may be set once, a storage class may be set where there was none (or moved
/// from the beta annotation), and a bound claim's storage request may change — grow, or
/// shrink back while it stays above `status.capacity` (RecoverVolumeExpansionFailure, on in
/// 1.32); the volume attributes class may not change (its feature is off in 1.32).
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
    // validateStorageClassUpgradeFromAnnotation: the beta annotation's class may move to the
    // field (the annotation kept as it was or removed); otherwise the annotation is immutable,
    // and validateStorageClassUpgradeFromNil: a class may be set where there was none
    let ann = |o: &Value| {
        o.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (old_ann, new_ann) = (ann(old), ann(obj));
    let old_class_unset = old_spec.get("storageClassName").is_none_or(Value::is_null);
    let new_class = spec
        .get("storageClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    let from_annotation = old_ann.is_some()
        && old_class_unset
        && new_class.is_some()
        && new_class == old_ann.as_deref()
        && (new_ann.is_none() || new_ann == old_ann);
    let from_nil = old_ann.is_none() && old_class_unset && new_class.is_some();
    if from_annotation || from_nil {
        if let Some(m) = new_c.as_object_mut() {
            m.remove("storageClassName");
        }
    }
    if !from_annotation && new_ann != old_ann {
        causes.push(Cause::invalid(
            "metadata.annotations.volume.beta.kubernetes.io/storage-class",
            q(new_ann.as_deref().unwrap_or("")),
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
    if spec.get("volumeAttributesClassName") != old_spec.get("volumeAttributesClassName") {
        causes.push(Cause::forbidden(
            "spec.volumeAttributesClassName",
            "update is forbidden when the VolumeAttributesClass feature gate is disabled",
        ));
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
    // RecoverVolumeExpansionFailure (beta, on in 1.32): a request may shrink back while it
    // stays above the capacity the claim has
    let capacity = old
        .pointer("/status/capacity/storage")
        .and_then(Value::as_str)
        .and_then(kubepull_core::qos::quantity_milli)
        .unwrap_or(0);
    if size(spec) < size(old_spec) && size(spec) <= capacity {
        causes.push(Cause::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
    causes
}

/// The volume sources of a PersistentVolumeSpec, in `ValidatePersistentVolumeSpec`'s order,
/// with the path each is reported under (upstream names a few differently from the field).
const PV_SOURCES: &[(&str, &str)] = &[
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("nfs", "nfs"),
    ("rbd", "rbd"),
    ("quobyte", "quobyte"),
    ("cephfs", "cephFS"),
    ("iscsi", "iscsi"),
    ("cinder", "cinder"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("scaleIO", "scaleIO"),
    ("local", "local"),
    ("storageos", "storageos"),
    ("csi", "csi"),
];

/// `supportedReclaimPolicy`.
const RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];

/// `supportedHostPathTypes`.
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// `path.Clean` of a slash path.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = vec![];
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// `validatePathNoBacksteps`: no `..` element.
fn backsteps(path: &str, at: &str, causes: &mut Vec<Cause>) {
    if path.split('/').any(|p| p == "..") {
        causes.push(Cause::invalid(
            at,
            format!("\"{path}\""),
            "must not contain '..'",
        ));
    }
}

/// The checks of the volume sources users write by hand most (host paths, local volumes,
/// NFS, CSI); the other sources are counted (one and only one) but their own fields are not
/// checked.
fn validate_pv_source(field: &str, at: &str, src: &Value, causes: &mut Vec<Cause>) {
    let required = |f: &str, causes: &mut Vec<Cause>| {
        if s(src, &format!("/{f}")).is_empty() {
            causes.push(Cause::required(format!("{at}.{f}"), ""));
        }
    };
    match field {
        "hostPath" => {
            // validateHostPathVolumeSource
            required("path", causes);
            let p = s(src, "/path");
            if !p.is_empty() {
                backsteps(p, &format!("{at}.path"), causes);
            }
            if let Some(t) = src.get("type").and_then(Value::as_str) {
                if !HOST_PATH_TYPES.contains(&t) {
                    causes.push(Cause::not_supported(
                        format!("{at}.type"),
                        format!("\"{t}\""),
                        HOST_PATH_TYPES,
                    ));
                }
            }
        }
        "local" => {
            // validateLocalVolumeSource
            let p = s(src, "/path");
            if p.is_empty() {
                causes.push(Cause::required(format!("{at}.path"), ""));
            } else {
                backsteps(p, &format!("{at}.path"), causes);
            }
        }
        "nfs" => {
            // validateNFSVolumeSource
            required("server", causes);
            let p = s(src, "/path");
            if p.is_empty() {
                causes.push(Cause::required(format!("{at}.path"), ""));
            }
            if !p.starts_with('/') {
                causes.push(Cause::invalid(
                    format!("{at}.path"),
                    format!("\"{p}\""),
                    "must be an absolute path",
                ));
            }
        }
        "csi" => {
            // validateCSIPersistentVolumeSource: driver and volume handle
            required("driver", causes);
            required("volumeHandle", causes);
        }
        _ => {}
    }
}

/// `ValidatePersistentVolumeSpec` (not inline) and, on update, `ValidatePersistentVolumeUpdate`:
/// the volume source and the volume mode may not change.
pub fn validate_volume(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    if no_access_modes(spec) {
        causes.push(Cause::required("spec.accessModes", ""));
    }
    access_modes(spec, "spec", &mut causes);
    let capacity = spec.get("capacity").and_then(Value::as_object);
    let cap_len = capacity.map_or(0, |c| c.len());
    if cap_len == 0 {
        causes.push(Cause::required("spec.capacity", ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        // Go prints the ResourceList map
        let shown = capacity
            .map(|c| {
                let mut kv: Vec<String> = c
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}:{}",
                            crate::quantities::go_string(v.as_str().unwrap_or(""))
                        )
                    })
                    .collect();
                kv.sort();
                format!("map[{}]", kv.join(" "))
            })
            .unwrap_or_else(|| "map[]".into());
        causes.push(Cause::not_supported("spec.capacity", shown, &["storage"]));
    }
    for (k, v) in capacity.into_iter().flatten() {
        let Some(q) = v.as_str() else { continue };
        if Quantity::parse(q).is_some_and(|v| v.sign() <= 0) {
            causes.push(Cause::invalid(
                format!("spec.capacity[{k}]"),
                format!("{:?}", crate::quantities::go_string(q)),
                "must be greater than zero",
            ));
        }
    }
    let policy = s(spec, "/persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !RECLAIM_POLICIES.contains(&policy) {
        causes.push(Cause::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            format!("\"{policy}\""),
            RECLAIM_POLICIES,
        ));
    }
    // validateVolumeNodeAffinity: a node affinity counts as given once present
    let affinity = spec.get("nodeAffinity").is_some_and(|v| !v.is_null());
    if affinity {
        match spec
            .pointer("/nodeAffinity/required")
            .filter(|r| !r.is_null())
        {
            None => causes.push(Cause::required(
                "spec.nodeAffinity.required",
                "must specify required node constraints",
            )),
            Some(req) => {
                if req
                    .get("nodeSelectorTerms")
                    .and_then(Value::as_array)
                    .is_none_or(|t| t.is_empty())
                {
                    causes.push(Cause::required(
                        "spec.nodeAffinity.required.nodeSelectorTerms",
                        "must have at least one node selector term",
                    ));
                }
            }
        }
    }
    let mut count = 0;
    for (field, at) in PV_SOURCES {
        let Some(src) = spec.get(*field).filter(|v| !v.is_null()) else {
            continue;
        };
        // upstream counts a flexVolume without the "more than 1" check
        if count > 0 && *field != "flexVolume" {
            causes.push(Cause::forbidden(
                format!("spec.{at}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        validate_pv_source(field, &format!("spec.{at}"), src, &mut causes);
        if *field == "local" && !affinity {
            causes.push(Cause::required(
                "spec.nodeAffinity",
                "Local volume requires node affinity",
            ));
        }
    }
    if count == 0 {
        causes.push(Cause::required("spec", "must specify a volume type"));
    }
    let host = s(spec, "/hostPath/path");
    if !host.is_empty() && clean(host) == "/" && policy == "Recycle" {
        causes.push(Cause::forbidden(
            "spec.persistentVolumeReclaimPolicy",
            "may not be 'recycle' for a hostPath mount of '/'",
        ));
    }
    classes_and_mode(spec, "spec", &mut causes);
    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&null);
        let source = |sp: &Value| -> Vec<(&str, Value)> {
            PV_SOURCES
                .iter()
                .filter_map(|(f, _)| {
                    let mut v = sp.get(*f).filter(|v| !v.is_null())?.clone();
                    // a CSI volume may gain a controllerExpandSecretRef once
                    if *f == "csi"
                        && sp.pointer("/csi/controllerExpandSecretRef").is_some()
                        && old_spec.pointer("/csi/controllerExpandSecretRef").is_none()
                    {
                        if let Some(m) = v.as_object_mut() {
                            m.remove("controllerExpandSecretRef");
                        }
                    }
                    Some((*f, v))
                })
                .collect()
        };
        if !crate::podupdate::semantic_eq(&source(spec), &source(old_spec)) {
            causes.push(Cause::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        // validatePvNodeAffinity: once set, the node affinity stays
        let old_affinity = old_spec.get("nodeAffinity").filter(|v| !v.is_null());
        if old_affinity.is_some()
            && !crate::podupdate::semantic_eq(&old_affinity, &spec.get("nodeAffinity"))
        {
            causes.push(Cause::invalid(
                "nodeAffinity",
                spec.get("nodeAffinity")
                    .map(Value::to_string)
                    .unwrap_or_default(),
                "field is immutable",
            ));
        }
        if spec.get("volumeAttributesClassName") != old_spec.get("volumeAttributesClassName") {
            causes.push(Cause::forbidden(
                "spec.volumeAttributesClassName",
                "update is forbidden when the VolumeAttributesClass feature gate is disabled",
            ));
        }
        if spec.get("volumeMode") != old_spec.get("volumeMode") {
            causes.push(Cause::invalid(
                "volumeMode",
                format!("\"{}\"", s(spec, "/volumeMode")),
                "field is immutable",
            ));
        }
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

    fn volume(spec: Value) -> Value {
        json!({"metadata": {"name": "pv1"}, "spec": spec})
    }

    #[test]
    fn volumes() {
        let good = volume(
            json!({"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "5Gi"},
            "hostPath": {"path": "/srv/data", "type": ""}, "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}),
        );
        assert!(validate_volume(&good, None).is_empty());
        let f = fields(&validate_volume(&volume(json!({})), None));
        assert_eq!(
            f,
            [
                "spec.accessModes:  ",
                "spec.capacity:  ",
                "spec.capacity: map[] supported values: \"storage\"",
                "spec:  must specify a volume type"
            ]
        );
        let bad = volume(
            json!({"accessModes": ["ReadWriteMany"], "capacity": {"storage": "0", "cpu": "1"},
            "persistentVolumeReclaimPolicy": "Keep", "hostPath": {"path": "/a/../b"}, "nfs": {"server": "s", "path": "x"},
            "local": {"path": "/mnt"}}),
        );
        let f = fields(&validate_volume(&bad, None));
        assert_eq!(
            f[0],
            "spec.capacity: map[cpu:1 storage:0] supported values: \"storage\""
        );
        assert!(
            f.contains(&"spec.capacity[storage]: \"0\" must be greater than zero".to_string()),
            "{f:?}"
        );
        assert!(f.contains(&"spec.persistentVolumeReclaimPolicy: \"Keep\" supported values: \"Delete\", \"Recycle\", \"Retain\"".to_string()), "{f:?}");
        assert!(
            f.contains(&"spec.hostPath.path: \"/a/../b\" must not contain '..'".to_string()),
            "{f:?}"
        );
        assert!(
            f.contains(&"spec.nfs:  may not specify more than 1 volume type".to_string()),
            "{f:?}"
        );
        assert!(
            f.contains(&"spec.local:  may not specify more than 1 volume type".to_string()),
            "{f:?}"
        );
        let local = volume(
            json!({"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "local": {"path": "/mnt/disk"}}),
        );
        assert_eq!(
            fields(&validate_volume(&local, None)),
            ["spec.nodeAffinity:  Local volume requires node affinity"]
        );
        // the source and the mode are immutable; the reclaim policy is not
        let mut other = good.clone();
        other["spec"]["hostPath"]["path"] = json!("/srv/other");
        other["spec"]["volumeMode"] = json!("Block");
        other["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
        assert_eq!(
            fields(&validate_volume(&other, Some(&good))),
            [
                "spec.persistentvolumesource:  spec.persistentvolumesource is immutable after creation",
                "volumeMode: \"Block\" field is immutable"
            ]
        );
        // a node affinity without its required terms; an NFS export without a path; the root
        // host path spelled another way still may not be recycled
        let odd = volume(
            json!({"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/srv/./.."}, "persistentVolumeReclaimPolicy": "Recycle", "nodeAffinity": {}}),
        );
        assert_eq!(
            fields(&validate_volume(&odd, None)),
            [
                "spec.nodeAffinity.required:  must specify required node constraints",
                "spec.hostPath.path: \"/srv/./..\" must not contain '..'",
                "spec.persistentVolumeReclaimPolicy:  may not be 'recycle' for a hostPath mount of '/'"
            ]
        );
        let nfs = volume(
            json!({"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "nfs": {"server": "s"}}),
        );
        assert_eq!(
            fields(&validate_volume(&nfs, None)),
            [
                "spec.nfs.path:  ",
                "spec.nfs.path: \"\" must be an absolute path"
            ]
        );
        assert_eq!(clean("/a/./b/../.."), "/");
        assert_eq!(clean("a/../../b"), "../b");
        // a node affinity, once set, stays
        let mut pinned = good.clone();
        pinned["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}});
        let mut moved = pinned.clone();
        moved["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchFields"][0]
            ["values"] = json!(["n2"]);
        let f = fields(&validate_volume(&moved, Some(&pinned)));
        assert!(
            f.len() == 1
                && f[0].starts_with("nodeAffinity: ")
                && f[0].ends_with("field is immutable"),
            "{f:?}"
        );
        assert!(validate_volume(&pinned, Some(&good)).is_empty());
        let mut policy = good.clone();
        policy["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
        assert!(validate_volume(&policy, Some(&good)).is_empty());
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
        // a bound claim of 1Gi capacity asked to grow to 4Gi may go back to 2Gi, not to 1Gi
        let mut asked = b_old.clone();
        asked["spec"]["resources"]["requests"]["storage"] = json!("4Gi");
        asked["status"]["capacity"] = json!({"storage": "1Gi"});
        let mut back = asked.clone();
        back["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(validate_claim(&back, Some(&asked)).is_empty());
        let mut shrink = asked.clone();
        shrink["spec"]["resources"]["requests"]["storage"] = json!("1Gi");
        assert_eq!(
            fields(&validate_claim(&shrink, Some(&asked))),
            ["spec.resources.requests.storage:  field can not be less than status.capacity"]
        );
        // a class may be set where there was none, not changed once set
        let mut class = old.clone();
        class["spec"]["storageClassName"] = json!("fast");
        assert!(validate_claim(&class, Some(&old)).is_empty());
        let mut other = class.clone();
        other["spec"]["storageClassName"] = json!("slow");
        assert_eq!(validate_claim(&other, Some(&class)).len(), 1);
        // the beta annotation's class may move to the field, the annotation going with it
        let mut annotated = old.clone();
        annotated["metadata"]["annotations"] =
            json!({"volume.beta.kubernetes.io/storage-class": "gold"});
        let mut moved = old.clone();
        moved["spec"]["storageClassName"] = json!("gold");
        assert!(validate_claim(&moved, Some(&annotated)).is_empty());
        let mut changed = annotated.clone();
        changed["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"] =
            json!("tin");
        assert_eq!(
            fields(&validate_claim(&changed, Some(&annotated))),
            ["metadata.annotations.volume.beta.kubernetes.io/storage-class: \"tin\" field is immutable"]
        );
        // the volume attributes class (feature off) may not change
        let mut vac = old.clone();
        vac["spec"]["volumeAttributesClassName"] = json!("gold");
        assert_eq!(
            fields(&validate_claim(&vac, Some(&old))),
            ["spec.volumeAttributesClassName:  update is forbidden when the VolumeAttributesClass feature gate is disabled"]
        );
        let mut dropped = vac.clone();
        drop_disabled_fields(&mut dropped, Some(&old));
        assert!(dropped["spec"].get("volumeAttributesClassName").is_none());
        let mut kept = vac.clone();
        drop_disabled_fields(&mut kept, Some(&vac));
        assert_eq!(kept["spec"]["volumeAttributesClassName"], "gold");
        // other fields stay
        let mut modes = old.clone();
        modes["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(validate_claim(&modes, Some(&old)).len(), 1);
    }
}
