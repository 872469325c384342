//! LimitRanges (core/v1 `limitranges`) as kube-apiserver 1.32 checks and applies them:
//!
//! - [`validate_limit_range`]: `ValidateLimitRange` (pkg/apis/core/validation/validation.go):
//!   the limit types, the resource names per type, `min ≤ defaultRequest ≤ default ≤ max`,
//!   `maxLimitRequestRatio` at least 1 and at most max/min, no defaults for the `Pod` type, a
//!   `PersistentVolumeClaim` item with a storage bound.
//! - The LimitRanger admission (plugin/pkg/admission/limitranger/admission.go): on a pod create
//!   its mutating half ([`default_pod`], `PodMutateLimitFunc`) fills the containers' missing
//!   requests and limits from each LimitRange of the namespace and records what it set in the
//!   `kubernetes.io/limit-ranger` annotation; its validating half ([`pod_violations`],
//!   `PodValidateLimitFunc`) refuses a pod outside a range's min, max or limit/request ratio,
//!   per container or for the whole pod; a claim's storage request is held to the
//!   `PersistentVolumeClaim` bounds on create and update ([`claim_violations`],
//!   `PersistentVolumeClaimValidateLimitFunc`). Pod updates are not checked (`SupportsAttributes`:
//!   a pod's containers cannot change).
//!
//! Quantities print as Go's `Quantity.String()` does (`quantities::go_string`); Go's
//! map iteration has no order, here resource names are taken in sorted order.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kubepull_core::qos::Quantity;
use serde_json::Value;

use crate::errors::{ApiError, ApiResult, Cause};
use crate::objects::{ListOptions, Objects};
use crate::quantities::{canonical, go_resource_list_string, go_string};
use crate::resources::{self, Resource};
use crate::watchcache::{under, Cache, Noted};

/// `limitRangerAnnotation`.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// `resource.MaxMilliValue` (`math.MaxInt64 / 1000`).
const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

/// `helper.IsStandardLimitRangeType`.
const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

type List = BTreeMap<String, ApiQuantity>;

fn parse(q: &ApiQuantity) -> Option<Quantity> {
    Quantity::parse(&q.0)
}

/// An `int64` of Go's (`Value()`, `MilliValue()`), saturated.
fn to_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// `Quantity.Value()`; a missing or unparsable quantity is Go's zero `Quantity`.
fn value(q: Option<&Quantity>) -> i64 {
    q.map_or(0, |q| to_i64(q.scaled(0)))
}

/// `Quantity.MilliValue()`.
fn milli(q: Option<&Quantity>) -> i64 {
    q.map_or(0, |q| to_i64(q.scaled(3)))
}

/// `%f`.
fn go_float(v: f64) -> String {
    format!("{v:.6}")
}

// ---------------------------------------------------------------------------------------------
// ValidateLimitRange
// ---------------------------------------------------------------------------------------------

