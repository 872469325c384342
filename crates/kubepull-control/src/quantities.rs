//! The checks of a pod spec's resource quantities, with upstream's messages
//! (pkg/apis/core/validation/validation.go): `ValidateResourceRequirements` (each quantity
//! non-negative, `ValidateResourceQuantityValue` / `ValidateNonnegativeQuantity`; a request at
//! most its limit, equal to it for a resource that cannot be overcommitted), `validateOverhead`,
//! an emptyDir's `sizeLimit`, and `validateContainerResourceFieldSelector` with
//! `validateContainerResourceDivisor`'s fixed divisors. Text that is not a quantity is refused
//! at decode by [`refuse_unparsable`], as Go's `Quantity.UnmarshalJSON` refuses it. A quantity
//! in a message is spelled as Go's `Quantity.String()` spells it ([`go_string`]). The resource
//! names are checked as `validateContainerResourceName` checks them, an integer resource
//! (an extended one) must be whole, huge pages must divide by their page size and come with
//! cpu or memory.

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
/// `status.allocatable`; a PersistentVolumeClaim's (and a StatefulSet's claim templates')
/// requests, limits and status quantities; a PersistentVolume's capacity; a ResourceQuota's
/// hard limits and usage; a LimitRange's limits, defaults and ratios.
/// Values that are not strings are left to the type check.
pub fn refuse_unparsable<'a>(
    r: &crate::resources::Resource,
    obj: &'a serde_json::Value,
) -> Option<&'static str> {
    use serde_json::Value;
    let lists = |o: &'a Value, ps: &[&str]| -> Vec<&'a Value> {
        ps.iter()
            .filter_map(|p| o.pointer(p).and_then(Value::as_object))
            .flat_map(|m| m.values())
            .collect()
    };
    // a claim's (or a claim template's) `ResourceList`s
    const CLAIM: &[&str] = &[
        "/spec/resources/limits",
        "/spec/resources/requests",
        "/status/capacity",
        "/status/allocatedResources",
    ];
    let texts = match (r.group, r.kind) {
        // `NodeStatus.Capacity` and `NodeStatus.Allocatable` (`ResourceList`)
        ("", "Node") => lists(obj, &["/status/capacity", "/status/allocatable"]),
        ("", "PersistentVolumeClaim") => lists(obj, CLAIM),
        ("", "PersistentVolume") => lists(obj, &["/spec/capacity"]),
        ("", "ResourceQuota") => lists(obj, &["/spec/hard", "/status/hard", "/status/used"]),
        ("", "LimitRange") => obj
            .pointer("/spec/limits")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|l| {
                lists(
                    l,
                    &[
                        "/max",
                        "/min",
                        "/default",
                        "/defaultRequest",
                        "/maxLimitRequestRatio",
                    ],
                )
            })
            .collect(),
        _ => {
            let mut t = pod_spec_quantities(r, obj)?;
            if (r.group, r.kind) == ("apps", "StatefulSet") {
                for c in obj
                    .pointer("/spec/volumeClaimTemplates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    t.extend(lists(c, CLAIM));
                }
            }
            t
        }
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
pub(crate) const IS_NEGATIVE: &str = "must be greater than or equal to 0";
/// `isNotIntegerErrorMsg`.
const NOT_INTEGER: &str = "must be an integer";

/// `helper.IsNativeResource`: no `/`, or in the `kubernetes.io/` namespace.
pub(crate) fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `helper.IsHugePageResourceName`.
fn is_huge_pages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `helper.IsOvercommitAllowed`: a native resource that is not huge pages.
pub(crate) fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_huge_pages(name)
}

/// `helper.IsExtendedResourceName`: not native, no `requests.` prefix, and a qualified name
/// once `requests.` is put before it (the quota's name for it).
pub(crate) fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && crate::validation::is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// `helper.IsIntegerResourceName`: the object counts and the extended resources.
fn is_integer_resource(name: &str) -> bool {
    const COUNTS: &[&str] = &[
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ];
    COUNTS.contains(&name) || is_extended(name)
}

/// `helper.IsStandardResourceName` (`standardResources`, or a quota's huge-pages name).
pub(crate) fn is_standard_resource(name: &str) -> bool {
    const STANDARD: &[&str] = &[
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "storage",
        "requests.storage",
        "services.nodeports",
        "services.loadbalancers",
    ];
    STANDARD.contains(&name) || is_huge_pages(name) || name.starts_with("requests.hugepages-")
}

