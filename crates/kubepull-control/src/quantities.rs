//! The checks of a pod spec's resource quantities, with upstream's messages
//! (pkg/apis/core/validation/validation.go): `ValidateResourceRequirements` (each quantity
//! non-negative, `ValidateResourceQuantityValue` / `ValidateNonnegativeQuantity`; a request at
//! most its limit, equal to it for a resource that cannot be overcommitted), `validateOverhead`,
//! an emptyDir's `sizeLimit`, and `validateContainerResourceFieldSelector` with
//! `validateContainerResourceDivisor`'s fixed divisors. Text that is not a quantity is refused
//! at decode by [`refuse_unparsable`], as Go's `Quantity.UnmarshalJSON` refuses it. A quantity is shown as it was written (Go
//! shows `Quantity.String()`, its canonical spelling).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kubepull_core::qos::{Quantity, QuantityFormat};

use crate::errors::Cause;

/// `resource.ErrFormatWrong` (k8s.io/apimachinery `pkg/api/resource/quantity.go`), the
/// decoder's error for quantity text that does not parse.
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// The decoder's refusal of an object whose quantity text does not parse
/// (`Quantity.UnmarshalJSON` → `ErrFormatWrong`), at the quantity fields of the served kinds
/// that have them: a pod's (or a workload's pod template's) resource limits and requests of the
/// containers and the pod, its overhead, an emptyDir's `sizeLimit`, a generic ephemeral
/// volume's claim resources and the `resourceFieldRef` divisors; a Node's `status.capacity` and
/// `status.allocatable`. (ResourceQuotas, LimitRanges and PersistentVolumeClaims are not
/// served.) Values that are not strings are left to the type check.
pub fn refuse_unparsable(
    r: &crate::resources::Resource,
    obj: &serde_json::Value,
) -> Option<&'static str> {
    use serde_json::Value;
    let texts = if (r.group, r.kind) == ("", "Node") {
        // `NodeStatus.Capacity` and `NodeStatus.Allocatable` (`ResourceList`)
        ["/status/capacity", "/status/allocatable"]
            .into_iter()
            .filter_map(|p| obj.pointer(p).and_then(Value::as_object))
            .flat_map(|m| m.values())
            .collect()
    } else {
        pod_spec_quantities(r, obj)?
    };
    texts
        .into_iter()
        .filter_map(Value::as_str)
        .any(|t| Quantity::parse(t).is_none())
        .then_some(FORMAT_WRONG)
}

/// The quantity values of a Pod's or pod template's spec (see [`refuse_unparsable`]).
fn pod_spec_quantities<'a>(
    r: &crate::resources::Resource,
    obj: &'a serde_json::Value,
) -> Option<Vec<&'a serde_json::Value>> {
    use serde_json::Value;
    let spec = obj.pointer(&format!(
        "{}/spec",
        crate::admission::pod_template_pointer(r)?
    ))?;
    fn map<'a>(v: Option<&'a Value>, out: &mut Vec<&'a Value>) {
        if let Some(m) = v.and_then(Value::as_object) {
            out.extend(m.values());
        }
    }
    fn requirements<'a>(v: Option<&'a Value>, out: &mut Vec<&'a Value>) {
        for k in ["limits", "requests"] {
            map(v.and_then(|v| v.get(k)), out);
        }
    }
    fn divisors<'a>(items: Option<&'a Value>, out: &mut Vec<&'a Value>) {
        for i in items.and_then(Value::as_array).into_iter().flatten() {
            out.extend(i.pointer("/resourceFieldRef/divisor"));
        }
    }
    let mut texts: Vec<&Value> = vec![];
    map(spec.get("overhead"), &mut texts);
    requirements(spec.get("resources"), &mut texts);
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            requirements(c.get("resources"), &mut texts);
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                texts.extend(e.pointer("/valueFrom/resourceFieldRef/divisor"));
            }
        }
    }
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        texts.extend(v.pointer("/emptyDir/sizeLimit"));
        requirements(
            v.pointer("/ephemeral/volumeClaimTemplate/spec/resources"),
            &mut texts,
        );
        divisors(v.pointer("/downwardAPI/items"), &mut texts);
        for s in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            divisors(s.pointer("/downwardAPI/items"), &mut texts);
        }
    }
    Some(texts)
}

/// `isNegativeErrorMsg` (k8s.io/apimachinery `pkg/api/validation`).
const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// `helper.IsOvercommitAllowed`: a native resource (no `/`, or a `kubernetes.io/` prefix) that
/// is not huge pages.
fn overcommit_allowed(name: &str) -> bool {
    (!name.contains('/') || name.contains("kubernetes.io/")) && !name.starts_with("hugepages-")
}

/// The quantity a text holds, shown as written.
fn parse(q: &ApiQuantity) -> Option<Quantity> {
    Quantity::parse(&q.0)
}