/// The int64 representation (`int64Amount{value, scale}`) `resource.ParseQuantity` gives a
/// text on its fast path, then `SetDefaults_ResourceList`'s `RoundUp(-3)`; `None` when Go keeps
/// the value as an `inf.Dec` instead (too many digits, finer than nano, a binary suffix on a
/// fraction) and for text that is not a quantity.
fn int64_amount(text: &str) -> Option<(i64, i64, &'static str)> {
    Quantity::parse(text)?;
    let s = text.trim();
    let b = s.as_bytes();
    let mut pos = 0;
    let negative = match b.first() {
        Some(b'-') => {
            pos = 1;
            true
        }
        Some(b'+') => {
            pos = 1;
            false
        }
        _ => false,
    };
    while b.get(pos) == Some(&b'0') {
        pos += 1;
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
    let (format, binary, exponent): (&'static str, bool, i64) = match suffix {
        "" => ("DecimalSI", false, 0),
        "n" => ("DecimalSI", false, -9),
        "u" => ("DecimalSI", false, -6),
        "m" => ("DecimalSI", false, -3),
        "k" => ("DecimalSI", false, 3),
        "M" => ("DecimalSI", false, 6),
        "G" => ("DecimalSI", false, 9),
        "T" => ("DecimalSI", false, 12),
        "P" => ("DecimalSI", false, 15),
        "E" => ("DecimalSI", false, 18),
        "Ki" => ("BinarySI", true, 10),
        "Mi" => ("BinarySI", true, 20),
        "Gi" => ("BinarySI", true, 30),
        "Ti" => ("BinarySI", true, 40),
        "Pi" => ("BinarySI", true, 50),
        "Ei" => ("BinarySI", true, 60),
        e => (
            "DecimalExponent",
            false,
            i64::from(e[1..].parse::<i64>().ok()? as i32),
        ),
    };
    let (mantissa, precision, mut scale): (i64, i64, i64) = if binary {
        if !denom.is_empty() {
            return None;
        }
        let precision = 15 - num.len() as i64 - (exponent as f32 * 3.0 / 10.0) as i64 - 1;
        (1i64 << exponent, precision, 0)
    } else {
        (
            1,
            18 - (num.len() + denom.len()) as i64,
            exponent - denom.len() as i64,
        )
    };
    if precision < 0 || scale < -9 {
        return None;
    }
    let shifted: i64 = format!("{num}{denom}").parse().ok()?;
    let mut v = shifted.checked_mul(mantissa)?;
    if negative {
        v = -v;
    }
    if scale < -3 {
        // `RoundUp(-3)`: away from zero
        let div = 10i64.pow((-3 - scale) as u32);
        let (q, r) = (v / div, v % div);
        v = q + r.signum();
        scale = -3;
    }
    Some((v, scale, format))
}

/// A `resource.Quantity` passed as a field error's bad value: not a `fmt.Stringer` (`String` has
/// a pointer receiver), so `ErrorBody` prints it with `%#v`, its `s` cache filled by the
/// `String()` call of the message beside it. A quantity Go holds as an `inf.Dec` has a pointer
/// there that no text reproduces; it is shown by its `String()`.
fn go_quantity_value(q: &ApiQuantity) -> String {
    let s = go_resource_list_string(&q.0);
    match int64_amount(&q.0) {
        Some((v, scale, format)) => format!(
            "resource.Quantity{{i:resource.int64Amount{{value:{v}, scale:{scale}}}, d:resource.infDecAmount{{Dec:(*inf.Dec)(nil)}}, s:{s:?}, Format:{format:?}}}"
        ),
        None => s,
    }
}

/// `validateResourceName`: a qualified name, and one without a `/` a standard resource.
fn validate_resource_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    let problems = crate::validation::is_qualified_name(name);
    if !problems.is_empty() {
        for m in problems {
            causes.push(Cause::invalid(path, name, m));
        }
        return;
    }
    if !name.contains('/') && !crate::quantities::is_standard_resource(name) {
        causes.push(Cause::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
}

/// `validateLimitRangeResourceName`: a container's resource names for the `Pod` and
/// `Container` types, any resource name otherwise.
fn validate_limit_range_resource_name(kind: &str, name: &str, path: &str, causes: &mut Vec<Cause>) {
    if kind == "Pod" || kind == "Container" {
        crate::quantities::validate_container_resource_name(name, path, causes);
    } else {
        validate_resource_name(name, path, causes);
    }
}

/// `validateLimitRangeTypeName`.
fn validate_limit_range_type_name(value: &str, path: &str, causes: &mut Vec<Cause>) {
    let problems = crate::validation::is_qualified_name(value);
    if !problems.is_empty() {
        for m in problems {
            causes.push(Cause::invalid(path, format!("{value:?}"), m));
        }
        return;
    }
    if !value.contains('/') && !LIMIT_TYPES.contains(&value) {
        causes.push(Cause::invalid(
            path,
            format!("{value:?}"),
            "must be a standard limit type or fully qualified",
        ));
    }
}

/// `ValidateLimitRange` (pkg/apis/core/validation/validation.go) after the object meta, which
/// the generic checks do: the spec's items.
pub fn validate_limit_range(obj: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let Ok(lr) = serde_json::from_value::<core::LimitRange>(obj.clone()) else {
        return causes;
    };
    let items = lr.spec.map(|s| s.limits).unwrap_or_default();
    let mut seen_types: Vec<String> = vec![];
    for (i, item) in items.iter().enumerate() {
        let at = format!("spec.limits[{i}]");
        let kind = item.type_.as_str();
        validate_limit_range_type_name(kind, &format!("{at}.type"), &mut causes);
        if seen_types.iter().any(|t| t == kind) {
            causes.push(Cause::duplicate(format!("{at}.type"), format!("{kind:?}")));
        }
        seen_types.push(kind.to_string());

        let empty = List::new();
        let max = item.max.as_ref().unwrap_or(&empty);
        let min = item.min.as_ref().unwrap_or(&empty);
        let default = item.default.as_ref().unwrap_or(&empty);
        let default_request = item.default_request.as_ref().unwrap_or(&empty);
        let ratio = item.max_limit_request_ratio.as_ref().unwrap_or(&empty);
        let mut keys: Vec<&str> = vec![];
        for (field, list) in [("max", max), ("min", min)] {
            for k in list.keys() {
                validate_limit_range_resource_name(
                    kind,
                    k,
                    &format!("{at}.{field}[{k}]"),
                    &mut causes,
                );
                keys.push(k);
            }
        }
        let (defaults, default_requests) = if kind == "Pod" {
            if !default.is_empty() {
                causes.push(Cause::forbidden(
                    format!("{at}.default"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
            if !default_request.is_empty() {
                causes.push(Cause::forbidden(
                    format!("{at}.defaultRequest"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
            (&empty, &empty)
        } else {
            for (field, list) in [("default", default), ("defaultRequest", default_request)] {
                for k in list.keys() {
                    validate_limit_range_resource_name(
                        kind,
                        k,
                        &format!("{at}.{field}[{k}]"),
                        &mut causes,
                    );
                    keys.push(k);
                }
            }
            (default, default_request)
        };
        if kind == "PersistentVolumeClaim"
            && !min.contains_key("storage")
            && !max.contains_key("storage")
        {
            causes.push(Cause::required(
                format!("{at}.limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        for k in ratio.keys() {
            validate_limit_range_resource_name(
                kind,
                k,
                &format!("{at}.maxLimitRequestRatio[{k}]"),
                &mut causes,
            );
            keys.push(k);
        }
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            check_bounds(
                &at,
                k,
                min.get(k),
                max.get(k),
                defaults.get(k),
                default_requests.get(k),
                ratio.get(k),
                &mut causes,
            );
        }
    }
    causes
}

fn with_value(q: Option<&ApiQuantity>) -> Option<(&ApiQuantity, Quantity)> {
    q.and_then(|q| parse(q).map(|v| (q, v)))
}

/// The per-resource checks of `ValidateLimitRange`, in its order.
fn check_bounds(
    at: &str,
    k: &str,
    min: Option<&ApiQuantity>,
    max: Option<&ApiQuantity>,
    default: Option<&ApiQuantity>,
    default_request: Option<&ApiQuantity>,
    ratio: Option<&ApiQuantity>,
    causes: &mut Vec<Cause>,
) {
    let (min, max, default, default_request, ratio) = (
        with_value(min),
        with_value(max),
        with_value(default),
        with_value(default_request),
        with_value(ratio),
    );
    let s = |q: &ApiQuantity| go_string(&go_resource_list_string(&q.0));
    if let (Some((mn, mnv)), Some((mx, mxv))) = (&min, &max) {
        if mnv > mxv {
            causes.push(Cause::invalid(
                format!("{at}.min[{k}]"),
                go_quantity_value(mn),
                format!("min value {} is greater than max value {}", s(mn), s(mx)),
            ));
        }
    }
    if let (Some((dr, drv)), Some((mn, mnv))) = (&default_request, &min) {
        if mnv > drv {
            causes.push(Cause::invalid(
                format!("{at}.defaultRequest[{k}]"),
                go_quantity_value(dr),
                format!(
                    "min value {} is greater than default request value {}",
                    s(mn),
                    s(dr)
                ),
            ));
        }
    }
    if let (Some((dr, drv)), Some((mx, mxv))) = (&default_request, &max) {
        if drv > mxv {
            causes.push(Cause::invalid(
                format!("{at}.defaultRequest[{k}]"),
                go_quantity_value(dr),
                format!(
                    "default request value {} is greater than max value {}",
                    s(dr),
                    s(mx)
                ),
            ));
        }
    }
    if let (Some((dr, drv)), Some((df, dfv))) = (&default_request, &default) {
        if drv > dfv {
            causes.push(Cause::invalid(
                format!("{at}.defaultRequest[{k}]"),
                go_quantity_value(dr),
                format!(
                    "default request value {} is greater than default limit value {}",
                    s(dr),
                    s(df)
                ),
            ));
        }
    }
    if let (Some((df, dfv)), Some((mn, mnv))) = (&default, &min) {
        if mnv > dfv {
            causes.push(Cause::invalid(
                format!("{at}.default[{k}]"),
                go_quantity_value(mn),
                format!(
                    "min value {} is greater than default value {}",
                    s(mn),
                    s(df)
                ),
            ));
        }
    }
    if let (Some((df, dfv)), Some((mx, mxv))) = (&default, &max) {
        if dfv > mxv {
            causes.push(Cause::invalid(
                format!("{at}.default[{k}]"),
                go_quantity_value(mx),
                format!(
                    "default value {} is greater than max value {}",
                    s(df),
                    s(mx)
                ),
            ));
        }
    }
    if let Some((r, rv)) = &ratio {
        let one = Quantity::parse("1").expect("1");
        if *rv < one {
            causes.push(Cause::invalid(
                format!("{at}.maxLimitRequestRatio[{k}]"),
                go_quantity_value(r),
                format!("ratio {} is less than 1", s(r)),
            ));
        }
        if let (Some((_, mnv)), Some((_, mxv))) = (&min, &max) {
            let mut ratio_value = value(Some(rv)) as f64;
            let mut min_value = value(Some(mnv));
            let mut max_value = value(Some(mxv));
            if value(Some(rv)) < MAX_MILLI_VALUE
                && min_value < MAX_MILLI_VALUE
                && max_value < MAX_MILLI_VALUE
            {
                ratio_value = milli(Some(rv)) as f64 / 1000.0;
                min_value = milli(Some(mnv));
                max_value = milli(Some(mxv));
            }
            let limit = max_value as f64 / min_value as f64;
            if ratio_value > limit {
                causes.push(Cause::invalid(
                    format!("{at}.maxLimitRequestRatio[{k}]"),
                    go_quantity_value(r),
                    format!(
                        "ratio {} is greater than max/min = {}",
                        s(r),
                        go_float(limit)
                    ),
                ));
            }
        }
    }
    if let (Some((df, dfv)), Some((dr, drv))) = (&default, &default_request) {
        if !crate::quantities::overcommit_allowed(k) && dfv != drv {
            causes.push(Cause::invalid(
                format!("{at}.defaultRequest[{k}]"),
                go_quantity_value(dr),
                format!(
                    "default value {} must equal to defaultRequest value {} in {k}",
                    s(df),
                    s(dr)
                ),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LimitRanger admission
// ---------------------------------------------------------------------------------------------

/// A quantity of a pod's (or a sum's) resource list: its value and Go's `String()` of it.
#[derive(Clone, Debug)]
struct Amount {
    q: Quantity,
    text: String,
}

impl Amount {
    fn of(q: &ApiQuantity) -> Option<Amount> {
        Some(Amount {
            q: parse(q)?,
            text: go_string(&q.0),
        })
    }

    /// `Quantity.Add`: the sum keeps the first operand's format (a zero one takes the other's)
    /// and forgets the cached text.
    fn add(&self, o: &Amount) -> Amount {
        let format = if self.q.sign() == 0 {
            o.q.format()
        } else {
            self.q.format()
        };
        let q = Quantity::from_scaled(self.q.scaled(9) + o.q.scaled(9), -9, format);
        let text = canonical(&q);
        Amount { q, text }
    }
}

type Amounts = BTreeMap<String, Amount>;

fn amounts(list: Option<&List>) -> Amounts {
    list.into_iter()
        .flatten()
        .filter_map(|(k, q)| Amount::of(q).map(|a| (k.clone(), a)))
        .collect()
}

/// `defaultContainerResourceRequirements`: the `Container` items' `defaultRequest` and
/// `default`, as requests and limits.
fn default_requirements(lr: &core::LimitRange) -> (List, List) {
    let mut requests = List::new();
    let mut limits = List::new();
    for item in lr.spec.iter().flat_map(|s| &s.limits) {
        if item.type_ == "Container" {
            for (k, v) in item.default_request.iter().flatten() {
                requests.insert(k.clone(), v.clone());
            }
            for (k, v) in item.default.iter().flatten() {
                limits.insert(k.clone(), v.clone());
            }
        }
    }
    (requests, limits)
}

/// `mergeContainerResources`: the defaults a container lacks, and the annotation's words for
/// them.
fn merge_container(
    c: &mut core::Container,
    requests: &List,
    limits: &List,
    prefix: &str,
    notes: &mut Vec<String>,
) {
    let mut set_requests: Vec<&str> = vec![];
    let mut set_limits: Vec<&str> = vec![];
    let res = c.resources.get_or_insert_with(Default::default);
    for (k, v) in limits {
        let l = res.limits.get_or_insert_with(Default::default);
        if !l.contains_key(k) {
            l.insert(k.clone(), v.clone());
            set_limits.push(k);
        }
    }
    for (k, v) in requests {
        let r = res.requests.get_or_insert_with(Default::default);
        if !r.contains_key(k) {
            r.insert(k.clone(), v.clone());
            set_requests.push(k);
        }
    }
    if !set_requests.is_empty() {
        set_requests.sort_unstable();
        notes.push(format!(
            "{} request for {prefix} {}",
            set_requests.join(", "),
            c.name
        ));
    }
    if !set_limits.is_empty() {
        set_limits.sort_unstable();
        notes.push(format!(
            "{} limit for {prefix} {}",
            set_limits.join(", "),
            c.name
        ));
    }
}

/// `PodMutateLimitFunc` (`defaultContainerResourceRequirements`, `mergePodResourceRequirements`):
/// the containers' and init containers' missing requests and limits from one LimitRange; the
/// annotation says what was set, when anything was.
pub fn default_pod(lr: &core::LimitRange, pod: &mut core::Pod) {
    let (requests, limits) = default_requirements(lr);
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let mut notes = vec![];
    for c in &mut spec.containers {
        merge_container(c, &requests, &limits, "container", &mut notes);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        merge_container(c, &requests, &limits, "init container", &mut notes);
    }
    if !notes.is_empty() {
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                ANNOTATION.to_string(),
                format!("LimitRanger plugin set: {}", notes.join("; ")),
            );
    }
}

/// `requestLimitEnforcedValues`: milli-units when all three fit, else units.
fn enforced_values(
    req: Option<&Amount>,
    lim: Option<&Amount>,
    enforced: &Quantity,
) -> (i64, i64, i64) {
    let (rq, lq) = (req.map(|a| &a.q), lim.map(|a| &a.q));
    let (r, l, e) = (value(rq), value(lq), value(Some(enforced)));
    if r <= MAX_MILLI_VALUE && l <= MAX_MILLI_VALUE && e <= MAX_MILLI_VALUE {
        (milli(rq), milli(lq), milli(Some(enforced)))
    } else {
        (r, l, e)
    }
}

/// `minConstraint`.
fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &ApiQuantity,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let e = parse(enforced)?;
    let es = go_string(&enforced.0);
    let (req, lim) = (requests.get(name), limits.get(name));
    let (r, l, ev) = enforced_values(req, lim, &e);
    let Some(req) = req else {
        return Some(format!(
            "minimum {name} usage per {kind} is {es}.  No request is specified"
        ));
    };
    if r < ev {
        return Some(format!(
            "minimum {name} usage per {kind} is {es}, but request is {}",
            req.text
        ));
    }
    match lim {
        Some(lim) if l < ev => Some(format!(
            "minimum {name} usage per {kind} is {es}, but limit is {}",
            lim.text
        )),
        _ => None,
    }
}

/// `maxConstraint`.
fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &ApiQuantity,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let e = parse(enforced)?;
    let es = go_string(&enforced.0);
    let (req, lim) = (requests.get(name), limits.get(name));
    let (r, l, ev) = enforced_values(req, lim, &e);
    let Some(lim) = lim else {
        return Some(format!(
            "maximum {name} usage per {kind} is {es}.  No limit is specified"
        ));
    };
    if l > ev {
        return Some(format!(
            "maximum {name} usage per {kind} is {es}, but limit is {}",
            lim.text
        ));
    }
    match req {
        Some(req) if r > ev => Some(format!(
            "maximum {name} usage per {kind} is {es}, but request is {}",
            req.text
        )),
        _ => None,
    }
}

/// `maxRequestConstraint`: a claim's request only.
fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: &ApiQuantity,
    requests: &Amounts,
) -> Option<String> {
    let e = parse(enforced)?;
    let es = go_string(&enforced.0);
    let req = requests.get(name);
    let (r, _, ev) = enforced_values(req, None, &e);
    let Some(req) = req else {
        return Some(format!(
            "maximum {name} usage per {kind} is {es}.  No request is specified"
        ));
    };
    (r > ev).then(|| {
        format!(
            "maximum {name} usage per {kind} is {es}, but request is {}",
            req.text
        )
    })
}

/// `limitRequestRatioConstraint`.
fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &ApiQuantity,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let e = parse(enforced)?;
    let es = go_string(&enforced.0);
    let (req, lim) = (requests.get(name), limits.get(name));
    let (r, l, _) = enforced_values(req, lim, &e);
    if req.is_none() || r == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {es}, but no request is specified or request is 0"
        ));
    }
    if lim.is_none() || l == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {es}, but no limit is specified or limit is 0"
        ));
    }
    let mut observed = l as f64 / r as f64;
    let shown = observed;
    let mut max = value(Some(&e)) as f64;
    if value(Some(&e)) <= MAX_MILLI_VALUE {
        observed *= 1000.0;
        max = milli(Some(&e)) as f64;
    }
    (observed > max).then(|| {
        format!(
            "{name} max limit to request ratio per {kind} is {es}, but provided ratio is {}",
            go_float(shown)
        )
    })
}

/// `addResourceList`.
fn add_list(list: &mut Amounts, new: &Amounts) {
    for (k, a) in new {
        let sum = match list.get(k) {
            None => a.clone(),
            Some(v) => v.add(a),
        };
        list.insert(k.clone(), sum);
    }
}

/// `maxResourceList`.
fn max_list(list: &mut Amounts, new: &Amounts) {
    for (k, a) in new {
        if list.get(k).is_none_or(|v| a.q > v.q) {
            list.insert(k.clone(), a.clone());
        }
    }
}

/// `podRequests` / `podLimits` (the spec only): the containers' sum; each init container
/// counts with the restartable (sidecar) ones before it, the sidecars add to the sum, and the
/// larger of the two per resource wins.
fn pod_totals(
    spec: &core::PodSpec,
    pick: fn(&core::ResourceRequirements) -> Option<&List>,
) -> Amounts {
    let of = |c: &core::Container| amounts(c.resources.as_ref().and_then(pick));
    let mut total = Amounts::new();
    for c in &spec.containers {
        add_list(&mut total, &of(c));
    }
    let mut sidecars = Amounts::new();
    let mut init = Amounts::new();
    for c in spec.init_containers.iter().flatten() {
        let own = of(c);
        let counted = if c.restart_policy.as_deref() == Some("Always") {
            add_list(&mut total, &own);
            add_list(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut tmp = Amounts::new();
            add_list(&mut tmp, &own);
            add_list(&mut tmp, &sidecars);
            tmp
        };
        max_list(&mut init, &counted);
    }
    max_list(&mut total, &init);
    total
}

/// The min, max and ratio checks of one item against one requests/limits pair.
fn check_item(
    item: &core::LimitRangeItem,
    requests: &Amounts,
    limits: &Amounts,
    errs: &mut Vec<String>,
) {
    let kind = item.type_.as_str();
    for (k, v) in item.min.iter().flatten() {
        errs.extend(min_constraint(kind, k, v, requests, limits));
    }
    for (k, v) in item.max.iter().flatten() {
        errs.extend(max_constraint(kind, k, v, requests, limits));
    }
    for (k, v) in item.max_limit_request_ratio.iter().flatten() {
        errs.extend(ratio_constraint(kind, k, v, requests, limits));
    }
}

/// `PodValidateLimitFunc`: each container and init container against the `Container` items,
/// the pod's totals against the `Pod` items. The messages, in upstream's order.
pub fn pod_violations(lr: &core::LimitRange, pod: &core::Pod) -> Vec<String> {
    let mut errs = vec![];
    let Some(spec) = pod.spec.as_ref() else {
        return errs;
    };
    for item in lr.spec.iter().flat_map(|s| &s.limits) {
        match item.type_.as_str() {
            "Container" => {
                for c in spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                {
                    let res = c.resources.as_ref();
                    let requests = amounts(res.and_then(|r| r.requests.as_ref()));
                    let limits = amounts(res.and_then(|r| r.limits.as_ref()));
                    check_item(item, &requests, &limits, &mut errs);
                }
            }
            "Pod" => {
                let requests = pod_totals(spec, |r| r.requests.as_ref());
                let limits = pod_totals(spec, |r| r.limits.as_ref());
                check_item(item, &requests, &limits, &mut errs);
            }
            _ => {}
        }
    }
    errs
}

/// `PersistentVolumeClaimValidateLimitFunc`: a claim's storage requests against the
/// `PersistentVolumeClaim` items' min (`minConstraint`, no limits) and max
/// (`maxRequestConstraint`).
pub fn claim_violations(lr: &core::LimitRange, claim: &Value) -> Vec<String> {
    let mut errs = vec![];
    let requests: Amounts = claim
        .pointer("/spec/resources/requests")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let q = ApiQuantity(v.as_str()?.to_string());
            Amount::of(&q).map(|a| (k.clone(), a))
        })
        .collect();
    let none = Amounts::new();
    for item in lr.spec.iter().flat_map(|s| &s.limits) {
        if item.type_ != "PersistentVolumeClaim" {
            continue;
        }
        for (k, v) in item.min.iter().flatten() {
            errs.extend(min_constraint(&item.type_, k, v, &requests, &none));
        }
        for (k, v) in item.max.iter().flatten() {
            errs.extend(max_request_constraint(&item.type_, k, v, &requests));
        }
    }
    errs
}

/// `utilerrors.NewAggregate(errs).Error()`: one message alone, several (duplicates dropped)
/// joined in brackets.
pub fn aggregate(errs: &[String]) -> String {
    let mut seen: Vec<&str> = vec![];
    for e in errs {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen[0].to_string()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// The watch-fed copies of the LimitRanges and PriorityClasses the LimitRanger and Priority
/// admissions read on each pod create (upstream's informer indexer and lister), so a pod
/// create in a namespace without LimitRanges reads no storage for them.
pub struct PolicyCaches {
    limit_ranges: Arc<Cache<core::LimitRange>>,
    priority_classes: Arc<Cache>,
}

impl std::fmt::Debug for PolicyCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCaches").finish_non_exhaustive()
    }
}

impl Default for PolicyCaches {
    fn default() -> Self {
        Self::new()
    }
}

fn prefix_of(group: &str, plural: &str) -> String {
    resources::find(group, "v1", plural)
        .map(|r| resources::storage_of(r).key_prefix())
        .unwrap_or_else(|| format!("/registry/{plural}/"))
}

fn decode_limit_range(v: &[u8]) -> Option<core::LimitRange> {
    serde_json::from_slice(v).ok()
}

impl PolicyCaches {
    /// Empty caches; the first read (or [`PolicyCaches::start`]) lists them.
    pub fn new() -> PolicyCaches {
        PolicyCaches {
            limit_ranges: Arc::new(Cache::with_decoder(
                &prefix_of("", "limitranges"),
                decode_limit_range,
            )),
            priority_classes: Arc::new(Cache::new(&prefix_of(
                "scheduling.k8s.io",
                "priorityclasses",
            ))),
        }
    }

    /// Both caches, for [`crate::watchcache::Tracked`].
    pub fn all(&self) -> Vec<Arc<dyn Noted>> {
        vec![self.limit_ranges.clone(), self.priority_classes.clone()]
    }

    /// Lists both and follows them from now on.
    pub async fn start(&self, store: &Arc<dyn kubepull_datastore::Datastore>) {
        self.limit_ranges.read(store, |_| ()).await;
        self.priority_classes.read(store, |_| ()).await;
    }

    /// The LimitRanges of `ns` in key order; `None` when the cache cannot answer.
    async fn limit_ranges(
        &self,
        store: &Arc<dyn kubepull_datastore::Datastore>,
        ns: &str,
    ) -> Option<Vec<core::LimitRange>> {
        let under_ns = format!("{}{ns}/", self.limit_ranges.prefix());
        self.limit_ranges
            .read(store, |items| {
                under(items, &under_ns).map(|lr| (**lr).clone()).collect()
            })
            .await
    }

    /// The PriorityClasses; `None` when the cache cannot answer.
    pub(crate) async fn priority_classes(
        &self,
        store: &Arc<dyn kubepull_datastore::Datastore>,
    ) -> Option<Vec<Value>> {
        self.priority_classes
            .read(store, |items| {
                items.values().map(|v| (**v).clone()).collect()
            })
            .await
    }
}

/// The LimitRanges of a namespace, in name order (the admission's indexer lookup: the cache,
/// else one range read of the namespace's prefix). None when the kind is not served.
pub async fn namespace_ranges(objects: &Objects, ns: &str) -> ApiResult<Vec<core::LimitRange>> {
    let Some(r) = resources::find("", "v1", "limitranges") else {
        return Ok(vec![]);
    };
    if let Some(cached) = objects.policy.limit_ranges(objects.store(), ns).await {
        return Ok(cached);
    }
    let (items, _, _) = objects.list(r, Some(ns), &ListOptions::default()).await?;
    Ok(items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// The mutating half of LimitRanger on a pod create: the pod defaulted from each LimitRange of
/// the namespace. Returns the ranges, for the validating half. `name` is the request's (a
/// `generateName` pod is named by its prefix); a failed lookup is the admission's Forbidden.
pub async fn admit_pod(
    objects: &Objects,
    r: &Resource,
    ns: &str,
    name: &str,
    pod: &mut core::Pod,
) -> ApiResult<Vec<core::LimitRange>> {
    let name = if name.is_empty() {
        pod.metadata.generate_name.clone().unwrap_or_default()
    } else {
        name.to_string()
    };
    let ranges = namespace_ranges(objects, ns)
        .await
        .map_err(|e| refused(r, &name, &e.message))?;
    for lr in &ranges {
        default_pod(lr, pod);
    }
    Ok(ranges)
}

/// `admission.NewForbidden`: the object named as the admission names it.
fn refused(r: &Resource, name: &str, why: &str) -> ApiError {
    ApiError::forbidden(
        r,
        name,
        format!("{} \"{name}\" is forbidden: {why}", r.qualified()),
    )
}

/// `admission.NewForbidden` of the first LimitRange the object violates.
fn forbidden(r: &Resource, name: &str, errs: &[String]) -> ApiError {
    refused(r, name, &aggregate(errs))
}

/// The validating half of LimitRanger on a pod create (`ranges` from [`admit_pod`]): the first
/// range the pod violates refuses it.
pub fn validate_pod(
    r: &Resource,
    name: &str,
    pod: &core::Pod,
    ranges: &[core::LimitRange],
) -> ApiResult<()> {
    for lr in ranges {
        let errs = pod_violations(lr, pod);
        if !errs.is_empty() {
            return Err(forbidden(r, name, &errs));
        }
    }
    Ok(())
}

/// The validating half of LimitRanger on a PersistentVolumeClaim create or update.
pub async fn validate_claim(
    objects: &Objects,
    r: &Resource,
    ns: &str,
    name: &str,
    claim: &Value,
) -> ApiResult<()> {
    let ranges = namespace_ranges(objects, ns)
        .await
        .map_err(|e| refused(r, name, &e.message))?;
    for lr in ranges {
        let errs = claim_violations(&lr, claim);
        if !errs.is_empty() {
            return Err(forbidden(r, name, &errs));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lr(limits: Value) -> core::LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"limits": limits}}))
            .unwrap()
    }

    fn texts(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::text).collect()
    }

    fn pod(containers: Value) -> core::Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }

    #[test]
    fn valid_ranges_pass() {
        let obj = json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "100m"},
             "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "200m"},
             "maxLimitRequestRatio": {"cpu": "4"}},
            {"type": "Pod", "max": {"cpu": "4"}},
            {"type": "PersistentVolumeClaim", "max": {"storage": "10Gi"}},
        ]}});
        assert!(validate_limit_range(&obj).is_empty());
    }

    #[test]
    fn bounds_out_of_order_are_refused_with_upstreams_words() {
        let obj = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"cpu": "100m"},
             "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "800m"}},
        ]}});
        assert_eq!(
            texts(&validate_limit_range(&obj)),
            ["spec.limits[0].defaultRequest[cpu]: Invalid value: resource.Quantity{i:resource.int64Amount{value:800, scale:-3}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"800m\", Format:\"DecimalSI\"}: default request value 800m is greater than default limit value 500m"]
        );
        let obj = json!({"spec": {"limits": [
            {"type": "Container", "max": {"memory": "512Mi"}, "min": {"memory": "1Gi"}},
        ]}});
        assert_eq!(
            texts(&validate_limit_range(&obj)),
            ["spec.limits[0].min[memory]: Invalid value: resource.Quantity{i:resource.int64Amount{value:1073741824, scale:0}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"1Gi\", Format:\"BinarySI\"}: min value 1Gi is greater than max value 512Mi"]
        );
        let obj = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "default": {"cpu": "2"}},
        ]}});
        assert_eq!(
            texts(&validate_limit_range(&obj)),
            ["spec.limits[0].default[cpu]: Invalid value: resource.Quantity{i:resource.int64Amount{value:1, scale:0}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"1\", Format:\"DecimalSI\"}: default value 2 is greater than max value 1"]
        );
    }

    #[test]
    fn ratios_below_one_or_above_max_over_min_are_refused() {
        let obj = json!({"spec": {"limits": [
            {"type": "Pod", "maxLimitRequestRatio": {"cpu": "800m"}},
        ]}});
        assert_eq!(
            texts(&validate_limit_range(&obj)),
            ["spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: resource.Quantity{i:resource.int64Amount{value:800, scale:-3}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"800m\", Format:\"DecimalSI\"}: ratio 800m is less than 1"]
        );
        let obj = json!({"spec": {"limits": [
            {"type": "Container", "max": {"memory": "2Gi"}, "min": {"memory": "512Mi"},
             "maxLimitRequestRatio": {"memory": "10"}},
        ]}});
        let t = texts(&validate_limit_range(&obj));
        assert_eq!(t.len(), 1);
        assert!(
            t[0].ends_with(": ratio 10 is greater than max/min = 4.000000"),
            "{t:?}"
        );
    }

    #[test]
    fn types_names_and_defaults_per_type() {
        let obj = json!({"spec": {"limits": [
            {"type": "Pod", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}},
            {"type": "Pod", "max": {"storage": "1"}},
            {"type": "Other"},
            {"type": "PersistentVolumeClaim", "max": {"cpu": "1"}},
        ]}});
        assert_eq!(
            texts(&validate_limit_range(&obj)),
            [
                "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'",
                "spec.limits[0].defaultRequest: Forbidden: may not be specified when `type` is 'Pod'",
                "spec.limits[1].type: Duplicate value: \"Pod\"",
                "spec.limits[1].max[storage]: Invalid value: storage: must be a standard resource for containers",
                "spec.limits[2].type: Invalid value: \"Other\": must be a standard limit type or fully qualified",
                "spec.limits[3].limits: Required value: either minimum or maximum storage value is required, but neither was provided",
            ]
        );
    }

    #[test]
    fn huge_pages_defaults_must_be_equal() {
        let obj = json!({"spec": {"limits": [
            {"type": "Container", "default": {"hugepages-2Mi": "4Mi"},
             "defaultRequest": {"hugepages-2Mi": "2Mi"}},
        ]}});
        let t = texts(&validate_limit_range(&obj));
        assert_eq!(t.len(), 1);
        assert!(
            t[0].ends_with(
                "default value 4Mi must equal to defaultRequest value 2Mi in hugepages-2Mi"
            ),
            "{t:?}"
        );
    }

    #[test]
    fn the_fast_path_representation() {
        assert_eq!(int64_amount("500m"), Some((500, -3, "DecimalSI")));
        assert_eq!(int64_amount("1.5"), Some((15, -1, "DecimalSI")));
        assert_eq!(int64_amount("1000m"), Some((1000, -3, "DecimalSI")));
        assert_eq!(int64_amount("1e3"), Some((1, 3, "DecimalExponent")));
        assert_eq!(int64_amount("2Ki"), Some((2048, 0, "BinarySI")));
        assert_eq!(int64_amount("100u"), Some((1, -3, "DecimalSI")));
        assert_eq!(int64_amount("1.5Gi"), None);
        assert_eq!(int64_amount("x"), None);
    }

    #[test]
    fn defaults_fill_what_containers_lack_and_say_so() {
        let range = lr(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
        let mut p = pod(json!([
            {"name": "a", "image": "i"},
            {"name": "b", "image": "i", "resources": {"limits": {"cpu": "1"}}},
        ]));
        default_pod(&range, &mut p);
        let spec = p.spec.as_ref().unwrap();
        let a = spec.containers[0].resources.as_ref().unwrap();
        assert_eq!(a.limits.as_ref().unwrap()["cpu"].0, "500m");
        assert_eq!(a.requests.as_ref().unwrap()["memory"].0, "128Mi");
        let b = spec.containers[1].resources.as_ref().unwrap();
        assert_eq!(b.limits.as_ref().unwrap()["cpu"].0, "1");
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()[ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; cpu, memory request for container b; memory limit for container b"
        );
    }

    #[test]
    fn a_range_without_defaults_leaves_the_pod_alone() {
        let range = lr(json!([{"type": "Container", "max": {"cpu": "1"}}]));
        let mut p = pod(json!([{"name": "a", "image": "i"}]));
        let before = p.clone();
        default_pod(&range, &mut p);
        assert_eq!(p, before);
    }

    #[test]
    fn container_bounds_are_enforced_with_upstreams_words() {
        let range = lr(json!([{"type": "Container", "max": {"cpu": "500m"},
            "min": {"memory": "64Mi"}, "maxLimitRequestRatio": {"cpu": "2"}}]));
        let p = pod(json!([{"name": "a", "image": "i", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "32Mi"}}}]));
        assert_eq!(
            pod_violations(&range, &p),
            [
                "minimum memory usage per Container is 64Mi, but request is 32Mi",
                "maximum cpu usage per Container is 500m, but limit is 1",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
            ]
        );
        let p = pod(json!([{"name": "a", "image": "i"}]));
        assert_eq!(
            pod_violations(&range, &p),
            [
                "minimum memory usage per Container is 64Mi.  No request is specified",
                "maximum cpu usage per Container is 500m.  No limit is specified",
                "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0",
            ]
        );
        let ok = pod(json!([{"name": "a", "image": "i", "resources": {
            "limits": {"cpu": "500m"}, "requests": {"cpu": "250m", "memory": "64Mi"}}}]));
        assert!(pod_violations(&range, &ok).is_empty());
    }

    #[test]
    fn pod_totals_sum_containers_and_keep_the_larger_init() {
        let range = lr(json!([{"type": "Pod", "max": {"cpu": "1", "memory": "1Gi"}}]));
        let p = pod(json!([
            {"name": "a", "image": "i", "resources": {"limits": {"cpu": "600m", "memory": "512Mi"}}},
            {"name": "b", "image": "i", "resources": {"limits": {"cpu": "600m", "memory": "1Gi"}}},
        ]));
        assert_eq!(
            pod_violations(&range, &p),
            [
                "maximum cpu usage per Pod is 1, but limit is 1200m",
                "maximum memory usage per Pod is 1Gi, but limit is 1536Mi",
            ]
        );
        let mut p = pod(json!([
            {"name": "a", "image": "i", "resources": {"limits": {"cpu": "100m", "memory": "1Mi"}}},
        ]));
        p.spec.as_mut().unwrap().init_containers = Some(vec![serde_json::from_value(json!(
            {"name": "i", "image": "i", "resources": {"limits": {"cpu": "2", "memory": "1Mi"}}}
        ))
        .unwrap()]);
        assert_eq!(
            pod_violations(&range, &p),
            ["maximum cpu usage per Pod is 1, but limit is 2"]
        );
    }

    #[test]
    fn claims_are_held_to_their_storage_bounds() {
        let range = lr(json!([{"type": "PersistentVolumeClaim",
            "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]));
        let claim = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert_eq!(
            claim_violations(&range, &claim("5Gi")),
            ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
        );
        assert_eq!(
            claim_violations(&range, &claim("500Mi")),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
        assert!(claim_violations(&range, &claim("1536Mi")).is_empty());
    }

    /// The admissions read the watch-fed caches synced at start: a pod create lists nothing
    /// from storage, and a LimitRange or PriorityClass written through the server applies to
    /// the next pod at once.
    #[tokio::test]
    async fn pod_creates_read_the_caches_not_storage() {
        use crate::objects::User;
        let store = Arc::new(crate::teststore::TestStore::default());
        let dyn_store: Arc<dyn kubepull_datastore::Datastore> = store.clone();
        let objects = Objects::new(dyn_store);
        objects.bootstrap().await.unwrap();
        let pods = resources::find("", "v1", "pods").unwrap();
        let body = |n: &str| json!({"metadata": {"name": n}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let lists = store.lists();
        let p = objects
            .create(pods, "default", body("a"), &User::Admin, false)
            .await
            .unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert!(p.pointer("/metadata/annotations").is_none(), "{p}");

        let lrr = resources::find("", "v1", "limitranges").unwrap();
        let range = json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "default": {"cpu": "200m"}}]}});
        objects
            .create(lrr, "default", range, &User::Admin, false)
            .await
            .unwrap();
        let pcr = resources::find("scheduling.k8s.io", "v1", "priorityclasses").unwrap();
        let class = json!({"metadata": {"name": "d"}, "value": 50, "globalDefault": true});
        objects
            .create(pcr, "", class, &User::Admin, false)
            .await
            .unwrap();
        let p = objects
            .create(pods, "default", body("b"), &User::Admin, false)
            .await
            .unwrap();
        assert_eq!(
            p.pointer("/spec/containers/0/resources/limits/cpu"),
            Some(&json!("200m"))
        );
        assert_eq!(
            p.pointer("/spec/containers/0/resources/requests/cpu"),
            Some(&json!("200m"))
        );
        assert_eq!(p["spec"]["priority"], 50);
        assert_eq!(
            store.lists(),
            lists,
            "pod creates list nothing from storage"
        );
    }

    /// A lookup that cannot be made (no cache yet, storage refusing lists) refuses the pod
    /// with the admission's Forbidden, naming a `generateName` pod by its prefix.
    #[tokio::test]
    async fn a_failed_lookup_refuses_the_pod() {
        use crate::objects::User;
        let store = Arc::new(crate::teststore::TestStore::default());
        let dyn_store: Arc<dyn kubepull_datastore::Datastore> = store.clone();
        let objects = Objects::new(dyn_store);
        let nsr = resources::find("", "v1", "namespaces").unwrap();
        objects
            .create(
                nsr,
                "",
                json!({"metadata": {"name": "x"}}),
                &User::Admin,
                false,
            )
            .await
            .unwrap();
        store.fail_lists(true);
        let pods = resources::find("", "v1", "pods").unwrap();
        let body = json!({"metadata": {"generateName": "web-"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let e = objects
            .create(pods, "x", body, &User::Admin, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, 403, "{e}");
        assert!(e.message.starts_with("pods \"web-\" is forbidden: "), "{e}");
    }

    #[test]
    fn aggregate_is_one_message_or_a_bracketed_list() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
    }
}