/// `validateContainerResourceName` (with `validateResourceName` first): a qualified name; one
/// without a `/` a standard resource, and one for containers (cpu, memory, ephemeral storage,
/// huge pages); one with a `/` outside `kubernetes.io/` an extended resource name. A
/// `ResourceName` is printed by its `String()`, unquoted.
pub(crate) fn validate_container_resource_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    let qualified = crate::validation::is_qualified_name(name);
    let unqualified = !qualified.is_empty();
    for msg in qualified {
        causes.push(Cause::invalid(path, name, msg));
    }
    if !name.contains('/') {
        if !unqualified && !is_standard_resource(name) {
            causes.push(Cause::invalid(
                path,
                name,
                "must be a standard resource type or fully qualified",
            ));
        }
        let container = ["cpu", "memory", "ephemeral-storage"].contains(&name);
        if !container && !is_huge_pages(name) {
            causes.push(Cause::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        causes.push(Cause::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// The quantity a text holds.
fn parse(q: &ApiQuantity) -> Option<Quantity> {
    Quantity::parse(&q.0)
}

/// `quantity.String()` passed as a string value: quoted.
fn shown(q: &ApiQuantity) -> String {
    format!("{:?}", go_string(&q.0))
}

/// `ValidateNonnegativeQuantity`.
fn validate_nonnegative(q: &ApiQuantity, path: &str, causes: &mut Vec<Cause>) {
    if parse(q).is_some_and(|v| v.sign() < 0) {
        causes.push(Cause::invalid(path, shown(q), IS_NEGATIVE));
    }
}

/// `ValidateResourceQuantityValue`: non-negative, and whole for an integer resource
/// (`MilliValue() % 1000`; the `Quantity` itself is the bad value, printed by `String()`
/// unquoted).
pub(crate) fn validate_quantity_value(
    name: &str,
    q: &ApiQuantity,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    validate_nonnegative(q, path, causes);
    if is_integer_resource(name) && parse(q).is_some_and(|v| v.scaled(3) % 1000 != 0) {
        causes.push(Cause::invalid(path, go_string(&q.0), NOT_INTEGER));
    }
}

/// `validateResourceQuantityHugePageValue` unless indivisible values are allowed (an update of
/// an object that has them, `AllowIndivisibleHugePagesValues`):
/// `helper.IsHugePageResourceValueDivisible` — the page size (`HugePageSizeFromResourceName`,
/// `ParseQuantity` of what follows `hugepages-`) positive and whole, the value (rounded up) a
/// multiple of it.
fn validate_huge_page_value(
    name: &str,
    q: &ApiQuantity,
    path: &str,
    allow_indivisible: bool,
    causes: &mut Vec<Cause>,
) {
    if allow_indivisible || huge_page_value_divisible(name, q) {
        return;
    }
    causes.push(Cause::invalid(
        path,
        shown(q),
        format!(
            "{} is not positive integer multiple of {name}",
            go_string(&q.0)
        ),
    ));
}

/// `helper.IsHugePageResourceValueDivisible`.
fn huge_page_value_divisible(name: &str, q: &ApiQuantity) -> bool {
    let size = name.strip_prefix("hugepages-").unwrap_or("");
    // `ParseQuantity` trims nothing
    let Some(size) = Quantity::parse(size).filter(|_| size.trim() == size) else {
        return false;
    };
    let Some(v) = parse(q) else {
        return true;
    };
    let page = size.scaled(0);
    size.sign() > 0 && size.scaled(3) % 1000 == 0 && page != 0 && v.scaled(0) % page == 0
}

/// Whether a spec's containers ask for huge pages in amounts that are not multiples of the
/// page size (`usesIndivisibleHugePagesValues`: containers of every kind, and the overhead):
/// an update of such a spec may keep them.
pub(crate) fn uses_indivisible_huge_pages(spec: &core::PodSpec) -> bool {
    let lists = |r: &core::ResourceRequirements| {
        let (l, q) = (r.limits.iter().flatten(), r.requests.iter().flatten());
        l.chain(q)
            .any(|(n, v)| is_huge_pages(n) && !huge_page_value_divisible(n, v))
    };
    let ephemeral = spec.ephemeral_containers.iter().flatten();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.resources.as_ref())
        .chain(ephemeral.filter_map(|c| c.resources.as_ref()))
        .any(lists)
        || spec
            .overhead
            .iter()
            .flatten()
            .any(|(n, v)| is_huge_pages(n) && !huge_page_value_divisible(n, v))
}

/// `GetValidationOptionsFromPodSpecAndMeta`'s `AllowIndivisibleHugePagesValues`: whether the
/// stored object an update replaces (`old`) has a pod spec at `pointer` that uses indivisible
/// huge-pages values (a create has none).
pub(crate) fn old_spec_allows_indivisible_huge_pages(
    old: Option<&serde_json::Value>,
    pointer: &str,
) -> bool {
    use serde::Deserialize as _;
    // a spec that names no huge pages needs no decoding (most updates)
    fn names_huge_pages(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .any(|(k, x)| is_huge_pages(k) || names_huge_pages(x)),
            serde_json::Value::Array(a) => a.iter().any(names_huge_pages),
            _ => false,
        }
    }
    old.and_then(|o| o.pointer(pointer))
        .filter(|s| names_huge_pages(s))
        .and_then(|s| core::PodSpec::deserialize(s).ok())
        .is_some_and(|s| uses_indivisible_huge_pages(&s))
}

/// `ValidateContainerResourceRequirements` (`validateResourceRequirements` with
/// `validateContainerResourceName`) of `resources` at `path`: each limit's name, value and
/// huge-pages value; each request's name and value, then at most its limit (equal to it, and
/// the limit set, for a resource that cannot be overcommitted), then its huge-pages value; huge
/// pages only with cpu or memory. Go walks the maps in a random order; here they are sorted.
pub(crate) fn validate_requirements(
    limits: Option<&BTreeMap<String, ApiQuantity>>,
    requests: Option<&BTreeMap<String, ApiQuantity>>,
    path: &str,
    allow_indivisible_huge_pages: bool,
    causes: &mut Vec<Cause>,
) {
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let (mut cpu_or_memory, mut huge_pages) = (false, false);
    for (name, q) in limits.into_iter().flatten() {
        let at = format!("{lim_path}[{name}]");
        validate_container_resource_name(name, &at, causes);
        validate_quantity_value(name, q, &at, causes);
        if is_huge_pages(name) {
            huge_pages = true;
            validate_huge_page_value(name, q, &at, allow_indivisible_huge_pages, causes);
        }
        cpu_or_memory |= name == "cpu" || name == "memory";
    }
    for (name, q) in requests.into_iter().flatten() {
        let at = format!("{req_path}[{name}]");
        validate_container_resource_name(name, &at, causes);
        validate_quantity_value(name, q, &at, causes);
        match limits.and_then(|l| l.get(name)) {
            Some(limit) => {
                if let (Some(req), Some(lim)) = (parse(q), parse(limit)) {
                    if req != lim && !overcommit_allowed(name) {
                        causes.push(Cause::invalid(
                            &req_path,
                            shown(q),
                            format!("must be equal to {name} limit of {}", go_string(&limit.0)),
                        ));
                    } else if req > lim {
                        causes.push(Cause::invalid(
                            &req_path,
                            shown(q),
                            format!(
                                "must be less than or equal to {name} limit of {}",
                                go_string(&limit.0)
                            ),
                        ));
                    }
                }
            }
            None if !overcommit_allowed(name) => causes.push(Cause::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
        if is_huge_pages(name) {
            huge_pages = true;
            validate_huge_page_value(name, q, &at, allow_indivisible_huge_pages, causes);
        }
        cpu_or_memory |= name == "cpu" || name == "memory";
    }
    if huge_pages && !cpu_or_memory {
        causes.push(Cause::forbidden(path, "HugePages require cpu or memory"));
    }
}

/// The quantities of a pod spec at `path` (`spec`, `spec.template.spec`): every container's and
/// init container's resources and resource field references, the overhead (`validateOverhead`,
/// checked as the limits of `overhead`), and each volume's emptyDir `sizeLimit` and downward
/// API resource field references.
pub(crate) fn validate_pod_spec(
    spec: &core::PodSpec,
    path: &str,
    allow_indivisible_huge_pages: bool,
    causes: &mut Vec<Cause>,
) {
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
                    allow_indivisible_huge_pages,
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
        let at = format!("{path}.overhead");
        validate_requirements(Some(o), None, &at, allow_indivisible_huge_pages, causes);
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

/// `Quantity.String()` of the quantity a JSON text decodes to (`UnmarshalJSON` trims it, then
/// `ParseQuantity`; k8s.io/apimachinery `pkg/api/resource/quantity.go`): the trimmed text when
/// `ParseQuantity`'s fast path keeps it as the quantity's spelling ([`parse_keeps_text`]),
/// else the canonical form `CanonicalizeBytes` makes ([`canonical`]). A text that is not a
/// quantity (the decoder refuses those first) is returned trimmed.
pub(crate) fn go_string(text: &str) -> String {
    let s = text.trim();
    match Quantity::parse(s) {
        Some(_) if parse_keeps_text(s) => s.to_string(),
        Some(q) => canonical(&q),
        None => s.to_string(),
    }
}

/// A resource list's quantity as kube-apiserver stores and returns it: `SetDefaults_ResourceList`
/// rounds it up to milli-units (`RoundUp(-3)`, which forgets the spelling when it changes the
/// value: `100u` → `1m`, `1.0001` → `1001m`), then `MarshalJSON` writes `String()` ([`go_string`]:
/// `0.5` → `500m`, `1024Mi` → `1Gi`, `1500m` kept). A text that is not a quantity is kept (the
/// decoder refuses it first).
pub(crate) fn go_resource_list_string(text: &str) -> String {
    let s = text.trim();
    match Quantity::parse(s) {
        Some(q) => {
            let r = q.round_up(-3);
            if r != q {
                canonical(&r)
            } else {
                go_string(s)
            }
        }
        None => text.to_string(),
    }
}

/// Whether `ParseQuantity` keeps `s` as the spelling `String()` returns ("if the number is in
/// canonical form, reuse the string"): on its int64 fast path (at most 18 digits, a scale of
/// at least nano; for a binary suffix a whole number within its precision), a decimal or
/// exponent one whose scale is a multiple of 3, whose digits (`parseQuantityString` strips
/// leading zeros) do not end in `000` nor start with `0`; a binary one whose number is not a
/// multiple of 8. So `100m`, `1.500`, `+1`, `1E3`, `5Ki` are kept as written.
fn parse_keeps_text(s: &str) -> bool {
    let b = s.as_bytes();
    let mut pos = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    while b.get(pos) == Some(&b'0') {
        pos += 1;
    }
    if pos == b.len() {
        // zero: the digits are "0"
        return false;
    }
    let digits_to =
        |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let num_end = digits_to(pos);
    let num = if num_end == pos {
        "0"
    } else {
        &s[pos..num_end]
    };
    let (denom, suffix) = if b.get(num_end) == Some(&b'.') {
        let end = digits_to(num_end + 1);
        (&s[num_end + 1..end], &s[end..])
    } else {
        ("", &s[num_end..])
    };
    let (binary, exponent): (bool, i64) = match suffix {
        "" => (false, 0),
        "n" => (false, -9),
        "u" => (false, -6),
        "m" => (false, -3),
        "k" => (false, 3),
        "M" => (false, 6),
        "G" => (false, 9),
        "T" => (false, 12),
        "P" => (false, 15),
        "E" => (false, 18),
        "Ki" => (true, 10),
        "Mi" => (true, 20),
        "Gi" => (true, 30),
        "Ti" => (true, 40),
        "Pi" => (true, 50),
        "Ei" => (true, 60),
        e if e.len() > 1 && e.starts_with(['e', 'E']) => match e[1..].parse::<i64>() {
            Ok(x) => (false, i64::from(x as i32)),
            Err(_) => return false,
        },
        _ => return false,
    };
    let shifted = format!("{num}{denom}");
    if binary {
        // `precision = 15 - len(num) - int32(float32(exponent)*3/10) - 1`
        let precision = 15 - num.len() as i64 - (exponent as f32 * 3.0 / 10.0) as i64 - 1;
        if !denom.is_empty() || precision < 0 {
            return false;
        }
        shifted
            .parse::<i64>()
            .ok()
            .and_then(|v| v.checked_mul(1 << exponent).map(|_| v))
            .is_some_and(|v| v & 7 != 0)
    } else {
        let scale = exponent - denom.len() as i64;
        (num.len() + denom.len()) <= 18
            && scale >= -9
            && scale % 3 == 0
            && !shifted.ends_with("000")
            && !shifted.starts_with('0')
    }
}

/// `Quantity.CanonicalizeBytes`: 0 is `0`; a binary-suffixed value of at least 1024 in size
/// that is whole is written in the largest binary unit that divides it (`1024Mi` → `1Gi`,
/// `AsCanonicalBase1024Bytes`), any other value in decimal units: its digits, the exponent
/// lowered to a multiple of 3 (`AsCanonicalBytes`), and that exponent's SI suffix — none when
/// SI has no suffix for it, as `constructBytes` gives none — or `e<exp>` for an exponent-written
/// value (`1000m` → `1`, `0.5` → `500m`, `1e3` → `1e3`, `1.5e3` → `1500`).
pub(crate) fn canonical(q: &Quantity) -> String {
    if q.sign() == 0 {
        return "0".into();
    }
    let whole = q.round_up(0) == *q;
    if q.format() == QuantityFormat::BinarySI && whole && q.scaled(0).abs() >= 1024 {
        // a binary value is at most MaxInt64 in size, so exact here
        let mut v = q.scaled(0);
        let mut units = 0;
        while v.abs() >= 1024 && v % 1024 == 0 {
            v /= 1024;
            units += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
            .get(units)
            .copied()
            .unwrap_or("");
        return format!("{v}{suffix}");
    }
    // `key()` is `[-]<digits>e<exp>` with no trailing zeros in the digits
    let key = q.key();
    let (digits, exp) = key.split_once('e').unwrap_or((&key, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let pad = exp.rem_euclid(3);
    let exp = exp - pad;
    let number = format!("{digits}{}", "0".repeat(pad as usize));
    let suffix = if q.format() == QuantityFormat::DecimalExponent {
        if exp == 0 {
            String::new()
        } else {
            format!("e{exp}")
        }
    } else {
        match exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        }
        .to_string()
    };
    format!("{number}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: serde_json::Value) -> Vec<String> {
        let spec: core::PodSpec = serde_json::from_value(spec).unwrap();
        let mut out = vec![];
        validate_pod_spec(&spec, "spec", false, &mut out);
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
                r#"spec.containers[0].resources.limits[memory]: Invalid value: "-20e39": must be greater than or equal to 0"#
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

    /// `Quantity.String()` after `UnmarshalJSON`: the canonical form, or the text itself where
    /// `ParseQuantity` keeps it (expectations from apimachinery's quantity_test.go and Go runs).
    #[test]
    fn quantities_are_spelled_as_go_spells_them() {
        for (text, go) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            (".5", "500m"),
            ("1.5", "1500m"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("8Ki", "8Ki"),
            ("2048", "2048"),
            ("1000", "1k"),
            ("1000k", "1M"),
            ("1200", "1200"),
            ("12000m", "12"),
            ("100m", "100m"),
            ("1001m", "1001m"),
            ("1n", "1n"),
            ("0.1n", "1n"),
            ("1.0001", "1000100u"),
            ("1e3", "1e3"),
            ("1E3", "1E3"),
            ("1.5e3", "1500"),
            ("15e2", "1500"),
            ("1e-3", "1e-3"),
            ("-2e40", "-20e39"),
            ("-1000m", "-1"),
            ("+1", "+1"),
            ("+1000m", "1"),
            ("01", "01"),
            ("1.500", "1.500"),
            ("1.5000", "1500m"),
            ("0", "0"),
            ("0Mi", "0"),
            ("-0.0", "0"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("1.1Mi", "1153433600m"),
            ("512Ki", "512Ki"),
            ("1Ki", "1Ki"),
            ("01Ki", "01Ki"),
            ("1000Ki", "1000Ki"),
            ("16Ei", "9223372036854775807"),
            ("  2Gi ", "2Gi"),
            ("1000E", "1"),
        ] {
            assert_eq!(go_string(text), go, "{text}");
        }
    }

    #[test]
    fn resource_names_integers_and_huge_pages() {
        let r = |res: serde_json::Value| causes(container(res));
        // names: standard, for containers, extended
        assert_eq!(
            r(json!({"limits": {"foo": "1", "pods": "1", "example.com/a_": "1", "kubernetes.io/x": "1"}})),
            [
                "spec.containers[0].resources.limits[example.com/a_]: Invalid value: example.com/a_: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.containers[0].resources.limits[example.com/a_]: Invalid value: example.com/a_: doesn't follow extended resource name standard",
                "spec.containers[0].resources.limits[foo]: Invalid value: foo: must be a standard resource type or fully qualified",
                "spec.containers[0].resources.limits[foo]: Invalid value: foo: must be a standard resource for containers",
                "spec.containers[0].resources.limits[pods]: Invalid value: pods: must be a standard resource for containers",
            ]
        );
        // an extended resource is whole, and its request equals its limit
        assert_eq!(
            r(json!({"limits": {"example.com/foo": "1500m", "cpu": "1"},
                "requests": {"example.com/foo": "500m", "cpu": "2000m"}})),
            [
                "spec.containers[0].resources.limits[example.com/foo]: Invalid value: 1500m: must be an integer",
                r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#,
                "spec.containers[0].resources.requests[example.com/foo]: Invalid value: 500m: must be an integer",
                r#"spec.containers[0].resources.requests: Invalid value: "500m": must be equal to example.com/foo limit of 1500m"#,
            ]
        );
        assert!(r(
            json!({"limits": {"example.com/foo": "2000m"}, "requests": {"example.com/foo": "2"}})
        )
        .is_empty());
        // whole beyond int64 milli-units too (Go's int64 path reads 0 there, also whole)
        assert!(r(
            json!({"limits": {"example.com/foo": "10P"}, "requests": {"example.com/foo": "10P"}})
        )
        .is_empty());
        assert_eq!(
            r(json!({"limits": {"example.com/foo": "1"}, "requests": {"example.com/foo": "1000m", "example.com/bar": "1"}})),
            ["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"]
        );
        // huge pages: multiples of the page size, and with cpu or memory
        assert_eq!(
            r(json!({"limits": {"hugepages-2Mi": "3Mi"}, "requests": {"hugepages-2Mi": "3Mi"}})),
            [
                r#"spec.containers[0].resources.limits[hugepages-2Mi]: Invalid value: "3Mi": 3Mi is not positive integer multiple of hugepages-2Mi"#,
                r#"spec.containers[0].resources.requests[hugepages-2Mi]: Invalid value: "3Mi": 3Mi is not positive integer multiple of hugepages-2Mi"#,
                "spec.containers[0].resources: Forbidden: HugePages require cpu or memory",
            ]
        );
        assert!(r(json!({"limits": {"hugepages-2Mi": "4Mi", "memory": "1Gi"}})).is_empty());
        assert_eq!(
            r(json!({"limits": {"hugepages-x": "1", "cpu": "1"}})),
            [
                r#"spec.containers[0].resources.limits[hugepages-x]: Invalid value: "1": 1 is not positive integer multiple of hugepages-x"#
            ]
        );
        // an update of a spec that has indivisible values may keep them
        let spec: core::PodSpec = serde_json::from_value(container(
            json!({"limits": {"hugepages-2Mi": "3Mi", "memory": "1Gi"}}),
        ))
        .unwrap();
        assert!(uses_indivisible_huge_pages(&spec));
        let mut out = vec![];
        validate_pod_spec(&spec, "spec", true, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let old = json!({"spec": container(json!({"limits": {"hugepages-2Mi": "3Mi"}}))});
        assert!(old_spec_allows_indivisible_huge_pages(Some(&old), "/spec"));
        assert!(!old_spec_allows_indivisible_huge_pages(None, "/spec"));
        // indivisible values in the overhead count too; a spec without huge pages does not
        let overhead = json!({"spec": {"containers": [{"name": "c", "image": "i"}],
            "overhead": {"hugepages-2Mi": "3Mi"}}});
        assert!(old_spec_allows_indivisible_huge_pages(
            Some(&overhead),
            "/spec"
        ));
        let plain = json!({"spec": container(json!({"limits": {"memory": "3Mi"}}))});
        assert!(!old_spec_allows_indivisible_huge_pages(
            Some(&plain),
            "/spec"
        ));
        // the overhead is checked as container limits are
        assert_eq!(
            causes(json!({"containers": [{"name": "c", "image": "i"}], "overhead": {"pods": "1"}})),
            ["spec.overhead.limits[pods]: Invalid value: pods: must be a standard resource for containers"]
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
                crate::admission::validate_template_spec(
                    &spec,
                    None,
                    "spec.template.spec",
                    false,
                    &mut out,
                );
            } else {
                crate::admission::validate_pod_spec(&spec, "spec", false, &mut out);
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