fn shown(q: &ApiQuantity) -> String {
    format!("{:?}", q.0.trim())
}

/// `ValidateNonnegativeQuantity`.
fn validate_nonnegative(q: &ApiQuantity, path: &str, causes: &mut Vec<Cause>) {
    if parse(q).is_some_and(|v| v.sign() < 0) {
        causes.push(Cause::invalid(path, shown(q), IS_NEGATIVE));
    }
}

/// `ValidateResourceRequirements` of a container's `resources` at `path`: the limits', then
/// the requests' quantities non-negative, each request at most its limit (equal to it, and the
/// limit set, for a resource that cannot be overcommitted).
pub(crate) fn validate_requirements(
    limits: Option<&BTreeMap<String, ApiQuantity>>,
    requests: Option<&BTreeMap<String, ApiQuantity>>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    for (name, q) in limits.into_iter().flatten() {
        validate_nonnegative(q, &format!("{lim_path}[{name}]"), causes);
    }
    for (name, q) in requests.into_iter().flatten() {
        validate_nonnegative(q, &format!("{req_path}[{name}]"), causes);
        match limits.and_then(|l| l.get(name)) {
            Some(limit) => {
                let (Some(req), Some(lim)) = (parse(q), parse(limit)) else {
                    continue;
                };
                if req != lim && !overcommit_allowed(name) {
                    causes.push(Cause::invalid(
                        &req_path,
                        shown(q),
                        format!("must be equal to {name} limit of {}", limit.0.trim()),
                    ));
                } else if req > lim {
                    causes.push(Cause::invalid(
                        &req_path,
                        shown(q),
                        format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.0.trim()
                        ),
                    ));
                }
            }
            None if !overcommit_allowed(name) => causes.push(Cause::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
}

/// The quantities of a pod spec at `path` (`spec`, `spec.template.spec`): every container's and
/// init container's resources and resource field references, the overhead (`validateOverhead`,
/// checked as the limits of `overhead`), and each volume's emptyDir `sizeLimit` and downward
/// API resource field references.
pub(crate) fn validate_pod_spec(spec: &core::PodSpec, path: &str, causes: &mut Vec<Cause>) {
    let init = spec.init_containers.iter().flatten();
    for (list, cs) in [
        ("containers", spec.containers.iter().collect::<Vec<_>>()),
        ("initContainers", init.collect()),
    ] {
        for (i, c) in cs.into_iter().enumerate() {
            let cp = format!("{path}.{list}[{i}]");
            if let Some(r) = &c.resources {
                validate_requirements(
                    r.limits.as_ref(),
                    r.requests.as_ref(),
                    &format!("{cp}.resources"),
                    causes,
                );
            }
            for (j, e) in c.env.iter().flatten().enumerate() {
                if let Some(fs) = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.resource_field_ref.as_ref())
                {
                    let fp = format!("{cp}.env[{j}].valueFrom.resourceFieldRef");
                    validate_resource_field_selector(fs, false, &fp, causes);
                }
            }
        }
    }
    if let Some(o) = &spec.overhead {
        validate_requirements(Some(o), None, &format!("{path}.overhead"), causes);
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        if let Some(q) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
            if parse(q).is_some_and(|q| q.sign() < 0) {
                causes.push(Cause::forbidden(
                    format!("{vp}.emptyDir.sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
        let files = |items: Option<&Vec<core::DownwardAPIVolumeFile>>, at: &str| {
            items
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, f)| {
                    let fs = f.resource_field_ref.as_ref()?;
                    Some((format!("{at}.items[{j}].resourceFieldRef"), fs.clone()))
                })
                .collect::<Vec<_>>()
        };
        let mut refs = vec![];
        if let Some(d) = &v.downward_api {
            refs.extend(files(d.items.as_ref(), &format!("{vp}.downwardAPI")));
        }
        for (k, s) in v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .enumerate()
        {
            if let Some(d) = &s.downward_api {
                let at = format!("{vp}.projected.sources[{k}].downwardAPI");
                refs.extend(files(d.items.as_ref(), &at));
            }
        }
        for (fp, fs) in refs {
            validate_resource_field_selector(&fs, true, &fp, causes);
        }
    }
}

/// `validEnvDownwardAPIResourceFieldSelectorValues` (the volumes' list is the same).
const FIELD_SELECTOR_RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `validContainerResourceDivisorForMemory` (and `…ForEphemeralStorage`): as `String()` spells
/// them, a value and the format that spells it so.
const BYTE_DIVISORS: &str = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei";

/// `validateContainerResourceFieldSelector`: a volume's reference names its container; the
/// resource is one of [`FIELD_SELECTOR_RESOURCES`] or a huge-pages one
/// (`validDownwardAPIResourceFieldSelectorPrefixes`); then the divisor
/// (`validateContainerResourceDivisor`).
fn validate_resource_field_selector(
    fs: &core::ResourceFieldSelector,
    volume: bool,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let container = fs.container_name.as_deref().unwrap_or("");
    if volume && container.is_empty() {
        causes.push(Cause::required(format!("{path}.containerName"), ""));
    } else if fs.resource.is_empty() {
        causes.push(Cause::required(format!("{path}.resource"), ""));
    } else if !FIELD_SELECTOR_RESOURCES.contains(&fs.resource.as_str())
        && !["limits.hugepages-", "requests.hugepages-"]
            .iter()
            .any(|p| fs.resource.starts_with(p))
    {
        causes.push(Cause::not_supported(
            format!("{path}.resource"),
            format!("{:?}", fs.resource),
            FIELD_SELECTOR_RESOURCES,
        ));
    }
    let Some(divisor) = fs.divisor.as_ref().and_then(parse) else {
        return;
    };
    // an unset (zero) divisor is 1
    if divisor.sign() == 0 {
        return;
    }
    let r = fs.resource.as_str();
    let (allowed, what) = match r {
        "limits.cpu" | "requests.cpu" => (
            cpu_divisor(&divisor),
            "1m and 1 are supported with the cpu resource".to_string(),
        ),
        "limits.memory" | "requests.memory" => (
            byte_divisor(&divisor),
            format!("{BYTE_DIVISORS} are supported with the memory resource"),
        ),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" => (
            byte_divisor(&divisor),
            format!("{BYTE_DIVISORS} are supported with the local ephemeral storage resource"),
        ),
        _ => return,
    };
    if !allowed {
        causes.push(Cause::invalid(
            format!("{path}.divisor"),
            format!("{r:?}"),
            format!("only divisor's values {what}"),
        ));
    }
}

/// Whether `Quantity.String()` of a positive divisor is `1` or `1m`: the value 1 in any format
/// (`1e0` is spelled `1`, a binary value below 1024 decimally), 1m in a decimal or binary one
/// (an exponent spells it `1e-3`).
fn cpu_divisor(d: &Quantity) -> bool {
    *d == one(0) || (*d == one(-3) && d.format() != QuantityFormat::DecimalExponent)
}

/// Whether `Quantity.String()` of a positive divisor is one of [`BYTE_DIVISORS`]: 1 in any
/// format; 10^3k in a decimal-SI one (a binary value is spelled decimally below 1024 only, so
/// `1k` too); 2^10k in a binary one.
fn byte_divisor(d: &Quantity) -> bool {
    if *d == one(0) {
        return true;
    }
    let decimal = (1..=6).any(|k| *d == one(3 * k));
    let binary = (1..=6).any(|k| {
        Some(d.clone())
            == Quantity::parse(&format!("1{}", ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k - 1]))
    });
    match d.format() {
        QuantityFormat::DecimalSI => decimal,
        QuantityFormat::BinarySI => binary || *d == one(3),
        QuantityFormat::DecimalExponent => false,
    }
}

/// 10^`exp`.
fn one(exp: i64) -> Quantity {
    Quantity::parse(&format!("1e{exp}")).expect("a quantity")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: serde_json::Value) -> Vec<String> {
        let spec: core::PodSpec = serde_json::from_value(spec).unwrap();
        let mut out = vec![];
        validate_pod_spec(&spec, "spec", &mut out);
        out.iter().map(Cause::text).collect()
    }

    fn container(resources: serde_json::Value) -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "i", "resources": resources}]})
    }

    #[test]
    fn negative_quantities_and_requests_over_limits() {
        assert!(
            causes(container(json!({"limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "512Mi"}})))
            .is_empty()
        );
        assert_eq!(
            causes(container(json!({"limits": {"memory": "-2e40"}}))),
            [
                r#"spec.containers[0].resources.limits[memory]: Invalid value: "-2e40": must be greater than or equal to 0"#
            ]
        );
        assert_eq!(
            causes(container(json!({"requests": {"cpu": "-1m"}}))),
            [
                r#"spec.containers[0].resources.requests[cpu]: Invalid value: "-1m": must be greater than or equal to 0"#
            ]
        );
        assert_eq!(
            causes(container(
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1001m"}})
            )),
            [
                r#"spec.containers[0].resources.requests: Invalid value: "1001m": must be less than or equal to cpu limit of 1"#
            ]
        );
        // exact comparison past any machine integer
        assert_eq!(
            causes(container(
                json!({"limits": {"memory": "1e30"}, "requests": {"memory": "2e30"}})
            ))
            .len(),
            1
        );
        // an extended resource cannot be overcommitted
        assert_eq!(
            causes(container(
                json!({"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}})
            )),
            [
                r#"spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/gpu limit of 2"#
            ]
        );
        assert_eq!(
            causes(container(json!({"requests": {"example.com/gpu": "1"}}))),
            ["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"]
        );
        // init containers and the overhead too
        assert_eq!(
            causes(json!({"containers": [{"name": "c", "image": "i"}],
                "initContainers": [{"name": "i", "image": "i", "resources": {"limits": {"cpu": "-1"}}}],
                "overhead": {"memory": "-1"}})),
            [
                r#"spec.initContainers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0"#,
                r#"spec.overhead.limits[memory]: Invalid value: "-1": must be greater than or equal to 0"#,
            ]
        );
        assert_eq!(
            causes(json!({"containers": [{"name": "c", "image": "i"}],
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "-1Mi"}}, {"name": "w", "emptyDir": {"sizeLimit": "0"}}]})),
            ["spec.volumes[0].emptyDir.sizeLimit: Forbidden: SizeLimit field must be a valid resource quantity"]
        );
    }

    /// The checks run for a Pod's and a template's spec alike.
    #[test]
    fn pod_and_template_specs_are_checked() {
        let spec: core::PodSpec = serde_json::from_value(json!({
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "c", "image": "i",
                "resources": {"limits": {"memory": "-2e40"}},
                "env": [{"name": "E", "valueFrom": {"resourceFieldRef":
                    {"resource": "limits.memory", "divisor": "-1"}}}]}]}))
        .unwrap();
        for template in [false, true] {
            let mut out = vec![];
            if template {
                crate::admission::validate_template_spec(&spec, "spec.template.spec", &mut out);
            } else {
                crate::admission::validate_pod_spec(&spec, "spec", &mut out);
            }
            let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
            let p = if template {
                "spec.template.spec"
            } else {
                "spec"
            };
            assert_eq!(
                fields,
                [
                    format!("{p}.containers[0].resources.limits[memory]"),
                    format!("{p}.containers[0].env[0].valueFrom.resourceFieldRef.divisor"),
                ]
            );
        }
    }

    #[test]
    fn resource_field_selectors() {
        let env = |resource: &str, divisor: &str| {
            json!({"containers": [{"name": "c", "image": "i", "env": [{"name": "E",
                "valueFrom": {"resourceFieldRef": {"resource": resource, "divisor": divisor}}}]}]})
        };
        for (r, d) in [
            ("limits.cpu", "1m"),
            ("limits.cpu", "1"),
            ("limits.cpu", "1000m"),
            ("requests.cpu", "0"),
            ("limits.memory", "1Mi"),
            ("limits.memory", "1k"),
            ("limits.memory", "1000"),
            ("limits.memory", "1E"),
            ("requests.ephemeral-storage", "1Gi"),
            ("limits.memory", "1048576Ki"),
            ("limits.hugepages-2Mi", "-1"),
        ] {
            assert!(causes(env(r, d)).is_empty(), "{r} {d}");
        }
        let cpu = r#"spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: Invalid value: "limits.cpu": only divisor's values 1m and 1 are supported with the cpu resource"#;
        for d in ["-1", "100m", "1e-3", "2", "1k"] {
            assert_eq!(causes(env("limits.cpu", d)), [cpu], "{d}");
        }
        for d in ["-1", "1024", "1e3", "2Ki", "1000000Ki", "1Ki0"] {
            let c = causes(env("limits.memory", d));
            assert_eq!(c.len(), usize::from(d != "1Ki0"), "{d}: {c:?}");
        }
        assert_eq!(
            causes(env("limits.memory", "1024")),
            [
                r#"spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: Invalid value: "limits.memory": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource"#
            ]
        );
        assert_eq!(
            causes(env("limits.gpu", "1")),
            [
                r#"spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu": supported values: "limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu", "requests.ephemeral-storage", "requests.memory""#
            ]
        );
        // a volume's reference names its container
        let vol = |fs: serde_json::Value| {
            json!({"containers": [{"name": "c", "image": "i"}], "volumes": [
                {"name": "d", "downwardAPI": {"items": [{"path": "p", "resourceFieldRef": fs.clone()}]}},
                {"name": "p", "projected": {"sources": [{"downwardAPI": {"items": [{"path": "p", "resourceFieldRef": fs}]}}]}}]})
        };
        assert_eq!(
            causes(vol(json!({"resource": "limits.memory", "divisor": "-1"}))),
            [
                "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: Required value",
                r#"spec.volumes[0].downwardAPI.items[0].resourceFieldRef.divisor: Invalid value: "limits.memory": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource"#,
                "spec.volumes[1].projected.sources[0].downwardAPI.items[0].resourceFieldRef.containerName: Required value",
                r#"spec.volumes[1].projected.sources[0].downwardAPI.items[0].resourceFieldRef.divisor: Invalid value: "limits.memory": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource"#,
            ]
        );
        assert!(causes(vol(
            json!({"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"})
        ))
        .is_empty());
    }
}
